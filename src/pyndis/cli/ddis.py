"""The table of DDIs pyndis implements, found by introspection (so it cannot go stale).

Theory of operation
-------------------
A DDI is either a method of :class:`~pyndis.library.kernel.Ndis` whose name is a Windows DDI
(``Ndis*``, ``Ke*``) or a module-level function of a descriptor module whose name is a DDI or a
header macro (``Ndis*``, ``NDIS_*``, ``NET_BUFFER*``, ``Mm*``). The NDIS generation comes from the
version gate's table; everything else is available to both.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass

from ..library.drivers import DDI_VERSIONS
from ..library.kernel import Ndis

DESCRIPTOR_MODULES = ("pyndis.mdl", "pyndis.packet", "pyndis.pools", "pyndis.nbl", "pyndis.nblpool")
_PREFIXES = ("Ndis", "NDIS_", "NET_BUFFER", "Mm", "Ke")


@dataclass(frozen=True, slots=True)
class DdiEntry:
    name: str
    where: str
    generation: str
    summary: str


def _generation(name: str) -> str:
    entry = DDI_VERSIONS.get(name)
    if entry is None:
        return "5.x + 6.x"
    return "5.x" if entry[0] == 5 else "6.x"


def _summary(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n", 1)[0]


def implemented_ddis() -> list[DdiEntry]:
    """Every DDI and macro pyndis implements, sorted by name."""
    found: dict[str, DdiEntry] = {}
    for name, member in inspect.getmembers(Ndis, inspect.isfunction):
        if name.startswith(_PREFIXES):
            where = member.__module__.removeprefix("pyndis.")
            found[name] = DdiEntry(name, f"Ndis ({where})", _generation(name), _summary(member))
    for modname in DESCRIPTOR_MODULES:
        module = importlib.import_module(modname)
        for name, member in inspect.getmembers(module, inspect.isfunction):
            if name.startswith(_PREFIXES) and member.__module__ == modname and name not in found:
                where = modname.removeprefix("pyndis.")
                found[name] = DdiEntry(name, where, _generation(name), _summary(member))
    return sorted(found.values(), key=lambda e: e.name.lower())


__all__ = ["DESCRIPTOR_MODULES", "DdiEntry", "implemented_ddis"]
