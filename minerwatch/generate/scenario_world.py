"""The estate a compromise scenario plays out in: one AWS account, one VPC in each of two regions, IAM
principals, EC2 hosts (compromised and clean) and the mining connections of the compromised ones.

Hosts wrap the GuardDuty generator's :class:`~minerwatch.generate.fleet.Instance`, so GuardDuty findings about
them carry the same ``resource.instanceDetails`` as every other generated finding; the extra fields here are
what the other log sources need (how and when the host was launched, its metadata options, the periods it was
stopped, its Stratum connections).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from minerwatch.generate.fleet import Account, Instance, hexstr, upper_alnum

REGIONS: tuple[str, str] = ("us-east-1", "eu-west-1")
START = datetime(2025, 3, 10, 6, 0, 0, tzinfo=UTC)
DURATION = timedelta(hours=12)
FLOW_WINDOW = timedelta(minutes=10)  # the flow logs' maximum aggregation interval (AWS default)
CPU_PERIOD = timedelta(minutes=5)  # basic monitoring

# Zone name → zone id differs per account in real AWS; a fixed mapping keeps the data self-consistent.
AZ_IDS: dict[str, str] = {
    "us-east-1a": "use1-az6",
    "us-east-1b": "use1-az1",
    "us-east-1c": "use1-az2",
    "eu-west-1a": "euw1-az3",
    "eu-west-1b": "euw1-az1",
    "eu-west-1c": "euw1-az2",
}
# The VPC flow log of the first region uses a custom v5 format, the second the default v2 format.
FLOW_FORMATS: dict[str, str] = {"us-east-1": "v5", "eu-west-1": "v2"}

# vCPUs of the instance types the scenario launches (RunInstances responses report cores and threads).
VCPUS: dict[str, int] = {
    "p3.8xlarge": 32,
    "p3.16xlarge": 64,
    "g4dn.12xlarge": 48,
    "t3.micro": 2,
    "t3.medium": 2,
    "t3.large": 2,
    "m5.large": 2,
    "m5.xlarge": 4,
    "m5.2xlarge": 8,
}
UBUNTU = "Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2025-02-04"
AMAZON_LINUX = "Amazon Linux 2023 AMI 2023.6.20250211.0 x86_64 HVM kernel-6.1"
SSM_PROFILE = "app-ec2-ssm"  # the instance profile clean hosts use and the attacker reuses
SSM_ROLE = "app-ec2-ssm-role"

# Corporate egress (office NAT) and the CI provider's runners: where legitimate callers come from.
OFFICE_IPS: tuple[str, ...] = ("89.160.20.112", "89.160.20.115", "89.160.20.121")
CI_IPS: tuple[str, ...] = ("4.175.114.51", "20.57.79.12", "52.176.207.33", "13.87.226.104")


# Names a clean host may look up that contain a pool domain's text but are not under it: an IOC match on
# whole labels must not fire on them, a substring match would.
DECOY_DOMAINS: tuple[str, ...] = ("notnanopool.org", "getminergate.com", "ethermine.organic-market.net")


def iso(t: datetime) -> str:
    """CloudTrail / Resolver / metrics timestamps: seconds, ``Z``."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(t: datetime) -> int:
    return int(t.timestamp())


def digest(data: bytes, n: int) -> str:
    """A short content hash: file-name suffixes that are deterministic and independent of draw order."""
    return hashlib.sha256(data).hexdigest()[:n]


def uuid_of(data: bytes) -> str:
    h = hashlib.sha256(data).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


@dataclass(frozen=True, slots=True)
class Vpc:
    region: str
    vpc_id: str
    octet: int
    """The VPC is 10.<octet>.0.0/16."""
    subnets: dict[str, str]
    """Availability zone → subnet id (one /20 per zone)."""
    default_sg: str
    app_sg: str
    nat_ip: str
    """The NAT gateway's Elastic IP: the public source of hosts without a public address."""
    flow_log_id: str

    @property
    def cidr(self) -> str:
        return f"10.{self.octet}.0.0/16"


@dataclass(frozen=True, slots=True)
class Identity:
    """A CloudTrail ``userIdentity`` in the making: an IAM user's long-term key or a role session."""

    kind: str  # IAMUser | AssumedRole
    name: str
    """User name, or role name for a role session."""
    principal_id: str
    access_key_id: str
    account_id: str
    session: str = ""
    """Role session name (AssumedRole only)."""
    role_id: str = ""

    @property
    def arn(self) -> str:
        if self.kind == "AssumedRole":
            return f"arn:aws:sts::{self.account_id}:assumed-role/{self.name}/{self.session}"
        return f"arn:aws:iam::{self.account_id}:user/{self.name}"


@dataclass(slots=True)
class Segment:
    """One Stratum TCP connection from a host to its pool."""

    start: datetime
    end: datetime
    src_port: int
    closed_by: str  # "reconnect" | "stop" | "end"


@dataclass(slots=True)
class Mining:
    pool: tuple[str, str, int]
    """(domain, ip, port) the miner works for."""
    rejected_pool: tuple[str, str, int] | None
    """A pool the miner tried first and the network ACL refused."""
    start: datetime
    end: datetime
    segments: list[Segment] = field(default_factory=list)
    interruptions: list[tuple[datetime, datetime]] = field(default_factory=list)
    """From the stop of the instance to the miner running again."""

    def active(self, t0: datetime, t1: datetime) -> float:
        """Seconds of [t0, t1) during which the miner hashed (it goes on through a reconnect, not a stop)."""
        busy = max(0.0, (min(t1, self.end) - max(t0, self.start)).total_seconds())
        for a, b in self.interruptions:
            busy -= max(0.0, (min(t1, b) - max(t0, a)).total_seconds())
        return max(busy, 0.0)


@dataclass(slots=True)
class Host:
    inst: Instance
    vpc: Vpc
    role: str
    """web | api | worker | bastion | miner."""
    compromised: bool
    launched: datetime
    launch_event_id: str | None
    """The RunInstances event, when the launch falls in the scenario window."""
    http_tokens: str
    key_name: str | None
    user_data: bool
    down: list[tuple[datetime, datetime]] = field(default_factory=list)
    """Stopped periods."""
    mining: Mining | None = None
    scanners: list[str] = field(default_factory=list)
    """Internet hosts that probe this instance (flows and the probe finding agree on them)."""

    @property
    def instance_id(self) -> str:
        return self.inst.instance_id

    @property
    def region(self) -> str:
        return self.inst.region

    @property
    def egress_ip(self) -> str:
        return self.inst.public_ip or self.vpc.nat_ip

    def running(self, t0: datetime, t1: datetime) -> float:
        """Seconds of [t0, t1) during which the instance was up."""
        lo = max(t0, self.launched)
        if lo >= t1:
            return 0.0
        up = (t1 - lo).total_seconds()
        for a, b in self.down:
            up -= max(0.0, (min(t1, b) - max(lo, a)).total_seconds())
        return max(up, 0.0)

    def summary(self) -> dict[str, Any]:
        i = self.inst
        return {
            "instance_id": i.instance_id,
            "region": i.region,
            "availability_zone": i.az,
            "instance_type": i.instance_type,
            "image_id": i.image_id,
            "vpc_id": i.vpc_id,
            "subnet_id": i.subnet_id,
            "eni_id": i.eni_id,
            "private_ip": i.private_ip,
            "public_ip": i.public_ip,
            "launch_time": iso(self.launched),
            "launch_event_id": self.launch_event_id,
            "http_tokens": self.http_tokens,
            "key_name": self.key_name,
            "user_data": self.user_data,
            "role": self.role,
        }


@dataclass(slots=True)
class World:
    account: Account
    vpcs: dict[str, Vpc]
    start: datetime
    end: datetime
    profile_id: str
    """The id of the instance profile every host gets (``SSM_PROFILE``)."""
    hosts: list[Host] = field(default_factory=list)
    used_ips: set[str] = field(default_factory=set)

    def vpc(self, region: str) -> Vpc:
        return self.vpcs[region]

    def compromised(self) -> list[Host]:
        return [h for h in self.hosts if h.compromised]

    def clean(self) -> list[Host]:
        return [h for h in self.hosts if not h.compromised]


def build_world(rng: random.Random, start: datetime = START, duration: timedelta = DURATION) -> World:
    account_id = str(rng.randint(100_000_000_000, 999_999_999_999))
    account = Account(account_id, "prod", ("prod",), REGIONS, {r: hexstr(rng, 32) for r in REGIONS})
    vpcs: dict[str, Vpc] = {}
    octets = rng.sample(range(16, 250), len(REGIONS))
    for region, octet in zip(REGIONS, octets, strict=True):
        azs = [az for az in AZ_IDS if az.startswith(region)]
        vpcs[region] = Vpc(
            region=region,
            vpc_id="vpc-0" + hexstr(rng, 16),
            octet=octet,
            subnets={az: "subnet-0" + hexstr(rng, 16) for az in azs},
            default_sg="sg-0" + hexstr(rng, 16),
            app_sg="sg-0" + hexstr(rng, 16),
            nat_ip=aws_public_ip(rng),
            flow_log_id="fl-0" + hexstr(rng, 16),
        )
    return World(account, vpcs, start, start + duration, "AIPA" + upper_alnum(rng, 17))


def private_ip(world: World, rng: random.Random, vpc: Vpc, az: str) -> str:
    """A free address in the zone's /20 (the zones' subnets are 10.o.0.0/20, 10.o.16.0/20, ...)."""
    zone = sorted(vpc.subnets).index(az)
    while True:
        ip = f"10.{vpc.octet}.{zone * 16 + rng.randint(0, 15)}.{rng.randint(4, 250)}"
        if ip not in world.used_ips:
            world.used_ips.add(ip)
            return ip


def aws_public_ip(rng: random.Random) -> str:
    return f"{rng.choice((3, 18, 34, 44, 52, 54))}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def new_instance(
    world: World,
    rng: random.Random,
    region: str,
    instance_type: str,
    launched: datetime,
    *,
    image: tuple[str, str],
    public: bool,
    security_group: tuple[str, str],
    tags: tuple[tuple[str, str], ...],
    environment: str,
    role: str,
    az: str | None = None,
) -> Instance:
    vpc = world.vpc(region)
    az = az or rng.choice(sorted(vpc.subnets))
    return Instance(
        account=world.account,
        region=region,
        az=az,
        instance_id="i-0" + hexstr(rng, 16),
        instance_type=instance_type,
        role=role,
        image_id=image[0],
        image_description=image[1],
        platform=None,
        launch_time=launched.replace(microsecond=0),
        vpc_id=vpc.vpc_id,
        subnet_id=vpc.subnets[az],
        eni_id="eni-0" + hexstr(rng, 16),
        private_ip=private_ip(world, rng, vpc, az),
        public_ip=aws_public_ip(rng) if public else None,
        security_groups=(security_group,),
        profile_name=SSM_PROFILE,
        profile_id=world.profile_id,
        tags=tags,
        environment=environment,
        crypto_approved=False,
    )


def user_identity(account_id: str, rng: random.Random, name: str) -> Identity:
    return Identity("IAMUser", name, "AIDA" + upper_alnum(rng, 17), "AKIA" + upper_alnum(rng, 16), account_id)


def role_session(account_id: str, rng: random.Random, role: str, session: str, role_id: str = "") -> Identity:
    rid = role_id or "AROA" + upper_alnum(rng, 17)
    return Identity("AssumedRole", role, f"{rid}:{session}", "ASIA" + upper_alnum(rng, 16), account_id, session, rid)
