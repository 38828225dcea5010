"""Where the shipped rule documents and bundled sample data live: package data, found beside the package's code
so that an installed wheel works from any folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from minerwatch.errors import MinerWatchError

if TYPE_CHECKING:
    from minerwatch.rules.model import Rule

# Installed packages (wheel, sdist, editable) are plain folders, where importlib.resources gives this same path;
# it is not used here because every command imports this module, and with it zipfile and tempfile (15 ms of --help).
DATA_DIR = Path(__file__).parent.parent / "data"
RULES_DIR = DATA_DIR / "rules"
SAMPLES_DIR = DATA_DIR / "samples"
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


def resolve_rule_path(arg: str | Path) -> Path:
    """A rule argument as a path: an existing file as given, else a shipped rule named by its id or file stem."""
    path = Path(arg)
    if path.exists() or path.suffix or "/" in str(arg):
        return path
    for candidate in shipped_rules():
        if candidate.stem == str(arg):
            return candidate
    return path
