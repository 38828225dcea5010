"""Route 53 Resolver query log reader: the real samples, flat columns, shapes and rejects."""

from __future__ import annotations

import gzip
import io as pyio
import json
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.sources.route53 import normalise_query_name, read_route53


@dataclass
class Result:
    records: list[Record]
    rejects: list[Reject]
    stats: ReadStats


def read(paths: Sequence[str | Path], **kwargs: Any) -> Result:
    rejects: list[Reject] = []
    stats = ReadStats()
    records = list(read_route53([str(p) for p in paths], on_reject=rejects.append, stats=stats, **kwargs))
    assert stats.accepted == len(records) and stats.rejected == len(rejects)
    assert stats.records_read == stats.accepted + stats.rejected + stats.prefiltered
    return Result(records, rejects, stats)


@pytest.fixture(scope="module")
def r53(samples: Path) -> Path:
    return samples / "route53"


def _query(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "version": "1.100000",
        "account_id": "111122223333",
        "region": "eu-west-1",
        "vpc_id": "vpc-1",
        "query_timestamp": "2024-05-01T10:00:00Z",
        "query_name": "pool.MinerGate.com.",
        "query_type": "A",
        "query_class": "IN",
        "rcode": "NOERROR",
        "answers": [{"Rdata": "203.0.113.5", "Type": "A", "Class": "IN"}],
        "srcaddr": "10.0.0.5",
        "srcport": "40000",
        "transport": "UDP",
        "srcids": {"instance": "i-0abc"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_elastic_sample(r53: Path) -> None:
    path = r53 / "elastic-test-route53.jsonl"
    res = read([path])
    assert res.stats.accepted == 34 and res.rejects == []
    assert [r.line for r in res.records] == list(range(1, 35))
    assert [r.doc for r in res.records] == [json.loads(line) for line in path.read_text().splitlines()]
    first = res.records[0].flat
    assert first == {
        "eventdate": datetime(2021, 12, 11, 22, 46, 23, tzinfo=UTC),
        "accountid": "626345947581",
        "region": "us-east-1",
        "vpc_id": "vpc-01e31a7c",
        "query_name": "does-not-exist.abc.com",
        "query_name_raw": "does-not-exist.abc.com.",
        "query_type": "A",
        "query_class": "IN",
        "rcode": "NXDOMAIN",
        "srcaddr": "172.31.86.159",
        "srcport": 48701,  # a string in the log
        "transport": "UDP",
        "instance_id": None,  # srcids is {}
        "resolver_endpoint_id": None,
        "firewall_rule_action": None,
    }
    blocked = res.records[32].flat
    assert blocked["instance_id"] == "i-0d15cd0d3example"
    assert blocked["firewall_rule_action"] == "BLOCK"
    assert blocked["eventdate"] == datetime(2021, 2, 4, 17, 51, 55, tzinfo=UTC)
    # A name logged without its trailing dot stays as it is.
    last = res.records[33].flat
    assert (
        last["query_name"]
        == last["query_name_raw"]
        == ("6.c.f.6.a.9.0.e.2.b.9.a.2.f.1.9.2.0.0.4.d.d.a.0.0.4.f.c.2.0.a.2.ip6.arpa")
    )


def test_awsdocs_pretty_printed_object(r53: Path) -> None:
    (path,) = r53.glob("awsdocs*")
    res = read([path])
    (rec,) = res.records
    assert rec.line == 2  # the object starts after a line of spaces
    assert rec.flat["query_name"] == "15.3.4.32.in-addr.arpa"
    assert rec.flat["instance_id"] == "i-0d15cd0d3example"
    assert rec.flat["srcport"] == 56067
    assert rec.doc["answers"] == [{"Rdata": "203.0.113.9", "Type": "PTR", "Class": "IN"}]


def test_panther_fixture(r53: Path) -> None:
    (path,) = r53.glob("panther*")
    res = read([path])
    # Eight Route 53 tests are read (answers is an object there and stays so in the document); the two
    # OCSF-normalised tests are not Route 53 Resolver records.
    assert [r.flat["query_name"] for r in res.records] == [
        "dynamodb.us-west-2.amazonaws.com",
        "dynamodb.us-west-2.amazonaws.com",
        "moneropool.ru",
        "abc.abc.moneropool.ru",
        "moneropool.ru",
        "abc.abc.moneropool.ru",
        "webservicepag.webhop.net",
        "webservicepag.webhop.net",
    ]
    crypto = res.records[2]
    assert crypto.flat["eventdate"] == datetime(2022, 6, 25, 0, 27, 53, tzinfo=UTC)  # zone-less: Panther's UTC
    assert crypto.flat["instance_id"] == "i-0abc234"
    assert crypto.doc["answers"] == {"Class": "IN", "Rdata": "1.2.3.4", "Type": "A"}
    assert [r.reason for r in res.rejects] == [
        "not a Route 53 Resolver query log: an OCSF record (class_uid 4003) "
        "(test 8, Panther test 'Non Crypto Query Trailing Period - OCSF')",
        "not a Route 53 Resolver query log: an OCSF record (class_uid 4003) "
        "(test 9, Panther test 'Crypto Query - OCSF')",
    ]


def test_query_name_normalisation() -> None:
    assert normalise_query_name("Pool.MinerGate.COM.") == "pool.minergate.com"
    assert normalise_query_name("pool.minergate.com") == "pool.minergate.com"
    assert normalise_query_name(".") == ""


def test_rejects_with_line_and_reason(tmp_path: Path) -> None:
    lines = [
        orjson.dumps(_query(srcids={"resolver_endpoint": "rslvr-in-1"}, srcport=None)),
        orjson.dumps(_query(srcport="http")),
        orjson.dumps(_query(srcport="99999")),
        orjson.dumps(_query(query_timestamp=None)),
        orjson.dumps(_query(query_timestamp="2024-05-01T10:00:00")),
        orjson.dumps(_query(query_name=None)),
        orjson.dumps(_query(query_name=7)),
        orjson.dumps(_query(srcids="i-0abc")),
        orjson.dumps(_query(rcode=3)),
        b"[1]",
        b"\xc3\x28",
        orjson.dumps(_query(srcport=53)),
    ]
    path = tmp_path / "q.log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = read([path])
    assert [(r.line, r.flat["resolver_endpoint_id"], r.flat["srcport"]) for r in res.records] == [
        (1, "rslvr-in-1", None),
        (12, None, 53),
    ]
    assert [(r.line, r.reason) for r in res.rejects] == [
        (2, "bad field 'srcport': not a port number: 'http'"),
        (3, "bad field 'srcport': not a port number: '99999'"),
        (4, "missing field 'query_timestamp': not a Route 53 Resolver query log"),
        (5, "bad field 'query_timestamp': timestamp without a time zone: '2024-05-01T10:00:00'"),
        (6, "missing field 'query_name': not a Route 53 Resolver query log"),
        (7, "bad field 'query_name': expected a string, got number 7"),
        (8, "bad field 'srcids': expected an object, got string 'i-0abc'"),
        (9, "bad field 'rcode': expected a string, got number 3"),
        (10, "not a Route 53 Resolver query log: expected an object, got number (element 0)"),
        (11, "invalid UTF-8: byte 0xc3 at offset 0"),
    ]


def test_json_array_and_concatenated_objects(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([_query(query_name="a."), _query(query_name="b.")], indent=2))
    assert [r.flat["query_name"] for r in read([path]).records] == ["a", "b"]
    path.write_text(json.dumps(_query(query_name="a."), indent=2) + "\n" + json.dumps(_query(query_name="b.")))
    res = read([path])
    assert [(r.line, r.flat["query_name"]) for r in res.records] == [
        (1, "a"),
        (len(json.dumps(_query(), indent=2).splitlines()) + 1, "b"),
    ]


def test_folder_layout_gzip_and_stdin(tmp_path: Path, r53: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (r53 / "elastic-test-route53.jsonl").read_bytes()
    base = tmp_path / "AWSLogs" / "626345947581" / "vpcdnsquerylogs" / "vpc-01e31a7c" / "2021" / "12" / "11"
    base.mkdir(parents=True)
    (base / "vpc-01e31a7c_vpcdnsquerylogs_626345947581_20211211T2245Z_1.log.gz").write_bytes(gzip.compress(data))
    (base / "vpc-01e31a7c_vpcdnsquerylogs_626345947581_20211211T2250Z_2.log").write_bytes(data[: data.index(b"\n") + 1])
    res = read([tmp_path])
    assert res.stats.accepted == 35 and res.stats.files == 2
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=pyio.BytesIO(gzip.compress(data))))
    res = read(["-"])
    assert res.stats.accepted == 34 and {r.file for r in res.records} == {"<stdin>"}


def test_prefilter(r53: Path) -> None:
    res = read([r53 / "elastic-test-route53.jsonl"], prefilter=lambda raw: b"pool.ntp.org" in raw)
    assert res.stats.accepted == 6 and res.stats.prefiltered == 28
