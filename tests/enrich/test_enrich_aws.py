"""``--cloudwatch`` and ``--cost-explorer`` against moto's server on 127.0.0.1, and their failures isolated."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.enrich.run import EnrichSources, enrich_alert
from minerwatch.generate.scenario import write_scenario

runner = CliRunner()
INSTANCE = "i-0b4cbf673f63669f3"




@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("aws") / "scenario"
    return {"dir": out, "manifest": write_scenario(out, seed=1, noise=0.0)}


def _alert(scenario: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    state = tmp_path / "state.db"
    res = runner.invoke(app, ["detect", str(scenario["dir"] / "guardduty"), "--state", str(state)])
    assert res.exit_code == 0, res.output
    return state, next(a for a in StateStore(state).list_alerts() if a["key"]["instance_id"] == INSTANCE)


def _put_cpu(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """The scenario's datapoints of the instance, put into CloudWatch."""
    rows = [json.loads(x) for x in (scenario["dir"] / "metrics" / "cpu.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r["instance_id"] == INSTANCE]
    cw = boto3.client("cloudwatch", region_name="us-east-1")
    data = [
        {
            "MetricName": "CPUUtilization",
            "Dimensions": [{"Name": "InstanceId", "Value": INSTANCE}],
            "Timestamp": datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).astimezone(UTC),
            # One sample per period carrying the period's average and maximum, as CloudWatch reports them.
            "StatisticValues": {
                "SampleCount": 1,
                "Sum": r["average"],
                "Minimum": r["average"],
                "Maximum": r["maximum"],
            },
            "Unit": "Percent",
        }
        for r in mine
    ]
    for i in range(0, len(data), 500):
        cw.put_metric_data(Namespace="AWS/EC2", MetricData=data[i : i + 500])
    return mine


def test_cpu_from_cloudwatch_matches_the_metrics_file(aws: str, scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    mine = _put_cpu(scenario)
    trail = ["--cloudtrail", str(scenario["dir"] / "cloudtrail")]
    res = runner.invoke(app, ["enrich", alert["alert_id"], *trail, "--cloudwatch", "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    cpu = json.loads(res.stdout)["sections"]["cpu"]
    assert cpu["status"] == "ok", cpu
    assert cpu["source"]["option"] == "--cloudwatch" and cpu["source"]["api_calls"] >= 1
    (summary,) = cpu["summary"]["instances"]
    assert summary["flagged"] is True and summary["datapoints"] == len(mine)
    assert all(e["source"].startswith("cloudwatch:us-east-1:AWS/EC2/CPUUtilization/") for e in cpu["evidence"])
    metrics = ["--metrics", str(scenario["dir"] / "metrics" / "cpu.jsonl")]
    res = runner.invoke(app, ["enrich", alert["alert_id"], *trail, *metrics, "--state", str(state), "--json"])
    from_file = json.loads(res.stdout)["sections"]["cpu"]["summary"]["instances"][0]
    assert summary["sustained_intervals"] == from_file["sustained_intervals"]


def test_cost_explorer_adds_billed_cost_by_instance_type(aws: str, scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    result = {
        "results": [
            {
                "ResultsByTime": [
                    {
                        "TimePeriod": {"Start": "2025-03-10", "End": "2025-03-11"},
                        "Total": {},
                        "Groups": [
                            {
                                "Keys": ["p3.8xlarge"],
                                "Metrics": {
                                    "UnblendedCost": {"Amount": "367.2", "Unit": "USD"},
                                    "UsageQuantity": {"Amount": "30", "Unit": "Hrs"},
                                },
                            },
                            {
                                "Keys": ["t3.micro"],
                                "Metrics": {
                                    "UnblendedCost": {"Amount": "0.25", "Unit": "USD"},
                                    "UsageQuantity": {"Amount": "24", "Unit": "Hrs"},
                                },
                            },
                        ],
                        "Estimated": True,
                    }
                ],
                "DimensionValueAttributes": [],
            }
        ]
    }
    request = urllib.request.Request(
        f"{aws}/moto-api/static/ce/cost-and-usage-results",
        data=json.dumps(result).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request) as resp:
        assert resp.status == 201
    trail = ["--cloudtrail", str(scenario["dir"] / "cloudtrail")]
    res = runner.invoke(app, ["enrich", alert["alert_id"], *trail, "--cost-explorer", "--state", str(state), "--json"])
    assert res.exit_code == 0, res.output
    ce = json.loads(res.stdout)["sections"]["cost"]["summary"]["cost_explorer"]
    assert ce["status"] == "ok", ce
    assert ce["by_instance_type"][0] == {
        "instance_type": "p3.8xlarge",
        "cost": 367.2,
        "usage_hours": 30.0,
        "alert_instance_type": True,
    }
    assert ce["alert_instance_types_cost"] == 367.2
    assert ce["request"]["GroupBy"] == [{"Type": "DIMENSION", "Key": "INSTANCE_TYPE"}]
    # The window is the alert's ± 24 h: its days, End exclusive.
    assert ce["request"]["TimePeriod"] == {"Start": "2025-03-09", "End": "2025-03-12"}
    filters = json.dumps(ce["request"]["Filter"])
    assert "LINKED_ACCOUNT" in filters and scenario["manifest"]["account_id"] in filters


class _FailingSession:
    """A session whose clients fail the way an unreachable or unauthorised API does."""

    def client(self, name: str, region_name: str | None = None) -> Any:
        raise RuntimeError(f"no route to {name} in {region_name}")


def test_failing_aws_calls_degrade_their_parts_only(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    store = StateStore(state)
    d = scenario["dir"]
    result = enrich_alert(
        store,
        alert["alert_id"],
        EnrichSources(cloudtrail=[str(d / "cloudtrail")], flow=[str(d / "vpcflow")], findings=[str(d / "guardduty")]),
        cloudwatch=True,
        cost_explorer=True,
        session=_FailingSession(),
    )
    cpu = result.sections["cpu"]
    assert cpu["status"] == "unavailable"
    assert cpu["reason"] == "enricher failed: RuntimeError: no route to cloudwatch in us-east-1"
    cost = result.sections["cost"]
    assert cost["status"] == "ok" and cost["summary"]["total_usd"] > 0
    assert cost["summary"]["cost_explorer"] == {
        "status": "unavailable",
        "reason": "RuntimeError: no route to ce in us-east-1",
    }
    assert result.sections["network"]["status"] == "ok"
    assert store.get_alert(alert["alert_id"]) == alert
