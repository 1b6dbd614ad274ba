"""The verifier: an opt-in observer that collects or raises contract violations.

Theory of operation
-------------------
Hard violations (an illegal ownership move, a bad handle) always raise, verifier or not:
continuing would corrupt the model. *Soft* violations are things real NDIS cannot stop and
only a verifier sees: reading the OOB Status of a packet still in flight, data bytes changed
while NDIS owned them, a send-flag that lies about the IRQL, descriptors leaked at unbind.
The core reports them through ``HostContext.flag``; with the verifier off that is one ``None``
test. ``Verifier(strict=True)`` raises the first violation; ``strict=False`` collects them for
``check()``.

The verifier also gives every descriptor a :class:`~pyndis.ownership.History` (who did what, at
which virtual time, from which call site), which every NdisError then carries.
"""

from __future__ import annotations

from ..errors import NdisError


class Verifier:
    """Collects (or raises) violations for one kernel."""

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self.violations: list[NdisError] = []

    def report(self, error: NdisError) -> None:
        self.violations.append(error)
        if self.strict:
            raise error

    def check(self) -> list[NdisError]:
        """The violations collected so far (oldest first)."""
        return list(self.violations)

    def rules(self) -> list[str]:
        return [v.rule for v in self.violations]

    def clear(self) -> None:
        self.violations.clear()


__all__ = ["Verifier"]
