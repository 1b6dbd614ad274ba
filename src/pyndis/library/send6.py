"""NDIS 6 send path: NdisSendNetBufferLists, its completion, cancellation, completion batching.

Theory of operation
-------------------
Grammar, per NET_BUFFER_LIST (rules 47-49)::

    NdisSendNetBufferLists(binding, chain) -> MiniportSendNetBufferLists(chain)     FIFO
        -> NdisMSendNetBufferListsComplete(any NBLs, any grouping)                  once per NBL
        -> ProtocolSendNetBufferListsComplete(context, NBLs of that context)        once per NBL

No status is returned: every NBL comes back exactly once through the completion handler, even
when NDIS refuses it (rule 48). Ownership moves through :func:`~pyndis.ownership.transition`
only: ``send`` (ALLOCATED -> IN_NDIS), ``submit`` (-> AT_MINIPORT), ``complete`` (->
COMPLETING), ``return`` (-> ALLOCATED) just before the protocol's handler runs. A binding that
is not Running (Pausing, Paused, Restarting: rule 57) gets its NBLs back at once with
NDIS_STATUS_PAUSED (``send``, ``abort``, ``return``); they never reach the miniport.

Routing. ``SourceHandle`` must be the binding handle on every NBL (rule 47: else a
ProtocolContractError naming the NBL, and nothing of the call is kept: NBLs already taken are
aborted and returned, so the caller owns the whole chain again). Completions route by
``SourceHandle``: a miniport may complete NBLs of several send calls, and of several bindings,
in one call. An NDIS 6 intermediate driver forwards an NBL it received on its miniport edge by
saving ``SourceHandle``, setting its own lower binding and sending it on (``forward``:
AT_MINIPORT -> IN_NDIS); its completion comes back to the intermediate driver (``return
forwarded``), which restores ``SourceHandle`` and completes upward. ``NdisReserved[0]`` counts
the forwards still open on an NBL, so NDIS knows which of the two ``return`` moves applies.

Batching (rule 49: "NDIS may batch several requests into one completion call"). Completions
go up through the delivery in :mod:`.cosend6`, shared with CoNDIS: merged per DPC inside the
scheduler (one ProtocolSendNetBufferListsComplete per protocol and context, for every send
call and binding sharing it), at once outside it (the re-entrant case: a miniport completing
inside its send handler).

Flags (rule 63). ``NDIS_SEND_FLAGS_DISPATCH_LEVEL`` (and the complete/receive/return twins)
set at an IRQL below DISPATCH_LEVEL is reported to the verifier (a soft violation: NDIS trusts
the flag); clear at DISPATCH is legal. What NDIS passes down or up carries the flag exactly
when it runs at DISPATCH_LEVEL. IRQL above DISPATCH_LEVEL raises IrqlError (R64: SDV rules
Irql_SendRcv_Function / Irql_Connection_Function / Irql_MCO_Function). These entry checks, and
the send lock below, are shared by every NDIS 6 data DDI (:mod:`.ddi6`).

Statuses (rule 50). The miniport sets ``NET_BUFFER_LIST_STATUS`` on every NBL to SUCCESS,
INVALID_LENGTH, RESOURCES, PAUSED, SEND_ABORTED, RESET_IN_PROGRESS or FAILURE; anything else
is a MiniportContractError (R50). **[model]** extension: MEDIA_DISCONNECTED, LOW_POWER_STATE and
ADAPTER_NOT_READY are accepted too (netvmini's "adapter not ready" completions for link down,
low power and surprise removal). NBLs given to a Pausing or Paused miniport must come back with
PAUSED (rule 58, MiniportContractError) and should come back before the send handler returns
(verifier, R58).

Threads. Every NDIS 6 DDI (and NDIS's own completion and loopback DPCs) runs under the kernel's
re-entrant send lock, the one the NDIS 5.x and CoNDIS paths take too (one lock, one order), so
several Python threads may send, complete, indicate and return at once; they are serialized.

Verifier. With the verifier on, NDIS records each NBL's NET_BUFFER chain (each NB and its
MdlChain, DataOffset, DataLength) when it submits the NBL and compares at completion: a
difference is PY-NB-CHAIN-CHANGED against the miniport (rule 49), and a NET_BUFFER of the NBL
freed meanwhile is R48 against the protocol (NBs travel with their NBL). After
NdisCancelSendNetBufferLists, an NBL with that cancel ID that fails must fail with
SEND_ABORTED (R52).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import DISPATCH_LEVEL, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK, NetBufferListCancelId
from ..errors import Culprit, NdisError, ProtocolContractError, error_class_for
from ..nbl import NET_BUFFER_LIST, iter_nbs
from ..ownership import Event, Ownership, illegal_transition, transition
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_handle
from .ddi6 import (
    SEND,
    SEND_COMPLETE,
    enter,
    irql_error,
    locked,
    not_an_nbl,
    null_chain,
    passed_flags,
    status_name,
)
from .drivers import DriverBlock, check_version
from .states import AdapterState, BindingState

if TYPE_CHECKING:
    from .kernel import Ndis

_ALLOCATED = Ownership.ALLOCATED
_AT_MINIPORT = Ownership.AT_MINIPORT
_SEND = Event.SEND
_FORWARD = Event.FORWARD
_SUBMIT = Event.SUBMIT
_COMPLETE = Event.COMPLETE
_ABORT = Event.ABORT
_RUNNING = BindingState.RUNNING
_CLOSED = BindingState.CLOSED
_CHECK_FOR_LOOPBACK = int(NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
_PAUSED = NDIS_STATUS.PAUSED
_INTERMEDIATE = Culprit.INTERMEDIATE
_PAUSED_ADAPTER = (AdapterState.PAUSING, AdapterState.PAUSED)

#: Rule 50: the statuses a miniport may complete an NBL with.
SEND_COMPLETION_STATUSES: frozenset[int] = frozenset(
    {
        NDIS_STATUS.SUCCESS,
        NDIS_STATUS.INVALID_LENGTH,
        NDIS_STATUS.RESOURCES,
        NDIS_STATUS.PAUSED,
        NDIS_STATUS.SEND_ABORTED,
        NDIS_STATUS.RESET_IN_PROGRESS,
        NDIS_STATUS.FAILURE,
    }
)
#: **[model]** statuses accepted beyond rule 50 (netvmini's "adapter not ready" completions).
MODEL_COMPLETION_STATUSES: frozenset[int] = frozenset(
    {NDIS_STATUS.MEDIA_DISCONNECTED, NDIS_STATUS.LOW_POWER_STATE, NDIS_STATUS.ADAPTER_NOT_READY}
)
_ALLOWED = SEND_COMPLETION_STATUSES | MODEL_COMPLETION_STATUSES


# --- verifier records --------------------------------------------------------------------------


def nb_snapshot(nbl: NET_BUFFER_LIST) -> tuple[tuple[Any, ...], ...]:
    """An NBL's NET_BUFFER chain as the verifier compares it (each NB and its data window)."""
    return tuple((nb, nb.MdlChain, nb.DataOffset, nb.DataLength) for nb in iter_nbs(nbl))


class Watch:
    """Verifier record of one NBL in flight: its NB chain per layer, and cancellation."""

    __slots__ = ("cancelled", "chains", "nbl")

    def __init__(self, nbl: NET_BUFFER_LIST) -> None:
        self.nbl = nbl
        self.chains: list[tuple[tuple[Any, ...], ...]] = []
        self.cancelled = False


# --- the mixin -----------------------------------------------------------------------------------


class Send6Ddis:
    """NdisSendNetBufferLists, NdisMSendNetBufferListsComplete, NdisCancelSendNetBufferLists."""

    _s6_watch: dict[int, Watch]
    _s6_paused: set[int]
    _s6_cancel_seq: int

    def _init_send6(self) -> None:
        """Per-kernel state of the NDIS 6 paths (called from Ndis.__init__)."""
        ndis: Ndis = self  # type: ignore[assignment]
        #: verifier: id(NBL) -> its record while in flight
        self._s6_watch = {}
        #: ids of NBLs given to a Pausing/Paused miniport (they must come back PAUSED)
        self._s6_paused = set()
        self._s6_cancel_seq = 0
        ndis._init_receive6()
        ndis._init_cosend6()

    # --- NdisSendNetBufferLists -------------------------------------------------------------------
    @locked
    def NdisSendNetBufferLists(
        self,
        NdisBindingHandle: OpenBlock,
        NetBufferLists: NET_BUFFER_LIST | None,
        PortNumber: int,
        SendFlags: int,
    ) -> None:
        """Send a chain of NBLs on a binding; each comes back once through
        ProtocolSendNetBufferListsComplete. Caller: IRQL <= DISPATCH_LEVEL; may run inside a
        completion or receive handler."""
        ndis: Ndis = self  # type: ignore[assignment]
        binding = NdisBindingHandle
        if type(binding) is not OpenBlock or binding.state is _CLOSED:
            binding = binding_handle(binding)
        protocol = binding.protocol
        level = enter(ndis, protocol, "NdisSendNetBufferLists", SendFlags, SEND, "R64")
        adapter = binding.adapter
        if adapter.driver.is_co:
            raise error_class_for(protocol.culprit)(
                f"NdisSendNetBufferLists on {binding!r}, a binding to a connection-oriented "
                "miniport: send on a VC with NdisCoSendNetBufferLists",
                rule="R19",
            )
        head = NetBufferLists
        if head is None:
            raise null_chain("NdisSendNetBufferLists", protocol.culprit)
        count = self._s6_take(head, binding, protocol, "NdisSendNetBufferLists")
        binding.counters.sent += count
        if binding.state is not _RUNNING:
            self._s6_refuse_binding(binding, head)
            return
        if SendFlags & _CHECK_FOR_LOOPBACK or len(adapter.bindings) > 1:
            ndis._r6_loopback(binding, head, SendFlags)
        self._s6_submit(
            adapter,
            head,
            count,
            ("send6", protocol.name, adapter.name, count),
            "MiniportSendNetBufferLists",
            adapter.MiniportAdapterContext,
            PortNumber,
            passed_flags(SendFlags, SEND, level),
        )

    def _s6_take(self, head: NET_BUFFER_LIST, owner: Any, protocol: DriverBlock, ddi: str) -> int:
        """Take ownership of a chain for a send on ``owner`` (binding or VC): rule 47 checks,
        ``send`` (or ``forward`` for an intermediate driver). On error nothing is kept."""
        forwarder = protocol.culprit is _INTERMEDIATE
        count = 0
        nbl: NET_BUFFER_LIST | None = head
        try:
            while nbl is not None:
                if type(nbl) is not NET_BUFFER_LIST:
                    raise not_an_nbl(ddi, nbl)
                following = nbl.Next
                if nbl.SourceHandle is not owner:
                    raise error_class_for(protocol.culprit)(
                        f"{ddi}: {nbl!r} has SourceHandle {nbl.SourceHandle!r}; it must be the "
                        f"handle the NBL is sent on ({owner!r})",
                        rule="R47",
                        subject=nbl,
                        history=nbl.history.entries if nbl.history is not None else None,
                    )
                if nbl.FirstNetBuffer is None:
                    raise error_class_for(protocol.culprit)(
                        f"{ddi}: {nbl!r} has no NET_BUFFER", rule="PY-EMPTY-NBL", subject=nbl
                    )
                state = nbl.ownership
                if state is _ALLOCATED:
                    transition(nbl, _SEND)
                elif state is _AT_MINIPORT and forwarder:
                    transition(nbl, _FORWARD)
                    reserved = nbl.NdisReserved
                    reserved[0] = (reserved[0] or 0) + 1
                else:
                    raise illegal_transition(nbl, _SEND, protocol.culprit)
                count += 1
                nbl = following
        except NdisError:
            self._s6_untake(head, count)
            raise
        return count

    def _s6_untake(self, head: NET_BUFFER_LIST, count: int) -> None:
        """Give the first ``count`` NBLs of a refused chain back to their sender."""
        ndis: Ndis = self  # type: ignore[assignment]
        nbl: NET_BUFFER_LIST | None = head
        for _ in range(count):
            assert nbl is not None
            following = nbl.Next
            transition(nbl, _ABORT, "send refused")
            ndis._s6_return(nbl)
            nbl = following

    def _s6_refuse_binding(self, binding: OpenBlock, head: NET_BUFFER_LIST) -> None:
        """Rule 57: a binding that is not Running gets its NBLs back at once, PAUSED."""
        ndis: Ndis = self  # type: ignore[assignment]
        if binding.state in (BindingState.PAUSED, BindingState.CLOSING):
            ndis.flag(
                error_class_for(binding.protocol.culprit)(
                    f"NdisSendNetBufferLists on {binding!r}: a paused binding must not send",
                    rule="R57",
                )
            )
        ndis.scheduler.trace("send6-refused", binding.protocol.name, binding.state.name)
        ndis._s6_abort_up(binding, head, _PAUSED)

    def _s6_submit(
        self,
        adapter: MiniportBlock,
        head: NET_BUFFER_LIST,
        count: int,
        trace: tuple[Any, ...],
        handler: str,
        context: Any,
        *rest: Any,
    ) -> None:
        """Hand a taken chain (FIFO: the chain as it came) to the miniport's send ``handler``:
        ``handler(context, head, *rest)`` (MiniportSendNetBufferLists, or
        MiniportCoSendNetBufferLists on a VC); ``trace`` is the trace record of the hand-off."""
        ndis: Ndis = self  # type: ignore[assignment]
        paused = self._s6_hand_down(adapter, head, count)
        ndis.scheduler.trace(*trace)
        ndis.call(adapter.driver, handler, context, head, *rest)
        if paused:
            self._s6_check_paused(adapter, paused)

    def _s6_hand_down(
        self, adapter: MiniportBlock, head: NET_BUFFER_LIST, count: int
    ) -> list[NET_BUFFER_LIST] | None:
        """``submit`` a taken chain to ``adapter``'s miniport (verifier: record each NB chain).
        Returns the NBLs given to a pausing or paused miniport (None if it is not)."""
        ndis: Ndis = self  # type: ignore[assignment]
        watch = self._s6_watch if ndis.verifier is not None else None
        paused: list[NET_BUFFER_LIST] | None = [] if adapter.state in _PAUSED_ADAPTER else None
        nbl: NET_BUFFER_LIST | None = head
        while nbl is not None:
            following = nbl.Next
            transition(nbl, _SUBMIT)
            if watch is not None:
                record = watch.get(id(nbl))
                if record is None:
                    record = watch[id(nbl)] = Watch(nbl)
                record.chains.append(nb_snapshot(nbl))
            if paused is not None:
                paused.append(nbl)
                self._s6_paused.add(id(nbl))
            nbl = following
        adapter.outstanding += count
        adapter.counters.sent += count
        return paused

    def _s6_check_paused(self, adapter: MiniportBlock, paused: list[NET_BUFFER_LIST]) -> None:
        """Rule 58 (verifier): a pausing or paused miniport completes new sends at once."""
        ndis: Ndis = self  # type: ignore[assignment]
        late = [n for n in paused if n.ownership is _AT_MINIPORT]
        if late:
            ndis.flag(
                error_class_for(adapter.driver.culprit)(
                    f"{adapter!r} is {adapter.state.name} and kept {len(late)} NBL(s) past its "
                    "send handler: a pausing or paused miniport completes new sends at once "
                    "with NDIS_STATUS_PAUSED",
                    rule="R58",
                    subject=late[0],
                )
            )

    # --- NdisMSendNetBufferListsComplete ----------------------------------------------------------
    @locked
    def NdisMSendNetBufferListsComplete(
        self,
        MiniportAdapterHandle: MiniportBlock,
        NetBufferLists: NET_BUFFER_LIST | None,
        SendCompleteFlags: int,
    ) -> None:
        """The miniport gives back NBLs (of any send calls and bindings of this adapter), each
        with NET_BUFFER_LIST_STATUS set. Caller: IRQL <= DISPATCH_LEVEL."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = MiniportAdapterHandle
        if type(adapter) is not MiniportBlock:
            adapter = adapter_handle(adapter)
        count, groups = self._s6_take_back(
            adapter, NetBufferLists, SendCompleteFlags, "NdisMSendNetBufferListsComplete", OpenBlock
        )
        ndis.scheduler.trace("send6-completed", adapter.name, count)
        ndis._s6_up(groups)

    def _s6_take_back(
        self,
        adapter: MiniportBlock,
        head: NET_BUFFER_LIST | None,
        flags: int,
        ddi: str,
        owner_type: type[Any],
    ) -> tuple[int, dict[Any, list[NET_BUFFER_LIST]]]:
        """What NdisM[Co]SendNetBufferListsComplete do before the NBLs go up: the entry checks,
        the whole chain checked before anything moves, every NBL ``complete``-d and grouped by
        SourceHandle, the adapter's counts. -> (how many, the groups)."""
        ndis: Ndis = self  # type: ignore[assignment]
        driver = adapter.driver
        enter(ndis, driver, ddi, flags, SEND_COMPLETE, "R64")
        if head is None:
            raise null_chain(ddi, driver.culprit)
        count = self._s6_check_completion(head, adapter, driver, ddi, owner_type)
        groups = self._s6_complete_chain(head, driver)
        adapter.outstanding -= count
        adapter.counters.completed += count
        return count, groups

    def _s6_check_completion(
        self,
        head: NET_BUFFER_LIST,
        adapter: MiniportBlock,
        driver: DriverBlock,
        ddi: str,
        owner_type: type[Any],
    ) -> int:
        """Check a whole completion chain before anything moves; returns its length.
        ``owner_type``: what every SourceHandle must be (a binding, or a VC for CoNDIS)."""
        culprit = driver.culprit
        limit = adapter.outstanding
        paused = self._s6_paused
        count = 0
        nbl: NET_BUFFER_LIST | None = head
        while nbl is not None:
            if type(nbl) is not NET_BUFFER_LIST:
                raise not_an_nbl(ddi, nbl)
            if nbl.ownership is not _AT_MINIPORT:
                raise illegal_transition(nbl, _COMPLETE, culprit)
            owner: Any = nbl.SourceHandle
            if type(owner) is not owner_type or owner.adapter is not adapter:
                what = "binding" if owner_type is OpenBlock else "VC"
                raise error_class_for(culprit)(
                    f"{ddi} on {adapter!r}: {nbl!r} has SourceHandle {owner!r}, not a {what} "
                    "of this adapter (an intermediate driver must restore the SourceHandle it "
                    "replaced before completing)",
                    rule="R47",
                    subject=nbl,
                )
            status = nbl.Status
            if status not in _ALLOWED:
                raise error_class_for(culprit)(
                    f"{ddi}: {nbl!r} completed with NET_BUFFER_LIST_STATUS "
                    f"{status_name(status)}, which rule 50 does not allow",
                    rule="R50",
                    subject=nbl,
                )
            if paused and status != _PAUSED and id(nbl) in paused:
                raise error_class_for(culprit)(
                    f"{ddi}: {nbl!r} was sent to {adapter!r} while it was pausing or paused "
                    f"and came back {status_name(status)}; it must come back NDIS_STATUS_PAUSED",
                    rule="R58",
                    subject=nbl,
                )
            count += 1
            if count > limit:
                raise error_class_for(culprit)(
                    f"{ddi} on {adapter!r}: the chain holds more NBLs than the {limit} the "
                    "miniport was given (a loop in Next, or an NBL listed twice)",
                    rule="PY-DOUBLE-COMPLETE",
                    subject=nbl,
                )
            nbl = nbl.Next
        return count

    def _s6_complete_chain(
        self, head: NET_BUFFER_LIST, driver: DriverBlock
    ) -> dict[Any, list[NET_BUFFER_LIST]]:
        """``complete`` every NBL of a checked chain; group them by SourceHandle."""
        ndis: Ndis = self  # type: ignore[assignment]
        watch = self._s6_watch if ndis.verifier is not None else None
        paused = self._s6_paused
        groups: dict[Any, list[NET_BUFFER_LIST]] = {}
        last_owner: Any = None
        last: list[NET_BUFFER_LIST] = []
        nbl: NET_BUFFER_LIST | None = head
        while nbl is not None:
            following = nbl.Next
            transition(nbl, _COMPLETE)
            if paused:
                paused.discard(id(nbl))
            if watch is not None:
                self._s6_verify(nbl, driver, watch)
            owner = nbl.SourceHandle
            if owner is not last_owner:
                last = groups.setdefault(owner, [])
                last_owner = owner
            last.append(nbl)
            nbl = following
        return groups

    def _s6_verify(
        self, nbl: NET_BUFFER_LIST, driver: DriverBlock, watch: dict[int, Watch]
    ) -> None:
        """Verifier checks at completion: NB chain unchanged (rule 49), cancel status (52)."""
        ndis: Ndis = self  # type: ignore[assignment]
        record = watch.get(id(nbl))
        if record is None or not record.chains:
            return
        before = record.chains.pop()
        if nb_snapshot(nbl) != before:
            ndis.flag(
                error_class_for(driver.culprit)(
                    f"{driver.name} completed {nbl!r} with a NET_BUFFER chain different from the "
                    "one it was given (NBs, MDL chains or data windows changed)",
                    rule="PY-NB-CHAIN-CHANGED",
                    subject=nbl,
                )
            )
        freed = [nb for nb in iter_nbs(nbl) if nb.ownership is not Ownership.ALLOCATED]
        if freed:
            # NET_BUFFERs travel with their NBL: the sender gave them up with it (rule 48)
            ndis.flag(
                ProtocolContractError(
                    f"{freed[0]!r} of {nbl!r} was freed while the NBL was in flight; the "
                    "sender owns its NET_BUFFERs again only at the send-complete call",
                    rule="R48",
                    subject=freed[0],
                )
            )
        status = nbl.Status
        if record.cancelled and status not in (NDIS_STATUS.SUCCESS, NDIS_STATUS.SEND_ABORTED):
            ndis.flag(
                error_class_for(driver.culprit)(
                    f"{driver.name} failed the cancelled {nbl!r} with {status_name(status)}; "
                    "cancelled NBLs complete with NDIS_STATUS_SEND_ABORTED",
                    rule="R52",
                    subject=nbl,
                )
            )
        if not record.chains:
            del watch[id(nbl)]

    # --- cancellation -----------------------------------------------------------------------------
    @locked
    def NdisGeneratePartialCancelId(self) -> int:
        """A value for the top byte of cancel IDs, unique among this kernel's callers."""
        self._s6_cancel_seq = (self._s6_cancel_seq + 1) & 0xFF
        return self._s6_cancel_seq

    @locked
    def NdisCancelSendNetBufferLists(self, NdisBindingHandle: OpenBlock, CancelId: Any) -> None:
        """Ask the miniport to cancel the NBLs marked with ``CancelId``
        (NDIS_SET_NET_BUFFER_LIST_CANCEL_ID): MiniportCancelSend; they complete with
        NDIS_STATUS_SEND_ABORTED (rule 52). Caller: IRQL <= DISPATCH_LEVEL."""
        ndis: Ndis = self  # type: ignore[assignment]
        binding = binding_handle(NdisBindingHandle)
        protocol = binding.protocol
        check_version(protocol, "NdisCancelSendNetBufferLists")
        level = ndis.irql.level
        if level > DISPATCH_LEVEL:
            raise irql_error("NdisCancelSendNetBufferLists", level, protocol.culprit, "R62")
        adapter = binding.adapter
        if ndis.verifier is not None:
            for record in self._s6_watch.values():
                nbl = record.nbl
                if (
                    nbl.SourceHandle is binding
                    and nbl.NetBufferListInfo[NetBufferListCancelId] == CancelId
                ):
                    record.cancelled = True
        ndis.scheduler.trace("send6-cancel", protocol.name, adapter.name)
        if adapter.driver.has("MiniportCancelSend"):
            ndis.call(
                adapter.driver, "MiniportCancelSend", adapter.MiniportAdapterContext, CancelId
            )


__all__ = [
    "MODEL_COMPLETION_STATUSES",
    "SEND_COMPLETION_STATUSES",
    "Send6Ddis",
    "Watch",
    "nb_snapshot",
]
