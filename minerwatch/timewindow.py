"""The ``--since`` / ``--until`` window on the records' event time: reading its bounds, and which S3 export-layout
day folders can hold records inside it.

A bound is an ISO 8601 timestamp (``2026-05-01``, ``2026-05-01T10:00``, ``…Z``, ``…+02:00``; without an offset it is
UTC) or a duration back from now (``24h``, ``7d``, the grammar of :mod:`minerwatch.durations`). The window is
``[since, until)``: a record exactly at ``since`` is in, one exactly at ``until`` is out. The window itself is a
predicate of the query (:mod:`minerwatch.compile.window`) or of each hunt sweep (:meth:`TimeWindow.holds`,
:meth:`TimeWindow.seconds`); pruning folders here only saves reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from minerwatch.durations import parse_duration

_EXPORT_DAY = re.compile(r"/(\d{4})/(\d{2})/(\d{2})/")

EXPORT_SLACK = timedelta(days=1)
"""How far a finding's export day can lie after its event day: GuardDuty exports updated findings every 15 minutes,
1 hour or 6 hours, so a finding updated late on day D-1 can land in the folder of day D."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    since: datetime | None = None
    """Inclusive lower bound (UTC), or None."""
    until: datetime | None = None
    """Exclusive upper bound (UTC), or None."""

    def __bool__(self) -> bool:
        return self.since is not None or self.until is not None

    def holds(self, t: datetime | None) -> bool:
        """Whether an event time lies in ``[since, until)``; a record without one lies in no window."""
        if t is None:
            return False
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)

    def seconds(self) -> tuple[int | None, int | None]:
        """The bounds as whole Unix seconds ``[lo, hi)`` that hold exactly the whole-second times the window holds
        (a flow record's ``start``): both rounded up, since ``s >= 10.5`` is ``s >= 11`` and ``s < 10.5`` is
        ``s < 11`` for whole ``s``."""
        return _ceil_seconds(self.since), _ceil_seconds(self.until)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ceil_seconds(t: datetime | None) -> int | None:
    return None if t is None else -((_EPOCH - t) // timedelta(seconds=1))  # exact: no float rounding


def parse_bound(text: str, now: datetime | None = None) -> datetime:
    """``text`` as an instant (UTC): ISO 8601, or a duration (``24h``, ``7d``) meaning that long before ``now``.
    Raises ValueError saying what is accepted."""
    seconds = parse_duration(text)
    if seconds is not None:
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 timestamp (2026-05-01, 2026-05-01T10:00:00Z) nor a duration back "
            "from now (24h, 7d)"
        ) from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def make_window(since: str | None, until: str | None, now: datetime | None = None) -> TimeWindow:
    """The window of two option values (either may be None). Raises ValueError naming the option at fault."""
    now = now or datetime.now(UTC)  # one "now" for both bounds
    bounds: dict[str, datetime | None] = {}
    for option, text in (("--since", since), ("--until", until)):
        try:
            bounds[option] = None if text is None else parse_bound(text, now)
        except ValueError as exc:
            raise ValueError(f"{option}: {exc}") from None
    lo, hi = bounds["--since"], bounds["--until"]
    if lo is not None and hi is not None and lo >= hi:
        raise ValueError(f"--since ({lo.isoformat()}) must be before --until ({hi.isoformat()})")
    return TimeWindow(lo, hi)


def export_day(path: str) -> date | None:
    """The day of an S3 export object (``.../YYYY/MM/DD/<object>``), else None."""
    m = _EXPORT_DAY.search(path.replace("\\", "/"))
    if m is None:
        return None
    try:
        return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return None


def in_days(path: str, since: datetime | None, until: datetime | None) -> bool:
    """False only for an export-layout path whose day folder cannot hold a record of [since, until).

    A folder's day is the day a record was exported, never before its event time and at most
    :data:`EXPORT_SLACK` after it: folder D holds event times in [D - 1 day, D + 1 day). So D is skipped
    when it lies before ``since``'s day (all its records are older), or more than one day after ``until``'s day
    (all its records are at least a whole day after ``until``)."""
    day = export_day(path)
    if day is None:
        return True
    if since is not None and day < since.astimezone(UTC).date():
        return False
    return not (until is not None and day > until.astimezone(UTC).date() + EXPORT_SLACK)
