"""/healthz and /metrics, the Prometheus rendering, and the CLI's choice of source."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

from minerwatch.live.http import PROMETHEUS_TYPE, HealthServer
from minerwatch.live.metrics import Metrics

from .conftest import run_cli

_SAMPLE = re.compile(r'^minerwatch_watch_[a-z_]+\{source="(?:[^"\\]|\\.)*"(,quantile="0\.\d+")?\} (NaN|-?[0-9.e+-]+)$')


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_metrics_are_valid_prometheus_text_with_escaped_labels() -> None:
    m = Metrics('sqs://queue"with\\odd\nname')
    m.records, m.matches, m.alerts, m.rejects = 10, 3, 2, 1
    for s in (0.001, 0.002, 0.003, 0.004, 0.5):
        m.observe_commit(s)
    text = m.render()
    samples = [x for x in text.splitlines() if not x.startswith("#")]
    assert samples and all(_SAMPLE.match(x) for x in samples), [x for x in samples if not _SAMPLE.match(x)]
    assert 'source="sqs://queue\\"with\\\\odd\\nname"' in text
    assert 'minerwatch_watch_records_total{source="sqs://queue\\"with\\\\odd\\nname"} 10' in text
    assert re.search(r'commit_seconds\{[^}]*quantile="0.5"\} 0.003\b', text)
    assert re.search(r"commit_seconds_count\{[^}]*\} 5\b", text)
    helps = [x.split()[2] for x in text.splitlines() if x.startswith("# TYPE")]
    assert len(helps) == len(set(helps))


def test_healthz_reports_a_stalled_loop_and_metrics_are_served() -> None:
    m = Metrics("-")
    state = {"ok": False}

    def health() -> tuple[bool, dict[str, object]]:
        return state["ok"], {"status": "ok" if state["ok"] else "stalled"}

    server = HealthServer(m, health).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        code, ctype, body = _get(base + "/healthz")
        assert code == 503 and json.loads(body) == {"status": "stalled"} and ctype == "application/json"
        state["ok"] = True
        assert _get(base + "/healthz")[0] == 200
        code, ctype, body = _get(base + "/metrics")
        assert code == 200 and ctype == PROMETHEUS_TYPE and "minerwatch_watch_matches_total" in body
        assert _get(base + "/metrics?x=1")[0] == 200
        assert _get(base + "/other")[0] == 404
    finally:
        server.stop()


def test_watch_needs_exactly_one_source(tmp_path: Path) -> None:
    res = run_cli(["watch", "--state", str(tmp_path / "s.db")])
    assert res.returncode == 2 and b"exactly one source" in res.stderr
    res = run_cli(["watch", "-", "--follow", "x.jsonl", "--state", str(tmp_path / "s.db")])
    assert res.returncode == 2 and b"exactly one source" in res.stderr
    res = run_cli(["watch", "some/folder", "--state", str(tmp_path / "s.db")])
    assert res.returncode == 2 and b"use detect for files" in res.stderr
    res = run_cli(["watch", "--s3", "s3:///nobucket", "--state", str(tmp_path / "s.db")])
    assert res.returncode == 2 and b"not an S3 URL with a bucket" in res.stderr
