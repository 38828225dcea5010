"""Finding types and builders: one function turns (type, resource, time) into a GuardDuty finding in the
camelCase wire format (the shape of EventBridge ``detail``, S3 exports and the REST API).

Titles, descriptions, severities, resource and action shapes follow the findings GuardDuty sends; the real
examples under the project's shared samples are the reference.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from minerwatch.generate.fleet import (
    Account,
    Bucket,
    Cluster,
    Fleet,
    Function,
    Instance,
    Principal,
    hexstr,
    iso_ms,
    new_uuid,
    public_ip,
    remote_ip_details,
    tag_list,
)
from minerwatch.generate.vocabulary import (
    BLACKHOLE_DOMAINS,
    C2_DOMAINS,
    EXFIL_DOMAINS,
    IAM_RECON_APIS,
    MINING_POOLS,
    PROBE_PORTS,
    SAMPLE_TYPES,
    USER_AGENTS,
    Kind,
)


@dataclass(slots=True)
class Target:
    """What a finding is about; exactly one of the resource fields is set (instance may join cluster)."""

    account: Account
    region: str
    instance: Instance | None = None
    principal: Principal | None = None
    bucket: Bucket | None = None
    cluster: Cluster | None = None
    function: Function | None = None


def pick_target(rng: random.Random, fleet: Fleet, kind: Kind) -> Target:
    t = kind.target
    if t in ("instance", "windows"):
        pool = [i for i in fleet.instances if i.role == "windows"] if t == "windows" else fleet.instances
        inst = rng.choice(pool or fleet.instances)
        return Target(inst.account, inst.region, instance=inst)
    if t in ("accesskey", "root"):
        cands = [p for p in fleet.principals if (p.user_type == "Root") == (t == "root")]
        p = rng.choice(cands)
        return Target(p.account, rng.choice(p.account.regions), principal=p)
    if t == "s3":
        b = rng.choice(fleet.buckets)
        users = [p for p in fleet.principals if p.account is b.account and p.user_type != "Root"]
        return Target(b.account, b.account.regions[0], bucket=b, principal=rng.choice(users))
    if t == "eks":
        c = rng.choice(fleet.clusters)
        return Target(c.account, c.region, cluster=c)
    if t == "lambda":
        f = rng.choice(fleet.functions)
        return Target(f.account, f.region, function=f)
    raise ValueError(f"unknown target kind {t!r}")


def _eks_details(c: Cluster) -> dict[str, Any]:
    return {
        "name": c.name,
        "arn": c.arn,
        "vpcId": c.vpc_id,
        "status": "ACTIVE",
        "tags": tag_list(c.tags),
        "createdAt": c.created_at,
    }


def _resource(rng: random.Random, kind: Kind, tgt: Target, miner_pod: bool) -> dict[str, Any]:
    if tgt.function is not None:
        return {"resourceType": "Lambda", "lambdaDetails": tgt.function.details()}
    if tgt.cluster is not None and tgt.instance is None:
        anon = kind.action.startswith("k8s")
        return {
            "resourceType": "EKSCluster",
            "eksClusterDetails": _eks_details(tgt.cluster),
            "kubernetesDetails": {
                "kubernetesUserDetails": {
                    "username": "system:anonymous" if anon else "kubernetes-admin",
                    "uid": "",
                    "groups": ["system:unauthenticated"]
                    if anon
                    else ["system:masters", "system:authenticated"],
                },
                "kubernetesWorkloadDetails": None,
            },
        }
    if tgt.bucket is not None:
        b = tgt.bucket
        assert tgt.principal is not None
        public = kind.action == "s3_policy"
        return {
            "resourceType": "S3Bucket",
            "accessKeyDetails": tgt.principal.details(),
            "s3BucketDetails": [
                {
                    "arn": f"arn:aws:s3:::{b.name}",
                    "name": b.name,
                    "type": "Destination",
                    "createdAt": b.created_at,
                    "owner": {"id": b.owner_id},
                    "tags": tag_list(b.tags),
                    "defaultServerSideEncryption": {"encryptionType": "AES256"},
                    "publicAccess": {
                        "permissionConfiguration": {
                            "bucketLevelPermissions": {
                                "accessControlList": {
                                    "allowsPublicReadAccess": False,
                                    "allowsPublicWriteAccess": False,
                                },
                                "bucketPolicy": {
                                    "allowsPublicReadAccess": public,
                                    "allowsPublicWriteAccess": False,
                                },
                                "blockPublicAccess": {
                                    "ignorePublicAcls": not public,
                                    "restrictPublicBuckets": not public,
                                    "blockPublicAcls": not public,
                                    "blockPublicPolicy": not public,
                                },
                            },
                            "accountLevelPermissions": {
                                "blockPublicAccess": {
                                    "ignorePublicAcls": False,
                                    "restrictPublicBuckets": False,
                                    "blockPublicAcls": False,
                                    "blockPublicPolicy": False,
                                },
                            },
                        },
                        "effectivePermission": "PUBLIC" if public else "NOT_PUBLIC",
                    },
                }
            ],
        }
    if tgt.principal is not None:
        return {"resourceType": "AccessKey", "accessKeyDetails": tgt.principal.details()}
    assert tgt.instance is not None
    res: dict[str, Any] = {"resourceType": "Instance", "instanceDetails": tgt.instance.details()}
    if miner_pod and tgt.cluster is not None:
        # Runtime findings from an EKS node: cluster, workload and the node instance together.
        res = {
            "resourceType": "EKSCluster",
            "eksClusterDetails": _eks_details(tgt.cluster),
            "kubernetesDetails": {
                "kubernetesUserDetails": None,
                "kubernetesWorkloadDetails": {
                    "name": "metrics-helper-" + hexstr(rng, 5),
                    "type": "pods",
                    "uid": new_uuid(rng),
                    "namespace": "default",
                    "hostNetwork": False,
                    "serviceAccountName": "default",
                    "containers": [
                        {
                            "containerRuntime": "containerd",
                            "id": hexstr(rng, 64),
                            "name": "helper",
                            "image": "docker.io/library/alpine:3.19",
                            "imagePrefix": "docker.io",
                        }
                    ],
                },
            },
            "instanceDetails": tgt.instance.details(),
        }
    return res


def _net(
    direction: str,
    local_ip: str,
    local_port: tuple[int, str],
    remote: dict[str, Any],
    remote_port: tuple[int, str],
) -> dict[str, Any]:
    return {
        "actionType": "NETWORK_CONNECTION",
        "networkConnectionAction": {
            "connectionDirection": direction,
            "localIpDetails": {"ipAddressV4": local_ip},
            "remoteIpDetails": remote,
            "remotePortDetails": {"port": remote_port[0], "portName": remote_port[1]},
            "localPortDetails": {"port": local_port[0], "portName": local_port[1]},
            "protocol": "TCP",
            "blocked": False,
        },
    }


def _dns(domain: str) -> dict[str, Any]:
    parts = domain.split(".")
    return {
        "actionType": "DNS_REQUEST",
        "dnsRequestAction": {
            "domain": domain,
            "protocol": "UDP",
            "blocked": False,
            "domainWithSuffix": ".".join(parts[-2:]),
        },
    }


def _process(rng: random.Random, name: str, path: str, t0: datetime) -> dict[str, Any]:
    pid = rng.randint(1000, 60000)
    parent = new_uuid(rng)
    start = round(t0.timestamp() - rng.uniform(5, 600), 3)
    return {
        "name": name,
        "executablePath": path,
        "executableSha256": hexstr(rng, 64),
        "namespacePid": pid,
        "pwd": "/tmp",
        "pid": pid,
        "startTime": start,
        "uuid": new_uuid(rng),
        "parentUuid": parent,
        "user": "root",
        "userId": 0,
        "euid": 0,
        "lineage": [
            {
                "startTime": round(start - rng.uniform(1, 30), 3),
                "namespacePid": pid - 3,
                "userId": 0,
                "name": "sh",
                "pid": pid - 3,
                "uuid": parent,
                "executablePath": "/usr/bin/dash",
                "euid": 0,
                "parentUuid": new_uuid(rng),
            },
        ],
    }


def _local_ip(tgt: Target, rng: random.Random) -> str:
    if tgt.instance is not None:
        return tgt.instance.private_ip
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(4, 250)}"


def build_finding(
    rng: random.Random,
    kind: Kind,
    tgt: Target,
    created: datetime,
    first_seen: datetime,
    *,
    pool: tuple[str, str, int] | None = None,
    miner: tuple[str, str] | None = None,
    miner_pod: bool = False,
) -> dict[str, Any]:
    """One finding, ``service.count`` 1, ``createdAt`` = ``updatedAt`` = ``created``."""
    values: dict[str, Any] = {
        "instance": tgt.instance.instance_id if tgt.instance else "",
        "function": tgt.function.name if tgt.function else "",
        "cluster": tgt.cluster.name if tgt.cluster else "",
        "bucket": tgt.bucket.name if tgt.bucket else "",
        "user": tgt.principal.user_name if tgt.principal else "",
        "trail": "management-events",
        "ip": "",
        "port": "",
        "domain": "",
        "api": "",
        "process": "",
    }
    extra: dict[str, Any] = {}
    evidence: dict[str, Any] | None = None
    runtime: dict[str, Any] | None = None
    a = kind.action
    remote_ip = public_ip(rng)
    values["ip"] = remote_ip
    eph = (rng.randint(32768, 60999), "Unknown")
    if a in ("pool_out", "runtime_pool_out"):
        assert pool is not None
        values.update(ip=pool[1], port=pool[2], domain=pool[0])
        action = _net("OUTBOUND", _local_ip(tgt, rng), eph, remote_ip_details(pool[1]), (pool[2], "Unknown"))
        evidence = {
            "threatIntelligenceDetails": [{"threatListName": "ProofPoint", "threatNames": ["CryptoCurrency"]}]
        }
    elif a in ("dns_pool", "runtime_dns_pool"):
        domain = pool[0] if pool else rng.choice(MINING_POOLS)[0]
        values["domain"] = domain
        action = _dns(domain)
        evidence = {
            "threatIntelligenceDetails": [{"threatListName": "ProofPoint", "threatNames": ["CryptoCurrency"]}]
        }
    elif a == "probe":
        port = rng.choice(PROBE_PORTS)
        values["port"] = port[0]
        action = {
            "actionType": "PORT_PROBE",
            "portProbeAction": {
                "blocked": False,
                "portProbeDetails": [
                    {
                        "localPortDetails": {"port": port[0], "portName": port[1]},
                        "localIpDetails": {"ipAddressV4": _local_ip(tgt, rng)},
                        "remoteIpDetails": remote_ip_details(remote_ip),
                    }
                ],
            },
        }
        extra = {"threatName": "Scanner", "threatListName": "ProofPoint"}
    elif a in ("ssh_in", "rdp_in"):
        local = (22, "SSH") if a == "ssh_in" else (3389, "RDP")
        action = _net("INBOUND", _local_ip(tgt, rng), local, remote_ip_details(remote_ip), eph)
    elif a in ("scan_out", "unusual_out", "c2_out"):
        port = {
            "scan_out": (rng.choice((22, 23, 445, 3389, 5900)), "Unknown"),
            "unusual_out": (rng.choice((80, 25, 6667, 8333, 1337)), "Unknown"),
            "c2_out": (443, "HTTPS"),
        }[a]
        values["port"] = port[0]
        action = _net("OUTBOUND", _local_ip(tgt, rng), eph, remote_ip_details(remote_ip), port)
        if a == "unusual_out":
            extra = {
                "localPort": str(eph[0]),
                "outBytes": str(rng.randint(200, 90000)),
                "inBytes": str(rng.randint(200, 900000)),
                "unusual": str(port[0]),
            }
        if a == "c2_out":
            evidence = {
                "threatIntelligenceDetails": [{"threatListName": "ProofPoint", "threatNames": ["Backdoor"]}]
            }
    elif a in ("dns_exfil", "dns_c2", "dns_blackhole"):
        domain = rng.choice(
            {"dns_exfil": EXFIL_DOMAINS, "dns_c2": C2_DOMAINS, "dns_blackhole": BLACKHOLE_DOMAINS}[a]
        )
        values["domain"] = domain
        action = _dns(domain)
    elif a in ("api", "api_stoplogging", "s3_pab", "s3_policy", "s3_list"):
        api = {
            "api_stoplogging": "StopLogging",
            "s3_pab": "PutBucketPublicAccessBlock",
            "s3_policy": "PutBucketPolicy",
            "s3_list": rng.choice(("ListObjects", "GetBucketLocation", "ListObjectsV2")),
        }.get(a)
        api = api or rng.choice(IAM_RECON_APIS)
        values["api"] = api
        service = (
            "s3.amazonaws.com"
            if a.startswith("s3")
            else ("cloudtrail.amazonaws.com" if a == "api_stoplogging" else "iam.amazonaws.com")
        )
        affected = {"AWS::S3::Bucket": tgt.bucket.name} if tgt.bucket else {}
        if a == "api_stoplogging":
            affected = {"AWS::CloudTrail::Trail": "management-events"}
        action = {
            "actionType": "AWS_API_CALL",
            "awsApiCallAction": {
                "api": api,
                "serviceName": service,
                "callerType": "Remote IP",
                "remoteIpDetails": remote_ip_details(remote_ip),
                "userAgent": rng.choice(USER_AGENTS),
                "affectedResources": affected,
            },
        }
    elif a in ("k8s_anon", "k8s_bind"):
        verb, uri = (
            ("get", "/api/v1/namespaces")
            if a == "k8s_anon"
            else ("create", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
        )
        action = {
            "actionType": "KUBERNETES_API_CALL",
            "kubernetesApiCallAction": {
                "requestUri": uri,
                "verb": verb,
                "sourceIPs": [remote_ip],
                "userAgent": "kubectl/v1.29.2",
                "remoteIpDetails": remote_ip_details(remote_ip),
                "statusCode": 200,
            },
        }
    elif a == "runtime_exec":
        action = {}
    else:
        raise ValueError(f"unknown action {a!r}")

    if kind.feature == "RuntimeMonitoring":
        name, path = miner or (
            rng.choice(("update", "svc", "agent")),
            "/tmp/" + rng.choice(("update", "svc", "agent")),
        )
        runtime = {"process": _process(rng, name, path, created)}
        values["process"] = path

    acct = tgt.account.account_id
    detector = tgt.account.detectors.get(tgt.region) or next(iter(tgt.account.detectors.values()))
    fid = hexstr(rng, 32)
    info = dict(extra)
    service: dict[str, Any] = {
        "serviceName": "guardduty",
        "detectorId": detector,
        "featureName": kind.feature,
        "action": action,
        "resourceRole": kind.role,
        "additionalInfo": info | {"value": orjson.dumps(info).decode(), "type": "default"},
        "evidence": evidence,
        "eventFirstSeen": iso_ms(first_seen.replace(microsecond=0)),
        "eventLastSeen": iso_ms(first_seen.replace(microsecond=0)),
        "archived": False,
        "count": 1,
    }
    if runtime is not None:
        service["runtimeDetails"] = runtime
    ts = iso_ms(created)
    return {
        "schemaVersion": "2.0",
        "accountId": acct,
        "region": tgt.region,
        "partition": "aws",
        "id": fid,
        "arn": f"arn:aws:guardduty:{tgt.region}:{acct}:detector/{detector}/finding/{fid}",
        "type": kind.type,
        "resource": _resource(rng, kind, tgt, miner_pod),
        "service": service,
        "severity": kind.severity,
        "createdAt": ts,
        "updatedAt": ts,
        "title": kind.title.format(**values),
        "description": kind.description.format(**values),
    }


def build_sample(
    rng: random.Random, account: Account, region: str, index: int, created: datetime
) -> dict[str, Any]:
    """An AWS-generated sample finding (CreateSampleFindings): placeholder values, ``sample: true``."""
    ftype, sev, title, desc = SAMPLE_TYPES[index % len(SAMPLE_TYPES)]
    detector = account.detectors.get(region) or next(iter(account.detectors.values()))
    fid = hexstr(rng, 32)
    net = "DNS" not in ftype and "Domain" not in ftype
    if net:
        action: dict[str, Any] = _net(
            "OUTBOUND",
            "10.0.0.23",
            (2000, "Unknown"),
            {
                "ipAddressV4": "198.51.100.1",
                "organization": {
                    "asn": "-1",
                    "asnOrg": "GeneratedFindingASNOrg",
                    "isp": "GeneratedFindingISP",
                    "org": "GeneratedFindingORG",
                },
                "country": {"countryName": "GeneratedFindingCountryName"},
                "city": {"cityName": "GeneratedFindingCityName"},
                "geoLocation": {"lat": 0, "lon": 0},
            },
            (25, "SMTP"),
        )
    else:
        action = {
            "actionType": "DNS_REQUEST",
            "dnsRequestAction": {"domain": "GeneratedFindingDomainName", "protocol": "UDP", "blocked": True},
        }
    info = {"threatListName": "GeneratedFindingThreatListName", "sample": True}
    ts = iso_ms(created)
    seen0 = iso_ms(created.replace(microsecond=0))
    return {
        "schemaVersion": "2.0",
        "accountId": account.account_id,
        "region": region,
        "partition": "aws",
        "id": fid,
        "arn": f"arn:aws:guardduty:{region}:{account.account_id}:detector/{detector}/finding/{fid}",
        "type": ftype,
        "resource": {
            "resourceType": "Instance",
            "instanceDetails": {
                "instanceId": "i-99999999",
                "instanceType": "m3.xlarge",
                "outpostArn": "arn:aws:outposts:us-west-2:123456789000:outpost/op-0fbc006e9abbc73c3",
                "launchTime": "2016-08-02T02:05:06.000Z",
                "platform": None,
                "productCodes": [
                    {
                        "productCodeId": "GeneratedFindingProductCodeId",
                        "productCodeType": "GeneratedFindingProductCodeType",
                    }
                ],
                "iamInstanceProfile": {
                    "arn": f"arn:aws:iam::{account.account_id}:example/instance/profile",
                    "id": "GeneratedFindingInstanceProfileId",
                },
                "networkInterfaces": [
                    {
                        "networkInterfaceId": "eni-bfcffe88",
                        "privateIpAddresses": [
                            {"privateDnsName": "GeneratedFindingPrivateName", "privateIpAddress": "10.0.0.1"}
                        ],
                        "subnetId": "GeneratedFindingSubnetId",
                        "vpcId": "GeneratedFindingVPCId",
                        "privateDnsName": "GeneratedFindingPrivateDnsName",
                        "securityGroups": [
                            {
                                "groupName": "GeneratedFindingSecurityGroupName",
                                "groupId": "GeneratedFindingSecurityId",
                            }
                        ],
                        "publicIp": "198.51.100.1",
                        "ipv6Addresses": [],
                        "publicDnsName": "GeneratedFindingPublicDNSName",
                        "privateIpAddress": "10.0.0.1",
                    }
                ],
                "tags": [{"value": "GeneratedFindingInstaceValue1", "key": "GeneratedFindingInstaceTag1"}],
                "instanceState": "running",
                "availabilityZone": "GeneratedFindingInstaceAvailabilityZone",
                "imageId": "ami-99999999",
                "imageDescription": "GeneratedFindingInstaceImageDescription",
            },
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": detector,
            "action": action,
            "resourceRole": "TARGET",
            "additionalInfo": info | {"value": orjson.dumps(info).decode(), "type": "default"},
            "evidence": {
                "threatIntelligenceDetails": [
                    {
                        "threatNames": ["GeneratedFindingThreatName"],
                        "threatListName": "GeneratedFindingThreatListName",
                    }
                ]
            },
            "eventFirstSeen": seen0,
            "eventLastSeen": seen0,
            "archived": False,
            "count": 4,
        },
        "severity": sev,
        "createdAt": ts,
        "updatedAt": ts,
        "title": title,
        "description": desc,
    }
