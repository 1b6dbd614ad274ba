"""comini6: a CoNDIS 6 miniport with an integrated call manager (an MCM) on a simulated wire.

Theory of operation
-------------------
The adapter registers one address family (``af``, default CO_ADDRESS_FAMILY_PPP's number is
arbitrary: any value works as long as the clients ask for it) with
NdisMCmRegisterAddressFamilyEx from MiniportInitializeEx, so NDIS offers it to every CoNDIS
client that binds. Calls are *permanent*: the call parameters name a VC number
(:func:`vc_call_parameters`), the integrated CM activates the VC on its own hardware
(NdisMCmActivateVc) and the call is up when ProtocolCmMakeCall returns. Both ends of the wire
must open a call with the same number; frames carry it in a 4-byte big-endian header, so the
receiving adapter indicates each frame on the VC with that number (NdisMCoIndicateReceive-
NetBufferLists; frames for a number nobody has open are dropped and counted).

Send path (MiniportCoSendNetBufferLists, deserialized, no NDIS queue, rule 36): each NBL gets a
reference per NET_BUFFER and its NBs join one FIFO wait list shared by all VCs, so each VC's
frames leave in the order they were sent; ``tcbs`` transmit slots take waiting NBs in order and
finish ``tx_ns`` apart (plus seeded ``jitter_ns``). A completion DPC frees up to ``dpc_batch``
finished slots (it runs ``coalesce_ns`` after the first one finished: interrupt moderation)
and completes every NBL whose NBs are all done in *one*
NdisMCoSendNetBufferListsComplete call, in a seeded random order when ``random_order`` (the
default) — NBLs of many VCs in one call, named by the handle of the first (rule 49: NDIS routes
each by its SourceHandle). The miniport keeps its own bookkeeping in ``MiniportReserved``:
``[0]`` the VC context, ``[1]`` ``[NBs left, first failure]``.

Closing (rule 32): ProtocolCmCloseCall deactivates the VC (NdisMCmDeactivateVc); NDIS only
forwards a close once the VC's sends are back. MiniportCoDeactivateVc (a forced teardown) fails
the VC's waiting NBs with SEND_ABORTED and completes PENDING until its NBs on the hardware are
done (NdisMCoDeactivateVcComplete). Pause completes when every send and receive is back.

Registry keywords: ``wire``, ``af`` (0x6), ``tcbs`` (64), ``dpc_batch`` (64), ``tx_ns`` (500),
``jitter_ns`` (0), ``coalesce_ns`` (10000), ``random_order`` (True), ``rcbs`` (256),
``low_rcbs`` (0), ``mtu`` (9180), ``stalled`` (False: with True nothing is transmitted until
:meth:`CoMini6.unstall`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL,
    NdisMediumCoWan,
)
from ..errors import Culprit
from ..library.adapter import (
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
)
from ..library.covc import (
    CO_ADDRESS_FAMILY,
    CO_CALL_PARAMETERS,
    CO_MEDIA_PARAMETERS,
    CO_SPECIFIC_PARAMETERS,
    VirtualConnection,
)
from ..nbl import (
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
    from ..library.kernel import Ndis

DEFAULT_AF = 0x6
_SEND_DISPATCH = int(NDIS_SEND_FLAGS_DISPATCH_LEVEL)
_COMPLETE_DISPATCH = int(NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL)
_RX_FLAGS = int(NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL)
_RX_RESOURCES = int(NDIS_RECEIVE_FLAGS_RESOURCES)


def vc_call_parameters(vc_number: int) -> CO_CALL_PARAMETERS:
    """Call parameters for a permanent call on VC ``vc_number`` (media-specific parameter)."""
    return CO_CALL_PARAMETERS(
        MediaParameters=CO_MEDIA_PARAMETERS(
            MediaSpecific=CO_SPECIFIC_PARAMETERS(ParamType=0, Length=4, Parameters=vc_number)
        )
    )


def _vc_number(params: CO_CALL_PARAMETERS | None) -> int | None:
    if params is None or params.MediaParameters is None:
        return None
    value = params.MediaParameters.MediaSpecific.Parameters
    return value if isinstance(value, int) and 0 <= value < 2**32 else None


class CoVc6:
    """One VC at the adapter: its MiniportVcContext, which is also its CallMgrVcContext."""

    def __init__(self, adapter: CoMini6Adapter, handle: VirtualConnection) -> None:
        self.adapter = adapter
        self.handle = handle
        self.number: int | None = None
        self.active = False
        #: NBLs of this VC the miniport holds
        self.held = 0
        self.deactivate_pending = False
        self.sent_frames = 0
        self.received_frames = 0

    def __repr__(self) -> str:
        return f"<CoVc6 #{self.number} active={self.active} held={self.held}>"


class CoMini6Adapter:
    """One comini6 adapter (its MiniportAdapterContext)."""

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.handle = handle
        self.name = config.name
        self.wire: Wire | None = config.get("wire")
        self.port: WirePort | None = None
        self.af = int(config.get("af", DEFAULT_AF))
        self.tcbs = int(config.get("tcbs", 64))
        self.dpc_batch = int(config.get("dpc_batch", 64))
        self.tx_ns = int(config.get("tx_ns", 500))
        self.jitter_ns = int(config.get("jitter_ns", 0))
        #: interrupt moderation: the completion DPC runs this long after the first TCB is done
        self.coalesce_ns = int(config.get("coalesce_ns", 10000))
        self.random_order = bool(config.get("random_order", True))
        self.rcbs = int(config.get("rcbs", 256))
        self.low_rcbs = int(config.get("low_rcbs", 0))
        self.mtu = int(config.get("mtu", 9180))
        #: a stalled transmitter (flow control): NBs wait until ``stalled`` is cleared
        self.stalled = bool(config.get("stalled", False))
        self.state = "paused"
        self.pause_pending = False
        self.by_number: dict[int, CoVc6] = {}
        self.wait: deque[tuple[CoVc6, NET_BUFFER_LIST, NET_BUFFER]] = deque()
        self.free_tcbs = self.tcbs
        self.busy: list[tuple[int, int, CoVc6, NET_BUFFER_LIST]] = []
        self.seq = itertools.count()
        self.tx_free_at = 0
        self.dpc: Any = None
        self.rx_pool: NblPool | None = None
        self.rx_outstanding = 0
        self.rx_dropped = 0
        #: (NBLs, distinct VCs) of each NdisMCoSendNetBufferListsComplete call
        self.completion_calls: list[tuple[int, int]] = []

    def idle(self) -> bool:
        return not self.wait and not self.busy and self.rx_outstanding == 0

    def __repr__(self) -> str:
        return f"<CoMini6Adapter {self.name!r} {self.state} vcs={len(self.by_number)}>"


class CoMini6:
    """The comini6 driver: a CoNDIS 6 miniport and its integrated call manager."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, CoMini6Adapter] = {}

    @contextmanager
    def _dpc(self) -> Iterator[None]:
        """Our DPCs run as miniport code (scheduler items have no actor of their own)."""
        self.ndis.actors.append(Culprit.MINIPORT)
        try:
            yield
        finally:
            self.ndis.actors.pop()

    # --- life cycle ----------------------------------------------------------------------------
    def MiniportInitializeEx(
        self,
        NdisMiniportHandle: MiniportBlock,
        MiniportDriverContext: Any,
        MiniportInitParameters: AdapterConfig,
    ) -> NDIS_STATUS:
        ndis = self.ndis
        a = CoMini6Adapter(NdisMiniportHandle, MiniportInitParameters)
        ndis.NdisMSetMiniportAttributes(
            NdisMiniportHandle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(a)
        )
        ndis.NdisMSetMiniportAttributes(
            NdisMiniportHandle,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(MediaType=NdisMediumCoWan, MtuSize=a.mtu),
        )
        params = NET_BUFFER_LIST_POOL_PARAMETERS(
            fAllocateNetBuffer=True, DataSize=a.mtu, PoolTag="corx"
        )
        a.rx_pool = ndis.NdisAllocateNetBufferListPool(NdisMiniportHandle, params, limit=a.rcbs)
        if a.rx_pool is None:
            return NDIS_STATUS.RESOURCES
        status = ndis.NdisMCmRegisterAddressFamilyEx(NdisMiniportHandle, CO_ADDRESS_FAMILY(a.af))
        if status != NDIS_STATUS.SUCCESS:
            ndis.NdisFreeNetBufferListPool(a.rx_pool)
            return status
        if a.wire is not None:
            a.port = a.wire.attach(ndis, lambda frame: self._receive(a, frame), a.name)
        self.adapters[a.name] = a
        return NDIS_STATUS.SUCCESS

    def MiniportRestart(
        self, MiniportAdapterContext: CoMini6Adapter, Parameters: Any
    ) -> NDIS_STATUS:
        MiniportAdapterContext.state = "running"
        return NDIS_STATUS.SUCCESS

    def MiniportPause(self, MiniportAdapterContext: CoMini6Adapter, Parameters: Any) -> NDIS_STATUS:
        a = MiniportAdapterContext
        a.state = "pausing"
        if a.idle():
            a.state = "paused"
            return NDIS_STATUS.SUCCESS
        a.pause_pending = True
        return NDIS_STATUS.PENDING

    def _check_pause(self, a: CoMini6Adapter) -> None:
        if a.pause_pending and a.idle():
            a.pause_pending = False
            a.state = "paused"
            self.ndis.NdisMPauseComplete(a.handle)

    def MiniportHaltEx(self, MiniportAdapterContext: CoMini6Adapter, HaltAction: int) -> None:
        a = MiniportAdapterContext
        a.state = "halted"
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

    # --- VCs and the integrated call manager ---------------------------------------------------
    def MiniportCoCreateVc(
        self, MiniportAdapterContext: CoMini6Adapter, NdisVcHandle: VirtualConnection
    ) -> tuple[NDIS_STATUS, CoVc6]:
        return NDIS_STATUS.SUCCESS, CoVc6(MiniportAdapterContext, NdisVcHandle)

    def MiniportCoDeleteVc(self, MiniportVcContext: CoVc6) -> NDIS_STATUS:
        return NDIS_STATUS.SUCCESS

    def MiniportCoActivateVc(
        self, MiniportVcContext: CoVc6, CallParameters: CO_CALL_PARAMETERS
    ) -> NDIS_STATUS:
        """For a stand-alone call manager (NdisCmActivateVc)."""
        return self._activate(MiniportVcContext, CallParameters)

    def _activate(self, vc: CoVc6, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        number = _vc_number(params)
        a = vc.adapter
        if number is None or a.by_number.get(number, vc) is not vc:
            return NDIS_STATUS.INVALID_DATA
        vc.number = number
        vc.active = True
        a.by_number[number] = vc
        return NDIS_STATUS.SUCCESS

    def MiniportCoDeactivateVc(self, MiniportVcContext: CoVc6) -> NDIS_STATUS:
        """Fail the VC's waiting NBs; PENDING until its NBs on the hardware are done."""
        vc = MiniportVcContext
        a = vc.adapter
        self._unmap(vc)
        done: list[NET_BUFFER_LIST] = []
        keep: deque[tuple[CoVc6, NET_BUFFER_LIST, NET_BUFFER]] = deque()
        for owner, nbl, nb in a.wait:
            if owner is vc:
                if self._release(nbl, NDIS_STATUS.SEND_ABORTED):
                    done.append(nbl)
            else:
                keep.append((owner, nbl, nb))
        a.wait = keep
        if done:
            self._complete(a, done, 0)
        if vc.held:
            vc.deactivate_pending = True
            return NDIS_STATUS.PENDING
        return NDIS_STATUS.SUCCESS

    def _unmap(self, vc: CoVc6) -> None:
        vc.active = False
        if vc.number is not None and vc.adapter.by_number.get(vc.number) is vc:
            del vc.adapter.by_number[vc.number]

    def ProtocolCmOpenAf(
        self, CallMgrBindingContext: Any, AddressFamily: CO_ADDRESS_FAMILY, NdisAfHandle: Any
    ) -> tuple[NDIS_STATUS, Any]:
        return NDIS_STATUS.SUCCESS, NdisAfHandle

    def ProtocolCmCloseAf(self, CallMgrAfContext: Any) -> NDIS_STATUS:
        return NDIS_STATUS.SUCCESS

    def ProtocolCmRegisterSap(
        self, CallMgrAfContext: Any, Sap: Any, NdisSapHandle: Any
    ) -> tuple[NDIS_STATUS, Any]:
        return NDIS_STATUS.SUCCESS, NdisSapHandle

    def ProtocolCmDeregisterSap(self, CallMgrSapContext: Any) -> NDIS_STATUS:
        return NDIS_STATUS.SUCCESS

    def ProtocolCmMakeCall(
        self, CallMgrVcContext: CoVc6, CallParameters: CO_CALL_PARAMETERS, NdisPartyHandle: Any
    ) -> NDIS_STATUS:
        """A permanent call: activate the VC on our hardware and say so (NdisMCmActivateVc)."""
        vc = CallMgrVcContext
        status = self._activate(vc, CallParameters)
        if status == NDIS_STATUS.SUCCESS:
            self.ndis.NdisMCmActivateVc(vc.handle, CallParameters)
        return status

    def ProtocolCmCloseCall(
        self, CallMgrVcContext: CoVc6, CallMgrPartyContext: Any, CloseData: Any, Size: int
    ) -> NDIS_STATUS:
        """NDIS forwards a close once the VC's sends are back (rule 32): deactivate it."""
        vc = CallMgrVcContext
        self._unmap(vc)
        self.ndis.NdisMCmDeactivateVc(vc.handle)
        return NDIS_STATUS.SUCCESS

    # --- send ----------------------------------------------------------------------------------
    def MiniportCoSendNetBufferLists(
        self, MiniportVcContext: CoVc6, NetBufferLists: NET_BUFFER_LIST, SendFlags: int
    ) -> None:
        """Queue every NB (one FIFO for all VCs) or refuse the NBL at once; then transmit."""
        vc = MiniportVcContext
        a = vc.adapter
        refusal = NDIS_STATUS.PAUSED if a.state != "running" else None
        if refusal is None and not vc.active:
            refusal = NDIS_STATUS.FAILURE
        refused: list[NET_BUFFER_LIST] = []
        for nbl in iter_nbls(NetBufferLists):
            nbl.Next = None
            nbl.MiniportReserved[0] = vc
            vc.held += 1
            if refusal is not None:
                nbl.MiniportReserved[1] = [1, refusal]
                self._release(nbl, refusal)
                refused.append(nbl)
                continue
            count = 0
            for nb in iter_nbs(nbl):
                a.wait.append((vc, nbl, nb))
                count += 1
            nbl.MiniportReserved[1] = [count, None]
        if refused:
            self._complete(a, refused, _COMPLETE_DISPATCH if SendFlags & _SEND_DISPATCH else 0)
        self._transmit(a)

    def _transmit(self, a: CoMini6Adapter) -> None:
        ndis = self.ndis
        now = ndis.scheduler.now_ns
        frames: list[bytes] = []
        while a.free_tcbs and a.wait and not a.stalled:
            vc, nbl, nb = a.wait.popleft()
            a.free_tcbs -= 1
            a.tx_free_at = max(now, a.tx_free_at) + a.tx_ns
            done = a.tx_free_at
            if a.jitter_ns:
                done += ndis.scheduler.random.randrange(a.jitter_ns + 1)
            heapq.heappush(a.busy, (done, next(a.seq), vc, nbl))
            assert vc.number is not None
            frames.append(vc.number.to_bytes(4, "big") + nb_bytes(nb))
            vc.sent_frames += 1
        if a.busy and a.dpc is None:
            due = max(now, a.busy[0][0]) + a.coalesce_ns
            a.dpc = ndis.scheduler.call_at(due, self._tx_dpc, a, label="comini-tx")
        if a.port is not None:
            for frame in frames:
                a.port.transmit(frame)

    def _release(self, nbl: NET_BUFFER_LIST, failure: NDIS_STATUS | None = None) -> bool:
        """Drop one NB reference (noting a failure); True when the NBL is finished."""
        state = nbl.MiniportReserved[1]
        if failure is not None and state[1] is None:
            state[1] = failure
        state[0] -= 1
        if state[0]:
            return False
        NET_BUFFER_LIST_STATUS_SET(nbl, state[1] if state[1] is not None else NDIS_STATUS.SUCCESS)
        return True

    def _tx_dpc(self, a: CoMini6Adapter) -> None:
        ndis = self.ndis
        with self._dpc():
            a.dpc = None
            now = ndis.scheduler.now_ns
            done: list[NET_BUFFER_LIST] = []
            freed = 0
            while a.busy and a.busy[0][0] <= now and freed < a.dpc_batch:
                _, _, _, nbl = heapq.heappop(a.busy)
                a.free_tcbs += 1
                freed += 1
                if self._release(nbl):
                    done.append(nbl)
            if a.random_order:
                ndis.scheduler.random.shuffle(done)
            if done:
                self._complete(a, done, _COMPLETE_DISPATCH)
            self._transmit(a)
            self._check_pause(a)

    def _complete(self, a: CoMini6Adapter, nbls: list[NET_BUFFER_LIST], flags: int) -> None:
        """One NdisMCoSendNetBufferListsComplete for NBLs of any of our VCs."""
        vcs: list[CoVc6] = []
        for nbl in nbls:
            vc: CoVc6 = nbl.MiniportReserved[0]
            vc.held -= 1
            if vc not in vcs:
                vcs.append(vc)
        a.completion_calls.append((len(nbls), len(vcs)))
        self.ndis.NdisMCoSendNetBufferListsComplete(vcs[0].handle, link_nbls(nbls), flags)
        for vc in vcs:
            if vc.deactivate_pending and not vc.held:
                vc.deactivate_pending = False
                self.ndis.NdisMCoDeactivateVcComplete(NDIS_STATUS.SUCCESS, vc.handle)

    def unstall(self, a: CoMini6Adapter) -> None:
        """The transmitter may go again (flow control released)."""
        a.stalled = False
        self._transmit(a)

    # --- receive -------------------------------------------------------------------------------
    def _receive(self, a: CoMini6Adapter, frame: bytes) -> None:
        """A frame from the wire: indicate its payload on the VC its header names."""
        with self._dpc():
            vc = a.by_number.get(int.from_bytes(frame[:4], "big")) if len(frame) >= 4 else None
            payload = frame[4:]
            if vc is None or a.state != "running" or a.rx_pool is None or len(payload) > a.mtu:
                a.rx_dropped += 1
                return
            nbl = NdisAllocateNetBufferList(a.rx_pool, 0, 0)
            if nbl is None:
                a.rx_dropped += 1
                return
            nb = nbl.FirstNetBuffer
            assert nb is not None and nb.MdlChain is not None
            nb.MdlChain.MappedSystemVa[: len(payload)] = payload
            nb.DataLength = len(payload)
            vc.received_frames += 1
            left = (a.rx_pool.limit or 0) - a.rx_pool.outstanding
            if left < a.low_rcbs:
                self.ndis.NdisMCoIndicateReceiveNetBufferLists(
                    vc.handle, nbl, 1, _RX_FLAGS | _RX_RESOURCES
                )
                NdisFreeNetBufferList(nbl)
                return
            a.rx_outstanding += 1
            self.ndis.NdisMCoIndicateReceiveNetBufferLists(vc.handle, nbl, 1, _RX_FLAGS)

    def MiniportReturnNetBufferLists(
        self,
        MiniportAdapterContext: CoMini6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        ReturnFlags: int,
    ) -> None:
        a = MiniportAdapterContext
        for nbl in iter_nbls(NetBufferLists):
            nbl.Next = None
            NdisFreeNetBufferList(nbl)
            a.rx_outstanding -= 1
        self._check_pause(a)


__all__ = ["DEFAULT_AF", "CoMini6", "CoMini6Adapter", "CoVc6", "vc_call_parameters"]
