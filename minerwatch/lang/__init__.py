"""The LINQ query language: tokens -> parser -> AST (positions on every node) -> lint."""

from minerwatch.lang.ast import Query
from minerwatch.lang.parser import parse_query

__all__ = ["Query", "parse_query"]
