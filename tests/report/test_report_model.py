"""The report dict (the JSON report): structure and content for a real enriched alert, for an alert never
enriched, after a response, and when the rule or the response plan is missing."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.enrich.run import stored_enrichment
from minerwatch.enrich.sections import SECTION_ORDER
from minerwatch.report.model import REPORT_VERSION, build_report
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE, RULES_DIR

from .conftest import Case, invoke

runner = CliRunner()
NOW = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)
TOP_KEYS = {
    "report",
    "alert",
    "summary",
    "rule",
    "enriched",
    "section_titles",
    "sections",
    "timeline",
    "cpu_chart",
    "actions",
    "checklist",
    "investigation_steps",
    "false_positives",
    "notes",
    "warnings",
}


def _copy_state(case: Case, tmp_path: Path) -> Path:
    """A private copy of the case's store (SQLite's backup: the WAL's pages come along)."""
    state = tmp_path / "state.db"
    src, dst = sqlite3.connect(case.state), sqlite3.connect(state)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return state


def test_json_report_structure_of_an_enriched_alert(enriched: Case, scenario) -> None:
    _, manifest = scenario
    store = enriched.store()
    report = build_report(store, enriched.alert_id[:12], now=NOW)
    assert set(report) == TOP_KEYS
    assert report["report"] == {
        "version": REPORT_VERSION,
        "alert_id": enriched.alert_id,
        "generated_at": "2025-03-11T12:00:00Z",
    }
    assert report["alert"] == store.get_alert(enriched.alert_id)
    # The stored enrichment, unchanged and in display order.
    sections, timeline = stored_enrichment(store, enriched.alert_id)
    assert list(report["sections"]) == list(SECTION_ORDER)
    assert report["sections"] == sections and report["timeline"] == timeline
    assert report["enriched"] is True and report["warnings"] == []

    truth = manifest["compromised_instances"][0]
    s = report["summary"]
    assert s["where"]["instance_ids"] == [truth["instance_id"]]
    assert s["where"]["account_id"] == manifest["account_id"]
    assert s["where"]["region"] == truth["region"]
    assert s["where"]["instance_types"] == [truth["instance_type"]]
    assert s["where"]["launched_at"] == truth["launch_time"]
    assert s["where"]["launched_by"] == manifest["principal"]["arn"]
    assert s["when"]["first_seen"] == report["alert"]["first_seen"]
    assert s["severity"] == {
        "severity": "critical",
        "priority": "P1",
        "finding_severity": report["alert"]["fields"]["severity"],
    }
    assert all(t.startswith("CryptoCurrency:") for t in s["what"]["finding_types"])
    cost = sections["cost"]["summary"]
    assert s["cost"]["total_usd"] == cost["total_usd"] and s["cost"]["total_usd"] > 0
    assert s["when"]["mining_evidence_first"] == cost["instances"][0]["first_evidence"]

    rule = load_rule(DEFAULT_RULE)
    assert report["rule"]["found"] and report["rule"]["id"] == report["alert"]["rule_id"] == rule.id
    assert report["investigation_steps"] == rule.investigation_steps
    assert report["notes"] == rule.notes
    assert report["actions"] == {
        "count": 0, "changed": 0, "read_only": 0, "failed": 0, "steps": 0, "checklist": 0, "entries": [],
        "note": "no actions taken yet",
    }

    checklist = report["checklist"]
    assert checklist["source"] == "response plan"
    ids = [i["id"] for i in checklist["items"]]
    assert {"isolate", "snapshot", "terminate"} <= set(ids) and "playbook-1" in ids
    # The enrichment reviewed CloudTrail (launch context, principal activity): those items closed themselves.
    auto = {i["id"] for i in checklist["items"] if i["auto"]}
    assert auto == {"playbook-4", "recommended-4"}
    assert all(i["open"] and i["status"] == "pending" for i in checklist["items"] if i["id"] not in auto)
    assert checklist["open"] == len(ids) - 2 and checklist["closed"] == 2
    # Every playbook line is carried by some step.
    carried = " ".join(" ".join(i["seed"]) for i in checklist["items"])
    for n in range(1, len(rule.response_playbook) + 1):
        assert f"Response Playbook {n}" in carried

    chart = report["cpu_chart"]
    assert chart["available"] and chart["threshold"] == 80.0
    [inst] = chart["instances"]
    cpu = sections["cpu"]["summary"]["instances"][0]
    assert inst["points_total"] == cpu["datapoints"] == len(inst["points"])
    assert inst["intervals"] == cpu["sustained_intervals"]
    assert json.loads(json.dumps(report)) == report  # plain JSON all the way down


def test_cli_json_equals_the_library_report(enriched: Case, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    invoke("report", enriched.alert_id, "--state", str(enriched.state), "--format", "json", "--out", str(out))
    doc = json.loads(out.read_text())
    expected = build_report(enriched.store(), enriched.alert_id)
    doc["report"].pop("generated_at")
    expected["report"].pop("generated_at")
    assert doc == json.loads(json.dumps(expected))


def test_cli_unknown_alert_exits_1(enriched: Case) -> None:
    res = runner.invoke(app, ["report", "mw-0000nope", "--state", str(enriched.state)])
    assert res.exit_code == 1
    assert "no alert" in res.output


def test_an_alert_never_enriched(enriched: Case, scenario, tmp_path: Path) -> None:
    root, _ = scenario
    state = tmp_path / "state.db"
    invoke("detect", str(root / "guardduty"), "--state", str(state))
    report = build_report(StateStore(state), enriched.alert_id)
    assert report["enriched"] is False and report["sections"] == {} and report["timeline"] == []
    assert any("not been enriched" in w for w in report["warnings"])
    assert report["cpu_chart"]["available"] is False
    assert report["summary"]["cost"] == {
        "status": "not enriched",
        "total_usd": None,
        "total_hours": None,
        "headline": None,
        "prices_as_of": None,
        "warnings": [],
    }
    assert report["summary"]["where"]["instance_ids"] == [enriched.instance_id]
    assert report["checklist"]["items"]  # the rule still gives the checklist


def test_actions_and_journal_close_checklist_items(enriched: Case, tmp_path: Path) -> None:
    from minerwatch.respond.journal import Journal

    store = StateStore(_copy_state(enriched, tmp_path))
    store.audit(
        "ec2:ModifyNetworkInterfaceAttribute",
        alert_id=enriched.alert_id,
        actor="alice",
        request={
            "service": "ec2",
            "operation": "ModifyNetworkInterfaceAttribute",
            "region": "us-east-1",
            "params": {"NetworkInterfaceId": "eni-1", "Groups": ["sg-q"]},
        },
        aws_request_id="req-1",
        result={"ok": True, "response": {}},
        at=1741600000.0,
    )
    store.audit(
        "step:isolate",
        alert_id=enriched.alert_id,
        actor="alice",
        result={"status": "done", "message": "isolated"},
        at=1741600001.0,
    )
    store.audit("step:other", alert_id="mw-someone-else", actor="bob", result={"status": "done"})
    journal = Journal(store, enriched.alert_id)
    journal.set("isolate", "done", message="isolated")
    journal.set("snapshot", "failed", message="volume busy")

    report = build_report(store, enriched.alert_id)
    actions = report["actions"]
    assert actions["count"] == 2 and actions["note"] is None
    first, second = actions["entries"]
    assert first["time"] == "2025-03-10T09:46:40Z" and first["outcome"] == "ok"
    assert first["aws_request_id"] == "req-1" and first["params"]["Groups"] == ["sg-q"]
    assert second["action"] == "step:isolate" and second["outcome"] == "done" and second["message"] == "isolated"
    items = {i["id"]: i for i in report["checklist"]["items"]}
    assert items["isolate"]["open"] is False and items["isolate"]["status"] == "done"
    assert items["snapshot"]["open"] is True and items["snapshot"]["message"] == "volume busy"
    assert report["checklist"]["closed"] == 1 + 2  # and the two CloudTrail items enrich closed
    assert report["checklist"]["open"] == len(items) - 3
    assert (actions["changed"], actions["read_only"], actions["steps"]) == (1, 0, 1)


def test_unknown_rule_and_rule_override(enriched: Case, tmp_path: Path) -> None:
    store = StateStore(_copy_state(enriched, tmp_path))
    store.db.execute("UPDATE alerts SET record = json_set(record, '$.rule_id', 'no-such-rule')")
    report = build_report(store, enriched.alert_id)
    assert report["rule"] == {"found": False, "id": "no-such-rule", "name": report["alert"]["rule_name"]}
    assert report["checklist"]["items"] == [] and report["investigation_steps"] == []
    assert any("not among the shipped rules" in w for w in report["warnings"])

    other = RULES_DIR / "aws-guardduty-crypto-mining-extended.md"
    report = build_report(store, enriched.alert_id, rule_path=other)
    assert report["rule"]["found"] and report["rule"]["path"] == str(other)
    assert any("is not the alert's rule" in w for w in report["warnings"])


def test_cpu_chart_without_the_metrics_file_shows_intervals(enriched: Case, tmp_path: Path, monkeypatch) -> None:
    store = StateStore(_copy_state(enriched, tmp_path))
    section = store.enrichments(enriched.alert_id)["cpu"]
    section["source"]["paths"] = ["gone/cpu.jsonl"]
    store.save_enrichment(enriched.alert_id, "cpu", section)
    report = build_report(store, enriched.alert_id)
    [inst] = report["cpu_chart"]["instances"]
    assert inst["points"] == []
    assert len(inst["intervals"]) == len(section["summary"]["instances"][0]["sustained_intervals"])
    assert report["cpu_chart"]["available"] and report["cpu_chart"]["points_from"] is None
    assert any("gone/cpu.jsonl not found" in w for w in report["warnings"])
    # --metrics brings the datapoints back.
    metrics = enriched.scenario / "metrics" / "cpu.jsonl"
    report = build_report(store, enriched.alert_id, metrics=str(metrics))
    [inst] = report["cpu_chart"]["instances"]
    assert inst["points_total"] == section["summary"]["instances"][0]["datapoints"]
    assert report["cpu_chart"]["points_from"] == f"metrics file {metrics}"


@pytest.mark.parametrize("status", ["unavailable", "empty"])
def test_cpu_chart_of_a_section_without_data(enriched: Case, tmp_path: Path, status: str) -> None:
    store = StateStore(_copy_state(enriched, tmp_path))
    store.save_enrichment(enriched.alert_id, "cpu", {"name": "cpu", "status": status, "reason": "no --metrics given"})
    chart = build_report(store, enriched.alert_id)["cpu_chart"]
    assert chart["available"] is False and "no --metrics given" in chart["reason"]
