"""CoNDIS life cycle (library.co, coaf, cocall, covc): address families, SAPs, VC creation,
activation, calls, close and delete (rules 28-34), with the scripted drivers of
pyndis.testing.co5 so every handler call can be checked in order."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import INDICATE_END_OF_TX, NdisMedium802_3, NdisMediumAtm
from pyndis.drivers.atmsig import ATM_ADDRESS_FAMILY, atm_call_parameters, atm_sap
from pyndis.drivers.null5 import NullMiniport
from pyndis.errors import (
    Culprit,
    MiniportContractError,
    NdisUsageError,
    NdisVersionError,
    ProtocolContractError,
)
from pyndis.library.covc import (
    CO_ADDRESS_FAMILY,
    SEND_VERDICT,
    OpenState,
    VcCounters,
    media_flags,
    status_and,
    vc_can_indicate,
    vc_send_status,
)
from pyndis.library.states import CALL_TRANSITIONS, CallState, VcState, move_call
from pyndis.status import NDIS_STATUS
from pyndis.testing.co5 import CoRig5, ScriptedCallManager5, ScriptedCoClient5

S = NDIS_STATUS
PARAMS = atm_call_parameters(b"x", 100)


@pytest.fixture
def rig() -> CoRig5:
    return CoRig5()


def after(log: list[str], first: str, then: str) -> bool:
    return log.index(first) < log.index(then)


# --- address families ------------------------------------------------------------------------


def test_af_is_offered_to_bound_clients_from_a_passive_work_item() -> None:
    rig = CoRig5()
    offers = rig.client.calls("ProtocolCoAfRegisterNotify")
    assert offers == [("client-binding", ATM_ADDRESS_FAMILY)]
    # a second client binding later is offered the AF only once the scheduler runs
    second = ScriptedCoClient5()
    block = rig._register(second, "late")
    rig._open(block, "late-binding")
    assert second.calls("ProtocolCoAfRegisterNotify") == []
    rig.ndis.run()
    assert second.calls("ProtocolCoAfRegisterNotify") == [("late-binding", ATM_ADDRESS_FAMILY)]
    assert rig.cm.calls("ProtocolCoAfRegisterNotify") == []  # never offered to its own CM


def test_af_registration_refusals(rig: CoRig5) -> None:
    ndis = rig.ndis
    assert ndis.NdisCmRegisterAddressFamily(rig.cm_binding, ATM_ADDRESS_FAMILY) == S.FAILURE
    client_as_cm = ndis.NdisCmRegisterAddressFamily(rig.client_binding, CO_ADDRESS_FAMILY(0x800))
    assert client_as_cm == S.BAD_CHARACTERISTICS  # the client has no CM handlers
    _, null = ndis.NdisMRegisterMiniport(NullMiniport(), 5, 1, "null")
    assert null is not None
    _, eth = ndis.add_adapter(null, "eth0")
    assert eth is not None
    status, _e, binding, _i = ndis.NdisOpenAdapter(rig.cm_block, "eth", [NdisMedium802_3], eth)
    assert status == S.SUCCESS and binding is not None
    assert ndis.NdisCmRegisterAddressFamily(binding, CO_ADDRESS_FAMILY(0x800)) == S.NOT_SUPPORTED
    assert ndis.NdisCoCreateVc(binding, None, "x") == (S.NOT_SUPPORTED, None)


def test_open_af_unknown_family_and_missing_client_handlers(rig: CoRig5) -> None:
    ndis = rig.ndis
    assert ndis.NdisClOpenAddressFamily(rig.client_binding, CO_ADDRESS_FAMILY(7), None) == (
        S.FAILURE,
        None,
    )

    class Bare:
        NDIS_VERSION = (5, 1)

        def ProtocolCoSendComplete(self, *args: Any) -> None: ...

    block = rig._register(Bare(), "bare")
    binding = rig._open(block, "bare")
    assert ndis.NdisClOpenAddressFamily(binding, ATM_ADDRESS_FAMILY, None) == (
        S.BAD_CHARACTERISTICS,
        None,
    )


def test_open_af_that_pends_completes_through_the_client(rig: CoRig5) -> None:
    ndis = rig.ndis
    rig.cm.answers["ProtocolCmOpenAf"] = (S.PENDING, None)
    status, af = ndis.NdisClOpenAddressFamily(rig.client_binding, ATM_ADDRESS_FAMILY, "ctx2")
    assert (status, af) == (S.PENDING, None)
    handle = rig.cm.calls("ProtocolCmOpenAf")[-1][2]
    assert handle.state is OpenState.OPENING
    ndis.NdisCmOpenAddressFamilyComplete(S.SUCCESS, handle, "cm-af2")
    assert rig.client.calls("ProtocolClOpenAfComplete") == [(S.SUCCESS, "ctx2", handle)]
    assert handle.state is OpenState.OPEN and handle.CallMgrAfContext == "cm-af2"
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmOpenAddressFamilyComplete(S.SUCCESS, handle, None)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_open_af_failed_by_the_cm_and_completion_with_pending_refused(rig: CoRig5) -> None:
    ndis = rig.ndis
    rig.cm.answers["ProtocolCmOpenAf"] = (S.RESOURCES, None)
    assert ndis.NdisClOpenAddressFamily(rig.client_binding, ATM_ADDRESS_FAMILY, None) == (
        S.RESOURCES,
        None,
    )
    rig.cm.answers["ProtocolCmOpenAf"] = S.PENDING  # a bare status is accepted too
    ndis.NdisClOpenAddressFamily(rig.client_binding, ATM_ADDRESS_FAMILY, None)
    handle = rig.cm.calls("ProtocolCmOpenAf")[-1][2]
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmOpenAddressFamilyComplete(S.PENDING, handle, None)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"
    ndis.NdisCmOpenAddressFamilyComplete(S.FAILURE, handle, None)
    assert handle.state is OpenState.CLOSED
    assert rig.client.calls("ProtocolClOpenAfComplete")[-1][0] == S.FAILURE


def test_close_af_needs_its_vcs_and_saps_gone(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClCloseAddressFamily(rig.af)
    assert info.value.rule == "PY-CO-AF" and info.value.culprit is Culprit.PROTOCOL
    assert ndis.NdisCoDeleteVc(vc) == S.SUCCESS
    assert ndis.NdisClCloseAddressFamily(rig.af) == S.SUCCESS
    assert rig.af.state is OpenState.CLOSED and rig.cm.calls("ProtocolCmCloseAf") == [("cm-af",)]
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCoCreateVc(rig.client_binding, rig.af, None)
    assert info.value.rule == "PY-CO-AF"


def test_close_af_that_pends(rig: CoRig5) -> None:
    ndis = rig.ndis
    rig.cm.answers["ProtocolCmCloseAf"] = S.PENDING
    assert ndis.NdisClCloseAddressFamily(rig.af) == S.PENDING
    assert rig.af.state is OpenState.CLOSING
    ndis.NdisCmCloseAddressFamilyComplete(S.SUCCESS, rig.af)
    assert rig.client.calls("ProtocolClCloseAfComplete") == [(S.SUCCESS, "client-af")]
    with pytest.raises(ProtocolContractError):  # closed: the handle is dead
        ndis.NdisCmCloseAddressFamilyComplete(S.SUCCESS, rig.af)


def test_af_ddis_are_version_gated(rig: CoRig5) -> None:
    ndis = rig.ndis
    with pytest.raises(NdisVersionError) as info:
        ndis.NdisClOpenAddressFamilyEx(rig.client_binding, ATM_ADDRESS_FAMILY, None)
    assert info.value.rule == "PY-VERSION"
    with pytest.raises(NdisVersionError):
        ndis.NdisCmRegisterAddressFamilyEx(rig.cm_binding, ATM_ADDRESS_FAMILY)
    with pytest.raises(NdisVersionError):
        ndis.NdisMCmRegisterAddressFamilyEx(rig.adapter, ATM_ADDRESS_FAMILY)


def test_bad_handles_are_refused(rig: CoRig5) -> None:
    ndis = rig.ndis
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisClCloseAddressFamily("not an af")  # type: ignore[arg-type]
    assert info.value.rule == "PY-BAD-HANDLE"
    with pytest.raises(NdisUsageError):
        ndis.NdisClDeregisterSap(object())  # type: ignore[arg-type]
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClMakeCall("vc", PARAMS)  # type: ignore[arg-type]
    assert info.value.rule == "PY-BAD-HANDLE"


# --- SAPs --------------------------------------------------------------------------------------


def test_sap_register_and_deregister(rig: CoRig5) -> None:
    ndis = rig.ndis
    status, sap = ndis.NdisClRegisterSap(rig.af, "sap-ctx", atm_sap(b"\x01"))
    assert status == S.SUCCESS and sap is not None and sap.CallMgrSapContext == "sap"
    assert ndis.NdisClDeregisterSap(sap) == S.SUCCESS
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClDeregisterSap(sap)
    assert info.value.rule == "PY-CO-SAP"


def test_sap_register_and_deregister_that_pend(rig: CoRig5) -> None:
    ndis = rig.ndis
    rig.cm.answers["ProtocolCmRegisterSap"] = (S.PENDING, None)
    assert ndis.NdisClRegisterSap(rig.af, "s", atm_sap(b"\x02")) == (S.PENDING, None)
    sap = rig.cm.calls("ProtocolCmRegisterSap")[-1][2]
    ndis.NdisCmRegisterSapComplete(S.SUCCESS, sap, "cm-sap")
    assert rig.client.calls("ProtocolClRegisterSapComplete")[-1][0] == S.SUCCESS
    assert sap.state is OpenState.OPEN
    rig.cm.answers["ProtocolCmDeregisterSap"] = S.PENDING
    assert ndis.NdisClDeregisterSap(sap) == S.PENDING
    ndis.NdisCmDeregisterSapComplete(S.SUCCESS, sap)
    assert rig.client.calls("ProtocolClDeregisterSapComplete") == [(S.SUCCESS, "s")]
    with pytest.raises(ProtocolContractError):
        ndis.NdisCmDeregisterSapComplete(S.SUCCESS, sap)


# --- creating VCs (rule 28) -----------------------------------------------------------------


def test_rule_28_create_vc_calls_cm_and_miniport_before_it_returns(rig: CoRig5) -> None:
    vc = rig.create("ctx")
    assert vc.state is VcState.CREATED and vc.call is CallState.IDLE
    assert rig.miniport.calls("MiniportCoCreateVc") == [(rig.miniport, vc)]
    assert [a[1] for a in rig.cm.calls("ProtocolCoCreateVc")] == [vc]
    assert vc.ProtocolVcContext == "ctx"
    assert vc.CallMgrVcContext.handle is vc and vc.MiniportVcContext.handle is vc
    assert vc in rig.adapter.vcs and vc in rig.af.vcs


def test_rule_28_a_vc_handler_may_not_pend(rig: CoRig5) -> None:
    rig.miniport.answers["MiniportCoCreateVc"] = (S.PENDING, None)
    with pytest.raises(MiniportContractError) as info:
        rig.create()
    assert info.value.rule == "R28"
    del rig.miniport.answers["MiniportCoCreateVc"]
    rig.cm.answers["ProtocolCoCreateVc"] = (S.PENDING, None)
    with pytest.raises(ProtocolContractError) as info:
        rig.create()
    assert info.value.rule == "R28"


def test_rule_28_a_refused_create_is_undone(rig: CoRig5) -> None:
    rig.cm.answers["ProtocolCoCreateVc"] = (S.RESOURCES, None)
    assert rig.ndis.NdisCoCreateVc(rig.client_binding, rig.af, None) == (S.RESOURCES, None)
    assert len(rig.miniport.calls("MiniportCoDeleteVc")) == 1  # the miniport's half undone
    rig.miniport.answers["MiniportCoCreateVc"] = (S.FAILURE, None)
    assert rig.ndis.NdisCoCreateVc(rig.client_binding, rig.af, None) == (S.FAILURE, None)
    assert rig.adapter.vcs == [] and rig.af.vcs == []


def test_rule_28_cm_creates_vc_for_a_client_and_for_itself(rig: CoRig5) -> None:
    ndis = rig.ndis
    status, vc = ndis.NdisCoCreateVc(rig.cm_binding, rig.af, "cm-ctx")
    assert status == S.SUCCESS and vc is not None
    assert vc.CallMgrVcContext == "cm-ctx" and vc.ProtocolVcContext == f"pvc{vc.index}"
    assert vc.owner is rig.client_binding  # the client's data travels on it
    status, own = ndis.NdisCoCreateVc(rig.cm_binding, None, "signalling")
    assert status == S.SUCCESS and own is not None and own.af is None
    assert own.owner is rig.cm_binding and own.ProtocolVcContext == "signalling"
    stranger = rig._open(rig._register(ScriptedCoClient5(), "other"), "o")
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCoCreateVc(stranger, rig.af, None)
    assert info.value.rule == "PY-CO-AF"


def test_rule_28_activation_comes_before_any_send_and_may_pend(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()
    assert vc_send_status(vc) == (S.VC_NOT_ACTIVATED, "R35")
    ndis.NdisClMakeCall(vc, PARAMS)
    rig.miniport.answers["MiniportCoActivateVc"] = S.PENDING
    assert ndis.NdisCmActivateVc(vc, PARAMS) == S.PENDING
    assert vc.state is VcState.ACTIVATING
    assert vc_send_status(vc)[0] == S.VC_NOT_ACTIVATED
    ndis.NdisMCoActivateVcComplete(S.SUCCESS, vc, PARAMS)
    assert vc.state is VcState.ACTIVE
    assert rig.cm.calls("ProtocolCmActivateVcComplete") == [
        (S.SUCCESS, vc.CallMgrVcContext, PARAMS)
    ]
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMCoActivateVcComplete(S.SUCCESS, vc, PARAMS)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_rule_28_failed_first_activation_leaves_the_vc_not_activated(rig: CoRig5) -> None:
    vc = rig.create()
    rig.miniport.answers["MiniportCoActivateVc"] = S.FAILURE
    assert rig.ndis.NdisCmActivateVc(vc, PARAMS) == S.FAILURE
    assert vc.state is VcState.CREATED and not vc.end_of_tx


# --- outgoing calls (rule 29) ---------------------------------------------------------------


def test_rule_29_outgoing_call_grammar(rig: CoRig5) -> None:
    vc = rig.connect("c1")
    order = [*rig.cm.names(), *rig.miniport.names(), *rig.client.names()]
    assert "ProtocolCmMakeCall" in order and "MiniportCoActivateVc" in order
    assert rig.client.calls("ProtocolClMakeCallComplete") == [(S.SUCCESS, "c1", None, PARAMS)]
    assert vc.call is CallState.CONNECTED and vc_send_status(vc) == (None, "")
    assert rig.ndis.scheduler.events[-1].split()[1:] == [
        "make-call-done",
        str(vc.index),
        "NDIS_STATUS_SUCCESS",
    ]


def test_rule_29_synchronous_make_call_runs_no_completion_handler(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()

    def make_call(ctx: Any, params: Any, party: Any) -> NDIS_STATUS:
        assert ndis.NdisCmActivateVc(ctx.handle, params) == S.SUCCESS
        return S.SUCCESS

    rig.cm.answers["ProtocolCmMakeCall"] = make_call
    assert ndis.NdisClMakeCall(vc, PARAMS) == S.SUCCESS
    assert vc.call is CallState.CONNECTED
    assert rig.client.calls("ProtocolClMakeCallComplete") == []


def test_rule_29_call_completed_successfully_without_activation_is_the_cms_fault(
    rig: CoRig5,
) -> None:
    vc = rig.create()
    rig.ndis.NdisClMakeCall(vc, PARAMS)
    with pytest.raises(ProtocolContractError) as info:
        rig.ndis.NdisCmMakeCallComplete(S.SUCCESS, vc, None, None, PARAMS)
    assert info.value.rule == "R29"


def test_rule_29_a_failed_call_must_leave_the_vc_deactivated(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()
    ndis.NdisClMakeCall(vc, PARAMS)
    ndis.NdisCmActivateVc(vc, PARAMS)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmMakeCallComplete(S.FAILURE, vc, None, None, PARAMS)
    assert info.value.rule == "R29"
    assert ndis.NdisCmDeactivateVc(vc) == S.SUCCESS
    ndis.NdisCmMakeCallComplete(S.FAILURE, vc, None, None, PARAMS)
    assert rig.client.calls("ProtocolClMakeCallComplete")[-1][0] == S.FAILURE
    assert vc.call is CallState.IDLE
    # the VC may carry a new call (rule 31: activated again after its deactivation)
    assert ndis.NdisClMakeCall(vc, PARAMS) == S.PENDING
    assert ndis.NdisCmActivateVc(vc, PARAMS) == S.SUCCESS


def test_rule_29_make_call_misuse(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClMakeCall(vc, PARAMS)  # a call is up already
    assert info.value.rule == "R29"
    _status, cm_vc = ndis.NdisCoCreateVc(rig.cm_binding, rig.af, "cm")
    assert cm_vc is not None
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClMakeCall(cm_vc, PARAMS)  # not the client's VC
    assert info.value.rule == "R29"
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmMakeCallComplete(S.SUCCESS, vc, None, None, PARAMS)  # nothing outgoing
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_rule_29_cm_that_completes_and_returns_a_status_completes_twice(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()

    def make_call(ctx: Any, params: Any, party: Any) -> NDIS_STATUS:
        ndis.NdisCmActivateVc(ctx.handle, params)
        ndis.NdisCmMakeCallComplete(S.SUCCESS, ctx.handle, None, None, params)
        return S.SUCCESS

    rig.cm.answers["ProtocolCmMakeCall"] = make_call
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClMakeCall(vc, PARAMS)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_rule_29_party_handle_reaches_the_cm_and_the_client(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()
    rig.cm.answers["ProtocolCmMakeCall"] = (S.PENDING, "cm-party")
    ndis.NdisClMakeCall(vc, PARAMS, "party-ctx")
    party = rig.cm.calls("ProtocolCmMakeCall")[0][2]
    assert party.ProtocolPartyContext == "party-ctx" and party.CallMgrPartyContext == "cm-party"
    ndis.NdisCmActivateVc(vc, PARAMS)
    ndis.NdisCmMakeCallComplete(S.SUCCESS, vc, party, None, PARAMS)
    assert rig.client.calls("ProtocolClMakeCallComplete")[0][2] is party
    assert ndis.NdisClCloseCall(vc) == S.PENDING
    assert rig.cm.calls("ProtocolCmCloseCall")[0][1] == "cm-party"
    ndis.NdisCmDeactivateVc(vc)
    ndis.NdisCmCloseCallComplete(S.SUCCESS, vc)
    assert rig.client.calls("ProtocolClCloseCallComplete")[0] == (
        S.SUCCESS,
        "client-vc",
        "party-ctx",
    )


# --- incoming calls (rule 30) ---------------------------------------------------------------


def _incoming(rig: CoRig5) -> tuple[Any, Any]:
    ndis = rig.ndis
    status, sap = ndis.NdisClRegisterSap(rig.af, "sap-ctx", atm_sap(b"\x07"))
    assert sap is not None
    status, vc = ndis.NdisCoCreateVc(rig.cm_binding, rig.af, "cm-vc")
    assert status == S.SUCCESS and vc is not None
    return sap, vc


def test_rule_30_incoming_call_grammar(rig: CoRig5) -> None:
    ndis = rig.ndis
    sap, vc = _incoming(rig)
    assert ndis.NdisCmActivateVc(vc, PARAMS) == S.SUCCESS
    assert ndis.NdisCmDispatchIncomingCall(sap, vc, PARAMS) == S.SUCCESS
    assert rig.client.calls("ProtocolClIncomingCall") == [("sap-ctx", vc.ProtocolVcContext, PARAMS)]
    assert vc.call is CallState.ACCEPTED
    assert vc_send_status(vc) == (None, "R30")  # accepted, not connected yet
    ndis.NdisCmDispatchCallConnected(vc)
    assert rig.client.calls("ProtocolClCallConnected") == [(vc.ProtocolVcContext,)]
    assert vc_send_status(vc) == (None, "")
    names = rig.client.names()
    assert after(names, "ProtocolCoCreateVc", "ProtocolClIncomingCall")
    assert after(names, "ProtocolClIncomingCall", "ProtocolClCallConnected")


def test_rule_30_pending_answer_reaches_the_cm(rig: CoRig5) -> None:
    ndis = rig.ndis
    sap, vc = _incoming(rig)
    ndis.NdisCmActivateVc(vc, PARAMS)
    rig.client.answers["ProtocolClIncomingCall"] = S.PENDING
    assert ndis.NdisCmDispatchIncomingCall(sap, vc, PARAMS) == S.PENDING
    assert vc.call is CallState.INCOMING and vc_send_status(vc) == (None, "R30")
    ndis.NdisClIncomingCallComplete(S.SUCCESS, vc, PARAMS)
    assert rig.cm.calls("ProtocolCmIncomingCallComplete") == [(S.SUCCESS, "cm-vc", PARAMS)]
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClIncomingCallComplete(S.SUCCESS, vc, PARAMS)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_rule_30_rejected_call_and_cm_clean_up(rig: CoRig5) -> None:
    ndis = rig.ndis
    sap, vc = _incoming(rig)
    ndis.NdisCmActivateVc(vc, PARAMS)
    rig.client.answers["ProtocolClIncomingCall"] = S.NOT_ACCEPTED
    assert ndis.NdisCmDispatchIncomingCall(sap, vc, PARAMS) == S.NOT_ACCEPTED
    assert vc.call is CallState.IDLE
    assert ndis.NdisCoDeleteVc(vc) == S.NOT_ACCEPTED  # still active
    assert ndis.NdisCmDeactivateVc(vc) == S.SUCCESS
    assert ndis.NdisCoDeleteVc(vc) == S.SUCCESS
    assert rig.client.calls("ProtocolCoDeleteVc") == [(f"pvc{vc.index}",)]


def test_rule_30_dispatch_needs_an_activated_cm_vc_on_the_saps_af(rig: CoRig5) -> None:
    ndis = rig.ndis
    sap, vc = _incoming(rig)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmDispatchIncomingCall(sap, vc, PARAMS)  # not activated
    assert info.value.rule == "R30"
    client_vc = rig.create()
    ndis.NdisClMakeCall(client_vc, PARAMS)
    ndis.NdisCmActivateVc(client_vc, PARAMS)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmDispatchIncomingCall(sap, client_vc, PARAMS)  # the client made it
    assert info.value.rule == "R30"
    ndis.NdisCmActivateVc(vc, PARAMS)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmDispatchCallConnected(vc)  # never offered
    assert info.value.rule == "R30"


# --- activation and deactivation (rule 31) ------------------------------------------------


def test_rule_31_reactivation_keeps_data_flowing_and_a_failure_keeps_the_old_parameters(
    rig: CoRig5,
) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    old = vc.call_parameters
    new = atm_call_parameters(b"x", 100, end_of_tx=True)
    rig.miniport.answers["MiniportCoActivateVc"] = S.PENDING
    assert ndis.NdisCmActivateVc(vc, new) == S.PENDING
    assert vc.state is VcState.REACTIVATING and vc_send_status(vc) == (None, "")
    ndis.NdisMCoActivateVcComplete(S.FAILURE, vc, new)
    assert vc.state is VcState.ACTIVE and vc.call_parameters is old and not vc.end_of_tx
    rig.miniport.answers["MiniportCoActivateVc"] = S.SUCCESS
    assert ndis.NdisCmActivateVc(vc, new) == S.SUCCESS
    assert vc.end_of_tx and media_flags(vc.call_parameters) & INDICATE_END_OF_TX


def test_rule_31_a_vc_is_deactivated_only_once(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    ndis.NdisClCloseCall(vc)
    assert ndis.NdisCmDeactivateVc(vc) == S.SUCCESS
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmDeactivateVc(vc)
    assert info.value.rule == "R31"
    never = rig.create()
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmDeactivateVc(never)
    assert info.value.rule == "R31"


def test_rule_31_deactivation_that_pends(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    ndis.NdisClCloseCall(vc)
    rig.miniport.answers["MiniportCoDeactivateVc"] = S.PENDING
    assert ndis.NdisCmDeactivateVc(vc) == S.PENDING
    assert vc.state is VcState.DEACTIVATING
    ndis.NdisMCoDeactivateVcComplete(S.SUCCESS, vc)
    assert rig.cm.calls("ProtocolCmDeactivateVcComplete") == [(S.SUCCESS, vc.CallMgrVcContext)]
    with pytest.raises(MiniportContractError):
        ndis.NdisMCoDeactivateVcComplete(S.SUCCESS, vc)


def test_mcm_and_stand_alone_ddis_do_not_mix(rig: CoRig5) -> None:
    vc = rig.create()
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMCmActivateVc(vc, PARAMS)
    assert info.value.rule == "PY-CO-AF"


# --- close (rule 32) --------------------------------------------------------------------------


def test_rule_32_close_grammar(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    assert ndis.NdisClCloseCall(vc) == S.PENDING
    assert vc.state is VcState.CLOSING and vc_send_status(vc) == (S.CLOSING, "R35")
    assert rig.cm.calls("ProtocolCmCloseCall") == [(vc.CallMgrVcContext, None, None, 0)]
    assert ndis.NdisCoDeleteVc(vc) == S.CLOSING  # deactivation not even started
    assert ndis.NdisCmDeactivateVc(vc) == S.SUCCESS
    assert ndis.NdisCoDeleteVc(vc) == S.CLOSING  # the close is still pending
    ndis.NdisCmCloseCallComplete(S.SUCCESS, vc)
    assert rig.client.calls("ProtocolClCloseCallComplete") == [(S.SUCCESS, "client-vc", None)]
    assert ndis.NdisCoDeleteVc(vc) == S.SUCCESS
    names = rig.miniport.names()
    assert after(names, "MiniportCoDeactivateVc", "MiniportCoDeleteVc")
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCmCloseCallComplete(S.SUCCESS, vc)
    assert info.value.rule == "R33"  # the handle is dead


def test_rule_32_synchronous_close_and_a_cm_that_completes_twice(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()

    def close(ctx: Any, party: Any, data: Any, size: int) -> NDIS_STATUS:
        assert ndis.NdisCmDeactivateVc(ctx.handle) == S.SUCCESS
        return S.SUCCESS

    rig.cm.answers["ProtocolCmCloseCall"] = close
    assert ndis.NdisClCloseCall(vc) == S.SUCCESS
    assert rig.client.calls("ProtocolClCloseCallComplete") == []
    assert ndis.NdisCoDeleteVc(vc) == S.SUCCESS

    vc2 = rig.connect()

    def close_twice(ctx: Any, party: Any, data: Any, size: int) -> NDIS_STATUS:
        ndis.NdisCmDeactivateVc(ctx.handle)
        ndis.NdisCmCloseCallComplete(S.SUCCESS, ctx.handle)
        return S.SUCCESS

    rig.cm.answers["ProtocolCmCloseCall"] = close_twice
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClCloseCall(vc2)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_rule_32_close_without_a_call_or_twice(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClCloseCall(vc)
    assert info.value.rule == "R32"
    _status, own = ndis.NdisCoCreateVc(rig.cm_binding, None, "own")
    with pytest.raises(ProtocolContractError):
        ndis.NdisClCloseCall(own)  # type: ignore[arg-type]
    up = rig.connect()
    ndis.NdisClCloseCall(up)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisClCloseCall(up)
    assert info.value.rule == "R32"


# --- delete (rule 33) -------------------------------------------------------------------------


def test_rule_33_delete_statuses_and_dead_handle(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.create()
    ndis.NdisClMakeCall(vc, PARAMS)
    assert ndis.NdisCoDeleteVc(vc) == S.NOT_ACCEPTED  # a call is being made
    ndis.NdisCmActivateVc(vc, PARAMS)
    ndis.NdisCmMakeCallComplete(S.SUCCESS, vc, None, None, PARAMS)
    assert ndis.NdisCoDeleteVc(vc) == S.NOT_ACCEPTED  # active
    rig.close(vc)
    assert vc.state is VcState.DELETED and vc not in rig.adapter.vcs
    assert [a for a in rig.cm.calls("ProtocolCoDeleteVc")] == [(vc.CallMgrVcContext,)]
    for ddi in (ndis.NdisCoDeleteVc, ndis.NdisCmDeactivateVc):
        with pytest.raises(ProtocolContractError) as info:
            ddi(vc)
        assert info.value.rule == "R33"
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCoSendPackets(vc, [], 0)
    assert info.value.rule == "R33"


def test_rule_33_only_the_creator_may_delete(rig: CoRig5) -> None:
    ndis = rig.ndis
    _status, cm_vc = ndis.NdisCoCreateVc(rig.cm_binding, rig.af, "cm")
    assert cm_vc is not None
    caught: list[BaseException] = []

    def notify(ctx: Any, family: Any) -> None:  # runs as the client (ndis.call)
        try:
            ndis.NdisCoDeleteVc(cm_vc)
        except ProtocolContractError as exc:
            caught.append(exc)

    rig.client.answers["ProtocolCoAfRegisterNotify"] = notify
    ndis.call(rig.client_block, "ProtocolCoAfRegisterNotify", "client-binding", ATM_ADDRESS_FAMILY)
    assert caught and getattr(caught[0], "rule", None) == "R33"
    assert cm_vc.state is VcState.CREATED
    assert ndis.NdisCoDeleteVc(cm_vc) == S.SUCCESS  # from outside any handler: trusted
    vc = rig.create()
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMCmDeleteVc(vc)
    assert info.value.rule == "R33"


def test_rule_33_delete_handlers_may_not_pend(rig: CoRig5) -> None:
    vc = rig.create()
    rig.miniport.answers["MiniportCoDeleteVc"] = S.PENDING
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisCoDeleteVc(vc)
    assert info.value.rule == "R33"


# --- incoming close (rule 34) -----------------------------------------------------------------


def test_rule_34_incoming_close_then_the_client_closes(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    ndis.NdisCmDispatchIncomingCloseCall(S.SUCCESS, vc, b"bye", 3)
    assert rig.client.calls("ProtocolClIncomingCloseCall") == [(S.SUCCESS, "client-vc", b"bye", 3)]
    assert vc.call is CallState.CLOSE_INDICATED and vc.state is VcState.CLOSING
    assert vc_send_status(vc) == (S.CLOSING, "R34")
    assert ndis.NdisClCloseCall(vc) == S.PENDING
    ndis.NdisCmDeactivateVc(vc)
    ndis.NdisCmCloseCallComplete(S.SUCCESS, vc)
    assert ndis.NdisCoDeleteVc(vc) == S.SUCCESS
    with pytest.raises(ProtocolContractError) as info:
        other = rig.create()
        ndis.NdisCmDispatchIncomingCloseCall(S.SUCCESS, other)  # no call to close
    assert info.value.rule == "R34"


# --- tables and helpers -----------------------------------------------------------------------


@pytest.mark.parametrize(("state", "event"), sorted(CALL_TRANSITIONS, key=str))
def test_every_call_move_happens(state: CallState, event: str) -> None:
    class Thing:
        call = state

    thing = Thing()
    assert move_call(thing, event) is CALL_TRANSITIONS[(state, event)]


def test_missing_call_moves_raise_naming_the_culprit() -> None:
    events = {e for _, e in CALL_TRANSITIONS}
    missing = [(s, e) for s in CallState for e in events if (s, e) not in CALL_TRANSITIONS]
    assert missing
    for state, event in missing:

        class Thing:
            call = state

        with pytest.raises(MiniportContractError) as info:
            move_call(Thing(), event, culprit=Culprit.MINIPORT, rule="R30")
        assert info.value.rule == "R30" and event in info.value.message


def test_send_verdict_table_is_total_and_consistent() -> None:
    for has_af in (0, 1):
        for state in VcState:
            for call in CallState:
                status, rule = SEND_VERDICT[has_af][state][call]
                if status is None:
                    assert state in (VcState.ACTIVE, VcState.REACTIVATING)
                else:
                    assert rule in ("R34", "R35")
    assert SEND_VERDICT[0][VcState.ACTIVE][CallState.IDLE] == (None, "")  # a CM's own VC
    assert SEND_VERDICT[1][VcState.ACTIVE][CallState.IDLE] == (None, "R29")


def test_helpers() -> None:
    counters = VcCounters()
    counters.sent, counters.completed, counters.indicated, counters.returned = 5, 3, 4, 1
    assert counters.in_flight == 2 and counters.held == 3
    assert counters.as_dict()["in_flight"] == 2
    assert status_and(S.SUCCESS, "h", Culprit.PROTOCOL) == (S.SUCCESS, None)
    with pytest.raises(ProtocolContractError):
        status_and((1, 2, 3), "h", Culprit.PROTOCOL)
    assert media_flags(None) == 0


def test_vc_can_indicate_only_while_activated(rig: CoRig5) -> None:
    vc = rig.create()
    assert not vc_can_indicate(vc)
    up = rig.connect()
    assert vc_can_indicate(up)


def test_co_accounting_and_repr(rig: CoRig5) -> None:
    vc = rig.connect()
    assert repr(vc) in rig.ndis.co_accounting()
    assert "ACTIVE/CONNECTED" in repr(vc) and "OPEN" in repr(rig.af)
    assert "MCM" not in repr(rig.af.registration)


def test_leftover_vc_is_flagged_and_torn_down_when_the_adapter_halts() -> None:
    rig = CoRig5()
    ndis = rig.ndis
    up = rig.connect()
    idle = rig.create()
    ndis.remove_adapter(rig.adapter)
    assert ndis.verifier is not None
    assert ndis.verifier.rules().count("PY-CO-LEFTOVER") == 3  # two VCs and the AF open
    assert up.state is VcState.DELETED and idle.state is VcState.DELETED
    names = rig.miniport.names()
    assert names.count("MiniportCoDeleteVc") == 2 and "MiniportCoDeactivateVc" in names
    assert rig.af.state is OpenState.CLOSED
    ndis.assert_nothing_lost()


def test_leftover_teardown_waits_for_a_pending_deactivation() -> None:
    rig = CoRig5()
    ndis = rig.ndis
    vc = rig.connect()
    rig.miniport.answers["MiniportCoDeactivateVc"] = S.PENDING
    ndis.scheduler.call_later(5, lambda: ndis.NdisMCoDeactivateVcComplete(S.SUCCESS, vc))
    ndis.remove_adapter(rig.adapter)
    assert vc.state is VcState.DELETED
    assert rig.cm.calls("ProtocolCmDeactivateVcComplete") == []  # NDIS's own teardown


def test_medium_of_the_rig_is_atm() -> None:
    rig = CoRig5()
    assert rig.adapter.medium == NdisMediumAtm and rig.adapter.is_co
    assert isinstance(rig.cm, ScriptedCallManager5)
