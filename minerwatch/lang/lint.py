"""Semantic warnings about a parsed query. Errors are raised by the parser and binder; lint only warns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from minerwatch.catalog.tables import GUARDDUTY
from minerwatch.lang.ast import (
    AGGREGATES,
    BinOp,
    Expr,
    Func,
    In,
    IsNull,
    Like,
    Literal,
    Not,
    Path,
    Query,
    contains_aggregate,
    leftmost,
    to_text,
    walk,
)
from minerwatch.lang.like import like_match
from minerwatch.lang.tokens import Pos

GUARDDUTY_TABLE = GUARDDUTY.name
_CRYPTO_HINTS = ("crypto", "bitcoin", "miner", "mining")


@dataclass(frozen=True)
class LintWarning:
    code: str
    message: str
    pos: Pos

    def format(self, file: str | None, source_line: str | None = None) -> str:
        out = f"{file or '<query>'}:{self.pos.line}:{self.pos.col}: warning[{self.code}]: {self.message}"
        if source_line is not None:
            out += f"\n    {source_line}\n    {' ' * (self.pos.col - 1)}^"
        return out


def lint_query(query: Query, crypto_types: Iterable[str] = ()) -> list[LintWarning]:
    warnings: list[LintWarning] = []
    if query.where is not None:
        warnings += _mixed_and_or(query.where)
        warnings += _null_comparisons(query.where)
        if query.table == GUARDDUTY_TABLE and _targets_crypto(query.where):
            warnings += _unmatched_types(query.where, crypto_types)
    if query.group_by is not None:
        warnings += _ungrouped(query)
    return sorted(warnings, key=lambda w: (w.pos.line, w.pos.col))


def _mixed_and_or(where: Expr) -> list[LintWarning]:
    for node in walk(where):
        if isinstance(node, BinOp) and node.op == "or":
            for child in (node.left, node.right):
                if isinstance(child, BinOp) and child.op == "and" and not child.parenthesized:
                    return [
                        LintWarning(
                            "precedence",
                            "'and' and 'or' mixed without parentheses; 'and' binds tighter, so this reads as: "
                            + to_text(where),
                            child.pos,
                        )
                    ]
    return []


def _null_comparisons(where: Expr) -> list[LintWarning]:
    return [
        LintWarning("null-compare", f"'{node.op} null' is never true; use 'is null' / 'is not null'", node.pos)
        for node in walk(where)
        if isinstance(node, BinOp)
        and node.op in ("=", "!=")
        and any(isinstance(s, Literal) and s.value is None for s in (node.left, node.right))
    ]


def _ungrouped(query: Query) -> list[LintWarning]:
    assert query.group_by is not None
    keys = {to_text(k).lower() for k in query.group_by.keys}
    loose = [
        item.name
        for item in query.select or ()
        if not contains_aggregate(item.expr)
        and item.name.lower() not in keys
        and to_text(item.expr).lower() not in keys
    ]
    if not loose:
        return []
    return [
        LintWarning(
            "ungrouped",
            f"{len(loose)} selected column(s) are neither group keys nor aggregates: {', '.join(loose)}; "
            "each group row takes their values from the group's latest event (by eventdate)",
            query.group_by.pos,
        )
    ]


def _targets_crypto(where: Expr) -> bool:
    for node in walk(where):
        text = node.pattern if isinstance(node, Like) else node.value if isinstance(node, Literal) else None
        if isinstance(text, str) and any(h in text.lower() for h in _CRYPTO_HINTS):
            return True
    return False


def _unmatched_types(where: Expr, crypto_types: Iterable[str]) -> list[LintWarning]:
    never = [t for t in crypto_types if _eval_with_type(where, t) is False]
    if not never:
        return []
    return [
        LintWarning(
            "unmatched-types",
            "the where-clause can never match these crypto-mining finding types: " + ", ".join(never),
            leftmost(where),
        )
    ]


def _is_type_column(expr: Expr) -> bool:
    return isinstance(expr, Path) and len(expr.parts) == 1 and expr.parts[0].lower() == "type"


def _eval_with_type(expr: Expr, finding_type: str) -> bool | None:
    """Kleene evaluation with ``type`` fixed and every other condition unknown (None)."""
    match expr:
        case BinOp(op="and", left=left, right=right):
            a, b = _eval_with_type(left, finding_type), _eval_with_type(right, finding_type)
            return False if a is False or b is False else (True if a and b else None)
        case BinOp(op="or", left=left, right=right):
            a, b = _eval_with_type(left, finding_type), _eval_with_type(right, finding_type)
            return True if a is True or b is True else (False if a is False and b is False else None)
        case Not(operand=o):
            v = _eval_with_type(o, finding_type)
            return None if v is None else not v
        case BinOp(op="=" | "!=" as op, left=left, right=right):
            for col, lit in ((left, right), (right, left)):
                if _is_type_column(col) and isinstance(lit, Literal) and isinstance(lit.value, str):
                    return (lit.value == finding_type) == (op == "=")
        case Like(operand=o, pattern=p, negated=neg) if _is_type_column(o):
            return like_match(finding_type, p) != neg
        case In(operand=o, items=items, negated=neg) if _is_type_column(o) and all(
            isinstance(i, Literal) and isinstance(i.value, str) for i in items
        ):
            return any(i.value == finding_type for i in items if isinstance(i, Literal)) != neg
        case IsNull(operand=o, negated=neg) if _is_type_column(o):
            return neg
    return None


__all__ = ["AGGREGATES", "Func", "LintWarning", "lint_query"]
