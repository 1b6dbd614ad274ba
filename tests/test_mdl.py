"""Tests for pyndis.mdl: buffer descriptors (MDL / NDIS_BUFFER) and buffer pools."""

from __future__ import annotations

import array
import mmap
import threading

import pytest

from pyndis.constants import DIRQL, PAGE_SIZE
from pyndis.errors import IrqlError, NdisUsageError
from pyndis.hostctx import HostContext
from pyndis.mdl import (
    MDL,
    NDIS_BUFFER,
    NDIS_BUFFER_LINKAGE,
    BufferDdis,
    BufferPool,
    MmGetMdlByteCount,
    MmGetMdlByteOffset,
    MmGetSystemAddressForMdlSafe,
    NdisAdjustBufferLength,
    NdisAllocateBuffer,
    NdisBufferLength,
    NdisBufferVirtualAddress,
    NdisFreeBuffer,
    NdisGetNextBuffer,
    NdisQueryBuffer,
    NdisQueryBufferOffset,
    NdisQueryBufferSafe,
    iter_mdl_chain,
    mdl_chain_bytes,
    pages_spanned,
)
from pyndis.ownership import Event, Ownership
from pyndis.packet import NdisChainBufferAtBack, NdisQueryPacket, NdisUnchainBufferAtFront
from pyndis.pools import NdisAllocatePacket, PacketPoolDdis
from pyndis.status import NDIS_STATUS


class Kernel(HostContext, BufferDdis, PacketPoolDdis):
    """The slice of the Ndis kernel that descriptors need."""


@pytest.fixture
def kernel() -> Kernel:
    return Kernel()


@pytest.fixture
def pool(kernel: Kernel) -> BufferPool:
    status, pool = kernel.NdisAllocateBufferPool(4)
    assert status == NDIS_STATUS.SUCCESS
    return pool


def alloc(pool: BufferPool, memory: object, length: int | None = None) -> MDL:
    size = len(memory) if length is None else length  # type: ignore[arg-type]
    status, mdl = NdisAllocateBuffer(pool, memory, size)  # type: ignore[arg-type]
    assert status == NDIS_STATUS.SUCCESS
    assert mdl is not None
    return mdl


# --- allocation and exhaustion (rule 8) ---------------------------------------------------------


def test_rule_8_allocate_buffer_describes_memory(pool: BufferPool) -> None:
    memory = bytearray(b"abcdef")
    mdl = alloc(pool, memory, 4)
    assert NDIS_BUFFER is MDL
    assert mdl.ByteCount == 4
    assert mdl.ByteOffset == 0
    assert mdl.Next is None
    assert mdl.StartVa is memory
    assert mdl.ownership is Ownership.ALLOCATED
    assert mdl.pool is pool
    assert bytes(NdisQueryBuffer(mdl)[0]) == b"abcd"
    assert pool.outstanding == 1
    assert pool.allocations == 1


def test_rule_8_exhausted_pool_returns_failure_not_resources(pool: BufferPool) -> None:
    memory = bytearray(16)
    mdls = [alloc(pool, memory) for _ in range(4)]
    status, mdl = NdisAllocateBuffer(pool, memory, 16)
    assert status is NDIS_STATUS.FAILURE  # buffer pools never say RESOURCES
    assert mdl is None
    assert pool.failures == 1
    assert pool.outstanding == 4
    NdisFreeBuffer(mdls[0])
    status, mdl = NdisAllocateBuffer(pool, memory, 16)
    assert status == NDIS_STATUS.SUCCESS
    assert mdl is not None


def test_rule_8_zero_descriptor_pool_always_fails(kernel: Kernel) -> None:
    _, pool = kernel.NdisAllocateBufferPool(0)
    assert NdisAllocateBuffer(pool, b"x", 1) == (NDIS_STATUS.FAILURE, None)


def test_rule_8_negative_pool_size_refused(kernel: Kernel) -> None:
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisAllocateBufferPool(-1)
    assert err.value.rule == "R8"


def test_length_outside_memory_refused(pool: BufferPool) -> None:
    for length in (-1, 5):
        with pytest.raises(NdisUsageError) as err:
            NdisAllocateBuffer(pool, bytearray(4), length)
        assert err.value.rule == "PY-BUFFER-RANGE"
    assert pool.outstanding == 0


def test_zero_length_buffer(pool: BufferPool) -> None:
    mdl = alloc(pool, bytearray(8), 0)
    assert NdisBufferLength(mdl) == 0
    assert pages_spanned(0, 0) == 0


def test_allocate_at_dirql_refused(kernel: Kernel, pool: BufferPool) -> None:
    with kernel.irql.at(DIRQL), pytest.raises(IrqlError) as err:
        NdisAllocateBuffer(pool, b"x", 1)
    assert err.value.rule == "R62"


def test_bad_pool_handle(kernel: Kernel) -> None:
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateBuffer(object(), b"x", 1)  # type: ignore[arg-type]
    assert err.value.rule == "PY-BAD-HANDLE"


# --- zero copy ----------------------------------------------------------------------------------


def test_zero_copy_write_to_memory_shows_in_query_view(pool: BufferPool) -> None:
    memory = bytearray(b"hello")
    mdl = alloc(pool, memory)
    view, length = NdisQueryBuffer(mdl)
    assert length == 5
    memory[0] = ord("J")
    assert bytes(view) == b"Jello"


def test_zero_copy_write_through_view_reaches_memory(pool: BufferPool) -> None:
    memory = bytearray(b"hello")
    mdl = alloc(pool, memory)
    view, _ = NdisQueryBufferSafe(mdl)
    view[4] = ord("!")
    assert memory == b"hell!"
    assert NdisBufferVirtualAddress(mdl).obj is memory


def test_readonly_memory_gives_readonly_view(pool: BufferPool) -> None:
    mdl = alloc(pool, b"const")
    view, _ = NdisQueryBuffer(mdl)
    assert view.readonly
    with pytest.raises(TypeError):
        view[0] = 0


def test_mmap_memory_works(pool: BufferPool) -> None:
    with mmap.mmap(-1, PAGE_SIZE) as region:
        mdl = alloc(pool, region, 10)
        region[0:3] = b"abc"
        assert bytes(NdisQueryBuffer(mdl)[0][:3]) == b"abc"
        NdisQueryBuffer(mdl)[0][3] = ord("d")
        assert region[3:4] == b"d"
        NdisFreeBuffer(mdl)  # releases the view, so the mmap can close


def test_non_byte_memoryview_is_cast_to_bytes(pool: BufferPool) -> None:
    words = array.array("I", [1, 2])
    mdl = alloc(pool, memoryview(words), 8)
    assert mdl.MappedSystemVa.format == "B"
    assert len(NdisQueryBuffer(mdl)[0]) == 8


def test_caller_memoryview_survives_free(pool: BufferPool) -> None:
    memory = bytearray(4)
    caller_view = memoryview(memory)
    mdl = alloc(pool, caller_view)
    NdisFreeBuffer(mdl)
    caller_view[0] = 7  # the caller's own view was not released
    assert memory[0] == 7


def test_free_releases_the_memory_so_bytearray_can_grow(pool: BufferPool) -> None:
    memory = bytearray(4)
    mdl = alloc(pool, memory)
    with pytest.raises(BufferError):
        memory.extend(b"more")  # pinned while described
    NdisFreeBuffer(mdl)
    memory.extend(b"more")
    assert len(memory) == 8


def test_failed_allocation_does_not_pin_memory(kernel: Kernel) -> None:
    _, pool = kernel.NdisAllocateBufferPool(0)
    memory = bytearray(4)
    assert NdisAllocateBuffer(pool, memory, 4) == (NDIS_STATUS.FAILURE, None)
    memory.extend(b"x")


# --- accessors ----------------------------------------------------------------------------------


def test_accessors(pool: BufferPool) -> None:
    memory = bytearray(range(10))
    mdl = alloc(pool, memory, 6)
    assert NdisQueryBufferOffset(mdl) == (0, 6)
    assert NdisBufferLength(mdl) == 6
    assert MmGetMdlByteCount(mdl) == 6
    assert MmGetMdlByteOffset(mdl) == 0
    assert bytes(MmGetSystemAddressForMdlSafe(mdl)) == bytes(range(6))
    other = alloc(pool, memory)
    mdl.Next = other
    assert NdisGetNextBuffer(mdl) is other
    assert NDIS_BUFFER_LINKAGE(mdl) is other
    assert NdisGetNextBuffer(other) is None
    assert list(iter_mdl_chain(mdl)) == [mdl, other]
    assert list(iter_mdl_chain(None)) == []
    assert "6B ALLOCATED" in repr(mdl)


@pytest.mark.parametrize(
    ("length", "pages"), [(0, 0), (1, 1), (PAGE_SIZE, 1), (PAGE_SIZE + 1, 2), (3 * PAGE_SIZE, 3)]
)
def test_pages_spanned_and_size(pool: BufferPool, length: int, pages: int) -> None:
    assert pages_spanned(0, length) == pages
    mdl = alloc(pool, bytearray(max(length, 1)), length)
    assert mdl.Size == 48 + 8 * pages


def test_pages_spanned_counts_byte_offset() -> None:
    assert pages_spanned(PAGE_SIZE - 1, 2) == 2
    assert pages_spanned(100, 10) == 1


def test_adjust_buffer_length_limits(pool: BufferPool) -> None:
    memory = bytearray(10)
    mdl = alloc(pool, memory, 10)
    NdisAdjustBufferLength(mdl, 3)
    assert NdisQueryBuffer(mdl)[1] == 3
    assert len(NdisQueryBuffer(mdl)[0]) == 3
    NdisAdjustBufferLength(mdl, 10)  # regrow up to the memory mapped
    assert NdisBufferLength(mdl) == 10
    NdisAdjustBufferLength(mdl, 0)
    for bad in (11, -1):
        with pytest.raises(NdisUsageError) as err:
            NdisAdjustBufferLength(mdl, bad)
        assert err.value.rule == "PY-BUFFER-RANGE"
    assert NdisBufferLength(mdl) == 0


def test_adjust_buffer_length_invalidates_packet_counts(kernel: Kernel, pool: BufferPool) -> None:
    _, ppool = kernel.NdisAllocatePacketPool(1, 0)
    assert ppool is not None
    _, packet = NdisAllocatePacket(ppool)
    assert packet is not None
    mdl = alloc(pool, bytearray(10))
    NdisChainBufferAtBack(packet, mdl)
    assert NdisQueryPacket(packet)[3] == 10
    NdisAdjustBufferLength(mdl, 4)
    assert packet.Private.ValidCounts is False
    assert NdisQueryPacket(packet)[3] == 4


def test_mdl_chain_bytes(pool: BufferPool) -> None:
    a = alloc(pool, b"abc")
    b = alloc(pool, b"defg")
    a.Next = b
    assert mdl_chain_bytes(a) == b"abcdefg"
    assert mdl_chain_bytes(a, 2) == b"cdefg"
    assert mdl_chain_bytes(a, 3, 2) == b"de"
    assert mdl_chain_bytes(a, 1, 100) == b"bcdefg"
    assert mdl_chain_bytes(a, 0, 0) == b""
    assert mdl_chain_bytes(a, 7) == b""
    assert mdl_chain_bytes(None) == b""


# --- freeing (rule 5) and leaks -----------------------------------------------------------------


def test_rule_5_freeing_chained_buffer_refused(kernel: Kernel, pool: BufferPool) -> None:
    _, ppool = kernel.NdisAllocatePacketPool(1, 0)
    assert ppool is not None
    _, packet = NdisAllocatePacket(ppool)
    assert packet is not None
    mdl = alloc(pool, bytearray(4))
    NdisChainBufferAtBack(packet, mdl)
    with pytest.raises(NdisUsageError) as err:
        NdisFreeBuffer(mdl)
    assert err.value.rule == "R5"
    assert mdl.ownership is Ownership.ALLOCATED
    assert pool.outstanding == 1
    assert NdisUnchainBufferAtFront(packet) is mdl
    NdisFreeBuffer(mdl)
    assert pool.outstanding == 0
    assert pool.frees == 1


def test_double_free_and_use_after_free(pool: BufferPool) -> None:
    mdl = alloc(pool, bytearray(4))
    NdisFreeBuffer(mdl)
    with pytest.raises(NdisUsageError) as err:
        NdisFreeBuffer(mdl)
    assert err.value.rule == "PY-DOUBLE-FREE"
    for use in (NdisQueryBuffer, NdisBufferLength, NdisQueryBufferOffset, NdisBufferVirtualAddress):
        with pytest.raises(NdisUsageError) as err:
            use(mdl)
        assert err.value.rule == "PY-USE-AFTER-FREE"
    with pytest.raises(NdisUsageError):
        NdisAdjustBufferLength(mdl, 1)
    assert pool.outstanding == 0


def test_free_not_an_mdl() -> None:
    with pytest.raises(NdisUsageError) as err:
        NdisFreeBuffer(object())  # type: ignore[arg-type]
    assert err.value.rule == "PY-BAD-HANDLE"


def test_pool_leak_listing(kernel: Kernel) -> None:
    kernel = Kernel(verifier=True)
    _, pool = kernel.NdisAllocateBufferPool(4)
    kept = alloc(pool, bytearray(4))
    freed = alloc(pool, bytearray(4))
    NdisFreeBuffer(freed)
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreeBufferPool(pool)
    assert err.value.rule == "PY-POOL-LEAK"
    assert repr(kept) in str(err.value)
    assert "1 buffer(s)" in str(err.value)
    assert [entry.event for entry in err.value.history] == [Event.ALLOCATE]
    assert pool in kernel.pools
    NdisFreeBuffer(kept)
    kernel.NdisFreeBufferPool(pool)
    assert pool.freed
    assert pool not in kernel.pools


def test_freed_pool_handle_invalid(kernel: Kernel, pool: BufferPool) -> None:
    kernel.NdisFreeBufferPool(pool)
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreeBufferPool(pool)
    assert err.value.rule == "PY-BAD-HANDLE"
    with pytest.raises(NdisUsageError) as err:
        NdisAllocateBuffer(pool, b"x", 1)
    assert err.value.rule == "PY-BAD-HANDLE"


def test_history_only_with_verifier(pool: BufferPool) -> None:
    assert alloc(pool, b"x").history is None
    kernel = Kernel(verifier=True)
    _, vpool = kernel.NdisAllocateBufferPool(1)
    mdl = alloc(vpool, b"x")
    assert mdl.history is not None
    NdisFreeBuffer(mdl)
    assert [e.event for e in mdl.history] == [Event.ALLOCATE, Event.FREE]


# --- pool-less MDLs (NDIS 6) --------------------------------------------------------------------


def test_allocate_and_free_mdl(kernel: Kernel) -> None:
    memory = bytearray(b"xyz")
    mdl = kernel.NdisAllocateMdl(None, memory, 3)
    assert mdl.pool is None
    assert bytes(NdisQueryBuffer(mdl)[0]) == b"xyz"
    kernel.NdisFreeMdl(mdl)
    assert mdl.ownership is Ownership.FREE
    memory.append(0)  # released
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreeMdl(mdl)
    assert err.value.rule == "PY-DOUBLE-FREE"


def test_free_mdl_refuses_pool_buffer(kernel: Kernel, pool: BufferPool) -> None:
    mdl = alloc(pool, b"x")
    with pytest.raises(NdisUsageError) as err:
        kernel.NdisFreeMdl(mdl)
    assert err.value.rule == "PY-WRONG-FREE"
    NdisFreeBuffer(mdl)
    assert pool.outstanding == 0


def test_pool_less_mdl_freed_with_free_buffer(kernel: Kernel) -> None:
    mdl = kernel.NdisAllocateMdl(None, b"x", 1)
    NdisFreeBuffer(mdl)
    assert mdl.ownership is Ownership.FREE


# --- threads ------------------------------------------------------------------------------------


def test_pool_capacity_holds_under_threads(kernel: Kernel) -> None:
    _, pool = kernel.NdisAllocateBufferPool(3)
    memory = bytearray(8)
    peak = 0
    peak_lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        nonlocal peak
        try:
            for _ in range(500):
                status, mdl = NdisAllocateBuffer(pool, memory, 8)
                if mdl is None:
                    assert status == NDIS_STATUS.FAILURE
                    continue
                with peak_lock:
                    peak = max(peak, len(pool.live))
                NdisFreeBuffer(mdl)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert peak <= 3
    assert pool.outstanding == 0
    assert pool.allocations == pool.frees
    assert pool.allocations + pool.failures == 2000
