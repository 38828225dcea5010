"""Hypothesis strategies for LINQ queries and GuardDuty findings, and the executor comparison (test helpers).

Queries are generated as LINQ text (so the parser is exercised too) from the whole grammar: where-trees over flat
columns and real GuardDuty paths in any letter case, literals of every type, like patterns with escapes, in-lists,
null checks, arithmetic, functions, random selects, and sometimes group by (with ``every``) and aggregates.
Findings have random shapes: missing keys, wrong types, nulls, unicode, objects where scalars are expected.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import assume
from hypothesis import strategies as st

from minerwatch.compile.python import compile_python
from minerwatch.engine.duckdb import run_duckdb
from minerwatch.errors import QueryCompileError
from minerwatch.lang.parser import parse_query
from minerwatch.sources.guardduty import finding_to_record
from minerwatch.sources.records import Record

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "real" / "guardduty"


def sample_records() -> list[Record]:
    """Every finding of the GuardDuty sample files (the `{"findings": []}` line holds none)."""
    out: list[Record] = []
    for path in sorted(SAMPLES.glob("*.jsonl")):
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            doc = orjson.loads(line)
            if isinstance(doc, dict) and "id" in doc:
                out.append(finding_to_record(doc, str(path), n))
    return out


REAL = sample_records()

# ---------------------------------------------------------------------------------------------- findings
TYPES = [
    "CryptoCurrency:EC2/BitcoinTool.B",
    "CryptoCurrency:EC2/BitcoinTool.B!DNS",
    "Impact:EC2/BitcoinDomainRequest.Reputation",
    "Backdoor:EC2/C&CActivity.B",
    "Recon:EC2/PortProbeUnprotectedPort",
]
WORDS = ["a", "A", "ab", "abc", "é", "İ", "ß", "ΣΑΣ", "ﬁ", "x_y", "50%", "a\\b", 'q"t', "i-0abc", "", " ", "\x00", "😀"]
PATHS = [
    ("resource", "instanceDetails", "instanceId"),
    ("resource", "instanceDetails", "imageId"),
    ("resource", "instanceDetails", "tags"),
    ("resource", "resourceType"),
    ("service", "count"),
    ("service", "archived"),
    ("service", "action", "actionType"),
    ("service", "action", "networkConnectionAction", "remotePortDetails", "port"),
    ("service", "action", "networkConnectionAction", "remoteIpDetails", "ipAddressV4"),
    ("service", "additionalInfo", "sample"),
    ("confidence",),
    ("partition",),
]
BASE = datetime(2024, 5, 1, tzinfo=UTC)

text_s = st.one_of(st.sampled_from(WORDS + TYPES), st.text(max_size=6))
number_s = st.one_of(
    st.integers(-1000, 1000),
    st.integers(-10**6, 10**6).map(lambda x: x / 100),
    st.sampled_from([0, 0.0, -0.0, 1, 1.0, 7, 7.5, 8]),
)
scalar_s = st.one_of(st.none(), st.booleans(), number_s, text_s)
json_s = st.recursive(
    scalar_s,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["a", "b", "key", "value"]), inner, max_size=3)
    ),
    max_leaves=6,
)


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    cur = doc
    for seg in path[:-1]:
        nxt = cur.get(seg)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[seg] = nxt
        cur = nxt
    cur[path[-1]] = value


@st.composite
def finding(draw: st.DrawFn, i: int) -> Record:
    minutes = draw(st.integers(0, 60 * 24 * 3))
    created = BASE + timedelta(minutes=minutes, microseconds=draw(st.integers(0, 999_999)))
    doc: dict[str, Any] = {
        "id": f"f{i:03d}{draw(st.sampled_from(['', 'a', 'Z']))}",
        "accountId": draw(st.sampled_from(["111111111111", "222222222222", "333333333333"])),
        "type": draw(st.one_of(st.sampled_from(TYPES), text_s.filter(bool))),
        "createdAt": created.isoformat().replace("+00:00", "Z"),
    }
    if draw(st.booleans()):
        doc["updatedAt"] = (created + timedelta(minutes=draw(st.integers(0, 600)))).isoformat()
    for key, strat in (
        ("region", st.sampled_from(["us-east-1", "eu-west-1", None])),
        ("title", st.one_of(st.none(), text_s)),
        ("severity", st.one_of(st.none(), st.integers(0, 10), st.sampled_from([2.0, 5.0, 7.0, 8.0, 7.5]))),
    ):
        if draw(st.booleans()):
            doc[key] = draw(strat)
    for path in PATHS:
        choice = draw(st.integers(0, 3))
        if choice == 0:
            continue
        if choice == 1 and path[-1] in ("instanceId", "imageId", "actionType", "resourceType", "ipAddressV4"):
            _set(doc, path, draw(st.sampled_from(["i-0abc", "i-0def", "ami-1", "NETWORK_CONNECTION", "Instance"])))
        elif choice == 1 and path[-1] in ("count", "port", "confidence"):
            _set(doc, path, draw(number_s))
        elif choice == 1 and path[-1] in ("archived", "sample"):
            _set(doc, path, draw(st.booleans()))
        else:
            _set(doc, path, draw(json_s))
    if draw(st.integers(0, 5)) == 0:
        doc["resource"] = draw(json_s)  # a parent that is not an object
    return finding_to_record(doc, "<random>", i)


@st.composite
def findings(draw: st.DrawFn) -> list[Record]:
    n = draw(st.integers(0, 14))
    recs = [draw(finding(i)) for i in range(n)]
    if draw(st.integers(0, 3)) == 0:
        recs += REAL
    return recs


# ---------------------------------------------------------------------------------------------- queries
def _str_lit(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def _case(draw: st.DrawFn, seg: str) -> str:
    return draw(st.sampled_from([seg, seg.lower(), seg.upper()]))


@st.composite
def path_text(draw: st.DrawFn) -> str:
    path = draw(st.sampled_from(PATHS))
    return ".".join(_case(draw, s) for s in path)


FLAT = ["type", "severity", "region", "accountid", "id", "title", "eventdate"]


@st.composite
def literal(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return "null"
    if kind == 1:
        return draw(st.sampled_from(["true", "false"]))
    if kind == 2:
        v = draw(number_s)
        return repr(float(v)) if isinstance(v, float) else str(v)
    if kind == 3:
        ts = BASE + timedelta(minutes=draw(st.integers(0, 60 * 24 * 3)))
        return _str_lit(ts.isoformat().replace("+00:00", draw(st.sampled_from(["Z", "+00:00", "+02:00"]))))
    return _str_lit(draw(text_s))


@st.composite
def operand(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 9 if depth < 2 else 4))
    if kind <= 1:
        return draw(st.sampled_from(FLAT))
    if kind <= 3:
        return draw(path_text())
    if kind == 4:
        return draw(literal())
    if kind == 5:
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return f"({draw(operand(depth + 1))} {op} {draw(operand(depth + 1))})"
    if kind == 6:
        fn = draw(st.sampled_from(["lower", "upper", "length"]))
        return f"{fn}({draw(operand(depth + 1))})"
    if kind == 7:
        args = draw(st.lists(operand(depth + 1), min_size=1, max_size=3))
        return f"coalesce({', '.join(args)})"
    if kind == 8 and depth == 0 and draw(st.booleans()):
        return f"({draw(condition(3))})"  # a condition's value as an operand
    return draw(st.sampled_from(FLAT)) if kind == 8 else draw(path_text())


@st.composite
def like_pattern(draw: st.DrawFn) -> str:
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(["%", "_", "\\%", "\\_", "\\\\", "Crypto", "EC2/", "i-0", "a", "é", "İ"]),
                st.text(max_size=3).filter(lambda s: "\\" not in s),
            ),
            max_size=4,
        )
    )
    return "".join(pieces)


@st.composite
def condition(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 9 if depth < 3 else 5))
    if kind <= 1:
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="]))
        return f"{draw(operand(1 if depth >= 2 else 0))} {op} {draw(operand(1 if depth >= 2 else 0))}"
    if kind == 2:
        neg = draw(st.sampled_from(["", "not "]))
        return f"{draw(operand(1 if depth >= 2 else 0))} {neg}like {_str_lit(draw(like_pattern()))}"
    if kind == 3:
        neg = draw(st.sampled_from(["", "not "]))
        items = draw(st.lists(st.one_of(literal(), operand(2)), min_size=1, max_size=4))
        return f"{draw(operand(1 if depth >= 2 else 0))} {neg}in ({', '.join(items)})"
    if kind == 4:
        return f"{draw(operand(1 if depth >= 2 else 0))} is {draw(st.sampled_from(['', 'not ']))}null"
    if kind == 5:
        return draw(st.sampled_from(["service.archived", "SERVICE.additionalinfo.sample", "true", "false", "null"]))
    if kind == 6:
        return f"not {draw(condition(depth + 1))}"
    op = draw(st.sampled_from(["and", "or"]))
    left, right = draw(condition(depth + 1)), draw(condition(depth + 1))
    text = f"{left} {op} {right}"
    return f"({text})" if draw(st.booleans()) else text


@st.composite
def query_text(draw: st.DrawFn) -> str:
    parts = ["from cloud.aws.guardduty"]
    if draw(st.integers(0, 5)) > 0:
        parts.append("where " + draw(condition()))
    grouped = draw(st.integers(0, 2)) == 0
    items: list[str] = []
    if grouped or draw(st.integers(0, 4)) > 0:
        n = draw(st.integers(1 if not grouped else 0, 4))
        for i in range(n):
            if draw(st.booleans()):
                items.append(f"{draw(st.one_of(operand(), condition(2)))} as c{i}")
            else:
                items.append(f"{draw(path_text())} as c{i}")
        if grouped or draw(st.integers(0, 3)) == 0:
            for i in range(draw(st.integers(0, 3))):
                fn = draw(st.sampled_from(["count", "min", "max", "sum", "avg", "first", "last", "countdistinct"]))
                if fn in ("sum", "avg", "min", "max"):
                    arg = draw(st.one_of(st.sampled_from(["severity", "service.count", "confidence", "x"]), operand(2)))
                else:
                    arg = "" if fn == "count" and draw(st.booleans()) else draw(operand(1))
                items.append(f"{fn}({arg}) as a{i}")
    if items:
        parts.append("select " + ", ".join(items))
    if grouped:
        keys = draw(
            st.lists(
                st.one_of(st.sampled_from(FLAT), path_text(), operand(1), st.sampled_from(["c0", "c1"])),
                min_size=1,
                max_size=3,
                unique_by=str.lower,
            )
        )
        every = draw(st.sampled_from(["", "every 1h ", "every 7m ", "every 1d "]))
        parts.append(f"group {every}by {', '.join(keys)}")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------- comparison
def _norm(v: Any) -> Any:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        f = float(v)
        if f == 0:
            return 0.0
        return float(f"{f:.9g}") if math.isfinite(f) else repr(f)
    if isinstance(v, datetime):
        assert v.tzinfo is not None, "timestamps must be timezone-aware"
        return v.astimezone(UTC).isoformat()
    if isinstance(v, list):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    raise AssertionError(f"unexpected value type {type(v).__name__}: {v!r}")


def _rows(rows: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps({k: _norm(v) for k, v in r.items()}) for r in rows]


def check_same(text: str, recs: list[Record]) -> None:
    try:
        query = parse_query(text, "<generated>")
        plan = compile_python(query)
    except QueryCompileError:
        assume(False)
        raise
    py = plan.run(recs)
    duck = run_duckdb(query, recs)
    assert len(duck) == len(py), f"row counts differ for:\n{text}\n{plan.source}"
    assert [list(r) for r in duck] == [list(r) for r in py], "column names differ"
    assert _rows(duck) == _rows(py), f"rows differ for:\n{text}\n{plan.source}"
