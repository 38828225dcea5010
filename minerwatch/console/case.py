"""What a user does to a case, as library calls: status changes (with their notifications), comments,
assignment, closing as true or false positive (the false positive's allowlist entry), the response checklist,
and the response itself through :class:`minerwatch.respond.execute.Response` — the code ``minerwatch respond``
runs. Every action writes an audit row with the user's name.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from minerwatch.alerting.allowlist import parse_allowlist
from minerwatch.alerting.state import StateStore
from minerwatch.aws.session import Aws
from minerwatch.console import store as S
from minerwatch.enrich.run import rule_for_alert
from minerwatch.errors import ConfigError, MinerWatchError
from minerwatch.notify.config import NotifyConfig
from minerwatch.notify.outbox import enqueue
from minerwatch.respond.checklist import complete_item
from minerwatch.respond.execute import Options, Response, ResponseError, StepReport
from minerwatch.respond.plan import APPROVALS, Plan

STATUSES = ("new", "updated", "acknowledged", "closed")
DISPOSITIONS = ("true-positive", "false-positive")
MAX_COMMENT = 10_000


class CaseError(MinerWatchError):
    """An action on a case that cannot be done (no such alert, bad input, a rule of the approval)."""

    def format(self) -> str:
        return self.message


@dataclass
class Settings:
    """What the server was started with, for the actions that need it."""

    state: str
    allowlist: str | None = None
    notify: NotifyConfig | None = None
    evidence: str | None = None
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None


def alert_or_raise(store: StateStore, alert_id: str) -> dict[str, Any]:
    record = store.get_alert(alert_id)
    if record is None:
        raise CaseError(f"no alert {alert_id!r}")
    return record


def set_status(store: StateStore, settings: Settings, alert_id: str, status: str, user: str) -> dict[str, Any]:
    """Change the status and queue the destinations' acknowledge / resolve in one transaction (as ``alerts ack``)."""
    if status not in STATUSES:
        raise CaseError(f"status {status!r}: one of {', '.join(STATUSES)}")
    with S.transaction(store):
        record = store.set_status(alert_id, status)
        if record is None:
            raise CaseError(f"no alert {alert_id!r}")
        if settings.notify is not None:
            enqueue(store, [record], settings.notify)
        store.audit(f"console:status:{status}", alert_id=record["alert_id"], actor=user, request={"status": status})
    return record


def comment(store: StateStore, alert_id: str, user: str, text: str) -> int:
    text = text.strip()
    if not text:
        raise CaseError("an empty comment")
    if len(text) > MAX_COMMENT:
        raise CaseError(f"a comment has at most {MAX_COMMENT} characters")
    record = alert_or_raise(store, alert_id)
    with S.transaction(store):
        seq = S.add_comment(store, record["alert_id"], user, text)
        store.audit("console:comment", alert_id=record["alert_id"], actor=user, request={"comment": seq})
    return seq


def assign(store: StateStore, alert_id: str, user: str, assignee: str | None, users: list[str]) -> None:
    if assignee and assignee not in users:
        raise CaseError(f"no user {assignee!r}")
    record = alert_or_raise(store, alert_id)
    with S.transaction(store):
        S.set_case(store, record["alert_id"], assignee=assignee or None)
        store.audit("console:assign", alert_id=record["alert_id"], actor=user, request={"assignee": assignee or None})


def close_true_positive(store: StateStore, settings: Settings, alert_id: str, user: str) -> dict[str, Any]:
    record = set_status(store, settings, alert_id, "closed", user)
    with S.transaction(store):
        S.set_case(store, record["alert_id"], disposition="true-positive")
        store.audit("console:close", alert_id=record["alert_id"], actor=user, request={"disposition": "true-positive"})
    return record


# -- false positive: the allowlist entry --------------------------------------------------------------------


def proposed_entry(alert: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The allowlist entry a false positive suggests: the alert's throttle key, 90 days, the reason left empty."""
    now = now or datetime.now(UTC)
    key = {k: v for k, v in (alert.get("key") or {}).items() if v not in (None, "")}
    expires = (now + timedelta(days=90)).replace(hour=0, minute=0, second=0, microsecond=0)
    return {"reason": "", "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), **{k: str(v) for k, v in key.items()}}


def _entry(alert: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    reason = (form.get("reason") or "").strip()
    if not reason:
        raise CaseError("a false positive's allowlist entry needs a reason")
    expires = (form.get("expires") or "").strip()
    if not expires:
        raise CaseError("a false positive's allowlist entry needs an expiry")
    try:
        when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    except ValueError:
        raise CaseError(f"expires {expires!r} is not an ISO 8601 time") from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= datetime.now(UTC):
        raise CaseError("the expiry is in the past")
    entry: dict[str, Any] = {"reason": reason, "expires": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for name in alert.get("key") or {}:
        value = (form.get(f"match_{name}") or "").strip()
        if value:
            entry[name] = value
    if len(entry) == 2:
        raise CaseError("the entry matches everything: keep at least one of the alert's key columns")
    return entry


def allowlist_change(settings: Settings, alert: dict[str, Any], form: dict[str, str]) -> tuple[str, str, str]:
    """(current text, new text, unified diff) of adding the form's entry to the allowlist file; the new text is
    parsed as an allowlist before it is shown, so what is confirmed is known to load."""
    if not settings.allowlist:
        raise CaseError("no allowlist file: start the console with --allowlist FILE")
    path = Path(settings.allowlist)
    entry = _entry(alert, form)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"# false positive {alert['alert_id']} ({alert.get('rule_id')})\n" + yaml.safe_dump(
        [entry], sort_keys=False, allow_unicode=True, default_flow_style=False
    )
    new = old + ("" if not old or old.endswith("\n") else "\n") + block
    try:
        parse_allowlist(new, str(path))
    except ConfigError as exc:
        raise CaseError(f"the allowlist would not load: {exc.format()}") from None
    diff = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile=str(path), tofile=str(path)
        )
    )
    return old, new, diff


def close_false_positive(
    store: StateStore, settings: Settings, alert_id: str, user: str, form: dict[str, str], base_sha256: str
) -> dict[str, Any]:
    """Write the allowlist entry (only if the file is still what the user saw: ``base_sha256`` is the SHA-256 of
    the file when the diff was shown) and close the alert."""
    alert = alert_or_raise(store, alert_id)
    old, new, diff = allowlist_change(settings, alert, form)
    if hashlib.sha256(old.encode()).hexdigest() != base_sha256:
        raise CaseError("the allowlist file changed since the diff was shown: review the new diff")
    path = Path(str(settings.allowlist))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    record = set_status(store, settings, alert["alert_id"], "closed", user)
    with S.transaction(store):
        S.set_case(store, record["alert_id"], disposition="false-positive")
        store.audit(
            "console:close",
            alert_id=record["alert_id"],
            actor=user,
            request={"disposition": "false-positive", "allowlist": str(path), "diff": diff},
        )
    return record


# -- response checklist -------------------------------------------------------------------------------------


def tick(store: StateStore, alert_id: str, item: str, user: str, note: str) -> None:
    """Close a manual checklist item with a note, as ``minerwatch respond ALERT --done`` does (same journal and audit
    rows, so the report counts it). Automated steps close by running them."""
    record = alert_or_raise(store, alert_id)
    rule = rule_for_alert(record)
    if rule is None:
        raise CaseError(f"no shipped rule has id {record.get('rule_id')!r}: tick the item with the CLI and --rule")
    note = note.strip()
    if not note:
        raise CaseError("ticking an item needs a note (what was done)")
    complete_item(store, record, rule, item, actor=user, note=note)


# -- response ------------------------------------------------------------------------------------------------


def _aws(settings: Settings, user: str) -> Aws:
    """The AWS session of the console's settings, its calls recorded under the signed-in user."""
    return Aws(
        region=settings.region,
        profile=settings.profile,
        role_arn=settings.role_arn,
        external_id=settings.external_id,
        actor=user,
    )


def response(store: StateStore, settings: Settings, alert_id: str, user: str, approvals: set[str]) -> Response:
    record = alert_or_raise(store, alert_id)
    rule = rule_for_alert(record)
    if rule is None:
        raise CaseError(f"no shipped rule has id {record.get('rule_id')!r}: respond with the CLI and --rule")
    aws = _aws(settings, user)
    options = Options(
        evidence_root=settings.evidence or str(Path(settings.state).parent / "evidence"),
        actor=user,
        approvals=approvals,
        region=settings.region,
    )
    return Response(store, record, rule, aws, options)


def granted(store: StateStore, alert_id: str) -> set[str]:
    """Approval names that may run: requested by one responder and approved by a different one."""
    return {
        step
        for step, a in S.approvals(store, alert_id).items()
        if a["approved_by"] and a["approved_by"] != a["requested_by"]
    }


def request_step(store: StateStore, alert_id: str, step: str, user: str) -> None:
    if step not in APPROVALS:
        raise CaseError(f"{step} needs no second approver; steps that do: {', '.join(APPROVALS)}")
    record = alert_or_raise(store, alert_id)
    with S.transaction(store):
        S.request_approval(store, record["alert_id"], step, user)
        store.audit(f"console:request:{step}", alert_id=record["alert_id"], actor=user)


def approve_step(store: StateStore, alert_id: str, step: str, user: str) -> None:
    record = alert_or_raise(store, alert_id)
    with S.transaction(store):
        pending = S.approvals(store, record["alert_id"]).get(step)
        if pending is None:
            raise CaseError(f"nobody requested {step}")
        if pending["requested_by"] == user:
            raise CaseError(f"{user} requested {step}: a second responder must approve it")
        S.approve(store, record["alert_id"], step, user)
        store.audit(
            f"console:approve:{step}",
            alert_id=record["alert_id"],
            actor=user,
            request={"requested_by": pending["requested_by"]},
        )


def plan(store: StateStore, settings: Settings, alert_id: str, user: str) -> Plan:
    try:
        return response(store, settings, alert_id, user, set()).plan()
    except ResponseError as exc:
        raise CaseError(exc.message) from None


def execute(
    store: StateStore, settings: Settings, alert_id: str, user: str, steps: list[str]
) -> tuple[Plan, list[StepReport]]:
    """Run the chosen automated steps one by one (each writes its journal and audit rows as it ends).

    A step that needs approval runs only when two other people requested and approved it."""
    approvals = granted(store, alert_id)
    for step in steps:
        if step in APPROVALS and step not in approvals:
            raise CaseError(f"{step} needs a request and a second responder's approval first")
    resp = response(store, settings, alert_id, user, approvals)
    try:
        store.audit("console:execute", alert_id=resp.alert_id, actor=user, request={"steps": steps})
        plan_, reports = resp.execute(set(steps) if steps else None)
    except ResponseError as exc:
        raise CaseError(exc.message) from None
    return plan_, reports


def rollback(store: StateStore, settings: Settings, alert_id: str, user: str, run: bool) -> dict[str, Any]:
    resp = response(store, settings, alert_id, user, set())
    try:
        calls, reports = resp.rollback(run)
    except ResponseError as exc:
        raise CaseError(exc.message) from None
    return {"calls": [c.to_json() for c in calls], "results": [r.to_json() for r in reports]}


# -- posture and the outbox ----------------------------------------------------------------------------------


def run_posture_check(store: StateStore, settings: Settings, user: str) -> dict[str, Any]:
    """``minerwatch posture`` for the configured account and regions; the result is kept for the posture page."""
    from minerwatch.posture.checks import PostureOptions, run_posture
    from minerwatch.rules.loader import load_rule
    from minerwatch.rules.shipped import DEFAULT_RULE

    aws = _aws(settings, user)
    regions = settings.region or "all"
    try:
        report = run_posture(aws, PostureOptions(regions=regions, checks=None), load_rule(DEFAULT_RULE))
    except MinerWatchError as exc:
        raise CaseError(exc.format()) from None
    data = {**report.to_json(), "summary": report.summary(), "ok": report.ok}
    with S.transaction(store):
        S.save_result(store, "posture", user, data)
        store.audit("console:posture", actor=user, result={"ok": report.ok})
    return data


def outbox(store: StateStore, limit: int = 200) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from minerwatch.notify.outbox import ensure_schema, list_rows, summary

    ensure_schema(store.db)
    rows = list_rows(store.db, limit=None)[-limit:]
    return summary(store.db), [r.to_json() for r in reversed(rows)]


def outbox_retry(store: StateStore, target: str, user: str) -> dict[str, list[int]]:
    """``minerwatch outbox retry``: parked rows due again (the dispatcher of ``watch`` or ``outbox deliver``
    sends them)."""
    from minerwatch.notify.outbox import ensure_schema, requeue

    ensure_schema(store.db)
    result = requeue(store.db, target or "all")
    store.audit("console:outbox-retry", actor=user, request={"target": target}, result=result)
    return result
