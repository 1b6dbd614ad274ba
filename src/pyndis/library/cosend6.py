"""CoNDIS 6 send and receive on VCs (being written; waits for library.co)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .drivers import DriverBlock


class CoSend6Ddis:
    """NdisCoSendNetBufferLists, NdisMCoSendNetBufferListsComplete, CoNDIS 6 receive."""

    def _init_cosend6(self) -> None:
        """Per-kernel CoNDIS 6 state (called from _init_send6)."""

    def _co6_route(self, owner: Any) -> tuple[DriverBlock, Any, str]:
        raise NotImplementedError(owner)

    def _co6_send_done(self, owner: Any) -> None:
        """A send on VC ``owner`` completed."""
