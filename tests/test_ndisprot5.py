"""Tests for pyndis.drivers.ndisprot5: binding, sending with descriptor reuse, receiving,
status and unbinding, through real stacks."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisRequestQueryInformation,
)
from pyndis.drivers.loopback5 import Loopback5
from pyndis.drivers.ndisprot5 import DEFAULT_FILTER, NdisProt5
from pyndis.drivers.null5 import NullAdapter, NullMiniport, NullMiniportPackets
from pyndis.drivers.simnic5 import SimNic5Single
from pyndis.library.adapter import MiniportBlock
from pyndis.library.kernel import Ndis
from pyndis.mdl import NdisQueryBuffer
from pyndis.ownership import Ownership
from pyndis.packet import NDIS_PACKET, NdisGetFirstBufferFromPacket, NdisQueryPacket
from pyndis.status import NDIS_STATUS

ME = b"\x02\x00\x00\x00\x00\x01"
PEER = b"\x02\x00\x00\x00\x00\x02"
BCAST = b"\xff" * 6


def frame(dst: bytes = PEER, n: int = 60, fill: int = 0) -> bytes:
    return dst + ME + b"\x88\xb5" + bytes((fill + i) & 0xFF for i in range(n - 14))


class RecordingNull(NullMiniport):
    """A serialized null miniport that records what it was handed (length, buffer count)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int, bytes]] = []

    def MiniportSend(
        self, MiniportAdapterContext: NullAdapter, Packet: NDIS_PACKET, Flags: int
    ) -> int:
        _phys, count, first, total = NdisQueryPacket(Packet)
        assert first is not None
        view, _ = NdisQueryBuffer(first)
        self.seen.append((total, count, bytes(view[:6])))
        return super().MiniportSend(MiniportAdapterContext, Packet, Flags)


def kernel_with(miniport: Any, name: str = "eth0", **keywords: Any) -> tuple[Ndis, MiniportBlock]:
    ndis = Ndis(verifier=True, strict=True)
    status, handle = ndis.NdisMRegisterMiniport(miniport, 5, 1)
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    status, adapter = ndis.add_adapter(handle, name, **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    return ndis, adapter


def finish(ndis: Ndis, *adapters: MiniportBlock) -> None:
    ndis.run()
    for adapter in adapters:
        ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()
    assert [p for p in ndis.pools if p.tag != "ndis-loopback"] == []
    assert all(p.outstanding == 0 for p in ndis.pools)


# --- binding --------------------------------------------------------------------------------------


def test_binds_adapters_present_at_registration_and_added_later() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5()
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS
    assert prot.opens == {}  # the offer is a PASSIVE work item, after NdisRegisterProtocol
    ndis.run()
    assert set(prot.opens) == {"eth0"}
    handle = ndis.miniport_drivers[0]
    _, eth1 = ndis.add_adapter(handle, "eth1")
    assert eth1 is not None
    assert set(prot.opens) == {"eth0", "eth1"}
    with pytest.raises(LookupError):
        prot.open()  # two bindings: a name is needed
    assert prot.write(frame(), "eth1") == NDIS_STATUS.SUCCESS
    finish(ndis, eth0, eth1)


def test_bind_to_restricts_the_adapters_bound() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    _, eth1 = ndis.add_adapter(ndis.miniport_drivers[0], "eth1")
    assert eth1 is not None
    prot = NdisProt5(bind_to={"eth1"})
    prot.register(ndis)
    ndis.run()
    assert set(prot.opens) == {"eth1"}
    finish(ndis, eth0, eth1)


def test_bind_sets_the_packet_filter_and_learns_the_address() -> None:
    ndis, eth0 = kernel_with(NullMiniport(), address=PEER)
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    assert o.binding is not None and o.address == PEER
    status, value = ndis.NdisRequest(
        o.binding, NdisRequestQueryInformation, OID_GEN_CURRENT_PACKET_FILTER
    )
    assert status == NDIS_STATUS.SUCCESS
    assert value == DEFAULT_FILTER == NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST
    finish(ndis, eth0)


def test_bind_failure_is_recorded_when_pools_cannot_be_allocated() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5(pool=0x10000)  # more than a packet pool may hold (rule 1)
    prot.register(ndis)
    ndis.run()
    assert prot.opens == {}
    assert prot.bind_failures == [("eth0", NDIS_STATUS.RESOURCES)]
    finish(ndis, eth0)


# --- sending and descriptor reuse -----------------------------------------------------------------


def test_reuse_takes_descriptors_from_the_free_list_never_from_the_pool() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5(pool=4, reuse=True)
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    pool = o.packet_pool
    assert pool is not None and pool.allocations == 4 and len(o.free_packets) == 4
    for i in range(50):
        assert o.write(frame(fill=i)) == NDIS_STATUS.SUCCESS
    assert pool.allocations == 4 and pool.frees == 0  # reinitialized, never freed
    assert len(o.free_packets) == 4
    packet = o.free_packets[-1]
    assert packet.ownership is Ownership.ALLOCATED and packet.Private.Head is None
    finish(ndis, eth0)


def test_free_and_reallocate_goes_to_the_pool_every_time() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5(pool=4, reuse=False)
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    pool = o.packet_pool
    assert pool is not None and pool.allocations == 0 and o.free_packets == []
    for i in range(10):
        assert o.write(frame(fill=i)) == NDIS_STATUS.SUCCESS
    assert pool.allocations == pool.frees == 10
    finish(ndis, eth0)


def test_write_chains_each_fragment_as_a_buffer_without_copying() -> None:
    miniport = RecordingNull()
    ndis, eth0 = kernel_with(miniport)
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    header = bytearray(PEER + ME + b"\x88\xb5")
    payload = bytearray(b"p" * 100)
    assert prot.write([header, payload]) == NDIS_STATUS.SUCCESS
    assert miniport.seen == [(114, 2, PEER)]
    finish(ndis, eth0)


def test_buffer_exhaustion_gives_the_packet_back_and_refuses_the_write() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5(pool=1)  # one packet, four buffer descriptors
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    assert o.write([b"a" * 14] * 5) == NDIS_STATUS.RESOURCES
    assert o.write_refused == 1 and o.sends == 0
    assert len(o.free_packets) == 1 and o.free_packets[0].Private.Head is None
    assert o.buffer_pool is not None and o.buffer_pool.outstanding == 0
    assert o.write([b"a" * 14] * 4 + []) == NDIS_STATUS.SUCCESS
    finish(ndis, eth0)


def test_rule_16_non_pending_statuses_are_counted_as_synchronous() -> None:
    ndis, eth0 = kernel_with(NullMiniport(), send_status=NDIS_STATUS.NO_CABLE)
    prot = NdisProt5(track=True)
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    assert o.write(frame()) == NDIS_STATUS.NO_CABLE
    assert o.write(frame(n=2000)) == NDIS_STATUS.INVALID_PACKET  # longer than 1514
    assert o.by_status == {NDIS_STATUS.NO_CABLE: 1, NDIS_STATUS.INVALID_PACKET: 1}
    assert o.sync_completions == 2 and o.pending == 0
    assert o.completion_log == [1, 2]
    finish(ndis, eth0)


def test_track_logs_the_order_packets_come_back_in() -> None:
    ndis, eth0 = kernel_with(NullMiniportPackets(), deserialized=True)
    prot = NdisProt5(track=True)
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    o.write_many([frame(fill=i) for i in range(5)])
    o.write(frame())
    assert o.completion_log == [1, 2, 3, 4, 5, 6]
    finish(ndis, eth0)


# --- receiving ------------------------------------------------------------------------------------


def test_receives_its_own_frames_through_a_loopback_adapter() -> None:
    ndis, lo = kernel_with(Loopback5(), "lo0")
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    sent = [frame(ME, fill=1), frame(BCAST, fill=2), frame(PEER, fill=3)]
    for f in sent:
        o.write(f)
    ndis.run()
    assert list(o.received) == sent[:2]  # PEER is filtered out (DIRECTED | BROADCAST)
    assert o.read() == sent[0] and o.read() == sent[1] and o.read() is None
    finish(ndis, lo)


def test_promiscuous_filter_sees_frames_to_other_stations() -> None:
    ndis, lo = kernel_with(Loopback5(), "lo0")
    prot = NdisProt5(packet_filter=int(NDIS_PACKET_TYPE_PROMISCUOUS))
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    o.write(frame(PEER))
    ndis.run()
    assert list(o.received) == [frame(PEER)]
    finish(ndis, lo)


def test_receive_queue_overflow_is_counted() -> None:
    ndis, lo = kernel_with(Loopback5(), "lo0")
    prot = NdisProt5(rx_queue=2)
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    for i in range(5):
        o.write(frame(ME, fill=i))
    ndis.run()
    assert len(o.received) == 2 and o.rx_dropped == 3
    finish(ndis, lo)


def test_protocol_receive_lookahead_path() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    ctx = prot.open()
    data = frame(ME)
    header, body = memoryview(data)[:14], memoryview(data)[14:]
    status = prot.ProtocolReceive(ctx, None, header, 14, body, len(body), len(body))
    assert status == NDIS_STATUS.SUCCESS and list(ctx.received) == [data]
    # only part of the frame in the lookahead: the model has no NdisTransferData
    status = prot.ProtocolReceive(ctx, None, header, 14, body[:10], 10, len(body))
    assert status == NDIS_STATUS.NOT_ACCEPTED and ctx.rx_dropped == 1
    prot.ProtocolReceiveComplete(ctx)
    assert ctx.receive_completes == 1
    finish(ndis, eth0)


# --- status and unbinding -------------------------------------------------------------------------


def test_status_indications_are_recorded() -> None:
    ndis, eth0 = kernel_with(SimNic5Single())
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    nic = eth0.MiniportAdapterContext
    nic.pull_cable()
    nic.plug_cable(after_ns=1000)
    ndis.run()
    assert o.statuses == [NDIS_STATUS.MEDIA_DISCONNECT, NDIS_STATUS.MEDIA_CONNECT]
    finish(ndis, eth0)


def test_unbind_with_sends_in_flight_closes_after_they_complete() -> None:
    ndis, eth0 = kernel_with(SimNic5Single(), rate_bps=1_000_000)  # 480 us per 60-byte frame
    prot = NdisProt5(pool=8)
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    for i in range(5):
        assert o.write(frame(fill=i)) == NDIS_STATUS.PENDING
    assert o.pending == 5
    ndis.remove_adapter(eth0)  # unbind waits for the five completions, then the close
    assert o.closed and o.pending == 0 and o.by_status == {NDIS_STATUS.SUCCESS: 5}
    assert prot.opens == {}
    assert o.write(frame()) == NDIS_STATUS.CLOSING and o.write_many([frame()]) == 0
    finish(ndis)


def test_close_directly_is_idempotent() -> None:
    ndis, eth0 = kernel_with(NullMiniport())
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    assert prot.close(o) == NDIS_STATUS.SUCCESS
    assert prot.close(o) == NDIS_STATUS.SUCCESS
    assert o.closed and prot.opens == {}
    finish(ndis, eth0)


def test_first_buffer_of_a_written_packet_is_the_callers_memory() -> None:
    seen: list[memoryview] = []

    class Peek(NullMiniport):
        def MiniportSend(self, ctx: NullAdapter, Packet: NDIS_PACKET, Flags: int) -> int:
            _buffer, va, _length, _total = NdisGetFirstBufferFromPacket(Packet)
            assert va is not None
            seen.append(va)
            return super().MiniportSend(ctx, Packet, Flags)

    ndis, eth0 = kernel_with(Peek())
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    data = bytearray(frame())
    prot.write(data)
    assert seen[0].obj is data  # zero copy: the MDL maps the caller's bytearray
    seen.clear()
    finish(ndis, eth0)


def test_a_status_code_ndis_does_not_name_is_counted_as_is() -> None:
    custom = 0xE0001234  # a driver-chosen failure code (rule 16: "or another code")
    ndis, eth0 = kernel_with(NullMiniport(), send_status=custom)
    prot = NdisProt5()
    prot.register(ndis)
    ndis.run()
    o = prot.open()
    assert o.write(frame()) == custom
    assert o.by_status == {custom: 1}
    finish(ndis, eth0)
