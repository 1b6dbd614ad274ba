"""Tests for library/ddi6: the entry checks and flag handling every NDIS 6 data DDI shares."""

from __future__ import annotations

import pytest

from pyndis.constants import (
    DIRQL,
    DISPATCH_LEVEL,
    NDIS_RECEIVE_FLAGS_RESOURCES,
    NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK,
    PASSIVE_LEVEL,
)
from pyndis.errors import Culprit, IrqlError, NdisVersionError, ProtocolContractError
from pyndis.library.ddi6 import (
    RECEIVE,
    RETURN,
    SEND,
    SEND_COMPLETE,
    enter,
    nbl_length,
    not_an_nbl,
    null_chain,
    passed_flags,
    status_name,
)
from pyndis.library.drivers import DriverBlock
from pyndis.library.kernel import Ndis
from pyndis.status import NDIS_STATUS
from pyndis.testing.buggy5 import Protocol5
from pyndis.testing.stack6 import Raw6Protocol, build_stack, make_frame


def protocol6(ndis: Ndis) -> DriverBlock:
    return Raw6Protocol().register(ndis)


def protocol5(ndis: Ndis) -> DriverBlock:
    status, block = ndis.NdisRegisterProtocol(Protocol5(), Name="old")
    assert status == NDIS_STATUS.SUCCESS and block is not None
    return block


def test_every_dispatch_flag_is_bit_0_under_its_own_name() -> None:
    assert [f.bit for f in (SEND, SEND_COMPLETE, RECEIVE, RETURN)] == [1, 1, 1, 1]
    names = [f.name for f in (SEND, SEND_COMPLETE, RECEIVE, RETURN)]
    assert names == [
        "NDIS_SEND_FLAGS_DISPATCH_LEVEL",
        "NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL",
        "NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL",
        "NDIS_RETURN_FLAGS_DISPATCH_LEVEL",
    ]


@pytest.mark.parametrize("flags", [0, 1, 3])
def test_rule_63_passed_flags_carry_dispatch_exactly_at_dispatch(flags: int) -> None:
    other = flags & ~1
    assert passed_flags(flags, SEND, DISPATCH_LEVEL) == other | 1
    assert passed_flags(flags, SEND, PASSIVE_LEVEL) == other
    assert passed_flags(int(NDIS_RECEIVE_FLAGS_RESOURCES), RECEIVE, PASSIVE_LEVEL) == 2
    assert passed_flags(int(NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK), SEND, DISPATCH_LEVEL) == 3


def test_enter_returns_the_irql_and_accepts_the_flag_at_dispatch() -> None:
    ndis = Ndis(verifier=True)
    block = protocol6(ndis)
    assert enter(ndis, block, "NdisSendNetBufferLists", 0, SEND, "R64") == PASSIVE_LEVEL
    with ndis.irql.at(DISPATCH_LEVEL):
        assert enter(ndis, block, "NdisSendNetBufferLists", 1, SEND, "R64") == DISPATCH_LEVEL
    assert ndis.verifier is not None and ndis.verifier.check() == []


def test_rule_63_enter_reports_a_dispatch_flag_set_below_dispatch() -> None:
    ndis = Ndis(verifier=True)
    block = protocol6(ndis)
    enter(ndis, block, "NdisReturnNetBufferLists", 1, RETURN, "R62")
    assert ndis.verifier is not None
    [error] = ndis.verifier.check()
    assert error.rule == "R63" and isinstance(error, ProtocolContractError)
    assert "NDIS_RETURN_FLAGS_DISPATCH_LEVEL" in str(error)


def test_rule_63_without_the_verifier_a_flag_lie_costs_nothing() -> None:
    ndis = Ndis(verifier=False)
    block = protocol6(ndis)
    assert enter(ndis, block, "NdisSendNetBufferLists", 1, SEND, "R64") == PASSIVE_LEVEL


@pytest.mark.parametrize("rule", ["R62", "R64"])
def test_enter_refuses_an_irql_above_dispatch_with_the_callers_rule(rule: str) -> None:
    ndis = Ndis()
    block = protocol6(ndis)
    with ndis.irql.at(DIRQL), pytest.raises(IrqlError) as caught:
        enter(ndis, block, "NdisReturnNetBufferLists", 0, RETURN, rule)
    assert caught.value.rule == rule and "DIRQL" in str(caught.value)


def test_enter_refuses_an_ndis_5_driver_before_anything_else() -> None:
    ndis = Ndis()
    block = protocol5(ndis)
    with ndis.irql.at(DIRQL), pytest.raises(NdisVersionError):
        enter(ndis, block, "NdisSendNetBufferLists", 1, SEND, "R64")


def test_chain_errors_and_status_names() -> None:
    error = null_chain("NdisSendNetBufferLists", Culprit.PROTOCOL)
    assert isinstance(error, ProtocolContractError) and error.rule == "PY-NULL-NBL"
    assert not_an_nbl("NdisReturnNetBufferLists", 42).rule == "PY-BAD-HANDLE"
    assert status_name(NDIS_STATUS.PAUSED) == "PAUSED"
    assert status_name(0x12345678) == "0x12345678"


def test_nbl_length_counts_every_nb_of_every_nbl() -> None:
    s = build_stack()
    one = s.protocol.nbl(s.ctx, make_frame(payload=b"12345"))
    two = s.protocol.nbl(s.ctx, make_frame(payload=b""), make_frame(payload=b"1"))
    assert nbl_length([]) == 0
    assert nbl_length([one]) == 19
    assert nbl_length(iter([one, two])) == 19 + 14 + 15
    s.protocol.free(one)
    s.protocol.free(two)
    assert all(p.outstanding == 0 for p in s.ndis.pools)
