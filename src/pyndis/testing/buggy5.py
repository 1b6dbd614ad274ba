"""NDIS 5.x drivers for contract tests: scriptable well-behaved ones, and deliberately buggy ones.

Theory of operation
-------------------
:class:`Miniport5` (MiniportSend) and :class:`PacketsMiniport5` (MiniportSendPackets too) are
well-behaved NDIS 5.1 miniports whose send verdicts a test scripts: each packet takes the next
status from ``script`` (else ``default``); PENDING packets wait in ``held`` until the test calls
:meth:`Miniport5.complete` (or ``complete_after_ns`` completes them from a DPC). They record
what NDIS gave them (``submitted``, ``accepted``, ``calls``, ``flags``, ``irqls``) and can
indicate receives from their own pools (:meth:`Miniport5.indicate`). :class:`Protocol5`
records completions and receives; :class:`LookaheadProtocol5` receives through ProtocolReceive.
:class:`Rig5` wires one kernel, one adapter and bound protocols, and checks at the end that
nothing was lost and every pool balances.

Each buggy driver reproduces one bug class of ``send-path-anchors.md`` (section 5) or one broken
contract rule; its docstring says which, and which NdisError the library raises. They are
public so that users can check their own harnesses catch the same bugs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_ATTRIBUTE_DESERIALIZE,
    NDIS_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    OID_802_3_CURRENT_ADDRESS,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_MAC_OPTIONS,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    NdisMedium802_3,
    NdisRequestSetInformation,
    PacketCancelId,
)
from ..drivers.common5 import free_packet
from ..library.kernel import Ndis
from ..mdl import BufferPool, NdisAllocateBuffer
from ..ownership import Ownership
from ..packet import (
    NDIS_GET_PACKET_STATUS,
    NDIS_PACKET,
    NDIS_SET_PACKET_STATUS,
    NdisChainBufferAtBack,
    NdisGetPacketFlags,
    NdisSetPacketFlags,
    packet_bytes,
)
from ..pools import NdisAllocatePacket, PacketPool
from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from ..library.adapter import MiniportBlock
    from ..library.binding import OpenBlock

ADDRESS = b"\x02\x00\x00\x00\x00\x01"
PEER = b"\x02\x00\x00\x00\x00\x02"
BROADCAST = b"\xff" * 6
_PENDING = NDIS_STATUS.PENDING
_SUCCESS = NDIS_STATUS.SUCCESS
_RESOURCES = NDIS_STATUS.RESOURCES


def ethernet_frame(
    dest: bytes = ADDRESS, src: bytes = PEER, size: int = 64, tag: int = 0
) -> bytearray:
    """An 802.3 frame of ``size`` bytes; ``tag`` (4 bytes after the EtherType) tells it apart."""
    frame = bytearray(size)
    frame[0:6] = dest
    frame[6:12] = src
    frame[12:14] = b"\x88\xb5"  # IEEE local experimental EtherType
    if size >= 18:
        frame[14:18] = tag.to_bytes(4, "big")
    return frame


# --- well-behaved, scriptable drivers ------------------------------------------------------------


class Miniport5:
    """A well-behaved NDIS 5.1 Ethernet miniport with a scripted MiniportSend."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis  # set by NdisMRegisterMiniport

    def __init__(
        self,
        *,
        deserialized: bool = False,
        default: int = _PENDING,
        max_send_packets: int = 1,
        mac_options: int = 0,
        max_total_size: int = 1514,
        complete_after_ns: int | None = None,
    ) -> None:
        self.deserialized = deserialized
        self.default = default
        self.script: deque[int] = deque()
        self.max_send_packets = max_send_packets
        self.mac_options = mac_options
        self.max_total_size = max_total_size
        self.complete_after_ns = complete_after_ns
        self.handle: MiniportBlock | None = None
        self.held: list[NDIS_PACKET] = []
        self.submitted: list[NDIS_PACKET] = []
        self.accepted: list[NDIS_PACKET] = []
        self.calls: list[int] = []
        self.flags: list[int] = []
        self.irqls: list[int] = []
        #: receive packets back through MiniportReturnPacket (kept, then returned)
        self.returned: list[NDIS_PACKET] = []
        #: receive packets back when the indication returned (Status not PENDING)
        self.reclaimed: list[NDIS_PACKET] = []
        self.cancel_ids: list[object] = []
        self.on_send: Callable[[NDIS_PACKET], None] | None = None
        self.halted = False
        self.rx_packets: PacketPool | None = None
        self.rx_buffers: BufferPool | None = None

    # --- life cycle -------------------------------------------------------------------------
    def MiniportInitialize(
        self, MediumArray: Sequence[int], MiniportAdapterHandle: MiniportBlock, Config: Any
    ) -> tuple[NDIS_STATUS, int]:
        self.handle = MiniportAdapterHandle
        flags = NDIS_ATTRIBUTE_DESERIALIZE if self.deserialized else 0
        self.ndis.NdisMSetAttributesEx(MiniportAdapterHandle, self, 0, flags, 0)
        _, self.rx_packets = self.ndis.NdisAllocatePacketPool(32, 16)
        _, self.rx_buffers = self.ndis.NdisAllocateBufferPool(32)
        return _SUCCESS, list(MediumArray).index(NdisMedium802_3)

    def MiniportQueryInformation(self, ctx: object, Oid: int) -> tuple[NDIS_STATUS, Any]:
        answers: dict[int, object] = {
            OID_GEN_MAXIMUM_SEND_PACKETS: self.max_send_packets,
            OID_GEN_MAC_OPTIONS: self.mac_options,
            OID_GEN_MAXIMUM_TOTAL_SIZE: self.max_total_size,
            OID_802_3_CURRENT_ADDRESS: ADDRESS,
        }
        if Oid in answers:
            return _SUCCESS, answers[Oid]
        return NDIS_STATUS.NOT_SUPPORTED, None

    def MiniportSetInformation(self, ctx: object, Oid: int, Value: Any) -> NDIS_STATUS:
        return _SUCCESS

    def MiniportReset(self, ctx: object) -> tuple[NDIS_STATUS, bool]:
        return _SUCCESS, False

    def MiniportHalt(self, ctx: object) -> None:
        self.halted = True
        if self.rx_packets is not None:
            self.ndis.NdisFreePacketPool(self.rx_packets)
        if self.rx_buffers is not None:
            self.ndis.NdisFreeBufferPool(self.rx_buffers)

    # --- send ---------------------------------------------------------------------------------
    def MiniportSend(self, ctx: object, Packet: NDIS_PACKET, Flags: int) -> int:
        self.calls.append(1)
        self.flags.append(Flags)
        return self.take(Packet)

    def take(self, packet: NDIS_PACKET) -> int:
        """Decide one packet's verdict: the next scripted status, else ``default``."""
        self.submitted.append(packet)
        self.irqls.append(self.ndis.irql.level)
        if self.on_send is not None:
            self.on_send(packet)
        status = self.script.popleft() if self.script else self.default
        if status != _RESOURCES:
            self.accepted.append(packet)
        if status == _PENDING:
            self.held.append(packet)
            if self.complete_after_ns is not None:
                self.ndis.scheduler.call_later(self.complete_after_ns, self.complete, packet)
        return status

    def complete(self, packet: NDIS_PACKET | None = None, status: int = _SUCCESS) -> NDIS_PACKET:
        """NdisMSendComplete for ``packet`` (default: the oldest held one)."""
        target = self.held[0] if packet is None else packet
        self.held.remove(target)
        assert self.handle is not None
        self.ndis.NdisMSendComplete(self.handle, target, status)
        return target

    def complete_all(self, status: int = _SUCCESS) -> None:
        while self.held:
            self.complete(None, status)

    def resources_available(self) -> None:
        assert self.handle is not None
        self.ndis.NdisMSendResourcesAvailable(self.handle)

    def MiniportCancelSendPackets(self, ctx: object, CancelId: object) -> None:
        self.cancel_ids.append(CancelId)
        for packet in [p for p in self.held if p.extension[PacketCancelId] == CancelId]:
            self.complete(packet, NDIS_STATUS.REQUEST_ABORTED)

    # --- receive ------------------------------------------------------------------------------
    def indicate(self, frames: Sequence[bytes], status: int = _SUCCESS) -> list[NDIS_PACKET]:
        """NdisMIndicateReceivePacket with one packet per frame, from this miniport's pools;
        then, as the MiniportReturnPacket page says, every packet whose OOB Status is not
        PENDING is ours again: it goes to ``reclaimed`` and is freed at once. The PENDING ones
        come back through MiniportReturnPacket (``returned``)."""
        assert self.rx_packets is not None and self.rx_buffers is not None and self.handle
        packets = []
        for frame in frames:
            _, packet = NdisAllocatePacket(self.rx_packets)
            _, buffer = NdisAllocateBuffer(self.rx_buffers, frame, len(frame))
            assert packet is not None and buffer is not None
            NdisChainBufferAtBack(packet, buffer)
            NDIS_SET_PACKET_STATUS(packet, status)
            packets.append(packet)
        self.ndis.NdisMIndicateReceivePacket(self.handle, packets, len(packets))
        for packet in packets:
            if NDIS_GET_PACKET_STATUS(packet) != _PENDING:  # nobody kept it, or RESOURCES
                self.reclaimed.append(packet)
                self.free_rx(packet)
        return packets

    def MiniportReturnPacket(self, ctx: object, Packet: NDIS_PACKET) -> None:
        self.returned.append(Packet)
        self.free_rx(Packet)

    def free_rx(self, packet: NDIS_PACKET) -> None:
        """Free a receive packet of this miniport, with its buffer."""
        free_packet(packet)


class PacketsMiniport5(Miniport5):
    """:class:`Miniport5` with MiniportSendPackets too (NDIS then calls only that: rule 20).
    It stops at the first RESOURCES, leaving later packets untouched (rule 22)."""

    def MiniportSendPackets(
        self, ctx: object, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int
    ) -> None:
        self.calls.append(NumberOfPackets)
        for packet in PacketArray[:NumberOfPackets]:
            status = self.take(packet)
            NDIS_SET_PACKET_STATUS(packet, status)
            if status == _RESOURCES:
                break


class Protocol5:
    """A well-behaved NDIS 5.0 protocol that records what comes back to it.

    ``keep`` is the ReceiveCount it answers (it then holds the packet in ``kept`` until
    :meth:`return_kept`); ``on_complete`` / ``on_receive`` hooks run inside its handlers.
    """

    NDIS_VERSION = (5, 0)
    ndis: Ndis  # set by NdisRegisterProtocol

    def __init__(self, keep: int = 0) -> None:
        self.keep = keep
        self.binding: OpenBlock | None = None
        self.completions: list[tuple[NDIS_PACKET, int]] = []
        self.completion_irqls: list[int] = []
        self.received: list[tuple[bytes, int, int]] = []
        self.kept: list[NDIS_PACKET] = []
        self.on_complete: Callable[[NDIS_PACKET, int], None] | None = None
        self.on_receive: Callable[[NDIS_PACKET], None] | None = None

    def ProtocolSendComplete(self, ctx: object, Packet: NDIS_PACKET, Status: int) -> None:
        self.completions.append((Packet, Status))
        self.completion_irqls.append(self.ndis.irql.level)
        if self.on_complete is not None:
            self.on_complete(Packet, Status)

    def ProtocolReceivePacket(self, ctx: object, Packet: NDIS_PACKET) -> int:
        status = NDIS_GET_PACKET_STATUS(Packet)
        self.received.append((packet_bytes(Packet), NdisGetPacketFlags(Packet), status))
        if self.on_receive is not None:
            self.on_receive(Packet)
        if self.keep and status != _RESOURCES:
            self.kept.extend([Packet] * self.keep)
            return self.keep
        return 0

    def return_kept(self) -> None:
        kept, self.kept = self.kept, []
        self.ndis.NdisReturnPackets(kept, len(kept))

    def statuses(self) -> list[int]:
        return [status for _packet, status in self.completions]


class LookaheadProtocol5:
    """An NDIS 5.0 protocol without ProtocolReceivePacket: it receives through ProtocolReceive
    (header and lookahead views) and ProtocolReceiveComplete."""

    NDIS_VERSION = (5, 0)
    ndis: Ndis

    def __init__(self) -> None:
        self.binding: OpenBlock | None = None
        self.completions: list[tuple[NDIS_PACKET, int]] = []
        self.received: list[tuple[bytes, bytes, int]] = []
        self.receive_completes = 0

    def ProtocolSendComplete(self, ctx: object, Packet: NDIS_PACKET, Status: int) -> None:
        self.completions.append((Packet, Status))

    def ProtocolReceive(
        self,
        ctx: object,
        MacReceiveContext: object,
        HeaderBuffer: memoryview,
        HeaderBufferSize: int,
        LookAheadBuffer: memoryview,
        LookaheadBufferSize: int,
        PacketSize: int,
    ) -> NDIS_STATUS:
        assert len(HeaderBuffer) == HeaderBufferSize and len(LookAheadBuffer) == LookaheadBufferSize
        self.received.append((bytes(HeaderBuffer), bytes(LookAheadBuffer), PacketSize))
        return _SUCCESS

    def ProtocolReceiveComplete(self, ctx: object) -> None:
        self.receive_completes += 1


# --- buggy miniports -----------------------------------------------------------------------------


class CompleteInSendMiniport5(Miniport5):
    """Calls NdisMSendComplete *inside* MiniportSend, then returns ``verdict``.

    PENDING is legal (NDIS handles the early completion exactly once). SUCCESS is ndiswrapper's
    double completion (23d439ab, 98314d83): MiniportContractError PY-DOUBLE-COMPLETE.
    """

    def __init__(self, verdict: int = _PENDING, status: int = _SUCCESS, **kw: Any) -> None:
        super().__init__(**kw)
        self.verdict = verdict
        self.status = status

    def MiniportSend(self, ctx: object, Packet: NDIS_PACKET, Flags: int) -> int:
        self.submitted.append(Packet)
        assert self.handle is not None
        self.ndis.NdisMSendComplete(self.handle, Packet, self.status)
        return self.verdict


class CompleteInSendPacketsMiniport5(PacketsMiniport5):
    """MiniportSendPackets that completes each packet inside the call after writing ``oob``
    (None: writes nothing) in its OOB Status. PENDING or None is legal; a final status is a
    double completion (PY-DOUBLE-COMPLETE)."""

    def __init__(self, oob: int | None = _PENDING, **kw: Any) -> None:
        super().__init__(**kw)
        self.oob = oob

    def MiniportSendPackets(
        self, ctx: object, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int
    ) -> None:
        assert self.handle is not None
        for packet in PacketArray[:NumberOfPackets]:
            self.submitted.append(packet)
            if self.oob is not None:
                NDIS_SET_PACKET_STATUS(packet, self.oob)
            self.ndis.NdisMSendComplete(self.handle, packet, _SUCCESS)


class DoubleCompleteMiniport5(Miniport5):
    """Completes every packet twice, from a DPC (the 64-bit RNDIS / bcm4306 bug, ndiswrapper
    6f0df96e): the second NdisMSendComplete raises PY-DOUBLE-COMPLETE."""

    def take(self, packet: NDIS_PACKET) -> int:
        self.submitted.append(packet)
        self.ndis.scheduler.queue_dpc(self.twice, packet)
        return _PENDING

    def twice(self, packet: NDIS_PACKET) -> None:
        assert self.handle is not None
        self.ndis.NdisMSendComplete(self.handle, packet, _SUCCESS)
        self.ndis.NdisMSendComplete(self.handle, packet, _SUCCESS)


class SilentDropMiniport5(Miniport5):
    """Returns PENDING and forgets the packet (ndiswrapper's MiniportSend default case, ReactOS's
    CoNDIS stub): never completed. Caught when NDIS waits for it: R65 at unbind or halt."""

    def take(self, packet: NDIS_PACKET) -> int:
        self.submitted.append(packet)
        return _PENDING


class PendingCompleteMiniport5(Miniport5):
    """Completes with NDIS_STATUS_PENDING: MiniportContractError PY-COMPLETE-PENDING."""

    def complete(self, packet: NDIS_PACKET | None = None, status: int = _PENDING) -> NDIS_PACKET:
        return super().complete(packet, _PENDING)


class SyncDeserializedMiniport5(Miniport5):
    """Deserialized, but MiniportSend returns SUCCESS (completes synchronously): R26."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(deserialized=True, default=_SUCCESS, **kw)


class ResourcesDeserializedMiniport5(Miniport5):
    """Deserialized, but MiniportSend returns RESOURCES: R26 (it must queue the packet)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(deserialized=True, default=_RESOURCES, **kw)


class ResourcesDeserializedPacketsMiniport5(PacketsMiniport5):
    """Deserialized, but MiniportSendPackets sets RESOURCES in an OOB status: R26."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(deserialized=True, default=_RESOURCES, **kw)


class NoStatusPacketsMiniport5(PacketsMiniport5):
    """Serialized MiniportSendPackets that sets no OOB status at all: R22."""

    def MiniportSendPackets(
        self, ctx: object, PacketArray: Sequence[NDIS_PACKET], NumberOfPackets: int
    ) -> None:
        self.submitted.extend(PacketArray[:NumberOfPackets])


class EarlyWakeMiniport5(Miniport5):
    """Calls NdisMSendResourcesAvailable inside MiniportSend and then returns RESOURCES, for
    the first ``refusals`` packets: legal, and the lost wake-up of ndiswrapper 2c43a195 if
    NDIS only listened for wakes after the handler returned."""

    def __init__(self, refusals: int = 1, **kw: Any) -> None:
        super().__init__(**kw)
        self.refusals = refusals

    def MiniportSend(self, ctx: object, Packet: NDIS_PACKET, Flags: int) -> int:
        if self.refusals:
            self.refusals -= 1
            self.submitted.append(Packet)
            self.resources_available()
            return _RESOURCES
        return super().MiniportSend(ctx, Packet, Flags)


# --- buggy protocols -----------------------------------------------------------------------------


class DataChangingProtocol5(Protocol5):
    """Writes into a packet's buffer after sending it: the verifier reports PY-DATA-CHANGED."""

    def send_and_scribble(self, binding: OpenBlock, packet: NDIS_PACKET) -> int:
        status = self.ndis.NdisSend(binding, packet)
        head = packet.Private.Head
        assert head is not None
        head.MappedSystemVa[head.ByteCount - 1] ^= 0xFF
        return status


class LoopbackFlagProtocol5(Protocol5):
    """Sets NDIS_FLAGS_IS_LOOPBACK_PACKET (read-only for protocols) before sending: R15."""

    def send(self, binding: OpenBlock, packet: NDIS_PACKET) -> int:
        NdisSetPacketFlags(packet, NDIS_FLAGS_IS_LOOPBACK_PACKET)
        return self.ndis.NdisSend(binding, packet)


class KeepingResourcesProtocol5(Protocol5):
    """Keeps packets indicated with NDIS_STATUS_RESOURCES (it had to copy them): raises
    PY-RECEIVE-RESOURCES."""

    def ProtocolReceivePacket(self, ctx: object, Packet: NDIS_PACKET) -> int:
        self.kept.append(Packet)
        return 1


class DoubleReturnProtocol5(Protocol5):
    """Keeps every packet once and returns it twice: PY-DOUBLE-RETURN."""

    def __init__(self) -> None:
        super().__init__(keep=1)

    def return_kept(self) -> None:
        kept, self.kept = self.kept, []
        for packet in kept:
            self.ndis.NdisReturnPackets([packet], 1)
            self.ndis.NdisReturnPackets([packet], 1)


class ResendingProtocol5(Protocol5):
    """Sends the packet again from ProtocolSendComplete, ``budget`` times in all: legal, and the
    re-entrancy that hurt acx111 under ndiswrapper (2098eb12) if NDIS called the miniport again
    from inside its own NdisMSendComplete."""

    def __init__(self, budget: int = 3) -> None:
        super().__init__()
        self.budget = budget

    def ProtocolSendComplete(self, ctx: object, Packet: NDIS_PACKET, Status: int) -> None:
        super().ProtocolSendComplete(ctx, Packet, Status)
        if self.budget > 0 and self.binding is not None:
            self.budget -= 1
            status = self.ndis.NdisSend(self.binding, Packet)
            if status != _PENDING:
                self.completions.append((Packet, status))


# --- the rig -------------------------------------------------------------------------------------


class Rig5:
    """One kernel, one NDIS 5.x adapter (``miniport``) and ``protocols`` bound to it, a packet
    pool and a buffer pool for the first protocol's sends."""

    def __init__(
        self,
        miniport: Miniport5 | None = None,
        protocols: Sequence[Any] | None = None,
        *,
        verifier: bool = False,
        packet_filter: int = NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST,
        pool: int = 64,
        seed: int = 0,
    ) -> None:
        self.ndis = ndis = Ndis(seed=seed, verifier=verifier)
        self.miniport = miniport if miniport is not None else Miniport5()
        _, handle = ndis.NdisMRegisterMiniport(self.miniport)
        assert handle is not None
        status, adapter = ndis.add_adapter(handle, "nic0")
        assert status == _SUCCESS and adapter is not None
        self.adapter = adapter
        self.protocols: list[Any] = list(protocols) if protocols is not None else [Protocol5()]
        self.bindings: list[OpenBlock] = []
        for i, protocol in enumerate(self.protocols):
            _, proto = ndis.NdisRegisterProtocol(protocol, Name=f"proto{i}")
            assert proto is not None
            status, _, binding, _ = ndis.NdisOpenAdapter(
                proto, protocol, [NdisMedium802_3], adapter
            )
            assert status == _SUCCESS and binding is not None
            ndis.NdisRequest(
                binding, NdisRequestSetInformation, OID_GEN_CURRENT_PACKET_FILTER, packet_filter
            )
            protocol.binding = binding
            self.bindings.append(binding)
        self.binding = self.bindings[0]
        self.protocol = self.protocols[0]
        _, packets = ndis.NdisAllocatePacketPool(pool, 16)
        _, buffers = ndis.NdisAllocateBufferPool(pool)
        assert packets is not None
        self.packet_pool: PacketPool = packets
        self.buffer_pool: BufferPool = buffers
        self.made: list[NDIS_PACKET] = []

    def packet(
        self, dest: bytes = PEER, size: int = 64, tag: int = 0, flags: int = 0
    ) -> NDIS_PACKET:
        """A packet carrying one frame of ``size`` bytes (size 0: no buffer at all)."""
        _, packet = NdisAllocatePacket(self.packet_pool)
        assert packet is not None
        if size:
            frame = ethernet_frame(dest, ADDRESS, size, tag)
            _, buffer = NdisAllocateBuffer(self.buffer_pool, frame, size)
            assert buffer is not None
            NdisChainBufferAtBack(packet, buffer)
        if flags:
            NdisSetPacketFlags(packet, flags)
        self.made.append(packet)
        return packet

    def packets(self, n: int, **kw: Any) -> list[NDIS_PACKET]:
        return [self.packet(tag=i, **kw) for i in range(n)]

    def release(self, packet: NDIS_PACKET) -> None:
        """Free a packet :meth:`packet` made, with its buffer."""
        free_packet(packet)

    def finish(self, *, remove: bool = True) -> None:
        """Run what is left, check nothing was lost, free every packet, check the pools balance
        (and, with ``remove``, take the adapter down the PnP way)."""
        self.ndis.run()
        self.ndis.assert_nothing_lost()
        for packet in self.made:
            if packet.ownership is Ownership.ALLOCATED:
                self.release(packet)
        self.made.clear()
        if remove:
            self.ndis.remove_adapter(self.adapter)
        unbalanced = [p for p in self.ndis.pools if p.outstanding]
        assert not unbalanced, f"pools not balanced: {unbalanced}"
        assert not self.ndis.receive5_outstanding(), self.ndis.receive5_outstanding()


__all__ = [
    "ADDRESS",
    "BROADCAST",
    "PEER",
    "CompleteInSendMiniport5",
    "CompleteInSendPacketsMiniport5",
    "DataChangingProtocol5",
    "DoubleCompleteMiniport5",
    "DoubleReturnProtocol5",
    "EarlyWakeMiniport5",
    "KeepingResourcesProtocol5",
    "LookaheadProtocol5",
    "LoopbackFlagProtocol5",
    "Miniport5",
    "NoStatusPacketsMiniport5",
    "PacketsMiniport5",
    "PendingCompleteMiniport5",
    "Protocol5",
    "ResendingProtocol5",
    "ResourcesDeserializedMiniport5",
    "ResourcesDeserializedPacketsMiniport5",
    "Rig5",
    "SilentDropMiniport5",
    "SyncDeserializedMiniport5",
    "ethernet_frame",
]
