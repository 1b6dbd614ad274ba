"""Contract tests of the NDIS 5.x connectionless send path (pyndis.library.send5).

Test names carry the rule ids of docs/rules.md. Where a rule applies to both kinds of miniport,
the test runs against serialized and deserialized miniports, each with MiniportSend only and
with MiniportSendPackets (``kind``). Every scenario ends with ``Rig5.finish()``: nothing lost,
every pool balanced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyndis.constants import (
    DIRQL,
    DISPATCH_LEVEL,
    NDIS_FLAGS_DONT_LOOPBACK,
    NDIS_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_FLAGS_LOOPBACK_ONLY,
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    NDIS_PROT_OPTION_NO_LOOPBACK,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_PROTOCOL_OPTIONS,
    PASSIVE_LEVEL,
    NdisRequestSetInformation,
    PacketCancelId,
)
from pyndis.errors import (
    Culprit,
    IrqlError,
    MiniportContractError,
    NdisError,
    ProtocolContractError,
)
from pyndis.library.send5 import STATUS_NOT_SET
from pyndis.library.states import AdapterState, BindingState
from pyndis.ownership import Event, Ownership
from pyndis.packet import NDIS_PACKET, NDIS_SET_PACKET_STATUS, NdisGetPacketFlags
from pyndis.status import NDIS_STATUS
from pyndis.testing import (
    CompleteInSendMiniport5,
    CompleteInSendPacketsMiniport5,
    DataChangingProtocol5,
    LoopbackFlagProtocol5,
    Miniport5,
    NoStatusPacketsMiniport5,
    PacketsMiniport5,
    PendingCompleteMiniport5,
    Protocol5,
    ResourcesDeserializedMiniport5,
    ResourcesDeserializedPacketsMiniport5,
    Rig5,
    SyncDeserializedMiniport5,
)
from pyndis.testing.buggy5 import ADDRESS, BROADCAST, PEER

S = NDIS_STATUS
Kind = tuple[type[Miniport5], bool]
KINDS = [
    pytest.param((Miniport5, False), id="serialized-send"),
    pytest.param((PacketsMiniport5, False), id="serialized-packets"),
    pytest.param((Miniport5, True), id="deserialized-send"),
    pytest.param((PacketsMiniport5, True), id="deserialized-packets"),
]
SERIALIZED = KINDS[:2]


def make_rig(kind: Kind, *, protocols: list[Any] | None = None, **kw: Any) -> Rig5:
    cls, deserialized = kind
    verifier = kw.pop("verifier", False)
    return Rig5(cls(deserialized=deserialized, **kw), protocols, verifier=verifier)


# --- rule 16: NdisSend's status -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_rule_16_pending_is_followed_by_exactly_one_send_complete(kind: Kind) -> None:
    rig = make_rig(kind)
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    assert packet.ownership is Ownership.AT_MINIPORT
    assert rig.protocol.completions == []
    rig.miniport.complete(packet, S.FAILURE)
    assert rig.protocol.completions == [(packet, S.FAILURE)]
    assert packet.ownership is Ownership.ALLOCATED
    assert rig.binding.counters.as_dict()["by_status"] == {S.FAILURE: 1}
    rig.finish()
    assert len(rig.protocol.completions) == 1


@pytest.mark.parametrize("kind", SERIALIZED)
@pytest.mark.parametrize("status", [S.SUCCESS, S.FAILURE, S.NO_CABLE, 0xE0001234])
def test_rule_16_other_statuses_return_the_packet_with_no_completion(
    kind: Kind, status: int
) -> None:
    rig = make_rig(kind, default=status)
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == status
    assert packet.ownership is Ownership.ALLOCATED  # the protocol's again, on return
    assert rig.protocol.completions == []
    assert rig.binding.counters.sent == rig.binding.counters.completed == 1
    rig.finish()
    assert rig.protocol.completions == []


def reset_pending_miniport(kind: Kind) -> Miniport5:
    cls, deserialized = kind

    class ResetPending(cls):  # type: ignore[valid-type, misc]
        def MiniportReset(self, ctx: object) -> tuple[NDIS_STATUS, bool]:
            return S.PENDING, False

    miniport: Miniport5 = ResetPending(deserialized=deserialized)
    return miniport


@pytest.mark.parametrize("kind", KINDS)
def test_rule_16_model_statuses_decided_by_ndis(kind: Kind) -> None:
    """[model] INVALID_PACKET, RESET_IN_PROGRESS and CLOSING come from NDIS itself: the miniport
    never sees those packets and no completion follows."""
    rig = Rig5(reset_pending_miniport(kind))
    ndis, binding = rig.ndis, rig.binding
    assert ndis.NdisSend(binding, rig.packet(size=0)) == S.INVALID_PACKET
    assert ndis.NdisSend(binding, rig.packet(size=1515)) == S.INVALID_PACKET
    assert ndis.NdisSend(binding, rig.packet(size=1514)) == S.PENDING
    assert ndis.reset_adapter(rig.adapter) == S.PENDING
    assert rig.adapter.state is AdapterState.RESETTING
    assert ndis.NdisSend(binding, rig.packet()) == S.RESET_IN_PROGRESS
    assert rig.miniport.handle is not None
    ndis.NdisMResetComplete(rig.miniport.handle, S.SUCCESS)
    assert ndis.NdisCloseAdapter(binding) == S.PENDING  # one send still at the miniport
    assert binding.state is BindingState.CLOSING
    assert ndis.NdisSend(binding, rig.packet()) == S.CLOSING
    assert len(rig.miniport.submitted) == 1
    rig.miniport.complete_all()
    assert binding.state is BindingState.CLOSED
    assert len(rig.protocol.completions) == 1
    rig.finish()


# --- rule 17: NdisSendPackets ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_rule_17_send_packets_completes_every_packet_once_fast_failures_included(
    kind: Kind,
) -> None:
    rig = make_rig(kind)
    good = rig.packets(3)
    empty = rig.packet(size=0)
    huge = rig.packet(size=2000)
    array = [good[0], empty, good[1], huge, good[2]]
    assert rig.ndis.NdisSendPackets(rig.binding, array, len(array)) is None  # type: ignore[func-returns-value]
    assert rig.protocol.completions == [(empty, S.INVALID_PACKET), (huge, S.INVALID_PACKET)]
    assert rig.miniport.submitted == good
    rig.miniport.complete_all()
    completed = [p for p, _ in rig.protocol.completions]
    assert sorted(map(id, completed)) == sorted(map(id, array))
    rig.finish()


@pytest.mark.parametrize("kind", KINDS)
def test_rule_17_a_packet_sent_again_before_its_completion_is_refused(kind: Kind) -> None:
    rig = make_rig(kind)
    packet = rig.packet()
    rig.ndis.NdisSend(rig.binding, packet)
    with pytest.raises(ProtocolContractError) as info:
        rig.ndis.NdisSend(rig.binding, packet)
    assert info.value.rule == "R17"
    other = rig.packet()
    with pytest.raises(ProtocolContractError) as info:
        rig.ndis.NdisSendPackets(rig.binding, [other, other], 2)
    assert info.value.rule == "R17"
    assert other.ownership is Ownership.ALLOCATED  # refused before NDIS took any of it
    rig.miniport.complete_all()
    rig.finish()


def test_rule_17_bad_packet_array_arguments() -> None:
    rig = Rig5()
    packet = rig.packet()
    with pytest.raises(NdisError) as info:
        rig.ndis.NdisSendPackets(rig.binding, [packet], 2)
    assert info.value.rule == "PY-BAD-ARGUMENT"
    with pytest.raises(NdisError) as info:
        rig.ndis.NdisSendPackets(rig.binding, ["not a packet"], 1)  # type: ignore[list-item]
    assert info.value.rule == "PY-BAD-HANDLE"
    rig.ndis.NdisSendPackets(rig.binding, [], 0)
    assert rig.miniport.submitted == []
    rig.finish()


# --- rule 18: FIFO --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_rule_18_submission_follows_protocol_order(kind: Kind) -> None:
    rig = make_rig(kind, max_send_packets=3)
    packets = rig.packets(9)
    rig.ndis.NdisSend(rig.binding, packets[0])
    rig.ndis.NdisSendPackets(rig.binding, packets[1:5], 4)
    rig.ndis.NdisSend(rig.binding, packets[5])
    rig.ndis.NdisSendPackets(rig.binding, packets[6:], 3)
    assert rig.miniport.submitted == packets
    for packet in reversed(packets):  # completion order is free
        rig.miniport.complete(packet)
    assert [p for p, _ in rig.protocol.completions] == list(reversed(packets))
    rig.finish()


# --- rule 19 --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ddi", ["NdisSend", "NdisSendPackets"])
def test_rule_19_connectionless_send_on_a_co_binding_is_refused(ddi: str) -> None:
    rig = Rig5()
    rig.adapter.driver.is_co = True  # the binding's miniport is connection-oriented
    packet = rig.packet()
    with pytest.raises(ProtocolContractError) as info:
        if ddi == "NdisSend":
            rig.ndis.NdisSend(rig.binding, packet)
        else:
            rig.ndis.NdisSendPackets(rig.binding, [packet], 1)
    assert info.value.rule == "R19"
    assert "NdisCoSendPackets" in str(info.value)
    assert packet.ownership is Ownership.ALLOCATED
    rig.adapter.driver.is_co = False
    rig.finish()


# --- rules 20-23: serialized miniports -----------------------------------------------------------


def test_rule_20_with_both_handlers_only_send_packets_is_called_in_batches() -> None:
    rig = Rig5(PacketsMiniport5(max_send_packets=3))
    assert rig.adapter.driver.has("MiniportSend")
    packets = rig.packets(7)
    rig.ndis.NdisSendPackets(rig.binding, packets, 7)
    assert rig.miniport.calls == [3, 3, 1]
    assert rig.miniport.flags == []  # MiniportSend never called
    assert rig.miniport.submitted == packets
    rig.miniport.complete_all()
    rig.finish()


@pytest.mark.parametrize("kind", SERIALIZED)
def test_rule_20_serialized_handlers_run_at_dispatch_and_miniport_send_gets_the_flags(
    kind: Kind,
) -> None:
    rig = make_rig(kind)
    packet = rig.packet(flags=0x5)  # protocol id bits
    assert rig.ndis.irql.level == PASSIVE_LEVEL
    rig.ndis.NdisSend(rig.binding, packet)
    assert rig.miniport.irqls == [DISPATCH_LEVEL]
    if kind[0] is Miniport5:
        assert rig.miniport.flags == [NdisGetPacketFlags(packet)] == [0x5]
    rig.miniport.complete_all()
    assert rig.protocol.completion_irqls == [DISPATCH_LEVEL]
    assert rig.ndis.irql.level == PASSIVE_LEVEL
    rig.finish()


def test_rule_21_resources_requeues_at_the_head_and_resubmits_on_the_next_completion() -> None:
    rig = Rig5(Miniport5())
    a, b, c = rig.packets(3)
    rig.miniport.script.extend([S.PENDING, S.RESOURCES])
    assert rig.ndis.NdisSend(rig.binding, a) == S.PENDING
    assert rig.ndis.NdisSend(rig.binding, b) == S.PENDING  # refused: NDIS holds it, PENDING
    assert b.ownership is Ownership.IN_NDIS
    assert rig.ndis.NdisSend(rig.binding, c) == S.PENDING
    assert list(r.packet for r in rig.adapter.send_queue) == [b, c]
    assert rig.miniport.submitted == [a, b]  # c waits behind the refused b
    rig.miniport.complete(a)
    rig.ndis.run()  # resubmission from a DPC, never inside the completing miniport
    assert rig.miniport.submitted == [a, b, b, c]
    assert rig.miniport.accepted == [a, b, c]
    rig.miniport.complete_all()
    rig.finish()
    assert [p for p, _ in rig.protocol.completions] == [a, b, c]


@pytest.mark.parametrize("kind", SERIALIZED)
def test_rule_21_resources_resubmits_on_send_resources_available(kind: Kind) -> None:
    rig = make_rig(kind)
    packet = rig.packet()
    rig.miniport.script.append(S.RESOURCES)
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    rig.ndis.run()
    assert rig.miniport.submitted == [packet]  # nothing woke the queue yet
    rig.miniport.resources_available()
    rig.ndis.run()
    assert rig.miniport.submitted == [packet, packet]
    rig.miniport.complete_all()
    assert rig.protocol.completions == [(packet, S.SUCCESS)]
    rig.finish()


def test_rule_22_resources_at_element_i_requeues_it_and_every_later_one_in_order() -> None:
    rig = Rig5(PacketsMiniport5(max_send_packets=4))
    p = rig.packets(4)
    rig.miniport.script.extend([S.SUCCESS, S.PENDING, S.RESOURCES])
    rig.ndis.NdisSendPackets(rig.binding, p, 4)
    assert rig.miniport.calls == [4]
    assert rig.protocol.completions == [(p[0], S.SUCCESS)]
    assert [r.packet for r in rig.adapter.send_queue] == [p[2], p[3]]
    assert p[3].ownership is Ownership.IN_NDIS
    rig.miniport.resources_available()
    rig.ndis.run()
    assert rig.miniport.calls == [4, 2]
    assert rig.miniport.accepted == p
    rig.miniport.complete_all()
    rig.finish()


def test_rule_22_send_packets_that_sets_no_status_is_refused() -> None:
    rig = Rig5(NoStatusPacketsMiniport5())
    packet = rig.packet()
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisSend(rig.binding, packet)
    assert info.value.rule == "R22"
    assert packet.oob.Status == STATUS_NOT_SET


def test_rule_22_pending_after_a_refused_element_is_refused() -> None:
    class Inconsistent(PacketsMiniport5):
        def MiniportSendPackets(self, ctx: object, PacketArray: Any, NumberOfPackets: int) -> None:
            NDIS_SET_PACKET_STATUS(PacketArray[0], S.RESOURCES)
            NDIS_SET_PACKET_STATUS(PacketArray[1], S.PENDING)

    rig = Rig5(Inconsistent(max_send_packets=2))
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisSendPackets(rig.binding, rig.packets(2), 2)
    assert info.value.rule == "R22"


@pytest.mark.parametrize("kind", SERIALIZED)
def test_rule_23_resources_available_with_sends_pending_only_restarts_the_queue(
    kind: Kind,
) -> None:
    rig = make_rig(kind)
    held = rig.packet()
    rig.ndis.NdisSend(rig.binding, held)
    rig.miniport.resources_available()
    rig.ndis.run()
    assert rig.miniport.held == [held]
    assert held.ownership is Ownership.AT_MINIPORT
    assert rig.protocol.completions == []
    rig.miniport.complete_all()
    rig.finish()


# --- rules 25-27: deserialized miniports ---------------------------------------------------------


@pytest.mark.parametrize("deserialized", [False, True])
def test_rule_25_deserialized_is_declared_at_initialization(deserialized: bool) -> None:
    rig = Rig5(Miniport5(deserialized=deserialized))
    assert rig.adapter.deserialized is deserialized
    rig.finish()


@pytest.mark.parametrize("kind", KINDS)
def test_rule_26_a_completion_inside_the_send_handler_is_handled_once(kind: Kind) -> None:
    cls, deserialized = kind
    miniport: Miniport5
    if cls is Miniport5:
        miniport = CompleteInSendMiniport5(S.PENDING, S.NO_CABLE, deserialized=deserialized)
    else:
        miniport = CompleteInSendPacketsMiniport5(S.PENDING, deserialized=deserialized)
    rig = Rig5(miniport)
    a, b = rig.packets(2)
    assert rig.ndis.NdisSend(rig.binding, a) == S.PENDING
    rig.ndis.NdisSendPackets(rig.binding, [b], 1)
    status = S.NO_CABLE if cls is Miniport5 else S.SUCCESS
    assert rig.protocol.completions == [(a, status), (b, status)]
    rig.finish()


def test_rule_26_completion_inside_send_packets_with_no_status_written_is_legal() -> None:
    rig = Rig5(CompleteInSendPacketsMiniport5(None, max_send_packets=2))
    packets = rig.packets(2)
    rig.ndis.NdisSendPackets(rig.binding, packets, 2)
    assert rig.protocol.completions == [(packets[0], S.SUCCESS), (packets[1], S.SUCCESS)]
    assert packets[0].oob.Status == S.SUCCESS  # the final status, not NDIS's marker
    rig.finish()


@pytest.mark.parametrize(
    "miniport",
    [
        pytest.param(SyncDeserializedMiniport5, id="send-returns-success"),
        pytest.param(ResourcesDeserializedMiniport5, id="send-returns-resources"),
        pytest.param(ResourcesDeserializedPacketsMiniport5, id="oob-resources"),
    ],
)
def test_rule_26_deserialized_miniport_never_completes_synchronously_or_says_resources(
    miniport: Callable[[], Miniport5],
) -> None:
    rig = Rig5(miniport())
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisSend(rig.binding, rig.packet())
    assert info.value.rule == "R26"
    assert info.value.culprit.name == "MINIPORT"


@pytest.mark.parametrize("kind", KINDS[2:])
def test_rule_27_no_ndis_queue_for_a_deserialized_miniport(kind: Kind) -> None:
    rig = make_rig(kind, max_send_packets=2)
    packets = rig.packets(5)
    rig.ndis.NdisSendPackets(rig.binding, packets, 5)
    assert rig.miniport.submitted == packets  # everything handed down at once
    assert not rig.adapter.send_queue
    assert rig.adapter.outstanding == 5
    if kind[0] is PacketsMiniport5:
        assert rig.miniport.calls == [2, 2, 1]
    for packet in [packets[2], packets[0], packets[4], packets[1], packets[3]]:
        rig.miniport.complete(packet)
    rig.finish()


# --- completion errors ----------------------------------------------------------------------------


def test_completion_with_pending_status_is_refused() -> None:
    rig = Rig5(PendingCompleteMiniport5())
    rig.ndis.NdisSend(rig.binding, rig.packet())
    with pytest.raises(MiniportContractError) as info:
        rig.miniport.complete()
    assert info.value.rule == "PY-COMPLETE-PENDING"


def test_completing_a_packet_ndis_still_queues_or_another_adapter_holds_is_refused() -> None:
    rig = Rig5(Miniport5())
    a, b = rig.packets(2)
    rig.ndis.NdisSend(rig.binding, a)
    rig.miniport.script.append(S.RESOURCES)
    rig.miniport.complete(a)
    rig.ndis.NdisSend(rig.binding, b)  # refused: in NDIS's queue
    handle = rig.miniport.handle
    assert handle is not None
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMSendComplete(handle, b, S.SUCCESS)
    assert info.value.rule == "PY-COMPLETE-NOT-OWNED"
    other = Rig5(Miniport5())
    foreign = other.packet()
    other.ndis.NdisSend(other.binding, foreign)
    with pytest.raises(MiniportContractError) as info:
        other.ndis.NdisMSendComplete(handle, foreign, S.SUCCESS)
    assert info.value.rule == "PY-COMPLETE-NOT-OWNED"
    other.miniport.complete_all()
    other.finish()


# --- rule 15 and rule 56: loopback ----------------------------------------------------------------


def loop_rig(
    mac_options: int = NDIS_MAC_OPTION_NO_LOOPBACK, keep: int = 0, *, deserialized: bool = False
) -> Rig5:
    protocols = [Protocol5(keep), Protocol5(keep)]
    return Rig5(Miniport5(mac_options=mac_options, deserialized=deserialized), protocols)


@pytest.mark.parametrize("deserialized", [False, True])
def test_rule_56_ndis_loops_back_when_the_nic_does_not(deserialized: bool) -> None:
    rig = loop_rig(deserialized=deserialized)
    packet = rig.packet(dest=BROADCAST, tag=7)
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    assert rig.miniport.submitted == [packet]  # transmitted as well
    for protocol in rig.protocols:  # the sender too (no NDIS_PROT_OPTION_NO_LOOPBACK)
        ((data, flags, status),) = protocol.received
        assert data[14:18] == (7).to_bytes(4, "big")
        assert flags & NDIS_FLAGS_IS_LOOPBACK_PACKET
        assert status == S.SUCCESS
    rig.miniport.complete_all()
    assert rig.miniport.returned == []  # NDIS's copies never reach the miniport
    rig.finish()


def test_rule_56_loopback_goes_only_to_bindings_whose_filter_accepts() -> None:
    rig = loop_rig()
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=PEER))  # to someone else: nobody local
    assert [p.received for p in rig.protocols] == [[], []]
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=ADDRESS))  # directed to this adapter
    assert [len(p.received) for p in rig.protocols] == [1, 1]
    rig.ndis.NdisRequest(
        rig.bindings[1],
        NdisRequestSetInformation,
        OID_GEN_CURRENT_PACKET_FILTER,
        NDIS_PACKET_TYPE_PROMISCUOUS,
    )
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=PEER))
    assert [len(p.received) for p in rig.protocols] == [1, 2]
    rig.miniport.complete_all()
    rig.finish()


def test_rule_56_protocol_option_no_loopback_keeps_a_binding_from_its_own_sends() -> None:
    rig = loop_rig()
    rig.ndis.NdisRequest(
        rig.binding,
        NdisRequestSetInformation,
        OID_GEN_PROTOCOL_OPTIONS,
        NDIS_PROT_OPTION_NO_LOOPBACK,
    )
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=BROADCAST))
    assert [len(p.received) for p in rig.protocols] == [0, 1]
    rig.miniport.complete_all()
    rig.finish()


def test_rule_56_dont_loopback_suppresses_the_copy() -> None:
    rig = loop_rig()
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=BROADCAST, flags=NDIS_FLAGS_DONT_LOOPBACK))
    assert [p.received for p in rig.protocols] == [[], []]
    assert len(rig.miniport.submitted) == 1
    rig.miniport.complete_all()
    rig.finish()


@pytest.mark.parametrize("mac_options", [0, NDIS_MAC_OPTION_NO_LOOPBACK])
def test_rule_56_loopback_only_is_looped_back_not_transmitted_and_succeeds(
    mac_options: int,
) -> None:
    rig = loop_rig(mac_options)
    one = rig.packet(dest=BROADCAST, flags=NDIS_FLAGS_LOOPBACK_ONLY)
    assert rig.ndis.NdisSend(rig.binding, one) == S.SUCCESS
    two = rig.packet(dest=BROADCAST, flags=NDIS_FLAGS_LOOPBACK_ONLY)
    rig.ndis.NdisSendPackets(rig.binding, [two], 1)
    assert rig.protocol.completions == [(two, S.SUCCESS)]
    assert rig.miniport.submitted == []
    assert [len(p.received) for p in rig.protocols] == [2, 2]
    rig.finish()


def test_rule_56_a_nic_that_loops_back_itself_gets_no_ndis_copy() -> None:
    rig = loop_rig(mac_options=0)
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=BROADCAST))
    assert [p.received for p in rig.protocols] == [[], []]
    rig.miniport.complete_all()
    rig.finish()


def test_rule_56_loopback_copies_come_from_ndis_and_return_to_ndis() -> None:
    rig = loop_rig(keep=1)
    packet = rig.packet(dest=BROADCAST)
    rig.ndis.NdisSend(rig.binding, packet)
    rig.miniport.complete_all()
    assert packet.ownership is Ownership.ALLOCATED  # the send is done ...
    first, second = (p.kept[0] for p in rig.protocols)
    assert first is second is not packet  # one NDIS copy, lent to both receivers
    assert first.ownership is Ownership.INDICATED
    pools = [p for p in rig.ndis.pools if p.tag == "ndis-loopback"]
    assert [p.outstanding for p in pools] == [1, 1]  # ... the receivers still hold NDIS's copy
    rig.protocols[0].return_kept()
    assert [p.outstanding for p in pools] == [1, 1]
    rig.protocols[1].return_kept()
    assert [p.outstanding for p in pools] == [0, 0]
    assert rig.miniport.returned == []
    rig.finish()


@pytest.mark.parametrize("keep", [0, 1])
def test_rule_56_ndis_loopback_copies_get_pending_status_only_when_kept(keep: int) -> None:
    """MiniportReturnPacket page, applied to NDIS's own loopback copies: one nobody kept is back
    with NDIS (freed) when the loopback indication returns, with a non-PENDING Status; one a
    receiver kept has Status PENDING and is freed after the last NdisReturnPackets."""
    looker, keeper = Protocol5(), Protocol5(keep)
    rig = Rig5(Miniport5(mac_options=NDIS_MAC_OPTION_NO_LOOPBACK), [looker, keeper])
    seen: list[NDIS_PACKET] = []
    looker.on_receive = seen.append
    rig.ndis.NdisSend(rig.binding, rig.packet(dest=BROADCAST))
    (copy,) = seen
    pools = [p for p in rig.ndis.pools if p.tag == "ndis-loopback"]
    assert [p.outstanding for p in pools] == [keep, keep]
    if keep:
        assert copy.ownership is Ownership.INDICATED and copy.oob.Status == S.PENDING
        keeper.return_kept()
        assert [p.outstanding for p in pools] == [0, 0]
    else:
        assert copy.ownership is Ownership.FREE  # NDIS freed it when the indication returned
    assert rig.ndis.receive5_outstanding() == []
    rig.miniport.complete_all()
    assert rig.miniport.returned == [] and rig.miniport.reclaimed == []
    rig.finish()


def test_rule_15_is_loopback_packet_set_by_a_protocol_is_refused() -> None:
    rig = Rig5(protocols=[LoopbackFlagProtocol5()])
    packet = rig.packet()
    with pytest.raises(ProtocolContractError) as info:
        rig.protocol.send(rig.binding, packet)
    assert info.value.rule == "R15"
    assert packet.ownership is Ownership.ALLOCATED
    rig.finish()


# --- rule 62: IRQL --------------------------------------------------------------------------------


def test_rule_62_send_and_complete_refuse_irql_above_dispatch() -> None:
    rig = Rig5()
    packet = rig.packet()
    with rig.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        rig.ndis.NdisSend(rig.binding, packet)
    assert info.value.rule == "R62"
    with rig.ndis.irql.at(DIRQL), pytest.raises(IrqlError):
        rig.ndis.NdisSendPackets(rig.binding, [packet], 1)
    with rig.ndis.irql.at(DISPATCH_LEVEL):
        assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    handle = rig.miniport.handle
    assert handle is not None
    with rig.ndis.irql.at(DIRQL), pytest.raises(IrqlError):
        rig.ndis.NdisMSendComplete(handle, packet, S.SUCCESS)
    with rig.ndis.irql.at(DIRQL), pytest.raises(IrqlError):
        rig.ndis.NdisMSendResourcesAvailable(handle)
    rig.miniport.complete_all()
    rig.finish()


def test_rule_62_a_deserialized_miniport_is_called_at_the_callers_irql() -> None:
    rig = Rig5(Miniport5(deserialized=True))
    rig.ndis.NdisSend(rig.binding, rig.packet())
    with rig.ndis.irql.at(DISPATCH_LEVEL):
        rig.ndis.NdisSend(rig.binding, rig.packet())
    assert rig.miniport.irqls == [PASSIVE_LEVEL, DISPATCH_LEVEL]
    rig.miniport.complete_all()
    assert rig.protocol.completion_irqls == [DISPATCH_LEVEL, DISPATCH_LEVEL]
    rig.finish()


# --- cancel, flush, verifier, determinism ---------------------------------------------------------


@pytest.mark.parametrize("kind", SERIALIZED)
def test_cancel_send_packets_aborts_queued_packets_with_that_id(kind: Kind) -> None:
    rig = make_rig(kind)
    p = rig.packets(4)
    for packet, cancel_id in zip(p, ["x", "x", "y", "x"], strict=True):
        packet.extension[PacketCancelId] = cancel_id
    rig.miniport.script.extend([S.PENDING, S.RESOURCES])
    for packet in p:
        rig.ndis.NdisSend(rig.binding, packet)
    assert [r.packet for r in rig.adapter.send_queue] == p[1:]
    rig.ndis.NdisCancelSendPackets(rig.binding, "x")
    assert rig.miniport.cancel_ids == ["x"]
    assert set(rig.protocol.completions) == {
        (p[0], S.REQUEST_ABORTED),  # held by the miniport, which cancels it
        (p[1], S.REQUEST_ABORTED),
        (p[3], S.REQUEST_ABORTED),
    }
    assert [r.packet for r in rig.adapter.send_queue] == [p[2]]
    rig.miniport.resources_available()
    rig.ndis.run()
    rig.miniport.complete_all()
    rig.finish()


def test_close_flushes_the_bindings_queued_packets_with_closing() -> None:
    rig = Rig5(Miniport5(), [Protocol5(), Protocol5()])
    mine, other = rig.packet(), rig.packet()
    rig.miniport.script.append(S.RESOURCES)
    rig.ndis.NdisSend(rig.binding, mine)
    rig.ndis.NdisSend(rig.bindings[1], other)
    assert rig.ndis.NdisCloseAdapter(rig.binding) == S.SUCCESS
    assert rig.protocols[0].completions == [(mine, S.CLOSING)]
    assert [r.packet for r in rig.adapter.send_queue] == [other]
    rig.miniport.resources_available()
    rig.ndis.run()
    rig.miniport.complete_all()
    assert rig.protocols[1].completions == [(other, S.SUCCESS)]
    rig.finish()


def test_reset_flushes_queued_packets_with_reset_in_progress() -> None:
    rig = Rig5(Miniport5())
    a, b = rig.packets(2)
    rig.miniport.script.append(S.RESOURCES)
    rig.ndis.NdisSend(rig.binding, a)
    rig.ndis.NdisSend(rig.binding, b)
    assert rig.ndis.reset_adapter(rig.adapter) == S.SUCCESS
    assert rig.protocol.completions == [(a, S.RESET_IN_PROGRESS), (b, S.RESET_IN_PROGRESS)]
    c = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, c) == S.PENDING  # the queue runs again after a reset
    rig.miniport.complete_all()
    rig.finish()


def test_verifier_reports_data_changed_while_ndis_owned_it() -> None:
    rig = Rig5(protocols=[DataChangingProtocol5()], verifier=True)
    packet = rig.packet()
    assert rig.protocol.send_and_scribble(rig.binding, packet) == S.PENDING
    rig.miniport.complete_all()
    assert rig.ndis.verifier is not None
    assert rig.ndis.verifier.rules() == ["PY-DATA-CHANGED"]
    assert rig.ndis.verifier.violations[0].culprit.name == "PROTOCOL"
    clean = rig.packet()
    rig.ndis.NdisSend(rig.binding, clean)
    rig.miniport.complete_all()
    assert rig.ndis.verifier.rules() == ["PY-DATA-CHANGED"]
    rig.finish()


def scenario_trace(seed: int) -> str:
    rig = Rig5(Miniport5(complete_after_ns=1_000), seed=seed)
    rig.miniport.script.extend([S.SUCCESS, S.PENDING, S.RESOURCES, S.SUCCESS])
    for packet in rig.packets(4):
        rig.ndis.NdisSend(rig.binding, packet)
    rig.finish()
    return rig.ndis.scheduler.trace_text()


def test_traces_are_deterministic() -> None:
    first = scenario_trace(3)
    assert first == scenario_trace(3)
    assert "requeue5" in first and "send-complete5" in first and "send-return5" in first


# --- hypothesis: a serialized miniport against a model --------------------------------------------

VERDICTS = st.sampled_from([S.PENDING, S.PENDING, S.SUCCESS, S.FAILURE, S.RESOURCES])
OPS = st.one_of(
    st.tuples(st.just("send"), st.integers(1, 1)),
    st.tuples(st.just("packets"), st.integers(1, 4)),
    st.tuples(st.just("complete"), st.integers(0, 7)),
    st.tuples(st.just("available"), st.just(0)),
    st.tuples(st.just("run"), st.just(0)),
)


@settings(max_examples=150)
@given(
    packets_handler=st.booleans(),
    batch=st.integers(1, 4),
    verdicts=st.lists(VERDICTS, max_size=40),
    ops=st.lists(OPS, max_size=40),
)
def test_random_serialized_sends_keep_fifo_and_complete_exactly_once(
    packets_handler: bool, batch: int, verdicts: list[int], ops: list[tuple[str, int]]
) -> None:
    miniport = PacketsMiniport5(max_send_packets=batch) if packets_handler else Miniport5()
    miniport.script.extend(verdicts)
    rig = Rig5(miniport, pool=200)
    ndis, binding, protocol = rig.ndis, rig.binding, rig.protocol
    order: list[NDIS_PACKET] = []
    results: dict[int, list[int]] = {}
    protocol.on_complete = lambda p, s: results.setdefault(id(p), []).append(s)

    def check_fifo() -> None:
        index = {id(p): i for i, p in enumerate(order)}
        accepted = [index[id(p)] for p in miniport.accepted]
        assert accepted == sorted(set(accepted))  # in protocol order, each accepted once
        first: list[int] = []
        for p in miniport.submitted:
            if index[id(p)] not in first:
                first.append(index[id(p)])
        assert first == sorted(first)

    for op, arg in ops:
        if op == "send":
            packet = rig.packet(tag=len(order))
            order.append(packet)
            status = ndis.NdisSend(binding, packet)
            if status != S.PENDING:
                results.setdefault(id(packet), []).append(status)
        elif op == "packets":
            array = [rig.packet(tag=len(order) + i) for i in range(arg)]
            order.extend(array)
            ndis.NdisSendPackets(binding, array, arg)
        elif op == "complete" and miniport.held:
            miniport.complete(miniport.held[arg % len(miniport.held)], S.SUCCESS)
        elif op == "available":
            miniport.resources_available()
        elif op == "run":
            ndis.run()
        check_fifo()
        for packet in order:  # at most once, at every moment
            assert len(results.get(id(packet), [])) <= 1
    for _ in range(len(order) + len(verdicts) + 2):
        ndis.run()
        miniport.complete_all()
        miniport.resources_available()
    ndis.run()
    check_fifo()
    assert all(len(results.get(id(p), [])) == 1 for p in order)  # exactly once
    assert miniport.accepted == order
    rig.finish()


# --- hot paths: written-out ownership moves and handler calls -------------------------------------
#
# The send path writes out transition() and Ndis.call for speed. These tests pin down that the
# written-out forms keep what the originals guarantee: every move recorded when the verifier is
# on, and the IRQL, the running actor and the driver stack restored however a handler ends.


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ddi", ["NdisSend", "NdisSendPackets"])
def test_with_the_verifier_every_move_of_a_send_is_recorded(kind: Kind, ddi: str) -> None:
    rig = make_rig(kind, verifier=True)
    packets = rig.packets(3)
    if ddi == "NdisSend":
        for packet in packets:
            assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    else:
        rig.ndis.NdisSendPackets(rig.binding, packets, len(packets))
    rig.miniport.complete_all()
    moves = [Event.ALLOCATE, Event.SEND, Event.SUBMIT, Event.COMPLETE, Event.RETURN]
    for packet in packets:
        assert packet.history is not None
        assert [entry.event for entry in packet.history] == moves
    rig.finish()


@pytest.mark.parametrize("kind", SERIALIZED)
def test_with_the_verifier_a_requeued_send_records_both_submissions(kind: Kind) -> None:
    rig = make_rig(kind, verifier=True)
    rig.miniport.script.extend([S.RESOURCES, S.SUCCESS])
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING  # refused, queued again
    rig.miniport.resources_available()
    rig.ndis.run()
    assert rig.protocol.completions == [(packet, S.SUCCESS)]
    assert packet.history is not None
    assert [entry.event for entry in packet.history] == [
        Event.ALLOCATE,
        Event.SEND,
        Event.SUBMIT,
        Event.REQUEUE,
        Event.SUBMIT,
        Event.COMPLETE,
        Event.RETURN,
    ]
    rig.finish()


def assert_kernel_restored(rig: Rig5) -> None:
    assert rig.ndis.irql.level == PASSIVE_LEVEL
    assert rig.ndis.actors == [Culprit.NDIS_USER]
    assert rig.ndis.driver_stack == []
    assert not rig.adapter.in_send_handler


@pytest.mark.parametrize("kind", KINDS)
def test_a_raising_send_complete_handler_leaves_the_kernel_restored(kind: Kind) -> None:
    rig = make_rig(kind)
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING

    def fail(packet: NDIS_PACKET, status: int) -> None:
        raise RuntimeError("handler bug")

    rig.protocol.on_complete = fail
    with pytest.raises(RuntimeError, match="handler bug"):
        rig.miniport.complete(packet, S.SUCCESS)
    assert_kernel_restored(rig)
    assert packet.ownership is Ownership.ALLOCATED  # returned before the handler ran
    assert rig.binding.counters.in_flight == 0
    rig.protocol.on_complete = None
    again = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, again) == S.PENDING  # the kernel still works
    rig.miniport.complete_all()
    assert rig.protocol.completions[-1] == (again, S.SUCCESS)
    rig.finish()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ddi", ["NdisSend", "NdisSendPackets"])
def test_a_raising_miniport_send_handler_leaves_the_kernel_restored(kind: Kind, ddi: str) -> None:
    rig = make_rig(kind)
    packet = rig.packet()

    def fail(packet: NDIS_PACKET) -> None:
        raise RuntimeError("miniport bug")

    rig.miniport.on_send = fail
    with pytest.raises(RuntimeError, match="miniport bug"):
        if ddi == "NdisSend":
            rig.ndis.NdisSend(rig.binding, packet)
        else:
            rig.ndis.NdisSendPackets(rig.binding, [packet], 1)
    assert_kernel_restored(rig)
    assert packet.ownership is Ownership.AT_MINIPORT  # handed down; the miniport lost it
    rig.miniport.on_send = None
    rig.ndis.NdisMSendComplete(rig.adapter, packet, S.SUCCESS)  # it may still complete it
    assert packet.ownership is Ownership.ALLOCATED
    assert rig.binding.counters.in_flight == 0
    rig.finish()


@pytest.mark.parametrize("state", [BindingState.PAUSED, BindingState.CLOSING], ids=lambda s: s.name)
def test_a_binding_that_is_not_running_is_refused_through_the_full_checks(
    state: BindingState,
) -> None:
    rig = make_rig(KINDS[0].values[0])
    packet = rig.packet()
    rig.binding.state = state
    assert rig.ndis.NdisSend(rig.binding, packet) == S.CLOSING
    assert packet.ownership is Ownership.ALLOCATED
    rig.binding.state = BindingState.RUNNING
    rig.finish()
