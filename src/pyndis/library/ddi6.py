"""What every NDIS 6 data DDI shares: the send lock, the entry checks, the flags it passes on.

Theory of operation
-------------------
The NDIS 6 send, CoNDIS 6 send and NDIS 6 receive paths (:mod:`.send6`, :mod:`.cosend6`,
:mod:`.receive6`) open every DDI the same way, so the steps live here once:

* :func:`locked`: the DDI (or NDIS's own DPC) runs under the kernel's re-entrant send lock, the
  one the NDIS 5.x and CoNDIS paths take too (one lock, one order);
* :func:`enter`: the caller's NDIS version has the DDI (else NdisVersionError), the IRQL is at
  most DISPATCH_LEVEL (else IrqlError with the rule the caller names: R64 for sends and their
  completions, R62 for receives and returns), and a ``*_DISPATCH_LEVEL`` flag set below
  DISPATCH_LEVEL is reported to the verifier (rule 63: a soft violation, NDIS trusts the flag);
* :func:`passed_flags`: what NDIS hands on (down to a miniport, up to a protocol) carries the
  ``*_DISPATCH_LEVEL`` bit exactly when it runs at DISPATCH_LEVEL (rule 63);
* the errors the chain walks raise (:func:`null_chain`, :func:`not_an_nbl`), status names for
  messages, and :func:`nbl_length`, the byte count of NBLs the CoNDIS counters keep.

Each ``*_DISPATCH_LEVEL`` flag is a :class:`DispatchFlag` (its bit and its ndis.h name, for the
message): :data:`SEND`, :data:`SEND_COMPLETE`, :data:`RECEIVE`, :data:`RETURN`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from ..constants import (
    DISPATCH_LEVEL,
    KIRQL,
    NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL,
    NDIS_RETURN_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL,
    NDIS_SEND_FLAGS_DISPATCH_LEVEL,
)
from ..errors import Culprit, IrqlError, NdisError, NdisUsageError, error_class_for
from ..nbl import NET_BUFFER_LIST, iter_nbs
from ..status import NDIS_STATUS
from .drivers import DriverBlock, version_error

if TYPE_CHECKING:
    from .kernel import Ndis

_DISPATCH = int(DISPATCH_LEVEL)

P = ParamSpec("P")
R = TypeVar("R")


class DispatchFlag(NamedTuple):
    """A ``*_DISPATCH_LEVEL`` flag of an NDIS 6 data DDI: its bit and its ndis.h name."""

    bit: int
    name: str


SEND = DispatchFlag(int(NDIS_SEND_FLAGS_DISPATCH_LEVEL), "NDIS_SEND_FLAGS_DISPATCH_LEVEL")
SEND_COMPLETE = DispatchFlag(
    int(NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL), "NDIS_SEND_COMPLETE_FLAGS_DISPATCH_LEVEL"
)
RECEIVE = DispatchFlag(int(NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL), "NDIS_RECEIVE_FLAGS_DISPATCH_LEVEL")
RETURN = DispatchFlag(int(NDIS_RETURN_FLAGS_DISPATCH_LEVEL), "NDIS_RETURN_FLAGS_DISPATCH_LEVEL")


def locked(fn: Callable[Concatenate[Any, P], R]) -> Callable[Concatenate[Any, P], R]:
    """Run an NDIS 6 DDI (or DPC) under the kernel's send lock (re-entrant, shared with the
    NDIS 5.x and CoNDIS paths), so several Python threads may call the send paths at once."""

    @functools.wraps(fn)
    def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.send_lock:
            return fn(self, *args, **kwargs)

    return wrapper


def enter(
    ndis: Ndis, block: DriverBlock, ddi: str, flags: int, flag: DispatchFlag, rule: str
) -> int:
    """The checks an NDIS 6 data DDI makes before anything else (see the module notes);
    ``block`` is the calling driver. Returns the IRQL it runs at."""
    if block.major < 6:
        raise version_error(block, ddi)
    level = ndis.irql.level
    if level > _DISPATCH:
        raise irql_error(ddi, level, block.culprit, rule)
    if flags & flag.bit and level < _DISPATCH:
        report_flag_lie(ndis, ddi, flag.name, block.culprit)
    return level


def passed_flags(flags: int, flag: DispatchFlag, level: int) -> int:
    """``flags`` with ``flag`` set exactly when ``level`` is DISPATCH_LEVEL (rule 63)."""
    bit = flag.bit
    return (flags & ~bit) | (bit if level == _DISPATCH else 0)


def irql_error(ddi: str, level: int, culprit: Culprit, rule: str) -> IrqlError:
    return IrqlError(
        f"{ddi} called at {KIRQL(level).name}; it requires IRQL <= DISPATCH_LEVEL",
        rule=rule,
        culprit=culprit,
    )


def report_flag_lie(ndis: Ndis, ddi: str, flag: str, culprit: Culprit) -> None:
    """Rule 63: a *_DISPATCH_LEVEL flag set below DISPATCH_LEVEL (verifier only)."""
    if ndis.verifier is not None:
        level = KIRQL(ndis.irql.level).name
        ndis.flag(
            error_class_for(culprit)(
                f"{ddi} with {flag} set at {level}: the flag may be set only at DISPATCH_LEVEL "
                "(the callee trusts it; SDV rule Flags_Irql)",
                rule="R63",
            )
        )


def status_name(status: int) -> str:
    try:
        return NDIS_STATUS(status).name
    except ValueError:
        return f"0x{status:08X}"


def null_chain(ddi: str, culprit: Culprit) -> NdisError:
    return error_class_for(culprit)(f"{ddi} with NetBufferLists NULL", rule="PY-NULL-NBL")


def not_an_nbl(ddi: str, obj: object) -> NdisError:
    return NdisUsageError(f"{ddi}: {obj!r} is not a NET_BUFFER_LIST", rule="PY-BAD-HANDLE")


def nbl_length(nbls: Iterable[NET_BUFFER_LIST]) -> int:
    """Bytes of used data in NBLs (all their NET_BUFFERs)."""
    return sum(nb.DataLength for nbl in nbls for nb in iter_nbs(nbl))


__all__ = [
    "RECEIVE",
    "RETURN",
    "SEND",
    "SEND_COMPLETE",
    "DispatchFlag",
    "enter",
    "irql_error",
    "locked",
    "nbl_length",
    "not_an_nbl",
    "null_chain",
    "passed_flags",
    "report_flag_lie",
    "status_name",
]
