"""``minerwatch respond`` against moto's server: a real alert (from ``detect``) for an instance launched in moto,
the plan, execution, idempotency, rollback, refusals and the audit log."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from respond_env import REGION, USER_DATA, CallLog, Incident, detect_alert, ec2, launch, respond

from minerwatch.alerting.state import StateStore
from minerwatch.respond.evidence import verify_local

READ = ("Describe", "Get", "List", "Head")


def _enis(inc: Incident) -> dict[str, list[str]]:
    found = ec2().describe_network_interfaces(NetworkInterfaceIds=inc.enis)["NetworkInterfaces"]
    return {n["NetworkInterfaceId"]: sorted(g["GroupId"] for g in n["Groups"]) for n in found}


def _quarantine_groups(inc: Incident) -> list[dict]:
    return ec2().describe_security_groups(Filters=[{"Name": "tag:minerwatch:quarantine", "Values": [inc.vpc_id]}])[
        "SecurityGroups"
    ]


def _snapshots(alert_id: str) -> list[dict]:
    return ec2().describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:minerwatch:alert-id", "Values": [alert_id]}]
    )["Snapshots"]


def _instance(inc: Incident) -> dict:
    return ec2().describe_instances(InstanceIds=[inc.instance_id])["Reservations"][0]["Instances"][0]


def _instance_groups(inc: Incident) -> list[str]:
    return sorted(g["GroupId"] for g in _instance(inc)["SecurityGroups"])


def _profile_arns(inc: Incident) -> list[str]:
    assoc = ec2().describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [inc.instance_id]}]
    )["IamInstanceProfileAssociations"]
    return [a["IamInstanceProfile"]["Arn"] for a in assoc if a["State"] == "associated"]


def test_dry_run_makes_only_read_calls_and_prints_the_exact_calls(incident: Incident, calls: CallLog) -> None:
    calls.ops.clear()
    res = respond(incident)
    assert res.exit_code == 0, res.output
    made = calls.names()
    assert made, "the dry run reads the account"
    assert all(op.startswith(READ) for op in made), [op for op in made if not op.startswith(READ)]
    # The exact calls an execution would make, with the ids it would use.
    out = res.stdout
    for eni in incident.enis:
        assert f'"NetworkInterfaceId":"{eni}"' in out
    for vol in incident.volumes:
        assert f"ec2:CreateSnapshot [{REGION}]" in out and f'"VolumeId":"{vol}"' in out
    assert f'"GroupName":"minerwatch-quarantine-{incident.vpc_id}"' in out
    assert "ec2:RevokeSecurityGroupEgress" in out and '"CidrIp":"0.0.0.0/0"' in out
    # Nothing changed in the account, nothing was audited.
    assert _quarantine_groups(incident) == [] and _snapshots(incident.alert_id) == []
    assert _enis(incident) == {k: sorted(v) for k, v in incident.groups.items()}
    assert "minerwatch:alert-id" not in {t["Key"] for t in _instance(incident).get("Tags", [])}
    assert StateStore(incident.state).audit_log(incident.alert_id) == []

    calls.ops.clear()
    res = respond(incident, "--plan", "--json")
    assert res.exit_code == 0, res.output
    assert all(op.startswith(READ) for op in calls.names())
    plan = json.loads(res.stdout)
    steps = {s["id"]: s for s in plan["steps"]}
    assert [s["id"] for s in plan["steps"] if s["kind"] == "automated"] == [
        "tag",
        "evidence",
        "live-forensics",
        "isolate",
        "snapshot",
        "revoke-sessions",
        "detach-profile",
        "stop",
        "terminate",
    ]
    assert steps["terminate"]["requires_approval"] == "terminate"
    assert steps["terminate"]["depends_on"] == ["evidence", "snapshot"]
    # Manual items carry the rule's wording.
    assert steps["playbook-1"] == {
        **steps["playbook-1"],
        "kind": "manual",
        "title": "Confirm cryptocurrency mining activity",
    }
    assert steps["deactivate-keys"]["kind"] == "manual"
    assert "no launch_context enrichment" in steps["deactivate-keys"]["notes"][0]


def test_execute_isolates_snapshots_tags_captures_evidence_and_audits(incident: Incident, calls: CallLog) -> None:
    calls.ops.clear()
    res = respond(incident, "--execute", "--actor", "ir-oncall")
    assert res.exit_code == 0, res.output
    made = list(calls.ops)

    # Isolation: every interface is in the quarantine group only, and that group has no rule at all.
    groups = _quarantine_groups(incident)
    assert len(groups) == 1
    q = groups[0]
    assert q["IpPermissions"] == [] and q["IpPermissionsEgress"] == []
    assert _enis(incident) == {eni: [q["GroupId"]] for eni in incident.enis}
    modify = [p for _, op, p in made if op == "ModifyNetworkInterfaceAttribute"]
    assert sorted(p["NetworkInterfaceId"] for p in modify) == incident.enis
    assert all(p["Groups"] == [q["GroupId"]] for p in modify)
    # The instance's own groups too: moto reports them on every attached interface.
    assert _instance_groups(incident) == [q["GroupId"]]
    assert [p["Groups"] for _, op, p in made if op == "ModifyInstanceAttribute" and "Groups" in p] == [[q["GroupId"]]]

    # Snapshots of every volume, tagged with the alert id.
    snaps = _snapshots(incident.alert_id)
    assert sorted(s["VolumeId"] for s in snaps) == incident.volumes
    for s in snaps:
        tags = {t["Key"]: t["Value"] for t in s["Tags"]}
        assert tags["minerwatch:alert-id"] == incident.alert_id
        assert tags["minerwatch:instance-id"] == incident.instance_id

    # Tags, termination protection, instance profile detached, instance stopped.
    inst = _instance(incident)
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert tags["minerwatch:alert-id"] == incident.alert_id
    assert tags["minerwatch:incident-id"] == incident.alert_id
    attr = ec2().describe_instance_attribute(InstanceId=incident.instance_id, Attribute="disableApiTermination")
    assert attr["DisableApiTermination"]["Value"] is True
    assert _profile_arns(incident) == []
    assert inst["State"]["Name"] in ("stopping", "stopped")

    # Evidence: every file named in a manifest whose hashes are right.
    folder = incident.evidence / incident.alert_id
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["errors"] == {}
    names = {f["name"] for f in manifest["files"]}
    assert names == {
        "instance.json",
        "volumes.json",
        "network-interfaces.json",
        "security-groups.json",
        "instance-profile.json",
        "user-data.json",
        "console-output.json",
        "alert.json",
    }
    for f in manifest["files"]:
        assert hashlib.sha256((folder / f["name"]).read_bytes()).hexdigest() == f["sha256"]
    assert verify_local(folder) == []
    user_data = json.loads((folder / "user-data.json").read_text())
    assert user_data["user_data"]["text"] == USER_DATA
    sgs = json.loads((folder / "security-groups.json").read_text())["responses"][0]["SecurityGroups"]
    assert sorted(g["GroupId"] for g in sgs) == sorted({g for v in incident.groups.values() for g in v})
    profile = json.loads((folder / "instance-profile.json").read_text())
    assert profile["responses"][1]["InstanceProfile"]["Arn"] == incident.profile_arn
    # Tampering is detected.
    (folder / "volumes.json").write_text("{}")
    assert verify_local(folder) == ["volumes.json: SHA-256 does not match the manifest"]

    # The audit log: every call of the run, with actor, time, request, AWS request id and result.
    log = StateStore(incident.state).audit_log(incident.alert_id)
    api = [e for e in log if not e["action"].startswith("step:")]
    assert [e["action"] for e in api] == [f"{s}:{op}" for s, op, _ in made]
    for e in api:
        assert e["actor"] == "ir-oncall" and e["time"] > 0 and e["aws_request_id"]
        assert e["request"]["operation"] == e["action"].split(":")[1] and e["result"]["ok"] is True
    create = next(e for e in api if e["action"] == "ec2:CreateSecurityGroup")
    assert create["request"]["params"]["VpcId"] == incident.vpc_id
    assert create["result"]["response"]["GroupId"] == q["GroupId"]
    steps = {e["action"]: e["result"]["status"] for e in log if e["action"].startswith("step:")}
    assert steps == {
        "step:tag": "done",
        "step:evidence": "done",
        "step:live-forensics": "skipped",
        "step:isolate": "done",
        "step:snapshot": "done",
        "step:revoke-sessions": "awaiting-approval",
        "step:detach-profile": "done",
        "step:stop": "done",
        "step:terminate": "awaiting-approval",
    }
    res = respond(incident, "--audit", "--json")
    assert res.exit_code == 0 and len(res.stdout.splitlines()) == len(log)


def test_a_second_run_creates_no_group_or_snapshot(incident: Incident, calls: CallLog, tmp_path: Path) -> None:
    assert respond(incident, "--execute").exit_code == 0
    calls.ops.clear()
    res = respond(incident, "--execute")
    assert res.exit_code == 0, res.output
    assert not [op for op in calls.names() if not op.startswith(READ)]
    assert "done earlier; not run again" in res.stdout
    assert len(_quarantine_groups(incident)) == 1
    assert len(_snapshots(incident.alert_id)) == len(incident.volumes)

    # Even with the state store lost, the tags are found: the same alert reuses the group and its snapshots.
    fresh = tmp_path / "fresh" / "state.db"
    assert detect_alert(tmp_path, incident.instance_id, fresh) == incident.alert_id
    calls.ops.clear()
    again = Incident(**{**incident.__dict__, "state": fresh, "evidence": tmp_path / "ev2"})
    res = respond(again, "--execute", "--step", "isolate", "--step", "snapshot")
    assert res.exit_code == 0, res.output
    assert "CreateSecurityGroup" not in calls.names() and "CreateSnapshot" not in calls.names()
    assert len(_quarantine_groups(incident)) == 1
    assert len(_snapshots(incident.alert_id)) == len(incident.volumes)


def test_rollback_restores_the_original_groups_and_the_instance_profile(incident: Incident) -> None:
    launched_with = _instance_groups(incident)
    assert respond(incident, "--execute", "--keep-running").exit_code == 0
    q = _quarantine_groups(incident)[0]["GroupId"]
    assert all(v == [q] for v in _enis(incident).values())
    assert _instance_groups(incident) == [q]

    shown = respond(incident, "--rollback", "--plan")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("would  ec2:ModifyNetworkInterfaceAttribute") == 2
    assert shown.stdout.count("would  ec2:ModifyInstanceAttribute") == 1
    assert "AssociateIamInstanceProfile" in shown.stdout
    assert all(v == [q] for v in _enis(incident).values()), "--plan changes nothing"

    res = respond(incident, "--rollback")
    assert res.exit_code == 0, res.output
    assert _enis(incident) == {k: sorted(v) for k, v in incident.groups.items()}
    assert _instance_groups(incident) == launched_with
    assert _profile_arns(incident) == [incident.profile_arn]
    assert _instance(incident)["State"]["Name"] == "running"
    log = StateStore(incident.state).audit_log(incident.alert_id)
    assert [e for e in log if e["action"] == "ec2:AssociateIamInstanceProfile"][0]["result"]["ok"] is True

    # Nothing left to roll back; executing again re-isolates with the same quarantine group.
    assert "nothing to roll back" in respond(incident, "--rollback").stdout
    assert respond(incident, "--execute", "--keep-running").exit_code == 0
    assert all(v == [q] for v in _enis(incident).values())
    assert len(_quarantine_groups(incident)) == 1


def test_terminate_is_refused_without_approval(incident: Incident) -> None:
    res = respond(incident, "--execute", "--step", "terminate")
    assert res.exit_code == 1
    assert "refused" in res.stdout and "--approve terminate" in res.stdout
    assert _instance(incident)["State"]["Name"] == "running"


def test_terminate_is_refused_until_evidence_and_snapshots_are_complete(incident: Incident) -> None:
    args = ("--execute", "--approve", "terminate", "--step", "terminate")
    res = respond(incident, *args)
    assert res.exit_code == 1
    assert "terminate refused: evidence capture is not complete" in " ".join(res.stdout.split())
    assert _instance(incident)["State"]["Name"] == "running"

    assert respond(incident, "--execute", "--step", "evidence").exit_code == 0
    res = respond(incident, *args)
    assert res.exit_code == 1
    assert "the volumes are not snapshotted" in " ".join(res.stdout.split())
    assert _instance(incident)["State"]["Name"] == "running"

    assert respond(incident, "--execute", "--step", "snapshot").exit_code == 0
    res = respond(incident, *args)
    assert res.exit_code == 0, res.output
    assert _instance(incident)["State"]["Name"] in ("shutting-down", "terminated")

    # The instance is gone: a rollback proposes no call on it and says why.
    for mode in (("--plan",), ()):
        res = respond(incident, "--rollback", *mode)
        assert res.exit_code == 0, res.output
        text = " ".join(res.stdout.split())
        assert "it is gone, so nothing can be rolled back" in text and "skipped" in text
        assert "would" not in res.stdout and "CALL" not in res.stdout and "nothing to roll back" not in text


def test_a_failed_step_blocks_its_dependents_only_and_a_rerun_resumes(incident: Incident) -> None:
    # Evidence into a bucket that does not exist yet: evidence fails, isolation and snapshots still happen,
    # stopping (which waits for evidence) is blocked.
    s3_args = ("--evidence", "s3://ir-evidence/cases")
    res = respond(incident, "--execute", *s3_args, "--json")
    assert res.exit_code == 1
    status = {r["id"]: r["status"] for r in json.loads(res.stdout)["results"]}
    assert status["evidence"] == "failed"
    assert status["isolate"] == "done" and status["snapshot"] == "done" and status["tag"] == "done"
    assert status["stop"] == "blocked"
    assert _instance(incident)["State"]["Name"] == "running"

    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="ir-evidence")
    res = respond(incident, "--execute", *s3_args, "--json")
    assert res.exit_code == 0, res.output
    status = {r["id"]: r["status"] for r in json.loads(res.stdout)["results"]}
    assert status["evidence"] == "done" and status["stop"] == "done"
    assert len(_quarantine_groups(incident)) == 1 and len(_snapshots(incident.alert_id)) == 2

    prefix = f"cases/{incident.alert_id}/"
    manifest = json.loads(s3.get_object(Bucket="ir-evidence", Key=prefix + "manifest.json")["Body"].read())
    assert manifest["complete"] is True
    for f in manifest["files"]:
        body = s3.get_object(Bucket="ir-evidence", Key=prefix + f["name"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == f["sha256"]
        assert f["uri"] == f"s3://ir-evidence/{prefix}{f['name']}"


def test_the_account_of_the_alert_must_match_the_credentials(
    aws: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An instance in another account of the organisation, reached by assuming a role there (moto keeps one
    # backend per account and maps assumed-role credentials to the role's account).
    role = "arn:aws:iam::111111111111:role/incident-response"
    creds = boto3.client("sts", region_name=REGION).assume_role(RoleArn=role, RoleSessionName="setup")["Credentials"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", creds["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", creds["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", creds["SessionToken"])
    world = launch(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN")

    state = tmp_path / "org" / "state.db"
    alert_id = detect_alert(tmp_path, world["instance_id"], state, account="111111111111")
    inc = Incident(
        alert_id,
        world["instance_id"],
        world["vpc_id"],
        sorted(world["groups"]),
        world["volumes"],
        world["groups"],
        world["profile_arn"],
        state,
        tmp_path / "ev",
    )

    res = respond(inc, "--execute")
    assert res.exit_code == 2
    assert "is in account 111111111111 but the credentials are for account 123456789012" in res.stderr
    assert (
        ec2().describe_security_groups(Filters=[{"Name": "tag-key", "Values": ["minerwatch:quarantine"]}])[
            "SecurityGroups"
        ]
        == []
    )

    res = respond(inc, "--execute", "--role-arn", role, "--keep-running")
    assert res.exit_code == 0, res.output
    log = StateStore(state).audit_log(alert_id)
    # The refused run read the caller's identity and nothing else; the second began by assuming the role.
    assert [e["action"] for e in log[:2]] == ["sts:GetCallerIdentity", "sts:AssumeRole"]
    assert log[1]["aws_request_id"] and log[1]["request"]["params"]["RoleArn"] == role
    assert any(e["action"] == "ec2:CreateSecurityGroup" and e["result"]["ok"] for e in log)


def test_the_installed_command_reaches_moto_through_aws_endpoint_url(incident: Incident) -> None:
    # A separate process: nothing but the environment tells it where AWS is.
    env = {**os.environ}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "minerwatch.cli",
            "respond",
            incident.alert_id,
            "--state",
            str(incident.state),
            "--evidence",
            str(incident.evidence),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    assert plan["instance_id"] == incident.instance_id and plan["account_id"] == "123456789012"
    isolate = next(s for s in plan["steps"] if s["id"] == "isolate")
    assert (
        sorted(
            c["params"]["NetworkInterfaceId"]
            for c in isolate["calls"]
            if c["operation"] == "ModifyNetworkInterfaceAttribute"
        )
        == incident.enis
    )
