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

Send path (MiniportCoSendNetBufferLists, deserialized, no NDIS queue, rule 36): the NIC is the
one of :mod:`.nic6`, which netvmini6 drives too. Each NBL gets a reference per NET_BUFFER and
its NBs join one FIFO wait list shared by all VCs, so each VC's frames leave in the order they
were sent; ``tcbs`` transmit slots take waiting NBs in order and finish ``tx_ns`` apart (plus
seeded ``jitter_ns``). A completion DPC frees up to ``dpc_batch`` finished slots (it runs
``coalesce_ns`` after the first one finished: interrupt moderation) and completes every NBL
whose NBs are all done in *one* NdisMCoSendNetBufferListsComplete call, in a seeded random order
when ``random_order`` (the default) — NBLs of many VCs in one call, named by the handle of the
first (rule 49: NDIS routes each by its SourceHandle). The miniport keeps its own bookkeeping in
``MiniportReserved``: ``[0]`` the VC context, ``[1]`` ``[NBs left, first failure]``. Receive
buffers, dropping and NDIS_RECEIVE_FLAGS_RESOURCES are the NIC's too.

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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..constants import NdisMediumCoWan
from ..library.adapter import NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES
from ..library.covc import (
    CO_ADDRESS_FAMILY,
    CO_CALL_PARAMETERS,
    CO_MEDIA_PARAMETERS,
    CO_SPECIFIC_PARAMETERS,
    VirtualConnection,
)
from ..nbl import NET_BUFFER_LIST, link_nbls, nb_bytes
from ..status import NDIS_STATUS
from .common6 import HALTED, RUNNING, as_miniport, set_attributes
from .nic6 import NicAdapter6, NicMiniport6, Tcb

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.kernel import Ndis

DEFAULT_AF = 0x6


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


class CoMini6Adapter(NicAdapter6):
    """One comini6 adapter (its MiniportAdapterContext): the NIC of :mod:`.nic6` and the VCs
    open on it, by number."""

    DEFAULTS: ClassVar[Mapping[str, int | bool]] = {
        **NicAdapter6.DEFAULTS,
        "tcbs": 64,
        "tx_ns": 500,
        "coalesce_ns": 10000,
        "random_order": True,
        "rcbs": 256,
        "mtu": 9180,
    }

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        super().__init__(handle, config)
        self.af = int(config.get("af", DEFAULT_AF))
        self.by_number: dict[int, CoVc6] = {}
        #: (NBLs, distinct VCs) of each NdisMCoSendNetBufferListsComplete call
        self.completion_calls: list[tuple[int, int]] = []

    def __repr__(self) -> str:
        return f"<CoMini6Adapter {self.name!r} {self.state} vcs={len(self.by_number)}>"


class CoMini6(NicMiniport6):
    """The comini6 driver: a CoNDIS 6 miniport and its integrated call manager."""

    NDIS_VERSION = (6, 0)
    TX_LABEL = "comini-tx"
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, CoMini6Adapter] = {}

    # --- life cycle ----------------------------------------------------------------------------
    def MiniportInitializeEx(
        self,
        NdisMiniportHandle: MiniportBlock,
        MiniportDriverContext: Any,
        MiniportInitParameters: AdapterConfig,
    ) -> NDIS_STATUS:
        ndis = self.ndis
        a = CoMini6Adapter(NdisMiniportHandle, MiniportInitParameters)
        set_attributes(
            ndis,
            NdisMiniportHandle,
            a,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(MediaType=NdisMediumCoWan, MtuSize=a.mtu),
        )
        if not self._attach(a, a.mtu, "corx"):
            return NDIS_STATUS.RESOURCES
        status = ndis.NdisMCmRegisterAddressFamilyEx(NdisMiniportHandle, CO_ADDRESS_FAMILY(a.af))
        if status != NDIS_STATUS.SUCCESS:
            self._detach(a)
            return status
        self.adapters[a.name] = a
        return NDIS_STATUS.SUCCESS

    def MiniportHaltEx(self, MiniportAdapterContext: CoMini6Adapter, HaltAction: int) -> None:
        MiniportAdapterContext.state = HALTED
        self._detach(MiniportAdapterContext)

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
        self._unmap(vc)
        self._drop_waiting(vc.adapter, NDIS_STATUS.SEND_ABORTED, 0, lambda t: t.owner is vc)
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
        refusal = NDIS_STATUS.PAUSED if a.state != RUNNING else None
        if refusal is None and not vc.active:
            refusal = NDIS_STATUS.FAILURE
        self._queue(a, vc, NetBufferLists, refusal, SendFlags)

    def _accept(self, owner: CoVc6, nbl: NET_BUFFER_LIST) -> None:
        nbl.MiniportReserved[0] = owner
        owner.held += 1

    def _frame(self, a: CoMini6Adapter, tcb: Tcb) -> bytes:
        """The VC's number (4 bytes, big-endian), then the NB's bytes."""
        vc: CoVc6 = tcb.owner
        assert vc.number is not None
        vc.sent_frames += 1
        return vc.number.to_bytes(4, "big") + nb_bytes(tcb.nb)

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
        ndis = self.ndis
        with as_miniport(ndis):
            vc = a.by_number.get(int.from_bytes(frame[:4], "big")) if len(frame) >= 4 else None
            if vc is None:
                a.rx_dropped += 1
                return
            nbl = self._rx_nbl(a, frame[4:], a.mtu)
            if nbl is None:
                return
            vc.received_frames += 1

            def indicate(flags: int) -> None:
                ndis.NdisMCoIndicateReceiveNetBufferLists(vc.handle, nbl, 1, flags)

            self._rx_indicate(a, nbl, indicate)


__all__ = ["DEFAULT_AF", "CoMini6", "CoMini6Adapter", "CoVc6", "vc_call_parameters"]
