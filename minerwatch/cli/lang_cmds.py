"""Commands about rules and queries: ``rules show|list``, ``lint``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from minerwatch.cli.app import app, fail, out
from minerwatch.errors import MinerWatchError
from minerwatch.rules.shipped import DEFAULT_RULE, shipped_rules

rules_app = typer.Typer(help="Inspect rule documents.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("show")
def rules_show(
    file: Path = typer.Argument(
        DEFAULT_RULE,
        help="A rule document (Markdown, the seed's format) or a shipped rule's id; default: the seed rule.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the whole rule model as JSON."),
) -> None:
    """Load a rule document and show its model: metadata, query, alert configuration, IOCs, playbook."""
    # Start-up: the rule model and its parsers (Markdown, YAML) are loaded by the command, not by `--help`.
    from minerwatch.rules.loader import load_rule

    try:
        rule = load_rule(file)
    except MinerWatchError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(rule.to_json(), indent=2, ensure_ascii=False))
        return
    t = rule.alert.throttle
    out.print(f"[bold]{rule.name}[/bold]  ({rule.id})", markup=True, highlight=False)
    out.print(f"severity {rule.severity}, priority {rule.priority or '-'}", highlight=False)
    out.print(
        "MITRE: "
        + ", ".join(f"{m.name} ({m.id})" for m in [*rule.mitre.tactics, *rule.mitre.techniques]),
        highlight=False,
    )
    out.print(
        f"throttle: {t.count} alert per ({', '.join(t.key)}) per {t.window_seconds} s", highlight=False
    )
    out.print(f"query (line {rule.query_line}):\n{rule.query}", highlight=False, markup=False)
    out.print(
        f"IOCs: domains {rule.iocs.domains}, ips {rule.iocs.ips}, ports {rule.iocs.ports}", highlight=False
    )
    for title, items in (
        ("Recommended actions", rule.recommended_actions),
        ("Response playbook", rule.response_playbook),
        ("Investigation steps", rule.investigation_steps),
    ):
        out.print(f"{title}:", highlight=False)
        for i, step in enumerate(items, 1):
            out.print(f"  {i:2d}. {step}", highlight=False, markup=False)
    for w in rule.warnings:
        out.print(w.format(rule.path), highlight=False, markup=False)


@rules_app.command("list")
def rules_list() -> None:
    """List the shipped rule documents (package data under minerwatch/data/rules/)."""
    from minerwatch.rules.loader import load_rule

    table = Table("id", "severity", "priority", "throttle key", "file")
    for path in shipped_rules():
        rule = load_rule(path)
        table.add_row(rule.id, rule.severity, rule.priority or "-", ", ".join(rule.alert.throttle.key), str(path))
    out.print(table)


@app.command()
def lint(
    files: list[Path] = typer.Argument(..., help="Rule documents (.md/.txt) or query files (.linq)."),
    show_acknowledged: bool = typer.Option(
        False, "--acknowledged", help="Also print the warnings the document acknowledges, with its reason."
    ),
) -> None:
    """Check rules and queries: syntax errors with file:line:col and a caret (exit 1), semantic warnings
    (and/or precedence, ungrouped columns, crypto-mining finding types a GuardDuty rule can never match).

    A rule document acknowledges a warning it means under `## Lint Acknowledgements` (`- code: reason`);
    acknowledged warnings are counted, not printed (unless --acknowledged)."""
    from minerwatch.rules.lint import lint_path

    n_err = 0
    for path in files:
        result = lint_path(path)
        for line in result.errors + [w.detail for w in result.warnings]:
            print(line)
        if show_acknowledged:
            for item, ack in result.acknowledged:
                print(f"{item.text} (acknowledged: {ack.reason})")
        n_err += len(result.errors)
        if not result.errors:
            n = len(result.warnings)
            acked = f", {len(result.acknowledged)} acknowledged" if result.acknowledged else ""
            print(f"{path}: ok ({n} warning{'s' if n != 1 else ''}{acked})")
    if n_err:
        raise typer.Exit(1)
