"""The nacl-deny step against moto: the pool addresses known for the alert (the enrichment's pool flows and
resolved pool addresses) become DENY entries in the network ACL of the instance's subnet, numbered below its first
allow rule without colliding with existing entries; only with approval; the ACL is saved as evidence before the
change; every call is audited; rollback deletes exactly the entries the step created."""

from __future__ import annotations

import json
from typing import Any

import boto3
from respond_env import REGION, Incident, ec2, respond

from minerwatch.alerting.state import StateStore
from minerwatch.respond.actions import NACL_EVIDENCE, NACL_RULE_LIMIT, Context, NaclDeny, PoolAddress
from minerwatch.respond.discover import Inventory, NetworkAcl
from minerwatch.respond.evidence import MANIFEST, location, sha256, verify_local
from minerwatch.respond.execute import pool_addresses
from minerwatch.respond.journal import Journal

MANUAL_DENY = "192.0.2.1/32"


def _acl(incident: Incident) -> dict[str, Any]:
    inst = ec2().describe_instances(InstanceIds=[incident.instance_id])["Reservations"][0]["Instances"][0]
    acls = ec2().describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [inst["SubnetId"]]}])
    assert len(acls["NetworkAcls"]) == 1
    return acls["NetworkAcls"][0]


def _entries(acl_id: str) -> list[tuple[int, bool, str, str]]:
    acl = ec2().describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"][0]
    return sorted((e["RuleNumber"], e["Egress"], e["RuleAction"], e["CidrBlock"]) for e in acl["Entries"])


def _enrich(incident: Incident) -> None:
    """Pool flows and pool-domain lookups, as ``minerwatch enrich`` stores them (one private peer among them)."""
    store = StateStore(incident.state)
    store.save_enrichment(
        incident.alert_id,
        "network",
        {"name": "network", "status": "ok", "summary": {"peers": [
            {"peer": "203.0.113.50", "peer_port": 3333, "action": "ACCEPT", "why": ["Stratum port 3333"]},
            {"peer": "10.20.1.9", "peer_port": 4444, "action": "ACCEPT", "why": ["Stratum port 4444"]},
        ]}},
    )  # fmt: skip
    store.save_enrichment(
        incident.alert_id,
        "dns",
        {"name": "dns", "status": "ok", "summary": {"resolved_addresses": {
            "198.51.100.6": "xmr.nanopool.org", "198.51.100.7": "xmr.nanopool.org",
        }}},
    )  # fmt: skip
    store.close()


def _step(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return next(s for s in doc[key] if s["id"] == "nacl-deny")


def test_nacl_deny_dry_run_execute_rollback(incident: Incident) -> None:
    _enrich(incident)
    acl = _acl(incident)
    acl_id = acl["NetworkAclId"]
    # An entry put there by hand: its number is taken, and it is not this step's to remove.
    ec2().create_network_acl_entry(NetworkAclId=acl_id, RuleNumber=99, Protocol="-1", RuleAction="deny",
                                   Egress=True, CidrBlock=MANUAL_DENY)  # fmt: skip
    before = _entries(acl_id)

    plan = json.loads(respond(incident, "--json").stdout)
    step = _step(plan, "steps")
    assert step["kind"] == "automated" and step["requires_approval"] == "nacl-deny"
    ids = [s["id"] for s in plan["steps"] if s["kind"] == "automated"]
    assert ids.index("isolate") < ids.index("nacl-deny") < ids.index("snapshot")
    calls = [(c["operation"], c["params"]) for c in step["calls"]]
    deny = {"NetworkAclId": acl_id, "Protocol": "-1", "RuleAction": "deny"}
    # The finding's own address first, then the resolved pair merged into one /31; numbers count down from just
    # under the first allow rule (100), skipping the taken 99 on egress.
    assert calls == [
        ("CreateNetworkAclEntry", {**deny, "RuleNumber": 98, "Egress": True, "CidrBlock": "203.0.113.50/32"}),
        ("CreateNetworkAclEntry", {**deny, "RuleNumber": 97, "Egress": True, "CidrBlock": "198.51.100.6/31"}),
        ("CreateNetworkAclEntry", {**deny, "RuleNumber": 99, "Egress": False, "CidrBlock": "203.0.113.50/32"}),
        ("CreateNetworkAclEntry", {**deny, "RuleNumber": 98, "Egress": False, "CidrBlock": "198.51.100.6/31"}),
    ]
    assert any("10.20.1.9" in n and "not denied" in n for n in step["notes"])
    assert [c["operation"] for c in step["checks"]] == ["DescribeNetworkAcls"]
    assert _entries(acl_id) == before  # the dry run changed nothing

    waiting = json.loads(respond(incident, "--execute", "--step", "nacl-deny", "--json").stdout)
    assert _step(waiting, "results")["status"] == "refused" and _entries(acl_id) == before

    res = respond(incident, "--execute", "--step", "nacl-deny", "--approve", "nacl-deny", "--json")
    assert res.exit_code == 0, res.output
    assert _step(json.loads(res.stdout), "results")["status"] == "done"
    added = {(n, e, "deny", c) for _, p in calls for n, e, c in [(p["RuleNumber"], p["Egress"], p["CidrBlock"])]}
    assert set(_entries(acl_id)) == set(before) | added

    # Evidence: the ACL as it was before the change, its hash in the journal.
    written = incident.evidence / incident.alert_id / NACL_EVIDENCE
    saved = json.loads(written.read_text())["responses"][0]["NetworkAcls"][0]
    assert sorted((e["RuleNumber"], e["Egress"], e["RuleAction"], e["CidrBlock"]) for e in saved["Entries"]) == before
    store = StateStore(incident.state)
    detail = Journal(store, incident.alert_id).detail("nacl-deny")
    assert detail["evidence"]["sha256"] == sha256(written.read_bytes())
    assert len(detail["entries"]) == 4
    log = store.audit_log(incident.alert_id)
    creates = [e for e in log if e["action"] == "ec2:CreateNetworkAclEntry"]
    assert len(creates) == 4 and all(e["result"]["ok"] and e["aws_request_id"] for e in creates)
    reads = [e["seq"] for e in log if e["action"] == "ec2:DescribeNetworkAcls"]
    assert reads and min(reads) < min(e["seq"] for e in creates)
    assert [e["result"]["status"] for e in log if e["action"] == "step:nacl-deny"] == ["refused", "done"]
    store.close()

    # A second run adds nothing.
    again = respond(incident, "--execute", "--step", "nacl-deny", "--approve", "nacl-deny")
    assert again.exit_code == 0 and "done earlier" in again.stdout
    assert len(_entries(acl_id)) == len(before) + 4

    shown = respond(incident, "--rollback", "--plan")
    assert shown.stdout.count("ec2:DeleteNetworkAclEntry") == 4 and len(_entries(acl_id)) == len(before) + 4
    back = respond(incident, "--rollback")
    assert back.exit_code == 0, back.output
    assert _entries(acl_id) == before  # exactly as it was: the entry made by hand stays
    log = StateStore(incident.state).audit_log(incident.alert_id)
    assert len([e for e in log if e["action"] == "ec2:DeleteNetworkAclEntry" and e["result"]["ok"]]) == 4
    assert "DeleteNetworkAclEntry" not in respond(incident, "--rollback", "--plan").stdout


def test_rollback_leaves_an_entry_changed_since(incident: Incident) -> None:
    _enrich(incident)
    acl_id = _acl(incident)["NetworkAclId"]
    res = respond(incident, "--execute", "--step", "nacl-deny", "--approve", "nacl-deny")
    assert res.exit_code == 0, res.output
    # Someone replaced one of our entries with their own rule under the same number: it is theirs now.
    ec2().replace_network_acl_entry(NetworkAclId=acl_id, RuleNumber=99, Protocol="-1", RuleAction="deny",
                                    Egress=True, CidrBlock="192.0.2.77/32")  # fmt: skip
    shown = respond(incident, "--rollback", "--plan", "--json")
    deletes = [c["params"] for c in json.loads(shown.stdout)["calls"] if c["operation"] == "DeleteNetworkAclEntry"]
    assert len(deletes) == 3 and {"NetworkAclId": acl_id, "RuleNumber": 99, "Egress": True} not in deletes


def _listed(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in manifest["files"]}


def test_the_manifest_lists_the_acl_evidence_and_verification_checks_it(incident: Incident) -> None:
    _enrich(incident)
    folder = incident.evidence / incident.alert_id
    res = respond(incident, "--execute", "--step", "nacl-deny", "--approve", "nacl-deny")
    assert res.exit_code == 0, res.output
    # Before any evidence capture: the manifest lists the ACL file, and says the capture is not complete.
    manifest = json.loads((folder / MANIFEST).read_text())
    entry = _listed(manifest)[NACL_EVIDENCE]
    assert manifest["complete"] is False and list(_listed(manifest)) == [NACL_EVIDENCE]
    assert entry["sha256"] == sha256((folder / NACL_EVIDENCE).read_bytes()) and entry["step"] == "nacl-deny"
    assert entry["requests"] == ["ec2:DescribeNetworkAcls"] and entry["bytes"] > 0

    # The evidence step's manifest keeps the entry of the earlier step, as it was.
    res = respond(incident, "--execute", "--step", "evidence")
    assert res.exit_code == 0, res.output
    manifest = json.loads((folder / MANIFEST).read_text())
    listed = _listed(manifest)
    assert manifest["complete"] is True and listed[NACL_EVIDENCE] == entry
    assert {"instance.json", "alert.json", NACL_EVIDENCE} <= set(listed)
    assert verify_local(folder) == []

    saved = json.loads((folder / NACL_EVIDENCE).read_text())
    saved["responses"][0]["NetworkAcls"][0]["Entries"] = []  # as if the ACL had held no rule
    (folder / NACL_EVIDENCE).write_text(json.dumps(saved))
    assert verify_local(folder) == [f"{NACL_EVIDENCE}: SHA-256 does not match the manifest"]
    (folder / NACL_EVIDENCE).unlink()
    assert verify_local(folder) == [f"{NACL_EVIDENCE}: missing"]


def test_the_manifest_in_s3_lists_the_acl_evidence(incident: Incident) -> None:
    _enrich(incident)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="ir-evidence")
    where = ("--evidence", "s3://ir-evidence/cases")
    for step in (("--step", "evidence"), ("--step", "nacl-deny", "--approve", "nacl-deny")):
        res = respond(incident, "--execute", *step, *where)
        assert res.exit_code == 0, res.output
    prefix = f"cases/{incident.alert_id}/"
    manifest = json.loads(s3.get_object(Bucket="ir-evidence", Key=prefix + MANIFEST)["Body"].read())
    listed = _listed(manifest)
    assert listed[NACL_EVIDENCE]["step"] == "nacl-deny" and listed["instance.json"]["step"] == "evidence"
    for name, f in listed.items():
        body = s3.get_object(Bucket="ir-evidence", Key=prefix + name)["Body"].read()
        assert sha256(body) == f["sha256"] and f["uri"] == f"s3://ir-evidence/{prefix}{name}"
    assert not (incident.evidence / incident.alert_id).exists()


def test_the_s3_dry_run_lists_the_acl_evidence_uploads(incident: Incident) -> None:
    """With S3 evidence the step's writes include its evidence file and the manifest, before the ACL change."""
    _enrich(incident)
    plan = json.loads(respond(incident, "--json", "--evidence", "s3://ir-evidence/cases").stdout)
    calls = _step(plan, "steps")["calls"]
    puts = [(c["operation"], c["params"]["Bucket"], c["params"]["Key"]) for c in calls if c["service"] == "s3"]
    prefix = f"cases/{incident.alert_id}/"
    assert puts == [("PutObject", "ir-evidence", prefix + name) for name in (NACL_EVIDENCE, MANIFEST)]
    assert [c["operation"] for c in calls][:4] == ["CreateNetworkAclEntry"] * 4
    local = json.loads(respond(incident, "--json").stdout)
    assert all(c["service"] != "s3" for c in _step(local, "steps")["calls"])  # files on disk are no API call


def test_no_pool_address_leaves_a_manual_item(incident: Incident) -> None:
    step = _step(json.loads(respond(incident, "--json").stdout), "steps")
    assert step["kind"] == "manual" and "no mining-pool address" in step["notes"][0]


def _inv(entries: list[dict[str, Any]]) -> Inventory:
    acl = NetworkAcl("acl-1", ["subnet-1"], entries)
    return Inventory("i-0123456789abcdef0", "us-east-1", "mw-1", found=True, subnets=["subnet-1"], nacls=[acl])


def _ctx(*addresses: str) -> Context:
    return Context(
        alert={}, alert_id="mw-1", incident_id="mw-1", instance_id="i-0123456789abcdef0", region="us-east-1",
        account_id=None, actor="t", evidence=location("/tmp/unused", "mw-1"),
        pool_addresses=[PoolAddress(a, "test") for a in addresses],
    )  # fmt: skip


def _rule(n: int, action: str, egress: bool, cidr: str = "0.0.0.0/0") -> dict[str, Any]:
    return {"RuleNumber": n, "RuleAction": action, "Egress": egress, "Protocol": "-1", "CidrBlock": cidr}


def test_a_full_acl_caps_the_entries_and_says_so() -> None:
    # 18 egress rules with the default allow and deny: room for 2 more under the quota of 20.
    egress = [_rule(100, "allow", True), _rule(32767, "deny", True)]
    egress += [_rule(200 + n, "allow", True, f"10.9.{n}.0/24") for n in range(16)]
    inv = _inv([*egress, _rule(100, "allow", False), _rule(32767, "deny", False)])
    action = NaclDeny()
    entries, left = action.plan_entries(inv, _ctx("203.0.113.1", "203.0.113.5", "203.0.113.9"))
    assert NACL_RULE_LIMIT == 20
    assert [(e.egress, e.number, e.cidr) for e in entries] == [
        (True, 99, "203.0.113.1/32"), (True, 98, "203.0.113.5/32"),
        (False, 99, "203.0.113.1/32"), (False, 98, "203.0.113.5/32"), (False, 97, "203.0.113.9/32"),
    ]  # fmt: skip
    assert len(left) == 1 and "egress" in left[0] and "203.0.113.9/32" in left[0] and "quota 20" in left[0]
    assert any("no room for 203.0.113.9/32" in n for n in action.notes(inv, _ctx("203.0.113.1", "203.0.113.5",
                                                                                  "203.0.113.9")))  # fmt: skip


def test_no_number_below_the_first_allow_rule() -> None:
    inv = _inv([_rule(1, "allow", True), _rule(32767, "deny", True), _rule(5, "allow", False)])
    entries, left = NaclDeny().plan_entries(inv, _ctx("203.0.113.1"))
    # Egress allows everything at rule 1: a deny numbered after it would never match.
    assert [(e.egress, e.number) for e in entries] == [(False, 4)]
    assert len(left) == 1 and "first allow rule 1" in left[0]


def test_an_address_already_denied_ahead_of_the_allows_is_not_added_again() -> None:
    inv = _inv([_rule(50, "deny", True, "203.0.113.1/32"), _rule(100, "allow", True), _rule(100, "allow", False),
                _rule(150, "deny", False, "203.0.113.1/32")])  # fmt: skip
    entries, _ = NaclDeny().plan_entries(inv, _ctx("203.0.113.1"))
    # ingress: the deny at 150 comes after the allow at 100, so it does not count
    assert [(e.egress, e.number) for e in entries] == [(False, 99)]


def test_pool_addresses_come_from_the_finding_and_the_enrichment_and_are_parsed() -> None:
    alert = {
        "fields": {"mining_pool_ip": "203.0.113.9"},
        "groups": [{"mining_pool_ip": "203.0.113.9; curl x|sh"}, {"remote_ip": "169.254.169.254"}],
    }
    enrichments = {
        "network": {"summary": {"peers": [{"peer": "198.51.100.1"}, {"peer": "fd00::1"}]}},
        "dns": {"summary": {"resolved_addresses": {"198.51.100.2": "pool.minergate.com", "10.0.0.2": "internal"}}},
    }
    found, notes = pool_addresses(alert, enrichments)
    assert [p.address for p in found] == ["203.0.113.9", "198.51.100.1", "198.51.100.2"]
    assert found[0].why == "the finding's mining_pool_ip"
    assert len(notes) == 4 and all("not denied" in n for n in notes)
    assert any("'203.0.113.9; curl x|sh'" in n and "not an IP address" in n for n in notes)
