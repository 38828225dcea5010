"""Resolve a parsed query against its table: names, static types, grouping, aggregates.

The result (:class:`BoundQuery`) is what every executor compiles from, so the Python and SQL back ends see
the same decisions: which path is a flat column, which a document path (with its canonical spelling), which
comparison compares what (``mode``), which literal is a timestamp, which select items are aggregates and
which take the value of the group's latest row.

Static types (:class:`VT`): flat columns carry their catalogue type, literals theirs, and a document path is
``JSON`` — a value whose type is only known per record. Operators decide per record on ``JSON`` operands and
at compile time otherwise, with the same result table (docs/query-language.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from minerwatch.catalog.tables import GUARDDUTY, ColType, Table, get_table
from minerwatch.errors import QueryCompileError
from minerwatch.lang.ast import (
    AGGREGATES,
    COMPARISON,
    LOGICAL,
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
    SelectItem,
    contains_aggregate,
    to_text,
)
from minerwatch.lang.like import normalise_like
from minerwatch.lang.tokens import Pos, Source


class VT(StrEnum):
    """Static value types of bound expressions."""

    STRING = "string"
    DOUBLE = "double"
    BIGINT = "bigint"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    NULL = "null"
    JSON = "json"
    """Decided per record: a JSON string, number, boolean, object, array or null (a missing key is null)."""


NUMERIC = frozenset({VT.DOUBLE, VT.BIGINT})
_COLTYPE_VT = {
    ColType.STRING: VT.STRING,
    ColType.DOUBLE: VT.DOUBLE,
    ColType.BIGINT: VT.BIGINT,
    ColType.BOOLEAN: VT.BOOLEAN,
    ColType.TIMESTAMP: VT.TIMESTAMP,
}
RESERVED_GROUP_COLUMNS = ("bucket", "count", "first_seen", "last_seen")


# ---------------------------------------------------------------------------------------------- bound nodes
# eq=False: nodes are compared and hashed by identity, so a code generator may key caches on them.
@dataclass(eq=False, slots=True)
class BExpr:
    pos: Pos
    type: VT


@dataclass(eq=False, slots=True)
class BCol(BExpr):
    name: str


@dataclass(eq=False, slots=True)
class BDoc(BExpr):
    parts: tuple[str, ...]


@dataclass(eq=False, slots=True)
class BLit(BExpr):
    value: Any
    """str, int, float, bool, None, or a UTC datetime for TIMESTAMP."""


@dataclass(eq=False, slots=True)
class BCmp(BExpr):
    op: str
    left: BExpr
    right: BExpr
    mode: str
    """What is compared: ``str``, ``num``, ``bool``, ``ts`` (both sides of that kind, a JSON side viewed as it),
    ``dyn`` (both sides JSON: decided per record) or ``null`` (the types can never compare: always null)."""


@dataclass(eq=False, slots=True)
class BArith(BExpr):
    op: str
    left: BExpr
    right: BExpr
    root: bool = True
    """The top of an arithmetic tree: a non-finite result becomes null here."""


@dataclass(eq=False, slots=True)
class BLogic(BExpr):
    op: str
    left: BExpr
    right: BExpr


@dataclass(eq=False, slots=True)
class BNot(BExpr):
    operand: BExpr


@dataclass(eq=False, slots=True)
class BLike(BExpr):
    operand: BExpr
    pattern: str
    """Normalised: a backslash only ever precedes ``%``, ``_`` or a backslash."""
    negated: bool


@dataclass(eq=False, slots=True)
class BIn(BExpr):
    operand: BExpr
    cmps: tuple[BCmp, ...]
    """``operand = item`` for each item; the operand node is shared (evaluated once where possible)."""
    negated: bool


@dataclass(eq=False, slots=True)
class BIsNull(BExpr):
    operand: BExpr
    negated: bool


@dataclass(eq=False, slots=True)
class BFunc(BExpr):
    name: str
    args: tuple[BExpr, ...]


@dataclass(eq=False, slots=True)
class BAgg(BExpr):
    name: str
    arg: BExpr | None
    """None for ``count()`` / ``count(*)``."""


@dataclass(slots=True)
class BoundItem:
    name: str
    expr: BExpr
    item: SelectItem | None
    """The select item (None for the implicit all-columns select)."""

    @property
    def is_agg(self) -> bool:
        return isinstance(self.expr, BAgg)


@dataclass(slots=True)
class BoundKey:
    name: str
    expr: BExpr
    item_index: int | None
    """The select item this key names (``group by instance_id`` → the item aliased instance_id)."""


@dataclass(slots=True)
class OutCol:
    name: str
    type: VT
    source: str
    """``item``, ``key``, ``bucket``, ``count``, ``first_seen`` or ``last_seen``."""
    index: int = -1


@dataclass(slots=True)
class BindWarning:
    message: str
    pos: Pos


@dataclass(slots=True)
class BoundQuery:
    query: Query
    table: Table
    source: Source
    where: BExpr | None
    items: list[BoundItem]
    keys: list[BoundKey]
    grouped: bool
    """The query has ``group by``."""
    aggregated: bool
    """Rows are folded: grouped, or aggregates over the whole input (one row)."""
    every_us: int | None
    columns: list[OutCol]
    latest_row_items: list[SelectItem] = field(default_factory=list)
    """Select items of an aggregated query that are neither group keys nor aggregates: they take the value
    of the group's latest row by (eventdate, id)."""
    warnings: list[BindWarning] = field(default_factory=list)

    @property
    def time_column(self) -> str:
        return self.table.time_column

    @property
    def order_column(self) -> str:
        return self.table.order_column

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


# ---------------------------------------------------------------------------------------------- helpers
def query_source(query: Query) -> Source:
    """A Source whose positions agree with the query's nodes (they carry absolute file lines)."""
    rel = Source(query.text).pos(min(query.pos.offset, len(query.text))).line
    return Source(query.text, query.file, query.pos.line - rel)


def parse_timestamp(text: str) -> datetime | None:
    """An ISO 8601 timestamp (date only, ``T`` or space, fraction, ``Z`` or offset) as a UTC datetime."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _canonical(table: Table, parts: tuple[str, ...]) -> tuple[str, ...]:
    if table.name == GUARDDUTY.name:
        from minerwatch.catalog.guardduty_model import canonical_path

        return canonical_path(parts)
    return parts


def _lit_type(value: Any) -> VT:
    if value is None:
        return VT.NULL
    if isinstance(value, bool):
        return VT.BOOLEAN
    if isinstance(value, int):
        return VT.BIGINT
    if isinstance(value, float):
        return VT.DOUBLE
    if isinstance(value, datetime):
        return VT.TIMESTAMP
    return VT.STRING


def _kind(t: VT) -> str | None:
    """The comparison kind of a static type (None for JSON / NULL)."""
    if t is VT.STRING:
        return "str"
    if t in NUMERIC:
        return "num"
    if t is VT.BOOLEAN:
        return "bool"
    if t is VT.TIMESTAMP:
        return "ts"
    return None


def compare_mode(op: str, lt: VT, rt: VT) -> str:
    if VT.NULL in (lt, rt):
        return "null"
    if lt is VT.JSON and rt is VT.JSON:
        return "dyn"
    lk, rk = _kind(lt), _kind(rt)
    if lt is VT.JSON:
        mode = rk
    elif rt is VT.JSON:
        mode = lk
    else:
        mode = lk if lk == rk else None
    # A JSON value is never a timestamp; booleans only compare for (in)equality.
    if mode is None or (mode == "ts" and VT.JSON in (lt, rt)) or (mode == "bool" and op not in ("=", "!=")):
        return "null"
    return mode


# ---------------------------------------------------------------------------------------------- binder
class Binder:
    def __init__(self, query: Query) -> None:
        self.query = query
        self.source = query_source(query)
        table = get_table(query.table)
        if table is None:
            from minerwatch.catalog.tables import TABLES

            raise self.error(
                f"unknown table {query.table!r} (known: {', '.join(sorted(TABLES))})", query.pos
            )
        self.table = table
        self.warnings: list[BindWarning] = []

    def error(self, message: str, pos: Pos) -> QueryCompileError:
        return QueryCompileError(
            message, file=self.source.file, line=pos.line, col=pos.col, source_line=self.source.line_text(pos)
        )

    def warn(self, message: str, pos: Pos) -> None:
        self.warnings.append(BindWarning(message, pos))

    # -- the query -------------------------------------------------------------------------------------
    def bind(self) -> BoundQuery:
        q = self.query
        where = None
        if q.where is not None:
            if contains_aggregate(q.where):
                pos = next(n.pos for n in _walk(q.where) if isinstance(n, Func) and n.name in AGGREGATES)
                raise self.error("aggregates are not allowed in 'where'", pos)
            where = self.logical(self.expr(q.where), q.where.pos, "'where'")
        items = self.items()
        grouped = q.group_by is not None
        aggregated = grouped or any(it.is_agg for it in items)
        keys = self.keys(items) if grouped else []
        every_us = None
        if q.group_by is not None and q.group_by.every_seconds is not None:
            every_us = max(1, round(q.group_by.every_seconds * 1_000_000))
        columns, latest = self.columns(items, keys, grouped, aggregated, every_us)
        return BoundQuery(
            query=q,
            table=self.table,
            source=self.source,
            where=where,
            items=items,
            keys=keys,
            grouped=grouped,
            aggregated=aggregated,
            every_us=every_us,
            columns=columns,
            latest_row_items=latest,
            warnings=self.warnings,
        )

    def items(self) -> list[BoundItem]:
        q = self.query
        if q.select is None:
            if q.group_by is not None:
                return []  # a grouped query without select shows its keys, count, first_seen, last_seen
            return [
                BoundItem(name, BCol(q.pos, _COLTYPE_VT[t], name), None) for name, t in self.table.columns.items()
            ]
        out: list[BoundItem] = []
        for item in q.select:
            expr = item.expr
            if isinstance(expr, Func) and expr.name in AGGREGATES:
                bound: BExpr = self.aggregate(expr)
            else:
                if contains_aggregate(expr):
                    pos = next(n.pos for n in _walk(expr) if isinstance(n, Func) and n.name in AGGREGATES)
                    raise self.error("an aggregate must be a whole select item, not part of an expression", pos)
                bound = self.expr(expr)
            out.append(BoundItem(item.name, bound, item))
        return out

    def keys(self, items: list[BoundItem]) -> list[BoundKey]:
        gb = self.query.group_by
        assert gb is not None
        by_name = {it.name.lower(): i for i, it in enumerate(items) if it.item is not None}
        keys: list[BoundKey] = []
        seen: set[str] = set()
        for key in gb.keys:
            if to_text(key).lower() in seen:  # the same key twice groups exactly as once
                continue
            seen.add(to_text(key).lower())
            if contains_aggregate(key):
                raise self.error("cannot group by an aggregate", key.pos)
            idx = None
            if isinstance(key, Path) and len(key.parts) == 1 and key.parts[0].lower() in by_name:
                idx = by_name[key.parts[0].lower()]
                if items[idx].is_agg:
                    raise self.error(f"cannot group by {key.parts[0]!r}: it names an aggregate", key.pos)
                keys.append(BoundKey(items[idx].name, items[idx].expr, idx))
                continue
            bound = self.expr(key)
            name = key.parts[-1] if isinstance(key, Path) else to_text(key)
            keys.append(BoundKey(name, bound, None))
        return keys

    def columns(
        self, items: list[BoundItem], keys: list[BoundKey], grouped: bool, aggregated: bool, every_us: int | None
    ) -> tuple[list[OutCol], list[SelectItem]]:
        latest: list[SelectItem] = []
        if not aggregated:
            return [OutCol(it.name, it.expr.type, "item", i) for i, it in enumerate(items)], latest
        key_items = {k.item_index for k in keys if k.item_index is not None}
        cols: list[OutCol] = []
        if every_us is not None:
            cols.append(OutCol("bucket", VT.TIMESTAMP, "bucket"))
        for i, k in enumerate(keys):
            if k.item_index is None:
                cols.append(OutCol(k.name, k.expr.type, "key", i))
        count_item = False
        for i, it in enumerate(items):
            if grouped and it.name.lower() in RESERVED_GROUP_COLUMNS:
                plain_count = isinstance(it.expr, BAgg) and it.expr.name == "count" and it.expr.arg is None
                if not (it.name.lower() == "count" and plain_count):
                    pos = it.item.pos if it.item else self.query.pos
                    raise self.error(
                        f"output column {it.name!r} is reserved in a grouped query "
                        f"({', '.join(RESERVED_GROUP_COLUMNS)}); choose another alias",
                        pos,
                    )
                count_item = True
            cols.append(OutCol(it.name, it.expr.type, "item", i))
            if not it.is_agg and i not in key_items and it.item is not None:
                latest.append(it.item)
        if grouped:
            if not count_item:
                cols.append(OutCol("count", VT.BIGINT, "count"))
            cols.append(OutCol("first_seen", VT.TIMESTAMP, "first_seen"))
            cols.append(OutCol("last_seen", VT.TIMESTAMP, "last_seen"))
        seen: dict[str, OutCol] = {}
        for c in cols:
            if c.name.lower() in seen:
                gb = self.query.group_by
                pos = gb.pos if gb else self.query.pos
                raise self.error(
                    f"group key {c.name!r} has the same output name as another column; "
                    "select the key with an alias and group by the alias",
                    pos,
                )
            seen[c.name.lower()] = c
        return cols, latest

    # -- expressions ---------------------------------------------------------------------------------
    def logical(self, e: BExpr, pos: Pos, what: str) -> BExpr:
        if e.type in (VT.BOOLEAN, VT.NULL, VT.JSON):
            return e
        raise self.error(f"{what} needs a condition, found a {e.type.value} value", pos)

    def expr(self, node: Expr) -> BExpr:
        match node:
            case Path(parts=parts):
                if len(parts) == 1:
                    t = self.table.column(parts[0])
                    if t is not None:
                        return BCol(node.pos, _COLTYPE_VT[t], parts[0].lower())
                return BDoc(node.pos, VT.JSON, _canonical(self.table, parts))
            case Literal(value=v):
                if isinstance(v, float) and not math.isfinite(v):
                    raise self.error("number out of range", node.pos)
                return BLit(node.pos, _lit_type(v), v)
            case BinOp(op=op, left=left, right=right) if op in LOGICAL:
                lb = self.logical(self.expr(left), left.pos, f"'{op}'")
                rb = self.logical(self.expr(right), right.pos, f"'{op}'")
                return BLogic(node.pos, VT.BOOLEAN, op, lb, rb)
            case BinOp(op=op, left=left, right=right) if op in COMPARISON:
                return self.compare(op, self.expr(left), self.expr(right), node.pos)
            case BinOp(op=op, left=left, right=right):
                lb, rb = self.expr(left), self.expr(right)
                for side in (lb, rb):
                    if isinstance(side, BArith):
                        side.root = False
                if not all(s.type in NUMERIC or s.type is VT.JSON for s in (lb, rb)):
                    if all(s.type is not VT.NULL for s in (lb, rb)):
                        self.warn(f"'{op}' on {lb.type.value} and {rb.type.value} is always null", node.pos)
                    return BLit(node.pos, VT.NULL, None)
                return BArith(node.pos, VT.DOUBLE, op, lb, rb)
            case Not(operand=o):
                return BNot(node.pos, VT.BOOLEAN, self.logical(self.expr(o), o.pos, "'not'"))
            case Like(operand=o, pattern=p, negated=neg):
                pattern = normalise_like(p)
                if pattern is None:
                    raise self.error("a like pattern must not end with an escape character", node.pos)
                bo = self.expr(o)
                if bo.type not in (VT.STRING, VT.JSON):
                    self.warn(f"'like' on a {bo.type.value} value is always null", node.pos)
                return BLike(node.pos, VT.BOOLEAN, bo, pattern, neg)
            case In(operand=o, items=items, negated=neg):
                bo = self.expr(o)
                cmps = tuple(self.compare("=", bo, self.expr(i), i.pos) for i in items)
                return BIn(node.pos, VT.BOOLEAN, bo, cmps, neg)
            case IsNull(operand=o, negated=neg):
                return BIsNull(node.pos, VT.BOOLEAN, self.expr(o), neg)
            case Func(name=name) if name in AGGREGATES:
                raise self.error(f"aggregate {name}() is only allowed as a select item", node.pos)
            case Func(name=name, args=args):
                return self.scalar_func(name, tuple(self.expr(a) for a in args), node)
        raise self.error(f"unsupported expression {to_text(node)!r}", node.pos)

    def compare(self, op: str, left: BExpr, right: BExpr, pos: Pos) -> BCmp:
        left, right = self.timestamp_literal(left, right), self.timestamp_literal(right, left)
        mode = compare_mode(op, left.type, right.type)
        if mode == "null" and VT.NULL not in (left.type, right.type):
            self.warn(
                f"'{op}' between {left.type.value} and {right.type.value} is always null", pos
            )
        return BCmp(pos, VT.BOOLEAN, op, left, right, mode)

    def timestamp_literal(self, e: BExpr, other: BExpr) -> BExpr:
        """A string literal compared with a timestamp is a timestamp, parsed now."""
        if isinstance(e, BLit) and e.type is VT.STRING and other.type is VT.TIMESTAMP:
            ts = parse_timestamp(e.value)
            if ts is None:
                raise self.error(f"{e.value!r} is not an ISO 8601 timestamp", e.pos)
            return BLit(e.pos, VT.TIMESTAMP, ts)
        return e

    def scalar_func(self, name: str, args: tuple[BExpr, ...], node: Func) -> BExpr:
        if name in ("lower", "upper", "length"):
            if len(args) != 1:
                raise self.error(f"{name}() takes one argument", node.pos)
            if args[0].type not in (VT.STRING, VT.JSON, VT.NULL):
                self.warn(f"{name}() of a {args[0].type.value} value is always null", node.pos)
            return BFunc(node.pos, VT.BIGINT if name == "length" else VT.STRING, name, args)
        assert name == "coalesce"
        if not args:
            raise self.error("coalesce() needs at least one argument", node.pos)
        has_ts = any(a.type is VT.TIMESTAMP for a in args)
        if has_ts:
            fixed: list[BExpr] = []
            for a in args:
                if isinstance(a, BLit) and a.type is VT.STRING:
                    a = self.timestamp_literal(a, BLit(a.pos, VT.TIMESTAMP, None))
                if a.type not in (VT.TIMESTAMP, VT.NULL):
                    raise self.error("coalesce() cannot mix timestamps with other values", a.pos)
                fixed.append(a)
            args = tuple(fixed)
        types = {a.type for a in args} - {VT.NULL}
        t = types.pop() if len(types) == 1 else (VT.NULL if not types else VT.JSON)
        return BFunc(node.pos, t, name, args)

    def aggregate(self, node: Func) -> BAgg:
        name = node.name
        if name == "count" and not node.args:
            return BAgg(node.pos, VT.BIGINT, name, None)
        if len(node.args) != 1:
            raise self.error(f"{name}() takes one argument", node.pos)
        if contains_aggregate(node.args[0]):
            raise self.error("aggregates cannot be nested", node.args[0].pos)
        arg = self.expr(node.args[0])
        t = arg.type
        if name in ("count", "countdistinct"):
            return BAgg(node.pos, VT.BIGINT, name, arg)
        if name in ("first", "last"):
            return BAgg(node.pos, t, name, arg)
        if name in ("min", "max"):
            if t is VT.BOOLEAN:
                raise self.error(f"{name}() needs numbers, strings or timestamps", node.pos)
            return BAgg(node.pos, VT.DOUBLE if t is VT.JSON else t, name, arg)
        # sum, avg
        if t not in NUMERIC and t not in (VT.JSON, VT.NULL):
            raise self.error(f"{name}() needs numbers, found a {t.value} value", node.pos)
        return BAgg(node.pos, VT.DOUBLE, name, arg)


def _walk(node: Expr) -> Any:
    from minerwatch.lang.ast import walk

    return walk(node)


def bind(query: Query) -> BoundQuery:
    """Resolve ``query``; raises :class:`QueryCompileError` with file, line, column and a caret."""
    return Binder(query).bind()


def children(e: BExpr) -> tuple[BExpr, ...]:
    """Direct sub-expressions of a bound node."""
    if isinstance(e, (BCmp, BArith, BLogic)):
        return (e.left, e.right)
    if isinstance(e, (BNot, BLike, BIsNull)):
        return (e.operand,)
    if isinstance(e, BIn):
        return (e.operand, *(c.right for c in e.cmps))
    if isinstance(e, BFunc):
        return e.args
    if isinstance(e, BAgg):
        return (e.arg,) if e.arg is not None else ()
    return ()


def doc_paths(e: BExpr | None) -> list[tuple[str, ...]]:
    """Every document path below ``e``, first occurrence order."""
    out: dict[tuple[str, ...], None] = {}
    stack = [e] if e is not None else []
    while stack:
        cur = stack.pop()
        if isinstance(cur, BDoc):
            out.setdefault(cur.parts)
        stack.extend(reversed(children(cur)))
    return list(out)


__all__ = [
    "BAgg",
    "BArith",
    "BCmp",
    "BCol",
    "BDoc",
    "BExpr",
    "BFunc",
    "BIn",
    "BIsNull",
    "BLike",
    "BLit",
    "BLogic",
    "BNot",
    "BoundItem",
    "BoundKey",
    "BoundQuery",
    "NUMERIC",
    "OutCol",
    "VT",
    "bind",
    "children",
    "doc_paths",
    "parse_timestamp",
    "query_source",
]
