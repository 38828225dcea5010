"""The README's incident walk-through, run as written (only the port changed to a free one) against a plain
``moto_server`` it starts itself: no patch of moto anywhere in the process that serves the API."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from minerwatch.alerting.state import StateStore
from minerwatch.respond.journal import DONE, ROLLED_BACK, Journal

REPO = Path(__file__).resolve().parents[2]
README_PORT = "5055"


def walkthrough() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Incident walk-through", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the walk-through has a shell block"
    return block.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_incident_walkthrough_runs_against_a_plain_moto_server(tmp_path: Path) -> None:
    commands = walkthrough()
    assert f"moto_server -H 127.0.0.1 -p {README_PORT}" in commands
    assert "respond $ALERT --execute" in commands and "respond $ALERT --rollback" in commands
    port = str(free_port())
    script = commands.replace(README_PORT, port)
    # The folder the README is run from: its scripts and the venv the Quickstart made.
    (tmp_path / "scripts").symlink_to(REPO / "scripts")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        AWS_CONFIG_FILE=str(tmp_path / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-aws-credentials"),
        USER="analyst",
    )
    # Stop the background server however the block ends.
    wrapped = "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n" + script
    proc = subprocess.Popen(
        ["bash", "-c", wrapped],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=900)
    finally:
        # Whatever happened, nothing the block started outlives the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    assert proc.returncode == 0, stdout[-4000:] + stderr[-4000:]
    assert "isolation incomplete" not in stdout

    store = StateStore(tmp_path / "incident" / "state.db")
    try:
        (alert,) = store.list_alerts()
        journal = Journal(store, alert["alert_id"])
        # Executed, then rolled back: isolation held (verified by what EC2 read back), keys deactivated.
        assert journal.status("isolate") == ROLLED_BACK, journal.all()
        assert journal.status("detach-profile") == ROLLED_BACK
        for step in ("tag", "evidence", "snapshot", "deactivate-keys", "stop"):
            assert journal.status(step) == DONE, (step, journal.get(step))
        isolate = journal.detail("isolate")
        assert isolate["instance_groups"] and isolate["originals"]
        actions = [e["action"] for e in store.audit_log(alert["alert_id"])]
    finally:
        store.close()
    assert "ec2:ModifyInstanceAttribute" in actions and "iam:UpdateAccessKey" in actions
    assert (tmp_path / "incident" / "case.html").stat().st_size > 0
