"""The inline SVGs: well-formed XML whatever the text, hostile text only as text, and the data drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from minerwatch.report.svg import MAX_TIMELINE_MARKS, TimeScale, cpu_chart_svg, timeline_svg

from .conftest import IMG, SCRIPT

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _all(root: ET.Element, tag: str) -> list[ET.Element]:
    return list(root.iter(NS + tag))


def _t(minutes: int) -> str:
    return (datetime(2025, 3, 10, 8, tzinfo=UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_cpu_chart_draws_every_point_and_escapes_ids() -> None:
    hostile_id = f"i-{SCRIPT}{IMG}"
    chart = {
        "threshold": 80.0,
        "first_seen": _t(30),
        "last_seen": _t(90),
        "instances": [
            {
                "instance_id": hostile_id,
                "points": [{"time": _t(5 * n), "average": float(n % 100), "maximum": None} for n in range(40)],
                "intervals": [{"start": _t(20), "end": _t(60), "mean_average": 95.0, "datapoints": 8}],
            }
        ],
    }
    svg = str(cpu_chart_svg(chart))
    root = _parse(svg)
    assert root.tag == NS + "svg" and not _all(root, "script") and not _all(root, "img")
    [line] = _all(root, "polyline")
    assert len(line.get("points", "").split()) == 40
    # Points go left to right, higher CPU higher up (smaller y).
    xy = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
    assert [x for x, _ in xy] == sorted(x for x, _ in xy)
    assert xy[10][1] < xy[1][1]
    texts = [el.text or "" for el in root.iter() if el.text]
    assert any(hostile_id in t for t in texts)
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert [g.get("data-instance") for g in root.iter(NS + "g") if g.get("class") == "instance"] == [hostile_id]
    assert any("threshold 80 %" == (el.text or "") for el in _all(root, "text"))


def test_cpu_chart_without_points_draws_interval_means() -> None:
    chart = {
        "threshold": 80.0,
        "instances": [
            {
                "instance_id": "i-1",
                "points": [],
                "intervals": [
                    {"start": _t(0), "end": _t(60), "mean_average": 90.0},
                    {"start": _t(120), "end": _t(180), "mean_average": 97.5},
                ],
            }
        ],
    }
    root = _parse(str(cpu_chart_svg(chart)))
    assert not _all(root, "polyline")
    bands = [r for r in _all(root, "rect") if r.get("class") == "sustained"]
    assert len(bands) == 2
    means = [ln for ln in _all(root, "line") if ln.get("stroke-width") == "2"]
    assert len(means) == 2 and float(means[1].get("y1", 0)) < float(means[0].get("y1", 0))


def test_cpu_chart_of_nothing() -> None:
    root = _parse(str(cpu_chart_svg({"instances": []})))
    assert [t.text for t in _all(root, "text")] == ["no CPU data"]


def test_timeline_lanes_marks_and_tooltips() -> None:
    entries = [
        {"time": _t(0), "section": "principal_activity", "what": "CreateUser x"},
        {"time": _t(10), "section": "findings", "what": f"finding {SCRIPT} {IMG}"},
        {"time": _t(20), "section": "alert", "what": "alert opened"},
        {"time": "not a time", "section": "dns", "what": "dropped"},
        {"time": _t(30), "section": f"odd{IMG}", "what": "unknown lane"},
    ]
    svg = str(timeline_svg(entries, ["alert", "principal_activity", "findings", "dns"], _t(20), _t(25)))
    root = _parse(svg)
    labels = [t.text for t in root.iter(NS + "text") if t.get("text-anchor") == "end" and t.text != "UTC"]
    assert labels == ["alert", "principal_activity", "findings", f"odd{IMG}"]  # dns has no timed entry
    marks = _all(root, "circle")
    assert len(marks) == 4
    tips = [c.find(NS + "title") for c in marks]
    assert any(t is not None and f"finding {SCRIPT} {IMG}" in (t.text or "") for t in tips)
    assert not _all(root, "script") and "<img" not in svg


def test_timeline_merges_marks_when_long() -> None:
    n = MAX_TIMELINE_MARKS * 3
    entries = [{"time": _t(i % 600), "section": "network", "what": f"flow {i}"} for i in range(n)]
    root = _parse(str(timeline_svg(entries, ["network"])))
    marks = _all(root, "circle")
    assert len(marks) < MAX_TIMELINE_MARKS
    shown = sum(
        int(t.split("and ")[1].split()[0]) + 5 if "more" in t else t.count("\n") + 1
        for c in marks
        if (t := (c.find(NS + "title").text or ""))
    )  # type: ignore[union-attr]
    assert shown == n


def test_time_scale_ticks_are_round_and_inside() -> None:
    start, end = datetime(2025, 3, 10, 7, 55, tzinfo=UTC), datetime(2025, 3, 10, 18, 0, tzinfo=UTC)
    scale = TimeScale(start, end, 0, 800)
    ticks = scale.ticks()
    assert 3 <= len(ticks) <= 8
    assert all(t.minute == 0 and scale.start <= t <= scale.end for t, _ in ticks)
    assert ticks[0][1].startswith("03-10 ") and ":" in ticks[1][1]
    assert 0 <= scale.x(start) < scale.x(end) <= 800
