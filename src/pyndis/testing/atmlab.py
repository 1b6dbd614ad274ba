"""An ATM lab for CoNDIS 5.x tests: hosts with an ATM-like NIC, a client and maybe a CM.

Theory of operation
-------------------
:func:`atm_host` builds one kernel with the NIC driver of :mod:`pyndis.drivers.atmnic5` (an MCM
unless ``integrated_cm=False``, then with the stand-alone CM of :mod:`pyndis.drivers.cmproto5`)
and the client of :mod:`pyndis.drivers.coclient5`; :func:`atm_pair` joins two such hosts by one
:class:`~pyndis.wire.Wire` and runs them until the clients have opened the address family.
:meth:`AtmHost.finish` is the end of every scenario: the adapter is removed (the client tears
down its calls and AF in its unbind handler) and nothing may be lost, the pools must balance
and, unless told otherwise, the verifier must have seen nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..drivers.atmnic5 import AtmAdapter, AtmNic5
from ..drivers.cmproto5 import CmProto5
from ..drivers.coclient5 import ClientBinding, CoClient5
from ..library.adapter import MiniportBlock
from ..library.kernel import Ndis
from ..status import NDIS_STATUS
from ..wire import Wire, run_kernels


@dataclass
class AtmHost:
    """One kernel with its NIC, client and (stand-alone) call manager."""

    ndis: Ndis
    driver: AtmNic5
    adapter: MiniportBlock
    client: CoClient5
    cm: CmProto5 | None

    @property
    def nic(self) -> AtmAdapter:
        nic: AtmAdapter = self.adapter.MiniportAdapterContext
        return nic

    @property
    def binding(self) -> ClientBinding:
        return self.client.bindings[self.adapter.name]

    def finish(self, *, clean: bool = True) -> None:
        """Remove the adapter (unbinding everything), then check nothing is lost, every pool
        of the drivers balances and (``clean``) the verifier saw nothing."""
        ndis = self.ndis
        ndis.remove_adapter(self.adapter)
        ndis.assert_nothing_lost()
        self.client.free_spares()
        for pool in ndis.pools:
            assert pool.outstanding == 0, f"{pool!r} still has descriptors out"
        if clean and ndis.verifier is not None:
            assert not ndis.verifier.check(), ndis.verifier.check()


def atm_host(
    name: str,
    wire: Wire | None,
    *,
    seed: int = 0,
    verifier: bool = True,
    strict: bool = False,
    trace: bool = True,
    integrated_cm: bool = True,
    vci_range: tuple[int, int] = (32, 4095),
    client: dict[str, Any] | None = None,
    driver: AtmNic5 | None = None,
    **nic: Any,
) -> AtmHost:
    """One host: the NIC (keywords ``nic`` go to ``add_adapter``; ``driver`` replaces the NIC
    driver object, e.g. with an instrumented subclass), a client, maybe a CM. The protocols
    bind when the host's scheduler runs (:func:`run`): binding is asynchronous."""
    ndis = Ndis(name=name, seed=seed, verifier=verifier, strict=strict, trace=trace)
    driver = driver if driver is not None else AtmNic5()
    status, handle = ndis.NdisMRegisterMiniport(driver, 5, 1, "atmnic5")
    assert status == NDIS_STATUS.SUCCESS and handle is not None
    keywords = dict(nic)
    keywords.setdefault("vci_range", vci_range)
    status, adapter = ndis.add_adapter(
        handle, "atm0", wire=wire, integrated_cm=integrated_cm, **keywords
    )
    assert status == NDIS_STATUS.SUCCESS and adapter is not None
    cm = None
    if not integrated_cm:
        cm = CmProto5(vci_range=vci_range)
        assert cm.register(ndis) == NDIS_STATUS.SUCCESS
    co_client = CoClient5(**(client or {}))
    assert co_client.register(ndis) == NDIS_STATUS.SUCCESS
    return AtmHost(ndis, driver, adapter, co_client, cm)


def atm_pair(
    *,
    seed: int = 0,
    latency_ns: int = 2_000,
    sap: bytes = b"\x42",
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
    **common: Any,
) -> tuple[AtmHost, AtmHost, Wire]:
    """Two hosts on one wire; B's client listens on ``sap``. ``a``/``b`` override
    :func:`atm_host` keywords per host (``common`` applies to both)."""
    wire = Wire(latency_ns=latency_ns)
    a_kw = {"vci_range": (32, 999), **common, **(a or {})}
    b_kw = {"vci_range": (1000, 1999), **common, **(b or {})}
    b_client = dict(b_kw.pop("client", None) or {})
    b_client.setdefault("sap", sap)
    host_a = atm_host("A", wire, seed=seed, **a_kw)
    host_b = atm_host("B", wire, seed=seed + 1, client=b_client, **b_kw)
    run(host_a, host_b)
    return host_a, host_b, wire


def run(*hosts: AtmHost) -> int:
    """Run every host's scheduler until all are idle."""
    return run_kernels([h.ndis for h in hosts])


__all__ = ["AtmHost", "atm_host", "atm_pair", "run"]
