"""Tests for pyndis.library.cosend6: NdisCoSendNetBufferLists, NdisMCoSendNetBufferListsComplete,
CoNDIS 6 receive, completion routing by VC (rules 32, 35, 47-50, 62-64)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pyndis.constants import (
    DIRQL,
    DISPATCH_LEVEL,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL,
)
from pyndis.drivers.coclient6 import ClientBinding, ClientVc, CoClient6
from pyndis.drivers.comini6 import CoMini6, CoMini6Adapter
from pyndis.errors import (
    Culprit,
    IrqlError,
    MiniportContractError,
    NdisUsageError,
    NdisVersionError,
    ProtocolContractError,
)
from pyndis.library.adapter import MiniportBlock
from pyndis.library.kernel import Ndis
from pyndis.mdl import MDL
from pyndis.nbl import NET_BUFFER_LIST, NET_BUFFER_LIST_STATUS_SET, link_nbls
from pyndis.nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NdisAllocateNetBufferAndNetBufferList,
)
from pyndis.ownership import Ownership
from pyndis.status import NDIS_STATUS
from pyndis.wire import Wire, WirePort


@dataclass
class Host:
    ndis: Ndis
    miniport: CoMini6
    adapter: MiniportBlock
    client: CoClient6
    ctx: ClientBinding

    @property
    def a(self) -> CoMini6Adapter:
        ctx: CoMini6Adapter = self.adapter.MiniportAdapterContext
        return ctx


def host(**keywords: Any) -> Host:
    ndis = Ndis(verifier=True)
    miniport = CoMini6()
    _, handle = ndis.NdisMRegisterMiniportDriver(miniport)
    assert handle is not None
    status, adapter = ndis.add_adapter(handle, "co0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    client = CoClient6()
    client.register(ndis)
    ndis.run()  # binding and ProtocolCoAfRegisterNotify are PASSIVE work items
    ctx = client.bindings["co0"]
    assert ctx.af is not None
    return Host(ndis, miniport, adapter, client, ctx)


@pytest.fixture
def h() -> Host:
    return host()


def frames(tag: str, nbls: int, nbs: int) -> list[list[bytes]]:
    return [[f"{tag}.{i}.{j}".encode() for j in range(nbs)] for i in range(nbls)]


def take_waiting(h: Host) -> list[NET_BUFFER_LIST]:
    """The NBLs a stalled comini6 holds, in submission order (taken off its wait list)."""
    out: list[NET_BUFFER_LIST] = []
    for _, nbl, _ in h.a.wait:
        if nbl not in out:
            out.append(nbl)
    h.a.wait.clear()
    return out


def complete_as_miniport(h: Host, vc: ClientVc, nbls: list[NET_BUFFER_LIST], status: int) -> None:
    h.ndis.actors.append(Culprit.MINIPORT)
    try:
        for nbl in nbls:
            nbl.MiniportReserved[0].held -= 1
            NET_BUFFER_LIST_STATUS_SET(nbl, status)
        assert vc.handle is not None
        h.ndis.NdisMCoSendNetBufferListsComplete(vc.handle, link_nbls(nbls), 0)
    finally:
        h.ndis.actors.pop()


def close_all(h: Host) -> None:
    h.ndis.run()
    h.ndis.remove_adapter(h.adapter)
    h.ndis.assert_nothing_lost()
    assert h.ndis.verifier is not None and h.ndis.verifier.check() == []


# --- the required merge test ----------------------------------------------------------------


def test_one_completion_call_carries_nbls_of_several_sends_on_two_vcs_each_to_its_own_context(
    h: Host,
) -> None:
    vc1 = h.client.open_vc(h.ctx, 1)
    vc2 = h.client.open_vc(h.ctx, 2)
    h.client.send(vc1, frames("a", 2, 2))  # three NdisCoSendNetBufferLists calls
    h.client.send(vc2, frames("b", 3, 1))
    h.client.send(vc1, frames("c", 1, 3))
    h.ndis.run()
    # the miniport finished everything in one DPC: one call, NBLs of both VCs
    assert h.a.completion_calls == [(6, 2)]
    # NDIS split it by SourceHandle: each VC's context got only its own NBLs, in one call
    assert vc1.completion_calls == [3] and vc2.completion_calls == [3]
    assert sorted(vc1.completed) == [0, 1, 2] and sorted(vc2.completed) == [0, 1, 2]
    assert vc1.misrouted == vc2.misrouted == 0
    assert vc1.handle is not None and vc1.handle.counters.completed == 3
    assert (
        vc1.handle.counters.bytes_completed
        == vc1.handle.counters.bytes_sent
        == sum(len(f) for f in vc1.sent)
    )
    close_all(h)


# --- rule 47 ----------------------------------------------------------------------------------


def test_rule_47_source_handle_must_be_the_vc_handle(h: Host) -> None:
    vc1 = h.client.open_vc(h.ctx, 1)
    vc2 = h.client.open_vc(h.ctx, 2)
    nbl = h.client.build(vc1, [b"x"])
    assert nbl is not None
    nbl.SourceHandle = vc2.handle
    with pytest.raises(ProtocolContractError) as info:
        h.ndis.NdisCoSendNetBufferLists(vc1.handle, nbl, 0)  # type: ignore[arg-type]
    assert info.value.rule == "R47" and info.value.subject is nbl
    assert nbl.ownership is Ownership.ALLOCATED
    h.client.free_nbl(nbl)
    close_all(h)


def test_rule_47_miniport_completing_an_nbl_of_another_adapter_is_refused() -> None:
    one, two = host(stalled=True), host(stalled=True)
    vc = one.client.open_vc(one.ctx, 1)
    other = two.client.open_vc(two.ctx, 1)
    one.client.send(vc, frames("x", 1, 1))
    [nbl] = take_waiting(one)
    two.ndis.actors.append(Culprit.MINIPORT)
    NET_BUFFER_LIST_STATUS_SET(nbl, NDIS_STATUS.SUCCESS)
    with pytest.raises(MiniportContractError) as info:
        assert other.handle is not None
        two.ndis.NdisMCoSendNetBufferListsComplete(other.handle, nbl, 0)
    assert info.value.rule == "R47"


# --- rules 35, 48, 49, 50 -------------------------------------------------------------------


def test_rule_35_send_on_a_vc_not_activated_completes_vc_not_activated(h: Host) -> None:
    vc = ClientVc(h.ctx, None)
    assert h.ctx.binding is not None and h.ctx.af is not None
    status, handle = h.ndis.NdisCoCreateVc(h.ctx.binding, h.ctx.af, vc)
    assert status == NDIS_STATUS.SUCCESS
    vc.handle = handle
    h.ctx.vcs.append(vc)
    h.client.send(vc, frames("x", 2, 1))
    assert vc.statuses == [NDIS_STATUS.VC_NOT_ACTIVATED] * 2
    assert h.a.completion_calls == []  # never reached the miniport
    assert h.ndis.verifier is not None and h.ndis.verifier.rules() == ["R35"]
    h.ndis.verifier.clear()
    close_all(h)


def test_rule_35_send_after_close_call_completes_closing(h: Host) -> None:
    vc = h.client.open_vc(h.ctx, 1)
    assert vc.handle is not None
    assert h.ndis.NdisClCloseCall(vc.handle) == NDIS_STATUS.SUCCESS
    vc.state = "closed"
    h.client.send(vc, frames("x", 1, 1))
    assert vc.statuses == [NDIS_STATUS.CLOSING]
    assert h.ndis.verifier is not None and h.ndis.verifier.rules() == ["R35"]
    h.ndis.verifier.clear()
    close_all(h)


def test_rule_32_close_call_waits_for_outstanding_sends() -> None:
    h = host(stalled=True)
    vc = h.client.open_vc(h.ctx, 1)
    h.client.send(vc, frames("x", 2, 1))
    assert vc.handle is not None
    assert h.ndis.NdisClCloseCall(vc.handle) == NDIS_STATUS.PENDING  # held back (and flagged)
    h.miniport.unstall(h.a)
    h.ndis.run()
    assert vc.statuses == [NDIS_STATUS.SUCCESS] * 2
    assert vc.state == "closed"  # ProtocolClCloseCallComplete came after the last completion
    assert h.ndis.verifier is not None and h.ndis.verifier.rules() == ["R32"]
    h.ndis.verifier.clear()
    close_all(h)


def test_rule_48_every_nbl_comes_back_once_whatever_its_status() -> None:
    h = host(stalled=True)
    vc = h.client.open_vc(h.ctx, 1)
    h.client.send(vc, frames("x", 3, 2))
    nbls = take_waiting(h)
    complete_as_miniport(h, vc, [nbls[1]], NDIS_STATUS.FAILURE)
    complete_as_miniport(h, vc, [nbls[2], nbls[0]], NDIS_STATUS.SUCCESS)
    assert vc.completed == [1, 2, 0]
    assert vc.statuses == [NDIS_STATUS.FAILURE, NDIS_STATUS.SUCCESS, NDIS_STATUS.SUCCESS]
    close_all(h)


def test_rule_49_per_vc_fifo_reaches_the_miniport(h: Host) -> None:
    h.a.stalled = True
    vc1 = h.client.open_vc(h.ctx, 1)
    vc2 = h.client.open_vc(h.ctx, 2)
    h.client.send(vc1, frames("a", 2, 2))
    h.client.send(vc2, frames("b", 1, 1))
    h.client.send(vc1, frames("c", 1, 1))
    order = [nb for vc, _, nb in h.a.wait if vc.number == 1]
    payloads = [bytes(nb.MdlChain.data) for nb in order if nb.MdlChain is not None]
    assert payloads == [b"a.0.0", b"a.0.1", b"a.1.0", b"a.1.1", b"c.0.0"]
    h.miniport.unstall(h.a)
    close_all(h)


def test_rule_50_bad_status_from_a_co_miniport_is_refused() -> None:
    h = host(stalled=True)
    vc = h.client.open_vc(h.ctx, 1)
    h.client.send(vc, frames("x", 1, 1))
    nbls = take_waiting(h)
    with pytest.raises(MiniportContractError) as info:
        complete_as_miniport(h, vc, nbls, NDIS_STATUS.PENDING)
    assert info.value.rule == "R50"
    assert nbls[0].ownership is Ownership.AT_MINIPORT


# --- rules 62-64 ------------------------------------------------------------------------------


def test_rule_64_co_send_above_dispatch_raises_irql_error(h: Host) -> None:
    vc = h.client.open_vc(h.ctx, 1)
    nbl = h.client.build(vc, [b"x"])
    with h.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        h.ndis.NdisCoSendNetBufferLists(vc.handle, nbl, 0)  # type: ignore[arg-type]
    assert info.value.rule == "R64" and info.value.culprit is Culprit.PROTOCOL
    assert nbl is not None and nbl.ownership is Ownership.ALLOCATED
    h.client.free_nbl(nbl)
    close_all(h)


def test_rule_64_co_send_complete_above_dispatch_raises_irql_error() -> None:
    h = host(stalled=True)
    vc = h.client.open_vc(h.ctx, 1)
    h.client.send(vc, frames("x", 1, 1))
    nbls = take_waiting(h)
    with h.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        complete_as_miniport(h, vc, nbls, NDIS_STATUS.SUCCESS)
    assert info.value.rule == "R64" and info.value.culprit is Culprit.MINIPORT


def test_rule_63_co_send_flags(h: Host) -> None:
    vc = h.client.open_vc(h.ctx, 1)
    h.client.send(vc, frames("x", 1, 1), flags=NDIS_SEND_FLAGS_DISPATCH_LEVEL)  # lie
    with h.ndis.irql.at(DISPATCH_LEVEL):
        h.client.send(vc, frames("y", 1, 1), flags=0)  # legal
    h.ndis.run()
    assert h.ndis.verifier is not None
    assert [(v.rule, v.culprit) for v in h.ndis.verifier.check()] == [("R63", Culprit.PROTOCOL)]
    h.ndis.verifier.clear()
    close_all(h)


def test_rule_63_co_completion_flag_passed_up_matches_the_irql() -> None:
    h = host(stalled=True)
    vc = h.client.open_vc(h.ctx, 1)
    got: list[int] = []
    original = h.client.ProtocolCoSendNetBufferListsComplete

    def spy(context: Any, nbls: Any, flags: int) -> None:
        got.append(flags)
        original(context, nbls, flags)

    h.ndis.protocols[0].handlers["ProtocolCoSendNetBufferListsComplete"] = spy
    h.client.send(vc, frames("x", 1, 1))
    complete_as_miniport(h, vc, take_waiting(h), NDIS_STATUS.SUCCESS)  # at PASSIVE
    h.client.send(vc, frames("y", 1, 1))
    with h.ndis.irql.at(DISPATCH_LEVEL):
        complete_as_miniport(h, vc, take_waiting(h), NDIS_STATUS.SUCCESS)
    assert got == [0, NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL]
    close_all(h)


# --- CoNDIS receive ---------------------------------------------------------------------------


def wired(**keywords: Any) -> tuple[Host, WirePort]:
    """A host on a wire, and a probe port on the same wire that can inject frames."""
    wire = Wire(latency_ns=100)
    h = host(wire=wire, **keywords)
    return h, wire.attach(h.ndis, lambda frame: None, "probe")


def test_co_receive_reaches_the_vc_context_and_comes_back() -> None:
    h, probe = wired()
    vc = h.client.open_vc(h.ctx, 7)
    probe.transmit((7).to_bytes(4, "big") + b"hello")
    probe.transmit((8).to_bytes(4, "big") + b"nobody")  # no VC 8: dropped by the miniport
    h.ndis.run()
    assert vc.received == [b"hello"]
    assert h.a.rx_outstanding == 0 and h.a.rx_dropped == 1  # returned, freed
    assert vc.handle is not None and vc.handle.counters.indicated == 1
    assert vc.handle.counters.bytes_received == 5
    close_all(h)


def test_co_receive_with_resources_is_reclaimed_when_the_handler_returns() -> None:
    h, probe = wired(rcbs=2, low_rcbs=2)
    vc = h.client.open_vc(h.ctx, 7)
    probe.transmit((7).to_bytes(4, "big") + b"hello")
    h.ndis.run()
    assert vc.received == [b"hello"] and h.a.rx_outstanding == 0
    close_all(h)


def test_co_receive_indication_kept_by_the_client_is_reported_lost(h: Host) -> None:
    vc = h.client.open_vc(h.ctx, 1)
    pool = h.ndis.NdisAllocateNetBufferListPool(
        h.adapter, NET_BUFFER_LIST_POOL_PARAMETERS(fAllocateNetBuffer=True)
    )
    assert pool is not None and vc.handle is not None
    mdl = MDL(bytearray(b"kept"), 4, None)
    nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, 4)
    assert nbl is not None
    h.ndis.protocols[0].handlers["ProtocolCoReceiveNetBufferLists"] = lambda *args: None
    h.ndis.NdisMCoIndicateReceiveNetBufferLists(vc.handle, nbl, 1, 0)
    assert nbl.ownership is Ownership.INDICATED
    with pytest.raises(NdisUsageError, match="never returned"):
        h.ndis.assert_nothing_lost()


def test_rule_32_co_receive_on_a_vc_not_activated_is_refused(h: Host) -> None:
    vc = h.client.open_vc(h.ctx, 1)
    h.client.close_vc(vc)
    fresh = h.client.open_vc(h.ctx, 2)
    assert fresh.handle is not None
    assert h.ndis.NdisClCloseCall(fresh.handle) == NDIS_STATUS.SUCCESS
    fresh.state = "closed"
    pool = h.ndis.NdisAllocateNetBufferListPool(
        h.adapter, NET_BUFFER_LIST_POOL_PARAMETERS(fAllocateNetBuffer=True)
    )
    assert pool is not None
    nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, None, 0, 0)
    with pytest.raises(MiniportContractError) as info:
        h.ndis.NdisMCoIndicateReceiveNetBufferLists(fresh.handle, nbl, 1, 0)
    assert info.value.rule == "R32"


def test_version_gate_refuses_co_send_to_ndis5_drivers() -> None:
    from pyndis.library.drivers import DriverBlock, DriverKind

    h = host()
    vc = h.client.open_vc(h.ctx, 1)
    assert vc.handle is not None
    real = vc.handle.sender
    vc.handle.sender = DriverBlock(object(), DriverKind.PROTOCOL, (5, 0), "old", Culprit.PROTOCOL)
    nbl = h.client.build(vc, [b"x"])
    with pytest.raises(NdisVersionError) as info:
        h.ndis.NdisCoSendNetBufferLists(vc.handle, nbl, 0)
    assert "NdisCoSendPackets" in str(info.value)
    vc.handle.sender = real
    assert nbl is not None
    h.client.free_nbl(nbl)
    close_all(h)


def test_rule_66_an_ndis6_client_calling_ndis_co_send_packets_is_refused(h: Host) -> None:
    """NdisCoSendPackets is an NDIS 5.x DDI: an NDIS 6 client calling it on its own VC is bug
    check 0x7C code 0x15, reported as R66 naming NdisCoSendNetBufferLists."""
    from pyndis.errors import NdisVersionError

    vc = h.client.open_vc(h.ctx, 7)
    assert vc.handle is not None
    with pytest.raises(NdisVersionError) as info:
        h.ndis.NdisCoSendPackets(vc.handle, [], 0)
    assert info.value.rule == "R66" and "NdisCoSendNetBufferLists" in str(info.value)
    close_all(h)
