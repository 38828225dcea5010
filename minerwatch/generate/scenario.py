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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from minerwatch.generate.fleet import hexstr
from minerwatch.generate.scenario_cloudtrail import (
    CI_USER_AGENT,
    Launch,
    Trail,
    assume_role_for_instance,
    cloudtrail_files,
    console_sessions,
    create_tags,
    deploy_activity,
    identity_json,
    instance_role_activity,
    run_instances,
)
from minerwatch.generate.scenario_guardduty import (
    guardduty_files,
    probe_finding,
    ssh_brute_force,
    summarise,
)
from minerwatch.generate.scenario_story import (
    ATTACKER_BROWSER,
    STRATUM_PORTS,
    Story,
    attack,
    scanner_ip,
    ssm_role_id,
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
    Host,
    World,
    build_world,
    iso,
    new_instance,
    role_session,
    user_identity,
)
from minerwatch.generate.shapes import _gzip_bytes

MAX_NOISE = 50.0
CLEAN_ROLES: dict[str, tuple[tuple[str, ...], bool]] = {
    "web": (("t3.medium", "m5.large"), True),
    "api": (("m5.large", "m5.xlarge"), False),
    "worker": (("m5.large", "t3.large", "m5.2xlarge"), False),
    "bastion": (("t3.micro",), True),
}
ROLE_CYCLE: tuple[str, ...] = ("web", "api", "worker", "bastion", "web", "worker", "api")


class ScenarioError(ValueError):
    """Bad arguments or an output folder that is not empty."""


# -- benign noise -----------------------------------------------------------------------------------------
def _noise(seed: int, world: World, trail: Trail, noise: float) -> list[dict[str, Any]]:
    """Clean hosts (some launched during the window by the deploy role), their instance roles, engineers in
    the console, deploy pipeline reads; returns the benign GuardDuty findings about the clean hosts."""
    rng = random.Random(f"{seed}:noise")
    acct = world.account.account_id
    findings: list[dict[str, Any]] = []
    n_old, n_new = round(5 * noise), round(2 * noise)
    deploy = role_session(acct, rng, "GitHubActionsDeploy", f"gha-{rng.randint(10**9, 10**10 - 1)}")
    role_id = ssm_role_id(seed)
    per_role: dict[str, int] = {}
    for k in range(n_old + n_new):
        role = ROLE_CYCLE[k % len(ROLE_CYCLE)]
        types, public = CLEAN_ROLES[role]
        region = world.account.regions[k % len(world.account.regions)]
        in_window = k >= n_old
        if in_window:
            launched = world.start + timedelta(minutes=rng.uniform(60, 600))
        else:
            launched = world.start - timedelta(days=rng.randint(3, 200), seconds=rng.randint(0, 86399))
        launched = launched.replace(microsecond=0)
        per_role[role] = per_role.get(role, 0) + 1
        tags = (
            ("Name", f"{role}-prod-{per_role[role]:02d}"),
            ("Environment", "prod"),
            ("Team", {"web": "frontend", "bastion": "platform"}.get(role, "backend")),
            ("ManagedBy", "github-actions" if in_window else "terraform"),
        )
        vpc = world.vpc(region)
        inst = new_instance(
            world,
            rng,
            region,
            rng.choice(types),
            launched,
            image=("ami-0" + hexstr(rng, 16), AMAZON_LINUX),
            public=public,
            security_group=(f"{role}-prod-sg", vpc.app_sg),
            tags=tags,
            environment="prod",
            role=role,
        )
        h = Host(
            inst=inst,
            vpc=vpc,
            role=role,
            compromised=False,
            launched=launched,
            launch_event_id=None,
            http_tokens="required",
            key_name="ops-bastion" if role == "bastion" else None,
            user_data=rng.random() < 0.6,
        )
        if public:
            h.scanners = [scanner_ip(rng, set()) for _ in range(rng.randint(1, 3))]
        hr = host_rng(seed, h, "noise")
        if in_window:
            ip = rng.choice(CI_IPS)
            deploy_activity(trail, rng, world, deploy, ip, launched - timedelta(seconds=rng.uniform(30, 90)), 2)
            who = identity_json(deploy, created=launched - timedelta(minutes=2))
            ua = CI_USER_AGENT.format(cmd="ec2.run-instances")
            h.launch_event_id = run_instances(trail, rng, who, launched, ip, ua, Launch.of([h], tags), [h])
            create_tags(
                trail,
                rng,
                who,
                launched + timedelta(seconds=rng.uniform(5, 30)),
                ip,
                CI_USER_AGENT.format(cmd="ec2.create-tags"),
                h,
                (("DeployedBy", deploy.session),),
            )
            assume_role_for_instance(trail, hr, h, launched + timedelta(seconds=hr.uniform(5, 20)))
        world.hosts.append(h)
        session = role_session(acct, hr, SSM_ROLE, h.instance_id, role_id)
        instance_role_activity(trail, hr, h, session, max(launched, world.start), world.end)
        if role == "web":
            findings += probe_finding(world, seed, h, 443)
        elif role == "bastion":
            findings += probe_finding(world, seed, h, 22) + ssh_brute_force(world, seed, h)
    if noise > 0:
        names = ("alice", "bob", "carol")[: max(1, min(3, round(3 * noise)))]
        humans = [user_identity(acct, rng, n) for n in names]
        console_sessions(trail, rng, world, humans, per_user=max(1, round(10 * noise)))
    for _ in range(round(6 * noise)):
        t = world.start + timedelta(minutes=rng.uniform(0, (world.end - world.start).total_seconds() / 60 - 10))
        deploy_activity(trail, rng, world, deploy, rng.choice(CI_IPS), t, rng.randint(2, 6))
    return findings


# -- output -----------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Scenario:
    seed: int
    noise: float
    story: Story
    benign_findings: list[dict[str, Any]]
    flows: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    cpu: list[dict[str, Any]]

    @property
    def world(self) -> World:
        return self.story.world

    def findings(self) -> list[dict[str, Any]]:
        return self.story.findings + self.story.iam_findings + self.benign_findings


def build_scenario(seed: int = 1, noise: float = 1.0) -> Scenario:
    """Draw the whole scenario in memory (``write_scenario`` writes it)."""
    if not 0 <= noise <= MAX_NOISE:
        raise ScenarioError(f"noise must be within [0, {MAX_NOISE:g}], got {noise:g}")
    world = build_world(random.Random(f"{seed}:world"))
    story = attack(seed, world)
    benign = _noise(seed, world, story.trail, noise)
    flows: list[dict[str, Any]] = []
    queries: list[dict[str, Any]] = []
    cpu: list[dict[str, Any]] = []
    for h in world.hosts:
        if h.mining is not None:
            flows += miner_flows(world, seed, h, story.attacker_ip)
            queries += miner_queries(seed, h)
        else:
            flows += clean_flows(world, seed, h)
            queries += clean_queries(world, seed, h)
        cpu += cpu_datapoints(world, seed, h)
    # Only what the window holds: the logs were collected over [start, end).
    lo, hi = int(world.start.timestamp()), int(world.end.timestamp())
    flows = [f for f in flows if lo <= f["start"] < hi]
    queries = [q for q in queries if iso(world.start) <= q["query_timestamp"] < iso(world.end)]
    story.trail.records = [r for r in story.trail.records if r["eventTime"] < iso(world.end)]
    cpu.sort(key=lambda d: (d["timestamp"], d["instance_id"]))
    return Scenario(seed, noise, story, benign, flows, queries, cpu)


def _jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(i) + b"\n" for i in items)


def write_scenario(out: Path | str, seed: int = 1, noise: float = 1.0) -> dict[str, Any]:
    """Write the scenario under ``out`` (which must be empty or absent) and return the manifest, also written
    to ``out/manifest.json``."""
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ScenarioError(f"{root} exists and is not an empty folder")
    sc = build_scenario(seed, noise)
    world = sc.world
    acct = world.account.account_id
    files: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("cloudtrail", "vpcflow", "route53", "metrics", "guardduty")
    }

    def emit(source: str, rel: str, data: bytes, records: int) -> None:
        path = root / source / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files[source].append({"path": f"{source}/{rel}", "records": records, "bytes": len(data)})

    for rel, recs in cloudtrail_files(acct, sc.story.trail.records):
        emit("cloudtrail", rel, _gzip_bytes(orjson.dumps({"Records": recs})), len(recs))
    for rel, body, n in flow_files(world, sc.flows):
        emit("vpcflow", rel, _gzip_bytes(body), n)
    for rel, recs in dns_files(world, sc.queries):
        emit("route53", rel, _gzip_bytes(_jsonl(recs)), len(recs))
    emit("metrics", "cpu.jsonl", _jsonl(sc.cpu), len(sc.cpu))
    for rel, recs in guardduty_files(world, sc.findings()):
        emit("guardduty", rel, _gzip_bytes(_jsonl(recs)), len(recs))
    manifest = ground_truth(sc)
    manifest["files"] = files
    manifest["counts"] = {
        source: {
            "files": len(items),
            "records": sum(i["records"] for i in items),
            "bytes": sum(i["bytes"] for i in items),
        }
        for source, items in files.items()
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def _pool(p: tuple[str, str, int] | None) -> dict[str, Any] | None:
    return {"domain": p[0], "ip": p[1], "port": p[2]} if p else None


def ground_truth(sc: Scenario) -> dict[str, Any]:
    """What happened, for tests and demos to check enrichment, hunting and detection against."""
    world, story = sc.world, sc.story
    by_instance: dict[str, list[dict[str, Any]]] = {}
    for f in story.findings:
        iid = f["resource"]["instanceDetails"]["instanceId"]
        by_instance.setdefault(iid, []).append(f)
    compromised = []
    for h in world.compromised():
        m = h.mining
        assert m is not None
        entry = h.summary()
        entry["mining"] = {
            "pool": _pool(m.pool),
            "refused_pool": _pool(m.rejected_pool),
            "start": iso(m.start),
            "end": iso(m.end),
            "interruptions": [[iso(a), iso(b)] for a, b in m.interruptions],
            "connections": [{"start": iso(s.start), "end": iso(s.end), "src_port": s.src_port} for s in m.segments],
        }
        entry["stopped"] = [[iso(a), iso(b)] for a, b in h.down]
        entry["scanners"] = h.scanners
        summary = summarise(by_instance.get(h.instance_id, []))
        entry["crypto_findings"] = [s for s in summary if s["type"].startswith("CryptoCurrency")]
        entry["other_findings"] = [s for s in summary if not s["type"].startswith("CryptoCurrency")]
        compromised.append(entry)
    accepted = sorted({m.pool for h in world.compromised() if (m := h.mining)})
    refused = sorted({m.rejected_pool for h in world.compromised() if (m := h.mining) and m.rejected_pool})
    pools = accepted + refused
    bd = story.backdoor
    events = sorted(story.attack_events, key=lambda e: (e["time"], e["event_id"]))
    return {
        "generator": "minerwatch.generate.scenario",
        "seed": sc.seed,
        "noise": sc.noise,
        "account_id": world.account.account_id,
        "regions": list(world.account.regions),
        "window": {"start": iso(world.start), "end": iso(world.end)},
        "vpcs": {
            r: {
                "vpc_id": v.vpc_id,
                "cidr": v.cidr,
                "default_security_group": v.default_sg,
                "flow_log_id": v.flow_log_id,
                "flow_log_format": FLOW_FORMATS[r],
            }
            for r, v in world.vpcs.items()
        },
        "attacker": {
            "ip": story.attacker_ip,
            "user_agent": story.user_agent,
            "console_user_agent": ATTACKER_BROWSER,
            "first_seen": iso(story.leak),
            "key_pair": story.key_name,
        },
        "principal": {
            "type": "IAMUser",
            "user_name": story.ci.name,
            "arn": story.ci.arn,
            "principal_id": story.ci.principal_id,
            "access_key_id": story.ci.access_key_id,
        },
        "created_principal": {
            "type": "IAMUser",
            "user_name": bd.name,
            "arn": bd.arn,
            "principal_id": bd.principal_id,
            "access_key_id": bd.access_key_id,
            "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess",
        },
        "attack_events": events,
        "persistence_events": [e for e in events if e["stage"] == "persistence"],
        "compromised_instances": compromised,
        "pools": {
            "accepted": [_pool(p) for p in accepted],
            "refused": [_pool(p) for p in refused],
            "domains": sorted({p[0] for p in pools}),
            "ips": sorted({p[1] for p in pools}),
            "ports": sorted({p[2] for p in pools}),
            "stratum_ports": list(STRATUM_PORTS),
        },
        "iam_findings": summarise(story.iam_findings),
        "clean_instances": [h.summary() | {"scanners": h.scanners} for h in world.clean()],
        "benign_findings": summarise(sc.benign_findings),
        "decoy_domains": list(DECOY_DOMAINS),
        "legitimate_sources": {"office_ips": list(OFFICE_IPS), "ci_ips": list(CI_IPS)},
        "expected_alert_instances": sorted(h.instance_id for h in world.compromised()),
    }
