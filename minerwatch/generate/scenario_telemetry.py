"""Network and host telemetry of the scenario's instances: VPC flow log records, Route 53 Resolver query log
records and CloudWatch ``CPUUtilization`` datapoints.

Every host draws from its own random stream (seed, instance id, purpose), so a host's telemetry is the same
whatever else the scenario holds: more benign noise never changes the compromised hosts' records.

Flow records are dicts keyed by the flow log field names of version 5; a region's format picks its fields
(the custom v5 format with all fields, or the default v2 format). Files follow the S3 delivery layouts:

- ``AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/<acct>_vpcflowlogs_<region>_<fl-id>_<YYYYMMDDTHHmmZ>_<hash>.log.gz``
  with the field names as a header line, then one space-separated record a line (``-`` for no value);
- ``AWSLogs/<acct>/vpcdnsquerylogs/<vpc-id>/YYYY/MM/DD/<vpc-id>_vpcdnsquerylogs_<acct>_<YYYYMMDDTHHmmZ>_<hash>.log.gz``
  with one JSON query record a line.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from minerwatch.generate.scenario_world import (
    AZ_IDS,
    CPU_PERIOD,
    DECOY_DOMAINS,
    FLOW_FORMATS,
    FLOW_WINDOW,
    Host,
    World,
    digest,
    epoch,
    iso,
)

V5_FIELDS: tuple[str, ...] = (
    "version",
    "account-id",
    "interface-id",
    "srcaddr",
    "dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "vpc-id",
    "subnet-id",
    "instance-id",
    "tcp-flags",
    "type",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "region",
    "az-id",
    "sublocation-type",
    "sublocation-id",
    "pkt-src-aws-service",
    "pkt-dst-aws-service",
    "flow-direction",
    "traffic-path",
)
V2_FIELDS: tuple[str, ...] = V5_FIELDS[:14]
FORMAT_FIELDS: dict[str, tuple[str, ...]] = {"v5": V5_FIELDS, "v2": V2_FIELDS}

TCP, UDP = 6, 17
SYN, FIN, SYN_ACK = 2, 1, 18
GITHUB = ("140.82.112.3", "140.82.113.4", "140.82.114.3")
GITHUB_OBJECTS = ("185.199.108.133", "185.199.109.133", "185.199.110.133")
PYPI = ("151.101.0.223", "151.101.64.223", "151.101.128.223")
PUBLIC_RESOLVERS = ("1.1.1.1", "8.8.8.8")
SCANNER_PORTS = (23, 445, 3389, 5900, 6379, 9200)


def host_rng(seed: int, h: Host, purpose: str) -> random.Random:
    return random.Random(f"{seed}:{h.instance_id}:{purpose}")


def ip_for(name: str, prefixes: tuple[str, ...]) -> str:
    """A fixed address for a name, so DNS answers and the flows to them agree without shared state."""
    h = hashlib.sha256(name.encode()).digest()
    return f"{prefixes[h[0] % len(prefixes)]}.{h[1]}.{1 + h[2] % 254}"


def aws_endpoint_ip(name: str) -> str:
    return ip_for(name, ("52.94", "52.216", "54.239", "3.5", "52.46"))


def decoy_ip(name: str) -> str:
    # Documentation range 192.0.2.0/24: never a pool address (those are in 198.51.100/24 and 203.0.113/24).
    return f"192.0.2.{1 + hashlib.sha256(name.encode()).digest()[0] % 254}"


# -- flow logs --------------------------------------------------------------------------------------------
def _rec(
    h: Host,
    direction: str,
    src: str,
    dst: str,
    sport: int,
    dport: int,
    proto: int,
    packets: int,
    nbytes: int,
    t0: datetime,
    t1: datetime,
    action: str,
    flags: int,
    aws_service: str = "-",
    path: str = "8",
) -> dict[str, Any]:
    i = h.inst
    egress = direction == "egress"
    return {
        "version": 5,
        "account-id": i.account.account_id,
        "interface-id": i.eni_id,
        "srcaddr": src,
        "dstaddr": dst,
        "srcport": sport,
        "dstport": dport,
        "protocol": proto,
        "packets": packets,
        "bytes": nbytes,
        "start": epoch(t0),
        "end": max(epoch(t1), epoch(t0)),
        "action": action,
        "log-status": "OK",
        "vpc-id": i.vpc_id,
        "subnet-id": i.subnet_id,
        "instance-id": i.instance_id,
        "tcp-flags": flags if proto == TCP else 0,
        "type": "IPv4",
        "pkt-srcaddr": src,
        "pkt-dstaddr": dst,
        "region": i.region,
        "az-id": AZ_IDS[i.az],
        "sublocation-type": "-",
        "sublocation-id": "-",
        "pkt-src-aws-service": "-" if egress else aws_service,
        "pkt-dst-aws-service": aws_service if egress else "-",
        "flow-direction": direction,
        "traffic-path": path if egress else "-",
    }


def _windows(world: World, t0: datetime, t1: datetime) -> Iterable[tuple[datetime, datetime]]:
    """The aggregation windows overlapping [t0, t1)."""
    k = int((t0 - world.start) / FLOW_WINDOW)
    w = world.start + k * FLOW_WINDOW
    while w < t1 and w < world.end:
        yield w, w + FLOW_WINDOW
        w += FLOW_WINDOW


def conversation(
    world: World,
    rng: random.Random,
    h: Host,
    remote: str,
    sport: int,
    dport: int,
    t0: datetime,
    t1: datetime,
    *,
    out_rate: float,
    in_rate: float,
    inbound: bool = False,
    proto: int = TCP,
    aws_service: str = "-",
    path: str = "8",
) -> list[dict[str, Any]]:
    """One connection as the flow log sees it: in each aggregation window a record per direction, bytes at the
    given rates (bytes per second, ±30 %). ``inbound``: the remote side opened it (to the host's ``dport``)."""
    out: list[dict[str, Any]] = []
    me = h.inst.private_ip
    first = True
    for w0, w1 in _windows(world, t0, t1):
        a = max(w0, t0) + timedelta(seconds=rng.uniform(0, 3))
        b = min(w1, t1) - timedelta(seconds=rng.uniform(0, 3))
        secs = max((b - a).total_seconds(), 1.0)
        last = t1 <= w1
        b_out = max(60, int(out_rate * secs * rng.uniform(0.7, 1.3)))
        b_in = max(60, int(in_rate * secs * rng.uniform(0.7, 1.3)))
        p_out, p_in = max(1, b_out // rng.randint(120, 900)), max(1, b_in // rng.randint(300, 1400))
        f_open = (SYN_ACK if inbound else SYN) if first else 0
        f_peer = (SYN if inbound else SYN_ACK) if first else 0
        if last:
            f_open |= FIN
            f_peer |= FIN
        if inbound:  # remote → me:dport, me:dport → remote
            out.append(
                _rec(
                    h, "ingress", remote, me, sport, dport, proto, p_in, b_in, a, b, "ACCEPT", f_peer, aws_service, path
                )
            )
            out.append(
                _rec(
                    h,
                    "egress",
                    me,
                    remote,
                    dport,
                    sport,
                    proto,
                    p_out,
                    b_out,
                    a,
                    b,
                    "ACCEPT",
                    f_open,
                    aws_service,
                    path,
                )
            )
        else:  # me:sport → remote:dport and the replies
            out.append(
                _rec(
                    h,
                    "egress",
                    me,
                    remote,
                    sport,
                    dport,
                    proto,
                    p_out,
                    b_out,
                    a,
                    b,
                    "ACCEPT",
                    f_open,
                    aws_service,
                    path,
                )
            )
            out.append(
                _rec(
                    h, "ingress", remote, me, dport, sport, proto, p_in, b_in, a, b, "ACCEPT", f_peer, aws_service, path
                )
            )
        first = False
    return out


def rejected(
    h: Host, src: str, dst: str, sport: int, dport: int, t: datetime, *, egress: bool, packets: int = 1
) -> dict[str, Any]:
    direction = "egress" if egress else "ingress"
    end = t + timedelta(seconds=2 * (packets - 1))
    return _rec(h, direction, src, dst, sport, dport, TCP, packets, 60 * packets, t, end, "REJECT", SYN)


def eph(rng: random.Random) -> int:
    return rng.randint(32768, 60999)


def miner_flows(world: World, seed: int, h: Host, attacker_ip: str) -> list[dict[str, Any]]:
    """Download of the miner at boot, the attacker's SSH session, refused tries to the first pool, then the
    Stratum connections for as long as the miner runs, and scanners knocking on the opened SSH port."""
    assert h.mining is not None
    rng = host_rng(seed, h, "flows")
    m = h.mining
    me = h.inst.private_ip
    boot = h.launched + timedelta(seconds=50)
    out = conversation(
        world,
        rng,
        h,
        rng.choice(GITHUB),
        eph(rng),
        443,
        boot,
        boot + timedelta(seconds=4),
        out_rate=3_000,
        in_rate=90_000,
    )
    out += conversation(
        world,
        rng,
        h,
        rng.choice(GITHUB_OBJECTS),
        eph(rng),
        443,
        boot + timedelta(seconds=5),
        boot + timedelta(seconds=19),
        out_rate=6_000,
        in_rate=450_000,
    )
    if h.key_name:
        t = h.launched + timedelta(minutes=rng.uniform(1.5, 3))
        out += conversation(
            world,
            rng,
            h,
            attacker_ip,
            eph(rng),
            22,
            t,
            t + timedelta(minutes=rng.uniform(3, 9)),
            out_rate=900,
            in_rate=300,
            inbound=True,
        )
    if m.rejected_pool:
        _, ip, port = m.rejected_pool
        t = m.start - timedelta(seconds=rng.uniform(20, 40))
        for k in range(3):  # the miner retries, then falls back to the next pool
            out.append(rejected(h, me, ip, eph(rng), port, t + timedelta(seconds=6 * k), egress=True, packets=3))
    for seg in m.segments:
        out += conversation(
            world,
            rng,
            h,
            m.pool[1],
            seg.src_port,
            m.pool[2],
            seg.start,
            seg.end,
            out_rate=rng.uniform(120, 260),
            in_rate=rng.uniform(400, 900),
        )
    out += _scanner_flows(world, rng, h, open_ports=(22,))
    return out


def _scanner_flows(world: World, rng: random.Random, h: Host, open_ports: tuple[int, ...]) -> list[dict[str, Any]]:
    """Internet scanners: accepted on the host's open ports, refused elsewhere."""
    out: list[dict[str, Any]] = []
    if not h.inst.public_ip:
        return out
    me = h.inst.private_ip
    for ip in h.scanners:
        t = max(h.launched, world.start) + timedelta(minutes=rng.uniform(20, 300))
        for _ in range(rng.randint(2, 5)):
            if t >= world.end or h.running(t, t + timedelta(seconds=1)) == 0:
                break
            port = rng.choice(open_ports + SCANNER_PORTS)
            if port in open_ports:
                out += conversation(
                    world,
                    rng,
                    h,
                    ip,
                    eph(rng),
                    port,
                    t,
                    t + timedelta(seconds=rng.uniform(1, 6)),
                    out_rate=400,
                    in_rate=300,
                    inbound=True,
                )
            else:
                out.append(rejected(h, ip, me, eph(rng), port, t, egress=False))
            t += timedelta(minutes=rng.uniform(5, 60))
    return out


def clean_flows(world: World, seed: int, h: Host) -> list[dict[str, Any]]:
    """Ordinary traffic: HTTPS to AWS endpoints and package hosts, requests from the load balancer to web
    and API hosts, UDP 53 to a public resolver from workers, decoy-domain HTTPS, scanners refused."""
    rng = host_rng(seed, h, "flows")
    out: list[dict[str, Any]] = []
    region = h.region
    endpoints = [
        f"s3.{region}.amazonaws.com",
        f"dynamodb.{region}.amazonaws.com",
        f"ssm.{region}.amazonaws.com",
        f"kms.{region}.amazonaws.com",
    ]
    services = {"s3": "S3", "dynamodb": "DYNAMODB"}
    alb = [f"10.{h.vpc.octet}.{rng.randint(0, 47)}.{rng.randint(4, 250)}" for _ in range(2)]
    t = max(h.launched, world.start) + timedelta(seconds=rng.uniform(10, 60))
    for w0, w1 in _windows(world, t, world.end):
        lo = max(w0, t)
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(endpoints)
            a = lo + timedelta(seconds=rng.uniform(0, 500))
            if a >= w1:
                continue
            svc = services.get(name.split(".")[0], "AMAZON")
            out += conversation(
                world,
                rng,
                h,
                aws_endpoint_ip(name),
                eph(rng),
                443,
                a,
                a + timedelta(seconds=rng.uniform(1, 90)),
                out_rate=rng.uniform(500, 4000),
                in_rate=rng.uniform(2000, 30000),
                aws_service=svc,
            )
        if h.role in ("web", "api"):
            a = lo + timedelta(seconds=rng.uniform(0, 60))
            out += conversation(
                world,
                rng,
                h,
                rng.choice(alb),
                eph(rng),
                8080,
                a,
                min(w1, world.end),
                out_rate=rng.uniform(2000, 12000),
                in_rate=rng.uniform(500, 3000),
                inbound=True,
                path="1",
            )
        if h.role == "worker" and rng.random() < 0.5:
            a = lo + timedelta(seconds=rng.uniform(0, 500))
            out += conversation(
                world,
                rng,
                h,
                rng.choice(PUBLIC_RESOLVERS),
                eph(rng),
                53,
                a,
                a + timedelta(milliseconds=40),
                out_rate=1500,
                in_rate=4000,
                proto=UDP,
            )
        if rng.random() < 0.08:
            a = lo + timedelta(seconds=rng.uniform(0, 500))
            remote = rng.choice(GITHUB + PYPI)
            out += conversation(
                world,
                rng,
                h,
                remote,
                eph(rng),
                443,
                a,
                a + timedelta(seconds=rng.uniform(2, 20)),
                out_rate=4000,
                in_rate=200_000,
            )
    for name, when in decoy_lookups(world, seed, h):
        out += conversation(
            world,
            rng,
            h,
            decoy_ip(name),
            eph(rng),
            443,
            when + timedelta(seconds=1),
            when + timedelta(seconds=rng.uniform(2, 8)),
            out_rate=2000,
            in_rate=15000,
        )
    open_ports = {"web": (443,), "bastion": (22,)}.get(h.role, ())
    out += _scanner_flows(world, rng, h, open_ports)
    return out


def format_flow(rec: dict[str, Any], fields: tuple[str, ...]) -> str:
    # A format's version is the highest version of the fields it selects.
    version = "2" if fields == V2_FIELDS else "5"
    return " ".join(version if f == "version" else str(rec[f]) for f in fields)


def flow_files(world: World, records: list[dict[str, Any]]) -> list[tuple[str, bytes, int]]:
    """(relative path, uncompressed content, record count) per region and hour of ``start``."""
    acct = world.account.account_id
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["region"], r["start"] // 3600)].append(r)
    out: list[tuple[str, bytes, int]] = []
    for (region, _hour), recs in sorted(groups.items()):
        recs.sort(
            key=lambda r: (
                r["start"],
                r["interface-id"],
                r["end"],
                str(r["srcaddr"]),
                str(r["srcport"]),
                r["flow-direction"],
            )
        )
        fields = FORMAT_FIELDS[FLOW_FORMATS[region]]
        body = (" ".join(fields) + "\n" + "".join(format_flow(r, fields) + "\n" for r in recs)).encode()
        stamp = _stamp(max(r["end"] for r in recs))
        fl = world.vpc(region).flow_log_id
        name = f"{acct}_vpcflowlogs_{region}_{fl}_{stamp:%Y%m%dT%H%MZ}_{digest(body, 8)}.log.gz"
        out.append((f"AWSLogs/{acct}/vpcflowlogs/{region}/{stamp:%Y/%m/%d}/{name}", body, len(recs)))
    return out


def _stamp(last_epoch: int) -> datetime:
    t = datetime.fromtimestamp(last_epoch, UTC) + timedelta(minutes=5)
    return t.replace(second=0, microsecond=0) - timedelta(minutes=t.minute % 5)


# -- Route 53 Resolver query logs -------------------------------------------------------------------------
def query(
    h: Host,
    rng: random.Random,
    t: datetime,
    name: str,
    answers: list[tuple[str, str]],
    *,
    qtype: str = "A",
    rcode: str = "NOERROR",
) -> dict[str, Any]:
    i = h.inst
    return {
        "version": "1.100000",
        "account_id": i.account.account_id,
        "region": i.region,
        "vpc_id": i.vpc_id,
        "query_timestamp": iso(t),
        "query_name": name.rstrip(".") + ".",
        "query_type": qtype,
        "query_class": "IN",
        "rcode": rcode,
        "answers": [{"Rdata": data, "Type": typ, "Class": "IN"} for typ, data in answers],
        "srcaddr": i.private_ip,
        "srcport": str(rng.randint(32768, 60999)),
        "transport": "UDP",
        "srcids": {"instance": i.instance_id},
    }


def miner_queries(seed: int, h: Host) -> list[dict[str, Any]]:
    """The miner's lookups: where to download it from, the refused pool, then its pool before every connect."""
    assert h.mining is not None
    rng = host_rng(seed, h, "dns")
    m = h.mining
    boot = h.launched + timedelta(seconds=48)
    out = [
        query(h, rng, boot, "github.com", [("A", rng.choice(GITHUB))]),
        query(
            h, rng, boot + timedelta(seconds=4), "objects.githubusercontent.com", [("A", ip) for ip in GITHUB_OBJECTS]
        ),
    ]
    if m.rejected_pool:
        out.append(query(h, rng, m.start - timedelta(seconds=45), m.rejected_pool[0], [("A", m.rejected_pool[1])]))
    for seg in m.segments:
        t = seg.start - timedelta(seconds=rng.uniform(0.5, 3))
        out.append(query(h, rng, t, m.pool[0], [("A", m.pool[1])]))
        out.append(query(h, rng, t, m.pool[0], [], qtype="AAAA"))
    return out


def decoy_lookups(world: World, seed: int, h: Host) -> list[tuple[str, datetime]]:
    """When a clean host looks up a decoy domain (some hosts never do)."""
    rng = host_rng(seed, h, "decoys")
    if rng.random() < 0.4:
        return []
    t0 = max(h.launched, world.start)
    span = (world.end - t0).total_seconds()
    picks = rng.sample(DECOY_DOMAINS, rng.randint(1, len(DECOY_DOMAINS)))
    return sorted((d, t0 + timedelta(seconds=rng.uniform(60, max(span - 60, 61)))) for d in picks)


def clean_queries(world: World, seed: int, h: Host) -> list[dict[str, Any]]:
    rng = host_rng(seed, h, "dns")
    region = h.region
    names = [
        f"ssm.{region}.amazonaws.com",
        f"ec2messages.{region}.amazonaws.com",
        f"s3.{region}.amazonaws.com",
        f"dynamodb.{region}.amazonaws.com",
        f"kms.{region}.amazonaws.com",
        f"secretsmanager.{region}.amazonaws.com",
        "sts.amazonaws.com",
    ]
    out: list[dict[str, Any]] = []
    t = max(h.launched, world.start) + timedelta(seconds=rng.uniform(5, 60))
    while t < world.end:
        name = rng.choice(names)
        out.append(query(h, rng, t, name, [("A", aws_endpoint_ip(name))]))
        roll = rng.random()
        if roll < 0.1:
            out.append(query(h, rng, t, "github.com", [("A", rng.choice(GITHUB))]))
        elif roll < 0.2:
            out.append(query(h, rng, t, "pypi.org", [("A", ip) for ip in PYPI]))
            out.append(
                query(
                    h,
                    rng,
                    t + timedelta(seconds=1),
                    "files.pythonhosted.org",
                    [("CNAME", "dualstack.python.map.fastly.net.")] + [("A", ip) for ip in PYPI[:2]],
                )
            )
        elif roll < 0.25:
            rev = ".".join(reversed(h.inst.private_ip.split(".")))
            out.append(query(h, rng, t, f"{rev}.in-addr.arpa", [("PTR", h.inst.private_dns() + ".")], qtype="PTR"))
        elif roll < 0.28:
            out.append(query(h, rng, t, "metrics.internal.example.com", [], rcode="NXDOMAIN"))
        t += timedelta(minutes=rng.uniform(3, 12))
    for name, when in decoy_lookups(world, seed, h):
        out.append(query(h, rng, when, name, [("A", decoy_ip(name))]))
    return out


def dns_files(world: World, records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(relative path, records) per VPC and hour of query time."""
    acct = world.account.account_id
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["vpc_id"], r["query_timestamp"][:13])].append(r)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for (vpc, _hour), recs in sorted(groups.items()):
        recs.sort(key=lambda r: (r["query_timestamp"], r["srcids"]["instance"], r["query_name"], r["query_type"]))
        last = datetime.strptime(recs[-1]["query_timestamp"], "%Y-%m-%dT%H:%M:%S%z")
        stamp = _stamp(epoch(last))
        key = "".join(r["query_timestamp"] + r["query_name"] for r in recs).encode()
        name = f"{vpc}_vpcdnsquerylogs_{acct}_{stamp:%Y%m%dT%H%MZ}_{digest(key, 8)}.log.gz"
        out.append((f"AWSLogs/{acct}/vpcdnsquerylogs/{vpc}/{stamp:%Y/%m/%d}/{name}", recs))
    return out


# -- CloudWatch ---------------------------------------------------------------------------------------------
def cpu_datapoints(world: World, seed: int, h: Host) -> list[dict[str, Any]]:
    """``CPUUtilization`` per 5-minute period while the host runs: 95-100 % while the miner runs, the boot
    and idle load otherwise; clean hosts 5-40 % around their own baseline."""
    rng = host_rng(seed, h, "cpu")
    base = rng.uniform(8, 28)
    out: list[dict[str, Any]] = []
    t = world.start
    while t < world.end:
        t1 = t + CPU_PERIOD
        up = h.running(t, t1)
        if up > 0:
            if h.mining is not None:
                mine = min(h.mining.active(t, t1), up)
                idle = rng.uniform(12, 35)
                level = rng.uniform(96.5, 99.9)
                avg = (mine * level + (up - mine) * idle) / up
                peak = 100.0 if mine > 0 else min(100.0, idle + rng.uniform(5, 25))
            else:
                hour = (t - world.start).total_seconds() / 3600
                diurnal = 6 * (1 if 2 <= hour <= 10 else 0)
                avg = min(40.0, max(5.0, base + diurnal + rng.gauss(0, 4)))
                peak = min(100.0, avg + rng.uniform(2, 15))
            out.append(
                {
                    "namespace": "AWS/EC2",
                    "metric": "CPUUtilization",
                    "instance_id": h.instance_id,
                    "region": h.region,
                    "account_id": h.inst.account.account_id,
                    "timestamp": iso(t),
                    "average": round(avg, 4),
                    "maximum": round(max(peak, avg), 4),
                    "unit": "Percent",
                }
            )
        t = t1
    return out
