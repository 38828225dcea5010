"""Opening inputs: files, folders, gzip, stdin and S3, as streams of bounded byte blocks.

Every input becomes an :class:`Input`: a display name and an iterator of decompressed byte blocks of at most
:data:`BLOCK_SIZE` bytes. Nothing here holds a whole file in memory, and gzip output is produced in bounded
pieces, so a small compressed bomb cannot exhaust memory either.

Failure policy (the caller decides nothing about it):

- a path argument that cannot be opened raises :class:`~minerwatch.errors.InputError`;
- a file inside a folder, or an S3 object, that cannot be opened becomes a reject (line ``None``);
- a stream that breaks while being read (truncated or corrupt gzip, I/O error) raises :class:`SourceError`
  from the block iterator, after every block read before the break; :func:`iter_lines` turns that into a
  :class:`BrokenLine` at the line where it broke.

:func:`iter_lines` gives numbered lines one at a time; :func:`iter_line_blocks`, which it is built on, gives
runs of complete lines as views into the blocks read, so that a caller can look at many lines with one
C-level search instead of one Python step per line.

Gzip is recognised by its magic bytes, whatever the name. Regular files are read in :data:`BLOCK_SIZE`
blocks; pipes, terminals and sockets (stdin, ``<(...)``) are read with ``read1`` so that a line is processed
as soon as it arrives rather than when a whole block has filled.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import queue
import re
import stat
import sys
import threading
import zlib
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, TypeVar

import orjson

from minerwatch.errors import InputError
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.timewindow import TimeWindow, in_days

try:  # zlib-ng inflates gzip about twice as fast as zlib, with zlib's API (decompressobj, copy, error)
    from zlib_ng import zlib_ng as _inflate
except ImportError:  # a platform without its wheel (pyproject.toml installs it only where one exists)
    _inflate = zlib

BLOCK_SIZE = 8 * 1024 * 1024
"""Bytes per read from a regular file or S3 object, and the largest decompressed piece of a gzip stream."""

MAX_RECORD_BYTES = 1_048_576
"""Default limit of one record (a line, or one element of a document); longer ones are rejected."""

EXCERPT_CHARS = 500
_HEAD_BYTES = EXCERPT_CHARS * 4
"""Bytes of an over-long or broken line kept for its excerpt (enough for EXCERPT_CHARS characters)."""
STDIN_NAME = "<stdin>"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_BOM_TEXT = "\ufeff"
_JSON_WS = re.compile(r"[ \t\r\n]*")
_COMPACT_AT = 1 << 20
_GZIP_STEP = 256 * 1024
"""Compressed bytes inflated per call. Larger steps inflate faster (zlib-ng: 637 MB/s at 256 KiB against 584 MB/s at
64 KiB, fewer state copies); a failing step is redone byte by byte, so the output before an error is the same."""

T = TypeVar("T")


class SourceError(Exception):
    """A stream broke while being read. ``key`` is the short reason used for counting."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # sent back whole from a worker process (see forked_map)
        return type(self), (self.key, self.detail)

    @property
    def reason(self) -> str:
        return f"{self.key}: {self.detail}"


@dataclass(slots=True)
class Input:
    """One input stream: ``chunks`` yields decompressed blocks and may raise :class:`SourceError`."""

    name: str
    chunks: Generator[bytes, None, None]


def excerpt(raw: bytes | str) -> str:
    """The start of a raw record as text, for a reject: never more than :data:`EXCERPT_CHARS` characters."""
    if isinstance(raw, bytes):
        raw = raw[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
    return raw[:EXCERPT_CHARS]


class RejectSink:
    """Counts a reject in the stats and hands it to the caller's callback."""

    def __init__(self, on_reject: Callable[[Reject], None], stats: ReadStats) -> None:
        self._on_reject = on_reject
        self._stats = stats

    def __call__(self, file: str, line: int | None, key: str, reason: str, raw: bytes | str = b"") -> None:
        stats = self._stats
        stats.rejected += 1
        stats.reasons[key] = stats.reasons.get(key, 0) + 1
        self._on_reject(Reject(file=file, line=line, reason=reason, excerpt=excerpt(raw)))


# --------------------------------------------------------------------------------------------- byte blocks


def _read_blocks(read: Callable[[int], bytes], size: int, stats: ReadStats) -> Iterator[bytes]:
    while True:
        try:
            block = read(size)
        except OSError as exc:
            raise SourceError("read error", str(exc)) from exc
        if not block:
            return
        stats.bytes_read += len(block)
        yield block


def gunzip(chunks: Iterator[bytes], out_size: int | None = None) -> Iterator[bytes]:
    """Decompress a gzip stream (several concatenated members allowed) in pieces of at most ``out_size``.

    Raises :class:`SourceError` for corrupt data and for a stream that ends inside a member, after yielding
    everything decompressed before that point — also what the failing step decoded, since a bad CRC is only
    found after a member's last byte. The reason gives the compressed offset of the failure and the
    decompressed offset of the output given before it.
    """
    out_size = out_size or BLOCK_SIZE
    decomp = _inflate.decompressobj(wbits=31)
    started = False  # some input has gone into the current member
    fed = 0  # compressed bytes of the chunks before this one
    given = 0  # decompressed bytes yielded
    for chunk in chunks:
        view = memoryview(chunk)
        pos = 0
        while pos < len(view):
            if decomp.eof:
                # A member ended: what follows is another member, or zero padding some writers add.
                if not view[pos:].tobytes().strip(b"\x00"):
                    break
                decomp = _inflate.decompressobj(wbits=31)
            started = True
            # In steps: each is redone byte by byte if it fails (zlib drops a failing call's output).
            feed = view[pos : pos + _GZIP_STEP]
            out = yield from _step(decomp, feed, out_size, fed + pos, given)
            left = decomp.unused_data if decomp.eof else decomp.unconsumed_tail
            pos += len(feed) - len(left)
            given += len(out)
            if out:
                yield out
            while len(out) == out_size and not decomp.eof and not decomp.unconsumed_tail:
                out = yield from _step(decomp, b"", out_size, fed + pos, given)  # output held back by the limit
                given += len(out)
                if out:
                    yield out
        fed += len(view)
    if started and not decomp.eof:
        raise SourceError(
            "truncated gzip",
            f"compressed data ended before the end-of-stream marker, after compressed byte {fed} "
            f"(decompressed byte {given})",
        )


_SALVAGE_OUT = 64
"""Output limit of one call while a failed step is redone: at most this much decoded output is lost."""


def _step(
    decomp: Any, feed: bytes | memoryview, out_size: int, offset: int, given: int
) -> Generator[bytes, None, bytes]:
    """``decomp.decompress(feed, out_size)``, returned. If it fails, the step is redone from the state before
    it one input byte at a time (then with no input, for output held back): what decodes is yielded, in
    pieces of at most ``out_size``, and :class:`SourceError` is raised at the failing byte. ``offset``: the
    compressed offset of ``feed``; ``given``: decompressed bytes given before it."""
    saved = decomp.copy()
    try:
        return decomp.decompress(feed, out_size)
    except _inflate.error:
        pass
    held: list[bytes] = []
    size = 0
    for at in range(len(feed) + 1):
        data: bytes | memoryview = feed[at : at + 1]
        try:
            while True:
                out = saved.decompress(data, _SALVAGE_OUT)
                held.append(out)
                size += len(out)
                if size >= out_size:
                    joined = b"".join(held)
                    held, size = [joined[out_size:]], size - out_size
                    given += out_size
                    yield joined[:out_size]
                data = saved.unconsumed_tail
                if saved.eof or (not data and len(out) < _SALVAGE_OUT):
                    break
        except _inflate.error as exc:
            if size:
                given += size
                yield b"".join(held)
            where = f"at compressed byte {offset + min(at, len(feed) - 1)} (decompressed byte {given})"
            raise SourceError("corrupt gzip", f"{exc} {where}") from exc
    raise AssertionError("a step that failed must fail again when redone")


def _maybe_gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Pass blocks through, or decompress them when the stream starts with the gzip magic bytes."""
    head = b""
    while len(head) < len(_GZIP_MAGIC):
        chunk = next(chunks, None)
        if chunk is None:
            break
        head += chunk
    if not head:
        return
    rest = prepend(head, chunks)
    if head.startswith(_GZIP_MAGIC):
        yield from gunzip(rest)
    else:
        yield from rest


def prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """``first`` (when not empty), then ``rest``: a peeked buffer put back in front of its stream."""
    if first:
        yield first
    yield from rest


def _file_chunks(f: BinaryIO, stats: ReadStats) -> Iterator[bytes]:
    """Blocks of an open binary file, closing it when done (or when the consumer stops early)."""
    try:
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            blocks = _joined(_maybe_gunzip(_read_blocks(f.read, BLOCK_SIZE, stats)), _HANDOFF)
            yield from _ahead(blocks) if _read_ahead else blocks
        else:
            # read1 returns what is available now: an interactive pipe is not held back until a block fills.
            yield from _maybe_gunzip(_read_blocks(getattr(f, "read1", f.read), BLOCK_SIZE, stats))
    finally:
        f.close()


_AHEAD = 2
"""Blocks read ahead of the consumer (each at most BLOCK_SIZE)."""
_HANDOFF = 2 * 1024 * 1024
"""A regular file's decompressed pieces (gzip gives one per input step) are joined up to this size before they
are handed over: fewer hand-offs between the threads, and longer runs for the consumer's searches."""
_END = object()

_read_ahead = True
"""Whether regular files and byte ranges are always read (and inflated) by a helper thread: see
:func:`read_ahead_from_disk_only`."""
_CACHE_PROBES = 16
"""Places of a byte range checked to be in the page cache (see :func:`_cached`)."""


def read_ahead_from_disk_only() -> None:
    """From now on, in this process, read in the consumer's own thread, but for a byte range of a plain file (see
    :func:`range_chunks`) that is not in the page cache. For a worker process among at least as many as there are
    cores, where a helper thread has no free core to run on.

    With the data in memory the helper only competes with the consumer and hands every block over through a queue
    and the GIL: with two workers on two cores, the helper threads cost 0.2-0.4 s of CPU time per GiB of findings
    read, and 0.4 s per 10 M gzip flow records. A plain range read from the disk is another matter: it is read at
    about 1 GB/s, so the helper is what keeps the disk busy while the consumer works (a cold 1 GiB of findings took
    1.59-1.96 s without it, 1.28-1.50 s with it). A gzip file is not read ahead either way: inflating and searching
    it take several times longer than reading it, and its cold sweep measured faster without the helper.
    """
    global _read_ahead
    _read_ahead = False


def worker_initializer(workers: int) -> Callable[[], None]:
    """The ``initializer`` of a pool of ``workers`` forked processes that read files: each ends with the process
    that started it (:func:`end_with_parent`), and reads in its own thread (:func:`read_ahead_from_disk_only`) when
    the workers leave no core free."""
    return functools.partial(_start_worker, os.getpid(), workers >= (os.cpu_count() or 1))


def _start_worker(parent: int, no_core_free: bool) -> None:
    end_with_parent(parent)
    if no_core_free:
        read_ahead_from_disk_only()


_PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int) -> None:
    """Have the kernel kill this (forked) process when ``parent``, the process that started it, ends, however it
    ends: a pool's workers otherwise outlive a parent killed mid-run, waiting forever for their next task. Linux
    only (nothing is done elsewhere, or where the C library refuses)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return
    if prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0 and os.getppid() != parent:
        os._exit(1)  # the parent ended before the request was made: nobody is left to signal it


def forked_map(fn: Callable[[T], Any], items: Sequence[T], workers: int, name: Callable[[T], str]) -> Iterator[Any]:
    """``fn`` of each of ``items`` on ``workers`` forked processes, given in order as they are done. ``fn`` is a
    module-level function (sent by name, with each item); the state it reads is inherited with the caller's memory.

    A worker that ends abruptly (killed, out of memory), or whose exception cannot be sent back, raises
    :class:`InputError` naming ``name(item)`` for the first item left without a result, and the other workers are
    stopped: :class:`multiprocessing.pool.Pool` would wait for that item forever. Should the caller stop early (an
    error, Ctrl-C, SIGTERM), the workers are killed: the executor's shutdown would let each finish its item, and the
    interpreter waits for them at exit."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ctx = multiprocessing.get_context("fork")
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=worker_initializer(workers))
    done = False
    try:
        futures = [pool.submit(fn, item) for item in items]
        for item, future in zip(items, futures, strict=True):
            try:
                result = future.result()
            except BrokenProcessPool as exc:
                if exc.__cause__ is None:
                    reason = "the worker process reading it ended abruptly (killed, or out of memory)"
                else:  # the worker answered, but its answer could not be read back: the traceback's last line
                    last = [line for line in str(exc.__cause__).splitlines() if line.strip("\"' ")][-1:]
                    reason = f"the worker process reading it failed ({''.join(last).strip()})"
                raise InputError(f"{reason}: the run stops before saving anything read", file=name(item)) from None
            yield result
        done = True
    finally:
        if not done:
            _kill_workers(pool)
        pool.shutdown(cancel_futures=True)


def _kill_workers(pool: Any) -> None:
    kill = getattr(pool, "kill_workers", None)  # Python 3.14
    if kill is not None:
        kill()
        return
    for process in list((pool._processes or {}).values()):
        process.kill()


def _cached(fd: int, start: int, end: int) -> bool:
    """Whether bytes [start, end) of a file look held by the page cache: a byte at each of :data:`_CACHE_PROBES`
    places spread over them reads without waiting for the disk (``RWF_NOWAIT``). False where that cannot be asked.
    A probe that misses makes the kernel start reading there, which the read that follows wants anyway."""
    nowait = getattr(os, "RWF_NOWAIT", None)
    if nowait is None or not hasattr(os, "preadv"):
        return False
    probe = bytearray(1)
    step = max((end - start) // _CACHE_PROBES, 1)
    try:
        # A page that is not cached gives EAGAIN, or on some file systems EOPNOTSUPP: both say "read ahead".
        return all(os.preadv(fd, [probe], at, nowait) == 1 for at in range(start, end, step))
    except OSError:
        return False


def _joined(blocks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """``blocks`` joined into pieces of at least ``size`` bytes (the last may be shorter) and at most
    :data:`BLOCK_SIZE` (unless a block is longer); what came before an error is given before it."""
    pending: list[bytes] = []
    total = 0
    try:
        for block in blocks:
            if pending and total + len(block) > BLOCK_SIZE:
                yield b"".join(pending)
                pending, total = [], 0
            pending.append(block)
            total += len(block)
            if total >= size:
                yield pending[0] if len(pending) == 1 else b"".join(pending)
                pending, total = [], 0
    except SourceError:
        if pending:
            yield b"".join(pending)
        raise
    if pending:
        yield b"".join(pending)


def _ahead(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """``blocks``, produced by a helper thread up to :data:`_AHEAD` blocks ahead of the consumer.

    Reading (a system call) and gunzip (zlib-ng or zlib) release the GIL, so they overlap with the consumer's work on
    another core. Errors come out of this iterator at the place they happened. When the consumer stops early
    the thread is stopped and joined before this returns, so the caller may then close the file.
    """
    slots: queue.Queue[Any] = queue.Queue(_AHEAD)
    stop = threading.Event()

    def produce() -> None:
        # After ``stop`` is set this puts at most one more item, and the consumer makes room for it.
        try:
            for block in blocks:
                slots.put(block)
                if stop.is_set():
                    return
            slots.put(_END)
        except BaseException as exc:  # handed over, raised in the consumer
            slots.put(exc)

    thread = threading.Thread(target=produce, name="minerwatch-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _stdin_chunks(stats: ReadStats) -> Iterator[bytes]:
    buf = sys.stdin.buffer
    try:
        regular = stat.S_ISREG(os.fstat(buf.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):  # replaced stdin without a descriptor
        regular = False
    read = buf.read if regular else getattr(buf, "read1", buf.read)
    yield from _maybe_gunzip(_read_blocks(read, BLOCK_SIZE, stats))


# --------------------------------------------------------------------------------------------- paths


def check_paths(paths: Sequence[str]) -> None:
    """Fail early, before any record is read, for a path argument that does not exist or is malformed."""
    for path in paths:
        if path == "-":
            continue
        if path.startswith("s3://"):
            if not path[5:].partition("/")[0]:
                raise InputError(f"no bucket in S3 URL {path!r}", file=path)
            continue
        if path.startswith("guardduty://"):
            from minerwatch.sources.guardduty_api import parse_url

            parse_url(path)
            continue
        try:
            os.stat(path)
        except OSError as exc:
            raise InputError(f"cannot open {path}: {exc.strerror or exc}", file=path) from exc


class WindowedPath(str):
    """A path argument whose export-layout day folders (``.../YYYY/MM/DD/...``, local or S3) that cannot hold a
    record of ``window`` are not read; an optimisation only, the query's own time condition decides."""

    window: TimeWindow

    def __new__(cls, path: str, window: TimeWindow | None = None) -> WindowedPath:
        self = super().__new__(cls, path)
        self.window = window or TimeWindow()
        return self

    def keep(self, name: str) -> bool:
        return in_days(name, self.window.since, self.window.until)


def windowed_paths(paths: Sequence[str], window: TimeWindow) -> list[str]:
    """``paths`` marked for pruning by ``window`` (paths bound to an account by ``--org`` are left as they are)."""
    if not window:
        return list(paths)
    return [p if getattr(p, "inputs", None) is not None else WindowedPath(p, window) for p in paths]


def _keep_all(_name: str) -> bool:
    return True


def _keep_of(path: str) -> Callable[[str], bool]:
    """Which entries below ``path`` are read: a :class:`WindowedPath`'s day folders, else all."""
    return path.keep if isinstance(path, WindowedPath) else _keep_all


def iter_inputs(
    paths: Sequence[str], reject: RejectSink, stats: ReadStats, *, s3_client: Any | None = None
) -> Iterator[Input]:
    """Every input stream named by ``paths``, in order; folders recursively in sorted order.

    ``guardduty://REGION[/DETECTOR]`` reads the findings of the GuardDuty API (``guardduty_api``); a path
    bound to an account by ``--org`` (``org.AccountPath``) is opened with that account's clients."""
    client = s3_client
    for path in paths:
        keep = _keep_of(path)
        bound = getattr(path, "inputs", None)
        if bound is not None:  # read with one account's credentials (minerwatch.sources.org)
            yield from bound(reject, stats)
        elif path.startswith("guardduty://"):
            from minerwatch.sources import guardduty_api  # imports this module

            yield from guardduty_api.iter_api(path, guardduty_api.default_client, reject, stats)
        elif path == "-":
            stats.files += 1
            yield Input(STDIN_NAME, _stdin_chunks(stats))
        elif path.startswith("s3://"):
            if client is None:
                client = default_s3_client(path)
            yield from iter_s3(path, client, reject, stats, keep)
        elif os.path.isdir(path):
            yield from _iter_dir(path, reject, stats, keep)
        else:  # a file named on its own is read whatever its day
            try:
                f = open(path, "rb", buffering=0 if _is_regular(path) else -1)  # closed by _file_chunks
            except OSError as exc:
                raise InputError(f"cannot open {path}: {exc.strerror or exc}", file=path) from exc
            stats.files += 1
            yield Input(path, _file_chunks(f, stats))


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # let open() report the error


def folder_files(
    top: str, keep: Callable[[str], bool] | None = None, onerror: Callable[[OSError], None] | None = None
) -> Iterator[str]:
    """The files below ``top`` in the order the readers read them. Symbolic links to folders are not followed (no
    cycles); hidden entries (.git, .DS_Store) are skipped; ``keep`` (default: a :class:`WindowedPath`'s own)
    prunes folders (given with a trailing separator) and files."""
    keep = keep or _keep_of(top)
    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and keep(os.path.join(dirpath, d) + os.sep)
        )
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if not name.startswith(".") and keep(path):
                yield path


def _iter_dir(
    top: str, reject: RejectSink, stats: ReadStats, keep: Callable[[str], bool] = _keep_all
) -> Iterator[Input]:
    def onerror(exc: OSError) -> None:
        if exc.filename == top:
            raise InputError(f"cannot read folder {top}: {exc.strerror or exc}", file=top) from exc
        reject(exc.filename or top, None, "unreadable folder", f"unreadable folder: {exc.strerror or exc}")

    for path in folder_files(top, keep, onerror):
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                # Opening a FIFO or device found in a folder could block forever.
                reject(path, None, "not a regular file", "not a regular file: skipped")
                continue
            f = open(path, "rb", buffering=0)  # closed by _file_chunks
        except OSError as exc:
            reject(path, None, "unreadable file", f"unreadable file: {exc.strerror or exc}")
            continue
        stats.files += 1
        yield Input(path, _file_chunks(f, stats))


# --------------------------------------------------------------------------------------------- S3


def default_s3_client(url: str = "s3://") -> Any:
    """``boto3.client("s3")``, pointed at ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` when set."""
    import boto3  # imported on demand: it costs a noticeable fraction of a second
    from botocore.exceptions import BotoCoreError

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    try:
        return boto3.client("s3", endpoint_url=endpoint)
    except BotoCoreError as exc:
        raise InputError(f"cannot create an S3 client for {url}: {exc}", file=url) from exc


def iter_s3(
    url: str, client: Any, reject: RejectSink, stats: ReadStats, keep: Callable[[str], bool] = _keep_all
) -> Iterator[Input]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = url[5:].partition("/")
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = (obj["Key"] for page in pages for obj in page.get("Contents", ()))
        for key in keys:
            if key.endswith("/"):
                continue  # folder placeholder objects made by the console
            name = f"s3://{bucket}/{key}"
            if not keep(name):
                continue
            try:
                body = client.get_object(Bucket=bucket, Key=key)["Body"]
            except (BotoCoreError, ClientError) as exc:
                reject(name, None, "unreadable object", f"unreadable object: {exc}")
                continue
            stats.files += 1
            yield Input(name, _s3_chunks(body, stats))
    except (BotoCoreError, ClientError) as exc:
        raise InputError(f"cannot list {url}: {exc}", file=url) from exc


def _s3_chunks(body: Any, stats: ReadStats) -> Iterator[bytes]:
    from botocore.exceptions import BotoCoreError

    def read(size: int) -> bytes:
        try:
            return body.read(size)
        except BotoCoreError as exc:  # connection reset, incomplete read: the object is cut short
            raise SourceError("read error", str(exc)) from exc

    try:
        yield from _maybe_gunzip(_read_blocks(read, BLOCK_SIZE, stats))
    finally:
        body.close()


# --------------------------------------------------------------------------------------------- lines


@dataclass(slots=True, frozen=True)
class LongLine:
    """A line longer than the limit: only its length and its first bytes were kept."""

    size: int
    head: bytes


@dataclass(slots=True, frozen=True)
class BrokenLine:
    """The stream broke inside this line (or just before it); nothing follows."""

    error: SourceError
    head: bytes


@dataclass(slots=True, frozen=True)
class LineBlock:
    """Complete lines, newlines included: ``data[start:end]`` (``end`` is just after the last newline).

    A view into a block as it was read, so that nothing is copied; see :func:`iter_line_blocks` for how long
    its lines can be.
    """

    data: bytes
    start: int
    end: int


LineItem = bytes | LongLine | BrokenLine | LineBlock


def iter_line_blocks(
    chunks: Iterator[bytes], max_line_bytes: int, window: int | None = None
) -> Iterator[LineItem]:
    """Every line of the stream in order, unnumbered: runs of complete lines as :class:`LineBlock`, the others
    one at a time (``bytes`` without its newline, :class:`LongLine`, or a final :class:`BrokenLine`).

    With ``window``, no block is longer than ``window`` bytes, so none of its lines is longer than
    ``window - 1``: when ``window <= max_line_bytes`` a block never holds an over-long line, and any such line
    comes alone, measured exactly, as a :class:`LongLine`. Without it a block is every complete line of one
    read, whatever their length. Lines that span two reads, or that no window holds a newline for, come alone.
    """
    step = window if window is not None and window > 0 else None
    carry = b""  # the start of a line that continues in the next read (at most max_line_bytes long)
    skipped = -1  # length so far of an over-long line being skipped, or -1
    head = b""  # the first bytes of that line, for the reject's excerpt
    try:
        for chunk in chunks:
            size = len(chunk)
            pos = 0
            if skipped >= 0:
                nl = chunk.find(b"\n")
                head = _grow(head, chunk, size if nl < 0 else nl)
                if nl < 0:
                    skipped += size
                    continue
                yield LongLine(skipped + nl, head)
                skipped, head = -1, b""
                pos = nl + 1
            elif carry:
                nl = chunk.find(b"\n")
                if nl < 0:
                    carry += chunk
                    if len(carry) > max_line_bytes:
                        skipped, head, carry = len(carry), carry[:_HEAD_BYTES], b""
                    continue
                length = len(carry) + nl
                if length > max_line_bytes:  # measured, not joined: it may be far longer than the limit
                    yield LongLine(length, _grow(carry[:_HEAD_BYTES], chunk, nl))
                else:
                    yield carry + chunk[:nl]
                carry = b""
                pos = nl + 1
            while pos < size:
                stop = size if step is None else min(size, pos + step)
                last = chunk.rfind(b"\n", pos, stop)
                if last >= 0:
                    yield LineBlock(chunk, pos, last + 1)
                    pos = last + 1
                    continue
                nl = chunk.find(b"\n", stop)
                if nl < 0:
                    break
                # A line at least as long as the window, complete in this read: measured, copied only if kept.
                if nl - pos > max_line_bytes:
                    yield LongLine(nl - pos, chunk[pos : min(nl, pos + _HEAD_BYTES)])
                else:
                    yield chunk[pos:nl]
                pos = nl + 1
            if pos < size:
                carry = chunk[pos:] if pos else chunk
                if len(carry) > max_line_bytes:
                    skipped, head, carry = len(carry), carry[:_HEAD_BYTES], b""
    except SourceError as exc:
        yield BrokenLine(exc, head if skipped >= 0 else carry[:_HEAD_BYTES])
        return
    if skipped >= 0:
        yield LongLine(skipped, head)
    elif carry:
        yield carry


def _grow(head: bytes, chunk: bytes, end: int) -> bytes:
    """``head`` extended from ``chunk[:end]`` up to :data:`_HEAD_BYTES`, so it does not depend on chunking."""
    if len(head) >= _HEAD_BYTES:
        return head
    return head + chunk[: min(end, _HEAD_BYTES - len(head))]


def iter_lines(
    chunks: Iterator[bytes], max_line_bytes: int, *, skip_blank: bool = False, lineno: int = 0
) -> Iterator[tuple[int, bytes | LongLine | BrokenLine]]:
    """``(line number, line)`` for every line, 1-based, newline removed (a ``\\r`` before it is kept).

    A line longer than ``max_line_bytes`` comes as :class:`LongLine` without ever being held whole. A
    :class:`SourceError` from ``chunks`` ends the iteration with a :class:`BrokenLine` numbered as the line in
    which it happened. ``skip_blank``: runs of blank (whitespace-only) lines within a read are passed over at
    C speed and not given, though counted (a blank line that spans two reads may still come). ``lineno``: lines
    before the stream (see :func:`skip_leading_blank_lines`).
    """
    # Skipping: blocks no longer than the limit, so a blank line in one is never over-long (an over-long one
    # comes alone, as in the block path of the readers, and is rejected there as too large).
    window = max(1, max_line_bytes) if skip_blank else None
    for item in iter_line_blocks(chunks, max_line_bytes, window):
        if type(item) is LineBlock:
            data, start, end = item.data, item.start, item.end
            if skip_blank:
                lineno = yield from _nonblank_lines(data, start, end, lineno, max_line_bytes)
                continue
            lines = data[start:end].split(b"\n") if start or end < len(data) else data.split(b"\n")
            lines.pop()  # the empty piece after the final newline
            for raw in lines:
                lineno += 1
                if len(raw) > max_line_bytes:
                    yield lineno, LongLine(len(raw), raw[:_HEAD_BYTES])
                else:
                    yield lineno, raw
        else:
            lineno += 1
            yield lineno, item


def _nonblank_lines(
    data: bytes, start: int, end: int, lineno: int, max_line_bytes: int
) -> Generator[tuple[int, bytes | LongLine], None, int]:
    """The lines of ``data[start:end]`` (complete lines) that are not blank, numbered after ``lineno``;
    returns the number of the last line, blank or not."""
    find = data.find
    pos = start
    while pos < end:
        if data[pos] in BLANK:  # one byte test per line: only a line starting with whitespace may be blank
            after, blank = skip_blank_lines(data, pos, end)
            if blank:
                lineno += blank
                pos = after
                continue
        nl = find(b"\n", pos, end)
        lineno += 1
        if nl - pos > max_line_bytes:
            yield lineno, LongLine(nl - pos, data[pos : min(nl, pos + _HEAD_BYTES)])
        else:
            yield lineno, data[pos:nl]
        pos = nl + 1
    return lineno


BLANK = b" \t\r\n"
"""JSON's whitespace: a line of nothing else is blank, and skipped by every reader."""
_BLANK_STEP = 1 << 16
_BLANK_RUNS = ((b"\n" * _BLANK_STEP, _BLANK_STEP), (b"\r\n" * (_BLANK_STEP // 2), _BLANK_STEP // 2))
"""Whole steps of the common floods, recognised with one memcmp each: (bytes, newlines in them)."""
_BLANK_RE = re.compile(rb"[ \t\r\n]*")


def skip_blank_lines(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The blank lines of ``data[pos:end]`` from ``pos`` on: the offset just after the last of them (after its
    newline) and their number; ``(pos, 0)`` when the line at ``pos`` is not blank. Linear in the bytes
    skipped, at C speed (a memcmp or a regular-expression match per 64 KiB), so a flood of empty lines costs
    no Python work per line.
    """
    run = pos
    newlines = 0
    step = 256  # a short look first: most lines starting with whitespace are not blank
    while run < end:
        for flood, count in _BLANK_RUNS:
            if data.startswith(flood, run, end):
                run += _BLANK_STEP
                newlines += count
                break
        else:
            stop = min(end, run + step)
            found = _BLANK_RE.match(data, run, stop).end()  # type: ignore[union-attr]  # matches empty too
            newlines += data.count(b"\n", run, found)
            run = found
            if found < stop:
                break
            step = _BLANK_STEP
    last = data.rfind(b"\n", pos, run)
    if last < 0:
        return pos, 0
    return last + 1, newlines


def skip_leading_blank_lines(chunks: Iterator[bytes], max_line_bytes: int) -> tuple[int, Iterator[bytes]]:
    """Drop the blank lines (and a byte-order mark on the first of them) at the start of a stream, one read at
    a time, so that a format can be told from the first line that holds something without the blank ones
    ahead of it being held. Returns the number of lines dropped and the rest of the stream, which starts at
    the beginning of a line (a :class:`SourceError` met here is raised again by it).
    """
    lines = 0
    head = b""  # whitespace after the last newline read: the start of a line that may still hold something
    first = True
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return lines, prepend(head, iter(()))
        except SourceError as exc:
            return lines, _raising(head, exc)
        data = head + chunk if head else chunk
        pos = len(_BOM) if first and data.startswith(_BOM) else 0
        first = False
        after, blank = skip_blank_lines(data, pos, len(data))
        lines += blank
        rest = data[after:] if blank else data
        if len(rest) > max_line_bytes or (rest and rest[0] not in BLANK) or rest.lstrip(BLANK):
            return lines, prepend(rest, chunks)
        head = rest


def _raising(first: bytes, error: SourceError) -> Iterator[bytes]:
    if first:
        yield first
    raise error


def peek(
    chunks: Iterator[bytes], decide: Callable[[bytes, bool], T | None]
) -> tuple[T, bytes, Iterator[bytes]]:
    """Read blocks until ``decide(buffer, at_eof)`` returns a decision.

    Returns the decision, the bytes read so far and an iterator over the rest of the stream. A
    :class:`SourceError` met while peeking is raised again by that iterator (the buffer comes first).
    """
    buf = b""
    eof = False
    error: SourceError | None = None
    while True:
        decision = decide(buf, eof)
        if decision is not None:
            return decision, buf, _rest(error, chunks)
        if eof:
            raise AssertionError("decide() must return a decision at end of input")
        try:
            chunk = next(chunks)
        except StopIteration:
            eof = True
            continue
        except SourceError as exc:
            error, eof = exc, True
            continue
        buf += chunk


def _rest(error: SourceError | None, chunks: Iterator[bytes]) -> Iterator[bytes]:
    if error is not None:
        raise error
    yield from chunks


# --------------------------------------------------------------------------------------------- JSON text streams


class StreamError(Exception):
    """A JSON document cannot be read further: the rest of it is one reject."""

    def __init__(self, key: str, reason: str, line: int, excerpt: str = "") -> None:
        super().__init__(reason)
        self.key = key
        self.reason = reason
        self.line = line
        self.excerpt = excerpt


class TextStream:
    """Decoded text of one input, held as a sliding window, with the line number of any offset."""

    def __init__(self, chunks: Iterator[bytes], line: int = 1) -> None:
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.error: tuple[str, str] | None = None
        """(key, reason) of a broken stream or invalid UTF-8: the text ends where it happened."""
        self._line = line  # of the first character (``line``: lines before the stream, plus one)
        self._line_pos = 0
        self._started = False

    def fill(self, need: int) -> None:
        """Read until ``need`` characters follow ``pos``, or the end."""
        while not self.eof and len(self.buf) - self.pos < need:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                self.eof = True
                try:
                    self._append(self._decoder.decode(b"", final=True))
                except UnicodeDecodeError:
                    self._utf8_error(b"", 0)
                return
            except SourceError as exc:
                self.eof = True
                self.error = (exc.key, exc.reason)
                return
            try:
                text = self._decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                self._utf8_error(chunk, max(exc.start, 0))
                return
            self._append(text)

    def _append(self, text: str) -> None:
        if not self._started and text:
            self._started = True
            if text.startswith(_BOM_TEXT):
                text = text[1:]
        self.buf += text

    def _utf8_error(self, chunk: bytes, start: int) -> None:
        good = chunk[:start].decode("utf-8", "replace")
        self._append(good)
        line = self.line_at(len(self.buf))
        self.eof = True
        self.error = ("invalid UTF-8", f"invalid UTF-8 in line {line}")

    def compact(self) -> None:
        """Drop consumed text once it is the larger part of the window (amortised linear copying)."""
        if self.pos > _COMPACT_AT and self.pos * 2 > len(self.buf):
            self.line_at(self.pos)
            self.buf = self.buf[self.pos :]
            self._line_pos -= self.pos
            self.pos = 0

    def line_at(self, offset: int) -> int:
        """1-based line of ``offset`` (offsets are asked for in increasing order)."""
        if offset > self._line_pos:
            self._line += self.buf.count("\n", self._line_pos, offset)
            self._line_pos = offset
        return self._line

    def column_at(self, offset: int) -> int:
        return offset - self.buf.rfind("\n", 0, offset)

    def skip_ws(self) -> str:
        """Skip JSON whitespace; the next character, or ``""`` at the end."""
        while True:
            self.pos = _JSON_WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]  # matches empty too
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if self.eof:
                return ""
            self.fill(1)

    def fail(self, key: str, reason: str, offset: int | None = None) -> StreamError:
        offset = self.pos if offset is None else offset
        return StreamError(key, reason, self.line_at(offset), self.buf[offset : offset + EXCERPT_CHARS])

    def end_error(self, what: str) -> StreamError:
        """The text ended (or broke) where more JSON was expected."""
        if self.error is not None:
            key, reason = self.error
            return self.fail(key, f"{reason} ({what})")
        return self.fail("invalid JSON", f"invalid JSON: unexpected end of data ({what})")

    def expected(self, what: str) -> StreamError:
        """Invalid JSON at ``pos``: ``what`` was expected there."""
        return self.fail(
            "invalid JSON",
            f"invalid JSON: expected {what} at line {self.line_at(self.pos)} column {self.column_at(self.pos)}",
        )

    def value(self, limit: int, decode: Callable[[str, int], tuple[Any, int]]) -> Any:
        """Decode the JSON value at ``pos`` (at most ``limit`` characters) and move past it."""
        start = self.pos
        need = min(limit, 1 << 16)
        while True:
            self.fill(need)
            try:
                value, end = decode(self.buf, start)
            except json.JSONDecodeError as exc:
                # Ran off the end of the window: more text may complete the value.
                ran_out = exc.msg.startswith("Unterminated string") or exc.pos >= len(self.buf) - 8
                if ran_out and not self.eof:
                    if len(self.buf) - start >= limit:
                        raise self.fail("record too large", f"record too large: over {limit} bytes", start) from None
                    need = min(max(need * 4, len(self.buf) - start + 1), limit)
                    continue
                if ran_out and self.error is not None:
                    raise self.end_error(f"in the value starting at line {self.line_at(start)}") from None
                excerpt = self.buf[start : start + EXCERPT_CHARS]
                line = self.line_at(exc.pos)
                reason = f"invalid JSON: {exc.msg} at line {line} column {self.column_at(exc.pos)}"
                raise StreamError("invalid JSON", reason, line, excerpt) from None
            except RecursionError:
                raise self.fail("invalid JSON", "invalid JSON: nesting too deep", start) from None
            except ValueError as exc:  # NaN / Infinity, refused by the decoder's parse_constant
                raise self.fail("invalid JSON", f"invalid JSON: {exc}", start) from None
            if end >= len(self.buf) and not self.eof and need < limit:
                need = min(need * 4, limit)  # a bare number may continue in the next block
                continue
            if end - start > limit:  # found whole in a window that happened to be larger: same verdict
                raise self.fail("record too large", f"record too large: over {limit} bytes", start)
            self.pos = end
            return value


    def elements(
        self, opened: int, limit: int, decode: Callable[[str, int], tuple[Any, int]]
    ) -> Iterator[tuple[int, Any]]:
        """``(line, element)`` for each element of an array whose ``[`` (at line ``opened``) was just consumed,
        one at a time, each at most ``limit`` characters; the window is compacted as they go."""
        index = 0
        while True:
            char = self.skip_ws()
            if char == "]":
                self.pos += 1
                return
            if index:
                if char != ",":
                    if not char:
                        raise self.end_error(f"the array opened at line {opened} is not closed")
                    raise self.expected("',' or ']'")
                self.pos += 1
                char = self.skip_ws()
            if not char:
                raise self.end_error(f"the array opened at line {opened} is not closed")
            line = self.line_at(self.pos)
            element = self.value(limit, decode)
            self.compact()
            yield line, element
            index += 1

    def close_object(self, opened: int, limit: int, decode: Callable[[str, int], tuple[Any, int]]) -> None:
        """Read to the ``}`` of an object whose array member was streamed; its other members are not kept."""
        while True:
            char = self.skip_ws()
            if char == "}":
                self.pos += 1
                return
            if char != ",":
                if not char:
                    raise self.end_error(f"the object opened at line {opened} is not closed")
                raise self.expected("',' or '}'")
            self.pos += 1
            self.skip_ws()
            member = self.value(limit, decode)
            if type(member) is not str:
                raise self.fail("invalid JSON", "invalid JSON: expected a member name")
            if self.skip_ws() != ":":
                raise self.fail("invalid JSON", "invalid JSON: expected ':' after a member name")
            self.pos += 1
            self.skip_ws()
            self.value(limit, decode)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


DECODE_JSON = json.JSONDecoder(parse_constant=_refuse_constant).raw_decode
"""``(text, offset) -> (value, end)``: the standard library's decoder, refusing NaN and Infinity."""


# --------------------------------------------------------------------------------------------- byte ranges


def line_aligned_ranges(path: str, parts: int) -> list[tuple[int, int]]:
    """Split a regular file into about ``parts`` byte ranges that each start at the beginning of a line."""
    size = os.path.getsize(path)
    cuts = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            pos = max(size * k // parts, cuts[-1])
            f.seek(pos)
            while True:
                piece = f.read(1 << 16)
                if not piece:
                    pos = size
                    break
                nl = piece.find(b"\n")
                if nl >= 0:
                    pos += nl + 1
                    break
                pos += len(piece)
            if pos >= size:
                break
            if pos > cuts[-1]:
                cuts.append(pos)
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


RANGE_BLOCK_SIZE = 2 * 1024 * 1024
"""Bytes per read of a byte range. Smaller than BLOCK_SIZE: a worker holds a few blocks at a time (read ahead,
in hand, carried over), and the allocator reuses blocks of this size rather than growing its heap in 8 MiB steps,
so a worker's memory does not depend on how long its range is."""


def range_chunks(path: str, start: int, end: int, stats: ReadStats) -> Iterator[bytes]:
    """Blocks of bytes [start, end) of a plain (not gzip) file, read ahead by a helper thread unless
    :func:`read_ahead_from_disk_only` was called and the page cache holds them."""

    def blocks() -> Iterator[bytes]:
        with open(path, "rb", buffering=0) as f:
            f.seek(start)
            left = end - start
            while left > 0:
                try:
                    block = f.read(min(RANGE_BLOCK_SIZE, left))
                except OSError as exc:
                    raise SourceError("read error", str(exc)) from exc
                if not block:
                    return
                left -= len(block)
                stats.bytes_read += len(block)
                yield block

    if _read_ahead:
        return _ahead(blocks())
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return blocks()  # which raises it where the caller reads
    try:
        return blocks() if _cached(fd, start, end) else _ahead(blocks())
    finally:
        os.close(fd)


def count_newlines(path: str, start: int, end: int) -> int:
    """Newlines in bytes [start, end) of a file."""
    n = 0
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            block = f.read(min(BLOCK_SIZE, left))
            if not block:
                break
            left -= len(block)
            n += block.count(b"\n")
    return n


# --------------------------------------------------------------------------------------------- reasons


def json_type(value: Any) -> str:
    """The JSON type name of a parsed value, for reject reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def short(value: Any) -> str:
    """A value's repr, cut to 60 characters, for reject reasons."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ISO_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ])[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})?"
)


class TimestampError(ValueError):
    """Why a value is not a timestamp (the detail of a reject reason)."""


def iso_timestamp(value: Any, *, space: bool = False, naive_utc: bool = False) -> datetime:
    """ISO 8601 date-time with ``Z`` or ``±HH:MM`` → aware UTC datetime; anything else raises
    :class:`TimestampError`.

    ``space``: a space may separate date and time. ``naive_utc``: a timestamp without a zone is read as UTC
    (Panther's storage format; only for fixtures).
    """
    if isinstance(value, str):
        match = _ISO_TIMESTAMP.fullmatch(value)
        if match is not None and (space or match.group(1) == "T"):
            if match.group(3) is None and not naive_utc:
                raise TimestampError(f"timestamp without a time zone: {short(value)}")
            text = value
            frac = match.group(2)
            if frac is not None and len(frac) > 7:
                text = value.replace(frac, frac[:7], 1)  # datetime keeps microseconds: drop the nanoseconds
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                pass  # well-formed but impossible, like month 13
            else:
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    raise TimestampError(f"not an ISO 8601 timestamp: {short(value)}")


def implausible(raw: bytes, *, arrays: bool = False) -> str | None:
    """Why a raw line cannot be a JSON object (or, with ``arrays``, an object or array), judged without parsing it;
    None: it may be one. Used on lines the prefilter skips, so that garbage is rejected rather than skipped."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return "invalid UTF-8"
    stripped = raw.strip()
    if arrays:
        if stripped[:1] not in (b"{", b"[") or stripped[-1:] not in (b"}", b"]"):
            return "not a JSON value"
    elif stripped[:1] != b"{" or stripped[-1:] != b"}":
        return "not a JSON object"
    return None


def dump_excerpt(value: Any) -> bytes:
    """The start of a parsed value as JSON, for a reject's excerpt."""
    try:
        return orjson.dumps(value)[: EXCERPT_CHARS * 4]
    except TypeError:
        return repr(value).encode()[: EXCERPT_CHARS * 4]
