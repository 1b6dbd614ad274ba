"""A CoNDIS 5.1 client protocol: opens the ATM address family, makes and takes calls, sends.

Theory of operation
-------------------
The client binds to every ATM adapter it is offered (``NdisOpenAdapter`` with NdisMediumAtm).
When NDIS offers the ATM address family (``ProtocolCoAfRegisterNotify``) it opens it and, if
given a ``sap`` selector, registers that SAP so the call manager can offer it incoming calls.
Everything a call needs is in a :class:`ClientVc` (the ProtocolVcContext); its ``state`` reads
``created -> calling -> connected -> closing -> closed -> deleted`` (or ``offered -> accepted ->
connected`` for an incoming call; ``failed`` when a call could not be made).

Sending. ``send(vc, payloads)`` describes each payload with one buffer (no copy), chains it to a
packet of the client's pool and hands the whole array to ``NdisCoSendPackets``. What
``ProtocolCoSendComplete`` does with a packet is the ``reuse`` policy, which is where the
documented reuse guidance becomes checkable:

============  ==========================================================================
``free``       unchain and free the buffers, free the packet (the default)
``proper``     unchain the buffers (and free them), ``NdisReinitializePacket``, zero the
               OOB block through ``NDIS_OOB_DATA_FROM_PACKET``; keep the packet for reuse
``reinit_first`` (buggy) ``NdisReinitializePacket`` before unchaining: the buffers are lost
               and show up as leaks in the buffer pool
``zero_packet``  (buggy) ``NdisZeroMemory(packet)`` instead of its OOB block: the descriptor
               is destroyed and its next use raises PY-ZEROED-PACKET
============  ==========================================================================

For bulk traffic a VC can carry a :class:`~pyndis.drivers.costream.StreamSender` instead (a
fixed window of reused descriptors); the receiving VC then hands every packet to its
:class:`~pyndis.drivers.costream.StreamChecker`.

Receiving: ``ProtocolCoReceivePacket`` hands the data to the VC's checker or ``on_receive``
callback and returns 0, unless ``hold_receives`` is set (then it keeps the packet, returns 1, and
``return_held()`` gives it back through ``NdisReturnPackets``; a packet indicated with
NDIS_STATUS_RESOURCES is never kept). Incoming calls are answered per ``accept``: ``accept``,
``reject``, or ``pend`` (answered from a DPC with NdisClIncomingCallComplete). An incoming close
is answered with NdisClCloseCall (rule 34). ``ProtocolUnbindAdapter`` closes every call, deletes
the VCs, deregisters the SAP and closes the AF before closing the binding, waiting for each step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..constants import PASSIVE_LEVEL, NdisMediumAtm
from ..errors import Culprit
from ..mdl import NdisAllocateBuffer
from ..packet import (
    NDIS_OOB_DATA_FROM_PACKET,
    NDIS_PACKET,
    NdisChainBufferAtBack,
    NdisZeroMemory,
    packet_bytes,
)
from ..pools import NdisAllocatePacket, NdisFreePacket, NdisReinitializePacket
from ..scheduler import PRIORITY_PASSIVE
from ..status import NDIS_STATUS
from .atmsig import ATM_ADDRESS_FAMILY, atm_sap
from .common5 import SampleProtocol5, allocate_pools, free_buffers

if TYPE_CHECKING:
    from ..library.binding import OpenBlock
    from ..library.covc import (
        CO_ADDRESS_FAMILY,
        CO_CALL_PARAMETERS,
        CO_SAP,
        AfBlock,
        SapBlock,
        VirtualConnection,
    )
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool
    from .costream import StreamChecker, StreamSender

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES
REUSE_POLICIES = ("free", "proper", "reinit_first", "zero_packet")


class ClientBinding:
    """The client's ProtocolBindingContext (and ProtocolAfContext, ProtocolSapContext)."""

    def __init__(self, client: CoClient5, device: str) -> None:
        self.client = client
        self.device = device
        self.handle: OpenBlock | None = None
        self.af: AfBlock | None = None
        self.sap: SapBlock | None = None
        self.vcs: list[ClientVc] = []
        self.statuses: list[int] = []
        self.receive_completes = 0
        self.closing = False

    def __repr__(self) -> str:
        return f"<ClientBinding {self.device!r} vcs={len(self.vcs)}>"


class ClientVc:
    """The client's ProtocolVcContext."""

    def __init__(self, binding: ClientBinding, incoming: bool) -> None:
        self.binding = binding
        self.incoming = incoming
        self.handle: VirtualConnection | None = None
        self.state = "offered" if incoming else "created"
        self.call_status: int | None = None
        self.params: CO_CALL_PARAMETERS | None = None
        self.sent = 0
        self.completed = 0
        self.by_status: dict[int, int] = {}
        self.received: list[bytes] = []
        self.received_count = 0
        self.held: list[NDIS_PACKET] = []
        self.stream: StreamSender | None = None
        self.checker: StreamChecker | None = None
        #: teardown waits for this VC's sends, then closes the call
        self.close_when_idle = False

    def __repr__(self) -> str:
        return f"<ClientVc {self.state} sent={self.sent} completed={self.completed}>"


class CoClient5(SampleProtocol5):
    """The client protocol driver (NDIS 5.1, connection-oriented)."""

    ndis: Ndis

    def __init__(
        self,
        *,
        name: str = "coclient5",
        sap: bytes | None = None,
        accept: str = "accept",
        reuse: str = "free",
        hold_receives: bool = False,
        keep_data: bool = True,
        packets: int = 1024,
        buffers: int = 2048,
    ) -> None:
        if reuse not in REUSE_POLICIES or accept not in ("accept", "reject", "pend"):
            raise ValueError(f"coclient5: bad reuse {reuse!r} or accept {accept!r}")
        self.name = name
        self.sap = sap
        self.accept = accept
        self.reuse = reuse
        self.hold_receives = hold_receives
        self.keep_data = keep_data
        self.packet_count = packets
        self.buffer_count = buffers
        self.handle: DriverBlock | None = None
        self.packet_pool: PacketPool | None = None
        self.buffer_pool: BufferPool | None = None
        self.bindings: dict[str, ClientBinding] = {}
        self.spare: list[NDIS_PACKET] = []
        #: callbacks: on_connected(vc), on_receive(vc, data), on_send_complete(vc, packet, status)
        self.on_connected: Callable[[ClientVc], None] | None = None
        self.on_receive: Callable[[ClientVc, bytes], None] | None = None
        self.on_send_complete: Callable[[ClientVc, NDIS_PACKET, int], None] | None = None
        self.incoming: list[ClientVc] = []

    # --- DriverEntry and binding ------------------------------------------------------------------
    def register(self, ndis: Ndis) -> NDIS_STATUS:
        """DriverEntry: pools, NdisRegisterProtocol (the adapters present are offered later,
        from PASSIVE work items)."""
        status, self.packet_pool, self.buffer_pool = allocate_pools(
            ndis, self.packet_count, self.buffer_count
        )
        if status != _SUCCESS:
            return status
        return super().register(ndis)

    def ProtocolBindAdapter(
        self, BindContext: Any, DeviceName: str, SystemSpecific1: Any, SystemSpecific2: Any
    ) -> NDIS_STATUS:
        """NdisOpenAdapter (the AF is offered later: ProtocolCoAfRegisterNotify)."""
        assert self.handle is not None
        device = DeviceName
        ctx = ClientBinding(self, device)
        status, _error, binding, _index = self.ndis.NdisOpenAdapter(
            self.handle, ctx, [NdisMediumAtm], device
        )
        if status == _SUCCESS and binding is not None:
            ctx.handle = binding
            self.bindings[device] = ctx
        return NDIS_STATUS(status)

    def ProtocolUnbindAdapter(self, ProtocolBindingContext: Any, UnbindContext: Any) -> None:
        """Close every call, delete the VCs, deregister the SAP, close the AF (waiting for each
        completion, as a real unbind handler waits on an event at PASSIVE_LEVEL), then close
        the binding."""
        ctx: ClientBinding = ProtocolBindingContext
        self.teardown(ctx)
        self.ndis.wait_until(
            lambda: ctx.af is None, f"{self.name}: teardown of {ctx!r}", Culprit.MINIPORT
        )
        self.bindings.pop(ctx.device, None)
        assert ctx.handle is not None
        self.ndis.NdisCloseAdapter(ctx.handle)

    def ProtocolCloseAdapterComplete(self, ProtocolBindingContext: Any, Status: int) -> None:
        pass

    def ProtocolStatus(self, ProtocolBindingContext: Any, Status: int, *rest: Any) -> None:
        ProtocolBindingContext.statuses.append(Status)

    def ProtocolCoStatus(
        self, ProtocolBindingContext: Any, ProtocolVcContext: Any, Status: int, *rest: Any
    ) -> None:
        ProtocolBindingContext.statuses.append(Status)

    def ProtocolReceiveComplete(self, ProtocolBindingContext: Any) -> None:
        ProtocolBindingContext.receive_completes += 1

    # --- the address family and the SAP -----------------------------------------------------------
    def ProtocolCoAfRegisterNotify(
        self, ProtocolBindingContext: ClientBinding, AddressFamily: CO_ADDRESS_FAMILY
    ) -> None:
        ctx = ProtocolBindingContext
        if AddressFamily.AddressFamily != ATM_ADDRESS_FAMILY.AddressFamily or ctx.af is not None:
            return
        assert ctx.handle is not None
        status, af = self.ndis.NdisClOpenAddressFamily(ctx.handle, AddressFamily, ctx, None, 0)
        if status != _PENDING:
            self.ProtocolClOpenAfComplete(status, ctx, af)

    def ProtocolClOpenAfComplete(
        self, Status: int, ProtocolAfContext: ClientBinding, NdisAfHandle: AfBlock | None
    ) -> None:
        ctx = ProtocolAfContext
        if Status != _SUCCESS or NdisAfHandle is None:
            return
        ctx.af = NdisAfHandle
        if self.sap is not None:
            status, sap = self.ndis.NdisClRegisterSap(NdisAfHandle, ctx, atm_sap(self.sap))
            if status != _PENDING:
                self.ProtocolClRegisterSapComplete(status, ctx, atm_sap(self.sap), sap)

    def ProtocolClRegisterSapComplete(
        self, Status: int, ProtocolSapContext: ClientBinding, Sap: CO_SAP, NdisSapHandle: Any
    ) -> None:
        if Status == _SUCCESS:
            ProtocolSapContext.sap = NdisSapHandle

    def ProtocolClDeregisterSapComplete(self, Status: int, ProtocolSapContext: Any) -> None:
        ProtocolSapContext.sap = None
        self._teardown_step(ProtocolSapContext)

    def ProtocolClCloseAfComplete(self, Status: int, ProtocolAfContext: Any) -> None:
        ProtocolAfContext.af = None

    # --- VCs and calls ----------------------------------------------------------------------------
    def make_call(self, ctx: ClientBinding, params: CO_CALL_PARAMETERS) -> ClientVc:
        """NdisCoCreateVc + NdisClMakeCall; the VC's ``state`` says how it went."""
        vc = ClientVc(ctx, incoming=False)
        vc.params = params
        assert ctx.handle is not None
        status, handle = self.ndis.NdisCoCreateVc(ctx.handle, ctx.af, vc)
        if status != _SUCCESS or handle is None:
            vc.state, vc.call_status = "failed", status
            return vc
        vc.handle = handle
        ctx.vcs.append(vc)
        vc.state = "calling"
        status = self.ndis.NdisClMakeCall(handle, params, None)
        if status != _PENDING:
            self.ProtocolClMakeCallComplete(status, vc, None, params)
        return vc

    def ProtocolClMakeCallComplete(
        self, Status: int, ProtocolVcContext: ClientVc, NdisPartyHandle: Any, CallParameters: Any
    ) -> None:
        vc = ProtocolVcContext
        vc.call_status = Status
        if Status == _SUCCESS:
            vc.state = "connected"
            if self.on_connected is not None:
                self.on_connected(vc)
        else:
            vc.state = "failed"
            self._delete(vc)

    def ProtocolCoCreateVc(
        self, ProtocolAfContext: ClientBinding, NdisVcHandle: VirtualConnection
    ) -> tuple[NDIS_STATUS, ClientVc]:
        """The call manager creates a VC for an incoming call (never pends, rule 28)."""
        vc = ClientVc(ProtocolAfContext, incoming=True)
        vc.handle = NdisVcHandle
        ProtocolAfContext.vcs.append(vc)
        return _SUCCESS, vc

    def ProtocolCoDeleteVc(self, ProtocolVcContext: ClientVc) -> NDIS_STATUS:
        vc = ProtocolVcContext
        vc.state = "deleted"
        if vc in vc.binding.vcs:
            vc.binding.vcs.remove(vc)
        self._teardown_step(vc.binding)
        return _SUCCESS

    def ProtocolClIncomingCall(
        self, ProtocolSapContext: Any, ProtocolVcContext: ClientVc, CallParameters: Any
    ) -> NDIS_STATUS:
        vc = ProtocolVcContext
        vc.params = CallParameters
        self.incoming.append(vc)
        if self.accept == "reject":
            vc.state = "rejected"
            return NDIS_STATUS.NOT_ACCEPTED
        if self.accept == "pend":
            ndis = self.ndis
            ndis.scheduler.queue_dpc(self._answer, vc, label="client-answer")
            return _PENDING
        vc.state = "accepted"
        return _SUCCESS

    def _answer(self, vc: ClientVc) -> None:
        assert vc.handle is not None
        vc.state = "accepted"
        self.ndis.NdisClIncomingCallComplete(_SUCCESS, vc.handle, vc.params)

    def ProtocolClCallConnected(self, ProtocolVcContext: ClientVc) -> None:
        vc = ProtocolVcContext
        vc.state = "connected"
        if self.on_connected is not None:
            self.on_connected(vc)

    def close_call(self, vc: ClientVc) -> NDIS_STATUS:
        """NdisClCloseCall (the client waits for its sends first, rule 32, unless told not to)."""
        assert vc.handle is not None
        vc.state = "closing"
        status = self.ndis.NdisClCloseCall(vc.handle, None, None, 0)
        if status != _PENDING:
            self.ProtocolClCloseCallComplete(status, vc, None)
        return status

    def ProtocolClIncomingCloseCall(
        self, CloseStatus: int, ProtocolVcContext: ClientVc, CloseData: Any, Size: int
    ) -> None:
        """Whatever the status, the client may no longer send and must close (rule 34)."""
        self.close_call(ProtocolVcContext)

    def ProtocolClCloseCallComplete(
        self, Status: int, ProtocolVcContext: ClientVc, ProtocolPartyContext: Any
    ) -> None:
        vc = ProtocolVcContext
        vc.state = "closed"
        if not vc.incoming:
            self._delete(vc)  # the creator deletes (rule 33); the CM deletes its own VCs

    def _delete(self, vc: ClientVc) -> None:
        if vc.handle is not None and self.ndis.NdisCoDeleteVc(vc.handle) == _SUCCESS:
            vc.state = "deleted"
            if vc in vc.binding.vcs:
                vc.binding.vcs.remove(vc)
            self._teardown_step(vc.binding)

    # --- teardown ---------------------------------------------------------------------------------
    def teardown(self, ctx: ClientBinding) -> None:
        """Start closing everything on a binding: calls, VCs, SAP, AF (see ``af`` go None)."""
        ctx.closing = True
        for vc in list(ctx.vcs):
            if vc.state == "connected" and vc.sent != vc.completed:
                vc.close_when_idle = True  # rule 32: its sends complete first
            elif vc.state == "connected":
                self.close_call(vc)
            elif vc.state in ("created", "failed", "closed") and not vc.incoming:
                self._delete(vc)
        self._teardown_step(ctx)

    def _teardown_step(self, ctx: ClientBinding) -> None:
        if not ctx.closing or ctx.vcs or ctx.af is None:
            return
        if self.ndis.irql.level > PASSIVE_LEVEL:
            # NdisClCloseAddressFamily is a PASSIVE_LEVEL DDI: continue from a work item
            self.ndis.scheduler.call_later(
                0,
                self._teardown_step,
                ctx,
                priority=PRIORITY_PASSIVE,
                irql=PASSIVE_LEVEL,
                label="client-teardown",
            )
            return
        if ctx.sap is not None:
            sap, ctx.sap = ctx.sap, None
            if self.ndis.NdisClDeregisterSap(sap) == _PENDING:
                ctx.sap = sap  # ProtocolClDeregisterSapComplete continues
                return
        af = ctx.af
        if self.ndis.NdisClCloseAddressFamily(af) != _PENDING:
            ctx.af = None

    # --- sending ----------------------------------------------------------------------------------
    def send(self, vc: ClientVc, payloads: Sequence[bytes | bytearray | memoryview]) -> None:
        """One NdisCoSendPackets for all ``payloads`` (one packet and one buffer each)."""
        assert vc.handle is not None and self.packet_pool is not None
        array = []
        for payload in payloads:
            packet = self.spare.pop() if self.spare else None
            if packet is None:
                status, packet = NdisAllocatePacket(self.packet_pool)
                if status != _SUCCESS or packet is None:
                    raise RuntimeError(f"{self.name}: packet pool exhausted ({status!r})")
            assert self.buffer_pool is not None
            status, buffer = NdisAllocateBuffer(self.buffer_pool, payload, len(payload))
            if status != _SUCCESS or buffer is None:
                raise RuntimeError(f"{self.name}: buffer pool exhausted ({status!r})")
            NdisChainBufferAtBack(packet, buffer)
            array.append(packet)
        vc.sent += len(array)
        self.ndis.NdisCoSendPackets(vc.handle, array, len(array))

    def ProtocolCoSendComplete(
        self, Status: int, ProtocolVcContext: ClientVc, Packet: NDIS_PACKET
    ) -> None:
        vc = ProtocolVcContext
        vc.completed += 1
        vc.by_status[Status] = vc.by_status.get(Status, 0) + 1
        if self.on_send_complete is not None:
            self.on_send_complete(vc, Packet, Status)
        if vc.stream is not None and vc.stream.owns(Packet):
            vc.stream.completed(Packet, Status)
        else:
            self.recycle(Packet)
        if vc.close_when_idle and vc.sent == vc.completed and vc.state == "connected":
            vc.close_when_idle = False
            self.close_call(vc)

    def recycle(self, packet: NDIS_PACKET) -> None:
        """Prepare a completed packet for reuse, or free it, per the ``reuse`` policy."""
        policy = self.reuse
        if policy == "reinit_first":  # the documented mistake: the chain head is gone
            NdisReinitializePacket(packet)
            self.spare.append(packet)
            return
        if policy == "zero_packet":  # the other one: the descriptor is destroyed
            free_buffers(packet)
            NdisZeroMemory(packet)
            self.spare.append(packet)
            return
        free_buffers(packet)
        if policy == "free":
            NdisFreePacket(packet)
        else:
            NdisReinitializePacket(packet)
            NdisZeroMemory(NDIS_OOB_DATA_FROM_PACKET(packet))
            self.spare.append(packet)

    def free_spares(self) -> None:
        """Free the packets kept for reuse (their buffers are already gone)."""
        while self.spare:
            NdisFreePacket(self.spare.pop())

    # --- receiving --------------------------------------------------------------------------------
    def ProtocolCoReceivePacket(
        self, ProtocolBindingContext: Any, ProtocolVcContext: ClientVc, Packet: NDIS_PACKET
    ) -> int:
        vc = ProtocolVcContext
        vc.received_count += 1
        if vc.checker is not None:
            vc.checker.check(Packet)
        else:
            data = packet_bytes(Packet)
            if self.keep_data:
                vc.received.append(data)
            if self.on_receive is not None:
                self.on_receive(vc, data)
        if self.hold_receives and Packet.oob.Status != _RESOURCES:
            vc.held.append(Packet)
            return 1
        return 0

    def return_held(self, vc: ClientVc) -> int:
        """NdisReturnPackets for every packet ``vc`` kept."""
        held, vc.held = vc.held, []
        if held:
            self.ndis.NdisReturnPackets(held, len(held))
        return len(held)


__all__ = [
    "REUSE_POLICIES",
    "ClientBinding",
    "ClientVc",
    "CoClient5",
]
