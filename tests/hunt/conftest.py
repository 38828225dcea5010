"""Shared fixtures for the hunt tests: one generated compromise scenario and the hunting rule's IOCs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from minerwatch.enrich.iocs import IocSet, default_for_rule
from minerwatch.generate.scenario import write_scenario
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import RULES_DIR

HUNT_RULE = RULES_DIR / "aws-ioc-hunt-crypto-mining.md"


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("hunt-scenario") / "s"
    write_scenario(root, seed=3, noise=2.0)
    return root, json.loads((root / "manifest.json").read_text())


@pytest.fixture(scope="session")
def hunt_iocs() -> IocSet:
    return default_for_rule(load_rule(HUNT_RULE))
