"""CoNDIS calls: VC activation and deactivation, outgoing and incoming calls, closing.

Theory of operation
-------------------
A VC's two state fields (see :mod:`.states`) move here: ``state`` through activation
(``NdisCmActivateVc`` -> MiniportCoActivateVc [-> NdisMCoActivateVcComplete], or
``NdisMCmActivateVc`` for an MCM, which activates its own hardware and only tells NDIS) and
deactivation; ``call`` through the call DDIs of the client (``NdisClMakeCall``,
``NdisClIncomingCallComplete``, ``NdisClCloseCall``) and the call manager (``Ndis(M)Cm...``).
Each stand-alone-CM DDI ``NdisCmXxx`` has an MCM twin ``NdisMCmXxx``; which one is legal
follows from who registered the VC's AF (an MCM's VCs take only the ``NdisMCm`` forms).

Rules checked here (contract ids):

* R28/R29: the CM activates the VC before it completes a call successfully, and a failed call
  leaves the VC deactivated; the client makes calls only on VCs it created with its AF.
* R30: an incoming call is dispatched only on a VC the CM created on the SAP's AF and
  activated; CallConnected only after the client accepted.
* R31: deactivation only from ACTIVE or CLOSING (once); re-activation keeps data flowing.
* R32: NdisClCloseCall marks the VC closing at once (sends from then on complete with CLOSING,
  see :mod:`.cosend`); the CM hears of the close only once the client's outstanding sends have
  completed (closing with sends outstanding is reported to the verifier); a deactivation may
  complete only when the miniport holds no send of the VC any more.
* R34: after an incoming close the client may only close.

Completion convention (as everywhere in CoNDIS): a DDI whose handler answers non-PENDING is
finished when it returns and no completion handler runs; PENDING means exactly one
``...Complete`` later. A handler that completes *and* returns a final status is a double
completion of the CM's or client's making (PY-UNEXPECTED-COMPLETE).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import INDICATE_END_OF_TX
from ..errors import (
    Culprit,
    MiniportContractError,
    NdisError,
    ProtocolContractError,
    error_class_for,
)
from ..status import NDIS_STATUS
from .covc import (
    CO_CALL_PARAMETERS,
    PartyBlock,
    VcCreator,
    VirtualConnection,
    media_flags,
    sap_from_handle,
    status_and,
    vc_from_handle,
)
from .drivers import DriverBlock
from .states import VC_TRANSITIONS, CallState, VcState, move, move_call

if TYPE_CHECKING:
    from .covc import SapBlock
    from .kernel import Ndis

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING
_ACTIVE = (VcState.ACTIVE, VcState.REACTIVATING)


class CoCallDdis:
    """Activation, calls and closes (mixed into ``Ndis`` through ``CoDdis``)."""

    # --- who is the call manager of a VC ----------------------------------------------------------
    @staticmethod
    def _cm_vc(handle: VirtualConnection, ddi: str) -> tuple[VirtualConnection, DriverBlock]:
        """The VC behind ``handle`` and the call manager allowed to call ``ddi`` on it: the
        AF's CM, or for a VC a CM made for itself (no AF) its owner. An ``NdisMCm...`` DDI is
        the miniport's (only for an MCM's VCs), an ``NdisCm...`` one a CM protocol's."""
        vc = vc_from_handle(handle, ddi, ddi_culprit(ddi))
        mcm = ddi.startswith("NdisMCm")
        is_mcm = vc.af is not None and vc.af.registration.is_mcm
        if mcm and not is_mcm:
            raise MiniportContractError(
                f"{ddi}({vc!r}): the VC's call manager is not the miniport (use NdisCm...)",
                rule="PY-CO-AF",
                subject=vc,
            )
        if not mcm and is_mcm:
            raise ProtocolContractError(
                f"{ddi}({vc!r}): the VC belongs to a miniport call manager (it uses NdisMCm...)",
                rule="PY-CO-AF",
                subject=vc,
            )
        return vc, vc.call_manager

    @staticmethod
    def _cm_vc_context(vc: VirtualConnection) -> Any:
        return vc.CallMgrVcContext if vc.af is not None else vc.ProtocolVcContext

    # --- activation -------------------------------------------------------------------------------
    def NdisCmActivateVc(
        self, NdisVcHandle: VirtualConnection, CallParameters: CO_CALL_PARAMETERS
    ) -> NDIS_STATUS:
        """A stand-alone CM activates (or re-activates) a VC: NDIS calls MiniportCoActivateVc.
        -> its status, or PENDING and ProtocolCmActivateVcComplete later."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc, cm = self._cm_vc(NdisVcHandle, "NdisCmActivateVc")
        ndis.irql.check_at_most("NdisCmActivateVc", cm.culprit)
        move(vc, VC_TRANSITIONS, "activate", culprit=cm.culprit, rule="R31")
        status = NDIS_STATUS(
            ndis.call(vc.miniport, "MiniportCoActivateVc", vc.MiniportVcContext, CallParameters)
        )
        if status == _PENDING:
            vc.activation_reply = "cm"
            return _PENDING
        self._activated(vc, status, CallParameters)
        return status

    def NdisMCmActivateVc(
        self, NdisVcHandle: VirtualConnection, CallParameters: CO_CALL_PARAMETERS
    ) -> NDIS_STATUS:
        """An MCM tells NDIS it activated a VC (its own hardware; no MiniportCoActivateVc)."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc, _cm = self._cm_vc(NdisVcHandle, "NdisMCmActivateVc")
        ndis.irql.check_at_most("NdisMCmActivateVc", Culprit.MINIPORT)
        move(vc, VC_TRANSITIONS, "activate", culprit=Culprit.MINIPORT, rule="R31")
        self._activated(vc, _SUCCESS, CallParameters)
        return _SUCCESS

    def NdisMCoActivateVcComplete(
        self, Status: int, NdisVcHandle: VirtualConnection, CallParameters: CO_CALL_PARAMETERS
    ) -> None:
        """The miniport finishes a MiniportCoActivateVc that returned PENDING."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisMCoActivateVcComplete", Culprit.MINIPORT)
        if not vc.activation_reply:
            raise MiniportContractError(
                f"NdisMCoActivateVcComplete for {vc!r} with no activation pending",
                rule="PY-UNEXPECTED-COMPLETE",
                subject=vc,
            )
        final = final_status(Status, "NdisMCoActivateVcComplete", Culprit.MINIPORT)
        reply, vc.activation_reply = vc.activation_reply, ""
        self._activated(vc, final, CallParameters)
        if reply == "cm":
            cm = vc.call_manager
            ndis.call(
                cm, "ProtocolCmActivateVcComplete", final, self._cm_vc_context(vc), CallParameters
            )

    def _activated(
        self, vc: VirtualConnection, status: NDIS_STATUS, params: CO_CALL_PARAMETERS
    ) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if status == _SUCCESS:
            move(vc, VC_TRANSITIONS, "activated")
            vc.call_parameters = params
            vc.end_of_tx = bool(media_flags(params) & INDICATE_END_OF_TX)
        else:
            move(vc, VC_TRANSITIONS, "activation_failed")
        ndis.scheduler.trace("vc-activate", vc.index, status)

    # --- deactivation (rules 31, 32) --------------------------------------------------------------
    def NdisCmDeactivateVc(self, NdisVcHandle: VirtualConnection) -> NDIS_STATUS:
        """A stand-alone CM deactivates a VC: NDIS calls MiniportCoDeactivateVc, which completes
        every send it holds for the VC first (R32). -> its status, or PENDING and
        ProtocolCmDeactivateVcComplete later. Deactivating twice is refused (R31)."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc, cm = self._cm_vc(NdisVcHandle, "NdisCmDeactivateVc")
        ndis.irql.check_at_most("NdisCmDeactivateVc", cm.culprit)
        move(vc, VC_TRANSITIONS, "deactivate", culprit=cm.culprit, rule="R31")
        status = NDIS_STATUS(ndis.call(vc.miniport, "MiniportCoDeactivateVc", vc.MiniportVcContext))
        if status == _PENDING:
            vc.deactivation_reply = "cm"
            return _PENDING
        self._deactivated(vc)
        return status

    def NdisMCmDeactivateVc(self, NdisVcHandle: VirtualConnection) -> NDIS_STATUS:
        """An MCM tells NDIS it deactivated a VC; it must hold no send of it any more (R32)."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc, _cm = self._cm_vc(NdisVcHandle, "NdisMCmDeactivateVc")
        ndis.irql.check_at_most("NdisMCmDeactivateVc", Culprit.MINIPORT)
        move(vc, VC_TRANSITIONS, "deactivate", culprit=Culprit.MINIPORT, rule="R31")
        self._deactivated(vc)
        return _SUCCESS

    def NdisMCoDeactivateVcComplete(self, Status: int, NdisVcHandle: VirtualConnection) -> None:
        """The miniport finishes a MiniportCoDeactivateVc that returned PENDING."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisMCoDeactivateVcComplete", Culprit.MINIPORT)
        if not vc.deactivation_reply:
            raise MiniportContractError(
                f"NdisMCoDeactivateVcComplete for {vc!r} with no deactivation pending",
                rule="PY-UNEXPECTED-COMPLETE",
                subject=vc,
            )
        final = final_status(Status, "NdisMCoDeactivateVcComplete", Culprit.MINIPORT)
        reply, vc.deactivation_reply = vc.deactivation_reply, ""
        self._deactivated(vc)
        if reply == "cm":
            cm = vc.call_manager
            ndis.call(cm, "ProtocolCmDeactivateVcComplete", final, self._cm_vc_context(vc))

    def _deactivated(self, vc: VirtualConnection) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if vc.counters.in_flight:
            raise MiniportContractError(
                f"deactivation of {vc!r} completed while the miniport still holds "
                f"{vc.counters.in_flight} send(s) of it: a miniport completes every pending "
                "send before its deactivation completes",
                rule="R32",
                subject=vc,
            )
        move(vc, VC_TRANSITIONS, "deactivated")
        vc.end_of_tx = False
        ndis.scheduler.trace("vc-deactivated", vc.index)

    # --- outgoing calls (rule 29) -----------------------------------------------------------------
    def NdisClMakeCall(
        self,
        NdisVcHandle: VirtualConnection,
        CallParameters: CO_CALL_PARAMETERS,
        ProtocolPartyContext: Any = None,
    ) -> NDIS_STATUS:
        """The client asks its CM to set up a call on a VC it created. -> the CM's status
        (SUCCESS: the call is up), CLOSING (the VC's last call is still being torn down), or
        PENDING and ProtocolClMakeCallComplete later. ``CallParameters`` must stay valid until
        then. The NdisPartyHandle (only with a ProtocolPartyContext) comes with the
        completion."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisClMakeCall", Culprit.PROTOCOL)
        client = vc.sender
        ndis.irql.check_at_most("NdisClMakeCall", client.culprit)
        if vc.af is None or vc.creator is not VcCreator.CLIENT:
            raise _error(
                client,
                f"NdisClMakeCall on {vc!r}, which the client did not create "
                "with NdisCoCreateVc on its AF",
                "R29",
                vc,
            )
        if vc.state in (VcState.CLOSING, VcState.DEACTIVATING):
            return NDIS_STATUS.CLOSING
        if vc.state not in (VcState.CREATED, VcState.DEACTIVATED):
            raise _error(client, f"NdisClMakeCall on {vc!r}: it is activated already", "R29", vc)
        move_call(vc, "make_call", culprit=client.culprit, rule="R29")
        vc.call_parameters = CallParameters
        party = PartyBlock(vc, ProtocolPartyContext) if ProtocolPartyContext is not None else None
        vc.party = party
        ndis.scheduler.trace("make-call", vc.index)
        cm = vc.af.cm
        result = ndis.call(cm, "ProtocolCmMakeCall", vc.CallMgrVcContext, CallParameters, party)
        status, party_context = status_and(result, "ProtocolCmMakeCall", cm.culprit)
        if party is not None:
            party.CallMgrPartyContext = party_context
        if status == _PENDING:
            return _PENDING
        if vc.call is not CallState.OUTGOING:
            raise _double(cm, "ProtocolCmMakeCall", vc)
        self._call_made(vc, status, CallParameters, notify=False)
        return status

    def NdisCmMakeCallComplete(
        self,
        Status: int,
        NdisVcHandle: VirtualConnection,
        NdisPartyHandle: PartyBlock | None,
        CallMgrPartyContext: Any,
        CallParameters: CO_CALL_PARAMETERS,
    ) -> None:
        """A stand-alone CM completes a ProtocolCmMakeCall that returned PENDING."""
        self._make_call_complete(
            Status, NdisVcHandle, CallMgrPartyContext, CallParameters, "NdisCmMakeCallComplete"
        )

    def NdisMCmMakeCallComplete(
        self,
        Status: int,
        NdisVcHandle: VirtualConnection,
        NdisPartyHandle: PartyBlock | None,
        CallMgrPartyContext: Any,
        CallParameters: CO_CALL_PARAMETERS,
    ) -> None:
        """An MCM completes a ProtocolCmMakeCall that returned PENDING."""
        self._make_call_complete(
            Status, NdisVcHandle, CallMgrPartyContext, CallParameters, "NdisMCmMakeCallComplete"
        )

    def _make_call_complete(
        self, status: int, handle: VirtualConnection, party_ctx: Any, params: Any, ddi: str
    ) -> None:
        vc, cm = self._cm_vc(handle, ddi)
        if vc.call is not CallState.OUTGOING:
            raise _error(
                cm, f"{ddi} for {vc!r}: no call is being made", "PY-UNEXPECTED-COMPLETE", vc
            )
        final = final_status(status, ddi, cm.culprit)
        if vc.party is not None and party_ctx is not None:
            vc.party.CallMgrPartyContext = party_ctx
        self._call_made(vc, final, params, notify=True)

    def _call_made(
        self, vc: VirtualConnection, status: NDIS_STATUS, params: Any, notify: bool
    ) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        assert vc.af is not None
        cm = vc.af.cm
        party = vc.party
        if status == _SUCCESS:
            if vc.state not in _ACTIVE:
                raise _error(
                    cm,
                    f"the call on {vc!r} completed with SUCCESS but the VC was never "
                    "activated (activate it before MakeCallComplete)",
                    "R29",
                    vc,
                )
            move_call(vc, "make_call_done")
        else:
            if vc.state in _ACTIVE or vc.state is VcState.ACTIVATING:
                raise _error(
                    cm,
                    f"the call on {vc!r} failed ({status.name}) but the VC is left "
                    "activated (deactivate it before failing the call)",
                    "R29",
                    vc,
                )
            move_call(vc, "make_call_failed")
            vc.party = None
        ndis.scheduler.trace("make-call-done", vc.index, status)
        if notify:
            ndis.call(
                vc.sender, "ProtocolClMakeCallComplete", status, vc.ProtocolVcContext, party, params
            )

    # --- incoming calls (rule 30) -----------------------------------------------------------------
    def NdisCmDispatchIncomingCall(
        self, NdisSapHandle: SapBlock, NdisVcHandle: VirtualConnection, CallParameters: Any
    ) -> NDIS_STATUS:
        """A stand-alone CM offers a call on an activated VC it created on the SAP's AF.
        -> the client's answer (SUCCESS = accepted; the CM then dispatches CallConnected), or
        PENDING and ProtocolCmIncomingCallComplete later."""
        return self._dispatch_incoming(
            NdisSapHandle, NdisVcHandle, CallParameters, "NdisCmDispatchIncomingCall"
        )

    def NdisMCmDispatchIncomingCall(
        self, NdisSapHandle: SapBlock, NdisVcHandle: VirtualConnection, CallParameters: Any
    ) -> NDIS_STATUS:
        """The MCM form of NdisCmDispatchIncomingCall."""
        return self._dispatch_incoming(
            NdisSapHandle, NdisVcHandle, CallParameters, "NdisMCmDispatchIncomingCall"
        )

    def _dispatch_incoming(
        self, sap_handle: SapBlock, handle: VirtualConnection, params: Any, ddi: str
    ) -> NDIS_STATUS:
        ndis: Ndis = self  # type: ignore[assignment]
        vc, cm = self._cm_vc(handle, ddi)
        sap = sap_from_handle(sap_handle, ddi, cm.culprit)
        ndis.irql.check_at_most(ddi, cm.culprit)
        if vc.af is not sap.af or vc.creator is VcCreator.CLIENT:
            raise _error(
                cm, f"{ddi}: {vc!r} was not created by the CM on the AF of {sap!r}", "R30", vc
            )
        if vc.state not in _ACTIVE:
            raise _error(
                cm, f"{ddi} on {vc!r}: activate the VC before offering the call", "R30", vc
            )
        move_call(vc, "incoming", culprit=cm.culprit, rule="R30")
        vc.call_parameters = params
        ndis.scheduler.trace("incoming-call", vc.index)
        status = NDIS_STATUS(
            ndis.call(
                vc.sender,
                "ProtocolClIncomingCall",
                sap.ProtocolSapContext,
                vc.ProtocolVcContext,
                params,
            )
        )
        if status == _PENDING:
            return _PENDING
        if vc.call is not CallState.INCOMING:
            raise _double(vc.sender, "ProtocolClIncomingCall", vc)
        self._incoming_done(vc, status, params, notify=False)
        return status

    def NdisClIncomingCallComplete(
        self, Status: int, NdisVcHandle: VirtualConnection, CallParameters: Any
    ) -> None:
        """The client accepts (SUCCESS) or rejects an offered call it answered PENDING to."""
        vc = vc_from_handle(NdisVcHandle, "NdisClIncomingCallComplete", Culprit.PROTOCOL)
        if vc.call is not CallState.INCOMING:
            raise _error(
                vc.sender,
                f"NdisClIncomingCallComplete for {vc!r}: no call offered",
                "PY-UNEXPECTED-COMPLETE",
                vc,
            )
        final = final_status(Status, "NdisClIncomingCallComplete", vc.sender.culprit)
        self._incoming_done(vc, final, CallParameters, notify=True)

    def _incoming_done(
        self, vc: VirtualConnection, status: NDIS_STATUS, params: Any, notify: bool
    ) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        move_call(vc, "accepted" if status == _SUCCESS else "rejected")
        ndis.scheduler.trace("incoming-call-done", vc.index, status)
        if notify:
            assert vc.cm is not None
            ndis.call(vc.cm, "ProtocolCmIncomingCallComplete", status, vc.CallMgrVcContext, params)

    def NdisCmDispatchCallConnected(self, NdisVcHandle: VirtualConnection) -> None:
        """The CM says an accepted incoming call is up: transfers may begin (R30)."""
        self._call_connected(NdisVcHandle, "NdisCmDispatchCallConnected")

    def NdisMCmDispatchCallConnected(self, NdisVcHandle: VirtualConnection) -> None:
        self._call_connected(NdisVcHandle, "NdisMCmDispatchCallConnected")

    def _call_connected(self, handle: VirtualConnection, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        vc, cm = self._cm_vc(handle, ddi)
        move_call(vc, "connected", culprit=cm.culprit, rule="R30")
        ndis.scheduler.trace("call-connected", vc.index)
        if vc.sender.has("ProtocolClCallConnected"):
            ndis.call(vc.sender, "ProtocolClCallConnected", vc.ProtocolVcContext)

    # --- closing (rules 32, 34) -------------------------------------------------------------------
    def NdisCmDispatchIncomingCloseCall(
        self, CloseStatus: int, NdisVcHandle: VirtualConnection, Buffer: Any = None, Size: int = 0
    ) -> None:
        """The CM tears down a call from the network side: the VC is closing at once (no more
        sends, R34) and the client must answer with NdisClCloseCall."""
        self._incoming_close(
            CloseStatus, NdisVcHandle, Buffer, Size, "NdisCmDispatchIncomingCloseCall"
        )

    def NdisMCmDispatchIncomingCloseCall(
        self, CloseStatus: int, NdisVcHandle: VirtualConnection, Buffer: Any = None, Size: int = 0
    ) -> None:
        self._incoming_close(
            CloseStatus, NdisVcHandle, Buffer, Size, "NdisMCmDispatchIncomingCloseCall"
        )

    def _incoming_close(
        self, status: int, handle: VirtualConnection, buffer: Any, size: int, ddi: str
    ) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        vc, cm = self._cm_vc(handle, ddi)
        move_call(vc, "incoming_close", culprit=cm.culprit, rule="R34")
        if vc.state is VcState.ACTIVE:
            move(vc, VC_TRANSITIONS, "close")
        ndis.scheduler.trace("incoming-close", vc.index, NDIS_STATUS(status))
        ndis.call(
            vc.sender,
            "ProtocolClIncomingCloseCall",
            NDIS_STATUS(status),
            vc.ProtocolVcContext,
            buffer,
            size,
        )

    def NdisClCloseCall(
        self,
        NdisVcHandle: VirtualConnection,
        NdisPartyHandle: PartyBlock | None = None,
        Buffer: Any = None,
        Size: int = 0,
    ) -> NDIS_STATUS:
        """The client closes its call. The VC is closing from now on: any send completes at
        once with CLOSING (R35). NDIS hands the close to the CM (ProtocolCmCloseCall) once
        every send the client made on the VC has completed (R32). -> the CM's status, or
        PENDING and ProtocolClCloseCallComplete later."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisClCloseCall", Culprit.PROTOCOL)
        client = vc.sender
        ndis.irql.check_at_most("NdisClCloseCall", client.culprit)
        if vc.af is None:
            raise _error(client, f"NdisClCloseCall on {vc!r}, which carries no call", "R32", vc)
        move_call(vc, "close", culprit=client.culprit, rule="R32")
        if vc.state is VcState.ACTIVE:
            move(vc, VC_TRANSITIONS, "close", culprit=client.culprit, rule="R32")
        ndis.scheduler.trace("close-call", vc.index)
        if vc.counters.in_flight:
            ndis.flag(
                _error(
                    client,
                    f"NdisClCloseCall on {vc!r} with {vc.counters.in_flight} send(s) "
                    "outstanding: a client waits for its sends to complete before it closes "
                    "(NDIS holds the close back until they have)",
                    "R32",
                    vc,
                )
            )
            vc.pending_close = (NdisPartyHandle, Buffer, Size)
            return _PENDING
        return self._forward_close(vc, Buffer, Size, notify=False)

    def _forward_close(
        self, vc: VirtualConnection, buffer: Any, size: int, notify: bool
    ) -> NDIS_STATUS:
        ndis: Ndis = self  # type: ignore[assignment]
        assert vc.af is not None
        cm = vc.af.cm
        party_context = vc.party.CallMgrPartyContext if vc.party is not None else None
        status = NDIS_STATUS(
            ndis.call(cm, "ProtocolCmCloseCall", vc.CallMgrVcContext, party_context, buffer, size)
        )
        if status == _PENDING:
            return _PENDING
        if vc.call is not CallState.CLOSING:
            raise _double(cm, "ProtocolCmCloseCall", vc)
        self._call_closed(vc, status, notify)
        return status

    def _vc_send_done(self, vc: VirtualConnection) -> None:
        """Send paths call this after every completion on ``vc``: a close held back by
        outstanding sends goes on to the CM once the last one is back (R32)."""
        ndis: Ndis = self  # type: ignore[assignment]
        pending = vc.pending_close
        if pending is not None and vc.counters.in_flight == 0:
            vc.pending_close = None
            self._forward_close(vc, pending[1], pending[2], notify=True)
        ndis.binding_send_done(vc.owner)

    def NdisCmCloseCallComplete(
        self, Status: int, NdisVcHandle: VirtualConnection, NdisPartyHandle: Any = None
    ) -> None:
        """A stand-alone CM completes a ProtocolCmCloseCall that returned PENDING."""
        self._close_call_complete(Status, NdisVcHandle, "NdisCmCloseCallComplete")

    def NdisMCmCloseCallComplete(
        self, Status: int, NdisVcHandle: VirtualConnection, NdisPartyHandle: Any = None
    ) -> None:
        """An MCM completes a ProtocolCmCloseCall that returned PENDING."""
        self._close_call_complete(Status, NdisVcHandle, "NdisMCmCloseCallComplete")

    def _close_call_complete(self, status: int, handle: VirtualConnection, ddi: str) -> None:
        vc, cm = self._cm_vc(handle, ddi)
        if vc.call is not CallState.CLOSING or vc.pending_close is not None:
            raise _error(
                cm,
                f"{ddi} for {vc!r}: no close was handed to the call manager",
                "PY-UNEXPECTED-COMPLETE",
                vc,
            )
        final = final_status(status, ddi, cm.culprit)
        self._call_closed(vc, final, notify=True)

    def _call_closed(self, vc: VirtualConnection, status: NDIS_STATUS, notify: bool) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        party = vc.party
        move_call(vc, "closed")
        vc.party = None
        ndis.scheduler.trace("close-call-done", vc.index, status)
        if notify and vc.sender.has("ProtocolClCloseCallComplete"):
            ndis.call(
                vc.sender,
                "ProtocolClCloseCallComplete",
                status,
                vc.ProtocolVcContext,
                party.ProtocolPartyContext if party is not None else None,
            )


def _error(block: DriverBlock, message: str, rule: str, subject: object) -> NdisError:
    return error_class_for(block.culprit)(message, rule=rule, subject=subject)


def _double(block: DriverBlock, handler: str, vc: VirtualConnection) -> NdisError:
    return _error(
        block,
        f"{handler} for {vc!r} returned a final status after the operation was already "
        "completed (complete it, then return PENDING; or return the status without completing)",
        "PY-UNEXPECTED-COMPLETE",
        vc,
    )


def ddi_culprit(ddi: str) -> Culprit:
    """Who calls a call-manager DDI: an MCM (``NdisMCm...``) or a CM protocol."""
    return Culprit.MINIPORT if ddi.startswith("NdisMCm") else Culprit.PROTOCOL


def final_status(status: int, ddi: str, culprit: Culprit) -> NDIS_STATUS:
    """The status of a ``...Complete`` DDI, which must be final (not PENDING)."""
    final = NDIS_STATUS(status)
    if final == _PENDING:
        raise error_class_for(culprit)(
            f"{ddi}(NDIS_STATUS_PENDING): a completion carries the final status",
            rule="PY-UNEXPECTED-COMPLETE",
        )
    return final


__all__ = ["CoCallDdis", "ddi_culprit", "final_status"]
