"""NDIS 5 descriptor costs: packet and buffer allocate+free, as ratios to a pure-Python floor.

Run: ``python benchmarks/bench_descriptors5.py [--json] [--iterations N] [--repeats R]``.

Rows:

* ``floor``: pop a preallocated ``__slots__`` object from a list and append it back;
* ``floor + lock``: the same inside ``threading.Lock`` acquire/release (what the pool lock
  costs: compare with the packet rows to see how small a part of an allocate+free it is);
* ``packet alloc+free``: ``NdisAllocatePacket`` + ``NdisFreePacket`` on a warm pool (recycled
  descriptor, every rule-4 field reset, verifier off);
* ``packet alloc+free (verifier)``: the same with ``verifier=True`` (a History per packet);
* ``packet life``: allocate, chain one buffer, ``NdisQueryPacket``, unchain, free;
* ``buffer alloc+free``: ``NdisAllocateBuffer`` + ``NdisFreeBuffer`` over one bytearray.

Memory per descriptor (tracemalloc): N packets allocated from one pool (descriptor, Private,
OOB block, reserved areas, extension, and the pool's lists), and N buffers over one shared
bytearray (MDL, its memoryview, the pool's live-set entry).
"""

from __future__ import annotations

from collections.abc import Callable

from common import (
    Result,
    bytes_per_object,
    floor_ns,
    lock_floor_ns,
    median_ns,
    parse_args,
    report,
)
from pyndis.hostctx import HostContext
from pyndis.mdl import MDL, BufferDdis, NdisAllocateBuffer, NdisFreeBuffer
from pyndis.packet import NdisChainBufferAtBack, NdisQueryPacket, NdisUnchainBufferAtFront
from pyndis.pools import NdisAllocatePacket, NdisFreePacket, PacketPool, PacketPoolDdis

Loop = Callable[[int], None]


class Kernel(HostContext, BufferDdis, PacketPoolDdis):
    """The descriptor slice of the Ndis kernel (no drivers needed here)."""


def packet_pool(kernel: Kernel, size: int, reserved: int = 16) -> PacketPool:
    _, pool = kernel.NdisAllocatePacketPool(size, reserved)
    assert pool is not None
    return pool


def packet_loop(verifier: bool) -> Loop:
    pool = packet_pool(Kernel(verifier=verifier), 8)

    def loop(n: int) -> None:
        allocate, free = NdisAllocatePacket, NdisFreePacket
        for _ in range(n):
            _, packet = allocate(pool)
            assert packet is not None
            free(packet)

    return loop


def packet_life_loop() -> Loop:
    kernel = Kernel()
    pool = packet_pool(kernel, 8)
    _, buffers = kernel.NdisAllocateBufferPool(1)
    _, mdl = NdisAllocateBuffer(buffers, bytearray(64), 64)
    assert mdl is not None

    def loop(n: int) -> None:
        for _ in range(n):
            _, packet = NdisAllocatePacket(pool)
            assert packet is not None
            NdisChainBufferAtBack(packet, mdl)
            NdisQueryPacket(packet)
            NdisUnchainBufferAtFront(packet)
            NdisFreePacket(packet)

    return loop


def buffer_loop() -> Loop:
    kernel = Kernel()
    _, pool = kernel.NdisAllocateBufferPool(8)
    memory = bytearray(64)

    def loop(n: int) -> None:
        allocate, free = NdisAllocateBuffer, NdisFreeBuffer
        for _ in range(n):
            _, mdl = allocate(pool, memory, 64)
            assert mdl is not None
            free(mdl)

    return loop


def packets_kept(count: int) -> object:
    pool = packet_pool(Kernel(), count)
    return [NdisAllocatePacket(pool)[1] for _ in range(count)], pool


def buffers_kept(count: int) -> object:
    kernel = Kernel()
    _, pool = kernel.NdisAllocateBufferPool(count)
    memory = bytearray(64)
    kept: list[MDL | None] = [NdisAllocateBuffer(pool, memory, 64)[1] for _ in range(count)]
    return kept, pool


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", argv)
    n, repeats = args.iterations, args.repeats
    floor = floor_ns(n, repeats)
    rows = [
        Result("floor (slotted pop/append)", floor, 1.0),
        Result("floor + lock", lock_floor_ns(n, repeats), 0.0, note="pool lock cost"),
        Result("packet alloc+free", median_ns(packet_loop(False), n, repeats), 0.0),
        Result("packet alloc+free (verifier)", median_ns(packet_loop(True), n, repeats), 0.0),
        Result("packet life (chain/query/unchain)", median_ns(packet_life_loop(), n, repeats), 0.0),
        Result("buffer alloc+free", median_ns(buffer_loop(), n, repeats), 0.0),
    ]
    for row in rows:
        row.ratio_to_floor = row.ns_per_op / floor
    rows[2].bytes_per_object = bytes_per_object(packets_kept, args.count)
    rows[5].bytes_per_object = bytes_per_object(buffers_kept, args.count)
    report(
        "descriptors5",
        rows,
        args.json,
        iterations=n,
        repeats=repeats,
        memory_count=args.count,
    )


if __name__ == "__main__":
    main()
