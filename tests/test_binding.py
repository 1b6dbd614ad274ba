"""Bindings: open, restart, close (SUCCESS and PENDING), unbind, requests, the receive filter."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
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
    NdisMedium802_3,
    NdisMedium802_5,
    NdisMediumWan,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
)
from pyndis.errors import (
    MiniportContractError,
    NdisUsageError,
    NdisVersionError,
    ProtocolContractError,
)
from pyndis.library.adapter import (
    BROADCAST,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    MiniportBlock,
)
from pyndis.library.binding import (
    NDIS_OID_REQUEST,
    NDIS_OPEN_PARAMETERS,
    NET_PNP_EVENT_CODE,
    OpenBlock,
    binding_accepts,
    binding_handle,
    is_group,
)
from pyndis.library.drivers import DriverBlock
from pyndis.library.kernel import Ndis
from pyndis.library.states import AdapterState, BindingState
from pyndis.status import NDIS_STATUS

OK = NDIS_STATUS.SUCCESS
MAC = b"\x02\x00\x00\x00\x00\x0a"
OTHER = b"\x02\x00\x00\x00\x00\x0b"
MULTICAST = b"\x01\x00\x5e\x00\x00\x01"
OID_VENDOR = 0x0001010C  # OID_GEN_VENDOR_ID: answered by the miniport, not by NDIS
QUERY = NdisRequestQueryInformation
SET = NdisRequestSetInformation

# --- small real drivers ---------------------------------------------------------------------------


class Mini5:
    """An NDIS 5.x miniport answering OIDs from a dict and recording sets."""

    def __init__(self, **oids: Any) -> None:
        self.oids: dict[int, Any] = {
            OID_802_3_CURRENT_ADDRESS: MAC,
            OID_GEN_MAXIMUM_TOTAL_SIZE: 1518,
            OID_GEN_LINK_SPEED: 100_000,
            OID_GEN_MAXIMUM_SEND_PACKETS: 8,
            OID_VENDOR: 0x00AB_CDEF,
        }
        self.sets: list[tuple[int, Any]] = []

    def MiniportInitialize(self, media: list[int], handle: MiniportBlock, config: Any) -> Any:
        self.ndis.NdisMSetAttributesEx(handle, self)
        return OK, media.index(NdisMedium802_3)

    def MiniportHalt(self, ctx: Any) -> None:
        pass

    def MiniportSend(self, *args: Any) -> int:
        raise AssertionError("no sends here")

    def MiniportQueryInformation(self, ctx: Any, oid: int) -> tuple[int, Any]:
        assert ctx is self
        if oid in self.oids:
            return OK, self.oids[oid]
        return NDIS_STATUS.INVALID_OID, None

    def MiniportSetInformation(self, ctx: Any, oid: int, value: Any) -> int:
        assert ctx is self
        self.sets.append((oid, value))
        return OK if oid == OID_GEN_CURRENT_PACKET_FILTER else NDIS_STATUS.NOT_SUPPORTED


class Mini6:
    def __init__(self) -> None:
        self.requests: list[tuple[int, int, Any]] = []
        self.pause_status = OK

    def MiniportInitializeEx(self, handle: MiniportBlock, *args: Any) -> int:
        self.ndis.NdisMSetMiniportAttributes(
            handle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(self)
        )
        self.ndis.NdisMSetMiniportAttributes(
            handle, NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(CurrentMacAddress=MAC)
        )
        return OK

    def MiniportHaltEx(self, ctx: Any, action: int) -> None:
        pass

    def MiniportPause(self, ctx: Any, params: Any) -> int:
        return self.pause_status

    def MiniportRestart(self, ctx: Any, params: Any) -> int:
        return OK

    def MiniportSendNetBufferLists(self, *args: Any) -> None:
        raise AssertionError("no sends here")

    def MiniportCancelSend(self, *args: Any) -> None:
        pass

    def MiniportReturnNetBufferLists(self, *args: Any) -> None:
        pass

    def MiniportOidRequest(self, ctx: Any, request: NDIS_OID_REQUEST) -> int:
        assert ctx is self
        self.requests.append((request.RequestType, request.Oid, request.InformationBuffer))
        if request.Oid == OID_VENDOR and request.RequestType == QUERY:
            request.InformationBuffer = 0x00AB_CDEF
            return OK
        if request.Oid == OID_GEN_CURRENT_PACKET_FILTER:
            return OK
        return NDIS_STATUS.INVALID_OID


class Proto5:
    """Does not bind by itself (no ProtocolBindAdapter): the tests open explicitly."""

    def __init__(self) -> None:
        self.log: list[Any] = []

    def ProtocolSendComplete(self, *args: Any) -> None:
        raise AssertionError("no sends here")

    def ProtocolCloseAdapterComplete(self, ctx: Any, status: int) -> None:
        self.log.append(("ProtocolCloseAdapterComplete", ctx, status))


class Proto5Unbinds(Proto5):
    def __init__(self) -> None:
        super().__init__()
        self.binding: OpenBlock | None = None

    def ProtocolUnbindAdapter(self, *args: Any) -> None:
        self.log.append("ProtocolUnbindAdapter")
        assert self.binding is not None
        self.ndis.NdisCloseAdapter(self.binding)


class Proto6:
    def __init__(self, restart_status: int = OK) -> None:
        self.log: list[Any] = []
        self.restart_status = restart_status

    def ProtocolSendNetBufferListsComplete(self, *args: Any) -> None:
        raise AssertionError("no sends here")

    def ProtocolReceiveNetBufferLists(self, *args: Any) -> None:
        raise AssertionError("no receives here")

    def ProtocolNetPnPEvent(self, ctx: Any, event: Any) -> int:
        self.log.append(event.NetEvent)
        if event.NetEvent == NET_PNP_EVENT_CODE.NetEventRestart:
            return self.restart_status
        return OK

    def ProtocolCloseAdapterCompleteEx(self, ctx: Any) -> None:
        self.log.append(("ProtocolCloseAdapterCompleteEx", ctx))


class Proto6Unbinds(Proto6):
    def __init__(self) -> None:
        super().__init__()
        self.binding: OpenBlock | None = None

    def ProtocolUnbindAdapterEx(self, *args: Any) -> int:
        self.log.append("ProtocolUnbindAdapterEx")
        assert self.binding is not None
        return int(self.ndis.NdisCloseAdapterEx(self.binding))


class Bare6(Proto6):
    """No ProtocolNetPnPEvent, no completion handler."""

    ProtocolNetPnPEvent = None  # type: ignore[assignment]
    ProtocolCloseAdapterCompleteEx = None  # type: ignore[assignment]


def kernel5(
    mini: Mini5 | None = None, proto: Proto5 | None = None
) -> tuple[Ndis, MiniportBlock, DriverBlock, Mini5]:
    ndis = Ndis()
    mini = mini or Mini5()
    _, mhandle = ndis.NdisMRegisterMiniport(mini, 5, 1)
    _, phandle = ndis.NdisRegisterProtocol(proto or Proto5(), 5, 1)
    assert mhandle is not None and phandle is not None
    _, adapter = ndis.add_adapter(mhandle, "eth0")
    assert adapter is not None
    return ndis, adapter, phandle, mini


def kernel6(proto: Proto6 | None = None) -> tuple[Ndis, MiniportBlock, DriverBlock, Mini6]:
    ndis = Ndis()
    mini = Mini6()
    _, mhandle = ndis.NdisMRegisterMiniportDriver(mini, 6, 0)
    _, phandle = ndis.NdisRegisterProtocolDriver(proto or Proto6(), 6, 0)
    assert mhandle is not None and phandle is not None
    _, adapter = ndis.add_adapter(mhandle, "vmnic0")
    assert adapter is not None
    return ndis, adapter, phandle, mini


def open5(ndis: Ndis, proto: DriverBlock, name: Any = "eth0") -> OpenBlock:
    status, error, binding, index = ndis.NdisOpenAdapter(
        proto, proto.driver, [NdisMedium802_3], name
    )
    assert (status, error, index) == (OK, OK, 0) and binding is not None
    return binding


def open6(ndis: Ndis, proto: DriverBlock, adapter: MiniportBlock) -> OpenBlock:
    params = NDIS_OPEN_PARAMETERS(adapter.name, [NdisMedium802_3])
    status, binding = ndis.NdisOpenAdapterEx(proto, proto.driver, params, adapter)
    assert status == OK and binding is not None
    return binding


# --- NdisOpenAdapter ------------------------------------------------------------------------------


def test_open_by_name_or_by_bind_context() -> None:
    ndis, adapter, proto, _ = kernel5()
    by_name, by_block = open5(ndis, proto), open5(ndis, proto, adapter)
    for b in (by_name, by_block):
        assert b.state is BindingState.RUNNING and b.adapter is adapter
        assert b.protocol is proto and b.ProtocolBindingContext is proto.driver
        assert b.NdisBindingHandle is b
    assert adapter.bindings == [by_name, by_block] == ndis.bindings
    assert "open Proto5 eth0" in ndis.scheduler.trace_text()
    assert repr(by_name) == "<binding Proto5->eth0 RUNNING>"


def test_open_of_an_unknown_adapter_is_not_found() -> None:
    ndis, _, proto, _ = kernel5()
    assert ndis.NdisOpenAdapter(proto, None, [NdisMedium802_3], "eth9") == (
        NDIS_STATUS.ADAPTER_NOT_FOUND,
        OK,
        None,
        0,
    )
    elsewhere, adapter, _, _ = kernel5()
    status, _, binding, _ = ndis.NdisOpenAdapter(proto, None, [NdisMedium802_3], adapter)
    assert (status, binding) == (NDIS_STATUS.ADAPTER_NOT_FOUND, None)
    assert ndis.bindings == [] and elsewhere.bindings == []


def test_open_with_no_common_medium_is_unsupported_media() -> None:
    ndis, adapter, proto, _ = kernel5()
    status, _, binding, _ = ndis.NdisOpenAdapter(
        proto, None, [NdisMediumWan, NdisMedium802_5], "eth0"
    )
    assert (status, binding) == (NDIS_STATUS.UNSUPPORTED_MEDIA, None)
    assert adapter.bindings == []


def test_selected_medium_index_is_the_position_in_the_protocols_array() -> None:
    ndis, _, proto, _ = kernel5()
    status, _, binding, index = ndis.NdisOpenAdapter(
        proto, None, [NdisMediumWan, NdisMedium802_5, NdisMedium802_3], "eth0"
    )
    assert status == OK and binding is not None and index == 2


def test_open_of_an_adapter_that_is_resetting_is_not_ready() -> None:
    class Slow(Mini5):
        def MiniportReset(self, ctx: Any) -> int:
            return NDIS_STATUS.PENDING

    ndis, adapter, proto, _ = kernel5(Slow())
    ndis.reset_adapter(adapter)
    status, _, binding, _ = ndis.NdisOpenAdapter(proto, None, [NdisMedium802_3], "eth0")
    assert (status, binding) == (NDIS_STATUS.ADAPTER_NOT_READY, None)


def test_open_needs_a_registered_protocol_of_the_right_generation() -> None:
    ndis, _, proto, _ = kernel5()
    ndis.NdisDeregisterProtocol(proto)
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisOpenAdapter(proto, None, [NdisMedium802_3], "eth0")
    assert info.value.rule == "PY-BAD-HANDLE"
    _, p6 = ndis.NdisRegisterProtocolDriver(Proto6(), 6, 0)
    assert p6 is not None
    with pytest.raises(NdisVersionError) as vinfo:
        ndis.NdisOpenAdapter(p6, None, [NdisMedium802_3], "eth0")
    assert vinfo.value.rule == "R66" and "NdisOpenAdapterEx" in vinfo.value.message
    _, p5 = ndis.NdisRegisterProtocol(Proto5(), 5, 1)
    assert p5 is not None
    with pytest.raises(NdisVersionError) as vinfo:
        ndis.NdisOpenAdapterEx(p5, None, NDIS_OPEN_PARAMETERS("eth0", [NdisMedium802_3]))
    assert vinfo.value.rule == "PY-VERSION"


# --- NdisOpenAdapterEx and restart (rule 57) ------------------------------------------------------


def test_rule_57_open_ex_opens_paused_and_is_restarted() -> None:
    ndis, adapter, proto, _ = kernel6()
    binding = open6(ndis, proto, adapter)
    assert binding.state is BindingState.RUNNING
    assert proto.driver.log == [NET_PNP_EVENT_CODE.NetEventRestart]
    assert "binding-restart Proto6" in ndis.scheduler.trace_text()


def test_open_ex_by_adapter_name() -> None:
    ndis, adapter, proto, _ = kernel6()
    status, binding = ndis.NdisOpenAdapterEx(
        proto, None, NDIS_OPEN_PARAMETERS("vmnic0", [NdisMedium802_3])
    )
    assert status == OK and binding is not None and binding.adapter is adapter
    status, binding = ndis.NdisOpenAdapterEx(
        proto, None, NDIS_OPEN_PARAMETERS("nothere", [NdisMedium802_3])
    )
    assert (status, binding) == (NDIS_STATUS.ADAPTER_NOT_FOUND, None)


def test_open_ex_without_a_pnp_handler_still_runs() -> None:
    ndis, adapter, proto, _ = kernel6(Bare6())
    assert open6(ndis, proto, adapter).state is BindingState.RUNNING


def test_rule_57_a_failed_restart_leaves_the_binding_paused() -> None:
    ndis, adapter, proto, _ = kernel6(Proto6(restart_status=NDIS_STATUS.FAILURE))
    assert open6(ndis, proto, adapter).state is BindingState.PAUSED


def test_open_ex_on_a_paused_adapter_stays_paused_until_the_adapter_restarts() -> None:
    ndis, adapter, proto, _ = kernel6()
    ndis.pause_adapter(adapter)
    binding = open6(ndis, proto, adapter)
    assert binding.state is BindingState.PAUSED and proto.driver.log == []
    assert ndis.restart_adapter(adapter) == OK
    assert binding.state is BindingState.RUNNING
    assert proto.driver.log == [NET_PNP_EVENT_CODE.NetEventRestart]


def test_rule_57_pause_binding_notifies_the_protocol() -> None:
    ndis, adapter, proto, _ = kernel6()
    binding = open6(ndis, proto, adapter)
    ndis.pause_binding(binding)
    assert binding.state is BindingState.PAUSED
    assert proto.driver.log[-1] == NET_PNP_EVENT_CODE.NetEventPause
    with pytest.raises(NdisUsageError):
        ndis.pause_binding(binding)  # not running any more


# --- close ----------------------------------------------------------------------------------------


def test_close_with_nothing_outstanding_succeeds_at_once() -> None:
    ndis, adapter, proto, _ = kernel5()
    keep, gone = open5(ndis, proto), open5(ndis, proto)
    ndis.NdisRequest(keep, SET, OID_GEN_CURRENT_PACKET_FILTER, 0x1)
    ndis.NdisRequest(gone, SET, OID_GEN_CURRENT_PACKET_FILTER, 0x8)
    assert adapter.packet_filter == 0x9
    assert ndis.NdisCloseAdapter(gone) == OK
    assert gone.state is BindingState.CLOSED and not gone.pending_close
    assert adapter.bindings == [keep] and ndis.bindings == [keep]
    assert adapter.packet_filter == 0x1
    assert proto.driver.log == []  # no ProtocolCloseAdapterComplete for a synchronous close
    trace = ndis.scheduler.trace_text()
    assert "close Proto5 eth0" in trace and "closed Proto5 eth0" in trace
    ndis.assert_nothing_lost()


def test_close_pending_until_the_last_send_completes() -> None:
    ndis, adapter, proto, _ = kernel5()
    binding = open5(ndis, proto)
    binding.counters.sent = 2
    assert ndis.NdisCloseAdapter(binding) == NDIS_STATUS.PENDING
    assert binding.state is BindingState.CLOSING and binding.pending_close
    binding.counters.completed = 1
    ndis.binding_send_done(binding)
    assert binding.state is BindingState.CLOSING and proto.driver.log == []
    binding.counters.completed = 2
    ndis.binding_send_done(binding)
    assert binding.state is BindingState.CLOSED
    assert proto.driver.log == [("ProtocolCloseAdapterComplete", proto.driver, OK)]
    assert adapter.bindings == [] and ndis.bindings == []
    ndis.binding_send_done(binding)  # late calls do nothing
    assert len(proto.driver.log) == 1
    ndis.assert_nothing_lost()


def test_close_twice_is_a_protocol_error() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    binding.counters.sent = 1
    ndis.NdisCloseAdapter(binding)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCloseAdapter(binding)  # still CLOSING
    assert info.value.rule == "PY-STATE"
    binding.counters.completed = 1
    ndis.binding_send_done(binding)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCloseAdapter(binding)  # CLOSED: the handle is dead
    assert info.value.rule == "PY-BAD-HANDLE"


def test_handle_after_close_and_bad_handles() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    ndis.NdisCloseAdapter(binding)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisRequest(binding, QUERY, OID_GEN_MAC_OPTIONS)
    assert info.value.rule == "PY-BAD-HANDLE" and "after NdisCloseAdapter" in info.value.message
    with pytest.raises(ProtocolContractError):
        binding_handle(binding)
    for bad in (None, proto, "eth0"):
        with pytest.raises(NdisUsageError) as uinfo:
            binding_handle(bad)
        assert uinfo.value.rule == "PY-BAD-HANDLE"


def test_rule_57_close_ex_only_on_a_paused_binding() -> None:
    ndis, adapter, proto, _ = kernel6()
    binding = open6(ndis, proto, adapter)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCloseAdapterEx(binding)
    assert info.value.rule == "R57"
    assert binding.state is BindingState.RUNNING
    ndis.pause_binding(binding)
    assert ndis.NdisCloseAdapterEx(binding) == OK
    assert binding.state is BindingState.CLOSED
    assert ("ProtocolCloseAdapterCompleteEx", proto.driver) not in proto.driver.log


def test_close_ex_pending_completes_through_close_adapter_complete_ex() -> None:
    ndis, adapter, proto, _ = kernel6()
    binding = open6(ndis, proto, adapter)
    ndis.pause_binding(binding)
    binding.counters.sent = 1  # as if the miniport still held one (pause should prevent it)
    assert ndis.NdisCloseAdapterEx(binding) == NDIS_STATUS.PENDING
    binding.counters.completed = 1
    ndis.binding_send_done(binding)
    assert proto.driver.log[-1] == ("ProtocolCloseAdapterCompleteEx", proto.driver)
    assert binding.state is BindingState.CLOSED


def test_close_version_gate() -> None:
    ndis, adapter, proto, _ = kernel6()
    binding = open6(ndis, proto, adapter)
    with pytest.raises(NdisVersionError) as info:
        ndis.NdisCloseAdapter(binding)
    assert info.value.rule == "R66" and "NdisCloseAdapterEx" in info.value.message
    ndis5, _, proto5, _ = kernel5()
    with pytest.raises(NdisVersionError):
        ndis5.NdisCloseAdapterEx(open5(ndis5, proto5))


# --- unbind ---------------------------------------------------------------------------------------


def test_unbind_through_protocol_unbind_adapter() -> None:
    proto = Proto5Unbinds()
    ndis, adapter, handle, _ = kernel5(proto=proto)
    proto.binding = open5(ndis, handle)
    ndis.unbind(proto.binding)
    assert proto.log == ["ProtocolUnbindAdapter"]
    assert proto.binding.state is BindingState.CLOSED and adapter.bindings == []
    ndis.unbind(proto.binding)  # already closed: nothing happens
    assert proto.log == ["ProtocolUnbindAdapter"]


def test_unbind_without_an_unbind_handler_closes_for_the_protocol() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    ndis.unbind(binding)
    assert binding.state is BindingState.CLOSED and proto.driver.log == []


def test_ndis6_unbind_pauses_then_calls_unbind_adapter_ex() -> None:
    proto = Proto6Unbinds()
    ndis, adapter, handle, _ = kernel6(proto)
    proto.binding = open6(ndis, handle, adapter)
    proto.log.clear()
    ndis.unbind(proto.binding)
    assert proto.log == [NET_PNP_EVENT_CODE.NetEventPause, "ProtocolUnbindAdapterEx"]
    assert proto.binding.state is BindingState.CLOSED


def test_ndis6_unbind_without_handlers() -> None:
    ndis, adapter, proto, _ = kernel6(Bare6())
    binding = open6(ndis, proto, adapter)
    ndis.unbind(binding)
    assert binding.state is BindingState.CLOSED and ndis.bindings == []


def test_unbind_waits_for_outstanding_sends() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    binding.counters.sent = 1

    def complete() -> None:
        binding.counters.completed = 1
        ndis.binding_send_done(binding)

    ndis.scheduler.call_later(3_000, complete)
    ndis.unbind(binding)
    assert binding.state is BindingState.CLOSED and ndis.scheduler.now_ns == 3_000
    assert proto.driver.log == [("ProtocolCloseAdapterComplete", proto.driver, OK)]


def test_unbind_with_sends_nobody_completes_is_r65() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    binding.counters.sent = 1
    with pytest.raises(MiniportContractError) as info:
        ndis.unbind(binding)
    assert info.value.rule == "R65"


# --- requests -------------------------------------------------------------------------------------


def test_query_attributes_ndis_answers_itself() -> None:
    ndis, adapter, proto, _ = kernel5()
    binding = open5(ndis, proto)
    expected = {
        OID_GEN_MAXIMUM_TOTAL_SIZE: 1518,
        OID_GEN_MAXIMUM_FRAME_SIZE: 1504,
        OID_802_3_CURRENT_ADDRESS: MAC,
        OID_802_3_PERMANENT_ADDRESS: MAC,
        OID_GEN_MAC_OPTIONS: 0,
        OID_GEN_MEDIA_CONNECT_STATUS: NdisMediaStateConnected,
        OID_GEN_LINK_SPEED: 100_000,
        OID_GEN_MAXIMUM_SEND_PACKETS: 8,
        OID_GEN_CURRENT_PACKET_FILTER: 0,
        OID_GEN_PROTOCOL_OPTIONS: 0,
    }
    for oid, value in expected.items():
        assert ndis.NdisRequest(binding, QUERY, oid) == (OK, value), oid
    adapter.media_connected = False
    assert ndis.NdisRequest(binding, QUERY, OID_GEN_MEDIA_CONNECT_STATUS) == (
        OK,
        NdisMediaStateDisconnected,
    )


def test_other_queries_go_to_the_miniport() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    assert ndis.NdisRequest(binding, QUERY, OID_VENDOR) == (OK, 0xABCDEF)
    assert ndis.NdisRequest(binding, QUERY, 0x12345678) == (NDIS_STATUS.INVALID_OID, None)


def test_queries_without_a_miniport_handler_are_invalid_oid() -> None:
    class Mute(Mini5):
        MiniportQueryInformation = None  # type: ignore[assignment]
        MiniportSetInformation = None  # type: ignore[assignment]

    ndis, _, proto, _ = kernel5(Mute())
    binding = open5(ndis, proto)
    assert ndis.NdisRequest(binding, QUERY, OID_VENDOR) == (NDIS_STATUS.INVALID_OID, None)
    assert ndis.NdisRequest(binding, SET, OID_VENDOR, 1) == (NDIS_STATUS.INVALID_OID, None)
    # the packet filter is NDIS's business even when the miniport cannot be told
    assert ndis.NdisRequest(binding, SET, OID_GEN_CURRENT_PACKET_FILTER, 1)[0] == OK


def test_packet_filter_is_the_or_of_the_bindings_and_reaches_the_miniport() -> None:
    ndis, adapter, proto, mini = kernel5()
    a, b = open5(ndis, proto), open5(ndis, proto)
    set_filter = OID_GEN_CURRENT_PACKET_FILTER
    assert ndis.NdisRequest(a, SET, set_filter, NDIS_PACKET_TYPE_DIRECTED)[0] == OK
    ndis.NdisRequest(b, SET, set_filter, NDIS_PACKET_TYPE_BROADCAST)
    assert a.packet_filter == NDIS_PACKET_TYPE_DIRECTED
    assert adapter.packet_filter == NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST
    assert mini.sets == [
        (set_filter, NDIS_PACKET_TYPE_DIRECTED),
        (set_filter, NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST),
    ]
    assert ndis.NdisRequest(b, QUERY, set_filter) == (OK, NDIS_PACKET_TYPE_BROADCAST)
    # closing b narrows the adapter's filter, and the miniport is told
    assert ndis.NdisCloseAdapter(b) == OK
    assert adapter.packet_filter == NDIS_PACKET_TYPE_DIRECTED
    assert mini.sets[-1] == (set_filter, NDIS_PACKET_TYPE_DIRECTED)


def test_protocol_options_and_other_sets() -> None:
    ndis, _, proto, mini = kernel5()
    binding = open5(ndis, proto)
    options = NDIS_PROT_OPTION_NO_LOOPBACK
    assert ndis.NdisRequest(binding, SET, OID_GEN_PROTOCOL_OPTIONS, options) == (OK, None)
    assert binding.prot_options == options and mini.sets == []
    assert ndis.NdisRequest(binding, SET, OID_VENDOR, 5) == (NDIS_STATUS.NOT_SUPPORTED, None)
    assert mini.sets == [(OID_VENDOR, 5)]


def test_unknown_request_type_is_refused() -> None:
    ndis, _, proto, _ = kernel5()
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisRequest(open5(ndis, proto), 7, OID_VENDOR)
    assert info.value.rule == "PY-REQUEST"


def test_request_ddis_are_version_gated() -> None:
    ndis, _, proto, _ = kernel5()
    binding = open5(ndis, proto)
    with pytest.raises(NdisVersionError) as info:
        ndis.NdisOidRequest(binding, NDIS_OID_REQUEST(QUERY, OID_VENDOR))
    assert info.value.rule == "PY-VERSION"
    ndis6, adapter6, proto6, _ = kernel6()
    binding6 = open6(ndis6, proto6, adapter6)
    with pytest.raises(NdisVersionError) as info:
        ndis6.NdisRequest(binding6, QUERY, OID_VENDOR)
    assert info.value.rule == "R66" and "NdisOidRequest" in info.value.message


def test_oid_request_query_leaves_the_answer_in_the_request() -> None:
    ndis, adapter, proto, mini = kernel6()
    binding = open6(ndis, proto, adapter)
    request = NDIS_OID_REQUEST(QUERY, OID_802_3_CURRENT_ADDRESS)
    assert ndis.NdisOidRequest(binding, request) == OK and request.InformationBuffer == MAC
    request = NDIS_OID_REQUEST(QUERY, OID_VENDOR)
    assert ndis.NdisOidRequest(binding, request) == OK
    assert request.InformationBuffer == 0xABCDEF
    assert mini.requests == [(QUERY, OID_VENDOR, None)]
    request = NDIS_OID_REQUEST(QUERY, 0x7777)
    assert ndis.NdisOidRequest(binding, request) == NDIS_STATUS.INVALID_OID


def test_oid_request_packet_filter_reaches_miniport_oid_request() -> None:
    ndis, adapter, proto, mini = kernel6()
    a, b = open6(ndis, proto, adapter), open6(ndis, proto, adapter)
    oid = OID_GEN_CURRENT_PACKET_FILTER
    set_a = NDIS_OID_REQUEST(SET, oid, NDIS_PACKET_TYPE_DIRECTED)
    set_b = NDIS_OID_REQUEST(SET, oid, NDIS_PACKET_TYPE_MULTICAST)
    assert ndis.NdisOidRequest(a, set_a) == OK and ndis.NdisOidRequest(b, set_b) == OK
    assert set_a.InformationBuffer == NDIS_PACKET_TYPE_DIRECTED  # a set leaves its value alone
    both = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_MULTICAST
    assert adapter.packet_filter == both
    assert mini.requests[-1] == (SET, oid, both)


def test_ndis6_miniport_without_oid_request_handler() -> None:
    ndis, adapter, proto, mini = kernel6()
    adapter.driver.handlers["MiniportOidRequest"] = None
    binding = open6(ndis, proto, adapter)
    request = NDIS_OID_REQUEST(QUERY, OID_VENDOR)
    assert ndis.NdisOidRequest(binding, request) == NDIS_STATUS.INVALID_OID
    assert request.InformationBuffer is None and mini.requests == []


# --- the receive filter (rule 55) -----------------------------------------------------------------


def filtered(packet_filter: int, prot_options: int = 0) -> tuple[OpenBlock, OpenBlock]:
    """Two bindings on one adapter whose address is MAC; the first has the given filter."""
    ndis, _, proto, _ = kernel5()
    me, other = open5(ndis, proto), open5(ndis, proto)
    me.packet_filter, me.prot_options = packet_filter, prot_options
    other.packet_filter = NDIS_PACKET_TYPE_DIRECTED
    return me, other


def test_is_group() -> None:
    assert is_group(BROADCAST) and is_group(MULTICAST)
    assert not is_group(MAC) and not is_group(b"")


def test_no_filter_accepts_nothing() -> None:
    me, other = filtered(0)
    assert not any(binding_accepts(me, d) for d in (MAC, BROADCAST, MULTICAST))
    assert not binding_accepts(me, MAC, loopback_from=other)


def test_directed_accepts_only_the_adapters_address() -> None:
    me, _ = filtered(NDIS_PACKET_TYPE_DIRECTED)
    assert binding_accepts(me, MAC)
    assert not binding_accepts(me, OTHER)
    assert not binding_accepts(me, BROADCAST) and not binding_accepts(me, MULTICAST)


def test_broadcast() -> None:
    me, _ = filtered(NDIS_PACKET_TYPE_BROADCAST)
    assert binding_accepts(me, BROADCAST)
    assert not binding_accepts(me, MAC) and not binding_accepts(me, MULTICAST)


@pytest.mark.parametrize("flag", [NDIS_PACKET_TYPE_MULTICAST, NDIS_PACKET_TYPE_ALL_MULTICAST])
def test_multicast(flag: int) -> None:
    me, _ = filtered(flag)
    assert binding_accepts(me, MULTICAST)
    assert not binding_accepts(me, BROADCAST)  # broadcast is not multicast for the filter
    assert not binding_accepts(me, MAC)


def test_promiscuous_accepts_everything() -> None:
    me, other = filtered(NDIS_PACKET_TYPE_PROMISCUOUS)
    assert all(binding_accepts(me, d) for d in (MAC, OTHER, BROADCAST, MULTICAST))
    assert binding_accepts(me, OTHER, loopback_from=other)


def test_all_local_accepts_local_sends_only() -> None:
    me, other = filtered(NDIS_PACKET_TYPE_ALL_LOCAL)
    assert binding_accepts(me, OTHER, loopback_from=other)
    assert binding_accepts(me, OTHER, loopback_from=me)
    assert not binding_accepts(me, OTHER)  # from the wire


def test_no_loopback_option_hides_only_the_bindings_own_sends() -> None:
    me, other = filtered(NDIS_PACKET_TYPE_PROMISCUOUS, NDIS_PROT_OPTION_NO_LOOPBACK)
    assert not binding_accepts(me, MAC, loopback_from=me)
    assert binding_accepts(me, MAC, loopback_from=other)
    assert binding_accepts(me, MAC)
    plain, _ = filtered(NDIS_PACKET_TYPE_DIRECTED)
    assert binding_accepts(plain, MAC, loopback_from=plain)  # without the option it sees them


def test_adapter_without_hardware_loopback_makes_ndis_loop_back() -> None:
    me, _ = filtered(NDIS_PACKET_TYPE_DIRECTED)
    adapter = me.adapter
    assert not adapter.ndis_loops_back
    adapter.mac_options |= NDIS_MAC_OPTION_NO_LOOPBACK
    assert adapter.ndis_loops_back
    assert adapter.state is AdapterState.RUNNING


def test_rule_60_opening_across_ndis_generations_is_refused() -> None:
    """The 5.x <-> 6 translation layer is not modelled: a 5.x protocol cannot open an NDIS 6
    adapter, nor the reverse, and the error says so."""
    ndis, adapter6, _, _ = kernel6()
    _, proto5 = ndis.NdisRegisterProtocol(Proto5(), 5, 1)
    assert proto5 is not None
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisOpenAdapter(proto5, proto5.driver, [NdisMedium802_3], adapter6)
    assert info.value.rule == "R60" and "translation" in str(info.value)
    ndis5, adapter5, _, _ = kernel5()
    _, proto6 = ndis5.NdisRegisterProtocolDriver(Proto6(), 6, 0)
    assert proto6 is not None
    with pytest.raises(NdisUsageError):
        ndis5.NdisOpenAdapterEx(
            proto6, proto6.driver, NDIS_OPEN_PARAMETERS("eth0", [NdisMedium802_3]), adapter5
        )
