"""NDIS_STATUS: names, severities and the module-level aliases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyndis import status
from pyndis.status import NDIS_STATUS, status_name


@pytest.mark.parametrize("member", list(NDIS_STATUS), ids=lambda m: m.name)
def test_status_name_of_every_member(member: NDIS_STATUS) -> None:
    assert status_name(member) == f"NDIS_STATUS_{member.name}"
    assert status_name(int(member)) == f"NDIS_STATUS_{member.name}"
    assert str(member) == f"NDIS_STATUS_{member.name}"


def test_status_name_of_an_alias_is_the_first_name() -> None:
    # WW_INDICATION shares 0x40010012 with MEDIA_SPECIFIC_INDICATION; the header's first name wins
    assert NDIS_STATUS["WW_INDICATION"] is NDIS_STATUS["MEDIA_SPECIFIC_INDICATION"]
    assert status_name(0x40010012) == "NDIS_STATUS_MEDIA_SPECIFIC_INDICATION"
    assert status_name(NDIS_STATUS.INCOMPATABLE_QOS) == "NDIS_STATUS_INCOMPATIBLE_QOS"


def test_status_name_of_unknown_values_is_the_hex_pattern() -> None:
    assert status_name(0x12345678) == "NDIS_STATUS(0x12345678)"
    assert status_name(0xC0FFEE00) == "NDIS_STATUS(0xC0FFEE00)"
    assert status_name(-1) == "NDIS_STATUS(0xFFFFFFFF)"


def test_status_name_reads_a_signed_value_as_the_c_status() -> None:
    assert status_name(-1073741823) == "NDIS_STATUS_FAILURE"  # (LONG)0xC0000001
    assert status_name(0xC0000001 - (1 << 32)) == "NDIS_STATUS_FAILURE"
    assert status_name(0x103 - (1 << 32)) == "NDIS_STATUS(0x00000103)"  # not PENDING's sign


def test_status_name_of_a_value_wider_than_32_bits_is_not_a_known_status() -> None:
    # masking a 33-bit value would alias it onto SUCCESS; it must not get a name
    assert status_name(1 << 32) != "NDIS_STATUS_SUCCESS"
    assert status_name((1 << 32) | 0x103) != "NDIS_STATUS_PENDING"


@given(st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_status_name_never_raises_and_round_trips(value: int) -> None:
    name = status_name(value)
    if name.startswith("NDIS_STATUS_"):
        assert NDIS_STATUS[name.removeprefix("NDIS_STATUS_")] == value
    else:
        assert int(name.removeprefix("NDIS_STATUS(").removesuffix(")"), 16) == value


@pytest.mark.parametrize("member", list(NDIS_STATUS), ids=lambda m: m.name)
def test_is_error_is_the_nt_error_severity(member: NDIS_STATUS) -> None:
    assert member.is_error is ((int(member) & 0xC0000000) == 0xC0000000)


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (NDIS_STATUS.SUCCESS, False),
        (NDIS_STATUS.PENDING, False),
        (NDIS_STATUS.NOT_ACCEPTED, False),  # informational success
        (NDIS_STATUS.MEDIA_CONNECT, False),  # an indication code
        (NDIS_STATUS.BUFFER_OVERFLOW, False),  # a warning, not an error
        (NDIS_STATUS.BUSY, False),  # a warning too
        (NDIS_STATUS.FAILURE, True),
        (NDIS_STATUS.RESOURCES, True),
        (NDIS_STATUS.CLOSING, True),
        (NDIS_STATUS.SEND_ABORTED, True),
        (NDIS_STATUS.VC_NOT_ACTIVATED, True),
    ],
)
def test_is_error_examples(member: NDIS_STATUS, expected: bool) -> None:
    assert member.is_error is expected


def test_statuses_compare_as_plain_ints() -> None:
    assert status.NDIS_STATUS_PENDING == 0x103
    assert status.NDIS_STATUS_SUCCESS == 0
    assert {0xC000009A: "x"}[status.NDIS_STATUS_RESOURCES] == "x"


def test_every_member_has_a_module_alias_and_all_lists_it() -> None:
    for name, member in NDIS_STATUS.__members__.items():
        alias = f"NDIS_STATUS_{name}"
        assert getattr(status, alias) is member, alias
        assert alias in status.__all__, alias


def test_all_names_exist() -> None:
    for name in status.__all__:
        assert hasattr(status, name), name
    assert "status_name" in status.__all__
