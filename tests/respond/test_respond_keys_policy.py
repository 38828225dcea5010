"""Key deactivation from the enrichment's launching principal (approval required), the derived IAM policy, and
alerts the response cannot automate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from respond_env import ACCOUNT, REGION, CallLog, Incident, respond, runner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.respond.policy import iam_policy, policy_actions


def _iam() -> Any:
    return boto3.Session().client("iam", region_name=REGION)


def _key_status(user: str, key: str) -> str:
    return next(
        k["Status"] for k in _iam().list_access_keys(UserName=user)["AccessKeyMetadata"] if k["AccessKeyId"] == key
    )


def _launch_section(instance_id: str, key: str, principal: dict[str, Any]) -> dict[str, Any]:
    # The shape the enrichment stage writes (launch_context.summary.launches[]).
    return {
        "name": "launch_context",
        "status": "ok",
        "headline": f"{instance_id} launched by {principal.get('arn')}",
        "summary": {
            "launches": [{"instance_id": instance_id, "access_key_id": key, "principal": principal}],
            "not_found": [],
        },
        "evidence": [],
    }


def _keys(incident: Incident) -> tuple[str, str]:
    iam = _iam()
    iam.create_user(UserName="deployer")
    iam.create_user(UserName="backdoor")
    launch_key = iam.create_access_key(UserName="deployer")["AccessKey"]["AccessKeyId"]
    made_key = iam.create_access_key(UserName="backdoor")["AccessKey"]["AccessKeyId"]
    store = StateStore(incident.state)
    principal = {"arn": f"arn:aws:iam::{ACCOUNT}:user/deployer", "type": "IAMUser", "user_name": "deployer"}
    store.save_enrichment(
        incident.alert_id, "launch_context", _launch_section(incident.instance_id, launch_key, principal)
    )
    store.save_enrichment(
        incident.alert_id,
        "principal_activity",
        {
            "name": "principal_activity",
            "status": "ok",
            "summary": {
                "principals": {
                    "access_keys": [
                        {"access_key_id": launch_key, "why": "launched the instance"},
                        {"access_key_id": made_key, "why": "access key created by deployer"},
                    ]
                }
            },
        },
    )
    store.close()
    return launch_key, made_key


def test_keys_of_the_launching_principal_are_deactivated_only_with_approval(incident: Incident) -> None:
    launch_key, made_key = _keys(incident)
    plan = json.loads(respond(incident, "--plan", "--json").stdout)
    step = next(s for s in plan["steps"] if s["id"] == "deactivate-keys")
    assert step["kind"] == "automated" and step["requires_approval"] == "deactivate-keys"
    assert sorted((c["params"]["UserName"], c["params"]["AccessKeyId"]) for c in step["calls"]) == sorted(
        [("deployer", launch_key), ("backdoor", made_key)]
    )
    assert all(c["params"]["Status"] == "Inactive" for c in step["calls"])

    res = respond(incident, "--execute", "--keep-running", "--json")
    assert res.exit_code == 0, res.output
    result = next(r for r in json.loads(res.stdout)["results"] if r["id"] == "deactivate-keys")
    assert result["status"] == "awaiting-approval" and "--approve deactivate-keys" in result["message"]
    assert _key_status("deployer", launch_key) == "Active" and _key_status("backdoor", made_key) == "Active"

    res = respond(incident, "--execute", "--keep-running", "--approve", "deactivate-keys")
    assert res.exit_code == 0, res.output
    assert _key_status("deployer", launch_key) == "Inactive" and _key_status("backdoor", made_key) == "Inactive"
    log = StateStore(incident.state).audit_log(incident.alert_id)
    updates = [e for e in log if e["action"] == "iam:UpdateAccessKey"]
    assert {e["request"]["params"]["AccessKeyId"] for e in updates} == {launch_key, made_key}
    assert all(e["actor"] == "analyst" for e in updates)  # $USER when --actor is not given


def test_temporary_launch_credentials_leave_a_manual_item_saying_why(incident: Incident) -> None:
    store = StateStore(incident.state)
    principal = {"arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/ci/session", "type": "AssumedRole"}
    store.save_enrichment(
        incident.alert_id, "launch_context", _launch_section(incident.instance_id, "ASIAEXAMPLETEMPORARY", principal)
    )
    store.close()
    plan = json.loads(respond(incident, "--plan", "--json").stdout)
    step = next(s for s in plan["steps"] if s["id"] == "deactivate-keys")
    assert step["kind"] == "manual" and step["calls"] == []
    assert "temporary credentials (ASIAEXAMPLETEMPORARY" in step["notes"][0]
    assert "revoke the role's active sessions" in step["notes"][0]


def test_a_malformed_enrichment_degrades_to_a_manual_item(incident: Incident) -> None:
    store = StateStore(incident.state)
    store.save_enrichment(incident.alert_id, "launch_context", {"summary": {"launches": "not a list"}})
    store.close()
    res = respond(incident, "--plan", "--json")
    assert res.exit_code == 0, res.output
    step = next(s for s in json.loads(res.stdout)["steps"] if s["id"] == "deactivate-keys")
    assert step["kind"] == "manual" and "the launching principal is unknown" in step["notes"][0]


def test_the_iam_policy_covers_every_call_the_actions_make(incident: Incident, calls: CallLog) -> None:
    _keys(incident)
    boto3.Session().client("s3", region_name=REGION).create_bucket(Bucket="ir-evidence")
    ev = ("--evidence", "s3://ir-evidence/cases")
    made: list[tuple[str, str, dict[str, Any]]] = []
    for args in (
        ("--execute", "--keep-running", "--approve", "deactivate-keys", *ev),
        ("--rollback", *ev),
        ("--execute", "--approve", "terminate", *ev),
    ):
        calls.ops.clear()
        res = respond(incident, *args)
        assert res.exit_code == 0, res.output
        made += calls.ops

    res = runner.invoke(app, ["respond", "--iam-policy", *ev])
    assert res.exit_code == 0, res.output
    policy = json.loads(res.stdout)
    assert policy == iam_policy("s3://ir-evidence/cases")
    actions = policy_actions(policy)
    # GetCallerIdentity needs no permission.
    needed = {f"{s}:{op}" for s, op, _ in made if op != "GetCallerIdentity"}
    assert needed <= actions, needed - actions
    # Permissions AWS checks besides the operation.
    assert "ec2:CreateTags" in actions and "iam:PassRole" in actions
    passrole = next(s for s in policy["Statement"] if "iam:PassRole" in s["Action"])
    assert passrole["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}
    s3 = next(s for s in policy["Statement"] if "s3:PutObject" in s["Action"])
    assert s3["Resource"] == "arn:aws:s3:::ir-evidence/cases/*" and s3["Action"] == ["s3:PutObject"]
    # Least privilege: nothing but the operations the actions plan (the rest are alternative branches).
    assert not any("*" in a for a in actions)
    # (revoke-sessions waits for its approval here; DeleteRolePolicy is its rollback; the enrichment here names no
    # user the principal created, so reset-credentials reads and changes nothing: test_reset_credentials covers it)
    branches = {"ec2:RevokeSecurityGroupIngress", "iam:PassRole", "iam:GetRolePolicy", "iam:PutRolePolicy",
                "iam:DeleteRolePolicy", "iam:GetLoginProfile", "iam:ListAttachedUserPolicies",
                "iam:DeleteLoginProfile", "iam:DetachUserPolicy", "iam:AttachUserPolicy",
                # no pool address and no SSM agent here: test_nacl_deny and test_live_forensics cover those
                "ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAclEntry", "ssm:SendCommand",
                "ssm:GetCommandInvocation"}  # fmt: skip
    assert actions - needed <= branches, actions - needed
    # With local evidence there is no S3 permission at all.
    assert not any(a.startswith("s3:") for a in policy_actions(iam_policy("/var/evidence")))


def test_an_alert_without_an_instance_is_all_manual(aws: str, tmp_path: Path) -> None:
    from respond_env import detect_alert

    state = tmp_path / "s.db"
    alert_id = detect_alert(tmp_path, "arn:aws:lambda:us-east-1:123456789012:function:f", state)
    res = runner.invoke(app, ["respond", alert_id, "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert {s["kind"] for s in plan["steps"]} == {"manual"}
    assert "names no EC2 instance" in plan["notes"][0]
    res = runner.invoke(app, ["respond", alert_id, "--state", str(state), "--execute"])
    assert res.exit_code == 0 and "manual checklist" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["respond", "mw-nope"], "no alert 'mw-nope'"),
        (["respond"], "needs an ALERT_ID"),
        (["respond", "x", "--approve", "everything"], "--approve takes terminate, deactivate-keys"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    res = runner.invoke(app, [*args, "--state", str(tmp_path / "s.db")])
    assert res.exit_code in (1, 2) and message in res.stderr


def test_a_vanished_instance_is_reported(incident: Incident) -> None:
    client = boto3.Session().client("ec2", region_name=REGION)
    client.terminate_instances(InstanceIds=[incident.instance_id])
    res = respond(incident, "--plan", "--json")
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert "nothing left to contain" in plan["notes"][0]
    assert all(s["calls"] == [] for s in plan["steps"])


def test_the_launching_key_comes_from_the_enrich_command(incident: Incident, tmp_path: Path) -> None:
    # The real RunInstances sample, re-addressed to our instance and made by an IAM user whose key exists.
    iam = _iam()
    iam.create_user(UserName="deployer")
    key = iam.create_access_key(UserName="deployer")["AccessKey"]["AccessKeyId"]
    sample = Path(__file__).resolve().parents[1] / "data/real/cloudtrail/elastic-test-run-instances.jsonl"
    event = json.loads(sample.read_text().splitlines()[0])
    event["recipientAccountId"] = ACCOUNT
    event["userIdentity"] = {
        "type": "IAMUser",
        "accountId": ACCOUNT,
        "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
        "userName": "deployer",
        "principalId": "AIDAEXAMPLE",
        "accessKeyId": key,
    }
    event["responseElements"]["instancesSet"]["items"][0]["instanceId"] = incident.instance_id
    trail = tmp_path / "trail.jsonl"
    trail.write_text(json.dumps(event) + "\n")
    res = runner.invoke(app, ["enrich", incident.alert_id, "--cloudtrail", str(trail), "--state", str(incident.state)])
    assert res.exit_code == 0, res.output

    plan = json.loads(respond(incident, "--plan", "--json").stdout)
    step = next(s for s in plan["steps"] if s["id"] == "deactivate-keys")
    assert step["kind"] == "automated"
    assert [c["params"] for c in step["calls"]] == [{"UserName": "deployer", "AccessKeyId": key, "Status": "Inactive"}]
    assert respond(incident, "--execute", "--step", "deactivate-keys", "--approve", "deactivate-keys").exit_code == 0
    assert _key_status("deployer", key) == "Inactive"
