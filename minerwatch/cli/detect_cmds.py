"""Commands about detection: ``detect``, ``alerts list|show|ack|close``, ``test``."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

import minerwatch.cli.spark_opts as spark_opts
import minerwatch.cli.window_opts as window_opts
from minerwatch.cli import org_out
from minerwatch.cli.app import DEFAULT_STATE, alert_or_fail, app, cell, err, fail, inert, note, out
from minerwatch.errors import MinerWatchError
from minerwatch.rules.shipped import DEFAULT_RULE, SAMPLES_DIR, shipped_rules

if TYPE_CHECKING:
    from rich.table import Table

    from minerwatch.alerting.detect import DetectStats

# The detection stack (rule model, compiler, SQLite state) is imported inside the commands, so that
# `--help` and the other commands of the CLI start without it.

FORMATS = ("jsonl", "table", "ocsf")
ENGINES = ("stream", "duckdb", "spark")


def _alert_line(record: dict[str, Any], fmt: str) -> str:
    import orjson

    from minerwatch.alerting.alerts import to_ocsf

    return orjson.dumps(to_ocsf(record) if fmt == "ocsf" else record).decode()


def _types_cell(record: dict[str, Any]) -> str:
    """The finding types of an alert: one per group when the rule groups by type, else the latest row's type."""
    types = sorted({str(g["type"]) for g in record.get("groups", []) if g.get("type")})
    if types:
        return "\n".join(types)
    latest = record.get("fields", {}).get("type")
    if isinstance(latest, str) and latest:
        return f"{latest} (latest; not grouped by type)"
    return "- (no type column)"


def _alerts_table(records: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    key_names = " / ".join(records[0]["key"]) if records else "key"
    table = Table("alert_id", "status", "severity")
    table.add_column(cell(key_names))  # names from the rule document: text, not markup
    for name in ("first_seen", "last_seen", "events", "types"):
        table.add_column(name)
    for column in table.columns:
        column.overflow = "fold"
    for r in records:
        # Every value may come from a finding: inert text, never markup or terminal control sequences.
        table.add_row(
            cell(r["alert_id"]),
            cell(r["status"]),
            cell(f"{r.get('severity')}/{r.get('priority')}"),
            cell(" / ".join("-" if v is None else str(v) for v in r["key"].values())),
            cell(r["first_seen"]),
            cell(r["last_seen"]),
            cell(r["event_count"]),
            cell(_types_cell(r), multiline=True),
            end_section=False,
        )
    return table


def _print_summary(stats: DetectStats) -> None:
    s = stats
    lines = [
        f"records read {s.records_read:,} (files {s.files}), findings {s.findings:,}, prefiltered {s.prefiltered:,}, "
        f"duplicates {s.duplicates:,}, rejected {s.rejected:,}, matched {s.matched:,}, suppressed {s.suppressed:,}, "
        f"alerts new {s.alerts_new:,} / updated {s.alerts_updated:,}  ({s.seconds:.2f} s)"
    ]
    lines += (f"  suppressed {n:,}: {inert(reason)}" for reason, n in sorted(s.suppressed_by_reason.items()))
    lines += (
        f"  allowlist entry at line {e['line']} expired {e['expires']} and no longer applies: {inert(e['reason'])}"
        for e in s.expired_allowlist_entries
    )
    if s.rejected:
        lines.append(f"  rejects written to {inert(s.rejects_file)}: " + ", ".join(
            f"{inert(r)} ×{n}" for r, n in sorted(s.reject_reasons.items())))
    elif s.rejects_file:
        lines.append(f"  no rejects (rejects file: {inert(s.rejects_file)})")
    note(*lines)


DRAIN_TIMEOUT = typer.Option(
    30.0,
    "--drain-timeout",
    min=0.0,
    help="Seconds to keep delivering notifications (retries included) before exiting at the end of the input; "
    "what is not delivered by then stays queued for `watch` or `outbox deliver`.",
)


def _committed(state: Path, alert_ids: list[str]) -> Iterator[str]:
    """The records of ``alert_ids`` as the store holds them (JSON text), in that order, read one batch at a time."""
    if not alert_ids:
        return
    from minerwatch.alerting.state import StateStore

    store = StateStore(str(state), read_only=True)
    try:
        yield from store.alert_texts(alert_ids)
    finally:
        store.close()


def _notify_config(config: Path | None) -> Any:
    from minerwatch.notify import find_config

    if find_config(config) is None:  # the usual run: no settings, so no notification commands or models to load
        return None
    from minerwatch.cli.notify_cmds import notify_config

    return notify_config(config)


@app.command("detect")
def detect_cmd(
    paths: list[str] = typer.Argument(
        None,
        help="GuardDuty findings: files (.json/.jsonl, .gz), folders (S3 export layout too), s3://bucket/prefix, "
        "guardduty://REGION or guardduty://REGION/DETECTOR (the GuardDuty API: ListFindings/GetFindings), "
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
    engine: str = typer.Option(
        "stream", "--engine", "-e",
        help="Who reads and matches: stream (Python, per record), duckdb or spark. The alerts are the same.",
    ),
    spark_master: str = spark_opts.SPARK_MASTER,
    spark_remote: str | None = spark_opts.SPARK_REMOTE,
    spark_conf: list[str] = spark_opts.SPARK_CONF,
    since: str | None = window_opts.SINCE,
    until: str | None = window_opts.UNTIL,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 if any record was rejected."),
    include_samples: bool = typer.Option(
        False, "--include-samples", help="Alert on AWS-generated sample findings too (suppressed by default)."
    ),
    no_prefilter: bool = typer.Option(
        False, "--no-prefilter", help="Parse every line, even those lacking every literal the query requires."
    ),
    batch_rows: int = typer.Option(2000, "--batch-rows", help="Matched rows per state transaction.", hidden=True),
    config: Path | None = typer.Option(
        None, "--config", help="Notification settings (default: $MINERWATCH_CONFIG, else ./minerwatch.yaml if present)."
    ),
    drain_timeout: float = DRAIN_TIMEOUT,
    to_securityhub: bool = typer.Option(
        False, "--to-securityhub",
        help="Import every alert created or updated into AWS Security Hub as an ASFF finding (BatchImportFindings, "
        "batches of 100, retried through the outbox; the finding id is the alert id). Uses the securityhub "
        "destination of minerwatch.yaml when there is one.",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Do not print the rule's lint warnings (printed once on stderr at start)."
    ),
    org: bool = org_out.READ_ORG,
    role_name: str = org_out.ROLE_NAME,
    session_name: str = org_out.SESSION_NAME,
    external_id: str | None = org_out.EXTERNAL_ID,
    accounts: str | None = org_out.ACCOUNTS,
    exclude_accounts: str | None = org_out.EXCLUDE,
    concurrency: int = org_out.CONCURRENCY,
    profile: str | None = org_out.PROFILE,
) -> None:
    """Run a detection rule over GuardDuty findings: where → allowlist → throttle → alerts in the state store.

    Rerunning over the same input changes nothing (deliveries are deduplicated by finding id + updatedAt). With a
    notification configuration, new and updated alerts go through the outbox and are delivered before exit.
    The rule's lint warnings that its document does not acknowledge are printed once on stderr first.

    With --org, the s3:// and guardduty:// inputs are read in every account of the organization, in one run;
    a per-account table follows the summary, and the exit status is 3 when an account could not be read.
    """
    if fmt not in FORMATS:
        fail(f"--format must be one of {', '.join(FORMATS)}")
    if engine not in ENGINES:
        fail(f"--engine must be one of {', '.join(ENGINES)}")
    from minerwatch.alerting.allowlist import load_allowlist
    from minerwatch.alerting.detect import DetectOptions, detect
    from minerwatch.rules.lint import lint_rule
    from minerwatch.rules.loader import load_rule

    window = window_opts.time_window(since, until)
    inputs = paths or [str(SAMPLES_DIR / "findings")]
    stream = inputs == ["-"]
    if stream and engine != "stream":
        fail("stdin ('-') is read with --engine stream only")
    try:
        loaded = load_rule(rule)
        allow = load_allowlist(allowlist) if allowlist else None
        notify = _notify_config(config)
    except MinerWatchError as exc:
        fail(exc)
    if not quiet:
        for warning in lint_rule(loaded).warnings:
            note(warning.text)
    if window:
        from minerwatch.compile.window import window_text

        try:
            loaded = dataclasses.replace(loaded, query=window_text(loaded.query, window))
        except MinerWatchError as exc:
            fail(exc)
    org_results: list[Any] | None = None
    try:
        if org:
            if stream or engine == "spark":
                fail("--org reads S3 and GuardDuty API inputs with --engine stream or duckdb")
            opts = org_out.org_options(role_name, session_name, external_id, accounts, exclude_accounts, concurrency)
            org_results, groups = org_out.org_reads({"inputs": inputs}, opts, profile)
            inputs = groups["inputs"]
        else:
            from minerwatch.sources.org import check_org_paths

            check_org_paths(inputs, org=False)
    except MinerWatchError as exc:
        fail(exc)
    emitted: dict[str, None] = {}  # ids only, in the order they were first committed: the store holds the records

    def on_alert(record: dict[str, Any]) -> None:
        if org_results is not None:
            org_out.count_alert(org_results, record)
        if stream and fmt != "table":
            sys.stdout.write(_alert_line(record, fmt) + "\n")
            sys.stdout.flush()
        else:
            emitted[record["alert_id"]] = None

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
    if to_securityhub:
        from minerwatch.cli.securityhub_out import with_securityhub

        try:
            notify = with_securityhub(notify, config)
        except MinerWatchError as exc:
            fail(exc)
    queued: list[int] = []
    if notify is not None:
        from minerwatch.notify.outbox import enqueue

        cfg = notify  # the outbox rows are written in the transaction that commits the alerts
        options.in_transaction = lambda store, records: queued.extend(enqueue(store, records, cfg))
    from minerwatch.sources.inputs import windowed_paths

    try:
        if engine == "duckdb":
            from minerwatch.alerting.sql_detect import detect_duckdb

            stats = detect_duckdb(loaded, windowed_paths(inputs, window), options)
        elif engine == "spark":
            from minerwatch.alerting.sql_detect import detect_spark

            session = spark_opts.spark_options(spark_master, spark_remote, spark_conf)
            stats = detect_spark(loaded, inputs, options, session, since=window.since, until=window.until)
        else:
            stats = detect(loaded, windowed_paths(inputs, window), options)
    except MinerWatchError as exc:
        fail(exc)
    latest = _committed(state, list(emitted))
    if fmt == "jsonl":
        sys.stdout.writelines(text + "\n" for text in latest)  # the stored line is the record's JSON Lines form
    else:
        import orjson

        records = map(orjson.loads, latest)
        if fmt == "table":
            out.print(_alerts_table(list(records)))
        else:
            for r in records:
                print(_alert_line(r, fmt))
    _print_summary(stats)
    if notify is not None:
        from minerwatch.cli.notify_cmds import deliver_queued

        deliver_queued(state, notify, loaded, queued, drain_timeout)
    summary = stats.to_json()
    if org_results is not None:
        from minerwatch.sources.org import settle

        org_results = settle(org_results)
        org_out.read_summary(org_results)
        summary["accounts"] = org_out.account_results_json(org_results)
    if stats_json:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(summary, indent=2))
    if org_results is not None:
        org_out.exit_if_account_failed(org_results)
    if strict and stats.rejected:
        note(f"--strict: {stats.rejected} record(s) rejected")
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
    import orjson

    from minerwatch.alerting.state import StateStore

    records = StateStore(state, read_only=True).list_alerts(rule_id, status)
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
    from minerwatch.alerting.state import StateStore
    from minerwatch.enrich.run import stored_enrichment  # local: nothing else in this module needs enrich

    store = StateStore(state, read_only=True)
    record = alert_or_fail(store, alert_id, state)
    sections, timeline = stored_enrichment(store, record["alert_id"])
    if as_json:
        # The alert's own keys stay at the top level, so readers of the plain alert JSON keep working.
        shown = {**record, "enrichment": sections, "timeline": timeline} if sections else record
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    out.print(_alerts_table([record]))
    out.print("groups:", highlight=False)
    for g in record["groups"]:
        out.print("  " + inert(json.dumps(g, ensure_ascii=False)), highlight=False, markup=False)
    out.print("fields:", highlight=False)
    for k, v in record["fields"].items():
        out.print(f"  {inert(k)}: {inert(json.dumps(v, ensure_ascii=False))}", highlight=False, markup=False)
    out.print(
        f"findings ({len(record['finding_ids'])}): " + inert(", ".join(record["finding_ids"])),
        highlight=False,
        markup=False,
    )
    if not sections:
        return
    out.print("enrichment:", highlight=False)
    for name, section in sections.items():
        status, stale = str(section.get("status")), section.get("stale")
        if stale:  # kept from an earlier run that a later one could not refresh
            status += f", stale since {stale.get('since')}: {stale.get('reason')}"
        out.print(f"  {inert(name)} [{inert(status)}]: {inert(section.get('headline'))}", highlight=False, markup=False)
        for w in section.get("warnings", []):
            out.print(f"      warning: {inert(w)}", highlight=False, markup=False)
    out.print(f"timeline ({len(timeline)}):", highlight=False)
    for e in timeline:
        out.print(
            f"  {inert(e['time']):<24}  {inert(e['section']):<18}  {inert(e['what'])}", highlight=False, markup=False
        )


def _set_status(alert_id: str, state: Path, status: str, config: Path | None = None) -> None:
    # With a notification config (--config, $MINERWATCH_CONFIG or ./minerwatch.yaml) the status change also
    # queues an acknowledge / resolve for destinations that follow it (PagerDuty, webhooks), in one transaction.
    from minerwatch.alerting.state import AmbiguousAlertId
    from minerwatch.cli.notify_cmds import set_status_and_notify

    try:
        record = set_status_and_notify(state, alert_id, status, config)
    except AmbiguousAlertId as exc:
        fail(exc, 2)
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
    from minerwatch.alerting.rule_tests import run_rule_tests
    from minerwatch.rules.loader import load_rule

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
