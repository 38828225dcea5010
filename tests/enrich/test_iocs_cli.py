"""``minerwatch ioc list`` and ``minerwatch ioc check`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.enrich.iocs import bundled, default_for_rule
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE

runner = CliRunner()


def _ioc_file(tmp_path: Path) -> Path:
    f = tmp_path / "incident.txt"
    f.write_text("# from the incident\nevil-pool.example\n203.0.113.0/24\n7777\n", encoding="utf-8")
    return f


def test_list_json_defaults_to_the_shipped_rule_plus_bundled() -> None:
    res = runner.invoke(app, ["ioc", "list", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    expected = default_for_rule(load_rule(DEFAULT_RULE))
    assert [(e["kind"], str(e["value"]), e["source"]) for e in data["entries"]] == [
        (e.kind, e.value, e.source) for e in expected
    ]
    assert data["counts"] == expected.counts()
    rule_id = load_rule(DEFAULT_RULE).id
    assert {"kind": "domain", "value": "nanopool.org", "source": f"rule:{rule_id}"} in data["entries"]
    assert {"kind": "port", "value": 14444, "source": "bundled:stratum_ports"} in data["entries"]
    assert data["counts"]["distinct"]["port"] == 3


def test_list_table_shows_kind_value_source_and_counts(tmp_path: Path) -> None:
    f = _ioc_file(tmp_path)
    res = runner.invoke(app, ["ioc", "list", "--ioc", str(f), "--kind", "ip"])
    assert res.exit_code == 0, res.output
    assert "203.0.113.0/24" in res.stdout and f"file:{f}:3" in res.stdout
    assert "nanopool" not in res.stdout and "3333" not in res.stdout
    assert res.stdout.rstrip().splitlines()[-1].startswith("1 entries: 0 domains, 1 IPs/CIDRs, 0 ports")


def test_list_kind_port_with_a_rule_and_without_bundled(seed_path: Path) -> None:
    res = runner.invoke(app, ["ioc", "list", "--rule", str(seed_path), "--kind", "port", "--no-bundled", "--json"])
    assert res.exit_code == 0, res.output
    entries = json.loads(res.stdout)["entries"]
    assert [e["value"] for e in entries] == [3333, 4444, 14444]
    assert {e["source"] for e in entries} == {f"rule:{load_rule(seed_path).id}"}


def test_list_domains_counts_the_bundled_list() -> None:
    res = runner.invoke(app, ["ioc", "list", "--kind", "domain", "--no-bundled"])
    assert res.exit_code == 0, res.output
    assert "4 entries: 4 domains" in res.stdout
    res = runner.invoke(app, ["ioc", "list", "--kind", "domain", "--json"])
    n = len(bundled().of_kind("domain"))
    assert json.loads(res.stdout)["counts"]["entries"]["domain"] == n + 4


def test_check_reports_indicator_and_source_and_exits_zero_on_any_match(tmp_path: Path) -> None:
    f = _ioc_file(tmp_path)
    res = runner.invoke(
        app, ["ioc", "check", "xmr.nanopool.org", "notnanopool.org", "203.0.113.9", "pool.evil-pool.example:7777",
              "--ioc", str(f)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert (
        lines[0].startswith("MATCH") and "xmr.nanopool.org" in lines[0] and "bundled:crypto_mining_domains" in lines[0]
    )
    assert lines[1] == "no match  notnanopool.org"
    assert "cidr 203.0.113.0/24" in lines[2] and f"file:{f}:3" in lines[2]
    assert "domain evil-pool.example" in lines[3] and f"file:{f}:2" in lines[3]
    assert "port 7777" in lines[4] and f"file:{f}:4" in lines[4]


def test_check_exits_one_when_nothing_matches() -> None:
    res = runner.invoke(app, ["ioc", "check", "example.com", "192.0.2.1", "nanopool.org.evil.com"])
    assert res.exit_code == 1, res.output
    assert res.stdout.count("no match") == 3


def test_check_json(seed_path: Path) -> None:
    res = runner.invoke(
        app, ["ioc", "check", "--json", "--rule", str(seed_path), "--no-bundled", "eu1.ethermine.org:4444"]
    )
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    rule_id = load_rule(seed_path).id
    assert obj["match"] is True
    assert [(h["kind"], h["indicator"], h["source"]) for h in obj["hits"]] == [
        ("domain", "ethermine.org", f"rule:{rule_id}"),
        ("port", "4444", f"rule:{rule_id}"),
    ]


def test_check_help_documents_exit_status() -> None:
    res = runner.invoke(app, ["ioc", "check", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "0 if any value matched, 1 if none did" in text


def test_bad_ioc_file_exits_two_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("ok.example\n99999\n", encoding="utf-8")
    for cmd in (["ioc", "list"], ["ioc", "check", "nanopool.org"]):
        res = runner.invoke(app, [*cmd, "--ioc", str(bad)])
        assert res.exit_code == 2
        assert f"{bad}:2: port 99999 is outside 1-65535" in res.stderr
