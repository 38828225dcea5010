"""``minerwatch posture``: region selection, usage errors, unreadable services, text that is not markup."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

runner = CliRunner()
GOOD = "us-east-1"


def _c(service: str, region: str) -> Any:
    return boto3.Session().client(service, region_name=region)


def _run(*args: str) -> tuple[int, dict[str, Any]]:
    res = runner.invoke(app, ["posture", "--json", *args])
    return res.exit_code, json.loads(res.stdout)


def test_names_from_the_account_are_text_not_markup(aws: str) -> None:
    ec2 = _c("ec2", GOOD)
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    odd = ec2.create_security_group(GroupName="[/x] [bold]odd", Description="x", VpcId=vpc)["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=odd,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    res = runner.invoke(app, ["posture", "--regions", GOOD, "--checks", "admin-ports"])
    assert res.exit_code == 1, res.output
    assert "[/x] [bold]odd: RDP 3389 open to 0.0.0.0/0" in " ".join(res.stdout.split())


def test_regions_all_means_every_enabled_region(aws: str) -> None:
    regions = sorted(r["RegionName"] for r in _c("ec2", GOOD).describe_regions()["Regions"])
    _c("guardduty", GOOD).create_detector(Enable=True)
    code, report = _run("--regions", "all", "--checks", "guardduty")
    assert code == 1
    assert report["regions"] == regions
    status = {r["region"]: r["status"] for r in report["results"]}
    assert status == {r: ("pass" if r == GOOD else "fail") for r in regions}


def test_unknown_check_is_a_usage_error(aws: str) -> None:
    res = runner.invoke(app, ["posture", "--regions", GOOD, "--checks", "nope"])
    assert res.exit_code == 2 and "unknown check(s) nope" in res.stderr


def test_an_unreadable_service_is_an_error_not_a_pass(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A check whose reads are denied (as AWS answers without guardduty:ListDetectors) reports an error.
    from minerwatch.posture import checks

    def denied(c: Any, region: str) -> list[Any]:
        raise checks.AwsError("ListDetectors: AccessDeniedException: not allowed", code="AccessDeniedException")

    monkeypatch.setattr(
        checks,
        "CHECKS",
        tuple(
            checks.Check(c.id, c.title, c.pattern, c.services, denied if c.id == "guardduty" else c.run)
            for c in checks.CHECKS
        ),
    )
    code, report = _run("--regions", GOOD, "--checks", "guardduty")
    assert code == 1
    assert [(r["status"], r["detail"]) for r in report["results"]] == [
        ("error", "ListDetectors: AccessDeniedException: not allowed")
    ]
