"""``minerwatch posture`` against a moto account seeded with good and bad resources in three regions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from respond_env import use_moto
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

runner = CliRunner()
GOOD, BAD, OFF = "us-east-1", "eu-west-1", "us-west-2"
REGIONS = f"{GOOD},{BAD},{OFF}"


def _c(service: str, region: str) -> Any:
    return boto3.Session().client(service, region_name=region)


def _image(region: str) -> str:
    return _c("ec2", region).describe_images()["Images"][0]["ImageId"]


def _open(group: str, region: str, perms: list[dict[str, Any]]) -> None:
    _c("ec2", region).authorize_security_group_ingress(GroupId=group, IpPermissions=perms)


@pytest.fixture(scope="module")
def account(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """GOOD: everything right. BAD: nothing right. OFF: a suspended GuardDuty detector, a stopped trail.

    Seeded once for the module (the tests only read it; the one that adds a group uses its own region)."""
    with pytest.MonkeyPatch.context() as mp:
        use_moto(moto_url, mp, tmp_path_factory.mktemp("aws"))
        yield seed()


def seed() -> dict[str, Any]:
    ids: dict[str, Any] = {}
    # GuardDuty
    _c("guardduty", GOOD).create_detector(Enable=True)
    ids["off_detector"] = _c("guardduty", OFF).create_detector(Enable=False)["DetectorId"]
    # Instances: IMDSv2 required and alarmed in GOOD; IMDSv1 and no alarm in BAD.
    good = _c("ec2", GOOD).run_instances(
        ImageId=_image(GOOD), MinCount=1, MaxCount=1, MetadataOptions={"HttpTokens": "required"}
    )["Instances"][0]["InstanceId"]
    bad = _c("ec2", BAD).run_instances(
        ImageId=_image(BAD), MinCount=1, MaxCount=1, MetadataOptions={"HttpTokens": "optional"}
    )["Instances"][0]["InstanceId"]
    ids.update(good_instance=good, bad_instance=bad)
    _c("cloudwatch", GOOD).put_metric_alarm(
        AlarmName="cpu-high",
        Namespace="AWS/EC2",
        MetricName="CPUUtilization",
        Dimensions=[{"Name": "InstanceId", "Value": good}],
        Statistic="Average",
        Period=300,
        EvaluationPeriods=3,
        Threshold=80,
        ComparisonOperator="GreaterThanThreshold",
    )
    # An alarm on another metric of the bad instance does not count.
    _c("cloudwatch", BAD).put_metric_alarm(
        AlarmName="net",
        Namespace="AWS/EC2",
        MetricName="NetworkOut",
        Dimensions=[{"Name": "InstanceId", "Value": bad}],
        Statistic="Average",
        Period=300,
        EvaluationPeriods=3,
        Threshold=80,
        ComparisonOperator="GreaterThanThreshold",
    )
    # Security groups
    ec2_good, ec2_bad = _c("ec2", GOOD), _c("ec2", BAD)
    vpc_good = ec2_good.describe_vpcs()["Vpcs"][0]["VpcId"]
    vpc_bad = ec2_bad.describe_vpcs()["Vpcs"][0]["VpcId"]
    ids.update(vpc_good=vpc_good, vpc_bad=vpc_bad)
    trusted = ec2_good.create_security_group(GroupName="ssh-office", Description="x", VpcId=vpc_good)["GroupId"]
    _open(
        trusted,
        GOOD,
        [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "198.51.100.0/24"}]}],
    )
    https = ec2_good.create_security_group(GroupName="https", Description="x", VpcId=vpc_good)["GroupId"]
    _open(https, GOOD, [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ssh = ec2_bad.create_security_group(GroupName="ssh-world", Description="x", VpcId=vpc_bad)["GroupId"]
    _open(ssh, BAD, [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    rdp6 = ec2_bad.create_security_group(GroupName="rdp-v6", Description="x", VpcId=vpc_bad)["GroupId"]
    _open(rdp6, BAD, [{"IpProtocol": "tcp", "FromPort": 3389, "ToPort": 3389, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}])
    span = ec2_bad.create_security_group(GroupName="range", Description="x", VpcId=vpc_bad)["GroupId"]
    _open(span, BAD, [{"IpProtocol": "tcp", "FromPort": 20, "ToPort": 25, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    everything = ec2_bad.create_security_group(GroupName="all", Description="x", VpcId=vpc_bad)["GroupId"]
    _open(everything, BAD, [{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
    ids.update(trusted=trusted, https=https, ssh=ssh, rdp6=rdp6, span=span, everything=everything)
    # CloudTrail: a logging trail in GOOD, a regional trail that is not logging in OFF, none in BAD.
    _c("s3", GOOD).create_bucket(Bucket="trails")
    _c("cloudtrail", GOOD).create_trail(Name="main-trail", S3BucketName="trails")
    _c("cloudtrail", GOOD).start_logging(Name="main-trail")
    ids["off_trail"] = _c("cloudtrail", OFF).create_trail(Name="old-trail", S3BucketName="trails")["TrailARN"]
    # Flow logs: ALL on GOOD's VPC, REJECT only on BAD's, none in OFF.
    for region, vpc, traffic in ((GOOD, vpc_good, "ALL"), (BAD, vpc_bad, "REJECT")):
        _c("ec2", region).create_flow_logs(
            ResourceType="VPC",
            ResourceIds=[vpc],
            TrafficType=traffic,
            LogDestinationType="s3",
            LogDestination="arn:aws:s3:::trails",
        )
    return ids


def _run(*args: str) -> tuple[int, dict[str, Any]]:
    res = runner.invoke(app, ["posture", "--json", *args])
    return res.exit_code, json.loads(res.stdout)


def _status(report: dict[str, Any], check: str, region: str) -> dict[str | None, str]:
    return {r["resource"]: r["status"] for r in report["results"] if r["check"] == check and r["region"] == region}


def test_each_check_reports_good_and_bad_resources(account: dict[str, Any]) -> None:
    code, report = _run("--regions", REGIONS)
    assert code == 1 and report["ok"] is False
    assert report["account"] == "123456789012" and report["regions"] == [GOOD, BAD, OFF]
    fails = [r for r in report["results"] if r["status"] != "pass"]
    assert all(r["status"] == "fail" and r["remediation"] for r in fails), "every failure says how to fix it"

    gd = {r["region"]: r for r in report["results"] if r["check"] == "guardduty"}
    assert gd[GOOD]["status"] == "pass"
    assert (
        gd[BAD]["status"] == "fail"
        and gd[BAD]["remediation"] == f"aws guardduty create-detector --enable --region {BAD}"
    )
    assert gd[OFF]["status"] == "fail" and gd[OFF]["resource"] == account["off_detector"]
    assert f"--detector-id {account['off_detector']} --enable" in gd[OFF]["remediation"]

    assert _status(report, "imdsv2", GOOD) == {account["good_instance"]: "pass"}
    assert _status(report, "imdsv2", BAD) == {account["bad_instance"]: "fail"}
    imds = next(r for r in fails if r["check"] == "imdsv2")
    assert f"--instance-id {account['bad_instance']} --http-tokens required" in imds["remediation"]

    admin_good = _status(report, "admin-ports", GOOD)
    assert admin_good[account["trusted"]] == "pass" and admin_good[account["https"]] == "pass"
    admin_bad = [r for r in fails if r["check"] == "admin-ports"]
    assert {r["resource"] for r in admin_bad} == {account[k] for k in ("ssh", "rdp6", "span", "everything")}
    by_group = {r["resource"]: r for r in admin_bad}
    assert "RDP 3389 open to ::/0" in by_group[account["rdp6"]]["detail"]
    assert "SSH 22 open to 0.0.0.0/0" in by_group[account["span"]]["detail"]
    assert "SSH 22/RDP 3389" in by_group[account["everything"]]["detail"]
    assert (
        f"revoke-security-group-ingress --group-id {account['ssh']} --ip-permissions "
        "'IpProtocol=tcp,FromPort=22,ToPort=22,IpRanges=[{CidrIp=0.0.0.0/0}]'"
    ) in by_group[account["ssh"]]["remediation"]

    assert _status(report, "cpu-alarms", GOOD) == {account["good_instance"]: "pass"}
    assert _status(report, "cpu-alarms", BAD) == {account["bad_instance"]: "fail"}
    assert _status(report, "cpu-alarms", OFF) == {None: "pass"}

    trail = {r["region"]: r for r in report["results"] if r["check"] == "cloudtrail"}
    assert trail[GOOD]["status"] == "pass" and trail[BAD]["status"] == "fail"
    assert trail[OFF]["status"] == "fail" and "exists but is not logging" in trail[OFF]["detail"]
    assert f"start-logging --name {account['off_trail']}" in trail[OFF]["remediation"]

    assert _status(report, "flow-logs", GOOD)[account["vpc_good"]] == "pass"
    bad_flow = next(r for r in fails if r["check"] == "flow-logs" and r["resource"] == account["vpc_bad"])
    assert "rejected traffic only" in bad_flow["detail"]
    assert f"--resource-ids {account['vpc_bad']} --traffic-type ALL" in bad_flow["remediation"]
    assert [r["status"] for r in report["results"] if r["check"] == "flow-logs" and r["region"] == OFF] == ["fail"]

    summary = {c["id"]: c for c in report["checks"]}
    assert summary["guardduty"]["measure"] == "Enable GuardDuty in all regions"
    assert summary["imdsv2"]["measure"] == "Use instance metadata service v2 (IMDSv2)"
    # 2 good groups + the default group of each of the 3 regions pass.
    assert summary["admin-ports"] == {**summary["admin-ports"], "passed": 5, "failed": 4, "errors": 0}
    assert report["not_checked"] == [
        "Implement least privilege IAM",
        "Regular vulnerability scanning",
        "VPC endpoint policies",
    ]


def test_a_good_region_passes_with_exit_zero(account: dict[str, Any]) -> None:
    code, report = _run("--regions", GOOD)
    assert code == 0 and report["ok"] is True
    assert {r["status"] for r in report["results"]} == {"pass"}


def test_table_output_lists_failures_with_their_fix(account: dict[str, Any]) -> None:
    res = runner.invoke(app, ["posture", "--regions", BAD, "--checks", "imdsv2,admin-ports"])
    assert res.exit_code == 1, res.output
    out = " ".join(res.stdout.split())
    assert account["bad_instance"] in out and "modify-instance-metadata-options" in out
    assert account["ssh"] in out and "revoke-security-group-ingress" in out
    assert "posture FAIL" in res.stderr and "5 failure(s)" in res.stderr
    assert "not checked (manual): VPC endpoint policies" in out
