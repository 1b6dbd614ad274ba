"""NDIS 6 receive path and loopback: NdisMIndicateReceiveNetBufferLists, NdisReturnNetBufferLists.

Theory of operation
-------------------
Grammar, per received NET_BUFFER_LIST::

    NdisMIndicateReceiveNetBufferLists(chain, n, flags)
        -> ProtocolReceiveNetBufferLists(context, its NBLs, n, flags)   per Running binding
           whose packet filter accepts the frame
        -> NdisReturnNetBufferLists(binding, NBLs)                      once per binding
        -> MiniportReturnNetBufferLists(NBLs)                           once, when every
                                                                         binding returned it
    with NDIS_RECEIVE_FLAGS_RESOURCES: NDIS takes the NBLs back when the indication returns;
    nobody calls NdisReturnNetBufferLists or MiniportReturnNetBufferLists for them.

Ownership: ``indicate`` (ALLOCATED -> INDICATED, the miniport lends the NBL) and
``return_indicated`` (-> ALLOCATED) when the last binding gives it back. One NBL may be
indicated to several bindings: NDIS relinks ``Next`` for each binding's call and counts the
bindings that still hold it (an :class:`RxRef` per NBL, keyed by its id while it is lent). An
NBL no binding wants goes back to the miniport at the end of the indication. A protocol must not
rewrite ``Next`` of an NBL it was indicated, nor return one twice (PY-DOUBLE-RETURN), nor
return one indicated with RESOURCES (PY-RETURN-RESOURCES). A Pausing or Paused miniport must not
indicate (rule 58).

Loopback (rules 51, 54, 55). NDIS loops a send back only when the adapter's medium is 802.3 or
802.5 and the NIC leaves loopback to NDIS (NDIS_MAC_OPTION_NO_LOOPBACK; otherwise the NIC does
it, rule 51). Per NET_BUFFER of the send, with the frame's destination address:

* to the *sender's* binding only if the send had NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK and the
  binding's filter accepts the frame (rule 54; NDIS_PROT_OPTION_NO_LOOPBACK refuses it);
* to *another* Running binding of the adapter when the adapter has more than one binding, one
  of them is PROMISCUOUS or ALL_LOCAL, that binding's filter accepts the frame and it has no
  NO_LOCAL bit (rule 55); the sender's flag does not change this.

Each looped frame is *copied* (the only payload copy on the send path: NDIS does it) into an NBL
of a pool NDIS keeps per kernel, flagged NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET, and indicated from
a DPC, so the send's own NBLs go on to the miniport unchanged. The copy is NDIS's: its return
frees it. A loopback allocation that fails (rule 67 fault injection) drops that copy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_DEFAULT_PORT_NUMBER,
    NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_PACKET_TYPE_ALL_LOCAL,
    NDIS_PACKET_TYPE_NO_LOCAL,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK,
    NdisMedium802_3,
    NdisMedium802_5,
)
from ..errors import Culprit, MiniportContractError, error_class_for
from ..mdl import MDL
from ..nbl import NET_BUFFER, NET_BUFFER_LIST, iter_nbs, link_nbls, nb_bytes
from ..nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NblPool,
    NdisAllocateNetBufferAndNetBufferList,
    NdisFreeNetBufferList,
)
from ..ownership import Event, Ownership, illegal_transition, transition
from .adapter import MiniportBlock, adapter_handle
from .binding import OpenBlock, binding_accepts, binding_handle
from .covc import VirtualConnection, vc_can_indicate, vc_from_handle
from .ddi6 import (
    RECEIVE,
    RETURN,
    enter,
    locked,
    nbl_length,
    not_an_nbl,
    null_chain,
    passed_flags,
)
from .states import AdapterState, BindingState

if TYPE_CHECKING:
    from .kernel import Ndis

_RX_RESOURCES = int(NDIS_RECEIVE_FLAGS_RESOURCES)
_CHECK_FOR_LOOPBACK = int(NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
_ALLOCATED = Ownership.ALLOCATED
_INDICATED = Ownership.INDICATED
_RUNNING = BindingState.RUNNING
_LOOPBACK_MEDIA = (int(NdisMedium802_3), int(NdisMedium802_5))
_WIDE_OPEN = int(NDIS_PACKET_TYPE_PROMISCUOUS | NDIS_PACKET_TYPE_ALL_LOCAL)


class RxRef:
    """One NBL lent to overlying drivers: who holds it and where it goes back."""

    __slots__ = ("adapter", "holders", "nbl", "resources", "vc")

    def __init__(
        self,
        nbl: NET_BUFFER_LIST,
        adapter: MiniportBlock | None,
        resources: bool,
        vc: VirtualConnection | None = None,
    ) -> None:
        self.nbl = nbl
        #: the VC it was indicated on (CoNDIS), for its receive counters
        self.vc = vc
        #: the miniport that lent it (None: an NDIS loopback copy, freed on return)
        self.adapter = adapter
        #: the bindings that have it and have not returned it
        self.holders: list[OpenBlock] = []
        self.resources = resources


def nb_destination(nb: NET_BUFFER | None) -> bytes:
    """The destination MAC address of a frame (b"" if it is shorter than one)."""
    if nb is None or nb.DataLength < 6:
        return b""
    mdl = nb.CurrentMdl
    offset = nb.CurrentMdlOffset
    if mdl is not None and mdl.ByteCount - offset >= 6:
        start = mdl.ByteOffset + offset
        return bytes(mdl.MappedSystemVa[start : start + 6])
    out = bytearray()
    while mdl is not None and len(out) < 6:
        start = mdl.ByteOffset + offset
        out += mdl.MappedSystemVa[start : start + min(mdl.ByteCount - offset, 6 - len(out))]
        mdl = mdl.Next
        offset = 0
    return bytes(out)


def frame_destination(nbl: NET_BUFFER_LIST) -> bytes:
    """The destination MAC address of an NBL's first frame."""
    return nb_destination(nbl.FirstNetBuffer)


def _check_not_paused(adapter: MiniportBlock, ddi: str) -> None:
    """Rule 58: a Pausing or Paused miniport must not indicate receives."""
    if adapter.state in (AdapterState.PAUSING, AdapterState.PAUSED):
        raise MiniportContractError(
            f"{ddi} on {adapter!r}: a pausing or paused miniport must not indicate receives",
            rule="R58",
            culprit=adapter.driver.culprit,
        )


class Receive6Ddis:
    """NdisMIndicateReceiveNetBufferLists, NdisReturnNetBufferLists, NDIS 6 loopback."""

    _r6_held: dict[int, RxRef]
    _r6_loop_pool: NblPool | None
    _r6_loop_pending: int

    def _init_receive6(self) -> None:
        #: id(NBL) -> RxRef while the NBL is lent to overlying drivers
        self._r6_held = {}
        self._r6_loop_pool = None
        #: loopback copies made but not yet indicated (their DPC has not run)
        self._r6_loop_pending = 0

    # --- NdisMIndicateReceiveNetBufferLists -------------------------------------------------------
    @locked
    def NdisMIndicateReceiveNetBufferLists(
        self,
        MiniportAdapterHandle: MiniportBlock,
        NetBufferLists: NET_BUFFER_LIST | None,
        PortNumber: int,
        NumberOfNetBufferLists: int,
        ReceiveFlags: int,
    ) -> None:
        """Lend received NBLs to the Running bindings whose filter accepts them.
        Caller: IRQL <= DISPATCH_LEVEL; the miniport is Running."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = adapter_handle(MiniportAdapterHandle)
        driver = adapter.driver
        ddi = "NdisMIndicateReceiveNetBufferLists"
        enter(ndis, driver, ddi, ReceiveFlags, RECEIVE, "R62")
        _check_not_paused(adapter, ddi)
        nbls = self._r6_lend(NetBufferLists, NumberOfNetBufferLists, driver.culprit, ddi)
        targets = [b for b in adapter.bindings if b.state is _RUNNING and b.protocol.major >= 6]
        ndis.scheduler.trace("receive6", adapter.name, len(nbls))
        self._r6_indicate(adapter, nbls, targets, PortNumber, ReceiveFlags)

    def _r6_lend(
        self, head: NET_BUFFER_LIST | None, number: int, culprit: Any, ddi: str
    ) -> list[NET_BUFFER_LIST]:
        """Check a receive chain and move every NBL to INDICATED."""
        if head is None:
            raise null_chain(ddi, culprit)
        nbls: list[NET_BUFFER_LIST] = []
        nbl: NET_BUFFER_LIST | None = head
        while nbl is not None:
            if type(nbl) is not NET_BUFFER_LIST:
                raise not_an_nbl(ddi, nbl)
            if nbl.ownership is not _ALLOCATED:
                raise illegal_transition(nbl, Event.INDICATE, culprit)
            nbls.append(nbl)
            if len(nbls) > number:
                break
            nbl = nbl.Next
        if len(nbls) != number:
            raise error_class_for(culprit)(
                f"{ddi}: NumberOfNetBufferLists is {number} but the chain holds "
                f"{'more' if len(nbls) > number else len(nbls)}",
                rule="PY-NBL-COUNT",
            )
        for nbl in nbls:
            transition(nbl, Event.INDICATE)
        return nbls

    def _r6_indicate(
        self,
        adapter: MiniportBlock | None,
        nbls: list[NET_BUFFER_LIST],
        targets: list[OpenBlock],
        port: int,
        flags: int,
        filtered: bool = False,
    ) -> None:
        """Lend ``nbls`` (INDICATED) to each target binding whose filter accepts them (all of
        them if ``filtered``); what nobody keeps goes back at the end (to ``adapter``, or freed
        if NDIS's own loopback copy)."""
        ndis: Ndis = self  # type: ignore[assignment]
        held = self._r6_held
        resources = bool(flags & _RX_RESOURCES)
        refs = [RxRef(nbl, adapter, resources) for nbl in nbls]
        dests = [b"" if filtered else frame_destination(nbl) for nbl in nbls]
        plan: list[tuple[OpenBlock, list[NET_BUFFER_LIST]]] = []
        for binding in targets:
            mine: list[NET_BUFFER_LIST] = []
            for ref, dest in zip(refs, dests, strict=True):
                if filtered or binding_accepts(binding, dest):
                    mine.append(ref.nbl)
                    ref.holders.append(binding)
            if mine:
                plan.append((binding, mine))
        for ref in refs:
            held[id(ref.nbl)] = ref
        up_flags = passed_flags(flags, RECEIVE, ndis.irql.level)
        for binding, mine in plan:
            head = link_nbls(mine)
            ndis.call(
                binding.protocol,
                "ProtocolReceiveNetBufferLists",
                binding.ProtocolBindingContext,
                head,
                port,
                len(mine),
                up_flags,
            )
        self._r6_settle(refs, adapter, resources)

    def _r6_settle(self, refs: list[RxRef], adapter: MiniportBlock | None, resources: bool) -> None:
        """After an indication: with RESOURCES every NBL is NDIS's again; otherwise those no
        binding kept go back now (to the miniport, or freed if NDIS's own copies)."""
        held = self._r6_held
        back: list[NET_BUFFER_LIST] = []
        for ref in refs:
            if held.get(id(ref.nbl)) is not ref:
                continue  # every holder returned it during its indication
            if resources or not ref.holders:
                del held[id(ref.nbl)]
                note = "NDIS reclaims it (RESOURCES)" if resources else "no binding wanted it"
                transition(ref.nbl, Event.RETURN_INDICATED, note)
                back.append(ref.nbl)
        if back and (adapter is None or not resources):
            self._r6_give_back(adapter, back)

    # --- CoNDIS: NdisMCoIndicateReceiveNetBufferLists ---------------------------------------------
    @locked
    def NdisMCoIndicateReceiveNetBufferLists(
        self,
        NdisVcHandle: VirtualConnection,
        NetBufferLists: NET_BUFFER_LIST | None,
        NumberOfNetBufferLists: int,
        CoReceiveFlags: int,
    ) -> None:
        """Lend received NBLs to the owner of an activated VC: ProtocolCoReceiveNetBufferLists(
        ProtocolBindingContext, ProtocolVcContext, ...); they come back through
        NdisReturnNetBufferLists on the owner's binding (unless RESOURCES)."""
        ndis: Ndis = self  # type: ignore[assignment]
        ddi = "NdisMCoIndicateReceiveNetBufferLists"
        vc = vc_from_handle(NdisVcHandle, ddi, Culprit.MINIPORT)
        adapter = vc.adapter
        driver = adapter.driver
        level = enter(ndis, driver, ddi, CoReceiveFlags, RECEIVE, "R62")
        if not vc_can_indicate(vc):
            raise MiniportContractError(
                f"{ddi} on {vc!r}: a miniport indicates receives only on an activated VC",
                rule="R32",
                culprit=driver.culprit,
                subject=vc,
            )
        _check_not_paused(adapter, ddi)
        nbls = self._r6_lend(NetBufferLists, NumberOfNetBufferLists, driver.culprit, ddi)
        resources = bool(CoReceiveFlags & _RX_RESOURCES)
        owner = vc.owner
        counters = vc.counters
        counters.indicated += len(nbls)
        counters.bytes_received += nbl_length(nbls)
        refs = [RxRef(nbl, adapter, resources, vc) for nbl in nbls]
        for ref in refs:
            ref.holders.append(owner)
            self._r6_held[id(ref.nbl)] = ref
        flags = passed_flags(CoReceiveFlags, RECEIVE, level)
        ndis.scheduler.trace("coreceive6", adapter.name, vc.index, len(nbls))
        ndis.call(
            vc.sender,
            "ProtocolCoReceiveNetBufferLists",
            owner.ProtocolBindingContext,
            vc.ProtocolVcContext,
            link_nbls(nbls),
            len(nbls),
            flags,
        )
        self._r6_settle(refs, adapter, resources)

    # --- NdisReturnNetBufferLists -----------------------------------------------------------------
    @locked
    def NdisReturnNetBufferLists(
        self, NdisBindingHandle: OpenBlock, NetBufferLists: NET_BUFFER_LIST | None, ReturnFlags: int
    ) -> None:
        """Give back NBLs this binding was indicated (any number, any order, in one chain).
        Caller: IRQL <= DISPATCH_LEVEL."""
        ndis: Ndis = self  # type: ignore[assignment]
        binding = binding_handle(NdisBindingHandle)
        protocol = binding.protocol
        ddi = "NdisReturnNetBufferLists"
        enter(ndis, protocol, ddi, ReturnFlags, RETURN, "R62")
        if NetBufferLists is None:
            raise null_chain(ddi, protocol.culprit)
        held = self._r6_held
        refs: list[RxRef] = []
        nbl: NET_BUFFER_LIST | None = NetBufferLists
        while nbl is not None:
            if type(nbl) is not NET_BUFFER_LIST:
                raise not_an_nbl(ddi, nbl)
            ref = held.get(id(nbl))
            if ref is None or binding not in ref.holders:
                if nbl.ownership is not _INDICATED:
                    raise illegal_transition(nbl, Event.RETURN_INDICATED, protocol.culprit)
                raise error_class_for(protocol.culprit)(
                    f"{ddi} on {binding!r}: {nbl!r} was not indicated to this binding, or it "
                    "returned it already",
                    rule="PY-DOUBLE-RETURN",
                    subject=nbl,
                )
            if ref.resources:
                raise error_class_for(protocol.culprit)(
                    f"{ddi}: {nbl!r} was indicated with NDIS_RECEIVE_FLAGS_RESOURCES; NDIS takes "
                    "it back when the receive handler returns, the protocol must not return it",
                    rule="PY-RETURN-RESOURCES",
                    subject=nbl,
                )
            if ref in refs:
                raise error_class_for(protocol.culprit)(
                    f"{ddi}: {nbl!r} appears twice in the chain (or Next loops)",
                    rule="PY-DOUBLE-RETURN",
                    subject=nbl,
                )
            refs.append(ref)
            nbl = nbl.Next
        per_adapter: dict[MiniportBlock | None, list[NET_BUFFER_LIST]] = {}
        for ref in refs:
            ref.holders.remove(binding)
            if not ref.holders:
                del held[id(ref.nbl)]
                transition(ref.nbl, Event.RETURN_INDICATED)
                per_adapter.setdefault(ref.adapter, []).append(ref.nbl)
        ndis.scheduler.trace("return6", protocol.name, len(refs))
        for adapter, nbls in per_adapter.items():
            self._r6_give_back(adapter, nbls)

    def _r6_give_back(self, adapter: MiniportBlock | None, nbls: list[NET_BUFFER_LIST]) -> None:
        """NBLs nobody holds any more go back where they came from: MiniportReturnNetBufferLists
        to ``adapter``, or freed if NDIS's own loopback copies (``adapter`` None)."""
        ndis: Ndis = self  # type: ignore[assignment]
        if adapter is None:
            self._r6_free_copies(nbls)
            return
        flags = passed_flags(0, RETURN, ndis.irql.level)
        ndis.scheduler.trace("miniport-return6", adapter.name, len(nbls))
        ndis.call(
            adapter.driver,
            "MiniportReturnNetBufferLists",
            adapter.MiniportAdapterContext,
            link_nbls(nbls),
            flags,
        )

    # --- loopback (rules 51, 54, 55) --------------------------------------------------------------
    def _r6_loopback(self, sender: OpenBlock, head: NET_BUFFER_LIST, send_flags: int) -> None:
        """Copy what a send loops back and queue its indication (called before submission)."""
        ndis: Ndis = self  # type: ignore[assignment]
        adapter = sender.adapter
        if adapter.medium not in _LOOPBACK_MEDIA or not adapter.ndis_loops_back:
            return
        to_self = bool(send_flags & _CHECK_FOR_LOOPBACK) and sender.state is _RUNNING
        others: list[OpenBlock] = []
        bindings = adapter.bindings
        if len(bindings) > 1 and any(b.packet_filter & _WIDE_OPEN for b in bindings):
            others = [
                b
                for b in bindings
                if b is not sender
                and b.state is _RUNNING
                and b.protocol.major >= 6
                and not b.packet_filter & NDIS_PACKET_TYPE_NO_LOCAL
            ]
        if not (to_self or others):
            return
        per_target: dict[int, tuple[OpenBlock, list[NET_BUFFER_LIST]]] = {}
        nbl: NET_BUFFER_LIST | None = head
        while nbl is not None:
            for nb in iter_nbs(nbl):
                dest = nb_destination(nb)
                wanted = [sender] if to_self and binding_accepts(sender, dest, sender) else []
                wanted += [b for b in others if binding_accepts(b, dest, sender)]
                for target in wanted:
                    copy = self._r6_copy(nb)
                    if copy is not None:
                        per_target.setdefault(id(target), (target, []))[1].append(copy)
            nbl = nbl.Next
        for target, copies in per_target.values():
            self._r6_loop_pending += len(copies)
            ndis.scheduler.trace(
                "loopback6", sender.protocol.name, target.protocol.name, len(copies)
            )
            ndis.scheduler.queue_dpc(self._r6_loop_dpc, target, copies, label="loopback")

    def _r6_copy(self, nb: NET_BUFFER) -> NET_BUFFER_LIST | None:
        """An NDIS-owned NBL holding a copy of one frame, flagged IS_LOOPBACK_PACKET."""
        ndis: Ndis = self  # type: ignore[assignment]
        pool = self._r6_loop_pool
        if pool is None:
            params = NET_BUFFER_LIST_POOL_PARAMETERS(fAllocateNetBuffer=True, PoolTag="lpbk")
            pool = ndis.NdisAllocateNetBufferListPool(None, params)
            if pool is None:
                return None
            self._r6_loop_pool = pool
        data = bytearray(nb_bytes(nb))
        mdl = MDL(data, len(data), None)
        mdl.history = ndis.history()
        copy = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, len(data))
        if copy is None:
            transition(mdl, Event.FREE)
            return None
        copy.NblFlags |= NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET
        return copy

    @locked
    def _r6_loop_dpc(self, target: OpenBlock, copies: list[NET_BUFFER_LIST]) -> None:
        self._r6_loop_pending -= len(copies)
        if target.state is not _RUNNING:
            self._r6_free_copies(copies)
            return
        for copy in copies:
            transition(copy, Event.INDICATE, "loopback")
        self._r6_indicate(None, copies, [target], NDIS_DEFAULT_PORT_NUMBER, 0, filtered=True)

    def _r6_free_copies(self, copies: list[NET_BUFFER_LIST]) -> None:
        for copy in copies:
            nb = copy.FirstNetBuffer
            mdl = nb.MdlChain if nb is not None else None
            NdisFreeNetBufferList(copy)
            if mdl is not None:
                transition(mdl, Event.FREE)

    def _r6_lost(self) -> list[str]:
        problems: list[str] = []
        lent: dict[str, int] = {}
        for ref in self._r6_held.values():
            if ref.vc is not None:
                name = repr(ref.vc)
            elif ref.adapter is not None:
                name = ref.adapter.name
            else:
                name = "NDIS loopback"
            lent[name] = lent.get(name, 0) + 1
        for name, count in lent.items():
            problems.append(f"{count} received NBL(s) of {name} indicated and never returned")
        if self._r6_loop_pending:
            problems.append(f"{self._r6_loop_pending} loopback indication(s) not yet made")
        return problems


__all__ = ["Receive6Ddis", "RxRef", "frame_destination", "nb_destination"]
