"""The block path of the JSON Lines reader against the per-line path: same records, rejects and stats.

With a prefilter that has ``needles`` (``make_prefilter``'s result) the reader skips whole blocks of plausible
lines that hold no needle; with a plain callable it looks at every line. Both must give exactly the same
result, whatever the data, the record limit, the block size and the size of the reads.
"""

from __future__ import annotations

import dataclasses
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerwatch.compile.prefilter import Prefilter, make_prefilter
from minerwatch.generate.findings import generate_findings
from minerwatch.lang.parser import parse_query
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE
from minerwatch.sources import inputs
from minerwatch.sources.guardduty import (
    _lines_with,
    _needle_search,
    is_plain_json_lines,
    read_guardduty,
    read_guardduty_range,
)
from minerwatch.sources.records import ReadStats, Record, Reject

CRYPTO = Prefilter((b"CryptoCurrency",))


class Counting:
    """A prefilter with needles that counts the lines it is asked about."""

    def __init__(self, inner: Prefilter) -> None:
        self.inner = inner
        self.needles = inner.needles
        self.calls = 0

    def __call__(self, line: bytes) -> bool:
        self.calls += 1
        return self.inner(line)


Outcome = tuple[list[Record], list[Reject], ReadStats]


def _read(paths: list[Path], prefilter: Any, **kwargs: Any) -> Outcome:
    rejects: list[Reject] = []
    stats = ReadStats()
    records = list(
        read_guardduty([str(p) for p in paths], on_reject=rejects.append, stats=stats, prefilter=prefilter, **kwargs)
    )
    return records, rejects, stats


@contextmanager
def _reads_of(size: int | None) -> Iterator[None]:
    """Files read ``size`` bytes at a time (None: the default), so lines span reads."""
    if size is None:
        yield
        return
    with mock.patch.object(inputs, "BLOCK_SIZE", size):
        yield


def _both(paths: list[Path], prefilter: Prefilter, *, read_size: int | None = None, **kwargs: Any) -> Outcome:
    """Read ``paths`` through both paths, check they agree, and return the outcome."""
    with _reads_of(read_size):
        blocks = _read(paths, prefilter, **kwargs)
        lines = _read(paths, lambda line: prefilter(line), **kwargs)
    b_records, b_rejects, b_stats = blocks
    l_records, l_rejects, l_stats = lines
    assert [(r.file, r.line) for r in b_records] == [(r.file, r.line) for r in l_records]
    assert b_records == l_records
    assert [(r.file, r.line, r.reason) for r in b_rejects] == [(r.file, r.line, r.reason) for r in l_rejects]
    assert b_rejects == l_rejects  # the excerpts too
    assert b_stats == l_stats
    return blocks


def _seed_prefilter() -> Prefilter:
    rule = load_rule(DEFAULT_RULE)
    prefilter = make_prefilter(parse_query(rule.query, rule.path, rule.query_line - 1))
    assert isinstance(prefilter, Prefilter)
    return prefilter


# --------------------------------------------------------------------------------------------- real samples


@pytest.mark.parametrize("block", [1, 7, 300, 2500, 1 << 20])
def test_real_samples_give_the_same_result_both_ways(gd_dir: Path, block: int) -> None:
    paths = sorted(gd_dir.glob("*.jsonl"))
    records, rejects, stats = _both(paths, _seed_prefilter(), line_block_bytes=block)
    assert [(Path(r.file).name, r.line, r.flat["type"]) for r in records] == [
        ("elastic-test-guard_duty-crypto.jsonl", 1, "CryptoCurrency:EC2/BitcoinTool.B!DNS")
    ]
    assert rejects == [] and (stats.records_read, stats.prefiltered) == (12, 11)


@pytest.mark.parametrize("literals", [(b"findings", b"Trojan"), (b"accountId",), (b"zzz-absent",)])
def test_real_samples_with_other_literals(gd_dir: Path, literals: tuple[bytes, ...]) -> None:
    paths = sorted(gd_dir.glob("*.jsonl"))
    for block in (5, 4000, 1 << 20):
        _, _, stats = _both(paths, Prefilter(literals), line_block_bytes=block)
        assert stats.records_read == 12


def test_real_samples_concatenated_with_small_reads(gd_dir: Path, tmp_path: Path) -> None:
    data = b"".join(p.read_bytes().rstrip(b"\n") + b"\n" for p in sorted(gd_dir.glob("*.jsonl")))
    path = tmp_path / "all.jsonl"
    path.write_bytes(data * 3)
    for read_size in (97, 4096):
        for block in (64, 3000):
            _both([path], CRYPTO, read_size=read_size, line_block_bytes=block)


# --------------------------------------------------------------------------------------------- generated data


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "findings.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(3000, 7)))
    return path


@pytest.mark.parametrize(("block", "read_size"), [(1 << 20, None), (4096, 50_000), (10_000, 8191)])
def test_generated_findings_give_the_same_result_both_ways(generated: Path, block: int, read_size: int | None) -> None:
    records, rejects, stats = _both([generated], _seed_prefilter(), line_block_bytes=block, read_size=read_size)
    assert rejects == [] and stats.records_read == 3000
    assert records and all("CryptoCurrency" in r.flat["type"] or "CryptoCurrency" in str(r.doc) for r in records)
    assert stats.prefiltered == 3000 - len(records) > 2000


def test_the_block_path_looks_only_at_candidate_lines(generated: Path) -> None:
    counting = Counting(CRYPTO)
    records, _, stats = _read([generated], counting)
    lines = generated.read_bytes().splitlines()
    candidates = [n for n, line in enumerate(lines, 1) if CRYPTO(line)]
    # The first line always goes through the per-line code (its byte-order-mark handling), candidates too.
    assert counting.calls == len({1, *candidates})
    assert [r.line for r in records] == candidates and stats.prefiltered == len(lines) - len(candidates)


def test_gzip_input_gives_the_same_result_both_ways(generated: Path, tmp_path: Path) -> None:
    path = tmp_path / "findings.jsonl.gz"
    path.write_bytes(gzip.compress(generated.read_bytes()))
    _, _, stats = _both([path], CRYPTO, line_block_bytes=20_000)
    assert stats.records_read == 3000


# --------------------------------------------------------------------------------------------- edge cases


def _crypto_line(real_lines: list[bytes]) -> bytes:
    return next(line for line in real_lines if b"CryptoCurrency" in line)


def _plain_line(real_lines: list[bytes]) -> bytes:
    return next(line for line in real_lines if b"CryptoCurrency" not in line and b"\\" not in line)


def _escaped(line: bytes) -> bytes:
    """The same finding with every ``C`` of ``CryptoCurrency`` written as a JSON escape."""
    return line.replace(b"CryptoCurrency", b"\\u0043rypto\\u0043urrency")


def test_an_escaped_literal_is_found_in_a_clean_block(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    doc = orjson.loads(crypto)
    doc.pop("service", None)  # no other backslash: the escape is the line's first one
    only = orjson.dumps(doc).replace(b"CryptoCurrency", b"\\u0043ryptoCurrency")
    assert only.count(b"\\") == only.count(b"\\u") > 0 and b"CryptoCurrency" not in only
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join([plain, _escaped(crypto), plain, crypto, only, plain]) + b"\n")
    records, _, stats = _both([path], CRYPTO)
    assert [r.line for r in records] == [2, 4, 5] and stats.prefiltered == 3
    assert all(r.flat["type"].startswith("CryptoCurrency") for r in records)


@pytest.mark.parametrize(
    "odd",
    [b"", b"   ", b"\r", b"not json", b"{ truncated", b"\xff{}", b'{"a":"\xc3\xa9"}', b" {} ", b"[1]", b"{}\r"],
)
def test_one_odd_line_among_plain_ones(tmp_path: Path, real_lines: list[bytes], odd: bytes) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join([plain, plain, odd, plain, crypto, plain]) + b"\n")
    for block in (1, 100, 1 << 20):
        _both([path], CRYPTO, line_block_bytes=block)


def test_byte_order_mark_is_handled_on_the_first_line_only(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    bom = b"\xef\xbb\xbf"
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join([bom + plain, plain, crypto]) + b"\n")
    records, rejects, _ = _both([path], CRYPTO)
    assert [r.line for r in records] == [3] and rejects == []
    path.write_bytes(b"\n".join([plain, bom + plain, bom + crypto]) + b"\n")
    _, rejects, _ = _both([path], CRYPTO)
    assert [r.line for r in rejects] == [2, 3]  # a mark inside the file is not one


def test_over_long_lines_are_measured_the_same_way(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    long = b'{"a":"' + b"x" * 9000 + b'"}'
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join([plain, long, crypto, long + b"CryptoCurrency", plain, long]))
    for read_size in (None, 1000, 7):
        for block in (1, 500, 5000):
            _, rejects, _ = _both([path], CRYPTO, max_record_bytes=4000, line_block_bytes=block, read_size=read_size)
            assert [(r.line, r.reason.split(":")[0]) for r in rejects] == [
                (2, "record too large"), (4, "record too large"), (6, "record too large")
            ]  # fmt: skip


# --------------------------------------------------------------------------------------------- fuzzing


@st.composite
def _line(draw: st.DrawFn, plain: bytes, crypto: bytes) -> bytes:
    # Plausible lines are the most frequent, so that many blocks are clean and take the fast path.
    kinds = ["small"] * 12 + ["plain", "crypto", "escaped"] + ["object"] * 3
    kinds += ["garbage", "blank", "long", "binary", "bom"]
    kind = draw(st.sampled_from(kinds))
    if kind == "small":
        n = draw(st.integers(0, 99))
        ftype = draw(st.sampled_from([b"Recon:EC2/Portscan", b"CryptoCurrency:EC2/BitcoinTool.B!DNS"]))
        return b'{"id":"f%d","type":"%s","accountId":"1","updatedAt":"2024-01-01T00:00:%02dZ"}' % (n, ftype, n % 60)
    if kind == "plain":
        return plain
    if kind == "bom":
        return b"\xef\xbb\xbf" + draw(st.sampled_from([plain, crypto]))
    if kind == "crypto":
        return crypto
    if kind == "escaped":
        return _escaped(crypto)
    if kind == "garbage":
        return draw(st.sampled_from([b"not json", b"{ no end", b"no start }", b"\xff\xfe", b"{\xff}", b"[]"]))
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r"]))
    if kind == "long":
        return b'{"pad":"' + b"y" * draw(st.integers(100, 3000)) + b'"}'
    if kind == "object":
        values = [b'"v"', b'"\\u0041"', b'"\\\\u"', b"1", b'"CryptoCurrency"', b'"\xc3\xa9"']
        return b'{"k":' + draw(st.sampled_from(values)) + b"}"
    return draw(st.binary(max_size=20)).replace(b"\n", b"")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mix_of_lines_gives_the_same_result_both_ways(
    tmp_path: Path, real_lines: list[bytes], data: st.DataObject
) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    lines = data.draw(st.lists(_line(plain, crypto), min_size=data.draw(st.integers(0, 30)), max_size=60))
    some_crlf = data.draw(st.integers(0, 3)) == 0
    crlf = [some_crlf and data.draw(st.booleans()) for _ in lines]
    ends = [b"\r\n" if c else b"\n" for c in crlf]
    body = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    if data.draw(st.booleans()):
        body = body[: -len(ends[-1])] if lines else body  # no final newline
    if data.draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    gz = data.draw(st.booleans())
    path = tmp_path / "mix.jsonl"
    path.write_bytes(gzip.compress(body) if gz else body)
    _both(
        [path],
        CRYPTO,
        max_record_bytes=data.draw(st.one_of(st.sampled_from([0, 100, 3000, 1 << 20]), st.integers(0, 4000))),
        line_block_bytes=data.draw(st.one_of(st.sampled_from([1, 300, 4096, 1 << 20]), st.integers(1, 20_000))),
        read_size=data.draw(st.sampled_from([None, None, 1, 13, 200, 1024, 5000])),
    )


def _read_in_ranges(path: Path, parts: int, prefilter: Any) -> Outcome:
    """``path`` read as the parallel detection reads it: line-aligned byte ranges, each numbered from its first
    line, the lines before it added afterwards."""
    records: list[Record] = []
    rejects: list[Reject] = []
    stats = ReadStats()
    for start, end in inputs.line_aligned_ranges(str(path), parts):
        before = inputs.count_newlines(str(path), 0, start)
        got: list[Reject] = []
        part = ReadStats()
        read = read_guardduty_range(str(path), start, end, on_reject=got.append, stats=part, prefilter=prefilter)
        records += [dataclasses.replace(record, line=record.line + before) for record in read]
        rejects += [r.after(before) for r in got]
        stats.files += start == 0
        stats.add(part)
    return records, rejects, stats


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_file_read_in_byte_ranges_gives_what_one_read_gives(
    tmp_path: Path, real_lines: list[bytes], data: st.DataObject
) -> None:
    """Any line may open a range, a byte-order mark too: only the file's first line may carry one."""
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    lines = [plain, *data.draw(st.lists(_line(plain, crypto), min_size=1, max_size=60))]
    crlf = data.draw(st.integers(0, 3)) == 0
    body = b"".join(line + (b"\r\n" if crlf and data.draw(st.booleans()) else b"\n") for line in lines)
    if data.draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    path = tmp_path / "ranges.jsonl"
    path.write_bytes(body)
    assert is_plain_json_lines(str(path))  # the files detection splits
    prefilter = data.draw(st.sampled_from([CRYPTO, lambda line: CRYPTO(line), None]))
    whole = _read([path], prefilter)
    with mock.patch.object(inputs, "RANGE_BLOCK_SIZE", data.draw(st.sampled_from([1, 13, 700, 1 << 21]))):
        ranges = _read_in_ranges(path, data.draw(st.integers(2, 12)), prefilter)
    assert ranges[0] == whole[0]
    assert ranges[1] == whole[1]
    assert ranges[2] == dataclasses.replace(whole[2], outside_window=0)


def test_a_byte_order_mark_opening_a_later_range_is_a_bad_line(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    path = tmp_path / "bom.jsonl"
    path.write_bytes(plain + b"\n" + b"\xef\xbb\xbf" + crypto + b"\n" + plain + b"\n")
    records, rejects, _ = _read_in_ranges(path, 3, CRYPTO)
    assert [(r.line, r.reason.split(":")[0]) for r in rejects] == [(2, "invalid JSON")]
    assert records == []


# --------------------------------------------------------------------------------------------- the one-pass search


def test_lines_with_finds_every_line_holding_a_needle_once() -> None:
    search = _needle_search((b"CryptoCurrency", b"\\u", b"2018-10-08", b"with\nnewline"))
    lines = [
        b'{"t":"CryptoCurrency","u":"CryptoCurrency\\u0041"}',  # several matches on one line
        b'{"a":1}',
        b'{"s":"2018-10-08"}',
        b'{"e":"\\u0043"}',  # right after a line with a hit
        b'{"a":2}',
        b'{"z":"CryptoCurrency"}',  # the block's last line
    ]
    data = b"xx" + b"\n".join(lines) + b"\n"  # a block need not start at offset 0
    newlines = [i for i, byte in enumerate(data) if byte == 0x0A]
    assert _lines_with(data, 2, len(data), newlines, search) == [0, 2, 3, 5]
    assert _lines_with(data, 2, len(data), newlines, _needle_search((b"", b"x"))) == list(range(6))
    assert _lines_with(data, 2, len(data), newlines, _needle_search((b"a\nb",))) == []


def test_needles_at_the_first_and_last_bytes_of_lines_and_file(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    doc = orjson.loads(crypto)
    first = b'{"CryptoCurrency":1,' + orjson.dumps(doc)[1:]  # the needle right after the opening brace
    last = orjson.dumps({**doc, "zz": "CryptoCurrency"})  # ... and right before the closing one
    path = tmp_path / "a.jsonl"
    for tail in (b"\n", b""):
        path.write_bytes(b"\n".join([first, plain, plain, last]) + tail)
        for read_size in (None, 1, 97, len(first) + 1):
            records, rejects, stats = _both([path], _seed_prefilter(), read_size=read_size)
            assert [r.line for r in records] == [1, 4] and rejects == [] and stats.prefiltered == 2


def test_a_needle_split_by_a_read_boundary_is_found(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    body = b"\n".join([plain, crypto, plain, crypto]) + b"\n"
    at = body.index(b"CryptoCurrency")
    path = tmp_path / "a.jsonl"
    path.write_bytes(body)
    for read_size in (at + 1, at + 5, at + 13, len(plain) + 3):
        records, _, stats = _both([path], CRYPTO, read_size=read_size, line_block_bytes=len(plain) * 2)
        assert [r.line for r in records] == [2, 4] and stats.prefiltered == 2


def test_crlf_lines_and_markers_are_let_through(tmp_path: Path, real_lines: list[bytes]) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    asff_like = b'{"SchemaVersion":"2018-10-08","Id":"x"}'  # an ASFF marker, no literal: parsed, then rejected
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\r\n".join([plain, crypto, plain, asff_like, plain]) + b"\r\n")
    records, rejects, stats = _both([path], CRYPTO)
    assert [r.line for r in records] == [2] and [r.line for r in rejects] == [4] and stats.prefiltered == 3
    path.write_bytes(b"\n".join([plain, asff_like, plain, crypto]) + b"\n")
    records, rejects, stats = _both([path], CRYPTO)
    assert [r.line for r in records] == [4] and [r.line for r in rejects] == [2] and stats.prefiltered == 2


def test_a_literal_in_another_field_or_a_broken_line_is_still_looked_at(
    tmp_path: Path, real_lines: list[bytes]
) -> None:
    plain, crypto = _plain_line(real_lines), _crypto_line(real_lines)
    elsewhere = orjson.dumps({**orjson.loads(plain), "description": "not CryptoCurrency at all"})
    broken = b'{"type":"CryptoCurrency:EC2/BitcoinTool.B", broken}'
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join([plain, elsewhere, plain, broken, plain, crypto]) + b"\n")
    records, rejects, stats = _both([path], CRYPTO)
    assert [r.line for r in records] == [2, 6] and stats.prefiltered == 3
    assert [(r.line, r.reason.split(":")[0]) for r in rejects] == [(4, "invalid JSON")]
