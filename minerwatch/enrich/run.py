"""Enrich one alert: read each log source once, build every section in isolation, store them with the timeline.

Order (each step may use facts the earlier ones found): GuardDuty findings (instance type, interfaces,
addresses) → CloudTrail (launch, principal, persistence; the launch's interfaces and addresses) → DNS (IOC
lookups and the addresses they resolved to) → flows (to IOC addresses, resolved pool addresses, Stratum ports)
→ AWS Config history (linked to the CloudTrail events) → Amazon Inspector → CPU → cost → timeline.

Isolation: every step runs in its own ``try``; an exception makes that step's sections ``unavailable`` with the
reason and the others go on. A source that was not given makes its sections ``unavailable`` ("no --flow given");
a source with rejects keeps its sections and says how many records were rejected and where they went. The alert
record itself is never modified: sections are stored beside it (``StateStore.save_enrichment``), all in one
transaction, replacing those of an earlier run — except that a section this run could only make ``unavailable``
(its source not given, missing or unreadable) does not replace a stored section that had a result: the stored one
is kept, marked ``stale`` with the reason, and the run reports it (``refresh=True`` replaces it on purpose).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from minerwatch.alerting.alerts import iso
from minerwatch.alerting.state import StateStore
from minerwatch.catalog.prices import PriceTable, load_prices
from minerwatch.catalog.tables import CLOUDTRAIL, GUARDDUTY, ROUTE53RESOLVER, VPCFLOW
from minerwatch.enrich.config_history import CONFIG, config_section
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.cost import COST, cost_section
from minerwatch.enrich.cpu import CPU, DEFAULT_MIN_POINTS, DEFAULT_THRESHOLD, cpu_section
from minerwatch.enrich.dns import DNS, dns_section
from minerwatch.enrich.findings import FINDINGS, findings_section
from minerwatch.enrich.inspector import INSPECTOR, inspector_section
from minerwatch.enrich.iocs import IocSet, bundled, default_for_rule
from minerwatch.enrich.network import NETWORK, network_section
from minerwatch.enrich.sections import SECTION_ORDER, TIMELINE, RejectLog, SourceRead, unavailable
from minerwatch.enrich.timeline import build_timeline, timeline_section
from minerwatch.enrich.trail import LAUNCH, PERSISTENCE, PRINCIPAL, cloudtrail_sections
from minerwatch.errors import InputError, MinerWatchError
from minerwatch.rules.model import Rule
from minerwatch.rules.shipped import shipped_rule


@dataclass
class EnrichSources:
    """Where each log source is; ``None`` means not given (its sections are unavailable)."""

    cloudtrail: Sequence[str] | None = None
    flow: Sequence[str] | None = None
    dns: Sequence[str] | None = None
    findings: Sequence[str] | None = None
    metrics: str | None = None
    config_history: Sequence[str] | None = None
    """``aws configservice get-resource-config-history`` output files."""
    inspector_findings: Sequence[str] | None = None
    """``aws inspector2 list-findings`` output files."""


@dataclass
class EnrichmentResult:
    alert: dict[str, Any]
    sections: dict[str, dict[str, Any]]
    timeline: list[dict[str, Any]]
    rejects_file: str | None = None
    rejected: int = 0
    notes: list[str] = field(default_factory=list)
    stale: dict[str, str] = field(default_factory=dict)
    """Sections kept from an earlier run because this one could not refresh them → why."""

    @property
    def alert_id(self) -> str:
        return str(self.alert["alert_id"])

    def statuses(self) -> dict[str, str]:
        return {name: s["status"] for name, s in self.sections.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "sections": self.sections,
            "timeline": self.timeline,
            "rejected": self.rejected,
            "rejects_file": self.rejects_file if self.rejected else None,
            "notes": self.notes,
            "stale": self.stale,
        }


def keep_stale(
    sections: dict[str, dict[str, Any]], stored: dict[str, dict[str, Any]], names: Sequence[str], now: str
) -> dict[str, str]:
    """Put back each stored section of ``names`` that had a result where this run has only ``unavailable``,
    marked ``stale: {reason, since}`` (``since``: when it first could not be refreshed). Returns name → reason."""
    kept: dict[str, str] = {}
    for name in names:
        new, old = sections.get(name), stored.get(name)
        if not new or not old or new.get("status") != "unavailable" or old.get("status") == "unavailable":
            continue
        reason = str(new.get("reason") or "unavailable")
        since = (old.get("stale") or {}).get("since") or now
        sections[name] = {**old, "stale": {"reason": reason, "since": since}}
        kept[name] = reason
    return kept


def rule_for_alert(alert: dict[str, Any]) -> Rule | None:
    """The shipped rule whose id is the alert's ``rule_id``."""
    return shipped_rule(alert.get("rule_id"))


def _failure(exc: BaseException) -> str:
    if isinstance(exc, MinerWatchError):
        return exc.format().splitlines()[0]
    return f"enricher failed: {type(exc).__name__}: {exc}"


def enrich_alert(
    store: StateStore,
    alert_id: str,
    sources: EnrichSources,
    rule: Rule | None = None,
    window: timedelta = timedelta(hours=24),
    iocs: IocSet | None = None,
    cloudwatch: bool = False,
    cost_explorer: bool = False,
    session: Any = None,
    *,
    prices: PriceTable | None = None,
    rejects: str | Path | None = None,
    cpu_threshold: float = DEFAULT_THRESHOLD,
    cpu_min_points: int = DEFAULT_MIN_POINTS,
    refresh: bool = False,
    aws_config: bool = False,
    inspector: bool = False,
) -> EnrichmentResult:
    """Enrich the alert ``alert_id`` (an unambiguous prefix is enough) and store the sections and timeline.

    ``iocs`` defaults to the alert's rule's IOCs plus the bundled ones (``rule`` or the shipped rule with the
    alert's ``rule_id``). ``aws_config`` / ``inspector`` ask those services when their files are not given.
    ``session`` is a ``boto3.Session`` for ``cloudwatch`` / ``cost_explorer`` / ``aws_config`` / ``inspector`` (default:
    a new one; ``AWS_ENDPOINT_URL`` points it elsewhere). ``rejects`` is the file rejected input records are
    appended to. A stored section with a result is not replaced by an ``unavailable`` one unless ``refresh``: it is
    kept and marked stale (``EnrichmentResult.stale``). Raises :class:`InputError` if there is no such alert; never
    for a source's problems.
    """
    alert = store.get_alert(alert_id)
    if alert is None:
        raise InputError(f"no alert {alert_id!r} in the state store", file=store.path)
    ctx = AlertContext.from_alert(alert, window)
    notes: list[str] = []
    if iocs is None:
        rule = rule or rule_for_alert(alert)
        if rule is None:
            notes.append(f"rule {alert.get('rule_id')!r} not found among the shipped rules: bundled IOCs only")
            iocs = bundled()
        else:
            iocs = default_for_rule(rule)
    if not ctx.instances:
        notes.append("the alert names no EC2 instance: instance sections are unavailable")
    reject_log = RejectLog(str(rejects) if rejects else None)
    sections: dict[str, dict[str, Any]] = {}
    stored = {} if refresh else store.enrichments(alert["alert_id"])
    now = iso(datetime.now(UTC))

    def run(names: tuple[str, ...], step: Callable[[], dict[str, dict[str, Any]]]) -> None:
        try:
            sections.update(step())
        except Exception as exc:  # a failing enricher degrades its sections, never the alert
            for n in names:
                sections[n] = unavailable(n, _failure(exc))

    def read(option: str, table: str, paths: Sequence[str] | None) -> SourceRead | None:
        return SourceRead(option, table, list(paths), reject_log) if paths else None

    run((FINDINGS,), lambda: {FINDINGS: findings_section(ctx, read("--findings", GUARDDUTY.name, sources.findings))})
    run(
        (LAUNCH, PRINCIPAL, PERSISTENCE),
        lambda: cloudtrail_sections(ctx, read("--cloudtrail", CLOUDTRAIL.name, sources.cloudtrail)),
    )
    resolved: dict[str, str] = {}

    def dns_step() -> dict[str, dict[str, Any]]:
        section, found = dns_section(ctx, read("--dns", ROUTE53RESOLVER.name, sources.dns), iocs)
        resolved.update(found)
        return {DNS: section}

    run((DNS,), dns_step)
    run((NETWORK,), lambda: {NETWORK: network_section(ctx, read("--flow", VPCFLOW.name, sources.flow), iocs, resolved)})
    run(
        (CONFIG,),
        lambda: {
            CONFIG: config_section(
                ctx,
                sections,
                files=list(sources.config_history or []),
                api=aws_config,
                session=session,
                rejects=reject_log,
            )
        },
    )
    run(
        (INSPECTOR,),
        lambda: {
            INSPECTOR: inspector_section(
                ctx, files=list(sources.inspector_findings or []), api=inspector, session=session, rejects=reject_log
            )
        },
    )
    run(
        (CPU,),
        lambda: {
            CPU: cpu_section(
                ctx,
                metrics=sources.metrics,
                cloudwatch=cloudwatch,
                session=session,
                rejects=reject_log,
                threshold=cpu_threshold,
                min_points=cpu_min_points,
            )
        },
    )
    # Kept sections count for the cost and the timeline as they did before.
    stale = keep_stale(sections, stored, [n for n in SECTION_ORDER if n != COST], now)
    price_table = prices
    run(
        (COST,),
        lambda: {
            COST: cost_section(
                ctx, sections, price_table or load_prices(), cost_explorer=cost_explorer, session=session
            )
        },
    )
    stale.update(keep_stale(sections, stored, [COST], now))
    reject_log.close()
    ordered = {name: sections[name] for name in SECTION_ORDER}
    timeline = timeline_section(alert, ordered)
    store.begin()
    try:
        for name, data in ordered.items():
            store.save_enrichment(alert["alert_id"], name, data)
        store.save_enrichment(alert["alert_id"], TIMELINE, timeline)
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return EnrichmentResult(
        alert=alert,
        sections=ordered,
        timeline=timeline["entries"],
        rejects_file=reject_log.path,
        rejected=reject_log.count,
        notes=notes,
        stale=stale,
    )


def stored_enrichment(store: StateStore, alert_id: str) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The stored sections (in display order) and timeline of an alert; both empty if it was never enriched."""
    data = store.enrichments(alert_id)
    sections = {name: data[name] for name in SECTION_ORDER if name in data}
    sections.update({k: v for k, v in data.items() if k not in sections and k != TIMELINE})
    if not sections:
        return {}, []
    timeline = data.get(TIMELINE, {}).get("entries")
    if timeline is None:
        alert = store.get_alert(alert_id) or {"alert_id": alert_id}
        timeline = build_timeline(alert, sections)
    return sections, timeline
