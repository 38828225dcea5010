"""Posture: the rule's "Prevention Measures" checked against an AWS account, region by region.

=============  ==================================================================  ================================
check          passes when                                                          rule line
=============  ==================================================================  ================================
guardduty      a detector exists in the region and its status is ENABLED             Enable GuardDuty in all regions
imdsv2         every instance has ``HttpTokens=required`` (or IMDS disabled)         ... (IMDSv2)
admin-ports    no security group lets 0.0.0.0/0 or ::/0 reach TCP 22 or 3389          Security group restrictions
cpu-alarms     every running instance has a CPUUtilization alarm (by instance or     CloudWatch alarms for CPU ...
               by its Auto Scaling group)
cloudtrail     a trail that covers the region is logging                             (Enrichment: CloudTrail)
flow-logs      every VPC has an active flow log of ALL or ACCEPT traffic             (Enrichment: VPC Flow Logs)
=============  ==================================================================  ================================

Each result is one resource (or one region) with ``pass``, ``fail`` or ``error`` (the check could not be made,
e.g. access denied), a detail line and, for a failure, the command that fixes it. Prevention lines no check
covers are listed as ``not_checked``. Read-only: Describe/Get/List calls only.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from botocore import xform_name

from minerwatch.aws.session import Aws, AwsError, call_api
from minerwatch.errors import MinerWatchError
from minerwatch.posture import CHECK_IDS
from minerwatch.rules.model import Rule

ADMIN_PORTS = {22: "SSH", 3389: "RDP"}
OPEN_V4 = "0.0.0.0/0"
OPEN_V6 = "::/0"
LIVE_STATES = ["pending", "running", "stopping", "stopped"]


@dataclass
class Result:
    check: str
    region: str | None
    resource: str | None
    status: str
    """``pass``, ``fail`` or ``error``."""
    detail: str
    remediation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "region": self.region,
            "resource": self.resource,
            "status": self.status,
            "detail": self.detail,
            "remediation": self.remediation,
        }


class Clients:
    """Clients made up front (boto3 sessions are not thread-safe; clients are)."""

    def __init__(self, aws: Aws, services: set[str], regions: list[str]) -> None:
        self._by = {(s, r): aws.client(s, r) for s in services for r in regions}

    def get(self, service: str, region: str) -> Any:
        return self._by[(service, region)]


def _pages(client: Any, operation: str, key: str, **params: Any) -> list[dict[str, Any]]:
    name = xform_name(operation)
    items: list[dict[str, Any]] = []
    try:
        if client.can_paginate(name):
            for page in client.get_paginator(name).paginate(**params):
                items += page.get(key) or []
        else:
            items += call_api(client, operation, params).get(key) or []
    except AwsError:
        raise
    except Exception as exc:  # botocore raises ClientError from paginators directly
        resp = getattr(exc, "response", None) or {}
        code = (resp.get("Error") or {}).get("Code")
        raise AwsError(f"{operation}: {code or type(exc).__name__}: {exc}", code=code, operation=operation) from None
    return items


# -- checks -------------------------------------------------------------------------------------------------


def check_guardduty(c: Clients, region: str) -> list[Result]:
    gd = c.get("guardduty", region)
    ids = [str(d) for d in _pages(gd, "ListDetectors", "DetectorIds")]
    if not ids:
        return [
            Result(
                "guardduty",
                region,
                None,
                "fail",
                "no GuardDuty detector in this region",
                f"aws guardduty create-detector --enable --region {region}",
            )
        ]
    out = []
    for d in ids:
        status = str(call_api(gd, "GetDetector", {"DetectorId": d}).get("Status") or "")
        if status.upper() == "ENABLED":
            out.append(Result("guardduty", region, d, "pass", "detector enabled"))
        else:
            out.append(
                Result(
                    "guardduty",
                    region,
                    d,
                    "fail",
                    f"detector status {status or 'unknown'}",
                    f"aws guardduty update-detector --detector-id {d} --enable --region {region}",
                )
            )
    return out


def _instances(c: Clients, region: str, states: list[str]) -> list[dict[str, Any]]:
    reservations = _pages(
        c.get("ec2", region),
        "DescribeInstances",
        "Reservations",
        Filters=[{"Name": "instance-state-name", "Values": states}],
    )
    return [i for r in reservations for i in r.get("Instances") or []]


def check_imdsv2(c: Clients, region: str) -> list[Result]:
    out = []
    for inst in _instances(c, region, LIVE_STATES):
        iid = inst["InstanceId"]
        meta = inst.get("MetadataOptions") or {}
        if meta.get("HttpEndpoint") == "disabled":
            out.append(Result("imdsv2", region, iid, "pass", "instance metadata service disabled"))
        elif meta.get("HttpTokens") == "required":
            out.append(Result("imdsv2", region, iid, "pass", "IMDSv2 required"))
        else:
            out.append(
                Result(
                    "imdsv2",
                    region,
                    iid,
                    "fail",
                    f"IMDSv1 allowed (HttpTokens={meta.get('HttpTokens') or 'unknown'}): a request forgery on the "
                    "instance can read its role credentials",
                    f"aws ec2 modify-instance-metadata-options --instance-id {iid} --http-tokens required "
                    f"--http-endpoint enabled --region {region}",
                )
            )
    return out or [Result("imdsv2", region, None, "pass", "no instances")]


def _covers(rule: dict[str, Any], port: int) -> bool:
    proto = str(rule.get("IpProtocol"))
    if proto == "-1":
        return True
    if proto not in ("tcp", "6"):
        return False
    lo, hi = rule.get("FromPort"), rule.get("ToPort")
    if lo is None or hi is None or lo == -1:
        return True
    return int(lo) <= port <= int(hi)


def _perm_text(rule: dict[str, Any], cidr: str) -> str:
    proto = str(rule.get("IpProtocol"))
    key = f"Ipv6Ranges=[{{CidrIpv6={cidr}}}]" if ":" in cidr else f"IpRanges=[{{CidrIp={cidr}}}]"
    if proto == "-1":
        return f"IpProtocol=-1,{key}"
    return f"IpProtocol={proto},FromPort={rule.get('FromPort')},ToPort={rule.get('ToPort')},{key}"


def check_admin_ports(c: Clients, region: str) -> list[Result]:
    out = []
    for g in _pages(c.get("ec2", region), "DescribeSecurityGroups", "SecurityGroups"):
        gid = g["GroupId"]
        bad = []
        for rule in g.get("IpPermissions") or []:
            cidrs = [r.get("CidrIp") for r in rule.get("IpRanges") or [] if r.get("CidrIp") == OPEN_V4]
            cidrs += [r.get("CidrIpv6") for r in rule.get("Ipv6Ranges") or [] if r.get("CidrIpv6") == OPEN_V6]
            ports = [p for p in ADMIN_PORTS if _covers(rule, p)]
            for cidr in cidrs:
                if ports:
                    bad.append((rule, str(cidr), ports))
        if not bad:
            out.append(Result("admin-ports", region, gid, "pass", "SSH/RDP not open to the internet"))
            continue
        for rule, cidr, ports in bad:
            names = "/".join(f"{ADMIN_PORTS[p]} {p}" for p in ports)
            out.append(
                Result(
                    "admin-ports",
                    region,
                    gid,
                    "fail",
                    f"{g.get('GroupName') or gid}: {names} open to {cidr}",
                    f"aws ec2 revoke-security-group-ingress --group-id {gid} --ip-permissions "
                    f"'{_perm_text(rule, cidr)}' --region {region}  (then allow a trusted CIDR, or use "
                    "Session Manager)",
                )
            )
    return out


def _alarm_targets(alarms: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Instance ids and Auto Scaling group names watched by CPUUtilization alarms (plain or metric math)."""
    instances: set[str] = set()
    groups: set[str] = set()

    def take(namespace: Any, metric: Any, dims: list[dict[str, Any]]) -> None:
        if namespace != "AWS/EC2" or metric != "CPUUtilization":
            return
        for d in dims:
            if d.get("Name") == "InstanceId":
                instances.add(str(d.get("Value")))
            elif d.get("Name") == "AutoScalingGroupName":
                groups.add(str(d.get("Value")))

    for a in alarms:
        take(a.get("Namespace"), a.get("MetricName"), a.get("Dimensions") or [])
        for m in a.get("Metrics") or []:
            metric = (m.get("MetricStat") or {}).get("Metric") or {}
            take(metric.get("Namespace"), metric.get("MetricName"), metric.get("Dimensions") or [])
    return instances, groups


def check_cpu_alarms(c: Clients, region: str) -> list[Result]:
    alarms = _pages(c.get("cloudwatch", region), "DescribeAlarms", "MetricAlarms", AlarmTypes=["MetricAlarm"])
    watched, groups = _alarm_targets(alarms)
    out = []
    for inst in _instances(c, region, ["pending", "running"]):
        iid = inst["InstanceId"]
        tags = {t.get("Key"): t.get("Value") for t in inst.get("Tags") or []}
        asg = tags.get("aws:autoscaling:groupName")
        if iid in watched:
            out.append(Result("cpu-alarms", region, iid, "pass", "CPUUtilization alarm on the instance"))
        elif asg and asg in groups:
            out.append(Result("cpu-alarms", region, iid, "pass", f"CPUUtilization alarm on Auto Scaling group {asg}"))
        else:
            out.append(
                Result(
                    "cpu-alarms",
                    region,
                    iid,
                    "fail",
                    "no CPUUtilization alarm: sustained mining load goes unseen",
                    f"aws cloudwatch put-metric-alarm --alarm-name cpu-high-{iid} --namespace AWS/EC2 "
                    f"--metric-name CPUUtilization --dimensions Name=InstanceId,Value={iid} --statistic Average "
                    "--period 300 --evaluation-periods 6 --threshold 80 --comparison-operator "
                    f"GreaterThanThreshold --alarm-actions <sns-topic-arn> --region {region}",
                )
            )
    return out or [Result("cpu-alarms", region, None, "pass", "no running instances")]


def check_cloudtrail(c: Clients, region: str) -> list[Result]:
    ct = c.get("cloudtrail", region)
    trails = call_api(ct, "DescribeTrails", {"includeShadowTrails": True}).get("trailList") or []
    fix_new = (
        f"aws cloudtrail create-trail --name minerwatch-trail --s3-bucket-name <bucket> --is-multi-region-trail "
        f"--region {region} && aws cloudtrail start-logging --name minerwatch-trail --region {region}"
    )
    if not trails:
        return [Result("cloudtrail", region, None, "fail", "no trail covers this region", fix_new)]
    stopped = []
    for t in trails:
        arn = t.get("TrailARN") or t.get("Name")
        status = call_api(ct, "GetTrailStatus", {"Name": arn})
        if status.get("IsLogging"):
            scope = "multi-region" if t.get("IsMultiRegionTrail") else "regional"
            return [Result("cloudtrail", region, arn, "pass", f"{scope} trail {t.get('Name')} is logging")]
        stopped.append(t)
    t = stopped[0]
    return [
        Result(
            "cloudtrail",
            region,
            t.get("TrailARN"),
            "fail",
            f"trail {t.get('Name')} exists but is not logging",
            f"aws cloudtrail start-logging --name {t.get('TrailARN')} --region {t.get('HomeRegion') or region}",
        )
    ]


def check_flow_logs(c: Clients, region: str) -> list[Result]:
    ec2 = c.get("ec2", region)
    vpcs = [v["VpcId"] for v in _pages(ec2, "DescribeVpcs", "Vpcs")]
    if not vpcs:
        return [Result("flow-logs", region, None, "pass", "no VPCs")]
    logs = _pages(ec2, "DescribeFlowLogs", "FlowLogs", Filter=[{"Name": "resource-id", "Values": vpcs}])
    out = []
    for vpc in vpcs:
        mine = [f for f in logs if f.get("ResourceId") == vpc and f.get("FlowLogStatus", "ACTIVE") == "ACTIVE"]
        useful = [f for f in mine if f.get("TrafficType") in ("ALL", "ACCEPT")]
        fix = (
            f"aws ec2 create-flow-logs --resource-type VPC --resource-ids {vpc} --traffic-type ALL "
            f"--log-destination-type s3 --log-destination arn:aws:s3:::<bucket>/vpc-flow-logs/ --region {region}"
        )
        if useful:
            out.append(
                Result(
                    "flow-logs",
                    region,
                    vpc,
                    "pass",
                    f"flow log {useful[0].get('FlowLogId')} ({useful[0].get('TrafficType')})",
                )
            )
        elif mine:
            out.append(
                Result(
                    "flow-logs",
                    region,
                    vpc,
                    "fail",
                    "flow logs record rejected traffic only: connections to mining pools are accepted",
                    fix,
                )
            )
        else:
            out.append(Result("flow-logs", region, vpc, "fail", "no active flow log on the VPC", fix))
    return out


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    pattern: str
    """Matches the rule line (Prevention Measures, else Enrichment Opportunities) this check stands for."""
    services: tuple[str, ...]
    run: Callable[[Clients, str], list[Result]]


CHECKS: tuple[Check, ...] = tuple(
    Check(check_id, *spec)
    for check_id, spec in zip(
        CHECK_IDS,
        (
            ("GuardDuty enabled in every region", r"guardduty", ("guardduty",), check_guardduty),
            ("IMDSv2 required on every instance", r"imds|metadata service", ("ec2",), check_imdsv2),
            ("No security group open to 0.0.0.0/0 or ::/0 on SSH/RDP", r"security group", ("ec2",), check_admin_ports),
            ("A CPU alarm on every running instance", r"\bcpu\b", ("cloudwatch", "ec2"), check_cpu_alarms),
            ("CloudTrail logging in every region", r"cloudtrail", ("cloudtrail",), check_cloudtrail),
            ("VPC flow logs on every VPC", r"flow log", ("ec2",), check_flow_logs),
        ),
        strict=True,
    )
)


@dataclass
class PostureOptions:
    regions: str = "all"
    checks: list[str] | None = None


@dataclass
class PostureReport:
    account: str | None
    regions: list[str]
    checks: list[dict[str, str]]
    results: list[Result] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status == "pass" for r in self.results)

    def summary(self) -> list[dict[str, Any]]:
        out = []
        for c in self.checks:
            mine = [r for r in self.results if r.check == c["id"]]
            out.append(
                {
                    **c,
                    "passed": sum(r.status == "pass" for r in mine),
                    "failed": sum(r.status == "fail" for r in mine),
                    "errors": sum(r.status == "error" for r in mine),
                }
            )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "account": self.account,
            "regions": self.regions,
            "checks": self.summary(),
            "results": [r.to_json() for r in self.results],
            "not_checked": self.not_checked,
        }


def _measure(rule: Rule, check: Check) -> str:
    pattern = re.compile(check.pattern, re.I)
    for section, lines in (("Prevention Measures", rule.prevention), ("Enrichment Opportunities", rule.enrichment)):
        for line in lines:
            if pattern.search(line):
                return line if section == "Prevention Measures" else f"{line} ({section})"
    return check.title


def resolve_regions(aws: Aws, regions: str) -> list[str]:
    if regions.strip().lower() != "all":
        out = [r.strip() for r in regions.split(",") if r.strip()]
        if not out:
            raise MinerWatchError("--regions: name at least one region, or all")
        return out
    found = aws.invoke("ec2", "DescribeRegions", {})
    return sorted(str(r["RegionName"]) for r in found.get("Regions") or [])


def run_posture(aws: Aws, options: PostureOptions, rule: Rule) -> PostureReport:
    """Run the checks over the regions; per-region failures to read become ``error`` results, not exceptions."""
    wanted = options.checks or [c.id for c in CHECKS]
    unknown = set(wanted) - {c.id for c in CHECKS}
    if unknown:
        raise MinerWatchError(f"unknown check(s) {', '.join(sorted(unknown))}: {', '.join(c.id for c in CHECKS)}")
    checks = [c for c in CHECKS if c.id in wanted]
    regions = resolve_regions(aws, options.regions)
    try:
        account = str(aws.identity().get("Account") or "") or None
    except AwsError:
        account = None
    clients = Clients(aws, {s for c in checks for s in c.services}, regions)
    tasks = [(c, r) for c in checks for r in regions]

    def run(task: tuple[Check, str]) -> list[Result]:
        check, region = task
        try:
            return check.run(clients, region)
        except AwsError as exc:
            return [
                Result(
                    check.id,
                    region,
                    None,
                    "error",
                    exc.message,
                    "grant read access (e.g. the SecurityAudit managed policy) and re-run",
                )
            ]

    with ThreadPoolExecutor(max_workers=min(8, max(1, len(tasks)))) as pool:
        results = [r for batch in pool.map(run, tasks) for r in batch]
    patterns = [re.compile(c.pattern, re.I) for c in CHECKS]
    not_checked = [line for line in rule.prevention if not any(p.search(line) for p in patterns)]
    return PostureReport(
        account=account,
        regions=regions,
        checks=[{"id": c.id, "title": c.title, "measure": _measure(rule, c)} for c in checks],
        results=results,
        not_checked=not_checked,
    )


_ERROR_CODE = re.compile(r"^\w+: (\w+):")


def unreadable(report: PostureReport) -> PostureReport:
    """The report, unless no check could read anything in the account (every result an error, e.g. the role is
    denied everything): then :class:`AwsError` with the first error, so an ``--org`` run reports the account as
    failed with that reason rather than as a list of errors."""
    if report.results and all(r.status == "error" for r in report.results):
        first = report.results[0]
        match = _ERROR_CODE.match(first.detail)
        raise AwsError(first.detail, code=match.group(1) if match else None)
    return report
