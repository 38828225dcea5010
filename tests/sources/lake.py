"""Security Lake test files: the OCSF fixtures (JSON Lines) written as Parquet by DuckDB, in the lake's layout."""

from __future__ import annotations

from pathlib import Path

import duckdb

OCSF = Path(__file__).resolve().parent.parent / "data" / "ocsf"
ASFF = Path(__file__).resolve().parent.parent / "data" / "asff"
LAYOUT = "aws/SH_FINDINGS/2.0/region={region}/accountId={account}/eventDay={day}"


def write_parquet(source: Path, out: Path) -> Path:
    """``source`` (OCSF JSON Lines) → ``out`` as Parquet; ``unmapped`` becomes MAP(VARCHAR, VARCHAR) as in the lake."""
    out.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        # strings stay strings (no timestamp guessing), objects with many keys become MAPs
        query = (
            "COPY (SELECT * FROM read_json(?, format = 'newline_delimited', map_inference_threshold = 8, "
            "timestampformat = 'never %Y', dateformat = 'never %Y')) TO '{}' (FORMAT parquet, COMPRESSION gzip)"
        )
        con.execute(query.format(str(out).replace("'", "''")), [str(source)])
    finally:
        con.close()
    return out


def lake_path(root: Path, name: str = "part-0000.gz.parquet", region: str = "us-east-2",
              account: str = "973743533182", day: str = "20220128") -> Path:
    return root / LAYOUT.format(region=region, account=account, day=day) / name
