"""The console-script entry point: imports only the command module a command line needs.

A benchmark or a shell loop pays the start-up on every call. The command modules keep their engines (boto3,
Jinja2, DuckDB, pydantic models) inside the commands that run them, so even ``minerwatch --help`` and unknown
commands, which load every command module, load none of those; one command line loads only its own module.
"""

from __future__ import annotations

import gc
import importlib
import signal
import sys

# Top-level command (or group) → the module that registers it. tests/cli checks this covers every command.
COMMAND_MODULES = {
    "detect": "detect_cmds",
    "test": "detect_cmds",
    "alerts": "detect_cmds",
    "enrich": "enrich_cmds",
    "generate": "gen_cmds",
    "hunt": "hunt_cmds",
    "iam-policy": "iam_cmds",
    "ioc": "ioc_cmds",
    "lint": "lang_cmds",
    "rules": "lang_cmds",
    "outbox": "notify_cmds",
    "notify": "notify_cmds",
    "compile": "query_cmds",
    "query": "query_cmds",
    "sql": "query_cmds",
    "report": "report_cmds",
    "respond": "respond_cmds",
    "posture": "respond_cmds",
    "serve": "serve_cmds",
    "users": "serve_cmds",
    "watch": "watch_cmds",
}


def _end_on_sigterm() -> None:
    """SIGTERM (``kill``, a scheduler's timeout) ends a command as Ctrl-C does, with exit status 143: the open
    transaction rolls back, temporary files are removed and worker processes stop, where the default would end
    the process on the spot. Commands that serve until stopped (``watch``, ``serve``) install their own."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    _end_on_sigterm()
    command = sys.argv[1] if len(sys.argv) > 1 else None
    module = COMMAND_MODULES.get(command or "")
    importlib.import_module(f"minerwatch.cli.{module}" if module else "minerwatch.cli.all_commands")
    from minerwatch.cli.app import run

    try:
        run()
    finally:
        # The process ends here. Its last collection would walk every object still alive, 40-70 ms after a
        # detect run, to free memory the exit frees anyway; frozen objects are left out of it. Objects are still
        # released as the modules are torn down, and outputs were closed by the command.
        gc.freeze()
