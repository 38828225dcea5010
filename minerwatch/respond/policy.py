"""The least-privilege IAM policy of the response actions, derived from the calls they plan.

Nothing here lists permissions by hand: a representative incident (an instance with two network interfaces, a
volume, an instance profile, a launching access key; a quarantine group missing in one variant and carrying
stray rules in the other) is read through the same discovery code with canned answers, every action plans its
calls and checks on it with every approval given, and the rollback plans its calls. The IAM actions are those
calls' operations, plus the permissions AWS checks besides the operation itself (``ec2:CreateTags`` for a
call with ``TagSpecifications``, ``iam:PassRole`` to associate an instance profile).

``sts:GetCallerIdentity`` needs no permission and is left out; with ``--role-arn`` the calling principal also
needs ``sts:AssumeRole`` on that role, which belongs to the caller's policy, not this one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from minerwatch.respond.actions import ACTIONS, Context, PoolAddress, nacl_rollback_calls, rollback_calls
from minerwatch.respond.discover import CreatedUser, Inventory, KeyCandidate, QuarantineGroup, discover
from minerwatch.respond.evidence import location
from minerwatch.respond.plan import APPROVALS, ApiCall

_INSTANCE = "i-0123456789abcdef0"
_VPC = "vpc-0example"
_REGION = "us-east-1"
_ALERT = "mw-example"

# Canned answers for discovery: the shape of a compromised instance with everything the actions touch.
_CANNED: dict[str, dict[str, Any]] = {
    "DescribeInstances": {
        "Reservations": [
            {
                "Instances": [
                    {
                        "InstanceId": _INSTANCE,
                        "State": {"Name": "running"},
                        "VpcId": _VPC,
                        "SecurityGroups": [{"GroupId": "sg-0web"}],
                        "NetworkInterfaces": [
                            {
                                "NetworkInterfaceId": "eni-0primary",
                                "VpcId": _VPC,
                                "SubnetId": "subnet-0example",
                                "Groups": [{"GroupId": "sg-0web"}],
                                "Attachment": {"DeviceIndex": 0},
                            },
                            {
                                "NetworkInterfaceId": "eni-0second",
                                "VpcId": _VPC,
                                "Groups": [{"GroupId": "sg-0app"}],
                                "Attachment": {"DeviceIndex": 1},
                            },
                        ],
                        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeId": "vol-0root"}}],
                    }
                ]
            }
        ]
    },
    "DescribeInstanceAttribute": {"DisableApiTermination": {"Value": False}},
    "DescribeIamInstanceProfileAssociations": {
        "IamInstanceProfileAssociations": [
            {
                "AssociationId": "iip-assoc-0example",
                "State": "associated",
                "IamInstanceProfile": {"Arn": "arn:aws:iam::111122223333:instance-profile/app", "Id": "AIPAEXAMPLE"},
            }
        ]
    },
    "GetInstanceProfile": {"InstanceProfile": {"Roles": [{"RoleName": "app-role"}]}},
    "DescribeSecurityGroups": {"SecurityGroups": []},
    "DescribeVpcs": {"Vpcs": [{"VpcId": _VPC}]},
    "DescribeSnapshots": {"Snapshots": []},
    "DescribeNetworkAcls": {
        "NetworkAcls": [
            {
                "NetworkAclId": "acl-0example",
                "Associations": [{"SubnetId": "subnet-0example"}],
                "Entries": [
                    {"RuleNumber": 100, "RuleAction": "allow", "Egress": e, "Protocol": "-1", "CidrBlock": "0.0.0.0/0"}
                    for e in (True, False)
                ],
            }
        ]
    },
    "DescribeInstanceInformation": {
        "InstanceInformationList": [{"InstanceId": _INSTANCE, "PingStatus": "Online", "PlatformType": "Linux"}]
    },
    "GetAccessKeyLastUsed": {"UserName": "deployer"},
    "ListAccessKeys": {"AccessKeyMetadata": [{"AccessKeyId": "AKIAEXAMPLEKEY000001", "Status": "Active"}]},
    "GetLoginProfile": {"LoginProfile": {"UserName": "backdoor"}},
    "ListAttachedUserPolicies": {
        "AttachedPolicies": [
            {"PolicyName": "AdministratorAccess", "PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}
        ]
    },
}


class _Canned:
    def __init__(self) -> None:
        self.seen: list[ApiCall] = []

    def read(self, call: ApiCall) -> dict[str, Any]:
        self.seen.append(call)
        return _CANNED.get(call.operation, {})


def representative_calls(evidence_root: str = "evidence") -> list[ApiCall]:
    """Every call the plan, the steps and the rollback can make, on a representative incident."""
    reader = _Canned()
    keys = [KeyCandidate("AKIAEXAMPLEKEY000001", "launched the instance")]
    users = [CreatedUser("backdoor", "IAM user created by the launching principal")]
    inv: Inventory = discover(reader, _INSTANCE, _REGION, _ALERT, keys, users)
    calls = list(reader.seen)
    ctx = Context(
        alert={"alert_id": _ALERT},
        alert_id=_ALERT,
        incident_id=_ALERT,
        instance_id=_INSTANCE,
        region=_REGION,
        account_id=None,
        actor="policy",
        evidence=location(evidence_root, _ALERT),
        approvals=set(APPROVALS),
        keys=keys,
        tag_pending=True,
        pool_addresses=[PoolAddress("198.51.100.7", "the finding's mining_pool_ip")],
    )
    stray = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    with_group = Inventory(**{**inv.__dict__, "quarantine": {_VPC: QuarantineGroup("sg-0q", _VPC, [stray], [stray])}})
    for variant in (inv, with_group):
        for action in ACTIONS.values():
            calls += action.calls(variant, ctx) + action.checks(variant, ctx)
    detached = Inventory(**{**inv.__dict__, "profile": None, "instance_groups": ["sg-0q"]})
    profile = {"Arn": "arn:aws:iam::1:instance-profile/app"}
    reset = {"backdoor": {"keys": [{"AccessKeyId": "AKIAEXAMPLEKEY000002", "Status": "Active"}],
                          "policies": [{"PolicyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}]}}  # fmt: skip
    calls += rollback_calls(
        detached, {"eni-0primary": ["sg-0web"]}, profile, ["sg-0web"], {"app-role": None, "other-role": "{}"}, reset
    )
    entry = {"NetworkAclId": "acl-0example", "RuleNumber": 99, "Egress": True, "CidrBlock": "198.51.100.7/32"}
    current = {"acl-0example": [{**entry, "RuleAction": "deny"}]}
    calls.append(ApiCall("ec2", "DescribeNetworkAcls", {"NetworkAclIds": ["acl-0example"]}, _REGION))
    calls += nacl_rollback_calls([entry], current, _REGION)
    return calls


def _permissions(call: ApiCall) -> list[tuple[str, str, dict[str, Any] | None]]:
    """(IAM action, resource, condition) needed by one call."""
    service, op, p = call.service, call.operation, call.params
    out: list[tuple[str, str, dict[str, Any] | None]] = []
    if service == "s3":
        bucket = p.get("Bucket") or "*"
        out.append((f"s3:{op}", f"arn:aws:s3:::{bucket}/{_key_prefix(p.get('Key'))}*", None))
    elif service == "iam" and op in (
        "UpdateAccessKey",
        "ListAccessKeys",
        "GetAccessKeyLastUsed",
        "GetLoginProfile",
        "DeleteLoginProfile",
        "ListAttachedUserPolicies",
        "DetachUserPolicy",
        "AttachUserPolicy",
    ):
        out.append((f"iam:{op}", "arn:aws:iam::*:user/*", None))
    elif service == "iam" and op in ("PutRolePolicy", "DeleteRolePolicy", "GetRolePolicy"):
        out.append((f"iam:{op}", "arn:aws:iam::*:role/*", None))
    elif service == "iam" and op == "GetInstanceProfile":
        out.append((f"iam:{op}", "arn:aws:iam::*:instance-profile/*", None))
    elif service == "ssm" and op == "SendCommand":
        # Both the document and the instance are resources of SendCommand; AWS-owned documents have no account.
        out.append((f"ssm:{op}", f"arn:aws:ssm:*::document/{p['DocumentName']}", None))
        out.append((f"ssm:{op}", "arn:aws:ec2:*:*:instance/*", None))
    else:
        out.append((f"{service}:{op}", "*", None))
    if "TagSpecifications" in p:
        out.append(("ec2:CreateTags", "*", None))
    if op == "AssociateIamInstanceProfile":
        out.append(
            ("iam:PassRole", "arn:aws:iam::*:role/*", {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}})
        )
    return out


def _key_prefix(key: Any) -> str:
    # arn:aws:s3:::bucket/prefix/<alert>/file → scope to the prefix above the alert's folder.
    if not isinstance(key, str) or "/" not in key:
        return ""
    parts = key.split("/")
    return "/".join(parts[:-2]) + "/" if len(parts) > 2 else ""


def iam_policy(evidence_root: str = "evidence") -> dict[str, Any]:
    """The IAM policy document (version 2012-10-17) of the response actions."""
    grouped: dict[tuple[str, str], set[str]] = defaultdict(set)
    conditions: dict[tuple[str, str], dict[str, Any] | None] = {}
    for call in representative_calls(evidence_root):
        for action, resource, condition in _permissions(call):
            key = (resource, repr(condition))
            grouped[key].add(action)
            conditions[key] = condition
    statements = []
    for n, key in enumerate(sorted(grouped), 1):
        actions = sorted(grouped[key])
        stmt: dict[str, Any] = {
            "Sid": f"MinerWatchRespond{n}",
            "Effect": "Allow",
            "Action": actions,
            "Resource": key[0],
        }
        if conditions[key]:
            stmt["Condition"] = conditions[key]
        statements.append(stmt)
    return {"Version": "2012-10-17", "Statement": statements}


def policy_actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}
