"""The compromise scenario: files in the AWS delivery formats, ground truth that matches their content,
determinism, the CLI, and detection over its GuardDuty export.

The log files are read back here with plain ``json`` / ``gzip`` (independent of the project's readers); the
readers are checked separately to load every file without a reject.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.generate.scenario import ScenarioError, write_scenario

SEEDS = (11, 2024)
SEED_IOCS = ("moneropool.com", "minergate.com", "nanopool.org", "ethermine.org")
STRATUM = {3333, 4444, 14444}
V2 = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
)
V5 = (
    V2 + " vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr region az-id sublocation-type "
    "sublocation-id pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path"
)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
DATE = r"(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})"
STAMP = r"(?P<stamp>\d{8}T\d{4}Z)"
LAYOUTS = {
    "cloudtrail": re.compile(
        rf"^AWSLogs/(?P<acct>\d{{12}})/CloudTrail/(?P<region>[a-z]{{2}}-[a-z]+-\d)/{DATE}/"
        rf"(?P=acct)_CloudTrail_(?P=region)_{STAMP}_[A-Za-z0-9]{{16}}\.json\.gz$"
    ),
    "vpcflow": re.compile(
        rf"^AWSLogs/(?P<acct>\d{{12}})/vpcflowlogs/(?P<region>[a-z]{{2}}-[a-z]+-\d)/{DATE}/"
        rf"(?P=acct)_vpcflowlogs_(?P=region)_fl-[0-9a-f]{{17}}_{STAMP}_[0-9a-f]{{8}}\.log\.gz$"
    ),
    "route53": re.compile(
        rf"^AWSLogs/(?P<acct>\d{{12}})/vpcdnsquerylogs/(?P<vpc>vpc-[0-9a-f]{{17}})/{DATE}/"
        rf"(?P=vpc)_vpcdnsquerylogs_(?P=acct)_{STAMP}_[0-9a-f]{{8}}\.log\.gz$"
    ),
    "guardduty": re.compile(
        rf"^AWSLogs/(?P<acct>\d{{12}})/GuardDuty/(?P<region>[a-z]{{2}}-[a-z]+-\d)/{DATE}/{UUID}\.jsonl\.gz$"
    ),
}


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def under(name: str, domain: str) -> bool:
    """An IOC domain match on whole labels: the name is the domain or a subdomain of it."""
    n = name.rstrip(".").lower()
    return n == domain or n.endswith("." + domain)


@dataclass
class Data:
    root: Path
    manifest: dict[str, Any]
    files: dict[str, list[Path]] = field(default_factory=dict)
    trail: list[dict[str, Any]] = field(default_factory=list)
    flows: list[dict[str, str]] = field(default_factory=list)
    headers: dict[str, set[str]] = field(default_factory=dict)
    dns: list[dict[str, Any]] = field(default_factory=list)
    cpu: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)

    def events(self, event_id: str) -> dict[str, Any]:
        return next(r for r in self.trail if r["eventID"] == event_id)


def load(root: Path) -> Data:
    d = Data(root, json.loads((root / "manifest.json").read_text()))
    for source in ("cloudtrail", "vpcflow", "route53", "guardduty"):
        d.files[source] = sorted(p for p in (root / source).rglob("*") if p.is_file())
    for p in d.files["cloudtrail"]:
        doc = json.loads(gzip.decompress(p.read_bytes()))
        assert list(doc) == ["Records"], p
        d.trail += doc["Records"]
    for p in d.files["vpcflow"]:
        lines = gzip.decompress(p.read_bytes()).decode().splitlines()
        header = lines[0].split(" ")
        region = p.parts[p.parts.index("vpcflowlogs") + 1]
        d.headers.setdefault(region, set()).add(" ".join(header))
        for line in lines[1:]:
            parts = line.split(" ")
            assert len(parts) == len(header), (p, line)
            d.flows.append(dict(zip(header, parts, strict=True)) | {"_region": region})
    for p in d.files["route53"]:
        d.dns += [json.loads(x) for x in gzip.decompress(p.read_bytes()).splitlines()]
    d.cpu = [json.loads(x) for x in (root / "metrics" / "cpu.jsonl").read_text().splitlines()]
    for p in d.files["guardduty"]:
        d.findings += [json.loads(x) for x in gzip.decompress(p.read_bytes()).splitlines()]
    return d


@pytest.fixture(scope="module", params=SEEDS)
def data(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Data:
    root = tmp_path_factory.mktemp(f"scenario{request.param}") / "out"
    write_scenario(root, seed=request.param)
    return load(root)


def generate(root: Path, seed: int, noise: float = 1.0) -> Path:
    write_scenario(root, seed=seed, noise=noise)
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- determinism and size -----------------------------------------------------------------------------------
def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    write_scenario(tmp_path / "a", seed=5)
    write_scenario(tmp_path / "b", seed=5)
    write_scenario(tmp_path / "c", seed=6)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert a == b
    assert len(a) > 50
    assert not set(a) & set(c) - {"metrics/cpu.jsonl", "manifest.json"}
    assert a["manifest.json"] != c["manifest.json"]


def test_the_story_does_not_depend_on_the_noise(tmp_path: Path) -> None:
    quiet = load(generate(tmp_path / "q", 9, 0.5))
    loud = load(generate(tmp_path / "l", 9, 3))
    for key in ("attack_events", "compromised_instances", "principal", "attacker", "iam_findings"):
        assert quiet.manifest[key] == loud.manifest[key], key
    enis = {c["eni_id"] for c in quiet.manifest["compromised_instances"]}

    def story_flows(d: Data) -> list[dict[str, str]]:
        return sorted((f for f in d.flows if f["interface-id"] in enis), key=lambda f: sorted(f.items()))

    assert story_flows(quiet) == story_flows(loud)
    attack_ids = {e["event_id"] for e in quiet.manifest["attack_events"]}
    assert [r for r in quiet.trail if r["eventID"] in attack_ids] == [
        r for r in loud.trail if r["eventID"] in attack_ids
    ]
    assert len(loud.manifest["clean_instances"]) > len(quiet.manifest["clean_instances"])
    for source in ("cloudtrail", "vpcflow", "route53", "metrics"):
        assert loud.manifest["counts"][source]["records"] > quiet.manifest["counts"][source]["records"], source


def test_noise_zero_is_the_attack_alone(tmp_path: Path) -> None:
    d = load(generate(tmp_path / "z", 3, 0))
    assert d.manifest["clean_instances"] == []
    assert len(d.manifest["compromised_instances"]) == 5
    hosts = {c["instance_id"] for c in d.manifest["compromised_instances"]}
    assert {q["srcids"]["instance"] for q in d.dns} == hosts
    assert {p["instance_id"] for p in d.cpu} == hosts


def test_default_output_is_small(data: Data) -> None:
    total = sum(p.stat().st_size for p in data.root.rglob("*") if p.is_file())
    assert total < 3 * 1024 * 1024
    assert sum(c["bytes"] for c in data.manifest["counts"].values()) <= total


# -- formats ------------------------------------------------------------------------------------------------
def test_every_file_follows_its_s3_delivery_layout(data: Data) -> None:
    acct = data.manifest["account_id"]
    vpcs = {v["vpc_id"] for v in data.manifest["vpcs"].values()}
    for source, pattern in LAYOUTS.items():
        assert data.files[source], source
        for p in data.files[source]:
            rel = str(p.relative_to(data.root / source))
            m = pattern.match(rel)
            assert m, rel
            assert m["acct"] == acct
            if "stamp" in pattern.groupindex:
                assert m["stamp"][:8] == m["y"] + m["m"] + m["d"], rel
            if "vpc" in pattern.groupindex:
                assert m["vpc"] in vpcs
    listed = {f["path"] for items in data.manifest["files"].values() for f in items}
    on_disk = {str(p.relative_to(data.root)) for p in data.root.rglob("*") if p.is_file()} - {"manifest.json"}
    assert listed == on_disk


def test_cloudtrail_records_have_the_management_event_shape(data: Data) -> None:
    acct = data.manifest["account_id"]
    ids = [r["eventID"] for r in data.trail]
    assert len(ids) == len(set(ids))
    for p in data.files["cloudtrail"]:
        region = p.parts[p.parts.index("CloudTrail") + 1]
        records = json.loads(gzip.decompress(p.read_bytes()))["Records"]
        assert {r["awsRegion"] for r in records} == {region}
        assert [r["eventTime"] for r in records] == sorted(r["eventTime"] for r in records)
    for r in data.trail:
        for key in (
            "eventVersion",
            "userIdentity",
            "eventTime",
            "eventSource",
            "eventName",
            "awsRegion",
            "sourceIPAddress",
            "userAgent",
            "requestParameters",
            "responseElements",
            "requestID",
            "eventID",
            "readOnly",
            "eventType",
            "recipientAccountId",
        ):
            assert key in r, (key, r["eventName"])
        assert re.fullmatch(UUID, r["eventID"])
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["eventTime"])
        assert r["recipientAccountId"] == acct
        assert r["eventSource"].endswith(".amazonaws.com")
        who = r["userIdentity"]
        assert who["type"] in ("IAMUser", "AssumedRole", "AWSService")
        if who["type"] == "AssumedRole":
            assert who["sessionContext"]["sessionIssuer"]["type"] == "Role"
            assert who["accessKeyId"].startswith("ASIA")
        if r["eventType"] == "AwsConsoleSignIn":
            assert r["eventName"] == "ConsoleLogin"
            assert r["additionalEventData"]["MFAUsed"] in ("Yes", "No")
    assert data.manifest["window"]["start"] <= min(r["eventTime"] for r in data.trail)
    assert max(r["eventTime"] for r in data.trail) < data.manifest["window"]["end"]


def test_flow_logs_use_v5_in_one_region_and_v2_in_the_other(data: Data) -> None:
    assert data.headers == {"us-east-1": {V5}, "eu-west-1": {V2}}
    assert {v["flow_log_format"] for v in data.manifest["vpcs"].values()} == {"v5", "v2"}
    ints = ("srcport", "dstport", "protocol", "packets", "bytes", "start", "end")
    for f in data.flows:
        assert f["version"] == ("5" if f["_region"] == "us-east-1" else "2")
        assert f["account-id"] == data.manifest["account_id"]
        assert f["log-status"] == "OK" and f["action"] in ("ACCEPT", "REJECT")
        for k in ints:
            assert f[k].isdigit(), (k, f)
        assert int(f["start"]) <= int(f["end"])
        if f["_region"] == "us-east-1":
            assert f["flow-direction"] in ("ingress", "egress")
            assert f["region"] == "us-east-1" and f["type"] == "IPv4"
            assert (f["pkt-srcaddr"], f["pkt-dstaddr"]) == (f["srcaddr"], f["dstaddr"])


def test_resolver_query_logs_are_real_records(data: Data) -> None:
    hosts = {h["instance_id"]: h for h in data.manifest["compromised_instances"] + data.manifest["clean_instances"]}
    for q in data.dns:
        assert list(q) == [
            "version",
            "account_id",
            "region",
            "vpc_id",
            "query_timestamp",
            "query_name",
            "query_type",
            "query_class",
            "rcode",
            "answers",
            "srcaddr",
            "srcport",
            "transport",
            "srcids",
        ]
        assert q["query_name"].endswith(".") and not q["query_name"].endswith("..")
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", q["query_timestamp"])
        h = hosts[q["srcids"]["instance"]]
        assert (q["srcaddr"], q["vpc_id"], q["region"]) == (h["private_ip"], h["vpc_id"], h["region"])
        assert isinstance(q["answers"], list)
        assert all(set(a) == {"Rdata", "Type", "Class"} for a in q["answers"])


def test_cpu_metrics_are_five_minute_datapoints(data: Data) -> None:
    keys = ["namespace", "metric", "instance_id", "region", "account_id", "timestamp", "average", "maximum", "unit"]
    seen: set[tuple[str, str]] = set()
    for p in data.cpu:
        assert list(p) == keys
        assert (p["namespace"], p["metric"], p["unit"]) == ("AWS/EC2", "CPUUtilization", "Percent")
        t = ts(p["timestamp"])
        assert t.minute % 5 == 0 and t.second == 0
        assert 0 <= p["average"] <= p["maximum"] <= 100
        assert (p["instance_id"], p["timestamp"]) not in seen
        seen.add((p["instance_id"], p["timestamp"]))


def test_guardduty_findings_follow_the_service_model(data: Data, check_wire: Any) -> None:
    problems = [p for f in data.findings for p in check_wire(f)]
    assert problems == []
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in data.findings:
        by_id[f["id"]].append(f)
    for copies in by_id.values():
        copies.sort(key=lambda f: f["updatedAt"])
        counts = [f["service"]["count"] for f in copies]
        assert counts == sorted(counts) and len(set(counts)) == len(counts)
        assert len({f["createdAt"] for f in copies}) == 1
    assert any(len(c) > 3 for c in by_id.values())


def test_the_project_readers_load_every_file_without_a_reject(data: Data) -> None:
    from minerwatch.sources import registry
    from minerwatch.sources.records import ReadStats

    tables = {
        "cloudtrail": "cloud.aws.cloudtrail",
        "vpcflow": "cloud.aws.vpcflow",
        "route53": "cloud.aws.route53resolver",
        "guardduty": "cloud.aws.guardduty",
    }
    expected = {
        "cloudtrail": len(data.trail),
        "vpcflow": len(data.flows),
        "route53": len(data.dns),
        "guardduty": len(data.findings),
    }
    for source, table in tables.items():
        rejects: list[Any] = []
        stats = ReadStats()
        rows = list(registry.read_table(table, [str(data.root / source)], on_reject=rejects.append, stats=stats))
        assert rejects == [], (source, rejects[:3])
        assert len(rows) == expected[source], source


# -- ground truth ---------------------------------------------------------------------------------------------
def test_every_compromised_instance_was_launched_by_the_leaked_key(data: Data) -> None:
    m = data.manifest
    assert len(m["compromised_instances"]) == 5
    assert {c["region"] for c in m["compromised_instances"]} == {"us-east-1", "eu-west-1"}
    for c in m["compromised_instances"]:
        ev = data.events(c["launch_event_id"])
        assert ev["eventName"] == "RunInstances" and ev["awsRegion"] == c["region"]
        assert ev["userIdentity"]["accessKeyId"] == m["principal"]["access_key_id"]
        assert ev["userIdentity"]["arn"] == m["principal"]["arn"]
        assert ev["sourceIPAddress"] == m["attacker"]["ip"] and ev["userAgent"] == m["attacker"]["user_agent"]
        req = ev["requestParameters"]
        assert req["instanceType"] == c["instance_type"] and c["instance_type"] in ("p3.8xlarge", "g4dn.12xlarge")
        assert req["userData"] == "<sensitiveDataRemoved>"
        assert req["metadataOptions"]["httpTokens"] == "optional"
        assert req["instancesSet"]["items"][0]["keyName"] == c["key_name"] == m["attacker"]["key_pair"]
        item = next(i for i in ev["responseElements"]["instancesSet"]["items"] if i["instanceId"] == c["instance_id"])
        eni = item["networkInterfaceSet"]["items"][0]
        assert (eni["networkInterfaceId"], eni["privateIpAddress"]) == (c["eni_id"], c["private_ip"])
        assert item["metadataOptions"]["httpTokens"] == "optional"
        assert item["launchTime"] // 1000 == int(ts(c["launch_time"]).timestamp())


def test_compromised_instances_hold_stratum_connections_for_hours(data: Data) -> None:
    for c in data.manifest["compromised_instances"]:
        pool = c["mining"]["pool"]
        assert pool["port"] in STRATUM
        mine = [f for f in data.flows if f["interface-id"] == c["eni_id"]]
        out = [
            f
            for f in mine
            if (f["srcaddr"], f["dstaddr"], int(f["dstport"])) == (c["private_ip"], pool["ip"], pool["port"])
            and f["action"] == "ACCEPT"
        ]
        back = [
            f
            for f in mine
            if (f["srcaddr"], int(f["srcport"])) == (pool["ip"], pool["port"]) and f["action"] == "ACCEPT"
        ]
        assert out and back
        span = max(int(f["end"]) for f in out) - min(int(f["start"]) for f in out)
        assert span > 4 * 3600
        assert sum(int(f["bytes"]) for f in out + back) > 5_000_000
        assert {int(f["srcport"]) for f in out} == {s["src_port"] for s in c["mining"]["connections"]}
        assert min(int(f["start"]) for f in out) >= int(ts(c["mining"]["start"]).timestamp())
        refused = c["mining"]["refused_pool"]
        rejects = [f for f in mine if f["action"] == "REJECT" and f["dstaddr"] == (refused or {}).get("ip")]
        if refused:
            assert len(rejects) >= 2 and all(int(f["dstport"]) == refused["port"] for f in rejects)
        else:
            assert not rejects
    assert any(c["mining"]["refused_pool"] for c in data.manifest["compromised_instances"])


def test_compromised_instances_look_up_their_pool(data: Data) -> None:
    for c in data.manifest["compromised_instances"]:
        pool = c["mining"]["pool"]
        lookups = [
            q
            for q in data.dns
            if q["srcids"]["instance"] == c["instance_id"]
            and q["query_name"] == pool["domain"] + "."
            and q["query_type"] == "A"
        ]
        assert len(lookups) == len(c["mining"]["connections"])
        assert all(q["answers"] == [{"Rdata": pool["ip"], "Type": "A", "Class": "IN"}] for q in lookups)
        assert ts(lookups[0]["query_timestamp"]) <= ts(c["mining"]["start"])
    domains = {c["mining"]["pool"]["domain"] for c in data.manifest["compromised_instances"]}
    assert any(under(d, ioc) for d in domains for ioc in SEED_IOCS)


def test_compromised_instances_run_at_full_cpu_from_minutes_after_launch(data: Data) -> None:
    period = timedelta(minutes=5)
    for c in data.manifest["compromised_instances"]:
        points = [p for p in data.cpu if p["instance_id"] == c["instance_id"]]
        start, end = ts(c["mining"]["start"]), ts(c["mining"]["end"])
        assert start - ts(c["launch_time"]) < timedelta(minutes=10)
        gaps = [(ts(a), ts(b)) for a, b in c["mining"]["interruptions"]]
        full = [
            p
            for p in points
            if start <= ts(p["timestamp"])
            and ts(p["timestamp"]) + period <= end
            and not any(a < ts(p["timestamp"]) + period and ts(p["timestamp"]) < b for a, b in gaps)
        ]
        assert len(full) > 90
        assert all(95 <= p["average"] <= 100 for p in full)
        stopped = [(ts(a), ts(b)) for a, b in c["stopped"]]
        assert not any(a <= ts(p["timestamp"]) and ts(p["timestamp"]) + period <= b for p in points for a, b in stopped)


def test_compromised_instances_have_recurring_crypto_findings(data: Data) -> None:
    for c in data.manifest["compromised_instances"]:
        mine = [
            f for f in data.findings if f["resource"].get("instanceDetails", {}).get("instanceId") == c["instance_id"]
        ]
        types = {f["type"] for f in mine}
        assert {"CryptoCurrency:EC2/BitcoinTool.B!DNS", "CryptoCurrency:EC2/BitcoinTool.B"} <= types
        assert "Recon:EC2/PortProbeUnprotectedPort" in types
        for expected in c["crypto_findings"]:
            copies = [f for f in mine if f["id"] == expected["id"]]
            assert len(copies) == expected["deliveries"] >= 2
            assert max(f["service"]["count"] for f in copies) == expected["max_count"]
        pool = c["mining"]["pool"]
        for f in mine:
            action = f["service"]["action"]
            if f["type"] == "CryptoCurrency:EC2/BitcoinTool.B":
                net = action["networkConnectionAction"]
                assert (net["remoteIpDetails"]["ipAddressV4"], net["remotePortDetails"]["port"]) == (
                    pool["ip"],
                    pool["port"],
                )
                assert net["localIpDetails"]["ipAddressV4"] == c["private_ip"]
            if f["type"] == "CryptoCurrency:EC2/BitcoinTool.B!DNS":
                assert action["dnsRequestAction"]["domain"] == pool["domain"]
            if f["type"] == "Recon:EC2/PortProbeUnprotectedPort":
                probe = action["portProbeAction"]["portProbeDetails"][0]
                assert probe["localPortDetails"]["port"] == 22
                assert probe["remoteIpDetails"]["ipAddressV4"] in c["scanners"]


def test_attack_events_and_persistence_are_in_the_trail(data: Data) -> None:
    m = data.manifest
    ip = m["attacker"]["ip"]
    names = [e["event_name"] for e in m["attack_events"]]
    assert names[:2] == ["GetCallerIdentity", "DescribeRegions"]
    for name in (
        "CreateKeyPair",
        "AuthorizeSecurityGroupIngress",
        "CreateUser",
        "AttachUserPolicy",
        "CreateAccessKey",
        "ConsoleLogin",
        "ModifyInstanceAttribute",
        "SendCommand",
        "CreateImage",
    ):
        assert name in names, name
    for e in m["attack_events"]:
        r = data.events(e["event_id"])
        assert (r["eventName"], r["awsRegion"], r["sourceIPAddress"]) == (e["event_name"], e["region"], ip)
    persistence = {e["event_name"] for e in m["persistence_events"]}
    assert {"CreateUser", "CreateAccessKey", "ModifyInstanceAttribute", "AuthorizeSecurityGroupIngress"} <= persistence
    sg = [
        data.events(e["event_id"])
        for e in m["persistence_events"]
        if e["event_name"] == "AuthorizeSecurityGroupIngress"
    ]
    assert {r["awsRegion"] for r in sg} == {"us-east-1", "eu-west-1"}
    for r in sg:
        perm = r["requestParameters"]["ipPermissions"]["items"][0]
        assert (perm["fromPort"], perm["ipRanges"]["items"][0]["cidrIp"]) == (22, "0.0.0.0/0")
    login = data.events(next(e["event_id"] for e in m["attack_events"] if e["event_name"] == "ConsoleLogin"))
    assert login["additionalEventData"]["MFAUsed"] == "No"
    assert login["userIdentity"]["arn"] == m["created_principal"]["arn"]
    key = data.events(next(e["event_id"] for e in m["attack_events"] if e["event_name"] == "CreateAccessKey"))
    assert key["responseElements"]["accessKey"]["accessKeyId"] == m["created_principal"]["access_key_id"]
    modify = data.events(
        next(e["event_id"] for e in m["persistence_events"] if e["event_name"] == "ModifyInstanceAttribute")
    )
    assert modify["requestParameters"]["userData"] == "<sensitiveDataRemoved>"
    assert modify["userIdentity"]["accessKeyId"] == m["created_principal"]["access_key_id"]
    stopped = [c for c in m["compromised_instances"] if c["stopped"]]
    assert [c["instance_id"] for c in stopped] == [modify["requestParameters"]["instanceId"]]
    # The leaked key is also in legitimate use all day, from the CI runners only.
    key_id = m["principal"]["access_key_id"]
    legit = [r for r in data.trail if r["userIdentity"].get("accessKeyId") == key_id and r["sourceIPAddress"] != ip]
    assert legit and {r["sourceIPAddress"] for r in legit} <= set(m["legitimate_sources"]["ci_ips"])


def test_iam_findings_are_about_the_leaked_key(data: Data) -> None:
    m = data.manifest
    types = {f["type"] for f in m["iam_findings"]}
    assert "Discovery:IAMUser/AnomalousBehavior" in types
    for f in data.findings:
        if f["resource"]["resourceType"] == "AccessKey":
            details = f["resource"]["accessKeyDetails"]
            assert details["accessKeyId"] == m["principal"]["access_key_id"]
            assert details["userName"] == "ci-deployer"
            call = f["service"]["action"]["awsApiCallAction"]
            assert call["remoteIpDetails"]["ipAddressV4"] == m["attacker"]["ip"]
            assert call["api"] in {e["event_name"] for e in m["attack_events"]}


def test_clean_instances_show_no_sign_of_mining(data: Data) -> None:
    m = data.manifest
    pool_ips = set(m["pools"]["ips"])
    assert len(m["clean_instances"]) >= 5
    launched = [c for c in m["clean_instances"] if c["launch_event_id"]]
    assert launched
    for c in launched:
        ev = data.events(c["launch_event_id"])
        assert ev["requestParameters"]["metadataOptions"]["httpTokens"] == "required"
        assert ev["requestParameters"]["instanceType"].split(".")[0] in ("t3", "m5")
        assert ev["userIdentity"]["type"] == "AssumedRole"
    for c in m["clean_instances"]:
        flows = [f for f in data.flows if f["interface-id"] == c["eni_id"]]
        assert flows, c["instance_id"]
        for f in flows:
            assert f["srcaddr"] not in pool_ips and f["dstaddr"] not in pool_ips
            assert int(f["srcport"]) not in STRATUM and int(f["dstport"]) not in STRATUM
        queries = [q for q in data.dns if q["srcids"]["instance"] == c["instance_id"]]
        assert queries
        for q in queries:
            assert not any(under(q["query_name"], d) for d in SEED_IOCS + tuple(m["pools"]["domains"])), q
        points = [p for p in data.cpu if p["instance_id"] == c["instance_id"]]
        assert points and all(5 <= p["average"] <= 40 for p in points)
        gd = [
            f for f in data.findings if f["resource"].get("instanceDetails", {}).get("instanceId") == c["instance_id"]
        ]
        assert not any("CryptoCurrency" in f["type"] for f in gd)
    assert any(
        f["resource"].get("instanceDetails", {}).get("instanceId") in {c["instance_id"] for c in m["clean_instances"]}
        for f in data.findings
    )


def test_decoy_domains_resemble_pools_but_are_not_under_them(data: Data) -> None:
    decoys = data.manifest["decoy_domains"]
    for d in decoys:
        assert any(ioc in d for ioc in SEED_IOCS), d
        assert not any(under(d, ioc) for ioc in SEED_IOCS), d
    asked = {q["query_name"].rstrip(".") for q in data.dns}
    assert asked & set(decoys)
    clean = {c["instance_id"] for c in data.manifest["clean_instances"]}
    assert all(q["srcids"]["instance"] in clean for q in data.dns if q["query_name"].rstrip(".") in decoys)


# -- command line ---------------------------------------------------------------------------------------------
def test_detect_alerts_on_every_compromised_instance_and_no_clean_one(data: Data, tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    result = CliRunner().invoke(
        app, ["detect", str(data.root / "guardduty"), "--state", str(tmp_path / "s.db"), "--out", str(out), "--strict"]
    )
    assert result.exit_code == 0, result.output
    alerted = {json.loads(x)["key"]["instance_id"] for x in out.read_text().splitlines()}
    assert alerted == set(data.manifest["expected_alert_instances"])
    assert alerted == {c["instance_id"] for c in data.manifest["compromised_instances"]}
    assert not alerted & {c["instance_id"] for c in data.manifest["clean_instances"]}


def test_generate_scenario_command(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "sc"
    result = runner.invoke(app, ["generate", "scenario", "--out", str(out), "--seed", "4", "--noise", "0.5"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["seed"], manifest["noise"]) == (4, 0.5)
    assert _tree(out) == _tree(generate(tmp_path / "api", 4, 0.5))
    again = runner.invoke(app, ["generate", "scenario", "--out", str(out)])
    assert again.exit_code == 2 and "not an empty folder" in again.output
    bad = runner.invoke(app, ["generate", "scenario", "--out", str(tmp_path / "x"), "--noise", "-1"])
    assert bad.exit_code == 2 and "noise" in bad.output
    assert not (tmp_path / "x").exists()
    with pytest.raises(ScenarioError):
        write_scenario(tmp_path / "y", noise=51)
