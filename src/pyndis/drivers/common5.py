"""What the NDIS 5.x sample drivers share: pools, freeing packets, OID answers, the 802.3 base.

Theory of operation
-------------------
A family of real drivers keeps the steps they all take in one source file; this is that file
for the NDIS 5.x samples (and the 5.x drivers of :mod:`pyndis.testing`). Everything here calls
only DDIs and macros, on behalf of the driver that calls it:

* :func:`allocate_pools` / :func:`free_pools`: a packet pool and a buffer pool, made together
  and freed together (RESOURCES if either cannot be made; nothing is left allocated then);
* :func:`free_buffers` / :func:`free_packet`: unchain every buffer descriptor of a packet
  (``NdisUnchainBufferAtFront`` until the chain is empty), free each, and free the packet;
* :func:`answer`: a ``MiniportQueryInformation`` answer from a table of OID values
  (INVALID_OID for the rest); :func:`ethernet_answers` is the table of an 802.3 NIC;
* :func:`order_batch`: the order a NIC completes a batch of sends in (``fifo``, ``reverse``,
  or ``random`` from the kernel's seeded random source; rule 18 leaves it free);
* :func:`lookahead_frame`: the frame of a lookahead indication (header + lookahead);
* :func:`pick`: the binding or adapter a driver was asked for by name, or its only one;
* :class:`SampleProtocol5`: DriverEntry's last step of a sample protocol (NdisRegisterProtocol
  under its ``name``, keeping the handle; NDIS offers the adapters present afterwards, from
  PASSIVE work items); :func:`open_ethernet`: the first steps of binding to an 802.3 adapter
  (the binding's own pools, then NdisOpenAdapter; a failure undone and recorded);
* :class:`EthernetMiniport5`: the handlers an NDIS 5.1 802.3 sample miniport has in common
  (medium selection and attributes in MiniportInitialize, the OID handlers, MiniportHalt),
  around the hooks of its adapter context, an :class:`EthernetAdapter5`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from random import Random
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..constants import (
    NDIS_ATTRIBUTE_DESERIALIZE,
    OID_802_3_CURRENT_ADDRESS,
    OID_802_3_PERMANENT_ADDRESS,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_LINK_SPEED,
    OID_GEN_MAC_OPTIONS,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    OID_GEN_MEDIA_CONNECT_STATUS,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
    NdisMedium802_3,
)
from ..mdl import BufferPool, NdisFreeBuffer
from ..packet import NDIS_PACKET, NdisUnchainBufferAtFront
from ..pools import NdisFreePacket, PacketPool
from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.binding import OpenBlock
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis

#: The completion orders a sample NIC offers (registry keyword ``completion``).
COMPLETION_ORDERS = ("fifo", "reverse", "random")
#: OID_GEN_LINK_SPEED of a 1 Gbit/s link (in units of 100 bit/s).
GIGABIT = 10_000_000

_SUCCESS = NDIS_STATUS.SUCCESS
_RESOURCES = NDIS_STATUS.RESOURCES

T = TypeVar("T")


# --- pools and descriptors ----------------------------------------------------------------------


def allocate_pools(
    ndis: Ndis, packets: int, buffers: int
) -> tuple[NDIS_STATUS, PacketPool | None, BufferPool | None]:
    """-> (SUCCESS, packet pool of ``packets``, buffer pool of ``buffers``) | (RESOURCES, None,
    None), with nothing left allocated."""
    status, packet_pool = ndis.NdisAllocatePacketPool(packets, 16)
    if status != _SUCCESS or packet_pool is None:
        return _RESOURCES, None, None
    status, buffer_pool = ndis.NdisAllocateBufferPool(buffers)
    if status != _SUCCESS:
        ndis.NdisFreePacketPool(packet_pool)
        return _RESOURCES, None, None
    return _SUCCESS, packet_pool, buffer_pool


def free_pools(ndis: Ndis, *pools: PacketPool | BufferPool | None) -> None:
    """Free each pool given (None: nothing to free)."""
    for pool in pools:
        if isinstance(pool, PacketPool):
            ndis.NdisFreePacketPool(pool)
        elif pool is not None:
            ndis.NdisFreeBufferPool(pool)


def free_buffers(packet: NDIS_PACKET) -> None:
    """Unchain every buffer descriptor of ``packet`` and free it (the packet stays)."""
    buffer = NdisUnchainBufferAtFront(packet)
    while buffer is not None:
        NdisFreeBuffer(buffer)
        buffer = NdisUnchainBufferAtFront(packet)


def free_packet(packet: NDIS_PACKET) -> None:
    """Free ``packet`` and every buffer descriptor chained to it."""
    free_buffers(packet)
    NdisFreePacket(packet)


# --- OID answers --------------------------------------------------------------------------------


def answer(oid: int, answers: Mapping[int, Any]) -> tuple[NDIS_STATUS, Any]:
    """MiniportQueryInformation(Oid) -> (SUCCESS, value) | (INVALID_OID, None)."""
    if oid in answers:
        return _SUCCESS, answers[oid]
    return NDIS_STATUS.INVALID_OID, None


def ethernet_answers(
    *,
    address: bytes,
    mac_options: int,
    max_send_packets: int,
    packet_filter: int,
    connected: bool = True,
    link_speed: int = GIGABIT,
    max_total_size: int = 1514,
) -> dict[int, Any]:
    """The OIDs an 802.3 NIC answers (its current address is its permanent one)."""
    return {
        OID_GEN_MAXIMUM_TOTAL_SIZE: max_total_size,
        OID_802_3_CURRENT_ADDRESS: address,
        OID_802_3_PERMANENT_ADDRESS: address,
        OID_GEN_MAC_OPTIONS: int(mac_options),
        OID_GEN_MEDIA_CONNECT_STATUS: NdisMediaStateConnected
        if connected
        else NdisMediaStateDisconnected,
        OID_GEN_LINK_SPEED: link_speed,
        OID_GEN_MAXIMUM_SEND_PACKETS: max_send_packets,
        OID_GEN_CURRENT_PACKET_FILTER: packet_filter,
    }


# --- small steps --------------------------------------------------------------------------------


def order_batch(batch: list[Any], order: str, random: Random) -> None:
    """Put a batch of completions in ``order`` (one of :data:`COMPLETION_ORDERS`), in place."""
    if order == "reverse":
        batch.reverse()
    elif order == "random":
        random.shuffle(batch)


def lookahead_frame(header: Any, header_size: int, lookahead: Any, lookahead_size: int) -> bytes:
    """A copy of the frame of a lookahead indication (ProtocolReceive): header, lookahead."""
    return bytes(memoryview(header)[:header_size]) + bytes(memoryview(lookahead)[:lookahead_size])


def pick(items: Mapping[str, T], name: str | None, owner: str, what: str) -> T:
    """``items[name]``, or with no name the only item (LookupError if there are several)."""
    if name is None:
        if len(items) != 1:
            raise LookupError(f"{owner} has {len(items)} {what}; name one")
        return next(iter(items.values()))
    return items[name]


# --- the sample drivers ----------------------------------------------------------------------


class SampleProtocol5:
    """Base of an NDIS 5.1 sample protocol driver (ndisprot5, coclient5, cmproto5)."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis
    name: str
    handle: DriverBlock | None

    def register(self, ndis: Ndis) -> NDIS_STATUS:
        """DriverEntry: NdisRegisterProtocol, keep the handle. The adapters present are offered
        later (ProtocolBindAdapter from PASSIVE work items: run the scheduler)."""
        self.ndis = ndis
        status, handle = ndis.NdisRegisterProtocol(self, 5, 1, self.name)
        if status == _SUCCESS:
            self.handle = handle
        return status


class BindingContext5(Protocol):
    """A sample protocol's ProtocolBindingContext, with pools of its own."""

    def allocate(self) -> NDIS_STATUS: ...

    def free(self) -> None: ...


def open_ethernet(
    ndis: Ndis,
    handle: DriverBlock,
    context: BindingContext5,
    device: str,
    failures: list[tuple[str, NDIS_STATUS]],
) -> tuple[NDIS_STATUS, OpenBlock | None]:
    """ProtocolBindAdapter's first steps: ``context.allocate()``, then NdisOpenAdapter (802.3)
    with ``context`` as the ProtocolBindingContext. -> (SUCCESS, binding) | (failure, None),
    the failure undone (``context.free()``) and recorded in ``failures``."""
    status = context.allocate()
    if status != _SUCCESS:
        failures.append((device, status))
        return status, None
    code, _open_error, binding, _index = ndis.NdisOpenAdapter(
        handle, context, [NdisMedium802_3], device
    )
    status = NDIS_STATUS(code)
    if status != _SUCCESS or binding is None:
        context.free()
        failures.append((device, status))
        return status, None
    return _SUCCESS, binding


# --- the 802.3 sample miniport ------------------------------------------------------------------


class EthernetAdapter5:
    """Base of an 802.3 sample adapter context: its OID answers and its packet filter
    (``packet_filter``, which OID_GEN_CURRENT_PACKET_FILTER sets)."""

    __slots__ = ()
    name: str
    deserialized: bool
    packet_filter: int

    def oid_answers(self) -> Mapping[int, Any]:
        """The OID values this adapter answers now (see :func:`ethernet_answers`)."""
        raise NotImplementedError

    def query(self, oid: int) -> tuple[NDIS_STATUS, Any]:
        """MiniportQueryInformation for this adapter."""
        return answer(oid, self.oid_answers())


class EthernetMiniport5:
    """Handlers every NDIS 5.1 802.3 sample miniport has (null5, loopback5, simnic5).

    A subclass makes its adapter context in :meth:`new_adapter` and may take resources in
    :meth:`start_adapter` (a failure status fails the initialization) and give them back in
    :meth:`stop_adapter`; its send, reset and return handlers are its own.
    """

    NDIS_VERSION = (5, 1)
    ndis: Ndis
    adapters: dict[str, Any]

    def new_adapter(self, handle: MiniportBlock, config: AdapterConfig) -> EthernetAdapter5:
        raise NotImplementedError

    def start_adapter(self, adapter: Any) -> NDIS_STATUS:
        return _SUCCESS

    def stop_adapter(self, adapter: Any) -> None:
        """Give back what :meth:`start_adapter` took (nothing by default)."""

    def MiniportInitialize(
        self,
        MediumArray: Sequence[int],
        MiniportAdapterHandle: MiniportBlock,
        WrapperConfigurationContext: AdapterConfig,
    ) -> tuple[NDIS_STATUS, int]:
        """MiniportInitialize -> [resources] -> NdisMSetAttributesEx (deserialized or not)
        -> (SUCCESS, index of 802.3) | (UNSUPPORTED_MEDIA | a resource failure, 0).
        PASSIVE_LEVEL."""
        if NdisMedium802_3 not in MediumArray:
            return NDIS_STATUS.UNSUPPORTED_MEDIA, 0
        adapter = self.new_adapter(MiniportAdapterHandle, WrapperConfigurationContext)
        status = self.start_adapter(adapter)
        if status != _SUCCESS:
            return status, 0
        flags = NDIS_ATTRIBUTE_DESERIALIZE if adapter.deserialized else 0
        self.ndis.NdisMSetAttributesEx(MiniportAdapterHandle, adapter, 0, flags, 0)
        self.adapters[adapter.name] = adapter
        return _SUCCESS, list(MediumArray).index(NdisMedium802_3)

    def MiniportHalt(self, MiniportAdapterContext: Any) -> None:
        """MiniportHalt (PASSIVE_LEVEL, once, after every send completed and every receive
        packet came back): give back the adapter's resources."""
        self.stop_adapter(MiniportAdapterContext)
        self.adapters.pop(MiniportAdapterContext.name, None)

    def MiniportQueryInformation(
        self, MiniportAdapterContext: Any, Oid: int
    ) -> tuple[NDIS_STATUS, Any]:
        """MiniportQueryInformation(Oid) -> (SUCCESS, value) | (INVALID_OID, None)."""
        adapter: EthernetAdapter5 = MiniportAdapterContext
        return adapter.query(Oid)

    def MiniportSetInformation(
        self, MiniportAdapterContext: Any, Oid: int, Value: Any
    ) -> NDIS_STATUS:
        """MiniportSetInformation(Oid, value): the packet filter -> SUCCESS; else INVALID_OID."""
        if Oid == OID_GEN_CURRENT_PACKET_FILTER:
            MiniportAdapterContext.packet_filter = int(Value)
            return _SUCCESS
        return NDIS_STATUS.INVALID_OID


__all__ = [
    "COMPLETION_ORDERS",
    "GIGABIT",
    "BindingContext5",
    "EthernetAdapter5",
    "EthernetMiniport5",
    "SampleProtocol5",
    "allocate_pools",
    "answer",
    "ethernet_answers",
    "free_buffers",
    "free_packet",
    "free_pools",
    "lookahead_frame",
    "open_ethernet",
    "order_batch",
    "pick",
]
