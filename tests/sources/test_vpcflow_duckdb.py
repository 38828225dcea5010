"""The DuckDB relation over flow log files gives the rows the per-record reader gives."""

from __future__ import annotations

import gzip
import random
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerwatch.catalog.tables import VPCFLOW, ColType
from minerwatch.errors import InputError
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.sources.vpcflow import KNOWN_FIELDS, V2_FIELDS, read_vpcflow, snake, vpcflow_duckdb_relation

COLUMNS = [c for c in VPCFLOW.columns]


def per_record(paths: list[Path]) -> tuple[list[dict[str, Any]], list[Reject]]:
    rejects: list[Reject] = []
    records = read_vpcflow([str(p) for p in paths], on_reject=rejects.append, stats=ReadStats())
    return [r.flat for r in records], rejects


def relation(paths: list[Path], **kwargs: Any) -> tuple[list[dict[str, Any]], duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    sql = vpcflow_duckdb_relation(con, [str(p) for p in paths], **kwargs)
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()], con


def same_rows(flats: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """Equal as multisets over the catalogue columns (DuckDB's union may reorder layouts)."""

    def key(row: dict[str, Any]) -> tuple[str, ...]:
        out = []
        for c in COLUMNS:
            v = row.get(c)
            if isinstance(v, datetime) and v.tzinfo is not None:
                v = v.astimezone(UTC).replace(tzinfo=None)
            out.append(repr(v))
        return tuple(out)

    assert sorted(map(key, flats)) == sorted(map(key, rows))
    assert len(flats) == len(rows)


def test_real_samples(samples: Path) -> None:
    files = sorted(p for p in (samples / "vpcflow").iterdir() if "message-field" not in p.name)
    flats, rejects = per_record(files)
    rows, con = relation(files, rejects_table="flow_rejects")
    assert rejects == [] and len(rows) == 25
    same_rows(flats, rows)
    assert {c for c in rows[0]} >= {"eventdate", "accountid", "nodata", "srcaddr", "log_status", "tgw_id"}
    # A header repeated inside a file (three files concatenated) is a line DuckDB cannot take: it is recorded
    # in the rejects table, never dropped silently.
    lines = con.execute("SELECT DISTINCT line, csv_line FROM flow_rejects ORDER BY line").fetchall()
    assert [line for line, _ in lines] == [3, 5]
    assert all(text.startswith("version vpc-id subnet-id") for _, text in lines)
    # Without a rejects table the same input fails loudly.
    with pytest.raises(duckdb.Error):
        relation([p for p in files if "tcp-flag" in p.name])


def test_typed_columns_and_derived(samples: Path) -> None:
    (path,) = (samples / "vpcflow").glob("*test-extra-samples*")
    rows, con = relation([path])
    first = rows[0]
    assert first["srcport"] == 34892 and first["start"] == 1477913708
    assert first["eventdate"] == datetime(2016, 10, 31, 11, 35, 8)
    assert first["accountid"] == "123456789010" and first["nodata"] is False
    assert rows[1]["srcaddr"] is None and rows[1]["nodata"] is True
    types = dict(
        con.execute(f"DESCRIBE {vpcflow_duckdb_relation(con, [str(path)])}").fetchall()[i][:2] for i in range(17)
    )
    assert types["srcport"] == "BIGINT" and types["eventdate"] == "TIMESTAMP" and types["nodata"] == "BOOLEAN"
    assert types["account_id"] == "VARCHAR"


def test_gzip_folder_parquet_and_quoted_names(tmp_path: Path, samples: Path) -> None:
    data = next((samples / "vpcflow").glob("*valid_vpc_flow_log_multi*")).read_bytes()
    (tmp_path / "a.log.gz").write_bytes(gzip.compress(data))
    (tmp_path / "it's plain.log").write_bytes(data)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "custom.log").write_text("dstport srcaddr future-field\n3333 10.0.0.1 x\n- 10.0.0.2 -\n")
    (tmp_path / "sub" / "empty.log").write_text("")
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 2 AS version, 'eni-9' AS interface_id, 14444 AS dstport, '-' AS action) TO ? (FORMAT parquet)",
        [str(tmp_path / "sub" / "p.parquet")],
    )
    flats, rejects = per_record([tmp_path])
    rows, _ = relation([tmp_path])
    assert rejects == [] and len(rows) == 7
    same_rows(flats, rows)
    custom = [r for r in rows if r["srcaddr"] == "10.0.0.1"]
    assert custom[0]["future_field"] == "x" and custom[0]["dstport"] == 3333
    parquet = [r for r in rows if r["interface_id"] == "eni-9"]
    assert parquet[0]["dstport"] == 14444 and parquet[0]["action"] is None


def test_hostile_lines_go_to_the_rejects_table(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text(
        " ".join(V2_FIELDS)
        + "\n2 1 eni-1 10.0.0.1 10.0.0.2 40000 3333 6 1 2 1700000000 1700000060 ACCEPT OK"
        + "\n2 1 eni-1 10.0.0.1 10.0.0.2 http 3333 6 1 2 1700000000 1700000060 ACCEPT OK"
        + "\n2 1 eni-1 10.0.0.1 10.0.0.2 40000 3333 6 1 2 1700000000 ACCEPT OK\n"
    )
    flats, rejects = per_record([path])
    rows, con = relation([path], rejects_table="rj")
    same_rows(flats, rows)
    assert [r.line for r in rejects] == [3, 4]
    assert [line for (line,) in con.execute("SELECT DISTINCT line FROM rj ORDER BY line").fetchall()] == [3, 4]


def test_inputs_it_does_not_take(tmp_path: Path, samples: Path) -> None:
    con = duckdb.connect()
    message = next((samples / "vpcflow").glob("*message-field*"))
    with pytest.raises(InputError, match="read them with read_vpcflow"):
        vpcflow_duckdb_relation(con, [str(message)])
    for path in ("-", "s3://bucket/prefix"):
        with pytest.raises(InputError, match="local files only"):
            vpcflow_duckdb_relation(con, [path])
    with pytest.raises(InputError, match="no such file"):
        vpcflow_duckdb_relation(con, [str(tmp_path / "missing.log")])
    (tmp_path / "odd.log").write_text("1 2 3\n")
    with pytest.raises(InputError, match="wrong field count: 3 fields"):
        vpcflow_duckdb_relation(con, [str(tmp_path / "odd.log")])


def test_empty_folder_gives_no_rows(tmp_path: Path) -> None:
    rows, con = relation([tmp_path])
    assert rows == []
    names = [d[0] for d in con.execute(vpcflow_duckdb_relation(con, [str(tmp_path)])).description]
    assert {"srcaddr", "dstport", "eventdate", "accountid", "nodata"} <= set(names)


# --------------------------------------------------------------------------------------------- property


_FIELD_LIST = sorted(KNOWN_FIELDS)


def _value(field: str, rnd: random.Random) -> str:
    if rnd.random() < 0.2:
        return "-"
    if VPCFLOW.columns[snake(field)] is ColType.BIGINT:
        return str(rnd.randrange(0, 2_000_000_000))
    # Starts with a capital: a data line never looks like a header line (kebab-case field names).
    return "V" + "".join(rnd.choice(string.ascii_letters + string.digits + ".:-/") for _ in range(rnd.randrange(12)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.lists(st.sampled_from(_FIELD_LIST), min_size=1, max_size=12, unique=True),
    seed=st.integers(0, 2**32),
    rows=st.integers(0, 6),
    gz=st.booleans(),
)
def test_any_header_order_matches_the_per_record_reader(
    tmp_path: Path, fields: list[str], seed: int, rows: int, gz: bool
) -> None:
    rnd = random.Random(seed)
    lines = [" ".join(fields)] + [" ".join(_value(f, rnd) for f in fields) for _ in range(rows)]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"flows-{seed}-{len(fields)}-{rows}.log{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(data) if gz else data)
    flats, rejects = per_record([path])
    out, _ = relation([path])
    assert rejects == [] and len(flats) == rows
    same_rows(flats, out)
