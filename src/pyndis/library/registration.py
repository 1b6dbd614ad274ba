"""Driver registration DDIs (NdisRegisterProtocol[Driver], NdisMRegisterMiniport[Driver]).

Theory of operation
-------------------
Registration turns a Python driver object into a :class:`~pyndis.library.drivers.DriverBlock`
and returns it as the handle (NdisProtocolHandle / NdisMiniportDriverHandle). The DDI's own
name says which NDIS generation it belongs to, so registering an NDIS 6 driver through the
NDIS 5 DDI (or the reverse) is refused like any other version mismatch.

Binding is asynchronous, as on Windows (NDIS binds a protocol after its DriverEntry returned).
Grammar, for a protocol registered while adapters A1..An exist::

    NdisRegisterProtocol[Driver](driver) -> (SUCCESS, handle)     (no handler called inside)
        ... the driver stores ``handle`` ...
    later, one PASSIVE_LEVEL work item per adapter ("pnp-bind", in adapter order, after the
    DPCs, timers and wire deliveries due at the same instant):
        ProtocolBindAdapter[Ex](..., Ai, ...) -> NdisOpenAdapter[Ex](handle, ...)

so a bind handler always finds the handle the driver stored; run the scheduler (``ndis.run()``,
or ``run_kernels``) to let the offers happen. An offer is dropped when it runs if the protocol
was deregistered, the adapter is no longer RUNNING, or the protocol already has an open binding
to that adapter (see :meth:`~pyndis.library.binding.BindingDdis.offer_binding`). An adapter
added *after* the protocol registered is offered to it synchronously by ``add_adapter`` (the
protocol has its handle by then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Culprit, NdisUsageError, error_class_for
from ..scheduler import PRIORITY_PASSIVE
from ..status import NDIS_STATUS
from .drivers import SUPPORTED_VERSIONS, DriverBlock, DriverKind, NdisVersion

if TYPE_CHECKING:
    from .kernel import Ndis


def _version(driver: Any, major: int | None, minor: int | None) -> NdisVersion:
    if major is None:
        declared = getattr(driver, "NDIS_VERSION", None)
        if declared is None:
            raise NdisUsageError(
                f"{driver!r}: give MajorNdisVersion/MinorNdisVersion or an NDIS_VERSION attribute",
                rule="PY-REGISTER",
            )
        major, minor = declared
    return (int(major), int(minor or 0))


class DriverDdis:
    """Registration DDIs (mixed into ``Ndis``)."""

    def _register(
        self,
        driver: Any,
        kind: DriverKind,
        ddi_major: int,
        major: int | None,
        minor: int | None,
        name: str | None,
        intermediate: bool,
    ) -> tuple[NDIS_STATUS, DriverBlock | None]:
        ndis: Ndis = self  # type: ignore[assignment]
        ndis.irql.check_at_most("driver registration", Culprit.NDIS_USER, 0)
        version = _version(driver, major, minor)
        if version not in SUPPORTED_VERSIONS or version[0] != ddi_major:
            return NDIS_STATUS.BAD_VERSION, None
        if intermediate:
            culprit = Culprit.INTERMEDIATE
        else:
            culprit = Culprit.PROTOCOL if kind is DriverKind.PROTOCOL else Culprit.MINIPORT
        block = DriverBlock(driver, kind, version, name or type(driver).__name__, culprit)
        if block.missing_required():
            ndis.scheduler.trace(
                "register-refused", block.name, "missing", ",".join(block.missing_required())
            )
            return NDIS_STATUS.BAD_CHARACTERISTICS, None
        if kind is DriverKind.PROTOCOL:
            ndis.protocols.append(block)
        else:
            ndis.miniport_drivers.append(block)
        if hasattr(driver, "ndis") is False:
            try:
                driver.ndis = ndis
            except AttributeError:
                pass
        ndis.scheduler.trace(
            "register", block.kind.value, block.name, f"{block.major}.{block.minor}"
        )
        if kind is DriverKind.PROTOCOL:
            for adapter in list(ndis.adapters.values()):
                ndis.scheduler.call_later(
                    0,
                    ndis.offer_binding,
                    block,
                    adapter,
                    priority=PRIORITY_PASSIVE,
                    irql=0,
                    label="pnp-bind",
                )
        return NDIS_STATUS.SUCCESS, block

    def NdisRegisterProtocol(
        self,
        driver: Any,
        MajorNdisVersion: int | None = None,
        MinorNdisVersion: int | None = None,
        Name: str | None = None,
        *,
        intermediate: bool = False,
    ) -> tuple[NDIS_STATUS, DriverBlock | None]:
        """NdisRegisterProtocol(&Status, &NdisProtocolHandle, ProtocolCharacteristics, Length).

        ``driver`` supplies the handlers as methods (ProtocolSendComplete, ...).
        """
        return self._register(
            driver, DriverKind.PROTOCOL, 5, MajorNdisVersion, MinorNdisVersion, Name, intermediate
        )

    def NdisRegisterProtocolDriver(
        self,
        driver: Any,
        MajorNdisVersion: int | None = None,
        MinorNdisVersion: int | None = None,
        Name: str | None = None,
        *,
        intermediate: bool = False,
    ) -> tuple[NDIS_STATUS, DriverBlock | None]:
        """NdisRegisterProtocolDriver(ProtocolDriverContext, ProtocolCharacteristics, &Handle)."""
        return self._register(
            driver, DriverKind.PROTOCOL, 6, MajorNdisVersion, MinorNdisVersion, Name, intermediate
        )

    def NdisMRegisterMiniport(
        self,
        driver: Any,
        MajorNdisVersion: int | None = None,
        MinorNdisVersion: int | None = None,
        Name: str | None = None,
        *,
        intermediate: bool = False,
    ) -> tuple[NDIS_STATUS, DriverBlock | None]:
        """NdisMRegisterMiniport(NdisWrapperHandle, MiniportCharacteristics, Length)."""
        return self._register(
            driver, DriverKind.MINIPORT, 5, MajorNdisVersion, MinorNdisVersion, Name, intermediate
        )

    def NdisMRegisterMiniportDriver(
        self,
        driver: Any,
        MajorNdisVersion: int | None = None,
        MinorNdisVersion: int | None = None,
        Name: str | None = None,
        *,
        intermediate: bool = False,
    ) -> tuple[NDIS_STATUS, DriverBlock | None]:
        """NdisMRegisterMiniportDriver(DriverObject, RegistryPath, Context, Characteristics,
        &NdisMiniportDriverHandle)."""
        return self._register(
            driver, DriverKind.MINIPORT, 6, MajorNdisVersion, MinorNdisVersion, Name, intermediate
        )

    def NdisDeregisterProtocol(self, NdisProtocolHandle: DriverBlock) -> NDIS_STATUS:
        """Refused while the protocol still has bindings (they must be closed first)."""
        ndis: Ndis = self  # type: ignore[assignment]
        if NdisProtocolHandle not in ndis.protocols:
            raise NdisUsageError(f"{NdisProtocolHandle!r} is not registered", rule="PY-BAD-HANDLE")
        open_bindings = [b for b in ndis.bindings if b.protocol is NdisProtocolHandle]
        if open_bindings:
            raise error_class_for(NdisProtocolHandle.culprit)(
                f"{NdisProtocolHandle!r} deregistered with {len(open_bindings)} open binding(s)",
                rule="PY-DEREGISTER-BOUND",
                subject=NdisProtocolHandle,
            )
        ndis.protocols.remove(NdisProtocolHandle)
        return NDIS_STATUS.SUCCESS


__all__ = ["DriverDdis"]
