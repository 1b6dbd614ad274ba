"""What the NDIS 6 sample drivers share: NBLs over caller frames, pausing, miniport DPCs.

Theory of operation
-------------------
The steps the NDIS 6 samples (and the NDIS 6 drivers of :mod:`pyndis.testing`) all take, kept in
one place as a driver family keeps them in one source file. Everything here calls only DDIs and
macros, on behalf of the driver that calls it.

Sending raw frames (ndisprot6, coclient6, the testing kit's Raw6Protocol). A protocol allocates
an NBL pool whose NBLs come with one NET_BUFFER each and an NB pool for more
(:func:`allocate_frame_pools`). :func:`frames_nbl` makes one NBL per frame list: the first frame
in the NBL's own NB, the others in NBs from the NB pool, each NB over an MDL that describes the
caller's bytes (zero copy); when a pool runs out it gives back what it took and answers None.
:func:`free_frames_nbl` undoes it (reading ``Next`` of each NB before freeing it). A receiving
protocol returns NBLs with :func:`return_flags` (NDIS_RETURN_FLAGS_DISPATCH_LEVEL exactly when
the indication said DISPATCH_LEVEL).

Pausing (netvmini6, comini6, the testing kit's Passthru6). An adapter context that knows when it
is idle (no send, no receive outstanding) pauses at once or later (rule 58: a pause never
fails): :func:`begin_pause` answers SUCCESS when idle, else PENDING; :func:`end_pause`, called
whenever something comes back, finishes a pending pause with NdisMPauseComplete.

A sample miniport's MiniportInitializeEx starts with :func:`set_attributes` (the registration
attributes, which make the adapter context the MiniportAdapterContext, then the general ones).
Its DPCs are scheduler items with no driver of their own on the actor stack; :func:`as_miniport`
marks one as miniport code, so checks inside it name the miniport.

DriverEntry of a sample protocol (:class:`SampleProtocol6`): NdisRegisterProtocolDriver, keeping
the NdisProtocolHandle its binds need; NDIS offers the adapters present afterwards, from PASSIVE
work items (run the scheduler).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ..constants import NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL, NDIS_RETURN_FLAGS_DISPATCH_LEVEL
from ..errors import Culprit
from ..library.adapter import (
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES,
)
from ..nbl import NET_BUFFER_LIST
from ..nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NET_BUFFER_POOL_PARAMETERS,
    NblPool,
    NbPool,
    NdisAllocateNetBuffer,
    NdisAllocateNetBufferAndNetBufferList,
    NdisFreeNetBuffer,
    NdisFreeNetBufferList,
)
from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from ..library.adapter import MiniportBlock
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis
    from ..mdl import MDL

#: A frame's bytes, as a caller hands them to a sample protocol.
Buffer = bytes | bytearray | memoryview
#: One NBL's worth of frames: one frame, or several (one NB each).
Frames = Sequence[Buffer] | Buffer

#: Adapter states of the sample miniports (netvmini's MP_ADAPTER flags, as one field).
PAUSED = "paused"
RUNNING = "running"
PAUSING = "pausing"
RESETTING = "resetting"
HALTED = "halted"


# --- DriverEntry of a protocol ------------------------------------------------------------------


class SampleProtocol6:
    """Base of an NDIS 6 sample protocol driver (ndisprot6, coclient6): its DriverEntry."""

    NDIS_VERSION = (6, 0)
    ndis: Ndis
    handle: DriverBlock | None

    def register(self, ndis: Ndis, name: str | None = None) -> NDIS_STATUS:
        """DriverEntry: NdisRegisterProtocolDriver, keep the NdisProtocolHandle for the binds
        (they come later, from PASSIVE work items)."""
        self.ndis = ndis
        status, handle = ndis.NdisRegisterProtocolDriver(self, Name=name)
        if status == NDIS_STATUS.SUCCESS:
            self.handle = handle
        return status

    def protocol_handle(self) -> DriverBlock:
        """The NdisProtocolHandle, which binding needs."""
        assert self.handle is not None, "register(ndis) first: binding needs the NdisProtocolHandle"
        return self.handle


# --- miniport code ------------------------------------------------------------------------------


def set_attributes(
    ndis: Ndis,
    handle: MiniportBlock,
    context: Any,
    general: NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
) -> None:
    """NdisMSetMiniportAttributes twice: registration (``context`` is the MiniportAdapterContext
    from now on), then ``general``."""
    ndis.NdisMSetMiniportAttributes(handle, NDIS_MINIPORT_ADAPTER_REGISTRATION_ATTRIBUTES(context))
    ndis.NdisMSetMiniportAttributes(handle, general)


@contextmanager
def as_miniport(ndis: Ndis) -> Iterator[None]:
    """Run the body as miniport code (a DPC or timer of the miniport, or a test acting for it)."""
    actors = ndis.actors
    actors.append(Culprit.MINIPORT)
    try:
        yield
    finally:
        actors.pop()


class Pausable(Protocol):
    """An adapter context :func:`begin_pause` and :func:`end_pause` can pause."""

    state: str
    pause_pending: bool

    def idle(self) -> bool: ...


def begin_pause(adapter: Pausable) -> NDIS_STATUS:
    """MiniportPause: SUCCESS (Paused) if nothing is out, else PENDING (Pausing) until
    :func:`end_pause` sees the last send and receive back."""
    adapter.state = PAUSING
    if adapter.idle():
        adapter.state = PAUSED
        return NDIS_STATUS.SUCCESS
    adapter.pause_pending = True
    return NDIS_STATUS.PENDING


def end_pause(ndis: Ndis, adapter: Pausable, handle: MiniportBlock) -> None:
    """Something came back: finish a pending pause once the adapter is idle."""
    if adapter.pause_pending and adapter.idle():
        adapter.pause_pending = False
        adapter.state = PAUSED
        ndis.NdisMPauseComplete(handle)


# --- NBLs over caller frames --------------------------------------------------------------------


def frame_parts(frames: Frames) -> list[Buffer]:
    """The frames of one NBL: a lone frame becomes a list of one."""
    if isinstance(frames, bytes | bytearray | memoryview):
        return [frames]
    return list(frames)


def allocate_frame_pools(
    ndis: Ndis, handle: Any, nbl_tag: int | str, nb_tag: int | str = 0
) -> tuple[NblPool | None, NbPool | None]:
    """The NBL pool (one NB per NBL) and the NB pool a protocol builds frame NBLs from; (None,
    None) when either cannot be made (nothing is left allocated then)."""
    nbl_pool = ndis.NdisAllocateNetBufferListPool(
        handle, NET_BUFFER_LIST_POOL_PARAMETERS(fAllocateNetBuffer=True, PoolTag=nbl_tag)
    )
    nb_pool = ndis.NdisAllocateNetBufferPool(handle, NET_BUFFER_POOL_PARAMETERS(PoolTag=nb_tag))
    if nbl_pool is None or nb_pool is None:
        free_frame_pools(ndis, nbl_pool, nb_pool)
        return None, None
    return nbl_pool, nb_pool


def free_frame_pools(ndis: Ndis, nbl_pool: NblPool | None, nb_pool: NbPool | None) -> None:
    """Free the pools of :func:`allocate_frame_pools` (None: nothing to free)."""
    if nbl_pool is not None:
        ndis.NdisFreeNetBufferListPool(nbl_pool)
    if nb_pool is not None:
        ndis.NdisFreeNetBufferPool(nb_pool)


def frames_nbl(
    ndis: Ndis, nbl_pool: NblPool, nb_pool: NbPool, parts: Sequence[Buffer]
) -> NET_BUFFER_LIST | None:
    """One NBL with one NB per frame of ``parts`` (at least one), each over an MDL describing
    the frame (no copy); None if a pool ran out (nothing is left allocated then)."""
    first = parts[0]
    mdl = ndis.NdisAllocateMdl(None, first, len(first))
    nbl = NdisAllocateNetBufferAndNetBufferList(nbl_pool, 0, 0, mdl, 0, len(first))
    if nbl is None:
        ndis.NdisFreeMdl(mdl)
        return None
    tail = nbl.FirstNetBuffer
    assert tail is not None
    for frame in parts[1:]:
        extra = ndis.NdisAllocateMdl(None, frame, len(frame))
        nb = NdisAllocateNetBuffer(nb_pool, extra, 0, len(frame))
        if nb is None:
            ndis.NdisFreeMdl(extra)
            free_frames_nbl(ndis, nbl)
            return None
        tail.Next = nb
        tail = nb
    return nbl


def free_frames_nbl(ndis: Ndis, nbl: NET_BUFFER_LIST) -> None:
    """Free an NBL of :func:`frames_nbl`: the NBs chained to it, every MDL, the NBL with its own
    NB."""
    own = nbl.own_nb
    mdls: list[MDL] = []
    nb = nbl.FirstNetBuffer
    while nb is not None:
        following = nb.Next
        if nb.MdlChain is not None:
            mdls.append(nb.MdlChain)
        if nb is not own:
            nb.Next = None
            NdisFreeNetBuffer(nb)
        nb = following
    if own is not None:
        own.Next = None
    nbl.FirstNetBuffer = own
    NdisFreeNetBufferList(nbl)
    for mdl in mdls:
        ndis.NdisFreeMdl(mdl)


def return_flags(receive_flags: int) -> int:
    """The ReturnFlags for NBLs indicated with ``receive_flags`` (the same IRQL)."""
    if receive_flags & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL:
        return int(NDIS_RETURN_FLAGS_DISPATCH_LEVEL)
    return 0


__all__ = [
    "HALTED",
    "PAUSED",
    "PAUSING",
    "RESETTING",
    "RUNNING",
    "Buffer",
    "Frames",
    "Pausable",
    "SampleProtocol6",
    "allocate_frame_pools",
    "as_miniport",
    "begin_pause",
    "end_pause",
    "frame_parts",
    "frames_nbl",
    "free_frame_pools",
    "free_frames_nbl",
    "return_flags",
    "set_attributes",
]
