"""Real alerts for the report tests: the compromise scenario generated, detected and enriched through the CLI;
and an alert built from a hostile finding (markup in its title, description, tags and type) enriched with the
scenario's logs, with hostile text in its audit log too."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.generate.scenario import write_scenario

runner = CliRunner()

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
MD_LINK = "[click me](javascript:alert(1))"
MD_IMAGE = "![pixel](http://evil.example/p.png)"
AUTOLINK = "<http://evil.example/x>"
HOSTILE_TITLE = f"Crypto miner {SCRIPT} found {IMG}"
HOSTILE_DESCRIPTION = f"{IMG} then {SCRIPT}; {MD_LINK} {MD_IMAGE} {AUTOLINK} | cell | `tick` ``two``"
HOSTILE_TAGS = [{"key": SCRIPT, "value": IMG}, {"key": "Name", "value": f"{MD_LINK} | {IMG}"}]
HOSTILE_TYPE = f"CryptoCurrency:EC2/{SCRIPT}"
HOSTILE_ACTOR = f"{SCRIPT}{IMG}"


@dataclass
class Case:
    state: Path
    alert_id: str
    scenario: Path
    instance_id: str

    def store(self) -> StateStore:
        return StateStore(self.state)


def invoke(*args: str) -> Any:
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res


def enrich_args(scenario: Path, alert_id: str, state: Path, findings: list[Path]) -> list[str]:
    args = ["enrich", alert_id, "--state", str(state), "--cloudtrail", str(scenario / "cloudtrail")]
    args += ["--flow", str(scenario / "vpcflow"), "--dns", str(scenario / "route53")]
    args += ["--metrics", str(scenario / "metrics" / "cpu.jsonl")]
    for f in findings:
        args += ["--findings", str(f)]
    return args


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report-scenario") / "scenario"
    manifest = write_scenario(out, seed=1, noise=1.0)
    return out, manifest


def _first_alert(state: Path, instance_id: str) -> str:
    store = StateStore(state)
    try:
        alerts = [a for a in store.list_alerts() if a["key"].get("instance_id") == instance_id]
    finally:
        store.close()
    assert alerts, f"no alert for {instance_id}"
    return str(alerts[0]["alert_id"])


@pytest.fixture(scope="session")
def enriched(tmp_path_factory: pytest.TempPathFactory, scenario: tuple[Path, dict[str, Any]]) -> Case:
    """The first alert of the scenario's first compromised instance, enriched with every source."""
    root, manifest = scenario
    state = tmp_path_factory.mktemp("report-state") / "state.db"
    invoke("detect", str(root / "guardduty"), "--state", str(state))
    instance = manifest["compromised_instances"][0]["instance_id"]
    alert_id = _first_alert(state, instance)
    invoke(*enrich_args(root, alert_id, state, [root / "guardduty"]))
    return Case(state, alert_id, root, instance)


def _crypto_finding(scenario: Path, instance_id: str) -> dict[str, Any]:
    for path in sorted((scenario / "guardduty").rglob("*.gz")):
        with gzip.open(path, "rb") as fh:
            for line in fh:
                f = orjson.loads(line)
                if f.get("type", "").startswith("CryptoCurrency:") and instance_id in line.decode():
                    return dict(f)
    raise AssertionError(f"no CryptoCurrency finding for {instance_id} in the scenario")


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory, scenario: tuple[Path, dict[str, Any]]) -> Case:
    """An alert from two findings whose title, description, tags (and, for one, type) carry markup, enriched
    with the scenario's logs and those findings; its audit log holds an entry with hostile actor and message."""
    root, manifest = scenario
    instance = manifest["compromised_instances"][0]["instance_id"]
    base = _crypto_finding(root, instance)
    findings = []
    for n, ftype in enumerate(("CryptoCurrency:EC2/BitcoinTool.B", HOSTILE_TYPE)):
        f = json.loads(json.dumps(base))
        f["id"] = f"hostile{n}0000000000000000000000000"[:32]
        f["type"] = ftype
        f["title"] = HOSTILE_TITLE
        f["description"] = HOSTILE_DESCRIPTION
        f["resource"]["instanceDetails"]["tags"] = HOSTILE_TAGS
        findings.append(f)
    folder = tmp_path_factory.mktemp("report-hostile")
    finding_file = folder / "hostile-findings.jsonl"
    finding_file.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    state = folder / "state.db"
    invoke("detect", str(finding_file), "--state", str(state))
    alert_id = _first_alert(state, instance)
    invoke(*enrich_args(root, alert_id, state, [finding_file, root / "guardduty"]))
    store = StateStore(state)
    try:
        store.audit(
            "ec2:ModifyInstanceAttribute",
            alert_id=alert_id,
            actor=HOSTILE_ACTOR,
            request={
                "service": "ec2",
                "operation": "ModifyInstanceAttribute",
                "region": "us-east-1",
                "params": {"Groups": [SCRIPT]},
            },
            aws_request_id=IMG,
            result={"ok": False, "error": "UnauthorizedOperation", "message": f"denied {SCRIPT} {IMG}"},
        )
    finally:
        store.close()
    return Case(state, alert_id, root, instance)
