"""`minerwatch compile` output runs in `minerwatch sql` unchanged and gives the rows of `minerwatch query`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.compile.sql import relation_name
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import RULES_DIR, SAMPLES_DIR, shipped_rules

runner = CliRunner()
OPTION = {
    "cloud.aws.guardduty": "--findings",
    "cloud.aws.vpcflow": "--flow",
    "cloud.aws.cloudtrail": "--cloudtrail",
    "cloud.aws.route53resolver": "--dns",
}


def _inputs(rule: Path, table: str) -> list[str]:
    """The rule's own fixtures, and for GuardDuty rules the bundled sample findings too."""
    paths = [str(RULES_DIR / "fixtures" / rule.stem)]
    if table == "cloud.aws.guardduty":
        paths.append(str(SAMPLES_DIR / "findings"))
    return paths


def _ok(args: list[str], input: str | None = None) -> str:
    res = runner.invoke(app, args, input=input)
    assert res.exit_code == 0, res.output
    return res.stdout


@pytest.mark.parametrize("rule", shipped_rules(), ids=lambda p: p.stem)
def test_compiled_rule_runs_in_sql_with_the_rows_of_query(rule: Path, tmp_path: Path) -> None:
    table = load_rule(rule).table
    sql = _ok(["compile", str(rule), "--dialect", "duckdb"])
    assert f'FROM "{relation_name(table)}"' in sql
    inputs = _inputs(rule, table)
    loaded: list[str] = []
    for path in inputs:
        loaded += [OPTION[table], path]
    expected = [json.loads(line) for line in _ok(["query", str(rule), *inputs, "--format", "json"]).splitlines()]
    assert len(expected) >= 3  # the comparison means something
    from_arg = [json.loads(line) for line in _ok(["sql", sql, *loaded, "--format", "json"]).splitlines()]
    assert from_arg == expected
    # Piped, as `minerwatch compile RULE | minerwatch sql - ...`, and from a .sql file.
    assert [json.loads(line) for line in _ok(["sql", "-", *loaded, "-f", "json"], input=sql).splitlines()] == expected
    path = tmp_path / "rule.sql"
    path.write_text(sql)
    assert [json.loads(line) for line in _ok(["sql", str(path), *loaded, "-f", "json"]).splitlines()] == expected


def test_sql_tables_are_named_like_the_catalogue(tmp_path: Path) -> None:
    findings = str(SAMPLES_DIR / "findings")
    out = _ok(["sql", "SELECT count(*) AS n FROM cloud_aws_guardduty", "--findings", findings, "-f", "json"])
    assert json.loads(out)["n"] > 0
    res = runner.invoke(app, ["sql", "SELECT count(*) FROM guardduty", "--findings", findings])
    assert res.exit_code != 0 and "guardduty" in res.output
