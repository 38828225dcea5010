"""Security Hub output: alerts → ASFF findings via BatchImportFindings (moto's server), workflow status via
BatchUpdateFindings (botocore's Stubber, which checks requests and responses against the service model)."""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from typer.testing import CliRunner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.cli.notify_cmds import synthetic_alert
from minerwatch.notify.config import NotifyConfig, SecurityHubDestination
from minerwatch.notify.outbox import Dispatcher, enqueue, list_rows, open_outbox
from minerwatch.notify.securityhub import SecurityHubSender, to_asff, validate

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "respond"))

from respond_env import ACCOUNT, REGION, CallLog, aws, calls, moto_url, policy_actions  # noqa: E402, F401

from .conftest import run_detect  # noqa: E402

runner = CliRunner()
NETWORK = Path(__file__).resolve().parents[1] / "data" / "asff" / "guardduty-network-crypto.jsonl"
PRODUCT = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default"
NOW = datetime(2024, 3, 11, 3, 0, tzinfo=UTC)


def _hub() -> Any:
    return boto3.client("securityhub", region_name=REGION)


def _alerts(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        rec = synthetic_alert(NOW)
        rec["alert_id"] = f"mw-{i:020x}"
        rec["key"] = {"accountid": "111122223333", "instance_id": f"i-{i:017x}"}
        out.append(rec)
    return out


def _config(**kw: Any) -> NotifyConfig:
    return NotifyConfig(destinations=[SecurityHubDestination(name="securityhub", type="securityhub", **kw)])


def test_alert_becomes_a_valid_asff_finding() -> None:
    rec = _alerts(1)[0]
    rec["fields"].update({"mining_pool_ip": "198.51.100.77", "mining_port": 3333, "title": "x\n[bold]y</b>"})
    finding = to_asff(rec, product_arn=PRODUCT, caller_account=ACCOUNT, region=REGION, now=NOW)
    assert validate(finding) is None
    assert finding["Id"] == rec["alert_id"] and finding["AwsAccountId"] == "111122223333"
    assert finding["Resources"][0] == {
        "Type": "AwsEc2Instance", "Id": "arn:aws:ec2:us-east-1:111122223333:instance/i-00000000000000000",
        "Partition": "aws", "Region": "us-east-1",
    }
    assert finding["Network"] == {"DestinationIpV4": "198.51.100.77", "DestinationPort": 3333, "Direction": "OUT"}
    assert finding["Severity"]["Label"] == "CRITICAL" and "TTPs/Impact/T1496-Resource Hijacking" in finding["Types"]
    assert "\n" not in finding["Title"] + finding["Description"]
    # the validator is botocore's: a finding it refuses is reported, not sent
    broken = copy.deepcopy(finding)
    del broken["Resources"]
    assert "Resources" in (validate(broken) or "")
    broken = copy.deepcopy(finding)
    broken["Network"]["DestinationPort"] = "3333"
    assert "DestinationPort" in (validate(broken) or "")


@pytest.mark.usefixtures("aws")
def test_detect_to_securityhub_imports_once_per_alert(tmp_path: Path) -> None:
    args = ["detect", str(NETWORK), "--state", str(tmp_path / "s.db"), "--to-securityhub"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "notifications: 1 sent" in first.output
    findings = _hub().get_findings()["Findings"]
    assert len(findings) == 1
    f = findings[0]
    assert f["ProductArn"] == PRODUCT and f["AwsAccountId"] == "111122223333"
    assert f["Resources"][0]["Id"] == "arn:aws:ec2:us-east-1:111122223333:instance/i-0a1b2c3d4e5f67890"
    assert f["Network"]["DestinationIpV4"] == "198.51.100.77" and f["Workflow"]["Status"] == "NEW"
    alert = StateStore(tmp_path / "s.db").list_alerts()[0]
    assert f["Id"] == alert["alert_id"]
    # a rerun changes no alert: nothing is queued, nothing sent, still one finding
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "notifications: 0 sent" in again.output
    assert len(_hub().get_findings()["Findings"]) == 1


@pytest.mark.usefixtures("aws")
def test_batches_of_at_most_100(tmp_path: Path) -> None:
    cfg = _config()
    store = StateStore(tmp_path / "s.db")
    enqueue(store, _alerts(250), cfg)
    store.close()
    sizes: list[int] = []
    with Dispatcher(tmp_path / "s.db", cfg, batch=1000) as dispatcher:
        sender = dispatcher.lanes["securityhub"].sender
        sender.hub().meta.events.register(
            "provide-client-params.securityhub.BatchImportFindings",
            lambda params, **_: sizes.append(len(params["Findings"])),
        )
        stats = dispatcher.deliver_due()
    assert stats.delivered == 250 and sizes == [100, 100, 50]
    ids = set()
    token = None
    while True:
        page = _hub().get_findings(**({"NextToken": token} if token else {}))
        ids |= {f["Id"] for f in page["Findings"]}
        token = page.get("NextToken")
        if not token:
            break
    assert ids == {a["alert_id"] for a in _alerts(250)}


def _stubbed_dispatcher(state: Path, cfg: NotifyConfig) -> tuple[Dispatcher, Stubber]:
    dispatcher = Dispatcher(state, cfg)
    sender = SecurityHubSender(cfg.destinations[0], clock=lambda: NOW)  # type: ignore[arg-type]
    client = boto3.client(
        "securityhub", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:9",  # never reached: the Stubber answers
    )
    sender._client = client
    sender._product = (PRODUCT, ACCOUNT)
    dispatcher.lanes["securityhub"]._sender = sender
    return dispatcher, Stubber(client)


def test_status_changes_set_the_workflow_status(tmp_path: Path) -> None:
    cfg = _config()
    run_detect(tmp_path / "s.db", cfg, [NETWORK])
    store = StateStore(tmp_path / "s.db")
    alert = store.list_alerts()[0]
    dispatcher, stub = _stubbed_dispatcher(tmp_path / "s.db", cfg)
    ok = {"FailedCount": 0, "SuccessCount": 1, "FailedFindings": []}
    stub.add_response("batch_import_findings", ok, {"Findings": ANY})
    ident = {"Id": alert["alert_id"], "ProductArn": PRODUCT}
    for workflow in ("NOTIFIED", "RESOLVED"):  # acknowledged, then closed
        stub.add_response("batch_import_findings", ok, {"Findings": ANY})
        stub.add_response(
            "batch_update_findings",
            {"ProcessedFindings": [ident], "UnprocessedFindings": []},
            {"FindingIdentifiers": [ident], "Workflow": {"Status": workflow}},
        )
    with stub, dispatcher:
        assert dispatcher.deliver_due().delivered == 1
        for status in ("acknowledged", "closed"):
            store.begin()
            record = store.set_status(alert["alert_id"], status)
            enqueue(store, [record], cfg)
            store.commit()
            assert dispatcher.deliver_due().delivered == 1
        stub.assert_no_pending_responses()
    store.close()
    db = open_outbox(tmp_path / "s.db")
    events = [(r["event"], r["status"]) for r in (x.to_json() for x in list_rows(db))]
    db.close()
    assert events == [("trigger", "delivered"), ("acknowledge", "delivered"), ("resolve", "delivered")]


def test_failed_findings_fail_only_their_rows_and_throttling_is_retried(tmp_path: Path) -> None:
    cfg = _config()
    alerts = _alerts(3)
    store = StateStore(tmp_path / "s.db")
    enqueue(store, alerts, cfg)
    store.close()
    dispatcher, stub = _stubbed_dispatcher(tmp_path / "s.db", cfg)
    bad = {"Id": alerts[1]["alert_id"], "ErrorCode": "InvalidInput", "ErrorMessage": "Invalid ProductFields"}
    stub.add_response(
        "batch_import_findings", {"FailedCount": 1, "SuccessCount": 2, "FailedFindings": [bad]}, {"Findings": ANY}
    )
    with stub, dispatcher:
        stats = dispatcher.deliver_due()
    assert (stats.delivered, stats.parked, stats.retrying) == (2, 1, 0)
    assert "InvalidInput" in stats.destinations["securityhub"].errors[0]

    store = StateStore(tmp_path / "t.db")
    enqueue(store, alerts, cfg)
    store.close()
    dispatcher, stub = _stubbed_dispatcher(tmp_path / "t.db", cfg)
    stub.add_client_error("batch_import_findings", "ThrottlingException", "Rate exceeded", 400)
    with stub, dispatcher:
        stats = dispatcher.deliver_due()
    assert (stats.delivered, stats.parked, stats.retrying) == (0, 0, 3)


@pytest.mark.usefixtures("aws")
def test_printed_iam_policy_allows_every_call_made(tmp_path: Path, calls: CallLog) -> None:  # noqa: F811
    args = ["detect", str(NETWORK), "--state", str(tmp_path / "s.db"), "--to-securityhub"]
    assert runner.invoke(app, args).exit_code == 0
    made = calls.actions()
    assert made and made <= policy_actions("securityhub"), made - policy_actions("securityhub")
