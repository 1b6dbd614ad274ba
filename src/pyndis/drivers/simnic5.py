"""A simulated Ethernet NIC and its NDIS 5.1 miniport driver (serialized or deserialized).

Theory of operation
-------------------
The module has two layers, as netvmini keeps ``mphal.c`` apart from ``datapath.c``:

*Hardware* (``_hw_*`` methods): a transmit ring of ``ring`` slots that the transmit engine
empties in order, one frame after the other, each taking its serialization time at
``rate_bps`` plus a fixed ``latency_ns``; a receive side fed by a :class:`~pyndis.wire.Wire`
port (or by the NIC's own hardware loopback) through a hardware address filter; a link that can
be pulled and plugged; a reset line. Every hardware event is a work item on the kernel's
scheduler, so a run is a pure function of the seed.

*Driver* (the ``Miniport*`` handlers and the two DPCs): it loads packets into the ring, and
finishes them from a transmit-complete DPC that runs at DISPATCH_LEVEL after the hardware
reports frames done. The DPC completes the whole batch it finds, in the order the
``completion`` knob says (``fifo``, ``reverse``, or ``random`` drawn from
``ndis.scheduler.random``), which is how the tests exercise "completion order is free"
(rule 18). The receive DPC indicates every frame the hardware received in one
``NdisMIndicateReceivePacket`` call, from the driver's own packet and buffer pools; received
bytes are never copied (each receive buffer descriptor describes the frame the wire delivered).

What a send can meet:

==========================  =====================================================================
ring full, serialized        MiniportSend returns RESOURCES (SendPackets: RESOURCES in the OOB
                             status of the first packet that does not fit); the NIC then owes
                             NDIS a ``NdisMSendResourcesAvailable``, called from the DPC once a
                             slot frees (rules 21-23).
ring full, deserialized      the packet waits in the driver's own queue, under a spin lock, and
                             goes to the ring in order when slots free (rule 27).
``fail_rate``                the frame fails in hardware: completed with NDIS_STATUS_FAILURE.
cable pulled                 MEDIA_DISCONNECT is indicated; frames not yet on the wire and every
                             send until the cable is plugged back finish with NO_CABLE.
MiniportReset                pends; frames in the ring and the driver's queue finish with
                             RESET_IN_PROGRESS; ``NdisMResetComplete`` follows ``reset_ns`` later.
``early_complete``           an "intelligent NIC": the packet completes as soon as its bytes are
                             copied into the ring, before the frame is on the wire; the ring slot
                             stays busy until the frame has gone out.
==========================  =====================================================================

Hardware loopback: unless ``no_loopback`` is set (then NDIS loops back, rule 51), a frame sent
to the NIC's own address or to the broadcast address is also received by the NIC.

Registry keywords read in ``MiniportInitialize`` (``ndis.add_adapter(handle, name, **kw)``):
``deserialized`` (False), ``ring`` (64), ``rate_bps`` (None: no serialization time),
``latency_ns`` (0), ``completion`` ("fifo"), ``early_complete`` (False), ``fail_rate`` (0.0),
``no_loopback`` (True), ``address`` (02:00:00:00:00:01), ``wire`` (None), ``rx_packets`` (32),
``reset_ns`` (10_000), ``irq_delay_ns`` (0: the DPC runs as soon as the hardware raises it),
``max_send_packets`` (the ring size).

The driver supplies ``MiniportSendPackets`` (:class:`SimNic5`) or ``MiniportSend``
(:class:`SimNic5Single`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    DISPATCH_LEVEL,
    NDIS_ATTRIBUTE_DESERIALIZE,
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_MAC_OPTION_TRANSFERS_NOT_PEND,
    NDIS_PACKET_TYPE_ALL_MULTICAST,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_PACKET_TYPE_MULTICAST,
    NDIS_PACKET_TYPE_PROMISCUOUS,
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
from ..errors import NdisInternalError
from ..mdl import MDL, NdisAllocateBuffer, NdisFreeBuffer, NdisGetNextBuffer, NdisQueryBuffer
from ..packet import (
    NDIS_PACKET,
    NDIS_SET_PACKET_HEADER_SIZE,
    NDIS_SET_PACKET_STATUS,
    NDIS_SET_PACKET_TIME_RECEIVED,
    NdisChainBufferAtFront,
    NdisQueryPacket,
    NdisUnchainBufferAtFront,
)
from ..pools import NdisAllocatePacket, NdisFreePacket, NdisPacketPoolUsage
from ..scheduler import PRIORITY_DPC, PRIORITY_WIRE, WorkItem
from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from ..irql import NDIS_SPIN_LOCK
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool
    from ..wire import Wire, WirePort

DEFAULT_ADDRESS = b"\x02\x00\x00\x00\x00\x01"
BROADCAST = b"\xff" * 6
ETHERNET_HEADER_SIZE = 14
MAX_FRAME = 1514
COMPLETION_ORDERS = ("fifo", "reverse", "random")

_PENDING = NDIS_STATUS.PENDING
_SUCCESS = NDIS_STATUS.SUCCESS


def read_frame(packet: NDIS_PACKET) -> bytes:
    """The NIC's DMA read: the bytes of every buffer chained to ``packet``, through the DDIs."""
    _physical, _count, buffer, _total = NdisQueryPacket(packet)
    parts: list[memoryview] = []
    while buffer is not None:
        view, _length = NdisQueryBuffer(buffer)
        parts.append(view)
        buffer = NdisGetNextBuffer(buffer)
    return b"".join(parts)


class NicCounters:
    """What the NIC counts (its statistics OIDs, in a real driver)."""

    __slots__ = (
        "resources_returned",
        "rx_bytes",
        "rx_dropped",
        "rx_filtered",
        "rx_no_buffer",
        "rx_packets",
        "tx_aborted",
        "tx_bytes",
        "tx_completed",
        "tx_errors",
        "tx_packets",
    )

    def __init__(self) -> None:
        self.tx_packets = 0  # frames put on the wire
        self.tx_bytes = 0
        self.tx_errors = 0  # frames the hardware failed (fail_rate)
        self.tx_aborted = 0  # frames dropped by a reset, a cable pull, or refused unplugged
        self.tx_completed = 0  # NdisMSendComplete calls
        self.resources_returned = 0  # serialized sends refused with RESOURCES (ring full)
        self.rx_packets = 0  # frames indicated
        self.rx_bytes = 0
        self.rx_dropped = 0  # frames arriving while unplugged or halted
        self.rx_filtered = 0  # frames the hardware address filter rejected
        self.rx_no_buffer = 0  # frames lost for lack of a receive descriptor

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"NicCounters({self.as_dict()})"


class TxSlot:
    """One transmit-ring slot: the packet (until completed) and, once copied, its frame."""

    __slots__ = ("fail", "frame", "item", "packet", "status")

    def __init__(self, packet: NDIS_PACKET | None, status: NDIS_STATUS | None = None) -> None:
        #: the packet to complete; None once it has been handed to the DPC (early completion)
        self.packet = packet
        #: the bytes copied into the ring (early completion) or None (read at transmit time)
        self.frame: bytes | None = None
        self.status = status
        self.fail = False
        self.item: WorkItem | None = None


class SimNicAdapter:
    """One simulated NIC (the MiniportAdapterContext) and its hardware state."""

    def __init__(self, ndis: Ndis, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.ndis = ndis
        self.handle = handle
        self.name = config.name
        self.deserialized = bool(config.get("deserialized", False))
        self.ring_size = int(config.get("ring", 64))
        if self.ring_size < 1:
            raise ValueError(f"ring={self.ring_size}: a transmit ring has at least one slot")
        self.rate_bps: int | None = config.get("rate_bps")
        self.latency_ns = int(config.get("latency_ns", 0))
        self.completion = str(config.get("completion", "fifo"))
        if self.completion not in COMPLETION_ORDERS:
            raise ValueError(f"completion={self.completion!r}; one of {COMPLETION_ORDERS}")
        self.early_complete = bool(config.get("early_complete", False))
        self.fail_rate = float(config.get("fail_rate", 0.0))
        self.no_loopback = bool(config.get("no_loopback", True))
        self.address = bytes(config.get("address", DEFAULT_ADDRESS))
        self.reset_ns = int(config.get("reset_ns", 10_000))
        self.irq_delay_ns = int(config.get("irq_delay_ns", 0))
        self.max_send_packets = int(config.get("max_send_packets", self.ring_size))
        self.rx_packets = int(config.get("rx_packets", 32))
        self.counters = NicCounters()
        # transmit side
        self.ring: deque[TxSlot] = deque()
        self.tx_busy_until = 0
        self.done: list[TxSlot] = []
        self.tx_dpc: WorkItem | None = None
        #: serialized: we returned RESOURCES and owe NDIS an NdisMSendResourcesAvailable
        self.owe_resources = False
        #: deserialized: packets waiting for a ring slot, in arrival order (rule 27)
        self.backlog: deque[NDIS_PACKET] = deque()
        self.lock: NDIS_SPIN_LOCK = ndis.NdisAllocateSpinLock()
        # link, reset, life
        self.connected = True
        self.resetting = False
        self.reset_item: WorkItem | None = None
        self.halted = False
        self.packet_filter = 0
        # receive side
        self.rx_fifo: deque[MDL] = deque()
        self.rx_dpc: WorkItem | None = None
        #: receive packets lent to NDIS (indicated with SUCCESS, not yet returned)
        self.lent: set[NDIS_PACKET] = set()
        self.rx_packet_pool: PacketPool | None = None
        self.rx_buffer_pool: BufferPool | None = None
        self.port: WirePort | None = None
        wire: Wire | None = config.get("wire")
        if wire is not None:
            self.port = wire.attach(ndis, self._hw_wire_receive, f"{ndis.name}:{self.name}")

    # --- resources ------------------------------------------------------------------------------
    def allocate_resources(self) -> NDIS_STATUS:
        status, packets = self.ndis.NdisAllocatePacketPool(self.rx_packets, 16)
        if status != _SUCCESS or packets is None:
            return NDIS_STATUS.RESOURCES
        status, buffers = self.ndis.NdisAllocateBufferPool(self.rx_packets)
        if status != _SUCCESS:
            self.ndis.NdisFreePacketPool(packets)
            return NDIS_STATUS.RESOURCES
        self.rx_packet_pool, self.rx_buffer_pool = packets, buffers
        return _SUCCESS

    def free_resources(self) -> None:
        for item in (self.tx_dpc, self.rx_dpc, self.reset_item):
            if item is not None:
                item.cancel()
        for slot in self.ring:
            if slot.item is not None:
                slot.item.cancel()
        while self.rx_fifo:
            NdisFreeBuffer(self.rx_fifo.popleft())
        if self.rx_packet_pool is not None:
            self.ndis.NdisFreePacketPool(self.rx_packet_pool)
            self.rx_packet_pool = None
        if self.rx_buffer_pool is not None:
            self.ndis.NdisFreeBufferPool(self.rx_buffer_pool)
            self.rx_buffer_pool = None
        self.ndis.NdisFreeSpinLock(self.lock)

    # --- the driver's lock (deserialized only: NDIS serializes a serialized miniport) ----------
    def acquire(self) -> None:
        if self.deserialized:
            self.ndis.NdisAcquireSpinLock(self.lock)

    def release(self) -> None:
        if self.deserialized:
            self.ndis.NdisReleaseSpinLock(self.lock)

    # --- the send path (driver) -----------------------------------------------------------------
    def send(self, packet: NDIS_PACKET) -> NDIS_STATUS:
        """Take one packet. Serialized: PENDING (in the ring), RESOURCES, NO_CABLE or
        RESET_IN_PROGRESS. Deserialized: always PENDING (the caller holds the lock)."""
        if self.resetting or not self.connected:
            status = NDIS_STATUS.RESET_IN_PROGRESS if self.resetting else NDIS_STATUS.NO_CABLE
            if not self.deserialized:
                self.counters.tx_aborted += 1
                return status
            self._finish(TxSlot(packet, status))
            return _PENDING
        if self.deserialized and (self.backlog or len(self.ring) >= self.ring_size):
            self.backlog.append(packet)
            return _PENDING
        if len(self.ring) >= self.ring_size:
            self.owe_resources = True
            self.counters.resources_returned += 1
            return NDIS_STATUS.RESOURCES
        self._hw_load(packet)
        return _PENDING

    def _finish(self, slot: TxSlot) -> None:
        """Hand a finished slot to the transmit-complete DPC."""
        self.done.append(slot)
        self._request_tx_dpc()

    def _request_tx_dpc(self) -> None:
        if self.tx_dpc is None and not self.halted:
            self.tx_dpc = self.ndis.scheduler.call_later(
                self.irq_delay_ns,
                self._tx_complete_dpc,
                priority=PRIORITY_DPC,
                irql=DISPATCH_LEVEL,
                label="nic-tx-dpc",
            )

    def _tx_complete_dpc(self) -> None:
        """Transmit-complete DPC (DISPATCH_LEVEL): complete the finished batch in the chosen
        order -> [refill the ring from the driver queue] -> [NdisMSendResourcesAvailable]."""
        ndis = self.ndis
        self.tx_dpc = None
        self.acquire()
        batch, self.done = self.done, []
        self.release()
        if self.completion == "reverse":
            batch.reverse()
        elif self.completion == "random":
            ndis.scheduler.random.shuffle(batch)
        for slot in batch:
            packet, status = slot.packet, slot.status
            assert packet is not None and status is not None
            slot.packet = None
            self.counters.tx_completed += 1
            ndis.scheduler.trace("nic-complete", self.name, status)
            # Never call NDIS holding our lock: the completion may come straight back in.
            ndis.NdisMSendComplete(self.handle, packet, status)
        if self.deserialized:
            self._drain_backlog()
        elif self.owe_resources and len(self.ring) < self.ring_size and not self.resetting:
            self.owe_resources = False
            ndis.scheduler.trace("nic-resources-available", self.name)
            ndis.NdisMSendResourcesAvailable(self.handle)

    def _drain_backlog(self) -> None:
        """Deserialized: move queued packets into free ring slots, oldest first."""
        self.acquire()
        try:
            while self.backlog and len(self.ring) < self.ring_size and self.connected:
                self._hw_load(self.backlog.popleft())
        finally:
            self.release()

    def _abort_all(self, status: NDIS_STATUS) -> None:
        """Reset or link loss: every frame not yet on the wire, and the driver queue, fail."""
        self.acquire()
        try:
            self._abort_locked(status)
        finally:
            self.release()

    def _abort_locked(self, status: NDIS_STATUS) -> None:
        for slot in self.ring:
            if slot.item is not None:
                slot.item.cancel()
            if slot.packet is not None:
                slot.status = status
                self.done.append(slot)
            self.counters.tx_aborted += 1
        self.ring.clear()
        while self.backlog:
            self.done.append(TxSlot(self.backlog.popleft(), status))
            self.counters.tx_aborted += 1
        self.tx_busy_until = self.ndis.scheduler.now_ns
        if self.done:
            self._request_tx_dpc()

    # --- the transmit hardware ------------------------------------------------------------------
    def _hw_load(self, packet: NDIS_PACKET) -> None:
        """Put a packet into the next ring slot and start its transmission."""
        sched = self.ndis.scheduler
        slot = TxSlot(packet)
        slot.fail = bool(self.fail_rate) and sched.random.random() < self.fail_rate
        length = NdisQueryPacket(packet)[3]
        if self.early_complete:
            # The intelligent NIC copies the frame into its own memory and lets go of the
            # packet at once; the frame goes out later from the ring.
            slot.frame = read_frame(packet)
            slot.status = NDIS_STATUS.FAILURE if slot.fail else _SUCCESS
            self._finish(TxSlot(packet, slot.status))
            slot.packet = None
        start = max(sched.now_ns, self.tx_busy_until)
        serialization = length * 8 * 1_000_000_000 // self.rate_bps if self.rate_bps else 0
        self.tx_busy_until = start + serialization
        slot.item = sched.call_at(
            self.tx_busy_until + self.latency_ns,
            self._hw_transmit_done,
            slot,
            priority=PRIORITY_DPC,
            irql=DISPATCH_LEVEL,
            label="nic-tx",
        )
        self.ring.append(slot)

    def _hw_transmit_done(self, slot: TxSlot) -> None:
        """The hardware finished a frame: it is on the wire (or failed); the slot frees."""
        self.acquire()
        try:
            self._transmit_done_locked(slot)
        finally:
            self.release()

    def _transmit_done_locked(self, slot: TxSlot) -> None:
        head = self.ring.popleft()
        if head is not slot:
            raise NdisInternalError(f"{self.name}: transmit ring out of order", rule="PY-SIMNIC")
        sched = self.ndis.scheduler
        if slot.fail:
            self.counters.tx_errors += 1
            sched.trace("nic-tx-error", self.name)
        else:
            frame = slot.frame if slot.frame is not None else read_frame(_live(slot.packet))
            self.counters.tx_packets += 1
            self.counters.tx_bytes += len(frame)
            sched.trace("nic-tx", self.name, len(frame))
            if self.port is not None:
                self.port.transmit(frame)
            if not self.no_loopback and frame[:6] in (self.address, BROADCAST):
                self._hw_receive(frame)
        if slot.packet is not None:
            slot.status = NDIS_STATUS.FAILURE if slot.fail else _SUCCESS
            self.done.append(slot)
        # A slot is free now: the DPC completes what finished and restarts the senders.
        self._request_tx_dpc()

    # --- link and reset -------------------------------------------------------------------------
    def pull_cable(self, after_ns: int = 0) -> None:
        """Schedule a cable pull (a hardware event at DISPATCH_LEVEL ``after_ns`` from now)."""
        self.ndis.scheduler.call_later(after_ns, self._hw_link, False, label="nic-link")

    def plug_cable(self, after_ns: int = 0) -> None:
        """Schedule the cable going back in."""
        self.ndis.scheduler.call_later(after_ns, self._hw_link, True, label="nic-link")

    def _hw_link(self, up: bool) -> None:
        if self.halted or up == self.connected:
            return
        ndis = self.ndis
        self.connected = up
        ndis.scheduler.trace("nic-link", self.name, "up" if up else "down")
        if not up:
            self._abort_all(NDIS_STATUS.NO_CABLE)
        code = NDIS_STATUS.MEDIA_CONNECT if up else NDIS_STATUS.MEDIA_DISCONNECT
        ndis.NdisMIndicateStatus(self.handle, code, None, 0)
        ndis.NdisMIndicateStatusComplete(self.handle)

    def reset(self) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset: abort the ring, pend, and complete the reset ``reset_ns`` later."""
        self.resetting = True
        self.ndis.scheduler.trace("nic-reset", self.name)
        self._abort_all(NDIS_STATUS.RESET_IN_PROGRESS)
        self.reset_item = self.ndis.scheduler.call_later(
            self.reset_ns, self._hw_reset_done, label="nic-reset"
        )
        return _PENDING, False

    def _hw_reset_done(self) -> None:
        self.reset_item = None
        self.resetting = False
        self.tx_busy_until = self.ndis.scheduler.now_ns
        self.ndis.scheduler.trace("nic-reset-done", self.name)
        self.ndis.NdisMResetComplete(self.handle, _SUCCESS, False)
        if self.owe_resources and not self.deserialized:
            self.owe_resources = False
            self.ndis.NdisMSendResourcesAvailable(self.handle)

    # --- the receive path -----------------------------------------------------------------------
    def _hw_wire_receive(self, frame: bytes) -> None:
        """A frame arrives from the wire (DISPATCH_LEVEL)."""
        if self.halted or not self.connected:
            self.counters.rx_dropped += 1
            return
        self._hw_receive(frame)

    def accepts(self, dest: bytes) -> bool:
        """The hardware address filter, programmed through OID_GEN_CURRENT_PACKET_FILTER."""
        f = self.packet_filter
        if f & NDIS_PACKET_TYPE_PROMISCUOUS:
            return True
        if dest == BROADCAST:
            return bool(f & NDIS_PACKET_TYPE_BROADCAST)
        if dest[:1] and dest[0] & 1:
            return bool(f & (NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_ALL_MULTICAST))
        return bool(f & NDIS_PACKET_TYPE_DIRECTED) and dest == self.address

    def _hw_receive(self, frame: bytes) -> None:
        """Receive DMA: describe the frame with a receive buffer descriptor; raise the DPC."""
        if not self.accepts(frame[:6]):
            self.counters.rx_filtered += 1
            return
        pool = self.rx_buffer_pool
        assert pool is not None
        status, buffer = NdisAllocateBuffer(pool, frame, len(frame))
        if status != _SUCCESS or buffer is None:
            self.counters.rx_no_buffer += 1
            return
        self.rx_fifo.append(buffer)
        if self.rx_dpc is None:
            # One receive interrupt for every frame that arrives at the same instant: the DPC
            # runs after the wire's deliveries due now (and after ``irq_delay_ns``).
            self.rx_dpc = self.ndis.scheduler.call_later(
                self.irq_delay_ns,
                self._rx_dpc,
                priority=PRIORITY_WIRE + 1,
                irql=DISPATCH_LEVEL,
                label="nic-rx-dpc",
            )

    def _rx_dpc(self) -> None:
        """Receive DPC: NdisMIndicateReceivePacket(all frames received) -> reclaim the packets
        indicated with RESOURCES at once; the others come back through MiniportReturnPacket."""
        ndis = self.ndis
        self.rx_dpc = None
        pool = self.rx_packet_pool
        assert pool is not None
        packets: list[NDIS_PACKET] = []
        copy_now: list[NDIS_PACKET] = []
        while self.rx_fifo:
            buffer = self.rx_fifo.popleft()
            status, packet = NdisAllocatePacket(pool)
            if status != _SUCCESS or packet is None:
                NdisFreeBuffer(buffer)
                self.counters.rx_no_buffer += 1
                continue
            NdisChainBufferAtFront(packet, buffer)
            NDIS_SET_PACKET_HEADER_SIZE(packet, ETHERNET_HEADER_SIZE)
            NDIS_SET_PACKET_TIME_RECEIVED(packet, ndis.NdisGetCurrentSystemTime())
            # Running low: ask the protocols to copy, so the packet comes straight back.
            low = self.rx_packets - NdisPacketPoolUsage(pool) < max(1, self.rx_packets // 8)
            NDIS_SET_PACKET_STATUS(packet, NDIS_STATUS.RESOURCES if low else _SUCCESS)
            (copy_now if low else packets).append(packet)
            self.counters.rx_packets += 1
            self.counters.rx_bytes += buffer.ByteCount
        indicated = packets + copy_now
        if not indicated:
            return
        self.lent.update(packets)
        ndis.scheduler.trace("nic-rx", self.name, len(indicated))
        ndis.NdisMIndicateReceivePacket(self.handle, indicated, len(indicated))
        for packet in copy_now:
            self.reclaim(packet)

    def return_packet(self, packet: NDIS_PACKET) -> None:
        """MiniportReturnPacket: NDIS gives back a packet we lent."""
        if packet not in self.lent:
            raise NdisInternalError(
                f"{self.name}: MiniportReturnPacket for {packet!r}, which was never lent",
                rule="PY-SIMNIC",
            )
        self.lent.discard(packet)
        self.reclaim(packet)

    def reclaim(self, packet: NDIS_PACKET) -> None:
        buffer = NdisUnchainBufferAtFront(packet)
        if buffer is not None:
            NdisFreeBuffer(buffer)
        NdisFreePacket(packet)

    # --- OIDs -------------------------------------------------------------------------------------
    def query(self, oid: int) -> tuple[NDIS_STATUS, Any]:
        speed = self.rate_bps // 100 if self.rate_bps else 10_000_000
        answers: dict[int, Any] = {
            OID_GEN_MAXIMUM_TOTAL_SIZE: MAX_FRAME,
            OID_802_3_CURRENT_ADDRESS: self.address,
            OID_802_3_PERMANENT_ADDRESS: self.address,
            OID_GEN_MAC_OPTIONS: int(
                NDIS_MAC_OPTION_TRANSFERS_NOT_PEND
                | (NDIS_MAC_OPTION_NO_LOOPBACK if self.no_loopback else 0)
            ),
            OID_GEN_MEDIA_CONNECT_STATUS: NdisMediaStateConnected
            if self.connected
            else NdisMediaStateDisconnected,
            OID_GEN_LINK_SPEED: speed,
            OID_GEN_MAXIMUM_SEND_PACKETS: self.max_send_packets,
            OID_GEN_CURRENT_PACKET_FILTER: self.packet_filter,
        }
        if oid in answers:
            return _SUCCESS, answers[oid]
        return NDIS_STATUS.INVALID_OID, None

    def __repr__(self) -> str:
        kind = "deserialized" if self.deserialized else "serialized"
        return (
            f"<SimNicAdapter {self.name!r} {kind} ring={len(self.ring)}/{self.ring_size} "
            f"queued={len(self.backlog)} lent={len(self.lent)}>"
        )


def _live(packet: NDIS_PACKET | None) -> NDIS_PACKET:
    if packet is None:
        raise NdisInternalError("transmit slot without a packet", rule="PY-SIMNIC")
    return packet


class _SimNicBase:
    """The handlers every variant supplies; send handlers are in the subclasses."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, SimNicAdapter] = {}

    def MiniportInitialize(
        self,
        MediumArray: Sequence[int],
        MiniportAdapterHandle: MiniportBlock,
        WrapperConfigurationContext: AdapterConfig,
    ) -> tuple[NDIS_STATUS, int]:
        """MiniportInitialize -> NdisMSetAttributesEx -> allocate receive pools
        -> (SUCCESS, index of 802.3) | (UNSUPPORTED_MEDIA | RESOURCES, 0). PASSIVE_LEVEL."""
        if NdisMedium802_3 not in MediumArray:
            return NDIS_STATUS.UNSUPPORTED_MEDIA, 0
        nic = SimNicAdapter(self.ndis, MiniportAdapterHandle, WrapperConfigurationContext)
        status = nic.allocate_resources()
        if status != _SUCCESS:
            return status, 0
        flags = NDIS_ATTRIBUTE_DESERIALIZE if nic.deserialized else 0
        self.ndis.NdisMSetAttributesEx(MiniportAdapterHandle, nic, 0, flags, 0)
        self.adapters[nic.name] = nic
        return _SUCCESS, list(MediumArray).index(NdisMedium802_3)

    def MiniportHalt(self, MiniportAdapterContext: SimNicAdapter) -> None:
        """MiniportHalt (PASSIVE_LEVEL, once, after every send completed and every received
        packet came back): stop the hardware, free the receive pools."""
        nic = MiniportAdapterContext
        nic.halted = True
        nic.free_resources()
        self.adapters.pop(nic.name, None)

    def MiniportReset(self, MiniportAdapterContext: SimNicAdapter) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset -> (PENDING, False) -> [sends finish with RESET_IN_PROGRESS]
        -> NdisMResetComplete once, ``reset_ns`` later."""
        return MiniportAdapterContext.reset()

    def MiniportReturnPacket(
        self, MiniportAdapterContext: SimNicAdapter, Packet: NDIS_PACKET
    ) -> None:
        """MiniportReturnPacket: once per packet indicated with SUCCESS (DISPATCH_LEVEL)."""
        MiniportAdapterContext.return_packet(Packet)

    def MiniportQueryInformation(
        self, MiniportAdapterContext: SimNicAdapter, Oid: int
    ) -> tuple[NDIS_STATUS, Any]:
        """MiniportQueryInformation(Oid) -> (SUCCESS, value) | (INVALID_OID, None)."""
        return MiniportAdapterContext.query(Oid)

    def MiniportSetInformation(
        self, MiniportAdapterContext: SimNicAdapter, Oid: int, Value: Any
    ) -> NDIS_STATUS:
        """MiniportSetInformation: the packet filter programs the hardware address filter."""
        if Oid == OID_GEN_CURRENT_PACKET_FILTER:
            MiniportAdapterContext.packet_filter = int(Value)
            return _SUCCESS
        return NDIS_STATUS.INVALID_OID


class SimNic5(_SimNicBase):
    """The simulated NIC's driver with MiniportSendPackets."""

    def MiniportSendPackets(
        self,
        MiniportAdapterContext: SimNicAdapter,
        PacketArray: Sequence[NDIS_PACKET],
        NumberOfPackets: int,
    ) -> None:
        """MiniportSendPackets -> per packet, in order, an OOB status:
        serialized: PENDING (-> NdisMSendComplete once) | NO_CABLE | RESET_IN_PROGRESS
        | RESOURCES (and NDIS requeues this one and all later ones, rule 22);
        deserialized: PENDING, then NdisMSendComplete exactly once (rule 26)."""
        nic = MiniportAdapterContext
        if nic.deserialized:
            nic.acquire()
            try:
                for i in range(NumberOfPackets):
                    NDIS_SET_PACKET_STATUS(PacketArray[i], nic.send(PacketArray[i]))
            finally:
                nic.release()
            return
        for i in range(NumberOfPackets):
            packet = PacketArray[i]
            status = nic.send(packet)
            NDIS_SET_PACKET_STATUS(packet, status)
            if status == NDIS_STATUS.RESOURCES:
                break


class SimNic5Single(_SimNicBase):
    """The simulated NIC's driver with MiniportSend only."""

    def MiniportSend(
        self, MiniportAdapterContext: SimNicAdapter, Packet: NDIS_PACKET, Flags: int
    ) -> NDIS_STATUS:
        """MiniportSend -> serialized: PENDING (-> NdisMSendComplete once) | RESOURCES
        (NDIS requeues it) | NO_CABLE | RESET_IN_PROGRESS;
        deserialized: PENDING, then NdisMSendComplete exactly once."""
        nic = MiniportAdapterContext
        nic.acquire()
        try:
            return nic.send(Packet)
        finally:
            nic.release()


__all__ = [
    "BROADCAST",
    "COMPLETION_ORDERS",
    "DEFAULT_ADDRESS",
    "NicCounters",
    "SimNic5",
    "SimNic5Single",
    "SimNicAdapter",
    "TxSlot",
    "read_frame",
]
