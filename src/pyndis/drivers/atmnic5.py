"""An ATM-like NIC and its CoNDIS 5.1 miniport: per-VC queues, an integrated call manager.

Theory of operation
-------------------
Hardware, as the driver sees it: one link (a :class:`~pyndis.wire.Wire` port) at ``link_bps``;
a transmit scheduler that takes ``tx_quantum`` frames from each VC with something queued, round
robin, and puts up to ``tx_burst`` of them on the link as one burst (each frame tagged ``>II``: VCI,
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
``tx_quantum`` (1: frames a VC may put in a burst per round-robin turn);
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
from ..library.covc import CO_CALL_PARAMETERS, media_flags
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
from .atmmcm import AtmSap, McmCallControl, McmHandlers
from .atmsig import ATM_ADDRESS_FAMILY, SIGNALLING_VCI, Call, vc_parameters
from .common5 import COMPLETION_ORDERS, answer, order_batch

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.covc import VirtualConnection
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
        #: the NdisVcHandle (None only for the integrated CM's signalling channel)
        self.handle: Any = handle
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
        self.tx_quantum = max(1, int(get("tx_quantum", 1)))
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
        if unknown or self.completion not in COMPLETION_ORDERS:
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
            low, high = get("vci_range", (32, 4095))
            self.cm = McmCallControl(self, (int(low), int(high)))
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
            _status, mdl = NdisAllocateBuffer(self.buffer_pool, buf, self.max_sdu)
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

    # --- activation -------------------------------------------------------------------------------
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

    # --- transmit ---------------------------------------------------------------------------------
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
            vc.unfinished += 1
            if download or inline:
                queue.append(packet_bytes(packet))
                early.append((vc, packet))
            else:
                queue.append(packet)
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
        burst = self.tx_burst
        quantum = self.tx_quantum
        while ready and count < burst:
            vc = ready.popleft()
            queue = vc.tx_queue
            take = min(quantum, len(queue), burst - count)
            for _ in range(take):
                entry = queue.popleft()
                if type(entry) is bytes:
                    data = entry
                else:
                    assert isinstance(entry, NDIS_PACKET)
                    data = packet_bytes(entry)
                    done.append((vc, entry))
                parts.append(pack(vc.vci, len(data)))
                parts.append(data)
            vc.tx_frames += take
            count += take
            if queue:
                ready.append(vc)
            else:
                vc.in_ready = False
                touched.append(vc)
        frame = b"".join(parts)
        sched = self.ndis.scheduler
        self.tx_free_at = sched.now_ns + len(frame) * 8 * 1_000_000_000 // self.link_bps
        self.counters["tx_bursts"] += 1
        self.counters["tx_bytes"] += len(frame)
        # the burst is on the wire once its last bit has left: then it travels, and its
        # packets complete (the transmit-done interrupt's DPC)
        sched.call_at(self.tx_free_at, self._transmitted, frame, done, label="atm-tx-done")
        for vc in touched:
            self._check_drained(vc)
        self._kick()

    def _transmitted(self, frame: bytes, done: list[tuple[AtmVc, NDIS_PACKET]]) -> None:
        if self.port is not None and not self.halted:
            self.port.transmit(frame)
        if done:
            self._complete(done, _SUCCESS)

    def _complete(self, batch: list[tuple[AtmVc, NDIS_PACKET]], status: NDIS_STATUS) -> None:
        """Completion DPC: NdisMCoSendComplete for a batch, in the configured order."""
        order_batch(batch, self.completion, self.ndis.scheduler.random)
        complete = self.ndis.NdisMCoSendComplete
        faults = self.faults
        for vc, packet in batch:
            vc.unfinished -= 1
            self.counters["completed"] += 1
            handle = vc.handle
            if "wrong_vc" in faults:
                handle = next((v.handle for v in self.vcs if v is not vc and v.active), handle)
            final = _PENDING if "pending_status" in faults else status
            complete(final, handle, packet)
            if "double_complete" in faults:
                complete(final, handle, packet)
        self._after_completion(batch)

    def _after_completion(self, batch: list[tuple[AtmVc, NDIS_PACKET]]) -> None:
        seen: list[AtmVc] = []
        for vc, _ in batch:
            if vc not in seen:
                seen.append(vc)
        for vc in seen:
            self._check_drained(vc)

    # --- receive ----------------------------------------------------------------------------------
    def _wire_receive(self, frame: bytes) -> None:
        """The link delivered a burst (at DISPATCH_LEVEL): DMA, then indicate per VC."""
        if self.halted:
            return
        view = memoryview(frame)
        unpack = FRAME_HEADER.unpack_from
        size = FRAME_HEADER.size
        groups: dict[AtmVc, list[RxSlot]] = {}
        counters = self.counters
        offset = received = 0
        end = len(frame)
        free = self.rx_free
        rx_vcs = self.rx_vcs
        low_water = self.rx_low_water
        while offset < end:
            vci, length = unpack(frame, offset)
            offset += size
            payload = view[offset : offset + length]
            offset += length
            if vci == SIGNALLING_VCI and self.cm is not None:
                self.cm.on_signal(payload)
                continue
            vc = rx_vcs.get(vci)
            if vc is None:
                counters["rx_dropped"] += 1
                continue
            if not free:
                counters["rx_no_buffer"] += 1
                continue
            slot = free.pop()
            slot.buf[:length] = payload  # the DMA
            NdisAdjustBufferLength(slot.mdl, length)
            low = len(free) < low_water
            NDIS_SET_PACKET_STATUS(slot.packet, _RESOURCES if low else _SUCCESS)
            vc.rx_frames += 1
            received += 1
            group = groups.get(vc)
            if group is None:
                groups[vc] = [slot]
            else:
                group.append(slot)
        counters["rx_frames"] += received
        indicate = self.ndis.NdisMCoIndicateReceivePacket
        for vc, slots in groups.items():
            packets = [s.packet for s in slots]
            indicate(vc.handle, packets, len(packets))
            for slot in slots:
                if NDIS_GET_PACKET_STATUS(slot.packet) != _PENDING:
                    free.append(slot)
        if groups:
            self.ndis.NdisMCoReceiveComplete(self.handle)

    def new_vc(self) -> AtmVc:
        """A VC context for a VC the integrated CM creates (an incoming call)."""
        vc = AtmVc(self)
        self.vcs.append(vc)
        return vc

    def return_packet(self, packet: NDIS_PACKET) -> None:
        self.rx_free.append(self.rx_slot[packet])

    def __repr__(self) -> str:
        return f"<AtmAdapter {self.name!r} vcs={len(self.vcs)}>"


class AtmNic5(McmHandlers):
    """The miniport driver (NDIS 5.1, connection-oriented; an MCM unless told otherwise)."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, AtmAdapter] = {}

    # --- life cycle -------------------------------------------------------------------------------
    def MiniportInitialize(
        self,
        MediumArray: Sequence[int],
        MiniportAdapterHandle: MiniportBlock,
        WrapperConfigurationContext: AdapterConfig,
    ) -> tuple[NDIS_STATUS, int]:
        """-> NdisMSetAttributesEx (deserialized) -> receive pools -> [NdisMCmRegisterAddressFamily]
        -> (SUCCESS, index of NdisMediumAtm) | (UNSUPPORTED_MEDIA | RESOURCES, 0). PASSIVE."""
        if NdisMediumAtm not in MediumArray:
            return NDIS_STATUS.UNSUPPORTED_MEDIA, 0
        nic = AtmAdapter(self.ndis, MiniportAdapterHandle, WrapperConfigurationContext)
        self.ndis.NdisMSetAttributesEx(MiniportAdapterHandle, nic, 0, NDIS_ATTRIBUTE_DESERIALIZE, 0)
        status = nic.allocate()
        if status != _SUCCESS:
            return status, 0
        if nic.cm is not None:
            status = self.ndis.NdisMCmRegisterAddressFamily(
                MiniportAdapterHandle, ATM_ADDRESS_FAMILY, None, 0
            )
            if status != _SUCCESS:
                nic.free()
                return status, 0
        self.adapters[nic.name] = nic
        return _SUCCESS, list(MediumArray).index(NdisMediumAtm)

    def MiniportHalt(self, MiniportAdapterContext: AtmAdapter) -> None:
        """Called once every VC is gone and every send completed: free the receive pools."""
        MiniportAdapterContext.free()
        self.adapters.pop(MiniportAdapterContext.name, None)

    def MiniportQueryInformation(
        self, MiniportAdapterContext: AtmAdapter, Oid: int
    ) -> tuple[NDIS_STATUS, Any]:
        nic = MiniportAdapterContext
        return answer(
            Oid, {OID_GEN_MAXIMUM_TOTAL_SIZE: nic.max_sdu, OID_GEN_LINK_SPEED: nic.link_bps // 100}
        )

    def MiniportReturnPacket(self, MiniportAdapterContext: AtmAdapter, Packet: NDIS_PACKET) -> None:
        """A receive packet a client kept is back (DISPATCH_LEVEL)."""
        MiniportAdapterContext.return_packet(Packet)

    # --- VCs --------------------------------------------------------------------------------------
    def MiniportCoCreateVc(
        self, MiniportAdapterContext: AtmAdapter, NdisVcHandle: VirtualConnection
    ) -> tuple[NDIS_STATUS, AtmVc | None]:
        """-> (SUCCESS, MiniportVcContext). Never pends (rule 28) unless told to misbehave."""
        nic = MiniportAdapterContext
        if "create_vc_pending" in nic.faults:
            return _PENDING, None
        vc = AtmVc(nic, NdisVcHandle)
        nic.vcs.append(vc)
        return _SUCCESS, vc

    def MiniportCoDeleteVc(self, MiniportVcContext: AtmVc) -> NDIS_STATUS:
        vc = MiniportVcContext
        if vc in vc.adapter.vcs:
            vc.adapter.vcs.remove(vc)
        return _SUCCESS

    def MiniportCoActivateVc(
        self, MiniportVcContext: AtmVc, CallParameters: CO_CALL_PARAMETERS
    ) -> NDIS_STATUS:
        """Map the VCI of ``CallParameters`` to the VC -> SUCCESS | INVALID_ADDRESS (VCI in
        use) | PENDING (``activate_pending``: NdisMCoActivateVcComplete from a DPC)."""
        vc = MiniportVcContext
        nic = vc.adapter
        status = nic.hw_activate(vc, CallParameters)
        if status != _SUCCESS or not nic.activate_pending:
            return status
        ndis = self.ndis
        ndis.scheduler.queue_dpc(
            ndis.NdisMCoActivateVcComplete, _SUCCESS, vc.handle, CallParameters, label="atm-act"
        )
        return _PENDING

    def MiniportCoDeactivateVc(self, MiniportVcContext: AtmVc) -> NDIS_STATUS:
        """Complete every pending send of the VC first (rule 32): ``drain`` waits for the link
        (PENDING, then NdisMCoDeactivateVcComplete), ``abort`` fails them with CLOSING."""
        vc = MiniportVcContext
        nic = vc.adapter
        nic.hw_deactivate(vc)
        if nic.deactivate_mode == "abort":
            nic.abort(vc)
        if vc.drained or "deactivate_with_pending" in nic.faults:
            return _SUCCESS
        ndis = self.ndis
        nic.when_drained(vc, lambda: ndis.NdisMCoDeactivateVcComplete(_SUCCESS, vc.handle))
        return _PENDING

    def MiniportCoSendPackets(
        self, MiniportVcContext: AtmVc, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int
    ) -> None:
        """Queue the packets on their VC, in order (each completes later, exactly once)."""
        MiniportVcContext.adapter.send_packets(MiniportVcContext, PacketArray, NumberOfPackets)


__all__ = [
    "FAULTS",
    "FRAME_HEADER",
    "AtmAdapter",
    "AtmNic5",
    "AtmVc",
    "RxSlot",
]
