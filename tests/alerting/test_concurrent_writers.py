"""Several processes writing one state store at once: two and three `detect` runs, `watch -` beside `detect`.

Whatever the interleaving, DESIGN §6's invariants hold in the store: every matched delivery is in exactly one
alert, one key's alerts start at least a window apart, and nothing is marked seen without its alert.
"""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from minerwatch.generate.fast import write_jsonl_fast

CLI = [sys.executable, "-m", "minerwatch.cli"]
WINDOW = timedelta(hours=2)
ROUNDS = 1


@pytest.fixture(scope="module")
def crypto_lines(tmp_path_factory) -> list[bytes]:
    """Seed-rule matches only, from instances in bursts that overlap in time, shuffled."""
    path = tmp_path_factory.mktemp("findings") / "all.jsonl"
    # A short span packs each instance's rows minutes apart, so both writers keep touching the same keys.
    write_jsonl_fast(path, 5_000_000, seed=11, crypto_ratio=1.0, span=timedelta(days=2))
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) > 1500
    return lines


def _parts(lines: list[bytes], n: int, seed: int, folder: Path) -> list[Path]:
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    paths = []
    for i in range(n):
        p = folder / f"part{i}.jsonl"
        p.write_bytes(b"".join(shuffled[i::n]))
        paths.append(p)
    return paths


def _detect(part: Path, state: Path) -> list[str]:
    # Small batches: many transactions, so the writers interleave often.
    return [*CLI, "detect", str(part), "--state", str(state), "--batch-rows", "10"]


def _finish(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]


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


@pytest.mark.parametrize("writers", [2, 3])
def test_concurrent_detect_runs_keep_the_invariants(crypto_lines, tmp_path, writers):
    for rnd in range(ROUNDS):
        folder = tmp_path / f"r{rnd}"
        folder.mkdir()
        parts = _parts(crypto_lines, writers, seed=rnd * 10 + writers, folder=folder)
        state = folder / "state.db"
        procs = [
            subprocess.Popen(_detect(p, state), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for p in parts
        ]
        _finish(procs)
        _check_store(state, crypto_lines)


def test_watch_beside_detect_keeps_the_invariants(crypto_lines, tmp_path):
    for rnd in range(ROUNDS):
        folder = tmp_path / f"r{rnd}"
        folder.mkdir()
        streamed, batch = _parts(crypto_lines, 2, seed=100 + rnd, folder=folder)
        state = folder / "state.db"
        with open(streamed, "rb") as stdin:
            watch = subprocess.Popen(
                [*CLI, "watch", "-", "--state", str(state), "--quiet"],
                stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            det = subprocess.Popen(_detect(batch, state), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _finish([watch, det])
        _check_store(state, crypto_lines)
