"""Run every ratio benchmark and rewrite BENCHMARKS.md with the figures.

Run: ``python benchmarks/run_all.py [--iterations N] [--repeats R]`` from the repository root
(the README's virtual environment: ``.venv/bin/python benchmarks/run_all.py``).

Each ``benchmarks/bench_*.py`` runs in its own process with ``--json``; its floor is measured in
that same process, next to the figures it is compared with. The machine is noisy (see
``BENCHMARKS.md``): compare ratios from one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET = ROOT / "BENCHMARKS.md"

INTRO = """# Benchmarks

Every figure is the median of several repeats of a whole loop, reported as a ratio to a
pure-Python floor (pop a preallocated `__slots__` object from a list and append it back)
measured in the same process, right before. Verifier and trace are off unless a row says
otherwise. The machine is a noisy 2-vCPU VM: a single run can be 15-40 % off, so compare the
ratios of one run, not absolute times across runs. Tests never assert timings.

Regenerate this file (it is written by the command, figures and all):

```sh
{command}
```

Last run: {when}, Python {python} on {machine}.
"""


def run_one(script: Path, iterations: int | None, repeats: int | None) -> dict[str, Any]:
    cmd = [sys.executable, str(script), "--json"]
    if iterations is not None:
        cmd += ["--iterations", str(iterations)]
    if repeats is not None:
        cmd += ["--repeats", str(repeats)]
    out = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, check=True).stdout
    start = out.index("{")
    data: dict[str, Any] = json.loads(out[start:])
    return data


def table(data: dict[str, Any]) -> str:
    meta = {k: v for k, v in data.items() if k not in ("benchmark", "results", "python", "machine")}
    lines = [f"## {data['benchmark']}", ""]
    if meta:
        lines += [", ".join(f"{k}={v}" for k, v in meta.items()), ""]
    lines += ["| operation | ns/op | x floor | bytes/object | note |", "|---|---:|---:|---:|---|"]
    for r in data["results"]:
        size = f"{r['bytes_per_object']:.0f}" if r.get("bytes_per_object") else ""
        lines.append(
            f"| {r['name']} | {r['ns_per_op']:.0f} | {r['ratio_to_floor']:.1f} | {size} "
            f"| {r.get('note', '')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--notes", type=Path, default=HERE / "NOTES.md")
    args = parser.parse_args()
    command = ".venv/bin/python benchmarks/run_all.py"
    if args.iterations is not None:
        command += f" --iterations {args.iterations}"
    if args.repeats is not None:
        command += f" --repeats {args.repeats}"
    parts = [
        INTRO.format(
            command=command,
            when=datetime.date.today().isoformat(),
            python=platform.python_version(),
            machine=platform.machine(),
        )
    ]
    if args.notes.exists():
        parts.append(args.notes.read_text())
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"running {script.name} ...", flush=True)
        parts.append(table(run_one(script, args.iterations, args.repeats)))
    TARGET.write_text("\n".join(parts))
    print(f"wrote {TARGET}")


if __name__ == "__main__":
    main()
