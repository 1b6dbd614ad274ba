"""Tests for pyndis.library.send6: NdisSendNetBufferLists and its completion (rules 47-53,
57-59, 62-64), completion batching, re-entrancy, the version gate and determinism."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    DIRQL,
    DISPATCH_LEVEL,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_COMPLETE_FLAGS_SINGLE_QUEUE,
    NDIS_SEND_COMPLETE_FLAGS_SWITCH_SINGLE_SOURCE,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_SINGLE_QUEUE,
    NDIS_SEND_FLAGS_SWITCH_DESTINATION_GROUP,
    NDIS_SEND_FLAGS_SWITCH_SINGLE_SOURCE,
    Ieee8021QNetBufferListInfo,
    TcpIpChecksumNetBufferListInfo,
)
from pyndis.errors import (
    Culprit,
    IntermediateContractError,
    IrqlError,
    MiniportContractError,
    NdisError,
    NdisUsageError,
    NdisVersionError,
    ProtocolContractError,
)
from pyndis.library.drivers import DDI_VERSIONS, DriverBlock, DriverKind, check_version
from pyndis.library.kernel import Ndis
from pyndis.library.send6 import MODEL_COMPLETION_STATUSES, SEND_COMPLETION_STATUSES
from pyndis.library.states import ADAPTER_TRANSITIONS, AdapterState, BindingState, move
from pyndis.nbl import (
    NDIS_SET_NET_BUFFER_LIST_CANCEL_ID,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_INFO,
    NET_BUFFER_LIST_INFO_SET,
    NET_BUFFER_LIST_STATUS,
    NdisAdvanceNetBufferDataStart,
    NdisRetreatNetBufferDataStart,
    link_nbls,
)
from pyndis.nblpool import NdisFreeNetBufferList
from pyndis.ownership import Event, Ownership
from pyndis.status import NDIS_STATUS
from pyndis.testing.passthru6 import Passthru6
from pyndis.testing.stack6 import Hold6Miniport, Raw6Protocol, Stack6, build_stack, make_frame


@pytest.fixture
def s() -> Stack6:
    return build_stack()


def held(s: Stack6) -> list[NET_BUFFER_LIST]:
    return list(s.a.held)


def owned(nbls: list[NET_BUFFER_LIST]) -> set[Ownership]:
    return {nbl.ownership for nbl in nbls}


def finish(s: Stack6) -> None:
    """Free what the test protocol got back and check nothing is lost."""
    s.ndis.run()
    for nbl in s.ctx.completed:
        if nbl.ownership is Ownership.ALLOCATED:
            s.protocol.free(nbl)
    s.ndis.assert_nothing_lost()


# --- rule 47: SourceHandle -----------------------------------------------------------------------


def test_rule_47_source_handle_must_be_the_binding_handle(s: Stack6) -> None:
    good = s.protocol.chain(s.ctx, 2)
    bad = s.protocol.nbl(None)  # SourceHandle left NULL
    with pytest.raises(ProtocolContractError) as info:
        s.protocol.send(s.ctx, [*good, bad])
    assert info.value.rule == "R47"
    assert info.value.subject is bad
    assert "SourceHandle" in str(info.value)
    # nothing of the call is kept: the whole chain is the protocol's again
    assert owned([*good, bad]) == {Ownership.ALLOCATED}
    assert s.a.calls == [] and s.ctx.completions == []
    assert s.ctx.binding is not None and s.ctx.binding.counters.sent == 0
    for nbl in (*good, bad):
        s.protocol.free(nbl)
    s.ndis.assert_nothing_lost()


def test_rule_47_another_bindings_handle_is_refused() -> None:
    s = build_stack()
    other = Raw6Protocol()
    other.register(s.ndis)
    s.ndis.run()
    nbl = s.protocol.nbl(other.opens["nic0"])
    with pytest.raises(ProtocolContractError) as info:
        s.protocol.send(s.ctx, [nbl])
    assert info.value.rule == "R47"


def test_rule_47_completions_route_by_source_handle_across_bindings() -> None:
    s = build_stack()
    second = Raw6Protocol()
    second.register(s.ndis)
    s.ndis.run()
    b = second.opens["nic0"]
    mine = s.protocol.chain(s.ctx, 2)
    theirs = second.chain(b, 3)
    s.protocol.send(s.ctx, mine)
    second.send(b, theirs)
    # one completion call, NBLs of both bindings interleaved
    mixed = [theirs[0], mine[1], theirs[2], mine[0], theirs[1]]
    s.miniport.complete(s.a, mixed)
    assert s.ctx.completed == [mine[1], mine[0]]
    assert b.completed == [theirs[0], theirs[2], theirs[1]]
    assert len(s.ctx.completions) == 1 and len(b.completions) == 1
    for nbl in theirs:
        second.free(nbl)
    finish(s)


def test_rule_47_intermediate_forwards_nbls_and_restores_source_handle() -> None:
    ndis = Ndis(verifier=True)
    below = Hold6Miniport()
    _, handle = ndis.NdisMRegisterMiniportDriver(below)
    assert handle is not None
    ndis.add_adapter(handle, "nic0", mode="dpc")
    im = Passthru6()
    im.register(ndis)
    top = Raw6Protocol(only=["nic0-pt"])
    top.register(ndis)
    ndis.run()  # the PnP offers are PASSIVE work items
    ctx = top.opens["nic0-pt"]
    nbls = top.chain(ctx, 3, nbs=2)
    top.send(ctx, nbls)
    lower_calls = ndis.adapters["nic0"].MiniportAdapterContext.calls
    # the very same NBLs reached the real miniport, carrying the intermediate's binding
    assert lower_calls[0][0] == nbls
    assert all(n.SourceHandle is im.pairs["nic0"].lower for n in nbls)
    ndis.run()
    assert ctx.completed == nbls
    assert all(n.SourceHandle is ctx.binding for n in nbls)
    events = [e.event for e in nbls[0].history or []]
    assert events == [
        Event.ALLOCATE,
        Event.SEND,
        Event.SUBMIT,
        Event.FORWARD,
        Event.SUBMIT,
        Event.COMPLETE,
        Event.RETURN_FORWARDED,
        Event.COMPLETE,
        Event.RETURN,
    ]
    assert owned(nbls) == {Ownership.ALLOCATED}
    assert im.pairs["nic0"].forwarded == 3
    assert ndis.verifier is not None and ndis.verifier.check() == []
    for nbl in nbls:
        top.free(nbl)
    ndis.assert_nothing_lost()


def test_rule_47_intermediate_that_does_not_restore_source_handle_is_named() -> None:
    ndis = Ndis(verifier=True)
    below = Hold6Miniport()
    _, handle = ndis.NdisMRegisterMiniportDriver(below)
    assert handle is not None
    ndis.add_adapter(handle, "nic0", mode="dpc")
    Passthru6(restore=False).register(ndis)
    top = Raw6Protocol(only=["nic0-pt"])
    top.register(ndis)
    ndis.run()  # the PnP offers are PASSIVE work items
    ctx = top.opens["nic0-pt"]
    top.send(ctx, top.chain(ctx, 1))
    with pytest.raises(IntermediateContractError) as info:
        ndis.run()
    assert info.value.rule == "R47"
    assert info.value.culprit is Culprit.INTERMEDIATE


def test_rule_47_a_plain_protocol_cannot_forward_an_nbl_it_was_given(s: Stack6) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    assert nbl.ownership is Ownership.AT_MINIPORT
    with pytest.raises(ProtocolContractError) as info:
        s.protocol.send(s.ctx, [nbl])
    assert info.value.rule == "R17"


# --- rule 48: no status, exactly one completion ---------------------------------------------------


def test_rule_48_send_returns_nothing_and_each_nbl_completes_exactly_once(s: Stack6) -> None:
    nbls = s.protocol.chain(s.ctx, 4)
    assert s.ctx.binding is not None
    result: Any = s.ndis.NdisSendNetBufferLists(s.ctx.binding, link_nbls(nbls), 0, 0)
    assert result is None
    s.miniport.complete(s.a, [nbls[2]], NDIS_STATUS.FAILURE)
    s.miniport.complete(s.a, [nbls[0], nbls[3]])
    s.miniport.complete(s.a, [nbls[1]], NDIS_STATUS.RESOURCES)
    done = s.ctx.completed
    assert sorted(map(id, done)) == sorted(map(id, nbls))
    assert [NET_BUFFER_LIST_STATUS(n) for n in done] == [
        NDIS_STATUS.FAILURE,
        NDIS_STATUS.SUCCESS,
        NDIS_STATUS.SUCCESS,
        NDIS_STATUS.RESOURCES,
    ]
    assert s.ctx.binding.counters.by_status[NDIS_STATUS.FAILURE] == 1
    finish(s)


def test_rule_48_a_second_completion_of_the_same_nbl_raises(s: Stack6) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    s.miniport.complete(s.a, [nbl])
    with pytest.raises(MiniportContractError) as info:
        s.miniport.complete(s.a, [nbl])
    assert info.value.rule == "PY-DOUBLE-COMPLETE"


def test_rule_48_an_nbl_listed_twice_in_one_completion_raises_before_anything_moves(
    s: Stack6,
) -> None:
    nbls = s.protocol.chain(s.ctx, 2)
    s.protocol.send(s.ctx, nbls)
    nbls[1].Next = nbls[0]
    nbls[0].Next = nbls[1]  # a loop
    with pytest.raises(MiniportContractError):
        s.ndis.NdisMSendNetBufferListsComplete(s.adapter, nbls[0], 0)
    assert owned(nbls) == {Ownership.AT_MINIPORT}


def test_rule_48_the_sender_must_not_free_or_touch_an_nbl_in_flight(s: Stack6) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    with pytest.raises(NdisError) as info:
        NdisFreeNetBufferList(nbl)
    assert info.value.rule == "R48"
    NET_BUFFER_LIST_STATUS(nbl)  # read by the "protocol" (test code) while in flight
    assert s.ndis.verifier is not None
    assert "R48" in s.ndis.verifier.rules()


def test_rule_48_an_empty_or_null_chain_is_refused(s: Stack6) -> None:
    assert s.ctx.binding is not None
    with pytest.raises(ProtocolContractError) as info:
        s.ndis.NdisSendNetBufferLists(s.ctx.binding, None, 0, 0)
    assert info.value.rule == "PY-NULL-NBL"
    nbl = s.protocol.nbl(s.ctx)
    keep = nbl.FirstNetBuffer
    nbl.FirstNetBuffer = None
    with pytest.raises(ProtocolContractError) as info:
        s.protocol.send(s.ctx, [nbl])
    assert info.value.rule == "PY-EMPTY-NBL"
    assert nbl.ownership is Ownership.ALLOCATED
    nbl.FirstNetBuffer = keep


# --- rule 49: FIFO submission, free completion order, batching, NB chains ----------------------


def test_rule_49_submission_is_fifo_across_calls(s: Stack6) -> None:
    first = s.protocol.chain(s.ctx, 3)
    second = s.protocol.chain(s.ctx, 2)
    s.protocol.send(s.ctx, first)
    s.protocol.send(s.ctx, second)
    assert [call[0] for call in s.a.calls] == [first, second]
    assert held(s) == first + second
    s.miniport.complete(s.a, list(reversed(held(s))))  # any completion order
    assert s.ctx.completed == list(reversed(first + second))
    finish(s)


def test_rule_49_miniport_may_split_and_merge_completions(s: Stack6) -> None:
    a_nbls = s.protocol.chain(s.ctx, 2)
    b_nbls = s.protocol.chain(s.ctx, 2)
    s.protocol.send(s.ctx, a_nbls)
    s.protocol.send(s.ctx, b_nbls)
    s.miniport.complete(s.a, [a_nbls[1], b_nbls[0]])  # merges two sends
    s.miniport.complete(s.a, [a_nbls[0]])  # splits the first
    s.miniport.complete(s.a, [b_nbls[1]])
    assert [len(c[0]) for c in s.ctx.completions] == [2, 1, 1]
    finish(s)


def test_rule_49_ndis_batches_completions_made_during_one_dpc() -> None:
    s = build_stack()
    nbls = s.protocol.chain(s.ctx, 5)
    for nbl in nbls:
        s.protocol.send(s.ctx, [nbl])  # five send calls

    def dpc() -> None:  # the miniport completes them one call at a time, in one DPC
        for nbl in reversed(nbls):
            s.miniport.complete(s.a, [nbl], flags=NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL)

    s.ndis.scheduler.queue_dpc(dpc)
    s.ndis.run()
    assert len(s.ctx.completions) == 1
    delivered, flags = s.ctx.completions[0]
    assert delivered == list(reversed(nbls))
    assert flags == NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
    finish(s)


def test_rule_49_one_call_per_context_even_when_bindings_share_it() -> None:
    s = build_stack()
    second = Raw6Protocol()
    second.register(s.ndis)
    s.ndis.run()
    b = second.opens["nic0"]
    x = s.protocol.chain(s.ctx, 2)
    y = second.chain(b, 2)
    s.protocol.send(s.ctx, x)
    second.send(b, y)

    def dpc() -> None:
        s.miniport.complete(s.a, [y[0], x[0]])
        s.miniport.complete(s.a, [x[1], y[1]])

    s.ndis.scheduler.queue_dpc(dpc)
    s.ndis.run()
    assert [c[0] for c in s.ctx.completions] == [[x[0], x[1]]]
    assert [c[0] for c in b.completions] == [[y[0], y[1]]]
    for nbl in y:
        second.free(nbl)
    finish(s)


def test_rule_49_nb_chain_changed_by_the_miniport_is_flagged_against_it(s: Stack6) -> None:
    nbl = s.protocol.nbl(s.ctx, make_frame(payload=b"a"), make_frame(payload=b"b"))
    s.protocol.send(s.ctx, [nbl])
    first = nbl.FirstNetBuffer
    assert first is not None
    second = first.Next
    first.Next = None  # the miniport drops the second NB
    s.miniport.complete(s.a, [nbl])
    assert s.ndis.verifier is not None
    violations = s.ndis.verifier.check()
    assert [v.rule for v in violations] == ["PY-NB-CHAIN-CHANGED"]
    assert violations[0].culprit is Culprit.MINIPORT
    first.Next = second
    finish(s)


def test_rule_49_nb_chain_restored_before_completion_is_fine(s: Stack6) -> None:
    nbl = s.protocol.nbl(s.ctx)
    s.protocol.send(s.ctx, [nbl])
    nb = nbl.FirstNetBuffer
    assert nb is not None
    s.ndis.actors.append(Culprit.MINIPORT)
    assert NdisRetreatNetBufferDataStart(nb, 14, 0) == NDIS_STATUS.SUCCESS  # a header
    NdisAdvanceNetBufferDataStart(nb, 14, True)
    s.ndis.actors.pop()
    s.miniport.complete(s.a, [nbl])
    assert s.ndis.verifier is not None and s.ndis.verifier.check() == []
    finish(s)


def test_rule_49_net_buffer_list_info_reaches_the_miniport_unchanged(s: Stack6) -> None:
    nbl = s.protocol.nbl(s.ctx)
    vlan = object()
    NET_BUFFER_LIST_INFO_SET(nbl, Ieee8021QNetBufferListInfo, vlan)
    NET_BUFFER_LIST_INFO_SET(nbl, TcpIpChecksumNetBufferListInfo, 0x1234)
    before = list(nbl.NetBufferListInfo)
    s.protocol.send(s.ctx, [nbl], port=3)
    got, port, _ = s.a.calls[0]
    assert got == [nbl] and port == 3
    s.ndis.actors.append(Culprit.MINIPORT)
    assert NET_BUFFER_LIST_INFO(nbl, Ieee8021QNetBufferListInfo) is vlan
    s.ndis.actors.pop()
    assert nbl.NetBufferListInfo == before
    s.miniport.complete(s.a, [nbl])
    finish(s)


# --- rule 50: statuses ------------------------------------------------------------------------


@pytest.mark.parametrize("status", sorted(SEND_COMPLETION_STATUSES | MODEL_COMPLETION_STATUSES))
def test_rule_50_allowed_statuses_reach_the_protocol(s: Stack6, status: int) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    s.miniport.complete(s.a, [nbl], status)
    assert NET_BUFFER_LIST_STATUS(s.ctx.completed[0]) == status
    finish(s)


@pytest.mark.parametrize(
    "status", [NDIS_STATUS.PENDING, NDIS_STATUS.NOT_SUPPORTED, NDIS_STATUS.CLOSING, 0x12345]
)
def test_rule_50_other_statuses_are_refused_before_anything_moves(s: Stack6, status: int) -> None:
    nbls = s.protocol.chain(s.ctx, 2)
    s.protocol.send(s.ctx, nbls)
    with pytest.raises(MiniportContractError) as info:
        s.miniport.complete(s.a, [nbls[0], nbls[1]], status)
    assert info.value.rule == "R50"
    assert owned(nbls) == {Ownership.AT_MINIPORT}


# --- rule 52: cancellation ----------------------------------------------------------------------


def test_rule_52_cancel_reaches_the_miniport_and_aborted_nbls_complete(s: Stack6) -> None:
    nbls = s.protocol.chain(s.ctx, 3)
    partial = s.ndis.NdisGeneratePartialCancelId()
    for i, nbl in enumerate(nbls):
        NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(nbl, (partial << 24) | (i % 2))
    s.protocol.send(s.ctx, nbls)
    assert s.ctx.binding is not None
    s.ndis.NdisCancelSendNetBufferLists(s.ctx.binding, (partial << 24) | 0)
    assert s.a.cancels == [(partial << 24) | 0]
    s.miniport.complete(s.a, [nbls[0], nbls[2]], NDIS_STATUS.SEND_ABORTED)
    s.miniport.complete(s.a, [nbls[1]])
    assert s.ndis.verifier is not None and s.ndis.verifier.check() == []
    finish(s)


def test_rule_52_cancelled_nbls_failing_with_another_status_are_flagged(s: Stack6) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(nbl, 7)
    s.protocol.send(s.ctx, [nbl])
    assert s.ctx.binding is not None
    s.ndis.NdisCancelSendNetBufferLists(s.ctx.binding, 7)
    s.miniport.complete(s.a, [nbl], NDIS_STATUS.FAILURE)
    assert s.ndis.verifier is not None and s.ndis.verifier.rules() == ["R52"]
    finish(s)


def test_partial_cancel_ids_differ() -> None:
    ndis = Ndis()
    ids = {ndis.NdisGeneratePartialCancelId() for _ in range(255)}
    assert len(ids) == 255 and all(0 <= i <= 0xFF for i in ids)


# --- rule 53: flag values -------------------------------------------------------------------------


def test_rule_53_send_and_send_complete_flag_values() -> None:
    assert NDIS_SEND_FLAGS_DISPATCH_LEVEL == 1
    assert NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK == 2
    assert NDIS_SEND_FLAGS_SINGLE_QUEUE == 4
    assert NDIS_SEND_FLAGS_SWITCH_DESTINATION_GROUP == 0x10
    assert NDIS_SEND_FLAGS_SWITCH_SINGLE_SOURCE == 0x20
    assert NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL == 1
    assert NDIS_SEND_COMPLETE_FLAGS_SINGLE_QUEUE == 2
    assert NDIS_SEND_COMPLETE_FLAGS_SWITCH_SINGLE_SOURCE == 4


# --- rules 57-59: pause -------------------------------------------------------------------------


def test_rule_57_sends_while_the_binding_pauses_complete_at_once_with_paused(s: Stack6) -> None:
    late: list[NET_BUFFER_LIST] = s.protocol.chain(s.ctx, 2)

    def on_event(ctx: Any, event: int) -> None:
        if event == 8:  # NetEventPause: the binding is PAUSING now
            assert ctx.binding.state is BindingState.PAUSING
            s.protocol.send(ctx, late)

    s.ctx.on_event = on_event
    s.ndis.pause_binding(s.ctx.binding)  # type: ignore[arg-type]
    assert s.a.calls == []  # never reached the miniport
    assert s.ctx.completed == late
    assert {NET_BUFFER_LIST_STATUS(n) for n in late} == {NDIS_STATUS.PAUSED}
    assert s.ndis.verifier is not None and s.ndis.verifier.check() == []  # legal race
    finish(s)


def test_rule_57_a_send_on_a_paused_binding_completes_paused_and_is_flagged(s: Stack6) -> None:
    assert s.ctx.binding is not None
    s.ndis.pause_binding(s.ctx.binding)
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    assert NET_BUFFER_LIST_STATUS(s.ctx.completed[0]) == NDIS_STATUS.PAUSED
    assert s.ndis.verifier is not None and s.ndis.verifier.rules() == ["R57"]
    finish(s)


def test_rule_57_a_pause_waits_for_outstanding_sends() -> None:
    s = build_stack(mode="dpc")
    nbls = s.protocol.chain(s.ctx, 3)
    s.protocol.send(s.ctx, nbls)
    assert s.ctx.binding is not None
    assert s.ctx.binding.counters.in_flight == 3
    s.ndis.pause_binding(s.ctx.binding)
    assert s.ctx.binding.state is BindingState.PAUSED
    assert s.ctx.completed == nbls
    trace = s.ndis.scheduler.events
    assert [i for i, e in enumerate(trace) if "send6-complete " in e][-1] < next(
        i for i, e in enumerate(trace) if "binding-paused" in e
    )
    finish(s)


def test_rule_57_a_pause_that_can_never_finish_names_the_miniport(s: Stack6) -> None:
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1))  # held forever
    with pytest.raises(MiniportContractError) as info:
        s.ndis.pause_binding(s.ctx.binding)  # type: ignore[arg-type]
    assert info.value.rule == "R57"


def _pause_miniport_only(s: Stack6) -> None:
    move(s.adapter, ADAPTER_TRANSITIONS, "pause")  # as if a send raced the pause


def test_rule_58_a_paused_miniport_completing_with_paused_is_correct() -> None:
    s = build_stack(mode="inline", status=NDIS_STATUS.PAUSED)
    _pause_miniport_only(s)
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 2))
    assert {NET_BUFFER_LIST_STATUS(n) for n in s.ctx.completed} == {NDIS_STATUS.PAUSED}
    assert s.ndis.verifier is not None and s.ndis.verifier.check() == []
    finish(s)


def test_rule_58_a_paused_miniport_completing_with_success_is_refused() -> None:
    s = build_stack(mode="inline", status=NDIS_STATUS.SUCCESS)
    _pause_miniport_only(s)
    with pytest.raises(MiniportContractError) as info:
        s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1))
    assert info.value.rule == "R58"


def test_rule_58_a_paused_miniport_keeping_a_send_is_flagged(s: Stack6) -> None:
    _pause_miniport_only(s)
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    assert s.ndis.verifier is not None and s.ndis.verifier.rules() == ["R58"]
    s.miniport.complete(s.a, [nbl], NDIS_STATUS.PAUSED)
    finish(s)


def test_rule_59_the_stack_pauses_top_down_and_restarts_bottom_up() -> None:
    s = build_stack(mode="dpc")
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 2))
    s.ndis.pause_adapter(s.adapter)
    trace = s.ndis.scheduler.events
    order = [e.split()[1] for e in trace if e.split()[1] in ("binding-paused", "adapter-paused")]
    assert order == ["binding-paused", "adapter-paused"]
    assert s.adapter.state is AdapterState.PAUSED
    s.ndis.restart_adapter(s.adapter)
    assert s.ctx.binding is not None and s.ctx.binding.state is BindingState.RUNNING
    finish(s)


# --- rules 62-64: IRQL and flags ----------------------------------------------------------------


def test_rule_64_send_above_dispatch_raises_irql_error(s: Stack6) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    with s.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        s.protocol.send(s.ctx, [nbl])
    assert info.value.rule == "R64"
    assert info.value.culprit is Culprit.PROTOCOL
    assert nbl.ownership is Ownership.ALLOCATED


def test_rule_64_send_complete_above_dispatch_raises_irql_error(s: Stack6) -> None:
    nbl = s.protocol.chain(s.ctx, 1)[0]
    s.protocol.send(s.ctx, [nbl])
    with s.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        s.miniport.complete(s.a, [nbl])
    assert info.value.rule == "R64" and info.value.culprit is Culprit.MINIPORT


def test_rule_62_cancel_above_dispatch_raises_irql_error(s: Stack6) -> None:
    assert s.ctx.binding is not None
    with s.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        s.ndis.NdisCancelSendNetBufferLists(s.ctx.binding, 1)
    assert info.value.rule == "R62"


def test_rule_63_dispatch_flag_set_below_dispatch_is_flagged(s: Stack6) -> None:
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1), flags=NDIS_SEND_FLAGS_DISPATCH_LEVEL)
    assert s.ndis.verifier is not None
    [violation] = s.ndis.verifier.check()
    assert violation.rule == "R63" and violation.culprit is Culprit.PROTOCOL
    # NDIS does not pass the lie on
    assert s.a.calls[0][2] & NDIS_SEND_FLAGS_DISPATCH_LEVEL == 0


def test_rule_63_dispatch_flag_clear_at_dispatch_is_legal_and_ndis_tells_the_truth(
    s: Stack6,
) -> None:
    with s.ndis.irql.at(DISPATCH_LEVEL):
        s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1), flags=0)
    assert s.a.calls[0][2] & NDIS_SEND_FLAGS_DISPATCH_LEVEL  # NDIS knows it is at DISPATCH
    with s.ndis.irql.at(DISPATCH_LEVEL):
        s.miniport.complete(s.a, held(s), flags=0)
    assert s.ctx.completions[0][1] & NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1), flags=0)
    s.miniport.complete(s.a, held(s))
    assert s.ctx.completions[1][1] & NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL == 0
    assert s.ndis.verifier is not None and s.ndis.verifier.check() == []
    finish(s)


def test_rule_63_completion_flag_lie_is_flagged_against_the_miniport(s: Stack6) -> None:
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1))
    s.miniport.complete(s.a, held(s), flags=NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL)
    assert s.ndis.verifier is not None
    [violation] = s.ndis.verifier.check()
    assert violation.rule == "R63" and violation.culprit is Culprit.MINIPORT
    finish(s)


def test_rule_63_strict_verifier_raises_the_flag_lie() -> None:
    s = build_stack(strict=True)
    with pytest.raises(ProtocolContractError) as info:
        s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 1), flags=NDIS_SEND_FLAGS_DISPATCH_LEVEL)
    assert info.value.rule == "R63"


# --- re-entrancy ---------------------------------------------------------------------------------


def test_completion_inside_the_send_handler_goes_up_before_the_send_returns() -> None:
    s = build_stack(mode="inline")
    nbls = s.protocol.chain(s.ctx, 3)
    s.protocol.send(s.ctx, nbls)
    assert s.ctx.completed == nbls  # no scheduler needed
    assert s.ndis.scheduler.pending() == 0
    finish(s)


@pytest.mark.parametrize("mode", ["inline", "dpc"])
def test_protocol_may_send_again_from_its_completion_handler(mode: str) -> None:
    s = build_stack(mode=mode)
    rounds: list[int] = []

    def again(ctx: Any, nbls: list[NET_BUFFER_LIST]) -> None:
        rounds.append(len(nbls))
        if len(rounds) < 5:
            for nbl in nbls:
                nbl.Status = NDIS_STATUS.SUCCESS
            s.protocol.send(ctx, nbls)  # reuse the same NBLs

    s.ctx.on_complete = again
    nbls = s.protocol.chain(s.ctx, 2)
    s.protocol.send(s.ctx, nbls)
    s.ndis.run()
    assert rounds == [2, 2, 2, 2, 2]
    assert s.ctx.binding is not None and s.ctx.binding.counters.sent == 10
    for nbl in nbls:
        s.protocol.free(nbl)
    s.ndis.assert_nothing_lost()


def test_assert_nothing_lost_names_undelivered_and_held_sends(s: Stack6) -> None:
    s.protocol.send(s.ctx, s.protocol.chain(s.ctx, 2))
    with pytest.raises(NdisUsageError) as info:
        s.ndis.assert_nothing_lost()
    assert "still at the miniport" in str(info.value)

    def dpc() -> None:
        s.miniport.complete(s.a, held(s))

    s.ndis.scheduler.queue_dpc(dpc)
    s.ndis.scheduler.step()  # the DPC ran; the completion DPC has not
    with pytest.raises(NdisUsageError) as info:
        s.ndis.assert_nothing_lost()
    assert "not yet delivered" in str(info.value)
    finish(s)


# --- the version gate (rule 66, bug check 0x7C code 0x15) ---------------------------------------


class Protocol5:
    NDIS_VERSION = (5, 0)

    def ProtocolSendComplete(self, *args: Any) -> None: ...


def test_ndis6_send_ddis_are_refused_to_ndis5_drivers(s: Stack6) -> None:
    from pyndis.library.binding import OpenBlock
    from pyndis.library.states import BINDING_TRANSITIONS

    _, block5 = s.ndis.NdisRegisterProtocol(Protocol5())
    assert block5 is not None
    binding5 = OpenBlock(s.ndis, block5, s.adapter, None)
    move(binding5, BINDING_TRANSITIONS, "opened_5x")
    nbl = s.protocol.nbl(None)
    nbl.SourceHandle = binding5
    for call in (
        lambda: s.ndis.NdisSendNetBufferLists(binding5, nbl, 0, 0),
        lambda: s.ndis.NdisCancelSendNetBufferLists(binding5, 1),
        lambda: s.ndis.NdisReturnNetBufferLists(binding5, nbl, 0),
    ):
        with pytest.raises(NdisVersionError) as info:
            call()
        assert info.value.rule == "PY-VERSION"
        assert info.value.culprit is Culprit.PROTOCOL
    assert nbl.ownership is Ownership.ALLOCATED


def test_ndis5_ddis_are_refused_to_an_ndis6_protocol_naming_the_replacement(s: Stack6) -> None:
    assert s.ctx.binding is not None
    with pytest.raises(NdisVersionError) as info:
        s.ndis.NdisCloseAdapter(s.ctx.binding)
    assert info.value.rule == "R66"
    assert "0x15" in str(info.value) and "NdisCloseAdapterEx" in str(info.value)


# --- determinism ------------------------------------------------------------------------------


def _run(seed: int) -> str:
    from pyndis.drivers.ndisprot6 import NdisProt6
    from pyndis.drivers.netvmini6 import NetVMini6

    ndis = Ndis(seed=seed)
    _, handle = ndis.NdisMRegisterMiniportDriver(NetVMini6())
    assert handle is not None
    ndis.add_adapter(handle, "eth0", tcbs=3, jitter_ns=5000, random_order=True)
    prot = NdisProt6()
    prot.register(ndis)
    ndis.run()
    ctx = prot.opens["eth0"]
    for i in range(10):
        prot.send(ctx, [make_frame(payload=bytes([i]) * 20)] * 3)
    ndis.run()
    statuses = ",".join(str(int(x)) for x in ctx.statuses)
    return ndis.scheduler.trace_text() + statuses + str(ctx.completion_calls)


def test_same_seed_same_trace_different_seed_different_order() -> None:
    assert _run(7) == _run(7)
    assert _run(7) != _run(8)


@pytest.mark.parametrize("ddi", sorted(DDI_VERSIONS))
def test_rule_66_every_versioned_ddi_is_refused_to_the_other_generation(ddi: str) -> None:
    major, replacement = DDI_VERSIONS[ddi]
    for kind, culprit in (
        (DriverKind.PROTOCOL, Culprit.PROTOCOL),
        (DriverKind.MINIPORT, Culprit.MINIPORT),
    ):
        wrong = DriverBlock(object(), kind, (6, 0) if major == 5 else (5, 1), "drv", culprit)
        with pytest.raises(NdisVersionError) as info:
            check_version(wrong, ddi)
        assert info.value.rule == ("R66" if major == 5 else "PY-VERSION")
        assert info.value.culprit is culprit
        assert ddi in str(info.value) and replacement in str(info.value)
        if major == 5:
            assert "0x7C" in str(info.value) and "0x15" in str(info.value)
        right = DriverBlock(object(), kind, (major, 1 if major == 5 else 0), "drv", culprit)
        check_version(right, ddi)  # no error


def test_ndis6_miniport_ddis_are_refused_to_an_ndis5_miniport(s: Stack6) -> None:
    from pyndis.drivers.null5 import NullMiniport

    _, handle5 = s.ndis.NdisMRegisterMiniport(NullMiniport())
    assert handle5 is not None
    _, adapter5 = s.ndis.add_adapter(handle5, "old0", deserialized=True)
    assert adapter5 is not None
    nbl = s.protocol.nbl(None)
    for call in (
        lambda: s.ndis.NdisMSendNetBufferListsComplete(adapter5, nbl, 0),
        lambda: s.ndis.NdisMIndicateReceiveNetBufferLists(adapter5, nbl, 0, 1, 0),
    ):
        with pytest.raises(NdisVersionError) as info:
            call()
        assert info.value.rule == "PY-VERSION" and info.value.culprit is Culprit.MINIPORT
    assert nbl.ownership is Ownership.ALLOCATED


def test_several_threads_may_send_and_complete_at_once() -> None:
    import threading

    s = build_stack(mode="inline", verifier=False)
    chains = [s.protocol.chain(s.ctx, 8) for _ in range(4)]
    errors: list[BaseException] = []

    def worker(nbls: list[NET_BUFFER_LIST]) -> None:
        try:
            for _ in range(200):
                for nbl in nbls:
                    nbl.Status = NDIS_STATUS.SUCCESS
                s.protocol.send(s.ctx, nbls)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chains]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert s.ctx.binding is not None
    assert s.ctx.binding.counters.sent == s.ctx.binding.counters.completed == 4 * 200 * 8
    assert s.adapter.outstanding == 0
    s.ndis.assert_nothing_lost()


def test_rule_48_a_net_buffer_freed_while_its_nbl_is_in_flight_is_flagged(s: Stack6) -> None:
    """NET_BUFFERs travel with their NBL: freeing one before the send completes is the
    protocol's contract violation (the verifier sees it at completion)."""
    from pyndis.nblpool import NdisFreeNetBuffer

    nbl = s.protocol.nbl(s.ctx, make_frame(payload=b"a"), make_frame(payload=b"b"))
    s.protocol.send(s.ctx, [nbl])
    first = nbl.FirstNetBuffer
    assert first is not None and first.Next is not None
    second = first.Next
    NdisFreeNetBuffer(second)  # the protocol gives up an NB NDIS still holds
    s.miniport.complete(s.a, [nbl])
    assert s.ndis.verifier is not None
    violations = s.ndis.verifier.check()
    assert [v.rule for v in violations] == ["R48"]
    assert violations[0].culprit is Culprit.PROTOCOL and violations[0].subject is second
    s.ndis.verifier.clear()
    first.Next = None  # already freed: the protocol's own free must not free it again
    finish(s)
