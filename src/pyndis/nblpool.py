"""NDIS 6 NET_BUFFER_LIST and NET_BUFFER pools (placeholder; being written)."""

from __future__ import annotations


class NblPoolDdis:
    """Kernel DDIs that create and free NBL/NB pools (mixed into ``Ndis``)."""
