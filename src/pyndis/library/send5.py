"""NDIS 5.x connectionless send path, protocol edge: NdisSend, NdisSendPackets,
NdisCancelSendPackets, completion routing, loopback decisions (miniport edge: ``send5_miniport``).

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

Ownership moves only as :func:`~pyndis.ownership.transition` makes them: ``send`` (protocol ->
NDIS), ``submit`` (NDIS -> miniport), ``requeue`` (RESOURCES), ``complete`` (miniport -> NDIS),
``abort`` (NDIS fails a packet it holds), ``return`` (NDIS -> protocol, just before
ProtocolSendComplete runs or the synchronous NdisSend returns). ``packet.ndis_route`` is the
binding (the routing stamp, like ReactOS's ``Reserved[1]``); NDIS keeps one :class:`SendRecord`
per packet in flight, with the sequence number the trace uses.

Statuses NDIS decides before the miniport sees the packet (**[model]**): binding closing or
adapter halting -> NDIS_STATUS_CLOSING; adapter resetting -> NDIS_STATUS_RESET_IN_PROGRESS; an
empty packet or one longer than the adapter's OID_GEN_MAXIMUM_TOTAL_SIZE ->
NDIS_STATUS_INVALID_PACKET. Link state is the miniport's business: whatever it returns (e.g.
NO_CABLE) goes up unchanged.

A synchronous NdisSend result: on a serialized adapter whose NDIS queue is idle, NdisSend drives
the queue itself, and a non-PENDING verdict for its packet becomes its return value. In every
other case (queued behind others, RESOURCES, deserialized) NdisSend returns PENDING. How packets
reach the miniport (the serialized queue, RESOURCES, completions inside the send handler) is in
:mod:`~pyndis.library.send5_miniport`.

Completion: ``_finish5`` hands packets back (one, or a MiniportSendPackets batch in one call),
each exactly once: it sets the OOB Status to the final status, keeps the binding's (and
adapter's) SendCounters, and calls ProtocolSendComplete at DISPATCH_LEVEL (or, for a
synchronous NdisSend result, just returns). Fast failures of NdisSendPackets are completed
after the rest of the array is queued, so a protocol that sends again from those completions
queues behind it (rule 18).

Verifier: NDIS checksums the packet's data at the send and compares when it comes back;
a difference is reported as PY-DATA-CHANGED against the protocol.

Loopback (rules 15, 51, 56) is decided here and performed by :mod:`~pyndis.library.receive5`.

Threads: every DDI here takes the kernel's re-entrant send lock for its bookkeeping and driver
calls, so several Python threads may send and complete (they are serialized, as on a
uniprocessor).

Cost: this is the hottest code of the 5.x model (a send through the null miniport is ~2.5 us
of CPython), so it is written for the interpreter, on purpose: enum members and flags come from
module globals (an Enum class attribute costs ~70 ns on CPython 3.11); each DDI tests the
common case of its checks in one expression and calls the checking helper, which raises the
precise error, only when that test fails; the per-packet ownership moves are written out for a
packet without a history, as :mod:`pyndis.ownership` describes (with the verifier on, every
move goes through ``transition()``); the per-packet handler calls write :meth:`Ndis.call`'s
actor and driver-stack bookkeeping out; the IRQL is read and set as the plain thread-local
attribute it is; try/finally stays wherever a handler may raise (it is free in 3.11 until
something does).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from ..constants import (
    DISPATCH_LEVEL,
    NDIS_FLAGS_DONT_LOOPBACK,
    NDIS_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_FLAGS_LOOPBACK_ONLY,
    NDIS_MAC_OPTION_NO_LOOPBACK,
    PacketCancelId,
)
from ..errors import NdisUsageError, ProtocolContractError
from ..ownership import MOVES, Event, Ownership, can, illegal_transition, transition
from ..packet import NDIS_PACKET, check_packet
from ..packet import NdisQueryPacketLength as _length
from ..status import NDIS_STATUS
from .adapter import MiniportBlock
from .binding import OpenBlock, binding_handle
from .drivers import check_version
from .send5_miniport import STATUS_NOT_SET, Send5Miniport, SendRecord
from .states import AdapterState, BindingState

if TYPE_CHECKING:
    from .kernel import Ndis

# Enum members and flag values as module globals: the hot paths read them per packet, and an
# Enum class attribute costs ~70 ns on CPython 3.11 (a global ~5).
_PENDING = NDIS_STATUS.PENDING
_SUCCESS = NDIS_STATUS.SUCCESS
_CLOSING = NDIS_STATUS.CLOSING
_INVALID_PACKET = NDIS_STATUS.INVALID_PACKET
_DISPATCH = int(DISPATCH_LEVEL)
_LOOPBACK_ONLY = int(NDIS_FLAGS_LOOPBACK_ONLY)
_DONT_LOOPBACK = int(NDIS_FLAGS_DONT_LOOPBACK)
_IS_LOOPBACK = int(NDIS_FLAGS_IS_LOOPBACK_PACKET)
_NO_LOOPBACK = int(NDIS_MAC_OPTION_NO_LOOPBACK)  # adapter.ndis_loops_back, without enum cost
_RUNNING = AdapterState.RUNNING
_BINDING_RUNNING = BindingState.RUNNING
_BINDING_CLOSED = BindingState.CLOSED
_ALLOCATED = Ownership.ALLOCATED
_EV_SEND = Event.SEND
_EV_ABORT = Event.ABORT
_EV_RETURN = Event.RETURN
# The moves made once per packet, written out for a packet without a history (verifier off),
# as pyndis.ownership describes: ``if p.history is None and p.ownership is FROM: p.ownership =
# TO``, else transition() (which records the move or raises the right error).
_SEND_FROM, _SEND_TO = MOVES[Event.SEND]
_RETURN_FROM, _RETURN_TO = MOVES[Event.RETURN]


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


class Send5Ddis(Send5Miniport):
    """NdisSend, NdisSendPackets, NdisMSendComplete, NdisMSendResourcesAvailable,
    NdisCancelSendPackets (mixed into ``Ndis``)."""

    def _init_send5(self) -> None:
        """Per-kernel state of the 5.x send path (called from Ndis.__init__). Also sets up the
        5.x receive path, whose loopback this path drives."""
        ndis: Ndis = self  # type: ignore[assignment]
        self._init_send5_state()
        ndis._init_receive5()

    # --- protocol edge --------------------------------------------------------------------------
    def NdisSend(self, NdisBindingHandle: OpenBlock, Packet: NDIS_PACKET) -> int:
        """NdisSend(&Status, NdisBindingHandle, Packet) -> Status (rule 16).

        Only PENDING is followed by ProtocolSendComplete; with any other status the packet is
        the protocol's again when this returns. IRQL <= DISPATCH_LEVEL.
        """
        ndis: Ndis = self  # type: ignore[assignment]
        # The common case of every check in one test; otherwise the helpers raise the precise
        # error (or, for a binding that is only not running, let NDIS refuse the packet below).
        binding = NdisBindingHandle
        if (
            type(binding) is not OpenBlock
            or binding.state is not _BINDING_RUNNING
            or binding.protocol.major != 5
            or binding.adapter.driver.major != 5
            or binding.adapter.driver.is_co
            or ndis.irql.level > _DISPATCH
        ):
            binding = self._sender5(NdisBindingHandle, "NdisSend")
        if (
            type(Packet) is not NDIS_PACKET
            or Packet.ownership is not _ALLOCATED
            or Packet.Private.Flags & _IS_LOOPBACK
        ):
            self._check_outgoing5(binding, Packet, "NdisSend")
        lock = self.send_lock
        lock.acquire()
        try:
            rec = self._accept5(binding, Packet)
            rec.sync = True
            adapter = binding.adapter
            if binding.state is _BINDING_RUNNING and adapter.state is _RUNNING:
                # _refusal5's common case, written out: only the length can refuse the packet
                private = Packet.Private
                length = private.TotalLength if private.ValidCounts else _length(Packet)
                status: int | None = None
                if length == 0 or length > adapter.max_total_size:
                    status = _INVALID_PACKET
            else:
                status = self._refusal5(binding, Packet)
            frame = None
            if status is None and (
                Packet.Private.Flags & _LOOPBACK_ONLY
                or (adapter.mac_options & _NO_LOOPBACK and adapter.packet_filter)
            ):  # NDIS may loop this one back (nothing to do for it otherwise)
                frame, only = self._loopback5(binding, Packet)
                if only:
                    status = _SUCCESS  # LOOPBACK_ONLY: looped back, never transmitted
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
        finally:
            lock.release()

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
        # The common case checked in one pass: distinct packets, each one the protocol's and
        # not marked loopback. Otherwise the per-packet checks find the first problem in array
        # order and raise it.
        ok = len({id(packet) for packet in packets}) == len(packets)
        if ok:
            for packet in packets:
                if packet.ownership is not _ALLOCATED or packet.Private.Flags & _IS_LOOPBACK:
                    ok = False
                    break
        if not ok:
            self._check_packets5(binding, packets, "NdisSendPackets")
        lock = self.send_lock
        lock.acquire()
        try:
            recs = self._accept_all5(binding, packets)
            adapter = binding.adapter
            # Nothing below runs driver code until every verdict is taken, so the binding and
            # adapter states and the loopback conditions hold for the whole array.
            refused = binding.state is not _BINDING_RUNNING or adapter.state is not _RUNNING
            max_size = adapter.max_total_size
            loops = adapter.mac_options & _NO_LOOPBACK and adapter.packet_filter
            early: list[tuple[SendRecord, int]] = []
            accepted: list[SendRecord] = []
            frames: list[bytes] = []
            for rec in recs:
                packet = rec.packet
                private = packet.Private
                if refused:
                    status = self._refusal5(binding, packet)
                else:  # _refusal5's length test, written out
                    length = private.TotalLength if private.ValidCounts else _length(packet)
                    status = _INVALID_PACKET if length == 0 or length > max_size else None
                if status is None and (private.Flags & _LOOPBACK_ONLY or loops):
                    frame, only = self._loopback5(binding, packet)
                    if frame is not None:
                        frames.append(frame)
                    if only:
                        status = _SUCCESS
                if status is None:
                    accepted.append(rec)
                else:
                    early.append((rec, status))
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
        finally:
            lock.release()

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
        with self.send_lock:
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

    # --- hooks for the adapter and binding life cycle -------------------------------------------
    def _flush_queued_sends(
        self, adapter: MiniportBlock, binding: OpenBlock | None, status: NDIS_STATUS
    ) -> None:
        """Complete with ``status`` every packet NDIS still queues for ``adapter`` (only those
        of ``binding`` if given). Called on reset, halt and close."""
        with self.send_lock:
            victims = self._unqueue5(adapter, lambda r: binding is None or r.binding is binding)
            if victims:
                adapter.ndis.scheduler.trace("flush5", adapter.name, len(victims), status)
            for rec in victims:
                self._abort5(rec, status)

    def _kick_send_queue(self, adapter: MiniportBlock) -> None:
        """Resume submitting the NDIS queue of a serialized ``adapter`` (after a reset): from a
        DPC, since the reset may complete inside the miniport."""
        with self.send_lock:
            adapter.resources_wait = False
            self._schedule_drain5(adapter)

    # --- internals: the protocol side -----------------------------------------------------------
    def _sender5(self, handle: OpenBlock, ddi: str) -> OpenBlock:
        """Validate the binding of a connectionless 5.x send."""
        ndis: Ndis = self  # type: ignore[assignment]
        binding = handle
        if type(binding) is not OpenBlock or binding.state is _BINDING_CLOSED:
            binding = binding_handle(handle)  # raises (or accepts a subclass)
        protocol = binding.protocol
        if protocol.major != 5:  # both DDIs are NDIS 5.x only (check_version says why not)
            check_version(protocol, ddi)
        irql = ndis.irql
        if irql.level > _DISPATCH:
            irql.check_at_most(ddi, protocol.culprit)
        adapter = binding.adapter
        driver = adapter.driver
        if driver.is_co:
            raise ProtocolContractError(
                f"{protocol.name} called {ddi} on {binding!r}, a binding to a connection-oriented "
                "miniport; send on a VC with NdisCoSendPackets",
                rule="R19",
                culprit=protocol.culprit,
            )
        if driver.major >= 6:
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

    def _check_packets5(self, binding: OpenBlock, packets: list[NDIS_PACKET], ddi: str) -> None:
        """The checks of an NdisSendPackets array, packet by packet, in array order."""
        seen: set[int] = set()
        for packet in packets:
            if id(packet) in seen:
                raise ProtocolContractError(
                    f"{ddi}: {packet!r} appears twice in one PacketArray "
                    "(sent again before its completion)",
                    rule="R17",
                    culprit=binding.protocol.culprit,
                    subject=packet,
                )
            seen.add(id(packet))
            self._check_outgoing5(binding, packet, ddi)

    def _accept5(self, binding: OpenBlock, packet: NDIS_PACKET) -> SendRecord:
        """NDIS takes the packet (checked already): ``send`` move, routing stamp, SendRecord,
        counters, verifier checksum."""
        ndis: Ndis = self  # type: ignore[assignment]
        if packet.history is None and packet.ownership is _SEND_FROM:
            packet.ownership = _SEND_TO  # transition(), written out (see _SEND_FROM)
        else:
            transition(packet, _EV_SEND)
        packet.ndis_route = binding
        rec = SendRecord(next(self._send5_seq), binding, packet)
        self._send5_records[packet] = rec
        binding.counters.sent += 1
        rec.adapter.counters.sent += 1
        if ndis.verifier is not None:
            rec.checksum = data_checksum(packet)
        scheduler = ndis.scheduler
        if scheduler.tracing:
            scheduler.trace("send5", binding.protocol.name, binding.adapter.name, rec.seq)
        return rec

    def _accept_all5(self, binding: OpenBlock, packets: list[NDIS_PACKET]) -> list[SendRecord]:
        """:meth:`_accept5` for a PacketArray, in one call."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = binding.adapter
        seq = self._send5_seq
        records = self._send5_records
        verifier = ndis.verifier is not None
        scheduler = ndis.scheduler
        recs: list[SendRecord] = []
        for packet in packets:
            if packet.history is None and packet.ownership is _SEND_FROM:
                packet.ownership = _SEND_TO  # transition(), written out (see _SEND_FROM)
            else:
                transition(packet, _EV_SEND)
            packet.ndis_route = binding
            rec = SendRecord(next(seq), binding, packet)
            records[packet] = rec
            if verifier:
                rec.checksum = data_checksum(packet)
            if scheduler.tracing:
                scheduler.trace("send5", binding.protocol.name, adapter.name, rec.seq)
            recs.append(rec)
        binding.counters.sent += len(recs)
        adapter.counters.sent += len(recs)
        return recs

    def _refusal5(self, binding: OpenBlock, packet: NDIS_PACKET) -> int | None:
        """The status NDIS itself fails a send with ([model]), or None to go on."""
        adapter = binding.adapter
        if binding.state is not _BINDING_RUNNING:
            return _CLOSING
        state = adapter.state
        if state is not _RUNNING:
            if state is AdapterState.RESETTING:
                return NDIS_STATUS.RESET_IN_PROGRESS
            return _CLOSING
        private = packet.Private
        length = private.TotalLength if private.ValidCounts else _length(packet)
        if length == 0 or length > adapter.max_total_size:
            return _INVALID_PACKET
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
        if flags & _DONT_LOOPBACK or not (only or binding.adapter.mac_options & _NO_LOOPBACK):
            return None, only
        ndis: Ndis = self  # type: ignore[assignment]
        return ndis._loopback_frame5(binding, packet), only

    # --- internals: completion ------------------------------------------------------------------
    def _abort5(self, rec: SendRecord, status: int) -> None:
        """NDIS fails a packet it holds (never given to the miniport, or taken back)."""
        transition(rec.packet, _EV_ABORT)
        self._finish5(((rec, status),))

    def _finish5(self, done: Iterable[tuple[SendRecord, int]]) -> None:
        """Hand COMPLETING packets back to their senders, in order, each with its final
        status: synchronously (NdisSend's return value) or through ProtocolSendComplete,
        exactly once. One call takes a whole batch (a MiniportSendPackets array): what it
        needs of the kernel is looked up once, not once per packet."""
        ndis: Ndis = self  # type: ignore[assignment]
        records = self._send5_records
        scheduler = ndis.scheduler
        irql = ndis.irql
        actors = ndis.actors
        stack = ndis.driver_stack
        for rec, status in done:
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
            counters = rec.adapter.counters
            counters.completed += 1
            counters.by_status[status] += 1
            if records.get(packet) is rec:
                del records[packet]
            if packet.history is None and packet.ownership is _RETURN_FROM:
                packet.ownership = _RETURN_TO  # transition(), written out (see _SEND_FROM)
            else:
                transition(packet, _EV_RETURN)
            if rec.sync:
                rec.final = status
                if scheduler.tracing:
                    scheduler.trace("send-return5", binding.protocol.name, rec.seq, status)
            else:
                protocol = binding.protocol
                if scheduler.tracing:
                    scheduler.trace("send-complete5", protocol.name, rec.seq, status)
                handler = protocol.handlers.get("ProtocolSendComplete")
                if handler is None:
                    handler = protocol.handler("ProtocolSendComplete")  # raises, naming it
                # Ndis.call at DISPATCH_LEVEL, written out (once per packet): the protocol is
                # the running actor while its handler runs; all restored however it ends.
                old = irql.level
                irql.level = _DISPATCH
                actors.append(protocol.culprit)
                stack.append(protocol)
                try:
                    handler(binding.ProtocolBindingContext, packet, status)
                finally:
                    stack.pop()
                    actors.pop()
                    irql.level = old
            if binding.pending_close:  # all binding_send_done does: finish a pending close
                ndis.binding_send_done(binding)

    def _unqueue5(
        self, adapter: MiniportBlock, match: Callable[[SendRecord], bool]
    ) -> list[SendRecord]:
        """Remove and return the queued records ``match(rec)`` selects (queue order kept)."""
        queue = adapter.send_queue
        victims = [r for r in queue if match(r)]
        if victims:
            keep = [r for r in queue if not match(r)]
            queue.clear()
            queue.extend(keep)
        return victims


__all__ = [
    "STATUS_NOT_SET",
    "Send5Ddis",
    "SendRecord",
    "data_checksum",
    "packet_array",
]
