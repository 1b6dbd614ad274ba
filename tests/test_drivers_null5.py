"""Tests for pyndis.drivers.null5: the null miniport through a real stack (ndisprot -> NDIS ->
null), serialized and deserialized, MiniportSend and MiniportSendPackets."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    OID_802_3_CURRENT_ADDRESS,
    OID_GEN_MAC_OPTIONS,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    NdisMedium802_5,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
)
from pyndis.drivers.ndisprot5 import NdisProt5, NdisProtOpen
from pyndis.drivers.null5 import (
    NullAdapter,
    NullMiniport,
    NullMiniportBoth,
    NullMiniportPackets,
)
from pyndis.library.adapter import MiniportBlock
from pyndis.library.kernel import Ndis
from pyndis.packet import NDIS_PACKET
from pyndis.status import NDIS_STATUS

PEER = b"\x02\x00\x00\x00\x00\x02"
ME = b"\x02\x00\x00\x00\x00\x01"


def frame(n: int = 60, dst: bytes = PEER) -> bytes:
    return dst + ME + b"\x88\xb5" + bytes(i & 0xFF for i in range(n - 14))


DRIVERS: list[type[Any]] = [NullMiniport, NullMiniportPackets, NullMiniportBoth]


def stack(
    cls: type[Any] = NullMiniport, verifier: bool = True, **keywords: Any
) -> tuple[Ndis, Any, MiniportBlock, NdisProtOpen]:
    ndis = Ndis(verifier=verifier, strict=True)
    miniport = cls()
    status, handle = ndis.NdisMRegisterMiniport(miniport, 5, 1, "null")
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    status, adapter = ndis.add_adapter(handle, "nul0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    prot = NdisProt5(pool=8, track=True)
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS
    ndis.run()  # ProtocolBindAdapter runs from a PASSIVE work item
    return ndis, miniport, adapter, prot.open("nul0")


def teardown(ndis: Ndis, adapter: MiniportBlock) -> None:
    ndis.run()
    ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()
    # ndisprot and the adapter freed every pool they allocated (NDIS may keep its own)
    assert [p for p in ndis.pools if p.tag != "ndis-loopback"] == []


# --- MiniportSend ---------------------------------------------------------------------------------


def test_rule_16_serialized_send_returns_success_without_completion() -> None:
    ndis, miniport, adapter, o = stack(NullMiniport)
    assert o.write(frame()) == NDIS_STATUS.SUCCESS
    assert o.sync_completions == 1  # back at return: ProtocolSendComplete never ran
    assert o.by_status == {NDIS_STATUS.SUCCESS: 1}
    assert miniport.adapters["nul0"].sent == 1
    teardown(ndis, adapter)


def test_rule_26_deserialized_send_completes_inside_the_handler() -> None:
    ndis, _miniport, adapter, o = stack(NullMiniport, deserialized=True)
    assert o.write(frame()) == NDIS_STATUS.PENDING
    # NdisMSendComplete ran inside MiniportSend: the completion is delivered before NdisSend
    # returns, through ProtocolSendComplete.
    assert o.sync_completions == 0
    assert o.completed == 1 and o.by_status == {NDIS_STATUS.SUCCESS: 1}
    teardown(ndis, adapter)


@pytest.mark.parametrize("deserialized", [False, True])
@pytest.mark.parametrize("cls", DRIVERS)
def test_rule_17_send_packets_every_packet_completes_once(
    cls: type[Any], deserialized: bool
) -> None:
    ndis, miniport, adapter, o = stack(cls, deserialized=deserialized)
    assert o.write_many([frame()] * 8) == 8
    ndis.run()
    assert o.completed == 8 and o.sync_completions == 0
    assert o.by_status == {NDIS_STATUS.SUCCESS: 8}
    assert sorted(o.completion_log) == list(range(1, 9))
    assert miniport.adapters["nul0"].sent == 8
    teardown(ndis, adapter)


@pytest.mark.parametrize("deserialized", [False, True])
def test_send_status_knob_is_the_status_the_protocol_sees(deserialized: bool) -> None:
    ndis, _, adapter, o = stack(
        NullMiniportBoth, deserialized=deserialized, send_status=NDIS_STATUS.FAILURE
    )
    o.write_many([frame()] * 3)
    # NdisSend goes to MiniportSendPackets too (rule 20): a serialized miniport's OOB status
    # is NdisSend's return value; a deserialized one's completion makes it PENDING.
    expected = NDIS_STATUS.PENDING if deserialized else NDIS_STATUS.FAILURE
    assert o.write(frame()) == expected
    ndis.run()
    assert o.by_status == {NDIS_STATUS.FAILURE: 4}
    teardown(ndis, adapter)


def test_send_status_pending_is_refused_at_initialize() -> None:
    ndis = Ndis()
    _status, handle = ndis.NdisMRegisterMiniport(NullMiniport(), 5, 1)
    assert handle is not None
    with pytest.raises(ValueError, match="never keeps"):
        ndis.add_adapter(handle, "nul0", send_status=NDIS_STATUS.PENDING)


# --- rule 20: both handlers -----------------------------------------------------------------------


class RecordingBoth(NullMiniportBoth):
    """NullMiniportBoth that records which send handler NDIS called."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def MiniportSend(
        self, MiniportAdapterContext: NullAdapter, Packet: NDIS_PACKET, Flags: int
    ) -> int:
        self.calls.append("MiniportSend")
        return super().MiniportSend(MiniportAdapterContext, Packet, Flags)

    def MiniportSendPackets(
        self, MiniportAdapterContext: NullAdapter, PacketArray: Any, NumberOfPackets: int
    ) -> None:
        self.calls.append("MiniportSendPackets")
        super().MiniportSendPackets(MiniportAdapterContext, PacketArray, NumberOfPackets)


@pytest.mark.parametrize("deserialized", [False, True])
def test_rule_20_with_both_handlers_only_send_packets_is_called(deserialized: bool) -> None:
    ndis, miniport, adapter, o = stack(RecordingBoth, deserialized=deserialized)
    o.write(frame())
    o.write_many([frame()] * 4)
    ndis.run()
    assert set(miniport.calls) == {"MiniportSendPackets"}
    assert o.completed == 5
    teardown(ndis, adapter)


# --- re-entrancy and exhaustion -------------------------------------------------------------------


@pytest.mark.parametrize("deserialized", [False, True])
@pytest.mark.parametrize("cls", DRIVERS)
def test_send_again_from_the_completion_handler(cls: type[Any], deserialized: bool) -> None:
    ndis, miniport, adapter, o = stack(cls, deserialized=deserialized)
    budget = [20]

    def again(ctx: NdisProtOpen, status: int) -> None:
        if budget[0] > 0:
            budget[0] -= 1
            ctx.write(frame())

    o.on_send_complete = again
    o.write_many([frame()] * 2)
    ndis.run()
    assert budget[0] == 0
    assert o.completed == o.sends == 22
    assert miniport.adapters["nul0"].sent == 22
    teardown(ndis, adapter)


def test_pool_exhaustion_refuses_writes_until_packets_come_back() -> None:
    # Deserialized null completes inside the send, so packets are back at once; a serialized
    # NdisSendPackets batch holds all of them until the batch is done.
    ndis, _, adapter, o = stack(NullMiniportPackets)
    assert o.write_many([frame()] * 12) == 8  # pool=8
    assert o.write_refused == 1
    ndis.run()
    assert o.completed == 8
    assert o.write_many([frame()] * 8) == 8  # reused descriptors
    teardown(ndis, adapter)


# --- OIDs, reset, halt, medium --------------------------------------------------------------------


def test_oids_answer_from_the_registry_keywords() -> None:
    ndis, _, adapter, o = stack(NullMiniport, address=PEER, max_send_packets=5, no_loopback=False)
    assert o.binding is not None
    query = NdisRequestQueryInformation
    assert ndis.NdisRequest(o.binding, query, OID_802_3_CURRENT_ADDRESS) == (
        NDIS_STATUS.SUCCESS,
        PEER,
    )
    status, options = ndis.NdisRequest(o.binding, query, OID_GEN_MAC_OPTIONS)
    assert status == NDIS_STATUS.SUCCESS and not options & NDIS_MAC_OPTION_NO_LOOPBACK
    assert ndis.NdisRequest(o.binding, query, OID_GEN_MAXIMUM_SEND_PACKETS)[1] == 5
    assert o.address == PEER
    # an OID the null miniport does not know
    status, _ = ndis.NdisRequest(o.binding, query, 0x00FF00FF)
    assert status == NDIS_STATUS.INVALID_OID
    status, _ = ndis.NdisRequest(o.binding, NdisRequestSetInformation, 0x00FF00FF, 1)
    assert status == NDIS_STATUS.INVALID_OID
    teardown(ndis, adapter)


def test_reset_is_synchronous_and_indicated_to_the_protocol() -> None:
    ndis, miniport, adapter, o = stack(NullMiniport)
    assert ndis.reset_adapter(adapter) == NDIS_STATUS.SUCCESS
    assert o.statuses == [NDIS_STATUS.RESET_START, NDIS_STATUS.RESET_END]
    assert miniport.adapters["nul0"].resets == 1
    assert o.write(frame()) == NDIS_STATUS.SUCCESS
    teardown(ndis, adapter)


def test_halt_forgets_the_adapter_and_unbinds_the_protocol() -> None:
    ndis, miniport, adapter, o = stack(NullMiniport)
    o.write(frame())
    teardown(ndis, adapter)
    assert miniport.adapters == {}
    assert o.closed and o.binding is None
    assert o.write(frame()) == NDIS_STATUS.CLOSING


def test_initialize_refuses_a_medium_array_without_802_3() -> None:
    ndis = Ndis()
    miniport = NullMiniport()
    ndis.NdisMRegisterMiniport(miniport, 5, 1)
    block = ndis.miniport_drivers[0]
    status, index = miniport.MiniportInitialize([NdisMedium802_5], None, None)  # type: ignore[arg-type]
    assert (status, index) == (NDIS_STATUS.UNSUPPORTED_MEDIA, 0)
    assert block.name == "NullMiniport"


@pytest.mark.parametrize("deserialized", [False, True])
def test_verifier_off_runs_the_same(deserialized: bool) -> None:
    ndis, _, adapter, o = stack(NullMiniportPackets, verifier=False, deserialized=deserialized)
    for _ in range(3):
        o.write_many([frame()] * 8)
        ndis.run()
    assert o.completed == 24
    teardown(ndis, adapter)
