"""The query AST. Every node carries the position of its first token.

Nodes are frozen dataclasses so compiled artefacts can be cached by node identity and compared in tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from minerwatch.lang.tokens import Pos


@dataclass(frozen=True, slots=True)
class Node:
    pos: Pos = field(compare=False)


@dataclass(frozen=True, slots=True)
class Path(Node):
    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any
    """str, int, float, bool or None."""


@dataclass(frozen=True, slots=True)
class BinOp(Node):
    """Binary operator: ``and``/``or``, comparisons (= != < <= > >=) and arithmetic (+ - * /)."""

    op: str
    left: Expr
    right: Expr
    parenthesized: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Not(Node):
    operand: Expr


@dataclass(frozen=True, slots=True)
class Like(Node):
    operand: Expr
    pattern: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class In(Node):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class IsNull(Node):
    operand: Expr
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Func(Node):
    name: str
    """Lower-case function name."""
    args: tuple[Expr, ...]


Expr = Path | Literal | BinOp | Not | Like | In | IsNull | Func

LOGICAL = frozenset({"and", "or"})
COMPARISON = frozenset({"=", "!=", "<", "<=", ">", ">="})
ARITHMETIC = frozenset({"+", "-", "*", "/"})
AGGREGATES = frozenset({"count", "min", "max", "first", "last", "countdistinct", "sum", "avg"})
SCALAR_FUNCS = frozenset({"coalesce", "lower", "upper", "length"})


@dataclass(frozen=True, slots=True)
class SelectItem(Node):
    expr: Expr
    alias: str | None
    name: str
    """The output column name: the alias, else a bare path's last segment, else the expression text."""


@dataclass(frozen=True, slots=True)
class GroupBy(Node):
    keys: tuple[Expr, ...]
    every_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Query(Node):
    table: str
    where: Expr | None
    select: tuple[SelectItem, ...] | None
    group_by: GroupBy | None
    text: str = field(default="", compare=False)
    file: str | None = field(default=None, compare=False)

    def output_names(self) -> list[str]:
        return [item.name for item in self.select or ()]


def walk(node: Any):
    """Yield every expression node below (and including) ``node``, depth first."""
    stack = [node]
    while stack:
        cur = stack.pop()
        yield cur
        match cur:
            case BinOp(left=left, right=right):
                stack.extend((right, left))
            case Not(operand=o) | Like(operand=o) | IsNull(operand=o):
                stack.append(o)
            case In(operand=o, items=items):
                stack.extend(reversed(items))
                stack.append(o)
            case Func(args=args):
                stack.extend(reversed(args))


def leftmost(expr: Expr) -> Pos:
    """The position where an expression's text starts (a BinOp's own position is its operator)."""
    return min((n.pos for n in walk(expr)), key=lambda p: p.offset)


def contains_aggregate(expr: Expr) -> bool:
    return any(isinstance(n, Func) and n.name in AGGREGATES for n in walk(expr))


def to_text(expr: Expr) -> str:
    """Render an expression back to LINQ, fully parenthesised where grouping matters (used by lint)."""
    match expr:
        case Path(parts=parts):
            return ".".join(parts)
        case Literal(value=v):
            if v is None:
                return "null"
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, str):
                return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return repr(v)
        case BinOp(op=op, left=left, right=right):
            return f"({to_text(left)} {op} {to_text(right)})" if op in LOGICAL else (
                f"{to_text(left)} {op} {to_text(right)}"
            )
        case Not(operand=o):
            return f"not {to_text(o)}"
        case Like(operand=o, pattern=p, negated=neg):
            return f"{to_text(o)} {'not ' if neg else ''}like {to_text(Literal(expr.pos, p))}"
        case In(operand=o, items=items, negated=neg):
            return f"{to_text(o)} {'not ' if neg else ''}in ({', '.join(to_text(i) for i in items)})"
        case IsNull(operand=o, negated=neg):
            return f"{to_text(o)} is {'not ' if neg else ''}null"
        case Func(name=name, args=args):
            return f"{name}({', '.join(to_text(a) for a in args)})"
    raise TypeError(f"not an expression: {expr!r}")
