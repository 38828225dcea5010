"""A missing, corrupt or failing source degrades only the sections built from it; the alert is never lost."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import minerwatch.enrich.run as run_module
from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.enrich.run import EnrichSources, enrich_alert
from minerwatch.generate.scenario import write_scenario

runner = CliRunner()
INSTANCE = "i-0b4cbf673f63669f3"  # seed 1: a us-east-1 miner whose user data is replaced
ALL = ("launch_context", "principal_activity", "persistence", "network", "dns", "findings", "cpu", "cost")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("degraded") / "scenario"
    manifest = write_scenario(out, seed=1, noise=0.0)
    assert INSTANCE in {i["instance_id"] for i in manifest["compromised_instances"]}
    return {"dir": out, "manifest": manifest}


def _alert(scenario: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A fresh state store with the scenario's alerts, and the instance's first alert."""
    state = tmp_path / "state.db"
    res = runner.invoke(app, ["detect", str(scenario["dir"] / "guardduty"), "--state", str(state)])
    assert res.exit_code == 0, res.output
    alerts = [a for a in StateStore(state).list_alerts() if a["key"]["instance_id"] == INSTANCE]
    return state, alerts[0]


def _args(scenario: dict[str, Any], *, skip: str | None = None, **override: str) -> list[str]:
    d = scenario["dir"]
    sources = {
        "--cloudtrail": str(d / "cloudtrail"),
        "--flow": str(d / "vpcflow"),
        "--dns": str(d / "route53"),
        "--findings": str(d / "guardduty"),
        "--metrics": str(d / "metrics" / "cpu.jsonl"),
    }
    sources.update({f"--{k}": v for k, v in override.items()})
    args: list[str] = []
    for option, path in sources.items():
        if option != skip:
            args += [option, path]
    return args


def _enrich(alert: dict[str, Any], state: Path, args: list[str]) -> dict[str, Any]:
    res = runner.invoke(app, ["enrich", alert["alert_id"], *args, "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["sections"]


def _show(alert: dict[str, Any], state: Path) -> dict[str, Any]:
    res = runner.invoke(app, ["alerts", "show", alert["alert_id"], "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_missing_flow_makes_only_network_unavailable(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    sections = _enrich(alert, state, _args(scenario, skip="--flow"))
    assert sections["network"]["status"] == "unavailable"
    assert sections["network"]["reason"] == "no --flow given"
    for name in ALL:
        if name != "network":
            assert sections[name]["status"] == "ok", (name, sections[name].get("reason"))
    cost = sections["cost"]
    assert cost["summary"]["evidence_sections"]["network"] == "unavailable"
    assert any("network" in w for w in cost["warnings"])
    shown = _show(alert, state)
    assert {k: v for k, v in shown.items() if k not in ("enrichment", "timeline")} == alert
    assert not any(e["section"] == "network" for e in shown["timeline"])


def test_a_flow_path_that_does_not_exist_says_so(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    missing = tmp_path / "nowhere"
    sections = _enrich(alert, state, _args(scenario, flow=str(missing)))
    assert sections["network"]["status"] == "unavailable"
    assert str(missing) in sections["network"]["reason"]
    assert all(sections[n]["status"] == "ok" for n in ALL if n != "network")


def _corrupt_flows(src: Path, dst: Path) -> tuple[Path, Path]:
    shutil.copytree(src, dst)
    files = sorted(p for p in dst.rglob("*.log.gz") if "us-east-1" in str(p))
    garbage, truncated = files[2], files[-3]
    with open(garbage, "ab") as fh:  # a second gzip member of junk lines
        fh.write(gzip.compress(b"this is not a flow record\n5 1 2 3\n\x00\xff\xfe binary junk\n"))
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return garbage, truncated


def test_corrupt_flow_files_are_counted_in_the_network_section_only(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    clean = _enrich(alert, state, _args(scenario))
    garbage, truncated = _corrupt_flows(scenario["dir"] / "vpcflow", tmp_path / "vpcflow")
    rejects = tmp_path / "rejects.jsonl"
    res = runner.invoke(
        app,
        ["enrich", alert["alert_id"], *_args(scenario, flow=str(tmp_path / "vpcflow")), "--state", str(state),
         "--rejects", str(rejects), "--json"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    sections = json.loads(res.stdout)["sections"]
    network = sections["network"]
    assert network["status"] == "ok"  # the intact files still show the pool flows
    assert network["source"]["rejected"] >= 4
    assert network["source"]["rejects_file"] == str(rejects)
    assert any("truncated" in reason or "gzip" in reason for reason in network["source"]["reject_reasons"])
    assert network["warnings"] and "--flow" in network["warnings"][0]
    lines = [json.loads(x) for x in rejects.read_text().splitlines()]
    assert len(lines) == network["source"]["rejected"]
    assert {x["option"] for x in lines} == {"--flow"}
    assert {x["file"] for x in lines} == {str(garbage), str(truncated)}
    for name in ALL:
        if name in ("network", "cost", "findings"):
            continue
        assert sections[name] == clean[name], name
    assert sections["findings"]["status"] == "ok" and "warnings" not in sections["findings"]
    assert "cannot" not in json.dumps(sections["cpu"])
    pool = next(i for i in scenario["manifest"]["compromised_instances"] if i["instance_id"] == INSTANCE)["mining"]
    assert pool["pool"]["ip"] in {p["peer"] for p in network["summary"]["peers"]}
    assert network["summary"]["accept_records"] < clean["network"]["summary"]["accept_records"]


def test_a_flow_source_of_nothing_but_garbage_is_unavailable(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"version account-id\nnot a record at all\n\xff\xfe\n")
    sections = _enrich(alert, state, _args(scenario, flow=str(junk)))
    assert sections["network"]["status"] == "unavailable"
    assert sections["network"]["reason"].startswith("every record of --flow was rejected")
    assert sections["network"]["source"]["rejected"] == 2
    assert all(sections[n]["status"] == "ok" for n in ALL if n != "network")


def test_corrupt_cloudtrail_and_metrics_warn_in_their_own_sections(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    trail = tmp_path / "cloudtrail"
    shutil.copytree(scenario["dir"] / "cloudtrail", trail)
    (trail / "broken.json").write_text('{"Records": [{"eventTime": "not a time"}, ')
    metrics = tmp_path / "cpu.jsonl"
    good = (scenario["dir"] / "metrics" / "cpu.jsonl").read_text().splitlines()
    metrics.write_text("\n".join([good[0], "{broken", *good[1:], '{"instance_id": 5}']) + "\n")
    sections = _enrich(alert, state, _args(scenario, cloudtrail=str(trail), metrics=str(metrics)))
    for name in ("launch_context", "principal_activity", "persistence"):
        assert sections[name]["status"] == "ok"
        assert sections[name]["source"]["rejected"] >= 1
        assert any("--cloudtrail" in w for w in sections[name]["warnings"])
    assert sections["cpu"]["status"] == "ok" and sections["cpu"]["summary"]["flagged"]
    assert sections["cpu"]["source"]["rejected"] == 2
    assert any("--metrics" in w for w in sections["cpu"]["warnings"])
    for name in ("network", "dns", "findings"):
        assert sections[name]["status"] == "ok" and "warnings" not in sections[name]


def test_a_failing_enricher_degrades_its_section_only(
    scenario: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, alert = _alert(scenario, tmp_path)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(run_module, "network_section", boom)
    d = scenario["dir"]
    store = StateStore(state)
    result = enrich_alert(
        store,
        alert["alert_id"],
        EnrichSources(
            cloudtrail=[str(d / "cloudtrail")],
            flow=[str(d / "vpcflow")],
            dns=[str(d / "route53")],
            findings=[str(d / "guardduty")],
            metrics=str(d / "metrics" / "cpu.jsonl"),
        ),
    )
    assert result.sections["network"]["status"] == "unavailable"
    assert result.sections["network"]["reason"] == "enricher failed: RuntimeError: boom"
    assert all(result.statuses()[n] == "ok" for n in ALL if n != "network")
    assert store.get_alert(alert["alert_id"]) == alert
    assert store.enrichments(alert["alert_id"])["network"]["reason"] == "enricher failed: RuntimeError: boom"


def test_no_sources_at_all_keeps_the_alert_and_explains_each_section(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    sections = _enrich(alert, state, [])
    reasons = {n: sections[n].get("reason") for n in ALL}
    assert reasons["launch_context"] == "no --cloudtrail given"
    assert reasons["network"] == "no --flow given" and reasons["dns"] == "no --dns given"
    assert reasons["findings"] == "no --findings given"
    assert reasons["cpu"] == "no --metrics or --cloudwatch given"
    assert sections["cost"]["status"] == "empty"
    shown = _show(alert, state)
    assert shown["alert_id"] == alert["alert_id"] and shown["timeline"][0]["section"] == "alert"


def test_rerunning_replaces_the_sections(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    first = _enrich(alert, state, _args(scenario))
    again = _enrich(alert, state, _args(scenario))
    assert again == first
    _enrich(alert, state, _args(scenario, skip="--flow") + ["--refresh"])  # replaced on purpose
    shown = _show(alert, state)
    assert shown["enrichment"]["network"]["status"] == "unavailable"
    assert shown["enrichment"]["dns"] == first["dns"]


def _rerun(alert: dict[str, Any], state: Path, args: list[str]) -> Any:
    return runner.invoke(app, ["enrich", alert["alert_id"], *args, "--state", str(state), "--json"])


@pytest.mark.parametrize("case", ["not given", "missing path", "nothing readable"])
def test_a_rerun_that_cannot_read_a_source_keeps_the_stored_section_stale(
    scenario: dict[str, Any], tmp_path: Path, case: str
) -> None:
    state, alert = _alert(scenario, tmp_path)
    first = _enrich(alert, state, _args(scenario))
    assert first["network"]["status"] == "ok"
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"version account-id\nnot a record at all\n\xff\xfe\n")
    args = {
        "not given": _args(scenario, skip="--flow"),
        "missing path": _args(scenario, flow=str(tmp_path / "nowhere")),
        "nothing readable": _args(scenario, flow=str(junk)),
    }[case]
    res = _rerun(alert, state, args)
    assert res.exit_code == 1, res.output
    out = json.loads(res.stdout)
    kept = out["sections"]["network"]
    reason = kept["stale"]["reason"]
    assert {k: v for k, v in kept.items() if k != "stale"} == first["network"]
    assert out["stale"] == {"network": reason}
    expected = {"not given": "no --flow given", "missing path": str(tmp_path / "nowhere"),
                "nothing readable": "every record of --flow was rejected"}[case]  # fmt: skip
    assert expected in reason
    assert f"stale: network kept from an earlier run (not refreshed since {kept['stale']['since']})" in res.stderr
    assert "--refresh" in res.stderr
    # What is stored and shown is the kept section, marked stale; the others were refreshed.
    shown = _show(alert, state)
    assert shown["enrichment"]["network"] == kept
    assert all("stale" not in shown["enrichment"][n] for n in ALL if n != "network")
    assert any(e["section"] == "network" for e in shown["timeline"])
    text = runner.invoke(app, ["alerts", "show", alert["alert_id"], "--state", str(state)])
    assert f"network [ok, stale since {kept['stale']['since']}: {reason}]" in text.stdout

    # Stale again: the first time it could not be refreshed is kept; a run that reads it clears the mark.
    again = _rerun(alert, state, args)
    assert again.exit_code == 1
    assert json.loads(again.stdout)["sections"]["network"]["stale"]["since"] == kept["stale"]["since"]
    assert _enrich(alert, state, _args(scenario))["network"] == first["network"]
    assert "stale" not in _show(alert, state)["enrichment"]["network"]


def test_refresh_replaces_a_stored_section_by_an_unavailable_one(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    _enrich(alert, state, _args(scenario))
    res = _rerun(alert, state, [*_args(scenario, flow=str(tmp_path / "nowhere")), "--refresh"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["stale"] == {}
    network = _show(alert, state)["enrichment"]["network"]
    assert network["status"] == "unavailable" and "stale" not in network


def test_unknown_price_and_unknown_type_are_said(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    prices = tmp_path / "prices.csv"
    prices.write_text(
        "# as_of: 2030-01-01\n# source: a test\nregion,instance_type,usd_per_hour\nus-east-1,t3.micro,0.01\n"
    )
    sections = _enrich(alert, state, [*_args(scenario), "--prices", str(prices)])
    cost = sections["cost"]
    (entry,) = cost["summary"]["instances"]
    assert entry["cost_usd"] is None and entry["evidence_hours"] > 8
    assert entry["note"].startswith("no price for p3.8xlarge in us-east-1") and "2030-01-01" in entry["note"]
    assert cost["summary"]["total_usd"] is None and cost["status"] == "ok"
    assert "no estimate" in cost["headline"]
    # Only CPU datapoints (replacing the sections on purpose): the instance type is known from nothing.
    only_cpu = _enrich(alert, state, ["--metrics", str(scenario["dir"] / "metrics" / "cpu.jsonl"), "--refresh"])
    (entry,) = only_cpu["cost"]["summary"]["instances"]
    assert entry["instance_type"] is None and entry["note"].startswith("instance type unknown")
    assert entry["evidence_hours"] > 8


def test_type_from_findings_when_cloudtrail_is_missing(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    sections = _enrich(alert, state, _args(scenario, skip="--cloudtrail"))
    (entry,) = sections["cost"]["summary"]["instances"]
    assert entry["instance_type"] == "p3.8xlarge" and entry["instance_type_from"] == "GuardDuty finding"
    assert entry["cost_usd"] is not None
    assert sections["network"]["status"] == "ok"  # interfaces from the findings
    assert sections["launch_context"]["reason"] == "no --cloudtrail given"


def test_extra_ioc_file_is_used(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    iocs = tmp_path / "iocs.txt"
    iocs.write_text("198.51.100.0/24\n")
    sections = _enrich(alert, state, [*_args(scenario), "--ioc", str(iocs)])
    whys = {w for e in sections["network"]["evidence"] for w in e["why"]}
    assert any(w.startswith("IOC address 198.51.100.0/24 (file:") for w in whys)


def test_cli_errors(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    res = runner.invoke(app, ["enrich", "mw-nope", "--state", str(state)])
    assert res.exit_code == 1 and "no alert" in res.output
    res = runner.invoke(
        app, ["enrich", alert["alert_id"], "--metrics", "x.jsonl", "--cloudwatch", "--state", str(state)]
    )
    assert res.exit_code == 2 and "alternatives" in res.output
    res = runner.invoke(app, ["enrich", alert["alert_id"], "--window", "soon", "--state", str(state)])
    assert res.exit_code == 2
    assert StateStore(state).enrichments(alert["alert_id"]) == {}


def test_log_text_is_shown_as_data_not_markup(scenario: dict[str, Any], tmp_path: Path) -> None:
    """A user agent is attacker-controlled: rich markup in it must print literally."""
    state, alert = _alert(scenario, tmp_path)
    trail = tmp_path / "cloudtrail"
    shutil.copytree(scenario["dir"] / "cloudtrail", trail)
    launch_id = next(
        i["launch_event_id"] for i in scenario["manifest"]["compromised_instances"] if i["instance_id"] == INSTANCE
    )
    hostile = "[bold red]boto[/bold red] [link=http://evil.example]x[/link]"
    changed = 0
    for f in trail.rglob("*.json.gz"):
        doc = json.loads(gzip.decompress(f.read_bytes()))
        for record in doc["Records"]:
            if record["eventID"] == launch_id:
                record["userAgent"] = hostile
                changed += 1
        f.write_bytes(gzip.compress(json.dumps(doc).encode()))
    assert changed == 1
    res = runner.invoke(app, ["enrich", alert["alert_id"], "--cloudtrail", str(trail), "--state", str(state)])
    assert res.exit_code == 0, res.output
    squeezed = "".join(ch for ch in res.stdout if ch not in "│ \n")  # undo the table's cell wrapping
    assert hostile.replace(" ", "") in squeezed
    shown = runner.invoke(app, ["alerts", "show", alert["alert_id"], "--state", str(state)])
    assert hostile in shown.stdout
    data = _show(alert, state)
    assert data["enrichment"]["launch_context"]["summary"]["launches"][0]["user_agent"] == hostile
