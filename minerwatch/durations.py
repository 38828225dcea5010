"""The one duration grammar: a number and a unit (``500ms``, ``30s``, ``5m``, ``2 hours``, ``1d``, ``1w``).

Used by rule throttles ("per 2 hours"), the query language (``every 5m``), the notification settings
(``timeout: 30s``) and command options (``--window 24h``).
"""

from __future__ import annotations

import re

UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hr": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
    "w": 604800, "week": 604800,
}  # fmt: skip
"""Seconds per unit; the plural of a word unit (``hours``, ``mins``) means its singular."""
_WORDS = frozenset(k for k in UNIT_SECONDS if len(k) > 1 and k != "ms")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)?\s*$")


def unit_seconds(unit: str) -> float | None:
    """Seconds in one ``unit`` (any case, singular or plural); None for a word that is not a unit."""
    low = unit.lower()
    if low in UNIT_SECONDS:
        return UNIT_SECONDS[low]
    return UNIT_SECONDS[low[:-1]] if low.endswith("s") and low[:-1] in _WORDS else None


def parse_duration(text: str, default_unit: str | None = None) -> float | None:
    """``"30s"``, ``"5 m"``, ``"2 hours"`` → seconds; a bare number is in ``default_unit`` (None: a unit is
    required). None when the text is not a duration."""
    m = _DURATION.match(text)
    if m is None:
        return None
    unit = m.group(2) or default_unit
    seconds = unit_seconds(unit) if unit else None
    return None if seconds is None else float(m.group(1)) * seconds
