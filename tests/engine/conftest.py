"""Fixtures: canonical records built from the real GuardDuty samples; ``linq_gen`` (strategies) importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Tests run with --import-mode=importlib: make the helper module beside this file importable.
sys.path.insert(0, str(Path(__file__).parent))

from linq_gen import sample_records  # noqa: E402

from minerwatch.sources.records import Record  # noqa: E402


@pytest.fixture(scope="session")
def records() -> list[Record]:
    recs = sample_records()
    assert len(recs) == 11
    return recs
