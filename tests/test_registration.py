"""Driver registration DDIs: versions, required handlers, binding offers, deregistration."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    DISPATCH_LEVEL,
    PASSIVE_LEVEL,
    NdisMediaStateConnected,
    NdisMedium802_3,
)
from pyndis.errors import Culprit, IrqlError, NdisUsageError, ProtocolContractError
from pyndis.library.adapter import (
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    MiniportBlock,
)
from pyndis.library.binding import NDIS_BIND_PARAMETERS
from pyndis.library.drivers import DriverBlock, DriverKind
from pyndis.library.kernel import Ndis
from pyndis.status import NDIS_STATUS

MAC = b"\x02\x00\x00\x00\x00\x07"

# --- small real drivers ---------------------------------------------------------------------------


class Proto5:
    """NDIS 5.x connectionless protocol recording its bind offers (and the IRQL and handle it
    saw); with ``open_on_bind`` it opens each adapter with the handle its DriverEntry stored."""

    def __init__(self, open_on_bind: bool = False) -> None:
        self.binds: list[tuple[Any, ...]] = []
        self.open_on_bind = open_on_bind
        self.bindings: list[Any] = []
        #: the NdisProtocolHandle, stored once NdisRegisterProtocol returned (DriverEntry)
        self.handle: DriverBlock | None = None
        self.seen: list[tuple[int, DriverBlock | None]] = []

    def register(self, ndis: Ndis) -> DriverBlock:
        status, handle = ndis.NdisRegisterProtocol(self, 5, 1)
        assert status == NDIS_STATUS.SUCCESS and handle is not None
        self.handle = handle
        return handle

    def ProtocolSendComplete(self, ctx: Any, packet: Any, status: int) -> None:
        raise AssertionError("no sends here")

    def ProtocolBindAdapter(self, BindContext: Any, DeviceName: str, ss1: Any, ss2: Any) -> int:
        self.binds.append((BindContext, DeviceName, ss1, ss2))
        self.seen.append((self.ndis.irql.level, self.handle))
        if self.open_on_bind:
            assert self.handle is not None  # binding is asynchronous: the handle is stored
            status, _, binding, _ = self.ndis.NdisOpenAdapter(
                self.handle, self, [NdisMedium802_3], DeviceName
            )
            assert status == NDIS_STATUS.SUCCESS
            self.bindings.append(binding)
        return NDIS_STATUS.SUCCESS


class Proto6:
    """NDIS 6 connectionless protocol recording its bind offers."""

    NDIS_VERSION = (6, 20)

    def __init__(self) -> None:
        self.binds: list[tuple[Any, ...]] = []

    def ProtocolSendNetBufferListsComplete(self, ctx: Any, nbls: Any, flags: int) -> None:
        raise AssertionError("no sends here")

    def ProtocolReceiveNetBufferLists(self, *args: Any) -> None:
        raise AssertionError("no receives here")

    def ProtocolBindAdapterEx(self, ctx: Any, BindContext: Any, BindParameters: Any) -> int:
        self.binds.append((ctx, BindContext, BindParameters))
        return NDIS_STATUS.SUCCESS


class Mini5:
    def MiniportInitialize(self, MediumArray: list[int], handle: MiniportBlock, config: Any) -> Any:
        self.ndis.NdisMSetAttributesEx(handle, self)
        return NDIS_STATUS.SUCCESS, MediumArray.index(NdisMedium802_3)

    def MiniportHalt(self, ctx: Any) -> None:
        pass

    def MiniportSend(self, ctx: Any, packet: Any, flags: int) -> int:
        return NDIS_STATUS.SUCCESS


class Mini6:
    def MiniportInitializeEx(self, handle: MiniportBlock, driver_ctx: Any, params: Any) -> int:
        self.ndis.NdisMSetMiniportAttributes(
            handle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(self)
        )
        self.ndis.NdisMSetMiniportAttributes(
            handle, NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(MtuSize=9000, CurrentMacAddress=MAC)
        )
        return NDIS_STATUS.SUCCESS

    def MiniportHaltEx(self, ctx: Any, action: int) -> None:
        pass

    def MiniportPause(self, ctx: Any, params: Any) -> int:
        return NDIS_STATUS.SUCCESS

    def MiniportRestart(self, ctx: Any, params: Any) -> int:
        return NDIS_STATUS.SUCCESS

    def MiniportSendNetBufferLists(self, *args: Any) -> None:
        raise AssertionError("no sends here")

    def MiniportCancelSend(self, ctx: Any, cancel_id: Any) -> None:
        pass

    def MiniportReturnNetBufferLists(self, *args: Any) -> None:
        pass


class CoProto5:
    def ProtocolCoSendComplete(self, status: int, vc_ctx: Any, packet: Any) -> None:
        pass


class CoMini5(Mini5):
    def MiniportCoCreateVc(self, *args: Any) -> int:
        return NDIS_STATUS.SUCCESS

    def MiniportCoSendPackets(self, *args: Any) -> None:
        pass


def without(cls: type, name: str) -> Any:
    """An instance of a subclass of ``cls`` that hides handler ``name``."""
    sub = type(f"{cls.__name__}No{name}", (cls,), {"__getattribute__": _hide(name)})
    return sub()


def _hide(name: str) -> Any:
    def __getattribute__(self: Any, attr: str) -> Any:
        if attr == name:
            raise AttributeError(attr)
        return object.__getattribute__(self, attr)

    return __getattribute__


# --- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [(5, 0), (5, 1)])
def test_ndis5_protocol_registers(version: tuple[int, int]) -> None:
    ndis = Ndis()
    status, handle = ndis.NdisRegisterProtocol(Proto5(), *version)
    assert status == NDIS_STATUS.SUCCESS
    assert isinstance(handle, DriverBlock)
    assert handle.version == version and handle.kind is DriverKind.PROTOCOL
    assert handle.culprit is Culprit.PROTOCOL
    assert ndis.protocols == [handle]
    assert f"register protocol Proto5 {version[0]}.{version[1]}" in ndis.scheduler.trace_text()


@pytest.mark.parametrize("version", [(6, 0), (6, 1), (6, 20), (6, 30)])
def test_ndis6_protocol_and_miniport_register(version: tuple[int, int]) -> None:
    ndis = Ndis()
    status, handle = ndis.NdisRegisterProtocolDriver(Proto6(), *version)
    assert status == NDIS_STATUS.SUCCESS and handle is not None and handle.version == version
    status, mhandle = ndis.NdisMRegisterMiniportDriver(Mini6(), *version)
    assert status == NDIS_STATUS.SUCCESS and mhandle is not None
    assert mhandle.kind is DriverKind.MINIPORT and mhandle.culprit is Culprit.MINIPORT
    assert ndis.miniport_drivers == [mhandle]


@pytest.mark.parametrize("version", [(4, 0), (5, 2), (6, 2), (6, 40), (7, 0), (3, 0)])
def test_unsupported_versions_are_bad_version(version: tuple[int, int]) -> None:
    ndis = Ndis()
    register = ndis.NdisRegisterProtocol if version[0] < 6 else ndis.NdisRegisterProtocolDriver
    assert register(Proto5(), *version) == (NDIS_STATUS.BAD_VERSION, None)
    assert ndis.NdisMRegisterMiniport(Mini5(), *version) == (NDIS_STATUS.BAD_VERSION, None)
    assert ndis.protocols == [] and ndis.miniport_drivers == []


def test_ndis6_driver_through_the_ndis5_ddi_is_bad_version() -> None:
    ndis = Ndis()
    assert ndis.NdisRegisterProtocol(Proto6(), 6, 0) == (NDIS_STATUS.BAD_VERSION, None)
    assert ndis.NdisRegisterProtocol(Proto6()) == (NDIS_STATUS.BAD_VERSION, None)  # NDIS_VERSION
    assert ndis.NdisMRegisterMiniport(Mini6(), 6, 20) == (NDIS_STATUS.BAD_VERSION, None)
    assert ndis.protocols == [] and ndis.miniport_drivers == []


def test_ndis5_driver_through_the_ndis6_ddi_is_bad_version() -> None:
    ndis = Ndis()
    assert ndis.NdisRegisterProtocolDriver(Proto5(), 5, 1) == (NDIS_STATUS.BAD_VERSION, None)
    assert ndis.NdisMRegisterMiniportDriver(Mini5(), 5, 0) == (NDIS_STATUS.BAD_VERSION, None)
    assert ndis.protocols == [] and ndis.miniport_drivers == []


def test_ndis_version_attribute_gives_the_version() -> None:
    ndis = Ndis()
    status, handle = ndis.NdisRegisterProtocolDriver(Proto6())
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    assert handle.version == (6, 20)


def test_explicit_version_wins_over_the_attribute() -> None:
    ndis = Ndis()
    status, handle = ndis.NdisRegisterProtocolDriver(Proto6(), 6, 0)
    assert status == NDIS_STATUS.SUCCESS and handle is not None and handle.version == (6, 0)


def test_missing_minor_version_means_zero() -> None:
    ndis = Ndis()
    status, handle = ndis.NdisRegisterProtocol(Proto5(), 5)
    assert status == NDIS_STATUS.SUCCESS and handle is not None and handle.version == (5, 0)


def test_no_version_at_all_is_a_usage_error() -> None:
    with pytest.raises(NdisUsageError) as info:
        Ndis().NdisRegisterProtocol(Proto5())
    assert info.value.rule == "PY-REGISTER"


def test_registration_above_passive_level_is_refused() -> None:
    ndis = Ndis()
    with ndis.irql.at(DISPATCH_LEVEL), pytest.raises(IrqlError) as info:
        ndis.NdisRegisterProtocol(Proto5(), 5, 1)
    assert info.value.rule == "R62"
    assert ndis.protocols == []


# --- required handlers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "name", "ddi", "version"),
    [
        (Proto5, "ProtocolSendComplete", "NdisRegisterProtocol", (5, 1)),
        (CoProto5, "ProtocolCoSendComplete", "NdisRegisterProtocol", (5, 0)),
        (Proto6, "ProtocolSendNetBufferListsComplete", "NdisRegisterProtocolDriver", (6, 0)),
        (Proto6, "ProtocolReceiveNetBufferLists", "NdisRegisterProtocolDriver", (6, 0)),
        (Mini5, "MiniportInitialize", "NdisMRegisterMiniport", (5, 1)),
        (Mini5, "MiniportHalt", "NdisMRegisterMiniport", (5, 1)),
        (Mini5, "MiniportSend", "NdisMRegisterMiniport", (5, 1)),
        (CoMini5, "MiniportCoSendPackets", "NdisMRegisterMiniport", (5, 1)),
        (Mini6, "MiniportInitializeEx", "NdisMRegisterMiniportDriver", (6, 0)),
        (Mini6, "MiniportHaltEx", "NdisMRegisterMiniportDriver", (6, 0)),
        (Mini6, "MiniportPause", "NdisMRegisterMiniportDriver", (6, 0)),
        (Mini6, "MiniportRestart", "NdisMRegisterMiniportDriver", (6, 0)),
        (Mini6, "MiniportSendNetBufferLists", "NdisMRegisterMiniportDriver", (6, 20)),
        (Mini6, "MiniportCancelSend", "NdisMRegisterMiniportDriver", (6, 20)),
        (Mini6, "MiniportReturnNetBufferLists", "NdisMRegisterMiniportDriver", (6, 30)),
    ],
)
def test_missing_required_handler_is_bad_characteristics(
    cls: type, name: str, ddi: str, version: tuple[int, int]
) -> None:
    ndis = Ndis()
    assert getattr(ndis, ddi)(cls(), *version)[0] == NDIS_STATUS.SUCCESS  # complete: accepted
    ndis = Ndis()
    status, handle = getattr(ndis, ddi)(without(cls, name), *version)
    assert (status, handle) == (NDIS_STATUS.BAD_CHARACTERISTICS, None)
    assert ndis.protocols == [] and ndis.miniport_drivers == []
    assert "register-refused" in ndis.scheduler.trace_text()
    assert name in ndis.scheduler.trace_text()


def test_version_is_checked_before_characteristics() -> None:
    ndis = Ndis()
    status, _ = ndis.NdisRegisterProtocol(without(Proto5, "ProtocolSendComplete"), 4, 0)
    assert status == NDIS_STATUS.BAD_VERSION


# --- what registration does to the driver ---------------------------------------------------------


def test_driver_gets_its_kernel_unless_it_has_one() -> None:
    ndis, other = Ndis(), Ndis()
    fresh = Proto5()
    ndis.NdisRegisterProtocol(fresh, 5, 1)
    assert fresh.ndis is ndis  # type: ignore[attr-defined]
    kept = Proto5()
    kept.ndis = other  # type: ignore[attr-defined]
    ndis.NdisRegisterProtocol(kept, 5, 1)
    assert kept.ndis is other  # type: ignore[attr-defined]


def test_driver_with_slots_registers_without_a_kernel_attribute() -> None:
    class Slotted:
        __slots__ = ()

        def ProtocolSendComplete(self, *args: Any) -> None:
            pass

    status, handle = Ndis().NdisRegisterProtocol(Slotted(), 5, 1)
    assert status == NDIS_STATUS.SUCCESS and handle is not None


def test_name_and_intermediate() -> None:
    ndis = Ndis()
    _, plain = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    _, im = ndis.NdisMRegisterMiniport(Mini5(), 5, 1, "passthru", intermediate=True)
    _, im_prot = ndis.NdisRegisterProtocol(Proto5(), 5, 1, "passthru", intermediate=True)
    assert plain is not None and im is not None and im_prot is not None
    assert plain.name == "Mini5" and plain.culprit is Culprit.MINIPORT
    assert im.name == "passthru" and im.culprit is Culprit.INTERMEDIATE
    assert im_prot.culprit is Culprit.INTERMEDIATE


# --- binding offers -------------------------------------------------------------------------------


def test_new_ndis5_protocol_is_offered_existing_adapters() -> None:
    ndis = Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    _, a1 = ndis.add_adapter(mini, "eth0")
    _, a2 = ndis.add_adapter(mini, "eth1")
    proto = Proto5()
    ndis.NdisRegisterProtocol(proto, 5, 1)
    assert proto.binds == []  # not inside the registration call
    ndis.run()
    assert proto.binds == [(a1, "eth0", None, None), (a2, "eth1", None, None)]


def test_new_ndis6_protocol_is_offered_existing_adapters_with_bind_parameters() -> None:
    ndis = Ndis()
    driver = Mini6()
    _, mini = ndis.NdisMRegisterMiniportDriver(driver, 6, 0)
    assert mini is not None
    _, adapter = ndis.add_adapter(mini, "vmnic")
    proto = Proto6()
    ndis.NdisRegisterProtocolDriver(proto)
    assert proto.binds == []  # not inside the registration call
    ndis.run()
    assert len(proto.binds) == 1
    ctx, bind_context, params = proto.binds[0]
    assert ctx is proto and bind_context is adapter
    assert isinstance(params, NDIS_BIND_PARAMETERS)
    assert params.AdapterName == "vmnic" and params.MtuSize == 9000
    assert params.CurrentMacAddress == MAC and params.MediaType == NdisMedium802_3
    assert params.MediaConnectState == NdisMediaStateConnected


def test_offers_stay_within_one_ndis_generation() -> None:
    ndis = Ndis()
    _, m5 = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    _, m6 = ndis.NdisMRegisterMiniportDriver(Mini6(), 6, 0)
    assert m5 is not None and m6 is not None
    ndis.add_adapter(m5, "old")
    ndis.add_adapter(m6, "new")
    p5, p6 = Proto5(), Proto6()
    ndis.NdisRegisterProtocol(p5, 5, 1)
    ndis.NdisRegisterProtocolDriver(p6)
    ndis.run()
    assert [b[1] for b in p5.binds] == ["old"]
    assert [b[2].AdapterName for b in p6.binds] == ["new"]


def test_protocol_without_a_bind_handler_is_not_offered() -> None:
    ndis = Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    ndis.add_adapter(mini, "eth0")
    status, _ = ndis.NdisRegisterProtocol(without(Proto5, "ProtocolBindAdapter"), 5, 1)
    assert status == NDIS_STATUS.SUCCESS
    ndis.run()
    assert ndis.bindings == []


def test_offers_run_as_passive_work_items_after_the_registration_returns() -> None:
    ndis = Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    ndis.add_adapter(mini, "eth0")
    ndis.add_adapter(mini, "eth1")
    proto = Proto5()
    handle = proto.register(ndis)
    assert proto.binds == [] and ndis.scheduler.pending() == 2  # one work item per adapter
    assert "bind-offer" not in ndis.scheduler.trace_text()
    with ndis.irql.at(DISPATCH_LEVEL):  # the work items run at PASSIVE_LEVEL all the same
        ndis.run()
    assert [b[1] for b in proto.binds] == ["eth0", "eth1"]  # in adapter order
    offers = [e.split()[1:] for e in ndis.scheduler.events if " bind-offer " in e]
    assert offers == [["bind-offer", "Proto5", "eth0"], ["bind-offer", "Proto5", "eth1"]]
    assert proto.seen == [(PASSIVE_LEVEL, handle), (PASSIVE_LEVEL, handle)]


def test_the_bind_handler_finds_the_handle_the_driver_stored() -> None:
    ndis, proto, handle = _bound_protocol()
    (binding,) = proto.bindings
    assert binding.protocol is handle and proto.seen == [(PASSIVE_LEVEL, handle)]
    assert ndis.bindings == [binding]


def test_a_protocol_registered_before_any_adapter_is_offered_each_new_one_at_once() -> None:
    ndis = Ndis()
    proto = Proto5(open_on_bind=True)
    handle = proto.register(ndis)
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    _, eth0 = ndis.add_adapter(mini, "eth0")
    # synchronously, inside add_adapter, with no scheduler run
    assert [b[1] for b in proto.binds] == ["eth0"] and ndis.scheduler.pending() == 0
    assert [b.adapter for b in proto.bindings] == [eth0] and proto.seen == [(PASSIVE_LEVEL, handle)]
    ndis.add_adapter(mini, "eth1")
    assert [b[1] for b in proto.binds] == ["eth0", "eth1"]
    ndis.run()
    assert len(proto.binds) == 2  # no second offer of either adapter


def test_a_queued_offer_is_dropped_when_its_protocol_or_adapter_is_gone() -> None:
    ndis = Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    _, eth0 = ndis.add_adapter(mini, "eth0")
    assert eth0 is not None
    gone, stays = Proto5(), Proto5()
    ndis.NdisDeregisterProtocol(gone.register(ndis))  # deregistered before its offer ran
    stays.register(ndis)
    ndis.remove_adapter(eth0)  # removed before the offer ran
    ndis.run()
    assert gone.binds == [] and stays.binds == []


def test_a_queued_offer_is_dropped_when_the_protocol_opened_the_adapter_itself() -> None:
    ndis = Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    ndis.add_adapter(mini, "eth0")
    ndis.add_adapter(mini, "eth1")
    proto = Proto5(open_on_bind=True)
    handle = proto.register(ndis)
    status, _, binding, _ = ndis.NdisOpenAdapter(handle, proto, [NdisMedium802_3], "eth0")
    assert status == NDIS_STATUS.SUCCESS and binding is not None
    ndis.run()
    assert [b[1] for b in proto.binds] == ["eth1"]  # eth0 is bound already: no second offer
    assert len(ndis.bindings) == 2


# --- deregistration -------------------------------------------------------------------------------


def _bound_protocol() -> tuple[Ndis, Proto5, DriverBlock]:
    ndis = Ndis()
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert mini is not None
    ndis.add_adapter(mini, "eth0")
    proto = Proto5(open_on_bind=True)
    handle = proto.register(ndis)
    assert proto.bindings == []
    ndis.run()  # the offer: a PASSIVE work item
    return ndis, proto, handle


def test_deregister_an_unbound_protocol() -> None:
    ndis = Ndis()
    _, handle = ndis.NdisRegisterProtocol(Proto5(), 5, 1)
    assert handle is not None
    assert ndis.NdisDeregisterProtocol(handle) == NDIS_STATUS.SUCCESS
    assert ndis.protocols == []


def test_deregister_is_refused_with_open_bindings() -> None:
    ndis, proto, handle = _bound_protocol()
    assert len(proto.bindings) == 1
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisDeregisterProtocol(handle)
    assert info.value.rule == "PY-DEREGISTER-BOUND"
    assert handle in ndis.protocols


def test_deregister_after_closing_every_binding() -> None:
    ndis, proto, handle = _bound_protocol()
    assert ndis.NdisCloseAdapter(proto.bindings[0]) == NDIS_STATUS.SUCCESS
    assert ndis.NdisDeregisterProtocol(handle) == NDIS_STATUS.SUCCESS
    assert ndis.protocols == []
    ndis.assert_nothing_lost()


def test_deregister_twice_or_an_unknown_handle_is_a_usage_error() -> None:
    ndis = Ndis()
    _, handle = ndis.NdisRegisterProtocol(Proto5(), 5, 1)
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert handle is not None and mini is not None
    ndis.NdisDeregisterProtocol(handle)
    for bad in (handle, mini):
        with pytest.raises(NdisUsageError) as info:
            ndis.NdisDeregisterProtocol(bad)
        assert info.value.rule == "PY-BAD-HANDLE"


def test_deregistered_protocol_is_not_offered_new_adapters() -> None:
    ndis = Ndis()
    proto = Proto5()
    _, handle = ndis.NdisRegisterProtocol(proto, 5, 1)
    _, mini = ndis.NdisMRegisterMiniport(Mini5(), 5, 1)
    assert handle is not None and mini is not None
    ndis.NdisDeregisterProtocol(handle)
    ndis.add_adapter(mini, "eth0")
    assert proto.binds == []
