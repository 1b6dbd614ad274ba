"""ndisprot6: an NDIS 6 protocol modelled on the ndisprot sample (raw frames in and out).

Theory of operation
-------------------
``register(ndis)`` is DriverEntry: NdisRegisterProtocolDriver, keeping the handle; the adapters
present are offered afterwards (ProtocolBindAdapterEx from PASSIVE work items: run the
scheduler). Each binding is an :class:`ProtOpen` (the ProtocolBindingContext). Binding follows
ndisprot: ``ProtocolBindAdapterEx`` opens the adapter (NdisOpenAdapterEx), allocates an NBL pool
with a pre-allocated NET_BUFFER per NBL and an NB pool for further NBs, and sets the packet
filter with NdisOidRequest. A write (``send``) builds one NBL per frame list: the first frame in
the NBL's own NB, the others in NBs from the NB pool, each over an MDL that describes the
caller's bytes (no copy). Every NBL gets ``SourceHandle`` = the binding handle (rule 47) and a
cancel ID (the partial ID from NdisGeneratePartialCancelId in the top byte), and the chain goes
down in one NdisSendNetBufferLists call with NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK unless
``loopback=False``.

``ProtocolSendNetBufferListsComplete`` walks the chain (reading ``Next`` before it frees an
NBL), records each NBL's status, frees the NBs, MDLs and NBL, and drops the pended-send count
that a pause and an unbind wait on. Sends are refused unless the binding is Running (ndisprot's
"not ready" check): ``send`` then returns NDIS_STATUS_ADAPTER_NOT_READY and nothing goes down.

Receive: each frame (one per NB) is copied to ``received`` with its loopback flag. Without
NDIS_RECEIVE_FLAGS_RESOURCES the NBLs are returned at once (or, with ``retain=True``, kept until
``return_received`` or the next pause, which returns them); with it, NDIS takes them back when
the handler returns.

Hooks for tests: ``on_send_complete(open, nbls_statuses)`` runs inside the completion handler
(a test may send again from there: re-entrancy).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisMedium802_3,
    NdisRequestSetInformation,
)
from ..library.binding import (
    NDIS_BIND_PARAMETERS,
    NDIS_OID_REQUEST,
    NDIS_OPEN_PARAMETERS,
    NET_PNP_EVENT_CODE,
    NET_PNP_EVENT_NOTIFICATION,
    OpenBlock,
)
from ..nbl import (
    NDIS_SET_NET_BUFFER_LIST_CANCEL_ID,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_STATUS,
    iter_nbls,
    link_nbls,
    nbl_bytes,
)
from ..nblpool import NblPool, NbPool
from ..status import NDIS_STATUS
from .common6 import (
    Frames,
    SampleProtocol6,
    allocate_frame_pools,
    frame_parts,
    frames_nbl,
    free_frame_pools,
    free_frames_nbl,
    return_flags,
)

if TYPE_CHECKING:
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis


class ProtOpen:
    """One binding of ndisprot6 (its ProtocolBindingContext)."""

    def __init__(self, adapter_name: str) -> None:
        self.adapter_name = adapter_name
        self.binding: OpenBlock | None = None
        self.nbl_pool: NblPool | None = None
        self.nb_pool: NbPool | None = None
        self.state = "opening"
        self.partial_cancel_id = 0
        self.cancel_seq = 0
        #: NBLs sent and not yet completed (what a pause or unbind waits for)
        self.pended = 0
        #: the status of every completed NBL, in completion order
        self.statuses: list[int] = []
        #: how many NBLs each ProtocolSendNetBufferListsComplete call carried
        self.completion_calls: list[int] = []
        self.completion_flags: list[int] = []
        #: received frames: (bytes, is_loopback)
        self.received: list[tuple[bytes, bool]] = []
        self.receive_flags: list[int] = []
        self.retained: list[NET_BUFFER_LIST] = []
        self.status_indications: list[int] = []
        self.on_send_complete: Callable[[ProtOpen, list[int]], None] | None = None

    def __repr__(self) -> str:
        return f"<ProtOpen {self.adapter_name!r} {self.state} pended={self.pended}>"


class NdisProt6(SampleProtocol6):
    """The ndisprot6 protocol driver."""

    ndis: Ndis

    def __init__(
        self,
        packet_filter: int = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST,
        loopback: bool = True,
        retain: bool = False,
    ) -> None:
        self.packet_filter = packet_filter
        self.loopback = loopback
        self.retain = retain
        self.handle: DriverBlock | None = None
        self.opens: dict[str, ProtOpen] = {}

    # --- DriverEntry and binding -----------------------------------------------------------------
    def ProtocolBindAdapterEx(
        self, ProtocolDriverContext: Any, BindContext: Any, BindParameters: NDIS_BIND_PARAMETERS
    ) -> NDIS_STATUS:
        """Open the adapter, allocate the pools, set the packet filter."""
        ndis = self.ndis
        handle = self.protocol_handle()
        ctx = ProtOpen(BindParameters.AdapterName)
        self.opens[ctx.adapter_name] = ctx
        ctx.nbl_pool, ctx.nb_pool = allocate_frame_pools(ndis, handle, "prot", "prnb")
        if ctx.nbl_pool is None:
            return NDIS_STATUS.RESOURCES
        ctx.partial_cancel_id = ndis.NdisGeneratePartialCancelId()
        status, binding = ndis.NdisOpenAdapterEx(
            handle,
            ctx,
            NDIS_OPEN_PARAMETERS(BindParameters.AdapterName, [NdisMedium802_3]),
            BindContext,
        )
        if status != NDIS_STATUS.SUCCESS or binding is None:
            self._free_pools(ctx)
            return status
        ctx.binding = binding
        self.set_filter(ctx, self.packet_filter)
        return NDIS_STATUS.SUCCESS

    def set_filter(self, ctx: ProtOpen, packet_filter: int) -> NDIS_STATUS:
        assert ctx.binding is not None
        request = NDIS_OID_REQUEST(
            NdisRequestSetInformation, OID_GEN_CURRENT_PACKET_FILTER, packet_filter
        )
        return self.ndis.NdisOidRequest(ctx.binding, request)

    def ProtocolNetPnPEvent(
        self, ProtocolBindingContext: ProtOpen, NetPnPEventNotification: NET_PNP_EVENT_NOTIFICATION
    ) -> NDIS_STATUS:
        ctx = ProtocolBindingContext
        event = NetPnPEventNotification.NetEvent
        if event == NET_PNP_EVENT_CODE.NetEventPause:
            ctx.state = "paused"
            self.return_received(ctx)
        elif event == NET_PNP_EVENT_CODE.NetEventRestart:
            ctx.state = "running"
        return NDIS_STATUS.SUCCESS

    def ProtocolUnbindAdapterEx(
        self, UnbindContext: Any, ProtocolBindingContext: ProtOpen
    ) -> NDIS_STATUS:
        ctx = ProtocolBindingContext
        assert ctx.binding is not None
        ctx.state = "closing"
        self.return_received(ctx)
        status = self.ndis.NdisCloseAdapterEx(ctx.binding)
        if status != NDIS_STATUS.PENDING:
            self._closed(ctx)
        return status

    def ProtocolCloseAdapterCompleteEx(self, ProtocolBindingContext: ProtOpen) -> None:
        self._closed(ProtocolBindingContext)

    def ProtocolOpenAdapterCompleteEx(self, ProtocolBindingContext: ProtOpen, Status: int) -> None:
        """NdisOpenAdapterEx completes synchronously in the model."""

    def _closed(self, ctx: ProtOpen) -> None:
        ctx.state = "closed"
        self._free_pools(ctx)
        self.opens.pop(ctx.adapter_name, None)

    def _free_pools(self, ctx: ProtOpen) -> None:
        free_frame_pools(self.ndis, ctx.nbl_pool, ctx.nb_pool)
        ctx.nbl_pool = ctx.nb_pool = None

    def ProtocolStatusEx(self, ProtocolBindingContext: ProtOpen, StatusIndication: Any) -> None:
        ProtocolBindingContext.status_indications.append(int(StatusIndication.StatusCode))

    # --- send ------------------------------------------------------------------------------------
    def build(self, ctx: ProtOpen, frames: Frames) -> NET_BUFFER_LIST | None:
        """One NBL whose NBs describe ``frames`` (zero copy), SourceHandle and cancel ID set;
        None if a pool is out of descriptors (nothing is left allocated then)."""
        assert ctx.binding is not None and ctx.nbl_pool is not None and ctx.nb_pool is not None
        nbl = frames_nbl(self.ndis, ctx.nbl_pool, ctx.nb_pool, frame_parts(frames))
        if nbl is None:
            return None
        nbl.SourceHandle = ctx.binding
        ctx.cancel_seq = (ctx.cancel_seq + 1) & 0xFFFFFF
        NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(nbl, (ctx.partial_cancel_id << 24) | ctx.cancel_seq)
        return nbl

    def send(self, ctx: ProtOpen, nbls: Sequence[Frames], flags: int | None = None) -> NDIS_STATUS:
        """Send one NBL per entry of ``nbls`` (an entry: one frame, or several = several NBs)
        in one NdisSendNetBufferLists call. ADAPTER_NOT_READY unless Running; RESOURCES if a
        pool ran out (nothing sent then)."""
        if ctx.state != "running" or ctx.binding is None:
            return NDIS_STATUS.ADAPTER_NOT_READY
        built: list[NET_BUFFER_LIST] = []
        for frames in nbls:
            nbl = self.build(ctx, frames)
            if nbl is None:
                for done in built:
                    self.free_nbl(done)
                return NDIS_STATUS.RESOURCES
            built.append(nbl)
        if flags is None:
            flags = NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK if self.loopback else 0
        ctx.pended += len(built)
        self.ndis.NdisSendNetBufferLists(ctx.binding, link_nbls(built), 0, flags)
        return NDIS_STATUS.PENDING

    def write(self, ctx: ProtOpen, frame: bytes) -> NDIS_STATUS:
        """ndisprot's write: one frame."""
        return self.send(ctx, [frame])

    def free_nbl(self, nbl: NET_BUFFER_LIST) -> None:
        """Free the NBs we chained (and every MDL), then the NBL with its own NB."""
        free_frames_nbl(self.ndis, nbl)

    def ProtocolSendNetBufferListsComplete(
        self,
        ProtocolBindingContext: ProtOpen,
        NetBufferLists: NET_BUFFER_LIST,
        SendCompleteFlags: int,
    ) -> None:
        """Record each NBL's status and free it (Next is read before the free)."""
        ctx = ProtocolBindingContext
        statuses: list[int] = []
        for nbl in iter_nbls(NetBufferLists):
            statuses.append(NET_BUFFER_LIST_STATUS(nbl))
            self.free_nbl(nbl)
        ctx.pended -= len(statuses)
        ctx.statuses += statuses
        ctx.completion_calls.append(len(statuses))
        ctx.completion_flags.append(SendCompleteFlags)
        if ctx.on_send_complete is not None:
            ctx.on_send_complete(ctx, statuses)

    # --- receive ---------------------------------------------------------------------------------
    def ProtocolReceiveNetBufferLists(
        self,
        ProtocolBindingContext: ProtOpen,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        NumberOfNetBufferLists: int,
        ReceiveFlags: int,
    ) -> None:
        """Copy every frame out; return the NBLs (unless RESOURCES, or retaining them)."""
        ctx = ProtocolBindingContext
        ctx.receive_flags.append(ReceiveFlags)
        kept: list[NET_BUFFER_LIST] = []
        for nbl in iter_nbls(NetBufferLists):
            looped = bool(nbl.NblFlags & NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET)
            for frame in nbl_bytes(nbl):
                ctx.received.append((frame, looped))
            kept.append(nbl)
        if ReceiveFlags & NDIS_RECEIVE_FLAGS_RESOURCES or ctx.binding is None:
            return
        if self.retain:
            ctx.retained += kept
            return
        self.ndis.NdisReturnNetBufferLists(ctx.binding, NetBufferLists, return_flags(ReceiveFlags))

    def return_received(self, ctx: ProtOpen) -> None:
        """Give back the NBLs kept with ``retain=True``."""
        if ctx.retained and ctx.binding is not None:
            kept, ctx.retained = ctx.retained, []
            self.ndis.NdisReturnNetBufferLists(ctx.binding, link_nbls(kept), 0)


__all__ = ["NdisProt6", "ProtOpen"]
