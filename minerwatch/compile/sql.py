"""Compile a bound query to SQL as sqlglot expressions (DuckDB, Spark, Trino).

The relation the SQL reads has the table's flat columns (typed as in the catalogue) plus ``doc``, the whole
record as JSON (DuckDB: ``JSON``; Spark: ``VARIANT``; Trino: ``JSON``). Nothing here formats SQL text: every
identifier, literal and JSON path is a sqlglot node and sqlglot quotes it for the dialect.

Shape of the generated query::

    WITH _mw_src  AS (SELECT <flat columns>, <one JSON extract per document path> FROM relation),
         _mw_rows AS (SELECT *, <typed views of those paths: string / double / boolean / is-null> FROM _mw_src)
    SELECT <items> FROM _mw_rows WHERE <condition> ORDER BY eventdate, id

and for an aggregated query two more steps: ``_mw_base`` (keys, items and aggregate arguments of the matching
rows) and ``_mw_ranked`` (row numbers from the first and the latest row of each group), then one
``GROUP BY``. Values of the latest / first row are picked with ``ANY_VALUE(CASE WHEN rn = 1 THEN x END)``.

The core below is dialect-neutral; what differs (JSON access, type tests, finiteness, epoch arithmetic) is in
the small :class:`Dialect` tables at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlglot import exp

from minerwatch.compile.binder import (
    NUMERIC,
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
    OutCol,
    bind,
)
from minerwatch.errors import QueryCompileError
from minerwatch.lang.ast import Query

_CMP = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_ARITH = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul, "/": exp.Div}
_VIEW_SUFFIX = {"str": "s", "num": "n", "bool": "b", "null": "z"}


def _id(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _col(name: str) -> exp.Column:
    return exp.Column(this=_id(name))


def _str(s: str) -> exp.Literal:
    return exp.Literal.string(s)


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _null_bool() -> exp.Expression:
    return exp.cast(exp.Null(), "BOOLEAN")


def _case(*whens: tuple[exp.Expression, exp.Expression]) -> exp.Case:
    c = exp.Case()
    for cond, then in whens:
        c = c.when(cond, then)
    return c


@dataclass(slots=True)
class SqlPlan:
    """A compiled query: the sqlglot expression, its dialect, and the output columns with their types."""

    expression: exp.Expression
    dialect: str
    columns: list[OutCol]

    def sql(self, pretty: bool = True) -> str:
        return self.expression.sql(dialect=self.dialect, pretty=pretty)


class _Compiler:
    def __init__(self, bound: BoundQuery, d: Dialect) -> None:
        self.b = bound
        self.d = d
        self.paths: dict[tuple[str, ...], int] = {}
        self.views: dict[tuple[int, str], None] = {}
        self.relation = ""
        self.passthrough: tuple[str, ...] = ()
        """Relation columns carried unchanged to the output of a per-row query (``compile_sql_rows``)."""

    # -- document paths --------------------------------------------------------------------------------
    def path_index(self, parts: tuple[str, ...]) -> int:
        return self.paths.setdefault(parts, len(self.paths))

    def path_json(self, parts: tuple[str, ...]) -> exp.Expression:
        return _col(f"_mw_p{self.path_index(parts)}")

    def path_view(self, parts: tuple[str, ...], kind: str) -> exp.Expression:
        i = self.path_index(parts)
        self.views.setdefault((i, kind))
        return _col(f"_mw_p{i}_{_VIEW_SUFFIX[kind]}")

    def view_def(self, j: exp.Expression, kind: str) -> exp.Expression:
        """The typed view of JSON value ``j``: its value when it is of ``kind``, else NULL."""
        d = self.d
        if kind == "null":
            return exp.or_(exp.Is(this=j.copy(), expression=exp.Null()), d.is_kind(j.copy(), "null"))
        conv = {"str": d.as_string, "num": d.as_double, "bool": d.as_bool}[kind]
        jk = {"str": "string", "num": "number", "bool": "boolean"}[kind]
        return _case((d.is_kind(j.copy(), jk), conv(j.copy())))

    # -- values ------------------------------------------------------------------------------------------
    def lit(self, v: object, kind: str | None = None) -> exp.Expression:
        if v is None:
            return exp.Null()
        if isinstance(v, bool):
            return exp.true() if v else exp.false()
        if isinstance(v, datetime):
            text = v.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            return exp.cast(_str(text), self.d.timestamp_type)
        if isinstance(v, float) or (kind == "num" and isinstance(v, int)):
            return exp.cast(exp.Literal.number(repr(float(v))), "DOUBLE")
        if isinstance(v, int):
            return exp.Literal.number(str(v))
        return _str(str(v))

    def val(self, e: BExpr) -> exp.Expression:
        if isinstance(e, BCol):
            return _col(e.name)
        if isinstance(e, BDoc):
            return self.path_json(e.parts)
        if isinstance(e, BLit):
            return self.lit(e.value)
        if isinstance(e, BArith):
            return self.arith(e)
        if isinstance(e, BFunc):
            return self.func(e)
        if isinstance(e, (BCmp, BLogic, BNot, BLike, BIn, BIsNull)):
            return self.cond(e)
        raise TypeError(f"no value for {type(e).__name__}")

    def view(self, e: BExpr, kind: str) -> exp.Expression:
        """``e`` as a value of ``kind`` (``str``/``num``/``bool``/``ts``), NULL when it is not one."""
        if isinstance(e, BLit):
            return self.lit(e.value, kind)
        if isinstance(e, BDoc):
            return self.path_view(e.parts, kind)
        if e.type is VT.JSON:
            return self.view_def(self.val(e), kind)
        v = self.val(e)
        if kind == "num" and e.type is VT.BIGINT:
            return exp.cast(v, "DOUBLE")
        return v

    def is_null(self, e: BExpr) -> exp.Expression:
        if isinstance(e, BDoc):
            return self.path_view(e.parts, "null")
        if e.type is VT.JSON:
            return self.view_def(self.val(e), "null")
        return exp.Is(this=_paren(self.val(e)), expression=exp.Null())

    def arith(self, e: BArith) -> exp.Expression:
        if e.type is not VT.DOUBLE:
            return exp.cast(exp.Null(), "DOUBLE")
        left, right = self.view(e.left, "num"), self.view(e.right, "num")
        if e.op == "/":
            right = exp.Nullif(this=right, expression=self.lit(0.0))
        out: exp.Expression = _ARITH[e.op](this=_paren(left), expression=_paren(right))
        if e.root:
            out = _case((self.d.isfinite(out.copy()), out))
        return out

    def func(self, e: BFunc) -> exp.Expression:
        if e.name == "coalesce":
            args = [a for a in e.args if a.type is not VT.NULL]
            if not args:
                return exp.Null()
            if e.type is VT.JSON:
                parts = [self.as_json(a) for a in args]
            else:
                parts = [self.val(a) for a in args]
            return exp.Coalesce(this=parts[0], expressions=parts[1:]) if len(parts) > 1 else parts[0]
        arg = e.args[0]
        if arg.type not in (VT.STRING, VT.JSON):
            return exp.Null()
        s = self.view(arg, "str")
        if e.name == "lower":
            return exp.Lower(this=s)
        if e.name == "upper":
            return exp.Upper(this=s)
        return exp.Length(this=s)

    def as_json(self, e: BExpr) -> exp.Expression:
        """A value as JSON, JSON null turned into NULL (coalesce skips both)."""
        if e.type is VT.JSON:
            return _case((exp.not_(self.is_null(e)), self.val(e)))
        return self.d.to_json(self.val(e))

    # -- conditions --------------------------------------------------------------------------------------
    def cond(self, e: BExpr) -> exp.Expression:
        """A three-valued boolean."""
        if isinstance(e, BLogic):
            left, right = self.cond(e.left), self.cond(e.right)
            return exp.and_(left, right) if e.op == "and" else exp.or_(left, right)
        if isinstance(e, BNot):
            return exp.not_(self.cond(e.operand))
        if isinstance(e, BCmp):
            return self.compare(e)
        if isinstance(e, BLike):
            if e.operand.type not in (VT.STRING, VT.JSON):
                return _null_bool()
            like = exp.Escape(
                this=exp.Like(this=_paren(self.view(e.operand, "str")), expression=_str(e.pattern)),
                expression=_str("\\"),
            )
            return exp.not_(like) if e.negated else like
        if isinstance(e, BIn):
            out = self.in_(e)
            return exp.not_(out) if e.negated else out
        if isinstance(e, BIsNull):
            test = self.is_null(e.operand)
            return exp.not_(test) if e.negated else test
        if isinstance(e, BLit):
            return _null_bool() if e.value is None else self.lit(e.value)
        if e.type is VT.JSON:
            return self.view(e, "bool")
        if e.type is VT.NULL:
            return _null_bool()
        return self.val(e)

    def compare(self, e: BCmp) -> exp.Expression:
        op = _CMP[e.op]
        if e.mode == "null":
            return _null_bool()
        if e.mode != "dyn":
            return op(this=_paren(self.view(e.left, e.mode)), expression=_paren(self.view(e.right, e.mode)))
        kinds = ["str", "num"] + (["bool"] if e.op in ("=", "!=") else [])
        whens = []
        for kind in kinds:
            lv, rv = self.view(e.left, kind), self.view(e.right, kind)
            both = exp.and_(exp.not_(exp.Is(this=lv.copy(), expression=exp.Null())),
                            exp.not_(exp.Is(this=rv.copy(), expression=exp.Null())))
            whens.append((both, op(this=_paren(lv), expression=_paren(rv))))
        return _case(*whens)

    def in_(self, e: BIn) -> exp.Expression:
        modes = {c.mode for c in e.cmps}
        if len(modes) == 1 and all(isinstance(c.right, BLit) for c in e.cmps):
            mode = next(iter(modes))
            if mode in ("str", "num", "bool", "ts") and not isinstance(e.operand, BLit):
                items = [self.lit(c.right.value, mode) for c in e.cmps]  # type: ignore[attr-defined]
                return exp.In(this=_paren(self.view(e.operand, mode)), expressions=items)
        out = self.compare(e.cmps[0])
        for c in e.cmps[1:]:
            out = exp.or_(out, self.compare(c))
        return _paren(out)

    # -- grouping helpers ----------------------------------------------------------------------------------
    def norm_key(self, e: BExpr) -> exp.Expression:
        """The grouping identity of a value: typed values as they are; a JSON value as one string tagged with
        its kind (numbers by double value, objects and arrays by JSON text) — the partition runtime.norm_key
        makes in Python."""
        if e.type is not VT.JSON:
            return self.val(e)
        d = self.d
        j = self.val(e)
        s, n, b = self.view(e, "str"), self.view(e, "num"), self.view(e, "bool")
        num_text = exp.cast(exp.Add(this=n, expression=self.lit(0.0)), "VARCHAR")  # + 0.0: -0.0 is 0.0

        def tag(t: str, v: exp.Expression) -> exp.Expression:
            return exp.DPipe(this=_str(t + ":"), expression=v)

        return _case(
            (d.is_kind(j.copy(), "string"), tag("s", s)),
            (d.is_kind(j.copy(), "number"), tag("n", num_text)),
            (d.is_kind(j.copy(), "boolean"), tag("b", exp.cast(b, "VARCHAR"))),
            (d.is_kind(j.copy(), "complex"), tag("j", d.json_text(j.copy()))),
        )

    def agg(self, a: BAgg, arg: exp.Expression | None) -> exp.Expression:
        """The aggregate over column ``arg`` (already computed per row in ``_mw_base``)."""
        name = a.name
        if name == "count":
            if arg is None:
                return exp.Count(this=exp.Star())
            return exp.Count(this=arg)
        assert arg is not None
        if name == "countdistinct":
            return exp.Count(this=exp.Distinct(expressions=[arg]))
        if name == "first":
            return self.d.pick(_case((exp.EQ(this=_col("_mw_rn_first"), expression=exp.Literal.number(1)), arg)))
        if name == "last":
            return self.d.pick(_case((exp.EQ(this=_col("_mw_rn_last"), expression=exp.Literal.number(1)), arg)))
        return {"min": exp.Min, "max": exp.Max, "sum": exp.Sum, "avg": exp.Avg}[name](this=arg)

    def agg_arg(self, a: BAgg) -> exp.Expression | None:
        """What ``_mw_base`` computes per row for aggregate ``a``."""
        if a.arg is None:
            return None
        arg = a.arg
        if a.name == "count":
            if arg.type is VT.JSON:
                return _case((exp.not_(self.is_null(arg)), exp.Literal.number(1)))
            return self.val(arg)
        if a.name == "countdistinct":
            return self.norm_key(arg)
        if a.name in ("first", "last"):
            return self.val(arg)
        if arg.type is VT.JSON or (a.name in ("sum", "avg") and arg.type in NUMERIC):
            return self.view(arg, "num")
        return self.val(arg)

    # -- the query -----------------------------------------------------------------------------------------
    def build(self, relation: str) -> exp.Expression:
        b = self.b
        self.relation = relation
        t_col, id_col = _col(b.time_column), _col(b.order_column)
        where = self.cond(b.where) if b.where is not None else None
        if not b.aggregated:
            select = exp.select(*[exp.alias_(self.val(it.expr), _id(it.name)) for it in b.items])
            select = select.select(*[_col(name) for name in self.passthrough]) if self.passthrough else select
            body = select.from_(self.source_name(relation))
            if where is not None:
                body = body.where(where)
            body = body.order_by(_asc(t_col), _asc(id_col))
            return self.with_sources(body, relation)
        return self.with_sources(self.grouped(where, t_col, id_col), relation)

    def grouped(self, where: exp.Expression | None, t_col: exp.Column, id_col: exp.Column) -> exp.Expression:
        b = self.b
        base: list[exp.Expression] = [exp.alias_(t_col, _id("_mw_t")), exp.alias_(id_col, _id("_mw_id"))]
        group_cols: list[exp.Expression] = []
        if b.every_us is not None:
            us = self.d.epoch_us(t_col.copy())
            n = exp.Literal.number(str(b.every_us))
            floor_mod = exp.Mod(this=_paren(exp.Add(this=exp.Mod(this=us.copy(), expression=n.copy()),
                                                     expression=n.copy())), expression=n.copy())
            start = self.d.from_epoch_us(exp.Sub(this=us, expression=floor_mod))
            base.append(exp.alias_(start, _id("_mw_bucket")))
            group_cols.append(_col("_mw_bucket"))
        for i, k in enumerate(b.keys):
            base.append(exp.alias_(self.norm_key(k.expr), _id(f"_mw_g{i}")))
            base.append(exp.alias_(self.val(k.expr), _id(f"_mw_k{i}")))
            group_cols.append(_col(f"_mw_g{i}"))
        agg_cols: dict[int, exp.Expression | None] = {}
        for i, it in enumerate(b.items):
            if isinstance(it.expr, BAgg):
                arg = self.agg_arg(it.expr)
                if arg is not None:
                    base.append(exp.alias_(arg, _id(f"_mw_a{i}")))
                    agg_cols[i] = _col(f"_mw_a{i}")
                else:
                    agg_cols[i] = None
            else:
                base.append(exp.alias_(self.val(it.expr), _id(f"_mw_s{i}")))
        base_q = exp.select(*base).from_(self.source_name(self.relation))
        if where is not None:
            base_q = base_q.where(where)

        def window(desc: bool) -> exp.Expression:
            order = [
                exp.Ordered(this=_col("_mw_t"), desc=desc, nulls_first=not desc),
                exp.Ordered(this=_col("_mw_id"), desc=desc, nulls_first=not desc),
            ]
            return exp.Window(this=exp.RowNumber(), partition_by=[c.copy() for c in group_cols],
                              order=exp.Order(expressions=order))

        ranked = exp.select(
            exp.Star(),
            exp.alias_(window(True), _id("_mw_rn_last")),
            exp.alias_(window(False), _id("_mw_rn_first")),
        ).from_("_mw_base")

        def latest(col: exp.Expression) -> exp.Expression:
            return self.d.pick(_case((exp.EQ(this=_col("_mw_rn_last"), expression=exp.Literal.number(1)), col)))

        outs: list[exp.Expression] = []
        for c in b.columns:
            if c.source == "bucket":
                value: exp.Expression = _col("_mw_bucket")
            elif c.source == "key":
                value = latest(_col(f"_mw_k{c.index}"))
            elif c.source == "count":
                value = exp.Count(this=exp.Star())
            elif c.source == "first_seen":
                value = exp.Min(this=_col("_mw_t"))
            elif c.source == "last_seen":
                value = exp.Max(this=_col("_mw_t"))
            else:
                it = b.items[c.index]
                if isinstance(it.expr, BAgg):
                    value = self.agg(it.expr, agg_cols[c.index])
                else:
                    value = latest(_col(f"_mw_s{c.index}"))
            outs.append(exp.alias_(value, _id(c.name)))
        final = exp.select(*outs).from_("_mw_ranked")
        if group_cols:
            final = final.group_by(*[c.copy() for c in group_cols])
            first_id = self.d.pick(
                _case((exp.EQ(this=_col("_mw_rn_first"), expression=exp.Literal.number(1)), _col("_mw_id")))
            )
            final = final.order_by(_asc(exp.Min(this=_col("_mw_t"))), _asc(first_id))
        final = final.with_("_mw_base", as_=base_q).with_("_mw_ranked", as_=ranked)
        return final

    def source_name(self, relation: str) -> exp.Expression:
        return exp.to_table("_mw_rows") if self.paths else exp.Table(this=_id(relation))

    def with_sources(self, body: exp.Expression, relation: str) -> exp.Expression:
        if not self.paths:
            return body
        b = self.b
        flat = [_col(name) for name in [*b.table.columns, *self.passthrough]]
        extracts = [
            exp.alias_(self.d.extract(_col("doc"), parts), _id(f"_mw_p{i}")) for parts, i in self.paths.items()
        ]
        src = exp.select(*flat, *extracts).from_(exp.Table(this=_id(relation)))
        views = [
            exp.alias_(self.view_def(_col(f"_mw_p{i}"), kind), _id(f"_mw_p{i}_{_VIEW_SUFFIX[kind]}"))
            for i, kind in self.views
        ]
        rows = exp.select(exp.Star(), *views).from_("_mw_src")
        ctes = [("_mw_src", src), ("_mw_rows", rows)]
        existing = body.args.get("with_")
        body.set("with_", None)
        out = body
        for name, q in ctes:
            out = out.with_(name, as_=q)
        if existing is not None:
            for cte in existing.expressions:
                out = out.with_(cte.alias, as_=cte.this)
        return out


def _paren(e: exp.Expression) -> exp.Expression:
    """Operands of operators are parenthesised unless atomic: built trees carry no implicit precedence."""
    if isinstance(e, (exp.Column, exp.Literal, exp.Paren, exp.Null, exp.Boolean)):
        return e
    if isinstance(e, exp.Func) and not isinstance(e, (exp.Binary, exp.Unary, exp.Predicate)):
        return e  # a function call (And / Or are Func subclasses too, hence the exclusions)
    return exp.Paren(this=e)


def _asc(e: exp.Expression) -> exp.Ordered:
    return exp.Ordered(this=e, desc=False, nulls_first=True)


# ---------------------------------------------------------------------------------------------- dialects
class Dialect:
    """What differs between engines: JSON access and type tests, finiteness, epoch arithmetic."""

    name = ""
    timestamp_type = "TIMESTAMP"

    def extract(self, doc: exp.Expression, parts: tuple[str, ...]) -> exp.Expression:
        raise NotImplementedError

    def is_kind(self, j: exp.Expression, kind: str) -> exp.Expression:
        """``kind``: string, number, boolean, null, complex (object or array)."""
        raise NotImplementedError

    def as_string(self, j: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def as_double(self, j: exp.Expression) -> exp.Expression:
        return exp.cast(j, "DOUBLE")

    def as_bool(self, j: exp.Expression) -> exp.Expression:
        return exp.cast(j, "BOOLEAN")

    def to_json(self, v: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def json_text(self, j: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def isfinite(self, x: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def pick(self, x: exp.Expression) -> exp.Expression:
        """Any non-null value of the group (used where exactly one row is non-null)."""
        return exp.AnyValue(this=x)

    def epoch_us(self, ts: exp.Expression) -> exp.Expression:
        raise NotImplementedError

    def from_epoch_us(self, us: exp.Expression) -> exp.Expression:
        raise NotImplementedError


class DuckDB(Dialect):
    name = "duckdb"
    _TYPES = {
        "string": ("VARCHAR",),
        "number": ("BIGINT", "UBIGINT", "DOUBLE", "HUGEINT"),
        "boolean": ("BOOLEAN",),
        "null": ("NULL",),
        "complex": ("OBJECT", "ARRAY"),
    }

    def extract(self, doc: exp.Expression, parts: tuple[str, ...]) -> exp.Expression:
        # '$."a"."b"': inside the quotes DuckDB reads \" and \\ as escapes.
        path = "$" + "".join('."' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in parts)
        return _fn("json_extract", doc, _str(path))

    def is_kind(self, j: exp.Expression, kind: str) -> exp.Expression:
        types = self._TYPES[kind]
        jt = _fn("json_type", j)
        if len(types) == 1:
            return exp.EQ(this=jt, expression=_str(types[0]))
        return exp.In(this=jt, expressions=[_str(t) for t in types])

    def as_string(self, j: exp.Expression) -> exp.Expression:
        return _fn("json_extract_string", j, _str("$"))

    def to_json(self, v: exp.Expression) -> exp.Expression:
        return _fn("to_json", v)

    def json_text(self, j: exp.Expression) -> exp.Expression:
        return exp.cast(j, "VARCHAR")

    def isfinite(self, x: exp.Expression) -> exp.Expression:
        return _fn("isfinite", x)

    def epoch_us(self, ts: exp.Expression) -> exp.Expression:
        return _fn("epoch_us", ts)

    def from_epoch_us(self, us: exp.Expression) -> exp.Expression:
        return _fn("make_timestamp", us)


class Spark(Dialect):
    """Spark 4: ``doc`` is a VARIANT column (``parse_json``)."""

    name = "spark"
    timestamp_type = "TIMESTAMP_NTZ"

    def extract(self, doc: exp.Expression, parts: tuple[str, ...]) -> exp.Expression:
        for p in parts:
            if "'" in p or "]" in p or "\\" in p:
                raise QueryCompileError(f"the key {p!r} cannot be written as a Spark JSON path")
        path = "$" + "".join("['" + p + "']" for p in parts)
        return _fn("variant_get", doc, _str(path), _str("variant"))

    def is_kind(self, j: exp.Expression, kind: str) -> exp.Expression:
        schema = _fn("schema_of_variant", j)
        if kind == "string":
            return exp.EQ(this=schema, expression=_str("STRING"))
        if kind == "boolean":
            return exp.EQ(this=schema, expression=_str("BOOLEAN"))
        if kind == "null":
            return exp.EQ(this=schema, expression=_str("VOID"))
        if kind == "number":
            return exp.or_(
                exp.In(this=schema, expressions=[_str(t) for t in ("TINYINT", "SMALLINT", "INT", "BIGINT",
                                                                     "FLOAT", "DOUBLE")]),
                exp.Like(this=schema.copy(), expression=_str("DECIMAL%")),
            )
        return exp.or_(
            exp.Like(this=schema, expression=_str("OBJECT%")), exp.Like(this=schema.copy(), expression=_str("ARRAY%"))
        )

    def as_string(self, j: exp.Expression) -> exp.Expression:
        return _fn("variant_get", j, _str("$"), _str("string"))

    def as_double(self, j: exp.Expression) -> exp.Expression:
        return _fn("variant_get", j, _str("$"), _str("double"))

    def as_bool(self, j: exp.Expression) -> exp.Expression:
        return _fn("variant_get", j, _str("$"), _str("boolean"))

    def to_json(self, v: exp.Expression) -> exp.Expression:
        return exp.cast(v, "VARIANT")

    def json_text(self, j: exp.Expression) -> exp.Expression:
        return _fn("to_json", j)

    def isfinite(self, x: exp.Expression) -> exp.Expression:
        return exp.LT(this=exp.Abs(this=x), expression=exp.cast(_str("Infinity"), "DOUBLE"))

    def pick(self, x: exp.Expression) -> exp.Expression:
        return exp.IgnoreNulls(this=exp.AnyValue(this=x))

    # Both directions stay in TIMESTAMP_NTZ, whose arithmetic is in UTC: a cast to or from TIMESTAMP (with local
    # time zone) would go through the session's time zone and move day buckets off UTC midnight.
    def _epoch(self) -> exp.Expression:
        return exp.cast(_str("1970-01-01 00:00:00"), self.timestamp_type)

    def epoch_us(self, ts: exp.Expression) -> exp.Expression:
        return _fn("timestampdiff", exp.Var(this="MICROSECOND"), self._epoch(), ts)

    def from_epoch_us(self, us: exp.Expression) -> exp.Expression:
        return _fn("timestampadd", exp.Var(this="MICROSECOND"), us, self._epoch())


class Trino(Dialect):
    """Trino: ``doc`` is a JSON column; a value's kind is read from its canonical text."""

    name = "trino"

    def extract(self, doc: exp.Expression, parts: tuple[str, ...]) -> exp.Expression:
        path = "$" + "".join('["' + p.replace("\\", "\\\\").replace('"', '\\"') + '"]' for p in parts)
        return _fn("json_extract", doc, _str(path))

    def is_kind(self, j: exp.Expression, kind: str) -> exp.Expression:
        text = _fn("json_format", j)
        if kind == "null":
            return exp.EQ(this=text, expression=_str("null"))
        if kind == "boolean":
            return exp.In(this=text, expressions=[_str("true"), _str("false")])
        first = exp.Substring(this=text, start=exp.Literal.number(1), length=exp.Literal.number(1))
        if kind == "string":
            return exp.EQ(this=first, expression=_str('"'))
        if kind == "complex":
            return exp.In(this=first, expressions=[_str("{"), _str("[")])
        return exp.RegexpLike(this=text.copy(), expression=_str("^-?[0-9]"))

    def as_string(self, j: exp.Expression) -> exp.Expression:
        return exp.cast(j, "VARCHAR")

    def to_json(self, v: exp.Expression) -> exp.Expression:
        return exp.cast(v, "JSON")

    def json_text(self, j: exp.Expression) -> exp.Expression:
        return _fn("json_format", j)

    def isfinite(self, x: exp.Expression) -> exp.Expression:
        return _fn("is_finite", x)

    def epoch_us(self, ts: exp.Expression) -> exp.Expression:
        return exp.cast(exp.Mul(this=_fn("to_unixtime", ts), expression=exp.Literal.number(1_000_000)), "BIGINT")

    def from_epoch_us(self, us: exp.Expression) -> exp.Expression:
        return exp.cast(_fn("from_unixtime_nanos", exp.Mul(this=us, expression=exp.Literal.number(1000))),
                        "TIMESTAMP")


DIALECTS: dict[str, Dialect] = {d.name: d for d in (DuckDB(), Spark(), Trino())}


def relation_name(table: str) -> str:
    """The default relation name for a catalogue table: ``cloud.aws.guardduty`` → ``cloud_aws_guardduty``."""
    return table.replace(".", "_")


def compile_sql_plan(query: Query | BoundQuery, dialect: str = "duckdb", relation: str | None = None) -> SqlPlan:
    """Compile ``query`` for ``dialect``; ``relation`` names the table or view holding the records."""
    bound = query if isinstance(query, BoundQuery) else bind(query)
    d = DIALECTS.get(dialect)
    if d is None:
        raise QueryCompileError(f"unknown SQL dialect {dialect!r} (known: {', '.join(DIALECTS)})")
    c = _Compiler(bound, d)
    _prime_paths(c, bound)  # the body reads from _mw_rows exactly when there are document paths
    expression = c.build(relation or relation_name(bound.table.name))
    return SqlPlan(expression, d.name, bound.columns)


def _prime_paths(c: _Compiler, bound: BoundQuery) -> None:
    from minerwatch.compile.binder import doc_paths

    for e in [bound.where, *(it.expr for it in bound.items), *(k.expr for k in bound.keys)]:
        for parts in doc_paths(e):
            c.path_index(parts)


def compile_sql_rows(
    query: Query | BoundQuery, dialect: str, relation: str | None = None, passthrough: tuple[str, ...] = ()
) -> SqlPlan:
    """The per-record form of ``query``: its where-clause and the columns ``PyQuery.project`` gives (for an
    aggregated query, the non-aggregate items and the group keys), plus the relation's ``passthrough`` columns,
    in (time, order) order. A detection run feeds these rows to the throttle, which does the grouping."""
    from dataclasses import replace

    from minerwatch.compile.binder import BoundItem

    bound = query if isinstance(query, BoundQuery) else bind(query)
    if bound.aggregated:
        items = [it for it in bound.items if not it.is_agg]
        items += [BoundItem(k.name, k.expr, None) for k in bound.keys if k.item_index is None]
        columns = [OutCol(it.name, it.expr.type, "item", i) for i, it in enumerate(items)]
        bound = replace(bound, items=items, keys=[], grouped=False, aggregated=False, every_us=None, columns=columns)
    d = DIALECTS.get(dialect)
    if d is None:
        raise QueryCompileError(f"unknown SQL dialect {dialect!r} (known: {', '.join(DIALECTS)})")
    c = _Compiler(bound, d)
    c.passthrough = tuple(passthrough)
    _prime_paths(c, bound)
    expression = c.build(relation or relation_name(bound.table.name))
    return SqlPlan(expression, d.name, bound.columns)


def compile_sql(query: Query | BoundQuery, dialect: str = "duckdb", relation: str | None = None) -> str:
    """Pretty SQL text of ``query`` for ``dialect`` (duckdb, spark or trino)."""
    return compile_sql_plan(query, dialect, relation).sql(pretty=True)


__all__ = ["DIALECTS", "Dialect", "SqlPlan", "compile_sql", "compile_sql_plan", "compile_sql_rows", "relation_name"]
