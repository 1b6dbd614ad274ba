"""The Ndis kernel: one emulated machine's NDIS library.

Theory of operation
-------------------
``Ndis`` is one kernel: its registered drivers, adapters (miniport blocks), bindings (open
blocks), virtual connections, pools, IRQL and scheduler. Several kernels can live in one process
(two hosts joined by a simulated wire in one test); nothing is global.

The DDI surface is the set of methods with ndis.h names, gathered from one mixin per concern:

==================  ====================================================================
``BufferDdis``       buffer pools, NdisAllocateMdl (``pyndis.mdl``)
``PacketPoolDdis``   packet pools (``pyndis.pools``)
``NblPoolDdis``      NET_BUFFER_LIST / NET_BUFFER pools (``pyndis.nblpool``)
``DriverDdis``       driver registration, version gate (``library.registration``)
``AdapterDdis``      adapter life cycle, attributes, status, reset, pause (``library.adapter``)
``BindingDdis``      NdisOpenAdapter[Ex], NdisCloseAdapter[Ex], requests (``library.binding``)
``Send5Ddis``        NdisSend, NdisSendPackets, NdisMSendComplete... (``library.send5``)
``Receive5Ddis``     NdisMIndicateReceivePacket, NdisReturnPackets (``library.receive5``)
``CoDdis``           address families, VCs, calls (``library.co``)
``CoSendDdis``       NdisCoSendPackets, NdisMCoSendComplete, CoNDIS receive (``library.cosend``)
``Send6Ddis``        NdisSendNetBufferLists and NDIS 6 completions (``library.send6``)
``CoSend6Ddis``      NdisCoSendNetBufferLists, NDIS 6 completion delivery (``library.cosend6``)
``Receive6Ddis``     NDIS 6 and CoNDIS 6 receive, NDIS 6 loopback (``library.receive6``)
==================  ====================================================================

Descriptor macros that touch only a descriptor (NdisQueryPacket, NET_BUFFER_LIST_INFO...) are
plain functions in the descriptor modules and are exported from ``pyndis``.

Handlers are called through :meth:`Ndis.call`, which records which kind of driver is running
(``actors``) so that checks can name the right culprit. (The 5.x send path, which calls a
handler once per packet, writes the same bookkeeping out; see :mod:`~pyndis.library.send5`.)
Handlers run synchronously on the caller's stack, as in real NDIS: a miniport may complete a
send before its send handler returns and a protocol may send again from its completion
handler; the send paths are written to be re-entrant under those calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..constants import DISPATCH_LEVEL
from ..errors import Culprit, NdisUsageError
from ..hostctx import HostContext
from ..irql import NDIS_SPIN_LOCK
from ..mdl import BufferDdis
from ..nblpool import NblPoolDdis
from ..pools import PacketPoolDdis
from ..scheduler import WorkItem
from .adapter import AdapterDdis, MiniportBlock
from .binding import BindingDdis, OpenBlock
from .co import CoDdis
from .cosend import CoSendDdis
from .cosend6 import CoSend6Ddis
from .counters import SendCounters, StatusCounts
from .drivers import DriverBlock
from .receive5 import Receive5Ddis
from .receive6 import Receive6Ddis
from .registration import DriverDdis
from .send5 import Send5Ddis
from .send6 import Send6Ddis


class NDIS_MINIPORT_TIMER:
    """An NDIS timer (NdisMInitializeTimer / NdisMSetTimer / NdisMCancelTimer)."""

    __slots__ = ("FunctionContext", "TimerFunction", "item", "name")

    def __init__(self) -> None:
        self.TimerFunction: Callable[..., Any] | None = None
        self.FunctionContext: Any = None
        self.item: WorkItem | None = None
        self.name = ""


class Ndis(
    HostContext,
    BufferDdis,
    PacketPoolDdis,
    NblPoolDdis,
    DriverDdis,
    AdapterDdis,
    BindingDdis,
    Send5Ddis,
    Receive5Ddis,
    CoDdis,
    CoSendDdis,
    Send6Ddis,
    CoSend6Ddis,
    Receive6Ddis,
):
    """One emulated kernel: its drivers, adapters, bindings, pools and scheduler.

    ``seed`` drives every random choice; ``verifier=True`` turns on ownership histories and the
    soft checks (``strict=True`` raises the first violation, otherwise ``verifier.check()``
    lists them); ``trace`` keeps the event trace used by determinism tests and the CLI.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        verifier: bool = False,
        strict: bool = False,
        trace: bool = True,
        name: str = "host",
    ) -> None:
        super().__init__(seed=seed, verifier=verifier, strict=strict, trace=trace)
        self.name = name
        self.protocols: list[DriverBlock] = []
        self.miniport_drivers: list[DriverBlock] = []
        self.adapters: dict[str, MiniportBlock] = {}
        self.bindings: list[OpenBlock] = []
        #: the driver blocks whose handlers are running (innermost last)
        self.driver_stack: list[DriverBlock] = []
        #: the kernel's one re-entrant send lock: every send, completion and receive path of
        #: every NDIS generation takes it, so there is one lock order (DDIs may be called from
        #: several Python threads)
        self.send_lock = threading.RLock()
        self._init_send5()
        self._init_co()
        self._init_send6()

    # --- calling into drivers -------------------------------------------------------------------
    def call(self, block: DriverBlock, name: str, *args: Any) -> Any:
        """Call ``block``'s handler ``name`` with the driver recorded as the running actor."""
        fn = block.handlers.get(name)
        if fn is None:
            fn = block.handler(name)  # raises, naming the driver and the handler
        actors = self.actors
        stack = self.driver_stack
        actors.append(block.culprit)
        stack.append(block)
        try:
            return fn(*args)
        finally:
            stack.pop()
            actors.pop()

    @property
    def current_driver(self) -> DriverBlock | None:
        return self.driver_stack[-1] if self.driver_stack else None

    # --- IRQL and locks (wdm.h / ndis.h) ----------------------------------------------------------
    def KeGetCurrentIrql(self) -> int:
        return self.irql.level

    def KeRaiseIrql(self, NewIrql: int) -> int:
        """KeRaiseIrql(NewIrql, &OldIrql): returns OldIrql."""
        return self.irql.raise_to(NewIrql)

    def KeLowerIrql(self, NewIrql: int) -> None:
        self.irql.lower_to(NewIrql)

    def NdisAllocateSpinLock(self, SpinLock: NDIS_SPIN_LOCK | None = None) -> NDIS_SPIN_LOCK:
        """NdisAllocateSpinLock: returns the initialized lock (a new one if none is given)."""
        return SpinLock if SpinLock is not None else NDIS_SPIN_LOCK()

    def NdisFreeSpinLock(self, SpinLock: NDIS_SPIN_LOCK) -> None:
        if SpinLock.held:
            raise NdisUsageError("NdisFreeSpinLock on a held lock", rule="PY-SPINLOCK-HELD")

    def NdisAcquireSpinLock(self, SpinLock: NDIS_SPIN_LOCK) -> None:
        SpinLock.acquire(self.irql)

    def NdisReleaseSpinLock(self, SpinLock: NDIS_SPIN_LOCK) -> None:
        SpinLock.release(self.irql)

    def NdisDprAcquireSpinLock(self, SpinLock: NDIS_SPIN_LOCK) -> None:
        SpinLock.acquire(self.irql, dpr=True)

    def NdisDprReleaseSpinLock(self, SpinLock: NDIS_SPIN_LOCK) -> None:
        SpinLock.release(self.irql, dpr=True)

    # --- time and timers --------------------------------------------------------------------------
    def NdisGetCurrentSystemTime(self) -> int:
        """Virtual system time in 100-nanosecond units."""
        return self.scheduler.now_ns // 100

    def NdisMInitializeTimer(
        self,
        Timer: NDIS_MINIPORT_TIMER,
        MiniportAdapterHandle: object,
        TimerFunction: Callable[..., Any],
        FunctionContext: Any,
    ) -> None:
        Timer.TimerFunction = TimerFunction
        Timer.FunctionContext = FunctionContext

    def NdisMSetTimer(self, Timer: NDIS_MINIPORT_TIMER, MillisecondsToDelay: int) -> None:
        """Arm (or re-arm) the timer; its function runs at DISPATCH_LEVEL as miniport code
        (so checks inside it name the miniport)."""
        if Timer.TimerFunction is None:
            raise NdisUsageError("NdisMSetTimer on an uninitialized timer", rule="PY-TIMER")
        if Timer.item is not None:
            Timer.item.cancel()
        Timer.item = self.scheduler.call_later(
            MillisecondsToDelay * 1_000_000,
            self._fire_miniport_timer,
            Timer.TimerFunction,
            Timer.FunctionContext,
            irql=DISPATCH_LEVEL,
            label="timer",
        )

    def _fire_miniport_timer(self, function: Callable[..., Any], context: Any) -> None:
        self.actors.append(Culprit.MINIPORT)
        try:
            function(None, context, None, None)
        finally:
            self.actors.pop()

    def NdisMCancelTimer(self, Timer: NDIS_MINIPORT_TIMER) -> bool:
        """Returns TimerCancelled."""
        item, Timer.item = Timer.item, None
        return bool(item is not None and item.cancel())

    # --- accounting -------------------------------------------------------------------------------
    def accounting(self) -> dict[str, Any]:
        """A snapshot of everything that must balance: pools and per-binding sends."""
        bindings: dict[str, dict[str, Any]] = {}
        for b in self.bindings:
            key = repr(b)
            if key in bindings:  # the same protocol opened the same adapter twice
                key = f"{key}#{sum(1 for k in bindings if k.startswith(key))}"
            bindings[key] = b.counters.as_dict()
        return {
            "pools": [{"pool": repr(p), "kind": p.kind, **p.usage()} for p in self.pools],
            "bindings": bindings,
        }

    def assert_nothing_lost(self) -> None:
        """Raise unless every descriptor sent came back exactly once (sent == completed on every
        binding and VC, nothing left at a miniport or in an NDIS queue)."""
        problems: list[str] = []
        for b in self.bindings:
            if b.counters.in_flight:
                problems.append(f"{b!r}: {b.counters.in_flight} send(s) not completed")
        for a in self.adapters.values():
            if a.outstanding:
                problems.append(f"{a!r}: {a.outstanding} descriptor(s) still at the miniport")
            if a.send_queue:
                problems.append(f"{a!r}: {len(a.send_queue)} packet(s) still queued in NDIS")
        problems += self._co_lost()
        problems += self._send6_lost()
        if problems:
            raise NdisUsageError("; ".join(problems), rule="PY-LOST", culprit=Culprit.NDIS_USER)

    def run(self, max_items: int = 10_000_000) -> int:
        """Run the scheduler until idle (convenience for tests and scenarios)."""
        return self.scheduler.run(max_items)

    def __repr__(self) -> str:
        return f"<Ndis {self.name!r} t={self.scheduler.now:.6f}s>"


__all__ = ["NDIS_MINIPORT_TIMER", "Ndis", "SendCounters", "StatusCounts"]
