"""The integrated call manager of the ATM-like NIC (:mod:`.atmnic5`): an MCM.

Theory of operation
-------------------
A miniport call manager supplies the call-manager handlers (``ProtocolCmOpenAf``,
``ProtocolCmMakeCall``...) beside its miniport handlers and reaches NDIS through the ``NdisMCm``
DDIs. Here :class:`McmHandlers` is the mixin that gives the NIC driver those handlers, and
:class:`McmCallControl` plugs the shared call control of :mod:`.atmsig` into the NIC: activation
is the NIC mapping the VCI and telling NDIS (``NdisMCmActivateVc``: NDIS never calls
MiniportCoActivateVc for an MCM's calls), deactivation waits until the VC's queued frames are on
the link and completed (rule 32) before ``NdisMCmDeactivateVc``, and signalling frames travel on
VCI 5 through the NIC's own transmit scheduler, behind any data already queued.

``cm_pend`` makes ProtocolCmOpenAf and ProtocolCmRegisterSap answer PENDING and complete from a
DPC (``NdisMCmOpenAddressFamilyComplete`` / ``NdisMCmRegisterSapComplete``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..library.covc import CO_CALL_PARAMETERS, CO_SAP
from ..status import NDIS_STATUS
from .atmsig import CallControl, Done

if TYPE_CHECKING:
    from ..library.covc import AfBlock, SapBlock
    from ..library.kernel import Ndis
    from .atmnic5 import AtmAdapter, AtmVc

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING


class AtmAf:
    """The MCM's CallMgrAfContext."""

    __slots__ = ("handle",)

    def __init__(self, handle: AfBlock) -> None:
        self.handle = handle


class AtmSap:
    """The MCM's CallMgrSapContext."""

    __slots__ = ("af", "handle", "selector")

    def __init__(self, af: AtmAf, selector: bytes, handle: SapBlock) -> None:
        self.af = af
        self.selector = selector
        self.handle = handle


class McmCallControl(CallControl):
    """The NIC's integrated call manager: the atmsig call control over the NdisMCm DDIs."""

    def __init__(self, adapter: AtmAdapter, vci_range: tuple[int, ...]) -> None:
        super().__init__((int(vci_range[0]), int(vci_range[1])))
        self.adapter = adapter
        self.ndis = adapter.ndis

    def send_signal(self, message: bytes) -> None:
        self.signals_sent += 1
        self.adapter.send_signal(message)

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self.ndis.scheduler.queue_dpc(fn, *args, label="atm-mcm")

    def activate(self, vc: Any, params: CO_CALL_PARAMETERS, done: Done) -> None:
        status = self.adapter.hw_activate(vc, params)
        if status == _SUCCESS:
            self.ndis.NdisMCmActivateVc(vc.handle, params)
        done(status)

    def deactivate(self, vc: Any, done: Done) -> None:
        def drained() -> None:
            self.adapter.hw_deactivate(vc)
            self.ndis.NdisMCmDeactivateVc(vc.handle)
            done(_SUCCESS)

        self.adapter.when_drained(vc, drained)

    def make_call_complete(self, vc: Any, status: NDIS_STATUS, params: CO_CALL_PARAMETERS) -> None:
        self.ndis.NdisMCmMakeCallComplete(status, vc.handle, None, None, params)

    def close_call_complete(self, vc: Any) -> None:
        self.ndis.NdisMCmCloseCallComplete(_SUCCESS, vc.handle, None)

    def create_incoming_vc(self, af: Any) -> tuple[NDIS_STATUS, Any]:
        vc = self.adapter.new_vc()
        status, handle = self.ndis.NdisMCmCreateVc(self.adapter.handle, af.handle, vc)
        vc.handle = handle
        if status != _SUCCESS:
            self.adapter.vcs.remove(vc)
        return status, vc

    def delete_vc(self, vc: Any) -> None:
        self.ndis.NdisMCmDeleteVc(vc.handle)
        if vc in self.adapter.vcs:
            self.adapter.vcs.remove(vc)

    def dispatch_incoming(self, sap: Any, vc: Any, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        return self.ndis.NdisMCmDispatchIncomingCall(sap.handle, vc.handle, params)

    def dispatch_connected(self, vc: Any) -> None:
        self.ndis.NdisMCmDispatchCallConnected(vc.handle)

    def dispatch_incoming_close(self, vc: Any) -> None:
        self.ndis.NdisMCmDispatchIncomingCloseCall(_SUCCESS, vc.handle, None, 0)

    def find_sap(self, selector: bytes) -> tuple[Any, Any] | None:
        sap = self.adapter.saps.get(selector)
        return (sap.af, sap) if sap is not None else None


class McmHandlers:
    """The call-manager handlers of the NIC driver (mixed into :class:`.atmnic5.AtmNic5`)."""

    ndis: Ndis
    adapters: dict[str, AtmAdapter]

    # --- ProtocolCm* handlers -----------------------------
    def ProtocolCmOpenAf(
        self, CallMgrBindingContext: AtmAdapter, AddressFamily: Any, NdisAfHandle: AfBlock
    ) -> tuple[NDIS_STATUS, AtmAf | None]:
        nic = CallMgrBindingContext
        af = AtmAf(NdisAfHandle)
        if nic.cm_pend:
            ndis = self.ndis
            ndis.scheduler.queue_dpc(
                ndis.NdisMCmOpenAddressFamilyComplete, _SUCCESS, NdisAfHandle, af, label="atm-af"
            )
            return _PENDING, None
        return _SUCCESS, af

    def ProtocolCmCloseAf(self, CallMgrAfContext: AtmAf) -> NDIS_STATUS:
        return _SUCCESS

    def ProtocolCmRegisterSap(
        self, CallMgrAfContext: AtmAf, Sap: CO_SAP, NdisSapHandle: SapBlock
    ) -> tuple[NDIS_STATUS, AtmSap | None]:
        """Register the SAP's selector -> (SUCCESS, ctx) | (SAP_IN_USE, None) | PENDING."""
        nic = self._nic_of(NdisSapHandle)
        selector = bytes(Sap.Sap)
        if selector in nic.saps:
            return NDIS_STATUS.SAP_IN_USE, None
        sap = AtmSap(CallMgrAfContext, selector, NdisSapHandle)
        nic.saps[selector] = sap
        if nic.cm_pend:
            ndis = self.ndis
            ndis.scheduler.queue_dpc(
                ndis.NdisMCmRegisterSapComplete, _SUCCESS, NdisSapHandle, sap, label="atm-sap"
            )
            return _PENDING, None
        return _SUCCESS, sap

    def ProtocolCmDeregisterSap(self, CallMgrSapContext: AtmSap) -> NDIS_STATUS:
        nic = self._nic_of(CallMgrSapContext.handle)
        nic.saps.pop(CallMgrSapContext.selector, None)
        return _SUCCESS

    def ProtocolCmMakeCall(
        self, CallMgrVcContext: AtmVc, CallParameters: CO_CALL_PARAMETERS, NdisPartyHandle: Any
    ) -> tuple[NDIS_STATUS, Any]:
        cm = CallMgrVcContext.adapter.cm
        assert cm is not None
        return cm.make_call(CallMgrVcContext, CallParameters), None

    def ProtocolCmCloseCall(
        self, CallMgrVcContext: AtmVc, CallMgrPartyContext: Any, CloseData: Any, Size: int
    ) -> NDIS_STATUS:
        cm = CallMgrVcContext.adapter.cm
        assert cm is not None
        return cm.close_call(CallMgrVcContext)

    def ProtocolCmIncomingCallComplete(
        self, Status: int, CallMgrVcContext: AtmVc, CallParameters: CO_CALL_PARAMETERS
    ) -> None:
        cm = CallMgrVcContext.adapter.cm
        assert cm is not None
        cm.incoming_call_complete(CallMgrVcContext, NDIS_STATUS(Status))

    def _nic_of(self, sap: SapBlock) -> AtmAdapter:
        return self.adapters[sap.af.adapter.name]


__all__ = ["AtmAf", "AtmSap", "McmCallControl", "McmHandlers"]
