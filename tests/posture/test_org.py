"""``posture --org`` on a moto organization of three accounts, moto's IAM enforcement on: the management account
and a member whose role allows the checks are reported; a member whose role allows nothing fails, with the reason,
and the others still run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from respond_env import REGION, in_account_assumed
from typer.testing import CliRunner

from minerwatch.aws.org import EXIT_ACCOUNT_FAILED, OrgOptions, fan_out, list_accounts
from minerwatch.aws.session import Aws
from minerwatch.cli.all_commands import app
from minerwatch.errors import MinerWatchError

runner = CliRunner()
def test_posture_org_reports_two_and_fails_the_denied_one(org: dict[str, str], tmp_path: Path) -> None:
    args = ["posture", "--org", "--regions", "us-east-1,us-west-2", "--checks", "admin-ports,imdsv2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_ACCOUNT_FAILED, result.output
    doc = json.loads(result.stdout)
    by_id = {a["account"]: a for a in doc["accounts"]}
    assert set(by_id) == {"123456789012", org["good"], org["denied"]}, doc
    assert by_id["123456789012"]["status"] == "ok" and by_id["123456789012"]["role_arn"] is None
    good = by_id[org["good"]]
    assert good["status"] == "ok"
    assert good["role_arn"] == f"arn:aws:iam::{org['good']}:role/OrganizationAccountAccessRole"
    assert good["result"]["account"] == org["good"]  # the checks really ran in that account
    failed = [r["resource"] for r in good["result"]["results"] if r["status"] != "pass"]
    assert failed == [org["open_sg"]]  # found in that account, and only there
    mgmt = by_id["123456789012"]["result"]["results"]
    assert mgmt and all(r["status"] == "pass" for r in mgmt)
    denied = by_id[org["denied"]]
    assert denied["status"] == "failed" and denied["result"] is None
    assert denied["code"] == "AccessDenied" and "not authorized" in denied["reason"]

    table = runner.invoke(app, args[:-1])
    assert table.exit_code == EXIT_ACCOUNT_FAILED
    assert "2 account(s) reported, 1 failed" in table.output
    assert "AccessDenied" in table.output


def test_accounts_and_exclude(org: dict[str, str]) -> None:
    base = Aws(region=REGION)
    assert [a.id for a in list_accounts(base, OrgOptions(exclude=[org["denied"]]))] == sorted(
        ["123456789012", org["good"]]
    )
    only = OrgOptions(accounts=[org["good"]], session_name="ir-2024-001")
    results = fan_out(base, list_accounts(base, only), only, lambda aws, _a: aws.identity()["Arn"])
    assert [r.status for r in results] == ["ok"]
    assert results[0].value.endswith(":assumed-role/OrganizationAccountAccessRole/ir-2024-001")
    with pytest.raises(MinerWatchError, match="not an active account"):
        list_accounts(base, OrgOptions(accounts=["999999999999"]))
    only_denied = OrgOptions(accounts=[org["denied"]], exclude=[])
    result = runner.invoke(app, ["posture", "--org", "--accounts", org["denied"], "--regions", "us-east-1"])
    assert result.exit_code == EXIT_ACCOUNT_FAILED and only_denied.accounts == [org["denied"]]


def test_respond_org_acts_in_the_alerts_account(
    org: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from respond_env import detect_alert, launch

    admin = (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    member = in_account_assumed(org["good"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", member["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", member["SecretAccessKey"])
    monkeypatch.setenv("AWS_SESSION_TOKEN", member["SessionToken"])
    world = launch(tmp_path)  # in the member account
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", admin[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", admin[1])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    state = tmp_path / "state.db"
    alert_id = detect_alert(tmp_path, world["instance_id"], state, account=org["good"])
    base = ["respond", alert_id, "--state", str(state), "--json"]
    here = runner.invoke(app, base)
    there = runner.invoke(app, [*base, "--org", "--session-name", "ir-42"])
    assert there.exit_code == 0, there.output
    assert world["web"] in there.stdout  # the instance's security group, read in the member account
    assert world["web"] not in here.stdout  # the management account has no such instance

