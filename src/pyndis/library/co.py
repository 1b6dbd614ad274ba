"""CoNDIS: address families, call managers, VCs (placeholder: being written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .adapter import MiniportBlock


class CoDdis:
    """NdisClOpenAddressFamily, NdisCoCreateVc, NdisClMakeCall, activation, close, delete."""

    def _init_co(self) -> None:
        """Per-kernel CoNDIS state (called from Ndis.__init__)."""

    def _co_lost(self) -> list[str]:
        """Descriptions of CoNDIS sends not yet completed (for assert_nothing_lost)."""
        return []

    def _co_teardown_adapter(self, adapter: MiniportBlock) -> None:
        """Close calls, deactivate and delete every VC of ``adapter`` before it halts."""
