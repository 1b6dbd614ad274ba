"""HostContext: the kernel-wide state pools and descriptors use; PoolBase accounting."""

from __future__ import annotations

import pytest

from pyndis.constants import DISPATCH_LEVEL, PASSIVE_LEVEL
from pyndis.errors import Culprit, MiniportContractError, ProtocolContractError
from pyndis.hostctx import HostContext, PoolBase
from pyndis.ownership import Event, History, Ownership
from pyndis.verifier.core import Verifier


class TinyPool(PoolBase):
    kind = "tiny pool"


# --- verifier switch ----------------------------------------------------------------------------


def test_no_history_and_no_verifier_by_default() -> None:
    host = HostContext()
    assert host.history() is None
    assert host.verifier is None
    assert host.track_history is False


def test_flag_without_a_verifier_costs_nothing_and_raises_nothing() -> None:
    HostContext().flag(ProtocolContractError("read OOB status in flight", rule="R17"))


def test_verifier_gives_each_descriptor_its_own_history() -> None:
    host = HostContext(verifier=True)
    first, second = host.history(), host.history()
    assert isinstance(first, History) and isinstance(second, History)
    assert first is not second
    assert isinstance(host.verifier, Verifier)
    assert host.verifier.strict is False


def test_history_times_come_from_the_kernel_clock() -> None:
    host = HostContext(verifier=True)
    history = host.history()
    assert history is not None
    host.scheduler.run_until(2_500_000_000)
    history.record(Event.SEND, Ownership.ALLOCATED, Ownership.IN_NDIS)
    assert history.entries[0].time == 2.5


def test_flag_reaches_the_verifier() -> None:
    host = HostContext(verifier=True)
    err = ProtocolContractError("read OOB status in flight", rule="R17")
    host.flag(err)
    assert host.verifier is not None
    assert host.verifier.check() == [err]


def test_flag_in_strict_mode_raises_at_once() -> None:
    host = HostContext(verifier=True, strict=True)
    err = MiniportContractError("lied about IRQL", rule="R63")
    with pytest.raises(MiniportContractError) as info:
        host.flag(err)
    assert info.value is err


# --- actors, IRQL, scheduler ----------------------------------------------------------------------


def test_current_actor_follows_the_actor_stack() -> None:
    host = HostContext()
    seen = [host.current_actor]
    host.actors.append(Culprit.MINIPORT)
    seen.append(host.current_actor)
    host.actors.pop()
    seen.append(host.current_actor)
    assert seen == [Culprit.NDIS_USER, Culprit.MINIPORT, Culprit.NDIS_USER]


def test_scheduler_uses_the_kernel_irql_and_seed() -> None:
    host = HostContext(seed=11)
    levels: list[int] = []
    host.scheduler.queue_dpc(lambda: levels.append(host.irql.level))
    host.scheduler.run()
    assert levels == [DISPATCH_LEVEL]
    assert host.irql.level == PASSIVE_LEVEL
    assert host.scheduler.seed == 11


def test_two_kernels_share_nothing() -> None:
    a, b = HostContext(), HostContext()
    a.irql.set(DISPATCH_LEVEL)
    TinyPool(a)
    assert b.irql.level == PASSIVE_LEVEL
    assert b.pools == []
    assert a.scheduler is not b.scheduler


def test_trace_switch_reaches_the_scheduler() -> None:
    host = HostContext(trace=False)
    host.scheduler.trace("send", "x")
    assert host.scheduler.events == []


# --- pool accounting ------------------------------------------------------------------------------


def test_a_pool_registers_with_its_kernel() -> None:
    host = HostContext()
    first, second = TinyPool(host, "a"), TinyPool(host, "b")
    assert host.pools == [first, second]
    assert first.host is host


def test_retire_unregisters_once() -> None:
    host = HostContext()
    pool = TinyPool(host)
    pool._retire()
    assert pool.freed
    assert host.pools == []
    pool._retire()  # a second retire is harmless; the DDIs refuse double frees themselves
    assert host.pools == []


def test_retire_keeps_the_other_pools() -> None:
    host = HostContext()
    keep, drop = TinyPool(host), TinyPool(host)
    drop._retire()
    assert host.pools == [keep]


def test_usage_and_repr() -> None:
    pool = TinyPool(HostContext(), "rx")
    assert pool.usage() == {"outstanding": 0, "allocations": 0, "frees": 0, "failures": 0}
    pool.outstanding, pool.allocations, pool.frees, pool.failures = 2, 5, 3, 1
    assert pool.usage() == {"outstanding": 2, "allocations": 5, "frees": 3, "failures": 1}
    assert repr(pool) == "<TinyPool 'rx' outstanding=2>"
    assert repr(TinyPool(HostContext())) == "<TinyPool outstanding=0>"
    assert pool.kind == "tiny pool"
