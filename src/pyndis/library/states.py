"""Lifecycle states of adapters, bindings and virtual connections, as transition tables.

Theory of operation
-------------------
Like descriptors (:mod:`pyndis.ownership`), each library object has one ``state`` field that
changes only through :func:`move`, which looks the move up in the object's table. The tables are
data: the library, the verifier and the docs read the same ones.

Adapter (miniport) states follow "Adapter States of a Miniport Driver" (rule 58) with two
additions for NDIS 5.x: ``RESETTING`` (between MiniportReset and NdisMResetComplete) and
``HALTING`` (while MiniportHalt runs). An NDIS 5.x adapter goes HALTED -> INITIALIZING -> RUNNING;
an NDIS 6 adapter comes up PAUSED and is restarted. Binding states follow "Binding States of a
Protocol Driver" (rule 57) with ``CLOSING``/``CLOSED`` for NdisCloseAdapter. VC states follow the
CoNDIS life cycle (rules 28-35).
"""

from __future__ import annotations

import enum
from typing import Protocol, TypeVar

from ..errors import Culprit, NdisError, error_class_for


class AdapterState(enum.IntEnum):
    HALTED = 0
    INITIALIZING = 1
    PAUSED = 2
    RESTARTING = 3
    RUNNING = 4
    PAUSING = 5
    RESETTING = 6
    HALTING = 7
    SHUTDOWN = 8


class BindingState(enum.IntEnum):
    OPENING = 0
    PAUSED = 1
    RESTARTING = 2
    RUNNING = 3
    PAUSING = 4
    CLOSING = 5
    CLOSED = 6


class VcState(enum.IntEnum):
    CREATED = 0  # NdisCoCreateVc done, not activated
    ACTIVATING = 1  # MiniportCoActivateVc pending
    ACTIVE = 2  # activated: sends allowed once the call is up
    CLOSING = 3  # NdisClCloseCall issued: no new sends
    DEACTIVATING = 4  # MiniportCoDeactivateVc pending
    DEACTIVATED = 5  # may be activated again or deleted
    DELETED = 6


A = AdapterState
B = BindingState
V = VcState

ADAPTER_TRANSITIONS: dict[tuple[AdapterState, str], AdapterState] = {
    (A.HALTED, "initialize"): A.INITIALIZING,
    (A.INITIALIZING, "initialized_5x"): A.RUNNING,
    (A.INITIALIZING, "initialized_6x"): A.PAUSED,
    (A.INITIALIZING, "failed"): A.HALTED,
    (A.PAUSED, "restart"): A.RESTARTING,
    (A.RESTARTING, "restarted"): A.RUNNING,
    (A.RESTARTING, "restart_failed"): A.PAUSED,
    (A.RUNNING, "pause"): A.PAUSING,
    (A.PAUSING, "paused"): A.PAUSED,
    (A.RUNNING, "reset"): A.RESETTING,
    (A.RESETTING, "reset_done"): A.RUNNING,
    (A.RUNNING, "halt"): A.HALTING,  # NDIS 5.x halts a running adapter
    (A.PAUSED, "halt"): A.HALTING,  # NDIS 6 halts only a paused one
    (A.HALTING, "halted"): A.HALTED,
    (A.RUNNING, "shutdown"): A.SHUTDOWN,
    (A.PAUSED, "shutdown"): A.SHUTDOWN,
}

BINDING_TRANSITIONS: dict[tuple[BindingState, str], BindingState] = {
    (B.OPENING, "opened_5x"): B.RUNNING,
    (B.OPENING, "opened_6x"): B.PAUSED,
    (B.OPENING, "open_failed"): B.CLOSED,
    (B.PAUSED, "restart"): B.RESTARTING,
    (B.RESTARTING, "restarted"): B.RUNNING,
    (B.RESTARTING, "restart_failed"): B.PAUSED,
    (B.RUNNING, "pause"): B.PAUSING,
    (B.PAUSING, "paused"): B.PAUSED,
    (B.RUNNING, "close"): B.CLOSING,  # NDIS 5.x closes a running binding
    (B.PAUSED, "close"): B.CLOSING,  # NDIS 6 closes a paused one
    (B.CLOSING, "closed"): B.CLOSED,
}

VC_TRANSITIONS: dict[tuple[VcState, str], VcState] = {
    (V.CREATED, "activate"): V.ACTIVATING,
    (V.DEACTIVATED, "activate"): V.ACTIVATING,
    (V.ACTIVE, "activate"): V.ACTIVATING,  # rule 31: re-activation with new parameters
    (V.ACTIVATING, "activated"): V.ACTIVE,
    (V.ACTIVATING, "activation_failed"): V.CREATED,
    (V.ACTIVE, "close"): V.CLOSING,
    (V.ACTIVE, "deactivate"): V.DEACTIVATING,
    (V.CLOSING, "deactivate"): V.DEACTIVATING,
    (V.DEACTIVATING, "deactivated"): V.DEACTIVATED,
    (V.CREATED, "delete"): V.DELETED,
    (V.DEACTIVATED, "delete"): V.DELETED,
}

S = TypeVar("S", bound=enum.IntEnum)


class Stateful(Protocol[S]):
    state: S


def move(
    obj: Stateful[S],
    table: dict[tuple[S, str], S],
    event: str,
    *,
    culprit: Culprit = Culprit.NDIS_USER,
    rule: str = "PY-STATE",
) -> S:
    """Apply ``event`` to ``obj.state`` through ``table``; raise an NdisError naming ``culprit``
    if the table has no such move. Returns the new state."""
    new = table.get((obj.state, event))
    if new is None:
        raise bad_move(obj, event, culprit, rule)
    obj.state = new
    return new


def bad_move(obj: object, event: str, culprit: Culprit, rule: str) -> NdisError:
    state = getattr(obj, "state", None)
    name = state.name if isinstance(state, enum.Enum) else state
    return error_class_for(culprit)(
        f"{obj!r}: cannot {event} in state {name}", rule=rule, subject=obj
    )


__all__ = [
    "ADAPTER_TRANSITIONS",
    "BINDING_TRANSITIONS",
    "VC_TRANSITIONS",
    "AdapterState",
    "BindingState",
    "VcState",
    "bad_move",
    "move",
]
