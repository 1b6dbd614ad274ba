"""Tests for pyndis.drivers.passthru5: the pass-through intermediate driver between ndisprot
above and null / loopback / simulated NICs below."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_FLAGS_DONT_LOOPBACK,
    NDIS_PACKET_TYPE_DIRECTED,
    OID_802_3_CURRENT_ADDRESS,
    OID_GEN_CURRENT_PACKET_FILTER,
    Ieee8021QInfo,
    NdisMedium802_3,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
    OriginalPacketInfo,
)
from pyndis.drivers.loopback5 import Loopback5
from pyndis.drivers.ndisprot5 import DEFAULT_FILTER, NdisProt5, NdisProtOpen, copy_packet
from pyndis.drivers.null5 import NullAdapter, NullMiniport, NullMiniportPackets
from pyndis.drivers.passthru5 import Passthru5, PtAdapter
from pyndis.drivers.simnic5 import SimNic5Single
from pyndis.errors import Culprit
from pyndis.library.adapter import MiniportBlock
from pyndis.library.kernel import Ndis
from pyndis.packet import (
    NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_GET_PACKET_TIME_TO_SEND,
    NDIS_PACKET,
    NDIS_PER_PACKET_INFO_FROM_PACKET,
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_SET_PACKET_TIME_TO_SEND,
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET,
    NdisGetPacketFlags,
    NdisSetPacketFlags,
)
from pyndis.status import NDIS_STATUS

ME = b"\x02\x00\x00\x00\x00\x01"
PEER = b"\x02\x00\x00\x00\x00\x02"
BCAST = b"\xff" * 6


def frame(dst: bytes = PEER, fill: int = 0, n: int = 60) -> bytes:
    return dst + ME + b"\x88\xb5" + bytes((fill + i) & 0xFF for i in range(n - 14))


class Seen:
    """What a recording lower miniport saw of one packet."""

    def __init__(self, packet: NDIS_PACKET) -> None:
        self.packet = packet
        self.original = NDIS_PER_PACKET_INFO_FROM_PACKET(packet, OriginalPacketInfo)
        self.flags = NdisGetPacketFlags(packet)
        self.time_to_send = NDIS_GET_PACKET_TIME_TO_SEND(packet)
        self.msi = NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet)
        self.vlan = NDIS_PER_PACKET_INFO_FROM_PACKET(packet, Ieee8021QInfo)
        self.head = packet.Private.Head
        original = self.original
        self.original_head = original.Private.Head if isinstance(original, NDIS_PACKET) else None
        self.data = copy_packet(packet)


class RecordingNull(NullMiniport):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []

    def MiniportSend(self, ctx: NullAdapter, Packet: NDIS_PACKET, Flags: int) -> int:
        self.seen.append(Seen(Packet))
        return super().MiniportSend(ctx, Packet, Flags)


class RecordingNullPackets(NullMiniportPackets):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[Seen] = []

    def MiniportSendPackets(self, ctx: NullAdapter, PacketArray: Any, NumberOfPackets: int) -> None:
        self.seen.extend(Seen(p) for p in PacketArray[:NumberOfPackets])
        super().MiniportSendPackets(ctx, PacketArray, NumberOfPackets)


def stack(
    lower: Any,
    *,
    lower_send: str = "packets",
    pt_pool: int = 64,
    prot_first: bool = False,
    **keywords: Any,
) -> tuple[Ndis, MiniportBlock, Passthru5, NdisProtOpen]:
    ndis = Ndis(verifier=True, strict=True)
    status, handle = ndis.NdisMRegisterMiniport(lower, 5, 1, "lower")
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    status, eth0 = ndis.add_adapter(handle, "eth0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and eth0 is not None
    prot = NdisProt5(track=True, bind_to={"eth0-pt"})
    passthru = Passthru5(lower_send=lower_send, pool=pt_pool)
    if prot_first:
        prot.register(ndis)
    assert passthru.register(ndis) == NDIS_STATUS.SUCCESS
    if not prot_first:
        prot.register(ndis)
    ndis.run()  # the PnP offers (ProtocolBindAdapter) are PASSIVE work items
    return ndis, eth0, passthru, prot.open("eth0-pt")


def finish(ndis: Ndis, *adapters: MiniportBlock) -> None:
    ndis.run()
    for adapter in adapters:
        ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()
    assert [p for p in ndis.pools if p.tag != "ndis-loopback"] == []
    assert all(p.outstanding == 0 for p in ndis.pools)


# --- the send path --------------------------------------------------------------------------------


@pytest.mark.parametrize("lower_send", ["packets", "send"])
@pytest.mark.parametrize("deserialized", [False, True])
@pytest.mark.parametrize("lower_cls", [RecordingNull, RecordingNullPackets])
def test_lower_miniport_never_sees_the_protocols_packet_which_comes_back_once(
    lower_cls: type[Any], deserialized: bool, lower_send: str
) -> None:
    lower = lower_cls()
    ndis, eth0, passthru, o = stack(
        lower,
        lower_send=lower_send,
        deserialized=deserialized,
        send_status=NDIS_STATUS.NO_CABLE,  # a status only the lower miniport produces
    )
    mine = set(o.free_packets)  # every packet the protocol will ever send (reuse mode)
    frames = [frame(fill=i) for i in range(6)]
    o.write_many(frames[:4])
    o.write(frames[4])
    o.write(frames[5])
    ndis.run()
    assert len(lower.seen) == 6
    assert not {s.packet for s in lower.seen} & mine  # always repackaged
    assert all(s.original in mine for s in lower.seen)  # ... remembering the original
    assert [s.data for s in lower.seen] == frames  # same bytes, in order (rule 18)
    # each protocol packet came back exactly once, with the lower miniport's status
    assert sorted(o.completion_log) == [1, 2, 3, 4, 5, 6]
    assert o.by_status == {NDIS_STATUS.NO_CABLE: 6}
    assert o.sync_completions == 0  # the virtual adapter is deserialized
    pt = passthru.adapter("eth0")
    assert pt.sent_down == pt.completed_up == 6
    finish(ndis, eth0)


def test_flags_oob_and_per_packet_info_travel_with_the_repackaged_packet() -> None:
    lower = RecordingNull()
    ndis, eth0, _, o = stack(lower)
    assert o.binding is not None
    packet = o.prepare(frame())
    assert packet is not None
    NdisSetPacketFlags(packet, NDIS_FLAGS_DONT_LOOPBACK | 0x3)
    NDIS_SET_PACKET_TIME_TO_SEND(packet, 12345)
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(packet, b"priority=5", 10)
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, Ieee8021QInfo, 0x0123)
    o.sends += 1
    assert ndis.NdisSend(o.binding, packet) == NDIS_STATUS.PENDING
    (seen,) = lower.seen
    assert seen.packet is not packet and seen.original is packet
    assert seen.flags == NDIS_FLAGS_DONT_LOOPBACK | 0x3
    assert seen.time_to_send == 12345
    assert seen.msi == (b"priority=5", 10)
    assert seen.vlan == 0x0123
    assert seen.head is not None
    assert seen.head is seen.original_head  # the same buffers, not copies
    assert o.completed == 1
    finish(ndis, eth0)


def test_passthru_pool_exhaustion_completes_the_excess_with_resources() -> None:
    ndis, eth0, _, o = stack(SimNic5Single(), pt_pool=2, rate_bps=1_000_000)
    o.write_many([frame(fill=i) for i in range(5)])
    assert o.by_status == {NDIS_STATUS.RESOURCES: 3}  # at once, from the deserialized edge
    ndis.run()
    assert o.by_status == {NDIS_STATUS.RESOURCES: 3, NDIS_STATUS.SUCCESS: 2}
    finish(ndis, eth0)


# --- requests, status, loopback -------------------------------------------------------------------


def test_requests_pass_through_to_the_lower_binding() -> None:
    ndis, eth0, passthru, o = stack(NullMiniport(), address=PEER)
    pt = passthru.adapter()
    assert pt.lower is not None and o.binding is not None
    query = NdisRequestQueryInformation
    # the upper protocol's filter became the lower binding's
    assert ndis.NdisRequest(pt.lower, query, OID_GEN_CURRENT_PACKET_FILTER)[1] == DEFAULT_FILTER
    assert ndis.NdisRequest(o.binding, query, OID_802_3_CURRENT_ADDRESS)[1] == PEER
    assert o.address == PEER
    finish(ndis, eth0)


def test_status_indications_from_below_reach_the_protocol_above() -> None:
    ndis, eth0, _, o = stack(SimNic5Single(), rate_bps=1_000_000)
    nic = eth0.MiniportAdapterContext
    o.write(frame())
    nic.pull_cable(after_ns=1000)
    ndis.run()
    assert o.statuses == [NDIS_STATUS.MEDIA_DISCONNECT]
    assert o.by_status == {NDIS_STATUS.NO_CABLE: 1}  # the lower status, unchanged
    finish(ndis, eth0)


def test_receives_through_a_loopback_adapter_below_arrive_once() -> None:
    ndis, lo, passthru, o = stack(Loopback5())
    o.write(frame(ME, fill=1))
    o.write(frame(BCAST, fill=2))
    o.write(frame(PEER, fill=3))
    ndis.run()
    assert list(o.received) == [frame(ME, fill=1), frame(BCAST, fill=2)]
    pt = passthru.adapter()
    assert pt.received_up == 2 and pt.recv_map == {}
    finish(ndis, lo)


def test_a_repackaged_receive_nobody_kept_has_no_pending_status_and_frees_the_chain() -> None:
    """MiniportReturnPacket page, at both edges: ndisprot above copies, so the passthru's
    repackaged packet is not PENDING when its indication returns; the passthru frees it and
    answers ReceiveCount 0, so the loopback's packet below is not PENDING either. No
    MiniportReturnPacket at any level, no NdisReturnPackets below."""
    ndis, lo, passthru, o = stack(Loopback5())
    o.write(frame(ME))
    ndis.run()
    pt = passthru.adapter()
    assert list(o.received) == [frame(ME)] and o.pending == 0
    assert pt.received_up == 1 and pt.returned_down == 0 and pt.recv_map == {}
    assert pt.recv_pool is not None and pt.recv_pool.outstanding == 0
    assert not any(" miniport-return5 " in e for e in ndis.scheduler.events)
    finish(ndis, lo)


def test_one_loopback_copy_when_ndis_loops_back_below_and_above() -> None:
    # The simulated NIC says NO_LOOPBACK: NDIS loops back, above (the virtual adapter says
    # the same) for the protocols there, and below for the protocols bound to the NIC directly,
    # but not to the passthru's own lower binding (NDIS_PROT_OPTION_NO_LOOPBACK).
    ndis, eth0, _, o = stack(SimNic5Single())
    direct = NdisProt5(name="direct", bind_to={"eth0"})
    direct.register(ndis)
    ndis.run()
    o.write(frame(BCAST))
    ndis.run()
    assert list(o.received) == [frame(BCAST)]
    assert list(direct.open().received) == [frame(BCAST)]
    finish(ndis, eth0)


class Holder:
    """A protocol above the virtual adapter that keeps what it receives."""

    NDIS_VERSION = (5, 1)

    def __init__(self, ndis: Ndis, name: str) -> None:
        self.ndis = ndis
        self.held: list[NDIS_PACKET] = []
        _, handle = ndis.NdisRegisterProtocol(self, 5, 1, "holder")
        assert handle is not None
        status, _, binding, _ = ndis.NdisOpenAdapter(handle, self, [NdisMedium802_3], name)
        assert status == NDIS_STATUS.SUCCESS and binding is not None
        ndis.NdisRequest(
            binding,
            NdisRequestSetInformation,
            OID_GEN_CURRENT_PACKET_FILTER,
            NDIS_PACKET_TYPE_DIRECTED,
        )

    def ProtocolSendComplete(self, ctx: Any, Packet: NDIS_PACKET, Status: int) -> None:
        raise AssertionError("the holder never sends")

    def ProtocolReceivePacket(self, ctx: Any, Packet: NDIS_PACKET) -> int:
        self.held.append(Packet)
        return 1


def test_a_packet_kept_above_keeps_the_whole_chain_until_it_is_returned() -> None:
    # ndisprot -> passthru -> loopback -> passthru -> holder: the holder keeps the repackaged
    # receive, so passthru keeps the loopback's receive, so the loopback cannot complete the
    # passthru's send, so ndisprot's send stays pending. One NdisReturnPackets unwinds it all.
    ndis, lo, passthru, o = stack(Loopback5())
    holder = Holder(ndis, "eth0-pt")
    o.write(frame(ME))
    ndis.run()
    pt = passthru.adapter()
    assert len(holder.held) == 1 and o.pending == 1 and len(pt.recv_map) == 1
    (mine,) = holder.held
    assert copy_packet(mine) == frame(ME)
    ndis.NdisReturnPackets(holder.held, 1)
    assert o.pending == 0 and o.by_status == {NDIS_STATUS.SUCCESS: 1}
    assert pt.returned_down == 1 and pt.recv_map == {}
    finish(ndis, lo)


def test_lookahead_receive_from_below_is_copied_up() -> None:
    ndis, eth0, passthru, o = stack(NullMiniport())
    pt = passthru.adapter()
    data = frame(ME)
    view = memoryview(data)
    status = passthru.ProtocolReceive(pt, None, view[:14], 14, view[14:], 46, 46)
    assert status == NDIS_STATUS.SUCCESS and list(o.received) == [data]
    assert passthru.ProtocolReceive(pt, None, view[:14], 14, view[14:20], 6, 46) == (
        NDIS_STATUS.NOT_ACCEPTED
    )
    finish(ndis, eth0)


# --- binding and unbinding ------------------------------------------------------------------------


@pytest.mark.parametrize("prot_first", [False, True])
def test_virtual_adapter_is_offered_and_never_bound_by_the_passthru_itself(
    prot_first: bool,
) -> None:
    ndis, eth0, passthru, o = stack(NullMiniport(), prot_first=prot_first)
    assert set(ndis.adapters) == {"eth0", "eth0-pt"}
    assert set(passthru.adapters) == {"eth0"} and passthru.virtual_names == {"eth0-pt"}
    assert ndis.adapters["eth0-pt"].driver.culprit is Culprit.INTERMEDIATE
    assert o.write(frame()) == NDIS_STATUS.PENDING
    finish(ndis, eth0)


def test_removing_the_lower_adapter_removes_the_virtual_one() -> None:
    ndis, eth0, passthru, o = stack(SimNic5Single(), rate_bps=1_000_000)
    for i in range(3):
        o.write(frame(fill=i))
    ndis.remove_adapter(eth0)  # sends drain first, then the whole stack unwinds
    assert o.closed and o.by_status == {NDIS_STATUS.SUCCESS: 3}
    assert set(ndis.adapters) == set() and passthru.adapters == {}
    finish(ndis)


def test_removing_the_virtual_adapter_closes_the_lower_binding() -> None:
    ndis, eth0, passthru, o = stack(NullMiniport())
    pt: PtAdapter = passthru.adapter()
    ndis.remove_adapter(ndis.adapters["eth0-pt"])
    assert o.closed and pt.closed and passthru.adapters == {}
    assert ndis.adapters["eth0"].bindings == []
    finish(ndis, eth0)


def test_bind_to_and_bad_options() -> None:
    with pytest.raises(ValueError):
        Passthru5(lower_send="carrier-pigeon")
    ndis = Ndis()
    _, handle = ndis.NdisMRegisterMiniport(NullMiniport(), 5, 1)
    assert handle is not None
    ndis.add_adapter(handle, "eth0")
    ndis.add_adapter(handle, "eth1")
    passthru = Passthru5(bind_to={"eth1"})
    passthru.register(ndis)
    assert passthru.adapters == {}  # the offers come later, from PASSIVE work items
    ndis.run()
    assert set(passthru.adapters) == {"eth1"} and "eth1-pt" in ndis.adapters
    with pytest.raises(LookupError):
        Passthru5().adapter()
