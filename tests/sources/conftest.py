"""Fixtures for the GuardDuty reader tests: the real sample findings and a reader that collects everything."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats, Record, Reject


@dataclass
class Result:
    records: list[Record]
    rejects: list[Reject]
    stats: ReadStats

    @property
    def ids(self) -> list[str]:
        return [r.flat["id"] for r in self.records]


@pytest.fixture(scope="session")
def gd_dir(samples: Path) -> Path:
    return samples / "guardduty"


@pytest.fixture(scope="session")
def real_lines(gd_dir: Path) -> list[bytes]:
    """Every line of the three GuardDuty sample files that holds a finding, verbatim, in a stable order."""
    out = []
    for path in sorted(gd_dir.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            if b'"accountId"' in line:
                out.append(line)
    assert len(out) == 11
    return out


@pytest.fixture(scope="session")
def real_findings(real_lines: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in real_lines]


@pytest.fixture
def read() -> Callable[..., Result]:
    def run(paths: Sequence[str | Path], **kwargs: Any) -> Result:
        rejects: list[Reject] = []
        stats = ReadStats()
        records = list(
            read_guardduty([str(p) for p in paths], on_reject=rejects.append, stats=stats, **kwargs)
        )
        assert stats.rejected == len(rejects)
        assert stats.accepted == len(records)
        return Result(records, rejects, stats)

    return run
