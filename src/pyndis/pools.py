"""NDIS 5 packet pools: NdisAllocatePacketPool(Ex), NdisAllocatePacket, NdisFreePacket.

Theory of operation
-------------------
A packet pool hands out at most ``capacity = NumberOfDescriptors + NumberOfOverflowDescriptors``
packets at once (the sum never exceeds 0xFFFF; rules 1 and 2). An empty pool makes
``NdisAllocatePacket`` return ``NDIS_STATUS_RESOURCES`` and no packet, until a packet is freed.

Descriptors are recycled. The pool creates an ``NDIS_PACKET`` only when its free list is empty
and fewer than ``capacity`` exist; a freed packet goes on the free list and is handed out again,
so after warm-up allocation creates no object. Because a recycled packet still carries its last
life, allocation resets everything rule 4 names: ``Private`` zeroed except ``Pool`` (this pool),
``NdisPacketFlags`` (fPACKET_ALLOCATED_BY_NDIS) and ``NdisPacketOobOffset``; the reserved areas,
the OOB block and the per-packet extension zeroed; ``ndis_route`` cleared; a fresh ``history``
(None when the verifier is off) recording the allocation. ``ValidCounts`` starts FALSE (the
bytes are zero), so the first ``NdisQueryPacket`` walks the empty chain.

Ownership moves only as :func:`pyndis.ownership.transition` makes them: FREE -> ALLOCATED on
allocation, ALLOCATED -> FREE on ``NdisFreePacket`` (written out for a packet without a
history, as :mod:`pyndis.ownership` describes; with the verifier on, recorded). Freeing a
packet NDIS still owns therefore raises R48, freeing twice PY-DOUBLE-FREE, and a packet zeroed
by ``NdisZeroMemory`` raises PY-ZEROED-PACKET (and stays outstanding: it can never go back to
its pool). A packet returns to ``packet.Private.Pool``, the pool that made it, so packets of
two pools cannot be mixed up.

Threads. Allocate and free take the pool's ``threading.Lock`` around the free-list pop/append,
the counters and (on free) the ownership move, so several Python threads may share a pool.
Measured with ``benchmarks/bench_descriptors5.py`` (CPython 3.11, the project VM): one
uncontended acquire/release costs about 70-80 ns (taken with ``acquire()``/``try``/
``release()``, cheaper than a ``with`` block), so the two of an allocate+free are roughly 15%
of its ~0.9 us. That buys exact counters and no double hand-out under threads: kept.

Cost. Allocation resets every field rule 4 names, comparing the byte areas and the extension
before writing them (most come back clean); the two DDIs call no helper on their common path;
enum members come from module globals; the IRQL is read as a plain thread-local attribute.

Lost buffers. ``NdisReinitializePacket`` sets only ``Head = NULL`` and ``ValidCounts = FALSE``
(rule 7): buffers still chained are dropped from the packet without being freed. The model
clears their ``packet`` back-reference (their ``Next`` links stay, so a saved pointer to the
first one still walks the old chain and ``NdisFreeBuffer`` on each works), and they stay
allocated in their buffer pool, so if nobody frees them ``NdisFreeBufferPool`` lists them as
leaked. The same holds for buffers chained to a packet destroyed by ``NdisZeroMemory``.

Model size (``NdisPacketSize``), amd64: ``FIELD_OFFSET(NDIS_PACKET, ProtocolReserved)`` is 96
(NDIS_PACKET_PRIVATE 44 bytes padded to 48, the 32-byte reserved union, ``Reserved[2]`` 16);
ProtocolReserved follows; the OOB block starts at that sum rounded up to
MEMORY_ALLOCATION_ALIGNMENT (16), which is ``NdisPacketOobOffset``; NDIS_PACKET_OOB_DATA is 40
bytes (8+8+4+4+8+4, padded to 8) and the NDIS_PACKET_EXTENSION after it 12 * 8 = 96 bytes. So
``NdisPacketSize(P) = align16(96 + P) + 40 + 96``; e.g. 248 for P = 16. A ProtocolReservedLength
whose OOB offset would not fit ``NdisPacketOobOffset`` (a USHORT) makes the pool allocation fail
with RESOURCES.
"""

from __future__ import annotations

import threading

from .constants import DISPATCH_LEVEL, MEMORY_ALLOCATION_ALIGNMENT, POINTER_SIZE, fPACKET
from .errors import NdisError, NdisUsageError
from .hostctx import HostContext, PoolBase
from .mdl import MDL
from .ownership import MOVES, Event, History, Ownership, illegal_transition, transition
from .packet import MAC_RESERVED_SIZE, NDIS_PACKET, dead_packet_error
from .status import NDIS_STATUS

#: The most descriptors one packet pool may hold (rule 1).
MAX_PACKET_POOL_DESCRIPTORS = 0xFFFF

#: FIELD_OFFSET(NDIS_PACKET, ProtocolReserved) on amd64: Private (48) + union (32) + Reserved (16).
PACKET_HEADER_SIZE = 48 + 4 * POINTER_SIZE + 2 * POINTER_SIZE
#: sizeof(NDIS_PACKET_OOB_DATA) on amd64.
PACKET_OOB_DATA_SIZE = 40
#: sizeof(NDIS_PACKET_EXTENSION) on amd64 (MaxPerPacketInfo pointers).
PACKET_EXTENSION_SIZE = 12 * POINTER_SIZE

# Enum members as module globals: the hot paths below read these (see the note above "allocate").
_ALLOCATED = Ownership.ALLOCATED
_FREE = Ownership.FREE
_EV_ALLOCATE = Event.ALLOCATE
_EV_FREE = Event.FREE
# The two moves a packet pool makes, from the ownership table (MOVES): NdisAllocatePacket and
# NdisFreePacket write them out for a packet without a history (verifier off), as
# pyndis.ownership describes; that saves two calls of ~70 ns in a ~0.9 us allocate+free.
_ALLOCATE_FROM, _ALLOCATE_TO = MOVES[Event.ALLOCATE]
_FREE_FROM, _FREE_TO = MOVES[Event.FREE]
_DISPATCH = int(DISPATCH_LEVEL)
_DESTROYED = Ownership.DESTROYED
_SUCCESS = NDIS_STATUS.SUCCESS
_RESOURCES = NDIS_STATUS.RESOURCES
_ALLOCATED_BY_NDIS = int(fPACKET.ALLOCATED_BY_NDIS)
_ZERO_MAC = bytes(MAC_RESERVED_SIZE)
_EMPTY_EXTENSION: list[object | None] = [None] * 12


def _oob_offset(protocol_reserved_length: int) -> int:
    """NdisPacketOobOffset for a pool: the end of ProtocolReserved, 16-byte aligned."""
    align = MEMORY_ALLOCATION_ALIGNMENT
    return (PACKET_HEADER_SIZE + protocol_reserved_length + align - 1) // align * align


def NdisPacketSize(ProtocolReservedSize: int) -> int:
    """The size of one packet descriptor with its OOB block and extension (model, amd64)."""
    if ProtocolReservedSize < 0:
        raise NdisUsageError(
            f"ProtocolReservedSize {ProtocolReservedSize} is negative", rule="PY-BAD-ARGUMENT"
        )
    return _oob_offset(ProtocolReservedSize) + PACKET_OOB_DATA_SIZE + PACKET_EXTENSION_SIZE


class PacketPool(PoolBase):
    """An NDIS 5 packet pool (the NDIS_HANDLE ``NdisAllocatePacketPool(Ex)`` returns)."""

    kind = "packet pool"

    def __init__(
        self,
        host: HostContext,
        number_of_descriptors: int,
        number_of_overflow_descriptors: int,
        protocol_reserved_length: int,
        tag: str = "",
    ) -> None:
        super().__init__(host, tag)
        self.number_of_descriptors = number_of_descriptors
        self.number_of_overflow_descriptors = number_of_overflow_descriptors
        #: the most packets out at once (rule 2)
        self.capacity = number_of_descriptors + number_of_overflow_descriptors
        self.protocol_reserved_length = protocol_reserved_length
        self.oob_offset = _oob_offset(protocol_reserved_length)
        self.lock = threading.Lock()
        #: recycled descriptors ready to hand out (last freed, first reused)
        self.free_list: list[NDIS_PACKET] = []
        #: every descriptor this pool created (for leak listing; grows to ``capacity`` at most)
        self.packets: list[NDIS_PACKET] = []
        self._zero_protocol = bytes(protocol_reserved_length)

    def _create(self) -> NDIS_PACKET:
        packet = NDIS_PACKET(self.protocol_reserved_length)
        self.packets.append(packet)
        return packet

    def outstanding_packets(self) -> list[NDIS_PACKET]:
        """The packets handed out and not freed (zeroed ones included), oldest first."""
        return [p for p in self.packets if p.ownership is not _FREE]

    def __repr__(self) -> str:
        tag = f" {self.tag!r}" if self.tag else ""
        return (
            f"<PacketPool{tag} 0x{id(self):x} {self.outstanding}/{self.capacity} out"
            f"{' FREED' if self.freed else ''}>"
        )


def _check_pool(pool: object) -> PacketPool:
    if type(pool) is not PacketPool:
        raise NdisUsageError(f"{pool!r} is not a packet pool handle", rule="PY-BAD-HANDLE")
    if pool.freed:
        raise NdisUsageError(
            f"{pool!r} used after NdisFreePacketPool (the handle is invalid)", rule="PY-BAD-HANDLE"
        )
    return pool


class PacketPoolDdis:
    """Kernel DDIs that create and free packet pools (mixed into ``Ndis``)."""

    def NdisAllocatePacketPool(
        self, NumberOfDescriptors: int, ProtocolReservedLength: int
    ) -> tuple[NDIS_STATUS, PacketPool | None]:
        """-> (status, pool): the Ex form with no overflow descriptors (rule 2)."""
        return self.NdisAllocatePacketPoolEx(NumberOfDescriptors, 0, ProtocolReservedLength)

    def NdisAllocatePacketPoolEx(
        self,
        NumberOfDescriptors: int,
        NumberOfOverflowDescriptors: int,
        ProtocolReservedLength: int,
    ) -> tuple[NDIS_STATUS, PacketPool | None]:
        """-> (SUCCESS, pool), or (RESOURCES, None) for more than 0xFFFF descriptors (rule 1).

        Overflow descriptors are cut so the total is at most 0xFFFF. ProtocolReservedLength
        sets the size of each packet's ProtocolReserved area (rule 3).
        """
        assert isinstance(self, HostContext)
        self.irql.check_at_most("NdisAllocatePacketPoolEx", self.current_actor)
        for name, value in (
            ("NumberOfDescriptors", NumberOfDescriptors),
            ("NumberOfOverflowDescriptors", NumberOfOverflowDescriptors),
            ("ProtocolReservedLength", ProtocolReservedLength),
        ):
            if value < 0:
                raise NdisUsageError(f"{name} {value} is negative (a UINT)", rule="R1")
        if NumberOfDescriptors > MAX_PACKET_POOL_DESCRIPTORS:
            return _RESOURCES, None
        if _oob_offset(ProtocolReservedLength) > 0xFFFF:
            return _RESOURCES, None
        overflow = min(
            NumberOfOverflowDescriptors, MAX_PACKET_POOL_DESCRIPTORS - NumberOfDescriptors
        )
        pool = PacketPool(self, NumberOfDescriptors, overflow, ProtocolReservedLength)
        return _SUCCESS, pool

    def NdisFreePacketPool(self, PoolHandle: PacketPool) -> None:
        """Free a pool whose packets have all been freed (rule 6); the handle is then invalid.

        With packets outstanding it raises NdisUsageError (R6) listing them with their history.
        """
        assert isinstance(self, HostContext)
        pool = _check_pool(PoolHandle)
        self.irql.check_at_most("NdisFreePacketPool", self.current_actor)
        with pool.lock:
            leaked = pool.outstanding_packets()
            if leaked:
                raise _leak_error(pool, leaked)
            pool.free_list.clear()
            pool.packets.clear()
            pool._retire()


def _leak_error(pool: PacketPool, leaked: list[NDIS_PACKET]) -> NdisError:
    shown = leaked[:8]
    lines = []
    for packet in shown:
        why = " (destroyed by NdisZeroMemory)" if packet.ownership is _DESTROYED else ""
        lines.append(f"  {packet!r}{why}")
        if packet.history is not None:
            lines.extend(f"      {entry}" for entry in packet.history.entries)
    more = f"\n  ... and {len(leaked) - len(shown)} more" if len(leaked) > len(shown) else ""
    first = leaked[0]
    return NdisUsageError(
        f"NdisFreePacketPool({pool!r}) with {len(leaked)} packet(s) still allocated; free every "
        "packet first:\n" + "\n".join(lines) + more,
        rule="R6",
        subject=pool,
        history=first.history.entries if first.history is not None else None,
    )


# --- allocate -----------------------------------------------------------------------------------
#
# NdisAllocatePacket and NdisFreePacket are the hottest DDIs of the 5.x model, so their common
# path calls no helper but transition(), every enum member is read from a module global (an Enum
# class attribute costs ~70 ns on CPython 3.11), and the IRQL is read as the plain thread-local
# attribute it is. The Dpr forms check their IRQL and do the same work.


def NdisAllocatePacket(PoolHandle: PacketPool) -> tuple[NDIS_STATUS, NDIS_PACKET | None]:
    """NdisAllocatePacket(&Status, &Packet, PoolHandle) at IRQL <= DISPATCH_LEVEL.

    -> (SUCCESS, packet), or (RESOURCES, None) when the pool is exhausted (rule 2).
    """
    if type(PoolHandle) is not PacketPool or PoolHandle.freed:
        _check_pool(PoolHandle)
    host = PoolHandle.host
    if host.irql.level > _DISPATCH:
        host.irql.check_at_most("NdisAllocatePacket", host.current_actor)
    lock = PoolHandle.lock
    lock.acquire()
    try:
        free = PoolHandle.free_list
        if free:
            packet = free.pop()
        elif len(PoolHandle.packets) < PoolHandle.capacity:
            packet = PoolHandle._create()
        else:
            PoolHandle.failures += 1
            return _RESOURCES, None
        PoolHandle.outstanding += 1
        PoolHandle.allocations += 1
    finally:
        lock.release()
    # Rule 4: a new packet is zeroed, has no buffers, and reaches its OOB block.
    private = packet.Private
    private.PhysicalCount = 0
    private.TotalLength = 0
    private.Head = None
    private.Tail = None
    private.Pool = PoolHandle
    private.Count = 0
    private.Flags = 0
    private.ValidCounts = False
    private.NdisPacketFlags = _ALLOCATED_BY_NDIS
    private.NdisPacketOobOffset = PoolHandle.oob_offset
    # Compare before writing: a memcmp is cheaper than a slice assignment, and most recycled
    # packets come back with clean reserved areas and extension.
    if packet.MacReserved != _ZERO_MAC:
        packet.MacReserved[:] = _ZERO_MAC
    reserved = packet.Reserved
    reserved[0] = reserved[1] = 0
    if packet.ProtocolReserved != PoolHandle._zero_protocol:
        packet.ProtocolReserved[:] = PoolHandle._zero_protocol
    oob = packet.oob
    oob.TimeToSend = 0
    oob.TimeReceived = 0
    oob.HeaderSize = 0
    oob.SizeMediaSpecificInfo = 0
    oob.MediaSpecificInformation = None
    oob.Status = 0
    extension = packet.extension
    if extension != _EMPTY_EXTENSION:
        extension[:] = _EMPTY_EXTENSION
    packet.ndis_route = None
    if host.track_history:
        packet.history = History(host.scheduler.clock)
        transition(packet, _EV_ALLOCATE)  # recorded in the new history
    else:
        packet.history = None
        if packet.ownership is _ALLOCATE_FROM:  # always: the free list holds FREE packets
            packet.ownership = _ALLOCATE_TO  # transition(), written out (see _ALLOCATE_FROM)
        else:
            transition(packet, _EV_ALLOCATE)
    return _SUCCESS, packet


def NdisDprAllocatePacket(PoolHandle: PacketPool) -> tuple[NDIS_STATUS, NDIS_PACKET | None]:
    """NdisAllocatePacket for a caller already at exactly DISPATCH_LEVEL."""
    pool = _check_pool(PoolHandle)
    host = pool.host
    host.irql.check_exactly("NdisDprAllocatePacket", host.current_actor, DISPATCH_LEVEL)
    return NdisAllocatePacket(pool)


# --- free and reinitialize ----------------------------------------------------------------------


def _free_refused(packet: object, ddi: str) -> NdisError:
    """Why ``packet`` cannot be freed (it is not a live, unchained packet of a live pool)."""
    if type(packet) is not NDIS_PACKET:
        return NdisUsageError(f"{ddi}({packet!r}): not an NDIS_PACKET", rule="PY-BAD-HANDLE")
    state = packet.ownership
    if state is not _ALLOCATED:
        if state is _DESTROYED or packet.Private.Pool is None:
            return dead_packet_error(packet, ddi)  # zeroed, or never from a pool (R40)
        return illegal_transition(packet, _EV_FREE)  # R48 in flight, PY-DOUBLE-FREE...
    private = packet.Private
    if private.Head is not None:
        chained: list[MDL] = []
        mdl: MDL | None = private.Head
        while mdl is not None and len(chained) < 8:
            chained.append(mdl)
            mdl = mdl.Next
        return NdisUsageError(
            f"{ddi}({packet!r}) with buffers still chained: {chained}"
            f"{' ...' if mdl is not None else ''}; unchain and free them first or they leak",
            rule="R5",
            subject=packet,
            history=packet.history.entries if packet.history is not None else None,
        )
    return NdisUsageError(
        f"{ddi}({packet!r}): Private.Pool {private.Pool!r} is not a live packet pool "
        "(overwritten?)",
        rule="PY-BAD-HANDLE",
        subject=packet,
    )


def _free(packet: NDIS_PACKET, ddi: str, dpr: bool) -> None:
    if (
        type(packet) is not NDIS_PACKET
        or packet.ownership is not _ALLOCATED
        or packet.Private.Head is not None
    ):
        raise _free_refused(packet, ddi)
    pool = packet.Private.Pool
    if type(pool) is not PacketPool or pool.freed:
        raise _free_refused(packet, ddi)
    host = pool.host
    if dpr:
        host.irql.check_exactly(ddi, host.current_actor, DISPATCH_LEVEL)
    elif host.irql.level > _DISPATCH:
        host.irql.check_at_most(ddi, host.current_actor)
    lock = pool.lock
    lock.acquire()
    try:
        transition(packet, _EV_FREE)
        pool.free_list.append(packet)
        pool.outstanding -= 1
        pool.frees += 1
    finally:
        lock.release()


def NdisFreePacket(Packet: NDIS_PACKET) -> None:
    """Return a packet to its pool (``Packet.Private.Pool``).

    Every buffer must be unchained first (rule 5); a packet still in flight (R48), already
    freed (PY-DOUBLE-FREE) or zeroed (PY-ZEROED-PACKET) is refused.
    """
    # _free(Packet, "NdisFreePacket", False), written out (see the note above "allocate")
    if (
        type(Packet) is not NDIS_PACKET
        or Packet.ownership is not _ALLOCATED
        or Packet.Private.Head is not None
    ):
        raise _free_refused(Packet, "NdisFreePacket")
    pool = Packet.Private.Pool
    if type(pool) is not PacketPool or pool.freed:
        raise _free_refused(Packet, "NdisFreePacket")
    host = pool.host
    if host.irql.level > _DISPATCH:
        host.irql.check_at_most("NdisFreePacket", host.current_actor)
    lock = pool.lock
    lock.acquire()
    try:
        if Packet.history is None and Packet.ownership is _FREE_FROM:
            Packet.ownership = _FREE_TO  # transition(), written out (see _ALLOCATE_FROM)
        else:
            transition(Packet, _EV_FREE)  # records it, or raises (another thread freed it)
        pool.free_list.append(Packet)
        pool.outstanding -= 1
        pool.frees += 1
    finally:
        lock.release()


def NdisDprFreePacket(Packet: NDIS_PACKET) -> None:
    """NdisFreePacket for a caller already at exactly DISPATCH_LEVEL."""
    _free(Packet, "NdisDprFreePacket", True)


def NdisReinitializePacket(Packet: NDIS_PACKET) -> None:
    """Set ``Head = NULL`` and ``ValidCounts = FALSE``; nothing else changes (rule 7).

    Flags, OOB data, the reserved areas, Tail and the stale counts stay as they were. Save the
    buffer pointers first: buffers still chained are not freed (see the module notes for how
    such a lost buffer shows up). Only the packet's owner may reinitialize it.
    """
    state = Packet.ownership
    if state is not _ALLOCATED:
        if state is _FREE or state is _DESTROYED:
            raise dead_packet_error(Packet, "NdisReinitializePacket")
        raise NdisUsageError(
            f"NdisReinitializePacket({Packet!r}): the packet is {state.name}; only its owner "
            "may reinitialize it (wait for its completion or return)",
            rule="PY-REINIT-NOT-OWNED",
            subject=Packet,
            history=Packet.history.entries if Packet.history is not None else None,
        )
    private = Packet.Private
    mdl = private.Head
    while mdl is not None and mdl.packet is Packet:
        mdl.packet = None
        mdl = mdl.Next
    private.Head = None
    private.ValidCounts = False


def NdisPacketPoolUsage(PoolHandle: PacketPool) -> int:
    """The number of packets currently allocated from the pool."""
    return _check_pool(PoolHandle).outstanding


__all__ = [
    "MAX_PACKET_POOL_DESCRIPTORS",
    "PACKET_EXTENSION_SIZE",
    "PACKET_HEADER_SIZE",
    "PACKET_OOB_DATA_SIZE",
    "NdisAllocatePacket",
    "NdisDprAllocatePacket",
    "NdisDprFreePacket",
    "NdisFreePacket",
    "NdisPacketPoolUsage",
    "NdisPacketSize",
    "NdisReinitializePacket",
    "PacketPool",
    "PacketPoolDdis",
]
