"""Shared fixtures: the real public samples (tests/data/real) and the verbatim seed rule (tests/data/seed)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
SEED = DATA / "seed" / "000_874a6878789f665b.txt"
SAMPLES = DATA / "real"


@pytest.fixture(scope="session")
def seed_path() -> Path:
    return SEED


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
