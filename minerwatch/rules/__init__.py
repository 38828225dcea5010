"""Rule documents (Markdown) to a typed ``Rule`` model; see ``loader`` for the mapping.

The names below are loaded on first use (PEP 562), so that importing a submodule such as
``minerwatch.rules.shipped`` does not load the rule model, the Markdown parser and the YAML parser.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_LOADER = ("load_rule", "parse_rule", "parse_throttle", "rule_id_for")


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = importlib.import_module("minerwatch.rules." + ("loader" if name in _LOADER else "model"))
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlertConfig",
    "FalsePositives",
    "Iocs",
    "Mitre",
    "MitreRef",
    "Rule",
    "RuleTest",
    "RuleWarning",
    "SEVERITIES",
    "Severity",
    "Throttle",
    "load_rule",
    "parse_rule",
    "parse_throttle",
    "rule_id_for",
]
