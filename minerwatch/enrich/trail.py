"""CloudTrail sections, from one pass over ``--cloudtrail``: launch context, the launching principal's activity
and persistence changes on the instance.

The pass keeps only the events these sections can use (launches, IAM writes, console sign-ins, security-group
and key-pair changes, instance changes); everything else is counted and dropped as it streams by.

*Launch context*: the ``RunInstances`` event whose response lists the instance.

*Principal activity*: events in the window by the principal that launched the instance, or by principals it
created or armed: IAM users it created, access keys it created, users it gave a console password. That follows
the usual chain (leaked key → new admin user → console login without MFA) without pulling in the whole account.

*Persistence*: changes to the instance itself, whenever they happened: ``ModifyInstanceAttribute`` (user data
above all), SSM ``SendCommand`` / ``StartSession``, ``CreateImage``, instance-profile changes, launch-template
changes (of the instance's template, or by a tracked principal), and the stop/start a user-data change needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from minerwatch.alerting.alerts import iso
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.sections import SourceRead, ev, make_section, unavailable, where
from minerwatch.sources.records import Record

LAUNCH = "launch_context"
PRINCIPAL = "principal_activity"
PERSISTENCE = "persistence"
NOT_FOUND = "not found in the data given"

_RUN = "RunInstances"
_SG = frozenset(
    {
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
        "ModifySecurityGroupRules",
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "UpdateSecurityGroupRuleDescriptionsEgress",
    }
)
_KEY_PAIR = frozenset({"CreateKeyPair", "ImportKeyPair"})
_LAUNCH_TEMPLATE = frozenset({"CreateLaunchTemplate", "CreateLaunchTemplateVersion", "ModifyLaunchTemplate"})
_ON_INSTANCE = frozenset(
    {
        "ModifyInstanceAttribute",
        "SendCommand",
        "StartSession",
        "CreateImage",
        "StopInstances",
        "StartInstances",
        "AssociateIamInstanceProfile",
        "ReplaceIamInstanceProfileAssociation",
    }
)
_READ_PREFIXES = ("Get", "List", "Describe", "Generate", "Simulate")
_NO_INDICATOR = frozenset({"instance_stopped", "instance_started"})
"""Persistence kinds shown for context (a user-data change needs a stop and start) but not counted as changes."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list[dict[str, Any]]:
    """CloudTrail's list wrappers: ``{"items": [...]}`` (EC2) or ``{"item": [...]}``, or a plain list."""
    if isinstance(value, dict):
        value = value.get("items", value.get("item"))
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _find(value: Any, names: frozenset[str], depth: int = 3) -> list[str]:
    """String values of keys named ``names`` (case-insensitive) within ``depth`` levels of an object."""
    found: list[str] = []
    if depth < 0:
        return found
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.lower() in names and isinstance(v, str):
                found.append(v)
            elif isinstance(v, dict | list):
                found += _find(v, names, depth - 1)
    elif isinstance(value, list):
        for v in value:
            found += _find(v, names, depth - 1)
    return found


@dataclass(slots=True)
class _Event:
    time: datetime
    name: str
    source: str
    flat: dict[str, Any]
    doc: dict[str, Any]

    @property
    def req(self) -> dict[str, Any]:
        return _obj(self.doc.get("requestParameters"))

    @property
    def resp(self) -> dict[str, Any]:
        return _obj(self.doc.get("responseElements"))

    @property
    def ident(self) -> dict[str, Any]:
        return _obj(self.doc.get("userIdentity"))

    @property
    def actor_arn(self) -> str | None:
        """The principal behind the call: an assumed role's role ARN rather than the session's."""
        issuer = _obj(_obj(self.ident.get("sessionContext")).get("sessionIssuer"))
        if self.ident.get("type") == "AssumedRole" and _str(issuer.get("arn")):
            return str(issuer["arn"])
        return _str(self.flat.get("principal_arn"))

    @property
    def user(self) -> tuple[str, str] | None:
        name = _str(self.ident.get("userName"))
        if self.ident.get("type") == "IAMUser" and name:
            return (str(self.ident.get("accountId") or self.flat.get("accountid") or ""), name)
        return None

    def base(self) -> dict[str, Any]:
        f = self.flat
        return {
            "event_name": self.name,
            "event_id": f.get("eventid"),
            "region": f.get("region"),
            "principal_arn": f.get("principal_arn"),
            "access_key_id": f.get("access_key_id"),
            "source_ip": f.get("sourceip"),
            "user_agent": f.get("useragent"),
            "error_code": f.get("errorcode"),
        }


def _iam_write(flat: dict[str, Any], name: str) -> bool:
    if flat.get("eventsource") != "iam.amazonaws.com":
        return False
    readonly = flat.get("readonly")
    return readonly is False or (readonly is None and not name.startswith(_READ_PREFIXES))


def _keep(flat: dict[str, Any]) -> bool:
    name = flat.get("eventname") or ""
    return (
        name in (_RUN, "ConsoleLogin")
        or name in _SG
        or name in _KEY_PAIR
        or name in _ON_INSTANCE
        or name in _LAUNCH_TEMPLATE
        or _iam_write(flat, name)
    )


@dataclass
class Principals:
    """Who counts as "the launching principal": ARNs, access keys and IAM users, each with why."""

    arns: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    users: dict[tuple[str, str], str] = field(default_factory=dict)

    def why(self, e: _Event) -> str | None:
        key = _str(e.flat.get("access_key_id"))
        if key and key in self.keys:
            return self.keys[key]
        arn = e.actor_arn
        if arn and arn in self.arns:
            return self.arns[arn]
        user = e.user
        if user and user in self.users:
            return self.users[user]
        return None

    def add_launcher(self, e: _Event) -> None:
        why = "launched the instance"
        if e.actor_arn:
            self.arns.setdefault(e.actor_arn, why)
        key = _str(e.flat.get("access_key_id"))
        if key:
            self.keys.setdefault(key, why)
        if e.user:
            self.users.setdefault(e.user, why)

    def expand(self, events: list[_Event]) -> None:
        """Add what tracked principals created, until nothing new appears (a chain, in time order)."""
        for _ in range(10):
            before = (len(self.arns), len(self.keys), len(self.users))
            for e in events:
                if e.flat.get("errorcode") or self.why(e) is None:
                    continue
                account = str(e.flat.get("accountid") or e.ident.get("accountId") or "")
                who = e.actor_arn or "?"
                target = _str(e.req.get("userName"))
                if e.name == "CreateUser" and target:
                    self.users.setdefault((account, target), f"IAM user created by {who} at {iso(e.time)}")
                    created = _str(_obj(_obj(e.resp).get("user")).get("arn"))
                    if created:
                        self.arns.setdefault(created, f"IAM user created by {who} at {iso(e.time)}")
                elif e.name == "CreateAccessKey":
                    made = _obj(e.resp.get("accessKey"))
                    key_id = _str(made.get("accessKeyId"))
                    if key_id:
                        self.keys.setdefault(key_id, f"access key created by {who} at {iso(e.time)}")
                    owner = _str(made.get("userName")) or target
                    if owner:
                        self.users.setdefault((account, owner), f"given an access key by {who} at {iso(e.time)}")
                elif e.name in ("CreateLoginProfile", "UpdateLoginProfile") and target:
                    self.users.setdefault((account, target), f"given a console password by {who} at {iso(e.time)}")
            if (len(self.arns), len(self.keys), len(self.users)) == before:
                return

    def to_json(self) -> dict[str, Any]:
        return {
            "arns": [{"arn": k, "why": v} for k, v in self.arns.items()],
            "access_keys": [{"access_key_id": k, "why": v} for k, v in self.keys.items()],
            "iam_users": [{"account_id": a, "user_name": u, "why": v} for (a, u), v in self.users.items()],
        }


# -- launch context ----------------------------------------------------------------------------------------


def _launch_item(e: _Event, instance_id: str) -> dict[str, Any] | None:
    for item in _items(e.resp.get("instancesSet")):
        if item.get("instanceId") == instance_id:
            return item
    return None


def _ms_time(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            return None
    return None


def _launch_info(e: _Event, item: dict[str, Any]) -> dict[str, Any]:
    req, resp = e.req, e.resp
    req_items = _items(req.get("instancesSet"))
    first_req = req_items[0] if req_items else {}
    meta = _obj(item.get("metadataOptions")) or _obj(req.get("metadataOptions"))
    enis, ips = [], []
    for nic in _items(item.get("networkInterfaceSet")):
        if _str(nic.get("networkInterfaceId")):
            enis.append(nic["networkInterfaceId"])
        ips += [
            p["privateIpAddress"] for p in _items(nic.get("privateIpAddressesSet")) if _str(p.get("privateIpAddress"))
        ]
        if _str(nic.get("privateIpAddress")):
            ips.append(nic["privateIpAddress"])
    if _str(item.get("privateIpAddress")):
        ips.append(item["privateIpAddress"])
    template = _obj(req.get("launchTemplate"))
    profile = _obj(item.get("iamInstanceProfile")) or _obj(req.get("iamInstanceProfile"))
    user_data = req.get("userData")
    return {
        "instance_id": item.get("instanceId"),
        **e.base(),
        "time": iso(e.time),
        "principal": {
            "arn": e.flat.get("principal_arn"),
            "type": e.flat.get("principal_type"),
            "user_name": e.ident.get("userName"),
            "principal_id": e.ident.get("principalId"),
            "session_issuer": e.actor_arn if e.ident.get("type") == "AssumedRole" else None,
        },
        "instance_type": item.get("instanceType") or req.get("instanceType"),
        "instances_launched": len(_items(resp.get("instancesSet"))),
        "requested_count": {"min": first_req.get("minCount"), "max": first_req.get("maxCount")},
        "key_name": item.get("keyName") or first_req.get("keyName"),
        # CloudTrail replaces user data by "<sensitiveDataRemoved>": its presence is what the event shows.
        "user_data_present": user_data not in (None, "", {}),
        "http_tokens": meta.get("httpTokens"),
        "http_endpoint": meta.get("httpEndpoint"),
        "image_id": item.get("imageId") or first_req.get("imageId"),
        "availability_zone": _obj(item.get("placement")).get("availabilityZone"),
        "subnet_id": item.get("subnetId"),
        "vpc_id": item.get("vpcId"),
        "enis": sorted(set(enis)),
        "private_ips": sorted(set(ips)),
        "public_ip": item.get("ipAddress"),
        "instance_profile": profile.get("arn") or profile.get("name"),
        "security_groups": [g.get("groupId") for g in _items(item.get("groupSet")) if g.get("groupId")],
        "launch_template": {k: template.get(k) for k in ("launchTemplateId", "launchTemplateName", "version")}
        if template
        else None,
        "launch_time": iso(t) if (t := _ms_time(item.get("launchTime"))) else iso(e.time),
    }


def _launch_text(info: dict[str, Any]) -> str:
    bits = [f"{info['instances_launched']} × {info['instance_type']}"]
    if info.get("key_name"):
        bits.append(f"key pair {info['key_name']}")
    bits.append("user data" if info["user_data_present"] else "no user data")
    bits.append(f"IMDS httpTokens {info['http_tokens'] or 'not in the event'}")
    who = info["principal"]["arn"] or "?"
    key = f" (key {info['access_key_id']})" if info.get("access_key_id") else ""
    agent = info.get("user_agent") or "no user agent"
    where_from = f"from {info['source_ip']} in {info['region']} ({agent})"
    return f"{info['instance_id']} launched by {who}{key} {where_from}: " + ", ".join(bits)


# -- principal activity -------------------------------------------------------------------------------------


def _category(e: _Event, launch_regions: set[str]) -> str | None:
    name = e.name
    if name == "CreateAccessKey":
        return "new_access_key"
    if name == "ConsoleLogin":
        return "console_login_without_mfa" if e.flat.get("mfa") is False else None
    if name == _RUN:
        return "run_instances_same_region" if e.flat.get("region") in launch_regions else "run_instances_other_region"
    if name in _SG:
        return "security_group_change"
    if name in _KEY_PAIR:
        return "key_pair"
    if _iam_write(e.flat, name):
        return "iam_change"
    return None


def _rules_text(req: dict[str, Any]) -> str:
    parts = []
    for perm in _items(req.get("ipPermissions")):
        ranges = [r.get("cidrIp") for r in _items(perm.get("ipRanges")) if r.get("cidrIp")]
        ranges += [r.get("cidrIpv6") for r in _items(perm.get("ipv6Ranges")) if r.get("cidrIpv6")]
        port = perm.get("fromPort")
        to = perm.get("toPort")
        span = f"{port}" if port == to else f"{port}-{to}"
        parts.append(f"{perm.get('ipProtocol')}/{span} from {', '.join(map(str, ranges)) or 'groups'}")
    return "; ".join(parts)


def _target(e: _Event) -> str | None:
    req = e.req
    if e.name == "CreateAccessKey":
        return _str(_obj(e.resp.get("accessKey")).get("accessKeyId")) or _str(req.get("userName"))
    if e.name in _SG:
        return _str(req.get("groupId")) or _str(req.get("groupName"))
    if e.name in _KEY_PAIR:
        return _str(req.get("keyName"))
    if e.name == _RUN:
        return _str(req.get("instanceType"))
    for k in ("userName", "roleName", "groupName", "policyArn", "policyName", "instanceProfileName"):
        if _str(req.get(k)):
            return str(req[k])
    return None


def _activity_text(e: _Event, category: str) -> str:
    who = e.actor_arn or e.flat.get("principal_arn") or "?"
    err = f" (failed: {e.flat['errorcode']})" if e.flat.get("errorcode") else ""
    if category == "console_login_without_mfa":
        return f"ConsoleLogin without MFA by {who} from {e.flat.get('sourceip')}{err}"
    if e.name == _RUN:
        n = _items(e.req.get("instancesSet"))
        count = n[0].get("maxCount") if n else None
        return f"RunInstances {count or '?'} × {e.req.get('instanceType')} in {e.flat.get('region')} by {who}{err}"
    if e.name in _SG:
        rules = _rules_text(e.req)
        return f"{e.name} {_target(e) or ''} {rules}".rstrip() + f" by {who}{err}"
    target = _target(e)
    extra = f" policy {e.req['policyArn']}" if _str(e.req.get("policyArn")) and target != e.req.get("policyArn") else ""
    return f"{e.name} {target or ''}{extra} by {who}{err}".replace("  ", " ")


# -- persistence -------------------------------------------------------------------------------------------


def _instances_of(e: _Event) -> set[str]:
    req = e.req
    name = e.name
    if name in ("ModifyInstanceAttribute", "CreateImage"):
        return {req["instanceId"]} if _str(req.get("instanceId")) else set()
    if name in ("StopInstances", "StartInstances"):
        return {i["instanceId"] for i in _items(req.get("instancesSet")) if _str(i.get("instanceId"))}
    if name == "SendCommand":
        ids = {i for i in req.get("instanceIds") or [] if isinstance(i, str)}
        for t in req.get("targets") or []:
            if isinstance(t, dict) and str(t.get("key", "")).lower() in ("instanceids", "instanceid"):
                ids |= {v for v in t.get("values") or [] if isinstance(v, str)}
        return ids
    if name == "StartSession":
        return {req["target"]} if _str(req.get("target")) else set()
    if name in ("AssociateIamInstanceProfile", "ReplaceIamInstanceProfileAssociation"):
        return {v for v in _find(req, frozenset({"instanceid"})) if v.startswith("i-")}
    return set()


def _persistence_kind(e: _Event) -> tuple[str, str]:
    """(kind, description) of a change on the instance."""
    req = e.req
    name = e.name
    if name == "ModifyInstanceAttribute":
        attrs = [k for k in req if k != "instanceId"]
        if "userData" in req or req.get("attribute") == "userData":
            return "user_data_modified", "user data replaced (ModifyInstanceAttribute userData)"
        return "instance_attribute_modified", f"ModifyInstanceAttribute {', '.join(attrs) or '?'}"
    if name == "SendCommand":
        return "ssm_send_command", f"SSM SendCommand {req.get('documentName') or '?'}"
    if name == "StartSession":
        return "ssm_start_session", "SSM StartSession"
    if name == "CreateImage":
        image = _str(e.resp.get("imageId"))
        return "image_created", f"CreateImage {req.get('name') or ''} → {image or '?'}".replace("  ", " ")
    if name == "StopInstances":
        return "instance_stopped", "StopInstances"
    if name == "StartInstances":
        return "instance_started", "StartInstances"
    if name in _LAUNCH_TEMPLATE:
        ids = _find(req, frozenset({"launchtemplateid", "launchtemplatename"}))
        return "launch_template_changed", f"{name} {', '.join(ids) or ''}".rstrip()
    return "instance_profile_changed", f"{name}"


# -- the pass ----------------------------------------------------------------------------------------------


def cloudtrail_sections(ctx: AlertContext, read: SourceRead | None) -> dict[str, dict[str, Any]]:
    """The three CloudTrail sections; updates ``ctx`` with launch facts (type, ENIs, addresses)."""
    names = (LAUNCH, PRINCIPAL, PERSISTENCE)
    if read is None:
        return {n: unavailable(n, "no --cloudtrail given") for n in names}
    if not ctx.instances:
        return {n: unavailable(n, "the alert names no instance") for n in names}
    kept: list[_Event] = []
    record: Record
    for record in read.records():
        flat = record.flat
        if not _keep(flat) or flat.get("eventdate") is None:
            continue
        kept.append(_Event(flat["eventdate"], flat.get("eventname") or "", where(record), flat, record.doc))
    kept.sort(key=lambda e: (e.time, e.flat.get("eventid") or ""))
    report = read.report()
    warnings = read.warnings()
    if read.all_rejected():
        reason = f"every record of --cloudtrail was rejected ({report['rejected']})"
        return {n: unavailable(n, reason, report) for n in names}

    launch = _launch_section(ctx, kept, report, warnings)
    principals = Principals()
    launch_events = {e.flat.get("eventid") for e in kept if e.name == _RUN and _launched_here(ctx, e)}
    for e in kept:
        if e.flat.get("eventid") in launch_events:
            principals.add_launcher(e)
    principals.expand(kept)
    activity = _activity_section(ctx, kept, principals, launch_events, report, warnings)
    persistence = _persistence_section(ctx, kept, principals, launch, report, warnings)
    return {LAUNCH: launch, PRINCIPAL: activity, PERSISTENCE: persistence}


def _launched_here(ctx: AlertContext, e: _Event) -> bool:
    return not e.flat.get("errorcode") and any(_launch_item(e, i) for i in ctx.instances)


def _launch_section(
    ctx: AlertContext, kept: list[_Event], report: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    launches: list[dict[str, Any]] = []
    evidence: list[dict[str, Any]] = []
    missing: list[str] = []
    for instance_id, facts in ctx.instances.items():
        found = next(
            ((e, item) for e in kept if e.name == _RUN and (item := _launch_item(e, instance_id)) is not None), None
        )
        if found is None:
            missing.append(instance_id)
            continue
        e, item = found
        info = _launch_info(e, item)
        launches.append(info)
        facts.set_type(info["instance_type"], "RunInstances")
        for eni in info["enis"]:
            facts.add_interface(eni, [])
        facts.add_interface(None, info["private_ips"])
        facts.region = facts.region or info["region"]
        facts.vpc_id = facts.vpc_id or info["vpc_id"]
        facts.launch_time = _ms_time(info["launch_time"]) or e.time
        evidence.append(
            ev(
                e.time,
                e.source,
                _launch_text(info),
                instance_id=instance_id,
                **{k: info[k] for k in ("event_id", "principal_arn", "access_key_id", "source_ip", "instance_type")},
            )
        )
    summary = {"launches": launches, "not_found": missing}
    if not launches:
        reason = f"RunInstances of {', '.join(missing)}: {NOT_FOUND} ({report['accepted']} CloudTrail records read)"
        return make_section(LAUNCH, "empty", reason=reason, summary=summary, source=report, warnings=warnings)
    headline = "; ".join(x["what"] for x in evidence)
    if missing:
        headline += f"; RunInstances of {', '.join(missing)}: {NOT_FOUND}"
    return make_section(
        LAUNCH, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
    )


def _activity_section(
    ctx: AlertContext,
    kept: list[_Event],
    principals: Principals,
    launch_events: set[Any],
    report: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:
    if not principals.arns and not principals.keys and not principals.users:
        reason = f"the launching principal is unknown: RunInstances of the instance {NOT_FOUND}"
        return make_section(PRINCIPAL, "empty", reason=reason, source=report, warnings=warnings)
    regions = {f.region for f in ctx.instances.values() if f.region}
    evidence: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for e in kept:
        if e.flat.get("eventid") in launch_events or not ctx.in_window(e.time):
            continue
        why = principals.why(e)
        if why is None:
            continue
        category = _category(e, regions)
        if category is None:
            continue
        counts[category] = counts.get(category, 0) + 1
        extra: dict[str, Any] = {"category": category, "actor": why, "target": _target(e)}
        if e.name in _SG:
            extra["rules"] = _rules_text(e.req)
        evidence.append(ev(e.time, e.source, _activity_text(e, category), **e.base(), **extra))
    summary = {"window": ctx.window_json(), "principals": principals.to_json(), "counts": counts}
    if not evidence:
        reason = "no IAM change, new key, console login without MFA, launch or security-group change in the window"
        return make_section(PRINCIPAL, "empty", reason=reason, summary=summary, source=report, warnings=warnings)
    headline = ", ".join(f"{k.replace('_', ' ')} ×{n}" for k, n in sorted(counts.items()))
    return make_section(
        PRINCIPAL, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
    )


def _persistence_section(
    ctx: AlertContext,
    kept: list[_Event],
    principals: Principals,
    launch: dict[str, Any],
    report: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:
    templates = {
        str(v)
        for info in launch["summary"].get("launches", [])
        for v in (info.get("launch_template") or {}).values()
        if v
    }
    evidence: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for e in kept:
        if e.name in _LAUNCH_TEMPLATE:
            ids = set(_find(e.req, frozenset({"launchtemplateid", "launchtemplatename"})))
            if not (ids & templates or (ctx.in_window(e.time) and principals.why(e))):
                continue
            targets = sorted(ctx.instances)
        elif e.name in _ON_INSTANCE:
            targets = sorted(_instances_of(e) & set(ctx.instances))
            if not targets:
                continue
        else:
            continue
        kind, text = _persistence_kind(e)
        counts[kind] = counts.get(kind, 0) + 1
        who = e.actor_arn or "?"
        err = f" (failed: {e.flat['errorcode']})" if e.flat.get("errorcode") else ""
        for instance_id in targets:
            evidence.append(
                ev(
                    e.time,
                    e.source,
                    f"{instance_id}: {text} by {who}{err}",
                    instance_id=instance_id,
                    kind=kind,
                    indicator=kind not in _NO_INDICATOR,
                    actor=principals.why(e),
                    **e.base(),
                )
            )
    indicators = {k: n for k, n in counts.items() if k not in _NO_INDICATOR}
    summary = {"counts": counts, "indicators": sorted(indicators)}
    if not indicators:
        reason = "no user-data, launch-template, SSM, image or instance-profile change on the instance"
        return make_section(
            PERSISTENCE, "empty", reason=reason, summary=summary, evidence=evidence, source=report, warnings=warnings
        )
    headline = ", ".join(f"{k.replace('_', ' ')} ×{n}" for k, n in sorted(indicators.items()))
    return make_section(
        PERSISTENCE, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
    )


__all__ = ["LAUNCH", "PERSISTENCE", "PRINCIPAL", "Principals", "cloudtrail_sections"]
