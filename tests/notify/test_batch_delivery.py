"""Batch ``detect`` and ``watch -`` notify like the live service: new and updated alerts go through the outbox to
the configured destinations and are delivered before the command exits (a bounded wait: ``--drain-timeout``)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.notify.outbox import open_outbox

from .conftest import SAMPLE_FINDINGS, Receiver

runner = CliRunner()
MINERWATCH = [sys.executable, "-m", "minerwatch.cli"]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver, tmp_path: Path) -> None:
    monkeypatch.setenv("MW_TEST_SLACK", f"{receiver.base}/slack/T000/B000/SlackTokenSecret")
    monkeypatch.delenv("MINERWATCH_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./minerwatch.yaml


def _config(path: Path, rx: Receiver, secret_file: Path, retry: str = "{max_attempts: 3, base_delay: 0s}") -> Path:
    path.write_text(
        f"""
retry: {retry}
destinations:
  - {{name: chat, type: slack, url_env: MW_TEST_SLACK}}
  - {{name: siem, type: webhook, url: "{rx.base}/hook", secret_file: "{secret_file}"}}
"""
    )
    return path


def _outbox(state: Path) -> list[tuple[str, str, str, str]]:
    db = open_outbox(state)
    try:
        return db.execute("SELECT destination, alert_id, event, status FROM notify_outbox ORDER BY id").fetchall()
    finally:
        db.close()


def _alert_ids(stdout: str) -> set[str]:
    return {orjson.loads(line)["alert_id"] for line in stdout.splitlines() if line.startswith("{")}


def _hook_alerts(rx: Receiver) -> list[str]:
    return [r.header("Idempotency-Key").rsplit(":", 1)[0] for r in rx.received("/hook")]


def _recover_after_first_failure(rx: Receiver, prefix: str) -> threading.Thread:
    """Answer 500 until the first request to ``prefix`` has been seen, then accept: a retry has to happen."""
    rx.set(prefix, 500)

    def watch() -> None:
        deadline = time.monotonic() + 120
        while not rx.received(prefix) and time.monotonic() < deadline:
            time.sleep(0.01)
        rx.set(prefix, "ok")

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_detect_with_config_delivers_new_alerts_before_it_exits(
    tmp_path: Path, receiver: Receiver, secret_file: Path
) -> None:
    cfg = _config(tmp_path / "notify.yaml", receiver, secret_file)
    state = tmp_path / "state.db"
    res = runner.invoke(app, ["detect", str(SAMPLE_FINDINGS), "--state", str(state), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    alerts = _alert_ids(res.stdout)
    assert len(alerts) >= 2
    rows = _outbox(state)
    # One trigger per alert and destination, every one delivered by the time detect returned.
    assert sorted((d, a, e) for d, a, e, _ in rows) == sorted(
        (d, a, "trigger") for d in ("chat", "siem") for a in alerts
    )
    assert {s for *_, s in rows} == {"delivered"}
    assert sorted(_hook_alerts(receiver)) == sorted(alerts)
    assert len(receiver.received("/slack/")) == len(alerts)
    assert f"notifications: {2 * len(alerts)} sent" in res.stderr

    # A rerun over the same input changes no alert: nothing is queued or sent again.
    again = runner.invoke(app, ["detect", str(SAMPLE_FINDINGS), "--state", str(state), "--config", str(cfg)])
    assert again.exit_code == 0, again.output
    assert len(_outbox(state)) == len(rows) and len(receiver.received("/hook")) == len(alerts)


def test_detect_finds_minerwatch_yaml_in_the_working_directory_and_notifies_updates(
    tmp_path: Path, receiver: Receiver, secret_file: Path
) -> None:
    _config(tmp_path / "minerwatch.yaml", receiver, secret_file)  # what `watch` discovers, without --config
    state = tmp_path / "state.db"
    res = runner.invoke(app, ["detect", str(SAMPLE_FINDINGS), "--state", str(state)])
    assert res.exit_code == 0, res.output
    first = [orjson.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert first and {s for *_, s in _outbox(state)} == {"delivered"}

    # A later delivery of one of the alert's findings (same instance, ten minutes on) updates that alert.
    target = first[0]
    by_id = {f["id"]: f for f in (orjson.loads(x) for x in SAMPLE_FINDINGS.read_bytes().splitlines() if x.strip())}
    finding = by_id[target["finding_ids"][0]]
    later = datetime.fromisoformat(finding["updatedAt"].replace("Z", "+00:00")) + timedelta(minutes=10)
    more = tmp_path / "later.jsonl"
    more.write_bytes(orjson.dumps({**finding, "updatedAt": later.isoformat().replace("+00:00", "Z")}) + b"\n")
    res2 = runner.invoke(app, ["detect", str(more), "--state", str(state)])
    assert res2.exit_code == 0, res2.output
    assert _alert_ids(res2.stdout) == {target["alert_id"]}
    rows = _outbox(state)
    assert {s for *_, s in rows} == {"delivered"}
    assert [(d, e) for d, a, e, _ in rows if a == target["alert_id"]] == [
        ("chat", "trigger"),
        ("siem", "trigger"),
        ("siem", "update"),  # Slack is told about new alerts only (its default)
    ]
    assert _hook_alerts(receiver).count(target["alert_id"]) == 2
    assert receiver.received("/hook")[-1].header("X-MinerWatch-Event") != receiver.received("/hook")[0].header(
        "X-MinerWatch-Event"
    )


def test_detect_waits_for_a_retry_within_the_drain_timeout(
    tmp_path: Path, receiver: Receiver, secret_file: Path
) -> None:
    cfg = _config(tmp_path / "n.yaml", receiver, secret_file, "{max_attempts: 100, base_delay: 200ms, max_delay: 1s}")
    helper = _recover_after_first_failure(receiver, "/hook")
    state = tmp_path / "state.db"
    res = runner.invoke(app, ["detect", str(SAMPLE_FINDINGS), "--state", str(state), "--config", str(cfg)])
    helper.join()
    assert res.exit_code == 0, res.output
    rows = _outbox(state)
    assert {s for *_, s in rows} == {"delivered"}
    assert receiver.received("/hook")[0].status == 500  # the first attempt failed; detect waited for the retry
    assert len(receiver.received("/hook")) > len(_alert_ids(res.stdout))


def test_a_zero_drain_timeout_leaves_failed_rows_queued_and_says_so(
    tmp_path: Path, receiver: Receiver, secret_file: Path
) -> None:
    receiver.set("/hook", 503)
    cfg = _config(tmp_path / "n.yaml", receiver, secret_file, "{max_attempts: 5, base_delay: 1h}")
    state = tmp_path / "state.db"
    args = ["detect", str(SAMPLE_FINDINGS), "--state", str(state), "--config", str(cfg), "--drain-timeout", "0"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    n = len(_alert_ids(res.stdout))
    statuses = {(d, s) for d, _, _, s in _outbox(state)}
    assert statuses == {("chat", "delivered"), ("siem", "pending")}
    assert f"notifications: {n} sent, {n} queued (see `minerwatch outbox list`)" in res.stderr
    assert "siem: delivered 0, retrying 1" in res.stderr  # the destination stops at its first failure


def test_watch_stdin_drains_the_outbox_before_it_exits(tmp_path: Path, receiver: Receiver, secret_file: Path) -> None:
    # The first delivery fails and is retried 300 ms later: only a drain at the end of the input delivers it.
    cfg = _config(tmp_path / "n.yaml", receiver, secret_file, "{max_attempts: 100, base_delay: 300ms, max_delay: 1s}")
    helper = _recover_after_first_failure(receiver, "/hook")
    state = tmp_path / "state.db"
    res = subprocess.run(
        [*MINERWATCH, "watch", "-", "--state", str(state), "--config", str(cfg), "--drain-timeout", "120"],
        input=SAMPLE_FINDINGS.read_bytes(),
        capture_output=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    helper.join()
    assert res.returncode == 0, res.stderr.decode()
    alerts = _alert_ids(res.stdout.decode())
    rows = _outbox(state)
    assert len(alerts) >= 2 and {a for _, a, _, _ in rows} == alerts
    assert {s for *_, s in rows} == {"delivered"}, rows
    assert receiver.received("/hook")[0].status == 500
    assert "notifications:" in res.stderr.decode() and "queued" not in res.stderr.decode()
