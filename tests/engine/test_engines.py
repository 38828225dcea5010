"""Executors on the real samples: the seed rule, precedence, loading, conversions, files, streaming."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

from minerwatch.compile.python import compile_python
from minerwatch.engine.duckdb import run_duckdb, run_duckdb_files
from minerwatch.engine.stream import run_batch, run_stream
from minerwatch.lang.parser import parse_query
from minerwatch.sources.guardduty import finding_to_record
from minerwatch.sources.records import ReadStats, Record

DATA = Path(__file__).resolve().parents[1] / "data"
SEED = DATA / "seed" / "000_874a6878789f665b.txt"
SAMPLES = DATA / "real" / "guardduty"


def seed_query() -> str:
    return SEED.read_text(encoding="utf-8").split("```sql\n", 1)[1].split("```", 1)[0]


def test_seed_on_real_samples(records: list[Record]) -> None:
    q = parse_query(seed_query())
    py = run_batch(q, records)
    assert py == run_duckdb(q, records)
    assert len(py) == 1
    row = py[0]
    assert row["type"] == "CryptoCurrency:EC2/BitcoinTool.B!DNS"
    assert (row["accountid"], row["instance_id"], row["ami_id"]) == ("973743533182", "i-99999999", "ami-99999999")
    assert row["count"] == 1 and row["severity"] == 8.0
    assert row["first_seen"] == row["last_seen"] == datetime(2022, 1, 28, 21, 12, 25, 498000, tzinfo=UTC)
    assert row["tags"][0] == {"value": "GeneratedFindingInstaceValue1", "key": "GeneratedFindingInstaceTag1"}
    assert row["mining_pool_ip"] is None  # a DNS finding has no networkConnectionAction


def _finding(i: int, ftype: str, severity: float) -> Record:
    doc = {"id": f"p{i}", "accountId": "111111111111", "type": ftype, "severity": severity,
           "updatedAt": f"2024-05-01T10:0{i}:00Z", "resource": {"instanceDetails": {"instanceId": f"i-{i}"}}}
    return finding_to_record(doc, "<test>", i)


def test_seed_precedence_and_binds_tighter_than_or() -> None:
    recs = [
        _finding(0, "CryptoCurrency:EC2/BitcoinTool.B", 5),  # severity < 7 but still matches via like
        _finding(1, "Backdoor:EC2/Spambot", 9),
        _finding(2, "CryptoCurrency:EC2/BitcoinTool.B!DNS", 2),
    ]
    q = parse_query(seed_query())
    rows = run_batch(q, recs)
    assert rows == run_duckdb(q, recs)
    assert sorted(r["instance_id"] for r in rows) == ["i-0", "i-2"]
    explicit = parse_query(
        'from cloud.aws.guardduty where (type like "%Bitcoin%" or type = "x") and severity >= 7 select id'
    )
    assert run_batch(explicit, recs) == run_duckdb(explicit, recs) == []


def test_duckdb_reuses_a_connection_without_leftovers(records: list[Record]) -> None:
    con = duckdb.connect()
    q = parse_query("from cloud.aws.guardduty select id, eventdate, service.count")
    first = run_duckdb(q, records, con)
    second = run_duckdb(q, records, con)
    assert first == second == run_batch(q, records)
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone() == (0,)
    assert all(r["eventdate"].tzinfo is UTC for r in first)


def test_empty_input() -> None:
    q = parse_query("from cloud.aws.guardduty select id group by type")
    assert run_duckdb(q, []) == run_batch(q, []) == []


def test_duckdb_over_files_prefilters_and_counts(records: list[Record]) -> None:
    q = parse_query('from cloud.aws.guardduty where type like "%Bitcoin%" select id, type')
    stats = ReadStats()
    rows = run_duckdb_files(q, [str(SAMPLES)], stats=stats)
    assert rows == run_batch(q, records)
    assert {r["type"] for r in rows} == {
        "CryptoCurrency:EC2/BitcoinTool.B!DNS", "Impact:EC2/BitcoinDomainRequest.Reputation",
    }
    assert stats.prefiltered >= 8  # lines without "Bitcoin" were never parsed


def test_stream_yields_in_arrival_order(records: list[Record]) -> None:
    q = parse_query("from cloud.aws.guardduty where severity >= 5 select id")
    streamed = list(run_stream(q, records))
    assert streamed == [{"id": r.flat["id"]} for r in records if r.flat["severity"] >= 5]
    assert sorted(streamed, key=lambda r: r["id"]) == sorted(run_batch(q, records), key=lambda r: r["id"])


def test_generated_code_is_safe_with_hostile_literals(records: list[Record]) -> None:
    hostile = "x'); import os; os.system('echo pwned') #\\\"\n"
    text = 'from cloud.aws.guardduty where type = "' + hostile.replace("\\", "\\\\").replace('"', '\\"').replace(
        "\n", "\\n") + '" or type like "%\'%" select id, "' + hostile.replace("\\", "\\\\").replace(
        '"', '\\"').replace("\n", "\\n") + '" as lit'
    q = parse_query(text)
    plan = compile_python(q)
    assert "import os" not in plan.source.replace(repr(hostile), "")
    assert run_batch(q, records) == run_duckdb(q, records) == []
    one = finding_to_record({"id": "h", "accountId": "1", "type": hostile, "updatedAt": "2024-01-01T00:00:00Z"}, "-", 1)
    assert run_batch(q, [one]) == run_duckdb(q, [one]) == [{"id": "h", "lit": hostile}]


def test_project_and_predicate_api(records: list[Record]) -> None:
    plan = compile_python(parse_query(seed_query()))
    matched = [r for r in records if plan.predicate(r)]
    assert len(matched) == 1
    projected = plan.project(matched[0])
    assert projected["instance_id"] == "i-99999999" and "count" not in projected
