"""One finding at a time: normalise_finding (shapes) and finding_to_record (validation, flat columns)."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.catalog.tables import GUARDDUTY, ColType
from minerwatch.sources.botocore_shapes import to_pascal
from minerwatch.sources.guardduty import TABLE, FindingError, finding_to_record, normalise_finding

PY_TYPES = {ColType.STRING: str, ColType.DOUBLE: float, ColType.TIMESTAMP: datetime}


@pytest.fixture
def finding(real_findings: list[dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(real_findings[0])


def _record(doc: dict[str, Any]) -> Any:
    return finding_to_record(normalise_finding(doc), "f.jsonl", 3)


def test_flat_columns_are_exactly_the_catalogue_columns(real_findings: list[dict[str, Any]]) -> None:
    for doc in real_findings:
        rec = _record(doc)
        assert rec.table == TABLE == "cloud.aws.guardduty"
        assert list(rec.flat) == list(GUARDDUTY.columns)
        for name, coltype in GUARDDUTY.columns.items():
            assert isinstance(rec.flat[name], PY_TYPES[coltype]), name
        assert rec.flat["accountid"] == doc["accountId"]
        assert (
            rec.flat["id"] == doc["id"] and rec.flat["arn"] == doc["arn"] and rec.flat["type"] == doc["type"]
        )
        assert rec.flat["severity"] == float(doc["severity"])
        assert rec.flat["eventdate"].tzinfo is not None and rec.flat["eventdate"].utcoffset() == timedelta(0)
        assert rec.doc == doc and (rec.file, rec.line) == ("f.jsonl", 3)


def test_eventdate_is_updated_at_else_created_at(finding: dict[str, Any]) -> None:
    finding["createdAt"], finding["updatedAt"] = "2024-01-01T00:00:00Z", "2024-02-01T00:00:00.5Z"
    assert _record(finding).flat["eventdate"] == datetime(2024, 2, 1, 0, 0, 0, 500000, tzinfo=UTC)
    del finding["updatedAt"]
    assert _record(finding).flat["eventdate"] == datetime(2024, 1, 1, tzinfo=UTC)
    del finding["createdAt"]
    with pytest.raises(FindingError, match="updatedAt"):
        _record(finding)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T00:00:00.123Z", datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)),
        ("2024-01-01T00:00:00.123456789Z", datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
        ("2024-01-01T00:00:00+00:00", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2024-01-01T02:30:00+02:30", datetime(2024, 1, 1, tzinfo=UTC)),
        ("2023-12-31T22:00:00.250-02:00", datetime(2024, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_accepted_timestamps(finding: dict[str, Any], text: str, expected: datetime) -> None:
    finding["updatedAt"] = text
    got = _record(finding).flat["eventdate"]
    assert got == expected and got.tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [
        "XXXX-XX-XXTXX:XX:XXZ",  # redacted
        "2024-01-01",
        "2024-01-01T00:00:00",  # no zone: ambiguous
        "2024-01-01 00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-01T00:00:00z",
        "\u0662\u0660\u0662\u0664-01-01T00:00:00Z",  # Arabic-Indic digits
        "",
        1704067200,
        True,
        ["2024-01-01T00:00:00Z"],
    ],
)
def test_rejected_timestamps_name_the_field(finding: dict[str, Any], value: Any) -> None:
    finding["updatedAt"] = value
    with pytest.raises(FindingError, match="updatedAt") as info:
        _record(finding)
    assert info.value.key == "bad field 'updatedAt'"


def test_an_unusable_updated_at_is_not_replaced_by_created_at(finding: dict[str, Any]) -> None:
    # Deduplication is by (id, updatedAt): falling back would merge distinct deliveries of a finding.
    finding["updatedAt"] = "XXXX-XX-XXTXX:XX:XXZ"
    assert finding["createdAt"]
    with pytest.raises(FindingError, match="updatedAt"):
        _record(finding)


def test_datetime_objects_are_accepted(finding: dict[str, Any]) -> None:
    finding["updatedAt"] = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    rec = _record(finding)
    assert rec.flat["eventdate"] == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert rec.doc["updatedAt"] == "2024-05-01T12:00:00Z"  # the document stays JSON
    orjson.dumps(rec.doc)


@pytest.mark.parametrize("field", ["id", "type", "accountId"])
def test_required_fields(finding: dict[str, Any], field: str) -> None:
    del finding[field]
    with pytest.raises(FindingError, match=f"missing field '{field}'"):
        _record(finding)


@pytest.mark.parametrize("field", ["id", "type", "accountId", "region", "title", "description", "arn"])
@pytest.mark.parametrize("value", [123, ["x"], {"a": 1}, True])
def test_string_fields_of_the_wrong_type(finding: dict[str, Any], field: str, value: Any) -> None:
    finding[field] = value
    with pytest.raises(FindingError, match=f"'{field}'.*expected a string"):
        _record(finding)


def test_empty_identifiers_are_refused(finding: dict[str, Any]) -> None:
    finding["id"] = ""
    with pytest.raises(FindingError, match="'id'.*empty"):
        _record(finding)


def test_optional_fields_may_be_absent(finding: dict[str, Any]) -> None:
    for key in ("region", "title", "description", "arn", "severity"):
        del finding[key]
    flat = _record(finding).flat
    assert [flat[k] for k in ("region", "title", "description", "arn", "severity")] == [None] * 5


@pytest.mark.parametrize("value", ["8.0", "high", True, [8], math.nan, math.inf])
def test_severity_must_be_a_number(finding: dict[str, Any], value: Any) -> None:
    finding["severity"] = value
    with pytest.raises(FindingError, match="'severity'.*expected a number"):
        _record(finding)


@pytest.mark.parametrize(("value", "expected"), [(8, 8.0), (2.5, 2.5), (0, 0.0), (None, None)])
def test_severity_numbers(finding: dict[str, Any], value: Any, expected: float | None) -> None:
    finding["severity"] = value
    got = _record(finding).flat["severity"]
    assert got == expected and (got is None or type(got) is float)


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), ("true", True), ("TRUE", True), (False, False), ("false", False)]
)
def test_sample_flag(finding: dict[str, Any], value: Any, expected: bool) -> None:
    finding["service"]["additionalInfo"]["sample"] = value
    assert _record(finding).sample is expected


def test_sample_flag_absent(finding: dict[str, Any]) -> None:
    del finding["service"]["additionalInfo"]
    assert _record(finding).sample is False
    finding["service"] = "odd"
    assert _record(finding).sample is False


def test_api_additional_info_is_spelled_out_like_eventbridge(real_findings: list[dict[str, Any]]) -> None:
    finding = copy.deepcopy(
        next(f for f in real_findings if len(f["service"].get("additionalInfo", {}).get("value", "")) > 20)
    )
    info = finding["service"]["additionalInfo"]
    assert "value" in info and "sample" in info
    finding["service"]["additionalInfo"] = {"value": info["value"], "type": info["type"]}
    original = copy.deepcopy(finding)
    rec = _record(finding)
    assert rec.sample is True
    assert rec.doc["service"]["additionalInfo"] == info  # same keys as the EventBridge/S3 form of the record
    assert finding == original
    # Keys already present are never overwritten by the parsed value.
    finding["service"]["additionalInfo"] = {"value": '{"type": "other", "sample": "true"}', "type": "default"}
    rec = _record(finding)
    assert rec.doc["service"]["additionalInfo"]["type"] == "default" and rec.sample is True


def test_eventbridge_envelope(finding: dict[str, Any]) -> None:
    envelope = {
        "version": "0",
        "id": "c8b2bbf4-0000-0000-0000-000000000000",
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": finding["accountId"],
        "time": finding["updatedAt"],
        "region": finding["region"],
        "resources": [],
        "detail": finding,
    }
    assert normalise_finding(envelope) == finding
    assert _record(envelope).flat["id"] == finding["id"]


def test_other_eventbridge_events_are_not_findings(finding: dict[str, Any]) -> None:
    with pytest.raises(FindingError, match="detail-type 'AWS API Call via CloudTrail'"):
        normalise_finding({"detail-type": "AWS API Call via CloudTrail", "detail": finding})
    with pytest.raises(FindingError, match="detail is array"):
        normalise_finding({"detail-type": "GuardDuty Finding", "detail": [finding]})


def test_pascal_case_finding_with_boto3_datetimes(finding: dict[str, Any]) -> None:
    pascal = to_pascal(finding)
    pascal["UpdatedAt"] = datetime(2024, 3, 1, tzinfo=UTC)
    doc = normalise_finding(pascal)
    assert doc["updatedAt"] == "2024-03-01T00:00:00Z"
    assert doc["resource"] == finding["resource"]
    assert _record(pascal).flat["eventdate"] == datetime(2024, 3, 1, tzinfo=UTC)


def test_a_cloudtrail_record_is_not_a_finding(samples: Path) -> None:
    for line in (samples / "cloudtrail" / "elastic-test-console-login.jsonl").read_bytes().splitlines():
        with pytest.raises(FindingError, match="missing field 'id'"):
            _record(orjson.loads(line))


@pytest.mark.parametrize("value", [None, 1, "finding", [1, 2], True])
def test_non_objects(value: Any) -> None:
    with pytest.raises(FindingError, match="not a GuardDuty finding: expected an object"):
        normalise_finding(value)
    with pytest.raises(FindingError, match="not a GuardDuty finding: expected an object"):
        finding_to_record(value, "f", 1)  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
KEYS = st.sampled_from(
    ["id", "Id", "type", "Type", "accountId", "AccountId", "updatedAt", "UpdatedAt", "createdAt", "severity",
     "Severity", "service", "Service", "detail-type", "detail", "region", "title"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=8)))
def test_arbitrary_json_is_a_record_or_a_value_error(value: Any) -> None:
    try:
        rec = finding_to_record(normalise_finding(value), "f", 1)
    except ValueError as exc:
        assert isinstance(exc, FindingError) and str(exc)
    else:
        assert isinstance(rec.flat["id"], str) and rec.flat["eventdate"].tzinfo == UTC


def test_a_deep_pascal_case_finding_is_refused_cleanly(finding: dict[str, Any]) -> None:
    pascal = to_pascal(finding)
    deep: Any = "x"
    for _ in range(150):
        deep = {"Nested": deep}
    pascal["Service"]["AdditionalInfo"] = deep
    with pytest.raises(FindingError, match="nesting too deep: more than 100 levels of nesting"):
        normalise_finding(pascal)
