"""``minerwatch posture``: region selection, usage errors, unreadable services, text that is not markup."""

from __future__ import annotations

import json
import urllib.request
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
    # moto enforcing IAM: a user whose policy denies ec2:DescribeSecurityGroups (a real AWS error answer).
    iam = _c("iam", GOOD)
    iam.create_user(UserName="auditor")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": "ec2:DescribeSecurityGroups", "Resource": "*"},
        ],
    }
    iam.put_user_policy(UserName="auditor", PolicyName="no-security-groups", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="auditor")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    _moto_auth(aws, "0")
    try:
        code, report = _run("--regions", GOOD, "--checks", "admin-ports,imdsv2")
    finally:
        _moto_auth(aws, "inf")
    assert code == 1
    status = {r["check"]: (r["status"], r["detail"]) for r in report["results"]}
    assert status["admin-ports"][0] == "error"
    assert status["admin-ports"][1].startswith("DescribeSecurityGroups: ")
    assert "not authorized to perform: ec2:DescribeSecurityGroups" in status["admin-ports"][1]
    assert status["imdsv2"][0] == "pass"  # the same user reads instances: only the denied call is an error


def _moto_auth(url: str, count: str) -> None:
    """moto's server checks credentials and IAM policies after ``count`` more requests ("inf": never)."""
    req = urllib.request.Request(f"{url}/moto-api/reset-auth", data=count.encode(), method="POST",
                                 headers={"Content-Type": "text/plain"})  # not form data: read as the body
    urllib.request.urlopen(req).read()
