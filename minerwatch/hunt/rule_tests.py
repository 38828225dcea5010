"""A hunting rule's tests: each ``## Tests`` fixture replayed through the hunt and its alerts.

The fixture is read as the rule's table says (``cloud.aws.vpcflow`` → flow logs, ``cloud.aws.route53resolver``
→ Resolver query logs, ``cloud.aws.guardduty`` → findings), swept for the rule's IOCs plus the bundled ones,
and the hits are placed into alerts in a throwaway state store. ``matches`` counts hit rows (one per entity
and indicator), ``alerts`` the alerts after throttling.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from minerwatch.alerting.rule_tests import RuleTestResult
from minerwatch.alerting.state import StateStore
from minerwatch.enrich.iocs import default_for_rule
from minerwatch.hunt.alerts import open_alerts
from minerwatch.hunt.sweep import HuntOptions, hunt
from minerwatch.rules.model import Rule

HUNT_TABLES = {
    "cloud.aws.vpcflow": "flow",
    "cloud.aws.route53resolver": "dns",
    "cloud.aws.guardduty": "findings",
}


def run_hunt_rule_tests(rule: Rule) -> list[RuleTestResult]:
    """Replay every fixture of ``rule`` (a hunting rule over one of :data:`HUNT_TABLES`)."""
    source = HUNT_TABLES.get(rule.table or "")
    if source is None:
        raise ValueError(f"rule {rule.id}: table {rule.table!r} cannot be hunted")
    iocs = default_for_rule(rule)
    results = []
    for test in rule.tests:
        fixture = str(test.fixture_path(rule.path))
        with tempfile.TemporaryDirectory(prefix="minerwatch-hunt-test-") as tmp:
            state = str(Path(tmp) / "state.db")
            result = hunt(iocs, HuntOptions(**{source: [fixture]}))
            alerts = open_alerts(result, rule, state, [fixture])
            store = StateStore(state)
            count = len(store.list_alerts(rule.id))
            store.close()
        rejected = sum(s.rejected for s in result.stats.sources().values())
        results.append(RuleTestResult(test, alerts.rows, count, rejected))
    return results
