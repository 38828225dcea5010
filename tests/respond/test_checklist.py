"""The response checklist: ticked by hand with who, when and a note; closed by what the tool already did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.enrich.sections import make_section
from minerwatch.report.model import build_report
from minerwatch.respond.checklist import ChecklistError, checklist_items, complete_item, step_ids
from minerwatch.rules.shipped import DEFAULT_RULE, shipped_rule

runner = CliRunner()


@pytest.fixture
def case(samples: Path, tmp_path: Path) -> dict[str, Any]:
    state = tmp_path / "state.db"
    findings = samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"
    res = runner.invoke(app, ["detect", str(findings), "--include-samples", "--state", str(state)])
    assert res.exit_code == 0, res.output
    [alert] = StateStore(state).list_alerts()
    return {"state": state, "alert": alert, "rule": shipped_rule(alert["rule_id"])}


def _respond(case: dict[str, Any], *args: str, env: dict[str, str] | None = None) -> Any:
    return runner.invoke(app, ["respond", case["alert"]["alert_id"], "--state", str(case["state"]), *args], env=env)


def test_done_ticks_a_manual_item_with_who_when_and_the_note(case: dict[str, Any]) -> None:
    res = _respond(case, "--done", "playbook-1", "--note", "mining confirmed on the host", "--user", "alice", "--json")
    assert res.exit_code == 0, res.output
    items = {i["id"]: i for i in json.loads(res.stdout)}
    first = items["playbook-1"]
    assert first["open"] is False and first["status"] == "done"
    assert (first["done_by"], first["note"]) == ("alice", "mining confirmed on the host")
    assert first["done_at"].endswith("Z")
    assert sum(not i["open"] for i in items.values()) == 1
    [entry] = StateStore(case["state"]).audit_log(case["alert"]["alert_id"])
    assert (entry["action"], entry["actor"]) == ("checklist:done", "alice")
    assert entry["request"] == {"item": "playbook-1", "title": "Confirm cryptocurrency mining activity",
                                "note": "mining confirmed on the host"}
    # By number, and by default as the OS user.
    number = items["playbook-5"]["number"]
    res = _respond(case, "--done", str(number), env={"USER": "bob"})
    assert res.exit_code == 0, res.output
    assert "playbook-5: done by bob at" in res.output
    assert "[x] playbook-5" in res.stdout and "[ ] playbook-6" in res.stdout
    # The report shows it: the item closed, one checklist tick, no change to the account.
    report = build_report(StateStore(case["state"]), case["alert"]["alert_id"])
    closed = {i["id"] for i in report["checklist"]["items"] if not i["open"]}
    assert closed == {"playbook-1", "playbook-5"}
    assert (report["actions"]["checklist"], report["actions"]["changed"]) == (2, 0)


def test_done_refuses_automated_steps_and_unknown_items(case: dict[str, Any]) -> None:
    res = _respond(case, "--done", "isolate")
    assert res.exit_code != 0 and "isolate is an automated step" in res.output
    res = _respond(case, "--done", "review everything")
    assert res.exit_code != 0 and "no checklist item 'review everything'; items: 1 playbook-1" in res.output
    res = _respond(case, "--note", "orphan")
    assert res.exit_code != 0 and "--note goes with --done" in res.output
    assert StateStore(case["state"]).audit_log(case["alert"]["alert_id"]) == []


def test_cloudtrail_items_close_when_enrich_reviewed_the_launch_and_the_principal(case: dict[str, Any]) -> None:
    store, alert, rule = StateStore(case["state"]), case["alert"], case["rule"]
    trail = [i.id for i in checklist_items(store, alert, rule) if "cloudtrail" in i.title.lower()]
    assert trail == ["playbook-4", "recommended-4"]
    store.save_enrichment(alert["alert_id"], "launch_context", make_section("launch_context", "ok", headline="x"))
    store.save_enrichment(
        alert["alert_id"], "principal_activity", make_section("principal_activity", "unavailable", reason="no logs")
    )
    assert all(i.open for i in checklist_items(store, alert, rule) if i.id in trail)
    store.save_enrichment(alert["alert_id"], "principal_activity", make_section("principal_activity", "empty"))
    items = {i.id: i for i in checklist_items(store, alert, rule)}
    for item_id in trail:
        assert not items[item_id].open and "CloudTrail reviewed by enrich" in (items[item_id].auto or "")
    assert sum(not i.open for i in items.values()) == 2


def test_complete_item_is_the_library_call(case: dict[str, Any]) -> None:
    store, alert, rule = StateStore(case["state"]), case["alert"], case["rule"]
    item = complete_item(store, alert, rule, "recommended-8", actor="carol", note="clean AMI ready", at=1741600000.0)
    assert (item.done_by, item.done_at, item.note) == ("carol", "2025-03-10T09:46:40Z", "clean AMI ready")
    with pytest.raises(ChecklistError, match="automated step"):
        complete_item(store, alert, rule, "terminate", actor="carol")


def test_unknown_step_lists_the_valid_ones_before_any_call(case: dict[str, Any]) -> None:
    res = _respond(case, "--execute", "--step", "isolat", "--region", "us-east-1")
    assert res.exit_code != 0
    valid = step_ids(case["rule"])
    assert valid[:4] == ["tag", "evidence", "live-forensics", "isolate"] and "terminate" in valid
    assert f"no step isolat in this rule's plan; valid steps: {', '.join(valid)}" in " ".join(res.output.split())
    assert StateStore(case["state"]).audit_log(case["alert"]["alert_id"]) == []


def test_report_counts_changes_apart_from_reads(case: dict[str, Any]) -> None:
    store, alert_id = StateStore(case["state"]), case["alert"]["alert_id"]
    for action, ok in (("ec2:DescribeInstances", True), ("ec2:CreateSecurityGroup", True),
                       ("ec2:ModifyNetworkInterfaceAttribute", False), ("ec2:CreateSnapshot", True)):
        store.audit(action, alert_id=alert_id, actor="x", result={"ok": ok})
    store.audit("step:isolate", alert_id=alert_id, actor="x", result={"status": "failed"})
    actions = build_report(store, alert_id)["actions"]
    assert (actions["changed"], actions["read_only"], actions["failed"], actions["steps"]) == (2, 1, 1, 1)
    md = runner.invoke(app, ["report", alert_id, "--state", str(case["state"])])
    assert "2 changes, 1 read-only call, 1 failed call, 1 step result" in md.stdout
    assert DEFAULT_RULE.exists()


def _flows(path: Path, start: int, end: int) -> Path:
    # VPC flow logs v2: the alert's instance talking to nothing suspicious, over [start, end].
    lines = [f"2 973743533182 eni-0a1b2c3d4e5f60718 10.0.0.{i} 198.51.100.{i} 443 51000 6 10 840 {t} {t + 60} ACCEPT OK"
             for i, t in enumerate((start, (start + end) // 2, end - 60))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("engine", ["duckdb", "python"])
def test_hunt_items_close_when_a_hunt_covered_the_alerts_window(
    case: dict[str, Any], tmp_path: Path, engine: str
) -> None:
    store, alert, rule = StateStore(case["state"]), case["alert"], case["rule"]
    hunting = ["playbook-9", "recommended-10"]
    titles = {i.id: i.title for i in checklist_items(store, alert, rule)}
    assert [titles[h] for h in hunting] == ["Hunt for similar activity across account",
                                            "Scan other instances for similar IOCs"]
    # 2022-01-28T00:00Z .. 2022-01-29T00:00Z holds the alert (2022-01-28T21:12:25Z); 2023 does not.
    before = _flows(tmp_path / "old.log", 1672531200, 1672617600)
    res = runner.invoke(app, ["hunt", "--flow", str(before), "--state", str(case["state"]), "--engine", engine])
    assert res.exit_code == 0, res.output
    assert "hunt noted in" in res.output and "2023-01-01T00:00:00Z to 2023-01-02T00:00:00Z" in res.output
    assert all(i.open for i in checklist_items(store, alert, rule) if i.id in hunting)
    covering = _flows(tmp_path / "day.log", 1643328000, 1643414400)
    res = runner.invoke(app, ["hunt", "--flow", str(covering), "--state", str(case["state"]), "--engine", engine])
    assert res.exit_code == 0, res.output
    items = {i.id: i for i in checklist_items(store, alert, rule)}
    for item_id in hunting:
        assert not items[item_id].open
        assert "swept the fleet's logs from 2022-01-28T00:00:00Z to 2022-01-29T00:00:00Z" in (items[item_id].auto or "")
    assert sum(not i.open for i in items.values()) == 2


def test_a_hunt_does_not_create_a_state_store(tmp_path: Path) -> None:
    flows = _flows(tmp_path / "day.log", 1643328000, 1643414400)
    state = tmp_path / "none.db"
    res = runner.invoke(app, ["hunt", "--flow", str(flows), "--state", str(state)])
    assert res.exit_code == 0, res.output
    assert not state.exists() and "hunt noted" not in res.output
