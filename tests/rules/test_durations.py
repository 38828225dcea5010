"""The one duration grammar shared by throttles, the query language, notification settings and CLI windows."""

from __future__ import annotations

import pytest

from minerwatch.durations import parse_duration, unit_seconds


@pytest.mark.parametrize(
    ("text", "default", "seconds"),
    [("30s", None, 30.0), ("5 m", None, 300.0), ("2", "s", 2.0), ("500ms", None, 0.5), ("2 hours", None, 7200.0),
     ("1.5h", None, 5400.0), ("1w", None, 604800.0), (" 3 Days ", None, 259200.0)],
)  # fmt: skip
def test_durations(text: str, default: str | None, seconds: float) -> None:
    assert parse_duration(text, default) == seconds


@pytest.mark.parametrize("text", ["2", "x", "5 parsecs", "5ss", "-1s", "1e3s", ""])
def test_not_durations(text: str) -> None:
    assert parse_duration(text) is None


def test_units_everywhere_agree() -> None:
    from minerwatch.cli.enrich_cmds import parse_window
    from minerwatch.lang.tokens import Source, T, tokenize
    from minerwatch.notify.config import _duration
    from minerwatch.rules.loader import parse_throttle

    assert unit_seconds("mins") == unit_seconds("minute") == 60
    assert parse_window("90m").total_seconds() == _duration("90m") == 5400
    throttle = parse_throttle("1 alert per instance per 2 hours")
    assert throttle is not None and throttle.window_seconds == 7200
    durations = [t for t in tokenize(Source("every 2h")) if t.kind == T.DURATION]
    assert [t.value for t in durations] == [7200]
