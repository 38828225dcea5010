"""Timeline texts agree in number: "1 delivery", never "1 deliveries"."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

runner = CliRunner()


def _ok(*args: str) -> str:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def test_a_finding_delivered_once_reads_one_delivery(samples: Path, tmp_path: Path) -> None:
    findings = str(samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl")
    state = str(tmp_path / "s.db")
    _ok("detect", findings, "--include-samples", "--state", state)
    [alert] = [json.loads(line) for line in _ok("alerts", "list", "--state", state, "--json").splitlines()]
    out = _ok("enrich", alert["alert_id"], "--findings", findings, "--state", state)
    assert "timeline: 4 entries" in out
    shown = json.loads(_ok("alerts", "show", alert["alert_id"], "--state", state, "--json"))
    texts = [e["what"] for e in shown["timeline"]]
    assert sum(t.endswith("(severity 8, 1 delivery)") for t in texts) == 2, texts
    assert not any(re.search(r"(?<![\d,.])1 [a-z]+ies\b|(?<![\d,.])1 (datapoints|entries|calls)\b", t) for t in texts)
    markdown = _ok("report", alert["alert_id"], "--state", state, "--format", "md")
    assert "1 matched finding delivery" in markdown and "deliveries" not in markdown
