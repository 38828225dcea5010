"""Crashes lose nothing: outbox rows commit with their alerts; a dispatcher killed mid-send is replaced by one that
sends the row again, with the same idempotency key."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from minerwatch.alerting.state import StateStore
from minerwatch.notify.outbox import Dispatcher, list_rows, open_outbox
from minerwatch.rules.shipped import SAMPLES_DIR

from .conftest import Receiver, config_from, run_detect

PY = sys.executable


def _config_text(rx: Receiver, secret: Path, timeout: float = 10) -> str:
    return textwrap.dedent(f"""\
        retry: {{max_attempts: 5, base_delay: 0s}}
        destinations:
          - {{name: siem, type: webhook, url: "{rx.base}/hook", secret_file: "{secret}", timeout: {timeout}}}
          - {{name: pager, type: pagerduty, routing_key_env: MW_TEST_PD, url: "{rx.base}/pd"}}
        """)


def test_a_crash_inside_the_detection_transaction_keeps_alerts_and_outbox_in_step(tmp_path, receiver, secret_file):
    cfg_path = tmp_path / "minerwatch.yaml"
    cfg_path.write_text(_config_text(receiver, secret_file))
    state = tmp_path / "s.db"
    inputs = SAMPLES_DIR / "findings"
    script = textwrap.dedent(f"""
        import os, signal
        from minerwatch.alerting.detect import DetectOptions, detect
        from minerwatch.notify import load_config, enqueue
        from minerwatch.rules.loader import load_rule
        from minerwatch.rules.shipped import DEFAULT_RULE
        cfg = load_config({str(cfg_path)!r})
        calls = 0
        def hook(store, records):
            global calls
            enqueue(store, records, cfg)
            calls += 1
            if calls == 4:
                os.kill(os.getpid(), signal.SIGKILL)   # rows written, transaction not committed
        detect(load_rule(DEFAULT_RULE), [{str(inputs)!r}],
               DetectOptions(state={str(state)!r}, in_transaction=hook, batch_rows=1))
    """)
    proc = subprocess.run([PY, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()

    def in_step() -> tuple[set[str], set[tuple[str, str]]]:
        alerts = {a["alert_id"] for a in StateStore(state).list_alerts()}
        db = open_outbox(state)
        rows = {(r.destination, r.alert_id) for r in list_rows(db)}
        db.close()
        assert rows == {(d, a) for d in ("siem", "pager") for a in alerts}
        return alerts, rows

    before, _ = in_step()
    assert before  # the first batches committed, each with its notifications

    cfg = config_from(cfg_path.read_text(), tmp_path)
    run_detect(state, cfg, [inputs])  # the next run finishes the job
    after, _ = in_step()
    clean = tmp_path / "clean.db"
    run_detect(clean, cfg, [inputs])
    assert after == {a["alert_id"] for a in StateStore(clean).list_alerts()}


def test_a_dispatcher_killed_mid_send_is_finished_by_the_next_one(tmp_path, receiver, secret_file, monkeypatch):
    monkeypatch.setenv("MW_TEST_PD", "pd-key")
    receiver.set("/hook", "hang")
    receiver.hang_seconds = 8.0
    cfg_path = tmp_path / "minerwatch.yaml"
    cfg_path.write_text(_config_text(receiver, secret_file, timeout=30))
    cfg = config_from(cfg_path.read_text(), tmp_path)
    state = tmp_path / "s.db"
    stats = run_detect(state, cfg)
    script = textwrap.dedent(f"""
        from minerwatch.notify import Dispatcher, load_config
        Dispatcher({str(state)!r}, load_config({str(cfg_path)!r})).deliver_due(destination="siem")
    """)
    proc = subprocess.Popen([PY, "-c", script], env={**os.environ})
    try:
        deadline = time.monotonic() + 30
        while not receiver.received("/hook") and time.monotonic() < deadline:
            time.sleep(0.02)
        first = receiver.received("/hook")
        assert len(first) == 1  # the request is out; its answer will never be recorded
    finally:
        proc.kill()
        proc.wait()
    row = list_rows(open_outbox(state), destination="siem", ids=None)[0]
    assert row.status == "pending" and row.lease_until is not None  # leased by a process that is gone

    receiver.set("/hook", "ok")
    with Dispatcher(state, cfg) as disp:  # "restart": the dead owner's lease is released at once
        result = disp.deliver_due()
    assert result.destinations["siem"].delivered == stats.alerts_new
    assert result.destinations["pager"].delivered == stats.alerts_new
    same_row = [r for r in receiver.received("/hook") if r.header("X-MinerWatch-Delivery") == str(row.id)]
    assert len(same_row) == 2  # at least once: the receiver saw it twice ...
    assert {r.header("Idempotency-Key") for r in same_row} == {row.key}  # ... with one key, so it drops one
    assert same_row[0].body == same_row[1].body
    assert all(r.status == "delivered" for r in list_rows(open_outbox(state)))
