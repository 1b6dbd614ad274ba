"""IRQL emulation and NDIS spin locks.

Theory of operation
-------------------
Each :class:`~pyndis.library.kernel.Ndis` kernel has one :class:`Irql`: the current interrupt
request level *per Python thread* (a thread plays the part of a processor). Code starts at
``PASSIVE_LEVEL``. ``KeRaiseIrql``/``KeLowerIrql`` move it, NDIS spin locks raise to
``DISPATCH_LEVEL`` while held, and the scheduler runs DPCs and timer callbacks at
``DISPATCH_LEVEL``. Every DDI checks the level its page allows with :meth:`Irql.check_at_most`
or :meth:`Irql.check_exactly`; a violation raises :class:`~pyndis.errors.IrqlError` naming the
caller and the rule (R62-R64).

Spin locks are real locks (``threading.Lock``) so DDIs stay safe from several threads; taking a
lock the current thread already holds would deadlock a real processor, so it raises instead.

Cost. Every DDI reads the level, so reading it must be cheap: :class:`Irql` *is* the
``threading.local``, and ``irql.level`` is a plain attribute of it (the class default,
PASSIVE_LEVEL, is what a thread that never set one reads). Hot paths read and assign
``irql.level`` directly; ``set`` and ``at`` are the readable forms for everything else.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .constants import DISPATCH_LEVEL, KIRQL, PASSIVE_LEVEL
from .errors import Culprit, IrqlError, NdisUsageError


class Irql(threading.local):
    """The current IRQL of each thread, for one kernel.

    A ``threading.local``: ``level`` is per thread (a thread plays a processor), read and
    written as a plain attribute; a thread that never set it reads the class default.
    """

    #: this thread's level (the class attribute is the default of a new thread)
    level: int = int(PASSIVE_LEVEL)

    def set(self, level: int) -> None:
        self.level = level

    def raise_to(self, new: int) -> int:
        """KeRaiseIrql: returns the old level. Raising to a lower level is a bug check."""
        old = self.level
        if new < old:
            raise IrqlError(
                f"KeRaiseIrql to {KIRQL(new).name} from the higher {KIRQL(old).name}",
                rule="R62",
                culprit=Culprit.NDIS_USER,
            )
        self.level = new
        return old

    def lower_to(self, new: int) -> None:
        """KeLowerIrql: lowering to a higher level is a bug check."""
        old = self.level
        if new > old:
            raise IrqlError(
                f"KeLowerIrql to {KIRQL(new).name} from the lower {KIRQL(old).name}",
                rule="R62",
                culprit=Culprit.NDIS_USER,
            )
        self.level = new

    @contextmanager
    def at(self, level: int) -> Iterator[None]:
        """Run a block at ``level`` (raising or lowering) and restore the old level after."""
        old = self.level
        self.level = level
        try:
            yield
        finally:
            self.level = old

    def check_at_most(self, ddi: str, culprit: Culprit, limit: int = DISPATCH_LEVEL) -> None:
        level = self.level
        if level > limit:
            raise IrqlError(
                f"{ddi} called at {KIRQL(level).name}; it requires IRQL <= {KIRQL(limit).name}",
                rule="R62",
                culprit=culprit,
            )

    def check_exactly(self, ddi: str, culprit: Culprit, level: int) -> None:
        current = self.level
        if current != level:
            raise IrqlError(
                f"{ddi} called at {KIRQL(current).name}; it requires {KIRQL(level).name}",
                rule="R62",
                culprit=culprit,
            )


class NDIS_SPIN_LOCK:
    """An NDIS spin lock: raises the holder to DISPATCH_LEVEL while held."""

    __slots__ = ("OldIrql", "_lock", "name", "owner")

    def __init__(self, name: str = "") -> None:
        self._lock = threading.Lock()
        self.OldIrql: int = PASSIVE_LEVEL
        self.owner: int | None = None
        self.name = name

    def acquire(self, irql: Irql, dpr: bool = False) -> None:
        me = threading.get_ident()
        if self.owner == me:
            raise NdisUsageError(
                f"spin lock {self.name or hex(id(self))} acquired twice by one processor "
                "(a real system deadlocks here)",
                rule="PY-SPINLOCK-RECURSION",
            )
        if dpr:
            irql.check_exactly("NdisDprAcquireSpinLock", Culprit.NDIS_USER, DISPATCH_LEVEL)
            old: int = DISPATCH_LEVEL
        else:
            irql.check_at_most("NdisAcquireSpinLock", Culprit.NDIS_USER)
            old = irql.raise_to(DISPATCH_LEVEL)
        self._lock.acquire()
        self.owner = me
        self.OldIrql = old

    def release(self, irql: Irql, dpr: bool = False) -> None:
        if self.owner != threading.get_ident():
            raise NdisUsageError(
                f"spin lock {self.name or hex(id(self))} released by a processor that does not "
                "hold it",
                rule="PY-SPINLOCK-NOT-HELD",
            )
        old = self.OldIrql
        self.owner = None
        self._lock.release()
        if not dpr:
            irql.lower_to(old)

    @property
    def held(self) -> bool:
        return self.owner is not None


__all__ = ["NDIS_SPIN_LOCK", "Irql"]
