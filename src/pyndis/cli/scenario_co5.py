"""``pyndis run`` scenario for CoNDIS 5.x: switched calls between two ATM-like hosts.

Host A's CoNDIS client makes 8 calls to host B's SAP through the NIC's integrated call manager
(NdisClMakeCall -> activation -> ProtocolClMakeCallComplete; B sees ProtocolClIncomingCall and
ProtocolClCallConnected). Both sides send on every VC with NdisCoSendPackets; the NIC completes
in a seeded random order and every packet comes back exactly once through
ProtocolCoSendComplete(Status, ProtocolVcContext, Packet). Then A closes every call
(NdisClCloseCall -> deactivation -> NdisCoDeleteVc) and both adapters are removed.
"""

from __future__ import annotations

from ..drivers.atmsig import atm_call_parameters
from ..testing.atmlab import atm_pair, run
from .scenarios import SCENARIOS, ScenarioResult, count_statuses, finish

SAP = b"\x42"
CALLS = 8
ROUNDS = 6


def scenario_condis5(seed: int) -> ScenarioResult:
    result = ScenarioResult(
        "condis5",
        "NdisCoSendPackets",
        f"CoNDIS client over an ATM-like NIC with integrated call manager, two hosts, {CALLS} "
        "switched calls, packets both ways with seeded random completion order, calls closed",
    )
    a, b, _wire = atm_pair(seed=seed, sap=SAP, completion="random")
    vcs_a = []
    for _ in range(CALLS):
        vcs_a.append(a.client.make_call(a.binding, atm_call_parameters(SAP)))
    run(a, b)
    vcs_b = list(b.client.incoming)
    connected = sum(1 for vc in vcs_a if vc.state == "connected")
    for round_ in range(ROUNDS):
        for host, vcs in ((a, vcs_a), (b, vcs_b)):
            for i, vc in enumerate(vcs):
                payloads = [
                    f"{host.ndis.name}:{i}:{round_}:{k}:".encode() + bytes(48 + 16 * k)
                    for k in range(4)
                ]
                host.client.send(vc, payloads)
        run(a, b)
    statuses: dict[int, int] = {}
    for vc in vcs_a + vcs_b:
        result.sent += vc.sent
        result.completed += vc.completed
        result.delivered += vc.received_count
        for status, n in vc.by_status.items():
            statuses[status] = statuses.get(status, 0) + n
    result.statuses = count_statuses(statuses)
    for vc in vcs_a:
        a.client.close_call(vc)
    run(a, b)
    closed = sum(1 for vc in vcs_a if vc.state != "connected")
    result.details = [
        f"{connected}/{CALLS} calls connected (B accepted {len(vcs_b)} incoming calls)",
        f"{result.sent} packets sent on {len(vcs_a) + len(vcs_b)} VC ends, "
        f"{result.delivered} received at the far ends",
        f"{closed}/{CALLS} calls closed by A",
    ]
    kernels = [a.ndis, b.ndis]
    for host in (a, b):
        host.ndis.remove_adapter(host.adapter)
    return finish(result, kernels)


SCENARIOS["condis5"] = scenario_condis5
