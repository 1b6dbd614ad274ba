"""CoNDIS: address families, call managers, SAPs, and the life of a virtual connection.

Theory of operation
-------------------
Connection-oriented NDIS carries data on *virtual connections* (VCs) instead of a binding. A
call manager (CM) registers an address family (AF) on an adapter: a stand-alone CM protocol with
``NdisCmRegisterAddressFamily`` on its binding, or the miniport itself (an MCM) with
``NdisMCmRegisterAddressFamily``. NDIS offers it (``ProtocolCoAfRegisterNotify``) to every
connection-oriented client bound to that adapter, now and when a client binds later. A client
opens the AF (``NdisClOpenAddressFamily`` -> ``ProtocolCmOpenAf``), may register SAPs for
incoming calls, creates VCs and makes calls on them. The objects behind the handles, and the
verdict on sends, are in :mod:`.covc`; activation and calls in :mod:`.cocall`; data in
:mod:`.cosend`. This module is version-neutral: NDIS 5.x and NDIS 6 CoNDIS share it (only the
``...Ex`` AF DDIs differ).

Grammar of a VC (every arrow a DDI or handler; rules 28-35)::

    client:  NdisCoCreateVc -> [CM ProtocolCoCreateVc] + MiniportCoCreateVc      (never pend)
             -> NdisClMakeCall -> CM ProtocolCmMakeCall -> Ndis(M)CmActivateVc
             -> [MiniportCoActivateVc -> NdisMCoActivateVcComplete] -> Ndis(M)CmMakeCallComplete
             -> ProtocolClMakeCallComplete(SUCCESS) -> (sends, receives)*
             -> NdisClCloseCall -> (outstanding sends complete) -> CM ProtocolCmCloseCall
             -> Ndis(M)CmDeactivateVc -> MiniportCoDeactivateVc (completes pending sends first)
             -> Ndis(M)CmCloseCallComplete -> ProtocolClCloseCallComplete -> NdisCoDeleteVc
    CM:      Ndis(M)CmCreateVc (client ProtocolCoCreateVc) -> Ndis(M)CmActivateVc
             -> Ndis(M)CmDispatchIncomingCall -> ProtocolClIncomingCall [-> NdisClIncomingCall-
             Complete -> ProtocolCmIncomingCallComplete] -> Ndis(M)CmDispatchCallConnected
             -> ProtocolClCallConnected -> (data)* -> Ndis(M)CmDispatchIncomingCloseCall
             -> ProtocolClIncomingCloseCall -> NdisClCloseCall -> ... -> CM deletes the VC

Every DDI with a completion follows one convention, as in NDIS: a non-PENDING return means the
work is done and *no* completion handler runs for it; PENDING means exactly one later
``...Complete`` call.

Internal API for the other send paths (NDIS 6 ``NdisCoSendNetBufferLists`` uses exactly this):

* ``vc_from_handle(NdisVcHandle, ddi, culprit) -> VirtualConnection``: the VC behind a handle;
  raises for anything else or a deleted VC (R33).
* ``vc_send_status(vc) -> (status | None, rule)``: may the owner send now? None: submit to the
  miniport's send handler with ``vc.MiniportVcContext``; otherwise complete every descriptor at
  once with ``status`` (VC_NOT_ACTIVATED / CLOSING, R35 [model]). A non-empty ``rule`` is the
  contract rule the sender broke: report it with ``ndis.flag`` (once per send call).
* Routing: ``vc.owner`` is the sender's binding (``vc.owner.ProtocolBindingContext``),
  ``vc.sender`` its DriverBlock, ``vc.ProtocolVcContext`` what its completion and receive
  handlers get; ``vc.miniport`` / ``vc.MiniportVcContext`` the miniport side; ``vc.end_of_tx``
  the INDICATE_END_OF_TX media flag of the current activation (R37).
* Accounting: ``vc.counters`` (VcCounters: sent, completed, by_status, bytes) counts every
  descriptor sent on the VC and every completion; also count them in ``vc.owner.counters``,
  keep ``vc.adapter.outstanding`` (descriptors the miniport holds), and after each completion
  call ``ndis._vc_send_done(vc)``: it lets a pending NdisClCloseCall go on, and then
  ``ndis.binding_send_done(vc.owner)``.
* ``vc_can_indicate(vc)``: may the miniport indicate receives on it (R32.4)?
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from ..constants import DISPATCH_LEVEL, PASSIVE_LEVEL
from ..errors import Culprit, MiniportContractError, ProtocolContractError, error_class_for
from ..scheduler import PRIORITY_PASSIVE
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_handle
from .cocall import CoCallDdis
from .covc import (
    CO_ADDRESS_FAMILY,
    CO_SAP,
    AfBlock,
    CallManagerAf,
    OpenState,
    SapBlock,
    VcCreator,
    VirtualConnection,
    af_from_handle,
    sap_from_handle,
    status_and,
    vc_can_indicate,
    vc_from_handle,
    vc_send_status,
)
from .drivers import DriverBlock, check_version
from .states import CALL_TRANSITIONS, VC_TRANSITIONS, CallState, VcState, move

if TYPE_CHECKING:
    from .kernel import Ndis

#: Handlers a call manager must supply (checked when it registers an AF).
CM_HANDLERS = (
    "ProtocolCmOpenAf",
    "ProtocolCmCloseAf",
    "ProtocolCmMakeCall",
    "ProtocolCmCloseCall",
)
#: ... and a stand-alone CM also gets these (an MCM has MiniportCoCreateVc/DeleteVc instead).
CM_PROTOCOL_HANDLERS = ("ProtocolCoCreateVc", "ProtocolCoDeleteVc")
#: Handlers a client must supply to open an AF.
CLIENT_HANDLERS = ("ProtocolCoCreateVc", "ProtocolCoDeleteVc", "ProtocolClMakeCallComplete")

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING

#: How a forced teardown walks a call back to IDLE through the call table.
_CALL_UNWIND: dict[CallState, tuple[str, ...]] = {
    CallState.OUTGOING: ("make_call_failed",),
    CallState.INCOMING: ("rejected",),
    CallState.ACCEPTED: ("incoming_close", "close", "closed"),
    CallState.CONNECTED: ("close", "closed"),
    CallState.CLOSE_INDICATED: ("close", "closed"),
    CallState.CLOSING: ("closed",),
}


class CoDdis(CoCallDdis):
    """AF registration and opening, SAPs, VC creation and deletion (mixed into ``Ndis``)."""

    # --- kernel hooks -----------------------------------------------------------------------------
    def _init_co(self) -> None:
        """Per-kernel CoNDIS state (called from Ndis.__init__)."""
        self.co_registrations: list[CallManagerAf] = []
        self._vc_numbers = itertools.count(1)

    def _co_lost(self) -> list[str]:
        """Descriptions of CoNDIS sends not yet completed and receives never returned."""
        ndis: Ndis = self  # type: ignore[assignment]
        problems = []
        for adapter in ndis.adapters.values():
            for vc in adapter.vcs:
                c = vc.counters
                if c.in_flight:
                    problems.append(f"{vc!r}: {c.in_flight} send(s) not completed")
                if c.held:
                    problems.append(f"{vc!r}: {c.held} received packet(s) never returned")
        return problems

    def co_accounting(self) -> dict[str, Any]:
        """Per-VC counters of every live VC (``accounting()`` covers pools and bindings)."""
        ndis: Ndis = self  # type: ignore[assignment]
        return {
            repr(vc): vc.counters.as_dict()
            for adapter in ndis.adapters.values()
            for vc in adapter.vcs
        }

    def _co_binding_opened(self, binding: OpenBlock) -> None:
        """A binding was opened: offer it the AFs already registered on its adapter.

        NDIS does this from a worker thread, after the open: the protocol must hold its
        NdisBindingHandle before it can open an AF, so the offer is a PASSIVE work item."""
        ndis: Ndis = self  # type: ignore[assignment]
        for reg in self.co_registrations:
            if reg.adapter is binding.adapter:
                self._schedule_af_notify(reg, binding)
        del ndis

    def _schedule_af_notify(self, reg: CallManagerAf, binding: OpenBlock) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if binding is reg.cm_binding or not binding.protocol.has("ProtocolCoAfRegisterNotify"):
            return
        ndis.scheduler.call_later(
            0,
            self._af_notify,
            reg,
            binding,
            priority=PRIORITY_PASSIVE,
            irql=PASSIVE_LEVEL,
            label="af-notify",
        )

    def _af_notify(self, reg: CallManagerAf, binding: OpenBlock) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if reg not in self.co_registrations or binding not in reg.adapter.bindings:
            return  # deregistered or unbound meanwhile
        ndis.scheduler.trace("af-notify", binding.protocol.name, hex(reg.AddressFamily.AddressFamily))
        ndis.call(
            binding.protocol,
            "ProtocolCoAfRegisterNotify",
            binding.ProtocolBindingContext,
            reg.AddressFamily,
        )

    def _co_teardown_adapter(self, adapter: MiniportBlock) -> None:
        """Before an adapter halts (its bindings are already closed): whatever VCs, SAPs and
        AF opens the drivers left are torn down by NDIS: each leftover VC is flagged
        (PY-CO-LEFTOVER, the creator's fault), deactivated at the miniport (which completes
        its pending sends first), deleted at the miniport, and the AFs are dropped."""
        ndis: Ndis = self  # type: ignore[assignment]
        for vc in list(adapter.vcs):
            ndis.flag(
                error_class_for(vc.creator_block.culprit)(
                    f"{vc!r} still exists when {adapter!r} halts: the {vc.creator.value} that "
                    "created it must close its call and delete it first",
                    rule="PY-CO-LEFTOVER",
                    subject=vc,
                )
            )
            self._force_delete(vc)
        for reg in [r for r in self.co_registrations if r.adapter is adapter]:
            for af in list(reg.opens):
                for sap in af.saps:
                    sap.state = OpenState.CLOSED
                af.saps.clear()
                af.state = OpenState.CLOSED
            reg.opens.clear()
            self.co_registrations.remove(reg)
            ndis.scheduler.trace("af-deregistered", adapter.name, hex(reg.AddressFamily.AddressFamily))

    def _force_delete(self, vc: VirtualConnection) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if vc.state in (VcState.ACTIVATING, VcState.REACTIVATING, VcState.DEACTIVATING):
            ndis.wait_until(
                lambda: vc.state not in (VcState.ACTIVATING, VcState.REACTIVATING, VcState.DEACTIVATING),
                f"(de)activation of {vc!r} to complete",
                Culprit.MINIPORT,
            )
        for event in _CALL_UNWIND.get(vc.call, ()):
            move(vc, CALL_TRANSITIONS, event)
        if vc.state in (VcState.ACTIVE, VcState.CLOSING):
            move(vc, VC_TRANSITIONS, "deactivate")
            if vc.miniport.has("MiniportCoDeactivateVc"):
                status = NDIS_STATUS(
                    ndis.call(vc.miniport, "MiniportCoDeactivateVc", vc.MiniportVcContext)
                )
                if status == _PENDING:
                    vc.deactivation_reply = ""
                    ndis.wait_until(
                        lambda: vc.state is VcState.DEACTIVATED,
                        f"NdisMCoDeactivateVcComplete for {vc!r}",
                        Culprit.MINIPORT,
                    )
                else:
                    self._deactivated(vc)
            else:
                self._deactivated(vc)
        if vc.creator is not VcCreator.MINIPORT_CM:
            self._miniport_delete(vc)
        self._unlink(vc)

    # --- address-family registration (call managers) -------------------------------------------
    def NdisCmRegisterAddressFamily(
        self,
        NdisBindingHandle: OpenBlock,
        AddressFamily: CO_ADDRESS_FAMILY,
        CmCharacteristics: Any = None,
        SizeOfCmCharacteristics: int = 0,
    ) -> NDIS_STATUS:
        """A stand-alone CM registers an AF on the adapter of its binding (NDIS 5.x).

        ``CmCharacteristics`` is accepted and ignored: pyndis finds the CM's handlers by name
        on the driver object. -> SUCCESS | BAD_CHARACTERISTICS (a CM handler is missing) |
        FAILURE (the AF is registered on that adapter already) | NOT_SUPPORTED (not a CoNDIS
        adapter)."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisCmRegisterAddressFamily")
        return self._register_af(binding.adapter, AddressFamily, binding.protocol, binding)

    def NdisCmRegisterAddressFamilyEx(
        self, NdisBindingHandle: OpenBlock, AddressFamily: CO_ADDRESS_FAMILY
    ) -> NDIS_STATUS:
        """NDIS 6 form of NdisCmRegisterAddressFamily."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisCmRegisterAddressFamilyEx")
        return self._register_af(binding.adapter, AddressFamily, binding.protocol, binding)

    def NdisMCmRegisterAddressFamily(
        self,
        MiniportAdapterHandle: MiniportBlock,
        AddressFamily: CO_ADDRESS_FAMILY,
        CmCharacteristics: Any = None,
        SizeOfCmCharacteristics: int = 0,
    ) -> NDIS_STATUS:
        """An MCM registers the AF its integrated call manager serves (NDIS 5.x; usually from
        MiniportInitialize). Same statuses as NdisCmRegisterAddressFamily."""
        adapter = adapter_handle(MiniportAdapterHandle)
        check_version(adapter.driver, "NdisMCmRegisterAddressFamily")
        return self._register_af(adapter, AddressFamily, adapter.driver, None)

    def NdisMCmRegisterAddressFamilyEx(
        self, MiniportAdapterHandle: MiniportBlock, AddressFamily: CO_ADDRESS_FAMILY
    ) -> NDIS_STATUS:
        """NDIS 6 form of NdisMCmRegisterAddressFamily."""
        adapter = adapter_handle(MiniportAdapterHandle)
        check_version(adapter.driver, "NdisMCmRegisterAddressFamilyEx")
        return self._register_af(adapter, AddressFamily, adapter.driver, None)

    def _register_af(
        self,
        adapter: MiniportBlock,
        family: CO_ADDRESS_FAMILY,
        cm: DriverBlock,
        cm_binding: OpenBlock | None,
    ) -> NDIS_STATUS:
        ndis: Ndis = self  # type: ignore[assignment]
        ndis.irql.check_at_most("Ndis(M)CmRegisterAddressFamily", cm.culprit, PASSIVE_LEVEL)
        if not adapter.is_co:
            return NDIS_STATUS.NOT_SUPPORTED
        needed = CM_HANDLERS + (CM_PROTOCOL_HANDLERS if cm_binding is not None else ())
        if not all(cm.has(name) for name in needed):
            return NDIS_STATUS.BAD_CHARACTERISTICS
        for reg in self.co_registrations:
            if reg.adapter is adapter and _same_family(reg.AddressFamily, family):
                return NDIS_STATUS.FAILURE
        context = cm_binding.ProtocolBindingContext if cm_binding is not None else None
        reg = CallManagerAf(adapter, family, cm, cm_binding, context)
        self.co_registrations.append(reg)
        ndis.scheduler.trace("af-register", adapter.name, hex(family.AddressFamily), cm.name)
        for binding in list(adapter.bindings):
            self._schedule_af_notify(reg, binding)
        return _SUCCESS

    # --- opening and closing an AF (clients) ------------------------------------------------------
    def NdisClOpenAddressFamily(
        self,
        NdisBindingHandle: OpenBlock,
        AddressFamily: CO_ADDRESS_FAMILY,
        ProtocolAfContext: Any,
        ClCharacteristics: Any = None,
        SizeOfClCharacteristics: int = 0,
    ) -> tuple[NDIS_STATUS, AfBlock | None]:
        """-> (Status, NdisAfHandle) (NDIS 5.x). SUCCESS with the handle; PENDING (the handle
        comes with ProtocolClOpenAfComplete); FAILURE (no such AF on the adapter);
        BAD_CHARACTERISTICS (a client handler is missing); or the CM's failure status.
        ``ClCharacteristics`` is accepted and ignored (handlers are found by name)."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisClOpenAddressFamily")
        return self._open_af(binding, AddressFamily, ProtocolAfContext)

    def NdisClOpenAddressFamilyEx(
        self, NdisBindingHandle: OpenBlock, AddressFamily: CO_ADDRESS_FAMILY, ClientAfContext: Any
    ) -> tuple[NDIS_STATUS, AfBlock | None]:
        """NDIS 6 form of NdisClOpenAddressFamily."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisClOpenAddressFamilyEx")
        return self._open_af(binding, AddressFamily, ClientAfContext)

    def _open_af(
        self, binding: OpenBlock, family: CO_ADDRESS_FAMILY, context: Any
    ) -> tuple[NDIS_STATUS, AfBlock | None]:
        ndis: Ndis = self  # type: ignore[assignment]
        client = binding.protocol
        ndis.irql.check_at_most("NdisClOpenAddressFamily", client.culprit, PASSIVE_LEVEL)
        reg = next(
            (
                r
                for r in self.co_registrations
                if r.adapter is binding.adapter and _same_family(r.AddressFamily, family)
            ),
            None,
        )
        if reg is None:
            return NDIS_STATUS.FAILURE, None
        if not all(client.has(name) for name in CLIENT_HANDLERS):
            return NDIS_STATUS.BAD_CHARACTERISTICS, None
        af = AfBlock(reg, binding, context)
        reg.opens.append(af)
        ndis.scheduler.trace("af-open", client.name, hex(family.AddressFamily))
        result = ndis.call(reg.cm, "ProtocolCmOpenAf", _cm_context(reg), family, af)
        status, cm_context = status_and(result, "ProtocolCmOpenAf", reg.cm.culprit)
        if status == _PENDING:
            return _PENDING, None
        self._af_opened(af, status, cm_context)
        return status, (af if status == _SUCCESS else None)

    def _af_opened(self, af: AfBlock, status: NDIS_STATUS, cm_context: Any) -> None:
        if status == _SUCCESS:
            af.CallMgrAfContext = cm_context
            af.state = OpenState.OPEN
        else:
            af.state = OpenState.CLOSED
            af.registration.opens.remove(af)

    def NdisCmOpenAddressFamilyComplete(
        self, Status: int, NdisAfHandle: AfBlock, CallMgrAfContext: Any
    ) -> None:
        """The CM completes a ProtocolCmOpenAf that returned PENDING."""
        self._open_af_complete(Status, NdisAfHandle, CallMgrAfContext, "NdisCmOpenAddressFamilyComplete")

    def NdisMCmOpenAddressFamilyComplete(
        self, Status: int, NdisAfHandle: AfBlock, CallMgrAfContext: Any
    ) -> None:
        """The MCM completes a ProtocolCmOpenAf that returned PENDING."""
        self._open_af_complete(Status, NdisAfHandle, CallMgrAfContext, "NdisMCmOpenAddressFamilyComplete")

    def _open_af_complete(self, status: int, handle: AfBlock, context: Any, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        af = af_from_handle(handle, ddi, Culprit.MINIPORT)
        culprit = af.cm.culprit
        if af.state is not OpenState.OPENING:
            raise error_class_for(culprit)(
                f"{ddi} for {af!r}, which is not being opened", rule="PY-UNEXPECTED-COMPLETE"
            )
        final = _final_status(status, ddi, culprit)
        self._af_opened(af, final, context)
        ndis.call(
            af.client.protocol, "ProtocolClOpenAfComplete", final, af.ProtocolAfContext, af
        )

    def NdisClCloseAddressFamily(self, NdisAfHandle: AfBlock) -> NDIS_STATUS:
        """Close an AF open: every VC and SAP on it must be gone first (PY-CO-AF).
        -> the CM's status, or PENDING and ProtocolClCloseAfComplete later."""
        ndis: Ndis = self  # type: ignore[assignment]
        af = af_from_handle(NdisAfHandle, "NdisClCloseAddressFamily")
        client = af.client.protocol
        ndis.irql.check_at_most("NdisClCloseAddressFamily", client.culprit, PASSIVE_LEVEL)
        if af.state is not OpenState.OPEN or af.vcs or af.saps:
            raise ProtocolContractError(
                f"NdisClCloseAddressFamily({af!r}) with {len(af.vcs)} VC(s) and {len(af.saps)} "
                "SAP(s) still on it (delete VCs and deregister SAPs first), or not open",
                rule="PY-CO-AF",
                culprit=client.culprit,
                subject=af,
            )
        af.state = OpenState.CLOSING
        ndis.scheduler.trace("af-close", client.name)
        status = NDIS_STATUS(ndis.call(af.cm, "ProtocolCmCloseAf", af.CallMgrAfContext))
        if status == _PENDING:
            return _PENDING
        self._af_closed(af)
        return status

    def _af_closed(self, af: AfBlock) -> None:
        af.state = OpenState.CLOSED
        if af in af.registration.opens:
            af.registration.opens.remove(af)

    def NdisCmCloseAddressFamilyComplete(self, Status: int, NdisAfHandle: AfBlock) -> None:
        self._close_af_complete(Status, NdisAfHandle, "NdisCmCloseAddressFamilyComplete")

    def NdisMCmCloseAddressFamilyComplete(self, Status: int, NdisAfHandle: AfBlock) -> None:
        self._close_af_complete(Status, NdisAfHandle, "NdisMCmCloseAddressFamilyComplete")

    def _close_af_complete(self, status: int, handle: AfBlock, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        af = af_from_handle(handle, ddi, Culprit.MINIPORT)
        culprit = af.cm.culprit
        if af.state is not OpenState.CLOSING:
            raise error_class_for(culprit)(
                f"{ddi} for {af!r}, which is not being closed", rule="PY-UNEXPECTED-COMPLETE"
            )
        final = _final_status(status, ddi, culprit)
        self._af_closed(af)
        if af.client.protocol.has("ProtocolClCloseAfComplete"):
            ndis.call(af.client.protocol, "ProtocolClCloseAfComplete", final, af.ProtocolAfContext)

    # --- SAPs -------------------------------------------------------------------------------------
    def NdisClRegisterSap(
        self, NdisAfHandle: AfBlock, ProtocolSapContext: Any, Sap: CO_SAP
    ) -> tuple[NDIS_STATUS, SapBlock | None]:
        """-> (Status, NdisSapHandle): the client asks the CM to offer it incoming calls for
        ``Sap``. PENDING: ProtocolClRegisterSapComplete brings the outcome."""
        ndis: Ndis = self  # type: ignore[assignment]
        af = af_from_handle(NdisAfHandle, "NdisClRegisterSap")
        ndis.irql.check_at_most("NdisClRegisterSap", af.client.protocol.culprit)
        if af.state is not OpenState.OPEN:
            raise ProtocolContractError(
                f"NdisClRegisterSap on {af!r}, which is not open", rule="PY-CO-AF", subject=af
            )
        sap = SapBlock(af, Sap, ProtocolSapContext)
        af.saps.append(sap)
        result = ndis.call(af.cm, "ProtocolCmRegisterSap", af.CallMgrAfContext, Sap, sap)
        status, cm_context = status_and(result, "ProtocolCmRegisterSap", af.cm.culprit)
        if status == _PENDING:
            return _PENDING, None
        self._sap_registered(sap, status, cm_context)
        return status, (sap if status == _SUCCESS else None)

    def _sap_registered(self, sap: SapBlock, status: NDIS_STATUS, cm_context: Any) -> None:
        if status == _SUCCESS:
            sap.CallMgrSapContext = cm_context
            sap.state = OpenState.OPEN
        else:
            sap.state = OpenState.CLOSED
            sap.af.saps.remove(sap)

    def NdisCmRegisterSapComplete(
        self, Status: int, NdisSapHandle: SapBlock, CallMgrSapContext: Any
    ) -> None:
        self._register_sap_complete(Status, NdisSapHandle, CallMgrSapContext, "NdisCmRegisterSapComplete")

    def NdisMCmRegisterSapComplete(
        self, Status: int, NdisSapHandle: SapBlock, CallMgrSapContext: Any
    ) -> None:
        self._register_sap_complete(Status, NdisSapHandle, CallMgrSapContext, "NdisMCmRegisterSapComplete")

    def _register_sap_complete(self, status: int, handle: SapBlock, context: Any, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        sap = sap_from_handle(handle, ddi, Culprit.MINIPORT)
        culprit = sap.af.cm.culprit
        if sap.state is not OpenState.OPENING:
            raise error_class_for(culprit)(
                f"{ddi} for {sap!r}, which is not being registered", rule="PY-UNEXPECTED-COMPLETE"
            )
        final = _final_status(status, ddi, culprit)
        self._sap_registered(sap, final, context)
        client = sap.af.client.protocol
        if client.has("ProtocolClRegisterSapComplete"):
            ndis.call(
                client, "ProtocolClRegisterSapComplete", final, sap.ProtocolSapContext, sap.Sap, sap
            )

    def NdisClDeregisterSap(self, NdisSapHandle: SapBlock) -> NDIS_STATUS:
        """-> the CM's status, or PENDING and ProtocolClDeregisterSapComplete later."""
        ndis: Ndis = self  # type: ignore[assignment]
        sap = sap_from_handle(NdisSapHandle, "NdisClDeregisterSap")
        if sap.state is not OpenState.OPEN:
            raise ProtocolContractError(
                f"NdisClDeregisterSap({sap!r}): not registered", rule="PY-CO-SAP", subject=sap
            )
        sap.state = OpenState.CLOSING
        cm = sap.af.cm
        status = NDIS_STATUS(ndis.call(cm, "ProtocolCmDeregisterSap", sap.CallMgrSapContext))
        if status == _PENDING:
            return _PENDING
        self._sap_closed(sap)
        return status

    def _sap_closed(self, sap: SapBlock) -> None:
        sap.state = OpenState.CLOSED
        if sap in sap.af.saps:
            sap.af.saps.remove(sap)

    def NdisCmDeregisterSapComplete(self, Status: int, NdisSapHandle: SapBlock) -> None:
        self._deregister_sap_complete(Status, NdisSapHandle, "NdisCmDeregisterSapComplete")

    def NdisMCmDeregisterSapComplete(self, Status: int, NdisSapHandle: SapBlock) -> None:
        self._deregister_sap_complete(Status, NdisSapHandle, "NdisMCmDeregisterSapComplete")

    def _deregister_sap_complete(self, status: int, handle: SapBlock, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        sap = sap_from_handle(handle, ddi, Culprit.MINIPORT)
        culprit = sap.af.cm.culprit
        if sap.state is not OpenState.CLOSING:
            raise error_class_for(culprit)(
                f"{ddi} for {sap!r}, which is not being deregistered",
                rule="PY-UNEXPECTED-COMPLETE",
            )
        final = _final_status(status, ddi, culprit)
        self._sap_closed(sap)
        client = sap.af.client.protocol
        if client.has("ProtocolClDeregisterSapComplete"):
            ndis.call(client, "ProtocolClDeregisterSapComplete", final, sap.ProtocolSapContext)

    # --- creating VCs -----------------------------------------------------------------------------
    def NdisCoCreateVc(
        self, NdisBindingHandle: OpenBlock, NdisAfHandle: AfBlock | None, ProtocolVcContext: Any
    ) -> tuple[NDIS_STATUS, VirtualConnection | None]:
        """-> (Status, NdisVcHandle). The C in/out handle must be NULL on input; here it is
        simply the return value.

        A client passes its AF handle (NDIS calls the CM's ProtocolCoCreateVc, unless the CM is
        the miniport); a stand-alone CM passes the AF of the client an incoming call is for
        (NDIS calls the client's ProtocolCoCreateVc); a CM creating a VC for itself passes None.
        NDIS also calls MiniportCoCreateVc. Neither handler may pend (R28). NOT_SUPPORTED for
        a connectionless adapter; otherwise a handler's failure status."""
        ndis: Ndis = self  # type: ignore[assignment]
        binding = binding_handle(NdisBindingHandle)
        protocol = binding.protocol
        ndis.irql.check_at_most("NdisCoCreateVc", protocol.culprit)
        adapter = binding.adapter
        if not adapter.is_co:
            return NDIS_STATUS.NOT_SUPPORTED, None
        if NdisAfHandle is None:
            vc = self._new_vc(adapter, None, binding, VcCreator.CALL_MANAGER, protocol)
            vc.ProtocolVcContext = ProtocolVcContext
        else:
            af = af_from_handle(NdisAfHandle, "NdisCoCreateVc", protocol.culprit)
            if af.state is not OpenState.OPEN or af.adapter is not adapter:
                raise ProtocolContractError(
                    f"NdisCoCreateVc with {af!r}: not open, or not on {adapter!r}",
                    rule="PY-CO-AF",
                    culprit=protocol.culprit,
                    subject=af,
                )
            if binding is af.client:
                vc = self._new_vc(adapter, af, binding, VcCreator.CLIENT, protocol)
                vc.ProtocolVcContext = ProtocolVcContext
            elif binding is af.registration.cm_binding:
                vc = self._new_vc(adapter, af, af.client, VcCreator.CALL_MANAGER, protocol)
                vc.CallMgrVcContext = ProtocolVcContext
            else:
                raise ProtocolContractError(
                    f"NdisCoCreateVc: {binding!r} is neither the client nor the call manager "
                    f"of {af!r}",
                    rule="PY-CO-AF",
                    culprit=protocol.culprit,
                    subject=af,
                )
        status, context = self._create_handler(
            vc.miniport, "MiniportCoCreateVc", adapter.MiniportAdapterContext, vc
        )
        if status != _SUCCESS:
            vc.state = VcState.DELETED  # never linked anywhere: just dead
            return status, None
        vc.MiniportVcContext = context
        af = vc.af
        if af is not None and vc.creator is VcCreator.CLIENT:
            if af.registration.is_mcm:
                vc.CallMgrVcContext = context
            else:
                status, context = self._create_handler(
                    af.cm, "ProtocolCoCreateVc", af.CallMgrAfContext, vc
                )
                vc.CallMgrVcContext = context
        elif af is not None:
            status, context = self._create_handler(
                af.client.protocol, "ProtocolCoCreateVc", af.ProtocolAfContext, vc
            )
            vc.ProtocolVcContext = context
        if status != _SUCCESS:
            self._miniport_delete(vc)
            vc.state = VcState.DELETED
            return status, None
        self._link(vc)
        return _SUCCESS, vc

    def NdisMCmCreateVc(
        self, MiniportAdapterHandle: MiniportBlock, NdisAfHandle: AfBlock, MiniportVcContext: Any
    ) -> tuple[NDIS_STATUS, VirtualConnection | None]:
        """-> (Status, NdisVcHandle): an MCM creates a VC for an incoming call on ``NdisAfHandle``
        (NDIS calls the client's ProtocolCoCreateVc, which may not pend: R28)."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        ndis.irql.check_at_most("NdisMCmCreateVc", Culprit.MINIPORT)
        af = af_from_handle(NdisAfHandle, "NdisMCmCreateVc", Culprit.MINIPORT)
        if af.adapter is not adapter or not af.registration.is_mcm or af.state is not OpenState.OPEN:
            raise MiniportContractError(
                f"NdisMCmCreateVc with {af!r}: not an open AF of this MCM", rule="PY-CO-AF"
            )
        vc = self._new_vc(adapter, af, af.client, VcCreator.MINIPORT_CM, adapter.driver)
        vc.MiniportVcContext = vc.CallMgrVcContext = MiniportVcContext
        status, context = self._create_handler(
            af.client.protocol, "ProtocolCoCreateVc", af.ProtocolAfContext, vc
        )
        if status != _SUCCESS:
            vc.state = VcState.DELETED
            return status, None
        vc.ProtocolVcContext = context
        self._link(vc)
        return _SUCCESS, vc

    def _new_vc(
        self,
        adapter: MiniportBlock,
        af: AfBlock | None,
        owner: OpenBlock,
        creator: VcCreator,
        creator_block: DriverBlock,
    ) -> VirtualConnection:
        ndis: Ndis = self  # type: ignore[assignment]
        return VirtualConnection(
            ndis, adapter, af, owner, creator, creator_block, next(self._vc_numbers)
        )

    def _create_handler(
        self, block: DriverBlock, name: str, first: Any, vc: VirtualConnection
    ) -> tuple[NDIS_STATUS, Any]:
        ndis: Ndis = self  # type: ignore[assignment]
        status, context = status_and(ndis.call(block, name, first, vc), name, block.culprit)
        if status == _PENDING:
            raise error_class_for(block.culprit)(
                f"{block.name}: {name} returned PENDING; creating a VC is synchronous",
                rule="R28",
                subject=vc,
            )
        return status, context

    def _link(self, vc: VirtualConnection) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        vc.adapter.vcs.append(vc)
        if vc.af is not None:
            vc.af.vcs.append(vc)
        ndis.scheduler.trace("vc-create", vc.index, vc.adapter.name, vc.creator.value)

    def _unlink(self, vc: VirtualConnection) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if vc.state is not VcState.DELETED:
            move(vc, VC_TRANSITIONS, "delete")
        if vc in vc.adapter.vcs:
            vc.adapter.vcs.remove(vc)
        if vc.af is not None and vc in vc.af.vcs:
            vc.af.vcs.remove(vc)
        ndis.scheduler.trace("vc-delete", vc.index, vc.adapter.name)

    # --- deleting VCs (rule 33) -------------------------------------------------------------------
    def NdisCoDeleteVc(self, NdisVcHandle: VirtualConnection) -> NDIS_STATUS:
        """-> SUCCESS (the handle is dead from now on) | NOT_ACCEPTED (the VC is active or a
        call is on it) | CLOSING (its close or deactivation is still under way). Only the
        protocol that created the VC may delete it (R33); an MCM's VC is deleted with
        NdisMCmDeleteVc."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisCoDeleteVc", Culprit.PROTOCOL)
        ndis.irql.check_at_most("NdisCoDeleteVc", vc.creator_block.culprit)
        caller = ndis.current_driver
        if vc.creator is VcCreator.MINIPORT_CM or (
            caller is not None and caller is not vc.creator_block
        ):
            culprit = caller.culprit if caller is not None else Culprit.PROTOCOL
            raise error_class_for(culprit)(
                f"NdisCoDeleteVc({vc!r}) by {caller.name if caller else 'a protocol'}: only its "
                f"creator, the {vc.creator.value} {vc.creator_block.name}, may delete it",
                rule="R33",
                subject=vc,
            )
        status = _delete_status(vc)
        if status != _SUCCESS:
            return status
        af = vc.af
        if af is not None and vc.creator is VcCreator.CLIENT and not af.registration.is_mcm:
            self._delete_handler(af.cm, "ProtocolCoDeleteVc", vc.CallMgrVcContext, vc)
        elif af is not None and vc.creator is VcCreator.CALL_MANAGER:
            self._delete_handler(
                af.client.protocol, "ProtocolCoDeleteVc", vc.ProtocolVcContext, vc
            )
        self._miniport_delete(vc)
        self._unlink(vc)
        return _SUCCESS

    def NdisMCmDeleteVc(self, NdisVcHandle: VirtualConnection) -> NDIS_STATUS:
        """The MCM deletes a VC it created with NdisMCmCreateVc; same statuses as
        NdisCoDeleteVc. NDIS calls the client's ProtocolCoDeleteVc."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisMCmDeleteVc", Culprit.MINIPORT)
        ndis.irql.check_at_most("NdisMCmDeleteVc", Culprit.MINIPORT)
        if vc.creator is not VcCreator.MINIPORT_CM:
            raise MiniportContractError(
                f"NdisMCmDeleteVc({vc!r}): the {vc.creator.value} {vc.creator_block.name} created "
                "it, so only it may delete it",
                rule="R33",
                subject=vc,
            )
        status = _delete_status(vc)
        if status != _SUCCESS:
            return status
        assert vc.af is not None
        self._delete_handler(vc.af.client.protocol, "ProtocolCoDeleteVc", vc.ProtocolVcContext, vc)
        self._unlink(vc)
        return _SUCCESS

    def _delete_handler(
        self, block: DriverBlock, name: str, context: Any, vc: VirtualConnection
    ) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        status = NDIS_STATUS(ndis.call(block, name, context))
        if status == _PENDING:
            raise error_class_for(block.culprit)(
                f"{block.name}: {name} returned PENDING; deleting a VC is synchronous",
                rule="R33",
                subject=vc,
            )

    def _miniport_delete(self, vc: VirtualConnection) -> None:
        if vc.miniport.has("MiniportCoDeleteVc"):
            self._delete_handler(vc.miniport, "MiniportCoDeleteVc", vc.MiniportVcContext, vc)


def _delete_status(vc: VirtualConnection) -> NDIS_STATUS:
    if vc.state in (VcState.CLOSING, VcState.DEACTIVATING) or vc.call is CallState.CLOSING:
        return NDIS_STATUS.CLOSING
    if vc.state not in (VcState.CREATED, VcState.DEACTIVATED) or vc.call is not CallState.IDLE:
        return NDIS_STATUS.NOT_ACCEPTED
    return _SUCCESS


def _same_family(a: CO_ADDRESS_FAMILY, b: CO_ADDRESS_FAMILY) -> bool:
    return a.AddressFamily == b.AddressFamily and a.MajorVersion == b.MajorVersion


def _cm_context(reg: CallManagerAf) -> Any:
    """CallMgrBindingContext: the CM's ProtocolBindingContext, or the MCM's adapter context."""
    return reg.adapter.MiniportAdapterContext if reg.is_mcm else reg.CallMgrBindingContext


def _final_status(status: int, ddi: str, culprit: Culprit) -> NDIS_STATUS:
    final = NDIS_STATUS(status)
    if final == _PENDING:
        raise error_class_for(culprit)(
            f"{ddi}(NDIS_STATUS_PENDING): a completion carries the final status",
            rule="PY-UNEXPECTED-COMPLETE",
        )
    return final


__all__ = [
    "CLIENT_HANDLERS",
    "CM_HANDLERS",
    "CM_PROTOCOL_HANDLERS",
    "CoDdis",
    "vc_can_indicate",
    "vc_from_handle",
    "vc_send_status",
]

_unused = DISPATCH_LEVEL
