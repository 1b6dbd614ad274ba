"""Miniport adapters: attributes, life cycle (initialize, run, reset, pause, restart, halt), status.

Theory of operation
-------------------
An adapter is a :class:`MiniportBlock` (NDIS's NDIS_MINIPORT_BLOCK): the miniport driver, its
``MiniportAdapterContext``, the attributes NDIS learned about it, the bindings on it, and the
send-path state the library keeps for it. Its ``state`` moves only through
:data:`~pyndis.library.states.ADAPTER_TRANSITIONS`.

The PnP manager's part (creating, resetting, pausing, removing an adapter) is played by the
snake_case controls ``add_adapter``, ``reset_adapter``, ``pause_adapter``, ``restart_adapter``
and ``remove_adapter``; they call the miniport's handlers exactly as NDIS would.

``add_adapter`` grammar::

    NDIS 5.x:  MiniportInitialize -> [NdisMSetAttributesEx] -> MiniportQueryInformation* -> RUNNING
    NDIS 6:    MiniportInitializeEx -> NdisMSetMiniportAttributes+ -> PAUSED
               -> MiniportRestart -> [NdisMRestartComplete] -> RUNNING

An NDIS 5.x miniport tells NDIS its limits through OID queries (``MiniportQueryInformation``
returns ``(status, value)`` in pyndis instead of filling a buffer); an NDIS 6 miniport through
``NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES``.

Waiting: a halt, pause or close has to wait until outstanding sends complete. The library runs
the scheduler until the condition holds (:meth:`AdapterDdis.wait_until`); if the scheduler goes
idle first, nobody will ever complete those sends, and the culprit is named (rule R65 models
Driver Verifier's NdisTimedDataHang).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_ATTRIBUTE_DESERIALIZE,
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_MEDIUM,
    OID_802_3_CURRENT_ADDRESS,
    OID_GEN_LINK_SPEED,
    OID_GEN_MAC_OPTIONS,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    OID_GEN_MEDIA_CONNECT_STATUS,
    NdisMediaStateConnected,
    NdisMedium802_3,
)
from ..errors import Culprit, MiniportContractError, NdisUsageError
from ..status import NDIS_STATUS
from .counters import SendCounters
from .drivers import DriverBlock, DriverKind, check_version
from .states import ADAPTER_TRANSITIONS, AdapterState, BindingState, move

if TYPE_CHECKING:
    from .binding import OpenBlock
    from .kernel import Ndis

BROADCAST = b"\xff" * 6


@dataclass(slots=True)
class NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES:
    """NDIS 6 registration attributes (the fields the model uses)."""

    MiniportAdapterContext: Any
    AttributeFlags: int = 0
    CheckForHangTimeInSeconds: int = 0
    InterfaceType: int = 0


@dataclass(slots=True)
class NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES:
    """NDIS 6 general attributes (the fields the model uses, real names)."""

    MediaType: int = NdisMedium802_3
    MtuSize: int = 1500
    MaxXmitLinkSpeed: int = 1_000_000_000
    MediaConnectState: int = NdisMediaStateConnected
    MacOptions: int = 0
    SupportedPacketFilters: int = 0xFFFFFFFF
    CurrentMacAddress: bytes = b"\x02\x00\x00\x00\x00\x01"
    PermanentMacAddress: bytes = b""
    LookaheadSize: int = 1500


@dataclass(slots=True)
class NDIS_LINK_STATE:
    MediaConnectState: int = NdisMediaStateConnected
    XmitLinkSpeed: int = 0
    RcvLinkSpeed: int = 0


@dataclass(slots=True)
class NDIS_STATUS_INDICATION:
    """NdisMIndicateStatusEx's argument (NDIS 6)."""

    SourceHandle: Any
    StatusCode: int
    StatusBuffer: Any = None
    PortNumber: int = 0
    DestinationHandle: Any = None


@dataclass(slots=True)
class AdapterConfig:
    """What ``add_adapter`` passes to the miniport as its configuration (registry keywords)."""

    name: str
    keywords: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.keywords.get(key, default)


class MiniportBlock:
    """One adapter (NDIS_MINIPORT_BLOCK)."""

    __slots__ = (
        "MiniportAdapterContext",
        "bindings",
        "config",
        "counters",
        "current_address",
        "deserialized",
        "driver",
        "in_send_handler",
        "link_speed",
        "mac_options",
        "max_send_packets",
        "max_total_size",
        "media_connected",
        "medium",
        "name",
        "ndis",
        "outstanding",
        "packet_filter",
        "pending_pause",
        "pending_reset",
        "pending_restart",
        "resources_wait",
        "send_queue",
        "state",
        "vcs",
        "wake_pending",
    )

    def __init__(self, ndis: Ndis, driver: DriverBlock, config: AdapterConfig) -> None:
        self.ndis = ndis
        self.driver = driver
        self.name = config.name
        self.config = config
        self.MiniportAdapterContext: Any = None
        self.state = AdapterState.HALTED
        #: NDIS 6 and CoNDIS miniports are always deserialized (rule 25)
        self.deserialized = driver.major >= 6 or driver.is_co
        self.medium: int = NdisMedium802_3
        self.max_total_size = 1514
        self.current_address = b"\x02\x00\x00\x00\x00\x01"
        self.mac_options = 0
        self.media_connected = True
        self.link_speed = 0
        self.max_send_packets = 1
        self.packet_filter = 0
        self.bindings: list[OpenBlock] = []
        #: descriptors the miniport holds right now (handed to it, not yet completed)
        self.outstanding = 0
        self.counters: SendCounters = SendCounters()
        # NDIS 5.x serialized send machinery (library.send5)
        self.send_queue: deque[Any] = deque()
        self.in_send_handler = False
        self.resources_wait = False
        self.wake_pending = False
        # pending asynchronous completions of life-cycle calls
        self.pending_reset = False
        self.pending_pause = False
        self.pending_restart = False
        #: CoNDIS virtual connections on this adapter (library.co)
        self.vcs: list[Any] = []

    @property
    def is_co(self) -> bool:
        return self.driver.is_co

    @property
    def ndis_loops_back(self) -> bool:
        """NDIS (not the NIC) performs loopback when the NIC says NO_LOOPBACK (rule 51)."""
        return bool(self.mac_options & NDIS_MAC_OPTION_NO_LOOPBACK)

    def __repr__(self) -> str:
        return f"<adapter {self.name!r} {self.state.name} ({self.driver.name})>"


class AdapterDdis:
    """Adapter life cycle, attributes and status indications (mixed into ``Ndis``)."""

    # --- waiting ----------------------------------------------------------------------------------
    def wait_until(
        self, done: Callable[[], bool], what: str, culprit: Culprit, rule: str = "R65"
    ) -> None:
        """Run the scheduler until ``done()``; if it goes idle first, nobody will ever finish
        ``what``: raise naming ``culprit``."""
        ndis: Ndis = self  # type: ignore[assignment]
        while not done():
            if not ndis.scheduler.step():
                from ..errors import error_class_for

                raise error_class_for(culprit)(
                    f"{what}: never happened and nothing is left to run (a real system hangs here)",
                    rule=rule,
                )

    # --- PnP controls -----------------------------------------------------------------------------
    def add_adapter(
        self, NdisMiniportDriverHandle: DriverBlock, name: str, **keywords: Any
    ) -> tuple[NDIS_STATUS, MiniportBlock | None]:
        """Create an adapter of a registered miniport driver and initialize it (PnP start)."""
        ndis: Ndis = self  # type: ignore[assignment]
        driver = NdisMiniportDriverHandle
        if driver not in ndis.miniport_drivers:
            raise NdisUsageError(f"{driver!r} is not a registered miniport", rule="PY-BAD-HANDLE")
        if name in ndis.adapters:
            raise NdisUsageError(f"an adapter named {name!r} exists already", rule="PY-BAD-NAME")
        block = MiniportBlock(ndis, driver, AdapterConfig(name, dict(keywords)))
        move(block, ADAPTER_TRANSITIONS, "initialize")
        ndis.scheduler.trace("adapter-init", name, driver.name)
        with ndis.irql.at(0):
            if driver.major == 5:
                status = self._initialize_5x(block)
            else:
                status = ndis.call(
                    driver, "MiniportInitializeEx", block, driver.driver, block.config
                )
                status = NDIS_STATUS(status)
        if status != NDIS_STATUS.SUCCESS:
            move(block, ADAPTER_TRANSITIONS, "failed")
            ndis.scheduler.trace("adapter-init-failed", name, status)
            return status, None
        ndis.adapters[name] = block
        if driver.major == 5:
            move(block, ADAPTER_TRANSITIONS, "initialized_5x")
        else:
            move(block, ADAPTER_TRANSITIONS, "initialized_6x")
            status = self.restart_adapter(block)
            if status != NDIS_STATUS.SUCCESS:
                return status, block
        for protocol in list(ndis.protocols):
            ndis.offer_binding(protocol, block)
        return NDIS_STATUS.SUCCESS, block

    def _initialize_5x(self, block: MiniportBlock) -> NDIS_STATUS:
        ndis: Ndis = self  # type: ignore[assignment]
        mediums = list(NDIS_MEDIUM)[:-1]
        result = ndis.call(block.driver, "MiniportInitialize", mediums, block, block.config)
        status, index = result if isinstance(result, tuple) else (result, 0)
        status = NDIS_STATUS(status)
        if status != NDIS_STATUS.SUCCESS:
            return status
        if not 0 <= index < len(mediums):
            raise MiniportContractError(
                f"{block.driver.name}: SelectedMediumIndex {index} outside MediumArray",
                rule="PY-INIT",
            )
        block.medium = mediums[index]
        if block.driver.has("MiniportQueryInformation"):
            for oid, setter in _OID_SETTERS:
                q_status, value = ndis.call(
                    block.driver, "MiniportQueryInformation", block.MiniportAdapterContext, oid
                )
                if q_status == NDIS_STATUS.SUCCESS and value is not None:
                    setter(block, value)
        return status

    def NdisMSetAttributesEx(
        self,
        MiniportAdapterHandle: MiniportBlock,
        MiniportAdapterContext: Any,
        CheckForHangTimeInSeconds: int = 0,
        AttributeFlags: int = 0,
        AdapterType: int = 0,
    ) -> None:
        """NdisMSetAttributesEx (NDIS 5.x, during MiniportInitialize)."""
        block = _adapter(MiniportAdapterHandle)
        check_version(block.driver, "NdisMSetAttributesEx")
        if block.state is not AdapterState.INITIALIZING:
            raise MiniportContractError(
                "NdisMSetAttributesEx outside MiniportInitialize", rule="PY-INIT", subject=block
            )
        block.MiniportAdapterContext = MiniportAdapterContext
        block.deserialized = bool(AttributeFlags & NDIS_ATTRIBUTE_DESERIALIZE) or block.is_co

    def NdisMSetMiniportAttributes(
        self, NdisMiniportHandle: MiniportBlock, MiniportAttributes: Any
    ) -> NDIS_STATUS:
        """NdisMSetMiniportAttributes (NDIS 6, during MiniportInitializeEx)."""
        block = _adapter(NdisMiniportHandle)
        check_version(block.driver, "NdisMSetMiniportAttributes")
        if block.state is not AdapterState.INITIALIZING:
            raise MiniportContractError(
                "NdisMSetMiniportAttributes outside MiniportInitializeEx", rule="PY-INIT"
            )
        attrs = MiniportAttributes
        if isinstance(attrs, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES):
            block.MiniportAdapterContext = attrs.MiniportAdapterContext
            block.deserialized = True
        elif isinstance(attrs, NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES):
            block.medium = attrs.MediaType
            block.max_total_size = attrs.MtuSize + 14
            block.link_speed = attrs.MaxXmitLinkSpeed
            block.media_connected = attrs.MediaConnectState == NdisMediaStateConnected
            block.mac_options = attrs.MacOptions
            block.current_address = bytes(attrs.CurrentMacAddress)
        else:
            raise NdisUsageError(
                f"unknown miniport attributes {attrs!r}", rule="R66", culprit=Culprit.MINIPORT
            )
        return NDIS_STATUS.SUCCESS

    def restart_adapter(self, adapter: MiniportBlock) -> NDIS_STATUS:
        """Restart a paused NDIS 6 adapter (MiniportRestart [-> NdisMRestartComplete]), then
        the bindings paused above it (ProtocolNetPnPEvent(NetEventRestart))."""
        ndis: Ndis = self  # type: ignore[assignment]
        move(adapter, ADAPTER_TRANSITIONS, "restart")
        adapter.pending_restart = True
        status = NDIS_STATUS(
            ndis.call(adapter.driver, "MiniportRestart", adapter.MiniportAdapterContext, None)
        )
        if status != NDIS_STATUS.PENDING:
            self._restart_done(adapter, status)
        else:
            self.wait_until(
                lambda: not adapter.pending_restart,
                f"NdisMRestartComplete for {adapter!r}",
                Culprit.MINIPORT,
            )
        if adapter.state is not AdapterState.RUNNING:
            return NDIS_STATUS.FAILURE
        # the stack restarts bottom-up: the miniport first, then the bindings paused above it
        for binding in list(adapter.bindings):
            if binding.state is BindingState.PAUSED:
                ndis.restart_binding(binding)
        return NDIS_STATUS.SUCCESS

    def _restart_done(self, adapter: MiniportBlock, status: NDIS_STATUS) -> None:
        adapter.pending_restart = False
        ok = status == NDIS_STATUS.SUCCESS
        move(adapter, ADAPTER_TRANSITIONS, "restarted" if ok else "restart_failed")
        adapter.ndis.scheduler.trace("adapter-restart", adapter.name, status)

    def NdisMRestartComplete(self, MiniportAdapterHandle: MiniportBlock, Status: int) -> None:
        block = _adapter(MiniportAdapterHandle)
        check_version(block.driver, "NdisMRestartComplete")
        if not block.pending_restart:
            raise MiniportContractError(
                f"NdisMRestartComplete for {block!r} with no restart pending",
                rule="PY-UNEXPECTED-COMPLETE",
            )
        self._restart_done(block, NDIS_STATUS(Status))

    def pause_adapter(self, adapter: MiniportBlock) -> None:
        """Pause an NDIS 6 adapter top-down (rule 59): bindings first, then the miniport."""
        ndis: Ndis = self  # type: ignore[assignment]
        if adapter.driver.major < 6:
            raise NdisUsageError(
                f"cannot pause {adapter!r}: NDIS 5.x miniports have no pause", rule="PY-STATE"
            )
        for binding in list(adapter.bindings):
            if binding.state is BindingState.RUNNING:
                ndis.pause_binding(binding)
        move(adapter, ADAPTER_TRANSITIONS, "pause")
        adapter.pending_pause = True
        ndis.scheduler.trace("adapter-pausing", adapter.name)
        status = NDIS_STATUS(
            ndis.call(adapter.driver, "MiniportPause", adapter.MiniportAdapterContext, None)
        )
        if status == NDIS_STATUS.PENDING:
            self.wait_until(
                lambda: not adapter.pending_pause,
                f"NdisMPauseComplete for {adapter!r}",
                Culprit.MINIPORT,
                rule="R58",
            )
        elif status == NDIS_STATUS.SUCCESS:
            self._pause_done(adapter)
        else:
            raise MiniportContractError(
                f"MiniportPause returned {status}; a pause can never fail", rule="R58"
            )

    def _pause_done(self, adapter: MiniportBlock) -> None:
        if adapter.outstanding:
            raise MiniportContractError(
                f"{adapter!r} finished pausing with {adapter.outstanding} send(s) not completed "
                "(a pausing miniport completes every outstanding send)",
                rule="R58",
                subject=adapter,
            )
        adapter.pending_pause = False
        move(adapter, ADAPTER_TRANSITIONS, "paused")
        adapter.ndis.scheduler.trace("adapter-paused", adapter.name)

    def NdisMPauseComplete(self, MiniportAdapterHandle: MiniportBlock) -> None:
        block = _adapter(MiniportAdapterHandle)
        check_version(block.driver, "NdisMPauseComplete")
        if not block.pending_pause:
            raise MiniportContractError(
                f"NdisMPauseComplete for {block!r} with no pause pending",
                rule="PY-UNEXPECTED-COMPLETE",
            )
        self._pause_done(block)

    def reset_adapter(self, adapter: MiniportBlock) -> NDIS_STATUS:
        """NDIS resets the adapter (as after a failed CheckForHang): RESET_START to every
        binding, queued sends fail with RESET_IN_PROGRESS, MiniportReset[Ex], then
        [NdisMResetComplete], RESET_END."""
        ndis: Ndis = self  # type: ignore[assignment]
        handler = "MiniportReset" if adapter.driver.major == 5 else "MiniportResetEx"
        if not adapter.driver.has(handler):
            return NDIS_STATUS.NOT_RESETTABLE  # nothing changes: the adapter cannot be reset
        move(adapter, ADAPTER_TRANSITIONS, "reset")
        adapter.pending_reset = True
        ndis.scheduler.trace("adapter-reset-start", adapter.name)
        self._indicate_to_bindings(adapter, NDIS_STATUS.RESET_START)
        ndis._flush_queued_sends(adapter, None, NDIS_STATUS.RESET_IN_PROGRESS)
        result = ndis.call(adapter.driver, handler, adapter.MiniportAdapterContext)
        status, _addressing = result if isinstance(result, tuple) else (result, False)
        status = NDIS_STATUS(status)
        if status != NDIS_STATUS.PENDING:
            self._reset_done(adapter, status)
        return status

    def _reset_done(self, adapter: MiniportBlock, status: NDIS_STATUS) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        adapter.pending_reset = False
        move(adapter, ADAPTER_TRANSITIONS, "reset_done")
        ndis.scheduler.trace("adapter-reset-end", adapter.name, status)
        self._indicate_to_bindings(adapter, NDIS_STATUS.RESET_END)
        ndis._kick_send_queue(adapter)

    def NdisMResetComplete(
        self, MiniportAdapterHandle: MiniportBlock, Status: int, AddressingReset: bool = False
    ) -> None:
        block = _adapter(MiniportAdapterHandle)
        if not block.pending_reset:
            raise MiniportContractError(
                f"NdisMResetComplete for {block!r} with no reset pending",
                rule="PY-UNEXPECTED-COMPLETE",
            )
        self._reset_done(block, NDIS_STATUS(Status))

    def remove_adapter(self, adapter: MiniportBlock) -> None:
        """PnP remove: unbind every protocol, (NDIS 6: pause,) fail queued sends with CLOSING,
        then MiniportHalt[Ex]. The miniport must have completed everything it held."""
        ndis: Ndis = self  # type: ignore[assignment]
        for binding in list(adapter.bindings):
            ndis.unbind(binding)
        if adapter.driver.major >= 6 and adapter.state is AdapterState.RUNNING:
            self.pause_adapter(adapter)
        ndis._co_teardown_adapter(adapter)
        move(adapter, ADAPTER_TRANSITIONS, "halt")
        ndis.scheduler.trace("adapter-halt", adapter.name)
        ndis._flush_queued_sends(adapter, None, NDIS_STATUS.CLOSING)
        with ndis.irql.at(0):
            if adapter.driver.major == 5:
                ndis.call(adapter.driver, "MiniportHalt", adapter.MiniportAdapterContext)
            else:
                ndis.call(adapter.driver, "MiniportHaltEx", adapter.MiniportAdapterContext, 0)
        if adapter.outstanding:
            raise MiniportContractError(
                f"{adapter.driver.name} returned from MiniportHalt holding {adapter.outstanding} "
                "send(s) it never completed (they are lost)",
                rule="PY-HALT-OUTSTANDING",
                subject=adapter,
            )
        move(adapter, ADAPTER_TRANSITIONS, "halted")
        del ndis.adapters[adapter.name]

    # --- status indications -----------------------------------------------------------------------
    def _indicate_to_bindings(
        self, adapter: MiniportBlock, status: int, buffer: Any = None
    ) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        for b in list(adapter.bindings):
            if b.protocol.major == 5 and b.protocol.has("ProtocolStatus"):
                ndis.call(b.protocol, "ProtocolStatus", b.ProtocolBindingContext, status, buffer, 0)
            elif b.protocol.major >= 6 and b.protocol.has("ProtocolStatusEx"):
                indication = NDIS_STATUS_INDICATION(adapter, status, buffer)
                ndis.call(b.protocol, "ProtocolStatusEx", b.ProtocolBindingContext, indication)

    def NdisMIndicateStatus(
        self,
        MiniportAdapterHandle: MiniportBlock,
        GeneralStatus: int,
        StatusBuffer: Any = None,
        StatusBufferSize: int = 0,
    ) -> None:
        """NdisMIndicateStatus (NDIS 5.x): MEDIA_CONNECT / MEDIA_DISCONNECT update the link state;
        every status goes to the bindings' ProtocolStatus."""
        block = _adapter(MiniportAdapterHandle)
        check_version(block.driver, "NdisMIndicateStatus")
        if GeneralStatus == NDIS_STATUS.MEDIA_CONNECT:
            block.media_connected = True
        elif GeneralStatus == NDIS_STATUS.MEDIA_DISCONNECT:
            block.media_connected = False
        block.ndis.scheduler.trace("status", block.name, NDIS_STATUS(GeneralStatus))
        self._indicate_to_bindings(block, GeneralStatus, StatusBuffer)

    def NdisMIndicateStatusComplete(self, MiniportAdapterHandle: MiniportBlock) -> None:
        """NdisMIndicateStatusComplete (NDIS 5.x): ProtocolStatusComplete on every binding."""
        ndis: Ndis = self  # type: ignore[assignment]
        block = _adapter(MiniportAdapterHandle)
        check_version(block.driver, "NdisMIndicateStatusComplete")
        for b in list(block.bindings):
            if b.protocol.has("ProtocolStatusComplete"):
                ndis.call(b.protocol, "ProtocolStatusComplete", b.ProtocolBindingContext)

    def NdisMIndicateStatusEx(
        self, MiniportAdapterHandle: MiniportBlock, StatusIndication: NDIS_STATUS_INDICATION
    ) -> None:
        """NdisMIndicateStatusEx (NDIS 6): LINK_STATE carries an NDIS_LINK_STATE."""
        block = _adapter(MiniportAdapterHandle)
        check_version(block.driver, "NdisMIndicateStatusEx")
        code = StatusIndication.StatusCode
        if code == NDIS_STATUS.LINK_STATE and isinstance(
            StatusIndication.StatusBuffer, NDIS_LINK_STATE
        ):
            link = StatusIndication.StatusBuffer
            block.media_connected = link.MediaConnectState == NdisMediaStateConnected
            block.link_speed = link.XmitLinkSpeed or block.link_speed
        block.ndis.scheduler.trace("status", block.name, NDIS_STATUS(code))
        self._indicate_to_bindings(block, code, StatusIndication.StatusBuffer)


def _adapter(handle: object) -> MiniportBlock:
    if not isinstance(handle, MiniportBlock):
        raise NdisUsageError(f"{handle!r} is not a miniport adapter handle", rule="PY-BAD-HANDLE")
    if handle.driver.kind is not DriverKind.MINIPORT:
        raise NdisUsageError(f"{handle!r} is not a miniport", rule="PY-BAD-HANDLE")
    return handle


def adapter_handle(handle: object) -> MiniportBlock:
    """Validate a MiniportAdapterHandle (for the send-path modules)."""
    return _adapter(handle)


def _set_total(b: MiniportBlock, v: Any) -> None:
    b.max_total_size = int(v)


def _set_address(b: MiniportBlock, v: Any) -> None:
    b.current_address = bytes(v)


def _set_options(b: MiniportBlock, v: Any) -> None:
    b.mac_options = int(v)


def _set_connect(b: MiniportBlock, v: Any) -> None:
    b.media_connected = int(v) == NdisMediaStateConnected


def _set_speed(b: MiniportBlock, v: Any) -> None:
    b.link_speed = int(v) * 100  # OID_GEN_LINK_SPEED is in units of 100 bps


def _set_max_send(b: MiniportBlock, v: Any) -> None:
    b.max_send_packets = max(1, int(v))


_OID_SETTERS: tuple[tuple[int, Callable[[MiniportBlock, Any], None]], ...] = (
    (OID_GEN_MAXIMUM_TOTAL_SIZE, _set_total),
    (OID_802_3_CURRENT_ADDRESS, _set_address),
    (OID_GEN_MAC_OPTIONS, _set_options),
    (OID_GEN_MEDIA_CONNECT_STATUS, _set_connect),
    (OID_GEN_LINK_SPEED, _set_speed),
    (OID_GEN_MAXIMUM_SEND_PACKETS, _set_max_send),
)

__all__ = [
    "BROADCAST",
    "NDIS_LINK_STATE",
    "NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES",
    "NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES",
    "NDIS_STATUS_INDICATION",
    "AdapterConfig",
    "AdapterDdis",
    "MiniportBlock",
    "adapter_handle",
]
