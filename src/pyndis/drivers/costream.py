"""Bulk, in-order CoNDIS traffic for tests and benchmarks: a sender and a checker per VC.

Theory of operation
-------------------
:class:`StreamSender` gives a :class:`~pyndis.drivers.coclient5.ClientVc` a fixed window of
packets, each chaining an 8-byte header buffer (sender id, sequence number) and a body buffer
over a shared pattern whose length varies with the sequence number. It sends full batches with
``NdisCoSendPackets`` as long as descriptors are free; a completed packet gets its header
rewritten in place and its body length adjusted, and is sent again: reuse without
reinitialisation (the chain stays the same, which the reuse guidance allows). Each completion
is counted per sequence number, so "exactly one completion per packet" is checkable.

:class:`StreamChecker` sits on the receiving VC (the client hands it every packet): each frame
must carry the next sequence number, and every byte must equal what the sender built.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..mdl import NdisAdjustBufferLength, NdisAllocateBuffer, NdisFreeBuffer, NdisQueryBuffer
from ..packet import NDIS_PACKET, NdisChainBufferAtBack, NdisUnchainBufferAtFront, packet_bytes
from ..pools import NdisAllocatePacket, NdisFreePacket

if TYPE_CHECKING:
    from ..mdl import MDL
    from .coclient5 import ClientVc, CoClient5

#: The stream header: sender id, sequence number.
STREAM_HEADER = struct.Struct(">II")


class StreamSender:
    """Bulk, in-order traffic on one VC with a fixed window of reused descriptors."""

    def __init__(
        self,
        client: CoClient5,
        vc: ClientVc,
        sender_id: int,
        count: int,
        pattern: bytes,
        *,
        window: int = 64,
        batch: int = 16,
        body_sizes: Sequence[int] = (40, 200, 1000),
    ) -> None:
        assert client.packet_pool is not None and client.buffer_pool is not None
        self.client = client
        self.vc = vc
        self.sender_id = sender_id
        self.count = count
        self.next_seq = 0
        self.done = 0
        self.statuses: dict[int, int] = {}
        self.batch = batch
        self.body_sizes = tuple(body_sizes)
        self.free: list[NDIS_PACKET] = []
        self.headers: dict[NDIS_PACKET, tuple[bytearray, MDL]] = {}
        self.bodies: dict[NDIS_PACKET, MDL] = {}
        #: completions seen per sequence number (exactly one each, when all is well)
        self.completions = bytearray(count)
        for _ in range(window):
            _status, packet = NdisAllocatePacket(client.packet_pool)
            header = bytearray(STREAM_HEADER.size)
            _status, h_mdl = NdisAllocateBuffer(client.buffer_pool, header, len(header))
            _status, b_mdl = NdisAllocateBuffer(client.buffer_pool, pattern, len(pattern))
            if packet is None or h_mdl is None or b_mdl is None:
                raise RuntimeError("StreamSender: pools too small for the window")
            NdisChainBufferAtBack(packet, h_mdl)
            NdisChainBufferAtBack(packet, b_mdl)
            self.headers[packet] = (header, h_mdl)
            self.bodies[packet] = b_mdl
            self.free.append(packet)
        vc.stream = self

    def owns(self, packet: NDIS_PACKET) -> bool:
        return packet in self.bodies

    def body_size(self, seq: int) -> int:
        sizes = self.body_sizes
        return sizes[seq % len(sizes)] + seq % 7

    def pump(self) -> None:
        """Send as many full batches (or the tail) as the free descriptors allow."""
        vc = self.vc
        assert vc.handle is not None
        send = self.client.ndis.NdisCoSendPackets
        pack = STREAM_HEADER.pack_into
        while self.next_seq < self.count and self.free:
            n = min(self.batch, self.count - self.next_seq)
            if len(self.free) < n:
                return
            array = [self.free.pop() for _ in range(n)]
            for packet in array:
                header, _mdl = self.headers[packet]
                pack(header, 0, self.sender_id, self.next_seq)
                NdisAdjustBufferLength(self.bodies[packet], self.body_size(self.next_seq))
                self.next_seq += 1
            vc.sent += n
            send(vc.handle, array, n)

    def completed(self, packet: NDIS_PACKET, status: int) -> None:
        self.done += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        header, _mdl = self.headers[packet]
        seq = STREAM_HEADER.unpack_from(header)[1]
        if self.completions[seq] < 255:
            self.completions[seq] += 1
        self.free.append(packet)
        if len(self.free) >= self.batch or self.count - self.next_seq < self.batch:
            self.pump()

    @property
    def finished(self) -> bool:
        return self.done == self.count and self.next_seq == self.count

    def release(self) -> None:
        """Free every descriptor (all must be back)."""
        if len(self.free) != len(self.bodies):
            raise RuntimeError("StreamSender.release with sends outstanding")
        for packet in self.free:
            for mdl in (NdisUnchainBufferAtFront(packet), NdisUnchainBufferAtFront(packet)):
                assert mdl is not None
                NdisFreeBuffer(mdl)
            NdisFreePacket(packet)
        self.free.clear()
        self.bodies.clear()
        self.headers.clear()
        self.vc.stream = None


class StreamChecker:
    """Checks one VC's received stream: in order, every byte as the sender built it."""

    def __init__(self, vc: ClientVc, sender_id: int, pattern: bytes, sender: StreamSender) -> None:
        self.vc = vc
        self.sender_id = sender_id
        self.pattern = memoryview(pattern)
        self.sizer = sender.body_size
        self.expected = 0
        self.bytes = 0
        self.errors: list[str] = []
        vc.checker = self

    def check(self, packet: NDIS_PACKET) -> None:
        head = packet.Private.Head
        if head is not None and head.Next is None:
            data, _length = NdisQueryBuffer(head)
        else:
            data = memoryview(packet_bytes(packet))
        sender, seq = STREAM_HEADER.unpack_from(data)
        size = self.sizer(seq)
        body = data[STREAM_HEADER.size :]
        if sender != self.sender_id or seq != self.expected:
            self.errors.append(f"got {sender}/{seq}, expected {self.sender_id}/{self.expected}")
        elif len(body) != size or body != self.pattern[:size]:
            self.errors.append(f"payload of {sender}/{seq} differs")
        self.expected = seq + 1
        self.bytes += len(data)


__all__ = ["STREAM_HEADER", "StreamChecker", "StreamSender"]
