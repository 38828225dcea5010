"""Lint a rule document or a ``.linq`` query file: load and bind it, then the semantic warnings of
:mod:`minerwatch.lang.lint` (used by ``minerwatch lint`` and the console's rules page)."""

from __future__ import annotations

from pathlib import Path

from minerwatch.catalog.finding_types import crypto_mining_types
from minerwatch.errors import MinerWatchError
from minerwatch.lang.lint import lint_query
from minerwatch.lang.parser import parse_query
from minerwatch.lang.tokens import Source
from minerwatch.rules.loader import load_rule


def lint_file(path: Path) -> tuple[list[str], list[str]]:
    """Errors and warnings (formatted ``file:line:col``) for a rule document or a ``.linq`` file."""
    errors: list[str] = []
    warnings: list[str] = []
    file = str(path)
    try:
        if path.suffix.lower() == ".linq":
            text = path.read_text(encoding="utf-8")
            source = Source(text, file)
            query = parse_query(text, file)
        else:
            rule = load_rule(path)
            warnings += [w.format(file) for w in rule.warnings]
            source = Source(rule.query, file, rule.query_line - 1)
            query = parse_query(rule.query, file, rule.query_line - 1)
        from minerwatch.compile.binder import bind  # binding catches unknown tables and bad grouping

        bind(query)
    except MinerWatchError as exc:
        errors.append(exc.format())
        return errors, warnings
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{file}: cannot read: {exc}"], warnings
    for w in lint_query(query, crypto_mining_types()):
        warnings.append(w.format(file, source.line_text(w.pos)))
    return errors, warnings
