"""Two kernels, one wire, CoNDIS 5.x end to end: 100 switched VCs carrying 10,000 packets each
from A to B with a seeded random completion order. Checked: every VC's packets reach the
miniport in the order they were sent (rule 36), every packet completes exactly once (rule 37),
every frame arrives in order and byte-identical at the far end, nothing is lost and every pool
balances. Smaller runs check traffic both ways with the verifier on, and determinism.

The big run takes about 15 s on the project VM (verifier off: histories would record four
ownership moves per packet); descriptors are reused (a window of 64 per VC) and sent in
batches of 16."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pyndis.drivers.atmnic5 import AtmNic5, AtmVc
from pyndis.drivers.atmsig import atm_call_parameters
from pyndis.drivers.coclient5 import ClientVc
from pyndis.drivers.costream import STREAM_HEADER, StreamChecker, StreamSender
from pyndis.mdl import NdisQueryBuffer
from pyndis.packet import NDIS_PACKET
from pyndis.status import NDIS_STATUS
from pyndis.testing.atmlab import AtmHost, atm_host, run
from pyndis.wire import Wire

S = NDIS_STATUS
SAP = b"\x42"
PATTERN = random.Random(2026).randbytes(1100)


class CheckingNic(AtmNic5):
    """The ATM NIC, checking at MiniportCoSendPackets that each VC's packets come in the order
    their sender numbered them (rule 36: NDIS submits FIFO, per call and across calls)."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: dict[AtmVc, int] = {}
        self.out_of_order = 0
        self.submitted = 0

    def MiniportCoSendPackets(
        self, MiniportVcContext: AtmVc, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int
    ) -> None:
        expect = self.expected.get(MiniportVcContext, 0)
        for i in range(NumberOfPackets):
            head = PacketArray[i].Private.Head
            assert head is not None
            header, _length = NdisQueryBuffer(head)
            seq = STREAM_HEADER.unpack_from(header)[1]
            if seq != expect:
                self.out_of_order += 1
            expect = seq + 1
        self.expected[MiniportVcContext] = expect
        self.submitted += NumberOfPackets
        super().MiniportCoSendPackets(MiniportVcContext, PacketArray, NumberOfPackets)


def hosts(
    seed: int, vcs: int, *, verifier: bool, trace: bool, window: int = 64
) -> tuple[AtmHost, AtmHost, CheckingNic, CheckingNic]:
    wire = Wire(latency_ns=5_000)
    nics = CheckingNic(), CheckingNic()
    common = {
        "verifier": verifier,
        "trace": trace,
        "completion": "random",
        "tx_quantum": 16,
        "tx_burst": 256,
        "rx_packets": 1024,
    }
    size = vcs * window + 64
    client = {"packets": size, "buffers": 2 * size + 64, "keep_data": False}
    a = atm_host("A", wire, seed=seed, vci_range=(32, 999), driver=nics[0], client=client, **common)
    b = atm_host(
        "B",
        wire,
        seed=seed + 1,
        vci_range=(1000, 1999),
        driver=nics[1],
        client={**client, "sap": SAP},
        **common,
    )
    run(a, b)
    return a, b, nics[0], nics[1]


def connect(a: AtmHost, b: AtmHost, count: int) -> list[tuple[ClientVc, ClientVc]]:
    first = len(b.client.incoming)
    vcs = [a.client.make_call(a.binding, atm_call_parameters(SAP)) for _ in range(count)]
    run(a, b)
    assert all(vc.state == "connected" for vc in vcs)
    return list(zip(vcs, b.client.incoming[first:], strict=True))


def stream(
    sender: AtmHost, pairs: list[tuple[ClientVc, ClientVc]], packets: int, first_id: int
) -> list[tuple[StreamSender, StreamChecker]]:
    out = []
    for i, (vc, peer) in enumerate(pairs):
        s = StreamSender(sender.client, vc, first_id + i, packets, PATTERN, window=64, batch=16)
        out.append((s, StreamChecker(peer, first_id + i, PATTERN, s)))
    return out


def check(streams: list[tuple[StreamSender, StreamChecker]], packets: int) -> None:
    once = bytes([1]) * packets
    for sender, checker in streams:
        assert sender.finished and sender.statuses == {S.SUCCESS: packets}
        assert sender.completions == once  # exactly one completion per packet
        assert checker.errors == [] and checker.expected == packets
        sent = sender.vc.handle
        received = checker.vc.handle
        assert sent is not None and received is not None
        c = sent.counters
        assert c.sent == c.completed == packets and c.by_status == {S.SUCCESS: packets}
        assert c.bytes_sent == c.bytes_completed == checker.bytes
        assert received.counters.indicated == packets
        assert received.counters.bytes_received == checker.bytes


def close_all(a: AtmHost, b: AtmHost, streams: list[tuple[StreamSender, StreamChecker]]) -> None:
    for sender, _checker in streams:
        sender.release()
        a.client.close_call(sender.vc)
    run(a, b)
    assert all(s.vc.state == "deleted" and c.vc.state == "deleted" for s, c in streams)
    for host in (a, b):
        host.finish()


def test_hundred_vcs_ten_thousand_packets_each_random_completion_order() -> None:
    vcs, packets = 100, 10_000
    a, b, nic_a, _nic_b = hosts(seed=11, vcs=vcs, verifier=False, trace=False)
    streams = stream(a, connect(a, b, vcs), packets, first_id=0)
    for sender, _checker in streams:
        sender.pump()
    run(a, b)
    check(streams, packets)
    assert nic_a.submitted == vcs * packets and nic_a.out_of_order == 0
    a.ndis.assert_nothing_lost()
    b.ndis.assert_nothing_lost()
    assert b.ndis.co_held() == 0 and len(b.nic.rx_free) == 1024
    close_all(a, b, streams)


def test_traffic_both_ways_with_the_verifier_on() -> None:
    a, b, nic_a, nic_b = hosts(seed=5, vcs=20, verifier=True, trace=True)
    pairs = connect(a, b, 10)
    forward = stream(a, pairs, 300, first_id=0)
    backward = stream(b, [(peer, vc) for vc, peer in pairs], 300, first_id=100)
    for sender, _checker in forward + backward:
        sender.pump()
    run(a, b)
    check(forward, 300)
    check(backward, 300)
    assert nic_a.out_of_order == nic_b.out_of_order == 0
    for sender, _checker in backward:
        sender.release()
    close_all(a, b, forward)


def _trace(seed: int) -> tuple[str, str]:
    a, b, _na, _nb = hosts(seed=seed, vcs=4, verifier=False, trace=True)
    streams = stream(a, connect(a, b, 4), 200, first_id=0)
    for sender, _checker in streams:
        sender.pump()
    run(a, b)
    check(streams, 200)
    return a.ndis.scheduler.trace_text(), b.ndis.scheduler.trace_text()


def test_same_seed_same_trace_byte_for_byte() -> None:
    first, again, other = _trace(21), _trace(21), _trace(22)
    assert first == again
    assert first[0] != other[0]  # another seed, another completion order
    assert "co-complete" in first[0] and "co-indicate" in first[1]
