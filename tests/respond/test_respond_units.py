"""The pieces of the response without AWS: playbook → steps, calls as data, enrichment reading, evidence text."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from minerwatch.alerting.state import StateStore
from minerwatch.aws.session import AwsError
from minerwatch.respond.actions import ACTIONS, Context, rollback_calls
from minerwatch.respond.discover import Eni, Inventory
from minerwatch.respond.evidence import _decoded, location
from minerwatch.respond.execute import DryRunViolation, Executor, launching_keys
from minerwatch.respond.journal import DONE, Journal
from minerwatch.respond.plan import ApiCall, line_actions, placeholder, skeleton
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import RULES_DIR


def test_the_seed_playbook_orders_automated_steps_among_its_own_lines(seed_path: Path) -> None:
    rule = load_rule(seed_path)
    items = skeleton(rule.response_playbook, rule.recommended_actions)
    order = [i.action or i.title for i in items]
    assert order[:7] == [
        "Confirm cryptocurrency mining activity",
        "tag",
        "evidence",
        "live-forensics",
        "isolate",
        "nacl-deny",
        "snapshot",
    ]
    # Credentials come from "Reset all credentials ..." (Recommended Actions 11), before terminating.
    i = order.index("Terminate compromised instance") if "Terminate compromised instance" in order else None
    assert i is None, "the terminate line becomes the stop/terminate steps"
    assert (
        order.index("detach-profile") < order.index("deactivate-keys") < order.index("stop") < order.index("terminate")
    )
    assert order.index("Review IAM credentials exposure") < order.index("detach-profile")
    by_action = {x.action: x for x in items if x.action}
    assert by_action["isolate"].seed == [
        "Response Playbook 2: Immediately isolate instance (modify security groups)",
        "Recommended Actions 1: IMMEDIATE: Isolate affected EC2 instance",
    ]
    assert by_action["deactivate-keys"].seed == [
        "Recommended Actions 11: Reset all credentials that had access to instance"
    ]
    # Every playbook line is there, in order, and recommended actions that repeat none are appended.
    manual = [x.title for x in items if x.action is None]
    playbook_manual = [p for p in rule.response_playbook if not line_actions(p)]
    assert manual[: len(playbook_manual)] == playbook_manual
    assert manual[len(playbook_manual) :] == [
        "Review instance launch details and who deployed it",
        "Check CloudTrail for unauthorized activities",
        "Identify how instance was compromised",
        "Review security groups and network ACLs",
        "Launch new instance from clean AMI",
        "Review AWS billing for unusual charges",
        "Scan other instances for similar IOCs",
    ]


def test_the_extended_rule_maps_its_own_wording() -> None:
    rule = load_rule(RULES_DIR / "aws-guardduty-crypto-mining-extended.md")
    actions = [x.action for x in skeleton(rule.response_playbook, rule.recommended_actions) if x.action]
    assert actions == [
        "tag",
        "evidence",
        "live-forensics",
        "isolate",
        "nacl-deny",
        "snapshot",
        "revoke-sessions",
        "detach-profile",
        "deactivate-keys",
        "reset-credentials",
        "stop",
        "terminate",
    ]


@pytest.mark.parametrize(
    ("line", "actions"),
    [
        ("Immediately isolate instance (modify security groups)", ["isolate", "nacl-deny"]),
        ("Preserve evidence (EBS snapshots, container image)", ["evidence", "snapshot"]),
        ("Terminate compromised instance", ["stop", "terminate"]),
        (
            "Rotate every credential the resource could read",
            ["revoke-sessions", "detach-profile", "deactivate-keys", "reset-credentials"],
        ),
        ("Review IAM credentials exposure", []),
        ("Report to AWS Abuse if external compromise", []),
    ],
)
def test_line_actions(line: str, actions: list[str]) -> None:
    assert line_actions(line) == actions


def test_a_rule_without_response_lines_has_no_automated_step() -> None:
    assert skeleton([], []) == []
    items = skeleton(["Call the owner"], ["Write a report"])
    assert [(x.action, x.title) for x in items] == [(None, "Call the owner"), (None, "Write a report")]


def test_placeholders_resolve_and_render() -> None:
    call = ApiCall(
        "ec2",
        "ModifyNetworkInterfaceAttribute",
        {"NetworkInterfaceId": "eni-1", "Groups": [placeholder("q/vpc-1")]},
        "eu-west-1",
    )
    assert call.resolved({"q/vpc-1": "sg-9"}) == {"NetworkInterfaceId": "eni-1", "Groups": ["sg-9"]}
    with pytest.raises(KeyError):
        call.resolved({})
    assert call.render() == (
        'ec2:ModifyNetworkInterfaceAttribute [eu-west-1] {"Groups":["<new:q/vpc-1>"],"NetworkInterfaceId":"eni-1"}'
    )
    assert not call.read_only and ApiCall("ec2", "DescribeInstances", {}).read_only


class _NoAws:
    region = "us-east-1"

    def __init__(self) -> None:
        self.invoked: list[str] = []

    def invoke(self, service: str, operation: str, params: dict[str, Any], region: str | None = None) -> dict:
        self.invoked.append(operation)
        return {"ResponseMetadata": {"RequestId": "r-1"}}


def test_the_dry_run_executor_refuses_any_change(tmp_path: Path) -> None:
    aws = _NoAws()
    ex = Executor(aws, StateStore(tmp_path / "s.db"), "mw-1", "me", execute=False)  # type: ignore[arg-type]
    ex.call(ApiCall("ec2", "DescribeInstances", {}))
    with pytest.raises(DryRunViolation):
        ex.call(ApiCall("ec2", "TerminateInstances", {"InstanceIds": ["i-1"]}))
    with pytest.raises(DryRunViolation):
        ex.read(ApiCall("ec2", "CreateSnapshot", {}))
    assert aws.invoked == ["DescribeInstances"]
    assert StateStore(tmp_path / "s.db").audit_log("mw-1") == []


def test_launching_keys_reads_defensively() -> None:
    keys, why = launching_keys({}, "i-1")
    assert keys == [] and "no launch_context enrichment" in why
    keys, why = launching_keys({"launch_context": {"reason": "RunInstances not in the logs", "summary": {}}}, "i-1")
    assert keys == [] and "RunInstances not in the logs" in why
    keys, why = launching_keys({"launch_context": {"summary": {"launches": [{"instance_id": "i-1"}]}}}, "i-1")
    assert keys == [] and "no access key id" in why
    launch = {"instance_id": "i-1", "access_key_id": "AKIA1", "principal": {"type": "IAMUser", "user_name": "u"}}
    other = {"instance_id": "i-2", "access_key_id": "AKIA2"}
    keys, why = launching_keys({"launch_context": {"summary": {"launches": [other, launch]}}}, "i-1")
    assert why is None and [(k.access_key_id, k.user_name) for k in keys] == [("AKIA1", "u")]


def test_user_data_is_decoded_as_data() -> None:
    hostile = b"#!/bin/sh\n\xff\xfe echo $(id) [red]x[/red]\n"
    out = _decoded(hostile)
    assert out["text"] == hostile.decode("utf-8", errors="replace") and out["bytes"] == len(hostile)
    packed = _decoded(gzip.compress(b"#cloud-config\nruncmd: [xmrig]\n"))
    assert packed["gzip"] is True and packed["text"] == "#cloud-config\nruncmd: [xmrig]\n"
    assert _decoded(b"\x1f\x8bnot gzip")["gzip_error"] == "not a valid gzip stream"


def test_evidence_locations(tmp_path: Path) -> None:
    s3 = location("s3://bucket/cases/", "mw-1")
    assert (s3.bucket, s3.prefix, s3.uri) == ("bucket", "cases/mw-1/", "s3://bucket/cases/mw-1/")
    assert location("s3://bucket", "mw-1").key_of("manifest.json") == "mw-1/manifest.json"
    local = location(str(tmp_path), "mw-1")
    assert not local.is_s3 and local.uri == str(tmp_path.resolve() / "mw-1")


class _Ec2MultiInterface:
    """EC2 as documented for an instance with two interfaces: groups belong to each interface, and
    ModifyInstanceAttribute ``Groups`` is refused ("specify an interface ID instead")."""

    def __init__(self) -> None:
        self.enis = {"eni-0primary": ["sg-0web"], "eni-0second": ["sg-0app"]}
        self.made: list[str] = []

    def call(self, call: ApiCall, values: dict[str, Any] | None = None) -> dict[str, Any]:
        values = values if values is not None else {}
        params = call.resolved(values)
        self.made.append(call.operation)
        resp: dict[str, Any] = {}
        if call.operation == "CreateSecurityGroup":
            resp = {"GroupId": "sg-0quarantine"}
        elif call.operation == "ModifyNetworkInterfaceAttribute":
            self.enis[params["NetworkInterfaceId"]] = list(params["Groups"])
        elif call.operation == "ModifyInstanceAttribute" and "Groups" in params:
            raise AwsError(
                f"There are multiple interfaces attached to instance '{params['InstanceId']}'. Please specify an "
                "interface ID for the operation instead.",
                code="InvalidInstanceID",
                operation=call.operation,
            )
        elif call.operation == "DescribeSecurityGroups":
            resp = {"SecurityGroups": [{"GroupId": "sg-0quarantine", "IpPermissions": [], "IpPermissionsEgress": []}]}
        elif call.operation == "DescribeNetworkInterfaces":
            resp = {
                "NetworkInterfaces": [
                    {"NetworkInterfaceId": e, "Groups": [{"GroupId": g} for g in gs]} for e, gs in self.enis.items()
                ]
            }
        for name, key in call.binds.items():
            values[name] = resp[key]
        return resp

    def read(self, call: ApiCall) -> dict[str, Any]:
        return self.call(call)


def test_isolation_of_a_multi_interface_instance_does_not_need_the_instance_level_call(tmp_path: Path) -> None:
    vpc = "vpc-0example"
    inv = Inventory(
        instance_id="i-0123456789abcdef0",
        region="us-east-1",
        alert_id="mw-1",
        found=True,
        state="running",
        instance={"VpcId": vpc},
        enis=[Eni("eni-0primary", vpc, ["sg-0web"], 0), Eni("eni-0second", vpc, ["sg-0app"], 1)],
        instance_groups=["sg-0web"],
        vpc_ipv6={vpc: False},
    )
    ctx = Context(
        alert={"alert_id": "mw-1"},
        alert_id="mw-1",
        incident_id="mw-1",
        instance_id=inv.instance_id,
        region="us-east-1",
        account_id=None,
        actor="test",
        evidence=location(str(tmp_path / "evidence"), "mw-1"),
    )
    isolate = ACTIONS["isolate"]
    planned = [c.operation for c in isolate.calls(inv, ctx)]
    assert planned.count("ModifyNetworkInterfaceAttribute") == 2 and planned[-1] == "ModifyInstanceAttribute"
    ec2 = _Ec2MultiInterface()
    store = StateStore(tmp_path / "state.db")
    try:
        journal = Journal(store, "mw-1")
        outcome = isolate.run(ec2, inv, ctx, journal)
        # EC2's refusal is expected there; what the interfaces read back decides, and they are isolated.
        assert outcome.status == DONE, outcome.message
        assert ec2.enis == {"eni-0primary": ["sg-0quarantine"], "eni-0second": ["sg-0quarantine"]}
        assert "ModifyInstanceAttribute" in ec2.made
        recorded = journal.detail("isolate")
        assert recorded["instance_groups"] == ["sg-0web"]
        assert recorded["originals"] == {"eni-0primary": ["sg-0web"], "eni-0second": ["sg-0app"]}
    finally:
        store.close()
    # Rollback puts back both: the interfaces, and the instance's own groups (refused the same way there).
    after = Inventory(**{**inv.__dict__, "enis": [Eni(e, vpc, ["sg-0quarantine"], i) for i, e in enumerate(ec2.enis)],
                         "instance_groups": ["sg-0quarantine"]})  # fmt: skip
    back = rollback_calls(after, recorded["originals"], None, recorded["instance_groups"])
    assert [(c.operation, c.params.get("Groups")) for c in back] == [
        ("ModifyNetworkInterfaceAttribute", ["sg-0web"]),
        ("ModifyNetworkInterfaceAttribute", ["sg-0app"]),
        ("ModifyInstanceAttribute", ["sg-0web"]),
    ]
