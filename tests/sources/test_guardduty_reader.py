"""read_guardduty over files and folders: shapes, line numbers, rejects, gzip, limits, memory."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerwatch.errors import InputError
from minerwatch.sources import inputs
from minerwatch.sources.botocore_shapes import to_pascal
from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats

from .conftest import Result

Read = Callable[..., Result]


def _envelope(finding: dict[str, Any], n: int) -> dict[str, Any]:
    """The EventBridge event that carries ``finding``."""
    return {
        "version": "0",
        "id": f"0c1d2e3f-0000-4000-8000-{n:012}",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": finding["accountId"],
        "time": finding["updatedAt"],
        "region": finding["region"],
        "resources": [],
        "detail": finding,
    }


def _ids(findings: list[dict[str, Any]]) -> list[str]:
    return [f["id"] for f in findings]


# --------------------------------------------------------------------------------------------- real samples


def test_elastic_sample_file_as_it_is(read: Read, gd_dir: Path, real_findings: list[dict[str, Any]]) -> None:
    path = gd_dir / "elastic-test-guardduty.jsonl"
    res = read([path])
    # Five findings on lines 1-5; line 6 is {"findings":[]}: an empty response, neither record nor reject.
    assert [r.line for r in res.records] == [1, 2, 3, 4, 5]
    assert res.rejects == []
    assert {r.file for r in res.records} == {str(path)}
    assert [r.doc for r in res.records] == [orjson.loads(x) for x in path.read_bytes().splitlines()[:5]]
    assert [r.doc["resource"]["resourceType"] for r in res.records] == [
        "Instance",
        "EKSCluster",
        "EKSCluster",
        "RDSDBInstance",
        "Container",
    ]
    assert res.stats.files == 1 and res.stats.bytes_read == path.stat().st_size
    assert res.stats.records_read == 6 and res.stats.accepted == 5


def test_crypto_sample_file(read: Read, gd_dir: Path) -> None:
    res = read([gd_dir / "elastic-test-guard_duty-crypto.jsonl"])
    assert [r.flat["type"] for r in res.records] == [
        "CryptoCurrency:EC2/BitcoinTool.B!DNS",
        "Impact:EC2/BitcoinDomainRequest.Reputation",
    ]
    assert all(r.sample for r in res.records)
    assert res.records[0].doc["resource"]["instanceDetails"]["instanceId"] == "i-99999999"


def test_sample_folder(read: Read, gd_dir: Path, real_findings: list[dict[str, Any]]) -> None:
    res = read([gd_dir])
    assert res.ids == _ids(real_findings) and res.rejects == []
    assert res.stats.files == 3


# --------------------------------------------------------------------------------------------- shapes


def test_every_shape_gives_the_same_findings(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    pascal = [to_pascal(f) for f in real_findings]
    envelope = [_envelope(f, i) for i, f in enumerate(real_findings)]
    files = {
        "array.json": json.dumps(real_findings, indent=2),
        "array-one-line.json": json.dumps(real_findings),
        "rest.json": json.dumps({"findings": real_findings, "nextToken": ""}, indent=2),
        "cli.json": json.dumps({"Findings": pascal}, indent=4),  # aws guardduty get-findings
        "cli-one-line.json": json.dumps({"Findings": pascal}),
        "pascal.jsonl": "\n".join(json.dumps(p) for p in pascal),
        "eventbridge.jsonl": "\n".join(json.dumps(e) for e in envelope),
        "eventbridge-pretty.json": "\n".join(json.dumps(e, indent=2) for e in envelope),  # jq . output
        "mixed.jsonl": "\n".join(
            json.dumps(x)
            for x in [real_findings[0], envelope[1], pascal[2], real_findings[3:5], {"Findings": []}]
        ),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        res = read([tmp_path / name])
        expected = real_findings if name != "mixed.jsonl" else real_findings[:5]
        assert res.rejects == [], name
        assert [r.doc for r in res.records] == expected, name


def test_one_pretty_printed_finding_per_file(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    for i, finding in enumerate(real_findings):
        (tmp_path / f"{i:02}.json").write_text(json.dumps(finding, indent=2, sort_keys=True))
    res = read([tmp_path])
    assert [r.doc for r in res.records] == real_findings
    assert {r.line for r in res.records} == {1}


def test_line_numbers_of_concatenated_documents(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    texts = [json.dumps(f, indent=2) for f in real_findings[:3]]
    path = tmp_path / "jq.json"
    path.write_text("\n\n" + "\n".join(texts) + "\n")
    res = read([path])
    starts = [3, 3 + texts[0].count("\n") + 1, 3 + texts[0].count("\n") + texts[1].count("\n") + 2]
    assert [r.line for r in res.records] == starts
    assert [r.doc for r in res.records] == real_findings[:3]


def test_empty_responses_and_files(read: Read, tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"findings": []}, indent=2))
    (tmp_path / "b.json").write_text(json.dumps({"Findings": [], "ResponseMetadata": {}}, indent=4))
    (tmp_path / "c.jsonl").write_text("")
    (tmp_path / "d.jsonl").write_text("\n  \n\r\n")
    (tmp_path / "e.json").write_text("[]")
    res = read([tmp_path])
    assert res.records == [] and res.rejects == [] and res.stats.files == 5


def test_container_elements_that_are_not_findings(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    path = tmp_path / "cli.json"
    path.write_text("\n" + json.dumps({"Findings": [to_pascal(real_findings[0]), 42, {"Id": "x"}]}, indent=4))
    res = read([path])
    assert res.ids == [real_findings[0]["id"]]
    assert [(r.line, r.reason) for r in res.rejects] == [
        (2, "not a GuardDuty finding: expected an object, got number (element 1)"),
        (2, "missing field 'type': not a GuardDuty finding (element 2)"),
    ]
    (tmp_path / "cli.json").write_text(json.dumps({"findings": {"id": "x"}}))
    assert read([path]).rejects[0].reason == "not a GuardDuty finding: 'findings' is object, not an array"


def test_blank_lines_crlf_and_bom(read: Read, tmp_path: Path, real_lines: list[bytes]) -> None:
    path = tmp_path / "win.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + real_lines[0] + b"\r\n\r\n   \n" + real_lines[1] + b"\r\n\t\n" + real_lines[2]
    )
    res = read([path])
    assert [r.line for r in res.records] == [1, 4, 6] and res.rejects == []
    assert res.stats.records_read == 3


# --------------------------------------------------------------------------------------------- hostile input


def test_hostile_lines_are_rejected_with_file_line_and_reason(
    read: Read, tmp_path: Path, real_lines: list[bytes], samples: Path
) -> None:
    good = real_lines[:6]
    redacted = real_lines[6].replace(
        b'"updatedAt":"2022-11-22T12:22:20.934Z"', b'"updatedAt":"XXXX-XX-XXTXX:XX:XXZ"'
    )
    assert redacted != real_lines[6]
    wrong = orjson.loads(real_lines[7])
    wrong["severity"] = "8.0"
    cloudtrail = (samples / "cloudtrail" / "elastic-test-run-instances.jsonl").read_bytes().splitlines()[0]
    lines = [
        good[0],
        b'{"id": "bad\xff\xfe utf8", "type": "x"}',  # 2
        good[1],
        b"[" * 20_000 + b"]" * 20_000,  # 4
        b"",
        good[2],  # 6
        b"{" + b'"a":"' + b"x" * (5 * 1024 * 1024) + b'"}',  # 7: 5 MB
        redacted,  # 8
        orjson.dumps(wrong),  # 9
        good[3],
        cloudtrail,  # 11
        b'{"schemaVersion": "2.0", "id": "trunc',  # 12
        b"not json at all",  # 13
        b"   ",
        good[4],  # 15
        good[5],  # 16
    ]
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = read([path])
    assert [(r.line, r.flat["id"]) for r in res.records] == [
        (n, orjson.loads(good[i])["id"]) for i, n in enumerate([1, 3, 6, 10, 15, 16])
    ]
    got = [(r.file, r.line, r.reason) for r in res.rejects]
    assert got == [
        (str(path), 2, "invalid UTF-8: byte 0xff at offset 11"),
        (str(path), 4, "invalid JSON: nesting too deep at column 1026"),
        (str(path), 7, f"record too large: {len(lines[6])} bytes (limit 1048576)"),
        (str(path), 8, "bad field 'updatedAt': not an ISO 8601 timestamp: 'XXXX-XX-XXTXX:XX:XXZ'"),
        (str(path), 9, "bad field 'severity': expected a number, got string '8.0'"),
        (
            str(path),
            11,
            "a CloudTrail record, not a GuardDuty finding: eventSource 'ec2.amazonaws.com', eventName 'RunInstances'",
        ),
        (str(path), 12, "invalid JSON: unexpected end of data at column 38"),
        (str(path), 13, "invalid JSON: invalid literal, expected 'null' at column 1"),
    ]
    assert all(len(r.excerpt) <= 500 for r in res.rejects)
    assert res.rejects[2].excerpt.startswith('{"a":"xxx')
    assert res.rejects[1].excerpt == "[" * 500
    assert res.stats.reasons == {
        "invalid UTF-8": 1,
        "invalid JSON": 3,
        "record too large": 1,
        "bad field 'updatedAt'": 1,
        "bad field 'severity'": 1,
        "a CloudTrail record, not a GuardDuty finding": 1,
    }
    assert res.stats.records_read == 14


def test_a_hostile_first_line_does_not_turn_the_file_into_a_document(
    read: Read, tmp_path: Path, real_lines: list[bytes]
) -> None:
    for first in (b"[" * 20_000, b'{"id": "cut', b"{", b"[{"):
        path = tmp_path / "f.jsonl"
        path.write_bytes(first + b"\n" + b"\n".join(real_lines[:3]) + b"\n")
        res = read([path])
        assert [r.line for r in res.records] == [2, 3, 4], first[:10]
        assert [r.line for r in res.rejects] == [1]


def test_a_broken_document_is_one_reject_with_its_line(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    text = json.dumps({"Findings": [to_pascal(f) for f in real_findings[:2]]}, indent=4)
    broken = text.replace('"Severity": 8', '"Severity": 8,,', 1)
    assert broken != text
    path = tmp_path / "cli.json"
    path.write_text(broken)
    res = read([path])
    line = broken[: broken.index(",,")].count("\n") + 1
    assert res.records == []
    assert [r.line for r in res.rejects] == [line]
    assert res.rejects[0].reason.startswith("invalid JSON: unexpected character")
    assert res.rejects[0].reason.endswith(
        f"at line {line} column {broken.split(chr(10))[line - 1].index(',,') + 2}"
    )


def test_invalid_utf8_in_a_document(read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b'[\n  {"id": "a\xff"}\n]\n')
    assert [(r.line, r.reason) for r in read([path]).rejects] == [
        (2, "invalid UTF-8: byte 0xff at line 2, offset 13")
    ]


def test_record_size_limit(read: Read, tmp_path: Path, real_lines: list[bytes]) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"\n".join(real_lines) + b"\n")
    limit = sorted(len(x) for x in real_lines)[5]
    res = read([path], max_record_bytes=limit)
    assert len(res.records) == sum(len(x) <= limit for x in real_lines) == 6
    assert all(r.reason.startswith("record too large: ") for r in res.rejects) and len(res.rejects) == 5


def test_document_size_limit(read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]) -> None:
    # Over the limit an array is read element by element, with the same result; a single value is rejected.
    path = tmp_path / "array.json"
    path.write_text(json.dumps(real_findings, indent=2))
    whole = read([path], max_document_bytes=path.stat().st_size)
    streamed = read([path], max_document_bytes=path.stat().st_size - 1)
    assert len(whole.records) == 11 and streamed.records == whole.records and streamed.rejects == []
    one = tmp_path / "one.json"
    one.write_text("\n" + json.dumps(real_findings[0], indent=2) + "\n" + json.dumps(real_findings[1], indent=2))
    res = read([one], max_document_bytes=1000)
    assert res.records == []
    assert [(r.line, r.reason) for r in res.rejects] == [
        (2, "record too large: over 1000 bytes; the rest of the document is not read")
    ]


def test_lines_split_across_any_block_boundary(
    read: Read, tmp_path: Path, real_lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"\n".join(real_lines[:4]) + b"\n\n{broken\n" + b"\n".join(real_lines[4:]) + b"\n"
    for name, content in (("a.jsonl", data), ("b.jsonl.gz", gzip.compress(data))):
        (tmp_path / name).write_bytes(content)
    baseline = read([tmp_path])
    assert len(baseline.records) == 22 and [r.line for r in baseline.rejects] == [6, 6]
    for size in (1, 7, 100, 4096):
        monkeypatch.setattr(inputs, "BLOCK_SIZE", size)
        res = read([tmp_path])
        assert [(r.file, r.line, r.doc) for r in res.records] == [
            (r.file, r.line, r.doc) for r in baseline.records
        ]
        assert res.rejects == baseline.rejects


# --------------------------------------------------------------------------------------------- gzip


def test_s3_export_layout(read: Read, tmp_path: Path, real_lines: list[bytes]) -> None:
    root = tmp_path / "export"
    expected = []
    for day, chunk in ((1, real_lines[:4]), (2, real_lines[4:8]), (15, real_lines[8:])):
        folder = root / "AWSLogs/123456789012/GuardDuty/us-east-1/2024/01" / f"{day:02}"
        folder.mkdir(parents=True)
        (folder / "0f2b4c6e-1c1a-4d55-9a43-3bd9c1f8a001.jsonl.gz").write_bytes(
            gzip.compress(b"\n".join(chunk) + b"\n")
        )
        expected += [orjson.loads(x)["id"] for x in chunk]
    (root / "AWSLogs" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jsonl").write_bytes(b"junk\n")
    res = read([root])
    assert res.ids == expected and res.rejects == []
    assert res.records[0].file.endswith("/2024/01/01/0f2b4c6e-1c1a-4d55-9a43-3bd9c1f8a001.jsonl.gz")
    assert res.stats.files == 3


def test_gzip_is_recognised_by_content_and_members_may_be_concatenated(
    read: Read, tmp_path: Path, real_lines: list[bytes]
) -> None:
    path = tmp_path / "findings.log"  # no .gz suffix
    path.write_bytes(
        gzip.compress(b"\n".join(real_lines[:5]) + b"\n") + gzip.compress(b"\n".join(real_lines[5:]))
    )
    res = read([path])
    assert len(res.records) == 11 and res.rejects == []
    assert res.stats.bytes_read == path.stat().st_size


def test_truncated_gzip_keeps_the_records_before_the_break(
    read: Read, tmp_path: Path, real_lines: list[bytes]
) -> None:
    data = b"\n".join(real_lines * 40) + b"\n"  # 440 lines
    packed = gzip.compress(data)
    (tmp_path / "a.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (tmp_path / "b.jsonl").write_bytes(real_lines[0] + b"\n")
    res = read([tmp_path])
    cut = [r for r in res.records if r.file.endswith("a.jsonl.gz")]
    assert 0 < len(cut) < 440
    assert [r.line for r in cut] == list(range(1, len(cut) + 1))
    assert [(r.file, r.line) for r in res.rejects] == [(str(tmp_path / "a.jsonl.gz"), len(cut) + 1)]
    decoded = zlib.decompressobj(wbits=31).decompress(packed[: len(packed) // 2])
    assert res.rejects[0].reason == (
        "truncated gzip: compressed data ended before the end-of-stream marker, after compressed byte "
        f"{len(packed) // 2} (decompressed byte {len(decoded)}) (in line {len(cut) + 1})"
    )
    assert res.records[-1].file.endswith("b.jsonl")  # the next file is still read


def test_truncated_gzip_of_a_document(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    packed = gzip.compress(json.dumps(real_findings, indent=2).encode())
    path = tmp_path / "a.json.gz"
    path.write_bytes(packed[:-20])
    res = read([path])
    assert res.records == [] and [r.reason.split(":")[0] for r in res.rejects] == ["truncated gzip"]


def test_corrupt_gzip(read: Read, tmp_path: Path, real_lines: list[bytes]) -> None:
    packed = bytearray(gzip.compress(b"\n".join(real_lines * 100)))
    assert len(packed) > 4 * 64 * 1024
    packed[len(packed) // 2 : len(packed) // 2 + 64] = b"\xff" * 64
    (tmp_path / "a.gz").write_bytes(bytes(packed))
    (tmp_path / "b.gz").write_bytes(gzip.compress(real_lines[0] + b"\n") + b"garbage after the member")
    res = read([tmp_path / "a.gz", tmp_path / "b.gz"])
    from_a = [r.line for r in res.records if r.file.endswith("a.gz")]
    assert len(from_a) > 100 and from_a == list(range(1, len(from_a) + 1))  # what came before the damage
    a_rejects = [r for r in res.rejects if r.file.endswith("a.gz")]
    assert a_rejects[-1].reason.startswith("corrupt gzip: ")
    assert [(r.line, r.reason.split(":")[0]) for r in res.rejects if r.file.endswith("b.gz")] == [
        (2, "corrupt gzip")
    ]
    assert [r.line for r in res.records if r.file.endswith("b.gz")] == [1]


# --------------------------------------------------------------------------------------------- memory


def _peak(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_over_long_line_is_never_held_whole(
    tmp_path: Path, real_lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lines up to the record limit are legitimate and may be held (twice while joined); longer ones never.
    monkeypatch.setattr(inputs, "BLOCK_SIZE", 64 * 1024)
    path = tmp_path / "big.jsonl"
    path.write_bytes(
        real_lines[0] + b"\n" + b'{"a":"' + b"x" * (5 * 1024 * 1024) + b'"}\n' + real_lines[1] + b"\n"
    )
    rejects: list[Any] = []
    records: list[Any] = []

    def run() -> None:
        stats = ReadStats()
        records.extend(
            read_guardduty([str(path)], on_reject=rejects.append, stats=stats, max_record_bytes=128 * 1024)
        )

    assert _peak(run) < 1024 * 1024
    assert [r.line for r in records] == [1, 3] and [r.line for r in rejects] == [2]


def test_a_gzip_bomb_is_read_in_bounded_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "BLOCK_SIZE", 256 * 1024)
    path = tmp_path / "bomb.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(64):
            f.write(b"a" * (1024 * 1024))  # one 64 MB line
    assert path.stat().st_size < 200_000
    rejects: list[Any] = []

    def run() -> None:
        assert list(read_guardduty([str(path)], on_reject=rejects.append, stats=ReadStats())) == []

    assert _peak(run) < 4 * 1024 * 1024
    assert [r.reason for r in rejects] == [f"record too large: {64 * 1024 * 1024} bytes (limit 1048576)"]


# --------------------------------------------------------------------------------------------- paths


def test_missing_path_argument_raises_before_reading(tmp_path: Path, gd_dir: Path) -> None:
    with pytest.raises(InputError) as info:
        read_guardduty(
            [str(gd_dir), str(tmp_path / "nope.jsonl")], on_reject=lambda r: None, stats=ReadStats()
        )
    assert info.value.file == str(tmp_path / "nope.jsonl") and "nope.jsonl" in str(info.value)
    (tmp_path / "dangling").symlink_to(tmp_path / "missing-target")
    with pytest.raises(InputError):
        read_guardduty([str(tmp_path / "dangling")], on_reject=lambda r: None, stats=ReadStats())
    with pytest.raises(InputError, match="bucket"):
        read_guardduty(["s3:///key"], on_reject=lambda r: None, stats=ReadStats())


def test_unopenable_file_argument_raises_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b"")
    real_open = open

    def failing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    records = read_guardduty([str(path)], on_reject=lambda r: None, stats=ReadStats())
    with pytest.raises(InputError, match="Permission denied") as info:
        list(records)
    assert info.value.file == str(path)


def test_unreadable_entries_inside_a_folder_are_rejects(
    read: Read, tmp_path: Path, real_lines: list[bytes]
) -> None:
    (tmp_path / "a.jsonl").write_bytes(real_lines[0])
    (tmp_path / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    os.mkfifo(tmp_path / "c.fifo")
    (tmp_path / "d.jsonl").write_bytes(real_lines[1])
    res = read([tmp_path])
    assert [r.line for r in res.records] == [1, 1] and res.stats.files == 2
    assert [(Path(r.file).name, r.line, r.reason.split(":")[0]) for r in res.rejects] == [
        ("b.jsonl", None, "unreadable file"),
        ("c.fifo", None, "not a regular file"),
    ]


def test_paths_are_read_in_the_order_given(read: Read, gd_dir: Path) -> None:
    a, b = gd_dir / "elastic-test-guardduty.jsonl", gd_dir / "elastic-test-guard_duty-crypto.jsonl"
    assert [r.file for r in read([b, a]).records] == [str(b)] * 2 + [str(a)] * 5


# --------------------------------------------------------------------------------------------- prefilter


def test_prefilter_sees_raw_bytes_before_parsing(read: Read, tmp_path: Path, gd_dir: Path) -> None:
    seen: list[bytes] = []

    def prefilter(raw: bytes) -> bool:
        seen.append(raw)
        return b"CryptoCurrency" in raw

    path = tmp_path / "f.jsonl"
    junk = b"{ not json and no literal }"  # shaped like an object, so the cheap checks let it pass
    path.write_bytes(
        b"\n".join([junk, *(gd_dir / "elastic-test-guard_duty-crypto.jsonl").read_bytes().splitlines()])
    )
    res = read([path, gd_dir / "elastic-test-guardduty.jsonl"], prefilter=prefilter)
    assert [r.flat["type"] for r in res.records] == ["CryptoCurrency:EC2/BitcoinTool.B!DNS"]
    assert res.rejects == []  # the malformed line was skipped unparsed
    assert res.stats.prefiltered == 8 and res.stats.records_read == 9
    assert seen[0] == junk and all(type(x) is bytes for x in seen)


def test_prefilter_does_not_apply_to_whole_documents(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps(real_findings, indent=2))
    res = read([path], prefilter=lambda raw: False)
    assert len(res.records) == 11 and res.stats.prefiltered == 0


# --------------------------------------------------------------------------------------------- laziness


def test_records_are_produced_lazily(tmp_path: Path, real_lines: list[bytes]) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\n".join(real_lines))
    stats = ReadStats()
    it = read_guardduty([str(path)], on_reject=lambda r: None, stats=stats)
    assert stats.files == 0  # nothing opened before the first record is asked for
    first = next(it)
    assert first.line == 1 and stats.accepted == 1
    it.close()  # the file is closed with the generator


# --------------------------------------------------------------------------------------------- fuzzing

FRAGMENTS = st.sampled_from(
    [b"{", b"}", b"[", b"]", b"\n", b"\r\n", b" ", b",", b'"id"', b'"Id"', b':"x"', b"\xff", b"\xef\xbb\xbf",
     b'"findings":', b'"Findings":', b'"detail-type":"GuardDuty Finding"', b'"detail":', b"null", b"8",
     b'"updatedAt":"2024-01-01T00:00:00Z"', b'"type":"t"', b'"accountId":"1"', b"\x1f\x8b"]
)  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=st.lists(st.one_of(FRAGMENTS, st.binary(max_size=8)), max_size=60),
    real=st.lists(st.integers(0, 10), max_size=3),
    gz=st.booleans(),
)
def test_arbitrary_bytes_never_crash_the_reader(
    tmp_path: Path, real_lines: list[bytes], parts: list[bytes], real: list[int], gz: bool
) -> None:
    data = b"".join(parts)
    for i in real:
        data += b"\n" + real_lines[i] + b"\n"
    path = tmp_path / "fuzz.bin"
    path.write_bytes(gzip.compress(data) if gz else data)
    rejects: list[Any] = []
    stats = ReadStats()
    records = list(read_guardduty([str(path)], on_reject=rejects.append, stats=stats, max_record_bytes=4096))
    lines = data.count(b"\n") + 1
    # Bytes that open with Parquet's magic (at the first byte, not after blank lines) are read as a Parquet file
    # (Security Lake): its reject is the file's, with no line to name.
    whole_file = [r for r in rejects if r.line is None]
    assert all(data.startswith(b"PAR1") and r.reason.startswith("invalid Parquet") for r in whole_file), whole_file
    assert all(1 <= r.line <= lines for r in rejects if r.line is not None)
    assert all(1 <= r.line <= lines and r.flat["eventdate"].tzinfo is not None for r in records)
    assert stats.rejected == len(rejects) and stats.accepted == len(records)


def test_deep_nesting_after_a_pretty_printed_value(
    read: Read, tmp_path: Path, real_findings: list[dict[str, Any]]
) -> None:
    text = json.dumps(real_findings[0], indent=2)
    path = tmp_path / "jq.json"
    path.write_text(text + "\n" + "[" * 20_000 + "]" * 20_000 + "\n")
    res = read([path])
    assert res.ids == [real_findings[0]["id"]]
    assert [(r.line, r.reason) for r in res.rejects] == [
        (text.count("\n") + 2, "invalid JSON: nesting too deep")
    ]


def test_parquet_magic_after_a_blank_line_is_text(read: Read, tmp_path: Path) -> None:
    path = tmp_path / "not-parquet.jsonl"
    path.write_bytes(b"\nPAR1 is not a finding\n")
    res = read([path])
    assert res.ids == [] and [r.line for r in res.rejects] == [2]
    assert "Parquet" not in res.rejects[0].reason
