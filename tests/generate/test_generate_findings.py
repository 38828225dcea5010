"""The findings generator: determinism, realistic wire-format findings, and ground truth that matches."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.generate import generate_findings, plan
from minerwatch.generate.findings import expected_alerts, ground_truth

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _crypto(f: dict[str, Any]) -> bool:
    t = f["type"]
    return "CryptoCurrency" in t


def _sample(f: dict[str, Any]) -> bool:
    return bool(f["service"].get("additionalInfo", {}).get("sample"))


def _ts(s: str) -> datetime:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f%z")


@pytest.fixture(scope="module")
def big() -> Any:
    return plan(2000, 7)


def test_same_seed_gives_identical_bytes() -> None:
    a = b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(300, 11))
    b = b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(300, 11))
    c = b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(300, 12))
    assert a == b
    assert a != c


@pytest.mark.parametrize("n", [0, 1, 9, 57, 300])
def test_yields_exactly_n(n: int) -> None:
    assert sum(1 for _ in generate_findings(n, 3)) == n


def test_start_moves_the_timeline() -> None:
    from datetime import UTC

    f = next(generate_findings(50, 1, start=datetime(2030, 1, 1, tzinfo=UTC)))
    assert f["updatedAt"].startswith("2030-01-")


def test_findings_follow_the_botocore_wire_model(big: Any, check_wire: Any) -> None:
    problems = [p for f in big.findings() for p in check_wire(f)]
    assert problems == []


def test_findings_are_shaped_like_the_real_samples(big: Any, samples: Path) -> None:
    real = [
        orjson.loads(line)
        for p in sorted((samples / "guardduty").glob("*.jsonl"))
        for line in p.read_bytes().splitlines()
        if line.strip()
    ]
    real = [r for r in real if "id" in r]
    top = set().union(*(r.keys() for r in real))
    inst_keys = set().union(*(r["resource"].get("instanceDetails", {}).keys() for r in real))
    svc_keys = set().union(*(r["service"].keys() for r in real))
    for f in big.findings():
        assert set(f) <= top
        assert {
            "schemaVersion",
            "accountId",
            "region",
            "id",
            "arn",
            "type",
            "severity",
            "createdAt",
            "updatedAt",
        } <= set(f)
        assert set(f["service"]) <= svc_keys
        details = f["resource"].get("instanceDetails")
        if details:
            assert set(details) <= inst_keys
            assert re.fullmatch(r"i-[0-9a-f]{17}|i-99999999", details["instanceId"])
        assert re.fullmatch(r"[0-9]{12}", f["accountId"])
        assert f["arn"].endswith("/finding/" + f["id"])
        assert f["arn"].startswith(f"arn:aws:guardduty:{f['region']}:{f['accountId']}:detector/")
        for key in ("createdAt", "updatedAt"):
            assert ISO_MS.match(f[key]), f[key]
        assert ISO_MS.match(f["service"]["eventFirstSeen"])


def test_content_is_varied(big: Any) -> None:
    fs = big.findings()
    accounts = {f["accountId"] for f in fs}
    regions = {f["region"] for f in fs}
    types = Counter(f["type"] for f in fs)
    resources = {f["resource"]["resourceType"] for f in fs}
    assert 3 <= len(accounts) <= 5
    assert len(regions) >= 3
    assert len(types) >= 20
    assert {"Instance", "AccessKey", "S3Bucket", "EKSCluster", "Lambda"} <= resources
    for t in (
        "Recon:EC2/PortProbeUnprotectedPort",
        "UnauthorizedAccess:EC2/SSHBruteForce",
        "CryptoCurrency:EC2/BitcoinTool.B",
        "CryptoCurrency:EC2/BitcoinTool.B!DNS",
        "Impact:EC2/BitcoinDomainRequest.Reputation",
    ):
        assert types[t] > 0, t
    assert any(t.startswith("CryptoCurrency:Runtime/") for t in types)
    assert any(t.startswith("Policy:S3/") or t.startswith("Discovery:S3/") for t in types)
    span = _ts(fs[-1]["updatedAt"]) - _ts(fs[0]["updatedAt"])
    assert span > timedelta(days=3)


def test_crypto_findings_point_at_mining_pools(big: Any) -> None:
    ports, domains = set(), set()
    for f in big.findings():
        if not _crypto(f) or _sample(f):
            continue
        assert f["severity"] == 8
        action = f["service"]["action"]
        if "networkConnectionAction" in action:
            nca = action["networkConnectionAction"]
            assert nca["connectionDirection"] == "OUTBOUND"
            ports.add(nca["remotePortDetails"]["port"])
        if "dnsRequestAction" in action:
            domains.add(action["dnsRequestAction"]["domain"])
    assert ports & {3333, 4444, 14444}
    assert any(
        d.endswith(("nanopool.org", "minergate.com", "moneropool.com", "supportxmr.com")) for d in domains
    )


def test_crypto_ratio_is_respected() -> None:
    fs = list(generate_findings(2000, 5))
    crypto = sum(1 for f in fs if _crypto(f) and not _sample(f))
    assert 0.015 <= crypto / len(fs) <= 0.03
    none = list(generate_findings(500, 5, crypto_ratio=0.0))
    assert not [f for f in none if _crypto(f) and not _sample(f)]
    many = list(generate_findings(500, 5, crypto_ratio=0.2))
    assert 0.18 <= sum(1 for f in many if _crypto(f) and not _sample(f)) / 500 <= 0.22


def test_recurring_findings_grow_their_count(big: Any) -> None:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in big.findings():
        by_id[f["id"]].append(f)
    recurring = 0
    for occ in by_id.values():
        unique = {f["updatedAt"]: f for f in occ}
        if len(unique) < 2:
            continue
        recurring += 1
        ordered = [unique[k] for k in sorted(unique)]
        counts = [f["service"]["count"] for f in ordered]
        assert counts == sorted(counts) and len(set(counts)) == len(counts)
        assert len({f["createdAt"] for f in ordered}) == 1
        assert all(f["updatedAt"] >= f["createdAt"] for f in ordered)
    assert recurring > 50


def test_ground_truth_matches_content(big: Any) -> None:
    gt = ground_truth(big)
    fs = big.findings()
    assert gt["crypto_ids"] == sorted({f["id"] for f in fs if _crypto(f) and not _sample(f)})
    assert gt["crypto_deliveries"] == sum(1 for f in fs if _crypto(f) and not _sample(f))
    keys = Counter((f["id"], f["updatedAt"]) for f in fs)
    dups = gt["duplicate_deliveries"]
    assert dups and all(keys[tuple(d)] >= 2 for d in dups)
    assert sorted(list(k) for k, c in keys.items() if c > 1) == dups
    assert any(tuple(d)[0] in set(gt["crypto_ids"]) for d in dups)
    assert gt["sample_ids"] == sorted({f["id"] for f in fs if _sample(f)})
    assert gt["sample_crypto_ids"], "a crypto sample finding exercises sample suppression"
    assert gt["totals"]["deliveries"] == len(fs)
    assert gt["totals"]["unique_deliveries"] == len(keys)

    tags_of: dict[str, dict[str, str]] = {}
    for f in fs:
        d = f["resource"].get("instanceDetails")
        if d:
            tags_of[d["instanceId"]] = {t["key"]: t["value"] for t in d["tags"]}
    dev = set(gt["dev_instances"])
    for iid, tags in tags_of.items():
        if iid == "i-99999999":
            continue
        assert (tags.get("Environment") in ("dev", "test")) == (iid in dev), iid
        assert (tags.get("CryptoApproved") == "true") == (iid in set(gt["crypto_approved_instances"]))
    # The allowlist cases exist: crypto findings from a CryptoApproved instance and from a dev one.
    victims = gt["crypto_ids_by_instance"]
    assert set(victims) & set(gt["crypto_approved_instances"])
    assert set(victims) & (dev - set(gt["crypto_approved_instances"]))


def test_expected_alerts_cover_every_crypto_occurrence_once(big: Any) -> None:
    gt = ground_truth(big)
    alerts = gt["expected_alerts_seed_rule"]
    occurrences = {(f["id"], f["updatedAt"]) for f in big.findings() if _crypto(f) and not _sample(f)}
    assert sum(a["event_count"] for a in alerts) == len(occurrences)
    assert {i for a in alerts for i in a["finding_ids"]} == set(gt["crypto_ids"])
    starts: dict[tuple[str, Any], list[datetime]] = defaultdict(list)
    for a in alerts:
        starts[(a["accountid"], a["instance_id"])].append(_ts(a["first_seen"]))
    for s in starts.values():
        s.sort()
        assert all(b - a >= timedelta(hours=2) for a, b in zip(s, s[1:], strict=False))


def _mk(
    fid: str, ts: str, inst: str = "i-1", ftype: str = "CryptoCurrency:EC2/BitcoinTool.B"
) -> dict[str, Any]:
    return {
        "id": fid,
        "updatedAt": ts,
        "type": ftype,
        "severity": 8,
        "accountId": "111111111111",
        "resource": {"instanceDetails": {"instanceId": inst}},
        "service": {"additionalInfo": {}},
    }


def test_expected_alerts_windows() -> None:
    fs = [
        _mk("a", "2025-01-01T00:00:00.000Z"),
        _mk("b", "2025-01-01T01:59:59.999Z"),
        _mk("b", "2025-01-01T01:59:59.999Z"),  # repeated delivery: counted once
        _mk("c", "2025-01-01T02:00:00.000Z"),
        _mk("d", "2025-01-01T00:30:00.000Z", inst="i-2"),
        _mk("e", "2025-01-01T00:31:00.000Z", ftype="Recon:EC2/PortProbeUnprotectedPort"),
    ]
    alerts = expected_alerts(fs)
    assert [(a["instance_id"], a["event_count"], a["finding_ids"]) for a in alerts] == [
        ("i-1", 2, ["a", "b"]),
        ("i-2", 1, ["d"]),
        ("i-1", 1, ["c"]),
    ]


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(generate_findings(-1, 1))
    with pytest.raises(ValueError):
        list(generate_findings(10, 1, crypto_ratio=1.5))
