from __future__ import annotations

import json

from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

runner = CliRunner()


def test_rules_show_json_of_the_seed(seed_path):
    res = runner.invoke(app, ["rules", "show", str(seed_path), "--json"])
    assert res.exit_code == 0, res.output
    rule = json.loads(res.stdout)
    assert (rule["severity"], rule["priority"]) == ("critical", "P1")
    assert {t["id"] for t in rule["mitre"]["tactics"]} == {"TA0040", "TA0042"}
    assert [t["id"] for t in rule["mitre"]["techniques"]] == ["T1496"]
    assert rule["throttle"] == {"count": 1, "key": ["accountid", "instance_id"], "window_seconds": 7200}
    assert rule["iocs"]["domains"] == ["moneropool.com", "minergate.com", "nanopool.org", "ethermine.org"]
    assert rule["iocs"]["ports"] == [3333, 4444, 14444]
    assert len(rule["recommended_actions"]) == 11 and len(rule["response_playbook"]) == 12
    assert rule["recommended_actions"][0] == "IMMEDIATE: Isolate affected EC2 instance"
    assert rule["query"].startswith("from cloud.aws.guardduty")
    assert "Notes" in rule["sections"] and "Cost Impact Analysis" in rule["sections"]
    for key in ("id", "name", "investigation_steps", "false_positives"):
        assert key in rule


def test_lint_seed_exits_zero_with_warnings(seed_path):
    res = runner.invoke(app, ["lint", str(seed_path)])
    assert res.exit_code == 0, res.output
    assert "warning[precedence]" in res.stdout
    assert "Impact:EC2/BitcoinDomainRequest.Reputation" in res.stdout


def test_lint_syntax_error_exits_non_zero_with_caret(tmp_path):
    bad = tmp_path / "bad.linq"
    bad.write_text("from cloud.aws.guardduty\nwhere type = = 'x'\n")
    res = runner.invoke(app, ["lint", str(bad)])
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"{bad}:2:14: ")
    assert lines[1].strip() == "where type = = 'x'"
    assert lines[2].index("^") == lines[1].index("=", lines[1].index("=") + 1)


def test_lint_unknown_table_in_rule_document(tmp_path, seed_path):
    doc = seed_path.read_text().replace("from cloud.aws.guardduty", "from cloud.aws.nosuch")
    path = tmp_path / "rule.md"
    path.write_text(doc)
    res = runner.invoke(app, ["lint", str(path)])
    assert res.exit_code == 1
    assert f"{path}:16:" in res.stdout


def test_shipped_rule_fixtures_replay():
    res = runner.invoke(app, ["test"])
    assert res.exit_code == 0, res.output
    assert "FAIL" not in res.stdout and res.stdout.count(" ok ") >= 20
