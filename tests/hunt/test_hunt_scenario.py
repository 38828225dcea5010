"""``minerwatch hunt`` on a generated compromise: every compromised instance, no clean one, decoys ignored."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app

runner = CliRunner()


def _hunt(*args: str) -> Any:
    res = runner.invoke(app, ["hunt", *args])
    assert res.exit_code == 0, res.output
    return res


def _json(*args: str) -> dict[str, Any]:
    return json.loads(_hunt(*args, "--format", "json").stdout)


def _sources(root: Path) -> list[str]:
    return ["--flow", str(root / "vpcflow"), "--dns", str(root / "route53"), "--findings", str(root / "guardduty")]


def _instances(manifest: dict[str, Any], which: str) -> set[str]:
    return {i["instance_id"] for i in manifest[which]}


@pytest.fixture(scope="module")
def full(scenario: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    root, _ = scenario
    return _json(*_sources(root))


def test_finds_every_compromised_instance_and_no_clean_one(
    full: dict[str, Any], scenario: tuple[Path, dict[str, Any]]
) -> None:
    _, manifest = scenario
    compromised = _instances(manifest, "compromised_instances")
    clean = _instances(manifest, "clean_instances")
    assert len(compromised) == 5 and len(clean) >= 10
    found = {e["entity"] for e in full["entities"]}
    assert found == compromised
    assert all(e["entity_type"] == "instance" and e["instance_id"] == e["entity"] for e in full["entities"])
    assert not found & clean


def test_each_instance_matches_on_flows_dns_and_findings(
    full: dict[str, Any], scenario: tuple[Path, dict[str, Any]]
) -> None:
    _, manifest = scenario
    by_id = {e["entity"]: e for e in full["entities"]}
    for inst in manifest["compromised_instances"]:
        e = by_id[inst["instance_id"]]
        pool = inst["mining"]["pool"]
        assert e["evidence"] == ["flow", "dns", "finding"]
        assert e["account"] == manifest["account_id"]
        assert inst["eni_id"] in e["interfaces"]
        assert inst["private_ip"] in e["addresses"]
        assert pool["port"] in e["ports"]
        assert pool["ip"] in e["peers"]
        assert pool["domain"] in e["query_names"]
        assert e["flows"] > 0 and e["bytes"] > 0 and e["accepted"] > 0
        assert e["findings"] == len({f["id"] for f in inst["crypto_findings"]})
        assert e["first_seen"] <= e["last_seen"]
        flow_port = next(m for m in e["matches"] if m["evidence"] == "flow" and m["indicator"] == pool["port"])
        assert flow_port["kind"] == "port" and flow_port["records"] > 0 and pool["ip"] in flow_port["values"]
        dns = [m for m in e["matches"] if m["evidence"] == "dns"]
        assert any(pool["domain"] in m["values"] for m in dns)


def test_default_format_enis_are_tied_to_instances(scenario: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = scenario
    v2 = {i["instance_id"]: i for i in manifest["compromised_instances"]
          if manifest["vpcs"][i["region"]]["flow_log_format"] == "v2"}
    assert v2
    # Flow logs alone name only the ENIs of the version-2 VPC.
    alone = {e["entity"]: e for e in _json("--flow", str(root / "vpcflow"))["entities"]}
    for inst in v2.values():
        assert inst["eni_id"] in alone and alone[inst["eni_id"]]["entity_type"] == "eni"
    # With Resolver logs the query sources tie the addresses to the instances, with findings the ENIs.
    cases = ((["--dns", str(root / "route53")], "dns"), (["--findings", str(root / "guardduty")], "guardduty"))
    for extra, how in cases:
        data = {e["entity"]: e for e in _json("--flow", str(root / "vpcflow"), *extra)["entities"]}
        for iid, inst in v2.items():
            assert data[iid]["mapped_by"] == how, data[iid]
            assert inst["eni_id"] in data[iid]["interfaces"]
            assert inst["eni_id"] not in data


def test_decoy_domains_are_looked_up_but_never_match(scenario: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = scenario
    decoys = set(manifest["decoy_domains"])
    looked_up = set()
    for f in (root / "route53").rglob("*.gz"):
        for line in gzip.decompress(f.read_bytes()).splitlines():
            looked_up.add(json.loads(line)["query_name"].rstrip("."))
    assert decoys & looked_up, "the scenario should look the decoys up, or this test proves nothing"
    data = _json("--dns", str(root / "route53"))
    names = {n for e in data["entities"] for m in e["matches"] for n in m["values"]}
    assert not names & decoys
    assert {e["entity"] for e in data["entities"]} == {i["instance_id"] for i in manifest["compromised_instances"]}


def test_json_and_csv_outputs_parse(
    full: dict[str, Any], scenario: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = scenario
    assert set(full) == {"iocs", "stats", "entities"}
    assert full["stats"]["sources"]["flow"]["engine"] == "python"  # the default engine on local text files
    assert full["stats"]["sources"]["flow"]["records"] > 0
    res = _hunt(*_sources(root), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["entity"] for r in rows] == [e["entity"] for e in full["entities"]]
    for row, e in zip(rows, full["entities"], strict=True):
        assert int(row["flows"]) == e["flows"] and int(row["queries"]) == e["queries"]
        assert row["evidence"] == "flow dns finding"
        assert row["first_seen"] == e["first_seen"]
    out = tmp_path / "hunt.json"
    _hunt(*_sources(root), "--format", "json", "--out", str(out))
    assert json.loads(out.read_text())["entities"] == full["entities"]


def test_table_lists_each_entity(scenario: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = scenario
    res = _hunt(*_sources(root))
    for inst in manifest["compromised_instances"]:
        assert inst["instance_id"] in res.stdout
    assert "5 entities matched" in res.stderr


def test_user_ioc_file_adds_indicators_that_match(scenario: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, manifest = scenario
    pool_ip = manifest["pools"]["accepted"][0]["ip"]
    ioc = tmp_path / "incident.txt"
    ioc.write_text(f"# from the incident\n{pool_ip}\npypi.org\n", encoding="utf-8")
    without = _json(*_sources(root))
    assert not any(m["kind"] == "ip" for e in without["entities"] for m in e["matches"])
    data = _json(*_sources(root), "--ioc", str(ioc))
    ip_hits = [(e, m) for e in data["entities"] for m in e["matches"] if m["kind"] == "ip"]
    assert ip_hits and all(m["indicator"] == pool_ip for _, m in ip_hits)
    assert {m["source"] for _, m in ip_hits} == {f"file:{ioc}:2"}
    users = {i["instance_id"] for i in manifest["compromised_instances"] if i["mining"]["pool"]["ip"] == pool_ip}
    assert {e["entity"] for e, m in ip_hits if m["evidence"] == "flow"} == users
    # pypi.org is benign: the clean hosts that look it up show up, by the user's indicator only.
    clean = {i["instance_id"] for i in manifest["clean_instances"]}
    pypi = {e["entity"] for e in data["entities"] for m in e["matches"] if m["indicator"] == "pypi.org"}
    assert pypi and pypi & clean
    for e in data["entities"]:
        if e["entity"] in clean:
            assert {m["indicator"] for m in e["matches"]} == {"pypi.org"}


def test_open_alerts_shows_in_alerts_list(scenario: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, manifest = scenario
    state = tmp_path / "state.db"
    out = tmp_path / "alerts.jsonl"
    res = _hunt(*_sources(root), "--open-alerts", "--state", str(state), "--alerts-out", str(out))
    assert "alerts: 5 new" in res.stderr
    listed = runner.invoke(app, ["alerts", "list", "--state", str(state), "--json"])
    assert listed.exit_code == 0, listed.output
    alerts = [json.loads(line) for line in listed.stdout.splitlines()]
    compromised = {i["instance_id"] for i in manifest["compromised_instances"]}
    assert {a["key"]["resource_id"] for a in alerts} == compromised
    for a in alerts:
        assert a["rule_id"] == "aws-ioc-hunt-crypto-mining"
        assert a["severity"] == "high" and a["priority"] == "P2"
        assert a["key"]["accountid"] == manifest["account_id"]
        assert {g["evidence"] for g in a["groups"]} == {"flow", "dns", "finding"}
        assert a["event_count"] == len(a["groups"]) == len(a["finding_ids"])
    assert len(out.read_text().splitlines()) == 5
    # The same hunt again changes nothing.
    again = _hunt(*_sources(root), "--open-alerts", "--state", str(state))
    assert "alerts: 0 new, 0 updated from 0 hit rows" in again.stderr
    relisted = runner.invoke(app, ["alerts", "list", "--state", str(state), "--json"])
    assert [json.loads(line) for line in relisted.stdout.splitlines()] == alerts


def test_nothing_to_hunt_is_an_error() -> None:
    res = runner.invoke(app, ["hunt"])
    assert res.exit_code == 2
    assert "nothing to hunt in" in res.stderr


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    res = runner.invoke(app, ["hunt", "--flow", str(tmp_path / "absent")])
    assert res.exit_code == 2
    assert "absent" in res.stderr
