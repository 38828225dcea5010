"""The README's runnable shell blocks run as written, in a fresh copy of the checkout.

Marking a block runnable: put the HTML comment ``<!-- runnable -->`` (invisible when rendered) on the line right
before its opening fence, and open the fence as `````sh``. Such a block must run from the checkout's folder after
the Quickstart, with ``minerwatch`` on the PATH and nothing else prepared: it makes its own data (``minerwatch
generate ...``) or uses the bundled samples under ``minerwatch/data/samples/``, and reaches AWS only through a
local server it starts itself (moto, as the incident walk-through does). Blocks that need a real account stay
unmarked.

Each block runs in its own copy of the tracked files (``git ls-files``), with ``.venv`` pointing at the
environment running the tests, under ``bash -e`` (the first failing command fails the test), in a session of its
own so that servers it starts in the background are stopped afterwards. AWS credentials and configuration of the
machine are hidden from it.

The incident walk-through is marked differently: tests/respond/test_readme_incident.py runs it on a free port and
checks the response journal and audit rows it leaves.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKER = "<!-- runnable -->"
_FENCE = re.compile(r"^```sh\s*$")


def runnable_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the opening fence, body) of every ```sh block right after the marker line."""
    lines = text.splitlines()
    blocks: list[tuple[int, str]] = []
    for i, line in enumerate(lines[:-1]):
        if line.strip() != MARKER:
            continue
        if not _FENCE.match(lines[i + 1]):
            raise AssertionError(f"README.md:{i + 1}: {MARKER} must be followed by a ```sh fence")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise AssertionError(f"README.md:{i + 2}: unclosed ```sh block")
        blocks.append((i + 2, "\n".join(lines[i + 2 : end]) + "\n"))
    return blocks


BLOCKS = runnable_blocks(README.read_text(encoding="utf-8"))


def _copy_checkout(dest: Path) -> None:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        listed = b""
    names = [n for n in listed.decode().split("\0") if n]
    if not names:  # not a git checkout (an unpacked sdist): everything but the environment and caches
        skip = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".pytest_cache")
        shutil.copytree(REPO, dest, symlinks=True, dirs_exist_ok=True, ignore=skip)
        return
    for name in names:
        src = REPO / name
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "MINERWATCH_CONFIG"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(home)
    env["AWS_CONFIG_FILE"] = str(home / "no-aws-config")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(home / "no-aws-credentials")
    env.pop("VIRTUAL_ENV", None)
    return env


def test_the_readme_marks_its_command_blocks_runnable() -> None:
    assert len(BLOCKS) >= 2  # Commands and the demo (the incident walk-through: tests/respond/test_readme_incident.py)
    bodies = "".join(body for _, body in BLOCKS)
    for command in ("minerwatch detect", "minerwatch enrich", "minerwatch report", "minerwatch hunt"):
        assert command in bodies, command
    assert runnable_blocks("<!-- runnable -->\n```sh\necho hi\n```\n") == [(2, "echo hi\n")]
    with pytest.raises(AssertionError, match="must be followed by a ```sh fence"):
        runnable_blocks("<!-- runnable -->\n```\necho hi\n```\n")


@pytest.mark.parametrize("line,body", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs_verbatim(line: int, body: str, tmp_path: Path) -> None:
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    home.mkdir()
    _copy_checkout(checkout)
    (checkout / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    log = tmp_path / "output.txt"
    with log.open("wb") as out:  # a file, not a pipe: a server left in the background keeps a pipe open
        proc = subprocess.Popen(["bash", "-e", "-c", body], cwd=checkout, env=_environment(home), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=900)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the block left running in the background
            except ProcessLookupError:
                pass
            proc.wait()
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, f"README.md:{line}: the block failed (exit {proc.returncode}):\n{text[-6000:]}"
