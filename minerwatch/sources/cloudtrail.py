"""CloudTrail reader: every accepted input shape → canonical records of ``cloud.aws.cloudtrail``.

Inputs are opened by :mod:`minerwatch.sources.inputs`: files, folders (recursively, which covers the S3 delivery
layout ``AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz``), ``-`` for stdin and
``s3://bucket/prefix``; any stream may be gzip.

Shapes:

==============================  ==========================================================================
log file                        ``{"Records": [record, ...]}``, one line or pretty-printed, of any size:
                                the array is parsed one element at a time, so memory stays bounded
JSON Lines                      one record per line (``jq -c '.Records[]'``, Elastic test data), or one
                                ``{"Records": [...]}`` object per line
EventBridge event               ``{"detail-type": "AWS API Call via CloudTrail", "detail": record, ...}``
                                (any detail-type ending in ``via CloudTrail``)
JSON array                      ``[record, ...]``
Panther test fixtures           ``{"tests": [{"Log": record, ...}, ...]}`` and ``[{"Name": ..,
                                "Log": record}, ...]`` (the ``Tests`` of a Panther rule): each ``Log`` is
                                read as a record; Panther's zone-less UTC timestamps
                                (``2022-09-30 15:11:25.000000000``) are accepted there, and only there
==============================  ==========================================================================

A record needs ``eventTime`` (ISO 8601 with a zone), ``eventName`` and ``eventSource``; anything else is a
reject with file, line and reason (CloudTrail Insights events and digest files included, each with its own
reason), and reading goes on. The whole record is ``Record.doc``; the flat columns are those of
:data:`minerwatch.catalog.tables.CLOUDTRAIL`.

The first half of this module is the JSON log machinery shared with the Route 53 Resolver reader.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson

from minerwatch.catalog.tables import CLOUDTRAIL
from minerwatch.sources import inputs
from minerwatch.sources.inputs import DECODE_JSON as _DECODE
from minerwatch.sources.inputs import StreamError as _StreamError
from minerwatch.sources.inputs import TextStream as _TextStream
from minerwatch.sources.inputs import json_type, short
from minerwatch.sources.records import ReadStats, Record, Reject

MAX_RECORD_BYTES = inputs.MAX_RECORD_BYTES  # re-exported for the other JSON log readers
"""Largest single record (a JSON Lines line, one element of a streamed array)."""
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""Largest whole JSON value that is not a streamed array (a pretty-printed fixture file, one object)."""

_BOM_BYTES = b"\xef\xbb\xbf"
_JSONL, _DOCUMENT = "jsonl", "document"
_PANTHER_TEST_KEYS = ("Name", "_test_name", "ExpectedResult", "_expected_result")


class RecordError(ValueError):
    """A value that cannot become a canonical record. ``key`` is the short reason used for counting."""

    def __init__(self, key: str, detail: str = "") -> None:
        super().__init__(f"{key}: {detail}" if detail else key)
        self.key = key


# --------------------------------------------------------------------------------------------- field helpers


def opt_str(obj: dict[str, Any], key: str) -> str | None:
    """A string member, or None when absent or null; any other type is a :class:`RecordError`."""
    value = obj.get(key)
    if value is None or type(value) is str:
        return value
    raise RecordError(f"bad field '{key}'", f"expected a string, got {json_type(value)} {short(value)}")


def opt_obj(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """An object member, or ``{}`` when absent or null."""
    value = obj.get(key)
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise RecordError(f"bad field '{key}'", f"expected an object, got {json_type(value)} {short(value)}")


def req_str(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if value is None:
        detail = what
        near = next((k for k in obj if k.lower() == key.lower() and k != key), None)
        if near is not None:
            detail = f"{what}; it has {near!r}, and field names are case-sensitive"
        raise RecordError(f"missing field '{key}'", detail)
    if type(value) is not str:
        raise RecordError(f"bad field '{key}'", f"expected a string, got {json_type(value)} {short(value)}")
    if not value:
        raise RecordError(f"bad field '{key}'", "empty string")
    return value


def parse_timestamp(value: Any, key: str, *, naive_utc: bool = False) -> datetime:
    """ISO 8601 date-time with ``Z`` or ``±HH:MM`` (``T`` or a space before the time) → aware UTC datetime.

    ``naive_utc``: a timestamp without a zone is read as UTC (Panther's storage format); only for fixtures.
    """
    try:
        return inputs.iso_timestamp(value, space=True, naive_utc=naive_utc)
    except inputs.TimestampError as exc:
        raise RecordError(f"bad field '{key}'", str(exc)) from None


# --------------------------------------------------------------------------------------------- JSON log reader

Convert = Callable[[Any, str, int, bool], Record]
"""(candidate value, file, line, from a Panther fixture) → record; raises :class:`RecordError`."""


class JsonLogReader:
    """Records of one table from JSON inputs in any of the shapes listed in the module docstring.

    ``convert`` turns one candidate value into a record. ``wrapper_keys`` name the object members whose
    array holds the records (``Records`` for CloudTrail); such a member that opens a document is streamed.
    """

    def __init__(
        self,
        convert: Convert,
        *,
        on_reject: Callable[[Reject], None],
        stats: ReadStats,
        prefilter: Callable[[bytes], bool] | None,
        wrapper_keys: tuple[str, ...] = (),
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.convert = convert
        self.reject = inputs.RejectSink(on_reject, stats)
        self.stats = stats
        self.prefilter = prefilter
        self.wrapper_keys = wrapper_keys
        self.max_record = max_record_bytes
        self.max_document = max_document_bytes
        keys = "|".join(re.escape(k) for k in wrapper_keys)
        self._wrapper_head = re.compile(rf'\{{[ \t\r\n]*"({keys})"[ \t\r\n]*:[ \t\r\n]*\[') if keys else None
        self._wrapper_head_bytes = re.compile(rf'\s*\{{\s*"({keys})"\s*:'.encode()) if keys else None

    def read(self, paths: Sequence[str], s3_client: Any | None = None) -> Iterator[Record]:
        paths = [os.fspath(p) for p in paths]
        inputs.check_paths(paths)
        return self._run(paths, s3_client)

    def _run(self, paths: Sequence[str], s3_client: Any | None) -> Iterator[Record]:
        for inp in inputs.iter_inputs(paths, self.reject, self.stats, s3_client=s3_client):
            try:
                mode, head, rest = inputs.peek(inp.chunks, self._sniff)
                chunks = inputs.prepend(head, rest)
                if mode == _DOCUMENT:
                    yield from self._document(inp.name, _TextStream(chunks))
                else:
                    yield from self._lines(inp.name, inputs.iter_lines(chunks, self.max_record))
            finally:
                inp.chunks.close()

    # ---- format detection

    def _sniff(self, buf: bytes, eof: bool) -> str | None:
        """JSON Lines, or one or more whole documents; None: more input is needed to tell."""
        start = len(_BOM_BYTES) if buf.startswith(_BOM_BYTES) else 0
        pos = start
        while pos < len(buf) and buf[pos] in b" \t\r\n":
            pos += 1
        if pos >= len(buf):
            return _JSONL if eof else None
        if buf[pos : pos + 1] == b"[":
            return _DOCUMENT
        if self._wrapper_head_bytes is not None and buf[pos : pos + 1] == b"{":
            if len(buf) - pos < 256 and not eof:
                return None
            if self._wrapper_head_bytes.match(buf, pos):
                return _DOCUMENT
        nl = buf.find(b"\n", pos)
        if nl < 0:
            if len(buf) - pos > self.max_record:
                return _DOCUMENT  # one huge value: decoded whole, up to the document limit
            return _JSONL if eof else None
        if nl - pos > self.max_record:
            return _DOCUMENT
        try:
            orjson.loads(buf[pos:nl])
        except orjson.JSONDecodeError as exc:
            # A first line that is the start of a value (``{`` of pretty-printed JSON) opens a document;
            # one broken in the middle is a bad line of JSON Lines.
            return _DOCUMENT if str(exc).startswith("unexpected end of data") else _JSONL
        return _JSONL

    # ---- JSON Lines

    def _lines(
        self, name: str, lines: Iterator[tuple[int, bytes | inputs.LongLine | inputs.BrokenLine]]
    ) -> Iterator[Record]:
        stats = self.stats
        prefilter = self.prefilter
        reject = self.reject
        loads = orjson.loads
        first = True
        for lineno, raw in lines:
            if type(raw) is not bytes:
                if isinstance(raw, inputs.LongLine):
                    stats.records_read += 1
                    reason = f"record too large: {raw.size} bytes (limit {self.max_record})"
                    reject(name, lineno, "record too large", reason, raw.head)
                elif isinstance(raw, inputs.BrokenLine):
                    stats.records_read += 1
                    reject(name, lineno, raw.error.key, f"{raw.error.reason} (in line {lineno})", raw.head)
                continue
            if first:
                first = False
                if raw.startswith(_BOM_BYTES):
                    raw = raw[len(_BOM_BYTES) :]
            if not raw or raw.isspace():
                continue
            if prefilter is not None and not prefilter(raw):
                stats.records_read += 1
                problem = inputs.implausible(raw, arrays=True)
                if problem is None:
                    stats.prefiltered += 1
                else:
                    reject(name, lineno, problem, f"{problem} (line skipped by the prefilter, not parsed)", raw)
                continue
            try:
                value = loads(raw)
            except orjson.JSONDecodeError as exc:
                stats.records_read += 1
                key, reason = _line_error(raw, exc)
                reject(name, lineno, key, reason, raw)
                continue
            yield from self._value(value, name, lineno, raw)

    # ---- candidates

    def _value(self, value: Any, name: str, line: int, raw: bytes | None) -> Iterator[Record]:
        """Records from one whole top-level value (a line, or a document that is not streamed)."""
        if isinstance(value, list):
            for index, element in enumerate(value):
                yield from self._element(element, name, line, f"element {index}")
            return
        if isinstance(value, dict):
            for key in self.wrapper_keys:
                inner = value.get(key)
                if isinstance(inner, list):
                    for index, element in enumerate(inner):
                        yield from self._one(element, name, line, f" ({key}[{index}])", False, None)
                    return
            tests = _panther_tests(value)
            if tests is not None:
                for index, test in enumerate(tests):
                    yield from self._panther(test, name, line, index)
                return
        yield from self._one(value, name, line, "", False, raw)

    def _element(self, element: Any, name: str, line: int, where: str) -> Iterator[Record]:
        """One element of a top-level array: a record, a Panther ``{"Name", "Log"}`` test, or a wrapper."""
        if isinstance(element, dict):
            if _is_panther_test(element):
                yield from self._one(element["Log"], name, line, f" ({where}, {_test_label(element)})", True, None)
                return
            for key in self.wrapper_keys:
                inner = element.get(key)
                if isinstance(inner, list):
                    for index, item in enumerate(inner):
                        yield from self._one(item, name, line, f" ({where}, {key}[{index}])", False, None)
                    return
        yield from self._one(element, name, line, f" ({where})", False, None)

    def _panther(self, test: Any, name: str, line: int, index: int) -> Iterator[Record]:
        if isinstance(test, dict) and isinstance(test.get("Log"), dict):
            yield from self._one(test["Log"], name, line, f" (test {index}, {_test_label(test)})", True, None)
            return
        self.stats.records_read += 1
        reason = f"not a Panther test: no 'Log' object (test {index})"
        self.reject(name, line, "not a Panther test", reason, inputs.dump_excerpt(test))

    def _one(self, value: Any, name: str, line: int, where: str, panther: bool, raw: bytes | None) -> Iterator[Record]:
        self.stats.records_read += 1
        try:
            record = self.convert(value, name, line, panther)
        except RecordError as exc:
            self.reject(name, line, exc.key, f"{exc}{where}", raw if raw is not None else inputs.dump_excerpt(value))
            return
        self.stats.accepted += 1
        yield record

    # ---- whole documents, streamed

    def _document(self, name: str, stream: _TextStream) -> Iterator[Record]:
        """Top-level values one after the other; a wrapper's array or a top-level array is streamed."""
        try:
            while True:
                stream.compact()
                char = stream.skip_ws()
                if not char:
                    if stream.error is not None:
                        raise stream.end_error("after the last complete value")
                    return
                line = stream.line_at(stream.pos)
                if char == "[":
                    stream.pos += 1
                    yield from self._array(name, stream, None, line)
                    continue
                if char == "{" and self._wrapper_head is not None:
                    stream.fill(256)
                    match = self._wrapper_head.match(stream.buf, stream.pos)
                    if match is not None:
                        stream.pos = match.end()
                        yield from self._array(name, stream, match.group(1), line)
                        self._close_object(stream, line)
                        continue
                value = stream.value(self.max_document, _DECODE)
                yield from self._value(value, name, line, None)
        except _StreamError as exc:
            self.stats.records_read += 1
            reason = f"{exc.reason}; the rest of the document is not read"
            self.reject(name, exc.line, exc.key, reason, exc.excerpt)

    def _array(self, name: str, stream: _TextStream, key: str | None, opened: int) -> Iterator[Record]:
        """The elements of an array whose ``[`` was just consumed, one at a time."""
        for index, (line, element) in enumerate(stream.elements(opened, self.max_record, _DECODE)):
            if key is None:
                yield from self._element(element, name, line, f"element {index}")
            else:
                yield from self._one(element, name, line, f" ({key}[{index}])", False, None)

    def _close_object(self, stream: _TextStream, opened: int) -> None:
        stream.close_object(opened, self.max_record, _DECODE)


def _panther_tests(value: dict[str, Any]) -> list[Any] | None:
    """The tests of a Panther rule fixture file (``{"tests": [{"Log": ...}]}``), else None."""
    for key in ("tests", "Tests"):
        tests = value.get(key)
        if isinstance(tests, list) and tests and any(_is_panther_test(t) for t in tests):
            return tests
    return None


def _is_panther_test(value: Any) -> bool:
    return (
        isinstance(value, dict) and isinstance(value.get("Log"), dict) and any(k in value for k in _PANTHER_TEST_KEYS)
    )


def _test_label(test: dict[str, Any]) -> str:
    name = test.get("Name", test.get("_test_name"))
    return f"Panther test {name!r}" if isinstance(name, str) else "Panther test"


def _line_error(raw: bytes, exc: orjson.JSONDecodeError) -> tuple[str, str]:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return "invalid UTF-8", f"invalid UTF-8: byte 0x{raw[uexc.start]:02x} at offset {uexc.start}"
    if exc.msg.startswith("depth limit exceeded"):
        return "invalid JSON", f"invalid JSON: nesting too deep at column {exc.colno}"
    return "invalid JSON", f"invalid JSON: {exc.msg} at column {exc.colno}"


# --------------------------------------------------------------------------------------------- CloudTrail

TABLE = CLOUDTRAIL.name
_VIA_CLOUDTRAIL = " via CloudTrail"


def unwrap_cloudtrail(obj: Any) -> dict[str, Any]:
    """The CloudTrail record in ``obj``: itself, or the ``detail`` of an EventBridge event."""
    if not isinstance(obj, dict):
        raise RecordError("not a CloudTrail record", f"expected an object, got {json_type(obj)}")
    if "detail-type" in obj and "detail" in obj:
        detail_type = obj["detail-type"]
        if not isinstance(detail_type, str) or not detail_type.endswith(_VIA_CLOUDTRAIL):
            raise RecordError("not a CloudTrail record", f"EventBridge event of detail-type {short(detail_type)}")
        detail = obj["detail"]
        if not isinstance(detail, dict):
            raise RecordError("not a CloudTrail record", f"EventBridge detail is {json_type(detail)}")
        return detail
    return obj


def cloudtrail_record(obj: Any, file: str, line: int, panther: bool = False) -> Record:
    """One CloudTrail record (or EventBridge event holding one) → canonical record.

    Raises :class:`RecordError` (a ``ValueError``) naming what is wrong. ``panther``: the value is the
    ``Log`` of a Panther test fixture, whose zone-less timestamps are UTC.
    """
    doc = unwrap_cloudtrail(obj)
    if "eventName" not in doc and doc.get("eventType") == "AwsCloudTrailInsight":
        raise RecordError(
            "cloudtrail insights event",
            "a CloudTrail Insights event has no eventName/eventSource of its own (see insightDetails)",
        )
    if "digestStartTime" in doc and "logFiles" in doc:
        raise RecordError("cloudtrail digest file", "a CloudTrail digest file holds no log records")
    if doc.get("eventTime") is None:
        req_str(doc, "eventTime", "not a CloudTrail record")  # raises, naming a miscased key if any
    eventdate = parse_timestamp(doc["eventTime"], "eventTime", naive_utc=panther)
    name = req_str(doc, "eventName", "not a CloudTrail record")
    source = req_str(doc, "eventSource", "not a CloudTrail record")
    ident = opt_obj(doc, "userIdentity")
    account = opt_str(doc, "recipientAccountId")
    if account is None:
        account = opt_str(ident, "accountId")
    readonly = doc.get("readOnly")
    if readonly is not None and type(readonly) is not bool:
        if readonly in ("true", "false"):
            readonly = readonly == "true"
        else:
            raise RecordError(
                "bad field 'readOnly'", f"expected a boolean, got {json_type(readonly)} {short(readonly)}"
            )
    flat = {
        "eventdate": eventdate,
        "eventname": name,
        "eventsource": source,
        "eventtype": opt_str(doc, "eventType"),
        "accountid": account,
        "region": opt_str(doc, "awsRegion"),
        "sourceip": opt_str(doc, "sourceIPAddress"),
        "useragent": opt_str(doc, "userAgent"),
        "principal_arn": opt_str(ident, "arn"),
        "principal_type": opt_str(ident, "type"),
        "access_key_id": opt_str(ident, "accessKeyId"),
        "errorcode": opt_str(doc, "errorCode"),
        "eventid": opt_str(doc, "eventID"),
        "readonly": readonly,
        "mfa": _mfa(doc, ident, name),
    }
    return Record(table=TABLE, flat=flat, doc=doc, file=file, line=line)


def _mfa(doc: dict[str, Any], ident: dict[str, Any], name: str) -> bool | None:
    """True when the session or the console sign-in used MFA, False when the record says it did not."""
    mfa: bool | None = None
    context = ident.get("sessionContext")
    attributes = context.get("attributes") if isinstance(context, dict) else None
    flag = attributes.get("mfaAuthenticated") if isinstance(attributes, dict) else None
    if isinstance(flag, str):
        mfa = flag.lower() == "true"
    elif isinstance(flag, bool):
        mfa = flag
    if name == "ConsoleLogin":
        extra = doc.get("additionalEventData")
        used = extra.get("MFAUsed") if isinstance(extra, dict) else None
        if isinstance(used, str):
            mfa = mfa is True or used == "Yes"
    return mfa


def read_cloudtrail(
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    s3_client: Any | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> Iterator[Record]:
    """Canonical CloudTrail records from ``paths`` (files, folders, ``-``, ``s3://bucket/prefix``), in order.

    ``prefilter`` sees each raw JSON Lines line before it is decoded; a line for which it is false is skipped
    (``stats.prefiltered``). Rejects go to ``on_reject`` and are counted in ``stats``. A path that does not
    exist raises :class:`~minerwatch.errors.InputError` here, before anything is read.
    """
    reader = JsonLogReader(
        cloudtrail_record,
        on_reject=on_reject,
        stats=stats,
        prefilter=prefilter,
        wrapper_keys=("Records",),
        max_record_bytes=max_record_bytes,
        max_document_bytes=max_document_bytes,
    )
    return reader.read(paths, s3_client)
