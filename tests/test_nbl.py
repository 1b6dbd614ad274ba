"""Tests of pyndis.nbl (nbldesc + nblops): descriptors, macros, context, retreat/advance,
NdisGetDataBuffer, and the byte helpers."""

from __future__ import annotations

import itertools
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyndis.constants import DIRQL, MaxNetBufferListInfo, NetBufferListCancelId
from pyndis.errors import Culprit, IrqlError, NdisUsageError, ProtocolContractError
from pyndis.hostctx import HostContext
from pyndis.mdl import MDL, MDL_PARTIAL, BufferDdis, mdl_chain_bytes
from pyndis.nbl import (
    NDIS_GET_NET_BUFFER_LIST_CANCEL_ID,
    NDIS_SET_NET_BUFFER_LIST_CANCEL_ID,
    NET_BUFFER,
    NET_BUFFER_CURRENT_MDL,
    NET_BUFFER_CURRENT_MDL_OFFSET,
    NET_BUFFER_DATA_LENGTH,
    NET_BUFFER_DATA_OFFSET,
    NET_BUFFER_FIRST_MDL,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_CONTEXT,
    NET_BUFFER_LIST_CONTEXT_DATA_SIZE,
    NET_BUFFER_LIST_CONTEXT_DATA_START,
    NET_BUFFER_LIST_FIRST_NB,
    NET_BUFFER_LIST_FLAGS,
    NET_BUFFER_LIST_INFO,
    NET_BUFFER_LIST_INFO_SET,
    NET_BUFFER_LIST_MINIPORT_RESERVED,
    NET_BUFFER_LIST_NBL_FLAGS,
    NET_BUFFER_LIST_NEXT_NBL,
    NET_BUFFER_LIST_PROTOCOL_RESERVED,
    NET_BUFFER_LIST_STATUS,
    NET_BUFFER_LIST_STATUS_SET,
    NET_BUFFER_NEXT_NB,
    NdisAdvanceNetBufferDataStart,
    NdisAllocateNetBufferListContext,
    NdisClearNblFlag,
    NdisFreeNetBufferListContext,
    NdisGetDataBuffer,
    NdisGetPoolFromNetBufferList,
    NdisRetreatNetBufferDataStart,
    NdisRetreatNetBufferListDataStart,
    NdisSetNblFlag,
    NdisTestNblFlag,
    NdisTestNblFlags,
    check_nb,
    iter_nbls,
    iter_nbs,
    link_nbls,
    nb_bytes,
    nbl_bytes,
)
from pyndis.nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
    NblPool,
    NblPoolDdis,
    NbPool,
    NdisAllocateNetBuffer,
    NdisAllocateNetBufferAndNetBufferList,
    NdisAllocateNetBufferList,
    NdisFreeNetBuffer,
)
from pyndis.ownership import Event, Owned, Ownership, transition
from pyndis.status import NDIS_STATUS


def state(obj: Owned) -> Ownership:
    """The ownership of ``obj`` (a call, so mypy does not narrow it across statements)."""
    return obj.ownership


def context_of(nbl: NET_BUFFER_LIST) -> NET_BUFFER_LIST_CONTEXT | None:
    return nbl.Context


def next_of(context: NET_BUFFER_LIST_CONTEXT) -> NET_BUFFER_LIST_CONTEXT | None:
    return context.Next


class Host(HostContext, BufferDdis, NblPoolDdis):
    """A kernel with only the descriptor DDIs (keeps these tests off the library)."""


@pytest.fixture
def host() -> Host:
    return Host()


def nbl_pool(host: Host, **fields: object) -> NblPool:
    pool = host.NdisAllocateNetBufferListPool(None, NET_BUFFER_LIST_POOL_PARAMETERS(**fields))  # type: ignore[arg-type]
    assert pool is not None
    return pool


def nb_pool(host: Host) -> NbPool:
    pool = host.NdisAllocateNetBufferPool(None, NET_BUFFER_POOL_PARAMETERS())
    assert pool is not None
    return pool


def chain(*parts: bytes | bytearray) -> MDL:
    """A chain of pool-less MDLs over bytearrays (copies of ``parts``)."""
    mdls = [MDL(bytearray(p), len(p), None) for p in parts]
    for first, second in itertools.pairwise(mdls):
        first.Next = second
    return mdls[0]


def make_nb(host: Host, *parts: bytes, offset: int = 0, length: int | None = None) -> NET_BUFFER:
    first = chain(*parts)
    total = sum(len(p) for p in parts)
    nb = NdisAllocateNetBuffer(
        nb_pool(host), first, offset, total - offset if length is None else length
    )
    assert nb is not None
    return nb


def make_nbl(host: Host, *frames: bytes, context: int = 0) -> NET_BUFFER_LIST:
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    nbl = NdisAllocateNetBufferAndNetBufferList(
        pool, context, 0, chain(frames[0]), 0, len(frames[0])
    )
    assert nbl is not None
    tail = nbl.FirstNetBuffer
    assert tail is not None
    for frame in frames[1:]:
        tail.Next = make_nb(host, frame)
        tail = tail.Next
    return nbl


# --- descriptors and macros ----------------------------------------------------------------------


def test_fields_have_header_names_and_sizes() -> None:
    nb = NET_BUFFER()
    nbl = NET_BUFFER_LIST()
    assert len(nb.NdisReserved) == 2
    assert len(nb.ProtocolReserved) == 6
    assert len(nb.MiniportReserved) == 4
    assert (nb.ChecksumBias, nb.DataPhysicalAddress, nb.Reserved) == (0, 0, 0)
    assert len(nbl.NdisReserved) == 2
    assert len(nbl.ProtocolReserved) == 4
    assert len(nbl.MiniportReserved) == 2
    assert len(nbl.NetBufferListInfo) == MaxNetBufferListInfo == 11
    assert (nbl.ChildRefCount, nbl.Flags, nbl.NblFlags, nbl.Status) == (0, 0, 0, 0)
    assert nbl.ParentNetBufferList is None and nbl.Scratch is None and nbl.SourceHandle is None


def test_descriptors_are_slotted() -> None:
    with pytest.raises(AttributeError):
        NET_BUFFER().Bogus = 1  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        NET_BUFFER_LIST().Bogus = 1  # type: ignore[attr-defined]


def test_rule_40_hand_built_nbl_is_free_and_cannot_be_sent() -> None:
    nbl = NET_BUFFER_LIST()
    assert state(nbl) is Ownership.FREE
    with pytest.raises(ProtocolContractError) as err:
        transition(nbl, Event.SEND)
    assert err.value.rule == "R40"


def test_accessor_macros_map_to_fields(host: Host) -> None:
    nbl = make_nbl(host, b"abcdef", b"xyz")
    nb = nbl.FirstNetBuffer
    assert nb is not None
    assert NET_BUFFER_LIST_FIRST_NB(nbl) is nb
    assert NET_BUFFER_NEXT_NB(nb) is nb.Next is not None
    assert NET_BUFFER_FIRST_MDL(nb) is nb.MdlChain
    assert NET_BUFFER_CURRENT_MDL(nb) is nb.MdlChain
    assert NET_BUFFER_CURRENT_MDL_OFFSET(nb) == 0
    assert NET_BUFFER_DATA_LENGTH(nb) == 6
    assert NET_BUFFER_DATA_OFFSET(nb) == 0
    assert NET_BUFFER_LIST_NEXT_NBL(nbl) is None
    assert NET_BUFFER_LIST_PROTOCOL_RESERVED(nbl) is nbl.ProtocolReserved
    assert NET_BUFFER_LIST_MINIPORT_RESERVED(nbl) is nbl.MiniportReserved
    NET_BUFFER_LIST_PROTOCOL_RESERVED(nbl)[3] = "mine"
    assert nbl.ProtocolReserved[3] == "mine"
    nbl.Flags = 0x00100000
    assert NET_BUFFER_LIST_FLAGS(nbl) == 0x00100000
    assert NdisGetPoolFromNetBufferList(nbl) is nbl.NdisPoolHandle


def test_nbl_flag_macros(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    NdisSetNblFlag(nbl, 0x8000)
    NdisSetNblFlag(nbl, 0x200)
    assert NET_BUFFER_LIST_NBL_FLAGS(nbl) == 0x8200
    assert NdisTestNblFlag(nbl, 0x200)
    assert NdisTestNblFlags(nbl, 0x8200)
    assert not NdisTestNblFlags(nbl, 0x8201)
    NdisClearNblFlag(nbl, 0x8000)
    assert nbl.NblFlags == 0x200
    assert not NdisTestNblFlag(nbl, 0x8000)


@pytest.mark.parametrize("slot", range(11))
def test_rule_46_info_ids_0_to_10_read_and_write(host: Host, slot: int) -> None:
    nbl = make_nbl(host, b"x")
    assert NET_BUFFER_LIST_INFO(nbl, slot) is None
    NET_BUFFER_LIST_INFO_SET(nbl, slot, ("value", slot))
    assert NET_BUFFER_LIST_INFO(nbl, slot) == ("value", slot)
    assert nbl.NetBufferListInfo[slot] == ("value", slot)


@pytest.mark.parametrize("slot", [11, 12, 27, -1, "5", 2.0])
def test_rule_46_other_info_ids_are_refused(host: Host, slot: object) -> None:
    nbl = make_nbl(host, b"x")
    with pytest.raises(NdisUsageError) as err:
        NET_BUFFER_LIST_INFO(nbl, slot)  # type: ignore[arg-type]
    assert err.value.rule == "R46"
    with pytest.raises(NdisUsageError):
        NET_BUFFER_LIST_INFO_SET(nbl, slot, 1)  # type: ignore[arg-type]
    assert nbl.NetBufferListInfo == [None] * 11


def test_cancel_id_macros_use_the_cancel_id_slot(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(nbl, 0x1234)
    assert nbl.NetBufferListInfo[NetBufferListCancelId] == 0x1234
    assert NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(nbl) == 0x1234


def test_status_macro_and_setter(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    assert NET_BUFFER_LIST_STATUS(nbl) == NDIS_STATUS.SUCCESS
    NET_BUFFER_LIST_STATUS_SET(nbl, NDIS_STATUS.PAUSED)
    assert NET_BUFFER_LIST_STATUS(nbl) == NDIS_STATUS.PAUSED


def test_rule_48_sender_touching_status_in_flight_is_flagged_by_the_verifier() -> None:
    host = Host(verifier=True)
    nbl = make_nbl(host, b"x")
    transition(nbl, Event.SEND)
    NET_BUFFER_LIST_STATUS(nbl)
    NET_BUFFER_LIST_INFO(nbl, 0)
    assert host.verifier is not None
    assert host.verifier.rules() == ["R48", "R48"]
    assert all(isinstance(v, ProtocolContractError) for v in host.verifier.check())
    host.verifier.clear()
    transition(nbl, Event.SUBMIT)
    host.actors.append(Culprit.MINIPORT)  # the miniport sets the status: allowed
    NET_BUFFER_LIST_STATUS_SET(nbl, NDIS_STATUS.SUCCESS)
    host.actors.pop()
    assert host.verifier.rules() == []


def test_status_in_flight_without_verifier_is_not_an_error(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    transition(nbl, Event.SEND)
    assert NET_BUFFER_LIST_STATUS(nbl) == NDIS_STATUS.SUCCESS


def test_reprs_name_the_state(host: Host) -> None:
    nbl = make_nbl(host, b"abcd", b"ef")
    text = repr(nbl)
    assert "NET_BUFFER_LIST" in text and "nbs=2" in text and "bytes=6" in text
    assert "ALLOCATED" in text and "status=SUCCESS" in text
    nbl.Status = 0x12345678
    assert "0x12345678" in repr(nbl)
    assert "length=4" in repr(nbl.FirstNetBuffer)


# --- chains and bytes ----------------------------------------------------------------------------


def test_iter_nbls_reads_next_before_yielding(host: Host) -> None:
    nbls = [make_nbl(host, bytes([i])) for i in range(3)]
    head = link_nbls(nbls)
    seen = []
    for nbl in iter_nbls(head):
        seen.append(nbl)
        nbl.Next = None  # unlinking while walking must not cut the walk short
    assert seen == nbls


def test_link_nbls_terminates_the_chain(host: Host) -> None:
    a, b = make_nbl(host, b"a"), make_nbl(host, b"b")
    b.Next = a  # stale link from an earlier list
    assert link_nbls([a, b]) is a
    assert NET_BUFFER_LIST_NEXT_NBL(a) is b and NET_BUFFER_LIST_NEXT_NBL(b) is None
    assert link_nbls([]) is None
    assert list(iter_nbls(None)) == []


def test_nb_bytes_walks_the_chain_from_data_offset(host: Host) -> None:
    nb = make_nb(host, b"0123", b"4567", b"89", offset=3, length=6)
    assert nb.CurrentMdl is nb.MdlChain and nb.CurrentMdlOffset == 3
    assert nb_bytes(nb) == b"345678"
    empty = make_nb(host, b"abc", offset=3, length=0)
    assert nb_bytes(empty) == b""


def test_nbl_bytes_one_frame_per_nb(host: Host) -> None:
    nbl = make_nbl(host, b"first", b"second", b"3")
    assert nbl_bytes(nbl) == [b"first", b"second", b"3"]
    assert len(list(iter_nbs(nbl))) == 3


def test_nb_bytes_detects_length_past_the_chain(host: Host) -> None:
    nb = make_nb(host, b"abc")
    nb.DataLength = 10
    with pytest.raises(NdisUsageError) as err:
        nb_bytes(nb)
    assert err.value.rule == "PY-NB-RANGE"


def test_current_mdl_skips_zero_length_mdls(host: Host) -> None:
    first = chain(b"ab", b"", b"cd")
    nb = NdisAllocateNetBuffer(nb_pool(host), first, 2, 2)
    assert nb is not None
    assert nb.CurrentMdl is first.Next.Next  # type: ignore[union-attr]
    assert nb.CurrentMdlOffset == 0
    check_nb(nb)


def test_check_nb_catches_a_hand_edited_inconsistency(host: Host) -> None:
    nb = make_nb(host, b"abcd", b"efgh")
    nb.DataOffset = 5
    nb.DataLength = 2
    with pytest.raises(NdisUsageError) as err:
        check_nb(nb)
    assert err.value.rule == "PY-NB-INCONSISTENT"
    nb.CurrentMdl, nb.CurrentMdlOffset = nb.MdlChain.Next, 1  # type: ignore[union-attr]
    check_nb(nb)
    nb.DataLength = 4
    with pytest.raises(NdisUsageError) as err:
        check_nb(nb)
    assert err.value.rule == "PY-NB-RANGE"


# --- context -------------------------------------------------------------------------------------


def test_context_takes_back_fill_before_allocating(host: Host) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True, ContextSize=32)
    nbl = NdisAllocateNetBufferList(pool, 16, 0)
    assert nbl is not None
    base = nbl.Context
    assert base is not None
    assert (base.Size, base.Offset) == (32, 16)
    assert NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl) == 16
    assert NdisAllocateNetBufferListContext(nbl, 16, 0, 0) == NDIS_STATUS.SUCCESS
    assert nbl.Context is base and base.Offset == 0  # back-fill used, nothing allocated
    assert NdisAllocateNetBufferListContext(nbl, 16, 32, 0) == NDIS_STATUS.SUCCESS
    top = nbl.Context
    assert top is not base and top is not None and top.Next is base  # newest first
    assert (top.Size, top.Offset) == (48, 32)
    assert NdisAllocateNetBufferListContext(nbl, 32, 0, 0) == NDIS_STATUS.SUCCESS
    assert nbl.Context is top and top.Offset == 0  # the back-fill asked for earlier
    NdisFreeNetBufferListContext(nbl, 32)
    NdisFreeNetBufferListContext(nbl, 16)
    assert context_of(nbl) is base and next_of(top) is None
    NdisFreeNetBufferListContext(nbl, 16)
    assert (base.Offset, NET_BUFFER_LIST_CONTEXT_DATA_SIZE(nbl)) == (16, 16)


def test_context_data_start_is_a_writable_view_of_the_used_area(host: Host) -> None:
    pool = nbl_pool(host, ContextSize=16)
    nbl = NdisAllocateNetBufferList(pool, 16, 16)
    assert nbl is not None and nbl.Context is not None
    view = NET_BUFFER_LIST_CONTEXT_DATA_START(nbl)
    assert len(view) == 16
    view[0:4] = b"ctx!"
    assert nbl.Context.ContextData[16:20] == b"ctx!"
    assert nbl.Context.Size == 32


def test_context_free_must_match_the_newest_size(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    assert NdisAllocateNetBufferListContext(nbl, 16, 0, 0) == NDIS_STATUS.SUCCESS
    assert NdisAllocateNetBufferListContext(nbl, 32, 0, 0) == NDIS_STATUS.SUCCESS
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferListContext(nbl, 16)
    assert err.value.rule == "PY-CONTEXT-SIZE"
    assert [size for size, _ in nbl.context_stack] == [16, 32]  # nothing changed


def test_context_free_beyond_what_was_requested_is_refused(host: Host) -> None:
    pool = nbl_pool(host, ContextSize=16)
    nbl = NdisAllocateNetBufferList(pool, 16, 0)
    assert nbl is not None
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferListContext(nbl, 16)
    assert err.value.rule == "PY-CONTEXT-UNDERFLOW"


@pytest.mark.parametrize(("size", "backfill"), [(8, 0), (16, 4), (-16, 0), (0x10000, 0)])
def test_context_sizes_must_be_aligned_ushorts(host: Host, size: int, backfill: int) -> None:
    nbl = make_nbl(host, b"x")
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBufferListContext(nbl, size, backfill, 0)
    assert err.value.rule == "PY-CONTEXT-SIZE"


def test_context_allocation_can_fail_with_resources(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    pool = nbl.NdisPoolHandle
    assert isinstance(pool, NblPool)
    pool.fail_next()
    assert NdisAllocateNetBufferListContext(nbl, 16, 0, 0) == NDIS_STATUS.RESOURCES
    assert nbl.Context is None and nbl.context_stack == []
    assert NdisAllocateNetBufferListContext(nbl, 16, 0, 0) == NDIS_STATUS.SUCCESS


def test_context_macros_without_context_are_refused(host: Host) -> None:
    nbl = make_nbl(host, b"x")
    with pytest.raises(NdisUsageError) as err:
        NET_BUFFER_LIST_CONTEXT_DATA_START(nbl)
    assert err.value.rule == "PY-NO-CONTEXT"


# --- retreat and advance (rules 43, 44) ----------------------------------------------------------


def test_rule_43_retreat_within_unused_space_only_moves_the_offset(host: Host) -> None:
    nb = make_nb(host, b"HDR:", b"payload", offset=4)
    first = nb.MdlChain
    assert NdisRetreatNetBufferDataStart(nb, 4, 0) == NDIS_STATUS.SUCCESS
    assert (nb.DataOffset, nb.DataLength) == (0, 11)
    assert nb.MdlChain is first and nb.CurrentMdl is first and nb.CurrentMdlOffset == 0
    assert nb_bytes(nb) == b"HDR:payload"


def test_rule_43_retreat_across_mdls_updates_current_mdl(host: Host) -> None:
    nb = make_nb(host, b"aaaa", b"bbbb", b"cccc", offset=9)
    assert nb.CurrentMdl is nb.MdlChain.Next.Next  # type: ignore[union-attr]
    assert NdisRetreatNetBufferDataStart(nb, 7, 0) == NDIS_STATUS.SUCCESS
    assert nb.CurrentMdl is nb.MdlChain and nb.CurrentMdlOffset == 2
    assert nb_bytes(nb) == b"aabbbbcccc"


def test_rule_43_retreat_beyond_unused_space_allocates_delta_plus_backfill(host: Host) -> None:
    nb = make_nb(host, b"payload")
    original = nb.MdlChain
    assert NdisRetreatNetBufferDataStart(nb, 14, 18) == NDIS_STATUS.SUCCESS
    new = nb.MdlChain
    assert new is not original and new is not None
    assert new.ByteCount == 32 and new.Next is original
    assert (nb.DataOffset, nb.DataLength) == (18, 21)
    assert nb.CurrentMdl is new and nb.CurrentMdlOffset == 18
    assert nb_bytes(nb) == bytes(14) + b"payload"
    check_nb(nb)


def test_rule_43_retreat_from_inside_an_mdl_uses_a_partial_mdl(host: Host) -> None:
    nb = make_nb(host, b"xxxxDATA", b"MORE", offset=4)
    first = nb.MdlChain
    assert first is not None
    assert NdisRetreatNetBufferDataStart(nb, 6, 0) == NDIS_STATUS.SUCCESS
    new = nb.MdlChain
    assert new is not None and new.Next is not None
    partial = new.Next
    assert partial.MdlFlags & MDL_PARTIAL
    assert partial.MappedSystemVa.obj is first.MappedSystemVa.obj  # same memory, no copy
    assert partial.Next is first.Next
    assert first.Next is not None and first.Next.Next is None  # the caller's chain untouched
    assert nb_bytes(nb) == bytes(6) + b"DATAMORE"
    check_nb(nb)


def test_rule_43_retreat_uses_the_drivers_allocator(host: Host) -> None:
    nb = make_nb(host, b"data")
    asked: list[int] = []

    def allocate(size: int) -> MDL:
        asked.append(size)
        return MDL(bytearray(size + 8), size + 8, None)  # more than asked is allowed

    assert NdisRetreatNetBufferDataStart(nb, 4, 4, allocate) == NDIS_STATUS.SUCCESS
    assert asked == [8]
    assert nb.DataOffset == 12 and nb_bytes(nb) == bytes(4) + b"data"


def test_rule_43_retreat_resources_when_no_memory(host: Host) -> None:
    nb = make_nb(host, b"data")
    before = (nb.MdlChain, nb.DataOffset, nb.DataLength)
    assert NdisRetreatNetBufferDataStart(nb, 4, 0, lambda size: None) == NDIS_STATUS.RESOURCES
    pool = nb.NdisPoolHandle
    assert isinstance(pool, NbPool)
    pool.fail_next()
    assert NdisRetreatNetBufferDataStart(nb, 4, 0) == NDIS_STATUS.RESOURCES
    assert (nb.MdlChain, nb.DataOffset, nb.DataLength) == before


def test_rule_43_retreat_failure_when_length_overflows_a_ulong(host: Host) -> None:
    nb = make_nb(host, b"data", offset=2)
    nb.DataLength = 0xFFFFFFFF  # a hand-made extreme; NDIS answers FAILURE
    assert NdisRetreatNetBufferDataStart(nb, 2, 0) == NDIS_STATUS.FAILURE


def test_rule_43_allocator_returning_too_little_is_a_driver_bug(host: Host) -> None:
    nb = make_nb(host, b"data")
    with pytest.raises(NdisUsageError) as err:
        NdisRetreatNetBufferDataStart(nb, 8, 0, lambda size: MDL(bytearray(2), 2, None))
    assert err.value.rule == "R43"


@pytest.mark.parametrize("delta", [-1, 1 << 32, 1.5])
def test_rule_43_delta_must_be_a_ulong(host: Host, delta: object) -> None:
    nb = make_nb(host, b"data")
    with pytest.raises(NdisUsageError):
        NdisRetreatNetBufferDataStart(nb, delta, 0)  # type: ignore[arg-type]


def test_rule_44_advance_releases_used_space(host: Host) -> None:
    nb = make_nb(host, b"0123", b"4567")
    NdisAdvanceNetBufferDataStart(nb, 5, False)
    assert (nb.DataOffset, nb.DataLength) == (5, 3)
    assert nb.CurrentMdl is nb.MdlChain.Next and nb.CurrentMdlOffset == 1  # type: ignore[union-attr]
    NdisAdvanceNetBufferDataStart(nb, 3, True)
    assert (nb.DataOffset, nb.DataLength) == (8, 0)
    check_nb(nb)
    assert nb_bytes(nb) == b""


def test_rule_44_advance_past_the_data_is_refused(host: Host) -> None:
    nb = make_nb(host, b"abc")
    with pytest.raises(NdisUsageError) as err:
        NdisAdvanceNetBufferDataStart(nb, 4, False)
    assert err.value.rule == "R44"
    assert nb.DataLength == 3


def test_rule_44_advance_with_free_mdl_frees_retreat_memory_and_restores_the_chain(
    host: Host,
) -> None:
    nb = make_nb(host, b"xxpayload", offset=2)
    original, current = nb.MdlChain, nb.CurrentMdl
    assert NdisRetreatNetBufferDataStart(nb, 20, 12) == NDIS_STATUS.SUCCESS
    allocated = nb.MdlChain
    assert allocated is not None
    NdisAdvanceNetBufferDataStart(nb, 20, True)
    assert state(allocated) is Ownership.FREE
    assert nb.MdlChain is original and nb.CurrentMdl is current
    assert (nb.DataOffset, nb.DataLength, nb.CurrentMdlOffset) == (2, 7, 2)
    assert nb.retreats is None
    assert nb_bytes(nb) == b"payload"


def test_rule_44_advance_without_free_mdl_keeps_memory_for_later_retreats(host: Host) -> None:
    nb = make_nb(host, b"payload")
    assert NdisRetreatNetBufferDataStart(nb, 8, 8) == NDIS_STATUS.SUCCESS
    allocated = nb.MdlChain
    assert allocated is not None
    NdisAdvanceNetBufferDataStart(nb, 8, False)
    assert nb.MdlChain is allocated and state(allocated) is Ownership.ALLOCATED
    assert nb.DataOffset == 16
    assert NdisRetreatNetBufferDataStart(nb, 16, 0) == NDIS_STATUS.SUCCESS
    assert nb.MdlChain is allocated and nb.DataOffset == 0  # reused, no new allocation
    NdisAdvanceNetBufferDataStart(nb, 16, True)
    assert state(allocated) is Ownership.FREE and nb_bytes(nb) == b"payload"


def test_rule_44_driver_allocated_memory_goes_back_to_the_driver(host: Host) -> None:
    nb = make_nb(host, b"payload")
    made: list[MDL] = []
    freed: list[MDL] = []

    def allocate(size: int) -> MDL:
        made.append(MDL(bytearray(size), size, None))
        return made[-1]

    assert NdisRetreatNetBufferDataStart(nb, 4, 0, allocate) == NDIS_STATUS.SUCCESS
    with pytest.raises(NdisUsageError) as err:
        NdisAdvanceNetBufferDataStart(nb, 4, True)  # NDIS cannot free the driver's memory
    assert err.value.rule == "R44"
    NdisAdvanceNetBufferDataStart(nb, 0, True, freed.append)
    assert freed == made and nb_bytes(nb) == b"payload"


def test_nbl_retreat_rolls_back_when_one_nb_fails(host: Host) -> None:
    nbl = make_nbl(host, b"one", b"two")
    first, second = list(iter_nbs(nbl))
    before = [(nb.MdlChain, nb.DataOffset, nb.DataLength) for nb in (first, second)]
    pool = second.NdisPoolHandle
    assert isinstance(pool, NbPool)
    pool.fail_next()
    status = NdisRetreatNetBufferListDataStart(nbl, 4, 0)
    assert status == NDIS_STATUS.RESOURCES
    assert [(nb.MdlChain, nb.DataOffset, nb.DataLength) for nb in (first, second)] == before
    assert NdisRetreatNetBufferListDataStart(nbl, 4, 0) == NDIS_STATUS.SUCCESS
    assert nbl_bytes(nbl) == [bytes(4) + b"one", bytes(4) + b"two"]


def test_data_ddis_check_irql(host: Host) -> None:
    nb = make_nb(host, b"data")
    host.irql.set(DIRQL)
    try:
        with pytest.raises(IrqlError) as err:
            NdisRetreatNetBufferDataStart(nb, 0, 0)
        assert err.value.rule == "R62"
    finally:
        host.irql.set(0)


def test_data_ddis_refuse_a_freed_nb(host: Host) -> None:
    nb = make_nb(host, b"data")
    NdisFreeNetBuffer(nb)
    with pytest.raises(NdisUsageError) as err:
        NdisAdvanceNetBufferDataStart(nb, 1, False)
    assert err.value.rule == "PY-USE-AFTER-FREE"


# --- NdisGetDataBuffer (rule 45) -----------------------------------------------------------------


def test_rule_45_more_than_data_length_gives_none(host: Host) -> None:
    nb = make_nb(host, b"abcdef", offset=2)
    assert NdisGetDataBuffer(nb, 5, bytearray(8), 1, 0) is None


def test_rule_45_contiguous_data_is_a_zero_copy_view(host: Host) -> None:
    nb = make_nb(host, b"..header+rest", offset=2)
    view = NdisGetDataBuffer(nb, 6, None, 1, 0)
    assert view is not None and bytes(view) == b"header"
    memory = cast(bytearray, nb.MdlChain.MappedSystemVa.obj)  # type: ignore[union-attr]
    memory[2:4] = b"HE"  # a write to the buffer shows through the view
    assert bytes(view) == b"HEader"


def test_rule_45_split_data_needs_storage(host: Host) -> None:
    nb = make_nb(host, b"abc", b"def")
    assert NdisGetDataBuffer(nb, 5, None, 1, 0) is None
    storage = bytearray(8)
    result = NdisGetDataBuffer(nb, 5, storage, 1, 0)
    assert result is not None and result.obj is storage
    assert bytes(result) == b"abcde" and storage[:5] == b"abcde"


def test_rule_45_split_data_copies_from_the_current_position(host: Host) -> None:
    nb = make_nb(host, b"abc", b"def", b"ghi", offset=2)
    storage = bytearray(5)
    result = NdisGetDataBuffer(nb, 5, storage, 1, 0)
    assert result is not None and bytes(result) == b"cdefg"


@pytest.mark.parametrize("storage", [bytearray(2), b"readonly"])
def test_rule_45_storage_must_be_writable_and_large_enough(host: Host, storage: object) -> None:
    nb = make_nb(host, b"abc", b"def")
    with pytest.raises(NdisUsageError) as err:
        NdisGetDataBuffer(nb, 4, storage, 1, 0)  # type: ignore[arg-type]
    assert err.value.rule == "R45"


@pytest.mark.parametrize(
    ("multiple", "offset"), [(0, 0), (3, 0), (16384, 0), (-2, 0), (8, 8), (4, -1)]
)
def test_rule_45_bad_alignment_arguments(host: Host, multiple: int, offset: int) -> None:
    nb = make_nb(host, b"abcdef")
    with pytest.raises(NdisUsageError) as err:
        NdisGetDataBuffer(nb, 2, None, multiple, offset)
    assert err.value.rule == "R45"


@pytest.mark.parametrize("multiple", [1, 2, 8192])
def test_rule_45_valid_alignment_multiples(host: Host, multiple: int) -> None:
    nb = make_nb(host, b"abcdef")
    view = NdisGetDataBuffer(nb, 2, None, multiple, 0)
    assert view is not None and bytes(view) == b"ab"


def test_rule_45_misaligned_contiguous_data_is_copied_to_aligned_memory(host: Host) -> None:
    nb = make_nb(host, b"xabcdefg", offset=1)  # data at modelled address 1
    aligned = NdisGetDataBuffer(nb, 4, None, 4, 0)
    assert aligned is not None and bytes(aligned) == b"abcd"
    memory = cast(bytearray, nb.MdlChain.MappedSystemVa.obj)  # type: ignore[union-attr]
    memory[1] = ord("Z")
    assert bytes(aligned) == b"abcd"  # a copy
    offset_ok = NdisGetDataBuffer(nb, 4, None, 4, 1)  # address 1 = 4k + 1: no copy needed
    assert offset_ok is not None and bytes(offset_ok) == b"Zbcd"


def test_rule_45_low_memory_can_give_none(host: Host) -> None:
    nb = make_nb(host, b"xabcdefg", offset=1)
    pool = nb.NdisPoolHandle
    assert isinstance(pool, NbPool)
    pool.fail_next()
    assert NdisGetDataBuffer(nb, 4, None, 4, 0) is None


def test_rule_45_zero_bytes_and_empty_nb(host: Host) -> None:
    nb = NdisAllocateNetBuffer(nb_pool(host), None, 0, 0)
    assert nb is not None
    result = NdisGetDataBuffer(nb, 0, None, 1, 0)
    assert result is not None and len(result) == 0
    assert NdisGetDataBuffer(nb, 1, bytearray(1), 1, 0) is None


# --- properties ----------------------------------------------------------------------------------

_parts = st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=4)
_ops = st.lists(
    st.tuples(
        st.sampled_from(["retreat", "advance"]),
        st.integers(min_value=0, max_value=24),
        st.integers(min_value=0, max_value=8),
        st.booleans(),
    ),
    max_size=25,
)


def _patterned_chain(sizes: list[int]) -> tuple[MDL, bytes]:
    data = bytes((i * 7 + 1) % 251 for i in range(sum(sizes)))
    parts, at = [], 0
    for size in sizes:
        parts.append(data[at : at + size])
        at += size
    return chain(*parts), data


@settings(max_examples=300, deadline=None)
@given(sizes=_parts, start=st.integers(min_value=0, max_value=48), ops=_ops)
def test_retreat_advance_sequences_keep_the_window_consistent(
    sizes: list[int], start: int, ops: list[tuple[str, int, int, bool]]
) -> None:
    host = Host()
    first, data = _patterned_chain(sizes)
    offset = min(start, len(data))
    nb = NdisAllocateNetBuffer(nb_pool(host), first, offset, len(data) - offset)
    assert nb is not None
    expected = data[offset:]
    for op, delta, backfill, free in ops:
        if op == "retreat":
            whole = mdl_chain_bytes(nb.MdlChain)
            grows_in_place = delta <= nb.DataOffset
            before = whole[nb.DataOffset - delta : nb.DataOffset] if grows_in_place else b""
            assert NdisRetreatNetBufferDataStart(nb, delta, backfill) == NDIS_STATUS.SUCCESS
            expected = (before if grows_in_place else bytes(delta)) + expected
        else:
            released = min(delta, nb.DataLength)
            NdisAdvanceNetBufferDataStart(nb, released, free)
            expected = expected[released:]
        check_nb(nb)  # DataOffset + DataLength fit, CurrentMdl matches DataOffset
        assert nb.DataLength == len(expected)
        assert nb_bytes(nb) == expected
    # the caller's chain was never modified
    assert mdl_chain_bytes(first) == data


@settings(max_examples=200, deadline=None)
@given(
    sizes=_parts,
    start=st.integers(min_value=0, max_value=48),
    retreats=st.lists(
        st.tuples(st.integers(min_value=0, max_value=30), st.integers(min_value=0, max_value=8)),
        max_size=8,
    ),
)
def test_retreats_undone_by_advances_restore_the_nb_exactly(
    sizes: list[int], start: int, retreats: list[tuple[int, int]]
) -> None:
    host = Host()
    first, data = _patterned_chain(sizes)
    offset = min(start, len(data))
    nb = NdisAllocateNetBuffer(nb_pool(host), first, offset, len(data) - offset)
    assert nb is not None
    before = (nb.MdlChain, nb.CurrentMdl, nb.CurrentMdlOffset, nb.DataOffset, nb.DataLength)
    allocated: list[MDL] = []
    for delta, backfill in retreats:
        head = nb.MdlChain
        assert NdisRetreatNetBufferDataStart(nb, delta, backfill) == NDIS_STATUS.SUCCESS
        if nb.MdlChain is not head:
            allocated.append(nb.MdlChain)  # type: ignore[arg-type]
    for delta, _ in reversed(retreats):
        NdisAdvanceNetBufferDataStart(nb, delta, True)
    after = (nb.MdlChain, nb.CurrentMdl, nb.CurrentMdlOffset, nb.DataOffset, nb.DataLength)
    assert after == before
    assert nb.retreats is None
    assert all(state(mdl) is Ownership.FREE for mdl in allocated)
    assert nb_bytes(nb) == data[offset:]


@settings(max_examples=300, deadline=None)
@given(
    sizes=_parts,
    start=st.integers(min_value=0, max_value=48),
    need=st.integers(min_value=0, max_value=50),
    with_storage=st.booleans(),
)
def test_get_data_buffer_contiguous_vs_split(
    sizes: list[int], start: int, need: int, with_storage: bool
) -> None:
    host = Host()
    first, data = _patterned_chain(sizes)
    offset = min(start, len(data))
    nb = NdisAllocateNetBuffer(nb_pool(host), first, offset, len(data) - offset)
    assert nb is not None
    storage = bytearray(need) if with_storage else None
    result = NdisGetDataBuffer(nb, need, storage, 1, 0)
    current = nb.CurrentMdl
    contiguous = current is None or current.ByteCount - nb.CurrentMdlOffset >= need
    if need > nb.DataLength:
        assert result is None
    elif contiguous:
        assert result is not None and bytes(result) == data[offset : offset + need]
        if current is not None:
            assert result.obj is current.MappedSystemVa.obj  # zero-copy view of the MDL
    elif storage is None:
        assert result is None
    else:
        assert result is not None and result.obj is storage
        assert bytes(result) == data[offset : offset + need]
