"""Shared fixtures: the real public samples (tests/data/real), the verbatim seed rule (tests/data/seed) and the
headless browser (Debian's ``/usr/bin/chromium`` driven by Playwright; never a downloaded browser)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per test module. A missing browser fails the test: a browser test that did not run has not
    passed (``make test`` installs it with ./scripts/install-chromium.sh)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with ./scripts/install-chromium.sh (`make test` does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
