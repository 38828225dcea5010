"""Stdin ("-"): records come out as lines arrive on a pipe; regular-file and gzip stdin work too."""

from __future__ import annotations

import gzip
import os
import select
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats, Record, Reject

from .conftest import Result

REPO = Path(__file__).resolve().parents[2]


def _fake_stdin(monkeypatch: pytest.MonkeyPatch, buffer: Any) -> None:
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=buffer))


def test_pipe_records_are_yielded_as_lines_arrive(
    monkeypatch: pytest.MonkeyPatch, real_lines: list[bytes]
) -> None:
    read_fd, write_fd = os.pipe()
    _fake_stdin(monkeypatch, open(read_fd, "rb"))  # closed in the finally below
    got: list[Record] = []
    arrived = [threading.Event() for _ in range(3)]
    waited: list[bool] = []

    def writer() -> None:
        # Each line is written only after the previous record came out: a reader that waits for a full
        # block (or for the end of input) would make these waits time out.
        for i in range(3):
            os.write(write_fd, real_lines[i] + b"\n")
            waited.append(arrived[i].wait(10))
        os.close(write_fd)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for rec in read_guardduty(["-"], on_reject=lambda r: None, stats=ReadStats()):
            got.append(rec)
            arrived[len(got) - 1].set()
    finally:
        for event in arrived:
            event.set()
        thread.join()
        sys.stdin.buffer.close()
    assert waited == [True, True, True]
    assert [(r.file, r.line) for r in got] == [("<stdin>", 1), ("<stdin>", 2), ("<stdin>", 3)]
    assert [r.doc for r in got] == [orjson.loads(x) for x in real_lines[:3]]


def test_stdin_regular_file_and_gzip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, real_lines: list[bytes], read: Callable[..., Result]
) -> None:
    plain = tmp_path / "in.jsonl"
    plain.write_bytes(b"\n".join(real_lines) + b"\n{bad\n")
    with open(plain, "rb") as f:
        _fake_stdin(monkeypatch, f)
        res = read(["-"])
    assert len(res.records) == 11 and [(r.file, r.line) for r in res.rejects] == [("<stdin>", 12)]

    read_fd, write_fd = os.pipe()
    with open(read_fd, "rb") as f:
        _fake_stdin(monkeypatch, f)
        os.write(write_fd, gzip.compress(b"\n".join(real_lines[:3])))
        os.close(write_fd)
        res = read(["-"])
    assert [r.line for r in res.records] == [1, 2, 3] and res.rejects == []


def test_real_stdin_of_a_process_streams(real_lines: list[bytes]) -> None:
    child = textwrap.dedent(
        """
        import sys
        from minerwatch.sources.guardduty import read_guardduty
        from minerwatch.sources.records import ReadStats
        def on_reject(r):
            print("reject", r.line, flush=True)
        for rec in read_guardduty(["-"], on_reject=on_reject, stats=ReadStats()):
            print(rec.line, rec.flat["id"], flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for i, line in enumerate(real_lines[:2] + [b"[[[", real_lines[2]]):
            proc.stdin.write(line + b"\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, f"no output for line {i + 1} while stdin stays open"
            out = proc.stdout.readline().decode().split()
            expected = ["reject", str(i + 1)] if line == b"[[[" else [str(i + 1), orjson.loads(line)["id"]]
            assert out == expected
    finally:
        proc.stdin.close()
        proc.wait(20)
    assert proc.returncode == 0


def test_stdin_rejects_name_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b'\n{"id": "x", "type": "t", "accountId": "1"}\n')
    os.close(write_fd)
    rejects: list[Reject] = []
    with open(read_fd, "rb") as f:
        _fake_stdin(monkeypatch, f)
        assert list(read_guardduty(["-"], on_reject=rejects.append, stats=ReadStats())) == []
    assert [(r.file, r.line, r.reason) for r in rejects] == [
        ("<stdin>", 2, "not a GuardDuty finding: missing field 'updatedAt' and 'createdAt'")
    ]
