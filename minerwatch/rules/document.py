"""A rule document as sections of blocks, from markdown-it-py tokens with their source lines.

``split_sections`` finds the ``# Title`` and each ``##`` section; a section's blocks (paragraphs, lists with
their items' plain text, fenced code) carry 1-based source lines, and its body is kept verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NoReturn

from markdown_it import MarkdownIt
from markdown_it.token import Token

from minerwatch.errors import RuleError
from minerwatch.rules.model import RuleWarning

__all__ = ["Block", "Ctx", "Item", "Section", "normalise_text", "split_sections"]

_MD = MarkdownIt("commonmark")


@dataclass
class Item:
    text: str
    line: int


@dataclass
class Block:
    kind: str  # paragraph | list | fence | code | heading | other
    line: int
    text: str = ""
    tag: str = ""
    strong: list[str] = field(default_factory=list)
    items: list[Item] = field(default_factory=list)
    content: str = ""


@dataclass
class Section:
    title: str
    key: str
    line: int
    blocks: list[Block]
    body: str


class Ctx:
    """Source text, file name and collected warnings for one document."""

    def __init__(self, text: str, file: str | None) -> None:
        self.file = file
        self.lines = text.split("\n")
        self.warnings: list[RuleWarning] = []

    def source_line(self, line: int | None) -> str | None:
        if line is None or not 1 <= line <= len(self.lines):
            return None
        return self.lines[line - 1]

    def error(self, message: str, line: int | None, col: int | None = None) -> NoReturn:
        raise RuleError(message, file=self.file, line=line, col=col, source_line=self.source_line(line))

    def warn(self, message: str, line: int | None, code: str | None = None) -> None:
        self.warnings.append(RuleWarning(message=message, line=line, code=code))

    def col_of(self, line: int, needle: str) -> int | None:
        src = self.source_line(line)
        if src is None or not needle:
            return None
        pos = src.find(needle)
        return pos + 1 if pos >= 0 else None


def _plain(inline: Token | None) -> str:
    """Inline text with Markdown emphasis, links and code marks removed, whitespace collapsed."""
    if inline is None:
        return ""
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return " ".join("".join(parts).split())


def _strong_texts(inline: Token | None) -> list[str]:
    out: list[str] = []
    current: list[str] | None = None
    for child in (inline.children or []) if inline is not None else []:
        if child.type == "strong_open":
            current = []
        elif child.type == "strong_close" and current is not None:
            out.append(" ".join("".join(current).split()))
            current = None
        elif current is not None and child.type in ("text", "code_inline"):
            current.append(child.content)
    return out


def _close_index(tokens: list[Token], start: int) -> int:
    opening = tokens[start]
    close_type = opening.type.removesuffix("_open") + "_close"
    for j in range(start + 1, len(tokens)):
        tok = tokens[j]
        if tok.nesting == -1 and tok.level == opening.level and tok.type == close_type:
            return j
    return len(tokens) - 1


def _line(tok: Token) -> int:
    return tok.map[0] + 1 if tok.map else 0


def _list_items(tokens: list[Token], list_level: int) -> list[Item]:
    """Text of each direct item of a list (its own paragraphs; nested lists stay in the section text)."""
    items: list[Item] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "list_item_open" and tok.level == list_level + 1:
            end = _close_index(tokens, i)
            texts = [
                _plain(t) for t in tokens[i + 1 : end] if t.type == "inline" and t.level == list_level + 3
            ]
            items.append(Item(text=" ".join(t for t in texts if t), line=_line(tok)))
            i = end + 1
        else:
            i += 1
    return items


def _blocks(tokens: list[Token]) -> list[Block]:
    """Top-level blocks of a token slice (all tokens at level 0 and below)."""
    out: list[Block] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.nesting == 1:
            end = _close_index(tokens, i)
            inner = tokens[i + 1 : end]
            inline = next((t for t in inner if t.type == "inline" and t.level == tok.level + 1), None)
            if tok.type == "paragraph_open":
                out.append(Block("paragraph", _line(tok), text=_plain(inline), strong=_strong_texts(inline)))
            elif tok.type == "heading_open":
                out.append(Block("heading", _line(tok), text=_plain(inline), tag=tok.tag))
            elif tok.type in ("bullet_list_open", "ordered_list_open"):
                out.append(Block("list", _line(tok), items=_list_items(inner, tok.level)))
            else:
                out.append(Block("other", _line(tok)))
            i = end + 1
            continue
        if tok.type == "fence":
            out.append(Block("fence", _line(tok), text=tok.info.strip(), content=tok.content))
        elif tok.type == "code_block":
            out.append(Block("code", _line(tok), content=tok.content))
        elif tok.nesting == 0 and tok.map:
            out.append(Block("other", _line(tok)))
        i += 1
    return out


def _verbatim(lines: list[str], start: int, end: int) -> str:
    """Source lines [start, end) (0-based) without leading and trailing blank lines."""
    chunk = lines[start:end]
    while chunk and not chunk[0].strip():
        chunk.pop(0)
    while chunk and not chunk[-1].strip():
        chunk.pop()
    return "\n".join(chunk)


def normalise_text(text: str) -> str:
    # markdown-it counts lines after the same normalisation; keeping ours identical keeps .map exact.
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


def split_sections(ctx: Ctx, text: str) -> tuple[str, int, str, list[Section]]:
    """(title, title line, preamble, sections) of a normalised document; RuleError without a title."""
    tokens = _MD.parse(text)
    h2 = [i for i, t in enumerate(tokens) if t.type == "heading_open" and t.level == 0 and t.tag == "h2"]
    first_h2 = h2[0] if h2 else len(tokens)
    h1 = next(
        (
            i
            for i, t in enumerate(tokens[:first_h2])
            if t.type == "heading_open" and t.tag == "h1" and t.level == 0
        ),
        None,
    )
    if h1 is None:
        line = _line(tokens[first_h2]) if h2 else 1
        ctx.error("rule document has no '# Title' before its first section", line)
    title = _plain(tokens[h1 + 1])
    title_line = _line(tokens[h1])
    if not title:
        ctx.error("the '# Title' is empty", title_line)

    title_end = tokens[h1].map[1] if tokens[h1].map else title_line
    preamble_end = tokens[first_h2].map[0] if h2 and tokens[first_h2].map else len(ctx.lines)
    before = _verbatim(ctx.lines, 0, title_line - 1)
    after = _verbatim(ctx.lines, title_end, preamble_end)
    if before:
        ctx.warn("text before the title kept as preamble", 1)
    preamble = "\n\n".join(p for p in (before, after) if p)

    sections: list[Section] = []
    keys: dict[str, int] = {}
    for n, start in enumerate(h2):
        end = h2[n + 1] if n + 1 < len(h2) else len(tokens)
        head = tokens[start]
        heading = _plain(tokens[start + 1])
        line = _line(head)
        body_start = head.map[1] if head.map else line
        body_end = tokens[end].map[0] if end < len(tokens) and tokens[end].map else len(ctx.lines)
        key = heading
        if key in keys:
            keys[heading] += 1
            key = f"{heading} ({keys[heading]})"
            ctx.warn(f"duplicate section '{heading}' kept as '{key}'", line)
        else:
            keys[heading] = 1
        blocks = _blocks(tokens[start + 3 : end])
        for b in blocks:
            if b.kind == "heading" and b.tag == "h1":
                ctx.warn(f"second '# {b.text}' title inside section '{heading}' kept as text", b.line)
        sections.append(
            Section(heading, key, line, blocks, _verbatim(ctx.lines, body_start, body_end))
        )
    return title, title_line, preamble, sections
