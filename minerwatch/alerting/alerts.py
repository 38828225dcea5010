"""Alert records (DESIGN §6): the in-memory alert, its stable JSON form, and its OCSF rendering."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

ALERT_KEYS = (
    "alert_id",
    "rule_id",
    "rule_name",
    "severity",
    "priority",
    "mitre",
    "key",
    "first_seen",
    "last_seen",
    "event_count",
    "finding_ids",
    "groups",
    "fields",
    "status",
)


def iso_text(ts: datetime) -> str:
    """ISO 8601 UTC with a trailing Z and millisecond precision when there are fractions (see :func:`iso`)."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    if ts.year >= 1000:
        # isoformat is several times cheaper than strftime and, from year 1000 on, writes the same text
        # (milliseconds truncated); it ends with "+00:00" here.
        return ts.isoformat(timespec="milliseconds" if ts.microsecond else "seconds")[:-6] + "Z"
    if ts.microsecond:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


iso = functools.lru_cache(maxsize=1 << 12)(iso_text)  # bounded: a run's memory must not grow with its input
""":func:`iso_text`, cached: one alert's times are written several times over (its record, its groups, its id),
and formatting costs several times a lookup. Equal instants give equal text whatever their zone, so they may share
an entry. A time written once, such as a matched row's, is better formatted by :func:`iso_text`: a lookup that
misses, in a full cache, costs as much again as the formatting."""


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


_SCALARS = frozenset((str, int, float, bool, type(None)))


def jsonable(value: Any) -> Any:
    """Row values as JSON: timestamps become ISO strings; everything else is already JSON."""
    kind = type(value)
    # Exact types first: rows are mostly strings and numbers, and this runs for every value of every saved alert
    # (scalars inside containers are kept without a call each).
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: v if type(v) in _SCALARS else jsonable(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _SCALARS else jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    """A projected row as JSON. Only flat columns are timestamps, and they sit at the top level; values read from
    the JSON document are JSON already, so the hot path need not walk them."""
    return {k: iso_text(v) if isinstance(v, datetime) else v for k, v in row.items()}


def make_alert_id(rule_id: str, key: dict[str, Any], first_seen: datetime) -> str:
    """Deterministic: the same rule, key and first event time give the same id in every run."""
    material = orjson.dumps([rule_id, jsonable(key), iso(first_seen)], option=orjson.OPT_SORT_KEYS)
    return "mw-" + hashlib.sha256(material).hexdigest()[:20]


@dataclass
class Group:
    values: dict[str, Any]
    count: int
    first_seen: datetime
    last_seen: datetime


@dataclass
class Alert:
    alert_id: str
    rule_id: str
    key: dict[str, Any]
    first_seen: datetime
    last_seen: datetime
    event_count: int = 0
    finding_ids: set[str] = field(default_factory=set)
    groups: dict[str, Group] = field(default_factory=dict)
    fields: dict[str, Any] | bytes = field(default_factory=dict)
    """The latest row, or its JSON text (a row read back from a detect run's spill file: parsed when saved)."""
    latest: tuple[datetime, str] | None = None
    """(eventdate, finding id) of the row ``fields`` came from."""
    status: str = "new"
    header: dict[str, Any] = field(default_factory=dict)
    """rule_name, severity, priority, mitre — copied from the rule when the alert is created."""

    def add(
        self,
        eventdate: datetime,
        finding_id: str,
        row: dict[str, Any] | bytes,
        gkey: str,
        group_values: dict[str, Any] | None = None,
    ) -> None:
        """One more row; ``gkey``: its group values by name as JSON text, which ``group_values`` are (parsed from
        it, when not given, only for a new group)."""
        self.event_count += 1
        self.finding_ids.add(finding_id)
        self.first_seen = min(self.first_seen, eventdate)
        self.last_seen = max(self.last_seen, eventdate)
        group = self.groups.get(gkey)
        if group is None:
            values = orjson.loads(gkey) if group_values is None else group_values
            self.groups[gkey] = Group(values, 1, eventdate, eventdate)
        else:
            group.count += 1
            group.first_seen = min(group.first_seen, eventdate)
            group.last_seen = max(group.last_seen, eventdate)
        order = (eventdate, finding_id)
        if self.latest is None or order >= self.latest:
            self.latest = order
            self.fields = row

    def to_json(self) -> dict[str, Any]:
        groups = sorted(self.groups.values(), key=lambda g: (g.first_seen, orjson.dumps(jsonable(g.values))))
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "rule_name": self.header.get("rule_name"),
            "severity": self.header.get("severity"),
            "priority": self.header.get("priority"),
            "mitre": self.header.get("mitre"),
            "key": jsonable(self.key),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "event_count": self.event_count,
            "finding_ids": sorted(self.finding_ids),
            "groups": [
                {
                    **jsonable(g.values),
                    "count": g.count,
                    "first_seen": iso(g.first_seen),
                    "last_seen": iso(g.last_seen),
                }
                for g in groups
            ],
            "fields": orjson.loads(self.fields) if type(self.fields) is bytes else jsonable(self.fields),
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], latest: tuple[datetime, str] | None) -> Alert:
        alert = cls(
            alert_id=data["alert_id"],
            rule_id=data["rule_id"],
            key=data["key"],
            first_seen=parse_iso(data["first_seen"]),
            last_seen=parse_iso(data["last_seen"]),
            event_count=data["event_count"],
            finding_ids=set(data["finding_ids"]),
            fields=data["fields"],
            latest=latest,
            status=data["status"],
            header={k: data.get(k) for k in ("rule_name", "severity", "priority", "mitre")},
        )
        for g in data["groups"]:
            values = {k: v for k, v in g.items() if k not in ("count", "first_seen", "last_seen")}
            gkey = orjson.dumps(values).decode()
            alert.groups[gkey] = Group(values, g["count"], parse_iso(g["first_seen"]), parse_iso(g["last_seen"]))
        return alert


_OCSF_SEVERITY = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


def to_ocsf(alert: dict[str, Any]) -> dict[str, Any]:
    """Render an alert record as an OCSF 1.x Detection Finding (class 2004)."""

    def ms(text: str) -> int:
        return int(parse_iso(text).timestamp() * 1000)

    fields = alert.get("fields") or {}
    key = alert.get("key") or {}
    mitre = alert.get("mitre") or {}
    resource_uid = key.get("instance_id") or key.get("resource_id") or next(iter(key.values()), None)
    activity = 1 if alert["status"] == "new" else 2
    sev = _OCSF_SEVERITY.get(str(alert.get("severity")).lower(), 99)
    return {
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity,
        "activity_name": "Create" if activity == 1 else "Update",
        "type_uid": 2004 * 100 + activity,
        "severity_id": sev,
        "severity": str(alert.get("severity", "")).capitalize(),
        "status_id": {"new": 1, "updated": 1, "acknowledged": 2, "closed": 4}.get(alert["status"], 99),
        "status": alert["status"].capitalize(),
        "time": ms(alert["last_seen"]),
        "count": alert["event_count"],
        "message": fields.get("title") or alert.get("rule_name"),
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "MinerWatch", "vendor_name": "MinerWatch"},
            "uid": alert["alert_id"],
        },
        "finding_info": {
            "uid": alert["alert_id"],
            "title": alert.get("rule_name"),
            "desc": fields.get("description"),
            "first_seen_time": ms(alert["first_seen"]),
            "last_seen_time": ms(alert["last_seen"]),
            "types": sorted({g.get("type") for g in alert.get("groups", []) if g.get("type")}),
            "related_events": [{"uid": fid, "product_uid": "aws-guardduty"} for fid in alert["finding_ids"]],
            "analytic": {"uid": alert["rule_id"], "name": alert.get("rule_name"), "type_id": 1, "type": "Rule"},
            "attacks": [
                {"tactic": {"uid": t["id"], "name": t["name"]}, "technique": {"uid": tq["id"], "name": tq["name"]}}
                for t in mitre.get("tactics", [])
                for tq in mitre.get("techniques", [])
            ],
        },
        "cloud": {"provider": "AWS", "account": {"uid": key.get("accountid")}, "region": fields.get("region")},
        "resources": [{"uid": resource_uid, "cloud_partition": "aws", "region": fields.get("region")}],
        "unmapped": {"priority": alert.get("priority"), "key": key, "groups": alert.get("groups")},
    }
