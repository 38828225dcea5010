"""A server that echoes the request back in its error body (path, query values, credentials, decoded or not)
never gets a secret into the outbox's last_error, ``outbox deliver`` or ``outbox list``."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.notify.outbox import list_rows, open_outbox

from .conftest import config_from, run_detect

runner = CliRunner()
SECRETS = ("QueryTok3nInline", "Pa55wordXyz", "alice-user", "EnvTok3n+Value/x", "EnvTok3n%2BValue", "hmac-shared")


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = " ".join(v for _, v in parse_qsl(urlsplit(self.path).query))
        auth = self.headers.get("Authorization", "")
        user = base64.b64decode(auth.split()[1]).decode() if auth.startswith("Basic ") else "-"
        reply = (
            f"rejected {self.path} (decoded {unquote(self.path)}); bad token(s) {query}; credentials {user}; "
            f"signature {self.headers.get('X-MinerWatch-Signature')}"
        ).encode()
        self.send_response(400)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"{host}:{port}"
    server.shutdown()


def test_echoed_url_tokens_and_credentials_are_redacted(tmp_path, echo_base, secret_file, monkeypatch):
    monkeypatch.setenv("MW_TEST_HOOK", f"http://{echo_base}/env-hook?api_key=EnvTok3n%2BValue%2Fx&v=2")
    monkeypatch.chdir(tmp_path)
    text = f"""
retry: {{max_attempts: 1, base_delay: 0s, max_delay: 0s}}
destinations:
  - name: inline
    type: webhook
    url: "http://alice-user:Pa55wordXyz@{echo_base}/hook?token=QueryTok3nInline&mode=x"
    secret_file: "{secret_file}"
  - {{name: env, type: webhook, url_env: MW_TEST_HOOK, secret_file: "{secret_file}"}}
"""
    cfg = config_from(text, tmp_path)
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    config = str(tmp_path / "minerwatch.yaml")
    delivered = runner.invoke(app, ["outbox", "deliver", "--state", str(state), "--config", config])
    listed = runner.invoke(app, ["outbox", "list", "--state", str(state), "--config", config, "--all"])
    as_json = runner.invoke(app, ["outbox", "list", "--state", str(state), "--config", config, "--all", "--json"])
    db = open_outbox(state)
    try:
        stored = " ".join(r.last_error or "" for r in list_rows(db))
    finally:
        db.close()
    assert "HTTP 400" in stored and "rejected" in stored and "credentials" in stored
    for output in (delivered.output, listed.output, as_json.output, stored):
        for secret in SECRETS:
            assert secret not in output, f"{secret} leaked"
    assert Path(config).exists()
