"""The NdisError hierarchy: contract violations that name the side at fault.

Theory of operation
-------------------
pyndis separates *expected outcomes* from *misuse*. Expected outcomes are NDIS_STATUS values
returned to the caller or passed to its completion handler (``PENDING``, ``RESOURCES``,
``CLOSING``...). Misuse of the contract (sending a packet twice, completing it twice, freeing it
while NDIS owns it, calling a DDI at the wrong IRQL or from the wrong NDIS version) raises an
``NdisError``. Every error carries:

* ``culprit``: who broke the contract: the protocol driver, the miniport driver, an intermediate
  driver, or the *NDIS user* (the Python code calling a DDI directly, e.g. a test);
* ``rule``: the rule id. ``"R<n>"`` ids are the numbered rules of ``docs/contract.md`` (taken from
  Microsoft's pages); ``"PY-..."`` ids are pyndis's own rules for what the pages imply but do not
  number (e.g. double completion);
* ``history``: the descriptor's ownership history when one is known (a list of ``HistoryEntry``
  recorded while the verifier is on; empty otherwise);
* ``subject``: the descriptor or object the error is about, if any.

The split mirrors h11's LocalProtocolError/RemoteProtocolError: a test can assert on *whose*
fault it was, not only that something failed.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any


class Culprit(enum.Enum):
    """The party that broke a rule."""

    PROTOCOL = "protocol driver"
    MINIPORT = "miniport driver"
    INTERMEDIATE = "intermediate driver"
    NDIS_USER = "NDIS user"
    NDIS = "NDIS library"  # an internal invariant failed: a pyndis bug, never a driver's fault


class NdisError(Exception):
    """Base class of every contract violation pyndis reports."""

    culprit: Culprit = Culprit.NDIS_USER

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        culprit: Culprit | None = None,
        subject: object | None = None,
        history: Sequence[Any] | None = None,
    ) -> None:
        if culprit is not None:
            self.culprit = culprit
        self.rule = rule
        self.subject = subject
        self.history: list[Any] = list(history) if history is not None else []
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"[{self.rule}] {self.culprit.value}: {self.message}"
        if self.history:
            lines = "\n".join(f"    {entry}" for entry in self.history)
            text += f"\n  history of {self.subject!r}:\n{lines}"
        return text


class ProtocolContractError(NdisError):
    """A protocol (or CoNDIS client / call manager) driver broke the contract."""

    culprit = Culprit.PROTOCOL


class MiniportContractError(NdisError):
    """A miniport driver broke the contract."""

    culprit = Culprit.MINIPORT


class IntermediateContractError(NdisError):
    """An intermediate driver broke the contract (e.g. forwarded a descriptor it must repackage)."""

    culprit = Culprit.INTERMEDIATE


class NdisUsageError(NdisError):
    """The Python caller misused a DDI: a bad argument, a bad handle, a wrong type."""

    culprit = Culprit.NDIS_USER


class IrqlError(NdisError):
    """A DDI or handler was called at an IRQL its contract forbids."""


class NdisVersionError(NdisError):
    """A driver called a DDI its NDIS version does not have (bug check 0x7C, code 0x15)."""


class NdisInternalError(NdisError):
    """An internal invariant of pyndis failed. Always a pyndis bug; please report it."""

    culprit = Culprit.NDIS


def error_class_for(culprit: Culprit) -> type[NdisError]:
    """The NdisError subclass that names ``culprit``."""
    return _BY_CULPRIT[culprit]


_BY_CULPRIT: dict[Culprit, type[NdisError]] = {
    Culprit.PROTOCOL: ProtocolContractError,
    Culprit.MINIPORT: MiniportContractError,
    Culprit.INTERMEDIATE: IntermediateContractError,
    Culprit.NDIS_USER: NdisUsageError,
    Culprit.NDIS: NdisInternalError,
}

__all__ = [
    "Culprit",
    "IntermediateContractError",
    "IrqlError",
    "MiniportContractError",
    "NdisError",
    "NdisInternalError",
    "NdisUsageError",
    "NdisVersionError",
    "ProtocolContractError",
    "error_class_for",
]
