"""Every constant pyndis defines has its real header value.

The facts live in ``tests/data/ndis_constants.json`` (header values with a note per group on
where they were read), so the suite never needs the Windows headers. Three checks:

1. every module-level integer of :mod:`pyndis.status` and :mod:`pyndis.constants` whose name the
   fact file knows has exactly that value;
2. every name *anywhere in the package* that looks like a header constant (``NDIS_*``,
   ``fPACKET_*``, ``NdisMedium*``, ``*_LEVEL``, ``CO_*``, ``OID_*``, ``MDL_*``...) is in the fact
   file or in :data:`MODEL_ONLY` below, and has the fact file's value;
3. every member of every enum class in those two modules is reachable under its full C name at
   module level (``NDIS_FLAGS.DONT_LOOPBACK is NDIS_FLAGS_DONT_LOOPBACK``).

Adding a constant therefore means adding its header value to the JSON (with the header it came
from) or, for a value the model invents, to :data:`MODEL_ONLY` with the reason.
"""

from __future__ import annotations

import enum
import importlib
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import pyndis
from pyndis import constants, status
from pyndis.status import NDIS_STATUS

DATA = Path(__file__).parent / "data" / "ndis_constants.json"
RAW: dict[str, Any] = json.loads(DATA.read_text())

#: Values the model needs that no header #defines. Name -> why it is not in the fact file.
MODEL_ONLY: dict[str, str] = {
    "POINTER_SIZE": "sizeof(PVOID) on amd64: a compiler fact, not a header constant",
    "DIRQL": "stands for any device IRQL; real DIRQLs are assigned per interrupt at run time",
}

#: Names that look like header constants (checked against the fact file wherever they appear).
HEADER_LIKE = re.compile(
    r"""^(?:
        NDIS_\w+ | fPACKET_\w+ | NBL_FLAGS_\w+ | NET_BUFFER_\w+ | NdisMedium\w+
      | NdisRequest\w+ | NdisMediaState\w+ | \w+NetBufferListInfo | \w+PacketInfo
      | [A-Z]+_LEVEL | DIRQL | CO_\w+ | \w+_VC | CALL_PARAMETERS_CHANGED | QUERY_CALL_PARAMETERS
      | INDICATE_\w+ | OID_\w+ | MDL_\w+ | \w+PagePriority | MEMORY_ALLOCATION_ALIGNMENT
      | PAGE_SIZE | POINTER_SIZE
    )$""",
    re.VERBOSE,
)


def _facts() -> dict[str, int]:
    facts: dict[str, int] = {}
    for group, body in RAW["groups"].items():
        assert body["_source"].strip(), f"group {group} has no _source note"
        for name, value in body["values"].items():
            assert facts.get(name, value) == value, f"{name} has two values in the fact file"
            facts[name] = value
    return facts


FACTS = _facts()


def _module_ints(module: ModuleType) -> dict[str, int]:
    """Public module-level integers (enum members included, bools excluded)."""
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and isinstance(value, int) and not isinstance(value, bool)
    }


def check_module(module: ModuleType) -> list[str]:
    """Problems with the header-like constants of ``module`` (empty list: all good)."""
    problems = []
    for name, value in sorted(_module_ints(module).items()):
        if name in FACTS:
            if int(value) != FACTS[name]:
                problems.append(
                    f"{module.__name__}.{name} = 0x{int(value):X}, header says 0x{FACTS[name]:X}"
                )
        elif HEADER_LIKE.match(name) and name not in MODEL_ONLY:
            problems.append(
                f"{module.__name__}.{name} = 0x{int(value):X} looks like a header constant but is "
                "neither in tests/data/ndis_constants.json nor in MODEL_ONLY"
            )
    return problems


def _package_modules() -> list[str]:
    root = Path(pyndis.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(["pyndis", *parts]))
    return names


# --- the fact file itself -------------------------------------------------------------------------


def test_fact_file_is_well_formed() -> None:
    assert RAW["_headers"], "the header key is missing"
    for group, body in RAW["groups"].items():
        assert set(body) == {"_source", "values"}, group
        for name, value in body["values"].items():
            assert isinstance(value, int) and not isinstance(value, bool), name
            assert value >= 0, f"{name}: store the unsigned pattern"


def test_fact_file_status_codes_are_unsigned_32_bit() -> None:
    for name, value in RAW["groups"]["NDIS_STATUS"]["values"].items():
        assert name.startswith("NDIS_STATUS_")
        assert 0 <= value <= 0xFFFFFFFF, name


# --- 1. values of pyndis.status and pyndis.constants ---------------------------------------------


@pytest.mark.parametrize("module", [status, constants], ids=lambda m: m.__name__)
def test_every_known_constant_has_the_header_value(module: ModuleType) -> None:
    checked = {n: v for n, v in _module_ints(module).items() if n in FACTS}
    assert checked, "nothing was checked: the walk is broken"
    wrong = {n: (hex(v), hex(FACTS[n])) for n, v in checked.items() if int(v) != FACTS[n]}
    assert not wrong, f"(name: (ours, header)) {wrong}"


def test_status_module_checks_every_status_it_defines() -> None:
    checked = {n for n in _module_ints(status) if n in FACTS}
    aliases = {f"NDIS_STATUS_{m}" for m in NDIS_STATUS.__members__}
    assert aliases <= checked


# --- 2. every header-like name in the package is covered -----------------------------------------


@pytest.mark.parametrize("module_name", _package_modules())
def test_header_like_names_are_in_the_fact_file(module_name: str) -> None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name and not exc.name.startswith("pyndis"):
            pytest.skip(f"{module_name} needs {exc.name}, which this platform lacks")
        raise
    problems = check_module(module)
    assert not problems, "\n".join(problems)


def test_model_only_names_exist_and_are_not_header_facts() -> None:
    defined: set[str] = set()
    for module_name in _package_modules():
        try:
            defined |= set(_module_ints(importlib.import_module(module_name)))
        except ImportError:
            continue  # reported by test_header_like_names_are_in_the_fact_file
    for name in MODEL_ONLY:
        assert name in defined, f"MODEL_ONLY lists {name}, which pyndis no longer defines"
        assert name not in FACTS, f"{name} is in the fact file; drop it from MODEL_ONLY"


def test_checker_catches_a_wrong_value_and_an_unlisted_name() -> None:
    fake = ModuleType("fake")
    fake.NDIS_FLAGS_DONT_LOOPBACK = 0x40  # type: ignore[attr-defined]  # header: 0x80
    fake.NDIS_STATUS_MADE_UP = 0xC0FFEE  # type: ignore[attr-defined]
    fake.OID_GEN_INVENTED = 0x00019999  # type: ignore[attr-defined]
    fake.PASSIVE_LEVEL = 0  # type: ignore[attr-defined]  # right
    fake.private_thing = 7  # type: ignore[attr-defined]  # not header-like: ignored
    problems = check_module(fake)
    assert len(problems) == 3, problems
    assert "NDIS_FLAGS_DONT_LOOPBACK = 0x40, header says 0x80" in problems[0]
    assert any("NDIS_STATUS_MADE_UP" in p for p in problems)
    assert any("OID_GEN_INVENTED" in p for p in problems)


def test_package_walk_finds_the_core_modules() -> None:
    found = set(_package_modules())
    assert {"pyndis", "pyndis.status", "pyndis.constants", "pyndis.mdl"} <= found


# --- 3. enum members and their C-name aliases ----------------------------------------------------

#: Enums whose member names already are the C names (no class-name prefix).
BARE = {
    "KIRQL",
    "CO_CALL_FLAGS",
    "CO_MEDIA_FLAGS",
    "NDIS_NET_BUFFER_LIST_INFO",
    "NDIS_PER_PACKET_INFO",
    "NDIS_MEDIUM",
    "NDIS_OID",
    "NDIS_REQUEST_TYPE",
    "NDIS_MEDIA_STATE",
    "CoAddressFamily",
}
#: Members renamed because the C name is not a valid Python identifier after the prefix.
RENAMED = {
    ("NDIS_MAC_OPTION", "IEEE_8021P_PRIORITY"): "NDIS_MAC_OPTION_8021P_PRIORITY",
    ("NDIS_MAC_OPTION", "IEEE_8021Q_VLAN"): "NDIS_MAC_OPTION_8021Q_VLAN",
}


def c_name(cls: type[enum.Enum], member: str) -> str:
    if (cls.__name__, member) in RENAMED:
        return RENAMED[cls.__name__, member]
    return member if cls.__name__ in BARE else f"{cls.__name__}_{member}"


def _enum_classes(module: ModuleType) -> list[type[enum.Enum]]:
    return [
        v
        for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, enum.Enum) and v.__module__ == module.__name__
    ]


@pytest.mark.parametrize("module", [status, constants], ids=lambda m: m.__name__)
def test_every_enum_member_has_its_c_name_alias(module: ModuleType) -> None:
    classes = _enum_classes(module)
    assert classes
    missing = []
    for cls in classes:
        for member_name, member in cls.__members__.items():
            alias = c_name(cls, member_name)
            if getattr(module, alias, None) is not member:
                missing.append(f"{cls.__name__}.{member_name} -> {alias}")
            elif alias not in FACTS and alias not in MODEL_ONLY:
                missing.append(f"{alias} has no header value in the fact file")
    assert not missing, "\n".join(missing)


def test_alias_examples() -> None:
    assert constants.NDIS_FLAGS.DONT_LOOPBACK is constants.NDIS_FLAGS_DONT_LOOPBACK
    assert constants.NDIS_MAC_OPTION.IEEE_8021Q_VLAN is constants.NDIS_MAC_OPTION_8021Q_VLAN
    assert constants.KIRQL.PASSIVE_LEVEL is constants.LOW_LEVEL
    assert status.NDIS_STATUS.PENDING is status.NDIS_STATUS_PENDING


def test_bare_and_renamed_tables_name_real_classes() -> None:
    names = {c.__name__ for m in (status, constants) for c in _enum_classes(m)}
    assert names >= BARE
    assert names >= {cls for cls, _ in RENAMED}


# --- specific facts worth their own names ---------------------------------------------------------


def test_ndis_status_values_are_unsigned_32_bit_patterns() -> None:
    for member in NDIS_STATUS:
        assert 0 <= member <= 0xFFFFFFFF, member.name
    assert int(NDIS_STATUS.FAILURE) == 0xC0000001  # not the signed -1073741823


def test_rule_46_net_buffer_list_info_ids_are_the_ndis_6_0_ones() -> None:
    ndis60 = RAW["nbl_info_by_version"]["configs"]["NDIS60 (Vista RTM)"]
    ours = {name: int(m) for name, m in constants.NDIS_NET_BUFFER_LIST_INFO.__members__.items()}
    assert ours == ndis60
    assert constants.MaxNetBufferListInfo == 11  # valid ids 0..10 for NDIS 6.0


def test_nbl_info_ids_only_grow_across_versions() -> None:
    configs = RAW["nbl_info_by_version"]["configs"]
    base = configs["NDIS60 (Vista RTM)"]
    for label, config in configs.items():
        for name, value in base.items():
            if name != "MaxNetBufferListInfo":
                assert config[name] == value, (label, name)
        assert config["MaxNetBufferListInfo"] >= base["MaxNetBufferListInfo"], label


def test_rule_53_send_and_send_complete_flag_values() -> None:
    assert constants.NDIS_SEND_FLAGS_DISPATCH_LEVEL == 1
    assert constants.NDIS_SEND_FLAGS_CHECK_FOR_LOOPBACK == 2
    assert constants.NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL == 1


def test_rule_25_deserialize_attribute_and_rule_37_end_of_tx() -> None:
    assert constants.NDIS_ATTRIBUTE_DESERIALIZE == 0x20
    assert constants.INDICATE_END_OF_TX == 0x20
