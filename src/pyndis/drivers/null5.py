"""The null miniport (NDIS 5.1): a NIC that finishes every send at once and sends nothing.

Theory of operation
-------------------
The null miniport is the cheapest driver the NDIS 5.x send path can talk to, so it is the
benchmark's miniport and the baseline of the send-path tests: whatever a send through it costs
is the library's cost. It never touches payload bytes; it only counts.

One driver object serves any number of adapters; each adapter's state is a :class:`NullAdapter`,
the ``MiniportAdapterContext``. The model-level knobs are registry keywords of
``ndis.add_adapter(handle, name, **keywords)``, read in ``MiniportInitialize``:

==================  ============================================================================
``deserialized``     False (default): a serialized miniport; True: NDIS_ATTRIBUTE_DESERIALIZE.
``send_status``      the status each send finishes with (default NDIS_STATUS_SUCCESS).
``address``          the current MAC address (default 02:00:00:00:00:01).
``no_loopback``      report NDIS_MAC_OPTION_NO_LOOPBACK (default True: NDIS loops back).
``max_send_packets`` OID_GEN_MAXIMUM_SEND_PACKETS (default 64).
==================  ============================================================================

How a send finishes (rules 20-22 and 26):

* serialized ``MiniportSend`` returns the status: the packet is back with NDIS on return;
* serialized ``MiniportSendPackets`` writes the status into every packet's OOB block;
* deserialized handlers call ``NdisMSendComplete`` for every packet *before* they return (the
  completion-inside-the-send-call case every NDIS must survive) and return PENDING.

Which send handlers the driver supplies is a property of the driver, not of an adapter, so it
is a choice of class: :class:`NullMiniport` (MiniportSend), :class:`NullMiniportPackets`
(MiniportSendPackets) and :class:`NullMiniportBoth` (both; NDIS then calls only
MiniportSendPackets, rule 20).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_MAC_OPTION_TRANSFERS_NOT_PEND,
)
from ..packet import NDIS_PACKET, NDIS_SET_PACKET_STATUS
from ..status import NDIS_STATUS
from .common5 import EthernetAdapter5, EthernetMiniport5, ethernet_answers

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.kernel import Ndis

DEFAULT_ADDRESS = b"\x02\x00\x00\x00\x00\x01"

_PENDING = NDIS_STATUS.PENDING


class NullAdapter(EthernetAdapter5):
    """One null adapter (its MiniportAdapterContext)."""

    __slots__ = (
        "address",
        "deserialized",
        "handle",
        "mac_options",
        "max_send_packets",
        "name",
        "packet_filter",
        "resets",
        "send_status",
        "sent",
    )

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        #: the MiniportAdapterHandle NDIS gave us (the only thing we keep of NDIS)
        self.handle = handle
        self.name = config.name
        self.deserialized = bool(config.get("deserialized", False))
        self.send_status = int(config.get("send_status", NDIS_STATUS.SUCCESS))
        if self.send_status == _PENDING:
            raise ValueError("send_status=PENDING: a null miniport never keeps a packet")
        self.address = bytes(config.get("address", DEFAULT_ADDRESS))
        no_loopback = bool(config.get("no_loopback", True))
        self.mac_options = NDIS_MAC_OPTION_TRANSFERS_NOT_PEND | (
            NDIS_MAC_OPTION_NO_LOOPBACK if no_loopback else 0
        )
        self.max_send_packets = int(config.get("max_send_packets", 64))
        self.packet_filter = 0
        #: packets handed to us (each one finished at once)
        self.sent = 0
        self.resets = 0

    def oid_answers(self) -> dict[int, Any]:
        return ethernet_answers(
            address=self.address,
            mac_options=self.mac_options,
            max_send_packets=self.max_send_packets,
            packet_filter=self.packet_filter,
        )

    def __repr__(self) -> str:
        kind = "deserialized" if self.deserialized else "serialized"
        return f"<NullAdapter {self.name!r} {kind} sent={self.sent}>"


class _NullBase(EthernetMiniport5):
    """Handlers every null miniport has (MiniportInitialize, the OID handlers and MiniportHalt
    are the 802.3 samples' own, :class:`~.common5.EthernetMiniport5`); the send handlers are
    in the subclasses."""

    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, NullAdapter] = {}

    def new_adapter(self, handle: MiniportBlock, config: AdapterConfig) -> NullAdapter:
        return NullAdapter(handle, config)

    # --- life cycle ----------------------------------------------------------------------------
    def MiniportReset(self, MiniportAdapterContext: NullAdapter) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset -> (SUCCESS, AddressingReset=False): nothing is ever in flight."""
        MiniportAdapterContext.resets += 1
        return NDIS_STATUS.SUCCESS, False


class NullMiniport(_NullBase):
    """A null miniport that supplies MiniportSend."""

    def MiniportSend(
        self, MiniportAdapterContext: NullAdapter, Packet: NDIS_PACKET, Flags: int
    ) -> int:
        """MiniportSend -> send_status (serialized: the packet is back on return)
        | PENDING after NdisMSendComplete(send_status) once, inside this call (deserialized)."""
        a = MiniportAdapterContext
        a.sent += 1
        if a.deserialized:
            self.ndis.NdisMSendComplete(a.handle, Packet, a.send_status)
            return _PENDING
        return a.send_status


class NullMiniportPackets(_NullBase):
    """A null miniport that supplies MiniportSendPackets."""

    def MiniportSendPackets(
        self,
        MiniportAdapterContext: NullAdapter,
        PacketArray: Sequence[NDIS_PACKET],
        NumberOfPackets: int,
    ) -> None:
        """MiniportSendPackets -> for each packet: NDIS_SET_PACKET_STATUS(send_status)
        (serialized) | NDIS_SET_PACKET_STATUS(PENDING), NdisMSendComplete once (deserialized)."""
        a = MiniportAdapterContext
        a.sent += NumberOfPackets
        status = a.send_status
        if a.deserialized:
            complete = self.ndis.NdisMSendComplete
            handle = a.handle
            for i in range(NumberOfPackets):
                packet = PacketArray[i]
                NDIS_SET_PACKET_STATUS(packet, _PENDING)
                complete(handle, packet, status)
        else:
            for i in range(NumberOfPackets):
                NDIS_SET_PACKET_STATUS(PacketArray[i], status)


class NullMiniportBoth(NullMiniport, NullMiniportPackets):
    """Supplies both send handlers; NDIS calls only MiniportSendPackets (rule 20)."""


__all__ = [
    "DEFAULT_ADDRESS",
    "NullAdapter",
    "NullMiniport",
    "NullMiniportBoth",
    "NullMiniportPackets",
]
