"""Amazon Inspector section: the instance's vulnerable packages and network-reachability findings, summarised by
severity, with the exposed services that may explain how the attacker got in.

*Source*: ``--inspector-findings FILE`` (the JSON ``aws inspector2 list-findings`` prints), or ``--inspector``:
``BatchGetAccountStatus`` for the alert's account (is EC2 scanning activated?) then ``ListFindings`` filtered by
``resourceId`` = the instance, every page, in the instance's region. Findings of every status are read; the
severity counts and the top list are of ``ACTIVE`` ones, the others are counted by status.

*Exposed services*: ``NETWORK_REACHABILITY`` findings, open port range and protocol, reachable from the internet
when the path goes through an internet gateway, named by the well-known service of the port (SSH, RDP, HTTP …).

*Initial access*: a remote-administration port (SSH, RDP, Telnet, WinRM) reachable from the internet, and a
HIGH or CRITICAL vulnerability in a package that serves the network (web servers, OpenSSH, Redis …), said with
whether a port of the instance is reachable from the internet. They are leads, not proof.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from minerwatch.alerting.alerts import iso
from minerwatch.enrich.awsread import (
    client,
    file_warnings,
    instant,
    read_cli_output,
    refusal,
    session_or_default,
)
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.sections import RejectLog, ev, make_section, unavailable

INSPECTOR = "inspector"
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNTRIAGED")
TOP = 10
SERVICES: dict[int, str] = {
    21: "FTP", 22: "SSH", 23: "Telnet", 25: "SMTP", 80: "HTTP", 443: "HTTPS", 445: "SMB", 1433: "MS SQL",
    2375: "Docker API", 2376: "Docker API (TLS)", 3306: "MySQL", 3389: "RDP", 5432: "PostgreSQL", 5900: "VNC",
    5985: "WinRM", 5986: "WinRM (TLS)", 6379: "Redis", 6443: "Kubernetes API", 7001: "WebLogic", 8080: "HTTP (alt)",
    8443: "HTTPS (alt)", 8888: "Jupyter", 9200: "Elasticsearch", 10250: "kubelet", 11211: "Memcached",
    27017: "MongoDB",
}  # fmt: skip
REMOTE_ADMIN = frozenset({22, 23, 3389, 5900, 5985, 5986})
NETWORK_PACKAGES = (
    "openssh", "nginx", "apache2", "httpd", "tomcat", "jetty", "jenkins", "log4j", "php", "redis", "docker",
    "containerd", "confluence", "weblogic", "elasticsearch", "mongodb", "mysql", "mariadb", "postgresql", "jupyter",
    "openssl", "samba", "exim", "postfix", "sendmail", "bind9", "vsftpd", "proftpd", "node", "spring",
)  # fmt: skip
"""Package-name fragments of software that listens on the network: a flaw there is a way in."""


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


@dataclass
class _Finding:
    doc: dict[str, Any]
    source: str
    instance_id: str

    @property
    def type(self) -> str:
        return str(self.doc.get("type") or "?")

    @property
    def severity(self) -> str:
        s = str(self.doc.get("severity") or "UNTRIAGED").upper()
        return s if s in SEVERITIES else "UNTRIAGED"

    @property
    def status(self) -> str:
        return str(self.doc.get("status") or "ACTIVE").upper()

    @property
    def first(self) -> datetime | None:
        return instant(self.doc.get("firstObservedAt"))

    @property
    def score(self) -> float:
        s = self.doc.get("inspectorScore")
        return float(s) if isinstance(s, int | float) and not isinstance(s, bool) else 0.0


def _instance_of(doc: dict[str, Any], instances: dict[str, Any]) -> str | None:
    for r in _list(doc.get("resources")):
        rid = str(_obj(r).get("id") or "")
        tail = rid.rsplit("/", 1)[-1]  # an ARN names the instance after its last slash
        if tail in instances:
            return tail
    return None


def service_of(begin: int, end: int) -> str:
    names = [f"{SERVICES[p]}" for p in sorted(SERVICES) if begin <= p <= end]
    if begin != end and len(names) > 3:
        return f"ports {begin}-{end} ({', '.join(names[:3])} …)"
    return ", ".join(names) if names else "unknown service"


def _reachability(f: _Finding) -> dict[str, Any]:
    d = _obj(f.doc.get("networkReachabilityDetails"))
    rng = _obj(d.get("openPortRange"))
    begin, end = rng.get("begin"), rng.get("end")
    begin = begin if isinstance(begin, int) else -1
    end = end if isinstance(end, int) else begin
    steps = [_obj(s) for s in _list(_obj(d.get("networkPath")).get("steps"))]
    gateways = [str(s.get("componentId")) for s in steps if s.get("componentType") == "AWS::EC2::InternetGateway"]
    protocol = str(d.get("protocol") or "TCP").lower()
    ports = f"{protocol}/{begin}" if begin == end else f"{protocol}/{begin}-{end}"
    return {
        "ports": ports,
        "port_begin": begin,
        "port_end": end,
        "service": service_of(begin, end),
        "from_internet": bool(gateways),
        "path": [f"{s.get('componentType')}:{s.get('componentId')}" for s in steps],
        "remote_admin": any(begin <= p <= end for p in REMOTE_ADMIN),
    }


def _vulnerability(f: _Finding) -> dict[str, Any]:
    d = _obj(f.doc.get("packageVulnerabilityDetails"))
    packages = [
        {
            "name": p.get("name"),
            "version": p.get("version"),
            "fixed_in": p.get("fixedInVersion"),
            "package_manager": p.get("packageManager"),
        }
        for p in (_obj(x) for x in _list(d.get("vulnerablePackages")))
    ]
    names = " ".join(str(p["name"] or "").lower() for p in packages)
    return {
        "cve": d.get("vulnerabilityId"),
        "packages": packages,
        "source_url": d.get("sourceUrl"),
        "network_service": next((n for n in NETWORK_PACKAGES if n in names), None),
        "exploit_available": f.doc.get("exploitAvailable"),
        "fix_available": f.doc.get("fixAvailable"),
    }


def _package_text(packages: list[dict[str, Any]]) -> str:
    parts = []
    for p in packages[:3]:
        fixed = f", fixed in {p['fixed_in']}" if p.get("fixed_in") else ", no fix listed"
        parts.append(f"{p.get('name')} {p.get('version')}{fixed}")
    more = f" (+{len(packages) - 3} more)" if len(packages) > 3 else ""
    return "; ".join(parts) + more if parts else "no package listed"


def _api_findings(ctx: AlertContext, session: Any) -> tuple[list[_Finding], dict[str, Any], list[str], str | None]:
    """(findings, report, warnings, reason when Inspector cannot answer)."""
    session = session_or_default(session)
    found: list[_Finding] = []
    warnings: list[str] = []
    report: dict[str, Any] = {"option": "--inspector", "api_calls": 0, "records_read": 0}
    for iid, facts in ctx.instances.items():
        region = facts.region or ctx.region
        inspector = client(session, "inspector2", region)
        account = facts.account_id or ctx.account_id
        where = f"account {account} in {region}" if account else f"{region}"
        if account:
            try:
                status = inspector.batch_get_account_status(accountIds=[account])
                report["api_calls"] += 1
                states = [s for s in status.get("accounts") or [] if s.get("accountId") == account]
                ec2 = _obj(_obj(states[0].get("resourceState")).get("ec2")) if states else {}
                if ec2.get("status") != "ENABLED":
                    state = ec2.get("status") or "not activated"
                    return [], report, warnings, f"Amazon Inspector EC2 scanning is {state.lower()} for {where}"
            except Exception as exc:  # the status is a courtesy: without the permission, ask for findings anyway
                warnings.append(refusal(exc, "inspector2:BatchGetAccountStatus"))
        criteria = {"resourceId": [{"comparison": "EQUALS", "value": iid}]}
        try:
            for page in inspector.get_paginator("list_findings").paginate(
                filterCriteria=criteria, PaginationConfig={"PageSize": 100}
            ):
                report["api_calls"] += 1
                for n, doc in enumerate(page.get("findings") or []):
                    report["records_read"] += 1
                    src = f"inspector2:{region}:{doc.get('findingArn') or iid + '#' + str(n)}"
                    found.append(_Finding(doc, src, _instance_of(doc, ctx.instances) or iid))
        except Exception as exc:
            return [], report, warnings, refusal(exc, "inspector2:ListFindings")
    return found, report, warnings, None


def inspector_section(
    ctx: AlertContext, *, files: list[str] | None, api: bool, session: Any, rejects: RejectLog
) -> dict[str, Any]:
    if not files and not api:
        return unavailable(INSPECTOR, "no --inspector-findings or --inspector given")
    if not ctx.instances:
        return unavailable(INSPECTOR, "the alert names no instance")
    if files:
        items, report = read_cli_output(files, "--inspector-findings", "findings", rejects)
        warnings = file_warnings(report)
        if report["rejected"] and not report["accepted"]:
            reason = f"every record of --inspector-findings was rejected ({report['rejected']})"
            return unavailable(INSPECTOR, reason, report)
        findings = [
            _Finding(i.doc, i.source, iid) for i in items if (iid := _instance_of(i.doc, ctx.instances)) is not None
        ]
        report["other_resources"] = len(items) - len(findings)
    else:
        findings, report, warnings, reason = _api_findings(ctx, session)
        if reason:
            return unavailable(INSPECTOR, reason, report)
    return _build(ctx, findings, report, warnings)


def _build(
    ctx: AlertContext, findings: list[_Finding], report: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (rank[f.severity], -f.score, iso(f.first) if f.first else ""))
    active = [f for f in findings if f.status == "ACTIVE"]
    by_severity = {s: n for s in SEVERITIES if (n := sum(f.severity == s for f in active))}
    by_status: dict[str, int] = {}
    evidence: list[dict[str, Any]] = []
    exposed: list[dict[str, Any]] = []
    vulnerable: list[dict[str, Any]] = []
    for f in findings:
        by_status[f.status] = by_status.get(f.status, 0) + 1
        base = {
            "instance_id": f.instance_id, "finding_arn": f.doc.get("findingArn"), "finding_type": f.type,
            "severity": f.severity, "status": f.status, "title": f.doc.get("title"),
            "inspector_score": f.doc.get("inspectorScore"),
            "first_observed": iso(f.first) if f.first else None,
            "last_observed": iso(t) if (t := instant(f.doc.get("lastObservedAt"))) else None,
        }  # fmt: skip
        status = "" if f.status == "ACTIVE" else f", {f.status.lower()}"
        if f.type == "NETWORK_REACHABILITY":
            reach = _reachability(f)
            where = "from the internet" if reach["from_internet"] else "within the VPC"
            what = f"{f.instance_id}: {reach['ports']} ({reach['service']}) reachable {where} ({f.severity}{status})"
            entry = {**base, **reach}
            if f.status == "ACTIVE":
                exposed.append(entry)
        elif f.type == "PACKAGE_VULNERABILITY":
            vuln = _vulnerability(f)
            what = (
                f"{f.instance_id}: {vuln['cve'] or f.doc.get('title')} {f.severity}{status} in "
                f"{_package_text(vuln['packages'])}"
            )
            entry = {**base, **vuln}
            if f.status == "ACTIVE":
                vulnerable.append(entry)
        else:
            what = f"{f.instance_id}: {f.type} {f.severity}{status}: {f.doc.get('title')}"
            entry = base
        evidence.append(ev(f.first, f.source, what, **entry))
    internet = [e for e in exposed if e["from_internet"]]
    leads: list[str] = []
    for e in internet:
        if e["remote_admin"]:
            leads.append(f"{e['service']} ({e['ports']}) open to the internet")
    open_ports = ", ".join(e["ports"] for e in internet)
    for v in vulnerable:
        if v["network_service"] and v["severity"] in ("CRITICAL", "HIGH"):
            reach = f"with {open_ports} reachable from the internet" if internet else "no port known reachable"
            leads.append(
                f"vulnerable {v['network_service']} ({v['cve']}, {v['severity']}, "
                f"{_package_text(v['packages'])}) {reach}"
            )
    top = [
        {k: v.get(k) for k in ("cve", "severity", "inspector_score", "packages", "exploit_available", "title")}
        for v in vulnerable[:TOP]
    ]
    summary = {
        "findings": len(findings),
        "active_by_severity": by_severity,
        "by_status": dict(sorted(by_status.items())),
        "top_vulnerabilities": top,
        "exposed_services": [
            {k: e[k] for k in ("ports", "service", "from_internet", "path", "severity")} for e in exposed
        ],
        "initial_access_leads": leads,
        "instances": sorted({f.instance_id for f in findings}),
    }
    if not findings:
        reason = f"no Amazon Inspector finding on {', '.join(ctx.instances)}"
        return make_section(INSPECTOR, "empty", reason=reason, summary=summary, source=report, warnings=warnings)
    counts = ", ".join(f"{s} {n}" for s, n in by_severity.items()) or "none active"
    headline = f"{len(active)} active finding(s) ({counts})"
    if internet:
        headline += "; exposed: " + ", ".join(f"{e['service']} {e['ports']} from the internet" for e in internet[:3])
    if leads:
        headline += "; possible way in: " + leads[0]
    return make_section(
        INSPECTOR, "ok", headline=headline, summary=summary, evidence=evidence, source=report, warnings=warnings
    )


__all__ = ["INSPECTOR", "inspector_section"]
