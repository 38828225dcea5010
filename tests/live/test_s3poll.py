"""`watch --s3` against moto's server: export objects appear over time (also with keys that sort before ones
already processed) and each is processed exactly once, across restarts."""

from __future__ import annotations

import gzip
import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from minerwatch.generate.findings import generate_findings
from minerwatch.live.s3poll import S3PollSource
from minerwatch.live.service import WatchOptions, WatchService
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE

from .conftest import Watch, client, detect_alerts, state_alerts, wait_for, watch_metric

RULE = load_rule(DEFAULT_RULE)
EAST = "exports/AWSLogs/111122223333/GuardDuty/us-east-1/2025/03/03/"
WEST = "exports/AWSLogs/111122223333/GuardDuty/us-west-2/2025/03/03/"


def _put(s3: Any, bucket: str, key: str, findings: list[dict[str, Any]]) -> None:
    body = gzip.compress(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def _next_second(s3: Any, bucket: str, key: str) -> None:
    """Wait until the clock is past the second of ``key``'s LastModified (S3 keeps whole seconds), so the next
    upload's LastModified is visibly later."""
    modified = s3.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp()
    wait_for(lambda: time.time() >= modified + 1.0, 10, interval=0.05, what="the next second")


def _chunks(findings: list[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    ordered = sorted(findings, key=lambda f: (f["updatedAt"], f["id"]))  # an export object covers a time span
    size = -(-len(ordered) // n)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


class Running:
    def __init__(self, source: S3PollSource, state: Path) -> None:
        self.service = WatchService(RULE, source, WatchOptions(state=str(state), idle_timeout=0.1))
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.service.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def scans_after(self, n: int) -> None:
        """Wait until ``n`` more complete listings of the bucket have been done and their objects handled."""
        start = self.service.metrics.scans or 0
        wait_for(lambda: (self.service.metrics.scans or 0) >= start + n, 30, what=f"{n} more scans")

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_new_objects_are_processed_once_each_across_restarts(tmp_path: Path, aws_env: dict[str, str]) -> None:
    s3 = client("s3", aws_env["AWS_ENDPOINT_URL"])
    bucket = f"gd-export-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    findings = list(generate_findings(900, 6, crypto_ratio=0.1))
    parts = _chunks(findings, 6)
    state, url = tmp_path / "s.db", f"s3://{bucket}/exports/"
    # 1. Two objects of one region.
    _put(s3, bucket, EAST + "b-0001.jsonl.gz", parts[0])
    _put(s3, bucket, EAST + "d-0002.jsonl.gz", parts[1])
    source = S3PollSource(url, interval=0.2)
    run = Running(source, state)
    wait_for(lambda: run.service.metrics.records == len(parts[0]) + len(parts[1]), 30, what="the first objects")
    # 2. A later object whose name sorts *before* those already read, and one in another region's folder.
    _next_second(s3, bucket, EAST + "d-0002.jsonl.gz")  # keep the upload order visible in LastModified
    _put(s3, bucket, EAST + "a-0003.jsonl.gz", parts[2])
    _next_second(s3, bucket, EAST + "a-0003.jsonl.gz")
    _put(s3, bucket, WEST + "c-0004.jsonl.gz", parts[3])
    total = sum(len(p) for p in parts[:4])
    wait_for(lambda: run.service.metrics.records == total, 30, what="the out-of-order and the other region's object")
    run.scans_after(2)  # two more listings: nothing is read twice
    assert run.service.metrics.records == total and source.objects == 4
    run.finish()

    # 3. Stopped; two more objects arrive; the CLI picks up only those.
    _next_second(s3, bucket, WEST + "c-0004.jsonl.gz")
    _put(s3, bucket, WEST + "0-0005.jsonl.gz", parts[4])
    _next_second(s3, bucket, WEST + "0-0005.jsonl.gz")
    _put(s3, bucket, EAST + "z-0006.jsonl.gz", parts[5])
    stats = tmp_path / "stats.json"
    watch = Watch(["--s3", url, "--state", str(state), "--poll-interval", "0.2", "--quiet", "--http", "0",
                   "--stats-json", str(stats)], aws_env, tmp_path)  # fmt: skip
    try:
        base = watch.http_base()
        expect = len(parts[4]) + len(parts[5])
        wait_for(lambda: watch_metric(base, "records_total") >= expect, 60, what="the two new objects")
        scans = watch_metric(base, "source_scans_total")
        wait_for(lambda: watch_metric(base, "source_scans_total") >= scans + 2, 60, what="two more listings")
        assert watch_metric(base, "records_total") == expect  # nothing else is read
    finally:
        assert watch.terminate() == 0, watch.stderr()
    done = json.loads(stats.read_text())
    assert done["records_read"] == len(parts[4]) + len(parts[5]), watch.stderr()

    with sqlite3.connect(state) as db:
        marks = {m for (m,) in db.execute("SELECT mark FROM live_marks WHERE source=?", (f"s3:{url}",))}
    assert len(marks) == 6  # every object marked (none has settled: they are all younger than a day)
    assert state_alerts(state) == detect_alerts(tmp_path, [f for p in parts for f in p])


def test_settled_keys_move_forward_and_drop_their_marks(tmp_path: Path, aws_env: dict[str, str]) -> None:
    s3 = client("s3", aws_env["AWS_ENDPOINT_URL"])
    bucket = f"gd-settle-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    parts = _chunks(list(generate_findings(200, 9, crypto_ratio=0.1)), 3)
    keys = [EAST + "k1.jsonl.gz", EAST + "k2.jsonl.gz", WEST + "k3.jsonl.gz"]
    for key, part in zip(keys, parts, strict=True):
        _put(s3, bucket, key, part)
    state, url = tmp_path / "s.db", f"s3://{bucket}/exports/"
    for key in keys:
        _next_second(s3, bucket, key)
    # settle=0: an object is settled as soon as it is processed and older than now.
    run = Running(S3PollSource(url, interval=0.2, settle=0.0), state)
    wait_for(lambda: run.service.metrics.records == 200, 30, what="the objects")
    run.scans_after(2)  # the next listing settles them
    run.finish()
    with sqlite3.connect(state) as db:
        pos = json.loads(db.execute("SELECT position FROM live_positions WHERE source=?", (f"s3:{url}",)).fetchone()[0])
        marks = db.execute("SELECT COUNT(*) FROM live_marks").fetchone()[0]
    streams = {EAST.rsplit("2025/", 1)[0]: keys[1], WEST.rsplit("2025/", 1)[0]: keys[2]}
    assert pos == {"after": streams}
    assert marks == 0
    # A restart lists from the settled keys: nothing is read again.
    again = Running(S3PollSource(url, interval=0.2, settle=0.0), state)
    again.scans_after(2)
    assert again.service.metrics.records == 0
    again.finish()
