"""Plan, run and roll back the response to one alert.

* :func:`prepare` reads the alert, its rule and enrichment from the state store and returns a :class:`Response`.
* :meth:`Response.plan` reads the account (Describe/Get/List only) and returns the :class:`~.plan.Plan`.
* :meth:`Response.execute` runs the automated steps in order. Before each step the account is read again and the
  step's calls are planned from what is there now. A step whose dependency did not finish is blocked;
  independent steps still run. Steps needing approval wait for ``--approve``. Finished steps are not run again.
* :meth:`Response.rollback` puts the original security groups and the instance profile back.

Every AWS call made while executing or rolling back is written to the audit log (time, actor, action, request,
AWS request id, result). A dry run makes read calls only; the executor refuses any other call in that mode.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from minerwatch.alerting.state import StateStore
from minerwatch.aws.session import Aws, AwsError, request_id
from minerwatch.errors import MinerWatchError
from minerwatch.respond import journal as J
from minerwatch.respond.actions import (
    ACTIONS,
    MULTIPLE_INTERFACES,
    Context,
    Outcome,
    PoolAddress,
    login_profiles_lost,
    nacl_rollback_calls,
    rollback_calls,
)
from minerwatch.respond.discover import TEMPORARY_KEY_PREFIX, CreatedUser, Inventory, KeyCandidate, discover
from minerwatch.respond.evidence import location, planned_uploads, sha256
from minerwatch.respond.plan import ApiCall, Plan, Step, skeleton
from minerwatch.rules.model import Rule

INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{1,256}$")

ROLLBACK_ACTIONS = ("isolate", "nacl-deny", "revoke-sessions", "detach-profile", "reset-credentials")


class ResponseError(MinerWatchError):
    """The response cannot be planned or run (unknown alert, wrong account, refused step ...)."""

    def format(self) -> str:
        return self.message


class DryRunViolation(ResponseError):
    """A call that could change something was attempted during a dry run."""


def _summary(resp: dict[str, Any], read: bool) -> dict[str, Any]:
    body = {k: v for k, v in resp.items() if k != "ResponseMetadata"}
    if not read:
        return {"ok": True, "response": body}
    # Reads can be large; the audit keeps their shape, the evidence files keep their content.
    return {"ok": True, "counts": {k: len(v) for k, v in body.items() if isinstance(v, list)}}


def _audit_params(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    if isinstance(out.get("Body"), bytes):
        out["Body"] = {"bytes": len(out["Body"]), "sha256": sha256(out["Body"])}
    return out


@dataclass
class Executor:
    """Makes the calls: reads always, changes only when ``execute`` is true. Audits when executing."""

    aws: Aws
    store: StateStore
    alert_id: str
    actor: str
    execute: bool
    made: list[ApiCall] = field(default_factory=list)

    def read(self, call: ApiCall) -> dict[str, Any]:
        if not call.read_only:
            raise DryRunViolation(f"{call.operation} is not a read")
        return self.call(call)

    def call(self, call: ApiCall, values: dict[str, Any] | None = None) -> dict[str, Any]:
        if not call.read_only and not self.execute:
            raise DryRunViolation(f"dry run: refusing to call {call.service}:{call.operation}")
        values = values if values is not None else {}
        params = call.resolved(values)
        done = ApiCall(call.service, call.operation, params, call.region or self.aws.region, call.note)
        self.made.append(done)
        request = {
            "service": call.service,
            "operation": call.operation,
            "region": done.region,
            "params": _audit_params(params),
        }
        try:
            resp = self.aws.invoke(call.service, call.operation, params, call.region)
        except AwsError as exc:
            if self.execute:
                self.store.audit(
                    f"{call.service}:{call.operation}",
                    alert_id=self.alert_id,
                    actor=self.actor,
                    request=request,
                    aws_request_id=exc.request_id,
                    result={"ok": False, "error": exc.code, "message": exc.message},
                )
            raise
        if self.execute:
            self.store.audit(
                f"{call.service}:{call.operation}",
                alert_id=self.alert_id,
                actor=self.actor,
                request=request,
                aws_request_id=request_id(resp),
                result=_summary(resp, call.read_only),
            )
        for name, key in call.binds.items():
            values[name] = resp[key]
        return resp


def launching_keys(enrichments: dict[str, Any], instance_id: str) -> tuple[list[KeyCandidate], str | None]:
    """Access keys of the principal that launched the instance, from the ``launch_context`` and
    ``principal_activity`` enrichment sections; read defensively, as either may be missing or partial."""
    launch = enrichments.get("launch_context")
    if not isinstance(launch, dict):
        return [], "no launch_context enrichment for this alert: run the enrichment with CloudTrail first"
    summary = launch.get("summary") if isinstance(launch.get("summary"), dict) else {}
    launches = [x for x in summary.get("launches") or [] if isinstance(x, dict)]
    mine = [x for x in launches if x.get("instance_id") == instance_id]
    if not mine:
        why = launch.get("reason") or f"RunInstances of {instance_id} not found by the enrichment"
        return [], f"the launching principal is unknown: {why}"
    keys: dict[str, KeyCandidate] = {}
    for x in mine:
        principal = x.get("principal") if isinstance(x.get("principal"), dict) else {}
        key = x.get("access_key_id")
        if isinstance(key, str) and key:
            user = principal.get("user_name") if principal.get("type") == "IAMUser" else None
            keys[key] = KeyCandidate(key, "launched the instance", principal.get("arn"), user)
    activity = enrichments.get("principal_activity")
    if isinstance(activity, dict) and isinstance(activity.get("summary"), dict):
        principals = activity["summary"].get("principals") or {}
        for k in principals.get("access_keys") or [] if isinstance(principals, dict) else []:
            if isinstance(k, dict) and isinstance(k.get("access_key_id"), str) and k["access_key_id"] not in keys:
                keys[k["access_key_id"]] = KeyCandidate(k["access_key_id"], str(k.get("why") or "tracked principal"))
    if not keys:
        return [], "the launch event carries no access key id"
    if all(k.startswith(TEMPORARY_KEY_PREFIX) for k in keys):
        arns = sorted({k.principal_arn for k in keys.values() if k.principal_arn})
        return list(keys.values()), (
            "the instance was launched with temporary credentials ("
            + ", ".join(sorted(keys))
            + (f" of {', '.join(arns)}" if arns else "")
            + "): revoke the role's active sessions and review who can assume it"
        )
    return list(keys.values()), None


LAUNCHER = "launched the instance"


def created_users(enrichments: dict[str, Any], account_id: str | None) -> list[CreatedUser]:
    """IAM users the launching principal created or gave an access key or a console password, from the
    ``principal_activity`` enrichment (its tracked principals); the launching user itself is left to
    deactivate-keys."""
    activity = enrichments.get("principal_activity")
    summary = activity.get("summary") if isinstance(activity, dict) else None
    principals = summary.get("principals") if isinstance(summary, dict) else None
    users = principals.get("iam_users") if isinstance(principals, dict) else None
    out: dict[str, CreatedUser] = {}
    for u in users if isinstance(users, list) else []:
        if not isinstance(u, dict) or not isinstance(u.get("user_name"), str) or not u["user_name"]:
            continue
        why = str(u.get("why") or "")
        if why == LAUNCHER or (account_id and u.get("account_id") and str(u["account_id"]) != str(account_id)):
            continue
        out.setdefault(u["user_name"], CreatedUser(u["user_name"], why or "tracked principal"))
    return list(out.values())


INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
              "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
)  # fmt: skip
"""Addresses a deny must never cover: the VPC's own ranges, link-local (the instance metadata service), multicast."""

POOL_FIELDS = ("mining_pool_ip", "remote_ip")
"""Alert fields (the rule's select) that hold the finding's remote address."""


def pool_addresses(alert: dict[str, Any], enrichments: dict[str, Any]) -> tuple[list[PoolAddress], list[str]]:
    """The mining-pool addresses known for the alert, the finding's own first: its remote address (the rule's
    ``mining_pool_ip`` / ``remote_ip``, of the latest finding and of every group), then the enrichment's flows to
    pool addresses (``network`` peers) and the addresses pool domains resolved to (``dns``). Only public IPv4
    addresses are kept (never one of :data:`INTERNAL_NETWORKS`); the others are named in the second list with the
    reason. Finding text is data: an address is used only once it parses as one."""
    found: dict[str, str] = {}
    rejected: list[str] = []

    def add(value: Any, why: str) -> None:
        if not isinstance(value, str) or not value.strip():
            return
        try:
            ip = ipaddress.ip_address(value.strip())
        except ValueError:
            rejected.append(f"{value[:64]!r} ({why}) is not an IP address: not denied")
            return
        if ip.version != 4 or any(ip in net for net in INTERNAL_NETWORKS):
            rejected.append(f"{ip} ({why}) is not a public IPv4 address: not denied")
            return
        found.setdefault(str(ip), why)

    fields = alert.get("fields") if isinstance(alert.get("fields"), dict) else {}
    for name in POOL_FIELDS:
        add(fields.get(name), f"the finding's {name}")
    for g in alert.get("groups") or []:
        for name in POOL_FIELDS:
            add(g.get(name) if isinstance(g, dict) else None, f"the finding's {name}")
    peers = _section_summary(enrichments, "network").get("peers")
    for peer in peers if isinstance(peers, list) else []:
        if isinstance(peer, dict):
            add(peer.get("peer"), "flow to a pool address (network enrichment)")
    resolved = _section_summary(enrichments, "dns").get("resolved_addresses")
    for address, domain in sorted(resolved.items()) if isinstance(resolved, dict) else []:
        add(address, f"address of pool domain {str(domain)[:253]} (dns enrichment)")
    return [PoolAddress(a, w) for a, w in found.items()], list(dict.fromkeys(rejected))


def _section_summary(enrichments: dict[str, Any], section: str) -> dict[str, Any]:
    found = enrichments.get(section)
    summary = found.get("summary") if isinstance(found, dict) else None
    return summary if isinstance(summary, dict) else {}


@dataclass
class Options:
    evidence_root: str
    actor: str
    incident_id: str | None = None
    approvals: set[str] = field(default_factory=set)
    keep_running: bool = False
    region: str | None = None
    ssm_deadline: float = 600.0
    """Seconds live-forensics waits for its commands."""


@dataclass
class StepReport:
    id: str
    status: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "message": self.message}


class Response:
    """One alert's response: its context, the AWS session and the journal of its steps."""

    def __init__(self, store: StateStore, alert: dict[str, Any], rule: Rule, aws: Aws, options: Options) -> None:
        self.store = store
        self.alert = alert
        self.alert_id = str(alert["alert_id"])
        self.rule = rule
        self.aws = aws
        self.options = options
        self.journal = J.Journal(store, self.alert_id)
        key = alert.get("key") or {}
        fields = alert.get("fields") or {}
        self.instance_id = str(key.get("instance_id") or fields.get("instance_id") or "")
        self.region = options.region or fields.get("region") or aws.region
        aws.region = aws.region or self.region
        self.account_id = key.get("accountid") or fields.get("accountid")
        self.enrichments = store.enrichments(self.alert_id)
        recorded = self.journal.detail("tag").get("incident_id")
        self.incident_id = options.incident_id or recorded or self.alert_id
        if not TAG_VALUE.match(self.incident_id):
            raise ResponseError(f"incident id {self.incident_id!r}: use letters, digits, spaces and _.:/=+-@")
        self.keys, self.key_reason = launching_keys(self.enrichments, self.instance_id)
        self.users = created_users(self.enrichments, self.account_id)
        self.pools, self.pool_notes = pool_addresses(alert, self.enrichments)
        self._account: str | None = None

    @property
    def automatable(self) -> str | None:
        """Why nothing can be automated for this alert, or ``None``."""
        if not INSTANCE_ID.match(self.instance_id):
            return f"the alert names no EC2 instance ({self.instance_id or 'no instance_id'}): every step is manual"
        return None

    def context(self, inv: Inventory | None = None) -> Context:
        return Context(
            alert=self.alert,
            alert_id=self.alert_id,
            incident_id=self.incident_id,
            instance_id=self.instance_id,
            region=self.region,
            account_id=self.account_id,
            actor=self.options.actor,
            evidence=location(self.options.evidence_root, self.alert_id),
            approvals=set(self.options.approvals),
            keep_running=self.options.keep_running,
            keys=self.keys,
            key_reason=self.key_reason,
            enrichments=self.enrichments,
            tag_pending=self.journal.status("tag") != J.DONE,
            detached_profile=self.journal.detail("detach-profile").get("profile"),
            pool_addresses=self.pools,
            pool_notes=self.pool_notes,
            ssm_deadline=self.options.ssm_deadline,
        )

    def executor(self, execute: bool) -> Executor:
        return Executor(self.aws, self.store, self.alert_id, self.options.actor, execute)

    def _check_account(self, ex: Executor) -> str:
        if self._account is None:
            self._account = str(ex.read(ApiCall("sts", "GetCallerIdentity", {})).get("Account") or "")
        account = self._account
        if self.account_id and account and str(self.account_id) != account:
            raise ResponseError(
                f"alert {self.alert_id} is in account {self.account_id} but the credentials are for account "
                f"{account}: use --profile or --role-arn for that account"
            )
        return account

    def discover(self, ex: Executor, ssm: bool = True) -> Inventory:
        inv = discover(ex, self.instance_id, self.region, self.alert_id, self.keys, self.users, ssm=ssm)
        if not inv.found:
            raise self._not_found()
        return inv

    def _not_found(self) -> ResponseError:
        return ResponseError(
            f"instance {self.instance_id} not found in region {self.region} of account {self._account or '?'}"
        )

    # -- plan -----------------------------------------------------------------------------------------
    def plan(self, ex: Executor | None = None) -> Plan:
        ex = ex or self.executor(execute=False)
        notes: list[str] = []
        inv: Inventory | None = None
        if self.automatable:
            notes.append(self.automatable)
        else:
            self._check_account(ex)
            inv = self.discover(ex)
            if inv.gone:
                notes.append(f"the instance is {inv.state}: nothing left to contain")
        ctx = self.context(inv)
        steps: list[Step] = []
        for item in skeleton(self.rule.response_playbook, self.rule.recommended_actions):
            if item.action is None:
                steps.append(Step(id=str(item.manual_id), title=item.title, kind="manual", seed=item.seed))
                continue
            steps.append(self._step(item.action, item.seed, inv, ctx))
        return Plan(
            alert_id=self.alert_id,
            rule_id=self.rule.id,
            incident_id=self.incident_id,
            instance_id=self.instance_id or None,
            account_id=self.account_id,
            region=self.region,
            steps=steps,
            evidence_uri=ctx.evidence.uri,
            notes=notes,
            discovery=list(inv.reads) if inv else [],
        )

    def _step(self, action_id: str, seed: list[str], inv: Inventory | None, ctx: Context) -> Step:
        action = ACTIONS[action_id]
        status, _detail = self.journal.get(action_id)
        step = Step(
            id=action_id,
            title=action.title,
            kind="automated",
            seed=seed,
            depends_on=list(action.depends_on),
            requires_approval=action.approval,
            status=status,
        )
        reason = self.automatable or (f"the instance is {inv.state}" if inv and inv.gone else None)
        if inv is not None and reason is None:
            reason = action.manual_reason(inv, ctx)
        if reason:
            step.kind = "manual"
            step.notes.append(f"manual: {reason}")
            return step
        assert inv is not None
        if not seed:
            step.notes.append("added before the playbook's containment steps, so the state is recorded first")
        step.calls = action.calls(inv, ctx)
        step.checks = action.checks(inv, ctx)
        step.notes += action.notes(inv, ctx)
        changes = bool(step.calls)
        if stored := action.stores(inv, ctx):
            # Uploaded before the change it records: a dry run shows every write, these included.
            step.calls += planned_uploads(ctx.evidence, stored)
        if status == J.DONE:
            step.notes.insert(0, "already done: it will not run again")
        elif skip := action.skip_reason(inv, ctx):
            step.notes.insert(0, f"skipped: {skip}")
        elif not changes and action_id not in ("evidence",):
            step.notes.insert(0, "nothing to change")
        return step

    # -- execute --------------------------------------------------------------------------------------
    def execute(self, only: set[str] | None = None) -> tuple[Plan, list[StepReport]]:
        ex = self.executor(execute=True)
        self._audit_assume_role(True)
        plan = self.plan(ex)
        self.journal.set("tag", None, incident_id=self.incident_id)
        reports: list[StepReport] = []
        finished: dict[str, bool] = {}
        unknown = (only or set()) - {s.id for s in plan.steps}
        if unknown:
            raise ResponseError(
                f"no step {', '.join(sorted(unknown))} in the plan; steps: " + ", ".join(s.id for s in plan.automated())
            )
        automated = {s.id for s in plan.automated()}
        for step in plan.automated():
            status = self.journal.status(step.id)
            if status == J.DONE:
                finished[step.id] = True
                if only is None or step.id in only:
                    reports.append(StepReport(step.id, J.DONE, "done earlier; not run again"))
                continue
            finished[step.id] = False
            if only is not None and step.id not in only:
                continue
            report = self._run_step(ex, automated, step, finished, explicit=only is not None)
            finished[step.id] = report.status == J.DONE
            reports.append(report)
        return plan, reports

    def _run_step(
        self, ex: Executor, automated: set[str], step: Step, finished: dict[str, bool], explicit: bool
    ) -> StepReport:
        action = ACTIONS[step.id]
        if action.approval and action.approval not in self.options.approvals:
            status = J.REFUSED if explicit else J.AWAITING
            msg = f"{step.id} requires approval: re-run with --approve {action.approval}"
            return self._record(step.id, Outcome(status, msg))
        # A dependency that is a manual item here (no volume to snapshot) does not hold a step back.
        blocked = [
            d for d in action.depends_on if d in automated and not finished.get(d, self.journal.status(d) == J.DONE)
        ]
        # Terminate is not merely blocked: it checks evidence and snapshots itself and refuses with the reason.
        if blocked and step.id != "terminate":
            return self._record(step.id, Outcome(J.BLOCKED, f"waiting for {', '.join(blocked)} to finish"))
        try:
            inv = self.discover(ex, ssm=step.id == "live-forensics")
            ctx = self.context(inv)
            skip = action.skip_reason(inv, ctx)
            outcome = Outcome(J.SKIPPED, skip) if skip else action.run(ex, inv, ctx, self.journal)
        except AwsError as exc:
            outcome = Outcome(J.FAILED, exc.message)
        return self._record(step.id, outcome)

    def _record(self, step_id: str, outcome: Outcome) -> StepReport:
        self.journal.set(step_id, outcome.status, **outcome.detail, message=outcome.message)
        self.store.audit(
            f"step:{step_id}",
            alert_id=self.alert_id,
            actor=self.options.actor,
            result={"status": outcome.status, "message": outcome.message},
        )
        return StepReport(step_id, outcome.status, outcome.message)

    def _audit_assume_role(self, execute: bool) -> None:
        if execute and self.aws.role_arn:
            self.aws.session  # noqa: B018 (assumes the role now, so the audit entry comes first)
            self.store.audit(
                "sts:AssumeRole",
                alert_id=self.alert_id,
                actor=self.options.actor,
                request={"service": "sts", "operation": "AssumeRole", "params": {"RoleArn": self.aws.role_arn}},
                aws_request_id=self.aws.assume_request_id,
                result={"ok": True},
            )

    # -- rollback -------------------------------------------------------------------------------------
    def rollback_calls(self, inv: Inventory) -> list[ApiCall]:
        isolate = self.journal.detail("isolate")
        profile = self.journal.detail("detach-profile").get("profile")
        revoked = None
        if self.journal.status("revoke-sessions") in (J.DONE, J.FAILED):  # not once rolled back
            revoked = self.journal.detail("revoke-sessions").get("previous")
        return rollback_calls(
            inv, isolate.get("originals") or {}, profile, isolate.get("instance_groups"), revoked, self._reset()
        )

    def _nacl_rollback(self, ex: Executor) -> list[ApiCall]:
        """Delete the deny entries nacl-deny recorded, read from the ACLs they were put in (a subnet may have
        moved to another ACL since)."""
        if self.journal.status("nacl-deny") not in (J.DONE, J.FAILED):  # not once rolled back
            return []
        recorded = self.journal.detail("nacl-deny").get("entries") or []
        ids = sorted({e["NetworkAclId"] for e in recorded})
        if not ids:
            return []
        found = ex.read(ApiCall("ec2", "DescribeNetworkAcls", {"NetworkAclIds": ids}, self.region))
        current = {a["NetworkAclId"]: a.get("Entries") or [] for a in found.get("NetworkAcls") or []}
        return nacl_rollback_calls(recorded, current, self.region)

    def _reset(self) -> dict[str, Any] | None:
        if self.journal.status("reset-credentials") in (J.DONE, J.FAILED):  # not once rolled back
            return self.journal.detail("reset-credentials").get("previous")
        return None

    def rollback(self, execute: bool) -> tuple[list[ApiCall], list[StepReport]]:
        if self.automatable:
            raise ResponseError(self.automatable)
        ex = self.executor(execute=execute)
        self._audit_assume_role(execute)
        self._check_account(ex)
        inv = discover(ex, self.instance_id, self.region, self.alert_id, self.keys, self.users, ssm=False)
        terminated = self.journal.status("terminate") == J.DONE
        nacl_calls = self._nacl_rollback(ex)  # the subnet's ACL outlives the instance
        gone = inv.gone or (not inv.found and terminated)
        if gone and not nacl_calls:
            # Groups and profile went with the instance: no call on it could restore anything.
            state = inv.state if inv.found else "terminated (no longer listed)"
            why = f"instance {self.instance_id} is {state}: it is gone, so nothing can be rolled back"
            if execute:
                return [], [self._record("rollback", Outcome(J.SKIPPED, why))]
            return [], [StepReport("rollback", J.SKIPPED, why)]
        if not inv.found and not gone:
            raise self._not_found()
        calls = nacl_calls + ([] if gone else self.rollback_calls(inv))
        recorded = [a for a in ROLLBACK_ACTIONS if self.journal.status(a) in (J.DONE, J.FAILED)]
        if gone:
            recorded = ["nacl-deny"]
        reset = {} if gone else self._reset() or {}
        if not execute:
            return calls, []
        reports: list[StepReport] = []
        try:
            for call in calls:
                try:
                    ex.call(call)
                except AwsError as exc:
                    # The interfaces' own calls restore a multi-interface instance's primary interface.
                    if not (call.operation == "ModifyInstanceAttribute" and exc.code == MULTIPLE_INTERFACES):
                        raise
        except AwsError as exc:
            reports.append(self._record("rollback", Outcome(J.FAILED, exc.message)))
            return calls, reports
        for a in recorded:
            self.journal.set(a, J.ROLLED_BACK)
        text = f"{len(calls)} call(s): " + ("; ".join(c.render() for c in calls) if calls else "nothing to restore")
        lost = login_profiles_lost(reset)
        if lost:
            text += f"; console password of {', '.join(lost)} not restorable (deleted): set a new one by hand"
        reports.append(self._record("rollback", Outcome(J.DONE, text)))
        return calls, reports
