"""Tests for pyndis.pools: NDIS 5 packet pools, NdisAllocatePacket/NdisFreePacket, reinitialize."""

from __future__ import annotations

import threading

import pytest

from pyndis.constants import DIRQL, DISPATCH_LEVEL, NDIS_FLAGS, fPACKET
from pyndis.errors import IrqlError, NdisError, NdisUsageError
from pyndis.hostctx import HostContext
from pyndis.mdl import MDL, BufferDdis, BufferPool, NdisAllocateBuffer, NdisFreeBuffer
from pyndis.ownership import Event, Ownership, transition
from pyndis.packet import (
    NDIS_OOB_DATA_FROM_PACKET,
    NDIS_PACKET,
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET,
    PROTOCOL_RESERVED_SIZE_IN_PACKET,
    NdisChainBufferAtBack,
    NdisGetPacketFlags,
    NdisQueryPacket,
    NdisSetPacketFlags,
    NdisUnchainBufferAtFront,
    NdisZeroMemory,
)
from pyndis.pools import (
    MAX_PACKET_POOL_DESCRIPTORS,
    NdisAllocatePacket,
    NdisDprAllocatePacket,
    NdisDprFreePacket,
    NdisFreePacket,
    NdisPacketPoolUsage,
    NdisPacketSize,
    NdisReinitializePacket,
    PacketPool,
    PacketPoolDdis,
)
from pyndis.status import NDIS_STATUS


class Kernel(HostContext, BufferDdis, PacketPoolDdis):
    """The slice of the Ndis kernel that descriptors need."""


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


def make_pool(
    kernel: Kernel, descriptors: int = 4, overflow: int = 0, reserved: int = 16
) -> PacketPool:
    status, pool = kernel.NdisAllocatePacketPoolEx(descriptors, overflow, reserved)
    assert status == NDIS_STATUS.SUCCESS
    assert pool is not None
    return pool


def take(pool: PacketPool) -> NDIS_PACKET:
    status, packet = NdisAllocatePacket(pool)
    assert status == NDIS_STATUS.SUCCESS
    assert packet is not None
    return packet


def buffers(kernel: Kernel) -> BufferPool:
    """The kernel's one buffer pool for these tests (created on first use)."""
    pool = next((p for p in kernel.pools if isinstance(p, BufferPool)), None)
    if pool is None:
        pool = kernel.NdisAllocateBufferPool(32)[1]
    return pool


def buffer(kernel: Kernel, data: bytes = b"data") -> MDL:
    status, mdl = NdisAllocateBuffer(buffers(kernel), bytearray(data), len(data))
    assert status == NDIS_STATUS.SUCCESS
    assert mdl is not None
    return mdl


# --- pool creation (rules 1-3) ------------------------------------------------------------------


def test_rule_1_more_than_0xffff_descriptors_is_resources(kernel: Kernel) -> None:
    assert kernel.NdisAllocatePacketPoolEx(0x10000, 0, 16) == (NDIS_STATUS.RESOURCES, None)
    assert kernel.NdisAllocatePacketPool(0x10000, 16) == (NDIS_STATUS.RESOURCES, None)
    assert kernel.pools == []
    pool = make_pool(kernel, 0xFFFF)
    assert pool.capacity == MAX_PACKET_POOL_DESCRIPTORS == 0xFFFF


@pytest.mark.parametrize(
    ("descriptors", "overflow", "kept"),
    [
        (0xFFF0, 100, 0xF),
        (0xFFFF, 5, 0),
        (10, 0xFFFF, 0xFFFF - 10),
        (10, 20, 20),
        (0, 0xFFFF, 0xFFFF),
    ],
)
def test_rule_1_overflow_cut_so_sum_is_0xffff(
    kernel: Kernel, descriptors: int, overflow: int, kept: int
) -> None:
    pool = make_pool(kernel, descriptors, overflow)
    assert pool.number_of_descriptors == descriptors
    assert pool.number_of_overflow_descriptors == kept
    assert pool.capacity == descriptors + kept <= 0xFFFF


def test_rule_1_overflow_cut_is_enforced_at_allocation(kernel: Kernel) -> None:
    pool = make_pool(kernel, 0xFFFE, 50, 0)
    assert pool.capacity == 0xFFFF
    for _ in range(0xFFFE):
        NdisAllocatePacket(pool)
    last = take(pool)  # the one overflow descriptor the cut left
    assert NdisAllocatePacket(pool) == (NDIS_STATUS.RESOURCES, None)
    NdisFreePacket(last)
    assert take(pool) is last
    assert NdisPacketPoolUsage(pool) == 0xFFFF


@pytest.mark.parametrize("bad", [(-1, 0, 0), (1, -1, 0), (1, 0, -1)])
def test_negative_arguments_refused(kernel: Kernel, bad: tuple[int, int, int]) -> None:
    with pytest.raises(NdisUsageError):
        kernel.NdisAllocatePacketPoolEx(*bad)


def test_rule_2_pool_hands_out_at_most_capacity(kernel: Kernel) -> None:
    pool = make_pool(kernel, 2, 1)
    packets = [take(pool) for _ in range(3)]
    assert len({id(p) for p in packets}) == 3
    assert NdisAllocatePacket(pool) == (NDIS_STATUS.RESOURCES, None)
    assert NdisAllocatePacket(pool) == (NDIS_STATUS.RESOURCES, None)
    assert pool.failures == 2
    assert NdisPacketPoolUsage(pool) == 3
    NdisFreePacket(packets[1])
    assert NdisPacketPoolUsage(pool) == 2
    assert take(pool) is packets[1]
    assert pool.usage() == {"outstanding": 3, "allocations": 4, "frees": 1, "failures": 2}


def test_rule_2_allocate_packet_pool_has_no_overflow(kernel: Kernel) -> None:
    status, pool = kernel.NdisAllocatePacketPool(2, 0)
    assert status == NDIS_STATUS.SUCCESS
    assert pool is not None
    assert pool.number_of_overflow_descriptors == 0
    take(pool), take(pool)
    assert NdisAllocatePacket(pool) == (NDIS_STATUS.RESOURCES, None)


def test_rule_2_zero_descriptor_pool(kernel: Kernel) -> None:
    pool = make_pool(kernel, 0)
    assert NdisAllocatePacket(pool) == (NDIS_STATUS.RESOURCES, None)
    assert pool.packets == []


@pytest.mark.parametrize("reserved", [0, 1, PROTOCOL_RESERVED_SIZE_IN_PACKET, 100])
def test_rule_3_protocol_reserved_length(kernel: Kernel, reserved: int) -> None:
    pool = make_pool(kernel, 1, 0, reserved)
    packet = take(pool)
    assert packet.ProtocolReserved == bytes(reserved)
    assert PROTOCOL_RESERVED_SIZE_IN_PACKET == 32


def test_rule_3_protocol_reserved_too_large_for_oob_offset(kernel: Kernel) -> None:
    assert kernel.NdisAllocatePacketPool(1, 0xFFFF) == (NDIS_STATUS.RESOURCES, None)
    make_pool(kernel, 1, 0, 0xFFFF - 96 - 15)  # the largest that still fits a USHORT offset


def test_pool_allocation_irql(kernel: Kernel) -> None:
    with kernel.irql.at(DIRQL), pytest.raises(IrqlError):
        kernel.NdisAllocatePacketPool(1, 0)
    with kernel.irql.at(DISPATCH_LEVEL):
        make_pool(kernel)


# --- allocation (rule 4) and reuse --------------------------------------------------------------


def test_rule_4_new_packet_is_zeroed_with_oob_reachable(kernel: Kernel) -> None:
    pool = make_pool(kernel, 1, 0, 16)
    packet = take(pool)
    private = packet.Private
    assert (private.PhysicalCount, private.TotalLength, private.Count) == (0, 0, 0)
    assert private.Head is None
    assert private.Tail is None
    assert private.Pool is pool
    assert private.Flags == 0
    assert NdisGetPacketFlags(packet) & NDIS_FLAGS.PROTOCOL_ID_MASK == 0
    assert private.ValidCounts is False
    assert private.NdisPacketFlags == fPACKET.ALLOCATED_BY_NDIS
    assert private.NdisPacketOobOffset == 112 == NdisPacketSize(16) - 40 - 96
    oob = NDIS_OOB_DATA_FROM_PACKET(packet)
    assert (oob.TimeToSend, oob.TimeReceived, oob.HeaderSize, oob.Status) == (0, 0, 0, 0)
    assert oob.MediaSpecificInformation is None
    assert packet.MacReserved == bytes(32)
    assert packet.Reserved == [0, 0]
    assert packet.extension == [None] * 12
    assert packet.ndis_route is None
    assert packet.ownership is Ownership.ALLOCATED
    assert packet.history is None
    assert NdisQueryPacket(packet) == (0, 0, None, 0)


def assert_fresh(packet: NDIS_PACKET, pool: PacketPool) -> None:
    """Everything rule 4 says about a packet just allocated from ``pool``."""
    private = packet.Private
    assert (private.PhysicalCount, private.TotalLength, private.Count, private.Flags) == (0,) * 4
    assert (private.Head, private.Tail, private.ValidCounts) == (None, None, False)
    assert private.Pool is pool
    assert private.NdisPacketFlags == fPACKET.ALLOCATED_BY_NDIS
    assert private.NdisPacketOobOffset == pool.oob_offset
    oob = packet.oob
    assert (oob.TimeToSend, oob.TimeReceived, oob.HeaderSize, oob.Status) == (0, 0, 0, 0)
    assert (oob.SizeMediaSpecificInfo, oob.MediaSpecificInformation) == (0, None)
    assert packet.MacReserved == bytes(32)
    assert packet.Reserved == [0, 0]
    assert packet.ProtocolReserved == bytes(pool.protocol_reserved_length)
    assert packet.extension == [None] * 12
    assert packet.ndis_route is None
    assert packet.ownership is Ownership.ALLOCATED


def test_rule_4_recycled_packet_is_reset(kernel: Kernel) -> None:
    pool = make_pool(kernel, 1, 0, 8)
    packet = take(pool)
    mdl = buffer(kernel)
    NdisChainBufferAtBack(packet, mdl)
    NdisQueryPacket(packet)
    NdisSetPacketFlags(packet, NDIS_FLAGS.DONT_LOOPBACK | 0x3)
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(packet, b"m", 1)
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, 7, "orig")
    oob = NDIS_OOB_DATA_FROM_PACKET(packet)
    oob.TimeToSend, oob.TimeReceived, oob.HeaderSize, oob.Status = 1, 2, 3, 4
    packet.MacReserved[:] = b"\xff" * 32
    packet.Reserved[:] = [5, 6]
    packet.ProtocolReserved[:] = b"\xee" * 8
    packet.ndis_route = "binding"
    NdisUnchainBufferAtFront(packet)
    NdisFreePacket(packet)
    again = take(pool)
    assert again is packet  # the same descriptor, reused
    assert len(pool.packets) == 1
    assert_fresh(again, pool)


def test_reuse_creates_no_objects_after_warm_up(kernel: Kernel) -> None:
    pool = make_pool(kernel, 4)
    warm = [take(pool) for _ in range(4)]
    for packet in warm:
        NdisFreePacket(packet)
    ids = {id(p) for p in warm}
    for _ in range(50):
        batch = [take(pool), take(pool)]
        assert {id(p) for p in batch} <= ids
        for packet in batch:
            NdisFreePacket(packet)
    assert len(pool.packets) == 4


def test_packets_created_lazily(kernel: Kernel) -> None:
    pool = make_pool(kernel, 1000)
    take(pool)
    assert len(pool.packets) == 1


def test_history_with_verifier_records_allocate_and_free() -> None:
    kernel = Kernel(verifier=True)
    pool = make_pool(kernel)
    packet = take(pool)
    assert packet.history is not None
    first = packet.history
    assert [e.event for e in first] == [Event.ALLOCATE]
    NdisFreePacket(packet)
    assert [e.event for e in first] == [Event.ALLOCATE, Event.FREE]
    again = take(pool)
    assert again is packet
    assert again.history is not first  # a fresh life
    assert [e.event for e in again.history or []] == [Event.ALLOCATE]


def test_without_the_verifier_allocate_and_free_make_the_tables_moves(kernel: Kernel) -> None:
    # NdisAllocatePacket / NdisFreePacket write the two moves out when there is no history;
    # anything but the expected source state still goes through transition(), which refuses.
    pool = make_pool(kernel, 1)
    packet = take(pool)
    assert (packet.ownership, packet.history) == (Ownership.ALLOCATED, None)
    NdisFreePacket(packet)
    assert packet.ownership is Ownership.FREE
    packet.ownership = Ownership.IN_NDIS  # corrupted on the free list (no DDI can do this)
    with pytest.raises(NdisError) as err:
        NdisAllocatePacket(pool)
    assert err.value.rule == "PY-POOL"
    assert packet.ownership is Ownership.IN_NDIS


def test_dpr_allocate_and_free_need_dispatch(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    with pytest.raises(IrqlError) as err:
        NdisDprAllocatePacket(pool)
    assert err.value.rule == "R62"
    with kernel.irql.at(DISPATCH_LEVEL):
        status, packet = NdisDprAllocatePacket(pool)
        assert status == NDIS_STATUS.SUCCESS
        assert packet is not None
    with pytest.raises(IrqlError):
        NdisDprFreePacket(packet)
    assert packet.ownership is Ownership.ALLOCATED
    with kernel.irql.at(DISPATCH_LEVEL):
        NdisDprFreePacket(packet)
        packet = take(pool)  # NdisAllocatePacket works at DISPATCH too
        NdisFreePacket(packet)
    assert NdisPacketPoolUsage(pool) == 0


def test_allocate_and_free_above_dispatch_refused(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    with kernel.irql.at(DIRQL):
        with pytest.raises(IrqlError):
            NdisAllocatePacket(pool)
        with pytest.raises(IrqlError):
            NdisFreePacket(packet)
    assert pool.outstanding == 1


@pytest.mark.parametrize("handle", [None, object(), "pool"])
def test_bad_pool_handle(kernel: Kernel, handle: object) -> None:
    with pytest.raises(NdisUsageError) as err:
        NdisAllocatePacket(handle)  # type: ignore[arg-type]
    assert err.value.rule == "PY-BAD-HANDLE"


def test_buffer_pool_is_not_a_packet_pool(kernel: Kernel) -> None:
    _, buffers = kernel.NdisAllocateBufferPool(1)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocatePacket(buffers)  # type: ignore[arg-type]
    assert err.value.rule == "PY-BAD-HANDLE"


# --- free (rule 5), double free, free in flight, wrong pool -------------------------------------


def test_rule_5_free_with_buffers_chained_refused(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    a, b = buffer(kernel, b"a"), buffer(kernel, b"b")
    NdisChainBufferAtBack(packet, a)
    NdisChainBufferAtBack(packet, b)
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(packet)
    assert err.value.rule == "R5"
    assert repr(a) in str(err.value)
    assert repr(b) in str(err.value)
    assert packet.ownership is Ownership.ALLOCATED
    assert pool.outstanding == 1
    NdisUnchainBufferAtFront(packet)
    NdisUnchainBufferAtFront(packet)
    NdisFreePacket(packet)
    assert pool.outstanding == 0


def test_double_free(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    NdisFreePacket(packet)
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(packet)
    assert err.value.rule == "PY-DOUBLE-FREE"
    assert pool.free_list.count(packet) == 1
    assert pool.outstanding == 0
    assert pool.frees == 1


@pytest.mark.parametrize(
    ("events", "rule"),
    [
        ([Event.SEND], "R48"),
        ([Event.SEND, Event.SUBMIT], "R48"),
        ([Event.SEND, Event.SUBMIT, Event.COMPLETE], "R48"),
        ([Event.INDICATE], "PY-FREE-INDICATED"),
    ],
)
def test_free_in_flight_refused(kernel: Kernel, events: list[Event], rule: str) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    for event in events:
        transition(packet, event)
    with pytest.raises(NdisError) as err:
        NdisFreePacket(packet)
    assert err.value.rule == rule
    assert pool.outstanding == 1
    assert packet not in pool.free_list


def test_free_after_completion_returns_it(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    for event in (Event.SEND, Event.SUBMIT, Event.COMPLETE, Event.RETURN):
        transition(packet, event)
    NdisFreePacket(packet)
    assert pool.outstanding == 0


def test_packet_returns_to_its_own_pool(kernel: Kernel) -> None:
    pool_a = make_pool(kernel, 2, 0, 4)
    pool_b = make_pool(kernel, 2, 0, 8)
    a, b = take(pool_a), take(pool_b)
    NdisFreePacket(b)
    assert NdisPacketPoolUsage(pool_a) == 1
    assert NdisPacketPoolUsage(pool_b) == 0
    assert pool_b.free_list == [b]
    assert pool_a.free_list == []
    assert take(pool_b) is b
    assert take(pool_a) is not b
    assert len(take(pool_b).ProtocolReserved) == 8
    NdisFreePacket(a)
    assert pool_a.free_list == [a]


def test_overwritten_pool_pointer_refused(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    packet.Private.Pool = None
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(packet)
    assert err.value.rule == "PY-BAD-HANDLE"
    assert packet.ownership is Ownership.ALLOCATED


def test_free_not_a_packet() -> None:
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(object())  # type: ignore[arg-type]
    assert err.value.rule == "PY-BAD-HANDLE"


def test_zeroed_packet_cannot_be_freed_and_stays_outstanding(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    NdisZeroMemory(packet)
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(packet)
    assert err.value.rule == "PY-ZEROED-PACKET"
    assert "NDIS_OOB_DATA_FROM_PACKET" in str(err.value)
    assert NdisPacketPoolUsage(pool) == 1
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreePacketPool(pool)
    assert err.value.rule == "R6"
    assert "destroyed by NdisZeroMemory" in str(err.value)


# --- pool free (rule 6) -------------------------------------------------------------------------


def test_rule_6_free_pool_with_packets_outstanding_lists_them() -> None:
    kernel = Kernel(verifier=True)
    pool = make_pool(kernel)
    kept = take(pool)
    freed = take(pool)
    NdisFreePacket(freed)
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreePacketPool(pool)
    assert err.value.rule == "R6"
    text = str(err.value)
    assert repr(kept) in text
    assert "1 packet(s)" in text
    assert "allocate: FREE -> ALLOCATED" in text
    assert [e.event for e in err.value.history] == [Event.ALLOCATE]
    assert not pool.freed
    NdisFreePacket(kept)
    kernel.NdisFreePacketPool(pool)
    assert pool not in kernel.pools
    assert pool.freed


def test_rule_6_leak_listing_is_bounded(kernel: Kernel) -> None:
    pool = make_pool(kernel, 20)
    for _ in range(20):
        take(pool)
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreePacketPool(pool)
    assert "20 packet(s)" in str(err.value)
    assert "and 12 more" in str(err.value)


def test_rule_6_handle_invalid_after_free(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    NdisFreePacket(packet)
    kernel.NdisFreePacketPool(pool)
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreePacketPool(pool)
    assert err.value.rule == "PY-BAD-HANDLE"
    for use in (NdisAllocatePacket, NdisPacketPoolUsage):
        with pytest.raises(NdisUsageError) as err:
            use(pool)
        assert err.value.rule == "PY-BAD-HANDLE"
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(packet)  # a stale pointer to a packet of the freed pool
    assert err.value.rule == "PY-DOUBLE-FREE"


# --- NdisReinitializePacket (rule 7) ------------------------------------------------------------


def test_rule_7_reinitialize_keeps_flags_oob_reserved(kernel: Kernel) -> None:
    pool = make_pool(kernel, 1, 0, 4)
    packet = take(pool)
    a, b = buffer(kernel, b"abc"), buffer(kernel, b"de")
    NdisChainBufferAtBack(packet, a)
    NdisChainBufferAtBack(packet, b)
    NdisQueryPacket(packet)
    NdisSetPacketFlags(packet, NDIS_FLAGS.DONT_LOOPBACK)
    oob = NDIS_OOB_DATA_FROM_PACKET(packet)
    oob.Status, oob.HeaderSize = NDIS_STATUS.PENDING, 14
    packet.MacReserved[0] = 1
    packet.ProtocolReserved[0] = 2
    packet.Reserved[0] = 3
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, 3, "class")
    NdisReinitializePacket(packet)
    private = packet.Private
    assert private.Head is None
    assert private.ValidCounts is False
    assert private.Tail is b  # not touched
    assert (private.Count, private.TotalLength, private.PhysicalCount) == (2, 5, 2)  # stale
    assert private.Flags == NDIS_FLAGS.DONT_LOOPBACK
    assert private.NdisPacketFlags == fPACKET.ALLOCATED_BY_NDIS
    assert (oob.Status, oob.HeaderSize) == (NDIS_STATUS.PENDING, 14)
    assert (packet.MacReserved[0], packet.ProtocolReserved[0], packet.Reserved[0]) == (1, 2, 3)
    assert packet.extension[3] == "class"
    assert NdisQueryPacket(packet) == (0, 0, None, 0)
    NdisChainBufferAtBack(packet, buffer(kernel, b"new"))
    assert packet.Private.Tail is packet.Private.Head


def test_rule_7_reinitialize_lost_buffers_are_freeable_through_saved_pointer(
    kernel: Kernel,
) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    a, b = buffer(kernel, b"abc"), buffer(kernel, b"de")
    NdisChainBufferAtBack(packet, a)
    NdisChainBufferAtBack(packet, b)
    saved = packet.Private.Head
    NdisReinitializePacket(packet)
    assert a.packet is None
    assert b.packet is None
    assert saved is a
    assert a.Next is b  # the old chain is still walkable from the saved pointer
    mdl: MDL | None = saved
    while mdl is not None:
        nxt = mdl.Next
        NdisFreeBuffer(mdl)
        mdl = nxt
    NdisFreePacket(packet)
    kernel.NdisFreeBufferPool(buffers(kernel))


def test_rule_7_reinitialize_lost_buffers_show_as_buffer_pool_leak(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    lost = buffer(kernel, b"lost")
    NdisChainBufferAtBack(packet, lost)
    NdisReinitializePacket(packet)
    NdisFreePacket(packet)  # allowed: no buffer is chained any more
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreeBufferPool(buffers(kernel))
    assert err.value.rule == "PY-POOL-LEAK"
    assert repr(lost) in str(err.value)


def test_rule_7_reinitialize_leaves_buffers_chained_elsewhere_alone(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    p1, p2 = take(pool), take(pool)
    a, b = buffer(kernel, b"a"), buffer(kernel, b"b")
    NdisChainBufferAtBack(p1, a)
    NdisUnchainBufferAtFront(p1)
    NdisChainBufferAtBack(p2, a)
    NdisChainBufferAtBack(p1, b)
    p1.Private.Head = a  # a corrupted chain: p1 points at a buffer p2 owns
    NdisReinitializePacket(p1)
    assert a.packet is p2


def test_rule_7_reinitialize_refused_unless_owned(kernel: Kernel) -> None:
    pool = make_pool(kernel)
    packet = take(pool)
    transition(packet, Event.SEND)
    with pytest.raises(NdisUsageError) as err:
        NdisReinitializePacket(packet)
    assert err.value.rule == "PY-REINIT-NOT-OWNED"
    freed = take(pool)
    NdisFreePacket(freed)
    with pytest.raises(NdisUsageError) as err:
        NdisReinitializePacket(freed)
    assert err.value.rule == "PY-USE-AFTER-FREE"
    zeroed = take(pool)
    NdisZeroMemory(zeroed)
    with pytest.raises(NdisUsageError) as err:
        NdisReinitializePacket(zeroed)
    assert err.value.rule == "PY-ZEROED-PACKET"


# --- NdisPacketSize -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reserved", "size"), [(0, 96 + 136), (1, 112 + 136), (16, 112 + 136), (17, 128 + 136)]
)
def test_packet_size_arithmetic(kernel: Kernel, reserved: int, size: int) -> None:
    assert NdisPacketSize(reserved) == size
    assert make_pool(kernel, 1, 0, reserved).oob_offset == size - 136


def test_packet_size_negative_refused() -> None:
    with pytest.raises(NdisUsageError):
        NdisPacketSize(-1)


# --- threads ------------------------------------------------------------------------------------


def test_pool_is_thread_safe(kernel: Kernel) -> None:
    pool = make_pool(kernel, 3, 2)
    holders: dict[int, int] = {}
    guard = threading.Lock()
    errors: list[BaseException] = []
    peak = 0

    def worker(me: int) -> None:
        nonlocal peak
        try:
            for _ in range(1000):
                status, packet = NdisAllocatePacket(pool)
                if packet is None:
                    assert status == NDIS_STATUS.RESOURCES
                    continue
                with guard:
                    assert id(packet) not in holders, "one packet handed to two threads"
                    holders[id(packet)] = me
                    peak = max(peak, len(holders))
                with guard:
                    del holders[id(packet)]
                NdisFreePacket(packet)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert peak <= 5
    assert pool.outstanding == 0
    assert pool.allocations == pool.frees
    assert pool.allocations + pool.failures == 4000
    assert len(pool.packets) <= 5
    assert sorted(map(id, pool.free_list)) == sorted(map(id, pool.packets))
