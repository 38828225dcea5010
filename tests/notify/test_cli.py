"""The acceptance path through the CLI: one destination failing with 500s is retried with backoff, parked after
the limit, reported by ``outbox list`` and delivered once by ``outbox retry`` after it recovers, while the other
destinations are unaffected. Also ``notify test`` and ``alerts close`` → PagerDuty resolve."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from minerwatch.alerting.state import StateStore
from minerwatch.cli.all_commands import app
from minerwatch.notify.outbox import list_rows, open_outbox

from .conftest import Receiver, config_from, run_detect

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(monkeypatch, receiver, tmp_path):
    monkeypatch.setenv("MW_TEST_SLACK", f"{receiver.base}/slack/T000/B000/SlackTokenSecret")
    monkeypatch.setenv("MW_TEST_PD", "pd-routing-key-0123456789abcdef")
    monkeypatch.delenv("MINERWATCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./minerwatch.yaml


def _write_config(tmp_path: Path, rx: Receiver, secret_file: Path, max_attempts: int = 3) -> Path:
    path = tmp_path / "minerwatch.yaml"
    path.write_text(
        f"""
retry: {{max_attempts: {max_attempts}, base_delay: 0s, max_delay: 0s}}
destinations:
  - {{name: chat, type: slack, url_env: MW_TEST_SLACK}}
  - {{name: siem, type: webhook, url: "{rx.base}/hook", secret_file: "{secret_file}"}}
  - {{name: pager, type: pagerduty, routing_key_env: MW_TEST_PD, url: "{rx.base}/pd"}}
"""
    )
    return path


def _list(state: Path, cfg: Path) -> dict:
    res = runner.invoke(app, ["outbox", "list", "--state", str(state), "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_failing_destination_is_parked_listed_and_delivered_once_by_retry(tmp_path, receiver, secret_file):
    receiver.set("/hook", 500)
    cfg_path = _write_config(tmp_path, receiver, secret_file)
    state = tmp_path / "state.db"
    stats = run_detect(state, config_from(cfg_path.read_text(), tmp_path))
    n = stats.alerts_new
    assert n >= 2

    parking_passes = 0
    for _ in range(3 * n + 2):
        res = runner.invoke(app, ["outbox", "deliver", "--state", str(state), "--config", str(cfg_path)])
        parked_now = int(re.search(r"parked (\d+)$", res.stdout.strip()).group(1))  # type: ignore[union-attr]
        assert res.exit_code == (1 if parked_now else 0), res.output  # a pass that parks a row fails
        parking_passes += parked_now > 0
        if _list(state, cfg_path)["destinations"]["siem"]["parked"] == n:
            break
    assert parking_passes >= 1
    listing = _list(state, cfg_path)
    counts = listing["destinations"]
    assert counts["siem"] == {**counts["siem"], "parked": n, "pending": 0, "delivered": 0}
    assert counts["chat"]["delivered"] == counts["pager"]["delivered"] == n  # unaffected
    parked = listing["rows"]
    assert {r["destination"] for r in parked} == {"siem"} and all(r["attempts"] == 3 for r in parked)
    assert all("HTTP 500" in r["last_error"] for r in parked)
    assert len(receiver.received("/hook")) == 3 * n  # every attempt reached the server

    table = runner.invoke(app, ["outbox", "list", "--state", str(state), "--config", str(cfg_path)])
    assert table.exit_code == 0 and "parked" in table.output and "HTTP 500" in table.output
    assert "SlackTokenSecret" not in table.output

    receiver.set("/hook", "ok")
    res = runner.invoke(app, ["outbox", "retry", "--state", str(state), "--config", str(cfg_path)])
    assert res.exit_code == 0, res.output
    assert f"re-queued {n} parked row(s)" in res.stdout and f"delivered {n}" in res.stdout

    accepted = receiver.accepted("/hook")
    keys = Counter(r.header("Idempotency-Key") for r in accepted)
    assert len(keys) == n and set(keys.values()) == {1}  # each row delivered exactly once after recovery
    by_row: dict[str, set[str | None]] = {}
    for r in receiver.received("/hook"):
        by_row.setdefault(r.header("X-MinerWatch-Delivery") or "", set()).add(r.header("Idempotency-Key"))
    assert all(len(k) == 1 for k in by_row.values())  # failed attempts and the success share the key
    assert len(receiver.accepted("/slack/")) == len(receiver.accepted("/pd")) == n  # nothing re-sent elsewhere
    after = _list(state, cfg_path)["destinations"]["siem"]
    assert after["delivered"] == n and after["parked"] == 0

    again = runner.invoke(app, ["outbox", "retry", "--state", str(state), "--config", str(cfg_path)])
    assert again.exit_code == 0 and "re-queued 0 parked row(s)" in again.stdout
    assert len(receiver.accepted("/hook")) == n


def test_retry_one_row_by_id(tmp_path, receiver, secret_file):
    receiver.set("/hook", 400)  # permanent: parked at the first attempt
    cfg_path = _write_config(tmp_path, receiver, secret_file)
    state = tmp_path / "state.db"
    run_detect(state, config_from(cfg_path.read_text(), tmp_path))
    for _ in range(5):
        runner.invoke(app, ["outbox", "deliver", "--state", str(state), "--config", str(cfg_path)])
    parked = _list(state, cfg_path)["rows"]
    assert len(parked) >= 2
    receiver.set("/hook", "ok")
    res = runner.invoke(app, ["outbox", "retry", str(parked[0]["id"]), "--state", str(state), "--config",
                              str(cfg_path)])
    assert res.exit_code == 0, res.output
    assert [r.header("Idempotency-Key") for r in receiver.accepted("/hook")] == [parked[0]["key"]]
    assert len(_list(state, cfg_path)["rows"]) == len(parked) - 1


def test_alerts_close_resolves_the_pagerduty_incident(tmp_path, receiver, secret_file):
    cfg_path = _write_config(tmp_path, receiver, secret_file)
    state = tmp_path / "state.db"
    run_detect(state, config_from(cfg_path.read_text(), tmp_path))
    runner.invoke(app, ["outbox", "deliver", "--state", str(state), "--config", str(cfg_path)])
    alert = StateStore(state).list_alerts()[0]

    res = runner.invoke(app, ["alerts", "close", alert["alert_id"], "--state", str(state), "--config", str(cfg_path)])
    assert res.exit_code == 0, res.output
    assert f"{alert['alert_id']}: closed" in res.stdout
    resolve = [r.json for r in receiver.accepted("/pd") if r.json["event_action"] == "resolve"]
    assert resolve == [{"routing_key": "pd-routing-key-0123456789abcdef", "event_action": "resolve",
                        "dedup_key": alert["alert_id"]}]
    closed_hook = [r for r in receiver.accepted("/hook") if r.header("X-MinerWatch-Event") == "alert.closed"]
    assert [r.header("Idempotency-Key") for r in closed_hook] == [f"{alert['alert_id']}:v{alert['event_count']}:closed"]
    assert StateStore(state).get_alert(alert["alert_id"])["status"] == "closed"


def test_alerts_close_uses_the_config_in_the_working_directory(tmp_path, receiver, secret_file):
    cfg_path = _write_config(tmp_path, receiver, secret_file)  # tmp_path is the working directory
    state = tmp_path / "state.db"
    run_detect(state, config_from(cfg_path.read_text(), tmp_path))
    runner.invoke(app, ["outbox", "deliver", "--state", str(state)])
    alert = StateStore(state).list_alerts()[0]
    receiver.set("/pd", 503)
    res = runner.invoke(app, ["alerts", "ack", alert["alert_id"], "--state", str(state)])
    assert res.exit_code == 0, res.output
    rows = list_rows(open_outbox(state), alert_id=alert["alert_id"], destination="pager")
    assert rows[-1].event == "acknowledge" and rows[-1].status == "pending"  # queued, not lost
    receiver.set("/pd", "ok")
    runner.invoke(app, ["outbox", "deliver", "--state", str(state)])
    assert receiver.accepted("/pd")[-1].json["event_action"] == "acknowledge"


def test_notify_test_sends_a_synthetic_alert_and_reports_failures_without_secrets(tmp_path, receiver, secret_file):
    cfg_path = _write_config(tmp_path, receiver, secret_file)
    for name, prefix in (("chat", "/slack/"), ("siem", "/hook"), ("pager", "/pd")):
        res = runner.invoke(app, ["notify", "test", name, "--config", str(cfg_path)])
        assert res.exit_code == 0, res.output
        assert "delivered test alert mw-test-" in res.stdout
        assert len(receiver.accepted(prefix)) == 1
    assert "test notification" in json.dumps(receiver.accepted("/slack/")[0].json).lower()

    receiver.set("/slack/", "echo")
    res = runner.invoke(app, ["notify", "test", "chat", "--config", str(cfg_path)])
    assert res.exit_code == 1
    assert "HTTP 500" in res.output and "SlackTokenSecret" not in res.output and "T000" not in res.output

    missing = runner.invoke(app, ["notify", "test", "nope", "--config", str(cfg_path)])
    assert missing.exit_code == 2 and "chat, siem, pager" in missing.output
