"""The GuardDuty sweep: findings that name an IOC, per affected resource.

A finding matches when one of these values is an indicator:

- ``service.action.networkConnectionAction.remoteIpDetails.ipAddressV4`` (and ``ipAddressV6``);
- ``service.action.dnsRequestAction.domain``, on label boundaries;
- ``service.action.networkConnectionAction.remotePortDetails.port`` when the connection is ``OUTBOUND``
  (inbound connections come *from* that port on the attacker's side: no sign of mining).

A finding re-sent with a later ``updatedAt`` is one finding: it is counted once, from its earliest
``createdAt`` (or ``service.eventFirstSeen``) to its latest ``updatedAt`` (or ``service.eventLastSeen``).
AWS-generated sample findings are left out unless asked for. Every finding, matching or not, tells the
instance map which ENIs and private addresses its instance has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from minerwatch.catalog.tables import GUARDDUTY
from minerwatch.enrich.iocs import IocHit, IocSet
from minerwatch.hunt.mapping import InstanceMap
from minerwatch.hunt.model import SourceStats
from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.timewindow import TimeWindow


@dataclass
class FindingHit:
    """One finding (by id) and the indicators it names."""

    account: str
    region: str | None
    finding_id: str
    finding_type: str
    instance_id: str | None
    resource_id: str | None
    hits: dict[tuple[str, str], IocHit] = field(default_factory=dict)
    first: datetime | None = None
    last: datetime | None = None


def sweep_findings(
    paths: Sequence[str],
    iocs: IocSet,
    stats: SourceStats,
    imap: InstanceMap,
    on_reject: Callable[[Reject], None] | None = None,
    include_samples: bool = False,
    s3_client: Any | None = None,
    window: TimeWindow | None = None,
) -> list[FindingHit]:
    """Findings naming an IOC, by id; with ``window``, only deliveries whose event time (``updatedAt``, else
    ``createdAt``: ``eventdate``, as ``detect`` reads it) lies in it count (the others are counted in
    ``stats.outside_window`` and tie no ENI to an instance)."""
    read = ReadStats()
    window = window if window else None
    found: dict[str, FindingHit] = {}

    def reject(rej: Reject) -> None:
        stats.reject(rej.reason)
        if on_reject is not None:
            on_reject(rej)

    for record in read_guardduty(list(paths), on_reject=reject, stats=read, s3_client=s3_client):
        doc = record.doc
        if window is not None and not window.holds(record.flat[GUARDDUTY.time_column]):
            stats.outside(1)
            continue
        if record.sample and not include_samples:
            stats.skipped += 1
            continue
        imap.add_finding(doc)
        hits = _hits(doc, iocs)
        if not hits:
            continue
        stats.matched += 1
        fid = record.flat["id"]
        hit = found.get(fid)
        if hit is None:
            details = _obj(_obj(doc.get("resource")).get("instanceDetails"))
            instance = details.get("instanceId") if isinstance(details.get("instanceId"), str) else None
            hit = found[fid] = FindingHit(
                record.flat["accountid"],
                record.flat.get("region"),
                fid,
                record.flat["type"],
                instance,
                _resource_id(doc),
            )
        for h in hits:
            hit.hits.setdefault((h.kind, h.indicator), h)
        first, last = _times(doc, record.flat["eventdate"])
        hit.first = first if hit.first is None or (first is not None and first < hit.first) else hit.first
        hit.last = last if hit.last is None or (last is not None and last > hit.last) else hit.last
    stats.files += read.files
    stats.records = (stats.records or 0) + read.records_read
    return list(found.values())


def _hits(doc: dict[str, Any], iocs: IocSet) -> list[IocHit]:
    action = _obj(_obj(doc.get("service")).get("action"))
    out: list[IocHit] = []
    conn = _obj(action.get("networkConnectionAction"))
    remote = _obj(conn.get("remoteIpDetails"))
    for key in ("ipAddressV4", "ipAddressV6"):
        value = remote.get(key)
        if isinstance(value, str) and (hit := iocs.match_ip(value)) is not None:
            out.append(hit)
    if conn.get("connectionDirection") == "OUTBOUND":
        port = _obj(conn.get("remotePortDetails")).get("port")
        if isinstance(port, int) and (hit := iocs.match_port(port)) is not None:
            out.append(hit)
    domain = _obj(action.get("dnsRequestAction")).get("domain")
    if isinstance(domain, str) and (hit := iocs.match_domain(domain)) is not None:
        out.append(hit)
    return out


def _resource_id(doc: dict[str, Any]) -> str | None:
    """What a finding is about when it is not an instance: a function, cluster, task, access key or bucket."""
    resource = _obj(doc.get("resource"))
    for section, key in (
        ("lambdaDetails", "functionArn"),
        ("ecsClusterDetails", "arn"),
        ("eksClusterDetails", "arn"),
        ("containerDetails", "id"),
        ("accessKeyDetails", "accessKeyId"),
    ):
        value = _obj(resource.get(section)).get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _times(doc: dict[str, Any], eventdate: datetime) -> tuple[datetime | None, datetime | None]:
    from minerwatch.alerting.alerts import parse_iso

    service = _obj(doc.get("service"))
    first: datetime | None = None
    for value in (service.get("eventFirstSeen"), doc.get("createdAt")):
        if isinstance(value, str):
            try:
                first = parse_iso(value)
                break
            except ValueError:
                continue
    last = eventdate
    value = service.get("eventLastSeen")
    if isinstance(value, str):
        try:
            last = max(last, parse_iso(value))
        except ValueError:
            pass
    return first or eventdate, last


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
