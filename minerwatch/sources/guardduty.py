"""GuardDuty findings reader: every accepted input shape → canonical records of ``cloud.aws.guardduty``.

Inputs (any mix, in order): files; folders, recursively in sorted order (hidden entries skipped, links to
folders not followed), which covers the S3 export layout
``AWSLogs/<account>/GuardDuty/<region>/YYYY/MM/DD/<uuid>.jsonl.gz``; ``-`` for stdin, read as it arrives;
``s3://bucket/prefix`` (every object under the prefix, listed with a paginator). Any stream may be gzip
(recognised by its magic bytes).

Shapes, each recognised per line of a JSON Lines file or per whole document:

==========================  ============================================================================
plain finding               ``{"schemaVersion": "2.0", "accountId": ..., "id": ..., "type": ...}``
                            (S3 export, ``jq -c`` output, the API's camelCase wire format)
JSON array                  ``[finding, ...]``
EventBridge event           ``{"detail-type": "GuardDuty Finding", "source": "aws.guardduty",
                            "detail": finding, ...}``
REST response               ``{"findings": [finding, ...]}`` — an empty list gives no record, no reject
CLI / boto3 response        ``{"Findings": [Finding, ...]}`` with PascalCase member names, renamed to the
                            wire names through botocore's service model (see ``botocore_shapes``);
                            a bare PascalCase finding is recognised too
Security Hub (ASFF)        GuardDuty findings as Security Hub delivers them: ``get-findings`` output, EventBridge
                            ``Security Hub Findings - Imported`` events, single objects (see ``securityhub``)
==========================  ============================================================================

A file is JSON Lines unless its first non-blank line is an incomplete JSON value (``{``, ``[``,
``{"Findings": [``) and its second is not a complete one: then it is one whole document — a pretty-printed
finding, array or response, or several pretty-printed values one after the other (``jq .`` output). A whole
document up to ``max_document_bytes`` is parsed at once; a larger one is read value by value, an array or
findings list element by element, and a single value over that size is rejected. JSON Lines are streamed in
blocks, whatever the size of the file; runs of blank lines are skipped without Python work per line.

Every finding becomes one canonical camelCase document (``Record.doc``) with the flat columns of
``minerwatch.catalog.tables.GUARDDUTY``. When ``service.additionalInfo`` has only the API's
``{"value": "<json>", "type": ...}`` form, the keys of ``value`` are added beside it, as EventBridge and the
S3 export deliver them, so ``service.additionalInfo.sample`` means the same whatever the source.

Anything else is a reject with file, line (1-based; for whole documents the line where the value starts)
and a reason, and reading goes on: a malformed or over-long line, invalid UTF-8, nesting too deep, a record
that is not a GuardDuty finding (no ``id``/``type``/``accountId`` string, a non-numeric ``severity``, no
ISO 8601 ``updatedAt``/``createdAt``), a truncated or corrupt gzip (the records before the break are kept,
the reason gives the offset), a file inside a folder or an S3 object that cannot be opened. A record of another
kind (CloudTrail, a finding inside another tool's wrapper...) is named as such (``minerwatch.sources.recognise``).
A file whose first non-blank line is not JSON (a VPC flow log, source code, text) gives one reject for its run of
non-JSON lines; a JSON object after them is read as usual. A path argument that cannot be opened raises
:class:`~minerwatch.errors.InputError`. Blank lines are skipped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import ahocorasick_rs
import orjson

from minerwatch import scratch
from minerwatch.catalog.tables import GUARDDUTY
from minerwatch.sources import inputs, securityhub, securitylake
from minerwatch.sources.botocore_shapes import iso_utc, to_camel
from minerwatch.sources.recognise import record_kind, text_kind
from minerwatch.sources.records import ReadStats, Record, Reject

TABLE = GUARDDUTY.name
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""Largest JSON value held whole: a whole-document file up to this size is parsed at once; a larger one is read
value by value, a JSON array or findings list element by element, and a value over this size is rejected."""
LINE_BLOCK_BYTES = 1024 * 1024
"""Largest run of JSON Lines looked at at once when the prefilter allows skipping whole blocks."""

_BOM = b"\xef\xbb\xbf"
_JSONL, _DOCUMENT, _PARQUET = "jsonl", "document", "parquet"
_JSON_WS = re.compile(r"[ \t\n\r]*")
_JSON_WS_BYTES = re.compile(rb"[ \t\n\r]*")
_SNIFF_BLANK_BYTES = 4 * 1024 * 1024
"""Whitespace after a first line that opens a value beyond which the file is taken as JSON Lines."""
_PASCAL_KEYS = ("Id", "AccountId", "Type")
_CAMEL_KEYS = ("id", "accountId", "type")


class FindingError(ValueError):
    """A record that cannot become a canonical finding. ``key`` is the short reason used for counting."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"{key}: {detail}" if detail else key)
        self.key = key


# --------------------------------------------------------------------------------------------- one finding


def normalise_finding(obj: Any) -> dict[str, Any]:
    """One finding in any accepted shape (plain, EventBridge event, PascalCase) → canonical camelCase dict.

    Raises :class:`FindingError` (a ``ValueError``) naming what is wrong. The result may share structure with
    ``obj``; containers (arrays, ``findings`` lists) are not accepted here — one finding at a time.
    """
    if not isinstance(obj, dict):
        raise FindingError("not a GuardDuty finding", f"expected an object, got {inputs.json_type(obj)}")
    try:
        if securitylake.is_ocsf(obj):
            obj = securitylake.to_guardduty(obj)
        if securityhub.is_asff(obj):
            return _expand_additional_info(securityhub.to_guardduty(obj))
    except securityhub.AsffError as exc:
        raise FindingError(exc.key, exc.detail) from exc
    if "detail-type" in obj and "detail" in obj:
        detail_type = obj["detail-type"]
        if detail_type != "GuardDuty Finding":
            raise FindingError("not a GuardDuty finding", f"EventBridge event of detail-type {detail_type!r}")
        obj = obj["detail"]
        if not isinstance(obj, dict):
            raise FindingError("not a GuardDuty finding", f"EventBridge detail is {inputs.json_type(obj)}")
    if not any(k in obj for k in _CAMEL_KEYS) and any(k in obj for k in _PASCAL_KEYS):
        try:
            obj = to_camel(obj)
        except ValueError as exc:
            raise FindingError("nesting too deep", str(exc)) from exc
    else:
        for key in ("updatedAt", "createdAt"):
            value = obj.get(key)
            if isinstance(value, datetime):
                obj = {**obj, key: iso_utc(value)}
    return _expand_additional_info(obj)


def _expand_additional_info(doc: dict[str, Any]) -> dict[str, Any]:
    service = doc.get("service")
    if not isinstance(service, dict):
        return doc
    info = service.get("additionalInfo")
    # Only the API form {"value": "<json>", "type": ...} lacks the keys EventBridge and S3 spell out.
    if not isinstance(info, dict) or not isinstance(info.get("value"), str):
        return doc
    if not info.keys() <= {"value", "type"}:
        return doc
    value = info["value"]
    if len(value) > inputs.MAX_RECORD_BYTES:
        return doc
    try:
        extra = orjson.loads(value)
    except orjson.JSONDecodeError:
        return doc
    if not isinstance(extra, dict) or not extra.keys() - info.keys():
        return doc
    merged = {**extra, **info}  # the keys already there win
    return {**doc, "service": {**service, "additionalInfo": merged}}


def finding_to_record(doc: dict[str, Any], file: str, line: int) -> Record:
    """Validate a canonical finding, compute the flat columns. Raises :class:`FindingError` (ValueError)."""
    if not isinstance(doc, dict):
        raise FindingError("not a GuardDuty finding", f"expected an object, got {inputs.json_type(doc)}")
    fid = _required_str(doc, "id")
    ftype = _required_str(doc, "type")
    account = _required_str(doc, "accountId")
    severity = doc.get("severity")
    if severity is not None:
        if type(severity) not in (int, float) or not math.isfinite(severity):
            raise FindingError(
                "bad field 'severity'", f"expected a number, got {inputs.json_type(severity)} {inputs.short(severity)}"
            )
        severity = float(severity)
    updated = doc.get("updatedAt")
    if updated is not None:
        eventdate = _timestamp(updated, "updatedAt")
    elif doc.get("createdAt") is not None:
        eventdate = _timestamp(doc["createdAt"], "createdAt")
    else:
        raise FindingError("not a GuardDuty finding", "missing field 'updatedAt' and 'createdAt'")
    flat = {
        "eventdate": eventdate,
        "accountid": account,
        "region": _optional_str(doc, "region"),
        "type": ftype,
        "title": _optional_str(doc, "title"),
        "description": _optional_str(doc, "description"),
        "severity": severity,
        "id": fid,
        "arn": _optional_str(doc, "arn"),
    }
    return Record(table=TABLE, flat=flat, doc=doc, file=file, line=line, sample=_is_sample(doc))


def _required_str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if value is None:
        raise FindingError(f"missing field '{key}'", "not a GuardDuty finding")
    if not isinstance(value, str):
        raise FindingError(
            f"bad field '{key}'", f"expected a string, got {inputs.json_type(value)} {inputs.short(value)}"
        )
    if not value:
        raise FindingError(f"bad field '{key}'", "empty string")
    return value


def _optional_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value
    raise FindingError(f"bad field '{key}'", f"expected a string, got {inputs.json_type(value)} {inputs.short(value)}")


def _timestamp(value: Any, key: str) -> datetime:
    """ISO 8601 date-time with ``Z`` or a ``±HH:MM`` offset → aware UTC datetime; anything else is refused."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).astimezone(UTC)
    try:
        return inputs.iso_timestamp(value)
    except inputs.TimestampError as exc:
        raise FindingError(f"bad field '{key}'", str(exc)) from None


def _is_sample(doc: dict[str, Any]) -> bool:
    service = doc.get("service")
    info = service.get("additionalInfo") if isinstance(service, dict) else None
    flag = info.get("sample") if isinstance(info, dict) else None
    return flag is True or (isinstance(flag, str) and flag.strip().lower() == "true")


def _candidates(obj: Any) -> tuple[list[Any], bool]:
    """The finding-shaped values inside one parsed JSON value, and whether it was a container."""
    try:
        hub_event = securityhub.event_findings(obj)
    except securityhub.AsffError as exc:
        raise FindingError(exc.key, exc.detail) from exc
    if hub_event is not None:
        return hub_event, True
    if isinstance(obj, list):
        return obj, True
    if isinstance(obj, dict) and "id" not in obj and "Id" not in obj:
        for key in ("findings", "Findings"):
            if key in obj:
                inner = obj[key]
                if not isinstance(inner, list):
                    raise FindingError(
                        "not a GuardDuty finding", f"{key!r} is {inputs.json_type(inner)}, not an array"
                    )
                return inner, True
    return [obj], False


_NOT_A_FINDING = frozenset(
    {"not a GuardDuty finding", "missing field 'id'", "missing field 'type'", "missing field 'accountId'"}
)


def _named(error: FindingError, obj: Any) -> FindingError:
    """``error``, or, for a value that is no finding at all, one that says what it is (a CloudTrail record,
    a finding inside another tool's wrapper...) when that is recognised."""
    if error.key not in _NOT_A_FINDING:
        return error
    kind = record_kind(obj)
    return error if kind is None else FindingError(kind.name, kind.detail)


# --------------------------------------------------------------------------------------------- reader


def read_guardduty(
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    max_record_bytes: int = inputs.MAX_RECORD_BYTES,
    s3_client: Any | None = None,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
    line_block_bytes: int = LINE_BLOCK_BYTES,
) -> Iterator[Record]:
    """Canonical GuardDuty records from ``paths`` (files, folders, ``-``, ``s3://bucket/prefix``), in order.

    ``prefilter`` sees each raw JSON Lines line before it is decoded; a line for which it is false is skipped
    (``stats.prefiltered``). Rejects go to ``on_reject`` and are counted in ``stats``. A path that does not
    exist raises :class:`~minerwatch.errors.InputError` here, before anything is read; one that cannot be
    opened raises it when reached.

    When ``prefilter`` also has ``needles`` (a :class:`~minerwatch.compile.prefilter.Prefilter`: it is true
    exactly for the lines containing one of them), JSON Lines are looked at in blocks of up to
    ``line_block_bytes``: in a block whose lines are all plausible JSON objects, only the lines holding a
    needle are handled one by one; any other block is handled line by line. Records, rejects and stats are
    the same either way.
    """
    paths = [os.fspath(p) for p in paths]
    inputs.check_paths(paths)
    reader = _Reader(
        inputs.RejectSink(on_reject, stats), stats, prefilter, max_record_bytes, max_document_bytes, line_block_bytes
    )
    return reader.run(paths, s3_client)


class _Reader:
    def __init__(
        self,
        reject: inputs.RejectSink,
        stats: ReadStats,
        prefilter: Callable[[bytes], bool] | None,
        max_record_bytes: int,
        max_document_bytes: int,
        line_block_bytes: int,
    ) -> None:
        self.reject = reject
        self.stats = stats
        prefilter = securityhub.asff_aware(prefilter)
        self.prefilter = prefilter
        self.max_record = max_record_bytes
        self.max_document = max_document_bytes
        needles = getattr(prefilter, "needles", None)
        self.needles: tuple[bytes, ...] | None = tuple(needles) if needles is not None else None
        self.search = _needle_search(self.needles) if self.needles is not None else None
        # No block is longer than the record limit, so no line inside one is over-long: such a line always
        # spans a block boundary and comes alone from iter_line_blocks, measured exactly.
        self.window = max(1, min(line_block_bytes, max_record_bytes))

    def run(self, paths: Sequence[str], s3_client: Any | None) -> Iterator[Record]:
        for inp in inputs.iter_inputs(paths, self.reject, self.stats, s3_client=s3_client):
            try:
                # Blank lines ahead of the first that holds something are dropped as they are read, not held.
                blank, chunks = inputs.skip_leading_blank_lines(inp.chunks, self.max_record)
                # Parquet's magic opens the file: after blank lines it is text that happens to start "PAR1".
                mode, head, rest = inputs.peek(chunks, self._sniff_text if blank else self._sniff)
                stream = inputs.prepend(head, rest)
                if mode == _DOCUMENT:
                    yield from self._document(inp.name, stream, blank)
                elif mode == _PARQUET:
                    yield from self._parquet(inp.name, head, rest)
                elif self.needles is None:
                    lines = inputs.iter_lines(stream, self.max_record, skip_blank=True, lineno=blank)
                    yield from self._lines(inp.name, lines)
                else:
                    items = inputs.iter_line_blocks(stream, self.max_record, self.window)
                    yield from self._lines(inp.name, self._block_lines(items, blank))
            finally:
                inp.chunks.close()

    # ---- format detection

    def _sniff(self, buf: bytes, eof: bool) -> str | None:
        """Parquet, JSON Lines or whole document, from the first bytes; None: need more."""
        if buf[:4] == securitylake.PARQUET_MAGIC:
            return _PARQUET
        if not eof and len(buf) < 4 and securitylake.PARQUET_MAGIC.startswith(buf):
            return None
        return self._sniff_text(buf, eof)

    def _sniff_text(self, buf: bytes, eof: bool) -> str | None:
        """JSON Lines or whole document, from the first (and maybe second) non-blank line; None: need more."""
        start = len(_BOM) if buf.startswith(_BOM) else 0
        first = _next_line(buf, start, eof, self.max_record)
        if first is None:
            return None  # the first line is at most max_record long, so this is decided in bounded input
        text, end = first
        if end < 0 and _DOCUMENT_START.match(buf, start):
            return _DOCUMENT  # one long line holding an array or a findings list (e.g. `get-findings` output)
        if not text or text[:1] not in b"{[" or end < 0:
            return _JSONL  # empty, not JSON text, over-long, or a single line: handled line by line
        try:
            orjson.loads(text)
            return _JSONL
        except orjson.JSONDecodeError as exc:
            if not str(exc).startswith("unexpected end of data"):
                return _JSONL  # broken in the middle: a bad line, not the start of a document
        second = _next_line(buf, end, eof, self.max_record)
        if second is None:
            # Blank lines between the first two lines are not held without bound: a file whose first line
            # opens a value and whose next lines are megabytes of whitespace is read as JSON Lines.
            return _JSONL if len(buf) - end > _SNIFF_BLANK_BYTES else None
        text, end = second
        if not text:
            return _JSONL
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            return _DOCUMENT
        return _JSONL if isinstance(value, dict | list) else _DOCUMENT

    # ---- JSON Lines

    def _lines(
        self,
        name: str,
        lines: Iterator[tuple[int, bytes | inputs.LongLine | inputs.BrokenLine]],
        whole_file: bool = True,
        file_start: bool = True,
    ) -> Iterator[Record]:
        """Records of JSON Lines. ``whole_file``: the lines start at the file's beginning, so a first line that is
        not JSON makes the file text (one reject for its run of non-JSON lines); a byte range of a file does not.
        ``file_start``: line 1 is the file's first line, where a byte-order mark is allowed (a byte range that
        starts later numbers its lines from 1 too, and a mark there is a bad line like anywhere else)."""
        stats = self.stats
        prefilter = self.prefilter
        reject = self.reject
        loads = orjson.loads
        started = not whole_file  # a non-blank line was seen (a range is never judged as text)
        text: _TextRun | None = None  # the file does not start as JSON: its non-JSON lines make one reject
        for lineno, raw in lines:
            if text is not None:
                if text.takes(lineno, raw):
                    continue
                text.reject(self, name)
                text = None
            if type(raw) is not bytes:
                started = True  # an over-long or broken line is judged alone, never as the start of a text run
                if isinstance(raw, inputs.LongLine):
                    stats.records_read += 1
                    reason = f"record too large: {raw.size} bytes (limit {self.max_record})"
                    reject(name, lineno, "record too large", reason, raw.head)
                elif isinstance(raw, inputs.BrokenLine):
                    reject(name, lineno, raw.error.key, f"{raw.error.reason} (in line {lineno})", raw.head)
                continue
            if lineno == 1 and file_start and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw or raw.isspace():
                continue
            if not started:
                started = True
                if raw.lstrip()[:1] not in (b"{", b"["):
                    text = _TextRun(lineno, raw)
                    continue
            stats.records_read += 1
            # A line the prefilter refuses cannot match the query, so it is not parsed, unless it is not even a
            # plausible JSON object: then it is parsed like any other, so its reject reason is the same.
            if prefilter is not None and not prefilter(raw) and inputs.implausible(raw) is None:
                stats.prefiltered += 1
                continue
            try:
                obj = loads(raw)
            except orjson.JSONDecodeError as exc:
                _, key, reason = _json_error(raw, exc, whole=False)
                reject(name, lineno, key, reason, raw)
                continue
            yield from self._records(obj, name, lineno, raw, counted=True)
        if text is not None:
            text.reject(self, name)

    def _block_lines(
        self, items: Iterator[inputs.LineItem], lineno: int = 0, *, judged: bool = False
    ) -> Iterator[tuple[int, bytes | inputs.LongLine | inputs.BrokenLine]]:
        """Numbered lines for :meth:`_lines`, leaving out blank lines and the lines of clean runs (plausible
        JSON objects, see :func:`_clean_newlines`) that hold no needle.

        Those lines are exactly the ones the per-line path would skip as blank, or count as read and
        prefiltered (plausible JSON objects the prefilter refuses), so they are only counted here. Any other
        line goes to :meth:`_lines` alone; blank ones are passed over in runs at C speed. ``lineno``: lines
        before the stream. ``judged``: the stream is not judged text or JSON by its first line (a byte range).
        """
        stats = self.stats
        search = self.search
        blank_bytes = inputs.BLANK
        chunk: bytes | None = None
        ascii_chunk = False
        # _lines judges a file by its first non-blank line (text or JSON), so that line always reaches it; in a
        # file judged text, no line is left out, since a JSON object ends the run of text lines there.
        text = False
        for item in items:
            if type(item) is not inputs.LineBlock:
                lineno += 1
                if not judged:
                    judged, text = _judge(item, lineno)
                yield lineno, item
                continue
            data, start, end = item.data, item.start, item.end
            if data is not chunk:
                chunk, ascii_chunk = data, data.isascii()  # once per read, not per block
            valid = ascii_chunk or _utf8_valid(data, start, end)
            find = data.find
            pos = start
            while pos < end:
                if valid and data[pos] == 0x7B:  # "{"
                    newlines = _clean_newlines(data, pos, end)
                    if newlines:
                        hits = _lines_with(data, pos, newlines[-1] + 1, newlines, search)
                        if text:
                            hits = list(range(len(newlines)))
                        elif not judged and hits[:1] != [0]:
                            hits.insert(0, 0)
                        judged = True
                        skipped = len(newlines) - len(hits)
                        stats.records_read += skipped
                        stats.prefiltered += skipped
                        for index in hits:
                            line_start = newlines[index - 1] + 1 if index else pos
                            yield lineno + 1 + index, data[line_start : newlines[index]]
                        lineno += len(newlines)
                        pos = newlines[-1] + 1
                        if pos >= end:
                            break
                if data[pos] in blank_bytes:
                    after, blank = inputs.skip_blank_lines(data, pos, end)
                    if blank:
                        lineno += blank
                        pos = after
                        continue
                nl = find(b"\n", pos, end)
                lineno += 1
                if not judged:
                    judged, text = _judge(data[pos:nl], lineno)
                yield lineno, data[pos:nl]
                pos = nl + 1

    def _records(
        self, obj: Any, name: str, line: int, raw: bytes | None, *, counted: bool
    ) -> Iterator[Record]:
        """Records from one parsed value. ``counted``: the value was already counted in records_read."""
        stats = self.stats
        try:
            items, container = _candidates(obj)
        except FindingError as exc:
            if not counted:
                stats.records_read += 1
            self.reject(name, line, exc.key, str(exc), raw if raw is not None else inputs.dump_excerpt(obj))
            return
        if container:
            stats.records_read += max(len(items) - 1, 0) if counted else len(items)
        elif not counted:
            stats.records_read += 1
        if not container:
            try:
                record = finding_to_record(normalise_finding(items[0]), name, line)
            except FindingError as error:
                exc = _named(error, items[0])
                text = inputs.dump_excerpt(items[0]) if raw is None else raw
                self.reject(name, line, exc.key, str(exc), text)
                return
            stats.accepted += 1
            yield record
            return
        for index, item in enumerate(items):
            yield from self._element(item, index, name, line)

    def _element(self, item: Any, index: int, name: str, line: int) -> Iterator[Record]:
        """The record of one element of an array or findings list (already counted as read)."""
        try:
            record = finding_to_record(normalise_finding(item), name, line)
        except FindingError as error:
            exc = _named(error, item)
            self.reject(name, line, exc.key, f"{exc} (element {index})", inputs.dump_excerpt(item))
            return
        self.stats.accepted += 1
        yield record

    # ---- Parquet (Security Lake)

    def _parquet(self, name: str, head: bytes, rest: Iterator[bytes]) -> Iterator[Record]:
        """One record per row (OCSF, see ``securitylake``); ``line`` is the row number."""
        with contextlib.ExitStack() as spool:
            path = name
            if not _is_plain_parquet(name):  # DuckDB needs a file it can seek in: a stream is copied to one first
                try:
                    path = spool.enter_context(scratch.spooled(inputs.prepend(head, rest), "input.parquet"))
                except inputs.SourceError as exc:
                    self.stats.records_read += 1
                    self.reject(name, None, exc.key, exc.reason)
                    return
            rows = securitylake.parquet_rows(path)
            while True:
                try:
                    row_no, row = next(rows)
                except StopIteration:
                    return
                except Exception as exc:  # duckdb raises its own tree for a corrupt or truncated file
                    self.stats.records_read += 1
                    self.reject(name, None, "invalid Parquet", f"invalid Parquet: {str(exc).splitlines()[0]}")
                    return
                yield from self._records(row, name, row_no, None, counted=False)

    # ---- whole documents

    def _document(self, name: str, chunks: Iterator[bytes], lines_before: int) -> Iterator[Record]:
        """One or more whole JSON values; ``lines_before``: blank lines dropped ahead of the stream."""
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in chunks:
                if not parts and chunk.startswith(_BOM):
                    chunk = chunk[len(_BOM) :]
                size += len(chunk)
                parts.append(chunk)
                if size > self.max_document:
                    break
        except inputs.SourceError as exc:
            data = b"".join(parts)
            self.stats.records_read += 1
            line = data.count(b"\n") + 1 + lines_before
            self.reject(name, line, exc.key, f"{exc.reason} (in line {line})", data[-inputs.EXCERPT_CHARS :])
            return
        if size > self.max_document:
            yield from self._streamed(name, inputs.prepend(b"".join(parts), chunks), lines_before)
            return
        data = b"".join(parts)
        del parts
        start = _first_line(data) + lines_before
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if str(exc).startswith("unexpected content after document"):
                yield from self._concatenated(name, data, lines_before)
                return
            self.stats.records_read += 1
            line, key, reason = _json_error(data, exc, whole=True, lines_before=lines_before)
            self.reject(name, line, key, reason, data)
            return
        yield from self._records(obj, name, start, None, counted=False)

    def _streamed(self, name: str, chunks: Iterator[bytes], lines_before: int) -> Iterator[Record]:
        """A document too large to parse whole: its values one after the other, an array or a findings list
        element by element, none of them over ``max_document`` (a larger one is rejected, and the rest of the
        document with it). Records carry the line where their document starts, as when it is parsed whole."""
        stream = inputs.TextStream(chunks, 1 + lines_before)
        try:
            while True:
                stream.compact()
                char = stream.skip_ws()
                if not char:
                    if stream.error is not None:
                        raise stream.end_error("after the last complete value")
                    return
                line = stream.line_at(stream.pos)
                wrapped = None
                if char == "{":
                    stream.fill(256)
                    wrapped = _FINDINGS_HEAD.match(stream.buf, stream.pos)
                if char == "[" or wrapped is not None:
                    stream.pos = wrapped.end() if wrapped is not None else stream.pos + 1
                    for index, (_, item) in enumerate(stream.elements(line, self.max_document, inputs.DECODE_JSON)):
                        self.stats.records_read += 1
                        yield from self._element(item, index, name, line)
                    if wrapped is not None:
                        stream.close_object(line, self.max_document, inputs.DECODE_JSON)
                    continue
                value = stream.value(self.max_document, inputs.DECODE_JSON)
                yield from self._records(value, name, line, None, counted=False)
        except inputs.StreamError as exc:
            self.stats.records_read += 1
            reason = f"{exc.reason}; the rest of the document is not read"
            self.reject(name, exc.line, exc.key, reason, exc.excerpt)

    def _concatenated(self, name: str, data: bytes, lines_before: int) -> Iterator[Record]:
        """Several JSON values one after the other (``jq .`` output): each is decoded where it starts."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.stats.records_read += 1
            line, reason = _utf8_error(data, exc, whole=True, lines_before=lines_before)
            self.reject(name, line, "invalid UTF-8", reason, data)
            return
        decode = json.JSONDecoder().raw_decode
        pos, line, size = 0, 1 + lines_before, len(text)
        while True:
            skipped = _JSON_WS.match(text, pos).end()  # type: ignore[union-attr]  # matches empty too
            line += text.count("\n", pos, skipped)
            pos = skipped
            if pos >= size:
                return
            try:
                value, end = decode(text, pos)
            except json.JSONDecodeError as exc:
                self.stats.records_read += 1
                error_line = exc.lineno + lines_before
                reason = f"invalid JSON: {exc.msg} at line {error_line} column {exc.colno}"
                self.reject(name, error_line, "invalid JSON", reason, text[pos:])
                return
            except RecursionError:
                self.stats.records_read += 1
                self.reject(name, line, "invalid JSON", "invalid JSON: nesting too deep", text[pos:])
                return
            yield from self._records(value, name, line, None, counted=False)
            line += text.count("\n", pos, end)
            pos = end


class _TextRun:
    """Consecutive lines of a file that does not start as JSON (source code, text, a VPC flow log): one reject
    for all of them, not one per line. The run ends at a line that is a JSON object, which is read as usual."""

    def __init__(self, line: int, raw: bytes) -> None:
        self.first = self.last = line
        self.expect = line + 1
        self.head = raw

    def takes(self, line: int, raw: bytes | inputs.LongLine | inputs.BrokenLine) -> bool:
        """Whether ``raw`` (line ``line``) belongs to the run. A gap in the numbers is blank lines (skipped in runs,
        never seen here): the run goes on over it."""
        if line < self.expect or isinstance(raw, inputs.BrokenLine):
            return False
        self.expect = line + 1
        if isinstance(raw, bytes):
            stripped = raw.strip()
            if not stripped:
                return True
            if stripped[:1] == b"{" and stripped[-1:] == b"}":
                try:
                    if isinstance(orjson.loads(stripped), dict):
                        return False
                except orjson.JSONDecodeError:
                    pass
        self.last = line
        return True

    def reject(self, reader: _Reader, name: str) -> None:
        kind = text_kind(self.head)
        lines = f"line {self.first}" if self.first == self.last else f"lines {self.first}-{self.last}"
        reader.stats.records_read += 1
        key = f"{kind}, not JSON"
        reader.reject(name, self.first, key, f"{key}: {lines}, no GuardDuty finding", self.head)


def _judge(raw: bytes | inputs.LongLine | inputs.BrokenLine, lineno: int) -> tuple[bool, bool]:
    """(judged, text) as :meth:`_Reader._lines` decides them from a stream's first lines: a blank line decides
    nothing; an over-long or broken line, or one that opens a JSON value, makes the file JSON; anything else text."""
    if not isinstance(raw, bytes):
        return True, False
    if lineno == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    if not raw or raw.isspace():
        return False, False
    return True, raw.lstrip()[:1] not in (b"{", b"[")


def _is_plain_parquet(name: str) -> bool:
    """A local regular file that is Parquet as it is on disk (not gzip around it): read in place."""
    try:
        with open(name, "rb") as f:
            return f.read(4) == securitylake.PARQUET_MAGIC
    except OSError:
        return False


def _utf8_valid(data: bytes, start: int, end: int) -> bool:
    try:
        str(memoryview(data)[start:end], "utf-8")  # validates without copying the bytes first
    except UnicodeDecodeError:
        return False
    return True


def _clean_newlines(data: bytes, start: int, end: int) -> list[int]:
    """Offsets of the newlines of the clean run of lines that starts at ``start`` in ``data[start:end]``
    (complete lines of valid UTF-8): lines that are plausible JSON objects with nothing around them (``{``
    first, ``}`` last: so not blank, no ``\\r``). The run ends before the first other line, or at ``end``.
    """
    newlines: list[int] = []
    append = newlines.append
    find = data.find
    last = end - 1
    pos = start
    # One memchr per line: cheaper than bytes.count (a byte loop), and it checks both ends of each line.
    while data[pos] == 0x7B:  # "{": so the line is not empty and the newline found is after it
        nl = find(b"\n", pos, end)
        if data[nl - 1] != 0x7D:  # "}"
            return newlines
        append(nl)
        if nl == last:
            return newlines
        pos = nl + 1
    return newlines


def _needle_search(needles: tuple[bytes, ...]) -> Callable[[memoryview], list[tuple[int, int, int]]] | None:
    """One pass over a block for all ``needles`` at once (Aho-Corasick, with a SIMD prefilter for a few needles):
    ``(needle, start, end)`` of matches that never overlap. None: every line holds a needle (an empty one).

    Leftmost-first, non-overlapping matches still give at least one match on every line holding a needle, since
    no needle searched for holds a newline: a match never runs into the next line.
    """
    if any(not needle for needle in needles):
        return None
    wanted = list(dict.fromkeys(n for n in needles if b"\n" not in n))  # no line can hold one with a newline
    if not wanted:
        return lambda _block: []
    matcher = ahocorasick_rs.BytesAhoCorasick(wanted, matchkind=ahocorasick_rs.MatchKind.LeftmostFirst)
    return matcher.find_matches_as_indexes


def _lines_with(
    data: bytes,
    start: int,
    end: int,
    newlines: list[int],
    search: Callable[[memoryview], list[tuple[int, int, int]]] | None,
) -> list[int]:
    """Indexes (0-based, sorted) of the lines of a clean block that contain at least one needle (``search`` from
    :func:`_needle_search`), found in one pass over ``data[start:end]``."""
    if search is None:
        return list(range(len(newlines)))
    found: set[int] = set()
    index = -1
    for _, at, _ in search(memoryview(data)[start:end]):
        if index < 0 or start + at > newlines[index]:  # several matches on one line: bisect once
            index = bisect_left(newlines, start + at)
            found.add(index)
    return sorted(found)


_DOCUMENT_START = re.compile(rb'\s*(\[|\{\s*"(findings|Findings)"\s*:)')
_FINDINGS_HEAD = re.compile(r'\{[ \t\r\n]*"(findings|Findings)"[ \t\r\n]*:[ \t\r\n]*\[')


def _next_line(buf: bytes, start: int, eof: bool, limit: int) -> tuple[bytes, int] | None:
    """The next non-blank line from ``start`` and the offset after it (-1: runs to the end, or too long).

    ``(b"", -1)`` when there is none; None when more input is needed to tell.
    """
    size = len(buf)
    pos = _JSON_WS_BYTES.match(buf, start).end()  # type: ignore[union-attr]  # matches empty too
    if pos >= size:
        return (b"", -1) if eof else None
    nl = buf.find(b"\n", pos)
    if nl < 0:
        if eof:
            return buf[pos:], -1
        return (buf[pos : pos + 1], -1) if size - pos > limit else None
    if nl - pos > limit:
        return buf[pos : pos + 1], -1
    return buf[pos:nl], nl + 1


def _first_line(data: bytes) -> int:
    """1-based line of the first non-blank character."""
    stripped = data.lstrip()
    return data.count(b"\n", 0, len(data) - len(stripped)) + 1


def _json_error(
    raw: bytes, exc: orjson.JSONDecodeError, *, whole: bool, lines_before: int = 0
) -> tuple[int, str, str]:
    """Line (within ``raw``, after ``lines_before``), reason key and text for a value orjson refused.

    ``whole``: ``raw`` is a document, and the reason gives the line; else it is one line of JSON Lines.
    """
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as uexc:
        line, reason = _utf8_error(raw, uexc, whole=whole, lines_before=lines_before)
        return line, "invalid UTF-8", reason
    lineno = exc.lineno + lines_before
    where = f"line {lineno} column {exc.colno}" if whole else f"column {exc.colno}"
    if exc.msg.startswith("depth limit exceeded"):
        return lineno, "invalid JSON", f"invalid JSON: nesting too deep at {where}"
    return lineno, "invalid JSON", f"invalid JSON: {exc.msg} at {where}"


def _utf8_error(raw: bytes, exc: UnicodeDecodeError, *, whole: bool, lines_before: int = 0) -> tuple[int, str]:
    line = raw.count(b"\n", 0, exc.start) + 1 + lines_before
    where = f"line {line}, " if whole else ""
    return line, f"invalid UTF-8: byte 0x{raw[exc.start]:02x} at {where}offset {exc.start}"


def is_plain_json_lines(path: str, *, max_record_bytes: int = inputs.MAX_RECORD_BYTES) -> bool:
    """True for a regular, uncompressed file that the reader would read as JSON Lines (so it can be split)."""
    try:
        with open(path, "rb") as f:
            head = f.read(2 * max_record_bytes)
    except OSError:
        return False
    if head.startswith(b"\x1f\x8b"):
        return False
    sniffer = _Reader(
        inputs.RejectSink(lambda _r: None, ReadStats()), ReadStats(), None, max_record_bytes, MAX_DOCUMENT_BYTES,
        LINE_BLOCK_BYTES,
    )
    if sniffer._sniff(head, len(head) < 2 * max_record_bytes) != _JSONL:
        return False
    first = head[len(_BOM) :] if head.startswith(_BOM) else head
    return first.lstrip()[:1] in (b"{", b"[")  # a file that starts as text is one reject: read it whole


def read_guardduty_range(
    path: str,
    start: int,
    end: int,
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    max_record_bytes: int = inputs.MAX_RECORD_BYTES,
) -> Iterator[Record]:
    """Records of the JSON Lines in bytes [start, end) of a plain file, ``start`` at the beginning of a line.

    Line numbers in records and rejects count from the range's first line (1); the caller adds the lines before
    it (``inputs.count_newlines``). Used to read one large file on several cores.
    """
    reader = _Reader(
        inputs.RejectSink(on_reject, stats), stats, prefilter, max_record_bytes, MAX_DOCUMENT_BYTES, LINE_BLOCK_BYTES
    )
    chunks = inputs.range_chunks(path, start, end, stats)
    if reader.needles is None:
        lines = inputs.iter_lines(chunks, reader.max_record, skip_blank=True)
    else:
        lines = reader._block_lines(inputs.iter_line_blocks(chunks, reader.max_record, reader.window), judged=True)
    yield from reader._lines(path, lines, whole_file=False, file_start=start == 0)


def records_from_value(obj: Any, name: str, line: int | None, raw: bytes | None = None) -> list[Record | Reject]:
    """Records and rejects, in order, from one parsed JSON value of any accepted shape — exactly what the batch
    reader makes of it (for sources that receive findings one message at a time)."""
    out: list[Record | Reject] = []
    stats = ReadStats()
    reader = _Reader(
        inputs.RejectSink(out.append, stats), stats, None, inputs.MAX_RECORD_BYTES, MAX_DOCUMENT_BYTES, LINE_BLOCK_BYTES
    )
    for record in reader._records(obj, name, line, raw, counted=True):  # type: ignore[arg-type]
        out.append(record)  # rejects were appended in between, in input order
    return out


def records_from_line(raw: bytes, name: str, line: int | None) -> list[Record | Reject]:
    """Records and rejects from one JSON Lines line, with the batch reader's reasons."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        _, _key, reason = _json_error(raw, exc, whole=False)
        return [Reject(file=name, line=line, reason=reason, excerpt=inputs.excerpt(raw))]
    return records_from_value(obj, name, line, raw)
