"""Benchmark: the triage console (``minerwatch serve``) over a large state store and under concurrent use.

Two measurements; figures are appended to ``bench/RESULTS.md``.

store     ``--alerts`` alerts (default 100,000) in the state store, written through ``StateStore.save_alert``
          from one real alert (``detect`` over a real sample finding) with distinct keys, times, statuses and
          severities. One client times ``--requests`` requests each of: the queue's first page, a filtered page
          (status + account), the 200th page (keyset cursor), a case page, and ``/api/alerts``. Baseline, side by
          side: the same queue query called in this process (:func:`minerwatch.console.store.queue`), so the
          ratio is what HTTP, authentication and rendering add. Target: p95 < 200 ms for the queue's first page,
          a filtered page and a case page.
load      ``--clients`` concurrent clients (threads, each with its own API token) browse for ``--seconds``:
          queue pages with random filters, case pages, the live-refresh poll, while ``minerwatch watch -``
          ingests generated findings from stdin into the same state file. Reported: requests, errors (any
          status but 200), p50/p95/max page time, and whether ``watch`` finished cleanly (no "database is
          locked").

Usage: ``python bench/console.py [--alerts 100000] [--requests 60] [--clients 20] [--seconds 60]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minerwatch.alerting.alerts import Alert, iso  # noqa: E402
from minerwatch.alerting.state import StateStore  # noqa: E402
from minerwatch.console import store as S  # noqa: E402

SAMPLE = ROOT / "tests" / "data" / "real" / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"
STATUSES = ("new", "updated", "acknowledged", "closed")
SEVERITIES = ("critical", "high", "medium")


def mw(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "minerwatch.cli", *args], capture_output=True, text=True, **kw)


def template_alert(work: Path) -> dict[str, Any]:
    """One real alert: ``detect`` over the real sample finding (made non-sample)."""
    doc = json.loads(SAMPLE.read_text().splitlines()[0])
    doc["service"]["additionalInfo"]["sample"] = False
    path = work / "one.jsonl"
    path.write_text(json.dumps(doc) + "\n")
    res = mw("detect", str(path), "--state", str(work / "template.db"), check=False)
    lines = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    assert lines, res.stderr
    return lines[0]


def fill(state: Path, n: int, template: dict[str, Any]) -> float:
    t0 = time.perf_counter()
    store = StateStore(state)
    rng = random.Random(1)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    store.begin()
    for i in range(n):
        rec = json.loads(json.dumps(template))
        account = f"{100000000000 + i % 400:012d}"
        instance = f"i-{i:017x}"
        first = start + timedelta(minutes=7 * i + rng.randrange(0, 5))
        last = first + timedelta(minutes=rng.randrange(1, 110))
        rec.update(
            alert_id=f"mw-{i:020x}",
            key={"accountid": account, "instance_id": instance},
            first_seen=iso(first),
            last_seen=iso(last),
            status=STATUSES[rng.randrange(4)],
            severity=SEVERITIES[i % 3],
            finding_ids=[f"{i:032x}"],
        )
        rec["fields"] = {**rec.get("fields", {}), "instance_id": instance, "accountid": account}
        rec["groups"] = [{**g, "accountid": account, "instance_id": instance} for g in rec.get("groups", [])]
        alert = Alert.from_json(rec, None)
        store.save_alert(alert, json.dumps(rec["key"], sort_keys=True), 1)
        if i % 5000 == 4999:
            store.commit()
            store.begin()
    store.commit()
    store.close()
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Server:
    def __init__(self, state: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "minerwatch.cli", "serve", "--state", str(state), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("serving "):
            raise SystemExit(f"serve did not start: {line}{self.proc.stdout.read()}")
        self.url = line.split()[1].rstrip("/")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def time_requests(c: httpx.Client, path: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = c.get(path)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:200])
    return out


def store_bench(state: Path, url: str, token: str, n: int) -> list[dict[str, Any]]:
    c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    store = StateStore(state)
    account = f"{100000000000 + 7:012d}"
    # the 200th page's cursor, found by walking the API
    after = None
    for _ in range(199):
        after = c.get("/api/alerts", params={"limit": 50, **({"after": after} if after else {})}).json()["next"]
    case_id = c.get("/api/alerts", params={"limit": 1}).json()["alerts"][0]["alert_id"]
    arms = [
        ("queue, first page", "/queue", S.QueueFilter()),
        ("queue, filtered (status+account)", f"/queue?status=acknowledged&account={account}",
         S.QueueFilter(status="acknowledged", account=account)),
        ("queue, filtered (severity)", "/queue?severity=high", S.QueueFilter(severity="high")),
        ("queue, page 200 (cursor)", f"/queue?after={after}", S.QueueFilter(after=after)),
        ("queue, text search", "/queue?text=i-000000000000003e7", S.QueueFilter(text="i-000000000000003e7")),
        ("case page", f"/alerts/{case_id}", None),
        ("api/alerts first page", "/api/alerts", S.QueueFilter()),
    ]  # fmt: skip
    rows = []
    for name, path, f in arms:
        time_requests(c, path, 3)  # warm
        http = time_requests(c, path, n)
        lib: list[float] = []
        if f is not None:
            for _ in range(n):
                t0 = time.perf_counter()
                S.queue(store, f)
                lib.append((time.perf_counter() - t0) * 1000)
        rows.append(
            {
                "arm": name,
                "p50": statistics.median(http),
                "p95": pct(http, 95),
                "lib_p95": pct(lib, 95) if lib else None,
            }
        )
    c.close()
    store.close()
    return rows


def load_bench(state: Path, url: str, tokens: list[str], seconds: float, work: Path) -> dict[str, Any]:
    # findings for watch: generated, fed to its stdin during the run
    gen = work / "gen"
    mw("generate", "findings", "--n", "20000", "--seed", "7", "--out", str(gen), "--shapes", "jsonl", check=True)
    files = sorted(p for p in (gen / "findings").rglob("*.jsonl") if p.is_file())
    watch = subprocess.Popen(
        [sys.executable, "-m", "minerwatch.cli", "watch", "-", "--state", str(state)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()
    fed = [0]

    def feeder() -> None:
        assert watch.stdin is not None
        for f in files:
            for line in f.read_text().splitlines():
                if stop.is_set():
                    break
                watch.stdin.write(line + "\n")
                fed[0] += 1
                if fed[0] % 200 == 0:
                    watch.stdin.flush()
                    stop.wait(0.05)  # about 4,000 findings/s, spread over the run
        watch.stdin.close()

    times: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    auth = {"Authorization": f"Bearer {tokens[0]}"}
    ids = [a["alert_id"] for a in httpx.get(f"{url}/api/alerts", params={"limit": 200}, headers=auth).json()["alerts"]]

    def client(token: str, seed: int) -> None:
        rng = random.Random(seed)
        c = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.35:
                path = "/queue?" + rng.choice(["", "status=new", "severity=critical", "status=closed&sort=last_seen"])
            elif kind < 0.7:
                path = f"/alerts/{rng.choice(ids)}"
            elif kind < 0.9:
                path = "/api/alerts/version"
            else:
                path = f"/queue?account={100000000000 + rng.randrange(400):012d}"
            t0 = time.perf_counter()
            try:
                r = c.get(path)
                ok = r.status_code == 200
                why = f"{path}: {r.status_code}"
            except httpx.HTTPError as exc:
                ok, why = False, f"{path}: {exc}"
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                times.append(ms)
                if not ok:
                    errors.append(why)
        c.close()

    threads = [threading.Thread(target=client, args=(t, i)) for i, t in enumerate(tokens)]
    feed = threading.Thread(target=feeder)
    t0 = time.perf_counter()
    feed.start()
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join()
    feed.join()
    assert watch.stderr is not None
    err = watch.stderr.read()
    watch.wait(timeout=300)
    elapsed = time.perf_counter() - t0
    return {
        "requests": len(times),
        "errors": len(errors),
        "error_examples": errors[:3],
        "rps": len(times) / elapsed,
        "p50": statistics.median(times) if times else float("nan"),
        "p95": pct(times, 95),
        "max": max(times) if times else float("nan"),
        "watch_rc": watch.returncode,
        "watch_locked": "database is locked" in err,
        "fed": fed[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--no-results", action="store_true", help="Do not append to bench/RESULTS.md.")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mw-console-bench-") as tmp:
        work = Path(tmp)
        state = work / "state.db"
        fill_s = fill(state, args.alerts, template_alert(work))
        print(f"filled {args.alerts:,} alerts in {fill_s:.1f} s", flush=True)
        users = [f"u{i}" for i in range(args.clients)]
        for u in users:
            mw("users", "add", u, "--role", "analyst", "--password-stdin", "--state", str(state),
               input="benchmark-password\n", check=True)  # fmt: skip
        tokens = [mw("users", "token", u, "--state", str(state), check=True).stdout.strip() for u in users]
        load_before = os.getloadavg()[0]
        server = Server(state)
        t_start = time.perf_counter()
        try:
            rows = store_bench(state, server.url, tokens[0], args.requests)
            load = load_bench(state, server.url, tokens, args.seconds, work)
        finally:
            server.stop()
        load_after = os.getloadavg()[0]
        _ = t_start
    table = [
        "| page | p50 ms | p95 ms | library query p95 ms | ratio p95 HTTP / library | target p95 < 200 ms |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = f"{r['p95'] / r['lib_p95']:.1f}" if r["lib_p95"] else ""
        lib = f"{r['lib_p95']:.1f}" if r["lib_p95"] is not None else ""
        target = ("met" if r["p95"] < 200 else "NOT met") if r["arm"] in (
            "queue, first page", "queue, filtered (status+account)", "case page") else ""  # fmt: skip
        table.append(f"| {r['arm']} | {r['p50']:.1f} | {r['p95']:.1f} | {lib} | {ratio} | {target} |")
    load_line = (
        f"Load: {args.clients} clients for {args.seconds:.0f} s while `watch -` ingested {load['fed']:,} findings "
        f"from stdin: {load['requests']:,} requests ({load['rps']:.0f}/s), {load['errors']} errors, page time p50 "
        f"{load['p50']:.0f} ms, p95 {load['p95']:.0f} ms, max {load['max']:.0f} ms; watch exit {load['watch_rc']}"
        f"{', database is locked seen' if load['watch_locked'] else ', no database is locked'}."
    )
    if load["error_examples"]:
        load_line += " Errors: " + "; ".join(load["error_examples"])
    text = "\n".join(
        [
            f"## console, {args.alerts:,} alerts — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M')} UTC",
            "",
            f"Command: `.venv/bin/python bench/console.py --alerts {args.alerts} --requests {args.requests} "
            f"--clients {args.clients} --seconds {args.seconds:g}`",
            "",
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
            f"{platform.python_version()}. Load average (1 min) before: {load_before:.2f}, after: {load_after:.2f}.",
            "",
            f"One client, {args.requests} requests per page after 3 warm-up requests, each timed from request to "
            "the last byte (HTTP on 127.0.0.1, token auth, server-rendered HTML):",
            "",
            *table,
            "",
            load_line,
            "",
        ]
    )
    print(text)
    if not args.no_results:
        with (ROOT / "bench" / "RESULTS.md").open("a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
