"""NDIS 6 send path costs, per NET_BUFFER_LIST, as ratios to a pure-Python floor in the same run.

Run: ``python benchmarks/bench_send6.py [--json] [--iterations N] [--repeats R]``.

Every row is NBLs sent by a protocol with NdisSendNetBufferLists and completed back to its
ProtocolSendNetBufferListsComplete through a *null* NDIS 6 miniport: its
MiniportSendNetBufferLists sets every NBL's status and hands the same chain straight back with
NdisMSendNetBufferListsComplete (the completion-inside-the-send-call case, so no scheduler runs:
what a row costs is the library's send + completion path). The protocol reuses its NBLs, as
the NdisSendNetBufferLists page recommends, so no allocation is timed. Verifier off, trace off,
unless the row says otherwise.

* ``chain of 64``: one call per 64 NBLs (one NB each); ns per NBL;
* ``chain of 64, 4 NBs per NBL``: the NB count does not enter the send path (the verifier's NB
  chain record aside);
* ``chain of 1``: one call per NBL (the per-call overhead);
* ``chain of 64, trace on`` / ``verifier on``: the cost of the trace line per call, and of the
  verifier (histories, NB chain records) per NBL;
* ``chain of 64, completed from a DPC``: the miniport completes from a DPC, so NDIS collects the
  completion and delivers it from its own completion DPC (scheduler steps included).

The floor is ``benchmarks/common.py``'s: pop a preallocated ``__slots__`` object and append it
back, the least a descriptor hand-off can cost in Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common import Result, floor_ns, median_ns, parse_args, report
from pyndis.library.adapter import (
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    MiniportBlock,
)
from pyndis.library.binding import OpenBlock
from pyndis.library.kernel import Ndis
from pyndis.nbl import NET_BUFFER_LIST, link_nbls
from pyndis.status import NDIS_STATUS
from pyndis.testing.stack6 import Raw6Protocol, make_frame

Loop = Callable[[int], None]
_SUCCESS = NDIS_STATUS.SUCCESS


class Null6Miniport:
    """The null NDIS 6 miniport: every chain goes straight back, SUCCESS."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis

    def __init__(self, from_dpc: bool = False) -> None:
        self.from_dpc = from_dpc
        self.handle: MiniportBlock | None = None

    def MiniportInitializeEx(
        self, NdisMiniportHandle: MiniportBlock, Context: Any, Params: Any
    ) -> int:
        self.handle = NdisMiniportHandle
        self.ndis.NdisMSetMiniportAttributes(
            NdisMiniportHandle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(self)
        )
        self.ndis.NdisMSetMiniportAttributes(
            NdisMiniportHandle, NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES()
        )
        return _SUCCESS

    def MiniportHaltEx(self, Context: Any, HaltAction: int) -> None: ...

    def MiniportPause(self, Context: Any, Params: Any) -> int:
        return _SUCCESS

    def MiniportRestart(self, Context: Any, Params: Any) -> int:
        return _SUCCESS

    def MiniportCancelSend(self, Context: Any, CancelId: Any) -> None: ...

    def MiniportReturnNetBufferLists(
        self, Context: Any, NetBufferLists: Any, Flags: int
    ) -> None: ...

    def MiniportSendNetBufferLists(
        self, Context: Any, NetBufferLists: NET_BUFFER_LIST, PortNumber: int, SendFlags: int
    ) -> None:
        nbl: NET_BUFFER_LIST | None = NetBufferLists
        while nbl is not None:
            nbl.Status = _SUCCESS
            nbl = nbl.Next
        if self.from_dpc:
            self.ndis.scheduler.queue_dpc(self._complete, NetBufferLists)
        else:
            self.ndis.NdisMSendNetBufferListsComplete(self.handle, NetBufferLists, SendFlags & 1)

    def _complete(self, head: NET_BUFFER_LIST) -> None:
        self.ndis.NdisMSendNetBufferListsComplete(self.handle, head, 1)


class Sink(Raw6Protocol):
    """The protocol: its completion handler only counts (the NBLs are reused as they are)."""

    completed = 0

    def ProtocolSendNetBufferListsComplete(
        self, Context: Any, NetBufferLists: Any, Flags: int
    ) -> None:
        self.completed += 1


def send_loop(
    chain: int, nbs: int = 1, *, trace: bool = False, verifier: bool = False, dpc: bool = False
) -> tuple[Loop, int]:
    """A loop of ``n`` NdisSendNetBufferLists calls of ``chain`` NBLs; returns (loop, chain)."""
    ndis = Ndis(trace=trace, verifier=verifier)
    _, handle = ndis.NdisMRegisterMiniportDriver(Null6Miniport(from_dpc=dpc))
    assert handle is not None
    ndis.add_adapter(handle, "null0")
    protocol = Sink(packet_filter=0)
    protocol.register(ndis)
    ndis.run()  # ProtocolBindAdapterEx runs from a PASSIVE work item
    ctx = protocol.opens["null0"]
    binding: OpenBlock | None = ctx.binding
    assert binding is not None
    frames = [make_frame(payload=bytes(46)) for _ in range(nbs)]
    nbls = [protocol.nbl(ctx, *frames) for _ in range(chain)]
    head = link_nbls(nbls)
    send = ndis.NdisSendNetBufferLists
    run = ndis.run

    def loop(n: int) -> None:
        for _ in range(n):
            send(binding, head, 0, 0)
            if dpc:
                run()

    return loop, chain


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else "", argv)
    n, repeats = args.iterations, args.repeats
    floor = floor_ns(n, repeats)
    rows = [Result("floor (slotted pop/append)", floor, 1.0)]
    cases: list[tuple[str, tuple[Loop, int], str]] = [
        ("chain of 64", send_loop(64), ""),
        ("chain of 64, 4 NBs per NBL", send_loop(64, 4), ""),
        ("chain of 1", send_loop(1), "per-call overhead included"),
        ("chain of 64, trace on", send_loop(64, trace=True), ""),
        ("chain of 64, verifier on", send_loop(64, verifier=True), ""),
        ("chain of 64, completed from a DPC", send_loop(64, dpc=True), "scheduler included"),
    ]
    for name, (loop, chain), note in cases:
        calls = max(1, n // chain)
        per_nbl = median_ns(loop, calls, repeats) / chain
        rows.append(Result(name, per_nbl, per_nbl / floor, note=note or "ns per NBL"))
    report("send6", rows, args.json, iterations=n, repeats=repeats)


if __name__ == "__main__":
    main()
