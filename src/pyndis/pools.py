"""NDIS 5 packet pools (placeholder; being written)."""

from __future__ import annotations


class PacketPoolDdis:
    """Kernel DDIs that create and free packet pools (mixed into ``Ndis``)."""
