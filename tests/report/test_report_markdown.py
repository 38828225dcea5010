"""Markdown: hostile text from findings and logs cannot become Markdown links, images or HTML, and cannot break
tables; checked by rendering the report with markdown-it-py (CommonMark + tables)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from markdown_it import MarkdownIt

from minerwatch.report.markdown import code, render_markdown, text
from minerwatch.report.model import build_report

from .conftest import HOSTILE_ACTOR, HOSTILE_DESCRIPTION, HOSTILE_TITLE, IMG, MD_LINK, SCRIPT, Case, invoke

MD = MarkdownIt("commonmark").enable("table")


class _Elements(HTMLParser):
    """Element names, and every text run with whether it sits inside a <code> element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.texts: list[tuple[str, bool]] = []
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._code += tag == "code"

    def handle_endtag(self, tag: str) -> None:
        self._code -= tag == "code"

    def handle_data(self, data: str) -> None:
        self.texts.append((data, self._code > 0))


def _parse(markdown: str) -> _Elements:
    p = _Elements()
    p.feed(MD.render(markdown))
    return p


HOSTILE_VALUES = [
    SCRIPT,
    IMG,
    MD_LINK,
    "![x](http://evil.example/x.png)",
    "<http://evil.example/x>",
    "a `tick` and ``two`` and ```",
    "`starts with a tick",
    " padded ",
    "pipe | in | cell",
    "line\nbreak\r\n# heading\n- item",
    "<!-- comment -->",
    "&lt;entity&gt; &amp;",
    "*emph* _under_ **strong** ~~del~~",
    "[ref]: http://evil.example",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_code_span_is_literal(value: str) -> None:
    html = MD.render(f"x {code(value)} y")
    parsed = _parse(f"x {code(value)} y")
    assert [t for t, _ in parsed.tags] == ["p", "code"], html
    shown = "".join(t for t, inside in parsed.texts if inside)
    assert shown == " ".join(value.replace("\r\n", "\n").split("\n"))


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_code_span_in_a_table_keeps_the_columns(value: str) -> None:
    doc = f"| a | b | c |\n| --- | --- | --- |\n| {code(value, True)} | {code('mid', True)} | {text(value)} |\n"
    parsed = _parse(doc)
    assert sum(1 for t, _ in parsed.tags if t == "td") == 3, MD.render(doc)
    assert not {t for t, _ in parsed.tags} & {"a", "img", "script", "em", "strong", "h1"}


@pytest.mark.parametrize("value", HOSTILE_VALUES)
def test_text_is_literal(value: str) -> None:
    parsed = _parse(f"- {text(value)}")
    assert [t for t, _ in parsed.tags] == ["ul", "li"], MD.render(f"- {text(value)}")
    shown = "".join(t for t, _ in parsed.texts).strip()
    assert shown == " ".join(value.replace("\r\n", "\n").split("\n")).strip()


def test_hostile_report_renders_inert(hostile: Case) -> None:
    markdown = render_markdown(build_report(hostile.store(), hostile.alert_id))
    parsed = _parse(markdown)
    tags = {t for t, _ in parsed.tags}
    assert not tags & {"a", "img", "script", "iframe", "style"}, tags
    assert all(not any(k.startswith("on") for k in attrs) for _, attrs in parsed.tags)
    # The hostile strings are shown, and only ever inside code spans.
    shown = [t for t, inside in parsed.texts if inside]
    for needle in (HOSTILE_TITLE, HOSTILE_DESCRIPTION, HOSTILE_ACTOR, f"{SCRIPT}={IMG}"):
        assert any(needle in t for t in shown), needle
    for t, inside in parsed.texts:
        if "onerror" in t or "<script" in t or "javascript:" in t:
            assert inside, t
    # Summary and section tables keep their shape.
    html = MD.render(markdown)
    assert html.count("<table>") >= 3
    for table in html.split("<table>")[1:]:
        body = table.split("</table>")[0]
        head_cols = len(re.findall(r"<th[ >]", body.split("</thead>")[0]))
        for row in body.split("<tbody>")[-1].split("<tr>")[1:]:
            assert len(re.findall(r"<td[ >]", row)) == head_cols, row


def test_cli_markdown_to_stdout(enriched: Case) -> None:
    res = invoke("report", enriched.alert_id, "--state", str(enriched.state))
    out = res.stdout
    assert out.startswith(f"# Case report `{enriched.alert_id}`")
    for heading in (
        "## Summary",
        "## Enrichment",
        "## Timeline (",
        "## Actions taken (0)",
        "## Response checklist (",
        "## Investigation steps",
        "## Notes",
    ):
        assert heading in out
    assert "no actions taken yet" in out
    assert "- [ ] Confirm cryptocurrency mining activity" in out
