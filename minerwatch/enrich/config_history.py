"""AWS Config section: the configuration history of the instance and of its security groups, as a timeline of
changes a responder acts on — a security group opened to the internet, the instance type, instance profile,
key pair or IMDS setting changed, user data replaced.

*Source*: ``--config-history FILE`` (the JSON ``aws configservice get-resource-config-history`` prints, for
``AWS::EC2::Instance`` and ``AWS::EC2::SecurityGroup``), or ``--aws-config``: ``GetResourceConfigHistory`` for the
instance, then for every security group it had, in the instance's region — the recorded history up to the end of
the window, newest first, at most :data:`MAX_ITEMS` configuration items per resource.

*Changes* are diffs between consecutive configuration items of one resource (oldest first). The first item of a
resource has nothing to diff against: it is listed as ``first_recorded``, and a security group that already let
the internet in at that point is reported as such. Config's items do not carry user data; a change whose
``relatedEvents`` name a CloudTrail event the persistence section found as a user-data modification is reported as
``user_data_changed``. ``relatedEvents`` are linked to the CloudTrail sections' evidence by event id (who made
the change), when ``--cloudtrail`` has them.

*Unavailable*: not given; Config refusing (access denied), having no recorder in the region, or not having
recorded the instance (the reason then says whether the recorder is off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from minerwatch.alerting.alerts import iso
from minerwatch.enrich.awsread import (
    Item,
    client,
    error_code,
    file_warnings,
    instant,
    read_cli_output,
    refusal,
    session_or_default,
)
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.sections import RejectLog, ev, make_section, unavailable
from minerwatch.enrich.trail import LAUNCH, PERSISTENCE, PRINCIPAL

CONFIG = "config_history"
INSTANCE_TYPE = "AWS::EC2::Instance"
SG_TYPE = "AWS::EC2::SecurityGroup"
MAX_ITEMS = 500
WORLD = frozenset({"0.0.0.0/0", "::/0"})
_CONTEXT = frozenset({"first_recorded", "state_changed", "security_group_rule_removed", "deleted"})
"""Kinds listed for context, not counted as changes a responder has to look at."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass
class ConfigItem:
    resource_type: str
    resource_id: str
    time: datetime
    status: str
    configuration: dict[str, Any]
    related_events: list[str]
    relationships: list[dict[str, Any]]
    source: str
    region: str | None


def parse_item(item: Item) -> ConfigItem | str:
    """A configuration item, or why it cannot be used."""
    doc = item.doc
    rtype, rid = doc.get("resourceType"), doc.get("resourceId")
    if not isinstance(rtype, str) or not isinstance(rid, str):
        return "configuration item without resourceType/resourceId"
    t = instant(doc.get("configurationItemCaptureTime"))
    if t is None:
        return "configuration item without a configurationItemCaptureTime"
    raw = doc.get("configuration")
    if isinstance(raw, str) and raw:
        # Config gives the configuration as a JSON string (the resource's Describe output).
        try:
            configuration = _obj(orjson.loads(raw))
        except orjson.JSONDecodeError:
            return "configuration is not JSON"
    else:
        configuration = _obj(raw)
    events = [e for e in _list(doc.get("relatedEvents")) if isinstance(e, str) and e]
    return ConfigItem(
        rtype, rid, t, str(doc.get("configurationItemStatus") or "OK"), configuration, events,
        [r for r in _list(doc.get("relationships")) if isinstance(r, dict)], item.source,
        doc.get("awsRegion") if isinstance(doc.get("awsRegion"), str) else None,
    )  # fmt: skip


# -- diffs -------------------------------------------------------------------------------------------------


def _ranges(perm: dict[str, Any]) -> list[str]:
    """The sources/destinations of one ``ipPermissions`` entry, whatever shape Config recorded."""
    out: list[str] = []
    for r in _list(perm.get("ipRanges")):  # older items: plain strings
        out.append(r if isinstance(r, str) else str(_obj(r).get("cidrIp") or ""))
    out += [str(_obj(r).get("cidrIp") or "") for r in _list(perm.get("ipv4Ranges"))]
    out += [str(_obj(r).get("cidrIpv6") or "") for r in _list(perm.get("ipv6Ranges"))]
    out += [str(_obj(g).get("groupId") or "") for g in _list(perm.get("userIdGroupPairs"))]
    out += [str(_obj(p).get("prefixListId") or "") for p in _list(perm.get("prefixListIds"))]
    return sorted({r for r in out if r})


def port_text(protocol: Any, start: Any, end: Any) -> str:
    proto = str(protocol).lower() if protocol is not None else "?"
    if proto in ("-1", "all"):
        return "all traffic"
    if start is None or start == -1:
        return proto
    return f"{proto}/{start}" if start == end or end is None else f"{proto}/{start}-{end}"


def sg_rules(configuration: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(direction, protocol/port, peer) of every rule of a security group's configuration."""
    rules: set[tuple[str, str, str]] = set()
    for direction, key in (("ingress", "ipPermissions"), ("egress", "ipPermissionsEgress")):
        for perm in _list(configuration.get(key)):
            perm = _obj(perm)
            port = port_text(perm.get("ipProtocol"), perm.get("fromPort"), perm.get("toPort"))
            for peer in _ranges(perm):
                rules.add((direction, port, peer))
    return rules


def _group_ids(ci: ConfigItem) -> set[str]:
    ids = {str(_obj(g).get("groupId")) for g in _list(ci.configuration.get("securityGroups")) if _obj(g).get("groupId")}
    ids |= {str(r.get("resourceId")) for r in ci.relationships if r.get("resourceType") == SG_TYPE}
    return {i for i in ids if i.startswith("sg-")}


def _profile(configuration: dict[str, Any]) -> str | None:
    p = _obj(configuration.get("iamInstanceProfile"))
    value = p.get("arn") or p.get("id")
    return str(value) if value else None


def _instance_changes(old: ConfigItem, new: ConfigItem) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, text, details) of what differs between two items of the instance."""
    a, b = old.configuration, new.configuration
    iid = new.resource_id
    changes: list[tuple[str, str, dict[str, Any]]] = []
    if a.get("instanceType") != b.get("instanceType") and b.get("instanceType"):
        changes.append((
            "instance_type_changed",
            f"{iid}: instance type changed to {b.get('instanceType')} (was {a.get('instanceType') or '?'})",
            {"from": a.get("instanceType"), "to": b.get("instanceType")},
        ))  # fmt: skip
    pa, pb = _profile(a), _profile(b)
    if pa != pb:
        what = f"instance profile {pb} attached" if pb else f"instance profile {pa} removed"
        if pa and pb:
            what = f"instance profile changed to {pb} (was {pa})"
        changes.append(("instance_profile_changed", f"{iid}: {what}", {"from": pa, "to": pb}))
    ga, gb = _group_ids(old), _group_ids(new)
    if ga != gb:
        added, removed = sorted(gb - ga), sorted(ga - gb)
        parts = [f"+{g}" for g in added] + [f"−{g}" for g in removed]
        changes.append((
            "security_groups_changed", f"{iid}: security groups changed: {' '.join(parts)}",
            {"added": added, "removed": removed},
        ))  # fmt: skip
    if a.get("keyName") != b.get("keyName"):
        changes.append((
            "key_pair_changed", f"{iid}: key pair changed to {b.get('keyName')} (was {a.get('keyName')})",
            {"from": a.get("keyName"), "to": b.get("keyName")},
        ))  # fmt: skip
    ta, tb = _obj(a.get("metadataOptions")).get("httpTokens"), _obj(b.get("metadataOptions")).get("httpTokens")
    if ta != tb and ta is not None and tb is not None:
        changes.append(("imds_changed", f"{iid}: IMDS httpTokens changed to {tb} (was {ta})", {"from": ta, "to": tb}))
    sa, sb = _obj(a.get("state")).get("name"), _obj(b.get("state")).get("name")
    if sa != sb and sb:
        changes.append(("state_changed", f"{iid}: state {sa or '?'} → {sb}", {"from": sa, "to": sb}))
    return changes


def _world_ingress(rules: set[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return sorted((port, peer) for d, port, peer in rules if d == "ingress" and peer in WORLD)


def _sg_changes(old: ConfigItem | None, new: ConfigItem) -> list[tuple[str, str, dict[str, Any]]]:
    gid = new.resource_id
    after = sg_rules(new.configuration)
    if old is None:
        opened = _world_ingress(after)
        return [(
            "security_group_open_to_internet",
            f"security group {gid} let {peer} in on {port} when first recorded",
            {"port": port, "peer": peer, "baseline": True},
        ) for port, peer in opened]  # fmt: skip
    before = sg_rules(old.configuration)
    changes: list[tuple[str, str, dict[str, Any]]] = []
    for d, port, peer in sorted(after - before):
        if d == "ingress" and peer in WORLD:
            changes.append((
                "security_group_opened_to_internet", f"security group {gid} opened {peer} on {port}",
                {"direction": d, "port": port, "peer": peer},
            ))  # fmt: skip
        else:
            changes.append((
                "security_group_rule_added", f"security group {gid}: {d} rule added {port} {peer}",
                {"direction": d, "port": port, "peer": peer},
            ))  # fmt: skip
    for d, port, peer in sorted(before - after):
        changes.append((
            "security_group_rule_removed", f"security group {gid}: {d} rule removed {port} {peer}",
            {"direction": d, "port": port, "peer": peer},
        ))  # fmt: skip
    return changes


# -- CloudTrail links ------------------------------------------------------------------------------------


def trail_index(sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """event id → where the CloudTrail sections show it (section, evidence index, name, who)."""
    index: dict[str, dict[str, Any]] = {}
    for name in (PERSISTENCE, PRINCIPAL, LAUNCH):
        for i, e in enumerate(_list(_obj(sections.get(name)).get("evidence"))):
            eid = _obj(e).get("event_id")
            if isinstance(eid, str) and eid and eid not in index:
                index[eid] = {
                    "event_id": eid, "section": name, "index": i, "event_name": e.get("event_name"),
                    "kind": e.get("kind"), "principal_arn": e.get("principal_arn"), "time": e.get("time"),
                }  # fmt: skip
    return index


# -- reading ---------------------------------------------------------------------------------------------


@dataclass
class _History:
    items: list[ConfigItem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    calls: int = 0


def launch_groups(sections: dict[str, dict[str, Any]]) -> dict[str, set[str]]:
    """instance id → the security groups its ``RunInstances`` gave it (from the launch-context section)."""
    out: dict[str, set[str]] = {}
    for launch in _list(_obj(_obj(sections.get(LAUNCH)).get("summary")).get("launches")):
        launch = _obj(launch)
        if isinstance(launch.get("instance_id"), str):
            groups = {g for g in _list(launch.get("security_groups")) if isinstance(g, str)}
            out.setdefault(launch["instance_id"], set()).update(groups)
    return out


def _recorder_state(cfg: Any, region: str | None) -> str:
    """Why Config may not have the instance: its recorder's state in the region (best effort)."""
    where = f" in {region}" if region else ""
    try:
        statuses = cfg.describe_configuration_recorder_status().get("ConfigurationRecordersStatus") or []
    except Exception as exc:  # only an explanation: its own failure is said, not raised
        return f"the recorder's state could not be read ({refusal(exc, 'config:DescribeConfigurationRecorderStatus')})"
    if not statuses:
        return f"AWS Config has no configuration recorder{where}"
    off = [s for s in statuses if not s.get("recording")]
    if off:
        return f"AWS Config recorder {off[0].get('name')!r} is not recording{where}"
    return f"the recorder{where} is on: {INSTANCE_TYPE} may not be among the recorded resource types"


def _api_history(
    ctx: AlertContext, session: Any, launched: dict[str, set[str]]
) -> tuple[_History | None, str | None]:
    """Each instance's history, then its security groups'; (None, reason) when Config refuses the instance."""
    session = session_or_default(session)
    history = _History()
    for iid, facts in ctx.instances.items():
        region = facts.region or ctx.region
        cfg = client(session, "config", region)
        pages = cfg.get_paginator("get_resource_config_history")

        def fetch(rtype: str, rid: str, pages: Any = pages, region: str | None = region) -> list[ConfigItem]:
            out: list[ConfigItem] = []
            for page in pages.paginate(
                resourceType=rtype, resourceId=rid, laterTime=ctx.window_end, chronologicalOrder="Reverse",
                PaginationConfig={"MaxItems": MAX_ITEMS, "PageSize": 100},
            ):  # fmt: skip
                history.calls += 1
                for n, raw in enumerate(page.get("configurationItems") or []):
                    parsed = parse_item(Item(raw, f"config:{region}:{rtype}/{rid}#{n}"))
                    if isinstance(parsed, ConfigItem):
                        out.append(parsed)
            if len(out) >= MAX_ITEMS:
                history.warnings.append(f"{rid}: only the latest {MAX_ITEMS} configuration items were read")
            return out

        try:
            mine = fetch(INSTANCE_TYPE, iid)
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceNotDiscoveredException":
                return None, f"AWS Config has not recorded {iid}: {_recorder_state(cfg, region)}"
            if code == "NoAvailableConfigurationRecorderException":
                return None, f"AWS Config has no configuration recorder in {region or 'the region'}"
            return None, refusal(exc, "config:GetResourceConfigHistory")
        history.items += mine
        groups = set().union(*(_group_ids(ci) for ci in mine)) if mine else set()
        groups |= launched.get(iid, set())
        for gid in sorted(groups):
            try:
                history.items += fetch(SG_TYPE, gid)
            except Exception as exc:  # one group's history missing leaves the rest
                history.warnings.append(f"{gid}: {refusal(exc, 'config:GetResourceConfigHistory')}")
    return history, None


def config_section(
    ctx: AlertContext,
    sections: dict[str, dict[str, Any]],
    *,
    files: list[str] | None,
    api: bool,
    session: Any,
    rejects: RejectLog,
) -> dict[str, Any]:
    """The configuration-history section; ``sections`` are the CloudTrail sections already built (for links)."""
    if not files and not api:
        return unavailable(CONFIG, "no --config-history or --aws-config given")
    if not ctx.instances:
        return unavailable(CONFIG, "the alert names no instance")
    warnings: list[str] = []
    if files:
        items, report = read_cli_output(files, "--config-history", "configurationItems", rejects)
        warnings += file_warnings(report)
        if report["rejected"] and not report["accepted"]:
            return unavailable(CONFIG, f"every record of --config-history was rejected ({report['rejected']})", report)
        history = _History()
        for item in items:
            parsed = parse_item(item)
            if isinstance(parsed, str):
                warnings.append(f"{item.source}: {parsed}")
            else:
                history.items.append(parsed)
    else:
        got, reason = _api_history(ctx, session, launch_groups(sections))
        if got is None:
            return unavailable(CONFIG, reason or "AWS Config unavailable", {"option": "--aws-config"})
        history = got
        report = {"option": "--aws-config", "api_calls": history.calls, "records_read": len(history.items)}
        warnings += history.warnings
    return _build(ctx, history.items, trail_index(sections), launch_groups(sections), report, warnings)


def _build(
    ctx: AlertContext,
    items: list[ConfigItem],
    trail: dict[str, dict[str, Any]],
    launched: dict[str, set[str]],
    report: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:
    by_resource: dict[tuple[str, str], list[ConfigItem]] = {}
    for ci in items:
        by_resource.setdefault((ci.resource_type, ci.resource_id), []).append(ci)
    for versions in by_resource.values():
        versions.sort(key=lambda c: c.time)
    # Which groups belong to which instance: every group any of its items named, and the launch's.
    owner: dict[str, str] = {}
    for iid in ctx.instances:
        for ci in by_resource.get((INSTANCE_TYPE, iid), []):
            for gid in _group_ids(ci):
                owner.setdefault(gid, iid)
        for gid in launched.get(iid, set()):
            owner.setdefault(gid, iid)
    evidence: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    unrelated = 0
    for (rtype, rid), versions in sorted(by_resource.items(), key=lambda kv: (kv[0][0] != INSTANCE_TYPE, kv[0][1])):
        iid = rid if rtype == INSTANCE_TYPE else owner.get(rid)
        if iid not in ctx.instances:
            unrelated += len(versions)
            continue
        resources.append({
            "resource_type": rtype, "resource_id": rid, "instance_id": iid, "items": len(versions),
            "first": iso(versions[0].time), "last": iso(versions[-1].time),
        })  # fmt: skip
        previous: ConfigItem | None = None
        for ci in versions:
            if previous is None:
                changes = [("first_recorded", f"{rid}: first recorded ({ci.status})", {})]
                if rtype == SG_TYPE:
                    changes += _sg_changes(None, ci)
            elif rtype == INSTANCE_TYPE:
                changes = _instance_changes(previous, ci)
            else:
                changes = _sg_changes(previous, ci)
            if ci.status in ("ResourceDeleted", "ResourceDeletedNotRecorded"):
                changes.append(("deleted", f"{rid}: deleted", {}))
            linked = [trail[e] for e in ci.related_events if e in trail]
            if rtype == INSTANCE_TYPE and any(link.get("kind") == "user_data_modified" for link in linked):
                changes.append(("user_data_changed", f"{rid}: user data changed", {}))
            previous = ci
            for kind, text, details in changes:
                evidence.append(_evidence(ctx, ci, iid, kind, text, details, linked))
    evidence.sort(key=lambda e: e["time"])
    indicators = [e for e in evidence if e["indicator"]]
    counts: dict[str, int] = {}
    for e in evidence:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    summary = {
        "resources": resources,
        "counts": dict(sorted(counts.items())),
        "findings": [e["what"] for e in indicators],
        "related_events": sorted({x for e in evidence for x in e["related_events"]}),
        "linked_to_cloudtrail": sum(1 for e in evidence if e["cloudtrail"]),
        "unrelated_items": unrelated,
        "window": ctx.window_json(),
    }
    if not resources:
        reason = f"no configuration item of {', '.join(ctx.instances)} or its security groups in the data given"
        return make_section(CONFIG, "empty", reason=reason, summary=summary, source=report, warnings=warnings)
    if not indicators:
        reason = "no security-group, instance type, profile, key pair, IMDS or user-data change recorded"
        return make_section(
            CONFIG, "empty", reason=reason, summary=summary, evidence=evidence, source=report, warnings=warnings
        )
    shown = "; ".join(e["what"] for e in indicators[:3])
    more = f" (+{len(indicators) - 3} more)" if len(indicators) > 3 else ""
    return make_section(
        CONFIG, "ok", headline=shown + more, summary=summary, evidence=evidence, source=report, warnings=warnings
    )


def _evidence(
    ctx: AlertContext, ci: ConfigItem, iid: str, kind: str, text: str, details: dict[str, Any],
    linked: list[dict[str, Any]],
) -> dict[str, Any]:  # fmt: skip
    when = f" at {iso(ci.time)}"
    if linked:
        who = linked[0].get("principal_arn")
        events = ", ".join(str(x["event_id"]) for x in linked)
        tail = f" (event {events}{f' by {who}' if who else ''})"
    elif ci.related_events:
        tail = f" (event {', '.join(ci.related_events)})"
    else:
        tail = ""
    return ev(
        ci.time, ci.source, text + when + tail, instance_id=iid, kind=kind, indicator=kind not in _CONTEXT,
        resource_type=ci.resource_type, resource_id=ci.resource_id, status=ci.status, in_window=ctx.in_window(ci.time),
        related_events=ci.related_events, cloudtrail=linked, **details,
    )  # fmt: skip
