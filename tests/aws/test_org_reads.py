"""``detect``, ``hunt`` and ``watch`` with ``--org`` on moto's organization of three accounts, IAM enforcement on:
the management account and the member `good` are read, the member `denied` (its role allows nothing) is reported
failed with AccessDenied, and the run goes on.

moto implements Organizations, STS, IAM, S3 and GuardDuty's detectors, not ListFindings/GetFindings: those two are
answered from the findings put in each account (:class:`FindingsApi`), on the clients the code under test makes
from each account's assumed-role credentials, with botocore validating the requests and the test validating the
responses against the service model (as botocore's Stubber does). moto also checks the SigV4 signature of a
body-less GuardDuty GET (ListDetectors) against a body made of the request's headers, so refuses every valid one:
the fixture lets moto sign such a request with the empty body it has (``_moto_signs_bodyless_gets``)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.validate import ParamValidator
from respond_env import ACCOUNT, REGION, CallLog, finding_for, in_account, policy_actions, set_auth
from typer.testing import CliRunner

from minerwatch.aws.org import EXIT_ACCOUNT_FAILED, OrgOptions
from minerwatch.aws.session import Aws
from minerwatch.cli.all_commands import app
from minerwatch.live.gdapi import org_source
from minerwatch.live.service import WatchOptions, WatchService
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE
from minerwatch.sources.org import settle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "live"))
from gd_shapes import api_shape  # noqa: E402

runner = CliRunner()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FindingsApi:
    """ListFindings / GetFindings of each account's detector, from the findings put there."""

    def __init__(self) -> None:
        self.findings: dict[str, list[dict[str, Any]]] = {}
        self.detectors: dict[str, str] = {}
        self.refusing: set[str] = set()
        """Accounts whose ListFindings is refused (AccessDeniedException, as GuardDuty answers)."""
        self.together: threading.Barrier | None = None
        """When set: each account's first ListFindings waits there for the other accounts' first one."""
        self.met = False
        self.waited: set[str] = set()
        self.lock = threading.Lock()

    def put(self, account: str, finding: dict[str, Any]) -> None:
        with self.lock:
            self.findings.setdefault(account, []).append(api_shape(finding))

    def attach(self, client: Any, account: str) -> None:
        asked: dict[str, dict[str, Any]] = {}
        waited = self.waited

        def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
            asked[model.name] = dict(params)

        def answer(model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            params = asked.pop(model.name)
            assert params["DetectorId"] == self.detectors[account]
            if model.name == "ListFindings" and self.together is not None and account not in waited:
                waited.add(account)
                try:
                    self.together.wait()
                    self.met = True
                except threading.BrokenBarrierError:
                    pass
            if account in self.refusing:
                error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized: ListFindings"}}
                return AWSResponse(None, 403, {}, None), error
            with self.lock:
                held = sorted(self.findings.get(account, []), key=lambda f: (f["UpdatedAt"], f["Id"]))
            if model.name == "ListFindings":
                since = params.get("FindingCriteria", {}).get("Criterion", {}).get("updatedAt", {})
                ms = since.get("GreaterThanOrEqual", 0)
                ids = [f["Id"] for f in held if _ms(f["UpdatedAt"]) >= ms]
                start = int(params.get("NextToken") or 0)
                end = start + int(params.get("MaxResults") or 50)
                response: dict[str, Any] = {"FindingIds": ids[start:end]}
                if end < len(ids):
                    response["NextToken"] = str(end)
            else:
                response = {"Findings": [f for f in held if f["Id"] in params["FindingIds"]]}
            report = ParamValidator().validate(response, model.output_shape)
            assert not report.has_errors(), report.generate_report()
            return AWSResponse(None, 200, {}, None), response

        for op in ("ListFindings", "GetFindings"):
            client.meta.events.register(f"before-parameter-build.guardduty.{op}", capture, unique_id=f"t-{op}-p")
            client.meta.events.register(f"before-call.guardduty.{op}", answer, unique_id=f"t-{op}-c")


def _ms(ts: str) -> int:
    return (datetime.fromisoformat(ts.replace("Z", "+00:00")) - EPOCH) // timedelta(milliseconds=1)


def _finding(account: str, instance: str, n: int) -> dict[str, Any]:
    f = finding_for(instance, finding_id=f"{n:02d}" + account + "0" * 18, account=account)
    f["updatedAt"] = f"2024-05-0{n}T10:00:00.000Z"
    return f


@pytest.fixture
def _moto_signs_bodyless_gets(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.iam import access_control

    real = access_control.IAMRequestBase._create_aws_request

    def create(self: Any) -> Any:
        if self._service == "guardduty" and self._method == "GET" and not self._body:
            self._data = {}
        return real(self)

    monkeypatch.setattr(access_control.IAMRequestBase, "_create_aws_request", create)


@pytest.fixture
def world(
    org: dict[str, str], aws: str, monkeypatch: pytest.MonkeyPatch, _moto_signs_bodyless_gets: None
) -> Iterator[dict[str, Any]]:
    """In each account: a GuardDuty detector with a crypto finding for its own instance, a bucket
    mw-findings-<account> with the same finding exported, a bucket mw-flows-<account> with a flow to a Stratum
    port. Set up with IAM enforcement lifted; on again for the test."""
    api = FindingsApi()
    accounts = {"mgmt": ACCOUNT, "good": org["good"], "denied": org["denied"]}
    set_auth(aws, "inf")
    for n, (name, account) in enumerate(accounts.items(), start=1):
        session = boto3.Session() if account == ACCOUNT else in_account(account)
        api.detectors[account] = session.client("guardduty").create_detector(Enable=True)["DetectorId"]
        finding = _finding(account, f"i-0{name}000000000000"[:19], n)
        api.put(account, finding)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=f"mw-findings-{account}")
        s3.put_object(Bucket=f"mw-findings-{account}", Key=f"AWSLogs/{account}/GuardDuty/{REGION}/f.jsonl",
                      Body=json.dumps(finding).encode() + b"\n")  # fmt: skip
        s3.create_bucket(Bucket=f"mw-flows-{account}")
        # a default-format (version 2) flow record: to a Stratum port, from the account's own ENI
        line = (f"2 {account} eni-0{name}0000000000 10.0.0.{n} 198.51.100.{n} 49152 3333 6 10 840 "
                "1714557600 1714557660 ACCEPT OK")
        s3.put_object(Bucket=f"mw-flows-{account}", Key=f"AWSLogs/{account}/vpcflowlogs/{REGION}/f.log",
                      Body=line.encode() + b"\n")  # fmt: skip
    set_auth(aws, "0")
    real = Aws.client

    def client(self: Aws, service: str, region: str | None = None) -> Any:
        made = real(self, service, region)
        if service == "guardduty":
            api.attach(made, self.account_id)
        return made

    monkeypatch.setattr(Aws, "client", client)
    yield {"api": api, **accounts}


def _alerts(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _by_account(stats: Path) -> dict[str, dict[str, Any]]:
    return {a["account"]: a for a in json.loads(stats.read_text())["accounts"]}


@pytest.mark.parametrize(
    ("source", "engine"),
    [("guardduty://us-east-1", "stream"), ("s3://mw-findings-{account}/AWSLogs/", "stream"),
     ("s3://mw-findings-{account}/AWSLogs/", "duckdb")],
)
def test_detect_org_reads_two_accounts_and_reports_the_denied_one(
    world: dict[str, Any], tmp_path: Path, source: str, engine: str
) -> None:
    stats = tmp_path / "stats.json"
    args = ["detect", source, "--org", "--state", str(tmp_path / "s.db"), "--stats-json", str(stats), "--quiet",
            "--engine", engine]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_ACCOUNT_FAILED, result.output
    alerts = _alerts(result.stdout)
    assert sorted(a["key"]["instance_id"] for a in alerts) == ["i-0good000000000000", "i-0mgmt000000000000"]
    accounts = _by_account(stats)
    assert set(accounts) == {world["mgmt"], world["good"], world["denied"]}
    for name in ("mgmt", "good"):
        row = accounts[world[name]]
        assert row["status"] == "ok", row
        assert row["result"]["records_read"] == 1 and row["result"]["alerts"] == 1, row
    denied = accounts[world["denied"]]
    # moto answers GuardDuty's refusal in XML, which botocore cannot parse for a REST-JSON service: the code is
    # then the HTTP status, and the reason holds moto's AccessDenied text
    assert denied["status"] == "failed" and "AccessDenied" in denied["reason"], denied
    assert denied["code"] == ("403" if source.startswith("guardduty") else "AccessDenied"), denied
    assert "2 account(s) reported, 1 failed" in result.output
    assert world["denied"] in result.output and "AccessDenied" in result.output
    # one run: the alerts are in one state store, and a second run over the same input changes nothing
    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_ACCOUNT_FAILED and _alerts(again.stdout) == []


def test_detect_reads_the_guardduty_api_without_org(world: dict[str, Any], tmp_path: Path) -> None:
    result = runner.invoke(app, ["detect", "guardduty://us-east-1", "--state", str(tmp_path / "s.db"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert [a["key"]["instance_id"] for a in _alerts(result.stdout)] == ["i-0mgmt000000000000"]
    assert "records read 1 (files 1)" in result.output
    bad = runner.invoke(app, ["detect", "guardduty://", "--state", str(tmp_path / "s.db")])
    assert bad.exit_code == 2 and "not a GuardDuty API input" in bad.output


def test_detect_org_accounts_and_exclude(world: dict[str, Any], tmp_path: Path) -> None:
    state = str(tmp_path / "s.db")
    only = runner.invoke(app, ["detect", "guardduty://us-east-1", "--org", "--accounts", world["good"],
                               "--state", state, "--quiet"])  # fmt: skip
    assert only.exit_code == 0, only.output
    assert [a["key"]["instance_id"] for a in _alerts(only.stdout)] == ["i-0good000000000000"]
    rest = runner.invoke(app, ["detect", "s3://mw-findings-{account}/", "--org", "--exclude-accounts",
                               world["denied"], "--state", str(tmp_path / "t.db"), "--quiet"])  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert len(_alerts(rest.stdout)) == 2
    assert runner.invoke(app, ["detect", "s3://mw-findings-{account}/", "--state", state]).exit_code == 2


def test_detect_org_reports_guardduty_not_enabled(world: dict[str, Any], tmp_path: Path, aws: str) -> None:
    set_auth(aws, "inf")
    gd = in_account(world["good"]).client("guardduty")
    gd.delete_detector(DetectorId=world["api"].detectors[world["good"]])
    set_auth(aws, "0")
    stats = tmp_path / "stats.json"
    result = runner.invoke(app, ["detect", "guardduty://us-east-1", "--org", "--state", str(tmp_path / "s.db"),
                                 "--stats-json", str(stats), "--quiet"])  # fmt: skip
    assert result.exit_code == EXIT_ACCOUNT_FAILED
    good = _by_account(stats)[world["good"]]
    assert good["status"] == "failed" and good["code"] == "GuardDutyNotEnabled", good


def test_hunt_org_over_s3_flow_logs(world: dict[str, Any], tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    result = runner.invoke(app, ["hunt", "--flow", "s3://mw-flows-{account}/AWSLogs/", "--org", "--format", "json",
                                 "--stats-json", str(stats), "--state", str(tmp_path / "s.db")])  # fmt: skip
    assert result.exit_code == EXIT_ACCOUNT_FAILED, result.output
    doc = json.loads(result.stdout)
    assert sorted(e["account"] for e in doc["entities"]) == sorted([world["mgmt"], world["good"]])
    accounts = _by_account(stats)
    assert accounts[world["good"]]["result"]["records_read"] == 1
    assert accounts[world["good"]]["result"]["alerts"] == 1
    assert accounts[world["denied"]]["code"] == "AccessDenied"
    assert "2 account(s) reported, 1 failed" in result.output


def test_watch_org_picks_up_a_finding_added_after_start(world: dict[str, Any], tmp_path: Path) -> None:
    """The denied account is reported at start and never polled; the good one is refused ListFindings at first
    (logged, tried again at each poll) while the management account's alert arrives, then read; a finding put in
    it after the start becomes an alert."""
    api = world["api"]
    api.refusing.add(world["good"])
    source, results = org_source(OrgOptions(concurrency=2), [REGION], interval=0.05)
    seen: list[dict[str, Any]] = []
    changed = threading.Condition()
    refused = threading.Event()

    def on_alert(record: dict[str, Any]) -> None:
        with changed:
            seen.append(record)
            changed.notify_all()

    def log(text: str) -> None:
        if f"account {world['good']}: GuardDuty API call failed" in text:
            refused.set()

    def instances() -> set[str]:
        return {a["key"]["instance_id"] for a in seen}

    options = WatchOptions(state=str(tmp_path / "s.db"), rejects=str(tmp_path / "r.jsonl"), idle_timeout=0.2,
                           on_alert=on_alert, log=log)  # fmt: skip
    service = WatchService(load_rule(DEFAULT_RULE), source, options)
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    try:
        with changed:
            assert changed.wait_for(lambda: instances() == {"i-0mgmt000000000000"}, timeout=60), seen
        assert refused.wait(60)
        api.refusing.clear()
        with changed:
            assert changed.wait_for(lambda: len(instances()) == 2, timeout=60), seen
        assert instances() == {"i-0mgmt000000000000", "i-0good000000000000"}
        api.put(world["good"], _finding(world["good"], "i-0late000000000000", 4))
        with changed:
            assert changed.wait_for(lambda: "i-0late000000000000" in instances(), timeout=60), seen
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    settled = {r.account.id: r for r in settle(results)}
    denied = settled[world["denied"]]
    assert denied.status == "failed" and "not authorized to perform: guardduty:ListDetectors" in str(denied.reason)
    good = settled[world["good"]]
    assert good.status == "ok" and good.value is not None and good.value.records_read == 2
    assert good.value.poll_errors >= 1 and "AccessDeniedException" in str(good.value.last_error)


def test_watch_org_polls_accounts_at_once(world: dict[str, Any], tmp_path: Path) -> None:
    """With --concurrency 2, the two reachable accounts' first ListFindings are in flight together."""
    world["api"].together = threading.Barrier(2, timeout=30)
    source, _results = org_source(OrgOptions(concurrency=2), [REGION], interval=0.05)
    seen: list[dict[str, Any]] = []
    changed = threading.Condition()

    def on_alert(record: dict[str, Any]) -> None:
        with changed:
            seen.append(record)
            changed.notify_all()

    options = WatchOptions(state=str(tmp_path / "s.db"), rejects=str(tmp_path / "r.jsonl"), idle_timeout=0.2,
                           on_alert=on_alert, log=lambda _text: None)  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=WatchService(load_rule(DEFAULT_RULE), source, options).run, args=(stop,))
    thread.start()
    try:
        with changed:
            assert changed.wait_for(lambda: len(seen) == 2, timeout=90), seen
    finally:
        stop.set()
        thread.join(timeout=60)
    assert world["api"].met


def test_watch_org_command_reports_each_account_at_exit(
    world: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command end to end: alerts of both reachable accounts, then SIGTERM; the table and exit 3 follow."""
    import os
    import signal

    from minerwatch.cli import org_out

    counted = threading.Semaphore(0)
    real = org_out.count_alert

    def count(results: Any, record: dict[str, Any]) -> None:
        real(results, record)
        counted.release()

    def stop_after_two_alerts() -> None:
        if counted.acquire(timeout=90) and counted.acquire(timeout=90):
            os.kill(os.getpid(), signal.SIGTERM)  # as a service manager stops `watch`

    monkeypatch.setattr(org_out, "count_alert", count)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    stopper = threading.Thread(target=stop_after_two_alerts, daemon=True)
    stopper.start()
    stats = tmp_path / "stats.json"
    try:
        result = runner.invoke(app, ["watch", "--guardduty", "--regions", REGION, "--org", "--poll-interval", "0.05",
                                     "--wait-seconds", "1", "--state", str(tmp_path / "s.db"),
                                     "--stats-json", str(stats)])  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    stopper.join(timeout=10)
    assert result.exit_code == EXIT_ACCOUNT_FAILED, result.output
    assert sorted(a["key"]["instance_id"] for a in _alerts(result.stdout)) == [
        "i-0good000000000000", "i-0mgmt000000000000"]
    accounts = _by_account(stats)
    assert accounts[world["good"]]["result"]["alerts"] == 1 and accounts[world["mgmt"]]["result"]["alerts"] == 1
    assert accounts[world["denied"]]["status"] == "failed"
    assert "2 account(s) reported, 1 failed" in result.output


def test_assumed_role_credentials_are_refreshed_before_expiry(world: dict[str, Any]) -> None:
    base = Aws(region=REGION)
    member = Aws(region=REGION, role_arn=f"arn:aws:iam::{world['good']}:role/OrganizationAccountAccessRole",
                 session_name="refresh-test")  # fmt: skip
    assert member.account_id == world["good"] and base.account_id == ACCOUNT
    creds = member.session.get_credentials()
    first = creds.get_frozen_credentials().access_key
    creds._expiry_time = datetime.now(UTC) + timedelta(seconds=30)  # inside botocore's refresh window
    assert creds.get_frozen_credentials().access_key != first  # a new AssumeRole
    member._identity = None
    assert member.account_id == world["good"]  # and the client still works with them



def test_the_printed_policies_allow_every_call_of_an_org_read(
    world: dict[str, Any], tmp_path: Path, calls: CallLog
) -> None:
    for source in ("guardduty://us-east-1", "s3://mw-findings-{account}/AWSLogs/"):
        args = ["detect", source, "--org", "--state", str(tmp_path / "s.db"), "--quiet"]
        assert runner.invoke(app, args).exit_code == EXIT_ACCOUNT_FAILED
    made = calls.actions()
    assert {"organizations:ListAccounts", "sts:AssumeRole", "guardduty:ListFindings", "guardduty:GetFindings",
            "s3:ListBucket", "s3:GetObject"} <= made  # fmt: skip
    assert made <= policy_actions("organizations", "read"), made - policy_actions("organizations", "read")
