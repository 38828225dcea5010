"""The HTML report: one self-contained, inert file. Checked as markup, then opened in headless Chromium (Debian's
``/usr/bin/chromium`` driven by Playwright; never a downloaded browser) with every request routed: no console
error, no dialog, no ``img``/``script``/event-handler attribute, the hostile strings shown as text, both SVGs
drawn, nothing fetched from outside the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from minerwatch.report.html import render_html
from minerwatch.report.model import build_report

from .conftest import (
    HOSTILE_ACTOR,
    HOSTILE_DESCRIPTION,
    HOSTILE_TITLE,
    HOSTILE_TYPE,
    IMG,
    SCRIPT,
    Case,
    invoke,
)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _hostile_html(case: Case) -> str:
    return render_html(build_report(case.store(), case.alert_id))


def test_html_is_self_contained_and_inert_markup(hostile: Case) -> None:
    html = _hostile_html(hostile)
    parser = _Markup()
    parser.feed(html)
    names = [t for t, _ in parser.tags]
    assert not {"script", "img", "iframe", "object", "embed", "link", "base", "form"} & set(names)
    for tag, attrs in parser.tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        assert not {"src", "href", "srcset", "action", "xlink:href", "formaction"} & set(attrs), (tag, attrs)
    assert names.count("svg") == 2 and names.count("style") == 1
    assert "<script" not in html.lower() and "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    csp = next(a["content"] for t, a in parser.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert csp is not None and "default-src 'none'" in csp and "script-src" not in csp


def test_html_of_an_alert_never_enriched(enriched: Case, scenario, tmp_path: Path) -> None:
    root, _ = scenario
    state = tmp_path / "state.db"
    invoke("detect", str(root / "guardduty"), "--state", str(state))
    out = tmp_path / "r.html"
    invoke("report", enriched.alert_id, "--state", str(state), "--format", "html", "--out", str(out))
    html = out.read_text()
    assert "The alert has not been enriched" in html and "No CPU chart" in html
    assert html.count("<svg") == 0 and "no actions taken yet" in html


# -- headless Chromium ------------------------------------------------------------------------------------


@dataclass
class Visit:
    page: Page
    console: list[tuple[str, str]] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    @property
    def console_errors(self) -> list[str]:
        return [text for kind, text in self.console if kind == "error"]




def _visit(browser: Browser, path: Path) -> Iterator[Visit]:
    context = browser.new_context(java_script_enabled=True)
    page = context.new_page()
    visit = Visit(page)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:")):
            r.continue_()
        else:
            visit.blocked.append(url)
            r.abort()

    context.route("**/*", route)
    page.on("console", lambda m: visit.console.append((m.type, m.text)))
    page.on("pageerror", lambda e: visit.page_errors.append(str(e)))
    page.on("request", lambda r: visit.requests.append(r.url))

    def dialog(d: Any) -> None:
        visit.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.goto(path.resolve().as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")  # every request the page makes has been made (and blocked)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r)))")  # queued handlers have run
    try:
        yield visit
    finally:
        context.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Any]:
    visits: list[Iterator[Visit]] = []

    def opener(path: Path) -> Visit:
        gen = _visit(browser, path)
        visits.append(gen)
        return next(gen)

    yield opener
    for gen in visits:
        next(gen, None)


def test_harness_catches_unsafe_pages(open_page: Any, tmp_path: Path) -> None:
    """The checks below can fail: a page with the classic injections trips every one of them."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><title>bad</title>"
        '<link rel="stylesheet" href="https://cdn.evil.example/x.css"></head><body>'
        f"<p>{IMG}</p><script>console.error('boom')</script></body></html>"
    )
    visit = open_page(bad)
    assert visit.dialogs == ["1"]
    assert visit.page.locator("img[onerror]").count() == 1
    assert any("boom" in e for e in visit.console_errors)
    assert visit.blocked == ["https://cdn.evil.example/x.css"]


def test_hostile_report_in_headless_chromium(hostile: Case, open_page: Any, tmp_path: Path) -> None:
    out = tmp_path / "case.html"
    invoke("report", hostile.alert_id, "--state", str(hostile.state), "--format", "html", "--out", str(out))
    report = build_report(hostile.store(), hostile.alert_id)
    visit = open_page(out)
    page = visit.page

    assert visit.console_errors == [] and visit.page_errors == []
    assert visit.dialogs == []
    assert visit.blocked == []
    assert visit.requests and all(u.startswith(("file:", "data:")) for u in visit.requests), visit.requests

    assert page.locator("img").count() == 0
    assert page.locator("[onerror]").count() == 0
    assert page.locator("script").count() == 0
    handlers = page.evaluate(
        "() => [...document.querySelectorAll('*')].flatMap(el => [...el.attributes]"
        ".filter(a => a.name.startsWith('on')).map(a => el.tagName + ' ' + a.name))"
    )
    assert handlers == []

    # The hostile strings are on the page as text, exactly.
    assert page.inner_text("#finding-title") == HOSTILE_TITLE
    assert page.inner_text("#finding-description") == HOSTILE_DESCRIPTION
    tags = page.inner_text("#tags")
    assert f"{SCRIPT}={IMG}" in tags
    body = page.inner_text("body")
    for needle in (SCRIPT, IMG, HOSTILE_TYPE, HOSTILE_ACTOR):
        assert needle in body, needle

    # Both pictures are drawn, with the data behind them.
    cpu = page.locator("svg.cpu-chart")
    assert cpu.count() == 1 and cpu.locator("polyline").count() == 1
    assert cpu.bounding_box() is not None and cpu.bounding_box()["width"] > 300  # type: ignore[index]
    points = cpu.locator("polyline").get_attribute("points") or ""
    assert len(points.split()) == report["cpu_chart"]["instances"][0]["points_total"] > 0
    timeline = page.locator("svg.timeline-chart")
    assert timeline.count() == 1
    assert timeline.locator("circle").count() == len(report["timeline"]) > 0
    titles = page.evaluate("() => [...document.querySelectorAll('svg title')].map(t => t.textContent)")
    assert any(HOSTILE_TYPE in t for t in titles)
    assert page.locator("svg script, svg foreignObject").count() == 0
