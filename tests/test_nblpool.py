"""Tests of pyndis.nblpool (nblpoolbase + nblalloc): pool parameters, pools, allocation, free,
clones, limits and fault injection."""

from __future__ import annotations

import itertools
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyndis.constants import (
    DIRQL,
    NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS,
    NDIS_OBJECT_TYPE_DEFAULT,
    TcpIpChecksumNetBufferListInfo,
)
from pyndis.errors import IrqlError, NdisUsageError
from pyndis.hostctx import HostContext
from pyndis.mdl import MDL, BufferDdis
from pyndis.nbl import (
    NET_BUFFER,
    NET_BUFFER_LIST,
    NdisAllocateNetBufferListContext,
    NdisFreeNetBufferListContext,
    NdisGetDataBuffer,
    NdisRetreatNetBufferDataStart,
    iter_nbs,
    nb_bytes,
    nbl_bytes,
)
from pyndis.nblpool import (
    NDIS_OBJECT_HEADER,
    NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
    NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2,
    NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1,
    NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2,
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
    NblPool,
    NblPoolDdis,
    NbPool,
    NdisAllocateCloneNetBufferList,
    NdisAllocateNetBuffer,
    NdisAllocateNetBufferAndNetBufferList,
    NdisAllocateNetBufferList,
    NdisAllocateNetBufferMdlAndData,
    NdisFreeCloneNetBufferList,
    NdisFreeNetBuffer,
    NdisFreeNetBufferList,
    PoolLeakError,
)
from pyndis.ownership import Event, Owned, Ownership, transition
from pyndis.status import NDIS_STATUS


def state(obj: Owned) -> Ownership:
    """The ownership of ``obj`` (a call, so mypy does not narrow it across statements)."""
    return obj.ownership


class Host(HostContext, BufferDdis, NblPoolDdis):
    """A kernel with only the descriptor DDIs (keeps these tests off the library)."""


@pytest.fixture
def host() -> Host:
    return Host()


def nbl_pool(host: Host, limit: int | None = None, **fields: object) -> NblPool:
    params = NET_BUFFER_LIST_POOL_PARAMETERS(**fields)  # type: ignore[arg-type]
    pool = host.NdisAllocateNetBufferListPool(None, params, limit=limit)
    assert pool is not None
    return pool


def nb_pool(host: Host, limit: int | None = None, data_size: int = 0) -> NbPool:
    params = NET_BUFFER_POOL_PARAMETERS(DataSize=data_size)
    pool = host.NdisAllocateNetBufferPool(None, params, limit=limit)
    assert pool is not None
    return pool


def mdl_over(memory: bytearray) -> MDL:
    return MDL(memory, len(memory), None)


def frame_nbl(host: Host, data: bytes, offset: int = 0) -> tuple[NET_BUFFER_LIST, bytearray]:
    memory = bytearray(data)
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    nbl = NdisAllocateNetBufferAndNetBufferList(
        pool, 0, 0, mdl_over(memory), offset, len(data) - offset
    )
    assert nbl is not None
    return nbl, memory


# --- rule 38: pool parameters --------------------------------------------------------------------


def test_header_sizes_for_both_revisions() -> None:
    assert NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 == 16
    assert NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2 == 20
    assert NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1 == 12
    assert NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2 == 16
    assert NET_BUFFER_LIST_POOL_PARAMETERS.header(2) == NDIS_OBJECT_HEADER(0x80, 2, 20)
    assert NET_BUFFER_POOL_PARAMETERS.header(1) == NDIS_OBJECT_HEADER(0x80, 1, 12)
    assert NET_BUFFER_LIST_POOL_PARAMETERS().Header == NDIS_OBJECT_HEADER(0x80, 1, 16)


def test_rule_38_valid_parameters_make_a_pool(host: Host) -> None:
    pool = nbl_pool(host, ProtocolId=2, fAllocateNetBuffer=True, ContextSize=32, PoolTag="Tst1")
    assert (pool.ProtocolId, pool.fAllocateNetBuffer, pool.ContextSize) == (2, True, 32)
    assert pool.tag == "Tst1" and pool in host.pools
    rev2 = NET_BUFFER_LIST_POOL_PARAMETERS(
        Header=NET_BUFFER_LIST_POOL_PARAMETERS.header(2), Flags=1, PoolTag=0x31747354
    )
    pool2 = host.NdisAllocateNetBufferListPool(None, rev2)
    assert pool2 is not None and pool2.tag == "Tst1" and pool2.Flags == 1


@pytest.mark.parametrize(
    "header",
    [
        NDIS_OBJECT_HEADER(0x81, 1, 16),  # wrong Type
        NDIS_OBJECT_HEADER(NDIS_OBJECT_TYPE_DEFAULT, 0, 16),  # no such revision
        NDIS_OBJECT_HEADER(NDIS_OBJECT_TYPE_DEFAULT, 3, 24),
        NDIS_OBJECT_HEADER(NDIS_OBJECT_TYPE_DEFAULT, 1, 15),  # too small for revision 1
        NDIS_OBJECT_HEADER(NDIS_OBJECT_TYPE_DEFAULT, 2, 16),  # revision 2 needs 20
    ],
)
def test_rule_38_bad_object_header_is_refused(host: Host, header: NDIS_OBJECT_HEADER) -> None:
    with pytest.raises(NdisUsageError) as err:
        host.NdisAllocateNetBufferListPool(None, NET_BUFFER_LIST_POOL_PARAMETERS(Header=header))
    assert err.value.rule == "R38"
    assert host.pools == []


@pytest.mark.parametrize(
    "fields",
    [
        {"fAllocateNetBuffer": False, "DataSize": 128},  # data needs a pre-allocated NB
        {"ContextSize": 8},  # not a multiple of MEMORY_ALLOCATION_ALIGNMENT
        {"ContextSize": 0x10010},  # not a USHORT
        {"ProtocolId": 0x100},
        {"DataSize": -1},
        {"PoolTag": "TooLong"},
    ],
)
def test_rule_38_bad_fields_are_refused(host: Host, fields: dict[str, object]) -> None:
    with pytest.raises(NdisUsageError) as err:
        host.NdisAllocateNetBufferListPool(None, NET_BUFFER_LIST_POOL_PARAMETERS(**fields))  # type: ignore[arg-type]
    assert err.value.rule == "R38"


def test_rule_38_nb_pool_header_is_checked(host: Host) -> None:
    bad = NET_BUFFER_POOL_PARAMETERS(Header=NDIS_OBJECT_HEADER(0x80, 1, 11))
    with pytest.raises(NdisUsageError) as err:
        host.NdisAllocateNetBufferPool(None, bad)
    assert err.value.rule == "R38"
    with pytest.raises(NdisUsageError):
        host.NdisAllocateNetBufferPool(None, NET_BUFFER_LIST_POOL_PARAMETERS())  # type: ignore[arg-type]


def test_pool_creation_can_fail_with_null(host: Host) -> None:
    host.nbl_pool_creation_failures = 2
    assert host.NdisAllocateNetBufferListPool(None, NET_BUFFER_LIST_POOL_PARAMETERS()) is None
    assert host.NdisAllocateNetBufferPool(None, NET_BUFFER_POOL_PARAMETERS()) is None
    assert host.NdisAllocateNetBufferPool(None, NET_BUFFER_POOL_PARAMETERS()) is not None


def test_the_kernel_has_the_pool_ddis() -> None:
    from pyndis.library.kernel import Ndis  # here: the rest of this file needs no library

    ndis = Ndis()
    pool = ndis.NdisAllocateNetBufferListPool("driver", NET_BUFFER_LIST_POOL_PARAMETERS())
    assert isinstance(pool, NblPool) and pool.NdisHandle == "driver" and pool.host is ndis
    nbl = NdisAllocateNetBufferList(pool, 0, 0)
    assert nbl is not None
    NdisFreeNetBufferList(nbl)
    ndis.NdisFreeNetBufferListPool(pool)


# --- allocation ----------------------------------------------------------------------------------


def test_allocate_nbl_without_net_buffer(host: Host) -> None:
    pool = nbl_pool(host)
    nbl = NdisAllocateNetBufferList(pool, 0, 0)
    assert nbl is not None
    assert state(nbl) is Ownership.ALLOCATED
    assert nbl.FirstNetBuffer is None and nbl.Context is None
    assert nbl.NdisPoolHandle is pool
    assert pool.usage() == {"outstanding": 1, "allocations": 1, "frees": 0, "failures": 0}


def test_allocate_nbl_with_preallocated_nb_and_data(host: Host) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True, DataSize=1514)
    nbl = NdisAllocateNetBufferList(pool, 0, 0)
    assert nbl is not None
    nb = nbl.FirstNetBuffer
    assert nb is not None and state(nb) is Ownership.ALLOCATED
    assert nb.MdlChain is not None and nb.MdlChain.ByteCount == 1514
    assert (nb.DataOffset, nb.DataLength) == (0, 1514)
    assert nb.CurrentMdl is nb.MdlChain
    empty = NdisAllocateNetBufferList(nbl_pool(host, fAllocateNetBuffer=True), 0, 0)
    assert empty is not None and empty.FirstNetBuffer is not None
    assert empty.FirstNetBuffer.MdlChain is None and empty.FirstNetBuffer.DataLength == 0


def test_allocation_context_comes_from_pool_and_request(host: Host) -> None:
    pool = nbl_pool(host, ContextSize=32)
    nbl = NdisAllocateNetBufferList(pool, 16, 0)
    assert nbl is not None and nbl.Context is not None
    assert (nbl.Context.Size, nbl.Context.Offset) == (32, 16)
    bigger = NdisAllocateNetBufferList(pool, 32, 32)
    assert bigger is not None and bigger.Context is not None
    assert (bigger.Context.Size, bigger.Context.Offset) == (64, 32)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBufferList(pool, 24, 0)
    assert err.value.rule == "PY-CONTEXT-SIZE"


def test_recycled_nbl_has_every_field_reset(host: Host) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True, ContextSize=16)
    nbl = NdisAllocateNetBufferList(pool, 16, 0)
    assert nbl is not None and nbl.Context is not None
    nb = nbl.FirstNetBuffer
    assert nb is not None
    nbl.Next = nbl
    nbl.ParentNetBufferList = nbl
    nbl.NdisReserved[0] = nbl.ProtocolReserved[3] = nbl.MiniportReserved[1] = "junk"
    nbl.Scratch = nbl.SourceHandle = "junk"
    nbl.NblFlags = nbl.Flags = 0xFFFF
    nbl.Status = NDIS_STATUS.FAILURE
    nbl.NetBufferListInfo[TcpIpChecksumNetBufferListInfo] = "junk"
    nbl.Context.ContextData[:] = b"\xff" * 16
    nb.Next = nb
    nb.ChecksumBias = nb.Reserved = nb.DataPhysicalAddress = 7
    nb.NdisReserved[1] = nb.ProtocolReserved[5] = nb.MiniportReserved[3] = "junk"
    nb.MdlChain = mdl_over(bytearray(4))
    nb.DataLength = 4
    NdisFreeNetBufferList(nbl)
    again = NdisAllocateNetBufferList(pool, 16, 0)
    assert again is nbl and again.FirstNetBuffer is nb
    fresh = NET_BUFFER_LIST(pool)
    for name in ("Next", "ParentNetBufferList", "NdisReserved", "ProtocolReserved",
                 "MiniportReserved", "Scratch", "SourceHandle", "NblFlags", "ChildRefCount",
                 "Flags", "Status", "NetBufferListInfo", "clone_flags"):  # fmt: skip
        assert getattr(again, name) == getattr(fresh, name), name
    assert again.Context is not None and again.Context.ContextData == bytes(16)
    blank = NET_BUFFER(pool)
    for name in ("Next", "MdlChain", "CurrentMdl", "CurrentMdlOffset", "DataLength",
                 "DataOffset", "ChecksumBias", "Reserved", "NdisReserved", "ProtocolReserved",
                 "MiniportReserved", "DataPhysicalAddress", "retreats"):  # fmt: skip
        assert getattr(nb, name) == getattr(blank, name), name


def test_history_is_kept_when_the_verifier_is_on() -> None:
    host = Host(verifier=True)
    nbl = NdisAllocateNetBufferList(nbl_pool(host, fAllocateNetBuffer=True), 0, 0)
    assert nbl is not None and nbl.history is not None
    assert [entry.event for entry in nbl.history] == [Event.ALLOCATE]
    NdisFreeNetBufferList(nbl)
    assert [entry.event for entry in nbl.history] == [Event.ALLOCATE, Event.FREE]
    assert Host().NdisAllocateNetBufferListPool is not None
    quiet = NdisAllocateNetBufferList(nbl_pool(Host()), 0, 0)
    assert quiet is not None and quiet.history is None


def test_allocation_checks_irql(host: Host) -> None:
    pool = nbl_pool(host)
    host.irql.set(DIRQL)
    try:
        with pytest.raises(IrqlError):
            NdisAllocateNetBufferList(pool, 0, 0)
        with pytest.raises(IrqlError):
            host.NdisAllocateNetBufferPool(None, NET_BUFFER_POOL_PARAMETERS())
    finally:
        host.irql.set(0)


def test_allocate_net_buffer_describes_the_chain(host: Host) -> None:
    first = mdl_over(bytearray(b"0123"))
    first.Next = mdl_over(bytearray(b"4567"))
    nb = NdisAllocateNetBuffer(nb_pool(host), first, 5, 2)
    assert nb is not None
    assert nb.CurrentMdl is first.Next and nb.CurrentMdlOffset == 1
    assert nb_bytes(nb) == b"56"


def test_allocate_net_buffer_mdl_and_data(host: Host) -> None:
    pool = nb_pool(host, data_size=64)
    nb = NdisAllocateNetBufferMdlAndData(pool)
    assert nb is not None and nb.MdlChain is not None
    assert (nb.DataLength, nb.MdlChain.ByteCount) == (64, 64)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBuffer(pool, None, 0, 0)
    assert err.value.rule == "PY-POOL-KIND"
    with pytest.raises(NdisUsageError):
        NdisAllocateNetBufferMdlAndData(nb_pool(host))
    NdisFreeNetBuffer(nb)
    assert NdisAllocateNetBufferMdlAndData(pool) is nb


# --- rule 39 -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [{"fAllocateNetBuffer": False}, {"fAllocateNetBuffer": True, "DataSize": 64}]
)
def test_rule_39_and_nbl_needs_a_preallocating_pool_without_data(
    host: Host, fields: dict[str, Any]
) -> None:
    pool = nbl_pool(host, **fields)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, None, 0, 0)
    assert err.value.rule == "R39"


@pytest.mark.parametrize(("offset", "length"), [(1, 0), (0, 1)])
def test_rule_39_null_chain_needs_zero_offset_and_length(
    host: Host, offset: int, length: int
) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, None, offset, length)
    assert err.value.rule == "R39"
    with pytest.raises(NdisUsageError):
        NdisAllocateNetBuffer(nb_pool(host), None, offset, length)
    assert pool.outstanding == 0


def test_rule_39_window_must_fit_the_chain(host: Host) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl_over(bytearray(10)), 4, 7)
    assert err.value.rule == "PY-NB-RANGE"


def test_rule_39_freed_mdl_in_chain_is_refused(host: Host) -> None:
    mdl = host.NdisAllocateMdl(None, bytearray(8), 8)
    host.NdisFreeMdl(mdl)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateNetBuffer(nb_pool(host), mdl, 0, 8)
    assert err.value.rule == "PY-USE-AFTER-FREE"


def test_rule_39_preallocated_nb_is_freed_only_with_its_nbl(host: Host) -> None:
    nbl, _ = frame_nbl(host, b"frame")
    nb = nbl.FirstNetBuffer
    assert nb is not None
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBuffer(nb)
    assert err.value.rule == "R39"
    nbl.FirstNetBuffer = None  # detached by the driver: still freed with the NBL
    NdisFreeNetBufferList(nbl)
    assert state(nb) is Ownership.FREE


def test_rule_39_preallocated_mdl_freed_on_its_own_is_refused(host: Host) -> None:
    nbl = NdisAllocateNetBufferList(nbl_pool(host, fAllocateNetBuffer=True, DataSize=32), 0, 0)
    assert nbl is not None and nbl.FirstNetBuffer is not None
    mdl = nbl.FirstNetBuffer.MdlChain
    assert mdl is not None
    host.NdisFreeMdl(mdl)
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(nbl)
    assert err.value.rule == "R39"
    assert state(nbl) is Ownership.ALLOCATED


# --- rules 40, 41, 48: free ----------------------------------------------------------------------


def test_rule_40_hand_built_descriptors_cannot_be_freed() -> None:
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(NET_BUFFER_LIST())
    assert err.value.rule == "R40"
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBuffer(NET_BUFFER())
    assert err.value.rule == "R40"


def test_rule_41_context_must_be_freed_before_the_nbl(host: Host) -> None:
    nbl, _ = frame_nbl(host, b"frame")
    assert NdisAllocateNetBufferListContext(nbl, 16, 0, 0) == NDIS_STATUS.SUCCESS
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(nbl)
    assert err.value.rule == "R41"
    assert state(nbl) is Ownership.ALLOCATED  # a refused free changes nothing
    NdisFreeNetBufferListContext(nbl, 16)
    NdisFreeNetBufferList(nbl)
    assert state(nbl) is Ownership.FREE


def test_rule_41_nbs_attached_later_are_not_freed(host: Host) -> None:
    nbl_p, nb_p = nbl_pool(host), nb_pool(host)
    nbl = NdisAllocateNetBufferList(nbl_p, 0, 0)
    nb = NdisAllocateNetBuffer(nb_p, None, 0, 0)
    assert nbl is not None and nb is not None
    nbl.FirstNetBuffer = nb
    NdisFreeNetBufferList(nbl)
    assert state(nb) is Ownership.ALLOCATED and nb_p.outstanding == 1
    NdisFreeNetBuffer(nb)
    host.NdisFreeNetBufferPool(nb_p)


def test_rule_41_pool_freed_with_nbls_out_lists_the_leak(host: Host) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    kept = NdisAllocateNetBufferList(pool, 0, 0)
    freed = NdisAllocateNetBufferList(pool, 0, 0)
    assert kept is not None and freed is not None
    NdisFreeNetBufferList(freed)
    with pytest.raises(PoolLeakError) as err:
        host.NdisFreeNetBufferListPool(pool)
    assert err.value.rule == "R41" and err.value.leaked == [kept]
    assert "0x27" in str(err.value)
    NdisFreeNetBufferList(kept)
    host.NdisFreeNetBufferListPool(pool)
    assert pool.freed and pool not in host.pools
    assert state(kept) is Ownership.DESTROYED
    assert kept.FirstNetBuffer is not None
    assert state(kept.FirstNetBuffer) is Ownership.DESTROYED
    with pytest.raises(NdisUsageError) as bad:
        NdisAllocateNetBufferList(pool, 0, 0)
    assert bad.value.rule == "PY-BAD-HANDLE"


def test_nb_pool_freed_with_nbs_out_lists_the_leak(host: Host) -> None:
    pool = nb_pool(host)
    nb = NdisAllocateNetBuffer(pool, None, 0, 0)
    with pytest.raises(PoolLeakError) as err:
        host.NdisFreeNetBufferPool(pool)
    assert err.value.leaked == [nb] and err.value.rule == "PY-POOL-LEAK"


def test_rule_48_freeing_an_nbl_in_flight(host: Host) -> None:
    nbl, _ = frame_nbl(host, b"frame")
    transition(nbl, Event.SEND)
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(nbl)
    assert err.value.rule == "R48"
    assert state(nbl) is Ownership.IN_NDIS


def test_double_free_is_refused(host: Host) -> None:
    nbl, _ = frame_nbl(host, b"frame")
    NdisFreeNetBufferList(nbl)
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(nbl)
    assert err.value.rule == "PY-DOUBLE-FREE"
    pool = nbl.NdisPoolHandle
    assert isinstance(pool, NblPool) and pool.free_list.count(nbl) == 1


def test_retreat_memory_left_at_free_is_reported_to_the_verifier() -> None:
    host = Host(verifier=True)
    nbl, _ = frame_nbl(host, b"frame")
    nb = nbl.FirstNetBuffer
    assert nb is not None
    assert NdisRetreatNetBufferDataStart(nb, 14, 0) == NDIS_STATUS.SUCCESS
    allocated = nb.MdlChain
    assert allocated is not None
    NdisFreeNetBufferList(nbl)
    assert host.verifier is not None and host.verifier.rules() == ["PY-RETREAT-LEAK"]
    assert state(allocated) is Ownership.FREE and nb.retreats is None


# --- rule 42: clones -----------------------------------------------------------------------------


@pytest.mark.parametrize("flags", [0, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS])
def test_rule_42_clone_shares_memory_and_covers_only_used_data(host: Host, flags: int) -> None:
    original, memory = frame_nbl(host, b"\x00" * 14 + b"payload!", offset=14)
    clone = NdisAllocateCloneNetBufferList(original, nbl_pool(host), nb_pool(host), flags)
    assert clone is not None
    assert clone.ParentNetBufferList is original and original.ChildRefCount == 1
    assert clone.Context is None
    (nb,) = list(iter_nbs(clone))
    assert nb_bytes(nb) == b"payload!"
    if flags:
        assert nb.MdlChain is original.FirstNetBuffer.MdlChain  # type: ignore[union-attr]
        assert nb.DataOffset == 14
    else:
        assert nb.DataOffset == 0 and nb.MdlChain is not None
        assert nb.MdlChain.ByteCount == 8  # only the used bytes
    memory[14:17] = b"PAY"  # zero-copy: a write to the original shows through the clone
    assert nbl_bytes(clone) == [b"PAYload!"]
    view = NdisGetDataBuffer(nb, 3, None, 1, 0)
    assert view is not None and view.obj is memory


def test_rule_42_clone_of_several_nbs_and_split_chains(host: Host) -> None:
    nbl_p = nbl_pool(host)
    original = NdisAllocateNetBufferList(nbl_p, 0, 0)
    assert original is not None
    first = mdl_over(bytearray(b"abcd"))
    first.Next = mdl_over(bytearray(b"efgh"))
    pool = nb_pool(host)
    one = NdisAllocateNetBuffer(pool, first, 2, 5)
    two = NdisAllocateNetBuffer(pool, mdl_over(bytearray(b"xyz")), 0, 3)
    assert one is not None and two is not None
    one.Next = two
    original.FirstNetBuffer = one
    clone = NdisAllocateCloneNetBufferList(original, None, None, 0)  # NDIS's own pools
    assert clone is not None
    assert nbl_bytes(clone) == [b"cdefg", b"xyz"]
    NdisFreeCloneNetBufferList(clone, 0)
    assert original.ChildRefCount == 0


def test_rule_42_free_clone_needs_the_same_flags(host: Host) -> None:
    original, _ = frame_nbl(host, b"frame")
    clone = NdisAllocateCloneNetBufferList(original, None, None, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS)
    assert clone is not None
    with pytest.raises(NdisUsageError) as err:
        NdisFreeCloneNetBufferList(clone, 0)
    assert err.value.rule == "R42"
    assert state(clone) is Ownership.ALLOCATED and original.ChildRefCount == 1
    NdisFreeCloneNetBufferList(clone, NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS)
    assert state(clone) is Ownership.FREE and original.ChildRefCount == 0


def test_rule_42_clones_and_parents_use_the_right_free(host: Host) -> None:
    original, _ = frame_nbl(host, b"frame")
    clone = NdisAllocateCloneNetBufferList(original, None, None, 0)
    assert clone is not None
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(clone)
    assert err.value.rule == "R42"
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBufferList(original)  # a parent with a live clone
    assert err.value.rule == "R42"
    with pytest.raises(NdisUsageError) as err:
        NdisFreeCloneNetBufferList(original, 0)  # not a clone
    assert err.value.rule == "R42"
    clone_nb = clone.FirstNetBuffer
    assert clone_nb is not None
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBuffer(clone_nb)
    assert err.value.rule == "R42"
    partial = clone_nb.MdlChain
    assert partial is not None
    NdisFreeCloneNetBufferList(clone, 0)
    assert state(clone_nb) is Ownership.FREE and state(partial) is Ownership.FREE
    NdisFreeNetBufferList(original)


def test_rule_42_clone_of_a_clone_pins_its_parent(host: Host) -> None:
    original, _ = frame_nbl(host, b"frame")
    clone = NdisAllocateCloneNetBufferList(original, None, None, 0)
    assert clone is not None
    grandchild = NdisAllocateCloneNetBufferList(clone, None, None, 0)
    assert grandchild is not None and clone.ChildRefCount == 1
    with pytest.raises(NdisUsageError) as err:
        NdisFreeCloneNetBufferList(clone, 0)
    assert err.value.rule == "R42"
    NdisFreeCloneNetBufferList(grandchild, 0)
    NdisFreeCloneNetBufferList(clone, 0)


@pytest.mark.parametrize("flags", [0x4, 0x100, -1])
def test_rule_42_unknown_clone_flags_are_refused(host: Host, flags: int) -> None:
    original, _ = frame_nbl(host, b"frame")
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateCloneNetBufferList(original, None, None, flags)
    assert err.value.rule == "R42"


def test_rule_42_clone_fails_with_null_and_leaks_nothing(host: Host) -> None:
    original = NdisAllocateNetBufferList(nbl_pool(host), 0, 0)
    assert original is not None
    src = nb_pool(host)
    one = NdisAllocateNetBuffer(src, mdl_over(bytearray(4)), 0, 4)
    two = NdisAllocateNetBuffer(src, mdl_over(bytearray(4)), 0, 4)
    assert one is not None and two is not None
    one.Next = two
    original.FirstNetBuffer = one
    clone_nbls, clone_nbs = nbl_pool(host), nb_pool(host, limit=1)  # room for one NB only
    assert NdisAllocateCloneNetBufferList(original, clone_nbls, clone_nbs, 0) is None
    assert (clone_nbls.outstanding, clone_nbs.outstanding) == (0, 0)
    assert original.ChildRefCount == 0
    clone_nbls.fail_next()
    assert NdisAllocateCloneNetBufferList(original, clone_nbls, nb_pool(host), 0) is None


def test_clone_pools_must_not_preallocate(host: Host) -> None:
    original, _ = frame_nbl(host, b"frame")
    with pytest.raises(NdisUsageError):
        NdisAllocateCloneNetBufferList(original, nbl_pool(host, fAllocateNetBuffer=True), None, 0)


def test_cloning_a_freed_nbl_is_refused(host: Host) -> None:
    original, _ = frame_nbl(host, b"frame")
    NdisFreeNetBufferList(original)
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateCloneNetBufferList(original, None, None, 0)
    assert err.value.rule == "PY-USE-AFTER-FREE"


# --- limits and fault injection (rule 67) --------------------------------------------------------


def test_limit_bounds_outstanding_descriptors(host: Host) -> None:
    pool = nbl_pool(host, limit=2)
    first = NdisAllocateNetBufferList(pool, 0, 0)
    second = NdisAllocateNetBufferList(pool, 0, 0)
    assert first is not None and second is not None
    assert NdisAllocateNetBufferList(pool, 0, 0) is None
    assert pool.failures == 1
    NdisFreeNetBufferList(first)
    assert NdisAllocateNetBufferList(pool, 0, 0) is first
    assert nbl_pool(host, limit=0).outstanding == 0
    with pytest.raises(NdisUsageError):
        nbl_pool(host, limit=-1)


def test_rule_67_fail_next_makes_any_allocation_fail(host: Host) -> None:
    nbls, nbs = nbl_pool(host, fAllocateNetBuffer=True), nb_pool(host)
    nbls.fail_next(2)
    nbs.fail_next()
    assert NdisAllocateNetBufferList(nbls, 0, 0) is None
    assert NdisAllocateNetBufferAndNetBufferList(nbls, 0, 0, None, 0, 0) is None
    assert NdisAllocateNetBuffer(nbs, None, 0, 0) is None
    assert nbls.failures == 2 and nbls.outstanding == 0
    assert NdisAllocateNetBufferList(nbls, 0, 0) is not None


def _failure_pattern(seed: int) -> list[bool]:
    host = Host(seed=seed)
    host.inject_nbl_faults(0.5)
    pool = nbl_pool(host)
    out = []
    for _ in range(40):
        nbl = NdisAllocateNetBufferList(pool, 0, 0)
        out.append(nbl is None)
        if nbl is not None:
            NdisFreeNetBufferList(nbl)
    return out


def test_rule_67_fault_rate_is_reproducible_from_the_seed() -> None:
    pattern = _failure_pattern(7)
    assert pattern == _failure_pattern(7)
    assert any(pattern) and not all(pattern)
    assert pattern != _failure_pattern(8)


def test_rule_67_inject_faults_reaches_existing_pools(host: Host) -> None:
    pool = nb_pool(host)
    host.inject_nbl_faults(1.0)
    assert NdisAllocateNetBuffer(pool, None, 0, 0) is None
    host.inject_nbl_faults(0.0)
    assert NdisAllocateNetBuffer(pool, None, 0, 0) is not None
    with pytest.raises(NdisUsageError):
        host.inject_nbl_faults(1.5)


# --- threads -------------------------------------------------------------------------------------


def test_allocate_and_free_from_several_threads(host: Host) -> None:
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    held: set[int] = set()
    guard = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(2000):
                nbl = NdisAllocateNetBufferList(pool, 0, 0)
                assert nbl is not None
                with guard:
                    assert id(nbl) not in held  # never handed to two owners at once
                    held.add(id(nbl))
                with guard:
                    held.discard(id(nbl))
                NdisFreeNetBufferList(nbl)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert pool.outstanding == 0 and pool.allocations == pool.frees == 8000
    assert len(pool.nbls) <= 4
    assert all(state(nbl) is Ownership.FREE for nbl in pool.nbls)


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=4),
    start=st.integers(min_value=0, max_value=40),
    original_mdls=st.booleans(),
)
def test_clones_share_memory_for_any_chain(
    sizes: list[int], start: int, original_mdls: bool
) -> None:
    host = Host()
    memories = [
        bytearray(bytes((i * 5 + j) % 256 for j in range(size))) for i, size in enumerate(sizes)
    ]
    mdls = [mdl_over(memory) for memory in memories]
    for first, second in itertools.pairwise(mdls):
        first.Next = second
    total = sum(sizes)
    offset = min(start, total)
    pool = nbl_pool(host, fAllocateNetBuffer=True)
    original = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdls[0], offset, total - offset)
    assert original is not None
    flags = NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS if original_mdls else 0
    clone = NdisAllocateCloneNetBufferList(original, None, None, flags)
    assert clone is not None
    assert nbl_bytes(clone) == nbl_bytes(original)
    for memory in memories:  # a write to the original memory shows through the clone
        for index in range(len(memory)):
            memory[index] ^= 0xFF
    assert nbl_bytes(clone) == nbl_bytes(original)
    (clone_nb,) = list(iter_nbs(clone))
    if not original_mdls:
        assert clone_nb.DataOffset == 0  # only the used data is described
    NdisFreeCloneNetBufferList(clone, flags)
    NdisFreeNetBufferList(original)
    assert original.ChildRefCount == 0


def test_preallocated_nb_data_mdl_freed_on_its_own_is_refused(host: Host) -> None:
    nb = NdisAllocateNetBufferMdlAndData(nb_pool(host, data_size=16))
    assert nb is not None and nb.MdlChain is not None
    host.NdisFreeMdl(nb.MdlChain)
    with pytest.raises(NdisUsageError) as err:
        NdisFreeNetBuffer(nb)
    assert err.value.rule == "PY-WRONG-FREE"
