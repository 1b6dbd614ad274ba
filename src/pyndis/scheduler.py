"""The deterministic scheduler: virtual clock, DPCs, timers, one seeded random source, a trace.

Theory of operation
-------------------
A kernel's deferred work (DPCs, timer callbacks, a simulated NIC's transmit completions, frames
arriving from a wire) is a heap of ``(due time, priority, sequence, callback)`` items. The
sequence number makes ties first-in first-out, so a run is a pure function of the program and
the seed: the same seed gives the same trace, byte for byte. Time is *virtual*: an integer
count of nanoseconds that jumps to the next item's due time; nothing here reads the wall clock.

``random`` (a ``random.Random(seed)``) is the only source of randomness the library and the
sample drivers may use: completion orders, injected faults, link losses.

``trace(kind, **fields)`` appends one line to the event trace (when tracing is on). The library
traces every hand-off; tests compare traces to prove determinism, and the CLI writes them out.

Driving it:

* ``run()``: run items until none are left (or a limit is hit); the usual test driver.
* ``run_until(t)``: run items due at or before ``t`` and move the clock to ``t``.
* ``next_due()`` + ``advance_to(t)``: what a real-time driver uses. The back-ends' selectors
  loop maps wall-clock time onto virtual time and calls ``advance_to``; items posted from other
  threads with ``post()`` are taken in at the next step, so real I/O runs through the same code.

Callbacks run at the IRQL of their item (DPCs and timers at DISPATCH_LEVEL), restored after.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .constants import DISPATCH_LEVEL
from .errors import NdisUsageError
from .irql import Irql

#: Priorities for items due at the same instant (lower runs first).
PRIORITY_DPC = 10
PRIORITY_TIMER = 20
PRIORITY_WIRE = 30
PRIORITY_PASSIVE = 40

NS_PER_SECOND = 1_000_000_000


@dataclass(order=True, slots=True)
class WorkItem:
    """One scheduled callback. Cancelled items stay in the heap and are skipped.

    ``done`` is set when the scheduler takes the item to run it, so a later :meth:`cancel`
    reports False, as KeCancelTimer does for a timer that has already fired.
    """

    due: int
    priority: int
    seq: int
    callback: Callable[..., Any] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())
    irql: int = field(compare=False, default=DISPATCH_LEVEL)
    label: str = field(compare=False, default="")
    cancelled: bool = field(compare=False, default=False)
    done: bool = field(compare=False, default=False)

    def cancel(self) -> bool:
        """Cancel the item; True if it had not run or been cancelled yet."""
        was = not (self.cancelled or self.done)
        self.cancelled = True
        return was


class Scheduler:
    """Virtual time, work items and the seeded random source of one kernel."""

    def __init__(self, irql: Irql, seed: int = 0, trace: bool = True) -> None:
        self.irql = irql
        self.seed = seed
        self.random = random.Random(seed)
        self.now_ns = 0
        self._heap: list[WorkItem] = []
        self._seq = itertools.count()
        self._posted: list[WorkItem] = []
        self._post_lock = threading.Lock()
        self.tracing = trace
        self.events: list[str] = []
        self.executed = 0
        #: the item whose callback is running (None outside the scheduler): lets the library
        #: collect work done during one DPC and finish it when the DPC is over
        self.current: WorkItem | None = None

    # --- time --------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Virtual time in seconds."""
        return self.now_ns / NS_PER_SECOND

    def clock(self) -> float:
        """The current virtual time in seconds (a callable for histories)."""
        return self.now_ns / NS_PER_SECOND

    # --- scheduling ----------------------------------------------------------------------------
    def call_at(
        self,
        due_ns: int,
        callback: Callable[..., Any],
        *args: Any,
        priority: int = PRIORITY_TIMER,
        irql: int = DISPATCH_LEVEL,
        label: str = "",
    ) -> WorkItem:
        if due_ns < self.now_ns:
            raise NdisUsageError(
                f"cannot schedule {label or callback!r} in the past ({due_ns} < {self.now_ns})",
                rule="PY-SCHEDULER",
            )
        item = WorkItem(due_ns, priority, next(self._seq), callback, args, irql, label)
        heapq.heappush(self._heap, item)
        return item

    def call_later(
        self,
        delay_ns: int,
        callback: Callable[..., Any],
        *args: Any,
        priority: int = PRIORITY_TIMER,
        irql: int = DISPATCH_LEVEL,
        label: str = "",
    ) -> WorkItem:
        return self.call_at(
            self.now_ns + max(0, int(delay_ns)),
            callback,
            *args,
            priority=priority,
            irql=irql,
            label=label,
        )

    def queue_dpc(self, callback: Callable[..., Any], *args: Any, label: str = "") -> WorkItem:
        """KeInsertQueueDpc: run ``callback`` at DISPATCH_LEVEL as soon as the caller unwinds."""
        return self.call_at(
            self.now_ns, callback, *args, priority=PRIORITY_DPC, irql=DISPATCH_LEVEL, label=label
        )

    def post(self, callback: Callable[..., Any], *args: Any, label: str = "") -> None:
        """Thread-safe: queue ``callback`` from any thread (a back-end's reader, say)."""
        item = WorkItem(0, PRIORITY_WIRE, 0, callback, args, DISPATCH_LEVEL, label)
        with self._post_lock:
            self._posted.append(item)

    def _take_posted(self) -> None:
        if not self._posted:
            return
        with self._post_lock:
            posted, self._posted = self._posted, []
        for item in posted:
            item.due = self.now_ns
            item.seq = next(self._seq)
            heapq.heappush(self._heap, item)

    # --- running -------------------------------------------------------------------------------
    def pending(self) -> int:
        """Items not yet run (cancelled ones excluded)."""
        return sum(1 for item in self._heap if not item.cancelled) + len(self._posted)

    def next_due(self) -> int | None:
        """Due time (ns) of the next live item, or None when idle."""
        self._take_posted()
        while self._heap and self._heap[0].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0].due if self._heap else None

    def step(self) -> bool:
        """Run the next item (advancing the clock to it). False when there is nothing to run."""
        due = self.next_due()
        if due is None:
            return False
        item = heapq.heappop(self._heap)
        item.done = True
        self.now_ns = max(self.now_ns, item.due)
        self.executed += 1
        outer, self.current = self.current, item
        try:
            with self.irql.at(item.irql):
                item.callback(*item.args)
        finally:
            self.current = outer
        return True

    def run(self, max_items: int = 10_000_000) -> int:
        """Run until idle; returns the number of items run. Raises if work is still left after
        ``max_items`` items (a livelock: something keeps rescheduling itself)."""
        ran = 0
        while ran < max_items and self.step():
            ran += 1
        if ran >= max_items and self.next_due() is not None:
            raise NdisUsageError(
                f"scheduler still busy after {max_items} items (livelock?)",
                rule="PY-SCHEDULER",
            )
        return ran

    def run_until(self, t_ns: int) -> int:
        """Run every item due at or before ``t_ns``, then set the clock to ``t_ns``."""
        ran = 0
        while True:
            due = self.next_due()
            if due is None or due > t_ns:
                break
            self.step()
            ran += 1
        self.now_ns = max(self.now_ns, t_ns)
        return ran

    def advance_to(self, t_ns: int) -> int:
        """Real-time drivers: catch virtual time up with ``t_ns``."""
        return self.run_until(t_ns)

    # --- trace -----------------------------------------------------------------------------------
    def trace(self, kind: str, *fields: object) -> None:
        """Append ``<time> <kind> <fields...>`` to the trace (if tracing)."""
        if self.tracing:
            text = " ".join(str(f) for f in fields)
            self.events.append(f"{self.now_ns:>12} {kind} {text}")

    def trace_text(self) -> str:
        return "\n".join(self.events) + ("\n" if self.events else "")


__all__ = [
    "NS_PER_SECOND",
    "PRIORITY_DPC",
    "PRIORITY_PASSIVE",
    "PRIORITY_TIMER",
    "PRIORITY_WIRE",
    "Scheduler",
    "WorkItem",
]
