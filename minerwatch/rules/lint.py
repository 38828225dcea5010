"""Lint a rule document or a ``.linq`` file: errors, warnings, and the warnings the document acknowledges.

A rule may acknowledge a warning it means to have (a deliberately narrow where-clause, columns taken from the
latest event) under ``## Lint Acknowledgements``, one ``- code: reason`` item each. An acknowledged warning is
not shown by ``lint`` or ``detect``; an acknowledgement that matches no warning is itself a warning, so a stale
one does not hide a later problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from minerwatch.catalog.finding_types import crypto_mining_types
from minerwatch.errors import MinerWatchError
from minerwatch.lang.lint import lint_query
from minerwatch.lang.parser import parse_query
from minerwatch.lang.tokens import Source
from minerwatch.rules.loader import load_rule
from minerwatch.rules.model import LintAck, Rule

UNUSED = "unused-acknowledgement"


@dataclass(frozen=True)
class LintItem:
    """One warning: ``text`` is the one-line form, ``detail`` adds the source line and a caret when known."""

    code: str | None
    text: str
    detail: str


@dataclass
class LintResult:
    errors: list[str] = field(default_factory=list)
    warnings: list[LintItem] = field(default_factory=list)
    """Warnings not acknowledged by the document."""
    acknowledged: list[tuple[LintItem, LintAck]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def lint_path(path: str | Path) -> LintResult:
    """Lint a rule document (.md/.txt, or a shipped rule's id) or a ``.linq`` query file."""
    path = Path(path)
    file = str(path)
    if path.suffix.lower() == ".linq":
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return LintResult(errors=[f"{file}: cannot read: {exc}"])
        return _lint_query_text(text, file, 0, [], [])
    try:
        rule = load_rule(path)
    except MinerWatchError as exc:
        return LintResult(errors=[exc.format()])
    return lint_rule(rule)


def lint_rule(rule: Rule) -> LintResult:
    """Lint a loaded rule: its document warnings and its query's, less the acknowledged ones."""
    file = rule.path or "<rule>"
    document = [LintItem(w.code, w.format(file), w.format(file)) for w in rule.warnings]
    return _lint_query_text(rule.query, file, rule.query_line - 1, document, rule.lint_acknowledgements)


def _lint_query_text(text: str, file: str, line_offset: int, found: list[LintItem], acks: list[LintAck]) -> LintResult:
    from minerwatch.compile.binder import bind  # binding catches unknown tables and bad grouping

    try:
        query = parse_query(text, file, line_offset)
        bind(query)
    except MinerWatchError as exc:
        return LintResult(errors=[exc.format()], warnings=found)
    source = Source(text, file, line_offset)
    for w in lint_query(query, crypto_mining_types()):
        found.append(LintItem(w.code, w.format(file), w.format(file, source.line_text(w.pos))))
    return _apply(found, acks, file)


def _apply(found: list[LintItem], acks: list[LintAck], file: str) -> LintResult:
    by_code = {a.code: a for a in acks}
    result = LintResult()
    used: set[str] = set()
    for item in found:
        ack = by_code.get(item.code) if item.code else None
        if ack is None:
            result.warnings.append(item)
        else:
            result.acknowledged.append((item, ack))
            used.add(ack.code)
    for ack in acks:
        if ack.code not in used:
            where = f"{file}:{ack.line}" if ack.line is not None else file
            text = f"{where}: warning[{UNUSED}]: '{ack.code}' is acknowledged but there is no such warning; remove it"
            result.warnings.append(LintItem(UNUSED, text, text))
    return result
