"""s3://bucket/prefix against moto's server on 127.0.0.1 (no network beyond the loopback)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer

from minerwatch.errors import InputError
from minerwatch.sources.botocore_shapes import to_pascal
from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.inputs import windowed_paths
from minerwatch.sources.records import ReadStats
from minerwatch.timewindow import TimeWindow

from .conftest import Result

Read = Callable[..., Result]
PREFIX = "AWSLogs/123456789012/GuardDuty/us-east-1/2024/01"


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
def aws_env(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


@pytest.fixture
def s3(aws_env: str) -> Any:
    client = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    yield client
    for bucket in client.list_buckets()["Buckets"]:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for obj in page.get("Contents", ()):
                client.delete_object(Bucket=bucket["Name"], Key=obj["Key"])
        client.delete_bucket(Bucket=bucket["Name"])


def test_s3_export_layout(
    s3: Any, read: Read, real_lines: list[bytes], real_findings: list[dict[str, Any]]
) -> None:
    s3.create_bucket(Bucket="findings")
    s3.put_object(Bucket="findings", Key=f"{PREFIX}/01/", Body=b"")  # console folder placeholder
    s3.put_object(
        Bucket="findings",
        Key=f"{PREFIX}/01/a1.jsonl.gz",
        Body=gzip.compress(b"\n".join(real_lines[:6]) + b"\n"),
    )
    s3.put_object(Bucket="findings", Key=f"{PREFIX}/02/b2.jsonl", Body=b"\n".join(real_lines[6:9]))
    cli = json.dumps({"Findings": [to_pascal(f) for f in real_findings[9:]]}, indent=4).encode()
    s3.put_object(
        Bucket="findings", Key=f"{PREFIX}/03/get-findings.json", Body=gzip.compress(cli)
    )  # gz by magic
    s3.put_object(Bucket="findings", Key="elsewhere/x.jsonl", Body=b"not read")

    res = read(["s3://findings/AWSLogs/"])  # default client, from AWS_ENDPOINT_URL
    assert [r.doc for r in res.records] == real_findings and res.rejects == []
    assert res.records[0].file == f"s3://findings/{PREFIX}/01/a1.jsonl.gz"
    assert [r.line for r in res.records if r.file.endswith("b2.jsonl")] == [1, 2, 3]
    assert res.stats.files == 3

    explicit = read(["s3://findings"], s3_client=s3)
    assert len(explicit.records) == 11 and [r.file for r in explicit.rejects] == [
        "s3://findings/elsewhere/x.jsonl"
    ]


def test_s3_export_days_outside_the_window_are_not_read(s3: Any, read: Read, real_lines: list[bytes]) -> None:
    s3.create_bucket(Bucket="days")
    for day in range(1, 6):
        s3.put_object(Bucket="days", Key=f"{PREFIX}/{day:02d}/x.jsonl", Body=real_lines[day])
    window = TimeWindow(datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 3, 0, 10, tzinfo=UTC))
    stats = ReadStats()
    got = read_guardduty(windowed_paths(["s3://days/AWSLogs/"], window), on_reject=print, stats=stats, s3_client=s3)
    # Day 1 is before the window; day 4 is read for findings of day 3 exported late; day 5 is not.
    assert [r.file[-10:] for r in got] == ["02/x.jsonl", "03/x.jsonl", "04/x.jsonl"]
    assert stats.files == 3
    assert read(["s3://days/AWSLogs/"], s3_client=s3).stats.files == 5


def test_s3_truncated_object_and_hostile_lines(s3: Any, read: Read, real_lines: list[bytes]) -> None:
    s3.create_bucket(Bucket="broken")
    packed = gzip.compress(b"\n".join(real_lines * 40) + b"\n")
    s3.put_object(Bucket="broken", Key="a/1.jsonl.gz", Body=packed[: len(packed) // 2])
    s3.put_object(Bucket="broken", Key="a/2.jsonl", Body=real_lines[0] + b"\n\xff\xfe\n" + real_lines[1])
    res = read(["s3://broken/a/"], s3_client=s3)
    first = [r for r in res.records if r.file == "s3://broken/a/1.jsonl.gz"]
    assert 0 < len(first) < 440
    assert [(r.file, r.line, r.reason.split(":")[0]) for r in res.rejects] == [
        ("s3://broken/a/1.jsonl.gz", len(first) + 1, "truncated gzip"),
        ("s3://broken/a/2.jsonl", 2, "invalid UTF-8"),
    ]
    assert [r.line for r in res.records if r.file.endswith("2.jsonl")] == [1, 3]


class _SmallPages:
    """The S3 client with listings of two keys a page, so that a few objects span several pages."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_paginator(self, operation: str) -> Any:
        real = self._client.get_paginator(operation)
        outer = self

        class Paginator:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                for page in real.paginate(**kwargs, PaginationConfig={"PageSize": 2}):
                    outer.pages += 1
                    yield page

        return Paginator()


def test_s3_listing_follows_every_page(s3: Any, read: Read, real_lines: list[bytes]) -> None:
    s3.create_bucket(Bucket="many")
    line = orjson.loads(real_lines[0])
    for i in range(7):
        line["id"] = f"finding-{i:04}"
        s3.put_object(Bucket="many", Key=f"p/{i:04}.jsonl", Body=orjson.dumps(line))
    client = _SmallPages(s3)
    res = read(["s3://many/p/"], s3_client=client)
    assert res.ids == [f"finding-{i:04}" for i in range(7)] and res.stats.files == 7
    assert client.pages == 4


def test_s3_errors(s3: Any) -> None:
    from minerwatch.sources.guardduty import read_guardduty
    from minerwatch.sources.records import ReadStats

    with pytest.raises(InputError, match="s3://no-such-bucket/x") as info:
        list(
            read_guardduty(
                ["s3://no-such-bucket/x"], on_reject=lambda r: None, stats=ReadStats(), s3_client=s3
            )
        )
    assert info.value.file == "s3://no-such-bucket/x"
    s3.create_bucket(Bucket="empty")
    stats = ReadStats()
    assert list(read_guardduty(["s3://empty/"], on_reject=lambda r: None, stats=stats, s3_client=s3)) == []
    assert stats.files == 0
