"""CoNDIS address families and SAPs: call managers register them, clients open them.

Theory of operation
-------------------
A call manager registers an address family (AF) on an adapter: a stand-alone CM protocol on its
binding (``NdisCmRegisterAddressFamily[Ex]``) or a miniport call manager for itself
(``NdisMCmRegisterAddressFamily[Ex]``). NDIS then offers the AF to every connection-oriented
client bound to the adapter (``ProtocolCoAfRegisterNotify``), and later to each client that binds
afterwards. The offer runs as a PASSIVE_LEVEL work item (as NDIS does it from a worker thread),
so a client always holds its NdisBindingHandle before it is asked to open an AF.

A client opens the AF (``NdisClOpenAddressFamily[Ex]`` -> CM's ``ProtocolCmOpenAf``), gets an
``NdisAfHandle`` (one per open), registers SAPs on it for incoming calls
(``NdisClRegisterSap`` -> ``ProtocolCmRegisterSap``) and finally closes it, after deleting its
VCs and deregistering its SAPs (PY-CO-AF otherwise). Each CM handler may pend; the CM then
finishes with the ``Ndis(M)Cm...Complete`` DDI and NDIS calls the client's
``ProtocolCl...Complete``. A non-PENDING answer finishes the request on return and no
completion handler runs.

The characteristics structures of the NDIS 5 DDIs are accepted and ignored: pyndis finds every
handler by name on the driver object, once, at registration. Registering an AF checks that the
CM has the CM handlers (BAD_CHARACTERISTICS otherwise); opening one checks the client's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import PASSIVE_LEVEL
from ..errors import ProtocolContractError, error_class_for
from ..scheduler import PRIORITY_PASSIVE
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_handle
from .cocall import ddi_culprit, final_status
from .covc import (
    CO_ADDRESS_FAMILY,
    CO_SAP,
    AfBlock,
    CallManagerAf,
    OpenState,
    SapBlock,
    af_from_handle,
    sap_from_handle,
    status_and,
)
from .drivers import DriverBlock, check_version

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


class CoAfDdis:
    """AF registration, opening and closing, SAPs (mixed into ``Ndis`` through ``CoDdis``)."""

    # --- offering AFs to clients ------------------------------------------------------------------
    def _co_binding_opened(self, binding: OpenBlock) -> None:
        """A binding was opened: offer it the AFs already registered on its adapter.

        NDIS does this from a worker thread, after the open: the protocol must hold its
        NdisBindingHandle before it can open an AF, so the offer is a PASSIVE work item."""
        ndis: Ndis = self  # type: ignore[assignment]
        for reg in ndis.co_registrations:
            if reg.adapter is binding.adapter:
                self._schedule_af_notify(reg, binding)

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
        if reg not in ndis.co_registrations or binding not in reg.adapter.bindings:
            return  # deregistered or unbound meanwhile
        ndis.scheduler.trace(
            "af-notify", binding.protocol.name, hex(reg.AddressFamily.AddressFamily)
        )
        ndis.call(
            binding.protocol,
            "ProtocolCoAfRegisterNotify",
            binding.ProtocolBindingContext,
            reg.AddressFamily,
        )

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
        for reg in ndis.co_registrations:
            if reg.adapter is adapter and _same_family(reg.AddressFamily, family):
                return NDIS_STATUS.FAILURE
        context = cm_binding.ProtocolBindingContext if cm_binding is not None else None
        reg = CallManagerAf(adapter, family, cm, cm_binding, context)
        ndis.co_registrations.append(reg)
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
                for r in ndis.co_registrations
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
        self._open_af_complete(
            Status, NdisAfHandle, CallMgrAfContext, "NdisCmOpenAddressFamilyComplete"
        )

    def NdisMCmOpenAddressFamilyComplete(
        self, Status: int, NdisAfHandle: AfBlock, CallMgrAfContext: Any
    ) -> None:
        """The MCM completes a ProtocolCmOpenAf that returned PENDING."""
        self._open_af_complete(
            Status, NdisAfHandle, CallMgrAfContext, "NdisMCmOpenAddressFamilyComplete"
        )

    def _open_af_complete(self, status: int, handle: AfBlock, context: Any, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        af = af_from_handle(handle, ddi, ddi_culprit(ddi))
        culprit = af.cm.culprit
        if af.state is not OpenState.OPENING:
            raise error_class_for(culprit)(
                f"{ddi} for {af!r}, which is not being opened", rule="PY-UNEXPECTED-COMPLETE"
            )
        final = final_status(status, ddi, culprit)
        self._af_opened(af, final, context)
        ndis.call(af.client.protocol, "ProtocolClOpenAfComplete", final, af.ProtocolAfContext, af)

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
        af = af_from_handle(handle, ddi, ddi_culprit(ddi))
        culprit = af.cm.culprit
        if af.state is not OpenState.CLOSING:
            raise error_class_for(culprit)(
                f"{ddi} for {af!r}, which is not being closed", rule="PY-UNEXPECTED-COMPLETE"
            )
        final = final_status(status, ddi, culprit)
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
        self._register_sap_complete(
            Status, NdisSapHandle, CallMgrSapContext, "NdisCmRegisterSapComplete"
        )

    def NdisMCmRegisterSapComplete(
        self, Status: int, NdisSapHandle: SapBlock, CallMgrSapContext: Any
    ) -> None:
        self._register_sap_complete(
            Status, NdisSapHandle, CallMgrSapContext, "NdisMCmRegisterSapComplete"
        )

    def _register_sap_complete(self, status: int, handle: SapBlock, context: Any, ddi: str) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        sap = sap_from_handle(handle, ddi, ddi_culprit(ddi))
        culprit = sap.af.cm.culprit
        if sap.state is not OpenState.OPENING:
            raise error_class_for(culprit)(
                f"{ddi} for {sap!r}, which is not being registered", rule="PY-UNEXPECTED-COMPLETE"
            )
        final = final_status(status, ddi, culprit)
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
        sap = sap_from_handle(handle, ddi, ddi_culprit(ddi))
        culprit = sap.af.cm.culprit
        if sap.state is not OpenState.CLOSING:
            raise error_class_for(culprit)(
                f"{ddi} for {sap!r}, which is not being deregistered",
                rule="PY-UNEXPECTED-COMPLETE",
            )
        final = final_status(status, ddi, culprit)
        self._sap_closed(sap)
        client = sap.af.client.protocol
        if client.has("ProtocolClDeregisterSapComplete"):
            ndis.call(client, "ProtocolClDeregisterSapComplete", final, sap.ProtocolSapContext)


def _same_family(a: CO_ADDRESS_FAMILY, b: CO_ADDRESS_FAMILY) -> bool:
    return a.AddressFamily == b.AddressFamily and a.MajorVersion == b.MajorVersion


def _cm_context(reg: CallManagerAf) -> Any:
    """CallMgrBindingContext: the CM's ProtocolBindingContext, or the MCM's adapter context."""
    return reg.adapter.MiniportAdapterContext if reg.is_mcm else reg.CallMgrBindingContext


__all__ = ["CLIENT_HANDLERS", "CM_HANDLERS", "CM_PROTOCOL_HANDLERS", "CoAfDdis"]
