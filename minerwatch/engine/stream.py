"""The streaming executor: the compiled Python predicate / projection, one record at a time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from minerwatch.compile.binder import BoundQuery
from minerwatch.compile.python import PyQuery, compile_python
from minerwatch.lang.ast import Query
from minerwatch.sources.records import Record


def _plan(query: Query | BoundQuery | PyQuery) -> PyQuery:
    return query if isinstance(query, PyQuery) else compile_python(query)


def run_stream(query: Query | BoundQuery | PyQuery, records: Iterable[Record]) -> Iterator[dict[str, Any]]:
    """Rows as records arrive: for a plain query one row per matching record, in arrival order; for an
    aggregated query the group rows once the input is exhausted (in output order)."""
    plan = _plan(query)
    if plan.bound.aggregated:
        acc = plan.accumulator()
        for rec in records:
            acc.feed(rec)
        yield from acc.rows()
        return
    pred, project = plan.predicate, plan.project
    for rec in records:
        if pred(rec):
            yield project(rec)


def run_batch(query: Query | BoundQuery | PyQuery, records: Iterable[Record]) -> list[dict[str, Any]]:
    """The whole query in Python, output in the documented order: by (eventdate, id), or for groups by
    their first row."""
    return _plan(query).run(records)
