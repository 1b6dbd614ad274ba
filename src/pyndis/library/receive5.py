"""NDIS 5.x receive path: NdisMIndicateReceivePacket, NdisReturnPackets, NDIS's own loopback.

Theory of operation
-------------------
Grammar, per packet indicated::

    NdisMIndicateReceivePacket(adapter, [P...], n)
        -> for each binding whose filter accepts P's destination:
               ProtocolReceivePacket(ctx, P) -> ReceiveCount          (references kept)
            or ProtocolReceive(ctx, P, header, 14, lookahead, len, size)  (copy only)
        -> ProtocolReceiveComplete(ctx) once per binding that got ProtocolReceive
        -> returns; NDIS has set P's OOB Status (the MiniportReturnPacket page):
             nobody holds P .... Status SUCCESS (RESOURCES stays RESOURCES): P is the
                                 miniport's again now, and NO MiniportReturnPacket follows
             P still held ...... Status PENDING: after the last NdisReturnPackets(P),
                                 MiniportReturnPacket(ctx, P) exactly once (DISPATCH_LEVEL)

So a miniport reclaims every packet whose Status is not PENDING right after the indication
returns, and waits for MiniportReturnPacket for the others. A packet indicated with RESOURCES is
always back (no receiver may keep it). Whether P is held is decided when the indication returns:
a receiver that announced a ReceiveCount and returned every reference before that (from a nested
handler) holds nothing, and P is back at once.

Ownership: the miniport's idle packet moves ``indicate`` (ALLOCATED -> INDICATED) for the whole
indication and ``return indicated`` (-> ALLOCATED) once every holder gave it back; NDIS keeps one
:class:`Indication` per packet lent out, counting references: NDIS's own while it indicates
plus every ReceiveCount. A protocol that returns a packet more often than it kept it, returns
one that was indicated with RESOURCES (it had to copy), or keeps a reference to such a packet
breaks the contract (ProtocolContractError); returning a packet twice or one never indicated
raises the ownership errors (PY-DOUBLE-RETURN, PY-RETURN-NOT-INDICATED).

CoNDIS 5.x receives (:mod:`~pyndis.library.cosend`) follow the same rule; a packet a VC owner
kept is lent here too (:meth:`Receive5Ddis._lend5`, with its VC), so ``NdisReturnPackets`` is
one DDI for both paths and a VC's ``returned`` counter moves when the last holder returns.

**[model]** A miniport without MiniportReturnPacket cannot take packets back later, so NDIS
indicates its packets with OOB Status RESOURCES (receivers must copy). ProtocolReceive gets views
into the first buffer when it holds the whole frame; a frame spread over several buffers is
copied into one lookahead buffer first, as NDIS does. Only bindings in the RUNNING state of
NDIS 5.x connectionless protocols receive; handlers run at DISPATCH_LEVEL. On a serialized
adapter a receive handler that sends again is queued, not run inside the indicating miniport
(see :mod:`~pyndis.library.send5`).

Loopback (rules 51, 56, [model]). When the adapter reports NDIS_MAC_OPTION_NO_LOOPBACK (or the
sender asks LOOPBACK_ONLY), NDIS loops a send back itself: it copies the frame at the send
(the one payload copy this path makes), and indicates an NDIS-owned packet from its own pool,
marked NDIS_FLAGS_IS_LOOPBACK_PACKET, to every binding whose filter accepts the destination as
a loopback (``binding_accepts(..., loopback_from=sender)``: the sender too unless it set
NDIS_PROT_OPTION_NO_LOOPBACK). Such a packet follows the same rule with NDIS as its owner: one
nobody kept is freed when the indication returns, one kept (Status PENDING) when the last holder
returns it; no miniport is involved. Loopback is done for 802.3 frames of at least a full header
(14 bytes).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..constants import DISPATCH_LEVEL, NDIS_FLAGS_IS_LOOPBACK_PACKET, NdisMedium802_3
from ..errors import MiniportContractError, ProtocolContractError
from ..mdl import BufferPool, NdisAllocateBuffer, NdisFreeBuffer, mdl_chain_bytes
from ..ownership import Event, illegal_transition, transition
from ..packet import (
    NDIS_PACKET,
    PROTOCOL_RESERVED_SIZE_IN_PACKET,
    NdisChainBufferAtBack,
    NdisQueryPacketLength,
    NdisUnchainBufferAtFront,
    packet_bytes,
)
from ..pools import NdisAllocatePacket, NdisFreePacket, PacketPool
from ..status import NDIS_STATUS
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_accepts
from .drivers import check_version
from .send5 import packet_array
from .states import BindingState

if TYPE_CHECKING:
    from .covc import VirtualConnection
    from .kernel import Ndis

#: The 802.3 header NDIS gives ProtocolReceive as HeaderBuffer.
ETHERNET_HEADER_SIZE = 14

_DISPATCH = int(DISPATCH_LEVEL)
_RESOURCES = NDIS_STATUS.RESOURCES
_PENDING = NDIS_STATUS.PENDING
_SUCCESS = NDIS_STATUS.SUCCESS
_RUNNING = BindingState.RUNNING
# Event members as module globals: an Enum class attribute costs ~70 ns on CPython 3.11.
_EV_INDICATE = Event.INDICATE
_EV_RETURN_INDICATED = Event.RETURN_INDICATED
#: The loopback pool: a few descriptors, grown on demand up to the 0xFFFF cap.
_LOOPBACK_DESCRIPTORS = 16


class Indication:
    """One packet lent out by a receive indication: who owns it and who still holds it."""

    __slots__ = ("adapter", "indicating", "loopback", "packet", "refs", "resources", "seq", "vc")

    def __init__(
        self,
        seq: int,
        adapter: MiniportBlock,
        packet: NDIS_PACKET,
        resources: bool,
        loopback: bool,
        vc: VirtualConnection | None = None,
    ) -> None:
        self.seq = seq
        self.adapter = adapter
        self.packet = packet
        #: references still out (ReceiveCounts minus returns), NDIS's own excluded
        self.refs = 0
        #: NDIS still indicating it (its own reference)
        self.indicating = True
        #: indicated with NDIS_STATUS_RESOURCES: receivers must copy, it is back at once
        self.resources = resources
        #: an NDIS-owned loopback copy (NDIS frees it; no miniport involved)
        self.loopback = loopback
        #: the VC it was indicated on (CoNDIS receives), else None
        self.vc = vc

    def __repr__(self) -> str:
        return f"<indication #{self.seq} {self.packet!r} refs={self.refs}>"


def receivers(adapter: MiniportBlock, dest: bytes, sender: OpenBlock | None) -> list[OpenBlock]:
    """The bindings that receive a frame to ``dest`` (a loopback of ``sender``'s if given)."""
    return [
        b
        for b in adapter.bindings
        if b.state is _RUNNING
        and b.protocol.major == 5
        and not b.protocol.is_co
        and binding_accepts(b, dest, sender)
    ]


def frame_views(packet: NDIS_PACKET) -> tuple[memoryview, memoryview, int]:
    """(HeaderBuffer, LookAheadBuffer, PacketSize) for ProtocolReceive."""
    total = NdisQueryPacketLength(packet)
    head = packet.Private.Head
    if head is not None and head.ByteCount >= total:
        data = head.data
    else:
        data = memoryview(mdl_chain_bytes(head, 0, total))  # fragmented: NDIS's lookahead copy
    size = min(ETHERNET_HEADER_SIZE, total)
    return data[:size], data[size:total], total - size


class Receive5Ddis:
    """NdisMIndicateReceivePacket, NdisReturnPackets, loopback indications (mixed into ``Ndis``)."""

    def _init_receive5(self) -> None:
        """Per-kernel state of the 5.x receive path (set up by ``_init_send5``)."""
        self._indications5: dict[NDIS_PACKET, Indication] = {}
        self._indication5_seq = itertools.count(1)
        self._loopback_packet_pool: PacketPool | None = None
        self._loopback_buffer_pool: BufferPool | None = None

    # --- DDIs -----------------------------------------------------------------------------------
    def NdisMIndicateReceivePacket(
        self,
        MiniportAdapterHandle: MiniportBlock,
        PacketArray: Sequence[NDIS_PACKET],
        NumberOfPackets: int,
    ) -> None:
        """NdisMIndicateReceivePacket(MiniportAdapterHandle, PacketArray, NumberOfPackets).

        When this returns, each packet whose OOB Status is not NDIS_STATUS_PENDING is the
        miniport's again (nobody kept it, or it went up with RESOURCES) and no
        MiniportReturnPacket follows for it; a packet with Status PENDING comes back through
        MiniportReturnPacket once every receiver that kept it has returned it.
        """
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        driver = adapter.driver
        check_version(driver, "NdisMIndicateReceivePacket")
        ndis.irql.check_at_most("NdisMIndicateReceivePacket", driver.culprit)
        if adapter.is_co:
            raise MiniportContractError(
                f"{driver.name} is connection-oriented; it indicates receives on a VC with "
                "NdisMCoIndicateReceivePacket",
                rule="R19",
            )
        packets = packet_array(PacketArray, NumberOfPackets, "NdisMIndicateReceivePacket")
        if len({id(p) for p in packets}) != len(packets):
            raise MiniportContractError(
                f"{driver.name}: the same packet twice in one NdisMIndicateReceivePacket array",
                rule="PY-INDICATE-NOT-OWNED",
            )
        can_return = driver.has("MiniportReturnPacket")
        with ndis.send_lock:
            held = ndis._hold5(adapter)
            try:
                self._indicate5(adapter, packets, None, can_return)
            finally:
                ndis._unhold5(adapter, held)

    def NdisReturnPackets(self, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int) -> None:
        """NdisReturnPackets(PacketArray, NumberOfPackets): give back packets kept from
        ProtocolReceivePacket (one call per reference its ReceiveCount announced)."""
        ndis: Ndis = self  # type: ignore[assignment]
        caller = ndis.current_driver
        if caller is not None:
            check_version(caller, "NdisReturnPackets")
        ndis.irql.check_at_most("NdisReturnPackets", ndis.current_actor)
        packets = packet_array(PacketArray, NumberOfPackets, "NdisReturnPackets")
        with ndis.send_lock:
            for packet in packets:
                ind = self._indications5.get(packet)
                if ind is None:
                    raise illegal_transition(packet, _EV_RETURN_INDICATED)
                if ind.resources:
                    raise ProtocolContractError(
                        f"NdisReturnPackets({packet!r}), which was indicated with "
                        "NDIS_STATUS_RESOURCES: the receiver had to copy it and keeps nothing "
                        "to return",
                        rule="PY-RECEIVE-RESOURCES",
                        subject=packet,
                    )
                ind.refs -= 1
                ndis.scheduler.trace("return5", ind.adapter.name, ind.seq, ind.refs)
                if ind.refs == 0 and not ind.indicating:
                    self._release_indication5(ind)

    def _lend5(
        self,
        adapter: MiniportBlock,
        packet: NDIS_PACKET,
        refs: int,
        vc: VirtualConnection | None = None,
    ) -> None:
        """Record ``packet`` (INDICATED) as kept past its indication with ``refs`` references:
        the last NdisReturnPackets gives it to MiniportReturnPacket. CoNDIS receives use this."""
        ind = Indication(next(self._indication5_seq), adapter, packet, False, False, vc)
        ind.refs = refs
        ind.indicating = False
        self._indications5[packet] = ind

    # --- indication core ------------------------------------------------------------------------
    def _indicate5(
        self,
        adapter: MiniportBlock,
        packets: list[NDIS_PACKET],
        sender: OpenBlock | None,
        can_return: bool,
    ) -> None:
        """Lend ``packets`` to the bindings that accept them, then set each one's OOB Status:
        PENDING if a receiver still keeps it, else it is its owner's again at once (no
        MiniportReturnPacket). ``sender``: the binding whose send NDIS loops back (the packets
        are NDIS's own)."""
        ndis: Ndis = self  # type: ignore[assignment]
        loopback = sender is not None
        inds: list[Indication] = []
        for packet in packets:
            transition(packet, _EV_INDICATE)
            if not can_return:
                packet.oob.Status = _RESOURCES
            ind = Indication(
                next(self._indication5_seq),
                adapter,
                packet,
                packet.oob.Status == _RESOURCES,
                loopback,
            )
            self._indications5[packet] = ind
            inds.append(ind)
        lookahead_receivers: list[OpenBlock] = []
        try:
            with ndis.irql.at(_DISPATCH):
                for ind in inds:
                    self._deliver5(ind, sender, lookahead_receivers)
                for binding in lookahead_receivers:
                    ndis.call(
                        binding.protocol, "ProtocolReceiveComplete", binding.ProtocolBindingContext
                    )
        finally:
            for ind in inds:
                ind.indicating = False
        for ind in inds:
            if ind.refs < 0:
                raise ProtocolContractError(
                    f"{ind.packet!r} was returned {-ind.refs} time(s) more than the "
                    "ReceiveCount its receivers announced",
                    rule="PY-DOUBLE-RETURN",
                    subject=ind.packet,
                )
            if ind.refs:
                ind.packet.oob.Status = _PENDING
                ndis.scheduler.trace("kept5", adapter.name, ind.seq, ind.refs)
            else:
                self._take_back5(ind)

    def _deliver5(
        self, ind: Indication, sender: OpenBlock | None, lookahead_receivers: list[OpenBlock]
    ) -> None:
        """Indicate one packet to every binding whose filter accepts it."""
        ndis: Ndis = self  # type: ignore[assignment]
        packet = ind.packet
        head = packet.Private.Head
        dest = bytes(head.data[:6]) if head is not None and head.ByteCount >= 6 else b""
        if len(dest) < 6:
            dest = mdl_chain_bytes(head, 0, 6)
        targets = receivers(ind.adapter, dest, sender)
        ndis.scheduler.trace(
            "loopback5" if sender is not None else "indicate5",
            ind.adapter.name,
            ind.seq,
            len(targets),
        )
        for binding in targets:
            protocol = binding.protocol
            if protocol.has("ProtocolReceivePacket"):
                count = ndis.call(
                    protocol, "ProtocolReceivePacket", binding.ProtocolBindingContext, packet
                )
                count = 0 if count is None else count
                if not isinstance(count, int) or count < 0:
                    raise ProtocolContractError(
                        f"{protocol.name}'s ProtocolReceivePacket returned {count!r}; the "
                        "ReceiveCount is a number >= 0",
                        rule="PY-RECEIVE-COUNT",
                        culprit=protocol.culprit,
                    )
                if count and ind.resources:
                    raise ProtocolContractError(
                        f"{protocol.name} kept {packet!r} (ReceiveCount {count}), which was "
                        "indicated with NDIS_STATUS_RESOURCES; it must copy the data and return 0",
                        rule="PY-RECEIVE-RESOURCES",
                        culprit=protocol.culprit,
                        subject=packet,
                    )
                ind.refs += count
            elif protocol.has("ProtocolReceive"):
                header, lookahead, size = frame_views(packet)
                ndis.call(
                    protocol,
                    "ProtocolReceive",
                    binding.ProtocolBindingContext,
                    packet,
                    header,
                    len(header),
                    lookahead,
                    len(lookahead),
                    size,
                )
                if binding not in lookahead_receivers and protocol.has("ProtocolReceiveComplete"):
                    lookahead_receivers.append(binding)

    def _take_back5(self, ind: Indication) -> None:
        """Nobody holds the packet when its indication returns: it is its owner's again now,
        with a non-PENDING Status (RESOURCES stays RESOURCES) and no MiniportReturnPacket."""
        packet = ind.packet
        del self._indications5[packet]
        transition(packet, _EV_RETURN_INDICATED)
        if not ind.resources:
            packet.oob.Status = _SUCCESS
        if ind.loopback:
            _free_loopback_packet(packet)

    def _release_indication5(self, ind: Indication) -> None:
        """The last holder gave back a packet kept past its indication (Status PENDING):
        MiniportReturnPacket, or NDIS frees its own loopback copy."""
        ndis: Ndis = self  # type: ignore[assignment]
        packet = ind.packet
        del self._indications5[packet]
        transition(packet, _EV_RETURN_INDICATED)
        if ind.vc is not None:
            ind.vc.counters.returned += 1
        if ind.loopback:
            _free_loopback_packet(packet)
            return
        adapter = ind.adapter
        ndis.scheduler.trace("miniport-return5", adapter.name, ind.seq)
        with ndis.irql.at(_DISPATCH):
            ndis.call(
                adapter.driver, "MiniportReturnPacket", adapter.MiniportAdapterContext, packet
            )

    def receive5_outstanding(self) -> list[Indication]:
        """The packets still lent to receivers (for leak checks)."""
        return list(self._indications5.values())

    # --- loopback -------------------------------------------------------------------------------
    def _loopback_frame5(self, sender: OpenBlock, packet: NDIS_PACKET) -> bytes | None:
        """The copy NDIS loops back for ``packet``, or None when nobody would receive it."""
        adapter = sender.adapter
        if adapter.medium != NdisMedium802_3 or not adapter.packet_filter:
            return None  # nobody listens at all (the adapter's filter is every binding's OR)
        head = packet.Private.Head
        if head is not None and head.ByteCount >= 6:  # the usual case: one slice, no walk
            start = head.ByteOffset
            dest = bytes(head.MappedSystemVa[start : start + 6])
        else:
            dest = mdl_chain_bytes(head, 0, 6)
        if len(dest) < 6 or not receivers(adapter, dest, sender):
            return None
        frame = packet_bytes(packet)
        return frame if len(frame) >= ETHERNET_HEADER_SIZE else None

    def _indicate_loopback5(self, sender: OpenBlock, frame: bytes) -> None:
        """Indicate an NDIS-owned copy of ``frame`` as a loopback of ``sender``'s send."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = sender.adapter
        if not receivers(adapter, frame[:6], sender):
            return
        packet_pool, buffer_pool = self._loopback_pools5()
        status, packet = NdisAllocatePacket(packet_pool)
        if packet is None:
            ndis.scheduler.trace("loopback-drop5", adapter.name, status)
            return  # a receive may always be dropped
        status, buffer = NdisAllocateBuffer(buffer_pool, frame, len(frame))
        if buffer is None:
            NdisFreePacket(packet)
            ndis.scheduler.trace("loopback-drop5", adapter.name, status)
            return
        NdisChainBufferAtBack(packet, buffer)
        packet.Private.Flags |= NDIS_FLAGS_IS_LOOPBACK_PACKET
        packet.oob.HeaderSize = ETHERNET_HEADER_SIZE
        packet.oob.Status = _SUCCESS
        self._indicate5(adapter, [packet], sender, True)

    def _loopback_pools5(self) -> tuple[PacketPool, BufferPool]:
        """NDIS's own pools for loopback copies (created on first use, tagged)."""
        ndis: Ndis = self  # type: ignore[assignment]
        if self._loopback_packet_pool is None or self._loopback_buffer_pool is None:
            _, packets = ndis.NdisAllocatePacketPoolEx(
                _LOOPBACK_DESCRIPTORS, 0xFFFF, PROTOCOL_RESERVED_SIZE_IN_PACKET
            )
            _, buffers = ndis.NdisAllocateBufferPool(0xFFFF)
            assert packets is not None
            packets.tag = buffers.tag = "ndis-loopback"
            self._loopback_packet_pool, self._loopback_buffer_pool = packets, buffers
        return self._loopback_packet_pool, self._loopback_buffer_pool


def _free_loopback_packet(packet: NDIS_PACKET) -> None:
    """NDIS frees its own loopback copy: its buffers, then the descriptor."""
    buffer = NdisUnchainBufferAtFront(packet)
    while buffer is not None:
        NdisFreeBuffer(buffer)
        buffer = NdisUnchainBufferAtFront(packet)
    NdisFreePacket(packet)


__all__ = [
    "ETHERNET_HEADER_SIZE",
    "Indication",
    "Receive5Ddis",
    "frame_views",
    "receivers",
]
