"""Plain-text formatting shared by the Markdown and HTML renderers. Nothing here escapes: callers do."""

from __future__ import annotations

from typing import Any

from minerwatch.wording import count

EVIDENCE_ROWS = 25
"""Evidence records shown per section in Markdown and HTML; the JSON report keeps every one."""

TIMELINE_ROWS = 1000
"""Timeline entries listed in Markdown and HTML; the JSON report keeps every one."""


def usd(value: Any) -> str:
    return f"${value:,.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def hours(value: Any) -> str:
    return f"{value:.2f} h" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def mitre(value: Any) -> list[str]:
    """``["Impact (TA0040)", "Resource Hijacking (T1496)"]`` from ``{"tactics": [...], "techniques": [...]}``."""
    out: list[str] = []
    if not isinstance(value, dict):
        return out
    for kind in ("tactics", "techniques"):
        for ref in value.get(kind) or []:
            if isinstance(ref, dict):
                out.append(f"{ref.get('name')} ({ref.get('id')})")
    return out


def tag_text(tag: dict[str, str]) -> str:
    return f"{tag['key']}={tag['value']}" if tag.get("value") else str(tag.get("key"))


def actions_text(actions: dict[str, Any]) -> str:
    """``2 changes, 5 read-only calls, 1 failed call, 3 step results, 1 checklist item ticked``: what the audit
    log holds, changes apart from reads."""
    parts = [count(actions.get("changed", 0), "change"), count(actions.get("read_only", 0), "read-only call")]
    if actions.get("failed"):
        parts.append(count(actions["failed"], "failed call"))
    if actions.get("steps"):
        parts.append(count(actions["steps"], "step result"))
    if actions.get("checklist"):
        parts.append(count(actions["checklist"], "checklist item") + " ticked")
    return ", ".join(parts)


def audit_outcome(entry: dict[str, Any]) -> str:
    return str(entry.get("outcome") or "—")


def evidence_rows(section: dict[str, Any], limit: int = EVIDENCE_ROWS) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` evidence records of a section and how many more there are."""
    evidence = [e for e in section.get("evidence") or [] if isinstance(e, dict)]
    return evidence[:limit], max(len(evidence) - limit, 0)


def source_line(section: dict[str, Any]) -> str | None:
    """``--flow: 24 files, 3,340 records read, 143 accepted, 0 rejected`` from a section's ``source``."""
    src = section.get("source")
    if not isinstance(src, dict) or not src:
        return None
    parts = []
    for key, label in (
        ("files", "files"),
        ("records_read", "records read"),
        ("accepted", "accepted"),
        ("rejected", "rejected"),
        ("api_calls", "API calls"),
        ("datapoints", "datapoints"),
    ):
        value = src.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{value:,} {label}")
    option = src.get("option") or "source"
    return f"{option}: {', '.join(parts)}" if parts else str(option)
