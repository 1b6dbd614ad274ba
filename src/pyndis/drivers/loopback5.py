"""A loopback miniport (NDIS 5.1, medium 802.3): every frame sent comes back as a receive.

Theory of operation
-------------------
A send cannot simply be indicated back: the sent packet belongs to its protocol (NDIS lent it
to us), and a receive indication lends a packet of the *miniport's* own to NDIS. So for each
packet sent the loopback driver builds a receive packet from its own packet pool and chains
buffer descriptors from its own buffer pool that describe the *same memory* as the sent
packet's buffers (``NdisQueryBuffer`` + ``NdisAllocateBuffer``): zero copy. The sender cannot
touch that memory until its send completes, and the send completes only after the receive
packet has come back, so the receivers read stable bytes.

Grammar per sent packet::

    MiniportSend(P) -> build R over P's memory -> NdisMIndicateReceivePacket(R)
        -> R's OOB Status not PENDING (indicated with RESOURCES, or no receiver kept it):
               R is back now (no MiniportReturnPacket) -> free R -> complete P at once:
               serialized: MiniportSend returns SUCCESS; deserialized: NdisMSendComplete(P)
           Status PENDING: MiniportSend returns PENDING; MiniportReturnPacket(R) later
               -> free R -> NdisMSendComplete(P) exactly once

When the driver's own pools run dry a serialized loopback returns RESOURCES (NDIS requeues the
packet and resubmits on the next completion, rule 21); a deserialized one queues the packet
itself under a spin lock and loops it once a receive packet comes back (rule 27).

The adapter does its own loopback, so it does not report NDIS_MAC_OPTION_NO_LOOPBACK: NDIS
must not loop back a second copy (rule 51).

Registry keywords: ``deserialized`` (False), ``address`` (02:00:00:00:00:01), ``pool`` (receive
packets, 32), ``copy`` (False; True indicates with NDIS_STATUS_RESOURCES so receivers must copy
and every packet comes straight back).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ..constants import NDIS_MAC_OPTION_TRANSFERS_NOT_PEND
from ..errors import NdisInternalError
from ..mdl import NdisAllocateBuffer, NdisGetNextBuffer, NdisQueryBuffer
from ..packet import (
    NDIS_GET_PACKET_STATUS,
    NDIS_PACKET,
    NDIS_SET_PACKET_HEADER_SIZE,
    NDIS_SET_PACKET_STATUS,
    NdisChainBufferAtBack,
    NdisQueryPacket,
)
from ..pools import NdisAllocatePacket
from ..status import NDIS_STATUS
from .common5 import (
    EthernetAdapter5,
    EthernetMiniport5,
    allocate_pools,
    ethernet_answers,
    free_packet,
    free_pools,
)

if TYPE_CHECKING:
    from ..irql import NDIS_SPIN_LOCK
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool

DEFAULT_ADDRESS = b"\x02\x00\x00\x00\x00\x01"
ETHERNET_HEADER_SIZE = 14
MAX_BUFFERS_PER_PACKET = 8

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES


class LoopbackAdapter(EthernetAdapter5):
    """One loopback adapter (the MiniportAdapterContext)."""

    def __init__(self, ndis: Ndis, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.ndis = ndis
        self.handle = handle
        self.name = config.name
        self.deserialized = bool(config.get("deserialized", False))
        self.address = bytes(config.get("address", DEFAULT_ADDRESS))
        self.pool_size = int(config.get("pool", 32))
        self.copy = bool(config.get("copy", False))
        self.packet_filter = 0
        self.packet_pool: PacketPool | None = None
        self.buffer_pool: BufferPool | None = None
        #: receive packet a receiver kept -> the sent packet it loops back (our
        #: "MiniportReserved" link)
        self.looping: dict[NDIS_PACKET, NDIS_PACKET] = {}
        #: deserialized: sent packets waiting for a receive packet (rule 27)
        self.backlog: deque[NDIS_PACKET] = deque()
        self.drain_queued = False
        self.lock: NDIS_SPIN_LOCK = ndis.NdisAllocateSpinLock()
        self.looped = 0
        self.resources_returned = 0

    def allocate_resources(self) -> NDIS_STATUS:
        status, self.packet_pool, self.buffer_pool = allocate_pools(
            self.ndis, self.pool_size, self.pool_size * MAX_BUFFERS_PER_PACKET
        )
        return status

    def free_resources(self) -> None:
        free_pools(self.ndis, self.packet_pool, self.buffer_pool)
        self.packet_pool = self.buffer_pool = None
        self.ndis.NdisFreeSpinLock(self.lock)

    # --- building and freeing receive packets -------------------------------------------------
    def build(self, sent: NDIS_PACKET) -> NDIS_PACKET | None:
        """A receive packet over ``sent``'s memory, or None when our pools are empty."""
        assert self.packet_pool is not None and self.buffer_pool is not None
        status, packet = NdisAllocatePacket(self.packet_pool)
        if status != _SUCCESS or packet is None:
            return None
        _physical, _count, buffer, _total = NdisQueryPacket(sent)
        while buffer is not None:
            view, length = NdisQueryBuffer(buffer)
            status, mine = NdisAllocateBuffer(self.buffer_pool, view, length)
            if status != _SUCCESS or mine is None:
                free_packet(packet)
                return None
            NdisChainBufferAtBack(packet, mine)
            buffer = NdisGetNextBuffer(buffer)
        NDIS_SET_PACKET_HEADER_SIZE(packet, ETHERNET_HEADER_SIZE)
        NDIS_SET_PACKET_STATUS(packet, _RESOURCES if self.copy else _SUCCESS)
        return packet

    # --- the loop ------------------------------------------------------------------------------
    def loop(self, sent: NDIS_PACKET) -> NDIS_STATUS:
        """Indicate ``sent`` back. Returns SUCCESS when it is already finished (the receive
        packet's Status is not PENDING: it is ours again), PENDING when a receiver kept the
        receive packet (MiniportReturnPacket follows), RESOURCES when our pools are empty."""
        received = self.build(sent)
        if received is None:
            self.resources_returned += 1
            return _RESOURCES
        self.looped += 1
        self.ndis.scheduler.trace("loopback", self.name)
        self.ndis.NdisMIndicateReceivePacket(self.handle, [received], 1)
        if NDIS_GET_PACKET_STATUS(received) != _PENDING:
            # Back already: the receivers copied (RESOURCES) or nobody kept it.
            free_packet(received)
            return _SUCCESS
        self.looping[received] = sent
        return _PENDING

    def returned(self, received: NDIS_PACKET) -> NDIS_PACKET:
        """MiniportReturnPacket: the sent packet to complete now."""
        if received not in self.looping:
            raise NdisInternalError(
                f"{self.name}: MiniportReturnPacket for {received!r}, which no receiver kept",
                rule="PY-LOOPBACK",
            )
        sent = self.looping.pop(received)
        free_packet(received)
        return sent

    def oid_answers(self) -> dict[int, Any]:
        return ethernet_answers(
            address=self.address,
            mac_options=NDIS_MAC_OPTION_TRANSFERS_NOT_PEND,
            max_send_packets=1,
            packet_filter=self.packet_filter,
        )

    def __repr__(self) -> str:
        kind = "deserialized" if self.deserialized else "serialized"
        return f"<LoopbackAdapter {self.name!r} {kind} out={len(self.looping)}>"


class Loopback5(EthernetMiniport5):
    """The loopback miniport driver (MiniportSend only). MiniportInitialize (pools, then
    NdisMSetAttributesEx), the OID handlers and MiniportHalt (free the pools) are the 802.3
    samples' own (:class:`~.common5.EthernetMiniport5`)."""

    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, LoopbackAdapter] = {}

    def new_adapter(self, handle: MiniportBlock, config: AdapterConfig) -> LoopbackAdapter:
        return LoopbackAdapter(self.ndis, handle, config)

    def start_adapter(self, adapter: LoopbackAdapter) -> NDIS_STATUS:
        return adapter.allocate_resources()

    def stop_adapter(self, adapter: LoopbackAdapter) -> None:
        adapter.free_resources()

    def MiniportReset(self, MiniportAdapterContext: LoopbackAdapter) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset -> (SUCCESS, False): loops in progress finish on their own."""
        return _SUCCESS, False

    def MiniportSend(
        self, MiniportAdapterContext: LoopbackAdapter, Packet: NDIS_PACKET, Flags: int
    ) -> NDIS_STATUS:
        """MiniportSend -> NdisMIndicateReceivePacket(copy of the descriptors, same memory)
        -> serialized: SUCCESS (receive packet already back) | PENDING (-> NdisMSendComplete
        once, from MiniportReturnPacket) | RESOURCES (pools empty; NDIS requeues);
        deserialized: PENDING, and NdisMSendComplete exactly once (possibly before this
        returns)."""
        adapter = MiniportAdapterContext
        if not adapter.deserialized:
            return adapter.loop(Packet)
        ndis = self.ndis
        ndis.NdisAcquireSpinLock(adapter.lock)
        busy = bool(adapter.backlog)
        if busy:
            adapter.backlog.append(Packet)
        ndis.NdisReleaseSpinLock(adapter.lock)
        if busy:
            return _PENDING
        status = adapter.loop(Packet)
        if status == _RESOURCES:
            ndis.NdisAcquireSpinLock(adapter.lock)
            adapter.backlog.append(Packet)
            ndis.NdisReleaseSpinLock(adapter.lock)
        elif status == _SUCCESS:
            ndis.NdisMSendComplete(adapter.handle, Packet, _SUCCESS)
        return _PENDING

    def MiniportReturnPacket(
        self, MiniportAdapterContext: LoopbackAdapter, Packet: NDIS_PACKET
    ) -> None:
        """MiniportReturnPacket(R) -> NdisMSendComplete(P, SUCCESS) once for the packet R
        looped -> (deserialized) loop the next queued packet."""
        adapter = MiniportAdapterContext
        sent = adapter.returned(Packet)
        self.ndis.NdisMSendComplete(adapter.handle, sent, _SUCCESS)
        if adapter.deserialized and adapter.backlog and not adapter.drain_queued:
            # Loop the queued packets from a DPC, not from inside NDIS's return path.
            adapter.drain_queued = True
            self.ndis.scheduler.queue_dpc(self._drain, adapter, label="loopback-drain")

    def _drain(self, adapter: LoopbackAdapter) -> None:
        """Deserialized (DPC): loop queued packets, oldest first, while the pools allow."""
        ndis = self.ndis
        adapter.drain_queued = False
        while True:
            ndis.NdisAcquireSpinLock(adapter.lock)
            sent = adapter.backlog.popleft() if adapter.backlog else None
            ndis.NdisReleaseSpinLock(adapter.lock)
            if sent is None:
                return
            status = adapter.loop(sent)
            if status == _RESOURCES:
                ndis.NdisAcquireSpinLock(adapter.lock)
                adapter.backlog.appendleft(sent)
                ndis.NdisReleaseSpinLock(adapter.lock)
                return
            if status == _SUCCESS:
                ndis.NdisMSendComplete(adapter.handle, sent, _SUCCESS)


__all__ = ["Loopback5", "LoopbackAdapter"]
