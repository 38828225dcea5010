"""Commands about detection: ``detect``, ``alerts list|show|ack|close``, ``test``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from minerwatch.alerting.alerts import to_ocsf
from minerwatch.alerting.allowlist import load_allowlist
from minerwatch.alerting.detect import DetectOptions, DetectStats, detect
from minerwatch.alerting.rule_tests import run_rule_tests
from minerwatch.alerting.state import StateStore
from minerwatch.cli.app import DEFAULT_STATE, app, err, fail, out
from minerwatch.errors import MinerWatchError
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE, SAMPLES_DIR, shipped_rules

FORMATS = ("jsonl", "table", "ocsf")


def _alert_line(record: dict[str, Any], fmt: str) -> str:
    return orjson.dumps(to_ocsf(record) if fmt == "ocsf" else record).decode()


def _alerts_table(records: list[dict[str, Any]]) -> Table:
    key_names = " / ".join(records[0]["key"]) if records else "key"
    table = Table("alert_id", "status", "severity", key_names, "first_seen", "last_seen", "events", "types")
    for column in table.columns:
        column.overflow = "fold"
    for r in records:
        types = sorted({str(g.get("type")) for g in r.get("groups", []) if g.get("type")})
        table.add_row(
            r["alert_id"],
            r["status"],
            f"{r.get('severity')}/{r.get('priority')}",
            " / ".join("-" if v is None else str(v) for v in r["key"].values()),
            r["first_seen"],
            r["last_seen"],
            str(r["event_count"]),
            "\n".join(types),
            end_section=False,
        )
    return table


def _print_summary(stats: DetectStats) -> None:
    s = stats
    err.print(
        f"records read {s.records_read:,} (files {s.files}), findings {s.findings:,}, prefiltered {s.prefiltered:,}, "
        f"duplicates {s.duplicates:,}, rejected {s.rejected:,}, matched {s.matched:,}, suppressed {s.suppressed:,}, "
        f"alerts new {s.alerts_new:,} / updated {s.alerts_updated:,}  ({s.seconds:.2f} s)",
        highlight=False,
    )
    for reason, n in sorted(s.suppressed_by_reason.items()):
        err.print(f"  suppressed {n:,}: {reason}", highlight=False, markup=False)
    for e in s.expired_allowlist_entries:
        err.print(
            f"  allowlist entry at line {e['line']} expired {e['expires']} and no longer applies: {e['reason']}",
            highlight=False,
            markup=False,
        )
    if s.rejected:
        err.print(f"  rejects written to {s.rejects_file}: " + ", ".join(
            f"{r} ×{n}" for r, n in sorted(s.reject_reasons.items())), highlight=False, markup=False)


@app.command("detect")
def detect_cmd(
    paths: list[str] = typer.Argument(
        None,
        help="GuardDuty findings: files (.json/.jsonl, .gz), folders (S3 export layout too), s3://bucket/prefix, "
        "or - for stdin (streamed: each alert is written as it is created or updated). "
        "Default: the bundled sample data.",
    ),
    rule: Path = typer.Option(DEFAULT_RULE, "--rule", "-r", help="Rule document to run."),
    allowlist: Path | None = typer.Option(
        None, "--allowlist", "-a",
        help="Allowlist YAML: entries with a reason, optional expiry, column values and tags (see README).",
    ),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store (created if missing)."),
    out_file: Path | None = typer.Option(
        None, "--out", "-o", help="Append one JSON line per alert created or updated by this run."
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Where rejected records go (JSON Lines). Default: rejects.jsonl beside the state."
    ),
    stats_json: Path | None = typer.Option(None, "--stats-json", help="Write the run summary as JSON here."),
    fmt: str = typer.Option("jsonl", "--format", "-f", help="Alerts on stdout: jsonl, table or ocsf."),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any record was rejected."),
    include_samples: bool = typer.Option(
        False, "--include-samples", help="Alert on AWS-generated sample findings too (suppressed by default)."
    ),
    no_prefilter: bool = typer.Option(
        False, "--no-prefilter", help="Parse every line, even those lacking every literal the query requires."
    ),
    batch_rows: int = typer.Option(2000, "--batch-rows", help="Matched rows per state transaction.", hidden=True),
    to_securityhub: bool = typer.Option(
        False, "--to-securityhub",
        help="Import every alert created or updated into AWS Security Hub as an ASFF finding (BatchImportFindings, "
        "batches of 100, retried through the outbox; the finding id is the alert id). Uses the securityhub "
        "destination of minerwatch.yaml when there is one.",
    ),
) -> None:
    """Run a detection rule over GuardDuty findings: where → allowlist → throttle → alerts in the state store.

    Rerunning over the same input changes nothing (deliveries are deduplicated by finding id + updatedAt).
    """
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}")
    inputs = paths or [str(SAMPLES_DIR / "findings")]
    stream = inputs == ["-"]
    try:
        loaded = load_rule(rule)
        allow = load_allowlist(allowlist) if allowlist else None
    except MinerWatchError as exc:
        fail(exc)
    emitted: list[dict[str, Any]] = []

    def on_alert(record: dict[str, Any]) -> None:
        if stream and fmt != "table":
            sys.stdout.write(_alert_line(record, fmt) + "\n")
            sys.stdout.flush()
        else:
            emitted.append(record)

    options = DetectOptions(
        state=str(state),
        allowlist=allow,
        out=str(out_file) if out_file else None,
        rejects=str(rejects or state.parent / "rejects.jsonl"),
        include_samples=include_samples,
        stream=stream,
        prefilter=not no_prefilter,
        batch_rows=max(1, batch_rows),
        on_alert=on_alert,
    )
    hub = None
    if to_securityhub:
        from minerwatch.cli import securityhub_out
        from minerwatch.notify.outbox import transaction_hook

        try:
            hub = securityhub_out.hub_config()
        except MinerWatchError as exc:
            fail(exc)
        options.in_transaction = transaction_hook(hub)
    try:
        stats = detect(loaded, inputs, options)
    except MinerWatchError as exc:
        fail(exc)
    if hub is not None:
        securityhub_out.deliver(state, hub)
    latest = list({r["alert_id"]: r for r in emitted}.values())
    if fmt == "table":
        out.print(_alerts_table(latest))
    else:
        for r in latest:
            print(_alert_line(r, fmt))
    _print_summary(stats)
    if stats_json:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(stats.to_json(), indent=2))
    if strict and stats.rejected:
        err.print(f"--strict: {stats.rejected} record(s) rejected", highlight=False)
        raise typer.Exit(1)


alerts_app = typer.Typer(help="Read and update alerts in the state store.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state"),
    status: str | None = typer.Option(None, "--status", help="Only alerts with this status."),
    rule_id: str | None = typer.Option(None, "--rule-id"),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines instead of a table."),
) -> None:
    """List alerts, oldest first."""
    records = StateStore(state).list_alerts(rule_id, status)
    if as_json:
        for r in records:
            print(orjson.dumps(r).decode())
    else:
        out.print(_alerts_table(records))
        err.print(f"{len(records)} alert(s)", highlight=False)


@alerts_app.command("show")
def alerts_show(
    alert_id: str = typer.Argument(..., help="Alert id (an unambiguous prefix is enough)."),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show one alert: key, times, groups, fields and finding ids; its enrichment sections and timeline once
    `minerwatch enrich` has run (JSON: the alert's keys plus "enrichment" and "timeline")."""
    from minerwatch.enrich.run import stored_enrichment  # local: nothing else in this module needs enrich

    store = StateStore(state)
    record = store.get_alert(alert_id)
    if record is None:
        fail(f"no alert {alert_id!r} in {state}", 1)
    sections, timeline = stored_enrichment(store, record["alert_id"])
    if as_json:
        # The alert's own keys stay at the top level, so readers of the plain alert JSON keep working.
        shown = {**record, "enrichment": sections, "timeline": timeline} if sections else record
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    out.print(_alerts_table([record]))
    out.print("groups:", highlight=False)
    for g in record["groups"]:
        out.print("  " + json.dumps(g, ensure_ascii=False), highlight=False, markup=False)
    out.print("fields:", highlight=False)
    for k, v in record["fields"].items():
        out.print(f"  {k}: {json.dumps(v, ensure_ascii=False)}", highlight=False, markup=False)
    out.print(f"findings ({len(record['finding_ids'])}): " + ", ".join(record["finding_ids"]), highlight=False)
    if not sections:
        return
    out.print("enrichment:", highlight=False)
    for name, section in sections.items():
        out.print(f"  {name} [{section.get('status')}]: {section.get('headline')}", highlight=False, markup=False)
        for w in section.get("warnings", []):
            out.print(f"      warning: {w}", highlight=False, markup=False)
    out.print(f"timeline ({len(timeline)}):", highlight=False)
    for e in timeline:
        out.print(f"  {e['time']:<24}  {e['section']:<18}  {e['what']}", highlight=False, markup=False)


def _set_status(alert_id: str, state: Path, status: str, config: Path | None = None) -> None:
    # With a notification config (--config, $MINERWATCH_CONFIG or ./minerwatch.yaml) the status change also
    # queues an acknowledge / resolve for destinations that follow it (PagerDuty, webhooks), in one transaction.
    from minerwatch.cli.notify_cmds import set_status_and_notify

    record = set_status_and_notify(state, alert_id, status, config)
    if record is None:
        fail(f"no alert {alert_id!r} in {state}", 1)
    print(f"{record['alert_id']}: {status}")


_NOTIFY_CONFIG = typer.Option(None, "--config", help="minerwatch.yaml for notifications (default: ./minerwatch.yaml).")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: str, state: Path = typer.Option(Path(DEFAULT_STATE), "--state"), config: Path | None = _NOTIFY_CONFIG
) -> None:
    """Mark an alert acknowledged (and tell destinations that follow status changes)."""
    _set_status(alert_id, state, "acknowledged", config)


@alerts_app.command("close")
def alerts_close(
    alert_id: str, state: Path = typer.Option(Path(DEFAULT_STATE), "--state"), config: Path | None = _NOTIFY_CONFIG
) -> None:
    """Mark an alert closed (and resolve it in PagerDuty, tell webhooks)."""
    _set_status(alert_id, state, "closed", config)


@app.command("test")
def test_cmd(
    rules: list[Path] = typer.Argument(None, help="Rule documents; default: every shipped rule."),
) -> None:
    """Replay each rule's fixture events (its ## Tests section) and check the expected matches and alerts."""
    failed = 0
    for path in rules or shipped_rules():
        try:
            loaded = load_rule(path)
            if loaded.table == "cloud.aws.guardduty":
                results = run_rule_tests(loaded)
            else:  # hunting rules over flow / DNS logs replay through the hunt
                from minerwatch.hunt.rule_tests import run_hunt_rule_tests

                results = run_hunt_rule_tests(loaded)
        except MinerWatchError as exc:
            fail(exc)
        if not results:
            print(f"{path}: no tests")
            failed += 1
        for r in results:
            print(r.format(str(path)))
            failed += not r.ok
    if failed:
        raise typer.Exit(1)
