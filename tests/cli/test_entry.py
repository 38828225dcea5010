from __future__ import annotations

import importlib
import os
import subprocess
import sys

import typer.main

from minerwatch.cli.all_commands import app
from minerwatch.cli.entry import COMMAND_MODULES


def _registered() -> dict[str, str]:
    """Top-level command or group name → the module whose code registered it."""
    names: dict[str, str] = {}
    for cmd in app.registered_commands:
        names[cmd.name or cmd.callback.__name__] = cmd.callback.__module__
    for group in app.registered_groups:
        callbacks = [c.callback for c in group.typer_instance.registered_commands]
        names[group.name] = callbacks[0].__module__
    return names


def test_every_command_maps_to_the_module_that_registers_it():
    registered = _registered()
    assert set(COMMAND_MODULES) == set(registered)
    for name, module in registered.items():
        assert f"minerwatch.cli.{COMMAND_MODULES[name]}" == module, name
        importlib.import_module(module)


def test_console_entry_runs_one_command_without_loading_the_others():
    code = (
        "import sys; sys.argv=['minerwatch','lint','--help']\n"
        "from minerwatch.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('minerwatch.cli.')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = res.stdout.split("LOADED", 1)[1]
    assert "lang_cmds" in loaded and "respond_cmds" not in loaded and "watch_cmds" not in loaded
    assert "Check rules and queries" in res.stdout
    typer.main  # noqa: B018 (typer is what registers the commands)


def test_a_module_with_one_command_still_parses_the_command_name():
    code = (
        "import sys; sys.argv=['minerwatch','hunt','--help']\n"
        "from minerwatch.cli.entry import main\n"
        "main()\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Usage: minerwatch hunt" in res.stdout


def _modules_loaded_by(argv: list[str]) -> set[str]:
    code = (
        f"import sys; sys.argv={['minerwatch', *argv]!r}\n"
        "from minerwatch.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', ' '.join(sorted(sys.modules)))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(res.stdout.split("LOADED", 1)[1].split())


def test_detect_help_loads_no_detection_stack():
    # Start-up is paid by every call from a shell loop: help needs typer, not the engine behind the command.
    loaded = _modules_loaded_by(["detect", "--help"])
    heavy = {
        "boto3", "duckdb", "jinja2", "yaml", "sqlite3", "multiprocessing", "pydantic",
        "minerwatch.rules.model", "minerwatch.rules.loader", "minerwatch.alerting.detect", "minerwatch.compile",
    }
    assert not heavy & loaded, sorted(heavy & loaded)
    assert "minerwatch.cli.detect_cmds" in loaded


def test_bare_help_loads_every_command_module_but_no_engine():
    # `minerwatch --help` imports every command module: each keeps its engine (boto3, DuckDB, Jinja2, pydantic
    # models, the live service …) inside the command that runs it, and the constants its help shows in light modules.
    loaded = _modules_loaded_by(["--help"])
    heavy = {
        "boto3", "botocore", "duckdb", "jinja2", "yaml", "pydantic", "sqlite3", "fastapi", "pyspark", "sqlglot",
        "multiprocessing", "minerwatch.aws.session", "minerwatch.respond.actions", "minerwatch.respond.plan",
        "minerwatch.posture.checks", "minerwatch.enrich.iocs", "minerwatch.enrich.run", "minerwatch.alerting.state",
        "minerwatch.alerting.detect", "minerwatch.alerting.allowlist", "minerwatch.rules.model",
        "minerwatch.rules.loader", "minerwatch.rules.lint", "minerwatch.report.model", "minerwatch.report.html",
        "minerwatch.live.service", "minerwatch.notify.config", "minerwatch.notify.outbox", "minerwatch.compile",
        "minerwatch.lang.parser", "minerwatch.generate.findings", "minerwatch.hunt", "minerwatch.console",
    }
    assert not heavy & loaded, sorted(heavy & loaded)
    assert {f"minerwatch.cli.{m}" for m in COMMAND_MODULES.values()} <= loaded


def test_help_texts_show_the_constants_kept_in_light_modules():
    from minerwatch.generate.shapes import ALL_SHAPES
    from minerwatch.posture.checks import CHECKS
    from minerwatch.respond.integration_policy import INTEGRATIONS
    from minerwatch.respond.plan import APPROVALS

    def help_of(argv: list[str]) -> str:
        res = subprocess.run([sys.executable, "-m", "minerwatch.cli", *argv, "--help"], capture_output=True,
                             text=True, env={**os.environ, "COLUMNS": "400"}, check=True)
        return " ".join(res.stdout.replace("│", " ").split())

    assert ", ".join(c.id for c in CHECKS) in help_of(["posture"])
    assert ", ".join(APPROVALS) in help_of(["respond"])
    assert ", ".join(INTEGRATIONS) in help_of(["iam-policy"])
    assert ", ".join(ALL_SHAPES) in help_of(["generate", "findings"])


def test_rules_package_names_load_on_first_use():
    code = (
        "import sys, minerwatch.rules as r\n"
        "before = 'minerwatch.rules.model' in sys.modules\n"
        "print(before, r.Rule.__module__, r.load_rule.__module__)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "minerwatch.rules.model", "minerwatch.rules.loader"]
