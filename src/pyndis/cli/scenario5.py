"""``pyndis run`` scenario for NDIS 5.x connectionless sends: two hosts on a wire.

Host A runs ndisprot over a *serialized* simulated NIC (a small transmit ring, so NDIS queues
and the miniport refuses with RESOURCES; random completion order; a few frames fail on the
wire). Host B runs ndisprot over the passthru intermediate driver over a *deserialized*
simulated NIC. A sends unicast and broadcast frames to B (batches through NdisSendPackets, single
frames through NdisSend); B answers. Everything that was sent must complete exactly once, every
frame the wire delivered must reach B's ndisprot, and the verifier must stay silent.
"""

from __future__ import annotations

from ..drivers.ndisprot5 import NdisProt5, NdisProtOpen
from ..drivers.passthru5 import Passthru5
from ..drivers.simnic5 import SimNic5, SimNicAdapter
from ..library.kernel import Ndis
from ..status import NDIS_STATUS
from ..wire import Wire, run_kernels
from .scenarios import SCENARIOS, ScenarioResult, count_statuses, finish

MAC_A = b"\x02\x00\x00\x00\x00\x0a"
MAC_B = b"\x02\x00\x00\x00\x00\x0b"
BROADCAST = b"\xff" * 6


def _frame(dst: bytes, src: bytes, seq: int, size: int) -> bytes:
    body = seq.to_bytes(4, "big") + bytes((seq + i) & 0xFF for i in range(size - 18))
    return dst + src + b"\x88\xb5" + body


def _host(
    name: str, seed: int, wire: Wire, mac: bytes, *, deserialized: bool, passthru: bool
) -> tuple[Ndis, NdisProtOpen, SimNicAdapter]:
    ndis = Ndis(seed=seed, verifier=True, name=name)
    status, nic = ndis.NdisMRegisterMiniport(SimNic5(), 5, 1, "simnic")
    assert status == NDIS_STATUS.SUCCESS and nic is not None
    status, adapter = ndis.add_adapter(
        nic,
        "eth0",
        wire=wire,
        address=mac,
        deserialized=deserialized,
        ring=8,
        rate_bps=100_000_000,
        latency_ns=2_000,
        completion="random",
        fail_rate=0.01,
    )
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    target = "eth0"
    if passthru:
        assert Passthru5().register(ndis) == NDIS_STATUS.SUCCESS
        target = "eth0-pt"
    prot = NdisProt5(name="ndisprot", pool=128, bind_to={target})
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS
    ndis.run()  # the PnP offers (ProtocolBindAdapter) are PASSIVE work items
    return ndis, prot.open(target), adapter.MiniportAdapterContext


def _nic(nic: SimNicAdapter) -> str:
    c = nic.counters
    return (
        f"tx {c.tx_packets} (errors {c.tx_errors}, RESOURCES refusals {c.resources_returned}), "
        f"rx {c.rx_packets}"
    )


def scenario_ndis5(seed: int) -> ScenarioResult:
    result = ScenarioResult(
        "ndis5",
        "NdisSend / NdisSendPackets",
        "ndisprot over a serialized NIC (host A) to ndisprot over passthru over a deserialized "
        "NIC (host B), 100 Mbit/s wire, random completion order, 1% wire failures",
    )
    wire = Wire(latency_ns=5_000)
    a, prot_a, nic_a = _host("A", seed, wire, MAC_A, deserialized=False, passthru=False)
    b, prot_b, nic_b = _host("B", seed + 1, wire, MAC_B, deserialized=True, passthru=True)
    seq = 0
    for round_ in range(20):
        batch = []
        for _ in range(24):
            dst = BROADCAST if seq % 10 == 0 else MAC_B
            batch.append(_frame(dst, MAC_A, seq, 64 + (seq * 37) % 1400))
            seq += 1
        prot_a.write_many(batch)
        prot_a.write(_frame(MAC_B, MAC_A, seq, 128))
        seq += 1
        prot_b.write(_frame(MAC_A, MAC_B, round_, 256))
        run_kernels([a, b])
    for o in (prot_a, prot_b):
        result.sent += o.sends
        result.completed += o.completed
        for name, n in count_statuses(dict(o.by_status)).items():
            result.statuses[name] = result.statuses.get(name, 0) + n
    result.delivered = len(prot_b.received) + len(prot_a.received)
    result.details = [
        f"host A ndisprot: {prot_a.sends} sent, {prot_a.completed} completed, "
        f"{len(prot_a.received)} received; NIC {_nic(nic_a)}",
        f"host B ndisprot (over passthru): {prot_b.sends} sent, {prot_b.completed} completed, "
        f"{len(prot_b.received)} received; NIC {_nic(nic_b)}",
        f"wire: {wire.dropped} frames dropped",
    ]
    return finish(result, [a, b])


SCENARIOS["ndis5"] = scenario_ndis5
