"""A time window as part of the query: ``where W and (original condition)``.

The window becomes a condition on the table's time column (``eventdate``: for GuardDuty ``updatedAt``, else
``createdAt``) written into the query text before it is parsed and compiled, so every executor (stream, DuckDB,
Spark), the literal prefilter and the rule's positions for errors come from the same place; nothing
engine-specific filters by time. Records outside the window are simply not matched (they are not rejects).
"""

from __future__ import annotations

from datetime import datetime

from minerwatch.catalog.tables import get_table
from minerwatch.lang.ast import Query
from minerwatch.lang.parser import parse_query
from minerwatch.lang.tokens import Source, T, Token, tokenize
from minerwatch.timewindow import TimeWindow


def _literal(t: datetime) -> str:
    return '"' + t.isoformat() + '"'  # ISO 8601 with +00:00: read as a timestamp against a timestamp column


def window_condition(column: str, window: TimeWindow) -> str:
    """LINQ for ``column`` in [since, until)."""
    parts = []
    if window.since is not None:
        parts.append(f"{column} >= {_literal(window.since)}")
    if window.until is not None:
        parts.append(f"{column} < {_literal(window.until)}")
    return " and ".join(parts)


def _end(tok: Token) -> int:
    return tok.pos.offset + len(tok.text)


def window_text(text: str, window: TimeWindow) -> str:
    """``text`` (a LINQ query) with the window ANDed into its ``where`` (one added when it has none). New text
    goes on existing lines only, so line numbers of errors stay those of the original."""
    if not window:
        return text
    query = parse_query(text)  # the query is valid before it is edited
    table = get_table(query.table)
    if table is None:
        return text  # binding reports the unknown table
    cond = window_condition(table.time_column, window)
    tokens = tokenize(Source(text))
    where = next((i for i, t in enumerate(tokens) if t.kind is T.KEYWORD and t.value == "where"), None)
    # The clause after the condition (select, group) or the end; keywords cannot occur inside an expression.
    start = where + 1 if where is not None else 1
    stop = next(
        i for i in range(start, len(tokens))
        if tokens[i].kind is T.EOF or (tokens[i].kind is T.KEYWORD and tokens[i].value in ("select", "group"))
    )
    if where is None:
        at = _end(tokens[stop - 1])  # after the table name
        return f"{text[:at]} where {cond}{text[at:]}"
    head, tail = _end(tokens[where]), _end(tokens[stop - 1])
    return f"{text[:head]} {cond} and ({text[head:tail].lstrip()}){text[tail:]}"


def window_query(query: Query, window: TimeWindow) -> Query:
    """``query`` re-parsed with the window in its condition (same file and line numbers)."""
    if not window:
        return query
    before = query.text[: query.pos.offset].count("\n")
    return parse_query(window_text(query.text, window), query.file, query.pos.line - 1 - before)
