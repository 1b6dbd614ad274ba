"""netvmini6: a deserialized NDIS 6 miniport modelled on the netvmini sample.

Theory of operation
-------------------
Like netvmini, the adapter has a fixed number of transmit control blocks (TCBs): each holds one
NET_BUFFER while the "hardware" sends it. ``MiniportSendNetBufferLists`` unlinks each NBL, gives
it a reference per NB (``MiniportReserved[0]``) and appends its NBs to a FIFO wait list, then
hands waiting NBs to free TCBs in order (so frames leave in submission order, rule 49). A TCB
finishes ``tx_ns`` of virtual time after the previous one (plus a seeded random ``jitter_ns``,
which lets NBLs finish out of order). A completion DPC frees at most ``dpc_batch`` finished TCBs
per run; an NBL whose last NB finished is completed, and all NBLs a DPC finished go back in
*one* NdisMSendNetBufferListsComplete call (in a seeded random order with ``random_order``), then
the DPC refills the TCBs from the wait list. The first NB failure of an NBL
(``MiniportReserved[1]``) becomes its NET_BUFFER_LIST_STATUS (rule 50).

Refusals (netvmini's "adapter not ready" path) complete an NBL at once, inside the send
handler: PAUSED while pausing or paused (rule 58), RESET_IN_PROGRESS while resetting,
MEDIA_DISCONNECTED with the link down (a [model] extension of rule 50), and INVALID_LENGTH for a
frame longer than the MTU.

Life cycle::

    MiniportInitializeEx -> (Paused) -> MiniportRestart -> Running
    MiniportPause -> Pausing: sends still queued drain normally; SUCCESS at once if nothing is
        out, else PENDING and NdisMPauseComplete from the DPC that finishes the last send or
        the MiniportReturnNetBufferLists that gives back the last receive
    MiniportResetEx -> the wait list fails with RESET_IN_PROGRESS; SUCCESS (or PENDING and
        NdisMResetComplete from a DPC with ``reset_pending``)
    MiniportCancelSend(CancelId) -> waiting NBs of NBLs with that cancel ID are dropped and the
        NBLs complete with SEND_ABORTED (rule 52)
    MiniportHaltEx -> whatever is left fails with FAILURE; the receive pool is freed

Receive: a frame from the wire (``wire=`` keyword) is copied into a receive NBL from a pool
whose ``limit`` is ``rcbs`` (the receive buffers): no free buffer, the frame is dropped. With
fewer than ``low_rcbs`` buffers left, it is indicated with NDIS_RECEIVE_FLAGS_RESOURCES and
freed as soon as the indication returns; otherwise MiniportReturnNetBufferLists frees it.

Registry keywords (``ndis.add_adapter(handle, name, **keywords)``): ``address``, ``wire``,
``tcbs`` (16), ``dpc_batch`` (64), ``tx_ns`` (1000), ``jitter_ns`` (0), ``coalesce_ns`` (0: the
completion DPC runs this long after the first finished TCB), ``random_order`` (False), ``rcbs``
(32), ``low_rcbs`` (0), ``reset_pending`` (False), ``media_connected`` (True), ``medium``
(802.3), ``no_loopback`` (True: NDIS does loopback, rule 51), ``mtu`` (1500).

The miniport's DPCs are scheduler items; they mark themselves as miniport code (``actors``) so
NBL macros called in them are attributed to the miniport.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
    NdisMedium802_3,
    NdisRequestSetInformation,
)
from ..errors import Culprit
from ..irql import NDIS_SPIN_LOCK
from ..library.adapter import (
    NDIS_LINK_STATE,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
    NDIS_STATUS_INDICATION,
)
from ..nbl import (
    NDIS_GET_NET_BUFFER_LIST_CANCEL_ID,
    NET_BUFFER,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_STATUS_SET,
    iter_nbls,
    iter_nbs,
    link_nbls,
    nb_bytes,
)
from ..nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NblPool,
    NdisAllocateNetBufferList,
    NdisFreeNetBufferList,
)
from ..status import NDIS_STATUS
from ..wire import Wire, WirePort

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.binding import NDIS_OID_REQUEST
    from ..library.kernel import Ndis

DEFAULT_ADDRESS = b"\x02\x00\x00\x00\x00\x01"

_SEND_DISPATCH = int(NDIS_SEND_FLAGS_DISPATCH_LEVEL)
_COMPLETE_DISPATCH = int(NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL)
_RX_FLAGS = int(NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL)
_RX_RESOURCES = int(NDIS_RECEIVE_FLAGS_RESOURCES)

# adapter states (netvmini's MP_ADAPTER flags, as one field)
PAUSED = "paused"
RUNNING = "running"
PAUSING = "pausing"
RESETTING = "resetting"
HALTED = "halted"


class Tcb:
    """A transmit control block: one NET_BUFFER on the hardware."""

    __slots__ = ("done_ns", "nb", "nbl")

    def __init__(self, nbl: NET_BUFFER_LIST, nb: NET_BUFFER, done_ns: int) -> None:
        self.nbl = nbl
        self.nb = nb
        self.done_ns = done_ns


class Vmini6Adapter:
    """One netvmini6 adapter (its MiniportAdapterContext)."""

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.handle = handle
        self.name = config.name
        self.address = bytes(config.get("address", DEFAULT_ADDRESS))
        self.tcbs = int(config.get("tcbs", 16))
        self.dpc_batch = int(config.get("dpc_batch", 64))
        self.tx_ns = int(config.get("tx_ns", 1000))
        self.jitter_ns = int(config.get("jitter_ns", 0))
        #: interrupt moderation: the completion DPC runs this long after the first TCB is done
        self.coalesce_ns = int(config.get("coalesce_ns", 0))
        self.random_order = bool(config.get("random_order", False))
        self.rcbs = int(config.get("rcbs", 32))
        self.low_rcbs = int(config.get("low_rcbs", 0))
        self.reset_pending = bool(config.get("reset_pending", False))
        self.media_connected = bool(config.get("media_connected", True))
        self.medium = int(config.get("medium", NdisMedium802_3))
        self.no_loopback = bool(config.get("no_loopback", True))
        self.mtu = int(config.get("mtu", 1500))
        self.wire: Wire | None = config.get("wire")
        self.port: WirePort | None = None
        self.state = PAUSED
        self.lock = NDIS_SPIN_LOCK(f"{self.name}.send")
        #: NBs waiting for a TCB, in submission order: (NBL, NB)
        self.wait: deque[tuple[NET_BUFFER_LIST, NET_BUFFER]] = deque()
        self.free_tcbs = self.tcbs
        #: TCBs on the hardware: a heap of (done time, sequence, TCB)
        self.busy: list[tuple[int, int, Tcb]] = []
        self.seq = itertools.count()
        self.tx_free_at = 0
        self.dpc: Any = None
        self.pause_pending = False
        self.rx_pool: NblPool | None = None
        #: receive NBLs lent to NDIS and not yet returned
        self.rx_outstanding = 0
        self.packet_filter = 0
        # counters
        self.tx_frames = 0
        self.tx_bytes = 0
        self.rx_frames = 0
        self.rx_dropped = 0
        self.rx_resources = 0
        #: how many NBLs each NdisMSendNetBufferListsComplete call carried
        self.completion_calls: list[int] = []
        self.cancels = 0
        self.resets = 0

    def idle(self) -> bool:
        return not self.wait and not self.busy and self.rx_outstanding == 0

    def refusal(self) -> NDIS_STATUS | None:
        """The status new sends complete with at once, or None when they can go out."""
        if self.state in (PAUSING, PAUSED, HALTED):
            return NDIS_STATUS.PAUSED
        if self.state == RESETTING:
            return NDIS_STATUS.RESET_IN_PROGRESS
        if not self.media_connected:
            return NDIS_STATUS.MEDIA_DISCONNECTED
        return None

    def __repr__(self) -> str:
        return (
            f"<Vmini6Adapter {self.name!r} {self.state} wait={len(self.wait)} "
            f"busy={len(self.busy)} rx_out={self.rx_outstanding}>"
        )


def _fail(nbl: NET_BUFFER_LIST, status: NDIS_STATUS) -> None:
    """Remember the first failure of an NBL's NBs (it becomes the NBL's status)."""
    if nbl.MiniportReserved[1] is None:
        nbl.MiniportReserved[1] = status


class NetVMini6:
    """The netvmini6 miniport driver: one object serves any number of adapters."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, Vmini6Adapter] = {}

    @contextmanager
    def _dpc(self) -> Iterator[None]:
        """Run a DPC of ours as miniport code (scheduler items have no actor of their own)."""
        actors = self.ndis.actors
        actors.append(Culprit.MINIPORT)
        try:
            yield
        finally:
            actors.pop()

    # --- life cycle ----------------------------------------------------------------------------
    def MiniportInitializeEx(
        self,
        NdisMiniportHandle: MiniportBlock,
        MiniportDriverContext: Any,
        MiniportInitParameters: AdapterConfig,
    ) -> NDIS_STATUS:
        """Set the attributes, allocate the receive pool, attach to the wire. PASSIVE_LEVEL."""
        ndis = self.ndis
        a = Vmini6Adapter(NdisMiniportHandle, MiniportInitParameters)
        ndis.NdisMSetMiniportAttributes(
            NdisMiniportHandle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(a)
        )
        ndis.NdisMSetMiniportAttributes(
            NdisMiniportHandle,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(
                MediaType=a.medium,
                MtuSize=a.mtu,
                MediaConnectState=NdisMediaStateConnected
                if a.media_connected
                else NdisMediaStateDisconnected,
                MacOptions=NDIS_MAC_OPTION_NO_LOOPBACK if a.no_loopback else 0,
                CurrentMacAddress=a.address,
                PermanentMacAddress=a.address,
            ),
        )
        params = NET_BUFFER_LIST_POOL_PARAMETERS(
            fAllocateNetBuffer=True, DataSize=a.mtu + 14, PoolTag="vmrx"
        )
        a.rx_pool = ndis.NdisAllocateNetBufferListPool(NdisMiniportHandle, params, limit=a.rcbs)
        if a.rx_pool is None:
            return NDIS_STATUS.RESOURCES
        if a.wire is not None:
            a.port = a.wire.attach(ndis, lambda frame: self._receive(a, frame), a.name)
        self.adapters[a.name] = a
        return NDIS_STATUS.SUCCESS

    def MiniportRestart(
        self, MiniportAdapterContext: Vmini6Adapter, Parameters: Any
    ) -> NDIS_STATUS:
        MiniportAdapterContext.state = RUNNING
        return NDIS_STATUS.SUCCESS

    def MiniportPause(self, MiniportAdapterContext: Vmini6Adapter, Parameters: Any) -> NDIS_STATUS:
        """SUCCESS if nothing is out; otherwise PENDING until the last send and receive are
        back (rule 58: a pause never fails)."""
        a = MiniportAdapterContext
        a.state = PAUSING
        if a.idle():
            a.state = PAUSED
            return NDIS_STATUS.SUCCESS
        a.pause_pending = True
        return NDIS_STATUS.PENDING

    def _check_pause(self, a: Vmini6Adapter) -> None:
        if a.pause_pending and a.idle():
            a.pause_pending = False
            a.state = PAUSED
            self.ndis.NdisMPauseComplete(a.handle)

    def MiniportResetEx(self, MiniportAdapterContext: Vmini6Adapter) -> tuple[NDIS_STATUS, bool]:
        """Fail the wait list with RESET_IN_PROGRESS -> (SUCCESS | PENDING, AddressingReset)."""
        a = MiniportAdapterContext
        a.resets += 1
        a.state = RESETTING
        self._flush_wait(a, NDIS_STATUS.RESET_IN_PROGRESS, 0)
        if a.reset_pending:
            self.ndis.scheduler.queue_dpc(self._reset_dpc, a, label="vmini-reset")
            return NDIS_STATUS.PENDING, False
        a.state = RUNNING
        return NDIS_STATUS.SUCCESS, False

    def _reset_dpc(self, a: Vmini6Adapter) -> None:
        with self._dpc():
            a.state = RUNNING
            self.ndis.NdisMResetComplete(a.handle, NDIS_STATUS.SUCCESS, False)

    def MiniportHaltEx(self, MiniportAdapterContext: Vmini6Adapter, HaltAction: int) -> None:
        """Fail whatever is left with FAILURE, free the receive pool, leave the wire."""
        a = MiniportAdapterContext
        self._flush_wait(a, NDIS_STATUS.FAILURE, 0)
        done: list[NET_BUFFER_LIST] = []
        while a.busy:
            _, _, tcb = heapq.heappop(a.busy)
            a.free_tcbs += 1
            _fail(tcb.nbl, NDIS_STATUS.FAILURE)
            if self._release(tcb.nbl):
                done.append(tcb.nbl)
        if a.dpc is not None:
            a.dpc.cancel()
            a.dpc = None
        if done:
            self._complete(a, done, 0)
        a.state = HALTED
        if a.port is not None and a.wire is not None:
            a.wire.ports.remove(a.port)
            a.port = None
        if a.rx_pool is not None:
            self.ndis.NdisFreeNetBufferListPool(a.rx_pool)
            a.rx_pool = None
        self.adapters.pop(a.name, None)

    def MiniportOidRequest(
        self, MiniportAdapterContext: Vmini6Adapter, OidRequest: NDIS_OID_REQUEST
    ) -> NDIS_STATUS:
        if (
            OidRequest.RequestType == NdisRequestSetInformation
            and OidRequest.Oid == OID_GEN_CURRENT_PACKET_FILTER
        ):
            MiniportAdapterContext.packet_filter = int(OidRequest.InformationBuffer)
            return NDIS_STATUS.SUCCESS
        return NDIS_STATUS.INVALID_OID

    def set_link(self, a: Vmini6Adapter, connected: bool) -> None:
        """The cable: NdisMIndicateStatusEx(NDIS_STATUS_LINK_STATE)."""
        a.media_connected = connected
        state = NdisMediaStateConnected if connected else NdisMediaStateDisconnected
        indication = NDIS_STATUS_INDICATION(
            a.handle, NDIS_STATUS.LINK_STATE, NDIS_LINK_STATE(state, 1_000_000_000)
        )
        self.ndis.NdisMIndicateStatusEx(a.handle, indication)

    # --- send ----------------------------------------------------------------------------------
    def MiniportSendNetBufferLists(
        self,
        MiniportAdapterContext: Vmini6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        SendFlags: int,
    ) -> None:
        """Queue every NB of every NBL (FIFO) or refuse the NBL at once; then transmit."""
        ndis = self.ndis
        a = MiniportAdapterContext
        refused: list[NET_BUFFER_LIST] = []
        ndis.NdisAcquireSpinLock(a.lock)
        status = a.refusal()
        for nbl in iter_nbls(NetBufferLists):
            nbl.Next = None
            if status is not None:
                NET_BUFFER_LIST_STATUS_SET(nbl, status)
                refused.append(nbl)
                continue
            count = 0
            for nb in iter_nbs(nbl):
                a.wait.append((nbl, nb))
                count += 1
            nbl.MiniportReserved[0] = count
            nbl.MiniportReserved[1] = None
            NET_BUFFER_LIST_STATUS_SET(nbl, NDIS_STATUS.SUCCESS)
        ndis.NdisReleaseSpinLock(a.lock)
        if refused:
            flags = _COMPLETE_DISPATCH if SendFlags & _SEND_DISPATCH else 0
            self._complete(a, refused, flags)
        self._transmit(a)

    def _transmit(self, a: Vmini6Adapter) -> None:
        """Give waiting NBs to free TCBs, in order; arm the completion DPC."""
        ndis = self.ndis
        now = ndis.scheduler.now_ns
        ndis.NdisAcquireSpinLock(a.lock)
        frames: list[bytes] = []
        while a.free_tcbs and a.wait:
            nbl, nb = a.wait.popleft()
            a.free_tcbs -= 1
            a.tx_free_at = max(now, a.tx_free_at) + a.tx_ns
            done = a.tx_free_at
            if a.jitter_ns:
                done += ndis.scheduler.random.randrange(a.jitter_ns + 1)
            heapq.heappush(a.busy, (done, next(a.seq), Tcb(nbl, nb, done)))
            if nb.DataLength > a.mtu + 14:
                _fail(nbl, NDIS_STATUS.INVALID_LENGTH)
                continue
            frames.append(nb_bytes(nb))
        self._arm(a)
        ndis.NdisReleaseSpinLock(a.lock)
        for frame in frames:
            a.tx_frames += 1
            a.tx_bytes += len(frame)
            if a.port is not None:
                a.port.transmit(frame)

    def _arm(self, a: Vmini6Adapter) -> None:
        if a.busy and a.dpc is None:
            sched = self.ndis.scheduler
            due = max(sched.now_ns, a.busy[0][0]) + a.coalesce_ns
            a.dpc = sched.call_at(due, self._tx_dpc, a, label="vmini-tx")

    def _release(self, nbl: NET_BUFFER_LIST) -> bool:
        """Drop one NB reference; True when the NBL is finished (its status is then set)."""
        left = nbl.MiniportReserved[0] - 1
        nbl.MiniportReserved[0] = left
        if left:
            return False
        failure = nbl.MiniportReserved[1]
        NET_BUFFER_LIST_STATUS_SET(nbl, failure if failure is not None else NDIS_STATUS.SUCCESS)
        return True

    def _tx_dpc(self, a: Vmini6Adapter) -> None:
        """Completion DPC: finish up to dpc_batch TCBs, complete the finished NBLs in one call,
        refill the TCBs."""
        ndis = self.ndis
        with self._dpc():
            a.dpc = None
            now = ndis.scheduler.now_ns
            done: list[NET_BUFFER_LIST] = []
            ndis.NdisDprAcquireSpinLock(a.lock)
            freed = 0
            while a.busy and a.busy[0][0] <= now and freed < a.dpc_batch:
                _, _, tcb = heapq.heappop(a.busy)
                a.free_tcbs += 1
                freed += 1
                if self._release(tcb.nbl):
                    done.append(tcb.nbl)
            ndis.NdisDprReleaseSpinLock(a.lock)
            if a.random_order:
                ndis.scheduler.random.shuffle(done)
            if done:
                self._complete(a, done, _COMPLETE_DISPATCH)
            self._transmit(a)
            self._check_pause(a)

    def _complete(self, a: Vmini6Adapter, nbls: list[NET_BUFFER_LIST], flags: int) -> None:
        a.completion_calls.append(len(nbls))
        self.ndis.NdisMSendNetBufferListsComplete(a.handle, link_nbls(nbls), flags)

    def _flush_wait(self, a: Vmini6Adapter, status: NDIS_STATUS, flags: int) -> None:
        """Fail every waiting NB with ``status``; complete the NBLs that are then finished."""
        done: list[NET_BUFFER_LIST] = []
        while a.wait:
            nbl, _ = a.wait.popleft()
            _fail(nbl, status)
            if self._release(nbl):
                done.append(nbl)
        if done:
            self._complete(a, done, flags)

    def MiniportCancelSend(self, MiniportAdapterContext: Vmini6Adapter, CancelId: Any) -> None:
        """Drop the waiting NBs of NBLs marked ``CancelId``; those NBLs complete with
        SEND_ABORTED (NBs already on the hardware finish first)."""
        a = MiniportAdapterContext
        a.cancels += 1
        keep: deque[tuple[NET_BUFFER_LIST, NET_BUFFER]] = deque()
        done: list[NET_BUFFER_LIST] = []
        for nbl, nb in a.wait:
            if NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(nbl) == CancelId:
                _fail(nbl, NDIS_STATUS.SEND_ABORTED)
                if self._release(nbl):
                    done.append(nbl)
            else:
                keep.append((nbl, nb))
        a.wait = keep
        if done:
            self._complete(a, done, 0)
        self._check_pause(a)

    # --- receive -------------------------------------------------------------------------------
    def _receive(self, a: Vmini6Adapter, frame: bytes) -> None:
        """A frame from the wire (a receive DPC): copy it into a receive buffer, indicate it."""
        with self._dpc():
            if a.state != RUNNING or a.rx_pool is None or len(frame) > a.mtu + 14:
                a.rx_dropped += 1
                return
            nbl = NdisAllocateNetBufferList(a.rx_pool, 0, 0)
            if nbl is None:
                a.rx_dropped += 1
                return
            nb = nbl.FirstNetBuffer
            assert nb is not None and nb.MdlChain is not None
            nb.MdlChain.MappedSystemVa[: len(frame)] = frame
            nb.DataLength = len(frame)
            a.rx_frames += 1
            left = (a.rx_pool.limit or 0) - a.rx_pool.outstanding
            if left < a.low_rcbs:
                a.rx_resources += 1
                self.ndis.NdisMIndicateReceiveNetBufferLists(
                    a.handle, nbl, 0, 1, _RX_FLAGS | _RX_RESOURCES
                )
                NdisFreeNetBufferList(nbl)
                return
            a.rx_outstanding += 1
            self.ndis.NdisMIndicateReceiveNetBufferLists(a.handle, nbl, 0, 1, _RX_FLAGS)

    def MiniportReturnNetBufferLists(
        self,
        MiniportAdapterContext: Vmini6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        ReturnFlags: int,
    ) -> None:
        a = MiniportAdapterContext
        for nbl in iter_nbls(NetBufferLists):
            nbl.Next = None
            NdisFreeNetBufferList(nbl)
            a.rx_outstanding -= 1
        self._check_pause(a)


__all__ = ["DEFAULT_ADDRESS", "NetVMini6", "Tcb", "Vmini6Adapter"]
