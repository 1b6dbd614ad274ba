"""Tests for the NDIS 6 sample drivers: netvmini6, ndisprot6, comini6 + coclient6, and the
passthru6 intermediate driver of the testing kit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from pyndis.constants import (
    NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET,
    NDIS_PACKET_TYPE_BROADCAST,
    NDIS_PACKET_TYPE_DIRECTED,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK,
)
from pyndis.drivers.coclient6 import CoClient6
from pyndis.drivers.comini6 import CoMini6, vc_call_parameters
from pyndis.drivers.ndisprot6 import NdisProt6, ProtOpen
from pyndis.drivers.netvmini6 import NetVMini6, Vmini6Adapter
from pyndis.errors import Culprit
from pyndis.library.adapter import MiniportBlock
from pyndis.library.kernel import Ndis
from pyndis.library.states import AdapterState, BindingState
from pyndis.status import NDIS_STATUS
from pyndis.testing.passthru6 import Passthru6
from pyndis.testing.stack6 import Raw6Protocol, make_frame
from pyndis.wire import Wire, WirePort, run_kernels

ME = b"\x02\x00\x00\x00\x00\x01"
YOU = b"\x02\x00\x00\x00\x00\x02"


@dataclass
class Node:
    ndis: Ndis
    miniport: NetVMini6
    adapter: MiniportBlock
    prot: NdisProt6
    ctx: ProtOpen

    @property
    def a(self) -> Vmini6Adapter:
        a: Vmini6Adapter = self.adapter.MiniportAdapterContext
        return a


def node(name: str = "host", seed: int = 0, prot: NdisProt6 | None = None, **keywords: Any) -> Node:
    ndis = Ndis(seed=seed, name=name, verifier=True)
    miniport = NetVMini6()
    _, handle = ndis.NdisMRegisterMiniportDriver(miniport)
    assert handle is not None
    status, adapter = ndis.add_adapter(handle, "eth0", **keywords)
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    prot = prot or NdisProt6()
    assert prot.register(ndis) == NDIS_STATUS.SUCCESS
    ndis.run()  # ProtocolBindAdapterEx runs from a PASSIVE work item
    return Node(ndis, miniport, adapter, prot, prot.opens["eth0"])


def probe(wire: Wire, n: Node) -> tuple[WirePort, list[bytes]]:
    seen: list[bytes] = []
    return wire.attach(n.ndis, seen.append, "probe"), seen


def done(n: Node) -> None:
    n.ndis.run()
    n.ndis.assert_nothing_lost()
    n.ndis.remove_adapter(n.adapter)
    n.ndis.assert_nothing_lost()
    assert n.ndis.verifier is not None and n.ndis.verifier.check() == []


# --- netvmini6 ---------------------------------------------------------------------------------


def test_netvmini6_queues_beyond_its_tcbs_and_sends_in_order() -> None:
    wire = Wire()
    n = node(tcbs=2, wire=wire, tx_ns=1000)
    _, seen = probe(wire, n)
    payloads = [[make_frame(YOU, b"%d.%d" % (i, j)) for j in range(2)] for i in range(6)]
    n.prot.send(n.ctx, payloads)
    assert len(n.a.busy) == 2 and len(n.a.wait) == 10  # bounded TCBs, FIFO wait list
    n.ndis.run()
    assert n.ctx.statuses == [NDIS_STATUS.SUCCESS] * 6
    assert seen == [f for nbl in payloads for f in nbl]  # FIFO on the wire
    assert n.a.tx_frames == 12 and n.a.free_tcbs == 2
    done(n)


def test_netvmini6_batches_completions_per_dpc() -> None:
    n = node(tcbs=64, tx_ns=100, coalesce_ns=10_000)
    for i in range(5):
        n.prot.send(n.ctx, [make_frame(YOU, b"%d" % i)] * 2)  # five send calls
    n.ndis.run()
    assert n.a.completion_calls == [10]  # one NdisMSendNetBufferListsComplete ...
    assert n.ctx.completion_calls == [10]  # ... and one ProtocolSendNetBufferListsComplete
    done(n)


def test_netvmini6_dpc_batch_bounds_each_completion_call() -> None:
    n = node(tcbs=64, tx_ns=10, coalesce_ns=10_000, dpc_batch=4)
    n.prot.send(n.ctx, [make_frame(YOU)] * 10)
    n.ndis.run()
    assert n.a.completion_calls == [4, 4, 2]
    done(n)


def test_netvmini6_random_completion_order_is_seeded() -> None:
    def order(seed: int) -> list[int]:
        n = node(seed=seed, tcbs=64, tx_ns=10, coalesce_ns=10_000, random_order=True)
        n.prot.send(n.ctx, [make_frame(YOU, bytes([i])) for i in range(8)])
        got: list[int] = []
        original = n.prot.free_nbl

        def spy(nbl: Any) -> None:
            got.append(nbl.NetBufferListInfo[5] & 0xFFFFFF)  # the cancel-id sequence number
            original(nbl)

        n.prot.free_nbl = spy  # type: ignore[method-assign]
        n.ndis.run()
        done(n)
        return got

    assert order(3) == order(3)  # a function of the seed
    orders = [order(seed) for seed in range(5)]
    assert all(sorted(o) == list(range(1, 9)) for o in orders)  # each NBL once
    assert any(o != sorted(o) for o in orders)  # and not FIFO


def test_netvmini6_pause_waits_for_sends_then_refuses_and_restart_resumes() -> None:
    n = node(tcbs=1, tx_ns=1000)
    n.prot.send(n.ctx, [make_frame(YOU)] * 3)
    n.ndis.pause_adapter(n.adapter)  # the binding first (waits for its sends), then the NIC
    assert n.adapter.state is AdapterState.PAUSED and n.a.state == "paused"
    assert n.ctx.statuses == [NDIS_STATUS.SUCCESS] * 3
    assert n.prot.send(n.ctx, [make_frame(YOU)]) == NDIS_STATUS.ADAPTER_NOT_READY
    n.ndis.restart_adapter(n.adapter)
    assert n.prot.send(n.ctx, [make_frame(YOU)]) == NDIS_STATUS.PENDING
    done(n)


def test_netvmini6_pause_pends_until_receives_come_back() -> None:
    wire = Wire()
    n = node(wire=wire, prot=NdisProt6(retain=True))
    port, _ = probe(wire, n)
    port.transmit(make_frame(ME, b"kept"))
    n.ndis.run()
    assert n.a.rx_outstanding == 1
    n.ndis.pause_adapter(n.adapter)  # ndisprot returns what it kept when it is paused
    assert n.a.rx_outstanding == 0 and n.adapter.state is AdapterState.PAUSED
    assert n.ctx.received == [(make_frame(ME, b"kept"), False)]
    n.ndis.restart_adapter(n.adapter)
    done(n)


@pytest.mark.parametrize("pending", [False, True])
def test_netvmini6_reset_fails_waiting_sends_with_reset_in_progress(pending: bool) -> None:
    n = node(tcbs=1, tx_ns=1000, reset_pending=pending)
    n.prot.send(n.ctx, [make_frame(YOU)] * 3)
    status = n.ndis.reset_adapter(n.adapter)
    assert status == (NDIS_STATUS.PENDING if pending else NDIS_STATUS.SUCCESS)
    n.ndis.run()
    assert sorted(n.ctx.statuses) == sorted(
        [NDIS_STATUS.SUCCESS] + [NDIS_STATUS.RESET_IN_PROGRESS] * 2
    )
    assert n.adapter.state is AdapterState.RUNNING and n.a.resets == 1
    assert NDIS_STATUS.RESET_START in n.ctx.status_indications
    done(n)


def test_netvmini6_cancel_aborts_waiting_nbls() -> None:
    n = node(tcbs=1, tx_ns=1000)
    n.prot.send(n.ctx, [make_frame(YOU, b"%d" % i) for i in range(4)])
    # ndisprot stamps cancel ids (partial id << 24 | sequence); cancel the 3rd one
    assert n.ctx.binding is not None
    target = (n.ctx.partial_cancel_id << 24) | 3
    n.ndis.NdisCancelSendNetBufferLists(n.ctx.binding, target)
    n.ndis.run()
    assert n.ctx.statuses.count(NDIS_STATUS.SEND_ABORTED) == 1
    assert n.ctx.statuses.count(NDIS_STATUS.SUCCESS) == 3
    assert n.a.cancels == 1
    done(n)


def test_netvmini6_cancel_of_an_nbl_partly_on_the_hardware() -> None:
    n = node(tcbs=1, tx_ns=1000)
    n.prot.send(n.ctx, [[make_frame(YOU, b"a"), make_frame(YOU, b"b")]])
    assert n.ctx.binding is not None
    n.ndis.NdisCancelSendNetBufferLists(n.ctx.binding, (n.ctx.partial_cancel_id << 24) | 1)
    n.ndis.run()
    assert n.ctx.statuses == [NDIS_STATUS.SEND_ABORTED]  # the first NB went, the second not
    assert n.a.tx_frames == 1
    done(n)


def test_netvmini6_link_down_and_oversize_frames() -> None:
    n = node(mtu=100)
    n.miniport.set_link(n.a, False)
    assert NDIS_STATUS.LINK_STATE in n.ctx.status_indications
    n.prot.send(n.ctx, [make_frame(YOU)])
    n.miniport.set_link(n.a, True)
    n.prot.send(n.ctx, [make_frame(YOU, bytes(200)), [make_frame(YOU), make_frame(YOU)]])
    n.ndis.run()
    assert n.ctx.statuses == [
        NDIS_STATUS.MEDIA_DISCONNECTED,
        NDIS_STATUS.INVALID_LENGTH,
        NDIS_STATUS.SUCCESS,
    ]
    done(n)


def test_netvmini6_two_hosts_on_a_wire_with_receive_resources() -> None:
    wire = Wire(latency_ns=5000)
    a = node("A", address=ME, wire=wire)
    b = node("B", address=YOU, wire=wire, rcbs=4, low_rcbs=1)
    frames = [make_frame(YOU, b"%d" % i) for i in range(6)]
    a.prot.send(a.ctx, frames)
    a.prot.send(a.ctx, [make_frame(b"\xff" * 6, b"bcast")])
    a.prot.send(a.ctx, [make_frame(b"\x02\x00\x00\x00\x00\x99", b"not for b")])
    run_kernels([a.ndis, b.ndis])
    assert [f for f, _ in b.ctx.received] == [*frames, make_frame(b"\xff" * 6, b"bcast")]
    assert b.a.rx_resources == 0  # ndisprot returned each at once: no buffer ran low
    # now ndisprot keeps what it gets: the receive buffers run low
    b.prot.retain = True
    a.prot.send(a.ctx, [make_frame(YOU, b"k%d" % i) for i in range(5)])
    run_kernels([a.ndis, b.ndis])
    assert b.a.rx_outstanding == 3 and b.a.rx_resources == 2
    assert [bool(f & NDIS_RECEIVE_FLAGS_RESOURCES) for f in b.ctx.receive_flags[-5:]] == [
        False,
        False,
        False,
        True,
        True,
    ]
    assert len(b.ctx.received) == 12  # the RESOURCES frames were copied all the same
    b.prot.return_received(b.ctx)
    done(a)
    done(b)


def test_netvmini6_drops_frames_when_every_receive_buffer_is_out() -> None:
    wire = Wire()
    b = node(wire=wire, rcbs=2, prot=NdisProt6(retain=True))
    port, _ = probe(wire, b)
    for i in range(3):
        port.transmit(make_frame(ME, b"%d" % i))
    b.ndis.run()
    assert b.a.rx_outstanding == 2 and b.a.rx_dropped == 1 and len(b.ctx.received) == 2
    b.prot.return_received(b.ctx)
    done(b)


def test_netvmini6_halt_fails_leftovers_and_frees_its_pool() -> None:
    n = node(tcbs=1, tx_ns=10**9)
    pools_before = len(n.ndis.pools)
    n.ndis.remove_adapter(n.adapter)  # pause waits for the send; the adapter then halts
    assert n.ctx.state == "closed" and len(n.ndis.pools) < pools_before
    n.ndis.assert_nothing_lost()


# --- ndisprot6 --------------------------------------------------------------------------------


def test_ndisprot6_loopback_flag_and_default() -> None:
    n = node()
    n.prot.send(n.ctx, [make_frame(ME, b"to myself")])
    n.ndis.run()
    assert n.ctx.received == [(make_frame(ME, b"to myself"), True)]
    quiet = node(prot=NdisProt6(loopback=False))
    quiet.prot.send(quiet.ctx, [make_frame(ME)])
    quiet.ndis.run()
    assert quiet.ctx.received == []
    done(n)
    done(quiet)


def test_ndisprot6_pool_exhaustion_sends_nothing() -> None:
    n = node()
    assert n.ctx.nb_pool is not None
    n.ctx.nb_pool.fail_next(1)
    status = n.prot.send(n.ctx, [make_frame(YOU), [make_frame(YOU), make_frame(YOU)]])
    assert status == NDIS_STATUS.RESOURCES
    assert n.ctx.binding is not None and n.ctx.binding.counters.sent == 0
    assert n.ctx.nbl_pool is not None and n.ctx.nbl_pool.outstanding == 0
    done(n)


def test_ndisprot6_resends_from_its_completion_handler() -> None:
    n = node(tcbs=4)
    sent = [3]

    def again(ctx: ProtOpen, statuses: list[int]) -> None:
        if sent[0] < 12:  # send as many again, from inside the completion handler
            assert n.prot.send(ctx, [make_frame(YOU)] * len(statuses)) == NDIS_STATUS.PENDING
            sent[0] += len(statuses)

    n.ctx.on_send_complete = again
    n.prot.send(n.ctx, [make_frame(YOU)] * 3)
    n.ndis.run()
    assert n.ctx.statuses == [NDIS_STATUS.SUCCESS] * 12 and n.ctx.pended == 0
    done(n)


def test_ndisprot6_unbinds_cleanly_with_sends_in_flight() -> None:
    n = node(tcbs=1, tx_ns=5000)
    n.prot.send(n.ctx, [make_frame(YOU)] * 4)
    binding = n.ctx.binding
    n.ndis.remove_adapter(n.adapter)
    assert binding is not None and binding.state is BindingState.CLOSED
    assert n.ctx.statuses == [NDIS_STATUS.SUCCESS] * 4 and n.prot.opens == {}
    n.ndis.assert_nothing_lost()


# --- passthru6 ----------------------------------------------------------------------------------


def test_passthru6_carries_sends_down_and_receives_up() -> None:
    wire = Wire(latency_ns=1000)
    ndis = Ndis(verifier=True, name="im")
    _, handle = ndis.NdisMRegisterMiniportDriver(NetVMini6())
    assert handle is not None
    ndis.add_adapter(handle, "eth0", wire=wire)
    im = Passthru6()
    im.register(ndis)
    top = Raw6Protocol(only=["eth0-pt"])
    top.register(ndis)
    ndis.run()  # the PnP offers are PASSIVE work items
    ctx = top.opens["eth0-pt"]
    seen: list[bytes] = []
    peer = wire.attach(ndis, seen.append, "peer")
    nbls = top.chain(ctx, 2, nbs=2)
    top.send(ctx, nbls, NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK)
    peer.transmit(make_frame(ME, b"from the wire"))
    peer.transmit(make_frame(b"\xff" * 6, b"broadcast"))
    ndis.run()
    assert len(seen) == 4 and ctx.completed == nbls
    received = [
        (f, flags) for frames, fl, _ in ctx.receives for f, flags in zip(frames, fl, strict=True)
    ]
    looped = [f for f, flags in received if flags & NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET]
    assert len(looped) == 4  # once, at the virtual adapter (not again below)
    assert [f for f, flags in received if not flags & NDIS_NBL_FLAGS_IS_LOOPBACK_PACKET] == [
        make_frame(ME, b"from the wire"),
        make_frame(b"\xff" * 6, b"broadcast"),
    ]
    for nbl in nbls:
        top.free(nbl)
    assert ndis.verifier is not None and ndis.verifier.check() == []
    ndis.remove_adapter(ndis.adapters["eth0"])  # the IM removes its virtual adapter first
    assert ndis.adapters == {}
    ndis.assert_nothing_lost()


def test_passthru6_pause_waits_for_forwarded_sends_and_kept_receives() -> None:
    ndis = Ndis(verifier=True)
    _, handle = ndis.NdisMRegisterMiniportDriver(NetVMini6())
    assert handle is not None
    ndis.add_adapter(handle, "eth0", tx_ns=10_000)
    im = Passthru6()
    im.register(ndis)
    top = Raw6Protocol(only=["eth0-pt"])
    top.register(ndis)
    ndis.run()  # the PnP offers are PASSIVE work items
    ctx = top.opens["eth0-pt"]
    top.send(ctx, top.chain(ctx, 3))
    virtual = ndis.adapters["eth0-pt"]
    ndis.pause_adapter(virtual)
    assert virtual.state is AdapterState.PAUSED and len(ctx.completed) == 3
    ndis.restart_adapter(virtual)
    for nbl in ctx.completed:
        top.free(nbl)
    ndis.remove_adapter(ndis.adapters["eth0"])
    ndis.assert_nothing_lost()


# --- comini6 + coclient6 --------------------------------------------------------------------


def co_node(**keywords: Any) -> tuple[Ndis, CoMini6, MiniportBlock, CoClient6]:
    ndis = Ndis(verifier=True)
    miniport = CoMini6()
    _, handle = ndis.NdisMRegisterMiniportDriver(miniport)
    assert handle is not None
    _, adapter = ndis.add_adapter(handle, "co0", **keywords)
    assert adapter is not None
    client = CoClient6()
    assert client.register(ndis) == NDIS_STATUS.SUCCESS
    ndis.run()
    return ndis, miniport, adapter, client


def test_comini6_refuses_a_second_call_on_the_same_vc_number() -> None:
    ndis, _, adapter, client = co_node()
    ctx = client.bindings["co0"]
    client.open_vc(ctx, 5)
    second = client.open_vc(ctx, 5)
    assert second.state == "failed"
    assert adapter.MiniportAdapterContext.by_number[5] is not None
    ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()
    assert ndis.verifier is not None and ndis.verifier.check() == []


def test_coclient6_answers_an_incoming_close_and_deletes_its_vc() -> None:
    ndis, miniport, adapter, client = co_node(stalled=True)
    ctx = client.bindings["co0"]
    vc = client.open_vc(ctx, 1)
    client.send(vc, [[b"x", b"y"]])
    assert vc.handle is not None
    ndis.actors.append(Culprit.MINIPORT)
    ndis.NdisMCmDispatchIncomingCloseCall(NDIS_STATUS.SUCCESS, vc.handle)
    ndis.actors.pop()
    # the client called NdisClCloseCall at once; NDIS holds it back until the send is done
    assert vc.state == "closing"
    miniport.unstall(adapter.MiniportAdapterContext)
    ndis.run()
    assert vc.statuses == [NDIS_STATUS.SUCCESS] and vc.state == "closed"
    client.close_vc(vc)
    assert vc.state == "deleted"
    ndis.remove_adapter(adapter)
    ndis.assert_nothing_lost()


def test_comini6_forced_teardown_aborts_waiting_sends() -> None:
    ndis, _, _, client = co_node(stalled=True)
    ctx = client.bindings["co0"]
    vc = client.open_vc(ctx, 1)
    client.send(vc, [[b"a"], [b"b", b"c"]])
    assert vc.handle is not None
    ndis._force_delete(vc.handle)  # what NDIS does to VCs left when an adapter halts
    assert vc.statuses == [NDIS_STATUS.SEND_ABORTED] * 2


def test_vc_call_parameters_carry_the_vc_number() -> None:
    params = vc_call_parameters(42)
    assert params.MediaParameters is not None
    assert params.MediaParameters.MediaSpecific.Parameters == 42


def test_ndisprot6_filter_defaults() -> None:
    assert NdisProt6().packet_filter == NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_BROADCAST
