"""A coherent crypto-mining compromise in real AWS log formats, amid benign noise, with its ground truth.

The story (one account, ``us-east-1`` and ``eu-west-1``): the long-term access key of the CI user
``ci-deployer`` leaks. From a foreign address with an unusual user agent the attacker calls
GetCallerIdentity and DescribeRegions, looks at instances, security groups and subnets, creates a key pair
and opens SSH to the world in both regions, fails to launch ``p3.16xlarge`` for want of vCPU quota, then
launches three ``p3.8xlarge`` in ``us-east-1`` and two ``g4dn.12xlarge`` in ``eu-west-1`` with user data and
``HttpTokens: optional``. For persistence it creates an administrator user with a console password and an
access key, signs in to the console without MFA, and with the new key stops an instance, changes its user
data and starts it again, runs an SSM command on the ``eu-west-1`` instances and images one instance.
The instances download a miner, try a pool on a port the network ACL refuses, then hold Stratum connections
to their pool for hours: flow logs, Resolver queries for the pool's name, CPU at 95-100 %, GuardDuty
``CryptoCurrency:EC2/BitcoinTool.B!DNS`` and ``BitcoinTool.B`` findings re-sent while it lasts, port probes on
the opened SSH port, and IAM findings about the leaked key.

The noise (scaled by ``noise``): engineers in the console with MFA, the CI user's own pipeline runs (the
leaked key is in legitimate use all day too), a deploy role launching ``t3``/``m5`` instances with
``HttpTokens: required``, instance roles and the SSM agent, ordinary flows and DNS (AWS endpoints, GitHub,
PyPI, a public resolver, scanners refused) and decoy names such as ``notnanopool.org``.

``write_scenario(out, seed, noise)`` writes::

    OUT/cloudtrail/AWSLogs/<acct>/CloudTrail/<region>/YYYY/MM/DD/*.json.gz
    OUT/vpcflow/AWSLogs/<acct>/vpcflowlogs/<region>/YYYY/MM/DD/*.log.gz       (v5 custom / v2 default)
    OUT/route53/AWSLogs/<acct>/vpcdnsquerylogs/<vpc-id>/YYYY/MM/DD/*.log.gz
    OUT/metrics/cpu.jsonl
    OUT/guardduty/AWSLogs/<acct>/GuardDuty/<region>/YYYY/MM/DD/*.jsonl.gz
    OUT/manifest.json                                                          (the ground truth)

The same seed and noise give the same bytes; the story's records do not depend on ``noise``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from minerwatch.generate.finding_types import MINING_POOLS
from minerwatch.generate.fleet import hexstr, public_ip, upper_alnum
from minerwatch.generate.scenario_cloudtrail import (
    CI_USER_AGENT,
    Launch,
    Trail,
    assume_role_for_instance,
    ci_baseline,
    cloudtrail_files,
    console_sessions,
    create_tags,
    deploy_activity,
    identity_json,
    instance_role_activity,
    run_instances,
)
from minerwatch.generate.scenario_guardduty import (
    DISCOVERY,
    MALICIOUS_CALLER,
    api_finding,
    crypto_findings,
    guardduty_files,
    probe_finding,
    ssh_brute_force,
    summarise,
)
from minerwatch.generate.scenario_telemetry import (
    clean_flows,
    clean_queries,
    cpu_datapoints,
    dns_files,
    flow_files,
    host_rng,
    miner_flows,
    miner_queries,
)
from minerwatch.generate.scenario_world import (
    AMAZON_LINUX,
    CI_IPS,
    DECOY_DOMAINS,
    FLOW_FORMATS,
    OFFICE_IPS,
    SSM_ROLE,
    UBUNTU,
    Host,
    Identity,
    Mining,
    Segment,
    World,
    build_world,
    iso,
    new_instance,
    role_session,
    user_identity,
)
from minerwatch.generate.shapes import _gzip_bytes

MAX_NOISE = 50.0
STRATUM_PORTS: tuple[int, ...] = (3333, 4444, 14444)
ATTACKER_USER_AGENTS: tuple[str, ...] = (
    "aws-cli/1.18.69 Python/3.8.10 Linux/5.15.0-kali3-amd64 botocore/1.17.59",
    "Boto3/1.17.62 Python/3.9.2 Linux/5.10.0-kali7-amd64 Botocore/1.20.62",
    "aws-cli/1.16.312 Python/2.7.18 Windows/10 botocore/1.13.48",
)
ATTACKER_BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"
BACKDOOR_USERS: tuple[str, ...] = ("backup-svc", "support-ops", "aws-health-monitor", "devops-automation")
KEY_NAMES: tuple[str, ...] = ("aws-key", "main", "deploy-kp", "k1")
ATTACK_PLAN: tuple[tuple[str, str, int], ...] = (("us-east-1", "p3.8xlarge", 3), ("eu-west-1", "g4dn.12xlarge", 2))
VCPU_ERROR = (
    "Client.VcpuLimitExceeded",
    "You have requested more vCPU capacity than your current vCPU limit of 192 allows for the instance bucket "
    "that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request to "
    "request an adjustment to this limit.",
)
CLEAN_ROLES: dict[str, tuple[tuple[str, ...], bool]] = {
    "web": (("t3.medium", "m5.large"), True),
    "api": (("m5.large", "m5.xlarge"), False),
    "worker": (("m5.large", "t3.large", "m5.2xlarge"), False),
    "bastion": (("t3.micro",), True),
}
ROLE_CYCLE: tuple[str, ...] = ("web", "api", "worker", "bastion", "web", "worker", "api")
STAGES: dict[str, str] = {
    "GetCallerIdentity": "discovery",
    "DescribeRegions": "discovery",
    "DescribeInstances": "discovery",
    "DescribeSecurityGroups": "discovery",
    "DescribeSubnets": "discovery",
    "CreateKeyPair": "persistence",
    "AuthorizeSecurityGroupIngress": "persistence",
    "RunInstances": "impact",
    "CreateUser": "persistence",
    "AttachUserPolicy": "persistence",
    "CreateLoginProfile": "persistence",
    "CreateAccessKey": "persistence",
    "ConsoleLogin": "initial-access",
    "StopInstances": "persistence",
    "ModifyInstanceAttribute": "persistence",
    "StartInstances": "persistence",
    "SendCommand": "execution",
    "CreateImage": "persistence",
}


class ScenarioError(ValueError):
    """Bad arguments or an output folder that is not empty."""


@dataclass(slots=True)
class Story:
    world: World
    trail: Trail
    ci: Identity
    backdoor: Identity
    attacker_ip: str
    user_agent: str
    key_name: str
    leak: datetime
    attack_events: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    iam_findings: list[dict[str, Any]] = field(default_factory=list)


def _ssm_role_id(seed: int) -> str:
    return "AROA" + upper_alnum(random.Random(f"{seed}:ssm-role"), 17)


def _mining(rng: random.Random, h: Host, pool: tuple[str, str, int], refused: tuple[str, str, int] | None,
            end: datetime) -> Mining:  # fmt: skip
    """Stratum connections from a few minutes after launch to ``end``: the miner reconnects every few hours
    and after the instance comes back from a stop."""
    start = h.launched + timedelta(minutes=rng.uniform(3.5, 7), milliseconds=rng.randint(0, 999))
    m = Mining(pool=pool, rejected_pool=refused, start=start, end=end)
    t = start
    stops = sorted(h.down)
    while t < end:
        nxt = min(end, t + timedelta(minutes=rng.uniform(150, 260)))
        stop = next(((a, b) for a, b in stops if t < a < nxt), None)
        if stop:
            m.segments.append(Segment(t, stop[0], rng.randint(32768, 60999), "stop"))
            resume = stop[1] + timedelta(minutes=rng.uniform(2, 3.5), milliseconds=rng.randint(0, 999))
            m.interruptions.append((stop[0], resume))
            t = resume
            continue
        m.segments.append(Segment(t, nxt, rng.randint(32768, 60999), "end" if nxt >= end else "reconnect"))
        t = nxt + timedelta(seconds=rng.uniform(2, 20)) if nxt < end else nxt
    return m


def _attack(seed: int, world: World) -> Story:
    rng = random.Random(f"{seed}:story")
    acct = world.account.account_id
    trail = Trail(acct)
    ci = user_identity(acct, rng, "ci-deployer")
    ip = public_ip(rng)
    while ip.startswith(("89.160.", "4.", "20.", "52.", "13.")):
        ip = public_ip(rng)
    story = Story(
        world=world, trail=trail, ci=ci,
        backdoor=user_identity(acct, rng, rng.choice(BACKDOOR_USERS)),
        attacker_ip=ip, user_agent=rng.choice(ATTACKER_USER_AGENTS), key_name=rng.choice(KEY_NAMES),
        leak=world.start + timedelta(minutes=rng.uniform(90, 150), seconds=rng.randint(0, 59)),
    )  # fmt: skip
    ci_baseline(trail, random.Random(f"{seed}:ci"), world, ci)
    who = identity_json(ci)
    ua = story.user_agent
    t = story.leak

    def step(name: str, source: str, region: str, req: dict[str, Any] | None, resp: dict[str, Any] | None = None,
             *, read_only: bool = False, actor: dict[str, Any] = who, agent: str = ua,
             error: tuple[str, str] | None = None, target: str | None = None) -> str:  # fmt: skip
        event_id = trail.call(rng, actor, t, source, name, region, ip, agent, req, resp, read_only=read_only,
                              error=error)  # fmt: skip
        story.attack_events.append(_event_entry(event_id, name, source, region, t, actor, error, target))
        return event_id

    def later(lo: float, hi: float) -> datetime:
        return t + timedelta(seconds=rng.uniform(lo, hi))

    # Discovery with the leaked key.
    step("GetCallerIdentity", "sts.amazonaws.com", "us-east-1", None, read_only=True)
    t = later(15, 60)
    step("DescribeRegions", "ec2.amazonaws.com", "us-east-1", {"regionSet": {}, "allRegions": True}, read_only=True)
    for region, _, _ in ATTACK_PLAN:
        for name, req in (("DescribeInstances", {"instancesSet": {}, "filterSet": {}}),
                          ("DescribeSecurityGroups", {"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}}),
                          ("DescribeSubnets", {"subnetSet": {}, "filterSet": {}})):  # fmt: skip
            t = later(3, 25)
            step(name, "ec2.amazonaws.com", region, req, read_only=True)
    # Access to the instances to come: a key pair and SSH open to the world, in both regions.
    for region, _, _ in ATTACK_PLAN:
        vpc = world.vpc(region)
        t = later(20, 90)
        fp = ":".join(hexstr(rng, 2) for _ in range(20))
        step("CreateKeyPair", "ec2.amazonaws.com", region,
             {"keyName": story.key_name, "keyType": "rsa", "keyFormat": "pem"},
             {"requestId": "", "keyName": story.key_name, "keyFingerprint": fp, "keyPairId": "key-0" + hexstr(rng, 16),
              "keyMaterial": "<sensitiveDataRemoved>"})  # fmt: skip
        t = later(10, 40)
        perm = {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "groups": {},
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]}, "ipv6Ranges": {}, "prefixListIds": {}}
        rule = {"groupOwnerId": acct, "groupId": vpc.default_sg, "securityGroupRuleId": "sgr-0" + hexstr(rng, 16),
                "isEgress": False, "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"}
        step("AuthorizeSecurityGroupIngress", "ec2.amazonaws.com", region,
             {"groupId": vpc.default_sg, "ipPermissions": {"items": [perm]}},
             {"requestId": "", "_return": True, "securityGroupRuleSet": {"items": [rule]}},
             target=vpc.default_sg)  # fmt: skip
    # The launches: first refused for quota, then GPU instances in two regions.
    t = later(60, 180)
    vpc = world.vpc("us-east-1")
    ami = {r: "ami-0" + hexstr(rng, 16) for r, _, _ in ATTACK_PLAN}
    refused = Launch("us-east-1", ami["us-east-1"], "p3.16xlarge", 4, vpc.subnets[sorted(vpc.subnets)[0]],
                     vpc.default_sg, True, "optional", True, story.key_name)  # fmt: skip
    event_id = run_instances(trail, rng, who, t, ip, ua, refused, [], error=VCPU_ERROR)
    story.attack_events.append(_event_entry(event_id, "RunInstances", "ec2.amazonaws.com", "us-east-1", t, who,
                                            VCPU_ERROR, None))  # fmt: skip
    for region, itype, count in ATTACK_PLAN:
        t = later(40, 150)
        hosts = []
        az = rng.choice(sorted(world.vpc(region).subnets))  # one reservation, one subnet
        for _ in range(count):
            inst = new_instance(world, rng, region, itype, t, image=(ami[region], UBUNTU), public=True,
                                security_group=("default", world.vpc(region).default_sg), tags=(), environment="",
                                role="miner", az=az)  # fmt: skip
            hosts.append(Host(inst, world.vpc(region), "miner", True, t, None, "optional", story.key_name, True))
        event_id = run_instances(trail, rng, who, t, ip, ua, Launch.of(hosts), hosts)
        story.attack_events.append(_event_entry(event_id, "RunInstances", "ec2.amazonaws.com", region, t, who, None,
                                                ",".join(h.instance_id for h in hosts)))  # fmt: skip
        for h in hosts:
            h.launch_event_id = event_id
            world.hosts.append(h)
    miners = world.compromised()
    # Persistence in IAM: an administrator with a console password and a key of its own.
    bd = story.backdoor
    t = later(120, 400)
    step("CreateUser", "iam.amazonaws.com", "us-east-1", {"userName": bd.name},
         {"user": {"path": "/", "userName": bd.name, "userId": bd.principal_id, "arn": bd.arn,
                   "createDate": t.strftime("%b %d, %Y, %I:%M:%S %p")}}, target=bd.arn)  # fmt: skip
    t = later(5, 30)
    step("AttachUserPolicy", "iam.amazonaws.com", "us-east-1",
         {"userName": bd.name, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"}, target=bd.arn)
    t = later(5, 30)
    step("CreateLoginProfile", "iam.amazonaws.com", "us-east-1", {"userName": bd.name, "passwordResetRequired": False},
         {"loginProfile": {"userName": bd.name, "createDate": t.strftime("%b %d, %Y, %I:%M:%S %p"),
                           "passwordResetRequired": False}}, target=bd.arn)  # fmt: skip
    t = later(5, 30)
    step("CreateAccessKey", "iam.amazonaws.com", "us-east-1", {"userName": bd.name},
         {"accessKey": {"userName": bd.name, "accessKeyId": bd.access_key_id, "status": "Active",
                        "createDate": t.strftime("%b %d, %Y, %I:%M:%S %p")}}, target=bd.access_key_id)  # fmt: skip
    t = later(300, 900)
    event_id = trail.console_login(rng, bd, t, ip, ATTACKER_BROWSER, mfa=False)
    story.attack_events.append(_event_entry(event_id, "ConsoleLogin", "signin.amazonaws.com", "us-east-1", t,
                                            {"arn": bd.arn, "accessKeyId": None}, None, None))  # fmt: skip
    console = identity_json(Identity(bd.kind, bd.name, bd.principal_id, "ASIA" + upper_alnum(rng, 16), acct),
                            created=t, mfa=False)  # fmt: skip
    for region, _, _ in ATTACK_PLAN:
        t = later(20, 120)
        step("DescribeInstances", "ec2.amazonaws.com", region, {"instancesSet": {}, "filterSet": {}},
             read_only=True, actor=console, agent="AWS Internal")
    # With the new key: change one instance's user data (it must be stopped for that), run a command on the
    # eu-west-1 instances and image one instance.
    new_key = identity_json(bd)
    target = miners[0]
    t = max(t, target.launched + timedelta(minutes=rng.uniform(40, 60)))
    stop_t = t
    step("StopInstances", "ec2.amazonaws.com", target.region,
         {"instancesSet": {"items": [{"instanceId": target.instance_id}]}, "force": False},
         {"requestId": "", "instancesSet": {"items": [{"instanceId": target.instance_id,
                                                       "currentState": {"code": 64, "name": "stopping"},
                                                       "previousState": {"code": 16, "name": "running"}}]}},
         actor=new_key, target=target.instance_id)  # fmt: skip
    t = later(70, 110)
    step("ModifyInstanceAttribute", "ec2.amazonaws.com", target.region,
         {"instanceId": target.instance_id, "userData": "<sensitiveDataRemoved>"},
         {"requestId": "", "_return": True}, actor=new_key, target=target.instance_id)  # fmt: skip
    t = later(20, 60)
    step("StartInstances", "ec2.amazonaws.com", target.region,
         {"instancesSet": {"items": [{"instanceId": target.instance_id}]}},
         {"requestId": "", "instancesSet": {"items": [{"instanceId": target.instance_id,
                                                       "currentState": {"code": 0, "name": "pending"},
                                                       "previousState": {"code": 80, "name": "stopped"}}]}},
         actor=new_key, target=target.instance_id)  # fmt: skip
    target.down.append((stop_t, t))
    eu = [h for h in miners if h.region == "eu-west-1"]
    t = max(later(60, 300), eu[0].launched + timedelta(minutes=rng.uniform(50, 80)))
    command_id = hexstr(rng, 8) + "-" + hexstr(rng, 4) + "-" + hexstr(rng, 4) + "-" + hexstr(rng, 4) + "-" + hexstr(rng, 12)
    step("SendCommand", "ssm.amazonaws.com", "eu-west-1",
         {"instanceIds": [h.instance_id for h in eu], "documentName": "AWS-RunShellScript",
          "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS", "interactive": False},
         {"command": {"commandId": command_id, "documentName": "AWS-RunShellScript", "documentVersion": "$DEFAULT",
                      "instanceIds": [h.instance_id for h in eu], "status": "Pending", "targets": [],
                      "parameters": "HIDDEN_DUE_TO_SECURITY_REASONS", "requestedDateTime": iso(t)}},
         actor=new_key, target=",".join(h.instance_id for h in eu))  # fmt: skip
    imaged = miners[1]
    t = later(600, 1500)
    step("CreateImage", "ec2.amazonaws.com", imaged.region,
         {"instanceId": imaged.instance_id, "name": "ubuntu-cuda-" + hexstr(rng, 6), "noReboot": True,
          "description": "", "blockDeviceMapping": {}},
         {"requestId": "", "imageId": "ami-0" + hexstr(rng, 16)}, actor=new_key, target=imaged.instance_id)  # fmt: skip
    for rec in trail.records:  # the attacker's requestIds in responses match the records'
        if isinstance(rec.get("responseElements"), dict) and rec["responseElements"].get("requestId") == "":
            rec["responseElements"]["requestId"] = rec["requestID"]

    # What the instances do.
    pools14 = [p for p in MINING_POOLS if p[2] == 14444]
    pools3 = [p for p in MINING_POOLS if p[2] == 3333]
    pools4 = [p for p in MINING_POOLS if p[2] == 4444]
    refused_pool = rng.choice(pools4)
    us_pool = rng.choice(pools14)
    eu_pools = [rng.choice(pools3), rng.choice([p for p in pools4 if p != refused_pool])]
    role_id = _ssm_role_id(seed)
    for k, h in enumerate(miners):
        hr = host_rng(seed, h, "story")
        if h.region == "us-east-1":
            h.mining = _mining(hr, h, us_pool, refused_pool, world.end)
        else:
            h.mining = _mining(hr, h, eu_pools[k % 2], None, world.end)
        h.scanners = [_scanner(hr, {ip}) for _ in range(hr.randint(1, 2))]
        assume_role_for_instance(trail, hr, h, h.launched + timedelta(seconds=hr.uniform(5, 20)))
        instance_role_activity(trail, hr, h, role_session(acct, hr, SSM_ROLE, h.instance_id, role_id), h.launched,
                               world.end)  # fmt: skip
        story.findings += crypto_findings(world, seed, h)
        story.findings += probe_finding(world, seed, h, 22)
    # GuardDuty about the key.
    story.iam_findings += api_finding(rng, world, MALICIOUS_CALLER, ci, story.leak + timedelta(minutes=rng.uniform(6, 12)),
                                      story.leak, api="GetCallerIdentity", service="sts.amazonaws.com", ip=ip,
                                      user_agent=ua, until=story.leak + timedelta(hours=3))  # fmt: skip
    disc_t = next(e for e in story.attack_events if e["event_name"] == "DescribeRegions")["time"]
    disc = datetime.strptime(disc_t, "%Y-%m-%dT%H:%M:%S%z")
    story.iam_findings += api_finding(rng, world, DISCOVERY, ci, disc + timedelta(minutes=rng.uniform(15, 30)), disc,
                                      api="DescribeRegions", service="ec2.amazonaws.com", ip=ip, user_agent=ua,
                                      until=story.leak + timedelta(hours=4))  # fmt: skip
    return story


def _scanner(rng: random.Random, avoid: set[str]) -> str:
    while True:
        ip = public_ip(rng)
        if ip not in avoid:
            return ip


def _event_entry(event_id: str, name: str, source: str, region: str, t: datetime, actor: dict[str, Any],
                 error: tuple[str, str] | None, target: str | None) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": event_id,
        "event_name": name,
        "event_source": source,
        "region": region,
        "time": iso(t),
        "principal_arn": actor.get("arn"),
        "access_key_id": actor.get("accessKeyId"),
        "stage": STAGES.get(name, "other"),
        "error_code": error[0] if error else None,
        "target": target,
    }
