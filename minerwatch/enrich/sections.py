"""The shape every enrichment section shares, and reading one log source once with its rejects accounted for.

A section is a JSON object::

    {"name": ..., "status": "ok" | "empty" | "unavailable", "reason": ... (when empty or unavailable),
     "headline": one line for people, "summary": {...}, "evidence": [...],
     "source": {what was read: paths, files, records, rejects}, "warnings": [...]}

Each evidence record has ``time`` (ISO 8601 UTC, ``Z``), ``source`` (``file:line`` or the API it came from),
``what`` (one line of text, used by the timeline), the instance it is about when there is one, and the fields
that matter for that kind of evidence. Records that are evidence of mining also carry
``mining: {"start", "end"}`` (equal for a point in time); the cost section adds those intervals up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from minerwatch.alerting.alerts import iso
from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.sources.registry import read_table

Status = Literal["ok", "empty", "unavailable"]

SECTION_ORDER: tuple[str, ...] = (
    "launch_context",
    "principal_activity",
    "persistence",
    "network",
    "dns",
    "findings",
    "config_history",
    "inspector",
    "cpu",
    "cost",
)
"""Sections in the order they are shown; the timeline is stored beside them as ``timeline``."""

TIMELINE = "timeline"
EVIDENCE_LIMIT = 2000
"""Evidence records kept per section; summaries always count everything."""


def ev(time: datetime | None, source: str, what: str, **fields: Any) -> dict[str, Any]:
    """One evidence record (``time`` may be ``None`` only when the record has no time at all)."""
    return {"time": iso(time) if time is not None else None, "source": source, "what": what, **fields}


def mining(start: datetime, end: datetime | None = None) -> dict[str, str]:
    """The ``mining`` interval of an evidence record (a point when ``end`` is omitted)."""
    return {"start": iso(start), "end": iso(end if end is not None else start)}


def make_section(
    name: str,
    status: Status,
    *,
    reason: str | None = None,
    headline: str | None = None,
    summary: dict[str, Any] | None = None,
    evidence: list[dict[str, Any]] | None = None,
    source: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    evidence = evidence or []
    out: dict[str, Any] = {"name": name, "status": status}
    if reason:
        out["reason"] = reason
    out["headline"] = headline or reason or status
    out["summary"] = summary or {}
    if len(evidence) > EVIDENCE_LIMIT:
        out["summary"]["evidence_dropped"] = len(evidence) - EVIDENCE_LIMIT
        evidence = evidence[:EVIDENCE_LIMIT]
    out["evidence"] = evidence
    if source is not None:
        out["source"] = source
    if warnings:
        out["warnings"] = warnings
    return out


def unavailable(name: str, reason: str, source: dict[str, Any] | None = None) -> dict[str, Any]:
    return make_section(name, "unavailable", reason=reason, source=source)


def where(record: Record) -> str:
    return f"{record.file}:{record.line}"


class RejectLog:
    """The run's rejects file: one JSON line per rejected input record, tagged with the option it came from."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self.count = 0

    def write(self, option: str, reject: Reject) -> None:
        self.count += 1
        if self.path is None:
            return
        if self._fh is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close())
        self._fh.write(orjson.dumps({"option": option, **reject.to_json()}) + b"\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class SourceRead:
    """One ``--option``'s paths read once through the table's reader, with stats and rejects kept per source,
    so a corrupt file degrades only the sections built from it."""

    def __init__(self, option: str, table: str, paths: Sequence[str], rejects: RejectLog) -> None:
        self.option = option
        self.table = table
        self.paths = [str(p) for p in paths]
        self.stats = ReadStats()
        self._rejects = rejects
        self._first_rejects: list[dict[str, Any]] = []

    def _on_reject(self, reject: Reject) -> None:
        if len(self._first_rejects) < 5:
            self._first_rejects.append({"file": reject.file, "line": reject.line, "reason": reject.reason})
        self._rejects.write(self.option, reject)

    def records(self, prefilter: Callable[[bytes], bool] | None = None) -> Iterator[Record]:
        """Records of the table; raises :class:`~minerwatch.errors.InputError` for a path that does not exist."""
        return read_table(self.table, self.paths, on_reject=self._on_reject, stats=self.stats, prefilter=prefilter)

    def report(self) -> dict[str, Any]:
        s = self.stats
        out: dict[str, Any] = {
            "option": self.option,
            "paths": self.paths,
            "files": s.files,
            "records_read": s.records_read,
            "accepted": s.accepted,
            "prefiltered": s.prefiltered,
            "rejected": s.rejected,
        }
        if s.rejected:
            out["reject_reasons"] = dict(sorted(s.reasons.items()))
            out["rejects_file"] = self._rejects.path
            out["first_rejects"] = self._first_rejects
        return out

    def warnings(self) -> list[str]:
        s = self.stats
        if not s.rejected:
            return []
        reasons = ", ".join(f"{k} ×{n}" for k, n in sorted(s.reasons.items()))
        dest = f"; written to {self._rejects.path}" if self._rejects.path else ""
        return [f"{s.rejected} record(s) of {self.option} rejected ({reasons}){dest}"]

    def all_rejected(self) -> bool:
        """Nothing usable was read and something was rejected: the source is corrupt, not merely quiet."""
        s = self.stats
        return s.rejected > 0 and s.accepted == 0 and s.prefiltered == 0


def needles_prefilter(needles: Sequence[str]) -> Callable[[bytes], bool] | None:
    """A raw-line test that is true when the line contains any of ``needles`` (``None`` when there are none).

    Only a shortcut: records that pass are still matched exactly after parsing."""
    encoded = tuple(sorted({n.encode() for n in needles if n}))
    if not encoded:
        return None

    def test(line: bytes) -> bool:
        return any(n in line for n in encoded)

    return test
