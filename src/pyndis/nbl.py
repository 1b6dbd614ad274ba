"""NDIS 6 descriptors: NET_BUFFER, NET_BUFFER_LIST, NET_BUFFER_LIST_CONTEXT and their macros.

Theory of operation
-------------------
A ``NET_BUFFER`` (NB) describes one frame as a window on an MDL chain: ``DataOffset`` bytes of
*unused data space* (back-fill) from the start of ``MdlChain``, then ``DataLength`` bytes of
*used data space*. ``CurrentMdl``/``CurrentMdlOffset`` name the MDL and offset of the byte at
``DataOffset`` (model rule: the first MDL with a byte there, zero-length MDLs skipped; when the
data start is at the very end of the chain, the last MDL at offset ``ByteCount``). Every DDI
here keeps the two views consistent; a driver that edits the fields itself must too
(``check_nb`` verifies it). A ``NET_BUFFER_LIST`` (NBL) groups NBs that share one set of
out-of-band data (``NetBufferListInfo``, rule 46) and one completion ``Status``.

Fields keep the header names; the reserved areas (``ProtocolReserved``, ``MiniportReserved``,
``NdisReserved``) are fixed-length lists of pointer-sized slots. Python has no lvalue macros,
so the C idiom ``NET_BUFFER_DATA_LENGTH(nb) = n`` is written ``nb.DataLength = n``, and the two
macros that are lvalues over an array or a union have explicit setters:
``NET_BUFFER_LIST_INFO_SET(nbl, Id, Value)`` and ``NET_BUFFER_LIST_STATUS_SET(nbl, Status)``.

NBLs and NBs come only from pools (:mod:`pyndis.nblpool`, rule 40): a descriptor built by hand
is ``FREE`` and cannot be sent. The pools reset every field on allocation.

This module is the public surface; the code lives in :mod:`pyndis.nbldesc` (descriptors,
macros, chain helpers) and :mod:`pyndis.nblops` (context DDIs, retreat, advance,
``NdisGetDataBuffer``, byte copies), kept apart for size. Pools are in :mod:`pyndis.nblpool`.

Soft checks: reading or writing an NBL's ``Status`` or ``NetBufferListInfo`` while the sender
has handed it to NDIS is a protocol violation (R48) the verifier reports; with the verifier off
that costs one table look-up.
"""

from __future__ import annotations

from types import FunctionType

from .nbldesc import (
    DEAD,
    IN_FLIGHT,
    NDIS_GET_NET_BUFFER_LIST_CANCEL_ID,
    NDIS_SET_NET_BUFFER_LIST_CANCEL_ID,
    NET_BUFFER,
    NET_BUFFER_ALLOCATE_MDL,
    NET_BUFFER_CHECKSUM_BIAS,
    NET_BUFFER_CURRENT_MDL,
    NET_BUFFER_CURRENT_MDL_OFFSET,
    NET_BUFFER_DATA_LENGTH,
    NET_BUFFER_DATA_OFFSET,
    NET_BUFFER_FIRST_MDL,
    NET_BUFFER_FREE_MDL,
    NET_BUFFER_LIST,
    NET_BUFFER_LIST_CONTEXT,
    NET_BUFFER_LIST_FIRST_NB,
    NET_BUFFER_LIST_FLAGS,
    NET_BUFFER_LIST_INFO,
    NET_BUFFER_LIST_INFO_SET,
    NET_BUFFER_LIST_MINIPORT_RESERVED,
    NET_BUFFER_LIST_NBL_FLAGS,
    NET_BUFFER_LIST_NEXT_NBL,
    NET_BUFFER_LIST_PROTOCOL_RESERVED,
    NET_BUFFER_LIST_STATUS,
    NET_BUFFER_LIST_STATUS_SET,
    NET_BUFFER_MINIPORT_RESERVED,
    NET_BUFFER_NEXT_NB,
    NET_BUFFER_PROTOCOL_RESERVED,
    DescriptorPool,
    NdisClearNblFlag,
    NdisGetPoolFromNetBuffer,
    NdisGetPoolFromNetBufferList,
    NdisSetNblFlag,
    NdisTestNblFlag,
    NdisTestNblFlags,
    RetreatRecord,
    chain_length,
    check_context_size,
    check_irql,
    dead_error,
    history_of,
    iter_nbls,
    iter_nbs,
    link_nbls,
    locate,
    partial_mdl,
)
from .nblops import (
    NET_BUFFER_LIST_CONTEXT_DATA_SIZE,
    NET_BUFFER_LIST_CONTEXT_DATA_START,
    NdisAdvanceNetBufferDataStart,
    NdisAdvanceNetBufferListDataStart,
    NdisAllocateNetBufferListContext,
    NdisFreeNetBufferListContext,
    NdisGetDataBuffer,
    NdisRetreatNetBufferDataStart,
    NdisRetreatNetBufferListDataStart,
    check_nb,
    drop_retreats,
    nb_bytes,
    nbl_bytes,
)

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
    "NET_BUFFER_LIST_CONTEXT_DATA_SIZE",
    "NET_BUFFER_LIST_CONTEXT_DATA_START",
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
    "NdisAdvanceNetBufferDataStart",
    "NdisAdvanceNetBufferListDataStart",
    "NdisAllocateNetBufferListContext",
    "NdisClearNblFlag",
    "NdisFreeNetBufferListContext",
    "NdisGetDataBuffer",
    "NdisGetPoolFromNetBuffer",
    "NdisGetPoolFromNetBufferList",
    "NdisRetreatNetBufferDataStart",
    "NdisRetreatNetBufferListDataStart",
    "NdisSetNblFlag",
    "NdisTestNblFlag",
    "NdisTestNblFlags",
    "RetreatRecord",
    "chain_length",
    "check_context_size",
    "check_irql",
    "check_nb",
    "dead_error",
    "drop_retreats",
    "history_of",
    "iter_nbls",
    "iter_nbs",
    "link_nbls",
    "locate",
    "nb_bytes",
    "nbl_bytes",
    "partial_mdl",
]


def _claim_functions() -> None:
    """Re-exported functions name this module as theirs: it is the public home of the DDIs
    (``help()``, introspection such as ``pyndis.cli.ddis``), while the code stays split over
    nbldesc and nblops for size."""
    for name in __all__:
        obj = globals()[name]
        if isinstance(obj, FunctionType):
            obj.__module__ = __name__


_claim_functions()
