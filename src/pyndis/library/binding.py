"""Bindings: NdisOpenAdapter[Ex], NdisCloseAdapter[Ex], requests, pause/restart, receive filter.

Theory of operation
-------------------
A binding is an :class:`OpenBlock` (NDIS's NDIS_OPEN_BLOCK) joining one protocol to one adapter;
it is the ``NdisBindingHandle`` the protocol sends on, and its ``ProtocolBindingContext`` is what
the protocol's handlers get back. Its ``state`` moves only through
:data:`~pyndis.library.states.BINDING_TRANSITIONS`.

Grammar of a binding's life, per protocol generation::

    NDIS 5.x:  [ProtocolBindAdapter ->] NdisOpenAdapter -> RUNNING
               -> (sends)* -> NdisCloseAdapter -> [PENDING -> ProtocolCloseAdapterComplete]
    NDIS 6:    [ProtocolBindAdapterEx ->] NdisOpenAdapterEx -> PAUSED
               -> ProtocolNetPnPEvent(restart) -> RUNNING -> (sends)*
               -> ProtocolNetPnPEvent(pause) -> PAUSING -> (outstanding sends complete) -> PAUSED
               -> [ProtocolUnbindAdapterEx ->] NdisCloseAdapterEx -> CLOSED

Closing: once NdisCloseAdapter is called the binding is CLOSING: new sends get
NDIS_STATUS_CLOSING, packets NDIS still queues for it are completed with CLOSING, and the close
finishes (ProtocolCloseAdapterComplete) when the miniport has completed every send it holds.

Requests: NDIS answers the general OIDs it knows from the adapter's attributes and keeps the
packet filter per binding (the adapter's filter is the OR of its bindings'); everything else,
and every new adapter filter, goes to the miniport: MiniportQueryInformation /
MiniportSetInformation (NDIS 5.x) or MiniportOidRequest (NDIS 6).

The receive filter (``binding_accepts``) is NDIS's per-binding filter library: it decides from
the binding's packet filter and the frame's destination which bindings see a receive or a
loopback indication (rule 55).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_PACKET_TYPE_ALL_LOCAL,
    NDIS_PACKET_TYPE_ALL_MULTICAST,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_PACKET_TYPE_MULTICAST,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    NDIS_PROT_OPTION_NO_LOOPBACK,
    OID_802_3_CURRENT_ADDRESS,
    OID_802_3_PERMANENT_ADDRESS,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_LINK_SPEED,
    OID_GEN_MAC_OPTIONS,
    OID_GEN_MAXIMUM_FRAME_SIZE,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    OID_GEN_MEDIA_CONNECT_STATUS,
    OID_GEN_PROTOCOL_OPTIONS,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
)
from ..errors import Culprit, NdisUsageError, ProtocolContractError
from ..status import NDIS_STATUS
from .adapter import BROADCAST, MiniportBlock
from .counters import SendCounters
from .drivers import DriverBlock, check_version
from .states import BINDING_TRANSITIONS, AdapterState, BindingState, move

if TYPE_CHECKING:
    from .kernel import Ndis


class NET_PNP_EVENT_CODE(enum.IntEnum):
    """The NetEventXxx codes the model sends (ndis.h values)."""

    NetEventSetPower = 0
    NetEventQueryPower = 1
    NetEventQueryRemoveDevice = 2
    NetEventCancelRemoveDevice = 3
    NetEventReconfigure = 4
    NetEventBindList = 5
    NetEventBindsComplete = 6
    NetEventPnPCapabilities = 7
    NetEventPause = 8
    NetEventRestart = 9


@dataclass(slots=True)
class NET_PNP_EVENT_NOTIFICATION:
    NetEvent: NET_PNP_EVENT_CODE
    Buffer: Any = None
    PortNumber: int = 0


@dataclass(slots=True)
class NDIS_BIND_PARAMETERS:
    """What ProtocolBindAdapterEx learns about the adapter (the fields the model uses)."""

    AdapterName: str
    MediaType: int
    MtuSize: int
    CurrentMacAddress: bytes
    MacOptions: int
    MediaConnectState: int
    XmitLinkSpeed: int


@dataclass(slots=True)
class NDIS_OPEN_PARAMETERS:
    AdapterName: str
    MediumArray: list[int]
    FrameTypeArray: list[int] | None = None


@dataclass(slots=True)
class NDIS_OID_REQUEST:
    """NdisOidRequest's argument: the model keeps the value itself in InformationBuffer."""

    RequestType: int
    Oid: int
    InformationBuffer: Any = None


class OpenBlock:
    """One binding (NDIS_OPEN_BLOCK): the NdisBindingHandle."""

    __slots__ = (
        "ProtocolBindingContext",
        "adapter",
        "counters",
        "ndis",
        "packet_filter",
        "pending_close",
        "prot_options",
        "protocol",
        "state",
    )

    def __init__(
        self, ndis: Ndis, protocol: DriverBlock, adapter: MiniportBlock, context: Any
    ) -> None:
        self.ndis = ndis
        self.protocol = protocol
        self.adapter = adapter
        self.ProtocolBindingContext = context
        self.state = BindingState.OPENING
        self.packet_filter = 0
        self.prot_options = 0
        self.counters: SendCounters = SendCounters()
        self.pending_close = False

    @property
    def NdisBindingHandle(self) -> OpenBlock:
        return self

    def __repr__(self) -> str:
        return f"<binding {self.protocol.name}->{self.adapter.name} {self.state.name}>"


def binding_handle(handle: object) -> OpenBlock:
    """Validate an NdisBindingHandle; a closed one is a protocol error."""
    if not isinstance(handle, OpenBlock):
        raise NdisUsageError(f"{handle!r} is not an NdisBindingHandle", rule="PY-BAD-HANDLE")
    if handle.state is BindingState.CLOSED:
        raise ProtocolContractError(
            f"{handle!r} used after NdisCloseAdapter completed",
            rule="PY-BAD-HANDLE",
            culprit=handle.protocol.culprit,
        )
    return handle


def is_group(address: bytes) -> bool:
    return bool(address and address[0] & 1)


# Plain ints: ``int & IntFlag`` builds a new enum object, and this runs for every loopback check.
_DIRECTED = int(NDIS_PACKET_TYPE_DIRECTED)
_BROADCAST_BIT = int(NDIS_PACKET_TYPE_BROADCAST)
_GROUP_BITS = int(NDIS_PACKET_TYPE_MULTICAST | NDIS_PACKET_TYPE_ALL_MULTICAST)
_PROMISCUOUS = int(NDIS_PACKET_TYPE_PROMISCUOUS)
_ALL_LOCAL = int(NDIS_PACKET_TYPE_ALL_LOCAL)
_NO_LOOPBACK = int(NDIS_PROT_OPTION_NO_LOOPBACK)


def binding_accepts(
    binding: OpenBlock, dest: bytes, loopback_from: OpenBlock | None = None
) -> bool:
    """Does ``binding``'s packet filter accept a frame to ``dest``? For loopback, a binding with
    NDIS_PROT_OPTION_NO_LOOPBACK never sees its own sends."""
    f = binding.packet_filter
    if not f:
        return False
    if loopback_from is binding and binding.prot_options & _NO_LOOPBACK:
        return False
    if f & _PROMISCUOUS:
        return True
    if loopback_from is not None and f & _ALL_LOCAL:
        return True
    if dest == BROADCAST:
        return bool(f & _BROADCAST_BIT)
    if is_group(dest):
        return bool(f & _GROUP_BITS)
    return bool(f & _DIRECTED) and dest == binding.adapter.current_address


class BindingDdis:
    """Binding DDIs and the PnP bind/unbind controls (mixed into ``Ndis``)."""

    # --- PnP ------------------------------------------------------------------------------------
    def offer_binding(self, protocol: DriverBlock, adapter: MiniportBlock) -> None:
        """The PnP manager offers ``adapter`` to ``protocol`` (ProtocolBindAdapter[Ex]).

        NDIS 5.x protocols are offered NDIS 5.x adapters and NDIS 6 protocols NDIS 6 adapters
        (the NDIS 5 <-> 6 translation layer is not modelled). Offers queued at registration
        run later (:mod:`~pyndis.library.registration`): by then the protocol may have been
        deregistered, the adapter removed, or the protocol may have opened the adapter itself;
        such an offer is dropped.
        """
        ndis: Ndis = self  # type: ignore[assignment]
        if (protocol.major >= 6) != (adapter.driver.major >= 6):
            return
        if adapter.state is not AdapterState.RUNNING or protocol not in ndis.protocols:
            return
        if any(
            b.protocol is protocol and b.state is not BindingState.CLOSED for b in adapter.bindings
        ):
            return
        if protocol.major == 5 and protocol.has("ProtocolBindAdapter"):
            ndis.scheduler.trace("bind-offer", protocol.name, adapter.name)
            ndis.call(protocol, "ProtocolBindAdapter", adapter, adapter.name, None, None)
        elif protocol.major >= 6 and protocol.has("ProtocolBindAdapterEx"):
            ndis.scheduler.trace("bind-offer", protocol.name, adapter.name)
            params = NDIS_BIND_PARAMETERS(
                adapter.name,
                adapter.medium,
                adapter.max_total_size - 14,
                adapter.current_address,
                adapter.mac_options,
                NdisMediaStateConnected if adapter.media_connected else NdisMediaStateDisconnected,
                adapter.link_speed,
            )
            ndis.call(protocol, "ProtocolBindAdapterEx", protocol.driver, adapter, params)

    def unbind(self, binding: OpenBlock) -> None:
        """The PnP manager unbinds: (NDIS 6: pause;) ProtocolUnbindAdapter[Ex]; the protocol
        closes the binding there (if it has no such handler, NDIS closes it). Waits until the
        close completes."""
        ndis: Ndis = self  # type: ignore[assignment]
        if binding.state is BindingState.CLOSED:
            return
        if binding.protocol.major >= 6 and binding.state is BindingState.RUNNING:
            self.pause_binding(binding)
        if binding.protocol.major == 5:
            # ProtocolUnbindAdapter(&Status, ProtocolBindingContext, UnbindContext)
            if binding.protocol.has("ProtocolUnbindAdapter"):
                ndis.call(
                    binding.protocol,
                    "ProtocolUnbindAdapter",
                    binding.ProtocolBindingContext,
                    binding,
                )
        elif binding.protocol.has("ProtocolUnbindAdapterEx"):
            # ProtocolUnbindAdapterEx(UnbindContext, ProtocolBindingContext)
            ndis.call(
                binding.protocol, "ProtocolUnbindAdapterEx", binding, binding.ProtocolBindingContext
            )
        if binding.state not in (BindingState.CLOSING, BindingState.CLOSED):
            if binding.protocol.major == 5:
                self.NdisCloseAdapter(binding)
            else:
                self.NdisCloseAdapterEx(binding)
        ndis.wait_until(
            lambda: binding.state is BindingState.CLOSED,
            f"close of {binding!r} (sends still outstanding)",
            Culprit.MINIPORT,
        )

    # --- open -------------------------------------------------------------------------------------
    def _open(
        self, protocol: DriverBlock, context: Any, mediums: list[int], adapter_ref: Any
    ) -> tuple[NDIS_STATUS, OpenBlock | None, int]:
        ndis: Ndis = self  # type: ignore[assignment]
        if protocol not in ndis.protocols:
            raise NdisUsageError(f"{protocol!r} is not a registered protocol", rule="PY-BAD-HANDLE")
        adapter = adapter_ref if isinstance(adapter_ref, MiniportBlock) else None
        if adapter is None:
            adapter = ndis.adapters.get(str(adapter_ref))
        if adapter is None or adapter.ndis is not ndis:
            return NDIS_STATUS.ADAPTER_NOT_FOUND, None, 0
        if (protocol.major >= 6) != (adapter.driver.major >= 6):
            raise NdisUsageError(
                f"{protocol!r} cannot open {adapter!r}: pyndis does not model the NDIS 5.x <-> 6 "
                "translation layer (rules 60-61); bind drivers of one generation",
                rule="R60",
                culprit=protocol.culprit,
            )
        if adapter.state not in (AdapterState.RUNNING, AdapterState.PAUSED):
            return NDIS_STATUS.ADAPTER_NOT_READY, None, 0
        if adapter.medium not in mediums:
            return NDIS_STATUS.UNSUPPORTED_MEDIA, None, 0
        binding = OpenBlock(ndis, protocol, adapter, context)
        adapter.bindings.append(binding)
        ndis.bindings.append(binding)
        ndis.scheduler.trace("open", protocol.name, adapter.name)
        ndis._co_binding_opened(binding)  # CoNDIS: offer the adapter's address families
        return NDIS_STATUS.SUCCESS, binding, mediums.index(adapter.medium)

    def NdisOpenAdapter(
        self,
        NdisProtocolHandle: DriverBlock,
        ProtocolBindingContext: Any,
        MediumArray: list[int],
        AdapterName: Any,
        OpenOptions: int = 0,
    ) -> tuple[NDIS_STATUS, NDIS_STATUS, OpenBlock | None, int]:
        """NdisOpenAdapter(&Status, &OpenErrorStatus, &NdisBindingHandle, &SelectedMediumIndex,
        MediumArray, MediumArraySize, NdisProtocolHandle, ProtocolBindingContext, AdapterName,
        OpenOptions, AddressingInformation). Completes synchronously in the model.

        Returns ``(Status, OpenErrorStatus, NdisBindingHandle, SelectedMediumIndex)``.
        """
        check_version(NdisProtocolHandle, "NdisOpenAdapter")
        status, binding, index = self._open(
            NdisProtocolHandle, ProtocolBindingContext, list(MediumArray), AdapterName
        )
        if binding is not None:
            move(binding, BINDING_TRANSITIONS, "opened_5x")
        return status, NDIS_STATUS.SUCCESS, binding, index

    def NdisOpenAdapterEx(
        self,
        NdisProtocolHandle: DriverBlock,
        ProtocolBindingContext: Any,
        OpenParameters: NDIS_OPEN_PARAMETERS,
        NdisBindContext: Any = None,
    ) -> tuple[NDIS_STATUS, OpenBlock | None]:
        """NdisOpenAdapterEx: the binding opens PAUSED and NDIS then restarts it
        (ProtocolNetPnPEvent(NetEventRestart)) before this returns, in the model."""
        check_version(NdisProtocolHandle, "NdisOpenAdapterEx")
        status, binding, _ = self._open(
            NdisProtocolHandle,
            ProtocolBindingContext,
            list(OpenParameters.MediumArray),
            NdisBindContext if NdisBindContext is not None else OpenParameters.AdapterName,
        )
        if binding is None:
            return status, None
        move(binding, BINDING_TRANSITIONS, "opened_6x")
        if binding.adapter.state is AdapterState.RUNNING:
            self.restart_binding(binding)
        return status, binding

    # --- pause / restart (NDIS 6, rule 57) --------------------------------------------------------
    def _pnp_event(self, binding: OpenBlock, code: NET_PNP_EVENT_CODE) -> NDIS_STATUS:
        ndis: Ndis = self  # type: ignore[assignment]
        if not binding.protocol.has("ProtocolNetPnPEvent"):
            return NDIS_STATUS.SUCCESS
        event = NET_PNP_EVENT_NOTIFICATION(code)
        return NDIS_STATUS(
            ndis.call(
                binding.protocol, "ProtocolNetPnPEvent", binding.ProtocolBindingContext, event
            )
        )

    def restart_binding(self, binding: OpenBlock) -> None:
        move(binding, BINDING_TRANSITIONS, "restart")
        status = self._pnp_event(binding, NET_PNP_EVENT_CODE.NetEventRestart)
        move(
            binding,
            BINDING_TRANSITIONS,
            "restarted" if status == NDIS_STATUS.SUCCESS else "restart_failed",
        )
        binding.ndis.scheduler.trace("binding-restart", binding.protocol.name, status)

    def pause_binding(self, binding: OpenBlock) -> None:
        """Pause an NDIS 6 binding: no new sends; done when every outstanding send completed."""
        ndis: Ndis = self  # type: ignore[assignment]
        move(binding, BINDING_TRANSITIONS, "pause")
        self._pnp_event(binding, NET_PNP_EVENT_CODE.NetEventPause)
        ndis.wait_until(
            lambda: binding.counters.in_flight == 0,
            f"pause of {binding!r}: {binding.counters.in_flight} send(s) outstanding",
            Culprit.MINIPORT,
            rule="R57",
        )
        move(binding, BINDING_TRANSITIONS, "paused")
        ndis.scheduler.trace("binding-paused", binding.protocol.name, binding.adapter.name)

    # --- close ------------------------------------------------------------------------------------
    def NdisCloseAdapter(self, NdisBindingHandle: OpenBlock) -> NDIS_STATUS:
        """NdisCloseAdapter: SUCCESS, or PENDING and ProtocolCloseAdapterComplete once the
        miniport has completed every send it holds for this binding."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisCloseAdapter")
        return self._close(binding)

    def NdisCloseAdapterEx(self, NdisBindingHandle: OpenBlock) -> NDIS_STATUS:
        """NdisCloseAdapterEx: only on a paused binding (NDIS pauses before it unbinds)."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisCloseAdapterEx")
        if binding.state is not BindingState.PAUSED:
            raise ProtocolContractError(
                f"NdisCloseAdapterEx on {binding!r}; a binding is closed only when paused",
                rule="R57",
                culprit=binding.protocol.culprit,
            )
        return self._close(binding)

    def _close(self, binding: OpenBlock) -> NDIS_STATUS:
        ndis: Ndis = self  # type: ignore[assignment]
        move(binding, BINDING_TRANSITIONS, "close", culprit=binding.protocol.culprit)
        ndis.scheduler.trace("close", binding.protocol.name, binding.adapter.name)
        ndis._flush_queued_sends(binding.adapter, binding, NDIS_STATUS.CLOSING)
        if binding.counters.in_flight:
            binding.pending_close = True
            return NDIS_STATUS.PENDING
        self._finish_close(binding, notify=False)
        return NDIS_STATUS.SUCCESS

    def _finish_close(self, binding: OpenBlock, notify: bool) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        binding.pending_close = False
        move(binding, BINDING_TRANSITIONS, "closed")
        if binding in binding.adapter.bindings:
            binding.adapter.bindings.remove(binding)
        # NDIS frees the open block: a closed binding no longer counts as open (for
        # NdisDeregisterProtocol) and nothing of it can be in flight any more.
        if binding in ndis.bindings:
            ndis.bindings.remove(binding)
        if binding.packet_filter:
            # the adapter's filter is the OR of its bindings': tell the miniport the new one
            self._recompute_filter(binding.adapter)
            self._miniport_request(
                binding.adapter,
                NdisRequestSetInformation,
                OID_GEN_CURRENT_PACKET_FILTER,
                binding.adapter.packet_filter,
            )
        ndis.scheduler.trace("closed", binding.protocol.name, binding.adapter.name)
        if notify:
            if binding.protocol.major == 5 and binding.protocol.has("ProtocolCloseAdapterComplete"):
                ndis.call(
                    binding.protocol,
                    "ProtocolCloseAdapterComplete",
                    binding.ProtocolBindingContext,
                    NDIS_STATUS.SUCCESS,
                )
            elif binding.protocol.has("ProtocolCloseAdapterCompleteEx"):
                ndis.call(
                    binding.protocol,
                    "ProtocolCloseAdapterCompleteEx",
                    binding.ProtocolBindingContext,
                )

    def binding_send_done(self, binding: OpenBlock) -> None:
        """Send paths call this after a send of ``binding`` completed: finishes a pending
        close once nothing is outstanding."""
        if binding.pending_close and binding.counters.in_flight == 0:
            self._finish_close(binding, notify=True)

    # --- requests ---------------------------------------------------------------------------------
    def _recompute_filter(self, adapter: MiniportBlock) -> None:
        combined = 0
        for b in adapter.bindings:
            combined |= b.packet_filter
        adapter.packet_filter = combined

    def _request(
        self, binding: OpenBlock, request_type: int, oid: int, value: Any
    ) -> tuple[NDIS_STATUS, Any]:
        adapter = binding.adapter
        if request_type == NdisRequestQueryInformation:
            answers: dict[int, Any] = {
                OID_GEN_CURRENT_PACKET_FILTER: binding.packet_filter,
                OID_GEN_MAXIMUM_TOTAL_SIZE: adapter.max_total_size,
                OID_GEN_MAXIMUM_FRAME_SIZE: adapter.max_total_size - 14,
                OID_802_3_CURRENT_ADDRESS: adapter.current_address,
                OID_802_3_PERMANENT_ADDRESS: adapter.current_address,
                OID_GEN_MAC_OPTIONS: adapter.mac_options,
                OID_GEN_MEDIA_CONNECT_STATUS: NdisMediaStateConnected
                if adapter.media_connected
                else NdisMediaStateDisconnected,
                OID_GEN_LINK_SPEED: adapter.link_speed // 100,
                OID_GEN_MAXIMUM_SEND_PACKETS: adapter.max_send_packets,
                OID_GEN_PROTOCOL_OPTIONS: binding.prot_options,
            }
            if oid in answers:
                return NDIS_STATUS.SUCCESS, answers[oid]
            return self._miniport_request(adapter, request_type, oid, None)
        if request_type == NdisRequestSetInformation:
            if oid == OID_GEN_CURRENT_PACKET_FILTER:
                binding.packet_filter = int(value)
                self._recompute_filter(adapter)
                self._miniport_request(adapter, request_type, oid, adapter.packet_filter)
                return NDIS_STATUS.SUCCESS, None
            if oid == OID_GEN_PROTOCOL_OPTIONS:
                binding.prot_options = int(value)
                return NDIS_STATUS.SUCCESS, None
            status, _ = self._miniport_request(adapter, request_type, oid, value)
            return status, None
        raise NdisUsageError(f"unknown request type {request_type}", rule="PY-REQUEST")

    def _miniport_request(
        self, adapter: MiniportBlock, request_type: int, oid: int, value: Any
    ) -> tuple[NDIS_STATUS, Any]:
        """Pass a request NDIS does not answer itself to the miniport: MiniportQueryInformation /
        MiniportSetInformation (NDIS 5.x) or MiniportOidRequest (NDIS 6). INVALID_OID if the
        miniport has no such handler."""
        ndis: Ndis = self  # type: ignore[assignment]
        driver, context = adapter.driver, adapter.MiniportAdapterContext
        if driver.major >= 6:
            if not driver.has("MiniportOidRequest"):
                return NDIS_STATUS.INVALID_OID, None
            request = NDIS_OID_REQUEST(request_type, oid, value)
            status = NDIS_STATUS(ndis.call(driver, "MiniportOidRequest", context, request))
            answer = (
                request.InformationBuffer if request_type == NdisRequestQueryInformation else None
            )
            return status, answer
        if request_type == NdisRequestQueryInformation:
            if not driver.has("MiniportQueryInformation"):
                return NDIS_STATUS.INVALID_OID, None
            status, answer = ndis.call(driver, "MiniportQueryInformation", context, oid)
            return NDIS_STATUS(status), answer
        if not driver.has("MiniportSetInformation"):
            return NDIS_STATUS.INVALID_OID, None
        return NDIS_STATUS(ndis.call(driver, "MiniportSetInformation", context, oid, value)), None

    def NdisRequest(
        self, NdisBindingHandle: OpenBlock, RequestType: int, Oid: int, Value: Any = None
    ) -> tuple[NDIS_STATUS, Any]:
        """NdisRequest (NDIS 5.x), simplified: returns ``(Status, value)`` for a query."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisRequest")
        return self._request(binding, RequestType, Oid, Value)

    def NdisOidRequest(
        self, NdisBindingHandle: OpenBlock, OidRequest: NDIS_OID_REQUEST
    ) -> NDIS_STATUS:
        """NdisOidRequest (NDIS 6): a query leaves its answer in OidRequest.InformationBuffer."""
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisOidRequest")
        status, answer = self._request(
            binding, OidRequest.RequestType, OidRequest.Oid, OidRequest.InformationBuffer
        )
        if OidRequest.RequestType == NdisRequestQueryInformation:
            OidRequest.InformationBuffer = answer
        return status


__all__ = [
    "NDIS_BIND_PARAMETERS",
    "NDIS_OID_REQUEST",
    "NDIS_OPEN_PARAMETERS",
    "NET_PNP_EVENT_CODE",
    "NET_PNP_EVENT_NOTIFICATION",
    "BindingDdis",
    "OpenBlock",
    "binding_accepts",
    "binding_handle",
    "is_group",
]
