"""Benchmark: ``minerwatch detect`` against a hand-written DuckDB query and a plain Python loop.

Builds (or reuses, under ``bench/data/``) a GuardDuty JSON Lines file with 2 % crypto findings, then runs each
arm as its own subprocess over it, side by side in one run, and prints wall time, throughput, peak RSS and
the ratio of each arm's time to DuckDB's. The figures are appended to ``bench/RESULTS.md``.

Arms (each reads the whole file and writes its matches to a file):

detect        ``minerwatch detect FILE --state TMP/state.db --out TMP/alerts.jsonl`` (the seed rule)
duckdb        ``read_json`` with the columns the rule needs declared (nested STRUCTs for just the selected
              paths), the seed rule's where-clause, its select list, ``COPY ... TO`` a JSON file;
              DuckDB uses every core
duckdb-auto   the same query with ``read_json`` detecting the schema itself (optional: ``--arms``)
python        a per-record loop: ``orjson.loads`` each line, the same filter and projection, ``orjson.dumps``
grep          ``grep -c CryptoCurrency FILE``: one literal search over the file, the floor (optional: ``--arms``)

Usage: ``python bench/detect.py [--size-mb 1024 | --quick] [--arms detect,duckdb,python] [--repeat N] [--cold]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "RESULTS.md"
MINERWATCH = ROOT / ".venv" / "bin" / "minerwatch"
MIB = 1024 * 1024
READ_FROM = {
    False: "read from the page cache",
    True: "read from the disk (the file was dropped from the page cache before every run: --cold)",
}
MAX_OBJECT = 16 * MIB  # read_json's maximum_object_size: far above any finding (a few KB)

B = "CryptoCurrency:EC2/BitcoinTool.B"
B_DNS = "CryptoCurrency:EC2/BitcoinTool.B!DNS"

# Only what the seed rule reads: its where-clause and select list.
DUCKDB_COLUMNS = {
    "accountId": "VARCHAR",
    "region": "VARCHAR",
    "type": "VARCHAR",
    "title": "VARCHAR",
    "description": "VARCHAR",
    "severity": "DOUBLE",
    "updatedAt": "VARCHAR",
    "createdAt": "VARCHAR",
    "resource": "STRUCT(instanceDetails STRUCT(instanceId VARCHAR, imageId VARCHAR, "
    'tags STRUCT("key" VARCHAR, "value" VARCHAR)[]))',
    "service": "STRUCT(action STRUCT(networkConnectionAction STRUCT("
    "remoteIpDetails STRUCT(ipAddressV4 VARCHAR), "
    "remotePortDetails STRUCT(port INTEGER))))",
}

DUCKDB_SELECT = """
SELECT coalesce(updatedAt, createdAt)::TIMESTAMP AS eventdate,
       accountId AS accountid,
       region,
       resource.instanceDetails.instanceId AS instance_id,
       resource.instanceDetails.imageId AS ami_id,
       type, title, description, severity,
       service.action.networkConnectionAction.remoteIpDetails.ipAddressV4 AS mining_pool_ip,
       service.action.networkConnectionAction.remotePortDetails.port AS mining_port,
       resource.instanceDetails.tags AS tags
FROM {source}
WHERE type LIKE '%CryptoCurrency%'
   OR type = 'CryptoCurrency:EC2/BitcoinTool.B!DNS'
   OR (type = 'CryptoCurrency:EC2/BitcoinTool.B' AND severity >= 7)
"""


# ------------------------------------------------------------------------------------------------- the arms
def duckdb_query(path: str, auto: bool) -> str:
    def lit(s: str) -> str:
        return "'" + s.replace("'", "''") + "'"

    opts = [lit(path), "format='newline_delimited'", f"maximum_object_size={MAX_OBJECT}"]
    if not auto:
        cols = ", ".join(f"{lit(k)}: {lit(v)}" for k, v in DUCKDB_COLUMNS.items())
        opts.append("columns={" + cols + "}")
    return DUCKDB_SELECT.format(source=f"read_json({', '.join(opts)})")


def arm_duckdb(path: str, out_dir: str, auto: bool) -> dict[str, Any]:
    import duckdb

    out = os.path.join(out_dir, "duckdb-matches.json")
    con = duckdb.connect()
    con.execute(f"COPY ({duckdb_query(path, auto)}) TO '{out}' (FORMAT JSON)")
    (matched,) = con.execute(
        f"SELECT count(*) FROM read_json('{out}', format='newline_delimited')"
    ).fetchone()
    return {"matched": matched}


def arm_python(path: str, out_dir: str) -> dict[str, Any]:
    import orjson

    loads, dumps = orjson.loads, orjson.dumps
    matched = 0
    with open(path, "rb") as f, open(os.path.join(out_dir, "python-matches.jsonl"), "wb") as out:
        for line in f:
            if not line.strip():
                continue
            d = loads(line)
            t = d.get("type")
            if not isinstance(t, str):
                continue
            sev = d.get("severity")
            if not (
                "CryptoCurrency" in t or t == B_DNS or (t == B and isinstance(sev, int | float) and sev >= 7)
            ):
                continue
            res = d.get("resource") or {}
            inst = res.get("instanceDetails") or {}
            nca = ((d.get("service") or {}).get("action") or {}).get("networkConnectionAction") or {}
            row = {
                "eventdate": d.get("updatedAt") or d.get("createdAt"),
                "accountid": d.get("accountId"),
                "region": d.get("region"),
                "instance_id": inst.get("instanceId"),
                "ami_id": inst.get("imageId"),
                "type": t,
                "title": d.get("title"),
                "description": d.get("description"),
                "severity": sev,
                "mining_pool_ip": (nca.get("remoteIpDetails") or {}).get("ipAddressV4"),
                "mining_port": (nca.get("remotePortDetails") or {}).get("port"),
                "tags": inst.get("tags"),
            }
            out.write(dumps(row) + b"\n")
            matched += 1
    return {"matched": matched}


def run_arm_inline(name: str, path: str, out_dir: str) -> None:
    """Entry point of an arm's subprocess: run it, print its result as JSON on stdout."""
    if name == "duckdb":
        result = arm_duckdb(path, out_dir, auto=False)
    elif name == "duckdb-auto":
        result = arm_duckdb(path, out_dir, auto=True)
    elif name == "python":
        result = arm_python(path, out_dir)
    else:
        raise SystemExit(f"unknown arm {name}")
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------ measurement
_RUSAGE_WRAPPER = """
import json, resource, subprocess, sys
cmd = json.loads(sys.argv[1])
rc = subprocess.call(cmd)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": rc, "maxrss_kb": peak}), file=sys.stderr)
sys.exit(rc)
"""


@dataclass
class Measure:
    arm: str
    seconds: float
    peak_rss_mb: float | None
    ok: bool
    matched: int | None
    note: str = ""


def measure(arm: str, cmd: list[str], work: Path) -> Measure:
    """Run ``cmd`` once; wall time from here, peak RSS from ``/usr/bin/time -v`` (else getrusage)."""
    time_file = work / f"{arm}.time"
    gnu_time = shutil.which("time", path="/usr/bin")
    if gnu_time:
        full = [gnu_time, "-v", "-o", str(time_file), *cmd]
    else:
        full = [sys.executable, "-c", _RUSAGE_WRAPPER, json.dumps(cmd)]
    t0 = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, cwd=str(work))
    seconds = time.perf_counter() - t0
    rss_kb: float | None = None
    if gnu_time and time_file.exists():
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_file.read_text())
        rss_kb = float(m.group(1)) if m else None
    elif not gnu_time:
        for line in reversed(proc.stderr.splitlines()):
            if line.startswith('{"rc"'):
                rss_kb = float(json.loads(line)["maxrss_kb"])
                break
    (work / f"{arm}.stdout").write_text(proc.stdout)
    (work / f"{arm}.stderr").write_text(proc.stderr)
    matched: int | None = None
    note = ""
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith('{"rc"')][-3:]
        note = f"exit {proc.returncode}: " + " | ".join(tail)[:300]
    else:
        for line in reversed(proc.stdout.strip().splitlines()):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict) and "matched" in obj:
                matched = int(obj["matched"])
                break
    return Measure(
        arm, seconds, rss_kb / 1024 if rss_kb is not None else None, proc.returncode == 0, matched, note
    )


def detect_available(exe: Path) -> tuple[bool, str]:
    if not exe.exists():
        return False, f"{exe} not found"
    proc = subprocess.run([str(exe), "detect", "--help"], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"`minerwatch detect --help` failed: {last[:200]}"
    return True, proc.stdout


def detect_matched(work: Path) -> int | None:
    stats = work / "detect-stats.json"
    if not stats.exists():
        return None
    try:
        data = json.loads(stats.read_text())
    except ValueError:
        return None
    for key in ("matched", "rows_matched"):
        if isinstance(data.get(key), int):
            return int(data[key])
    return None


# ------------------------------------------------------------------------------------------------ data
def shown(path: Path) -> str:
    """``path`` relative to the checkout when it is inside it (``--data-dir`` may be anywhere)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def ensure_data(size_mb: int, seed: int, data_dir: Path, crypto: float = 0.02) -> tuple[Path, dict[str, Any]]:
    """Reuse ``findings-<size>mb-seed<seed>[-c<crypto>].jsonl`` when its metadata matches, else write it."""
    sys.path.insert(0, str(ROOT))
    from minerwatch.generate.fast import FORMAT_VERSION, write_jsonl_fast

    data_dir.mkdir(parents=True, exist_ok=True)
    tag = "" if crypto == 0.02 else f"-c{crypto:g}"
    path = data_dir / f"findings-{size_mb}mb-seed{seed}{tag}.jsonl"
    meta_path = path.with_suffix(".meta.json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == path.stat().st_size and meta.get("format") == FORMAT_VERSION:
            print(f"reusing {shown(path)} ({meta['lines']} lines)", flush=True)
            return path, meta
    print(f"writing {shown(path)} ({size_mb} MB) ...", flush=True)
    t0 = time.perf_counter()
    meta = write_jsonl_fast(path, size_mb * MIB, seed, crypto)
    meta["generate_seconds"] = round(time.perf_counter() - t0, 2)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"  {meta['lines']} lines, {meta['crypto_lines']} crypto, {meta['generate_seconds']} s", flush=True)
    return path, meta


def warm_cache(path: Path) -> None:
    # Every arm then reads from the page cache, so none pays for the first cold read.
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass


def evict(path: Path) -> None:
    """Drop the input's pages from the page cache (``--cold``): the arm then reads it from the disk. Only this file
    is evicted (no root needed), so the arms' programs and libraries still start from memory."""
    if not hasattr(os, "posix_fadvise") or not hasattr(os, "RWF_NOWAIT"):
        raise SystemExit("--cold needs posix_fadvise and preadv(RWF_NOWAIT) (Linux) to drop and check the cache")
    with open(path, "rb") as f:
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        try:
            os.preadv(f.fileno(), [bytearray(1)], 0, os.RWF_NOWAIT)
        except BlockingIOError:
            return
    raise SystemExit(f"--cold: {path} stays in the page cache on this file system; cannot measure a cold read")


def compile_package() -> None:
    """Byte-compile the package, as installing a wheel does: a checkout run under PYTHONDONTWRITEBYTECODE=1
    would otherwise compile every module it imports on each start, and the arm would measure that."""
    import compileall

    compileall.compile_dir(str(ROOT / "minerwatch"), quiet=1)


# ------------------------------------------------------------------------------------------- reporting
def interpreter(exe: Path) -> str:
    """The Python a console script runs on, with its version: the ``#!`` line of the script."""
    try:
        with open(exe, "rb") as f:
            first = f.readline().decode(errors="replace").strip()
    except OSError:
        return "?"
    if not first.startswith("#!"):
        return "?"
    python = first[2:].split()[0]
    version = "import platform; print(platform.python_version())"
    try:
        out = subprocess.run([python, "-c", version], capture_output=True, text=True).stdout.strip()
    except OSError:
        out = ""
    return f"{python} ({out or '?'})"


def machine() -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / MIB:.1f} GiB"
                break
    except OSError:
        pass
    versions = {}
    for mod in ("duckdb", "orjson"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "missing"
    try:
        from importlib.metadata import version

        mw = version("minerwatch")
    except Exception:  # noqa: BLE001 - not installed is fine for a benchmark header
        mw = "?"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} ({usable} usable)",
        "ram": ram,
        "os": platform.platform(),
        "python": platform.python_version(),
        "duckdb": versions["duckdb"],
        "orjson": versions["orjson"],
        "minerwatch": mw,
    }


def paired_ratio(rounds: dict[str, list[Any]], arm: str, base: str = "duckdb") -> float | None:
    """Median over rounds of (arm's time / base's time in the same round): steadier than best-of under load, since
    load from other work tends to fall on both arms of a round. ``rounds``: each arm's runs in round order, objects
    with ``seconds`` and ``ok`` (this script's and the hunt benchmark's)."""
    pairs = [
        a.seconds / b.seconds for a, b in zip(rounds.get(arm, []), rounds.get(base, []), strict=False) if a.ok and b.ok
    ]
    return statistics.median(pairs) if pairs else None


def table(results: list[Measure], size_bytes: int, lines: int, rounds: dict[str, list[Measure]]) -> str:
    base = next((r.seconds for r in results if r.arm == "duckdb" and r.ok), None)
    head = (
        "| arm | seconds (best) | median s | MB/s | records/s | peak RSS MB | ratio vs DuckDB (best) "
        "| ratio (median of rounds) | matched rows |"
    )
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.ok:
            rows.append(f"| {r.arm} | failed | | | | | | | {r.note.replace('|', '/')} |")
            continue
        median = statistics.median(m.seconds for m in rounds.get(r.arm, [r]) if m.ok)
        rss = f"{r.peak_rss_mb:.0f}" if r.peak_rss_mb is not None else "?"
        ratio = f"{r.seconds / base:.2f}" if base else "n/a"
        paired = paired_ratio(rounds, r.arm) if base else None
        matched = str(r.matched) if r.matched is not None else "?"
        rows.append(
            f"| {r.arm} | {r.seconds:.2f} | {median:.2f} | {size_bytes / MIB / r.seconds:.0f} | "
            f"{lines / r.seconds:,.0f} | {rss} | {ratio} | {'' if paired is None else f'{paired:.2f}'} | {matched} |"
        )
    by_arm = {r.arm: r.seconds for r in results if r.ok}
    if "detect" in by_arm and "grep" in by_arm:
        rows += ["", f"detect ÷ `grep -c CryptoCurrency`: {by_arm['detect'] / by_arm['grep']:.2f}"]
    return "\n".join(rows)


def append_results(text: str) -> None:
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nNewest last. Produced by the scripts in this folder; see "
            "`bench/README.md` for what each arm does.\n"
        )
    with open(RESULTS, "a") as f:
        f.write("\n" + text + "\n")


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--size-mb", type=int, default=1024, help="size of the findings file in MiB (default 1024)"
    )
    ap.add_argument("--quick", action="store_true", help="50 MiB instead of --size-mb")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--crypto", type=float, default=0.02, help="share of crypto findings (default 0.02)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument(
        "--arms",
        default="detect,duckdb,python",
        help="comma-separated: detect, duckdb, duckdb-auto, python, grep (default: detect,duckdb,python)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per arm; the fastest is reported (default 3)")
    ap.add_argument(
        "--detect-arg",
        action="append",
        default=[],
        help="extra argument for `minerwatch detect` (repeatable)",
    )
    ap.add_argument(
        "--cold",
        action="store_true",
        help="drop the input file from the page cache before every run (posix_fadvise), so each arm reads it from "
        "the disk; default: every arm reads it from the page cache",
    )
    ap.add_argument(
        "--minerwatch",
        type=Path,
        default=MINERWATCH,
        help="the `minerwatch` console script the detect arm runs (default: the checkout's .venv), e.g. one "
        "installed from the wheel or on another interpreter",
    )
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--run-arm", nargs=3, metavar=("ARM", "FILE", "OUTDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.run_arm:
        run_arm_inline(*args.run_arm)
        return 0
    args.minerwatch = args.minerwatch.absolute()  # the arms run in their own folders

    size_mb = 50 if args.quick else args.size_mb
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    path, meta = ensure_data(size_mb, args.seed, args.data_dir, args.crypto)
    size_bytes, lines = path.stat().st_size, int(meta["lines"])
    if not args.cold:
        warm_cache(path)
    compile_package()
    # Other work on the machine skews a 2-core benchmark: record how busy it was.
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    with tempfile.TemporaryDirectory(prefix="mw-bench-") as tmp:
        work = Path(tmp)
        best: dict[str, Measure] = {}
        rounds: dict[str, list[Measure]] = {}  # every run, in round order: for the median of rounds
        failed: set[str] = set()
        help_text = ""
        if "detect" in arms:  # asked once: the flags the command offers do not change between rounds
            ok, help_text = detect_available(args.minerwatch)
            if not ok:
                best["detect"] = Measure("detect", 0.0, None, False, None, help_text)
                failed.add("detect")
        # Round-robin: each round runs every arm once, so load from other work falls on all arms alike.
        for i in range(max(args.repeat, 1)):
            for arm in arms:
                if arm in failed:
                    continue
                run_dir = work / f"{arm}-{i}"
                run_dir.mkdir()
                if arm == "detect":
                    cmd = [
                        str(args.minerwatch),
                        "detect",
                        str(path),
                        "--state",
                        str(run_dir / "state.db"),
                        "--out",
                        str(run_dir / "alerts.jsonl"),
                    ]
                    if "--stats-json" in help_text:
                        cmd += ["--stats-json", str(run_dir / "detect-stats.json")]
                    cmd += args.detect_arg
                elif arm == "grep":
                    cmd = ["grep", "-c", "CryptoCurrency", str(path)]  # the I/O floor: one literal search
                else:
                    cmd = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--run-arm",
                        arm,
                        str(path),
                        str(run_dir),
                    ]
                print(f"running {arm} ({i + 1}/{args.repeat}) ...", flush=True)
                if args.cold:
                    evict(path)
                m = measure(arm, cmd, run_dir)
                if arm == "detect" and m.ok:
                    m.matched = detect_matched(run_dir)
                rounds.setdefault(arm, []).append(m)
                prev = best.get(arm)
                if prev is None or (m.ok and (not prev.ok or m.seconds < prev.seconds)):
                    best[arm] = m
        results = [best[arm] for arm in arms if arm in best]

    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    info = machine()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmdline = " ".join([shown(Path(sys.executable)), "bench/detect.py", *(argv if argv is not None else sys.argv[1:])])
    tbl = table(results, size_bytes, lines, rounds)
    report = "\n".join(
        [
            f"## detect, {size_bytes / MIB:.0f} MiB of findings — {stamp}",
            "",
            f"Command: `{cmdline}`",
            "",
            f"Input: `{path.name}`, {size_bytes:,} bytes, {lines:,} findings, {meta['crypto_lines']:,} "
            f"crypto ({meta['crypto_lines'] / max(lines, 1):.1%}); {READ_FROM[args.cold]}. DuckDB arm: "
            "`read_json` with "
            "declared columns (see bench/README.md). MB = MiB; wall time includes process start.",
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}; Python "
            f"{info['python']}, duckdb {info['duckdb']}, orjson {info['orjson']}, "
            f"minerwatch {info['minerwatch']}; detect arm: `{shown(args.minerwatch)}` on "
            f"{interpreter(args.minerwatch)}",
            "",
            f"Load average (1 min) before the arms: {load_before:.2f}, after: {load_after:.2f} "
            "(other work on the machine slows the arms unevenly).",
            "",
            tbl,
        ]
    )
    print()
    print(report)
    if not args.no_results:
        append_results(report)
        print(f"\nappended to {RESULTS.relative_to(ROOT)}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
