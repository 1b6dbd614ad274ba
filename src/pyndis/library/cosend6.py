"""CoNDIS 6 send path (NdisCoSendNetBufferLists), and NDIS 6 completion delivery (both paths).

Theory of operation
-------------------
Grammar, per NET_BUFFER_LIST on a VC (rules 47-49, 35)::

    NdisCoSendNetBufferLists(vc, chain) -> MiniportCoSendNetBufferLists(MiniportVcContext, chain)
        -> NdisMCoSendNetBufferListsComplete(any VC handle of the adapter, NBLs of any VCs)
        -> ProtocolCoSendNetBufferListsComplete(ProtocolVcContext, NBLs of that VC)

The VC comes from :mod:`.co` (``vc_from_handle``); whether data may go down is its verdict
(``vc_send_status``): a VC never activated completes every NBL at once with
NDIS_STATUS_VC_NOT_ACTIVATED, a closing one with NDIS_STATUS_CLOSING (rule 35 [model]), and a
send before the call is up is reported to the verifier (rules 29, 30, 34). CoNDIS has no NDIS
queue (rule 36): the chain goes to the miniport as it came, FIFO. Every NBL's ``SourceHandle``
must be the NdisVcHandle (rule 47). The miniport completes with NdisMCoSendNetBufferListsComplete
naming any VC of the adapter; NDIS routes each NBL by its own ``SourceHandle``, so one call may
carry NBLs of several VCs, each of which comes back to its own ProtocolVcContext. CoNDIS media
are not 802.3/802.5, so NDIS never loops a VC send back (rule 55). Counting follows
:mod:`.co`: ``vc.counters`` (with bytes) and the owner binding's counters, the adapter's
``outstanding``, and ``_vc_send_done(vc)`` after each completion (a held-back close goes on).

Completion delivery (both paths). NdisMSendNetBufferListsComplete and
NdisMCoSendNetBufferListsComplete hand their NBLs (COMPLETING, grouped by ``SourceHandle``)
to ``_s6_up``. Inside a scheduler item (a DPC, a timer, a frame arriving) they are collected,
and one DPC queued behind the item delivers them: one Protocol[Co]SendNetBufferListsComplete
per (protocol, context), carrying the NBLs of every send call, binding and VC that share the
context (rule 49: "NDIS can collect the structures from multiple send requests into a single
list"). Outside the scheduler (a miniport completing inside its send handler, called from user
code) they go up before the completion DDI returns, merged per context the same way. Each NBL
is ``return``-ed (``return_forwarded`` to an intermediate driver that forwarded it) just before
the handler runs, counted on its binding or VC, and relinked through ``Next`` in completion
order. The flag NDIS passes up says DISPATCH_LEVEL exactly when it runs there (rule 63).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Culprit, error_class_for
from ..nbl import NET_BUFFER_LIST, iter_nbls, link_nbls
from ..ownership import Event, transition
from ..scheduler import WorkItem
from .binding import OpenBlock
from .covc import VirtualConnection, vc_from_handle, vc_send_status
from .ddi6 import SEND, SEND_COMPLETE, enter, locked, nbl_length, null_chain, passed_flags
from .drivers import DriverBlock

if TYPE_CHECKING:
    from .kernel import Ndis

_ABORT = Event.ABORT
_RETURN = Event.RETURN
_RETURN_FORWARDED = Event.RETURN_FORWARDED


def count_completions(counters: Any, nbls: list[NET_BUFFER_LIST]) -> None:
    """Count completed NBLs on a binding's or VC's SendCounters / VcCounters."""
    by_status = counters.by_status
    for nbl in nbls:
        by_status[nbl.Status] += 1
    counters.completed += len(nbls)


class Delivery:
    """NBLs waiting to go up in one Protocol[Co]SendNetBufferListsComplete call."""

    __slots__ = ("block", "context", "handler", "nbls", "owners")

    def __init__(self, block: DriverBlock, context: Any, handler: str) -> None:
        self.block = block
        self.context = context
        self.handler = handler
        self.nbls: list[NET_BUFFER_LIST] = []
        #: (binding or VC, its NBLs) in completion order
        self.owners: list[tuple[Any, list[NET_BUFFER_LIST]]] = []


class CoSend6Ddis:
    """NdisCoSendNetBufferLists, NdisMCoSendNetBufferListsComplete; completion delivery."""

    _s6_batch: dict[tuple[int, int, str], Delivery]
    _s6_flush_item: WorkItem | None

    def _init_cosend6(self) -> None:
        """Per-kernel state (called from _init_send6)."""
        #: completions collected during the running scheduler item, per (driver, context)
        self._s6_batch = {}
        self._s6_flush_item = None

    # --- NdisCoSendNetBufferLists -----------------------------------------------------------------
    @locked
    def NdisCoSendNetBufferLists(
        self,
        NdisVcHandle: VirtualConnection,
        NetBufferLists: NET_BUFFER_LIST | None,
        SendFlags: int,
    ) -> None:
        """Send a chain of NBLs on a VC; each comes back once through
        ProtocolCoSendNetBufferListsComplete. Caller: IRQL <= DISPATCH_LEVEL (R64)."""
        ndis: Ndis = self  # type: ignore[assignment]
        ddi = "NdisCoSendNetBufferLists"
        vc = vc_from_handle(NdisVcHandle, ddi, Culprit.PROTOCOL)
        sender = vc.sender
        level = enter(ndis, sender, ddi, SendFlags, SEND, "R64")
        head = NetBufferLists
        if head is None:
            raise null_chain(ddi, sender.culprit)
        count = ndis._s6_take(head, vc, sender, ddi)
        counters = vc.counters
        counters.sent += count
        counters.bytes_sent += nbl_length(iter_nbls(head))
        vc.owner.counters.sent += count
        status, rule = vc_send_status(vc)
        if rule:
            ndis.flag(
                error_class_for(sender.culprit)(
                    f"{ddi} on {vc!r} ({vc.state.name}, call {vc.call.name}): "
                    + ("NDIS completes the NBLs with " + status.name if status else "too early"),
                    rule=rule,
                    subject=vc,
                )
            )
        if status is not None:
            ndis.scheduler.trace("cosend6-refused", sender.name, vc.index, status)
            ndis._s6_abort_up(vc, head, status)
            return
        ndis._s6_submit(
            vc.adapter,
            head,
            count,
            ("cosend6", sender.name, vc.index, count),
            "MiniportCoSendNetBufferLists",
            vc.MiniportVcContext,
            passed_flags(SendFlags, SEND, level),
        )

    # --- NdisMCoSendNetBufferListsComplete --------------------------------------------------------
    @locked
    def NdisMCoSendNetBufferListsComplete(
        self,
        NdisVcHandle: VirtualConnection,
        NetBufferLists: NET_BUFFER_LIST | None,
        SendCompleteFlags: int,
    ) -> None:
        """The miniport gives back NBLs of any VCs of the adapter ``NdisVcHandle`` is on, each
        with NET_BUFFER_LIST_STATUS set (rule 50). Caller: IRQL <= DISPATCH_LEVEL (R64)."""
        ndis: Ndis = self  # type: ignore[assignment]
        ddi = "NdisMCoSendNetBufferListsComplete"
        vc = NdisVcHandle
        if type(vc) is not VirtualConnection:
            vc = vc_from_handle(vc, ddi, Culprit.MINIPORT)
        adapter = vc.adapter
        count, groups = ndis._s6_take_back(
            adapter, NetBufferLists, SendCompleteFlags, ddi, VirtualConnection
        )
        ndis.scheduler.trace("cosend6-completed", adapter.name, count, len(groups))
        self._s6_up(groups)

    @staticmethod
    def _s6_return(nbl: NET_BUFFER_LIST) -> None:
        """COMPLETING -> the sender: ``return``, or ``return_forwarded`` to a forwarder."""
        reserved = nbl.NdisReserved
        depth = reserved[0]
        if depth:
            reserved[0] = depth - 1
            transition(nbl, _RETURN_FORWARDED)
        else:
            transition(nbl, _RETURN)

    def _s6_abort_up(self, owner: Any, head: NET_BUFFER_LIST, status: int) -> None:
        """Fail a chain NDIS holds (IN_NDIS) with ``status`` and hand it up (``abort``)."""
        nbls: list[NET_BUFFER_LIST] = []
        nbl: NET_BUFFER_LIST | None = head
        while nbl is not None:
            following = nbl.Next
            transition(nbl, _ABORT)
            nbl.Status = status
            nbls.append(nbl)
            nbl = following
        self._s6_up({owner: nbls})

    def _send6_lost(self) -> list[str]:
        """NDIS 6 work not finished (for assert_nothing_lost)."""
        ndis: Ndis = self  # type: ignore[assignment]
        problems: list[str] = []
        waiting = sum(len(d.nbls) for d in ndis._s6_batch.values())
        if waiting:
            problems.append(
                f"{waiting} NBL send completion(s) collected but not yet delivered (run the "
                "scheduler)"
            )
        return problems + ndis._r6_lost()

    # --- completion routing and batching ----------------------------------------------------------
    @staticmethod
    def _s6_route(owner: Any) -> tuple[DriverBlock, Any, str]:
        """(protocol driver, context, completion handler) of a binding or VC."""
        if type(owner) is OpenBlock:
            return (
                owner.protocol,
                owner.ProtocolBindingContext,
                "ProtocolSendNetBufferListsComplete",
            )
        return owner.sender, owner.ProtocolVcContext, "ProtocolCoSendNetBufferListsComplete"

    def _s6_up(self, groups: dict[Any, list[NET_BUFFER_LIST]]) -> None:
        """Hand completed NBLs (COMPLETING) up: merged per DPC inside the scheduler, at once
        (merged per context) outside it."""
        ndis: Ndis = self  # type: ignore[assignment]
        sched = ndis.scheduler
        if sched.current is not None:
            self._s6_collect(self._s6_batch, groups)
            if self._s6_flush_item is None:
                self._s6_flush_item = sched.queue_dpc(self._s6_flush, label="nbl-complete")
            return
        pending: dict[tuple[int, int, str], Delivery] = {}
        self._s6_collect(pending, groups)
        for delivery in pending.values():
            self._s6_deliver(delivery)

    def _s6_collect(
        self,
        into: dict[tuple[int, int, str], Delivery],
        groups: dict[Any, list[NET_BUFFER_LIST]],
    ) -> None:
        for owner, nbls in groups.items():
            block, context, handler = self._s6_route(owner)
            key = (id(block), id(context), handler)
            delivery = into.get(key)
            if delivery is None:
                delivery = into[key] = Delivery(block, context, handler)
            delivery.nbls += nbls
            delivery.owners.append((owner, nbls))

    @locked
    def _s6_flush(self) -> None:
        """The completion DPC: one completion call per (protocol, context) collected."""
        self._s6_flush_item = None
        batch, self._s6_batch = self._s6_batch, {}
        for delivery in batch.values():
            self._s6_deliver(delivery)

    def _s6_deliver(self, delivery: Delivery) -> None:
        """``return`` each NBL, count it on its binding or VC, call the completion handler."""
        ndis: Ndis = self  # type: ignore[assignment]
        nbls = delivery.nbls
        head = link_nbls(nbls)
        for owner, mine in delivery.owners:
            for nbl in mine:
                ndis._s6_return(nbl)
            count_completions(owner.counters, mine)
            if type(owner) is not OpenBlock:
                count_completions(owner.owner.counters, mine)
                owner.counters.bytes_completed += nbl_length(mine)
        flags = passed_flags(0, SEND_COMPLETE, ndis.irql.level)
        block = delivery.block
        ndis.scheduler.trace("send6-complete", block.name, len(nbls))
        ndis.call(block, delivery.handler, delivery.context, head, flags)
        for owner, _ in delivery.owners:
            if type(owner) is OpenBlock:
                ndis.binding_send_done(owner)
            else:
                ndis._vc_send_done(owner)


__all__ = ["CoSend6Ddis", "Delivery", "count_completions"]
