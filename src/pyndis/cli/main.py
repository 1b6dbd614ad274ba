"""The ``pyndis`` command: ``pyndis run`` shows the model working end to end.

Theory of operation
-------------------
``pyndis run`` builds the sample driver stacks of every send path (NDIS 5.x connectionless,
CoNDIS 5.x, NDIS 6, CoNDIS 6), drives traffic through them with the verifier on and a fixed
seed, and prints one report: per scenario what was sent, how it completed, what arrived at the
far end, the virtual time it took, the verifier's findings and the "nothing lost" balance. The
event trace of every scenario is written under ``--out`` so two runs can be compared byte for
byte. ``pyndis ddis`` lists every DDI the model implements. The exit status is non-zero when a
scenario loses a descriptor or the verifier reports a violation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .. import __version__

# each scenario module registers itself in SCENARIOS
from . import scenario5, scenario6, scenario_co5  # noqa: F401
from .ddis import implemented_ddis
from .scenarios import SCENARIOS, ScenarioResult, run_scenario

#: the order of the default run: NDIS 5.x connectionless, CoNDIS 5.x, NDIS 6, CoNDIS 6
ORDER = ("ndis5", "condis5", "ndis6", "condis6")


def _order(name: str) -> int:
    return ORDER.index(name) if name in ORDER else len(ORDER)


@click.group(invoke_without_command=True)
@click.version_option(__version__, prog_name="pyndis")
@click.pass_context
def main(ctx: click.Context) -> None:
    """pyndis: an executable model of the Windows NDIS send path."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(run)


@main.command()
@click.option("--seed", default=1, show_default=True, help="Seed of every random choice.")
@click.option(
    "--scenario",
    "names",
    multiple=True,
    type=click.Choice(sorted(SCENARIOS)),
    help="Run only these scenarios (default: all).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("out"),
    show_default=True,
    help="Directory for traces and the report.",
)
@click.option("--quiet", is_flag=True, help="Only the summary table.")
def run(seed: int, names: tuple[str, ...], out: Path, quiet: bool) -> None:
    """Run the sample stacks of every send path and report."""
    console = Console(width=None if sys.stdout.isatty() else 132)
    selected = list(names) or sorted(SCENARIOS, key=_order)
    console.print(
        f"[bold]pyndis {__version__}[/bold]: seed {seed}, scenarios: {', '.join(selected)}"
    )
    out.mkdir(parents=True, exist_ok=True)
    results: list[ScenarioResult] = []
    for name in selected:
        result = run_scenario(name, seed)
        results.append(result)
        (out / f"{name}.trace").write_text(result.trace)
        if not quiet:
            console.print(f"\n[bold cyan]{name}[/bold cyan]: {result.description}")
            for line in result.details:
                console.print(f"  {line}")
    table = Table(title=f"pyndis run (seed {seed})")
    for column in (
        "scenario",
        "path",
        "sent",
        "completed",
        "statuses",
        "delivered",
        "virtual time",
        "violations",
        "nothing lost",
    ):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.name,
            r.path,
            str(r.sent),
            str(r.completed),
            ", ".join(f"{k} {v}" for k, v in sorted(r.statuses.items())),
            str(r.delivered),
            f"{r.virtual_seconds * 1000:.3f} ms",
            str(len(r.violations)) if not r.violations else f"[red]{len(r.violations)}[/red]",
            "[green]yes[/green]" if r.balanced else f"[red]no: {r.balance_problem}[/red]",
        )
    console.print(table)
    report = out / "report.txt"
    report.write_text("\n".join(r.summary_line() for r in results) + "\n")
    console.print(f"traces and report in {out}/")
    failed = [r.name for r in results if not r.ok]
    if failed:
        for r in results:
            for v in r.violations:
                console.print(f"[red]{r.name}: {v}[/red]")
        console.print(f"[red]FAILED: {', '.join(failed)}[/red]")
        sys.exit(1)


@main.command()
def ddis() -> None:
    """List every DDI and macro pyndis implements."""
    console = Console()
    table = Table(title="DDIs implemented")
    table.add_column("DDI")
    table.add_column("NDIS")
    table.add_column("where")
    table.add_column("summary")
    entries = implemented_ddis()
    for e in entries:
        table.add_row(e.name, e.generation, e.where, e.summary)
    console.print(table)
    console.print(f"{len(entries)} DDIs and macros")


if __name__ == "__main__":  # pragma: no cover
    main()
