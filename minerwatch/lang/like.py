"""``like`` patterns: ``%`` any run, ``_`` one character, ``\\`` escapes the next character. Case-sensitive.

One tokenizer (``like_parts``) serves lint, the Python executor, the SQL compiler and the prefilter.
"""

from __future__ import annotations

import re
from functools import lru_cache


def normalise_like(pattern: str) -> str | None:
    """Drop escapes that mean nothing (``\\b`` is ``b``); None when the pattern ends in a lone escape."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= len(pattern):
                return None
            nxt = pattern[i + 1]
            out.append("\\" + nxt if nxt in "%_\\" else nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


WILD_ANY, WILD_ONE = object(), object()
"""Wildcard tokens of a like pattern (distinct from a literal run that happens to be "%" or "_")."""


def like_parts(pattern: str) -> list[str | object]:
    """A normalised pattern as tokens, in order: ``WILD_ANY`` (%), ``WILD_ONE`` (_) or a literal run
    (unescaped text)."""
    parts: list[str | object] = []
    buf: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            buf.append(pattern[i + 1])
            i += 2
            continue
        if ch in "%_":
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append(WILD_ANY if ch == "%" else WILD_ONE)
        else:
            buf.append(ch)
        i += 1
    if buf:
        parts.append("".join(buf))
    return parts


@lru_cache(maxsize=4096)
def like_regex(pattern: str) -> re.Pattern[str]:
    norm = normalise_like(pattern)
    if norm is None:
        return re.compile(r"(?!)")  # a lone trailing escape matches nothing
    parts = like_parts(norm)
    return re.compile(
        "".join(".*" if p is WILD_ANY else "." if p is WILD_ONE else re.escape(str(p)) for p in parts), re.DOTALL
    )


def like_match(value: str, pattern: str) -> bool:
    return like_regex(pattern).fullmatch(value) is not None
