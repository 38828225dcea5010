"""Fixture events of the shipped rules: present, well-formed GuardDuty findings, and expectations that agree
with the documented semantics (where-clause, sample suppression, allowlist, throttle window).

The expectations are recomputed here with a small independent reference of the shipped rules' where-clauses
and of DESIGN §6 throttling; the engine's own replay of these fixtures is tested with the engine.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from minerwatch.catalog.finding_types import crypto_mining_types
from minerwatch.rules import Rule, RuleTest, load_rule

RULES = Path(__file__).resolve().parents[2] / "minerwatch" / "data" / "rules"
# Detection rules over GuardDuty findings; hunting rules over other tables replay through the hunt (tests/hunt).
SHIPPED = [p for p in sorted(RULES.glob("*.md")) if load_rule(p).table == "cloud.aws.guardduty"]
CASES = [(path, test) for path in SHIPPED for test in load_rule(path).tests]
FINDING_KEYS = {
    "schemaVersion", "accountId", "region", "partition", "id", "arn", "type", "resource", "service",
    "severity", "createdAt", "updatedAt", "title", "description",
}


def _get(doc: Any, dotted: str) -> Any:
    for segment in dotted.split("."):
        if not isinstance(doc, dict):
            return None
        doc = next((v for k, v in doc.items() if k.lower() == segment.lower()), None)
    return doc


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _eventdate(f: dict[str, Any]) -> datetime:
    return datetime.fromisoformat((f.get("updatedAt") or f["createdAt"]).replace("Z", "+00:00"))


def _is_sample(f: dict[str, Any]) -> bool:
    return _get(f, "service.additionalInfo.sample") is True


def _seed_where(f: dict[str, Any]) -> bool:
    t, sev = f["type"], f["severity"]
    # SQL precedence: like OR = OR (= AND severity >= 7)
    return "CryptoCurrency" in t or t == "CryptoCurrency:EC2/BitcoinTool.B!DNS" or (
        t == "CryptoCurrency:EC2/BitcoinTool.B" and sev >= 7
    )


def _extended_where(f: dict[str, Any]) -> bool:
    return f["type"] in crypto_mining_types()


def _columns(f: dict[str, Any]) -> dict[str, Any]:
    resource_id = next(
        v
        for v in (
            _get(f, "resource.instanceDetails.instanceId"),
            _get(f, "resource.lambdaDetails.functionArn"),
            _get(f, "resource.eksClusterDetails.arn"),
            _get(f, "resource.ecsClusterDetails.arn"),
            _get(f, "resource.containerDetails.id"),
            _get(f, "resource.resourceType"),
            f["arn"],
        )
        if v is not None
    )
    return {
        "accountid": f["accountId"],
        "instance_id": _get(f, "resource.instanceDetails.instanceId"),
        "resource_id": resource_id,
        "tags": _get(f, "resource.instanceDetails.tags"),
    }


WHERE: dict[str, Callable[[dict[str, Any]], bool]] = {
    "aws-guardduty-crypto-mining": _seed_where,
    "aws-guardduty-crypto-mining-extended": _extended_where,
}


def _allowlisted(cols: dict[str, Any], entries: list[dict[str, Any]], now: datetime) -> bool:
    for entry in entries:
        expires = entry.get("expires")
        if expires is not None and expires.replace(tzinfo=expires.tzinfo or UTC) <= now:
            continue
        ok = True
        for column, want in entry.items():
            if column in ("reason", "expires"):
                continue
            if column == "tags":
                have = {t["key"]: t["value"] for t in cols["tags"] or []}
                ok = ok and all(have.get(k) == str(v) for k, v in want.items())
            else:
                ok = ok and cols[column] in (want if isinstance(want, list) else [want])
        if ok:
            return True
    return False


def _reference(rule: Rule, test: RuleTest) -> tuple[int, int]:
    """(matches, alerts) of a fixture under the documented semantics."""
    seen: set[tuple[str, str]] = set()
    findings = []
    for f in _records(test.fixture_path(rule.path)):
        delivery = (f["id"], f.get("updatedAt") or f["createdAt"])
        if delivery not in seen:
            seen.add(delivery)
            findings.append(f)
    matched = [f for f in findings if WHERE[rule.id](f)]
    entries: list[dict[str, Any]] = []
    allowlist = test.allowlist_path(rule.path)
    if allowlist is not None:
        entries = yaml.safe_load(allowlist.read_text())
    now = datetime.now(UTC)
    kept = [
        f for f in matched if not _is_sample(f) and not _allowlisted(_columns(f), entries, now)
    ]
    window = timedelta(seconds=rule.throttle.window_seconds)
    starts: dict[tuple[Any, ...], list[datetime]] = defaultdict(list)
    for f in sorted(kept, key=lambda f: (_eventdate(f), f["id"])):
        cols = _columns(f)
        key = tuple(cols[k] for k in rule.throttle.key)
        t = _eventdate(f)
        if not any(s <= t < s + window for s in starts[key]):
            starts[key].append(t)
    return len(matched), sum(len(v) for v in starts.values())


@pytest.mark.parametrize(("rule_path", "test"), CASES, ids=[f"{p.stem}::{t.name}" for p, t in CASES])
def test_fixture_expectations_follow_the_semantics(rule_path: Path, test: RuleTest) -> None:
    rule = load_rule(rule_path)
    assert _reference(rule, test) == (test.expect_matches, test.expect_alerts)


@pytest.mark.parametrize(("rule_path", "test"), CASES, ids=[f"{p.stem}::{t.name}" for p, t in CASES])
def test_fixture_files_are_guardduty_findings(rule_path: Path, test: RuleTest) -> None:
    path = test.fixture_path(rule_path)
    assert path.is_file()
    assert path.parent.name == rule_path.stem  # fixtures/<rule-id>/<name>.jsonl
    records = _records(path)
    assert records
    for f in records:
        assert FINDING_KEYS <= set(f)
        assert all(k[0].islower() for k in f), "camelCase wire names, not the CLI's PascalCase"
        assert f["arn"] == (
            f"arn:aws:guardduty:{f['region']}:{f['accountId']}:detector/"
            f"{f['service']['detectorId']}/finding/{f['id']}"
        )
        assert _eventdate(f) >= datetime.fromisoformat(f["createdAt"].replace("Z", "+00:00"))
        assert isinstance(f["severity"], int | float)
        assert f["resource"]["resourceType"]
        assert f["service"]["serviceName"] == "guardduty"
        # only the sample case carries AWS-generated sample findings
        assert _is_sample(f) == ("sample" in test.name)


def test_sample_cases_use_the_real_records_verbatim(samples: Path) -> None:
    source = samples / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"
    real = [line for line in source.read_text().splitlines() if line.strip()]
    sample_cases = [(p, t) for p, t in CASES if "sample" in t.name]
    assert len(sample_cases) == len(SHIPPED)
    for rule_path, test in sample_cases:
        lines = [line for line in test.fixture_path(rule_path).read_text().splitlines() if line.strip()]
        assert lines == real


def test_every_fixture_file_is_used() -> None:
    used = {test.fixture_path(p).resolve() for p, test in CASES}
    used |= {a.resolve() for p, test in CASES if (a := test.allowlist_path(p)) is not None}
    rule_ids = {load_rule(p).id for p in SHIPPED}
    fixtures = RULES / "fixtures"
    on_disk = {f.resolve() for f in fixtures.rglob("*") if f.is_file() and f.relative_to(fixtures).parts[0] in rule_ids}
    assert on_disk == used


@pytest.mark.parametrize(("rule_path", "test"), [(p, t) for p, t in CASES if t.allowlist])
def test_allowlists_are_well_formed(rule_path: Path, test: RuleTest) -> None:
    path = test.allowlist_path(rule_path)
    assert path is not None
    entries = yaml.safe_load(path.read_text())
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert isinstance(entry.get("reason"), str) and entry["reason"]
        assert set(entry) - {"reason", "expires"}, "an entry must name at least one column"


def test_seed_cases_cover_the_brief() -> None:
    rule = load_rule(RULES / "aws-guardduty-crypto-mining.md")
    by_name = {t.name: (t.expect_matches, t.expect_alerts) for t in rule.tests}
    assert by_name["bitcointool-b-dns"] == (1, 1)
    assert by_name["bitcointool-b-low-severity"] == (1, 1)  # precedence: like ... or ... or (... and ...)
    assert by_name["bitcoin-domain-reputation-not-covered"] == (0, 0)
    assert by_name["burst-one-instance"] == (5, 1)
    assert by_name["recurrence-after-window"][1] == 2
    assert by_name["benign-types"] == (0, 0)
    assert by_name["aws-sample-findings"] == (1, 0)


def test_extended_cases_cover_lambda_eks_ecs() -> None:
    rule = load_rule(RULES / "aws-guardduty-crypto-mining-extended.md")
    kinds = set()
    for test in rule.tests:
        for f in _records(test.fixture_path(rule.path)):
            if _extended_where(f):
                kinds.add(f["resource"]["resourceType"])
    assert {"Lambda", "EKSCluster", "ECSCluster", "Instance", "Container"} <= kinds
