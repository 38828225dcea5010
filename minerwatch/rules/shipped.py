"""Where the shipped rule documents and bundled sample data live."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from minerwatch.errors import MinerWatchError

if TYPE_CHECKING:
    from minerwatch.rules.model import Rule

_PACKAGE = Path(__file__).resolve().parent.parent
RULES_DIR = _PACKAGE.parent / "rules"
SAMPLES_DIR = _PACKAGE / "data" / "samples"
DEFAULT_RULE = RULES_DIR / "aws-guardduty-crypto-mining.md"


def shipped_rules() -> list[Path]:
    return sorted(RULES_DIR.glob("*.md"))


def shipped_rule(rule_id: str | None) -> Rule | None:
    """The shipped rule with this id (a rule document that fails to load is skipped), or None."""
    from minerwatch.rules.loader import load_rule

    for path in shipped_rules():
        try:
            rule = load_rule(path)
        except MinerWatchError:
            continue
        if rule.id == rule_id:
            return rule
    return None
