"""The ``compile`` and ``query`` commands."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import orjson
import sqlglot
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

DATA = Path(__file__).resolve().parents[1] / "data"
SEED = DATA / "seed" / "000_874a6878789f665b.txt"
SAMPLES = DATA / "real" / "guardduty"
runner = CliRunner()


def test_compile_a_rule_document_for_each_dialect() -> None:
    for dialect in ("duckdb", "spark", "trino"):
        res = runner.invoke(app, ["compile", str(SEED), "--dialect", dialect])
        assert res.exit_code == 0, res.output
        assert "CryptoCurrency" in res.stdout
        sqlglot.parse_one(res.stdout, read=dialect)


def test_compile_a_linq_file(tmp_path: Path) -> None:
    f = tmp_path / "q.linq"
    f.write_text("from cloud.aws.guardduty\nwhere severity > 7\n", encoding="utf-8")
    res = runner.invoke(app, ["compile", str(f)])
    assert res.exit_code == 0 and '"severity" > CAST(7.0 AS DOUBLE)' in res.stdout


def test_compile_errors_show_position_and_caret(tmp_path: Path) -> None:
    f = tmp_path / "bad.linq"
    f.write_text("from cloud.aws.guardduty\nwhere eventdate > 'soon'\n", encoding="utf-8")
    res = runner.invoke(app, ["compile", str(f)])
    assert res.exit_code == 2
    lines = res.stderr.splitlines()
    assert lines[0] == f"{f}:2:19: 'soon' is not an ISO 8601 timestamp"
    assert lines[1].strip() == "where eventdate > 'soon'"
    assert lines[2].index("^") == lines[1].index("'soon'")


def test_query_json_both_engines_agree() -> None:
    text = "from cloud.aws.guardduty select type, count() group by type"
    outs = []
    for engine in ("duckdb", "stream"):
        res = runner.invoke(app, ["query", text, str(SAMPLES), "--format", "json", "--engine", engine])
        assert res.exit_code == 0, res.output
        outs.append([orjson.loads(line) for line in res.stdout.splitlines()])
    assert outs[0] == outs[1]
    assert sum(r["count"] for r in outs[0]) == 11
    assert outs[0][0]["first_seen"].endswith("Z")


def test_query_csv_and_table() -> None:
    res = runner.invoke(app, ["query", str(SEED), str(SAMPLES), "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 1 and rows[0]["instance_id"] == "i-99999999"
    assert orjson.loads(rows[0]["tags"])[0]["key"] == "GeneratedFindingInstaceTag1"
    res = runner.invoke(app, ["query", "from cloud.aws.guardduty select id, title", str(SAMPLES)])
    assert res.exit_code == 0 and "11 rows" in res.stderr


def test_query_reports_rejects_on_stderr(tmp_path: Path) -> None:
    f = tmp_path / "mixed.jsonl"
    good = (SAMPLES / "elastic-test-guard_duty-crypto.jsonl").read_bytes().splitlines()[0]
    f.write_bytes(good + b"\n{not json\n" + b'{"id": "x"}\n')
    res = runner.invoke(app, ["query", "from cloud.aws.guardduty select id", str(f), "-f", "json"])
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 1
    assert "2 input records rejected" in res.stderr


def test_query_error_exit_code() -> None:
    res = runner.invoke(app, ["query", "from cloud.aws.guardduty where", str(SAMPLES)])
    assert res.exit_code == 2 and "<query>:1:31" in res.stderr
