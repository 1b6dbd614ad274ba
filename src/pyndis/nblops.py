"""NBL context and NET_BUFFER data space: context, retreat, advance, NdisGetDataBuffer.

Theory of operation
-------------------
Context (``NdisAllocateNetBufferListContext``) stacks newest first as in NDIS: each
``NET_BUFFER_LIST_CONTEXT`` block has ``Size`` bytes of ``ContextData``, of which the bytes from
``Offset`` on are in use. A request first takes back-fill (``Offset`` shrinks) and allocates a
new block of ``ContextSize + ContextBackFill`` bytes, linked in front, only when the top block
lacks room. The NBL records each request, so ``NdisFreeNetBufferListContext`` must release the
newest one first, with its exact size; the context the NBL was allocated with cannot be
released (it goes with the NBL, rule 41). Sizes must be multiples of
MEMORY_ALLOCATION_ALIGNMENT (older pages; current ones say ``sizeof(void*)``, which divides it).

An NB's used data is the window (``DataOffset``, ``DataLength``) on its MDL chain; the bytes
before it are back-fill. Retreating by ``d <= DataOffset`` only moves the window (and
``CurrentMdl``/``CurrentMdlOffset`` with it). Otherwise NDIS, or the driver's ``NetAllocateMdl``,
provides an MDL of ``d + DataBackFill`` bytes (or more) whose last ``d`` bytes start the data;
it is chained in front of the MDL that held the old data start. When the old data start was
inside an MDL, a *partial* MDL (same memory, larger ``ByteOffset``: no copy) describes the rest
of it, so the chain stays contiguous and the caller's MDLs are never modified. The old unused
space is dropped from the chain; the NB remembers the chain it had (one record per allocating
retreat, newest last).

An advance moves the window forward. With ``FreeMdl=TRUE``, each allocated MDL that the data
start has moved past is freed, newest first (through ``NetFreeMdl`` when ``NetAllocateMdl`` made
it: NDIS frees only its own memory itself) and the chain from before that retreat comes back,
so "retreat d; ...; advance d, TRUE" leaves the NB exactly as it was. With ``FreeMdl=FALSE`` the
memory stays in the chain as back-fill for later retreats (the docs' "retains unused MDLs"). An
NB freed while still holding retreat memory is reported to the verifier (PY-RETREAT-LEAK).

``NdisGetDataBuffer`` returns a zero-copy ``memoryview`` when the bytes asked for lie in one MDL
at an address meeting the alignment. Modelled addresses put each mapped buffer on a page
boundary, so a byte's address is its MDL's ``ByteOffset`` plus its offset in the MDL.
Misaligned contiguous data is copied into memory NDIS allocates ("NDIS will allocate memory to
satisfy the alignment requirement"); data split over MDLs is copied into ``Storage`` when
given, and otherwise the answer is None.

Memory NDIS allocates here (retreat MDLs, aligned copies) comes from the NB's pool's fault
injector first, so a low-resources run can make any of it fail (rule 67).

Everything here is re-exported by :mod:`pyndis.nbl`, the public module.
"""

from __future__ import annotations

from .errors import NdisUsageError
from .mdl import MDL, Memory
from .nbldesc import (
    DEAD,
    NET_BUFFER,
    NET_BUFFER_ALLOCATE_MDL,
    NET_BUFFER_FREE_MDL,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_CONTEXT,
    RetreatRecord,
    chain_length,
    check_context_size,
    check_irql,
    dead_error,
    history_of,
    iter_nbs,
    locate,
    partial_mdl,
)
from .ownership import Event, Ownership, transition
from .status import NDIS_STATUS

_ULONG_MAX = 0xFFFFFFFF
_SUCCESS = NDIS_STATUS.SUCCESS
_RESOURCES = NDIS_STATUS.RESOURCES
_FAILURE = NDIS_STATUS.FAILURE


# --- context -----------------------------------------------------------------------------------


def NdisAllocateNetBufferListContext(
    NetBufferList: NET_BUFFER_LIST, ContextSize: int, ContextBackFill: int, PoolTag: int
) -> NDIS_STATUS:
    """Reserve ``ContextSize`` more bytes of context: SUCCESS, or RESOURCES if memory is short."""
    nbl = NetBufferList
    if DEAD[nbl.ownership]:
        raise dead_error(nbl, "NdisAllocateNetBufferListContext")
    check_irql(nbl.NdisPoolHandle, "NdisAllocateNetBufferListContext")
    check_context_size(ContextSize, "ContextSize", "PY-CONTEXT-SIZE")
    check_context_size(ContextBackFill, "ContextBackFill", "PY-CONTEXT-SIZE")
    top = nbl.Context
    if top is not None and top.Offset >= ContextSize:
        top.Offset -= ContextSize
        nbl.context_stack.append((ContextSize, None))
        return _SUCCESS
    pool = nbl.NdisPoolHandle
    if pool is not None and pool.inject_fault():
        return _RESOURCES
    block = NET_BUFFER_LIST_CONTEXT(ContextSize + ContextBackFill, ContextBackFill, top)
    nbl.Context = block
    nbl.context_stack.append((ContextSize, block))
    return _SUCCESS


def NdisFreeNetBufferListContext(NetBufferList: NET_BUFFER_LIST, ContextSize: int) -> None:
    """Release the newest context request; ``ContextSize`` must be the size it asked for."""
    nbl = NetBufferList
    if DEAD[nbl.ownership]:
        raise dead_error(nbl, "NdisFreeNetBufferListContext")
    check_irql(nbl.NdisPoolHandle, "NdisFreeNetBufferListContext")
    if not nbl.context_stack:
        raise NdisUsageError(
            f"NdisFreeNetBufferListContext({ContextSize}) on {nbl!r}, which has no context from "
            "NdisAllocateNetBufferListContext (the context it was allocated with is freed only "
            "with the NBL)",
            rule="PY-CONTEXT-UNDERFLOW",
            subject=nbl,
        )
    size, block = nbl.context_stack[-1]
    if size != ContextSize:
        raise NdisUsageError(
            f"NdisFreeNetBufferListContext({ContextSize}) on {nbl!r}: the newest context "
            f"allocation is {size} bytes; contexts are freed newest first with their own size",
            rule="PY-CONTEXT-SIZE",
            subject=nbl,
        )
    nbl.context_stack.pop()
    top = nbl.Context
    assert top is not None
    if block is not None:
        nbl.Context = top.Next
        top.Next = None
    else:
        top.Offset += size


def _context(nbl: NET_BUFFER_LIST, what: str) -> NET_BUFFER_LIST_CONTEXT:
    if DEAD[nbl.ownership]:
        raise dead_error(nbl, what)
    ctx = nbl.Context
    if ctx is None:
        raise NdisUsageError(f"{what} on {nbl!r}, which has no context", rule="PY-NO-CONTEXT")
    return ctx


def NET_BUFFER_LIST_CONTEXT_DATA_START(NetBufferList: NET_BUFFER_LIST) -> memoryview:
    """A writable view of the newest context's used bytes (ContextData + Offset)."""
    ctx = _context(NetBufferList, "NET_BUFFER_LIST_CONTEXT_DATA_START")
    return memoryview(ctx.ContextData)[ctx.Offset :]


def NET_BUFFER_LIST_CONTEXT_DATA_SIZE(NetBufferList: NET_BUFFER_LIST) -> int:
    ctx = _context(NetBufferList, "NET_BUFFER_LIST_CONTEXT_DATA_SIZE")
    return ctx.Size - ctx.Offset


# --- data space -------------------------------------------------------------------------------


def _live_nb(nb: NET_BUFFER, ddi: str) -> None:
    if DEAD[nb.ownership]:
        raise dead_error(nb, ddi)
    check_irql(nb.NdisPoolHandle, ddi)


def _new_mdl(
    nb: NET_BUFFER, size: int, handler: NET_BUFFER_ALLOCATE_MDL | None
) -> tuple[MDL | None, bool]:
    if handler is not None:
        mdl = handler(size)
        if mdl is not None and mdl.ByteCount < size:
            raise NdisUsageError(
                f"NetAllocateMdl({size}) returned {mdl!r}, which describes only "
                f"{mdl.ByteCount} bytes",
                rule="R43",
                subject=nb,
            )
        return mdl, True
    pool = nb.NdisPoolHandle
    if pool is not None and pool.inject_fault():
        return None, False
    return MDL(bytearray(size), size, None), False


def NdisRetreatNetBufferDataStart(
    NetBuffer: NET_BUFFER,
    DataOffsetDelta: int,
    DataBackFill: int,
    AllocateMdlHandler: NET_BUFFER_ALLOCATE_MDL | None = None,
) -> NDIS_STATUS:
    """Grow the used data space by ``DataOffsetDelta`` bytes at the front (rule 43).

    Returns SUCCESS, RESOURCES (no memory for a new MDL) or FAILURE (DataLength would overflow
    a ULONG). New memory is not zeroed by NDIS: the model gives zeroed bytes.
    """
    nb = NetBuffer
    _live_nb(nb, "NdisRetreatNetBufferDataStart")
    delta = DataOffsetDelta
    if not (isinstance(delta, int) and 0 <= delta <= _ULONG_MAX):
        raise NdisUsageError(f"DataOffsetDelta {delta!r} is not a ULONG", rule="R43")
    if not (isinstance(DataBackFill, int) and 0 <= DataBackFill <= _ULONG_MAX):
        raise NdisUsageError(f"DataBackFill {DataBackFill!r} is not a ULONG", rule="R43")
    if nb.DataLength + delta > _ULONG_MAX:
        return _FAILURE
    if delta <= nb.DataOffset:
        nb.DataOffset -= delta
        nb.DataLength += delta
        if delta <= nb.CurrentMdlOffset:
            nb.CurrentMdlOffset -= delta
        else:
            nb.CurrentMdl, nb.CurrentMdlOffset = locate(nb.MdlChain, nb.DataOffset)
        return _SUCCESS
    mdl, by_handler = _new_mdl(nb, delta + DataBackFill, AllocateMdlHandler)
    if mdl is None:
        return _RESOURCES
    current, offset = nb.CurrentMdl, nb.CurrentMdlOffset
    if current is None and nb.MdlChain is not None:
        current, offset = locate(nb.MdlChain, nb.DataOffset)
    partial: MDL | None = None
    if current is None:
        rest = None
    elif offset == 0:
        rest = current
    elif offset >= current.ByteCount:
        rest = current.Next
    else:
        partial = partial_mdl(current, offset, current.ByteCount - offset)
        partial.Next = current.Next
        rest = partial
    record = RetreatRecord(mdl, partial, nb.MdlChain, nb.DataOffset, by_handler)
    if nb.retreats is None:
        nb.retreats = [record]
    else:
        nb.retreats.append(record)
    mdl.Next = rest
    start = mdl.ByteCount - delta
    nb.MdlChain = mdl
    nb.DataOffset = start
    nb.DataLength += delta
    nb.CurrentMdl = mdl
    nb.CurrentMdlOffset = start
    return _SUCCESS


def NdisAdvanceNetBufferDataStart(
    NetBuffer: NET_BUFFER,
    DataOffsetDelta: int,
    FreeMdl: bool,
    FreeMdlHandler: NET_BUFFER_FREE_MDL | None = None,
) -> None:
    """Shrink the used data space by ``DataOffsetDelta`` bytes at the front (rule 44).

    With ``FreeMdl`` TRUE, memory a retreat allocated that the data start has moved past is
    freed (MDLs a driver's NetAllocateMdl made go to ``FreeMdlHandler``) and the chain the NB
    had before that retreat comes back.
    """
    nb = NetBuffer
    _live_nb(nb, "NdisAdvanceNetBufferDataStart")
    delta = DataOffsetDelta
    if not (isinstance(delta, int) and 0 <= delta <= nb.DataLength):
        raise NdisUsageError(
            f"NdisAdvanceNetBufferDataStart by {delta!r} bytes on {nb!r}: only "
            f"{nb.DataLength} bytes of used data space to release",
            rule="R44",
            subject=nb,
        )
    nb.DataOffset += delta
    nb.DataLength -= delta
    mdl = nb.CurrentMdl
    if mdl is None:
        nb.CurrentMdl, nb.CurrentMdlOffset = locate(nb.MdlChain, nb.DataOffset)
    else:
        offset = nb.CurrentMdlOffset + delta
        while offset >= mdl.ByteCount and mdl.Next is not None:
            offset -= mdl.ByteCount
            mdl = mdl.Next
        nb.CurrentMdl = mdl
        nb.CurrentMdlOffset = offset
    if FreeMdl and nb.retreats:
        _release_retreats(nb, FreeMdlHandler)


def _release_retreats(nb: NET_BUFFER, handler: NET_BUFFER_FREE_MDL | None) -> None:
    retreats = nb.retreats
    assert retreats is not None
    released = False
    while retreats:
        record = retreats[-1]
        if nb.MdlChain is not record.mdl or nb.DataOffset < record.mdl.ByteCount:
            break
        if record.by_handler and handler is None:
            raise NdisUsageError(
                f"{nb!r}: NdisAdvanceNetBufferDataStart(FreeMdl=TRUE) must free an MDL the "
                "driver's NetAllocateMdl made, but no FreeMdlHandler was given",
                rule="R44",
                subject=nb,
            )
        retreats.pop()
        nb.DataOffset = nb.DataOffset - record.mdl.ByteCount + record.offset
        nb.MdlChain = record.chain
        _free_retreat(record, handler)
        released = True
    if not retreats:
        nb.retreats = None
    if released:
        nb.CurrentMdl, nb.CurrentMdlOffset = locate(nb.MdlChain, nb.DataOffset)


def _free_retreat(record: RetreatRecord, handler: NET_BUFFER_FREE_MDL | None) -> None:
    record.mdl.Next = None
    if record.partial is not None:
        record.partial.Next = None
        transition(record.partial, Event.FREE)
    if record.by_handler:
        assert handler is not None
        handler(record.mdl)
    elif record.mdl.ownership is Ownership.ALLOCATED:
        transition(record.mdl, Event.FREE)


def drop_retreats(nb: NET_BUFFER, what: str) -> None:
    """Called when an NB is freed: memory still held by retreats leaks (reported, then dropped)."""
    retreats = nb.retreats
    if not retreats:
        return
    nb.retreats = None
    pool = nb.NdisPoolHandle
    if pool is not None:
        pool.host.flag(
            NdisUsageError(
                f"{what} on {nb!r} while {len(retreats)} retreat allocation(s) are still in its "
                "chain: advance with FreeMdl=TRUE first, or the memory leaks",
                rule="PY-RETREAT-LEAK",
                subject=nb,
                history=history_of(nb),
            )
        )
    for record in retreats:
        if record.partial is not None and record.partial.ownership is Ownership.ALLOCATED:
            transition(record.partial, Event.FREE)
        if not record.by_handler and record.mdl.ownership is Ownership.ALLOCATED:
            record.mdl.Next = None
            transition(record.mdl, Event.FREE)


def NdisRetreatNetBufferListDataStart(
    NetBufferList: NET_BUFFER_LIST,
    DataOffsetDelta: int,
    DataBackFill: int,
    AllocateMdlHandler: NET_BUFFER_ALLOCATE_MDL | None = None,
    FreeMdlHandler: NET_BUFFER_FREE_MDL | None = None,
) -> NDIS_STATUS:
    """Retreat every NB of an NBL; on failure the NBs already retreated are advanced back."""
    done: list[NET_BUFFER] = []
    for nb in iter_nbs(NetBufferList):
        status = NdisRetreatNetBufferDataStart(
            nb, DataOffsetDelta, DataBackFill, AllocateMdlHandler
        )
        if status != _SUCCESS:
            for back in done:
                NdisAdvanceNetBufferDataStart(back, DataOffsetDelta, True, FreeMdlHandler)
            return status
        done.append(nb)
    return _SUCCESS


def NdisAdvanceNetBufferListDataStart(
    NetBufferList: NET_BUFFER_LIST,
    DataOffsetDelta: int,
    FreeMdl: bool,
    FreeMdlHandler: NET_BUFFER_FREE_MDL | None = None,
) -> None:
    for nb in iter_nbs(NetBufferList):
        NdisAdvanceNetBufferDataStart(nb, DataOffsetDelta, FreeMdl, FreeMdlHandler)


def NdisGetDataBuffer(
    NetBuffer: NET_BUFFER,
    BytesNeeded: int,
    Storage: Memory | None,
    AlignMultiple: int,
    AlignOffset: int,
) -> memoryview | None:
    """The first ``BytesNeeded`` bytes of used data, contiguous (rule 45).

    * more than DataLength asked for: None;
    * the bytes lie in one MDL at an address that meets the alignment: a zero-copy view;
    * contiguous but misaligned: a view of an aligned copy NDIS allocates (None if that
      allocation fails);
    * split over MDLs: copied into ``Storage`` (a view of it is returned), or None without it.
    """
    nb = NetBuffer
    if not (
        isinstance(AlignMultiple, int)
        and 1 <= AlignMultiple <= 8192
        and AlignMultiple & (AlignMultiple - 1) == 0
    ):
        raise NdisUsageError(
            f"AlignMultiple {AlignMultiple!r} is not a power of two from 1 to 8192", rule="R45"
        )
    if not (isinstance(AlignOffset, int) and 0 <= AlignOffset < AlignMultiple):
        raise NdisUsageError(
            f"AlignOffset {AlignOffset!r} is not below AlignMultiple {AlignMultiple}", rule="R45"
        )
    _live_nb(nb, "NdisGetDataBuffer")
    if not isinstance(BytesNeeded, int) or BytesNeeded < 0:
        raise NdisUsageError(f"BytesNeeded {BytesNeeded!r} is not a ULONG", rule="R45")
    if BytesNeeded > nb.DataLength:
        return None
    mdl = nb.CurrentMdl
    offset = nb.CurrentMdlOffset
    if mdl is None:
        mdl, offset = locate(nb.MdlChain, nb.DataOffset)
        if mdl is None:
            return memoryview(b"")
    address = mdl.ByteOffset + offset
    if mdl.ByteCount - offset >= BytesNeeded:
        if (address - AlignOffset) % AlignMultiple == 0:
            return mdl.MappedSystemVa[address : address + BytesNeeded]
        pool = nb.NdisPoolHandle
        if pool is not None and pool.inject_fault():
            return None
        aligned = bytearray(AlignOffset + BytesNeeded)
        aligned[AlignOffset:] = mdl.MappedSystemVa[address : address + BytesNeeded]
        return memoryview(aligned)[AlignOffset:]
    if Storage is None:
        return None
    target = Storage if isinstance(Storage, memoryview) else memoryview(Storage)
    if target.ndim != 1 or target.itemsize != 1:
        target = target.cast("B")
    if target.readonly or len(target) < BytesNeeded:
        raise NdisUsageError(
            f"NdisGetDataBuffer Storage must be writable and hold {BytesNeeded} bytes "
            f"(got {len(target)} bytes, readonly={target.readonly})",
            rule="R45",
            subject=nb,
        )
    _copy_out(mdl, offset, target, BytesNeeded)
    return target[:BytesNeeded]


def _copy_out(mdl: MDL | None, offset: int, target: memoryview, count: int) -> None:
    done = 0
    while done < count:
        if mdl is None:
            raise NdisUsageError("NET_BUFFER data runs past its MDL chain", rule="PY-NB-RANGE")
        start = mdl.ByteOffset + offset
        take = min(mdl.ByteCount - offset, count - done)
        target[done : done + take] = mdl.MappedSystemVa[start : start + take]
        done += take
        mdl = mdl.Next
        offset = 0


# --- copies and checks -------------------------------------------------------------------------


def check_nb(nb: NET_BUFFER) -> None:
    """Raise unless DataOffset + DataLength fit the chain and CurrentMdl matches DataOffset."""
    total = chain_length(nb.MdlChain)
    if nb.DataOffset + nb.DataLength > total:
        raise NdisUsageError(
            f"{nb!r}: DataOffset {nb.DataOffset} + DataLength {nb.DataLength} exceed the "
            f"{total} bytes of its MDL chain",
            rule="PY-NB-RANGE",
            subject=nb,
        )
    expected = locate(nb.MdlChain, nb.DataOffset)
    if (nb.CurrentMdl, nb.CurrentMdlOffset) != expected:
        raise NdisUsageError(
            f"{nb!r}: CurrentMdl/CurrentMdlOffset ({nb.CurrentMdl!r}, {nb.CurrentMdlOffset}) do "
            f"not match DataOffset {nb.DataOffset} (expected {expected[0]!r}, {expected[1]})",
            rule="PY-NB-INCONSISTENT",
            subject=nb,
        )


def nb_bytes(nb: NET_BUFFER) -> bytes:
    """A copy of the NB's used data (DataLength bytes from DataOffset), for wires and tests."""
    need = nb.DataLength
    if need == 0:
        return b""
    mdl = nb.CurrentMdl
    offset = nb.CurrentMdlOffset
    if mdl is None:
        mdl, offset = locate(nb.MdlChain, nb.DataOffset)
    parts: list[memoryview] = []
    while need:
        if mdl is None:
            raise NdisUsageError(
                f"{nb!r}: DataLength runs {need} bytes past the end of its MDL chain",
                rule="PY-NB-RANGE",
                subject=nb,
            )
        start = mdl.ByteOffset + offset
        take = min(mdl.ByteCount - offset, need)
        parts.append(mdl.MappedSystemVa[start : start + take])
        need -= take
        mdl = mdl.Next
        offset = 0
    return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)


def nbl_bytes(nbl: NET_BUFFER_LIST) -> list[bytes]:
    """One frame (bytes) per NB of the NBL."""
    return [nb_bytes(nb) for nb in iter_nbs(nbl)]


__all__ = [
    "NET_BUFFER_LIST_CONTEXT_DATA_SIZE",
    "NET_BUFFER_LIST_CONTEXT_DATA_START",
    "NdisAdvanceNetBufferDataStart",
    "NdisAdvanceNetBufferListDataStart",
    "NdisAllocateNetBufferListContext",
    "NdisFreeNetBufferListContext",
    "NdisGetDataBuffer",
    "NdisRetreatNetBufferDataStart",
    "NdisRetreatNetBufferListDataStart",
    "check_nb",
    "drop_retreats",
    "nb_bytes",
    "nbl_bytes",
]
