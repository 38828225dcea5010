from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

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


def _modules_loaded_by(argv: list[str], cwd: Path | None = None) -> set[str]:
    code = (
        f"import sys; sys.argv={['minerwatch', *argv]!r}\n"
        "from minerwatch.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('LOADED', ' '.join(sorted(sys.modules)))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MINERWATCH_CONFIG"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=cwd, env=env)
    return set(res.stdout.split("LOADED", 1)[1].split())


# typer's help renderer imports these at module level but this app's help never uses them (cli/lazy_help.py).
HELP_RENDERER_UNUSED = {"rich.markdown", "markdown_it", "rich.traceback", "rich.syntax", "pygments", "rich.pretty"}


def test_detect_help_loads_no_detection_stack():
    # Start-up is paid by every call from a shell loop: help needs typer, not the engine behind the command.
    loaded = _modules_loaded_by(["detect", "--help"])
    heavy = {
        "boto3", "duckdb", "jinja2", "yaml", "sqlite3", "multiprocessing", "pydantic",
        "minerwatch.rules.model", "minerwatch.rules.loader", "minerwatch.alerting.detect", "minerwatch.compile",
        *HELP_RENDERER_UNUSED,
    }
    assert not heavy & loaded, sorted(heavy & loaded)
    assert {"minerwatch.cli.detect_cmds", "typer.rich_utils"} <= loaded


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
        *HELP_RENDERER_UNUSED,
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


def test_detect_over_a_local_file_loads_only_what_it_runs(tmp_path):
    # The fixed cost of every detect run: no AWS SDK for local files, no DuckDB for the stream engine, no
    # notification settings or commands without a configuration, no help renderer, no pydantic (the rule model
    # is plain dataclasses), no rich (the run prints plain lines).
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    argv = ["detect", str(empty), "--state", str(tmp_path / "s.db")]
    loaded = _modules_loaded_by(argv, cwd=tmp_path)
    unneeded = {
        "boto3", "botocore", "urllib3", "duckdb", "sqlglot", "pyspark", "jinja2", "fastapi", "multiprocessing.pool",
        "minerwatch.aws.session", "minerwatch.alerting.sql_detect", "minerwatch.notify.config",
        "minerwatch.notify.outbox", "minerwatch.cli.notify_cmds", "typer.rich_utils", "rich.console", "pydantic",
        *(HELP_RENDERER_UNUSED - {"markdown_it"}),  # markdown-it reads the rule document
    }
    assert not unneeded & loaded, sorted(unneeded & loaded)
    assert {"minerwatch.alerting.detect", "minerwatch.rules.model", "sqlite3"} <= loaded  # it did run

    # A configuration file is what brings the settings in (here one without destinations: nothing is sent).
    (tmp_path / "minerwatch.yaml").write_text("destinations: []\n")
    assert "minerwatch.notify.config" in _modules_loaded_by(argv, cwd=tmp_path)


def _run_entry(argv: list[str], before: str = "") -> subprocess.CompletedProcess[str]:
    code = (
        f"{before}\nimport sys; sys.argv={['minerwatch', *argv]!r}\n"
        "from minerwatch.cli.entry import main\n"
        "main()\n"
    )
    env = {**os.environ, "COLUMNS": "120", "TERMINAL_WIDTH": "120"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_hunt_over_a_local_flow_file_prints_its_summary_without_rich(tmp_path):
    # The summary lines are plain: a hunt that writes JSON pays neither rich's import nor its console.
    flows = Path(__file__).resolve().parents[1] / "data" / "real" / "vpcflow"
    sample = next(flows.glob("open-telemetry-*valid_vpc_flow_log.log"))
    argv = ["hunt", "--flow", str(sample), "--format", "json", "--out", str(tmp_path / "hits.json")]
    loaded = _modules_loaded_by(argv, cwd=tmp_path)
    assert "minerwatch.hunt.sweep" in loaded  # it did run
    assert not {"rich", "rich.console", "typer.rich_utils"} & loaded, sorted(m for m in loaded if "rich" in m)


def test_help_and_usage_errors_are_the_same_as_with_the_real_rich_modules():
    # Loading typer.rich_utils first (with rich.markdown and rich.traceback) turns the deferral off: the pages must
    # not change, only when those modules load.
    real = "import typer.rich_utils"
    for argv in (["--help"], ["detect", "--help"], ["alerts", "list", "--help"], ["detect", "--bogus"], ["nosuch"]):
        deferred, eager = _run_entry(argv), _run_entry(argv, before=real)
        assert (deferred.returncode, deferred.stdout, deferred.stderr) == (eager.returncode, eager.stdout,
                                                                          eager.stderr), argv
        assert deferred.stdout or deferred.stderr


def _printed_by(code: str) -> list[str]:
    """The words a fresh interpreter prints running ``code`` (which must succeed)."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout.split()


def test_the_deferred_rich_classes_are_the_real_ones_when_used():
    code = (
        "import sys\n"
        "import minerwatch.cli.app, typer.rich_utils as ru\n"
        "from typer.models import DeveloperExceptionConfig\n"
        "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
        "md = ru._make_rich_text(text='**bold**', markup_mode='markdown')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n"
        "    tb = ru.get_traceback(exc, DeveloperExceptionConfig(), [])\n"
        "import rich.markdown, rich.traceback\n"
        "print(type(md) is rich.markdown.Markdown, type(tb) is rich.traceback.Traceback,\n"
        "      isinstance(md, ru.Markdown), 'rich.markdown' in sys.modules)"
    )
    assert _printed_by(code) == ["True", "True", "True", "True"]


def test_a_typer_that_imports_other_names_gets_the_real_modules():
    # A stand-in offers only the names it defers; any other `from rich.markdown import X` falls back to the real module.
    code = (
        "import sys\n"
        "import minerwatch.cli.lazy_help as lazy\n"
        "lazy.DEFERRED['rich.markdown'] = ('NotInTyper',)\n"
        "lazy.install()\n"
        "import typer.rich_utils as ru, rich.markdown\n"
        "print(ru.Markdown is rich.markdown.Markdown, isinstance(sys.modules['rich.markdown'], lazy._StandIn))"
    )
    assert _printed_by(code) == ["True", "False"]


def test_a_command_ends_with_the_heap_frozen_for_a_quick_exit():
    # The interpreter's last collection would walk every object still alive (tens of ms after a detect run) only
    # to free memory the exit frees anyway; frozen objects are left out of it. Failing commands end the same way.
    code = (
        "import gc, sys; sys.argv=sys.argv[1:]\n"
        "from minerwatch.cli.entry import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    print('EXIT', exc.code)\n"
        "print('FROZEN', gc.get_freeze_count())"
    )
    for argv in (["minerwatch", "--help"], ["minerwatch", "detect", "--bogus"]):
        out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
        frozen = int(out.split("FROZEN", 1)[1])
        assert frozen > 1000, (argv, out[-200:])
