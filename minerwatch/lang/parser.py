"""Recursive-descent parser: tokens -> ``Query``.

Precedence is SQL's (lowest first): ``or``, ``and``, ``not``, comparison / like / in / is, ``+ -``, ``* /``.
"""

from __future__ import annotations

from minerwatch.errors import QuerySyntaxError
from minerwatch.lang.ast import (
    AGGREGATES,
    SCALAR_FUNCS,
    BinOp,
    Expr,
    Func,
    GroupBy,
    In,
    IsNull,
    Like,
    Literal,
    Not,
    Path,
    Query,
    SelectItem,
    to_text,
)
from minerwatch.lang.tokens import Source, T, Token, tokenize

_ADDITIVE = ("+", "-")
_MULTIPLICATIVE = ("*", "/")
_COMPARISON = ("=", "!=", "<", "<=", ">", ">=")


class Parser:
    def __init__(self, src: Source) -> None:
        self.src = src
        self.tokens = tokenize(src)
        self.i = 0

    # -- token helpers -------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind is not T.EOF:
            self.i += 1
        return tok

    def at_kw(self, *words: str) -> bool:
        return self.tok.kind is T.KEYWORD and self.tok.value in words

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind is T.OP and self.tok.value in ops

    def expect_kw(self, word: str) -> Token:
        if not self.at_kw(word):
            raise self.error(f"expected '{word}'")
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            raise self.error(f"expected '{op}'")
        return self.advance()

    def error(self, message: str, tok: Token | None = None) -> QuerySyntaxError:
        tok = tok or self.tok
        found = "end of query" if tok.kind is T.EOF else f"{tok.kind.value} {tok.text!r}"
        return self.src.error(f"{message}, found {found}", tok.pos)

    # -- query ---------------------------------------------------------------------------------------
    def query(self) -> Query:
        start = self.expect_kw("from")
        table = self.table_name()
        where = select = group = None
        if self.at_kw("where"):
            self.advance()
            where = self.expr()
        if self.at_kw("select"):
            self.advance()
            select = self.select_list()
        if self.at_kw("group"):
            group = self.group_by()
        if self.tok.kind is not T.EOF:
            raise self.error("expected 'where', 'select', 'group' or the end of the query")
        return Query(start.pos, table, where, select, group, text=self.src.text, file=self.src.file)

    def table_name(self) -> str:
        parts = [self.ident("table name")]
        while self.at_op("."):
            self.advance()
            parts.append(self.ident("table name segment"))
        return ".".join(parts).lower()

    def ident(self, what: str) -> str:
        # Keywords are allowed as path/table segments after the first (``resource.type``) — handled by the
        # tokenizer; here any identifier-shaped keyword is also accepted as a segment where unambiguous.
        tok = self.tok
        if tok.kind is T.IDENT:
            return str(self.advance().value)
        raise self.error(f"expected {what}")

    def select_list(self) -> tuple[SelectItem, ...]:
        items = [self.select_item()]
        while self.at_op(","):
            self.advance()
            items.append(self.select_item())
        seen: dict[str, SelectItem] = {}
        for item in items:
            key = item.name.lower()
            if key in seen:
                raise self.src.error(f"duplicate output column {item.name!r}", item.pos)
            seen[key] = item
        return tuple(items)

    def select_item(self) -> SelectItem:
        start = self.tok
        expr = self.expr()
        alias = None
        if self.at_kw("as"):
            self.advance()
            alias = self.ident("column alias after 'as'")
        if alias:
            name = alias
        elif isinstance(expr, Path):
            name = expr.parts[-1]
        elif isinstance(expr, Func) and expr.name in AGGREGATES and not expr.args:
            name = expr.name
        else:
            name = to_text(expr)
        return SelectItem(start.pos, expr, alias, name)

    def group_by(self) -> GroupBy:
        start = self.expect_kw("group")
        every = None
        if self.at_kw("every"):
            self.advance()
            if self.tok.kind is not T.DURATION:
                raise self.error("expected a duration such as 5m, 1h or 1d after 'every'")
            every = float(self.advance().value)
            if every <= 0:
                raise self.error("the 'every' duration must be positive")
        self.expect_kw("by")
        keys = [self.expr()]
        while self.at_op(","):
            self.advance()
            keys.append(self.expr())
        return GroupBy(start.pos, tuple(keys), every)

    # -- expressions ---------------------------------------------------------------------------------
    def expr(self) -> Expr:
        return self.or_()

    def or_(self) -> Expr:
        left = self.and_()
        while self.at_kw("or"):
            tok = self.advance()
            left = BinOp(tok.pos, "or", left, self.and_())
        return left

    def and_(self) -> Expr:
        left = self.not_()
        while self.at_kw("and"):
            tok = self.advance()
            left = BinOp(tok.pos, "and", left, self.not_())
        return left

    def not_(self) -> Expr:
        if self.at_kw("not"):
            tok = self.advance()
            return Not(tok.pos, self.not_())
        return self.comparison()

    def comparison(self) -> Expr:
        left = self.additive()
        if self.at_op(*_COMPARISON):
            tok = self.advance()
            return BinOp(tok.pos, str(tok.value), left, self.additive())
        negated = False
        if self.at_kw("not") and self.tokens[self.i + 1].kind is T.KEYWORD and self.tokens[self.i + 1].value in (
            "like",
            "in",
        ):
            self.advance()
            negated = True
        if self.at_kw("like"):
            tok = self.advance()
            if self.tok.kind is not T.STRING:
                raise self.error("expected a string pattern after 'like'")
            return Like(tok.pos, left, str(self.advance().value), negated)
        if self.at_kw("in"):
            tok = self.advance()
            self.expect_op("(")
            items = [self.additive()]
            while self.at_op(","):
                self.advance()
                items.append(self.additive())
            self.expect_op(")")
            return In(tok.pos, left, tuple(items), negated)
        if self.at_kw("is"):
            tok = self.advance()
            neg = False
            if self.at_kw("not"):
                self.advance()
                neg = True
            self.expect_kw("null")
            return IsNull(tok.pos, left, neg)
        return left

    def additive(self) -> Expr:
        left = self.multiplicative()
        while self.at_op(*_ADDITIVE):
            tok = self.advance()
            left = BinOp(tok.pos, str(tok.value), left, self.multiplicative())
        return left

    def multiplicative(self) -> Expr:
        left = self.atom()
        while self.at_op(*_MULTIPLICATIVE):
            tok = self.advance()
            left = BinOp(tok.pos, str(tok.value), left, self.atom())
        return left

    def atom(self) -> Expr:
        tok = self.tok
        if tok.kind is T.STRING:
            self.advance()
            return Literal(tok.pos, tok.value)
        if tok.kind is T.NUMBER:
            self.advance()
            return Literal(tok.pos, tok.value)
        if tok.kind is T.OP and tok.value == "-" and self.tokens[self.i + 1].kind is T.NUMBER:
            self.advance()
            num = self.advance()
            return Literal(tok.pos, -num.value)  # type: ignore[operator]
        if tok.kind is T.KEYWORD and tok.value in ("true", "false", "null"):
            self.advance()
            return Literal(tok.pos, {"true": True, "false": False, "null": None}[str(tok.value)])
        if tok.kind is T.OP and tok.value == "(":
            self.advance()
            inner = self.expr()
            self.expect_op(")")
            if isinstance(inner, BinOp):
                inner = BinOp(inner.pos, inner.op, inner.left, inner.right, parenthesized=True)
            return inner
        if tok.kind is T.IDENT:
            if self.tokens[self.i + 1].kind is T.OP and self.tokens[self.i + 1].value == "(":
                return self.func()
            parts = [str(self.advance().value)]
            while self.at_op("."):
                self.advance()
                parts.append(self.ident("field name after '.'"))
            return Path(tok.pos, tuple(parts))
        raise self.error("expected a field, a value or '('")

    def func(self) -> Func:
        tok = self.advance()
        name = str(tok.value).lower()
        if name not in AGGREGATES and name not in SCALAR_FUNCS:
            known = ", ".join(sorted(AGGREGATES | SCALAR_FUNCS))
            raise self.src.error(f"unknown function {tok.text!r} (known: {known})", tok.pos)
        self.expect_op("(")
        args: list[Expr] = []
        if self.at_op("*") and name == "count":
            self.advance()
        elif not self.at_op(")"):
            args.append(self.expr())
            while self.at_op(","):
                self.advance()
                args.append(self.expr())
        self.expect_op(")")
        return Func(tok.pos, name, tuple(args))


def parse_query(text: str, file: str | None = None, line_offset: int = 0) -> Query:
    """Parse LINQ text. ``line_offset`` is the number of lines before the query in ``file`` (rule documents)."""
    return Parser(Source(text, file, line_offset)).query()


def parse_expr(text: str) -> Expr:
    p = Parser(Source(text))
    expr = p.expr()
    if p.tok.kind is not T.EOF:
        raise p.error("unexpected text after the expression")
    return expr
