"""Counts in running text: "1 delivery", "2 deliveries", never "1 deliveries"."""

from __future__ import annotations

_IRREGULAR = {"entry": "entries", "delivery": "deliveries", "query": "queries", "packet": "packets"}


def plural(word: str) -> str:
    """The plural of an English noun as the tool uses them (the last word of ``word`` changes)."""
    head, _, last = word.rpartition(" ")
    if last in _IRREGULAR:
        many = _IRREGULAR[last]
    elif last.endswith(("s", "x", "ch", "sh")):
        many = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        many = last[:-1] + "ies"
    else:
        many = last + "s"
    return f"{head} {many}" if head else many


def count(n: int, word: str, many: str | None = None, *, thousands: bool = False) -> str:
    """``n`` and ``word`` in the right number: ``count(1, "delivery")`` → "1 delivery"."""
    number = f"{n:,}" if thousands else str(n)
    return f"{number} {word if n == 1 else (many or plural(word))}"
