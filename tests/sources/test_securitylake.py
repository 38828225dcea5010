"""GuardDuty findings stored by Security Lake (OCSF Detection Finding in Parquet) read as canonical findings."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest

from minerwatch.sources.guardduty import FindingError, finding_to_record, normalise_finding
from minerwatch.sources.securitylake import version_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "respond"))

from lake import ASFF, OCSF, lake_path, write_parquet  # noqa: E402
from respond_env import aws, moto_url  # noqa: E402, F401


@pytest.fixture(scope="module")
def ocsf_records() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (OCSF / "securitylake-sh-findings.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def hub_findings() -> list[dict[str, Any]]:
    return orjson.loads((ASFF / "securityhub-get-findings.json").read_bytes())["Findings"]


def test_parquet_in_the_lake_layout(read: Callable[..., Any], tmp_path: Path, hub_findings: list[Any]) -> None:
    write_parquet(OCSF / "securitylake-sh-findings.jsonl", lake_path(tmp_path))
    res = read([tmp_path])
    assert res.rejects == [] and res.stats.records_read == 3 and res.stats.files == 1
    for rec, hub in zip(res.records, hub_findings, strict=True):
        expected = finding_to_record(normalise_finding(hub), "hub", 1)
        assert rec.flat == expected.flat and rec.sample == expected.sample
        assert rec.doc == expected.doc  # the whole canonical finding, not only its flat columns
        assert "accountId" not in rec.doc or rec.doc["accountId"] == hub["AwsAccountId"]
    assert [r.line for r in res.records] == [1, 2, 3]  # the row number
    port = res.records[2].doc["service"]["action"]["networkConnectionAction"]["remotePortDetails"]["port"]
    assert port == 3333


@pytest.mark.usefixtures("aws")
def test_parquet_from_s3(read: Callable[..., Any], tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="aws-security-data-lake-us-east-1-abc")
    local = write_parquet(OCSF / "securitylake-sh-findings.jsonl", tmp_path / "x.parquet")
    key = str(lake_path(Path(""))).lstrip("/")
    s3.put_object(Bucket="aws-security-data-lake-us-east-1-abc", Key=key, Body=local.read_bytes())
    res = read(["s3://aws-security-data-lake-us-east-1-abc/aws/SH_FINDINGS/"], s3_client=s3)
    assert res.rejects == [] and [r.flat["type"] for r in res.records] == [
        "CryptoCurrency:EC2/BitcoinTool.B!DNS", "Impact:EC2/BitcoinDomainRequest.Reputation",
        "CryptoCurrency:EC2/BitcoinTool.B",
    ]


def test_other_products_and_classes_rejected(read: Callable[..., Any], tmp_path: Path) -> None:
    write_parquet(OCSF / "securitylake-inspector.jsonl", tmp_path / "inspector.parquet")
    res = read([tmp_path / "inspector.parquet"])
    assert res.records == [] and len(res.rejects) == 1
    assert "'Inspector'" in res.rejects[0].reason and res.rejects[0].line == 1


def test_version_decides_the_finding_object(ocsf_records: list[dict[str, Any]]) -> None:
    rec = copy.deepcopy(ocsf_records[2])
    assert version_of(rec) == (1, 1)
    expected = normalise_finding(rec)
    # OCSF 1.0 (Security Lake's first source version): Security Finding, class 2001, details in `finding`
    old = copy.deepcopy(rec)
    old["metadata"]["version"] = "1.0.0-rc.2"
    old["class_uid"], old["class_name"] = 2001, "Security Finding"
    old["finding"] = old.pop("finding_info")
    assert version_of(old) == (1, 0) and normalise_finding(old) == expected
    # a 1.1 record of class 2001 without `finding` is refused
    wrong = copy.deepcopy(rec)
    wrong["class_uid"] = 2001
    with pytest.raises(FindingError, match="class 2001"):
        normalise_finding(wrong)
    other = copy.deepcopy(rec)
    other["class_uid"], other["class_name"] = 3002, "Authentication"
    with pytest.raises(FindingError, match=r"class 3002 \(Authentication\)"):
        normalise_finding(other)


def test_tags_from_labels_and_from_tags(ocsf_records: list[dict[str, Any]]) -> None:
    rec = copy.deepcopy(ocsf_records[2])
    from_labels = normalise_finding(rec)["resource"]["instanceDetails"]["tags"]
    assert from_labels == [{"key": "Name", "value": "web-app-1"}, {"key": "Environment", "value": "prod"}]
    rec["metadata"]["version"] = "1.3.0"
    del rec["resources"][0]["labels"]
    rec["resources"][0]["tags"] = [{"name": "Name", "value": "web-app-1"}, {"name": "Environment", "value": "prod"}]
    assert normalise_finding(rec)["resource"]["instanceDetails"]["tags"] == from_labels


def test_raw_data_holding_the_original_is_read_instead(ocsf_records: list[dict[str, Any]]) -> None:
    rec = copy.deepcopy(ocsf_records[2])
    original = orjson.loads((ASFF / "guardduty-network-crypto.jsonl").read_bytes())
    rec["raw_data"] = orjson.dumps(original).decode()
    rec["finding_info"]["title"] = "changed by the mapping"
    assert normalise_finding(rec)["title"] == original["title"]


def test_severity_from_severity_id_when_unmapped_has_none(ocsf_records: list[dict[str, Any]]) -> None:
    rec = copy.deepcopy(ocsf_records[2])
    del rec["unmapped"]["Severity.Product"]
    rec["severity_id"] = 5
    assert finding_to_record(normalise_finding(rec), "f", 1).flat["severity"] == 9.0


def test_corrupt_parquet_is_a_reject(read: Callable[..., Any], tmp_path: Path) -> None:
    good = write_parquet(OCSF / "securitylake-sh-findings.jsonl", tmp_path / "good.parquet").read_bytes()
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(good[: len(good) // 2])
    res = read([bad])
    assert res.records == [] and len(res.rejects) == 1 and "invalid Parquet" in res.rejects[0].reason
    assert res.rejects[0].file == str(bad)
