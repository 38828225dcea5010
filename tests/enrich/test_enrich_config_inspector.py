"""AWS Config history and Amazon Inspector sections: from the CLI's JSON output, from the APIs (moto's server where
moto answers usefully, botocore's Stubber — which validates every response against the service model — where
it does not), and their failures kept to their own section."""

from __future__ import annotations

import copy
import json
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from respond_env import CallLog, policy_actions
from typer.testing import CliRunner

from minerwatch.alerting.alerts import parse_iso
from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.enrich.awsread import Item, instant
from minerwatch.enrich.config_history import _build, parse_item
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.run import EnrichSources, enrich_alert
from minerwatch.generate.scenario import write_scenario

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "awsapis"
CONFIG_FILES = [DATA / "config-history-instance.json", DATA / "config-history-security-group.json"]
INSPECTOR_FILE = DATA / "inspector2-list-findings.json"
INSTANCE = "i-0b4cbf673f63669f3"
SG = "sg-097bc726e1ed3543a"
ACCOUNT = "680772516274"
ATTACKER = f"arn:aws:iam::{ACCOUNT}:user/ci-deployer"
CREATED = f"arn:aws:iam::{ACCOUNT}:user/devops-automation"
CONFIG_TIMES = ("configurationItemCaptureTime", "resourceCreationTime")
INSPECTOR_TIMES = ("firstObservedAt", "lastObservedAt", "updatedAt", "launchedAt", "vendorCreatedAt")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("cfg") / "scenario"
    manifest = write_scenario(out, seed=1, noise=0.0)
    assert manifest["account_id"] == ACCOUNT  # the fixtures are written for this scenario
    return {"dir": out, "manifest": manifest}




def _alert(scenario: dict[str, Any], tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    state = tmp_path / "state.db"
    res = runner.invoke(app, ["detect", str(scenario["dir"] / "guardduty"), "--state", str(state)])
    assert res.exit_code == 0, res.output
    return state, next(a for a in StateStore(state).list_alerts() if a["key"]["instance_id"] == INSTANCE)


def _enrich(state: Path, alert: dict[str, Any], *args: str, code: int = 0) -> dict[str, Any]:
    res = runner.invoke(app, ["enrich", alert["alert_id"], *args, "--state", str(state), "--json"])
    assert res.exit_code == code, res.output
    return json.loads(res.stdout)


def _trail(scenario: dict[str, Any]) -> list[str]:
    return ["--cloudtrail", str(scenario["dir"] / "cloudtrail")]


def _with_datetimes(value: Any, keys: tuple[str, ...]) -> Any:
    """The CLI's JSON as boto3 returns it: timestamps as datetimes."""
    if isinstance(value, dict):
        return {k: instant(v) if k in keys else _with_datetimes(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_datetimes(v, keys) for v in value]
    return value


def _load(path: Path, key: str) -> list[dict[str, Any]]:
    return json.loads(path.read_text())[key]


class _Session:
    """A session whose clients are the given (stubbed) ones."""

    def __init__(self, **clients: Any) -> None:
        self.clients = clients
        self.regions: list[str | None] = []

    def client(self, name: str, region_name: str | None = None) -> Any:
        self.regions.append(region_name)
        return self.clients[name]


def _what(section: dict[str, Any]) -> list[str]:
    return [e["what"] for e in section["evidence"]]


# -- AWS Config -------------------------------------------------------------------------------------------


def test_config_history_file_reports_changes_and_links_cloudtrail(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    files = [a for f in CONFIG_FILES for a in ("--config-history", str(f))]
    out = _enrich(state, alert, *_trail(scenario), *files)
    cfg = out["sections"]["config_history"]
    assert cfg["status"] == "ok", cfg
    assert cfg["summary"]["findings"] == [
        f"security group {SG} opened 0.0.0.0/0 on tcp/22 at 2025-03-10T07:45:24.719Z "
        f"(event 38afcaa8-073b-41a4-9698-db8dcfb976db by {ATTACKER})",
        f"{INSTANCE}: user data changed at 2025-03-10T08:51:40.102Z "
        f"(event f33f0971-e740-40e5-9a11-a3dfacd90a24 by {CREATED})",
    ]
    assert cfg["headline"] == "; ".join(cfg["summary"]["findings"])
    opened = next(e for e in cfg["evidence"] if e["kind"] == "security_group_opened_to_internet")
    assert (opened["port"], opened["peer"], opened["instance_id"], opened["in_window"]) == (
        "tcp/22", "0.0.0.0/0", INSTANCE, True,
    )  # fmt: skip
    # The link names the CloudTrail evidence record the change came from.
    (link,) = opened["cloudtrail"]
    assert link["event_name"] == "AuthorizeSecurityGroupIngress"
    linked = out["sections"][link["section"]]["evidence"][link["index"]]
    assert linked["event_id"] == "38afcaa8-073b-41a4-9698-db8dcfb976db"
    # Context is listed but not counted: discovery, the stop/start, the default group's first rules.
    kinds = [e["kind"] for e in cfg["evidence"]]
    assert kinds.count("first_recorded") == 2 and kinds.count("state_changed") == 2
    assert not any(e["indicator"] for e in cfg["evidence"] if e["kind"] in ("first_recorded", "state_changed"))
    assert cfg["source"]["option"] == "--config-history" and cfg["source"]["accepted"] == 6
    # The changes are on the alert's timeline.
    assert sum(e["section"] == "config_history" for e in out["timeline"]) == len(cfg["evidence"])

    # Without CloudTrail the changes stay, unlinked; a user-data change cannot be told (Config does not hold it).
    bare = _enrich(state, alert, *files, "--refresh")["sections"]["config_history"]
    assert bare["summary"]["findings"] == [
        f"security group {SG} opened 0.0.0.0/0 on tcp/22 at 2025-03-10T07:45:24.719Z "
        "(event 38afcaa8-073b-41a4-9698-db8dcfb976db)"
    ]
    assert bare["summary"]["linked_to_cloudtrail"] == 0


def _config_stub(cfg: Any, window_end: Any, pages: dict[tuple[str, str], list[list[dict[str, Any]]]]) -> Stubber:
    stub = Stubber(cfg)
    for (rtype, rid), chunks in pages.items():
        for n, chunk in enumerate(chunks):
            response: dict[str, Any] = {"configurationItems": _with_datetimes(chunk, CONFIG_TIMES)}
            expected: dict[str, Any] = {
                "resourceType": rtype, "resourceId": rid, "laterTime": window_end,
                "chronologicalOrder": "Reverse", "limit": 100,
            }  # fmt: skip
            if n:
                expected["nextToken"] = f"{rid}-page-{n}"
            if n + 1 < len(chunks):
                response["nextToken"] = f"{rid}-page-{n + 1}"
            stub.add_response("get_resource_config_history", response, expected)
    return stub


def test_config_api_pages_through_the_history_as_the_file_does(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    store = StateStore(state)
    window_end = AlertContext.from_alert(alert, timedelta(hours=24)).window_end
    instance_items = _load(CONFIG_FILES[0], "configurationItems")
    sg_items = _load(CONFIG_FILES[1], "configurationItems")
    cfg = boto3.client("config", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    pages = {
        ("AWS::EC2::Instance", INSTANCE): [instance_items[:2], instance_items[2:]],
        ("AWS::EC2::SecurityGroup", SG): [sg_items],
    }
    session = _Session(config=cfg)
    trail = [str(scenario["dir"] / "cloudtrail")]
    with _config_stub(cfg, window_end, pages) as stub:
        result = enrich_alert(store, alert["alert_id"], EnrichSources(cloudtrail=trail), aws_config=True,
                              session=session)  # fmt: skip
        stub.assert_no_pending_responses()
    api = result.sections["config_history"]
    assert api["status"] == "ok", api
    assert api["source"] == {"option": "--aws-config", "api_calls": 3, "records_read": 6}
    assert set(session.regions) == {"us-east-1"}
    from_file = enrich_alert(
        store, alert["alert_id"], EnrichSources(cloudtrail=trail, config_history=[str(f) for f in CONFIG_FILES])
    ).sections["config_history"]
    assert _what(api) == _what(from_file)
    assert api["evidence"][0]["source"].startswith("config:us-east-1:AWS::EC2::")


def test_config_refusals_make_only_their_section_unavailable(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    store = StateStore(state)
    cfg = boto3.client("config", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(cfg) as stub:
        stub.add_client_error(
            "get_resource_config_history", "AccessDeniedException",
            "User: arn:aws:iam::680772516274:user/responder is not authorized to perform: "
            "config:GetResourceConfigHistory", 400,
        )  # fmt: skip
        result = enrich_alert(
            store, alert["alert_id"], EnrichSources(findings=[str(scenario["dir"] / "guardduty")]), aws_config=True,
            session=_Session(config=cfg),
        )  # fmt: skip
    section = result.sections["config_history"]
    assert section["status"] == "unavailable"
    assert section["reason"].startswith("access denied to config:GetResourceConfigHistory: User: ")
    assert result.sections["findings"]["status"] == "ok"
    # A security group refused after the instance answered is a warning; the instance's history stays.
    instance_items = _load(CONFIG_FILES[0], "configurationItems")
    with Stubber(cfg) as stub:
        stub.add_response("get_resource_config_history",
                          {"configurationItems": _with_datetimes(instance_items, CONFIG_TIMES)})  # fmt: skip
        stub.add_client_error("get_resource_config_history", "ResourceNotDiscoveredException", "unknown", 400)
        result = enrich_alert(store, alert["alert_id"], EnrichSources(), aws_config=True,
                              session=_Session(config=cfg))  # fmt: skip
    section = result.sections["config_history"]
    assert section["status"] == "empty" and section["summary"]["resources"][0]["items"] == 4
    assert section["warnings"] == [
        f"{SG}: config:GetResourceConfigHistory failed: ResourceNotDiscoveredException: unknown"
    ]


def test_config_not_recording_is_said_against_moto(aws: str, scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    sections = _enrich(state, alert, *_trail(scenario), "--aws-config")["sections"]
    assert sections["config_history"]["status"] == "unavailable"
    assert sections["config_history"]["reason"] == (
        f"AWS Config has not recorded {INSTANCE}: AWS Config has no configuration recorder in us-east-1"
    )
    assert sections["launch_context"]["status"] == "ok"
    boto3.client("config", region_name="us-east-1").put_configuration_recorder(
        ConfigurationRecorder={"name": "default", "roleARN": f"arn:aws:iam::{ACCOUNT}:role/config-recorder",
                               "recordingGroup": {"allSupported": True}}
    )  # fmt: skip
    sections = _enrich(state, alert, *_trail(scenario), "--aws-config", "--refresh")["sections"]
    assert sections["config_history"]["reason"] == (
        f"AWS Config has not recorded {INSTANCE}: AWS Config recorder 'default' is not recording in us-east-1"
    )


def test_config_history_diffs_instance_settings() -> None:
    def item(t: str, **conf: Any) -> dict[str, Any]:
        base = {"instanceType": "t3.micro", "keyName": "ops", "securityGroups": [{"groupId": "sg-1"}],
                "metadataOptions": {"httpTokens": "required"}, "state": {"name": "running"}}  # fmt: skip
        return {"resourceType": "AWS::EC2::Instance", "resourceId": "i-1", "configurationItemCaptureTime": t,
                "configuration": json.dumps({**base, **conf}), "relatedEvents": []}  # fmt: skip

    raw = [
        item("2025-03-10T06:00:00Z"),
        item("2025-03-10T07:00:00Z", instanceType="p3.16xlarge",
             iamInstanceProfile={"arn": "arn:aws:iam::1:instance-profile/admin"}),
        item("2025-03-10T08:00:00Z", instanceType="p3.16xlarge", keyName="x",
             iamInstanceProfile={"arn": "arn:aws:iam::1:instance-profile/admin"},
             securityGroups=[{"groupId": "sg-2"}], metadataOptions={"httpTokens": "optional"}),
    ]  # fmt: skip
    items = [parse_item(Item(d, f"f#{n}")) for n, d in enumerate(raw)]
    ctx = AlertContext.from_alert(
        {"alert_id": "a", "key": {"instance_id": "i-1"}, "first_seen": "2025-03-10T07:30:00Z",
         "last_seen": "2025-03-10T07:30:00Z"}, timedelta(hours=1),
    )  # fmt: skip
    section = _build(ctx, items, {}, {}, {}, [])  # type: ignore[arg-type]
    assert section["summary"]["findings"] == [
        "i-1: instance type changed to p3.16xlarge (was t3.micro) at 2025-03-10T07:00:00Z",
        "i-1: instance profile arn:aws:iam::1:instance-profile/admin attached at 2025-03-10T07:00:00Z",
        "i-1: security groups changed: +sg-2 −sg-1 at 2025-03-10T08:00:00Z",
        "i-1: key pair changed to x (was ops) at 2025-03-10T08:00:00Z",
        "i-1: IMDS httpTokens changed to optional (was required) at 2025-03-10T08:00:00Z",
    ]
    assert [e["in_window"] for e in section["evidence"]] == [False, True, True, True, True, True]
    assert parse_item(Item({"resourceType": "AWS::EC2::Instance", "resourceId": "i-1"}, "f")) == (
        "configuration item without a configurationItemCaptureTime"
    )


def test_corrupt_config_file_is_rejected_and_kept_to_its_section(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    bad = tmp_path / "broken.json"
    bad.write_text(CONFIG_FILES[0].read_text()[:5000])  # a truncated download: one reject, not one per line
    rejects = tmp_path / "rejects.jsonl"
    res = runner.invoke(app, ["enrich", alert["alert_id"], *_trail(scenario), "--config-history", str(bad),
                              "--state", str(state), "--rejects", str(rejects), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    sections = json.loads(res.stdout)["sections"]
    assert sections["config_history"]["status"] == "unavailable"
    assert sections["config_history"]["reason"] == "every record of --config-history was rejected (1)"
    assert sections["persistence"]["status"] == "ok"
    (line,) = rejects.read_text().splitlines()
    reject = json.loads(line)
    assert (reject["option"], reject["file"], reject["line"]) == ("--config-history", str(bad), 1)
    assert reject["reason"].startswith("malformed JSON")
    res = runner.invoke(app, ["enrich", alert["alert_id"], "--inspector-findings", str(bad), "--state", str(state),
                              "--refresh", "--json"])  # fmt: skip
    inspector = json.loads(res.stdout)["sections"]["inspector"]
    assert inspector["reason"] == "every record of --inspector-findings was rejected (1)"
    # JSON Lines of CLI documents are read too, each bad line a reject of its own.
    lines = tmp_path / "history.jsonl"
    lines.write_text("\n".join(json.dumps(json.loads(f.read_text())) for f in CONFIG_FILES) + "\n{oops\n")
    section = _enrich(state, alert, *_trail(scenario), "--config-history", str(lines))["sections"]["config_history"]
    assert section["status"] == "ok" and len(section["summary"]["findings"]) == 2
    assert (section["source"]["accepted"], section["source"]["rejected"]) == (6, 1)
    assert section["source"]["first_rejects"][0]["line"] == 3
    # One bad item among good ones: a reject and a warning, the rest is used.
    mixed = tmp_path / "mixed.json"
    good = [*_load(CONFIG_FILES[0], "configurationItems"), *_load(CONFIG_FILES[1], "configurationItems")]
    mixed.write_text(json.dumps({"configurationItems": [*good, "junk"]}))
    section = _enrich(state, alert, "--config-history", str(mixed), "--refresh")["sections"]["config_history"]
    assert section["status"] == "ok" and section["source"]["rejected"] == 1
    assert section["warnings"][0].startswith("1 record(s) of --config-history rejected (not an object ×1)")
    res = runner.invoke(app, ["enrich", alert["alert_id"], "--config-history", str(mixed), "--aws-config",
                              "--state", str(state)])  # fmt: skip
    assert res.exit_code == 2 and "alternatives" in res.output


# -- Amazon Inspector -------------------------------------------------------------------------------------


def _check_inspector(section: dict[str, Any]) -> None:
    assert section["status"] == "ok", section
    s = section["summary"]
    assert s["active_by_severity"] == {"CRITICAL": 1, "HIGH": 1, "MEDIUM": 1}
    assert s["by_status"] == {"ACTIVE": 3, "CLOSED": 1}
    assert s["instances"] == [INSTANCE]
    assert [v["cve"] for v in s["top_vulnerabilities"]] == ["CVE-2023-38545", "CVE-2024-6387"]
    assert s["top_vulnerabilities"][1]["packages"][0] == {
        "name": "openssh-server", "version": "8.9p1", "fixed_in": "1:8.9p1-3ubuntu0.10", "package_manager": None,
    }  # fmt: skip
    assert s["exposed_services"] == [{
        "ports": "tcp/22", "service": "SSH", "from_internet": True, "severity": "MEDIUM",
        "path": ["AWS::EC2::InternetGateway:igw-0f3c2a1b4d5e6f708", "AWS::EC2::NetworkAcl:acl-0b1c2d3e4f5a6b7c8",
                 f"AWS::EC2::SecurityGroup:{SG}", "AWS::EC2::NetworkInterface:eni-0f38ce178a7cfb985"],
    }]  # fmt: skip
    # curl is CRITICAL but serves nothing: not a way in; sshd reachable from the internet is.
    assert s["initial_access_leads"] == [
        "SSH (tcp/22) open to the internet",
        "vulnerable openssh (CVE-2024-6387, HIGH, openssh-server 8.9p1, fixed in 1:8.9p1-3ubuntu0.10; openssh-client "
        "8.9p1, fixed in 1:8.9p1-3ubuntu0.10; openssh-sftp-server 8.9p1, fixed in 1:8.9p1-3ubuntu0.10) with tcp/22 "
        "reachable from the internet",
    ]
    assert section["headline"] == (
        "3 active finding(s) (CRITICAL 1, HIGH 1, MEDIUM 1); exposed: SSH tcp/22 from the internet; "
        "possible way in: SSH (tcp/22) open to the internet"
    )
    assert section["evidence"][-1]["what"] == (
        f"{INSTANCE}: CVE-2023-4016 LOW, closed in procps 3.3.17, fixed in 2:3.3.17-6ubuntu2.1"
    )


def test_inspector_file_summarises_and_names_the_way_in(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    out = _enrich(state, alert, "--inspector-findings", str(INSPECTOR_FILE))
    section = out["sections"]["inspector"]
    _check_inspector(section)
    assert section["source"]["other_resources"] == 1  # the other instance's finding is left out
    assert section["evidence"][0]["source"] == f"{INSPECTOR_FILE}#findings[0]"
    assert sum(e["section"] == "inspector" for e in out["timeline"]) == 4
    assert out["sections"]["config_history"]["reason"] == "no --config-history or --aws-config given"


def _queue_inspector(url: str, findings: list[dict[str, Any]]) -> None:
    body = json.dumps({"results": [findings]}).encode()
    req = urllib.request.Request(f"{url}/moto-api/static/inspector2/findings-results", data=body,
                                 headers={"Content-Type": "application/json"}, method="POST")  # fmt: skip
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 201


def test_inspector_against_moto_not_activated_then_activated(
    aws: str, scenario: dict[str, Any], tmp_path: Path
) -> None:
    state, alert = _alert(scenario, tmp_path)
    section = _enrich(state, alert, "--inspector")["sections"]["inspector"]
    assert section["status"] == "unavailable"
    assert section["reason"] == f"Amazon Inspector EC2 scanning is not activated for account {ACCOUNT} in us-east-1"
    boto3.client("inspector2", region_name="us-east-1").enable(accountIds=[ACCOUNT], resourceTypes=["EC2"])
    # ListFindings filtered by the instance: what the service returns for it.
    mine = [f for f in _load(INSPECTOR_FILE, "findings") if f["resources"][0]["id"] == INSTANCE]
    _queue_inspector(aws, mine)
    section = _enrich(state, alert, "--inspector", "--refresh")["sections"]["inspector"]
    _check_inspector(section)
    assert section["source"] == {"option": "--inspector", "api_calls": 2, "records_read": 4}
    assert section["evidence"][0]["source"].startswith("inspector2:us-east-1:arn:aws:inspector2:")


def test_inspector_api_pages_and_filters_by_instance(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    store = StateStore(state)
    mine = [f for f in _load(INSPECTOR_FILE, "findings") if f["resources"][0]["id"] == INSTANCE]
    client = boto3.client("inspector2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    criteria = {"resourceId": [{"comparison": "EQUALS", "value": INSTANCE}]}
    with Stubber(client) as stub:
        # The model makes errorCode and errorMessage required in every State.
        enabled = {"status": "ENABLED", "errorCode": "ALREADY_ENABLED", "errorMessage": "EC2 scanning is enabled"}
        disabled = {"status": "DISABLED", "errorCode": "RESOURCE_NOT_FOUND", "errorMessage": "ECR scanning is off"}
        stub.add_response(
            "batch_get_account_status",
            {"accounts": [{"accountId": ACCOUNT, "state": enabled,
                           "resourceState": {"ec2": enabled, "ecr": disabled}}]},  # fmt: skip
            {"accountIds": [ACCOUNT]},
        )
        stub.add_response("list_findings", {"findings": _with_datetimes(mine[:2], INSPECTOR_TIMES), "nextToken": "p2"},
                          {"filterCriteria": criteria, "maxResults": 100})  # fmt: skip
        stub.add_response("list_findings", {"findings": _with_datetimes(mine[2:], INSPECTOR_TIMES)},
                          {"filterCriteria": criteria, "maxResults": 100, "nextToken": "p2"})  # fmt: skip
        result = enrich_alert(store, alert["alert_id"], EnrichSources(), inspector=True,
                              session=_Session(inspector2=client))  # fmt: skip
        stub.assert_no_pending_responses()
    _check_inspector(result.sections["inspector"])
    # Without permission to read the account status, the findings are still asked for; a refusal there is the reason.
    with Stubber(client) as stub:
        stub.add_client_error("batch_get_account_status", "AccessDeniedException", "not authorized", 403)
        stub.add_client_error("list_findings", "AccessDeniedException", "not authorized to ListFindings", 403)
        result = enrich_alert(store, alert["alert_id"], EnrichSources(), inspector=True,
                              session=_Session(inspector2=client), refresh=True)  # fmt: skip
    section = result.sections["inspector"]
    assert section["status"] == "unavailable"
    assert section["reason"] == "access denied to inspector2:ListFindings: not authorized to ListFindings"


# -- both: policy and hostile text ------------------------------------------------------------------------


def test_printed_enrich_policy_allows_every_call_made(
    aws: str, scenario: dict[str, Any], tmp_path: Path, calls: CallLog
) -> None:
    boto3.client("inspector2", region_name="us-east-1").enable(accountIds=[ACCOUNT], resourceTypes=["EC2"])
    calls.signed.clear()
    state, alert = _alert(scenario, tmp_path)
    _enrich(state, alert, "--aws-config", "--inspector", "--cloudwatch", "--cost-explorer")
    made = calls.actions()
    assert {"config:GetResourceConfigHistory", "config:DescribeConfigurationRecorderStatus",
            "inspector2:BatchGetAccountStatus", "inspector2:ListFindings"} <= made  # fmt: skip
    assert made <= policy_actions("enrich"), made - policy_actions("enrich")


def test_hostile_text_stays_data_in_console_and_report(scenario: dict[str, Any], tmp_path: Path) -> None:
    state, alert = _alert(scenario, tmp_path)
    hostile = "nginx\x1b]0;pwned\x07<script>alert(1)</script>"
    doc = json.loads(INSPECTOR_FILE.read_text())
    found = copy.deepcopy(doc["findings"][1])
    found["packageVulnerabilityDetails"]["vulnerablePackages"][0]["name"] = hostile
    (tmp_path / "hostile.json").write_text(json.dumps({"findings": [found]}))
    section = _enrich(state, alert, "--inspector-findings", str(tmp_path / "hostile.json"))["sections"]["inspector"]
    assert hostile in section["evidence"][0]["what"]  # stored as it came
    shown = runner.invoke(app, ["alerts", "show", alert["alert_id"], "--state", str(state)])
    assert shown.exit_code == 0, shown.output
    assert "\x1b" not in shown.stdout and "\\x1b]0;pwned" in shown.stdout
    report = runner.invoke(app, ["report", alert["alert_id"], "--format", "html", "--state", str(state)])
    assert report.exit_code == 0, report.output
    assert "<script>alert(1)</script>" not in report.stdout
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report.stdout
    assert "Amazon Inspector" in report.stdout and "AWS Config history" in report.stdout


def test_timestamps_of_every_cli_format_are_read() -> None:
    iso_text = "2025-03-10T07:45:24.719000+00:00"
    assert instant(iso_text) == parse_iso("2025-03-10T07:45:24.719Z")
    assert instant(1741592724.719) == parse_iso("2025-03-10T07:45:24.719Z")
    assert instant("yesterday") is None and instant(True) is None
