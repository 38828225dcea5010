"""VPC flow log reader: space-separated flow records (and Parquet) → canonical records of ``cloud.aws.vpcflow``.

Inputs as for every reader: files, folders (recursively — the S3 layout
``AWSLogs/<account>/vpcflowlogs/<region>/YYYY/MM/DD/*.log.gz`` included), ``.gz``, ``-`` for stdin,
``s3://bucket/prefix``.

Text: one flow record per line, fields separated by spaces, ``-`` for a missing value. The field order is
the header line's (``version account-id interface-id ...``, as S3 delivery writes it), for every line after
it until the next header — so files concatenated with their headers read correctly. Without a header, the
number of fields tells the order: 14 is the default (version 2) format; 21, 25, 29, 39 and 40 are AWS's
"all fields" orders of versions 3, 4, 5, 7 and 8 (the default fields followed by each version's additions);
36 is the default transit gateway format. Any other count without a header is a reject. A line
``{"message": "<flow record>", ...}`` (a CloudWatch Logs export) is read as its ``message``.

Parquet files (flow logs delivered as Parquet, recognised by their magic bytes) are read with DuckDB; a
row's line is its 1-based row number.

Every field becomes a flat column under its snake_case name (``log-status`` → ``log_status``); numeric fields
are integers. Also: ``accountid`` (= ``account-id``), ``eventdate`` (``start``, else ``end``, as a UTC
timestamp) and ``nodata`` (``log-status`` is NODATA or SKIPDATA: the row is kept, and says no traffic was
recorded). ``Record.doc`` maps every field name as written in the header (kebab-case) to its value; fields
the catalogue does not know are kept there as strings.

Rejects, with file, line and reason, and reading goes on: a field count that does not match the header, a
non-integer in a numeric field, invalid UTF-8, a header naming a field twice, an over-long line, a JSON line
without a ``message`` string, a truncated gzip.

:func:`vpcflow_duckdb_relation` gives the same rows as SQL over DuckDB's CSV reader, for bulk scans.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from minerwatch import scratch
from minerwatch.catalog.tables import VPCFLOW, ColType
from minerwatch.errors import InputError
from minerwatch.sources import inputs
from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.timewindow import TimeWindow

try:  # RE2 runs the run-shape check as a DFA, about ten times faster than re on flow text
    import re2 as _shape_re
except ImportError:  # a platform without its wheel (pyproject.toml installs it only where one exists)
    _shape_re = None

TABLE = VPCFLOW.name
MAX_LINE_BYTES = 65_536
"""Longest accepted line: the longest real record (all 40 fields) is well under 2 KB."""

V2_FIELDS = (
    "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
).split()
V3_FIELDS = "vpc-id subnet-id instance-id tcp-flags type pkt-srcaddr pkt-dstaddr".split()
V4_FIELDS = "region az-id sublocation-type sublocation-id".split()
V5_FIELDS = "pkt-src-aws-service pkt-dst-aws-service flow-direction traffic-path".split()
V7_FIELDS = (
    "ecs-cluster-arn ecs-cluster-name ecs-container-instance-arn ecs-container-instance-id ecs-container-id "
    "ecs-second-container-id ecs-service-name ecs-task-definition-arn ecs-task-arn ecs-task-id"
).split()
V8_FIELDS = ["reject-reason"]
TGW_FIELDS = (
    "version resource-type account-id tgw-id tgw-attachment-id tgw-src-vpc-account-id tgw-dst-vpc-account-id "
    "tgw-src-vpc-id tgw-dst-vpc-id tgw-src-subnet-id tgw-dst-subnet-id tgw-src-eni tgw-dst-eni tgw-src-az-id "
    "tgw-dst-az-id tgw-pair-attachment-id srcaddr dstaddr srcport dstport protocol packets bytes start end "
    "log-status type packets-lost-no-route packets-lost-blackhole packets-lost-mtu-exceeded "
    "packets-lost-ttl-expired tcp-flags region flow-direction pkt-src-aws-service pkt-dst-aws-service"
).split()

_ALL_V3 = V2_FIELDS + V3_FIELDS
_ALL_V4 = _ALL_V3 + V4_FIELDS
_ALL_V5 = _ALL_V4 + V5_FIELDS
_ALL_V7 = _ALL_V5 + V7_FIELDS
_ALL_V8 = _ALL_V7 + V8_FIELDS
HEADERLESS: dict[int, tuple[str, tuple[str, ...]]] = {
    len(fields): (what, tuple(fields))
    for what, fields in (
        ("the default format (version 2)", V2_FIELDS),
        ("all fields of version 3", _ALL_V3),
        ("all fields of version 4", _ALL_V4),
        ("all fields of version 5", _ALL_V5),
        ("all fields of version 7", _ALL_V7),
        ("all fields of version 8", _ALL_V8),
        ("the default transit gateway format", TGW_FIELDS),
    )
}
"""Field orders recognised by their field count when a file has no header line."""

_DERIVED = ("eventdate", "accountid", "nodata")
_FIELD_TYPES: dict[str, ColType] = {c: t for c, t in VPCFLOW.columns.items() if c not in _DERIVED}
KNOWN_FIELDS = frozenset(c.replace("_", "-") for c in _FIELD_TYPES)
"""Every field name AWS documents, kebab-case."""

_HEADER = re.compile(rb"[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?:[ \t]+[a-z][a-z0-9]*(?:-[a-z0-9]+)*)*[ \t\r]*")
_PARQUET_MAGIC = b"PAR1"
_NODATA = ("NODATA", "SKIPDATA")
_TIMES: dict[int, datetime] = {}
"""Start times seen lately: flow records of one capture window share them."""
_BATCH = 8192


def snake(name: str) -> str:
    """The column name of a field: ``log-status`` → ``log_status``."""
    return name.lower().replace("-", "_")


class _LineError(ValueError):
    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key


@dataclass(frozen=True, slots=True)
class Layout:
    """A field order: from a header line, or recognised by the field count."""

    names: tuple[str, ...]
    """Field names as written (kebab-case)."""
    source: str
    """Where the order comes from, for reject reasons."""
    columns: tuple[tuple[int, str], ...]
    """(field index, flat column) for every field the catalogue knows."""
    ints: tuple[int, ...]
    """Indexes of the integer fields."""
    start: int | None
    end: int | None
    flat_names: tuple[str, ...] | None
    """The flat column of every field, in order, when the catalogue knows them all."""
    fast: Callable[[list[str]], list[Any]] = field(compare=False, repr=False)
    """Fields → values for ASCII input; raises ValueError for anything but valid fields."""

    @classmethod
    def of(cls, names: Sequence[str], source: str) -> Layout:
        columns = tuple((i, snake(n)) for i, n in enumerate(names) if snake(n) in _FIELD_TYPES)
        ints = tuple(i for i, c in columns if _FIELD_TYPES[c] is ColType.BIGINT)
        index = {c: i for i, c in columns}
        flat_names = tuple(c for _, c in columns) if len(columns) == len(names) else None
        fast = _compile(len(names), ints)
        return cls(tuple(names), source, columns, ints, index.get("start"), index.get("end"), flat_names, fast)


def _int_or_null(value: str, index: int) -> None:
    if value == "-":
        return None
    raise ValueError(index)  # the slow path says what is wrong


@functools.lru_cache(maxsize=256)
def _compile(count: int, ints: tuple[int, ...]) -> Callable[[list[str]], list[Any]]:
    """A converter for one field order, as straight-line code: this is the per-record hot path.

    The generated source holds only field indexes, never input text.
    """
    params = ", ".join(f"a{i}" for i in range(count))
    items = [
        f"int(a{i}) if a{i}.isdigit() and len(a{i}) < 19 else _int(a{i}, {i})"
        if i in ints
        else f"None if a{i} == '-' else a{i}"
        for i in range(count)
    ]
    source = f"def fast(fields):\n    ({params},) = fields\n    return [{', '.join(items)}]\n"
    namespace: dict[str, Any] = {"_int": _int_or_null}
    exec(compile(source, "<vpcflow layout>", "exec"), namespace)  # noqa: S102
    return namespace["fast"]  # type: ignore[no-any-return]


_HEADERLESS_LAYOUTS = {n: Layout.of(fields, f"{what}, no header line") for n, (what, fields) in HEADERLESS.items()}
_EXPECTED_COUNTS = ", ".join(str(n) for n in sorted(HEADERLESS))


def parse_header(line: bytes) -> tuple[str, ...] | None:
    """The field names of a header line, or None when the line is not one.

    A header is kebab-case words only, at least one of them a field AWS documents; data values (``ACCEPT``,
    numbers, ``-``, addresses) never all look like that.
    """
    if not line[:1].islower() or _HEADER.fullmatch(line) is None:
        return None
    names = tuple(line.decode("ascii").split())
    if not any(n in KNOWN_FIELDS for n in names):
        return None
    return names


def convert_fields(layout: Layout, fields: list[str], file: str, line: int, *, is_ascii: bool = False) -> Record:
    """One flow record's fields (already split, as many as the layout has) → canonical record.

    ``is_ascii``: the line is known to be ASCII, so the generated converter may be used.
    """
    values: list[Any] | None = None
    if is_ascii:
        try:
            values = layout.fast(fields)
        except ValueError:
            values = None
    if values is None:
        values = _checked_values(layout, fields)
    doc = dict(zip(layout.names, values, strict=True))
    if layout.flat_names is not None:
        flat: dict[str, Any] = dict(zip(layout.flat_names, values, strict=True))
    else:
        flat = {c: values[i] for i, c in layout.columns}
    return _finish(flat, doc, layout.start, layout.end, values, file, line)


def _checked_values(layout: Layout, fields: list[str]) -> list[Any]:
    """The values of any line, with the precise reason when one is wrong."""
    values: list[Any] = [None if v == "-" else v for v in fields]
    for i in layout.ints:
        v = values[i]
        if v is not None:
            if not (v.isdigit() and v.isascii()) or len(v) > 18:
                what = "not an integer" if not (v.isdigit() and v.isascii()) else "out of range"
                raise _LineError(f"bad field '{layout.names[i]}'", f"{what}: {v[:40]!r}")
            values[i] = int(v)
    return values


def _finish(
    flat: dict[str, Any],
    doc: dict[str, Any],
    start: int | None,
    end: int | None,
    values: Sequence[Any],
    file: str,
    line: int,
) -> Record:
    seconds = values[start] if start is not None else None
    if seconds is None and end is not None:
        seconds = values[end]
    eventdate = None
    if seconds is not None:
        eventdate = _TIMES.get(seconds)
        if eventdate is None:
            try:
                eventdate = datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                which = "start" if start is not None and values[start] is not None else "end"
                raise _LineError(f"bad field '{which}'", f"not a time: {seconds}") from None
            if len(_TIMES) >= 65_536:
                _TIMES.clear()
            _TIMES[seconds] = eventdate
    flat["eventdate"] = eventdate
    flat["accountid"] = flat.get("account_id")
    flat["nodata"] = flat.get("log_status") in _NODATA
    return Record(table=TABLE, flat=flat, doc=doc, file=file, line=line)


# --------------------------------------------------------------------------------------------- reader


def read_vpcflow(
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    candidates: Callable[[bytes], Iterable[int]] | None = None,
    on_span: Callable[[int | None, int | None], None] | None = None,
    s3_client: Any | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
    window: TimeWindow | None = None,
) -> Iterator[Record]:
    """Canonical flow records from ``paths`` (files, folders, ``-``, ``s3://bucket/prefix``), in order.

    ``prefilter`` sees each raw data line (never a header) before it is split; a line for which it is false
    is skipped (``stats.prefiltered``) after cheap checks that still reject garbage. Rejects go to
    ``on_reject`` and are counted in ``stats``. A path that does not exist raises
    :class:`~minerwatch.errors.InputError` here, before anything is read.

    ``candidates``: the offsets in a text of hits that make a line worth reading (see :class:`_BlockFilter`).
    Runs of lines that are all well-formed records under the current field order are searched with it at C
    speed, and only the lines holding a hit are read; the others are counted (``stats.prefiltered``) and their
    earliest ``start`` and latest ``end`` go to ``on_span``. Anything else (headers, blank or malformed lines,
    CloudWatch export lines) is read line by line as without it, so records and rejects are unchanged.

    ``window``: only records whose ``eventdate`` (``start``, else ``end``) lies in it are yielded; the others
    are counted in ``stats.outside_window`` (lines ``prefilter`` skips are not judged). With ``candidates``, a
    run's lines outside it are judged on their time column alone and ``on_span`` sees only the lines inside it.
    Export-layout day folders are pruned by the paths themselves (:class:`~minerwatch.sources.inputs.WindowedPath`).
    """
    paths = [os.fspath(p) for p in paths]
    inputs.check_paths(paths)
    window = window if window else None
    blocks = _BlockFilter(candidates, on_span, window, stats) if candidates is not None else None
    records = _Reader(inputs.RejectSink(on_reject, stats), stats, prefilter, max_line_bytes, blocks).run(
        paths, s3_client
    )
    return records if window is None else _within(records, window, stats)


def _within(records: Iterator[Record], window: TimeWindow, stats: ReadStats) -> Iterator[Record]:
    holds = window.holds
    for record in records:
        if holds(record.flat["eventdate"]):
            yield record
        else:
            stats.outside_window += 1


_FIELD = rb"[!-~]+"  # printable ASCII without the space: what text.split() keeps as one field
_INT = rb"(?:[0-9]{1,18}|-)"  # what the converter takes as an integer without a reject
_TIME = rb"(?:[0-9]{1,11}|-)"  # and as a time datetime can hold
_SPECIAL_LINE = re.compile(rb"^(?:\{|[a-z][a-z0-9-]*(?:[ \t]+[a-z][a-z0-9-]*)*[ \t\r]*$)", re.MULTILINE)
"""A line the reader treats apart: a header (it may change the field order) or a CloudWatch Logs export line."""


def _extreme(pick: Callable[..., int], column: list[bytes]) -> int | None:
    if b"-" in column:
        column = [v for v in column if v != b"-"]
    return pick(map(int, column), default=None)


def _long_line(data: bytes, start: int, stop: int, limit: int) -> int | None:
    """The start of the first line of ``data[start:stop]`` (complete lines) longer than ``limit`` bytes, or None.

    Only windows of about ``limit / 2`` bytes are searched for a newline: a line longer than ``limit`` holds a
    whole window, so only a window without one needs a closer look."""
    size = limit // 2 + 1  # a line of limit + 1 bytes or more covers a whole aligned window of this size
    find = data.find
    at = start
    while at < stop:
        end = min(at + size, stop)
        if find(b"\n", at, end) >= 0:
            at = end
            continue
        head = data.rfind(b"\n", start, at) + 1 or start
        tail = find(b"\n", at, stop)
        if tail - head > limit:
            return head
        at = tail + 1
    return None


class _BlockFilter:
    """Reads only candidate lines of runs of well-formed records.

    A run qualifies when every line is exactly the current layout's fields, each a printable ASCII word
    (integers and times as the converter takes them), single-spaced, with no header-shaped line and no
    ``{``: such a line is always a record and never a reject, so skipping it changes nothing but the work.
    """

    def __init__(
        self,
        candidates: Callable[[bytes], Iterable[int]],
        on_span: Callable[[int | None, int | None], None] | None,
        window: TimeWindow | None = None,
        stats: ReadStats | None = None,
    ) -> None:
        self.candidates = candidates
        self.on_span = on_span
        self.window = window.seconds() if window else None
        """``[lo, hi)`` in whole seconds (either may be None), or None: no window."""
        self.stats = stats
        self._shapes: dict[Layout, Any] = {}
        """The run shape of each layout: an RE2 pattern, or an ``re`` one without RE2."""

    def shape(self, layout: Layout) -> Any:
        got = self._shapes.get(layout)
        if got is None:
            # Text fields unbounded: a bounded repetition is one DFA state per count, and with thousands of
            # states the search ran at half speed. Line length is checked apart (:func:`_long_line`).
            parts = [
                _TIME if i in (layout.start, layout.end) else _INT if i in layout.ints else _FIELD
                for i in range(len(layout.names))
            ]
            shape = rb"(?:" + b" ".join(parts) + rb"\n)*"
            got = self._shapes[layout] = (_shape_re or re).compile(shape)
        return got

    def run(self, data: bytes, start: int, end: int, layout: Layout, max_line: int) -> int:
        """The end of the longest qualifying run of complete lines from ``start`` (``start`` when none)."""
        stop = self.shape(layout).match(data, start, end).end()  # type: ignore[union-attr]  # (...)* always matches
        long = _long_line(data, start, stop, max_line)
        if long is not None:
            stop = long  # the over-long line is read (and rejected) as without the filter
        if 0 in layout.ints:
            return stop  # a header or export line starts with a letter or '{', never where a number must be
        special = _SPECIAL_LINE.search(data, start, stop)
        return stop if special is None else special.start()

    def lines(self, data: bytes, start: int, end: int, layout: Layout, max_line: int) -> list[tuple[int, int]]:
        """(offset, end) of each candidate line of the qualifying run ``data[start:end]`` (inside the window)."""
        inside: list[bool] | None = None
        # Every line has exactly the layout's fields, single-spaced: a column is a slice of the split.
        fields = data[start:end].split() if self.window is not None or self.on_span is not None else []
        if self.window is not None:
            verdict = self._inside(fields, layout, self.window)
            if verdict is False:  # no line of the run is in the window: no search, no span
                assert self.stats is not None
                self.stats.outside_window += data.count(b"\n", start, end)
                return []
            if verdict is not True:
                inside = verdict
        found: list[tuple[int, int]] = []
        last = -1
        rfind, find = data.rfind, data.find
        for at in self.candidates(memoryview(data)[start:end]):  # type: ignore[arg-type]  # a view: no copy
            at += start
            if at < last:
                continue  # another hit in a line already taken
            head = rfind(b"\n", start, at) + 1 or start
            last = find(b"\n", at, end)
            found.append((head, last))
        if inside is not None:  # the run straddles a bound: only its lines inside go on
            assert self.stats is not None
            self.stats.outside_window += inside.count(False)
            kept: list[tuple[int, int]] = []
            index, pos = 0, start
            for head, tail in found:
                index += data.count(b"\n", pos, head)
                pos = head
                if inside[index]:
                    kept.append((head, tail))
            found = kept
        if self.on_span is not None and (layout.start is not None or layout.end is not None):
            width = len(layout.names)
            starts = fields[layout.start :: width] if layout.start is not None else None
            ends = fields[layout.end :: width] if layout.end is not None else None
            if inside is not None:
                starts = [v for v, ok in zip(starts, inside, strict=True) if ok] if starts is not None else None
                ends = [v for v, ok in zip(ends, inside, strict=True) if ok] if ends is not None else None
            self.on_span(
                _extreme(min, starts) if starts is not None else None,
                _extreme(max, ends) if ends is not None else None,
            )
        return found

    @staticmethod
    def _inside(fields: list[bytes], layout: Layout, window: tuple[int | None, int | None]) -> bool | list[bool]:
        """Whether the run's lines lie in ``window`` by their event time (``start``, else ``end``, as the reader's
        ``eventdate``): True or False for all of them, else one flag per line."""
        lo, hi = window
        width = len(layout.names)
        count = len(fields) // width
        starts = fields[layout.start :: width] if layout.start is not None else None
        ends = fields[layout.end :: width] if layout.end is not None else None
        if starts is not None and b"-" not in starts:
            times: list[int | None] = list(map(int, starts))
        elif starts is None and ends is None:
            return False  # no time at all: in no window
        else:
            starts = starts or [b"-"] * count
            ends = ends or [b"-"] * count
            times = [int(s) if s != b"-" else None if e == b"-" else int(e) for s, e in zip(starts, ends, strict=True)]
        if None not in times:
            first, latest = min(times), max(times)  # type: ignore[type-var]
            if (lo is None or first >= lo) and (hi is None or latest < hi):  # type: ignore[operator]
                return True
            if (lo is not None and latest < lo) or (hi is not None and first >= hi):  # type: ignore[operator]
                return False
        return [t is not None and (lo is None or t >= lo) and (hi is None or t < hi) for t in times]


class _Reader:
    def __init__(
        self,
        reject: inputs.RejectSink,
        stats: ReadStats,
        prefilter: Callable[[bytes], bool] | None,
        max_line: int,
        blocks: _BlockFilter | None = None,
    ) -> None:
        self.reject = reject
        self.stats = stats
        self.prefilter = prefilter
        self.max_line = max_line
        self.blocks = blocks
        self.layout: Layout | None = None
        """The field order of the line read last (the block filter reads runs under it)."""

    def run(self, paths: Sequence[str], s3_client: Any | None) -> Iterator[Record]:
        for inp in inputs.iter_inputs(paths, self.reject, self.stats, s3_client=s3_client):
            try:
                kind, head, rest = inputs.peek(inp.chunks, _sniff)
                chunks = inputs.prepend(head, rest)
                if kind == "parquet":
                    yield from self._parquet(inp.name, chunks)
                elif self.blocks is not None:
                    yield from self._text(inp.name, self._filtered_lines(chunks))
                else:
                    yield from self._text(inp.name, inputs.iter_lines(chunks, self.max_line))
            finally:
                inp.chunks.close()

    # ---- text

    def _filtered_lines(
        self, chunks: Iterator[bytes]
    ) -> Iterator[tuple[int, bytes | inputs.LongLine | inputs.BrokenLine]]:
        """:func:`inputs.iter_lines`, less the lines of qualifying runs that hold no candidate (counted here).

        Lazy: a run is judged once :meth:`_text` has read every line before it, so ``self.layout`` is current.
        """
        blocks = self.blocks
        assert blocks is not None
        stats = self.stats
        lineno = 0
        self.layout = None
        for item in inputs.iter_line_blocks(chunks, self.max_line):
            if type(item) is not inputs.LineBlock:
                lineno += 1
                yield lineno, item  # type: ignore[misc]
                continue
            data, start, end = item.data, item.start, item.end
            if lineno == 0:  # the first line alone: a byte-order mark, a header
                nl = data.find(b"\n", start, end)
                lineno += 1
                raw = data[start:nl]
                long = len(raw) > self.max_line
                yield lineno, inputs.LongLine(len(raw), raw[: inputs.EXCERPT_CHARS * 4]) if long else raw
                start = nl + 1
                if start >= end:
                    continue
            while start < end:
                layout = self.layout
                if layout is None:  # no header: the order of the first line's field count
                    nl = data.find(b"\n", start, end)
                    layout = _HEADERLESS_LAYOUTS.get(len(data[start:nl].split()))
                stop = blocks.run(data, start, end, layout, self.max_line) if layout is not None else start
                if stop > start:
                    found = blocks.lines(data, start, stop, layout, self.max_line)  # type: ignore[arg-type]
                    base, pos = lineno, start
                    for head, tail in found:
                        base += data.count(b"\n", pos, head)
                        pos = head
                        yield base + 1, data[head:tail]
                    # Lines of the run: its newlines, counted once (up to the last candidate line, then the rest).
                    count = base - lineno + data.count(b"\n", pos, stop)
                    stats.records_read += count - len(found)
                    stats.prefiltered += count - len(found)
                    lineno += count
                    start = stop
                if start < end:  # a line outside any run: read as without the filter
                    nl = data.find(b"\n", start, end)
                    for n, raw in inputs.iter_lines(iter((data[start : nl + 1],)), self.max_line, lineno=lineno):
                        lineno = n
                        yield n, raw
                    start = nl + 1

    def _text(
        self, name: str, lines: Iterator[tuple[int, bytes | inputs.LongLine | inputs.BrokenLine]]
    ) -> Iterator[Record]:
        stats = self.stats
        reject = self.reject
        prefilter = self.prefilter
        header: Layout | None = None
        layouts = _HEADERLESS_LAYOUTS
        first = True
        for lineno, raw in lines:
            if type(raw) is not bytes:
                stats.records_read += 1
                if isinstance(raw, inputs.LongLine):
                    reason = f"line too long: {raw.size} bytes (limit {self.max_line})"
                    reject(name, lineno, "line too long", reason, raw.head)
                elif isinstance(raw, inputs.BrokenLine):
                    reject(name, lineno, raw.error.key, f"{raw.error.reason} (in line {lineno})", raw.head)
                continue
            if first:
                first = False
                if raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
            text_bytes = raw
            if raw[:1] == b"{":
                try:
                    text_bytes = _message(raw)
                except _LineError as exc:
                    stats.records_read += 1
                    reject(name, lineno, exc.key, str(exc), raw)
                    continue
            elif not raw or raw.isspace():
                continue
            names = parse_header(text_bytes)
            if names is not None:
                if len(set(names)) != len(names):
                    stats.records_read += 1
                    dup = next(n for n in names if names.count(n) > 1)
                    reason = f"bad header: field {dup!r} named twice (the previous field order stays)"
                    reject(name, lineno, "bad header", reason, raw)
                else:
                    header = self.layout = Layout.of(names, f"the header at line {lineno}")
                continue
            stats.records_read += 1
            if prefilter is not None and not prefilter(raw):
                problem = self._implausible(text_bytes, header)
                if problem is None:
                    stats.prefiltered += 1
                else:
                    reject(name, lineno, problem[0], f"{problem[1]} (line skipped by the prefilter)", raw)
                continue
            is_ascii = text_bytes.isascii()
            if is_ascii:
                text = text_bytes.decode("ascii")
            else:
                try:
                    text = text_bytes.decode("utf-8")
                except UnicodeDecodeError as exc:
                    reason = f"invalid UTF-8: byte 0x{text_bytes[exc.start]:02x} at offset {exc.start}"
                    reject(name, lineno, "invalid UTF-8", reason, raw)
                    continue
            fields = text.split()
            layout = header if header is not None else layouts.get(len(fields))
            if layout is None or len(layout.names) != len(fields):
                key, reason = _count_error(len(fields), header)
                reject(name, lineno, key, reason, raw)
                continue
            try:
                record = convert_fields(layout, fields, name, lineno, is_ascii=is_ascii)
            except _LineError as exc:
                reject(name, lineno, exc.key, str(exc), raw)
                continue
            stats.accepted += 1
            yield record

    def _implausible(self, line: bytes, header: Layout | None) -> tuple[str, str] | None:
        """Why a prefiltered line would be rejected, judged without converting it (None: it may be fine)."""
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return "invalid UTF-8", "invalid UTF-8"
        count = len(line.split())
        if (header is not None and count != len(header.names)) or (header is None and count not in HEADERLESS):
            return _count_error(count, header)
        return None

    # ---- Parquet

    def _parquet(self, name: str, chunks: Iterator[bytes]) -> Iterator[Record]:
        import duckdb

        with contextlib.ExitStack() as spool:
            path = name
            try:
                if not _local_file(name):
                    # DuckDB needs a seekable file: a stream (stdin, S3) is copied to a temporary one first.
                    path = spool.enter_context(scratch.spooled(chunks, "input.parquet"))
                else:
                    chunks.close()  # type: ignore[attr-defined]  # read by DuckDB from the path instead
                con = duckdb.connect()
                try:
                    cursor = con.execute("SELECT * FROM read_parquet(?)", [path])
                    names = [d[0] for d in cursor.description or ()]
                    yield from self._parquet_rows(name, names, cursor)
                finally:
                    con.close()
            except inputs.SourceError as exc:
                self.stats.records_read += 1
                self.reject(name, None, exc.key, exc.reason)
            except duckdb.Error as exc:
                self.stats.records_read += 1
                self.reject(name, None, "unreadable Parquet", f"unreadable Parquet: {str(exc).splitlines()[0]}")

    def _parquet_rows(self, name: str, names: list[str], cursor: Any) -> Iterator[Record]:
        cols = [snake(n) for n in names]
        keys = [c.replace("_", "-") if c in _FIELD_TYPES else n for n, c in zip(names, cols, strict=True)]
        types = [_FIELD_TYPES.get(c) for c in cols]
        index = {c: i for i, c in enumerate(cols) if c in _FIELD_TYPES}
        start, end = index.get("start"), index.get("end")
        row_number = 0
        while True:
            batch = cursor.fetchmany(_BATCH)
            if not batch:
                return
            for row in batch:
                row_number += 1
                self.stats.records_read += 1
                try:
                    values = [_parquet_value(v, t, k) for v, t, k in zip(row, types, keys, strict=True)]
                    flat = {c: values[i] for i, c in enumerate(cols) if c in _FIELD_TYPES}
                    record = _finish(flat, dict(zip(keys, values, strict=True)), start, end, values, name, row_number)
                except _LineError as exc:
                    self.reject(name, row_number, exc.key, f"{exc} (row {row_number})", repr(row))
                    continue
                self.stats.accepted += 1
                yield record


def _parquet_value(value: Any, kind: ColType | None, key: str) -> Any:
    if value is None:
        return None
    if kind is ColType.BIGINT:
        if type(value) is int:
            return value
        if type(value) is str:
            if value == "-":
                return None
            if value.isdigit() and value.isascii() and len(value) <= 18:
                return int(value)
        raise _LineError(f"bad field '{key}'", f"not an integer: {str(value)[:40]!r}")
    if kind is ColType.STRING:
        if type(value) is str:
            return None if value == "-" else value
        if type(value) is int:
            return str(value)
        raise _LineError(f"bad field '{key}'", f"expected a string, got {type(value).__name__}")
    if value is None or type(value) in (str, int, float, bool):
        return value
    return str(value)  # a field the catalogue does not know, of a type JSON lacks (date, decimal, bytes)


def _message(raw: bytes) -> bytes:
    """The flow record in a CloudWatch Logs export line ``{"message": "...", ...}``."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _LineError("invalid JSON", f"{exc.msg} at column {exc.colno}") from None
    message = obj.get("message") if isinstance(obj, dict) else None
    if not isinstance(message, str):
        raise _LineError("not a flow log record", "a JSON line without a 'message' string")
    return message.encode("utf-8")


def _count_error(count: int, header: Layout | None) -> tuple[str, str]:
    if header is not None:
        return "wrong field count", f"wrong field count: {count} fields, but {header.source} names {len(header.names)}"
    return (
        "wrong field count",
        f"wrong field count: {count} fields, and without a header line only {_EXPECTED_COUNTS} "
        "fields are recognised (the default format and AWS's all-fields orders)",
    )


def _sniff(buf: bytes, eof: bool) -> str | None:
    if len(buf) >= len(_PARQUET_MAGIC) or eof:
        return "parquet" if buf.startswith(_PARQUET_MAGIC) else "text"
    return None


def _local_file(name: str) -> bool:
    if name == inputs.STDIN_NAME or name.startswith("s3://"):
        return False
    try:
        return stat.S_ISREG(os.stat(name).st_mode)
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- DuckDB


def vpcflow_duckdb_relation(con: Any, paths: Sequence[str], *, rejects_table: str | None = None) -> str:
    """A DuckDB ``SELECT`` over the flow log files in ``paths``: the per-record reader's rows, for bulk scans.

    ``paths`` are local files and folders (recursively, hidden entries skipped), plain or gzip text or
    Parquet. Each text file's field order comes from its first line, as in :func:`read_vpcflow`: a header,
    else the field count. Columns are the snake_case field names, typed as the catalogue says (fields it
    does not know are VARCHAR), ``-`` is NULL, plus ``accountid``, ``eventdate`` (TIMESTAMP, UTC) and
    ``nodata``. Files of the same layout are read by one ``read_csv``; layouts are combined with
    ``UNION ALL BY NAME``. The SQL is built as sqlglot expressions: paths are quoted literals.

    Lines DuckDB cannot take (wrong field count, a non-integer in a numeric field) make the query fail,
    unless ``rejects_table`` is given: then they are left out and recorded in that DuckDB table (and its
    scans in ``<rejects_table>_scan``), with file and line. A header line repeated inside a file is such a
    line here, where the per-record reader takes it as a header. ``con`` is used to read Parquet schemas.

    Raises :class:`~minerwatch.errors.InputError` for stdin or S3 paths, for a text file whose first line
    is JSON (CloudWatch Logs export lines: read those with :func:`read_vpcflow`), and for a first line
    of an unrecognised field count.
    """
    from sqlglot import exp

    groups: dict[tuple[Any, ...], list[str]] = {}
    for path in _local_files(paths):
        key = _file_layout(path)
        if key is not None:
            groups.setdefault(key, []).append(path)
    selects: list[exp.Select] = []
    columns: dict[str, str] = {}
    for key, files in groups.items():
        if key[0] == "parquet":
            select, cols = _parquet_select(con, files)
        else:
            select, cols = _csv_select(key, files, rejects_table)
        selects.append(select)
        columns.update(cols)
    if not selects:
        empty = [exp.alias_(exp.cast(exp.null(), _duck_type(t)), c, quoted=True) for c, t in _FIELD_TYPES.items()]
        selects.append(exp.select(*empty).where(exp.false()))
        columns = {c: _duck_type(t) for c, t in _FIELD_TYPES.items()}
    body: exp.Query = selects[0]
    for select in selects[1:]:
        body = exp.union(body, select, distinct=False, by_name=True)

    def col(name: str) -> exp.Expression:
        return (
            exp.column(name, quoted=True) if name in columns else exp.cast(exp.null(), _duck_type(_FIELD_TYPES[name]))
        )

    seconds = exp.func("coalesce", col("start"), col("end"))
    eventdate = exp.func("make_timestamp", exp.Mul(this=seconds, expression=exp.Literal.number(1_000_000)))
    status = exp.In(this=col("log_status"), expressions=[exp.Literal.string(s) for s in _NODATA])
    derived = [
        exp.alias_(exp.cast(eventdate, "TIMESTAMP"), "eventdate", quoted=True),
        exp.alias_(col("account_id"), "accountid", quoted=True),
        exp.alias_(exp.func("coalesce", status, exp.false()), "nodata", quoted=True),
    ]
    outer = exp.select(exp.Star(), *derived).from_(
        exp.Subquery(this=body, alias=exp.TableAlias(this=exp.to_identifier("flows")))
    )
    return outer.sql(dialect="duckdb")


def _duck_type(kind: ColType | None) -> str:
    return "BIGINT" if kind is ColType.BIGINT else "VARCHAR"


def _local_files(paths: Sequence[str]) -> list[str]:
    out: list[str] = []
    for path in (os.fspath(p) for p in paths):
        if path == "-" or path.startswith("s3://"):
            raise InputError(f"the DuckDB relation reads local files only, not {path!r}", file=path)
        if os.path.isdir(path):
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                out.extend(os.path.join(dirpath, n) for n in sorted(filenames) if not n.startswith("."))
        elif os.path.exists(path):
            out.append(path)
        else:
            raise InputError(f"cannot open {path}: no such file or folder", file=path)
    return out


def _file_layout(path: str) -> tuple[Any, ...] | None:
    """The group key of one file: its format and field order, from its first line (None: empty file)."""
    try:
        head, gz = _gzip_head(path)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path}: {exc}", file=path) from exc
    if not gz and head.startswith(_PARQUET_MAGIC):
        return ("parquet",)
    head = head.removeprefix(b"\xef\xbb\xbf")
    lines = head.split(b"\n")
    skip = 0
    for line in lines:
        if line.strip():
            break
        skip += 1
    else:
        return None
    first = lines[skip]
    if first.lstrip()[:1] == b"{":
        raise InputError(
            f"{path}: JSON lines (a CloudWatch Logs export?) are not flow log text; read them with read_vpcflow",
            file=path,
            line=skip + 1,
        )
    compression = "gzip" if gz else "none"
    names = parse_header(first)
    if names is not None:
        if len({snake(n) for n in names}) != len(names):
            raise InputError(f"{path}: the header names a field twice", file=path, line=skip + 1)
        return ("csv", compression, True, skip, names)
    count = len(first.split())
    if count not in HEADERLESS:
        key, reason = _count_error(count, None)
        raise InputError(f"{path}: {reason}", file=path, line=skip + 1)
    return ("csv", compression, False, skip, HEADERLESS[count][1])


def _named(name: str, value: Any) -> Any:
    from sqlglot import exp

    if isinstance(value, bool):
        literal: exp.Expression = exp.true() if value else exp.false()
    elif isinstance(value, int):
        literal = exp.Literal.number(value)
    elif isinstance(value, str):
        literal = exp.Literal.string(value)
    else:
        literal = value
    return exp.EQ(this=exp.column(name), expression=literal)


def _csv_select(key: tuple[Any, ...], files: list[str], rejects_table: str | None) -> tuple[Any, dict[str, str]]:
    from sqlglot import exp

    _, compression, header, skip, names = key
    cols = {snake(n): _duck_type(_FIELD_TYPES.get(snake(n))) for n in names}
    struct = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(c, quoted=True), expression=exp.Literal.string(t))
            for c, t in cols.items()
        ]
    )
    options = [
        _named("delim", " "),
        _named("quote", ""),
        _named("escape", ""),
        _named("header", header),
        _named("skip", skip),
        _named("auto_detect", False),
        _named("nullstr", "-"),
        _named("compression", compression),
        _named("columns", struct),
    ]
    if rejects_table is not None:
        options += [
            _named("store_rejects", True),
            _named("rejects_table", rejects_table),
            _named("rejects_scan", f"{rejects_table}_scan"),
        ]
    read = exp.ReadCSV(this=exp.Array(expressions=[exp.Literal.string(f) for f in files]), expressions=options)
    return exp.select(exp.Star()).from_(read), cols


def _parquet_select(con: Any, files: list[str]) -> tuple[Any, dict[str, str]]:
    from sqlglot import exp

    source = exp.func(
        "read_parquet", exp.Array(expressions=[exp.Literal.string(f) for f in files]), _named("union_by_name", True)
    )
    described = con.execute(exp.select(exp.Star()).from_(source).limit(0).sql(dialect="duckdb")).description
    items = []
    cols: dict[str, str] = {}
    for name, kind, *_ in described:
        column = snake(name)
        if column in cols:
            raise InputError(f"Parquet files name the column {column!r} twice", file=files[0])
        value: exp.Expression = exp.column(name, quoted=True)
        if column in _FIELD_TYPES:
            target = _duck_type(_FIELD_TYPES[column])
            if str(kind) == "VARCHAR":
                value = exp.func("nullif", value, exp.Literal.string("-"))
            value = exp.cast(value, target)
            cols[column] = target
        else:
            cols[column] = str(kind)
        items.append(exp.alias_(value, column, quoted=True))
    return exp.select(*items).from_(source), cols


def _gzip_head(path: str, size: int = 65_536) -> tuple[bytes, bool]:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rb") as g:
            return g.read(size), True
    with open(path, "rb") as f:
        return f.read(size), False
