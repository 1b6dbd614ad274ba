"""Scriptable CoNDIS 5.x drivers and a rig, for contract tests of the VC life cycle and sends.

Theory of operation
-------------------
Each scripted driver records every handler call in ``log`` (name and arguments, in order) and
answers from ``answers``: a value, or a callable given the handler's arguments; a missing entry
gives the well-behaved default. So a test can ask "did NDIS call MiniportCoActivateVc before
ProtocolClMakeCallComplete?" or make one handler pend or fail.

* :class:`ScriptedCoMiniport5`: a CoNDIS miniport (NdisMediumAtm). It keeps every packet it is
  given (``held``, in submission order; ``arrays`` keeps each MiniportCoSendPackets array) until
  the test completes them with :meth:`complete` (from a DPC at DISPATCH_LEVEL, in any order).
* :class:`ScriptedCallManager5`: a stand-alone CM protocol (make/close call answer PENDING;
  the test drives them with the ``NdisCm...`` DDIs, or through :meth:`CoRig5.connect`).
* :class:`ScriptedCoClient5`: a client that records everything and answers SUCCESS / 0.
* :class:`CoRig5`: one kernel, the adapter, both protocols bound, the AF registered and opened.
  :meth:`CoRig5.connect` makes a connected VC the documented way (rule 29).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..constants import DISPATCH_LEVEL, NdisMediumAtm
from ..drivers.atmsig import ATM_ADDRESS_FAMILY, atm_call_parameters
from ..library.binding import OpenBlock
from ..library.covc import CO_CALL_PARAMETERS, AfBlock, VirtualConnection
from ..library.drivers import DriverBlock
from ..library.kernel import Ndis
from ..packet import NDIS_PACKET
from ..status import NDIS_STATUS

_SUCCESS = NDIS_STATUS.SUCCESS
_PENDING = NDIS_STATUS.PENDING


class Recorder:
    """Logs handler calls; answers from ``answers`` (value or callable) or a default."""

    def __init__(self) -> None:
        self.log: list[tuple[str, tuple[Any, ...]]] = []
        self.answers: dict[str, Any] = {}

    def _rec(self, name: str, args: tuple[Any, ...], default: Any = None) -> Any:
        self.log.append((name, args))
        answer = self.answers.get(name, default)
        return answer(*args) if callable(answer) else answer

    def names(self) -> list[str]:
        return [name for name, _ in self.log]

    def calls(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.log if n == name]


class MiniportVc:
    """The scripted miniport's MiniportVcContext."""

    def __init__(self, handle: VirtualConnection) -> None:
        self.handle = handle

    def __repr__(self) -> str:
        return f"<MiniportVc {self.handle!r}>"


class ScriptedCoMiniport5(Recorder):
    """A CoNDIS miniport that holds sends until the test completes them."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def __init__(self) -> None:
        super().__init__()
        self.handle: Any = None
        self.held: list[tuple[MiniportVc, NDIS_PACKET]] = []
        self.arrays: list[list[NDIS_PACKET]] = []
        self.returned: list[NDIS_PACKET] = []

    def MiniportInitialize(
        self, MediumArray: Sequence[int], MiniportAdapterHandle: Any, Config: Any
    ) -> tuple[NDIS_STATUS, int]:
        self.handle = MiniportAdapterHandle
        self.ndis.NdisMSetAttributesEx(MiniportAdapterHandle, self, 0, 0, 0)
        return _SUCCESS, list(MediumArray).index(NdisMediumAtm)

    def MiniportHalt(self, MiniportAdapterContext: Any) -> None:
        self._rec("MiniportHalt", (MiniportAdapterContext,))

    def MiniportCoCreateVc(
        self, MiniportAdapterContext: Any, NdisVcHandle: VirtualConnection
    ) -> Any:
        return self._rec(
            "MiniportCoCreateVc",
            (MiniportAdapterContext, NdisVcHandle),
            lambda ctx, vc: (_SUCCESS, MiniportVc(vc)),
        )

    def MiniportCoDeleteVc(self, MiniportVcContext: Any) -> Any:
        return self._rec("MiniportCoDeleteVc", (MiniportVcContext,), _SUCCESS)

    def MiniportCoActivateVc(self, MiniportVcContext: Any, CallParameters: Any) -> Any:
        return self._rec("MiniportCoActivateVc", (MiniportVcContext, CallParameters), _SUCCESS)

    def MiniportCoDeactivateVc(self, MiniportVcContext: Any) -> Any:
        return self._rec("MiniportCoDeactivateVc", (MiniportVcContext,), _SUCCESS)

    def MiniportCoSendPackets(
        self, MiniportVcContext: MiniportVc, PacketArray: Sequence[NDIS_PACKET], Count: int
    ) -> None:
        array = list(PacketArray[:Count])
        self.arrays.append(array)
        self.held.extend((MiniportVcContext, p) for p in array)
        self._rec("MiniportCoSendPackets", (MiniportVcContext, array, Count))

    def MiniportReturnPacket(self, MiniportAdapterContext: Any, Packet: NDIS_PACKET) -> None:
        self.returned.append(Packet)
        self._rec("MiniportReturnPacket", (MiniportAdapterContext, Packet))

    def complete(
        self,
        status: int = _SUCCESS,
        order: Sequence[int] | None = None,
        irql: int = DISPATCH_LEVEL,
    ) -> int:
        """NdisMCoSendComplete for every held packet (``order``: indexes into ``held``),
        at ``irql``. Returns how many were completed."""
        held, self.held = self.held, []
        picks = list(order) if order is not None else list(range(len(held)))
        rest = [item for i, item in enumerate(held) if i not in set(picks)]
        self.held = rest
        with self.ndis.irql.at(irql):
            for i in picks:
                vc, packet = held[i]
                self.ndis.NdisMCoSendComplete(status, vc.handle, packet)
        return len(picks)


class CmVcContext:
    """The scripted CM's CallMgrVcContext."""

    def __init__(self, handle: VirtualConnection | None) -> None:
        self.handle = handle


class ScriptedCallManager5(Recorder):
    """A stand-alone CM protocol whose every handler is scriptable (make/close call pend)."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def ProtocolCmOpenAf(self, BindingContext: Any, AddressFamily: Any, NdisAfHandle: Any) -> Any:
        return self._rec(
            "ProtocolCmOpenAf", (BindingContext, AddressFamily, NdisAfHandle), (_SUCCESS, "cm-af")
        )

    def ProtocolCmCloseAf(self, CallMgrAfContext: Any) -> Any:
        return self._rec("ProtocolCmCloseAf", (CallMgrAfContext,), _SUCCESS)

    def ProtocolCmRegisterSap(self, AfContext: Any, Sap: Any, NdisSapHandle: Any) -> Any:
        return self._rec(
            "ProtocolCmRegisterSap", (AfContext, Sap, NdisSapHandle), (_SUCCESS, "sap")
        )

    def ProtocolCmDeregisterSap(self, CallMgrSapContext: Any) -> Any:
        return self._rec("ProtocolCmDeregisterSap", (CallMgrSapContext,), _SUCCESS)

    def ProtocolCoCreateVc(self, AfContext: Any, NdisVcHandle: VirtualConnection) -> Any:
        return self._rec(
            "ProtocolCoCreateVc",
            (AfContext, NdisVcHandle),
            lambda ctx, vc: (_SUCCESS, CmVcContext(vc)),
        )

    def ProtocolCoDeleteVc(self, VcContext: Any) -> Any:
        return self._rec("ProtocolCoDeleteVc", (VcContext,), _SUCCESS)

    def ProtocolCmMakeCall(self, VcContext: Any, CallParameters: Any, Party: Any) -> Any:
        return self._rec("ProtocolCmMakeCall", (VcContext, CallParameters, Party), _PENDING)

    def ProtocolCmCloseCall(self, VcContext: Any, Party: Any, Data: Any, Size: int) -> Any:
        return self._rec("ProtocolCmCloseCall", (VcContext, Party, Data, Size), _PENDING)

    def ProtocolCmIncomingCallComplete(self, Status: int, VcContext: Any, Params: Any) -> None:
        self._rec("ProtocolCmIncomingCallComplete", (Status, VcContext, Params))

    def ProtocolCmActivateVcComplete(self, Status: int, VcContext: Any, Params: Any) -> None:
        self._rec("ProtocolCmActivateVcComplete", (Status, VcContext, Params))

    def ProtocolCmDeactivateVcComplete(self, Status: int, VcContext: Any) -> None:
        self._rec("ProtocolCmDeactivateVcComplete", (Status, VcContext))

    def ProtocolCoSendComplete(self, Status: int, VcContext: Any, Packet: NDIS_PACKET) -> None:
        self._rec("ProtocolCoSendComplete", (Status, VcContext, Packet))

    def ProtocolCoReceivePacket(self, BindingContext: Any, VcContext: Any, Packet: Any) -> Any:
        return self._rec("ProtocolCoReceivePacket", (BindingContext, VcContext, Packet), 0)


class ScriptedCoClient5(Recorder):
    """A client recording every handler; creates contexts, accepts calls, keeps nothing."""

    NDIS_VERSION = (5, 1)
    ndis: Ndis

    def ProtocolCoAfRegisterNotify(self, BindingContext: Any, AddressFamily: Any) -> None:
        self._rec("ProtocolCoAfRegisterNotify", (BindingContext, AddressFamily))

    def ProtocolClOpenAfComplete(self, Status: int, AfContext: Any, NdisAfHandle: Any) -> None:
        self._rec("ProtocolClOpenAfComplete", (Status, AfContext, NdisAfHandle))

    def ProtocolClCloseAfComplete(self, Status: int, AfContext: Any) -> None:
        self._rec("ProtocolClCloseAfComplete", (Status, AfContext))

    def ProtocolClRegisterSapComplete(self, Status: int, Ctx: Any, Sap: Any, Handle: Any) -> None:
        self._rec("ProtocolClRegisterSapComplete", (Status, Ctx, Sap, Handle))

    def ProtocolClDeregisterSapComplete(self, Status: int, Ctx: Any) -> None:
        self._rec("ProtocolClDeregisterSapComplete", (Status, Ctx))

    def ProtocolCoCreateVc(self, AfContext: Any, NdisVcHandle: VirtualConnection) -> Any:
        return self._rec(
            "ProtocolCoCreateVc",
            (AfContext, NdisVcHandle),
            lambda ctx, vc: (_SUCCESS, f"pvc{vc.index}"),
        )

    def ProtocolCoDeleteVc(self, VcContext: Any) -> Any:
        return self._rec("ProtocolCoDeleteVc", (VcContext,), _SUCCESS)

    def ProtocolClMakeCallComplete(self, Status: int, Ctx: Any, Party: Any, Params: Any) -> None:
        self._rec("ProtocolClMakeCallComplete", (Status, Ctx, Party, Params))

    def ProtocolClIncomingCall(self, SapContext: Any, VcContext: Any, Params: Any) -> Any:
        return self._rec("ProtocolClIncomingCall", (SapContext, VcContext, Params), _SUCCESS)

    def ProtocolClCallConnected(self, VcContext: Any) -> None:
        self._rec("ProtocolClCallConnected", (VcContext,))

    def ProtocolClIncomingCloseCall(self, Status: int, Ctx: Any, Data: Any, Size: int) -> None:
        self._rec("ProtocolClIncomingCloseCall", (Status, Ctx, Data, Size))

    def ProtocolClCloseCallComplete(self, Status: int, Ctx: Any, Party: Any) -> None:
        self._rec("ProtocolClCloseCallComplete", (Status, Ctx, Party))

    def ProtocolCoSendComplete(self, Status: int, VcContext: Any, Packet: NDIS_PACKET) -> None:
        self._rec("ProtocolCoSendComplete", (Status, VcContext, Packet))

    def ProtocolCoReceivePacket(self, BindingContext: Any, VcContext: Any, Packet: Any) -> Any:
        return self._rec("ProtocolCoReceivePacket", (BindingContext, VcContext, Packet), 0)

    def ProtocolCoStatus(
        self, BindingContext: Any, VcContext: Any, Status: int, *rest: Any
    ) -> None:
        self._rec("ProtocolCoStatus", (BindingContext, VcContext, Status, *rest))

    def ProtocolReceiveComplete(self, BindingContext: Any) -> None:
        self._rec("ProtocolReceiveComplete", (BindingContext,))


class CoRig5:
    """One kernel: a scripted CoNDIS miniport, a scripted CM and client bound to it, the AF
    registered by the CM and opened by the client."""

    def __init__(
        self,
        *,
        verifier: bool = True,
        strict: bool = False,
        seed: int = 0,
        miniport: ScriptedCoMiniport5 | None = None,
    ) -> None:
        ndis = self.ndis = Ndis(seed=seed, verifier=verifier, strict=strict)
        self.miniport = miniport if miniport is not None else ScriptedCoMiniport5()
        status, driver = ndis.NdisMRegisterMiniport(self.miniport, 5, 1, "comini")
        assert status == _SUCCESS and driver is not None
        status, adapter = ndis.add_adapter(driver, "atm0")
        assert status == _SUCCESS and adapter is not None
        self.adapter = adapter
        self.cm = ScriptedCallManager5()
        self.cm_block = self._register(self.cm, "cm")
        self.cm_binding = self._open(self.cm_block, "cm-binding")
        assert ndis.NdisCmRegisterAddressFamily(self.cm_binding, ATM_ADDRESS_FAMILY) == _SUCCESS
        self.client = ScriptedCoClient5()
        self.client_block = self._register(self.client, "client")
        self.client_binding = self._open(self.client_block, "client-binding")
        ndis.run()  # the AF offer (a PASSIVE work item)
        status, af = ndis.NdisClOpenAddressFamily(
            self.client_binding, ATM_ADDRESS_FAMILY, "client-af"
        )
        assert status == _SUCCESS and af is not None
        self.af: AfBlock = af

    def _register(self, driver: Any, name: str) -> DriverBlock:
        status, block = self.ndis.NdisRegisterProtocol(driver, 5, 1, name)
        assert status == _SUCCESS and block is not None
        return block

    def _open(self, block: DriverBlock, context: str) -> OpenBlock:
        status, _err, binding, _i = self.ndis.NdisOpenAdapter(
            block, context, [NdisMediumAtm], "atm0"
        )
        assert status == _SUCCESS and binding is not None
        return binding

    def create(self, context: Any = "client-vc") -> VirtualConnection:
        status, vc = self.ndis.NdisCoCreateVc(self.client_binding, self.af, context)
        assert status == _SUCCESS and vc is not None
        return vc

    def connect(
        self, context: Any = "client-vc", params: CO_CALL_PARAMETERS | None = None
    ) -> VirtualConnection:
        """A client VC with its call up: create, make call, CM activates, CM completes."""
        vc = self.create(context)
        params = params or atm_call_parameters(b"x", 100)
        ndis = self.ndis
        assert ndis.NdisClMakeCall(vc, params) == _PENDING
        assert ndis.NdisCmActivateVc(vc, params) == _SUCCESS
        ndis.NdisCmMakeCallComplete(_SUCCESS, vc, None, None, params)
        return vc

    def close(self, vc: VirtualConnection) -> None:
        """The documented close: NdisClCloseCall, CM deactivates and completes, client deletes."""
        ndis = self.ndis
        assert ndis.NdisClCloseCall(vc) == _PENDING
        ndis.run()
        assert ndis.NdisCmDeactivateVc(vc) == _SUCCESS
        ndis.NdisCmCloseCallComplete(_SUCCESS, vc)
        assert ndis.NdisCoDeleteVc(vc) == _SUCCESS


__all__ = [
    "CmVcContext",
    "CoRig5",
    "MiniportVc",
    "Recorder",
    "ScriptedCallManager5",
    "ScriptedCoClient5",
    "ScriptedCoMiniport5",
]
