"""Reading one large file in parallel byte ranges gives exactly what one sequential read gives."""

from __future__ import annotations

import dataclasses
import fcntl
import gc
import gzip
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import orjson
import pytest

from minerwatch import scratch
from minerwatch.alerting import detect as detect_module
from minerwatch.alerting.detect import DetectOptions, Detector, detect
from minerwatch.alerting.state import StateStore
from minerwatch.compile.prefilter import make_prefilter
from minerwatch.errors import InputError
from minerwatch.generate.findings import generate_findings
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE
from minerwatch.sources import inputs


def test_parallel_ranges_equal_a_sequential_read(tmp_path):
    findings = list(generate_findings(3000, seed=8, crypto_ratio=0.1))
    lines = [orjson.dumps(f) for f in findings]
    # Rejects spread over the file, so their line numbers must be made absolute across ranges.
    for at in (5, 900, 1700, 2600):
        lines.insert(at, b'{"type": "CryptoCurrency:EC2/BitcoinTool.B", "broken": ')
    lines.insert(2000, b"\xff\xfe not utf-8 CryptoCurrency")
    data = tmp_path / "big.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    rule = load_rule(DEFAULT_RULE)

    def run(name: str, workers: int) -> tuple[dict, list[dict], bytes]:
        opts = DetectOptions(
            state=str(tmp_path / f"{name}.db"),
            rejects=str(tmp_path / f"{name}.rejects.jsonl"),
            workers=workers,
            parallel_min_bytes=1,
        )
        stats = detect(rule, [str(data)], opts).to_json()
        stats.pop("seconds")
        stats.pop("rejects_file")
        rejects = [
            {k: v for k, v in orjson.loads(x).items() if k != "run_id"}
            for x in (tmp_path / f"{name}.rejects.jsonl").read_bytes().splitlines()
        ]
        return stats, rejects, orjson.dumps(StateStore(opts.state).list_alerts())

    seq = run("seq", 1)
    par = run("par", 3)
    assert seq[0]["rejected"] == 5 and seq[0]["alerts_new"] > 5
    assert [r["line"] for r in seq[1]] == [6, 901, 1701, 2001, 2602]
    assert par == seq


def test_parallel_ranges_keep_the_order_of_equal_keys(tmp_path, monkeypatch):
    # The same finding delivered several times (the same id and updatedAt, and later updates) in different ranges:
    # the rows are merged back in (eventdate, id) order, equal keys in file order, so dedup and throttling
    # see exactly what a sequential read gives them; so does a sequential read sorted on disk.
    findings = list(generate_findings(600, seed=3, crypto_ratio=0.3))
    crypto = [f for f in findings if "CryptoCurrency" in f["type"]][:5]
    lines = [orjson.dumps(f) for f in findings if f not in crypto]  # only the copies below
    for n, f in enumerate(crypto):
        for at in (50 + n, 300 + n, 590 - n):
            # Each copy names another instance, so which copy is kept shows in the alerts (their throttle key).
            details = {**f["resource"]["instanceDetails"], "instanceId": f"i-{at}"}
            resource = {**f["resource"], "instanceDetails": details}
            lines.insert(at, orjson.dumps({**f, "resource": resource}))
        lines.insert(450, orjson.dumps({**f, "updatedAt": "2030-01-01T00:00:00.000Z", "title": "later update"}))
    data = tmp_path / "dups.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    rule = load_rule(DEFAULT_RULE)

    def run(name: str, workers: int) -> tuple[dict, bytes, bytes]:
        opts = DetectOptions(
            state=str(tmp_path / f"{name}.db"),
            out=str(tmp_path / f"{name}.out.jsonl"),
            workers=workers,
            parallel_min_bytes=1,
        )
        stats = detect(rule, [str(data)], opts).to_json()
        stats.pop("seconds")
        stats.pop("rejects_file")
        return stats, (tmp_path / f"{name}.out.jsonl").read_bytes(), orjson.dumps(StateStore(opts.state).list_alerts())

    seq = run("seq", 1)
    assert seq[0]["duplicates"] >= 10 and b'"i-5' in seq[1]
    for workers in (2, 3, 5):
        assert run(f"par{workers}", workers) == seq
    monkeypatch.setattr(detect_module, "SPILL_ROWS", 7)
    assert run("seq-on-disk", 1) == seq


def test_inputs_read_whole_and_in_ranges_keep_their_order(tmp_path, monkeypatch):
    # One delivery in three inputs: a gzip file and a small file (read whole) around a large plain file (read in
    # byte ranges). The copy given first is kept, whichever inputs the workers read; its throttle key shows which.
    findings = list(generate_findings(400, seed=4, crypto_ratio=0.3))
    crypto = next(f for f in findings if "CryptoCurrency" in f["type"])

    def copy(account: str) -> bytes:
        return orjson.dumps({**crypto, "id": "f" * 32, "accountId": account})

    rest = [orjson.dumps(f) for f in findings if f is not crypto]
    bad = b'{"id": "broken CryptoCurrency'  # a reject in each input: they are written in input order too
    small = tmp_path / "small.jsonl"
    small.write_bytes(copy("333333333333") + b"\n" + bad + b"\n")
    large = tmp_path / "large.jsonl"
    large.write_bytes(b"\n".join([*rest[:200], copy("222222222222"), bad, *rest[200:], bad]) + b"\n")
    packed = tmp_path / "first.jsonl.gz"
    packed.write_bytes(gzip.compress(copy("111111111111") + b"\n" + bad + b"\n"))
    rule = load_rule(DEFAULT_RULE)

    def run(name: str, paths: list[Path], workers: int) -> tuple[dict, bytes, set[str], list[tuple[str, int]]]:
        rejects = tmp_path / f"{name}.rejects.jsonl"
        opts = DetectOptions(state=str(tmp_path / f"{name}.db"), rejects=str(rejects), workers=workers,
                             parallel_min_bytes=100_000)
        stats = detect(rule, [str(p) for p in paths], opts).to_json()
        stats.pop("seconds")
        stats.pop("rejects_file")
        alerts = StateStore(opts.state).list_alerts()
        kept = {a["key"]["accountid"] for a in alerts if "f" * 32 in a["finding_ids"]}
        rejected = [(Path(r["file"]).name, r["line"]) for r in map(orjson.loads, rejects.read_bytes().splitlines())]
        rejects.unlink()
        return stats, orjson.dumps(alerts), kept, rejected

    assert large.stat().st_size > 100_000 > small.stat().st_size
    for order, first in (([packed, large, small], "111111111111"), ([small, large, packed], "333333333333"),
                         ([large, small], "222222222222")):
        seq = run("seq", order, 1)
        assert seq[2] == {first}
        assert [name for name, _ in seq[3]] == [p.name for p in order for _ in range(2 if p == large else 1)]
        monkeypatch.setattr(detect_module, "SPILL_ROWS", 7)  # the stretches read whole are sorted on disk too
        assert run("par", order, 2) == seq
        monkeypatch.undo()
        for name in ("seq", "par"):
            Path(tmp_path / f"{name}.db").unlink()


def test_a_missing_input_is_reported_before_large_files_are_read(tmp_path, monkeypatch):
    large = tmp_path / "large.jsonl"
    large.write_bytes(b"\n".join(orjson.dumps(f) for f in generate_findings(300, seed=4)) + b"\n")
    scanned: list[str] = []
    monkeypatch.setattr(detect_module, "_scan_parallel", lambda det, paths, *a: scanned.extend(paths) or [])
    opts = DetectOptions(state=str(tmp_path / "s.db"), workers=2, parallel_min_bytes=1)
    with pytest.raises(InputError, match="missing.jsonl"):
        detect(load_rule(DEFAULT_RULE), [str(large), str(tmp_path / "missing.jsonl")], opts)
    assert scanned == []


def _killed_range_worker(part: tuple[str, int, int, str]) -> None:
    """A range worker the kernel kills (out of memory, say) once it has written some rows."""
    Path(part[3]).write_bytes(b"rows")
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_killed_range_worker_stops_the_run_with_an_error_and_leaves_nothing(tmp_path, monkeypatch):
    data = tmp_path / "large.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(f) for f in generate_findings(300, seed=4, crypto_ratio=0.5)) + b"\n")
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(detect_module, "_scan_range", _killed_range_worker)
    opts = DetectOptions(state=str(tmp_path / "s.db"), out=str(tmp_path / "out.jsonl"), workers=2, parallel_min_bytes=1)
    with pytest.raises(InputError, match="ended abruptly") as err:
        detect(load_rule(DEFAULT_RULE), [str(data)], opts)
    assert err.value.file is not None and err.value.file.startswith(f"{data} (bytes 0-")
    assert list(temp.iterdir()) == []  # the spill files are gone with their folder
    store = StateStore(opts.state)
    assert store.list_alerts() == [] and store.db.execute("SELECT count(*) FROM seen").fetchone() == (0,)
    assert not (tmp_path / "out.jsonl").exists()


_BLOCKED_RUN = """
import os, sys, threading
from minerwatch.alerting import detect as detect_module
from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.cli.entry import _end_on_sigterm
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE

def blocked(part):  # a range worker that says where it is, then reads on and on
    os.write(1, f"{os.getpid()} {part[3]}\\n".encode())  # one write: the two workers' lines never interleave
    threading.Event().wait()

detect_module._scan_range = blocked
_end_on_sigterm()
detect(load_rule(DEFAULT_RULE), [sys.argv[1]], DetectOptions(state=sys.argv[2], workers=2, parallel_min_bytes=1))
"""


def _ended(pid: int) -> bool:
    """Wait (a minute at most) for process ``pid``, not a child of this one, to end."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], 60)[0])
    finally:
        os.close(fd)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_a_run_stopped_mid_scan_leaves_no_worker_behind(tmp_path, stop):
    # SIGTERM ends the run as Ctrl-C does (exit 143, spill files removed); after SIGKILL, which the run cannot see,
    # the kernel still ends its workers, which would otherwise wait for their next task forever.
    data = tmp_path / "large.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(f) for f in generate_findings(300, seed=4)) + b"\n")
    script = tmp_path / "run.py"
    script.write_text(_BLOCKED_RUN)
    run = subprocess.Popen([sys.executable, str(script), str(data), str(tmp_path / "s.db")], stdout=subprocess.PIPE,
                           text=True)
    assert run.stdout is not None
    workers = [run.stdout.readline().split() for _ in range(2)]  # both ranges are being read
    run.send_signal(stop)
    assert run.wait(timeout=120) == (143 if stop == signal.SIGTERM else -signal.SIGKILL)
    run.stdout.close()
    assert all(_ended(int(pid)) for pid, _ in workers)
    if stop == signal.SIGTERM:
        assert not Path(workers[0][1]).parent.exists()
    assert StateStore(str(tmp_path / "s.db")).list_alerts() == []


def test_a_range_worker_holds_nothing_per_matched_row(tmp_path, monkeypatch):
    """A worker's memory does not grow with the rows its range matches: rows go to the spill file and their sort
    keys to SQLite as they come (on a 4 GiB input, keys held as Python objects made the worker 10 % larger)."""
    monkeypatch.setattr(inputs, "RANGE_BLOCK_SIZE", 64 * 1024)  # small reads: the blocks in hand are no noise
    rule = load_rule(DEFAULT_RULE)
    det = Detector(rule, DetectOptions(state=str(tmp_path / "s.db")), [])
    monkeypatch.setattr(detect_module, "_FORKED", (det, make_prefilter(det.query)))

    def peak(n: int) -> int:
        data = tmp_path / f"{n}.jsonl"
        data.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in generate_findings(n, seed=3, crypto_ratio=1.0)))
        spill = str(tmp_path / f"part-{n}")
        tracemalloc.start()
        try:
            _, stats = detect_module._scan_range((str(data), 0, data.stat().st_size, spill))
            top = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert stats.records_read == n and stats.accepted > 0.9 * n
        return top

    # Both past 8,192 rows: writing the sorted file holds at most two batches of 4,096 places, reached there.
    small, large = peak(9000), peak(18000)
    assert large - small < 9000 * 100, (small, large)  # a key tuple per row alone is ~250 B


def _findings_and_allowlist(tmp_path: Path) -> tuple[Path, Path]:
    """2,000 findings, 20 % crypto, some of them AWS samples; an allowlist for two of their accounts."""
    findings = list(generate_findings(2000, seed=11, crypto_ratio=0.2))
    crypto = [f for f in findings if "CryptoCurrency" in f["type"]]
    for f in crypto[::7]:  # AWS sample findings: suppressed unless asked for
        f["service"]["additionalInfo"] = {"sample": True}
    data = tmp_path / "f.jsonl"
    data.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    allow = tmp_path / "allow.yaml"
    allowed = sorted({f["accountId"] for f in crypto})[:2]
    allow.write_text(f'- reason: "research accounts"\n  accountid: {orjson.dumps(allowed).decode()}\n')
    return data, allow


def _options(tmp_path: Path, name: str, allow: Path, workers: int) -> DetectOptions:
    """A state store and --out file named ``name``, the allowlist ``allow``, and ``workers`` range workers for any
    file (no minimum size)."""
    from minerwatch.alerting.allowlist import load_allowlist

    return DetectOptions(
        state=str(tmp_path / f"{name}.db"),
        out=str(tmp_path / f"{name}.out.jsonl"),
        allowlist=load_allowlist(allow),
        workers=workers,
        parallel_min_bytes=1,
    )


def test_rows_spilled_to_disk_equal_rows_kept_in_memory(tmp_path, monkeypatch):
    # Rows read back from a spill file (a range worker's, or the sequential sort's beyond SPILL_ROWS) keep their
    # JSON as text until it is needed: as an alert's latest row, or for the allowlist. Whichever way the rows
    # travel, the alerts, the suppressions and the --out lines are the same.
    data, allow = _findings_and_allowlist(tmp_path)
    rule = load_rule(DEFAULT_RULE)

    def run(name: str, workers: int) -> tuple[dict, bytes, bytes, bytes]:
        opts = _options(tmp_path, name, allow, workers)
        stats = detect(rule, [str(data)], opts).to_json()
        stats.pop("seconds")
        stats.pop("rejects_file")
        store = StateStore(opts.state)
        return (
            stats,
            (tmp_path / f"{name}.out.jsonl").read_bytes(),
            orjson.dumps(store.list_alerts()),
            orjson.dumps(store.suppressions()),
        )

    memory = run("memory", 1)
    assert memory[0]["suppressed_by_reason"].keys() == {"research accounts", "aws-sample-finding"}
    assert memory[0]["alerts_new"] > 5
    assert run("ranges", 2) == memory
    monkeypatch.setattr(detect_module, "SPILL_ROWS", 7)
    assert run("sorted-on-disk", 1) == memory


def test_the_apply_leaves_no_garbage_for_the_paused_collector(tmp_path, monkeypatch):
    """The cyclic collector is paused while a batch run applies its rows. That is only safe while the apply makes no
    reference cycles: every one made while paused would stay in memory until the run ends. The commits inside it
    run the notification outbox's hook too, as ``watch`` and ``detect`` with a configuration wire it."""
    from minerwatch.notify.config import parse_config
    from minerwatch.notify.outbox import open_outbox, transaction_hook

    secret = tmp_path / "siem.secret"
    secret.write_text("shared-secret\n")
    text = f'destinations: [{{name: siem, type: webhook, url: "http://127.0.0.1:9/hook", secret_file: "{secret}"}}]'
    hook = transaction_hook(parse_config(text, str(tmp_path / "minerwatch.yaml")))
    data, allow = _findings_and_allowlist(tmp_path)
    apply_chunks = Detector._apply_chunks
    found: list[int] = []

    def checked(self, it):
        assert not gc.isenabled()
        apply_chunks(self, it)
        found.append(gc.collect())  # unreachable objects: cycles made by the apply

    monkeypatch.setattr(Detector, "_apply_chunks", checked)
    monkeypatch.setattr(detect_module, "SPILL_ROWS", 7)  # rows read back from the sort's spill file too
    for workers in (1, 2):
        gc.collect()
        opts = dataclasses.replace(_options(tmp_path, str(workers), allow, workers), in_transaction=hook)
        stats = detect(load_rule(DEFAULT_RULE), [str(data)], opts)
        assert stats.alerts_new > 5 and stats.suppressed > 0
        assert gc.isenabled()
        queued = open_outbox(opts.state).execute("SELECT count(*) FROM notify_outbox").fetchone()[0]
        assert queued >= stats.alerts_new  # the hook ran in the apply: a delivery queued per alert at least
    assert found == [0, 0]


_FULL_DISK = """
import resource, signal, sys

# No file may grow past 2 MB, and a write past it fails (EFBIG) instead of killing the process (SIGXFSZ): as on a
# full disk. Forked workers inherit both.
resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
"""

_FULL_SCRATCH_RUN = _FULL_DISK + """
from minerwatch.alerting import detect as detect_module
from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.errors import MinerWatchError
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE

detect_module.SPILL_ROWS = 50  # the sequential read sorts on disk too
options = DetectOptions(state=sys.argv[2], workers=int(sys.argv[3]), parallel_min_bytes=1)
try:
    detect(load_rule(DEFAULT_RULE), [sys.argv[1]], options)
except MinerWatchError as exc:
    print(type(exc).__name__, exc.format())
    sys.exit(2)
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_temporary_folder_is_named_as_such_and_loses_nothing(tmp_path, workers):
    """Sorting spills rows to the temporary folder: when it is full, the error names it (not the state store, which
    is fine) and says what to do, no temporary file is left, and nothing of the run is saved, so a run with room
    gives every alert."""
    findings = [
        f for f in generate_findings(6000, seed=5, crypto_ratio=1.0)
        if "CryptoCurrency" in f["type"] and "instanceDetails" in f["resource"]
    ]
    for at, f in enumerate(findings):  # one instance within an hour: one alert, a small state store, a large spill
        f["accountId"], f["resource"]["instanceDetails"]["instanceId"] = "123456789012", "i-0123456789abcdef0"
        f["updatedAt"] = f"2025-03-03T01:{at % 60:02d}:00.000Z"
    data = tmp_path / "f.jsonl"
    data.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    temp = tmp_path / "tmp"
    temp.mkdir()
    state = tmp_path / "s.db"
    run = subprocess.run(
        [sys.executable, "-c", _FULL_SCRATCH_RUN, str(data), str(state), str(workers)],
        env={**os.environ, "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2, run.stderr
    kind, where = run.stdout.split()[:2]
    assert kind == "ScratchError" and where.startswith(str(temp)), run.stdout
    assert "TMPDIR" in run.stdout
    assert list(temp.iterdir()) == []
    assert StateStore(str(state)).list_alerts() == []
    stats = detect(load_rule(DEFAULT_RULE), [str(data)], DetectOptions(state=str(state), workers=workers))
    assert stats.alerts_new == 1 and stats.matched == len({(f["id"], f["updatedAt"]) for f in findings})


def test_the_next_run_removes_the_rows_a_killed_run_left_and_nothing_else(tmp_path, monkeypatch):
    """``kill -9`` leaves the run's spill folder (rows of findings) in the temporary folder; the next run that spills
    removes it, and keeps the folder of a run still going (locked), a folder just made (not locked yet), and an entry
    that only looks like one (a symbolic link)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    data = tmp_path / "large.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps(f) for f in generate_findings(300, seed=4)) + b"\n")
    script = tmp_path / "run.py"
    script.write_text(_BLOCKED_RUN)
    run = subprocess.Popen([sys.executable, str(script), str(data), str(tmp_path / "killed.db")],
                           stdout=subprocess.PIPE, text=True, env={**os.environ, "TMPDIR": str(temp)})
    assert run.stdout is not None
    workers = [run.stdout.readline().split() for _ in range(2)]
    run.kill()
    assert run.wait(timeout=120) == -signal.SIGKILL
    run.stdout.close()
    assert all(_ended(int(pid)) for pid, _ in workers)
    killed = Path(workers[0][1]).parent
    assert killed.parent == temp and killed.is_dir()

    live = temp / f"{scratch.PREFIX}rows-live"
    live.mkdir()
    (live / "part-0").write_bytes(b"rows")
    held = os.open(live, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep").write_text("x")
    link = temp / f"{scratch.PREFIX}rows-link"
    link.symlink_to(elsewhere)
    hour_ago = time.time() - 3600
    for path in (killed, live, link):
        os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
    young = temp / f"{scratch.PREFIX}rows-young"
    young.mkdir()

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    try:
        detect(load_rule(DEFAULT_RULE), [str(data)], DetectOptions(state=str(tmp_path / "s.db"), workers=2,
                                                                    parallel_min_bytes=1))
    finally:
        os.close(held)
    assert sorted(p.name for p in temp.iterdir()) == sorted([live.name, young.name, link.name])
    assert (live / "part-0").exists() and (elsewhere / "keep").exists()


def test_a_run_making_many_folders_looks_for_left_ones_once(tmp_path, monkeypatch):
    """A spool per Parquet object, a records file per table: the temporary folder is searched once a minute, not
    once a folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    swept: list[str] = []
    monkeypatch.setattr(scratch, "sweep", swept.append)
    for _ in range(3):
        with scratch.folder("spool"):
            pass
    assert swept == [str(tmp_path)] and list(tmp_path.iterdir()) == []


_LIMITED = _FULL_DISK + """
if sys.argv[1] == "spool":
    from minerwatch import scratch
    from minerwatch.errors import ScratchError

    try:
        with scratch.spooled((bytes(1 << 20) for _ in range(3)), "input.parquet"):
            pass
    except ScratchError as exc:
        print(exc.format())
        sys.exit(2)
else:
    from minerwatch.cli.entry import main

    sys.argv = ["minerwatch", *sys.argv[1:]]
    main()
"""


@pytest.mark.parametrize("what", ["detect --engine duckdb", "spool"])
def test_other_temporary_files_name_a_full_folder_too(tmp_path, what):
    """The DuckDB engine loads every record into a temporary file, and a Parquet stream (stdin, S3) is copied to one
    before it is read: a full temporary folder stops either with the error naming it, not a traceback, and leaves
    nothing there."""
    findings = list(generate_findings(2000, seed=6))
    data = tmp_path / "f.jsonl"
    data.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in findings))
    temp = tmp_path / "tmp"
    temp.mkdir()
    args = ["spool"]
    if what != "spool":  # every record loaded, so the file outgrows the limit
        args = [*what.split(), "--no-prefilter", str(data), "--state", str(tmp_path / "s.db")]
    run = subprocess.run([sys.executable, "-c", _LIMITED, *args], env={**os.environ, "TMPDIR": str(temp)},
                         capture_output=True, text=True, timeout=300)
    message = run.stdout + run.stderr
    assert run.returncode == 2, message
    assert "Traceback" not in message and f"{temp}/{scratch.PREFIX}" in message and "TMPDIR" in message, message
    assert list(temp.iterdir()) == []
