"""CoNDIS: address families, call managers, SAPs, and the life of a virtual connection.

Theory of operation
-------------------
Connection-oriented NDIS carries data on *virtual connections* (VCs) instead of a binding. A
call manager (CM) registers an address family (AF) on an adapter: a stand-alone CM protocol with
``NdisCmRegisterAddressFamily`` on its binding, or the miniport itself (an MCM) with
``NdisMCmRegisterAddressFamily``. NDIS offers it (``ProtocolCoAfRegisterNotify``) to every
connection-oriented client bound to that adapter, now and when a client binds later. A client
opens the AF (``NdisClOpenAddressFamily`` -> ``ProtocolCmOpenAf``), may register SAPs for
incoming calls, creates VCs and makes calls on them. This module creates and deletes VCs and
holds the kernel hooks; the objects behind the handles and the verdict on sends are in
:mod:`.covc`, the AF and SAP DDIs in :mod:`.coaf`, activation and calls in :mod:`.cocall`, data
in :mod:`.cosend`. This module is version-neutral: NDIS 5.x and NDIS 6 CoNDIS share it (only the
``...Ex`` AF DDIs differ).

Grammar of a VC (every arrow a DDI or handler; rules 28-35)::

    client:  NdisCoCreateVc -> [CM ProtocolCoCreateVc] + MiniportCoCreateVc      (never pend)
             -> NdisClMakeCall -> CM ProtocolCmMakeCall -> Ndis(M)CmActivateVc
             -> [MiniportCoActivateVc -> NdisMCoActivateVcComplete] -> Ndis(M)CmMakeCallComplete
             -> ProtocolClMakeCallComplete(SUCCESS) -> (sends, receives)*
             -> NdisClCloseCall -> (outstanding sends complete) -> CM ProtocolCmCloseCall
             -> Ndis(M)CmDeactivateVc -> MiniportCoDeactivateVc (completes pending sends first)
             -> Ndis(M)CmCloseCallComplete -> ProtocolClCloseCallComplete -> NdisCoDeleteVc
    CM:      NdisCoCreateVc on the client's AF, or NdisMCmCreateVc (-> client ProtocolCoCreateVc)
             -> Ndis(M)CmActivateVc
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

from ..errors import Culprit, MiniportContractError, ProtocolContractError, error_class_for
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_handle
from .coaf import CoAfDdis
from .cocall import CoCallDdis
from .covc import (
    AfBlock,
    CallManagerAf,
    OpenState,
    VcCreator,
    VirtualConnection,
    af_from_handle,
    status_and,
    vc_can_indicate,
    vc_from_handle,
    vc_send_status,
)
from .drivers import DriverBlock
from .states import VC_TRANSITIONS, CallState, VcState, move, move_call

if TYPE_CHECKING:
    from .kernel import Ndis

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING

#: VC states a (de)activation pended in: a forced teardown waits for the miniport first.
_CHANGING = (VcState.ACTIVATING, VcState.REACTIVATING, VcState.DEACTIVATING)
#: How a forced teardown walks a call back to IDLE through the call table.
_CALL_UNWIND: dict[CallState, tuple[str, ...]] = {
    CallState.OUTGOING: ("make_call_failed",),
    CallState.INCOMING: ("rejected",),
    CallState.ACCEPTED: ("incoming_close", "close", "closed"),
    CallState.CONNECTED: ("close", "closed"),
    CallState.CLOSE_INDICATED: ("close", "closed"),
    CallState.CLOSING: ("closed",),
}


class CoDdis(CoAfDdis, CoCallDdis):
    """VC creation and deletion, kernel hooks; AFs/SAPs (``coaf``), calls (``cocall``)."""

    # --- kernel hooks -----------------------------------------------------------------------------
    def _init_co(self) -> None:
        """Per-kernel CoNDIS state (called from Ndis.__init__)."""
        self.co_registrations: list[CallManagerAf] = []
        self._vc_numbers = itertools.count(1)

    def _co_lost(self) -> list[str]:
        """Descriptions of CoNDIS sends not yet completed and receives never returned."""
        ndis: Ndis = self  # type: ignore[assignment]
        problems = []
        held = ndis.co_held()
        for adapter in ndis.adapters.values():
            for vc in adapter.vcs:
                if vc.counters.in_flight:
                    problems.append(f"{vc!r}: {vc.counters.in_flight} send(s) not completed")
        if held:
            problems.append(f"{held} packet(s) received on VCs kept and never returned")
        return problems

    def co_accounting(self) -> dict[str, Any]:
        """Per-VC counters of every live VC (``accounting()`` covers pools and bindings)."""
        ndis: Ndis = self  # type: ignore[assignment]
        return {
            repr(vc): vc.counters.as_dict()
            for adapter in ndis.adapters.values()
            for vc in adapter.vcs
        }

    def _co_teardown_adapter(self, adapter: MiniportBlock) -> None:
        """Before an adapter halts (its bindings are already closed): whatever VCs, SAPs and
        AF opens the drivers left are torn down by NDIS: each leftover VC (the creator's fault)
        and AF open (the client's) is flagged (PY-CO-LEFTOVER); the VC is deactivated at the
        miniport (which completes its pending sends first) and deleted there; the AF
        registrations and opens are dropped."""
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
                ndis.flag(
                    error_class_for(af.client.protocol.culprit)(
                        f"{af!r} is still open when {adapter!r} halts: a client closes its "
                        "address family (NdisClCloseAddressFamily) before it unbinds",
                        rule="PY-CO-LEFTOVER",
                        subject=af,
                    )
                )
                for sap in af.saps:
                    sap.state = OpenState.CLOSED
                af.saps.clear()
                af.state = OpenState.CLOSED
            reg.opens.clear()
            self.co_registrations.remove(reg)
            ndis.scheduler.trace(
                "af-deregistered", adapter.name, hex(reg.AddressFamily.AddressFamily)
            )

    def _force_delete(self, vc: VirtualConnection) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if vc.state in _CHANGING:
            ndis.wait_until(
                lambda: vc.state not in _CHANGING,
                f"(de)activation of {vc!r} to complete",
                Culprit.MINIPORT,
            )
        for event in _CALL_UNWIND.get(vc.call, ()):
            move_call(vc, event)
        if vc.state in (VcState.ACTIVE, VcState.CLOSING):
            move(vc, VC_TRANSITIONS, "deactivate")
            if vc.miniport.has("MiniportCoDeactivateVc"):
                status = NDIS_STATUS(
                    ndis.call(vc.miniport, "MiniportCoDeactivateVc", vc.MiniportVcContext)
                )
                if status == _PENDING:
                    vc.deactivation_reply = "ndis"
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
            move(vc, VC_TRANSITIONS, "delete")  # never linked anywhere: just dead
            return status, None
        vc.MiniportVcContext = context
        peer = vc.af
        if peer is not None and vc.creator is VcCreator.CLIENT:
            if peer.registration.is_mcm:
                vc.CallMgrVcContext = context
            else:
                status, context = self._create_handler(
                    peer.cm, "ProtocolCoCreateVc", peer.CallMgrAfContext, vc
                )
                vc.CallMgrVcContext = context
        elif peer is not None:
            status, context = self._create_handler(
                peer.client.protocol, "ProtocolCoCreateVc", peer.ProtocolAfContext, vc
            )
            vc.ProtocolVcContext = context
        if status != _SUCCESS:
            self._miniport_delete(vc)
            move(vc, VC_TRANSITIONS, "delete")
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
        if (
            af.adapter is not adapter
            or not af.registration.is_mcm
            or af.state is not OpenState.OPEN
        ):
            raise MiniportContractError(
                f"NdisMCmCreateVc with {af!r}: not an open AF of this MCM", rule="PY-CO-AF"
            )
        vc = self._new_vc(adapter, af, af.client, VcCreator.MINIPORT_CM, adapter.driver)
        vc.MiniportVcContext = vc.CallMgrVcContext = MiniportVcContext
        status, context = self._create_handler(
            af.client.protocol, "ProtocolCoCreateVc", af.ProtocolAfContext, vc
        )
        if status != _SUCCESS:
            move(vc, VC_TRANSITIONS, "delete")
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
        return VirtualConnection(adapter, af, owner, creator, creator_block, next(self._vc_numbers))

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
            self._delete_handler(af.client.protocol, "ProtocolCoDeleteVc", vc.ProtocolVcContext, vc)
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


__all__ = [
    "CoDdis",
    "VirtualConnection",
    "vc_can_indicate",
    "vc_from_handle",
    "vc_send_status",
]
