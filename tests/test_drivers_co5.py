"""The CoNDIS 5.x sample drivers (drivers.atmnic5 + atmmcm + atmsig, coclient5, cmproto5) on
two hosts joined by a wire: switched and permanent calls, both call managers, INDICATE_END_OF_TX
against early completion, deactivation modes, receive flow control, reuse policies, and every
injected fault caught with the rule it breaks."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import OID_GEN_LINK_SPEED, OID_GEN_MAXIMUM_TOTAL_SIZE
from pyndis.drivers.atmsig import atm_call_parameters, decode, encode
from pyndis.drivers.coclient5 import ClientVc
from pyndis.errors import MiniportContractError, NdisError, NdisUsageError
from pyndis.library.states import VcState
from pyndis.packet import NDIS_PACKET
from pyndis.status import NDIS_STATUS
from pyndis.testing.atmlab import AtmHost, atm_host, atm_pair, run

S = NDIS_STATUS
SAP = b"\x42"


def call(a: AtmHost, b: AtmHost, **params: Any) -> tuple[ClientVc, ClientVc]:
    """A switched call from A to B's SAP; returns (A's VC, B's VC)."""
    before = len(b.client.incoming)
    vc = a.client.make_call(a.binding, atm_call_parameters(SAP, **params))
    run(a, b)
    assert vc.state == "connected", vc
    return vc, b.client.incoming[before]


def finish(*hosts: AtmHost, clean: bool = True) -> None:
    for host in hosts:
        host.finish(clean=clean)


# --- calls --------------------------------------------------------------------------------------


@pytest.mark.parametrize("integrated_cm", [True, False])
def test_switched_call_carries_data_both_ways_and_closes(integrated_cm: bool) -> None:
    a, b, _ = atm_pair(integrated_cm=integrated_cm, activate_pending=not integrated_cm)
    vc, peer = call(a, b)
    assert peer.state == "connected" and peer.incoming
    a.client.send(vc, [b"hello", b"world" * 100])
    b.client.send(peer, [b"back"])
    run(a, b)
    assert peer.received == [b"hello", b"world" * 100] and vc.received == [b"back"]
    assert vc.by_status == {S.SUCCESS: 2} and peer.by_status == {S.SUCCESS: 1}
    a.client.close_call(vc)
    run(a, b)
    assert vc.state == "deleted" and peer.state == "deleted"  # the CM deleted the callee's VC
    assert a.binding.vcs == [] and b.binding.vcs == []
    signalling = a.nic.cm if integrated_cm else a.cm.bindings["atm0"]  # type: ignore[union-attr]
    assert signalling is not None and signalling.signals_sent >= 2
    finish(a, b)


def test_rule_34_remote_close_reaches_the_caller_as_an_incoming_close() -> None:
    a, b, _ = atm_pair()
    vc, peer = call(a, b)
    b.client.close_call(peer)
    run(a, b)
    assert vc.state == "deleted" and peer.state == "deleted"
    assert "incoming-close" in " ".join(a.ndis.scheduler.events)
    finish(a, b)


def test_call_to_a_sap_nobody_listens_on_fails_and_the_vc_is_deleted() -> None:
    a, b, _ = atm_pair()
    vc = a.client.make_call(a.binding, atm_call_parameters(b"\x99"))
    run(a, b)
    assert vc.state == "deleted" and vc.call_status == S.FAILURE
    assert b.client.incoming == []
    finish(a, b)


@pytest.mark.parametrize("answer", ["reject", "pend"])
def test_callee_rejects_or_answers_later(answer: str) -> None:
    a, b, _ = atm_pair(b={"client": {"accept": answer}})
    vc = a.client.make_call(a.binding, atm_call_parameters(SAP))
    run(a, b)
    if answer == "reject":
        assert vc.state == "deleted" and vc.call_status == S.FAILURE
        assert b.client.incoming[0].state == "deleted" and b.binding.vcs == []
    else:
        assert vc.state == "connected" and b.client.incoming[0].state == "connected"
    finish(a, b)


def test_permanent_vcs_need_no_signalling() -> None:
    a, b, _ = atm_pair()
    pvc_a = a.client.make_call(a.binding, atm_call_parameters(vci=300, permanent=True))
    pvc_b = b.client.make_call(b.binding, atm_call_parameters(vci=300, permanent=True))
    run(a, b)
    assert pvc_a.state == pvc_b.state == "connected"
    assert a.nic.cm is not None and a.nic.cm.signals_sent == 0
    a.client.send(pvc_a, [b"pvc"])
    run(a, b)
    assert pvc_b.received == [b"pvc"]
    taken = a.client.make_call(a.binding, atm_call_parameters(vci=300, permanent=True))
    run(a, b)
    assert taken.state == "deleted" and taken.call_status == S.INVALID_ADDRESS
    finish(a, b)


def test_call_manager_that_pends_af_open_and_sap_registration() -> None:
    a, b, _ = atm_pair(cm_pend=True)
    assert b.binding.af is not None and b.binding.sap is not None
    vc, _peer = call(a, b)
    finish(a, b)
    assert vc.state == "deleted"


def test_unbind_tears_down_live_calls_cleanly() -> None:
    a, b, _ = atm_pair()
    vc, peer = call(a, b)
    a.client.send(vc, [b"in flight"])
    a.finish()  # the client's unbind waits for the send, closes the call, deletes the VC
    assert vc.state == "deleted" and vc.completed == 1
    run(b)  # the link went down with A's NIC: B's call stays up until B tears it down
    assert peer.state == "connected" and peer.received == [b"in flight"]
    b.finish()
    assert peer.state == "deleted"


# --- END_OF_TX and intelligent NICs (rule 37) -------------------------------------------------


def _timed(end_of_tx: bool, **nic: Any) -> tuple[int, int, AtmHost]:
    """Send one 1000-byte frame on a slow link; -> (completion time, arrival time, A)."""
    a, b, _ = atm_pair(latency_ns=1_000, link_bps=10_000_000, **nic)
    vc, _peer = call(a, b, end_of_tx=end_of_tx)
    done: list[int] = []
    arrived: list[int] = []
    a.client.on_send_complete = lambda v, p, s: done.append(a.ndis.scheduler.now_ns)
    b.client.on_receive = lambda v, d: arrived.append(b.ndis.scheduler.now_ns)
    start = a.ndis.scheduler.now_ns
    a.client.send(vc, [bytes(1000)])
    run(a, b)
    return done[0] - start, arrived[0] - start, a


def test_rule_37_end_of_tx_completes_only_once_the_data_is_out() -> None:
    completed, arrived, _ = _timed(end_of_tx=True, early_complete=True)
    serialization = (1000 + 8) * 8 * 1_000_000_000 // 10_000_000
    assert completed >= serialization  # the whole frame left the NIC first
    assert arrived == completed + 1_000  # plus the wire latency


def test_intelligent_nic_completes_at_download_without_end_of_tx() -> None:
    completed, arrived, a = _timed(end_of_tx=False, early_complete=True)
    assert completed == 0 < arrived  # before a bit reached the wire's far end
    assert a.ndis.verifier is not None and a.ndis.verifier.check() == []


def test_rule_37_a_nic_that_ignores_end_of_tx_completes_too_early() -> None:
    completed, arrived, _ = _timed(end_of_tx=True, early_complete=True, faults={"early_end_of_tx"})
    assert completed < arrived - 1_000  # completed before the data was out: the bug


def test_rule_37_completion_inside_the_send_handler_on_end_of_tx_is_flagged() -> None:
    a, b, _ = atm_pair(a={"faults": {"inline_complete"}})
    vc, _peer = call(a, b, end_of_tx=True)
    a.client.send(vc, [b"x"])
    assert a.ndis.verifier is not None and sorted(a.ndis.verifier.rules()) == ["R37", "R62"]
    run(a, b)
    finish(a, b, clean=False)


# --- deactivation (rule 32) ---------------------------------------------------------------------


def _cm_pair(**nic: Any) -> tuple[AtmHost, AtmHost, ClientVc]:
    a, b, _ = atm_pair(integrated_cm=False, link_bps=1_000_000, **nic)
    vc, _peer = call(a, b)
    a.client.send(vc, [bytes(500)] * 3)  # queued at the NIC, not completed yet
    assert a.nic.vcs[-1].unfinished == 3
    return a, b, vc


def test_rule_32_deactivation_drains_the_vc_before_it_completes() -> None:
    a, _b, vc = _cm_pair()
    order: list[str] = []
    a.client.on_send_complete = lambda v, p, s: order.append("send-complete")
    handle = vc.handle
    assert handle is not None
    status = a.ndis.NdisCmDeactivateVc(handle)  # as the CM would (the close path does this)
    assert status == S.PENDING and handle.state is VcState.DEACTIVATING
    while handle.state is not VcState.DEACTIVATED:
        assert a.ndis.scheduler.step()
    order.append("deactivated")
    assert order == ["send-complete"] * 3 + ["deactivated"]


def test_rule_32_abort_mode_fails_queued_sends_with_closing() -> None:
    a, _b, vc = _cm_pair(deactivate_mode="abort")
    assert vc.handle is not None
    assert a.ndis.NdisCmDeactivateVc(vc.handle) == S.SUCCESS
    assert vc.by_status == {S.CLOSING: 3} and vc.completed == 3


def test_rule_32_a_nic_that_deactivates_with_sends_pending_is_caught() -> None:
    a, _b, vc = _cm_pair(faults={"deactivate_with_pending"})
    assert vc.handle is not None
    with pytest.raises(MiniportContractError) as info:
        a.ndis.NdisCmDeactivateVc(vc.handle)
    assert info.value.rule == "R32"


def test_rule_32_a_nic_that_indicates_after_deactivation_is_caught() -> None:
    a, b, _ = atm_pair(b={"faults": {"indicate_after_deactivate"}})
    pvc_a = a.client.make_call(a.binding, atm_call_parameters(vci=400, permanent=True))
    pvc_b = b.client.make_call(b.binding, atm_call_parameters(vci=400, permanent=True))
    run(a, b)
    b.client.close_call(pvc_b)
    run(a, b)
    a.client.send(pvc_a, [b"too late"])
    with pytest.raises(MiniportContractError) as info:
        run(a, b)
    assert info.value.rule in ("R32", "R33")


# --- injected faults (rules 28, 37) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "rule"),
    [("double_complete", "PY-DOUBLE-COMPLETE"), ("pending_status", "R37"), ("wrong_vc", "R37")],
)
def test_completion_faults_are_caught(fault: str, rule: str) -> None:
    a, b, _ = atm_pair(a={"faults": {fault}})
    vc, _peer = call(a, b)
    call(a, b)  # a second VC, for wrong_vc
    a.client.send(vc, [b"x"])
    with pytest.raises(NdisError) as info:
        run(a, b)
    assert info.value.rule == rule and isinstance(info.value, MiniportContractError)


def test_rule_28_a_nic_whose_create_vc_pends_is_caught() -> None:
    a, _b, _ = atm_pair(a={"faults": {"create_vc_pending"}})
    with pytest.raises(MiniportContractError) as info:
        a.client.make_call(a.binding, atm_call_parameters(SAP))
    assert info.value.rule == "R28"


def test_a_nic_that_loses_sends_is_caught_by_the_accounting() -> None:
    a, b, _ = atm_pair(a={"drop_every": 2})
    vc, _peer = call(a, b)
    a.client.send(vc, [b"1", b"2", b"3"])
    run(a, b)
    assert vc.completed == 2
    with pytest.raises(NdisUsageError) as info:
        a.ndis.assert_nothing_lost()
    assert info.value.rule == "PY-LOST"
    with pytest.raises(NdisError) as hang:
        a.finish()  # the close waits for a completion that never comes
    assert hang.value.rule == "R65"


# --- receive flow control and reuse ---------------------------------------------------------------


def test_low_receive_buffers_are_indicated_with_resources_and_kept_ones_return() -> None:
    a, b, _ = atm_pair(
        b={"rx_packets": 8, "rx_low_water": 4, "client": {"hold_receives": True}},
        tx_quantum=8,
        tx_burst=8,
    )
    vc, peer = call(a, b)
    a.client.send(vc, [bytes([i]) * 10 for i in range(8)])
    run(a, b)
    assert len(peer.received) == 8
    assert 0 < len(peer.held) < 8  # the RESOURCES ones were copied, not kept
    assert all(p.oob.Status == S.PENDING for p in peer.held)
    assert b.ndis.co_held() == len(peer.held)
    assert b.client.return_held(peer) > 0 and b.ndis.co_held() == 0
    assert len(b.nic.rx_free) == 8
    finish(a, b)


def test_reuse_proper_recycles_packets_without_leaks() -> None:
    a, b, _ = atm_pair(a={"client": {"reuse": "proper"}})
    vc, peer = call(a, b)
    for i in range(3):
        a.client.send(vc, [bytes([i]) * 20])
        run(a, b)
    assert len(a.client.spare) == 1 and len(peer.received) == 3
    finish(a, b)


def test_reuse_reinit_first_loses_buffers() -> None:
    a, b, _ = atm_pair(a={"client": {"reuse": "reinit_first"}})
    vc, _peer = call(a, b)
    a.client.send(vc, [b"a" * 20])
    run(a, b)
    assert a.client.buffer_pool is not None and a.client.buffer_pool.outstanding == 1
    with pytest.raises(NdisUsageError) as info:
        a.ndis.NdisFreeBufferPool(a.client.buffer_pool)
    assert info.value.rule == "PY-POOL-LEAK"


def test_reuse_zero_packet_destroys_the_descriptor() -> None:
    a, b, _ = atm_pair(a={"client": {"reuse": "zero_packet"}})
    vc, _peer = call(a, b)
    a.client.send(vc, [b"a" * 20])
    run(a, b)
    with pytest.raises(NdisUsageError) as info:
        a.client.send(vc, [b"b" * 20])
    assert info.value.rule == "PY-ZEROED-PACKET"


# --- determinism and odds and ends ----------------------------------------------------------------


def _completion_order(seed: int) -> list[int]:
    a, b, _ = atm_pair(seed=seed, completion="random", tx_quantum=16, tx_burst=16)
    vc, _peer = call(a, b)
    order: list[int] = []
    payloads = [bytes([i]) for i in range(16)]
    a.client.on_send_complete = lambda v, p, s: order.append(_first_byte(p))
    a.client.send(vc, payloads)
    run(a, b)
    return order


def _first_byte(packet: NDIS_PACKET) -> int:
    head = packet.Private.Head
    assert head is not None
    return int(head.data[0])


def test_random_completion_order_is_reproducible_from_the_seed() -> None:
    first, again, other = _completion_order(3), _completion_order(3), _completion_order(4)
    assert sorted(first) == list(range(16))
    assert first == again and first != other and first != sorted(first)


def test_nic_configuration_and_queries() -> None:
    with pytest.raises(ValueError):
        atm_host("X", None, faults={"nonsense"})
    host = atm_host("Y", None)
    nic = host.nic
    assert host.driver.MiniportQueryInformation(nic, OID_GEN_MAXIMUM_TOTAL_SIZE) == (
        S.SUCCESS,
        9180,
    )
    assert host.driver.MiniportQueryInformation(nic, OID_GEN_LINK_SPEED)[1] == 1_555_200
    assert host.driver.MiniportQueryInformation(nic, 0x1234)[0] == S.INVALID_OID
    assert "atm0" in repr(nic) and "vci=" in repr(nic.sig_vc)
    host.finish()


def test_signalling_messages_round_trip() -> None:
    assert decode(encode(1, 77, 5, b"\x42")) == (1, 77, 5, b"\x42")
