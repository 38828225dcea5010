"""Differential: the same query gives the same rows, in the same order, on the streaming executor, DuckDB and
Spark — every shipped rule, the real samples, a bounded sample of the generated LINQ corpus, and time bucketing
with the session time zone away from UTC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from linq_gen import REAL, _norm, findings, query_text

from minerwatch.compile.python import compile_python
from minerwatch.compile.sql import compile_sql
from minerwatch.engine.duckdb import run_duckdb
from minerwatch.engine.spark import run_spark
from minerwatch.errors import QueryCompileError
from minerwatch.generate.findings import generate_findings
from minerwatch.generate.flows import write_flow_files
from minerwatch.lang.parser import parse_query
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import shipped_rules
from minerwatch.sources.guardduty import finding_to_record
from minerwatch.sources.records import ReadStats, Record
from minerwatch.sources.registry import read_table

GENERATED = [finding_to_record(f, "gen.jsonl", i + 1) for i, f in enumerate(generate_findings(400, seed=3,
                                                                                              crypto_ratio=0.3))]


def _rows(rows: list[dict[str, Any]]) -> list[bytes]:
    # Keys inside JSON objects compare sorted: a Spark VARIANT keeps an object's keys in sorted order.
    return [orjson.dumps({k: _norm(v) for k, v in r.items()}, option=orjson.OPT_SORT_KEYS) for r in rows]


def three_ways(spark: Any, text: str, recs: list[Record]) -> list[dict[str, Any]]:
    query = parse_query(text, "<test>")
    py = compile_python(query).run(recs)
    duck = run_duckdb(query, recs)
    sp = run_spark(spark, query, recs)
    assert [list(r) for r in sp] == [list(r) for r in py], "column names differ"
    assert _rows(duck) == _rows(py), f"DuckDB differs for:\n{text}"
    assert _rows(sp) == _rows(py), f"Spark differs for:\n{text}"
    return py


def _flow_records(tmp: Path) -> list[Record]:
    """Generated flow logs (with Stratum-port hits) and the real flow-log samples, as canonical records."""
    write_flow_files(tmp / "flows", 3000, 2, seed=4, hit_ratio=0.05, processes=1)
    stats = ReadStats()
    paths = [str(tmp / "flows"), str(Path(__file__).resolve().parents[1] / "data" / "real" / "vpcflow")]
    return list(read_table("cloud.aws.vpcflow", paths, on_reject=lambda _r: None, stats=stats))


@pytest.mark.parametrize("rule_path", shipped_rules(), ids=lambda p: p.stem)
def test_every_shipped_rule(spark: Any, rule_path: Path, tmp_path: Path) -> None:
    rule = load_rule(rule_path)
    query = parse_query(rule.query, str(rule_path), rule.query_line - 1)
    table = query.table.lower()
    recs = REAL + GENERATED if table == "cloud.aws.guardduty" else _flow_records(tmp_path)
    assert table in ("cloud.aws.guardduty", "cloud.aws.vpcflow")
    rows = three_ways(spark, rule.query, recs)
    assert rows, "the rule should match some records"


REAL_QUERIES = [
    'from cloud.aws.guardduty where type like "%CryptoCurrency%" or type = "CryptoCurrency:EC2/BitcoinTool.B!DNS"'
    ' or type = "CryptoCurrency:EC2/BitcoinTool.B" and severity >= 7',
    "from cloud.aws.guardduty select id, resource.instanceDetails.tags, service.count * 2 as c2",
    "from cloud.aws.guardduty select count(), countdistinct(resource.instanceDetails.instanceId) as n, "
    "max(service.count) as mx, avg(severity) as av, first(type) as f, last(type) as l group by accountid",
    "from cloud.aws.guardduty where service.additionalInfo.sample select id, lower(title) as t",
    'from cloud.aws.guardduty where eventdate >= "2022-06-01" select id, eventdate group every 1d by region',
]


@pytest.mark.parametrize("text", REAL_QUERIES)
def test_real_samples(spark: Any, text: str) -> None:
    assert three_ways(spark, text, REAL)


_T0 = min(r.flat["eventdate"] for r in GENERATED)
TIME_QUERIES = [
    "from cloud.aws.guardduty select id, eventdate group every 1d by accountid",
    "from cloud.aws.guardduty select type group every 1h by type",
    f'from cloud.aws.guardduty where eventdate >= "{_T0:%Y-%m-%d}T05:00:00Z" and eventdate < "{_T0:%Y-%m}-20" '
    "select id, eventdate",
]


@pytest.mark.parametrize("text", TIME_QUERIES)
def test_time_does_not_follow_the_session_zone(non_utc_session: Any, text: str) -> None:
    """Day buckets and time literals are UTC even when the session's zone is not (the engine pins UTC anyway)."""
    assert three_ways(non_utc_session, text, GENERATED)


def test_spark_sql_has_no_zone_dependent_casts() -> None:
    sql = compile_sql(parse_query(TIME_QUERIES[0]), "spark")
    assert "AS TIMESTAMP)" not in sql.replace("TIMESTAMP_NTZ", "")


@settings(max_examples=12, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(text=query_text(), recs=findings())
def test_generated_corpus(spark: Any, text: str, recs: list[Record]) -> None:
    try:
        compile_python(parse_query(text, "<generated>"))
    except QueryCompileError:
        return
    three_ways(spark, text, recs)
