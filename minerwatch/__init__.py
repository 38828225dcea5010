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



def __getattr__(name: str) -> str:
    # The version comes from the installed metadata (one source of truth: pyproject.toml), read only when asked:
    # importlib.metadata costs tens of milliseconds that every command line would otherwise pay at start-up.
    if name != "__version__":
        raise AttributeError(name)
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("minerwatch")
    except PackageNotFoundError:  # a source tree on sys.path without an install
        return "0+unknown"
