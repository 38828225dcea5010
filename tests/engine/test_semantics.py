"""The semantics of docs/query-language.md, checked on both executors at once (they must agree, and be right)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from minerwatch.compile.python import compile_python
from minerwatch.engine.duckdb import run_duckdb
from minerwatch.engine.stream import run_stream
from minerwatch.errors import QueryCompileError
from minerwatch.lang.parser import parse_query
from minerwatch.sources.guardduty import finding_to_record
from minerwatch.sources.records import Record


def rec(i: int, minute: int = 0, **doc: Any) -> Record:
    base = {
        "id": f"f{i:02d}",
        "accountId": "111111111111",
        "type": "Recon:EC2/PortProbeUnprotectedPort",
        "updatedAt": f"2024-05-01T10:{minute:02d}:00Z",
    }
    base.update(doc)
    return finding_to_record(base, "<test>", i)


def both(text: str, recs: list[Record]) -> list[dict[str, Any]]:
    q = parse_query(text)
    py = compile_python(q).run(recs)
    duck = run_duckdb(q, recs)
    assert duck == py, f"executors disagree:\npython {py}\nduckdb {duck}"
    return py


def ids(text: str, recs: list[Record]) -> list[str]:
    return [r["id"] for r in both(text, recs)]


def value(expr: str, **doc: Any) -> Any:
    """The value of ``expr`` for one record."""
    return both(f"from cloud.aws.guardduty select {expr} as v", [rec(0, **doc)])[0]["v"]


def truth(cond: str, **doc: Any) -> bool | None:
    """TRUE / FALSE / NULL of a condition, read through where and where-not."""
    r = [rec(0, **doc)]
    yes = bool(both(f"from cloud.aws.guardduty where {cond} select id", r))
    no = bool(both(f"from cloud.aws.guardduty where not ({cond}) select id", r))
    assert not (yes and no)
    assert value(f"({cond}) = true", **doc) == (True if yes else False if no else None)
    return True if yes else False if no else None


# ---------------------------------------------------------------------------------------------- paths
def test_missing_keys_and_non_objects_are_null() -> None:
    assert value("a.b.c") is None
    assert value("a.b.c", a=1) is None
    assert value("a.b.c", a={"b": [1, 2]}) is None
    assert value("a.b.c", a={"b": "text"}) is None
    assert value("a.b.c", a={"b": {"c": {"d": [1, None]}}}) == {"d": [1, None]}
    assert value("a.b", a={"b": None}) is None


def test_document_paths_bind_case_insensitively_through_the_model() -> None:
    doc = {"resource": {"instanceDetails": {"instanceId": "i-1", "tags": [{"key": "k", "value": "v"}]}}}
    assert value("RESOURCE.instancedetails.INSTANCEID", **doc) == "i-1"
    assert value("resource.instanceDetails.tags", **doc) == [{"key": "k", "value": "v"}]
    # Keys the model does not know are matched as written.
    assert value("custom.Key", custom={"Key": 1}) == 1
    assert value("custom.key", custom={"Key": 1}) is None


def test_flat_columns_are_typed() -> None:
    row = both("from cloud.aws.guardduty select eventdate, SEVERITY, type", [rec(0, severity=5)])[0]
    assert row == {"eventdate": datetime(2024, 5, 1, 10, 0, tzinfo=UTC), "SEVERITY": 5.0, "type": rec(0).flat["type"]}
    assert isinstance(row["SEVERITY"], float)


def test_no_select_gives_every_flat_column() -> None:
    row = both("from cloud.aws.guardduty", [rec(0, severity=2, region="eu-west-1")])[0]
    assert list(row) == ["eventdate", "accountid", "region", "type", "title", "description", "severity", "id", "arn"]


# ---------------------------------------------------------------------------------------------- comparisons
@pytest.mark.parametrize(
    ("cond", "doc", "expected"),
    [
        ('x = "1"', {"x": 1}, None),  # number vs string: null
        ("x = 1", {"x": "1"}, None),
        ("x = 1", {"x": True}, None),  # booleans are not numbers
        ("x = true", {"x": True}, True),
        ("x < true", {"x": False}, None),  # booleans only compare for (in)equality
        ("x = 1", {"x": 1.0}, True),
        ("x >= 7", {"x": 7}, True),
        ("x != 2.5", {"x": 2}, True),
        ('x < "b"', {"x": "a"}, True),
        ('x = "A"', {"x": "a"}, False),  # case-sensitive
        ("x = y", {"x": "s", "y": "s"}, True),
        ("x = y", {"x": 3, "y": 3.0}, True),
        ("x = y", {"x": "3", "y": 3}, None),
        ("x = y", {"x": {"a": 1}, "y": {"a": 1}}, None),  # objects do not compare
        ("x = null", {"x": None}, None),
        ("x is null", {}, True),
        ("x is null", {"x": None}, True),
        ("x is not null", {"x": []}, True),
        ("severity = \"7\"", {"severity": 7}, None),
        ('eventdate = "2024-05-01T12:00:00+02:00"', {}, True),
        ('eventdate > "2024-05-01"', {}, True),
        ("eventdate = 1", {}, None),
    ],
)
def test_comparisons(cond: str, doc: dict[str, Any], expected: bool | None) -> None:
    assert truth(cond, **doc) is expected


def test_a_bad_timestamp_literal_is_a_compile_error() -> None:
    with pytest.raises(QueryCompileError) as exc:
        parse_and_compile('from cloud.aws.guardduty where eventdate > "yesterday"')
    assert exc.value.col == 44 and "ISO 8601" in exc.value.message


def parse_and_compile(text: str) -> None:
    compile_python(parse_query(text))


@pytest.mark.parametrize(
    ("cond", "doc", "expected"),
    [
        ("null or true", {}, True),
        ("null or false", {}, None),
        ("null and false", {}, False),
        ("null and true", {}, None),
        ("not null", {}, None),
        ("x", {"x": True}, True),
        ("x", {"x": "true"}, None),
        ("not x", {"x": False}, True),
    ],
)
def test_three_valued_logic(cond: str, doc: dict[str, Any], expected: bool | None) -> None:
    assert truth(cond, **doc) is expected


# ---------------------------------------------------------------------------------------------- like / in
@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("%Crypto%", "CryptoCurrency:EC2/X", True),
        ("%crypto%", "CryptoCurrency:EC2/X", False),
        ("a_c", "abc", True),
        ("a_c", "a😀c", True),
        ("a_c", "ac", False),
        ("50\\%", "50%", True),
        ("50\\%", "500", False),
        ("a\\_b", "a_b", True),
        ("a\\_b", "axb", False),
        ("a\\\\b", "a\\b", True),
        ("a%", "a\nb", True),
        ("", "", True),
        ("%", "", True),
        ("ab%cd%ef", "abXcdYef", True),
    ],
)
def test_like(pattern: str, text: str, expected: bool) -> None:
    lit = '"' + pattern.replace("\\", "\\\\") + '"'
    assert truth(f"x like {lit}", x=text) is expected
    assert truth(f"x not like {lit}", x=text) is (not expected)


def test_like_on_non_strings_is_null() -> None:
    assert truth('x like "%"', x=5) is None
    assert truth('severity like "%"', severity=5) is None


def test_a_like_pattern_ending_in_an_escape_is_an_error() -> None:
    with pytest.raises(QueryCompileError, match="escape"):
        parse_and_compile('from cloud.aws.guardduty where type like "a\\\\"')


@pytest.mark.parametrize(
    ("cond", "doc", "expected"),
    [
        ('x in ("a", "b")', {"x": "b"}, True),
        ('x in ("a", "b")', {"x": "c"}, False),
        ('x in ("a", null)', {"x": "c"}, None),
        ('x in ("a", null)', {"x": "a"}, True),
        ('x in (1, "1")', {"x": 1}, True),
        ('x in (1, "1")', {"x": 2}, None),  # 2 = "1" is null: not FALSE
        ("x in (1, 2)", {"x": True}, None),
        ('x not in ("a", "b")', {"x": "c"}, True),
        ('x in ("a")', {"x": {"a": 1}}, None),
        ('eventdate in ("2024-05-01T10:00:00Z", "2020-01-01")', {}, True),
    ],
)
def test_in(cond: str, doc: dict[str, Any], expected: bool | None) -> None:
    assert truth(cond, **doc) is expected


# ---------------------------------------------------------------------------------------------- arithmetic / functions
@pytest.mark.parametrize(
    ("expr", "doc", "expected"),
    [
        ("x + 1", {"x": 2}, 3.0),
        ("x * y", {"x": 2.5, "y": 4}, 10.0),
        ("x - 1", {"x": "2"}, None),
        ("x + 1", {"x": True}, None),
        ("x / 0", {"x": 2}, None),
        ("x / y", {"x": 2, "y": -0.0}, None),
        ("x * 10", {"x": 1e308}, None),  # overflow to infinity: null
        ("(x * 10) / (x * 10)", {"x": 1e308}, None),
        ("1 / 4", {}, 0.25),
        ("severity * 2", {"severity": 4}, 8.0),
        ("lower(x)", {"x": "AbC"}, "abc"),
        ("lower(x)", {"x": "İ"}, "i"),
        ("upper(x)", {"x": "straße"}, "STRAẞE"),
        ("lower(x)", {"x": "ΣΑΣ"}, "σασ"),
        ("upper(x)", {"x": 1}, None),
        ("length(x)", {"x": "😀é"}, 2),
        ("length(x)", {"x": [1, 2]}, None),
        ('coalesce(x, y, "d")', {"x": None, "y": 5}, 5),
        ('coalesce(x, y, "d")', {}, "d"),
        ("coalesce(x, severity)", {"severity": 3}, 3.0),
        ("coalesce(x, y)", {"y": {"k": [1]}}, {"k": [1]}),
    ],
)
def test_values(expr: str, doc: dict[str, Any], expected: Any) -> None:
    got = value(expr, **doc)
    assert got == expected and type(got) is type(expected)


def test_coalesce_cannot_mix_timestamps() -> None:
    with pytest.raises(QueryCompileError, match="timestamps"):
        parse_and_compile("from cloud.aws.guardduty select coalesce(eventdate, severity) as c")
    assert value('coalesce(eventdate, "2020-01-01")') == datetime(2024, 5, 1, 10, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------- order / grouping
def test_ungrouped_output_is_ordered_by_eventdate_then_id() -> None:
    recs = [rec(3, 5), rec(1, 5), rec(2, 1), rec(0, 9)]
    assert ids("from cloud.aws.guardduty select id", recs) == ["f02", "f01", "f03", "f00"]


def test_grouping_latest_row_counts_and_null_keys() -> None:
    recs = [
        rec(0, 1, x="a", n=1, title="first"),
        rec(1, 7, x="a", n=5, title="latest"),
        rec(2, 3, x="a", n="text", title="middle"),
        rec(3, 2, n=2, title="no key"),
        rec(4, 4, x=None, n=3, title="null key"),
        rec(5, 0, x=1, title="number key"),
        rec(6, 8, x=1.0, title="same number key"),
    ]
    rows = both(
        "from cloud.aws.guardduty select x, title, count(n) as c, sum(n) as s, min(n) as mn, first(title) as f, "
        "last(n) as l, countdistinct(n) as d group by x",
        recs,
    )
    by_key = {repr(r["x"]): r for r in rows}
    assert set(by_key) == {"'a'", "None", "1.0"}
    a = by_key["'a'"]
    assert (a["title"], a["count"], a["c"], a["s"], a["mn"], a["f"], a["l"], a["d"]) == (
        "latest", 3, 3, 6.0, 1.0, "first", 5, 3,
    )
    assert a["first_seen"] == datetime(2024, 5, 1, 10, 1, tzinfo=UTC)
    assert a["last_seen"] == datetime(2024, 5, 1, 10, 7, tzinfo=UTC)
    # A missing key and JSON null are the same null group; 1 and 1.0 are one group.
    assert by_key["None"]["count"] == 2 and by_key["None"]["title"] == "null key"
    assert by_key["1.0"]["count"] == 2
    # Groups come out by first_seen.
    assert [r["first_seen"].minute for r in rows] == [0, 1, 2]


def test_group_by_an_alias_and_buckets() -> None:
    minutes = [5, 59, 0, 30, 29]
    recs = [rec(i, m, resource={"instanceDetails": {"instanceId": f"i-{i % 2}"}}) for i, m in enumerate(minutes)]
    rows = both(
        "from cloud.aws.guardduty select resource.instanceDetails.instanceId as instance_id "
        "group every 30m by instance_id",
        recs,
    )
    got = [(r["bucket"].minute, r["instance_id"], r["count"]) for r in rows]
    assert got == [(0, "i-0", 3), (30, "i-1", 2)]
    assert list(rows[0]) == ["bucket", "instance_id", "count", "first_seen", "last_seen"]


def test_aggregates_without_group_by_give_one_row() -> None:
    assert both("from cloud.aws.guardduty where false select count(), max(severity) as m", [rec(0)]) == [
        {"count": 0, "m": None}
    ]
    two = [rec(0, severity=2), rec(1, severity=4)]
    assert both("from cloud.aws.guardduty select count(), avg(severity) as a", two) == [{"count": 2, "a": 3.0}]


def test_streaming_accumulator_is_order_independent() -> None:
    recs = [rec(i, m, x=f"k{i % 3}", n=i) for i, m in enumerate([9, 3, 7, 1, 5, 2, 8])]
    q = parse_query("from cloud.aws.guardduty select x, n, first(n) as f, count() group by x")
    forward = list(run_stream(q, recs))
    backward = list(run_stream(q, list(reversed(recs))))
    assert forward == backward == compile_python(q).run(recs) == run_duckdb(q, recs)


def test_reserved_group_columns() -> None:
    with pytest.raises(QueryCompileError, match="reserved"):
        parse_and_compile("from cloud.aws.guardduty select max(severity) as first_seen group by type")
    row = both("from cloud.aws.guardduty select type, count() group by type", [rec(0)])[0]
    assert list(row) == ["type", "count", "first_seen", "last_seen"]


def test_buckets_are_epoch_aligned_before_1970_too() -> None:
    old = finding_to_record(
        {"id": "o", "accountId": "1", "type": "t", "updatedAt": "1969-12-31T23:30:00Z"}, "<test>", 1
    )
    rows = both("from cloud.aws.guardduty group every 7h by type", [old, rec(1)])
    assert [r["bucket"] for r in rows] == [
        datetime(1969, 12, 31, 17, tzinfo=UTC),  # -30 min floors to -7 h
        datetime(2024, 5, 1, 10, tzinfo=UTC),  # 476266 h since the epoch = 68038 × 7 h
    ]
