"""GuardDuty findings of the scenario, built with the findings generator's own builder
(:func:`minerwatch.generate.builders.build_finding`) and then pinned to what the other logs show: the pool,
port and local port of the Stratum connection, the scanner that probed, the attacker's address and the API
the leaked key called.

Recurring findings are re-sent as GuardDuty does: same ``id``, later ``updatedAt``, higher ``service.count``.
Files follow the S3 export layout ``AWSLogs/<acct>/GuardDuty/<region>/YYYY/MM/DD/<uuid>.jsonl.gz``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from minerwatch.generate.builders import Target, build_finding
from minerwatch.generate.findings import _snapshot
from minerwatch.generate.fleet import Principal, remote_ip_details
from minerwatch.generate.scenario_telemetry import host_rng
from minerwatch.generate.scenario_world import Host, Identity, World, uuid_of
from minerwatch.generate.vocabulary import BENIGN, CRYPTO, Kind

CRYPTO_TYPES: tuple[str, str] = ("CryptoCurrency:EC2/BitcoinTool.B!DNS", "CryptoCurrency:EC2/BitcoinTool.B")
_BENIGN = {k.type: k for k in BENIGN}
PROBE = _BENIGN["Recon:EC2/PortProbeUnprotectedPort"]
SSH_BRUTE = _BENIGN["UnauthorizedAccess:EC2/SSHBruteForce"]
DISCOVERY = _BENIGN["Discovery:IAMUser/AnomalousBehavior"]
MALICIOUS_CALLER = _BENIGN["Recon:IAMUser/MaliciousIPCaller"]
PORT_NAMES = {22: "SSH", 443: "HTTPS", 80: "HTTP"}


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z")


def _recurring(
    rng: random.Random, base: dict[str, Any], until: datetime, every: tuple[float, float], h: Host | None = None
) -> list[dict[str, Any]]:
    """``base`` and its re-sends until ``until``; none while the host is stopped (the activity paused)."""
    out = [base]
    t = _parse(base["updatedAt"])
    count = 1
    while True:
        t += timedelta(minutes=rng.uniform(*every), milliseconds=rng.randint(0, 999))
        if t > until:
            return out
        if h is not None and h.running(t - timedelta(minutes=5), t) == 0:
            continue
        count += rng.randint(2, 14)
        out.append(_snapshot(base, t, count))


def _instance_target(h: Host) -> Target:
    return Target(h.inst.account, h.region, instance=h.inst)


def crypto_findings(world: World, seed: int, h: Host) -> list[dict[str, Any]]:
    """BitcoinTool.B!DNS (the pool's name looked up) and BitcoinTool.B (the Stratum connection) on a mining
    host, each re-sent about hourly while the miner runs."""
    assert h.mining is not None
    rng = host_rng(seed, h, "guardduty")
    m = h.mining
    first_seg = m.segments[0]
    out: list[dict[str, Any]] = []
    for ftype in CRYPTO_TYPES:
        kind = CRYPTO[ftype]
        lag = (4, 12) if ftype.endswith("!DNS") else (8, 20)
        created = m.start + timedelta(minutes=rng.uniform(*lag), milliseconds=rng.randint(0, 999))
        base = build_finding(rng, kind, _instance_target(h), created, m.start, pool=m.pool)
        action = base["service"]["action"]
        if "networkConnectionAction" in action:
            action["networkConnectionAction"]["localPortDetails"] = {"port": first_seg.src_port, "portName": "Unknown"}
        out += _recurring(rng, base, m.end, (50, 70), h)
    return out


def probe_finding(world: World, seed: int, h: Host, port: int) -> list[dict[str, Any]]:
    """Recon:EC2/PortProbeUnprotectedPort: the host's first scanner probing an open ``port``."""
    rng = host_rng(seed, h, "probe")
    created = max(h.launched, world.start) + timedelta(minutes=rng.uniform(40, 120), milliseconds=rng.randint(0, 999))
    if created >= world.end or not h.scanners:
        return []
    base = build_finding(rng, PROBE, _instance_target(h), created, created - timedelta(minutes=rng.uniform(5, 25)))
    detail = base["service"]["action"]["portProbeAction"]["portProbeDetails"][0]
    detail["localPortDetails"] = {"port": port, "portName": PORT_NAMES.get(port, "Unknown")}
    detail["remoteIpDetails"] = remote_ip_details(h.scanners[0])
    return _recurring(rng, base, world.end, (90, 240), h)


def ssh_brute_force(world: World, seed: int, h: Host) -> list[dict[str, Any]]:
    rng = host_rng(seed, h, "ssh-brute")
    if not h.scanners:
        return []
    created = max(h.launched, world.start) + timedelta(minutes=rng.uniform(60, 240), milliseconds=rng.randint(0, 999))
    base = build_finding(rng, SSH_BRUTE, _instance_target(h), created, created - timedelta(minutes=20))
    ip = h.scanners[-1]
    base["service"]["action"]["networkConnectionAction"]["remoteIpDetails"] = remote_ip_details(ip)
    values = {"ip": ip, "instance": h.instance_id}
    base["title"] = SSH_BRUTE.title.format(**values)
    base["description"] = SSH_BRUTE.description.format(**values)
    return _recurring(rng, base, world.end, (60, 180), h)


def api_finding(
    rng: random.Random,
    world: World,
    kind: Kind,
    who: Identity,
    created: datetime,
    first_seen: datetime,
    *,
    api: str,
    service: str,
    ip: str,
    user_agent: str,
    until: datetime,
) -> list[dict[str, Any]]:
    """A finding about an access key (``resource.accessKeyDetails``) for a call seen in CloudTrail."""
    principal = Principal(world.account, who.name, who.kind, who.principal_id, who.access_key_id)
    base = build_finding(rng, kind, Target(world.account, "us-east-1", principal=principal), created, first_seen)
    base["service"]["action"]["awsApiCallAction"] = {
        "api": api,
        "serviceName": service,
        "callerType": "Remote IP",
        "remoteIpDetails": remote_ip_details(ip),
        "userAgent": user_agent,
        "affectedResources": {},
    }
    values = {"user": who.name, "api": api, "ip": ip}
    base["title"] = kind.title.format(**values)
    base["description"] = kind.description.format(**values)
    return _recurring(rng, base, until, (60, 120))


def summarise(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per finding id: type, severity, how many deliveries, first and last ``updatedAt``."""
    by_id: dict[str, dict[str, Any]] = {}
    for f in findings:
        e = by_id.setdefault(
            f["id"],
            {
                "id": f["id"],
                "type": f["type"],
                "severity": f["severity"],
                "deliveries": 0,
                "created_at": f["createdAt"],
                "last_updated_at": f["updatedAt"],
                "max_count": 0,
            },
        )
        e["deliveries"] += 1
        e["last_updated_at"] = max(e["last_updated_at"], f["updatedAt"])
        e["max_count"] = max(e["max_count"], f["service"]["count"])
    return sorted(by_id.values(), key=lambda e: (e["created_at"], e["id"]))


def guardduty_files(world: World, findings: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(relative path, findings) per region and hour of ``updatedAt``, as the S3 export writes them."""
    acct = world.account.account_id
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in sorted(findings, key=lambda f: (f["updatedAt"], f["id"])):
        groups[(f["region"], f["updatedAt"][:13])].append(f)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for (region, hour), recs in sorted(groups.items()):
        day = hour[:10].replace("-", "/")
        name = uuid_of(("".join(f["id"] + f["updatedAt"] for f in recs)).encode())
        out.append((f"AWSLogs/{acct}/GuardDuty/{region}/{day}/{name}.jsonl.gz", recs))
    return out
