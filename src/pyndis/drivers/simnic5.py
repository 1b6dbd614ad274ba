"""The NDIS 5.1 miniport driver of a simulated Ethernet NIC (serialized or deserialized).

Theory of operation
-------------------
The hardware (transmit ring, link rate, wire, link, address filter) is
:class:`~pyndis.drivers.nichw.NicHardware`; this module is its driver, written like a real
one: the ``Miniport*`` handlers, a transmit-complete DPC and a receive DPC, all calling DDIs.

Send. A packet goes into a free ring slot; when the hardware reports the frame done, the
packet joins the DPC's batch. The transmit-complete DPC (DISPATCH_LEVEL) completes the whole
batch with ``NdisMSendComplete``, in the order the ``completion`` knob says (``fifo``,
``reverse``, or ``random`` drawn from ``ndis.scheduler.random``): completion order is free
(rule 18). It never holds its spin lock while it calls NDIS (a completion may come straight
back in as a new send). What a send can meet:

==========================  =====================================================================
ring full, serialized        MiniportSend returns RESOURCES (SendPackets: RESOURCES in the OOB
                             status of the first packet that does not fit); the driver then owes
                             NDIS an ``NdisMSendResourcesAvailable``, called from the DPC once a
                             slot frees (rules 21-23).
ring full, deserialized      the packet waits in the driver's own queue, under a spin lock, and
                             goes to the ring in order when slots free (rule 27).
``fail_rate``                the frame fails on the wire: the packet completes with FAILURE.
cable pulled                 MEDIA_DISCONNECT is indicated; frames not yet on the wire and every
                             send until the cable is plugged back finish with NO_CABLE.
MiniportReset                pends; frames in the ring and the driver's queue finish with
                             RESET_IN_PROGRESS; an NDIS timer calls ``NdisMResetComplete``
                             ``reset_ms`` later.
``early_complete``           an "intelligent NIC": the driver copies the frame into the ring and
                             completes the packet at once (SUCCESS), before the frame is on the
                             wire; the slot stays busy until it has gone out, and a later failure
                             on the wire is only counted.
==========================  =====================================================================

Receive. Each frame the hardware accepts gets a buffer descriptor from the driver's buffer pool
that describes the frame's bytes (no copy); the receive DPC, raised once for all frames that
arrive together, chains each to a packet from the driver's packet pool and indicates them all
with one ``NdisMIndicateReceivePacket``. When that returns, every packet whose OOB Status is
not NDIS_STATUS_PENDING is the driver's again and is reclaimed at once: nobody kept it, or it
went up with NDIS_STATUS_RESOURCES (done for the last free packets, so that receivers copy).
A PENDING one is lent until ``MiniportReturnPacket`` brings it back.

Loopback: unless ``no_loopback`` is set (then NDIS loops back, rule 51) the hardware loops
frames to its own address or to broadcast back to itself.

Registry keywords (``ndis.add_adapter(handle, name, **kw)``): ``deserialized`` (False),
``ring`` (64), ``rate_bps`` (None: no serialization time), ``latency_ns`` (0), ``completion``
("fifo"), ``early_complete`` (False), ``fail_rate`` (0.0), ``no_loopback`` (True), ``address``
(02:00:00:00:00:01), ``wire`` (None), ``rx_packets`` (32), ``reset_ms`` (1), ``irq_delay_ns``
(0: the DPC runs as soon as the hardware interrupts), ``max_send_packets`` (the ring size).

The driver supplies ``MiniportSendPackets`` (:class:`SimNic5`) or ``MiniportSend``
(:class:`SimNic5Single`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    DISPATCH_LEVEL,
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_MAC_OPTION_TRANSFERS_NOT_PEND,
)
from ..errors import NdisInternalError
from ..library.kernel import NDIS_MINIPORT_TIMER
from ..mdl import MDL, NdisAllocateBuffer, NdisFreeBuffer
from ..packet import (
    NDIS_GET_PACKET_STATUS,
    NDIS_PACKET,
    NDIS_SET_PACKET_HEADER_SIZE,
    NDIS_SET_PACKET_STATUS,
    NDIS_SET_PACKET_TIME_RECEIVED,
    NdisChainBufferAtFront,
    NdisQueryPacket,
    packet_bytes,
)
from ..pools import NdisAllocatePacket, NdisPacketPoolUsage
from ..scheduler import PRIORITY_DPC, PRIORITY_WIRE, WorkItem
from ..status import NDIS_STATUS
from .common5 import (
    COMPLETION_ORDERS,
    GIGABIT,
    EthernetAdapter5,
    EthernetMiniport5,
    allocate_pools,
    ethernet_answers,
    free_packet,
    free_pools,
    order_batch,
)
from .nichw import BROADCAST, NicCounters, NicHardware

if TYPE_CHECKING:
    from ..irql import NDIS_SPIN_LOCK
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool

DEFAULT_ADDRESS = b"\x02\x00\x00\x00\x00\x01"
ETHERNET_HEADER_SIZE = 14
MAX_FRAME = 1514

_PENDING = NDIS_STATUS.PENDING
_SUCCESS = NDIS_STATUS.SUCCESS


class SimNicAdapter(EthernetAdapter5):
    """One simulated NIC's driver state (the MiniportAdapterContext) and its hardware."""

    def __init__(self, ndis: Ndis, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.ndis = ndis
        self.handle = handle
        self.name = config.name
        self.deserialized = bool(config.get("deserialized", False))
        self.completion = str(config.get("completion", "fifo"))
        if self.completion not in COMPLETION_ORDERS:
            raise ValueError(f"completion={self.completion!r}; one of {COMPLETION_ORDERS}")
        self.early_complete = bool(config.get("early_complete", False))
        self.reset_ms = int(config.get("reset_ms", 1))
        self.irq_delay_ns = int(config.get("irq_delay_ns", 0))
        self.rx_packets = int(config.get("rx_packets", 32))
        self.hw = NicHardware(
            ndis,
            self,
            self.name,
            address=bytes(config.get("address", DEFAULT_ADDRESS)),
            ring=int(config.get("ring", 64)),
            rate_bps=config.get("rate_bps"),
            latency_ns=int(config.get("latency_ns", 0)),
            fail_rate=float(config.get("fail_rate", 0.0)),
            hardware_loopback=not config.get("no_loopback", True),
            wire=config.get("wire"),
            port_name=f"{ndis.name}:{self.name}",
        )
        self.max_send_packets = int(config.get("max_send_packets", self.hw.ring_size))
        #: packets finished (by the hardware, or refused), waiting for the transmit DPC
        self.done: list[tuple[NDIS_PACKET, NDIS_STATUS]] = []
        self.tx_dpc: WorkItem | None = None
        #: serialized: we returned RESOURCES and owe NDIS an NdisMSendResourcesAvailable
        self.owe_resources = False
        #: deserialized: packets waiting for a ring slot, in arrival order (rule 27)
        self.backlog: deque[NDIS_PACKET] = deque()
        self.lock: NDIS_SPIN_LOCK = ndis.NdisAllocateSpinLock()
        self.resetting = False
        self.reset_timer = NDIS_MINIPORT_TIMER()
        ndis.NdisMInitializeTimer(self.reset_timer, handle, self._reset_timer, self)
        self.halted = False
        self.rx_fifo: deque[MDL] = deque()
        self.rx_dpc: WorkItem | None = None
        #: receive packets receivers kept (Status PENDING after the indication), not yet back
        self.lent: set[NDIS_PACKET] = set()
        self.rx_packet_pool: PacketPool | None = None
        self.rx_buffer_pool: BufferPool | None = None

    @property
    def counters(self) -> NicCounters:
        return self.hw.counters

    @property
    def packet_filter(self) -> int:
        """The hardware address filter (what OID_GEN_CURRENT_PACKET_FILTER programs)."""
        return self.hw.packet_filter

    @packet_filter.setter
    def packet_filter(self, value: int) -> None:
        self.hw.packet_filter = value

    # --- resources ------------------------------------------------------------------------------
    def allocate_resources(self) -> NDIS_STATUS:
        status, self.rx_packet_pool, self.rx_buffer_pool = allocate_pools(
            self.ndis, self.rx_packets, self.rx_packets
        )
        return status

    def halt(self) -> None:
        """MiniportHalt: stop the hardware, cancel the DPCs and the timer, free the pools."""
        self.halted = True
        self.hw.stop()
        for item in (self.tx_dpc, self.rx_dpc):
            if item is not None:
                item.cancel()
        self.ndis.NdisMCancelTimer(self.reset_timer)
        while self.rx_fifo:
            NdisFreeBuffer(self.rx_fifo.popleft())
        free_pools(self.ndis, self.rx_packet_pool, self.rx_buffer_pool)
        self.rx_packet_pool = self.rx_buffer_pool = None
        self.ndis.NdisFreeSpinLock(self.lock)

    # --- the driver's lock (deserialized only: NDIS serializes a serialized miniport) ----------
    def acquire(self) -> None:
        if self.deserialized:
            self.ndis.NdisAcquireSpinLock(self.lock)

    def release(self) -> None:
        if self.deserialized:
            self.ndis.NdisReleaseSpinLock(self.lock)

    # --- send -----------------------------------------------------------------------------------
    def send(self, packet: NDIS_PACKET) -> NDIS_STATUS:
        """Take one packet (the caller holds the lock). Serialized: PENDING (in the ring),
        RESOURCES, NO_CABLE or RESET_IN_PROGRESS. Deserialized: always PENDING."""
        hw = self.hw
        if self.resetting or not hw.link_up:
            status = NDIS_STATUS.RESET_IN_PROGRESS if self.resetting else NDIS_STATUS.NO_CABLE
            hw.counters.tx_aborted += 1
            if not self.deserialized:
                return status
            self._finish(packet, status)
            return _PENDING
        if self.deserialized and (self.backlog or hw.ring_full):
            self.backlog.append(packet)
            return _PENDING
        if hw.ring_full:
            self.owe_resources = True
            hw.counters.resources_returned += 1
            return NDIS_STATUS.RESOURCES
        self._load(packet)
        return _PENDING

    def _load(self, packet: NDIS_PACKET) -> None:
        length = NdisQueryPacket(packet)[3]
        if self.early_complete:
            # Copy the frame into the NIC's memory and let go of the packet at once.
            self.hw.load(None, packet_bytes(packet), length)
            self._finish(packet, _SUCCESS)
        else:
            self.hw.load(packet, lambda: packet_bytes(packet), length)

    def _finish(self, packet: NDIS_PACKET, status: NDIS_STATUS) -> None:
        """Hand a finished packet to the transmit-complete DPC."""
        self.done.append((packet, status))
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

    def hw_transmit_done(self, token: object, ok: bool) -> None:
        """Interrupt: a frame left the ring (a slot is free)."""
        self.acquire()
        try:
            if isinstance(token, NDIS_PACKET):
                self.done.append((token, _SUCCESS if ok else NDIS_STATUS.FAILURE))
            self._request_tx_dpc()
        finally:
            self.release()

    def _tx_complete_dpc(self) -> None:
        """Transmit-complete DPC (DISPATCH_LEVEL): NdisMSendComplete for the finished batch, in
        the chosen order -> [refill the ring from the driver queue]
        -> [NdisMSendResourcesAvailable if we returned RESOURCES and a slot is free]."""
        ndis = self.ndis
        self.tx_dpc = None
        self.acquire()
        batch, self.done = self.done, []
        self.release()
        order_batch(batch, self.completion, ndis.scheduler.random)
        for packet, status in batch:
            self.counters.tx_completed += 1
            ndis.scheduler.trace("nic-complete", self.name, status)
            ndis.NdisMSendComplete(self.handle, packet, status)
        if self.deserialized:
            self._drain_backlog()
        elif self.owe_resources and not self.hw.ring_full and not self.resetting:
            self.owe_resources = False
            ndis.scheduler.trace("nic-resources-available", self.name)
            ndis.NdisMSendResourcesAvailable(self.handle)

    def _drain_backlog(self) -> None:
        """Deserialized: move queued packets into free ring slots, oldest first."""
        self.acquire()
        try:
            while self.backlog and not self.hw.ring_full and self.hw.link_up:
                self._load(self.backlog.popleft())
        finally:
            self.release()

    def _abort_all(self, status: NDIS_STATUS) -> None:
        """Reset or link loss: every frame not yet on the wire, and the driver queue, fail."""
        self.acquire()
        try:
            for token in self.hw.abort():
                if isinstance(token, NDIS_PACKET):
                    self.done.append((token, status))
            while self.backlog:
                self.done.append((self.backlog.popleft(), status))
                self.counters.tx_aborted += 1
            if self.done:
                self._request_tx_dpc()
        finally:
            self.release()

    # --- link and reset -------------------------------------------------------------------------
    def pull_cable(self, after_ns: int = 0) -> None:
        """Pull the cable ``after_ns`` from now (a hardware event)."""
        self.hw.schedule_link(False, after_ns)

    def plug_cable(self, after_ns: int = 0) -> None:
        """Plug the cable back in ``after_ns`` from now."""
        self.hw.schedule_link(True, after_ns)

    def hw_link(self, up: bool) -> None:
        """Interrupt: link change -> [fail what is in flight] -> NdisMIndicateStatus."""
        if not up:
            self._abort_all(NDIS_STATUS.NO_CABLE)
        code = NDIS_STATUS.MEDIA_CONNECT if up else NDIS_STATUS.MEDIA_DISCONNECT
        self.ndis.NdisMIndicateStatus(self.handle, code, None, 0)
        self.ndis.NdisMIndicateStatusComplete(self.handle)

    def reset(self) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset: abort the ring, pend, complete the reset from a timer."""
        self.resetting = True
        self.ndis.scheduler.trace("nic-reset", self.name)
        self._abort_all(NDIS_STATUS.RESET_IN_PROGRESS)
        self.ndis.NdisMSetTimer(self.reset_timer, self.reset_ms)
        return _PENDING, False

    def _reset_timer(self, s1: object, context: object, s2: object, s3: object) -> None:
        """Timer function (DISPATCH_LEVEL): the hardware is back -> NdisMResetComplete."""
        self.resetting = False
        self.ndis.scheduler.trace("nic-reset-done", self.name)
        self.ndis.NdisMResetComplete(self.handle, _SUCCESS, False)

    # --- receive --------------------------------------------------------------------------------
    def hw_receive(self, frame: bytes) -> None:
        """Interrupt: a frame arrived. Describe it with a receive buffer descriptor (no copy)
        and raise the receive DPC."""
        pool = self.rx_buffer_pool
        if pool is None:
            self.counters.rx_no_buffer += 1
            return
        status, buffer = NdisAllocateBuffer(pool, frame, len(frame))
        if status != _SUCCESS or buffer is None:
            self.counters.rx_no_buffer += 1
            return
        self.rx_fifo.append(buffer)
        if self.rx_dpc is None:
            # One receive DPC for every frame that arrives at the same instant: it runs after
            # the wire's deliveries due now (and after ``irq_delay_ns``).
            self.rx_dpc = self.ndis.scheduler.call_later(
                self.irq_delay_ns,
                self._rx_dpc,
                priority=PRIORITY_WIRE + 1,
                irql=DISPATCH_LEVEL,
                label="nic-rx-dpc",
            )

    def _rx_dpc(self) -> None:
        """Receive DPC: NdisMIndicateReceivePacket(every frame received) -> reclaim at once every
        packet whose OOB Status is not PENDING; the PENDING ones come back through
        MiniportReturnPacket."""
        ndis = self.ndis
        self.rx_dpc = None
        pool = self.rx_packet_pool
        assert pool is not None
        packets: list[NDIS_PACKET] = []
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
            # Running low: ask the receivers to copy, so the packet comes straight back.
            low = self.rx_packets - NdisPacketPoolUsage(pool) < max(1, self.rx_packets // 8)
            NDIS_SET_PACKET_STATUS(packet, NDIS_STATUS.RESOURCES if low else _SUCCESS)
            packets.append(packet)
            self.counters.rx_packets += 1
            self.counters.rx_bytes += buffer.ByteCount
        if not packets:
            return
        ndis.scheduler.trace("nic-rx", self.name, len(packets))
        ndis.NdisMIndicateReceivePacket(self.handle, packets, len(packets))
        for packet in packets:
            if NDIS_GET_PACKET_STATUS(packet) == _PENDING:
                self.lent.add(packet)  # a receiver kept it: MiniportReturnPacket later
            else:
                free_packet(packet)

    def return_packet(self, packet: NDIS_PACKET) -> None:
        """MiniportReturnPacket: NDIS gives back a packet we lent."""
        if packet not in self.lent:
            raise NdisInternalError(
                f"{self.name}: MiniportReturnPacket for {packet!r}, which was never lent",
                rule="PY-SIMNIC",
            )
        self.lent.discard(packet)
        free_packet(packet)

    # --- OIDs -------------------------------------------------------------------------------------
    def oid_answers(self) -> dict[int, Any]:
        hw = self.hw
        return ethernet_answers(
            address=hw.address,
            mac_options=NDIS_MAC_OPTION_TRANSFERS_NOT_PEND
            | (0 if hw.hardware_loopback else NDIS_MAC_OPTION_NO_LOOPBACK),
            max_send_packets=self.max_send_packets,
            packet_filter=hw.packet_filter,
            connected=hw.link_up,
            link_speed=hw.rate_bps // 100 if hw.rate_bps else GIGABIT,
            max_total_size=MAX_FRAME,
        )

    def __repr__(self) -> str:
        kind = "deserialized" if self.deserialized else "serialized"
        return (
            f"<SimNicAdapter {self.name!r} {kind} ring={len(self.hw.ring)}/{self.hw.ring_size} "
            f"queued={len(self.backlog)} lent={len(self.lent)}>"
        )


class _SimNicBase(EthernetMiniport5):
    """The handlers every variant supplies; send handlers are in the subclasses.
    MiniportInitialize (receive pools, then NdisMSetAttributesEx), the OID handlers (the packet
    filter programs the hardware address filter) and MiniportHalt (stop the hardware, free the
    pools) are the 802.3 samples' own (:class:`~.common5.EthernetMiniport5`)."""

    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, SimNicAdapter] = {}

    def new_adapter(self, handle: MiniportBlock, config: AdapterConfig) -> SimNicAdapter:
        return SimNicAdapter(self.ndis, handle, config)

    def start_adapter(self, adapter: SimNicAdapter) -> NDIS_STATUS:
        status = adapter.allocate_resources()
        if status != _SUCCESS:
            adapter.hw.stop()  # deaf to the wire from now on
        return status

    def stop_adapter(self, adapter: SimNicAdapter) -> None:
        adapter.halt()

    def MiniportReset(self, MiniportAdapterContext: SimNicAdapter) -> tuple[NDIS_STATUS, bool]:
        """MiniportReset -> (PENDING, False) -> [sends finish with RESET_IN_PROGRESS]
        -> NdisMResetComplete once, ``reset_ms`` later (an NDIS timer)."""
        return MiniportAdapterContext.reset()

    def MiniportReturnPacket(
        self, MiniportAdapterContext: SimNicAdapter, Packet: NDIS_PACKET
    ) -> None:
        """MiniportReturnPacket: once per packet a receiver kept (its OOB Status was PENDING
        when NdisMIndicateReceivePacket returned), after the last holder gave it back
        (DISPATCH_LEVEL)."""
        MiniportAdapterContext.return_packet(Packet)


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
]
