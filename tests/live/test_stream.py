"""`watch -` and `watch --follow FILE`: the detect semantics on JSON Lines, rejects, positions, shutdown."""

from __future__ import annotations

import io
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.generate.findings import generate_findings
from minerwatch.live.feeds import FollowSource, LineSplitter, StdinSource
from minerwatch.live.service import WatchOptions, WatchService
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE

from .conftest import (
    Watch,
    detect_alerts,
    run_cli,
    state_alerts,
    wait_for,
    watch_metric,
    write_jsonl,
)

RULE = load_rule(DEFAULT_RULE)


def _lines(findings: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(f) + b"\n" for f in findings)


@pytest.fixture(scope="module")
def findings() -> list[dict[str, Any]]:
    # Delivery order: updatedAt plus 5 s to 5 min of delay, so rows of one instance arrive out of order.
    return list(generate_findings(3000, 1, crypto_ratio=0.05))


def test_stdin_in_arrival_order_is_detect_streaming_and_with_a_window_is_the_backtest(
    tmp_path: Path, findings: list[dict[str, Any]]
) -> None:
    data = _lines(findings)
    streamed_state = tmp_path / "detect-stream.db"
    assert run_cli(["detect", "-", "--state", str(streamed_state)], stdin=data).returncode == 0
    streamed = state_alerts(streamed_state)
    backtest = detect_alerts(tmp_path, findings)
    # The data is one where arrival order matters: a late row moved an alert's start, so its id differs.
    assert {a["alert_id"] for a in streamed} != {a["alert_id"] for a in backtest}

    arrival = tmp_path / "arrival.db"
    res = run_cli(["watch", "-", "--state", str(arrival)], stdin=data)
    assert res.returncode == 0, res.stderr.decode()
    assert state_alerts(arrival) == streamed
    printed = [json.loads(x) for x in res.stdout.decode().splitlines()]
    assert {a["alert_id"] for a in printed} == {a["alert_id"] for a in streamed}

    ordered = tmp_path / "ordered.db"
    res = run_cli(["watch", "-", "--state", str(ordered), "--reorder-window", "30", "--quiet"], stdin=data)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout == b""
    assert state_alerts(ordered) == backtest


def test_stdin_rejects_are_those_of_detect(tmp_path: Path, findings: list[dict[str, Any]]) -> None:
    good = findings[:200]
    bad = [
        b"{not json",
        b'{"id": "x", "type": "CryptoCurrency:EC2/BitcoinTool.B"}',  # no accountId, no updatedAt
        b'"CryptoCurrency"',
        b"\xff\xfe CryptoCurrency",
        b"[" * 2000 + b"CryptoCurrency",
        b'{"detail-type": "GuardDuty Finding", "source": "aws.guardduty", "detail": 5, "x": "CryptoCurrency"}',
        b'{"note": "no literal the rule needs: skipped unparsed, like detect does"}',
    ]
    data = _lines(good[:100]) + b"\n".join(bad) + b"\n" + _lines(good[100:])
    out: dict[str, list[dict[str, Any]]] = {}
    for cmd in ("detect", "watch"):
        rejects = tmp_path / f"{cmd}-rejects.jsonl"
        res = run_cli([cmd, "-", "--state", str(tmp_path / f"{cmd}.db"), "--rejects", str(rejects)], stdin=data)
        assert res.returncode == 0, res.stderr.decode()
        out[cmd] = [{k: v for k, v in json.loads(x).items() if k != "run_id"} for x in rejects.read_text().splitlines()]
    assert len(out["watch"]) == len(bad) - 1
    assert out["watch"] == out["detect"]
    assert [r["line"] for r in out["watch"]] == list(range(101, 100 + len(bad)))
    assert state_alerts(tmp_path / "watch.db") == state_alerts(tmp_path / "detect.db")


def test_sigterm_with_stdin_still_open_exits_cleanly(tmp_path: Path, findings: list[dict[str, Any]]) -> None:
    state = tmp_path / "s.db"
    watch = Watch(["-", "--state", str(state), "--quiet", "--http", "0"], dict(os.environ), tmp_path,
                  stdin=subprocess.PIPE)  # fmt: skip
    proc = watch.proc
    assert proc.stdin is not None
    proc.stdin.write(_lines(findings[:1500]))
    proc.stdin.flush()
    base = watch.http_base()
    wait_for(lambda: watch_metric(base, "records_total") == 1500, 60, what="the lines written so far")
    assert watch.terminate(30) == 0, watch.stderr()
    assert "records read 1,500" in watch.stderr()
    proc.stdin.close()
    assert state_alerts(state) == detect_alerts_stream(tmp_path, findings[:1500])


def detect_alerts_stream(tmp_path: Path, findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    state = tmp_path / "stream-ref.db"
    assert run_cli(["detect", "-", "--state", str(state)], stdin=_lines(findings)).returncode == 0
    return state_alerts(state)


# -- following a file -------------------------------------------------------------------------------------------


class Running:
    """A WatchService in a thread, stopped like SIGTERM does."""

    def __init__(self, source: Any, state: Path, **kw: Any) -> None:
        self.service = WatchService(RULE, source, WatchOptions(state=str(state), idle_timeout=0.2, **kw))
        self.stop = threading.Event()
        self.result: Any = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.service.run(self.stop)

    def finish(self) -> Any:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.result


def test_follow_picks_up_appended_lines_and_resumes_after_a_restart(
    tmp_path: Path, findings: list[dict[str, Any]]
) -> None:
    path, state = tmp_path / "live.jsonl", tmp_path / "s.db"
    part1, part2, part3 = findings[:1000], findings[1000:2000], findings[2000:]
    path.write_bytes(_lines(part1)[:-700])  # the last line is still being written
    run = Running(FollowSource(str(path)), state)
    wait_for(lambda: run.service.metrics.records >= 999, 30, what="the complete lines")
    assert run.service.metrics.records == 999
    with path.open("ab") as f:
        f.write(_lines(part1)[-700:] + _lines(part2))
    wait_for(lambda: run.service.metrics.records == 2000, 30, what="appended lines")
    stats = run.finish()
    assert stats.records_read == 2000
    with path.open("ab") as f:
        f.write(_lines(part3))
    again = Running(FollowSource(str(path)), state)
    wait_for(lambda: again.service.metrics.records == len(part3), 30, what="only the new lines")
    polls = again.service.metrics.polls
    wait_for(lambda: again.service.metrics.polls >= polls + 2, 30, what="two more reads of the file")
    assert again.finish().records_read == len(part3)
    assert state_alerts(state) == detect_alerts_stream(tmp_path, findings)


def test_follow_rereads_a_truncated_file_and_follows_a_rotated_one(
    tmp_path: Path, findings: list[dict[str, Any]]
) -> None:
    path, state = tmp_path / "live.jsonl", tmp_path / "s.db"
    write_jsonl(path, findings[:300])
    run = Running(FollowSource(str(path)), state)
    wait_for(lambda: run.service.metrics.records == 300, 30, what="the first lines")
    rotated = tmp_path / "live.jsonl.1"
    os.rename(path, rotated)
    with rotated.open("ab") as f:
        f.write(orjson.dumps(findings[300]))  # written to the old file after the rename, without a newline
    write_jsonl(path, findings[301:600])
    wait_for(lambda: run.service.metrics.records == 600, 30, what="the rest of the old file and the new one")
    path.write_bytes(_lines(findings[600:650]))  # truncated in place and rewritten, shorter
    wait_for(lambda: run.service.metrics.records == 650, 30, what="the truncated file read again")
    run.finish()
    assert state_alerts(state) == detect_alerts_stream(tmp_path, findings[:650])


def test_line_splitter_numbers_lines_and_measures_long_ones() -> None:
    split = LineSplitter(max_bytes=10)
    got = list(split.feed(b"ab\ncd")) + list(split.feed(b"e\n" + b"x" * 25)) + list(split.feed(b"yy\nz"))
    assert got == [(1, b"ab"), (2, b"cde"), (3, 27)]
    assert split.offset == len(b"ab\ncde\n") + 28
    assert list(split.tail()) == [(4, b"z")]


def test_stdin_source_in_process_reaches_eof(tmp_path: Path, findings: list[dict[str, Any]]) -> None:
    source = StdinSource(io.BytesIO(_lines(findings[:500])))
    service = WatchService(RULE, source, WatchOptions(state=str(tmp_path / "s.db")))
    stats = service.run(threading.Event())
    assert stats.records_read == 500 and source.exhausted
    assert service.metrics.records == 500
    assert service.metrics.findings + service.metrics.prefiltered == 500


def test_follow_through_the_cli(tmp_path: Path, findings: list[dict[str, Any]]) -> None:
    path, state = write_jsonl(tmp_path / "f.jsonl", findings[:500]), tmp_path / "s.db"
    watch = Watch(["--follow", str(path), "--state", str(state), "--http", "0", "--quiet"], dict(os.environ), tmp_path)
    try:
        base = watch.http_base()
        wait_for(lambda: watch_metric(base, "records_total") == 500, 60, what="the file's lines")
        with path.open("ab") as f:
            f.write(_lines(findings[500:800]))
        wait_for(lambda: watch_metric(base, "records_total") == 800, 60, what="the appended lines")
    finally:
        assert watch.terminate() == 0, watch.stderr()
    assert state_alerts(state) == detect_alerts_stream(tmp_path, findings[:800])
