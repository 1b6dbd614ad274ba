"""Driver registration and the NDIS version gate.

Theory of operation
-------------------
A driver is any Python object whose methods carry the names of the DDI handlers it supplies
(``MiniportSend``, ``ProtocolSendComplete``, ``ProtocolCoSendComplete``...). Registering it
(``NdisRegisterProtocol`` / ``NdisRegisterProtocolDriver`` / ``NdisMRegisterMiniport`` /
``NdisMRegisterMiniportDriver``) records its NDIS version and looks up every known handler name
once, into a :class:`DriverBlock` (the model of NDIS's per-driver block). A driver that lacks a
handler its kind requires is refused with ``NDIS_STATUS_BAD_CHARACTERISTICS``; an unsupported
version with ``NDIS_STATUS_BAD_VERSION``.

The version gate (:data:`DDI_VERSIONS`): an NDIS 6 driver calling an NDIS 5.x DDI is bug check
0x7C code 0x15 on Windows (rule 66); an NDIS 5.x driver calling an NDIS 6 DDI simply cannot link.
Both raise :class:`~pyndis.errors.NdisVersionError` naming the replacement DDI.

Whether a protocol is connection-oriented is read off its handlers: one that supplies
``ProtocolCoSendComplete`` or ``ProtocolCoSendNetBufferListsComplete`` is a CoNDIS client or
call manager. A miniport that supplies ``MiniportCoCreateVc`` is a CoNDIS miniport.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from ..errors import Culprit, NdisVersionError

NdisVersion = tuple[int, int]

SUPPORTED_VERSIONS: frozenset[NdisVersion] = frozenset(
    {(5, 0), (5, 1), (6, 0), (6, 1), (6, 20), (6, 30)}
)


class DriverKind(enum.Enum):
    PROTOCOL = "protocol"
    MINIPORT = "miniport"


#: Every handler name the library may call, by driver kind.
PROTOCOL_HANDLERS = (
    # NDIS 5.x connectionless
    "ProtocolBindAdapter",
    "ProtocolUnbindAdapter",
    "ProtocolOpenAdapterComplete",
    "ProtocolCloseAdapterComplete",
    "ProtocolSendComplete",
    "ProtocolReceive",
    "ProtocolReceiveComplete",
    "ProtocolReceivePacket",
    "ProtocolStatus",
    "ProtocolStatusComplete",
    "ProtocolResetComplete",
    "ProtocolRequestComplete",
    # CoNDIS 5.x (client and call manager)
    "ProtocolCoSendComplete",
    "ProtocolCoReceivePacket",
    "ProtocolCoStatus",
    "ProtocolCoAfRegisterNotify",
    "ProtocolCoCreateVc",
    "ProtocolCoDeleteVc",
    "ProtocolClOpenAfComplete",
    "ProtocolClCloseAfComplete",
    "ProtocolClMakeCallComplete",
    "ProtocolClCloseCallComplete",
    "ProtocolClIncomingCall",
    "ProtocolClIncomingCloseCall",
    "ProtocolClCallConnected",
    "ProtocolCmOpenAf",
    "ProtocolCmCloseAf",
    "ProtocolCmMakeCall",
    "ProtocolCmCloseCall",
    "ProtocolCmActivateVcComplete",
    "ProtocolCmDeactivateVcComplete",
    "ProtocolCmIncomingCallComplete",
    "ProtocolCmRegisterSap",
    "ProtocolCmDeregisterSap",
    "ProtocolClRegisterSapComplete",
    "ProtocolClDeregisterSapComplete",
    # NDIS 6
    "ProtocolBindAdapterEx",
    "ProtocolUnbindAdapterEx",
    "ProtocolOpenAdapterCompleteEx",
    "ProtocolCloseAdapterCompleteEx",
    "ProtocolNetPnPEvent",
    "ProtocolSendNetBufferListsComplete",
    "ProtocolReceiveNetBufferLists",
    "ProtocolStatusEx",
    "ProtocolCoSendNetBufferListsComplete",
    "ProtocolCoReceiveNetBufferLists",
    "ProtocolCoStatusEx",
)

MINIPORT_HANDLERS = (
    # NDIS 5.x
    "MiniportInitialize",
    "MiniportHalt",
    "MiniportSend",
    "MiniportSendPackets",
    "MiniportReturnPacket",
    "MiniportReset",
    "MiniportQueryInformation",
    "MiniportSetInformation",
    "MiniportCancelSendPackets",
    # CoNDIS 5.x
    "MiniportCoSendPackets",
    "MiniportCoCreateVc",
    "MiniportCoDeleteVc",
    "MiniportCoActivateVc",
    "MiniportCoDeactivateVc",
    "MiniportCoRequest",
    # CoNDIS call-manager handlers of a miniport call manager (MCM): same names as a
    # stand-alone call manager's
    "ProtocolCmOpenAf",
    "ProtocolCmCloseAf",
    "ProtocolCmRegisterSap",
    "ProtocolCmDeregisterSap",
    "ProtocolCmMakeCall",
    "ProtocolCmCloseCall",
    "ProtocolCmIncomingCallComplete",
    "ProtocolCmActivateVcComplete",
    "ProtocolCmDeactivateVcComplete",
    # NDIS 6
    "MiniportInitializeEx",
    "MiniportHaltEx",
    "MiniportPause",
    "MiniportRestart",
    "MiniportSendNetBufferLists",
    "MiniportReturnNetBufferLists",
    "MiniportCancelSend",
    "MiniportResetEx",
    "MiniportOidRequest",
    "MiniportCoSendNetBufferLists",
    "MiniportCoOidRequest",
)


class DriverBlock:
    """A registered driver: its object, version, kind and resolved handlers."""

    __slots__ = ("culprit", "driver", "handlers", "is_co", "kind", "major", "minor", "name")

    def __init__(
        self, driver: Any, kind: DriverKind, version: NdisVersion, name: str, culprit: Culprit
    ) -> None:
        self.driver = driver
        self.kind = kind
        self.major, self.minor = version
        self.name = name
        self.culprit = culprit
        names = PROTOCOL_HANDLERS if kind is DriverKind.PROTOCOL else MINIPORT_HANDLERS
        self.handlers: dict[str, Callable[..., Any] | None] = {
            n: getattr(driver, n, None) for n in names
        }
        if kind is DriverKind.PROTOCOL:
            self.is_co = bool(
                self.handlers["ProtocolCoSendComplete"]
                or self.handlers["ProtocolCoSendNetBufferListsComplete"]
                or self.handlers["ProtocolCmMakeCall"]
            )
        else:
            self.is_co = bool(self.handlers["MiniportCoCreateVc"])

    @property
    def version(self) -> NdisVersion:
        return (self.major, self.minor)

    def has(self, name: str) -> bool:
        return self.handlers.get(name) is not None

    def handler(self, name: str) -> Callable[..., Any]:
        fn = self.handlers.get(name)
        if fn is None:
            from ..errors import error_class_for

            raise error_class_for(self.culprit)(
                f"{self.name} (NDIS {self.major}.{self.minor}) does not supply {name}",
                rule="PY-MISSING-HANDLER",
                subject=self,
            )
        return fn

    def missing_required(self) -> list[str]:
        """Handlers this driver's kind and version require but it lacks."""
        need: list[str | tuple[str, ...]]
        if self.kind is DriverKind.PROTOCOL:
            if self.major == 5:
                need = ["ProtocolCoSendComplete"] if self.is_co else ["ProtocolSendComplete"]
            elif self.is_co:
                need = ["ProtocolCoSendNetBufferListsComplete"]
            else:
                need = ["ProtocolSendNetBufferListsComplete", "ProtocolReceiveNetBufferLists"]
        elif self.major == 5:
            need = ["MiniportInitialize", "MiniportHalt"]
            need.append(
                "MiniportCoSendPackets" if self.is_co else ("MiniportSend", "MiniportSendPackets")
            )
        else:
            need = ["MiniportInitializeEx", "MiniportHaltEx", "MiniportPause", "MiniportRestart"]
            if self.is_co:
                need.append("MiniportCoSendNetBufferLists")
            else:
                need += ["MiniportSendNetBufferLists", "MiniportCancelSend"]
            need.append("MiniportReturnNetBufferLists")
        missing: list[str] = []
        for item in need:
            options = (item,) if isinstance(item, str) else item
            if not any(self.has(o) for o in options):
                missing.append(" or ".join(options))
        return missing

    def __repr__(self) -> str:
        return f"<{self.kind.value} {self.name!r} NDIS {self.major}.{self.minor}>"


#: DDI -> (the NDIS major version that has it, the DDI to use instead in the other version).
#: DDIs both generations have (NdisMResetComplete, for one) are not listed.
DDI_VERSIONS: dict[str, tuple[int, str]] = {
    # NDIS 5.x only
    "NdisRegisterProtocol": (5, "NdisRegisterProtocolDriver"),
    "NdisMRegisterMiniport": (5, "NdisMRegisterMiniportDriver"),
    "NdisMSetAttributesEx": (5, "NdisMSetMiniportAttributes"),
    "NdisOpenAdapter": (5, "NdisOpenAdapterEx"),
    "NdisCloseAdapter": (5, "NdisCloseAdapterEx"),
    "NdisRequest": (5, "NdisOidRequest"),
    "NdisSend": (5, "NdisSendNetBufferLists"),
    "NdisSendPackets": (5, "NdisSendNetBufferLists"),
    "NdisCancelSendPackets": (5, "NdisCancelSendNetBufferLists"),
    "NdisCoSendPackets": (5, "NdisCoSendNetBufferLists"),
    "NdisMSendComplete": (5, "NdisMSendNetBufferListsComplete"),
    "NdisMSendResourcesAvailable": (5, "nothing: an NDIS 6 miniport queues what it cannot send"),
    "NdisMCoSendComplete": (5, "NdisMCoSendNetBufferListsComplete"),
    "NdisMIndicateReceivePacket": (5, "NdisMIndicateReceiveNetBufferLists"),
    "NdisMCoIndicateReceivePacket": (5, "NdisMCoIndicateReceiveNetBufferLists"),
    "NdisReturnPackets": (5, "NdisReturnNetBufferLists"),
    "NdisMIndicateStatus": (5, "NdisMIndicateStatusEx"),
    "NdisMIndicateStatusComplete": (5, "nothing: NdisMIndicateStatusEx needs no completion call"),
    "NdisAllocatePacketPool": (5, "NdisAllocateNetBufferListPool"),
    "NdisAllocatePacketPoolEx": (5, "NdisAllocateNetBufferListPool"),
    "NdisAllocatePacket": (5, "NdisAllocateNetBufferList"),
    "NdisFreePacket": (5, "NdisFreeNetBufferList"),
    "NdisAllocateBufferPool": (5, "NdisAllocateMdl"),
    "NdisAllocateBuffer": (5, "NdisAllocateMdl"),
    # NDIS 6 only
    "NdisRegisterProtocolDriver": (6, "NdisRegisterProtocol"),
    "NdisMRegisterMiniportDriver": (6, "NdisMRegisterMiniport"),
    "NdisMSetMiniportAttributes": (6, "NdisMSetAttributesEx"),
    "NdisOpenAdapterEx": (6, "NdisOpenAdapter"),
    "NdisCloseAdapterEx": (6, "NdisCloseAdapter"),
    "NdisOidRequest": (6, "NdisRequest"),
    "NdisSendNetBufferLists": (6, "NdisSend or NdisSendPackets"),
    "NdisCoSendNetBufferLists": (6, "NdisCoSendPackets"),
    "NdisMSendNetBufferListsComplete": (6, "NdisMSendComplete"),
    "NdisMCoSendNetBufferListsComplete": (6, "NdisMCoSendComplete"),
    "NdisMIndicateReceiveNetBufferLists": (6, "NdisMIndicateReceivePacket"),
    "NdisMCoIndicateReceiveNetBufferLists": (6, "NdisMCoIndicateReceivePacket"),
    "NdisReturnNetBufferLists": (6, "NdisReturnPackets"),
    "NdisCancelSendNetBufferLists": (6, "NdisCancelSendPackets"),
    "NdisMIndicateStatusEx": (6, "NdisMIndicateStatus"),
    "NdisMPauseComplete": (6, "nothing: NDIS 5.x has no pause"),
    "NdisMRestartComplete": (6, "nothing: NDIS 5.x has no restart"),
    "NdisAllocateNetBufferListPool": (6, "NdisAllocatePacketPool"),
    "NdisAllocateNetBufferPool": (6, "NdisAllocatePacketPool"),
    # CoNDIS: the NDIS 6 forms of the address-family DDIs take no characteristics
    "NdisClOpenAddressFamily": (5, "NdisClOpenAddressFamilyEx"),
    "NdisCmRegisterAddressFamily": (5, "NdisCmRegisterAddressFamilyEx"),
    "NdisMCmRegisterAddressFamily": (5, "NdisMCmRegisterAddressFamilyEx"),
    "NdisClOpenAddressFamilyEx": (6, "NdisClOpenAddressFamily"),
    "NdisCmRegisterAddressFamilyEx": (6, "NdisCmRegisterAddressFamily"),
    "NdisMCmRegisterAddressFamilyEx": (6, "NdisMCmRegisterAddressFamily"),
}


def version_error(block: DriverBlock, ddi: str) -> NdisVersionError:
    """The error for ``block`` calling ``ddi`` that its NDIS version lacks."""
    major, replacement = DDI_VERSIONS[ddi]
    if major == 5:
        return NdisVersionError(
            f"{block.name} is an NDIS {block.major}.{block.minor} driver and called {ddi}, an "
            f"NDIS 5.x DDI (bug check 0x7C BUGCODE_NDIS_DRIVER, code 0x15); use {replacement}",
            rule="R66",
            culprit=block.culprit,
            subject=block,
        )
    return NdisVersionError(
        f"{block.name} is an NDIS {block.major}.{block.minor} driver and called {ddi}, an "
        f"NDIS 6 DDI it cannot link against; use {replacement}",
        rule="PY-VERSION",
        culprit=block.culprit,
        subject=block,
    )


def check_version(block: DriverBlock, ddi: str) -> None:
    """Raise unless ``block``'s NDIS version has ``ddi``."""
    entry = DDI_VERSIONS.get(ddi)
    if entry is not None and entry[0] != block.major:
        raise version_error(block, ddi)


__all__ = [
    "DDI_VERSIONS",
    "MINIPORT_HANDLERS",
    "PROTOCOL_HANDLERS",
    "SUPPORTED_VERSIONS",
    "DriverBlock",
    "DriverKind",
    "NdisVersion",
    "check_version",
    "version_error",
]
