"""The revoke-sessions step against moto: dry run, approval, execute (the deny on aws:TokenIssueTime is on the
instance role), the earlier state recorded before the change, audit rows, rollback."""

from __future__ import annotations

import json
from typing import Any

import boto3
from respond_env import REGION, Incident, respond

from minerwatch.alerting.state import StateStore
from minerwatch.respond.actions import REVOKE_POLICY


def _iam() -> Any:
    return boto3.Session().client("iam", region_name=REGION)


def _step(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in doc[key] if s["id"] == "revoke-sessions")


def _policy_names() -> list[str]:
    return _iam().list_role_policies(RoleName="app-role")["PolicyNames"]


def test_revoke_sessions_dry_run_execute_rollback(incident: Incident) -> None:
    plan = json.loads(respond(incident, "--json").stdout)
    step = _step(plan, "steps")
    assert step["kind"] == "automated" and step["requires_approval"] == "revoke-sessions"
    put = [c for c in step["calls"] if c["operation"] == "PutRolePolicy"]
    assert len(put) == 1 and put[0]["params"]["RoleName"] == "app-role"
    assert "aws:TokenIssueTime" in put[0]["params"]["PolicyDocument"]
    assert _policy_names() == []  # the dry run changed nothing

    waiting = json.loads(respond(incident, "--execute", "--keep-running", "--json").stdout)
    assert _step(waiting, "results")["status"] == "awaiting-approval" and _policy_names() == []

    res = respond(incident, "--execute", "--keep-running", "--approve", "revoke-sessions", "--json")
    assert res.exit_code == 0, res.output
    assert _step(json.loads(res.stdout), "results")["status"] == "done"
    assert _policy_names() == [REVOKE_POLICY]
    doc = _iam().get_role_policy(RoleName="app-role", PolicyName=REVOKE_POLICY)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    stmt = doc["Statement"][0]
    assert stmt["Effect"] == "Deny" and "aws:TokenIssueTime" in stmt["Condition"]["DateLessThan"]

    store = StateStore(incident.state)
    log = store.audit_log(incident.alert_id)
    puts = [e for e in log if e["action"] == "iam:PutRolePolicy"]
    assert len(puts) == 1 and puts[0]["result"]["ok"] is True
    reads = [e["seq"] for e in log if e["action"] in ("iam:GetRolePolicy",)]
    assert not reads or min(reads) < puts[0]["seq"]  # the earlier state was read before the change
    assert any(e["action"] == "step:revoke-sessions" for e in log)

    shown = respond(incident, "--rollback", "--plan")
    assert "iam:DeleteRolePolicy" in shown.stdout and _policy_names() == [REVOKE_POLICY]
    back = respond(incident, "--rollback")
    assert back.exit_code == 0, back.output
    assert _policy_names() == []
    log = StateStore(incident.state).audit_log(incident.alert_id)
    assert [e for e in log if e["action"] == "iam:DeleteRolePolicy"][0]["result"]["ok"] is True
    # rolled back: nothing more to undo for this step
    assert "DeleteRolePolicy" not in respond(incident, "--rollback", "--plan").stdout


def test_an_existing_policy_of_that_name_is_restored(incident: Incident) -> None:
    earlier = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                                                                  "Resource": "*"}]})  # fmt: skip
    _iam().put_role_policy(RoleName="app-role", PolicyName=REVOKE_POLICY, PolicyDocument=earlier)
    res = respond(incident, "--execute", "--keep-running", "--approve", "revoke-sessions", "--step", "revoke-sessions")
    assert res.exit_code == 0, res.output
    assert respond(incident, "--rollback").exit_code == 0
    doc = _iam().get_role_policy(RoleName="app-role", PolicyName=REVOKE_POLICY)["PolicyDocument"]
    doc = json.loads(doc) if isinstance(doc, str) else doc
    assert doc == json.loads(earlier)
