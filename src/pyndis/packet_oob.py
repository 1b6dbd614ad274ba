"""OOB data and per-packet information of an NDIS_PACKET: the NDIS_*_FROM_PACKET macros.

Theory of operation
-------------------
Each packet carries an out-of-band block (:class:`NDIS_PACKET_OOB_DATA`:
status, timestamps, header size, media-specific information) and a per-packet extension
(``MaxPerPacketInfo`` pointer slots indexed by ``NDIS_PER_PACKET_INFO``). Drivers reach them
only through the macros here (rule 12), which refuse a freed or zeroed packet like every
packet macro. That check lives here too (``_DEAD``, :func:`check_packet`,
:func:`dead_packet_error`), so that :mod:`pyndis.packet` can import this module and re-export
its names: ``from pyndis.packet import NDIS_GET_PACKET_STATUS`` works, and the dependency runs
one way.

Media-specific information (rule 13) needs a non-NULL pointer and a non-zero size, and sticks
only to a packet NDIS allocated (``fPACKET_ALLOCATED_BY_NDIS``), where setting it also sets
``fPACKET_CONTAINS_MEDIA_SPECIFIC_INFO``; reading it yields ``(None, 0)`` unless both bits are
set.

OOB Status while in flight (rule 17). Between ``NdisSend(Packets)`` and its completion, NDIS and
the miniport own the OOB Status. ``NDIS_GET_PACKET_STATUS`` / ``NDIS_SET_PACKET_STATUS`` called
by the protocol (or plain user code) while the packet is IN_NDIS, AT_MINIPORT or COMPLETING is
reported to the verifier (a soft violation: the value is still read or written). The miniport
may use it while it owns the packet. The NDIS library itself reads and writes ``packet.oob.Status``
directly, never through these macros, so its own use is never flagged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .constants import (
    NDIS_PER_PACKET_INFO,
    MaxPerPacketInfo,
    fPACKET_ALLOCATED_BY_NDIS,
    fPACKET_CONTAINS_MEDIA_SPECIFIC_INFO,
)
from .errors import Culprit, NdisError, NdisUsageError, ProtocolContractError
from .ownership import Ownership

if TYPE_CHECKING:
    from .packet import NDIS_PACKET


class NDIS_PACKET_OOB_DATA:
    """The out-of-band block of a packet. ``TimeSent`` is the same field as ``TimeToSend``."""

    __slots__ = (
        "HeaderSize",
        "MediaSpecificInformation",
        "SizeMediaSpecificInfo",
        "Status",
        "TimeReceived",
        "TimeToSend",
    )

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Zero every field (NdisZeroMemory on the OOB block: the documented way)."""
        self.TimeToSend = 0
        self.TimeReceived = 0
        self.HeaderSize = 0
        self.SizeMediaSpecificInfo = 0
        self.MediaSpecificInformation: object | None = None
        self.Status = 0

    @property
    def TimeSent(self) -> int:
        """The union member a miniport fills after the send (shares TimeToSend's bytes)."""
        return self.TimeToSend

    @TimeSent.setter
    def TimeSent(self, value: int) -> None:
        self.TimeToSend = value

    def __repr__(self) -> str:
        return (
            f"NDIS_PACKET_OOB_DATA(TimeToSend={self.TimeToSend}, TimeReceived="
            f"{self.TimeReceived}, HeaderSize={self.HeaderSize}, SizeMediaSpecificInfo="
            f"{self.SizeMediaSpecificInfo}, Status=0x{self.Status & 0xFFFFFFFF:08X})"
        )


# --- liveness (shared by every packet macro) ---------------------------------------------------

#: ``_DEAD[ownership]`` is True for FREE and DESTROYED: the one check every macro makes.
_DEAD = tuple(state in (Ownership.FREE, Ownership.DESTROYED) for state in Ownership)


def dead_packet_error(packet: NDIS_PACKET, what: str) -> NdisError:
    """The error for using a FREE or DESTROYED packet (built, not raised)."""
    entries = list(packet.history.entries) if packet.history is not None else None
    if packet.ownership is Ownership.DESTROYED:
        return NdisUsageError(
            f"{what} on {packet!r}, which NdisZeroMemory destroyed: zeroing an NDIS_PACKET wipes "
            "Private (pool, OOB offset, flags). To clear the out-of-band data, zero "
            "NDIS_OOB_DATA_FROM_PACKET(packet) instead",
            rule="PY-ZEROED-PACKET",
            subject=packet,
            history=entries,
        )
    if packet.Private.Pool is None:
        return NdisUsageError(
            f"{what} on {packet!r}, which no pool handed out: packets come only from "
            "NdisAllocatePacket",
            rule="R40",
            subject=packet,
        )
    return NdisUsageError(
        f"{what} on {packet!r} after it was freed",
        rule="PY-USE-AFTER-FREE",
        subject=packet,
        history=entries,
    )


def check_packet(packet: NDIS_PACKET, what: str) -> None:
    """Refuse a FREE or DESTROYED packet (the library calls this before it takes one)."""
    if _DEAD[packet.ownership]:
        raise dead_packet_error(packet, what)


# --- OOB data (rules 12-14, 17) -----------------------------------------------------------------

_IN_FLIGHT = (Ownership.IN_NDIS, Ownership.AT_MINIPORT, Ownership.COMPLETING)
#: ``_WATCHED[ownership]``: True while the verifier watches the OOB Status (in flight).
_WATCHED = tuple(state in _IN_FLIGHT for state in Ownership)


def NDIS_OOB_DATA_FROM_PACKET(Packet: NDIS_PACKET) -> NDIS_PACKET_OOB_DATA:
    """The packet's NDIS_PACKET_OOB_DATA block (at Private.NdisPacketOobOffset in C)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NDIS_OOB_DATA_FROM_PACKET")
    return Packet.oob


def _status_access(packet: NDIS_PACKET, what: str) -> None:
    """Rule 17: the protocol must not touch the OOB Status while the packet is in flight."""
    pool = packet.Private.Pool
    if pool is None:
        return
    host = pool.host
    if host.verifier is None:
        return
    if host.current_actor in (Culprit.PROTOCOL, Culprit.NDIS_USER):
        host.flag(
            ProtocolContractError(
                f"{what} on {packet!r} while it is {packet.ownership.name}: after NdisSend"
                "(Packets) NDIS and the miniport own the OOB Status until the send completes",
                rule="R17",
                subject=packet,
                history=packet.history.entries if packet.history is not None else None,
            )
        )


# The two Status macros run once per packet in every miniport's send handler: one table index
# each for the liveness and in-flight tests, and _status_access (the verifier's rule 17 check)
# only for a packet in flight with the verifier on.


def NDIS_GET_PACKET_STATUS(Packet: NDIS_PACKET) -> int:
    state = Packet.ownership
    if _DEAD[state]:
        raise dead_packet_error(Packet, "NDIS_GET_PACKET_STATUS")
    if _WATCHED[state]:
        pool = Packet.Private.Pool
        if pool is not None and pool.host.verifier is not None:
            _status_access(Packet, "NDIS_GET_PACKET_STATUS")
    return Packet.oob.Status


def NDIS_SET_PACKET_STATUS(Packet: NDIS_PACKET, Status: int) -> None:
    state = Packet.ownership
    if _DEAD[state]:
        raise dead_packet_error(Packet, "NDIS_SET_PACKET_STATUS")
    if _WATCHED[state]:
        pool = Packet.Private.Pool
        if pool is not None and pool.host.verifier is not None:
            _status_access(Packet, "NDIS_SET_PACKET_STATUS")
    Packet.oob.Status = Status


def NDIS_GET_PACKET_TIME_TO_SEND(Packet: NDIS_PACKET) -> int:
    return NDIS_OOB_DATA_FROM_PACKET(Packet).TimeToSend


def NDIS_SET_PACKET_TIME_TO_SEND(Packet: NDIS_PACKET, TimeToSend: int) -> None:
    """Set by the protocol before the send; normally only the lowest driver reads it (rule 14)."""
    NDIS_OOB_DATA_FROM_PACKET(Packet).TimeToSend = TimeToSend


def NDIS_GET_PACKET_TIME_SENT(Packet: NDIS_PACKET) -> int:
    return NDIS_OOB_DATA_FROM_PACKET(Packet).TimeToSend


def NDIS_SET_PACKET_TIME_SENT(Packet: NDIS_PACKET, TimeSent: int) -> None:
    NDIS_OOB_DATA_FROM_PACKET(Packet).TimeToSend = TimeSent


def NDIS_GET_PACKET_TIME_RECEIVED(Packet: NDIS_PACKET) -> int:
    return NDIS_OOB_DATA_FROM_PACKET(Packet).TimeReceived


def NDIS_SET_PACKET_TIME_RECEIVED(Packet: NDIS_PACKET, TimeReceived: int) -> None:
    NDIS_OOB_DATA_FROM_PACKET(Packet).TimeReceived = TimeReceived


def NDIS_GET_PACKET_HEADER_SIZE(Packet: NDIS_PACKET) -> int:
    return NDIS_OOB_DATA_FROM_PACKET(Packet).HeaderSize


def NDIS_SET_PACKET_HEADER_SIZE(Packet: NDIS_PACKET, HeaderSize: int) -> None:
    NDIS_OOB_DATA_FROM_PACKET(Packet).HeaderSize = HeaderSize


_MSI_BOTH = fPACKET_ALLOCATED_BY_NDIS | fPACKET_CONTAINS_MEDIA_SPECIFIC_INFO


def NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO(Packet: NDIS_PACKET) -> tuple[object | None, int]:
    """-> (MediaSpecificInfo, SizeMediaSpecificInfo); (None, 0) unless both bits are set."""
    oob = NDIS_OOB_DATA_FROM_PACKET(Packet)
    if Packet.Private.NdisPacketFlags & _MSI_BOTH != _MSI_BOTH:
        return None, 0
    return oob.MediaSpecificInformation, oob.SizeMediaSpecificInfo


def NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO(
    Packet: NDIS_PACKET, MediaSpecificInfo: object | None, SizeMediaSpecificInfo: int
) -> None:
    """Attach media-specific information (rule 13).

    Needs a non-None pointer and a non-zero size; takes effect only on a packet NDIS allocated
    (fPACKET_ALLOCATED_BY_NDIS), where it also sets fPACKET_CONTAINS_MEDIA_SPECIFIC_INFO.
    """
    oob = NDIS_OOB_DATA_FROM_PACKET(Packet)
    if MediaSpecificInfo is None or SizeMediaSpecificInfo <= 0:
        raise NdisUsageError(
            "NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO needs a non-NULL MediaSpecificInfo and a "
            f"non-zero size (got {MediaSpecificInfo!r}, {SizeMediaSpecificInfo})",
            rule="R13",
            subject=Packet,
        )
    private = Packet.Private
    if private.NdisPacketFlags & fPACKET_ALLOCATED_BY_NDIS:
        private.NdisPacketFlags |= fPACKET_CONTAINS_MEDIA_SPECIFIC_INFO
        oob.MediaSpecificInformation = MediaSpecificInfo
        oob.SizeMediaSpecificInfo = SizeMediaSpecificInfo


# --- per-packet extension -----------------------------------------------------------------------


def _info_index(InfoType: int) -> int:
    if not 0 <= InfoType < MaxPerPacketInfo:
        raise NdisUsageError(
            f"per-packet info type {InfoType} outside 0..{MaxPerPacketInfo - 1}",
            rule="PY-BAD-INFO-TYPE",
        )
    return InfoType


def NDIS_PACKET_EXTENSION_FROM_PACKET(Packet: NDIS_PACKET) -> list[object | None]:
    """The NDIS_PACKET_EXTENSION's NdisPacketInfo array (MaxPerPacketInfo slots)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NDIS_PACKET_EXTENSION_FROM_PACKET")
    return Packet.extension


def NDIS_PER_PACKET_INFO_FROM_PACKET(
    Packet: NDIS_PACKET, InfoType: NDIS_PER_PACKET_INFO | int
) -> object | None:
    """Read the per-packet info slot ``InfoType``."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NDIS_PER_PACKET_INFO_FROM_PACKET")
    return Packet.extension[_info_index(InfoType)]


def NDIS_SET_PER_PACKET_INFO_FROM_PACKET(
    Packet: NDIS_PACKET, InfoType: NDIS_PER_PACKET_INFO | int, Value: object | None
) -> None:
    """Write the per-packet info slot ``InfoType`` (the C macro is an lvalue)."""
    if _DEAD[Packet.ownership]:
        raise dead_packet_error(Packet, "NDIS_PER_PACKET_INFO_FROM_PACKET")
    Packet.extension[_info_index(InfoType)] = Value


__all__ = [
    "NDIS_GET_PACKET_HEADER_SIZE",
    "NDIS_GET_PACKET_MEDIA_SPECIFIC_INFO",
    "NDIS_GET_PACKET_STATUS",
    "NDIS_GET_PACKET_TIME_RECEIVED",
    "NDIS_GET_PACKET_TIME_SENT",
    "NDIS_GET_PACKET_TIME_TO_SEND",
    "NDIS_OOB_DATA_FROM_PACKET",
    "NDIS_PACKET_EXTENSION_FROM_PACKET",
    "NDIS_PACKET_OOB_DATA",
    "NDIS_PER_PACKET_INFO_FROM_PACKET",
    "NDIS_SET_PACKET_HEADER_SIZE",
    "NDIS_SET_PACKET_MEDIA_SPECIFIC_INFO",
    "NDIS_SET_PACKET_STATUS",
    "NDIS_SET_PACKET_TIME_RECEIVED",
    "NDIS_SET_PACKET_TIME_SENT",
    "NDIS_SET_PACKET_TIME_TO_SEND",
    "NDIS_SET_PER_PACKET_INFO_FROM_PACKET",
    "check_packet",
    "dead_packet_error",
]
