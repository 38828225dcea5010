"""The case report of one alert as one JSON-ready dict, built from the state store.

What goes in (every key is always present, so renderers need no guessing):

``report``        version, alert id, when it was generated
``alert``         the alert record, unchanged
``summary``       what, where, since when, severity, status, cost — the facts a reader wants first
``rule``          the rule behind the alert (id, name, file, description, MITRE) or why it was not found
``enriched``      whether the alert has stored enrichment sections
``sections``      the stored enrichment sections (``docs/enrichment.md``), in display order, unchanged
``timeline``      the stored timeline entries
``cpu_chart``     CPU datapoints (or, when none can be had, the sustained intervals) for the chart
``actions``       the audit log of the alert: every call and step the response made
``checklist``     the response steps, each open or closed, from the response plan and journal
``investigation_steps``, ``false_positives``, ``notes``   the rule's own text
``warnings``      what the report could not include and why

Everything is read defensively: an alert never enriched, a rule that cannot be found, a response never run, a
section with an unexpected shape each give a report with a note, never an exception. Values quoted from findings
and logs are kept as they are; escaping is the renderers' job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from minerwatch.alerting.alerts import iso, parse_iso
from minerwatch.alerting.state import StateStore
from minerwatch.aws.session import is_read
from minerwatch.enrich.run import rule_for_alert, stored_enrichment
from minerwatch.errors import InputError, MinerWatchError
from minerwatch.respond.checklist import AUDIT_ACTION as CHECKLIST_ACTION
from minerwatch.respond.checklist import checklist_items
from minerwatch.respond.plan import strip_emphasis
from minerwatch.rules.loader import load_rule
from minerwatch.rules.model import Rule

REPORT_VERSION = 1

MAX_CHART_POINTS = 1500
"""Datapoints kept per instance in the chart; longer series are reduced to per-bucket maxima."""

SECTION_TITLES: dict[str, str] = {
    "launch_context": "Launch context",
    "principal_activity": "Principal activity",
    "persistence": "Persistence",
    "network": "Network (VPC flow logs)",
    "dns": "DNS (Route 53 Resolver)",
    "findings": "GuardDuty findings",
    "config_history": "AWS Config history",
    "inspector": "Amazon Inspector",
    "cpu": "CPU",
    "cost": "Cost impact",
}


def _dig(value: Any, *path: str | int) -> Any:
    """``value[p0][p1]…``, or ``None`` as soon as a step is missing or of the wrong kind."""
    for p in path:
        if isinstance(p, int):
            if not isinstance(value, list) or not -len(value) <= p < len(value):
                return None
        elif not isinstance(value, dict):
            return None
        value = value[p] if isinstance(p, int) else value.get(p)
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def _unique(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v not in (None, "") and v not in out:
            out.append(v)
    return out


def load_report_rule(alert: dict[str, Any], rule_path: str | Path | None) -> tuple[Rule | None, list[str]]:
    """The rule of the alert: ``rule_path`` when given (a load error raises), else the shipped rule with the
    alert's ``rule_id``; with warnings (not found, or an id that differs from the alert's)."""
    warnings: list[str] = []
    if rule_path is not None:
        rule: Rule | None = load_rule(rule_path)
        if rule is not None and rule.id != alert.get("rule_id"):
            warnings.append(f"rule {rule.id!r} from {rule_path} is not the alert's rule {alert.get('rule_id')!r}")
        return rule, warnings
    rule = rule_for_alert(alert)
    if rule is None:
        warnings.append(
            f"rule {alert.get('rule_id')!r} is not among the shipped rules: no checklist, investigation steps or "
            "notes (name the rule document with --rule)"
        )
    return rule, warnings


# -- summary ----------------------------------------------------------------------------------------------


def _instances(alert: dict[str, Any]) -> list[str]:
    key, fields = alert.get("key") or {}, alert.get("fields") or {}
    candidates = [key.get("instance_id"), fields.get("instance_id")]
    candidates += [g.get("instance_id") for g in _list(alert.get("groups")) if isinstance(g, dict)]
    return [c for c in _unique(candidates) if isinstance(c, str)]


def _tags(value: Any) -> list[dict[str, str]]:
    """GuardDuty's ``[{"key", "value"}]`` tags (any case), or a plain mapping, as ``[{"key", "value"}]``."""
    out: list[dict[str, str]] = []
    if isinstance(value, dict):
        return [{"key": str(k), "value": "" if v is None else str(v)} for k, v in value.items()]
    for tag in _list(value):
        if isinstance(tag, dict):
            k = next((tag[x] for x in ("key", "Key") if x in tag), None)
            v = next((tag[x] for x in ("value", "Value") if x in tag), None)
            if k is not None:
                out.append({"key": str(k), "value": "" if v is None else str(v)})
        elif tag is not None:
            out.append({"key": str(tag), "value": ""})
    return out


def _duration_hours(start: Any, end: Any) -> float | None:
    a, b = _instant(start), _instant(end)
    return None if a is None or b is None else round((b - a).total_seconds() / 3600, 2)


def build_summary(alert: dict[str, Any], sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What, where, since when, how severe, what it cost — from the alert and whatever sections exist."""
    fields = alert.get("fields") or {}
    key = alert.get("key") or {}
    launch = _dig(sections, "launch_context", "summary", "launches", 0) or {}
    cost = sections.get("cost") or {}
    cost_instances = [i for i in _list(_dig(cost, "summary", "instances")) if isinstance(i, dict)]
    finding_instances = [i for i in _list(_dig(sections, "findings", "summary", "instances")) if isinstance(i, dict)]
    types = _unique([g.get("type") for g in _list(alert.get("groups")) if isinstance(g, dict)] + [fields.get("type")])
    instance_types = _unique(
        [i.get("instance_type") for i in cost_instances]
        + [launch.get("instance_type")]
        + [i.get("instance_type") for i in finding_instances]
    )
    pool_ip, pool_port = fields.get("mining_pool_ip"), fields.get("mining_port")
    evidence_first = min((x for i in cost_instances if (x := _instant(i.get("first_evidence")))), default=None)
    evidence_last = max((x for i in cost_instances if (x := _instant(i.get("last_evidence")))), default=None)
    finding_severity = fields.get("severity")
    cost_summary = {
        "status": cost.get("status") or "not enriched",
        "total_usd": _dig(cost, "summary", "total_usd"),
        "total_hours": _dig(cost, "summary", "total_hours"),
        "headline": cost.get("headline") or cost.get("reason"),
        "prices_as_of": _dig(cost, "summary", "price_table", "as_of"),
        "warnings": _list(cost.get("warnings")),
    }
    return {
        "what": {
            "rule_name": alert.get("rule_name"),
            "finding_types": types,
            "title": fields.get("title"),
            "description": fields.get("description"),
            "mitre": alert.get("mitre") or {},
        },
        "where": {
            "account_id": key.get("accountid") or fields.get("accountid"),
            "region": fields.get("region") or launch.get("region"),
            "instance_ids": _instances(alert),
            "instance_types": instance_types,
            "ami_id": fields.get("ami_id") or launch.get("image_id"),
            "vpc_id": launch.get("vpc_id") or next((i.get("vpc_id") for i in finding_instances), None),
            "tags": _tags(fields.get("tags")),
            "mining_pool": f"{pool_ip}:{pool_port}" if pool_ip and pool_port else pool_ip,
            "launched_by": launch.get("principal_arn"),
            "launched_at": launch.get("time"),
        },
        "when": {
            "first_seen": alert.get("first_seen"),
            "last_seen": alert.get("last_seen"),
            "alert_hours": _duration_hours(alert.get("first_seen"), alert.get("last_seen")),
            "mining_evidence_first": iso(evidence_first) if evidence_first else None,
            "mining_evidence_last": iso(evidence_last) if evidence_last else None,
        },
        "severity": {
            "severity": alert.get("severity"),
            "priority": alert.get("priority"),
            "finding_severity": finding_severity,
        },
        "status": alert.get("status"),
        "event_count": alert.get("event_count"),
        "finding_ids": _list(alert.get("finding_ids")),
        "cost": cost_summary,
    }


# -- CPU chart --------------------------------------------------------------------------------------------


def _reduce(points: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` points: consecutive buckets, each shown by its highest average (peaks stay visible)."""
    if len(points) <= limit:
        return points
    size = -(-len(points) // limit)
    return [max(points[i : i + size], key=lambda p: p["average"]) for i in range(0, len(points), size)]


def _stored_series(entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Datapoints stored in the cpu section itself (``series``/``points``: ``[{time, average, maximum}]``)."""
    for name in ("series", "points"):
        raw = entry.get(name)
        if isinstance(raw, list) and raw:
            pts = [
                {"time": p["time"], "average": float(p["average"]), "maximum": p.get("maximum")}
                for p in raw
                if isinstance(p, dict) and _instant(p.get("time")) and isinstance(p.get("average"), int | float)
            ]
            if pts:
                return pts
    return None


def _file_series(alert: dict[str, Any], path: str, margin_hours: float) -> dict[str, list[dict[str, Any]]]:
    """Datapoints per instance re-read from a metrics file over the section's window."""
    from minerwatch.enrich.context import AlertContext
    from minerwatch.enrich.cpu import read_metrics_file
    from minerwatch.enrich.sections import RejectLog

    ctx = AlertContext.from_alert(alert, timedelta(hours=margin_hours))
    points, _report = read_metrics_file(path, ctx, RejectLog(None))
    out: dict[str, list[dict[str, Any]]] = {}
    for p in sorted(points, key=lambda p: p.time):
        out.setdefault(p.instance_id, []).append({"time": iso(p.time), "average": p.average, "maximum": p.maximum})
    return out


def build_cpu_chart(
    alert: dict[str, Any], cpu: dict[str, Any] | None, metrics: str | None, warnings: list[str]
) -> dict[str, Any]:
    """What the CPU chart draws: per instance its datapoints (``points``) when they can be had, and always its
    sustained intervals. Datapoints come from the section (``series``), else ``metrics``, else the metrics
    file the section was built from if it is still there; otherwise the chart shows the intervals only."""
    chart: dict[str, Any] = {
        "available": False,
        "threshold": _dig(cpu, "summary", "threshold_percent"),
        "window": _dig(cpu, "summary", "window"),
        "first_seen": alert.get("first_seen"),
        "last_seen": alert.get("last_seen"),
        "points_from": None,
        "instances": [],
    }
    if not cpu or cpu.get("status") != "ok":
        chart["reason"] = (
            "the alert has not been enriched" if not cpu else f"cpu section {cpu.get('status')}: {cpu.get('reason')}"
        )
        return chart
    entries = [i for i in _list(_dig(cpu, "summary", "instances")) if isinstance(i, dict) and i.get("instance_id")]
    series: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        stored = _stored_series(entry)
        if stored:
            series[str(entry["instance_id"])] = stored
    if series:
        chart["points_from"] = "cpu section"
    else:
        source_paths = _list(_dig(cpu, "source", "paths")) if _dig(cpu, "source", "option") == "--metrics" else []
        path = metrics or next((p for p in source_paths if isinstance(p, str) and Path(p).is_file()), None)
        if path is None:
            why = (
                f"metrics file {source_paths[0]} not found from here (pass --metrics)"
                if source_paths
                else "the cpu section keeps no datapoints (read from "
                + str(_dig(cpu, "source", "option") or "an unknown source")
                + "); pass --metrics for the full curve"
            )
            warnings.append(f"CPU chart: sustained intervals only: {why}")
        else:
            margin = _dig(cpu, "summary", "window", "margin_hours")
            try:
                series = _file_series(alert, path, float(margin) if isinstance(margin, int | float) else 24.0)
                chart["points_from"] = f"metrics file {path}"
            except (MinerWatchError, OSError, ValueError) as exc:
                warnings.append(f"CPU chart: sustained intervals only: cannot read {path}: {exc}")
    for entry in entries:
        iid = str(entry["instance_id"])
        points = _reduce(series.get(iid, []), MAX_CHART_POINTS)
        intervals = [
            iv
            for iv in _list(entry.get("sustained_intervals"))
            if isinstance(iv, dict) and _instant(iv.get("start")) and _instant(iv.get("end"))
        ]
        chart["instances"].append(
            {
                "instance_id": iid,
                "points": points,
                "points_total": len(series.get(iid, [])),
                "intervals": intervals,
                "mean_average": entry.get("mean_average"),
                "max_average": entry.get("max_average"),
                "flagged": bool(entry.get("flagged")),
            }
        )
    chart["available"] = any(i["points"] or i["intervals"] for i in chart["instances"])
    if not chart["available"]:
        chart["reason"] = "no datapoints and no sustained interval"
    return chart


# -- actions and checklist --------------------------------------------------------------------------------


def _audit_rows(store: StateStore, alert_id: str, warnings: list[str]) -> list[dict[str, Any]]:
    reader: Callable[[str], list[dict[str, Any]]] | None = getattr(store, "audit_log", None)
    if reader is None:
        warnings.append("this state store has no audit log reader: actions cannot be listed")
        return []
    try:
        return list(reader(alert_id))
    except Exception as exc:  # a report shows what it can; an unreadable log is a note, not a crash
        warnings.append(f"audit log unreadable: {type(exc).__name__}: {exc}")
        return []


def _outcome(result: Any) -> tuple[str | None, str | None]:
    """A step's status, else ``ok`` or the AWS error code of a call, and its message, from an audit ``result``."""
    if not isinstance(result, dict):
        return None, None
    message = result.get("message")
    outcome = result.get("status")
    if not outcome:
        ok = result.get("ok")
        outcome = "ok" if ok is True else result.get("error") or ("error" if ok is False else None)
    return (str(outcome) if outcome else None), (str(message) if message is not None else None)


def build_actions(store: StateStore, alert_id: str, warnings: list[str]) -> dict[str, Any]:
    """The alert's audit entries, each with its time as ISO 8601 and the outcome pulled out of ``result``."""
    entries: list[dict[str, Any]] = []
    for row in _audit_rows(store, alert_id, warnings):
        if not isinstance(row, dict):
            continue
        result = row.get("result")
        request = row.get("request")
        t = row.get("time")
        outcome, message = _outcome(result)
        entries.append(
            {
                "seq": row.get("seq"),
                "time": iso(datetime.fromtimestamp(t, UTC)) if isinstance(t, int | float) else t,
                "actor": row.get("actor"),
                "action": row.get("action"),
                "outcome": outcome,
                "message": message,
                "aws_request_id": row.get("aws_request_id"),
                "region": request.get("region") if isinstance(request, dict) else None,
                "params": request.get("params") if isinstance(request, dict) else None,
                "request": request,
                "result": result,
            }
        )
    kinds = [_kind(e) for e in entries]
    for e, kind in zip(entries, kinds, strict=True):
        e["kind"] = kind
    return {
        "count": len(entries),
        "changed": kinds.count("change"),
        "read_only": kinds.count("read"),
        "failed": kinds.count("failed"),
        "steps": kinds.count("step"),
        "checklist": kinds.count("checklist"),
        "entries": entries,
        "note": None if entries else "no actions taken yet",
    }


def _kind(entry: dict[str, Any]) -> str:
    """``change`` (an AWS call that changed something), ``read`` (a read-only call), ``failed`` (a call that
    failed, so changed nothing), ``step`` (a response step's outcome), ``checklist`` (an item ticked by hand) or
    ``other``."""
    action = str(entry.get("action") or "")
    if action.startswith("step:"):
        return "step"
    if action == CHECKLIST_ACTION:
        return "checklist"
    service, _, operation = action.partition(":")
    if not operation or not service.islower():
        return "other"
    result = entry.get("result")
    if isinstance(result, dict) and result.get("ok") is False:
        return "failed"
    return "read" if is_read(operation) or operation == "AssumeRole" else "change"


def build_checklist(store: StateStore, alert: dict[str, Any], rule: Rule | None, warnings: list[str]) -> dict[str, Any]:
    """The response steps with what is still open (:func:`minerwatch.respond.checklist.checklist_items`)."""
    if rule is None:
        return {"source": None, "items": [], "open": 0, "closed": 0, "note": "no rule: no checklist"}
    items = [i.to_json() for i in checklist_items(store, alert, rule, warnings)]
    n_open = sum(1 for i in items if i["open"])
    return {
        "source": "response plan",
        "items": items,
        "open": n_open,
        "closed": len(items) - n_open,
        "note": None if items else "the rule has no response playbook or recommended actions",
    }


# -- the report -------------------------------------------------------------------------------------------


def _rule_json(rule: Rule | None, alert: dict[str, Any]) -> dict[str, Any]:
    if rule is None:
        return {"found": False, "id": alert.get("rule_id"), "name": alert.get("rule_name")}
    return {
        "found": True,
        "id": rule.id,
        "name": rule.name,
        "path": rule.path,
        "severity": rule.severity,
        "priority": rule.priority,
        "description": rule.description,
        "mitre": dataclasses.asdict(rule.mitre),
    }


def build_report(
    store: StateStore,
    alert_id: str,
    *,
    rule: Rule | None = None,
    rule_path: str | Path | None = None,
    metrics: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The case report of ``alert_id`` (an unambiguous prefix is enough) as a JSON-ready dict.

    ``rule`` (or ``rule_path``) overrides the alert's shipped rule; ``metrics`` is a CPU metrics file for the
    chart's datapoints. Raises :class:`InputError` when there is no such alert, and the loader's
    :class:`RuleError` for a bad ``rule_path``; anything else missing becomes a warning in the report.
    """
    alert = store.get_alert(alert_id)
    if alert is None:
        raise InputError(f"no alert {alert_id!r} in the state store", file=store.path)
    real_id = str(alert["alert_id"])
    warnings: list[str] = []
    if rule is None:
        rule, rule_warnings = load_report_rule(alert, rule_path)
        warnings += rule_warnings
    sections, timeline = stored_enrichment(store, real_id)
    if not sections:
        warnings.append("the alert has not been enriched: run `minerwatch enrich` for context, timeline and cost")
    return {
        "report": {
            "version": REPORT_VERSION,
            "alert_id": real_id,
            "generated_at": iso((now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)),
        },
        "alert": alert,
        "summary": build_summary(alert, sections),
        "rule": _rule_json(rule, alert),
        "enriched": bool(sections),
        "section_titles": {name: SECTION_TITLES.get(name, name) for name in sections},
        "sections": sections,
        "timeline": timeline,
        "cpu_chart": build_cpu_chart(alert, sections.get("cpu"), metrics, warnings),
        "actions": build_actions(store, real_id, warnings),
        "checklist": build_checklist(store, alert, rule, warnings),
        "investigation_steps": [strip_emphasis(s) for s in rule.investigation_steps] if rule else [],
        "false_positives": {
            "considerations": [strip_emphasis(s) for s in rule.false_positives.considerations] if rule else [],
            "tuning": [strip_emphasis(s) for s in rule.false_positives.tuning] if rule else [],
        },
        "notes": [strip_emphasis(s) for s in rule.notes] if rule else [],
        "warnings": warnings,
    }
