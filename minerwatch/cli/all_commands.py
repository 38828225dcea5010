"""The whole CLI: importing this module registers every command on the shared app (tests and ``--help``).

The console script goes through ``minerwatch.cli.entry``, which imports only the module a command needs.
"""

from __future__ import annotations

from minerwatch.cli import (  # noqa: F401
    detect_cmds,
    enrich_cmds,
    gen_cmds,
    hunt_cmds,
    iam_cmds,
    ioc_cmds,
    lang_cmds,
    notify_cmds,
    query_cmds,
    report_cmds,
    respond_cmds,
    serve_cmds,
    watch_cmds,
)
from minerwatch.cli.app import app, run


def main() -> None:
    run()


__all__ = ["app", "main", "run"]
