"""Simulated Ethernet NIC hardware: a transmit ring, a link, a wire port, an address filter.

Theory of operation
-------------------
This is the hardware under :mod:`pyndis.drivers.simnic5`, kept apart from the driver as
netvmini keeps ``mphal.c`` apart from its data path. It knows nothing of NDIS: no DDI is called
here. It talks to its driver through three "interrupt lines", the methods of
:class:`NicDriverEdge`, and takes commands through its own methods (``load``, ``abort``,
``stop``, the ``packet_filter`` register).

Transmit. ``load(token, source, length)`` puts a frame in the next ring slot. The transmit
engine sends frames in ring order, back to back: a frame starts when the one before it has
been serialized (``length * 8 / rate_bps``; no rate means no serialization time) and is done
``latency_ns`` after that. ``source`` is the frame's bytes (the driver already copied them into
the ring: early completion) or a callable the engine calls when it sends the frame (DMA from
the packet's buffers at transmit time). ``fail_rate`` makes a frame fail on the wire (drawn
from the kernel's seeded random source when the frame is loaded). When a frame is done its slot
frees and the driver hears ``hw_transmit_done(token, ok)``.

Receive. Frames come from a :class:`~pyndis.wire.Wire` port, or from the NIC itself when its
hardware loopback is on (frames to its own address or to broadcast). A frame is dropped while
the link is down or after ``stop``, rejected by the address filter (the ``packet_filter``
register, programmed from OID_GEN_CURRENT_PACKET_FILTER), or handed to ``hw_receive(frame)``.

Link. ``schedule_link(up, after_ns)`` is the cable being pulled or plugged; the driver hears
``hw_link(up)``. Every hardware event is a work item on the kernel's scheduler at
DISPATCH_LEVEL, so runs are reproducible from the seed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..constants import (
    DISPATCH_LEVEL,
    NDIS_PACKET_TYPE_ALL_MULTICAST,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_PACKET_TYPE_MULTICAST,
    NDIS_PACKET_TYPE_PROMISCUOUS,
)
from ..errors import NdisInternalError
from ..scheduler import PRIORITY_DPC, WorkItem

if TYPE_CHECKING:
    from ..hostctx import HostContext
    from ..wire import Wire, WirePort

BROADCAST = b"\xff" * 6

#: A frame in the ring: its bytes, or the DMA read that produces them at transmit time.
Source = bytes | Callable[[], bytes]


class NicDriverEdge(Protocol):
    """The interrupt lines: what the hardware tells its driver (always at DISPATCH_LEVEL)."""

    def hw_transmit_done(self, token: object, ok: bool) -> None:
        """A frame left the ring (``ok``: it went on the wire); its slot is free."""

    def hw_receive(self, frame: bytes) -> None:
        """A frame passed the address filter."""

    def hw_link(self, up: bool) -> None:
        """The link went up or down."""


class NicCounters:
    """The NIC's statistics: the hardware's, and those its driver keeps."""

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
        self.tx_errors = 0  # frames that failed on the wire (fail_rate)
        self.tx_aborted = 0  # frames dropped by a reset or a cable pull, sends refused
        self.tx_completed = 0  # driver: NdisMSendComplete calls
        self.resources_returned = 0  # driver: sends refused with RESOURCES (ring full)
        self.rx_packets = 0  # driver: frames indicated
        self.rx_bytes = 0
        self.rx_dropped = 0  # frames arriving while the link is down or the NIC stopped
        self.rx_filtered = 0  # frames the address filter rejected
        self.rx_no_buffer = 0  # driver: frames lost for lack of a receive descriptor

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        return f"NicCounters({self.as_dict()})"


class TxSlot:
    """One transmit-ring slot."""

    __slots__ = ("fail", "item", "source", "token")

    def __init__(self, token: object, source: Source, fail: bool) -> None:
        self.token = token
        self.source = source
        self.fail = fail
        self.item: WorkItem | None = None


class NicHardware:
    """One simulated NIC."""

    def __init__(
        self,
        host: HostContext,
        driver: NicDriverEdge,
        name: str,
        *,
        address: bytes,
        ring: int = 64,
        rate_bps: int | None = None,
        latency_ns: int = 0,
        fail_rate: float = 0.0,
        hardware_loopback: bool = False,
        wire: Wire | None = None,
        port_name: str = "",
    ) -> None:
        if ring < 1:
            raise ValueError(f"ring={ring}: a transmit ring has at least one slot")
        if rate_bps is not None and rate_bps <= 0:
            raise ValueError(f"rate_bps={rate_bps}: a link rate is positive (or None)")
        if not 0.0 <= fail_rate <= 1.0:
            raise ValueError(f"fail_rate={fail_rate}: a probability")
        self.host = host
        self.driver = driver
        self.name = name
        self.address = address
        self.ring_size = ring
        self.rate_bps = rate_bps
        self.latency_ns = latency_ns
        self.fail_rate = fail_rate
        self.hardware_loopback = hardware_loopback
        self.counters = NicCounters()
        self.ring: deque[TxSlot] = deque()
        self.busy_until = 0
        self.link_up = True
        self.stopped = False
        #: the address-filter register (NDIS_PACKET_TYPE_* bits)
        self.packet_filter = 0
        self.port: WirePort | None = None
        if wire is not None:
            self.port = wire.attach(host, self._wire_receive, port_name or name)

    # --- transmit -------------------------------------------------------------------------------
    @property
    def ring_full(self) -> bool:
        return len(self.ring) >= self.ring_size

    def load(self, token: object, source: Source, length: int) -> bool:
        """Put a frame in the ring and schedule its transmission. Returns False when the frame
        will fail on the wire (the fault is decided now, from the seeded random source)."""
        if self.ring_full:
            raise NdisInternalError(f"{self.name}: frame loaded into a full ring", rule="PY-NICHW")
        sched = self.host.scheduler
        fail = bool(self.fail_rate) and sched.random.random() < self.fail_rate
        slot = TxSlot(token, source, fail)
        start = max(sched.now_ns, self.busy_until)
        serialization = length * 8 * 1_000_000_000 // self.rate_bps if self.rate_bps else 0
        self.busy_until = start + serialization
        slot.item = sched.call_at(
            self.busy_until + self.latency_ns,
            self._transmit_done,
            slot,
            priority=PRIORITY_DPC,
            irql=DISPATCH_LEVEL,
            label="nic-tx",
        )
        self.ring.append(slot)
        return not fail

    def _transmit_done(self, slot: TxSlot) -> None:
        if self.ring.popleft() is not slot:
            raise NdisInternalError(f"{self.name}: transmit ring out of order", rule="PY-NICHW")
        trace = self.host.scheduler.trace
        if slot.fail:
            self.counters.tx_errors += 1
            trace("nic-tx-error", self.name)
        else:
            source = slot.source
            frame = source if isinstance(source, bytes) else source()
            self.counters.tx_packets += 1
            self.counters.tx_bytes += len(frame)
            trace("nic-tx", self.name, len(frame))
            if self.port is not None:
                self.port.transmit(frame)
            if self.hardware_loopback and frame[:6] in (self.address, BROADCAST):
                self._receive(frame)
        self.driver.hw_transmit_done(slot.token, not slot.fail)

    def abort(self) -> list[object]:
        """Drop every frame not yet sent; returns their tokens, oldest first."""
        tokens: list[object] = []
        for slot in self.ring:
            if slot.item is not None:
                slot.item.cancel()
            tokens.append(slot.token)
            self.counters.tx_aborted += 1
        self.ring.clear()
        self.busy_until = self.host.scheduler.now_ns
        return tokens

    def stop(self) -> None:
        """Power off: drop the ring, ignore the wire from now on."""
        self.abort()
        self.stopped = True

    # --- link -----------------------------------------------------------------------------------
    def schedule_link(self, up: bool, after_ns: int = 0) -> WorkItem:
        """The cable goes in (``up``) or out ``after_ns`` from now."""
        return self.host.scheduler.call_later(after_ns, self._link, up, label="nic-link")

    def _link(self, up: bool) -> None:
        if self.stopped or up == self.link_up:
            return
        self.link_up = up
        self.host.scheduler.trace("nic-link", self.name, "up" if up else "down")
        self.driver.hw_link(up)

    # --- receive --------------------------------------------------------------------------------
    def accepts(self, dest: bytes) -> bool:
        """The address filter."""
        f = self.packet_filter
        if f & NDIS_PACKET_TYPE_PROMISCUOUS:
            return True
        if dest == BROADCAST:
            return bool(f & NDIS_PACKET_TYPE_BROADCAST)
        if dest[:1] and dest[0] & 1:
            return bool(f & (NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_ALL_MULTICAST))
        return bool(f & NDIS_PACKET_TYPE_DIRECTED) and dest == self.address

    def _wire_receive(self, frame: bytes) -> None:
        if self.stopped or not self.link_up:
            self.counters.rx_dropped += 1
            return
        self._receive(frame)

    def _receive(self, frame: bytes) -> None:
        if not self.accepts(frame[:6]):
            self.counters.rx_filtered += 1
            return
        self.driver.hw_receive(frame)

    def __repr__(self) -> str:
        return f"<NicHardware {self.name!r} ring={len(self.ring)}/{self.ring_size}>"


__all__ = ["BROADCAST", "NicCounters", "NicDriverEdge", "NicHardware", "Source", "TxSlot"]
