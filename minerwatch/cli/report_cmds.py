"""``minerwatch report``: the case report of one alert as Markdown, one self-contained HTML file, or JSON."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path

import typer

from minerwatch.cli.app import DEFAULT_STATE, alert_or_fail, app, fail, inert, note
from minerwatch.errors import MinerWatchError


class ReportFormat(StrEnum):
    md = "md"
    html = "html"
    json = "json"


_REPORT_HELP = (
    "Write the case report of an alert: summary (what, where, since when, severity, cost), the enrichment "
    "sections and timeline, the actions taken (audit log), the response checklist with what is still open, and "
    "the rule's investigation steps and notes.\n\n"
    "--format html writes one self-contained file (inline CSS and SVG charts, no script, nothing fetched); "
    "values from findings and logs are escaped in every format. Exit 1 if the alert does not exist."
)


@app.command("report", help=_REPORT_HELP)
def report_cmd(
    alert_id: str = typer.Argument(..., help="Alert id (an unambiguous prefix is enough)."),
    fmt: ReportFormat = typer.Option(ReportFormat.md, "--format", "-f", help="md, html or json."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write here instead of standard output."),
    rule: Path | None = typer.Option(None, "--rule", "-r", help="Rule document (default: the alert's shipped rule)."),
    metrics: Path | None = typer.Option(
        None,
        "--metrics",
        help="CPU metrics file (JSON Lines) for the chart's datapoints. Default: the file the enrichment read, "
        "when it is still there.",
    ),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store."),
) -> None:
    # Start-up: the report stack (Jinja2, the rule model) is loaded by the command, not by `--help`.
    from minerwatch.alerting.state import StateStore
    from minerwatch.report.html import render_html
    from minerwatch.report.markdown import render_markdown
    from minerwatch.report.model import build_report

    if not state.exists():
        fail(f"no state store at {state}", 1)
    store = StateStore(state, read_only=True)
    try:
        alert_id = alert_or_fail(store, alert_id, state)["alert_id"]
        report = build_report(store, alert_id, rule_path=rule, metrics=str(metrics) if metrics else None)
    except MinerWatchError as exc:
        fail(exc)
    finally:
        store.close()
    if fmt is ReportFormat.json:
        text = json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"
    elif fmt is ReportFormat.html:
        text = render_html(report)
    else:
        text = render_markdown(report)
    if out_file is None:
        sys.stdout.write(text)
    else:
        try:
            out_file.parent.mkdir(parents=True, exist_ok=True)
            out_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"{out_file}: cannot write the report: {exc.strerror or exc}")
        note(f"wrote {fmt.value} report of {report['report']['alert_id']} to {out_file}")
    for w in report["warnings"]:
        note(f"note: {inert(w)}")
