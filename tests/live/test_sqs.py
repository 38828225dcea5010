"""`watch --sqs` end to end against moto's server: put_events → EventBridge rule → SQS → watch → a local webhook
receiver and a local SMTP server; compared with `detect` (the backtest) over the same findings."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from minerwatch.alerting.state import StateStore
from minerwatch.generate.findings import generate_findings

from .conftest import (
    GuardDutyBus,
    SmtpReceiver,
    Watch,
    WebhookReceiver,
    client,
    comparable,
    detect_alerts,
    http_get,
    metric_value,
    notify_config,
    state_alerts,
    wait_for,
    watch_metric,
)


def _final_keys(alerts: list[dict[str, Any]]) -> set[str]:
    return {f"{a['alert_id']}:v{a['event_count']}" for a in alerts}


def _same_body_per_key(hits: list[Any]) -> dict[str, int]:
    """Idempotency: every delivery of one key carries the same body. Returns how often each key came."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    for h in hits:
        bodies[h.key].add(h.body)
    assert all(len(b) == 1 for b in bodies.values()), {k: len(b) for k, b in bodies.items() if len(b) > 1}
    counts: dict[str, int] = defaultdict(int)
    for h in hits:
        counts[h.key] += 1
    return counts


def test_eventbridge_to_webhook_and_email_gives_the_alerts_of_detect(
    tmp_path: Path, aws_env: dict[str, str], webhook: WebhookReceiver, smtp: SmtpReceiver
) -> None:
    findings = list(generate_findings(800, 11, crypto_ratio=0.06))
    expected = detect_alerts(tmp_path, findings)
    assert len(expected) >= 5
    bus = GuardDutyBus(aws_env["AWS_ENDPOINT_URL"], "gd-e2e")
    state = tmp_path / "watch.db"
    config = notify_config(tmp_path, webhook, smtp)
    watch = Watch(
        ["--sqs", bus.queue_url, "--state", str(state), "--config", str(config), "--reorder-window", "2",
         "--wait-seconds", "1", "--http", "0", "--quiet"],
        aws_env, tmp_path,
    )  # fmt: skip
    try:
        base = watch.http_base()
        bus.publish(findings)  # while watch is running: the generator's delivery order, a few minutes of jitter
        wait_for(bus.drained, 180, what="the queue to drain")
        want = _final_keys(expected)
        wait_for(lambda: want <= {h.key for h in webhook.snapshot()}, 60, what="webhook deliveries")
        wait_for(lambda: len({m["X-MinerWatch-Idempotency-Key"] for m in smtp.snapshot()}) >= len(expected), 60,
                 what="mails")  # fmt: skip

        code, health = http_get(base + "/healthz")
        assert code == 200 and json.loads(health)["status"] == "ok"
        code, metrics = http_get(base + "/metrics")
        assert code == 200
        assert metric_value(metrics, "records_total") == len(findings)
        assert metric_value(metrics, "alerts_new_total") == len(expected)
        assert metric_value(metrics, "rejects_total") == 0
        assert metric_value(metrics, "deliveries_total") >= len(expected) * 2  # a mail and a webhook call each
        assert metric_value(metrics, "delivery_failures_total") == 0
        assert "minerwatch_watch_source_lag_seconds{" in metrics
        assert "# TYPE minerwatch_watch_commit_seconds summary" in metrics
        assert http_get(base + "/nope")[0] == 404
    finally:
        code = watch.terminate()
    assert code == 0, watch.stderr()

    # The state: exactly the backtest's alerts (same ids, finding ids, groups, fields, statuses).
    assert state_alerts(state) == expected
    # The webhook: every alert, its last call carrying the final record; one body per idempotency key.
    hits = webhook.snapshot()
    _same_body_per_key(hits)
    last: dict[str, dict[str, Any]] = {}
    for h in hits:
        body = h.json
        if body["event_count"] >= last.get(body["alert_id"], {}).get("event_count", 0):
            last[body["alert_id"]] = body
    assert comparable(list(last.values())) == comparable(expected)
    assert {h.headers.get("X-MinerWatch-Event") for h in hits} <= {"alert.created", "alert.updated"}
    # Email: one mail per alert (new alerts only, the destination's default), keyed like the webhook.
    mails = smtp.snapshot()
    keys = [m["X-MinerWatch-Idempotency-Key"] for m in mails]
    assert {k.split(":")[0] for k in keys} == {a["alert_id"] for a in expected}
    assert all(m["Message-ID"] for m in mails)


def test_a_message_that_cannot_be_processed_is_a_reject_and_goes_to_the_dead_letter_queue(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    bus = GuardDutyBus(aws_env["AWS_ENDPOINT_URL"], "gd-rejects", max_receive=2)
    sqs = client("sqs", aws_env["AWS_ENDPOINT_URL"])
    good = list(generate_findings(60, 3, crypto_ratio=0.2))
    bad_json = sqs.send_message(QueueUrl=bus.queue_url, MessageBody="{not json")["MessageId"]
    not_finding = sqs.send_message(
        QueueUrl=bus.queue_url,
        MessageBody=json.dumps({"detail-type": "EC2 Instance State-change Notification", "detail": {"x": 1}}),
    )["MessageId"]
    bus.publish(good)
    state, rejects = tmp_path / "s.db", tmp_path / "rejects.jsonl"
    args = ["--sqs", bus.queue_url, "--state", str(state), "--rejects", str(rejects), "--wait-seconds", "1",
            "--visibility-timeout", "1", "--reject-visibility", "1", "--quiet"]  # fmt: skip
    watch = Watch(args, aws_env, tmp_path)
    try:
        wait_for(lambda: bus.counts(bus.dlq_url)[0] == 2, 60, what="both bad messages in the dead-letter queue")
        wait_for(lambda: bus.counts() == (0, 0), 30, what="the queue to drain")
    finally:
        assert watch.terminate() == 0, watch.stderr()
    lines = [json.loads(x) for x in rejects.read_text().splitlines()]
    by_file = {r["file"]: r for r in lines}
    # One reject line per bad message, however often it was received before the redrive moved it.
    assert len(lines) == 2, lines
    assert by_file[f"sqs://gd-rejects/{bad_json}"]["reason"].startswith("invalid JSON")
    assert by_file[f"sqs://gd-rejects/{not_finding}"]["reason"].startswith("not a GuardDuty finding")
    assert all(r["line"] is None for r in lines)
    dead = sqs.receive_message(QueueUrl=bus.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert {m["MessageId"] for m in dead} == {bad_json, not_finding}
    assert state_alerts(state) == detect_alerts(tmp_path, good)


def test_visibility_is_extended_while_findings_are_held(tmp_path: Path, aws_env: dict[str, str]) -> None:
    # maxReceiveCount 1: a message received a second time goes to the dead-letter queue, so any message whose
    # visibility ran out while it was held would end up there.
    bus = GuardDutyBus(aws_env["AWS_ENDPOINT_URL"], "gd-extend", max_receive=1)
    findings = list(generate_findings(120, 13, crypto_ratio=0.4))
    bus.publish(findings)
    state = tmp_path / "s.db"
    watch = Watch(["--sqs", bus.queue_url, "--state", str(state), "--reorder-window", "5", "--visibility-timeout", "2",
                   "--wait-seconds", "1", "--quiet"], aws_env, tmp_path)  # fmt: skip
    try:
        wait_for(bus.drained, 60, what="the queue to drain")
    finally:
        assert watch.terminate() == 0, watch.stderr()
    assert bus.counts(bus.dlq_url) == (0, 0)
    assert state_alerts(state) == detect_alerts(tmp_path, findings)


def test_sigterm_finishes_cleanly_and_a_restart_resumes(tmp_path: Path, aws_env: dict[str, str]) -> None:
    findings = list(generate_findings(400, 5, crypto_ratio=0.1))
    findings.sort(key=lambda f: (f["updatedAt"], f["id"]))  # in order: no reorder window needed
    bus = GuardDutyBus(aws_env["AWS_ENDPOINT_URL"], "gd-sigterm")
    bus.publish(findings[:200])
    state, stats = tmp_path / "s.db", tmp_path / "stats.json"
    args = ["--sqs", bus.queue_url, "--state", str(state), "--wait-seconds", "1", "--quiet"]
    first = Watch([*args, "--stats-json", str(stats)], aws_env, tmp_path)
    wait_for(lambda: bus.counts()[0] < 150, 60, what="watch to start consuming")
    assert first.terminate() == 0, first.stderr()
    done = json.loads(stats.read_text())
    assert 0 < done["records_read"] <= 200
    # Nothing half-done: every message is either deleted (its effect committed) or visible again at once.
    visible, inflight = bus.counts()
    assert inflight == 0 and visible + done["records_read"] == 200
    with sqlite3.connect(state) as db:
        pos = json.loads(db.execute("SELECT position FROM live_positions").fetchone()[0])
        assert pos["clean"] is True
        assert db.execute("SELECT finished FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0] is not None
    bus.publish(findings[200:])
    second = Watch(args, aws_env, tmp_path)
    wait_for(bus.drained, 60, what="the queue to drain")
    assert second.terminate() == 0, second.stderr()
    assert comparable(state_alerts(state)) == comparable(detect_alerts(tmp_path, findings))


def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path, aws_env: dict[str, str],
                                                webhook: WebhookReceiver) -> None:  # fmt: skip
    findings = list(generate_findings(2500, 21, crypto_ratio=0.05))
    expected = detect_alerts(tmp_path, findings)
    bus = GuardDutyBus(aws_env["AWS_ENDPOINT_URL"], "gd-kill")
    state = tmp_path / "watch.db"
    config = notify_config(tmp_path, webhook, None)
    # The visibility timeout bounds how long after a kill the next process still finds the dead one's messages in
    # flight (and says so): 30 s leaves a slow start on a busy machine (up to 15 s seen) well inside it.
    args = ["--sqs", bus.queue_url, "--state", str(state), "--config", str(config), "--reorder-window", "2",
            "--visibility-timeout", "30", "--wait-seconds", "1", "--quiet"]  # fmt: skip
    publisher = threading.Thread(target=bus.publish, args=(findings,), kwargs={"pause": 0.03})
    publisher.start()
    rng = random.Random(9)
    kills = 0
    try:
        while kills < 8 and (publisher.is_alive() or not bus.drained()):
            watch = Watch([*args, "--http", "0"], aws_env, tmp_path)
            base = watch.http_base(60)
            # Killed in the middle of its work: once it has polled and read a random number of records (or there
            # is nothing left to read).
            target = rng.randint(1, 150)

            def busy(base: str = base, target: int = target) -> bool:
                if watch_metric(base, "polls_total") < 1:
                    return False
                return watch_metric(base, "records_total") >= target or (
                    not publisher.is_alive() and bus.counts()[0] == 0
                )

            wait_for(busy, 120, what="records to be read")
            assert watch.proc.poll() is None, watch.stderr()
            watch.kill()
            kills += 1
    except BaseException:
        publisher.join()
        raise
    last = Watch(args, aws_env, tmp_path)  # consumes while the rest is published
    try:
        publisher.join()
        wait_for(bus.drained, 180, what="the queue to drain")
        want = _final_keys(expected)
        wait_for(lambda: want <= {h.key for h in webhook.snapshot()}, 120, what="webhook deliveries")
    finally:
        assert last.terminate() == 0, last.stderr()
    assert kills >= 4
    logs = [p.read_text(errors="replace") for p in tmp_path.glob("watch-*.err")]
    # Every restart after a kill held findings for the messages coming back.
    assert sum("did not stop cleanly" in x for x in logs) == kills

    # The state equals a clean run: alerts (with statuses), suppressions and seen deliveries.
    assert state_alerts(state) == expected
    ref = StateStore(tmp_path / "ref.db")
    got = StateStore(state)
    try:
        assert got.suppressions() == ref.suppressions()
        seen = "SELECT rule_id, finding_id, updated_at FROM seen ORDER BY 1, 2, 3"
        assert got.db.execute(seen).fetchall() == ref.db.execute(seen).fetchall()
    finally:
        got.close()
        ref.close()
    # Every alert delivered at least once in its final version; duplicates share key and body.
    counts = _same_body_per_key(webhook.snapshot())
    assert _final_keys(expected) <= set(counts)
