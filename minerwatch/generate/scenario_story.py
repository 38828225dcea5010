"""The attack of the compromise scenario: the leaked key's CloudTrail trail, the miners it launches and what
they do, and GuardDuty's findings about them (see :mod:`minerwatch.generate.scenario` for the story)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from minerwatch.generate.fleet import hexstr, public_ip, upper_alnum
from minerwatch.generate.scenario_cloudtrail import (
    Launch,
    Trail,
    assume_role_for_instance,
    ci_baseline,
    identity_json,
    instance_role_activity,
    run_instances,
)
from minerwatch.generate.scenario_guardduty import (
    DISCOVERY,
    MALICIOUS_CALLER,
    api_finding,
    crypto_findings,
    probe_finding,
)
from minerwatch.generate.scenario_telemetry import (
    host_rng,
)
from minerwatch.generate.scenario_world import (
    SSM_ROLE,
    UBUNTU,
    Host,
    Identity,
    Mining,
    Segment,
    World,
    iso,
    new_instance,
    role_session,
    user_identity,
)
from minerwatch.generate.vocabulary import MINING_POOLS

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


def ssm_role_id(seed: int) -> str:
    return "AROA" + upper_alnum(random.Random(f"{seed}:ssm-role"), 17)


def _mining(
    rng: random.Random, h: Host, pool: tuple[str, str, int], refused: tuple[str, str, int] | None, end: datetime
) -> Mining:
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


def _date(t: datetime) -> str:
    """IAM's date format in CloudTrail responses."""
    return t.strftime("%b %d, %Y, %I:%M:%S %p")


class _Attacker:
    """Plays the attack in order; ``t`` is the time of the next call and moves forward with ``wait``."""

    def __init__(self, seed: int, world: World) -> None:
        self.seed = seed
        self.world = world
        self.rng = rng = random.Random(f"{seed}:story")
        acct = world.account.account_id
        ip = public_ip(rng)
        while ip.startswith(("89.160.", "4.", "20.", "52.", "13.")):  # never an office or CI address
            ip = public_ip(rng)
        self.story = Story(
            world=world,
            trail=Trail(acct),
            ci=user_identity(acct, rng, "ci-deployer"),
            backdoor=user_identity(acct, rng, rng.choice(BACKDOOR_USERS)),
            attacker_ip=ip,
            user_agent=rng.choice(ATTACKER_USER_AGENTS),
            key_name=rng.choice(KEY_NAMES),
            leak=world.start + timedelta(minutes=rng.uniform(90, 150), seconds=rng.randint(0, 59)),
        )
        self.leaked = identity_json(self.story.ci)
        self.t = self.story.leak

    def wait(self, lo: float, hi: float) -> datetime:
        self.t += timedelta(seconds=self.rng.uniform(lo, hi))
        return self.t

    def record(
        self,
        event_id: str,
        name: str,
        source: str,
        region: str,
        actor: dict[str, Any],
        error: tuple[str, str] | None = None,
        target: str | None = None,
    ) -> str:
        self.story.attack_events.append(_event_entry(event_id, name, source, region, self.t, actor, error, target))
        return event_id

    def call(
        self,
        name: str,
        source: str,
        region: str,
        req: dict[str, Any] | None,
        resp: dict[str, Any] | None = None,
        *,
        read_only: bool = False,
        actor: dict[str, Any] | None = None,
        agent: str | None = None,
        target: str | None = None,
    ) -> str:
        s = self.story
        who = actor or self.leaked
        event_id = s.trail.call(
            self.rng,
            who,
            self.t,
            source,
            name,
            region,
            s.attacker_ip,
            agent or s.user_agent,
            req,
            resp,
            read_only=read_only,
        )
        return self.record(event_id, name, source, region, who, target=target)

    def discover(self) -> None:
        self.call("GetCallerIdentity", "sts.amazonaws.com", "us-east-1", None, read_only=True)
        self.wait(15, 60)
        self.call(
            "DescribeRegions", "ec2.amazonaws.com", "us-east-1", {"regionSet": {}, "allRegions": True}, read_only=True
        )
        for region, _, _ in ATTACK_PLAN:
            for name, req in (
                ("DescribeInstances", {"instancesSet": {}, "filterSet": {}}),
                ("DescribeSecurityGroups", {"securityGroupSet": {}, "securityGroupIdSet": {}, "filterSet": {}}),
                ("DescribeSubnets", {"subnetSet": {}, "filterSet": {}}),
            ):
                self.wait(3, 25)
                self.call(name, "ec2.amazonaws.com", region, req, read_only=True)

    def open_access(self) -> None:
        """A key pair and SSH open to the world, in both regions."""
        rng, key = self.rng, self.story.key_name
        for region, _, _ in ATTACK_PLAN:
            vpc = self.world.vpc(region)
            self.wait(20, 90)
            self.call(
                "CreateKeyPair",
                "ec2.amazonaws.com",
                region,
                {"keyName": key, "keyType": "rsa", "keyFormat": "pem"},
                {
                    "requestId": "",
                    "keyName": key,
                    "keyFingerprint": ":".join(hexstr(rng, 2) for _ in range(20)),
                    "keyPairId": "key-0" + hexstr(rng, 16),
                    "keyMaterial": "<sensitiveDataRemoved>",
                },
            )
            self.wait(10, 40)
            perm = {
                "ipProtocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "groups": {},
                "ipRanges": {"items": [{"cidrIp": "0.0.0.0/0"}]},
                "ipv6Ranges": {},
                "prefixListIds": {},
            }
            rule = {
                "groupOwnerId": self.world.account.account_id,
                "groupId": vpc.default_sg,
                "securityGroupRuleId": "sgr-0" + hexstr(rng, 16),
                "isEgress": False,
                "ipProtocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "cidrIpv4": "0.0.0.0/0",
            }
            self.call(
                "AuthorizeSecurityGroupIngress",
                "ec2.amazonaws.com",
                region,
                {"groupId": vpc.default_sg, "ipPermissions": {"items": [perm]}},
                {"requestId": "", "_return": True, "securityGroupRuleSet": {"items": [rule]}},
                target=vpc.default_sg,
            )

    def launch(self) -> list[Host]:
        """First refused for want of vCPU quota, then GPU instances in two regions."""
        rng, world, s = self.rng, self.world, self.story
        ami = {r: "ami-0" + hexstr(rng, 16) for r, _, _ in ATTACK_PLAN}
        self.wait(60, 180)
        vpc = world.vpc("us-east-1")
        too_big = Launch(
            "us-east-1",
            ami["us-east-1"],
            "p3.16xlarge",
            4,
            vpc.subnets[sorted(vpc.subnets)[0]],
            vpc.default_sg,
            True,
            "optional",
            True,
            s.key_name,
        )
        event_id = run_instances(
            s.trail, rng, self.leaked, self.t, s.attacker_ip, s.user_agent, too_big, [], error=VCPU_ERROR
        )
        self.record(event_id, "RunInstances", "ec2.amazonaws.com", "us-east-1", self.leaked, VCPU_ERROR)
        miners: list[Host] = []
        for region, itype, count in ATTACK_PLAN:
            t = self.wait(40, 150)
            vpc = world.vpc(region)
            az = rng.choice(sorted(vpc.subnets))  # one reservation, one subnet
            hosts = []
            for _ in range(count):
                inst = new_instance(
                    world,
                    rng,
                    region,
                    itype,
                    t,
                    image=(ami[region], UBUNTU),
                    public=True,
                    security_group=("default", vpc.default_sg),
                    tags=(),
                    environment="",
                    role="miner",
                    az=az,
                )
                hosts.append(
                    Host(
                        inst=inst,
                        vpc=vpc,
                        role="miner",
                        compromised=True,
                        launched=t,
                        launch_event_id=None,
                        http_tokens="optional",
                        key_name=s.key_name,
                        user_data=True,
                    )
                )
            event_id = run_instances(s.trail, rng, self.leaked, t, s.attacker_ip, s.user_agent, Launch.of(hosts), hosts)
            self.record(
                event_id,
                "RunInstances",
                "ec2.amazonaws.com",
                region,
                self.leaked,
                target=",".join(h.instance_id for h in hosts),
            )
            for h in hosts:
                h.launch_event_id = event_id
            world.hosts += hosts
            miners += hosts
        return miners

    def backdoor_user(self) -> None:
        """An administrator with a console password and a key of its own, then a console sign-in without MFA."""
        bd = self.story.backdoor
        iam = "iam.amazonaws.com"
        t = self.wait(120, 400)
        self.call(
            "CreateUser",
            iam,
            "us-east-1",
            {"userName": bd.name},
            {
                "user": {
                    "path": "/",
                    "userName": bd.name,
                    "userId": bd.principal_id,
                    "arn": bd.arn,
                    "createDate": _date(t),
                }
            },
            target=bd.arn,
        )
        self.wait(5, 30)
        self.call(
            "AttachUserPolicy",
            iam,
            "us-east-1",
            {"userName": bd.name, "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
            target=bd.arn,
        )
        t = self.wait(5, 30)
        self.call(
            "CreateLoginProfile",
            iam,
            "us-east-1",
            {"userName": bd.name, "passwordResetRequired": False},
            {"loginProfile": {"userName": bd.name, "createDate": _date(t), "passwordResetRequired": False}},
            target=bd.arn,
        )
        t = self.wait(5, 30)
        self.call(
            "CreateAccessKey",
            iam,
            "us-east-1",
            {"userName": bd.name},
            {
                "accessKey": {
                    "userName": bd.name,
                    "accessKeyId": bd.access_key_id,
                    "status": "Active",
                    "createDate": _date(t),
                }
            },
            target=bd.access_key_id,
        )
        t = self.wait(300, 900)
        s = self.story
        event_id = s.trail.console_login(self.rng, bd, t, s.attacker_ip, ATTACKER_BROWSER, mfa=False)
        self.record(event_id, "ConsoleLogin", "signin.amazonaws.com", "us-east-1", {"arn": bd.arn})
        session = Identity(bd.kind, bd.name, bd.principal_id, "ASIA" + upper_alnum(self.rng, 16), bd.account_id)
        console = identity_json(session, created=t, mfa=False)
        for region, _, _ in ATTACK_PLAN:
            self.wait(20, 120)
            self.call(
                "DescribeInstances",
                "ec2.amazonaws.com",
                region,
                {"instancesSet": {}, "filterSet": {}},
                read_only=True,
                actor=console,
                agent="AWS Internal",
            )

    def tamper(self, miners: list[Host]) -> None:
        """With the new key: change one instance's user data (it must be stopped for that), run a command on
        the eu-west-1 instances, image another instance."""
        rng = self.rng
        key = identity_json(self.story.backdoor)
        target = miners[0]
        self.t = max(self.t, target.launched + timedelta(minutes=rng.uniform(40, 60)))
        stop = self.t
        one = {"items": [{"instanceId": target.instance_id}]}

        def state(code: int, name: str, before: tuple[int, str]) -> dict[str, Any]:
            return {
                "requestId": "",
                "instancesSet": {
                    "items": [
                        {
                            "instanceId": target.instance_id,
                            "currentState": {"code": code, "name": name},
                            "previousState": {"code": before[0], "name": before[1]},
                        }
                    ]
                },
            }

        ec2 = "ec2.amazonaws.com"
        self.call(
            "StopInstances",
            ec2,
            target.region,
            {"instancesSet": one, "force": False},
            state(64, "stopping", (16, "running")),
            actor=key,
            target=target.instance_id,
        )
        self.wait(70, 110)
        self.call(
            "ModifyInstanceAttribute",
            ec2,
            target.region,
            {"instanceId": target.instance_id, "userData": "<sensitiveDataRemoved>"},
            {"requestId": "", "_return": True},
            actor=key,
            target=target.instance_id,
        )
        self.wait(20, 60)
        self.call(
            "StartInstances",
            ec2,
            target.region,
            {"instancesSet": one},
            state(0, "pending", (80, "stopped")),
            actor=key,
            target=target.instance_id,
        )
        target.down.append((stop, self.t))
        eu = [h for h in miners if h.region == "eu-west-1"]
        self.t = max(self.wait(60, 300), eu[0].launched + timedelta(minutes=rng.uniform(50, 80)))
        ids = [h.instance_id for h in eu]
        command_id = "-".join(hexstr(rng, n) for n in (8, 4, 4, 4, 12))
        hidden = "HIDDEN_DUE_TO_SECURITY_REASONS"
        self.call(
            "SendCommand",
            "ssm.amazonaws.com",
            "eu-west-1",
            {"instanceIds": ids, "documentName": "AWS-RunShellScript", "parameters": hidden, "interactive": False},
            {
                "command": {
                    "commandId": command_id,
                    "documentName": "AWS-RunShellScript",
                    "documentVersion": "$DEFAULT",
                    "instanceIds": ids,
                    "status": "Pending",
                    "targets": [],
                    "parameters": hidden,
                    "requestedDateTime": iso(self.t),
                }
            },
            actor=key,
            target=",".join(ids),
        )
        imaged = miners[1]
        self.wait(600, 1500)
        self.call(
            "CreateImage",
            ec2,
            imaged.region,
            {
                "instanceId": imaged.instance_id,
                "name": "ubuntu-cuda-" + hexstr(rng, 6),
                "noReboot": True,
                "description": "",
                "blockDeviceMapping": {},
            },
            {"requestId": "", "imageId": "ami-0" + hexstr(rng, 16)},
            actor=key,
            target=imaged.instance_id,
        )

    def mine(self, miners: list[Host]) -> None:
        """The miners' pools and connections, their instance role in use, and GuardDuty's findings on them.
        The us-east-1 miners first try a pool on a port the network ACL refuses."""
        rng, world, s, seed = self.rng, self.world, self.story, self.seed
        by_port = {port: [p for p in MINING_POOLS if p[2] == port] for port in (3333, 4444, 14444)}
        refused = rng.choice(by_port[4444])
        us_pool = rng.choice(by_port[14444])
        eu_pools = [rng.choice(by_port[3333]), rng.choice([p for p in by_port[4444] if p != refused])]
        role_id = ssm_role_id(seed)
        eu_index = 0
        for h in miners:
            hr = host_rng(seed, h, "story")
            if h.region == "us-east-1":
                h.mining = _mining(hr, h, us_pool, refused, world.end)
            else:
                h.mining = _mining(hr, h, eu_pools[eu_index % 2], None, world.end)
                eu_index += 1
            h.scanners = [scanner_ip(hr, {s.attacker_ip}) for _ in range(hr.randint(1, 2))]
            assume_role_for_instance(s.trail, hr, h, h.launched + timedelta(seconds=hr.uniform(5, 20)))
            session = role_session(world.account.account_id, hr, SSM_ROLE, h.instance_id, role_id)
            instance_role_activity(s.trail, hr, h, session, h.launched, world.end)
            s.findings += crypto_findings(world, seed, h)
            s.findings += probe_finding(world, seed, h, 22)

    def key_findings(self) -> None:
        """GuardDuty about the leaked key: the first call from a known-bad address, the unusual discovery."""
        rng, s = self.rng, self.story
        common = {"ip": s.attacker_ip, "user_agent": s.user_agent}
        s.iam_findings += api_finding(
            rng,
            self.world,
            MALICIOUS_CALLER,
            s.ci,
            s.leak + timedelta(minutes=rng.uniform(6, 12)),
            s.leak,
            api="GetCallerIdentity",
            service="sts.amazonaws.com",
            until=s.leak + timedelta(hours=3),
            **common,
        )
        first = next(e for e in s.attack_events if e["event_name"] == "DescribeRegions")["time"]
        disc = datetime.strptime(first, "%Y-%m-%dT%H:%M:%S%z")
        s.iam_findings += api_finding(
            rng,
            self.world,
            DISCOVERY,
            s.ci,
            disc + timedelta(minutes=rng.uniform(15, 30)),
            disc,
            api="DescribeRegions",
            service="ec2.amazonaws.com",
            until=s.leak + timedelta(hours=4),
            **common,
        )


def attack(seed: int, world: World) -> Story:
    """The attack, from the leaked key's first call to the miners' last findings, plus the CI user's own,
    legitimate use of the same key all day."""
    a = _Attacker(seed, world)
    ci_baseline(a.story.trail, random.Random(f"{seed}:ci"), world, a.story.ci)
    a.discover()
    a.open_access()
    miners = a.launch()
    a.backdoor_user()
    a.tamper(miners)
    a.mine(miners)
    a.key_findings()
    return a.story


def scanner_ip(rng: random.Random, avoid: set[str]) -> str:
    while True:
        ip = public_ip(rng)
        if ip not in avoid:
            return ip


def _event_entry(
    event_id: str,
    name: str,
    source: str,
    region: str,
    t: datetime,
    actor: dict[str, Any],
    error: tuple[str, str] | None,
    target: str | None,
) -> dict[str, Any]:
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
