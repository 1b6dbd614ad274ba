"""Adapters: initialization (5.x and 6), attributes, restart, pause, reset, halt, status."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_ATTRIBUTE_DESERIALIZE,
    NDIS_MAC_OPTION_NO_LOOPBACK,
    OID_802_3_CURRENT_ADDRESS,
    OID_GEN_LINK_SPEED,
    OID_GEN_MAC_OPTIONS,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    OID_GEN_MEDIA_CONNECT_STATUS,
    PASSIVE_LEVEL,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
    NdisMedium802_3,
    NdisMediumWan,
)
from pyndis.errors import MiniportContractError, NdisUsageError, NdisVersionError
from pyndis.library.adapter import (
    NDIS_LINK_STATE,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    NDIS_STATUS_INDICATION,
    AdapterConfig,
    MiniportBlock,
    adapter_handle,
)
from pyndis.library.binding import NDIS_OPEN_PARAMETERS, NET_PNP_EVENT_CODE, OpenBlock
from pyndis.library.drivers import DriverBlock
from pyndis.library.kernel import Ndis
from pyndis.library.states import AdapterState, BindingState
from pyndis.status import NDIS_STATUS

MAC = b"\x02\x11\x22\x33\x44\x55"
OK = NDIS_STATUS.SUCCESS
PENDING = NDIS_STATUS.PENDING

# --- small real drivers ---------------------------------------------------------------------------


class Mini5:
    """An NDIS 5.x miniport whose answers the test chooses; it logs what NDIS calls."""

    def __init__(
        self,
        log: list[Any] | None = None,
        *,
        flags: int = 0,
        oids: dict[int, Any] | None = None,
        init_status: int = OK,
        medium: int = NdisMedium802_3,
        index: int | None = None,
        reset_status: int = OK,
    ) -> None:
        self.log = log if log is not None else []
        self.flags = flags
        self.oids = oids or {}
        self.init_status = init_status
        self.medium = medium
        self.index = index
        self.reset_status = reset_status
        self.handle: MiniportBlock | None = None
        self.config: Any = None
        self.queried: list[int] = []

    def MiniportInitialize(self, MediumArray: list[int], handle: MiniportBlock, config: Any) -> Any:
        self.log.append(("MiniportInitialize", self.ndis.KeGetCurrentIrql()))
        self.handle, self.config = handle, config
        self.ndis.NdisMSetAttributesEx(handle, self, 0, self.flags)
        if self.init_status != OK:
            return self.init_status
        index = MediumArray.index(self.medium) if self.index is None else self.index
        return OK, index

    def MiniportHalt(self, ctx: Any) -> None:
        self.log.append(("MiniportHalt", ctx, self.ndis.KeGetCurrentIrql()))

    def MiniportSend(self, ctx: Any, packet: Any, flags: int) -> int:
        raise AssertionError("no sends in these tests")

    def MiniportQueryInformation(self, ctx: Any, oid: int) -> tuple[int, Any]:
        assert ctx is self
        self.queried.append(oid)
        if oid in self.oids:
            return OK, self.oids[oid]
        return NDIS_STATUS.NOT_SUPPORTED, None

    def MiniportReset(self, ctx: Any) -> Any:
        self.log.append("MiniportReset")
        return self.reset_status


class CoMini5(Mini5):
    def MiniportCoCreateVc(self, *args: Any) -> int:
        return OK

    def MiniportCoSendPackets(self, *args: Any) -> None:
        pass


class Mini6:
    """An NDIS 6 miniport; restart/pause/reset answer what the test chose."""

    def __init__(
        self,
        log: list[Any] | None = None,
        *,
        general: NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES | None = None,
        init_status: int = OK,
        restart: int = OK,
        pause: int = OK,
        reset: Any = OK,
    ) -> None:
        self.log = log if log is not None else []
        self.general = general or NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES()
        self.init_status = init_status
        self.restart_status = restart
        self.pause_status = pause
        self.reset_status = reset
        self.handle: MiniportBlock | None = None

    def MiniportInitializeEx(self, handle: MiniportBlock, driver_ctx: Any, params: Any) -> int:
        self.log.append("MiniportInitializeEx")
        self.handle = handle
        self.ndis.NdisMSetMiniportAttributes(
            handle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(self)
        )
        self.ndis.NdisMSetMiniportAttributes(handle, self.general)
        return self.init_status

    def MiniportHaltEx(self, ctx: Any, action: int) -> None:
        self.log.append("MiniportHaltEx")

    def MiniportPause(self, ctx: Any, params: Any) -> int:
        self.log.append("MiniportPause")
        return self.pause_status

    def MiniportRestart(self, ctx: Any, params: Any) -> int:
        self.log.append("MiniportRestart")
        return self.restart_status

    def MiniportResetEx(self, ctx: Any) -> Any:
        self.log.append("MiniportResetEx")
        return self.reset_status

    def MiniportSendNetBufferLists(self, *args: Any) -> None:
        raise AssertionError("no sends in these tests")

    def MiniportCancelSend(self, *args: Any) -> None:
        pass

    def MiniportReturnNetBufferLists(self, *args: Any) -> None:
        pass


class Proto5:
    """Opens every adapter it is offered; records status indications; closes on unbind."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.log = log if log is not None else []
        self.binding: OpenBlock | None = None
        self.open_status: int | None = None
        self.handle: DriverBlock | None = None  # stored once NdisRegisterProtocol returned
        self.statuses: list[tuple[int, Any]] = []

    def ProtocolSendComplete(self, *args: Any) -> None:
        raise AssertionError("no sends in these tests")

    def ProtocolBindAdapter(self, BindContext: Any, DeviceName: str, *rest: Any) -> None:
        assert self.handle is not None
        self.open_status, _, self.binding, _ = self.ndis.NdisOpenAdapter(
            self.handle, self, [NdisMedium802_3], BindContext
        )

    def ProtocolUnbindAdapter(self, *args: Any) -> None:
        self.log.append("ProtocolUnbindAdapter")
        assert self.binding is not None
        self.ndis.NdisCloseAdapter(self.binding)

    def ProtocolStatus(self, ctx: Any, status: int, buffer: Any, size: int) -> None:
        assert ctx is self
        self.log.append(("ProtocolStatus", NDIS_STATUS(status)))
        self.statuses.append((status, buffer))

    def ProtocolStatusComplete(self, ctx: Any) -> None:
        self.log.append("ProtocolStatusComplete")


class Proto6:
    """NDIS 6: opens on bind (then restarted by NDIS), records PnP events and status."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.log = log if log is not None else []
        self.binding: OpenBlock | None = None
        self.indications: list[NDIS_STATUS_INDICATION] = []
        self.handle: DriverBlock | None = None  # stored once NdisRegisterProtocolDriver returned

    def ProtocolSendNetBufferListsComplete(self, *args: Any) -> None:
        raise AssertionError("no sends in these tests")

    def ProtocolReceiveNetBufferLists(self, *args: Any) -> None:
        raise AssertionError("no receives in these tests")

    def ProtocolBindAdapterEx(self, ctx: Any, BindContext: Any, params: Any) -> int:
        assert self.handle is not None
        open_params = NDIS_OPEN_PARAMETERS(params.AdapterName, [NdisMedium802_3])
        status, self.binding = self.ndis.NdisOpenAdapterEx(
            self.handle, self, open_params, BindContext
        )
        return int(status)

    def ProtocolUnbindAdapterEx(self, *args: Any) -> int:
        self.log.append("ProtocolUnbindAdapterEx")
        assert self.binding is not None
        return int(self.ndis.NdisCloseAdapterEx(self.binding))

    def ProtocolNetPnPEvent(self, ctx: Any, event: Any) -> int:
        self.log.append(("ProtocolNetPnPEvent", event.NetEvent))
        return OK

    def ProtocolStatusEx(self, ctx: Any, indication: NDIS_STATUS_INDICATION) -> None:
        self.log.append(("ProtocolStatusEx", NDIS_STATUS(indication.StatusCode)))
        self.indications.append(indication)


def up5(
    mini: Mini5 | None = None, proto: Proto5 | None = None, **keywords: Any
) -> tuple[Ndis, MiniportBlock, Mini5, Proto5]:
    ndis = Ndis()
    mini = mini or Mini5()
    proto = proto or Proto5(mini.log)
    _, handle = ndis.NdisMRegisterMiniport(mini, 5, 1)
    _, proto.handle = ndis.NdisRegisterProtocol(proto, 5, 1)
    assert handle is not None
    status, adapter = ndis.add_adapter(handle, "eth0", **keywords)
    assert status == OK and adapter is not None
    return ndis, adapter, mini, proto


def up6(
    mini: Mini6 | None = None, proto: Proto6 | None = None
) -> tuple[Ndis, MiniportBlock, Mini6, Proto6]:
    ndis = Ndis()
    mini = mini or Mini6()
    proto = proto or Proto6(mini.log)
    _, handle = ndis.NdisMRegisterMiniportDriver(mini, 6, 0)
    _, proto.handle = ndis.NdisRegisterProtocolDriver(proto, 6, 0)
    assert handle is not None
    status, adapter = ndis.add_adapter(handle, "vmnic0")
    assert status == OK and adapter is not None
    return ndis, adapter, mini, proto


def register(ndis: Ndis, mini: Any) -> DriverBlock:
    if hasattr(mini, "MiniportInitializeEx"):
        _, handle = ndis.NdisMRegisterMiniportDriver(mini, 6, 0)
    else:
        _, handle = ndis.NdisMRegisterMiniport(mini, 5, 1)
    assert handle is not None
    return handle


# --- NDIS 5.x initialization ----------------------------------------------------------------------


def test_ndis5_serialized_init() -> None:
    ndis, adapter, mini, proto = up5(speed="fast")
    assert adapter.state is AdapterState.RUNNING
    assert ndis.adapters == {"eth0": adapter}
    assert adapter.MiniportAdapterContext is mini and mini.handle is adapter
    assert adapter.deserialized is False
    assert adapter.medium == NdisMedium802_3
    assert mini.log[0] == ("MiniportInitialize", PASSIVE_LEVEL)
    assert isinstance(mini.config, AdapterConfig) and mini.config.get("speed") == "fast"
    assert mini.config.get("missing", 3) == 3
    assert proto.binding is not None and proto.binding.state is BindingState.RUNNING
    assert "adapter-init eth0 Mini5" in ndis.scheduler.trace_text()
    ndis.assert_nothing_lost()


def test_rule_25_deserialize_attribute() -> None:
    _, adapter, _, _ = up5(Mini5(flags=NDIS_ATTRIBUTE_DESERIALIZE))
    assert adapter.deserialized is True


def test_rule_25_condis_miniport_is_always_deserialized() -> None:
    ndis = Ndis()
    _, adapter = ndis.add_adapter(register(ndis, CoMini5()), "atm0")
    assert adapter is not None and adapter.is_co and adapter.deserialized


def test_ndis5_oid_queries_set_the_adapter_attributes() -> None:
    oids = {
        OID_GEN_MAXIMUM_TOTAL_SIZE: 9014,
        OID_802_3_CURRENT_ADDRESS: bytearray(MAC),
        OID_GEN_MAC_OPTIONS: NDIS_MAC_OPTION_NO_LOOPBACK,
        OID_GEN_MEDIA_CONNECT_STATUS: NdisMediaStateDisconnected,
        OID_GEN_LINK_SPEED: 1_000_000,  # in 100 bps: 100 Mbps
        OID_GEN_MAXIMUM_SEND_PACKETS: 32,
    }
    _, adapter, mini, _ = up5(Mini5(oids=oids))
    assert adapter.max_total_size == 9014
    assert adapter.current_address == MAC and isinstance(adapter.current_address, bytes)
    assert adapter.mac_options == NDIS_MAC_OPTION_NO_LOOPBACK and adapter.ndis_loops_back
    assert adapter.media_connected is False
    assert adapter.link_speed == 100_000_000
    assert adapter.max_send_packets == 32
    assert set(oids) <= set(mini.queried)


def test_ndis5_unanswered_oids_keep_the_defaults() -> None:
    _, adapter, _, _ = up5(Mini5(oids={OID_GEN_MAXIMUM_SEND_PACKETS: 0}))
    assert adapter.max_total_size == 1514
    assert adapter.media_connected is True and not adapter.ndis_loops_back
    assert adapter.max_send_packets == 1  # never below one


def test_ndis5_miniport_without_query_handler_keeps_the_defaults() -> None:
    class Bare:
        def MiniportInitialize(self, media: list[int], handle: Any, config: Any) -> int:
            return OK  # a bare status means index 0 (802.3) and no NdisMSetAttributesEx

        def MiniportHalt(self, ctx: Any) -> None:
            pass

        def MiniportSendPackets(self, *args: Any) -> None:
            pass

    ndis = Ndis()
    status, adapter = ndis.add_adapter(register(ndis, Bare()), "bare")
    assert status == OK and adapter is not None
    assert adapter.medium == NdisMedium802_3 and adapter.MiniportAdapterContext is None
    assert adapter.max_total_size == 1514 and adapter.max_send_packets == 1


def test_ndis5_selected_medium_index_picks_the_medium() -> None:
    _, adapter, _, proto = up5(Mini5(medium=NdisMediumWan))
    assert adapter.medium == NdisMediumWan
    # the protocol asked for 802.3 only: it could not open
    assert proto.binding is None and proto.open_status == NDIS_STATUS.UNSUPPORTED_MEDIA


@pytest.mark.parametrize("index", [-1, 20, 99])
def test_ndis5_bad_selected_medium_index(index: int) -> None:
    ndis = Ndis()
    handle = register(ndis, Mini5(index=index))
    with pytest.raises(MiniportContractError) as info:
        ndis.add_adapter(handle, "eth0")
    assert info.value.rule == "PY-INIT" and str(index) in info.value.message
    assert ndis.adapters == {}


@pytest.mark.parametrize("status", [NDIS_STATUS.FAILURE, NDIS_STATUS.ADAPTER_NOT_FOUND])
def test_ndis5_init_failure_leaves_it_halted_and_unregistered(status: NDIS_STATUS) -> None:
    ndis = Ndis()
    mini = Mini5(init_status=status)
    proto = Proto5()
    _, proto.handle = ndis.NdisRegisterProtocol(proto, 5, 1)
    handle = register(ndis, mini)
    assert ndis.add_adapter(handle, "eth0") == (status, None)
    assert mini.handle is not None and mini.handle.state is AdapterState.HALTED
    assert ndis.adapters == {} and proto.binding is None
    assert not any(e[0] == "MiniportHalt" for e in mini.log if isinstance(e, tuple))
    assert "adapter-init-failed eth0" in ndis.scheduler.trace_text()
    mini.init_status = OK
    status, adapter = ndis.add_adapter(handle, "eth0")  # the name is free again
    assert status == OK and adapter is not None


def test_set_attributes_ex_outside_init_is_refused() -> None:
    ndis, adapter, mini, _ = up5()
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMSetAttributesEx(adapter, mini, 0, NDIS_ATTRIBUTE_DESERIALIZE)
    assert info.value.rule == "PY-INIT"
    assert adapter.deserialized is False


def test_set_attributes_ex_from_an_ndis6_miniport_is_r66() -> None:
    ndis, adapter, mini, _ = up6()
    with pytest.raises(NdisVersionError) as info:
        ndis.NdisMSetAttributesEx(adapter, mini)
    assert info.value.rule == "R66" and "NdisMSetMiniportAttributes" in info.value.message


def test_adapter_handles_are_checked() -> None:
    ndis, adapter, _, proto = up5()
    for bad in (None, proto.binding, "eth0"):
        with pytest.raises(NdisUsageError) as info:
            adapter_handle(bad)
        assert info.value.rule == "PY-BAD-HANDLE"
    assert adapter_handle(adapter) is adapter
    with pytest.raises(NdisUsageError):
        ndis.NdisMIndicateStatus(proto.binding, NDIS_STATUS.MEDIA_CONNECT)  # type: ignore[arg-type]


def test_add_adapter_refuses_duplicates_and_unknown_drivers() -> None:
    ndis, adapter, _, _ = up5()
    with pytest.raises(NdisUsageError) as info:
        ndis.add_adapter(adapter.driver, "eth0")
    assert info.value.rule == "PY-BAD-NAME"
    other = Ndis()
    with pytest.raises(NdisUsageError) as info:
        other.add_adapter(adapter.driver, "eth1")
    assert info.value.rule == "PY-BAD-HANDLE"


# --- NDIS 6 initialization and restart ------------------------------------------------------------


def test_ndis6_init_with_registration_and_general_attributes() -> None:
    general = NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(
        MtuSize=9000,
        MaxXmitLinkSpeed=10_000_000_000,
        MediaConnectState=NdisMediaStateDisconnected,
        MacOptions=NDIS_MAC_OPTION_NO_LOOPBACK,
        CurrentMacAddress=MAC,
    )
    ndis, adapter, mini, proto = up6(Mini6(general=general))
    assert adapter.state is AdapterState.RUNNING
    assert adapter.MiniportAdapterContext is mini and adapter.deserialized
    assert adapter.max_total_size == 9014 and adapter.link_speed == 10_000_000_000
    assert adapter.media_connected is False and adapter.ndis_loops_back
    assert adapter.current_address == MAC
    assert mini.log[:2] == ["MiniportInitializeEx", "MiniportRestart"]
    assert proto.binding is not None and proto.binding.state is BindingState.RUNNING
    ndis.assert_nothing_lost()


def test_set_miniport_attributes_misuse() -> None:
    ndis, adapter, _, _ = up6()
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMSetMiniportAttributes(adapter, NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES())
    assert info.value.rule == "PY-INIT"
    _, adapter5, _, _ = up5()
    with pytest.raises(NdisVersionError) as vinfo:
        adapter5.ndis.NdisMSetMiniportAttributes(adapter5, object())
    assert vinfo.value.rule == "PY-VERSION"


def test_unknown_miniport_attributes_blame_the_miniport() -> None:
    class Odd(Mini6):
        def MiniportInitializeEx(self, handle: MiniportBlock, *args: Any) -> int:
            self.ndis.NdisMSetMiniportAttributes(handle, {"MtuSize": 1500})
            return OK

    ndis = Ndis()
    with pytest.raises(NdisUsageError) as info:
        ndis.add_adapter(register(ndis, Odd()), "odd")
    assert info.value.rule == "R66" and info.value.culprit.name == "MINIPORT"


def test_ndis6_init_failure() -> None:
    ndis = Ndis()
    mini = Mini6(init_status=NDIS_STATUS.RESOURCES)
    assert ndis.add_adapter(register(ndis, mini), "x") == (NDIS_STATUS.RESOURCES, None)
    assert mini.log == ["MiniportInitializeEx"] and ndis.adapters == {}


def test_restart_pending_then_ndis_m_restart_complete() -> None:
    ndis = Ndis()
    mini = Mini6(restart=PENDING)
    proto = Proto6(mini.log)
    _, proto.handle = ndis.NdisRegisterProtocolDriver(proto, 6, 0)
    handle = register(ndis, mini)
    completed_at: list[int] = []

    def complete() -> None:
        assert mini.handle is not None and mini.handle.state is AdapterState.RESTARTING
        completed_at.append(ndis.scheduler.now_ns)
        ndis.NdisMRestartComplete(mini.handle, OK)

    original = mini.MiniportRestart

    def restart(ctx: Any, params: Any) -> int:
        ndis.scheduler.call_later(2_000, complete)
        return original(ctx, params)

    handle.handlers["MiniportRestart"] = restart
    status, adapter = ndis.add_adapter(handle, "vmnic0")
    assert status == OK and adapter is not None and adapter.state is AdapterState.RUNNING
    assert completed_at == [2_000]
    assert proto.binding is not None  # offered only once the adapter runs


def test_rule_65_restart_that_never_completes_is_a_hang() -> None:
    ndis = Ndis()
    with pytest.raises(MiniportContractError) as info:
        ndis.add_adapter(register(ndis, Mini6(restart=PENDING)), "vmnic0")
    assert info.value.rule == "R65" and "NdisMRestartComplete" in info.value.message


def test_restart_failure_leaves_the_adapter_paused() -> None:
    ndis = Ndis()
    proto = Proto6()
    _, proto.handle = ndis.NdisRegisterProtocolDriver(proto, 6, 0)
    status, adapter = ndis.add_adapter(register(ndis, Mini6(restart=NDIS_STATUS.FAILURE)), "v")
    assert status == NDIS_STATUS.FAILURE
    assert adapter is not None and adapter.state is AdapterState.PAUSED
    assert proto.binding is None


def test_restart_complete_with_failure() -> None:
    ndis, adapter, mini, _ = up6()
    ndis.pause_adapter(adapter)
    mini.restart_status = PENDING
    ndis.scheduler.call_later(1, ndis.NdisMRestartComplete, adapter, NDIS_STATUS.FAILURE)
    assert ndis.restart_adapter(adapter) == NDIS_STATUS.FAILURE
    assert adapter.state is AdapterState.PAUSED


def test_unexpected_restart_complete() -> None:
    ndis, adapter, _, _ = up6()
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMRestartComplete(adapter, OK)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"
    ndis5, adapter5, _, _ = up5()
    with pytest.raises(NdisVersionError):
        ndis5.NdisMRestartComplete(adapter5, OK)


# --- pause ----------------------------------------------------------------------------------------


def test_rule_59_pause_is_top_down_and_restart_bottom_up() -> None:
    ndis, adapter, mini, proto = up6()
    mini.log.clear()
    ndis.pause_adapter(adapter)
    assert mini.log == [("ProtocolNetPnPEvent", NET_PNP_EVENT_CODE.NetEventPause), "MiniportPause"]
    assert adapter.state is AdapterState.PAUSED
    assert proto.binding is not None and proto.binding.state is BindingState.PAUSED
    mini.log.clear()
    assert ndis.restart_adapter(adapter) == OK
    assert mini.log == [
        "MiniportRestart",
        ("ProtocolNetPnPEvent", NET_PNP_EVENT_CODE.NetEventRestart),
    ]
    assert adapter.state is AdapterState.RUNNING and proto.binding.state is BindingState.RUNNING
    trace = ndis.scheduler.trace_text()
    assert "adapter-pausing vmnic0" in trace and "adapter-paused vmnic0" in trace


def test_pause_pending_then_ndis_m_pause_complete() -> None:
    ndis, adapter, mini, _ = up6()
    mini.pause_status = PENDING
    ndis.scheduler.call_later(5_000, ndis.NdisMPauseComplete, adapter)
    ndis.pause_adapter(adapter)
    assert adapter.state is AdapterState.PAUSED and ndis.scheduler.now_ns == 5_000


def test_rule_58_pause_that_never_completes() -> None:
    ndis, adapter, mini, _ = up6()
    mini.pause_status = PENDING
    with pytest.raises(MiniportContractError) as info:
        ndis.pause_adapter(adapter)
    assert info.value.rule == "R58" and "NdisMPauseComplete" in info.value.message


def test_rule_58_a_pause_cannot_fail() -> None:
    ndis, adapter, mini, _ = up6()
    mini.pause_status = NDIS_STATUS.FAILURE
    with pytest.raises(MiniportContractError) as info:
        ndis.pause_adapter(adapter)
    assert info.value.rule == "R58"


def test_rule_58_pausing_with_outstanding_sends() -> None:
    ndis, adapter, _, _ = up6()
    adapter.outstanding = 2
    with pytest.raises(MiniportContractError) as info:
        ndis.pause_adapter(adapter)
    assert info.value.rule == "R58" and "2 send(s)" in info.value.message
    assert info.value.subject is adapter


def test_rule_58_pause_complete_with_outstanding_sends() -> None:
    ndis, adapter, mini, _ = up6()
    mini.pause_status = PENDING
    adapter.outstanding = 1
    ndis.scheduler.call_later(1, ndis.NdisMPauseComplete, adapter)
    with pytest.raises(MiniportContractError) as info:
        ndis.pause_adapter(adapter)
    assert info.value.rule == "R58"


def test_pause_waits_for_the_bindings_sends() -> None:
    ndis, adapter, _, proto = up6()
    binding = proto.binding
    assert binding is not None
    binding.counters.sent = 1

    def complete() -> None:
        binding.counters.completed += 1
        ndis.binding_send_done(binding)

    ndis.scheduler.call_later(7_000, complete)
    ndis.pause_adapter(adapter)
    assert ndis.scheduler.now_ns == 7_000 and binding.state is BindingState.PAUSED
    ndis.assert_nothing_lost()


def test_rule_57_binding_pause_with_sends_nobody_completes() -> None:
    ndis, adapter, _, proto = up6()
    assert proto.binding is not None
    proto.binding.counters.sent = 1
    with pytest.raises(MiniportContractError) as info:
        ndis.pause_adapter(adapter)
    assert info.value.rule == "R57"
    assert adapter.state is AdapterState.RUNNING  # the miniport was never asked to pause


def test_unexpected_pause_complete() -> None:
    ndis, adapter, _, _ = up6()
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMPauseComplete(adapter)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


def test_ndis5_adapters_have_no_pause() -> None:
    ndis, adapter, _, proto = up5()
    with pytest.raises(NdisUsageError) as info:
        ndis.pause_adapter(adapter)
    assert info.value.rule == "PY-STATE"
    assert adapter.state is AdapterState.RUNNING
    assert proto.binding is not None and proto.binding.state is BindingState.RUNNING


def test_pausing_a_paused_adapter_is_refused() -> None:
    ndis, adapter, _, _ = up6()
    ndis.pause_adapter(adapter)
    with pytest.raises(NdisUsageError):
        ndis.pause_adapter(adapter)


# --- reset ----------------------------------------------------------------------------------------


def test_ndis5_reset_indicates_reset_start_and_end() -> None:
    ndis, adapter, mini, _ = up5()
    mini.log.clear()
    assert ndis.reset_adapter(adapter) == OK
    assert mini.log == [
        ("ProtocolStatus", NDIS_STATUS.RESET_START),
        "MiniportReset",
        ("ProtocolStatus", NDIS_STATUS.RESET_END),
    ]
    assert adapter.state is AdapterState.RUNNING and not adapter.pending_reset
    trace = ndis.scheduler.trace_text()
    assert "adapter-reset-start eth0" in trace and "adapter-reset-end eth0" in trace


def test_ndis5_reset_pending_then_ndis_m_reset_complete() -> None:
    ndis, adapter, mini, _ = up5(Mini5(reset_status=PENDING))
    mini.log.clear()
    assert ndis.reset_adapter(adapter) == PENDING
    assert adapter.state is AdapterState.RESETTING
    assert mini.log == [("ProtocolStatus", NDIS_STATUS.RESET_START), "MiniportReset"]
    with pytest.raises(NdisUsageError):
        ndis.reset_adapter(adapter)  # already resetting
    ndis.NdisMResetComplete(adapter, OK, False)
    assert mini.log[-1] == ("ProtocolStatus", NDIS_STATUS.RESET_END)
    assert adapter.state is AdapterState.RUNNING


def test_ndis6_reset_reaches_protocol_status_ex() -> None:
    ndis, adapter, mini, proto = up6(Mini6(reset=(PENDING, False)))
    mini.log.clear()
    assert ndis.reset_adapter(adapter) == PENDING
    ndis.NdisMResetComplete(adapter, OK)  # NDIS 6 miniports call it too (no version gate)
    assert mini.log == [
        ("ProtocolStatusEx", NDIS_STATUS.RESET_START),
        "MiniportResetEx",
        ("ProtocolStatusEx", NDIS_STATUS.RESET_END),
    ]
    assert all(i.SourceHandle is adapter for i in proto.indications)


def test_unexpected_reset_complete() -> None:
    ndis, adapter, _, _ = up5()
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMResetComplete(adapter, OK)
    assert info.value.rule == "PY-UNEXPECTED-COMPLETE"


# --- halt -----------------------------------------------------------------------------------------


def test_ndis5_remove_unbinds_then_halts() -> None:
    ndis, adapter, mini, proto = up5()
    mini.log.clear()
    ndis.remove_adapter(adapter)
    assert mini.log == ["ProtocolUnbindAdapter", ("MiniportHalt", mini, PASSIVE_LEVEL)]
    assert proto.binding is not None and proto.binding.state is BindingState.CLOSED
    assert adapter.state is AdapterState.HALTED and ndis.adapters == {}
    assert adapter.bindings == [] and ndis.bindings == []
    assert "adapter-halt eth0" in ndis.scheduler.trace_text()
    ndis.assert_nothing_lost()


def test_ndis6_remove_pauses_before_halting() -> None:
    ndis, adapter, mini, proto = up6()
    mini.log.clear()
    ndis.remove_adapter(adapter)
    assert mini.log == [
        ("ProtocolNetPnPEvent", NET_PNP_EVENT_CODE.NetEventPause),
        "ProtocolUnbindAdapterEx",
        "MiniportPause",
        "MiniportHaltEx",
    ]
    assert proto.binding is not None and proto.binding.state is BindingState.CLOSED
    assert adapter.state is AdapterState.HALTED and ndis.adapters == {}
    ndis.assert_nothing_lost()


def test_ndis6_remove_of_a_paused_adapter_does_not_pause_again() -> None:
    ndis, adapter, mini, _ = up6()
    ndis.pause_adapter(adapter)
    mini.log.clear()
    ndis.remove_adapter(adapter)
    assert "MiniportPause" not in mini.log and mini.log[-1] == "MiniportHaltEx"


def test_halt_with_sends_still_held_by_the_miniport() -> None:
    ndis, adapter, _, _ = up5()
    adapter.outstanding = 3
    with pytest.raises(MiniportContractError) as info:
        ndis.remove_adapter(adapter)
    assert info.value.rule == "PY-HALT-OUTSTANDING" and "3 send(s)" in info.value.message
    assert adapter.state is AdapterState.HALTING


def test_halt_of_a_resetting_adapter_is_refused() -> None:
    ndis, adapter, mini, _ = up5(Mini5(reset_status=PENDING))
    ndis.reset_adapter(adapter)
    with pytest.raises(NdisUsageError):
        ndis.remove_adapter(adapter)
    assert not any(isinstance(e, tuple) and e[0] == "MiniportHalt" for e in mini.log)


# --- status indications ---------------------------------------------------------------------------


def test_media_disconnect_and_connect() -> None:
    ndis, adapter, mini, proto = up5()
    ndis.NdisMIndicateStatus(adapter, NDIS_STATUS.MEDIA_DISCONNECT, b"why", 3)
    assert adapter.media_connected is False
    ndis.NdisMIndicateStatusComplete(adapter)
    ndis.NdisMIndicateStatus(adapter, NDIS_STATUS.MEDIA_CONNECT)
    assert adapter.media_connected is True
    assert proto.statuses == [
        (NDIS_STATUS.MEDIA_DISCONNECT, b"why"),
        (NDIS_STATUS.MEDIA_CONNECT, None),
    ]
    assert "ProtocolStatusComplete" in mini.log
    assert f"status eth0 {NDIS_STATUS.MEDIA_DISCONNECT}" in ndis.scheduler.trace_text()


def test_other_statuses_leave_the_link_alone() -> None:
    ndis, adapter, _, proto = up5()
    ndis.NdisMIndicateStatus(adapter, NDIS_STATUS.MEDIA_DISCONNECT)
    ndis.NdisMIndicateStatus(adapter, NDIS_STATUS.RESET_END)
    assert adapter.media_connected is False and len(proto.statuses) == 2


def test_link_state_updates_media_and_speed() -> None:
    ndis, adapter, _, proto = up6()
    speed = adapter.link_speed
    down = NDIS_LINK_STATE(NdisMediaStateDisconnected)
    ndis.NdisMIndicateStatusEx(
        adapter, NDIS_STATUS_INDICATION(adapter, NDIS_STATUS.LINK_STATE, down)
    )
    assert adapter.media_connected is False and adapter.link_speed == speed
    up = NDIS_LINK_STATE(NdisMediaStateConnected, XmitLinkSpeed=40_000_000_000)
    ndis.NdisMIndicateStatusEx(adapter, NDIS_STATUS_INDICATION(adapter, NDIS_STATUS.LINK_STATE, up))
    assert adapter.media_connected is True and adapter.link_speed == 40_000_000_000
    assert [i.StatusBuffer for i in proto.indications] == [down, up]


def test_status_ddis_are_version_gated() -> None:
    ndis6, adapter6, _, _ = up6()
    with pytest.raises(NdisVersionError) as info:
        ndis6.NdisMIndicateStatus(adapter6, NDIS_STATUS.MEDIA_CONNECT)
    assert info.value.rule == "R66" and "NdisMIndicateStatusEx" in info.value.message
    ndis5, adapter5, _, _ = up5()
    indication = NDIS_STATUS_INDICATION(adapter5, NDIS_STATUS.LINK_STATE, NDIS_LINK_STATE())
    with pytest.raises(NdisVersionError) as info:
        ndis5.NdisMIndicateStatusEx(adapter5, indication)
    assert info.value.rule == "PY-VERSION"


class NoResetMini5(Mini5):
    """A miniport that supplies no MiniportReset (the handler is optional)."""

    MiniportReset = None  # type: ignore[assignment]


def test_reset_of_a_miniport_without_a_reset_handler_is_not_resettable() -> None:
    ndis, adapter, mini, _ = up5(NoResetMini5())
    mini.log.clear()
    assert ndis.reset_adapter(adapter) == NDIS_STATUS.NOT_RESETTABLE
    assert adapter.state is AdapterState.RUNNING and not adapter.pending_reset
    assert mini.log == []  # no RESET_START was indicated for a reset that never began


def test_ndis_m_indicate_status_complete_is_an_ndis5_ddi() -> None:
    ndis, adapter, _, _ = up6()
    with pytest.raises(NdisVersionError) as info:
        ndis.NdisMIndicateStatusComplete(adapter)
    assert info.value.rule == "R66"


def test_rule_24_an_ndis6_miniport_is_always_deserialized() -> None:
    """Serialized miniports are not supported for NDIS 6 drivers: an NDIS 6 adapter is
    deserialized from the start, and the only DDI that could make it serialized
    (NdisMSetAttributesEx without NDIS_ATTRIBUTE_DESERIALIZE) is refused to it (R66)."""
    ndis, adapter, _, _ = up6()
    assert adapter.deserialized
    with pytest.raises(NdisVersionError) as info:
        ndis.NdisMSetAttributesEx(adapter, object(), 0, 0)
    assert info.value.rule == "R66" and "NdisMSetMiniportAttributes" in str(info.value)
    _, adapter5, _, _ = up5()
    assert not adapter5.deserialized  # an NDIS 5.x miniport is serialized unless it says so
