"""Raw-bytes prefilter: skip input lines that cannot satisfy the where-clause, before parsing them.

``required_literals`` derives byte strings such that a record's raw JSON line can only make the where-clause
TRUE if the line contains at least one of them:

- ``x = "lit"`` / ``x in ("a", "b")`` / ``x like "%lit%"`` on a string read from the record → a literal run of
  the string or pattern;
- ``a or b`` → both sides must give a set; the union;
- ``a and b`` → the more selective side (longest shortest literal);
- anything else (``not``, ``!=``, numbers, ``is null``, functions) → no constraint.

Only runs of characters that JSON writers never escape are used (``[A-Za-z0-9 :._!#@-]``; ``/`` may be written
``\\/``). Any character *may* be written as a ``\\uXXXX`` escape, so a line containing ``\\u`` is always let
through: the filter is exact for every valid JSON encoding of the record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from minerwatch.catalog.tables import GUARDDUTY
from minerwatch.compile.binder import (
    VT,
    BCmp,
    BCol,
    BDoc,
    BExpr,
    BIn,
    BLike,
    BLit,
    BLogic,
    BoundQuery,
    bind,
)
from minerwatch.lang.ast import Query
from minerwatch.lang.like import like_parts

MIN_LITERAL = 3
"""Shorter runs match nearly every line and only cost time."""
_SAFE_RUN = re.compile(r"[A-Za-z0-9 :._!#@-]+")
_RAW_STRING_TABLES = frozenset({GUARDDUTY.name})
"""Tables whose string flat columns are verbatim copies of document strings."""


def _best_run(text: str) -> str | None:
    runs = _SAFE_RUN.findall(text)
    best = max(runs, key=len, default="")
    return best if len(best) >= MIN_LITERAL else None


def _raw_string(e: BExpr, table: str) -> bool:
    """``e`` reads a string exactly as it is written in the record."""
    if isinstance(e, BDoc):
        return True
    return isinstance(e, BCol) and e.type is VT.STRING and table in _RAW_STRING_TABLES


def _eq_literal(c: BCmp, table: str) -> set[str] | None:
    if c.op != "=" or c.mode != "str":
        return None
    for side, other in ((c.left, c.right), (c.right, c.left)):
        if isinstance(other, BLit) and isinstance(other.value, str) and _raw_string(side, table):
            run = _best_run(other.value)
            return {run} if run else None
    return None


def _score(s: set[str]) -> tuple[int, int]:
    return (min(len(x) for x in s), -len(s))


def _required(e: BExpr | None, table: str) -> set[str] | None:
    if e is None:
        return None
    if isinstance(e, BLogic):
        left, right = _required(e.left, table), _required(e.right, table)
        if e.op == "or":
            return None if left is None or right is None else left | right
        if left is None or right is None:
            return left if right is None else right
        return left if _score(left) >= _score(right) else right
    if isinstance(e, BCmp):
        return _eq_literal(e, table)
    if isinstance(e, BLike) and not e.negated and _raw_string(e.operand, table):
        runs = [r for p in like_parts(e.pattern) if isinstance(p, str) and (r := _best_run(p))]
        return {max(runs, key=len)} if runs else None
    if isinstance(e, BIn) and not e.negated:
        out: set[str] = set()
        for c in e.cmps:
            got = _eq_literal(c, table)
            if got is None:
                return None
            out |= got
        return out or None
    return None


def _minimal(lits: set[str]) -> list[str]:
    """Drop literals that contain another one: a line holding the longer holds the shorter."""
    keep = [x for x in lits if not any(y != x and y in x for y in lits)]
    return sorted(keep)


def required_literals(query: Query | BoundQuery) -> list[bytes] | None:
    """Byte strings one of which every matching raw line contains, or None when no such set is known."""
    bound = query if isinstance(query, BoundQuery) else bind(query)
    lits = _required(bound.where, bound.table.name)
    if not lits:
        return None
    return [x.encode("utf-8") for x in _minimal(lits)]


ESCAPE = b"\\u"
"""Any character may be written as a ``\\uXXXX`` escape, so a line containing this may hold any literal."""


@dataclass(frozen=True, slots=True)
class Prefilter:
    """``line -> may match``: true when the raw line contains one of ``literals`` or :data:`ESCAPE`.

    ``needles`` is that whole set, so a reader may instead search a block of many lines for the needles and
    treat exactly the lines holding one as the lines this test accepts.
    """

    literals: tuple[bytes, ...]

    @property
    def needles(self) -> tuple[bytes, ...]:
        return (*self.literals, ESCAPE)

    def __call__(self, line: bytes) -> bool:
        # One ``in`` per literal beats a regex alternation (SRE scans byte by byte: ~10x slower here); the
        # escape is looked for only from the first backslash, found with memchr, because a two-byte ``in``
        # is slow and most lines have no backslash.
        for lit in self.literals:
            if lit in line:
                return True
        p = line.find(b"\\")
        return p >= 0 and line.find(ESCAPE, p) >= 0


def make_prefilter(query: Query | BoundQuery) -> Prefilter | None:
    """A fast ``line -> may match`` test, or None when the query gives no usable literal."""
    lits = required_literals(query)
    if lits is None:
        return None
    return Prefilter(tuple(lits))


__all__ = ["ESCAPE", "MIN_LITERAL", "Prefilter", "make_prefilter", "required_literals"]
