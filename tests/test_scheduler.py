"""The deterministic scheduler: order, virtual time, cancel, limits, threads, seeds, IRQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pyndis.constants import DISPATCH_LEVEL, PASSIVE_LEVEL
from pyndis.errors import NdisUsageError
from pyndis.irql import Irql
from pyndis.scheduler import (
    NS_PER_SECOND,
    PRIORITY_DPC,
    PRIORITY_PASSIVE,
    PRIORITY_TIMER,
    PRIORITY_WIRE,
    Scheduler,
)


@pytest.fixture
def sched() -> Scheduler:
    return Scheduler(Irql(), seed=7)


def recorder() -> tuple[list[Any], Any]:
    log: list[Any] = []

    def note(*args: Any) -> None:
        log.append(args[0] if len(args) == 1 else args)

    return log, note


# --- order ----------------------------------------------------------------------------------------


def test_ties_run_first_in_first_out(sched: Scheduler) -> None:
    log, note = recorder()
    for n in range(10):
        sched.call_at(100, note, n)
    assert sched.run() == 10
    assert log == list(range(10))


def test_priorities_order_items_due_at_the_same_instant(sched: Scheduler) -> None:
    log, note = recorder()
    sched.call_at(50, note, "passive", priority=PRIORITY_PASSIVE)
    sched.call_at(50, note, "wire", priority=PRIORITY_WIRE)
    sched.call_at(50, note, "timer", priority=PRIORITY_TIMER)
    sched.call_at(50, note, "dpc", priority=PRIORITY_DPC)
    sched.run()
    assert log == ["dpc", "timer", "wire", "passive"]


def test_earlier_items_run_first_whatever_their_priority(sched: Scheduler) -> None:
    log, note = recorder()
    sched.call_at(20, note, "late dpc", priority=PRIORITY_DPC)
    sched.call_at(10, note, "early passive", priority=PRIORITY_PASSIVE)
    sched.run()
    assert log == ["early passive", "late dpc"]


def test_a_dpc_queued_by_a_callback_runs_after_it_at_the_same_time(sched: Scheduler) -> None:
    log, note = recorder()

    def first() -> None:
        log.append(("first", sched.now_ns))
        sched.queue_dpc(note, ("dpc", sched.now_ns))

    sched.call_at(30, first)
    sched.call_at(30, note, ("second timer", 30))
    sched.run()
    # the DPC outranks the timer that was already queued for the same instant
    assert log == [("first", 30), ("dpc", 30), ("second timer", 30)]


# --- virtual time -------------------------------------------------------------------------------


def test_time_jumps_to_each_item(sched: Scheduler) -> None:
    seen: list[int] = []
    sched.call_later(5 * NS_PER_SECOND, lambda: seen.append(sched.now_ns))
    sched.call_later(3, lambda: seen.append(sched.now_ns))
    sched.run()
    assert seen == [3, 5 * NS_PER_SECOND]
    assert sched.now == 5.0
    assert sched.clock() == 5.0


def test_call_later_measures_from_now(sched: Scheduler) -> None:
    seen: list[int] = []
    sched.run_until(1000)
    sched.call_later(10, lambda: seen.append(sched.now_ns))
    sched.run()
    assert seen == [1010]


def test_a_negative_delay_means_now(sched: Scheduler) -> None:
    sched.run_until(500)
    item = sched.call_later(-20, lambda: None)
    assert item.due == 500


def test_scheduling_in_the_past_is_refused(sched: Scheduler) -> None:
    sched.run_until(100)
    with pytest.raises(NdisUsageError) as info:
        sched.call_at(99, lambda: None, label="late")
    assert info.value.rule == "PY-SCHEDULER"
    assert "late" in str(info.value)


def test_run_until_runs_only_what_is_due_and_sets_the_clock(sched: Scheduler) -> None:
    log, note = recorder()
    sched.call_at(10, note, "a")
    sched.call_at(20, note, "b")
    sched.call_at(21, note, "c")
    assert sched.run_until(20) == 2
    assert log == ["a", "b"]
    assert sched.now_ns == 20
    assert sched.pending() == 1
    assert sched.run_until(1000) == 1
    assert sched.now_ns == 1000


def test_run_until_includes_work_scheduled_inside_the_window(sched: Scheduler) -> None:
    log, note = recorder()
    sched.call_at(10, lambda: sched.call_later(5, note, "chained"))
    sched.call_at(10, lambda: sched.call_later(50, note, "too late"))
    sched.run_until(30)
    assert log == ["chained"]


def test_run_until_never_moves_the_clock_back(sched: Scheduler) -> None:
    sched.run_until(100)
    assert sched.run_until(40) == 0
    assert sched.now_ns == 100


def test_advance_to_is_run_until(sched: Scheduler) -> None:
    log, note = recorder()
    sched.call_at(7, note, "x")
    assert sched.advance_to(7) == 1
    assert log == ["x"]


def test_next_due(sched: Scheduler) -> None:
    assert sched.next_due() is None
    first = sched.call_at(40, lambda: None)
    sched.call_at(60, lambda: None)
    assert sched.next_due() == 40
    first.cancel()
    assert sched.next_due() == 60


# --- cancel -------------------------------------------------------------------------------------


def test_a_cancelled_item_does_not_run(sched: Scheduler) -> None:
    log, note = recorder()
    keep = sched.call_at(10, note, "keep")
    drop = sched.call_at(10, note, "drop")
    assert sched.pending() == 2
    assert drop.cancel() is True
    assert drop.cancel() is False
    assert sched.pending() == 1
    assert sched.run() == 1
    assert log == ["keep"]
    assert sched.executed == 1
    assert keep.done and not keep.cancelled


def test_cancel_after_the_item_ran_reports_false(sched: Scheduler) -> None:
    item = sched.call_at(10, lambda: None)
    sched.run()
    assert item.cancel() is False  # as KeCancelTimer for a timer that already fired


def test_an_item_can_cancel_a_later_one(sched: Scheduler) -> None:
    log, note = recorder()
    later = sched.call_at(20, note, "later")
    sched.call_at(10, later.cancel)
    sched.run()
    assert log == []


# --- the livelock guard -------------------------------------------------------------------------


def test_run_refuses_to_spin_forever(sched: Scheduler) -> None:
    def again() -> None:
        sched.call_later(1, again)

    sched.call_later(1, again)
    with pytest.raises(NdisUsageError) as info:
        sched.run(max_items=100)
    assert info.value.rule == "PY-SCHEDULER"
    assert "livelock" in str(info.value)
    assert sched.executed == 100


def test_exactly_max_items_of_work_is_not_a_livelock(sched: Scheduler) -> None:
    for n in range(5):
        sched.call_at(n, lambda: None)
    assert sched.run(max_items=5) == 5


def test_run_returns_zero_when_idle(sched: Scheduler) -> None:
    assert sched.run() == 0
    assert sched.step() is False


# --- other threads ------------------------------------------------------------------------------


def test_post_from_other_threads_is_taken_in_order(sched: Scheduler) -> None:
    log, note = recorder()
    ready = threading.Event()

    def reader() -> None:
        for n in range(100):
            sched.post(note, n, label="rx")
        ready.set()

    thread = threading.Thread(target=reader)
    thread.start()
    thread.join(10)
    assert ready.is_set()
    assert sched.pending() == 100
    assert sched.run() == 100
    assert log == list(range(100))


def test_post_from_many_threads_loses_nothing(sched: Scheduler) -> None:
    log, note = recorder()

    def reader(k: int) -> None:
        for n in range(250):
            sched.post(note, (k, n))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    sched.run()
    assert sorted(log) == [(k, n) for k in range(4) for n in range(250)]
    for k in range(4):  # each thread's items keep their own order
        assert [n for kk, n in log if kk == k] == list(range(250))


def test_posted_items_run_at_the_current_time_at_dispatch(sched: Scheduler) -> None:
    seen: list[tuple[int, int]] = []
    sched.run_until(777)
    sched.post(lambda: seen.append((sched.now_ns, sched.irql.level)))
    sched.run()
    assert seen == [(777, DISPATCH_LEVEL)]


# --- determinism ------------------------------------------------------------------------------


def scenario(seed: int) -> tuple[list[float], str]:
    """A small program whose timing depends on the seed; returns its randoms and trace."""
    sched = Scheduler(Irql(), seed=seed)
    draws: list[float] = []

    def completion(n: int) -> None:
        sched.trace("complete", f"packet={n}")
        if n < 20:
            delay = sched.random.randrange(1, 1000)
            draws.append(delay)
            sched.call_later(delay, completion, n + 10)

    for n in range(10):
        delay = sched.random.randrange(1, 1000)
        draws.append(delay)
        sched.trace("send", f"packet={n}", f"delay={delay}")
        sched.call_later(delay, completion, n)
    sched.run()
    return draws, sched.trace_text()


def test_same_seed_same_random_sequence() -> None:
    a, b = Scheduler(Irql(), seed=42), Scheduler(Irql(), seed=42)
    assert [a.random.random() for _ in range(20)] == [b.random.random() for _ in range(20)]


def test_same_seed_same_trace_byte_for_byte() -> None:
    assert scenario(3) == scenario(3)


def test_different_seeds_give_different_traces() -> None:
    assert scenario(3)[1] != scenario(4)[1]


def test_trace_format(sched: Scheduler) -> None:
    sched.run_until(1500)
    sched.trace("send", "nbl=1", 2)
    assert sched.events == [f"{1500:>12} send nbl=1 2"]
    assert sched.trace_text() == f"{1500:>12} send nbl=1 2\n"


def test_no_trace_when_tracing_is_off() -> None:
    sched = Scheduler(Irql(), trace=False)
    sched.trace("send", "x")
    assert sched.events == []
    assert sched.trace_text() == ""


# --- IRQL of callbacks ------------------------------------------------------------------------


def test_dpcs_and_timers_run_at_dispatch_and_the_level_is_restored(sched: Scheduler) -> None:
    levels: list[int] = []
    sched.queue_dpc(lambda: levels.append(sched.irql.level))
    sched.call_later(10, lambda: levels.append(sched.irql.level))
    sched.run()
    assert levels == [DISPATCH_LEVEL, DISPATCH_LEVEL]
    assert sched.irql.level == PASSIVE_LEVEL


def test_a_passive_item_runs_at_passive(sched: Scheduler) -> None:
    levels: list[int] = []
    sched.irql.set(DISPATCH_LEVEL)
    sched.call_later(1, lambda: levels.append(sched.irql.level), irql=PASSIVE_LEVEL)
    sched.run()
    assert levels == [PASSIVE_LEVEL]
    assert sched.irql.level == DISPATCH_LEVEL


def test_the_level_is_restored_when_a_callback_raises(sched: Scheduler) -> None:
    def boom() -> None:
        raise RuntimeError("driver bug")

    sched.queue_dpc(boom)
    with pytest.raises(RuntimeError):
        sched.run()
    assert sched.irql.level == PASSIVE_LEVEL
    assert sched.pending() == 0  # the failed item is not retried


def test_args_and_labels_reach_the_item(sched: Scheduler) -> None:
    log, note = recorder()
    item = sched.call_at(5, note, 1, 2, label="two args")
    assert item.label == "two args" and item.args == (1, 2)
    sched.run()
    assert log == [(1, 2)]
