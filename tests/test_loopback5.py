"""Tests for pyndis.drivers.loopback5: every frame sent comes back as a receive, the send
completes after the indication (and after the receive packet came back)."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_MAC_OPTIONS,
    NdisMedium802_3,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
)
from pyndis.drivers.loopback5 import Loopback5, LoopbackAdapter
from pyndis.drivers.ndisprot5 import NdisProt5, NdisProtOpen, copy_packet
from pyndis.errors import NdisError, NdisInternalError
from pyndis.library.adapter import MiniportBlock
from pyndis.library.binding import OpenBlock
from pyndis.library.kernel import Ndis
from pyndis.mdl import NdisQueryBuffer
from pyndis.packet import NDIS_GET_PACKET_STATUS, NDIS_PACKET, NdisQueryPacket
from pyndis.status import NDIS_STATUS

ME = b"\x02\x00\x00\x00\x00\x01"
PEER = b"\x02\x00\x00\x00\x00\x02"


def frame(dst: bytes = ME, fill: int = 0, n: int = 60) -> bytes:
    return dst + ME + b"\x88\xb5" + bytes((fill + i) & 0xFF for i in range(n - 14))


def stack(**keywords: Any) -> tuple[Ndis, MiniportBlock, LoopbackAdapter, NdisProtOpen]:
    ndis = Ndis(verifier=True, strict=True)
    status, handle = ndis.NdisMRegisterMiniport(Loopback5(), 5, 1)
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    status, adapter = ndis.add_adapter(handle, "lo0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    prot = NdisProt5(track=True)
    prot.register(ndis)
    ndis.run()  # ProtocolBindAdapter runs from a PASSIVE work item
    return ndis, adapter, adapter.MiniportAdapterContext, prot.open()


def finish(ndis: Ndis, adapter: MiniportBlock) -> None:
    ndis.run()
    ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()
    assert [p for p in ndis.pools if p.tag != "ndis-loopback"] == []


class Holder:
    """A protocol that keeps packets indicated with SUCCESS while ``hold`` is set."""

    NDIS_VERSION = (5, 1)

    def __init__(self, ndis: Ndis, name: str = "lo0") -> None:
        self.ndis = ndis
        self.hold = True
        self.held: list[NDIS_PACKET] = []
        self.copied: list[bytes] = []
        _, handle = ndis.NdisRegisterProtocol(self, 5, 1, "holder")
        assert handle is not None
        status, _, binding, _ = ndis.NdisOpenAdapter(handle, self, [NdisMedium802_3], name)
        assert status == NDIS_STATUS.SUCCESS and binding is not None
        self.binding: OpenBlock = binding
        ndis.NdisRequest(
            binding,
            NdisRequestSetInformation,
            OID_GEN_CURRENT_PACKET_FILTER,
            NDIS_PACKET_TYPE_PROMISCUOUS,
        )

    def release(self) -> None:
        held, self.held = self.held, []
        self.ndis.NdisReturnPackets(held, len(held))

    def ProtocolSendComplete(self, ctx: Any, Packet: NDIS_PACKET, Status: int) -> None:
        raise AssertionError("the holder never sends")

    def ProtocolReceivePacket(self, ctx: Any, Packet: NDIS_PACKET) -> int:
        if not self.hold or NDIS_GET_PACKET_STATUS(Packet) == NDIS_STATUS.RESOURCES:
            self.copied.append(copy_packet(Packet))
            return 0
        self.held.append(Packet)
        return 1


@pytest.mark.parametrize("deserialized", [False, True])
def test_every_frame_sent_is_received(deserialized: bool) -> None:
    ndis, lo, adapter, o = stack(deserialized=deserialized)
    expected = NDIS_STATUS.PENDING if deserialized else NDIS_STATUS.SUCCESS
    assert o.write(frame(fill=1)) == expected
    assert o.write_many([frame(fill=2), frame(fill=3)]) == 2
    ndis.run()
    assert list(o.received) == [frame(fill=i) for i in (1, 2, 3)]
    assert o.by_status == {NDIS_STATUS.SUCCESS: 3}
    assert o.sync_completions == (0 if deserialized else 1)
    assert adapter.looped == 3 and adapter.looping == {}
    finish(ndis, lo)


def test_the_adapter_does_its_own_loopback_so_ndis_does_not() -> None:
    ndis, lo, _, o = stack()
    assert o.binding is not None
    status, options = ndis.NdisRequest(o.binding, NdisRequestQueryInformation, OID_GEN_MAC_OPTIONS)
    assert status == NDIS_STATUS.SUCCESS and not options & NDIS_MAC_OPTION_NO_LOOPBACK
    assert not lo.ndis_loops_back
    o.write(frame())
    assert len(o.received) == 1  # one copy, not two
    finish(ndis, lo)


def test_a_frame_nobody_accepts_still_completes() -> None:
    ndis, lo, adapter, o = stack()
    assert o.write(frame(PEER)) == NDIS_STATUS.SUCCESS
    assert list(o.received) == [] and adapter.looped == 1
    finish(ndis, lo)


def test_fragmented_frame_is_looped_zero_copy_buffer_by_buffer() -> None:
    ndis, lo, _, o = stack()
    holder = Holder(ndis)
    header = bytearray(ME + ME + b"\x88\xb5")
    body = bytearray(b"b" * 40)
    o.write([header, body])
    (packet,) = holder.held
    _phys, count, first, total = NdisQueryPacket(packet)
    assert (count, total) == (2, 54) and first is not None
    view, _ = NdisQueryBuffer(first)
    assert view.obj is header  # the receive buffer describes the sender's memory
    del view
    holder.release()
    finish(ndis, lo)


@pytest.mark.parametrize("deserialized", [False, True])
def test_send_completes_only_when_the_receive_packet_comes_back(deserialized: bool) -> None:
    ndis, lo, adapter, o = stack(deserialized=deserialized)
    holder = Holder(ndis)
    assert o.write(frame()) == NDIS_STATUS.PENDING
    ndis.run()
    assert o.pending == 1 and len(holder.held) == 1 and len(adapter.looping) == 1
    holder.release()
    assert o.pending == 0 and o.by_status == {NDIS_STATUS.SUCCESS: 1}
    assert list(o.received) == [frame()]  # ndisprot copied it meanwhile
    finish(ndis, lo)


def test_a_receive_packet_nobody_kept_has_no_pending_status_and_no_miniport_return_packet() -> None:
    """MiniportReturnPacket page: ndisprot copies and keeps nothing, so each receive packet's
    Status is not PENDING when NdisMIndicateReceivePacket returns; the driver frees it there and
    then and completes the send at once (SUCCESS from a serialized MiniportSend), and NDIS never
    calls MiniportReturnPacket."""
    ndis, lo, adapter, o = stack()
    assert o.write(frame()) == NDIS_STATUS.SUCCESS
    assert adapter.looping == {} and adapter.packet_pool is not None
    assert adapter.packet_pool.outstanding == 0
    assert not any(" miniport-return5 " in e for e in ndis.scheduler.events)
    assert list(o.received) == [frame()]
    finish(ndis, lo)


def test_copy_keyword_indicates_with_resources_and_finishes_at_once() -> None:
    ndis, lo, _, o = stack(copy=True)
    holder = Holder(ndis)
    assert o.write(frame()) == NDIS_STATUS.SUCCESS
    assert holder.held == [] and holder.copied == [frame()]
    finish(ndis, lo)


@pytest.mark.parametrize("deserialized", [False, True])
def test_pool_exhaustion_queues_and_resumes_in_order(deserialized: bool) -> None:
    ndis, lo, adapter, o = stack(deserialized=deserialized, pool=2)
    holder = Holder(ndis)
    for i in range(5):
        assert o.write(frame(fill=i)) == NDIS_STATUS.PENDING
    ndis.run()
    assert len(holder.held) == 2 and o.pending == 5
    assert adapter.resources_returned >= 1
    holder.hold = False
    holder.release()
    ndis.run()
    assert o.pending == 0 and o.completion_log == [1, 2, 3, 4, 5]
    assert holder.copied == [frame(fill=i) for i in range(2, 5)]
    finish(ndis, lo)


def test_a_packet_held_across_unbind_hangs_the_removal() -> None:
    ndis, lo, _, o = stack()
    holder = Holder(ndis)
    o.write(frame())
    assert len(holder.held) == 1
    with pytest.raises(NdisError) as caught:
        ndis.remove_adapter(lo)
    assert caught.value.rule == "R65"  # the send can never complete: a real system hangs


def test_return_of_a_packet_never_indicated_is_an_internal_error() -> None:
    ndis, lo, adapter, _ = stack()
    stray = NDIS_PACKET(16)
    with pytest.raises(NdisInternalError) as info:
        adapter.returned(stray)
    assert info.value.rule == "PY-LOOPBACK"
    finish(ndis, lo)


def test_initialize_refusals() -> None:
    ndis = Ndis()
    driver = Loopback5()
    _, handle = ndis.NdisMRegisterMiniport(driver, 5, 1)
    assert handle is not None
    status, _ = ndis.add_adapter(handle, "lo0", pool=0x10000)
    assert status == NDIS_STATUS.RESOURCES
    assert driver.MiniportInitialize([5], None, None)[0] == NDIS_STATUS.UNSUPPORTED_MEDIA  # type: ignore[arg-type]


def test_reset_and_oids() -> None:
    ndis, lo, adapter, o = stack()
    assert ndis.reset_adapter(lo) == NDIS_STATUS.SUCCESS
    assert o.statuses == [NDIS_STATUS.RESET_START, NDIS_STATUS.RESET_END]
    assert adapter.query(0x00FF00FF) == (NDIS_STATUS.INVALID_OID, None)
    assert lo.driver.driver.MiniportSetInformation(adapter, 0x00FF00FF, 0) == (
        NDIS_STATUS.INVALID_OID
    )
    finish(ndis, lo)
