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
Protocol Driver" (rule 57) with ``CLOSING``/``CLOSED`` for NdisCloseAdapter.

A CoNDIS virtual connection has two fields, because its two halves move independently: ``state``
(:class:`VcState`, the VC at the miniport: created, activated, closing, deactivated, deleted;
rules 28, 31-33) and ``call`` (:class:`CallState`, the call the client and the call manager set
up on it; rules 29, 30, 32, 34)::

    VC:    CREATED --activate--> ACTIVATING --activated--> ACTIVE --close--> CLOSING
           ACTIVATING --activation_failed--> CREATED
           ACTIVE --activate--> REACTIVATING --activated | activation_failed--> ACTIVE
           ACTIVE | CLOSING --deactivate--> DEACTIVATING --deactivated--> DEACTIVATED
           DEACTIVATED --activate--> ACTIVATING        CREATED | DEACTIVATED --delete--> DELETED

    call:  IDLE --make_call--> OUTGOING --make_call_done--> CONNECTED
           (OUTGOING --make_call_failed--> IDLE)
           IDLE --incoming--> INCOMING --accepted--> ACCEPTED --connected--> CONNECTED
           (INCOMING --rejected--> IDLE)
           CONNECTED | ACCEPTED --incoming_close--> CLOSE_INDICATED
           CONNECTED | CLOSE_INDICATED --close--> CLOSING --closed--> IDLE

A VC is activated once per call and may be re-activated with new parameters while active
(ACTIVE -> REACTIVATING -> ACTIVE; a failed re-activation keeps the old parameters), but it is
deactivated only once (rule 31): ``deactivate`` exists only from ACTIVE and CLOSING. A
deactivated VC may carry a new call (``activate`` from DEACTIVATED) or be deleted.
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
    CREATED = 0  # NdisCoCreateVc done, not (or no longer) activated; never deactivated
    ACTIVATING = 1  # first activation under way (MiniportCoActivateVc pending)
    ACTIVE = 2  # activated: data may flow once the call is up
    CLOSING = 3  # NdisClCloseCall issued (or an incoming close dispatched): no new sends
    DEACTIVATING = 4  # MiniportCoDeactivateVc pending
    DEACTIVATED = 5  # may carry a new call (activate again) or be deleted
    DELETED = 6  # NdisCoDeleteVc done: the handle is dead
    REACTIVATING = 7  # re-activation with new call parameters; data still flows (rule 31)


class CallState(enum.IntEnum):
    """The call carried by a VC (client <-> call manager)."""

    IDLE = 0  # no call (yet, or any more)
    OUTGOING = 1  # NdisClMakeCall issued, the CM has not completed it
    INCOMING = 2  # Ndis(M)CmDispatchIncomingCall: offered to the client
    ACCEPTED = 3  # the client accepted; waiting for Ndis(M)CmDispatchCallConnected
    CONNECTED = 4  # the call is up: transfers may begin (rules 29, 30)
    CLOSING = 5  # NdisClCloseCall issued, the CM has not completed it
    CLOSE_INDICATED = 6  # the CM dispatched an incoming close; the client must close (rule 34)


A = AdapterState
B = BindingState
V = VcState
C = CallState

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
    (V.DEACTIVATED, "activate"): V.ACTIVATING,  # a deactivated VC may carry a new call
    (V.ACTIVATING, "activated"): V.ACTIVE,
    (V.ACTIVATING, "activation_failed"): V.CREATED,
    (V.ACTIVE, "activate"): V.REACTIVATING,  # rule 31: re-activation with new parameters
    (V.REACTIVATING, "activated"): V.ACTIVE,
    (V.REACTIVATING, "activation_failed"): V.ACTIVE,  # the miniport keeps the old parameters
    (V.ACTIVE, "close"): V.CLOSING,
    (V.ACTIVE, "deactivate"): V.DEACTIVATING,
    (V.CLOSING, "deactivate"): V.DEACTIVATING,
    (V.DEACTIVATING, "deactivated"): V.DEACTIVATED,
    (V.CREATED, "delete"): V.DELETED,
    (V.DEACTIVATED, "delete"): V.DELETED,
}

CALL_TRANSITIONS: dict[tuple[CallState, str], CallState] = {
    (C.IDLE, "make_call"): C.OUTGOING,
    (C.OUTGOING, "make_call_done"): C.CONNECTED,
    (C.OUTGOING, "make_call_failed"): C.IDLE,
    (C.IDLE, "incoming"): C.INCOMING,
    (C.INCOMING, "accepted"): C.ACCEPTED,
    (C.INCOMING, "rejected"): C.IDLE,
    (C.ACCEPTED, "connected"): C.CONNECTED,
    (C.CONNECTED, "close"): C.CLOSING,
    (C.CLOSE_INDICATED, "close"): C.CLOSING,
    (C.CONNECTED, "incoming_close"): C.CLOSE_INDICATED,
    (C.ACCEPTED, "incoming_close"): C.CLOSE_INDICATED,
    (C.CLOSING, "closed"): C.IDLE,
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


class HasCall(Protocol):
    call: CallState


def move_call(
    obj: HasCall, event: str, *, culprit: Culprit = Culprit.NDIS_USER, rule: str = "PY-STATE"
) -> CallState:
    """Apply ``event`` to a VC's ``call`` field through :data:`CALL_TRANSITIONS` (the call
    half of a VC has its own field and table; see the module notes)."""
    new = CALL_TRANSITIONS.get((obj.call, event))
    if new is None:
        raise error_class_for(culprit)(
            f"{obj!r}: cannot {event} the call in state {obj.call.name}", rule=rule, subject=obj
        )
    obj.call = new
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
    "CALL_TRANSITIONS",
    "VC_TRANSITIONS",
    "AdapterState",
    "BindingState",
    "CallState",
    "VcState",
    "bad_move",
    "move",
    "move_call",
]
