"""CPU section: ``CPUUtilization`` of the instance over the window, from a metrics file or CloudWatch, and the
intervals of sustained high use.

*Metrics file* (``--metrics``): JSON Lines (``.gz`` too), one datapoint a line, as the scenario writes them::

    {"namespace": "AWS/EC2", "metric": "CPUUtilization", "instance_id": "i-…", "region": "us-east-1",
     "account_id": "…", "timestamp": "2025-03-10T06:00:00Z", "average": 97.1, "maximum": 99.8, "unit": "Percent"}

``timestamp`` is the start of the period. Lines of other metrics are skipped; malformed lines are rejects.

*CloudWatch* (``--cloudwatch``): ``GetMetricStatistics`` for ``AWS/EC2`` ``CPUUtilization`` with the
``InstanceId`` dimension, period 300 s, Average and Maximum, over the window (in pieces of at most 1,440
datapoints, the API's limit), in the instance's region.

*Sustained*: at least ``min_points`` consecutive datapoints (default 3, i.e. 15 minutes at 5-minute periods)
whose average is at or above ``threshold`` (default 80 %). Consecutive means no more than 1.5 periods apart;
a gap (instance stopped, missing data) ends a run. An interval runs from its first datapoint's start to its last
datapoint's end (start + period); each is evidence of mining for that span.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

import orjson

from minerwatch.alerting.alerts import iso, parse_iso
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.sections import RejectLog, ev, make_section, mining, unavailable
from minerwatch.errors import InputError
from minerwatch.sources.records import Reject
from minerwatch.wording import count

CPU = "cpu"
DEFAULT_THRESHOLD = 80.0
DEFAULT_MIN_POINTS = 3
DEFAULT_PERIOD = 300
_MAX_POINTS_PER_CALL = 1440


@dataclass(frozen=True, slots=True)
class Datapoint:
    instance_id: str
    time: datetime
    average: float
    maximum: float | None
    source: str


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def read_metrics_file(path: str, ctx: AlertContext, rejects: RejectLog) -> tuple[list[Datapoint], dict[str, Any]]:
    """The alert's instances' CPU datapoints in the window, and a report of what was read."""
    p = Path(path)
    if not p.is_file():
        raise InputError("metrics file does not exist" if not p.exists() else "not a file", file=path)
    points: list[Datapoint] = []
    report: dict[str, Any] = {
        "option": "--metrics",
        "paths": [path],
        "records_read": 0,
        "accepted": 0,
        "rejected": 0,
        "other_metrics": 0,
    }
    reasons: dict[str, int] = {}

    def reject(line: int, key: str, reason: str, raw: bytes) -> None:
        report["rejected"] += 1
        reasons[key] = reasons.get(key, 0) + 1
        rejects.write("--metrics", Reject(path, line, reason, raw[:500].decode("utf-8", "replace")))

    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            for n, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                report["records_read"] += 1
                try:
                    obj = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    reject(n, "malformed JSON", f"malformed JSON: {exc}", raw)
                    continue
                if not isinstance(obj, dict):
                    reject(n, "not a datapoint", "not a JSON object", raw)
                    continue
                if obj.get("metric", "CPUUtilization") != "CPUUtilization":
                    report["other_metrics"] += 1
                    continue
                instance_id, ts, avg = obj.get("instance_id"), obj.get("timestamp"), _number(obj.get("average"))
                if not isinstance(instance_id, str) or not isinstance(ts, str) or avg is None:
                    reject(n, "not a datapoint", "needs instance_id, timestamp and a numeric average", raw)
                    continue
                try:
                    t = parse_iso(ts)
                except ValueError:
                    reject(n, "bad timestamp", f"bad timestamp {ts[:40]!r}", raw)
                    continue
                report["accepted"] += 1
                if instance_id in ctx.instances and ctx.in_window(t):
                    points.append(Datapoint(instance_id, t, avg, _number(obj.get("maximum")), f"{path}:{n}"))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        # A truncated or corrupt gzip: what was read stays, the rest is one reject.
        report["records_read"] += 1
        reasons["unreadable file"] = reasons.get("unreadable file", 0) + 1
        report["rejected"] += 1
        rejects.write("--metrics", Reject(path, None, f"unreadable file: {exc}"))
    if reasons:
        report["reject_reasons"] = dict(sorted(reasons.items()))
        report["rejects_file"] = rejects.path
    return points, report


def _floor(t: datetime, seconds: int) -> datetime:
    return datetime.fromtimestamp(int(t.timestamp()) // seconds * seconds, UTC)


def cloudwatch_datapoints(ctx: AlertContext, session: Any) -> tuple[list[Datapoint], dict[str, Any]]:
    """CPU datapoints of each instance from CloudWatch ``GetMetricStatistics``."""
    points: list[Datapoint] = []
    calls = 0
    step = timedelta(seconds=DEFAULT_PERIOD * _MAX_POINTS_PER_CALL)
    for instance_id, facts in ctx.instances.items():
        region = facts.region or ctx.region
        client = session.client("cloudwatch", region_name=region) if region else session.client("cloudwatch")
        # Period-aligned bounds, so the datapoints fall on the same 5-minute marks as the instance's own.
        start = _floor(ctx.window_start, DEFAULT_PERIOD)
        stop = _floor(ctx.window_end, DEFAULT_PERIOD) + timedelta(seconds=DEFAULT_PERIOD)
        while start < stop:
            end = min(start + step, stop)
            resp = client.get_metric_statistics(
                Namespace="AWS/EC2",
                MetricName="CPUUtilization",
                Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
                StartTime=start,
                EndTime=end,
                Period=DEFAULT_PERIOD,
                Statistics=["Average", "Maximum"],
            )
            calls += 1
            for dp in resp.get("Datapoints", []):
                avg = _number(dp.get("Average"))
                t = dp.get("Timestamp")
                if avg is None or not isinstance(t, datetime):
                    continue
                source = f"cloudwatch:{region}:AWS/EC2/CPUUtilization/{instance_id}"
                points.append(Datapoint(instance_id, t.astimezone(UTC), avg, _number(dp.get("Maximum")), source))
            start = end
    return points, {"option": "--cloudwatch", "api_calls": calls, "datapoints": len(points)}


def period_of(points: list[Datapoint]) -> int:
    """The datapoints' period in seconds: the median gap between consecutive ones (default 300)."""
    gaps = [(b.time - a.time).total_seconds() for a, b in zip(points, points[1:], strict=False) if b.time > a.time]
    return int(median(gaps)) if gaps else DEFAULT_PERIOD


def sustained(
    points: list[Datapoint], threshold: float, min_points: int, period: int
) -> list[tuple[datetime, datetime, list[Datapoint]]]:
    """Runs of at least ``min_points`` consecutive datapoints with average ≥ ``threshold``."""
    runs: list[tuple[datetime, datetime, list[Datapoint]]] = []
    current: list[Datapoint] = []
    limit = timedelta(seconds=period * 1.5)

    def close() -> None:
        if len(current) >= min_points:
            runs.append((current[0].time, current[-1].time + timedelta(seconds=period), list(current)))

    for p in sorted(points, key=lambda p: p.time):
        if p.average >= threshold and (not current or p.time - current[-1].time <= limit):
            current.append(p)
            continue
        close()
        current = [p] if p.average >= threshold else []
    close()
    return runs


def cpu_section(
    ctx: AlertContext,
    *,
    metrics: str | None,
    cloudwatch: bool,
    session: Any,
    rejects: RejectLog,
    threshold: float = DEFAULT_THRESHOLD,
    min_points: int = DEFAULT_MIN_POINTS,
) -> dict[str, Any]:
    if metrics is None and not cloudwatch:
        return unavailable(CPU, "no --metrics or --cloudwatch given")
    if not ctx.instances:
        return unavailable(CPU, "the alert names no instance")
    if metrics is not None:
        points, report = read_metrics_file(metrics, ctx, rejects)
        if report["rejected"] and not report["accepted"]:
            return unavailable(CPU, f"every record of --metrics was rejected ({report['rejected']})", report)
    else:
        if session is None:
            import boto3  # on demand: only --cloudwatch needs it

            session = boto3.Session()
        points, report = cloudwatch_datapoints(ctx, session)
    warnings = []
    if report.get("rejected"):
        reasons = ", ".join(f"{k} ×{n}" for k, n in report.get("reject_reasons", {}).items())
        warnings.append(f"{report['rejected']} record(s) of --metrics rejected ({reasons})")
    per_instance: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    for instance_id in ctx.instances:
        mine = sorted((p for p in points if p.instance_id == instance_id), key=lambda p: p.time)
        if not mine:
            per_instance.append({"instance_id": instance_id, "datapoints": 0, "flagged": False})
            continue
        period = period_of(mine)
        runs = sustained(mine, threshold, min_points, period)
        intervals = []
        for start, end, run in runs:
            avgs = [p.average for p in run]
            hours = (end - start).total_seconds() / 3600
            mean, peak = sum(avgs) / len(avgs), max(p.maximum if p.maximum is not None else p.average for p in run)
            intervals.append(
                {
                    "start": iso(start),
                    "end": iso(end),
                    "hours": round(hours, 3),
                    "datapoints": len(run),
                    "mean_average": round(mean, 2),
                    "max": round(peak, 2),
                }
            )
            evidence.append(
                ev(
                    start,
                    run[0].source,
                    f"{instance_id}: CPU ≥ {threshold:g} % for {hours:.2f} h ({count(len(run), 'datapoint')}, "
                    f"mean {mean:.1f} %, max {peak:.1f} %)",
                    instance_id=instance_id,
                    end=iso(end),
                    datapoints=len(run),
                    mean_average=round(mean, 2),
                    max=round(peak, 2),
                    mining=mining(start, end),
                )
            )
        avgs = [p.average for p in mine]
        per_instance.append(
            {
                "instance_id": instance_id,
                "datapoints": len(mine),
                "period_seconds": period,
                "first": iso(mine[0].time),
                "last": iso(mine[-1].time),
                "mean_average": round(sum(avgs) / len(avgs), 2),
                "max_average": round(max(avgs), 2),
                "at_or_above_threshold": sum(a >= threshold for a in avgs),
                "flagged": bool(intervals),
                "sustained_intervals": intervals,
            }
        )
    summary = {
        "threshold_percent": threshold,
        "min_consecutive_datapoints": min_points,
        "window": ctx.window_json(),
        "instances": per_instance,
        "flagged": any(i["flagged"] for i in per_instance),
    }
    if not any(i["datapoints"] for i in per_instance):
        reason = f"no CPUUtilization datapoint for {', '.join(ctx.instances)} in the window"
        return make_section(CPU, "empty", reason=reason, summary=summary, source=report, warnings=warnings)
    parts = []
    for i in per_instance:
        if not i["datapoints"]:
            parts.append(f"{i['instance_id']}: no datapoints")
            continue
        hours = sum(x["hours"] for x in i["sustained_intervals"])
        flag = (
            f"sustained ≥ {threshold:g} % for {hours:.2f} h" if i["flagged"] else f"never sustained ≥ {threshold:g} %"
        )
        parts.append(f"{i['instance_id']}: {flag} (mean {i['mean_average']} %, {count(i['datapoints'], 'datapoint')})")
    return make_section(
        CPU, "ok", headline="; ".join(parts), summary=summary, evidence=evidence, source=report, warnings=warnings
    )
