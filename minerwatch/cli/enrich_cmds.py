"""``minerwatch enrich``: correlate an alert with CloudTrail, flow logs, DNS logs, findings, AWS Config, Amazon
Inspector and CPU; cost it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer
from rich.table import Table

from minerwatch.cli.app import DEFAULT_STATE, alert_or_fail, app, cell, err, fail, inert, out
from minerwatch.durations import parse_duration
from minerwatch.errors import MinerWatchError
from minerwatch.wording import count


def parse_window(text: str) -> timedelta:
    """``90m``, ``24h``, ``2d``, ``3600s`` → a timedelta; :class:`typer.BadParameter` otherwise."""
    seconds = parse_duration(text)
    if seconds is None:
        raise typer.BadParameter(f"{text!r}: expected a number and a unit, like 24h, 90m or 2d")
    return timedelta(seconds=seconds)


_ENRICH_HELP = (
    "Enrich an alert: launch context, the launching principal's activity, persistence changes, flows to pools, "
    "pool lookups, other findings, AWS Config changes, Inspector findings, CPU and cost impact, each stored as a "
    "section beside the alert, with a merged timeline (see them with `minerwatch alerts show ID`).\n\n"
    "A source that is not given, or that fails, makes its sections unavailable with the reason; rejected input "
    "records are counted in the section that read them and appended to --rejects. Re-running replaces the sections, "
    "except that a stored section with a result is not replaced by an unavailable one: it is kept, marked stale "
    "with the reason, and the command exits 1 (--refresh replaces it)."
)


@app.command("enrich", help=_ENRICH_HELP)
def enrich_cmd(
    alert_id: str = typer.Argument(..., help="Alert id (an unambiguous prefix is enough)."),
    cloudtrail: list[str] | None = typer.Option(
        None, "--cloudtrail", help="CloudTrail logs: files, folders (S3 layout), .gz, s3://…; repeatable."
    ),
    flow: list[str] | None = typer.Option(None, "--flow", help="VPC flow logs (text or Parquet); repeatable."),
    dns: list[str] | None = typer.Option(None, "--dns", help="Route 53 Resolver query logs; repeatable."),
    findings: list[str] | None = typer.Option(None, "--findings", help="GuardDuty findings; repeatable."),
    metrics: Path | None = typer.Option(
        None, "--metrics", help="CPUUtilization datapoints, JSON Lines (the scenario's metrics/cpu.jsonl format)."
    ),
    cloudwatch: bool = typer.Option(False, "--cloudwatch", help="Read CPUUtilization from CloudWatch instead."),
    cost_explorer: bool = typer.Option(
        False, "--cost-explorer", help="Also ask Cost Explorer for the billed EC2 cost by instance type."
    ),
    config_history: list[str] | None = typer.Option(
        None, "--config-history", help="`aws configservice get-resource-config-history` JSON output; repeatable."
    ),
    aws_config: bool = typer.Option(
        False, "--aws-config", help="Ask AWS Config for the instance's and its security groups' history instead."
    ),
    inspector_findings: list[str] | None = typer.Option(
        None, "--inspector-findings", help="`aws inspector2 list-findings` JSON output; repeatable."
    ),
    inspector: bool = typer.Option(
        False, "--inspector", help="Ask Amazon Inspector for the instance's findings instead."
    ),
    rule: Path | None = typer.Option(None, "--rule", "-r", help="Rule document (default: the alert's shipped rule)."),
    ioc: list[Path] | None = typer.Option(None, "--ioc", help="Extra IOC file (as for `ioc list`); repeatable."),
    window: str = typer.Option("24h", "--window", help="Margin before first_seen and after last_seen: 24h, 90m, 2d."),
    prices: Path | None = typer.Option(None, "--prices", help="Price table CSV (default: the bundled one)."),
    cpu_threshold: float = typer.Option(80.0, "--cpu-threshold", help="CPU percent that counts as high."),
    cpu_points: int = typer.Option(3, "--cpu-points", help="Consecutive high datapoints that make it sustained."),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store."),
    rejects: Path | None = typer.Option(
        None, "--rejects", help="Where rejected input records go. Default: enrich-rejects.jsonl beside the state."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the sections and timeline as JSON."),
    refresh: bool = typer.Option(
        False, "--refresh", help="Replace stored sections even by unavailable ones (sources not given or unreadable)."
    ),
) -> None:
    # Start-up: the enrichment stack (boto3, the rule model) is loaded by the command, not by `--help`.
    from minerwatch.alerting.state import StateStore
    from minerwatch.catalog.prices import load_prices
    from minerwatch.enrich.iocs import IocSet, bundled, default_for_rule, load_ioc_file, merge
    from minerwatch.enrich.run import EnrichSources, enrich_alert, rule_for_alert
    from minerwatch.rules.loader import load_rule

    if metrics is not None and cloudwatch:
        fail("--metrics and --cloudwatch are alternatives: give one")
    if config_history and aws_config:
        fail("--config-history and --aws-config are alternatives: give one")
    if inspector_findings and inspector:
        fail("--inspector-findings and --inspector are alternatives: give one")
    if cpu_points < 1:
        fail("--cpu-points must be at least 1")
    delta = parse_window(window)
    store = StateStore(state)
    alert = alert_or_fail(store, alert_id, state)
    try:
        loaded_rule = load_rule(rule) if rule else None
        iocs: IocSet | None = None
        if ioc:
            base_rule = loaded_rule or rule_for_alert(alert)
            base = default_for_rule(base_rule) if base_rule else bundled()
            iocs = merge(base, *(load_ioc_file(p) for p in ioc))
        price_table = load_prices(prices)
        result = enrich_alert(
            store,
            alert["alert_id"],
            EnrichSources(
                cloudtrail=cloudtrail or None,
                flow=flow or None,
                dns=dns or None,
                findings=findings or None,
                metrics=str(metrics) if metrics else None,
                config_history=config_history or None,
                inspector_findings=inspector_findings or None,
            ),
            rule=loaded_rule,
            window=delta,
            iocs=iocs,
            cloudwatch=cloudwatch,
            cost_explorer=cost_explorer,
            prices=price_table,
            rejects=rejects or state.parent / "enrich-rejects.jsonl",
            cpu_threshold=cpu_threshold,
            cpu_min_points=cpu_points,
            refresh=refresh,
            aws_config=aws_config,
            inspector=inspector,
        )
    except MinerWatchError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        table = Table("section", "status", "what was found")
        for column in table.columns:
            column.overflow = "fold"
        for name, section in result.sections.items():
            text = section["headline"]
            for w in section.get("warnings", []):
                text += f"\n(warning: {w})"
            # Headlines quote log content (user agents, names): inert text, never markup or control sequences.
            status = section["status"] + (" (stale)" if name in result.stale else "")
            table.add_row(cell(name), cell(status), cell(text, multiline=True))
        out.print(f"alert {inert(result.alert_id)}", highlight=False, markup=False)
        out.print(table)
        out.print(
            f"timeline: {count(len(result.timeline), 'entry')} — `minerwatch alerts show {result.alert_id}` shows them",
            highlight=False,
            markup=False,
        )
    for note in result.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    if result.rejected:
        err.print(f"{result.rejected} input record(s) rejected, written to {result.rejects_file}", highlight=False)
    if result.stale:
        for name, reason in result.stale.items():
            since = result.sections[name]["stale"]["since"]
            err.print(
                f"stale: {name} kept from an earlier run (not refreshed since {since}): {reason}",
                highlight=False,
                markup=False,
            )
        err.print("give the missing sources, or --refresh to replace those sections", highlight=False)
        raise typer.Exit(1)
