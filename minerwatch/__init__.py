"""MinerWatch: detect, triage and answer crypto-mining on AWS.

Pipeline (imports flow one way, down this list):
    catalog  -> tables, GuardDuty finding types, botocore shapes (data)
    rules    -> rule documents (Markdown) to a typed model
    lang     -> LINQ tokens, parser, AST, lint
    compile  -> AST to a Python predicate/projection and to sqlglot SQL
    sources  -> readers and normalisation to canonical records, rejects
    engine   -> run compiled queries: stream (Python), DuckDB
    alerting -> allowlists, throttling, alert records, SQLite state, outputs
    cli      -> the thin typer CLI over all of the above
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("minerwatch")  # one source of truth: pyproject.toml, through the installed metadata
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
