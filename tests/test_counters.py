"""Send accounting shared by bindings, adapters and VCs (pyndis.library.counters)."""

from __future__ import annotations

from pyndis.library.counters import SendCounters, StatusCounts, VcCounters
from pyndis.status import NDIS_STATUS


def test_send_counters_balance_and_report() -> None:
    c = SendCounters()
    c.sent += 3
    c.completed += 2
    c.by_status[NDIS_STATUS.SUCCESS] += 2
    assert c.in_flight == 1
    assert c.as_dict() == {
        "sent": 3,
        "completed": 2,
        "in_flight": 1,
        "by_status": {NDIS_STATUS.SUCCESS: 2},
    }
    assert isinstance(c.by_status, StatusCounts)


def test_vc_counters_are_send_counters_plus_bytes_and_receives() -> None:
    vc = VcCounters()
    assert isinstance(vc, SendCounters) and isinstance(vc.by_status, StatusCounts)
    vc.sent, vc.completed, vc.bytes_sent = 2, 2, 120
    vc.indicated, vc.returned = 5, 3
    assert vc.in_flight == 0 and vc.held == 2
    report = vc.as_dict()
    assert report["sent"] == 2 and report["in_flight"] == 0
    assert report["bytes_sent"] == 120 and report["indicated"] == 5 and report["returned"] == 3
