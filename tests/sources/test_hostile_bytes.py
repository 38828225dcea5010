"""Hostile bytes: floods of blank lines cost memory bounded by a read and work linear in the bytes, on every
path (file, gzip, the block path, the byte-range reader, stdin and follow); a corrupt gzip keeps what it
decoded before the damage."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from minerwatch.compile.prefilter import Prefilter
from minerwatch.live.feeds import LineSplitter
from minerwatch.sources import guardduty, inputs
from minerwatch.sources.botocore_shapes import to_pascal
from minerwatch.sources.guardduty import read_guardduty, read_guardduty_range
from minerwatch.sources.inputs import SourceError, gunzip
from minerwatch.sources.records import ReadStats, Record, Reject

READ = 256 * 1024
FLOOD = 8 * 1024 * 1024
"""Bytes of blank lines: 32 reads, 8 million lines (each costing a Python step or a tuple would show)."""


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


class _Work:
    """Counts what reaches Python code per line: lines handed to the reader's line loop, and the bytes the
    format sniffer looked at (it looks again at its whole buffer after each read)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lines = 0
        self.sniffed = 0
        sniff, lines = guardduty._Reader._sniff, guardduty._Reader._lines
        work = self

        def counting_sniff(reader: Any, buf: bytes, eof: bool) -> Any:
            work.sniffed += len(buf)
            return sniff(reader, buf, eof)

        def counting_lines(reader: Any, name: str, items: Iterator[Any], **kwargs: Any) -> Iterator[Record]:
            def counted() -> Iterator[Any]:
                for item in items:
                    work.lines += 1
                    yield item

            return lines(reader, name, counted(), **kwargs)

        monkeypatch.setattr(guardduty._Reader, "_sniff", counting_sniff)
        monkeypatch.setattr(guardduty._Reader, "_lines", counting_lines)


def _content_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(number, line) of the lines holding more than whitespace and a byte-order mark, found at C speed."""
    out = []
    found = _NOT_BLANK.search(data)
    while found is not None:
        start, end = data.rfind(b"\n", 0, found.start()) + 1, data.find(b"\n", found.start())
        line = data[start:end]
        if line.lstrip(b"\xef\xbb\xbf").strip():
            out.append((data.count(b"\n", 0, start) + 1, line))
        found = _NOT_BLANK.search(data, end)
    return out


_NOT_BLANK = re.compile(rb"[^ \t\r\n]")


def _floods(good: bytes) -> dict[str, bytes]:
    half = FLOOD // 2
    return {
        "leading": b"\n" * FLOOD + good,
        "middle": good + b"\n" * FLOOD + good,
        "crlf and spaces": good + b"\r\n" * (half // 2) + b"  \t \n" * (half // 5) + good,
        "after a bom": b"\xef\xbb\xbf \n" + b"\n" * FLOOD + good,
    }


@pytest.mark.parametrize("prefilter", [None, Prefilter((b"CryptoCurrency",))], ids=["lines", "blocks"])
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_blank_line_floods_cost_bounded_memory_and_linear_work(
    tmp_path: Path, real_lines: list[bytes], monkeypatch: pytest.MonkeyPatch, prefilter: Any, packed: bool
) -> None:
    monkeypatch.setattr(inputs, "BLOCK_SIZE", READ)
    good = b"\n".join(real_lines) + b"\n"
    for label, data in _floods(good).items():
        path = tmp_path / ("f.jsonl.gz" if packed else "f.jsonl")
        path.write_bytes(gzip.compress(data, 1) if packed else data)
        work = _Work(monkeypatch)
        records: list[Record] = []
        rejects: list[Reject] = []

        def run(path: Path = path, records: list[Record] = records, rejects: list[Reject] = rejects) -> None:
            stats = ReadStats()
            records.extend(read_guardduty([str(path)], on_reject=rejects.append, stats=stats, prefilter=prefilter))

        peak = _peak(run)
        expected = _content_lines(data)
        wanted = [n for n, line in expected if prefilter is None or b"CryptoCurrency" in line]
        assert rejects == [], label
        assert [r.line for r in records] == wanted, label
        assert peak < 8 * READ, (label, peak)  # a few reads, whatever the number of blank lines
        # At most one blank line per read comes alone (one that spans two reads), never one per blank line.
        assert work.lines <= len(expected) + 2 * (len(data) // READ + 2), (label, work.lines)
        assert work.sniffed <= 4 * READ, (label, work.sniffed)


@pytest.mark.parametrize("prefilter", [None, Prefilter((b"CryptoCurrency",))], ids=["lines", "blocks"])
def test_the_byte_range_reader_skips_floods_in_runs(
    tmp_path: Path, real_lines: list[bytes], monkeypatch: pytest.MonkeyPatch, prefilter: Any
) -> None:
    monkeypatch.setattr(inputs, "RANGE_BLOCK_SIZE", READ)
    good = b"\n".join(real_lines) + b"\n"
    data = _floods(good)["middle"]
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    work = _Work(monkeypatch)
    records: list[Record] = []

    def run() -> None:
        records.extend(
            read_guardduty_range(str(path), 0, len(data), on_reject=print, stats=ReadStats(), prefilter=prefilter)
        )

    peak = _peak(run)
    assert len(records) == (22 if prefilter is None else sum(b"CryptoCurrency" in x for x in real_lines) * 2)
    assert peak < 6 * READ and work.lines <= 22 + 2 * (len(data) // READ + 2)


def test_stdin_and_follow_lines_skip_floods_without_holding_them() -> None:
    split = LineSplitter()  # the default limit (1 MiB) is also the largest read of stdin and --follow
    block = b'{"a":1}\n' + b"\n" * FLOOD + b"  \r\n" * 1000 + b'{"b":2}\n'
    got: list[Any] = []
    peak = _peak(lambda: got.extend(split.feed(block)))
    assert got == [(1, b'{"a":1}'), (FLOOD + 1002, b'{"b":2}')]
    assert split.offset == len(block) and split.line == FLOOD + 1002
    assert peak < 64 * 1024  # no tuple per blank line


def test_stdin_lines_over_the_limit_are_still_reported_when_blank() -> None:
    # A whitespace-only line longer than the limit is over-long, as on the batch path.
    split = LineSplitter(max_bytes=3)
    assert list(split.feed(b"\n" * 5 + b"      \n" + b"{}\n")) == [(6, 6), (7, b"{}")]
    assert split.offset == 15


# --------------------------------------------------------------------------------------------- corrupt gzip


def _bad_crc(data: bytes) -> bytes:
    packed = bytearray(gzip.compress(data, 9))
    packed[-8] ^= 0xFF  # the CRC: only found wrong after the last byte of the member
    return bytes(packed)


def test_a_bad_crc_keeps_every_record_decoded_before_it(
    read: Callable[..., Any], tmp_path: Path, real_lines: list[bytes]
) -> None:
    lines = [real_lines[0].replace(b'"id":"', b'"id":"%05d' % i, 1) for i in range(2000)]
    packed = _bad_crc(b"\n".join(lines) + b"\n")
    assert len(packed) < 64 * 1024  # one input step of the decompressor: all of it was lost before
    path = tmp_path / "a.jsonl.gz"
    path.write_bytes(packed)
    res = read([path])
    assert [r.line for r in res.records] == list(range(1, 2001))
    [reject] = res.rejects
    assert reject.line == 2001
    assert reject.reason == (
        "corrupt gzip: Error -3 while decompressing data: incorrect data check at compressed byte "
        f"{len(packed) - 5} (decompressed byte {sum(len(x) + 1 for x in lines)}) (in line 2001)"
    )


def test_gunzip_gives_everything_before_a_corrupt_byte() -> None:
    data = bytes(range(256)) * 4000
    pieces: list[bytes] = []
    with pytest.raises(SourceError) as info:
        for piece in gunzip(iter([_bad_crc(data)]), 100_000):
            pieces.append(piece)
    assert b"".join(pieces) == data and max(map(len, pieces)) <= 100_000
    assert info.value.key == "corrupt gzip" and f"(decompressed byte {len(data)})" in info.value.detail
    # Damage in the middle of the deflate data: what came before it is given, the offset is where it failed.
    broken = bytearray(gzip.compress(data, 1))
    broken[len(broken) // 2] ^= 0xFF
    pieces.clear()
    with pytest.raises(SourceError) as info:
        for piece in gunzip(iter([bytes(broken)])):
            pieces.append(piece)
    given = b"".join(pieces)
    # Bytes decoded just before the damage is detected may be wrong already; the start is intact.
    assert len(given) > len(data) // 4 and given[: len(data) // 4] == data[: len(data) // 4]
    at = int(info.value.detail.split("at compressed byte ")[1].split()[0])
    assert len(broken) // 2 <= at < len(broken)
    with pytest.raises(zlib.error):  # the same bytes up to that offset decode, one more fails
        zlib.decompressobj(wbits=31).decompress(bytes(broken[: at + 1]))


# --------------------------------------------------------------------------------------------- large documents


def _array_of(real_findings: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while sum(len(json.dumps(f, indent=2)) for f in out[-1:]) * len(out) < size:
        out.extend({**f, "id": f"{f['id']}-{len(out)}"} for f in real_findings)
    return out


DOCUMENT = 6 * 1024 * 1024


@pytest.mark.parametrize("shape", ["array", "findings", "Findings"])
def test_a_large_document_is_read_element_by_element(
    tmp_path: Path, real_findings: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    monkeypatch.setattr(inputs, "BLOCK_SIZE", READ)
    findings = _array_of(real_findings, DOCUMENT)
    value: Any = findings
    if shape == "findings":
        value = {"findings": findings, "nextToken": "x"}
    elif shape == "Findings":
        value = {"Findings": [to_pascal(f) for f in findings], "ResponseMetadata": {"HTTPStatusCode": 200}}
    data = json.dumps(value, indent=2).encode()
    path = tmp_path / "doc.json.gz"
    path.write_bytes(gzip.compress(b"\n\n" + data, 1))
    seen: list[tuple[str, int]] = []
    rejects: list[Reject] = []

    def streamed() -> Iterator[Record]:
        return read_guardduty([str(path)], on_reject=rejects.append, stats=ReadStats(), max_document_bytes=READ)

    peak = _peak(lambda: seen.extend((r.flat["id"], r.line) for r in streamed()))
    assert rejects == []
    assert seen == [(f["id"], 3) for f in findings]  # the line where the document starts, as when parsed whole
    assert peak < DOCUMENT, peak  # parsed whole, the document was held twice, and several times as objects
    whole = list(read_guardduty([str(path)], on_reject=rejects.append, stats=ReadStats()))
    assert whole == list(streamed()) and rejects == []


def test_an_over_size_value_is_rejected_without_being_read_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "BLOCK_SIZE", READ)
    path = tmp_path / "big.json.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(b'{\n  "id": "a",\n  "padding": [\n')
        for _ in range(32):
            f.write(b'    "' + b"x" * (1024 * 1024) + b'",\n')
        f.write(b'    "end"\n  ]\n}\n')
    rejects: list[Reject] = []
    peak = _peak(lambda: list(read_guardduty([str(path)], on_reject=rejects.append, stats=ReadStats())))
    assert [(r.file, r.line, r.reason) for r in rejects] == [
        (str(path), 1, f"record too large: over {guardduty.MAX_DOCUMENT_BYTES} bytes; the rest of the document is "
         "not read")
    ]
    assert peak < 6 * guardduty.MAX_DOCUMENT_BYTES, peak  # 32 MiB never held: at most the limit, a few times
