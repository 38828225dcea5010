"""The reset-credentials step against moto: the IAM users the launching principal created or gave credentials
(from the principal_activity enrichment) lose their active keys, console password and managed policies, only with
approval; the state before is written as evidence with its SHA-256 and audited; rollback reactivates the keys and
re-attaches the policies and says the password cannot come back."""

from __future__ import annotations

import json
from typing import Any

import boto3
from respond_env import ACCOUNT, REGION, Incident, respond

from minerwatch.alerting.state import StateStore
from minerwatch.respond.actions import CREDENTIALS_FILE
from minerwatch.respond.evidence import MANIFEST, sha256, verify_local
from minerwatch.respond.journal import Journal

ADMIN = f"arn:aws:iam::{ACCOUNT}:policy/backdoor-admin"


def _iam() -> Any:
    return boto3.Session().client("iam", region_name=REGION)


def _world(incident: Incident) -> str:
    """deployer launched the instance; it made the user backdoor with a key, a password and a policy."""
    iam = _iam()
    iam.create_user(UserName="deployer")
    iam.create_user(UserName="backdoor")
    iam.create_user(UserName="bystander")
    key = iam.create_access_key(UserName="backdoor")["AccessKey"]["AccessKeyId"]
    iam.create_access_key(UserName="bystander")
    iam.create_login_profile(UserName="backdoor", Password="S3cret-pass-1!")
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.create_policy(PolicyName="backdoor-admin", PolicyDocument=json.dumps(doc))
    iam.attach_user_policy(UserName="backdoor", PolicyArn=ADMIN)
    iam.attach_user_policy(UserName="bystander", PolicyArn=ADMIN)
    users = [
        {"account_id": ACCOUNT, "user_name": "deployer", "why": "launched the instance"},
        {"account_id": ACCOUNT, "user_name": "backdoor", "why": "IAM user created by deployer at 2026-01-01T00:00:00Z"},
        {"account_id": "999999999999", "user_name": "bystander", "why": "IAM user created in another account"},
    ]
    store = StateStore(incident.state)
    store.save_enrichment(
        incident.alert_id,
        "principal_activity",
        {"name": "principal_activity", "status": "ok", "summary": {"principals": {"iam_users": users}}},
    )
    store.close()
    return key


def _state(user: str) -> dict[str, Any]:
    iam = _iam()
    try:
        iam.get_login_profile(UserName=user)
        profile = True
    except iam.exceptions.NoSuchEntityException:
        profile = False
    return {
        "keys": sorted(k["Status"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]),
        "policies": [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]],
        "login_profile": profile,
    }


def _step(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in doc[key] if s["id"] == "reset-credentials")


ENABLED = {"keys": ["Active"], "policies": [ADMIN], "login_profile": True}


def test_reset_credentials_dry_run_execute_rollback(incident: Incident) -> None:
    key = _world(incident)
    plan = json.loads(respond(incident, "--json").stdout)
    step = _step(plan, "steps")
    assert step["kind"] == "automated" and step["requires_approval"] == "reset-credentials"
    calls = [(c["operation"], c["params"]) for c in step["calls"]]
    assert calls == [
        ("UpdateAccessKey", {"UserName": "backdoor", "AccessKeyId": key, "Status": "Inactive"}),
        ("DeleteLoginProfile", {"UserName": "backdoor"}),
        ("DetachUserPolicy", {"UserName": "backdoor", "PolicyArn": ADMIN}),
    ]
    assert any("cannot be restored" in n for n in step["notes"])
    assert _state("backdoor") == ENABLED  # the dry run changed nothing
    on_s3 = _step(json.loads(respond(incident, "--json", "--evidence", "s3://ir-evidence/c").stdout), "steps")
    keys = [c["params"]["Key"] for c in on_s3["calls"] if c["operation"] == "PutObject"]
    assert keys == [f"c/{incident.alert_id}/{CREDENTIALS_FILE}", f"c/{incident.alert_id}/{MANIFEST}"]

    waiting = json.loads(respond(incident, "--execute", "--keep-running", "--json").stdout)
    assert _step(waiting, "results")["status"] == "awaiting-approval" and _state("backdoor") == ENABLED

    res = respond(incident, "--execute", "--keep-running", "--approve", "reset-credentials", "--json")
    assert res.exit_code == 0, res.output
    assert _step(json.loads(res.stdout), "results")["status"] == "done"
    assert _state("backdoor") == {"keys": ["Inactive"], "policies": [], "login_profile": False}
    # the launching user and a user of another account are not this step's business
    assert _state("bystander") == {"keys": ["Active"], "policies": [ADMIN], "login_profile": False}

    # evidence before the change, its hash recorded
    written = incident.evidence / incident.alert_id / CREDENTIALS_FILE
    saved = json.loads(written.read_text())["users"]["backdoor"]
    assert saved["keys"] == [{"AccessKeyId": key, "Status": "Active"}]
    assert saved["policies"][0]["PolicyArn"] == ADMIN and saved["login_profile"]["UserName"] == "backdoor"
    store = StateStore(incident.state)
    detail = Journal(store, incident.alert_id).detail("reset-credentials")
    assert detail["evidence"]["sha256"] == sha256(written.read_bytes())
    manifest = json.loads((written.parent / MANIFEST).read_text())
    entry = next(f for f in manifest["files"] if f["name"] == CREDENTIALS_FILE)
    assert entry["sha256"] == sha256(written.read_bytes()) and entry["step"] == "reset-credentials"
    assert entry["requests"] == ["iam:ListAccessKeys", "iam:GetLoginProfile", "iam:ListAttachedUserPolicies"]
    assert verify_local(written.parent) == []
    log = store.audit_log(incident.alert_id)
    changes = [e for e in log if e["action"] in ("iam:UpdateAccessKey", "iam:DeleteLoginProfile",
                                                 "iam:DetachUserPolicy")]  # fmt: skip
    assert len(changes) == 3 and all(e["result"]["ok"] for e in changes)
    reads = [e["seq"] for e in log if e["action"] == "iam:GetLoginProfile"]
    assert reads and min(reads) < min(e["seq"] for e in changes)
    assert any(e["action"] == "step:reset-credentials" for e in log)
    store.close()

    shown = respond(incident, "--rollback", "--plan")
    assert "iam:AttachUserPolicy" in shown.stdout and "iam:UpdateAccessKey" in shown.stdout
    assert _state("backdoor")["policies"] == []
    back = respond(incident, "--rollback", "--json")
    assert back.exit_code == 0, back.output
    assert _state("backdoor") == {"keys": ["Active"], "policies": [ADMIN], "login_profile": False}
    message = json.loads(back.stdout)["results"][-1]["message"]
    assert "console password of backdoor not restorable" in message
    assert "AttachUserPolicy" not in respond(incident, "--rollback", "--plan").stdout


def test_no_created_user_leaves_a_manual_item(incident: Incident) -> None:
    plan = json.loads(respond(incident, "--json").stdout)
    step = _step(plan, "steps")
    assert step["kind"] == "manual" and step["calls"] == []
