"""The outbox: what gets queued for whom, backoff with jitter, parking, ordering, failing destinations isolated.
Everything goes over real HTTP to a local receiver; time is a clock the test moves."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from minerwatch.alerting.alerts import iso, parse_iso
from minerwatch.alerting.state import StateStore
from minerwatch.notify.config import NotifyConfig
from minerwatch.notify.outbox import Dispatcher, enqueue, list_rows, open_outbox, requeue, summary

from .conftest import SAMPLE_FINDINGS, FakeClock, Receiver, config_from, run_detect


def _config(tmp_path: Path, rx: Receiver, secret_file: Path, extra: str = "", retry: str = "") -> NotifyConfig:
    return config_from(
        f"""
retry: {{max_attempts: 4, base_delay: 2s, max_delay: 60s, jitter: full{retry}}}
destinations:
  - name: chat
    type: slack
    url_env: MW_TEST_SLACK
    route: {{severities: [critical]}}
  - name: siem
    type: webhook
    url: {rx.base}/hook
    secret_file: {secret_file}
  - name: pager
    type: pagerduty
    routing_key_env: MW_TEST_PD
    url: {rx.base}/pd
    route: {{priorities: [P1]}}
  - name: low-only
    type: webhook
    url: {rx.base}/low
    secret_file: {secret_file}
    route: {{severities: [low]}}
{extra}""",
        tmp_path,
    )


@pytest.fixture(autouse=True)
def _secrets(monkeypatch, receiver):
    monkeypatch.setenv("MW_TEST_SLACK", f"{receiver.base}/slack/T000/B000/SlackTokenSecret")
    monkeypatch.setenv("MW_TEST_PD", "pd-routing-key-0123456789abcdef")


def _resent(tmp_path: Path, minutes: int, name: str) -> Path:
    """The same crypto findings re-sent later with a new updatedAt, as GuardDuty does for recurring activity."""
    out = []
    for line in SAMPLE_FINDINGS.read_text().splitlines():
        f = json.loads(line)
        if "CryptoCurrency" not in f.get("type", ""):
            continue
        f["updatedAt"] = iso(parse_iso(f["updatedAt"]) + timedelta(minutes=minutes))
        f["service"]["count"] = int(f["service"].get("count") or 1) + 1
        out.append(json.dumps(f))
    path = tmp_path / name
    path.write_text("\n".join(out) + "\n")
    return path


def _rows(state: Path, **kw):
    db = open_outbox(state)
    try:
        return list_rows(db, **kw)
    finally:
        db.close()


def test_new_alerts_go_to_every_routed_destination_once(tmp_path, receiver, secret_file):
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    stats = run_detect(state, cfg)
    assert stats.alerts_new >= 2
    rows = _rows(state)
    by_dest = {d: [r for r in rows if r.destination == d] for d in ("chat", "siem", "pager", "low-only")}
    assert len(by_dest["chat"]) == len(by_dest["siem"]) == len(by_dest["pager"]) == stats.alerts_new
    assert by_dest["low-only"] == []  # routed away: the seed rule is critical
    assert {r.event for r in rows} == {"trigger"}
    run_detect(state, cfg)  # the same input again: nothing new to say
    assert len(_rows(state)) == len(rows)

    with Dispatcher(state, cfg) as disp:
        result = disp.deliver_due()
    assert result.delivered == len(rows) and result.parked == result.retrying == 0
    slack_msgs = receiver.accepted("/slack/")
    assert len(slack_msgs) == stats.alerts_new
    keys = {r.header("Idempotency-Key") for r in receiver.accepted("/hook")}
    assert keys == {r.key for r in by_dest["siem"]}
    assert {r.json["dedup_key"] for r in receiver.accepted("/pd")} == {r.alert_id for r in by_dest["pager"]}
    assert {r.json["event_action"] for r in receiver.accepted("/pd")} == {"trigger"}


def test_updates_go_only_where_updates_are_supported_and_do_not_repage(tmp_path, receiver, secret_file):
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        disp.deliver_due()
    first = {d: len(receiver.accepted(d)) for d in ("/slack/", "/hook", "/pd")}

    stats = run_detect(state, cfg, [_resent(tmp_path, 20, "again.jsonl")])
    assert stats.alerts_updated >= 1 and stats.alerts_new == 0
    updates = _rows(state, status="pending")
    assert {r.destination for r in updates} == {"siem", "pager"}  # Slack takes no updates by default
    assert {r.event for r in updates} == {"update"}
    with Dispatcher(state, cfg) as disp:
        assert disp.deliver_due().delivered == len(updates)
    assert len(receiver.accepted("/slack/")) == first["/slack/"]
    hook_updates = receiver.accepted("/hook")[first["/hook"]:]
    assert {r.header("X-MinerWatch-Event") for r in hook_updates} == {"alert.updated"}
    assert all(r.json["status"] == "updated" for r in hook_updates)
    pd_updates = receiver.accepted("/pd")[first["/pd"]:]
    # PagerDuty: a trigger with the alert's dedup_key updates the open incident instead of opening a new one
    assert {r.json["event_action"] for r in pd_updates} == {"trigger"}
    first_keys = {r.json["dedup_key"] for r in receiver.accepted("/pd")[: first["/pd"]]}
    assert {r.json["dedup_key"] for r in pd_updates} <= first_keys


def test_closing_resolves_pagerduty_and_tells_webhooks(tmp_path, receiver, secret_file):
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        disp.deliver_due()
    store = StateStore(state)
    alert = store.list_alerts()[0]
    store.begin()
    record = store.set_status(alert["alert_id"], "closed")
    ids = enqueue(store, [record], cfg)
    store.commit()
    store.close()
    rows = _rows(state, ids=ids)
    assert {(r.destination, r.event) for r in rows} == {("siem", "resolve"), ("pager", "resolve")}
    assert {r.key for r in rows} == {f"{alert['alert_id']}:v{alert['event_count']}:closed"}
    with Dispatcher(state, cfg) as disp:
        assert disp.deliver_due().delivered == 2
    resolve = receiver.accepted("/pd")[-1].json
    assert resolve == {"routing_key": "pd-routing-key-0123456789abcdef", "event_action": "resolve",
                       "dedup_key": alert["alert_id"]}
    assert receiver.accepted("/hook")[-1].header("X-MinerWatch-Event") == "alert.closed"

    # more findings for the closed alert: no re-page, webhooks hear about it
    run_detect(state, cfg, [_resent(tmp_path, 20, "later.jsonl")])
    later = [r for r in _rows(state, status="pending") if r.alert_id == alert["alert_id"]]
    assert {(r.destination, r.event) for r in later} <= {("siem", "update")}


def test_a_trigger_that_has_not_gone_out_is_replaced_by_the_fresher_state(tmp_path, receiver, secret_file):
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    run_detect(state, cfg, [_resent(tmp_path, 20, "again.jsonl")])
    rows = _rows(state)
    chat = [r for r in rows if r.destination == "chat"]
    pending = [r for r in chat if r.status == "pending"]
    superseded = [r for r in chat if r.status == "superseded"]
    assert superseded and all(r.event == "trigger" for r in pending)
    assert len({r.alert_id for r in pending}) == len(pending)  # one message per alert, not one per version
    with Dispatcher(state, cfg) as disp:
        disp.deliver_due()
    counts = {m.json["blocks"][2]["fields"][5]["text"] for m in receiver.accepted("/slack/")}
    latest = {f"*Events*\n{a['event_count']} (status {a['status']})" for a in StateStore(state).list_alerts()}
    assert counts == latest


def test_backoff_with_full_jitter_then_parked_while_others_deliver(tmp_path, receiver, secret_file, caplog):
    receiver.set("/hook", 500)
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    clock = FakeClock(1_000_000.0)
    draws = iter([0.5, 0.25, 0.75, 0.1] * 20)
    disp = Dispatcher(state, cfg, clock=clock, rand=lambda: next(draws))
    first = disp.deliver_due()
    assert first.destinations["chat"].delivered == first.destinations["pager"].delivered >= 2
    assert first.destinations["siem"].attempted == 1  # a failing destination is not hammered row after row
    row = _rows(state, destination="siem")[0]
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt == pytest.approx(clock.t + 0.5 * 2)  # full jitter: rand · min(max, base·2^0)

    hits = len(receiver.received("/hook"))
    clock.advance(0.9)  # not due yet
    assert disp.deliver_due(ids=[row.id]).attempted == 0 and len(receiver.received("/hook")) == hits
    expected = [0.25 * 4, 0.75 * 8]
    for n, delay in enumerate(expected, start=2):
        clock.t = _rows(state, ids=[row.id])[0].next_attempt
        disp.deliver_due(ids=[row.id])
        again = _rows(state, ids=[row.id])[0]
        assert again.attempts == n and again.status == "pending"
        assert again.next_attempt == pytest.approx(clock.t + delay)
    clock.t = _rows(state, ids=[row.id])[0].next_attempt
    with caplog.at_level(logging.WARNING, logger="minerwatch.notify"):
        last = disp.deliver_due(ids=[row.id])
    disp.close()
    assert last.parked == 1
    parked = _rows(state, ids=[row.id])[0]
    assert parked.status == "parked" and parked.attempts == 4 and "HTTP 500" in parked.last_error
    assert "parked" in caplog.text
    assert len({r.header("Idempotency-Key") for r in receiver.received("/hook") if r.header("X-MinerWatch-Delivery")
                == str(row.id)}) == 1  # every attempt of a row carries the same key


def test_a_hanging_destination_times_out_without_holding_up_the_others(tmp_path, receiver, secret_file):
    receiver.set("/pd", "hang")
    receiver.hang_seconds = 3.0
    cfg = _config(tmp_path, receiver, secret_file)
    cfg = cfg.model_copy(update={"destinations": [
        d.model_copy(update={"timeout": 0.5}) if d.name == "pager" else d for d in cfg.destinations
    ]})
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    started = time.monotonic()
    with Dispatcher(state, cfg) as disp:
        stats = disp.deliver_due()
    elapsed = time.monotonic() - started
    assert stats.destinations["pager"].retrying == 1 and "timed out" in stats.destinations["pager"].errors[0]
    assert stats.destinations["chat"].delivered >= 2 and stats.destinations["siem"].delivered >= 2
    assert elapsed < 2.5  # bounded by the timeout, not by the hang


def test_permanent_errors_park_at_once_and_retry_after_is_honoured(tmp_path, receiver, secret_file):
    receiver.set("/hook", 400)
    receiver.set("/pd", 429)
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    clock = FakeClock(5_000.0)
    with Dispatcher(state, cfg, clock=clock, rand=lambda: 0.0) as disp:
        stats = disp.deliver_due()
    assert stats.destinations["siem"].parked == 1 and stats.destinations["siem"].retrying == 0
    pd_row = next(r for r in _rows(state, destination="pager") if r.attempts)
    assert pd_row.status == "pending" and pd_row.next_attempt == pytest.approx(clock.t + 1.0)  # Retry-After: 1


def test_rows_of_one_alert_go_out_in_order(tmp_path, receiver, secret_file):
    receiver.set("/pd", 503)
    cfg = _config(tmp_path, receiver, secret_file, retry=", max_attempts: 20")
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    clock = FakeClock(10_000.0)
    disp = Dispatcher(state, cfg, clock=clock, rand=lambda: 0.0)
    disp.deliver_due(destination="pager")
    store = StateStore(state)
    alert_id = _rows(state, destination="pager", status="pending")[0].alert_id
    store.begin()
    enqueue(store, [store.set_status(alert_id, "closed")], cfg)
    store.commit()
    store.close()
    for _ in range(3):
        disp.deliver_due(destination="pager")
    assert all(r.json["event_action"] == "trigger" for r in receiver.received("/pd"))  # resolve waits its turn
    receiver.set("/pd", "ok")
    for _ in range(6):
        disp.deliver_due(destination="pager")
    disp.close()
    mine = [r.json["event_action"] for r in receiver.accepted("/pd") if r.json["dedup_key"] == alert_id]
    assert mine == ["trigger", "resolve"]


def test_secrets_never_reach_errors_the_outbox_or_logs(tmp_path, receiver, secret_file, caplog):
    receiver.set("/slack/", "echo")  # the server puts the request path (the webhook token) in its error body
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    with caplog.at_level(logging.DEBUG), Dispatcher(state, cfg) as disp:
        stats = disp.deliver_due()
    errors = " ".join(stats.destinations["chat"].errors)
    stored = " ".join(r.last_error or "" for r in _rows(state))
    assert "HTTP 500" in errors and "no route for" in stored
    for text in (errors, stored, caplog.text):
        assert "SlackTokenSecret" not in text and "T000/B000" not in text


def test_requeue_by_row_destination_or_all(tmp_path, receiver, secret_file):
    receiver.set("/hook", 400)
    receiver.set("/pd", 400)
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        for _ in range(5):
            disp.deliver_due()
    parked = _rows(state, status="parked")
    assert {r.destination for r in parked} == {"siem", "pager"}
    db = open_outbox(state)
    try:
        assert requeue(db, f"#{parked[0].id}")["requeued"] == [parked[0].id]
        assert set(requeue(db, "pager")["requeued"]) == {r.id for r in parked if r.destination == "pager"}
        rest = requeue(db, "all")["requeued"]
        assert set(rest) == {r.id for r in parked if r.destination == "siem"} - {parked[0].id}
        counts = summary(db)
        assert counts["siem"]["parked"] == counts["pager"]["parked"] == 0
        assert all(r.attempts == 0 for r in list_rows(db, ids=[r.id for r in parked]))
    finally:
        db.close()


def test_run_delivers_in_the_background_and_stops(tmp_path, receiver, secret_file):
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    disp = Dispatcher(state, cfg)
    stop = threading.Event()
    worker = threading.Thread(target=disp.run, args=(stop, 0.2))
    worker.start()
    db = open_outbox(state)

    def waiting() -> int:
        return sum(c["pending"] for c in summary(db).values())

    try:
        started = time.monotonic()
        stats = run_detect(state, cfg)
        disp.wake()
        while (waiting() or not summary(db)) and time.monotonic() - started < 60:
            time.sleep(0.02)
        assert waiting() == 0
        assert len(receiver.accepted("/slack/")) == stats.alerts_new
        assert {r.header("Idempotency-Key") for r in receiver.accepted("/hook")} == {
            r.key for r in list_rows(db, destination="siem")
        }
    finally:
        stop.set()
        worker.join(5)
        disp.close()
        db.close()
    assert not worker.is_alive()


def test_dates_in_messages_are_the_alert_times(tmp_path, receiver, secret_file):
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    # The findings and their recurrence 20 minutes later in one run: each alert spans 20 minutes when triggered.
    run_detect(state, cfg, [SAMPLE_FINDINGS, _resent(tmp_path, 20, "later.jsonl")])
    with Dispatcher(state, cfg) as disp:
        disp.deliver_due(destination="pager")
    sent = [r.json for r in receiver.accepted("/pd")]
    store = StateStore(state)
    try:
        alerts = {body["dedup_key"]: store.get_alert(body["dedup_key"]) for body in sent}
    finally:
        store.close()
    assert sent and all(alerts.values())
    # The event time is the alert's latest activity, also for alerts that span a while.
    assert any(a["first_seen"] != a["last_seen"] for a in alerts.values())
    for body in sent:
        alert = alerts[body["dedup_key"]]
        assert body["payload"]["timestamp"] == alert["last_seen"]
        assert datetime.fromisoformat(body["payload"]["timestamp"].replace("Z", "+00:00")).year == 2025


def test_a_newer_version_queued_while_the_trigger_is_in_flight(tmp_path, receiver, secret_file):
    receiver.set("/hook", "hang")
    receiver.set("/slack/", "hang")
    receiver.hang_seconds = 1.0  # answered 200 after a second, well inside the timeout
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    stats = run_detect(state, cfg)
    disp = Dispatcher(state, cfg)
    worker = threading.Thread(target=disp.deliver_due, kwargs={"destination": "siem"})
    slack_worker = threading.Thread(target=disp.deliver_due, kwargs={"destination": "chat"})
    worker.start()
    slack_worker.start()
    deadline = time.monotonic() + 60
    while (not receiver.received("/hook") or not receiver.received("/slack/")) and time.monotonic() < deadline:
        time.sleep(0.01)
    in_flight = {r.header("X-MinerWatch-Delivery") for r in receiver.received("/hook")}
    assert len(in_flight) == 1
    run_detect(state, cfg, [_resent(tmp_path, 20, "again.jsonl")])  # newer versions while the sends hang
    worker.join(10)
    slack_worker.join(10)
    receiver.set("/hook", "ok")
    receiver.set("/slack/", "ok")
    for _ in range(3):
        disp.deliver_due()
    disp.close()
    rows = _rows(state)
    first = next(r for r in rows if str(r.id) in in_flight)
    assert first.status == "delivered"  # it did go out, even though a newer version superseded it meanwhile
    same_alert = [r for r in rows if r.alert_id == first.alert_id and r.destination == "siem" and r.id != first.id]
    assert same_alert and all(r.event == "update" for r in same_alert)  # not a second "created"
    created = [r for r in receiver.accepted("/hook") if r.header("X-MinerWatch-Event") == "alert.created"]
    assert len({r.json["alert_id"] for r in created}) == len(created) == stats.alerts_new
    slack_alerts = [m.json["blocks"][-1]["elements"][0]["text"].split("`")[1] for m in receiver.accepted("/slack/")]
    assert sorted(slack_alerts) == sorted(set(slack_alerts))  # one Slack message per alert, never two


def test_dispatcher_reports_health_and_retries_what_recovered(tmp_path, receiver, secret_file):
    receiver.set("/pd", 401)
    cfg = _config(tmp_path, receiver, secret_file)
    state = tmp_path / "s.db"
    stats = run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        for _ in range(stats.alerts_new + 1):
            disp.deliver_due(destination="pager")
        health = disp.summary()
        assert health["pager"]["parked"] == stats.alerts_new and health["pager"]["pending"] == 0
        assert health["chat"]["pending"] == stats.alerts_new and health["chat"]["oldest_pending_seconds"] >= 0
        receiver.set("/pd", "ok")
        assert len(disp.retry("pager")["requeued"]) == stats.alerts_new
        assert disp.deliver_due(destination="pager").delivered == stats.alerts_new
        assert disp.summary()["pager"]["delivered"] == stats.alerts_new
