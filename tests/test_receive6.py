"""Tests for pyndis.library.receive6: NDIS 6 receive indications, returns and loopback
(rules 51, 54, 55, 58, 62, 63)."""

from __future__ import annotations

import pytest

from pyndis.constants import (
    DIRQL,
    DISPATCH_LEVEL,
    NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_PACKET_TYPE_ALL_LOCAL,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_PACKET_TYPE_NO_LOCAL,
    NDIS_PACKET_TYPE_PROMISCUOUS,
    NDIS_PROT_OPTION_NO_LOOPBACK,
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_RETURN_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK,
    OID_GEN_PROTOCOL_OPTIONS,
    NdisMediumWan,
    NdisRequestSetInformation,
)
from pyndis.errors import Culprit, IrqlError, MiniportContractError, ProtocolContractError
from pyndis.library.binding import NDIS_OID_REQUEST
from pyndis.library.receive6 import frame_destination
from pyndis.library.states import ADAPTER_TRANSITIONS, move
from pyndis.mdl import MDL
from pyndis.nbl import NET_BUFFER_LIST, link_nbls
from pyndis.nblpool import (
    NET_BUFFER_LIST_POOL_PARAMETERS,
    NblPool,
    NdisAllocateNetBufferAndNetBufferList,
    NdisFreeNetBufferList,
)
from pyndis.ownership import Ownership
from pyndis.testing.stack6 import ADDRESS, Raw6Protocol, RawOpen, Stack6, build_stack, make_frame

BROADCAST = b"\xff" * 6
OTHER = b"\x02\x00\x00\x00\x00\x77"


@pytest.fixture
def s() -> Stack6:
    return build_stack()


def rx_pool(s: Stack6) -> NblPool:
    pool = s.ndis.NdisAllocateNetBufferListPool(
        s.adapter, NET_BUFFER_LIST_POOL_PARAMETERS(fAllocateNetBuffer=True, PoolTag="rx")
    )
    assert pool is not None
    return pool


def rx_nbl(pool: NblPool, frame: bytes) -> NET_BUFFER_LIST:
    mdl = MDL(bytearray(frame), len(frame), None)
    nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, mdl, 0, len(frame))
    assert nbl is not None
    return nbl


def indicate(s: Stack6, nbls: list[NET_BUFFER_LIST], flags: int = 0) -> None:
    s.ndis.NdisMIndicateReceiveNetBufferLists(s.adapter, link_nbls(nbls), 0, len(nbls), flags)


def second_protocol(s: Stack6, packet_filter: int) -> RawOpen:
    other = Raw6Protocol(packet_filter)
    other.register(s.ndis)
    s.ndis.run()
    return other.opens["nic0"]


def free_rx(nbls: list[NET_BUFFER_LIST]) -> None:
    for nbl in nbls:
        NdisFreeNetBufferList(nbl)


# --- receive indications ----------------------------------------------------------------------


def test_receive_goes_to_bindings_whose_filter_accepts_it(s: Stack6) -> None:
    pool = rx_pool(s)
    promiscuous = second_protocol(s, NDIS_PACKET_TYPE_PROMISCUOUS)
    mine = rx_nbl(pool, make_frame(ADDRESS, b"for me"))
    other = rx_nbl(pool, make_frame(OTHER, b"for someone else"))
    indicate(s, [mine, other])
    assert [r[0] for r in s.ctx.receives] == [[make_frame(ADDRESS, b"for me")]]
    assert len(promiscuous.receives[0][0]) == 2
    # both bindings returned at once: both NBLs went back to the miniport
    assert sorted(map(id, s.a.returned)) == sorted(map(id, [mine, other]))
    assert {mine.ownership, other.ownership} == {Ownership.ALLOCATED}
    free_rx([mine, other])
    s.ndis.assert_nothing_lost()


def test_an_nbl_no_binding_wants_goes_back_at_the_end_of_the_indication(s: Stack6) -> None:
    pool = rx_pool(s)
    nbl = rx_nbl(pool, make_frame(OTHER))
    indicate(s, [nbl])
    assert s.ctx.receives == []
    assert s.a.returned == [nbl] and nbl.ownership is Ownership.ALLOCATED
    free_rx([nbl])


def test_a_shared_nbl_returns_to_the_miniport_after_the_last_binding(s: Stack6) -> None:
    pool = rx_pool(s)
    s.ctx.keep = True
    other = second_protocol(s, NDIS_PACKET_TYPE_BROADCAST)
    other.keep = True
    nbls = [rx_nbl(pool, make_frame(BROADCAST, b"%d" % i)) for i in range(3)]
    indicate(s, nbls)
    assert {n.ownership for n in nbls} == {Ownership.INDICATED}
    with pytest.raises(Exception, match="never returned"):
        s.ndis.assert_nothing_lost()
    s.protocol.release(s.ctx)
    assert s.a.returned == []  # the other binding still holds them
    assert other.binding is not None
    s.ndis.NdisReturnNetBufferLists(other.binding, link_nbls([nbls[2], nbls[0]]), 0)
    assert s.a.returned == [nbls[2], nbls[0]]
    nbls[1].Next = None  # a protocol returning one NBL of a chain unlinks it first
    s.ndis.NdisReturnNetBufferLists(other.binding, nbls[1], 0)
    assert len(s.a.returned) == 3
    free_rx(nbls)
    s.ndis.assert_nothing_lost()


def test_resources_indications_are_reclaimed_when_the_handler_returns(s: Stack6) -> None:
    pool = rx_pool(s)
    nbl = rx_nbl(pool, make_frame())
    indicate(s, [nbl], NDIS_RECEIVE_FLAGS_RESOURCES)
    assert s.ctx.receives[0][2] & NDIS_RECEIVE_FLAGS_RESOURCES
    assert nbl.ownership is Ownership.ALLOCATED and s.a.returned == []
    free_rx([nbl])
    s.ndis.assert_nothing_lost()


def test_returning_a_resources_indication_is_refused(s: Stack6) -> None:
    pool = rx_pool(s)
    nbl = rx_nbl(pool, make_frame())
    errors: list[ProtocolContractError] = []

    def give_back(ctx: RawOpen, nbls: list[NET_BUFFER_LIST], flags: int) -> None:
        assert ctx.binding is not None
        with pytest.raises(ProtocolContractError) as info:
            s.ndis.NdisReturnNetBufferLists(ctx.binding, nbls[0], 0)
        errors.append(info.value)

    s.ctx.on_receive = give_back
    indicate(s, [nbl], NDIS_RECEIVE_FLAGS_RESOURCES)
    assert [e.rule for e in errors] == ["PY-RETURN-RESOURCES"]
    assert nbl.ownership is Ownership.ALLOCATED  # reclaimed all the same
    free_rx([nbl])


def test_double_return_and_return_by_another_binding_are_refused(s: Stack6) -> None:
    pool = rx_pool(s)
    other = second_protocol(s, NDIS_PACKET_TYPE_DIRECTED)
    other.keep = True
    s.ctx.keep = True
    nbl = rx_nbl(pool, make_frame())
    indicate(s, [nbl])
    assert s.ctx.binding is not None and other.binding is not None
    s.ndis.NdisReturnNetBufferLists(s.ctx.binding, nbl, 0)
    with pytest.raises(ProtocolContractError) as info:
        s.ndis.NdisReturnNetBufferLists(s.ctx.binding, nbl, 0)
    assert info.value.rule == "PY-DOUBLE-RETURN"
    s.ndis.NdisReturnNetBufferLists(other.binding, nbl, 0)
    with pytest.raises(ProtocolContractError) as info:
        s.ndis.NdisReturnNetBufferLists(other.binding, nbl, 0)
    assert info.value.rule == "PY-DOUBLE-RETURN"
    s.ctx.kept.clear()
    other.kept.clear()
    free_rx([nbl])


def test_indication_count_must_match_the_chain(s: Stack6) -> None:
    pool = rx_pool(s)
    nbls = [rx_nbl(pool, make_frame()) for _ in range(2)]
    with pytest.raises(MiniportContractError) as info:
        s.ndis.NdisMIndicateReceiveNetBufferLists(s.adapter, link_nbls(nbls), 0, 3, 0)
    assert info.value.rule == "PY-NBL-COUNT"
    with pytest.raises(MiniportContractError):
        s.ndis.NdisMIndicateReceiveNetBufferLists(s.adapter, link_nbls(nbls), 0, 1, 0)
    assert {n.ownership for n in nbls} == {Ownership.ALLOCATED}  # nothing moved
    free_rx(nbls)


def test_an_nbl_already_lent_cannot_be_indicated_again(s: Stack6) -> None:
    pool = rx_pool(s)
    s.ctx.keep = True
    nbl = rx_nbl(pool, make_frame())
    indicate(s, [nbl])
    with pytest.raises(MiniportContractError):
        indicate(s, [nbl])


def test_rule_58_a_paused_miniport_must_not_indicate(s: Stack6) -> None:
    pool = rx_pool(s)
    move(s.adapter, ADAPTER_TRANSITIONS, "pause")
    nbl = rx_nbl(pool, make_frame())
    with pytest.raises(MiniportContractError) as info:
        indicate(s, [nbl])
    assert info.value.rule == "R58"
    assert nbl.ownership is Ownership.ALLOCATED


def test_paused_bindings_get_no_indications(s: Stack6) -> None:
    pool = rx_pool(s)
    assert s.ctx.binding is not None
    s.ndis.pause_binding(s.ctx.binding)
    nbl = rx_nbl(pool, make_frame())
    indicate(s, [nbl])
    assert s.ctx.receives == [] and s.a.returned == [nbl]


def test_rule_62_indicate_and_return_above_dispatch_raise(s: Stack6) -> None:
    pool = rx_pool(s)
    nbl = rx_nbl(pool, make_frame())
    with s.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        indicate(s, [nbl])
    assert info.value.rule == "R62" and info.value.culprit is Culprit.MINIPORT
    s.ctx.keep = True
    indicate(s, [nbl])
    assert s.ctx.binding is not None
    with s.ndis.irql.at(DIRQL), pytest.raises(IrqlError) as info:
        s.ndis.NdisReturnNetBufferLists(s.ctx.binding, nbl, 0)
    assert info.value.culprit is Culprit.PROTOCOL


def test_rule_63_receive_and_return_flags(s: Stack6) -> None:
    pool = rx_pool(s)
    nbl = rx_nbl(pool, make_frame())
    indicate(s, [nbl], NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL)  # at PASSIVE: a lie
    assert s.ctx.receives[0][2] & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL == 0  # not passed up
    with s.ndis.irql.at(DISPATCH_LEVEL):
        indicate(s, [nbl], 0)  # clear at DISPATCH: legal; NDIS passes the truth up
    assert s.ctx.receives[1][2] & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL
    s.ctx.keep = True
    indicate(s, [nbl])
    assert s.ctx.binding is not None
    s.ndis.NdisReturnNetBufferLists(s.ctx.binding, nbl, NDIS_RETURN_FLAGS_DISPATCH_LEVEL)
    assert s.ndis.verifier is not None
    rules = [(v.rule, v.culprit) for v in s.ndis.verifier.check()]
    assert rules == [("R63", Culprit.MINIPORT), ("R63", Culprit.PROTOCOL)]


def test_frame_destination_reads_across_mdls() -> None:
    s = build_stack()
    frame = make_frame(b"\x01\x02\x03\x04\x05\x06")
    first = MDL(bytearray(frame[:4]), 4, None)
    first.Next = MDL(bytearray(frame[4:]), len(frame) - 4, None)
    pool = rx_pool(s)
    nbl = NdisAllocateNetBufferAndNetBufferList(pool, 0, 0, first, 0, len(frame))
    assert nbl is not None
    assert frame_destination(nbl) == b"\x01\x02\x03\x04\x05\x06"
    short = rx_nbl(pool, b"\x01\x02")
    assert frame_destination(short) == b""


# --- loopback (rules 51, 54, 55) --------------------------------------------------------------


@pytest.fixture
def ls() -> Stack6:
    """A stack whose miniport completes every send inside its send handler."""
    return build_stack(mode="inline")


def loop_send(
    s: Stack6, ctx: RawOpen, dest: bytes, flags: int, protocol: Raw6Protocol | None = None
) -> None:
    prot = protocol or s.protocol
    prot.send(ctx, [prot.nbl(ctx, make_frame(dest, b"looped"))], flags)
    s.ndis.run()


def test_rule_54_no_loopback_to_the_sender_without_check_for_loopback(ls: Stack6) -> None:
    loop_send(ls, ls.ctx, ADDRESS, 0)
    assert ls.ctx.receives == []


def test_rule_54_check_for_loopback_indicates_a_flagged_copy_to_the_sender(ls: Stack6) -> None:
    frame = make_frame(ADDRESS, b"looped")
    nbl = ls.protocol.nbl(ls.ctx, frame, make_frame(BROADCAST, b"two"))
    ls.protocol.send(ls.ctx, [nbl], NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    ls.protocol.free(nbl)  # the sender may reuse its buffers: loopback already copied them
    ls.ndis.run()
    frames = [f for r in ls.ctx.receives for f in r[0]]
    assert frames == [frame, make_frame(BROADCAST, b"two")]
    assert all(flags & NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET for r in ls.ctx.receives for flags in r[1])
    assert all(r[2] & NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL for r in ls.ctx.receives)  # from a DPC
    ls.ndis.assert_nothing_lost()
    # the copies went back to NDIS's own pool
    assert all(p.outstanding == 0 for p in ls.ndis.pools if p.tag == "lpbk")


def test_rule_54_the_flag_does_not_loop_back_to_other_bindings(ls: Stack6) -> None:
    other = second_protocol(ls, NDIS_PACKET_TYPE_DIRECTED)
    loop_send(ls, ls.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert len(ls.ctx.receives) == 1 and other.receives == []


def test_rule_55_loopback_needs_the_binding_filter_to_accept_the_frame(ls: Stack6) -> None:
    loop_send(ls, ls.ctx, OTHER, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert ls.ctx.receives == []


def test_rule_55_no_loopback_on_other_media() -> None:
    s = build_stack(medium=NdisMediumWan)
    loop_send(s, s.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert s.ctx.receives == []


def test_rule_51_no_ndis_loopback_when_the_nic_loops_back_itself() -> None:
    s = build_stack(no_loopback=False)
    loop_send(s, s.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert s.ctx.receives == []


def test_rule_55_a_promiscuous_binding_sees_other_bindings_sends(ls: Stack6) -> None:
    sniffer = second_protocol(ls, NDIS_PACKET_TYPE_PROMISCUOUS)
    loop_send(ls, ls.ctx, OTHER, 0)  # no flag: the sender gets nothing, the sniffer a copy
    assert ls.ctx.receives == []
    assert len(sniffer.receives) == 1
    assert sniffer.receives[0][1][0] & NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET
    ls.ndis.assert_nothing_lost()


def test_rule_55_all_local_makes_directed_bindings_see_local_traffic(ls: Stack6) -> None:
    third = second_protocol(ls, NDIS_PACKET_TYPE_DIRECTED)
    second_protocol(ls, NDIS_PACKET_TYPE_ALL_LOCAL)
    loop_send(ls, ls.ctx, ADDRESS, 0)
    assert len(third.receives) == 1


def test_rule_55_no_local_bindings_get_no_loopback(ls: Stack6) -> None:
    sniffer = second_protocol(ls, NDIS_PACKET_TYPE_PROMISCUOUS | NDIS_PACKET_TYPE_NO_LOCAL)
    loop_send(ls, ls.ctx, ADDRESS, 0)
    assert sniffer.receives == []
    # ...but a NO_LOCAL binding still gets its own sends back when it asks
    ls.protocol.set_filter(ls.ctx, NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_NO_LOCAL)
    loop_send(ls, ls.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert len(ls.ctx.receives) == 1


def test_prot_option_no_loopback_refuses_the_senders_copy(ls: Stack6) -> None:
    assert ls.ctx.binding is not None
    ls.ndis.NdisOidRequest(
        ls.ctx.binding,
        NDIS_OID_REQUEST(
            NdisRequestSetInformation, OID_GEN_PROTOCOL_OPTIONS, NDIS_PROT_OPTION_NO_LOOPBACK
        ),
    )
    loop_send(ls, ls.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert ls.ctx.receives == []


def test_loopback_to_a_binding_paused_before_the_dpc_is_dropped(ls: Stack6) -> None:
    ls.protocol.send(
        ls.ctx, [ls.protocol.nbl(ls.ctx, make_frame(ADDRESS))], NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK
    )
    assert ls.ctx.binding is not None
    with pytest.raises(Exception, match="loopback indication"):
        ls.ndis.assert_nothing_lost()
    ls.ndis.pause_binding(ls.ctx.binding)  # runs the scheduler: the loopback DPC finds it paused
    ls.ndis.run()
    assert ls.ctx.receives == []
    assert all(p.outstanding == 0 for p in ls.ndis.pools if p.tag == "lpbk")


def test_loopback_copy_allocation_failure_drops_the_copy(ls: Stack6) -> None:
    loop_send(ls, ls.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)  # creates the pool
    [pool] = [p for p in ls.ndis.pools if p.tag == "lpbk"]
    pool.fail_next(1)  # type: ignore[attr-defined]
    loop_send(ls, ls.ctx, ADDRESS, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    assert len(ls.ctx.receives) == 1
    ls.ndis.assert_nothing_lost()
