"""What enrichment knows about an alert: its instances, time window, and the facts the sections share.

Facts accumulate as sources are read: the GuardDuty findings and the ``RunInstances`` event each give an
instance's type, network interfaces and private addresses; the flow and DNS sections match on those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from minerwatch.alerting.alerts import iso, parse_iso


@dataclass
class InstanceFacts:
    instance_id: str
    region: str | None = None
    account_id: str | None = None
    instance_type: str | None = None
    instance_type_from: str | None = None
    """Which record gave ``instance_type``: ``RunInstances`` (preferred) or ``GuardDuty finding``."""
    enis: set[str] = field(default_factory=set)
    private_ips: set[str] = field(default_factory=set)
    vpc_id: str | None = None
    launch_time: datetime | None = None

    def set_type(self, instance_type: Any, origin: str) -> None:
        # The launch event is authoritative; a finding only fills the gap when there is none.
        if not isinstance(instance_type, str) or not instance_type:
            return
        if self.instance_type is None or (origin == "RunInstances" and self.instance_type_from != "RunInstances"):
            self.instance_type, self.instance_type_from = instance_type, origin

    def add_interface(self, eni: Any, ips: list[Any]) -> None:
        if isinstance(eni, str) and eni.startswith("eni-"):
            self.enis.add(eni)
        for ip in ips:
            if isinstance(ip, str) and ip:
                self.private_ips.add(ip)

    def to_json(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "region": self.region,
            "account_id": self.account_id,
            "instance_type": self.instance_type,
            "instance_type_from": self.instance_type_from,
            "enis": sorted(self.enis),
            "private_ips": sorted(self.private_ips),
            "vpc_id": self.vpc_id,
            "launch_time": iso(self.launch_time) if self.launch_time else None,
        }


def _instance_ids(alert: dict[str, Any]) -> list[str]:
    """The instances an alert is about: its key, its fields, its groups (a rule may group several)."""
    found: list[str] = []
    candidates: list[Any] = [
        (alert.get("key") or {}).get("instance_id"),
        (alert.get("fields") or {}).get("instance_id"),
    ]
    candidates += [g.get("instance_id") for g in alert.get("groups") or [] if isinstance(g, dict)]
    for value in candidates:
        if isinstance(value, str) and value.startswith("i-") and value not in found:
            found.append(value)
    return found


@dataclass
class AlertContext:
    alert: dict[str, Any]
    start: datetime
    """The alert's first_seen."""
    end: datetime
    """The alert's last_seen."""
    window: timedelta
    instances: dict[str, InstanceFacts]
    account_id: str | None
    region: str | None
    finding_ids: frozenset[str]

    @classmethod
    def from_alert(cls, alert: dict[str, Any], window: timedelta) -> AlertContext:
        fields = alert.get("fields") or {}
        key = alert.get("key") or {}
        account = key.get("accountid") or fields.get("accountid")
        region = fields.get("region")
        instances = {
            i: InstanceFacts(i, region if isinstance(region, str) else None, account) for i in _instance_ids(alert)
        }
        return cls(
            alert=alert,
            start=parse_iso(alert["first_seen"]),
            end=parse_iso(alert["last_seen"]),
            window=window,
            instances=instances,
            account_id=account if isinstance(account, str) else None,
            region=region if isinstance(region, str) else None,
            finding_ids=frozenset(alert.get("finding_ids") or ()),
        )

    @property
    def alert_id(self) -> str:
        return str(self.alert["alert_id"])

    @property
    def window_start(self) -> datetime:
        return self.start - self.window

    @property
    def window_end(self) -> datetime:
        return self.end + self.window

    def in_window(self, t: datetime | None) -> bool:
        return t is not None and self.window_start <= t <= self.window_end

    def overlaps_window(self, start: datetime | None, end: datetime | None) -> bool:
        if start is None and end is None:
            return False
        s, e = start or end, end or start
        assert s is not None and e is not None
        return s <= self.window_end and e >= self.window_start

    def ip_owner(self) -> dict[str, str]:
        """Private address → instance id, over every instance of the alert."""
        return {ip: f.instance_id for f in self.instances.values() for ip in f.private_ips}

    def eni_owner(self) -> dict[str, str]:
        return {eni: f.instance_id for f in self.instances.values() for eni in f.enis}

    def window_json(self) -> dict[str, Any]:
        return {
            "start": iso(self.window_start),
            "end": iso(self.window_end),
            "alert_first_seen": iso(self.start),
            "alert_last_seen": iso(self.end),
            "margin_hours": self.window.total_seconds() / 3600,
        }
