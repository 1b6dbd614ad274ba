"""Tests for drivers/common5: the pieces the NDIS 5.x sample drivers share."""

from __future__ import annotations

import random

import pytest

from pyndis.constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    OID_802_3_CURRENT_ADDRESS,
    OID_802_3_PERMANENT_ADDRESS,
    OID_GEN_CURRENT_PACKET_FILTER,
    OID_GEN_LINK_SPEED,
    OID_GEN_MAXIMUM_SEND_PACKETS,
    OID_GEN_MAXIMUM_TOTAL_SIZE,
    OID_GEN_MEDIA_CONNECT_STATUS,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
)
from pyndis.drivers.common5 import (
    COMPLETION_ORDERS,
    GIGABIT,
    allocate_pools,
    answer,
    ethernet_answers,
    free_buffers,
    free_packet,
    free_pools,
    lookahead_frame,
    open_ethernet,
    order_batch,
    pick,
)
from pyndis.drivers.ndisprot5 import NdisProt5
from pyndis.library.kernel import Ndis
from pyndis.mdl import NdisAllocateBuffer
from pyndis.packet import NdisChainBufferAtBack, NdisQueryPacket
from pyndis.pools import MAX_PACKET_POOL_DESCRIPTORS, NdisAllocatePacket
from pyndis.status import NDIS_STATUS


def test_allocate_pools_makes_both_and_free_pools_frees_both() -> None:
    ndis = Ndis()
    status, packets, buffers = allocate_pools(ndis, 4, 8)
    assert status == NDIS_STATUS.SUCCESS and packets is not None and buffers is not None
    assert set(ndis.pools) == {packets, buffers}
    free_pools(ndis, packets, None, buffers)
    assert ndis.pools == [] and packets.freed and buffers.freed


def test_allocate_pools_leaves_nothing_allocated_when_it_fails() -> None:
    ndis = Ndis()
    status, packets, buffers = allocate_pools(ndis, MAX_PACKET_POOL_DESCRIPTORS + 1, 8)
    assert (status, packets, buffers) == (NDIS_STATUS.RESOURCES, None, None)
    assert ndis.pools == []


def test_free_packet_frees_every_buffer_of_the_chain_then_the_packet() -> None:
    ndis = Ndis()
    _, packets, buffers = allocate_pools(ndis, 2, 4)
    assert packets is not None and buffers is not None
    _, packet = NdisAllocatePacket(packets)
    assert packet is not None
    for part in (b"ab", b"cd", b"ef"):
        _, buffer = NdisAllocateBuffer(buffers, part, len(part))
        assert buffer is not None
        NdisChainBufferAtBack(packet, buffer)
    free_buffers(packet)
    assert NdisQueryPacket(packet)[1:] == (0, None, 0) and buffers.outstanding == 0
    free_buffers(packet)  # an empty chain: nothing to do
    free_packet(packet)
    assert packets.outstanding == 0
    free_pools(ndis, packets, buffers)


def test_answer_gives_the_table_value_or_invalid_oid() -> None:
    assert answer(7, {7: "seven"}) == (NDIS_STATUS.SUCCESS, "seven")
    assert answer(8, {7: "seven"}) == (NDIS_STATUS.INVALID_OID, None)


def test_ethernet_answers_of_an_802_3_nic() -> None:
    mac = b"\x02\x00\x00\x00\x00\x09"
    table = ethernet_answers(
        address=mac, mac_options=NDIS_MAC_OPTION_NO_LOOPBACK, max_send_packets=3, packet_filter=5
    )
    assert table[OID_802_3_CURRENT_ADDRESS] == table[OID_802_3_PERMANENT_ADDRESS] == mac
    assert table[OID_GEN_MAXIMUM_TOTAL_SIZE] == 1514 and table[OID_GEN_LINK_SPEED] == GIGABIT
    assert table[OID_GEN_MAXIMUM_SEND_PACKETS] == 3 and table[OID_GEN_CURRENT_PACKET_FILTER] == 5
    assert table[OID_GEN_MEDIA_CONNECT_STATUS] == NdisMediaStateConnected
    down = ethernet_answers(
        address=mac, mac_options=0, max_send_packets=1, packet_filter=0, connected=False
    )
    assert down[OID_GEN_MEDIA_CONNECT_STATUS] == NdisMediaStateDisconnected


def test_order_batch_fifo_reverse_and_seeded_random() -> None:
    assert COMPLETION_ORDERS == ("fifo", "reverse", "random")
    batch = list(range(10))
    order_batch(batch, "fifo", random.Random(0))
    assert batch == list(range(10))
    order_batch(batch, "reverse", random.Random(0))
    assert batch == list(range(9, -1, -1))
    one, two = list(range(10)), list(range(10))
    order_batch(one, "random", random.Random(5))
    order_batch(two, "random", random.Random(5))
    assert one == two and sorted(one) == list(range(10)) and one != list(range(10))


def test_lookahead_frame_takes_the_sizes_given_not_the_buffers() -> None:
    assert lookahead_frame(b"HEADERxx", 6, bytearray(b"body--"), 4) == b"HEADERbody"
    assert lookahead_frame(memoryview(b"h"), 1, b"", 0) == b"h"


def test_pick_by_name_or_the_only_one() -> None:
    assert pick({"a": 1}, None, "drv", "bindings") == 1
    assert pick({"a": 1, "b": 2}, "b", "drv", "bindings") == 2
    with pytest.raises(LookupError, match="drv has 2 bindings; name one"):
        pick({"a": 1, "b": 2}, None, "drv", "bindings")
    with pytest.raises(LookupError, match="drv has 0 adapters"):
        pick({}, None, "drv", "adapters")
    with pytest.raises(KeyError):
        pick({"a": 1}, "z", "drv", "bindings")


class Context:
    """A binding context whose pools the test controls."""

    def __init__(self, status: NDIS_STATUS) -> None:
        self.status = status
        self.freed = 0

    def allocate(self) -> NDIS_STATUS:
        return self.status

    def free(self) -> None:
        self.freed += 1


def test_open_ethernet_records_a_pool_failure_and_opens_nothing() -> None:
    ndis = Ndis()
    prot = NdisProt5()
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS and prot.handle is not None
    failures: list[tuple[str, NDIS_STATUS]] = []
    ctx = Context(NDIS_STATUS.RESOURCES)
    status, binding = open_ethernet(ndis, prot.handle, ctx, "eth9", failures)
    assert (status, binding) == (NDIS_STATUS.RESOURCES, None)
    assert failures == [("eth9", NDIS_STATUS.RESOURCES)] and ctx.freed == 0


def test_open_ethernet_undoes_the_pools_when_the_open_fails() -> None:
    ndis = Ndis()
    prot = NdisProt5()
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS and prot.handle is not None
    failures: list[tuple[str, NDIS_STATUS]] = []
    ctx = Context(NDIS_STATUS.SUCCESS)
    status, binding = open_ethernet(ndis, prot.handle, ctx, "no-such-adapter", failures)
    assert binding is None and status != NDIS_STATUS.SUCCESS
    assert failures == [("no-such-adapter", status)] and ctx.freed == 1
