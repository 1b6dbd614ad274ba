"""IRQL emulation: per-thread levels, raise/lower rules, level checks and NDIS spin locks."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pyndis.constants import APC_LEVEL, DIRQL, DISPATCH_LEVEL, PASSIVE_LEVEL
from pyndis.errors import Culprit, IrqlError, NdisUsageError
from pyndis.irql import NDIS_SPIN_LOCK, Irql

JOIN_TIMEOUT = 10.0  # only a guard against a hung test; nothing asserts on time


def in_thread(fn: Callable[[], None]) -> None:
    """Run ``fn`` in a new thread (a second processor) and re-raise what it raised."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive(), "the thread hung"
    if failure:
        raise failure[0]


# --- levels -------------------------------------------------------------------------------------


def test_a_thread_starts_at_passive_level() -> None:
    assert Irql().level == PASSIVE_LEVEL


def test_raise_returns_the_old_level() -> None:
    irql = Irql()
    assert irql.raise_to(APC_LEVEL) == PASSIVE_LEVEL
    assert irql.raise_to(DISPATCH_LEVEL) == APC_LEVEL
    assert irql.raise_to(DISPATCH_LEVEL) == DISPATCH_LEVEL  # raising to the same level is fine
    assert irql.level == DISPATCH_LEVEL


def test_rule_62_raising_to_a_lower_level_is_refused() -> None:
    irql = Irql()
    irql.raise_to(DISPATCH_LEVEL)
    with pytest.raises(IrqlError) as info:
        irql.raise_to(PASSIVE_LEVEL)
    assert info.value.rule == "R62"
    assert "KeRaiseIrql to PASSIVE_LEVEL from the higher DISPATCH_LEVEL" in str(info.value)
    assert irql.level == DISPATCH_LEVEL


def test_rule_62_lowering_to_a_higher_level_is_refused() -> None:
    irql = Irql()
    with pytest.raises(IrqlError) as info:
        irql.lower_to(DISPATCH_LEVEL)
    assert info.value.rule == "R62"
    assert irql.level == PASSIVE_LEVEL


def test_lower_goes_back_down() -> None:
    irql = Irql()
    old = irql.raise_to(DISPATCH_LEVEL)
    irql.lower_to(old)
    assert irql.level == PASSIVE_LEVEL


def test_at_restores_the_level_even_when_the_block_raises() -> None:
    irql = Irql()
    with pytest.raises(RuntimeError), irql.at(DISPATCH_LEVEL):
        assert irql.level == DISPATCH_LEVEL
        raise RuntimeError
    assert irql.level == PASSIVE_LEVEL
    irql.set(DISPATCH_LEVEL)
    with irql.at(PASSIVE_LEVEL):  # ``at`` may also lower (a passive work item)
        assert irql.level == PASSIVE_LEVEL
    assert irql.level == DISPATCH_LEVEL


def test_levels_are_per_thread() -> None:
    irql = Irql()
    irql.raise_to(DISPATCH_LEVEL)
    seen: list[int] = []

    def other() -> None:
        seen.append(irql.level)
        irql.raise_to(APC_LEVEL)
        seen.append(irql.level)

    in_thread(other)
    assert seen == [PASSIVE_LEVEL, APC_LEVEL]
    assert irql.level == DISPATCH_LEVEL


def test_level_is_a_plain_attribute_of_each_thread() -> None:
    irql = Irql()
    assert isinstance(irql, threading.local)
    irql.level = DISPATCH_LEVEL  # what the hot paths do instead of set()
    seen: list[int] = []

    def other() -> None:
        seen.append(irql.level)
        irql.level = APC_LEVEL
        seen.append(irql.level)

    in_thread(other)
    assert seen == [PASSIVE_LEVEL, APC_LEVEL]
    assert irql.level == DISPATCH_LEVEL
    irql.set(PASSIVE_LEVEL)
    assert irql.level == PASSIVE_LEVEL


def test_levels_are_per_kernel() -> None:
    a, b = Irql(), Irql()
    a.raise_to(DISPATCH_LEVEL)
    assert b.level == PASSIVE_LEVEL


# --- checks ----------------------------------------------------------------------------------


def test_check_at_most_passes_at_or_below_the_limit() -> None:
    irql = Irql()
    irql.check_at_most("NdisSend", Culprit.PROTOCOL)
    irql.set(DISPATCH_LEVEL)
    irql.check_at_most("NdisSend", Culprit.PROTOCOL)


def test_rule_62_check_at_most_names_the_ddi_and_the_culprit() -> None:
    irql = Irql()
    irql.set(DIRQL)
    with pytest.raises(IrqlError) as info:
        irql.check_at_most("NdisSendPackets", Culprit.PROTOCOL)
    err = info.value
    assert err.rule == "R62"
    assert err.culprit is Culprit.PROTOCOL
    assert "NdisSendPackets called at DIRQL; it requires IRQL <= DISPATCH_LEVEL" in str(err)


def test_check_at_most_with_a_passive_limit() -> None:
    irql = Irql()
    irql.set(DISPATCH_LEVEL)
    with pytest.raises(IrqlError) as info:
        irql.check_at_most("MiniportPause", Culprit.MINIPORT, PASSIVE_LEVEL)
    assert info.value.culprit is Culprit.MINIPORT


def test_check_exactly() -> None:
    irql = Irql()
    with pytest.raises(IrqlError) as info:
        irql.check_exactly("NdisDprAllocatePacket", Culprit.MINIPORT, DISPATCH_LEVEL)
    assert "requires DISPATCH_LEVEL" in str(info.value)
    assert info.value.culprit is Culprit.MINIPORT
    irql.set(DISPATCH_LEVEL)
    irql.check_exactly("NdisDprAllocatePacket", Culprit.MINIPORT, DISPATCH_LEVEL)
    irql.set(DIRQL)
    with pytest.raises(IrqlError):
        irql.check_exactly("NdisDprAllocatePacket", Culprit.MINIPORT, DISPATCH_LEVEL)


# --- spin locks ---------------------------------------------------------------------------------


def test_acquire_raises_to_dispatch_and_release_restores_passive() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK("queue")
    lock.acquire(irql)
    assert irql.level == DISPATCH_LEVEL
    assert lock.held
    assert lock.OldIrql == PASSIVE_LEVEL
    assert lock.owner == threading.get_ident()
    lock.release(irql)
    assert irql.level == PASSIVE_LEVEL
    assert not lock.held


def test_acquire_at_dispatch_stays_at_dispatch() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    irql.set(DISPATCH_LEVEL)
    lock.acquire(irql)
    assert lock.OldIrql == DISPATCH_LEVEL
    lock.release(irql)
    assert irql.level == DISPATCH_LEVEL


def test_nested_different_locks_restore_in_order() -> None:
    irql, outer, inner = Irql(), NDIS_SPIN_LOCK("outer"), NDIS_SPIN_LOCK("inner")
    outer.acquire(irql)
    inner.acquire(irql)
    inner.release(irql)
    assert irql.level == DISPATCH_LEVEL
    outer.release(irql)
    assert irql.level == PASSIVE_LEVEL


def test_acquire_above_dispatch_is_refused() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    irql.set(DIRQL)
    with pytest.raises(IrqlError) as info:
        lock.acquire(irql)
    assert info.value.rule == "R62"
    assert not lock.held
    assert irql.level == DIRQL


def test_recursive_acquire_is_refused_instead_of_deadlocking() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK("adapter")
    lock.acquire(irql)
    with pytest.raises(NdisUsageError) as info:
        lock.acquire(irql)
    assert info.value.rule == "PY-SPINLOCK-RECURSION"
    assert "adapter" in str(info.value)
    assert lock.held and irql.level == DISPATCH_LEVEL
    lock.release(irql)  # still releasable once: the refused acquire changed nothing
    assert irql.level == PASSIVE_LEVEL


def test_release_without_holding_is_refused() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    with pytest.raises(NdisUsageError) as info:
        lock.release(irql)
    assert info.value.rule == "PY-SPINLOCK-NOT-HELD"


def test_release_by_another_processor_is_refused() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK("shared")
    lock.acquire(irql)
    with pytest.raises(NdisUsageError) as info:
        in_thread(lambda: lock.release(irql))
    assert info.value.rule == "PY-SPINLOCK-NOT-HELD"
    assert lock.held
    lock.release(irql)


def test_a_held_lock_excludes_another_processor() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    waiting, acquired, done = threading.Event(), threading.Event(), threading.Event()
    levels: list[int] = []

    def other() -> None:
        waiting.set()
        lock.acquire(irql)  # blocks until the main thread releases
        levels.append(irql.level)
        acquired.set()
        lock.release(irql)
        levels.append(irql.level)
        done.set()

    lock.acquire(irql)
    thread = threading.Thread(target=other)
    thread.start()
    assert waiting.wait(JOIN_TIMEOUT)
    assert not acquired.is_set()  # cannot be set while we hold the lock, whatever the timing
    lock.release(irql)
    thread.join(JOIN_TIMEOUT)
    assert done.is_set()
    assert levels == [DISPATCH_LEVEL, PASSIVE_LEVEL]  # the other processor's own levels
    assert irql.level == PASSIVE_LEVEL


def test_dpr_acquire_needs_dispatch_and_leaves_the_level_alone() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    with pytest.raises(IrqlError) as info:
        lock.acquire(irql, dpr=True)
    assert "NdisDprAcquireSpinLock" in str(info.value)
    assert not lock.held
    irql.set(DISPATCH_LEVEL)
    lock.acquire(irql, dpr=True)
    assert irql.level == DISPATCH_LEVEL
    lock.release(irql, dpr=True)
    assert irql.level == DISPATCH_LEVEL
    assert not lock.held


def test_dpr_release_of_a_lock_held_by_another_processor_is_refused() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    irql.set(DISPATCH_LEVEL)
    lock.acquire(irql, dpr=True)
    with pytest.raises(NdisUsageError):
        in_thread(lambda: lock.release(irql, dpr=True))
    lock.release(irql, dpr=True)


def test_lock_works_across_many_threads() -> None:
    irql, lock = Irql(), NDIS_SPIN_LOCK()
    counter = [0]
    final_levels: list[int] = []

    def worker() -> None:
        for _ in range(500):
            lock.acquire(irql)
            value = counter[0]
            counter[0] = value + 1
            lock.release(irql)
        final_levels.append(irql.level)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert counter[0] == 2000
    assert final_levels == [PASSIVE_LEVEL] * 4
    assert not lock.held
