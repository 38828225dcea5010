"""Small runtime helpers shared by the generated Python code and the group accumulator.

Every function here implements one rule of docs/query-language.md for values as they appear in canonical
records: ``None`` is null (a missing key and JSON null alike), ``bool`` is never a number, JSON numbers are
``int`` or ``float`` and compare as doubles.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from minerwatch.compile._casemap import LOWER_EXCEPTIONS, UPPER_EXCEPTIONS

NUM_TYPES = (int, float)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_TS = datetime.min.replace(tzinfo=UTC)
_US = timedelta(microseconds=1)
_LOWER = {chr(k): chr(v) for k, v in LOWER_EXCEPTIONS.items()}
_UPPER = {chr(k): chr(v) for k, v in UPPER_EXCEPTIONS.items()}


def finite(x: float | None) -> float | None:
    """Arithmetic results that are infinite or NaN become null (engines disagree on them)."""
    return x if x is not None and x - x == 0.0 else None


def lower(s: str) -> str:
    # Per code point, as SQL engines do: no final-sigma context, no multi-character results.
    if s.isascii():
        return s.lower()
    return "".join([_LOWER.get(c) or c.lower() for c in s])


def upper(s: str) -> str:
    if s.isascii():
        return s.upper()
    return "".join([_UPPER.get(c) or c.upper() for c in s])


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compare_dyn(op: str) -> Callable[[Any, Any], bool | None]:
    """A comparison of two JSON values, decided per record (strings, numbers, or booleans for = / !=)."""
    fn = _OPS[op]
    eq_only = op in ("=", "!=")

    def cmp(a: Any, b: Any) -> bool | None:
        ta, tb = type(a), type(b)
        if ta is str and tb is str:
            return fn(a, b)
        if ta in NUM_TYPES and tb in NUM_TYPES:
            return fn(float(a), float(b))
        if eq_only and ta is bool and tb is bool:
            return fn(a, b)
        return None

    return cmp


def norm_key(v: Any) -> Any:
    """The grouping / distinct-counting identity of a JSON value: strings by text, numbers by double value,
    booleans by value, objects and arrays by their JSON text; null stays null."""
    t = type(v)
    if t is str or v is None:
        return v
    if t is bool:
        return ("b", v)
    if t in NUM_TYPES:
        return ("n", float(v) + 0.0)
    return ("j", orjson.dumps(v))


def order_key(t: datetime | None, rid: Any) -> tuple[Any, ...]:
    """Row order (eventdate, id); null sorts first."""
    return (t is not None, t or MIN_TS, rid is not None, rid if rid is not None else "")


def bucket(t: datetime | None, every_us: int) -> datetime | None:
    """The start of the epoch-aligned bucket holding ``t``."""
    if t is None:
        return None
    us = (t - EPOCH) // _US
    return EPOCH + _US * (us - us % every_us)
