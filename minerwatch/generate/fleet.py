"""A synthetic AWS estate for generated GuardDuty findings: accounts, regions, instances, principals,
buckets, EKS clusters and Lambda functions, all drawn from one ``random.Random`` so a seed fixes everything.

The values follow the formats AWS uses (12-digit account ids, ``i-`` + 17 hex instance ids, 32-hex detector
and finding ids, ``AKIA``/``ASIA`` access keys) so readers and enrichers see realistic shapes.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# Public-looking scanner / attacker networks (first octets seen in GuardDuty recon findings in the wild).
SCANNER_PREFIXES: tuple[int, ...] = (45, 61, 80, 89, 91, 103, 109, 141, 171, 185, 193, 194, 212, 222)

# Geo/ASN details attached to remote IPs, as GuardDuty reports them.
GEO: tuple[dict[str, Any], ...] = (
    {
        "country": ("CN", "China"),
        "city": "Shanghai",
        "lat": 31.2222,
        "lon": 121.4581,
        "asn": "4812",
        "org": "China Telecom",
    },
    {
        "country": ("RU", "Russia"),
        "city": "Moscow",
        "lat": 55.7386,
        "lon": 37.6068,
        "asn": "49505",
        "org": "Selectel",
    },
    {
        "country": ("NL", "Netherlands"),
        "city": "Amsterdam",
        "lat": 52.3759,
        "lon": 4.8975,
        "asn": "14061",
        "org": "DigitalOcean, LLC",
    },
    {
        "country": ("US", "United States"),
        "city": "Clifton",
        "lat": 40.8364,
        "lon": -74.1403,
        "asn": "14061",
        "org": "DigitalOcean, LLC",
    },
    {
        "country": ("DE", "Germany"),
        "city": "Falkenstein",
        "lat": 50.4777,
        "lon": 12.3649,
        "asn": "24940",
        "org": "Hetzner Online GmbH",
    },
    {
        "country": ("FR", "France"),
        "city": "Roubaix",
        "lat": 50.6942,
        "lon": 3.1746,
        "asn": "16276",
        "org": "OVH SAS",
    },
    {
        "country": ("BR", "Brazil"),
        "city": "Sao Paulo",
        "lat": -23.5335,
        "lon": -46.6359,
        "asn": "28573",
        "org": "Claro NXT Telecomunicacoes Ltda",
    },
    {
        "country": ("VN", "Vietnam"),
        "city": "Hanoi",
        "lat": 21.0292,
        "lon": 105.8526,
        "asn": "45899",
        "org": "VNPT Corp",
    },
    {
        "country": ("IN", "India"),
        "city": "Mumbai",
        "lat": 19.0748,
        "lon": 72.8856,
        "asn": "9829",
        "org": "National Internet Backbone",
    },
    {
        "country": ("KR", "South Korea"),
        "city": "Seoul",
        "lat": 37.5112,
        "lon": 126.9741,
        "asn": "4766",
        "org": "Korea Telecom",
    },
)

REGION_AZS: dict[str, tuple[str, ...]] = {
    "us-east-1": ("us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"),
    "us-east-2": ("us-east-2a", "us-east-2b", "us-east-2c"),
    "us-west-2": ("us-west-2a", "us-west-2b", "us-west-2c"),
    "eu-west-1": ("eu-west-1a", "eu-west-1b", "eu-west-1c"),
    "ap-southeast-2": ("ap-southeast-2a", "ap-southeast-2b"),
}

# (name, environment mix, regions, share of the fleet)
ACCOUNT_PLAN: tuple[tuple[str, tuple[str, ...], tuple[str, ...], float], ...] = (
    ("prod", ("prod",), ("us-east-1", "us-west-2", "eu-west-1"), 0.40),
    ("platform", ("prod", "staging"), ("us-east-1", "us-east-2"), 0.25),
    ("dev", ("dev", "test"), ("us-east-1", "eu-west-1"), 0.25),
    ("research", ("dev",), ("us-west-2", "ap-southeast-2"), 0.10),
)

# role: (instance types, name prefix, team, has public ip)
ROLES: dict[str, tuple[tuple[str, ...], str, str, bool]] = {
    "web": (("t3.medium", "m5.large", "c6i.large"), "web", "frontend", True),
    "api": (("m5.xlarge", "m6i.large", "c5.xlarge"), "api", "backend", True),
    "worker": (("c5.2xlarge", "m5.2xlarge", "c6i.4xlarge"), "worker", "backend", False),
    "batch": (("r5.2xlarge", "m5.4xlarge"), "batch", "data", False),
    "bastion": (("t3.micro", "t3.small"), "bastion", "platform", True),
    "jenkins": (("m5.xlarge", "c5.2xlarge"), "jenkins", "platform", True),
    "gpu": (("p3.2xlarge", "g4dn.xlarge", "g5.2xlarge"), "gpu-train", "ml", True),
    "k8s": (("m5.2xlarge", "m6i.2xlarge"), "eks-node", "platform", False),
    "db-proxy": (("t3.large",), "db-proxy", "data", False),
    "windows": (("m5.large", "t3.large"), "win-app", "corp-it", True),
}
ROLE_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("web", 20),
    ("api", 18),
    ("worker", 16),
    ("batch", 8),
    ("bastion", 4),
    ("jenkins", 4),
    ("gpu", 6),
    ("k8s", 14),
    ("db-proxy", 4),
    ("windows", 6),
)

IMAGES: tuple[tuple[str, str | None], ...] = (
    ("Amazon Linux 2023 AMI 2023.4.20240416.0 x86_64 HVM kernel-6.1", None),
    ("Amazon Linux 2 Kernel 5.10 AMI 2.0.20240412.0 x86_64 HVM gp2", None),
    ("Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on 2024-04-11", None),
    ("Canonical, Ubuntu, 20.04 LTS, amd64 focal image build on 2023-10-25", None),
    ("Amazon EKS Node 1.29 v20240415", None),
)
WINDOWS_IMAGE = ("Microsoft Windows Server 2022 Full Locale English AMI provided by Amazon", "windows")

IAM_USERS: tuple[str, ...] = (
    "alice",
    "bob",
    "carol",
    "deploy-bot",
    "terraform",
    "ci-runner",
    "data-export",
    "svc-backup",
    "dave",
    "erin",
)
ROLES_ASSUMED: tuple[str, ...] = (
    "OrganizationAccountAccessRole",
    "AdminRole",
    "ReadOnly",
    "DataPipelineRole",
    "GitHubActionsDeploy",
)


def hexstr(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def upper_alnum(rng: random.Random, n: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return "".join(rng.choice(alphabet) for _ in range(n))


def iso_ms(t: datetime) -> str:
    """ISO 8601 UTC with milliseconds and ``Z``, GuardDuty's timestamp format."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def iso_s(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def public_ip(rng: random.Random, prefixes: tuple[int, ...] = SCANNER_PREFIXES) -> str:
    return f"{rng.choice(prefixes)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def ec2_public_dns(ip: str, region: str) -> str:
    host = "ec2-" + ip.replace(".", "-")
    if region == "us-east-1":
        return f"{host}.compute-1.amazonaws.com"
    return f"{host}.{region}.compute.amazonaws.com"


def remote_ip_details(ip: str) -> dict[str, Any]:
    # The same address always gets the same location and network, as from a geo-IP database.
    g = GEO[zlib.crc32(ip.encode()) % len(GEO)]
    return {
        "ipAddressV4": ip,
        "organization": {"asn": g["asn"], "asnOrg": g["org"], "isp": g["org"], "org": g["org"]},
        "country": {"countryName": g["country"][1]},
        "city": {"cityName": g["city"]},
        "geoLocation": {"lat": g["lat"], "lon": g["lon"]},
    }


def tag_list(tags: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in tags]


@dataclass(frozen=True, slots=True)
class Account:
    account_id: str
    name: str
    environments: tuple[str, ...]
    regions: tuple[str, ...]
    detectors: dict[str, str]


@dataclass(frozen=True, slots=True)
class Instance:
    account: Account
    region: str
    az: str
    instance_id: str
    instance_type: str
    role: str
    image_id: str
    image_description: str
    platform: str | None
    launch_time: datetime
    vpc_id: str
    subnet_id: str
    eni_id: str
    private_ip: str
    public_ip: str | None
    security_groups: tuple[tuple[str, str], ...]
    profile_name: str
    profile_id: str
    tags: tuple[tuple[str, str], ...]
    environment: str
    crypto_approved: bool

    def private_dns(self) -> str:
        suffix = "ec2.internal" if self.region == "us-east-1" else f"{self.region}.compute.internal"
        return "ip-" + self.private_ip.replace(".", "-") + "." + suffix

    def details(self) -> dict[str, Any]:
        """``resource.instanceDetails`` in GuardDuty's wire format."""
        eni: dict[str, Any] = {
            "ipv6Addresses": [],
            "networkInterfaceId": self.eni_id,
            "privateDnsName": self.private_dns(),
            "privateIpAddress": self.private_ip,
            "privateIpAddresses": [
                {"privateDnsName": self.private_dns(), "privateIpAddress": self.private_ip}
            ],
            "subnetId": self.subnet_id,
            "vpcId": self.vpc_id,
            "securityGroups": [{"groupName": n, "groupId": g} for n, g in self.security_groups],
        }
        if self.public_ip:
            eni["publicDnsName"] = ec2_public_dns(self.public_ip, self.region)
            eni["publicIp"] = self.public_ip
        return {
            "instanceId": self.instance_id,
            "instanceType": self.instance_type,
            "launchTime": iso_ms(self.launch_time),
            "platform": self.platform,
            "productCodes": [],
            "iamInstanceProfile": {
                "arn": f"arn:aws:iam::{self.account.account_id}:instance-profile/{self.profile_name}",
                "id": self.profile_id,
            },
            "networkInterfaces": [eni],
            "tags": tag_list(self.tags),
            "instanceState": "running",
            "availabilityZone": self.az,
            "imageId": self.image_id,
            "imageDescription": self.image_description,
        }


@dataclass(frozen=True, slots=True)
class Principal:
    account: Account
    user_name: str
    user_type: str  # IAMUser | AssumedRole | Root
    principal_id: str
    access_key_id: str

    def details(self) -> dict[str, Any]:
        return {
            "accessKeyId": self.access_key_id,
            "principalId": self.principal_id,
            "userName": self.user_name,
            "userType": self.user_type,
        }


@dataclass(frozen=True, slots=True)
class Bucket:
    account: Account
    name: str
    created_at: float
    owner_id: str
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Cluster:
    account: Account
    region: str
    name: str
    vpc_id: str
    created_at: float
    tags: tuple[tuple[str, str], ...]

    @property
    def arn(self) -> str:
        return f"arn:aws:eks:{self.region}:{self.account.account_id}:cluster/{self.name}"


@dataclass(frozen=True, slots=True)
class Function:
    account: Account
    region: str
    name: str
    role: str
    last_modified: float
    revision_id: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group: tuple[str, str]
    tags: tuple[tuple[str, str], ...]

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account.account_id}:function:{self.name}"

    def details(self) -> dict[str, Any]:
        return {
            "functionArn": self.arn,
            "functionName": self.name,
            "description": f"{self.name} handler",
            "lastModifiedAt": self.last_modified,
            "revisionId": self.revision_id,
            "functionVersion": "$LATEST",
            "role": self.role,
            "vpcConfig": {
                "subnetIds": list(self.subnet_ids),
                "vpcId": self.vpc_id,
                "securityGroups": [{"groupName": self.security_group[0], "groupId": self.security_group[1]}],
            },
            "tags": tag_list(self.tags),
        }


@dataclass(slots=True)
class Fleet:
    accounts: list[Account]
    instances: list[Instance]
    principals: list[Principal]
    buckets: list[Bucket]
    clusters: list[Cluster]
    functions: list[Function]
    by_account: dict[str, list[Instance]] = field(default_factory=dict)

    def dev_instances(self) -> list[Instance]:
        return [i for i in self.instances if i.environment in ("dev", "test")]


def _uuid(rng: random.Random) -> str:
    h = hexstr(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:]}"


def build_fleet(rng: random.Random, n_instances: int, epoch: datetime) -> Fleet:
    """Draw an estate: 4 accounts over 5 regions, ``n_instances`` EC2 instances, IAM principals, S3 buckets,
    EKS clusters and Lambda functions. ``epoch`` is the start of the findings' time range."""
    accounts: list[Account] = []
    for name, envs, regions, _share in ACCOUNT_PLAN:
        acct_id = str(rng.randint(100_000_000_000, 999_999_999_999))
        accounts.append(Account(acct_id, name, envs, regions, {r: hexstr(rng, 32) for r in regions}))

    vpcs: dict[tuple[str, str], tuple[str, list[str], int]] = {}
    for a in accounts:
        for r in a.regions:
            vpcs[(a.account_id, r)] = (
                "vpc-" + hexstr(rng, 17),
                ["subnet-" + hexstr(rng, 17) for _ in range(3)],
                rng.randint(16, 254),
            )

    roles = [r for r, _ in ROLE_WEIGHTS]
    role_w = [w for _, w in ROLE_WEIGHTS]
    instances: list[Instance] = []
    by_account: dict[str, list[Instance]] = {a.account_id: [] for a in accounts}
    for idx in range(max(n_instances, len(accounts))):
        a = (
            accounts[idx % len(accounts)]
            if idx < len(accounts)
            else rng.choices(accounts, weights=[p[3] for p in ACCOUNT_PLAN])[0]
        )
        region = rng.choice(a.regions)
        env = rng.choice(a.environments)
        role = rng.choices(roles, weights=role_w)[0]
        if a.name == "research" and rng.random() < 0.5:
            role = "gpu"
        types, prefix, team, has_public = ROLES[role]
        desc, platform = WINDOWS_IMAGE if role == "windows" else rng.choice(IMAGES)
        vpc_id, subnets, octet = vpcs[(a.account_id, region)]
        private_ip = f"10.{octet}.{rng.randint(0, 63)}.{rng.randint(4, 250)}"
        pub = public_ip(rng, (3, 18, 34, 35, 44, 52, 54)) if has_public else None
        crypto_approved = a.name == "research" and role == "gpu" and rng.random() < 0.6
        n_in_role = sum(1 for i in by_account[a.account_id] if i.role == role) + 1
        tags: list[tuple[str, str]] = [
            ("Name", f"{prefix}-{env}-{n_in_role:02d}"),
            ("Environment", env),
            ("Team", team),
        ]
        if rng.random() < 0.5:
            tags.append(("CostCenter", f"cc-{rng.randint(1000, 1999)}"))
        if crypto_approved:
            tags += [("Project", "blockchain-research"), ("CryptoApproved", "true")]
        if role == "k8s":
            tags.append(("eks:cluster-name", f"{a.name}-eks"))
        sg = [(f"{prefix}-{env}-sg", "sg-" + hexstr(rng, 17))]
        if rng.random() < 0.3:
            sg.append(("default", "sg-" + hexstr(rng, 17)))
        inst = Instance(
            account=a,
            region=region,
            az=rng.choice(REGION_AZS[region]),
            instance_id="i-0" + hexstr(rng, 16),
            instance_type=rng.choice(types),
            role=role,
            image_id="ami-0" + hexstr(rng, 16),
            image_description=desc,
            platform=platform,
            launch_time=(epoch - timedelta(days=rng.randint(1, 400), seconds=rng.randint(0, 86399))).replace(
                microsecond=0
            ),
            vpc_id=vpc_id,
            subnet_id=rng.choice(subnets),
            eni_id="eni-0" + hexstr(rng, 16),
            private_ip=private_ip,
            public_ip=pub,
            security_groups=tuple(sg),
            profile_name=f"{prefix}-{env}-profile",
            profile_id="AIPA" + upper_alnum(rng, 17),
            tags=tuple(tags),
            environment=env,
            crypto_approved=crypto_approved,
        )
        instances.append(inst)
        by_account[a.account_id].append(inst)

    principals: list[Principal] = []
    for a in accounts:
        principals.append(Principal(a, "Root", "Root", a.account_id, "ASIA" + upper_alnum(rng, 16)))
        for u in rng.sample(IAM_USERS, 5):
            principals.append(
                Principal(a, u, "IAMUser", "AIDA" + upper_alnum(rng, 17), "AKIA" + upper_alnum(rng, 16))
            )
        for r in rng.sample(ROLES_ASSUMED, 3):
            principals.append(
                Principal(
                    a,
                    r,
                    "AssumedRole",
                    "AROA" + upper_alnum(rng, 17) + ":" + rng.choice(IAM_USERS),
                    "ASIA" + upper_alnum(rng, 16),
                )
            )

    buckets: list[Bucket] = []
    for a in accounts:
        for purpose in rng.sample(
            ("logs", "backups", "assets", "data-lake", "exports", "artifacts", "tfstate"), 4
        ):
            buckets.append(
                Bucket(
                    a,
                    f"{a.name}-{purpose}-{a.account_id[-4:]}",
                    round((epoch - timedelta(days=rng.randint(30, 1500))).timestamp() + rng.random(), 3),
                    hexstr(rng, 64),
                    (("Environment", a.environments[0]), ("DataClass", rng.choice(("internal", "public")))),
                )
            )

    clusters: list[Cluster] = []
    functions: list[Function] = []
    for a in accounts:
        region = a.regions[0]
        vpc_id, subnets, _ = vpcs[(a.account_id, region)]
        env = a.environments[0]
        clusters.append(
            Cluster(
                a,
                region,
                f"{a.name}-eks",
                vpc_id,
                round((epoch - timedelta(days=rng.randint(30, 700))).timestamp() + rng.random(), 3),
                (("Environment", env), ("Team", "platform")),
            )
        )
        for fn in rng.sample(
            ("image-resize", "webhook-handler", "report-builder", "etl-trigger", "slack-notify"), 3
        ):
            functions.append(
                Function(
                    a,
                    region,
                    f"{a.name}-{fn}",
                    f"arn:aws:iam::{a.account_id}:role/service-role/{fn}-role",
                    round((epoch - timedelta(days=rng.randint(1, 300))).timestamp() + rng.random(), 3),
                    _uuid(rng),
                    vpc_id,
                    tuple(subnets[:2]),
                    (f"{fn}-sg", "sg-" + hexstr(rng, 17)),
                    (("Environment", env),),
                )
            )

    return Fleet(accounts, instances, principals, buckets, clusters, functions, by_account)


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (deterministic, unlike ``uuid.uuid4``)."""
    return _uuid(rng)
