"""Live inputs: each source hands the service :class:`Item` s — a canonical record or a reject, and the callback
that acknowledges it once its effect is committed.

=====================  ==========================================================================================
:class:`SqsSource`     EventBridge "GuardDuty Finding" events delivered to an SQS queue (``sqs.py``)
:class:`S3PollSource`  new objects of the GuardDuty S3 export layout, by polling (``s3poll.py``)
:class:`GuardDutyApiSource`  ListFindings/GetFindings by ``updatedAt`` per detector and region (``gdapi.py``)
:class:`FollowSource`  JSON Lines appended to a file (``tail -F``)
:class:`StdinSource`   JSON Lines on standard input
=====================  ==========================================================================================

Input comes in *units* acknowledged as a whole: an SQS message, an S3 object, a page of the GuardDuty API, a
block of lines. A unit is acknowledged (the message deleted, the position moved past it) only once every item
of it has been acknowledged; a unit with nothing to process comes as one item whose payload is ``None``.
Sources whose position is a place in an ordered input (a file offset, an API cursor) move it only over a
contiguous run of acknowledged units (:class:`Sequencer`), since the service may finish units out of order.

Every source implements :class:`Source`; ``poll`` waits at most about ``timeout`` seconds, so the service can
release held records and notice a shutdown request in time.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from minerwatch.live.positions import PositionStore
from minerwatch.sources.guardduty import records_from_line
from minerwatch.sources.inputs import BLANK, MAX_RECORD_BYTES, excerpt, implausible, skip_blank_lines
from minerwatch.sources.records import Record, Reject

READ_BLOCK = 1 << 20
_BOM = b"\xef\xbb\xbf"

Payload = Record | Reject | None


@dataclass(slots=True)
class Item:
    """One record or reject of a unit. ``ack`` is called exactly once, after the item's effect is committed."""

    payload: Payload
    ack: Callable[[], None]
    received: float
    """``time.monotonic()`` when the unit arrived (latency is measured from here)."""
    published: float | None = None
    """Wall time at which the source says the unit was published (SQS ``SentTimestamp``), when it says."""


class Unit:
    """A piece of input acknowledged as a whole; ``on_done`` runs once, when every item of it is done."""

    __slots__ = ("_pending", "_sealed", "_fired", "_on_done", "rejected", "received", "published")

    def __init__(self, on_done: Callable[[Unit], None], published: float | None = None) -> None:
        self._pending = 0
        self._sealed = False
        self._fired = False
        self._on_done = on_done
        self.rejected = False
        """Some item of the unit is a reject."""
        self.received = time.monotonic()
        self.published = published

    def item(self, payload: Payload) -> Item:
        self._pending += 1
        if isinstance(payload, Reject):
            self.rejected = True
        return Item(payload, self._one_done, self.received, self.published)

    def items(self, payloads: list[Payload]) -> list[Item]:
        """Items for ``payloads`` (one empty item if there are none); the unit is complete after this."""
        out = [self.item(p) for p in payloads] or [self.item(None)]
        self.seal()
        return out

    def seal(self) -> None:
        self._sealed = True
        self._check()

    @property
    def done(self) -> bool:
        return self._fired

    def _one_done(self) -> None:
        self._pending -= 1
        self._check()

    def _check(self) -> None:
        if self._sealed and self._pending == 0 and not self._fired:
            self._fired = True
            self._on_done(self)


class Sequencer:
    """Units of an ordered input finished in any order → the furthest token before which all are finished."""

    def __init__(self) -> None:
        self._next = 0
        self._low = 0
        self._tokens: dict[int, Any] = {}
        self._finished: set[int] = set()
        self.position: Any = None
        self.changed = False

    def open(self, token: Any) -> Callable[[Unit], None]:
        seq = self._next
        self._next += 1
        self._tokens[seq] = token

        def finished(_unit: Unit) -> None:
            self._finished.add(seq)
            while self._low in self._finished:
                self._finished.discard(self._low)
                self.position = self._tokens.pop(self._low)
                self.changed = True
                self._low += 1

        return finished


def stderr_log(text: str) -> None:
    print(f"minerwatch watch: {text}", file=sys.stderr, flush=True)


@dataclass
class SourceContext:
    """What the service gives a source when it starts."""

    positions: PositionStore
    prefilter: Callable[[bytes], bool] | None = None
    """True for raw lines that may match the rule (``minerwatch.compile.prefilter``); None: parse everything."""
    stop: threading.Event = field(default_factory=threading.Event)
    log: Callable[[str], None] = stderr_log

    def sleep(self, seconds: float) -> None:
        """Sleep, waking at once when shutdown is requested."""
        if seconds > 0:
            self.stop.wait(seconds)


class Source(Protocol):
    name: str
    """The input as a URL-like string (``sqs://queue``, ``s3://bucket/prefix``...): the run's input name."""
    exhausted: bool
    """True once the input has ended (standard input at EOF); live sources never end."""
    recovery_until: float
    """Wall time until which matched records must be held after an unclean stop, or 0 (see ``SqsSource``)."""

    def start(self, ctx: SourceContext) -> None:
        """Load the persisted position and check that the input can be used (raise ``InputError`` if not)."""

    def poll(self, timeout: float) -> list[Item]:
        """New items, waiting at most about ``timeout`` seconds when there are none."""

    def flush(self) -> None:
        """Carry out pending acknowledgements (deletes, position writes) and keep in-flight input alive."""

    def release(self, items: list[Item]) -> None:
        """Items polled but not processed, at shutdown: hand them back to the input if it can take them."""

    def close(self, clean: bool) -> None:
        """Stop; ``clean``: everything processed has been acknowledged."""


# --------------------------------------------------------------------------------------------- parsing


def reject(name: str, line: int | None, key: str, detail: str, raw: bytes | str = b"") -> Reject:
    return Reject(file=name, line=line, reason=f"{key}: {detail}" if detail else key, excerpt=excerpt(raw))


class LineSplitter:
    """Bytes in, complete lines out, with their line numbers and the offset just after each; a line longer than
    the limit is reported once (its size) and skipped without being held. Runs of blank lines are passed over
    at C speed, counted but not given (a blank line that spans two reads may still come)."""

    def __init__(self, max_bytes: int = MAX_RECORD_BYTES, offset: int = 0, line: int = 0) -> None:
        self.max_bytes = max_bytes
        self.offset = offset
        """Offset just after the last complete line handed out."""
        self.line = line
        self._carry = b""
        self._skipping = -1  # bytes of an over-long line seen so far, or -1

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes | int]]:
        """``(line number, line bytes without the newline)``, or ``(line number, size)`` for an over-long line."""
        pos = 0
        size = len(data)
        if self._skipping >= 0:
            nl = data.find(b"\n")
            if nl < 0:
                self._skipping += size
                return
            self.line += 1
            self.offset += self._skipping + nl + 1
            yield self.line, self._skipping + nl
            self._skipping = -1
            pos = nl + 1
        elif self._carry:
            nl = data.find(b"\n")
            if nl < 0:
                self._carry += data
                if len(self._carry) > self.max_bytes:
                    self._skipping, self._carry = len(self._carry), b""
                return
            raw = self._carry + data[:nl]
            self._carry = b""
            self.line += 1
            self.offset += len(raw) + 1
            yield self.line, raw if len(raw) <= self.max_bytes else len(raw)
            pos = nl + 1
        while pos < size:
            if data[pos] in BLANK:
                after, blank = skip_blank_lines(data, pos, size)
                if blank and after - pos - blank <= self.max_bytes:  # none of them can be over-long
                    self.line += blank
                    self.offset += after - pos
                    pos = after
                    continue
                while pos < after:  # a limit below the run's whitespace: only the over-long lines are reported
                    nl = data.find(b"\n", pos, after)
                    self.line += 1
                    self.offset += nl + 1 - pos
                    if nl - pos > self.max_bytes:
                        yield self.line, nl - pos
                    pos = nl + 1
                if blank:
                    continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                rest = data[pos:]
                if len(rest) > self.max_bytes:
                    self._skipping = len(rest)
                else:
                    self._carry = rest
                return
            raw = data[pos:nl]
            self.line += 1
            self.offset += nl + 1 - pos
            yield self.line, raw if len(raw) <= self.max_bytes else len(raw)
            pos = nl + 1

    def tail(self) -> Iterator[tuple[int, bytes | int]]:
        """The last line when the input ends without a newline."""
        if self._skipping >= 0:
            self.line += 1
            self.offset += self._skipping
            yield self.line, self._skipping
        elif self._carry:
            raw, self._carry = self._carry, b""
            self.line += 1
            self.offset += len(raw)
            yield self.line, raw
        self._skipping = -1


class LineParser:
    """Lines of JSON Lines → payloads, with the batch reader's prefilter and reject rules."""

    def __init__(self, name: str, prefilter: Callable[[bytes], bool] | None, max_bytes: int) -> None:
        self.name = name
        self.prefilter = prefilter
        self.max_bytes = max_bytes
        self.read = 0
        self.prefiltered = 0

    def parse(self, lines: Iterator[tuple[int, bytes | int]]) -> list[Payload]:
        out: list[Payload] = []
        prefilter = self.prefilter
        for lineno, raw in lines:
            if isinstance(raw, int):
                self.read += 1
                detail = f"{raw} bytes (limit {self.max_bytes})"
                out.append(reject(self.name, lineno, "record too large", detail))
                continue
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw or raw.isspace():
                continue
            self.read += 1
            if prefilter is not None and not prefilter(raw):
                problem = implausible(raw)
                if problem is None:
                    self.prefiltered += 1
                else:
                    reason = f"{problem} (line skipped by the prefilter, not parsed)"
                    out.append(Reject(file=self.name, line=lineno, reason=reason, excerpt=excerpt(raw)))
                continue
            out.extend(records_from_line(raw, self.name, lineno))
        return out


# --------------------------------------------------------------------------------------------- files


class FollowSource:
    """JSON Lines appended to a file, followed like ``tail -F``; the offset after the last acknowledged line is
    persisted, so a restart goes on where the last run stopped. A file that is truncated is read again from the
    start; a file replaced by another (log rotation) is read to its end, then the new one from its start."""

    exhausted = False
    recovery_until = 0.0

    def __init__(self, path: str, *, interval: float = 0.25, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.path = os.path.abspath(path)
        self.name = path
        self.key = "follow:" + self.path
        self.interval = interval
        self.max_bytes = max_record_bytes
        self._f: Any = None
        self._ident: tuple[int, int] | None = None
        self._seq = Sequencer()
        self._ctx: SourceContext | None = None
        self._resume: dict[str, Any] = {}
        self._parser = LineParser(path, None, max_record_bytes)
        self._split = LineSplitter(max_record_bytes)

    def start(self, ctx: SourceContext) -> None:
        self._ctx = ctx
        self._parser.prefilter = ctx.prefilter
        self._resume = ctx.positions.load(self.key) or {}

    def _open(self) -> bool:
        try:
            f = open(self.path, "rb", buffering=0)  # noqa: SIM115 (kept open while following)
        except FileNotFoundError:
            return False
        st = os.fstat(f.fileno())
        ident = (st.st_dev, st.st_ino)
        offset, line = 0, 0
        resume = self._resume
        if resume and (resume.get("dev"), resume.get("ino")) == ident and int(resume.get("offset", 0)) <= st.st_size:
            offset, line = int(resume["offset"]), int(resume.get("line", 0))
        self._resume = {}
        f.seek(offset)
        self._f, self._ident = f, ident
        self._split = LineSplitter(self.max_bytes, offset, line)
        return True

    def poll(self, timeout: float) -> list[Item]:
        assert self._ctx is not None
        if self._f is None and not self._open():
            self._ctx.sleep(min(self.interval, timeout))
            return []
        data = self._f.read(READ_BLOCK)
        if data:
            return self._unit(list(self._split.feed(data)))
        if self._replaced():
            # The old file was read to its end just now; a last line without a newline is complete.
            items = self._unit(list(self._split.tail()))
            self._f.close()
            self._f = None
            return items
        self._ctx.sleep(min(self.interval, timeout))
        return []

    def _unit(self, lines: list[tuple[int, bytes | int]]) -> list[Item]:
        assert self._ident is not None
        token = {"dev": self._ident[0], "ino": self._ident[1], "offset": self._split.offset,
                 "line": self._split.line}  # fmt: skip
        return Unit(self._seq.open(token)).items(self._parser.parse(iter(lines)))

    def _replaced(self) -> bool:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if (st.st_dev, st.st_ino) != self._ident:
            return True
        if st.st_size < self._split.offset:
            if self._ctx is not None:
                self._ctx.log(f"{self.name} was truncated; reading it from the start")
            self._f.seek(0)
            self._split = LineSplitter(self.max_bytes)
        return False

    def flush(self) -> None:
        if self._seq.changed and self._ctx is not None:
            self._ctx.positions.save(self.key, self._seq.position)
            self._seq.changed = False

    def release(self, items: list[Item]) -> None:
        """Nothing to hand back: the position does not move past lines that were not acknowledged."""

    def close(self, clean: bool) -> None:
        self.flush()
        if self._f is not None:
            self._f.close()
            self._f = None

    @property
    def prefiltered(self) -> int:
        return self._parser.prefiltered


class StdinSource:
    """JSON Lines on standard input. A reader thread moves blocks from the pipe to a bounded queue, so ``poll``
    can wait with a timeout; the input ends at EOF. There is no position: standard input cannot be read again."""

    name = "-"
    recovery_until = 0.0

    def __init__(self, stream: Any | None = None, *, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self._stream = stream
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._thread: threading.Thread | None = None
        self._split = LineSplitter(max_record_bytes)
        self._parser = LineParser("<stdin>", None, max_record_bytes)
        self.exhausted = False

    def start(self, ctx: SourceContext) -> None:
        self._parser.prefilter = ctx.prefilter
        if self._stream is not None:
            read = getattr(self._stream, "read1", self._stream.read)
        else:
            # The descriptor, not sys.stdin.buffer: a daemon thread blocked inside the buffered reader holds its
            # lock, and the interpreter aborts when it cannot take that lock at exit.
            fd = sys.stdin.fileno()

            def read(size: int) -> bytes:
                return os.read(fd, size)

        self._thread = threading.Thread(target=self._pump, args=(read,), name="stdin-reader", daemon=True)
        self._thread.start()

    def _pump(self, read: Callable[[int], bytes]) -> None:
        try:
            while True:
                block = read(READ_BLOCK)
                if not block:
                    break
                self._queue.put(block)
        finally:
            self._queue.put(None)

    def poll(self, timeout: float) -> list[Item]:
        if self.exhausted:
            return []
        try:
            # Short waits: a signal does not interrupt a queue wait, so shutdown is noticed between them.
            block = self._queue.get(timeout=max(0.001, min(timeout, 0.25)))
        except queue.Empty:
            return []
        blocks = [block]
        while blocks[-1] is not None and len(blocks) < 16:  # take what is already there
            try:
                blocks.append(self._queue.get_nowait())
            except queue.Empty:
                break
        lines: list[tuple[int, bytes | int]] = []
        for b in blocks:
            if b is None:
                self.exhausted = True
                lines.extend(self._split.tail())
            else:
                lines.extend(self._split.feed(b))
        return Unit(lambda _u: None).items(self._parser.parse(iter(lines)))

    def flush(self) -> None:
        pass

    def release(self, items: list[Item]) -> None:
        pass

    def close(self, clean: bool) -> None:
        pass

    @property
    def prefiltered(self) -> int:
        return self._parser.prefiltered


def __getattr__(name: str) -> Any:
    # The AWS sources live in their own modules (and import boto3 only when used).
    if name == "SqsSource":
        from minerwatch.live.sqs import SqsSource

        return SqsSource
    if name == "S3PollSource":
        from minerwatch.live.s3poll import S3PollSource

        return S3PollSource
    if name == "GuardDutyApiSource":
        from minerwatch.live.gdapi import GuardDutyApiSource

        return GuardDutyApiSource
    raise AttributeError(name)
