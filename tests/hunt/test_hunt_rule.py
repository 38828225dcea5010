"""The shipped hunting rule: its document, its fixtures replayed through the hunt, its query."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.enrich.iocs import IocSet
from minerwatch.hunt.rule_tests import run_hunt_rule_tests
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import RULES_DIR

HUNT_RULE = RULES_DIR / "aws-ioc-hunt-crypto-mining.md"

runner = CliRunner()


def test_rule_document_loads_cleanly() -> None:
    rule = load_rule(HUNT_RULE)
    assert rule.id == "aws-ioc-hunt-crypto-mining"
    assert rule.warnings == []
    assert rule.table == "cloud.aws.vpcflow"
    assert (rule.severity, rule.priority) == ("high", "P2")
    assert (rule.throttle.count, rule.throttle.key, rule.throttle.window_seconds) == (
        1,
        ["accountid", "resource_id"],
        86400,
    )
    assert {"nanopool.org", "minergate.com", "ethermine.org", "moneropool.com"} <= set(rule.iocs.domains)
    assert {3333, 4444, 14444} <= set(rule.iocs.ports)
    assert [t.id for t in rule.mitre.techniques] == ["T1496", "T1496.001"]
    assert len(rule.tests) == 4


def test_rule_fixtures_replay_through_the_hunt() -> None:
    results = run_hunt_rule_tests(load_rule(HUNT_RULE))
    assert [r.test.name for r in results] == [
        "stratum-one-instance",
        "two-enis-default-format",
        "new-indicator-after-window",
        "benign-traffic",
    ]
    for r in results:
        assert r.ok, r.format(str(HUNT_RULE))
    assert sum(r.alerts for r in results) == 5


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    text = HUNT_RULE.read_text().replace("expect: {matches: 0, alerts: 0}", "expect: {matches: 1, alerts: 0}")
    copy = tmp_path / "aws-ioc-hunt-crypto-mining.md"
    copy.write_text(text)
    (tmp_path / "fixtures").symlink_to(HUNT_RULE.parent / "fixtures")
    results = run_hunt_rule_tests(load_rule(copy))
    assert [r.ok for r in results] == [True, True, True, False]


def test_query_matches_the_hunts_stratum_flows(
    scenario: tuple[Path, dict[str, Any]], hunt_iocs: IocSet
) -> None:
    root, manifest = scenario
    res = runner.invoke(app, ["query", str(HUNT_RULE), str(root / "vpcflow"), "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    by_instance = {i["instance_id"]: i for i in manifest["compromised_instances"]}
    by_eni = {i["eni_id"]: i for i in manifest["compromised_instances"]}
    found = {(by_instance.get(r["resource_id"]) or by_eni[r["resource_id"]])["instance_id"] for r in rows}
    assert found == set(by_instance)
