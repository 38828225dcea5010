"""kill -9 in the middle of a run, run again: the same alerts as one clean run."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson

from minerwatch.generate.findings import generate_findings

CLI = [sys.executable, "-m", "minerwatch.cli"]


def _detect(data: Path, state: Path, out: Path) -> list[str]:
    return [*CLI, "detect", str(data), "--state", str(state), "--out", str(out), "--batch-rows", "5"]


def _alerts(state: Path) -> list[dict]:
    res = subprocess.run([*CLI, "alerts", "list", "--state", str(state), "--json"], capture_output=True, check=True)
    return [json.loads(x) for x in res.stdout.splitlines()]


def _line_count(out: Path) -> int:
    return out.read_bytes().count(b"\n") if out.exists() else 0


def _last_lines(out: Path) -> dict[str, dict]:
    last: dict[str, dict] = {}
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        last[rec["alert_id"]] = rec
    return last


def test_kill_9_then_rerun_equals_clean_run(tmp_path):
    data = tmp_path / "findings.jsonl"
    with open(data, "wb") as fh:
        for f in generate_findings(6000, seed=3, crypto_ratio=0.6):
            fh.write(orjson.dumps(f) + b"\n")

    clean_state, clean_out = tmp_path / "clean.db", tmp_path / "clean.jsonl"
    subprocess.run(_detect(data, clean_state, clean_out), check=True, capture_output=True)
    clean = _alerts(clean_state)
    assert len(clean) > 20

    state, out = tmp_path / "crash.db", tmp_path / "crash.jsonl"
    rng = random.Random(1)
    kills = 0
    for _ in range(4):
        # Kill once the run has committed a random number of further batches (its --out grows per commit).
        before = _line_count(out)
        target = before + rng.randint(5, 120)
        proc = subprocess.Popen(_detect(data, state, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while proc.poll() is None and _line_count(out) < target:
            time.sleep(0.002)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
    subprocess.run(_detect(data, state, out), check=True, capture_output=True)
    assert kills >= 1, "the run finished before it could be killed; make the input larger"

    assert _alerts(state) == clean
    assert _last_lines(out) == {a["alert_id"]: a for a in clean}


def test_a_half_written_out_line_is_replaced_on_the_next_run(tmp_path):
    """kill -9 in the middle of appending to --out leaves a torn last line; the next run cuts it and writes the
    queued lines again in full."""
    data = tmp_path / "findings.jsonl"
    with open(data, "wb") as fh:
        for f in generate_findings(400, seed=4, crypto_ratio=0.5):
            fh.write(orjson.dumps(f) + b"\n")
    state, out = tmp_path / "s.db", tmp_path / "out.jsonl"
    subprocess.run(_detect(data, state, out), check=True, capture_output=True)
    whole = out.read_bytes()
    lines = whole.splitlines(keepends=True)
    # As if the run died while writing the last two lines: they are still queued, the file holds half of one.
    db = sqlite3.connect(state)
    db.executemany("INSERT INTO out_pending (out_path, line) VALUES (?, ?)",
                   [(str(out), x.decode().rstrip("\n")) for x in lines[-2:]])
    db.commit()
    db.close()
    out.write_bytes(b"".join(lines[:-2]) + lines[-2][: len(lines[-2]) // 2])
    subprocess.run(_detect(data, state, out), check=True, capture_output=True)
    assert out.read_bytes() == whole
    assert _last_lines(out) == {a["alert_id"]: a for a in _alerts(state)}
