"""NDIS 5.x send path costs, per packet, as ratios to a pure-Python floor measured in the same run.

Run: ``python benchmarks/bench_send5.py [--json] [--iterations N] [--repeats R]``.

Every row is one packet sent by a protocol and completed back to it through the null miniport
(``pyndis.drivers.null5``), verifier and trace off, descriptors prepared beforehand:

* ``NdisSend, serialized``: MiniportSend returns SUCCESS; the packet is back when NdisSend
  returns (no ProtocolSendComplete);
* ``NdisSend, deserialized``: MiniportSend calls NdisMSendComplete before it returns;
  NdisSend returns PENDING after ProtocolSendComplete ran;
* ``NdisSendPackets x64, serialized / deserialized``: MiniportSendPackets, a batch of 64 per
  call; the time of one call divided by 64;
* ``reuse cycle`` / ``free+realloc cycle``: a full protocol cycle on the deserialized null
  miniport: take a packet (free list, or NdisAllocatePacket), chain its buffer, NdisSend, and on
  completion unchain it and NdisReinitializePacket it (or NdisFreePacket it); the note gives the
  realloc/reuse ratio;
* ``ndisprot write, reuse / free+realloc``: the same through ``NdisProt5.write``, which also
  allocates and frees one buffer descriptor over the caller's frame per write.

The floor is ``benchmarks/common.py``'s: pop a preallocated ``__slots__`` object and append it
back, the least a descriptor hand-off can cost in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common import Result, floor_ns, median_ns, parse_args, report
from pyndis.constants import NdisMedium802_3
from pyndis.drivers.ndisprot5 import NdisProt5
from pyndis.drivers.null5 import NullMiniport, NullMiniportPackets
from pyndis.library.binding import OpenBlock
from pyndis.library.kernel import Ndis
from pyndis.mdl import MDL, NdisAllocateBuffer
from pyndis.packet import NDIS_PACKET, NdisChainBufferAtBack, NdisUnchainBufferAtFront
from pyndis.pools import NdisAllocatePacket, NdisFreePacket, NdisReinitializePacket, PacketPool
from pyndis.status import NDIS_STATUS

Loop = Callable[[int], None]
BATCH = 64
FRAME = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\xb5" + bytes(50)


class BenchProtocol:
    """The least a 5.x protocol can be: it opens one adapter and counts completions."""

    NDIS_VERSION = (5, 1)

    def __init__(self, ndis: Ndis) -> None:
        self.ndis = ndis
        self.completed = 0
        self.back: list[NDIS_PACKET] = []
        status, handle = ndis.NdisRegisterProtocol(self, 5, 1, "bench")
        assert status == NDIS_STATUS.SUCCESS and handle is not None
        status, _, binding, _ = ndis.NdisOpenAdapter(handle, self, [NdisMedium802_3], "nul0")
        assert status == NDIS_STATUS.SUCCESS and binding is not None
        self.binding: OpenBlock = binding
        status, pool = ndis.NdisAllocatePacketPool(BATCH, 16)
        assert pool is not None
        self.pool: PacketPool = pool
        _, buffers = ndis.NdisAllocateBufferPool(BATCH)
        self.buffers: list[MDL] = []
        for _ in range(BATCH):
            _, buffer = NdisAllocateBuffer(buffers, FRAME, len(FRAME))
            assert buffer is not None
            self.buffers.append(buffer)

    def chained_packets(self) -> list[NDIS_PACKET]:
        packets = []
        for buffer in self.buffers:
            _, packet = NdisAllocatePacket(self.pool)
            assert packet is not None
            NdisChainBufferAtBack(packet, buffer)
            packets.append(packet)
        return packets

    def ProtocolSendComplete(self, ctx: Any, Packet: NDIS_PACKET, Status: int) -> None:
        self.completed += 1
        self.back.append(Packet)


def kernel(driver: Any, deserialized: bool) -> tuple[Ndis, BenchProtocol]:
    ndis = Ndis(verifier=False, trace=False)
    _, handle = ndis.NdisMRegisterMiniport(driver, 5, 1)
    assert handle is not None
    ndis.add_adapter(handle, "nul0", deserialized=deserialized, max_send_packets=BATCH)
    return ndis, BenchProtocol(ndis)


def send_loop(deserialized: bool) -> Loop:
    ndis, prot = kernel(NullMiniport(), deserialized)
    packet = prot.chained_packets()[0]
    send, binding = ndis.NdisSend, prot.binding
    expected = NDIS_STATUS.PENDING if deserialized else NDIS_STATUS.SUCCESS

    def loop(n: int) -> None:
        for _ in range(n):
            status = send(binding, packet)  # back with us when this returns, either way
        assert status == expected

    return loop


def send_packets_loop(deserialized: bool) -> Loop:
    ndis, prot = kernel(NullMiniportPackets(), deserialized)
    packets = prot.chained_packets()
    send, binding = ndis.NdisSendPackets, prot.binding

    def loop(n: int) -> None:
        for _ in range(n):
            send(binding, packets, BATCH)
        assert len(prot.back) == n * BATCH
        prot.back.clear()

    return loop


def cycle_loop(reuse: bool) -> Loop:
    """A protocol's whole cycle per packet: take, chain, send, unchain, give back."""
    ndis, prot = kernel(NullMiniport(), True)
    buffer = prot.buffers[0]
    free_list: list[NDIS_PACKET] = []
    if reuse:
        _, packet = NdisAllocatePacket(prot.pool)
        assert packet is not None
        free_list.append(packet)
    send, binding, pool, back = ndis.NdisSend, prot.binding, prot.pool, prot.back

    def loop(n: int) -> None:
        packet: Any
        for _ in range(n):
            if reuse:
                packet = free_list.pop()
            else:
                _, packet = NdisAllocatePacket(pool)
            NdisChainBufferAtBack(packet, buffer)
            send(binding, packet)
            done = back.pop()  # ProtocolSendComplete ran inside the deserialized send
            NdisUnchainBufferAtFront(done)
            if reuse:
                NdisReinitializePacket(done)
                free_list.append(done)
            else:
                NdisFreePacket(done)

    return loop


def ndisprot_loop(reuse: bool) -> Loop:
    ndis = Ndis(verifier=False, trace=False)
    _, handle = ndis.NdisMRegisterMiniport(NullMiniport(), 5, 1)
    assert handle is not None
    ndis.add_adapter(handle, "nul0", deserialized=True)
    prot = NdisProt5(pool=8, reuse=reuse)
    prot.register(ndis)
    ndis.run()  # ProtocolBindAdapter runs from a PASSIVE work item
    write = prot.open().write

    def loop(n: int) -> None:
        for _ in range(n):
            write(FRAME)

    return loop


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    n, r = args.iterations, args.repeats
    floor = floor_ns(n * 4, r)
    results = [Result("floor (slotted pop+append)", floor, 1.0)]

    def row(name: str, ns: float, note: str = "") -> float:
        results.append(Result(name, ns, ns / floor, None, note))
        return ns

    row("NdisSend, serialized", median_ns(send_loop(False), n, r))
    row("NdisSend, deserialized", median_ns(send_loop(True), n, r))
    batches = max(1, n // BATCH)
    for deserialized in (False, True):
        kind = "deserialized" if deserialized else "serialized"
        per_call = median_ns(send_packets_loop(deserialized), batches, r)
        row(f"NdisSendPackets x{BATCH}, {kind}", per_call / BATCH, "per packet")
    reuse = row("reuse cycle (unchain+reinit+rechain)", median_ns(cycle_loop(True), n, r))
    realloc = median_ns(cycle_loop(False), n, r)
    row("free+realloc cycle", realloc, f"{realloc / reuse:.2f}x the reuse cycle")
    reuse = row("ndisprot write, reuse", median_ns(ndisprot_loop(True), n, r))
    realloc = median_ns(ndisprot_loop(False), n, r)
    row("ndisprot write, free+realloc", realloc, f"{realloc / reuse:.2f}x reuse")
    report(
        "NDIS 5.x send+complete through the null miniport (per packet)",
        results,
        args.json,
        iterations=n,
        repeats=r,
        verifier=False,
        trace=False,
    )


if __name__ == "__main__":
    main()
