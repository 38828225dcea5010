"""The automated response actions. Each one plans its calls from the current inventory (``calls``), names the
reads it makes while running (``checks``), and runs (``run``): the calls a dry run prints are the calls a run
makes, computed from the state read just before the step.

Idempotency comes from looking first: the quarantine group is found by its tag ``minerwatch:quarantine=<vpc>``,
snapshots by ``minerwatch:alert-id``, the instance profile by its association, keys by their IAM status. What a
rollback needs (original groups, the detached profile, the network ACL entries created) is recorded in the journal
before the change. A step with nothing to act on in the account as it is now (live forensics without an SSM agent)
is skipped with the reason (:meth:`Action.skip_reason`).
"""

from __future__ import annotations

import ipaddress
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from minerwatch.aws.session import AwsError, request_id
from minerwatch.respond import journal as J
from minerwatch.respond.discover import (
    ALERT_TAG,
    INCIDENT_TAG,
    INSTANCE_TAG,
    QUARANTINE_TAG,
    CreatedUser,
    Inventory,
    KeyCandidate,
    NetworkAcl,
    network_acls_call,
    profile_association_call,
    read_network_acls,
    snapshots_call,
    ssm_information_call,
    user_reads,
)
from minerwatch.respond.evidence import (
    MANIFEST,
    MANIFEST_STEP,
    Location,
    capture,
    iso_now,
    planned_calls,
    sha256,
    store_file,
    stored_files,
    to_json_bytes,
    write_manifest,
)
from minerwatch.respond.plan import ApiCall, placeholder


class Caller(Protocol):
    def call(self, call: ApiCall, values: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def read(self, call: ApiCall) -> dict[str, Any]: ...


@dataclass
class Context:
    """Everything about the alert and the run that the actions need besides the inventory."""

    alert: dict[str, Any]
    alert_id: str
    incident_id: str
    instance_id: str
    region: str
    account_id: str | None
    actor: str
    evidence: Location
    approvals: set[str] = field(default_factory=set)
    keep_running: bool = False
    keys: list[KeyCandidate] = field(default_factory=list)
    key_reason: str | None = None
    """Why no key can be deactivated automatically (no launch enrichment, temporary credentials...)."""
    enrichments: dict[str, Any] = field(default_factory=dict)
    tag_pending: bool = False
    """The tag step has not run yet (so termination protection will be on by the time terminate runs)."""
    detached_profile: dict[str, Any] | None = None
    """The instance profile the detach-profile step removed (with its roles), from the journal."""
    pool_addresses: list[PoolAddress] = field(default_factory=list)
    """Mining-pool addresses known for the alert (the finding's remote address, the enrichment's pool peers)."""
    pool_notes: list[str] = field(default_factory=list)
    """Addresses named by the alert that are not denied (not public, not IPv4) and why."""
    ssm_deadline: float = 600.0
    """Seconds live-forensics waits for its commands to finish."""


@dataclass(frozen=True)
class PoolAddress:
    address: str
    why: str


@dataclass
class Outcome:
    status: str
    message: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


class Action:
    id: str = ""
    title: str = ""
    depends_on: tuple[str, ...] = ()
    approval: str | None = None

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        """Why this action cannot be automated for this alert (it becomes a manual item), or ``None``."""
        return None

    def skip_reason(self, inv: Inventory, ctx: Context) -> str | None:
        """Why this action has nothing to do in the account as it is now (the step is ``skipped``), or ``None``."""
        return None

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return []

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return []

    def stores(self, inv: Inventory, ctx: Context) -> list[str]:
        """Evidence files the step writes (each followed by manifest.json), besides the evidence step's own."""
        return []

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        return []

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        values: dict[str, Any] = {}
        for call in self.calls(inv, ctx):
            ex.call(call, values)
        return Outcome(J.DONE)


def _tags(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in pairs.items()]


class TagProtect(Action):
    id = "tag"
    title = "Tag the instance with the incident and alert ids and enable termination protection"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        want = {INCIDENT_TAG: ctx.incident_id, ALERT_TAG: ctx.alert_id}
        missing = {k: v for k, v in want.items() if inv.tags.get(k) != v}
        out = []
        if missing:
            out.append(
                ApiCall("ec2", "CreateTags", {"Resources": [inv.instance_id], "Tags": _tags(missing)}, inv.region)
            )
        if not inv.termination_protected:
            out.append(
                ApiCall(
                    "ec2",
                    "ModifyInstanceAttribute",
                    {"InstanceId": inv.instance_id, "DisableApiTermination": {"Value": True}},
                    inv.region,
                )
            )
        return out


def manifest_header(ctx: Context) -> dict[str, Any]:
    return {
        "alert_id": ctx.alert_id,
        "incident_id": ctx.incident_id,
        "instance_id": ctx.instance_id,
        "account_id": ctx.account_id,
        "region": ctx.region,
        "actor": ctx.actor,
        "tool": "minerwatch",
    }


def record_manifest(ex: Caller, ctx: Context, journal: J.Journal) -> str:
    """Rewrite ``manifest.json`` over every evidence file the journal holds (any step's), unless the manifest last
    written lists exactly those; returns its SHA-256. A step calls it once its files are in the journal, so a re-run
    keeps the entries of earlier runs. Raises AwsError or OSError when the write fails."""
    steps = journal.all()
    files = stored_files(steps)
    evidence = steps.get(Evidence.id, (J.PENDING, {}))[1]
    errors = {k: str(v) for k, v in (evidence.get("errors") or {}).items() if k != MANIFEST}
    complete = bool(evidence.get("complete"))
    want = {
        "location": ctx.evidence.uri,
        "listed": {n: e["sha256"] for n, e in files.items()},
        "errors": errors,
        "complete": complete,
    }
    status, last = steps.get(MANIFEST_STEP, (J.PENDING, {}))
    if status == J.DONE and all(last.get(k) == v for k, v in want.items()):
        return str(last["sha256"])
    try:
        digest = write_manifest(ex, ctx.evidence, manifest_header(ctx), files, errors, complete)
    except (AwsError, OSError) as exc:
        journal.set(MANIFEST_STEP, J.FAILED, message=f"{MANIFEST}: {exc}")
        raise
    journal.set(MANIFEST_STEP, J.DONE, sha256=digest, written_at=iso_now(), message="", **want)
    return digest


class Evidence(Action):
    id = "evidence"
    title = (
        "Capture evidence (instance, volumes, ENIs, security groups, instance profile, user data, console output) "
        "as JSON with a SHA-256 manifest"
    )

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return planned_calls(inv, ctx.evidence)

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        where = ctx.evidence.uri
        return [f"writes the files and manifest.json to {where}" if not ctx.evidence.is_s3 else f"uploads to {where}"]

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        before = journal.detail(self.id).get("files") or {}
        context = {"alert": ctx.alert, "enrichments": ctx.enrichments}
        result = capture(ex, inv, ctx.evidence, context, self.id, already=before)
        detail: dict[str, Any] = {
            "uri": ctx.evidence.uri,
            "files": result.files,
            "errors": result.errors,
            "complete": result.complete,
        }
        journal.set(self.id, **detail)  # the manifest is written from the journal (its hash: MANIFEST_STEP)
        try:
            record_manifest(ex, ctx, journal)
        except (AwsError, OSError) as exc:
            result.errors[MANIFEST] = str(exc)
            detail.update(errors=result.errors, complete=False)
        if not result.complete:
            failed = ", ".join(f"{k} ({v})" for k, v in sorted(result.errors.items()))
            return Outcome(J.FAILED, f"evidence incomplete: {failed}", detail)
        return Outcome(J.DONE, f"{len(result.files)} files + manifest in {ctx.evidence.uri}", detail)


def _rules(perms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Describe output carries empty lists and descriptions; revoke accepts the same shape.
    keep = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges", "PrefixListIds", "UserIdGroupPairs")
    return [{k: p[k] for k in keep if p.get(k) not in (None, [])} for p in perms]


def default_egress(ipv6: bool) -> list[dict[str, Any]]:
    """The egress rule AWS puts on every new security group (with ::/0 in a VPC that has IPv6)."""
    rule: dict[str, Any] = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    if ipv6:
        rule["Ipv6Ranges"] = [{"CidrIpv6": "::/0"}]
    return [rule]


def quarantine_name(vpc: str) -> str:
    return f"minerwatch-quarantine-{vpc}"


MULTIPLE_INTERFACES = "InvalidInstanceID"
"""EC2's answer to ModifyInstanceAttribute ``Groups`` on an instance with more than one interface ("specify an
interface ID instead"): the per-interface calls have done the work there."""


def instance_groups_call(inv: Inventory, groups: list[str], note: str) -> ApiCall:
    """Set the instance's own security groups. EC2 applies them to the primary interface; some EC2
    implementations (moto) also report them on every attached interface, so the interfaces alone cannot
    leave them."""
    return ApiCall(
        "ec2", "ModifyInstanceAttribute", {"InstanceId": inv.instance_id, "Groups": groups}, inv.region, note=note
    )


def _listed(inv: Inventory) -> str:
    return ", ".join(inv.instance_groups) or "no group"


class Isolate(Action):
    id = "isolate"
    title = "Move every network interface of the instance to a quarantine security group with no ingress and no egress"

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        return None if inv.enis else "the instance has no network interface in a VPC"

    def _group(self, inv: Inventory, vpc: str) -> str:
        q = inv.quarantine.get(vpc)
        return q.group_id if q else placeholder(f"quarantine-sg/{vpc}")

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        out: list[ApiCall] = []
        r = inv.region
        for vpc in inv.vpcs:
            q = inv.quarantine.get(vpc)
            gid = self._group(inv, vpc)
            if q is None:
                out.append(
                    ApiCall(
                        "ec2",
                        "CreateSecurityGroup",
                        {
                            "GroupName": quarantine_name(vpc),
                            "Description": "MinerWatch quarantine: no inbound and no outbound traffic",
                            "VpcId": vpc,
                            "TagSpecifications": [
                                {
                                    "ResourceType": "security-group",
                                    "Tags": _tags({QUARANTINE_TAG: vpc, "Name": quarantine_name(vpc)}),
                                }
                            ],
                        },
                        r,
                        binds={f"quarantine-sg/{vpc}": "GroupId"},
                    )
                )
                out.append(
                    ApiCall(
                        "ec2",
                        "RevokeSecurityGroupEgress",
                        {"GroupId": gid, "IpPermissions": default_egress(inv.vpc_ipv6.get(vpc, False))},
                        r,
                        note="the default allow-all egress rule of a new group",
                    )
                )
            else:
                if q.ingress:
                    out.append(
                        ApiCall(
                            "ec2",
                            "RevokeSecurityGroupIngress",
                            {"GroupId": gid, "IpPermissions": _rules(q.ingress)},
                            r,
                            note="rules found on the quarantine group",
                        )
                    )
                if q.egress:
                    out.append(
                        ApiCall(
                            "ec2",
                            "RevokeSecurityGroupEgress",
                            {"GroupId": gid, "IpPermissions": _rules(q.egress)},
                            r,
                            note="rules found on the quarantine group",
                        )
                    )
            for eni in inv.enis:
                if eni.vpc_id == vpc and eni.groups != [gid]:
                    out.append(
                        ApiCall(
                            "ec2",
                            "ModifyNetworkInterfaceAttribute",
                            {"NetworkInterfaceId": eni.id, "Groups": [gid]},
                            r,
                            note="was " + (", ".join(eni.groups) or "no group"),
                        )
                    )
            if vpc == inv.instance_vpc and inv.instance_groups != [gid]:
                out.append(instance_groups_call(inv, [gid], "the instance's own groups, was " + _listed(inv)))
        return out

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        groups = [self._group(inv, v) for v in inv.vpcs]
        return [
            ApiCall("ec2", "DescribeSecurityGroups", {"GroupIds": groups}, inv.region, note="verify: no rules"),
            ApiCall(
                "ec2",
                "DescribeNetworkInterfaces",
                {"NetworkInterfaceIds": [e.id for e in inv.enis]},
                inv.region,
                note="verify: only the quarantine group",
            ),
        ]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        return [
            "security groups track existing connections: an established session may survive the change; "
            "the nacl-deny step (stateless network ACL entries on the subnet) cuts those too"
        ]

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        detail = journal.detail(self.id)
        originals: dict[str, list[str]] = dict(detail.get("originals") or {})
        quarantine_ids = {q.group_id for q in inv.quarantine.values()}
        for eni in inv.enis:
            if eni.id not in originals and not set(eni.groups) <= quarantine_ids:
                originals[eni.id] = eni.groups
        instance_groups = detail.get("instance_groups")
        if instance_groups is None and not set(inv.instance_groups) <= quarantine_ids:
            instance_groups = inv.instance_groups
        journal.set(self.id, originals=originals, instance_groups=instance_groups)  # before any change, for rollback
        values: dict[str, Any] = {}
        for call in self.calls(inv, ctx):
            try:
                ex.call(call, values)
            except AwsError as exc:
                if call.operation == "CreateSecurityGroup" and exc.code == "InvalidGroup.Duplicate":
                    self._adopt(ex, call, values)
                elif call.operation.startswith("RevokeSecurityGroup") and exc.code == "InvalidPermission.NotFound":
                    continue
                elif call.operation == "ModifyInstanceAttribute" and exc.code == MULTIPLE_INTERFACES:
                    continue  # what the interfaces read back decides below
                else:
                    raise
        groups = {v: values.get(f"quarantine-sg/{v}") or inv.quarantine[v].group_id for v in inv.vpcs}
        checks = self.checks(inv, ctx)
        problems = self._verify(ex, checks, values, groups)
        detail = {"originals": originals, "instance_groups": instance_groups, "quarantine": groups}
        if problems:
            return Outcome(J.FAILED, "isolation incomplete: " + "; ".join(problems), detail)
        n = len(inv.enis)
        return Outcome(J.DONE, f"{n} interface(s) only in " + ", ".join(sorted(set(groups.values()))), detail)

    def _adopt(self, ex: Caller, create: ApiCall, values: dict[str, Any]) -> None:
        """A group of our name exists without our tag (a tag removed, a concurrent run): take it over."""
        vpc = create.params["VpcId"]
        found = ex.read(
            ApiCall(
                "ec2",
                "DescribeSecurityGroups",
                {
                    "Filters": [
                        {"Name": "group-name", "Values": [create.params["GroupName"]]},
                        {"Name": "vpc-id", "Values": [vpc]},
                    ]
                },
                create.region,
            )
        )
        group = (found.get("SecurityGroups") or [None])[0]
        if group is None:
            raise AwsError(f"security group {create.params['GroupName']} reported as duplicate but not found")
        values[f"quarantine-sg/{vpc}"] = group["GroupId"]
        ex.call(
            ApiCall(
                "ec2",
                "CreateTags",
                {"Resources": [group["GroupId"]], "Tags": _tags({QUARANTINE_TAG: vpc})},
                create.region,
            )
        )

    def _verify(self, ex: Caller, checks: list[ApiCall], values: dict[str, Any], groups: dict[str, str]) -> list[str]:
        problems: list[str] = []
        sgs = ex.read(ApiCall(checks[0].service, checks[0].operation, checks[0].resolved(values), checks[0].region))
        for g in sgs.get("SecurityGroups") or []:
            for key, op in (
                ("IpPermissions", "RevokeSecurityGroupIngress"),
                ("IpPermissionsEgress", "RevokeSecurityGroupEgress"),
            ):
                if g.get(key):
                    # A rule added between our look and our change: remove it too, then report if it stays.
                    ex.call(
                        ApiCall("ec2", op, {"GroupId": g["GroupId"], "IpPermissions": _rules(g[key])}, checks[0].region)
                    )
        again = ex.read(ApiCall(checks[0].service, checks[0].operation, checks[0].resolved(values), checks[0].region))
        for g in again.get("SecurityGroups") or []:
            if g.get("IpPermissions") or g.get("IpPermissionsEgress"):
                problems.append(f"{g['GroupId']} still has rules")
        enis = ex.read(ApiCall(checks[1].service, checks[1].operation, checks[1].params, checks[1].region))
        wanted = set(groups.values())
        for nic in enis.get("NetworkInterfaces") or []:
            have = {g["GroupId"] for g in nic.get("Groups") or []}
            if len(have) != 1 or not have <= wanted:
                problems.append(f"{nic['NetworkInterfaceId']} is in {', '.join(sorted(have))}")
        return problems


# -- live forensics through Systems Manager ----------------------------------------------------------------

SSM_DOCUMENT = "AWS-RunShellScript"
RECENT_MINUTES = 10080
"""Executables changed within this many minutes (7 days) are listed and hashed by live-forensics."""
SSM_EXECUTION_SECONDS = 600
"""How long the agent lets each script run on the instance."""
SSM_OUTPUT_LIMIT = 24000
"""GetCommandInvocation returns the first 24,000 characters of a command's output."""
SSM_FINISHED = frozenset(
    {"Success", "Failed", "Cancelled", "TimedOut", "Delivery Timed Out", "Execution Timed Out", "Undeliverable",
     "Terminated", "InvalidPlatform", "AccessDenied"}
)  # fmt: skip

_EXEC_DIRS = "/tmp /var/tmp /dev/shm /run /root /home /opt /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin /bin /sbin"

# Fixed scripts: nothing from the alert or the finding (attacker-controlled text) is ever put into them.
FORENSICS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "processes",
        "ssm-processes.json",
        ("ps -ww -eo pid,ppid,user,lstart,etime,pcpu,pmem,args --sort=-pcpu 2>/dev/null || ps auxww",),
    ),
    (
        "crontabs",
        "ssm-crontabs.json",
        (
            "for f in /etc/crontab /etc/anacrontab /etc/cron.d/* /etc/cron.hourly/* /etc/cron.daily/* "
            "/etc/cron.weekly/* /etc/cron.monthly/* /var/spool/cron/* /var/spool/cron/crontabs/*; do "
            '[ -f "$f" ] && { echo "=== $f"; cat "$f"; }; done; true',
            "systemctl list-timers --all --no-pager 2>/dev/null || true",
        ),
    ),
    (
        "connections",
        "ssm-connections.json",
        ("if command -v ss >/dev/null 2>&1; then ss -tunap; else netstat -tunap; fi",),
    ),
    (
        "executables",
        "ssm-executables.json",
        (
            f"find {_EXEC_DIRS} -xdev -type f -perm /111 -mmin -{RECENT_MINUTES} "
            "-printf '%T+ %s %u:%g %m %p\\n' 2>/dev/null; true",
            f"find {_EXEC_DIRS} -xdev -type f -perm /111 -mmin -{RECENT_MINUTES} -exec sha256sum {{}} + "
            "2>/dev/null; true",
        ),
    ),
)


FORENSICS_REQUESTS = ("ssm:SendCommand", "ssm:GetCommandInvocation")
"""The requests behind each live-forensics file (its manifest entry)."""


def command_key(name: str) -> str:
    return f"command/{name}"


class LiveForensics(Action):
    id = "live-forensics"
    title = (
        "Collect live forensics through Systems Manager (processes, crontabs, connections, recently changed "
        "executables) as evidence files with SHA-256"
    )

    def skip_reason(self, inv: Inventory, ctx: Context) -> str | None:
        if inv.ssm_problem:
            return inv.ssm_problem
        if inv.ssm is None:
            return "the instance is not managed by Systems Manager (no SSM agent registered): no live forensics"
        if inv.ssm.get("PingStatus") != "Online":
            return f"the SSM agent is {inv.ssm.get('PingStatus') or 'not online'}: no live forensics"
        if inv.ssm.get("PlatformType") not in (None, "Linux"):
            return f"{inv.ssm['PlatformType']} instance: the collection scripts are for Linux (collect by hand)"
        if not inv.running:
            return f"the instance is {inv.state}: commands need it running"
        return None

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        if self.skip_reason(inv, ctx):
            return []
        return [
            ApiCall(
                "ssm",
                "SendCommand",
                {
                    "InstanceIds": [inv.instance_id],
                    "DocumentName": SSM_DOCUMENT,
                    "Comment": f"MinerWatch live forensics {ctx.alert_id}: {name}"[:100],
                    "Parameters": {"commands": list(commands), "executionTimeout": [str(SSM_EXECUTION_SECONDS)]},
                },
                inv.region,
                note=f"saved as {file}",
            )
            for name, file, commands in FORENSICS
        ]

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        if self.skip_reason(inv, ctx):
            return [ssm_information_call(inv.instance_id, inv.region)]
        return [
            ApiCall(
                "ssm",
                "GetCommandInvocation",
                {"CommandId": placeholder(command_key(name)), "InstanceId": inv.instance_id},
                inv.region,
                note=f"polled until the command finishes (at most {int(ctx.ssm_deadline)} s)",
            )
            for name, _, _ in FORENSICS
        ]

    def stores(self, inv: Inventory, ctx: Context) -> list[str]:
        return [] if self.skip_reason(inv, ctx) else [file for _, file, _ in FORENSICS]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        if self.skip_reason(inv, ctx):
            return []  # the plan says why it is skipped
        return [
            "runs before isolation: the quarantine group has no egress, which cuts the SSM agent off from its "
            "endpoint, and the processes and connections are what is running now",
            "the commands only read; each output is stored in the evidence folder and listed in manifest.json with "
            f"its SHA-256; output beyond {SSM_OUTPUT_LIMIT:,} characters is cut by Systems Manager",
        ]

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        files: dict[str, Any] = dict(journal.detail(self.id).get("files") or {})
        commands: dict[str, str] = {}
        for call, (name, file, _) in zip(self.calls(inv, ctx), FORENSICS, strict=True):
            if file in files:
                continue  # stored by an earlier run: that is the state as first seen
            commands[name] = ex.call(call)["Command"]["CommandId"]
        journal.set(self.id, commands=commands)
        results = self._wait(ex, inv, ctx, commands)
        unfinished = []
        for name, file, script in FORENSICS:
            if name not in commands:
                continue
            got = results.get(name)
            if got is None or got.get("Status") not in SSM_FINISHED:
                unfinished.append(f"{name} ({(got or {}).get('Status') or 'no invocation'})")
                continue
            stdout = str(got.get("StandardOutputContent") or "")
            doc = {
                "captured_at": datetime.now(UTC).isoformat(),
                "alert_id": ctx.alert_id,
                "instance_id": inv.instance_id,
                "document": SSM_DOCUMENT,
                "commands": list(script),
                "command_id": commands[name],
                "status": got.get("Status"),
                "status_details": got.get("StatusDetails"),
                "response_code": got.get("ResponseCode"),
                "stdout": stdout,
                "stdout_sha256": sha256(stdout.encode()),
                "stdout_truncated": len(stdout) >= SSM_OUTPUT_LIMIT,
                "stderr": str(got.get("StandardErrorContent") or ""),
                "invocation": {k: v for k, v in got.items() if k != "ResponseMetadata"},
            }
            entry = store_file(ex, ctx.evidence, file, to_json_bytes(doc), step=self.id, requests=FORENSICS_REQUESTS)
            files[file] = {**entry, "status": got.get("Status")}
            journal.set(self.id, files=files)
        if files:
            record_manifest(ex, ctx, journal)
        detail = {"files": files, "commands": commands}
        if unfinished:
            return Outcome(J.FAILED, "not finished in time: " + ", ".join(unfinished), detail)
        text = ", ".join(f"{f} ({e.get('status')})" for f, e in sorted(files.items()))
        return Outcome(J.DONE, f"{len(files)} files in {ctx.evidence.uri}: {text}", detail)

    def _wait(self, ex: Caller, inv: Inventory, ctx: Context, commands: dict[str, str]) -> dict[str, dict[str, Any]]:
        """Poll GetCommandInvocation until every command finished or the deadline passed."""
        deadline = time.monotonic() + ctx.ssm_deadline
        pause = 0.5
        results: dict[str, dict[str, Any]] = {}
        while True:
            for name, cid in commands.items():
                if (results.get(name) or {}).get("Status") in SSM_FINISHED:
                    continue
                call = ApiCall("ssm", "GetCommandInvocation", {"CommandId": cid, "InstanceId": inv.instance_id},
                               inv.region)  # fmt: skip
                try:
                    results[name] = ex.read(call)
                except AwsError as exc:
                    if exc.code != "InvocationDoesNotExist":  # not registered yet right after SendCommand
                        raise
            pending = [n for n in commands if (results.get(n) or {}).get("Status") not in SSM_FINISHED]
            if not pending or time.monotonic() + pause > deadline:
                return results
            time.sleep(pause)  # the agent reports when it is done; nothing to wait on but the API
            pause = min(pause * 2, 5.0)


# -- network ACL deny entries for the pool addresses -------------------------------------------------------

NACL_RULE_LIMIT = 20
"""Rules per direction of a network ACL: AWS's default quota (it counts the default deny rule too)."""
NACL_EVIDENCE = "network-acls-before-deny.json"


@dataclass
class _Entry:
    acl: NetworkAcl
    egress: bool
    number: int
    cidr: str
    why: str


def _first_allow(entries: list[dict[str, Any]]) -> int:
    return min((int(e["RuleNumber"]) for e in entries if e.get("RuleAction") == "allow"), default=32767)


def _denied(entries: list[dict[str, Any]], cidr: str) -> bool:
    # Already denied ahead of every allow rule (by an earlier run, or by hand).
    first = _first_allow(entries)
    return any(
        e.get("RuleAction") == "deny" and e.get("CidrBlock") == cidr and str(e.get("Protocol")) == "-1"
        and int(e["RuleNumber"]) < first
        for e in entries
    )  # fmt: skip


def _networks(addresses: list[PoolAddress]) -> list[tuple[str, str]]:
    """The addresses as /32 blocks, adjacent ones merged (a merged block covers exactly those addresses), in the
    order of their first address (the finding's own first)."""
    rank = {ipaddress.ip_address(a.address): (n, a.why) for n, a in enumerate(addresses)}
    merged = ipaddress.collapse_addresses(ipaddress.ip_network(a.address) for a in addresses)
    out = []
    for net in merged:
        members = [rank[ip] for ip in rank if ip in net]
        out.append((min(members)[0], str(net), "; ".join(sorted({w for _, w in members}))))
    return [(cidr, why) for _, cidr, why in sorted(out)]


class NaclDeny(Action):
    id = "nacl-deny"
    title = "Deny the mining-pool addresses in the network ACL of the instance's subnet (egress and ingress)"
    approval = "nacl-deny"

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        if not ctx.pool_addresses:
            return "no mining-pool address is known for the alert (the finding names none, no enrichment found one)"
        if inv.nacl_problem:
            return inv.nacl_problem
        if not inv.nacls:
            return "no network ACL is associated with the instance's subnets"
        return None

    def plan_entries(self, inv: Inventory, ctx: Context) -> tuple[list[_Entry], list[str]]:
        """The entries to create now, and what could not be placed (the ACL is full or has no room below its
        first allow rule)."""
        wanted = _networks(ctx.pool_addresses)
        entries: list[_Entry] = []
        left: list[str] = []
        for acl in inv.nacls:
            for egress in (True, False):
                current = acl.direction(egress)
                missing = [(c, w) for c, w in wanted if not _denied(current, c)]
                if not missing:
                    continue
                # NACL rules are evaluated from the lowest number up and the first match decides: a deny only
                # works below the first allow rule, so free numbers are taken counting down from just under it.
                used = {int(e["RuleNumber"]) for e in current}
                room = max(0, NACL_RULE_LIMIT - len(current))
                free = [n for n in range(_first_allow(current) - 1, 0, -1) if n not in used][:room]
                for (cidr, why), number in zip(missing, free, strict=False):
                    entries.append(_Entry(acl, egress, number, cidr, why))
                if len(missing) > len(free):
                    rest = ", ".join(c for c, _ in missing[len(free) :])
                    way = "egress" if egress else "ingress"
                    left.append(
                        f"{acl.acl_id} {way}: no room for {rest} ({len(current)} rules, quota {NACL_RULE_LIMIT} per "
                        f"direction, first allow rule {_first_allow(current)}): deny them by hand or raise the quota"
                    )
        return entries, left

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        entries, _ = self.plan_entries(inv, ctx)
        return [
            ApiCall(
                "ec2",
                "CreateNetworkAclEntry",
                {
                    "NetworkAclId": e.acl.acl_id,
                    "RuleNumber": e.number,
                    "Protocol": "-1",
                    "RuleAction": "deny",
                    "Egress": e.egress,
                    "CidrBlock": e.cidr,
                },
                inv.region,
                note=f"{'to' if e.egress else 'from'} {e.cidr}: {e.why}",
            )
            for e in entries
        ]

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [network_acls_call(inv.subnets, inv.region)]

    def stores(self, inv: Inventory, ctx: Context) -> list[str]:
        return [NACL_EVIDENCE]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        _, left = self.plan_entries(inv, ctx)
        acls = "; ".join(f"{a.acl_id} (subnets {', '.join(a.subnets)})" for a in inv.nacls)
        return [
            f"applies to every instance in the subnets of {acls}: network ACLs are stateless, so this also cuts "
            "connections the security groups still track",
            *ctx.pool_notes,
            *left,
            f"the ACLs' entries are written to {NACL_EVIDENCE} (listed in manifest.json with its SHA-256) before the "
            "change; rollback deletes exactly the entries this step created",
        ]

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        detail = journal.detail(self.id)
        evidence = detail.get("evidence")
        if evidence is None:
            check = self.checks(inv, ctx)[0]
            resp = ex.read(check)
            doc = {
                "captured_at": datetime.now(UTC).isoformat(),
                "alert_id": ctx.alert_id,
                "requests": [{**check.to_json(), "request_id": request_id(resp)}],
                "responses": [{k: v for k, v in resp.items() if k != "ResponseMetadata"}],
            }
            evidence = store_file(ex, ctx.evidence, NACL_EVIDENCE, to_json_bytes(doc), step=self.id,
                                  requests=[f"{check.service}:{check.operation}"])  # fmt: skip
        calls = self.calls(inv, ctx)
        created: list[dict[str, Any]] = list(detail.get("entries") or [])
        planned = [_entry_key(c.params) for c in calls]
        # Recorded before the change, for --rollback (which deletes an entry only if it is still ours).
        journal.set(self.id, evidence=evidence, entries=created + [p for p in planned if p not in created])
        record_manifest(ex, ctx, journal)
        for call in calls:
            ex.call(call)
        acls, _ = _read_acls(ex, self.checks(inv, ctx)[0])
        missing = [f"{p['NetworkAclId']} #{p['RuleNumber']} {p['CidrBlock']}" for p in planned if not _present(acls, p)]
        _, left = self.plan_entries(Inventory(**{**inv.__dict__, "nacls": acls}), ctx)
        detail = {"evidence": evidence, "entries": created + [p for p in planned if p not in created]}
        if missing:
            return Outcome(J.FAILED, "entries not in place: " + ", ".join(missing), detail)
        text = f"{len(planned)} deny entr{'y' if len(planned) == 1 else 'ies'} added" if planned else "already denied"
        return Outcome(J.DONE, "; ".join([text, *left]), detail)


def _entry_key(params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in ("NetworkAclId", "RuleNumber", "Egress", "CidrBlock")}


def _read_acls(ex: Caller, check: ApiCall) -> tuple[list[NetworkAcl], dict[str, Any]]:
    subnets = check.params["Filters"][0]["Values"]
    return read_network_acls(ex, subnets, check.region or "")


def _present(acls: list[NetworkAcl] | dict[str, list[dict[str, Any]]], entry: dict[str, Any]) -> bool:
    """Whether ``entry`` (recorded by nacl-deny) is in the ACL as this step made it."""
    by_id = acls if isinstance(acls, dict) else {a.acl_id: a.entries for a in acls}
    return any(
        int(e.get("RuleNumber", -1)) == entry["RuleNumber"] and bool(e.get("Egress")) == entry["Egress"]
        and e.get("CidrBlock") == entry["CidrBlock"] and e.get("RuleAction") == "deny"
        for e in by_id.get(entry["NetworkAclId"]) or []
    )  # fmt: skip


def nacl_rollback_calls(recorded: list[dict[str, Any]], current: dict[str, list[dict[str, Any]]],
                        region: str | None) -> list[ApiCall]:  # fmt: skip
    """Delete the entries nacl-deny created that are still there as it made them (``current``: ACL id → its
    entries now); an entry changed or removed since is left alone."""
    return [
        ApiCall(
            "ec2",
            "DeleteNetworkAclEntry",
            {"NetworkAclId": e["NetworkAclId"], "RuleNumber": e["RuleNumber"], "Egress": e["Egress"]},
            region,
            note=f"remove the deny {'to' if e['Egress'] else 'from'} {e['CidrBlock']} added by nacl-deny",
        )
        for e in recorded
        if _present(current, e)
    ]


class Snapshot(Action):
    id = "snapshot"
    title = "Snapshot every attached EBS volume, tagged with the alert id"

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        return None if inv.volumes else "the instance has no EBS volume (instance store only): image it by hand"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        out = []
        for vol, device in inv.volumes:
            if vol in inv.snapshots:
                continue
            tags = {
                ALERT_TAG: ctx.alert_id,
                INCIDENT_TAG: ctx.incident_id,
                INSTANCE_TAG: inv.instance_id,
                "Name": f"minerwatch {ctx.alert_id} {vol}",
            }
            out.append(
                ApiCall(
                    "ec2",
                    "CreateSnapshot",
                    {
                        "VolumeId": vol,
                        "Description": f"MinerWatch forensics: alert {ctx.alert_id}, {inv.instance_id} {device}",
                        "TagSpecifications": [{"ResourceType": "snapshot", "Tags": _tags(tags)}],
                    },
                    inv.region,
                )
            )
        return out

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [snapshots_call(ctx.alert_id, inv.region)]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        have = [f"{v} → {s['SnapshotId']} ({s['State']})" for v, s in sorted(inv.snapshots.items())]
        return ["already snapshotted: " + ", ".join(have)] if have else []

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        for call in self.calls(inv, ctx):
            ex.call(call)
        found = ex.read(self.checks(inv, ctx)[0])
        snaps: dict[str, dict[str, Any]] = {}
        for s in found.get("Snapshots") or []:
            if s.get("VolumeId") and s.get("State") != "error":
                snaps.setdefault(s["VolumeId"], {"SnapshotId": s["SnapshotId"], "State": s.get("State")})
        missing = [v for v, _ in inv.volumes if v not in snaps]
        detail = {"snapshots": snaps}
        if missing:
            return Outcome(J.FAILED, "no snapshot of " + ", ".join(missing), detail)
        text = ", ".join(f"{v} → {s['SnapshotId']} ({s['State']})" for v, s in sorted(snaps.items()))
        return Outcome(J.DONE, text, detail)


class DetachProfile(Action):
    id = "detach-profile"
    title = "Detach the IAM instance profile (recorded for rollback)"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        if not inv.profile:
            return []
        return [
            ApiCall(
                "ec2",
                "DisassociateIamInstanceProfile",
                {"AssociationId": inv.profile["AssociationId"]},
                inv.region,
                note=f"profile {inv.profile.get('Arn')}",
            )
        ]

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [profile_association_call(inv.instance_id, inv.region)]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        if not inv.profile:
            return ["no instance profile is associated"]
        return [
            "role credentials already on the instance stay valid until they expire: revoke the role's active "
            "sessions (manual)"
        ]

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        if inv.profile and not journal.detail(self.id).get("profile"):
            journal.set(self.id, profile=inv.profile)  # before the change, for --rollback
        for call in self.calls(inv, ctx):
            ex.call(call)
        left = ex.read(self.checks(inv, ctx)[0])
        still = [a for a in left.get("IamInstanceProfileAssociations") or [] if a.get("State") == "associated"]
        if still:
            return Outcome(J.FAILED, "an instance profile is still associated")
        recorded = journal.detail(self.id).get("profile")
        return Outcome(J.DONE, f"detached {recorded['Arn']}" if recorded else "no instance profile to detach")


REVOKE_POLICY = "MinerWatchRevokeOlderSessions"
"""Inline policy put on the instance role; the IAM console's "Revoke active sessions" writes the same deny."""


def revoke_document(issued_before: str) -> str:
    """Deny everything to sessions whose token was issued before ``issued_before`` (ISO 8601, UTC)."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Action": ["*"],
                    "Resource": ["*"],
                    "Condition": {"DateLessThan": {"aws:TokenIssueTime": issued_before}},
                }
            ],
        }
    )


class RevokeSessions(Action):
    id = "revoke-sessions"
    title = "Revoke the active sessions of the instance role (deny for tokens issued before now)"
    approval = "revoke-sessions"

    def _profile(self, inv: Inventory, ctx: Context) -> dict[str, Any] | None:
        # Once detach-profile has run, the role's sessions live on: its roles come from the journal.
        return inv.profile or ctx.detached_profile

    def _roles(self, inv: Inventory, ctx: Context) -> list[str]:
        return list((self._profile(inv, ctx) or {}).get("Roles") or [])

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        profile = self._profile(inv, ctx)
        if not profile:
            return "no instance profile is associated: no role sessions to revoke"
        if profile.get("RolesError"):
            return f"the instance role is unknown: {profile['RolesError']}"
        return None if self._roles(inv, ctx) else "the instance profile has no role"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        issued_before = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return [
            ApiCall(
                "iam",
                "PutRolePolicy",
                {"RoleName": role, "PolicyName": REVOKE_POLICY, "PolicyDocument": revoke_document(issued_before)},
                note="credentials issued before now stop working; new ones (a re-attached profile) still do",
            )
            for role in self._roles(inv, ctx)
        ]

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [
            ApiCall("iam", "GetRolePolicy", {"RoleName": role, "PolicyName": REVOKE_POLICY})
            for role in self._roles(inv, ctx)
        ]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        return ["every session of the role issued before the step runs is denied, on every instance using it"]

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        recorded: dict[str, Any] = dict(journal.detail(self.id).get("previous") or {})
        for check in self.checks(inv, ctx):
            role = check.params["RoleName"]
            if role in recorded:
                continue  # recorded by an earlier run: that is the state to restore
            try:
                recorded[role] = ex.read(check).get("PolicyDocument")  # a policy of that name already there
            except AwsError as exc:
                if exc.code != "NoSuchEntity":
                    raise
                recorded[role] = None
        journal.set(self.id, previous=recorded)  # before the change, for --rollback
        done = []
        for call in self.calls(inv, ctx):
            ex.call(call)
            done.append(call.params["RoleName"])
        for check in self.checks(inv, ctx):
            ex.read(check)  # raises if the deny is not in place
        return Outcome(J.DONE, f"sessions of {', '.join(done)} revoked", {"roles": done})


class DeactivateKeys(Action):
    id = "deactivate-keys"
    title = "Deactivate the access keys of the principal that launched the instance"
    approval = "deactivate-keys"

    def _usable(self, inv: Inventory) -> list[KeyCandidate]:
        return [k for k in inv.keys if k.problem is None and k.user_name]

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        if self._usable(inv):
            return None
        if ctx.key_reason:
            return ctx.key_reason
        problems = [f"{k.access_key_id}: {k.problem}" for k in inv.keys if k.problem]
        return "; ".join(problems) or "no access key of the launching principal is known"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [
            ApiCall(
                "iam",
                "UpdateAccessKey",
                {"UserName": k.user_name, "AccessKeyId": k.access_key_id, "Status": "Inactive"},
                note=k.why,
            )
            for k in self._usable(inv)
            if k.status == "Active"
        ]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        out = [f"{k.access_key_id}: {k.problem}" for k in inv.keys if k.problem]
        out += [f"{k.access_key_id} of {k.user_name} is already {k.status}" for k in inv.keys if k.status == "Inactive"]
        return out

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        done = []
        for call in self.calls(inv, ctx):
            ex.call(call)
            done.append(call.params["AccessKeyId"])
        return Outcome(
            J.DONE, f"deactivated {', '.join(done)}" if done else "keys already inactive", {"deactivated": done}
        )


CREDENTIALS_FILE = "iam-users-before-reset.json"
"""Evidence written by reset-credentials before it changes anything: each user's keys, login profile, policies."""


class ResetCredentials(Action):
    id = "reset-credentials"
    title = (
        "Disable the IAM users the compromised principal created or gave credentials: deactivate their access keys, "
        "delete their console passwords, detach their managed policies"
    )
    approval = "reset-credentials"

    def _users(self, inv: Inventory) -> list[CreatedUser]:
        return [u for u in inv.users if u.problem is None]

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        if self._users(inv):
            return None
        problems = [u.problem for u in inv.users if u.problem]
        if problems:
            return "; ".join(str(p) for p in problems)
        return ctx.key_reason or "the enrichment names no IAM user created or given credentials by the principal"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        out: list[ApiCall] = []
        for u in self._users(inv):
            for k in u.keys:
                if k.get("Status") == "Active":
                    out.append(
                        ApiCall(
                            "iam",
                            "UpdateAccessKey",
                            {"UserName": u.user_name, "AccessKeyId": k["AccessKeyId"], "Status": "Inactive"},
                            note=u.why,
                        )
                    )
            if u.login_profile is not None:
                out.append(
                    ApiCall(
                        "iam",
                        "DeleteLoginProfile",
                        {"UserName": u.user_name},
                        note="not restorable: a rollback cannot give back the same password",
                    )
                )
            for p in u.policies:
                out.append(
                    ApiCall("iam", "DetachUserPolicy", {"UserName": u.user_name, "PolicyArn": p["PolicyArn"]})
                )
        return out

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [c for u in self._users(inv) for c in user_reads(u.user_name)]

    def stores(self, inv: Inventory, ctx: Context) -> list[str]:
        return [CREDENTIALS_FILE]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        out = [f"{u.user_name}: {u.why}" for u in self._users(inv)]
        out += [str(u.problem) for u in inv.users if u.problem]
        out.append(
            f"each user's keys, login profile and policies are written to {CREDENTIALS_FILE} (listed in manifest.json "
            "with its SHA-256) before the change; rollback reactivates the keys and re-attaches the policies, a "
            "deleted console password cannot be restored"
        )
        return out

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        detail = journal.detail(self.id)
        previous: dict[str, Any] = dict(detail.get("previous") or {})
        for u in self._users(inv):
            if u.user_name not in previous:  # recorded by an earlier run: that is the state to restore
                previous[u.user_name] = {"keys": u.keys, "login_profile": u.login_profile, "policies": u.policies}
        evidence = detail.get("evidence")
        if evidence is None:
            doc = {"captured_at": datetime.now(UTC).isoformat(), "alert_id": ctx.alert_id, "users": previous}
            reads = [f"{c.service}:{c.operation}" for u in self._users(inv) for c in user_reads(u.user_name)]
            evidence = store_file(ex, ctx.evidence, CREDENTIALS_FILE, to_json_bytes(doc), step=self.id,
                                  requests=list(dict.fromkeys(reads)))  # fmt: skip
        journal.set(self.id, previous=previous, evidence=evidence)  # before the change, for --rollback
        record_manifest(ex, ctx, journal)
        done: dict[str, list[str]] = {}
        for call in self.calls(inv, ctx):
            ex.call(call)
            what = call.params.get("AccessKeyId") or call.params.get("PolicyArn") or "login profile"
            done.setdefault(call.params["UserName"], []).append(what)
        left = discover_users(ex, inv)
        if left:
            return Outcome(J.FAILED, "still enabled: " + "; ".join(left), {"previous": previous, "evidence": evidence})
        text = "; ".join(f"{u}: {', '.join(w)}" for u, w in sorted(done.items())) or "nothing left to disable"
        return Outcome(J.DONE, text, {"previous": previous, "evidence": evidence, "changed": done})


def discover_users(ex: Caller, inv: Inventory) -> list[str]:
    """What is still enabled on the users after the reset (read back from IAM)."""
    left: list[str] = []
    for u in inv.users:
        if u.problem:
            continue
        keys, profile, policies = user_reads(u.user_name)
        active = [k["AccessKeyId"] for k in ex.read(keys).get("AccessKeyMetadata") or [] if k.get("Status") == "Active"]
        attached = [p["PolicyArn"] for p in ex.read(policies).get("AttachedPolicies") or []]
        try:
            ex.read(profile)
            has_profile = True
        except AwsError as exc:
            if exc.code != "NoSuchEntity":
                raise
            has_profile = False
        bits = active + attached + (["login profile"] if has_profile else [])
        if bits:
            left.append(f"{u.user_name} ({', '.join(bits)})")
    return left


class Stop(Action):
    id = "stop"
    title = "Stop the instance (terminating it needs --approve terminate)"
    depends_on = ("evidence", "snapshot")

    def manual_reason(self, inv: Inventory, ctx: Context) -> str | None:
        return "--keep-running: the instance stays up, isolated" if ctx.keep_running else None

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        if not inv.running:
            return []
        return [ApiCall("ec2", "StopInstances", {"InstanceIds": [inv.instance_id]}, inv.region)]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        return [] if inv.running else [f"the instance is {inv.state}"]


class Terminate(Action):
    id = "terminate"
    title = "Terminate the instance"
    depends_on = ("evidence", "snapshot")
    approval = "terminate"

    def calls(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        if inv.gone:
            return []
        out = []
        if inv.termination_protected or ctx.tag_pending:
            out.append(
                ApiCall(
                    "ec2",
                    "ModifyInstanceAttribute",
                    {"InstanceId": inv.instance_id, "DisableApiTermination": {"Value": False}},
                    inv.region,
                    note="lift the termination protection set by the tag step",
                )
            )
        out.append(ApiCall("ec2", "TerminateInstances", {"InstanceIds": [inv.instance_id]}, inv.region))
        return out

    def checks(self, inv: Inventory, ctx: Context) -> list[ApiCall]:
        return [snapshots_call(ctx.alert_id, inv.region)]

    def notes(self, inv: Inventory, ctx: Context) -> list[str]:
        return ["refused until evidence capture is complete and every snapshot is completed"]

    def refusal(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> str | None:
        """Why terminating now would destroy evidence, or ``None`` when it is safe."""
        status, detail = journal.get("evidence")
        if status != J.DONE or not detail.get("complete"):
            return "evidence capture is not complete (run the evidence step first)"
        if not inv.volumes:
            return None
        if journal.status("snapshot") != J.DONE:
            return "the volumes are not snapshotted (run the snapshot step first)"
        found = ex.read(self.checks(inv, ctx)[0])
        states = {s.get("VolumeId"): s.get("State") for s in found.get("Snapshots") or []}
        pending = [f"{v} ({states.get(v) or 'no snapshot'})" for v, _ in inv.volumes if states.get(v) != "completed"]
        if pending:
            return "snapshots not completed yet: " + ", ".join(pending) + "; re-run when they are"
        return None

    def run(self, ex: Caller, inv: Inventory, ctx: Context, journal: J.Journal) -> Outcome:
        why = self.refusal(ex, inv, ctx, journal)
        if why:
            return Outcome(J.REFUSED, f"terminate refused: {why}")
        for call in self.calls(inv, ctx):
            ex.call(call)
        return Outcome(
            J.DONE, f"{inv.instance_id} terminating" if not inv.gone else f"{inv.instance_id} is {inv.state}"
        )


def rollback_calls(
    inv: Inventory,
    originals: dict[str, list[str]],
    profile: dict[str, Any] | None,
    instance_groups: list[str] | None = None,
    revoked: dict[str, Any] | None = None,
    reset: dict[str, Any] | None = None,
) -> list[ApiCall]:
    """Calls that put back the recorded security groups (of the interfaces and of the instance) and the instance
    profile, given the current state, and undo a session revocation still in place (``revoked``: role → its earlier
    policy of that name, or None) and a credential reset (``reset``: user → its keys and policies before it)."""
    calls: list[ApiCall] = credential_rollback_calls(reset or {})
    for role, previous in sorted((revoked or {}).items()):
        if previous is None:
            calls.append(
                ApiCall("iam", "DeleteRolePolicy", {"RoleName": role, "PolicyName": REVOKE_POLICY},
                        note="remove the session revocation")  # fmt: skip
            )
        else:
            document = previous if isinstance(previous, str) else json.dumps(previous)
            calls.append(
                ApiCall("iam", "PutRolePolicy", {"RoleName": role, "PolicyName": REVOKE_POLICY,
                        "PolicyDocument": document}, note="restore the earlier policy of that name")  # fmt: skip
            )
    current = {e.id: e.groups for e in inv.enis}
    for eni, groups in sorted(originals.items()):
        if eni in current and set(current[eni]) != set(groups) and groups:
            calls.append(
                ApiCall(
                    "ec2",
                    "ModifyNetworkInterfaceAttribute",
                    {"NetworkInterfaceId": eni, "Groups": groups},
                    inv.region,
                    note="restore the original groups",
                )
            )
    if instance_groups and set(inv.instance_groups) != set(instance_groups):
        calls.append(instance_groups_call(inv, instance_groups, "restore the instance's own groups"))
    if profile and profile.get("Arn") and not inv.profile:
        calls.append(
            ApiCall(
                "ec2",
                "AssociateIamInstanceProfile",
                {"IamInstanceProfile": {"Arn": profile["Arn"]}, "InstanceId": inv.instance_id},
                inv.region,
                note="restore the detached instance profile",
            )
        )
    return calls


def credential_rollback_calls(reset: dict[str, Any]) -> list[ApiCall]:
    """Reactivate the keys and re-attach the policies recorded before reset-credentials (a login profile cannot be
    given back: it is left out)."""
    calls: list[ApiCall] = []
    for user, before in sorted(reset.items()):
        for k in before.get("keys") or []:
            if k.get("Status") == "Active":
                params = {"UserName": user, "AccessKeyId": k["AccessKeyId"], "Status": "Active"}
                calls.append(ApiCall("iam", "UpdateAccessKey", params, note="reactivate the deactivated key"))
        for p in before.get("policies") or []:
            calls.append(
                ApiCall("iam", "AttachUserPolicy", {"UserName": user, "PolicyArn": p["PolicyArn"]},
                        note="re-attach the policy detached by reset-credentials")  # fmt: skip
            )
    return calls


def login_profiles_lost(reset: dict[str, Any]) -> list[str]:
    """Users whose console password reset-credentials deleted: a rollback cannot restore it."""
    return sorted(u for u, before in reset.items() if before.get("login_profile"))


ACTIONS: dict[str, Action] = {
    a.id: a
    for a in (
        TagProtect(), Evidence(), LiveForensics(), Isolate(), NaclDeny(), Snapshot(), RevokeSessions(),
        DetachProfile(), DeactivateKeys(), ResetCredentials(), Stop(), Terminate(),
    )
}  # fmt: skip
