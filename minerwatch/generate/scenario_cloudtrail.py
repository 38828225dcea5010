"""CloudTrail records for the compromise scenario, in the shape CloudTrail delivers them to S3.

Each record has the fields of a management event as CloudTrail writes it (``eventVersion``, ``userIdentity``,
``eventTime``, ``eventSource``, ``eventName``, ``awsRegion``, ``sourceIPAddress``, ``userAgent``,
``requestParameters``, ``responseElements``, ``requestID``, ``eventID``, ``readOnly``, ``eventType``,
``managementEvent``, ``recipientAccountId``, ``eventCategory``, ``tlsDetails``). Read-only calls carry
``responseElements: null`` as CloudTrail logs them; sensitive values read ``<sensitiveDataRemoved>`` or
``HIDDEN_DUE_TO_SECURITY_REASONS`` as in real records. Files are
``AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<16 chars>.json.gz``
holding ``{"Records": [...]}``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from minerwatch.generate.fleet import hexstr, new_uuid, upper_alnum
from minerwatch.generate.scenario_world import (
    AZ_IDS,
    CI_IPS,
    OFFICE_IPS,
    SSM_PROFILE,
    SSM_ROLE,
    VCPUS,
    Host,
    Identity,
    World,
    digest,
    epoch,
    iso,
)

EVENT_VERSION = "1.09"
GLOBAL_REGION = "us-east-1"  # IAM, global STS and console sign-in events are logged here

CI_USER_AGENT = "aws-cli/2.15.30 Python/3.11.8 Linux/6.5.0-1025-azure exe/x86_64.ubuntu.22 prompt/off command/{cmd}"
CONSOLE_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36"
)
SSM_AGENT_UA = "aws-sdk-go/1.44.260 (go1.22.5; linux; amd64) amazon-ssm-agent/3.3.987.0"
BOTO_UA = (
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.79 md/arch#x86_64 lang/python#3.11.6 cfg/retry-mode#legacy"
)


def _host(source: str, region: str) -> str:
    svc = source.split(".")[0]
    if svc in ("iam", "sts") and region == GLOBAL_REGION:
        return f"{svc}.amazonaws.com"
    return f"{svc}.{region}.amazonaws.com"


def identity_json(
    ident: Identity, *, created: datetime | None = None, mfa: bool = False, ec2_delivery: str | None = None
) -> dict[str, Any]:
    """``userIdentity``: a long-term key has no session context; a role session (or a console session of a
    user, ``created`` given) names its issuer, creation time and MFA."""
    out: dict[str, Any] = {
        "type": ident.kind,
        "principalId": ident.principal_id,
        "arn": ident.arn,
        "accountId": ident.account_id,
        "accessKeyId": ident.access_key_id,
    }
    if ident.kind == "IAMUser":
        out["userName"] = ident.name
        if created is not None:
            out["sessionContext"] = {
                "sessionIssuer": {},
                "webIdFederationData": {},
                "attributes": {"creationDate": iso(created), "mfaAuthenticated": "true" if mfa else "false"},
            }
        return out
    if created is None:
        raise ValueError("a role session needs its creation time")
    ctx: dict[str, Any] = {
        "sessionIssuer": {
            "type": "Role",
            "principalId": ident.role_id,
            "arn": f"arn:aws:iam::{ident.account_id}:role/{ident.name}",
            "accountId": ident.account_id,
            "userName": ident.name,
        },
        "webIdFederationData": {},
        "attributes": {"creationDate": iso(created), "mfaAuthenticated": "false"},
    }
    if ec2_delivery:
        ctx["ec2RoleDelivery"] = ec2_delivery
    out["sessionContext"] = ctx
    return out


@dataclass(slots=True)
class Trail:
    """Collects CloudTrail records; ``call`` returns the new event's id."""

    account_id: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def call(
        self,
        rng: random.Random,
        who: dict[str, Any],
        t: datetime,
        source: str,
        name: str,
        region: str,
        ip: str,
        ua: str,
        req: dict[str, Any] | None,
        resp: dict[str, Any] | None = None,
        *,
        read_only: bool = False,
        error: tuple[str, str] | None = None,
        event_type: str = "AwsApiCall",
        extra: dict[str, Any] | None = None,
        tls: bool = True,
    ) -> str:
        rec: dict[str, Any] = {
            "eventVersion": EVENT_VERSION,
            "userIdentity": who,
            "eventTime": iso(t),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": ua,
        }
        if error:
            rec["errorCode"], rec["errorMessage"] = error
        rec["requestParameters"] = req
        rec["responseElements"] = resp
        if extra:
            rec.update(extra)
        event_id = new_uuid(rng)
        rec["requestID"] = new_uuid(rng)
        if isinstance(resp, dict) and resp.get("requestId") == "":
            resp["requestId"] = rec["requestID"]  # EC2 echoes the request id in its response
        rec["eventID"] = event_id
        rec["readOnly"] = read_only
        rec["eventType"] = event_type
        rec["managementEvent"] = True
        rec["recipientAccountId"] = self.account_id
        rec["eventCategory"] = "Management"
        if tls:
            rec["tlsDetails"] = {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": _host(source, region),
            }
        self.records.append(rec)
        return event_id

    def console_login(self, rng: random.Random, ident: Identity, t: datetime, ip: str, ua: str, *, mfa: bool) -> str:
        who = {
            "type": "IAMUser",
            "principalId": ident.principal_id,
            "arn": ident.arn,
            "accountId": ident.account_id,
            "userName": ident.name,
        }
        extra: dict[str, Any] = {
            "additionalEventData": {
                "LoginTo": f"https://console.aws.amazon.com/console/home?region={GLOBAL_REGION}",
                "MobileVersion": "No",
                "MFAUsed": "Yes" if mfa else "No",
            }
        }
        if mfa:
            extra["additionalEventData"]["MFAIdentifier"] = f"arn:aws:iam::{ident.account_id}:mfa/{ident.name}"
        return self.call(
            rng,
            who,
            t,
            "signin.amazonaws.com",
            "ConsoleLogin",
            GLOBAL_REGION,
            ip,
            ua,
            None,
            {"ConsoleLogin": "Success"},
            event_type="AwsConsoleSignIn",
            extra=extra,
            tls=False,
        )


@dataclass(frozen=True, slots=True)
class Launch:
    """What a RunInstances call asks for."""

    region: str
    image_id: str
    instance_type: str
    count: int
    subnet_id: str
    security_group: str
    public_ip: bool
    http_tokens: str
    user_data: bool
    key_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def of(hosts: list[Host], tags: tuple[tuple[str, str], ...] = ()) -> Launch:
        h = hosts[0]
        return Launch(
            h.region,
            h.inst.image_id,
            h.inst.instance_type,
            len(hosts),
            h.inst.subnet_id,
            h.inst.security_groups[0][1],
            h.inst.public_ip is not None,
            h.http_tokens,
            h.user_data,
            h.key_name,
            tags,
        )


def run_instances(
    trail: Trail,
    rng: random.Random,
    who: dict[str, Any],
    t: datetime,
    ip: str,
    ua: str,
    spec: Launch,
    hosts: list[Host],
    *,
    error: tuple[str, str] | None = None,
) -> str:
    """A RunInstances call for ``spec``; it launched ``hosts`` (one reservation), or none with ``error``."""
    item: dict[str, Any] = {"imageId": spec.image_id, "minCount": spec.count, "maxCount": spec.count}
    if spec.key_name:
        item["keyName"] = spec.key_name
    req: dict[str, Any] = {
        "instancesSet": {"items": [item]},
        "instanceType": spec.instance_type,
        "blockDeviceMapping": {},
        "monitoring": {"enabled": False},
        "disableApiTermination": False,
        "disableApiStop": False,
        "clientToken": new_uuid(rng),
    }
    if spec.user_data:
        req["userData"] = "<sensitiveDataRemoved>"
    req["networkInterfaceSet"] = {
        "items": [
            {
                "deviceIndex": 0,
                "subnetId": spec.subnet_id,
                "associatePublicIpAddress": spec.public_ip,
                "groupSet": {"items": [{"groupId": spec.security_group}]},
            }
        ]
    }
    req["iamInstanceProfile"] = {"name": SSM_PROFILE}
    req["metadataOptions"] = {"httpTokens": spec.http_tokens, "httpEndpoint": "enabled"}
    if spec.tags:
        req["tagSpecificationSet"] = {
            "items": [{"resourceType": "instance", "tags": [{"key": k, "value": v} for k, v in spec.tags]}]
        }
    resp: dict[str, Any] | None = None
    if not error:
        items = [_instance_item(rng, h, i, spec.tags, req["clientToken"]) for i, h in enumerate(hosts)]
        resp = {
            "requestId": "",
            "reservationId": "r-0" + hexstr(rng, 16),
            "ownerId": trail.account_id,
            "groupSet": {},
            "instancesSet": {"items": items},
        }
    return trail.call(rng, who, t, "ec2.amazonaws.com", "RunInstances", spec.region, ip, ua, req, resp, error=error)


def _instance_item(
    rng: random.Random, h: Host, index: int, tags: tuple[tuple[str, str], ...], token: str
) -> dict[str, Any]:
    i = h.inst
    ms = epoch(h.launched) * 1000
    sg = [{"groupId": i.security_groups[0][1], "groupName": i.security_groups[0][0]}]
    mac = ":".join(["0e"] + [hexstr(rng, 2) for _ in range(5)])
    eni = {
        "networkInterfaceId": i.eni_id,
        "subnetId": i.subnet_id,
        "vpcId": i.vpc_id,
        "ownerId": i.account.account_id,
        "status": "in-use",
        "macAddress": mac,
        "privateIpAddress": i.private_ip,
        "privateDnsName": i.private_dns(),
        "sourceDestCheck": True,
        "interfaceType": "interface",
        "groupSet": {"items": sg},
        "attachment": {
            "attachmentId": "eni-attach-0" + hexstr(rng, 16),
            "deviceIndex": 0,
            "networkCardIndex": 0,
            "status": "attaching",
            "attachTime": ms,
            "deleteOnTermination": True,
        },
        "privateIpAddressesSet": {
            "item": [{"privateIpAddress": i.private_ip, "privateDnsName": i.private_dns(), "primary": True}]
        },
        "ipv6AddressesSet": {},
        "tagSet": {},
    }
    item: dict[str, Any] = {
        "instanceId": i.instance_id,
        "imageId": i.image_id,
        "instanceState": {"code": 0, "name": "pending"},
        "privateDnsName": i.private_dns(),
        "amiLaunchIndex": index,
        "productCodes": {},
        "instanceType": i.instance_type,
        "launchTime": ms,
        "placement": {"availabilityZone": i.az, "tenancy": "default"},
        "monitoring": {"state": "disabled"},
        "subnetId": i.subnet_id,
        "vpcId": i.vpc_id,
        "privateIpAddress": i.private_ip,
        "stateReason": {"code": "pending", "message": "pending"},
        "architecture": "x86_64",
        "rootDeviceType": "ebs",
        "rootDeviceName": "/dev/sda1" if "Ubuntu" in i.image_description else "/dev/xvda",
        "blockDeviceMapping": {},
        "virtualizationType": "hvm",
        "clientToken": token,
        "groupSet": {"items": sg},
        "sourceDestCheck": True,
        "hypervisor": "xen",
        "networkInterfaceSet": {"items": [eni]},
        "iamInstanceProfile": {
            "arn": f"arn:aws:iam::{i.account.account_id}:instance-profile/{i.profile_name}",
            "id": i.profile_id,
        },
        "ebsOptimized": False,
        "enaSupport": True,
        "cpuOptions": {"coreCount": VCPUS.get(i.instance_type, 2) // 2, "threadsPerCore": 2},
        "capacityReservationSpecification": {"capacityReservationPreference": "open"},
        "enclaveOptions": {"enabled": False},
        "metadataOptions": {
            "state": "pending",
            "httpTokens": h.http_tokens,
            "httpPutResponseHopLimit": 1 if h.http_tokens == "optional" else 2,
            "httpEndpoint": "enabled",
            "httpProtocolIpv4": "enabled",
            "httpProtocolIpv6": "disabled",
            "instanceMetadataTags": "disabled",
        },
        "maintenanceOptions": {"autoRecovery": "default"},
        "currentInstanceBootMode": "legacy-bios",
    }
    if h.key_name:
        item["keyName"] = h.key_name
    if tags:
        item["tagSet"] = {"items": [{"key": k, "value": v} for k, v in tags]}
    return item


def assume_role_for_instance(trail: Trail, rng: random.Random, h: Host, t: datetime) -> str:
    """EC2 fetching the instance profile's credentials: an AWS service call on the account's behalf."""
    acct = trail.account_id
    who = {"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}
    req = {"roleArn": f"arn:aws:iam::{acct}:role/{SSM_ROLE}", "roleSessionName": h.instance_id}
    resp = {
        "credentials": {
            "accessKeyId": "ASIA" + upper_alnum(rng, 16),
            "sessionToken": "IQoJb3JpZ2luX2VjE" + upper_alnum(rng, 40),
            "expiration": (t + timedelta(hours=6)).strftime("%b %d, %Y, %I:%M:%S %p"),
        },
    }
    extra = {"resources": [{"accountId": acct, "type": "AWS::IAM::Role", "ARN": req["roleArn"]}]}
    return trail.call(
        rng,
        who,
        t,
        "sts.amazonaws.com",
        "AssumeRole",
        h.region,
        "ec2.amazonaws.com",
        "ec2.amazonaws.com",
        req,
        resp,
        read_only=True,
        extra=extra,
        tls=False,
    )


def instance_role_activity(
    trail: Trail, rng: random.Random, h: Host, role: Identity, t0: datetime, t1: datetime
) -> None:
    """What the SSM agent and the application do with the instance role: the agent reports in about every
    hour here (the real agent does it more often), the application reads a secret and decrypts with KMS."""
    delivery = "1.0" if h.http_tokens == "optional" else "2.0"
    who = identity_json(role, created=t0, ec2_delivery=delivery)
    t = t0 + timedelta(seconds=rng.uniform(40, 120))
    while t < t1:
        if h.running(t, t + timedelta(seconds=1)) > 0:
            req = {
                "instanceId": h.instance_id,
                "agentVersion": "3.3.987.0",
                "agentStatus": "Active",
                "platformType": "Linux",
                "platformName": "Ubuntu" if "Ubuntu" in h.inst.image_description else "Amazon Linux",
                "platformVersion": "22.04" if "Ubuntu" in h.inst.image_description else "2023",
                "ipAddress": h.inst.private_ip,
                "computerName": h.inst.private_dns(),
                "agentName": "amazon-ssm-agent",
                "availabilityZone": h.inst.az,
                "availabilityZoneId": AZ_IDS[h.inst.az],
            }
            trail.call(
                rng, who, t, "ssm.amazonaws.com", "UpdateInstanceInformation", h.region, h.egress_ip, SSM_AGENT_UA, req
            )
            if not h.compromised and rng.random() < 0.5:
                arn = f"arn:aws:secretsmanager:{h.region}:{trail.account_id}:secret:prod/app/db-" + hexstr(rng, 6)
                trail.call(
                    rng,
                    who,
                    t + timedelta(seconds=rng.uniform(1, 30)),
                    "secretsmanager.amazonaws.com",
                    "GetSecretValue",
                    h.region,
                    h.egress_ip,
                    BOTO_UA,
                    {"secretId": arn},
                    read_only=True,
                )
                trail.call(
                    rng,
                    who,
                    t + timedelta(seconds=rng.uniform(30, 60)),
                    "kms.amazonaws.com",
                    "Decrypt",
                    h.region,
                    h.egress_ip,
                    BOTO_UA,
                    {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"},
                    read_only=True,
                )
        t += timedelta(minutes=rng.uniform(45, 75))


# -- legitimate callers -----------------------------------------------------------------------------------
Call = tuple[str, str, bool, Callable[[random.Random, World], dict[str, Any] | None]]

CONSOLE_CALLS: tuple[Call, ...] = (
    (
        "ec2.amazonaws.com",
        "DescribeInstances",
        True,
        lambda r, w: {"instancesSet": {}, "filterSet": {}, "maxResults": 50},
    ),
    (
        "ec2.amazonaws.com",
        "DescribeSecurityGroups",
        True,
        lambda r, w: {"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}},
    ),
    ("monitoring.amazonaws.com", "DescribeAlarms", True, lambda r, w: {"maxRecords": 100}),
    ("s3.amazonaws.com", "ListBuckets", True, lambda r, w: {"Host": "s3.amazonaws.com"}),
    ("cloudtrail.amazonaws.com", "LookupEvents", True, lambda r, w: {"maxResults": 50}),
    ("ssm.amazonaws.com", "DescribeInstanceInformation", True, lambda r, w: {"maxResults": 50}),
    ("iam.amazonaws.com", "ListRoles", True, lambda r, w: None),
)
CI_CALLS: tuple[Call, ...] = (
    ("sts.amazonaws.com", "GetCallerIdentity", True, lambda r, w: None),
    ("ecr.amazonaws.com", "GetAuthorizationToken", True, lambda r, w: {"registryIds": [w.account.account_id]}),
    (
        "ecs.amazonaws.com",
        "DescribeServices",
        True,
        lambda r, w: {"cluster": "prod", "services": ["api", "web"], "include": []},
    ),
    (
        "ecs.amazonaws.com",
        "UpdateService",
        False,
        lambda r, w: {"cluster": "prod", "service": r.choice(("api", "web")), "forceNewDeployment": True},
    ),
)
DEPLOY_CALLS: tuple[Call, ...] = (
    (
        "ec2.amazonaws.com",
        "DescribeInstances",
        True,
        lambda r, w: {
            "instancesSet": {},
            "filterSet": {"items": [{"name": "tag:Environment", "valueSet": {"items": [{"value": "prod"}]}}]},
        },
    ),
    (
        "ec2.amazonaws.com",
        "DescribeImages",
        True,
        lambda r, w: {
            "executableBySet": {},
            "imagesSet": {},
            "ownersSet": {"items": [{"owner": "amazon"}]},
            "filterSet": {},
        },
    ),
    ("autoscaling.amazonaws.com", "DescribeAutoScalingGroups", True, lambda r, w: {"maxRecords": 100}),
    ("cloudformation.amazonaws.com", "DescribeStacks", True, lambda r, w: {"stackName": "prod-network"}),
)


def _cmd(name: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def ci_baseline(trail: Trail, rng: random.Random, world: World, ci: Identity) -> None:
    """The CI user's own, legitimate use of its key: pipeline runs from the CI provider's runners."""
    who = identity_json(ci)
    t = world.start + timedelta(minutes=rng.uniform(5, 40))
    while t < world.end:
        ip = rng.choice(CI_IPS)
        for source, name, ro, req in CI_CALLS:
            if name == "UpdateService" and rng.random() < 0.5:
                continue
            svc = source.split(".")[0]
            ua = CI_USER_AGENT.format(cmd=f"{svc}.{_cmd(name)}")
            region = GLOBAL_REGION if svc == "sts" else rng.choice(world.account.regions)
            trail.call(rng, who, t, source, name, region, ip, ua, req(rng, world), read_only=ro)
            t += timedelta(seconds=rng.uniform(2, 20))
        t += timedelta(minutes=rng.uniform(35, 110))


def console_sessions(trail: Trail, rng: random.Random, world: World, users: list[Identity], per_user: int) -> None:
    """Engineers signing in with MFA from the office and looking around the console."""
    for u in users:
        login = world.start + timedelta(minutes=rng.uniform(30, 9 * 60))
        ip = rng.choice(OFFICE_IPS)
        trail.console_login(rng, u, login, ip, CONSOLE_USER_AGENT, mfa=True)
        session = Identity(u.kind, u.name, u.principal_id, "ASIA" + upper_alnum(rng, 16), u.account_id)
        who = identity_json(session, created=login, mfa=True)
        t = login
        for _ in range(per_user):
            t += timedelta(seconds=rng.uniform(5, 600))
            if t >= world.end:
                break
            source, name, ro, req = rng.choice(CONSOLE_CALLS)
            region = GLOBAL_REGION if source.startswith("iam") else rng.choice(world.account.regions)
            error = None
            if name == "ListRoles" and rng.random() < 0.3:
                error = ("AccessDenied", f"User: {u.arn} is not authorized to perform: iam:ListRoles")
            trail.call(
                rng,
                who,
                t,
                source,
                name,
                region,
                ip,
                "AWS Internal",
                req(rng, world),
                read_only=ro,
                error=error,
                extra={"sessionCredentialFromConsole": "true"},
            )


def deploy_activity(
    trail: Trail, rng: random.Random, world: World, deploy: Identity, ip: str, t: datetime, n: int
) -> None:
    who = identity_json(deploy, created=t - timedelta(minutes=1))
    for _ in range(n):
        source, name, ro, req = rng.choice(DEPLOY_CALLS)
        svc = source.split(".")[0]
        ua = CI_USER_AGENT.format(cmd=f"{svc}.{_cmd(name)}")
        trail.call(rng, who, t, source, name, rng.choice(world.account.regions), ip, ua, req(rng, world), read_only=ro)
        t += timedelta(seconds=rng.uniform(1, 15))


def create_tags(
    trail: Trail,
    rng: random.Random,
    who: dict[str, Any],
    t: datetime,
    ip: str,
    ua: str,
    h: Host,
    tags: tuple[tuple[str, str], ...],
) -> str:
    req = {
        "resourcesSet": {"items": [{"resourceId": h.instance_id}]},
        "tagSet": {"items": [{"key": k, "value": v} for k, v in tags]},
    }
    return trail.call(
        rng,
        who,
        t,
        "ec2.amazonaws.com",
        "CreateTags",
        h.region,
        ip,
        ua,
        req,
        {"requestId": "", "_return": True},
    )


# -- files ------------------------------------------------------------------------------------------------
def _key_suffix(data: bytes) -> str:
    # CloudTrail names end in a 16-character token; derived from the content so it is stable.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    n = int(digest(data, 24), 16)
    out = []
    for _ in range(16):
        n, k = divmod(n, len(alphabet))
        out.append(alphabet[k])
    return "".join(out)


def cloudtrail_files(account_id: str, records: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(relative path, records) per region and hour of event time; the name's time is the delivery time,
    a few minutes after the hour's last event."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r["eventTime"], r["eventID"])):
        groups[(r["awsRegion"], r["eventTime"][:13])].append(r)
    out: list[tuple[str, list[dict[str, Any]]]] = []
    for (region, _hour), recs in sorted(groups.items()):
        last = datetime.strptime(recs[-1]["eventTime"], "%Y-%m-%dT%H:%M:%S%z")
        stamp = (last + timedelta(minutes=5)).replace(second=0)
        stamp -= timedelta(minutes=stamp.minute % 5)
        data = orjson.dumps({"Records": recs})
        name = f"{account_id}_CloudTrail_{region}_{stamp:%Y%m%dT%H%MZ}_{_key_suffix(data)}.json.gz"
        out.append((f"AWSLogs/{account_id}/CloudTrail/{region}/{stamp:%Y/%m/%d}/{name}", recs))
    return out
