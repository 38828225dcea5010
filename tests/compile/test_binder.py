"""Binding: names, canonical paths, grouping decisions, and errors that point at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from minerwatch.compile.binder import VT, BCol, BDoc, bind, parse_timestamp
from minerwatch.errors import QueryCompileError
from minerwatch.lang.parser import parse_query

SEED = Path(__file__).resolve().parents[1] / "data" / "seed" / "000_874a6878789f665b.txt"


def seed_text() -> tuple[str, int]:
    lines = SEED.read_text(encoding="utf-8").split("\n")
    start = lines.index("```sql") + 1
    end = lines.index("```", start)
    return "\n".join(lines[start:end]), start


def test_seed_binds_with_latest_row_items_for_lint() -> None:
    text, offset = seed_text()
    b = bind(parse_query(text, str(SEED), offset))
    assert b.grouped and b.aggregated
    assert [k.name for k in b.keys] == ["accountid", "instance_id", "type"]
    assert [k.item_index for k in b.keys] == [1, 3, 5]  # keys name select items (aliases included)
    assert [i.name for i in b.latest_row_items] == [
        "eventdate", "region", "ami_id", "title", "description", "severity", "mining_pool_ip", "mining_port", "tags",
    ]
    assert b.column_names()[-3:] == ["count", "first_seen", "last_seen"]
    ip = b.items[9].expr
    assert isinstance(ip, BDoc)
    assert ip.parts == ("service", "action", "networkConnectionAction", "remoteIpDetails", "ipAddressV4")


def test_paths_resolve_to_flat_columns_or_canonical_document_paths() -> None:
    b = bind(parse_query("from cloud.aws.guardduty select TYPE, resource.INSTANCEDETAILS.instanceid, type.x, foo.Bar"))
    e0, e1, e2, e3 = (it.expr for it in b.items)
    assert isinstance(e0, BCol) and e0.name == "type" and e0.type is VT.STRING
    assert isinstance(e1, BDoc) and e1.parts == ("resource", "instanceDetails", "instanceId")
    assert isinstance(e2, BDoc) and e2.parts == ("type", "x")
    assert isinstance(e3, BDoc) and e3.parts == ("foo", "Bar")  # unknown segments stay as written


def test_unknown_table_points_at_the_query_in_its_file() -> None:
    text = "\n\nfrom cloud.aws.nothing\nwhere type = 'x'"
    with pytest.raises(QueryCompileError) as exc:
        bind(parse_query(text, "rule.md", 10))
    e = exc.value
    assert (e.file, e.line, e.col) == ("rule.md", 13, 1)
    assert e.source_line == "from cloud.aws.nothing"
    assert e.format().splitlines()[-1].strip() == "^"


@pytest.mark.parametrize(
    ("text", "message", "col"),
    [
        ("from cloud.aws.guardduty where count() > 1", "not allowed in 'where'", 32),
        ("from cloud.aws.guardduty select max(count()) as m", "nested", 37),
        ("from cloud.aws.guardduty select count() + 1 as m", "whole select item", 33),
        ("from cloud.aws.guardduty select type group by count()", "cannot group by an aggregate", 47),
        ("from cloud.aws.guardduty select count() as n group by n", "names an aggregate", 55),
        ("from cloud.aws.guardduty where type", "needs a condition", 32),
        ("from cloud.aws.guardduty where eventdate < 'soon'", "ISO 8601", 44),
        ("from cloud.aws.guardduty select sum(type) as s", "needs numbers", 33),
        ("from cloud.aws.guardduty select min(service.archived = true) as s", "numbers, strings or timestamps", 33),
        ("from cloud.aws.guardduty select lower(type, id) as s", "one argument", 33),
        ("from cloud.aws.guardduty select type as count group by id", "reserved", 33),
        ("from cloud.aws.guardduty select resource.type group by service.type", "same output name", 47),
        ("from cloud.aws.guardduty where severity > 1e999", "out of range", 43),
    ],
)
def test_compile_errors_have_positions(text: str, message: str, col: int) -> None:
    with pytest.raises(QueryCompileError) as exc:
        bind(parse_query(text, "q.linq"))
    assert message in exc.value.message
    assert (exc.value.file, exc.value.line, exc.value.col) == ("q.linq", 1, col)


def test_always_null_comparisons_are_reported_as_warnings() -> None:
    b = bind(parse_query("from cloud.aws.guardduty where severity = 'high' or type like '%x%' and eventdate > 5"))
    assert [w.message for w in b.warnings] == [
        "'=' between double and string is always null",
        "'>' between timestamp and bigint is always null",
    ]


def test_duplicate_group_keys_group_once_and_keys_may_be_expressions() -> None:
    b = bind(parse_query("from cloud.aws.guardduty group by type, TYPE, lower(region)"))
    assert [k.name for k in b.keys] == ["type", "lower(region)"]
    assert b.column_names() == ["type", "lower(region)", "count", "first_seen", "last_seen"]


def test_every_is_in_microseconds() -> None:
    b = bind(parse_query("from cloud.aws.guardduty group every 90m by type"))
    assert b.every_us == 90 * 60 * 1_000_000
    assert b.column_names()[0] == "bucket"


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-05-01", "2024-05-01T00:00:00+00:00"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00+00:00"),
        ("2024-05-01 12:00:00.5+02:00", "2024-05-01T10:00:00.500000+00:00"),
        ("nope", None),
    ],
)
def test_parse_timestamp(text: str, iso: str | None) -> None:
    got = parse_timestamp(text)
    assert (got.isoformat() if got else None) == iso
