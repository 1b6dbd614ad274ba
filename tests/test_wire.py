"""The simulated wire (latency, rate, loss, copies) and run_kernels (several clocks in step)."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import DISPATCH_LEVEL
from pyndis.errors import NdisUsageError
from pyndis.hostctx import HostContext
from pyndis.library.kernel import Ndis
from pyndis.wire import Wire, WirePort, run_kernels


class Receiver:
    """A receive callback that notes when, at which IRQL and what arrived."""

    def __init__(self, host: HostContext, name: str = "") -> None:
        self.host = host
        self.name = name
        self.frames: list[tuple[int, int, bytes]] = []

    def __call__(self, frame: bytes) -> None:
        self.frames.append((self.host.scheduler.now_ns, self.host.irql.level, frame))

    @property
    def times(self) -> list[int]:
        return [t for t, _, _ in self.frames]


def pair(wire: Wire, seed: int = 0) -> tuple[HostContext, HostContext, WirePort, Receiver]:
    a, b = HostContext(seed=seed), HostContext(seed=seed)
    port_a = wire.attach(a, Receiver(a), "a")
    rx_b = Receiver(b)
    wire.attach(b, rx_b, "b")
    return a, b, port_a, rx_b


# --- delays ---------------------------------------------------------------------------------------


def test_latency_only() -> None:
    wire = Wire(latency_ns=5_000)
    a, b, port_a, rx_b = pair(wire)
    port_a.transmit(b"hello")
    assert run_kernels([a, b]) == 1
    assert rx_b.frames == [(5_000, DISPATCH_LEVEL, b"hello")]
    assert port_a.receive.frames == []  # type: ignore[attr-defined]  # no echo to the sender
    assert (port_a.tx_frames, port_a.rx_frames) == (1, 0)
    assert wire.ports[1].rx_frames == 1
    assert repr(port_a) == "<port 'a' tx=1 rx=0>"


def test_rate_adds_serialization_time() -> None:
    wire = Wire(latency_ns=1_000, rate_bps=1_000_000_000)
    a, b, port_a, rx_b = pair(wire)
    port_a.transmit(bytes(1500))  # 12,000 bits at 1 Gb/s: 12 us
    run_kernels([a, b])
    assert rx_b.times == [13_000]


def test_a_burst_leaves_at_the_line_rate() -> None:
    wire = Wire(latency_ns=0, rate_bps=8_000_000)  # one byte per microsecond
    a, b, port_a, rx_b = pair(wire)
    for size in (100, 50, 10):
        port_a.transmit(bytes(size))
    run_kernels([a, b])
    assert rx_b.times == [100_000, 150_000, 160_000]


def test_an_idle_transmitter_starts_at_the_send_time() -> None:
    wire = Wire(latency_ns=500, rate_bps=8_000_000)
    a, b, port_a, rx_b = pair(wire)
    port_a.transmit(bytes(10))  # busy until 10 us
    a.scheduler.call_at(50_000, port_a.transmit, bytes(10))
    run_kernels([a, b])
    assert rx_b.times == [10_500, 60_500]


def test_each_port_has_its_own_transmitter() -> None:
    wire = Wire(latency_ns=0, rate_bps=8_000_000)
    a, b = HostContext(), HostContext()
    rx_a, rx_b = Receiver(a), Receiver(b)
    port_a, port_b = wire.attach(a, rx_a), wire.attach(b, rx_b)
    port_a.transmit(bytes(10))
    port_b.transmit(bytes(10))  # full duplex: not queued behind a's frame
    run_kernels([a, b])
    assert rx_a.times == rx_b.times == [10_000]
    assert (port_a.name, port_b.name) == ("port0", "port1")


def test_a_receiver_ahead_in_time_gets_the_frame_at_its_own_now() -> None:
    wire = Wire(latency_ns=1_000)
    _, b, port_a, rx_b = pair(wire)
    b.scheduler.run_until(1_000_000)
    port_a.transmit(b"late")
    b.scheduler.run()
    assert rx_b.times == [1_000_000]


def test_every_other_port_receives_a_frame() -> None:
    wire = Wire(latency_ns=10)
    hosts = [HostContext() for _ in range(3)]
    receivers = [Receiver(h) for h in hosts]
    ports = [wire.attach(h, r) for h, r in zip(hosts, receivers, strict=True)]
    ports[1].transmit(b"x")
    run_kernels(hosts)
    assert [len(r.frames) for r in receivers] == [1, 0, 1]


def test_the_frame_is_copied() -> None:
    wire = Wire()
    a, b, port_a, rx_b = pair(wire)
    buffer = bytearray(b"original")
    port_a.transmit(buffer)
    buffer[:] = b"changed!"  # the sender reuses its buffer at once
    run_kernels([a, b])
    frame = rx_b.frames[0][2]
    assert frame == b"original" and type(frame) is bytes


def test_transmit_accepts_a_memoryview() -> None:
    wire = Wire()
    a, b, port_a, rx_b = pair(wire)
    data = bytearray(b"0123456789")
    port_a.transmit(memoryview(data)[2:5])  # type: ignore[arg-type]
    data[2] = ord("X")
    run_kernels([a, b])
    assert rx_b.frames[0][2] == b"234"


# --- loss -----------------------------------------------------------------------------------------


def delivered_pattern(seed: int, loss: float, count: int = 200) -> list[bytes]:
    wire = Wire(latency_ns=1, loss=loss)
    a, b, port_a, rx_b = pair(wire, seed=seed)
    for i in range(count):
        port_a.transmit(i.to_bytes(2, "big"))
    run_kernels([a, b])
    assert wire.dropped + len(rx_b.frames) == count == port_a.tx_frames
    return [f for _, _, f in rx_b.frames]


def test_loss_is_deterministic_for_a_seed() -> None:
    first = delivered_pattern(seed=7, loss=0.3)
    assert first == delivered_pattern(seed=7, loss=0.3)
    assert first != delivered_pattern(seed=8, loss=0.3)
    assert 0 < len(first) < 200


def test_no_loss_and_total_loss() -> None:
    assert len(delivered_pattern(seed=1, loss=0.0)) == 200
    assert delivered_pattern(seed=1, loss=1.0) == []


def test_loss_is_drawn_from_the_senders_random_source_and_traced() -> None:
    wire = Wire(loss=1.0)
    a, b, port_a, _ = pair(wire)
    before = b.scheduler.random.getstate()
    port_a.transmit(b"abc")
    assert b.scheduler.random.getstate() == before
    assert a.scheduler.random.getstate() != HostContext().scheduler.random.getstate()
    assert wire.dropped == 1
    assert a.scheduler.events[-1].split()[1:] == ["wire-drop", "a", "3"]


def test_loss_does_not_consume_randomness_when_off() -> None:
    wire = Wire(loss=0.0)
    a, _, port_a, _ = pair(wire)
    before = a.scheduler.random.getstate()
    port_a.transmit(b"abc")
    assert a.scheduler.random.getstate() == before


# --- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"latency_ns": -1},
        {"loss": -0.01},
        {"loss": 1.01},
        {"rate_bps": 0},
        {"rate_bps": -10},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(NdisUsageError) as info:
        Wire(**kwargs)
    assert info.value.rule == "PY-WIRE"


def test_edge_parameters_are_accepted() -> None:
    wire = Wire(latency_ns=0, rate_bps=1, loss=1.0)
    assert (wire.latency_ns, wire.rate_bps, wire.loss) == (0, 1, 1.0)
    assert Wire(rate_bps=None).rate_bps is None


# --- run_kernels ----------------------------------------------------------------------------------


def test_run_kernels_runs_the_earliest_item_first_across_kernels() -> None:
    wire = Wire(latency_ns=1_000)
    a, b = Ndis(name="a"), Ndis(name="b")
    order: list[tuple[str, int]] = []
    ports: dict[str, WirePort] = {}

    def make_receive(host: Ndis, other: str) -> Any:
        def receive(frame: bytes) -> None:
            order.append((host.name, host.scheduler.now_ns))
            hops = frame[0]
            if hops:
                ports[host.name].transmit(bytes([hops - 1]))

        return receive

    ports["a"] = wire.attach(a, make_receive(a, "b"), "a")
    ports["b"] = wire.attach(b, make_receive(b, "a"), "b")
    # unrelated local work interleaves with the ping-pong by virtual time
    for t in (500, 1_500, 2_500, 3_500):
        a.scheduler.call_at(t, lambda t=t: order.append(("a-local", t)))
        b.scheduler.call_at(t, lambda t=t: order.append(("b-local", t)))
    ports["a"].transmit(bytes([3]))
    assert run_kernels([a, b]) == 12
    assert order == [
        ("a-local", 500),
        ("b-local", 500),
        ("b", 1_000),
        ("a-local", 1_500),
        ("b-local", 1_500),
        ("a", 2_000),
        ("a-local", 2_500),
        ("b-local", 2_500),
        ("b", 3_000),
        ("a-local", 3_500),
        ("b-local", 3_500),
        ("a", 4_000),
    ]
    assert a.scheduler.now_ns == 4_000 and b.scheduler.now_ns == 3_500


def test_run_kernels_ties_go_to_the_first_kernel() -> None:
    a, b = HostContext(), HostContext()
    order: list[str] = []
    b.scheduler.call_at(10, order.append, "b")
    a.scheduler.call_at(10, order.append, "a")
    run_kernels([b, a])
    assert order == ["b", "a"]


def test_run_kernels_when_idle() -> None:
    assert run_kernels([HostContext(), HostContext()]) == 0
    assert run_kernels([]) == 0


def test_run_kernels_stops_a_livelock() -> None:
    a = HostContext()

    def again() -> None:
        a.scheduler.call_later(1, again)

    again()
    with pytest.raises(NdisUsageError) as info:
        run_kernels([a], max_items=50)
    assert info.value.rule == "PY-SCHEDULER"


def test_run_kernels_with_exactly_max_items_of_work_is_not_a_livelock() -> None:
    a, b = HostContext(), HostContext()
    a.scheduler.call_later(1, lambda: None)
    b.scheduler.call_later(2, lambda: None)
    assert run_kernels([a, b], max_items=2) == 2
