"""Compile LINQ queries: bind names and types, then generate Python functions or SQL (sqlglot).

``bind`` resolves a parsed query against the table catalogue; ``compile_python`` gives the streaming
predicate / projection / grouping; ``compile_sql`` gives DuckDB, Spark or Trino SQL; ``prefilter`` gives the
raw-bytes filter that skips lines which cannot match.
"""

from minerwatch.compile.binder import BoundQuery, bind
from minerwatch.compile.python import GroupAccumulator, PyQuery, compile_python

__all__ = ["BoundQuery", "GroupAccumulator", "PyQuery", "bind", "compile_python"]
