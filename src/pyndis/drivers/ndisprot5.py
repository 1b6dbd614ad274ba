"""An ndisprot-like NDIS 5.1 protocol: raw Ethernet frames in and out of any 802.3 adapter.

Theory of operation
-------------------
Like the ndisprot sample, the driver is split by path: binding (``ProtocolBindAdapter`` /
``ProtocolUnbindAdapter`` and the close), sending (``write`` / ``write_many`` and
``ProtocolSendComplete``), receiving (``ProtocolReceivePacket`` / ``ProtocolReceive``) and
status. Each binding has its own context, an :class:`NdisProtOpen` (ndisprot's
``NDISPROT_OPEN_CONTEXT``): its ``NdisBindingHandle``, its packet and buffer pools, its free
list of packets, its counters and its receive queue.

Sending. At bind time the open allocates a packet pool (``pool`` packets) and a buffer pool and,
when descriptors are reused (the default, as the NdisSend page advises), takes every packet out
of the pool onto a free list. ``write(frame)`` takes a packet, describes the caller's bytes with
buffer descriptors (zero copy), chains them and calls ``NdisSend``; ``write_many(frames)`` does the
same for a batch and calls ``NdisSendPackets``. A packet comes back exactly once:

* ``NdisSend`` returned anything but PENDING: it is back when the call returns (rule 16);
* otherwise ``ProtocolSendComplete(packet, status)`` (always, after ``NdisSendPackets``, rule 17).

Either way it is recycled: ``NdisUnchainBufferAtFront`` until the chain is empty (each buffer
descriptor freed), then ``NdisReinitializePacket`` and back onto the free list, or, with
``reuse=False``, ``NdisFreePacket`` and a fresh ``NdisAllocatePacket`` on the next write (the
benchmark compares the two). Completions are counted by status; with ``track=True`` each packet
carries its write number in its ProtocolReserved area and the order packets come back in is
logged. An ``on_send_complete`` hook lets a test send again from inside the completion handler.

Receiving. ``ProtocolReceivePacket`` copies the frame out (:func:`copy_packet`, the library's
``packet_bytes``) and returns 0, so the packet goes straight back to the miniport;
``ProtocolReceive`` (the lookahead path) copies header and lookahead. Frames land in the open's
``received`` queue (bounded by ``rx_queue``; overflow is counted and dropped).

Binding. ``register(ndis)`` calls ``NdisRegisterProtocol`` and keeps the handle; NDIS offers the
adapters present afterwards (``ProtocolBindAdapter`` from PASSIVE work items: run the scheduler).
``bind_to`` restricts the adapters bound (by name). Unbinding closes the binding
(``NdisCloseAdapter``; PENDING until every send came back, then ``ProtocolCloseAdapterComplete``)
and frees the pools.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    OID_802_3_CURRENT_ADDRESS,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisRequestQueryInformation,
    NdisRequestSetInformation,
)
from ..mdl import NdisAllocateBuffer
from ..packet import NDIS_PACKET, NdisChainBufferAtBack, packet_bytes
from ..pools import NdisAllocatePacket, NdisFreePacket, NdisReinitializePacket
from ..status import NDIS_STATUS
from .common5 import (
    SampleProtocol5,
    allocate_pools,
    free_buffers,
    free_pools,
    lookahead_frame,
    open_ethernet,
    pick,
)

if TYPE_CHECKING:
    from ..library.binding import OpenBlock
    from ..library.drivers import DriverBlock
    from ..library.kernel import Ndis
    from ..mdl import BufferPool
    from ..pools import PacketPool

#: one fragment of a frame, or a frame given as several fragments (chained as several buffers)
Frame = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]

DEFAULT_FILTER = int(NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST)
MAX_FRAGMENTS = 4

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING
_RESOURCES = NDIS_STATUS.RESOURCES


_BY_CODE: dict[int, NDIS_STATUS] = {int(member): member for member in NDIS_STATUS}


def status_code(value: int) -> int:
    """An NDIS_STATUS member when the code is known, else the raw 32-bit code (a driver may
    choose its own failure codes, rule 16)."""
    code = int(value) & 0xFFFFFFFF
    return _BY_CODE.get(code, code)


def _fragments(frame: Frame) -> Sequence[bytes | bytearray | memoryview]:
    if isinstance(frame, (bytes, bytearray, memoryview)):
        return (frame,)
    return frame


#: Copy a received packet's bytes out of its buffers (the protocol's own copy): the library's
#: :func:`~pyndis.packet.packet_bytes`.
copy_packet = packet_bytes


class NdisProtOpen:
    """One binding of the protocol (NDISPROT_OPEN_CONTEXT)."""

    def __init__(self, driver: NdisProt5, device_name: str) -> None:
        self.driver = driver
        self.ndis = driver.ndis
        self.device_name = device_name
        self.binding: OpenBlock | None = None
        self.packet_pool: PacketPool | None = None
        self.buffer_pool: BufferPool | None = None
        #: packets ready for the next write (reuse mode)
        self.free_packets: list[NDIS_PACKET] = []
        self.reuse = driver.reuse
        self.closing = False
        self.closed = False
        self.address = b""
        # counters
        self.sends = 0
        self.completed = 0
        self.sync_completions = 0
        self.by_status: Counter[int] = Counter()
        self.write_refused = 0
        #: ``track=True``: each packet carries its write number in ProtocolReserved[0:8], and
        #: ``completion_log`` lists the numbers in the order the packets came back
        self.track = driver.track
        self.next_seq = 0
        self.completion_log: list[int] = []
        # receive
        self.received: deque[bytes] = deque()
        self.rx_dropped = 0
        self.receive_completes = 0
        self.statuses: list[int] = []
        #: called as ``hook(open, status)`` after each send came back (tests re-send from it)
        self.on_send_complete: Callable[[NdisProtOpen, int], None] | None = None

    @property
    def pending(self) -> int:
        """Sends handed to NDIS and not yet back."""
        return self.sends - self.completed

    # --- setting up ----------------------------------------------------------------------------
    def allocate(self) -> NDIS_STATUS:
        size = self.driver.pool
        status, pool, self.buffer_pool = allocate_pools(self.ndis, size, size * MAX_FRAGMENTS)
        if pool is None:
            return status
        self.packet_pool = pool
        if self.reuse:
            for _ in range(size):
                status, packet = NdisAllocatePacket(pool)
                if status != _SUCCESS or packet is None:
                    break
                self.free_packets.append(packet)
        return _SUCCESS

    def free(self) -> None:
        """Free every descriptor and both pools (after the close completed)."""
        while self.free_packets:
            NdisFreePacket(self.free_packets.pop())
        free_pools(self.ndis, self.packet_pool, self.buffer_pool)
        self.packet_pool = self.buffer_pool = None

    # --- sending -------------------------------------------------------------------------------
    def _take_packet(self) -> NDIS_PACKET | None:
        if self.reuse:
            return self.free_packets.pop() if self.free_packets else None
        assert self.packet_pool is not None
        status, packet = NdisAllocatePacket(self.packet_pool)
        return packet if status == _SUCCESS else None

    def _put_packet(self, packet: NDIS_PACKET) -> None:
        if self.reuse:
            NdisReinitializePacket(packet)
            self.free_packets.append(packet)
        else:
            NdisFreePacket(packet)

    def prepare(self, frame: Frame) -> NDIS_PACKET | None:
        """A packet whose buffers describe ``frame`` (zero copy), or None (out of descriptors)."""
        packet = self._take_packet()
        if packet is None:
            return None
        pool = self.buffer_pool
        assert pool is not None
        for fragment in _fragments(frame):
            status, buffer = NdisAllocateBuffer(pool, fragment, len(fragment))
            if status != _SUCCESS or buffer is None:
                free_buffers(packet)
                self._put_packet(packet)
                return None
            NdisChainBufferAtBack(packet, buffer)
        if self.track:
            self.next_seq += 1
            packet.ProtocolReserved[0:8] = self.next_seq.to_bytes(8, "little")
        return packet

    def recycle(self, packet: NDIS_PACKET, status: int) -> None:
        """A packet is back with us: count it, unchain and free its buffers, reuse or free it."""
        self.completed += 1
        status = status_code(status)
        self.by_status[status] += 1
        if self.track:
            self.completion_log.append(int.from_bytes(packet.ProtocolReserved[0:8], "little"))
        free_buffers(packet)
        self._put_packet(packet)
        hook = self.on_send_complete
        if hook is not None:
            hook(self, status)

    def write(self, frame: Frame) -> int:
        """Send one frame with NdisSend -> the NdisSend status (PENDING: completion later),
        or RESOURCES/CLOSING without sending (no descriptor free, or the binding closing)."""
        if self.binding is None or self.closing:
            self.write_refused += 1
            return NDIS_STATUS.CLOSING
        packet = self.prepare(frame)
        if packet is None:
            self.write_refused += 1
            return _RESOURCES
        self.sends += 1
        status = status_code(self.ndis.NdisSend(self.binding, packet))
        if status != _PENDING:
            # Rule 16: no ProtocolSendComplete for this packet; it is ours again.
            self.sync_completions += 1
            self.recycle(packet, status)
        return status

    def write_many(self, frames: Iterable[Frame]) -> int:
        """Send frames with one NdisSendPackets -> how many were sent (stops at the first frame
        without a free descriptor); every one comes back through ProtocolSendComplete."""
        if self.binding is None or self.closing:
            self.write_refused += 1
            return 0
        packets: list[NDIS_PACKET] = []
        for frame in frames:
            packet = self.prepare(frame)
            if packet is None:
                self.write_refused += 1
                break
            packets.append(packet)
        if packets:
            self.sends += len(packets)
            self.ndis.NdisSendPackets(self.binding, packets, len(packets))
        return len(packets)

    # --- receiving ----------------------------------------------------------------------------
    def deliver(self, frame: bytes) -> None:
        if len(self.received) >= self.driver.rx_queue:
            self.rx_dropped += 1
            return
        self.received.append(frame)

    def read(self) -> bytes | None:
        """The oldest frame received (None if none)."""
        return self.received.popleft() if self.received else None

    def __repr__(self) -> str:
        return (
            f"<NdisProtOpen {self.device_name!r} sends={self.sends} completed={self.completed} "
            f"rx={len(self.received)}>"
        )


class NdisProt5(SampleProtocol5):
    """The protocol driver. ``register(ndis)`` it; it binds every 802.3 adapter offered (or
    those named in ``bind_to``)."""

    ndis: Ndis

    def __init__(
        self,
        *,
        name: str = "ndisprot",
        pool: int = 64,
        reuse: bool = True,
        packet_filter: int = DEFAULT_FILTER,
        bind_to: Iterable[str] | None = None,
        rx_queue: int = 4096,
        track: bool = False,
    ) -> None:
        self.name = name
        self.pool = pool
        self.reuse = reuse
        self.packet_filter = packet_filter
        self.bind_to = set(bind_to) if bind_to is not None else None
        self.rx_queue = rx_queue
        self.track = track
        self.handle: DriverBlock | None = None
        self.opens: dict[str, NdisProtOpen] = {}
        self.bind_failures: list[tuple[str, NDIS_STATUS]] = []

    # --- bindings ------------------------------------------------------------------------------
    def open(self, device_name: str | None = None) -> NdisProtOpen:
        """The binding to ``device_name`` (or the only one)."""
        return pick(self.opens, device_name, self.name, "bindings")

    def write(self, frame: Frame, device_name: str | None = None) -> int:
        return self.open(device_name).write(frame)

    def write_many(self, frames: Iterable[Frame], device_name: str | None = None) -> int:
        return self.open(device_name).write_many(frames)

    # --- binding --------------------------------------------------------------------------------
    def ProtocolBindAdapter(
        self, BindContext: Any, DeviceName: str, SystemSpecific1: Any, SystemSpecific2: Any
    ) -> NDIS_STATUS:
        """ProtocolBindAdapter -> [NdisOpenAdapter -> NdisRequest(packet filter)] -> status."""
        if self.bind_to is not None and DeviceName not in self.bind_to:
            return NDIS_STATUS.NOT_ACCEPTED
        return self._bind(DeviceName)

    def _bind(self, device_name: str) -> NDIS_STATUS:
        assert self.handle is not None
        ndis = self.ndis
        ctx = NdisProtOpen(self, device_name)
        status, binding = open_ethernet(ndis, self.handle, ctx, device_name, self.bind_failures)
        if binding is None:
            return status
        ctx.binding = binding
        self.opens[device_name] = ctx
        q_status, address = ndis.NdisRequest(
            binding, NdisRequestQueryInformation, OID_802_3_CURRENT_ADDRESS
        )
        if q_status == _SUCCESS:
            ctx.address = bytes(address)
        return NDIS_STATUS(
            ndis.NdisRequest(
                binding,
                NdisRequestSetInformation,
                OID_GEN_CURRENT_PACKET_FILTER,
                self.packet_filter,
            )[0]
        )

    def ProtocolOpenAdapterComplete(
        self, ProtocolBindingContext: NdisProtOpen, Status: int, OpenErrorStatus: int
    ) -> None:
        """Never called in the model (NdisOpenAdapter completes synchronously)."""

    def ProtocolUnbindAdapter(
        self, ProtocolBindingContext: NdisProtOpen, UnbindContext: Any
    ) -> NDIS_STATUS:
        """ProtocolUnbindAdapter -> NdisCloseAdapter -> SUCCESS (pools freed now) | PENDING
        (-> ProtocolCloseAdapterComplete once the last send came back, pools freed then)."""
        return self.close(ProtocolBindingContext)

    def close(self, ctx: NdisProtOpen) -> NDIS_STATUS:
        """Close one binding (what unbinding does; a test may call it directly too)."""
        if ctx.closing:
            return _PENDING if not ctx.closed else _SUCCESS
        assert ctx.binding is not None
        ctx.closing = True
        status = NDIS_STATUS(self.ndis.NdisCloseAdapter(ctx.binding))
        if status != _PENDING:
            self._closed(ctx)
        return status

    def ProtocolCloseAdapterComplete(
        self, ProtocolBindingContext: NdisProtOpen, Status: int
    ) -> None:
        """ProtocolCloseAdapterComplete: once, after a close that returned PENDING."""
        self._closed(ProtocolBindingContext)

    def _closed(self, ctx: NdisProtOpen) -> None:
        ctx.closed = True
        ctx.binding = None
        ctx.free()
        self.opens.pop(ctx.device_name, None)

    # --- sending --------------------------------------------------------------------------------
    def ProtocolSendComplete(
        self, ProtocolBindingContext: NdisProtOpen, Packet: NDIS_PACKET, Status: int
    ) -> None:
        """ProtocolSendComplete: once per packet that NdisSend returned PENDING for, and once
        per packet given to NdisSendPackets. Recycles the packet."""
        ProtocolBindingContext.recycle(Packet, Status)

    # --- receiving ------------------------------------------------------------------------------
    def ProtocolReceivePacket(
        self, ProtocolBindingContext: NdisProtOpen, Packet: NDIS_PACKET
    ) -> int:
        """ProtocolReceivePacket -> 0: the frame is copied, the packet not kept."""
        ProtocolBindingContext.deliver(copy_packet(Packet))
        return 0

    def ProtocolReceive(
        self,
        ProtocolBindingContext: NdisProtOpen,
        MacReceiveContext: Any,
        HeaderBuffer: Any,
        HeaderBufferSize: int,
        LookAheadBuffer: Any,
        LookaheadBufferSize: int,
        PacketSize: int,
    ) -> NDIS_STATUS:
        """ProtocolReceive (lookahead indication) -> SUCCESS (whole frame in the lookahead,
        copied) | NOT_ACCEPTED (the rest would need NdisTransferData, which the model lacks)."""
        if LookaheadBufferSize < PacketSize:
            ProtocolBindingContext.rx_dropped += 1
            return NDIS_STATUS.NOT_ACCEPTED
        ProtocolBindingContext.deliver(
            lookahead_frame(HeaderBuffer, HeaderBufferSize, LookAheadBuffer, LookaheadBufferSize)
        )
        return _SUCCESS

    def ProtocolReceiveComplete(self, ProtocolBindingContext: NdisProtOpen) -> None:
        """ProtocolReceiveComplete: after a burst of indications."""
        ProtocolBindingContext.receive_completes += 1

    # --- status ---------------------------------------------------------------------------------
    def ProtocolStatus(
        self,
        ProtocolBindingContext: NdisProtOpen,
        GeneralStatus: int,
        StatusBuffer: Any,
        StatusBufferSize: int,
    ) -> None:
        """ProtocolStatus: RESET_START / RESET_END / MEDIA_CONNECT / MEDIA_DISCONNECT..."""
        ProtocolBindingContext.statuses.append(status_code(GeneralStatus))

    def ProtocolStatusComplete(self, ProtocolBindingContext: NdisProtOpen) -> None:
        """ProtocolStatusComplete: after a status indication."""

    def ProtocolResetComplete(self, ProtocolBindingContext: NdisProtOpen, Status: int) -> None:
        """ProtocolResetComplete: after an NdisReset this protocol asked for (never here)."""

    def ProtocolRequestComplete(
        self, ProtocolBindingContext: NdisProtOpen, NdisRequest: Any, Status: int
    ) -> None:
        """ProtocolRequestComplete: requests complete synchronously in the model."""


__all__ = ["DEFAULT_FILTER", "NdisProt5", "NdisProtOpen", "copy_packet", "status_code"]
