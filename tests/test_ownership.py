"""The ownership table: every legal move works, every other move names its culprit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pyndis
from pyndis import ownership
from pyndis.errors import (
    Culprit,
    IntermediateContractError,
    MiniportContractError,
    NdisError,
    NdisInternalError,
    NdisUsageError,
    ProtocolContractError,
    error_class_for,
)
from pyndis.hostctx import HostContext
from pyndis.ownership import (
    EVENT_INFO,
    MISUSE,
    MOVES,
    TRANSITIONS,
    Event,
    History,
    HistoryEntry,
    Ownership,
    call_site,
    can,
    format_site,
    illegal_transition,
    mermaid_diagram,
    transition,
)

O = Ownership  # noqa: E741
E = Event


class Thing:
    """The smallest descriptor :func:`transition` accepts."""

    __slots__ = ("history", "ownership")

    def __init__(self, state: Ownership = O.FREE, history: History | None = None) -> None:
        self.ownership = state
        self.history = history

    def __repr__(self) -> str:
        return f"<Thing {self.ownership.name}>"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


ILLEGAL = [(s, e) for s in Ownership for e in Event if (s, e) not in TRANSITIONS]


def expected_error(state: Ownership, event: Event) -> tuple[type[NdisError], str]:
    info = EVENT_INFO[event]
    cls = NdisInternalError if info.actor is Culprit.NDIS else error_class_for(info.actor)
    rule = MISUSE[state, event][0] if (state, event) in MISUSE else info.rule
    return cls, rule


# --- the table ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "event"), list(TRANSITIONS), ids=lambda v: v.name if hasattr(v, "name") else v
)
def test_every_transition_in_the_table_works(state: Ownership, event: Event) -> None:
    thing = Thing(state)
    assert can(thing, event)
    transition(thing, event)
    assert thing.ownership is TRANSITIONS[state, event]


@pytest.mark.parametrize(("state", "event"), ILLEGAL, ids=lambda v: v.name)
def test_every_move_not_in_the_table_raises_with_its_culprit(
    state: Ownership, event: Event
) -> None:
    history = History(Clock())
    thing = Thing(state, history)
    assert not can(thing, event)
    cls, rule = expected_error(state, event)
    with pytest.raises(NdisError) as info:
        transition(thing, event)
    assert type(info.value) is cls
    assert info.value.rule == rule
    assert info.value.subject is thing
    assert thing.ownership is state, "a refused move must not change the state"
    assert len(history) == 0, "a refused move must not be recorded"


def test_the_table_is_not_trivial() -> None:
    assert len(ILLEGAL) > len(TRANSITIONS)


def test_every_event_has_an_event_info() -> None:
    assert set(EVENT_INFO) == set(Event)
    for event, info in EVENT_INFO.items():
        assert info.rule.startswith(("R", "PY-")), event
        assert info.verb, event


def test_every_misuse_entry_is_an_illegal_move() -> None:
    for key, (rule, why) in MISUSE.items():
        assert key not in TRANSITIONS, key
        assert rule.startswith(("R", "PY-")) and why, key


def test_actor_override_names_another_culprit() -> None:
    err = illegal_transition(Thing(O.FREE), E.FORWARD, actor=Culprit.MINIPORT)
    assert isinstance(err, MiniportContractError)
    assert err.rule == "R47"


def test_illegal_transition_builds_but_does_not_raise() -> None:
    thing = Thing(O.ALLOCATED)
    err = illegal_transition(thing, E.COMPLETE)
    assert isinstance(err, MiniportContractError)
    assert thing.ownership is O.ALLOCATED


def test_destroy_is_legal_from_every_state_and_final() -> None:
    for state in Ownership:
        thing = Thing(state)
        transition(thing, E.DESTROY)
        assert thing.ownership is O.DESTROYED
    for event in Event:
        if event is not E.DESTROY:
            assert not can(Thing(O.DESTROYED), event), event


def _reachable(start: Ownership) -> set[Ownership]:
    seen, todo = {start}, [start]
    while todo:
        state = todo.pop()
        for (src, _), dst in TRANSITIONS.items():
            if src is state and dst not in seen:
                seen.add(dst)
                todo.append(dst)
    return seen


def test_every_state_is_reachable_from_free() -> None:
    assert _reachable(O.FREE) == set(Ownership)


@pytest.mark.parametrize("state", [O.IN_NDIS, O.AT_MINIPORT, O.COMPLETING, O.INDICATED])
def test_every_lent_descriptor_can_come_back_to_its_owner(state: Ownership) -> None:
    assert O.ALLOCATED in _reachable(state)


def test_a_whole_send_cycle() -> None:
    thing = Thing()
    for event, state in [
        (E.ALLOCATE, O.ALLOCATED),
        (E.SEND, O.IN_NDIS),
        (E.SUBMIT, O.AT_MINIPORT),
        (E.REQUEUE, O.IN_NDIS),
        (E.SUBMIT, O.AT_MINIPORT),
        (E.COMPLETE, O.COMPLETING),
        (E.RETURN, O.ALLOCATED),
        (E.FREE, O.FREE),
    ]:
        transition(thing, event)
        assert thing.ownership is state


def test_an_intermediate_forward_comes_back_to_the_forwarder() -> None:
    thing = Thing(O.AT_MINIPORT)
    transition(thing, E.FORWARD)
    transition(thing, E.SUBMIT)
    transition(thing, E.COMPLETE)
    transition(thing, E.RETURN_FORWARDED)
    assert thing.ownership is O.AT_MINIPORT


# --- rules, one by one ----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [O.IN_NDIS, O.AT_MINIPORT, O.COMPLETING])
def test_rule_17_sending_a_descriptor_in_flight_is_the_protocols_fault(state: Ownership) -> None:
    with pytest.raises(ProtocolContractError) as info:
        transition(Thing(state), E.SEND)
    assert info.value.rule == "R17"
    assert "use after send" in str(info.value)


@pytest.mark.parametrize("state", [O.IN_NDIS, O.AT_MINIPORT, O.COMPLETING])
def test_rule_48_freeing_before_the_completion_is_refused(state: Ownership) -> None:
    with pytest.raises(NdisUsageError) as info:
        transition(Thing(state), E.FREE)
    assert info.value.rule == "R48"


def test_rule_40_sending_a_freed_descriptor() -> None:
    with pytest.raises(ProtocolContractError) as info:
        transition(Thing(O.FREE), E.SEND)
    assert info.value.rule == "R40"


def test_sending_a_zeroed_descriptor() -> None:
    with pytest.raises(ProtocolContractError) as info:
        transition(Thing(O.DESTROYED), E.SEND)
    assert info.value.rule == "PY-ZEROED-PACKET"


def test_rule_21_only_a_descriptor_at_the_miniport_can_be_requeued() -> None:
    with pytest.raises(MiniportContractError) as info:
        transition(Thing(O.IN_NDIS), E.REQUEUE)
    assert info.value.rule == "R21"


def test_rule_47_only_a_descriptor_received_from_above_can_be_forwarded() -> None:
    with pytest.raises(IntermediateContractError) as info:
        transition(Thing(O.ALLOCATED), E.FORWARD)
    assert info.value.rule == "R47"


@pytest.mark.parametrize("state", [O.COMPLETING, O.ALLOCATED, O.FREE])
def test_double_completion_is_the_miniports_fault(state: Ownership) -> None:
    with pytest.raises(MiniportContractError) as info:
        transition(Thing(state), E.COMPLETE)
    assert info.value.rule == "PY-DOUBLE-COMPLETE"


def test_double_free() -> None:
    with pytest.raises(NdisUsageError) as info:
        transition(Thing(O.FREE), E.FREE)
    assert info.value.rule == "PY-DOUBLE-FREE"


def test_returning_a_receive_twice() -> None:
    thing = Thing(O.ALLOCATED)
    transition(thing, E.INDICATE)
    transition(thing, E.RETURN_INDICATED)
    with pytest.raises(ProtocolContractError) as info:
        transition(thing, E.RETURN_INDICATED)
    assert info.value.rule == "PY-DOUBLE-RETURN"


def test_an_internal_move_refused_is_an_ndis_bug() -> None:
    with pytest.raises(NdisInternalError) as info:
        transition(Thing(O.ALLOCATED), E.SUBMIT)
    assert info.value.culprit is Culprit.NDIS
    assert info.value.rule == "PY-SUBMIT"


# --- MOVES: the written-out moves of the hot paths --------------------------------------------


def test_moves_hold_every_event_with_one_source_state_and_only_those() -> None:
    for event in Event:
        moves = [(state, new) for (state, ev), new in TRANSITIONS.items() if ev is event]
        if len(moves) == 1:
            assert MOVES[event] == moves[0], event
        else:
            assert event not in MOVES, event
    assert set(Event) - set(MOVES) == {E.DESTROY}


def written_out(thing: Thing, event: Event) -> None:
    """The hot paths' form of a move (see the ownership module's "Cost" notes)."""
    source, target = MOVES[event]
    if thing.history is None and thing.ownership is source:
        thing.ownership = target
    else:
        transition(thing, event)


@pytest.mark.parametrize("event", list(MOVES), ids=lambda e: e.name)
@pytest.mark.parametrize("state", list(Ownership), ids=lambda s: s.name)
@pytest.mark.parametrize("recorded", [False, True], ids=["no-history", "history"])
def test_a_written_out_move_does_exactly_what_transition_does(
    event: Event, state: Ownership, recorded: bool
) -> None:
    def attempt(move: Callable[[Thing, Event], None]) -> tuple[object, Ownership, int]:
        thing = Thing(state, History(Clock()) if recorded else None)
        try:
            move(thing, event)
            outcome: object = None
        except NdisError as err:
            outcome = (type(err), err.rule)
        return outcome, thing.ownership, len(thing.history or [])

    assert attempt(written_out) == attempt(transition)


# --- can() ------------------------------------------------------------------------------------


def test_can_has_no_side_effect() -> None:
    history = History(Clock())
    thing = Thing(O.ALLOCATED, history)
    assert can(thing, E.SEND)
    assert not can(thing, E.COMPLETE)
    assert thing.ownership is O.ALLOCATED
    assert len(history) == 0


# --- history --------------------------------------------------------------------------------------

HERE = "tests/test_ownership.py"


def test_history_records_time_event_states_site_and_note() -> None:
    clock = Clock()
    history = History(clock)
    thing = Thing(O.FREE, history)
    transition(thing, E.ALLOCATE)
    line = sys._getframe().f_lineno + 2
    clock.now = 1.5
    transition(thing, E.SEND, "NdisSendPackets")
    first, second = history.entries
    assert (first.time, first.event, first.old, first.new) == (0.0, E.ALLOCATE, O.FREE, O.ALLOCATED)
    assert second == HistoryEntry(
        1.5,
        E.SEND,
        O.ALLOCATED,
        O.IN_NDIS,
        f"{HERE}:{line} in test_history_records_time_event_states_site_and_note",
        "NdisSendPackets",
    )
    assert list(history) == [first, second]
    assert len(history) == 2


def test_history_entry_text() -> None:
    entry = HistoryEntry(0.25, E.COMPLETE, O.AT_MINIPORT, O.COMPLETING, "drv.py:9 in f", "ok")
    assert str(entry) == "t=0.250000000 complete: AT_MINIPORT -> COMPLETING (ok) at drv.py:9 in f"
    bare = HistoryEntry(0.0, E.FREE, O.ALLOCATED, O.FREE, "x.py:1 in g", "")
    assert "()" not in str(bare)


def test_history_is_bounded_and_drops_the_oldest() -> None:
    history = History(Clock(), limit=3)
    for n in range(5):
        history.record(E.SEND, O.ALLOCATED, O.IN_NDIS, f"#{n}")
    assert [e.note for e in history] == ["#2", "#3", "#4"]


def test_an_illegal_move_carries_the_history_into_the_error() -> None:
    thing = Thing(O.FREE, History(Clock()))
    transition(thing, E.ALLOCATE)
    transition(thing, E.SEND)
    transition(thing, E.SUBMIT)
    transition(thing, E.COMPLETE)
    with pytest.raises(MiniportContractError) as info:
        transition(thing, E.COMPLETE)
    err = info.value
    assert [e.event for e in err.history] == [E.ALLOCATE, E.SEND, E.SUBMIT, E.COMPLETE]
    assert "history of <Thing COMPLETING>" in str(err)
    assert f"at {HERE}:" in str(err)


def test_no_history_without_one() -> None:
    thing = Thing()
    transition(thing, E.ALLOCATE)
    with pytest.raises(NdisError) as info:
        transition(thing, E.COMPLETE)
    assert info.value.history == []


def test_history_formats_call_sites_only_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(site: object) -> str:
        raise AssertionError("a call site was formatted while recording")

    history = History(Clock())
    thing = Thing(O.FREE, history)
    monkeypatch.setattr(ownership, "format_site", refuse)
    transition(thing, E.ALLOCATE)  # recording needs no text
    transition(thing, E.SEND)
    assert len(history) == 2
    monkeypatch.undo()
    assert [e.site.startswith(f"{HERE}:") for e in history.entries] == [True, True]


def test_history_entries_are_new_objects_on_each_read() -> None:
    history = History(Clock())
    transition(Thing(O.FREE, history), E.ALLOCATE)
    first, second = history.entries, history.entries
    assert first == second and first is not second
    first.clear()
    assert len(history.entries) == 1


# --- call sites -------------------------------------------------------------------------------


def _compiled_in(filename: str) -> Callable[[Callable[[], str]], str]:
    """A function whose frame claims to live in ``filename`` and that calls its argument."""
    namespace: dict[str, object] = {}
    code = compile("def relay(fn):\n    return fn()\n", filename, "exec")
    exec(code, namespace)
    return namespace["relay"]  # type: ignore[return-value]


PACKAGE = Path(pyndis.__file__).parent.as_posix()


def test_call_site_skips_pyndis_internals() -> None:
    relay = _compiled_in(f"{PACKAGE}/library/fake_send.py")
    line = sys._getframe().f_lineno + 1
    site = relay(call_site)
    assert site == f"{HERE}:{line} in test_call_site_skips_pyndis_internals"


def test_call_site_skips_internals_with_windows_separators() -> None:
    relay = _compiled_in(f"{PACKAGE}/library/fake_send.py".replace("/", "\\"))
    site = relay(call_site)
    assert site.startswith(f"{HERE}:")


@pytest.mark.parametrize("folder", ["drivers", "testing", "cli"])
def test_call_site_stops_at_sample_drivers_and_the_testing_kit(folder: str) -> None:
    relay = _compiled_in(f"{PACKAGE}/{folder}/sample.py")
    assert relay(call_site) == f"{folder}/sample.py:2 in relay"


def test_call_site_does_not_mistake_a_sibling_directory_for_the_package() -> None:
    relay = _compiled_in(f"{PACKAGE}_extras/plugin.py")
    assert relay(call_site).startswith(f"{Path(PACKAGE).name}_extras/plugin.py:2")


def test_call_site_line_is_the_line_of_the_call_in_a_multi_line_statement() -> None:
    history = History(Clock())
    thing = Thing(O.FREE, history)
    line = sys._getframe().f_lineno + 1
    transition(
        thing,
        E.ALLOCATE,
        "spread over lines",
    )
    (entry,) = history.entries
    assert entry.site == (
        f"{HERE}:{line} in test_call_site_line_is_the_line_of_the_call_in_a_multi_line_statement"
    )


def test_format_site_without_a_site() -> None:
    assert format_site(None) == "?"


def test_history_through_a_real_ddi_points_at_the_caller() -> None:
    from pyndis.mdl import BufferPool, NdisAllocateBuffer

    host = HostContext(verifier=True)
    pool = BufferPool(host, 1)
    line = sys._getframe().f_lineno + 1
    _, mdl = NdisAllocateBuffer(pool, bytearray(8), 8)
    assert mdl is not None and mdl.history is not None
    (entry,) = mdl.history.entries
    assert entry.site == f"{HERE}:{line} in test_history_through_a_real_ddi_points_at_the_caller"


# --- diagram ------------------------------------------------------------------------------------


def test_mermaid_diagram_shows_every_move_but_destroy() -> None:
    lines = mermaid_diagram().splitlines()
    assert lines[0] == "stateDiagram-v2"
    moves = [f"    {s.name} --> {n.name}: {e.name.lower()}" for (s, e), n in TRANSITIONS.items()]
    for move in moves:
        if ": destroy" in move:
            assert move not in lines
        else:
            assert move in lines
    assert any("destroy" in line and "DESTROYED" in line for line in lines)


def test_all_names_exist() -> None:
    for name in ownership.__all__:
        assert hasattr(ownership, name), name
