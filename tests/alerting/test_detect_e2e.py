"""End to end through the CLI: every input shape gives exactly the alerts of DESIGN §6."""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.generate.findings import generate_findings
from minerwatch.sources.botocore_shapes import to_pascal

runner = CliRunner()
WINDOW = timedelta(hours=2)


def _ts(doc: dict) -> datetime:
    return datetime.fromisoformat((doc.get("updatedAt") or doc["createdAt"]).replace("Z", "+00:00"))


def _seed_where(doc: dict) -> bool:
    """The seed's where-clause, written out by hand: like OR = OR (= AND severity >= 7)."""
    t = doc["type"]
    return "CryptoCurrency" in t or t == "CryptoCurrency:EC2/BitcoinTool.B!DNS" or (
        t == "CryptoCurrency:EC2/BitcoinTool.B" and doc.get("severity", 0) >= 7
    )


def expected_alerts(findings: list[dict]) -> dict[tuple, list[tuple[datetime, frozenset[str]]]]:
    """Reference of DESIGN §6: dedup deliveries, drop AWS samples, (eventdate, id) order, 2 h event-time windows."""
    seen: set[tuple[str, str]] = set()
    rows = []
    for d in findings:
        delivery = (d["id"], d.get("updatedAt") or d["createdAt"])
        if not _seed_where(d) or delivery in seen:
            continue
        seen.add(delivery)
        if ((d.get("service") or {}).get("additionalInfo") or {}).get("sample") in (True, "true"):
            continue
        inst = ((d.get("resource") or {}).get("instanceDetails") or {}).get("instanceId")
        rows.append((_ts(d), d["id"], (d["accountId"], inst)))
    alerts: dict[tuple, list[list]] = {}
    for t, fid, key in sorted(rows, key=lambda r: (r[0], r[1])):
        windows = alerts.setdefault(key, [])
        for w in windows:
            if w[0] <= t < w[0] + WINDOW:
                w[1].add(fid)
                break
        else:
            windows.append([t, {fid}])
    return {k: [(w[0], frozenset(w[1])) for w in v] for k, v in alerts.items()}


def actual_alerts(records: list[dict]) -> dict[tuple, list[tuple[datetime, frozenset[str]]]]:
    out: dict[tuple, list] = {}
    for r in records:
        key = (r["key"]["accountid"], r["key"]["instance_id"])
        out.setdefault(key, []).append(
            (datetime.fromisoformat(r["first_seen"].replace("Z", "+00:00")), frozenset(r["finding_ids"]))
        )
    return {k: sorted(v) for k, v in out.items()}


def write_shape(shape: str, findings: list[dict], root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = b"".join(orjson.dumps(f) + b"\n" for f in findings)
    if shape == "jsonl":
        (root / "f.jsonl").write_bytes(lines)
    elif shape == "gz":
        (root / "f.jsonl.gz").write_bytes(gzip.compress(lines))
    elif shape == "array":
        (root / "f.json").write_bytes(orjson.dumps(findings, option=orjson.OPT_INDENT_2))
    elif shape == "eventbridge":
        (root / "events.jsonl").write_bytes(b"".join(orjson.dumps({
            "version": "0", "id": f"ev-{i}", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
            "account": f["accountId"], "time": f["updatedAt"], "region": f["region"], "resources": [], "detail": f,
        }) + b"\n" for i, f in enumerate(findings)))
    elif shape == "rest":
        (root / "rest.json").write_bytes(orjson.dumps({"findings": findings}))
    elif shape == "pascal":
        (root / "cli.json").write_bytes(orjson.dumps({"Findings": [to_pascal(f) for f in findings]}))
    elif shape == "s3":
        for i, f in enumerate(findings):
            d = _ts(f)
            p = root / f"AWSLogs/{f['accountId']}/GuardDuty/{f['region']}/{d:%Y/%m/%d}/{i:05d}.jsonl.gz"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(gzip.compress(orjson.dumps(f) + b"\n"))
    return root


@pytest.fixture(scope="module")
def findings() -> list[dict]:
    return list(generate_findings(1500, seed=11, crypto_ratio=0.2))


def _run(args: list[str], input: bytes | None = None):
    result = runner.invoke(app, args, input=input)
    assert result.exit_code == 0, result.output
    return result


def _state_alerts(state: Path) -> list[dict]:
    res = _run(["alerts", "list", "--state", str(state), "--json"])
    return [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("shape", ["jsonl", "gz", "array", "eventbridge", "rest", "pascal", "s3"])
def test_every_shape_gives_the_reference_alerts(tmp_path, findings, shape):
    data = write_shape(shape, findings, tmp_path / "in")
    state = tmp_path / "state.db"
    _run(["detect", str(data), "--state", str(state), "--out", str(tmp_path / "out.jsonl")])
    got = actual_alerts(_state_alerts(state))
    want = expected_alerts(findings)
    assert want, "the generated data must contain crypto bursts"
    assert got == want


def test_rerun_creates_nothing_and_writes_nothing(tmp_path, findings):
    data = write_shape("jsonl", findings, tmp_path / "in")
    state, out, stats = tmp_path / "s.db", tmp_path / "out.jsonl", tmp_path / "stats.json"
    args = ["detect", str(data), "--state", str(state), "--out", str(out), "--stats-json", str(stats)]
    _run(args)
    s1 = json.loads(stats.read_text())
    first = out.read_bytes()
    lines = [json.loads(x) for x in first.splitlines()]
    assert {x["alert_id"] for x in lines} == {a["alert_id"] for a in _state_alerts(state)}
    assert json.loads(stats.read_text())["alerts_new"] == len({x["alert_id"] for x in lines})
    _run(args)
    assert out.read_bytes() == first
    s2 = json.loads(stats.read_text())
    assert s2["alerts_new"] == 0 and s2["alerts_updated"] == 0 and s2["matched"] == 0
    assert s2["duplicates"] == s1["matched"] + s1["duplicates"]  # every delivery of the first run


def test_alert_record_keys_and_determinism(tmp_path, findings):
    data = write_shape("jsonl", findings, tmp_path / "in")
    a = _state_alerts(_run_to_state(data, tmp_path / "a.db"))
    b = _state_alerts(_run_to_state(data, tmp_path / "b.db"))
    assert [x["alert_id"] for x in a] == [x["alert_id"] for x in b]
    rec = a[0]
    assert list(rec) == [
        "alert_id", "rule_id", "rule_name", "severity", "priority", "mitre", "key", "first_seen", "last_seen",
        "event_count", "finding_ids", "groups", "fields", "status",
    ]
    assert rec["severity"] == "critical" and rec["priority"] == "P1"
    assert set(rec["key"]) == {"accountid", "instance_id"}
    assert rec["first_seen"].endswith("Z") and rec["finding_ids"] == sorted(set(rec["finding_ids"]))
    assert sum(g["count"] for g in rec["groups"]) == rec["event_count"]
    assert set(rec["groups"][0]) == {"accountid", "instance_id", "type", "count", "first_seen", "last_seen"}
    assert {"instance_id", "mining_pool_ip", "tags"} <= set(rec["fields"])


def _run_to_state(data: Path, state: Path) -> Path:
    _run(["detect", str(data), "--state", str(state)])
    return state


def test_shuffled_stdin_stream_keeps_invariants(tmp_path, findings):
    shuffled = findings[:]
    random.Random(5).shuffle(shuffled)
    state = tmp_path / "s.db"
    res = _run(["detect", "-", "--state", str(state)], input=b"".join(orjson.dumps(f) + b"\n" for f in shuffled))
    streamed = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    alerts = _state_alerts(state)
    assert {x["alert_id"] for x in streamed} == {a["alert_id"] for a in alerts}
    want = expected_alerts(findings)
    # Every matched, unsuppressed delivery is in exactly one alert (a recurring finding id may span alerts) …
    assert sum(a["event_count"] for a in alerts) == sum(a["event_count"] for a in _clean_alerts(tmp_path, findings))
    ids = {f for a in alerts for f in a["finding_ids"]}
    assert ids == {f for windows in want.values() for _, fs in windows for f in fs}
    # … and per key, alert starts are at least one window apart.
    for windows in actual_alerts(alerts).values():
        starts = [w[0] for w in windows]
        assert all(b - a >= WINDOW for a, b in zip(starts, starts[1:], strict=False))


def _clean_alerts(tmp_path: Path, findings: list[dict]) -> list[dict]:
    data = write_shape("jsonl", findings, tmp_path / "clean-in")
    return _state_alerts(_run_to_state(data, tmp_path / "clean.db"))


def test_allowlist_suppresses_and_reports_expired(tmp_path, findings):
    data = write_shape("jsonl", findings, tmp_path / "in")
    want = expected_alerts(findings)
    (acct, inst), windows = next(iter(want.items()))
    allow = tmp_path / "allow.yaml"
    allow.write_text(
        f'- reason: "approved research TICKET-9"\n  accountid: "{acct}"\n  instance_id: [{inst}]\n'
        f'- reason: stale\n  expires: 2020-01-01T00:00:00Z\n  accountid: "{acct}"\n'
    )
    state, stats = tmp_path / "s.db", tmp_path / "stats.json"
    res = runner.invoke(app, ["detect", str(data), "--state", str(state), "--allowlist", str(allow),
                              "--stats-json", str(stats)])
    assert res.exit_code == 0, res.output
    got = actual_alerts(_state_alerts(state))
    assert (acct, inst) not in got
    assert got == {k: v for k, v in want.items() if k != (acct, inst)}
    s = json.loads(stats.read_text())
    deliveries = {
        (f["id"], f["updatedAt"]) for f in findings
        if _seed_where(f) and f["accountId"] == acct
        and ((f.get("resource") or {}).get("instanceDetails") or {}).get("instanceId") == inst
    }
    assert s["suppressed_by_reason"]["approved research TICKET-9"] == len(deliveries)
    assert [e["line"] for e in s["expired_allowlist_entries"]] == [4]
    assert "expired" in res.stderr


def test_real_aws_sample_findings_are_suppressed_unless_included(tmp_path, samples):
    crypto = samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"
    res = _run(["detect", str(crypto), "--state", str(tmp_path / "a.db"), "--stats-json", str(tmp_path / "a.json")])
    s = json.loads((tmp_path / "a.json").read_text())
    assert (s["matched"], s["suppressed"], s["alerts_new"]) == (1, 1, 0)
    assert s["suppressed_by_reason"] == {"aws-sample-finding": 1}
    res = _run(["detect", str(crypto), "--state", str(tmp_path / "b.db"), "--include-samples"])
    (alert,) = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert alert["key"] == {"accountid": "973743533182", "instance_id": "i-99999999"}
    assert alert["groups"][0]["type"] == "CryptoCurrency:EC2/BitcoinTool.B!DNS"


def test_ocsf_format(tmp_path, findings):
    data = write_shape("jsonl", findings, tmp_path / "in")
    res = _run(["detect", str(data), "--state", str(tmp_path / "s.db"), "--format", "ocsf"])
    first = json.loads(res.stdout.splitlines()[0])
    assert first["class_uid"] == 2004 and first["severity_id"] == 5
    assert first["finding_info"]["attacks"][0]["technique"]["uid"] == "T1496"
