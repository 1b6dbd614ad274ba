"""A pass-through NDIS 6 intermediate driver that *forwards* NBLs (rule 47's save/restore).

Theory of operation
-------------------
One driver object registers twice: as a miniport (its upper edge, ``intermediate=True``) and as
a protocol (its lower edge). For each adapter it binds below it creates one virtual adapter
above (``ndis.add_adapter``, standing in for NdisIMInitializeDeviceInstanceEx) named
``<lower>-pt``; a :class:`Pt6Adapter` is both the ProtocolBindingContext below and the
MiniportAdapterContext above.

Unlike an NDIS 5 intermediate driver, which must repackage, an NDIS 6 one may pass the NBLs it
is given straight down. It saves each NBL's ``SourceHandle`` (the upper binding) and puts its
own lower binding there before NdisSendNetBufferLists (NDIS: ``forward``, AT_MINIPORT ->
IN_NDIS); when the NBL completes below (``return_forwarded`` -> AT_MINIPORT again) it restores
the saved ``SourceHandle`` and completes it upward with NdisMSendNetBufferListsComplete, which
routes it to the upper binding::

    MiniportSendNetBufferLists(chain) -> save SourceHandle, set lower binding
        -> NdisSendNetBufferLists(lower binding, chain)
    ProtocolSendNetBufferListsComplete(chain) -> restore SourceHandle
        -> NdisMSendNetBufferListsComplete(virtual adapter, chain)

``restore=False`` makes it a buggy driver that forgets to restore: NDIS then refuses the
upward completion (R47, naming the intermediate driver).

Receives are passed up as clones (NdisAllocateCloneNetBufferList: no copy), because an NBL lent
by the miniport below cannot be lent again; the original goes back below when the clone comes
back (or at once, for a RESOURCES indication). Pausing the virtual adapter waits for the
forwarded sends and the clones; unbinding below removes the virtual adapter first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_PROT_OPTION_NO_LOOPBACK,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    OID_GEN_PROTOCOL_OPTIONS,
    NdisMedium802_3,
    NdisRequestSetInformation,
)
from ..drivers.common6 import begin_pause, end_pause, set_attributes
from ..library.adapter import NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES
from ..library.binding import (
    NDIS_BIND_PARAMETERS,
    NDIS_OID_REQUEST,
    NDIS_OPEN_PARAMETERS,
    OpenBlock,
)
from ..nbl import NET_BUFFER_LIST, NET_BUFFER_LIST_STATUS_SET, iter_nbls, link_nbls
from ..nblpool import NdisAllocateCloneNetBufferList, NdisFreeCloneNetBufferList
from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis


class Pt6Adapter:
    """One lower binding and the virtual adapter above it."""

    def __init__(self, lower_name: str) -> None:
        self.lower_name = lower_name
        self.lower: OpenBlock | None = None
        self.upper: MiniportBlock | None = None
        self.state = "paused"
        self.pause_pending = False
        #: id(NBL) -> the SourceHandle it came with, for NBLs forwarded and not yet back
        self.saved: dict[int, Any] = {}
        #: id(clone) -> the original NBL lent by the miniport below
        self.clones: dict[int, NET_BUFFER_LIST] = {}
        self.forwarded = 0

    def idle(self) -> bool:
        return not self.saved and not self.clones


class Passthru6:
    """The NDIS 6 pass-through intermediate driver (both edges)."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis

    def __init__(self, restore: bool = True) -> None:
        self.restore = restore
        self.protocol_handle: DriverBlock | None = None
        self.miniport_handle: DriverBlock | None = None
        self.pairs: dict[str, Pt6Adapter] = {}

    def register(self, ndis: Ndis) -> None:
        """DriverEntry: the miniport edge first, then the protocol edge (the adapters present
        are offered to it later, from PASSIVE work items: run the scheduler)."""
        self.ndis = ndis
        status, self.miniport_handle = ndis.NdisMRegisterMiniportDriver(self, intermediate=True)
        assert status == NDIS_STATUS.SUCCESS, status
        status, self.protocol_handle = ndis.NdisRegisterProtocolDriver(self, intermediate=True)
        assert status == NDIS_STATUS.SUCCESS, status

    # --- lower edge (protocol) -------------------------------------------------------------------
    def ProtocolBindAdapterEx(
        self, ProtocolDriverContext: Any, BindContext: Any, BindParameters: NDIS_BIND_PARAMETERS
    ) -> NDIS_STATUS:
        ndis = self.ndis
        name = BindParameters.AdapterName
        if name.endswith("-pt"):
            return NDIS_STATUS.NOT_SUPPORTED  # never bind to our own virtual adapters
        handle = self.protocol_handle
        assert handle is not None and self.miniport_handle is not None
        pair = Pt6Adapter(name)
        status, binding = ndis.NdisOpenAdapterEx(
            handle, pair, NDIS_OPEN_PARAMETERS(name, [NdisMedium802_3]), BindContext
        )
        if binding is None:
            return status
        pair.lower = binding
        self.pairs[name] = pair
        # loopback happens once, at the virtual adapter: none for our own sends below
        ndis.NdisOidRequest(
            binding,
            NDIS_OID_REQUEST(
                NdisRequestSetInformation, OID_GEN_PROTOCOL_OPTIONS, NDIS_PROT_OPTION_NO_LOOPBACK
            ),
        )
        ndis.add_adapter(self.miniport_handle, f"{name}-pt", pair=pair)
        return NDIS_STATUS.SUCCESS

    def ProtocolUnbindAdapterEx(
        self, UnbindContext: Any, ProtocolBindingContext: Pt6Adapter
    ) -> NDIS_STATUS:
        pair = ProtocolBindingContext
        if pair.upper is not None and pair.upper.name in self.ndis.adapters:
            self.ndis.remove_adapter(pair.upper)
        assert pair.lower is not None
        self.pairs.pop(pair.lower_name, None)
        return self.ndis.NdisCloseAdapterEx(pair.lower)

    def ProtocolNetPnPEvent(
        self, ProtocolBindingContext: Pt6Adapter, NetPnPEventNotification: Any
    ) -> NDIS_STATUS:
        return NDIS_STATUS.SUCCESS

    def ProtocolSendNetBufferListsComplete(
        self,
        ProtocolBindingContext: Pt6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        SendCompleteFlags: int,
    ) -> None:
        """Forwarded NBLs are back: restore their SourceHandle and complete them upward."""
        pair = ProtocolBindingContext
        for nbl in iter_nbls(NetBufferLists):
            source = pair.saved.pop(id(nbl))
            if self.restore:
                nbl.SourceHandle = source
        assert pair.upper is not None
        self.ndis.NdisMSendNetBufferListsComplete(pair.upper, NetBufferLists, SendCompleteFlags)
        self._check_pause(pair)

    def ProtocolReceiveNetBufferLists(
        self,
        ProtocolBindingContext: Pt6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        NumberOfNetBufferLists: int,
        ReceiveFlags: int,
    ) -> None:
        """Indicate clones above; the originals go back below when the clones come back."""
        pair = ProtocolBindingContext
        ndis = self.ndis
        assert pair.lower is not None
        originals = list(iter_nbls(NetBufferLists))
        if pair.state != "running" or pair.upper is None:
            if not ReceiveFlags & NDIS_RECEIVE_FLAGS_RESOURCES:
                ndis.NdisReturnNetBufferLists(pair.lower, NetBufferLists, 0)
            return
        clones: list[NET_BUFFER_LIST] = []
        back: list[NET_BUFFER_LIST] = []
        for nbl in originals:
            clone = NdisAllocateCloneNetBufferList(nbl, None, None, 0)
            if clone is None:
                back.append(nbl)
                continue
            clone.NblFlags = nbl.NblFlags
            pair.clones[id(clone)] = nbl
            clones.append(clone)
        if clones:
            ndis.NdisMIndicateReceiveNetBufferLists(
                pair.upper, link_nbls(clones), PortNumber, len(clones), ReceiveFlags
            )
        if ReceiveFlags & NDIS_RECEIVE_FLAGS_RESOURCES:
            for clone in clones:  # NDIS took them back when the indication returned
                pair.clones.pop(id(clone), None)
                NdisFreeCloneNetBufferList(clone, 0)
        elif back:
            ndis.NdisReturnNetBufferLists(pair.lower, link_nbls(back), 0)

    # --- upper edge (miniport) -------------------------------------------------------------------
    def MiniportInitializeEx(
        self,
        NdisMiniportHandle: MiniportBlock,
        MiniportDriverContext: Any,
        MiniportInitParameters: AdapterConfig,
    ) -> NDIS_STATUS:
        pair: Pt6Adapter = MiniportInitParameters.get("pair")
        assert pair.lower is not None
        pair.upper = NdisMiniportHandle
        lower = pair.lower.adapter
        ndis = self.ndis
        set_attributes(
            ndis,
            NdisMiniportHandle,
            pair,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(
                MediaType=lower.medium,
                MtuSize=lower.max_total_size - 14,
                MacOptions=lower.mac_options,
                CurrentMacAddress=lower.current_address,
            ),
        )
        return NDIS_STATUS.SUCCESS

    def MiniportRestart(self, MiniportAdapterContext: Pt6Adapter, Parameters: Any) -> NDIS_STATUS:
        MiniportAdapterContext.state = "running"
        return NDIS_STATUS.SUCCESS

    def MiniportPause(self, MiniportAdapterContext: Pt6Adapter, Parameters: Any) -> NDIS_STATUS:
        """Paused at once, or once the forwarded sends and the clones are back."""
        return begin_pause(MiniportAdapterContext)

    def _check_pause(self, pair: Pt6Adapter) -> None:
        assert pair.upper is not None
        end_pause(self.ndis, pair, pair.upper)

    def MiniportHaltEx(self, MiniportAdapterContext: Pt6Adapter, HaltAction: int) -> None:
        MiniportAdapterContext.state = "halted"

    def MiniportSendNetBufferLists(
        self,
        MiniportAdapterContext: Pt6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        SendFlags: int,
    ) -> None:
        """Forward the chain below, saving each NBL's SourceHandle (rule 47)."""
        pair = MiniportAdapterContext
        assert pair.lower is not None and pair.upper is not None
        if pair.state != "running":
            for nbl in iter_nbls(NetBufferLists):
                NET_BUFFER_LIST_STATUS_SET(nbl, NDIS_STATUS.PAUSED)
            self.ndis.NdisMSendNetBufferListsComplete(pair.upper, NetBufferLists, 0)
            return
        for nbl in iter_nbls(NetBufferLists):
            pair.saved[id(nbl)] = nbl.SourceHandle
            nbl.SourceHandle = pair.lower
            pair.forwarded += 1
        self.ndis.NdisSendNetBufferLists(pair.lower, NetBufferLists, PortNumber, SendFlags)

    def MiniportReturnNetBufferLists(
        self, MiniportAdapterContext: Pt6Adapter, NetBufferLists: NET_BUFFER_LIST, ReturnFlags: int
    ) -> None:
        """Clones are back: free them and return their originals below."""
        pair = MiniportAdapterContext
        originals: list[NET_BUFFER_LIST] = []
        for clone in iter_nbls(NetBufferLists):
            originals.append(pair.clones.pop(id(clone)))
            clone.Next = None
            NdisFreeCloneNetBufferList(clone, 0)
        assert pair.lower is not None
        self.ndis.NdisReturnNetBufferLists(pair.lower, link_nbls(originals), ReturnFlags)
        self._check_pause(pair)

    def MiniportCancelSend(self, MiniportAdapterContext: Pt6Adapter, CancelId: Any) -> None:
        pair = MiniportAdapterContext
        assert pair.lower is not None
        self.ndis.NdisCancelSendNetBufferLists(pair.lower, CancelId)

    def MiniportOidRequest(
        self, MiniportAdapterContext: Pt6Adapter, OidRequest: NDIS_OID_REQUEST
    ) -> NDIS_STATUS:
        """Pass requests to the lower binding (the upper packet filter becomes ours below)."""
        pair = MiniportAdapterContext
        assert pair.lower is not None
        return self.ndis.NdisOidRequest(pair.lower, OidRequest)


__all__ = ["Passthru6", "Pt6Adapter"]
