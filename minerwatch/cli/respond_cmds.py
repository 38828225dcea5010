"""Commands that act on the account: ``respond`` (playbook plan, execution, rollback, IAM policy) and
``posture`` (the rule's prevention measures checked against an account)."""

from __future__ import annotations

import getpass
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from minerwatch.cli import org_out
from minerwatch.cli.app import DEFAULT_STATE, alert_or_fail, app, cell, err, fail, inert, out
from minerwatch.errors import MinerWatchError
from minerwatch.posture import CHECK_IDS
from minerwatch.respond import APPROVALS
from minerwatch.rules.shipped import DEFAULT_RULE, shipped_rule

if TYPE_CHECKING:
    from minerwatch.alerting.state import StateStore
    from minerwatch.aws.org import OrgOptions
    from minerwatch.aws.session import Aws
    from minerwatch.posture.checks import PostureOptions
    from minerwatch.respond.execute import Response, StepReport
    from minerwatch.rules.model import Rule


def _any_bad(reports: list[StepReport]) -> bool:
    from minerwatch.respond import journal as J

    return any(r.status in (J.FAILED, J.BLOCKED, J.REFUSED) for r in reports)


def _actor(value: str | None) -> str:
    if value:
        return value
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _rule_for(rule_id: str, rule_path: Path | None) -> Rule:
    from minerwatch.rules.loader import load_rule

    if rule_path is not None:
        return load_rule(rule_path)
    rule = shipped_rule(rule_id)
    if rule is not None:
        return rule
    raise MinerWatchError(f"no shipped rule has id {rule_id!r}: name the rule document with --rule")


def _reports_table(reports: list[StepReport]) -> Table:
    from minerwatch.respond import journal as J

    table = Table("step", "status", "result")
    for column in table.columns:
        column.overflow = "fold"
    for r in reports:
        style = {J.DONE: "green", J.FAILED: "red", J.BLOCKED: "red", J.REFUSED: "red"}.get(r.status, "yellow")
        # Messages carry names and error text from the account: shown as text, never as markup.
        table.add_row(cell(r.id), cell(r.status, style), cell(r.message, multiline=True))
    return table


def _print_audit(store: StateStore, alert_id: str, as_json: bool) -> None:
    entries = store.audit_log(alert_id)
    if as_json:
        for e in entries:
            print(json.dumps(e, ensure_ascii=False, default=str))
        return
    table = Table("seq", "time", "actor", "action", "aws request id", "result")
    for column in table.columns:
        column.overflow = "fold"
    for e in entries:
        result = e["result"] or {}
        status = result.get("status") or ("ok" if result.get("ok") else result.get("error") or "")
        when = datetime.fromtimestamp(e["time"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        cells = (str(e["seq"]), when, e["actor"] or "", e["action"], e["aws_request_id"] or "", str(status))
        table.add_row(*(cell(c) for c in cells))
    out.print(table)
    err.print(f"{len(entries)} audit entr{'y' if len(entries) == 1 else 'ies'}", highlight=False)


@app.command("respond")
def respond_cmd(
    alert_id: str | None = typer.Argument(None, help="Alert id (an unambiguous prefix is enough)."),
    plan_only: bool = typer.Option(False, "--plan", help="Print the plan and the exact calls (the default)."),
    execute: bool = typer.Option(False, "--execute", help="Run the automated steps."),
    rollback: bool = typer.Option(
        False, "--rollback", help="Undo the recorded changes: security groups, instance profile, session revocation, "
        "credential reset, network ACL entries (with --plan: show how).",
    ),
    iam: bool = typer.Option(False, "--iam-policy", help="Print the least-privilege IAM policy of the actions."),
    audit: bool = typer.Option(False, "--audit", help="Print the alert's audit log."),
    approve: list[str] = typer.Option(
        None, "--approve", help=f"Approve a step that needs it: {', '.join(APPROVALS)} (repeatable)."
    ),
    step: list[str] = typer.Option(None, "--step", help="Run only these steps (repeatable)."),
    evidence: str | None = typer.Option(
        None, "--evidence", help="Evidence root: a folder or s3://bucket/prefix. Default: evidence/ beside the state."
    ),
    incident_id: str | None = typer.Option(None, "--incident-id", help="Incident id for the tags (default: alert id)."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Do not stop the instance."),
    forensics_wait: float = typer.Option(
        600.0, "--forensics-wait", min=0, help="Seconds live-forensics waits for its Systems Manager commands."
    ),
    state: Path = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store."),
    rule: Path | None = typer.Option(None, "--rule", "-r", help="Rule document (default: the alert's shipped rule)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: the alert's region)."),
    profile: str | None = typer.Option(None, "--profile", help="AWS profile."),
    role_arn: str | None = typer.Option(None, "--role-arn", help="Assume this role first (another account)."),
    external_id: str | None = typer.Option(None, "--external-id", help="External id for --role-arn."),
    actor: str | None = typer.Option(
        None, "--actor", "--user", help="Who acts, for the audit log (default: the OS user)."
    ),
    checklist: bool = typer.Option(False, "--checklist", help="Print the response checklist, open and closed."),
    done: str | None = typer.Option(
        None, "--done", help="Tick a manual checklist item (its id, like playbook-4, or its number) as done."
    ),
    note: str | None = typer.Option(None, "--note", help="With --done: what was done, kept in the audit log."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    org: bool = typer.Option(
        False, "--org", help="Act in the alert's account through the organization role (--role-name, --session-name, "
        "--external-id) assumed from the management or delegated administrator account.",
    ),
    role_name: str = org_out.ROLE_NAME,
    session_name: str = org_out.SESSION_NAME,
) -> None:
    """Answer an alert with its rule's response playbook: a dry run by default, --execute to act.

    The dry run reads the account (Describe/Get/List only) and prints every step with the exact API calls it
    would make. --execute runs them, writing each call to the audit log in the state store; finished steps are
    not repeated and a re-run resumes after a failure. --checklist shows every item; --done ITEM --note TEXT ticks a
    manual one (recorded with who and when); items the tool already did (CloudTrail reviewed by enrich, a hunt
    over the alert's window) tick themselves.
    """
    # Start-up: the response stack (boto3, the rule model) is loaded by the command, not by `--help`.
    from minerwatch.alerting.state import StateStore
    from minerwatch.aws.org import OrgOptions
    from minerwatch.aws.session import Aws
    from minerwatch.respond.checklist import step_ids
    from minerwatch.respond.execute import Options, Response
    from minerwatch.respond.policy import iam_policy

    approvals = set(approve or [])
    unknown = approvals - set(APPROVALS)
    if unknown:
        fail(f"--approve takes {', '.join(APPROVALS)}; not {', '.join(sorted(unknown))}")
    if iam:
        print(json.dumps(iam_policy(evidence or "evidence"), indent=2))
        return
    if alert_id is None:
        fail("respond needs an ALERT_ID (or --iam-policy)")
    if execute and plan_only:
        fail("--plan and --execute exclude each other")
    store = StateStore(state)
    record = alert_or_fail(store, alert_id, state)
    if audit:
        _print_audit(store, record["alert_id"], as_json)
        return
    who = _actor(actor)
    if note is not None and done is None:
        fail("--note goes with --done ITEM")
    try:
        loaded = _rule_for(record["rule_id"], rule)
        if done is not None or checklist:
            _checklist(store, record, loaded, done, note, who, as_json)
            return
        unknown_steps = sorted(set(step or []) - set(step_ids(loaded)))
        if unknown_steps:
            fail(f"no step {', '.join(unknown_steps)} in this rule's plan; valid steps: {', '.join(step_ids(loaded))}")
        if org and role_arn:
            fail("--org and --role-arn exclude each other")
        if org:
            aws = _org_aws(record, region, profile, who, OrgOptions(role_name, session_name, external_id))
        else:
            aws = Aws(region=region, profile=profile, role_arn=role_arn, external_id=external_id, actor=who)
        options = Options(
            evidence_root=evidence or str(state.parent / "evidence"),
            actor=who,
            incident_id=incident_id,
            approvals=approvals,
            keep_running=keep_running,
            region=region,
            ssm_deadline=forensics_wait,
        )
        response = Response(store, record, loaded, aws, options)
        if rollback:
            _rollback(response, execute=not plan_only, as_json=as_json)
            return
        if not execute:
            plan = response.plan()
            print(json.dumps(plan.to_json(), indent=2, default=str) if as_json else plan.render())
            return
        plan, reports = response.execute(set(step) if step else None)
    except MinerWatchError as exc:
        fail(exc)
    manual = [s for s in plan.steps if s.kind == "manual"]
    if as_json:
        doc = {"plan": plan.to_json(), "results": [r.to_json() for r in reports]}
        print(json.dumps(doc, indent=2, default=str))
    else:
        out.print(_reports_table(reports))
        if manual and not step:
            out.print("manual checklist:", highlight=False)
            for s in manual:
                note = f"  ({s.notes[0]})" if s.notes else ""
                out.print(f"  [ ] {s.title}{note}", highlight=False, markup=False)
        err.print(f"audit log: minerwatch respond {record['alert_id']} --audit --state {state}", highlight=False)
    if _any_bad(reports):
        raise typer.Exit(1)


def _checklist(
    store: StateStore, record: dict[str, Any], rule: Rule, done: str | None, note: str | None, who: str, as_json: bool
) -> None:
    from minerwatch.respond.checklist import checklist_items, complete_item

    if done is not None:
        item = complete_item(store, record, rule, done, actor=who, note=note)
        err.print(f"{item.id}: done by {item.done_by} at {item.done_at}", highlight=False, markup=False)
    items = checklist_items(store, record, rule)
    if as_json:
        print(json.dumps([i.to_json() for i in items], indent=2, ensure_ascii=False))
        return
    for i in items:
        box = "[ ]" if i.open else "[x]"
        how = ""
        if i.done_by:
            how = f"  (done by {i.done_by} at {i.done_at}" + (f": {i.note})" if i.note else ")")
        elif i.auto:
            how = f"  ({i.auto})"
        elif i.kind == "automated":
            how = f"  (automated: {i.status})"
        out.print(f"{i.number:>2}. {box} {i.id}: {i.title}{how}", highlight=False, markup=False)
    n_open = sum(1 for i in items if i.open)
    err.print(f"{n_open} of {len(items)} open", highlight=False)


def _org_aws(record: dict[str, Any], region: str | None, profile: str | None, who: str, org: OrgOptions) -> Aws:
    """The alert's account through the organization role (the caller's own credentials in its own account)."""
    from minerwatch.aws.org import Account, account_aws
    from minerwatch.aws.session import Aws

    account = str((record.get("key") or {}).get("accountid") or "")
    if not re.fullmatch(r"[0-9]{12}", account):
        raise MinerWatchError(f"--org: the alert has no AWS account id ({account!r})")
    base = Aws(region=region, profile=profile, actor=who)
    partition = str(base.identity().get("Arn", "arn:aws:")).split(":")[1] or "aws"
    aws, _role = account_aws(base, Account(account), org, partition)
    return aws


def _rollback(response: Response, execute: bool, as_json: bool) -> None:
    from minerwatch.respond import journal as J

    calls, reports = response.rollback(execute)
    if as_json:
        doc: dict[str, Any] = {"calls": [c.to_json() for c in calls], "results": [r.to_json() for r in reports]}
        print(json.dumps(doc, indent=2, default=str))
    else:
        if not calls and not any(r.status == J.SKIPPED for r in reports):  # skipped: the instance is gone
            print("nothing to roll back: no recorded change is in place")
        for c in calls:
            print(("CALL   " if execute else "would  ") + c.render())
        if reports:
            out.print(_reports_table(reports))
    if _any_bad(reports):
        raise typer.Exit(1)


@app.command("posture")
def posture_cmd(
    regions: str = typer.Option("all", "--regions", help="all (every enabled region) or a comma-separated list."),
    checks: str | None = typer.Option(
        None, "--checks", help=f"Only these checks, comma-separated: {', '.join(CHECK_IDS)}."
    ),
    rule: Path = typer.Option(DEFAULT_RULE, "--rule", "-r", help="Rule whose Prevention Measures are checked."),
    region: str | None = typer.Option(None, "--region", help="Region for account-wide calls (default: profile's)."),
    profile: str | None = typer.Option(None, "--profile", help="AWS profile."),
    role_arn: str | None = typer.Option(None, "--role-arn", help="Assume this role first (another account)."),
    external_id: str | None = typer.Option(None, "--external-id", help="External id for --role-arn."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
    show_passed: bool = typer.Option(False, "--passed", help="List passing resources too, not only failures."),
    org: bool = org_out.ORG,
    role_name: str = org_out.ROLE_NAME,
    session_name: str = org_out.SESSION_NAME,
    accounts: str | None = org_out.ACCOUNTS,
    exclude_accounts: str | None = org_out.EXCLUDE,
    concurrency: int = org_out.CONCURRENCY,
) -> None:
    """Check the rule's Prevention Measures against an account. Exit 1 when any check fails (for CI).

    With --org, every active account of the organization: a summary table, exit 3 when an account could not be
    checked (the others are still reported), else 1 when any check failed, else 0.
    """
    # Start-up: boto3 and the rule model are loaded by the command, not by `--help`.
    from minerwatch.aws.session import Aws
    from minerwatch.posture.checks import PostureOptions, run_posture
    from minerwatch.rules.loader import load_rule

    try:
        loaded = load_rule(rule)
        wanted = [c.strip() for c in checks.split(",") if c.strip()] if checks else None
        if org:
            _posture_org(
                loaded, PostureOptions(regions=regions, checks=wanted), region, profile, as_json, show_passed,
                org_out.org_options(role_name, session_name, external_id, accounts, exclude_accounts, concurrency),
            )
            return
        aws = Aws(region=region, profile=profile, role_arn=role_arn, external_id=external_id, actor=_actor(None))
        report = run_posture(aws, PostureOptions(regions=regions, checks=wanted), loaded)
    except MinerWatchError as exc:
        fail(exc)
    if as_json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        _print_posture(report, show_passed)
    if not report.ok:
        raise typer.Exit(1)


def _posture_org(
    rule: Rule, options: PostureOptions, region: str | None, profile: str | None, as_json: bool, show_passed: bool,
    org: OrgOptions,
) -> None:
    from minerwatch.aws.org import EXIT_ACCOUNT_FAILED, fan_out, list_accounts
    from minerwatch.aws.session import Aws
    from minerwatch.posture.checks import run_posture, unreadable

    base = Aws(region=region, profile=profile, actor=_actor(None))
    accounts = list_accounts(base, org)
    results = fan_out(base, accounts, org, lambda aws, _account: unreadable(run_posture(aws, options, rule)))
    if as_json:
        print(json.dumps({"accounts": [r.to_json(lambda rep: rep.to_json()) for r in results]}, indent=2, default=str))
    else:
        for r in results:
            if r.status == "ok" and r.value is not None and (show_passed or not r.value.ok):
                out.print(f"account {r.account.id} {r.account.name}", highlight=False, markup=False)
                _print_posture(r.value, show_passed)

        def outcome(report: Any) -> tuple[str, bool]:
            failures = sum(x.status == "fail" for x in report.results)
            errors = sum(x.status == "error" for x in report.results)
            return f"{'PASS' if report.ok else 'FAIL'}: {failures} failure(s), {errors} error(s)", report.ok

        org_out.print_accounts(results, outcome)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(EXIT_ACCOUNT_FAILED)
    if any(not r.value.ok for r in results if r.value is not None):
        raise typer.Exit(1)


def _print_posture(report: Any, show_passed: bool) -> None:
    summary = Table("check", "prevention measure", "passed", "failed", "errors")
    for c in report.summary():
        style = "green" if not c["failed"] and not c["errors"] else "red"
        summary.add_row(
            cell(c["id"], style), cell(c["measure"]), str(c["passed"]), str(c["failed"]), str(c["errors"])
        )
    out.print(summary)
    rows = [r for r in report.results if show_passed or r.status != "pass"]
    if rows:
        table = Table("check", "region", "resource", "status", "detail", "fix")
        for column in table.columns:
            column.overflow = "fold"
        for r in rows:
            cells = (r.check, r.region or "-", r.resource or "-", r.status, r.detail, r.remediation or "")
            table.add_row(*(cell(c) for c in cells))
        out.print(table)
    for m in report.not_checked:
        out.print(f"not checked (manual): {inert(m)}", highlight=False, markup=False)
    verdict = "PASS" if report.ok else "FAIL"
    err.print(
        f"posture {verdict}: account {report.account or '?'}, {len(report.regions)} region(s), "
        f"{sum(1 for r in report.results if r.status == 'fail')} failure(s), "
        f"{sum(1 for r in report.results if r.status == 'error')} error(s)",
        highlight=False,
    )
