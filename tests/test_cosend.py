"""CoNDIS 5.x data path (library.cosend): NdisCoSendPackets, NdisMCoSendComplete,
NdisMCoIndicateReceivePacket and NdisReturnPackets (rules 17, 32, 35-37, 62)."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import DIRQL, DISPATCH_LEVEL, PASSIVE_LEVEL, NdisMediumAtm
from pyndis.drivers.atmsig import atm_call_parameters
from pyndis.errors import (
    Culprit,
    IrqlError,
    MiniportContractError,
    NdisUsageError,
    ProtocolContractError,
)
from pyndis.library.binding import NDIS_OPEN_PARAMETERS
from pyndis.library.covc import VirtualConnection
from pyndis.mdl import BufferPool, NdisAllocateBuffer, NdisFreeBuffer
from pyndis.ownership import Ownership
from pyndis.packet import (
    NDIS_GET_PACKET_STATUS,
    NDIS_OOB_DATA_FROM_PACKET,
    NDIS_PACKET,
    NDIS_SET_PACKET_STATUS,
    NdisChainBufferAtBack,
    NdisUnchainBufferAtFront,
    NdisZeroMemory,
    packet_bytes,
)
from pyndis.pools import NdisAllocatePacket, NdisFreePacket, NdisReinitializePacket, PacketPool
from pyndis.status import NDIS_STATUS
from pyndis.testing.co5 import CoRig5, ScriptedCoMiniport5

S = NDIS_STATUS


class Packets:
    """A packet pool and a buffer pool of the test, and packets with one buffer each."""

    def __init__(self, rig: CoRig5, count: int = 64) -> None:
        ndis = rig.ndis
        _, pool = ndis.NdisAllocatePacketPool(count, 16)
        _, buffers = ndis.NdisAllocateBufferPool(count * 2)
        assert pool is not None
        self.pool: PacketPool = pool
        self.buffers: BufferPool = buffers

    def make(self, *payloads: bytes) -> list[NDIS_PACKET]:
        out = []
        for payload in payloads:
            _, packet = NdisAllocatePacket(self.pool)
            _, buffer = NdisAllocateBuffer(self.buffers, payload, len(payload))
            assert packet is not None and buffer is not None
            NdisChainBufferAtBack(packet, buffer)
            out.append(packet)
        return out

    def free(self, packets: list[NDIS_PACKET]) -> None:
        for packet in packets:
            buffer = NdisUnchainBufferAtFront(packet)
            while buffer is not None:
                NdisFreeBuffer(buffer)
                buffer = NdisUnchainBufferAtFront(packet)
            NdisFreePacket(packet)

    def balance(self) -> None:
        assert self.pool.outstanding == 0 and self.buffers.outstanding == 0


@pytest.fixture
def rig() -> CoRig5:
    return CoRig5()


@pytest.fixture
def pk(rig: CoRig5) -> Packets:
    return Packets(rig)


def completions(rig: CoRig5) -> list[tuple[Any, ...]]:
    return rig.client.calls("ProtocolCoSendComplete")


def rules(rig: CoRig5) -> list[str]:
    assert rig.ndis.verifier is not None
    return rig.ndis.verifier.rules()


# --- rule 36: FIFO submission, no NDIS queue, completion in any order -------------------------


def test_rule_36_submission_is_fifo_per_call_and_across_calls(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    first = pk.make(b"a", b"b", b"c")
    second = pk.make(b"d", b"e")
    rig.ndis.NdisCoSendPackets(vc, first, 3)
    assert rig.miniport.arrays == [first]  # straight to the miniport: no NDIS queue
    assert all(p.ownership is Ownership.AT_MINIPORT for p in first)
    rig.ndis.NdisCoSendPackets(vc, second, 2)
    assert rig.miniport.arrays == [first, second]
    assert [p for _, p in rig.miniport.held] == first + second
    assert rig.miniport.calls("MiniportCoSendPackets")[0][0] is vc.MiniportVcContext
    pk.free([])


def test_rule_36_completion_order_is_free_and_each_status_is_per_packet(
    rig: CoRig5, pk: Packets
) -> None:
    vc = rig.connect()
    packets = pk.make(b"1", b"2", b"3", b"4")
    rig.ndis.NdisCoSendPackets(vc, packets, 4)
    rig.miniport.complete(S.SUCCESS, order=[2, 0])
    rig.miniport.complete(S.FAILURE, order=[1, 0])
    got = [(args[0], args[2]) for args in completions(rig)]
    assert got == [
        (S.SUCCESS, packets[2]),
        (S.SUCCESS, packets[0]),
        (S.FAILURE, packets[3]),  # order indexes what is still held: [p1, p3]
        (S.FAILURE, packets[1]),
    ]
    assert all(args[1] == "client-vc" for args in completions(rig))
    assert all(p.ownership is Ownership.ALLOCATED for p in packets)
    assert packets[1].oob.Status == S.FAILURE
    c = vc.counters
    assert (c.sent, c.completed, c.in_flight) == (4, 4, 0)
    assert c.by_status == {S.SUCCESS: 2, S.FAILURE: 2} and c.bytes_sent == c.bytes_completed == 4
    assert rig.client_binding.counters.completed == 4
    pk.free(packets)
    pk.balance()
    rig.ndis.assert_nothing_lost()


def test_rule_36_only_the_first_count_packets_are_sent(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    packets = pk.make(b"1", b"2", b"3")
    rig.ndis.NdisCoSendPackets(vc, packets, 2)
    assert rig.miniport.arrays == [packets[:2]]
    assert packets[2].ownership is Ownership.ALLOCATED
    rig.ndis.NdisCoSendPackets(vc, packets, 0)  # nothing at all
    assert len(rig.miniport.arrays) == 1


def test_rule_36_reentrant_completion_and_resend_stay_fifo(rig: CoRig5, pk: Packets) -> None:
    """The miniport completes inside MiniportCoSendPackets; the client sends again from inside
    ProtocolCoSendComplete: each packet completes once, arrays reach the miniport in order."""
    ndis = rig.ndis
    vc = rig.connect()
    extra = pk.make(b"x", b"y")
    sent_again: list[NDIS_PACKET] = []

    def on_send(mvc: Any, array: list[NDIS_PACKET], n: int) -> None:
        held, rig.miniport.held = rig.miniport.held, []
        with ndis.irql.at(DISPATCH_LEVEL):
            for _, packet in held:
                ndis.NdisMCoSendComplete(S.SUCCESS, mvc.handle, packet)

    def on_complete(status: int, ctx: Any, packet: NDIS_PACKET) -> None:
        if extra:
            nxt = extra.pop(0)
            sent_again.append(nxt)
            ndis.NdisCoSendPackets(vc, [nxt], 1)

    rig.miniport.answers["MiniportCoSendPackets"] = on_send
    rig.client.answers["ProtocolCoSendComplete"] = on_complete
    first = pk.make(b"a")
    ndis.NdisCoSendPackets(vc, first, 1)
    assert rig.miniport.arrays == [first, [sent_again[0]], [sent_again[1]]]
    assert [args[2] for args in completions(rig)] == first + sent_again
    assert vc.counters.in_flight == 0 and rig.adapter.outstanding == 0
    ndis.assert_nothing_lost()


# --- rule 37: exactly one completion, never PENDING, on its own VC --------------------------


def test_rule_37_double_completion_is_refused(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"a")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    rig.miniport.complete()
    with rig.ndis.irql.at(DISPATCH_LEVEL), pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMCoSendComplete(S.SUCCESS, vc, packet)
    assert info.value.rule == "PY-DOUBLE-COMPLETE" and info.value.culprit is Culprit.MINIPORT
    assert len(completions(rig)) == 1


def test_rule_37_pending_is_no_completion_status(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"a")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    with pytest.raises(MiniportContractError) as info:
        rig.miniport.complete(S.PENDING)
    assert info.value.rule == "R37"
    assert packet.ownership is Ownership.AT_MINIPORT  # nothing moved


def test_rule_37_completion_through_another_vc_is_refused(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect("one")
    other = rig.connect("two")
    [packet] = pk.make(b"a")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    with rig.ndis.irql.at(DISPATCH_LEVEL), pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMCoSendComplete(S.SUCCESS, other, packet)
    assert info.value.rule == "R37" and "sent on" in info.value.message
    [never] = pk.make(b"b")
    with rig.ndis.irql.at(DISPATCH_LEVEL), pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMCoSendComplete(S.SUCCESS, vc, never)
    assert info.value.rule == "PY-DOUBLE-COMPLETE"  # completed after its owner had it back
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMCoSendComplete(S.SUCCESS, vc, "packet")  # type: ignore[arg-type]
    assert info.value.rule == "PY-BAD-HANDLE"


def test_rule_37_end_of_tx_completion_inside_the_send_handler_is_flagged(
    rig: CoRig5, pk: Packets
) -> None:
    ndis = rig.ndis
    vc = rig.connect(params=atm_call_parameters(b"x", 100, end_of_tx=True))
    assert vc.end_of_tx

    def on_send(mvc: Any, array: list[NDIS_PACKET], n: int) -> None:
        rig.miniport.complete()  # at once: the data cannot be out yet

    rig.miniport.answers["MiniportCoSendPackets"] = on_send
    ndis.NdisCoSendPackets(vc, pk.make(b"a"), 1)
    assert rules(rig) == ["R37"]
    rig.miniport.answers.clear()
    ndis.NdisCoSendPackets(vc, pk.make(b"b"), 1)
    rig.miniport.complete()  # later, from a DPC: fine
    assert rules(rig) == ["R37"]


def test_rule_62_completion_irql(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    rig.ndis.NdisCoSendPackets(vc, pk.make(b"a", b"b"), 2)
    rig.miniport.complete(order=[0], irql=PASSIVE_LEVEL)  # works, but is reported
    assert rules(rig) == ["R62"]
    with pytest.raises(IrqlError) as info:
        rig.miniport.complete(irql=DIRQL)
    assert info.value.rule == "R62" and info.value.culprit is Culprit.MINIPORT
    late = pk.make(b"c")
    with rig.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        rig.ndis.NdisCoSendPackets(vc, late, 1)
    assert info.value.culprit is Culprit.PROTOCOL


# --- rule 35: sends NDIS refuses ------------------------------------------------------------


def test_rule_35_send_on_a_vc_never_activated(rig: CoRig5, pk: Packets) -> None:
    vc = rig.create()
    packets = pk.make(b"a", b"b")
    rig.ndis.NdisCoSendPackets(vc, packets, 2)
    assert [(a[0], a[2]) for a in completions(rig)] == [
        (S.VC_NOT_ACTIVATED, packets[0]),
        (S.VC_NOT_ACTIVATED, packets[1]),
    ]
    assert rig.miniport.arrays == [] and packets[0].oob.Status == S.VC_NOT_ACTIVATED
    assert rules(rig) == ["R35"]  # once per call
    assert vc.counters.by_status == {S.VC_NOT_ACTIVATED: 2} and vc.counters.in_flight == 0
    pk.free(packets)
    pk.balance()


def test_rule_35_send_after_close_call(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    rig.ndis.NdisClCloseCall(vc)
    [packet] = pk.make(b"a")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    assert completions(rig) == [(S.CLOSING, "client-vc", packet)]
    assert rules(rig) == ["R35"]


def test_rule_35_send_on_a_closed_binding_completes_with_closing(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    assert rig.ndis.NdisCloseAdapter(rig.client_binding) == S.SUCCESS
    rig.ndis.NdisCoSendPackets(vc, pk.make(b"a"), 1)
    assert completions(rig)[0][0] == S.CLOSING


def test_rule_29_and_30_data_before_the_call_is_up_goes_down_but_is_flagged(
    rig: CoRig5, pk: Packets
) -> None:
    ndis = rig.ndis
    vc = rig.create()
    ndis.NdisClMakeCall(vc, atm_call_parameters(b"x", 1))
    ndis.NdisCmActivateVc(vc, atm_call_parameters(b"x", 1))
    ndis.NdisCoSendPackets(vc, pk.make(b"early"), 1)
    assert len(rig.miniport.arrays) == 1 and rules(rig) == ["R29"]


def test_rule_34_send_after_incoming_close(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    rig.ndis.NdisCmDispatchIncomingCloseCall(S.SUCCESS, vc)
    rig.ndis.NdisCoSendPackets(vc, pk.make(b"late"), 1)
    assert completions(rig)[0][0] == S.CLOSING and rules(rig) == ["R34"]


# --- rule 32: close waits for sends; deactivation completes them first ---------------------


def test_rule_32_close_waits_for_outstanding_sends(rig: CoRig5, pk: Packets) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    ndis.NdisCoSendPackets(vc, pk.make(b"a", b"b"), 2)
    assert ndis.NdisClCloseCall(vc) == S.PENDING
    assert rules(rig) == ["R32"] and rig.cm.calls("ProtocolCmCloseCall") == []
    rig.miniport.complete(order=[0])
    assert rig.cm.calls("ProtocolCmCloseCall") == []  # one still out
    rig.miniport.complete()
    assert len(rig.cm.calls("ProtocolCmCloseCall")) == 1
    ndis.NdisCmDeactivateVc(vc)
    ndis.NdisCmCloseCallComplete(S.SUCCESS, vc)
    assert rig.client.calls("ProtocolClCloseCallComplete") == [(S.SUCCESS, "client-vc", None)]


def test_rule_32_held_close_answered_at_once_by_the_cm(rig: CoRig5, pk: Packets) -> None:
    ndis = rig.ndis
    vc = rig.connect()

    def close(ctx: Any, party: Any, data: Any, size: int) -> NDIS_STATUS:
        ndis.NdisCmDeactivateVc(ctx.handle)
        return S.SUCCESS

    rig.cm.answers["ProtocolCmCloseCall"] = close
    ndis.NdisCoSendPackets(vc, pk.make(b"a"), 1)
    assert ndis.NdisClCloseCall(vc) == S.PENDING
    rig.miniport.complete()
    # NdisClCloseCall returned PENDING, so the client hears through its completion handler
    assert rig.client.calls("ProtocolClCloseCallComplete") == [(S.SUCCESS, "client-vc", None)]
    assert ndis.NdisCoDeleteVc(vc) == S.SUCCESS


def test_rule_32_deactivation_with_sends_still_at_the_miniport(rig: CoRig5, pk: Packets) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    ndis.NdisCoSendPackets(vc, pk.make(b"a"), 1)
    ndis.NdisCmDispatchIncomingCloseCall(S.SUCCESS, vc)
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisCmDeactivateVc(vc)  # the scripted miniport says SUCCESS while holding one
    assert info.value.rule == "R32"


def test_rule_32_no_receive_indication_after_deactivation(rig: CoRig5, pk: Packets) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    rig.close(vc)
    with pytest.raises(MiniportContractError):  # deleted: a dead handle (R33)
        ndis.NdisMCoIndicateReceivePacket(vc, pk.make(b"a"), 1)
    fresh = rig.create()
    [packet] = pk.make(b"b")
    with pytest.raises(MiniportContractError) as info:
        ndis.NdisMCoIndicateReceivePacket(fresh, [packet], 1)
    assert info.value.rule == "R32"


# --- rule 17 and the reuse guidance of ProtocolCoSendComplete -------------------------------


def test_rule_17_reading_the_oob_status_while_in_flight_is_flagged(
    rig: CoRig5, pk: Packets
) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"a")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    NDIS_GET_PACKET_STATUS(packet)
    assert rules(rig) == ["R17"]
    rig.miniport.complete(S.FAILURE)
    assert NDIS_GET_PACKET_STATUS(packet) == S.FAILURE  # its own again: fine
    assert rules(rig) == ["R17"]


def test_reuse_guidance_unchain_then_reinitialize_keeps_everything(
    rig: CoRig5, pk: Packets
) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"payload")
    for _ in range(3):
        rig.ndis.NdisCoSendPackets(vc, [packet], 1)
        rig.miniport.complete()
        buffer = NdisUnchainBufferAtFront(packet)  # save the buffer first
        assert buffer is not None
        NdisReinitializePacket(packet)
        NdisZeroMemory(NDIS_OOB_DATA_FROM_PACKET(packet))  # the OOB block, not the packet
        assert packet.oob.Status == 0
        NdisChainBufferAtBack(packet, buffer)
    assert packet_bytes(packet) == b"payload" and len(completions(rig)) == 3
    pk.free([packet])
    pk.balance()
    rig.ndis.NdisFreeBufferPool(pk.buffers)


def test_reuse_guidance_reinitialize_before_unchaining_loses_the_buffers(
    rig: CoRig5, pk: Packets
) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"payload")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    rig.miniport.complete()
    NdisReinitializePacket(packet)  # the chain head is gone: the buffer is lost
    assert NdisUnchainBufferAtFront(packet) is None
    NdisFreePacket(packet)
    assert pk.pool.outstanding == 0 and pk.buffers.outstanding == 1
    with pytest.raises(NdisUsageError) as info:
        rig.ndis.NdisFreeBufferPool(pk.buffers)
    assert info.value.rule == "PY-POOL-LEAK"


def test_reuse_guidance_zeroing_the_packet_destroys_it(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"payload")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    rig.miniport.complete()
    buffer = NdisUnchainBufferAtFront(packet)
    NdisZeroMemory(packet)  # not NDIS_OOB_DATA_FROM_PACKET(packet)
    with pytest.raises(NdisUsageError) as info:
        rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    assert info.value.rule == "PY-ZEROED-PACKET"
    assert rig.miniport.arrays[-1] != [packet] or len(rig.miniport.arrays) == 1
    assert buffer is not None
    NdisFreeBuffer(buffer)


# --- argument and handle checks -------------------------------------------------------------


def test_bad_arrays_move_nothing(rig: CoRig5, pk: Packets) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    good, busy = pk.make(b"a", b"b")
    ndis.NdisCoSendPackets(vc, [busy], 1)
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCoSendPackets(vc, [good, busy], 2)
    assert info.value.rule == "R17"  # use after send
    assert good.ownership is Ownership.ALLOCATED
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisCoSendPackets(vc, [good], 2)
    assert info.value.rule == "PY-BAD-ARGUMENT"
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisCoSendPackets(vc, [good, "x"], 2)  # type: ignore[list-item]
    assert info.value.rule == "PY-BAD-HANDLE" and good.ownership is Ownership.ALLOCATED
    with pytest.raises(ProtocolContractError) as info:
        ndis.NdisCoSendPackets("vc", [good], 1)  # type: ignore[arg-type]
    assert info.value.rule == "PY-BAD-HANDLE"
    pk.free([good])
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisCoSendPackets(vc, [good], 1)
    assert info.value.rule == "PY-USE-AFTER-FREE"


def test_ndis6_client_cannot_bind_an_ndis5_condis_miniport(rig: CoRig5) -> None:
    """An NDIS 6 client would need the 5.x <-> 6 translation layer (not modelled) to reach a 5.x
    CoNDIS miniport: the open is refused (R60). That NdisCoSendPackets is refused to NDIS 6
    drivers (R66) is covered by the version-gate sweep in tests/test_send6.py."""
    ndis = rig.ndis

    class Co6:
        NDIS_VERSION = (6, 0)

        def ProtocolCoSendNetBufferListsComplete(self, *args: Any) -> None: ...

    _, block = ndis.NdisRegisterProtocolDriver(Co6(), 6, 0, "co6")
    assert block is not None
    with pytest.raises(NdisUsageError) as info:
        ndis.NdisOpenAdapterEx(block, "ctx6", NDIS_OPEN_PARAMETERS("atm0", [NdisMediumAtm]))
    assert info.value.rule == "R60"


# --- receive ----------------------------------------------------------------------------------


def _indicate(rig: CoRig5, vc: VirtualConnection, packets: list[NDIS_PACKET]) -> None:
    with rig.ndis.irql.at(DISPATCH_LEVEL):
        rig.ndis.NdisMCoIndicateReceivePacket(vc, packets, len(packets))


def test_receive_not_kept_is_the_miniports_again_on_return(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    packets = pk.make(b"r1", b"r2")
    for p in packets:
        NDIS_SET_PACKET_STATUS(p, S.SUCCESS)
    _indicate(rig, vc, packets)
    got = rig.client.calls("ProtocolCoReceivePacket")
    assert [(a[0], a[1], a[2]) for a in got] == [
        ("client-binding", "client-vc", packets[0]),
        ("client-binding", "client-vc", packets[1]),
    ]
    assert all(p.ownership is Ownership.ALLOCATED and p.oob.Status == S.SUCCESS for p in packets)
    assert rig.miniport.returned == []
    assert vc.counters.indicated == 2 and vc.counters.bytes_received == 4
    rig.ndis.assert_nothing_lost()


def test_receive_kept_comes_back_through_ndis_return_packets(rig: CoRig5, pk: Packets) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    [packet] = pk.make(b"keep me")
    NDIS_SET_PACKET_STATUS(packet, S.SUCCESS)
    rig.client.answers["ProtocolCoReceivePacket"] = 2
    _indicate(rig, vc, [packet])
    assert packet.ownership is Ownership.INDICATED and packet.oob.Status == S.PENDING
    assert ndis.co_held(vc) == 1
    with pytest.raises(NdisUsageError) as info:
        ndis.assert_nothing_lost()
    assert info.value.rule == "PY-LOST" and "never returned" in info.value.message
    ndis.NdisReturnPackets([packet], 1)
    assert rig.miniport.returned == []  # one reference left
    ndis.NdisReturnPackets([packet], 1)
    assert rig.miniport.returned == [packet] and packet.ownership is Ownership.ALLOCATED
    assert ndis.co_held() == 0 and vc.counters.returned == 1
    ndis.assert_nothing_lost()


def test_vc_receive_pending_status_and_returned_counter_move_at_the_last_return(
    rig: CoRig5, pk: Packets
) -> None:
    """MiniportReturnPacket page, on a VC: only the kept packet has Status PENDING and gets a
    MiniportReturnPacket; the VC's ``returned`` counts it as soon as the last holder returns it
    (NdisReturnPackets is the 5.x receive path's, shared), with no query needed."""
    ndis = rig.ndis
    vc = rig.connect()
    kept, dropped = pk.make(b"keep", b"drop")
    for p in (kept, dropped):
        NDIS_SET_PACKET_STATUS(p, S.SUCCESS)
    rig.client.answers["ProtocolCoReceivePacket"] = 1
    _indicate(rig, vc, [kept])
    rig.client.answers["ProtocolCoReceivePacket"] = 0
    _indicate(rig, vc, [dropped])
    assert (kept.oob.Status, dropped.oob.Status) == (S.PENDING, S.SUCCESS)
    assert vc.counters.indicated == 2 and vc.counters.returned == 1 and vc.counters.held == 1
    (ind,) = ndis.receive5_outstanding()
    assert ind.vc is vc and ind.packet is kept
    ndis.NdisReturnPackets([kept], 1)
    assert vc.counters.returned == 2 and vc.counters.held == 0  # counted at the return itself
    assert rig.miniport.returned == [kept]
    assert ndis.co_accounting()[repr(vc)]["returned"] == 2
    ndis.assert_nothing_lost()


def test_receive_with_resources_must_be_copied(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    [packet] = pk.make(b"copy me")
    NDIS_SET_PACKET_STATUS(packet, S.RESOURCES)
    _indicate(rig, vc, [packet])
    assert packet.ownership is Ownership.ALLOCATED and packet.oob.Status == S.RESOURCES
    rig.client.answers["ProtocolCoReceivePacket"] = 1
    with pytest.raises(ProtocolContractError) as info:
        _indicate(rig, vc, [packet])
    assert info.value.rule == "PY-RECEIVE-RESOURCES"


def test_receive_count_must_be_a_number(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    rig.client.answers["ProtocolCoReceivePacket"] = "lots"
    with pytest.raises(ProtocolContractError) as info:
        _indicate(rig, vc, pk.make(b"a"))
    assert info.value.rule == "PY-RECEIVE-COUNT"


def test_receive_from_a_miniport_that_cannot_take_packets_back() -> None:
    class NoReturn(ScriptedCoMiniport5):
        MiniportReturnPacket = None  # type: ignore[assignment]

    rig = CoRig5(miniport=NoReturn())
    pk = Packets(rig)
    vc = rig.connect()
    [packet] = pk.make(b"a")
    NDIS_SET_PACKET_STATUS(packet, S.SUCCESS)
    rig.client.answers["ProtocolCoReceivePacket"] = 0
    _indicate(rig, vc, [packet])
    assert packet.oob.Status == S.RESOURCES  # NDIS made the receivers copy
    assert packet.ownership is Ownership.ALLOCATED


def test_receive_bad_packets_are_refused(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    with pytest.raises(MiniportContractError) as info:
        _indicate(rig, vc, ["p"])  # type: ignore[list-item]
    assert info.value.rule == "PY-BAD-HANDLE"
    [packet] = pk.make(b"a")
    rig.ndis.NdisCoSendPackets(vc, [packet], 1)
    with pytest.raises(MiniportContractError) as info:
        _indicate(rig, vc, [packet])  # a packet in flight is not the miniport's to lend
    assert info.value.rule == "PY-INDICATE-NOT-OWNED"


def test_status_and_receive_complete_indications(rig: CoRig5) -> None:
    ndis = rig.ndis
    vc = rig.connect()
    ndis.NdisMCoIndicateStatus(rig.adapter, vc, S.MEDIA_CONNECT)
    ndis.NdisMCoIndicateStatus(rig.adapter, None, S.MEDIA_DISCONNECT)
    assert rig.client.calls("ProtocolCoStatus") == [
        ("client-binding", "client-vc", S.MEDIA_CONNECT, None, 0),
        ("client-binding", None, S.MEDIA_DISCONNECT, None, 0),
    ]
    ndis.NdisMCoReceiveComplete(rig.adapter)
    assert rig.client.calls("ProtocolReceiveComplete") == [("client-binding",)]


def test_trace_records_every_hand_off(rig: CoRig5, pk: Packets) -> None:
    vc = rig.connect()
    rig.ndis.NdisCoSendPackets(vc, pk.make(b"a", b"b"), 2)
    rig.miniport.complete()
    kinds = [line.split()[1] for line in rig.ndis.scheduler.events]
    assert kinds[-3:] == ["co-send", "co-complete", "co-complete"]
