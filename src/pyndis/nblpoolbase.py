"""NDIS 6 pool parameters (rule 38) and the pool objects NblPool and NbPool.

Theory of operation
-------------------
A pool is a lock, a free list of recycled descriptors, the list of every descriptor it made
(for leak listing), the PoolBase counters, an optional ``limit`` and a fault injector
(``fail_next``, ``fail_rate``). ``take()`` hands out a descriptor (not yet reset) or None;
``give_back()`` recycles one. While no limit or fault is set, ``take()`` skips both checks
(one flag test). Parameter checks and handle checks (``nbl_pool_handle``, ``nb_pool_handle``,
which also check the IRQL) live here too. The public module is :mod:`pyndis.nblpool`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .constants import (
    DISPATCH_LEVEL,
    NDIS_CLONE_FLAGS,
    NDIS_OBJECT_TYPE_DEFAULT,
)
from .errors import NdisUsageError
from .hostctx import HostContext, PoolBase
from .mdl import MDL
from .nbldesc import (
    NET_BUFFER,
    NET_BUFFER_LIST,
    check_context_size,
)
from .ownership import Ownership

_ULONG_MAX = 0xFFFFFFFF
_FREE = Ownership.FREE
_ALLOCATED = Ownership.ALLOCATED
_CLONE_FLAGS = int(NDIS_CLONE_FLAGS.RESERVED | NDIS_CLONE_FLAGS.USE_ORIGINAL_MDLS)
_USE_ORIGINAL_MDLS = int(NDIS_CLONE_FLAGS.USE_ORIGINAL_MDLS)

#: RTL_SIZEOF_THROUGH_FIELD(NET_BUFFER_LIST_POOL_PARAMETERS, DataSize) (revision 1) / Flags (2).
NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1 = 16
NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2 = 20
#: RTL_SIZEOF_THROUGH_FIELD(NET_BUFFER_POOL_PARAMETERS, DataSize) (revision 1) / Flags (2).
NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1 = 12
NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2 = 16

_NBL_SIZES = {
    1: NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1,
    2: NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2,
}
_NB_SIZES = {
    1: NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1,
    2: NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2,
}


# --- parameters ----------------------------------------------------------------------------------


@dataclass(slots=True)
class NDIS_OBJECT_HEADER:
    """Type, Revision and Size of an NDIS 6 parameter structure."""

    Type: int = NDIS_OBJECT_TYPE_DEFAULT
    Revision: int = 0
    Size: int = 0


def _nbl_header(revision: int) -> NDIS_OBJECT_HEADER:
    return NDIS_OBJECT_HEADER(NDIS_OBJECT_TYPE_DEFAULT, revision, _NBL_SIZES[revision])


def _nb_header(revision: int) -> NDIS_OBJECT_HEADER:
    return NDIS_OBJECT_HEADER(NDIS_OBJECT_TYPE_DEFAULT, revision, _NB_SIZES[revision])


@dataclass(slots=True)
class NET_BUFFER_LIST_POOL_PARAMETERS:
    """Parameters of NdisAllocateNetBufferListPool; the default Header is a valid revision 1."""

    Header: NDIS_OBJECT_HEADER = field(default_factory=lambda: _nbl_header(1))
    ProtocolId: int = 0
    fAllocateNetBuffer: bool = False
    ContextSize: int = 0
    PoolTag: int | str = 0
    DataSize: int = 0
    #: revision 2 (NDIS 6.87) only
    Flags: int = 0

    @staticmethod
    def header(revision: int = 1) -> NDIS_OBJECT_HEADER:
        """The correct Header for ``revision`` (1 or 2)."""
        return _nbl_header(revision)


@dataclass(slots=True)
class NET_BUFFER_POOL_PARAMETERS:
    """Parameters of NdisAllocateNetBufferPool; the default Header is a valid revision 1."""

    Header: NDIS_OBJECT_HEADER = field(default_factory=lambda: _nb_header(1))
    PoolTag: int | str = 0
    DataSize: int = 0
    #: revision 2 (NDIS 6.87) only
    Flags: int = 0

    @staticmethod
    def header(revision: int = 1) -> NDIS_OBJECT_HEADER:
        """The correct Header for ``revision`` (1 or 2)."""
        return _nb_header(revision)


def _bad(what: str, rule: str = "R38") -> NdisUsageError:
    return NdisUsageError(what, rule=rule)


def _check_header(header: object, sizes: dict[int, int], name: str) -> None:
    if not isinstance(header, NDIS_OBJECT_HEADER):
        raise _bad(f"{name}.Header is {header!r}, not an NDIS_OBJECT_HEADER")
    if header.Type != NDIS_OBJECT_TYPE_DEFAULT:
        raise _bad(
            f"{name}.Header.Type is 0x{header.Type:X}, not NDIS_OBJECT_TYPE_DEFAULT (0x80) "
            "(bug check 0x7C, code 0x21)"
        )
    need = sizes.get(header.Revision)
    if need is None:
        raise _bad(f"{name}.Header.Revision {header.Revision} is not 1 or 2 (bug check 0x7C/0x21)")
    if header.Size < need:
        raise _bad(
            f"{name}.Header.Size {header.Size} is below {need}, the size of revision "
            f"{header.Revision} (bug check 0x7C/0x21)"
        )


def _check_ulong(value: object, what: str) -> None:
    if not (isinstance(value, int) and 0 <= value <= _ULONG_MAX):
        raise _bad(f"{what} {value!r} is not a ULONG")


def _tag_text(tag: int | str) -> str:
    """A pool tag as text: 'Tag1' stays, an int is read as four little-endian characters."""
    if isinstance(tag, str):
        if len(tag) > 4:
            raise _bad(f"PoolTag {tag!r} has more than four characters")
        return tag
    _check_ulong(tag, "PoolTag")
    raw = tag.to_bytes(4, "little").rstrip(b"\0")
    return raw.decode("latin-1") if all(32 <= b < 127 for b in raw) else f"0x{tag:08X}"


def check_nbl_parameters(p: object) -> NET_BUFFER_LIST_POOL_PARAMETERS:
    if not isinstance(p, NET_BUFFER_LIST_POOL_PARAMETERS):
        raise _bad(f"{p!r} is not a NET_BUFFER_LIST_POOL_PARAMETERS")
    _check_header(p.Header, _NBL_SIZES, "NET_BUFFER_LIST_POOL_PARAMETERS")
    if not (isinstance(p.ProtocolId, int) and 0 <= p.ProtocolId <= 0xFF):
        raise _bad(f"ProtocolId {p.ProtocolId!r} is not a UCHAR")
    check_context_size(p.ContextSize, "NET_BUFFER_LIST_POOL_PARAMETERS.ContextSize", "R38")
    _check_ulong(p.DataSize, "NET_BUFFER_LIST_POOL_PARAMETERS.DataSize")
    _check_ulong(p.Flags, "NET_BUFFER_LIST_POOL_PARAMETERS.Flags")
    if p.DataSize and not p.fAllocateNetBuffer:
        raise _bad(
            f"NET_BUFFER_LIST_POOL_PARAMETERS.DataSize is {p.DataSize} but fAllocateNetBuffer "
            "is FALSE: pre-allocated data needs a pre-allocated NET_BUFFER"
        )
    return p


def check_nb_parameters(p: object) -> NET_BUFFER_POOL_PARAMETERS:
    if not isinstance(p, NET_BUFFER_POOL_PARAMETERS):
        raise _bad(f"{p!r} is not a NET_BUFFER_POOL_PARAMETERS")
    _check_header(p.Header, _NB_SIZES, "NET_BUFFER_POOL_PARAMETERS")
    _check_ulong(p.DataSize, "NET_BUFFER_POOL_PARAMETERS.DataSize")
    _check_ulong(p.Flags, "NET_BUFFER_POOL_PARAMETERS.Flags")
    return p


# --- pools ---------------------------------------------------------------------------------------


class PoolLeakError(NdisUsageError):
    """A pool freed with descriptors still allocated; ``leaked`` lists them."""

    def __init__(self, message: str, *, rule: str, subject: object, leaked: list[Any]) -> None:
        self.leaked = leaked
        first = leaked[0] if leaked else None
        history = first.history.entries if first is not None and first.history else None
        super().__init__(message, rule=rule, subject=subject, history=history)


class DescriptorPoolBase(PoolBase):
    """What NBL and NB pools share: the lock, the optional limit and the fault injector."""

    def __init__(
        self, host: HostContext, tag: str, limit: int | None, handle: object, rate: float
    ) -> None:
        super().__init__(host, tag)
        #: the NdisHandle the pool was allocated with (the driver's or None)
        self.NdisHandle = handle
        self.lock = threading.Lock()
        self._fail_next = 0
        self._fail_rate = 0.0
        self._limit: int | None = None
        #: True when an allocation must consult the limit or the fault injector (slow path)
        self._checked = False
        self.limit = limit
        self.fail_rate = rate

    @property
    def limit(self) -> int | None:
        """The most descriptors out at once (None: no limit, as in NDIS)."""
        return self._limit

    @limit.setter
    def limit(self, limit: int | None) -> None:
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise NdisUsageError(f"pool limit {limit!r} is not a count", rule="PY-BAD-ARGUMENT")
        self._limit = limit
        self._update_checked()

    @property
    def fail_rate(self) -> float:
        """Probability that an allocation fails (rule 67), drawn from ``scheduler.random``."""
        return self._fail_rate

    @fail_rate.setter
    def fail_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise NdisUsageError(f"fault rate {rate!r} is not in [0, 1]", rule="PY-BAD-ARGUMENT")
        self._fail_rate = rate
        self._update_checked()

    def _update_checked(self) -> None:
        self._checked = bool(self._fail_next or self._fail_rate or self._limit is not None)

    def fail_next(self, count: int = 1) -> None:
        """Make the next ``count`` allocations from this pool fail."""
        with self.lock:
            self._fail_next += count
            self._update_checked()

    def _should_fail(self) -> bool:
        """Fault injection; call with the lock held."""
        if self._fail_next:
            self._fail_next -= 1
            self._update_checked()
        elif not (self._fail_rate and self.host.scheduler.random.random() < self._fail_rate):
            return False
        self.failures += 1
        return True

    def inject_fault(self) -> bool:
        """True if an allocation NDIS makes for this pool's descriptors should fail now."""
        if not (self._fail_next or self._fail_rate):
            return False
        with self.lock:
            return self._should_fail()

    def _check_live(self) -> None:
        if self.freed:
            raise NdisUsageError(f"{self!r} was already freed", rule="PY-BAD-HANDLE")

    def _refused(self) -> bool:
        """Limit and fault injection for one allocation. Call with the lock held."""
        if (self._fail_next or self.fail_rate) and self._should_fail():
            return True
        if self._limit is not None and self.outstanding >= self._limit:
            self.failures += 1
            return True
        return False

    def __repr__(self) -> str:
        tag = f" {self.tag!r}" if self.tag else ""
        limit = f"/{self.limit}" if self.limit is not None else ""
        dead = " FREED" if self.freed else ""
        return f"<{type(self).__name__}{tag} 0x{id(self):x} {self.outstanding}{limit} out{dead}>"


class NblPool(DescriptorPoolBase):
    """A NET_BUFFER_LIST pool (the NDIS_HANDLE NdisAllocateNetBufferListPool returns)."""

    kind = "NET_BUFFER_LIST pool"

    def __init__(
        self,
        host: HostContext,
        parameters: NET_BUFFER_LIST_POOL_PARAMETERS,
        handle: object = None,
        limit: int | None = None,
        rate: float = 0.0,
    ) -> None:
        super().__init__(host, _tag_text(parameters.PoolTag), limit, handle, rate)
        self.ProtocolId = parameters.ProtocolId
        self.fAllocateNetBuffer = bool(parameters.fAllocateNetBuffer)
        self.ContextSize = parameters.ContextSize
        self.PoolTag = parameters.PoolTag
        self.DataSize = parameters.DataSize
        self.Flags = parameters.Flags
        #: recycled NBLs ready to hand out (last freed, first reused)
        self.free_list: list[NET_BUFFER_LIST] = []
        #: every NBL this pool created (for leak listing)
        self.nbls: list[NET_BUFFER_LIST] = []

    def _create(self) -> NET_BUFFER_LIST:
        nbl = NET_BUFFER_LIST(self)
        if self.fAllocateNetBuffer:
            nb = NET_BUFFER(self)
            nb.owner = nbl
            if self.DataSize:
                nb.own_mdl = MDL(bytearray(self.DataSize), self.DataSize, None)
            nbl.own_nb = nb
        self.nbls.append(nbl)
        return nbl

    def take(self) -> NET_BUFFER_LIST | None:
        """A recycled or new NBL, not yet reset; None if the allocation fails."""
        with self.lock:
            if self.freed:
                self._check_live()
            if self._checked and self._refused():
                return None
            self.outstanding += 1
            self.allocations += 1
            free = self.free_list
            return free.pop() if free else self._create()

    def give_back(self, nbl: NET_BUFFER_LIST) -> None:
        with self.lock:
            self.free_list.append(nbl)
            self.outstanding -= 1
            self.frees += 1

    def outstanding_nbls(self) -> list[NET_BUFFER_LIST]:
        """NBLs handed out and not freed, in creation order."""
        return [nbl for nbl in self.nbls if nbl.ownership is not _FREE]


class NbPool(DescriptorPoolBase):
    """A NET_BUFFER pool (the NDIS_HANDLE NdisAllocateNetBufferPool returns)."""

    kind = "NET_BUFFER pool"

    def __init__(
        self,
        host: HostContext,
        parameters: NET_BUFFER_POOL_PARAMETERS,
        handle: object = None,
        limit: int | None = None,
        rate: float = 0.0,
    ) -> None:
        super().__init__(host, _tag_text(parameters.PoolTag), limit, handle, rate)
        self.PoolTag = parameters.PoolTag
        self.DataSize = parameters.DataSize
        self.Flags = parameters.Flags
        self.free_list: list[NET_BUFFER] = []
        self.nbs: list[NET_BUFFER] = []

    def take(self) -> NET_BUFFER | None:
        """A recycled or new NB, not yet reset; None if the allocation fails."""
        with self.lock:
            if self.freed:
                self._check_live()
            if self._checked and self._refused():
                return None
            self.outstanding += 1
            self.allocations += 1
            if self.free_list:
                return self.free_list.pop()
            nb = NET_BUFFER(self)
            if self.DataSize:
                nb.own_mdl = MDL(bytearray(self.DataSize), self.DataSize, None)
            self.nbs.append(nb)
            return nb

    def give_back(self, nb: NET_BUFFER) -> None:
        with self.lock:
            self.free_list.append(nb)
            self.outstanding -= 1
            self.frees += 1

    def outstanding_nbs(self) -> list[NET_BUFFER]:
        return [nb for nb in self.nbs if nb.ownership is not _FREE]


def _bad_handle(handle: object, ddi: str, kind: str) -> NoReturn:
    if isinstance(handle, DescriptorPoolBase) and handle.freed:
        raise NdisUsageError(f"{ddi}: {handle!r} was already freed", rule="PY-BAD-HANDLE")
    raise NdisUsageError(f"{ddi}: {handle!r} is not a {kind} pool handle", rule="PY-BAD-HANDLE")


def nbl_pool_handle(handle: object, ddi: str) -> NblPool:
    """``handle`` as a live NET_BUFFER_LIST pool, after the IRQL check of ``ddi`` (<= DISPATCH)."""
    if type(handle) is not NblPool or handle.freed:
        _bad_handle(handle, ddi, "NET_BUFFER_LIST")
    host = handle.host
    if host.irql.level > DISPATCH_LEVEL:
        host.irql.check_at_most(ddi, host.current_actor)
    return handle


def nb_pool_handle(handle: object, ddi: str) -> NbPool:
    """``handle`` as a live NET_BUFFER pool, after the IRQL check of ``ddi`` (<= DISPATCH)."""
    if type(handle) is not NbPool or handle.freed:
        _bad_handle(handle, ddi, "NET_BUFFER")
    host = handle.host
    if host.irql.level > DISPATCH_LEVEL:
        host.irql.check_at_most(ddi, host.current_actor)
    return handle


__all__ = [
    "NDIS_OBJECT_HEADER",
    "NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_1",
    "NDIS_SIZEOF_NET_BUFFER_LIST_POOL_PARAMETERS_REVISION_2",
    "NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_1",
    "NDIS_SIZEOF_NET_BUFFER_POOL_PARAMETERS_REVISION_2",
    "NET_BUFFER_LIST_POOL_PARAMETERS",
    "NET_BUFFER_POOL_PARAMETERS",
    "DescriptorPoolBase",
    "NbPool",
    "NblPool",
    "PoolLeakError",
    "check_nb_parameters",
    "check_nbl_parameters",
    "nb_pool_handle",
    "nbl_pool_handle",
]
