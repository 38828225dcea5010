"""``minerwatch enrich`` end to end on the generated compromise scenario, checked against its manifest.

The scenario is generated into a temporary folder, ``minerwatch detect`` creates the alerts, and each
compromised instance's first alert is enriched through the CLI with every source.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.generate.scenario import write_scenario

runner = CliRunner()
PRICES = Path(__file__).resolve().parents[2] / "minerwatch" / "catalog" / "data" / "ec2_on_demand_prices.csv"
STRATUM = {3333, 4444, 14444}
ACTIVITY = {
    "CreateKeyPair",
    "AuthorizeSecurityGroupIngress",
    "CreateUser",
    "AttachUserPolicy",
    "CreateLoginProfile",
    "CreateAccessKey",
    "ConsoleLogin",
    "RunInstances",
}


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _invoke(*args: str) -> Any:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("scenario")
    out = base / "scenario"
    manifest = write_scenario(out, seed=1, noise=1.0)
    state = base / "state.db"
    _invoke("detect", str(out / "guardduty"), "--state", str(state))
    alerts = [
        json.loads(line) for line in _invoke("alerts", "list", "--state", str(state), "--json").stdout.splitlines()
    ]
    first: dict[str, dict[str, Any]] = {}
    for a in alerts:  # oldest first
        first.setdefault(a["key"]["instance_id"], a)
    shown: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    for instance_id, alert in first.items():
        res = _invoke(
            "enrich", alert["alert_id"],
            "--cloudtrail", str(out / "cloudtrail"), "--flow", str(out / "vpcflow"), "--dns", str(out / "route53"),
            "--findings", str(out / "guardduty"), "--metrics", str(out / "metrics" / "cpu.jsonl"),
            "--state", str(state), "--json",
        )  # fmt: skip
        results[instance_id] = json.loads(res.stdout)
        shown[instance_id] = json.loads(
            _invoke("alerts", "show", alert["alert_id"], "--state", str(state), "--json").stdout
        )
    return {
        "dir": out,
        "manifest": manifest,
        "state": state,
        "alerts_before": first,
        "results": results,
        "shown": shown,
        "instances": {i["instance_id"]: i for i in manifest["compromised_instances"]},
    }


def _sections(world: dict[str, Any], instance_id: str) -> dict[str, dict[str, Any]]:
    return world["shown"][instance_id]["enrichment"]


def test_every_compromised_instance_has_an_alert_and_every_section_is_ok(world: dict[str, Any]) -> None:
    assert set(world["alerts_before"]) == set(world["instances"])
    for instance_id in world["instances"]:
        sections = dict(_sections(world, instance_id))
        assert list(sections) == [
            "launch_context", "principal_activity", "persistence", "network", "dns", "findings", "config_history",
            "inspector", "cpu", "cost",
        ]  # fmt: skip
        # The scenario has no AWS Config or Inspector data (tests/enrich/test_enrich_config_inspector.py has).
        assert sections.pop("config_history")["reason"] == "no --config-history or --aws-config given"
        assert sections.pop("inspector")["reason"] == "no --inspector-findings or --inspector given"
        for name, s in sections.items():
            # Not every instance was changed after launch; every other section has evidence.
            assert s["status"] == "ok" or (name == "persistence" and s["status"] == "empty"), (instance_id, name, s)
            if "source" in s:
                assert s["source"]["rejected"] == 0 and s["source"]["accepted"] > 0
            assert "warnings" not in s, s.get("warnings")
        assert world["results"][instance_id]["sections"] == _sections(world, instance_id)


def test_launch_context_is_the_manifest_run_instances(world: dict[str, Any]) -> None:
    m = world["manifest"]
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["launch_context"]
        assert section["status"] == "ok"
        (launch,) = section["summary"]["launches"]
        assert launch["instance_id"] == instance_id
        assert launch["event_id"] == inst["launch_event_id"]
        assert launch["principal"]["arn"] == m["principal"]["arn"]
        assert launch["access_key_id"] == m["principal"]["access_key_id"]
        assert launch["source_ip"] == m["attacker"]["ip"]
        assert launch["user_agent"] == m["attacker"]["user_agent"]
        assert launch["time"] == next(e["time"] for e in m["attack_events"] if e["event_id"] == inst["launch_event_id"])
        assert launch["instance_type"] == inst["instance_type"]
        assert launch["key_name"] == inst["key_name"]
        assert launch["user_data_present"] is inst["user_data"]
        assert launch["http_tokens"] == inst["http_tokens"] == "optional"
        assert inst["eni_id"] in launch["enis"] and inst["private_ip"] in launch["private_ips"]
        launched = [e["target"] for e in m["attack_events"] if e["event_id"] == inst["launch_event_id"]][0]
        assert launch["instances_launched"] == len(launched.split(","))
        assert [e["event_id"] for e in section["evidence"]] == [inst["launch_event_id"]]


def test_principal_activity_follows_the_leaked_key_and_the_user_it_created(world: dict[str, Any]) -> None:
    m = world["manifest"]
    tracked = {m["principal"]["arn"], m["created_principal"]["arn"]}
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["principal_activity"]
        assert section["status"] == "ok"
        by_id = {e["event_id"]: e for e in section["evidence"]}
        assert {e["principal_arn"] for e in section["evidence"]} <= tracked
        expected = {
            e["event_id"]: e
            for e in m["attack_events"]
            if e["event_name"] in ACTIVITY and e["event_id"] != inst["launch_event_id"]
        }
        assert set(expected) <= set(by_id), set(expected) - set(by_id)
        categories = {e["category"] for e in section["evidence"]}
        assert {"iam_change", "new_access_key", "console_login_without_mfa", "security_group_change",
                "run_instances_other_region"} <= categories  # fmt: skip
        key_event = next(e for e in section["evidence"] if e["category"] == "new_access_key")
        assert key_event["target"] == m["created_principal"]["access_key_id"]
        login = next(e for e in section["evidence"] if e["category"] == "console_login_without_mfa")
        assert login["principal_arn"] == m["created_principal"]["arn"]
        assert "created by" in login["actor"] or "console password" in login["actor"]
        other_region = [e for e in section["evidence"] if e["category"] == "run_instances_other_region"]
        assert other_region and all(e["region"] != inst["region"] for e in other_region)
        # Legitimate users' MFA sign-ins and the CI's normal work are not the launching principal's activity.
        assert section["summary"]["counts"]["console_login_without_mfa"] == 1


def test_persistence_events_on_each_instance_are_the_manifests(world: dict[str, Any]) -> None:
    m = world["manifest"]
    names = {"ModifyInstanceAttribute", "SendCommand", "CreateImage", "StopInstances", "StartInstances"}
    for instance_id in world["instances"]:
        section = _sections(world, instance_id)["persistence"]
        expected = {
            e["event_id"]
            for e in m["attack_events"]
            if e["event_name"] in names and instance_id in (e["target"] or "").split(",")
        }
        assert {e["event_id"] for e in section["evidence"]} == expected
        indicators = {e["event_name"] for e in section["evidence"] if e["indicator"]}
        if expected - {
            e["event_id"] for e in m["attack_events"] if e["event_name"] in ("StopInstances", "StartInstances")
        }:
            assert section["status"] == "ok"
        else:
            assert section["status"] == "empty" and section["reason"]
        if instance_id == "i-0b4cbf673f63669f3":
            assert "user_data_modified" in section["summary"]["indicators"]
            assert indicators == {"ModifyInstanceAttribute"}
    assert any(_sections(world, i)["persistence"]["status"] == "empty" for i in world["instances"])


def test_network_finds_the_pool_flows_and_the_refused_tries(world: dict[str, Any]) -> None:
    pool_ips = set(world["manifest"]["pools"]["ips"])
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["network"]
        assert section["status"] == "ok"
        peers = section["summary"]["peers"]
        pool = inst["mining"]["pool"]
        accepted = [p for p in peers if p["action"] == "ACCEPT"]
        assert {(p["peer"], p["peer_port"]) for p in accepted} == {(pool["ip"], pool["port"])}
        (acc,) = accepted
        assert acc["bytes_out"] > 0 and acc["bytes_in"] > 0 and acc["records"] >= 2 * 6  # hours of 10-min windows
        assert abs((_t(acc["first"]) - _t(inst["mining"]["start"])).total_seconds()) < 600
        assert {p["peer"] for p in peers} <= pool_ips
        assert all(p["peer_port"] in STRATUM for p in peers)
        refused = inst["mining"]["refused_pool"]
        rejected = {(p["peer"], p["peer_port"]) for p in peers if p["action"] == "REJECT"}
        assert rejected == ({(refused["ip"], refused["port"])} if refused else set())
        for e in section["evidence"]:
            assert e["instance_id"] == instance_id and e["source"].rsplit(":", 1)[1].isdigit()
            assert ("mining" in e) == (e["action"] == "ACCEPT")


def test_dns_finds_the_pool_lookups_and_not_the_decoys(world: dict[str, Any]) -> None:
    decoys = set(world["manifest"]["decoy_domains"])
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["dns"]
        assert section["status"] == "ok"
        domains = {d["query_name"]: d for d in section["summary"]["domains"]}
        pool = inst["mining"]["pool"]
        assert pool["domain"] in domains
        assert pool["ip"] in domains[pool["domain"]]["answers"]
        assert domains[pool["domain"]]["count"] >= 1 + len(inst["mining"]["interruptions"])
        if inst["mining"]["refused_pool"]:
            assert inst["mining"]["refused_pool"]["domain"] in domains
        assert not decoys & set(domains)
        assert set(domains) <= set(world["manifest"]["pools"]["domains"])


def test_other_findings_are_the_manifests(world: dict[str, Any]) -> None:
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["findings"]
        alert = world["alerts_before"][instance_id]
        other = {e["finding_id"] for e in section["evidence"] if not e["in_alert"]}
        assert other == {f["id"] for f in inst["other_findings"]}
        assert section["status"] == "ok" and section["summary"]["other_findings"] == len(other)
        mine = {e["finding_id"] for e in section["evidence"] if e["in_alert"]}
        assert mine == set(alert["finding_ids"])
        for e in section["evidence"]:
            expected = next(f for f in inst["crypto_findings"] + inst["other_findings"] if f["id"] == e["finding_id"])
            assert e["type"] == expected["type"] and e["deliveries"] == expected["deliveries"]


def test_cpu_is_flagged_over_the_mining_hours(world: dict[str, Any]) -> None:
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["cpu"]
        assert section["status"] == "ok"
        (summary,) = section["summary"]["instances"]
        assert summary["flagged"] is True
        hours = sum(i["hours"] for i in summary["sustained_intervals"])
        mining = (_t(inst["mining"]["end"]) - _t(inst["mining"]["start"])).total_seconds() / 3600
        stopped = sum((_t(b) - _t(a)).total_seconds() for a, b in inst["stopped"]) / 3600
        assert mining - stopped - 0.5 <= hours <= mining + 0.25
        for interval in summary["sustained_intervals"]:
            assert interval["mean_average"] >= 80 and interval["datapoints"] >= 3


def _csv_price(region: str, instance_type: str) -> float:
    lines = [ln for ln in PRICES.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = [r for r in csv.DictReader(lines) if r["region"] == region and r["instance_type"] == instance_type]
    assert len(rows) == 1, (region, instance_type)
    return float(rows[0]["usd_per_hour"])


def test_cost_is_recomputed_from_the_price_table(world: dict[str, Any]) -> None:
    for instance_id, inst in world["instances"].items():
        section = _sections(world, instance_id)["cost"]
        assert section["status"] == "ok"
        (entry,) = section["summary"]["instances"]
        assert entry["instance_type"] == inst["instance_type"] and entry["region"] == inst["region"]
        assert entry["instance_type_from"] == "RunInstances"
        price = _csv_price(inst["region"], inst["instance_type"])
        assert entry["hourly_usd"] == price
        assert entry["cost_usd"] == round(entry["evidence_seconds"] / 3600 * price, 2)
        assert section["summary"]["total_usd"] == round(entry["evidence_seconds"] / 3600 * price, 2)
        # The evidence spans the manifest's mining (start to end), give or take a CPU period at the edges.
        mining = (_t(inst["mining"]["end"]) - _t(inst["mining"]["start"])).total_seconds() / 3600
        assert abs(entry["evidence_hours"] - mining) < 0.25
        assert entry["evidence_hours"] > 8 and entry["cost_usd"] > 8 * price * 0.99
        assert section["summary"]["price_table"]["as_of"] and section["summary"]["price_table"]["source"]
        intervals = entry["intervals"]
        assert all(_t(a["end"]) < _t(b["start"]) for a, b in zip(intervals, intervals[1:], strict=False))


def test_timeline_is_ordered_and_holds_every_sections_evidence(world: dict[str, Any]) -> None:
    for instance_id in world["instances"]:
        shown = world["shown"][instance_id]
        timeline = shown["timeline"]
        times = [_t(e["time"]) for e in timeline]
        assert times == sorted(times)
        for name, section in shown["enrichment"].items():
            indices = sorted(e["index"] for e in timeline if e["section"] == name)
            assert indices == list(range(len(section["evidence"]))), name
        alert_entries = [e for e in timeline if e["section"] == "alert"]
        assert alert_entries[0]["time"] == shown["first_seen"]
        assert {e["section"] for e in timeline} >= {
            "launch_context", "principal_activity", "network", "dns", "findings", "cpu", "cost"
        }  # fmt: skip
        # The launch comes before the first pool lookup, which comes before the first accepted pool flow.
        first = {s: min(_t(e["time"]) for e in timeline if e["section"] == s) for s in ("launch_context", "dns")}
        first_flow = min(_t(e["time"]) for e in timeline if e["section"] == "network" and "ACCEPT" in e["what"])
        assert first["launch_context"] < first["dns"] < first_flow


def test_the_alert_record_is_unchanged(world: dict[str, Any]) -> None:
    for instance_id, before in world["alerts_before"].items():
        shown = dict(world["shown"][instance_id])
        assert set(shown) - set(before) == {"enrichment", "timeline"}
        shown.pop("enrichment")
        shown.pop("timeline")
        assert shown == before
    listed = _invoke("alerts", "list", "--state", str(world["state"]), "--json").stdout.splitlines()
    by_id = {json.loads(x)["alert_id"]: json.loads(x) for x in listed}
    for before in world["alerts_before"].values():
        assert by_id[before["alert_id"]] == before


def test_alerts_show_table_lists_sections_and_timeline(world: dict[str, Any]) -> None:
    alert = world["alerts_before"]["i-0b4cbf673f63669f3"]
    res = _invoke("alerts", "show", alert["alert_id"], "--state", str(world["state"]))
    text = res.stdout
    assert "enrichment:" in text and "timeline (" in text
    assert "launch_context [ok]" in text and "cost [ok]" in text
    assert "ModifyInstanceAttribute userData" in text


def test_an_alert_not_enriched_shows_as_before(world: dict[str, Any]) -> None:
    listed = _invoke("alerts", "list", "--state", str(world["state"]), "--json").stdout.splitlines()
    enriched = {a["alert_id"] for a in world["alerts_before"].values()}
    other = next(json.loads(x) for x in listed if json.loads(x)["alert_id"] not in enriched)
    shown = json.loads(_invoke("alerts", "show", other["alert_id"], "--state", str(world["state"]), "--json").stdout)
    assert shown == other


def test_window_limits_principal_activity(world: dict[str, Any], tmp_path: Path) -> None:
    """A short window around a late alert leaves out the morning's IAM changes but keeps the launch."""
    state = tmp_path / "s.db"
    out = world["dir"]
    _invoke("detect", str(out / "guardduty"), "--state", str(state))
    alerts = [json.loads(x) for x in _invoke("alerts", "list", "--state", str(state), "--json").stdout.splitlines()]
    late = max((a for a in alerts if a["key"]["instance_id"] == "i-0b4cbf673f63669f3"), key=lambda a: a["first_seen"])
    res = _invoke(
        "enrich", late["alert_id"], "--cloudtrail", str(out / "cloudtrail"), "--window", "1h", "--state", str(state),
        "--json",
    )  # fmt: skip
    sections = json.loads(res.stdout)["sections"]
    assert sections["launch_context"]["status"] == "ok"
    assert sections["principal_activity"]["status"] == "empty"
    start = _t(late["first_seen"]) - timedelta(hours=1)
    assert sections["principal_activity"]["summary"]["window"]["start"].startswith(start.strftime("%Y-%m-%dT%H:%M"))
    assert sections["persistence"]["status"] == "ok"  # changes on the instance are not limited to the window
