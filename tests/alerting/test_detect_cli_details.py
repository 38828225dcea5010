"""Small things a first week of `detect` ran into: the rejects file and the table's types column."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.rules.shipped import DEFAULT_RULE

runner = CliRunner()


def test_rejects_file_is_created_empty_and_named_when_nothing_is_rejected(samples: Path, tmp_path: Path) -> None:
    rejects = tmp_path / "out" / "rejects.jsonl"
    stats = tmp_path / "stats.json"
    findings = samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"
    res = runner.invoke(app, ["detect", str(findings), "--state", str(tmp_path / "s.db"), "--rejects", str(rejects),
                              "--stats-json", str(stats)])
    assert res.exit_code == 0, res.output
    assert rejects.exists() and rejects.read_bytes() == b""
    summary = json.loads(stats.read_text())
    assert summary["rejected"] == 0 and summary["rejects_file"] == str(rejects)
    assert f"no rejects (rejects file: {rejects})" in res.output


def test_types_column_for_a_rule_not_grouped_by_type(samples: Path, tmp_path: Path) -> None:
    text = DEFAULT_RULE.read_text()
    assert "group by accountid, instance_id, type" in text
    rule = tmp_path / "by-instance.md"
    rule.write_text(text.replace("group by accountid, instance_id, type", "group by accountid, instance_id"))
    findings = samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"
    res = runner.invoke(app, ["detect", str(findings), "--include-samples", "--rule", str(rule), "--state",
                              str(tmp_path / "s.db"), "-f", "table"])
    assert res.exit_code == 0, res.output
    [row] = [i for i, line in enumerate(res.stdout.splitlines()) if "mw-" in line]
    types = [line.split("│")[-2].strip() for line in res.stdout.splitlines()[row : row + 2]]
    assert " ".join(types) == "CryptoCurrency:EC2/BitcoinTool.B!DNS (latest; not grouped by type)"


def test_hunt_rejects_file_is_created_empty_too(tmp_path: Path) -> None:
    from minerwatch.rules.shipped import RULES_DIR

    flows = RULES_DIR / "fixtures" / "aws-ioc-hunt-crypto-mining" / "stratum-one-instance.log"
    rejects, stats = tmp_path / "hunt-rejects.jsonl", tmp_path / "hunt.json"
    res = runner.invoke(app, ["hunt", "--flow", str(flows), "--rejects", str(rejects), "--stats-json", str(stats),
                              "--state", str(tmp_path / "none.db")])
    assert res.exit_code == 0, res.output
    assert rejects.exists() and rejects.read_bytes() == b""
    assert json.loads(stats.read_text())["rejects_file"] == str(rejects)
    assert f"no rejects; rejects file {rejects}" in res.output
