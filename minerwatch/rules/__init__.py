"""Rule documents (Markdown) to a typed ``Rule`` model; see ``loader`` for the mapping."""

from minerwatch.rules.loader import load_rule, parse_rule, parse_throttle, rule_id_for
from minerwatch.rules.model import (
    SEVERITIES,
    AlertConfig,
    FalsePositives,
    Iocs,
    Mitre,
    MitreRef,
    Rule,
    RuleTest,
    RuleWarning,
    Severity,
    Throttle,
)

__all__ = [
    "SEVERITIES",
    "AlertConfig",
    "FalsePositives",
    "Iocs",
    "Mitre",
    "MitreRef",
    "Rule",
    "RuleTest",
    "RuleWarning",
    "Severity",
    "Throttle",
    "load_rule",
    "parse_rule",
    "parse_throttle",
    "rule_id_for",
]
