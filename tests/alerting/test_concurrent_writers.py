"""Several processes writing one state store at once: two and three `detect` runs, `watch -` beside `detect`.

Whatever the interleaving, DESIGN §6's invariants hold in the store: every matched delivery is in exactly one
alert, one key's alerts start at least a window apart, and nothing is marked seen without its alert.
"""

from __future__ import annotations

import errno
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from minerwatch.generate.fast import write_jsonl_fast

CLI = [sys.executable, "-m", "minerwatch.cli"]
WINDOW = timedelta(hours=2)


@pytest.fixture(scope="module")
def crypto_lines(tmp_path_factory) -> list[bytes]:
    """Seed-rule matches only, from instances in bursts that overlap in time, shuffled."""
    path = tmp_path_factory.mktemp("findings") / "all.jsonl"
    # A short span packs each instance's rows minutes apart, so both writers keep touching the same keys.
    write_jsonl_fast(path, 3_500_000, seed=11, crypto_ratio=1.0, span=timedelta(days=2))
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) > 1000
    return lines


def _parts(lines: list[bytes], n: int, seed: int) -> list[bytes]:
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    return [b"".join(shuffled[i::n]) for i in range(n)]


def _detect(source: Path, state: Path) -> list[str]:
    # Small batches: many transactions, so the writers interleave often.
    return [*CLI, "detect", str(source), "--state", str(state), "--batch-rows", "10"]


def _open_fifo(path: Path, proc: subprocess.Popen) -> int:
    """The write end of a named pipe, once ``proc`` has opened the read end (polled: it may die first)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{proc.args} did not open {path}: {proc.stderr.read().decode()}") from exc
            time.sleep(0.01)
            continue
        os.set_blocking(fd, True)
        return fd


def _run_together(runs: list[tuple[subprocess.Popen, int, bytes]], *, alternate: bool = False) -> None:
    """Write each process its input once all are up, so that their writes to the store overlap; with
    ``alternate``, a few lines to each in turn (stream runs then take turns on the store)."""

    def feed(fd: int, data: bytes) -> None:
        with open(fd, "wb") as fh:
            fh.write(data)

    if alternate:
        files = [(open(fd, "wb"), data.splitlines(keepends=True)) for _, fd, data in runs]  # noqa: SIM115
        for start in range(0, max(len(lines) for _, lines in files), 8):
            for fh, lines in files:
                fh.write(b"".join(lines[start : start + 8]))
                fh.flush()
        for fh, _ in files:
            fh.close()
    else:
        threads = [threading.Thread(target=feed, args=(fd, data)) for _, fd, data in runs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for proc, _, _ in runs:
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert proc.wait(timeout=240) == 0, err.decode()[-2000:]


def _detect_on_fifo(folder: Path, name: str, state: Path) -> tuple[subprocess.Popen, int]:
    fifo = folder / f"{name}.jsonl"
    os.mkfifo(fifo)
    proc = subprocess.Popen(_detect(fifo, state), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, _open_fifo(fifo, proc)


def _check_store(state: Path, lines: list[bytes]) -> None:
    expected = {(d["id"], d["updatedAt"]) for d in map(orjson.loads, lines)}
    db = sqlite3.connect(state)
    try:
        seen = set(db.execute("SELECT finding_id, updated_at FROM seen"))
        suppressed = db.execute("SELECT count(*) FROM suppressions").fetchone()[0]
        alerts = [orjson.loads(r) for (r,) in db.execute("SELECT record FROM alerts")]
    finally:
        db.close()
    assert suppressed == 0
    assert seen == expected  # every delivery taken once, by one of the writers
    # The generator gives each line its own finding id: each id must be in exactly one alert.
    in_alerts = Counter(fid for a in alerts for fid in a["finding_ids"])
    assert set(in_alerts) == {fid for fid, _ in expected}, "matched findings in no alert"
    assert [fid for fid, n in in_alerts.items() if n > 1] == [], "findings in two alerts"
    assert sum(a["event_count"] for a in alerts) == len(expected)
    starts: dict[str, list[datetime]] = defaultdict(list)
    for a in alerts:
        starts[orjson.dumps(a["key"]).decode()].append(datetime.fromisoformat(a["first_seen"].replace("Z", "+00:00")))
    close = [
        (key, a, b) for key, ts in starts.items() for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)
        if b - a < WINDOW
    ]
    assert close == [], f"{len(close)} pairs of one key's alerts start less than a window apart"
    assert len(alerts) > len(starts) > 10  # many keys, several alerts each: the windows were exercised


def test_two_streaming_detect_runs_keep_the_invariants(crypto_lines, tmp_path):
    """`detect -` twice, fed in turns: each commits row by row, so every key is changed by both."""
    state = tmp_path / "state.db"
    procs = [
        subprocess.Popen(
            [*CLI, "detect", "-", "--state", str(state)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(2)
    ]
    runs = []
    for proc, data in zip(procs, _parts(crypto_lines, 2, seed=2), strict=True):
        assert proc.stdin is not None
        runs.append((proc, os.dup(proc.stdin.fileno()), data))
        proc.stdin.close()
    _run_together(runs, alternate=True)
    _check_store(state, crypto_lines)


def test_three_detect_runs_keep_the_invariants(crypto_lines, tmp_path):
    """Batch runs on thirds, started together (their inputs are named pipes written at once)."""
    writers = 3
    state = tmp_path / "state.db"
    parts = _parts(crypto_lines, writers, seed=writers)
    runs = [(*_detect_on_fifo(tmp_path, f"part{i}", state), data) for i, data in enumerate(parts)]
    _run_together(runs)
    _check_store(state, crypto_lines)


def test_watch_beside_detect_keeps_the_invariants(crypto_lines, tmp_path):
    state = tmp_path / "state.db"
    streamed, batch = _parts(crypto_lines, 2, seed=100)
    watch = subprocess.Popen(
        [*CLI, "watch", "-", "--state", str(state), "--quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert watch.stdin is not None
    runs = [(watch, os.dup(watch.stdin.fileno()), streamed), (*_detect_on_fifo(tmp_path, "batch", state), batch)]
    watch.stdin.close()
    _run_together(runs)
    _check_store(state, crypto_lines)
