"""The console in headless Chromium (Debian's ``/usr/bin/chromium`` driven by Playwright, never a downloaded
browser) against the running ``minerwatch serve``: log in, filter the queue, open a case, comment, tick the
checklist, close as false positive through the allowlist diff (then ``detect --allowlist`` suppresses the next
such finding), respond with two responders, and hostile finding text shown as text. Screenshots of the queue and a
case are saved under ``test-output/console/``."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .conftest import (
    DEMO_ALERT,
    HOSTILE_TAG,
    HOSTILE_TITLE,
    PASSWORD,
    REGION,
    Console,
    mw,
)

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"




class Session:
    """A logged-in browser context that records dialogs, page errors and requests leaving the console."""

    def __init__(self, browser: Browser, console: Console, user: str) -> None:
        self.context: BrowserContext = browser.new_context(viewport={"width": 1400, "height": 900})
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.console = console

        def route(r: Any) -> None:
            if r.request.url.startswith(console.url):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)
        self.page: Page = self.context.new_page()
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(console.url + "/login")
        self.page.fill("#username", user)
        self.page.fill("#password", PASSWORD)
        self.page.click("#login")
        self.page.wait_for_url("**/queue")
        expect(self.page.locator("#whoami")).to_have_text(user)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser: Browser, console: Console) -> Iterator[Any]:
    opened: list[Session] = []

    def open_(user: str) -> Session:
        s = Session(browser, console, user)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        assert s.dialogs == [], s.dialogs
        assert s.outside == [], s.outside
        s.close()


def test_queue_filter_case_comment_checklist(session: Any, console: Console) -> None:
    s = session("ana")
    page = s.page
    rows = page.locator("#queue-rows tr[data-alert]")
    expect(rows).to_have_count(27)  # 25 scenario alerts + the incident's + the hostile one
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "queue.png"))
    page.select_option("#f-status", "new")
    page.fill("#f-text", "i-0b4cbf673f63669f3")
    page.click("#apply")
    page.wait_for_url("**/queue?*text=i-0b4cbf673f63669f3*")
    ids = rows.evaluate_all("rs => rs.map(r => r.dataset.alert)")
    assert DEMO_ALERT in ids and 0 < len(ids) < 27
    for text in rows.all_inner_texts():
        assert "i-0b4cbf673f63669f3" in text and "new" in text
    page.click(f"a[href='/alerts/{DEMO_ALERT}']")
    page.wait_for_url(f"**/alerts/{DEMO_ALERT}")
    expect(page.locator("#case-id")).to_have_text(DEMO_ALERT)
    assert page.locator("#cpu svg").count() == 1 and page.locator("#timeline svg").count() == 1
    expect(page.locator("#section-launch_context")).to_contain_text("ci-deployer")
    expect(page.locator("#cost")).to_contain_text("$")
    page.screenshot(path=str(SHOTS / "case.png"), full_page=False)

    page.fill("#comment-text", "Checked the launch: the CI key leaked.")
    page.click("#comment-add")
    page.wait_for_url(f"**/alerts/{DEMO_ALERT}#comments")
    expect(page.locator("#comments .comment-text")).to_contain_text(["Checked the launch: the CI key leaked."])

    item = page.locator("ul.checklist li.open:has(form.tick)").first
    item_id = item.get_attribute("id")
    item.locator(".tick-note").fill("Notified the account owner by phone")
    item.locator(".tick-button").click()
    page.wait_for_url(f"**/alerts/{DEMO_ALERT}#checklist")
    done = page.locator(f"#{item_id}")
    expect(done).to_have_class("closed")
    expect(done).to_contain_text("Notified the account owner by phone")
    audit = page.locator("#audit").inner_text()
    assert "console:comment" in audit and "checklist:done" in audit and "ana" in audit
    # The same record as `respond --done`: the report shows who closed the item, when and why.
    items = page.request.get(f"{console.url}/alerts/{DEMO_ALERT}/report.json").json()["checklist"]["items"]
    ticked = next(i for i in items if i["id"] == item_id.removeprefix("item-"))
    assert (ticked["status"], ticked["done_by"]) == ("done", "ana")
    assert ticked["note"] == "Notified the account owner by phone"
    assert ticked["done_at"]

    page.select_option("#assignee", "ana")
    page.click("#assign")
    expect(page.locator("#case-assignee")).to_have_text("ana")
    page.click("#ack")
    expect(page.locator("#case-status")).to_have_text("acknowledged")
    assert s.errors == []


def test_queue_shows_new_alerts_without_reload(session: Any, console: Console, tmp_path: Path) -> None:
    s = session("vic")
    page = s.page
    page.goto(console.url + "/queue?rule=aws-guardduty-crypto-mining")
    before = page.locator("#queue-rows tr[data-alert]").count()
    finding = json.loads((console.root / "extra-findings.jsonl").read_text().splitlines()[0])
    finding["id"] = "feedfacefeedfacefeedfacefeedface"
    finding["resource"]["instanceDetails"]["instanceId"] = "i-0aaaabbbbccccdddd"
    path = tmp_path / "late.jsonl"
    path.write_text(json.dumps(finding) + "\n")
    mw("detect", str(path), "--state", str(console.state), env=console.env)
    expect(page.locator("#queue-rows tr[data-alert]")).to_have_count(before + 1, timeout=30_000)
    expect(page.locator("#queue-rows")).to_contain_text("i-0aaaabbbbccccdddd")


def _next_finding(console: Console, instance: str) -> dict[str, Any]:
    """One of the scenario's findings of ``instance``, delivered again a day after the last: a new alert unless
    the allowlist suppresses it."""
    docs = []
    for f in sorted((console.scenario / "guardduty").rglob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for line in fh:
                if instance in line and line.startswith("{"):
                    docs.append(json.loads(line))
    assert docs, f"no scenario finding of {instance}"
    doc = docs[-1]
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    doc["id"] = "f00df00df00df00df00df00df00df00d"
    doc["updatedAt"] = later
    doc["service"]["eventLastSeen"] = later
    doc["service"]["eventFirstSeen"] = later
    return doc


def test_close_as_false_positive_writes_the_allowlist_and_detect_suppresses(
    session: Any, console: Console, tmp_path: Path
) -> None:
    db = sqlite3.connect(console.state)
    alert_id, key_json = db.execute(
        "SELECT alert_id, key_json FROM alerts WHERE rule_id='aws-guardduty-crypto-mining' AND status='new' "
        "AND key_json NOT LIKE '%i-0b4cbf673f63669f3%' ORDER BY first_seen DESC LIMIT 1"
    ).fetchone()
    db.close()
    instance = json.loads(key_json)["instance_id"]
    s = session("ana")
    page = s.page
    page.goto(f"{console.url}/alerts/{alert_id}")
    page.click("#fp summary")
    expect(page.locator("#fp-instance_id")).to_have_value(instance)
    page.click("#fp-preview")  # the reason is required: the browser refuses the empty form
    expect(page).to_have_url(f"{console.url}/alerts/{alert_id}")
    assert console.allowlist.read_text() == "# reviewed exceptions\n"
    page.fill("#fp-reason", "GPU benchmark approved, TICKET-42")
    page.click("#fp-preview")
    diff = page.locator("#fp-diff")
    expect(diff).to_contain_text("+- reason: GPU benchmark approved, TICKET-42")
    expect(diff).to_contain_text(f"+  instance_id: {instance}")
    assert console.allowlist.read_text() == "# reviewed exceptions\n"  # nothing written before confirming
    page.click("#fp-confirm")
    page.wait_for_url(f"**/alerts/{alert_id}")
    expect(page.locator("#case-status")).to_have_text("closed")
    expect(page.locator("#case-disposition")).to_have_text("false-positive")
    entries = yaml.safe_load(console.allowlist.read_text())
    assert entries[-1]["instance_id"] == instance and entries[-1]["reason"] == "GPU benchmark approved, TICKET-42"

    findings = tmp_path / "next.jsonl"
    findings.write_text(json.dumps(_next_finding(console, instance)) + "\n")
    control = mw("detect", str(findings), "--state", str(tmp_path / "control.db"), "--stats-json",
                 str(tmp_path / "control.json"), env=console.env)  # fmt: skip
    assert json.loads((tmp_path / "control.json").read_text())["alerts_new"] == 1, control.stderr
    mw("detect", str(findings), "--state", str(tmp_path / "fresh.db"), "--allowlist", str(console.allowlist),
       "--stats-json", str(tmp_path / "stats.json"), env=console.env)  # fmt: skip
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["suppressed"] == 1 and stats["alerts_new"] == 0


def test_hostile_finding_text_renders_as_text(session: Any, console: Console) -> None:
    s = session("vic")
    page = s.page
    page.goto(f"{console.url}/queue?text={console.hostile_alert}")
    expect(page.locator("#queue-rows tr[data-alert]")).to_have_count(1)
    page.goto(f"{console.url}/alerts/{console.hostile_alert}")
    title = page.locator("#finding-title").inner_text()
    assert "<script>alert('xss-title')</script> {{7*7}}" in title and "49" not in title
    assert "\x1b" not in title and "␛[31mred" in title
    description = page.locator("#finding-description").inner_text()
    assert "<img src=x onerror=" in description and "{{ config }}" in description
    assert HOSTILE_TAG in page.locator("#tags").inner_text()
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    for fmt in ("md", "json", "html"):
        r = page.request.get(f"{console.url}/alerts/{console.hostile_alert}/report.{fmt}")
        assert r.status == 200 and "attachment" in r.headers["content-disposition"]
    assert HOSTILE_TITLE.split(" ")[0] in page.request.get(f"{console.url}/alerts/{console.hostile_alert}/report.json").text().replace("\\u003c", "<")  # noqa: E501
    assert s.errors == [] and s.dialogs == []


def _ec2() -> Any:
    return boto3.Session().client("ec2", region_name=REGION)


def _eni_groups(iid: str) -> dict[str, list[str]]:
    enis = _ec2().describe_network_interfaces(Filters=[{"Name": "attachment.instance-id", "Values": [iid]}])
    # A network interface's groups are a set: EC2 does not keep the order they were given in.
    return {n["NetworkInterfaceId"]: sorted(g["GroupId"] for g in n["Groups"]) for n in enis["NetworkInterfaces"]}


def test_respond_with_two_responders(session: Any, console: Console) -> None:
    alert_id, iid = console.incident_alert, console.incident["instance_id"]
    rita = session("rita")
    page = rita.page
    page.goto(f"{console.url}/alerts/{alert_id}/respond")
    expect(page.locator("#plan")).to_contain_text(iid)
    expect(page.locator("#step-isolate")).to_contain_text("ModifyNetworkInterfaceAttribute")
    assert page.locator("#step-terminate input.step-box").is_disabled()

    for step in ("tag", "evidence", "isolate"):
        page.check(f"#step-{step} input.step-box")
    page.click("#execute")
    results = page.locator("#results")
    for step in ("tag", "evidence", "isolate"):
        expect(results.locator(f"tr[data-step='{step}']")).to_contain_text("done")
    assert _eni_groups(iid) != console.incident["groups"]  # quarantined

    page.goto(f"{console.url}/alerts/{alert_id}/respond")
    page.click("#rollback-run")
    expect(page.locator("p.result")).to_contain_text("done")
    assert _eni_groups(iid) == {k: sorted(v) for k, v in console.incident["groups"].items()}  # the originals are back

    page.goto(f"{console.url}/alerts/{alert_id}/respond")
    page.click("#request-button-terminate")
    expect(page.locator("#approve-terminate")).to_contain_text("requested by rita")
    page.click("#approve-button-terminate")  # the requester cannot approve
    expect(page.locator("#error")).to_contain_text("a second responder must approve")
    assert rita.errors == ["Failed to load resource: the server responded with a status of 403 (Forbidden)"]
    rita.errors.clear()
    page.goto(f"{console.url}/alerts/{alert_id}/respond")
    assert page.locator("#step-terminate input.step-box").is_disabled()

    rex = session("rex")
    rex.page.goto(f"{console.url}/alerts/{alert_id}/respond")
    rex.page.click("#approve-button-terminate")
    expect(rex.page.locator("#approve-terminate")).to_contain_text("approved (rita → rex)")

    page.goto(f"{console.url}/alerts/{alert_id}/respond")
    for step in ("snapshot", "stop", "terminate"):
        page.check(f"#step-{step} input.step-box")
    page.click("#execute")
    expect(page.locator("#results tr[data-step='terminate']")).to_contain_text("done", timeout=60_000)
    state = _ec2().describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state in ("shutting-down", "terminated")
    audit = page.locator("#audit").inner_text()
    assert "ec2:TerminateInstances" in audit and "console:approve:terminate" in audit
    rows = [r for r in page.locator("tr.audit-row").all_inner_texts() if "TerminateInstances" in r]
    assert rows and all("rita" in r for r in rows)
    assert rita.errors == [] and rex.errors == []
