"""Tests for pyndis.drivers.simnic5: the simulated NIC through real stacks (ndisprot -> NDIS ->
simnic), alone and as two hosts on a wire, with its faults."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.constants import (
    NDIS_PACKET_TYPE_PROMISCUOUS,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_LINK_SPEED,
    OID_GEN_MEDIA_CONNECT_STATUS,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
    NdisMedium802_3,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
)
from pyndis.drivers.ndisprot5 import NdisProt5, NdisProtOpen, copy_packet
from pyndis.drivers.simnic5 import SimNic5, SimNic5Single, SimNicAdapter
from pyndis.errors import NdisError
from pyndis.library.adapter import MiniportBlock
from pyndis.library.binding import OpenBlock
from pyndis.library.drivers import DriverBlock
from pyndis.library.kernel import Ndis
from pyndis.packet import NDIS_GET_PACKET_STATUS, NDIS_PACKET
from pyndis.status import NDIS_STATUS
from pyndis.wire import Wire, run_kernels

ME = b"\x02\x00\x00\x00\x00\x01"
PEER = b"\x02\x00\x00\x00\x00\x02"
OTHER = b"\x02\x00\x00\x00\x00\x09"
BCAST = b"\xff" * 6
SLOW = 1_000_000  # 1 Mbit/s: a 60-byte frame takes 480 us
FRAME_NS = 480_000

VARIANTS = [(SimNic5Single, False), (SimNic5Single, True), (SimNic5, False), (SimNic5, True)]


def frame(dst: bytes = PEER, fill: int = 0, n: int = 60, src: bytes = ME) -> bytes:
    return dst + src + b"\x88\xb5" + bytes((fill + i) & 0xFF for i in range(n - 14))


def host(
    cls: type[Any] = SimNic5Single,
    *,
    seed: int = 0,
    name: str = "host",
    prot: NdisProt5 | None = None,
    **keywords: Any,
) -> tuple[Ndis, MiniportBlock, SimNicAdapter, NdisProtOpen]:
    ndis = Ndis(seed=seed, verifier=True, strict=True, name=name)
    status, handle = ndis.NdisMRegisterMiniport(cls(), 5, 1, "simnic")
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    status, adapter = ndis.add_adapter(handle, "eth0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    prot = prot or NdisProt5(track=True)
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS
    ndis.run()  # ProtocolBindAdapter runs from a PASSIVE work item
    return ndis, adapter, adapter.MiniportAdapterContext, prot.open()


def sniff(wire: Wire, ndis: Ndis) -> list[tuple[int, bytes]]:
    log: list[tuple[int, bytes]] = []
    wire.attach(ndis, lambda f: log.append((ndis.scheduler.now_ns, f)), "sniffer")
    return log


def finish(ndis: Ndis, *adapters: MiniportBlock) -> None:
    ndis.run()
    for adapter in adapters:
        ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()
    assert all(p.outstanding == 0 for p in ndis.pools)
    assert [p for p in ndis.pools if p.tag != "ndis-loopback"] == []


def completion_times(o: NdisProtOpen, ndis: Ndis) -> list[int]:
    times: list[int] = []
    o.on_send_complete = lambda _o, _s: times.append(ndis.scheduler.now_ns)
    return times


# --- ring, order, resources -----------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "deserialized"), VARIANTS)
def test_everything_completes_in_fifo_order_through_a_small_ring(
    cls: type[Any], deserialized: bool
) -> None:
    wire = Wire(latency_ns=0)
    ndis, eth0, nic, o = host(cls, ring=2, rate_bps=SLOW, wire=wire, deserialized=deserialized)
    log = sniff(wire, ndis)
    frames = [frame(fill=i) for i in range(7)]
    if cls is SimNic5:
        assert o.write_many(frames) == 7
    else:
        for f in frames:
            assert o.write(f) == NDIS_STATUS.PENDING
    ndis.run()
    assert o.by_status == {NDIS_STATUS.SUCCESS: 7}
    assert o.completion_log == list(range(1, 8))
    assert [f for _, f in log] == frames  # rule 18: on the wire in protocol order
    # back to back at the link rate
    assert [t for t, _ in log] == [FRAME_NS * (i + 1) for i in range(7)]
    assert nic.counters.tx_packets == 7 and nic.counters.tx_completed == 7
    if deserialized:
        assert nic.counters.resources_returned == 0  # rule 27: it queued them itself
    else:
        assert nic.counters.resources_returned >= 1  # rule 21: RESOURCES, NDIS requeued
    finish(ndis, eth0)


@pytest.mark.parametrize("order", ["reverse", "random"])
@pytest.mark.parametrize(("cls", "deserialized"), VARIANTS)
def test_completion_order_knob(cls: type[Any], deserialized: bool, order: str) -> None:
    ndis, eth0, _nic, o = host(cls, seed=7, ring=16, completion=order, deserialized=deserialized)
    if cls is SimNic5:
        o.write_many([frame(fill=i) for i in range(8)])
    else:
        for i in range(8):
            o.write(frame(fill=i))
    ndis.run()
    assert sorted(o.completion_log) == list(range(1, 9))
    if order == "reverse":
        # no link rate: all eight finish at t=0 and one DPC completes the batch backwards
        assert o.completion_log == list(range(8, 0, -1))
    else:
        assert o.completion_log != list(range(1, 9))
    finish(ndis, eth0)


def test_random_completion_order_is_a_function_of_the_seed() -> None:
    def run(seed: int) -> list[int]:
        ndis, eth0, _, o = host(SimNic5, seed=seed, ring=32, completion="random")
        o.write_many([frame(fill=i) for i in range(16)])
        ndis.run()
        finish(ndis, eth0)
        return o.completion_log

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_interrupt_moderation_batches_completions() -> None:
    ndis, eth0, _, o = host(
        SimNic5Single, ring=8, rate_bps=SLOW, completion="reverse", irq_delay_ns=10 * FRAME_NS
    )
    times = completion_times(o, ndis)
    for i in range(3):
        o.write(frame(fill=i))
    ndis.run()
    assert o.completion_log == [3, 2, 1]  # one DPC, after the first frame + the delay
    assert times == [FRAME_NS + 10 * FRAME_NS] * 3
    finish(ndis, eth0)


def test_serialized_send_packets_ring_smaller_than_the_batch() -> None:
    ndis, eth0, nic, o = host(SimNic5, ring=3, rate_bps=SLOW)
    assert o.write_many([frame(fill=i) for i in range(10)]) == 10
    ndis.run()
    assert o.completion_log == list(range(1, 11))
    assert nic.counters.resources_returned >= 3  # rule 22: RESOURCES in the OOB status
    finish(ndis, eth0)


# --- early completion -----------------------------------------------------------------------------


def test_early_completion_finishes_the_packet_before_the_frame_is_on_the_wire() -> None:
    wire = Wire(latency_ns=1000)
    ndis, eth0, _nic, o = host(wire=wire, rate_bps=SLOW, early_complete=True)
    log = sniff(wire, ndis)
    times = completion_times(o, ndis)
    o.write(frame())
    ndis.run()
    assert times == [0]
    assert log == [(FRAME_NS + 1000, frame())]  # the bytes were copied at t=0
    finish(ndis, eth0)


def test_normal_completion_waits_for_the_frame_to_be_sent() -> None:
    ndis, eth0, _, o = host(rate_bps=SLOW, latency_ns=500)
    times = completion_times(o, ndis)
    o.write(frame())
    ndis.run()
    assert times == [FRAME_NS + 500]
    finish(ndis, eth0)


def test_early_completion_full_ring_wakes_ndis_with_resources_available() -> None:
    # Completed packets still fill the ring: only NdisMSendResourcesAvailable restarts NDIS's
    # queue (no completion is left to do it): the lost-wake-up case.
    ndis, eth0, nic, o = host(ring=1, rate_bps=SLOW, early_complete=True)
    for i in range(4):
        o.write(frame(fill=i))
    ndis.run()
    assert o.completion_log == [1, 2, 3, 4]
    assert nic.counters.resources_returned >= 3
    assert "nic-resources-available" in ndis.scheduler.trace_text()
    assert nic.counters.tx_packets == 4
    finish(ndis, eth0)


# --- faults ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("early", [False, True])
@pytest.mark.parametrize(("cls", "deserialized"), VARIANTS)
def test_fail_rate_one_fails_every_frame(cls: type[Any], deserialized: bool, early: bool) -> None:
    wire = Wire()
    ndis, eth0, nic, o = host(
        cls, fail_rate=1.0, wire=wire, deserialized=deserialized, early_complete=early
    )
    log = sniff(wire, ndis)
    if cls is SimNic5:
        o.write_many([frame()] * 3)
    else:
        for _ in range(3):
            o.write(frame())
    ndis.run()
    # An early-completing NIC has already reported SUCCESS when the frame fails on the wire:
    # the failure is only counted.
    assert o.by_status == {NDIS_STATUS.SUCCESS if early else NDIS_STATUS.FAILURE: 3}
    assert nic.counters.tx_errors == 3 and nic.counters.tx_packets == 0
    assert log == []
    finish(ndis, eth0)


def test_partial_fail_rate_accounts_for_every_frame() -> None:
    wire = Wire()
    ndis, eth0, nic, o = host(SimNic5, seed=3, fail_rate=0.3, wire=wire, ring=64)
    log = sniff(wire, ndis)
    o.write_many([frame(fill=i) for i in range(60)])
    ndis.run()
    failed = o.by_status[NDIS_STATUS.FAILURE]
    assert 0 < failed < 60
    assert o.by_status[NDIS_STATUS.SUCCESS] == 60 - failed == len(log)
    assert nic.counters.tx_errors == failed
    finish(ndis, eth0)


@pytest.mark.parametrize("deserialized", [False, True])
def test_cable_pull_fails_frames_in_the_ring_and_later_sends(deserialized: bool) -> None:
    ndis, eth0, nic, o = host(rate_bps=SLOW, ring=4, deserialized=deserialized)
    assert o.binding is not None
    for i in range(3):
        o.write(frame(fill=i))
    nic.pull_cable(after_ns=FRAME_NS // 2)
    ndis.run()
    assert o.by_status == {NDIS_STATUS.NO_CABLE: 3}
    assert o.statuses == [NDIS_STATUS.MEDIA_DISCONNECT]
    query = NdisRequestQueryInformation
    assert ndis.NdisRequest(o.binding, query, OID_GEN_MEDIA_CONNECT_STATUS)[1] == (
        NdisMediaStateDisconnected
    )
    status = o.write(frame())
    assert status == (NDIS_STATUS.PENDING if deserialized else NDIS_STATUS.NO_CABLE)
    ndis.run()
    assert o.by_status == {NDIS_STATUS.NO_CABLE: 4}
    nic.plug_cable()
    nic.plug_cable()  # already plugged by then: no second indication
    ndis.run()
    assert o.statuses == [NDIS_STATUS.MEDIA_DISCONNECT, NDIS_STATUS.MEDIA_CONNECT]
    assert ndis.NdisRequest(o.binding, query, OID_GEN_MEDIA_CONNECT_STATUS)[1] == (
        NdisMediaStateConnected
    )
    o.write(frame())
    ndis.run()
    assert o.by_status[NDIS_STATUS.SUCCESS] == 1
    finish(ndis, eth0)


@pytest.mark.parametrize("deserialized", [False, True])
def test_reset_pends_fails_what_is_in_flight_and_completes_later(deserialized: bool) -> None:
    ndis, eth0, nic, o = host(rate_bps=SLOW, ring=2, reset_ms=1, deserialized=deserialized)
    for i in range(4):
        assert o.write(frame(fill=i)) == NDIS_STATUS.PENDING
    assert ndis.reset_adapter(eth0) == NDIS_STATUS.PENDING
    # while the reset runs NDIS refuses sends itself
    assert o.write(frame()) == NDIS_STATUS.RESET_IN_PROGRESS
    ndis.run()
    assert o.by_status == {NDIS_STATUS.RESET_IN_PROGRESS: 5}
    assert o.statuses == [NDIS_STATUS.RESET_START, NDIS_STATUS.RESET_END]
    assert nic.counters.tx_packets == 0 and not nic.resetting
    assert o.write(frame()) == NDIS_STATUS.PENDING
    ndis.run()
    assert o.by_status[NDIS_STATUS.SUCCESS] == 1
    finish(ndis, eth0)


# --- loopback -------------------------------------------------------------------------------------


@pytest.mark.parametrize("no_loopback", [False, True])
def test_one_loopback_copy_whoever_loops_back(no_loopback: bool) -> None:
    # no_loopback=False: the NIC loops back in hardware and NDIS must not; True: NDIS does.
    ndis, eth0, nic, o = host(no_loopback=no_loopback)
    sent = [frame(ME, fill=1), frame(BCAST, fill=2), frame(PEER, fill=3)]
    for f in sent:
        o.write(f)
    ndis.run()
    assert list(o.received) == sent[:2]
    assert nic.counters.rx_packets == (0 if no_loopback else 2)
    finish(ndis, eth0)


# --- two hosts on a wire --------------------------------------------------------------------------


def two_hosts(
    wire: Wire, **keywords: Any
) -> tuple[tuple[Ndis, MiniportBlock, SimNicAdapter, NdisProtOpen], ...]:
    a = host(seed=1, name="a", wire=wire, address=ME, **keywords)
    b = host(seed=2, name="b", wire=wire, address=PEER, **keywords)
    return a, b


def test_two_hosts_exchange_frames_through_the_wire() -> None:
    wire = Wire(latency_ns=5_000)
    (na, ea, _nica, oa), (nb, eb, nicb, ob) = two_hosts(wire, rate_bps=SLOW)
    sent = [frame(PEER, fill=i) for i in range(3)] + [frame(BCAST), frame(OTHER)]
    for f in sent:
        oa.write(f)
    ob.write(frame(ME, src=PEER, fill=9))
    run_kernels([na, nb])
    assert list(ob.received) == sent[:4]  # OTHER is dropped by b's address filter
    assert nicb.counters.rx_filtered == 1 and nicb.counters.rx_packets == 4
    # a's own broadcast comes back to it through NDIS's loopback (the NIC says NO_LOOPBACK)
    assert list(oa.received) == [frame(BCAST), frame(ME, src=PEER, fill=9)]
    # the last frame a sent left its NIC at 5 * 480 us and crossed the wire in 5 us
    assert nb.scheduler.now_ns >= 5 * FRAME_NS + 5_000
    assert nicb.lent == set() and nicb.rx_packet_pool is not None
    finish(na, ea)
    finish(nb, eb)


def test_frames_arriving_while_unplugged_are_dropped() -> None:
    wire = Wire()
    (na, ea, _, oa), (nb, eb, nicb, ob) = two_hosts(wire)
    nicb.pull_cable()
    run_kernels([na, nb])
    oa.write(frame(PEER))
    run_kernels([na, nb])
    assert list(ob.received) == [] and nicb.counters.rx_dropped == 1
    finish(na, ea)
    finish(nb, eb)


class HoldingProtocol:
    """A protocol that keeps every packet indicated with SUCCESS until told to return them
    (and copies those indicated with RESOURCES, as it must)."""

    NDIS_VERSION = (5, 1)

    def __init__(self, ndis: Ndis) -> None:
        self.ndis = ndis
        self.held: list[NDIS_PACKET] = []
        self.copied: list[bytes] = []
        status, handle = ndis.NdisRegisterProtocol(self, 5, 1, "holder")
        assert status == NDIS_STATUS.SUCCESS and handle is not None
        self.handle: DriverBlock = handle
        self.binding: OpenBlock | None = None

    def open(self, name: str) -> None:
        status, _, binding, _ = self.ndis.NdisOpenAdapter(
            self.handle, self, [NdisMedium802_3], name
        )
        assert status == NDIS_STATUS.SUCCESS and binding is not None
        self.binding = binding
        self.ndis.NdisRequest(
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
        if NDIS_GET_PACKET_STATUS(Packet) == NDIS_STATUS.RESOURCES:
            self.copied.append(copy_packet(Packet))
            return 0
        self.held.append(Packet)
        return 1


def test_received_packets_come_back_through_miniport_return_packet() -> None:
    wire = Wire()
    (na, ea, _, oa), (nb, eb, nicb, _ob) = two_hosts(wire)
    holder = HoldingProtocol(nb)
    holder.open("eth0")
    for i in range(3):
        oa.write(frame(PEER, fill=i))
    run_kernels([na, nb])
    assert len(holder.held) == 3 and nicb.lent == set(holder.held)
    assert [copy_packet(p) for p in holder.held] == [frame(PEER, fill=i) for i in range(3)]
    holder.release()
    assert nicb.lent == set()
    assert nicb.rx_packet_pool is not None and nicb.rx_packet_pool.outstanding == 0
    finish(na, ea)
    finish(nb, eb)


def test_received_packets_nobody_kept_are_reclaimed_without_pending_status() -> None:
    """MiniportReturnPacket page: ndisprot copies every frame (ReceiveCount 0), so no packet
    has Status PENDING when the receive DPC's NdisMIndicateReceivePacket returns: the driver
    reclaims each at once, lends none, and NDIS never calls MiniportReturnPacket."""
    wire = Wire()
    (na, ea, _, oa), (nb, eb, nicb, ob) = two_hosts(wire)
    for i in range(3):
        oa.write(frame(PEER, fill=i))
    run_kernels([na, nb])
    assert list(ob.received) == [frame(PEER, fill=i) for i in range(3)]
    assert nicb.lent == set()
    assert nicb.rx_packet_pool is not None and nicb.rx_packet_pool.outstanding == 0
    assert not any(" miniport-return5 " in e for e in nb.scheduler.events)
    finish(na, ea)
    finish(nb, eb)


def test_receive_resources_low_water_mark_and_overrun() -> None:
    wire = Wire()
    (na, ea, _, oa), (nb, eb, nicb, _) = two_hosts(wire, rx_packets=8)
    holder = HoldingProtocol(nb)
    holder.open("eth0")
    oa.write_many([frame(PEER, fill=i) for i in range(10)])
    run_kernels([na, nb])
    # 8 receive descriptors: 2 frames overrun; of the 8 indicated, the last one goes up with
    # RESOURCES (the pool is empty) and is copied; 7 are held.
    assert nicb.counters.rx_no_buffer == 2 and nicb.counters.rx_packets == 8
    assert len(holder.held) == 7 and holder.copied == [frame(PEER, fill=7)]
    holder.release()
    finish(na, ea)
    finish(nb, eb)


def test_halt_with_packets_still_held_reports_the_leak() -> None:
    wire = Wire()
    (na, ea, _, oa), (nb, eb, _, _) = two_hosts(wire)
    holder = HoldingProtocol(nb)
    holder.open("eth0")
    oa.write(frame(PEER))
    run_kernels([na, nb])
    assert len(holder.held) == 1
    with pytest.raises(NdisError) as caught:
        nb.remove_adapter(eb)
    assert caught.value.rule == "R6"  # the receive pool cannot be freed: a packet is out
    finish(na, ea)


# --- OIDs and configuration -----------------------------------------------------------------------


def test_oids_follow_the_hardware() -> None:
    ndis, eth0, nic, o = host(rate_bps=SLOW)
    assert o.binding is not None
    query = NdisRequestQueryInformation
    assert ndis.NdisRequest(o.binding, query, OID_GEN_LINK_SPEED) == (
        NDIS_STATUS.SUCCESS,
        SLOW // 100,
    )
    assert nic.query(0x00FF00FF) == (NDIS_STATUS.INVALID_OID, None)
    handle = ndis.miniport_drivers[0]
    assert handle.driver.MiniportSetInformation(nic, 0x00FF00FF, 0) == NDIS_STATUS.INVALID_OID
    finish(ndis, eth0)


@pytest.mark.parametrize(
    "keywords", [{"completion": "sideways"}, {"ring": 0}], ids=["completion", "ring"]
)
def test_bad_keywords_are_refused(keywords: dict[str, Any]) -> None:
    ndis = Ndis()
    _, handle = ndis.NdisMRegisterMiniport(SimNic5(), 5, 1)
    assert handle is not None
    with pytest.raises(ValueError):
        ndis.add_adapter(handle, "eth0", **keywords)


def test_initialize_refuses_without_802_3_and_without_pools() -> None:
    ndis = Ndis()
    driver = SimNic5()
    ndis.NdisMRegisterMiniport(driver, 5, 1)
    handle = ndis.miniport_drivers[0]
    status, _ = ndis.add_adapter(handle, "eth0", rx_packets=0x10000)  # rule 1: too many
    assert status == NDIS_STATUS.RESOURCES
    assert driver.MiniportInitialize([5], None, None)[0] == NDIS_STATUS.UNSUPPORTED_MEDIA  # type: ignore[arg-type]


def test_miniport_return_packet_of_a_packet_never_lent_is_an_internal_error() -> None:
    """The NIC checks NDIS's side of MiniportReturnPacket: only packets it lent come back."""
    from pyndis.errors import NdisInternalError

    ndis, adapter, nic, _ = host()
    with pytest.raises(NdisInternalError) as info:
        nic.return_packet(NDIS_PACKET(16))
    assert info.value.rule == "PY-SIMNIC"
    finish(ndis, adapter)
