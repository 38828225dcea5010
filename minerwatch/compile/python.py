"""Compile a bound query to Python functions over canonical records (the streaming / detect hot path).

The where-clause becomes Python source for one function, compiled once with ``compile()``. Conditions are
generated in two polarities — "is TRUE" and "is FALSE" — so three-valued logic costs nothing at run time:
``T(a and b) = T(a) and T(b)``, ``F(a and b) = F(a) or F(b)``, ``T(not a) = F(a)``, and a comparison is
TRUE when its operands have the compared kind and the operator holds. Values (select items) are generated
as expressions yielding ``None`` for null.

Literals enter the generated source only as ``repr()`` of str / int / finite float / bool / None; everything
else (timestamps, compiled patterns, sets) is bound as a named constant, never as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from minerwatch.compile import runtime as rt
from minerwatch.compile.binder import (
    VT,
    BAgg,
    BArith,
    BCmp,
    BCol,
    BDoc,
    BExpr,
    BFunc,
    BIn,
    BIsNull,
    BLike,
    BLit,
    BLogic,
    BNot,
    BoundQuery,
    bind,
)
from minerwatch.lang.ast import Query
from minerwatch.lang.like import WILD_ANY, WILD_ONE, like_parts

_PYOP = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


class _Gen:
    """Python source generator for expressions over ``f`` (flat columns) and ``d`` (the document)."""

    def __init__(self) -> None:
        self.consts: dict[str, Any] = {}
        self._n = 0

    def tmp(self) -> str:
        self._n += 1
        return f"_t{self._n}"

    def const(self, value: Any) -> str:
        name = f"_k{len(self.consts)}"
        self.consts[name] = value
        return name

    def lit(self, value: Any) -> str:
        if value is None or type(value) in (bool, int, str):
            return repr(value)
        if type(value) is float:
            return repr(value)  # the binder rejects non-finite literals
        return self.const(value)

    # -- values ----------------------------------------------------------------------------------------
    def val(self, e: BExpr) -> str:
        if isinstance(e, BCol):
            return f"f.get({e.name!r})"
        if isinstance(e, BDoc):
            return self.doc_path(e.parts)
        if isinstance(e, BLit):
            return self.lit(e.value)
        if isinstance(e, BArith):
            return self.arith(e)
        if isinstance(e, BFunc):
            return self.func(e)
        if isinstance(e, (BCmp, BLogic, BNot, BLike, BIn, BIsNull)):
            t, f = self.truth(e), self.falsity(e)
            return f"(True if {t} else (False if {f} else None))"
        raise TypeError(f"no value for {type(e).__name__}")  # aggregates are folded elsewhere

    def doc_path(self, parts: tuple[str, ...]) -> str:
        # Each step must land on an object; anything else makes the whole path null.
        if len(parts) == 1:
            return f"d.get({parts[0]!r})"
        names = [self.tmp() for _ in parts[:-1]]
        inner = f"{names[-1]}.get({parts[-1]!r})"
        for i in range(len(parts) - 2, -1, -1):
            src = "d" if i == 0 else names[i - 1]
            inner = f"(None if type({names[i]} := {src}.get({parts[i]!r})) is not dict else {inner})"
        return inner

    def view(self, e: BExpr, kind: str) -> tuple[str | None, str]:
        """(check, value): ``check`` is true when ``e`` is a non-null value of ``kind``; then ``value`` is it."""
        if isinstance(e, BLit):
            v = e.value
            return None, self.lit(float(v) if kind == "num" and type(v) is int else v)
        t = self.tmp()
        if e.type is VT.JSON:
            if kind == "str":
                return f"type({t} := {self.val(e)}) is str", t
            if kind == "num":
                return f"type({t} := {self.val(e)}) in _NUM", f"float({t})"
            if kind == "bool":
                return f"type({t} := {self.val(e)}) is bool", t
            raise AssertionError(kind)
        return f"({t} := {self.val(e)}) is not None", t

    def arith(self, e: BArith) -> str:
        if e.type is not VT.DOUBLE:
            return "None"
        lc, lv = self.view(e.left, "num")
        rc, rv = self.view(e.right, "num")
        checks = [c for c in (lc, rc) if c]
        if e.op == "/":
            r = self.tmp()
            checks.append(f"({r} := {rv}) != 0.0")
            rv = r
        elif isinstance(e.right, BLit):
            rv = repr(float(e.right.value))
        if isinstance(e.left, BLit):
            lv = repr(float(e.left.value))
        body = f"({lv} {e.op} {rv})"
        code = f"({body} if {' and '.join(checks)} else None)" if checks else body
        return f"_fin({code})" if e.root else code

    def func(self, e: BFunc) -> str:
        if e.name == "coalesce":
            args = [a for a in e.args if not (isinstance(a, BLit) and a.value is None)]
            if not args:
                return "None"
            code = self.val(args[-1])
            for a in reversed(args[:-1]):
                t = self.tmp()
                code = f"({t} if ({t} := {self.val(a)}) is not None else {code})"
            return code
        arg = e.args[0]
        if arg.type not in (VT.STRING, VT.JSON):
            return "None"
        check, v = self.view(arg, "str")
        fn = {"lower": "_lower", "upper": "_upper", "length": "len"}[e.name]
        return f"({fn}({v}) if {check} else None)" if check else f"{fn}({v})"

    # -- conditions ------------------------------------------------------------------------------------
    def cmp_parts(self, e: BCmp) -> tuple[str | None, str] | None:
        """(check, op) of a comparison, or None when it is always null."""
        if e.mode == "null":
            return None
        if e.mode == "dyn":
            t = self.tmp()
            fn = self.const(rt.compare_dyn(e.op))
            return f"({t} := {fn}({self.val(e.left)}, {self.val(e.right)})) is not None", t
        lc, lv = self.view(e.left, e.mode)
        rc, rv = self.view(e.right, e.mode)
        checks = [c for c in (lc, rc) if c]
        op = f"{lv} {_PYOP[e.op]} {rv}"
        return (" and ".join(checks) if checks else None), op

    def truth(self, e: BExpr) -> str:
        if isinstance(e, BLogic):
            j = " and " if e.op == "and" else " or "
            return f"({self.truth(e.left)}{j}{self.truth(e.right)})"
        if isinstance(e, BNot):
            return self.falsity(e.operand)
        if isinstance(e, BCmp):
            fast = self.eq_fast(e)
            if fast is not None:
                return fast
            parts = self.cmp_parts(e)
            if parts is None:
                return "False"
            check, op = parts
            return f"({check} and {op})" if check else f"({op})"
        if isinstance(e, BLike):
            return self.like(e, negated=e.negated)
        if isinstance(e, BIn):
            return self.in_(e, want=not e.negated)
        if isinstance(e, BIsNull):
            return f"(({self.tmp()} := {self.val(e.operand)}) is {'not ' if e.negated else ''}None)"
        if isinstance(e, BLit):
            return "True" if e.value is True else "False"
        return f"(({self.tmp()} := {self.val(e)}) is True)"

    def falsity(self, e: BExpr) -> str:
        if isinstance(e, BLogic):
            j = " or " if e.op == "and" else " and "
            return f"({self.falsity(e.left)}{j}{self.falsity(e.right)})"
        if isinstance(e, BNot):
            return self.truth(e.operand)
        if isinstance(e, BCmp):
            parts = self.cmp_parts(e)
            if parts is None:
                return "False"
            check, op = parts
            return f"({check} and not ({op}))" if check else f"(not ({op}))"
        if isinstance(e, BLike):
            return self.like(e, negated=not e.negated)
        if isinstance(e, BIn):
            return self.in_(e, want=e.negated)
        if isinstance(e, BIsNull):
            return f"(({self.tmp()} := {self.val(e.operand)}) is {'' if e.negated else 'not '}None)"
        if isinstance(e, BLit):
            return "True" if e.value is False else "False"
        return f"(({self.tmp()} := {self.val(e)}) is False)"

    def eq_fast(self, e: BCmp) -> str | None:
        """``x = literal`` is TRUE exactly when x equals it — no type check needed unless bools could pass
        for numbers (a JSON ``true`` equals ``1.0`` in Python)."""
        if e.op != "=" or e.mode not in ("str", "num", "ts", "bool"):
            return None
        side, lit = e.left, e.right
        if isinstance(side, BLit):
            side, lit = lit, side
        if not isinstance(lit, BLit) or isinstance(side, BLit):
            return None
        if side.type is VT.JSON and e.mode not in ("str",):
            return None
        v = float(lit.value) if e.mode == "num" and type(lit.value) is int else lit.value
        return f"({self.val(side)} == {self.lit(v)})"

    def like(self, e: BLike, negated: bool) -> str:
        if e.operand.type not in (VT.STRING, VT.JSON):
            return "False"
        check, v = self.view(e.operand, "str")
        match = self.like_match(e.pattern, v)
        if negated:
            match = f"not ({match})"
        return f"({check} and {match})" if check else f"({match})"

    def like_match(self, pattern: str, v: str) -> str:
        parts: list[str | object] = []
        for p in like_parts(pattern):
            if not (p is WILD_ANY and parts and parts[-1] is WILD_ANY):
                parts.append(p)
        if not parts:
            return f"{v} == ''"
        if WILD_ONE not in parts:
            lits = [p for p in parts if isinstance(p, str)]
            if not lits:
                return "True"
            if len(lits) == 1:
                lit = self.lit(lits[0])
                shape = tuple(p is WILD_ANY for p in parts)
                if shape == (False,):
                    return f"{v} == {lit}"
                if shape == (True, False, True):
                    return f"{lit} in {v}"
                if shape == (False, True):
                    return f"{v}.startswith({lit})"
                if shape == (True, False):
                    return f"{v}.endswith({lit})"
        regex = "".join(".*" if p is WILD_ANY else "." if p is WILD_ONE else re.escape(str(p)) for p in parts)
        fn = self.const(re.compile(regex, re.DOTALL).fullmatch)
        return f"{fn}({v}) is not None"

    def in_(self, e: BIn, want: bool) -> str:
        """``want``: generate "is TRUE" (want=True) or "is FALSE" for the un-negated membership."""
        modes = {c.mode for c in e.cmps}
        if len(modes) == 1 and all(isinstance(c.right, BLit) for c in e.cmps) and not isinstance(e.operand, BLit):
            mode = modes.pop()
            if mode in ("str", "num", "ts", "bool"):
                values = frozenset(
                    float(c.right.value) if mode == "num" else c.right.value  # type: ignore[attr-defined]
                    for c in e.cmps
                )
                s = self.const(values)
                check, v = self.view(e.operand, mode)
                if want and e.operand.type is not VT.JSON:  # a JSON object is not hashable: check first
                    return f"({self.val(e.operand)} in {s})"
                op = f"{v} in {s}" if want else f"{v} not in {s}"
                return f"({check} and {op})" if check else f"({op})"
        if want:
            return "(" + " or ".join(self.truth(c) for c in e.cmps) + ")"
        return "(" + " and ".join(self.falsity(c) for c in e.cmps) + ")"


def _namespace(consts: dict[str, Any]) -> dict[str, Any]:
    ns: dict[str, Any] = {
        "_NUM": rt.NUM_TYPES,
        "_fin": rt.finite,
        "_lower": rt.lower,
        "_upper": rt.upper,
        "__builtins__": {"type": type, "dict": dict, "str": str, "bool": bool, "float": float, "len": len},
    }
    ns.update(consts)
    return ns


# ------------------------------------------------------------------------------------------ aggregation
@dataclass(slots=True)
class _AggSpec:
    name: str
    arg: int | None
    """Index of the argument's value in the row tuple."""
    json: bool
    """The argument is a JSON value (numbers are picked out of it for min/max/sum/avg)."""


@dataclass(slots=True)
class _Group:
    first_ord: tuple[Any, ...]
    last_ord: tuple[Any, ...]
    first_row: tuple[Any, ...]
    last_row: tuple[Any, ...]
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    states: list[Any] = field(default_factory=list)


class GroupAccumulator:
    """Incremental grouping: feed rows in any order, read the group rows at any time.

    Order-independent by construction: the latest / first row of a group is chosen by (eventdate, id), not
    by arrival, so streaming and batch runs agree.
    """

    def __init__(self, plan: PyQuery) -> None:
        self.plan = plan
        self.groups: dict[tuple[Any, ...], _Group] = {}

    def feed(self, record: Any) -> bool:
        """Add ``record`` if the where-clause holds; returns whether it did."""
        if self.plan.predicate(record):
            self.add(record)
            return True
        return False

    def add(self, record: Any) -> None:
        """Add a record that already passed the where-clause."""
        p = self.plan
        flat = record.flat
        row = p._row(flat, record.doc)
        t = flat.get(p.bound.time_column)
        ordk = rt.order_key(t, flat.get(p.bound.order_column))
        key = tuple(nf(row[i]) if nf else row[i] for i, nf in enumerate(p._key_norm))
        if p.bound.every_us is not None:
            key = (rt.bucket(t, p.bound.every_us), *key)
        g = self.groups.get(key)
        if g is None:
            g = _Group(ordk, ordk, row, row, states=[_init(a) for a in p._aggs])
            self.groups[key] = g
        else:
            if ordk < g.first_ord:
                g.first_ord, g.first_row = ordk, row
            if ordk >= g.last_ord:
                g.last_ord, g.last_row = ordk, row
        g.count += 1
        if t is not None:
            if g.first_seen is None or t < g.first_seen:
                g.first_seen = t
            if g.last_seen is None or t > g.last_seen:
                g.last_seen = t
        for i, a in enumerate(p._aggs):
            if a.arg is not None:
                _update(a, g.states, i, row[a.arg])

    def rows(self) -> list[dict[str, Any]]:
        p = self.plan
        groups = list(self.groups.items())
        if not groups and not p.bound.grouped:
            return [self._output((), None)]
        groups.sort(key=lambda kv: rt.order_key(kv[1].first_seen, kv[1].first_ord[3] if kv[1].first_ord[2] else None))
        return [self._output(k, g) for k, g in groups]

    def _output(self, key: tuple[Any, ...], g: _Group | None) -> dict[str, Any]:
        p = self.plan
        out: dict[str, Any] = {}
        last = g.last_row if g else None
        for col in p.bound.columns:
            src = col.source
            if src == "item":
                kind, idx = p._item_slots[col.index]
                if kind == "row":
                    out[col.name] = last[idx] if last is not None else None
                else:
                    out[col.name] = _result(p._aggs[idx], g, idx)
            elif src == "key":
                out[col.name] = last[col.index] if last is not None else None
            elif src == "bucket":
                out[col.name] = key[0] if key else None
            elif src == "count":
                out[col.name] = g.count if g else 0
            elif src == "first_seen":
                out[col.name] = g.first_seen if g else None
            elif src == "last_seen":
                out[col.name] = g.last_seen if g else None
        return out


def _init(a: _AggSpec) -> Any:
    if a.name == "countdistinct":
        return set()
    if a.name in ("sum", "avg"):
        return [0.0, 0]
    if a.name == "count":
        return 0
    return None


def _update(a: _AggSpec, states: list[Any], i: int, v: Any) -> None:
    name = a.name
    if v is None:
        return
    if name == "count":
        states[i] += 1
        return
    if name == "countdistinct":
        states[i].add(rt.norm_key(v) if a.json else v)
        return
    if name in ("first", "last"):
        return
    if a.json:
        if type(v) not in rt.NUM_TYPES:
            return
        v = float(v)
    if name in ("sum", "avg"):
        s = states[i]
        s[0] += float(v)
        s[1] += 1
    elif name == "min":
        if states[i] is None or v < states[i]:
            states[i] = v
    elif name == "max":
        if states[i] is None or v > states[i]:
            states[i] = v


def _result(a: _AggSpec, g: _Group | None, i: int) -> Any:
    if a.name == "count" and a.arg is None:
        return g.count if g else 0
    if g is None:
        return 0 if a.name in ("count", "countdistinct") else None
    st = g.states[i]
    if a.name == "countdistinct":
        return len(st)
    if a.name == "sum":
        return st[0] if st[1] else None
    if a.name == "avg":
        return st[0] / st[1] if st[1] else None
    if a.name == "first":
        return g.first_row[a.arg]  # type: ignore[index]
    if a.name == "last":
        return g.last_row[a.arg]  # type: ignore[index]
    return st


# ------------------------------------------------------------------------------------------ the plan
class PyQuery:
    """A query compiled to Python functions.

    - ``predicate(record) -> bool``: the where-clause is TRUE;
    - ``project(record) -> dict``: the select items of one record (for an aggregated query: its non-aggregate
      items and the group keys, by output name);
    - ``run(records) -> list[dict]``: the whole query, grouping and output order included;
    - ``accumulator()``: a :class:`GroupAccumulator` for streaming use of an aggregated query.
    """

    def __init__(self, bound: BoundQuery) -> None:
        self.bound = bound
        self.columns = bound.column_names()
        self.source = ""
        g = _Gen()
        pred = g.truth(bound.where) if bound.where is not None else "True"
        lines = ["def _pred(r):", "    f = r.flat", "    d = r.doc", f"    return {pred}", ""]
        self._key_norm: list[Callable[[Any], Any] | None] = []
        self._aggs: list[_AggSpec] = []
        self._item_slots: list[tuple[str, int]] = []
        if not bound.aggregated:
            fields = ", ".join(f"{it.name!r}: {g.val(it.expr)}" for it in bound.items)
            lines += ["def _proj(r):", "    f = r.flat", "    d = r.doc", f"    return {{{fields}}}", ""]
        else:
            row: list[str] = []
            for k in bound.keys:
                row.append(g.val(k.expr))
                self._key_norm.append(rt.norm_key if k.expr.type is VT.JSON else None)
            for it in bound.items:
                if isinstance(it.expr, BAgg):
                    arg = None
                    if it.expr.arg is not None:
                        arg = len(row)
                        row.append(g.val(it.expr.arg))
                    self._item_slots.append(("agg", len(self._aggs)))
                    is_json = it.expr.arg is not None and it.expr.arg.type is VT.JSON
                    self._aggs.append(_AggSpec(it.expr.name, arg, is_json))
                else:
                    self._item_slots.append(("row", len(row)))
                    row.append(g.val(it.expr))
            tup = ", ".join(row) + ("," if len(row) == 1 else "")
            lines += ["def _row(f, d):", f"    return ({tup})", ""]
            proj = [f"{it.name!r}: {g.val(it.expr)}" for it in bound.items if not it.is_agg]
            proj += [f"{k.name!r}: {g.val(k.expr)}" for k in bound.keys if k.item_index is None]
            lines += ["def _proj(r):", "    f = r.flat", "    d = r.doc", f"    return {{{', '.join(proj)}}}", ""]
        self.source = "\n".join(lines)
        ns = _namespace(g.consts)
        exec(compile(self.source, f"<linq {bound.query.file or 'query'}>", "exec"), ns)  # noqa: S102
        self.predicate: Callable[[Any], bool] = ns["_pred"]
        self.project: Callable[[Any], dict[str, Any]] = ns["_proj"]
        self._row: Callable[[dict[str, Any], dict[str, Any]], tuple[Any, ...]] = ns.get("_row", _no_row)

    def accumulator(self) -> GroupAccumulator:
        return GroupAccumulator(self)

    def run(self, records: Iterable[Any]) -> list[dict[str, Any]]:
        pred = self.predicate
        if self.bound.aggregated:
            acc = self.accumulator()
            add = acc.add
            for rec in records:
                if pred(rec):
                    add(rec)
            return acc.rows()
        tcol, ocol = self.bound.time_column, self.bound.order_column
        keyed = [
            (rt.order_key(rec.flat.get(tcol), rec.flat.get(ocol)), i, self.project(rec))
            for i, rec in enumerate(records)
            if pred(rec)
        ]
        keyed.sort(key=lambda x: (x[0], x[1]))
        return [row for _, _, row in keyed]


def _no_row(f: dict[str, Any], d: dict[str, Any]) -> tuple[Any, ...]:
    return ()


def compile_python(query: Query | BoundQuery) -> PyQuery:
    """Compile ``query`` (parsed or bound) to a :class:`PyQuery`."""
    return PyQuery(query if isinstance(query, BoundQuery) else bind(query))


__all__ = ["GroupAccumulator", "PyQuery", "compile_python"]
