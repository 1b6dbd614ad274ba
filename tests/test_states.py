"""Lifecycle state tables (library.states): every listed move works, every other move is refused."""

from __future__ import annotations

import enum
from typing import Any

import pytest

from pyndis.errors import (
    Culprit,
    IntermediateContractError,
    MiniportContractError,
    NdisError,
    NdisUsageError,
    ProtocolContractError,
)
from pyndis.library.states import (
    ADAPTER_TRANSITIONS,
    BINDING_TRANSITIONS,
    CALL_TRANSITIONS,
    VC_TRANSITIONS,
    AdapterState,
    BindingState,
    CallState,
    VcState,
    bad_move,
    move,
)


class Thing:
    """Anything with a ``state`` slot (adapters, bindings and VCs are such things)."""

    __slots__ = ("state",)

    def __init__(self, state: enum.IntEnum) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<thing {self.state.name}>"


TABLES: list[tuple[str, dict[Any, Any], type[enum.IntEnum]]] = [
    ("adapter", ADAPTER_TRANSITIONS, AdapterState),
    ("binding", BINDING_TRANSITIONS, BindingState),
    ("vc", VC_TRANSITIONS, VcState),
    ("call", CALL_TRANSITIONS, CallState),
]


def _listed() -> list[Any]:
    return [
        pytest.param(table, state, event, new, id=f"{name}-{state.name}-{event}")
        for name, table, _ in TABLES
        for (state, event), new in table.items()
    ]


def _missing() -> list[Any]:
    params = []
    for name, table, states in TABLES:
        events = sorted({event for _, event in table})
        for state in states:
            for event in events:
                if (state, event) not in table:
                    params.append(
                        pytest.param(table, state, event, id=f"{name}-{state.name}-{event}")
                    )
    return params


@pytest.mark.parametrize(("table", "state", "event", "new"), _listed())
def test_every_listed_move_happens(
    table: dict[Any, Any], state: enum.IntEnum, event: str, new: enum.IntEnum
) -> None:
    thing = Thing(state)
    assert move(thing, table, event) is new
    assert thing.state is new


@pytest.mark.parametrize(("table", "state", "event"), _missing())
@pytest.mark.parametrize(
    ("culprit", "error"),
    [
        (Culprit.PROTOCOL, ProtocolContractError),
        (Culprit.MINIPORT, MiniportContractError),
    ],
)
def test_every_missing_move_raises_naming_the_culprit(
    table: dict[Any, Any],
    state: enum.IntEnum,
    event: str,
    culprit: Culprit,
    error: type[NdisError],
) -> None:
    thing = Thing(state)
    with pytest.raises(error) as info:
        move(thing, table, event, culprit=culprit, rule="R57")
    assert info.value.culprit is culprit
    assert info.value.rule == "R57"
    assert info.value.subject is thing
    assert event in info.value.message and state.name in info.value.message
    assert thing.state is state  # a refused move changes nothing


def test_missing_moves_exist_for_every_table() -> None:
    """The parametrization above is not empty for any table (a test that cannot fail is no test)."""
    tables = {id(p.values[0]) for p in _missing()}
    assert tables == {id(t) for _, t, _ in TABLES}


def test_default_culprit_is_the_ndis_user_with_rule_py_state() -> None:
    thing = Thing(AdapterState.HALTED)
    with pytest.raises(NdisUsageError) as info:
        move(thing, ADAPTER_TRANSITIONS, "restart")
    assert info.value.culprit is Culprit.NDIS_USER
    assert info.value.rule == "PY-STATE"


def test_unknown_event_is_refused() -> None:
    thing = Thing(BindingState.RUNNING)
    with pytest.raises(IntermediateContractError):
        move(thing, BINDING_TRANSITIONS, "explode", culprit=Culprit.INTERMEDIATE)


def test_bad_move_renders_a_plain_state() -> None:
    err = bad_move(object(), "go", Culprit.MINIPORT, "R58")
    assert isinstance(err, MiniportContractError)
    assert "cannot go in state None" in err.message


# --- the shapes of the life cycles (rules 57 and 58) ----------------------------------------------


def _walk(table: dict[Any, Any], start: enum.IntEnum, events: list[str]) -> list[enum.IntEnum]:
    thing = Thing(start)
    return [move(thing, table, e) for e in events]


def test_rule_58_ndis6_adapter_cycle() -> None:
    states = _walk(
        ADAPTER_TRANSITIONS,
        AdapterState.HALTED,
        [
            "initialize",
            "initialized_6x",
            "restart",
            "restarted",
            "pause",
            "paused",
            "halt",
            "halted",
        ],
    )
    assert states == [
        AdapterState.INITIALIZING,
        AdapterState.PAUSED,
        AdapterState.RESTARTING,
        AdapterState.RUNNING,
        AdapterState.PAUSING,
        AdapterState.PAUSED,
        AdapterState.HALTING,
        AdapterState.HALTED,
    ]


def test_rule_58_a_pause_cannot_fail() -> None:
    assert not any(s is AdapterState.PAUSING and e != "paused" for s, e in ADAPTER_TRANSITIONS)


def test_rule_57_binding_cycle() -> None:
    states = _walk(
        BINDING_TRANSITIONS,
        BindingState.OPENING,
        ["opened_6x", "restart", "restarted", "pause", "paused", "close", "closed"],
    )
    assert states == [
        BindingState.PAUSED,
        BindingState.RESTARTING,
        BindingState.RUNNING,
        BindingState.PAUSING,
        BindingState.PAUSED,
        BindingState.CLOSING,
        BindingState.CLOSED,
    ]


def test_a_closed_binding_and_a_deleted_vc_are_final() -> None:
    assert not [k for k in BINDING_TRANSITIONS if k[0] is BindingState.CLOSED]
    assert not [k for k in VC_TRANSITIONS if k[0] is VcState.DELETED]
