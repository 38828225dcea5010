"""`minerwatch` entry point. Importing the command modules registers their commands on the shared app."""

from __future__ import annotations

import sys

from minerwatch.cli import (  # noqa: F401
    detect_cmds,
    enrich_cmds,
    gen_cmds,
    hunt_cmds,
    ioc_cmds,
    lang_cmds,
    notify_cmds,
    query_cmds,
    report_cmds,
    respond_cmds,
    watch_cmds,
)
from minerwatch.cli.app import app
from minerwatch.errors import MinerWatchError


def main() -> None:
    try:
        app()
    except MinerWatchError as exc:
        print(exc.format(), file=sys.stderr)
        sys.exit(2)


__all__ = ["app", "main"]
