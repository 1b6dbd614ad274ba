"""Tests for pyndis.packet: NDIS_PACKET, its OOB block and extension, and the packet macros."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyndis.constants import (
    NDIS_FLAGS,
    PAGE_SIZE,
    Ieee8021QInfo,
    MaxPerPacketInfo,
    OriginalNetBufferList,
    TcpIpChecksumPacketInfo,
    fPACKET,
)
from pyndis.errors import Culprit, NdisError, NdisUsageError, ProtocolContractError
from pyndis.hostctx import HostContext
from pyndis.mdl import MDL, BufferDdis, BufferPool, NdisAllocateBuffer, NdisFreeBuffer
from pyndis.ownership import Event, Ownership, transition
from pyndis.packet import (
    MAC_RESERVED_SIZE,
    NDIS_GET_PACKET_HEADER_SIZE,
    NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_GET_PACKET_STATUS,
    NDIS_GET_PACKET_TIME_RECEIVED,
    NDIS_GET_PACKET_TIME_SENT,
    NDIS_GET_PACKET_TIME_TO_SEND,
    NDIS_OOB_DATA_FROM_PACKET,
    NDIS_PACKET,
    NDIS_PACKET_EXTENSION_FROM_PACKET,
    NDIS_PACKET_OOB_DATA,
    NDIS_PACKET_PRIVATE,
    NDIS_PER_PACKET_INFO_FROM_PACKET,
    NDIS_SET_PACKET_HEADER_SIZE,
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_SET_PACKET_STATUS,
    NDIS_SET_PACKET_TIME_RECEIVED,
    NDIS_SET_PACKET_TIME_SENT,
    NDIS_SET_PACKET_TIME_TO_SEND,
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET,
    NdisChainBufferAtBack,
    NdisChainBufferAtFront,
    NdisClearPacketFlags,
    NdisCopyFromPacketToPacket,
    NdisGetFirstBufferFromPacket,
    NdisGetFirstBufferFromPacketSafe,
    NdisGetPacketFlags,
    NdisQueryPacket,
    NdisQueryPacketLength,
    NdisSetPacketFlags,
    NdisUnchainBufferAtBack,
    NdisUnchainBufferAtFront,
    NdisZeroMemory,
    check_packet,
    iter_packet_buffers,
    packet_bytes,
)
from pyndis.pools import NdisAllocatePacket, NdisFreePacket, PacketPool, PacketPoolDdis
from pyndis.status import NDIS_STATUS


class Kernel(HostContext, BufferDdis, PacketPoolDdis):
    """The slice of the Ndis kernel that descriptors need."""


class Env:
    """A kernel with one packet pool and one buffer pool."""

    def __init__(self, verifier: bool = False) -> None:
        self.kernel = Kernel(verifier=verifier)
        _, pool = self.kernel.NdisAllocatePacketPool(8, 16)
        assert pool is not None
        self.pool: PacketPool = pool
        _, self.buffers = self.kernel.NdisAllocateBufferPool(64)

    def packet(self) -> NDIS_PACKET:
        status, packet = NdisAllocatePacket(self.pool)
        assert status == NDIS_STATUS.SUCCESS
        assert packet is not None
        return packet

    def buffer(self, data: bytes | bytearray | int) -> MDL:
        memory = bytearray(data) if not isinstance(data, bytearray) else data
        return buffer_from(self.buffers, memory)


def buffer_from(pool: BufferPool, memory: Any) -> MDL:
    status, mdl = NdisAllocateBuffer(pool, memory, len(memory))
    assert status == NDIS_STATUS.SUCCESS
    assert mdl is not None
    return mdl


def chain(*mdls: MDL) -> MDL:
    """Link MDLs through Next into one sub-chain; return its first."""
    for a, b in itertools.pairwise(mdls):
        a.Next = b
    return mdls[0]


@pytest.fixture
def env() -> Env:
    return Env()


# --- structures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [NDIS_PACKET_PRIVATE, NDIS_PACKET_OOB_DATA])
def test_structs_use_slots(cls: type) -> None:
    assert not hasattr(cls(), "__dict__")


def test_packet_uses_slots(env: Env) -> None:
    packet = env.packet()
    assert not hasattr(packet, "__dict__")
    with pytest.raises(AttributeError):
        packet.Bogus = 1  # type: ignore[attr-defined]


def test_reserved_union_views_share_mac_reserved(env: Env) -> None:
    packet = env.packet()
    assert len(packet.MacReserved) == MAC_RESERVED_SIZE == 32
    assert len(packet.MiniportReserved) == 16
    assert len(packet.WrapperReserved) == 16
    assert len(packet.MiniportReservedEx) == 24
    assert len(packet.WrapperReservedEx) == 8
    packet.MiniportReserved[0] = 1
    packet.WrapperReserved[0] = 2
    packet.WrapperReservedEx[0] = 3
    assert packet.MacReserved[0] == 1
    assert packet.MacReserved[16] == 2
    assert packet.MacReserved[24] == 3
    assert packet.MiniportReservedEx[16] == 2
    assert packet.WrapperReserved[8] == 3
    assert packet.Reserved == [0, 0]
    assert len(packet.ProtocolReserved) == 16


def test_oob_time_sent_is_time_to_send() -> None:
    oob = NDIS_PACKET_OOB_DATA()
    oob.TimeToSend = 5
    assert oob.TimeSent == 5
    oob.TimeSent = 9
    assert oob.TimeToSend == 9
    assert "TimeToSend=9" in repr(oob)


def test_packet_repr(env: Env) -> None:
    packet = env.packet()
    assert "ALLOCATED" in repr(packet)
    assert "len=" not in repr(packet)  # counts not valid yet
    NdisChainBufferAtBack(packet, env.buffer(b"abc"))
    NdisQueryPacket(packet)
    assert "len=3" in repr(packet)
    assert f"0x{id(packet):x}" in repr(packet)
    assert "Head=" in repr(packet.Private)


def test_ndis_route_slot_declared_and_none(env: Env) -> None:
    packet = env.packet()
    assert packet.ndis_route is None
    packet.ndis_route = "binding"
    assert packet.ndis_route == "binding"


# --- chaining (rules 9, 10) ---------------------------------------------------------------------


def test_rule_9_chain_back_subchain_sets_tail_to_last(env: Env) -> None:
    packet = env.packet()
    a, b, c = env.buffer(b"a"), env.buffer(b"bb"), env.buffer(b"ccc")
    packet.Private.ValidCounts = True
    NdisChainBufferAtBack(packet, a)
    assert packet.Private.Head is a
    assert packet.Private.Tail is a
    assert packet.Private.ValidCounts is False
    packet.Private.ValidCounts = True
    NdisChainBufferAtBack(packet, chain(b, c))
    assert packet.Private.Head is a
    assert packet.Private.Tail is c
    assert a.Next is b
    assert packet.Private.ValidCounts is False
    assert all(m.packet is packet for m in (a, b, c))


def test_rule_9_chain_front_sets_tail_only_if_empty(env: Env) -> None:
    packet = env.packet()
    a, b, c = env.buffer(b"a"), env.buffer(b"bb"), env.buffer(b"ccc")
    NdisChainBufferAtFront(packet, chain(b, c))
    assert packet.Private.Head is b
    assert packet.Private.Tail is c
    packet.Private.ValidCounts = True
    NdisChainBufferAtFront(packet, a)
    assert packet.Private.Head is a
    assert packet.Private.Tail is c  # unchanged: the packet was not empty
    assert a.Next is b
    assert packet.Private.ValidCounts is False
    assert packet_bytes(packet) == b"abbccc"


def test_chain_refuses_buffer_already_chained(env: Env) -> None:
    p1, p2 = env.packet(), env.packet()
    a = env.buffer(b"a")
    NdisChainBufferAtBack(p1, a)
    for target in (p1, p2):
        for op in (NdisChainBufferAtBack, NdisChainBufferAtFront):
            with pytest.raises(NdisUsageError) as err:
                op(target, a)
            assert err.value.rule == "PY-BUFFER-CHAINED"
    assert a.packet is p1
    assert p2.Private.Head is None
    assert NdisQueryPacket(p1)[1] == 1


def test_chain_refusal_undoes_partial_subchain(env: Env) -> None:
    p1, p2 = env.packet(), env.packet()
    x = env.buffer(b"x")
    NdisChainBufferAtBack(p1, x)
    a, b = env.buffer(b"a"), env.buffer(b"b")
    chain(a, b, x)  # x belongs to p1
    with pytest.raises(NdisUsageError):
        NdisChainBufferAtBack(p2, a)
    assert a.packet is None
    assert b.packet is None
    assert x.packet is p1
    assert p2.Private.Head is None


def test_chain_refuses_cycle(env: Env) -> None:
    packet = env.packet()
    a, b = env.buffer(b"a"), env.buffer(b"b")
    chain(a, b)
    b.Next = a
    with pytest.raises(NdisUsageError) as err:
        NdisChainBufferAtBack(packet, a)
    assert err.value.rule == "PY-BUFFER-CHAINED"
    assert a.packet is None
    assert b.packet is None


def test_chain_refuses_freed_buffer_and_non_buffer(env: Env) -> None:
    packet = env.packet()
    a = env.buffer(b"a")
    NdisFreeBuffer(a)
    with pytest.raises(NdisUsageError) as err:
        NdisChainBufferAtBack(packet, a)
    assert err.value.rule == "PY-USE-AFTER-FREE"
    with pytest.raises(NdisUsageError) as err:
        NdisChainBufferAtFront(packet, b"raw bytes")  # type: ignore[arg-type]
    assert err.value.rule == "PY-BAD-HANDLE"


def test_rule_10_unchain_empty_returns_none(env: Env) -> None:
    packet = env.packet()
    packet.Private.ValidCounts = True
    assert NdisUnchainBufferAtFront(packet) is None
    assert NdisUnchainBufferAtBack(packet) is None


def test_rule_10_unchain_front_detaches_one(env: Env) -> None:
    packet = env.packet()
    a, b = env.buffer(b"a"), env.buffer(b"bb")
    NdisChainBufferAtBack(packet, chain(a, b))
    NdisQueryPacket(packet)
    assert NdisUnchainBufferAtFront(packet) is a
    assert packet.Private.ValidCounts is False
    assert a.Next is None
    assert a.packet is None
    assert packet.Private.Head is b
    assert packet.Private.Tail is b
    assert NdisUnchainBufferAtFront(packet) is b
    assert NdisQueryPacket(packet)[2] is None
    NdisFreeBuffer(a)  # unchained buffers can be freed
    NdisFreeBuffer(b)


def test_rule_10_unchain_back_detaches_one(env: Env) -> None:
    packet = env.packet()
    a, b, c = env.buffer(b"a"), env.buffer(b"bb"), env.buffer(b"c")
    NdisChainBufferAtBack(packet, chain(a, b, c))
    NdisQueryPacket(packet)
    assert NdisUnchainBufferAtBack(packet) is c
    assert packet.Private.ValidCounts is False
    assert packet.Private.Tail is b
    assert b.Next is None
    assert c.packet is None
    assert NdisUnchainBufferAtBack(packet) is b
    assert NdisUnchainBufferAtBack(packet) is a
    assert packet.Private.Head is None
    assert NdisUnchainBufferAtBack(packet) is None


# --- queries (rule 11) --------------------------------------------------------------------------


def test_rule_11_query_packet_counts(env: Env) -> None:
    packet = env.packet()
    assert NdisQueryPacket(packet) == (0, 0, None, 0)
    assert packet.Private.ValidCounts is True
    big = env.buffer(PAGE_SIZE + 10)
    small = env.buffer(b"xyz")
    empty = env.buffer(b"")
    NdisChainBufferAtBack(packet, chain(big, small, empty))
    assert NdisQueryPacket(packet) == (3, 3, big, PAGE_SIZE + 13)
    assert packet.Private.Count == 3
    assert packet.Private.TotalLength == PAGE_SIZE + 13
    assert packet.Private.PhysicalCount == 3


def test_rule_11_query_uses_cache_while_valid(env: Env) -> None:
    packet = env.packet()
    mdl = env.buffer(b"abcd")
    NdisChainBufferAtBack(packet, mdl)
    assert NdisQueryPacket(packet)[3] == 4
    mdl.ByteCount = 2  # behind the packet's back: the cache is not refreshed
    assert NdisQueryPacket(packet)[3] == 4
    assert NdisQueryPacketLength(packet) == 4
    packet.Private.ValidCounts = False
    assert NdisQueryPacketLength(packet) == 2
    assert packet.Private.ValidCounts is True


def test_get_first_buffer_from_packet(env: Env) -> None:
    packet = env.packet()
    assert NdisGetFirstBufferFromPacket(packet) == (None, None, 0, 0)
    memory = bytearray(b"head")
    first = env.buffer(memory)
    NdisChainBufferAtBack(packet, chain(first, env.buffer(b"tail!")))
    mdl, va, first_length, total = NdisGetFirstBufferFromPacket(packet)
    assert mdl is first
    assert va is not None
    assert (first_length, total) == (4, 9)
    memory[0] = ord("H")
    assert bytes(va) == b"Head"  # a view, not a copy
    assert packet.Private.ValidCounts is False  # it does not touch the cache
    assert NdisGetFirstBufferFromPacketSafe(packet)[2:] == (4, 9)


def test_iter_packet_buffers_and_packet_bytes(env: Env) -> None:
    packet = env.packet()
    a, b = env.buffer(b"ab"), env.buffer(b"cd")
    NdisChainBufferAtBack(packet, chain(a, b))
    assert list(iter_packet_buffers(packet)) == [a, b]
    data = packet_bytes(packet)
    assert data == b"abcd"
    assert isinstance(data, bytes)


SIZES = st.lists(st.integers(0, 3 * PAGE_SIZE), min_size=1, max_size=3)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("front"), SIZES),
        st.tuples(st.just("back"), SIZES),
        st.tuples(st.just("unfront"), st.just([])),
        st.tuples(st.just("unback"), st.just([])),
        st.tuples(st.just("query"), st.just([])),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(ops=OPS)
def test_rule_9_10_11_random_chain_unchain_keeps_counts(ops: list[tuple[str, list[int]]]) -> None:
    env = Env()
    _, env.buffers = env.kernel.NdisAllocateBufferPool(len(ops) * 3 + 1)
    packet = env.packet()
    model: list[MDL] = []
    for op, sizes in ops:
        if op in ("front", "back"):
            sub = [env.buffer(bytearray(n)) for n in sizes]
            chain(*sub)
            if op == "front":
                NdisChainBufferAtFront(packet, sub[0])
                model[:0] = sub
            else:
                NdisChainBufferAtBack(packet, sub[0])
                model.extend(sub)
            assert packet.Private.ValidCounts is False
        elif op == "unfront":
            got = NdisUnchainBufferAtFront(packet)
            assert got is (model.pop(0) if model else None)
        elif op == "unback":
            got = NdisUnchainBufferAtBack(packet)
            assert got is (model.pop() if model else None)
        physical, count, first, total = NdisQueryPacket(packet)
        assert count == len(model)
        assert total == sum(m.ByteCount for m in model)
        assert physical == sum(-(-m.ByteCount // PAGE_SIZE) for m in model)
        assert first is (model[0] if model else None)
        assert list(iter_packet_buffers(packet)) == model
        if model:
            assert packet.Private.Tail is model[-1]
        assert all(m.packet is packet for m in model)
    assert sum(1 for m in env.buffers.live if m.packet is packet) == len(model)


# --- flags (rule 15) ----------------------------------------------------------------------------


def test_rule_15_set_packet_flags_ors_never_clears(env: Env) -> None:
    packet = env.packet()
    assert NdisGetPacketFlags(packet) == 0
    NdisSetPacketFlags(packet, NDIS_FLAGS.DONT_LOOPBACK)
    NdisSetPacketFlags(packet, NDIS_FLAGS.MULTICAST_PACKET)
    NdisSetPacketFlags(packet, 0)
    assert NdisGetPacketFlags(packet) == NDIS_FLAGS.DONT_LOOPBACK | NDIS_FLAGS.MULTICAST_PACKET
    NdisClearPacketFlags(packet, NDIS_FLAGS.DONT_LOOPBACK)
    assert NdisGetPacketFlags(packet) == NDIS_FLAGS.MULTICAST_PACKET
    assert packet.Private.Flags == NDIS_FLAGS.MULTICAST_PACKET


# --- OOB data (rules 12-14) ---------------------------------------------------------------------


def test_rule_12_oob_reached_through_macro_and_accessors(env: Env) -> None:
    packet = env.packet()
    oob = NDIS_OOB_DATA_FROM_PACKET(packet)
    assert isinstance(oob, NDIS_PACKET_OOB_DATA)
    NDIS_SET_PACKET_STATUS(packet, NDIS_STATUS.RESOURCES)
    NDIS_SET_PACKET_TIME_RECEIVED(packet, 7)
    NDIS_SET_PACKET_HEADER_SIZE(packet, 14)
    assert oob.Status == NDIS_STATUS.RESOURCES
    assert NDIS_GET_PACKET_STATUS(packet) == NDIS_STATUS.RESOURCES
    assert NDIS_GET_PACKET_TIME_RECEIVED(packet) == oob.TimeReceived == 7
    assert NDIS_GET_PACKET_HEADER_SIZE(packet) == oob.HeaderSize == 14


def test_rule_14_time_to_send_and_time_sent_share_a_field(env: Env) -> None:
    packet = env.packet()
    NDIS_SET_PACKET_TIME_TO_SEND(packet, 1000)
    assert NDIS_GET_PACKET_TIME_TO_SEND(packet) == 1000
    assert NDIS_GET_PACKET_TIME_SENT(packet) == 1000
    NDIS_SET_PACKET_TIME_SENT(packet, 2000)
    assert NDIS_GET_PACKET_TIME_TO_SEND(packet) == 2000


def test_rule_13_media_specific_info_set_and_get(env: Env) -> None:
    packet = env.packet()
    assert NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet) == (None, 0)
    info = bytearray(b"priority")
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(packet, info, len(info))
    assert packet.Private.NdisPacketFlags & fPACKET.CONTAINS_MEDIA_SPECIFIC_INFO
    assert NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet) == (info, 8)
    oob = NDIS_OOB_DATA_FROM_PACKET(packet)
    assert oob.MediaSpecificInformation is info
    assert oob.SizeMediaSpecificInfo == 8


@pytest.mark.parametrize(("info", "size"), [(None, 4), (b"x", 0), (b"x", -1)])
def test_rule_13_media_specific_info_needs_pointer_and_size(
    env: Env, info: object, size: int
) -> None:
    packet = env.packet()
    with pytest.raises(NdisUsageError) as err:
        NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(packet, info, size)
    assert err.value.rule == "R13"
    assert not packet.Private.NdisPacketFlags & fPACKET.CONTAINS_MEDIA_SPECIFIC_INFO


def test_rule_13_media_specific_info_ignored_without_allocated_by_ndis(env: Env) -> None:
    packet = env.packet()
    packet.Private.NdisPacketFlags = 0
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(packet, b"info", 4)
    assert packet.Private.NdisPacketFlags == 0
    assert NDIS_OOB_DATA_FROM_PACKET(packet).MediaSpecificInformation is None
    assert NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet) == (None, 0)


def test_rule_13_get_needs_both_bits(env: Env) -> None:
    packet = env.packet()
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(packet, b"info", 4)
    packet.Private.NdisPacketFlags &= ~fPACKET.CONTAINS_MEDIA_SPECIFIC_INFO
    assert NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet) == (None, 0)
    packet.Private.NdisPacketFlags = fPACKET.CONTAINS_MEDIA_SPECIFIC_INFO
    assert NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet) == (None, 0)
    packet.Private.NdisPacketFlags |= fPACKET.ALLOCATED_BY_NDIS
    assert NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(packet) == (b"info", 4)


# --- per-packet extension -----------------------------------------------------------------------


def test_per_packet_info_get_and_set(env: Env) -> None:
    packet = env.packet()
    extension = NDIS_PACKET_EXTENSION_FROM_PACKET(packet)
    assert extension == [None] * MaxPerPacketInfo == [None] * 12
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, Ieee8021QInfo, 0x0123)
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, 11, "padding")
    assert NDIS_PER_PACKET_INFO_FROM_PACKET(packet, Ieee8021QInfo) == 0x0123
    assert NDIS_PER_PACKET_INFO_FROM_PACKET(packet, 11) == "padding"
    assert extension[6] == 0x0123
    assert NDIS_PER_PACKET_INFO_FROM_PACKET(packet, OriginalNetBufferList) is None
    assert NDIS_PER_PACKET_INFO_FROM_PACKET(packet, TcpIpChecksumPacketInfo) is None


@pytest.mark.parametrize("bad", [-1, MaxPerPacketInfo, 100])
def test_per_packet_info_bad_type(env: Env, bad: int) -> None:
    packet = env.packet()
    with pytest.raises(NdisUsageError) as err:
        NDIS_PER_PACKET_INFO_FROM_PACKET(packet, bad)
    assert err.value.rule == "PY-BAD-INFO-TYPE"
    with pytest.raises(NdisUsageError):
        NDIS_SET_PER_PACKET_INFO_FROM_PACKET(packet, bad, 1)
    assert packet.extension == [None] * 12


# --- NdisCopyFromPacketToPacket -----------------------------------------------------------------


def build(env: Env, data: bytes, cuts: list[int]) -> NDIS_PACKET:
    """A packet holding ``data`` split at ``cuts`` into separate buffers."""
    packet = env.packet()
    edges = sorted({0, len(data), *(c for c in cuts if 0 < c < len(data))})
    for lo, hi in itertools.pairwise(edges):
        NdisChainBufferAtBack(packet, env.buffer(bytearray(data[lo:hi])))
    return packet


def test_copy_between_packets(env: Env) -> None:
    src = build(env, b"0123456789", [3, 4, 8])
    dst = build(env, b"abcdefghij", [5])
    assert NdisCopyFromPacketToPacket(dst, 2, 5, src, 1) == 5
    assert packet_bytes(dst) == b"ab12345hij"
    assert packet_bytes(src) == b"0123456789"


def test_copy_stops_at_chain_end(env: Env) -> None:
    src = build(env, b"0123", [])
    dst = build(env, b"abcdef", [2])
    assert NdisCopyFromPacketToPacket(dst, 0, 100, src, 2) == 2
    assert packet_bytes(dst) == b"23cdef"
    assert NdisCopyFromPacketToPacket(dst, 6, 10, src, 0) == 0
    assert NdisCopyFromPacketToPacket(dst, 0, 10, src, 4) == 0
    assert NdisCopyFromPacketToPacket(dst, 0, 0, src, 0) == 0
    empty = env.packet()
    assert NdisCopyFromPacketToPacket(empty, 0, 4, src, 0) == 0


def test_copy_into_readonly_buffer_refused(env: Env) -> None:
    src = build(env, b"0123", [])
    dst = env.packet()
    NdisChainBufferAtBack(dst, buffer_from(env.buffers, b"read-only"))
    with pytest.raises(NdisUsageError) as err:
        NdisCopyFromPacketToPacket(dst, 0, 4, src, 0)
    assert err.value.rule == "PY-READONLY-BUFFER"


def test_copy_negative_arguments_refused(env: Env) -> None:
    src = build(env, b"0123", [])
    with pytest.raises(NdisUsageError) as err:
        NdisCopyFromPacketToPacket(src, 0, -1, src, 0)
    assert err.value.rule == "PY-BAD-ARGUMENT"


@settings(max_examples=150, deadline=None)
@given(
    src_data=st.binary(max_size=40),
    dst_len=st.integers(0, 40),
    src_cuts=st.lists(st.integers(0, 40), max_size=5),
    dst_cuts=st.lists(st.integers(0, 40), max_size=5),
    src_off=st.integers(0, 45),
    dst_off=st.integers(0, 45),
    count=st.integers(0, 50),
)
def test_copy_matches_slicing_model(
    src_data: bytes,
    dst_len: int,
    src_cuts: list[int],
    dst_cuts: list[int],
    src_off: int,
    dst_off: int,
    count: int,
) -> None:
    env = Env()
    src = build(env, src_data, src_cuts)
    dst_data = bytes(range(100, 100 + dst_len))
    dst = build(env, dst_data, dst_cuts)
    expected = max(0, min(count, len(src_data) - src_off, dst_len - dst_off))
    assert NdisCopyFromPacketToPacket(dst, dst_off, count, src, src_off) == expected
    model = bytearray(dst_data)
    model[dst_off : dst_off + expected] = src_data[src_off : src_off + expected]
    assert packet_bytes(dst) == bytes(model)


# --- NdisZeroMemory -----------------------------------------------------------------------------


def test_zero_memory_on_oob_clears_every_field(env: Env) -> None:
    packet = env.packet()
    oob = NDIS_OOB_DATA_FROM_PACKET(packet)
    oob.TimeToSend, oob.TimeReceived, oob.HeaderSize = 1, 2, 3
    oob.SizeMediaSpecificInfo, oob.Status = 4, 5
    oob.MediaSpecificInformation = b"m"
    NdisZeroMemory(oob)
    assert repr(oob) == repr(NDIS_PACKET_OOB_DATA())
    assert NDIS_OOB_DATA_FROM_PACKET(packet).MediaSpecificInformation is None
    assert packet.ownership is Ownership.ALLOCATED  # the packet is fine
    NdisFreePacket(packet)


def test_zero_memory_on_bytes() -> None:
    memory = bytearray(b"abcdef")
    NdisZeroMemory(memory, 2)
    assert memory == b"\0\0cdef"
    NdisZeroMemory(memoryview(memory)[4:])
    assert memory == b"\0\0cd\0\0"
    NdisZeroMemory(memory)
    assert memory == bytes(6)
    with pytest.raises(NdisUsageError) as err:
        NdisZeroMemory(memory, 7)
    assert err.value.rule == "PY-BUFFER-RANGE"
    with pytest.raises(NdisUsageError) as err:
        NdisZeroMemory(memoryview(b"const"))
    assert err.value.rule == "PY-READONLY-BUFFER"
    with pytest.raises(NdisUsageError) as err:
        NdisZeroMemory(b"const")
    assert err.value.rule == "PY-BAD-ARGUMENT"


def zeroed_uses(env: Env) -> list[tuple[str, Callable[[NDIS_PACKET], object]]]:
    other = env.packet()
    return [
        ("free", NdisFreePacket),
        ("query", NdisQueryPacket),
        ("query length", NdisQueryPacketLength),
        ("first buffer", NdisGetFirstBufferFromPacket),
        ("chain back", lambda p: NdisChainBufferAtBack(p, env.buffer(b"x"))),
        ("chain front", lambda p: NdisChainBufferAtFront(p, env.buffer(b"x"))),
        ("unchain", NdisUnchainBufferAtFront),
        ("unchain back", NdisUnchainBufferAtBack),
        ("flags", NdisGetPacketFlags),
        ("set flags", lambda p: NdisSetPacketFlags(p, 1)),
        ("clear flags", lambda p: NdisClearPacketFlags(p, 1)),
        ("oob", NDIS_OOB_DATA_FROM_PACKET),
        ("status", NDIS_GET_PACKET_STATUS),
        ("set status", lambda p: NDIS_SET_PACKET_STATUS(p, 0)),
        ("time", NDIS_GET_PACKET_TIME_TO_SEND),
        ("msi", NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO),
        ("extension", NDIS_PACKET_EXTENSION_FROM_PACKET),
        ("info", lambda p: NDIS_PER_PACKET_INFO_FROM_PACKET(p, 0)),
        ("copy to", lambda p: NdisCopyFromPacketToPacket(p, 0, 1, other, 0)),
        ("copy from", lambda p: NdisCopyFromPacketToPacket(other, 0, 1, p, 0)),
        ("bytes", packet_bytes),
        ("check", lambda p: check_packet(p, "library")),
    ]


def test_zero_memory_on_packet_destroys_it_detectably(env: Env) -> None:
    packet = env.packet()
    mdl = env.buffer(b"data")
    NdisChainBufferAtBack(packet, mdl)
    packet.MiniportReserved[0] = 9
    NdisZeroMemory(packet)
    assert packet.ownership is Ownership.DESTROYED
    assert packet.Private.Pool is None
    assert packet.Private.Head is None
    assert packet.Private.NdisPacketFlags == 0
    assert packet.Private.NdisPacketOobOffset == 0
    assert packet.MacReserved == bytes(32)
    assert mdl.packet is None  # the buffer is no longer chained: it can be freed
    NdisFreeBuffer(mdl)
    for name, use in zeroed_uses(env):
        with pytest.raises(NdisError) as err:
            use(packet)
        assert err.value.rule == "PY-ZEROED-PACKET", name
        assert "NDIS_OOB_DATA_FROM_PACKET" in str(err.value), name


def test_zeroed_packet_send_refused_with_zeroed_rule(env: Env) -> None:
    packet = env.packet()
    NdisZeroMemory(packet)
    with pytest.raises(NdisError) as err:
        transition(packet, Event.SEND)
    assert err.value.rule == "PY-ZEROED-PACKET"
    assert "NDIS_OOB_DATA_FROM_PACKET" in str(err.value)


def test_zero_memory_twice_is_harmless_but_freed_packet_refused(env: Env) -> None:
    packet = env.packet()
    NdisZeroMemory(packet)
    NdisZeroMemory(packet)
    assert packet.ownership is Ownership.DESTROYED
    freed = env.packet()
    NdisFreePacket(freed)
    with pytest.raises(NdisUsageError) as err:
        NdisZeroMemory(freed)
    assert err.value.rule == "PY-USE-AFTER-FREE"
    assert freed.ownership is Ownership.FREE


# --- use after free -----------------------------------------------------------------------------


def test_macros_refuse_freed_packet(env: Env) -> None:
    packet = env.packet()
    uses = zeroed_uses(env)  # allocates its helper packet before the pool can recycle ours
    NdisFreePacket(packet)
    for name, use in uses:
        if name == "free":
            continue  # a second free is PY-DOUBLE-FREE (tests/test_pools.py)
        with pytest.raises(NdisUsageError) as err:
            use(packet)
        assert err.value.rule == "PY-USE-AFTER-FREE", name


def test_packet_not_from_a_pool_refused() -> None:
    packet = NDIS_PACKET(0)
    with pytest.raises(NdisUsageError) as err:
        NdisQueryPacket(packet)
    assert err.value.rule == "R40"
    with pytest.raises(NdisUsageError) as err:
        NdisFreePacket(packet)
    assert err.value.rule == "R40"


# --- OOB Status while in flight (rule 17, verifier) ---------------------------------------------


def ndis_kernel(strict: bool = False) -> Any:
    from pyndis.library.kernel import Ndis

    return Ndis(verifier=True, strict=strict)


def flagged_env(strict: bool = False) -> tuple[Any, NDIS_PACKET]:
    ndis = ndis_kernel(strict)
    _, pool = ndis.NdisAllocatePacketPool(2, 0)
    _, packet = NdisAllocatePacket(pool)
    assert packet is not None
    NDIS_SET_PACKET_STATUS(packet, NDIS_STATUS.PENDING)
    return ndis, packet


@pytest.mark.parametrize("actor", [Culprit.PROTOCOL, Culprit.NDIS_USER])
@pytest.mark.parametrize(
    "states", [[Event.SEND], [Event.SEND, Event.SUBMIT], [Event.SEND, Event.ABORT]]
)
def test_rule_17_protocol_reading_status_in_flight_is_flagged(
    actor: Culprit, states: list[Event]
) -> None:
    ndis, packet = flagged_env()
    for event in states:
        transition(packet, event)
    ndis.actors.append(actor)
    assert NDIS_GET_PACKET_STATUS(packet) == NDIS_STATUS.PENDING  # still read
    assert ndis.verifier.rules() == ["R17"]
    violation = ndis.verifier.check()[0]
    assert isinstance(violation, ProtocolContractError)
    assert packet.ownership.name in str(violation)
    NDIS_SET_PACKET_STATUS(packet, NDIS_STATUS.SUCCESS)
    assert ndis.verifier.rules() == ["R17", "R17"]


def test_rule_17_miniport_may_use_status_while_it_owns_packet() -> None:
    ndis, packet = flagged_env()
    transition(packet, Event.SEND)
    transition(packet, Event.SUBMIT)
    ndis.actors.append(Culprit.MINIPORT)
    NDIS_SET_PACKET_STATUS(packet, NDIS_STATUS.SUCCESS)
    assert NDIS_GET_PACKET_STATUS(packet) == NDIS_STATUS.SUCCESS
    assert ndis.verifier.check() == []


def test_rule_17_protocol_may_read_status_once_returned() -> None:
    ndis, packet = flagged_env()
    for event in (Event.SEND, Event.SUBMIT, Event.COMPLETE, Event.RETURN):
        transition(packet, event)
    ndis.actors.append(Culprit.PROTOCOL)
    assert NDIS_GET_PACKET_STATUS(packet) == NDIS_STATUS.PENDING
    assert ndis.verifier.check() == []


def test_rule_17_strict_verifier_raises() -> None:
    ndis, packet = flagged_env(strict=True)
    transition(packet, Event.SEND)
    ndis.actors.append(Culprit.PROTOCOL)
    with pytest.raises(ProtocolContractError) as err:
        NDIS_GET_PACKET_STATUS(packet)
    assert err.value.rule == "R17"
    assert [e.event for e in err.value.history] == [Event.ALLOCATE, Event.SEND]


def test_rule_17_not_checked_without_verifier(env: Env) -> None:
    packet = env.packet()
    transition(packet, Event.SEND)
    env.kernel.actors.append(Culprit.PROTOCOL)
    assert NDIS_GET_PACKET_STATUS(packet) == 0
    assert env.kernel.verifier is None
