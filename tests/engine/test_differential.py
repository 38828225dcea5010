"""Differential test: random queries over random and real findings give the same rows in the Python (streaming)
executor and in DuckDB — same values, same order. Strategies: ``linq_gen``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from linq_gen import REAL, check_same, findings, query_text

from minerwatch.compile.python import compile_python
from minerwatch.errors import QueryCompileError
from minerwatch.lang.parser import parse_query
from minerwatch.sources.records import Record

settings.register_profile(
    "differential",
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("differential-ci", parent=settings.get_profile("differential"), derandomize=True)
PROFILE = "differential-ci" if os.environ.get("CI") else "differential"

@settings(settings.get_profile(PROFILE))
@given(query_text(), findings())
def test_python_and_duckdb_agree(text: str, recs: list[Record]) -> None:
    check_same(text, recs)


@pytest.mark.parametrize(
    "text",
    [
        'from cloud.aws.guardduty where type like "%CryptoCurrency%" or type = "CryptoCurrency:EC2/BitcoinTool.B!DNS"'
        ' or type = "CryptoCurrency:EC2/BitcoinTool.B" and severity >= 7',
        "from cloud.aws.guardduty select id, resource.instanceDetails.tags, service.count * 2 as c2",
        "from cloud.aws.guardduty select count(), countdistinct(resource.instanceDetails.instanceId) as n, "
        "max(service.count) as mx, avg(severity) as av, first(type) as f, last(type) as l group by accountid",
        "from cloud.aws.guardduty where service.additionalInfo.sample select id, lower(title) as t",
        'from cloud.aws.guardduty where eventdate >= "2022-06-01" select id, eventdate group every 1d by region',
    ],
)
def test_real_findings_agree(text: str) -> None:
    check_same(text, REAL)
    assert compile_python(parse_query(text)).run(REAL), "the query should match some real findings"



def test_generated_queries_are_not_vacuous() -> None:
    """Most generated queries compile, and many return rows (else the differential test proves little)."""
    stats = {"n": 0, "compiled": 0, "rows": 0, "grouped": 0}

    @settings(max_examples=150, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(query_text(), findings())
    def inner(text: str, recs: list[Record]) -> None:
        stats["n"] += 1
        try:
            plan = compile_python(parse_query(text))
        except QueryCompileError:
            return
        stats["compiled"] += 1
        stats["grouped"] += plan.bound.aggregated
        if any(any(v is not None for v in row.values()) for row in plan.run(recs)):
            stats["rows"] += 1

    inner()
    print(stats)
    assert stats["compiled"] >= 0.8 * stats["n"]
    assert stats["rows"] >= 0.2 * stats["n"]
    assert stats["grouped"] >= 0.15 * stats["n"]
