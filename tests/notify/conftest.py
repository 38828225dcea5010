"""Real local receivers for notification tests: an HTTP server that can fail, hang and recover; helpers to run
detection into a state store with the outbox hook; a clock the tests move by hand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from minerwatch.alerting.detect import DetectOptions, DetectStats, detect
from minerwatch.notify.config import NotifyConfig, parse_config
from minerwatch.notify.outbox import transaction_hook
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE, SAMPLES_DIR

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FINDINGS = SAMPLES_DIR / "findings" / "findings.jsonl"
CRYPTO_SAMPLES = REPO / "tests" / "data" / "real" / "guardduty" / "elastic-test-guard_duty-crypto.jsonl"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    """What the receiver answered (0 while it is still deciding)."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        low = {k.lower(): v for k, v in self.headers.items()}
        return low.get(name.lower())


@dataclass
class Receiver:
    """Answers POSTs per path prefix: ``ok`` (200/202), an HTTP status number, ``hang`` (sleep ``hang_seconds``,
    then answer 200 — possibly to a client that gave up) or ``echo`` (500 with the request path in the body, as
    some servers do). Every request is recorded, answered or not."""

    modes: dict[str, str | int] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    hang_seconds: float = 3.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def set(self, prefix: str, mode: str | int) -> None:
        with self.lock:
            self.modes[prefix] = mode

    def mode_for(self, path: str) -> str | int:
        with self.lock:
            best = max((p for p in self.modes if path.startswith(p)), key=len, default=None)
            return self.modes[best] if best is not None else "ok"

    def received(self, prefix: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def accepted(self, prefix: str) -> list[Request]:
        """Requests answered with 2xx, i.e. delivered as far as the sender can know."""
        return [r for r in self.received(prefix) if 200 <= r.status < 300 and r.status != 0]


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Request(self.path, dict(self.headers.items()), body)
            with rx.lock:
                rx.requests.append(request)
            mode = rx.mode_for(self.path)
            if mode == "hang":
                time.sleep(rx.hang_seconds)
                mode = 200
            if mode == "ok":
                mode = 202 if self.path.startswith("/pd") else 200
            status = 500 if mode == "echo" else int(mode)
            if self.path.startswith("/pd") and status == 202:
                reply = json.dumps({"status": "success", "message": "Event processed", "dedup_key": "x"}).encode()
            elif mode == "echo":
                reply = f"no route for {self.path}".encode()
            else:
                reply = b"ok" if status < 300 else b"server trouble"
            request.status = status  # recorded before the client can see the answer (no race with the sender)
            try:
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                request.status = -1  # the client gave up (timeout) and never saw the answer

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rx = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    server.daemon_threads = True
    rx.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rx
    server.shutdown()
    server.server_close()


class FakeClock:
    def __init__(self, start: float | None = None) -> None:
        self.t = time.time() if start is None else start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def config_from(text: str, tmp_path: Path) -> NotifyConfig:
    path = tmp_path / "minerwatch.yaml"
    path.write_text(text)
    return parse_config(text, str(path))


def run_detect(
    state: Path, config: NotifyConfig, paths: list[Path] | None = None, include_samples: bool = False
) -> DetectStats:
    """Detection with the outbox hook, as ``minerwatch watch`` wires it."""
    options = DetectOptions(
        state=str(state), in_transaction=transaction_hook(config), include_samples=include_samples
    )
    return detect(load_rule(DEFAULT_RULE), [str(p) for p in paths or [SAMPLE_FINDINGS]], options)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "webhook.secret"
    path.write_text("hmac-shared-secret-value\n")
    return path
