"""GuardDuty section, from one pass over ``--findings``: every finding on the alert's instances.

A finding is re-delivered with the same ``id`` and a later ``updatedAt``; deliveries fold into one entry per
finding (first ``createdAt``, latest ``updatedAt``, number of deliveries, the latest ``service.count``). The
alert's own findings are listed too (``in_alert``), since they carry the activity span that the cost estimate
uses; the section is about the *other* ones. Findings outside the window that are not the alert's are left out.

The findings also give facts about the instance — type, network interfaces, private addresses — that the
network and DNS sections match on when CloudTrail does not have the launch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from minerwatch.alerting.alerts import iso, parse_iso
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.sections import SourceRead, ev, make_section, mining, needles_prefilter, unavailable, where
from minerwatch.wording import count

FINDINGS = "findings"
CRYPTO_PREFIX = "CryptoCurrency:"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        return None


@dataclass
class _Finding:
    id: str
    instance_id: str
    doc: dict[str, Any]
    source: str
    updated: datetime
    created: datetime | None
    deliveries: set[str]

    def fold(self, doc: dict[str, Any], source: str, updated: datetime) -> None:
        self.deliveries.add(iso(updated))
        created = _time(doc.get("createdAt"))
        if created and (self.created is None or created < self.created):
            self.created = created
        if updated >= self.updated:
            self.doc, self.source, self.updated = doc, source, updated


def _remote(service: dict[str, Any]) -> dict[str, Any]:
    """Remote address/port and local port of a network finding, whatever its action type."""
    action = _obj(service.get("action"))
    conn = _obj(action.get("networkConnectionAction"))
    if conn:
        return {
            "direction": conn.get("connectionDirection"),
            "remote_ip": _obj(conn.get("remoteIpDetails")).get("ipAddressV4"),
            "remote_port": _obj(conn.get("remotePortDetails")).get("port"),
            "local_port": _obj(conn.get("localPortDetails")).get("port"),
        }
    probes = _obj(action.get("portProbeAction")).get("portProbeDetails")
    if isinstance(probes, list) and probes and isinstance(probes[0], dict):
        first = probes[0]
        return {
            "direction": "INBOUND",
            "remote_ip": _obj(first.get("remoteIpDetails")).get("ipAddressV4"),
            "local_port": _obj(first.get("localPortDetails")).get("port"),
        }
    dns = _obj(action.get("dnsRequestAction"))
    if dns:
        return {"domain": dns.get("domain")}
    return {}


def findings_section(ctx: AlertContext, read: SourceRead | None) -> dict[str, Any]:
    """The findings section; updates ``ctx`` with each instance's type, interfaces and addresses."""
    if read is None:
        return unavailable(FINDINGS, "no --findings given")
    if not ctx.instances:
        return unavailable(FINDINGS, "the alert names no instance")
    folded: dict[str, _Finding] = {}
    for record in read.records(needles_prefilter(list(ctx.instances))):
        doc = record.doc
        details = _obj(_obj(doc.get("resource")).get("instanceDetails"))
        instance_id = details.get("instanceId")
        if instance_id not in ctx.instances:
            continue
        updated = record.flat.get("eventdate")
        if not isinstance(updated, datetime):
            continue
        fid = str(record.flat.get("id"))
        if fid not in folded:
            folded[fid] = _Finding(fid, instance_id, doc, where(record), updated, None, set())
        folded[fid].fold(doc, where(record), updated)
    report = read.report()
    warnings = read.warnings()
    if read.all_rejected():
        return unavailable(FINDINGS, f"every record of --findings was rejected ({report['rejected']})", report)

    # Oldest delivery first, so the latest facts (a moved interface, a resized instance) win.
    for f in sorted(folded.values(), key=lambda f: f.updated):
        details = _obj(_obj(f.doc.get("resource")).get("instanceDetails"))
        facts = ctx.instances[f.instance_id]
        facts.set_type(details.get("instanceType"), "GuardDuty finding")
        facts.region = facts.region or f.doc.get("region")
        for nic in details.get("networkInterfaces") or []:
            nic = _obj(nic)
            ips = [nic.get("privateIpAddress")] + [
                _obj(p).get("privateIpAddress") for p in nic.get("privateIpAddresses") or []
            ]
            facts.add_interface(nic.get("networkInterfaceId"), ips)
            facts.vpc_id = facts.vpc_id or nic.get("vpcId")

    evidence: list[dict[str, Any]] = []
    others: dict[str, int] = {}
    seen_alert: set[str] = set()
    for f in sorted(folded.values(), key=lambda f: (f.created or f.updated, f.id)):
        service = _obj(f.doc.get("service"))
        first = _time(service.get("eventFirstSeen")) or f.created or f.updated
        last = _time(service.get("eventLastSeen")) or f.updated
        in_alert = f.id in ctx.finding_ids
        if not in_alert and not ctx.overlaps_window(min(first, f.created or first), f.updated):
            continue
        ftype = str(f.doc.get("type"))
        crypto = ftype.startswith(CRYPTO_PREFIX)
        if in_alert:
            seen_alert.add(f.id)
        else:
            others[ftype] = others.get(ftype, 0) + 1
        extra: dict[str, Any] = {}
        if crypto:
            # GuardDuty's own span of the activity it saw: evidence of mining hours.
            extra["mining"] = mining(first, max(first, last))
        remote = _remote(service)
        where_to = (
            f" {remote['remote_ip']}:{remote.get('remote_port') or remote.get('local_port')}"
            if remote.get("remote_ip")
            else ""
        )
        label = "alert finding" if in_alert else "other finding"
        evidence.append(
            ev(
                f.created or f.updated,
                f.source,
                f"{f.instance_id}: {label} {ftype} (severity {f.doc.get('severity')}, "
                f"{count(len(f.deliveries), 'delivery')}){where_to}",
                instance_id=f.instance_id,
                finding_id=f.id,
                type=ftype,
                severity=f.doc.get("severity"),
                title=f.doc.get("title"),
                in_alert=in_alert,
                crypto=crypto,
                deliveries=len(f.deliveries),
                created_at=iso(f.created) if f.created else None,
                updated_at=iso(f.updated),
                event_first_seen=iso(first),
                event_last_seen=iso(last),
                service_count=service.get("count"),
                **remote,
                **extra,
            )
        )
    missing = sorted(ctx.finding_ids - seen_alert)
    if missing:
        warnings = [*warnings, f"{len(missing)} of the alert's findings are not in --findings: {', '.join(missing)}"]
    summary = {
        "other_findings": sum(others.values()),
        "other_types": dict(sorted(others.items())),
        "alert_findings": len(seen_alert),
        "instances": [ctx.instances[i].to_json() for i in ctx.instances],
    }
    if not others:
        reason = "no GuardDuty finding on the instance besides the alert's own in the window"
        return make_section(
            FINDINGS, "empty", reason=reason, summary=summary, evidence=evidence, source=report, warnings=warnings
        )
    headline = f"{sum(others.values())} other finding(s): " + ", ".join(f"{t} ×{n}" for t, n in sorted(others.items()))
    return make_section(
        FINDINGS, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
    )
