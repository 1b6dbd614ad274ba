"""CoNDIS 5.x send and receive on VCs (placeholder: being written)."""

from __future__ import annotations


class CoSendDdis:
    """NdisCoSendPackets, NdisMCoSendComplete, NdisMCoIndicateReceivePacket."""
