"""Tokenizer for the Devo-style LINQ subset (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from minerwatch.durations import unit_seconds
from minerwatch.errors import QuerySyntaxError


class T(StrEnum):
    KEYWORD = "keyword"
    IDENT = "identifier"
    STRING = "string"
    NUMBER = "number"
    DURATION = "duration"
    OP = "operator"
    EOF = "end of query"


KEYWORDS = frozenset(
    "from where select group every by as and or not like in is null true false".split()
)

# Longest first so "<=" wins over "<".
OPERATORS = ("<>", "!=", "<=", ">=", "==", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",", ".")


@dataclass(frozen=True, slots=True)
class Pos:
    """A position in the source document: 1-based line and column, 0-based offset into the query text."""

    line: int
    col: int
    offset: int


@dataclass(frozen=True, slots=True)
class Token:
    kind: T
    value: str | float | int
    text: str
    pos: Pos


class Source:
    """The query text plus where it lives, so every error can point at file:line:col."""

    def __init__(self, text: str, file: str | None = None, line_offset: int = 0) -> None:
        self.text = text
        self.file = file
        self.line_offset = line_offset
        self.lines = text.split("\n")

    def pos(self, offset: int) -> Pos:
        before = self.text[:offset]
        line = before.count("\n")
        col = offset - (before.rfind("\n") + 1)
        return Pos(line + 1 + self.line_offset, col + 1, offset)

    def line_text(self, pos: Pos) -> str:
        idx = pos.line - 1 - self.line_offset
        return self.lines[idx] if 0 <= idx < len(self.lines) else ""

    def error(self, message: str, pos: Pos, cls: type[QuerySyntaxError] = QuerySyntaxError) -> QuerySyntaxError:
        return cls(message, file=self.file, line=pos.line, col=pos.col, source_line=self.line_text(pos))


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_" or ch == "@"


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_@$"


def tokenize(src: Source) -> list[Token]:
    text = src.text
    n = len(text)
    i = 0
    out: list[Token] = []
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if text.startswith("//", i):  # line comment
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        start = i
        if ch in "\"'":
            i, value = _string(src, i)
            out.append(Token(T.STRING, value, text[start:i], src.pos(start)))
        elif ch == "`":
            j = text.find("`", i + 1)
            if j < 0 or "\n" in text[i:j]:
                raise src.error("unterminated quoted identifier", src.pos(start))
            if j == i + 1:
                raise src.error("empty quoted identifier", src.pos(start))
            i = j + 1
            out.append(Token(T.IDENT, text[start + 1 : j], text[start:i], src.pos(start)))
        elif ch.isdigit() or (ch == "." and i + 1 < n and text[i + 1].isdigit() and not _after_path(out)):
            i, tok = _number(src, i)
            out.append(tok)
        elif _is_ident_start(ch):
            while i < n and _is_ident_char(text[i]):
                i += 1
            word = text[start:i]
            kind = T.KEYWORD if word.lower() in KEYWORDS and not _after_dot(out) else T.IDENT
            value = word.lower() if kind is T.KEYWORD else word
            out.append(Token(kind, value, word, src.pos(start)))
        else:
            for op in OPERATORS:
                if text.startswith(op, i):
                    i += len(op)
                    out.append(Token(T.OP, "=" if op == "==" else ("!=" if op == "<>" else op), op, src.pos(start)))
                    break
            else:
                raise src.error(f"unexpected character {ch!r}", src.pos(start))
    out.append(Token(T.EOF, "", "", src.pos(n)))
    return out


def _after_dot(out: list[Token]) -> bool:
    """A keyword right after '.' is a path segment (``resource.type`` — ``type`` is not a keyword anyway)."""
    return bool(out) and out[-1].kind is T.OP and out[-1].value == "."


def _after_path(out: list[Token]) -> bool:
    return bool(out) and out[-1].kind is T.IDENT


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0", "%": "\\%", "_": "\\_"}


def _string(src: Source, i: int) -> tuple[int, str]:
    text = src.text
    quote = text[i]
    start = i
    i += 1
    buf: list[str] = []
    while True:
        if i >= len(text) or text[i] == "\n":
            raise src.error("unterminated string", src.pos(start))
        ch = text[i]
        if ch == quote:
            return i + 1, "".join(buf)
        if ch == "\\":
            if i + 1 >= len(text):
                raise src.error("unterminated string", src.pos(start))
            esc = text[i + 1]
            if esc == "u" and i + 6 <= len(text):
                try:
                    buf.append(chr(int(text[i + 2 : i + 6], 16)))
                except ValueError:
                    raise src.error("bad \\u escape", src.pos(i)) from None
                i += 6
                continue
            if esc not in _ESCAPES:
                raise src.error(f"unknown escape \\{esc}", src.pos(i))
            buf.append(_ESCAPES[esc])
            i += 2
            continue
        buf.append(ch)
        i += 1


def _number(src: Source, i: int) -> tuple[int, Token]:
    text = src.text
    start = i
    n = len(text)
    while i < n and text[i].isdigit():
        i += 1
    is_float = False
    if i < n and text[i] == "." and i + 1 < n and text[i + 1].isdigit():
        is_float = True
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j].isdigit():
            is_float = True
            i = j
            while i < n and text[i].isdigit():
                i += 1
    raw = text[start:i]
    # A duration such as 5m or 2h (only meaningful after "every", the parser checks).
    if not is_float and i < n and text[i].isalpha():
        j = i
        while j < n and text[j].isalpha():
            j += 1
        seconds = unit_seconds(text[i:j])
        if seconds is not None and not (j < n and _is_ident_char(text[j])):
            return j, Token(T.DURATION, int(raw) * seconds, text[start:j], src.pos(start))
        raise src.error(f"bad number {text[start:j]!r}", src.pos(start))
    value: float | int = float(raw) if is_float else int(raw)
    return i, Token(T.NUMBER, value, raw, src.pos(start))
