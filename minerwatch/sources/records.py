"""Canonical records and rejects: the contract between readers and everything downstream."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any


@dataclass(slots=True)
class Record:
    """One canonical record of a catalogue table.

    ``flat`` holds the table's flat columns (``minerwatch.catalog.tables``), typed as declared there
    (timestamps are timezone-aware UTC datetimes). ``doc`` is the whole record as a JSON object with the
    canonical (camelCase wire) key names. ``file``/``line`` say where it came from (line is 1-based; for
    whole-document files it is the line where the object starts when known, else 1).
    """

    table: str
    flat: dict[str, Any]
    doc: dict[str, Any]
    file: str
    line: int
    sample: bool = False
    """True for AWS-generated sample findings (``service.additionalInfo.sample``)."""


@dataclass(slots=True)
class Reject:
    """An input record that could not become a canonical record. Nothing is dropped silently."""

    file: str
    line: int | None
    reason: str
    excerpt: str = ""
    """The start of the raw text (at most 500 characters), for the rejects file."""

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "reason": self.reason, "excerpt": self.excerpt}

    def after(self, lines: int) -> Reject:
        """This reject with ``lines`` more lines before it: one of a byte range, numbered in the whole file."""
        return self if self.line is None or not lines else replace(self, line=self.line + lines)


@dataclass(slots=True)
class ReadStats:
    files: int = 0
    records_read: int = 0
    """Every record seen: lines of JSON Lines files plus objects of whole-document files."""
    accepted: int = 0
    rejected: int = 0
    prefiltered: int = 0
    """Lines skipped before parsing because they lack every literal the query requires."""
    bytes_read: int = 0
    outside_window: int = 0
    """Records read whose event time lies outside the reader's time window (when it takes one): not yielded."""
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, part: ReadStats) -> None:
        """Count in these the counts of ``part``: another part of the same read, such as a byte range of a file."""
        for f in fields(self):
            if f.name != "reasons":
                setattr(self, f.name, getattr(self, f.name) + getattr(part, f.name))
        for reason, n in part.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n
