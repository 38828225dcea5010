"""What the account looks like now, for one alert's instance: read before every plan and before every step, so
each step plans its calls from the current state (look before you create).

Only Describe/Get/List calls are made here. ``Reader`` is anything with ``read(ApiCall) -> dict``: the executor
(real AWS, audited when executing) or a stand-in answering from canned responses (``policy``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Protocol

from minerwatch.aws.session import AwsError
from minerwatch.respond.plan import ApiCall

QUARANTINE_TAG = "minerwatch:quarantine"
ALERT_TAG = "minerwatch:alert-id"
INCIDENT_TAG = "minerwatch:incident-id"
INSTANCE_TAG = "minerwatch:instance-id"

TEMPORARY_KEY_PREFIX = "ASIA"
"""Access key ids of temporary (STS) credentials: they cannot be deactivated, only their sessions revoked."""


class Reader(Protocol):
    def read(self, call: ApiCall) -> dict[str, Any]: ...


@dataclass
class Eni:
    id: str
    vpc_id: str | None
    groups: list[str]
    device_index: int | None = None


@dataclass
class QuarantineGroup:
    group_id: str
    vpc_id: str
    ingress: list[dict[str, Any]]
    egress: list[dict[str, Any]]


@dataclass
class KeyCandidate:
    """An access key of the launching principal, from the alert's enrichment."""

    access_key_id: str
    why: str
    principal_arn: str | None = None
    user_name: str | None = None
    status: str | None = None
    """``Active`` / ``Inactive`` once looked up in IAM; ``None`` when it could not be."""
    problem: str | None = None


@dataclass
class CreatedUser:
    """An IAM user the compromised principal created or gave credentials, from the enrichment, and what IAM holds
    for it now (read by :func:`discover`)."""

    user_name: str
    why: str
    keys: list[dict[str, Any]] = field(default_factory=list)
    """ListAccessKeys metadata: AccessKeyId, Status."""
    login_profile: dict[str, Any] | None = None
    policies: list[dict[str, Any]] = field(default_factory=list)
    """ListAttachedUserPolicies: PolicyName, PolicyArn."""
    problem: str | None = None


def user_reads(user_name: str) -> list[ApiCall]:
    """The reads that capture an IAM user's credentials and managed policies (evidence and verification)."""
    return [
        ApiCall("iam", "ListAccessKeys", {"UserName": user_name}),
        ApiCall("iam", "GetLoginProfile", {"UserName": user_name}),
        ApiCall("iam", "ListAttachedUserPolicies", {"UserName": user_name}),
    ]


@dataclass
class NetworkAcl:
    """A network ACL associated with one of the instance's subnets, as DescribeNetworkAcls returns it."""

    acl_id: str
    subnets: list[str]
    entries: list[dict[str, Any]]
    raw: dict[str, Any] = field(default_factory=dict)

    def direction(self, egress: bool) -> list[dict[str, Any]]:
        return [e for e in self.entries if bool(e.get("Egress")) == egress]


@dataclass
class Inventory:
    instance_id: str
    region: str
    alert_id: str
    found: bool = False
    state: str | None = None
    instance: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    enis: list[Eni] = field(default_factory=list)
    instance_groups: list[str] = field(default_factory=list)
    """The instance's own security groups (DescribeInstances ``SecurityGroups``)."""
    volumes: list[tuple[str, str]] = field(default_factory=list)
    """(volume id, device name) of every attached EBS volume."""
    profile: dict[str, Any] | None = None
    """The current instance profile association: AssociationId, Arn, Id."""
    termination_protected: bool = False
    quarantine: dict[str, QuarantineGroup] = field(default_factory=dict)
    vpc_ipv6: dict[str, bool] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Volume id → the snapshot already made for this alert (id, state)."""
    keys: list[KeyCandidate] = field(default_factory=list)
    key_notes: list[str] = field(default_factory=list)
    users: list[CreatedUser] = field(default_factory=list)
    subnets: list[str] = field(default_factory=list)
    """Subnets of the instance's network interfaces."""
    nacls: list[NetworkAcl] = field(default_factory=list)
    nacl_problem: str | None = None
    """Why the subnets' network ACLs could not be read."""
    ssm: dict[str, Any] | None = None
    """The instance's Systems Manager record (DescribeInstanceInformation), ``None`` when SSM does not list it."""
    ssm_problem: str | None = None
    """Why Systems Manager could not be asked (access denied, not available in the region ...)."""
    reads: list[ApiCall] = field(default_factory=list)

    @property
    def vpcs(self) -> list[str]:
        return sorted({e.vpc_id for e in self.enis if e.vpc_id})

    @property
    def running(self) -> bool:
        return self.state in ("pending", "running")

    @property
    def gone(self) -> bool:
        return self.state in ("shutting-down", "terminated")

    @property
    def instance_vpc(self) -> str | None:
        """The VPC of the instance's own security groups: that of its primary interface."""
        primary = next((e for e in self.enis if e.device_index == 0), None)
        return self.instance.get("VpcId") or (primary.vpc_id if primary else None)

    def group_ids(self) -> list[str]:
        return sorted({g for e in self.enis for g in e.groups})


def _read(reader: Reader, inv: Inventory, call: ApiCall) -> dict[str, Any]:
    inv.reads.append(call)
    return reader.read(call)


def describe_instance_call(instance_id: str, region: str) -> ApiCall:
    return ApiCall("ec2", "DescribeInstances", {"InstanceIds": [instance_id]}, region)


def quarantine_lookup_call(vpcs: list[str], region: str) -> ApiCall:
    return ApiCall(
        "ec2",
        "DescribeSecurityGroups",
        {"Filters": [{"Name": f"tag:{QUARANTINE_TAG}", "Values": vpcs}, {"Name": "vpc-id", "Values": vpcs}]},
        region,
    )


def snapshots_call(alert_id: str, region: str) -> ApiCall:
    return ApiCall(
        "ec2",
        "DescribeSnapshots",
        {"OwnerIds": ["self"], "Filters": [{"Name": f"tag:{ALERT_TAG}", "Values": [alert_id]}]},
        region,
    )


def profile_association_call(instance_id: str, region: str) -> ApiCall:
    return ApiCall(
        "ec2",
        "DescribeIamInstanceProfileAssociations",
        {"Filters": [{"Name": "instance-id", "Values": [instance_id]}]},
        region,
    )


def network_acls_call(subnets: list[str], region: str) -> ApiCall:
    return ApiCall(
        "ec2", "DescribeNetworkAcls", {"Filters": [{"Name": "association.subnet-id", "Values": subnets}]}, region
    )


def ssm_information_call(instance_id: str, region: str) -> ApiCall:
    return ApiCall(
        "ssm", "DescribeInstanceInformation", {"Filters": [{"Key": "InstanceIds", "Values": [instance_id]}]}, region
    )


def read_network_acls(reader: Reader, subnets: list[str], region: str) -> tuple[list[NetworkAcl], dict[str, Any]]:
    """The network ACLs associated with ``subnets`` (and the response as read, for evidence)."""
    resp = reader.read(network_acls_call(subnets, region))
    acls = []
    for acl in resp.get("NetworkAcls") or []:
        mine = sorted({a["SubnetId"] for a in acl.get("Associations") or [] if a.get("SubnetId") in subnets})
        if mine and acl.get("NetworkAclId"):
            acls.append(NetworkAcl(acl["NetworkAclId"], mine, list(acl.get("Entries") or []), acl))
    return sorted(acls, key=lambda a: a.acl_id), resp


def discover(
    reader: Reader,
    instance_id: str,
    region: str,
    alert_id: str,
    keys: list[KeyCandidate] | None = None,
    users: list[CreatedUser] | None = None,
    ssm: bool = True,
) -> Inventory:
    """Read the instance and everything the response touches. A missing instance gives ``found=False``.
    ``ssm=False`` leaves Systems Manager unasked (only the plan and live-forensics need it)."""
    inv = Inventory(instance_id=instance_id, region=region, alert_id=alert_id)
    try:
        resp = _read(reader, inv, describe_instance_call(instance_id, region))
    except AwsError as exc:
        if exc.code in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            return inv
        raise
    instances = [i for r in resp.get("Reservations", []) for i in r.get("Instances", [])]
    inst = next((i for i in instances if i.get("InstanceId") == instance_id), None)
    if inst is None:
        return inv
    inv.found = True
    inv.instance = inst
    inv.state = (inst.get("State") or {}).get("Name")
    inv.tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags") or [] if "Key" in t}
    inv.instance_groups = [g["GroupId"] for g in inst.get("SecurityGroups") or [] if "GroupId" in g]
    for nic in inst.get("NetworkInterfaces") or []:
        inv.enis.append(
            Eni(
                id=nic["NetworkInterfaceId"],
                vpc_id=nic.get("VpcId") or inst.get("VpcId"),
                groups=[g["GroupId"] for g in nic.get("Groups") or []],
                device_index=(nic.get("Attachment") or {}).get("DeviceIndex"),
            )
        )
        if nic.get("SubnetId") and nic["SubnetId"] not in inv.subnets:
            inv.subnets.append(nic["SubnetId"])
    if inst.get("SubnetId") and inst["SubnetId"] not in inv.subnets:
        inv.subnets.append(inst["SubnetId"])
    inv.subnets.sort()
    inv.enis.sort(key=lambda e: (e.device_index if e.device_index is not None else 99, e.id))
    for bdm in inst.get("BlockDeviceMappings") or []:
        ebs = bdm.get("Ebs") or {}
        if ebs.get("VolumeId"):
            inv.volumes.append((ebs["VolumeId"], bdm.get("DeviceName") or ""))
    if inv.gone:
        return inv

    attr = _read(
        reader,
        inv,
        ApiCall(
            "ec2",
            "DescribeInstanceAttribute",
            {"InstanceId": instance_id, "Attribute": "disableApiTermination"},
            region,
        ),
    )
    inv.termination_protected = bool((attr.get("DisableApiTermination") or {}).get("Value"))

    assoc = _read(reader, inv, profile_association_call(instance_id, region))
    for a in assoc.get("IamInstanceProfileAssociations") or []:
        if a.get("State") in ("associated", "associating"):
            prof = a.get("IamInstanceProfile") or {}
            inv.profile = {"AssociationId": a.get("AssociationId"), "Arn": prof.get("Arn"), "Id": prof.get("Id")}
    if inv.profile and str(inv.profile.get("Arn") or "").count("/"):
        # The role behind the profile: its active sessions outlive a detach (revoke-sessions needs its name).
        name = str(inv.profile["Arn"]).rsplit("/", 1)[-1]
        try:
            prof = _read(reader, inv, ApiCall("iam", "GetInstanceProfile", {"InstanceProfileName": name}))
            inv.profile["Roles"] = [r["RoleName"] for r in (prof.get("InstanceProfile") or {}).get("Roles") or []]
        except AwsError as exc:
            inv.profile["RolesError"] = exc.message

    if inv.vpcs:
        groups = _read(reader, inv, quarantine_lookup_call(inv.vpcs, region))
        for g in groups.get("SecurityGroups") or []:
            tags = {t["Key"]: t.get("Value") for t in g.get("Tags") or []}
            vpc = tags.get(QUARANTINE_TAG)
            if vpc and vpc == g.get("VpcId") and vpc not in inv.quarantine:
                inv.quarantine[vpc] = QuarantineGroup(
                    g["GroupId"], vpc, g.get("IpPermissions") or [], g.get("IpPermissionsEgress") or []
                )
        missing = [v for v in inv.vpcs if v not in inv.quarantine]
        if missing:
            vpcs = _read(reader, inv, ApiCall("ec2", "DescribeVpcs", {"VpcIds": missing}, region))
            for v in vpcs.get("Vpcs") or []:
                inv.vpc_ipv6[v["VpcId"]] = bool(v.get("Ipv6CidrBlockAssociationSet"))

    if inv.subnets:
        try:
            inv.reads.append(network_acls_call(inv.subnets, region))
            inv.nacls, _ = read_network_acls(reader, inv.subnets, region)
        except AwsError as exc:
            inv.nacl_problem = f"cannot read the subnets' network ACLs: {exc.message}"
    try:
        info = _read(reader, inv, ssm_information_call(instance_id, region)) if ssm else {}
        inv.ssm = next(
            (i for i in info.get("InstanceInformationList") or [] if i.get("InstanceId") == instance_id), None
        )
    except AwsError as exc:
        inv.ssm_problem = f"Systems Manager cannot be asked: {exc.message[:200]}"  # a 5xx may carry a whole page

    snaps = _read(reader, inv, snapshots_call(alert_id, region))
    for s in sorted(snaps.get("Snapshots") or [], key=lambda s: str(s.get("StartTime") or "")):
        if s.get("VolumeId") and s.get("State") != "error":
            inv.snapshots.setdefault(s["VolumeId"], {"SnapshotId": s["SnapshotId"], "State": s.get("State")})

    for k in keys or []:
        inv.keys.append(_look_up_key(reader, inv, k))
    for u in users or []:
        inv.users.append(_look_up_user(reader, inv, u))
    return inv


def _look_up_user(reader: Reader, inv: Inventory, user: CreatedUser) -> CreatedUser:
    u = CreatedUser(user.user_name, user.why)
    keys, profile, policies = user_reads(u.user_name)
    try:
        u.keys = [
            {"AccessKeyId": m["AccessKeyId"], "Status": m.get("Status")}
            for m in _read(reader, inv, keys).get("AccessKeyMetadata") or []
            if m.get("AccessKeyId")
        ]
        u.policies = [
            {"PolicyName": p.get("PolicyName"), "PolicyArn": p["PolicyArn"]}
            for p in _read(reader, inv, policies).get("AttachedPolicies") or []
            if p.get("PolicyArn")
        ]
        try:
            found = _read(reader, inv, profile).get("LoginProfile") or {}
            u.login_profile = {k: found.get(k) for k in ("UserName", "CreateDate", "PasswordResetRequired")}
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
    except AwsError as exc:
        u.problem = f"cannot read IAM user {u.user_name}: {exc.message}"
    return u


def _look_up_key(reader: Reader, inv: Inventory, key: KeyCandidate) -> KeyCandidate:
    k = KeyCandidate(key.access_key_id, key.why, key.principal_arn, key.user_name)
    if k.access_key_id.startswith(TEMPORARY_KEY_PREFIX):
        k.problem = "temporary credentials: they expire on their own; revoke the role's active sessions instead"
        return k
    try:
        if not k.user_name:
            last = _read(reader, inv, ApiCall("iam", "GetAccessKeyLastUsed", {"AccessKeyId": k.access_key_id}))
            k.user_name = last.get("UserName")
        if not k.user_name:
            k.problem = "IAM does not name the key's user"
            return k
        listed = _read(reader, inv, ApiCall("iam", "ListAccessKeys", {"UserName": k.user_name}))
    except AwsError as exc:
        k.problem = f"cannot look the key up in IAM: {exc.message}"
        return k
    for meta in listed.get("AccessKeyMetadata") or []:
        if meta.get("AccessKeyId") == k.access_key_id:
            k.status = meta.get("Status")
    if k.status is None:
        k.problem = f"not an access key of IAM user {k.user_name} in this account"
    return k


def decode_b64(value: str | None) -> bytes:
    if not value:
        return b""
    try:
        return base64.b64decode(value, validate=False)
    except (ValueError, TypeError):
        return b""
