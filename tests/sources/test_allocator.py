"""Batch reading reuses freed large buffers once ``keep_freed_buffers`` has run (glibc): reading gzip flow logs again
faults in far fewer fresh pages. ``minerwatch hunt`` sets it before its sweep."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import minerwatch.allocator
import minerwatch.hunt.sweep
from minerwatch.cli.all_commands import app
from minerwatch.generate.flows import write_flow_files

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's allocator only"
)

# Reads one file through the batch reader (inflate, joins) eight times, as a sweep worker on a machine it fills
# does: without the read-ahead thread, so every pass holds the same buffers at once whatever the machine's load
# (with the thread, how far it got ahead changed the heap's high-water mark from run to run). Prints the page faults
# of the last four passes, which only buffers kept for reuse avoid.
_PASSES = """
import json, resource, sys
from minerwatch.allocator import keep_freed_buffers
from minerwatch.sources import inputs
from minerwatch.sources.records import ReadStats
kept = keep_freed_buffers() if sys.argv[1] == "keep" else None
inputs.read_ahead_from_disk_only()
faults = []
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for inp in inputs.iter_inputs([sys.argv[2]], lambda *a: None, ReadStats()):
        for _chunk in inp.chunks:
            pass
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": sum(faults[4:])}))
"""


def _passes(mode: str, path: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PASSES, mode, str(path)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@glibc
def test_freed_buffers_are_reused(tmp_path: Path) -> None:
    meta = write_flow_files(tmp_path, 250_000, 1, seed=2, processes=1)  # about 30 MB of text, 9 MB gzip
    path = Path(meta["files"][0]["path"])
    default = _passes("default", path)
    kept = _passes("keep", path)
    assert kept["kept"] is True
    # Measured: 13,000-14,000 faults by default against a few (under 10) with the setting.
    assert kept["faults"] * 3 < default["faults"], (kept, default)


def test_hunt_sets_it_before_sweeping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_hunt = minerwatch.hunt.sweep.hunt

    def keep() -> bool:
        calls.append("allocator")
        return True

    def hunt(*args: object, **kwargs: object) -> object:
        calls.append("sweep")
        return real_hunt(*args, **kwargs)

    monkeypatch.setattr(minerwatch.allocator, "keep_freed_buffers", keep)
    monkeypatch.setattr(minerwatch.hunt.sweep, "hunt", hunt)
    write_flow_files(tmp_path / "flow", 1_000, 1, seed=3, processes=1)
    result = CliRunner().invoke(
        app, ["hunt", "--flow", str(tmp_path / "flow"), "--format", "json", "--state", str(tmp_path / "s.db")]
    )
    assert result.exit_code == 0, result.output
    assert calls == ["allocator", "sweep"]
