"""A pass-through intermediate driver (NDIS 5.1): a protocol below, a miniport above.

Theory of operation
-------------------
One driver object registers twice, like the passthru sample's DriverEntry: as a miniport
(``NdisMRegisterMiniport(..., intermediate=True)``, its upper edge) and as a protocol
(``NdisRegisterProtocol(..., intermediate=True)``, its lower edge). For every adapter it binds
below it creates one virtual adapter above (``ndis.add_adapter`` for its own miniport handle,
standing in for NdisIMInitializeDeviceInstanceEx), named ``<lower name><suffix>``. Both edges
share one context per pair, a :class:`PtAdapter`: it is the ProtocolBindingContext below and
the MiniportAdapterContext above. The upper edge is deserialized.

Sends (rule: an intermediate driver repackages, it never forwards, NdisSend page)::

    MiniportSendPackets(P1..Pn)                              (from NDIS, above)
      -> per Pi: NdisAllocatePacket(own send pool) -> Mi
                 Mi shares Pi's buffer chain (NDIS_PACKET_FIRST/LAST_NDIS_BUFFER, as in C),
                 flags, OOB data and per-packet info are copied,
                 Mi's OriginalPacketInfo slot remembers Pi
                 | no descriptor: NdisMSendComplete(Pi, RESOURCES)
      -> NdisSendPackets(M1..Mk) below (``lower_send="packets"``, default)
         or NdisSend(Mi) each (``lower_send="send"``; non-PENDING = Mi is back at once)
    ProtocolSendComplete(Mi, status)                         (from NDIS, below)
      -> free Mi -> NdisMSendComplete(Pi, status) above: exactly once, with the lower status

Receives::

    ProtocolReceivePacket(L) -> NdisAllocatePacket(own receive pool) -> R sharing L's chain
      -> NdisMIndicateReceivePacket(R) above, with L's status
      -> R's Status not PENDING (RESOURCES, or nobody above kept R): R is ours again,
         free R, return 0 (L not kept)
      -> Status PENDING: return 1 (we keep L); MiniportReturnPacket(R) later -> free R
         -> NdisReturnPackets(L)

Requests on the virtual adapter are passed to the lower binding (so the upper protocols' packet
filter becomes the lower binding's filter), status indications are passed up. Loopback: the
virtual adapter reports the lower adapter's MAC options, and the lower binding asks for
NDIS_PROT_OPTION_NO_LOOPBACK, so a frame is looped back once, by whichever layer owns loopback
(rules 51, 55, 56).

Unbinding below removes the virtual adapter first (its protocols unbind, its miniport halts),
then closes the lower binding and frees the pools.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_ATTRIBUTE_DESERIALIZE,
    NDIS_ATTRIBUTE_IGNORE_PACKET_TIMEOUT,
    NDIS_ATTRIBUTE_IGNORE_REQUEST_TIMEOUT,
    NDIS_ATTRIBUTE_INTERMEDIATE_DRIVER,
    NDIS_PROT_OPTION_NO_LOOPBACK,
    OID_GEN_PROTOCOL_OPTIONS,
    MaxPerPacketInfo,
    NdisMedium802_3,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
    OriginalPacketInfo,
)
from ..errors import IntermediateContractError
from ..mdl import MDL, NdisAllocateBuffer
from ..packet import (
    NDIS_GET_PACKET_HEADER_SIZE,
    NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_GET_PACKET_STATUS,
    NDIS_GET_PACKET_TIME_RECEIVED,
    NDIS_GET_PACKET_TIME_TO_SEND,
    NDIS_PACKET,
    NDIS_PER_PACKET_INFO_FROM_PACKET,
    NDIS_SET_PACKET_HEADER_SIZE,
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_SET_PACKET_STATUS,
    NDIS_SET_PACKET_TIME_RECEIVED,
    NDIS_SET_PACKET_TIME_TO_SEND,
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET,
    NdisChainBufferAtFront,
    NdisGetPacketFlags,
    NdisSetPacketFlags,
)
from ..pools import NdisAllocatePacket, NdisFreePacket, NdisReinitializePacket
from ..status import NDIS_STATUS
from .common5 import free_packet, free_pools, lookahead_frame, open_ethernet, pick

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.binding import OpenBlock
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES

ATTRIBUTES = int(
    NDIS_ATTRIBUTE_DESERIALIZE
    | NDIS_ATTRIBUTE_INTERMEDIATE_DRIVER
    | NDIS_ATTRIBUTE_IGNORE_PACKET_TIMEOUT
    | NDIS_ATTRIBUTE_IGNORE_REQUEST_TIMEOUT
)


# --- the buffer-chain macros of ndis.h (lvalues in C) -----------------------------------------


def NDIS_PACKET_FIRST_NDIS_BUFFER(Packet: NDIS_PACKET) -> MDL | None:
    return Packet.Private.Head


def NDIS_PACKET_LAST_NDIS_BUFFER(Packet: NDIS_PACKET) -> MDL | None:
    return Packet.Private.Tail


def share_chain(Destination: NDIS_PACKET, Source: NDIS_PACKET) -> None:
    """``NDIS_PACKET_FIRST_NDIS_BUFFER(D) = NDIS_PACKET_FIRST_NDIS_BUFFER(S)`` and the same for
    the last buffer, as the C sample does: D describes S's buffers without re-chaining them
    (they stay chained to S; D must let go with NdisReinitializePacket before it is freed)."""
    private = Destination.Private
    private.Head = NDIS_PACKET_FIRST_NDIS_BUFFER(Source)
    private.Tail = NDIS_PACKET_LAST_NDIS_BUFFER(Source)
    private.ValidCounts = False


def copy_send_info(Destination: NDIS_PACKET, Source: NDIS_PACKET) -> None:
    """Flags, OOB data (time to send, header size, media-specific information) and every
    per-packet info slot (NdisIMCopySendPerPacketInfo) from ``Source`` to ``Destination``."""
    NdisSetPacketFlags(Destination, NdisGetPacketFlags(Source))
    NDIS_SET_PACKET_TIME_TO_SEND(Destination, NDIS_GET_PACKET_TIME_TO_SEND(Source))
    NDIS_SET_PACKET_HEADER_SIZE(Destination, NDIS_GET_PACKET_HEADER_SIZE(Source))
    info, size = NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(Source)
    if info is not None and size:
        NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(Destination, info, size)
    for slot in range(MaxPerPacketInfo):
        value = NDIS_PER_PACKET_INFO_FROM_PACKET(Source, slot)
        if value is not None:
            NDIS_SET_PER_PACKET_INFO_FROM_PACKET(Destination, slot, value)


class PtAdapter:
    """One lower binding and its virtual adapter (ProtocolBindingContext below,
    MiniportAdapterContext above)."""

    def __init__(self, driver: Passthru5, lower_name: str, virtual_name: str) -> None:
        self.driver = driver
        self.ndis = driver.ndis
        self.lower_name = lower_name
        self.virtual_name = virtual_name
        #: NdisBindingHandle below
        self.lower: OpenBlock | None = None
        #: MiniportAdapterHandle above (set by MiniportInitialize, cleared by MiniportHalt)
        self.upper: MiniportBlock | None = None
        self.send_pool: PacketPool | None = None
        self.recv_pool: PacketPool | None = None
        self.buffer_pool: BufferPool | None = None
        #: receive packet kept above (Status PENDING) -> the lower packet it repackages
        self.recv_map: dict[NDIS_PACKET, NDIS_PACKET] = {}
        self.unbinding = False
        self.closed = False
        self.sent_down = 0
        self.completed_up = 0
        self.refused = 0
        self.received_up = 0
        self.returned_down = 0
        self.rx_dropped = 0

    def allocate(self) -> NDIS_STATUS:
        """The send and receive packet pools and the buffer pool (``pool`` descriptors each)."""
        ndis = self.ndis
        size = self.driver.pool
        status, send_pool = ndis.NdisAllocatePacketPool(size, 16)
        if status != _SUCCESS or send_pool is None:
            return _RESOURCES
        status, recv_pool = ndis.NdisAllocatePacketPool(size, 16)
        if status != _SUCCESS or recv_pool is None:
            ndis.NdisFreePacketPool(send_pool)
            return _RESOURCES
        status, buffers = ndis.NdisAllocateBufferPool(size)
        if status != _SUCCESS:
            ndis.NdisFreePacketPool(send_pool)
            ndis.NdisFreePacketPool(recv_pool)
            return _RESOURCES
        self.send_pool, self.recv_pool, self.buffer_pool = send_pool, recv_pool, buffers
        return _SUCCESS

    def free(self) -> None:
        free_pools(self.ndis, self.send_pool, self.recv_pool, self.buffer_pool)
        self.send_pool = self.recv_pool = None
        self.buffer_pool = None

    def __repr__(self) -> str:
        return (
            f"<PtAdapter {self.lower_name!r} -> {self.virtual_name!r} down={self.sent_down} "
            f"up={self.completed_up}>"
        )


class Passthru5:
    """The pass-through intermediate driver. ``register(ndis)`` it."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def __init__(
        self,
        *,
        name: str = "passthru",
        suffix: str = "-pt",
        pool: int = 64,
        lower_send: str = "packets",
        bind_to: Iterable[str] | None = None,
    ) -> None:
        if lower_send not in ("packets", "send"):
            raise ValueError(f"lower_send={lower_send!r}: 'packets' or 'send'")
        self.name = name
        self.suffix = suffix
        self.pool = pool
        self.lower_send = lower_send
        self.bind_to = set(bind_to) if bind_to is not None else None
        self.miniport_handle: DriverBlock | None = None
        self.protocol_handle: DriverBlock | None = None
        #: lower adapter name -> its PtAdapter
        self.adapters: dict[str, PtAdapter] = {}
        self.virtual_names: set[str] = set()
        self.bind_failures: list[tuple[str, NDIS_STATUS]] = []

    # --- DriverEntry ------------------------------------------------------------------------------
    def register(self, ndis: Ndis) -> NDIS_STATUS:
        """NdisMRegisterMiniport (intermediate) then NdisRegisterProtocol (intermediate); the
        adapters present are offered later (ProtocolBindAdapter, PASSIVE work items)."""
        self.ndis = ndis
        status, mp = ndis.NdisMRegisterMiniport(self, 5, 1, f"{self.name}-mp", intermediate=True)
        if status != _SUCCESS:
            return status
        self.miniport_handle = mp
        status, prot = ndis.NdisRegisterProtocol(self, 5, 1, self.name, intermediate=True)
        if status != _SUCCESS:
            return status
        self.protocol_handle = prot
        return _SUCCESS

    def adapter(self, lower_name: str | None = None) -> PtAdapter:
        """The pair over ``lower_name`` (or the only one)."""
        return pick(self.adapters, lower_name, self.name, "adapters")

    # === lower edge: the protocol =================================================================
    def ProtocolBindAdapter(
        self, BindContext: Any, DeviceName: str, SystemSpecific1: Any, SystemSpecific2: Any
    ) -> NDIS_STATUS:
        """ProtocolBindAdapter -> NdisOpenAdapter below -> add the virtual adapter above.
        Never binds to its own virtual adapters."""
        if DeviceName in self.virtual_names:
            return NDIS_STATUS.NOT_ACCEPTED
        if self.bind_to is not None and DeviceName not in self.bind_to:
            return NDIS_STATUS.NOT_ACCEPTED
        return self._bind(DeviceName)

    def _bind(self, lower_name: str) -> NDIS_STATUS:
        assert self.protocol_handle is not None and self.miniport_handle is not None
        ndis = self.ndis
        virtual_name = f"{lower_name}{self.suffix}"
        pt = PtAdapter(self, lower_name, virtual_name)
        status, binding = open_ethernet(
            ndis, self.protocol_handle, pt, lower_name, self.bind_failures
        )
        if binding is None:
            return status
        pt.lower = binding
        self.adapters[lower_name] = pt
        # Our own sends must not come back to us from below: loopback is done above.
        ndis.NdisRequest(
            binding,
            NdisRequestSetInformation,
            OID_GEN_PROTOCOL_OPTIONS,
            NDIS_PROT_OPTION_NO_LOOPBACK,
        )
        self.virtual_names.add(virtual_name)
        status, _block = ndis.add_adapter(self.miniport_handle, virtual_name, DeviceContext=pt)
        if status != _SUCCESS:
            self.bind_failures.append((virtual_name, NDIS_STATUS(status)))
        return NDIS_STATUS(status)

    def ProtocolUnbindAdapter(self, ProtocolBindingContext: PtAdapter, UnbindContext: Any) -> None:
        """ProtocolUnbindAdapter -> remove the virtual adapter (its protocols unbind, its
        miniport halts) -> NdisCloseAdapter below -> [ProtocolCloseAdapterComplete] -> free."""
        pt = ProtocolBindingContext
        pt.unbinding = True
        if pt.upper is not None:
            self.ndis.remove_adapter(pt.upper)
        self._close_lower(pt)

    def _close_lower(self, pt: PtAdapter) -> None:
        if pt.lower is None or pt.closed:
            return
        status = NDIS_STATUS(self.ndis.NdisCloseAdapter(pt.lower))
        if status != _PENDING:
            self._lower_closed(pt)

    def ProtocolCloseAdapterComplete(self, ProtocolBindingContext: PtAdapter, Status: int) -> None:
        self._lower_closed(ProtocolBindingContext)

    def _lower_closed(self, pt: PtAdapter) -> None:
        pt.closed = True
        pt.lower = None
        pt.free()
        self.adapters.pop(pt.lower_name, None)
        self.virtual_names.discard(pt.virtual_name)

    def ProtocolSendComplete(
        self, ProtocolBindingContext: PtAdapter, Packet: NDIS_PACKET, Status: int
    ) -> None:
        """ProtocolSendComplete(Mi, status) -> free Mi -> NdisMSendComplete(Pi, status) above."""
        self._finish_send(ProtocolBindingContext, Packet, Status)

    def ProtocolReceivePacket(self, ProtocolBindingContext: PtAdapter, Packet: NDIS_PACKET) -> int:
        """ProtocolReceivePacket(L) -> indicate a repackaged R above -> 1 (R's Status is PENDING:
        L kept until MiniportReturnPacket(R)) | 0 (R is back already, or no descriptor)."""
        pt = ProtocolBindingContext
        if pt.upper is None or pt.recv_pool is None:
            pt.rx_dropped += 1
            return 0
        status, mine = NdisAllocatePacket(pt.recv_pool)
        if status != _SUCCESS or mine is None:
            pt.rx_dropped += 1
            return 0
        share_chain(mine, Packet)
        NdisSetPacketFlags(mine, NdisGetPacketFlags(Packet))
        NDIS_SET_PACKET_HEADER_SIZE(mine, NDIS_GET_PACKET_HEADER_SIZE(Packet))
        NDIS_SET_PACKET_TIME_RECEIVED(mine, NDIS_GET_PACKET_TIME_RECEIVED(Packet))
        original = NDIS_PER_PACKET_INFO_FROM_PACKET(Packet, OriginalPacketInfo) or Packet
        NDIS_SET_PER_PACKET_INFO_FROM_PACKET(mine, OriginalPacketInfo, original)
        NDIS_SET_PACKET_STATUS(mine, NDIS_GET_PACKET_STATUS(Packet))
        pt.received_up += 1
        self.ndis.NdisMIndicateReceivePacket(pt.upper, [mine], 1)
        if NDIS_GET_PACKET_STATUS(mine) != _PENDING:
            self._free_repackaged(mine)
            return 0
        pt.recv_map[mine] = Packet
        return 1

    def ProtocolReceive(
        self,
        ProtocolBindingContext: PtAdapter,
        MacReceiveContext: Any,
        HeaderBuffer: Any,
        HeaderBufferSize: int,
        LookAheadBuffer: Any,
        LookaheadBufferSize: int,
        PacketSize: int,
    ) -> NDIS_STATUS:
        """ProtocolReceive (lookahead indication below) -> copy the frame into a packet of our
        own, indicate it above with RESOURCES (receivers copy) -> SUCCESS | NOT_ACCEPTED."""
        pt = ProtocolBindingContext
        if pt.upper is None or pt.recv_pool is None or LookaheadBufferSize < PacketSize:
            pt.rx_dropped += 1
            return NDIS_STATUS.NOT_ACCEPTED
        frame = lookahead_frame(
            HeaderBuffer, HeaderBufferSize, LookAheadBuffer, LookaheadBufferSize
        )
        status, mine = NdisAllocatePacket(pt.recv_pool)
        if status != _SUCCESS or mine is None:
            pt.rx_dropped += 1
            return NDIS_STATUS.NOT_ACCEPTED
        assert pt.buffer_pool is not None
        status, buffer = NdisAllocateBuffer(pt.buffer_pool, frame, len(frame))
        if status != _SUCCESS or buffer is None:
            NdisFreePacket(mine)
            pt.rx_dropped += 1
            return NDIS_STATUS.NOT_ACCEPTED
        NdisChainBufferAtFront(mine, buffer)
        NDIS_SET_PACKET_HEADER_SIZE(mine, HeaderBufferSize)
        NDIS_SET_PACKET_STATUS(mine, _RESOURCES)
        pt.received_up += 1
        self.ndis.NdisMIndicateReceivePacket(pt.upper, [mine], 1)
        free_packet(mine)
        return _SUCCESS

    def ProtocolReceiveComplete(self, ProtocolBindingContext: PtAdapter) -> None:
        """ProtocolReceiveComplete below: nothing is batched above, nothing to do."""

    def ProtocolStatus(
        self,
        ProtocolBindingContext: PtAdapter,
        GeneralStatus: int,
        StatusBuffer: Any,
        StatusBufferSize: int,
    ) -> None:
        """ProtocolStatus below -> NdisMIndicateStatus above (media state, resets...)."""
        pt = ProtocolBindingContext
        if pt.upper is not None:
            self.ndis.NdisMIndicateStatus(pt.upper, GeneralStatus, StatusBuffer, StatusBufferSize)

    def ProtocolStatusComplete(self, ProtocolBindingContext: PtAdapter) -> None:
        pt = ProtocolBindingContext
        if pt.upper is not None:
            self.ndis.NdisMIndicateStatusComplete(pt.upper)

    def ProtocolOpenAdapterComplete(
        self, ProtocolBindingContext: PtAdapter, Status: int, OpenErrorStatus: int
    ) -> None:
        """Never called in the model (NdisOpenAdapter completes synchronously)."""

    def ProtocolResetComplete(self, ProtocolBindingContext: PtAdapter, Status: int) -> None:
        """We never ask for a reset below."""

    def ProtocolRequestComplete(
        self, ProtocolBindingContext: PtAdapter, NdisRequest: Any, Status: int
    ) -> None:
        """Requests complete synchronously in the model."""

    # === upper edge: the miniport =================================================================
    def MiniportInitialize(
        self,
        MediumArray: Sequence[int],
        MiniportAdapterHandle: MiniportBlock,
        WrapperConfigurationContext: AdapterConfig,
    ) -> tuple[NDIS_STATUS, int]:
        """MiniportInitialize (for the DeviceContext our ProtocolBindAdapter gave) ->
        NdisMSetAttributesEx(deserialized, intermediate) -> (SUCCESS, index of 802.3)."""
        pt = WrapperConfigurationContext.get("DeviceContext")
        if not isinstance(pt, PtAdapter) or pt.lower is None:
            return NDIS_STATUS.ADAPTER_NOT_FOUND, 0
        if NdisMedium802_3 not in MediumArray:
            return NDIS_STATUS.UNSUPPORTED_MEDIA, 0
        pt.upper = MiniportAdapterHandle
        self.ndis.NdisMSetAttributesEx(MiniportAdapterHandle, pt, 0, ATTRIBUTES, 0)
        return _SUCCESS, list(MediumArray).index(NdisMedium802_3)

    def MiniportHalt(self, MiniportAdapterContext: PtAdapter) -> None:
        """MiniportHalt: the virtual adapter goes; unless the lower binding is being unbound
        (which removed us), close it too."""
        pt = MiniportAdapterContext
        pt.upper = None
        if not pt.unbinding:
            self._close_lower(pt)

    def MiniportReset(self, MiniportAdapterContext: PtAdapter) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset -> (SUCCESS, False): nothing of ours to reset."""
        return _SUCCESS, False

    def MiniportQueryInformation(
        self, MiniportAdapterContext: PtAdapter, Oid: int
    ) -> tuple[NDIS_STATUS, Any]:
        """MiniportQueryInformation -> NdisRequest(query) on the lower binding."""
        pt = MiniportAdapterContext
        if pt.lower is None:
            return NDIS_STATUS.ADAPTER_NOT_READY, None
        status, value = self.ndis.NdisRequest(pt.lower, NdisRequestQueryInformation, Oid)
        return NDIS_STATUS(status), value

    def MiniportSetInformation(
        self, MiniportAdapterContext: PtAdapter, Oid: int, Value: Any
    ) -> NDIS_STATUS:
        """MiniportSetInformation -> NdisRequest(set) on the lower binding (packet filter...)."""
        pt = MiniportAdapterContext
        if pt.lower is None:
            return NDIS_STATUS.ADAPTER_NOT_READY
        status, _ = self.ndis.NdisRequest(pt.lower, NdisRequestSetInformation, Oid, Value)
        return NDIS_STATUS(status)

    def MiniportSendPackets(
        self,
        MiniportAdapterContext: PtAdapter,
        PacketArray: Sequence[NDIS_PACKET],
        NumberOfPackets: int,
    ) -> None:
        """MiniportSendPackets(P1..Pn) -> repackage each -> NdisSendPackets / NdisSend below;
        every Pi gets exactly one NdisMSendComplete, with the status its Mi got below."""
        pt = MiniportAdapterContext
        ndis = self.ndis
        upper = pt.upper
        if upper is None:
            raise IntermediateContractError(
                f"{pt!r}: MiniportSendPackets on a halted virtual adapter", rule="PY-PASSTHRU"
            )
        mine: list[NDIS_PACKET] = []
        for i in range(NumberOfPackets):
            original = PacketArray[i]
            NDIS_SET_PACKET_STATUS(original, _PENDING)
            packet = self._repackage(pt, original)
            if packet is None:
                pt.refused += 1
                refusal = NDIS_STATUS.CLOSING if pt.lower is None or pt.unbinding else _RESOURCES
                ndis.NdisMSendComplete(upper, original, refusal)
                continue
            mine.append(packet)
        if not mine:
            return
        lower = pt.lower
        assert lower is not None
        pt.sent_down += len(mine)
        if self.lower_send == "packets":
            ndis.NdisSendPackets(lower, mine, len(mine))
            return
        for packet in mine:
            status = ndis.NdisSend(lower, packet)
            if status != _PENDING:
                self._finish_send(pt, packet, status)

    def MiniportReturnPacket(self, MiniportAdapterContext: PtAdapter, Packet: NDIS_PACKET) -> None:
        """MiniportReturnPacket(R) (only for an R kept above) -> free R -> NdisReturnPackets(L)
        below."""
        pt = MiniportAdapterContext
        lower_packet = pt.recv_map.pop(Packet)
        self._free_repackaged(Packet)
        pt.returned_down += 1
        self.ndis.NdisReturnPackets([lower_packet], 1)

    # --- repackaging ----------------------------------------------------------------------------
    def _repackage(self, pt: PtAdapter, original: NDIS_PACKET) -> NDIS_PACKET | None:
        if pt.lower is None or pt.unbinding or pt.send_pool is None:
            return None
        status, packet = NdisAllocatePacket(pt.send_pool)
        if status != _SUCCESS or packet is None:
            return None
        share_chain(packet, original)
        copy_send_info(packet, original)
        NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, OriginalPacketInfo, original)
        return packet

    def _finish_send(self, pt: PtAdapter, packet: NDIS_PACKET, status: int) -> None:
        original = NDIS_PER_PACKET_INFO_FROM_PACKET(packet, OriginalPacketInfo)
        if not isinstance(original, NDIS_PACKET):
            raise IntermediateContractError(
                f"{pt!r}: completion of {packet!r}, which carries no original packet",
                rule="PY-PASSTHRU",
            )
        self._free_repackaged(packet)
        pt.completed_up += 1
        upper = pt.upper
        if upper is None:
            raise IntermediateContractError(
                f"{pt!r}: a send completed below after the virtual adapter halted",
                rule="PY-PASSTHRU",
            )
        self.ndis.NdisMSendComplete(upper, original, status)

    @staticmethod
    def _free_repackaged(packet: NDIS_PACKET) -> None:
        """Let go of the shared chain (Head = NULL) and return the descriptor to its pool."""
        NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, OriginalPacketInfo, None)
        NdisReinitializePacket(packet)
        NdisFreePacket(packet)


__all__ = [
    "NDIS_PACKET_FIRST_NDIS_BUFFER",
    "NDIS_PACKET_LAST_NDIS_BUFFER",
    "Passthru5",
    "PtAdapter",
    "copy_send_info",
    "share_chain",
]
