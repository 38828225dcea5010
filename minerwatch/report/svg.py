"""The report's two pictures as inline SVG: the CPU line chart and the timeline.

Both are built as ``xml.etree`` trees and serialised by it, so every text node and attribute value — instance
ids, timeline lines quoted from logs — is escaped by the serialiser; no string is pasted into markup. The result
is returned as :class:`markupsafe.Markup` so the HTML template embeds it as is.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from minerwatch.alerting.alerts import parse_iso
from minerwatch.wording import count

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d")

SECTION_COLOURS: dict[str, str] = {
    "alert": "#111827",
    "launch_context": "#2563eb",
    "principal_activity": "#7c3aed",
    "persistence": "#db2777",
    "network": "#dc2626",
    "dns": "#d97706",
    "findings": "#059669",
    "config_history": "#65a30d",
    "inspector": "#b45309",
    "cpu": "#0891b2",
    "cost": "#4b5563",
}

_STEPS = (
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
    timedelta(days=1),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=30),
)

MAX_TIMELINE_MARKS = 1200
"""Timeline entries drawn one mark each; beyond this, entries closer than a pixel share a mark."""


def _t(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_iso(text)
    except ValueError:
        return None


def _f(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _svg(width: int, height: int, label: str, css_class: str) -> ET.Element:
    root = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {width} {height}",
            "width": str(width),
            "height": str(height),
            "role": "img",
            "aria-label": label,
            "class": css_class,
        },
    )
    ET.SubElement(root, "title").text = label
    return root


def _text(parent: ET.Element, x: float, y: float, text: str, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, "text", {"x": _f(x), "y": _f(y), **{k.replace("_", "-"): v for k, v in attrs.items()}})
    el.text = text
    return el


def _line(parent: ET.Element, x1: float, y1: float, x2: float, y2: float, **attrs: str) -> ET.Element:
    base = {"x1": _f(x1), "y1": _f(y1), "x2": _f(x2), "y2": _f(y2)}
    return ET.SubElement(parent, "line", {**base, **{k.replace("_", "-"): v for k, v in attrs.items()}})


def _markup(root: ET.Element) -> Markup:
    return Markup(ET.tostring(root, encoding="unicode", short_empty_elements=True))


class TimeScale:
    """Maps instants in [start, end] onto [x0, x1] pixels, with tick marks at round times."""

    def __init__(self, start: datetime, end: datetime, x0: float, x1: float) -> None:
        if end <= start:
            start, end = start - timedelta(hours=1), end + timedelta(hours=1)
        pad = (end - start) * 0.02
        self.start, self.end = start - pad, end + pad
        self.x0, self.x1 = x0, x1

    def x(self, t: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        return self.x0 + (t - self.start).total_seconds() / span * (self.x1 - self.x0)

    def ticks(self, most: int = 8) -> list[tuple[datetime, str]]:
        span = self.end - self.start
        step = next((s for s in _STEPS if span / s <= most), _STEPS[-1])
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = epoch + step * -(-(self.start - epoch) // step)
        out: list[tuple[datetime, str]] = []
        t, last_day = first, None
        while t <= self.end:
            day = t.date()
            if step >= timedelta(days=1):
                label = t.strftime("%Y-%m-%d")
            elif day != last_day:
                label = t.strftime("%m-%d %H:%M")
            else:
                label = t.strftime("%H:%M")
            out.append((t, label))
            last_day = day
            t += step
        return out


def _time_axis(root: ET.Element, scale: TimeScale, y_top: float, y_axis: float) -> None:
    g = ET.SubElement(root, "g", {"class": "axis", "font-size": "10", "fill": "#374151"})
    _line(g, scale.x0, y_axis, scale.x1, y_axis, stroke="#9ca3af")
    for t, label in scale.ticks():
        x = scale.x(t)
        _line(g, x, y_top, x, y_axis, stroke="#e5e7eb")
        _text(g, x, y_axis + 14, label, text_anchor="middle")
    _text(g, scale.x1, y_axis + 28, "UTC", text_anchor="end", fill="#6b7280")


def _alert_markers(root: ET.Element, scale: TimeScale, first: Any, last: Any, y0: float, y1: float) -> None:
    g = ET.SubElement(root, "g", {"class": "alert-span"})
    a, b = _t(first), _t(last)
    if a is None:
        return
    b = b or a
    ET.SubElement(
        g,
        "rect",
        {
            "x": _f(scale.x(a)),
            "y": _f(y0),
            "width": _f(max(scale.x(b) - scale.x(a), 1.5)),
            "height": _f(y1 - y0),
            "fill": "#fde68a",
            "fill-opacity": "0.45",
        },
    )
    ET.SubElement(g, "title").text = f"alert: first matching finding {first}, last {last or first}"


def cpu_chart_svg(chart: dict[str, Any], width: int = 820, height: int = 260) -> Markup:
    """CPU utilisation (%) over time per instance: the datapoints' averages as a line, sustained intervals shaded,
    the threshold dashed, the alert's span highlighted. Without datapoints, each interval is drawn at its mean."""
    left, right, top, bottom = 44.0, 12.0, 12.0, 44.0
    root = _svg(width, height, "CPU utilisation of the alert's instances", "chart cpu-chart")
    instances = [i for i in chart.get("instances") or [] if isinstance(i, dict)]
    times: list[datetime] = []
    for inst in instances:
        times += [t for p in inst.get("points") or [] if (t := _t(p.get("time")))]
        for iv in inst.get("intervals") or []:
            times += [t for k in ("start", "end") if (t := _t(iv.get(k)))]
    times += [t for k in ("first_seen", "last_seen") if (t := _t(chart.get(k)))]
    if not times:
        _text(root, width / 2, height / 2, "no CPU data", text_anchor="middle", fill="#6b7280")
        return _markup(root)
    scale = TimeScale(min(times), max(times), left, width - right)
    y_axis = height - bottom

    def y(pct: float) -> float:
        return top + (100 - max(0.0, min(pct, 100.0))) / 100 * (y_axis - top)

    _alert_markers(root, scale, chart.get("first_seen"), chart.get("last_seen"), top, y_axis)
    grid = ET.SubElement(root, "g", {"class": "axis", "font-size": "10", "fill": "#374151"})
    for pct in (0, 25, 50, 75, 100):
        _line(grid, left, y(pct), width - right, y(pct), stroke="#f3f4f6")
        _text(grid, left - 6, y(pct) + 3, f"{pct}%", text_anchor="end")
    _time_axis(root, scale, top, y_axis)
    for n, inst in enumerate(instances):
        colour = PALETTE[n % len(PALETTE)]
        iid = str(inst.get("instance_id"))
        g = ET.SubElement(root, "g", {"class": "instance", "data-instance": iid})
        for iv in inst.get("intervals") or []:
            a, b = _t(iv.get("start")), _t(iv.get("end"))
            if a is None or b is None:
                continue
            band = ET.SubElement(
                g,
                "rect",
                {
                    "class": "sustained",
                    "x": _f(scale.x(a)),
                    "y": _f(top),
                    "width": _f(max(scale.x(b) - scale.x(a), 1.0)),
                    "height": _f(y_axis - top),
                    "fill": colour,
                    "fill-opacity": "0.08",
                },
            )
            ET.SubElement(band, "title").text = (
                f"{iid}: sustained {iv.get('start')} – {iv.get('end')}, mean {iv.get('mean_average')} %, "
                f"{count(iv.get('datapoints') or 0, 'datapoint')}"
            )
            if not inst.get("points") and isinstance(iv.get("mean_average"), int | float):
                _line(
                    g,
                    scale.x(a),
                    y(iv["mean_average"]),
                    scale.x(b),
                    y(iv["mean_average"]),
                    stroke=colour,
                    stroke_width="2",
                )
        pts = [(t, p["average"]) for p in inst.get("points") or [] if (t := _t(p.get("time")))]
        if pts:
            line = ET.SubElement(
                g,
                "polyline",
                {
                    "class": "cpu-line",
                    "fill": "none",
                    "stroke": colour,
                    "stroke-width": "1.6",
                    "points": " ".join(f"{_f(scale.x(t))},{_f(y(v))}" for t, v in pts),
                },
            )
            ET.SubElement(line, "title").text = f"{iid}: CPUUtilization average ({count(len(pts), 'datapoint')})"
        _text(g, left + 6 + 170 * n, height - 6, f"■ {iid}", fill=colour, font_size="11")
    threshold = chart.get("threshold")
    if isinstance(threshold, int | float):
        g = ET.SubElement(root, "g", {"class": "threshold"})
        _line(g, left, y(threshold), width - right, y(threshold), stroke="#b91c1c", stroke_dasharray="5 4")
        _text(
            g,
            width - right - 2,
            y(threshold) - 4,
            f"threshold {threshold:g} %",
            text_anchor="end",
            fill="#b91c1c",
            font_size="10",
        )
    return _markup(root)


def timeline_svg(
    entries: list[dict[str, Any]],
    lanes: list[str],
    first_seen: Any = None,
    last_seen: Any = None,
    width: int = 820,
) -> Markup:
    """One lane per section, one mark per entry at its time, each with its line as a tooltip."""
    left, right, top, lane_h = 128.0, 12.0, 8.0, 22.0
    timed = [(t, e) for e in entries if isinstance(e, dict) and (t := _t(e.get("time")))]
    present = {str(e.get("section")) for _, e in timed}
    rows = [lane for lane in lanes if lane in present]
    rows += sorted(present - set(rows))
    height = int(top + lane_h * max(len(rows), 1) + 40)
    root = _svg(width, height, "Timeline of the alert's evidence", "chart timeline-chart")
    if not timed:
        _text(root, width / 2, height / 2, "no timeline", text_anchor="middle", fill="#6b7280")
        return _markup(root)
    scale = TimeScale(min(t for t, _ in timed), max(t for t, _ in timed), left, width - right)
    y_axis = top + lane_h * len(rows)
    _alert_markers(root, scale, first_seen, last_seen, top, y_axis)
    lane_y = {lane: top + lane_h * (n + 0.5) for n, lane in enumerate(rows)}
    labels = ET.SubElement(root, "g", {"class": "lanes", "font-size": "11", "fill": "#111827"})
    for lane, ly in lane_y.items():
        _line(labels, left, ly, width - right, ly, stroke="#f3f4f6")
        _text(labels, left - 8, ly + 4, lane, text_anchor="end")
    _time_axis(root, scale, top, y_axis)
    # Entries that fall on the same pixel of a lane share one mark, so a long timeline stays light.
    groups: list[list[tuple[datetime, dict[str, Any]]]]
    if len(timed) > MAX_TIMELINE_MARKS:
        shared: dict[tuple[str, int], list[tuple[datetime, dict[str, Any]]]] = {}
        for t, e in timed:
            shared.setdefault((str(e.get("section")), round(scale.x(t))), []).append((t, e))
        groups = list(shared.values())
    else:
        groups = [[item] for item in timed]
    g = ET.SubElement(root, "g", {"class": "marks"})
    for group in groups:
        t, e = group[0]
        lane = str(e.get("section"))
        dot = ET.SubElement(
            g,
            "circle",
            {
                "cx": _f(scale.x(t)),
                "cy": _f(lane_y[lane]),
                "r": "4" if len(group) == 1 else "5.5",
                "fill": SECTION_COLOURS.get(lane, "#6b7280"),
                "fill-opacity": "0.75",
            },
        )
        lines = [f"{x.get('time')}  {x.get('what')}" for _, x in group[:5]]
        if len(group) > 5:
            lines.append(f"… and {len(group) - 5} more")
        ET.SubElement(dot, "title").text = "\n".join(lines)
    return _markup(root)
