"""MDL / NDIS_BUFFER: zero-copy descriptors of caller memory, and buffer pools.

Theory of operation
-------------------
An MDL describes ``ByteCount`` bytes of memory the caller owns; NDIS 5 calls it NDIS_BUFFER.
pyndis keeps the real field names (``Next``, ``Size``, ``MdlFlags``, ``Process``,
``MappedSystemVa``, ``StartVa``, ``ByteCount``, ``ByteOffset``) and points ``MappedSystemVa`` at
a ``memoryview`` of the caller's object (``bytes``, ``bytearray``, ``mmap``, ``memoryview``):
describing memory never copies a byte. Writes through the view reach the caller's object when
it is writable.

Addresses are modelled, not real: each buffer is mapped as if it started on a page boundary
(``ByteOffset == 0``), so the pages an MDL spans are ``ceil(ByteCount / PAGE_SIZE)``. ``StartVa``
holds the underlying memory object.

Buffer descriptors come from a buffer pool (``NdisAllocateBufferPool``) whose size is enforced:
an empty pool makes ``NdisAllocateBuffer`` return ``NDIS_STATUS_FAILURE`` (rule 8; buffer
allocation reports FAILURE, never RESOURCES). ``NdisAllocateMdl`` (NDIS 6) needs no pool.

Each MDL has one ``ownership`` field (FREE/ALLOCATED; see :mod:`pyndis.ownership`) and
remembers the packet it is chained to, so freeing a buffer that a packet still chains is
refused (rule 5) and a buffer pool freed with buffers outstanding lists the leaked ones.

Freeing an MDL releases its view of the memory (a live view pins a ``bytearray``'s size), so
the caller can resize its buffer again; views handed out earlier by ``NdisQueryBuffer`` stay
valid until the caller drops them. Buffer pools take a lock around their capacity check and
counters, so several Python threads may share one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Union

from .constants import DISPATCH_LEVEL, PAGE_SIZE, POINTER_SIZE
from .errors import NdisError, NdisUsageError
from .hostctx import HostContext, PoolBase
from .ownership import MOVES, Event, History, Ownership, transition
from .status import NDIS_STATUS

if TYPE_CHECKING:
    import mmap

#: Anything an MDL can describe.
Memory = Union[bytes, bytearray, memoryview, "mmap.mmap"]

# MDL_* flag bits (wdm.h).
MDL_MAPPED_TO_SYSTEM_VA = 0x0001
MDL_PAGES_LOCKED = 0x0002
MDL_SOURCE_IS_NONPAGED_POOL = 0x0004
MDL_ALLOCATED_FIXED_SIZE = 0x0008
MDL_PARTIAL = 0x0010
MDL_NETWORK_HEADER = 0x1000

#: sizeof(MDL) on amd64 (eight fields), before the PFN array.
_MDL_HEADER_SIZE = 48
_PAGE_MASK = PAGE_SIZE - 1
#: MdlFlags of every MDL the model builds (nonpaged, mapped, fixed size)
_POOL_MDL_FLAGS = MDL_SOURCE_IS_NONPAGED_POOL | MDL_MAPPED_TO_SYSTEM_VA | MDL_ALLOCATED_FIXED_SIZE

# Enum members as module globals: NdisAllocateBuffer / NdisFreeBuffer read them on every call,
# and an Enum class attribute costs ~70 ns on CPython 3.11 (a global ~5).
_ALLOCATED = Ownership.ALLOCATED
_FREE = Ownership.FREE
_EV_ALLOCATE = Event.ALLOCATE
_EV_FREE = Event.FREE
#: The free move, from the ownership table: NdisFreeBuffer writes it out for a buffer without a
#: history (verifier off), as pyndis.ownership describes (and the packet pool does).
_FREE_FROM, _FREE_TO = MOVES[Event.FREE]
_SUCCESS = NDIS_STATUS.SUCCESS
_FAILURE = NDIS_STATUS.FAILURE
_DISPATCH = int(DISPATCH_LEVEL)

# MM_PAGE_PRIORITY values for NdisQueryBufferSafe / MmGetSystemAddressForMdlSafe.
LowPagePriority = 0
NormalPagePriority = 16
HighPagePriority = 32


def pages_spanned(byte_offset: int, length: int) -> int:
    """ADDRESS_AND_SIZE_TO_SPAN_PAGES."""
    if length == 0:
        return 0
    return (byte_offset + length + PAGE_SIZE - 1) // PAGE_SIZE


class MDL:
    """A memory descriptor list entry (== NDIS_BUFFER)."""

    __slots__ = (
        "ByteCount",
        "ByteOffset",
        "MappedSystemVa",
        "MdlFlags",
        "Next",
        "Process",
        "Size",
        "StartVa",
        "capacity",
        "history",
        "ownership",
        "packet",
        "pool",
    )

    def __init__(self, memory: Memory, length: int, pool: BufferPool | None) -> None:
        # Always a view of our own (even over a caller's memoryview), so that freeing the MDL
        # can release it and the caller may resize its bytearray again.
        view = memoryview(memory)
        if view.itemsize != 1 or view.ndim != 1:
            view = view.cast("B")
        capacity = len(view)
        if not 0 <= length <= capacity:
            raise NdisUsageError(
                f"buffer length {length} outside the {capacity} bytes of the memory given",
                rule="PY-BUFFER-RANGE",
            )
        self.Next: MDL | None = None
        self.ByteOffset = 0
        self.ByteCount = length
        # pages_spanned(0, length), inlined: MDLs are made on the buffer hot path
        self.Size = _MDL_HEADER_SIZE + POINTER_SIZE * ((length + _PAGE_MASK) // PAGE_SIZE)
        self.MdlFlags = _POOL_MDL_FLAGS
        self.Process: object | None = None
        self.StartVa: object = memory
        #: the whole view handed in; ByteCount bytes of it are described
        self.MappedSystemVa: memoryview = view
        self.capacity = capacity
        self.pool = pool
        self.ownership = _ALLOCATED
        self.history: History | None = None
        #: the NDIS_PACKET this buffer is chained to (None if unchained)
        self.packet: Any = None

    @property
    def data(self) -> memoryview:
        """The ``ByteCount`` bytes described (a view, not a copy)."""
        return self.MappedSystemVa[self.ByteOffset : self.ByteOffset + self.ByteCount]

    def __repr__(self) -> str:
        return f"<MDL {self.ByteCount}B {self.ownership.name} at 0x{id(self):x}>"


#: NDIS 5 name of an MDL.
NDIS_BUFFER = MDL


def iter_mdl_chain(first: MDL | None) -> Iterator[MDL]:
    """Walk an MDL chain through ``Next``."""
    mdl = first
    while mdl is not None:
        yield mdl
        mdl = mdl.Next


class BufferPool(PoolBase):
    """An NDIS buffer pool: at most ``NumberOfDescriptors`` buffers out at once."""

    kind = "buffer pool"

    def __init__(self, host: HostContext, number_of_descriptors: int, tag: str = "") -> None:
        super().__init__(host, tag)
        self.capacity = number_of_descriptors
        self.live: set[MDL] = set()
        self.lock = threading.Lock()


class BufferDdis:
    """Kernel DDIs that create buffer pools and pool-less MDLs (mixed into ``Ndis``)."""

    irql: Any

    def NdisAllocateBufferPool(self, NumberOfDescriptors: int) -> tuple[NDIS_STATUS, BufferPool]:
        """NdisAllocateBufferPool(&Status, &PoolHandle, NumberOfDescriptors)."""
        assert isinstance(self, HostContext)
        self.irql.check_at_most("NdisAllocateBufferPool", self.current_actor)
        if NumberOfDescriptors < 0:
            raise NdisUsageError(
                f"NumberOfDescriptors {NumberOfDescriptors} is negative", rule="R8"
            )
        return NDIS_STATUS.SUCCESS, BufferPool(self, NumberOfDescriptors)

    def NdisFreeBufferPool(self, PoolHandle: BufferPool) -> None:
        """NdisFreeBufferPool: every buffer must have been freed first."""
        _check_pool(PoolHandle)
        if PoolHandle.live:
            leaked = sorted(PoolHandle.live, key=id)
            raise NdisUsageError(
                f"NdisFreeBufferPool with {len(leaked)} buffer(s) still allocated "
                f"(leaked: {leaked[:4]})",
                rule="PY-POOL-LEAK",
                subject=PoolHandle,
                history=leaked[0].history.entries if leaked[0].history is not None else None,
            )
        PoolHandle._retire()

    def NdisAllocateMdl(self, NdisHandle: object, VirtualAddress: Memory, Length: int) -> MDL:
        """NdisAllocateMdl (NDIS 6): an MDL over caller memory, no pool needed."""
        assert isinstance(self, HostContext)
        self.irql.check_at_most("NdisAllocateMdl", self.current_actor)
        mdl = MDL(VirtualAddress, Length, None)
        mdl.history = self.history()
        return mdl

    def NdisFreeMdl(self, Mdl: MDL) -> None:
        """NdisFreeMdl (NDIS 6): only for MDLs from NdisAllocateMdl."""
        if isinstance(Mdl, MDL) and Mdl.pool is not None:
            raise NdisUsageError(
                f"NdisFreeMdl({Mdl!r}): it came from a buffer pool; free it with NdisFreeBuffer",
                rule="PY-WRONG-FREE",
                subject=Mdl,
            )
        _free_mdl(Mdl)
        Mdl.MappedSystemVa.release()


def _check_pool(pool: object) -> None:
    if not isinstance(pool, BufferPool):
        raise NdisUsageError(f"{pool!r} is not a buffer pool handle", rule="PY-BAD-HANDLE")
    if pool.freed:
        raise NdisUsageError(f"{pool!r} was already freed", rule="PY-BAD-HANDLE")


def NdisAllocateBuffer(
    PoolHandle: BufferPool, VirtualAddress: Memory, Length: int
) -> tuple[NDIS_STATUS, MDL | None]:
    """NdisAllocateBuffer(&Status, &Buffer, PoolHandle, VirtualAddress, Length).

    Returns SUCCESS and the buffer, or FAILURE and None when the pool is exhausted.
    """
    # A hot path: checks written out, enum members from globals (see above).
    if type(PoolHandle) is not BufferPool or PoolHandle.freed:
        _check_pool(PoolHandle)
    host = PoolHandle.host
    if host.irql.level > _DISPATCH:
        host.irql.check_at_most("NdisAllocateBuffer", host.current_actor)
    mdl = MDL(VirtualAddress, Length, PoolHandle)
    lock = PoolHandle.lock
    lock.acquire()
    try:
        live = PoolHandle.live
        if len(live) >= PoolHandle.capacity:
            PoolHandle.failures += 1
            mdl.MappedSystemVa.release()
            return _FAILURE, None
        live.add(mdl)
        PoolHandle.outstanding += 1
        PoolHandle.allocations += 1
    finally:
        lock.release()
    if host.track_history:
        history = mdl.history = History(host.scheduler.clock)
        history.record(_EV_ALLOCATE, _FREE, _ALLOCATED)
    return _SUCCESS, mdl


def _free_mdl(mdl: MDL) -> None:
    if not isinstance(mdl, MDL):
        raise NdisUsageError(f"{mdl!r} is not an MDL", rule="PY-BAD-HANDLE")
    if mdl.packet is not None:
        raise _chained_error(mdl)
    transition(mdl, _EV_FREE)


def _chained_error(mdl: MDL) -> NdisError:
    return NdisUsageError(
        f"{mdl!r} freed while still chained to {mdl.packet!r}; unchain it first",
        rule="R5",
        subject=mdl,
        history=mdl.history.entries if mdl.history else None,
    )


def NdisFreeBuffer(Buffer: MDL) -> None:
    """NdisFreeBuffer: return a buffer descriptor to its pool (the memory stays the caller's)."""
    pool = Buffer.pool if type(Buffer) is MDL else None
    if pool is None:
        _free_mdl(Buffer)
    else:
        lock = pool.lock
        lock.acquire()
        try:
            # _free_mdl, written out (a hot path)
            if Buffer.packet is not None:
                raise _chained_error(Buffer)
            if Buffer.history is None and Buffer.ownership is _FREE_FROM:
                Buffer.ownership = _FREE_TO  # transition(), written out (see _FREE_FROM)
            else:
                transition(Buffer, _EV_FREE)  # records it, or raises (freed twice)
            pool.live.discard(Buffer)
            pool.outstanding -= 1
            pool.frees += 1
        finally:
            lock.release()
    Buffer.MappedSystemVa.release()


def _live(buffer: MDL) -> MDL:
    if buffer.ownership is not _ALLOCATED:
        raise NdisUsageError(
            f"{buffer!r} used after it was freed",
            rule="PY-USE-AFTER-FREE",
            subject=buffer,
            history=buffer.history.entries if buffer.history else None,
        )
    return buffer


def NdisQueryBuffer(Buffer: MDL) -> tuple[memoryview, int]:
    """NdisQueryBuffer(Buffer, &VirtualAddress, &Length): a view of the data, and its length."""
    _live(Buffer)
    return Buffer.data, Buffer.ByteCount


def NdisQueryBufferSafe(Buffer: MDL, Priority: int = NormalPagePriority) -> tuple[memoryview, int]:
    """NdisQueryBufferSafe(Buffer, &VirtualAddress, &Length, Priority)."""
    _live(Buffer)
    return Buffer.data, Buffer.ByteCount


def NdisQueryBufferOffset(Buffer: MDL) -> tuple[int, int]:
    """NdisQueryBufferOffset(Buffer, &Offset, &Length)."""
    _live(Buffer)
    return Buffer.ByteOffset, Buffer.ByteCount


def NdisBufferLength(Buffer: MDL) -> int:
    return _live(Buffer).ByteCount


def NdisBufferVirtualAddress(Buffer: MDL) -> memoryview:
    return _live(Buffer).data


def NdisAdjustBufferLength(Buffer: MDL, Length: int) -> None:
    """NdisAdjustBufferLength: shrink or regrow the described length within the memory mapped.

    Invalidates the cached counts of the packet the buffer is chained to.
    """
    _live(Buffer)
    if not 0 <= Length <= Buffer.capacity - Buffer.ByteOffset:
        raise NdisUsageError(
            f"NdisAdjustBufferLength to {Length} bytes; the memory mapped by {Buffer!r} holds "
            f"{Buffer.capacity - Buffer.ByteOffset}",
            rule="PY-BUFFER-RANGE",
        )
    Buffer.ByteCount = Length
    if Buffer.packet is not None:
        Buffer.packet.Private.ValidCounts = False


def NdisGetNextBuffer(CurrentBuffer: MDL) -> MDL | None:
    """NdisGetNextBuffer(CurrentBuffer, &NextBuffer)."""
    return CurrentBuffer.Next


def NDIS_BUFFER_LINKAGE(Buffer: MDL) -> MDL | None:
    return Buffer.Next


def MmGetMdlByteCount(Mdl: MDL) -> int:
    return Mdl.ByteCount


def MmGetMdlByteOffset(Mdl: MDL) -> int:
    return Mdl.ByteOffset


def MmGetSystemAddressForMdlSafe(Mdl: MDL, Priority: int = NormalPagePriority) -> memoryview:
    return _live(Mdl).data


def mdl_chain_bytes(first: MDL | None, offset: int = 0, length: int | None = None) -> bytes:
    """Copy ``length`` bytes starting ``offset`` bytes into an MDL chain (for wires and tests)."""
    out = bytearray()
    want = length
    for mdl in iter_mdl_chain(first):
        data = mdl.data
        if offset >= len(data):
            offset -= len(data)
            continue
        chunk = data[offset:] if want is None else data[offset : offset + want - len(out)]
        out += chunk
        offset = 0
        if want is not None and len(out) >= want:
            break
    return bytes(out)


__all__ = [
    "MDL",
    "MDL_ALLOCATED_FIXED_SIZE",
    "MDL_MAPPED_TO_SYSTEM_VA",
    "MDL_NETWORK_HEADER",
    "MDL_PAGES_LOCKED",
    "MDL_PARTIAL",
    "MDL_SOURCE_IS_NONPAGED_POOL",
    "NDIS_BUFFER",
    "NDIS_BUFFER_LINKAGE",
    "BufferDdis",
    "BufferPool",
    "HighPagePriority",
    "LowPagePriority",
    "Memory",
    "MmGetMdlByteCount",
    "MmGetMdlByteOffset",
    "MmGetSystemAddressForMdlSafe",
    "NdisAdjustBufferLength",
    "NdisAllocateBuffer",
    "NdisBufferLength",
    "NdisBufferVirtualAddress",
    "NdisFreeBuffer",
    "NdisGetNextBuffer",
    "NdisQueryBuffer",
    "NdisQueryBufferOffset",
    "NdisQueryBufferSafe",
    "NormalPagePriority",
    "iter_mdl_chain",
    "mdl_chain_bytes",
    "pages_spanned",
]
