"""Shared fixtures: paths to the real public samples and the seed rule document."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SEED = SHARED / "seeds" / "000_874a6878789f665b.txt"
SAMPLES = SHARED / "samples"


@pytest.fixture(scope="session")
def seed_path() -> Path:
    return SEED


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
