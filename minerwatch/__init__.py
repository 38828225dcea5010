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

__version__ = "0.1.0"
