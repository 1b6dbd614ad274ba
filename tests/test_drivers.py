"""Driver blocks (handler resolution, required handlers) and the NDIS version gate (rule 66)."""

from __future__ import annotations

from typing import Any

import pytest

from pyndis.errors import (
    Culprit,
    IntermediateContractError,
    MiniportContractError,
    NdisVersionError,
    ProtocolContractError,
)
from pyndis.library.drivers import (
    DDI_VERSIONS,
    MINIPORT_HANDLERS,
    PROTOCOL_HANDLERS,
    SUPPORTED_VERSIONS,
    DriverBlock,
    DriverKind,
    check_version,
    version_error,
)


def _nothing(*args: Any) -> None:
    return None


def driver_with(*names: str) -> Any:
    """A driver object supplying exactly the handlers ``names``."""
    return type("Driver", (), {n: staticmethod(_nothing) for n in names})()


def block(
    *names: str,
    kind: DriverKind = DriverKind.PROTOCOL,
    version: tuple[int, int] = (5, 1),
    culprit: Culprit | None = None,
) -> DriverBlock:
    if culprit is None:
        culprit = Culprit.PROTOCOL if kind is DriverKind.PROTOCOL else Culprit.MINIPORT
    return DriverBlock(driver_with(*names), kind, version, "drv", culprit)


# --- handler resolution ---------------------------------------------------------------------------


def test_handlers_are_resolved_once_by_name() -> None:
    b = block("ProtocolSendComplete", "ProtocolStatus")
    assert set(b.handlers) == set(PROTOCOL_HANDLERS)
    assert b.has("ProtocolSendComplete") and b.has("ProtocolStatus")
    assert not b.has("ProtocolReceive")
    assert not b.has("MiniportSend")  # not a protocol handler name at all
    assert b.handler("ProtocolStatus") is b.handlers["ProtocolStatus"]


def test_miniport_block_knows_only_miniport_handler_names() -> None:
    b = block("MiniportSend", "ProtocolSendComplete", kind=DriverKind.MINIPORT)
    assert set(b.handlers) == set(MINIPORT_HANDLERS)
    assert b.has("MiniportSend") and not b.has("ProtocolSendComplete")


def test_handler_names_are_unique_and_kind_prefixed() -> None:
    assert len(set(PROTOCOL_HANDLERS)) == len(PROTOCOL_HANDLERS)
    assert len(set(MINIPORT_HANDLERS)) == len(MINIPORT_HANDLERS)
    assert all(n.startswith("Protocol") for n in PROTOCOL_HANDLERS)
    # a miniport call manager (MCM) supplies the call-manager handlers under their own names
    assert all(n.startswith(("Miniport", "ProtocolCm")) for n in MINIPORT_HANDLERS)


def test_instance_attributes_count_as_handlers() -> None:
    driver = driver_with()
    driver.ProtocolSendComplete = _nothing
    b = DriverBlock(driver, DriverKind.PROTOCOL, (5, 0), "p", Culprit.PROTOCOL)
    assert b.has("ProtocolSendComplete")


@pytest.mark.parametrize(
    ("kind", "culprit", "error"),
    [
        (DriverKind.PROTOCOL, Culprit.PROTOCOL, ProtocolContractError),
        (DriverKind.MINIPORT, Culprit.MINIPORT, MiniportContractError),
        (DriverKind.MINIPORT, Culprit.INTERMEDIATE, IntermediateContractError),
    ],
)
def test_missing_handler_blames_the_driver(
    kind: DriverKind, culprit: Culprit, error: type[Exception]
) -> None:
    b = block(kind=kind, culprit=culprit)
    name = "ProtocolStatus" if kind is DriverKind.PROTOCOL else "MiniportReset"
    with pytest.raises(error) as info:
        b.handler(name)
    assert info.value.rule == "PY-MISSING-HANDLER"  # type: ignore[attr-defined]
    assert name in str(info.value) and "NDIS 5.1" in str(info.value)


def test_version_and_repr() -> None:
    b = block("ProtocolSendNetBufferListsComplete", version=(6, 20))
    assert b.version == (6, 20) and b.major == 6 and b.minor == 20
    assert repr(b) == "<protocol 'drv' NDIS 6.20>"


# --- connection-oriented or not -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["ProtocolCoSendComplete", "ProtocolCoSendNetBufferListsComplete", "ProtocolCmMakeCall"]
)
def test_protocol_is_co_by_its_handlers(name: str) -> None:
    assert block(name).is_co
    assert not block("ProtocolSendComplete", "ProtocolCoStatus").is_co


def test_miniport_is_co_when_it_creates_vcs() -> None:
    assert block("MiniportCoCreateVc", kind=DriverKind.MINIPORT).is_co
    assert not block("MiniportCoSendPackets", kind=DriverKind.MINIPORT).is_co


# --- required handlers ----------------------------------------------------------------------------

P5_CL = ("ProtocolSendComplete",)
P5_CO = ("ProtocolCmMakeCall", "ProtocolCoSendComplete")  # a call manager
P6_CL = ("ProtocolSendNetBufferListsComplete", "ProtocolReceiveNetBufferLists")
P6_CO = ("ProtocolCmMakeCall", "ProtocolCoSendNetBufferListsComplete")
M5 = ("MiniportInitialize", "MiniportHalt", "MiniportSend")
M5_CO = ("MiniportInitialize", "MiniportHalt", "MiniportCoCreateVc", "MiniportCoSendPackets")
M6 = (
    "MiniportInitializeEx",
    "MiniportHaltEx",
    "MiniportPause",
    "MiniportRestart",
    "MiniportSendNetBufferLists",
    "MiniportCancelSend",
    "MiniportReturnNetBufferLists",
)
M6_CO = (
    "MiniportInitializeEx",
    "MiniportHaltEx",
    "MiniportPause",
    "MiniportRestart",
    "MiniportCoCreateVc",
    "MiniportCoSendNetBufferLists",
    "MiniportReturnNetBufferLists",
)

COMPLETE_SETS = [
    pytest.param(P5_CL, DriverKind.PROTOCOL, (5, 0), id="protocol-5-cl"),
    pytest.param(P5_CO, DriverKind.PROTOCOL, (5, 1), id="protocol-5-co"),
    pytest.param(P6_CL, DriverKind.PROTOCOL, (6, 0), id="protocol-6-cl"),
    pytest.param(P6_CO, DriverKind.PROTOCOL, (6, 20), id="protocol-6-co"),
    pytest.param(M5, DriverKind.MINIPORT, (5, 1), id="miniport-5"),
    pytest.param(M5_CO, DriverKind.MINIPORT, (5, 1), id="miniport-5-co"),
    pytest.param(M6, DriverKind.MINIPORT, (6, 0), id="miniport-6"),
    pytest.param(M6_CO, DriverKind.MINIPORT, (6, 30), id="miniport-6-co"),
]


@pytest.mark.parametrize(("names", "kind", "version"), COMPLETE_SETS)
def test_a_complete_driver_lacks_nothing(
    names: tuple[str, ...], kind: DriverKind, version: tuple[int, int]
) -> None:
    assert block(*names, kind=kind, version=version).missing_required() == []


@pytest.mark.parametrize(("names", "kind", "version"), COMPLETE_SETS)
def test_each_required_handler_is_required(
    names: tuple[str, ...], kind: DriverKind, version: tuple[int, int]
) -> None:
    for name in names:
        if name in ("MiniportCoCreateVc", "ProtocolCmMakeCall"):  # they make it CoNDIS
            continue
        rest = [n for n in names if n != name]
        missing = block(*rest, kind=kind, version=version).missing_required()
        assert len(missing) == 1 and name in missing[0], (name, missing)


def test_serialized_miniport_needs_send_or_send_packets() -> None:
    base = ("MiniportInitialize", "MiniportHalt")
    assert block(*base, kind=DriverKind.MINIPORT).missing_required() == [
        "MiniportSend or MiniportSendPackets"
    ]
    assert block(*base, "MiniportSendPackets", kind=DriverKind.MINIPORT).missing_required() == []


def test_co_client_of_ndis5_with_only_a_call_manager_handler_needs_co_send_complete() -> None:
    assert block("ProtocolCmMakeCall").missing_required() == ["ProtocolCoSendComplete"]
    assert block("ProtocolCmMakeCall", version=(6, 0)).missing_required() == [
        "ProtocolCoSendNetBufferListsComplete"
    ]


def test_supported_versions() -> None:
    assert {(5, 0), (5, 1), (6, 0), (6, 20)} <= SUPPORTED_VERSIONS
    assert (4, 0) not in SUPPORTED_VERSIONS and (7, 0) not in SUPPORTED_VERSIONS


# --- the version gate (rule 66) -------------------------------------------------------------------

ENTRIES = [pytest.param(ddi, major, repl, id=ddi) for ddi, (major, repl) in DDI_VERSIONS.items()]
MINORS = {5: (5, 1), 6: (6, 20)}


@pytest.mark.parametrize(("ddi", "major", "replacement"), ENTRIES)
def test_rule_66_version_gate_lets_the_right_generation_through(
    ddi: str, major: int, replacement: str
) -> None:
    for version in [(5, 0), (5, 1)] if major == 5 else [(6, 0), (6, 1), (6, 20), (6, 30)]:
        check_version(block(version=version), ddi)  # no error


@pytest.mark.parametrize(("ddi", "major", "replacement"), ENTRIES)
@pytest.mark.parametrize("kind", [DriverKind.PROTOCOL, DriverKind.MINIPORT])
def test_rule_66_version_gate_refuses_the_other_generation(
    ddi: str, major: int, replacement: str, kind: DriverKind
) -> None:
    other = 6 if major == 5 else 5
    b = block(kind=kind, version=MINORS[other])
    with pytest.raises(NdisVersionError) as info:
        check_version(b, ddi)
    err = info.value
    assert err.rule == ("R66" if major == 5 else "PY-VERSION")
    assert err.culprit is b.culprit
    assert err.subject is b
    assert ddi in err.message and replacement in err.message
    if major == 5:
        assert "0x7C" in err.message and "0x15" in err.message


def test_rule_66_version_error_names_an_intermediate_driver() -> None:
    b = block(kind=DriverKind.MINIPORT, version=(6, 0), culprit=Culprit.INTERMEDIATE)
    err = version_error(b, "NdisSend")
    assert err.culprit is Culprit.INTERMEDIATE and err.rule == "R66"
    assert "NdisSendNetBufferLists" in err.message


def test_both_generations_list_ddis_and_the_replacements_are_named() -> None:
    majors = {major for major, _ in DDI_VERSIONS.values()}
    assert majors == {5, 6}
    assert all(repl for _, repl in DDI_VERSIONS.values())
    # pairs that replace each other point at each other
    assert DDI_VERSIONS["NdisOpenAdapter"][1] == "NdisOpenAdapterEx"
    assert DDI_VERSIONS["NdisOpenAdapterEx"][1] == "NdisOpenAdapter"
    assert DDI_VERSIONS["NdisRequest"][1] == "NdisOidRequest"
    assert DDI_VERSIONS["NdisOidRequest"][1] == "NdisRequest"


@pytest.mark.parametrize("ddi", ["NdisMResetComplete", "NdisAllocateSpinLock", "NoSuchDdi"])
@pytest.mark.parametrize("version", [(5, 0), (6, 30)])
def test_ddis_of_both_generations_pass_the_gate(ddi: str, version: tuple[int, int]) -> None:
    check_version(block(version=version), ddi)
