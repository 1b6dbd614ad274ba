"""The NdisError hierarchy: culprit, rule, subject and history in every error."""

from __future__ import annotations

import pytest

from pyndis import errors
from pyndis.errors import (
    Culprit,
    IntermediateContractError,
    IrqlError,
    MiniportContractError,
    NdisError,
    NdisInternalError,
    NdisUsageError,
    NdisVersionError,
    ProtocolContractError,
    error_class_for,
)


@pytest.mark.parametrize(
    ("cls", "culprit"),
    [
        (NdisError, Culprit.NDIS_USER),
        (ProtocolContractError, Culprit.PROTOCOL),
        (MiniportContractError, Culprit.MINIPORT),
        (IntermediateContractError, Culprit.INTERMEDIATE),
        (NdisUsageError, Culprit.NDIS_USER),
        (NdisInternalError, Culprit.NDIS),
        (IrqlError, Culprit.NDIS_USER),
        (NdisVersionError, Culprit.NDIS_USER),
    ],
)
def test_default_culprit_per_class(cls: type[NdisError], culprit: Culprit) -> None:
    err = cls("boom", rule="R1")
    assert err.culprit is culprit
    assert isinstance(err, NdisError)
    assert isinstance(err, Exception)


@pytest.mark.parametrize("cls", [IrqlError, NdisVersionError, NdisError])
@pytest.mark.parametrize("culprit", list(Culprit))
def test_culprit_can_be_named_per_instance(cls: type[NdisError], culprit: Culprit) -> None:
    err = cls("x", rule="R62", culprit=culprit)
    assert err.culprit is culprit
    assert culprit.value in str(err)


def test_instance_culprit_does_not_leak_into_the_class() -> None:
    IrqlError("x", rule="R62", culprit=Culprit.MINIPORT)
    assert IrqlError("y", rule="R62").culprit is Culprit.NDIS_USER


def test_message_names_rule_and_culprit() -> None:
    err = ProtocolContractError("packet sent twice", rule="R17")
    assert str(err) == "[R17] protocol driver: packet sent twice"
    assert err.rule == "R17"
    assert err.message == "packet sent twice"
    assert err.subject is None
    assert err.history == []


def test_message_carries_subject_and_history() -> None:
    subject = "<NDIS_PACKET #3>"
    err = MiniportContractError(
        "completed twice",
        rule="PY-DOUBLE-COMPLETE",
        subject=subject,
        history=["t=0 allocate", "t=1 send", "t=2 complete"],
    )
    text = str(err)
    assert text.startswith("[PY-DOUBLE-COMPLETE] miniport driver: completed twice")
    assert f"history of {subject!r}:" in text
    lines = text.splitlines()
    assert lines[-3:] == ["    t=0 allocate", "    t=1 send", "    t=2 complete"]
    assert err.subject is subject


def test_empty_history_adds_no_history_section() -> None:
    err = NdisUsageError("bad handle", rule="PY-BAD-HANDLE", subject=object(), history=[])
    assert "history" not in str(err)


def test_history_is_copied() -> None:
    history = ["a"]
    err = NdisUsageError("x", rule="PY-X", history=history)
    history.append("b")
    assert err.history == ["a"]


def test_rule_is_required() -> None:
    with pytest.raises(TypeError):
        NdisUsageError("x")  # type: ignore[call-arg]


def test_errors_can_be_caught_by_base_class() -> None:
    with pytest.raises(NdisError) as info:
        raise MiniportContractError("x", rule="R37")
    assert info.value.culprit is Culprit.MINIPORT


@pytest.mark.parametrize("culprit", list(Culprit))
def test_error_class_for_names_the_culprit(culprit: Culprit) -> None:
    cls = error_class_for(culprit)
    assert cls("x", rule="R1").culprit is culprit


def test_error_class_for_is_total_and_distinct() -> None:
    classes = [error_class_for(c) for c in Culprit]
    assert len(set(classes)) == len(Culprit)


def test_culprit_values_read_as_english() -> None:
    assert Culprit.PROTOCOL.value == "protocol driver"
    assert Culprit.MINIPORT.value == "miniport driver"
    assert Culprit.NDIS.value == "NDIS library"


def test_all_names_exist() -> None:
    for name in errors.__all__:
        assert hasattr(errors, name), name
