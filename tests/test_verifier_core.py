"""The verifier core: collect mode, strict mode, and what check() hands back."""

from __future__ import annotations

import pytest

from pyndis.errors import MiniportContractError, NdisError, ProtocolContractError
from pyndis.hostctx import HostContext
from pyndis.verifier.core import Verifier


def violations() -> list[NdisError]:
    return [
        ProtocolContractError("OOB status read in flight", rule="R17"),
        MiniportContractError("flag claims DISPATCH at PASSIVE", rule="R63"),
        ProtocolContractError("OOB status read in flight", rule="R17"),
    ]


def test_collect_mode_keeps_every_violation_in_order() -> None:
    verifier = Verifier()
    found = violations()
    for v in found:
        verifier.report(v)  # never raises
    assert verifier.check() == found
    assert verifier.rules() == ["R17", "R63", "R17"]


def test_check_returns_a_copy() -> None:
    verifier = Verifier()
    verifier.report(violations()[0])
    verifier.check().clear()
    assert len(verifier.check()) == 1


def test_clear_forgets_everything() -> None:
    verifier = Verifier()
    for v in violations():
        verifier.report(v)
    verifier.clear()
    assert verifier.check() == []
    assert verifier.rules() == []


def test_strict_mode_raises_the_first_violation_and_records_it() -> None:
    verifier = Verifier(strict=True)
    first, second, _ = violations()
    with pytest.raises(ProtocolContractError) as info:
        verifier.report(first)
    assert info.value is first
    with pytest.raises(MiniportContractError):
        verifier.report(second)
    assert verifier.rules() == ["R17", "R63"]


def test_a_fresh_verifier_has_nothing() -> None:
    verifier = Verifier()
    assert not verifier.strict
    assert verifier.check() == []


def test_kernel_wiring_collect_then_strict() -> None:
    collecting = HostContext(verifier=True)
    for v in violations():
        collecting.flag(v)
    assert collecting.verifier is not None
    assert collecting.verifier.rules() == ["R17", "R63", "R17"]

    strict = HostContext(verifier=True, strict=True)
    with pytest.raises(NdisError):
        strict.flag(violations()[1])
