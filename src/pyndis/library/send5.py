"""NDIS 5.x connectionless send path (placeholder: being written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..status import NDIS_STATUS

if TYPE_CHECKING:
    from .adapter import MiniportBlock
    from .binding import OpenBlock


class Send5Ddis:
    """NdisSend, NdisSendPackets, NdisMSendComplete, NdisMSendResourcesAvailable."""

    def _init_send5(self) -> None:
        """Per-kernel state of the 5.x send path (called from Ndis.__init__)."""

    def _flush_queued_sends(
        self, adapter: MiniportBlock, binding: OpenBlock | None, status: NDIS_STATUS
    ) -> None:
        """Complete with ``status`` every packet NDIS still queues for ``adapter`` (only those
        of ``binding`` if given). Called on reset, halt and close."""

    def _kick_send_queue(self, adapter: MiniportBlock) -> None:
        """Resume submitting the NDIS queue of a serialized ``adapter`` (after a reset)."""
