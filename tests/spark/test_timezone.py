"""The CLI with ``--engine spark`` in a process whose local time zone is not UTC (so is the JVM it starts): the
same query rows and the same alerts as DuckDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from minerwatch.generate.findings import generate_findings

NON_UTC = "America/New_York"
REAL = Path(__file__).resolve().parents[1] / "data" / "real" / "guardduty"


def _cli(*args: str, tz: str = NON_UTC) -> str:
    env = {**os.environ, "TZ": tz}
    env.pop("PYSPARK_PYTHON", None)
    res = subprocess.run([sys.executable, "-m", "minerwatch.cli", *args], env=env, capture_output=True, text=True,
                         timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_query_and_detect_under_a_non_utc_zone(tmp_path: Path) -> None:
    data = tmp_path / "findings.jsonl"
    data.write_bytes(b"".join(json.dumps(f).encode() + b"\n" for f in generate_findings(300, seed=5,
                                                                                        crypto_ratio=0.3)))
    query = "from cloud.aws.guardduty select id, eventdate group every 1d by accountid"
    spark_rows = _cli("query", query, str(data), str(REAL), "--format", "json", "--engine", "spark",
                      "--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false")
    duck_rows = _cli("query", query, str(data), str(REAL), "--format", "json", "--engine", "duckdb", tz="UTC")
    assert spark_rows == duck_rows and spark_rows.count("\n") > 5
    alerts = {}
    for engine in ("spark", "duckdb"):
        state = tmp_path / f"{engine}.db"
        _cli("detect", str(data), "--state", str(state), "--engine", engine, "--spark-master", "local[2]")
        alerts[engine] = [json.loads(x) for x in _cli("alerts", "list", "--state", str(state), "--json").splitlines()]
    assert alerts["spark"] == alerts["duckdb"] and len(alerts["spark"]) > 1
