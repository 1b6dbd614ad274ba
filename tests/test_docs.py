"""The docs cannot drift from the code.

* ``docs/ownership.md`` embeds blocks generated from :mod:`pyndis.ownership` (the state diagram
  and two tables) between ``<!-- BEGIN GENERATED: name -->`` / ``<!-- END GENERATED: name -->``
  markers; the tests compare them with freshly generated ones.
* ``docs/rules.md`` must have an entry for every rule id (``R<n>`` or ``PY-...``) that appears in
  a string literal anywhere under ``src/pyndis``, for every numbered contract rule, and for
  nothing that is no longer used.

Regenerate the ownership blocks after changing the table, from the repository root::

    .venv/bin/python tests/test_docs.py
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pyndis.ownership import EVENT_INFO, MISUSE, mermaid_diagram

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "pyndis"
OWNERSHIP_DOC = DOCS / "ownership.md"
RULES_DOC = DOCS / "rules.md"
REGEN = ".venv/bin/python tests/test_docs.py"

#: The contract (docs/rules.md, "Contract rules") numbers its rules R1..R67.
CONTRACT_RULES = 67

# --- generated blocks ---------------------------------------------------------------------------


def generated_blocks() -> dict[str, str]:
    """Name -> the text that belongs between that block's markers."""
    events = ["| Event | Performed by | Rule when refused |", "|---|---|---|"]
    for event, info in EVENT_INFO.items():
        events.append(f"| {event.name.lower()} | {info.actor.value} | {info.rule} |")
    misuse = ["| State | Event | Rule | Meaning |", "|---|---|---|---|"]
    for (state, event), (rule, why) in MISUSE.items():
        misuse.append(f"| {state.name} | {event.name.lower()} | {rule} | {why} |")
    return {
        "ownership-diagram": f"```mermaid\n{mermaid_diagram()}\n```",
        "ownership-events": "\n".join(events),
        "ownership-misuse": "\n".join(misuse),
    }


BLOCK = re.compile(
    r"(?P<begin><!-- BEGIN GENERATED: (?P<name>[\w-]+) -->\n)"
    r"(?P<body>.*?)"
    r"(?P<end>\n<!-- END GENERATED: (?P=name) -->)",
    re.DOTALL,
)


def embedded_blocks(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for match in BLOCK.finditer(text):
        found[match["name"]].append(match["body"])
    return found


def regenerate(path: Path = OWNERSHIP_DOC) -> bool:
    """Rewrite the generated blocks of ``path`` in place; True if anything changed."""
    blocks = generated_blocks()
    old = path.read_text()
    new = BLOCK.sub(
        lambda m: m["begin"] + blocks.get(m["name"], m["body"]) + m["end"],
        old,
    )
    if new != old:
        path.write_text(new)
    return new != old


@pytest.mark.parametrize("name", sorted(generated_blocks()))
def test_ownership_doc_embeds_the_generated_block(name: str) -> None:
    embedded = embedded_blocks(OWNERSHIP_DOC.read_text())
    assert len(embedded[name]) == 1, f"docs/ownership.md needs exactly one '{name}' block"
    assert embedded[name][0] == generated_blocks()[name], (
        f"the '{name}' block of docs/ownership.md no longer matches pyndis.ownership; "
        f"regenerate it with: {REGEN}"
    )


def test_regenerate_restores_a_stale_block(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "intro\n<!-- BEGIN GENERATED: ownership-diagram -->\nstale\n"
        "<!-- END GENERATED: ownership-diagram -->\noutro\n"
    )
    assert regenerate(doc) is True
    text = doc.read_text()
    assert embedded_blocks(text)["ownership-diagram"] == [generated_blocks()["ownership-diagram"]]
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert regenerate(doc) is False


# --- the rule catalogue ------------------------------------------------------------------------

R_ID = re.compile(r"(?<!\w)R\d{1,3}(?!\w)")
PY_ID = re.compile(r"(?<![\w-])PY-[A-Z0-9]+(?:-[A-Z0-9]+)*(?!\w)")
ENTRY = re.compile(r"^- \*\*(R\d+|PY-[A-Z0-9-]+)\*\*:", re.MULTILINE)


def rule_ids_in_source(source: str) -> dict[str, list[int]]:
    """Rule id -> line numbers, for every id inside a string literal of ``source``."""
    found: dict[str, list[int]] = defaultdict(list)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for pattern in (R_ID, PY_ID):
                for rule in pattern.findall(node.value):
                    found[rule].append(node.lineno)
    return found


def dynamic_rule_arguments(source: str) -> list[int]:
    """Lines where ``rule=`` gets a formatted string (an id no scan can check)."""
    return [
        kw.value.lineno
        for kw in ast.walk(ast.parse(source))
        if isinstance(kw, ast.keyword)
        and kw.arg == "rule"
        and isinstance(kw.value, (ast.JoinedStr, ast.BinOp, ast.Call))
    ]


def used_rule_ids() -> dict[str, list[str]]:
    """Rule id -> ``path:line`` places under src/pyndis where it appears."""
    used: dict[str, list[str]] = defaultdict(list)
    for path in sorted(SRC.rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        for rule, lines in rule_ids_in_source(path.read_text()).items():
            used[rule] += [f"{where}:{line}" for line in lines]
    return used


def documented_rule_ids() -> list[str]:
    return ENTRY.findall(RULES_DOC.read_text())


def test_every_rule_id_used_in_the_code_is_in_the_catalogue() -> None:
    documented = set(documented_rule_ids())
    missing = {rule: places for rule, places in used_rule_ids().items() if rule not in documented}
    lines = [
        f"  {rule:<24} used at {', '.join(places[:3])}{' ...' if len(places) > 3 else ''}"
        for rule, places in sorted(missing.items())
    ]
    assert not missing, (
        f"{len(missing)} rule id(s) used in src/pyndis have no entry in docs/rules.md:\n"
        + "\n".join(lines)
        + "\nadd a line '- **<ID>**: <what it catches>' under the right heading"
    )


def test_every_contract_rule_is_in_the_catalogue() -> None:
    documented = set(documented_rule_ids())
    missing = [f"R{n}" for n in range(1, CONTRACT_RULES + 1) if f"R{n}" not in documented]
    assert not missing, f"contract rules missing from docs/rules.md: {missing}"
    extra = [r for r in documented if r.startswith("R") and int(r[1:]) > CONTRACT_RULES]
    assert not extra, f"docs/rules.md lists rules the contract does not have: {extra}"


def test_no_catalogue_entry_is_stale() -> None:
    used = used_rule_ids()
    stale = [r for r in documented_rule_ids() if r.startswith("PY-") and r not in used]
    assert not stale, (
        f"docs/rules.md documents PY rules no code under src/pyndis uses any more: {stale}"
    )


def test_catalogue_lists_each_rule_once() -> None:
    ids = documented_rule_ids()
    duplicates = sorted({r for r in ids if ids.count(r) > 1})
    assert not duplicates, f"docs/rules.md lists these more than once: {duplicates}"
    assert len(ids) > CONTRACT_RULES, "the catalogue parser found too few entries"


def test_rule_ids_are_literal_strings() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for line in dynamic_rule_arguments(path.read_text()):
            offenders.append(f"{path.relative_to(ROOT).as_posix()}:{line}")
    assert not offenders, (
        "rule= must be a literal id (or a name bound to one) so the catalogue can be checked: "
        + ", ".join(offenders)
    )


def test_scanner_finds_ids_in_every_kind_of_literal() -> None:
    sample = '''
"""Module docstring citing rules R62-R64 and PY-..."""
RULE = "PY-SAMPLE-ONE"
def f(x):
    raise E(f"bad {x}", rule="R17")
    raise E(f"see PY-SAMPLE-TWO for {x}", rule=RULE)
NOT_A_RULE = "NDIS_FLAGS_RESERVED2 R2D2 XPY-NOPE"
'''
    found = rule_ids_in_source(sample)
    assert set(found) == {"R62", "R64", "R17", "PY-SAMPLE-ONE", "PY-SAMPLE-TWO"}
    assert found["R17"] == [5]
    assert dynamic_rule_arguments(sample) == []
    assert dynamic_rule_arguments('E("x", rule=f"PY-{kind}")') == [1]


def test_catalogue_parser_reads_entries_only() -> None:
    text = RULES_DOC.read_text()
    assert "- **R17**:" in text
    assert "PY-<NAME>" not in documented_rule_ids()


if __name__ == "__main__":
    changed = regenerate()
    print(
        f"{OWNERSHIP_DOC.relative_to(ROOT)}: {'regenerated' if changed else 'already up to date'}"
    )
    sys.exit(0)
