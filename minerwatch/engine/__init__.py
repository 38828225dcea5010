"""Executors: run a compiled query over canonical records — streaming (Python) or batch (DuckDB)."""

from minerwatch.engine.duckdb import run_duckdb, run_duckdb_files
from minerwatch.engine.stream import run_batch, run_stream

__all__ = ["run_batch", "run_duckdb", "run_duckdb_files", "run_stream"]
