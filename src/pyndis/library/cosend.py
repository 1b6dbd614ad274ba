"""CoNDIS 5.x data on VCs: NdisCoSendPackets, NdisMCoSendComplete, NdisMCoIndicateReceivePacket.

Theory of operation
-------------------
Grammar, per packet (rules 17, 35-37)::

    NdisCoSendPackets(vc, [P...], n) -> None
        VC never activated ......... ProtocolCoSendComplete(VC_NOT_ACTIVATED, ctx, P)  at once
        VC closing / closed ........ ProtocolCoSendComplete(CLOSING, ctx, P)           at once
        otherwise .................. MiniportCoSendPackets(MiniportVcContext, [P...], n)
                                     -> NdisMCoSendComplete(Status != PENDING, vc, P)  exactly once
                                     -> ProtocolCoSendComplete(Status, ProtocolVcContext, P)

There is no NDIS queue for a CoNDIS miniport (rule 36): each NdisCoSendPackets call goes straight
to MiniportCoSendPackets, in array order, and calls reach the miniport in the order they are made,
so submission is FIFO per VC by construction; the miniport may complete in any order. A
miniport may complete a packet before MiniportCoSendPackets returns, and a protocol may send
again from ProtocolCoSendComplete: NDIS moves every packet to the miniport (``send`` then
``submit``) and updates its counters *before* it calls the miniport, so both re-entries see a
consistent state, and the nested send reaches the miniport after the array already handed over.
Ownership comes back one packet at a time: ``complete`` (miniport -> NDIS), ``return`` (NDIS ->
protocol) just before ProtocolCoSendComplete. The packet's ``ndis_route`` stamp is the VC it was
sent on; a completion through another VC handle is refused (R37), a second completion fails its
ownership move (PY-DOUBLE-COMPLETE), and PENDING is no completion status (R37).

A refused send (rule 35 [model]) still moves through the table: ``send``, ``abort``, ``return``,
and the packet's OOB Status is the refusal, so the protocol handles it like any completion; the
verifier is told once per call which rule the sender broke (R35, R34 after an incoming close,
and R29/R30 for data sent on an active VC whose call is not up yet, which does go down).

IRQL **[model]** (rule 62): NdisCoSendPackets and the receive DDIs at <= DISPATCH_LEVEL.
W14393 annotates NdisMCoSendComplete as exactly DISPATCH_LEVEL; pyndis raises above DISPATCH
and *reports* a call below DISPATCH to the verifier (R62) instead of refusing it, since a miniport
completing from inside a send made at PASSIVE_LEVEL works in practice. ProtocolCoSendComplete
runs at the miniport's IRQL (the header's PASSIVE annotation is relaxed, rule 62).

INDICATE_END_OF_TX (rule 37): on a VC activated with it, a completion means the data is out. The
library cannot see a wire, but it can see one impossible case: a completion *inside*
MiniportCoSendPackets on such a VC, before virtual time could pass, is reported to the verifier.

Receives (NDIS 5.x semantics, documented on NDIS_GET/SET_PACKET_STATUS): each packet of
NdisMCoIndicateReceivePacket goes to the owner's ProtocolCoReceivePacket(ProtocolBindingContext,
ProtocolVcContext, P) -> ReceiveCount. A packet indicated with OOB Status RESOURCES must be copied
(a ReceiveCount > 0 is a ProtocolContractError) and is the miniport's again when the call returns;
one nobody kept has OOB Status SUCCESS on return and is the miniport's again (no
MiniportReturnPacket); one kept (ReceiveCount > 0) has Status PENDING and comes back through
MiniportReturnPacket after the last NdisReturnPackets (the rule of the MiniportReturnPacket page,
as for NdisMIndicateReceivePacket). The kept ones are lent through the 5.x receive path
(``ndis._lend5`` with the VC), so ``NdisReturnPackets`` is one DDI for both paths; it counts the
VC's ``returned`` when the last holder gives a packet back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..constants import DISPATCH_LEVEL
from ..errors import (
    Culprit,
    IrqlError,
    MiniportContractError,
    NdisUsageError,
    ProtocolContractError,
)
from ..ownership import Event, Ownership, illegal_transition, transition
from ..packet import NDIS_PACKET, NdisQueryPacketLength, check_packet
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .covc import VirtualConnection, vc_can_indicate, vc_from_handle, vc_send_status
from .drivers import version_error
from .states import VcState

if TYPE_CHECKING:
    from .kernel import Ndis

_DISPATCH = int(DISPATCH_LEVEL)
_PENDING = NDIS_STATUS.PENDING
_SUCCESS = NDIS_STATUS.SUCCESS
_RESOURCES = NDIS_STATUS.RESOURCES
_ALLOCATED = Ownership.ALLOCATED
_AT_MINIPORT = Ownership.AT_MINIPORT
_DELETED = VcState.DELETED
_SEND = Event.SEND
_SUBMIT = Event.SUBMIT
_COMPLETE = Event.COMPLETE
_RETURN = Event.RETURN
_ABORT = Event.ABORT
_INDICATE = Event.INDICATE
_RETURN_INDICATED = Event.RETURN_INDICATED


def _packets(array: Sequence[NDIS_PACKET], count: int, ddi: str) -> Sequence[NDIS_PACKET]:
    """The first ``count`` packets of a PacketArray argument (the array itself when whole)."""
    if count < 0 or count > len(array):
        raise NdisUsageError(
            f"{ddi}: NumberOfPackets {count} but the array holds {len(array)}",
            rule="PY-BAD-ARGUMENT",
        )
    return array if count == len(array) else array[:count]


class CoSendDdis:
    """NdisCoSendPackets, NdisMCoSendComplete, NdisMCoIndicateReceivePacket (mixed into Ndis)."""

    # --- protocol edge --------------------------------------------------------------------------
    def NdisCoSendPackets(
        self,
        NdisVcHandle: VirtualConnection,
        PacketArray: Sequence[NDIS_PACKET],
        NumberOfPackets: int,
    ) -> None:
        """NdisCoSendPackets(NdisVcHandle, PacketArray, NumberOfPackets): no return value; every
        packet comes back exactly once through ProtocolCoSendComplete (rules 36, 37)."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = NdisVcHandle
        if type(vc) is not VirtualConnection or vc.state is _DELETED:
            vc = vc_from_handle(vc, "NdisCoSendPackets", Culprit.PROTOCOL)
        sender = vc.sender
        if ndis.irql.level > _DISPATCH:
            ndis.irql.check_at_most("NdisCoSendPackets", sender.culprit)
        if sender.major != 5:
            raise version_error(sender, "NdisCoSendPackets")
        packets = _packets(PacketArray, NumberOfPackets, "NdisCoSendPackets")
        if not packets:
            return
        for packet in packets:  # refuse a bad array before anything moves
            if type(packet) is not NDIS_PACKET:
                raise NdisUsageError(
                    f"NdisCoSendPackets: {packet!r} is not an NDIS_PACKET", rule="PY-BAD-HANDLE"
                )
            if packet.ownership is not _ALLOCATED:
                check_packet(packet, "NdisCoSendPackets")
                raise illegal_transition(packet, _SEND)
        with ndis.send_lock:
            status, rule = vc_send_status(vc)
            if rule:
                self._co_flag_send(vc, rule, status)
            if status is not None:
                self._co_refuse(vc, packets, status)
                return
            nbytes = 0
            for packet in packets:
                transition(packet, _SEND)
                transition(packet, _SUBMIT)
                packet.ndis_route = vc
                nbytes += NdisQueryPacketLength(packet)
            n = len(packets)
            counters = vc.counters
            counters.sent += n
            counters.bytes_sent += nbytes
            vc.owner.counters.sent += n
            vc.adapter.outstanding += n
            scheduler = ndis.scheduler
            if scheduler.tracing:
                scheduler.trace("co-send", vc.index, n)
            vc.in_send_handler += 1
            try:
                ndis.call(vc.miniport, "MiniportCoSendPackets", vc.MiniportVcContext, packets, n)
            finally:
                vc.in_send_handler -= 1

    def _co_flag_send(self, vc: VirtualConnection, rule: str, status: NDIS_STATUS | None) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if ndis.verifier is None:
            return
        why = {
            "R35": "on a VC that is not activated or is closing",
            "R34": "after the call manager dispatched an incoming close (it may only close)",
            "R29": "before the call completed successfully (ProtocolClMakeCallComplete)",
            "R30": "before the incoming call was connected (ProtocolClCallConnected)",
        }[rule]
        outcome = f"; NDIS completes it with {status.name}" if status is not None else ""
        ndis.flag(
            ProtocolContractError(
                f"{vc.sender.name} sent {why}: {vc!r}{outcome}",
                rule=rule,
                culprit=vc.sender.culprit,
                subject=vc,
            )
        )

    def _co_refuse(
        self, vc: VirtualConnection, packets: Sequence[NDIS_PACKET], status: NDIS_STATUS
    ) -> None:
        """Complete every packet at once with ``status`` (rule 35 [model]); NDIS still owns
        each for a moment (send, abort) and returns it just before the handler runs."""
        ndis: Ndis = self  # type: ignore[assignment]
        ndis.scheduler.trace("co-refuse", vc.index, len(packets), status)
        counters = vc.counters
        owner = vc.owner.counters
        for packet in packets:
            transition(packet, _SEND)
            transition(packet, _ABORT)
            packet.ndis_route = None
            packet.oob.Status = status
            counters.sent += 1
            counters.completed += 1
            counters.by_status[status] += 1
            owner.sent += 1
            owner.completed += 1
            owner.by_status[status] += 1
            transition(packet, _RETURN)
            ndis.call(vc.sender, "ProtocolCoSendComplete", status, vc.ProtocolVcContext, packet)
        ndis._vc_send_done(vc)

    # --- miniport edge ----------------------------------------------------------------------------
    def NdisMCoSendComplete(
        self, Status: int, NdisVcHandle: VirtualConnection, Packet: NDIS_PACKET
    ) -> None:
        """NdisMCoSendComplete(Status, NdisVcHandle, Packet) -- status first. Exactly once per
        packet the miniport got, never with PENDING (rule 37)."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = NdisVcHandle
        if type(vc) is not VirtualConnection or vc.state is _DELETED:
            vc = vc_from_handle(vc, "NdisMCoSendComplete", Culprit.MINIPORT)
        level = ndis.irql.level
        if level != _DISPATCH:
            self._co_complete_irql(level)
        if Status == _PENDING:
            raise MiniportContractError(
                f"NdisMCoSendComplete(NDIS_STATUS_PENDING, {vc!r}, {Packet!r}): a completion "
                "carries the final status",
                rule="R37",
                subject=Packet,
            )
        if type(Packet) is not NDIS_PACKET:
            raise MiniportContractError(
                f"NdisMCoSendComplete: {Packet!r} is not an NDIS_PACKET", rule="PY-BAD-HANDLE"
            )
        with ndis.send_lock:
            if Packet.ndis_route is not vc:
                if Packet.ownership is _AT_MINIPORT:
                    raise MiniportContractError(
                        f"NdisMCoSendComplete for {Packet!r} through {vc!r}, but it was sent on "
                        f"{Packet.ndis_route!r}: a packet completes on the VC it was sent on",
                        rule="R37",
                        subject=Packet,
                        history=Packet.history.entries if Packet.history is not None else None,
                    )
                raise illegal_transition(Packet, _COMPLETE, Culprit.MINIPORT)
            transition(Packet, _COMPLETE)
            Packet.ndis_route = None
            if vc.end_of_tx and vc.in_send_handler and ndis.verifier is not None:
                self._co_flag_early(vc, Packet)
            vc.adapter.outstanding -= 1
            Packet.oob.Status = Status
            counters = vc.counters
            counters.completed += 1
            counters.by_status[Status] += 1
            counters.bytes_completed += NdisQueryPacketLength(Packet)
            owner = vc.owner.counters
            owner.completed += 1
            owner.by_status[Status] += 1
            transition(Packet, _RETURN)
            scheduler = ndis.scheduler
            if scheduler.tracing:
                scheduler.trace("co-complete", vc.index, NDIS_STATUS(Status))
            ndis.call(vc.sender, "ProtocolCoSendComplete", Status, vc.ProtocolVcContext, Packet)
            if vc.pending_close is not None or vc.owner.pending_close:
                ndis._vc_send_done(vc)

    def _co_complete_irql(self, level: int) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        if level > _DISPATCH:
            ndis.irql.check_at_most("NdisMCoSendComplete", Culprit.MINIPORT)
        ndis.flag(
            IrqlError(
                "NdisMCoSendComplete called below DISPATCH_LEVEL; ndis.h annotates it "
                "_IRQL_requires_(DISPATCH_LEVEL) (complete from a DPC, or raise the IRQL)",
                rule="R62",
                culprit=Culprit.MINIPORT,
            )
        )

    def _co_flag_early(self, vc: VirtualConnection, packet: NDIS_PACKET) -> None:
        ndis: Ndis = self  # type: ignore[assignment]
        ndis.flag(
            MiniportContractError(
                f"{vc.miniport.name} completed {packet!r} inside MiniportCoSendPackets on {vc!r}, "
                "which was activated with INDICATE_END_OF_TX: a completion there may come only "
                "after the data has actually gone out",
                rule="R37",
                subject=packet,
            )
        )

    # --- receive ----------------------------------------------------------------------------------
    def NdisMCoIndicateReceivePacket(
        self,
        NdisVcHandle: VirtualConnection,
        PacketArray: Sequence[NDIS_PACKET],
        NumberOfPackets: int,
    ) -> None:
        """NdisMCoIndicateReceivePacket(NdisVcHandle, PacketArray, NumberOfPackets): each packet
        to the VC owner's ProtocolCoReceivePacket; see the module notes for who owns it after."""
        ndis: Ndis = self  # type: ignore[assignment]
        vc = vc_from_handle(NdisVcHandle, "NdisMCoIndicateReceivePacket", Culprit.MINIPORT)
        miniport = vc.miniport
        if miniport.major != 5:
            raise version_error(miniport, "NdisMCoIndicateReceivePacket")
        ndis.irql.check_at_most("NdisMCoIndicateReceivePacket", Culprit.MINIPORT)
        if not vc_can_indicate(vc):
            raise MiniportContractError(
                f"{miniport.name} indicated a receive on {vc!r}: a miniport indicates only on an "
                "activated VC (after its deactivation it can neither send nor indicate)",
                rule="R32",
                subject=vc,
            )
        packets = _packets(PacketArray, NumberOfPackets, "NdisMCoIndicateReceivePacket")
        receiver = vc.sender
        binding_context = vc.owner.ProtocolBindingContext
        vc_context = vc.ProtocolVcContext
        can_return = miniport.has("MiniportReturnPacket")
        counters = vc.counters
        with ndis.send_lock:
            for packet in packets:
                if type(packet) is not NDIS_PACKET:
                    raise MiniportContractError(
                        f"NdisMCoIndicateReceivePacket: {packet!r} is not an NDIS_PACKET",
                        rule="PY-BAD-HANDLE",
                    )
                transition(packet, _INDICATE)
                oob = packet.oob
                if not can_return:
                    oob.Status = _RESOURCES
                resources = oob.Status == _RESOURCES
                counters.indicated += 1
                counters.bytes_received += NdisQueryPacketLength(packet)
                count = ndis.call(
                    receiver, "ProtocolCoReceivePacket", binding_context, vc_context, packet
                )
                if count:  # kept (or nonsense): the slow path checks it
                    count = self._receive_count(vc, packet, count, resources)
                if not count:
                    transition(packet, _RETURN_INDICATED)
                    counters.returned += 1
                    if not resources:
                        oob.Status = _SUCCESS
                else:
                    oob.Status = _PENDING
                    ndis._lend5(vc.adapter, packet, count, vc)
            if ndis.scheduler.tracing:
                ndis.scheduler.trace("co-indicate", vc.index, len(packets))

    def _receive_count(
        self, vc: VirtualConnection, packet: NDIS_PACKET, count: Any, resources: bool
    ) -> int:
        receiver = vc.sender
        count = 0 if count is None else count
        if not isinstance(count, int) or count < 0:
            raise ProtocolContractError(
                f"{receiver.name}'s ProtocolCoReceivePacket returned {count!r}; the ReceiveCount "
                "is a number >= 0",
                rule="PY-RECEIVE-COUNT",
                culprit=receiver.culprit,
            )
        if count and resources:
            raise ProtocolContractError(
                f"{receiver.name} kept {packet!r} (ReceiveCount {count}), which was indicated "
                "with NDIS_STATUS_RESOURCES; it must copy the data and return 0",
                rule="PY-RECEIVE-RESOURCES",
                culprit=receiver.culprit,
                subject=packet,
            )
        return int(count)

    def co_held(self, vc: VirtualConnection | None = None) -> int:
        """Received packets kept by VC owners and not yet returned (of ``vc`` if given)."""
        ndis: Ndis = self  # type: ignore[assignment]
        with ndis.send_lock:
            return sum(
                1
                for ind in ndis.receive5_outstanding()
                if ind.vc is not None and (vc is None or ind.vc is vc)
            )

    def NdisMCoReceiveComplete(self, MiniportAdapterHandle: MiniportBlock) -> None:
        """The miniport ends a burst of receive indications: ProtocolReceiveComplete for every
        connection-oriented binding of the adapter that has one."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        for binding in list(adapter.bindings):
            if binding.protocol.is_co and binding.protocol.has("ProtocolReceiveComplete"):
                ndis.call(
                    binding.protocol, "ProtocolReceiveComplete", binding.ProtocolBindingContext
                )

    def NdisMCoIndicateStatus(
        self,
        MiniportAdapterHandle: MiniportBlock,
        NdisVcHandle: VirtualConnection | None,
        GeneralStatus: int,
        StatusBuffer: Any = None,
        StatusBufferSize: int = 0,
    ) -> None:
        """A status for one VC (to its owner's ProtocolCoStatus) or, with no VC, for the
        adapter (to every connection-oriented binding's ProtocolCoStatus, ProtocolVcContext
        None)."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        ndis.scheduler.trace("co-status", adapter.name, NDIS_STATUS(GeneralStatus))
        if NdisVcHandle is not None:
            vc = vc_from_handle(NdisVcHandle, "NdisMCoIndicateStatus", Culprit.MINIPORT)
            targets = [(vc.owner, vc.ProtocolVcContext)]
        else:
            targets = [(b, None) for b in adapter.bindings if b.protocol.is_co]
        for binding, context in targets:
            if binding.protocol.has("ProtocolCoStatus"):
                ndis.call(
                    binding.protocol,
                    "ProtocolCoStatus",
                    binding.ProtocolBindingContext,
                    context,
                    GeneralStatus,
                    StatusBuffer,
                    StatusBufferSize,
                )


__all__ = ["CoSendDdis"]
