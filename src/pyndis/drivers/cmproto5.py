"""A stand-alone CoNDIS 5.1 call manager protocol, for a CoNDIS miniport with no integrated CM.

Theory of operation
-------------------
The call manager binds to the ATM-like NIC of :mod:`.atmnic5` run with ``integrated_cm=False``
(a plain CoNDIS miniport), registers the ATM address family on its binding
(``NdisCmRegisterAddressFamily``) and, for signalling, makes a VC *for itself*: ``NdisCoCreateVc``
with no AF, activated on VCI 5 with ``NdisCmActivateVc``. Signalling messages are ordinary data on
that VC: ``NdisCoSendPackets`` out, ``ProtocolCoReceivePacket`` in; so this driver is at once a
call manager and a CoNDIS sender and receiver.

Calls follow :mod:`.atmsig`; this module only maps its operations onto the stand-alone CM DDIs:
activation is ``NdisCmActivateVc`` (NDIS calls MiniportCoActivateVc; if that pends,
``ProtocolCmActivateVcComplete`` continues), deactivation ``NdisCmDeactivateVc`` (the miniport
completes the VC's pending sends first, rule 32; ``ProtocolCmDeactivateVcComplete`` if it
pends), completions ``NdisCmMakeCallComplete`` / ``NdisCmCloseCallComplete``, incoming calls
``NdisCoCreateVc`` on the client's AF + ``NdisCmDispatchIncomingCall`` + ``NdisCmDispatchCall-
Connected``, remote releases ``NdisCmDispatchIncomingCloseCall``. Client-created VCs reach the CM
through ``ProtocolCoCreateVc`` (its CallMgrVcContext) and ``ProtocolCoDeleteVc``.

``ProtocolUnbindAdapter`` deactivates and deletes the signalling VC, then closes the binding.
Constructor options: ``vci_range`` (the VCIs of outgoing switched calls).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..constants import NdisMediumAtm
from ..errors import Culprit
from ..mdl import NdisAllocateBuffer
from ..packet import NDIS_PACKET, NdisChainBufferAtBack, packet_bytes
from ..pools import NdisAllocatePacket
from ..status import NDIS_STATUS
from .atmsig import ATM_ADDRESS_FAMILY, SIGNALLING_VCI, Call, CallControl, Done, atm_call_parameters
from .common5 import SampleProtocol5, allocate_pools, free_packet

if TYPE_CHECKING:
    from ..library.binding import OpenBlock
    from ..library.covc import CO_CALL_PARAMETERS, CO_SAP, AfBlock, SapBlock, VirtualConnection
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING


class CmVc:
    """The CM's CallMgrVcContext (and, for the signalling VC, its ProtocolVcContext)."""

    __slots__ = ("binding", "call", "handle", "pending")

    def __init__(self, binding: CmBinding, handle: VirtualConnection | None = None) -> None:
        self.binding = binding
        self.handle: Any = handle
        self.call: Call | None = None
        #: what to do when a pended (de)activation completes
        self.pending: Done | None = None

    def __repr__(self) -> str:
        return f"<CmVc {self.call!r}>"


class CmAf:
    """The CM's CallMgrAfContext: one client's open of the AF."""

    __slots__ = ("binding", "handle")

    def __init__(self, binding: CmBinding, handle: AfBlock) -> None:
        self.binding = binding
        self.handle = handle


class CmSap:
    """The CM's CallMgrSapContext."""

    __slots__ = ("af", "handle", "selector")

    def __init__(self, af: CmAf, selector: bytes, handle: SapBlock) -> None:
        self.af = af
        self.selector = selector
        self.handle = handle


class CmBinding(CallControl):
    """One binding of the CM (its ProtocolBindingContext): call control over NdisCm DDIs."""

    def __init__(self, cm: CmProto5, device: str, vci_range: tuple[int, int]) -> None:
        super().__init__(vci_range)
        self.cm = cm
        self.ndis = cm.ndis
        self.device = device
        self.handle: OpenBlock | None = None
        self.saps: dict[bytes, CmSap] = {}
        self.signalling = CmVc(self)
        self.signalling_up = False
        self.backlog: list[bytes] = []

    # --- signalling VC ----------------------------------------------------------------------------
    def open_signalling(self) -> None:
        assert self.handle is not None
        status, handle = self.ndis.NdisCoCreateVc(self.handle, None, self.signalling)
        if status != _SUCCESS:
            return
        self.signalling.handle = handle
        self.activate(self.signalling, atm_call_parameters(vci=SIGNALLING_VCI), self._sig_up)

    def _sig_up(self, status: NDIS_STATUS) -> None:
        self.signalling_up = status == _SUCCESS
        backlog, self.backlog = self.backlog, []
        for message in backlog:
            self.send_signal(message)

    def close_signalling(self, done: Callable[[], None]) -> None:
        sig = self.signalling

        def deactivated(_status: NDIS_STATUS) -> None:
            self.ndis.NdisCoDeleteVc(sig.handle)
            sig.handle = None
            done()

        if sig.handle is None:
            done()
        elif not self.signalling_up:
            self.ndis.NdisCoDeleteVc(sig.handle)
            sig.handle = None
            done()
        else:
            self.signalling_up = False
            self.deactivate(sig, deactivated)

    # --- CallControl ------------------------------------------------------------------------------
    def send_signal(self, message: bytes) -> None:
        if not self.signalling_up:
            if self.signalling.handle is not None:
                self.backlog.append(message)
            return
        cm = self.cm
        assert cm.packet_pool is not None and cm.buffer_pool is not None
        _status, packet = NdisAllocatePacket(cm.packet_pool)
        _status, buffer = NdisAllocateBuffer(cm.buffer_pool, message, len(message))
        assert packet is not None and buffer is not None
        NdisChainBufferAtBack(packet, buffer)
        self.signals_sent += 1
        self.ndis.NdisCoSendPackets(self.signalling.handle, [packet], 1)

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self.ndis.scheduler.queue_dpc(fn, *args, label="cmproto")

    def activate(self, vc: Any, params: CO_CALL_PARAMETERS, done: Done) -> None:
        vc.pending = done
        status = self.ndis.NdisCmActivateVc(vc.handle, params)
        if status != _PENDING:
            vc.pending = None
            done(status)

    def deactivate(self, vc: Any, done: Done) -> None:
        vc.pending = done
        status = self.ndis.NdisCmDeactivateVc(vc.handle)
        if status != _PENDING:
            vc.pending = None
            done(status)

    def make_call_complete(self, vc: Any, status: NDIS_STATUS, params: CO_CALL_PARAMETERS) -> None:
        self.ndis.NdisCmMakeCallComplete(status, vc.handle, None, None, params)

    def close_call_complete(self, vc: Any) -> None:
        self.ndis.NdisCmCloseCallComplete(_SUCCESS, vc.handle, None)

    def create_incoming_vc(self, af: Any) -> tuple[NDIS_STATUS, Any]:
        assert self.handle is not None
        vc = CmVc(self)
        status, handle = self.ndis.NdisCoCreateVc(self.handle, af.handle, vc)
        vc.handle = handle
        return status, vc

    def delete_vc(self, vc: Any) -> None:
        self.ndis.NdisCoDeleteVc(vc.handle)

    def dispatch_incoming(self, sap: Any, vc: Any, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        return self.ndis.NdisCmDispatchIncomingCall(sap.handle, vc.handle, params)

    def dispatch_connected(self, vc: Any) -> None:
        self.ndis.NdisCmDispatchCallConnected(vc.handle)

    def dispatch_incoming_close(self, vc: Any) -> None:
        self.ndis.NdisCmDispatchIncomingCloseCall(_SUCCESS, vc.handle, None, 0)

    def find_sap(self, selector: bytes) -> tuple[Any, Any] | None:
        sap = self.saps.get(selector)
        return (sap.af, sap) if sap is not None else None

    def __repr__(self) -> str:
        return f"<CmBinding {self.device!r} calls={len(self.calls)}>"


class CmProto5(SampleProtocol5):
    """The stand-alone call manager protocol driver (NDIS 5.1)."""

    ndis: Ndis

    def __init__(
        self, *, name: str = "cmproto5", vci_range: tuple[int, int] = (32, 4095), packets: int = 256
    ) -> None:
        self.name = name
        self.vci_range = vci_range
        self.packet_count = packets
        self.handle: DriverBlock | None = None
        self.packet_pool: PacketPool | None = None
        self.buffer_pool: BufferPool | None = None
        self.bindings: dict[str, CmBinding] = {}

    def register(self, ndis: Ndis) -> NDIS_STATUS:
        """DriverEntry: pools for signalling, NdisRegisterProtocol (the adapters present are
        offered later, from PASSIVE work items)."""
        status, self.packet_pool, self.buffer_pool = allocate_pools(
            ndis, self.packet_count, self.packet_count
        )
        if status != _SUCCESS:
            return status
        return super().register(ndis)

    # --- binding ----------------------------------------------------------------------------------
    def ProtocolBindAdapter(
        self, BindContext: Any, DeviceName: str, SystemSpecific1: Any, SystemSpecific2: Any
    ) -> NDIS_STATUS:
        """NdisOpenAdapter -> NdisCmRegisterAddressFamily -> the signalling VC."""
        assert self.handle is not None
        device = DeviceName
        ctx = CmBinding(self, device, self.vci_range)
        status, _error, binding, _index = self.ndis.NdisOpenAdapter(
            self.handle, ctx, [NdisMediumAtm], device
        )
        if status != _SUCCESS or binding is None:
            return NDIS_STATUS(status)
        ctx.handle = binding
        self.bindings[device] = ctx
        status = self.ndis.NdisCmRegisterAddressFamily(binding, ATM_ADDRESS_FAMILY, None, 0)
        if status == _SUCCESS:
            ctx.open_signalling()
        return NDIS_STATUS(status)

    def ProtocolUnbindAdapter(self, ProtocolBindingContext: Any, UnbindContext: Any) -> None:
        """Take the signalling VC down (waiting for it), then close the binding."""
        ctx: CmBinding = ProtocolBindingContext
        finished: list[bool] = []
        ctx.close_signalling(lambda: finished.append(True))
        self.ndis.wait_until(
            lambda: bool(finished), f"{self.name}: signalling VC down", Culprit.MINIPORT
        )
        self.bindings.pop(ctx.device, None)
        assert ctx.handle is not None
        self.ndis.NdisCloseAdapter(ctx.handle)

    def ProtocolCloseAdapterComplete(self, ProtocolBindingContext: Any, Status: int) -> None:
        pass

    # --- the signalling VC's data -----------------------------------------------------------------
    def ProtocolCoSendComplete(
        self, Status: int, ProtocolVcContext: Any, Packet: NDIS_PACKET
    ) -> None:
        free_packet(Packet)

    def ProtocolCoReceivePacket(
        self, ProtocolBindingContext: CmBinding, ProtocolVcContext: Any, Packet: NDIS_PACKET
    ) -> int:
        if ProtocolVcContext is ProtocolBindingContext.signalling:
            ProtocolBindingContext.on_signal(packet_bytes(Packet))
        return 0

    # --- call-manager handlers --------------------------------------------------------------------
    def ProtocolCmOpenAf(
        self, CallMgrBindingContext: CmBinding, AddressFamily: Any, NdisAfHandle: AfBlock
    ) -> tuple[NDIS_STATUS, CmAf]:
        return _SUCCESS, CmAf(CallMgrBindingContext, NdisAfHandle)

    def ProtocolCmCloseAf(self, CallMgrAfContext: CmAf) -> NDIS_STATUS:
        return _SUCCESS

    def ProtocolCmRegisterSap(
        self, CallMgrAfContext: CmAf, Sap: CO_SAP, NdisSapHandle: SapBlock
    ) -> tuple[NDIS_STATUS, CmSap | None]:
        binding = CallMgrAfContext.binding
        selector = bytes(Sap.Sap)
        if selector in binding.saps:
            return NDIS_STATUS.SAP_IN_USE, None
        sap = CmSap(CallMgrAfContext, selector, NdisSapHandle)
        binding.saps[selector] = sap
        return _SUCCESS, sap

    def ProtocolCmDeregisterSap(self, CallMgrSapContext: CmSap) -> NDIS_STATUS:
        CallMgrSapContext.af.binding.saps.pop(CallMgrSapContext.selector, None)
        return _SUCCESS

    def ProtocolCoCreateVc(
        self, ProtocolAfContext: CmAf, NdisVcHandle: VirtualConnection
    ) -> tuple[NDIS_STATUS, CmVc]:
        """A client created a VC on our AF: our per-VC context for it (never pends)."""
        return _SUCCESS, CmVc(ProtocolAfContext.binding, NdisVcHandle)

    def ProtocolCoDeleteVc(self, ProtocolVcContext: CmVc) -> NDIS_STATUS:
        return _SUCCESS

    def ProtocolCmMakeCall(
        self, CallMgrVcContext: CmVc, CallParameters: CO_CALL_PARAMETERS, NdisPartyHandle: Any
    ) -> tuple[NDIS_STATUS, Any]:
        return CallMgrVcContext.binding.make_call(CallMgrVcContext, CallParameters), None

    def ProtocolCmCloseCall(
        self, CallMgrVcContext: CmVc, CallMgrPartyContext: Any, CloseData: Any, Size: int
    ) -> NDIS_STATUS:
        return CallMgrVcContext.binding.close_call(CallMgrVcContext)

    def ProtocolCmIncomingCallComplete(
        self, Status: int, CallMgrVcContext: CmVc, CallParameters: Any
    ) -> None:
        CallMgrVcContext.binding.incoming_call_complete(CallMgrVcContext, NDIS_STATUS(Status))

    def ProtocolCmActivateVcComplete(
        self, Status: int, CallMgrVcContext: CmVc, CallParameters: Any
    ) -> None:
        done, CallMgrVcContext.pending = CallMgrVcContext.pending, None
        if done is not None:
            done(NDIS_STATUS(Status))

    def ProtocolCmDeactivateVcComplete(self, Status: int, CallMgrVcContext: CmVc) -> None:
        done, CallMgrVcContext.pending = CallMgrVcContext.pending, None
        if done is not None:
            done(NDIS_STATUS(Status))


__all__ = ["CmAf", "CmBinding", "CmProto5", "CmSap", "CmVc"]
