"""One real console for the module's tests: ``minerwatch serve`` as a subprocess on 127.0.0.1 (a free port) over a
state store filled by the real commands — the compromise scenario (``generate scenario`` → ``detect`` →
``enrich`` of its demo alert), an alert for an instance launched in moto's server (for the response), and an
alert whose finding carries hostile text. Users of every role are added with ``minerwatch users add``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).parents[1] / "respond"))

from respond_env import REGION, finding_for, launch  # noqa: E402

DEMO_ALERT = "mw-de780aeb738882db5195"
PASSWORD = "correct horse battery"
USERS = {
    "vic": "viewer", "ana": "analyst", "rita": "responder", "rex": "responder", "ada": "admin", "locked": "analyst",
    "pat": "viewer",
}  # fmt: skip

SCRIPT = "<script>alert('xss-title')</script>"
IMG = '<img src=x onerror="alert(\'xss-img\')">'
ANSI = "\x1b[31mred\x1b[0m\x1b]0;pwned\x07"
HOSTILE_TITLE = f"{SCRIPT} {{{{7*7}}}} {ANSI}"
HOSTILE_DESCRIPTION = f"{IMG} {{% raw %}}{{{{ config }}}} ${{7*7}} {ANSI}"
HOSTILE_TAG = f"{SCRIPT}{IMG}"
HOSTILE_INSTANCE = "i-0fee1dead0badc0de"

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One worker runs every console test (`-n 2 --dist loadgroup`), one after another: one console and one moto
    # account serve them all, and no other module's test resets moto's accounts under the console's incident.
    for item in items:
        if "tests/console/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group("console"))


def mw(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, check: bool = True) -> Any:
    """Run the real CLI in a subprocess."""
    res = subprocess.run(
        [sys.executable, "-m", "minerwatch.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    if check:
        assert res.returncode == 0, f"minerwatch {' '.join(args)}: {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def hostile_finding() -> dict[str, Any]:
    f = finding_for(HOSTILE_INSTANCE, finding_id="0badc0de0badc0de0badc0de0badc0de")
    f["title"] = HOSTILE_TITLE
    f["description"] = HOSTILE_DESCRIPTION
    f["resource"]["instanceDetails"]["tags"] = [{"key": HOSTILE_TAG, "value": "{{7*7}}" + ANSI}]
    return f


class _Opened(httpx.Client):
    def __enter__(self) -> _Opened:
        return self


@dataclass
class Console:
    url: str
    state: Path
    allowlist: Path
    root: Path
    scenario: Path
    env: dict[str, str]
    moto_url: str
    incident: dict[str, Any]
    incident_alert: str
    hostile_alert: str
    log: list[str] = field(default_factory=list)

    def client(self, user: str | None = None) -> _Opened:
        """An HTTP client, logged in as ``user`` through the login form (cookie session) when given."""
        c = _Opened(base_url=self.url, follow_redirects=False, timeout=60)
        httpx.Client.__enter__(c)  # opened here, as the login below sends requests; callers close it with ``with``
        if user:
            login(c, user)
        return c

    def token(self, user: str) -> str:
        return str(mw("users", "token", user, "--state", str(self.state), env=self.env).stdout.strip())


def login(c: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    page = c.get("/login")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    return c.post("/login", data={"username": user, "password": password, "csrf": csrf, "next": "/queue"})


def csrf_of(c: httpx.Client) -> str:
    page = c.get("/queue")
    return page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    # moto's accounts live in the process, shared by every moto server in it: start from none, as the other
    # modules' fixtures do (their tests never run between these, see pytest_collection_modifyitems)
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).read()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_ENDPOINT_URL=moto_url,
        AWS_CONFIG_FILE=str(root / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(root / "no-aws-credentials"),
    )
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        if k.startswith("AWS_"):
            mp.setenv(k, v)
    state = root / "state.db"
    scenario = root / "scenario"
    mw("generate", "scenario", "--out", str(scenario), env=env)
    mw("detect", str(scenario / "guardduty"), "--state", str(state), env=env)
    mw(
        "enrich", DEMO_ALERT, "--cloudtrail", str(scenario / "cloudtrail"), "--flow", str(scenario / "vpcflow"),
        "--dns", str(scenario / "route53"), "--findings", str(scenario / "guardduty"),
        "--metrics", str(scenario / "metrics" / "cpu.jsonl"), "--state", str(state), env=env,
    )  # fmt: skip
    incident = launch(root)
    extra = root / "extra-findings.jsonl"
    extra.write_text(
        json.dumps(finding_for(incident["instance_id"])) + "\n" + json.dumps(hostile_finding()) + "\n",
        encoding="utf-8",
    )
    out = mw("detect", str(extra), "--state", str(state), env=env).stdout
    alerts = {a["key"]["instance_id"]: a["alert_id"] for a in (json.loads(x) for x in out.splitlines() if x[:1] == "{")}
    for name, role in USERS.items():
        mw("users", "add", name, "--role", role, "--password-stdin", "--state", str(state), stdin=PASSWORD + "\n",
           env=env)  # fmt: skip
    allowlist = root / "allow.yaml"
    allowlist.write_text("# reviewed exceptions\n", encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "minerwatch.cli", "serve", "--state", str(state), "--port", "0",
         "--allowlist", str(allowlist), "--evidence", str(root / "evidence")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.append(line)
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    url = None
    while url is None:
        line = lines.get(timeout=120)
        if not line:
            raise AssertionError("minerwatch serve ended before serving:\n" + "".join(log))
        if line.startswith("serving "):
            url = line.split()[1].rstrip("/")
    try:
        yield Console(
            url=url,
            state=state,
            allowlist=allowlist,
            root=root,
            scenario=scenario,
            env=env,
            moto_url=moto_url,
            incident=incident,
            incident_alert=alerts[incident["instance_id"]],
            hostile_alert=alerts[HOSTILE_INSTANCE],
            log=log,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        moto.stop()
        mp.undo()
