"""The same GuardDuty findings delivered three ways — GuardDuty export, Security Hub ASFF, Security Lake OCSF in
Parquet — give the alerts of the GuardDuty form alone: one delivery each, not three."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sources"))

from lake import ASFF, OCSF, lake_path, write_parquet  # noqa: E402

runner = CliRunner()
REAL = Path(__file__).resolve().parent.parent / "data" / "real" / "guardduty"


def _guardduty_form(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(REAL / "elastic-test-guard_duty-crypto.jsonl", folder / "gd-export-1.jsonl")
    shutil.copy(ASFF / "guardduty-network-crypto.jsonl", folder / "gd-export-2.jsonl")
    return folder


def _detect(
    paths: list[Path], tmp: Path, name: str, *extra: str, state: str = ""
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    out, stats = tmp / f"{name}.alerts.jsonl", tmp / f"{name}.stats.json"
    args = ["detect", *map(str, paths), "--state", str(tmp / f"{state or name}.db"), "--out", str(out)]
    result = runner.invoke(app, [*args, "--stats-json", str(stats), "--rejects", str(tmp / f"{name}.rej"), *extra])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in out.read_bytes().splitlines()] if out.exists() else []
    return alerts, json.loads(stats.read_text())


@pytest.mark.parametrize("samples", [True, False])
def test_mixed_folder_gives_the_alerts_of_the_guardduty_form(tmp_path: Path, samples: bool) -> None:
    extra = ["--include-samples"] if samples else []
    gd_alerts, gd_stats = _detect([_guardduty_form(tmp_path / "gd")], tmp_path, "gd", *extra)
    mixed = _guardduty_form(tmp_path / "mixed")
    shutil.copy(ASFF / "securityhub-get-findings.json", mixed / "hub-get-findings.json")
    shutil.copy(ASFF / "securityhub-imported-event.json", mixed / "hub-event.json")
    write_parquet(OCSF / "securitylake-sh-findings.jsonl", lake_path(mixed / "lake"))
    mixed_alerts, mixed_stats = _detect([mixed], tmp_path, "mixed", *extra)

    assert len(gd_alerts) == (2 if samples else 1)
    assert mixed_alerts == gd_alerts  # same ids, keys, groups, finding ids, selected fields
    assert mixed_stats["findings"] == gd_stats["findings"] + 7  # 3 ASFF + 1 event + 3 OCSF rows ...
    # ... and every matched one (the Reputation finding is not matched) is a duplicate of a GuardDuty delivery
    assert mixed_stats["duplicates"] - gd_stats["duplicates"] == 5
    assert mixed_stats["rejected"] == 0


def test_security_hub_redelivery_dedups_and_updates(tmp_path: Path) -> None:
    first, _ = _detect([_guardduty_form(tmp_path / "gd")], tmp_path, "run")
    assert len(first) == 1 and first[0]["event_count"] == 1
    hub = orjson.loads((ASFF / "securityhub-get-findings.json").read_bytes())["Findings"][2]
    same = tmp_path / "same.json"
    same.write_bytes(orjson.dumps(hub))
    again, stats = _detect([same], tmp_path, "again", state="run")
    assert again == [] and stats["duplicates"] == 1 and stats["alerts_new"] == stats["alerts_updated"] == 0
    later = copy.deepcopy(hub)
    later["UpdatedAt"] = "2024-03-11T03:15:02.118Z"  # GuardDuty saw it again: a new occurrence
    later["ProductFields"]["count"] = "4"
    newer = tmp_path / "newer.json"
    newer.write_bytes(orjson.dumps(later))
    updated, stats = _detect([newer], tmp_path, "newer", state="run")
    assert stats["alerts_updated"] == 1 and len(updated) == 1
    assert updated[0]["alert_id"] == first[0]["alert_id"] and updated[0]["event_count"] == 2
    assert updated[0]["last_seen"] == "2024-03-11T03:15:02.118Z"
