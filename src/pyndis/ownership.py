"""Descriptor ownership: one state field, one transition table.

Theory of operation
-------------------
Every descriptor that crosses the send path (``NDIS_PACKET``, ``NET_BUFFER_LIST``, and the
buffers and NET_BUFFERs that travel with them) has exactly one field, ``ownership``, saying who
owns it right now. It changes only through :func:`transition`, which looks the move up in
:data:`TRANSITIONS`. The library, the verifier and the diagram in ``docs/ownership.md`` all read
that one table, so the rules cannot drift apart. (The hottest paths, the packet and buffer
pools and the 5.x send path, write the call out for a descriptor without a history, using the
table's :data:`MOVES`; see "Cost" below.)

A send, seen as the ownership of one packet::

    FREE --allocate--> ALLOCATED --send--> IN_NDIS --submit--> AT_MINIPORT
                            ^                 |  ^                 |   |
                            |              abort  \\---requeue-----/   complete
                            |                 v                        v
                            +----return---- COMPLETING <---------------+

* ``ALLOCATED``: the driver that allocated the descriptor owns it (or got it back).
* ``IN_NDIS``: the NDIS library owns it: being routed, or waiting in a serialized miniport's
  queue.
* ``AT_MINIPORT``: the miniport's send handler has it and has not completed it yet.
* ``COMPLETING``: the miniport gave it back (NdisM[Co]Send[NetBufferLists]Complete) or NDIS
  failed it from its own queue; NDIS is routing it to the sender's completion handler. The
  ``return`` event hands it to the sender just before that handler runs (or before a
  synchronous non-PENDING ``NdisSend`` returns).
* ``INDICATED``: lent to an overlying driver by a receive indication, until it is returned.
* ``DESTROYED``: zeroed over (NdisZeroMemory on the packet) or its pool freed; unusable.

An NDIS 6 intermediate driver may pass an NBL it received from above on to the next lower
driver (``forward``: AT_MINIPORT -> IN_NDIS); its completion comes back to the intermediate
driver (``return_forwarded``: COMPLETING -> AT_MINIPORT). An NDIS 5 intermediate driver must
repackage instead; the library refuses to forward an NDIS_PACKET.

Every move the table lacks is a contract violation. :data:`EVENT_INFO` says which party performs
each event, so the error names it (sending a packet NDIS still owns is the protocol's fault;
completing a packet twice is the miniport's). Specific bad moves get specific rule ids through
:data:`MISUSE`.

Cost: :func:`transition` is two tuple indexings and a compare; the history is recorded only
when the descriptor carries one (the verifier gives each descriptor a :class:`History`). Hot
paths pass the ``Event`` members from module globals: reading an attribute of an Enum class
costs more than the whole move on CPython 3.11. Where a move runs once per packet and the
descriptor has no history (verifier off), the call itself is the cost, so those paths write
it out with :data:`MOVES` (``source, target = MOVES[event]``)::

    if obj.history is None and obj.ownership is source:
        obj.ownership = target          # what transition() would do
    else:
        transition(obj, event)          # records the move, or raises the right error

With the verifier on, every move goes through :func:`transition` and is recorded. A
:class:`History` keeps raw records and formats them (call site, line number, text) only when
read.
"""

from __future__ import annotations

import enum
import sys
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Protocol

from .errors import Culprit, NdisError, NdisInternalError, error_class_for


class Ownership(enum.IntEnum):
    """Who owns a descriptor right now."""

    FREE = 0
    ALLOCATED = 1
    IN_NDIS = 2
    AT_MINIPORT = 3
    COMPLETING = 4
    INDICATED = 5
    DESTROYED = 6


class Event(enum.IntEnum):
    """What happens to a descriptor."""

    ALLOCATE = 0
    FREE = 1
    SEND = 2
    SUBMIT = 3
    REQUEUE = 4
    COMPLETE = 5
    ABORT = 6
    RETURN = 7
    FORWARD = 8
    RETURN_FORWARDED = 9
    INDICATE = 10
    RETURN_INDICATED = 11
    DESTROY = 12


O = Ownership  # noqa: E741 - short aliases keep the table readable
E = Event

#: The one table: (state, event) -> next state. Nothing else changes ``ownership``.
TRANSITIONS: dict[tuple[Ownership, Event], Ownership] = {
    (O.FREE, E.ALLOCATE): O.ALLOCATED,
    (O.ALLOCATED, E.FREE): O.FREE,
    (O.ALLOCATED, E.SEND): O.IN_NDIS,
    (O.IN_NDIS, E.SUBMIT): O.AT_MINIPORT,
    (O.AT_MINIPORT, E.REQUEUE): O.IN_NDIS,
    (O.AT_MINIPORT, E.COMPLETE): O.COMPLETING,
    (O.IN_NDIS, E.ABORT): O.COMPLETING,
    (O.COMPLETING, E.RETURN): O.ALLOCATED,
    (O.AT_MINIPORT, E.FORWARD): O.IN_NDIS,
    (O.COMPLETING, E.RETURN_FORWARDED): O.AT_MINIPORT,
    (O.ALLOCATED, E.INDICATE): O.INDICATED,
    (O.INDICATED, E.RETURN_INDICATED): O.ALLOCATED,
    **{(state, E.DESTROY): O.DESTROYED for state in Ownership},
}


@dataclass(frozen=True, slots=True)
class EventInfo:
    """Who performs an event, and the rule a bad use of it breaks."""

    actor: Culprit
    rule: str
    verb: str


#: The performer of each event and the default rule for an illegal use of it.
EVENT_INFO: dict[Event, EventInfo] = {
    E.ALLOCATE: EventInfo(Culprit.NDIS, "PY-POOL", "allocate"),
    E.FREE: EventInfo(Culprit.NDIS_USER, "PY-FREE-NOT-OWNED", "free"),
    E.SEND: EventInfo(Culprit.PROTOCOL, "PY-SEND-NOT-OWNED", "send"),
    E.SUBMIT: EventInfo(Culprit.NDIS, "PY-SUBMIT", "submit to the miniport"),
    E.REQUEUE: EventInfo(Culprit.MINIPORT, "R21", "return RESOURCES for"),
    E.COMPLETE: EventInfo(Culprit.MINIPORT, "PY-COMPLETE-NOT-OWNED", "complete"),
    E.ABORT: EventInfo(Culprit.NDIS, "PY-ABORT", "abort"),
    E.RETURN: EventInfo(Culprit.NDIS, "PY-RETURN", "return to its sender"),
    E.FORWARD: EventInfo(Culprit.INTERMEDIATE, "R47", "forward"),
    E.RETURN_FORWARDED: EventInfo(Culprit.NDIS, "PY-RETURN", "return to its forwarder"),
    E.INDICATE: EventInfo(Culprit.MINIPORT, "PY-INDICATE-NOT-OWNED", "indicate"),
    E.RETURN_INDICATED: EventInfo(Culprit.PROTOCOL, "PY-RETURN-NOT-INDICATED", "return"),
    E.DESTROY: EventInfo(Culprit.NDIS_USER, "PY-DESTROY", "destroy"),
}

#: Specific misuses with their own rule ids and explanations.
MISUSE: dict[tuple[Ownership, Event], tuple[str, str]] = {
    (O.FREE, E.FREE): ("PY-DOUBLE-FREE", "freed twice"),
    (O.IN_NDIS, E.FREE): ("R48", "freed while NDIS owns it (sent, not yet completed)"),
    (O.AT_MINIPORT, E.FREE): ("R48", "freed while the miniport owns it (not yet completed)"),
    (O.COMPLETING, E.FREE): ("R48", "freed while its completion is being delivered"),
    (O.INDICATED, E.FREE): ("PY-FREE-INDICATED", "freed while lent to a receiver"),
    (O.IN_NDIS, E.SEND): ("R17", "sent again before its completion (use after send)"),
    (O.AT_MINIPORT, E.SEND): ("R17", "sent again before its completion (use after send)"),
    (O.COMPLETING, E.SEND): ("R17", "sent again before its completion (use after send)"),
    (O.FREE, E.SEND): ("R40", "sent after it was freed (descriptors come only from a pool)"),
    (O.DESTROYED, E.SEND): (
        "PY-ZEROED-PACKET",
        "sent after NdisZeroMemory destroyed it (zero NDIS_OOB_DATA_FROM_PACKET, not the packet)",
    ),
    (O.COMPLETING, E.COMPLETE): ("PY-DOUBLE-COMPLETE", "completed twice"),
    (O.ALLOCATED, E.COMPLETE): ("PY-DOUBLE-COMPLETE", "completed after it went back to its sender"),
    (O.IN_NDIS, E.COMPLETE): ("PY-COMPLETE-NOT-OWNED", "completed but never given to it"),
    (O.FREE, E.COMPLETE): ("PY-DOUBLE-COMPLETE", "completed after its sender freed it"),
    (O.ALLOCATED, E.RETURN_INDICATED): ("PY-DOUBLE-RETURN", "returned twice or never indicated"),
    (O.FREE, E.RETURN_INDICATED): ("PY-DOUBLE-RETURN", "returned after its owner freed it"),
}


class Owned(Protocol):
    """What :func:`transition` needs of a descriptor."""

    ownership: Ownership
    history: History | None


def _compile() -> tuple[tuple[Ownership | None, ...], ...]:
    table: list[list[Ownership | None]] = [[None] * len(Ownership) for _ in Event]
    for (state, event), new in TRANSITIONS.items():
        table[event][state] = new
    return tuple(tuple(row) for row in table)


#: ``_NEXT[event][state]`` -> next state or None (illegal); compiled from TRANSITIONS.
_NEXT = _compile()


def _single_moves() -> dict[Event, tuple[Ownership, Ownership]]:
    sources: dict[Event, list[tuple[Ownership, Ownership]]] = {}
    for (state, event), new in TRANSITIONS.items():
        sources.setdefault(event, []).append((state, new))
    return {event: moves[0] for event, moves in sources.items() if len(moves) == 1}


#: ``MOVES[event] == (source, target)`` for every event the table allows from one state only
#: (all but ``destroy``); compiled from TRANSITIONS. For the hot paths' written-out moves:
#: on a descriptor without a history, ``if obj.ownership is source: obj.ownership = target``
#: (else ``transition()``, which raises) is exactly what :func:`transition` does.
MOVES: dict[Event, tuple[Ownership, Ownership]] = _single_moves()


def transition(obj: Owned, event: Event, note: str = "") -> None:
    """Move ``obj`` through ``event`` or raise the NdisError that names the culprit."""
    old = obj.ownership
    new = _NEXT[event][old]
    if new is None:
        raise illegal_transition(obj, event)
    if obj.history is not None:
        obj.history.record(event, old, new, note)
    obj.ownership = new


def can(obj: Owned, event: Event) -> bool:
    """True if ``event`` is legal for ``obj`` now (no side effect)."""
    return _NEXT[event][obj.ownership] is not None


def illegal_transition(obj: Owned, event: Event, actor: Culprit | None = None) -> NdisError:
    """Build the error for an illegal move (does not raise it)."""
    info = EVENT_INFO[event]
    state = obj.ownership
    rule, why = MISUSE.get((state, event), (info.rule, f"is {state.name}, cannot {info.verb} it"))
    culprit = actor or info.actor
    if culprit is Culprit.NDIS and event not in (E.ALLOCATE,):
        # An internal move refused: NDIS's own bookkeeping is wrong.
        return NdisInternalError(f"{obj!r}: {why}", rule=rule, subject=obj, history=_entries(obj))
    cls = error_class_for(culprit)
    return cls(f"{obj!r}: {why}", rule=rule, subject=obj, history=_entries(obj))


def _entries(obj: Owned) -> list[HistoryEntry]:
    return list(obj.history.entries) if obj.history is not None else []


# --- history ------------------------------------------------------------------------------------

# Paths are compared with "/" separators so that Windows paths (backslashes) work too.
_PACKAGE_DIR = __file__.replace("\\", "/").rsplit("/", 1)[0] + "/"
_USER_DIRS = (f"{_PACKAGE_DIR}drivers/", f"{_PACKAGE_DIR}testing/", f"{_PACKAGE_DIR}cli/")

#: co_filename -> True when the file is part of the pyndis core (skipped by the call-site walk).
#: Keyed by file name, not by code object: two code objects compiled from the same text in two
#: files compare equal.
_CORE_FILES: dict[str, bool] = {}


def _is_core(filename: str) -> bool:
    inside = _CORE_FILES.get(filename)
    if inside is None:
        name = filename.replace("\\", "/")
        inside = name.startswith(_PACKAGE_DIR) and not name.startswith(_USER_DIRS)
        _CORE_FILES[filename] = inside
    return inside


def _caller(frame: FrameType | None) -> tuple[CodeType, int] | None:
    """The first frame from ``frame`` outward that is outside the pyndis core, as its code
    object and instruction offset (both cheap to read; the line number is not)."""
    core = _CORE_FILES
    while frame is not None:
        code = frame.f_code
        inside = core.get(code.co_filename)
        if inside is None:
            inside = _is_core(code.co_filename)
        if not inside:
            return code, frame.f_lasti
        frame = frame.f_back
    return None


def _line_of(code: CodeType, lasti: int) -> int:
    """The source line of the instruction at byte offset ``lasti`` (what ``f_lineno`` says)."""
    line = code.co_firstlineno
    for start, stop, number in code.co_lines():
        if start <= lasti < stop:
            return line if number is None else number
    return line


def format_site(site: tuple[CodeType, int] | None) -> str:
    """``dir/file.py:line in function`` for a site :func:`_caller` found ("?" for none)."""
    if site is None:
        return "?"
    code, lasti = site
    short = code.co_filename.replace("\\", "/").rsplit("/", 2)
    return f"{'/'.join(short[-2:])}:{_line_of(code, lasti)} in {code.co_name}"


def call_site() -> str:
    """The first frame outside the pyndis core (driver, test or user code), as ``file:line``."""
    return format_site(_caller(sys._getframe(1)))


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One ownership move of one descriptor."""

    time: float
    event: Event
    old: Ownership
    new: Ownership
    site: str
    note: str

    def __str__(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return (
            f"t={self.time:.9f} {self.event.name.lower()}: {self.old.name} -> {self.new.name}"
            f"{note} at {self.site}"
        )


#: What :meth:`History.record` keeps per move: (time, event, old, new, site, note), the site
#: still unformatted (code object and instruction offset).
_Raw = tuple[float, Event, Ownership, Ownership, tuple[CodeType, int] | None, str]


class History:
    """The actor-tagged life of one descriptor, kept while the verifier is on.

    ``clock`` returns the kernel's virtual time; ``limit`` bounds memory for long runs (the
    oldest entries are dropped first).

    Cost: :meth:`record` runs on every ownership move of every descriptor while the verifier
    is on, so it keeps raw tuples and the call site as a code object and an instruction
    offset; :attr:`entries` turns them into :class:`HistoryEntry` objects (line numbers and
    text) only when somebody reads them, which is rare: an error, a report.
    """

    __slots__ = ("_raw", "clock", "limit")

    def __init__(self, clock: Callable[[], float], limit: int = 64) -> None:
        self.clock = clock
        self.limit = limit
        self._raw: deque[_Raw] = deque(maxlen=limit)

    def record(self, event: Event, old: Ownership, new: Ownership, note: str = "") -> None:
        self._raw.append((self.clock(), event, old, new, _caller(sys._getframe(1)), note))

    @property
    def entries(self) -> list[HistoryEntry]:
        """The moves recorded so far, oldest first (a new list on every read)."""
        return [
            HistoryEntry(time, event, old, new, format_site(site), note)
            for time, event, old, new, site, note in self._raw
        ]

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self._raw)


def mermaid_diagram() -> str:
    """The ownership state diagram, generated from :data:`TRANSITIONS` (used by the docs)."""
    lines = ["stateDiagram-v2", "    [*] --> FREE"]
    for (state, event), new in TRANSITIONS.items():
        if event is E.DESTROY:
            continue
        lines.append(f"    {state.name} --> {new.name}: {event.name.lower()}")
    lines.append("    note right of DESTROYED: any state --destroy--> DESTROYED")
    return "\n".join(lines)


__all__ = [
    "EVENT_INFO",
    "MISUSE",
    "MOVES",
    "TRANSITIONS",
    "Event",
    "EventInfo",
    "History",
    "HistoryEntry",
    "Owned",
    "Ownership",
    "call_site",
    "can",
    "format_site",
    "illegal_transition",
    "mermaid_diagram",
    "transition",
]
