"""What descriptors and pools need from their kernel: IRQL, clock, verifier switch, counters.

Theory of operation
-------------------
Pools belong to one :class:`~pyndis.library.kernel.Ndis` kernel. They use only this small
surface of it, which keeps the descriptor modules independent of the library (and testable
with a bare ``HostContext``). ``history()`` returns a fresh :class:`~pyndis.ownership.History`
when the verifier is on and ``None`` otherwise, so descriptors allocated without the verifier
pay nothing for it. ``verifier=True`` also creates the :class:`~pyndis.verifier.core.Verifier`
that :meth:`HostContext.flag` reports to (``strict=True``: it raises the first violation).
"""

from __future__ import annotations

from .errors import Culprit, NdisError
from .irql import Irql
from .ownership import History
from .scheduler import Scheduler
from .verifier.core import Verifier


class HostContext:
    """The kernel-wide state every pool and descriptor can reach."""

    def __init__(
        self, *, seed: int = 0, verifier: bool = False, strict: bool = False, trace: bool = True
    ) -> None:
        self.irql = Irql()
        self.scheduler = Scheduler(self.irql, seed=seed, trace=trace)
        self.track_history = verifier
        #: every live pool of this kernel (for the "nothing lost" accounting)
        self.pools: list[PoolBase] = []
        #: who is running right now: the library pushes the driver kind around every handler
        #: call, so a macro can tell a protocol's read from a miniport's.
        self.actors: list[Culprit] = [Culprit.NDIS_USER]
        #: the verifier (None when off): receives soft violations through :meth:`flag`
        self.verifier: Verifier | None = Verifier(strict=strict) if verifier else None

    @property
    def current_actor(self) -> Culprit:
        return self.actors[-1]

    def flag(self, error: NdisError) -> None:
        """Report a violation only the verifier checks (it collects it or raises it)."""
        if self.verifier is not None:
            self.verifier.report(error)

    def history(self) -> History | None:
        return History(self.scheduler.clock) if self.track_history else None


class PoolBase:
    """Accounting shared by every pool: allocated, free, outstanding (handed out), freed."""

    kind = "pool"

    def __init__(self, host: HostContext, tag: str = "") -> None:
        self.host = host
        self.tag = tag
        #: descriptors currently handed out by the pool (allocated and not yet freed)
        self.outstanding = 0
        #: lifetime totals
        self.allocations = 0
        self.frees = 0
        self.failures = 0
        self.freed = False
        host.pools.append(self)

    def _retire(self) -> None:
        self.freed = True
        if self in self.host.pools:
            self.host.pools.remove(self)

    def usage(self) -> dict[str, int]:
        return {
            "outstanding": self.outstanding,
            "allocations": self.allocations,
            "frees": self.frees,
            "failures": self.failures,
        }

    def __repr__(self) -> str:
        tag = f" {self.tag!r}" if self.tag else ""
        return f"<{type(self).__name__}{tag} outstanding={self.outstanding}>"


__all__ = ["HostContext", "PoolBase"]
