"""NET_BUFFER, NET_BUFFER_LIST, NET_BUFFER_LIST_CONTEXT, their macros and chain helpers.

Theory of operation
-------------------
The descriptors are slotted classes with the header's field names plus the model's own slots:
``ownership`` and ``history`` (see :mod:`pyndis.ownership`), and the bookkeeping the DDIs need
(``retreats`` of an NB, the pre-allocated ``own_nb``/``own_mdl``, the ``context_stack`` of an
NBL, a clone's ``clone_flags``/``clone_nbs``). ``reset()`` gives every public field its
allocation value; only the pools call it. Chain positions (``locate``) follow the CurrentMdl
rule given in :mod:`pyndis.nbl`, the public module that re-exports this one together with
:mod:`pyndis.nblops`; this module imports neither, so the three form no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .constants import (
    DISPATCH_LEVEL,
    MEMORY_ALLOCATION_ALIGNMENT,
    POINTER_SIZE,
    MaxNetBufferListInfo,
)
from .errors import Culprit, NdisError, NdisUsageError, ProtocolContractError
from .mdl import MDL, MDL_PARTIAL, pages_spanned
from .ownership import History, Ownership
from .status import NDIS_STATUS

if TYPE_CHECKING:
    from .hostctx import HostContext

_MAX_INFO = int(MaxNetBufferListInfo)
_ULONG_MAX = 0xFFFFFFFF
_USHORT_MAX = 0xFFFF
_MDL_HEADER_SIZE = 48
_SUCCESS = NDIS_STATUS.SUCCESS
_RESOURCES = NDIS_STATUS.RESOURCES
_FAILURE = NDIS_STATUS.FAILURE
_FREE = Ownership.FREE
_NONE2: tuple[None, ...] = (None,) * 2
_NONE4: tuple[None, ...] = (None,) * 4
_NONE6: tuple[None, ...] = (None,) * 6
_NONE_INFO: tuple[None, ...] = (None,) * _MAX_INFO

#: ``DEAD[ownership]``: the descriptor may not be used at all (freed or destroyed).
DEAD = tuple(o in (Ownership.FREE, Ownership.DESTROYED) for o in Ownership)
#: ``IN_FLIGHT[ownership]``: the sender has handed the NBL to NDIS and not got it back.
IN_FLIGHT = tuple(
    o in (Ownership.IN_NDIS, Ownership.AT_MINIPORT, Ownership.COMPLETING) for o in Ownership
)

#: NetAllocateMdl(BufferSize) -> MDL or None; the MDL may describe more than BufferSize bytes.
NET_BUFFER_ALLOCATE_MDL = Callable[[int], MDL | None]
#: NetFreeMdl(Mdl): frees an MDL and memory that NetAllocateMdl provided.
NET_BUFFER_FREE_MDL = Callable[[MDL], None]


class DescriptorPool(Protocol):
    """What a descriptor needs of the pool it came from (see :mod:`pyndis.nblpool`)."""

    host: HostContext

    def inject_fault(self) -> bool: ...


# --- descriptors ---------------------------------------------------------------------------------


class RetreatRecord:
    """One retreat that allocated memory: what to free and the chain to restore."""

    __slots__ = ("by_handler", "chain", "mdl", "offset", "partial")

    def __init__(
        self, mdl: MDL, partial: MDL | None, chain: MDL | None, offset: int, by_handler: bool
    ) -> None:
        self.mdl = mdl
        self.partial = partial
        self.chain = chain
        self.offset = offset
        self.by_handler = by_handler


class NET_BUFFER:
    """One frame: a window (DataOffset, DataLength) on an MDL chain."""

    __slots__ = (
        "ChecksumBias",
        "CurrentMdl",
        "CurrentMdlOffset",
        "DataLength",
        "DataOffset",
        "DataPhysicalAddress",
        "MdlChain",
        "MiniportReserved",
        "NdisPoolHandle",
        "NdisReserved",
        "Next",
        "ProtocolReserved",
        "Reserved",
        "history",
        "own_mdl",
        "owner",
        "ownership",
        "retreats",
    )

    def __init__(self, pool: DescriptorPool | None = None) -> None:
        self.Next: NET_BUFFER | None = None
        self.CurrentMdl: MDL | None = None
        self.CurrentMdlOffset = 0
        self.DataLength = 0
        self.MdlChain: MDL | None = None
        self.DataOffset = 0
        self.ChecksumBias = 0
        self.Reserved = 0
        self.NdisPoolHandle: DescriptorPool | None = pool
        self.NdisReserved: list[Any] = [None, None]
        self.ProtocolReserved: list[Any] = [None] * 6
        self.MiniportReserved: list[Any] = [None] * 4
        self.DataPhysicalAddress = 0
        self.ownership = _FREE
        self.history: History | None = None
        #: retreats that allocated memory, oldest first (None when there are none)
        self.retreats: list[RetreatRecord] | None = None
        #: the NBL this NB was pre-allocated with or cloned for (freed only with it)
        self.owner: NET_BUFFER_LIST | None = None
        #: MDLs NDIS made for this NB and frees with it: the MDL over pre-allocated data
        #: (DataSize pools), or the first of a clone's partial MDLs
        self.own_mdl: MDL | None = None

    def reset(self, chain: MDL | None, offset: int, length: int) -> None:
        """Every field as a fresh allocation over ``chain`` (the pools call this)."""
        self.Next = None
        self.MdlChain = chain
        self.DataOffset = offset
        self.DataLength = length
        if chain is not None and offset < chain.ByteCount:
            self.CurrentMdl = chain
            self.CurrentMdlOffset = offset
        else:
            self.CurrentMdl, self.CurrentMdlOffset = locate(chain, offset)
        self.ChecksumBias = 0
        self.Reserved = 0
        self.NdisReserved[:] = _NONE2
        self.ProtocolReserved[:] = _NONE6
        self.MiniportReserved[:] = _NONE4
        self.DataPhysicalAddress = 0
        self.retreats = None

    def __repr__(self) -> str:
        mdls = sum(1 for _ in _walk(self.MdlChain))
        extra = " +retreat" if self.retreats else ""
        return (
            f"<NET_BUFFER 0x{id(self):x} offset={self.DataOffset} length={self.DataLength} "
            f"mdls={mdls}{extra} {self.ownership.name}>"
        )


class NET_BUFFER_LIST_CONTEXT:
    """One block of NBL context: ``ContextData[Offset:Size]`` is in use, the rest is back-fill."""

    __slots__ = ("ContextData", "Next", "Offset", "Size")

    def __init__(self, size: int, offset: int, next_: NET_BUFFER_LIST_CONTEXT | None) -> None:
        self.Next = next_
        self.Size = size
        self.Offset = offset
        self.ContextData = bytearray(size)

    def __repr__(self) -> str:
        return f"<NET_BUFFER_LIST_CONTEXT used={self.Size - self.Offset}/{self.Size}>"


class NET_BUFFER_LIST:
    """A list of NET_BUFFERs sharing out-of-band data, a status and a completion."""

    __slots__ = (
        "ChildRefCount",
        "Context",
        "FirstNetBuffer",
        "Flags",
        "MiniportReserved",
        "NblFlags",
        "NdisPoolHandle",
        "NdisReserved",
        "NetBufferListInfo",
        "Next",
        "ParentNetBufferList",
        "ProtocolReserved",
        "Scratch",
        "SourceHandle",
        "Status",
        "base_context",
        "clone_flags",
        "clone_nbs",
        "context_stack",
        "history",
        "own_nb",
        "ownership",
    )

    def __init__(self, pool: DescriptorPool | None = None) -> None:
        self.Next: NET_BUFFER_LIST | None = None
        self.FirstNetBuffer: NET_BUFFER | None = None
        self.Context: NET_BUFFER_LIST_CONTEXT | None = None
        self.ParentNetBufferList: NET_BUFFER_LIST | None = None
        self.NdisPoolHandle: DescriptorPool | None = pool
        self.NdisReserved: list[Any] = [None, None]
        self.ProtocolReserved: list[Any] = [None] * 4
        self.MiniportReserved: list[Any] = [None] * 2
        self.Scratch: Any = None
        self.SourceHandle: Any = None
        self.NblFlags = 0
        self.ChildRefCount = 0
        self.Flags = 0
        self.Status: int = _SUCCESS
        self.NetBufferListInfo: list[Any] = [None] * _MAX_INFO
        self.ownership = _FREE
        self.history: History | None = None
        #: the NB the pool pre-allocated with this NBL (fAllocateNetBuffer pools)
        self.own_nb: NET_BUFFER | None = None
        #: the context block allocated with the NBL (released only with it)
        self.base_context: NET_BUFFER_LIST_CONTEXT | None = None
        #: NdisAllocateNetBufferListContext requests, oldest first: (size, block it allocated)
        self.context_stack: list[tuple[int, NET_BUFFER_LIST_CONTEXT | None]] = []
        #: AllocateCloneFlags if this NBL is a clone, else None
        self.clone_flags: int | None = None
        #: the NBs NdisAllocateCloneNetBufferList allocated for this clone
        self.clone_nbs: list[NET_BUFFER] | None = None

    def reset(self) -> None:
        """Every public field as a fresh allocation (the pools call this)."""
        self.Next = None
        self.FirstNetBuffer = None
        self.Context = None
        self.ParentNetBufferList = None
        self.NdisReserved[:] = _NONE2
        self.ProtocolReserved[:] = _NONE4
        self.MiniportReserved[:] = _NONE2
        self.Scratch = None
        self.SourceHandle = None
        self.NblFlags = 0
        self.ChildRefCount = 0
        self.Flags = 0
        self.Status = _SUCCESS
        self.NetBufferListInfo[:] = _NONE_INFO
        self.clone_flags = None
        self.clone_nbs = None

    def __repr__(self) -> str:
        count = 0
        length = 0
        for nb in iter_nbs(self):
            count += 1
            length += nb.DataLength
        clone = (
            f" clone-of=0x{id(self.ParentNetBufferList):x}" if self.clone_flags is not None else ""
        )
        children = f" clones={self.ChildRefCount}" if self.ChildRefCount else ""
        try:
            status = NDIS_STATUS(self.Status).name
        except ValueError:
            status = f"0x{self.Status:08X}"
        return (
            f"<NET_BUFFER_LIST 0x{id(self):x} nbs={count} bytes={length} status={status}"
            f"{clone}{children} {self.ownership.name}>"
        )


# --- errors and checks ---------------------------------------------------------------------------


def history_of(obj: NET_BUFFER | NET_BUFFER_LIST) -> list[Any] | None:
    return obj.history.entries if obj.history is not None else None


def dead_error(obj: NET_BUFFER | NET_BUFFER_LIST, what: str) -> NdisError:
    """The error for using a freed or destroyed descriptor."""
    return NdisUsageError(
        f"{what} on {obj!r}, which is {obj.ownership.name}: used after it was freed",
        rule="PY-USE-AFTER-FREE",
        subject=obj,
        history=history_of(obj),
    )


def check_irql(pool: DescriptorPool | None, ddi: str) -> None:
    if pool is not None:
        host = pool.host
        if host.irql.level > DISPATCH_LEVEL:
            host.irql.check_at_most(ddi, host.current_actor)


def _in_flight_access(nbl: NET_BUFFER_LIST, what: str) -> None:
    """R48: the sender must not touch an NBL between the send and its completion."""
    pool = nbl.NdisPoolHandle
    if pool is None:
        return
    host = pool.host
    if host.verifier is not None and host.current_actor in (Culprit.PROTOCOL, Culprit.NDIS_USER):
        host.flag(
            ProtocolContractError(
                f"{what} on {nbl!r}: the sender owns it again only when its send completes",
                rule="R48",
                subject=nbl,
                history=history_of(nbl),
            )
        )


def check_context_size(value: int, what: str, rule: str, limit: int = _USHORT_MAX) -> None:
    if not (isinstance(value, int) and 0 <= value <= limit):
        raise NdisUsageError(f"{what} {value!r} is not in 0..{limit}", rule=rule)
    if value % MEMORY_ALLOCATION_ALIGNMENT:
        raise NdisUsageError(
            f"{what} {value} is not a multiple of MEMORY_ALLOCATION_ALIGNMENT "
            f"({MEMORY_ALLOCATION_ALIGNMENT})",
            rule=rule,
        )


# --- MDL chain positions -------------------------------------------------------------------------


def _walk(first: MDL | None) -> Iterator[MDL]:
    mdl = first
    while mdl is not None:
        yield mdl
        mdl = mdl.Next


def chain_length(first: MDL | None) -> int:
    """The bytes an MDL chain describes (sum of ByteCount)."""
    return sum(mdl.ByteCount for mdl in _walk(first))


def locate(first: MDL | None, offset: int) -> tuple[MDL | None, int]:
    """(CurrentMdl, CurrentMdlOffset) for a data start ``offset`` bytes into a chain."""
    mdl = first
    last: MDL | None = None
    left = offset
    while mdl is not None:
        if left < mdl.ByteCount:
            return mdl, left
        left -= mdl.ByteCount
        last = mdl
        mdl = mdl.Next
    if left == 0:
        return (last, last.ByteCount) if last is not None else (None, 0)
    raise NdisUsageError(
        f"data offset {offset} is beyond the {offset - left} bytes the MDL chain describes",
        rule="PY-NB-RANGE",
    )


def partial_mdl(source: MDL, start: int, length: int) -> MDL:
    """A partial MDL over ``length`` bytes of ``source`` from ``start`` (IoBuildPartialMdl).

    It maps the same memory (no copy): same ``MappedSystemVa``, a larger ``ByteOffset``.
    """
    mdl = MDL(source.MappedSystemVa, 0, None)
    mdl.StartVa = source.StartVa
    mdl.ByteOffset = source.ByteOffset + start
    mdl.ByteCount = length
    mdl.Size = _MDL_HEADER_SIZE + POINTER_SIZE * pages_spanned(mdl.ByteOffset, length)
    mdl.MdlFlags = source.MdlFlags | MDL_PARTIAL
    return mdl


# --- macros --------------------------------------------------------------------------------------


def NET_BUFFER_LIST_NEXT_NBL(NetBufferList: NET_BUFFER_LIST) -> NET_BUFFER_LIST | None:
    return NetBufferList.Next


def NET_BUFFER_LIST_FIRST_NB(NetBufferList: NET_BUFFER_LIST) -> NET_BUFFER | None:
    return NetBufferList.FirstNetBuffer


def NET_BUFFER_NEXT_NB(NetBuffer: NET_BUFFER) -> NET_BUFFER | None:
    return NetBuffer.Next


def NET_BUFFER_FIRST_MDL(NetBuffer: NET_BUFFER) -> MDL | None:
    return NetBuffer.MdlChain


def NET_BUFFER_CURRENT_MDL(NetBuffer: NET_BUFFER) -> MDL | None:
    return NetBuffer.CurrentMdl


def NET_BUFFER_CURRENT_MDL_OFFSET(NetBuffer: NET_BUFFER) -> int:
    return NetBuffer.CurrentMdlOffset


def NET_BUFFER_DATA_LENGTH(NetBuffer: NET_BUFFER) -> int:
    return NetBuffer.DataLength


def NET_BUFFER_DATA_OFFSET(NetBuffer: NET_BUFFER) -> int:
    return NetBuffer.DataOffset


def NET_BUFFER_CHECKSUM_BIAS(NetBuffer: NET_BUFFER) -> int:
    return NetBuffer.ChecksumBias


def NET_BUFFER_PROTOCOL_RESERVED(NetBuffer: NET_BUFFER) -> list[Any]:
    return NetBuffer.ProtocolReserved


def NET_BUFFER_MINIPORT_RESERVED(NetBuffer: NET_BUFFER) -> list[Any]:
    return NetBuffer.MiniportReserved


def _info_index(Id: int) -> int:
    if isinstance(Id, int) and 0 <= Id < _MAX_INFO:
        return Id
    raise NdisUsageError(
        f"NetBufferListInfo id {Id!r} is not valid for NDIS 6.0 (0..{_MAX_INFO - 1})",
        rule="R46",
    )


def NET_BUFFER_LIST_INFO(NetBufferList: NET_BUFFER_LIST, Id: int) -> Any:
    """NetBufferListInfo[Id] (rule 46: ids 0..10 for NDIS 6.0)."""
    index = _info_index(Id)
    if IN_FLIGHT[NetBufferList.ownership]:
        _in_flight_access(NetBufferList, "NET_BUFFER_LIST_INFO")
    return NetBufferList.NetBufferListInfo[index]


def NET_BUFFER_LIST_INFO_SET(NetBufferList: NET_BUFFER_LIST, Id: int, Value: Any) -> None:
    """``NET_BUFFER_LIST_INFO(nbl, Id) = Value`` (the C macro is an lvalue)."""
    index = _info_index(Id)
    if IN_FLIGHT[NetBufferList.ownership]:
        _in_flight_access(NetBufferList, "NET_BUFFER_LIST_INFO_SET")
    NetBufferList.NetBufferListInfo[index] = Value


def NET_BUFFER_LIST_STATUS(NetBufferList: NET_BUFFER_LIST) -> int:
    if IN_FLIGHT[NetBufferList.ownership]:
        _in_flight_access(NetBufferList, "NET_BUFFER_LIST_STATUS")
    return NetBufferList.Status


def NET_BUFFER_LIST_STATUS_SET(NetBufferList: NET_BUFFER_LIST, Status: int) -> None:
    """``NET_BUFFER_LIST_STATUS(nbl) = Status``: the miniport does this before completing."""
    if IN_FLIGHT[NetBufferList.ownership]:
        _in_flight_access(NetBufferList, "NET_BUFFER_LIST_STATUS_SET")
    NetBufferList.Status = Status


def NET_BUFFER_LIST_FLAGS(NetBufferList: NET_BUFFER_LIST) -> int:
    return NetBufferList.Flags


def NET_BUFFER_LIST_NBL_FLAGS(NetBufferList: NET_BUFFER_LIST) -> int:
    return NetBufferList.NblFlags


def NdisSetNblFlag(NetBufferList: NET_BUFFER_LIST, Flag: int) -> None:
    NetBufferList.NblFlags |= Flag


def NdisClearNblFlag(NetBufferList: NET_BUFFER_LIST, Flag: int) -> None:
    NetBufferList.NblFlags &= ~Flag


def NdisTestNblFlag(NetBufferList: NET_BUFFER_LIST, Flag: int) -> bool:
    return (NetBufferList.NblFlags & Flag) != 0


def NdisTestNblFlags(NetBufferList: NET_BUFFER_LIST, Flags: int) -> bool:
    """True if every bit of ``Flags`` is set."""
    return (NetBufferList.NblFlags & Flags) == Flags


def NET_BUFFER_LIST_PROTOCOL_RESERVED(NetBufferList: NET_BUFFER_LIST) -> list[Any]:
    return NetBufferList.ProtocolReserved


def NET_BUFFER_LIST_MINIPORT_RESERVED(NetBufferList: NET_BUFFER_LIST) -> list[Any]:
    return NetBufferList.MiniportReserved


def NDIS_SET_NET_BUFFER_LIST_CANCEL_ID(NetBufferList: NET_BUFFER_LIST, CancelId: Any) -> None:
    NET_BUFFER_LIST_INFO_SET(NetBufferList, 5, CancelId)  # NetBufferListCancelId


def NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(NetBufferList: NET_BUFFER_LIST) -> Any:
    return NET_BUFFER_LIST_INFO(NetBufferList, 5)  # NetBufferListCancelId


def NdisGetPoolFromNetBufferList(NetBufferList: NET_BUFFER_LIST) -> DescriptorPool | None:
    return NetBufferList.NdisPoolHandle


def NdisGetPoolFromNetBuffer(NetBuffer: NET_BUFFER) -> DescriptorPool | None:
    return NetBuffer.NdisPoolHandle


# --- helpers for the library ---------------------------------------------------------------------


def iter_nbls(head: NET_BUFFER_LIST | None) -> Iterator[NET_BUFFER_LIST]:
    """Walk an NBL chain, reading each ``Next`` before yielding (so the caller may unlink)."""
    nbl = head
    while nbl is not None:
        following = nbl.Next
        yield nbl
        nbl = following


def link_nbls(nbls: Iterable[NET_BUFFER_LIST]) -> NET_BUFFER_LIST | None:
    """Chain NBLs in order through ``Next`` (the last one's Next = None); returns the head."""
    head: NET_BUFFER_LIST | None = None
    tail: NET_BUFFER_LIST | None = None
    for nbl in nbls:
        if tail is None:
            head = nbl
        else:
            tail.Next = nbl
        tail = nbl
    if tail is not None:
        tail.Next = None
    return head


def iter_nbs(nbl: NET_BUFFER_LIST) -> Iterator[NET_BUFFER]:
    """Walk an NBL's NET_BUFFERs, reading each ``Next`` before yielding."""
    nb = nbl.FirstNetBuffer
    while nb is not None:
        following = nb.Next
        yield nb
        nb = following


__all__ = [
    "DEAD",
    "IN_FLIGHT",
    "NDIS_GET_NET_BUFFER_LIST_CANCEL_ID",
    "NDIS_SET_NET_BUFFER_LIST_CANCEL_ID",
    "NET_BUFFER",
    "NET_BUFFER_ALLOCATE_MDL",
    "NET_BUFFER_CHECKSUM_BIAS",
    "NET_BUFFER_CURRENT_MDL",
    "NET_BUFFER_CURRENT_MDL_OFFSET",
    "NET_BUFFER_DATA_LENGTH",
    "NET_BUFFER_DATA_OFFSET",
    "NET_BUFFER_FIRST_MDL",
    "NET_BUFFER_FREE_MDL",
    "NET_BUFFER_LIST",
    "NET_BUFFER_LIST_CONTEXT",
    "NET_BUFFER_LIST_FIRST_NB",
    "NET_BUFFER_LIST_FLAGS",
    "NET_BUFFER_LIST_INFO",
    "NET_BUFFER_LIST_INFO_SET",
    "NET_BUFFER_LIST_MINIPORT_RESERVED",
    "NET_BUFFER_LIST_NBL_FLAGS",
    "NET_BUFFER_LIST_NEXT_NBL",
    "NET_BUFFER_LIST_PROTOCOL_RESERVED",
    "NET_BUFFER_LIST_STATUS",
    "NET_BUFFER_LIST_STATUS_SET",
    "NET_BUFFER_MINIPORT_RESERVED",
    "NET_BUFFER_NEXT_NB",
    "NET_BUFFER_PROTOCOL_RESERVED",
    "DescriptorPool",
    "NdisClearNblFlag",
    "NdisGetPoolFromNetBuffer",
    "NdisGetPoolFromNetBufferList",
    "NdisSetNblFlag",
    "NdisTestNblFlag",
    "NdisTestNblFlags",
    "RetreatRecord",
    "chain_length",
    "check_context_size",
    "check_irql",
    "dead_error",
    "history_of",
    "iter_nbls",
    "iter_nbs",
    "link_nbls",
    "locate",
    "partial_mdl",
]
