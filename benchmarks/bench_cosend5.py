"""CoNDIS 5.x send costs per packet (NdisCoSendPackets + NdisMCoSendComplete), as ratios to a
pure-Python floor and to NdisSendPackets, all measured in the same run.

Run: ``python benchmarks/bench_cosend5.py [--json] [--iterations N] [--repeats R]``.

Every row is one packet sent by a protocol and completed back to it, verifier and trace off,
descriptors prepared beforehand. The CoNDIS rows send at DISPATCH_LEVEL, where a CoNDIS
miniport completes (NdisMCoSendComplete is annotated exactly DISPATCH_LEVEL; below it pyndis
reports to the verifier); the reference row is ``bench_send5.py``'s, sent at PASSIVE_LEVEL (that
path raises to DISPATCH_LEVEL itself around the miniport call):

* ``NdisSendPackets x64, deserialized``: the connectionless path through the null miniport of
  ``pyndis.drivers.null5`` (it completes every packet inside MiniportSendPackets), from
  ``bench_send5.py``: the reference the CoNDIS rows are compared with;
* ``NdisCoSendPackets x64, completed in the call``: a null CoNDIS miniport that calls
  NdisMCoSendComplete for every packet inside MiniportCoSendPackets;
* ``NdisCoSendPackets x64, completed after the call``: the miniport keeps the array and
  completes it once MiniportCoSendPackets has returned (the common deserialized pattern);
* ``NdisCoSendPackets x1``: one packet per call (the per-call cost is not shared).

The floor is ``benchmarks/common.py``'s: pop a preallocated ``__slots__`` object and append it
back, the least a descriptor hand-off can cost in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench_send5 import send_packets_loop
from common import Result, floor_ns, median_ns, parse_args, report
from pyndis.constants import DISPATCH_LEVEL, NdisMediumAtm
from pyndis.drivers.atmsig import atm_call_parameters
from pyndis.library.covc import VirtualConnection
from pyndis.library.kernel import Ndis
from pyndis.mdl import NdisAllocateBuffer
from pyndis.packet import NDIS_PACKET, NdisChainBufferAtBack
from pyndis.pools import NdisAllocatePacket
from pyndis.status import NDIS_STATUS

Loop = Callable[[int], None]
BATCH = 64
FRAME = bytes(64)
SUCCESS = NDIS_STATUS.SUCCESS


class NullCoMiniport:
    """The least a CoNDIS miniport can be: it completes every packet, now or on demand."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def __init__(self, inline: bool) -> None:
        self.inline = inline
        self.kept: list[tuple[VirtualConnection, NDIS_PACKET]] = []

    def MiniportInitialize(self, Mediums: Sequence[int], Handle: Any, Config: Any) -> Any:
        self.ndis.NdisMSetAttributesEx(Handle, self, 0, 0, 0)
        return SUCCESS, list(Mediums).index(NdisMediumAtm)

    def MiniportHalt(self, Context: Any) -> None: ...

    def MiniportCoCreateVc(self, Context: Any, NdisVcHandle: VirtualConnection) -> Any:
        return SUCCESS, NdisVcHandle  # the VC handle is all this miniport needs per VC

    def MiniportCoDeleteVc(self, Context: Any) -> NDIS_STATUS:
        return SUCCESS

    def MiniportCoActivateVc(self, Context: Any, Params: Any) -> NDIS_STATUS:
        return SUCCESS

    def MiniportCoDeactivateVc(self, Context: Any) -> NDIS_STATUS:
        return SUCCESS

    def MiniportCoSendPackets(
        self, MiniportVcContext: VirtualConnection, PacketArray: Sequence[NDIS_PACKET], n: int
    ) -> None:
        if self.inline:
            complete = self.ndis.NdisMCoSendComplete
            for i in range(n):
                complete(SUCCESS, MiniportVcContext, PacketArray[i])
        else:
            self.kept.extend((MiniportVcContext, PacketArray[i]) for i in range(n))

    def flush(self) -> None:
        kept, self.kept = self.kept, []
        complete = self.ndis.NdisMCoSendComplete
        for vc, packet in kept:
            complete(SUCCESS, vc, packet)


class NullCoProtocol:
    """A CoNDIS protocol that owns one VC of its own (no call manager needed) and counts."""

    NDIS_VERSION = (5, 1)

    def __init__(self) -> None:
        self.completed = 0

    def ProtocolCoSendComplete(self, Status: int, Context: Any, Packet: NDIS_PACKET) -> None:
        self.completed += 1

    # the VC is its own: it activates it as a call manager would (NdisCmActivateVc)
    def ProtocolCmActivateVcComplete(self, *args: Any) -> None: ...


def co_kernel(
    inline: bool, batch: int
) -> tuple[Ndis, NullCoMiniport, VirtualConnection, list[NDIS_PACKET]]:
    ndis = Ndis(verifier=False, trace=False)
    miniport = NullCoMiniport(inline)
    _, driver = ndis.NdisMRegisterMiniport(miniport, 5, 1, "nullco")
    assert driver is not None
    ndis.add_adapter(driver, "atm0")
    protocol = NullCoProtocol()
    _, handle = ndis.NdisRegisterProtocol(protocol, 5, 1, "bench")
    assert handle is not None
    _, _, binding, _ = ndis.NdisOpenAdapter(handle, protocol, [NdisMediumAtm], "atm0")
    assert binding is not None
    _, vc = ndis.NdisCoCreateVc(binding, None, protocol)
    assert vc is not None
    assert ndis.NdisCmActivateVc(vc, atm_call_parameters(vci=100)) == SUCCESS
    _, pool = ndis.NdisAllocatePacketPool(batch, 16)
    _, buffers = ndis.NdisAllocateBufferPool(batch)
    assert pool is not None
    packets = []
    for _ in range(batch):
        _, packet = NdisAllocatePacket(pool)
        _, buffer = NdisAllocateBuffer(buffers, FRAME, len(FRAME))
        assert packet is not None and buffer is not None
        NdisChainBufferAtBack(packet, buffer)
        packets.append(packet)
    return ndis, miniport, vc, packets


def co_loop(inline: bool, batch: int) -> Loop:
    ndis, miniport, vc, packets = co_kernel(inline, batch)
    send = ndis.NdisCoSendPackets
    flush = miniport.flush

    def loop(n: int) -> None:
        with ndis.irql.at(DISPATCH_LEVEL):
            for _ in range(n):
                send(vc, packets, batch)
                if not inline:
                    flush()
        ndis.assert_nothing_lost()

    return loop


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0], argv)
    n, r = args.iterations, args.repeats
    floor = floor_ns(n * 4, r)
    results = [Result("floor (slotted pop+append)", floor, 1.0)]

    def row(name: str, ns: float, note: str = "") -> float:
        results.append(Result(name, ns, ns / floor, None, note))
        return ns

    batches = max(1, n // BATCH)
    reference = row(
        f"NdisSendPackets x{BATCH}, deserialized",
        median_ns(send_packets_loop(True), batches, r) / BATCH,
        "per packet; the reference",
    )
    for inline, how in ((True, "in the call"), (False, "after the call")):
        ns = median_ns(co_loop(inline, BATCH), batches, r) / BATCH
        row(
            f"NdisCoSendPackets x{BATCH}, completed {how}",
            ns,
            f"per packet; {ns / reference:.2f}x NdisSendPackets",
        )
    ns = median_ns(co_loop(True, 1), n, r)
    row("NdisCoSendPackets x1, completed in the call", ns, f"{ns / reference:.2f}x NdisSendPackets")
    report(
        "CoNDIS 5.x send+complete (per packet)",
        results,
        args.json,
        iterations=n,
        repeats=r,
        verifier=False,
        trace=False,
    )


if __name__ == "__main__":
    main()
