"""The ``--since`` / ``--until`` options shared by ``detect``, ``query`` and ``hunt``: a window on the records' event
time."""

from __future__ import annotations

import typer

from minerwatch.cli.app import fail
from minerwatch.timewindow import TimeWindow, make_window

_FORMS = (
    "an ISO 8601 time (2026-05-01, 2026-05-01T10:00:00Z; UTC without an offset) or a duration back from now (24h, 7d)"
)
SINCE = typer.Option(
    None, "--since", help=f"Only records whose event time is at or after this: {_FORMS}. Export-layout day folders "
    "before it are not read."
)
UNTIL = typer.Option(
    None, "--until", help=f"Only records whose event time is before this: {_FORMS}. Export-layout day folders more "
    "than a day after it are not read."
)


def time_window(since: str | None, until: str | None) -> TimeWindow:
    """The window of the two options; a bad value exits 2 naming the option."""
    try:
        return make_window(since, until)
    except ValueError as exc:
        fail(str(exc))
