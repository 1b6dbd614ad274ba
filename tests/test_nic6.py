"""Tests for drivers/nic6: the NIC model and the miniport steps netvmini6 and comini6 share."""

from __future__ import annotations

from typing import Any

from pyndis.drivers.comini6 import CoMini6Adapter
from pyndis.drivers.netvmini6 import Vmini6Adapter
from pyndis.drivers.nic6 import NicAdapter6, Tcb, fail, hold, release
from pyndis.library.adapter import AdapterConfig
from pyndis.nbl import NET_BUFFER_LIST
from pyndis.status import NDIS_STATUS
from pyndis.testing.stack6 import build_stack


def nbl() -> tuple[Any, NET_BUFFER_LIST]:
    s = build_stack()
    return s, s.protocol.nbl(s.ctx)


def test_release_sets_the_status_at_the_last_nb() -> None:
    s, one = nbl()
    hold(one, 3)
    assert not release(one) and not release(one)
    assert release(one) and one.Status == NDIS_STATUS.SUCCESS
    s.protocol.free(one)


def test_the_first_failure_of_any_nb_becomes_the_nbl_status() -> None:
    s, one = nbl()
    hold(one, 3)
    fail(one, NDIS_STATUS.INVALID_LENGTH)
    assert not release(one, NDIS_STATUS.SEND_ABORTED)
    fail(one, NDIS_STATUS.FAILURE)
    assert not release(one) and release(one)
    assert one.Status == NDIS_STATUS.INVALID_LENGTH
    hold(one, 1)
    assert release(one, NDIS_STATUS.SEND_ABORTED) and one.Status == NDIS_STATUS.SEND_ABORTED
    s.protocol.free(one)


def test_each_driver_has_its_own_defaults_and_keywords_override_them() -> None:
    s = build_stack()
    vmini = Vmini6Adapter(s.adapter, AdapterConfig("v", {}))
    comini = CoMini6Adapter(s.adapter, AdapterConfig("c", {"tcbs": 3, "stalled": True}))
    assert (vmini.tcbs, vmini.tx_ns, vmini.coalesce_ns, vmini.random_order) == (16, 1000, 0, False)
    assert (vmini.mtu, vmini.rcbs, vmini.stalled) == (1500, 32, False)
    assert (comini.tcbs, comini.tx_ns, comini.coalesce_ns, comini.random_order) == (
        3,
        500,
        10000,
        True,
    )
    assert (comini.mtu, comini.rcbs, comini.stalled) == (9180, 256, True)
    assert vmini.free_tcbs == 16 and comini.free_tcbs == 3 and vmini.idle() and comini.idle()


def test_tcbs_finish_tx_ns_apart_in_order_and_dpc_batch_bounds_a_take() -> None:
    s = build_stack()
    a = NicAdapter6(s.adapter, AdapterConfig("n", {"tcbs": 4, "tx_ns": 100, "dpc_batch": 2}))
    one = s.protocol.nbl(s.ctx)
    tcbs = [Tcb(None, one, nb) for nb in [one.FirstNetBuffer] * 3]
    for tcb in tcbs:
        a.start_tx(s.ndis, tcb)
    assert [done for done, _, _ in sorted(a.busy)] == [100, 200, 300]
    assert a.free_tcbs == 1 and not a.idle()
    assert a.take_done(50) == []
    assert a.take_done(1000) == tcbs[:2]  # two at most per DPC, oldest first
    assert a.free_tcbs == 3
    assert a.take_all() == tcbs[2:] and a.busy == [] and a.free_tcbs == 4 and a.idle()
    s.protocol.free(one)


def test_jitter_is_drawn_from_the_seeded_random_source() -> None:
    def finish_times(seed: int) -> list[int]:
        s = build_stack(seed=seed)
        a = NicAdapter6(s.adapter, AdapterConfig("n", {"tx_ns": 100, "jitter_ns": 1000}))
        one = s.protocol.nbl(s.ctx)
        for _ in range(8):
            a.start_tx(s.ndis, Tcb(None, one, one.FirstNetBuffer))
        times = [done for done, _, _ in sorted(a.busy, key=lambda entry: entry[1])]
        s.protocol.free(one)
        return times

    assert finish_times(1) == finish_times(1)
    assert finish_times(1) != finish_times(2)
    lateness = [done - 100 * (i + 1) for i, done in enumerate(finish_times(3))]
    assert all(0 <= late <= 1000 for late in lateness) and any(lateness)
