"""Rule tests: every rule replays its own fixture events (the ``## Tests`` section) through a real run."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from minerwatch.alerting.allowlist import load_allowlist
from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.alerting.state import StateStore
from minerwatch.rules.model import Rule, RuleTest


@dataclass(frozen=True)
class RuleTestResult:
    test: RuleTest
    matches: int
    alerts: int
    rejected: int

    @property
    def ok(self) -> bool:
        return (
            self.matches == self.test.expect_matches and self.alerts == self.test.expect_alerts and not self.rejected
        )

    def format(self, file: str) -> str:
        where = f"{file}:{self.test.line}" if self.test.line else file
        verdict = "ok" if self.ok else "FAIL"
        detail = f"matches {self.matches} (expected {self.test.expect_matches}), alerts {self.alerts} " \
            f"(expected {self.test.expect_alerts})"
        if self.rejected:
            detail += f", {self.rejected} fixture record(s) rejected"
        return f"{where}: {verdict} {self.test.name}: {detail}"


def run_rule_tests(rule: Rule) -> list[RuleTestResult]:
    results = []
    for test in rule.tests:
        with tempfile.TemporaryDirectory(prefix="minerwatch-test-") as tmp:
            state = str(Path(tmp) / "state.db")
            allow_path = test.allowlist_path(rule.path)
            options = DetectOptions(
                state=state,
                allowlist=load_allowlist(allow_path) if allow_path else None,
                rejects=str(Path(tmp) / "rejects.jsonl"),
            )
            stats = detect(rule, [str(test.fixture_path(rule.path))], options)
            store = StateStore(state)
            alerts = len(store.list_alerts(rule.id))
            store.close()
        results.append(RuleTestResult(test, stats.matched, alerts, stats.rejected))
    return results
