"""NDIS 6 send paths (placeholder: being written)."""

from __future__ import annotations


class Send6Ddis:
    """Ndis[Co]SendNetBufferLists and their completions."""

    def _init_send6(self) -> None:
        """Per-kernel state of the NDIS 6 send paths (called from Ndis.__init__)."""
