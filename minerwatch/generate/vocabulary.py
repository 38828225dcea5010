"""GuardDuty finding types the generator draws, with their severities, titles and descriptions, and the
indicators (mining pools, miner binaries, ports) crypto findings point at."""

from __future__ import annotations

from dataclasses import dataclass

MINING_POOLS: tuple[tuple[str, str, int], ...] = (
    ("xmr.nanopool.org", "198.51.100.23", 14444),
    ("xmr-eu1.nanopool.org", "198.51.100.24", 14444),
    ("pool.minergate.com", "203.0.113.45", 3333),
    ("pool.supportxmr.com", "203.0.113.80", 3333),
    ("mine.moneropool.com", "198.51.100.77", 3333),
    ("monero.herominers.com", "203.0.113.9", 4444),
    ("xmr.f2pool.com", "198.51.100.201", 4444),
    ("mine.c3pool.com", "203.0.113.190", 14444),
    ("eu1.ethermine.org", "198.51.100.150", 4444),
    ("pool.hashvault.pro", "203.0.113.140", 443),
)
MINING_PORTS: tuple[int, ...] = (3333, 4444, 14444)

MINER_BINARIES: tuple[tuple[str, str], ...] = (
    ("xmrig", "/tmp/.ICE-unix/xmrig"),
    ("kdevtmpfsi", "/tmp/kdevtmpfsi"),
    ("kinsing", "/var/tmp/kinsing"),
    ("xmrig", "/dev/shm/.x/xmrig"),
    ("ld-linux", "/var/tmp/.systemd/ld-linux"),
)

PROBE_PORTS: tuple[tuple[int, str], ...] = (
    (22, "SSH"),
    (3389, "RDP"),
    (80, "HTTP"),
    (443, "HTTPS"),
    (5432, "PostgreSQL"),
    (3306, "MySQL"),
    (23, "Telnet"),
    (8080, "Unknown"),
    (9200, "Unknown"),
    (6379, "Unknown"),
)
C2_DOMAINS: tuple[str, ...] = ("update.microsoft-cdn.top", "api.telemetry-sync.xyz", "cdn.jquery-static.pw")
EXFIL_DOMAINS: tuple[str, ...] = ("d41d8cd98f00b204e98.dnslog.click", "aGVsbG8td29ybGQ.tunnel.zone")
BLACKHOLE_DOMAINS: tuple[str, ...] = ("sinkhole.example-blackhole.net", "0.0.0.0.nip.io")
IAM_RECON_APIS: tuple[str, ...] = (
    "ListUsers",
    "ListRoles",
    "GetAccountAuthorizationDetails",
    "ListAccessKeys",
    "DescribeInstances",
    "ListBuckets",
    "GetCallerIdentity",
    "ListAttachedRolePolicies",
)
USER_AGENTS: tuple[str, ...] = (
    "aws-cli/2.15.30 Python/3.11.8 Linux/5.15.0-1051-aws exe/x86_64.ubuntu.22",
    "Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#6.1.0 md/arch#x86_64 lang/python#3.11.6",
    "aws-sdk-go-v2/1.26.0 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64",
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488]",
)

# Types matched by the seed rule: type like "%CryptoCurrency%" (the other two arms are implied by it).
CRYPTO_MARKER = "CryptoCurrency"


def seed_rule_matches(finding_type: str, severity: float) -> bool:
    """The seed rule's where-clause, with SQL precedence, written out independently of the engine."""
    return (
        CRYPTO_MARKER in finding_type
        or finding_type == "CryptoCurrency:EC2/BitcoinTool.B!DNS"
        or (finding_type == "CryptoCurrency:EC2/BitcoinTool.B" and severity >= 7)
    )


@dataclass(frozen=True, slots=True)
class Kind:
    type: str
    severity: float
    target: str  # instance | accesskey | s3 | eks | lambda
    action: (
        str  # probe | ssh_in | rdp_in | net_out | c2_out | dns | api | s3_api | k8s | runtime | pool_out ...
    )
    role: str  # resourceRole
    feature: str  # service.featureName
    title: str
    description: str
    weight: float = 0.0


# fmt: off
BENIGN: tuple[Kind, ...] = (
    Kind("Recon:EC2/PortProbeUnprotectedPort", 2, "instance", "probe", "TARGET", "FlowLogs",
         "Unprotected port on EC2 instance {instance} is being probed.",
         "EC2 instance has an unprotected port which is being probed by a known malicious host.", 25),
    Kind("UnauthorizedAccess:EC2/SSHBruteForce", 2, "instance", "ssh_in", "TARGET", "FlowLogs",
         "{ip} is performing SSH brute force attacks against {instance}.",
         "{ip} is performing SSH brute force attacks against {instance}. Brute force attacks are used to "
         "gain unauthorized access to your instance by guessing the SSH password.", 15),
    Kind("UnauthorizedAccess:EC2/RDPBruteForce", 2, "windows", "rdp_in", "TARGET", "FlowLogs",
         "{ip} is performing RDP brute force attacks against {instance}.",
         "{ip} is performing RDP brute force attacks against {instance}. Brute force attacks are used to "
         "gain unauthorized access to your instance by guessing the RDP password.", 4),
    Kind("Recon:EC2/Portscan", 5, "instance", "scan_out", "ACTOR", "FlowLogs",
         "EC2 instance {instance} is performing outbound port scans against remote host {ip}.",
         "EC2 instance {instance} is performing outbound port scans against remote host {ip}.", 3),
    Kind("Behavior:EC2/NetworkPortUnusual", 5, "instance", "unusual_out", "ACTOR", "FlowLogs",
         "Unusual outbound communication seen from EC2 instance {instance} on server port {port}.",
         "EC2 instance {instance} is communicating with a remote host on an unusual server port {port}.", 5),
    Kind("Trojan:EC2/DNSDataExfiltration", 8, "instance", "dns_exfil", "ACTOR", "DnsLogs",
         "Data exfiltration through DNS queries from EC2 instance {instance}.",
         "EC2 instance {instance} is attempting to query domain names that resemble exfiltrated data. This "
         "could be an indication of a compromised instance.", 1),
    Kind("Backdoor:EC2/C&CActivity.B!DNS", 8, "instance", "dns_c2", "ACTOR", "DnsLogs",
         "Command and Control server domain name queried by EC2 instance {instance}.",
         "EC2 instance {instance} is querying a domain name {domain} that is associated with a known "
         "Command & Control server.", 1.5),
    Kind("Trojan:EC2/BlackholeTraffic!DNS", 5, "instance", "dns_blackhole", "ACTOR", "DnsLogs",
         "Blackholed domain name queried by EC2 instance {instance}.",
         "EC2 instance {instance} is querying a domain name of a blackholed domain.", 2),
    Kind("Impact:EC2/BitcoinDomainRequest.Reputation", 8, "instance", "dns_pool", "ACTOR", "DnsLogs",
         "Domain related to cryptocurrency queried by EC2 instance {instance}.",
         "EC2 instance {instance} is querying a low reputation domain that is associated with "
         "cryptocurrency-related activity.", 0.5),
    Kind("Recon:IAMUser/MaliciousIPCaller", 5, "accesskey", "api", "TARGET", "CloudTrail",
         "Reconnaissance API {api} was invoked from a known malicious IP address {ip}.",
         "API {api}, commonly used in reconnaissance attacks, was invoked from a known malicious IP "
         "address {ip}. Unauthorized actors perform this type of activity to gather information and "
         "discover resources like databases, S3 buckets etc., in order to further tailor the attack.", 4),
    Kind("Recon:IAMUser/TorIPCaller", 5, "accesskey", "api", "TARGET", "CloudTrail",
         "API {api} was invoked from a Tor exit node IP address {ip}.",
         "API {api} was invoked from Tor exit node IP address {ip}.", 2),
    Kind("Discovery:IAMUser/AnomalousBehavior", 2, "accesskey", "api", "TARGET", "CloudTrail",
         "The user {user} is invoking an unusual discovery API {api}.",
         "APIs commonly used in Discovery tactics were invoked by user {user} under unusual "
         "circumstances.", 6),
    Kind("UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS", 8, "accesskey", "api",
         "TARGET", "CloudTrail",
         "Credentials for instance role {user} used from external IP address.",
         "Credentials created exclusively for an EC2 instance using instance role {user} have been used "
         "from external IP address {ip}.", 1),
    Kind("Policy:IAMUser/RootCredentialUsage", 2, "root", "api", "TARGET", "CloudTrail",
         "API {api} was invoked using root credentials.",
         "API {api} was invoked using root credentials from IP address {ip}.", 4),
    Kind("Stealth:IAMUser/CloudTrailLoggingDisabled", 2, "accesskey", "api_stoplogging",
         "TARGET", "CloudTrail",
         "AWS CloudTrail trail {trail} was disabled.",
         "The user {user} disabled CloudTrail logging for trail {trail}.", 1),
    Kind("Policy:S3/BucketBlockPublicAccessDisabled", 2, "s3", "s3_pab", "TARGET", "CloudTrail",
         "Amazon S3 Block Public Access was disabled for S3 bucket {bucket}.",
         "Amazon S3 Block Public Access was disabled for S3 bucket {bucket} by {user} calling "
         "PutBucketPublicAccessBlock. If this behavior is not expected, it may indicate a configuration "
         "mistake or that your credentials are compromised.", 3),
    Kind("Policy:S3/BucketAnonymousAccessGranted", 8, "s3", "s3_policy", "TARGET", "CloudTrail",
         "Amazon S3 bucket {bucket} was granted anonymous access.",
         "Amazon S3 bucket {bucket} was granted public anonymous access by {user} calling "
         "PutBucketPolicy.", 1),
    Kind("Discovery:S3/MaliciousIPCaller", 8, "s3", "s3_list", "TARGET", "S3DataEvents",
         "S3 API {api} was invoked from a known malicious IP address {ip}.",
         "An API commonly used to discover S3 objects, {api}, was invoked on bucket {bucket} from a known "
         "malicious IP address {ip}.", 2),
    Kind("Discovery:S3/AnomalousBehavior", 2, "s3", "s3_list", "TARGET", "S3DataEvents",
         "Unusual Discovery API {api} was invoked by {user} on S3 bucket {bucket}.",
         "APIs commonly used in Discovery tactics were invoked on bucket {bucket} by {user} under unusual "
         "circumstances.", 4),
    Kind("Discovery:Kubernetes/SuccessfulAnonymousAccess", 5, "eks", "k8s_anon", "TARGET", "EksAuditLogs",
         "Kubernetes API commonly used in Discovery tactics invoked by the anonymous user.",
         "Kubernetes API commonly used in Discovery tactics was invoked on cluster {cluster} by the "
         "anonymous user system:anonymous.", 2),
    Kind("Policy:Kubernetes/AnonymousAccessGranted", 8, "eks", "k8s_bind", "TARGET", "EksAuditLogs",
         "The system:anonymous user was granted API permissions on a Kubernetes cluster.",
         "The system:anonymous user was granted API permissions on Kubernetes cluster {cluster}.", 0.5),
    Kind("Execution:Runtime/NewBinaryExecuted", 2, "instance", "runtime_exec", "TARGET", "RuntimeMonitoring",
         "A newly created or recently modified binary file has been executed.",
         "A newly created or recently modified binary file {process} has been executed on EC2 instance "
         "{instance}.", 3),
    Kind("UnauthorizedAccess:Lambda/MaliciousIPCaller.Custom", 8, "lambda", "c2_out",
         "ACTOR", "LambdaNetworkLogs",
         "Lambda function {function} is communicating with an IP address on a custom threat list.",
         "Lambda function {function} is communicating with IP address {ip} on custom threat list.", 1),
    Kind("Backdoor:Lambda/C&CActivity.B", 8, "lambda", "c2_out", "ACTOR", "LambdaNetworkLogs",
         "Lambda function {function} is querying an IP address associated with a known Command & Control "
         "server.",
         "Lambda function {function} is communicating with IP address {ip} that is associated with a known "
         "Command & Control server.", 0.5),
)

CRYPTO: dict[str, Kind] = {k.type: k for k in (
    Kind("CryptoCurrency:EC2/BitcoinTool.B", 8, "instance", "pool_out", "ACTOR", "FlowLogs",
         "Bitcoin-related IP address contacted by EC2 instance {instance}.",
         "EC2 instance {instance} is communicating with IP address {ip} on port {port}, which is "
         "associated with cryptocurrency-related activity."),
    Kind("CryptoCurrency:EC2/BitcoinTool.B!DNS", 8, "instance", "dns_pool", "ACTOR", "DnsLogs",
         "Bitcoin-related domain name queried by EC2 instance {instance}.",
         "EC2 instance {instance} is querying a domain name that is associated with Bitcoin-related "
         "activity."),
    Kind("CryptoCurrency:Runtime/BitcoinTool.B", 8, "instance", "runtime_pool_out",
         "ACTOR", "RuntimeMonitoring",
         "A process is communicating with a cryptocurrency-related IP address.",
         "The process {process} on EC2 instance {instance} is communicating with IP address {ip}, which is "
         "associated with cryptocurrency-related activity."),
    Kind("CryptoCurrency:Runtime/BitcoinTool.B!DNS", 8, "instance", "runtime_dns_pool",
         "ACTOR", "RuntimeMonitoring",
         "A process is querying a cryptocurrency-related domain name.",
         "The process {process} on EC2 instance {instance} is querying domain {domain}, which is "
         "associated with cryptocurrency-related activity."),
    Kind("CryptoCurrency:Lambda/BitcoinTool.B", 8, "lambda", "pool_out", "ACTOR", "LambdaNetworkLogs",
         "Lambda function {function} is querying an IP address associated with cryptocurrency-related "
         "activity.",
         "Lambda function {function} is communicating with IP address {ip}, which is associated with "
         "Bitcoin-related activity."),
)}
# fmt: on
IMPACT_REPUTATION = next(k for k in BENIGN if k.type == "Impact:EC2/BitcoinDomainRequest.Reputation")

# AWS sample findings (CreateSampleFindings): type, severity, title, description.
# fmt: off
SAMPLE_TYPES: tuple[tuple[str, float, str, str], ...] = (
    ("CryptoCurrency:EC2/BitcoinTool.B!DNS", 8,
     "Bitcoin-related domain name queried by EC2 instance i-99999999.",
     "EC2 instance i-99999999 is querying a domain name that is associated with Bitcoin-related activity."),
    ("Backdoor:EC2/C&CActivity.B", 8,
     "EC2 instance i-99999999 communicating outbound with C&C Server.",
     "EC2 instance i-99999999 is communicating outbound with a known Command & Control Server 198.51.100.1 "
     "located in GeneratedFindingCountryName."),
    ("Impact:EC2/BitcoinDomainRequest.Reputation", 8,
     "Domain related to cryptocurrency queried by EC2 instance i-99999999.",
     "EC2 instance i-99999999 is querying a low reputation domain that is associated with "
     "cryptocurrency-related activity."),
    ("CryptoCurrency:EC2/BitcoinTool.B", 8,
     "Bitcoin-related IP address contacted by EC2 instance i-99999999.",
     "EC2 instance i-99999999 is communicating with IP address 198.51.100.1 which is associated with "
     "Bitcoin-related activity."),
    ("Recon:EC2/PortProbeUnprotectedPort", 2,
     "Unprotected port on EC2 instance i-99999999 is being probed.",
     "EC2 instance has an unprotected port which is being probed by a known malicious host."),
    ("UnauthorizedAccess:EC2/SSHBruteForce", 2,
     "198.51.100.1 is performing SSH brute force attacks against i-99999999.",
     "198.51.100.1 is performing SSH brute force attacks against i-99999999. Brute force attacks are used "
     "to gain unauthorized access to your instance by guessing the SSH password."),
)
# fmt: on
