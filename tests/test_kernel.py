"""The Ndis kernel: handler calls and actors, IRQL and spin-lock DDIs, timers, time, accounting."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from pyndis.constants import DISPATCH_LEVEL, PASSIVE_LEVEL, NdisMedium802_3
from pyndis.errors import (
    Culprit,
    IrqlError,
    MiniportContractError,
    NdisUsageError,
    ProtocolContractError,
)
from pyndis.irql import NDIS_SPIN_LOCK
from pyndis.library.adapter import MiniportBlock
from pyndis.library.binding import OpenBlock
from pyndis.library.drivers import DriverBlock
from pyndis.library.kernel import NDIS_MINIPORT_TIMER, Ndis, SendCounters, StatusCounts
from pyndis.status import NDIS_STATUS

# --- small real drivers ---------------------------------------------------------------------------


class Proto:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def ProtocolSendComplete(self, ctx: Any, packet: Any, status: int) -> None:
        raise AssertionError("no sends here")

    def ProtocolStatus(self, ctx: Any, status: int, buffer: Any, size: int) -> None:
        # what the kernel knows about the running driver while this handler runs
        self.seen.append((self.ndis.current_actor, self.ndis.current_driver))
        if status == NDIS_STATUS.FAILURE:
            raise ValueError("protocol bug")


class Mini:
    def MiniportInitialize(self, MediumArray: list[int], handle: MiniportBlock, config: Any) -> Any:
        self.ndis.NdisMSetAttributesEx(handle, self)
        return NDIS_STATUS.SUCCESS, MediumArray.index(NdisMedium802_3)

    def MiniportHalt(self, ctx: Any) -> None:
        pass

    def MiniportSend(self, ctx: Any, packet: Any, flags: int) -> int:
        return NDIS_STATUS.SUCCESS


def setup(ndis: Ndis | None = None) -> tuple[Ndis, DriverBlock, DriverBlock, MiniportBlock]:
    ndis = ndis or Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini(), 5, 1)
    _, proto = ndis.NdisRegisterProtocol(Proto(), 5, 1)
    assert mini is not None and proto is not None
    _, adapter = ndis.add_adapter(mini, "eth0")
    assert adapter is not None
    return ndis, proto, mini, adapter


def open_binding(ndis: Ndis, proto: DriverBlock, name: str = "eth0") -> OpenBlock:
    status, _, binding, _ = ndis.NdisOpenAdapter(proto, proto.driver, [NdisMedium802_3], name)
    assert status == NDIS_STATUS.SUCCESS and binding is not None
    return binding


# --- call() ---------------------------------------------------------------------------------------


def test_call_records_the_running_driver_and_pops_it_after() -> None:
    ndis, proto, _, adapter = setup()
    binding = open_binding(ndis, proto)
    ndis.NdisMIndicateStatus(adapter, NDIS_STATUS.MEDIA_CONNECT)
    assert proto.driver.seen == [(Culprit.PROTOCOL, proto)]
    assert ndis.actors == [Culprit.NDIS_USER] and ndis.driver_stack == []
    assert ndis.current_driver is None and ndis.current_actor is Culprit.NDIS_USER
    assert binding.state.name == "RUNNING"


def test_call_pops_actors_and_driver_stack_when_the_handler_raises() -> None:
    ndis, proto, _, _ = setup()
    with pytest.raises(ValueError, match="protocol bug"):
        ndis.call(proto, "ProtocolStatus", None, NDIS_STATUS.FAILURE, None, 0)
    assert ndis.actors == [Culprit.NDIS_USER] and ndis.driver_stack == []


def test_call_nests_innermost_last() -> None:
    ndis, proto, mini, _ = setup()
    inside: list[tuple[list[Culprit], list[DriverBlock]]] = []

    def outer(*args: Any) -> str:
        return str(ndis.call(proto, "ProtocolStatus", None, NDIS_STATUS.SUCCESS, None, 0))

    def snapshot(*args: Any) -> None:
        inside.append((list(ndis.actors), list(ndis.driver_stack)))

    mini.handlers["MiniportReset"] = outer
    proto.handlers["ProtocolStatus"] = snapshot
    assert ndis.call(mini, "MiniportReset", None) == "None"
    assert inside == [
        ([Culprit.NDIS_USER, Culprit.MINIPORT, Culprit.PROTOCOL], [mini, proto]),
    ]
    assert ndis.driver_stack == []


def test_call_of_a_missing_handler_blames_the_driver_and_leaves_the_stacks() -> None:
    ndis, proto, mini, _ = setup()
    with pytest.raises(MiniportContractError) as info:
        ndis.call(mini, "MiniportReset", None)
    assert info.value.rule == "PY-MISSING-HANDLER"
    with pytest.raises(ProtocolContractError):
        ndis.call(proto, "ProtocolReceive", None)
    assert ndis.actors == [Culprit.NDIS_USER] and ndis.driver_stack == []


# --- IRQL DDIs ------------------------------------------------------------------------------------


def test_ke_raise_and_lower_irql() -> None:
    ndis = Ndis()
    assert ndis.KeGetCurrentIrql() == PASSIVE_LEVEL
    assert ndis.KeRaiseIrql(DISPATCH_LEVEL) == PASSIVE_LEVEL
    assert ndis.KeGetCurrentIrql() == DISPATCH_LEVEL
    assert ndis.KeRaiseIrql(DISPATCH_LEVEL) == DISPATCH_LEVEL  # raising to the same level is fine
    ndis.KeLowerIrql(PASSIVE_LEVEL)
    assert ndis.KeGetCurrentIrql() == PASSIVE_LEVEL


def test_ke_raise_to_a_lower_level_and_lower_to_a_higher_level_are_r62() -> None:
    ndis = Ndis()
    with pytest.raises(IrqlError) as info:
        ndis.KeLowerIrql(DISPATCH_LEVEL)
    assert info.value.rule == "R62"
    ndis.KeRaiseIrql(DISPATCH_LEVEL)
    with pytest.raises(IrqlError):
        ndis.KeRaiseIrql(PASSIVE_LEVEL)
    assert ndis.KeGetCurrentIrql() == DISPATCH_LEVEL


def test_spin_lock_raises_to_dispatch_and_restores() -> None:
    ndis = Ndis()
    lock = ndis.NdisAllocateSpinLock()
    assert isinstance(lock, NDIS_SPIN_LOCK) and not lock.held
    mine = NDIS_SPIN_LOCK("mine")
    assert ndis.NdisAllocateSpinLock(mine) is mine
    ndis.NdisAcquireSpinLock(lock)
    assert lock.held and ndis.KeGetCurrentIrql() == DISPATCH_LEVEL
    ndis.NdisReleaseSpinLock(lock)
    assert not lock.held and ndis.KeGetCurrentIrql() == PASSIVE_LEVEL
    ndis.NdisFreeSpinLock(lock)


def test_dpr_spin_lock_needs_dispatch_and_keeps_it() -> None:
    ndis = Ndis()
    lock = ndis.NdisAllocateSpinLock()
    with pytest.raises(IrqlError):
        ndis.NdisDprAcquireSpinLock(lock)
    assert not lock.held
    with ndis.irql.at(DISPATCH_LEVEL):
        ndis.NdisDprAcquireSpinLock(lock)
        assert lock.held
        ndis.NdisDprReleaseSpinLock(lock)
        assert ndis.KeGetCurrentIrql() == DISPATCH_LEVEL
    assert not lock.held


def test_spin_lock_misuse() -> None:
    ndis = Ndis()
    lock = ndis.NdisAllocateSpinLock()
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisReleaseSpinLock(lock)
    assert info.value.rule == "PY-SPINLOCK-NOT-HELD"
    ndis.NdisAcquireSpinLock(lock)
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisAcquireSpinLock(lock)
    assert info.value.rule == "PY-SPINLOCK-RECURSION"
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisFreeSpinLock(lock)
    assert info.value.rule == "PY-SPINLOCK-HELD"
    ndis.NdisReleaseSpinLock(lock)
    ndis.NdisFreeSpinLock(lock)


# --- time and timers ------------------------------------------------------------------------------


class TimerLog:
    def __init__(self, ndis: Ndis) -> None:
        self.ndis = ndis
        self.fired: list[tuple[int, int, tuple[Any, ...]]] = []

    def __call__(self, *args: Any) -> None:
        self.fired.append((self.ndis.scheduler.now_ns, self.ndis.KeGetCurrentIrql(), args))


def armed_timer(ndis: Ndis, log: TimerLog, context: Any = "ctx") -> NDIS_MINIPORT_TIMER:
    timer = NDIS_MINIPORT_TIMER()
    ndis.NdisMInitializeTimer(timer, None, log, context)
    return timer


def test_timer_fires_once_at_dispatch_at_the_right_virtual_time() -> None:
    ndis = Ndis()
    log = TimerLog(ndis)
    timer = armed_timer(ndis, log)
    ndis.NdisMSetTimer(timer, 5)
    ndis.scheduler.run_until(4_999_999)
    assert log.fired == []
    ndis.run()
    assert log.fired == [(5_000_000, DISPATCH_LEVEL, (None, "ctx", None, None))]
    assert ndis.KeGetCurrentIrql() == PASSIVE_LEVEL


def test_timer_re_arm_replaces_the_pending_expiry() -> None:
    ndis = Ndis()
    log = TimerLog(ndis)
    timer = armed_timer(ndis, log)
    ndis.NdisMSetTimer(timer, 10)
    ndis.scheduler.run_until(3_000_000)
    ndis.NdisMSetTimer(timer, 2)  # due at 5 ms now, not at 10 ms
    ndis.run()
    assert [t for t, _, _ in log.fired] == [5_000_000]


def test_timer_re_armed_from_its_own_function_is_periodic() -> None:
    ndis = Ndis()
    times: list[int] = []
    timer = NDIS_MINIPORT_TIMER()

    def tick(ss1: Any, ctx: Any, ss2: Any, ss3: Any) -> None:
        times.append(ndis.scheduler.now_ns)
        if len(times) < 3:
            ndis.NdisMSetTimer(timer, 1)

    ndis.NdisMInitializeTimer(timer, None, tick, None)
    ndis.NdisMSetTimer(timer, 1)
    ndis.run()
    assert times == [1_000_000, 2_000_000, 3_000_000]


def test_timer_cancel() -> None:
    ndis = Ndis()
    log = TimerLog(ndis)
    timer = armed_timer(ndis, log)
    assert ndis.NdisMCancelTimer(timer) is False  # never set
    ndis.NdisMSetTimer(timer, 1)
    assert ndis.NdisMCancelTimer(timer) is True
    assert ndis.NdisMCancelTimer(timer) is False
    ndis.run()
    assert log.fired == []
    ndis.NdisMSetTimer(timer, 1)
    ndis.run()
    assert len(log.fired) == 1
    assert ndis.NdisMCancelTimer(timer) is False  # already fired


def test_uninitialized_timer_is_refused() -> None:
    with pytest.raises(NdisUsageError) as info:
        Ndis().NdisMSetTimer(NDIS_MINIPORT_TIMER(), 1)
    assert info.value.rule == "PY-TIMER"


def test_system_time_is_virtual_in_100ns_units() -> None:
    ndis = Ndis()
    assert ndis.NdisGetCurrentSystemTime() == 0
    ndis.scheduler.run_until(1_234_567)
    assert ndis.NdisGetCurrentSystemTime() == 12_345
    ndis.scheduler.run_until(2_000_000_000)
    assert ndis.NdisGetCurrentSystemTime() == 20_000_000


# --- accounting -----------------------------------------------------------------------------------


def test_send_counters() -> None:
    c = SendCounters()
    c.sent, c.completed = 5, 3
    c.by_status[NDIS_STATUS.SUCCESS] += 3
    assert c.in_flight == 2
    assert c.as_dict() == {
        "sent": 5,
        "completed": 3,
        "in_flight": 2,
        "by_status": {NDIS_STATUS.SUCCESS: 3},
    }


def test_status_counts_count_like_a_counter() -> None:
    counts = SendCounters().by_status
    assert type(counts) is StatusCounts and isinstance(counts, Counter)
    assert counts[NDIS_STATUS.FAILURE] == 0  # never counted: zero, and still absent
    counts[NDIS_STATUS.SUCCESS] += 1
    counts[NDIS_STATUS.SUCCESS] += 1
    counts[0xE0001234] += 1
    assert counts == {NDIS_STATUS.SUCCESS: 2, 0xE0001234: 1}
    assert counts.most_common(1) == [(NDIS_STATUS.SUCCESS, 2)]
    del counts[0xE0001234]
    assert dict(counts) == {NDIS_STATUS.SUCCESS: 2}
    with pytest.raises(KeyError):  # the one difference from Counter (see StatusCounts)
        del counts[NDIS_STATUS.FAILURE]


def test_status_counts_store_items_through_dicts_slot() -> None:
    # The point of StatusCounts: an item store must not go through a Python-level
    # __setitem__/__delitem__ (Counter's __delitem__ forces one on every store).
    assert StatusCounts.__delitem__ is dict.__delitem__
    assert StatusCounts.__setitem__ is dict.__setitem__


def test_balanced_kernel_passes() -> None:
    ndis, proto, _, _ = setup()
    binding = open_binding(ndis, proto)
    binding.counters.sent = binding.counters.completed = 7
    ndis.assert_nothing_lost()
    snap = ndis.accounting()
    assert snap["bindings"] == {repr(binding): binding.counters.as_dict()}
    assert snap["pools"] == []


def test_unbalanced_binding_counter_is_lost() -> None:
    ndis, proto, _, _ = setup()
    binding = open_binding(ndis, proto)
    binding.counters.sent, binding.counters.completed = 3, 1
    assert ndis.accounting()["bindings"][repr(binding)]["in_flight"] == 2
    with pytest.raises(NdisUsageError) as info:
        ndis.assert_nothing_lost()
    assert info.value.rule == "PY-LOST"
    assert "2 send(s) not completed" in info.value.message and repr(binding) in info.value.message


def test_non_empty_send_queue_is_lost() -> None:
    ndis, _, _, adapter = setup()
    adapter.send_queue.append(object())
    with pytest.raises(NdisUsageError, match=r"1 packet\(s\) still queued in NDIS"):
        ndis.assert_nothing_lost()
    adapter.send_queue.clear()
    ndis.assert_nothing_lost()


def test_descriptors_held_by_the_miniport_are_lost() -> None:
    ndis, _, _, adapter = setup()
    adapter.outstanding = 4
    with pytest.raises(NdisUsageError, match=r"4 descriptor\(s\) still at the miniport"):
        ndis.assert_nothing_lost()


def test_every_problem_is_listed() -> None:
    ndis, proto, _, adapter = setup()
    open_binding(ndis, proto).counters.sent = 1
    adapter.outstanding = 1
    adapter.send_queue.append(object())
    with pytest.raises(NdisUsageError) as info:
        ndis.assert_nothing_lost()
    assert info.value.message.count(";") == 2


def test_accounting_keeps_two_bindings_of_one_protocol_to_one_adapter_apart() -> None:
    ndis, proto, _, _ = setup()
    first, second = open_binding(ndis, proto), open_binding(ndis, proto)
    first.counters.sent = 1
    second.counters.sent = 2
    in_flight = sorted(c["in_flight"] for c in ndis.accounting()["bindings"].values())
    assert in_flight == [1, 2]


# --- kernels --------------------------------------------------------------------------------------


def test_two_kernels_are_independent() -> None:
    a, b = Ndis(name="a", seed=1), Ndis(name="b", seed=1)
    setup(a)
    setup(b)  # the same adapter name on both
    assert a.adapters.keys() == b.adapters.keys() == {"eth0"}
    assert a.adapters["eth0"] is not b.adapters["eth0"]
    a.KeRaiseIrql(DISPATCH_LEVEL)
    assert b.KeGetCurrentIrql() == PASSIVE_LEVEL
    a.KeLowerIrql(PASSIVE_LEVEL)
    fired: list[str] = []
    a.scheduler.call_later(1_000, fired.append, "a")
    assert b.run() == 0 and fired == [] and b.scheduler.now_ns == 0
    assert a.run() == 1 and fired == ["a"] and a.scheduler.now_ns == 1_000
    assert a.scheduler.random.random() == b.scheduler.random.random()  # same seed, own source
    # an adapter of one kernel is not found through the other
    proto_b = b.protocols[0]
    status, _, handle, _ = b.NdisOpenAdapter(proto_b, None, [NdisMedium802_3], a.adapters["eth0"])
    assert (status, handle) == (NDIS_STATUS.ADAPTER_NOT_FOUND, None)


def test_verifier_and_trace_switches() -> None:
    plain = Ndis()
    assert plain.verifier is None
    strict = Ndis(verifier=True, strict=True)
    assert strict.verifier is not None and strict.verifier.strict
    collecting = Ndis(verifier=True)
    assert collecting.verifier is not None and not collecting.verifier.strict
    quiet = Ndis(trace=False)
    setup(quiet)
    assert quiet.scheduler.events == []
    loud, *_ = setup()
    assert loud.scheduler.events


def test_repr_names_the_kernel_and_its_time() -> None:
    ndis = Ndis(name="h1")
    ndis.scheduler.run_until(1_500_000_000)
    assert repr(ndis) == "<Ndis 'h1' t=1.500000s>"
