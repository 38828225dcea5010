"""VPC flow log reader: the real samples, header-driven orders, nulls, NODATA, Parquet, rejects."""

from __future__ import annotations

import gzip
import io as pyio
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from minerwatch.catalog.tables import VPCFLOW
from minerwatch.sources import inputs as mw_io
from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.sources.vpcflow import HEADERLESS, TGW_FIELDS, V2_FIELDS, parse_header, read_vpcflow

V2_HEADER = " ".join(V2_FIELDS)


@dataclass
class Result:
    records: list[Record]
    rejects: list[Reject]
    stats: ReadStats


def read(paths: Sequence[str | Path], **kwargs: Any) -> Result:
    rejects: list[Reject] = []
    stats = ReadStats()
    records = list(read_vpcflow([str(p) for p in paths], on_reject=rejects.append, stats=stats, **kwargs))
    assert stats.accepted == len(records) and stats.rejected == len(rejects)
    assert stats.records_read == stats.accepted + stats.rejected + stats.prefiltered
    for rec in records:
        assert set(rec.flat) <= set(VPCFLOW.columns)
    return Result(records, rejects, stats)


def sample(samples: Path, part: str) -> Path:
    (path,) = (samples / "vpcflow").glob(f"*{part}*")
    return path


# --------------------------------------------------------------------------------------------- real samples


@pytest.mark.parametrize(
    ("part", "lines", "nodata"),
    [
        # v2 without a header; one NODATA and one SKIPDATA row among them
        ("test-extra-samples", [1, 2, 3, 4, 5, 6, 7], [2, 3]),
        # three files concatenated, each with its header (v3 custom order): headers are not records
        ("test-tcp-flag-sequence", [2, 4, 6], [4, 6]),
        # transit gateway default format (36 fields), no header
        ("test-tgw-samples", list(range(1, 11)), [1, 2, 4, 5, 6, 8, 10]),
        # all v5 fields on one line without a final newline
        ("test-v5-all-fields", [1], []),
        # all v8 fields (40)
        ("test-v8-samples", [1], [1]),
        # a CloudWatch Logs export line: {"message": "<record>"}
        ("test-with-message-field", [1], [1]),
        ("valid_vpc_flow_log.log", [2], [2]),
        ("valid_vpc_flow_log_multi", [2, 3], []),
    ],
)
def test_every_sample_line_is_accepted(samples: Path, part: str, lines: list[int], nodata: list[int]) -> None:
    res = read([sample(samples, part)])
    assert res.rejects == []
    assert [r.line for r in res.records] == lines
    assert [r.line for r in res.records if r.flat["nodata"]] == nodata


def test_samples_cover_every_line(samples: Path) -> None:
    """Every non-blank line of every sample is a header or a record: nothing is left over."""
    total_lines = 0
    headers = 0
    for path in sorted((samples / "vpcflow").iterdir()):
        for line in path.read_bytes().splitlines():
            if line.strip():
                total_lines += 1
                headers += parse_header(line) is not None
    res = read([samples / "vpcflow"])
    assert res.stats.accepted == total_lines - headers == 26 and headers == 5
    assert res.stats.files == 8


def test_v2_flat_columns(samples: Path) -> None:
    res = read([sample(samples, "test-extra-samples")])
    assert res.records[0].flat == {
        "version": 2,
        "account_id": "123456789010",
        "interface_id": "eni-1235b8ca123456789",
        "srcaddr": "2001:db8:1234:a100:8d6e:3477:df66:f105",
        "dstaddr": "2001:db8:1234:a102:3304:8879:34cf:4071",
        "srcport": 34892,
        "dstport": 22,
        "protocol": 6,
        "packets": 54,
        "bytes": 8855,
        "start": 1477913708,
        "end": 1477913820,
        "action": "ACCEPT",
        "log_status": "OK",
        "eventdate": datetime(2016, 10, 31, 11, 35, 8, tzinfo=UTC),
        "accountid": "123456789010",
        "nodata": False,
    }
    nodata = res.records[1]
    assert nodata.flat["log_status"] == "NODATA" and nodata.flat["nodata"] is True
    assert nodata.flat["srcaddr"] is None and nodata.flat["packets"] is None and nodata.flat["action"] is None
    assert nodata.doc["log-status"] == "NODATA" and nodata.doc["srcaddr"] is None
    assert list(nodata.doc) == V2_FIELDS
    assert res.records[2].flat["log_status"] == "SKIPDATA" and res.records[2].flat["nodata"] is True


def test_header_driven_custom_order(samples: Path) -> None:
    first = read([sample(samples, "test-tcp-flag-sequence")]).records[0]
    assert first.flat["vpc_id"] == "vpc-abcdefab012345678"
    assert first.flat["account_id"] == first.flat["accountid"] == "123456789010"
    assert (first.flat["bytes"], first.flat["packets"]) == (568, 8)  # bytes before packets in this header
    assert first.flat["tcp_flags"] == 2
    assert first.flat["type"] == "IPv4"
    assert first.flat["pkt_srcaddr"] == "52.213.180.42"
    assert list(first.doc)[:3] == ["version", "vpc-id", "subnet-id"]


def test_transit_gateway_and_v8_fields(samples: Path) -> None:
    tgw = read([sample(samples, "test-tgw-samples")]).records[2]
    assert list(tgw.doc) == TGW_FIELDS
    assert tgw.flat["tgw_id"] == "tgw-0a12bc34de56f7890"
    assert tgw.flat["tgw_attachment_id"] == "tgw-attach-0123abcd"
    assert tgw.flat["log_status"] == "OK" and tgw.flat["flow_direction"] == "ingress"
    assert (tgw.flat["srcaddr"], tgw.flat["dstport"], tgw.flat["protocol"]) == ("216.160.83.56", 8080, 17)
    assert "action" not in tgw.flat  # not a transit gateway field
    (v8,) = read([sample(samples, "test-v8-samples")]).records
    assert v8.flat["reject_reason"] == "BPA"
    assert v8.flat["ecs_service_name"] == "payments-service"
    assert v8.flat["ecs_task_id"] == "e504f037-35c"
    assert v8.flat["interface_id"] is None and v8.flat["account_id"] == "000000000000"
    (v5,) = read([sample(samples, "test-v5-all-fields")]).records
    assert (v5.flat["pkt_src_aws_service"], v5.flat["pkt_dst_aws_service"]) == ("AMAZON", "CLOUDFRONT")
    assert v5.flat["traffic_path"] == 1 and v5.flat["az_id"] == "use1-az5"
    assert v5.flat["sublocation_type"] is None


def test_headerless_counts_are_the_documented_orders() -> None:
    assert sorted(HEADERLESS) == [14, 21, 25, 29, 36, 39, 40]
    assert HEADERLESS[14][1] == tuple(V2_FIELDS)
    assert HEADERLESS[40][1][-1] == "reject-reason"


# --------------------------------------------------------------------------------------------- rejects


def test_hostile_lines(tmp_path: Path) -> None:
    good = b"2 111122223333 eni-1 10.0.0.1 198.51.100.9 40000 3333 6 10 840 1700000000 1700000060 ACCEPT OK"
    lines = [
        V2_HEADER.encode(),
        good,
        b"2 111122223333 eni-1 10.0.0.1 198.51.100.9 40000 3333 6 10 840 1700000000 ACCEPT OK",
        b"2 111122223333 eni-1 10.0.0.1 198.51.100.9 http 3333 6 10 840 1700000000 1700000060 ACCEPT OK",
        b"2 111122223333 eni-1 10.0.0.1 198.51.100.9 40000 -3 6 10 840 1700000000 1700000060 ACCEPT OK",
        b"2 111122223333 eni-\xff 10.0.0.1 198.51.100.9 40000 3333 6 10 840 1700000000 1700000060 ACCEPT OK",
        b"2 111122223333 eni-1 10.0.0.1 198.51.100.9 40000 3333 6 10 840 99999999999999999 1 ACCEPT OK",
        b"2 111122223333 eni-1 10.0.0.1 198.51.100.9 40000 3333 6 10 840 1234567890123456789 1 ACCEPT OK",
        b'{"message": 5}',
        b'{"message": "2 1 eni',
        b"version srcaddr srcaddr",
        b"",
        good,
    ]
    path = tmp_path / "hostile.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = read([path])
    assert [r.line for r in res.records] == [2, 13]
    assert [(r.line, r.reason) for r in res.rejects] == [
        (3, "wrong field count: 13 fields, but the header at line 1 names 14"),
        (4, "bad field 'srcport': not an integer: 'http'"),
        (5, "bad field 'dstport': not an integer: '-3'"),
        (6, "invalid UTF-8: byte 0xff at offset 19"),
        (7, "bad field 'start': not a time: 99999999999999999"),
        (8, "bad field 'start': out of range: '1234567890123456789'"),
        (9, "not a flow log record: a JSON line without a 'message' string"),
        (10, "invalid JSON: unexpected end of data at column 21"),
        (11, "bad header: field 'srcaddr' named twice (the previous field order stays)"),
    ]
    assert res.rejects[0].excerpt == lines[2].decode()


def test_unknown_count_without_header(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("2 111122223333 eni-1 - - - - - - - 1700000000 1700000060 -\n")
    (rej,) = read([path]).rejects
    assert rej.reason == (
        "wrong field count: 13 fields, and without a header line only 14, 21, 25, 29, 36, 39, 40 fields are "
        "recognised (the default format and AWS's all-fields orders)"
    )


def test_unknown_header_fields_stay_in_the_document(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("srcaddr dstport future-field\n10.0.0.1 3333 abc\n10.0.0.2 - -\n")
    res = read([path])
    assert [r.flat for r in res.records] == [
        {"srcaddr": "10.0.0.1", "dstport": 3333, "eventdate": None, "accountid": None, "nodata": False},
        {"srcaddr": "10.0.0.2", "dstport": None, "eventdate": None, "accountid": None, "nodata": False},
    ]
    assert res.records[0].doc == {"srcaddr": "10.0.0.1", "dstport": 3333, "future-field": "abc"}


def test_eventdate_falls_back_to_end(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("end srcaddr\n1700000060 10.0.0.1\n")
    (rec,) = read([path]).records
    assert rec.flat["eventdate"] == datetime.fromtimestamp(1700000060, UTC)


def test_truncated_gzip_and_long_line(tmp_path: Path, samples: Path) -> None:
    data = sample(samples, "test-tgw-samples").read_bytes() * 50
    packed = gzip.compress(data)
    path = tmp_path / "cut.log.gz"
    path.write_bytes(packed[: len(packed) // 2])
    res = read([path])
    assert len(res.records) > 0
    (rej,) = res.rejects
    assert rej.reason.startswith("truncated gzip") and rej.line == len(res.records) + 1
    path = tmp_path / "long.log"
    path.write_bytes(b"x" * 400 + b"\n" + sample(samples, "test-v5-all-fields").read_bytes())
    res = read([path], max_line_bytes=300)
    assert [(r.line, r.reason) for r in res.rejects] == [(1, "line too long: 400 bytes (limit 300)")]
    assert [r.line for r in res.records] == [2]


# --------------------------------------------------------------------------------------------- inputs


def test_folder_layout_gzip_and_stdin(tmp_path: Path, samples: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = sample(samples, "valid_vpc_flow_log_multi").read_bytes()
    base = tmp_path / "AWSLogs" / "123456789010" / "vpcflowlogs" / "us-east-1" / "2014" / "12" / "14"
    base.mkdir(parents=True)
    (base / "123456789010_vpcflowlogs_us-east-1_fl-1_20141214T0405Z_a.log.gz").write_bytes(gzip.compress(data))
    (base / "123456789010_vpcflowlogs_us-east-1_fl-1_20141214T0410Z_b.log.gz").write_bytes(gzip.compress(data))
    res = read([tmp_path / "AWSLogs"])
    assert [r.line for r in res.records] == [2, 3, 2, 3] and res.stats.files == 2
    assert res.records[0].flat["dstport"] == 22 and res.records[1].flat["action"] == "REJECT"
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=pyio.BytesIO(gzip.compress(data))))
    res = read(["-"])
    assert [(r.file, r.line) for r in res.records] == [("<stdin>", 2), ("<stdin>", 3)]


def test_prefilter_never_sees_headers(samples: Path) -> None:
    seen: list[bytes] = []

    def prefilter(raw: bytes) -> bool:
        seen.append(raw)
        return b" 3389 " in raw

    res = read([sample(samples, "valid_vpc_flow_log_multi")], prefilter=prefilter)
    assert [r.flat["dstport"] for r in res.records] == [3389]
    assert res.stats.prefiltered == 1 and len(seen) == 2 and not any(s.startswith(b"version") for s in seen)


def test_prefiltered_garbage_is_still_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"2 1 eni-1 - - - - - - - 1 2 - NODATA\n1 2 3\n\xff\xfe\n")
    res = read([path], prefilter=lambda raw: False)
    assert res.stats.prefiltered == 1
    assert [(r.line, r.reason) for r in res.rejects] == [
        (
            2,
            "wrong field count: 3 fields, and without a header line only 14, 21, 25, 29, 36, 39, 40 fields are "
            "recognised (the default format and AWS's all-fields orders) (line skipped by the prefilter)",
        ),
        (3, "invalid UTF-8 (line skipped by the prefilter)"),
    ]


# --------------------------------------------------------------------------------------------- Parquet


def test_parquet_round_trip(tmp_path: Path, samples: Path) -> None:
    """Flow records written as Parquet by DuckDB (AWS's column names) read back as the same records."""
    src = sample(samples, "test-extra-samples")
    text_records = read([src]).records
    con = duckdb.connect()
    rows = [tuple(r.doc[f] for f in V2_FIELDS) for r in text_records]
    types_ = ["INTEGER" if f in {"version", "srcport", "dstport", "protocol"} else "BIGINT" for f in V2_FIELDS]
    columns = ", ".join(
        f'"{f.replace("-", "_")}" {t if f in {"version", "srcport", "dstport", "protocol", "packets", "bytes", "start", "end"} else "VARCHAR"}'  # noqa: E501
        for f, t in zip(V2_FIELDS, types_, strict=True)
    )
    con.execute(f"CREATE TABLE flows ({columns})")
    con.executemany(f"INSERT INTO flows VALUES ({', '.join('?' * len(V2_FIELDS))})", rows)
    out = tmp_path / "AWSLogs" / "123456789010" / "vpcflowlogs" / "us-east-1" / "flows.log.parquet"
    out.parent.mkdir(parents=True)
    con.execute("COPY flows TO ? (FORMAT parquet)", [str(out)])
    res = read([out])
    assert res.rejects == []
    assert [r.flat for r in res.records] == [r.flat for r in text_records]
    assert [r.doc for r in res.records] == [r.doc for r in text_records]
    assert [r.line for r in res.records] == list(range(1, 8))
    assert out.read_bytes()[:4] == b"PAR1"


def test_parquet_from_stdin_and_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    con = duckdb.connect()
    path = tmp_path / "p.parquet"
    con.execute(
        "COPY (SELECT * FROM (VALUES ('2', 'eni-1', '443', 'x'), ('2', 'eni-2', 'https', 'y')) "
        'AS t(version, "interface-id", dstport, extra)) TO ? (FORMAT parquet)',
        [str(path)],
    )
    res = read([path])
    assert [r.flat for r in res.records] == [
        {"version": 2, "interface_id": "eni-1", "dstport": 443, "eventdate": None, "accountid": None, "nodata": False}
    ]
    assert res.records[0].doc == {"version": 2, "interface-id": "eni-1", "dstport": 443, "extra": "x"}
    assert [(r.line, r.reason) for r in res.rejects] == [(2, "bad field 'dstport': not an integer: 'https' (row 2)")]
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=pyio.BytesIO(path.read_bytes())))
    res = read(["-"])
    assert [r.file for r in res.records] == ["<stdin>"] and len(res.rejects) == 1


def test_corrupt_parquet_is_a_reject(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    (rej,) = read([path]).rejects
    assert rej.reason.startswith("unreadable Parquet") and rej.line is None


def test_tiny_blocks_give_the_same_records(samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = sample(samples, "test-tgw-samples")
    gz = tmp_path / "tgw.log.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    parquet = tmp_path / "p.parquet"
    duckdb.connect().execute("COPY (SELECT 2 AS version, 22 AS dstport) TO ? (FORMAT parquet)", [str(parquet)])
    paths = [samples / "vpcflow", gz, parquet]
    expected = read(paths)
    monkeypatch.setattr(mw_io, "BLOCK_SIZE", 3)
    got = read(paths)
    assert [(r.file, r.line, r.doc) for r in got.records] == [(r.file, r.line, r.doc) for r in expected.records]
    assert len(got.records) == 26 + 10 + 1 and got.rejects == []
