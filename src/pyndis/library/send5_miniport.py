"""The miniport edge of the NDIS 5.x connectionless send path: handing packets down, the
serialized-miniport queue, NdisMSendComplete and NdisMSendResourcesAvailable.

Theory of operation
-------------------
This is the lower half of :mod:`~pyndis.library.send5` (whose docstring gives the grammar); the
mixin :class:`Send5Miniport` is a base of ``Send5Ddis``. NDIS keeps one :class:`SendRecord` per
packet in flight.

Serialized miniports (rules 20-23). One FIFO queue per adapter (``adapter.send_queue``). A drain
loop owns the adapter while ``in_send_handler`` is set: it takes one packet (MiniportSend,
called with ``Flags = NdisGetPacketFlags``) or up to ``max_send_packets`` (MiniportSendPackets,
preferred when both exist), calls the handler at DISPATCH_LEVEL, acts on the verdict, and loops.
Anything that wants to send while the loop runs (a protocol sending again from
ProtocolSendComplete, which ran inside NdisMSendComplete, which ran inside MiniportSend) only
appends to the queue: the miniport is never re-entered and the stack never grows. NDIS also
holds the adapter (``in_send_handler``) while it runs on the miniport's behalf, inside
NdisMSendComplete, NdisMSendResourcesAvailable and NdisMIndicateReceivePacket (typically called
from the miniport's own DPC): sends made meanwhile are queued and go down from a DPC afterwards,
never inside the miniport's call (the acx111 re-entrancy bug).

RESOURCES requeues the packet (MiniportSendPackets: element i and every later one) at the head,
in order, and the queue waits (``resources_wait``) for the next NdisMSendComplete or
NdisMSendResourcesAvailable. A wake that arrives *inside* the send handler, before it returns
RESOURCES, is remembered (``wake_pending``) and resubmits from a DPC: no lost wake-up. Every
refused packet stays in the queue; nothing is parked in a single slot, so a second RESOURCES
overwrites nothing.

Deserialized miniports (rules 25-27): no NDIS queue, MiniportSendPackets preferred (chunks of
``max_send_packets``) at the caller's IRQL; every packet comes back through exactly one
NdisMSendComplete. A MiniportSend that returns anything but PENDING, or RESOURCES in an OOB
status, is a MiniportContractError (R26).

Completion inside the send handler (ndiswrapper's sentinel handshake, done with records).
Before MiniportSendPackets NDIS writes :data:`STATUS_NOT_SET` into each packet's OOB Status. An
NdisMSendComplete for a packet of a handler call still running is recorded (the ``complete``
move happens at once, so a second completion fails at once) and delivered when the handler
returns, after NDIS has read the handler's verdict: that must then be PENDING (MiniportSend) or
PENDING / not set (MiniportSendPackets). A packet both completed and returned SUCCESS (or
RESOURCES) is a double completion (PY-DOUBLE-COMPLETE). Either way it completes exactly once.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

from ..constants import DISPATCH_LEVEL
from ..errors import MiniportContractError, NdisUsageError
from ..ownership import MOVES, Event, Ownership, transition
from ..packet import NDIS_PACKET
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .drivers import DriverKind, check_version
from .states import AdapterState

if TYPE_CHECKING:
    from .binding import OpenBlock
    from .kernel import Ndis

STATUS_NOT_SET = 0x4E444953

# Enum members as module globals: the hot paths read them per packet, and an Enum class
# attribute costs ~70 ns on CPython 3.11 (a global ~5).
_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES
_DISPATCH = int(DISPATCH_LEVEL)
_RUNNING = AdapterState.RUNNING
_AT_MINIPORT = Ownership.AT_MINIPORT
_MINIPORT = DriverKind.MINIPORT
_EV_SUBMIT = Event.SUBMIT
_EV_REQUEUE = Event.REQUEUE
_EV_COMPLETE = Event.COMPLETE
# The moves made once per packet, written out for a packet without a history (verifier off),
# as pyndis.ownership describes: ``if p.history is None and p.ownership is FROM: p.ownership =
# TO``, else transition() (which records the move or raises the right error).
_SUBMIT_FROM, _SUBMIT_TO = MOVES[Event.SUBMIT]
_COMPLETE_FROM, _COMPLETE_TO = MOVES[Event.COMPLETE]


class SendRecord:
    """NDIS's bookkeeping for one packet in flight on the connectionless path."""

    __slots__ = (
        "adapter",
        "binding",
        "checksum",
        "done",
        "final",
        "in_call",
        "packet",
        "seq",
        "status",
        "sync",
    )

    def __init__(self, seq: int, binding: OpenBlock, packet: NDIS_PACKET) -> None:
        self.seq = seq
        self.binding = binding
        self.adapter: MiniportBlock = binding.adapter
        self.packet = packet
        #: NdisSend is still on the stack and has not committed to PENDING: a completion now
        #: is its synchronous return value (no ProtocolSendComplete)
        self.sync = False
        #: the synchronous result handed to NdisSend
        self.final: int | None = None
        #: the packet is part of a send-handler call that has not returned yet
        self.in_call = False
        #: NdisMSendComplete arrived during that call (delivered when the call returns)
        self.done = False
        self.status = 0
        #: verifier: CRC of the data at the send
        self.checksum: int | None = None

    def __repr__(self) -> str:
        return f"<send #{self.seq} {self.packet!r}>"


#: NDIS_STATUS members by value (a dict lookup is much cheaper than the enum's constructor).
_BY_CODE: dict[int, NDIS_STATUS] = {int(s): s for s in NDIS_STATUS}


def as_status(value: object, what: str) -> int:
    """A handler's NDIS_STATUS result: the enum member when known, else the raw 32-bit code."""
    if type(value) is NDIS_STATUS:
        return value
    if type(value) is int:
        known = _BY_CODE.get(value)
        if known is not None:
            return known
    if not isinstance(value, int) or isinstance(value, bool):
        raise MiniportContractError(f"{what} returned {value!r}, not an NDIS_STATUS", rule="R21")
    code = int(value) & 0xFFFFFFFF
    return _BY_CODE.get(code, code)


def double_completion(
    adapter: MiniportBlock, rec: SendRecord, handler: str, verdict: int
) -> MiniportContractError:
    """A packet completed inside the send handler that the handler's verdict completes again."""
    packet = rec.packet
    return MiniportContractError(
        f"{adapter.driver.name} completed {packet!r} with NdisMSendComplete inside {handler} "
        f"and then gave it the status {as_status(verdict, handler)}: a packet is completed "
        "exactly once (after completing it, return PENDING)",
        rule="PY-DOUBLE-COMPLETE",
        subject=packet,
        history=packet.history.entries if packet.history is not None else None,
    )


class Send5Miniport:
    """NdisMSendComplete, NdisMSendResourcesAvailable and the hand-down machinery (a base of
    ``Send5Ddis``)."""

    #: the kernel's one send lock (made in ``Ndis.__init__``)
    send_lock: threading.RLock

    def _init_send5_state(self) -> None:
        self._send5_records: dict[NDIS_PACKET, SendRecord] = {}
        self._send5_seq = itertools.count(1)
        #: serialized adapters with a resubmission DPC queued -> whether that DPC stands for a
        #: wake that came inside the send handler (it then overrides ``resources_wait``)
        self._send5_resume: dict[MiniportBlock, bool] = {}

    # --- DDIs --------------------------------------------------------------------------
    def NdisMSendComplete(
        self, MiniportAdapterHandle: MiniportBlock, Packet: NDIS_PACKET, Status: int
    ) -> None:
        """NdisMSendComplete(MiniportAdapterHandle, Packet, Status): exactly once per packet the
        miniport accepted with PENDING; routed to the sender's ProtocolSendComplete."""
        ndis: Ndis = self  # type: ignore[assignment]
        # Once per packet: the validations are written out, each with its slow path behind one
        # test (adapter_handle, check_version, the IRQL check and as_status raise the errors).
        adapter = MiniportAdapterHandle
        if type(adapter) is not MiniportBlock or adapter.driver.kind is not _MINIPORT:
            adapter = adapter_handle(MiniportAdapterHandle)
        driver = adapter.driver
        if driver.major != 5:
            check_version(driver, "NdisMSendComplete")
        irql = ndis.irql
        if irql.level > _DISPATCH:
            irql.check_at_most("NdisMSendComplete", driver.culprit)
        if type(Status) is NDIS_STATUS:
            status: int = Status
        else:  # as_status's common case first: a known code as a plain int
            known = _BY_CODE.get(Status) if type(Status) is int else None
            status = known if known is not None else as_status(Status, "NdisMSendComplete's Status")
        if status == _PENDING:
            raise MiniportContractError(
                f"{driver.name}: NdisMSendComplete({Packet!r}) with NDIS_STATUS_PENDING; a "
                "completion carries the final status",
                rule="PY-COMPLETE-PENDING",
                subject=Packet,
            )
        if type(Packet) is not NDIS_PACKET:
            raise NdisUsageError(
                f"NdisMSendComplete: {Packet!r} is not an NDIS_PACKET", rule="PY-BAD-HANDLE"
            )
        lock = self.send_lock
        lock.acquire()
        try:
            rec = self._send5_records.get(Packet)
            if Packet.ownership is _AT_MINIPORT and (rec is None or rec.adapter is not adapter):
                where = "another adapter" if rec is not None else "another send path"
                raise MiniportContractError(
                    f"{driver.name} completed {Packet!r}, which {where} holds (never given to "
                    f"{adapter.name} through NdisSend/NdisSendPackets)",
                    rule="PY-COMPLETE-NOT-OWNED",
                    subject=Packet,
                    history=Packet.history.entries if Packet.history is not None else None,
                )
            if Packet.history is None and Packet.ownership is _COMPLETE_FROM:
                Packet.ownership = _COMPLETE_TO  # transition(), written out (see _SUBMIT_FROM)
            else:
                transition(Packet, _EV_COMPLETE)  # double completion etc. raise here
            assert rec is not None
            adapter.outstanding -= 1
            scheduler = ndis.scheduler
            if scheduler.tracing:
                scheduler.trace("complete5", adapter.name, rec.seq, status)
            if adapter.deserialized:
                # no NDIS queue to hold or wake (_hold5 and _wake5 do nothing here)
                if rec.in_call:
                    rec.done = True
                    rec.status = status
                else:
                    ndis._finish5(((rec, status),))
                return
            held = self._hold5(adapter)
            try:
                if rec.in_call:
                    rec.done = True
                    rec.status = status
                else:
                    ndis._finish5(((rec, status),))
                self._wake5(adapter)
            finally:
                self._unhold5(adapter, held)
        finally:
            lock.release()

    def NdisMSendResourcesAvailable(self, MiniportAdapterHandle: MiniportBlock) -> None:
        """NdisMSendResourcesAvailable: restart the serialized queue (rule 23). Legal with sends
        still pending; it completes nothing."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        check_version(adapter.driver, "NdisMSendResourcesAvailable")
        ndis.irql.check_at_most("NdisMSendResourcesAvailable", adapter.driver.culprit)
        with self.send_lock:
            ndis.scheduler.trace("resources-available5", adapter.name)
            held = self._hold5(adapter)
            self._wake5(adapter)
            self._unhold5(adapter, held)

    # --- internals -------------------------------------------------------------------------------
    def _call_send5(self, adapter: MiniportBlock, rec: SendRecord) -> int:
        """``submit`` one packet and call MiniportSend(ctx, Packet, Flags); returns its status."""
        ndis: Ndis = self  # type: ignore[assignment]
        packet = rec.packet
        if packet.history is None and packet.ownership is _SUBMIT_FROM:
            packet.ownership = _SUBMIT_TO  # transition(), written out (see _SUBMIT_FROM)
        else:
            transition(packet, _EV_SUBMIT)
        rec.in_call = True
        adapter.outstanding += 1
        scheduler = ndis.scheduler
        if scheduler.tracing:
            scheduler.trace("submit5", adapter.name, str(rec.seq))
        driver = adapter.driver
        try:
            handler = driver.handlers.get("MiniportSend")
            if handler is None:
                handler = driver.handler("MiniportSend")  # raises, naming the driver
            # Ndis.call, written out (once per send call): the miniport is the running actor.
            actors = ndis.actors
            stack = ndis.driver_stack
            actors.append(driver.culprit)
            stack.append(driver)
            try:
                result = handler(adapter.MiniportAdapterContext, packet, packet.Private.Flags)
            finally:
                stack.pop()
                actors.pop()
        finally:
            rec.in_call = False
        if type(result) is NDIS_STATUS:
            return result
        if type(result) is int:  # as_status's common case, without building its message
            known = _BY_CODE.get(result)
            if known is not None:
                return known
        return as_status(result, f"{driver.name}'s MiniportSend")

    def _call_send_packets5(self, adapter: MiniportBlock, recs: list[SendRecord]) -> None:
        """``submit`` the packets and call MiniportSendPackets(ctx, PacketArray, n); their
        statuses are in their OOB blocks (STATUS_NOT_SET where the miniport set none)."""
        ndis: Ndis = self  # type: ignore[assignment]
        array = [rec.packet for rec in recs]
        for packet in array:
            if packet.history is None and packet.ownership is _SUBMIT_FROM:
                packet.ownership = _SUBMIT_TO  # transition(), written out (see _SUBMIT_FROM)
            else:
                transition(packet, _EV_SUBMIT)
            packet.oob.Status = STATUS_NOT_SET
        for rec in recs:
            rec.in_call = True
        adapter.outstanding += len(recs)
        scheduler = ndis.scheduler
        if scheduler.tracing:
            scheduler.trace("submit5", adapter.name, ",".join(str(r.seq) for r in recs))
        driver = adapter.driver
        try:
            handler = driver.handlers.get("MiniportSendPackets")
            if handler is None:
                handler = driver.handler("MiniportSendPackets")  # raises, naming the driver
            actors = ndis.actors  # Ndis.call, written out (as in _call_send5)
            stack = ndis.driver_stack
            actors.append(driver.culprit)
            stack.append(driver)
            try:
                handler(adapter.MiniportAdapterContext, array, len(array))
            finally:
                stack.pop()
                actors.pop()
        finally:
            for rec in recs:
                rec.in_call = False

    def _submit_deserialized5(self, adapter: MiniportBlock, recs: list[SendRecord]) -> None:
        """Give packets to a deserialized miniport (no NDIS queue; rule 26)."""
        ndis: Ndis = self  # type: ignore[assignment]
        driver = adapter.driver
        if driver.handlers.get("MiniportSendPackets") is not None:
            step = max(1, adapter.max_send_packets)
            for start in range(0, len(recs), step):
                chunk = recs[start : start + step] if len(recs) > step else recs
                self._call_send_packets5(adapter, chunk)
                for rec in chunk:
                    if rec.packet.oob.Status == _RESOURCES:
                        raise MiniportContractError(
                            f"{driver.name} is deserialized and set NDIS_STATUS_RESOURCES on "
                            f"{rec.packet!r}; a deserialized miniport queues what it cannot send",
                            rule="R26",
                            subject=rec.packet,
                        )
                ndis._finish5([(rec, rec.status) for rec in chunk if rec.done])
            return
        for rec in recs:
            status = self._call_send5(adapter, rec)
            if status != _PENDING:
                raise MiniportContractError(
                    f"{driver.name} is deserialized and its MiniportSend returned {status} for "
                    f"{rec.packet!r}; a deserialized miniport returns PENDING and completes every "
                    "packet through NdisMSendComplete (it queues what it cannot send)",
                    rule="R26",
                    subject=rec.packet,
                )
            if rec.done:
                ndis._finish5(((rec, rec.status),))

    def _drain5(self, adapter: MiniportBlock) -> None:
        """Feed a serialized miniport from its NDIS queue, one call at a time (rule 20).

        Re-entry (a send from a completion handler, a wake from inside the send handler) finds
        ``in_send_handler`` set and leaves the work to the loop already running.
        """
        if adapter.in_send_handler:
            return
        adapter.in_send_handler = True
        try:
            queue = adapter.send_queue
            if adapter.driver.handlers.get("MiniportSendPackets") is not None:
                while queue and not adapter.resources_wait and adapter.state is _RUNNING:
                    count = min(len(queue), max(1, adapter.max_send_packets))
                    popleft = queue.popleft
                    self._submit_serialized_packets5(adapter, [popleft() for _ in range(count)])
            else:
                while queue and not adapter.resources_wait and adapter.state is _RUNNING:
                    self._submit_serialized5(adapter, queue.popleft())
        finally:
            adapter.in_send_handler = False

    def _submit_serialized5(self, adapter: MiniportBlock, rec: SendRecord) -> None:
        """One serialized MiniportSend call, and NDIS's reading of its verdict (rule 21)."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter.wake_pending = False
        irql = ndis.irql
        old = irql.level
        irql.level = _DISPATCH  # serialized handlers run at DISPATCH_LEVEL
        try:
            result = self._call_send5(adapter, rec)
        finally:
            irql.level = old
        if rec.done:  # NdisMSendComplete came while the handler ran
            if result != _PENDING:
                raise double_completion(adapter, rec, "MiniportSend", result)
            rec.sync = False
            ndis._finish5(((rec, rec.status),))
        elif result == _PENDING:
            rec.sync = False
        elif result == _RESOURCES:
            self._requeue5(adapter, [rec])
        else:
            packet = rec.packet
            if packet.history is None and packet.ownership is _COMPLETE_FROM:
                packet.ownership = _COMPLETE_TO  # transition(), written out (see _SUBMIT_FROM)
            else:
                transition(packet, _EV_COMPLETE)
            adapter.outstanding -= 1
            ndis._finish5(((rec, result),))

    def _submit_serialized_packets5(self, adapter: MiniportBlock, batch: list[SendRecord]) -> None:
        """One serialized MiniportSendPackets call, and NDIS's reading of the statuses it set
        (rules 21-22)."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter.wake_pending = False
        irql = ndis.irql
        old = irql.level
        irql.level = _DISPATCH  # serialized handlers run at DISPATCH_LEVEL
        try:
            self._call_send_packets5(adapter, batch)
        finally:
            irql.level = old
        verdicts = [rec.packet.oob.Status for rec in batch]
        refused_at = verdicts.index(_RESOURCES) if _RESOURCES in verdicts else len(batch)
        finished: list[tuple[SendRecord, int]] = []
        for i, rec in enumerate(batch):
            verdict = verdicts[i]
            if i > refused_at or (i == refused_at and not rec.done):
                if rec.done or verdict == _PENDING:
                    what = "completed" if rec.done else "set PENDING on"
                    raise MiniportContractError(
                        f"{adapter.driver.name} {what} {rec.packet!r} after refusing element "
                        f"{refused_at} of the same MiniportSendPackets call with RESOURCES; NDIS "
                        "requeues that element and every later one",
                        rule="R22",
                        subject=rec.packet,
                    )
                continue
            if rec.done:
                if verdict not in (_PENDING, STATUS_NOT_SET):
                    raise double_completion(adapter, rec, "MiniportSendPackets", verdict)
                rec.sync = False
                finished.append((rec, rec.status))
            elif verdict == _PENDING:
                rec.sync = False
            elif verdict == STATUS_NOT_SET:
                raise MiniportContractError(
                    f"{adapter.driver.name}'s MiniportSendPackets set no status on "
                    f"{rec.packet!r}; a serialized miniport sets one in every packet's OOB block",
                    rule="R22",
                    subject=rec.packet,
                )
            else:
                packet = rec.packet
                if packet.history is None and packet.ownership is _COMPLETE_FROM:
                    packet.ownership = _COMPLETE_TO  # transition(), written out
                else:
                    transition(packet, _EV_COMPLETE)
                adapter.outstanding -= 1
                finished.append((rec, as_status(verdict, "MiniportSendPackets")))
        if refused_at < len(batch):
            self._requeue5(adapter, batch[refused_at:])
        ndis._finish5(finished)

    def _requeue5(self, adapter: MiniportBlock, back: list[SendRecord]) -> None:
        """RESOURCES: the refused packets go back to the head of the queue, in order, and the
        queue waits for a wake (rules 21-22)."""
        for rec in back:
            transition(rec.packet, _EV_REQUEUE)
            rec.sync = False
        adapter.outstanding -= len(back)
        adapter.send_queue.extendleft(reversed(back))
        adapter.resources_wait = True
        scheduler = adapter.ndis.scheduler
        if scheduler.tracing:
            scheduler.trace("requeue5", adapter.name, ",".join(str(r.seq) for r in back))
        if adapter.wake_pending:
            # The miniport said "resources available" before it said RESOURCES: no lost
            # wake-up. Resubmit from a DPC, so a miniport that keeps doing both cannot spin
            # this loop.
            adapter.wake_pending = False
            self._schedule_drain5(adapter, woken=True)
        elif adapter in self._send5_resume:
            self._send5_resume[adapter] = False  # an older wake: this refusal is newer

    def _wake5(self, adapter: MiniportBlock) -> None:
        """NdisMSendComplete / NdisMSendResourcesAvailable on a serialized adapter: the queue
        may go again. The caller holds the adapter (:meth:`_hold5`), so the resubmission runs
        from the drain loop already running or from a DPC, never inside the miniport."""
        if adapter.deserialized:
            return
        adapter.resources_wait = False
        adapter.wake_pending = True

    def _hold5(self, adapter: MiniportBlock) -> bool:
        """Mark a serialized adapter busy while NDIS runs on the miniport's behalf (inside
        NdisMSendComplete, NdisMSendResourcesAvailable, NdisMIndicateReceivePacket, typically
        from the miniport's DPC): sends made meanwhile (from ProtocolSendComplete or a receive
        handler) are queued instead of re-entering the miniport. True if this call took it."""
        if adapter.deserialized or adapter.in_send_handler:
            return False
        adapter.in_send_handler = True
        return True

    def _unhold5(self, adapter: MiniportBlock, held: bool) -> None:
        """Undo :meth:`_hold5`; whatever was queued meanwhile goes down from a DPC."""
        if held:
            adapter.in_send_handler = False
            self._schedule_drain5(adapter)

    def _schedule_drain5(self, adapter: MiniportBlock, woken: bool = False) -> None:
        """Queue the resubmission DPC (once) if there is something it could send; ``woken``:
        it carries a wake that the RESOURCES just returned would otherwise hide."""
        if adapter.deserialized or not adapter.send_queue:
            return
        if adapter.resources_wait and not woken:
            return
        pending = adapter in self._send5_resume
        self._send5_resume[adapter] = woken or self._send5_resume.get(adapter, False)
        if not pending:
            adapter.ndis.scheduler.queue_dpc(self._resume5, adapter, label="send5-resume")

    def _resume5(self, adapter: MiniportBlock) -> None:
        """DPC: feed the miniport what was queued while it was busy or refusing."""
        with self.send_lock:
            if self._send5_resume.pop(adapter, False):
                adapter.resources_wait = False
            if adapter.state is _RUNNING and adapter.send_queue:
                self._drain5(adapter)


__all__ = ["STATUS_NOT_SET", "Send5Miniport", "SendRecord", "as_status"]
