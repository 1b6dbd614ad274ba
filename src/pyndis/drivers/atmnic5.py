"""An ATM-like NIC and its CoNDIS 5.1 miniport: per-VC queues, an integrated call manager.

Theory of operation
-------------------
Hardware, as the driver sees it: one link (a :class:`~pyndis.wire.Wire` port) at ``link_bps``;
a transmit scheduler that takes one frame from each VC with something queued, round robin, and
puts up to ``tx_burst`` of them on the link as one burst (each frame tagged ``>II``: VCI,
length); a receive side that splits a burst and DMAs each frame into one of ``rx_packets``
receive buffers. A burst occupies the link for its serialization time; the next one waits.

Driver (CoNDIS, always deserialized). ``MiniportCoSendPackets`` queues packets on their VC
(per-VC FIFO). A packet completes (``NdisMCoSendComplete``, from a DPC at DISPATCH_LEVEL) when
the burst that carried it has left the link -- or, on an "intelligent NIC"
(``early_complete``), as soon as its bytes were copied ("downloaded") into the NIC, *unless*
the VC was activated with INDICATE_END_OF_TX, which forbids completing before the data is out
(rule 37). ``completion`` sets the order inside each batch: ``fifo``, ``reverse``, or ``random``
(drawn from the kernel's seeded random source). Receives are indicated per VC with
``NdisMCoIndicateReceivePacket``; a packet the client keeps comes back through
``MiniportReturnPacket``; below ``rx_low_water`` free buffers they are indicated with
NDIS_STATUS_RESOURCES (the client must copy).

Activation: ``MiniportCoActivateVc`` maps the VCI to the VC (``activate_pending`` answers
PENDING and completes from a DPC). Deactivation (rule 32): ``deactivate_mode`` ``drain`` (the
default) waits until every queued frame of the VC is on the link and completed, pending if it
must; ``abort`` completes what is still queued with NDIS_STATUS_CLOSING at once.

Integrated call manager (``integrated_cm``, default True): the adapter registers the ATM address
family itself (an MCM) and runs the signalling of :mod:`.atmsig` on VCI 5 inside the NIC; NDIS
then never calls MiniportCoActivateVc/DeactivateVc for its calls (NdisMCmActivateVc tells NDIS).
With ``integrated_cm=False`` it is a plain CoNDIS miniport for the stand-alone CM of
:mod:`.cmproto5`, which opens its own signalling VC on VCI 5.

Registry keywords (``ndis.add_adapter(handle, name, **kw)``): ``wire``; ``integrated_cm``
(True); ``vci_range`` ((32, 4095)); ``link_bps`` (155_520_000); ``tx_burst`` (32);
``early_complete`` (False); ``completion`` ("fifo"); ``rx_packets`` (256); ``rx_low_water`` (0);
``max_sdu`` (9180); ``activate_pending`` (False); ``deactivate_mode`` ("drain"); ``cm_pend``
(False: the MCM answers ProtocolCmOpenAf/RegisterSap at once); ``drop_every`` (0: N > 0 never
completes every N-th packet). ``faults`` (a set of names) injects contract violations for the
tests: ``double_complete``, ``pending_status``, ``wrong_vc``, ``early_end_of_tx``,
``inline_complete``, ``deactivate_with_pending``, ``indicate_after_deactivate``,
``create_vc_pending``.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    INDICATE_END_OF_TX,
    NDIS_ATTRIBUTE_DESERIALIZE,
    OID_GEN_LINK_SPEED,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    NdisMediumAtm,
)
from ..library.covc import CO_CALL_PARAMETERS, CO_SAP, media_flags
from ..mdl import NdisAdjustBufferLength, NdisAllocateBuffer, NdisFreeBuffer
from ..packet import (
    NDIS_GET_PACKET_STATUS,
    NDIS_PACKET,
    NDIS_SET_PACKET_STATUS,
    NdisChainBufferAtFront,
    NdisUnchainBufferAtFront,
    packet_bytes,
)
from ..pools import NdisAllocatePacket, NdisFreePacket
from ..status import NDIS_STATUS
from .atmsig import ATM_ADDRESS_FAMILY, SIGNALLING_VCI, Call, CallControl, Done, vc_parameters

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.covc import AfBlock, SapBlock, VirtualConnection
    from ..library.kernel import Ndis
    from ..mdl import MDL, BufferPool
    from ..pools import PacketPool

#: The tag in front of every frame of a burst: VCI, length.
FRAME_HEADER = struct.Struct(">II")

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES
FAULTS = frozenset(
    {
        "double_complete",
        "pending_status",
        "wrong_vc",
        "early_end_of_tx",
        "inline_complete",
        "deactivate_with_pending",
        "indicate_after_deactivate",
        "create_vc_pending",
    }
)


class AtmVc:
    """The NIC's per-VC state: MiniportVcContext (and the MCM's CallMgrVcContext)."""

    __slots__ = (
        "active",
        "adapter",
        "call",
        "drain_waiters",
        "end_of_tx",
        "handle",
        "in_ready",
        "rx_frames",
        "tx_frames",
        "tx_queue",
        "unfinished",
        "vci",
    )

    def __init__(self, adapter: AtmAdapter, handle: VirtualConnection | None = None) -> None:
        self.adapter = adapter
        self.handle = handle
        self.vci = 0
        self.active = False
        self.end_of_tx = False
        #: queued frames: an NDIS_PACKET (copied when it goes out) or bytes (downloaded)
        self.tx_queue: deque[NDIS_PACKET | bytes] = deque()
        self.in_ready = False
        #: packets handed to us and not yet completed
        self.unfinished = 0
        self.drain_waiters: list[Callable[[], None]] = []
        self.call: Call | None = None
        self.tx_frames = 0
        self.rx_frames = 0

    @property
    def drained(self) -> bool:
        return not self.tx_queue and self.unfinished == 0

    def __repr__(self) -> str:
        return (
            f"<AtmVc vci={self.vci} {'active' if self.active else 'idle'} q={len(self.tx_queue)}>"
        )


class AtmAf:
    """The MCM's CallMgrAfContext."""

    __slots__ = ("handle",)

    def __init__(self, handle: AfBlock) -> None:
        self.handle = handle


class AtmSap:
    """The MCM's CallMgrSapContext."""

    __slots__ = ("af", "handle", "selector")

    def __init__(self, af: AtmAf, selector: bytes, handle: SapBlock) -> None:
        self.af = af
        self.selector = selector
        self.handle = handle


class RxSlot:
    """One receive buffer: a packet, its buffer descriptor and the memory it maps."""

    __slots__ = ("buf", "mdl", "packet")

    def __init__(self, packet: NDIS_PACKET, mdl: MDL, buf: bytearray) -> None:
        self.packet = packet
        self.mdl = mdl
        self.buf = buf


class AtmAdapter:
    """One NIC: its MiniportAdapterContext."""

    def __init__(self, ndis: Ndis, handle: MiniportBlock, config: AdapterConfig) -> None:
        self.ndis = ndis
        self.handle = handle
        self.name = config.name
        get = config.get
        self.link_bps = int(get("link_bps", 155_520_000))
        self.tx_burst = int(get("tx_burst", 32))
        self.early_complete = bool(get("early_complete", False))
        self.completion = str(get("completion", "fifo"))
        self.rx_packets = int(get("rx_packets", 256))
        self.rx_low_water = int(get("rx_low_water", 0))
        self.max_sdu = int(get("max_sdu", 9180))
        self.activate_pending = bool(get("activate_pending", False))
        self.deactivate_mode = str(get("deactivate_mode", "drain"))
        self.cm_pend = bool(get("cm_pend", False))
        self.drop_every = int(get("drop_every", 0))
        self.faults = frozenset(get("faults", ()))
        unknown = self.faults - FAULTS
        if unknown or self.completion not in ("fifo", "reverse", "random"):
            raise ValueError(f"atmnic5: unknown fault(s) {sorted(unknown)} or completion")
        wire = get("wire")
        self.port = wire.attach(ndis, self._wire_receive, self.name) if wire is not None else None
        self.halted = False
        self.rx_vcs: dict[int, AtmVc] = {}
        self.tx_ready: deque[AtmVc] = deque()
        self.tx_item: Any = None
        self.tx_free_at = 0
        self.packet_pool: PacketPool | None = None
        self.buffer_pool: BufferPool | None = None
        self.rx_free: list[RxSlot] = []
        self.rx_slot: dict[NDIS_PACKET, RxSlot] = {}
        self.saps: dict[bytes, AtmSap] = {}
        self.vcs: list[AtmVc] = []
        self.accepted = 0  # packets handed to us, for drop_every and double_complete
        self.counters = {"tx_bursts": 0, "tx_bytes": 0, "rx_frames": 0, "rx_dropped": 0}
        self.counters.update({"rx_no_buffer": 0, "dropped_sends": 0, "completed": 0})
        self.cm: McmCallControl | None = None
        if get("integrated_cm", True):
            self.cm = McmCallControl(self, tuple(get("vci_range", (32, 4095))))
        #: the signalling channel of the integrated CM (VCI 5, not an NDIS VC)
        self.sig_vc = AtmVc(self)
        self.sig_vc.vci = SIGNALLING_VCI

    # --- resources --------------------------------------------------------------------------------
    def allocate(self) -> NDIS_STATUS:
        ndis = self.ndis
        status, self.packet_pool = ndis.NdisAllocatePacketPool(self.rx_packets, 16)
        if status != _SUCCESS or self.packet_pool is None:
            return NDIS_STATUS.RESOURCES
        status, self.buffer_pool = ndis.NdisAllocateBufferPool(self.rx_packets)
        for _ in range(self.rx_packets):
            status, packet = NdisAllocatePacket(self.packet_pool)
            buf = bytearray(self.max_sdu)
            b_status, mdl = NdisAllocateBuffer(self.buffer_pool, buf, self.max_sdu)
            assert packet is not None and mdl is not None
            NdisChainBufferAtFront(packet, mdl)
            slot = RxSlot(packet, mdl, buf)
            self.rx_free.append(slot)
            self.rx_slot[packet] = slot
        return _SUCCESS

    def free(self) -> None:
        self.halted = True
        for slot in self.rx_slot.values():
            NdisUnchainBufferAtFront(slot.packet)
            NdisFreeBuffer(slot.mdl)
            NdisFreePacket(slot.packet)
        self.rx_slot.clear()
        self.rx_free.clear()
        if self.packet_pool is not None:
            self.ndis.NdisFreePacketPool(self.packet_pool)
        if self.buffer_pool is not None:
            self.ndis.NdisFreeBufferPool(self.buffer_pool)

    # --- activation ---------------------------------------------------------------------------------
    def hw_activate(self, vc: AtmVc, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        vci = vc_parameters(params).Vci
        other = self.rx_vcs.get(vci)
        if other is not None and other is not vc:
            return NDIS_STATUS.INVALID_ADDRESS
        if vc.vci in self.rx_vcs and self.rx_vcs[vc.vci] is vc:
            del self.rx_vcs[vc.vci]
        vc.vci = vci
        self.rx_vcs[vci] = vc
        vc.active = True
        end_of_tx = bool(media_flags(params) & INDICATE_END_OF_TX)
        vc.end_of_tx = end_of_tx and "early_end_of_tx" not in self.faults
        return _SUCCESS

    def hw_deactivate(self, vc: AtmVc) -> None:
        vc.active = False
        if "indicate_after_deactivate" not in self.faults and self.rx_vcs.get(vc.vci) is vc:
            del self.rx_vcs[vc.vci]

    def when_drained(self, vc: AtmVc, then: Callable[[], None]) -> None:
        """Run ``then`` once every frame queued on ``vc`` has left and completed."""
        if vc.drained or "deactivate_with_pending" in self.faults:
            then()
        else:
            vc.drain_waiters.append(then)

    def abort(self, vc: AtmVc) -> None:
        """Complete every packet still queued on ``vc`` with CLOSING; drop downloaded bytes."""
        queue, vc.tx_queue = vc.tx_queue, deque()
        victims = [(vc, e) for e in queue if type(e) is NDIS_PACKET]
        self._complete(victims, NDIS_STATUS.CLOSING)

    def _check_drained(self, vc: AtmVc) -> None:
        if vc.drain_waiters and vc.drained:
            waiters, vc.drain_waiters = vc.drain_waiters, []
            for then in waiters:
                then()

    # --- transmit -----------------------------------------------------------------------------------
    def send_packets(self, vc: AtmVc, packets: Sequence[NDIS_PACKET], count: int) -> None:
        """MiniportCoSendPackets: queue in order; completions come later (or, for an
        intelligent NIC, as soon as the bytes are downloaded)."""
        download = self.early_complete and not vc.end_of_tx
        inline = "inline_complete" in self.faults
        queue = vc.tx_queue
        early: list[tuple[AtmVc, NDIS_PACKET]] = []
        for i in range(count):
            packet = packets[i]
            self.accepted += 1
            if self.drop_every and self.accepted % self.drop_every == 0:
                self.counters["dropped_sends"] += 1  # lost: never completed (a buggy NIC)
                continue
            if download or inline:
                queue.append(packet_bytes(packet))
                early.append((vc, packet))
            else:
                queue.append(packet)
                vc.unfinished += 1
        if inline:
            self._complete(early, _SUCCESS)
        elif early:
            self.ndis.scheduler.queue_dpc(self._complete, early, _SUCCESS, label="atm-download")
        if queue and not vc.in_ready:
            vc.in_ready = True
            self.tx_ready.append(vc)
        self._kick()

    def send_signal(self, message: bytes) -> None:
        sig = self.sig_vc
        sig.tx_queue.append(message)
        if not sig.in_ready:
            sig.in_ready = True
            self.tx_ready.append(sig)
        self._kick()

    def _kick(self) -> None:
        if self.tx_item is None and self.tx_ready and not self.halted:
            sched = self.ndis.scheduler
            self.tx_item = sched.call_at(
                max(sched.now_ns, self.tx_free_at), self._tx, label="atm-tx"
            )

    def _tx(self) -> None:
        """Transmit DPC: one burst, round robin over the VCs with frames queued."""
        self.tx_item = None
        ready = self.tx_ready
        parts: list[bytes] = []
        done: list[tuple[AtmVc, NDIS_PACKET]] = []
        touched: list[AtmVc] = []
        pack = FRAME_HEADER.pack
        count = 0
        while ready and count < self.tx_burst:
            vc = ready.popleft()
            entry = vc.tx_queue.popleft()
            if type(entry) is bytes:
                data = entry
            else:
                assert isinstance(entry, NDIS_PACKET)
                data = packet_bytes(entry)
                done.append((vc, entry))
            parts.append(pack(vc.vci, len(data)))
            parts.append(data)
            vc.tx_frames += 1
            count += 1
            if vc.tx_queue:
                ready.append(vc)
            else:
                vc.in_ready = False
                touched.append(vc)
        frame = b"".join(parts)
        sched = self.ndis.scheduler
        self.tx_free_at = sched.now_ns + len(frame) * 8 * 1_000_000_000 // self.link_bps
        self.counters["tx_bursts"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self.port is not None:
            self.port.transmit(frame)
        if done:
            sched.call_at(self.tx_free_at, self._complete, done, _SUCCESS, label="atm-tx-done")
        for vc in touched:
            self._check_drained(vc)
        self._kick()

    def _complete(self, batch: list[tuple[AtmVc, NDIS_PACKET]], status: NDIS_STATUS) -> None:
        """Completion DPC: NdisMCoSendComplete for a batch, in the configured order."""
        if self.completion == "random":
            self.ndis.scheduler.random.shuffle(batch)
        elif self.completion == "reverse":
            batch.reverse()
        complete = self.ndis.NdisMCoSendComplete
        faults = self.faults
        for vc, packet in batch:
            if vc.handle is None:
                continue
            final = _PENDING if "pending_status" in faults else status
            handle = vc.handle
            if "wrong_vc" in faults:
                other = next((v for v in self.vcs if v is not vc and v.handle is not None), vc)
                handle = other.handle
            if vc.tx_queue is not None and packet not in ():  # keep mypy calm about types
                pass
            complete(final, handle, packet)
            if "double_complete" in faults:
                complete(final, handle, packet)
            self.counters["completed"] += 1
        for vc in {id(v): v for v, _ in batch}.values():
            vc.unfinished -= sum(1 for v, p in batch if v is vc and p is not None) if False else 0
        for vc, _ in batch:
            pass
        self._after_completion(batch)

    def _after_completion(self, batch: list[tuple[AtmVc, NDIS_PACKET]]) -> None:
        seen: list[AtmVc] = []
        for vc, _ in batch:
            if vc not in seen:
                seen.append(vc)
        for vc in seen:
            self._check_drained(vc)

    # --- receive ------------------------------------------------------------------------------------
    def _wire_receive(self, frame: bytes) -> None:
        """The link delivered a burst (at DISPATCH_LEVEL): DMA, then indicate per VC."""
        if self.halted:
            return
        view = memoryview(frame)
        unpack = FRAME_HEADER.unpack_from
        size = FRAME_HEADER.size
        groups: dict[AtmVc, list[RxSlot]] = {}
        counters = self.counters
        offset = 0
        end = len(frame)
        free = self.rx_free
        while offset < end:
            vci, length = unpack(frame, offset)
            offset += size
            payload = view[offset : offset + length]
            offset += length
            if vci == SIGNALLING_VCI and self.cm is not None:
                self.cm.on_signal(payload)
                continue
            vc = self.rx_vcs.get(vci)
            if vc is None:
                counters["rx_dropped"] += 1
                continue
            if not free:
                counters["rx_no_buffer"] += 1
                continue
            slot = free.pop()
            slot.buf[:length] = payload
            NdisAdjustBufferLength(slot.mdl, length)
            low = len(free) < self.rx_low_water
            NDIS_SET_PACKET_STATUS(slot.packet, _RESOURCES if low else _SUCCESS)
            vc.rx_frames += 1
            counters["rx_frames"] += 1
            group = groups.get(vc)
            if group is None:
                groups[vc] = [slot]
            else:
                group.append(slot)
        indicate = self.ndis.NdisMCoIndicateReceivePacket
        for vc, slots in groups.items():
            packets = [s.packet for s in slots]
            indicate(vc.handle, packets, len(packets))
            for slot in slots:
                if NDIS_GET_PACKET_STATUS(slot.packet) != _PENDING:
                    free.append(slot)
        if groups:
            self.ndis.NdisMCoReceiveComplete(self.handle)

    def return_packet(self, packet: NDIS_PACKET) -> None:
        self.rx_free.append(self.rx_slot[packet])

    def __repr__(self) -> str:
        return f"<AtmAdapter {self.name!r} vcs={len(self.vcs)}>"


class McmCallControl(CallControl):
    """The NIC's integrated call manager: the atmsig call control over the NdisMCm DDIs."""

    def __init__(self, adapter: AtmAdapter, vci_range: tuple[int, ...]) -> None:
        super().__init__((int(vci_range[0]), int(vci_range[1])))
        self.adapter = adapter
        self.ndis = adapter.ndis

    def send_signal(self, message: bytes) -> None:
        self.signals_sent += 1
        self.adapter.send_signal(message)

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        self.ndis.scheduler.queue_dpc(fn, *args, label="atm-mcm")

    def activate(self, vc: Any, params: CO_CALL_PARAMETERS, done: Done) -> None:
        status = self.adapter.hw_activate(vc, params)
        if status == _SUCCESS:
            self.ndis.NdisMCmActivateVc(vc.handle, params)
        done(status)

    def deactivate(self, vc: Any, done: Done) -> None:
        def drained() -> None:
            self.adapter.hw_deactivate(vc)
            self.ndis.NdisMCmDeactivateVc(vc.handle)
            done(_SUCCESS)

        self.adapter.when_drained(vc, drained)

    def make_call_complete(self, vc: Any, status: NDIS_STATUS, params: CO_CALL_PARAMETERS) -> None:
        self.ndis.NdisMCmMakeCallComplete(status, vc.handle, None, None, params)

    def close_call_complete(self, vc: Any) -> None:
        self.ndis.NdisMCmCloseCallComplete(_SUCCESS, vc.handle, None)

    def create_incoming_vc(self, af: Any) -> tuple[NDIS_STATUS, Any]:
        vc = AtmVc(self.adapter)
        status, handle = self.ndis.NdisMCmCreateVc(self.adapter.handle, af.handle, vc)
        vc.handle = handle
        if status == _SUCCESS:
            self.adapter.vcs.append(vc)
        return status, vc

    def delete_vc(self, vc: Any) -> None:
        self.ndis.NdisMCmDeleteVc(vc.handle)
        if vc in self.adapter.vcs:
            self.adapter.vcs.remove(vc)

    def dispatch_incoming(self, sap: Any, vc: Any, params: CO_CALL_PARAMETERS) -> NDIS_STATUS:
        return self.ndis.NdisMCmDispatchIncomingCall(sap.handle, vc.handle, params)

    def dispatch_connected(self, vc: Any) -> None:
        self.ndis.NdisMCmDispatchCallConnected(vc.handle)

    def dispatch_incoming_close(self, vc: Any) -> None:
        self.ndis.NdisMCmDispatchIncomingCloseCall(_SUCCESS, vc.handle, None, 0)

    def find_sap(self, selector: bytes) -> tuple[Any, Any] | None:
        sap = self.adapter.saps.get(selector)
        return (sap.af, sap) if sap is not None else None
