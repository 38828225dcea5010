"""A damaged, empty or full state store, and a full disk under --out: one line naming the path and the cause,
exit 2, the store left as it was. Listing commands open the store read-only."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from minerwatch.generate.findings import generate_findings

CLI = [sys.executable, "-m", "minerwatch.cli"]


def _run(*args: str, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def cap_file_size() -> None:  # a full disk, as SQLite and Python see it: writes past `limit` bytes fail
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, preexec_fn=cap_file_size if limit else None
    )


def _one_line_error(res: subprocess.CompletedProcess[str], path: Path, *causes: str) -> str:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and "cannot rollback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert str(path) in lines[0], lines[0]
    assert any(c in lines[0] for c in causes), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "findings.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(3000, seed=9, crypto_ratio=0.5)))
    return path


@pytest.fixture(scope="module")
def clean_alerts(findings, tmp_path_factory) -> list[dict]:
    state = tmp_path_factory.mktemp("clean") / "state.db"
    assert _run("detect", str(findings), "--state", str(state)).returncode == 0
    return _alerts(state)


def _alerts(state: Path) -> list[dict]:
    res = _run("alerts", "list", "--state", str(state), "--json")
    assert res.returncode == 0, res.stderr
    return [json.loads(x) for x in res.stdout.splitlines()]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_damaged_pages_are_reported_by_every_command(findings, tmp_path):
    state = tmp_path / "state.db"
    assert _run("detect", str(findings), "--state", str(state)).returncode == 0
    size = state.stat().st_size
    with open(state, "r+b") as fh:  # garble the middle of every third page, leave the header and schema
        for offset in range(3 * 4096, size, 3 * 4096):
            fh.seek(offset + 64)
            fh.write(b"\xa5" * 1500)
    before = _digest(state)
    for args in (("alerts", "list"), ("alerts", "show", "mw-"), ("outbox", "list"), ("report", "mw-")):
        _one_line_error(_run(*args, "--state", str(state)), state, "malformed", "damaged")
    assert _digest(state) == before  # the readers wrote nothing
    _one_line_error(_run("detect", str(findings), "--state", str(state)), state, "malformed", "damaged")


def test_an_empty_file_is_reported_not_started_afresh(findings, tmp_path):
    state = tmp_path / "state.db"
    state.touch()
    for args in (("alerts", "list"), ("outbox", "list"), ("detect", str(findings))):
        _one_line_error(_run(*args, "--state", str(state)), state, "0-byte")
    assert state.stat().st_size == 0


def test_listing_opens_the_store_read_only(findings, tmp_path):
    state = tmp_path / "state.db"
    assert _run("detect", str(findings), "--state", str(state)).returncode == 0
    before = _digest(state)
    alert_id = _alerts(state)[0]["alert_id"]
    for args in (("alerts", "list"), ("alerts", "show", alert_id), ("outbox", "list"), ("report", alert_id)):
        res = _run(*args, "--state", str(state))
        assert res.returncode == 0, res.stderr
    assert _digest(state) == before  # no table created, nothing migrated
    assert not Path(f"{state}-wal").exists() or Path(f"{state}-wal").stat().st_size == 0


def test_disk_full_under_the_store(findings, clean_alerts, tmp_path):
    state = tmp_path / "state.db"
    res = _run("detect", str(findings), "--state", str(state), "--batch-rows", "50", limit=160 * 1024)
    _one_line_error(res, state, "full", "disk I/O", "too large")
    db = sqlite3.connect(state)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert _run("detect", str(findings), "--state", str(state)).returncode == 0  # room again: it finishes the job
    assert _alerts(state) == clean_alerts


def test_disk_full_under_out(findings, clean_alerts, tmp_path):
    state, out = tmp_path / "state.db", tmp_path / "alerts.jsonl"
    out.write_bytes(b'{"earlier": "line"}\n' * 200_000)  # 4 MB, more than the store: appending to it fails
    res = _run("detect", str(findings), "--state", str(state), "--out", str(out), limit=os.path.getsize(out) + 10)
    _one_line_error(res, out, "too large", "No space")
    assert _run("detect", str(findings), "--state", str(state), "--out", str(out)).returncode == 0
    assert _alerts(state) == clean_alerts
    last = {}
    for line in out.read_text().splitlines()[200_000:]:
        rec = json.loads(line)
        last[rec["alert_id"]] = rec
    assert sorted(last.values(), key=lambda r: (r["first_seen"], r["alert_id"])) == clean_alerts
