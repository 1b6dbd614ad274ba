"""Tests of the NDIS 5.x receive path (pyndis.library.receive5): NdisMIndicateReceivePacket,
ProtocolReceivePacket / ProtocolReceive, NdisReturnPackets, MiniportReturnPacket.

Every scenario ends with ``Rig5.finish()``: nothing lost, nothing still lent out, every pool
balanced (the miniport's receive pools are freed in its MiniportHalt).
"""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    DIRQL,
    DISPATCH_LEVEL,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisRequestSetInformation,
)
from pyndis.errors import IrqlError, MiniportContractError, NdisError, ProtocolContractError
from pyndis.mdl import NdisAllocateBuffer
from pyndis.ownership import Ownership
from pyndis.packet import (
    NDIS_GET_PACKET_STATUS,
    NDIS_PACKET,
    NDIS_SET_PACKET_STATUS,
    NdisChainBufferAtBack,
)
from pyndis.pools import NdisAllocatePacket
from pyndis.status import NDIS_STATUS
from pyndis.testing import (
    DoubleReturnProtocol5,
    KeepingResourcesProtocol5,
    LookaheadProtocol5,
    Miniport5,
    Protocol5,
    Rig5,
    ethernet_frame,
)
from pyndis.testing.buggy5 import ADDRESS, BROADCAST, PEER

S = NDIS_STATUS
PROMISCUOUS = NDIS_PACKET_TYPE_PROMISCUOUS


def rx_rig(*protocols: Any, miniport: Miniport5 | None = None, **kw: Any) -> Rig5:
    return Rig5(miniport or Miniport5(), list(protocols) or [Protocol5()], **kw)


def test_indication_goes_to_the_bindings_whose_filter_accepts_the_destination() -> None:
    directed = Protocol5()
    promiscuous = Protocol5()
    rig = rx_rig(directed, promiscuous)
    rig.ndis.NdisRequest(
        rig.bindings[1], NdisRequestSetInformation, OID_GEN_CURRENT_PACKET_FILTER, PROMISCUOUS
    )
    frames = [ethernet_frame(ADDRESS, tag=1), ethernet_frame(PEER, tag=2)]
    frames.append(ethernet_frame(BROADCAST, tag=3))
    rig.miniport.indicate(frames)
    assert [bytes(d) for d, _f, _s in directed.received] == [bytes(frames[0]), bytes(frames[2])]
    assert [bytes(d) for d, _f, _s in promiscuous.received] == [bytes(f) for f in frames]
    rig.finish()


def test_a_binding_with_no_packet_filter_receives_nothing() -> None:
    rig = rx_rig(packet_filter=0)
    (packet,) = rig.miniport.indicate([ethernet_frame(BROADCAST)])
    assert rig.protocol.received == []
    assert rig.miniport.reclaimed == [packet]  # back to the miniport when the call returned
    assert rig.miniport.returned == []
    rig.finish()


def test_receive_count_zero_gives_the_packet_back_when_the_indication_returns() -> None:
    rig = rx_rig()
    seen: list[Ownership] = []
    rig.protocol.on_receive = lambda p: seen.append(p.ownership)
    (packet,) = rig.miniport.indicate([ethernet_frame()])
    assert seen == [Ownership.INDICATED]
    assert rig.miniport.returned == []  # no MiniportReturnPacket for a packet nobody kept
    assert rig.miniport.reclaimed == [packet]
    assert packet.ownership is Ownership.FREE  # the miniport freed it after the indication
    rig.finish()


def test_a_kept_packet_returns_to_the_miniport_after_the_last_ndis_return_packets() -> None:
    keeper, other = Protocol5(keep=1), Protocol5(keep=2)
    rig = rx_rig(keeper, other)
    (packet,) = rig.miniport.indicate([ethernet_frame(BROADCAST)])
    assert packet.ownership is Ownership.INDICATED
    assert rig.miniport.returned == []
    keeper.return_kept()
    assert rig.miniport.returned == []
    other.ndis.NdisReturnPackets([packet], 1)
    assert rig.miniport.returned == []
    other.kept.pop()
    other.return_kept()  # its second reference
    assert rig.miniport.returned == [packet]
    rig.finish()


def test_a_packet_returned_early_from_inside_the_receive_handler_is_counted() -> None:
    rig = rx_rig(Protocol5(keep=1))
    protocol = rig.protocol

    def early(packet: NDIS_PACKET) -> None:
        rig.ndis.NdisReturnPackets([packet], 1)  # before announcing ReceiveCount 1

    protocol.on_receive = early
    (packet,) = rig.miniport.indicate([ethernet_frame()])
    # nobody holds it when the indication returns: back at once, no MiniportReturnPacket
    assert rig.miniport.reclaimed == [packet] and rig.miniport.returned == []
    protocol.kept.clear()
    rig.finish()


def test_resources_packets_are_back_with_the_miniport_when_the_indication_returns() -> None:
    rig = rx_rig(Protocol5(keep=1))
    (packet,) = rig.miniport.indicate([ethernet_frame()], status=S.RESOURCES)
    assert rig.protocol.received[0][2] == S.RESOURCES
    assert rig.protocol.kept == []  # a good protocol copies and keeps nothing
    assert rig.miniport.returned == []  # no MiniportReturnPacket for a RESOURCES packet
    assert packet.ownership is Ownership.FREE  # the miniport took it back at once
    rig.finish()


def test_keeping_a_resources_packet_is_refused() -> None:
    rig = rx_rig(KeepingResourcesProtocol5())
    with pytest.raises(ProtocolContractError) as info:
        rig.miniport.indicate([ethernet_frame()], status=S.RESOURCES)
    assert info.value.rule == "PY-RECEIVE-RESOURCES"


def test_a_miniport_without_miniport_return_packet_has_its_packets_copied() -> None:
    class NoReturn(Miniport5):
        MiniportReturnPacket = None  # type: ignore[assignment]

    rig = rx_rig(Protocol5(keep=1), miniport=NoReturn())
    packets = rig.miniport.indicate([ethernet_frame()])
    assert rig.protocol.received[0][2] == S.RESOURCES  # NDIS forces copy semantics
    assert rig.protocol.kept == []
    assert rig.miniport.reclaimed == packets  # Status RESOURCES: back at once
    rig.finish()


def test_receive_handlers_run_at_dispatch_level() -> None:
    rig = rx_rig()
    levels: list[int] = []
    rig.protocol.on_receive = lambda p: levels.append(rig.ndis.irql.level)
    rig.miniport.indicate([ethernet_frame()])
    assert levels == [DISPATCH_LEVEL]
    assert rig.ndis.irql.level == 0
    with rig.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        rig.miniport.indicate([ethernet_frame()])
    assert info.value.rule == "R62"
    rig.finish()


# --- the OOB Status when NdisMIndicateReceivePacket returns (MiniportReturnPacket page) ----------


class Choosy(Protocol5):
    """Keeps (ReceiveCount 1) only the frames whose tag is in ``wanted``."""

    def __init__(self, wanted: set[int]) -> None:
        super().__init__()
        self.wanted = wanted

    def ProtocolReceivePacket(self, ctx: object, Packet: NDIS_PACKET) -> int:
        super().ProtocolReceivePacket(ctx, Packet)
        data = bytes(Packet.Private.Head.data[14:18]) if Packet.Private.Head else b""
        if int.from_bytes(data, "big") in self.wanted:
            self.kept.append(Packet)
            return 1
        return 0


class StatusRecorder(Miniport5):
    """Records each packet's OOB Status and ownership right after NdisMIndicateReceivePacket
    returns (before it reclaims anything)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.after: list[tuple[int, Ownership]] = []

    def indicate(self, frames: Any, status: int = S.SUCCESS) -> list[NDIS_PACKET]:
        assert self.rx_packets is not None and self.rx_buffers is not None and self.handle
        packets = []
        for frame in frames:
            _, packet = NdisAllocatePacket(self.rx_packets)
            _, buffer = NdisAllocateBuffer(self.rx_buffers, frame, len(frame))
            assert packet is not None and buffer is not None
            NdisChainBufferAtBack(packet, buffer)
            NDIS_SET_PACKET_STATUS(packet, status)
            packets.append(packet)
        self.ndis.NdisMIndicateReceivePacket(self.handle, packets, len(packets))
        self.after = [(NDIS_GET_PACKET_STATUS(p), p.ownership) for p in packets]
        for packet in packets:
            if NDIS_GET_PACKET_STATUS(packet) != S.PENDING:
                self.reclaimed.append(packet)
                self.free_rx(packet)
        return packets


def test_only_kept_packets_get_pending_status_and_a_miniport_return_packet_call() -> None:
    """MiniportReturnPacket page: when NdisMIndicateReceivePacket returns, a packet a protocol
    kept has OOB Status PENDING and comes back later through MiniportReturnPacket; the others
    have a non-PENDING Status, are the miniport's again, and get no MiniportReturnPacket."""
    rig = rx_rig(Choosy({1}), miniport=StatusRecorder())
    miniport = rig.miniport
    assert isinstance(miniport, StatusRecorder)
    packets = miniport.indicate([ethernet_frame(ADDRESS, tag=i) for i in range(3)])
    assert miniport.after == [
        (S.SUCCESS, Ownership.ALLOCATED),
        (S.PENDING, Ownership.INDICATED),
        (S.SUCCESS, Ownership.ALLOCATED),
    ]
    assert miniport.reclaimed == [packets[0], packets[2]]
    assert miniport.returned == []
    rig.protocol.return_kept()
    assert miniport.returned == [packets[1]]  # exactly once, after the last return
    rig.finish()


def test_a_packet_kept_by_two_receivers_keeps_pending_status_until_the_last_return() -> None:
    """MiniportReturnPacket page: a packet several protocols kept stays PENDING (lent) until
    every holder called NdisReturnPackets; then one MiniportReturnPacket call."""
    keeper, other = Protocol5(keep=1), Protocol5(keep=1)
    rig = rx_rig(keeper, other, miniport=StatusRecorder())
    miniport = rig.miniport
    assert isinstance(miniport, StatusRecorder)
    (packet,) = miniport.indicate([ethernet_frame(BROADCAST)])
    assert miniport.after == [(S.PENDING, Ownership.INDICATED)]
    keeper.return_kept()
    assert miniport.returned == [] and packet.ownership is Ownership.INDICATED
    other.return_kept()
    assert miniport.returned == [packet] and miniport.reclaimed == []
    rig.finish()


def test_resources_packets_never_get_pending_status() -> None:
    """MiniportReturnPacket page: a packet indicated with NDIS_STATUS_RESOURCES is always back
    when the call returns, its Status still RESOURCES, with no MiniportReturnPacket."""
    rig = rx_rig(Protocol5(keep=1), LookaheadProtocol5(), miniport=StatusRecorder())
    miniport = rig.miniport
    assert isinstance(miniport, StatusRecorder)
    packets = miniport.indicate([ethernet_frame(BROADCAST, tag=i) for i in range(2)], S.RESOURCES)
    assert miniport.after == [(S.RESOURCES, Ownership.ALLOCATED)] * 2
    assert miniport.reclaimed == packets and miniport.returned == []
    rig.finish()


@pytest.mark.parametrize("handler", ["ProtocolReceivePacket", "ProtocolReceive", "none"])
def test_a_packet_nobody_kept_never_keeps_a_pending_status(handler: str) -> None:
    """MiniportReturnPacket page: a packet nobody kept comes back with a non-PENDING Status,
    even one the miniport (wrongly) indicated with Status PENDING: NDIS sets SUCCESS, so the
    miniport reclaims it and waits for no MiniportReturnPacket that would never come."""
    protocols: list[Any] = {
        "ProtocolReceivePacket": [Protocol5()],
        "ProtocolReceive": [LookaheadProtocol5()],
        "none": [],
    }[handler]
    rig = rx_rig(*protocols, miniport=StatusRecorder())
    miniport = rig.miniport
    assert isinstance(miniport, StatusRecorder)
    for status in (S.SUCCESS, S.PENDING):
        miniport.indicate([ethernet_frame(BROADCAST)], status)
        assert miniport.after == [(S.SUCCESS, Ownership.ALLOCATED)]
    assert len(miniport.reclaimed) == 2 and miniport.returned == []
    rig.finish()


def test_the_pending_status_is_set_before_the_indicating_miniport_regains_control() -> None:
    """MiniportReturnPacket page: NDIS sets the Status before NdisMIndicateReceivePacket
    returns; during the indication the receivers see the miniport's own Status."""
    rig = rx_rig(Protocol5(keep=1))
    seen: list[int] = []
    rig.protocol.on_receive = lambda p: seen.append(p.oob.Status)
    (packet,) = rig.miniport.indicate([ethernet_frame()])
    assert seen == [S.SUCCESS]
    assert NDIS_GET_PACKET_STATUS(packet) == S.PENDING
    assert rig.miniport.reclaimed == []
    rig.protocol.return_kept()
    assert rig.miniport.returned == [packet]
    rig.finish()


# --- ProtocolReceive (lookahead) ------------------------------------------------------------------


def test_protocol_receive_gets_header_and_lookahead_then_one_receive_complete() -> None:
    rig = rx_rig(LookaheadProtocol5())
    frames = [ethernet_frame(BROADCAST, size=60, tag=i) for i in range(3)]
    rig.miniport.indicate(frames)
    assert rig.protocol.received == [(bytes(f[:14]), bytes(f[14:]), 46) for f in frames]
    assert rig.protocol.receive_completes == 1  # once after the batch
    assert len(rig.miniport.reclaimed) == 3 and rig.miniport.returned == []  # copy only
    rig.finish()


def test_a_fragmented_frame_is_put_together_for_protocol_receive() -> None:
    rig = rx_rig(LookaheadProtocol5())
    miniport = rig.miniport
    assert miniport.rx_packets is not None and miniport.rx_buffers is not None
    frame = ethernet_frame(ADDRESS, size=40, tag=9)
    _, packet = NdisAllocatePacket(miniport.rx_packets)
    assert packet is not None
    for piece in (frame[:10], frame[10:25], frame[25:]):
        _, buffer = NdisAllocateBuffer(miniport.rx_buffers, piece, len(piece))
        assert buffer is not None
        NdisChainBufferAtBack(packet, buffer)
    assert miniport.handle is not None
    rig.ndis.NdisMIndicateReceivePacket(miniport.handle, [packet], 1)
    assert rig.protocol.received == [(bytes(frame[:14]), bytes(frame[14:]), 26)]
    assert NDIS_GET_PACKET_STATUS(packet) == S.SUCCESS  # ours again: free it
    miniport.free_rx(packet)
    rig.finish()


# --- misuse ---------------------------------------------------------------------------------------


class KeepingMiniport(Miniport5):
    """Takes returned packets back without freeing them (they stay ALLOCATED to it)."""

    def MiniportReturnPacket(self, ctx: object, Packet: NDIS_PACKET) -> None:
        self.returned.append(Packet)


@pytest.mark.parametrize(
    ("miniport", "rule"),
    [
        pytest.param(KeepingMiniport, "PY-DOUBLE-RETURN", id="miniport-kept-it"),
        pytest.param(Miniport5, "PY-DOUBLE-RETURN", id="miniport-freed-it"),
    ],
)
def test_returning_a_packet_twice_is_refused(miniport: type[Miniport5], rule: str) -> None:
    rig = rx_rig(DoubleReturnProtocol5(), miniport=miniport())
    rig.miniport.indicate([ethernet_frame()])
    with pytest.raises(ProtocolContractError) as info:
        rig.protocol.return_kept()
    assert info.value.rule == rule
    assert len(rig.miniport.returned) == 1


def test_returning_a_packet_never_indicated_is_refused() -> None:
    rig = rx_rig()
    idle = rig.packet()
    with pytest.raises(ProtocolContractError) as info:
        rig.ndis.NdisReturnPackets([idle], 1)
    assert info.value.rule == "PY-DOUBLE-RETURN"
    rig.ndis.NdisSend(rig.binding, idle)
    with pytest.raises(ProtocolContractError) as info:
        rig.ndis.NdisReturnPackets([idle], 1)  # a packet in flight on the send path
    assert info.value.rule == "PY-RETURN-NOT-INDICATED"
    rig.miniport.complete_all()
    rig.finish()


def test_returning_more_references_than_announced_is_refused() -> None:
    rig = rx_rig()

    def twice(packet: NDIS_PACKET) -> None:
        rig.ndis.NdisReturnPackets([packet], 1)  # ReceiveCount will be 0

    rig.protocol.on_receive = twice
    with pytest.raises(ProtocolContractError) as info:
        rig.miniport.indicate([ethernet_frame()])
    assert info.value.rule == "PY-DOUBLE-RETURN"


def test_a_bad_receive_count_is_refused() -> None:
    class Negative(Protocol5):
        def ProtocolReceivePacket(self, ctx: object, Packet: NDIS_PACKET) -> int:
            return -1

    rig = rx_rig(Negative())
    with pytest.raises(ProtocolContractError) as info:
        rig.miniport.indicate([ethernet_frame()])
    assert info.value.rule == "PY-RECEIVE-COUNT"


def test_indicating_a_packet_the_miniport_does_not_hold_idle_is_refused() -> None:
    rig = rx_rig(Protocol5(keep=1))
    (packet,) = rig.miniport.indicate([ethernet_frame()])
    assert rig.miniport.handle is not None
    with pytest.raises(MiniportContractError) as info:  # still lent out
        rig.ndis.NdisMIndicateReceivePacket(rig.miniport.handle, [packet], 1)
    assert info.value.rule == "PY-INDICATE-NOT-OWNED"
    rig.protocol.return_kept()
    assert rig.miniport.rx_packets is not None
    _, fresh = NdisAllocatePacket(rig.miniport.rx_packets)
    assert fresh is not None
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisMIndicateReceivePacket(rig.miniport.handle, [fresh, fresh], 2)
    assert info.value.rule == "PY-INDICATE-NOT-OWNED"
    rig.miniport.free_rx(fresh)
    with pytest.raises(NdisError) as error:
        rig.ndis.NdisMIndicateReceivePacket(rig.miniport.handle, [fresh], 1)  # freed
    assert error.value.rule == "PY-INDICATE-NOT-OWNED"
    rig.finish()


# --- sending from a receive handler ---------------------------------------------------------------


@pytest.mark.parametrize("deserialized", [False, True])
def test_a_reply_sent_from_the_receive_handler_does_not_reenter_a_serialized_miniport(
    deserialized: bool,
) -> None:
    rig = rx_rig(miniport=Miniport5(deserialized=deserialized))
    reply = rig.packet()
    statuses: list[int] = []
    inside: list[bool] = []

    def answer(packet: NDIS_PACKET) -> None:
        statuses.append(rig.ndis.NdisSend(rig.binding, reply))
        inside.append(bool(rig.miniport.submitted))

    rig.protocol.on_receive = answer
    rig.miniport.indicate([ethernet_frame(ADDRESS)])
    assert statuses == [S.PENDING]
    # serialized: queued while the miniport indicates, sent from a DPC after; deserialized: at once
    assert inside == [deserialized]
    rig.ndis.run()
    assert rig.miniport.submitted == [reply]
    rig.miniport.complete_all()
    rig.finish()


def test_filter_of_a_closing_binding_sees_nothing() -> None:
    rig = rx_rig(Protocol5(), Protocol5())
    rig.ndis.NdisSend(rig.bindings[0], rig.packet())
    assert rig.ndis.NdisCloseAdapter(rig.bindings[0]) == S.PENDING
    rig.miniport.indicate([ethernet_frame(BROADCAST)])
    assert [len(p.received) for p in rig.protocols] == [0, 1]
    rig.miniport.complete_all()
    rig.finish()
