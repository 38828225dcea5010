"""``minerwatch hunt``: sweep the fleet's logs for mining-pool IOCs, per instance / ENI / address / account."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer

import minerwatch.cli.window_opts as window_opts
from minerwatch.cli import org_out
from minerwatch.cli.app import DEFAULT_STATE, app, cell, fail, inert, note, out
from minerwatch.cli.spark_opts import SPARK_CONF, SPARK_MASTER, SPARK_REMOTE, spark_options
from minerwatch.errors import MinerWatchError

if TYPE_CHECKING:
    from minerwatch.hunt.alerts import HuntAlertStats
    from minerwatch.hunt.model import HuntResult

HUNT_RULE_NAME = "aws-ioc-hunt-crypto-mining.md"


class HuntFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


class HuntEngine(StrEnum):
    auto = "auto"
    duckdb = "duckdb"
    python = "python"
    stream = "stream"
    spark = "spark"


_HELP = "\n\n".join(
    [
        "Sweep flow logs, Route 53 Resolver query logs and GuardDuty findings for mining-pool IOCs.",
        "Indicators: the hunting rule's list (--rule, default: the shipped aws-ioc-hunt-crypto-mining), the bundled "
        "mining-pool domains and Stratum ports, and any --ioc files. For each instance (or ENI, source address, "
        "resource, account when the logs do not name the instance): what matched, how much (flows, bytes, "
        "queries, findings), first and last seen. Domains match on whole labels: notnanopool.org is not "
        "nanopool.org.",
        "Flow logs are swept file by file on every core, reading only the lines that hold an indicator (Parquet "
        "files with DuckDB). ENIs and addresses are tied to instances with GuardDuty findings, --cloudtrail "
        "RunInstances events and Resolver query sources.",
        "--since/--until count only the records whose event time lies in [since, until): flow records by their "
        "start, Resolver queries by query_timestamp, findings by updatedAt (else createdAt, as detect reads them), "
        "CloudTrail events by eventTime. The others match nothing and tie no ENI or address to an instance; each "
        "source's statistics count them as outside the window (not as rejects).",
        "--open-alerts turns the hits into alerts in the state store (--state), one per entity per the rule's "
        "throttle window; `minerwatch alerts list --state DB` shows them.",
        "--org reads the s3:// inputs (and guardduty://REGION for --findings) in every active account of the AWS "
        "Organization, through a role assumed in "
        "each ({account} in a URL is the account id): one hunt over every account, then a per-account table.",
        "Exit status: 0 after a hunt (with or without hits), 2 on an error, 3 with --org when an account could "
        "not be read (the others are reported).",
    ]
)


@app.command("hunt", help=_HELP)
def hunt_cmd(
    flow: list[str] | None = typer.Option(
        None, "--flow", help="VPC flow logs: files, folders (S3 layout too), .gz, Parquet, s3://..., - (repeatable)."
    ),
    dns: list[str] | None = typer.Option(None, "--dns", help="Route 53 Resolver query logs (repeatable)."),
    findings: list[str] | None = typer.Option(None, "--findings", help="GuardDuty findings (repeatable)."),
    cloudtrail: list[str] | None = typer.Option(
        None, "--cloudtrail", help="CloudTrail logs, read only to tie ENIs and addresses to instances (repeatable)."
    ),
    ioc: list[Path] | None = typer.Option(
        None, "--ioc", help="IOC file (one value a line, or CSV with type,value[,description]); repeatable."
    ),
    rule: Path | None = typer.Option(
        None, "--rule", "-r", help="Hunting rule: its IOCs and alert configuration (default: the shipped one)."
    ),
    no_bundled: bool = typer.Option(
        False, "--no-bundled", help="Leave out the bundled mining-pool domains and default Stratum ports."
    ),
    fmt: HuntFormat = typer.Option(HuntFormat.table, "--format", "-f", help="Output: table, json or csv."),
    out_file: Path | None = typer.Option(None, "--out", "-o", help="Write the output here instead of stdout."),
    engine: HuntEngine = typer.Option(
        HuntEngine.auto, "--engine",
        help="Flow sweep: auto (local text files on every core, Parquet with DuckDB), duckdb (bulk), python or "
        "stream (one process), or spark.",
    ),
    resolved_ips: bool = typer.Option(
        False, "--resolved-ips", help="Also hunt flows to the addresses that matching DNS queries resolved to."
    ),
    include_samples: bool = typer.Option(
        False, "--include-samples", help="Hunt AWS-generated sample findings too (left out by default)."
    ),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Append rejected records here (JSON Lines: source, file, line, reason)."
    ),
    stats_json: Path | None = typer.Option(None, "--stats-json", help="Write the hunt's statistics as JSON here."),
    open_alerts_flag: bool = typer.Option(
        False, "--open-alerts", help="Turn hits into alerts in the state store, through the rule's throttle."
    ),
    state: Path = typer.Option(
        Path(DEFAULT_STATE), "--state",
        help="SQLite state store for --open-alerts; when it exists, the hunt's time span is noted there too "
        "(it closes the hunting items of the response checklists of alerts inside it).",
    ),
    alerts_out: Path | None = typer.Option(
        None, "--alerts-out", help="With --open-alerts: append each alert created or updated as a JSON line."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="Worker processes of the auto engine, DuckDB's threads (default: every core).", min=1
    ),
    since: str | None = window_opts.SINCE,
    until: str | None = window_opts.UNTIL,
    spark_master: str = SPARK_MASTER,
    spark_remote: str | None = SPARK_REMOTE,
    spark_conf: list[str] = SPARK_CONF,
    org: bool = org_out.READ_ORG,
    role_name: str = org_out.ROLE_NAME,
    session_name: str = org_out.SESSION_NAME,
    external_id: str | None = org_out.EXTERNAL_ID,
    accounts: str | None = org_out.ACCOUNTS,
    exclude_accounts: str | None = org_out.EXCLUDE,
    concurrency: int = org_out.CONCURRENCY,
    profile: str | None = org_out.PROFILE,
) -> None:
    if not (flow or dns or findings):
        fail("nothing to hunt in: give --flow, --dns or --findings")
    window = window_opts.time_window(since, until)
    from minerwatch.allocator import keep_freed_buffers
    from minerwatch.enrich.iocs import bundled, from_rule, load_ioc_file, merge
    from minerwatch.hunt.sweep import HuntOptions, hunt
    from minerwatch.rules.loader import load_rule
    from minerwatch.rules.shipped import RULES_DIR

    # Noted in an existing state store (or the one --open-alerts fills): the span swept closes the hunting items
    # of the response checklists of alerts inside it.
    record_sweep = open_alerts_flag or state.exists()
    try:
        loaded = load_rule(rule or RULES_DIR / HUNT_RULE_NAME)
        sets = [from_rule(loaded)]
        if not no_bundled:
            sets.append(bundled())
        sets += [load_ioc_file(p) for p in ioc or []]
        iocs = merge(*sets)
        groups = {"flow": list(flow or []), "dns": list(dns or []), "findings": list(findings or []),
                  "cloudtrail": list(cloudtrail or [])}  # fmt: skip
        org_results = None
        if org:
            if engine is HuntEngine.spark:
                fail("--org reads S3 inputs with --engine duckdb, python or stream")
            opts = org_out.org_options(role_name, session_name, external_id, accounts, exclude_accounts, concurrency)
            org_results, groups = org_out.org_reads(groups, opts, profile)
        else:
            from minerwatch.sources.org import check_org_paths

            check_org_paths([p for paths in groups.values() for p in paths], org=False)
        options = HuntOptions(
            flow=groups["flow"],
            dns=groups["dns"],
            findings=groups["findings"],
            cloudtrail=groups["cloudtrail"],
            engine="python" if engine is HuntEngine.stream else engine.value,  # type: ignore[arg-type]
            resolved_ips=resolved_ips,
            include_samples=include_samples,
            rejects=str(rejects) if rejects else None,
            threads=threads,
            span=record_sweep,
            window=window if window else None,
            spark_options=spark_options(spark_master, spark_remote, spark_conf) if engine is HuntEngine.spark
            else None,
        )
        keep_freed_buffers()  # before the sweep forks its workers
        result = hunt(iocs, options)
    except MinerWatchError as exc:
        fail(exc)
    _write(result, fmt, out_file)
    _summary(result)
    summary = result.stats.to_json()
    if org_results is not None:
        from minerwatch.sources.org import settle

        for e in result.entities:  # a hit is the account's that its records name
            org_out.count_alert(org_results, {"key": {"accountid": e.account}, "alert_id": e.entity})
        org_results = settle(org_results)
        org_out.read_summary(org_results, "hits")
        summary["accounts"] = org_out.account_results_json(org_results)
    if stats_json:
        stats_json.parent.mkdir(parents=True, exist_ok=True)
        stats_json.write_text(json.dumps(summary, indent=2) + "\n")
    if open_alerts_flag:
        from minerwatch.hunt.alerts import open_alerts

        inputs = [*options.flow, *options.dns, *options.findings]
        try:
            alert_stats = open_alerts(result, loaded, state, inputs, str(alerts_out) if alerts_out else None)
        except MinerWatchError as exc:
            fail(exc)
        _alert_summary(alert_stats, state)
    if record_sweep:
        _record_sweep(result, state)
    if org_results is not None:
        org_out.exit_if_account_failed(org_results)


def _record_sweep(result: HuntResult, state: Path) -> None:
    from minerwatch.alerting.state import StateStore
    from minerwatch.respond.checklist import record_hunt

    fleet = [s for s in (result.stats.flow, result.stats.dns) if s is not None and s.first is not None]
    if not fleet:
        note(f"hunt not noted in {state}: no flow or DNS record with a time was read")
        return
    first = min(s.first for s in fleet if s.first is not None)
    last = max(s.last for s in fleet if s.last is not None)
    store = StateStore(state)
    try:
        record_hunt(store, first, last, {"entities": len(result.entities), "stats": result.stats.to_json()})
    finally:
        store.close()
    note(f"hunt noted in {state}: flow and DNS records from {_iso(first)} to {_iso(last)}")


def _write(result: HuntResult, fmt: HuntFormat, out_file: Path | None) -> None:
    from minerwatch.hunt.output import to_csv_text, to_json_text

    if fmt is HuntFormat.table:
        if out_file is None:
            out.print(_table(result))
            return
        from rich.console import Console

        with open(out_file, "w", encoding="utf-8") as fh:
            Console(file=fh, width=200, soft_wrap=True).print(_table(result))
        return
    text = to_json_text(result) if fmt is HuntFormat.json else to_csv_text(result)
    if out_file is None:
        sys.stdout.write(text)
    else:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(text, encoding="utf-8")


def _table(result: HuntResult) -> object:
    from rich.table import Table

    table = Table("account", "entity", "type", "via", "matched", "flows", "bytes", "queries", "findings",
                  "first_seen", "last_seen")
    for column in table.columns:
        column.overflow = "fold"
    for e in result.entities:
        matched = "\n".join(inert(f"{m.evidence} {m.kind} {m.indicator} ×{m.records}") for m in e.sorted_matches())
        # Log values are attacker data: inert text, never console markup or control sequences.
        table.add_row(
            cell(e.account or "-"),
            cell(e.entity),
            cell(e.entity_type),
            cell(e.mapped_by or "-"),
            cell(matched, multiline=True),
            f"{e.flows:,}",
            f"{e.bytes:,}",
            f"{e.queries:,}",
            f"{e.findings:,}",
            cell(_iso(e.first_seen)),
            cell(_iso(e.last_seen)),
        )
    return table


def _iso(ts: object) -> str:
    from minerwatch.hunt.model import iso

    return iso(ts) or "-"  # type: ignore[arg-type]


def _summary(result: HuntResult) -> None:
    parts = []
    for name, s in result.stats.sources().items():
        records = "?" if s.records is None else f"{s.records:,}"
        engine = f" via {s.engine}" if s.engine else ""
        outside = "" if s.outside_window is None else f", {s.outside_window:,} outside the window"
        parts.append(f"{name}: {records} records in {s.files} files{engine}, {s.matched:,} matched, "
                     f"{s.rejected:,} rejected{outside}")
    note(f"{len(result.entities)} entities matched; " + "; ".join(parts) + f"  ({result.stats.seconds:.2f} s)")
    if result.stats.rejects_file:
        rejected = sum(s.rejected for s in result.stats.sources().values())
        done = "rejects written to" if rejected else "no rejects; rejects file"
        note(f"  {done} {result.stats.rejects_file}")


def _alert_summary(stats: HuntAlertStats, state: Path) -> None:
    note(
        f"alerts: {stats.alerts_new} new, {stats.alerts_updated} updated from {stats.rows} hit rows "
        f"({stats.duplicates} already in {state})"
    )
