"""Where the shipped rule documents and bundled sample data live."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent
RULES_DIR = _PACKAGE.parent / "rules"
SAMPLES_DIR = _PACKAGE / "data" / "samples"
DEFAULT_RULE = RULES_DIR / "aws-guardduty-crypto-mining.md"


def shipped_rules() -> list[Path]:
    return sorted(RULES_DIR.glob("*.md"))
