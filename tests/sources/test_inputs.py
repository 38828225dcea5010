"""Line splitting and gzip decoding under every chunking, checked against the standard library."""

from __future__ import annotations

import gzip
import os
import signal
import threading
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.errors import InputError
from minerwatch.sources.inputs import (
    _AHEAD,
    BLOCK_SIZE,
    BrokenLine,
    LineBlock,
    LongLine,
    SourceError,
    _ahead,
    _joined,
    forked_map,
    gunzip,
    iter_line_blocks,
    iter_lines,
)


def _chunked(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` in pieces ending at the given offsets (empty pieces never come from a reader)."""
    pos = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        if cut > pos:
            yield data[pos:cut]
            pos = cut


def _failing(chunks: Iterator[bytes], error: SourceError) -> Iterator[bytes]:
    yield from chunks
    raise error


LINES = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=12)


@settings(max_examples=400, deadline=None)
@given(
    lines=LINES,
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(0, 600), max_size=10),
    limit=st.integers(0, 30),
)
def test_iter_lines_matches_split(
    lines: list[bytes], final_newline: bool, cuts: list[int], limit: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    expected = data.split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()  # a final newline ends the last line, it does not start a new one
    got = list(iter_lines(_chunked(data, cuts), limit))
    assert [n for n, _ in got] == list(range(1, len(expected) + 1))
    for (_, item), line in zip(got, expected, strict=True):
        if len(line) > limit:
            assert isinstance(item, LongLine) and item.size == len(line) and line.startswith(item.head)
        else:
            assert item == line


@settings(max_examples=300, deadline=None)
@given(lines=LINES, cuts=st.lists(st.integers(0, 600), min_size=1, max_size=10), limit=st.integers(5, 30))
def test_iter_lines_reports_a_break_in_the_line_where_it_happened(
    lines: list[bytes], cuts: list[int], limit: int
) -> None:
    data = b"\n".join(lines)
    pieces = list(_chunked(data, cuts))
    kept = pieces[: len(pieces) // 2]
    received = b"".join(kept)
    error = SourceError("truncated gzip", "cut")
    got = list(iter_lines(_failing(iter(kept), error), limit))
    *complete, (lineno, last) = got
    assert isinstance(last, BrokenLine) and last.error is error
    assert lineno == received.count(b"\n") + 1 == len(complete) + 1
    assert received.rsplit(b"\n", 1)[-1].startswith(last.head)


@settings(max_examples=200, deadline=None)
@given(
    members=st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 20_000), max_size=8),
    out_size=st.integers(1, 5000),
)
def test_gunzip_any_chunking_and_output_size(members: list[bytes], cuts: list[int], out_size: int) -> None:
    packed = b"".join(gzip.compress(m, compresslevel=1) for m in members)
    out = list(gunzip(_chunked(packed, cuts), out_size))
    assert b"".join(out) == b"".join(members)
    assert all(0 < len(piece) <= out_size for piece in out)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=1, max_size=5000), cut=st.integers(1, 10_000), out_size=st.integers(1, 2000))
def test_gunzip_truncation_raises_after_a_prefix(data: bytes, cut: int, out_size: int) -> None:
    packed = gzip.compress(data)
    cut = 1 + cut % (len(packed) - 1)  # at least the first byte, never the whole stream
    got: list[bytes] = []
    with pytest.raises(SourceError) as info:
        for piece in gunzip(iter([packed[:cut]]), out_size):
            got.append(piece)
    assert info.value.key == "truncated gzip"
    assert data.startswith(b"".join(got))


def test_gunzip_corrupt_and_padding() -> None:
    packed = gzip.compress(b"hello\n")
    assert b"".join(gunzip(iter([packed + b"\x00" * 10]))) == b"hello\n"
    with pytest.raises(SourceError, match="corrupt gzip"):
        list(gunzip(iter([packed + b"not gzip"])))
    broken = bytearray(packed)
    broken[-8] ^= 0xFF  # CRC
    with pytest.raises(SourceError, match="corrupt gzip"):
        list(gunzip(iter([bytes(broken)])))


def test_gunzip_output_is_bounded_for_a_bomb() -> None:
    packed = zlib.compress(b"\0" * (32 * 1024 * 1024), 9)
    bomb = gzip.compress(b"\0" * (32 * 1024 * 1024), 9)
    assert len(bomb) < len(packed) * 2
    sizes = [len(piece) for piece in gunzip(iter([bomb]), 1 << 20)]
    assert max(sizes) == 1 << 20 and sum(sizes) == 32 * 1024 * 1024


def _expand(items: list[object], limit: int) -> list[tuple[int, object]]:
    """iter_line_blocks' items numbered and split as iter_lines gives them."""
    out: list[tuple[int, object]] = []
    for item in items:
        if isinstance(item, LineBlock):
            for raw in item.data[item.start : item.end].split(b"\n")[:-1]:
                out.append((len(out) + 1, LongLine(len(raw), raw[:2000]) if len(raw) > limit else raw))
        else:
            out.append((len(out) + 1, item))
    return out


@settings(max_examples=400, deadline=None)
@given(
    lines=LINES,
    final_newline=st.booleans(),
    cuts=st.lists(st.integers(0, 600), max_size=10),
    limit=st.integers(0, 30),
    window=st.one_of(st.none(), st.integers(1, 80)),
    broken=st.booleans(),
)
def test_line_blocks_hold_the_same_lines_as_iter_lines(
    lines: list[bytes], final_newline: bool, cuts: list[int], limit: int, window: int | None, broken: bool
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    pieces = list(_chunked(data, cuts))
    error = SourceError("truncated gzip", "cut")

    def chunks() -> Iterator[bytes]:
        return _failing(iter(pieces), error) if broken else iter(pieces)

    items = list(iter_line_blocks(chunks(), limit, window))
    assert _expand(items, limit) == list(iter_lines(chunks(), limit))
    for item in items:
        if isinstance(item, LineBlock):
            assert item.end > item.start and item.data[item.end - 1 : item.end] == b"\n"
            if window is not None:
                assert item.end - item.start <= window
                if window <= limit:  # a block never holds an over-long line: those come alone, measured
                    assert all(len(x) <= limit for x in item.data[item.start : item.end].split(b"\n"))


def test_long_line_excerpt_does_not_depend_on_the_reads() -> None:
    line = bytes(range(65, 91)) * 200  # 5,200 bytes
    whole = list(iter_lines(iter([line + b"\nok"]), 100))
    pieces = list(iter_lines(_chunked(line + b"\nok", list(range(0, 5300, 7))), 100))
    assert whole == pieces == [(1, LongLine(len(line), line[:2000])), (2, b"ok")]


def test_read_ahead_gives_every_block_then_the_error_in_order() -> None:
    error = SourceError("read error", "disk gone")
    got: list[bytes] = []
    with pytest.raises(SourceError) as info:
        for block in _ahead(_failing(iter([b"a", b"b", b"c"]), error)):
            got.append(block)
    assert got == [b"a", b"b", b"c"] and info.value is error
    assert list(_ahead(iter([]))) == [] and list(_ahead(iter([b"x"] * 10))) == [b"x"] * 10


def test_read_ahead_stops_reading_when_the_consumer_stops() -> None:
    pulled: list[int] = []

    def blocks() -> Iterator[bytes]:
        for i in range(1000):
            pulled.append(i)
            yield b"%d" % i

    before = threading.active_count()
    it = _ahead(blocks())
    assert next(it) == b"0"
    it.close()  # joins the helper thread: nothing reads the file after this
    assert threading.active_count() == before
    assert len(pulled) <= 1 + _AHEAD + 2


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), max_size=30), size=st.integers(1, 100), broken=st.booleans())
def test_joined_keeps_the_bytes_and_their_order_up_to_an_error(sizes: list[int], size: int, broken: bool) -> None:
    blocks = [bytes([65 + i % 26]) * n for i, n in enumerate(sizes)]
    error = SourceError("corrupt gzip", "bad block")
    got: list[bytes] = []
    source = _failing(iter(blocks), error) if broken else iter(blocks)
    if broken:
        with pytest.raises(SourceError):
            got.extend(_joined(source, size))
    else:
        got.extend(_joined(source, size))
    assert b"".join(got) == b"".join(blocks)
    assert all(len(piece) >= size for piece in got[:-1])  # only the last piece may be short


def test_joined_pieces_stay_within_the_block_size() -> None:
    big = [b"x" * (BLOCK_SIZE // 3)] * 7
    pieces = list(_joined(iter(big), BLOCK_SIZE))
    assert b"".join(pieces) == b"".join(big) and max(map(len, pieces)) <= BLOCK_SIZE


def _square_or_die(n: int) -> int:
    """Run in a forked worker: 3 kills its process, as the kernel's out-of-memory killer would."""
    if n == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return n * n


def test_forked_map_gives_the_results_in_order() -> None:
    assert list(forked_map(_square_or_die, [5, 1, 4, 2], 2, str)) == [25, 1, 16, 4]


def test_a_worker_killed_mid_task_ends_the_map_with_an_error_naming_its_input() -> None:
    got: list[int] = []
    errors: list[InputError] = []

    def consume() -> None:
        try:
            got.extend(forked_map(_square_or_die, [1, 2, 3, 4, 5], 2, lambda n: f"input-{n}"))
        except InputError as exc:
            errors.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    consumer.join(120)  # a deadline for the failure only: a pool that waits for the lost task never returns
    assert not consumer.is_alive()
    assert len(errors) == 1 and "ended abruptly" in errors[0].message
    # The first input left without a result is named; the results before it were given, in order.
    assert errors[0].file == f"input-{len(got) + 1}" and got == [1, 4][: len(got)]


class _Unsendable(Exception):
    def __init__(self, what: str, why: str) -> None:  # pickled as its one message: cannot be made again
        super().__init__(f"{what}: {why}")


def _fail(n: int) -> int:
    if n == 2:
        raise SourceError("read error", "the disk went away")
    if n == 3:
        raise _Unsendable("odd", "no way back")
    return n


def test_a_worker_error_comes_back_as_raised_or_named_when_it_cannot() -> None:
    with pytest.raises(SourceError) as err:
        list(forked_map(_fail, [1, 2], 2, str))
    assert (err.value.key, err.value.detail) == ("read error", "the disk went away")
    with pytest.raises(InputError) as failed:  # one item: with more, the one named is the first left without result
        list(forked_map(_fail, [3], 2, lambda n: f"input-{n}"))
    assert failed.value.file == "input-3" and "failed (TypeError" in failed.value.message
    assert "killed" not in failed.value.message
