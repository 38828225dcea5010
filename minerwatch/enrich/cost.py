"""Cost impact: hours of mining evidence × the instance type's On-Demand hourly price, per instance and alert.

*Mining evidence* is every evidence record of the other sections that carries a ``mining`` interval:

- CPU: each interval of sustained high use (its datapoints' span);
- network: each **accepted** flow record to an IOC address or Stratum port (its ``start``–``end``);
- findings: each ``CryptoCurrency:`` finding on the instance (GuardDuty's ``eventFirstSeen``–``eventLastSeen``);
- DNS: each lookup of an IOC domain — a point in time, so it adds no hours by itself.

*Evidence hours* of an instance = the length of the union of those intervals, clipped to the enrichment window
(overlapping or touching intervals merge; gaps between them are not counted). The estimate is
``evidence hours × hourly price``, with the price from the table (bundled
``minerwatch/catalog/data/ec2_on_demand_prices.csv`` or ``--prices``) for the instance's type — from its
``RunInstances`` event, else from a finding's ``instanceDetails`` — in its region. An unknown type, or a type or
region the table lacks, is said so and left out of the total. The alert's figure is the sum over its instances.

It is an estimate of what the mining cost at list price while there is evidence of it: not the bill (no
discounts, storage, transfer; an instance running without evidence is not counted). Alerts of one instance
share evidence: do not add their figures up.

*Cost Explorer* (``--cost-explorer``): ``GetCostAndUsage`` for the account and the window's days, EC2 compute,
daily, unblended cost and usage grouped by instance type — what was billed, but per type and account, not per
instance.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from minerwatch.alerting.alerts import iso, parse_iso
from minerwatch.catalog.prices import PriceTable
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.sections import ev, make_section

COST = "cost"
EVIDENCE_SECTIONS = ("cpu", "network", "findings", "dns")
EC2_COMPUTE = "Amazon Elastic Compute Cloud - Compute"

Interval = tuple[datetime, datetime, frozenset[str]]


def mining_intervals(ctx: AlertContext, sections: dict[str, dict[str, Any]]) -> dict[str, list[Interval]]:
    """Per instance, the ``mining`` intervals of every evidence record, clipped to the window."""
    out: dict[str, list[Interval]] = {i: [] for i in ctx.instances}
    for name in EVIDENCE_SECTIONS:
        for e in sections.get(name, {}).get("evidence", []):
            span, instance_id = e.get("mining"), e.get("instance_id")
            if not isinstance(span, dict) or instance_id not in out:
                continue
            start = max(parse_iso(span["start"]), ctx.window_start)
            end = min(parse_iso(span["end"]), ctx.window_end)
            if end >= start:
                out[instance_id].append((start, end, frozenset({name})))
    return out


def union(intervals: list[Interval]) -> list[Interval]:
    """Merge overlapping or touching intervals, keeping which sections each merged interval came from."""
    merged: list[Interval] = []
    for start, end, kinds in sorted(intervals, key=lambda x: (x[0], x[1])):
        if merged and start <= merged[-1][1]:
            s, e, k = merged[-1]
            merged[-1] = (s, max(e, end), k | kinds)
        else:
            merged.append((start, end, kinds))
    return merged


def _money(x: float) -> str:
    return f"${x:,.2f}"


def cost_section(
    ctx: AlertContext,
    sections: dict[str, dict[str, Any]],
    prices: PriceTable,
    *,
    cost_explorer: bool = False,
    session: Any = None,
) -> dict[str, Any]:
    per: dict[str, list[Interval]] = mining_intervals(ctx, sections)
    instances: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    total_usd = 0.0
    total_seconds = 0
    unpriced: list[dict[str, str]] = []
    for instance_id, facts in ctx.instances.items():
        raw = per.get(instance_id, [])
        merged = union(raw)
        seconds = int(sum((e - s).total_seconds() for s, e, _ in merged))
        hours = seconds / 3600
        price = prices.price(facts.region, facts.instance_type)
        kinds: dict[str, int] = {}
        for _, _, k in raw:
            for name in k:
                kinds[name] = kinds.get(name, 0) + 1
        entry: dict[str, Any] = {
            "instance_id": instance_id,
            "region": facts.region,
            "instance_type": facts.instance_type,
            "instance_type_from": facts.instance_type_from,
            "hourly_usd": price,
            "evidence_seconds": seconds,
            "evidence_hours": round(hours, 4),
            "evidence_records": kinds,
            "first_evidence": iso(merged[0][0]) if merged else None,
            "last_evidence": iso(merged[-1][1]) if merged else None,
            "intervals": [
                {"start": iso(s), "end": iso(e), "hours": round((e - s).total_seconds() / 3600, 4), "from": sorted(k)}
                for s, e, k in merged
            ],
            "cost_usd": None,
        }
        total_seconds += seconds
        if facts.instance_type is None:
            entry["note"] = "instance type unknown: no RunInstances event or finding gave it"
        elif price is None:
            entry["note"] = (
                f"no price for {facts.instance_type} in {facts.region or 'an unknown region'} in the price table "
                f"({prices.file}, as of {prices.as_of})"
            )
        else:
            entry["cost_usd"] = round(hours * price, 2)
            total_usd += hours * price
        if entry["cost_usd"] is None:
            unpriced.append({"instance_id": instance_id, "reason": entry["note"]})
        instances.append(entry)
        if merged:
            figure = (
                f"{_money(entry['cost_usd'])} ({hours:.2f} h × ${price}/h, {facts.instance_type} in {facts.region})"
                if entry["cost_usd"] is not None
                else f"no estimate: {entry['note']}"
            )
            evidence.append(
                ev(
                    merged[0][0],
                    f"price table {prices.file} (as of {prices.as_of})",
                    f"{instance_id}: {hours:.2f} h of mining evidence {iso(merged[0][0])} – {iso(merged[-1][1])}: "
                    f"{figure}",
                    instance_id=instance_id,
                    evidence_hours=entry["evidence_hours"],
                    hourly_usd=price,
                    cost_usd=entry["cost_usd"],
                )
            )
    summary: dict[str, Any] = {
        "method": "union of mining-evidence intervals (sustained CPU, accepted IOC/Stratum flows, CryptoCurrency "
        "findings) clipped to the window, × On-Demand hourly price of the instance type in its region",
        "price_table": prices.describe(),
        "window": ctx.window_json(),
        "evidence_sections": {name: sections.get(name, {}).get("status", "missing") for name in EVIDENCE_SECTIONS},
        "instances": instances,
        "total_usd": round(total_usd, 2) if len(unpriced) < len(instances) else None,
        "total_hours": round(total_seconds / 3600, 4),
        "unpriced": unpriced,
    }
    summary["cost_explorer"] = _cost_explorer(ctx, session) if cost_explorer else {"status": "not requested"}
    warnings = [
        f"{name} section {sections.get(name, {}).get('status')}: its evidence is not counted"
        for name in EVIDENCE_SECTIONS
        if sections.get(name, {}).get("status") == "unavailable"
    ]
    if total_seconds == 0:
        reason = "no mining evidence with a duration (sustained CPU, accepted pool flows, crypto findings)"
        return make_section(COST, "empty", reason=reason, summary=summary, warnings=warnings)
    if summary["total_usd"] is None:
        headline = f"{total_seconds / 3600:.2f} h of mining evidence; no estimate: " + "; ".join(
            u["reason"] for u in unpriced
        )
    else:
        headline = (
            f"{_money(summary['total_usd'])} at On-Demand list price for {total_seconds / 3600:.2f} h of "
            f"mining evidence (prices as of {prices.as_of})"
        )
        if unpriced:
            headline += f"; {len(unpriced)} instance(s) without a price"
    return make_section(COST, "ok", headline=headline, summary=summary, evidence=evidence, warnings=warnings)


def _cost_explorer(ctx: AlertContext, session: Any) -> dict[str, Any]:
    """Billed EC2 compute cost of the account over the window's days, by instance type; never raises."""
    try:
        if session is None:
            import boto3  # on demand: only --cost-explorer needs it

            session = boto3.Session()
        # Cost Explorer's endpoint is global, served from us-east-1.
        client = session.client("ce", region_name="us-east-1")
        start = ctx.window_start.date()
        end = ctx.window_end.date() + timedelta(days=1)  # End is exclusive
        service = {"Dimensions": {"Key": "SERVICE", "Values": [EC2_COMPUTE]}}
        flt: dict[str, Any] = service
        if ctx.account_id:
            flt = {"And": [service, {"Dimensions": {"Key": "LINKED_ACCOUNT", "Values": [ctx.account_id]}}]}
        request: dict[str, Any] = {
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost", "UsageQuantity"],
            "Filter": flt,
            "GroupBy": [{"Type": "DIMENSION", "Key": "INSTANCE_TYPE"}],
        }
        by_type: dict[str, dict[str, float]] = {}
        days: list[dict[str, Any]] = []
        unit = "USD"
        token: str | None = None
        for _ in range(100):  # pages; a window of days is a handful
            resp = client.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
            for period in resp.get("ResultsByTime", []):
                day_total = 0.0
                for group in period.get("Groups", []):
                    itype = (group.get("Keys") or ["?"])[0]
                    metrics = group.get("Metrics", {})
                    amount = float(metrics.get("UnblendedCost", {}).get("Amount", 0) or 0)
                    unit = metrics.get("UnblendedCost", {}).get("Unit", unit)
                    usage = float(metrics.get("UsageQuantity", {}).get("Amount", 0) or 0)
                    agg = by_type.setdefault(itype, {"cost": 0.0, "usage_hours": 0.0})
                    agg["cost"] += amount
                    agg["usage_hours"] += usage
                    day_total += amount
                days.append(
                    {
                        "start": period.get("TimePeriod", {}).get("Start"),
                        "cost": round(day_total, 2),
                        "estimated": period.get("Estimated"),
                    }
                )
            token = resp.get("NextPageToken")
            if not token:
                break
        alert_types = {f.instance_type for f in ctx.instances.values() if f.instance_type}
        return {
            "status": "ok",
            "request": request,
            "unit": unit,
            "by_instance_type": [
                {
                    "instance_type": t,
                    "cost": round(v["cost"], 2),
                    "usage_hours": round(v["usage_hours"], 2),
                    "alert_instance_type": t in alert_types,
                }
                for t, v in sorted(by_type.items(), key=lambda kv: -kv[1]["cost"])
            ],
            "alert_instance_types_cost": round(sum(v["cost"] for t, v in by_type.items() if t in alert_types), 2),
            "days": days,
            "note": "account-wide EC2 compute cost per instance type over the window's days, not per instance",
        }
    except Exception as exc:  # an optional API call must never fail the section
        return {"status": "unavailable", "reason": f"{type(exc).__name__}: {exc}"}
