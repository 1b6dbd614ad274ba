"""NDIS 5.x connectionless send path: NdisSend, NdisSendPackets, NdisMSendComplete,
NdisMSendResourcesAvailable, NdisCancelSendPackets, and the serialized-miniport queue.

Theory of operation
-------------------
Grammar, per packet (rules 16-17)::

    NdisSend(binding, P) ->
        refused by NDIS [model] ......... CLOSING | RESET_IN_PROGRESS | INVALID_PACKET (no call)
        LOOPBACK_ONLY ................... SUCCESS                                      (no call)
        serialized, NDIS queue idle: MiniportSend[Packets](P)
            -> SUCCESS, FAILURE, any non-PENDING ........ that status                  (no call)
            -> PENDING | RESOURCES ...... PENDING -> ProtocolSendComplete exactly once
        otherwise ....................... PENDING -> ProtocolSendComplete exactly once
    NdisSendPackets(binding, [P...], n) -> None; ProtocolSendComplete exactly once per packet,
        fast failures included

Ownership moves only through :func:`~pyndis.ownership.transition`: ``send`` (protocol -> NDIS),
``submit`` (NDIS -> miniport), ``requeue`` (RESOURCES), ``complete`` (miniport -> NDIS),
``abort`` (NDIS fails a packet it holds), ``return`` (NDIS -> protocol, just before
ProtocolSendComplete runs or the synchronous NdisSend returns). ``packet.ndis_route`` is the
binding (the routing stamp, like ReactOS's ``Reserved[1]``); NDIS keeps one :class:`SendRecord`
per packet in flight, with the sequence number the trace uses.

Statuses NDIS decides before the miniport sees the packet (**[model]**): binding closing or
adapter halting -> NDIS_STATUS_CLOSING; adapter resetting -> NDIS_STATUS_RESET_IN_PROGRESS; an
empty packet or one longer than the adapter's OID_GEN_MAXIMUM_TOTAL_SIZE ->
NDIS_STATUS_INVALID_PACKET. Link state is the miniport's business: whatever it returns (e.g.
NO_CABLE) goes up unchanged.

Serialized miniports (rules 20-23). One FIFO queue per adapter (``adapter.send_queue``). A drain
loop owns the adapter while ``in_send_handler`` is set: it takes one packet (MiniportSend,
called with ``Flags = NdisGetPacketFlags``) or up to ``max_send_packets`` (MiniportSendPackets,
preferred when both exist) at DISPATCH_LEVEL, acts on the result, and loops. Anything that
wants to send while the loop runs (a protocol sending again from ProtocolSendComplete, which ran
inside NdisMSendComplete, which ran inside MiniportSend) only appends to the queue: the miniport
is never re-entered and the stack never grows (the loop is iterative). RESOURCES requeues the
packet (MiniportSendPackets: element i and every later one) at the head, in order, and the
queue waits (``resources_wait``) for the next NdisMSendComplete or NdisMSendResourcesAvailable.
A wake that arrives *inside* the send handler, before it returns RESOURCES, is remembered
(``wake_pending``) and resubmits from a DPC: no lost wake-up. Every refused packet is in the
queue; nothing is parked in a single slot, so a second RESOURCES cannot overwrite anything.

Deserialized miniports (rules 25-27): no NDIS queue, MiniportSendPackets preferred (chunks of
``max_send_packets``), every packet back through exactly one NdisMSendComplete. A MiniportSend
that returns anything but PENDING, or RESOURCES in an OOB status, is a MiniportContractError
(R26).

Completion inside the send handler (ndiswrapper's sentinel handshake, done with records).
Before MiniportSendPackets NDIS writes :data:`STATUS_NOT_SET` into each packet's OOB Status. An
NdisMSendComplete for a packet of the call still running is recorded (the ``complete`` move
happens at once, so a second completion fails at once) and delivered when the handler returns,
after NDIS has read the handler's verdict: the verdict must then be PENDING (MiniportSend) or
PENDING / not set (MiniportSendPackets); a packet both completed and returned SUCCESS (or
RESOURCES) is a double completion (PY-DOUBLE-COMPLETE). Either way it is completed exactly once.

Verifier: NDIS checksums the packet's data at the send and compares when it comes back;
a difference is reported as PY-DATA-CHANGED against the protocol.

Loopback (rules 15, 51, 56) is decided here and performed by :mod:`~pyndis.library.receive5`.

Threads: every DDI here takes the kernel's re-entrant send lock for its bookkeeping and driver
calls, so several Python threads may send and complete (they are serialized, as on a
uniprocessor).
"""

from __future__ import annotations

import itertools
import threading
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..constants import (
    DISPATCH_LEVEL,
    NDIS_FLAGS_DONT_LOOPBACK,
    NDIS_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_FLAGS_LOOPBACK_ONLY,
    PacketCancelId,
)
from ..errors import MiniportContractError, NdisUsageError, ProtocolContractError
from ..ownership import Event, Ownership, can, illegal_transition, transition
from ..packet import NDIS_PACKET, NdisQueryPacketLength, check_packet
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_handle
from .drivers import check_version
from .states import AdapterState, BindingState

if TYPE_CHECKING:
    from .kernel import Ndis

#: What NDIS writes into each packet's OOB Status before MiniportSendPackets, so that "the
#: miniport set no status" can be told from any real status ("NDIS" in ASCII; not an NDIS_STATUS).
STATUS_NOT_SET = 0x4E444953

_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES
_SUCCESS = NDIS_STATUS.SUCCESS
_CLOSING = NDIS_STATUS.CLOSING
_DISPATCH = int(DISPATCH_LEVEL)
_LOOPBACK_ONLY = int(NDIS_FLAGS_LOOPBACK_ONLY)
_DONT_LOOPBACK = int(NDIS_FLAGS_DONT_LOOPBACK)
_IS_LOOPBACK = int(NDIS_FLAGS_IS_LOOPBACK_PACKET)
_RUNNING = AdapterState.RUNNING
_AT_MINIPORT = Ownership.AT_MINIPORT


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


def as_status(value: object, what: str) -> int:
    """A handler's NDIS_STATUS result: the enum member when known, else the raw 32-bit code."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise MiniportContractError(f"{what} returned {value!r}, not an NDIS_STATUS", rule="R21")
    code = int(value) & 0xFFFFFFFF
    try:
        return NDIS_STATUS(code)
    except ValueError:
        return code


def data_checksum(packet: NDIS_PACKET) -> int:
    """CRC-32 of the bytes the packet's buffer chain describes (verifier; no copy)."""
    crc = 0
    mdl = packet.Private.Head
    while mdl is not None:
        crc = zlib.crc32(mdl.data, crc)
        mdl = mdl.Next
    return crc


def packet_array(packets: Sequence[NDIS_PACKET], count: int, ddi: str) -> list[NDIS_PACKET]:
    """The first ``count`` packets of a PacketArray argument."""
    if count < 0 or count > len(packets):
        raise NdisUsageError(
            f"{ddi}: NumberOfPackets {count} but the array holds {len(packets)}",
            rule="PY-BAD-ARGUMENT",
        )
    out = list(packets[:count])
    for packet in out:
        if type(packet) is not NDIS_PACKET:
            raise NdisUsageError(f"{ddi}: {packet!r} is not an NDIS_PACKET", rule="PY-BAD-HANDLE")
    return out


class Send5Ddis:
    """NdisSend, NdisSendPackets, NdisMSendComplete, NdisMSendResourcesAvailable,
    NdisCancelSendPackets (mixed into ``Ndis``)."""

    def _init_send5(self) -> None:
        """Per-kernel state of the 5.x send path (called from Ndis.__init__). Also sets up the
        5.x receive path, whose loopback this path drives."""
        ndis: Ndis = self  # type: ignore[assignment]
        self._send5_records: dict[NDIS_PACKET, SendRecord] = {}
        self._send5_seq = itertools.count(1)
        #: one re-entrant lock for the 5.x send and receive bookkeeping of this kernel
        self._send5_lock = threading.RLock()
        #: serialized adapters with a resubmission DPC queued -> whether that DPC stands for a
        #: wake that came inside the send handler (it then overrides ``resources_wait``)
        self._send5_resume: dict[MiniportBlock, bool] = {}
        ndis._init_receive5()

    # --- protocol edge --------------------------------------------------------------------------
    def NdisSend(self, NdisBindingHandle: OpenBlock, Packet: NDIS_PACKET) -> int:
        """NdisSend(&Status, NdisBindingHandle, Packet) -> Status (rule 16).

        Only PENDING is followed by ProtocolSendComplete; with any other status the packet is
        the protocol's again when this returns. IRQL <= DISPATCH_LEVEL.
        """
        ndis: Ndis = self  # type: ignore[assignment]
        binding = self._sender5(NdisBindingHandle, "NdisSend")
        self._check_outgoing5(binding, Packet, "NdisSend")
        with self._send5_lock:
            rec = self._accept5(binding, Packet)
            rec.sync = True
            status = self._refusal5(binding, Packet)
            frame = None
            if status is None:
                frame, only = self._loopback5(binding, Packet)
                if only:
                    status = _SUCCESS  # LOOPBACK_ONLY: looped back, never transmitted
            adapter = binding.adapter
            if status is not None:
                self._abort5(rec, status)
            elif adapter.deserialized:
                rec.sync = False
                self._submit_deserialized5(adapter, [rec])
                status = _PENDING
            else:
                queue = adapter.send_queue
                rec.sync = not (queue or adapter.in_send_handler or adapter.resources_wait)
                queue.append(rec)
                self._drain5(adapter)
                rec.sync = False
                status = _PENDING if rec.final is None else rec.final
            if frame is not None:
                ndis._indicate_loopback5(binding, frame)
            return status

    def NdisSendPackets(
        self, NdisBindingHandle: OpenBlock, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int
    ) -> None:
        """NdisSendPackets(NdisBindingHandle, PacketArray, NumberOfPackets) (rule 17).

        Every packet comes back exactly once through ProtocolSendComplete, including those NDIS
        refuses at once. They reach the miniport in array order (rule 18).
        """
        ndis: Ndis = self  # type: ignore[assignment]
        binding = self._sender5(NdisBindingHandle, "NdisSendPackets")
        packets = packet_array(PacketArray, NumberOfPackets, "NdisSendPackets")
        seen: set[int] = set()
        for packet in packets:
            if id(packet) in seen:
                raise ProtocolContractError(
                    f"NdisSendPackets: {packet!r} appears twice in one PacketArray "
                    "(sent again before its completion)",
                    rule="R17",
                    culprit=binding.protocol.culprit,
                    subject=packet,
                )
            seen.add(id(packet))
            self._check_outgoing5(binding, packet, "NdisSendPackets")
        with self._send5_lock:
            recs = [self._accept5(binding, packet) for packet in packets]
            early: list[tuple[SendRecord, int]] = []
            accepted: list[SendRecord] = []
            frames: list[bytes] = []
            for rec in recs:
                status = self._refusal5(binding, rec.packet)
                if status is None:
                    frame, only = self._loopback5(binding, rec.packet)
                    if frame is not None:
                        frames.append(frame)
                    if only:
                        status = _SUCCESS
                if status is None:
                    accepted.append(rec)
                else:
                    early.append((rec, status))
            adapter = binding.adapter
            if accepted:
                if adapter.deserialized:
                    self._submit_deserialized5(adapter, accepted)
                else:
                    adapter.send_queue.extend(accepted)
                    self._drain5(adapter)
            for frame in frames:
                ndis._indicate_loopback5(binding, frame)
            # After the others are queued: a protocol that sends again from these completions
            # (or from a loopback receive) queues behind them (rule 18).
            for rec, status in early:
                self._abort5(rec, status)

    def NdisCancelSendPackets(self, NdisBindingHandle: OpenBlock, CancelId: object) -> None:
        """NdisCancelSendPackets(NdisBindingHandle, CancelId).

        Packets of this binding that NDIS still queues with NDIS_PER_PACKET_INFO PacketCancelId
        equal to ``CancelId`` complete with NDIS_STATUS_REQUEST_ABORTED; then the miniport's
        MiniportCancelSendPackets(ctx, CancelId) runs, if it has one, for those it holds.
        """
        ndis: Ndis = self  # type: ignore[assignment]
        binding = binding_handle(NdisBindingHandle)
        check_version(binding.protocol, "NdisCancelSendPackets")
        ndis.irql.check_at_most("NdisCancelSendPackets", binding.protocol.culprit)
        adapter = binding.adapter
        with self._send5_lock:
            victims = self._unqueue5(
                adapter,
                lambda r: (
                    r.binding is binding
                    and CancelId is not None
                    and r.packet.extension[PacketCancelId] == CancelId
                ),
            )
            ndis.scheduler.trace("cancel5", binding.protocol.name, adapter.name, len(victims))
            if adapter.driver.has("MiniportCancelSendPackets"):
                with ndis.irql.at(_DISPATCH):
                    ndis.call(
                        adapter.driver,
                        "MiniportCancelSendPackets",
                        adapter.MiniportAdapterContext,
                        CancelId,
                    )
            for rec in victims:
                self._abort5(rec, NDIS_STATUS.REQUEST_ABORTED)

    # --- miniport edge --------------------------------------------------------------------------
    def NdisMSendComplete(
        self, MiniportAdapterHandle: MiniportBlock, Packet: NDIS_PACKET, Status: int
    ) -> None:
        """NdisMSendComplete(MiniportAdapterHandle, Packet, Status): exactly once per packet the
        miniport accepted with PENDING; routed to the sender's ProtocolSendComplete."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        driver = adapter.driver
        check_version(driver, "NdisMSendComplete")
        ndis.irql.check_at_most("NdisMSendComplete", driver.culprit)
        status = as_status(Status, "NdisMSendComplete's Status")  # a value, not a result
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
        with self._send5_lock:
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
            transition(Packet, Event.COMPLETE)  # double completion etc. raise here
            assert rec is not None
            adapter.outstanding -= 1
            ndis.scheduler.trace("complete5", adapter.name, rec.seq, status)
            held = self._hold5(adapter)
            try:
                if rec.in_call:
                    rec.done = True
                    rec.status = status
                else:
                    self._finish5(rec, status)
                self._wake5(adapter)
            finally:
                self._unhold5(adapter, held)

    def NdisMSendResourcesAvailable(self, MiniportAdapterHandle: MiniportBlock) -> None:
        """NdisMSendResourcesAvailable: restart the serialized queue (rule 23). Legal with sends
        still pending; it completes nothing."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        check_version(adapter.driver, "NdisMSendResourcesAvailable")
        ndis.irql.check_at_most("NdisMSendResourcesAvailable", adapter.driver.culprit)
        with self._send5_lock:
            ndis.scheduler.trace("resources-available5", adapter.name)
            held = self._hold5(adapter)
            self._wake5(adapter)
            self._unhold5(adapter, held)

    # --- hooks for the adapter and binding life cycle -------------------------------------------
    def _flush_queued_sends(
        self, adapter: MiniportBlock, binding: OpenBlock | None, status: NDIS_STATUS
    ) -> None:
        """Complete with ``status`` every packet NDIS still queues for ``adapter`` (only those
        of ``binding`` if given). Called on reset, halt and close."""
        with self._send5_lock:
            victims = self._unqueue5(adapter, lambda r: binding is None or r.binding is binding)
            if victims:
                adapter.ndis.scheduler.trace("flush5", adapter.name, len(victims), status)
            for rec in victims:
                self._abort5(rec, status)

    def _kick_send_queue(self, adapter: MiniportBlock) -> None:
        """Resume submitting the NDIS queue of a serialized ``adapter`` (after a reset): from a
        DPC, since the reset may complete inside the miniport."""
        with self._send5_lock:
            adapter.resources_wait = False
            self._schedule_drain5(adapter)

    # --- internals: the protocol side -----------------------------------------------------------
    def _sender5(self, handle: OpenBlock, ddi: str) -> OpenBlock:
        """Validate the binding of a connectionless 5.x send."""
        ndis: Ndis = self  # type: ignore[assignment]
        binding = binding_handle(handle)
        protocol = binding.protocol
        check_version(protocol, ddi)
        ndis.irql.check_at_most(ddi, protocol.culprit)
        adapter = binding.adapter
        if adapter.is_co:
            raise ProtocolContractError(
                f"{protocol.name} called {ddi} on {binding!r}, a binding to a connection-oriented "
                "miniport; send on a VC with NdisCoSendPackets",
                rule="R19",
                culprit=protocol.culprit,
            )
        if adapter.driver.major >= 6:
            raise NdisUsageError(
                f"{ddi} on {binding!r}: an NDIS 5.x protocol over an NDIS 6 miniport needs the "
                "NDIS 5 <-> 6 translation layer, which this path does not model",
                rule="R60",
            )
        return binding

    def _check_outgoing5(self, binding: OpenBlock, packet: NDIS_PACKET, ddi: str) -> None:
        """Refuse a packet the protocol may not send now (before NDIS takes it)."""
        if type(packet) is not NDIS_PACKET:
            raise NdisUsageError(f"{ddi}: {packet!r} is not an NDIS_PACKET", rule="PY-BAD-HANDLE")
        check_packet(packet, ddi)
        culprit = binding.protocol.culprit
        if not can(packet, Event.SEND):
            raise illegal_transition(packet, Event.SEND, culprit)
        if packet.Private.Flags & _IS_LOOPBACK:
            raise ProtocolContractError(
                f"{binding.protocol.name} sent {packet!r} with NDIS_FLAGS_IS_LOOPBACK_PACKET set; "
                "only NDIS sets it, on loopback indications",
                rule="R15",
                culprit=culprit,
                subject=packet,
            )

    def _accept5(self, binding: OpenBlock, packet: NDIS_PACKET) -> SendRecord:
        """NDIS takes the packet: ``send`` move, routing stamp, counters, verifier checksum."""
        ndis: Ndis = self  # type: ignore[assignment]
        transition(packet, Event.SEND)
        packet.ndis_route = binding
        rec = SendRecord(next(self._send5_seq), binding, packet)
        self._send5_records[packet] = rec
        binding.counters.sent += 1
        binding.adapter.counters.sent += 1
        if ndis.verifier is not None:
            rec.checksum = data_checksum(packet)
        ndis.scheduler.trace("send5", binding.protocol.name, binding.adapter.name, rec.seq)
        return rec

    def _refusal5(self, binding: OpenBlock, packet: NDIS_PACKET) -> int | None:
        """The status NDIS itself fails a send with ([model]), or None to go on."""
        adapter = binding.adapter
        if binding.state is not BindingState.RUNNING:
            return _CLOSING
        state = adapter.state
        if state is not _RUNNING:
            if state is AdapterState.RESETTING:
                return NDIS_STATUS.RESET_IN_PROGRESS
            return _CLOSING
        length = NdisQueryPacketLength(packet)
        if length == 0 or length > adapter.max_total_size:
            return NDIS_STATUS.INVALID_PACKET
        return None

    def _loopback5(self, binding: OpenBlock, packet: NDIS_PACKET) -> tuple[bytes | None, bool]:
        """Decide NDIS's loopback for ``packet`` (rules 15, 51, 56): ``(frame, only)``, where
        ``frame`` is the copy NDIS will indicate (None: no loopback by NDIS) and ``only`` says the
        packet must not reach the miniport (NDIS_FLAGS_LOOPBACK_ONLY).

        The copy is taken now, before the miniport or the sender can touch the data again; it
        is indicated after the packet is queued or submitted, so a receiver that sends from
        its receive handler queues behind it. **[model]** LOOPBACK_ONLY is honoured by NDIS
        even on a NIC that loops back itself: the frame must not reach the wire.
        """
        flags = packet.Private.Flags
        only = bool(flags & _LOOPBACK_ONLY)
        if flags & _DONT_LOOPBACK or not (only or binding.adapter.ndis_loops_back):
            return None, only
        ndis: Ndis = self  # type: ignore[assignment]
        return ndis._loopback_frame5(binding, packet), only

    # --- internals: completion ------------------------------------------------------------------
    def _abort5(self, rec: SendRecord, status: int) -> None:
        """NDIS fails a packet it holds (never given to the miniport, or taken back)."""
        transition(rec.packet, Event.ABORT)
        self._finish5(rec, status)

    def _finish5(self, rec: SendRecord, status: int) -> None:
        """Hand a COMPLETING packet back to its sender: synchronously (NdisSend's return value)
        or through ProtocolSendComplete, exactly once."""
        ndis: Ndis = self  # type: ignore[assignment]
        packet = rec.packet
        binding = rec.binding
        packet.oob.Status = status
        if rec.checksum is not None and data_checksum(packet) != rec.checksum:
            ndis.flag(
                ProtocolContractError(
                    f"the data of {packet!r} changed while NDIS owned it (between "
                    "NdisSend(Packets) and its completion)",
                    rule="PY-DATA-CHANGED",
                    culprit=binding.protocol.culprit,
                    subject=packet,
                    history=packet.history.entries if packet.history is not None else None,
                )
            )
        counters = binding.counters
        counters.completed += 1
        counters.by_status[status] += 1
        rec.adapter.counters.completed += 1
        rec.adapter.counters.by_status[status] += 1
        if self._send5_records.get(packet) is rec:
            del self._send5_records[packet]
        transition(packet, Event.RETURN)
        if rec.sync:
            rec.final = status
            ndis.scheduler.trace("send-return5", binding.protocol.name, rec.seq, status)
        else:
            ndis.scheduler.trace("send-complete5", binding.protocol.name, rec.seq, status)
            with ndis.irql.at(_DISPATCH):
                ndis.call(
                    binding.protocol,
                    "ProtocolSendComplete",
                    binding.ProtocolBindingContext,
                    packet,
                    status,
                )
        ndis.binding_send_done(binding)

    def _unqueue5(self, adapter: MiniportBlock, match: object) -> list[SendRecord]:
        """Remove and return the queued records ``match(rec)`` selects (queue order kept)."""
        assert callable(match)
        queue = adapter.send_queue
        victims = [r for r in queue if match(r)]
        if victims:
            keep = [r for r in queue if not match(r)]
            queue.clear()
            queue.extend(keep)
        return victims

    # --- internals: the miniport side -----------------------------------------------------------
    def _hand_down5(self, adapter: MiniportBlock, recs: list[SendRecord], packets: bool) -> int:
        """``submit`` the packets and call the send handler; returns MiniportSend's status (or
        PENDING for MiniportSendPackets, whose statuses are in the OOB blocks)."""
        ndis: Ndis = self  # type: ignore[assignment]
        for rec in recs:
            transition(rec.packet, Event.SUBMIT)
            rec.in_call = True
            if packets:
                rec.packet.oob.Status = STATUS_NOT_SET
        adapter.outstanding += len(recs)
        if ndis.scheduler.tracing:
            ndis.scheduler.trace("submit5", adapter.name, ",".join(str(r.seq) for r in recs))
        driver = adapter.driver
        try:
            if packets:
                array = [rec.packet for rec in recs]
                ndis.call(
                    driver, "MiniportSendPackets", adapter.MiniportAdapterContext, array, len(array)
                )
                return _PENDING
            packet = recs[0].packet
            result = ndis.call(
                driver, "MiniportSend", adapter.MiniportAdapterContext, packet, packet.Private.Flags
            )
            return as_status(result, f"{driver.name}'s MiniportSend")
        finally:
            for rec in recs:
                rec.in_call = False

    def _submit_deserialized5(self, adapter: MiniportBlock, recs: list[SendRecord]) -> None:
        """Give packets to a deserialized miniport (no NDIS queue; rule 26)."""
        driver = adapter.driver
        if driver.has("MiniportSendPackets"):
            step = max(1, adapter.max_send_packets)
            for start in range(0, len(recs), step):
                chunk = recs[start : start + step]
                self._hand_down5(adapter, chunk, True)
                for rec in chunk:
                    if rec.packet.oob.Status == _RESOURCES:
                        raise MiniportContractError(
                            f"{driver.name} is deserialized and set NDIS_STATUS_RESOURCES on "
                            f"{rec.packet!r}; a deserialized miniport queues what it cannot send",
                            rule="R26",
                            subject=rec.packet,
                        )
                for rec in chunk:
                    if rec.done:
                        self._finish5(rec, rec.status)
            return
        for rec in recs:
            status = self._hand_down5(adapter, [rec], False)
            if status != _PENDING:
                raise MiniportContractError(
                    f"{driver.name} is deserialized and its MiniportSend returned {status} for "
                    f"{rec.packet!r}; a deserialized miniport returns PENDING and completes every "
                    "packet through NdisMSendComplete (it queues what it cannot send)",
                    rule="R26",
                    subject=rec.packet,
                )
            if rec.done:
                self._finish5(rec, rec.status)

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
            packets = adapter.driver.has("MiniportSendPackets")
            while queue and not adapter.resources_wait and adapter.state is _RUNNING:
                count = min(len(queue), max(1, adapter.max_send_packets)) if packets else 1
                batch = [queue.popleft() for _ in range(count)]
                self._submit_serialized5(adapter, batch, packets)
        finally:
            adapter.in_send_handler = False

    def _submit_serialized5(
        self, adapter: MiniportBlock, batch: list[SendRecord], packets: bool
    ) -> None:
        """One serialized send call, and NDIS's reading of its verdict (rules 21-22)."""
        ndis: Ndis = self  # type: ignore[assignment]
        driver = adapter.driver
        handler = "MiniportSendPackets" if packets else "MiniportSend"
        adapter.wake_pending = False
        with ndis.irql.at(_DISPATCH):
            result = self._hand_down5(adapter, batch, packets)
        verdicts = [rec.packet.oob.Status for rec in batch] if packets else [result]
        refused_at = next((i for i, v in enumerate(verdicts) if v == _RESOURCES), len(batch))
        finished: list[tuple[SendRecord, int]] = []
        for i, rec in enumerate(batch):
            verdict = verdicts[i]
            if i > refused_at or (i == refused_at and not rec.done):
                if rec.done or verdict == _PENDING:
                    what = "completed" if rec.done else "set PENDING on"
                    raise MiniportContractError(
                        f"{driver.name} {what} {rec.packet!r} after refusing element "
                        f"{refused_at} of the same {handler} call with RESOURCES; NDIS requeues "
                        "that element and every later one",
                        rule="R22",
                        subject=rec.packet,
                    )
                continue
            if rec.done:  # NdisMSendComplete came while the handler ran
                if verdict in (_PENDING, STATUS_NOT_SET):
                    rec.sync = False
                    finished.append((rec, rec.status))
                    continue
                raise MiniportContractError(
                    f"{driver.name} completed {rec.packet!r} with NdisMSendComplete inside "
                    f"{handler} and then gave it the status {as_status(verdict, handler)}: a "
                    "packet is completed exactly once (after completing it, return PENDING)",
                    rule="PY-DOUBLE-COMPLETE",
                    subject=rec.packet,
                    history=rec.packet.history.entries if rec.packet.history else None,
                )
            if verdict == _PENDING:
                rec.sync = False
                continue
            if verdict == STATUS_NOT_SET:
                raise MiniportContractError(
                    f"{driver.name}'s MiniportSendPackets set no status on {rec.packet!r}; a "
                    "serialized miniport sets one in every packet's OOB block",
                    rule="R22",
                    subject=rec.packet,
                )
            transition(rec.packet, Event.COMPLETE)
            adapter.outstanding -= 1
            finished.append((rec, as_status(verdict, handler)))
        if refused_at < len(batch):
            back = batch[refused_at:]
            for rec in back:
                transition(rec.packet, Event.REQUEUE)
                rec.sync = False
            adapter.outstanding -= len(back)
            adapter.send_queue.extendleft(reversed(back))
            adapter.resources_wait = True
            if ndis.scheduler.tracing:
                ndis.scheduler.trace("requeue5", adapter.name, ",".join(str(r.seq) for r in back))
            if adapter.wake_pending:
                # The miniport said "resources available" before it said RESOURCES: no lost
                # wake-up. Resubmit from a DPC, so a miniport that keeps doing both cannot spin
                # this loop.
                adapter.wake_pending = False
                self._schedule_drain5(adapter, woken=True)
            elif adapter in self._send5_resume:
                self._send5_resume[adapter] = False  # an older wake: this refusal is newer
        for rec, status in finished:
            self._finish5(rec, status)

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
        with self._send5_lock:
            if self._send5_resume.pop(adapter, False):
                adapter.resources_wait = False
            if adapter.state is _RUNNING and adapter.send_queue:
                self._drain5(adapter)


__all__ = ["STATUS_NOT_SET", "Send5Ddis", "SendRecord", "as_status", "data_checksum"]
