"""The pyndis command: the default run, determinism of its traces, failure exit, the DDI table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pyndis.cli import scenarios
from pyndis.cli.ddis import implemented_ddis
from pyndis.cli.main import main
from pyndis.cli.scenarios import SCENARIOS, ScenarioResult


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_default_invocation_runs_every_scenario_and_writes_traces(tmp_path: Path) -> None:
    code, out = invoke("run", "--out", str(tmp_path), "--quiet")
    assert code == 0, out
    for name in SCENARIOS:
        assert name in out
        assert (tmp_path / f"{name}.trace").read_text().strip()
    report = (tmp_path / "report.txt").read_text().splitlines()
    assert len(report) == len(SCENARIOS)
    assert all("violations=0" in line and "balanced=True" in line for line in report)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_completes_everything_it_sends(name: str) -> None:
    result = SCENARIOS[name](3)
    assert result.sent > 0 and result.completed == result.sent
    assert result.delivered > 0
    assert result.ok, (result.violations, result.balance_problem)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_seed_same_trace_other_seed_other_trace(name: str) -> None:
    first, again, other = SCENARIOS[name](11), SCENARIOS[name](11), SCENARIOS[name](12)
    assert first.trace == again.trace
    assert first.trace != other.trace


def test_a_scenario_that_loses_a_descriptor_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lossy(seed: int) -> ScenarioResult:
        return ScenarioResult(
            "lossy",
            "NdisSend",
            "loses one",
            sent=2,
            completed=1,
            balanced=False,
            balance_problem="1 send not completed",
        )

    monkeypatch.setitem(scenarios.SCENARIOS, "ndis5", lossy)
    code, out = invoke("run", "--scenario", "ndis5", "--out", str(tmp_path))
    assert code == 1
    assert "FAILED" in out and "1 send not completed" in out


def test_ddis_table_lists_the_send_path_ddis() -> None:
    names = {e.name for e in implemented_ddis()}
    for ddi in (
        "NdisSend",
        "NdisSendPackets",
        "NdisMSendComplete",
        "NdisCoSendPackets",
        "NdisMCoSendComplete",
        "NdisSendNetBufferLists",
        "NdisCoSendNetBufferLists",
        "NdisAllocatePacket",
        "NdisAllocateNetBufferList",
        "NET_BUFFER_LIST_INFO",
    ):
        assert ddi in names
    entries = {e.name: e for e in implemented_ddis()}
    assert entries["NdisSend"].generation == "5.x"
    assert entries["NdisSendNetBufferLists"].generation == "6.x"
    code, out = invoke("ddis")
    assert code == 0 and "NdisCoSendPackets" in out
