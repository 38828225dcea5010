"""The table → reader registry, and every new reader over s3://bucket/prefix against moto's local server."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer

from minerwatch.catalog.tables import TABLES
from minerwatch.errors import InputError
from minerwatch.sources.cloudtrail import read_cloudtrail
from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.sources.registry import READERS, get_reader, read_table
from minerwatch.sources.route53 import read_route53
from minerwatch.sources.vpcflow import read_vpcflow


def collect(table: str, paths: list[str], **kwargs: Any) -> tuple[list[Record], list[Reject], ReadStats]:
    rejects: list[Reject] = []
    stats = ReadStats()
    records = list(read_table(table, paths, on_reject=rejects.append, stats=stats, **kwargs))
    return records, rejects, stats


def test_every_catalogue_table_has_its_reader() -> None:
    assert READERS.keys() == TABLES.keys()
    assert READERS["cloud.aws.guardduty"] is read_guardduty
    assert READERS["cloud.aws.cloudtrail"] is read_cloudtrail
    assert READERS["cloud.aws.vpcflow"] is read_vpcflow
    assert READERS["cloud.aws.route53resolver"] is read_route53
    assert get_reader("Cloud.AWS.VPCFlow") is read_vpcflow


def test_read_table_dispatches(samples: Path) -> None:
    cases = {
        "cloud.aws.guardduty": ("guardduty/elastic-test-guard_duty-crypto.jsonl", 2),
        "cloud.aws.cloudtrail": ("cloudtrail/elastic-test-console-login.jsonl", 3),
        "cloud.aws.vpcflow": ("vpcflow", 26),
        "cloud.aws.route53resolver": ("route53/elastic-test-route53.jsonl", 34),
    }
    for table, (path, count) in cases.items():
        records, rejects, stats = collect(table, [str(samples / path)])
        assert len(records) == count and rejects == [] and stats.accepted == count
        assert {r.table for r in records} == {table}


def test_prefilter_is_passed_on(samples: Path) -> None:
    records, _, stats = collect(
        "cloud.aws.route53resolver",
        [str(samples / "route53/elastic-test-route53.jsonl")],
        prefilter=lambda raw: b"i-079c44232510ca8ff" in raw,
    )
    assert len(records) == 4 and stats.prefiltered == 30


def test_unknown_table_names_the_known_ones() -> None:
    with pytest.raises(InputError) as info:
        collect("cloud.aws.vpcflows", ["x"])
    assert str(info.value) == (
        "<input>: unknown table 'cloud.aws.vpcflows' (known tables: cloud.aws.cloudtrail, cloud.aws.guardduty, "
        "cloud.aws.route53resolver, cloud.aws.vpcflow)"
    )


def test_missing_path_fails_before_reading(tmp_path: Path) -> None:
    for table in READERS:
        with pytest.raises(InputError, match="cannot open"):
            collect(table, [str(tmp_path / "missing")])


# --------------------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="logs")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="logs"):
        for obj in page.get("Contents", ()):
            client.delete_object(Bucket="logs", Key=obj["Key"])
    client.delete_bucket(Bucket="logs")


def test_s3_delivery_layouts(s3: Any, samples: Path) -> None:
    trail = "AWSLogs/111122223333/CloudTrail/us-east-2/2014/07/16"
    records = [
        orjson.loads(line)
        for line in (samples / "cloudtrail/elastic-test-console-login.jsonl").read_bytes().splitlines()
    ]
    s3.put_object(
        Bucket="logs",
        Key=f"{trail}/111122223333_CloudTrail_us-east-2_20140716T1550Z_a.json.gz",
        Body=gzip.compress(orjson.dumps({"Records": records})),
    )
    flow = "AWSLogs/123456789010/vpcflowlogs/us-east-1/2014/12/14"
    multi = next((samples / "vpcflow").glob("*valid_vpc_flow_log_multi*")).read_bytes()
    s3.put_object(
        Bucket="logs",
        Key=f"{flow}/123456789010_vpcflowlogs_us-east-1_fl-1_20141214T0405Z_a.log.gz",
        Body=gzip.compress(multi),
    )
    dns = "AWSLogs/626345947581/vpcdnsquerylogs/vpc-01e31a7c/2021/12/11"
    s3.put_object(
        Bucket="logs",
        Key=f"{dns}/q.log.gz",
        Body=gzip.compress((samples / "route53/elastic-test-route53.jsonl").read_bytes()),
    )

    got, rejects, stats = collect("cloud.aws.cloudtrail", [f"s3://logs/{trail}/"])
    assert [r.doc for r in got] == records and rejects == [] and stats.files == 1
    assert got[0].file == f"s3://logs/{trail}/111122223333_CloudTrail_us-east-2_20140716T1550Z_a.json.gz"

    got, rejects, _ = collect("cloud.aws.vpcflow", [f"s3://logs/{flow}"])
    assert [(r.line, r.flat["dstport"]) for r in got] == [(2, 22), (3, 3389)] and rejects == []

    got, rejects, _ = collect("cloud.aws.route53resolver", ["s3://logs/AWSLogs/626345947581/"])
    assert len(got) == 34 and rejects == []

    # A prefix holding another table's logs: the object is read and rejected with a reason, not skipped.
    got, rejects, stats = collect("cloud.aws.route53resolver", [f"s3://logs/{trail}"])
    assert got == [] and stats.rejected == 1
    assert rejects[0].reason == "missing field 'query_timestamp': not a Route 53 Resolver query log"


def test_s3_parquet_object_and_explicit_client(s3: Any, tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "f.parquet"
    duckdb.connect().execute(
        "COPY (SELECT 2 AS version, 'eni-1' AS interface_id, 3333 AS dstport, 'OK' AS log_status) "
        "TO ? (FORMAT parquet)",
        [str(path)],
    )
    s3.put_object(Bucket="logs", Key="parquet/f.log.parquet", Body=path.read_bytes())
    got, rejects, _ = collect("cloud.aws.vpcflow", ["s3://logs/parquet/"], s3_client=s3)
    assert [(r.file, r.flat["dstport"], r.flat["nodata"]) for r in got] == [
        ("s3://logs/parquet/f.log.parquet", 3333, False)
    ]
    assert rejects == []
