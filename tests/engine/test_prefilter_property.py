"""Property: the raw-bytes prefilter never rejects a record whose where-clause is TRUE, whatever the JSON spelling."""

from __future__ import annotations

import json
import os

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from linq_gen import TYPES, condition, findings, like_pattern

from minerwatch.compile.prefilter import make_prefilter
from minerwatch.compile.python import compile_python
from minerwatch.errors import QueryCompileError
from minerwatch.lang.parser import parse_query
from minerwatch.sources.records import Record


def spellings(doc: dict) -> list[bytes]:
    """Valid JSON encodings a writer may produce: compact, ASCII-escaped, escaped slashes."""
    return [
        orjson.dumps(doc),
        json.dumps(doc).encode(),
        json.dumps(doc, ensure_ascii=False).replace("/", "\\/").encode(),
    ]


def _lit(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@st.composite
def leaf(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return f"type = {_lit(draw(st.sampled_from(TYPES)))}"
    if kind == 1:
        t = draw(st.sampled_from(TYPES))
        i = draw(st.integers(0, len(t)))
        j = draw(st.integers(i, len(t)))
        wild = draw(st.sampled_from(["%", "_", ""]))
        return f"TYPE like {_lit('%' + t[i:j].replace('%', '').replace('_', '') + wild + '%')}"
    if kind == 2:
        items = draw(st.lists(st.sampled_from(["i-0abc", "i-0def", "ami-1", "x/y"]), min_size=1, max_size=3))
        return f"resource.instanceDetails.instanceId in ({', '.join(map(_lit, items))})"
    if kind == 3:
        return f"service.action.actionType = {_lit(draw(st.sampled_from(['NETWORK_CONNECTION', 'Instance'])))}"
    if kind == 4:
        return f"title like {_lit(draw(like_pattern()))}"
    return draw(condition(2))


@st.composite
def prefilterable(draw: st.DrawFn, depth: int = 0) -> str:
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return draw(leaf())
    op = draw(st.sampled_from(["and", "or"]))
    return f"({draw(prefilterable(depth + 1))} {op} {draw(prefilterable(depth + 1))})"


STATS = {"usable": 0, "matched": 0}


@settings(
    max_examples=300,
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(prefilterable(), findings())
def prefilter_never_rejects_a_match(where: str, recs: list[Record]) -> None:
    try:
        q = parse_query(f"from cloud.aws.guardduty where {where}")
        plan = compile_python(q)
    except QueryCompileError:
        assume(False)
        raise
    f = make_prefilter(q)
    if f is None:
        return
    STATS["usable"] += 1
    for r in recs:
        if plan.predicate(r):
            STATS["matched"] += 1
            for raw in spellings(r.doc):
                assert f(raw), (where, raw[:300])


def test_prefilter_is_often_usable() -> None:
    usable = 0
    for where in ['type = "CryptoCurrency:EC2/BitcoinTool.B"', 'type like "%Bitcoin%" or title like "%mining%"',
                  'resource.instanceDetails.instanceId in ("i-0abc") and severity > 2']:
        usable += make_prefilter(parse_query(f"from cloud.aws.guardduty where {where}")) is not None
    assert usable == 3


def test_prefilter_never_rejects_a_match() -> None:
    """Runs the property (300 examples) and checks it exercised usable filters and matching records."""
    prefilter_never_rejects_a_match()
    assert STATS["usable"] >= 80 and STATS["matched"] >= 10, STATS
