"""The alert's timeline: every section's evidence (and the alert's own first and last finding) in time order.

Entries are ``{"time", "section", "what", "source", "instance_id", "index"}`` where ``index`` is the record's
position in its section's ``evidence``. Times are compared as instants (``…:11Z`` and ``…:11.123Z`` sort
correctly); ties keep section order, then evidence order. Records without a time are left out and counted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minerwatch.alerting.alerts import parse_iso
from minerwatch.enrich.sections import SECTION_ORDER, TIMELINE


def _instant(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def build_timeline(alert: dict[str, Any], sections: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    entries: list[tuple[datetime, int, int, dict[str, Any]]] = []
    instance = (alert.get("key") or {}).get("instance_id")
    first, last = _instant(alert.get("first_seen")), _instant(alert.get("last_seen"))
    if first is not None:
        what = f"alert {alert.get('alert_id')} opened: first matching finding ({alert.get('rule_id')})"
        entries.append(
            (
                first,
                -1,
                0,
                {
                    "time": alert["first_seen"],
                    "section": "alert",
                    "what": what,
                    "source": "state store",
                    "instance_id": instance,
                },
            )
        )
    if last is not None and last != first:
        what = f"alert {alert.get('alert_id')}: last matching finding ({alert.get('event_count')} in all)"
        entries.append(
            (
                last,
                -1,
                1,
                {
                    "time": alert["last_seen"],
                    "section": "alert",
                    "what": what,
                    "source": "state store",
                    "instance_id": instance,
                },
            )
        )
    names = [n for n in SECTION_ORDER if n in sections]
    names += sorted(n for n in sections if n not in SECTION_ORDER and n != TIMELINE)
    for rank, name in enumerate(names):
        for i, e in enumerate(sections[name].get("evidence") or []):
            t = _instant(e.get("time"))
            if t is None:
                continue
            entry = {
                "time": e["time"],
                "section": name,
                "what": e.get("what") or name,
                "source": e.get("source"),
                "instance_id": e.get("instance_id"),
                "index": i,
            }
            entries.append((t, rank, i, entry))
    entries.sort(key=lambda x: (x[0], x[1], x[2]))
    return [e for *_, e in entries]


def timeline_section(alert: dict[str, Any], sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The timeline as it is stored beside the sections (``entries`` holds the list)."""
    entries = build_timeline(alert, sections)
    undated = sum(1 for s in sections.values() for e in s.get("evidence") or [] if _instant(e.get("time")) is None)
    return {
        "name": TIMELINE,
        "status": "ok" if entries else "empty",
        "entries": entries,
        "counts": {
            name: sum(1 for e in entries if e["section"] == name)
            for name in dict.fromkeys(e["section"] for e in entries)
        },
        "undated": undated,
    }
