"""Counts in running text take the right number."""

from __future__ import annotations

from minerwatch.wording import count, plural


def test_count_agrees_in_number() -> None:
    assert count(1, "delivery") == "1 delivery"
    assert count(2, "delivery") == "2 deliveries"
    assert count(0, "datapoint") == "0 datapoints"
    assert count(1, "matched finding delivery") == "1 matched finding delivery"
    assert count(3, "matched finding delivery") == "3 matched finding deliveries"
    assert count(1500, "byte", thousands=True) == "1,500 bytes"
    assert count(1, "entry") == "1 entry" and count(2, "entry") == "2 entries"
    assert [plural(w) for w in ("query", "day", "box", "call", "checklist item")] == [
        "queries", "days", "boxes", "calls", "checklist items"
    ]
