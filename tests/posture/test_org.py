"""``posture --org`` on a moto organization of three accounts, moto's IAM enforcement on: the management account
and a member whose role allows the checks are reported; a member whose role allows nothing fails, with the reason,
and the others still run."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.errors import MinerWatchError
from minerwatch.respond.aws import Aws
from minerwatch.respond.org import EXIT_ACCOUNT_FAILED, OrgOptions, fan_out, list_accounts

runner = CliRunner()
REGION = "us-east-1"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def _set_auth(moto_url: str, count: str) -> None:
    req = urllib.request.Request(
        f"{moto_url}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(req).read()


def _in_account(account: str) -> Any:
    creds = boto3.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/setup", RoleSessionName="setup"
    )["Credentials"]
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"], region_name=REGION,
    )


@pytest.fixture
def org(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Management account 123456789012 (an admin user), members `good` (its role may do anything) and `denied`
    (its role has no permission at all); then moto checks every request against IAM."""
    iam = boto3.client("iam")
    iam.create_user(UserName="admin")
    iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=ALLOW_ALL)
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    orgs = boto3.client("organizations")
    orgs.create_organization(FeatureSet="ALL")
    ids = {}
    for name in ("good", "denied"):
        status = orgs.create_account(AccountName=name, Email=f"{name}@example.com")["CreateAccountStatus"]
        ids[name] = status["AccountId"]
        # moto creates the role as Organizations does; `denied` loses every permission of it
        member_iam = _in_account(ids[name]).client("iam")
        role = "OrganizationAccountAccessRole"
        if name == "good":
            member_iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=ALLOW_ALL)
            ec2 = _in_account(ids[name]).client("ec2")
            sg = ec2.create_security_group(GroupName="open-ssh", Description="open")["GroupId"]
            ec2.authorize_security_group_ingress(GroupId=sg, IpPermissions=[
                {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
            ])
            ids["open_sg"] = sg
            continue
        for pol in member_iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            member_iam.detach_role_policy(RoleName=role, PolicyArn=pol["PolicyArn"])
        for pol_name in member_iam.list_role_policies(RoleName=role)["PolicyNames"]:
            member_iam.delete_role_policy(RoleName=role, PolicyName=pol_name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    _set_auth(aws, "0")
    try:
        yield ids
    finally:
        _set_auth(aws, "inf")


def test_posture_org_reports_two_and_fails_the_denied_one(org: dict[str, str], tmp_path: Path) -> None:
    args = ["posture", "--org", "--regions", "us-east-1,us-west-2", "--checks", "admin-ports,imdsv2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_ACCOUNT_FAILED, result.output
    doc = json.loads(result.stdout)
    by_id = {a["account"]: a for a in doc["accounts"]}
    assert set(by_id) == {"123456789012", org["good"], org["denied"]}, doc
    assert by_id["123456789012"]["status"] == "ok" and by_id["123456789012"]["role_arn"] is None
    good = by_id[org["good"]]
    assert good["status"] == "ok"
    assert good["role_arn"] == f"arn:aws:iam::{org['good']}:role/OrganizationAccountAccessRole"
    assert good["result"]["account"] == org["good"]  # the checks really ran in that account
    failed = [r["resource"] for r in good["result"]["results"] if r["status"] != "pass"]
    assert failed == [org["open_sg"]]  # found in that account, and only there
    mgmt = by_id["123456789012"]["result"]["results"]
    assert mgmt and all(r["status"] == "pass" for r in mgmt)
    denied = by_id[org["denied"]]
    assert denied["status"] == "failed" and denied["result"] is None
    assert denied["code"] == "AccessDenied" and "not authorized" in denied["reason"]

    table = runner.invoke(app, args[:-1])
    assert table.exit_code == EXIT_ACCOUNT_FAILED
    assert "2 account(s) reported, 1 failed" in table.output
    assert "AccessDenied" in table.output


def test_accounts_and_exclude(org: dict[str, str]) -> None:
    base = Aws(region=REGION)
    assert [a.id for a in list_accounts(base, OrgOptions(exclude=[org["denied"]]))] == sorted(
        ["123456789012", org["good"]]
    )
    only = OrgOptions(accounts=[org["good"]], session_name="ir-2024-001")
    results = fan_out(base, list_accounts(base, only), only, lambda aws, _a: aws.identity()["Arn"])
    assert [r.status for r in results] == ["ok"]
    assert results[0].value.endswith(":assumed-role/OrganizationAccountAccessRole/ir-2024-001")
    with pytest.raises(MinerWatchError, match="not an active account"):
        list_accounts(base, OrgOptions(accounts=["999999999999"]))
    only_denied = OrgOptions(accounts=[org["denied"]], exclude=[])
    result = runner.invoke(app, ["posture", "--org", "--accounts", org["denied"], "--regions", "us-east-1"])
    assert result.exit_code == EXIT_ACCOUNT_FAILED and only_denied.accounts == [org["denied"]]
