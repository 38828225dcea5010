"""Detection runs on the SQL engines (DuckDB, Spark): the engine matches and deduplicates, the one alerting path
does the rest.

The engine computes the rule's per-record rows (``compile_sql_rows``: where-clause, selected columns, group keys)
with the event time, the finding id, the delivery time (``updatedAt``, else ``createdAt``, as written) and the
sample flag; keeps the first of each delivery (same ``id`` and delivery time) in input order and counts the
others; and hands the rows over in (``eventdate``, ``id``) order, streamed. Each row then goes through
:class:`~minerwatch.alerting.detect.Detector` exactly as a row of the streaming executor does: seen deliveries in
the state store, sample findings, allowlist, throttle, alert records, outputs. Same input, same alerts, whichever
engine.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from minerwatch.alerting.alerts import jsonable_row
from minerwatch.alerting.detect import DetectOptions, Detector, DetectStats, _delivery_time
from minerwatch.catalog.tables import ColType
from minerwatch.compile.binder import bind
from minerwatch.compile.prefilter import make_prefilter
from minerwatch.compile.sql import SqlPlan, compile_sql_rows
from minerwatch.rules.model import Rule
from minerwatch.sources.records import ReadStats, Record

PASSTHROUGH = ("_mw_time", "_mw_fid", "_mw_delivery", "_mw_sample", "_mw_ord", "_mw_seq")
"""Relation columns each per-record row carries (the matched row's bookkeeping)."""

_DEDUP = (
    "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY _mw_fid, _mw_delivery ORDER BY _mw_ord, _mw_seq) "
    "AS _mw_rn, count(*) OVER (PARTITION BY _mw_fid, _mw_delivery) AS _mw_n FROM ({rows}) AS _mw_m) AS _mw_d "
    "WHERE _mw_rn = 1 ORDER BY _mw_time, _mw_fid, _mw_ord, _mw_seq"
)
"""First delivery of each (id, updatedAt) in input order, with how many there were; the generated SQL of the rule
goes in ``{rows}``."""


def _feed(det: Detector, plan: SqlPlan, rows: Iterable[tuple[Any, ...]]) -> None:
    from minerwatch.engine.duckdb import row_converter

    width = len(plan.columns)
    convert = row_converter(plan)
    for r in rows:
        row = convert(r[:width])
        t, fid, upd, sample = r[width : width + 4]
        t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
        det.apply(det.matched(t, fid, upd, bool(sample), jsonable_row(row)))
        det.stats.duplicates += r[-1] - 1


def detect_duckdb(rule: Rule, paths: list[str], options: DetectOptions) -> DetectStats:
    """Run ``rule`` over ``paths`` with DuckDB matching and deduplicating; as :func:`detect` otherwise."""
    import duckdb

    from minerwatch.engine.duckdb import load_records
    from minerwatch.sources.guardduty import read_guardduty

    started = time.monotonic()
    det = Detector(rule, options, paths)
    read = ReadStats()
    bound = bind(det.query)
    prefilter = make_prefilter(bound) if options.prefilter else None
    extra = {"_mw_time": ColType.TIMESTAMP, "_mw_fid": ColType.STRING, "_mw_delivery": ColType.STRING,
             "_mw_sample": ColType.BOOLEAN, "_mw_ord": ColType.BIGINT, "_mw_seq": ColType.BIGINT}
    table = replace(bound.table, columns={**bound.table.columns, **extra})

    def annotated(records: Iterable[Record]) -> Iterator[Record]:
        for seq, rec in zip(itertools.count(), records, strict=False):
            flat, doc = rec.flat, rec.doc
            flat.update(_mw_time=flat["eventdate"], _mw_fid=flat["id"], _mw_delivery=_delivery_time(doc),
                        _mw_sample=rec.sample, _mw_ord=0, _mw_seq=seq)
            yield rec

    con = duckdb.connect()
    try:
        records = read_guardduty(paths, on_reject=det.reject, stats=read, prefilter=prefilter)
        load_records(con, table, annotated(records), "_mw_findings")
        plan = compile_sql_rows(bound, "duckdb", relation="_mw_findings", passthrough=PASSTHROUGH)
        cursor = con.execute(_DEDUP.format(rows=plan.sql(pretty=False)))
        _feed(det, plan, _chain(cursor))
    except BaseException:
        det.store.rollback()
        raise
    finally:
        con.close()
    return det.finish(read, started)


def _chain(cursor: Any) -> Iterator[tuple[Any, ...]]:
    while batch := cursor.fetchmany(4096):
        yield from batch


def detect_spark(
    rule: Rule,
    paths: list[str],
    options: DetectOptions,
    spark_options: Any | None = None,
    *,
    spark: Any | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> DetectStats:
    """Run ``rule`` over ``paths`` on Spark (``spark``, else a session made from ``spark_options`` for this run);
    as :func:`detect` otherwise. ``since``/``until`` prune S3 export-layout days before anything is read."""
    from minerwatch.engine.spark import read_input, result_frame, spark_session

    if spark is None:
        with spark_session(spark_options) as session:
            return detect_spark(rule, paths, options, spark=session, since=since, until=until)
    started = time.monotonic()
    det = Detector(rule, options, paths)
    read = ReadStats()
    bound = bind(det.query)
    prefilter = make_prefilter(bound) if options.prefilter else None
    inp = None
    try:
        inp = read_input(spark, bound.table, paths, on_reject=det.reject, stats=read, prefilter=prefilter,
                         delivery=_delivery_time, since=since, until=until)
        rows_view = inp.view + "_rows"
        spark.table(inp.view).selectExpr("*", "eventdate AS _mw_time", "id AS _mw_fid").createOrReplaceTempView(
            rows_view
        )
        plan = compile_sql_rows(bound, "spark", relation=rows_view, passthrough=PASSTHROUGH)
        result_frame(spark, plan, PASSTHROUGH).createOrReplaceTempView(rows_view + "_m")
        frame = spark.sql(_DEDUP.format(rows=f"SELECT * FROM {rows_view}_m"))
        _feed(det, plan, (tuple(r) for r in frame.toLocalIterator()))
    except BaseException:
        det.store.rollback()
        raise
    finally:
        if inp is not None:
            inp.close()
    return det.finish(read, started)
