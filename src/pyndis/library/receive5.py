"""NDIS 5.x receive path (placeholder: being written)."""

from __future__ import annotations


class Receive5Ddis:
    """NdisMIndicateReceivePacket, NdisReturnPackets, loopback indications."""
