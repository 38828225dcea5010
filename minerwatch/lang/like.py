"""``like`` patterns: ``%`` any run, ``_`` one character, ``\\`` escapes the next character. Case-sensitive."""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=4096)
def like_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def like_match(value: str, pattern: str) -> bool:
    return like_regex(pattern).fullmatch(value) is not None


def literal_runs(pattern: str) -> list[str]:
    """The wildcard-free runs of a pattern, unescaped (``a%b_c`` → ``[a, b, c]``)."""
    runs: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            cur.append(pattern[i + 1])
            i += 2
            continue
        if ch in "%_":
            if cur:
                runs.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if cur:
        runs.append("".join(cur))
    return runs
