"""CloudTrail reader: the real samples, every shape, flat columns, rejects with line and reason."""

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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minerwatch.errors import InputError
from minerwatch.sources import inputs as mw_io
from minerwatch.sources.cloudtrail import RecordError, cloudtrail_record, parse_timestamp, read_cloudtrail
from minerwatch.sources.records import ReadStats, Record, Reject


@dataclass
class Result:
    records: list[Record]
    rejects: list[Reject]
    stats: ReadStats


def read(paths: Sequence[str | Path], **kwargs: Any) -> Result:
    rejects: list[Reject] = []
    stats = ReadStats()
    records = list(read_cloudtrail([str(p) for p in paths], on_reject=rejects.append, stats=stats, **kwargs))
    assert stats.accepted == len(records) and stats.rejected == len(rejects)
    assert stats.records_read == stats.accepted + stats.rejected + stats.prefiltered
    return Result(records, rejects, stats)


@pytest.fixture(scope="module")
def ct(samples: Path) -> Path:
    return samples / "cloudtrail"


def _record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/a", "accountId": "111122223333"},
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": "ec2.amazonaws.com",
        "eventName": "RunInstances",
        "awsRegion": "eu-west-1",
        "sourceIPAddress": "198.51.100.7",
        "eventID": "e-1",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


# --------------------------------------------------------------------------------------------- real samples


def test_every_sample_file_is_accounted_for(ct: Path) -> None:
    """Each file's records are accepted or rejected with a reason; the counts are the ones observed."""
    expected = {
        # awsdocs log-file examples: {"Records": [...]}, one record each, pretty-printed
        "block02": (1, []),
        "block03": (1, []),
        "block04": (1, []),
        "block05": (1, []),
        "block06": (1, []),
        "block08": (1, []),
        # two CloudTrail Insights events: no eventName/eventSource of their own
        "block09": (0, ["cloudtrail insights event"] * 2),
        "elastic-test-console-login": (3, []),
        "elastic-test-run-instances": (1, []),  # plus a blank line
        "aws_ec2_download_instance_user_data": (3, []),
        # two of the three Panther tests were hand-edited to lower-case keys (eventtime, eventname ...)
        "aws_ec2_startup_script_change": (1, ["missing field 'eventTime'"] * 2),
        "aws_iam_user_key_created": (5, []),
    }
    seen = set()
    for path in sorted(ct.iterdir()):
        key = next(k for k in expected if k in path.name)
        seen.add(key)
        res = read([path])
        accepted, reasons = expected[key]
        assert res.stats.accepted == accepted, path.name
        assert [r.reason.split(":")[0] for r in res.rejects] == reasons, path.name
        assert all(r.file == str(path) and r.line is not None for r in res.rejects)
    assert seen == expected.keys()


def test_records_wrapper_and_insights_lines(ct: Path) -> None:
    res = read(sorted(ct.glob("*block09.json")))
    assert [(r.line, r.reason) for r in res.rejects] == [
        (
            3,
            "cloudtrail insights event: a CloudTrail Insights event has no eventName/eventSource of its own "
            "(see insightDetails) (Records[0])",
        ),
        (
            29,
            "cloudtrail insights event: a CloudTrail Insights event has no eventName/eventSource of its own "
            "(see insightDetails) (Records[1])",
        ),
    ]
    assert '"eventType": "AwsCloudTrailInsight"' in res.rejects[0].excerpt.replace('":"', '": "')


def test_console_login_flat_columns(ct: Path) -> None:
    path = ct / "elastic-test-console-login.jsonl"
    res = read([path])
    originals = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.doc for r in res.records] == originals  # every JSON path stays reachable
    assert [r.line for r in res.records] == [1, 2, 3]
    john, jane, role = (r.flat for r in res.records)
    assert john == {
        "eventdate": datetime(2014, 7, 16, 15, 49, 27, tzinfo=UTC),
        "eventname": "ConsoleLogin",
        "eventsource": "signin.amazonaws.com",
        "eventtype": None,
        "accountid": "111122223333",  # no recipientAccountId: userIdentity.accountId
        "region": "us-east-2",
        "sourceip": "89.160.20.156",
        "useragent": "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:24.0) Gecko/20100101 Firefox/24.0",
        "principal_arn": "arn:aws:iam::111122223333:user/JohnDoe",
        "principal_type": "IAMUser",
        "access_key_id": None,
        "errorcode": None,
        "eventid": "3fcfb182-98f8-4744-bd45-10aEXAMPLE",
        "readonly": None,
        "mfa": False,  # additionalEventData.MFAUsed == "No"
    }
    assert jane["principal_arn"] == "arn:aws:iam::111122223333:user/JaneDoe"
    # An assumed role keeps the session ARN, not the role's.
    assert role["principal_arn"] == "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed/MySessionName"
    assert role["principal_type"] == "AssumedRole"
    assert role["access_key_id"] == "AKIAIOSFODNN7EXAMPLE"
    assert role["accountid"] == "123456789012"
    assert role["mfa"] is False


def test_run_instances_flat_columns(ct: Path) -> None:
    (rec,) = read([ct / "elastic-test-run-instances.jsonl"]).records
    assert rec.flat["accountid"] == "1010101010101"  # recipientAccountId
    assert rec.flat["readonly"] is False
    assert rec.flat["eventtype"] == "AwsApiCall"
    assert rec.flat["eventid"] == "5e1fb8e0-231d-4527-a146-d051e37d0d4f"
    assert rec.flat["mfa"] is None  # the record says nothing about MFA
    assert rec.doc["requestParameters"]["instancesSet"]["items"][0]["imageId"] == "ami-00a4cd63f089232e0"


def test_awsdocs_error_code_and_mfa(ct: Path) -> None:
    (trail,) = read(sorted(ct.glob("*block08.json"))).records
    assert trail.flat["errorcode"] == "TrailNotFoundException"
    assert trail.flat["eventdate"] == datetime(2016, 7, 14, 19, 15, 45, tzinfo=UTC)
    assert trail.line == 1
    (keypair,) = read(sorted(ct.glob("*block04.json"))).records
    assert keypair.flat["mfa"] is False  # sessionContext.attributes.mfaAuthenticated == "false"


def test_panther_fixtures_are_read_as_records(ct: Path) -> None:
    res = read(sorted(ct.glob("*aws_iam_user_key_created*")))
    first = res.records[0]
    # Panther's zone-less timestamps are UTC, accepted inside its fixtures only.
    assert first.flat["eventdate"] == datetime(2022, 9, 27, 17, 9, 18, tzinfo=UTC)
    assert first.flat["eventname"] == "CreateAccessKey"
    assert first.doc["requestParameters"] == {"userName": "user1"}
    assert res.records[-1].flat["errorcode"] is not None
    res = read(sorted(ct.glob("*startup_script_change*")))
    assert [r.flat["principal_arn"] for r in res.records] == [
        "arn:aws:sts::0123456789:assumed-role/Role-us-1/CodeBuild"
    ]
    assert res.rejects[0].reason == (
        "missing field 'eventTime': not a CloudTrail record; it has 'eventtime', and field names are "
        "case-sensitive (test 0, Panther test 'ModifyInstanceAttribute-NoUserData')"
    )


def test_panther_name_log_array(tmp_path: Path) -> None:
    path = tmp_path / "tests.json"
    path.write_text(
        json.dumps([{"Name": "t1", "ExpectedResult": True, "Log": _record(eventTime="2024-05-01 10:00:00")}])
    )
    (rec,) = read([path]).records
    assert rec.flat["eventdate"] == datetime(2024, 5, 1, 10, tzinfo=UTC)
    # Outside a Panther fixture a timestamp needs its zone.
    path.write_text(json.dumps([_record(eventTime="2024-05-01 10:00:00")]))
    res = read([path])
    assert res.records == []
    assert res.rejects[0].reason.startswith("bad field 'eventTime': timestamp without a time zone")
    assert res.rejects[0].reason.endswith("(element 0)")


# --------------------------------------------------------------------------------------------- shapes


def test_pretty_records_file_gives_each_record_its_line(tmp_path: Path) -> None:
    records = [_record(eventID=f"e-{i}") for i in range(3)]
    path = tmp_path / "trail.json"
    path.write_text(json.dumps({"Records": records}, indent=2))
    res = read([path])
    text = path.read_text().splitlines()
    starts = [i + 1 for i, line in enumerate(text) if line == "    {"]
    assert [r.line for r in res.records] == starts and len(starts) == 3
    assert [r.doc for r in res.records] == records


def test_big_one_line_records_file_is_streamed(tmp_path: Path) -> None:
    """A delivered log file far larger than the whole-document limit still reads, one record at a time."""
    records = [_record(eventID=f"e-{i}", requestParameters={"pad": "x" * 200}) for i in range(2000)]
    path = tmp_path / "111122223333_CloudTrail_eu-west-1_20240501T1000Z_abc.json.gz"
    path.write_bytes(gzip.compress(orjson.dumps({"Records": records})))
    res = read([path], max_document_bytes=10_000, max_record_bytes=4_096)
    assert [r.flat["eventid"] for r in res.records] == [f"e-{i}" for i in range(2000)]
    assert res.rejects == [] and all(r.line == 1 for r in res.records)


def test_record_too_large_in_a_stream(tmp_path: Path) -> None:
    records = [_record(eventID="a"), _record(eventID="b", requestParameters={"pad": "x" * 5000}), _record()]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"Records": records}, indent=1))
    res = read([path], max_record_bytes=2000)
    assert [r.flat["eventid"] for r in res.records] == ["a"]
    (rej,) = res.rejects
    assert rej.reason == "record too large: over 2000 bytes; the rest of the document is not read"
    assert rej.line == path.read_text().splitlines().index("  {", 5) + 1


def test_invalid_json_inside_a_document(tmp_path: Path) -> None:
    text = json.dumps({"Records": [_record(eventID="a"), _record(eventID="b")]}, indent=2)
    text = text.replace('"eventID": "b"', '"eventID": b"')
    path = tmp_path / "t.json"
    path.write_text(text)
    res = read([path])
    assert [r.flat["eventid"] for r in res.records] == ["a"]
    (rej,) = res.rejects
    bad_line = text.splitlines().index('      "eventID": b"') + 1
    assert rej.line == bad_line
    assert rej.reason == (
        f"invalid JSON: Expecting value at line {bad_line} column 18; the rest of the document is not read"
    )


def test_truncated_gzip_keeps_records_before_the_break(tmp_path: Path) -> None:
    data = gzip.compress(orjson.dumps({"Records": [_record(eventID=f"e-{i}") for i in range(300)]}))
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    res = read([path])
    assert 0 < len(res.records) < 300
    assert [r.flat["eventid"] for r in res.records] == [f"e-{i}" for i in range(len(res.records))]
    (rej,) = res.rejects
    assert rej.reason.startswith("truncated gzip") and rej.reason.endswith("the rest of the document is not read")


def test_json_lines_eventbridge_and_wrappers(tmp_path: Path) -> None:
    envelope = {
        "version": "0",
        "id": "x",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": "111122223333",
        "detail": _record(eventID="eb"),
    }
    other = {"detail-type": "GuardDuty Finding", "detail": {"id": "f"}}
    lines = [
        orjson.dumps(_record(eventID="plain")),
        b"",
        orjson.dumps(envelope),
        orjson.dumps({"Records": [_record(eventID="w1"), _record(eventID="w2")]}),
        orjson.dumps(other),
        b'{"eventTime": "2024-05-01T10:00:00Z", "eventName": 1',
        orjson.dumps(_record(eventTime="yesterday")),
        orjson.dumps(_record(eventName=None)),
        orjson.dumps(_record(eventSource="")),
        b"\xff\xfe not utf-8",
        orjson.dumps(_record(eventID="last")),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = read([path])
    # JSON Lines (the first line is a record): a {"Records": [...]} line gives its records, all on that line.
    assert [(r.line, r.flat["eventid"]) for r in res.records][:2] == [(1, "plain"), (3, "eb")]
    assert [(r.line, r.flat["eventid"]) for r in res.records][2:] == [(4, "w1"), (4, "w2"), (11, "last")]
    assert res.records[1].doc == envelope["detail"]
    assert [(r.line, r.reason.split(":")[0]) for r in res.rejects] == [
        (5, "not a CloudTrail record"),
        (6, "invalid JSON"),
        (7, "bad field 'eventTime'"),
        (8, "missing field 'eventName'"),
        (9, "bad field 'eventSource'"),
        (10, "invalid UTF-8"),
    ]


def test_json_lines_rejects(tmp_path: Path) -> None:
    other = {"detail-type": "GuardDuty Finding", "detail": {"id": "f"}}
    lines = [
        orjson.dumps(_record(eventID="a")),
        orjson.dumps(other),
        b'{"eventTime": "2024-05-01T10:00:00Z", "eventName": 1',
        orjson.dumps(_record(eventTime="yesterday")),
        orjson.dumps(_record(eventName=None)),
        orjson.dumps(_record(eventSource="")),
        b'{"x": "\xff\xfe"}',
        orjson.dumps(_record(eventTime="2024-13-01T10:00:00Z")),
        orjson.dumps(_record(readOnly="sometimes")),
        b"[1, 2",
        orjson.dumps(_record(eventID="z")),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines))
    res = read([path])
    assert [r.flat["eventid"] for r in res.records] == ["a", "z"]
    assert [(r.line, r.reason) for r in res.rejects] == [
        (2, "not a CloudTrail record: EventBridge event of detail-type 'GuardDuty Finding'"),
        (3, "invalid JSON: unexpected end of data at column 53"),
        (4, "bad field 'eventTime': not an ISO 8601 timestamp: 'yesterday'"),
        (5, "missing field 'eventName': not a CloudTrail record"),
        (6, "bad field 'eventSource': empty string"),
        (7, "invalid UTF-8: byte 0xff at offset 7"),
        (8, "bad field 'eventTime': not an ISO 8601 timestamp: '2024-13-01T10:00:00Z'"),
        (9, "bad field 'readOnly': expected a boolean, got string 'sometimes'"),
        (10, "invalid JSON: unexpected end of data at column 6"),
    ]


def test_wrapper_lines_and_eventbridge_in_a_document(tmp_path: Path) -> None:
    envelope = {"detail-type": "AWS Console Sign In via CloudTrail", "detail": _record(eventID="eb")}
    lines = [
        orjson.dumps({"Records": [_record(eventID="w1"), _record(eventID="w2")]}),
        orjson.dumps({"Records": [_record(eventID="w3")]}),
        orjson.dumps(envelope),
    ]
    path = tmp_path / "wrappers.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = read([path])
    assert [(r.line, r.flat["eventid"]) for r in res.records] == [(1, "w1"), (1, "w2"), (2, "w3"), (3, "eb")]


def test_concatenated_pretty_values(tmp_path: Path) -> None:
    path = tmp_path / "jq.json"
    path.write_text(json.dumps(_record(eventID="a"), indent=2) + "\n" + json.dumps(_record(eventID="b"), indent=2))
    res = read([path])
    assert [(r.line, r.flat["eventid"]) for r in res.records] == [
        (1, "a"),
        (len(json.dumps(_record(), indent=2).splitlines()) + 1, "b"),
    ]


def test_digest_file_is_rejected_with_its_own_reason(tmp_path: Path) -> None:
    digest = {"awsAccountId": "111122223333", "digestStartTime": "2024-05-01T10:00:00Z", "logFiles": []}
    path = tmp_path / "digest.json"
    path.write_bytes(orjson.dumps(digest))
    (rej,) = read([path]).rejects
    assert rej.reason == "cloudtrail digest file: a CloudTrail digest file holds no log records"


def test_mfa_flag() -> None:
    def mfa(**kw: Any) -> bool | None:
        return cloudtrail_record(_record(**kw), "f", 1).flat["mfa"]

    session = {"type": "AssumedRole", "sessionContext": {"attributes": {"mfaAuthenticated": "true"}}}
    assert mfa(userIdentity=session) is True
    login = {"eventName": "ConsoleLogin", "additionalEventData": {"MFAUsed": "Yes"}}
    assert mfa(**login) is True
    assert mfa(eventName="ConsoleLogin", additionalEventData={"MFAUsed": "No"}) is False
    assert mfa() is None


def test_parse_timestamp() -> None:
    assert parse_timestamp("2024-05-01T10:00:00.123456789+02:00", "t") == datetime(
        2024, 5, 1, 8, 0, 0, 123456, tzinfo=UTC
    )
    with pytest.raises(RecordError, match="timestamp without a time zone"):
        parse_timestamp("2024-05-01T10:00:00", "t")
    assert parse_timestamp("2024-05-01 10:00:00.5", "t", naive_utc=True) == datetime(
        2024, 5, 1, 10, 0, 0, 500000, tzinfo=UTC
    )
    with pytest.raises(RecordError, match="not an ISO 8601 timestamp"):
        parse_timestamp(1714557600, "t")


# --------------------------------------------------------------------------------------------- inputs


def test_folder_in_s3_delivery_layout_with_gzip(tmp_path: Path, ct: Path) -> None:
    base = tmp_path / "AWSLogs" / "111122223333" / "CloudTrail" / "eu-west-1" / "2024" / "05" / "01"
    base.mkdir(parents=True)
    one = base / "111122223333_CloudTrail_eu-west-1_20240501T1000Z_a.json.gz"
    one.write_bytes(gzip.compress(orjson.dumps({"Records": [_record(eventID="a"), _record(eventID="b")]})))
    two = base.parent / "02" / "111122223333_CloudTrail_eu-west-1_20240502T1000Z_b.json.gz"
    two.parent.mkdir()
    two.write_bytes(gzip.compress((ct / "elastic-test-console-login.jsonl").read_bytes()))
    (base / ".hidden.json").write_text("not read")
    res = read([tmp_path / "AWSLogs"])
    assert [r.flat["eventid"] for r in res.records][:2] == ["a", "b"]
    assert len(res.records) == 5 and res.stats.files == 2
    assert res.records[0].file == str(one)


def test_stdin(monkeypatch: pytest.MonkeyPatch, ct: Path) -> None:
    data = (ct / "elastic-test-console-login.jsonl").read_bytes()
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=pyio.BytesIO(gzip.compress(data))))
    res = read(["-"])
    assert [r.file for r in res.records] == ["<stdin>"] * 3
    assert [r.flat["eventname"] for r in res.records] == ["ConsoleLogin"] * 3


def test_prefilter_skips_lines_before_parsing(ct: Path, tmp_path: Path) -> None:
    seen: list[bytes] = []

    def prefilter(raw: bytes) -> bool:
        seen.append(raw)
        return b"JaneDoe" in raw

    path = tmp_path / "p.jsonl"
    path.write_bytes((ct / "elastic-test-console-login.jsonl").read_bytes() + b"garbage\n")
    res = read([path], prefilter=prefilter)
    assert [r.flat["principal_arn"] for r in res.records] == ["arn:aws:iam::111122223333:user/JaneDoe"]
    assert res.stats.prefiltered == 2 and len(seen) == 4
    (rej,) = res.rejects  # garbage is rejected even when the prefilter skips it
    assert (rej.line, rej.reason) == (4, "not a JSON value (line skipped by the prefilter, not parsed)")


def test_missing_path_fails_before_reading(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        read([tmp_path / "nope.json"])


# --------------------------------------------------------------------------------------------- block boundaries

_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(_TEXT, min_size=1, max_size=6),
    block=st.integers(1, 64),
    indent=st.sampled_from([None, 1, 4]),
    wrapper=st.booleans(),
    gz=st.booleans(),
)
def test_any_block_boundary_gives_the_same_records(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    names: list[str],
    block: int,
    indent: int | None,
    wrapper: bool,
    gz: bool,
) -> None:
    """Streamed documents read the same whatever the block size: values, lines, multi-byte characters."""
    records = [
        _record(eventID=f"e-{i}", userAgent=name, requestParameters={"k": [name, i, None, 1.5]})
        for i, name in enumerate(names)
    ]
    value: Any = {"Records": records} if wrapper else records
    text = json.dumps(value, indent=indent, ensure_ascii=False).encode()
    path = tmp_path / f"doc-{block}-{indent}-{wrapper}-{gz}.json"
    path.write_bytes(gzip.compress(text) if gz else text)
    expected = read([path])
    assert [r.doc for r in expected.records] == records
    monkeypatch.setattr(mw_io, "BLOCK_SIZE", block)
    got = read([path])
    assert [(r.line, r.doc) for r in got.records] == [(r.line, r.doc) for r in expected.records]
    assert got.rejects == []
