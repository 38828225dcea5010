"""Fixtures: canonical records built from the real GuardDuty samples."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from minerwatch.sources.guardduty import finding_to_record
from minerwatch.sources.records import Record

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "real" / "guardduty"


def sample_records() -> list[Record]:
    """Every finding of the GuardDuty sample files (the `{"findings": []}` line holds none)."""
    out: list[Record] = []
    for path in sorted(SAMPLES.glob("*.jsonl")):
        for n, line in enumerate(path.read_bytes().splitlines(), 1):
            doc = orjson.loads(line)
            if isinstance(doc, dict) and "id" in doc:
                out.append(finding_to_record(doc, str(path), n))
    return out


@pytest.fixture(scope="session")
def records() -> list[Record]:
    recs = sample_records()
    assert len(recs) == 11
    return recs
