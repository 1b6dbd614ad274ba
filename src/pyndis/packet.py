"""NDIS 5.x packet descriptors: NDIS_PACKET, its OOB block and extension, and their macros.

Theory of operation
-------------------
An ``NDIS_PACKET`` is what an NDIS 5 protocol hands down the send path: a small header
(``Private``) that points at a chain of buffers (MDLs, :mod:`pyndis.mdl`), plus reserved areas
each layer may scribble in, plus an out-of-band block (``NDIS_PACKET_OOB_DATA``: status,
timestamps, header size, media-specific information) and a per-packet extension (the
``NDIS_PER_PACKET_INFO`` slots). In C the OOB block and the extension live in memory right after
the packet, reached through ``Private.NdisPacketOobOffset``; here they are two objects owned by
the packet (``oob`` and ``extension``), reached through ``NDIS_OOB_DATA_FROM_PACKET`` and
``NDIS_PER_PACKET_INFO_FROM_PACKET`` (defined in :mod:`pyndis.packet_oob`, re-exported here), and
``NdisPacketOobOffset`` holds the offset the C layout would have (see
:func:`pyndis.pools.NdisPacketSize`).

Packets come only from packet pools (:mod:`pyndis.pools`), which recycle the objects. The field
names are those of ndis.h; the macros and DDIs are module-level functions with the C names.

Chaining is zero-copy: ``NdisChainBufferAtFront/Back`` link MDLs into ``Private.Head/Tail`` and
record the packet in each MDL's ``packet`` back-reference (so freeing a chained buffer is
refused, rule 5). ``NdisQueryPacket`` caches Count/TotalLength/PhysicalCount and marks them
valid; every chain change clears ``ValidCounts`` (rules 9-11). The only DDI here that copies
payload bytes is ``NdisCopyFromPacketToPacket``; :func:`packet_bytes` copies for wires and
loopback.

Liveness. Every macro that needs a live packet checks one thing first: ``_DEAD[ownership]``
(one tuple index). A FREE packet raises ``PY-USE-AFTER-FREE``; a packet destroyed by
``NdisZeroMemory(packet)`` raises ``PY-ZEROED-PACKET``: zeroing a packet wipes ``Private`` (its
pool, its OOB offset, the ALLOCATED_BY_NDIS bit), which a driver meant to do only to the OOB
block, so the error points at ``NDIS_OOB_DATA_FROM_PACKET``.

``ndis_route`` is the library's completion-routing stamp (what real NDIS keeps in its reserved
area, e.g. the binding in ``Reserved[1]``): the library sets it on send and reads it on
completion; allocation clears it; nothing here uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .constants import (
    POINTER_SIZE,
    MaxPerPacketInfo,
)
from .errors import NdisError, NdisUsageError
from .mdl import (
    MDL,
    MmGetSystemAddressForMdlSafe,
    NormalPagePriority,
    mdl_chain_bytes,
    pages_spanned,
)
from .ownership import Event, History, Ownership, transition
from .packet_oob import (
    _DEAD,
    NDIS_GET_PACKET_HEADER_SIZE,
    NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_GET_PACKET_STATUS,
    NDIS_GET_PACKET_TIME_RECEIVED,
    NDIS_GET_PACKET_TIME_SENT,
    NDIS_GET_PACKET_TIME_TO_SEND,
    NDIS_OOB_DATA_FROM_PACKET,
    NDIS_PACKET_EXTENSION_FROM_PACKET,
    NDIS_PACKET_OOB_DATA,
    NDIS_PER_PACKET_INFO_FROM_PACKET,
    NDIS_SET_PACKET_HEADER_SIZE,
    NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO,
    NDIS_SET_PACKET_STATUS,
    NDIS_SET_PACKET_TIME_RECEIVED,
    NDIS_SET_PACKET_TIME_SENT,
    NDIS_SET_PACKET_TIME_TO_SEND,
    NDIS_SET_PER_PACKET_INFO_FROM_PACKET,
    check_packet,
    dead_packet_error,
)

if TYPE_CHECKING:
    from .pools import PacketPool

#: PROTOCOL_RESERVED_SIZE_IN_PACKET: the ProtocolReserved size for receive packets (rule 3).
PROTOCOL_RESERVED_SIZE_IN_PACKET = 4 * POINTER_SIZE

#: sizeof the reserved union (MacReserved[4 * sizeof(PVOID)]).
MAC_RESERVED_SIZE = 4 * POINTER_SIZE


class NDIS_PACKET_PRIVATE:
    """The NDIS-owned header of a packet (W14393 field order)."""

    __slots__ = (
        "Count",
        "Flags",
        "Head",
        "NdisPacketFlags",
        "NdisPacketOobOffset",
        "PhysicalCount",
        "Pool",
        "Tail",
        "TotalLength",
        "ValidCounts",
    )

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Every field zero / NULL / FALSE (what NdisZeroMemory leaves)."""
        self.PhysicalCount = 0
        self.TotalLength = 0
        self.Head: MDL | None = None
        self.Tail: MDL | None = None
        self.Pool: PacketPool | None = None
        self.Count = 0
        self.Flags = 0
        self.ValidCounts = False
        self.NdisPacketFlags = 0
        self.NdisPacketOobOffset = 0

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"NDIS_PACKET_PRIVATE({fields})"


class NDIS_PACKET:
    """A packet descriptor. Allocate it with ``NdisAllocatePacket``; never construct it.

    ``MacReserved`` is the 32-byte reserved union; ``MiniportReserved``, ``WrapperReserved``,
    ``MiniportReservedEx`` and ``WrapperReservedEx`` are writable views of parts of it.
    """

    __slots__ = (
        "MacReserved",
        "Private",
        "ProtocolReserved",
        "Reserved",
        "extension",
        "history",
        "ndis_route",
        "oob",
        "ownership",
    )

    def __init__(self, protocol_reserved_length: int) -> None:
        self.Private = NDIS_PACKET_PRIVATE()
        self.MacReserved = bytearray(MAC_RESERVED_SIZE)
        self.Reserved = [0, 0]
        self.ProtocolReserved = bytearray(protocol_reserved_length)
        #: the NDIS_PACKET_OOB_DATA block (reach it with NDIS_OOB_DATA_FROM_PACKET)
        self.oob = NDIS_PACKET_OOB_DATA()
        #: NDIS_PACKET_EXTENSION.NdisPacketInfo: MaxPerPacketInfo pointer-sized slots
        self.extension: list[object | None] = [None] * MaxPerPacketInfo
        self.ownership = Ownership.FREE
        self.history: History | None = None
        #: the NDIS library's completion-routing stamp (set by the library on send)
        self.ndis_route: object | None = None

    @property
    def MiniportReserved(self) -> memoryview:
        return memoryview(self.MacReserved)[0 : 2 * POINTER_SIZE]

    @property
    def WrapperReserved(self) -> memoryview:
        return memoryview(self.MacReserved)[2 * POINTER_SIZE : 4 * POINTER_SIZE]

    @property
    def MiniportReservedEx(self) -> memoryview:
        return memoryview(self.MacReserved)[0 : 3 * POINTER_SIZE]

    @property
    def WrapperReservedEx(self) -> memoryview:
        return memoryview(self.MacReserved)[3 * POINTER_SIZE : 4 * POINTER_SIZE]

    def __repr__(self) -> str:
        private = self.Private
        length = f" len={private.TotalLength}" if private.ValidCounts else ""
        return f"<NDIS_PACKET 0x{id(self):x}{length} {self.ownership.name}>"


# --- chain helpers ------------------------------------------------------------------------------

_ALLOCATED = Ownership.ALLOCATED


def _bad_mdl(packet: NDIS_PACKET, mdl: object) -> NdisError:
    """The error for chaining something that is not a free-standing live buffer."""
    if type(mdl) is not MDL:
        return NdisUsageError(f"{mdl!r} is not an NDIS_BUFFER", rule="PY-BAD-HANDLE")
    if mdl.ownership is not Ownership.ALLOCATED:
        return NdisUsageError(
            f"{mdl!r} chained to {packet!r} after it was freed",
            rule="PY-USE-AFTER-FREE",
            subject=mdl,
            history=mdl.history.entries if mdl.history is not None else None,
        )
    where = "this packet" if mdl.packet is packet else repr(mdl.packet)
    return NdisUsageError(
        f"{mdl!r} is already chained to {where}; unchain it first (a buffer belongs to one "
        "chain at a time)",
        rule="PY-BUFFER-CHAINED",
        subject=mdl,
    )


# --- chaining (rules 9 and 10) ------------------------------------------------------------------


def _adopt(packet: NDIS_PACKET, first: MDL) -> MDL:
    """Mark every MDL of a sub-chain as chained to ``packet``; return the last one.

    On a bad MDL (not a buffer, freed, or already in a chain, which also catches a cycle) the
    back-references set so far are undone and nothing is linked.
    """
    mdl = first
    adopted = 0
    while True:
        if type(mdl) is not MDL or mdl.ownership is not _ALLOCATED or mdl.packet is not None:
            error = _bad_mdl(packet, mdl)
            undo: MDL | None = first
            for _ in range(adopted):
                assert undo is not None
                undo.packet = None
                undo = undo.Next
            raise error
        mdl.packet = packet
        adopted += 1
        nxt = mdl.Next
        if nxt is None:
            return mdl
        mdl = nxt


def NdisChainBufferAtFront(Packet: NDIS_PACKET, Buffer: MDL) -> None:
    """Link a buffer (or a whole sub-chain) at the front of the packet's chain (rule 9)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisChainBufferAtFront")
    if (
        type(Buffer) is MDL
        and Buffer.Next is None
        and Buffer.packet is None
        and Buffer.ownership is _ALLOCATED
    ):  # _adopt's common case, one free-standing buffer, without the call
        Buffer.packet = Packet
        last = Buffer
    else:
        last = _adopt(Packet, Buffer)
    private = Packet.Private
    if private.Head is None:
        private.Tail = last
    last.Next = private.Head
    private.Head = Buffer
    private.ValidCounts = False


def NdisChainBufferAtBack(Packet: NDIS_PACKET, Buffer: MDL) -> None:
    """Link a buffer (or a whole sub-chain) at the back of the packet's chain (rule 9)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisChainBufferAtBack")
    if (
        type(Buffer) is MDL
        and Buffer.Next is None
        and Buffer.packet is None
        and Buffer.ownership is _ALLOCATED
    ):  # _adopt's common case, one free-standing buffer, without the call
        Buffer.packet = Packet
        last = Buffer
    else:
        last = _adopt(Packet, Buffer)
    private = Packet.Private
    if private.Head is not None:
        tail = private.Tail
        assert tail is not None
        tail.Next = Buffer
    else:
        private.Head = Buffer
    private.Tail = last
    private.ValidCounts = False


def NdisUnchainBufferAtFront(Packet: NDIS_PACKET) -> MDL | None:
    """Detach the first buffer; None for an empty packet (rule 10). Any IRQL."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisUnchainBufferAtFront")
    private = Packet.Private
    buffer = private.Head
    if buffer is None:
        return None
    private.Head = buffer.Next
    if private.Head is None:
        private.Tail = None
    private.ValidCounts = False
    buffer.Next = None
    buffer.packet = None
    return buffer


def NdisUnchainBufferAtBack(Packet: NDIS_PACKET) -> MDL | None:
    """Detach the last buffer; None for an empty packet (rule 10). Any IRQL."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisUnchainBufferAtBack")
    private = Packet.Private
    head = private.Head
    if head is None:
        return None
    if head.Next is None:
        buffer = head
        private.Head = private.Tail = None
    else:
        prev = head
        nxt = head.Next
        while nxt.Next is not None:
            prev = nxt
            nxt = nxt.Next
        buffer = nxt
        prev.Next = None
        private.Tail = prev
    private.ValidCounts = False
    buffer.packet = None
    return buffer


# --- queries (rule 11) --------------------------------------------------------------------------


def _recount(private: NDIS_PACKET_PRIVATE) -> None:
    count = total = physical = 0
    mdl = private.Head
    while mdl is not None:
        count += 1
        length = mdl.ByteCount
        total += length
        physical += pages_spanned(mdl.ByteOffset, length)
        mdl = mdl.Next
    private.Count = count
    private.TotalLength = total
    private.PhysicalCount = physical
    private.ValidCounts = True


def NdisQueryPacket(Packet: NDIS_PACKET) -> tuple[int, int, MDL | None, int]:
    """-> (PhysicalBufferCount, BufferCount, FirstBuffer, TotalPacketLength) (rule 11).

    Walks the chain only when ``ValidCounts`` is False, then caches the counts and sets it.
    """
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisQueryPacket")
    private = Packet.Private
    if not private.ValidCounts:
        _recount(private)
    return private.PhysicalCount, private.Count, private.Head, private.TotalLength


def NdisQueryPacketLength(Packet: NDIS_PACKET) -> int:
    """-> TotalPacketLength (recounts only if the cached counts are stale)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisQueryPacketLength")
    private = Packet.Private
    if not private.ValidCounts:
        _recount(private)
    return private.TotalLength


def NdisGetFirstBufferFromPacket(
    Packet: NDIS_PACKET,
) -> tuple[MDL | None, memoryview | None, int, int]:
    """-> (FirstBuffer, FirstBufferVA, FirstBufferLength, TotalBufferLength).

    Always walks the chain (it does not use or set the cached counts). Empty: (None, None, 0, 0).
    """
    return NdisGetFirstBufferFromPacketSafe(Packet, NormalPagePriority)


def NdisGetFirstBufferFromPacketSafe(
    Packet: NDIS_PACKET, Priority: int = NormalPagePriority
) -> tuple[MDL | None, memoryview | None, int, int]:
    """Like NdisGetFirstBufferFromPacket; the mapping cannot fail in the model."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisGetFirstBufferFromPacket")
    first = Packet.Private.Head
    if first is None:
        return None, None, 0, 0
    total = 0
    mdl: MDL | None = first
    while mdl is not None:
        total += mdl.ByteCount
        mdl = mdl.Next
    return first, MmGetSystemAddressForMdlSafe(first, Priority), first.ByteCount, total


def iter_packet_buffers(packet: NDIS_PACKET) -> Iterator[MDL]:
    """The buffers chained to ``packet``, first to last."""
    check_packet(packet, "iter_packet_buffers")
    mdl = packet.Private.Head
    while mdl is not None:
        yield mdl
        mdl = mdl.Next


def packet_bytes(packet: NDIS_PACKET) -> bytes:
    """A copy of the packet's data (for wires, pcap and loopback; the library's helper)."""
    check_packet(packet, "packet_bytes")
    return mdl_chain_bytes(packet.Private.Head)


# --- flags (rule 15) ----------------------------------------------------------------------------


def NdisSetPacketFlags(Packet: NDIS_PACKET, Flags: int) -> None:
    """OR ``Flags`` into Private.Flags (it never clears a bit)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisSetPacketFlags")
    Packet.Private.Flags |= Flags


def NdisClearPacketFlags(Packet: NDIS_PACKET, Flags: int) -> None:
    """Clear the bits of ``Flags`` in Private.Flags."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisClearPacketFlags")
    Packet.Private.Flags &= ~Flags


def NdisGetPacketFlags(Packet: NDIS_PACKET) -> int:
    """The Private.Flags word."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NdisGetPacketFlags")
    return Packet.Private.Flags


# --- copying and zeroing ------------------------------------------------------------------------


def _seek(mdl: MDL | None, offset: int) -> tuple[MDL | None, int]:
    """The MDL holding byte ``offset`` of a chain, and the offset inside it."""
    while mdl is not None and offset >= mdl.ByteCount:
        offset -= mdl.ByteCount
        mdl = mdl.Next
    return mdl, offset


def NdisCopyFromPacketToPacket(
    Destination: NDIS_PACKET,
    DestinationOffset: int,
    BytesToCopy: int,
    Source: NDIS_PACKET,
    SourceOffset: int,
) -> int:
    """Copy bytes between two packets' buffer chains -> BytesCopied.

    Copies at most ``BytesToCopy``, stopping at the end of either chain. The destination
    buffers must describe writable memory.
    """
    check_packet(Destination, "NdisCopyFromPacketToPacket (destination)")
    check_packet(Source, "NdisCopyFromPacketToPacket (source)")
    if min(DestinationOffset, BytesToCopy, SourceOffset) < 0:
        raise NdisUsageError(
            "NdisCopyFromPacketToPacket offsets and length are UINTs (got "
            f"{DestinationOffset}, {BytesToCopy}, {SourceOffset})",
            rule="PY-BAD-ARGUMENT",
        )
    dst, dst_off = _seek(Destination.Private.Head, DestinationOffset)
    src, src_off = _seek(Source.Private.Head, SourceOffset)
    copied = 0
    while copied < BytesToCopy and dst is not None and src is not None:
        n = min(BytesToCopy - copied, dst.ByteCount - dst_off, src.ByteCount - src_off)
        target = dst.MappedSystemVa
        if target.readonly:
            raise NdisUsageError(
                f"NdisCopyFromPacketToPacket into {dst!r}, which describes read-only memory",
                rule="PY-READONLY-BUFFER",
                subject=dst,
            )
        base_d = dst.ByteOffset + dst_off
        base_s = src.ByteOffset + src_off
        target[base_d : base_d + n] = src.MappedSystemVa[base_s : base_s + n]
        copied += n
        dst_off += n
        src_off += n
        if dst_off == dst.ByteCount:
            dst, dst_off = dst.Next, 0
        if src_off == src.ByteCount:
            src, src_off = src.Next, 0
    return copied


def NdisZeroMemory(Destination: Any, Length: int | None = None) -> None:
    """Zero memory. Three targets are meaningful in the model:

    * an ``NDIS_PACKET_OOB_DATA`` (``NDIS_OOB_DATA_FROM_PACKET(p)``): clears every OOB field,
      the documented way to reset a packet's out-of-band data;
    * a ``bytearray`` or writable ``memoryview``: zeroes ``Length`` bytes (all when omitted);
    * an ``NDIS_PACKET``: wipes ``Private`` and the reserved areas. In C this destroys the
      packet (pool, OOB offset and ALLOCATED_BY_NDIS gone); here the packet becomes DESTROYED and
      every later use raises ``PY-ZEROED-PACKET``. Buffers it chained lose their back-reference
      (they stay allocated in their buffer pool, so they show as leaks there until freed).
    """
    if isinstance(Destination, NDIS_PACKET_OOB_DATA):
        Destination.clear()
    elif isinstance(Destination, NDIS_PACKET):
        _destroy(Destination)
    elif isinstance(Destination, (bytearray, memoryview)):
        view = memoryview(Destination).cast("B")
        if view.readonly:
            raise NdisUsageError("NdisZeroMemory on read-only memory", rule="PY-READONLY-BUFFER")
        n = len(view) if Length is None else Length
        if not 0 <= n <= len(view):
            raise NdisUsageError(
                f"NdisZeroMemory of {n} bytes on {len(view)} bytes of memory",
                rule="PY-BUFFER-RANGE",
            )
        view[:n] = bytes(n)
    else:
        raise NdisUsageError(
            f"NdisZeroMemory on {type(Destination).__name__}: the model zeroes an "
            "NDIS_PACKET_OOB_DATA, a bytearray or a writable memoryview",
            rule="PY-BAD-ARGUMENT",
        )


def _destroy(packet: NDIS_PACKET) -> None:
    if packet.ownership is Ownership.DESTROYED:
        return  # already all zeroes
    if packet.ownership is Ownership.FREE:
        raise dead_packet_error(packet, "NdisZeroMemory")
    mdl = packet.Private.Head
    while mdl is not None and mdl.packet is packet:
        mdl.packet = None
        mdl = mdl.Next
    transition(packet, Event.DESTROY, "NdisZeroMemory(packet)")
    packet.Private.clear()
    packet.MacReserved[:] = bytes(MAC_RESERVED_SIZE)
    packet.Reserved[0] = packet.Reserved[1] = 0


__all__ = [
    "MAC_RESERVED_SIZE",
    "NDIS_GET_PACKET_HEADER_SIZE",
    "NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO",
    "NDIS_GET_PACKET_STATUS",
    "NDIS_GET_PACKET_TIME_RECEIVED",
    "NDIS_GET_PACKET_TIME_SENT",
    "NDIS_GET_PACKET_TIME_TO_SEND",
    "NDIS_OOB_DATA_FROM_PACKET",
    "NDIS_PACKET",
    "NDIS_PACKET_EXTENSION_FROM_PACKET",
    "NDIS_PACKET_OOB_DATA",
    "NDIS_PACKET_PRIVATE",
    "NDIS_PER_PACKET_INFO_FROM_PACKET",
    "NDIS_SET_PACKET_HEADER_SIZE",
    "NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO",
    "NDIS_SET_PACKET_STATUS",
    "NDIS_SET_PACKET_TIME_RECEIVED",
    "NDIS_SET_PACKET_TIME_SENT",
    "NDIS_SET_PACKET_TIME_TO_SEND",
    "NDIS_SET_PER_PACKET_INFO_FROM_PACKET",
    "PROTOCOL_RESERVED_SIZE_IN_PACKET",
    "NdisChainBufferAtBack",
    "NdisChainBufferAtFront",
    "NdisClearPacketFlags",
    "NdisCopyFromPacketToPacket",
    "NdisGetFirstBufferFromPacket",
    "NdisGetFirstBufferFromPacketSafe",
    "NdisGetPacketFlags",
    "NdisQueryPacket",
    "NdisQueryPacketLength",
    "NdisSetPacketFlags",
    "NdisUnchainBufferAtBack",
    "NdisUnchainBufferAtFront",
    "NdisZeroMemory",
    "check_packet",
    "dead_packet_error",
    "iter_packet_buffers",
    "packet_bytes",
]
