"""Finding text cannot drive the terminal: escape sequences (clear screen, OSC 8 links, OSC 0 titles), C1 controls,
bidi overrides and Rich markup in finding fields are shown as inert text by every command that renders data."""

from __future__ import annotations

import json

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.generate.findings import generate_findings
from minerwatch.generate.vocabulary import seed_rule_matches

runner = CliRunner()

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\\x9b31m\u202e[bold red]RED[/]"
CONTROL = ("\x1b", "\x07", "\x9b", "\u202e")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One crypto finding whose type, title, instance id and tags carry terminal control and markup."""
    folder = tmp_path_factory.mktemp("hostile")
    f = next(
        f
        for f in generate_findings(400, seed=4, crypto_ratio=0.5)
        if seed_rule_matches(f["type"], float(f["severity"])) and f["resource"].get("instanceDetails")
    )
    f["type"] += HOSTILE
    f["title"] = "Mining " + HOSTILE
    details = f["resource"]["instanceDetails"]
    details["instanceId"] = "i-0abc" + HOSTILE
    details["tags"] = [{"key": "Name" + HOSTILE, "value": HOSTILE}]
    data = folder / "f.jsonl"
    data.write_bytes(orjson.dumps(f) + b"\n")
    return data, folder / "state.db"


def _assert_inert(output: str) -> None:
    for ch in CONTROL:
        assert ch not in output, f"{ch!r} reached the terminal"
    assert "[bold red]RED[/]" in output  # shown as typed, not read as markup
    assert "\\x1b[2J" in output  # the escape is visible for what it is


def _run(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def test_detect_table_alerts_list_and_show_are_inert(hostile):
    data, state = hostile
    _assert_inert(_run("detect", str(data), "--state", str(state), "--format", "table"))
    _assert_inert(_run("alerts", "list", "--state", str(state)))
    (alert,) = [json.loads(x) for x in _run("alerts", "list", "--state", str(state), "--json").splitlines()]
    shown = _run("alerts", "show", alert["alert_id"], "--state", str(state))
    _assert_inert(shown)
    assert "\\u202e" in shown


def test_query_table_is_inert(hostile):
    data, _ = hostile
    out = _run("query", 'from cloud.aws.guardduty select type, title', str(data), "--format", "table")
    _assert_inert(out)


def test_detect_summary_prints_reasons_as_written(hostile, tmp_path):
    # The summary quotes the allowlist's reasons: printed as plain text, so neither Rich markup nor an emoji code
    # (":fire:") changes them, and control characters are escaped.
    data, _ = hostile
    account = orjson.loads(data.read_bytes())["accountId"]
    allow = tmp_path / "allow.yaml"
    allow.write_text(json.dumps([{"reason": "ok :fire: [bold]x[/bold] \x1b[2J", "accountid": account}]))
    res = runner.invoke(app, ["detect", str(data), "--state", str(tmp_path / "s.db"), "--allowlist", str(allow)])
    assert res.exit_code == 0, res.output
    assert "  suppressed 1: ok :fire: [bold]x[/bold] \\x1b[2J\n" in res.stderr
    assert "\x1b" not in res.stderr
