"""The scale-out executor: the compiled Spark SQL over records read in Spark tasks by the project's own readers.

Reading. The driver lists the inputs; each Spark task reads its files (or line-aligned byte ranges of a large plain
JSON Lines file) with the reader of ``minerwatch.sources`` — the same shape detection, prefilter on the raw line,
normalisation, strict timestamps, sample flag and reject reasons as the other two engines, with no second
implementation. Local paths are read in place (``local[*]``, or a cluster with a shared file system); any URL with a
scheme (``s3a://``, ``s3://`` mapped to ``s3a://``, ``hdfs://``, ``abfss://``, ``file://``) is read through Spark's
Hadoop file system (``binaryFile``), so the S3 connector configured for the session applies. A reader task emits
records, rejects (file, line, reason) and its counters in one Arrow stream (``mapInArrow``); a malformed record is a
reject row, never a failed task.

Querying. Records become the relation of ``minerwatch.engine.spark_tables`` (``doc`` a VARIANT) and the SQL of
``minerwatch.compile.sql`` (dialect ``spark``) runs over it. The session time zone is pinned to UTC, and neither
the SQL nor the values depend on it (timestamps are ``TIMESTAMP_NTZ``).

pyspark is imported only here, and only when this engine is used (``pip install 'minerwatch[spark]'``).
"""

from __future__ import annotations

import itertools
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from minerwatch.catalog.tables import GUARDDUTY, ColType, Table
from minerwatch.compile.binder import VT, BoundQuery, bind
from minerwatch.compile.prefilter import make_prefilter
from minerwatch.compile.sql import SqlPlan, compile_sql_plan
from minerwatch.engine.duckdb import row_converter
from minerwatch.engine.spark_tables import INPUT_EXTRA, SPARK_TYPES, input_ddl, quoted, table_select
from minerwatch.errors import InputError, MinerWatchError
from minerwatch.lang.ast import Query
from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.timewindow import in_days

SPLIT_BYTES = 64 * 1024 * 1024
"""A plain JSON Lines file at least this large is read as several line-aligned byte ranges."""
BATCH_ROWS = 4096
_counter = itertools.count()


@dataclass
class SparkOptions:
    """How to reach Spark: ``master`` (classic, default ``local[*]``) or ``remote`` (Spark Connect ``sc://``)."""

    master: str = "local[*]"
    remote: str | None = None
    conf: dict[str, str] = field(default_factory=dict)
    app_name: str = "minerwatch"


def parse_conf(items: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` options (``--spark-conf``) as a dict; :class:`InputError` for one without ``=``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--spark-conf {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def _pyspark() -> Any:
    try:
        import pyspark.sql  # noqa: F401
    except ImportError as exc:
        raise MinerWatchError("--engine spark needs pyspark: pip install 'minerwatch[spark]'") from exc
    from pyspark.sql import SparkSession

    return SparkSession


@contextmanager
def spark_session(options: SparkOptions | None = None) -> Iterator[Any]:
    """One Spark session for one command, session time zone UTC; stopped at the end."""
    opts = options or SparkOptions()
    SparkSession = _pyspark()
    builder = SparkSession.builder.appName(opts.app_name)
    builder = builder.remote(opts.remote) if opts.remote else builder.master(opts.master)
    local = not opts.remote and opts.master.startswith("local")
    # A local session gets few shuffle partitions and no progress bar (it would garble the output); a cluster or a
    # Connect server keeps its own settings.
    defaults = {"spark.sql.shuffle.partitions": "8", "spark.ui.showConsoleProgress": "false"} if local else {}
    conf = {**defaults, **opts.conf, "spark.sql.session.timeZone": "UTC"}
    if local and not os.environ.get("PYSPARK_PYTHON"):
        # Local workers run this interpreter (with this package and its dependencies), not whatever is on PATH.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    if not opts.remote:
        # The JVM's own default zone only matters for logging and a few legacy paths; pin it as well.
        for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
            conf[key] = (conf.get(key, "") + " -Duser.timezone=UTC").strip()
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.conf.set("spark.sql.session.timeZone", "UTC")
    try:
        yield session
    finally:
        session.stop()


# --------------------------------------------------------------------------------------------- input listing


@dataclass(frozen=True, slots=True)
class Part:
    """One unit of reading: a local file, or bytes [start, end) of one (end < 0: the whole file)."""

    path: str
    ord: int
    start: int = 0
    end: int = -1


def is_url(path: str) -> bool:
    return "://" in path


def hadoop_url(path: str) -> str:
    """``s3://`` → ``s3a://`` (Hadoop's S3 connector); other URLs unchanged."""
    return "s3a://" + path[5:] if path.startswith("s3://") else path


def list_local(
    paths: Sequence[str], table: Table, reject: Callable[[Reject], None], *, split_bytes: int = SPLIT_BYTES,
    since: datetime | None = None, until: datetime | None = None,
) -> list[Part]:
    """The local files named by ``paths`` in reading order (folders recursively, sorted, hidden entries skipped,
    as the readers walk them); large plain GuardDuty JSON Lines files split into line-aligned ranges."""
    from minerwatch.sources.guardduty import is_plain_json_lines
    from minerwatch.sources.inputs import check_paths, line_aligned_ranges

    check_paths(paths)
    files: list[str] = []
    for top in paths:
        if not os.path.isdir(top):
            files.append(top)
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            # Day folders outside [since, until) are pruned in listings only, as the other readers do.
            dirnames[:] = sorted(
                d for d in dirnames
                if not d.startswith(".") and in_days(os.path.join(dirpath, d) + os.sep, since, until)
            )
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = os.path.join(dirpath, name)
                if not in_days(path, since, until):
                    continue
                try:
                    regular = stat.S_ISREG(os.stat(path).st_mode)
                except OSError as exc:
                    reject(Reject(path, None, f"unreadable file: {exc.strerror or exc}"))
                    continue
                if not regular:
                    reject(Reject(path, None, "not a regular file: skipped"))
                    continue
                files.append(path)
    parts: list[Part] = []
    for path in files:
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        if table.name == GUARDDUTY.name and size >= split_bytes and is_plain_json_lines(path):
            ranges = line_aligned_ranges(path, max(2, size // split_bytes))
            parts += [Part(path, len(parts) + i, a, b) for i, (a, b) in enumerate(ranges)]
        else:
            parts.append(Part(path, len(parts)))
    return parts


# --------------------------------------------------------------------------------------------- reader tasks


def _arrow_schema(table: Table) -> Any:
    import pyarrow as pa

    types = {
        "STRING": pa.string(), "DOUBLE": pa.float64(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_(),
        "TIMESTAMP_NTZ": pa.timestamp("us"),
    }
    fields = [pa.field(c, types[SPARK_TYPES[t]]) for c, t in table.columns.items()]
    fields.append(pa.field("doc", pa.string()))
    fields += [pa.field(c, types[t]) for c, t in INPUT_EXTRA.items()]
    return pa.schema(fields)


def _naive(v: Any) -> Any:
    return v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v


class _Out:
    """Rows of one reader task, flushed as Arrow record batches."""

    def __init__(self, table: Table, delivery: Callable[[dict[str, Any]], str] | None) -> None:
        self.table = table
        self.schema = _arrow_schema(table)
        self.names = list(table.columns)
        self.ts = {c for c, t in table.columns.items() if t is ColType.TIMESTAMP}
        self.delivery = delivery
        self.rows: list[dict[str, Any]] = []
        self.seq = 0

    def record(self, rec: Record, ord_: int, line_offset: int, file: str) -> None:
        flat = rec.flat
        row = {c: (_naive(flat.get(c)) if c in self.ts else flat.get(c)) for c in self.names}
        row.update(
            doc=orjson.dumps(rec.doc).decode(), _mw_kind="record", _mw_file=file,
            _mw_line=rec.line + line_offset if rec.line is not None else None, _mw_ord=ord_, _mw_seq=self.seq,
            _mw_sample=rec.sample, _mw_delivery=self.delivery(rec.doc) if self.delivery else None,
        )
        self.seq += 1
        self.rows.append(row)

    def reject(self, rej: Reject, ord_: int, file: str, line: int | None) -> None:
        self.rows.append({
            "_mw_kind": "reject", "_mw_file": file, "_mw_line": line, "_mw_ord": ord_, "_mw_seq": self.seq,
            "_mw_reason": rej.reason, "_mw_excerpt": rej.excerpt,
        })
        self.seq += 1

    def stats(self, stats: ReadStats, ord_: int) -> None:
        counters = orjson.dumps(asdict(stats)).decode()  # every counter: the driver sums them all
        self.rows.append({"_mw_kind": "stats", "_mw_ord": ord_, "_mw_reason": counters})

    def full(self) -> bool:
        return len(self.rows) >= BATCH_ROWS

    def flush(self) -> Any:
        import pyarrow as pa

        batch = pa.RecordBatch.from_pylist(self.rows, schema=self.schema)
        self.rows = []
        return batch


def _read_one(
    table: Table, out: _Out, prefilter: Any, ord_: int, path: str, start: int, end: int, shown: str
) -> Iterator[Any]:
    """Records, rejects and counters of one part, read by the table's reader; ``shown`` is the name rejects and
    records carry (the original URL when ``path`` is a local copy of a remote object)."""
    from minerwatch.sources.guardduty import read_guardduty_range
    from minerwatch.sources.inputs import count_newlines
    from minerwatch.sources.registry import read_table

    stats = ReadStats()
    rejects: list[Reject] = []
    if end >= 0:
        records = read_guardduty_range(path, start, end, on_reject=rejects.append, stats=stats, prefilter=prefilter)
    else:
        records = read_table(table.name, [path], on_reject=rejects.append, stats=stats, prefilter=prefilter)
    offset: int | None = None

    def line_offset() -> int:
        nonlocal offset
        if offset is None:
            offset = count_newlines(path, 0, start) if start > 0 else 0
        return offset

    def drain() -> None:
        for rej in rejects:
            line = None if rej.line is None else rej.line + line_offset()
            out.reject(rej, ord_, shown if rej.file == path else rej.file, line)
        rejects.clear()

    try:
        for rec in records:
            if rejects:
                drain()
            out.record(rec, ord_, line_offset() if start else 0, shown if rec.file == path else rec.file)
            if out.full():
                yield out.flush()
    except MinerWatchError as exc:
        # A part that cannot be opened at all (vanished, unreadable) is a reject of that file, not a failed job.
        rejects.append(Reject(path, None, f"unreadable file: {exc}"))
        stats.rejected += 1
        stats.reasons["unreadable file"] = stats.reasons.get("unreadable file", 0) + 1
    drain()
    if end >= 0:
        stats.files = 1 if start == 0 else 0  # a split file is counted by its first part
    out.stats(stats, ord_)
    if out.full():
        yield out.flush()


def _local_task(table: Table, parts: list[Part], prefilter: Any, delivery: Any) -> Callable[[Any], Iterator[Any]]:
    def task(batches: Iterator[Any]) -> Iterator[Any]:
        out = _Out(table, delivery)
        for batch in batches:
            for i in batch.column(0).to_pylist():
                p = parts[i]
                yield from _read_one(table, out, prefilter, p.ord, p.path, p.start, p.end, p.path)
        if out.rows:
            yield out.flush()

    return task


def _remote_task(table: Table, order: dict[str, int], prefilter: Any, delivery: Any) -> Callable[[Any], Iterator[Any]]:
    def task(batches: Iterator[Any]) -> Iterator[Any]:
        out = _Out(table, delivery)
        for batch in batches:
            for url, content in zip(batch.column("path").to_pylist(), batch.column("content").to_pylist(),
                                    strict=True):
                # The reader reads files: the object goes to a private temporary file, named by its URL in output.
                fd, tmp = tempfile.mkstemp(prefix="minerwatch-spark-")
                try:
                    with os.fdopen(fd, "wb") as fh:
                        fh.write(content)
                    del content
                    yield from _read_one(table, out, prefilter, order.get(url, 0), tmp, 0, -1, url)
                finally:
                    os.unlink(tmp)
        if out.rows:
            yield out.flush()

    return task


@dataclass
class SparkInput:
    """The records of one catalogue table in a Spark session, read and counted."""

    table: Table
    frame: Any
    """Every reader output row (records, rejects, counters); persisted."""
    view: str
    """Temporary view of the records as the table relation (flat columns and ``doc`` VARIANT, plus ``_mw_*``)."""

    def close(self) -> None:
        try:
            self.frame.unpersist()
        except Exception:  # noqa: BLE001 - the session may already be gone
            pass


def read_input(
    spark: Any,
    table: Table,
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    delivery: Callable[[dict[str, Any]], str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    split_bytes: int | None = None,
) -> SparkInput:
    """Read ``paths`` as ``table`` in Spark: rejects go to ``on_reject`` (in input order), counters into
    ``stats``, and the records become a temporary view (see :class:`SparkInput`)."""
    if "-" in paths:
        raise InputError("--engine spark cannot read stdin ('-'): give files, folders or URLs")
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # also for a session the caller made
    listing_rejects: list[Reject] = []
    local = list_local([p for p in paths if not is_url(p)], table, listing_rejects.append,
                       split_bytes=split_bytes or SPLIT_BYTES, since=since, until=until)
    ddl = input_ddl(table)
    frames = []
    if local:
        n = len(local)
        slices = max(1, min(n, spark.sparkContext.defaultParallelism * 4 if _classic(spark) else n))
        ids = spark.range(0, n, 1, slices)
        frames.append(ids.mapInArrow(_local_task(table, local, prefilter, delivery), ddl))
    urls = [hadoop_url(p) for p in paths if is_url(p)]
    if urls:
        listing = (
            spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(urls).select("path")
        )
        found = sorted(r[0] for r in listing.collect())
        found = [u for u in found if in_days(u, since, until)]
        order = {u: len(local) + i for i, u in enumerate(found)}
        if found:
            content = spark.read.format("binaryFile").load(found).select("path", "content")
            frames.append(content.mapInArrow(_remote_task(table, order, prefilter, delivery), ddl))
    if frames:
        frame = frames[0]
        for f in frames[1:]:
            frame = frame.unionByName(f)
    else:
        frame = spark.createDataFrame([], ddl)
    frame = frame.persist()
    for (counters,) in frame.where("_mw_kind = 'stats'").select("_mw_reason").collect():
        stats.add(ReadStats(**orjson.loads(counters)))
    for rej in listing_rejects:
        stats.rejected += 1
        key = rej.reason.split(":")[0]
        stats.reasons[key] = stats.reasons.get(key, 0) + 1
        on_reject(rej)
    if stats.rejected > len(listing_rejects):
        rows = frame.where("_mw_kind = 'reject'").select("_mw_file", "_mw_line", "_mw_reason", "_mw_excerpt")
        for r in rows.orderBy("_mw_ord", "_mw_seq").toLocalIterator():
            on_reject(Reject(r[0], r[1], r[2], r[3] or ""))
    view = f"_mw_{table.name.replace('.', '_')}_{os.getpid()}_{next(_counter)}"
    extra = tuple(c for c in INPUT_EXTRA if c in ("_mw_file", "_mw_line", "_mw_ord", "_mw_seq", "_mw_sample",
                                                  "_mw_delivery"))
    frame.where("_mw_kind = 'record'").selectExpr(*table_select(table, extra)).createOrReplaceTempView(
        view
    )
    return SparkInput(table, frame, view)


def _classic(spark: Any) -> bool:
    try:
        spark.sparkContext  # noqa: B018 - raises on Spark Connect
        return True
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------------------------- queries


def result_frame(spark: Any, plan: SqlPlan, extra: Sequence[str] = ()) -> Any:
    """The DataFrame of a compiled plan (plus ``extra`` passed-through columns), JSON columns as JSON text (order
    kept: a projection over the sort)."""
    from pyspark.sql import functions as F

    df = spark.sql(plan.sql(pretty=False))
    cols = [F.to_json(F.col(quoted(c.name))).alias(c.name) if c.type is VT.JSON else F.col(quoted(c.name))
            for c in plan.columns]
    return df.select(*cols, *(F.col(quoted(c)) for c in extra))


def convert_rows(plan: SqlPlan, rows: Iterator[Any]) -> Iterator[dict[str, Any]]:
    """Spark rows as the other executors return them: JSON parsed, timestamps timezone-aware UTC."""
    convert = row_converter(plan)
    for row in rows:
        yield convert(row)


def run_spark_files(
    spark: Any,
    query: Query | BoundQuery,
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None] | None = None,
    stats: ReadStats | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Read the query table's ``paths`` in Spark and run ``query``; rows as :func:`run_duckdb` returns them."""
    bound = query if isinstance(query, BoundQuery) else bind(query)
    stats = stats if stats is not None else ReadStats()
    inp = read_input(spark, bound.table, paths, on_reject=on_reject or (lambda _r: None), stats=stats,
                     prefilter=make_prefilter(bound), since=since, until=until)
    try:
        plan = compile_sql_plan(bound, "spark", relation=inp.view)
        return list(convert_rows(plan, result_frame(spark, plan).collect()))
    finally:
        inp.close()
        spark.catalog.dropTempView(inp.view)


def run_spark(spark: Any, query: Query | BoundQuery, records: Sequence[Record]) -> list[dict[str, Any]]:
    """Run ``query`` over in-memory ``records`` in Spark (differential tests and small inputs): the records pass
    through the same Arrow row layout as read records."""
    bound = query if isinstance(query, BoundQuery) else bind(query)
    out = _Out(bound.table, None)
    batches = []
    for rec in records:
        out.record(rec, 0, 0, rec.file)
        if out.full():
            batches.append(out.flush())
    if out.rows:
        batches.append(out.flush())
    import pyarrow as pa

    arrow = pa.Table.from_batches(batches, schema=out.schema)
    ddl = input_ddl(bound.table)
    frame = spark.createDataFrame(arrow, ddl) if batches else spark.createDataFrame([], ddl)
    view = f"_mw_mem_{os.getpid()}_{next(_counter)}"
    frame.selectExpr(*table_select(bound.table)).createOrReplaceTempView(view)
    try:
        plan = compile_sql_plan(bound, "spark", relation=view)
        return list(convert_rows(plan, result_frame(spark, plan).collect()))
    finally:
        spark.catalog.dropTempView(view)
