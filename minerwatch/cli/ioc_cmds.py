"""Commands about indicators of compromise: ``ioc list``, ``ioc check``."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from minerwatch.cli.app import app, cell, fail, out
from minerwatch.errors import MinerWatchError
from minerwatch.rules.shipped import DEFAULT_RULE

if TYPE_CHECKING:
    from minerwatch.enrich.iocs import IocSet

ioc_app = typer.Typer(
    help="Indicators of compromise: mining-pool domains, IPs/CIDRs and stratum ports.", no_args_is_help=True
)
app.add_typer(ioc_app, name="ioc")


class KindFilter(StrEnum):
    domain = "domain"
    ip = "ip"
    port = "port"


_RULE_HELP = "Rule document whose IOCs to use (default: the shipped seed rule)."
_IOC_HELP = "IOC file (plain text, one value a line, or CSV with type,value[,description]); repeatable."
_NO_BUNDLED_HELP = "Leave out the bundled mining-pool domains and default stratum ports."


def _load_set(rule: Path | None, ioc_files: list[Path] | None, use_bundled: bool) -> IocSet:
    # Start-up: the IOC sets need the rule model and its parsers (Markdown, YAML), which `--help` does not.
    from minerwatch.enrich.iocs import bundled, from_rule, load_ioc_file, merge
    from minerwatch.rules.loader import load_rule

    try:
        sets = [from_rule(load_rule(rule or DEFAULT_RULE))]
        if use_bundled:
            sets.append(bundled())
        sets += [load_ioc_file(p) for p in ioc_files or []]
    except MinerWatchError as exc:
        fail(exc)
    return merge(*sets)


@ioc_app.command("list")
def ioc_list(
    rule: Path | None = typer.Option(None, "--rule", help=_RULE_HELP),
    ioc: list[Path] | None = typer.Option(None, "--ioc", help=_IOC_HELP),
    kind: KindFilter | None = typer.Option(None, "--kind", help="Only this kind ('ip' includes CIDRs)."),
    no_bundled: bool = typer.Option(False, "--no-bundled", help=_NO_BUNDLED_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print entries and counts as JSON."),
) -> None:
    """List the indicators in effect: the rule's IOCs, the bundled ones and any IOC files, with their source."""
    from minerwatch.enrich.iocs import IocSet

    iocs = _load_set(rule, ioc, not no_bundled)
    if kind is not None:
        kinds = ("ip", "cidr") if kind is KindFilter.ip else (kind.value,)
        iocs = IocSet(tuple(iocs.of_kind(*kinds)))  # type: ignore[arg-type]
    counts = iocs.counts()
    if as_json:
        print(json.dumps({"entries": [e.to_json() for e in iocs], "counts": counts}, indent=2, ensure_ascii=False))
        return
    table = Table("kind", "value", "source")
    for e in iocs:
        table.add_row(cell(e.kind), cell(e.value), cell(e.source))
    out.print(table)
    n, d = counts["entries"], counts["distinct"]
    out.print(
        f"{len(iocs)} entries: {n['domain']} domains, {n['ip']} IPs/CIDRs, {n['port']} ports "
        f"(distinct: {d['domain']} domains, {d['ip']} IPs/CIDRs, {d['port']} ports)",
        highlight=False,
        markup=False,
    )


_CHECK_HELP = (
    "Check values against the indicators: for each, whether it matches, which indicator and its source.\n\n"
    "Domains match on label boundaries (xmr.nanopool.org matches nanopool.org, notnanopool.org does not); "
    "IPs match exact addresses and CIDR networks; host:port and URLs are checked as host and port.\n\n"
    "Exit status: 0 if any value matched, 1 if none did, 2 on an error (unreadable rule or IOC file)."
)


@ioc_app.command("check", help=_CHECK_HELP)
def ioc_check(
    values: list[str] = typer.Argument(..., help="Domains, IPs, ports, host:port or URLs to check."),
    rule: Path | None = typer.Option(None, "--rule", help=_RULE_HELP),
    ioc: list[Path] | None = typer.Option(None, "--ioc", help=_IOC_HELP),
    no_bundled: bool = typer.Option(False, "--no-bundled", help=_NO_BUNDLED_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per value."),
) -> None:
    """Check values against the indicators (see --help for matching rules and exit status)."""
    iocs = _load_set(rule, ioc, not no_bundled)
    any_hit = False
    for value in values:
        hits = iocs.check(value)
        any_hit = any_hit or bool(hits)
        if as_json:
            print(json.dumps({"value": value, "match": bool(hits), "hits": [h.to_json() for h in hits]}))
            continue
        if not hits:
            out.print(f"no match  {value}", highlight=False, markup=False)
        for h in hits:
            part = f" ({h.value})" if h.value != value else ""
            others = f" (also {', '.join(h.sources[1:])})" if len(h.sources) > 1 else ""
            out.print(
                f"MATCH     {value}{part}  {h.kind} {h.indicator}  source {h.source}{others}",
                highlight=False,
                markup=False,
            )
    raise typer.Exit(0 if any_hit else 1)
