"""Commands over queries themselves: ``compile`` (LINQ → SQL) and ``query`` (run any query over inputs)."""

from __future__ import annotations

import csv
import io
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.table import Table

from minerwatch.cli.app import app, cell, err, fail, note, out
from minerwatch.cli.spark_opts import SPARK_CONF, SPARK_MASTER, SPARK_REMOTE, spark_options
from minerwatch.cli.window_opts import SINCE, UNTIL, time_window
from minerwatch.errors import MinerWatchError

if TYPE_CHECKING:
    from minerwatch.lang.ast import Query


class Dialect(StrEnum):
    duckdb = "duckdb"
    spark = "spark"
    trino = "trino"


class Engine(StrEnum):
    duckdb = "duckdb"
    stream = "stream"
    spark = "spark"


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


def load_query(text_or_file: str) -> Query:
    """A query given inline, or read from a ``.linq`` file or a rule document (.md / .txt, or a shipped rule's id)."""
    from minerwatch.lang.parser import parse_query
    from minerwatch.rules.shipped import resolve_rule_path

    path = resolve_rule_path(text_or_file)
    looks_inline = text_or_file.lstrip().lower().startswith("from ") or "\n" in text_or_file
    if looks_inline or not path.is_file():
        return parse_query(text_or_file, "<query>")
    if path.suffix.lower() == ".linq":
        return parse_query(path.read_text(encoding="utf-8"), str(path))
    from minerwatch.rules.loader import load_rule

    rule = load_rule(path)
    return parse_query(rule.query, str(path), rule.query_line - 1)


@app.command("compile")
def compile_cmd(
    query: str = typer.Argument(..., help="LINQ text, a .linq file, or a rule document (.md/.txt)."),
    dialect: Dialect = typer.Option(Dialect.duckdb, "--dialect", "-d", help="SQL dialect to generate."),
) -> None:
    """Print the SQL a query compiles to (DuckDB, Spark or Trino)."""
    from minerwatch.compile.sql import compile_sql

    try:
        sql = compile_sql(load_query(query), dialect.value)
    except MinerWatchError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"{query}: cannot read: {exc}")
    print(sql)


def _text(v: Any) -> str:
    """A value as one cell of text: timestamps ISO 8601 with Z, objects and lists as JSON."""
    if v is None:
        return ""
    if isinstance(v, datetime):
        return _iso(v)
    if isinstance(v, (dict, list)):
        return orjson.dumps(v).decode()
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _iso(v: datetime) -> str:
    return v.astimezone(UTC).isoformat().replace("+00:00", "Z")


_JSON_OPTS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_PASSTHROUGH_DATETIME


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return _iso(v)
    raise TypeError


def render(rows: list[dict[str, Any]], columns: list[str], fmt: Format) -> str | Table:
    if fmt is Format.json:
        return "".join(
            orjson.dumps(r, default=_json_default, option=_JSON_OPTS).decode() for r in rows
        )
    if fmt is Format.csv:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([_text(r.get(c)) for c in columns])
        return buf.getvalue()
    table = Table(show_lines=False)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        # Cell text is data: no markup interpretation.
        table.add_row(*[cell(_text(r.get(c))) for c in columns])
    return table


@app.command("query")
def query_cmd(
    query: str = typer.Argument(..., help="LINQ text, a .linq file, or a rule document."),
    paths: list[str] = typer.Argument(
        ..., help="Inputs of the query's table (GuardDuty, CloudTrail, VPC flow, Resolver logs): files, folders, "
        "'-' for stdin, s3://..."
    ),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    engine: Engine = typer.Option(Engine.duckdb, "--engine", "-e", help="Executor: duckdb, stream or spark."),
    spark_master: str = SPARK_MASTER,
    spark_remote: str | None = SPARK_REMOTE,
    spark_conf: list[str] = SPARK_CONF,
    since: str | None = SINCE,
    until: str | None = UNTIL,
) -> None:
    """Run any LINQ query (grouping included) over the logs of its table and print the rows.

    Tables: cloud.aws.guardduty, cloud.aws.cloudtrail, cloud.aws.vpcflow, cloud.aws.route53resolver."""
    from minerwatch.compile.binder import bind
    from minerwatch.compile.prefilter import make_prefilter
    from minerwatch.compile.window import window_query
    from minerwatch.sources.inputs import windowed_paths
    from minerwatch.sources.records import ReadStats, Reject

    window = time_window(since, until)
    stats = ReadStats()
    rejects: list[Reject] = []
    try:
        bound = bind(window_query(load_query(query), window))
        if engine is Engine.duckdb:
            from minerwatch.engine.duckdb import run_duckdb_files

            rows = run_duckdb_files(bound, windowed_paths(paths, window), stats=stats, on_reject=rejects.append)
        elif engine is Engine.spark:
            from minerwatch.engine.spark import run_spark_files, spark_session

            with spark_session(spark_options(spark_master, spark_remote, spark_conf)) as spark:
                rows = run_spark_files(spark, bound, paths, stats=stats, on_reject=rejects.append,
                                       since=window.since, until=window.until)
        else:
            from minerwatch.engine.stream import run_batch
            from minerwatch.sources.registry import read_table

            records = read_table(
                bound.table.name, windowed_paths(paths, window), on_reject=rejects.append, stats=stats,
                prefilter=make_prefilter(bound),
            )
            rows = run_batch(bound, records)
    except MinerWatchError as exc:
        fail(exc)
    except OSError as exc:
        fail(f"query: cannot read input: {exc}")
    result = render(rows, bound.column_names(), fmt)
    if isinstance(result, str):
        sys.stdout.write(result)
    else:
        out.print(result)
    if stats.rejected:
        note(f"{stats.rejected:,} input records rejected:", *(f"  {r.file}:{r.line}: {r.reason}" for r in rejects[:20]))
        if len(rejects) > 20:
            note(f"  … and {len(rejects) - 20:,} more")
    if fmt is Format.table:
        err.print(f"{len(rows):,} rows", highlight=False)


@app.command("sql")
def sql_cmd(
    sql: str = typer.Argument(
        ..., help="DuckDB SQL over the tables loaded below and 'alerts', a .sql file, or - for stdin."
    ),
    findings: list[str] = typer.Option([], "--findings", help="GuardDuty inputs → table 'cloud_aws_guardduty'."),
    cloudtrail: list[str] = typer.Option(
        [], "--cloudtrail", help="CloudTrail inputs → table 'cloud_aws_cloudtrail'."
    ),
    flow: list[str] = typer.Option([], "--flow", help="VPC flow log inputs → table 'cloud_aws_vpcflow'."),
    dns: list[str] = typer.Option(
        [], "--dns", help="Route 53 Resolver query logs → table 'cloud_aws_route53resolver'."
    ),
    state: Path | None = typer.Option(None, "--state", help="State store whose alerts become table 'alerts'."),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    allow_external: bool = typer.Option(
        False, "--allow-external",
        help="Let the SQL reach files and extensions (read_text, COPY … TO, ATTACH, INSTALL). Off by default: "
        "the SQL sees only the tables loaded above.",
    ),
) -> None:
    """Join logs in DuckDB with plain SQL. Each table is named like its catalogue table with `_` for `.`
    (cloud.aws.guardduty → cloud_aws_guardduty, as in `minerwatch compile` output, which runs here unchanged) and
    has the table's flat columns plus `doc` (JSON); `alerts` has alert_id, rule_id, status, first_seen, last_seen,
    event_count, key, fields, record (JSON).

    Example — findings per alerted instance:
    minerwatch sql "SELECT a.alert_id, count(*) FROM alerts a JOIN cloud_aws_guardduty g
    ON g.doc->>'$.resource.instanceDetails.instanceId' = a.key->>'instance_id' GROUP BY ALL"
    --findings findings/ --state state.db
    """
    # Start-up: DuckDB is loaded by the command that runs SQL, not by `--help`.
    import duckdb

    from minerwatch.alerting.state import StateStore
    from minerwatch.compile.sql import relation_name
    from minerwatch.engine.duckdb import fetch_rows, lock_down, open_workspace
    from minerwatch.sources.records import ReadStats, Reject

    # The names `minerwatch compile` reads from (relation_name), so its output runs here as it is.
    tables = {
        relation_name(table): (table, paths)
        for table, paths in (
            ("cloud.aws.guardduty", findings),
            ("cloud.aws.cloudtrail", cloudtrail),
            ("cloud.aws.vpcflow", flow),
            ("cloud.aws.route53resolver", dns),
        )
        if paths
    }
    if sql == "-":
        sql = sys.stdin.read()
    elif "\n" not in sql and sql.lower().endswith(".sql") and Path(sql).is_file():
        sql = Path(sql).read_text(encoding="utf-8")
    stats = ReadStats()
    rejects: list[Reject] = []
    try:
        alerts = StateStore(state).list_alerts() if state else []
        con = open_workspace(tables, alerts=alerts, on_reject=rejects.append, stats=stats)
        if not allow_external:
            lock_down(con)  # after loading: the SQL itself reads and writes nothing outside these tables
    except MinerWatchError as exc:
        fail(exc)
    except duckdb.Error as exc:
        fail(f"sql: {exc}")
    try:
        cur = con.execute(sql)
    except duckdb.PermissionException as exc:
        first = str(exc).splitlines()[0]
        fail(f"sql: {first} (the SQL sees only the loaded tables; --allow-external lets it reach files and extensions)")
    except duckdb.InvalidInputException as exc:
        if "configuration has been locked" not in str(exc):
            fail(f"sql: {exc}")
        fail(f"sql: {str(exc).splitlines()[0]} (settings are locked; --allow-external leaves them open)")
    except duckdb.Error as exc:
        fail(f"sql: {exc}")
    columns, rows = fetch_rows(cur)
    result = render(rows, columns, fmt)
    if isinstance(result, str):
        sys.stdout.write(result)
    else:
        out.print(result)
    if stats.rejected:
        note(f"{stats.rejected:,} input records rejected (first: {rejects[0].file}:{rejects[0].line}: "
             f"{rejects[0].reason})")
