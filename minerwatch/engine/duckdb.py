"""The batch executor: canonical records loaded into in-process DuckDB, the compiled SQL run over them.

Records go to DuckDB as newline-delimited JSON in a temporary file (flat columns typed as the catalogue says,
``doc`` as a JSON column) read with an explicit schema — one sequential write and one parallel scan. Results
come back as the Python executor gives them: JSON values parsed, timestamps timezone-aware UTC.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

from minerwatch import scratch
from minerwatch.catalog.tables import ColType, Table, get_table
from minerwatch.compile.binder import VT, BoundQuery, bind
from minerwatch.compile.sql import SqlPlan, compile_sql_plan
from minerwatch.errors import QueryCompileError
from minerwatch.lang.ast import Query
from minerwatch.sources.records import ReadStats, Record, Reject

_DUCK_TYPES = {
    ColType.STRING: "VARCHAR",
    ColType.DOUBLE: "DOUBLE",
    ColType.BIGINT: "BIGINT",
    ColType.BOOLEAN: "BOOLEAN",
    ColType.TIMESTAMP: "TIMESTAMP",
}
_MAX_OBJECT = 1 << 28
_counter = itertools.count()


def _naive_utc(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v.astimezone(UTC) if v.tzinfo else v).replace(tzinfo=None)
    return v


def load_records(con: duckdb.DuckDBPyConnection, table: Table, records: Iterable[Record], name: str) -> int:
    """Create temporary table ``name`` (flat columns + ``doc``) holding ``records``; returns the row count."""
    columns = {c: _DUCK_TYPES[t] for c, t in table.columns.items()}
    columns["doc"] = "JSON"
    ts_cols = [c for c, t in table.columns.items() if t is ColType.TIMESTAMP]
    names = list(table.columns)
    n = 0
    with scratch.folder("records") as where:  # whole findings: the folder is swept should this process be killed
        path = os.path.join(where, "records.ndjson")
        with scratch.File(path, buffering=1 << 20) as fh:
            dumps, opt = orjson.dumps, orjson.OPT_APPEND_NEWLINE
            for rec in records:
                flat = rec.flat
                row = {c: flat.get(c) for c in names}
                for c in ts_cols:
                    row[c] = _naive_utc(row[c])
                row["doc"] = rec.doc
                fh.write(dumps(row, option=opt))
                n += 1
        rel = con.read_json(
            path, columns=columns, format="newline_delimited", maximum_object_size=_MAX_OBJECT
        )
        rel.to_table(name)
    return n


def _converter(t: VT) -> Callable[[Any], Any] | None:
    if t is VT.JSON:
        return lambda v: orjson.loads(v) if isinstance(v, str) else v
    if t is VT.TIMESTAMP:
        return lambda v: v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v
    if t is VT.DOUBLE:
        return lambda v: None if v is None else float(v)
    if t is VT.BIGINT:
        return lambda v: None if v is None else int(v)
    return None


def row_converter(plan: SqlPlan) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Turns an engine's result tuple of ``plan`` into the row the Python executor gives (by column name)."""
    names = [c.name for c in plan.columns]
    convs = [_converter(c.type) for c in plan.columns]

    def convert(row: Sequence[Any]) -> dict[str, Any]:
        return {n: (f(v) if f is not None else v) for n, f, v in zip(names, convs, row, strict=True)}

    return convert


def run_duckdb(
    query: Query | BoundQuery,
    records: Iterable[Record],
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[dict[str, Any]]:
    """Run ``query`` over ``records`` in DuckDB; rows as the Python executor returns them, in output order."""
    bound = query if isinstance(query, BoundQuery) else bind(query)
    own = con is None
    con = con or duckdb.connect()
    name = f"_mw_input_{os.getpid()}_{next(_counter)}"
    try:
        load_records(con, bound.table, records, name)
        plan = compile_sql_plan(bound, "duckdb", relation=name)
        rows = con.execute(plan.sql(pretty=False)).fetchall()
    finally:
        try:
            con.execute("DROP TABLE IF EXISTS " + duckdb_identifier(name))
        finally:
            if own:
                con.close()
    names = [c.name for c in plan.columns]
    convs = [_converter(c.type) for c in plan.columns]
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append({n: (f(v) if f is not None else v) for n, f, v in zip(names, convs, row, strict=True)})
    return out


def fetch_rows(cur: duckdb.DuckDBPyConnection) -> tuple[list[str], list[dict[str, Any]]]:
    """Column names and rows of an executed statement, values as :func:`run_duckdb` gives them: JSON parsed,
    timestamps timezone-aware UTC (for SQL written by hand, whose column types are known only from DuckDB)."""
    columns = [d[0] for d in cur.description or []]
    by_type = {"JSON": VT.JSON, "TIMESTAMP": VT.TIMESTAMP}
    convs = [_converter(by_type[str(d[1])]) if str(d[1]) in by_type else None for d in cur.description or []]
    rows = [
        {n: (f(v) if f is not None else v) for n, f, v in zip(columns, convs, row, strict=True)}
        for row in cur.fetchall()
    ]
    return columns, rows


def duckdb_identifier(name: str) -> str:
    """A quoted DuckDB identifier (for the generated temporary table names only)."""
    from sqlglot import exp

    return exp.to_identifier(name, quoted=True).sql("duckdb")


def run_duckdb_files(
    query: Query | BoundQuery,
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None] | None = None,
    stats: ReadStats | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[dict[str, Any]]:
    """Read the query table's input ``paths`` (files, folders, ``-``, ``s3://``) and run ``query`` in DuckDB.

    Lines that cannot match the where-clause are skipped before parsing (``stats.prefiltered``).
    """
    from minerwatch.compile.prefilter import make_prefilter
    from minerwatch.sources.registry import read_table

    bound = query if isinstance(query, BoundQuery) else bind(query)
    stats = stats if stats is not None else ReadStats()
    records = read_table(
        bound.table.name,
        list(paths),
        on_reject=on_reject or (lambda _r: None),
        stats=stats,
        prefilter=make_prefilter(bound),
    )
    return run_duckdb(bound, records, con)


LOCKDOWN = (
    "SET enable_external_access = false",
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET lock_configuration = true",
)
"""Settings that keep a connection to the data already loaded into it: no files (read_text, COPY … TO, ATTACH,
EXPORT), no extensions installed or loaded, and none of this can be SET back."""


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Shut ``con`` off from the file system and from extensions, for good (see :data:`LOCKDOWN`)."""
    for statement in LOCKDOWN:
        con.execute(statement)


def open_workspace(
    tables: dict[str, tuple[str, Sequence[str]]],
    *,
    alerts: Iterable[dict[str, Any]] = (),
    on_reject: Callable[[Reject], None] | None = None,
    stats: ReadStats | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one table per input (view name → (catalogue table, paths)) plus ``alerts``.

    Lets an analyst join logs in SQL, e.g. flow logs against the ENIs of alerted instances.
    """
    from minerwatch.sources.registry import read_table

    con = duckdb.connect()
    stats = stats if stats is not None else ReadStats()
    for view, (table_name, paths) in tables.items():
        table = get_table(table_name)
        if table is None:
            raise QueryCompileError(f"unknown table {table_name!r}")
        records = read_table(table_name, list(paths), on_reject=on_reject or (lambda _r: None), stats=stats)
        load_records(con, table, records, view)
    con.execute(
        "CREATE TABLE alerts (alert_id VARCHAR, rule_id VARCHAR, status VARCHAR, first_seen TIMESTAMP, "
        "last_seen TIMESTAMP, event_count BIGINT, key JSON, fields JSON, record JSON)"
    )
    rows = [
        (
            a["alert_id"], a["rule_id"], a["status"], a["first_seen"].rstrip("Z"), a["last_seen"].rstrip("Z"),
            a["event_count"], orjson.dumps(a["key"]).decode(), orjson.dumps(a["fields"]).decode(),
            orjson.dumps(a).decode(),
        )
        for a in alerts
    ]
    if rows:
        con.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return con
