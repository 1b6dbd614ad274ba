"""netvmini6: a deserialized NDIS 6 miniport modelled on the netvmini sample.

Theory of operation
-------------------
The NIC is the one of :mod:`.nic6`, which comini6 drives too: NBs wait in one FIFO for a fixed
number of transmit control blocks (TCBs), each finishes ``tx_ns`` of virtual time after the
previous one (plus a seeded ``jitter_ns``), and a completion DPC frees at most ``dpc_batch``
finished TCBs per run and gives every NBL whose last NB finished back in *one*
NdisMSendNetBufferListsComplete call (in a seeded random order with ``random_order``). Like
netvmini, the driver guards the wait list and the TCBs with a spin lock. The first NB failure
of an NBL becomes its NET_BUFFER_LIST_STATUS (rule 50): INVALID_LENGTH for a frame longer than
the MTU, which holds its TCB but never reaches the wire.

Refusals (netvmini's "adapter not ready" path) complete an NBL at once, inside the send
handler: PAUSED while pausing or paused (rule 58), RESET_IN_PROGRESS while resetting, and
MEDIA_DISCONNECTED with the link down (a [model] extension of rule 50).

Life cycle::

    MiniportInitializeEx -> (Paused) -> MiniportRestart -> Running
    MiniportPause -> Pausing: sends still queued drain normally; SUCCESS at once if nothing is
        out, else PENDING and NdisMPauseComplete from the DPC that finishes the last send or
        the MiniportReturnNetBufferLists that gives back the last receive
    MiniportResetEx -> the wait list fails with RESET_IN_PROGRESS; SUCCESS (or PENDING and
        NdisMResetComplete from a DPC with ``reset_pending``)
    MiniportCancelSend(CancelId) -> waiting NBs of NBLs with that cancel ID are dropped and the
        NBLs complete with SEND_ABORTED (rule 52)
    MiniportHaltEx -> whatever is left fails with FAILURE; the receive pool is freed

Receive: a frame from the wire (``wire=`` keyword) is copied into a receive NBL (``rcbs``
buffers of MTU + 14 bytes) and indicated with NdisMIndicateReceiveNetBufferLists (see
:mod:`.nic6` for dropping and NDIS_RECEIVE_FLAGS_RESOURCES).

Registry keywords (``ndis.add_adapter(handle, name, **keywords)``): ``address``, ``wire``,
``tcbs`` (16), ``dpc_batch`` (64), ``tx_ns`` (1000), ``jitter_ns`` (0), ``coalesce_ns`` (0: the
completion DPC runs this long after the first finished TCB), ``random_order`` (False), ``rcbs``
(32), ``low_rcbs`` (0), ``stalled`` (False), ``reset_pending`` (False), ``media_connected``
(True), ``medium`` (802.3), ``no_loopback`` (True: NDIS does loopback, rule 51), ``mtu`` (1500).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..constants import (
    NDIS_MAC_OPTION_NO_LOOPBACK,
    OID_GEN_CURRENT_PACKET_FILTER,
    NdisMediaStateConnected,
    NdisMediaStateDisconnected,
    NdisMedium802_3,
    NdisRequestSetInformation,
)
from ..irql import NDIS_SPIN_LOCK
from ..library.adapter import (
    NDIS_LINK_STATE,
    NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES,
    NDIS_STATUS_INDICATION,
)
from ..nbl import (
    NDIS_GET_NET_BUFFER_LIST_CANCEL_ID,
    NET_BUFFER_LIST,
    link_nbls,
    nb_bytes,
)
from ..status import NDIS_STATUS
from .common6 import HALTED, PAUSED, PAUSING, RESETTING, RUNNING, as_miniport, set_attributes
from .nic6 import NicAdapter6, NicMiniport6, Tcb, fail, release

if TYPE_CHECKING:
    from ..library.adapter import AdapterConfig, MiniportBlock
    from ..library.binding import NDIS_OID_REQUEST
    from ..library.kernel import Ndis

DEFAULT_ADDRESS = b"\x02\x00\x00\x00\x00\x01"


class Vmini6Adapter(NicAdapter6):
    """One netvmini6 adapter (its MiniportAdapterContext): the NIC of :mod:`.nic6` and the
    netvmini state around it."""

    def __init__(self, handle: MiniportBlock, config: AdapterConfig) -> None:
        super().__init__(handle, config)
        self.address = bytes(config.get("address", DEFAULT_ADDRESS))
        self.reset_pending = bool(config.get("reset_pending", False))
        self.media_connected = bool(config.get("media_connected", True))
        self.medium = int(config.get("medium", NdisMedium802_3))
        self.no_loopback = bool(config.get("no_loopback", True))
        self.lock = NDIS_SPIN_LOCK(f"{self.name}.send")
        self.packet_filter = 0
        # counters
        self.rx_frames = 0
        self.rx_resources = 0
        #: how many NBLs each NdisMSendNetBufferListsComplete call carried
        self.completion_calls: list[int] = []
        self.cancels = 0
        self.resets = 0

    def refusal(self) -> NDIS_STATUS | None:
        """The status new sends complete with at once, or None when they can go out."""
        if self.state in (PAUSING, PAUSED, HALTED):
            return NDIS_STATUS.PAUSED
        if self.state == RESETTING:
            return NDIS_STATUS.RESET_IN_PROGRESS
        if not self.media_connected:
            return NDIS_STATUS.MEDIA_DISCONNECTED
        return None

    def __repr__(self) -> str:
        return (
            f"<Vmini6Adapter {self.name!r} {self.state} wait={len(self.wait)} "
            f"busy={len(self.busy)} rx_out={self.rx_outstanding}>"
        )


class NetVMini6(NicMiniport6):
    """The netvmini6 miniport driver: one object serves any number of adapters."""

    NDIS_VERSION = (6, 0)
    TX_LABEL = "vmini-tx"
    ndis: Ndis

    def __init__(self) -> None:
        self.adapters: dict[str, Vmini6Adapter] = {}

    # --- life cycle ----------------------------------------------------------------------------
    def MiniportInitializeEx(
        self,
        NdisMiniportHandle: MiniportBlock,
        MiniportDriverContext: Any,
        MiniportInitParameters: AdapterConfig,
    ) -> NDIS_STATUS:
        """Set the attributes, allocate the receive pool, attach to the wire. PASSIVE_LEVEL."""
        ndis = self.ndis
        a = Vmini6Adapter(NdisMiniportHandle, MiniportInitParameters)
        set_attributes(
            ndis,
            NdisMiniportHandle,
            a,
            NDIS_MINIPORT_ADAPTER_GENERAL_ATTRIBUTES(
                MediaType=a.medium,
                MtuSize=a.mtu,
                MediaConnectState=NdisMediaStateConnected
                if a.media_connected
                else NdisMediaStateDisconnected,
                MacOptions=NDIS_MAC_OPTION_NO_LOOPBACK if a.no_loopback else 0,
                CurrentMacAddress=a.address,
                PermanentMacAddress=a.address,
            ),
        )
        if not self._attach(a, a.mtu + 14, "vmrx"):
            return NDIS_STATUS.RESOURCES
        self.adapters[a.name] = a
        return NDIS_STATUS.SUCCESS

    def MiniportResetEx(self, MiniportAdapterContext: Vmini6Adapter) -> tuple[NDIS_STATUS, bool]:
        """Fail the wait list with RESET_IN_PROGRESS -> (SUCCESS | PENDING, AddressingReset)."""
        a = MiniportAdapterContext
        a.resets += 1
        a.state = RESETTING
        self._drop_waiting(a, NDIS_STATUS.RESET_IN_PROGRESS, 0)
        if a.reset_pending:
            self.ndis.scheduler.queue_dpc(self._reset_dpc, a, label="vmini-reset")
            return NDIS_STATUS.PENDING, False
        a.state = RUNNING
        return NDIS_STATUS.SUCCESS, False

    def _reset_dpc(self, a: Vmini6Adapter) -> None:
        with as_miniport(self.ndis):
            a.state = RUNNING
            self.ndis.NdisMResetComplete(a.handle, NDIS_STATUS.SUCCESS, False)

    def MiniportHaltEx(self, MiniportAdapterContext: Vmini6Adapter, HaltAction: int) -> None:
        """Fail whatever is left with FAILURE, free the receive pool, leave the wire."""
        a = MiniportAdapterContext
        self._drop_waiting(a, NDIS_STATUS.FAILURE, 0)
        done = [t.nbl for t in a.take_all() if release(t.nbl, NDIS_STATUS.FAILURE)]
        if a.dpc is not None:
            a.dpc.cancel()
            a.dpc = None
        if done:
            self._complete(a, done, 0)
        a.state = HALTED
        self._detach(a)

    def MiniportOidRequest(
        self, MiniportAdapterContext: Vmini6Adapter, OidRequest: NDIS_OID_REQUEST
    ) -> NDIS_STATUS:
        if (
            OidRequest.RequestType == NdisRequestSetInformation
            and OidRequest.Oid == OID_GEN_CURRENT_PACKET_FILTER
        ):
            MiniportAdapterContext.packet_filter = int(OidRequest.InformationBuffer)
            return NDIS_STATUS.SUCCESS
        return NDIS_STATUS.INVALID_OID

    def set_link(self, a: Vmini6Adapter, connected: bool) -> None:
        """The cable: NdisMIndicateStatusEx(NDIS_STATUS_LINK_STATE)."""
        a.media_connected = connected
        state = NdisMediaStateConnected if connected else NdisMediaStateDisconnected
        indication = NDIS_STATUS_INDICATION(
            a.handle, NDIS_STATUS.LINK_STATE, NDIS_LINK_STATE(state, 1_000_000_000)
        )
        self.ndis.NdisMIndicateStatusEx(a.handle, indication)

    # --- send ----------------------------------------------------------------------------------
    def MiniportSendNetBufferLists(
        self,
        MiniportAdapterContext: Vmini6Adapter,
        NetBufferLists: NET_BUFFER_LIST,
        PortNumber: int,
        SendFlags: int,
    ) -> None:
        """Queue every NB of every NBL (FIFO) or refuse the NBL at once; then transmit."""
        a = MiniportAdapterContext
        self._queue(a, None, NetBufferLists, a.refusal(), SendFlags)

    def _frame(self, a: Vmini6Adapter, tcb: Tcb) -> bytes | None:
        """The frame of one NB, or None for one longer than the MTU (its NBL fails)."""
        if tcb.nb.DataLength > a.mtu + 14:
            fail(tcb.nbl, NDIS_STATUS.INVALID_LENGTH)
            return None
        return nb_bytes(tcb.nb)

    def _complete(self, a: Vmini6Adapter, nbls: list[NET_BUFFER_LIST], flags: int) -> None:
        a.completion_calls.append(len(nbls))
        self.ndis.NdisMSendNetBufferListsComplete(a.handle, link_nbls(nbls), flags)

    def MiniportCancelSend(self, MiniportAdapterContext: Vmini6Adapter, CancelId: Any) -> None:
        """Drop the waiting NBs of NBLs marked ``CancelId``; those NBLs complete with
        SEND_ABORTED (NBs already on the hardware finish first)."""
        a = MiniportAdapterContext
        a.cancels += 1
        self._drop_waiting(
            a,
            NDIS_STATUS.SEND_ABORTED,
            0,
            lambda t: NDIS_GET_NET_BUFFER_LIST_CANCEL_ID(t.nbl) == CancelId,
        )
        self._check_pause(a)

    # --- receive -------------------------------------------------------------------------------
    def _receive(self, a: Vmini6Adapter, frame: bytes) -> None:
        """A frame from the wire (a receive DPC): copy it into a receive buffer, indicate it."""
        ndis = self.ndis
        with as_miniport(ndis):
            nbl = self._rx_nbl(a, frame, a.mtu + 14)
            if nbl is None:
                return
            a.rx_frames += 1

            def indicate(flags: int) -> None:
                ndis.NdisMIndicateReceiveNetBufferLists(a.handle, nbl, 0, 1, flags)

            if self._rx_indicate(a, nbl, indicate):
                a.rx_resources += 1


__all__ = ["DEFAULT_ADDRESS", "NetVMini6", "Tcb", "Vmini6Adapter"]
