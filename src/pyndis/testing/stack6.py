"""Testing kit for the NDIS 6 paths: a controllable miniport, a raw protocol, a stack builder.

Theory of operation
-------------------
Contract tests need drivers that do exactly one thing on command. :class:`Hold6Miniport` is a
connectionless NDIS 6 miniport that records every MiniportSendNetBufferLists call and then,
per its ``mode``:

* ``"hold"``: keeps the NBLs until the test calls :meth:`Hold6Miniport.complete` (any NBLs, any
  grouping, any status, optionally from a DPC);
* ``"inline"``: completes the whole chain inside the send handler with ``status`` (the null
  NDIS 6 miniport of the benchmark: whatever a send costs through it is the library's cost);
* ``"dpc"``: completes each chain from a DPC queued by the send handler.

:class:`Raw6Protocol` binds to every NDIS 6 adapter (or only the named ones), records every
completion and receive call, returns receives at once (unless told to keep them), and builds
NBL chains from an NBL pool with a pre-allocated NB per NBL (more NBs from an NB pool) over MDLs
describing caller bytes. :func:`build_stack` makes a kernel with one adapter and one protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisMedium802_3,
    NdisRequestSetInformation,
)
from ..drivers.common6 import (
    allocate_frame_pools,
    as_miniport,
    frames_nbl,
    free_frames_nbl,
    return_flags,
    set_attributes,
)
from ..library.adapter import NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES
from ..library.binding import (
    NDIS_BIND_PARAMETERS,
    NDIS_OID_REQUEST,
    NDIS_OPEN_PARAMETERS,
    OpenBlock,
)
from ..nbl import NET_BUFFER_LIST, NET_BUFFER_LIST_STATUS_SET, iter_nbls, link_nbls, nbl_bytes
from ..nblpool import NblPool, NbPool
from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis

ADDRESS = b"\x02\x00\x00\x00\x00\x01"
PEER = b"\x02\x00\x00\x00\x00\x02"


def make_frame(dest: bytes = ADDRESS, payload: bytes = b"data", src: bytes = PEER) -> bytes:
    """An Ethernet frame: destination, source, EtherType 0x88B5 (local experimental), payload."""
    return dest + src + b"\x88\xb5" + payload


class HoldAdapter:
    """One Hold6Miniport adapter (its MiniportAdapterContext)."""

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.handle = handle
        self.name = config.name
        self.mode: str = config.get("mode", "hold")
        self.status = NDIS_STATUS(config.get("status", NDIS_STATUS.SUCCESS))
        self.address = bytes(config.get("address", ADDRESS))
        self.medium = int(config.get("medium", NdisMedium802_3))
        self.no_loopback = bool(config.get("no_loopback", True))
        #: every MiniportSendNetBufferLists call: (NBLs in chain order, PortNumber, SendFlags)
        self.calls: list[tuple[list[NET_BUFFER_LIST], int, int]] = []
        #: NBLs held (mode "hold"), in arrival order
        self.held: list[NET_BUFFER_LIST] = []
        self.cancels: list[Any] = []
        self.returned: list[NET_BUFFER_LIST] = []
        self.pause_status = NDIS_STATUS.SUCCESS
        self.on_send: Callable[[HoldAdapter, list[NET_BUFFER_LIST]], None] | None = None


class Hold6Miniport:
    """A connectionless NDIS 6 miniport that does what the test says (see the module doc)."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, HoldAdapter] = {}

    def MiniportInitializeEx(
        self,
        NdisMiniportHandle: MiniportBlock,
        MiniportDriverContext: Any,
        MiniportInitParameters: AdapterConfig,
    ) -> NDIS_STATUS:
        a = HoldAdapter(NdisMiniportHandle, MiniportInitParameters)
        set_attributes(
            self.ndis,
            NdisMiniportHandle,
            a,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(
                MediaType=a.medium,
                MacOptions=NDIS_MAC_OPTION_NO_LOOPBACK if a.no_loopback else 0,
                CurrentMacAddress=a.address,
            ),
        )
        self.adapters[a.name] = a
        return NDIS_STATUS.SUCCESS

    def MiniportHaltEx(self, MiniportAdapterContext: HoldAdapter, HaltAction: int) -> None:
        self.adapters.pop(MiniportAdapterContext.name, None)

    def MiniportPause(self, MiniportAdapterContext: HoldAdapter, Parameters: Any) -> NDIS_STATUS:
        return MiniportAdapterContext.pause_status

    def MiniportRestart(self, MiniportAdapterContext: HoldAdapter, Parameters: Any) -> NDIS_STATUS:
        return NDIS_STATUS.SUCCESS

    def MiniportCancelSend(self, MiniportAdapterContext: HoldAdapter, CancelId: Any) -> None:
        MiniportAdapterContext.cancels.append(CancelId)

    def MiniportReturnNetBufferLists(
        self, MiniportAdapterContext: HoldAdapter, NetBufferLists: NET_BUFFER_LIST, ReturnFlags: int
    ) -> None:
        MiniportAdapterContext.returned += list(iter_nbls(NetBufferLists))

    def MiniportSendNetBufferLists(
        self,
        MiniportAdapterContext: HoldAdapter,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        SendFlags: int,
    ) -> None:
        a = MiniportAdapterContext
        nbls = list(iter_nbls(NetBufferLists))
        a.calls.append((nbls, PortNumber, SendFlags))
        if a.on_send is not None:
            a.on_send(a, nbls)
            return
        if a.mode == "inline":
            for nbl in nbls:
                NET_BUFFER_LIST_STATUS_SET(nbl, a.status)
            self.ndis.NdisMSendNetBufferListsComplete(a.handle, NetBufferLists, SendFlags & 1)
        elif a.mode == "dpc":
            self.ndis.scheduler.queue_dpc(self.complete, a, nbls, a.status, 1, label="hold-dpc")
        else:
            a.held += nbls

    def complete(
        self,
        a: HoldAdapter,
        nbls: Sequence[NET_BUFFER_LIST],
        status: int = NDIS_STATUS.SUCCESS,
        flags: int = 0,
    ) -> None:
        """NdisMSendNetBufferListsComplete for ``nbls`` (in that order), each with ``status``.
        Runs as miniport code (a test or a DPC calls it on the miniport's behalf)."""
        with as_miniport(self.ndis):
            for nbl in nbls:
                if nbl in a.held:
                    a.held.remove(nbl)
                NET_BUFFER_LIST_STATUS_SET(nbl, status)
            self.ndis.NdisMSendNetBufferListsComplete(a.handle, link_nbls(nbls), flags)


@dataclass
class RawOpen:
    """One Raw6Protocol binding (its ProtocolBindingContext)."""

    name: str
    binding: OpenBlock | None = None
    #: every ProtocolSendNetBufferListsComplete call: (NBLs, SendCompleteFlags)
    completions: list[tuple[list[NET_BUFFER_LIST], int]] = field(default_factory=list)
    #: every ProtocolReceiveNetBufferLists call: (frames, NblFlags of each NBL, ReceiveFlags)
    receives: list[tuple[list[bytes], list[int], int]] = field(default_factory=list)
    keep: bool = False
    kept: list[NET_BUFFER_LIST] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    on_complete: Callable[[RawOpen, list[NET_BUFFER_LIST]], None] | None = None
    on_event: Callable[[RawOpen, int], None] | None = None
    #: runs inside ProtocolReceiveNetBufferLists (NBLs, ReceiveFlags), before they are returned
    on_receive: Callable[[RawOpen, list[NET_BUFFER_LIST], int], None] | None = None

    @property
    def completed(self) -> list[NET_BUFFER_LIST]:
        return [nbl for nbls, _ in self.completions for nbl in nbls]


class Raw6Protocol:
    """An NDIS 6 protocol that records everything (see the module doc)."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis

    def __init__(
        self,
        packet_filter: int = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST,
        only: Sequence[str] | None = None,
    ) -> None:
        self.packet_filter = packet_filter
        self.only = only
        self.handle: DriverBlock | None = None
        self.opens: dict[str, RawOpen] = {}
        self.nbl_pool: NblPool | None = None
        self.nb_pool: NbPool | None = None

    def register(self, ndis: Ndis) -> DriverBlock:
        self.ndis = ndis
        self.nbl_pool, self.nb_pool = allocate_frame_pools(ndis, None, "raw6")
        status, handle = ndis.NdisRegisterProtocolDriver(self)
        assert status == NDIS_STATUS.SUCCESS and handle is not None, status
        self.handle = handle
        return handle

    # --- handlers --------------------------------------------------------------------------------
    def ProtocolBindAdapterEx(
        self, ProtocolDriverContext: Any, BindContext: Any, BindParameters: NDIS_BIND_PARAMETERS
    ) -> NDIS_STATUS:
        name = BindParameters.AdapterName
        if self.only is not None and name not in self.only:
            return NDIS_STATUS.NOT_SUPPORTED
        handle = self.handle
        assert handle is not None
        ctx = RawOpen(name)
        self.opens[name] = ctx
        status, binding = self.ndis.NdisOpenAdapterEx(
            handle, ctx, NDIS_OPEN_PARAMETERS(name, [BindParameters.MediaType]), BindContext
        )
        ctx.binding = binding
        if binding is not None and self.packet_filter:
            self.set_filter(ctx, self.packet_filter)
        return status

    def set_filter(self, ctx: RawOpen, packet_filter: int) -> None:
        assert ctx.binding is not None
        self.ndis.NdisOidRequest(
            ctx.binding,
            NDIS_OID_REQUEST(
                NdisRequestSetInformation, OID_GEN_CURRENT_PACKET_FILTER, packet_filter
            ),
        )

    def ProtocolUnbindAdapterEx(
        self, UnbindContext: Any, ProtocolBindingContext: RawOpen
    ) -> NDIS_STATUS:
        ctx = ProtocolBindingContext
        assert ctx.binding is not None
        self.release(ctx)
        return self.ndis.NdisCloseAdapterEx(ctx.binding)

    def ProtocolNetPnPEvent(
        self, ProtocolBindingContext: RawOpen, NetPnPEventNotification: Any
    ) -> NDIS_STATUS:
        ctx = ProtocolBindingContext
        event = int(NetPnPEventNotification.NetEvent)
        ctx.events.append(event)
        if ctx.on_event is not None:
            ctx.on_event(ctx, event)
        return NDIS_STATUS.SUCCESS

    def ProtocolSendNetBufferListsComplete(
        self,
        ProtocolBindingContext: RawOpen,
        NetBufferLists: NET_BUFFER_LIST,
        SendCompleteFlags: int,
    ) -> None:
        ctx = ProtocolBindingContext
        nbls = list(iter_nbls(NetBufferLists))
        ctx.completions.append((nbls, SendCompleteFlags))
        if ctx.on_complete is not None:
            ctx.on_complete(ctx, nbls)

    def ProtocolReceiveNetBufferLists(
        self,
        ProtocolBindingContext: RawOpen,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        NumberOfNetBufferLists: int,
        ReceiveFlags: int,
    ) -> None:
        ctx = ProtocolBindingContext
        nbls = list(iter_nbls(NetBufferLists))
        frames = [frame for nbl in nbls for frame in nbl_bytes(nbl)]
        ctx.receives.append((frames, [nbl.NblFlags for nbl in nbls], ReceiveFlags))
        if ctx.on_receive is not None:
            ctx.on_receive(ctx, nbls, ReceiveFlags)
        if ReceiveFlags & NDIS_RECEIVE_FLAGS_RESOURCES:
            return
        if ctx.keep:
            ctx.kept += nbls
            return
        assert ctx.binding is not None
        self.ndis.NdisReturnNetBufferLists(ctx.binding, NetBufferLists, return_flags(ReceiveFlags))

    def release(self, ctx: RawOpen) -> None:
        """Return what ``keep`` kept."""
        if ctx.kept and ctx.binding is not None:
            kept, ctx.kept = ctx.kept, []
            self.ndis.NdisReturnNetBufferLists(ctx.binding, link_nbls(kept), 0)

    # --- building and sending ----------------------------------------------------------------
    def nbl(self, ctx: RawOpen | None, *frames: bytes) -> NET_BUFFER_LIST:
        """An NBL with one NB per frame (MDLs over the caller's bytes); SourceHandle set to the
        binding of ``ctx`` (None: left NULL)."""
        assert self.nbl_pool is not None and self.nb_pool is not None
        nbl = frames_nbl(self.ndis, self.nbl_pool, self.nb_pool, frames or (make_frame(),))
        assert nbl is not None, "a pool of the Raw6Protocol ran out"
        if ctx is not None:
            nbl.SourceHandle = ctx.binding
        return nbl

    def chain(self, ctx: RawOpen, count: int, nbs: int = 1) -> list[NET_BUFFER_LIST]:
        return [
            self.nbl(ctx, *(make_frame(payload=b"%d.%d" % (i, j)) for j in range(nbs)))
            for i in range(count)
        ]

    def send(
        self, ctx: RawOpen, nbls: Sequence[NET_BUFFER_LIST], flags: int = 0, port: int = 0
    ) -> None:
        assert ctx.binding is not None
        self.ndis.NdisSendNetBufferLists(ctx.binding, link_nbls(nbls), port, flags)

    def free(self, nbl: NET_BUFFER_LIST) -> None:
        """Free an NBL built by :meth:`nbl` (its extra NBs and every MDL)."""
        free_frames_nbl(self.ndis, nbl)


@dataclass
class Stack6:
    """A kernel with one Hold6Miniport adapter and one Raw6Protocol bound to it."""

    ndis: Ndis
    miniport: Hold6Miniport
    adapter: MiniportBlock
    protocol: Raw6Protocol
    ctx: RawOpen

    @property
    def a(self) -> HoldAdapter:
        ctx: HoldAdapter = self.adapter.MiniportAdapterContext
        return ctx


def build_stack(
    *,
    verifier: bool = True,
    strict: bool = False,
    seed: int = 0,
    trace: bool = True,
    packet_filter: int = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST,
    **keywords: Any,
) -> Stack6:
    """Ndis + Hold6Miniport adapter "nic0" (``keywords`` are its registry keywords) + a bound
    Raw6Protocol."""
    from ..library.kernel import Ndis

    ndis = Ndis(seed=seed, verifier=verifier, strict=strict, trace=trace)
    miniport = Hold6Miniport()
    status, handle = ndis.NdisMRegisterMiniportDriver(miniport)
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    status, adapter = ndis.add_adapter(handle, "nic0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    protocol = Raw6Protocol(packet_filter)
    protocol.register(ndis)
    ndis.run()  # the PnP offer (ProtocolBindAdapterEx) is a PASSIVE work item
    return Stack6(ndis, miniport, adapter, protocol, protocol.opens["nic0"])


__all__ = [
    "ADDRESS",
    "PEER",
    "Hold6Miniport",
    "HoldAdapter",
    "Raw6Protocol",
    "RawOpen",
    "Stack6",
    "build_stack",
    "make_frame",
]
