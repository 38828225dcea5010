"""The rule documents shipped under rules/: the seed copy and the extended crypto-mining rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from botocore.loaders import create_loader

from minerwatch.catalog.finding_types import crypto_mining_types
from minerwatch.lang.parser import parse_query
from minerwatch.rules import Rule, load_rule

RULES = Path(__file__).resolve().parents[2] / "minerwatch" / "data" / "rules"
SEED_COPY = RULES / "aws-guardduty-crypto-mining.md"
EXTENDED = RULES / "aws-guardduty-crypto-mining-extended.md"
SHIPPED = sorted(RULES.glob("*.md"))
GUARDDUTY_RULES = [p for p in SHIPPED if load_rule(p).table == "cloud.aws.guardduty"]


@pytest.fixture(scope="module")
def guardduty_shapes() -> dict[str, Any]:
    model = create_loader().load_service_model("guardduty", "service-2")
    return model["shapes"]


def _finding_path_exists(shapes: dict[str, Any], dotted: str) -> bool:
    """Walk a dotted camelCase path from the Finding shape by wire names (case-insensitive, like queries)."""
    shape = shapes["Finding"]
    for segment in dotted.split("."):
        members = shape.get("members")
        if members is None:
            return False
        wire = {m.get("locationName", name).lower(): m["shape"] for name, m in members.items()}
        target = wire.get(segment.lower())
        if target is None:
            return False
        shape = shapes[target]
    return True


def test_shipped_rule_files() -> None:
    assert [p.name for p in SHIPPED] == [
        "aws-guardduty-crypto-mining-extended.md",
        "aws-guardduty-crypto-mining.md",
        "aws-ioc-hunt-crypto-mining.md",
    ]


def test_seed_copy_is_the_seed_plus_tests(seed_path: Path) -> None:
    seed_text = seed_path.read_text()
    copy_text = SEED_COPY.read_text()
    assert copy_text.startswith(seed_text)
    assert re.findall(r"^## (.+)$", copy_text[len(seed_text) :], re.MULTILINE) == ["Lint Acknowledgements", "Tests"]
    seed, copy = load_rule(seed_path), load_rule(SEED_COPY)
    assert copy.id == "aws-guardduty-crypto-mining"
    assert copy.query == seed.query
    assert copy.query_line == seed.query_line
    assert copy.name == seed.name
    assert copy.throttle == seed.throttle
    assert copy.iocs == seed.iocs
    assert copy.to_json()["recommended_actions"] == seed.to_json()["recommended_actions"]
    assert len(copy.tests) >= 8


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_rules_load_cleanly(path: Path) -> None:
    rule = load_rule(path)
    # The only warning allowed is the seed's own tactic naming (TA0042), kept verbatim.
    assert [w.message for w in rule.warnings if "TA0042" not in w.message] == []
    assert rule.tests
    query = parse_query(rule.query, rule.path, rule.query_line - 1)
    assert query.table == rule.table


@pytest.mark.parametrize("path", GUARDDUTY_RULES, ids=lambda p: p.stem)
def test_query_paths_exist_in_guardduty_model(path: Path, guardduty_shapes: dict[str, Any]) -> None:
    rule = load_rule(path)
    paths = set(re.findall(r"\b(?:resource|service)(?:\.[A-Za-z0-9]+)+", rule.query))
    assert paths
    missing = sorted(p for p in paths if not _finding_path_exists(guardduty_shapes, p))
    assert missing == []


def test_path_checker_rejects_wrong_case_free_names(guardduty_shapes: dict[str, Any]) -> None:
    assert _finding_path_exists(guardduty_shapes, "resource.lambdaDetails.functionArn")
    assert not _finding_path_exists(guardduty_shapes, "resource.lambdaDetails.functionArns")
    assert not _finding_path_exists(guardduty_shapes, "resource.ecsDetails.name")


@pytest.fixture(scope="module")
def extended() -> Rule:
    return load_rule(EXTENDED)


def test_extended_covers_the_eight_crypto_types(extended: Rule) -> None:
    types = crypto_mining_types()
    assert len(types) == 8
    for finding_type in types:
        assert f'"{finding_type}"' in extended.query, finding_type
    # explicit parentheses around each type group: no and/or precedence to get wrong
    where = extended.query.split("select")[0]
    assert " and " not in where
    assert where.count("(type in (") == 2


def test_extended_keys_on_resource(extended: Rule) -> None:
    assert extended.id == "aws-guardduty-crypto-mining-extended"
    assert (extended.throttle.count, extended.throttle.key, extended.throttle.window_seconds) == (
        1,
        ["accountid", "resource_id"],
        7200,
    )
    assert extended.query.rstrip().endswith("group by accountid, resource_id, type")
    coalesce = re.search(r"coalesce\((.*?)\) as resource_id", extended.query, re.DOTALL)
    assert coalesce is not None
    args = [a.strip() for a in coalesce.group(1).split(",")]
    assert args[0] == "resource.instanceDetails.instanceId"
    assert args[-1] == "arn"  # every finding has an ARN, so resource_id is never null
    assert "resource.lambdaDetails.functionArn" in args
    assert extended.severity == "critical"
    assert extended.priority == "P1"
    assert [t.id for t in extended.mitre.tactics] == ["TA0040"]
    assert 14444 in extended.iocs.ports
