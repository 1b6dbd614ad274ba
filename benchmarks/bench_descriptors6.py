"""NDIS 6 descriptor costs: NBL/NB allocate+free and data-space DDIs, as ratios to a floor.

Run: ``python benchmarks/bench_descriptors6.py [--json] [--iterations N] [--repeats R]``.

Rows (each the median of ``--repeats`` timed loops; the floor is measured in the same run):

* ``floor``: pop a preallocated ``__slots__`` object from a list and append it back;
* ``floor + lock``: the same inside ``threading.Lock`` acquire/release (the pool lock's cost);
* ``NBL alloc+free``: ``NdisAllocateNetBufferList`` + ``NdisFreeNetBufferList``, a pool
  without pre-allocated NBs (recycled descriptor, every field reset, verifier off);
* ``NBL+NB alloc+free``: ``NdisAllocateNetBufferAndNetBufferList`` over one MDL + free
  (the pre-allocated NB is reset and located on the chain too);
* ``NBL+NB alloc+free (verifier)``: the same with ``verifier=True`` (a History per object);
* ``NBL+NB+data alloc+free``: ``NdisAllocateNetBufferList`` from a DataSize=1514 pool;
* ``NB alloc+free``: ``NdisAllocateNetBuffer`` + ``NdisFreeNetBuffer``;
* ``clone+free (1 NB)``: ``NdisAllocateCloneNetBufferList`` + ``NdisFreeCloneNetBufferList``
  with partial MDLs over the used data (no copy);
* ``retreat+advance 14 B``: a header's worth inside back-fill (no allocation);
* ``retreat+advance, allocating``: retreat past the back-fill, advance with FreeMdl=TRUE;
* ``NdisGetDataBuffer 14 B``: a contiguous zero-copy view.

Memory per descriptor (tracemalloc): N NBLs without NBs, N NBLs with their pre-allocated NB
(descriptors, reserved areas, info array, the pool's lists), and N NBs.
"""

from __future__ import annotations

from collections.abc import Callable

from common import Result, bytes_per_object, floor_ns, lock_floor_ns, median_ns, parse_args, report
from pyndis.hostctx import HostContext
from pyndis.mdl import MDL, BufferDdis
from pyndis.nbl import (
    NdisAdvanceNetBufferDataStart,
    NdisGetDataBuffer,
    NdisRetreatNetBufferDataStart,
)
from pyndis.nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
    NblPool,
    NblPoolDdis,
    NbPool,
    NdisAllocateCloneNetBufferList,
    NdisAllocateNetBuffer,
    NdisAllocateNetBufferAndNetBufferList,
    NdisAllocateNetBufferList,
    NdisFreeCloneNetBufferList,
    NdisFreeNetBuffer,
    NdisFreeNetBufferList,
)

Loop = Callable[[int], None]
FRAME = 1514


class Kernel(HostContext, BufferDdis, NblPoolDdis):
    """The descriptor slice of the Ndis kernel (no drivers needed here)."""


def nbl_pool(kernel: Kernel, prealloc: bool = False, data_size: int = 0) -> NblPool:
    params = NET_BUFFER_LIST_POOL_PARAMETERS(fAllocateNetBuffer=prealloc, DataSize=data_size)
    pool = kernel.NdisAllocateNetBufferListPool(None, params)
    assert pool is not None
    return pool


def nb_pool(kernel: Kernel) -> NbPool:
    pool = kernel.NdisAllocateNetBufferPool(None, NET_BUFFER_POOL_PARAMETERS())
    assert pool is not None
    return pool


def frame_mdl() -> MDL:
    return MDL(bytearray(FRAME + 64), FRAME + 64, None)


def nbl_loop() -> Loop:
    pool = nbl_pool(Kernel())

    def loop(n: int) -> None:
        allocate, free = NdisAllocateNetBufferList, NdisFreeNetBufferList
        for _ in range(n):
            nbl = allocate(pool, 0, 0)
            assert nbl is not None
            free(nbl)

    return loop


def nbl_nb_loop(verifier: bool) -> Loop:
    pool = nbl_pool(Kernel(verifier=verifier), prealloc=True)
    mdl = frame_mdl()

    def loop(n: int) -> None:
        allocate, free = NdisAllocateNetBufferAndNetBufferList, NdisFreeNetBufferList
        for _ in range(n):
            nbl = allocate(pool, 0, 0, mdl, 64, FRAME)
            assert nbl is not None
            free(nbl)

    return loop


def nbl_data_loop() -> Loop:
    pool = nbl_pool(Kernel(), prealloc=True, data_size=FRAME)

    def loop(n: int) -> None:
        allocate, free = NdisAllocateNetBufferList, NdisFreeNetBufferList
        for _ in range(n):
            nbl = allocate(pool, 0, 0)
            assert nbl is not None
            free(nbl)

    return loop


def nb_loop() -> Loop:
    pool = nb_pool(Kernel())
    mdl = frame_mdl()

    def loop(n: int) -> None:
        allocate, free = NdisAllocateNetBuffer, NdisFreeNetBuffer
        for _ in range(n):
            nb = allocate(pool, mdl, 64, FRAME)
            assert nb is not None
            free(nb)

    return loop


def clone_loop() -> Loop:
    kernel = Kernel()
    original = NdisAllocateNetBufferAndNetBufferList(
        nbl_pool(kernel, prealloc=True), 0, 0, frame_mdl(), 64, FRAME
    )
    assert original is not None
    clones, clone_nbs = nbl_pool(kernel), nb_pool(kernel)

    def loop(n: int) -> None:
        for _ in range(n):
            clone = NdisAllocateCloneNetBufferList(original, clones, clone_nbs, 0)
            assert clone is not None
            NdisFreeCloneNetBufferList(clone, 0)

    return loop


def retreat_loop(allocating: bool) -> Loop:
    pool = nbl_pool(Kernel(), prealloc=True)
    nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, frame_mdl(), 64, FRAME)
    assert nbl is not None and nbl.FirstNetBuffer is not None
    nb = nbl.FirstNetBuffer
    delta = 128 if allocating else 14

    def loop(n: int) -> None:
        retreat, advance = NdisRetreatNetBufferDataStart, NdisAdvanceNetBufferDataStart
        for _ in range(n):
            retreat(nb, delta, 0)
            advance(nb, delta, True)

    return loop


def get_data_loop() -> Loop:
    pool = nbl_pool(Kernel(), prealloc=True)
    nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, frame_mdl(), 64, FRAME)
    assert nbl is not None and nbl.FirstNetBuffer is not None
    nb = nbl.FirstNetBuffer

    def loop(n: int) -> None:
        get = NdisGetDataBuffer
        for _ in range(n):
            get(nb, 14, None, 1, 0)

    return loop


def nbls_kept(count: int) -> object:
    pool = nbl_pool(Kernel())
    return [NdisAllocateNetBufferList(pool, 0, 0) for _ in range(count)], pool


def nbl_nbs_kept(count: int) -> object:
    pool = nbl_pool(Kernel(), prealloc=True)
    mdl = frame_mdl()
    kept = [NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, 64) for _ in range(count)]
    return kept, pool


def nbs_kept(count: int) -> object:
    pool = nb_pool(Kernel())
    mdl = frame_mdl()
    return [NdisAllocateNetBuffer(pool, mdl, 0, 64) for _ in range(count)], pool


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", argv)
    n, repeats = args.iterations, args.repeats
    floor = floor_ns(n, repeats)
    rows = [
        Result("floor (slotted pop/append)", floor, 1.0),
        Result("floor + lock", lock_floor_ns(n, repeats), 0.0, note="pool lock cost"),
        Result("NBL alloc+free", median_ns(nbl_loop(), n, repeats), 0.0),
        Result("NBL+NB alloc+free", median_ns(nbl_nb_loop(False), n, repeats), 0.0),
        Result("NBL+NB alloc+free (verifier)", median_ns(nbl_nb_loop(True), n, repeats), 0.0),
        Result("NBL+NB+data alloc+free", median_ns(nbl_data_loop(), n, repeats), 0.0),
        Result("NB alloc+free", median_ns(nb_loop(), n, repeats), 0.0),
        Result("clone+free (1 NB)", median_ns(clone_loop(), n, repeats), 0.0),
        Result("retreat+advance 14 B", median_ns(retreat_loop(False), n, repeats), 0.0),
        Result("retreat+advance, allocating", median_ns(retreat_loop(True), n, repeats), 0.0),
        Result("NdisGetDataBuffer 14 B", median_ns(get_data_loop(), n, repeats), 0.0),
    ]
    for row in rows:
        row.ratio_to_floor = row.ns_per_op / floor
    rows[2].bytes_per_object = bytes_per_object(nbls_kept, args.count)
    rows[3].bytes_per_object = bytes_per_object(nbl_nbs_kept, args.count)
    rows[6].bytes_per_object = bytes_per_object(nbs_kept, args.count)
    report(
        "descriptors6",
        rows,
        args.json,
        iterations=n,
        repeats=repeats,
        memory_count=args.count,
    )


if __name__ == "__main__":
    main()
