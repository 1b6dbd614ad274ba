"""CoNDIS objects: address families, SAPs, parties, virtual connections, and the send verdict.

Theory of operation
-------------------
This module holds the *data* of connection-oriented NDIS; the DDIs that move it are in
:mod:`pyndis.library.co` (address families, SAPs, VC create/delete), :mod:`.cocall` (activation
and calls) and :mod:`.cosend` (data). Every handle a CoNDIS driver holds is one of these objects:

=====================  ======================  ==============================================
handle                 class                   made by
=====================  ======================  ==============================================
(AF registration)      :class:`CallManagerAf`  Ndis(M)CmRegisterAddressFamily[Ex]
``NdisAfHandle``       :class:`AfBlock`        NdisClOpenAddressFamily[Ex] (one per client open)
``NdisSapHandle``      :class:`SapBlock`       NdisClRegisterSap
``NdisPartyHandle``    :class:`PartyBlock`     NdisClMakeCall with a ProtocolPartyContext
``NdisVcHandle``       :class:`VirtualConnection`  NdisCoCreateVc / NdisMCmCreateVc
=====================  ======================  ==============================================

A VC joins three parties, each with its own context for it:

* the **owner**: the protocol binding whose data the VC carries, that sends on it and gets
  ``ProtocolCoSendComplete`` / ``ProtocolCoReceivePacket`` (NDIS 6:
  ``ProtocolCoSendNetBufferListsComplete`` / ``ProtocolCoReceiveNetBufferLists``) with
  ``ProtocolVcContext``. For a call VC that is the client; for a VC a call manager made for
  itself (``NdisCoCreateVc`` with no AF, e.g. a signalling VC) it is that call manager;
* the **call manager** (``cm``): a stand-alone CM protocol or the miniport itself (an MCM),
  with ``CallMgrVcContext`` (for an MCM, the MiniportVcContext);
* the **miniport**, with ``MiniportVcContext``.

The verdict. Whether data may go down a VC is a pure function of (has an AF, ``state``,
``call``), tabulated once in :data:`SEND_VERDICT`; :func:`vc_send_status` adds the owner
binding's state. It answers ``(status, rule)``: ``status`` None means "submit to the miniport";
otherwise NDIS completes the send at once with that status (rule 35 [model]: VC_NOT_ACTIVATED
before the first activation, CLOSING after NdisClCloseCall or an incoming close). ``rule``, when
set, names the contract rule the sender broke by sending now; the send paths report it to the
verifier (also when the send is allowed: data before the call is up, rules 29/30).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import Culprit, NdisUsageError, error_class_for
from ..status import NDIS_STATUS
from .counters import VcCounters
from .states import BindingState, CallState, VcState

if TYPE_CHECKING:
    from .adapter import MiniportBlock
    from .binding import OpenBlock
    from .drivers import DriverBlock


# --- structures (ndis.h names; the fields the model uses) ---------------------------------------


@dataclass(slots=True)
class CO_ADDRESS_FAMILY:
    AddressFamily: int
    MajorVersion: int = 0
    MinorVersion: int = 0


@dataclass(slots=True)
class CO_SAP:
    """A service access point: what incoming calls a client wants (``Sap`` is media-specific)."""

    SapType: int = 0
    SapLength: int = 0
    Sap: Any = b""


@dataclass(slots=True)
class CO_SPECIFIC_PARAMETERS:
    ParamType: int = 0
    Length: int = 0
    Parameters: Any = None


@dataclass(slots=True)
class FLOWSPEC:
    TokenRate: int = 0
    TokenBucketSize: int = 0
    PeakBandwidth: int = 0
    Latency: int = 0
    DelayVariation: int = 0
    ServiceType: int = 0
    MaxSduSize: int = 0
    MinimumPolicedSize: int = 0


@dataclass(slots=True)
class CO_CALL_MANAGER_PARAMETERS:
    Transmit: FLOWSPEC = field(default_factory=FLOWSPEC)
    Receive: FLOWSPEC = field(default_factory=FLOWSPEC)
    CallMgrSpecific: CO_SPECIFIC_PARAMETERS = field(default_factory=CO_SPECIFIC_PARAMETERS)


@dataclass(slots=True)
class CO_MEDIA_PARAMETERS:
    """``Flags``: TRANSMIT_VC, RECEIVE_VC, INDICATE_END_OF_TX (rule 37)."""

    Flags: int = 0
    ReceivePriority: int = 0
    ReceiveSizeHint: int = 0
    MediaSpecific: CO_SPECIFIC_PARAMETERS = field(default_factory=CO_SPECIFIC_PARAMETERS)


@dataclass(slots=True)
class CO_CALL_PARAMETERS:
    """``Flags``: PERMANENT_VC, CALL_PARAMETERS_CHANGED, ... (CO_CALL_FLAGS)."""

    Flags: int = 0
    CallMgrParameters: CO_CALL_MANAGER_PARAMETERS | None = None
    MediaParameters: CO_MEDIA_PARAMETERS | None = None


def media_flags(params: CO_CALL_PARAMETERS | None) -> int:
    """CallParameters->MediaParameters->Flags (0 when absent)."""
    if params is None or params.MediaParameters is None:
        return 0
    return int(params.MediaParameters.Flags)


# --- counters -----------------------------------------------------------------------------------


# --- address families, SAPs, parties -----------------------------------------------------------


class OpenState(enum.IntEnum):
    """Life of an AF open or a SAP registration."""

    OPENING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


class CallManagerAf:
    """An address family a call manager registered on an adapter."""

    __slots__ = ("AddressFamily", "CallMgrBindingContext", "adapter", "cm", "cm_binding", "opens")

    def __init__(
        self,
        adapter: MiniportBlock,
        family: CO_ADDRESS_FAMILY,
        cm: DriverBlock,
        cm_binding: OpenBlock | None,
        context: Any,
    ) -> None:
        self.adapter = adapter
        self.AddressFamily = family
        #: the call manager: a protocol's block, or the miniport's for an MCM
        self.cm = cm
        #: the CM protocol's binding to the adapter (None for an MCM)
        self.cm_binding = cm_binding
        #: what ProtocolCmOpenAf gets first: the CM's ProtocolBindingContext (an MCM's
        #: MiniportAdapterContext)
        self.CallMgrBindingContext = context
        self.opens: list[AfBlock] = []

    @property
    def is_mcm(self) -> bool:
        return self.cm_binding is None

    def __repr__(self) -> str:
        kind = "MCM" if self.is_mcm else "CM"
        return (
            f"<AF 0x{self.AddressFamily.AddressFamily:X} on {self.adapter.name!r} "
            f"({kind} {self.cm.name})>"
        )


class AfBlock:
    """One client's open of an address family: the ``NdisAfHandle``."""

    __slots__ = (
        "CallMgrAfContext",
        "ProtocolAfContext",
        "client",
        "registration",
        "saps",
        "state",
        "vcs",
    )

    def __init__(self, registration: CallManagerAf, client: OpenBlock, context: Any) -> None:
        self.registration = registration
        self.client = client
        self.ProtocolAfContext = context
        self.CallMgrAfContext: Any = None
        self.state = OpenState.OPENING
        self.vcs: list[VirtualConnection] = []
        self.saps: list[SapBlock] = []

    @property
    def cm(self) -> DriverBlock:
        return self.registration.cm

    @property
    def adapter(self) -> MiniportBlock:
        return self.registration.adapter

    def __repr__(self) -> str:
        family = self.registration.AddressFamily.AddressFamily
        return f"<NdisAfHandle 0x{family:X} {self.client.protocol.name} {self.state.name}>"


class SapBlock:
    """A SAP a client registered on an AF: the ``NdisSapHandle``."""

    __slots__ = ("CallMgrSapContext", "ProtocolSapContext", "Sap", "af", "state")

    def __init__(self, af: AfBlock, sap: CO_SAP, context: Any) -> None:
        self.af = af
        self.Sap = sap
        self.ProtocolSapContext = context
        self.CallMgrSapContext: Any = None
        self.state = OpenState.OPENING

    def __repr__(self) -> str:
        return f"<NdisSapHandle {self.Sap.Sap!r} {self.state.name}>"


class PartyBlock:
    """The ``NdisPartyHandle`` of a call made with a ProtocolPartyContext."""

    __slots__ = ("CallMgrPartyContext", "ProtocolPartyContext", "vc")

    def __init__(self, vc: VirtualConnection, context: Any) -> None:
        self.vc = vc
        self.ProtocolPartyContext = context
        self.CallMgrPartyContext: Any = None

    def __repr__(self) -> str:
        return f"<NdisPartyHandle of {self.vc!r}>"


# --- the VC ------------------------------------------------------------------------------------


class VcCreator(enum.Enum):
    """Who called NdisCoCreateVc / NdisMCmCreateVc: only that side may delete the VC (R33)."""

    CLIENT = "client"
    CALL_MANAGER = "call manager"
    MINIPORT_CM = "miniport call manager"


class VirtualConnection:
    """A virtual connection: the ``NdisVcHandle``."""

    __slots__ = (
        "CallMgrVcContext",
        "MiniportVcContext",
        "ProtocolVcContext",
        "activation_reply",
        "adapter",
        "af",
        "call",
        "call_parameters",
        "cm",
        "counters",
        "creator",
        "creator_block",
        "deactivation_reply",
        "end_of_tx",
        "in_send_handler",
        "index",
        "owner",
        "party",
        "pending_close",
        "sender",
        "state",
    )

    def __init__(
        self,
        adapter: MiniportBlock,
        af: AfBlock | None,
        owner: OpenBlock,
        creator: VcCreator,
        creator_block: DriverBlock,
        index: int,
    ) -> None:
        self.adapter = adapter
        self.af = af
        #: the binding whose data the VC carries (client, or a CM for its own VC)
        self.owner = owner
        #: the owner's driver block: who gets ProtocolCoSendComplete / ProtocolCoReceivePacket
        self.sender: DriverBlock = owner.protocol
        #: the call manager's driver block (a CM protocol or the MCM miniport); None if no AF
        self.cm: DriverBlock | None = af.cm if af is not None else None
        self.creator = creator
        self.creator_block = creator_block
        self.index = index
        self.ProtocolVcContext: Any = None
        self.CallMgrVcContext: Any = None
        self.MiniportVcContext: Any = None
        self.state = VcState.CREATED
        self.call = CallState.IDLE
        self.call_parameters: CO_CALL_PARAMETERS | None = None
        #: the VC was activated with INDICATE_END_OF_TX (rule 37)
        self.end_of_tx = False
        self.party: PartyBlock | None = None
        self.counters = VcCounters()
        #: depth of MiniportCoSendPackets calls on this VC running right now (NDIS 5.x: the
        #: INDICATE_END_OF_TX check of NdisMCoSendComplete reads it)
        self.in_send_handler = 0
        #: NdisClCloseCall waiting for the owner's sends to complete: (party, buffer, size)
        self.pending_close: tuple[Any, Any, int] | None = None
        #: a (de)activation pended at the miniport: "cm" (its completion goes to the call
        #: manager's ProtocolCm*Complete), "ndis" (NDIS's own teardown), "" (none pending)
        self.activation_reply = ""
        self.deactivation_reply = ""

    @property
    def miniport(self) -> DriverBlock:
        return self.adapter.driver

    @property
    def call_manager(self) -> DriverBlock:
        """Who acts as the VC's call manager: its AF's CM, or (a VC a CM made for itself, with
        no AF) its owner."""
        return self.cm if self.cm is not None else self.sender

    def __repr__(self) -> str:
        return (
            f"<NdisVcHandle #{self.index} {self.adapter.name!r} {self.state.name}/{self.call.name}>"
        )


# --- the send verdict (rules 29, 30, 34, 35) ----------------------------------------------------

V = VcState
C = CallState
_CLOSING = NDIS_STATUS.CLOSING
_NOT_ACTIVATED = NDIS_STATUS.VC_NOT_ACTIVATED

Verdict = tuple[NDIS_STATUS | None, str]


def _verdict(has_af: bool, state: VcState, call: CallState) -> Verdict:
    if state in (V.CLOSING, V.DEACTIVATING, V.DEACTIVATED) or call in (
        C.CLOSING,
        C.CLOSE_INDICATED,
    ):
        return _CLOSING, ("R34" if call is C.CLOSE_INDICATED else "R35")
    if state in (V.CREATED, V.ACTIVATING, V.DELETED):
        return _NOT_ACTIVATED, "R35"
    # ACTIVE or REACTIVATING: the miniport can carry it
    if not has_af or call is C.CONNECTED:
        return None, ""
    if call in (C.INCOMING, C.ACCEPTED):
        return None, "R30"  # data before Ndis(M)CmDispatchCallConnected
    return None, "R29"  # data before a successful MakeCallComplete (or with no call at all)


#: ``SEND_VERDICT[has_af][state][call]`` -> (status or None to submit, rule broken or "").
SEND_VERDICT: tuple[tuple[tuple[Verdict, ...], ...], ...] = tuple(
    tuple(tuple(_verdict(has_af, s, c) for c in CallState) for s in VcState)
    for has_af in (False, True)
)

_BINDING_GONE = (BindingState.CLOSING, BindingState.CLOSED)


def vc_send_status(vc: VirtualConnection) -> Verdict:
    """May the owner send on ``vc`` now? -> (None, rule) to submit, or (status, rule) to
    complete every descriptor at once with ``status``. A non-empty ``rule`` is a contract
    violation by the sender, for the verifier."""
    if vc.owner.state in _BINDING_GONE:
        return _CLOSING, "R35"
    return SEND_VERDICT[vc.af is not None][vc.state][vc.call]


def vc_can_indicate(vc: VirtualConnection) -> bool:
    """May the miniport indicate receives on ``vc``? Only while activated (rule 32.4)."""
    return vc.state in (V.ACTIVE, V.REACTIVATING, V.CLOSING)


# --- handle validation --------------------------------------------------------------------------


def vc_from_handle(
    handle: object, ddi: str, culprit: Culprit = Culprit.NDIS_USER
) -> VirtualConnection:
    """The VC behind an ``NdisVcHandle``; raise naming ``culprit`` for anything else or for a
    deleted VC (rule 33: the handle is invalid after NdisCoDeleteVc)."""
    if type(handle) is not VirtualConnection:
        raise error_class_for(culprit)(
            f"{ddi}: {handle!r} is not an NdisVcHandle", rule="PY-BAD-HANDLE", subject=handle
        )
    if handle.state is VcState.DELETED:
        raise error_class_for(culprit)(
            f"{ddi} on {handle!r}, which was deleted (the handle is invalid after "
            "NdisCoDeleteVc / NdisMCmDeleteVc)",
            rule="R33",
            subject=handle,
        )
    return handle


def af_from_handle(handle: object, ddi: str, culprit: Culprit = Culprit.PROTOCOL) -> AfBlock:
    if type(handle) is not AfBlock:
        raise NdisUsageError(f"{ddi}: {handle!r} is not an NdisAfHandle", rule="PY-BAD-HANDLE")
    if handle.state is OpenState.CLOSED:
        raise error_class_for(culprit)(
            f"{ddi} on {handle!r} after NdisClCloseAddressFamily completed",
            rule="PY-CO-AF",
            subject=handle,
        )
    return handle


def sap_from_handle(handle: object, ddi: str, culprit: Culprit = Culprit.PROTOCOL) -> SapBlock:
    if type(handle) is not SapBlock:
        raise NdisUsageError(f"{ddi}: {handle!r} is not an NdisSapHandle", rule="PY-BAD-HANDLE")
    if handle.state is OpenState.CLOSED:
        raise error_class_for(culprit)(
            f"{ddi} on {handle!r} after NdisClDeregisterSap completed",
            rule="PY-CO-SAP",
            subject=handle,
        )
    return handle


def status_and(result: Any, what: str, culprit: Culprit) -> tuple[NDIS_STATUS, Any]:
    """Normalize a handler's ``(status, out)`` return (a bare status means out = None)."""
    if isinstance(result, tuple):
        if len(result) != 2:
            raise error_class_for(culprit)(
                f"{what} returned {result!r}; expected (status, context)", rule="PY-BAD-ARGUMENT"
            )
        return NDIS_STATUS(result[0]), result[1]
    return NDIS_STATUS(result), None


__all__ = [
    "CO_ADDRESS_FAMILY",
    "CO_CALL_MANAGER_PARAMETERS",
    "CO_CALL_PARAMETERS",
    "CO_MEDIA_PARAMETERS",
    "CO_SAP",
    "CO_SPECIFIC_PARAMETERS",
    "FLOWSPEC",
    "SEND_VERDICT",
    "AfBlock",
    "CallManagerAf",
    "OpenState",
    "PartyBlock",
    "SapBlock",
    "VcCounters",
    "VcCreator",
    "Verdict",
    "VirtualConnection",
    "af_from_handle",
    "media_flags",
    "sap_from_handle",
    "status_and",
    "vc_can_indicate",
    "vc_from_handle",
    "vc_send_status",
]
