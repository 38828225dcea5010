"""Benchmark: the live path — ``minerwatch watch`` over EventBridge → SQS (moto) → a webhook, and over stdin.

Three measurements, each side by side with a baseline in the same run; figures are appended to
``bench/RESULTS.md``.

latency     moto's server runs in this process with an EventBridge rule for GuardDuty findings targeting two
            queues: one consumed by ``watch --sqs`` (a webhook destination pointing at a receiver in this
            process), one by a bare boto3 long-polling consumer (the transport baseline). Background findings
            that do not match go in at ``--rate`` a second; every ``--probe-interval`` seconds one crypto finding
            for a new instance is published alone, so it opens a new alert. Reported per probe: publish (after
            ``put_events`` returned) → webhook receipt, and publish → the bare consumer's receive; and, from
            watch's ``/metrics``, arrival → commit and arrival → notification delivered (the processing part).
throughput  watch is stopped, ``--backlog`` findings (2 % crypto) are queued, watch is started again: findings/s
            from its first to its last record (``/metrics``), against the bare consumer draining the same
            backlog (receive + delete, nothing else).
stdin       ``watch -`` over a JSON Lines file (``--stdin-mb``), wall time with process start, against
            ``detect -`` (the same streaming detection, no live loop) on the same file.

moto's SQS and EventBridge models are made faster in this process exactly as the test suite does (see
``speed_up_moto``): without that, moto's own per-message bookkeeping grows with queue depth and would dominate.

Usage: ``python bench/live.py [--quick] [--probes 300] [--rate 200] [--backlog 5000] [--stdin-mb 200]``
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "RESULTS.md"
MINERWATCH = [sys.executable, "-m", "minerwatch.cli"]
MIB = 1024 * 1024
PATTERN = {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}
REGION = "us-east-1"


# ------------------------------------------------------------------------------------------------ moto
def speed_up_moto() -> None:
    """moto reads the clock through naive-datetime arithmetic for every queued message on every call and
    recomputes all queue attributes per received message; EventBridge compiles the same JSONPath for every event.
    Read the clock with time.time(), the retention period directly, and cache the compiled paths."""
    import jsonpath_ng.ext
    from moto.sqs import models as sqs_models

    original = sqs_models.unix_time

    def unix_time(dt: datetime | None = None) -> float:
        return time.time() if dt is None else original(dt)

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()

    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = lambda dt=None: unix_time(dt) * 1000.0
    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = retained
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=512)(jsonpath_ng.ext.parse)


class Aws:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        speed_up_moto()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {
            **os.environ,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": REGION,
        }
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            self.env.pop(key, None)

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="bench",
                            aws_secret_access_key="bench")  # fmt: skip

    def bus(self, queues: list[str]) -> list[str]:
        sqs, events = self.client("sqs"), self.client("events")
        urls, targets = [], []
        for i, name in enumerate(queues):
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            urls.append(url)
            targets.append({"Id": f"q{i}", "Arn": arn})
        events.put_rule(Name="guardduty", EventPattern=json.dumps(PATTERN))
        events.put_targets(Rule="guardduty", Targets=targets)
        return urls

    def stop(self) -> None:
        self.server.stop()


def _entries(findings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": json.dumps(f)} for f in findings]


# -------------------------------------------------------------------------------------------- findings
def make_findings(n: int, seed: int, crypto_ratio: float) -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT))
    from minerwatch.generate.findings import generate_findings

    return list(generate_findings(n, seed, crypto_ratio=crypto_ratio))


def probe_from(template: dict[str, Any], n: int) -> dict[str, Any]:
    """A crypto finding for an instance of its own (a new alert), updated now."""
    f = json.loads(json.dumps(template))
    f["id"] = f"probe{n:06d}{uuid.uuid4().hex[:20]}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    f["updatedAt"] = f["createdAt"] = now
    f["resource"]["instanceDetails"]["instanceId"] = f"i-bench{n:011d}"
    return f


# ------------------------------------------------------------------------------------------- receivers
class Webhook:
    def __init__(self) -> None:
        self.receipts: dict[str, float] = {}
        self.calls = 0
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                record = json.loads(body)
                with hook.lock:
                    hook.calls += 1
                    for fid in record.get("finding_ids") or ():
                        hook.receipts.setdefault(fid, at)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


class BareConsumer:
    """The baseline: long-poll, note when probes arrive, delete. No parsing beyond finding the probe id."""

    def __init__(self, aws: Aws, url: str) -> None:
        self.sqs = aws.client("sqs")
        self.url = url
        self.receipts: dict[str, float] = {}
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        probe = re.compile(r'"id": "(probe[0-9a-f]+)"')
        while not self.stop.is_set():
            resp = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            now = time.time()
            msgs = resp.get("Messages") or []
            for m in msgs:
                if (hit := probe.search(m["Body"])) is not None:
                    self.receipts.setdefault(hit.group(1), now)
            if msgs:
                self.sqs.delete_message_batch(
                    QueueUrl=self.url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                for i, m in enumerate(msgs)]  # fmt: skip
                )
                self.count += len(msgs)


# -------------------------------------------------------------------------------------------- watch
class WatchProc:
    def __init__(self, args: list[str], env: dict[str, str], work: Path) -> None:
        self.err_path = work / f"watch-{time.monotonic_ns()}.err"
        self._err = open(self.err_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen([*MINERWATCH, "watch", *args], env=env, cwd=work, stdout=subprocess.DEVNULL,
                                     stderr=self._err)  # fmt: skip
        self.base = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.base:
            for line in self.err_path.read_text(errors="replace").splitlines():
                if "serving /healthz and /metrics on " in line:
                    self.base = line.rsplit(" ", 1)[-1]
            time.sleep(0.1)
        if not self.base:
            raise RuntimeError("watch did not start:\n" + self.err_path.read_text(errors="replace"))

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(self.base + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("minerwatch_watch_"):
                name, value = line.rsplit(" ", 1)
                q = re.search(r'quantile="([0-9.]+)"', name)
                key = name.split("{", 1)[0].removeprefix("minerwatch_watch_") + (f"@{q.group(1)}" if q else "")
                out[key] = float(value)
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self._err.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] if ordered else float("nan")


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values) * 1000:.1f} / {_pct(values, 0.99) * 1000:.1f}"


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------------------ SQS phases
def sqs_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    aws = Aws()
    try:
        watch_url, bare_url = aws.bus(["watch-q", "bare-q"])
        hook = Webhook()
        secret = work / "secret"
        secret.write_text("bench-secret")
        config = work / "minerwatch.yaml"
        config.write_text(json.dumps({"destinations": [
            {"name": "hook", "type": "webhook", "url": hook.url, "secret_file": str(secret)}]}))  # fmt: skip
        state = work / "sqs.db"
        watch_args = ["--sqs", watch_url, "--state", str(state), "--config", str(config), "--http", "0", "--quiet",
                      "--wait-seconds", "5"]  # fmt: skip
        background = make_findings(max(args.rate * 60, 2000), 3, 0.0)
        template = next(f for f in make_findings(400, 4, 0.2) if f["type"] == "CryptoCurrency:EC2/BitcoinTool.B!DNS")
        events = aws.client("events")
        bare = BareConsumer(aws, bare_url)
        watch = WatchProc(watch_args, aws.env, work)

        # -- latency under load
        published: dict[str, float] = {}
        stop_load = threading.Event()

        def load() -> None:
            i, step = 0, 10 / max(args.rate, 1)
            nxt = time.monotonic()
            while not stop_load.is_set():
                events.put_events(Entries=_entries(background[i % len(background) : i % len(background) + 10]))
                i += 10
                nxt += step
                time.sleep(max(0.0, nxt - time.monotonic()))

        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        probe_events = aws.client("events")
        time.sleep(2)  # let the load settle
        for n in range(args.probes):
            f = probe_from(template, n)
            probe_events.put_events(Entries=_entries([f]))
            published[f["id"]] = time.time()
            time.sleep(args.probe_interval)
        _wait(lambda: len(hook.receipts) >= len(published) and len(bare.receipts) >= len(published), 60)
        stop_load.set()
        loader.join()
        e2e = [hook.receipts[k] - t for k, t in published.items() if k in hook.receipts]
        transport = [bare.receipts[k] - t for k, t in published.items() if k in bare.receipts]
        m = watch.metrics()
        watch.stop()

        # -- throughput over a backlog
        _wait(lambda: bare.count > 0 and aws.client("sqs").get_queue_attributes(
            QueueUrl=bare_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
            "ApproximateNumberOfMessages"] == "0", 60)  # fmt: skip
        bare.stop.set()
        bare.thread.join()
        backlog = make_findings(args.backlog, 5, 0.02)
        for i in range(0, len(backlog), 10):
            events.put_events(Entries=_entries(backlog[i : i + 10]))
        watch = WatchProc(watch_args, aws.env, work)
        first = last = None
        while True:
            got = watch.metrics().get("records_total", 0)
            now = time.monotonic()
            if got > 0 and first is None:
                first = (now, got)
            if got >= args.backlog:
                last = (now, got)
                break
            time.sleep(0.05)
        watch_rate = (last[1] - first[1]) / max(1e-9, last[0] - first[0])
        watch.stop()
        drain = BareConsumer.__new__(BareConsumer)
        drain.sqs, drain.url, drain.receipts, drain.count = aws.client("sqs"), bare_url, {}, 0
        drain.stop = threading.Event()
        t0 = time.monotonic()
        drain.thread = threading.Thread(target=drain.run, daemon=True)
        drain.thread.start()
        _wait(lambda: drain.count >= args.backlog, 300)
        bare_rate = drain.count / (time.monotonic() - t0)
        drain.stop.set()
        return {
            "probes": len(published),
            "e2e": e2e,
            "transport": transport,
            "commit": (m.get("commit_seconds@0.5"), m.get("commit_seconds@0.99")),
            "delivery": (m.get("delivery_seconds@0.5"), m.get("delivery_seconds@0.99")),
            "alerts": m.get("alerts_new_total"),
            "failures": m.get("delivery_failures_total"),
            "watch_rate": watch_rate,
            "bare_rate": bare_rate,
        }
    finally:
        aws.stop()


# ---------------------------------------------------------------------------------------------- stdin
def ensure_data(size_mb: int, seed: int) -> tuple[Path, int]:
    sys.path.insert(0, str(ROOT))
    from minerwatch.generate.fast import FORMAT_VERSION, write_jsonl_fast

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / f"findings-{size_mb}mb-seed{seed}.jsonl"
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size and meta.get("format") == FORMAT_VERSION:
            return path, int(meta["lines"])
    meta = write_jsonl_fast(path, size_mb * MIB, seed, 0.02)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return path, int(meta["lines"])


def stdin_bench(args: argparse.Namespace, work: Path) -> list[tuple[str, float, int]]:
    path, lines = ensure_data(args.stdin_mb, 1)
    with open(path, "rb") as f:  # into the page cache, so no arm pays for the first read
        while f.read(16 * MIB):
            pass
    out = []
    for name, cmd in (
        ("watch -", ["watch", "-", "--quiet"]),
        ("watch - --reorder-window 2", ["watch", "-", "--quiet", "--reorder-window", "2"]),
        ("detect - (streaming)", ["detect", "-"]),
    ):
        best = None
        for i in range(args.repeat):
            state = work / f"stdin-{len(out)}-{i}.db"
            with open(path, "rb") as f:
                t0 = time.perf_counter()
                res = subprocess.run([*MINERWATCH, *cmd, "--state", str(state)], stdin=f, capture_output=True,
                                     check=False)  # fmt: skip
                seconds = time.perf_counter() - t0
            if res.returncode != 0:
                raise RuntimeError(f"{name} failed: {res.stderr.decode()[-2000:]}")
            best = seconds if best is None else min(best, seconds)
        out.append((name, best or 0.0, lines))
        print(f"  {name}: {lines / (best or 1):,.0f} findings/s", flush=True)
    return out


# --------------------------------------------------------------------------------------------- report
def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        cpu = next(x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                   if x.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    import botocore
    import moto

    return (f"{cpu}, {os.cpu_count()} ({usable} usable) cores; {platform.platform()}; Python "
            f"{platform.python_version()}, moto {moto.__version__}, botocore {botocore.__version__}")  # fmt: skip


def report(args: argparse.Namespace, sqs: dict[str, Any] | None, stdin: list[tuple[str, float, int]],
           load: tuple[float, float]) -> str:  # fmt: skip
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## live, watch over SQS and stdin — {when}", "",
             f"Command: `.venv/bin/python bench/live.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             f"Machine: {machine()}", "",
             f"Load average (1 min) before: {load[0]:.2f}, after: {load[1]:.2f} (2 cores shared with moto, the "
             "publisher, the receiver and the baseline consumer).", ""]  # fmt: skip
    if sqs is not None:
        def q(pair: tuple[float | None, float | None]) -> str:
            a, b = pair
            return "n/a" if a is None or b is None or a != a else f"{a * 1000:.1f} / {b * 1000:.1f}"

        lines += [
            f"SQS latency: {sqs['probes']} probe findings (each a new alert) every {args.probe_interval * 1000:.0f} ms "
            f"under {args.rate} background findings/s; watch with default settings (`--reorder-window 0`).", "",
            "| measure | median / p99 ms |", "|---|---:|",
            f"| publish → webhook receipt (end to end) | {_ms(sqs['e2e'])} |",
            f"| publish → receive by a bare boto3 consumer (moto transport, baseline) | {_ms(sqs['transport'])} |",
            f"| watch: arrival → commit (`/metrics` commit_seconds) | {q(sqs['commit'])} |",
            f"| watch: arrival → notification delivered (`/metrics` delivery_seconds): the processing part | "
            f"{q(sqs['delivery'])} |", "",
            f"Alerts created {sqs['alerts']:.0f}, delivery failures {sqs['failures']:.0f}.", "",
            "| SQS backlog drain | findings/s |", "|---|---:|",
            f"| watch --sqs ({args.backlog} queued, 2 % crypto) | {sqs['watch_rate']:,.0f} |",
            f"| bare consumer: receive + delete only (baseline) | {sqs['bare_rate']:,.0f} |", "",
        ]  # fmt: skip
    if stdin:
        lines += [f"stdin: `findings-{args.stdin_mb}mb-seed1.jsonl` ({stdin[0][2]:,} findings, 2 % crypto), from "
                  "the page cache; wall time with process start, best of "
                  f"{args.repeat}.", "", "| arm | seconds | findings/s |", "|---|---:|---:|"]  # fmt: skip
        lines += [f"| {name} | {sec:.2f} | {n / sec:,.0f} |" for name, sec, n in stdin]
        lines.append("")
    verdicts = []
    if sqs is not None and sqs["delivery"][0] is not None:
        median = sqs["delivery"][0] * 1000
        verdicts.append(f"processing median {median:.1f} ms ({'met' if median < 50 else 'NOT met'}: < 50 ms)")
    if stdin:
        rate = stdin[0][2] / stdin[0][1]
        verdicts.append(f"`watch -` {rate:,.0f} findings/s ({'met' if rate >= 20_000 else 'NOT met'}: ≥ 20,000)")
    lines.append("Targets (DESIGN §8): " + "; ".join(verdicts) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer probes, smaller backlog and stdin file")
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--probe-interval", type=float, default=0.1)
    ap.add_argument("--rate", type=int, default=200, help="background findings per second during probes")
    ap.add_argument("--backlog", type=int, default=5000)
    ap.add_argument("--stdin-mb", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip", default="", help="comma-separated: sqs, stdin")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    args = ap.parse_args(argv)
    if args.quick:
        args.probes, args.backlog, args.stdin_mb, args.repeat = 60, 1500, 50, 1
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="mw-live-bench-"))
    try:
        sqs = None
        if "sqs" not in skip:
            print("SQS: latency under load, then backlog throughput ...", flush=True)
            sqs = sqs_bench(args, work)
        stdin = []
        if "stdin" not in skip:
            print("stdin ...", flush=True)
            stdin = stdin_bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, sqs, stdin, (load_before, os.getloadavg()[0]))
    print("\n" + text)
    if not args.no_results:
        if not RESULTS.exists():
            RESULTS.write_text("# Benchmark results\n\nNewest last.\n")
        with open(RESULTS, "a") as f:
            f.write("\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
