"""Scenarios ``pyndis run`` plays: one per send path, built from the sample drivers.

Theory of operation
-------------------
A scenario builds one or two kernels with the verifier on (collecting, not raising), wires the
sample drivers together exactly as a user would, drives traffic, runs the scheduler to idle and
returns a :class:`ScenarioResult`: counts, statuses, the trace, the verifier's findings and the
"nothing lost" balance. Everything is seeded, so a scenario's trace is identical run after run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import NdisError
from ..library.kernel import Ndis
from ..status import status_name


@dataclass
class ScenarioResult:
    name: str
    path: str
    description: str
    sent: int = 0
    completed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    virtual_seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    balanced: bool = True
    balance_problem: str = ""
    trace: str = ""
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.balanced and not self.violations and self.completed == self.sent

    def summary_line(self) -> str:
        statuses = ",".join(f"{k}={v}" for k, v in sorted(self.statuses.items()))
        return (
            f"{self.name} path={self.path} sent={self.sent} completed={self.completed} "
            f"statuses={statuses} delivered={self.delivered} "
            f"virtual_s={self.virtual_seconds:.9f} violations={len(self.violations)} "
            f"balanced={self.balanced}"
        )


def finish(result: ScenarioResult, kernels: list[Ndis]) -> ScenarioResult:
    """Fill in the verifier findings, the balance and the trace from ``kernels``."""
    for k in kernels:
        if k.verifier is not None:
            result.violations += [str(v) for v in k.verifier.check()]
        try:
            k.assert_nothing_lost()
        except NdisError as exc:
            result.balanced = False
            result.balance_problem = exc.message
        result.virtual_seconds = max(result.virtual_seconds, k.scheduler.now)
        result.trace += f"# kernel {k.name}\n" + k.scheduler.trace_text()
    return result


def count_statuses(counter: dict[int, int]) -> dict[str, int]:
    return {status_name(k).removeprefix("NDIS_STATUS_"): v for k, v in counter.items()}


Scenario = Callable[[int], ScenarioResult]

#: name -> scenario; filled in by the scenario modules below.
SCENARIOS: dict[str, Scenario] = {}


def run_scenario(name: str, seed: int) -> ScenarioResult:
    return SCENARIOS[name](seed)


__all__ = ["SCENARIOS", "ScenarioResult", "count_statuses", "finish", "run_scenario"]
