"""The README's example runs as printed, and its two commands are the ones CI runs."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_python_example_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    runpy.run_path(str(script))
    out = capsys.readouterr().out
    assert "NDIS_STATUS_PENDING" in out and "back:" in out


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert len(commands) == 2, "the README gives exactly two commands"
    run_cmd, test_cmd = commands
    assert run_cmd.endswith("pyndis run")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci
