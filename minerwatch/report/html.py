"""The case report as one self-contained HTML file.

Jinja2 with autoescaping on renders ``templates/report.html.j2``: every value from findings, logs and the alert
is escaped; the only markup inserted as is comes from :mod:`minerwatch.report.svg`, which builds its SVG as XML
trees. The page has inline CSS and SVG, no script and no external reference, and a Content-Security-Policy that
forbids scripts and every fetch, so it opens offline and stays inert whatever the findings said.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from minerwatch.enrich.sections import SECTION_ORDER
from minerwatch.report import format as F
from minerwatch.report.svg import cpu_chart_svg, timeline_svg
from minerwatch.wording import count


def _pretty(value: Any) -> str:
    # A plain str, so autoescaping still applies to it.
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _compact(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= 400 else text[:400] + " …"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("minerwatch.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        usd=F.usd, hours=F.hours, mitre=F.mitre, tag_text=F.tag_text, pretty=_pretty, compact=_compact, counted=count,
        actions_text=F.actions_text,
    )
    return env


_ENV = _environment()


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _section_views(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each section with the keys the template reads always present (sections are stored data)."""
    views = []
    for name, section in report["sections"].items():
        if not isinstance(section, dict):
            continue
        rows, more = F.evidence_rows(section)
        views.append(
            {
                "name": name,
                "title": report["section_titles"].get(name, name),
                "status": _str(section.get("status") or "unknown"),
                "headline": _str(section.get("headline") or section.get("reason")),
                "warnings": [_str(w) for w in section.get("warnings") or []],
                "source": F.source_line(section),
                "summary": section.get("summary") or None,
                "rows": [{k: _str(e.get(k)) for k in ("time", "what", "source")} for e in rows],
                "more": more,
            }
        )
    return views


def report_view(report: dict[str, Any]) -> dict[str, Any]:
    """What the report template reads besides the report itself: sections, the timeline, the two SVG figures
    (also used by the console's case page)."""
    timeline = [
        {k: _str(e.get(k)) for k in ("time", "section", "what", "source")}
        for e in report["timeline"]
        if isinstance(e, dict)
    ]
    chart = report["cpu_chart"]
    alert = report["alert"]
    return {
        "r": {**report, "timeline": timeline},
        "sections": _section_views(report),
        "timeline_rows": F.TIMELINE_ROWS,
        "cpu_svg": cpu_chart_svg(chart) if chart.get("available") else None,
        "timeline_svg": (
            timeline_svg(timeline, ["alert", *SECTION_ORDER], alert.get("first_seen"), alert.get("last_seen"))
            if timeline
            else None
        ),
    }


def render_html(report: dict[str, Any]) -> str:
    """The report dict of :func:`~minerwatch.report.model.build_report` as one HTML document."""
    return _ENV.get_template("report.html.j2").render(**report_view(report))
