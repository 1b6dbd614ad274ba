"""The NDIS 5.x send-path bugs of reference/send-path-anchors.md, section 5: each one is either
impossible in pyndis or caught, naming the driver at fault.

Each test reproduces the situation the anchor describes with a driver from
``pyndis.testing.buggy5`` (or a well-behaved one where the bug was NDIS's), and ends with the
"nothing lost, pools balanced" check wherever the scenario can finish.
"""

from __future__ import annotations

import sys

import pytest

from pyndis.errors import MiniportContractError
from pyndis.ownership import Ownership
from pyndis.packet import NDIS_PACKET
from pyndis.status import NDIS_STATUS
from pyndis.testing import (
    CompleteInSendMiniport5,
    CompleteInSendPacketsMiniport5,
    DoubleCompleteMiniport5,
    EarlyWakeMiniport5,
    Miniport5,
    PacketsMiniport5,
    ResendingProtocol5,
    Rig5,
    SilentDropMiniport5,
)

S = NDIS_STATUS


# --- completion inside the send call (ndiswrapper 23d439ab, 98314d83) -----------------------------


@pytest.mark.parametrize("deserialized", [False, True])
def test_completion_inside_miniport_send_is_delivered_exactly_once(deserialized: bool) -> None:
    rig = Rig5(CompleteInSendMiniport5(S.PENDING, deserialized=deserialized))
    ownership_inside: list[Ownership] = []
    rig.protocol.on_complete = lambda p, s: ownership_inside.append(p.ownership)
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    assert rig.protocol.completions == [(packet, S.SUCCESS)]
    assert ownership_inside == [Ownership.ALLOCATED]  # handed back before the handler ran
    rig.finish()


def test_completion_inside_miniport_send_then_success_is_a_double_completion() -> None:
    rig = Rig5(CompleteInSendMiniport5(S.SUCCESS))
    packet = rig.packet()
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisSend(rig.binding, packet)
    assert info.value.rule == "PY-DOUBLE-COMPLETE"
    assert rig.protocol.completions == []  # the protocol never saw a completion, let alone two


@pytest.mark.parametrize("oob", [S.SUCCESS, S.RESOURCES])
def test_completion_inside_send_packets_with_a_final_oob_status_is_a_double_completion(
    oob: int,
) -> None:
    rig = Rig5(CompleteInSendPacketsMiniport5(oob))
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.NdisSendPackets(rig.binding, [rig.packet()], 1)
    assert info.value.rule == "PY-DOUBLE-COMPLETE"
    assert rig.protocol.completions == []


# --- double NdisMSendComplete (ndiswrapper 6f0df96e, 459fe89e, 1496c89e) --------------------------


@pytest.mark.parametrize("deserialized", [False, True])
def test_double_send_complete_is_refused_after_one_delivery(deserialized: bool) -> None:
    rig = Rig5(DoubleCompleteMiniport5(deserialized=deserialized), verifier=True)
    packet = rig.packet()
    rig.ndis.NdisSend(rig.binding, packet)
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.run()
    assert info.value.rule == "PY-DOUBLE-COMPLETE"
    assert info.value.history  # the verifier kept the packet's life
    assert rig.protocol.completions == [(packet, S.SUCCESS)]
    assert packet.ownership is Ownership.ALLOCATED
    rig.finish()


# --- lost wake-up / stalled transmit (ndiswrapper 2c43a195, ChangeLog 1.51; ReactOS) -------------


def test_resources_available_inside_miniport_send_before_resources_is_not_lost() -> None:
    rig = Rig5(EarlyWakeMiniport5(refusals=1))
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    assert packet.ownership is Ownership.IN_NDIS  # refused, requeued
    rig.ndis.run()  # nobody else will ever wake the queue: the early wake must suffice
    assert rig.miniport.accepted == [packet]
    rig.miniport.complete_all()
    assert rig.protocol.completions == [(packet, S.SUCCESS)]
    rig.finish()


def test_a_refusal_with_nothing_outstanding_waits_for_a_wake_not_forever_silently() -> None:
    """ReactOS: a serialized RESOURCES with no later completion leaves the packet parked for
    good. In pyndis the packet stays visibly queued, and taking the adapter down completes it."""
    rig = Rig5(Miniport5())
    rig.miniport.script.append(S.RESOURCES)
    packet = rig.packet()
    rig.ndis.NdisSend(rig.binding, packet)
    rig.ndis.run()
    with pytest.raises(Exception, match="still queued in NDIS"):
        rig.ndis.assert_nothing_lost()
    rig.ndis.remove_adapter(rig.adapter)
    assert rig.protocol.completions == [(packet, S.CLOSING)]
    rig.finish(remove=False)


# --- a second refusal overwrites the single parked slot (ReactOS FirstPendingPacket) -------------


@pytest.mark.parametrize("packets_handler", [False, True])
def test_a_second_resources_refusal_loses_nothing(packets_handler: bool) -> None:
    miniport = PacketsMiniport5(max_send_packets=2) if packets_handler else Miniport5()
    rig = Rig5(miniport)
    a, b, c, d = rig.packets(4)
    miniport.script.extend([S.PENDING, S.RESOURCES])
    rig.ndis.NdisSend(rig.binding, a)
    rig.ndis.NdisSend(rig.binding, b)  # refused: b queued
    miniport.script.append(S.RESOURCES)
    miniport.complete(a)
    rig.ndis.run()  # b refused a second time
    rig.ndis.NdisSend(rig.binding, c)
    rig.ndis.NdisSendPackets(rig.binding, [d], 1)
    assert [r.packet for r in rig.adapter.send_queue] == [b, c, d]
    miniport.resources_available()
    rig.ndis.run()
    miniport.complete_all()
    assert miniport.accepted == [a, b, c, d]
    assert sorted(map(id, (p for p, _ in rig.protocol.completions))) == sorted(
        map(id, (a, b, c, d))
    )
    rig.finish()


# --- silent drops: queue not flushed on halt; a miniport that never completes ---------------------


def test_queued_packets_are_flushed_with_closing_on_halt() -> None:
    rig = Rig5(Miniport5())
    rig.miniport.script.extend([S.PENDING, S.RESOURCES])
    held, queued, behind = rig.packets(3)
    for packet in (held, queued, behind):
        rig.ndis.NdisSend(rig.binding, packet)
    rig.miniport.complete_after_ns = None
    rig.ndis.scheduler.call_later(10, rig.miniport.complete, held)  # completes during unbind
    rig.miniport.script.extend([S.RESOURCES, S.RESOURCES])  # and keeps refusing
    rig.ndis.remove_adapter(rig.adapter)
    statuses = dict((id(p), s) for p, s in rig.protocol.completions)
    assert statuses == {id(held): S.SUCCESS, id(queued): S.CLOSING, id(behind): S.CLOSING}
    rig.finish(remove=False)


def test_rule_65_a_miniport_that_never_completes_is_caught_when_ndis_waits_for_it() -> None:
    rig = Rig5(SilentDropMiniport5())
    rig.ndis.NdisSend(rig.binding, rig.packet())
    with pytest.raises(MiniportContractError) as info:
        rig.ndis.remove_adapter(rig.adapter)
    assert info.value.rule == "R65"


# --- ordering (ReactOS ProSendPackets skips the queue; the worker gets ahead) ---------------------


@pytest.mark.parametrize("packets_handler", [False, True])
def test_fifo_holds_across_resources_and_new_sends_of_both_ddis(packets_handler: bool) -> None:
    miniport = PacketsMiniport5(max_send_packets=3) if packets_handler else Miniport5()
    rig = Rig5(miniport)
    p = rig.packets(6)
    miniport.script.append(S.RESOURCES)
    rig.ndis.NdisSend(rig.binding, p[0])  # refused
    rig.ndis.NdisSendPackets(rig.binding, p[1:3], 2)  # must not overtake p[0]
    rig.ndis.NdisSend(rig.binding, p[3])
    rig.ndis.NdisSendPackets(rig.binding, p[4:], 2)
    assert miniport.accepted == []
    miniport.resources_available()
    rig.ndis.run()
    assert miniport.accepted == p
    miniport.complete_all()
    rig.finish()


# --- re-entrancy (ndiswrapper 2098eb12, acx111) --------------------------------------------------


class DepthMiniport(Miniport5):
    """Records how deeply its send handler is nested (must stay 1: never re-entered)."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.depth = 0
        self.max_depth = 0

    def MiniportSend(self, ctx: object, Packet: NDIS_PACKET, Flags: int) -> int:
        self.depth += 1
        self.max_depth = max(self.max_depth, self.depth)
        try:
            assert self.handle is not None
            self.submitted.append(Packet)
            self.ndis.NdisMSendComplete(self.handle, Packet, S.SUCCESS)  # inside the call
            return S.PENDING
        finally:
            self.depth -= 1


def test_sends_from_protocol_send_complete_never_reenter_a_serialized_miniport() -> None:
    budget = sys.getrecursionlimit() * 2  # a recursive drain would overflow the stack
    rig = Rig5(DepthMiniport(), [ResendingProtocol5(budget)])
    packet = rig.packet()
    assert rig.ndis.NdisSend(rig.binding, packet) == S.PENDING
    rig.ndis.run()
    assert rig.miniport.max_depth == 1
    assert len(rig.miniport.submitted) == budget + 1
    assert len(rig.protocol.completions) == budget + 1
    rig.finish()


@pytest.mark.parametrize("packets_handler", [False, True])
def test_sends_from_a_completion_made_in_the_miniports_dpc_are_queued(
    packets_handler: bool,
) -> None:
    """A serialized miniport completing from its own DPC must not be called again from inside
    that NdisMSendComplete (acx111): NDIS queues the new send and submits it from a DPC."""
    miniport = PacketsMiniport5() if packets_handler else Miniport5()
    rig = Rig5(miniport, [ResendingProtocol5(5)])
    calls_inside: list[int] = []

    def complete_from_dpc() -> None:
        miniport.complete()
        calls_inside.append(len(miniport.submitted))

    rig.ndis.NdisSend(rig.binding, rig.packet())
    for _ in range(6):
        rig.ndis.scheduler.queue_dpc(complete_from_dpc)
        rig.ndis.run()
    assert calls_inside == [1, 2, 3, 4, 5, 6]  # nothing submitted inside the completion
    assert len(rig.protocol.completions) == 6
    rig.finish()
