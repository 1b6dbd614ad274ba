"""NDIS 6 descriptor allocation and free: NBLs, NBs, clones (rules 39-42).

Theory of operation
-------------------
Each allocating DDI checks its arguments first, takes a descriptor from the pool
(``NblPool.take``/``NbPool.take``: free list, limit, fault injection, counters, under the pool's
lock), then resets it and moves it FREE -> ALLOCATED. Each freeing DDI makes every check first
(ownership, clones, context, pre-allocated parts) and only then moves anything, so a refused
free leaves the descriptor exactly as it was.

What is freed with what is described in :mod:`pyndis.nblpool`, which re-exports these DDIs.
"""

from __future__ import annotations

import threading
import weakref

from .constants import NDIS_CLONE_FLAGS
from .errors import NdisUsageError
from .hostctx import HostContext
from .mdl import MDL
from .nbldesc import (
    DEAD,
    NET_BUFFER,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_CONTEXT,
    check_context_size,
    dead_error,
    history_of,
    iter_nbs,
    locate,
    partial_mdl,
)
from .nblops import drop_retreats
from .nblpoolbase import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
    NblPool,
    NbPool,
    nb_pool_handle,
    nbl_pool_handle,
)
from .ownership import Event, Ownership, can, illegal_transition, transition

_ULONG_MAX = 0xFFFFFFFF
_ALLOCATED = Ownership.ALLOCATED
# Event members as module globals: an Enum class attribute costs ~70 ns on CPython 3.11.
_EV_ALLOCATE = Event.ALLOCATE
_EV_FREE = Event.FREE
_CLONE_FLAGS = int(NDIS_CLONE_FLAGS.RESERVED | NDIS_CLONE_FLAGS.USE_ORIGINAL_MDLS)
_USE_ORIGINAL_MDLS = int(NDIS_CLONE_FLAGS.USE_ORIGINAL_MDLS)


# --- allocation and free -------------------------------------------------------------------------


def _checked_chain(chain: MDL | None, offset: int, length: int, rule: str) -> None:
    if chain is None:
        if offset or length:
            raise NdisUsageError(
                f"MdlChain is NULL, so DataOffset ({offset}) and DataLength ({length}) must be 0",
                rule=rule,
            )
        return
    if not (isinstance(offset, int) and 0 <= offset <= _ULONG_MAX):
        raise NdisUsageError(f"DataOffset {offset!r} is not a ULONG", rule=rule)
    if not (isinstance(length, int) and length >= 0):
        raise NdisUsageError(f"DataLength {length!r} is not a SIZE_T", rule=rule)
    total = 0
    mdl: MDL | None = chain
    while mdl is not None:
        if not isinstance(mdl, MDL):
            raise NdisUsageError(f"{mdl!r} in MdlChain is not an MDL", rule="PY-BAD-HANDLE")
        if mdl.ownership is not _ALLOCATED:
            raise NdisUsageError(f"{mdl!r} in MdlChain was freed", rule="PY-USE-AFTER-FREE")
        total += mdl.ByteCount
        mdl = mdl.Next
    if offset + length > total:
        raise NdisUsageError(
            f"DataOffset {offset} + DataLength {length} exceed the {total} bytes of MdlChain",
            rule="PY-NB-RANGE",
        )


def _check_context(size: int, backfill: int) -> None:
    check_context_size(size, "ContextSize", "PY-CONTEXT-SIZE")
    check_context_size(backfill, "ContextBackFill", "PY-CONTEXT-SIZE")


def _start_nbl(pool: NblPool, nbl: NET_BUFFER_LIST, context_size: int, backfill: int) -> None:
    nbl.reset()
    host = pool.host
    nbl.history = host.history() if host.track_history else None
    transition(nbl, _EV_ALLOCATE)
    size = context_size + backfill
    size = max(size, pool.ContextSize)
    if size:
        ctx = nbl.base_context
        if ctx is None:
            ctx = nbl.base_context = NET_BUFFER_LIST_CONTEXT(size, size - context_size, None)
        else:
            ctx.Next = None
            ctx.Size = size
            ctx.Offset = size - context_size
            ctx.ContextData = bytearray(size)
        nbl.Context = ctx


def _start_nb(nb: NET_BUFFER, chain: MDL | None, offset: int, length: int) -> None:
    nb.reset(chain, offset, length)
    pool = nb.NdisPoolHandle
    assert pool is not None
    host = pool.host
    nb.history = host.history() if host.track_history else None
    transition(nb, _EV_ALLOCATE)


def _start_own_data(nb: NET_BUFFER, size: int) -> None:
    mdl = nb.own_mdl
    assert mdl is not None
    mdl.Next = None
    mdl.ByteOffset = 0
    mdl.ByteCount = size
    _start_nb(nb, mdl, 0, size)


def NdisAllocateNetBufferList(
    PoolHandle: NblPool, ContextSize: int, ContextBackFill: int
) -> NET_BUFFER_LIST | None:
    """An NBL (with its pre-allocated NB, MDL and data if the pool has them), or None."""
    pool = nbl_pool_handle(PoolHandle, "NdisAllocateNetBufferList")
    if ContextSize or ContextBackFill:
        _check_context(ContextSize, ContextBackFill)
    nbl = pool.take()
    if nbl is None:
        return None
    _start_nbl(pool, nbl, ContextSize, ContextBackFill)
    nb = nbl.own_nb
    if nb is not None:
        if pool.DataSize:
            _start_own_data(nb, pool.DataSize)
        else:
            _start_nb(nb, None, 0, 0)
        nbl.FirstNetBuffer = nb
    return nbl


def NdisAllocateNetBufferAndNetBufferList(
    PoolHandle: NblPool,
    ContextSize: int,
    ContextBackFill: int,
    MdlChain: MDL | None,
    DataOffset: int,
    DataLength: int,
) -> NET_BUFFER_LIST | None:
    """An NBL with its pre-allocated NB over ``MdlChain`` (rule 39), or None."""
    pool = nbl_pool_handle(PoolHandle, "NdisAllocateNetBufferAndNetBufferList")
    if not pool.fAllocateNetBuffer or pool.DataSize:
        raise NdisUsageError(
            f"NdisAllocateNetBufferAndNetBufferList needs a pool with fAllocateNetBuffer=TRUE "
            f"and DataSize=0; {pool!r} has fAllocateNetBuffer={pool.fAllocateNetBuffer}, "
            f"DataSize={pool.DataSize}",
            rule="R39",
        )
    if ContextSize or ContextBackFill:
        _check_context(ContextSize, ContextBackFill)
    _checked_chain(MdlChain, DataOffset, DataLength, "R39")
    nbl = pool.take()
    if nbl is None:
        return None
    _start_nbl(pool, nbl, ContextSize, ContextBackFill)
    nb = nbl.own_nb
    assert nb is not None
    _start_nb(nb, MdlChain, DataOffset, DataLength)
    nbl.FirstNetBuffer = nb
    return nbl


def NdisAllocateNetBuffer(
    PoolHandle: NbPool, MdlChain: MDL | None, DataOffset: int, DataLength: int
) -> NET_BUFFER | None:
    """An NB over ``MdlChain`` from a pool without pre-allocated data, or None."""
    pool = nb_pool_handle(PoolHandle, "NdisAllocateNetBuffer")
    if pool.DataSize:
        raise NdisUsageError(
            f"NdisAllocateNetBuffer on {pool!r}, whose NBs carry pre-allocated data: use "
            "NdisAllocateNetBufferMdlAndData",
            rule="PY-POOL-KIND",
        )
    _checked_chain(MdlChain, DataOffset, DataLength, "R39")
    nb = pool.take()
    if nb is None:
        return None
    _start_nb(nb, MdlChain, DataOffset, DataLength)
    return nb


def NdisAllocateNetBufferMdlAndData(PoolHandle: NbPool) -> NET_BUFFER | None:
    """An NB with an MDL over DataSize bytes of data, from a pool with DataSize, or None."""
    pool = nb_pool_handle(PoolHandle, "NdisAllocateNetBufferMdlAndData")
    if not pool.DataSize:
        raise NdisUsageError(
            f"NdisAllocateNetBufferMdlAndData on {pool!r}, whose DataSize is 0",
            rule="PY-POOL-KIND",
        )
    nb = pool.take()
    if nb is None:
        return None
    _start_own_data(nb, pool.DataSize)
    return nb


def _free_check(obj: NET_BUFFER | NET_BUFFER_LIST) -> None:
    """Raise the ownership table's error unless ``obj`` may be freed now."""
    if not can(obj, _EV_FREE):
        raise illegal_transition(obj, _EV_FREE)


def NdisFreeNetBuffer(NetBuffer: NET_BUFFER) -> None:
    """Free an NB from NdisAllocateNetBuffer[MdlAndData] (its pre-allocated data with it)."""
    nb = NetBuffer
    if type(nb) is not NET_BUFFER:
        raise NdisUsageError(f"{nb!r} is not a NET_BUFFER", rule="PY-BAD-HANDLE")
    pool = nb.NdisPoolHandle
    if pool is None:
        raise NdisUsageError(
            f"{nb!r} did not come from an NDIS pool (rule 40: never from private memory)",
            rule="R40",
        )
    if nb.owner is not None or type(pool) is not NbPool:
        owner = nb.owner
        clone = owner is not None and owner.clone_flags is not None
        raise NdisUsageError(
            f"NdisFreeNetBuffer on {nb!r}, which belongs to {owner!r}: it is freed only with "
            + ("NdisFreeCloneNetBufferList" if clone else "its NET_BUFFER_LIST"),
            rule="R42" if clone else "R39",
            subject=nb,
            history=history_of(nb),
        )
    nb_pool_handle(pool, "NdisFreeNetBuffer")
    if nb.ownership is not _ALLOCATED:
        _free_check(nb)
    mdl = nb.own_mdl
    if mdl is not None and mdl.ownership is not _ALLOCATED:
        raise NdisUsageError(
            f"the MDL NdisAllocateNetBufferMdlAndData made for {nb!r} was freed on its own; "
            "it is freed only with the NET_BUFFER",
            rule="PY-WRONG-FREE",
            subject=nb,
        )
    if nb.retreats:
        drop_retreats(nb, "NdisFreeNetBuffer")
    transition(nb, _EV_FREE)
    pool.give_back(nb)


def NdisFreeNetBufferList(NetBufferList: NET_BUFFER_LIST) -> None:
    """Free an NBL and what was pre-allocated with it; NBs linked later are not freed.

    Every check comes first, so a refused free leaves everything as it was.
    """
    nbl = NetBufferList
    if type(nbl) is not NET_BUFFER_LIST:
        raise NdisUsageError(f"{nbl!r} is not a NET_BUFFER_LIST", rule="PY-BAD-HANDLE")
    if nbl.NdisPoolHandle is None:
        raise NdisUsageError(
            f"{nbl!r} did not come from an NDIS pool (rule 40: never from private memory)",
            rule="R40",
        )
    pool = nbl_pool_handle(nbl.NdisPoolHandle, "NdisFreeNetBufferList")
    if nbl.ownership is not _ALLOCATED:
        _free_check(nbl)
    if nbl.clone_flags is not None or nbl.ChildRefCount or nbl.context_stack:
        _refuse_free(nbl)
    nb = nbl.own_nb
    if nb is not None:
        if nb.ownership is not _ALLOCATED:
            _free_check(nb)
        mdl = nb.own_mdl
        if mdl is not None and mdl.ownership is not _ALLOCATED:
            raise NdisUsageError(
                f"the MDL pre-allocated with {nbl!r} was freed on its own; it is freed only "
                "with the NET_BUFFER_LIST",
                rule="R39",
                subject=nbl,
            )
        if nb.retreats:
            drop_retreats(nb, "NdisFreeNetBufferList")
        transition(nb, _EV_FREE)
    transition(nbl, _EV_FREE)
    pool.give_back(nbl)


def _refuse_free(nbl: NET_BUFFER_LIST) -> None:
    if nbl.clone_flags is not None:
        raise NdisUsageError(
            f"NdisFreeNetBufferList on the clone {nbl!r}: free clones with "
            "NdisFreeCloneNetBufferList",
            rule="R42",
            subject=nbl,
            history=history_of(nbl),
        )
    _check_no_children(nbl, "NdisFreeNetBufferList")
    _check_no_context(nbl, "NdisFreeNetBufferList")


def _check_no_children(nbl: NET_BUFFER_LIST, ddi: str) -> None:
    if nbl.ChildRefCount:
        raise NdisUsageError(
            f"{ddi} on {nbl!r} while {nbl.ChildRefCount} clone(s) of it are still allocated "
            "(free the clones first)",
            rule="R42",
            subject=nbl,
            history=history_of(nbl),
        )


def _check_no_context(nbl: NET_BUFFER_LIST, ddi: str) -> None:
    if nbl.context_stack:
        sizes = [size for size, _ in nbl.context_stack]
        raise NdisUsageError(
            f"{ddi} on {nbl!r} with context from NdisAllocateNetBufferListContext still "
            f"allocated (sizes {sizes}); free it with NdisFreeNetBufferListContext first",
            rule="R41",
            subject=nbl,
            history=history_of(nbl),
        )


# --- clones --------------------------------------------------------------------------------------

_internal_lock = threading.Lock()
_internal: weakref.WeakKeyDictionary[HostContext, tuple[NblPool, NbPool]] = (
    weakref.WeakKeyDictionary()
)
_refcount_lock = threading.Lock()


def _internal_pools(host: HostContext) -> tuple[NblPool, NbPool]:
    """The pools NDIS itself keeps for clones made without pool handles (one pair per kernel)."""
    with _internal_lock:
        pools = _internal.get(host)
        if pools is None:
            rate = float(getattr(host, "nbl_fault_rate", 0.0))
            nbl_params = NET_BUFFER_LIST_POOL_PARAMETERS(PoolTag="clon")
            nbl_pool = NblPool(host, nbl_params, None, None, rate)
            nb_pool = NbPool(host, NET_BUFFER_POOL_PARAMETERS(PoolTag="clon"), None, None, rate)
            pools = _internal[host] = (nbl_pool, nb_pool)
        return pools


def _clone_chain(nb: NET_BUFFER, use_original: bool) -> tuple[MDL | None, int]:
    """(MdlChain, DataOffset) for a clone of ``nb`` covering its used data only, no copy."""
    current, offset = nb.CurrentMdl, nb.CurrentMdlOffset
    if current is None and nb.MdlChain is not None:
        current, offset = locate(nb.MdlChain, nb.DataOffset)
    if use_original:
        return current, offset
    need = nb.DataLength
    head: MDL | None = None
    tail: MDL | None = None
    mdl = current
    while need > 0 and mdl is not None:
        take = min(mdl.ByteCount - offset, need)
        if take > 0:
            part = partial_mdl(mdl, offset, take)
            if tail is None:
                head = part
            else:
                tail.Next = part
            tail = part
            need -= take
        mdl = mdl.Next
        offset = 0
    return head, 0


def NdisAllocateCloneNetBufferList(
    OriginalNetBufferList: NET_BUFFER_LIST,
    NetBufferListPoolHandle: NblPool | None,
    NetBufferPoolHandle: NbPool | None,
    AllocateCloneFlags: int,
) -> NET_BUFFER_LIST | None:
    """A clone describing the original's used data without copying it (rule 42), or None."""
    original = OriginalNetBufferList
    if type(original) is not NET_BUFFER_LIST:
        raise NdisUsageError(f"{original!r} is not a NET_BUFFER_LIST", rule="PY-BAD-HANDLE")
    if DEAD[original.ownership]:
        raise dead_error(original, "NdisAllocateCloneNetBufferList")
    if not isinstance(AllocateCloneFlags, int) or AllocateCloneFlags & ~_CLONE_FLAGS:
        raise NdisUsageError(
            f"AllocateCloneFlags {AllocateCloneFlags!r} has bits other than NDIS_CLONE_FLAGS_*",
            rule="R42",
        )
    source = original.NdisPoolHandle
    assert source is not None
    nbl_handle: object = NetBufferListPoolHandle
    nb_handle: object = NetBufferPoolHandle
    if nbl_handle is None or nb_handle is None:
        internal = _internal_pools(source.host)
        nbl_handle = internal[0] if nbl_handle is None else nbl_handle
        nb_handle = internal[1] if nb_handle is None else nb_handle
    nbl_pool = nbl_pool_handle(nbl_handle, "NdisAllocateCloneNetBufferList")
    nb_pool = nb_pool_handle(nb_handle, "NdisAllocateCloneNetBufferList")
    if nbl_pool.fAllocateNetBuffer or nb_pool.DataSize:
        raise NdisUsageError(
            f"clone pools must not pre-allocate NET_BUFFERs or data ({nbl_pool!r}, {nb_pool!r})",
            rule="PY-POOL-KIND",
        )
    clone = nbl_pool.take()
    if clone is None:
        return None
    _start_nbl(nbl_pool, clone, 0, 0)
    clone.Context = None
    use_original = bool(AllocateCloneFlags & _USE_ORIGINAL_MDLS)
    nbs: list[NET_BUFFER] = []
    tail: NET_BUFFER | None = None
    for onb in iter_nbs(original):
        nb = nb_pool.take()
        if nb is None:
            _undo_clone(clone, nbl_pool, nbs)
            return None
        chain, offset = _clone_chain(onb, use_original)
        _start_nb(nb, chain, offset, onb.DataLength)
        nb.owner = clone
        if not use_original:
            nb.own_mdl = chain  # the partial MDLs NDIS built, freed with the clone
        nbs.append(nb)
        if tail is None:
            clone.FirstNetBuffer = nb
        else:
            tail.Next = nb
        tail = nb
    clone.ParentNetBufferList = original
    clone.clone_flags = AllocateCloneFlags
    clone.clone_nbs = nbs
    with _refcount_lock:
        original.ChildRefCount += 1
    return clone


def _undo_clone(clone: NET_BUFFER_LIST, nbl_pool: NblPool, nbs: list[NET_BUFFER]) -> None:
    for nb in nbs:
        _release_clone_nb(nb)
    transition(clone, _EV_FREE, "clone allocation failed")
    nbl_pool.give_back(clone)


def _release_clone_nb(nb: NET_BUFFER) -> None:
    drop_retreats(nb, "NdisFreeCloneNetBufferList")
    mdl = nb.own_mdl
    while mdl is not None:
        following = mdl.Next
        mdl.Next = None
        if mdl.ownership is _ALLOCATED:
            transition(mdl, _EV_FREE)
        mdl = following
    nb.own_mdl = None
    nb.owner = None
    transition(nb, _EV_FREE)
    pool = nb.NdisPoolHandle
    assert isinstance(pool, NbPool)
    pool.give_back(nb)


def NdisFreeCloneNetBufferList(CloneNetBufferList: NET_BUFFER_LIST, FreeCloneFlags: int) -> None:
    """Free a clone, its NBs and the MDLs NDIS built for it; the flags must match (rule 42)."""
    clone = CloneNetBufferList
    if type(clone) is not NET_BUFFER_LIST:
        raise NdisUsageError(f"{clone!r} is not a NET_BUFFER_LIST", rule="PY-BAD-HANDLE")
    pool = nbl_pool_handle(clone.NdisPoolHandle, "NdisFreeCloneNetBufferList")
    _free_check(clone)
    if clone.clone_flags is None:
        raise NdisUsageError(
            f"NdisFreeCloneNetBufferList on {clone!r}, which is not a clone "
            "(use NdisFreeNetBufferList)",
            rule="R42",
            subject=clone,
            history=history_of(clone),
        )
    if FreeCloneFlags != clone.clone_flags:
        raise NdisUsageError(
            f"NdisFreeCloneNetBufferList flags 0x{FreeCloneFlags:X} differ from the "
            f"AllocateCloneFlags 0x{clone.clone_flags:X} the clone was made with",
            rule="R42",
            subject=clone,
            history=history_of(clone),
        )
    _check_no_children(clone, "NdisFreeCloneNetBufferList")
    _check_no_context(clone, "NdisFreeCloneNetBufferList")
    for nb in clone.clone_nbs or ():
        _free_check(nb)
    for nb in clone.clone_nbs or ():
        _release_clone_nb(nb)
    transition(clone, _EV_FREE)
    parent = clone.ParentNetBufferList
    if parent is not None:
        with _refcount_lock:
            parent.ChildRefCount -= 1
    pool.give_back(clone)


__all__ = [
    "NdisAllocateCloneNetBufferList",
    "NdisAllocateNetBuffer",
    "NdisAllocateNetBufferAndNetBufferList",
    "NdisAllocateNetBufferList",
    "NdisAllocateNetBufferMdlAndData",
    "NdisFreeCloneNetBufferList",
    "NdisFreeNetBuffer",
    "NdisFreeNetBufferList",
]
