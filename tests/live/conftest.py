"""Live-path fixtures: moto's server on 127.0.0.1 (EventBridge → SQS, S3), `minerwatch watch` as a subprocess,
a local webhook receiver and a local SMTP server that record what they get, and reference runs of `detect`."""

from __future__ import annotations

import email
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from moto.server import ThreadedMotoServer

from .motofast import speed_up_moto

REPO = Path(__file__).resolve().parents[2]
MINERWATCH = [sys.executable, "-m", "minerwatch.cli"]
GD_PATTERN = {"source": ["aws.guardduty"], "detail-type": ["GuardDuty Finding"]}
REGION = "us-east-1"


# -- AWS (moto) ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    speed_up_moto()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for boto3 in this process and in `watch` subprocesses: moto, dummy credentials, no profile."""
    values = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(key, raising=False)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **values}


def client(service: str, endpoint: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


@dataclass
class GuardDutyBus:
    """An EventBridge rule for GuardDuty findings targeting an SQS queue (with a dead-letter queue)."""

    endpoint: str
    name: str
    max_receive: int = 50
    """Receives before the redrive policy moves a message to the dead-letter queue."""
    queue_url: str = ""
    dlq_url: str = ""

    def __post_init__(self) -> None:
        sqs, events = client("sqs", self.endpoint), client("events", self.endpoint)
        self.dlq_url = sqs.create_queue(QueueName=f"{self.name}-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(self.max_receive)})
        self.queue_url = sqs.create_queue(QueueName=self.name, Attributes={"RedrivePolicy": redrive})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=self.name, EventPattern=json.dumps(GD_PATTERN))
        events.put_targets(Rule=self.name, Targets=[{"Id": "queue", "Arn": arn}])
        self._events = events
        self._sqs = sqs

    def publish(self, findings: list[dict[str, Any]], *, pause: float = 0.0) -> None:
        """``put_events`` in batches of 10, in the given order (EventBridge's own envelope around each)."""
        for i in range(0, len(findings), 10):
            entries = [
                {"Source": "aws.guardduty", "DetailType": "GuardDuty Finding", "Detail": json.dumps(f)}
                for f in findings[i : i + 10]
            ]
            resp = self._events.put_events(Entries=entries)
            assert resp["FailedEntryCount"] == 0, resp
            if pause:
                time.sleep(pause)

    def counts(self, url: str | None = None) -> tuple[int, int]:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=url or self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def drained(self) -> bool:
        return self.counts() == (0, 0)


# -- receivers ----------------------------------------------------------------------------------------------------


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str:
        return {k.lower(): v for k, v in self.headers.items()}["idempotency-key"]


@dataclass
class WebhookReceiver:
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def snapshot(self) -> list[Hit]:
        with self.lock:
            return list(self.hits)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.hits.append(Hit(self.path, dict(self.headers), body, time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


@dataclass
class SmtpReceiver:
    port: int
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> list[Message]:
        with self.lock:
            return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    from aiosmtpd.controller import Controller

    receiver = SmtpReceiver(port=0)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            with receiver.lock:
                receiver.messages.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as probe:  # aiosmtpd needs a concrete port (it connects to itself once started)
        probe.bind(("127.0.0.1", 0))
        receiver.port = int(probe.getsockname()[1])
    controller = Controller(Handler(), hostname="127.0.0.1", port=receiver.port)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


def notify_config(tmp_path: Path, webhook: WebhookReceiver | None, smtp: SmtpReceiver | None) -> Path:
    """minerwatch.yaml with a webhook (updates on) and an email destination, quick retries."""
    secret = tmp_path / "hook-secret"
    secret.write_text("s3cret-for-tests\n")
    dests: list[dict[str, Any]] = []
    if webhook is not None:
        dests.append({"name": "hook", "type": "webhook", "url": webhook.url, "secret_file": str(secret),
                      "timeout": "5s"})  # fmt: skip
    if smtp is not None:
        dests.append({"name": "mail", "type": "email", "host": "127.0.0.1", "port": smtp.port, "security": "none",
                      "from": "minerwatch@example.com", "to": ["soc@example.com"], "timeout": "5s"})  # fmt: skip
    path = tmp_path / "minerwatch.yaml"
    path.write_text(json.dumps({"retry": {"max_attempts": 20, "base_delay": "200ms", "max_delay": "1s"},
                                "destinations": dests}))  # fmt: skip
    return path


# -- running minerwatch -------------------------------------------------------------------------------------------


def write_jsonl(path: Path, findings: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    return path


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
            stdin: bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return subprocess.run(
        [*MINERWATCH, *args], input=stdin, capture_output=True, env=env, cwd=cwd or REPO, timeout=timeout, check=False
    )


def state_alerts(state: Path, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    res = run_cli(["alerts", "list", "--json", "--state", str(state)], env=env)
    assert res.returncode == 0, res.stderr.decode()
    return [json.loads(x) for x in res.stdout.decode().splitlines() if x.strip()]


def detect_alerts(tmp_path: Path, findings: list[dict[str, Any]], name: str = "ref") -> list[dict[str, Any]]:
    """`detect` (the backtest) over the same findings, in a state store of its own."""
    data = write_jsonl(tmp_path / f"{name}.jsonl", findings)
    state = tmp_path / f"{name}.db"
    res = run_cli(["detect", str(data), "--state", str(state)])
    assert res.returncode == 0, res.stderr.decode()
    return state_alerts(state)


def comparable(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alert records without the status (new/updated depends on which run created the alert)."""
    return sorted(({k: v for k, v in a.items() if k != "status"} for a in alerts), key=lambda a: a["alert_id"])


class Watch:
    """A `minerwatch watch` subprocess."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, stdin: Any = None) -> None:
        self.args = args
        stamp = time.monotonic_ns()
        self.log = cwd / f"watch-{stamp}.err"
        self.out = cwd / f"watch-{stamp}.out"
        self._err = open(self.log, "wb")  # noqa: SIM115 (closed in wait)
        self._out = open(self.out, "wb")  # noqa: SIM115 (closed in wait)
        self.proc = subprocess.Popen(
            [*MINERWATCH, "watch", *args], env=env, cwd=cwd, stdin=stdin, stdout=self._out, stderr=self._err
        )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def http_base(self, timeout: float = 30) -> str:
        """The /healthz and /metrics address the process announced (``--http 0`` picks a free port)."""
        found: list[str] = []

        def announced() -> bool:
            for line in self.stderr().splitlines():
                if "serving /healthz and /metrics on " in line:
                    found.append(line.rsplit(" ", 1)[-1].strip())
                    return True
            return False

        wait_for(announced, timeout, what="the --http announcement")
        return found[0]

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> int:
        self.proc.kill()
        return self.wait(30)

    def wait(self, timeout: float = 60) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            self._err.close()
            self._out.close()
        return code

    def stdout_lines(self) -> list[str]:
        return self.out.read_text().splitlines()


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def metric_value(text: str, name: str) -> float:
    """The value of ``minerwatch_watch_<name>`` in a /metrics page."""
    for line in text.splitlines():
        if line.startswith(f"minerwatch_watch_{name}{{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {name} in:\n{text}")


def watch_metric(base: str, name: str) -> float:
    return metric_value(http_get(base + "/metrics")[1], name)


def wait_for(predicate: Any, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
