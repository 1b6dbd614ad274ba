"""A simulated wire between kernels, and the loop that runs several kernels together.

Theory of operation
-------------------
A :class:`Wire` joins ports; a miniport model that owns a port calls ``port.transmit(frame)``
and every *other* port on the wire receives a copy through its ``receive`` callback after the
wire's latency (plus serialization time at ``rate_bps``, if given). With a rate, each port's
transmitter sends one frame at a time (a full-duplex link): a frame starts serializing when the
port's previous frame has finished, so a burst leaves at the line rate instead of all at once.
Delivery is a work item on the receiving kernel's scheduler at ``max(receiver now, sender now +
delay)``, at DISPATCH_LEVEL (a NIC's receive DPC). Loss, if configured, is drawn from the
*sending* kernel's seeded random source, so runs stay reproducible.

Kernels keep their own virtual clocks. :func:`run_kernels` co-simulates several of them: it
always runs the earliest due item among all kernels (ties by kernel order), so no kernel's
clock runs ahead of a frame sent to it. This module is sans-I/O: the real back-ends offer the
same ``transmit``/``receive`` shape over TAP, AF_PACKET, UDP or pcap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import NdisUsageError
from .scheduler import PRIORITY_WIRE

if TYPE_CHECKING:
    from .hostctx import HostContext

Receive = Callable[[bytes], None]


class WirePort:
    """One attachment point on a wire."""

    __slots__ = ("busy_until_ns", "host", "name", "receive", "rx_frames", "tx_frames", "wire")

    def __init__(self, wire: Wire, host: HostContext, receive: Receive, name: str) -> None:
        self.wire = wire
        self.host = host
        self.receive = receive
        self.name = name
        self.tx_frames = 0
        self.rx_frames = 0
        #: when this port's transmitter finishes serializing its last frame (sender's clock)
        self.busy_until_ns = 0

    def transmit(self, frame: bytes) -> None:
        """Put a frame on the wire (the bytes are copied: the sender may reuse its buffer)."""
        self.wire.carry(self, bytes(frame))

    def __repr__(self) -> str:
        return f"<port {self.name!r} tx={self.tx_frames} rx={self.rx_frames}>"


class Wire:
    """A shared medium: every frame reaches every other port."""

    def __init__(
        self, latency_ns: int = 1_000, rate_bps: int | None = None, loss: float = 0.0
    ) -> None:
        if latency_ns < 0 or not 0.0 <= loss <= 1.0 or (rate_bps is not None and rate_bps <= 0):
            raise NdisUsageError(
                f"bad wire parameters latency_ns={latency_ns} rate_bps={rate_bps} loss={loss}",
                rule="PY-WIRE",
            )
        self.latency_ns = latency_ns
        self.rate_bps = rate_bps
        self.loss = loss
        self.ports: list[WirePort] = []
        self.dropped = 0

    def attach(self, host: HostContext, receive: Receive, name: str = "") -> WirePort:
        port = WirePort(self, host, receive, name or f"port{len(self.ports)}")
        self.ports.append(port)
        return port

    def carry(self, sender: WirePort, frame: bytes) -> None:
        sender.tx_frames += 1
        if self.loss and sender.host.scheduler.random.random() < self.loss:
            self.dropped += 1
            sender.host.scheduler.trace("wire-drop", sender.name, len(frame))
            return
        sent_at = sender.host.scheduler.now_ns
        delay = self.latency_ns
        if self.rate_bps:
            start = max(sent_at, sender.busy_until_ns)
            sender.busy_until_ns = start + len(frame) * 8 * 1_000_000_000 // self.rate_bps
            delay += sender.busy_until_ns - sent_at
        for port in self.ports:
            if port is sender:
                continue
            sched = port.host.scheduler
            due = max(sched.now_ns, sent_at + delay)
            sched.call_at(due, self._deliver, port, frame, priority=PRIORITY_WIRE, label="wire")

    @staticmethod
    def _deliver(port: WirePort, frame: bytes) -> None:
        port.rx_frames += 1
        port.receive(frame)


def run_kernels(kernels: Sequence[HostContext], max_items: int = 10_000_000) -> int:
    """Run several kernels' schedulers together, earliest item first, until all are idle."""
    ran = 0
    while True:
        best: HostContext | None = None
        best_due = 0
        for k in kernels:
            due = k.scheduler.next_due()
            if due is not None and (best is None or due < best_due):
                best, best_due = k, due
        if best is None:
            return ran
        if ran >= max_items:
            raise NdisUsageError(
                f"kernels still busy after {max_items} items (livelock?)", rule="PY-SCHEDULER"
            )
        best.scheduler.step()
        ran += 1


__all__ = ["Wire", "WirePort", "run_kernels"]
