"""Alert timestamps as text: the fast isoformat path writes exactly what the strftime form writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from minerwatch.alerting.alerts import iso


def _reference(ts: datetime) -> str:
    ts = ts.astimezone(UTC)
    if ts.microsecond:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize("micro", [0, 1, 499, 999, 1000, 123456, 999999])
@pytest.mark.parametrize("tz", [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
@pytest.mark.parametrize("year", [999, 1000, 1970, 2026, 9999])
def test_iso_matches_the_strftime_form(year: int, tz: timezone, micro: int) -> None:
    month, day = (1, 2) if year == 9999 or year == 999 else (12, 31)
    ts = datetime(year, month, day, 23, 59, 59, micro, tzinfo=tz)
    assert iso(ts) == _reference(ts)


def test_iso_truncates_to_milliseconds_and_ends_with_z() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)) == "2026-01-02T03:04:05.999Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05Z"
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 500, tzinfo=UTC)) == "2026-01-02T03:04:05.000Z"
