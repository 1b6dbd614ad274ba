"""``pyndis run`` scenarios for NDIS 6: NdisSendNetBufferLists and NdisCoSendNetBufferLists.

``ndis6``: two hosts on a wire, ndisprot6 over netvmini6 (bounded transmit blocks, completions
batched per DPC in a seeded random order). Host A sends NBL chains (several NBs per NBL) with
NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK, pauses and restarts its adapter in the middle (sends made
while paused come back NDIS_STATUS_PAUSED) and cancels nothing; B answers.

``condis6``: two hosts, a CoNDIS 6 miniport with an integrated call manager on each, 16 VCs
opened by the CoNDIS 6 client on both sides; NBL chains go both ways on every VC and must
arrive in order, byte for byte, each NBL completing once to its own VC.
"""

from __future__ import annotations

from ..drivers.coclient6 import CoClient6
from ..drivers.comini6 import CoMini6
from ..drivers.ndisprot6 import NdisProt6, ProtOpen
from ..drivers.netvmini6 import NetVMini6
from ..library.kernel import Ndis
from ..status import NDIS_STATUS
from ..wire import Wire, run_kernels
from .scenarios import SCENARIOS, ScenarioResult, count_statuses, finish

MAC_A = b"\x02\x00\x00\x00\x06\x0a"
MAC_B = b"\x02\x00\x00\x00\x06\x0b"
BROADCAST = b"\xff" * 6


def _frame(dst: bytes, src: bytes, seq: int, size: int) -> bytes:
    return dst + src + b"\x88\xb5" + seq.to_bytes(4, "big") + bytes(size - 18)


def _host6(name: str, seed: int, wire: Wire, mac: bytes) -> tuple[Ndis, NdisProt6, ProtOpen]:
    ndis = Ndis(seed=seed, verifier=True, name=name)
    _, handle = ndis.NdisMRegisterMiniportDriver(NetVMini6(), 6, 0, "netvmini")
    assert handle is not None
    status, adapter = ndis.add_adapter(
        handle,
        "vmini0",
        wire=wire,
        address=mac,
        tcbs=8,
        jitter_ns=500,
        coalesce_ns=2_000,
        random_order=True,
        rcbs=256,
    )
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    prot = NdisProt6()
    assert prot.register(ndis, "ndisprot6") == NDIS_STATUS.SUCCESS
    ndis.run()  # the PnP offers (ProtocolBindAdapterEx) are PASSIVE work items
    return ndis, prot, prot.opens["vmini0"]


def scenario_ndis6(seed: int) -> ScenarioResult:
    result = ScenarioResult(
        "ndis6",
        "NdisSendNetBufferLists",
        "ndisprot6 over netvmini6 on two hosts; NBL chains with CHECK_FOR_LOOPBACK; host A's "
        "adapter paused and restarted mid-run",
    )
    wire = Wire(latency_ns=5_000, rate_bps=1_000_000_000)
    a, prot_a, open_a = _host6("A", seed, wire, MAC_A)
    b, prot_b, open_b = _host6("B", seed + 1, wire, MAC_B)
    sent = 0
    paused_refusals = 0
    for round_ in range(12):
        chains = [
            [
                _frame(BROADCAST if i == 0 else MAC_B, MAC_A, round_ * 100 + i * 4 + j, 64 + 40 * j)
                for j in range(1 + i % 3)
            ]
            for i in range(16)
        ]
        if prot_a.send(open_a, chains) == NDIS_STATUS.PENDING:
            sent += len(chains)
        if prot_b.send(open_b, [[_frame(MAC_A, MAC_B, round_, 128)]]) == NDIS_STATUS.PENDING:
            sent += 1
        if round_ == 5:
            adapter = a.adapters["vmini0"]
            a.pause_adapter(adapter)
            # while paused, ndisprot refuses to send ("not ready"), as the sample does
            if prot_a.send(open_a, [[_frame(MAC_B, MAC_A, 9999, 64)]]) != NDIS_STATUS.PENDING:
                paused_refusals += 1
            a.restart_adapter(adapter)
        run_kernels([a, b])
    statuses: dict[int, int] = {}
    for o in (open_a, open_b):
        for s in o.statuses:
            statuses[s] = statuses.get(s, 0) + 1
    result.sent = sent
    result.completed = len(open_a.statuses) + len(open_b.statuses)
    result.statuses = count_statuses(statuses)
    result.delivered = len(open_a.received) + len(open_b.received)
    calls = open_a.completion_calls
    result.details = [
        f"host A: {len(open_a.statuses)} NBLs completed in {len(calls)} completion calls "
        f"(largest merged call {max(calls, default=0)} NBLs); {len(open_a.received)} frames "
        f"received ({sum(1 for _, lb in open_a.received if lb)} loopback)",
        f"host B: {len(open_b.statuses)} NBLs completed, {len(open_b.received)} frames received",
        f"a send attempted while host A's binding was paused was refused {paused_refusals} time(s)",
    ]
    return finish(result, [a, b])


def scenario_condis6(seed: int) -> ScenarioResult:
    result = ScenarioResult(
        "condis6",
        "NdisCoSendNetBufferLists",
        "CoNDIS 6 client over a CoNDIS 6 miniport with integrated call manager, two hosts, "
        "16 VCs, NBL chains both ways with seeded random completion order",
    )
    wire = Wire(latency_ns=20_000, rate_bps=1_000_000_000)
    sides = []
    for name, s in (("A", seed), ("B", seed + 1)):
        ndis = Ndis(seed=s, name=name, verifier=True)
        _, handle = ndis.NdisMRegisterMiniportDriver(CoMini6())
        assert handle is not None
        status, _adapter = ndis.add_adapter(
            handle, "co0", wire=wire, tcbs=32, jitter_ns=3_000, coalesce_ns=4_000, rcbs=1024
        )
        assert status == NDIS_STATUS.SUCCESS
        client = CoClient6()
        assert client.register(ndis) == NDIS_STATUS.SUCCESS
        sides.append((ndis, client))
    kernels = [ndis for ndis, _ in sides]
    run_kernels(kernels)
    vcs = [[client.open_vc(client.bindings["co0"], n) for n in range(1, 17)] for _, client in sides]
    for round_ in range(4):
        for (ndis, client), side_vcs in zip(sides, vcs, strict=True):
            for vc in side_vcs:
                chain = [
                    [f"{ndis.name}:{vc.number}:{round_}:{i}:{j}".encode() * 3 for j in range(2)]
                    for i in range(3)
                ]
                if client.send(vc, chain) == NDIS_STATUS.PENDING:
                    result.sent += len(chain)
        run_kernels(kernels)
    statuses: dict[int, int] = {}
    for side_vcs in vcs:
        for vc in side_vcs:
            result.completed += len(vc.completed)
            for s in vc.statuses:
                statuses[s] = statuses.get(s, 0) + 1
            result.delivered += len(vc.received)
    result.statuses = count_statuses(statuses)
    misrouted = sum(vc.misrouted for side_vcs in vcs for vc in side_vcs)
    result.details = [
        f"{sum(len(v) for v in vcs)} VCs, {result.completed} NBLs completed, "
        f"{result.delivered} NET_BUFFERs delivered, {misrouted} completions misrouted",
    ]
    for (_, client), side_vcs in zip(sides, vcs, strict=True):
        for vc in side_vcs:
            client.close_vc(vc)
    run_kernels(kernels)
    return finish(result, kernels)


SCENARIOS["ndis6"] = scenario_ndis6
SCENARIOS["condis6"] = scenario_condis6
