"""Files are read ahead by a helper thread, except in worker processes that leave no core free for it: the range
workers of ``detect`` and the file workers of the flow sweep, when there are as many as cores. There a byte range
that must come from the disk is still read ahead; one the page cache holds is not."""

from __future__ import annotations

import gzip
import os
import threading
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.enrich.iocs import IocSet
from minerwatch.generate.findings import generate_findings
from minerwatch.hunt.flows import sweep_local
from minerwatch.hunt.model import SourceStats
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE
from minerwatch.sources import inputs
from minerwatch.sources.records import ReadStats


def _helper_threads(blocks: Iterable[bytes]) -> set[str]:
    """The other threads alive while ``blocks`` are read."""
    names: set[str] = set()
    for _block in blocks:
        names |= {t.name for t in threading.enumerate() if t is not threading.current_thread()}
    return names


def _helper_threads_while_reading(path: Path) -> set[str]:
    opened = inputs.iter_inputs([str(path)], lambda *_: None, ReadStats())
    return _helper_threads(chunk for inp in opened for chunk in inp.chunks)


def test_files_are_read_in_the_consumers_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "_read_ahead", True)  # restored after the test, whatever it sets
    # Blocks of 4 KiB: the helper is still filling its queue while the first blocks are read.
    monkeypatch.setattr(inputs, "BLOCK_SIZE", 4096)
    monkeypatch.setattr(inputs, "_HANDOFF", 4096)
    path = tmp_path / "f.log.gz"
    line = b"2 111 eni-1 10.0.0.1 10.0.0.2 1 2 6 1 40 1700000000 1700000060 ACCEPT OK\n"
    path.write_bytes(gzip.compress(line * 2000))
    assert "minerwatch-read-ahead" in _helper_threads_while_reading(path)
    inputs.read_ahead_from_disk_only()
    assert "minerwatch-read-ahead" not in _helper_threads_while_reading(path)


def _evicted(path: Path) -> Path:
    """``path`` with its pages dropped from the page cache (it is written back first, so they can be)."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        # Checked at the last byte: a read that misses starts the kernel reading ahead from there, and the probes
        # under test start at the first.
        try:
            os.preadv(f.fileno(), [bytearray(1)], path.stat().st_size - 1, os.RWF_NOWAIT)
        except BlockingIOError:
            return path  # gone: reading it would wait for the disk
    pytest.skip("this file system keeps the file in memory")


def _helper_threads_while_reading_range(path: Path) -> set[str]:
    return _helper_threads(inputs.range_chunks(str(path), 0, path.stat().st_size, ReadStats()))


def test_a_range_is_read_ahead_only_when_it_must_come_from_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "_read_ahead", True)
    monkeypatch.setattr(inputs, "RANGE_BLOCK_SIZE", 4096)
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"id": "x"}\n' * 400_000)  # 4.8 MB: the 16 probes are far apart
    inputs.read_ahead_from_disk_only()
    assert "minerwatch-read-ahead" not in _helper_threads_while_reading_range(path)  # just written: in memory
    assert "minerwatch-read-ahead" in _helper_threads_while_reading_range(_evicted(path))


def test_the_cache_probe_sees_pages_leave_and_come_back(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(4 << 20))  # the 16 probes 256 KiB apart: one's read-ahead reaches no other
    size = path.stat().st_size
    with open(path, "rb") as f:
        assert inputs._cached(f.fileno(), 0, size)
        _evicted(path)
        assert not inputs._cached(f.fileno(), 0, size)
        f.read()  # read back in
        assert inputs._cached(f.fileno(), 0, size)
        assert inputs._cached(f.fileno(), size, size)  # an empty range has nothing to wait for


def test_workers_turn_it_off_only_when_they_fill_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(inputs, "end_with_parent", lambda parent: None)  # run here, in no worker
    for workers, off in ((4, True), (8, True), (2, False)):  # two cores free: the helper threads run there
        monkeypatch.setattr(inputs, "_read_ahead", True)
        inputs.worker_initializer(workers)()
        assert inputs._read_ahead is not off


def _refuse_read_ahead(blocks):  # stands in for inputs._ahead in the forked workers
    raise AssertionError("a worker read ahead with no core free")


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """A two-core machine on which reading ahead fails, in this process and in the workers it forks."""
    monkeypatch.setattr(inputs.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(inputs, "_ahead", _refuse_read_ahead)


def test_detect_range_workers_read_without_a_helper(tmp_path: Path, two_cores: None) -> None:
    data = tmp_path / "f.jsonl"
    findings = generate_findings(600, seed=4, crypto_ratio=0.2)
    data.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    opts = DetectOptions(state=str(tmp_path / "s.db"), workers=2, parallel_min_bytes=1)
    stats = detect(load_rule(DEFAULT_RULE), [str(data)], opts)
    assert stats.records_read == 600 and stats.matched > 0


def test_flow_workers_read_without_a_helper(tmp_path: Path, two_cores: None) -> None:
    line = "2 111111111111 eni-0aaa 10.0.0.1 1.2.3.4 51000 443 6 5 400 1700000000 1700000060 ACCEPT OK\n"
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.log.gz").write_bytes(gzip.compress(line.encode() * 50))
    stats = SourceStats()
    groups = sweep_local([str(tmp_path)], IocSet.of(ips=["1.2.3.4"], source="test"), stats, workers=2)
    assert stats.records == 150 and sum(g.flows for g in groups.values()) == 150
