"""NDIS 6 pools: NET_BUFFER_LIST and NET_BUFFER pools, allocation, clones (public module).

Theory of operation
-------------------
``NdisAllocateNetBufferListPool`` / ``NdisAllocateNetBufferPool`` (methods of the ``Ndis``
kernel) check their parameters against rule 38: a bad ``NDIS_OBJECT_HEADER`` is bug check 0x7C
code 0x21 in NDIS and an :class:`~pyndis.errors.NdisUsageError` ("R38") here, as are
fAllocateNetBuffer=FALSE with a DataSize, and a ContextSize that is not a multiple of
MEMORY_ALLOCATION_ALIGNMENT. Resource failures return None, like the NULL of the real DDI.

Pools have no size limit in NDIS. The model takes an optional ``limit=`` (most descriptors out
at once) and a fault injector, because a verifier must be able to make any pool allocation fail
(rule 67): ``pool.fail_next(n)`` fails the next ``n`` allocations, ``pool.fail_rate = p`` fails
each with probability ``p`` drawn from the kernel's seeded ``scheduler.random`` (reproducible),
and ``ndis.inject_nbl_faults(p)`` sets the rate of every NBL/NB pool of a kernel. Memory NDIS
allocates on behalf of a descriptor (NBL context, retreat MDLs) asks the same injector. A
failed allocation returns None (or RESOURCES where the DDI returns a status).

Descriptors are recycled: a freed NBL or NB goes on its pool's free list and the next
allocation resets every field (:meth:`NET_BUFFER_LIST.reset`, :meth:`NET_BUFFER.reset`) and
gives it a fresh history. Allocation and free take the pool's lock around the free list and
the counters, so several Python threads may share a pool. Ownership moves only through
:func:`~pyndis.ownership.transition` (ALLOCATE, FREE); freeing an NBL NDIS still owns raises
R48, freeing twice PY-DOUBLE-FREE.

What is freed with what (rules 39, 41, 42):

* An NBL from an ``fAllocateNetBuffer`` pool owns one pre-allocated NB (and, with DataSize, an
  MDL over DataSize bytes NDIS allocated, described whole: DataOffset 0, DataLength DataSize).
  They are freed only with the NBL, wherever the NB was linked meanwhile;
  ``NdisFreeNetBuffer`` on it is refused (R39).
* ``NdisFreeNetBufferList`` frees nothing else: NBs the driver linked to the NBL stay
  allocated in their own pools (the driver frees or reuses them, before or after). The
  context requested with ``NdisAllocateNetBufferListContext`` must be released first (R41).
* A clone (``NdisAllocateCloneNetBufferList``) gets one new NB per NB of the original,
  covering the used data only: with NDIS_CLONE_FLAGS_USE_ORIGINAL_MDLS its chain starts at the
  original's ``CurrentMdl`` (``DataOffset`` = ``CurrentMdlOffset``); without it NDIS builds
  partial MDLs over exactly the used bytes (``DataOffset`` 0). No byte is copied either way.
  The clone has no context, ``ParentNetBufferList`` = the original, whose ``ChildRefCount``
  counts live clones. Out-of-band data is not copied (NdisCopySendNetBufferListInfo does that).
  A clone is freed only by ``NdisFreeCloneNetBufferList`` with the same flags; a parent with
  live clones cannot be freed (R42). Without pool handles, clones come from two pools NDIS
  keeps per kernel.

Freeing a pool with descriptors out raises :class:`PoolLeakError` listing them (R41 for NBL
pools: bug check 0x7C code 0x27); the free descriptors become DESTROYED and the handle dead.

Layout: the kernel mixin is here; parameters and pool objects are in :mod:`pyndis.nblpoolbase`,
the allocation/free/clone DDIs in :mod:`pyndis.nblalloc`; this module re-exports both.
"""

from __future__ import annotations

from types import FunctionType
from typing import Any

from .constants import DISPATCH_LEVEL
from .errors import NdisUsageError
from .hostctx import HostContext
from .nblalloc import (
    NdisAllocateCloneNetBufferList,
    NdisAllocateNetBuffer,
    NdisAllocateNetBufferAndNetBufferList,
    NdisAllocateNetBufferList,
    NdisAllocateNetBufferMdlAndData,
    NdisFreeCloneNetBufferList,
    NdisFreeNetBuffer,
    NdisFreeNetBufferList,
)
from .nblpoolbase import (
    NDIS_OBJECT_HEADER,
    NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
    NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2,
    NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1,
    NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2,
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
    DescriptorPoolBase,
    NblPool,
    NbPool,
    PoolLeakError,
    check_nb_parameters,
    check_nbl_parameters,
    nb_pool_handle,
    nbl_pool_handle,
)
from .ownership import Event, transition

# --- the kernel's pool DDIs -----------------------------------------------------------------------


class NblPoolDdis:
    """Kernel DDIs that create and free NBL/NB pools (mixed into ``Ndis``)."""

    #: fault injection: the next N pool creations return None
    nbl_pool_creation_failures: int = 0
    #: fail_rate given to every NBL/NB pool created from now on (see inject_nbl_faults)
    nbl_fault_rate: float = 0.0

    def _pool_host(self, ddi: str) -> HostContext:
        assert isinstance(self, HostContext)
        if self.irql.level > DISPATCH_LEVEL:
            self.irql.check_at_most(ddi, self.current_actor)
        return self

    def _creation_fails(self) -> bool:
        if self.nbl_pool_creation_failures:
            self.nbl_pool_creation_failures -= 1
            return True
        return False

    def NdisAllocateNetBufferListPool(
        self,
        NdisHandle: object,
        Parameters: NET_BUFFER_LIST_POOL_PARAMETERS,
        *,
        limit: int | None = None,
    ) -> NblPool | None:
        """A new NBL pool, or None (resources). ``limit`` is the model's optional cap."""
        host = self._pool_host("NdisAllocateNetBufferListPool")
        params = check_nbl_parameters(Parameters)
        if self._creation_fails():
            return None
        return NblPool(host, params, NdisHandle, limit, self.nbl_fault_rate)

    def NdisAllocateNetBufferPool(
        self,
        NdisHandle: object,
        Parameters: NET_BUFFER_POOL_PARAMETERS,
        *,
        limit: int | None = None,
    ) -> NbPool | None:
        """A new NB pool, or None (resources). ``limit`` is the model's optional cap."""
        host = self._pool_host("NdisAllocateNetBufferPool")
        params = check_nb_parameters(Parameters)
        if self._creation_fails():
            return None
        return NbPool(host, params, NdisHandle, limit, self.nbl_fault_rate)

    def NdisFreeNetBufferListPool(self, PoolHandle: NblPool) -> None:
        """Rule 41: every NBL must have been freed (else bug check 0x7C code 0x27)."""
        self._pool_host("NdisFreeNetBufferListPool")
        pool = nbl_pool_handle(PoolHandle, "NdisFreeNetBufferListPool")
        leaked = pool.outstanding_nbls()
        if leaked:
            raise PoolLeakError(
                f"NdisFreeNetBufferListPool with {len(leaked)} NET_BUFFER_LIST(s) still "
                f"allocated (bug check 0x7C code 0x27, leaked NBL): {leaked[:4]}",
                rule="R41",
                subject=pool,
                leaked=leaked,
            )
        _destroy_pool(pool, pool.nbls)

    def NdisFreeNetBufferPool(self, PoolHandle: NbPool) -> None:
        """Every NET_BUFFER must have been freed first."""
        self._pool_host("NdisFreeNetBufferPool")
        pool = nb_pool_handle(PoolHandle, "NdisFreeNetBufferPool")
        leaked = pool.outstanding_nbs()
        if leaked:
            raise PoolLeakError(
                f"NdisFreeNetBufferPool with {len(leaked)} NET_BUFFER(s) still allocated: "
                f"{leaked[:4]}",
                rule="PY-POOL-LEAK",
                subject=pool,
                leaked=leaked,
            )
        _destroy_pool(pool, pool.nbs)

    def inject_nbl_faults(self, rate: float) -> None:
        """Low-resources simulation (rule 67): every NBL/NB pool of this kernel, present and
        future, fails each allocation with probability ``rate`` (seeded, reproducible)."""
        assert isinstance(self, HostContext)
        if not 0.0 <= rate <= 1.0:
            raise NdisUsageError(f"fault rate {rate!r} is not in [0, 1]", rule="PY-BAD-ARGUMENT")
        self.nbl_fault_rate = rate
        for pool in self.pools:
            if isinstance(pool, DescriptorPoolBase):
                pool.fail_rate = rate


def _destroy_pool(pool: DescriptorPoolBase, descriptors: list[Any]) -> None:
    for obj in descriptors:
        nb = getattr(obj, "own_nb", None)
        transition(obj, Event.DESTROY, "pool freed")
        if nb is not None:
            transition(nb, Event.DESTROY, "pool freed")
    pool._retire()


__all__ = [
    "NDIS_OBJECT_HEADER",
    "NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1",
    "NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2",
    "NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1",
    "NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2",
    "NET_BUFFER_LIST_POOL_PARAMETERS",
    "NET_BUFFER_POOL_PARAMETERS",
    "DescriptorPoolBase",
    "NbPool",
    "NblPool",
    "NblPoolDdis",
    "NdisAllocateCloneNetBufferList",
    "NdisAllocateNetBuffer",
    "NdisAllocateNetBufferAndNetBufferList",
    "NdisAllocateNetBufferList",
    "NdisAllocateNetBufferMdlAndData",
    "NdisFreeCloneNetBufferList",
    "NdisFreeNetBuffer",
    "NdisFreeNetBufferList",
    "PoolLeakError",
]


def _claim_functions() -> None:
    """Re-exported functions name this module as theirs: it is the public home of the DDIs
    (``help()``, introspection such as ``pyndis.cli.ddis``), while the code stays split over
    nblpoolbase and nblalloc for size."""
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, FunctionType):
            obj.__module__ = __name__


_claim_functions()
