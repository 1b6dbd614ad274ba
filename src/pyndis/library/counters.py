"""Send and receive accounting shared by bindings, adapters and VCs.

Theory of operation
-------------------
Every path counts what went down (``sent``) and what came back (``completed``, by status), so
"nothing lost" is ``sent == completed`` at any quiet moment. A VC also counts bytes and receive
indications. The counters live here, apart from the kernel, so the adapter, binding and CoNDIS
modules can use them without importing the kernel.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class StatusCounts(Counter[int]):
    """Completions by status: a ``Counter`` whose ``counts[status] += 1`` costs what a dict's
    does. ``Counter`` defines ``__delitem__`` in Python, which makes every item *store* go
    through a Python-level slot (about 2x a dict store); taking dict's back restores the C
    slot. The only difference: deleting a status that was never counted raises KeyError."""

    __slots__ = ()
    __delitem__ = dict.__delitem__  # type: ignore[assignment]


class SendCounters:
    """Per binding (or VC) send accounting: what went down, what came back, with which status."""

    __slots__ = ("by_status", "completed", "sent")

    def __init__(self) -> None:
        self.sent = 0
        self.completed = 0
        self.by_status: Counter[int] = StatusCounts()

    @property
    def in_flight(self) -> int:
        return self.sent - self.completed

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "completed": self.completed,
            "in_flight": self.in_flight,
            "by_status": dict(self.by_status),
        }


class VcCounters(SendCounters):
    """Per-VC accounting: sends (with status and bytes) and receive indications."""

    __slots__ = ("bytes_completed", "bytes_received", "bytes_sent", "indicated", "returned")

    def __init__(self) -> None:
        super().__init__()
        self.bytes_sent = 0
        self.bytes_completed = 0
        #: descriptors indicated up the VC, and those of them the owner gave back (an NDIS 5
        #: packet kept past its indication counts when the last NdisReturnPackets frees it)
        self.indicated = 0
        self.returned = 0
        self.bytes_received = 0

    @property
    def held(self) -> int:
        """Received descriptors the owner still keeps."""
        return self.indicated - self.returned

    def as_dict(self) -> dict[str, Any]:
        return {
            **super().as_dict(),
            "bytes_sent": self.bytes_sent,
            "bytes_completed": self.bytes_completed,
            "indicated": self.indicated,
            "returned": self.returned,
            "bytes_received": self.bytes_received,
        }


__all__ = ["SendCounters", "StatusCounts", "VcCounters"]
