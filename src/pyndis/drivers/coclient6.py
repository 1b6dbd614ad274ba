"""coclient6: a CoNDIS 6 client protocol that sends NET_BUFFER_LIST chains on VCs.

Theory of operation
-------------------
Life of a binding (a :class:`ClientBinding`, the ProtocolBindingContext)::

    register(ndis): NdisRegisterProtocolDriver, keep the handle (DriverEntry)
    ... later, a PASSIVE work item per adapter present (run the scheduler):
    ProtocolBindAdapterEx -> NdisOpenAdapterEx (CoWAN) -> pools
    ProtocolCoAfRegisterNotify(af) -> NdisClOpenAddressFamilyEx -> NdisAfHandle
    open_vc(n): NdisCoCreateVc -> NdisClMakeCall(vc_call_parameters(n))
        -> SUCCESS (or PENDING -> ProtocolClMakeCallComplete) -> connected
    send(vc, [[frame, frame], [frame]]): one NBL per entry, one NB per frame, over MDLs that
        describe the caller's bytes (no copy); SourceHandle = the NdisVcHandle (rule 47);
        one NdisCoSendNetBufferLists call for the whole chain
    ProtocolCoSendNetBufferListsComplete(vc, NBLs): statuses recorded, NBLs freed (Next read
        first); each NBL must come back to the VC it was sent on
    close_vc: NdisClCloseCall -> [ProtocolClCloseCallComplete] -> NdisCoDeleteVc
    ProtocolUnbindAdapterEx: close every VC, NdisClCloseAddressFamily, NdisCloseAdapterEx

Receive (ProtocolCoReceiveNetBufferLists): every frame is copied to its VC's ``received``; the
NBLs are returned at once unless NDIS_RECEIVE_FLAGS_RESOURCES. Incoming calls (an MCM that
creates VCs itself) are accepted; an incoming close is answered with NdisClCloseCall (rule 34).

Per-VC records (:class:`ClientVc`, the ProtocolVcContext) let tests check exactly-once
completion, per-VC FIFO and byte-identical payloads at the far end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..constants import NDIS_RECEIVE_FLAGS_RESOURCES, NdisMediumCoWan
from ..errors import Culprit
from ..library.binding import NDIS_BIND_PARAMETERS, NDIS_OPEN_PARAMETERS, OpenBlock
from ..library.covc import CO_ADDRESS_FAMILY, AfBlock, VirtualConnection
from ..nbl import NET_BUFFER_LIST, NET_BUFFER_LIST_STATUS, iter_nbls, link_nbls, nbl_bytes
from ..nblpool import NblPool, NbPool
from ..status import NDIS_STATUS
from .comini6 import DEFAULT_AF, vc_call_parameters
from .common6 import (
    Buffer,
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


class ClientVc:
    """One VC of the client (its ProtocolVcContext)."""

    def __init__(self, owner: ClientBinding, number: int | None) -> None:
        self.owner = owner
        self.number = number
        self.handle: VirtualConnection | None = None
        self.state = "created"
        #: payloads of every NB sent, in send order
        self.sent: list[Buffer] = []
        self.sent_nbls = 0
        #: sequence numbers (stamped in ProtocolReserved[0] at send) of the NBLs completed,
        #: and their statuses, in completion order
        self.completed: list[int] = []
        self.statuses: list[int] = []
        self.next_seq = 0
        #: NBLs per ProtocolCoSendNetBufferListsComplete call
        self.completion_calls: list[int] = []
        #: NBLs that came back to this VC's context but were sent on another VC
        self.misrouted = 0
        self.received: list[bytes] = []

    @property
    def pending(self) -> int:
        return self.sent_nbls - len(self.statuses)

    def __repr__(self) -> str:
        return f"<ClientVc #{self.number} {self.state} pending={self.pending}>"


class ClientBinding:
    """One binding of the client (its ProtocolBindingContext)."""

    def __init__(self, adapter_name: str) -> None:
        self.adapter_name = adapter_name
        self.binding: OpenBlock | None = None
        self.af: AfBlock | None = None
        self.nbl_pool: NblPool | None = None
        self.nb_pool: NbPool | None = None
        self.vcs: list[ClientVc] = []
        self.state = "opening"

    def __repr__(self) -> str:
        return f"<ClientBinding {self.adapter_name!r} {self.state} vcs={len(self.vcs)}>"


class CoClient6(SampleProtocol6):
    """The coclient6 protocol driver."""

    ndis: Ndis

    def __init__(self, af: int = DEFAULT_AF) -> None:
        self.af = af
        self.handle: DriverBlock | None = None
        self.bindings: dict[str, ClientBinding] = {}

    # --- DriverEntry, binding and the address family -----------------------------------------
    def ProtocolBindAdapterEx(
        self, ProtocolDriverContext: Any, BindContext: Any, BindParameters: NDIS_BIND_PARAMETERS
    ) -> NDIS_STATUS:
        ndis = self.ndis
        handle = self.protocol_handle()
        ctx = ClientBinding(BindParameters.AdapterName)
        ctx.nbl_pool, ctx.nb_pool = allocate_frame_pools(ndis, handle, "clnt")
        if ctx.nbl_pool is None:
            return NDIS_STATUS.RESOURCES
        status, binding = ndis.NdisOpenAdapterEx(
            handle, ctx, NDIS_OPEN_PARAMETERS(ctx.adapter_name, [NdisMediumCoWan]), BindContext
        )
        if binding is None:
            self._free_pools(ctx)
            return status
        ctx.binding = binding
        self.bindings[ctx.adapter_name] = ctx
        return NDIS_STATUS.SUCCESS

    def ProtocolNetPnPEvent(
        self, ProtocolBindingContext: ClientBinding, NetPnPEventNotification: Any
    ) -> NDIS_STATUS:
        return NDIS_STATUS.SUCCESS

    def ProtocolCoAfRegisterNotify(
        self, ProtocolBindingContext: ClientBinding, AddressFamily: CO_ADDRESS_FAMILY
    ) -> None:
        ctx = ProtocolBindingContext
        if AddressFamily.AddressFamily != self.af or ctx.binding is None or ctx.af is not None:
            return
        status, af = self.ndis.NdisClOpenAddressFamilyEx(ctx.binding, AddressFamily, ctx)
        if status == NDIS_STATUS.SUCCESS:
            ctx.af = af
            ctx.state = "ready"

    def ProtocolClOpenAfComplete(
        self, Status: int, ProtocolAfContext: ClientBinding, NdisAfHandle: AfBlock
    ) -> None:
        if Status == NDIS_STATUS.SUCCESS:
            ProtocolAfContext.af = NdisAfHandle
            ProtocolAfContext.state = "ready"

    def ProtocolClCloseAfComplete(self, Status: int, ProtocolAfContext: ClientBinding) -> None:
        ProtocolAfContext.af = None

    def ProtocolUnbindAdapterEx(
        self, UnbindContext: Any, ProtocolBindingContext: ClientBinding
    ) -> NDIS_STATUS:
        ctx = ProtocolBindingContext
        ndis = self.ndis
        for vc in list(ctx.vcs):
            self.close_vc(vc)
        if ctx.af is not None and ndis.NdisClCloseAddressFamily(ctx.af) != NDIS_STATUS.PENDING:
            ctx.af = None
        assert ctx.binding is not None
        ctx.state = "closing"
        status = ndis.NdisCloseAdapterEx(ctx.binding)
        if status != NDIS_STATUS.PENDING:
            self._closed(ctx)
        return status

    def ProtocolCloseAdapterCompleteEx(self, ProtocolBindingContext: ClientBinding) -> None:
        self._closed(ProtocolBindingContext)

    def _closed(self, ctx: ClientBinding) -> None:
        ctx.state = "closed"
        self._free_pools(ctx)
        self.bindings.pop(ctx.adapter_name, None)

    def _free_pools(self, ctx: ClientBinding) -> None:
        free_frame_pools(self.ndis, ctx.nbl_pool, ctx.nb_pool)
        ctx.nbl_pool = ctx.nb_pool = None

    # --- VCs and calls -------------------------------------------------------------------------
    def open_vc(self, ctx: ClientBinding, number: int) -> ClientVc:
        """NdisCoCreateVc + NdisClMakeCall for permanent VC ``number``."""
        ndis = self.ndis
        assert ctx.binding is not None and ctx.af is not None, "the AF is not open yet"
        vc = ClientVc(ctx, number)
        status, handle = ndis.NdisCoCreateVc(ctx.binding, ctx.af, vc)
        if status != NDIS_STATUS.SUCCESS or handle is None:
            raise RuntimeError(f"NdisCoCreateVc failed: {status!r}")
        vc.handle = handle
        ctx.vcs.append(vc)
        vc.state = "calling"
        status = ndis.NdisClMakeCall(handle, vc_call_parameters(number))
        if status == NDIS_STATUS.SUCCESS:
            vc.state = "connected"
        elif status != NDIS_STATUS.PENDING:
            vc.state = "failed"
        return vc

    def ProtocolCoCreateVc(
        self, ProtocolAfContext: ClientBinding, NdisVcHandle: VirtualConnection
    ) -> tuple[NDIS_STATUS, ClientVc]:
        """A VC the call manager creates for an incoming call."""
        vc = ClientVc(ProtocolAfContext, None)
        vc.handle = NdisVcHandle
        ProtocolAfContext.vcs.append(vc)
        return NDIS_STATUS.SUCCESS, vc

    def ProtocolCoDeleteVc(self, ProtocolVcContext: ClientVc) -> NDIS_STATUS:
        vc = ProtocolVcContext
        vc.state = "deleted"
        if vc in vc.owner.vcs:
            vc.owner.vcs.remove(vc)
        return NDIS_STATUS.SUCCESS

    def ProtocolClMakeCallComplete(
        self, Status: int, ProtocolVcContext: ClientVc, NdisPartyHandle: Any, CallParameters: Any
    ) -> None:
        ProtocolVcContext.state = "connected" if Status == NDIS_STATUS.SUCCESS else "failed"

    def ProtocolClIncomingCall(
        self, ProtocolSapContext: Any, ProtocolVcContext: ClientVc, CallParameters: Any
    ) -> NDIS_STATUS:
        ProtocolVcContext.state = "accepted"
        return NDIS_STATUS.SUCCESS

    def ProtocolClCallConnected(self, ProtocolVcContext: ClientVc) -> None:
        ProtocolVcContext.state = "connected"

    def ProtocolClIncomingCloseCall(
        self, CloseStatus: int, ProtocolVcContext: ClientVc, CloseData: Any, Size: int
    ) -> None:
        vc = ProtocolVcContext
        assert vc.handle is not None
        vc.state = "closing"
        if self.ndis.NdisClCloseCall(vc.handle) != NDIS_STATUS.PENDING:
            vc.state = "closed"

    def close_vc(self, vc: ClientVc) -> None:
        """NdisClCloseCall (if a call is up), then NdisCoDeleteVc once it is closed."""
        ndis = self.ndis
        assert vc.handle is not None
        if vc.state in ("connected", "calling"):
            vc.state = "closing"
            if ndis.NdisClCloseCall(vc.handle) == NDIS_STATUS.PENDING:
                ndis.wait_until(lambda: vc.state == "closed", f"close of {vc!r}", Culprit.MINIPORT)
            vc.state = "closed"
        if vc.state in ("closed", "created", "failed"):
            ndis.NdisCoDeleteVc(vc.handle)
            vc.state = "deleted"
            if vc in vc.owner.vcs:
                vc.owner.vcs.remove(vc)

    def ProtocolClCloseCallComplete(
        self, Status: int, ProtocolVcContext: ClientVc, ProtocolPartyContext: Any
    ) -> None:
        ProtocolVcContext.state = "closed"

    # --- send ----------------------------------------------------------------------------------
    def build(self, vc: ClientVc, frames: Frames) -> NET_BUFFER_LIST | None:
        """One NBL over ``frames`` (one NB each, no copy), SourceHandle = the VC handle."""
        ctx = vc.owner
        assert ctx.nbl_pool is not None and ctx.nb_pool is not None
        nbl = frames_nbl(self.ndis, ctx.nbl_pool, ctx.nb_pool, frame_parts(frames))
        if nbl is None:
            return None
        nbl.SourceHandle = vc.handle
        return nbl

    def send(self, vc: ClientVc, nbls: Sequence[Frames], flags: int = 0) -> NDIS_STATUS:
        """One NdisCoSendNetBufferLists call with one NBL per entry of ``nbls``."""
        built: list[NET_BUFFER_LIST] = []
        for frames in nbls:
            nbl = self.build(vc, frames)
            if nbl is None:
                for done in built:
                    self.free_nbl(done)
                return NDIS_STATUS.RESOURCES
            built.append(nbl)
        for frames, nbl in zip(nbls, built, strict=True):
            vc.sent += frame_parts(frames)
            nbl.ProtocolReserved[0] = vc.next_seq
            vc.next_seq += 1
        vc.sent_nbls += len(built)
        assert vc.handle is not None
        self.ndis.NdisCoSendNetBufferLists(vc.handle, link_nbls(built), flags)
        return NDIS_STATUS.PENDING

    def free_nbl(self, nbl: NET_BUFFER_LIST) -> None:
        """Free an NBL of :meth:`build` (its NBs and MDLs too)."""
        free_frames_nbl(self.ndis, nbl)

    def ProtocolCoSendNetBufferListsComplete(
        self, ProtocolVcContext: ClientVc, NetBufferLists: NET_BUFFER_LIST, SendCompleteFlags: int
    ) -> None:
        vc = ProtocolVcContext
        count = 0
        for nbl in iter_nbls(NetBufferLists):
            if nbl.SourceHandle is not vc.handle:
                vc.misrouted += 1
            vc.statuses.append(NET_BUFFER_LIST_STATUS(nbl))
            vc.completed.append(nbl.ProtocolReserved[0])
            self.free_nbl(nbl)
            count += 1
        vc.completion_calls.append(count)

    # --- receive -------------------------------------------------------------------------------
    def ProtocolCoReceiveNetBufferLists(
        self,
        ProtocolBindingContext: ClientBinding,
        ProtocolVcContext: ClientVc,
        NetBufferLists: NET_BUFFER_LIST,
        NumberOfNetBufferLists: int,
        ReceiveFlags: int,
    ) -> None:
        vc = ProtocolVcContext
        for nbl in iter_nbls(NetBufferLists):
            vc.received += nbl_bytes(nbl)
        if ReceiveFlags & NDIS_RECEIVE_FLAGS_RESOURCES:
            return
        binding = ProtocolBindingContext.binding
        assert binding is not None
        self.ndis.NdisReturnNetBufferLists(binding, NetBufferLists, return_flags(ReceiveFlags))


__all__ = ["ClientBinding", "ClientVc", "CoClient6"]
