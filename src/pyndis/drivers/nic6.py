"""The NIC netvmini6 and comini6 both drive: transmit control blocks, receive buffers, DPCs.

Theory of operation
-------------------
The two NDIS 6 sample miniports (:mod:`.netvmini6`, connectionless, and :mod:`.comini6`, a
CoNDIS MCM) run the same simulated hardware, modelled on the netvmini sample's. What differs is
only what the hardware carries for them (a VC number in front of each comini6 frame) and the
DDIs they reach NDIS through; the NIC and the steps around it are here.

Transmit. Each NET_BUFFER handed to the miniport becomes a :class:`Tcb` entry (owner, NBL, NB)
in one FIFO wait list, ``wait``, so frames leave in submission order (rule 49). ``tcbs``
transmit control blocks take waiting NBs in order (:meth:`NicMiniport6._transmit`); each
finishes ``tx_ns`` of virtual time after the previous one, plus a seeded random ``jitter_ns``
that lets NBLs finish out of order. ``busy`` is the heap of (finish time, sequence, Tcb) on the
hardware. The completion DPC runs ``coalesce_ns`` after the first TCB finished (interrupt
moderation), frees at most ``dpc_batch`` finished TCBs, completes every NBL whose last NB
finished in *one* completion call (in a seeded random order with ``random_order``), refills the
TCBs and finishes a pending pause. ``stalled`` (flow control) keeps NBs waiting until cleared.
The send handler (:meth:`NicMiniport6._queue`) queues the NBs of a chain, or, when the driver
refuses the send (pausing, resetting, link down...), completes its NBLs at once with that
status, inside the handler. A driver that guards its lists with a spin lock (netvmini6) keeps it
in ``lock``; it is never held across a call to NDIS.

NB references. An NBL at the miniport carries ``[NBs left, first failure]`` in
``MiniportReserved[1]``: :func:`hold` sets it, :func:`fail` records the first failure of any of
its NBs, :func:`release` drops one reference and at the last sets NET_BUFFER_LIST_STATUS (that
failure, else SUCCESS): the NBL is finished. ``MiniportReserved[0]`` is left to the driver.

Receive. A frame from the wire is copied into an NBL of the receive pool (``rcbs`` buffers;
:meth:`NicMiniport6._rx_nbl`); with none free, with the adapter not Running or with a frame
too long, it is dropped (``rx_dropped``). With fewer than ``low_rcbs`` buffers left it goes up
with NDIS_RECEIVE_FLAGS_RESOURCES and is freed as soon as the indication returns; otherwise
MiniportReturnNetBufferLists frees it (``rx_outstanding`` counts those lent).

Life cycle: Paused after MiniportInitializeEx, Running from MiniportRestart; MiniportPause
completes once nothing is out (:func:`~.common6.begin_pause`); halting cancels the DPC, leaves
the wire and frees the receive pool (:meth:`NicMiniport6._detach`). Each driver's DPCs run as
miniport code (:func:`~.common6.as_miniport`).

Registry keywords and their defaults are each driver's :attr:`NicAdapter6.DEFAULTS`: ``tcbs``,
``dpc_batch``, ``tx_ns``, ``jitter_ns``, ``coalesce_ns``, ``random_order``, ``rcbs``,
``low_rcbs``, ``mtu``, ``stalled``; and ``wire``.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from ..constants import (
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL,
)
from ..nbl import (
    NET_BUFFER,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_STATUS_SET,
    iter_nbls,
    iter_nbs,
)
from ..nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NblPool,
    NdisAllocateNetBufferList,
    NdisFreeNetBufferList,
)
from ..status import NDIS_STATUS
from .common6 import PAUSED, RUNNING, as_miniport, begin_pause, end_pause

if TYPE_CHECKING:
    from ..irql import NDIS_SPIN_LOCK
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.kernel import Ndis
    from ..scheduler import WorkItem
    from ..wire import Wire, WirePort

_SEND_DISPATCH = int(NDIS_SEND_FLAGS_DISPATCH_LEVEL)
_COMPLETE_DISPATCH = int(NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL)
_RX_FLAGS = int(NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL)
_RX_RESOURCES = int(NDIS_RECEIVE_FLAGS_RESOURCES)
_SUCCESS = NDIS_STATUS.SUCCESS


class Tcb(NamedTuple):
    """One NET_BUFFER to transmit: it waits in ``wait``, then holds a transmit control block
    in ``busy`` until the hardware is done with it. ``owner`` is the driver's (comini6: the
    VC; netvmini6: None)."""

    owner: Any
    nbl: NET_BUFFER_LIST
    nb: NET_BUFFER


# --- NB references (MiniportReserved[1]) --------------------------------------------------------


def hold(nbl: NET_BUFFER_LIST, count: int) -> None:
    """The miniport keeps ``nbl`` until its ``count`` NBs are done."""
    nbl.MiniportReserved[1] = [count, None]


def fail(nbl: NET_BUFFER_LIST, status: NDIS_STATUS) -> None:
    """Remember the first failure of an NBL's NBs (it becomes the NBL's status)."""
    state = nbl.MiniportReserved[1]
    if state[1] is None:
        state[1] = status


def release(nbl: NET_BUFFER_LIST, failure: NDIS_STATUS | None = None) -> bool:
    """One NB of ``nbl`` is done (with ``failure``, if given): True when it was the last, and
    NET_BUFFER_LIST_STATUS is then set."""
    state = nbl.MiniportReserved[1]
    if failure is not None and state[1] is None:
        state[1] = failure
    state[0] -= 1
    if state[0]:
        return False
    NET_BUFFER_LIST_STATUS_SET(nbl, state[1] if state[1] is not None else _SUCCESS)
    return True


# --- the adapter ----------------------------------------------------------------------------------


class NicAdapter6:
    """Base of a sample NDIS 6 adapter context (its MiniportAdapterContext): the NIC's state."""

    #: registry keyword -> default of the NIC model's knobs (each driver has its own)
    DEFAULTS: ClassVar[Mapping[str, int | bool]] = {
        "tcbs": 16,
        "dpc_batch": 64,
        "tx_ns": 1000,
        "jitter_ns": 0,
        "coalesce_ns": 0,
        "random_order": False,
        "rcbs": 32,
        "low_rcbs": 0,
        "mtu": 1500,
        "stalled": False,
    }

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        knob = {key: config.get(key, default) for key, default in self.DEFAULTS.items()}
        self.handle = handle
        self.name = config.name
        self.tcbs = int(knob["tcbs"])
        self.dpc_batch = int(knob["dpc_batch"])
        self.tx_ns = int(knob["tx_ns"])
        self.jitter_ns = int(knob["jitter_ns"])
        #: interrupt moderation: the completion DPC runs this long after the first TCB is done
        self.coalesce_ns = int(knob["coalesce_ns"])
        self.random_order = bool(knob["random_order"])
        self.rcbs = int(knob["rcbs"])
        self.low_rcbs = int(knob["low_rcbs"])
        self.mtu = int(knob["mtu"])
        #: a stalled transmitter (flow control): NBs wait until ``stalled`` is cleared
        self.stalled = bool(knob["stalled"])
        self.wire: Wire | None = config.get("wire")
        self.port: WirePort | None = None
        self.state = PAUSED
        self.pause_pending = False
        #: the driver's spin lock around the wait list and the TCBs (None: it takes none)
        self.lock: NDIS_SPIN_LOCK | None = None
        #: NBs waiting for a TCB, in submission order
        self.wait: deque[Tcb] = deque()
        self.free_tcbs = self.tcbs
        #: TCBs on the hardware: a heap of (done time, sequence, Tcb)
        self.busy: list[tuple[int, int, Tcb]] = []
        self.seq = itertools.count()
        self.tx_free_at = 0
        self.dpc: WorkItem | None = None
        self.tx_frames = 0
        self.tx_bytes = 0
        self.rx_pool: NblPool | None = None
        #: receive NBLs lent to NDIS and not yet returned
        self.rx_outstanding = 0
        self.rx_dropped = 0

    def idle(self) -> bool:
        """Nothing out: no NB waiting or on the hardware, no receive NBL lent."""
        return not self.wait and not self.busy and self.rx_outstanding == 0

    def start_tx(self, ndis: Ndis, tcb: Tcb) -> None:
        """Put ``tcb`` on a free transmit control block: it is done ``tx_ns`` after the one
        before it (plus jitter)."""
        sched = ndis.scheduler
        self.free_tcbs -= 1
        self.tx_free_at = max(sched.now_ns, self.tx_free_at) + self.tx_ns
        done = self.tx_free_at
        if self.jitter_ns:
            done += sched.random.randrange(self.jitter_ns + 1)
        heapq.heappush(self.busy, (done, next(self.seq), tcb))

    def take_done(self, now: int) -> list[Tcb]:
        """Free the TCBs done by ``now`` (at most ``dpc_batch``), oldest first."""
        busy = self.busy
        done: list[Tcb] = []
        while busy and busy[0][0] <= now and len(done) < self.dpc_batch:
            done.append(heapq.heappop(busy)[2])
        self.free_tcbs += len(done)
        return done

    def take_all(self) -> list[Tcb]:
        """Free every TCB, done or not (a halt)."""
        done = [heapq.heappop(self.busy)[2] for _ in range(len(self.busy))]
        self.free_tcbs += len(done)
        return done


# --- the driver -----------------------------------------------------------------------------------


class NicMiniport6:
    """The handlers and DPCs netvmini6 and comini6 share (each driver class mixes it in).

    A driver supplies :meth:`_frame` (what the hardware puts on the wire for one NB, or None
    for an NB it fails), :meth:`_complete` (its completion DDI) and, optionally,
    :meth:`_accept` (bookkeeping for each NBL it is given)."""

    ndis: Ndis
    adapters: dict[str, Any]
    #: label of the completion DPC in the scheduler's trace
    TX_LABEL: ClassVar[str] = "nic6-tx"

    # --- hooks ---------------------------------------------------------------------------------
    def _frame(self, a: Any, tcb: Tcb) -> bytes | None:
        raise NotImplementedError

    def _complete(self, a: Any, nbls: list[NET_BUFFER_LIST], flags: int) -> None:
        raise NotImplementedError

    def _accept(self, owner: Any, nbl: NET_BUFFER_LIST) -> None:
        """The miniport takes ``nbl`` (before it queues or refuses it)."""

    # --- life cycle ----------------------------------------------------------------------------
    def _attach(self, a: NicAdapter6, rx_data_size: int, tag: str) -> bool:
        """MiniportInitializeEx's common part: the receive pool (False if it cannot be made),
        the wire."""
        ndis = self.ndis
        params = NET_BUFFER_LIST_POOL_PARAMETERS(
            fAllocateNetBuffer=True, DataSize=rx_data_size, PoolTag=tag
        )
        a.rx_pool = ndis.NdisAllocateNetBufferListPool(a.handle, params, limit=a.rcbs)
        if a.rx_pool is None:
            return False
        if a.wire is not None:
            a.port = a.wire.attach(ndis, lambda frame: self._receive(a, frame), a.name)
        return True

    def _detach(self, a: NicAdapter6) -> None:
        """MiniportHaltEx's common part: cancel the DPC, leave the wire, free the receive
        pool, forget the adapter."""
        if a.dpc is not None:
            a.dpc.cancel()
            a.dpc = None
        if a.port is not None and a.wire is not None:
            a.wire.ports.remove(a.port)
            a.port = None
        if a.rx_pool is not None:
            self.ndis.NdisFreeNetBufferListPool(a.rx_pool)
            a.rx_pool = None
        self.adapters.pop(a.name, None)

    def MiniportRestart(self, MiniportAdapterContext: NicAdapter6, Parameters: Any) -> NDIS_STATUS:
        MiniportAdapterContext.state = RUNNING
        return _SUCCESS

    def MiniportPause(self, MiniportAdapterContext: NicAdapter6, Parameters: Any) -> NDIS_STATUS:
        """SUCCESS if nothing is out; otherwise PENDING until the last send and receive are
        back (rule 58: a pause never fails)."""
        return begin_pause(MiniportAdapterContext)

    def _check_pause(self, a: NicAdapter6) -> None:
        end_pause(self.ndis, a, a.handle)

    # --- send ----------------------------------------------------------------------------------
    def _queue(
        self,
        a: NicAdapter6,
        owner: Any,
        chain: NET_BUFFER_LIST,
        refusal: NDIS_STATUS | None,
        send_flags: int,
    ) -> None:
        """The send handler: queue every NB of every NBL (FIFO), or with a ``refusal`` complete
        the NBLs at once with it; then transmit."""
        ndis = self.ndis
        lock = a.lock
        refused: list[NET_BUFFER_LIST] = []
        if lock is not None:
            ndis.NdisAcquireSpinLock(lock)
        for nbl in iter_nbls(chain):
            nbl.Next = None
            self._accept(owner, nbl)
            if refusal is not None:
                NET_BUFFER_LIST_STATUS_SET(nbl, refusal)
                refused.append(nbl)
                continue
            count = 0
            for nb in iter_nbs(nbl):
                a.wait.append(Tcb(owner, nbl, nb))
                count += 1
            hold(nbl, count)
        if lock is not None:
            ndis.NdisReleaseSpinLock(lock)
        if refused:
            self._complete(a, refused, _COMPLETE_DISPATCH if send_flags & _SEND_DISPATCH else 0)
        self._transmit(a)

    def _transmit(self, a: NicAdapter6) -> None:
        """Give waiting NBs to free TCBs, in order; arm the completion DPC; put the frames on
        the wire."""
        ndis = self.ndis
        lock = a.lock
        frames: list[bytes] = []
        if lock is not None:
            ndis.NdisAcquireSpinLock(lock)
        wait = a.wait
        while a.free_tcbs and wait and not a.stalled:
            tcb = wait.popleft()
            a.start_tx(ndis, tcb)
            frame = self._frame(a, tcb)
            if frame is not None:
                frames.append(frame)
        if a.busy and a.dpc is None:
            sched = ndis.scheduler
            due = max(sched.now_ns, a.busy[0][0]) + a.coalesce_ns
            a.dpc = sched.call_at(due, self._tx_dpc, a, label=self.TX_LABEL)
        if lock is not None:
            ndis.NdisReleaseSpinLock(lock)
        for frame in frames:
            a.tx_frames += 1
            a.tx_bytes += len(frame)
            if a.port is not None:
                a.port.transmit(frame)

    def _tx_dpc(self, a: NicAdapter6) -> None:
        """Completion DPC: finish up to dpc_batch TCBs, complete the finished NBLs in one call,
        refill the TCBs."""
        ndis = self.ndis
        with as_miniport(ndis):
            a.dpc = None
            lock = a.lock
            if lock is not None:
                ndis.NdisDprAcquireSpinLock(lock)
            done = [t.nbl for t in a.take_done(ndis.scheduler.now_ns) if release(t.nbl)]
            if lock is not None:
                ndis.NdisDprReleaseSpinLock(lock)
            if a.random_order:
                ndis.scheduler.random.shuffle(done)
            if done:
                self._complete(a, done, _COMPLETE_DISPATCH)
            self._transmit(a)
            self._check_pause(a)

    def _drop_waiting(
        self,
        a: NicAdapter6,
        status: NDIS_STATUS,
        flags: int,
        which: Callable[[Tcb], bool] | None = None,
    ) -> None:
        """Take the waiting NBs ``which`` picks (all by default) off the wait list, failing
        them with ``status``; complete the NBLs that are then finished."""
        keep: deque[Tcb] = deque()
        done: list[NET_BUFFER_LIST] = []
        for tcb in a.wait:
            if which is None or which(tcb):
                if release(tcb.nbl, status):
                    done.append(tcb.nbl)
            else:
                keep.append(tcb)
        a.wait = keep
        if done:
            self._complete(a, done, flags)

    # --- receive -------------------------------------------------------------------------------
    def _receive(self, a: Any, frame: bytes) -> None:
        raise NotImplementedError

    def _rx_nbl(self, a: NicAdapter6, payload: bytes, limit: int) -> NET_BUFFER_LIST | None:
        """Copy a frame from the wire into a receive NBL (the DMA); None (dropped, counted) if
        the adapter is not Running, the frame is longer than ``limit`` or no buffer is free."""
        pool = a.rx_pool
        nbl = None
        if a.state == RUNNING and pool is not None and len(payload) <= limit:
            nbl = NdisAllocateNetBufferList(pool, 0, 0)
        if nbl is None:
            a.rx_dropped += 1
            return None
        nb = nbl.FirstNetBuffer
        assert nb is not None and nb.MdlChain is not None
        nb.MdlChain.MappedSystemVa[: len(payload)] = payload
        nb.DataLength = len(payload)
        return nbl

    def _rx_indicate(
        self, a: NicAdapter6, nbl: NET_BUFFER_LIST, indicate: Callable[[int], None]
    ) -> bool:
        """Lend ``nbl`` up through ``indicate(ReceiveFlags)``. True when it went with
        NDIS_RECEIVE_FLAGS_RESOURCES (fewer than ``low_rcbs`` buffers left): it is then freed
        as soon as the indication returns."""
        pool = a.rx_pool
        assert pool is not None
        if (pool.limit or 0) - pool.outstanding < a.low_rcbs:
            indicate(_RX_FLAGS | _RX_RESOURCES)
            NdisFreeNetBufferList(nbl)
            return True
        a.rx_outstanding += 1
        indicate(_RX_FLAGS)
        return False

    def MiniportReturnNetBufferLists(
        self, MiniportAdapterContext: NicAdapter6, NetBufferLists: NET_BUFFER_LIST, ReturnFlags: int
    ) -> None:
        """Receive NBLs are back: free them (a pause may now complete)."""
        a = MiniportAdapterContext
        for nbl in iter_nbls(NetBufferLists):
            nbl.Next = None
            NdisFreeNetBufferList(nbl)
            a.rx_outstanding -= 1
        self._check_pause(a)


__all__ = [
    "NicAdapter6",
    "NicMiniport6",
    "Tcb",
    "fail",
    "hold",
    "release",
]
