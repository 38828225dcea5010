from __future__ import annotations

import pytest

from minerwatch.errors import MinerWatchError, QuerySyntaxError
from minerwatch.lang.ast import BinOp, Func, In, IsNull, Like, Literal, Not, Path, to_text
from minerwatch.lang.parser import parse_expr, parse_query
from minerwatch.rules.loader import load_rule


def test_seed_query_parses_with_sql_precedence(seed_path):
    rule = load_rule(seed_path)
    q = parse_query(rule.query, str(seed_path), rule.query_line - 1)
    assert q.table == "cloud.aws.guardduty"
    # like OR = B!DNS OR (= B AND severity >= 7)
    assert to_text(q.where) == (
        '((type like "%CryptoCurrency%" or type = "CryptoCurrency:EC2/BitcoinTool.B!DNS") or '
        '(type = "CryptoCurrency:EC2/BitcoinTool.B" and severity >= 7))'
    )
    assert q.output_names() == [
        "eventdate", "accountid", "region", "instance_id", "ami_id", "type", "title", "description",
        "severity", "mining_pool_ip", "mining_port", "tags",
    ]
    assert [to_text(k) for k in q.group_by.keys] == ["accountid", "instance_id", "type"]
    # Positions are lines of the document itself.
    assert q.pos.line == 16 and q.pos.col == 1
    assert q.group_by.pos.line == 34


@pytest.mark.parametrize(
    "text, expected",
    [
        ("not a = 1 and b = 2", "(not a = 1 and b = 2)"),
        ("a = 1 or b = 2 and c = 3", "(a = 1 or (b = 2 and c = 3))"),
        ("(a = 1 or b = 2) and c = 3", "((a = 1 or b = 2) and c = 3)"),
        ("x + 2 * 3 > 7", "x + 2 * 3 > 7"),
        ("a not like 'x%'", 'a not like "x%"'),
        ("a not in (1, 'b', null)", 'a not in (1, "b", null)'),
        ("a.b.c is not null", "a.b.c is not null"),
        ("coalesce(a, b) = 'x'", 'coalesce(a, b) = "x"'),
        ("a <> -1.5", "a != -1.5"),
        ("a == true", "a = true"),
        ("`detail-type` = 'GuardDuty Finding'", 'detail-type = "GuardDuty Finding"'),
    ],
)
def test_expressions_round_trip(text, expected):
    assert to_text(parse_expr(text)) == expected


def test_node_types_and_keywords_as_segments():
    e = parse_expr("resource.type = 'x' and not (a is null) and b in (1) and c like 'y' and count() > 1")
    kinds = set()
    stack = [e]
    while stack:
        n = stack.pop()
        kinds.add(type(n))
        if isinstance(n, BinOp):
            stack += [n.left, n.right]
        elif isinstance(n, Not | IsNull | Like | In):
            stack.append(n.operand)
    assert {BinOp, Not, IsNull, In, Like, Path, Literal, Func} <= kinds


def test_group_every_and_aliases():
    q = parse_query("from cloud.aws.guardduty select accountid as acct, count() group every 1h by acct")
    assert q.group_by.every_seconds == 3600
    assert q.output_names() == ["acct", "count"]


@pytest.mark.parametrize(
    "text, line, col, fragment",
    [
        ("from x where a = = 3", 1, 18, "expected a field"),
        ("from x\nwhere a = 'unterminated", 2, 11, "unterminated string"),
        ("from x where a ~ 3", 1, 16, "unexpected character"),
        ("from x select a,", 1, 17, "expected a field"),
        ("from x where frob(a) = 1", 1, 14, "unknown function"),
        ("from x group every 0x by a", 1, 20, "bad number"),
        ("select a", 1, 1, "expected 'from'"),
        ("from x select a, a", 1, 18, "duplicate output column"),
        ("from x where (a = 1", 1, 20, "expected ')'"),
    ],
)
def test_syntax_errors_point_at_line_and_column(text, line, col, fragment):
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(text, "q.linq")
    exc = info.value
    assert isinstance(exc, MinerWatchError)
    assert (exc.line, exc.col) == (line, col)
    assert fragment in exc.message
    rendered = exc.format().splitlines()
    assert rendered[0].startswith(f"q.linq:{line}:{col}: ")
    assert rendered[2].index("^") - 4 == col - 1  # caret under the column


def test_line_offset_shifts_positions():
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("from x\nwhere a = = 1", "rule.md", line_offset=15)
    assert (info.value.line, info.value.col) == (17, 11)
    assert info.value.source_line == "where a = = 1"


def test_string_escapes_are_data():
    e = parse_expr(r"""title = "a \"quoted\" 'x' \\ \u00e9" """)
    assert isinstance(e, BinOp) and e.right.value == "a \"quoted\" 'x' \\ é"
