"""ATM-like signalling for the sample call managers: call parameters, messages, call control.

Theory of operation
-------------------
Two sample call managers serve the ATM-like address family: the integrated one of the NIC
(:mod:`.atmnic5`, an MCM) and the stand-alone CM protocol (:mod:`.cmproto5`). They speak the same
small signalling protocol on VCI 5 of the link (a much simplified Q.2931), and they share the
call-control logic here; only how they reach NDIS differs (``NdisMCm...`` vs ``NdisCm...``), which
:class:`CallControl` leaves to its subclasses.

Call parameters. A client builds them with :func:`atm_call_parameters`:
``MediaParameters.MediaSpecific.Parameters`` is an :class:`ATM_VC_PARAMETERS` (the VCI, chosen by
the CM for a switched call), ``CallMgrParameters.CallMgrSpecific.Parameters`` the called SAP
(bytes). ``Flags`` with PERMANENT_VC asks for a permanent VC: no signalling, the given VCI is
activated at once on this side (the peer does the same for its side).

Messages (one per frame on VCI 5, ``>BII``: type, VCI, value, then the SAP for SETUP)::

    caller                                   callee
    SETUP(vci, media flags, sap)  ------->   SAP found: create VC, activate, dispatch incoming
                                  <-------   CONNECT(vci)          (client accepted)
    activate, MakeCallComplete(SUCCESS)      CallConnected
                                  <-------   RELEASE_COMPLETE(vci, cause)   (refused)
    MakeCallComplete(failure)
    close: drain, deactivate,
    RELEASE(vci)                  ------->   incoming close -> client closes -> drain,
                                             deactivate, RELEASE_COMPLETE(vci), delete the VC

A VCI names the call on the link in both directions. Each CM allocates VCIs for its outgoing
calls from its own range (``vci_range``), so two CMs on one link never pick the same one.

Call control runs as continuations: each step that may pend (activation, deactivation, the
client's answer) takes a callback, and every signalling message is handled in its own DPC.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..constants import (
    CO_ADDRESS_FAMILY_Q2931,
    INDICATE_END_OF_TX,
    PERMANENT_VC,
    RECEIVE_VC,
    TRANSMIT_VC,
)
from ..library.covc import (
    CO_ADDRESS_FAMILY,
    CO_CALL_MANAGER_PARAMETERS,
    CO_CALL_PARAMETERS,
    CO_MEDIA_PARAMETERS,
    CO_SAP,
    CO_SPECIFIC_PARAMETERS,
)
from ..status import NDIS_STATUS

#: The VCI the signalling channel uses on every link.
SIGNALLING_VCI = 5
#: The address family both sample CMs register: Q.2931, UNI 3.1.
ATM_ADDRESS_FAMILY = CO_ADDRESS_FAMILY(CO_ADDRESS_FAMILY_Q2931, 3, 1)
#: CO_SPECIFIC_PARAMETERS.ParamType of the media-specific ATM parameters (atm.h value).
ATM_MEDIA_SPECIFIC = 1
#: CO_SPECIFIC_PARAMETERS.ParamType of the called SAP in CallMgrSpecific (model).
ATM_CALLED_SAP = 2
#: CO_SAP.SapType of the samples' SAPs (a one-byte-or-more selector).
SAP_TYPE_SELECTOR = 1

SETUP, CONNECT, RELEASE, RELEASE_COMPLETE = 1, 2, 3, 4
_MESSAGE = struct.Struct(">BII")
#: RELEASE_COMPLETE causes (Q.2931 cause values)
CAUSE_NORMAL = 16
CAUSE_REJECTED = 21
CAUSE_NO_SAP = 88


@dataclass(slots=True)
class ATM_VC_PARAMETERS:
    """The media-specific part of an ATM call (a model of ATM_MEDIA_PARAMETERS)."""

    Vpi: int = 0
    Vci: int = 0
    AALType: int = 5
    MaxSduSize: int = 9180


def atm_call_parameters(
    sap: bytes = b"",
    vci: int = 0,
    *,
    permanent: bool = False,
    end_of_tx: bool = False,
    max_sdu: int = 9180,
) -> CO_CALL_PARAMETERS:
    """CO_CALL_PARAMETERS for an ATM call to ``sap`` (or a permanent VC on ``vci``)."""
    flags = TRANSMIT_VC | RECEIVE_VC | (INDICATE_END_OF_TX if end_of_tx else 0)
    media = CO_MEDIA_PARAMETERS(
        Flags=int(flags),
        ReceiveSizeHint=max_sdu,
        MediaSpecific=CO_SPECIFIC_PARAMETERS(
            ATM_MEDIA_SPECIFIC, 16, ATM_VC_PARAMETERS(0, vci, 5, max_sdu)
        ),
    )
    cm = CO_CALL_MANAGER_PARAMETERS(
        CallMgrSpecific=CO_SPECIFIC_PARAMETERS(ATM_CALLED_SAP, len(sap), bytes(sap))
    )
    return CO_CALL_PARAMETERS(
        Flags=int(PERMANENT_VC) if permanent else 0, CallMgrParameters=cm, MediaParameters=media
    )


def atm_sap(selector: bytes) -> CO_SAP:
    """The CO_SAP a client registers to receive calls for ``selector``."""
    return CO_SAP(SAP_TYPE_SELECTOR, len(selector), bytes(selector))


def vc_parameters(params: CO_CALL_PARAMETERS | None) -> ATM_VC_PARAMETERS:
    """The ATM_VC_PARAMETERS inside call parameters (created if missing)."""
    if params is None or params.MediaParameters is None:
        raise ValueError("ATM call parameters need MediaParameters")
    specific = params.MediaParameters.MediaSpecific
    if not isinstance(specific.Parameters, ATM_VC_PARAMETERS):
        specific.ParamType = ATM_MEDIA_SPECIFIC
        specific.Parameters = ATM_VC_PARAMETERS()
    return specific.Parameters


def called_sap(params: CO_CALL_PARAMETERS) -> bytes:
    cm = params.CallMgrParameters
    if cm is None or cm.CallMgrSpecific.Parameters is None:
        return b""
    return bytes(cm.CallMgrSpecific.Parameters)


def encode(kind: int, vci: int, value: int = 0, sap: bytes = b"") -> bytes:
    return _MESSAGE.pack(kind, vci, value) + sap


def decode(message: bytes) -> tuple[int, int, int, bytes]:
    kind, vci, value = _MESSAGE.unpack_from(message)
    return kind, vci, value, bytes(message[_MESSAGE.size :])


class Call:
    """One call a CM handles: its VC context, VCI and progress."""

    __slots__ = ("created_by_cm", "params", "phase", "remote_release", "vc", "vci")

    def __init__(self, vc: Any, vci: int, params: CO_CALL_PARAMETERS, created_by_cm: bool) -> None:
        #: the CM's per-VC context (its ``handle`` slot holds the NdisVcHandle)
        self.vc = vc
        self.vci = vci
        self.params = params
        self.created_by_cm = created_by_cm
        #: calling, offered, connected, closing
        self.phase = "calling"
        #: the peer released it: answer RELEASE_COMPLETE instead of sending RELEASE
        self.remote_release = False

    def __repr__(self) -> str:
        return f"<call vci={self.vci} {self.phase}>"


Done = Callable[[NDIS_STATUS], None]


class CallControl:
    """Signalling and call state shared by the sample CMs; subclasses reach NDIS.

    Subclasses implement: ``send_signal(bytes)``, ``defer(fn, *args)`` (run in a DPC),
    ``activate(vc, params, done)``, ``deactivate(vc, done)`` (the VC's sends drained first),
    ``make_call_complete(vc, status, params)``, ``close_call_complete(vc)``,
    ``create_incoming_vc(af) -> (status, vc)``, ``delete_vc(vc)``,
    ``dispatch_incoming(sap, vc, params) -> status``, ``dispatch_connected(vc)``,
    ``dispatch_incoming_close(vc)``, ``find_sap(selector) -> (af, sap) | None``.
    Per-VC contexts need ``handle`` and ``call`` attributes.
    """

    def __init__(self, vci_range: tuple[int, int]) -> None:
        self.calls: dict[int, Call] = {}
        self.vci_low, self.vci_high = vci_range
        self._next_vci = self.vci_low
        self.signals_sent = 0
        self.signals_received = 0

    # --- to be supplied -----------------------------------------------------------------------
    def send_signal(self, message: bytes) -> None:
        raise NotImplementedError

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError

    def activate(self, vc: Any, params: CO_CALL_PARAMETERS, done: Done) -> None:
        raise NotImplementedError

    def deactivate(self, vc: Any, done: Done) -> None:
        raise NotImplementedError

    def make_call_complete(self, vc: Any, status: NDIS_STATUS, params: CO_CALL_PARAMETERS) -> None:
        raise NotImplementedError

    def close_call_complete(self, vc: Any) -> None:
        raise NotImplementedError

    def create_incoming_vc(self, af: Any) -> tuple[NDIS_STATUS, Any]:
        raise NotImplementedError

    def delete_vc(self, vc: Any) -> None:
        raise NotImplementedError

    def dispatch_incoming(self, sap: Any, vc: Any, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        raise NotImplementedError

    def dispatch_connected(self, vc: Any) -> None:
        raise NotImplementedError

    def dispatch_incoming_close(self, vc: Any) -> None:
        raise NotImplementedError

    def find_sap(self, selector: bytes) -> tuple[Any, Any] | None:
        raise NotImplementedError

    # --- outgoing calls -----------------------------------------------------------------------
    def allocate_vci(self) -> int:
        for _ in range(self.vci_high - self.vci_low + 1):
            vci = self._next_vci
            self._next_vci = vci + 1 if vci < self.vci_high else self.vci_low
            if vci not in self.calls and vci != SIGNALLING_VCI:
                return vci
        raise RuntimeError("no free VCI")

    def make_call(self, vc: Any, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        """ProtocolCmMakeCall: always PENDING; the outcome comes from a DPC or the network."""
        atm = vc_parameters(params)
        permanent = bool(params.Flags & PERMANENT_VC)
        if not permanent:
            atm.Vci = self.allocate_vci()
        elif atm.Vci in self.calls or atm.Vci == SIGNALLING_VCI:
            self.defer(self.make_call_complete, vc, NDIS_STATUS.INVALID_ADDRESS, params)
            return NDIS_STATUS.PENDING
        call = Call(vc, atm.Vci, params, created_by_cm=False)
        vc.call = call
        self.calls[call.vci] = call
        if permanent:
            self.defer(self._activate_outgoing, call)
        else:
            flags = params.MediaParameters.Flags if params.MediaParameters else 0
            self.send_signal(encode(SETUP, call.vci, flags, called_sap(params)))
        return NDIS_STATUS.PENDING

    def _activate_outgoing(self, call: Call) -> None:
        def activated(status: NDIS_STATUS) -> None:
            if status == NDIS_STATUS.SUCCESS:
                call.phase = "connected"
            else:
                self._forget(call)
                if not (call.params.Flags & PERMANENT_VC):
                    self.send_signal(encode(RELEASE, call.vci, CAUSE_NORMAL))
            self.make_call_complete(call.vc, status, call.params)

        self.activate(call.vc, call.params, activated)

    # --- closing ------------------------------------------------------------------------------
    def close_call(self, vc: Any) -> NDIS_STATUS:
        """ProtocolCmCloseCall: PENDING; drain and deactivate, signal, complete (in a DPC)."""
        call: Call = vc.call
        call.phase = "closing"
        self.defer(self._close, call)
        return NDIS_STATUS.PENDING

    def _close(self, call: Call) -> None:
        def deactivated(status: NDIS_STATUS) -> None:
            self._forget(call)
            if not (call.params.Flags & PERMANENT_VC):
                kind = RELEASE_COMPLETE if call.remote_release else RELEASE
                self.send_signal(encode(kind, call.vci, CAUSE_NORMAL))
            self.close_call_complete(call.vc)
            if call.created_by_cm:
                self.delete_vc(call.vc)

        self.deactivate(call.vc, deactivated)

    def _forget(self, call: Call) -> None:
        if self.calls.get(call.vci) is call:
            del self.calls[call.vci]

    # --- incoming calls -----------------------------------------------------------------------
    def incoming_call_complete(self, vc: Any, status: NDIS_STATUS) -> None:
        """ProtocolCmIncomingCallComplete (or the CM's own call after a non-PENDING answer)."""
        call: Call = vc.call
        if status == NDIS_STATUS.SUCCESS:
            call.phase = "connected"
            self.send_signal(encode(CONNECT, call.vci))
            self.dispatch_connected(vc)
            return

        def deactivated(_status: NDIS_STATUS) -> None:
            self._forget(call)
            self.delete_vc(vc)
            self.send_signal(encode(RELEASE_COMPLETE, call.vci, CAUSE_REJECTED))

        self.deactivate(vc, deactivated)

    # --- the signalling channel -----------------------------------------------------------------
    def on_signal(self, message: bytes | memoryview) -> None:
        """A frame arrived on VCI 5: handle it in its own DPC."""
        self.signals_received += 1
        self.defer(self._handle, bytes(message))

    def _handle(self, message: bytes) -> None:
        kind, vci, value, sap = decode(message)
        call = self.calls.get(vci)
        if kind == SETUP:
            self._setup(vci, value, sap)
        elif call is None:
            return  # a late message for a call already gone
        elif kind == CONNECT and call.phase == "calling":
            self._activate_outgoing(call)
        elif kind == RELEASE_COMPLETE and call.phase == "calling":
            self._forget(call)
            self.make_call_complete(call.vc, NDIS_STATUS.FAILURE, call.params)
        elif kind == RELEASE and call.phase in ("connected", "offered"):
            call.remote_release = True
            self.dispatch_incoming_close(call.vc)

    def _setup(self, vci: int, flags: int, selector: bytes) -> None:
        found = self.find_sap(selector)
        if found is None or vci in self.calls:
            self.send_signal(encode(RELEASE_COMPLETE, vci, CAUSE_NO_SAP))
            return
        af, sap = found
        status, vc = self.create_incoming_vc(af)
        if status != NDIS_STATUS.SUCCESS:
            self.send_signal(encode(RELEASE_COMPLETE, vci, CAUSE_REJECTED))
            return
        params = atm_call_parameters(selector, vci)
        assert params.MediaParameters is not None
        params.MediaParameters.Flags = flags
        call = Call(vc, vci, params, created_by_cm=True)
        call.phase = "offered"
        vc.call = call
        self.calls[vci] = call

        def activated(a_status: NDIS_STATUS) -> None:
            if a_status != NDIS_STATUS.SUCCESS:
                self._forget(call)
                self.delete_vc(vc)
                self.send_signal(encode(RELEASE_COMPLETE, vci, CAUSE_REJECTED))
                return
            answer = self.dispatch_incoming(sap, vc, params)
            if answer != NDIS_STATUS.PENDING:
                self.incoming_call_complete(vc, answer)

        self.activate(vc, params, activated)


__all__ = [
    "ATM_ADDRESS_FAMILY",
    "ATM_CALLED_SAP",
    "ATM_MEDIA_SPECIFIC",
    "ATM_VC_PARAMETERS",
    "CAUSE_NORMAL",
    "CAUSE_NO_SAP",
    "CAUSE_REJECTED",
    "CONNECT",
    "RELEASE",
    "RELEASE_COMPLETE",
    "SETUP",
    "SIGNALLING_VCI",
    "Call",
    "CallControl",
    "atm_call_parameters",
    "atm_sap",
    "called_sap",
    "decode",
    "encode",
    "vc_parameters",
]
