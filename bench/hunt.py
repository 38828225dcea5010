"""Benchmark: ``minerwatch hunt`` over gzip flow logs against a hand-written DuckDB query doing the same sweep.

Builds (or reuses, under ``bench/data/``) about 10 million VPC flow records in a few dozen gzip text files
(``minerwatch.generate.flows``): default format with its header line, 0.2 % of the records miners' (pool
addresses, a pool network, Stratum ports). Then each arm runs as its own subprocess over the same files, side
by side, round-robin ``--repeat`` times, and the table gives wall time, records/s, peak RSS and each arm's
time divided by the DuckDB arm's. The figures are appended to ``bench/RESULTS.md``.

Arms:

hunt     ``minerwatch hunt --flow DIR --ioc IOCS --format json --out OUT`` with the shipped hunting rule:
         IOC loading, the default sweep (files on every core, prefiltered), the exact check, entities, JSON
         output — the product path
hunt-python  the same with ``--engine python``: the same reader in one process (not in the default arms)
hunt-duckdb  the same with ``--engine duckdb``: the DuckDB sweep (not in the default arms)
duckdb   one hand-written ``COPY (SELECT ... FROM read_csv(...) WHERE <IOC addresses, network, ports>
         GROUP BY account, ENI) TO OUT`` with the same indicators, the same per-ENI totals (flows, bytes,
         packets, first/last, accepted/rejected, matched addresses and ports, peers)
scan     ``SELECT count(*) FROM read_csv(...)``: reading and decompressing alone, the floor of any sweep
start    ``minerwatch hunt --help``: the command line's own start-up (imports of every command module), which
         the hunt arm pays on top of its sweep

Usage: ``python bench/hunt.py [--records 10000000 | --quick] [--files 40] [--arms hunt,duckdb,scan,start]
[--repeat N]``
"""

from __future__ import annotations

import argparse
import json
import os
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from detect import append_results, compile_package, machine, paired_ratio, shown  # noqa: E402  (the shared benchmark helpers)

DATA_DIR = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "RESULTS.md"
MINERWATCH = ROOT / ".venv" / "bin" / "minerwatch"
HUNT_RULE = ROOT / "minerwatch" / "data" / "rules" / "aws-ioc-hunt-crypto-mining.md"
MIB = 1024 * 1024

COLUMNS = {
    "version": "BIGINT",
    "account_id": "VARCHAR",
    "interface_id": "VARCHAR",
    "srcaddr": "VARCHAR",
    "dstaddr": "VARCHAR",
    "srcport": "BIGINT",
    "dstport": "BIGINT",
    "protocol": "BIGINT",
    "packets": "BIGINT",
    "bytes": "BIGINT",
    "start": "BIGINT",
    "end": "BIGINT",
    "action": "VARCHAR",
    "log_status": "VARCHAR",
}

# The hand-written sweep: what someone fluent in DuckDB would write for "flows to these pool addresses, this
# pool network or on these Stratum ports, per ENI". {ips}, {ports} and {net_*} are the hunt's indicators.
DUCKDB_SWEEP = """
COPY (
  WITH hits AS (
    SELECT account_id, interface_id, srcaddr, dstaddr, srcport, dstport, bytes, packets, start, "end", action,
           CASE WHEN dstaddr IN ({ips}) OR {net_dst} THEN dstaddr
                WHEN srcaddr IN ({ips}) OR {net_src} THEN srcaddr END AS ioc_addr,
           CASE WHEN dstport IN ({ports}) THEN dstport
                WHEN srcport IN ({ports}) THEN srcport END AS ioc_port
    FROM {source}
    WHERE dstport IN ({ports}) OR srcport IN ({ports})
       OR dstaddr IN ({ips}) OR srcaddr IN ({ips})
       OR {net_dst} OR {net_src}
  )
  SELECT account_id, interface_id,
         count(*) AS flows, sum(bytes) AS bytes, sum(packets) AS packets,
         min(start) AS first_seen, max("end") AS last_seen,
         count_if(action = 'ACCEPT') AS accepted, count_if(action = 'REJECT') AS rejected,
         list(DISTINCT ioc_addr) FILTER (WHERE ioc_addr IS NOT NULL) AS addresses,
         list(DISTINCT ioc_port) FILTER (WHERE ioc_port IS NOT NULL) AS ports,
         list(DISTINCT CASE WHEN ioc_addr = dstaddr OR (ioc_addr IS NULL AND ioc_port = dstport)
                            THEN dstaddr ELSE srcaddr END) AS peers
  FROM hits
  GROUP BY account_id, interface_id
) TO '{out}' (FORMAT JSON)
"""


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_csv_sql(files: list[str]) -> str:
    cols = ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in COLUMNS.items())
    listed = ", ".join(_lit(f) for f in files)
    return (
        f"read_csv([{listed}], delim=' ', quote='', escape='', header=true, auto_detect=false, nullstr='-', "
        f"compression='gzip', columns={{{cols}}})"
    )


def duckdb_sweep_sql(files: list[str], iocs: dict[str, Any], out: str) -> str:
    ips = ", ".join(_lit(ip) for ip in iocs["ips"])
    ports = ", ".join(str(p) for p in iocs["ports"])

    def net(column: str) -> str:
        # The networks are /24s here: a LIKE on their three octets is what one writes by hand.
        likes = [f"{column} LIKE {_lit(n.split('/')[0].rsplit('.', 1)[0] + '.%')}" for n in iocs["cidrs"]]
        return "(" + " OR ".join(likes) + ")" if likes else "FALSE"

    return DUCKDB_SWEEP.format(
        ips=ips, ports=ports, net_dst=net("dstaddr"), net_src=net("srcaddr"), source=read_csv_sql(files), out=out
    )


# ------------------------------------------------------------------------------------------------- the arms
def arm_duckdb(files: list[str], iocs: dict[str, Any], out_dir: str) -> dict[str, Any]:
    import duckdb

    out = os.path.join(out_dir, "duckdb-entities.json")
    con = duckdb.connect()
    con.execute(duckdb_sweep_sql(files, iocs, out))
    matched, entities = con.execute(
        f"SELECT sum(flows), count(*) FROM read_json({_lit(out)}, format='newline_delimited')"
    ).fetchone()
    return {"matched": int(matched or 0), "entities": int(entities)}


def arm_scan(files: list[str]) -> dict[str, Any]:
    import duckdb

    (n,) = duckdb.connect().execute(f"SELECT count(*) FROM {read_csv_sql(files)}").fetchone()
    return {"records": int(n)}


def run_arm_inline(name: str, spec_path: str, out_dir: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    if name == "duckdb":
        result = arm_duckdb(spec["files"], spec["iocs"], out_dir)
    elif name == "scan":
        result = arm_scan(spec["files"])
    else:
        raise SystemExit(f"unknown arm {name}")
    print(json.dumps(result))


# ------------------------------------------------------------------------------------------ measurement
@dataclass
class Run:
    arm: str
    seconds: float
    peak_rss_mb: float | None
    ok: bool
    result: dict[str, Any]
    note: str = ""
    cpu_seconds: float | None = None
    """User + system time of the process and its threads: less swayed than wall time by other work."""


def measure(arm: str, cmd: list[str], work: Path) -> Run:
    """Run ``cmd`` once; wall time from here (process start included), peak RSS from ``/usr/bin/time -v``."""
    time_file = work / f"{arm}.time"
    gnu_time = shutil.which("time", path="/usr/bin")
    full = [gnu_time, "-v", "-o", str(time_file), *cmd] if gnu_time else cmd
    t0 = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True, cwd=str(work))
    seconds = time.perf_counter() - t0
    rss = cpu = None
    if gnu_time and time_file.exists():
        cpu = 0.0
        for line in time_file.read_text().splitlines():
            if "Maximum resident set size" in line:
                rss = int(line.rsplit(":", 1)[1]) / 1024
            elif "User time (seconds)" in line or "System time (seconds)" in line:
                cpu += float(line.rsplit(":", 1)[1])
    (work / f"{arm}.stdout").write_text(proc.stdout)
    (work / f"{arm}.stderr").write_text(proc.stderr)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])[:300]
        return Run(arm, seconds, rss, False, {}, f"exit {proc.returncode}: {tail}", cpu)
    result: dict[str, Any] = {}
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            result = obj
            break
    return Run(arm, seconds, rss, True, result, cpu_seconds=cpu)


def hunt_result(work: Path) -> dict[str, Any]:
    """matched records and entities from the hunt arm's outputs."""
    try:
        stats = json.loads((work / "hunt-stats.json").read_text())
        entities = json.loads((work / "hunt.json").read_text())["entities"]
    except (OSError, ValueError, KeyError):
        return {}
    flow = stats["sources"]["flow"]
    return {"matched": flow["matched"], "entities": len(entities), "records": flow["records"]}


# ------------------------------------------------------------------------------------------------ data
def ensure_data(records: int, files: int, seed: int, hit_ratio: float, data_dir: Path) -> tuple[Path, dict[str, Any]]:
    from minerwatch.generate.flows import FORMAT_VERSION, write_flow_files

    folder = data_dir / f"flows-{records}-f{files}-seed{seed}-h{hit_ratio:g}"
    meta_path = folder.with_name(folder.name + ".meta.json")
    if folder.is_dir() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("format") == FORMAT_VERSION and all(
            Path(f["path"]).is_file() and Path(f["path"]).stat().st_size == f["bytes"] for f in meta["files"]
        ):
            print(f"reusing {shown(folder)} ({meta['records']:,} records)", flush=True)
            return folder, meta
    if folder.exists():
        shutil.rmtree(folder)
    print(f"writing {shown(folder)} ({records:,} records in {files} files) ...", flush=True)
    t0 = time.perf_counter()
    meta = write_flow_files(folder, records, files, seed, hit_ratio)
    meta["generate_seconds"] = round(time.perf_counter() - t0, 2)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(
        f"  {meta['records']:,} records, {meta['hit_records']:,} miners', {meta['bytes'] / MIB:.0f} MiB gzip "
        f"({meta['text_bytes'] / MIB:.0f} MiB text), {meta['generate_seconds']} s",
        flush=True,
    )
    return folder, meta


def indicators(meta: dict[str, Any], ioc_file: Path) -> dict[str, Any]:
    """The hunt's indicators: the rule's and bundled ones plus the IOC file; the same values for the DuckDB arm."""
    from minerwatch.enrich.iocs import default_for_rule, load_ioc_file, merge
    from minerwatch.rules.loader import load_rule

    ioc_file.write_text("# bench pools\n" + "".join(v + "\n" for v in meta["ioc_ips"] + meta["ioc_cidrs"]))
    iocs = merge(default_for_rule(load_rule(HUNT_RULE)), load_ioc_file(ioc_file))
    sql = iocs.ips_and_cidrs_for_sql()
    assert all(plen == 24 for _, plen in sql.cidrs), "the DuckDB arm writes /24 networks as LIKE"
    return {"ips": sql.ips, "cidrs": [f"{a}/{p}" for a, p in sql.cidrs], "ports": sorted(iocs.ports)}


def warm_cache(files: list[str]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(16 * MIB):
                pass


# ------------------------------------------------------------------------------------------- reporting
def _best(runs: list[Run]) -> Run | None:
    ok = [r for r in runs if r.ok]
    return min(ok, key=lambda r: r.seconds) if ok else None


def _cpu(runs: list[Run]) -> float | None:
    values = [r.cpu_seconds for r in runs if r.ok and r.cpu_seconds is not None]
    return statistics.median(values) if values else None


def table(results: dict[str, list[Run]], records: int, gz_bytes: int) -> str:
    base = _best(results.get("duckdb", []))
    base_cpu = _cpu(results.get("duckdb", []))
    rows = [
        "| arm | best s | median s | records/s (best) | MiB/s gzip | peak RSS MB | ratio vs DuckDB (best) "
        "| ratio (median of rounds) | CPU s (median) | CPU ratio | matched records | entities |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm, runs in results.items():
        b = _best(runs)
        if b is None:
            note = next((r.note for r in runs if r.note), "failed").replace("|", "/")
            rows.append(f"| {arm} | failed | | | | | | | | | {note} | |")
            continue
        median = statistics.median(r.seconds for r in runs if r.ok)
        rss = f"{b.peak_rss_mb:.0f}" if b.peak_rss_mb is not None else "?"
        cpu = _cpu(runs)
        cpu_text = f"{cpu:.2f}" if cpu is not None else "?"
        if arm == "start":  # reads nothing: only its times mean something
            rows.append(f"| {arm} | {b.seconds:.2f} | {median:.2f} | | | {rss} | | | {cpu_text} | | | |")
            continue
        ratio = f"{b.seconds / base.seconds:.2f}" if base else "n/a"
        paired = paired_ratio(results, arm)
        cpu_ratio = f"{cpu / base_cpu:.2f}" if cpu is not None and base_cpu else "n/a"
        matched = b.result.get("matched")
        entities = b.result.get("entities")
        rows.append(
            f"| {arm} | {b.seconds:.2f} | {median:.2f} | {records / b.seconds:,.0f} | {gz_bytes / MIB / b.seconds:.0f} "
            f"| {rss} | {ratio} | {'' if paired is None else f'{paired:.2f}'} | {cpu_text} | {cpu_ratio} "
            f"| {'' if matched is None else f'{matched:,}'} | {'' if entities is None else entities} |"
        )
    return "\n".join(rows)


def verdict(results: dict[str, list[Run]], records: int, expected_entities: int) -> str:
    h, d, s = (_best(results.get(a, [])) for a in ("hunt", "duckdb", "start"))
    if h is None:
        return "Targets: the hunt arm did not run."
    rate = records / h.seconds
    parts = [f"records/s {rate / 1e6:.2f} M ({'met' if rate >= 5e6 else 'NOT met'}: target ≥ 5 M)"]
    if d is not None:
        ratio = h.seconds / d.seconds
        paired = paired_ratio(results, "hunt")
        parts.append(
            f"ratio {ratio:.2f} best-of, {paired:.2f} median of rounds "
            f"({'met' if ratio <= 0.8 else 'NOT met'}: target ≤ 0.8)"
        )
        if s is not None:
            parts.append(
                f"without the command line's start-up ({s.seconds:.2f} s) the best-of ratio is "
                f"{(h.seconds - s.seconds) / d.seconds:.2f}"
            )
        same = h.result.get("matched") == d.result.get("matched") and h.result.get("entities") == d.result.get(
            "entities"
        )
        parts.append("both arms matched the same records and ENIs" if same else "the arms DISAGREE on what matched")
    scan = _best(results.get("scan", []))
    if scan is not None:
        parts.append(f"reading the files alone peaks at {records / scan.seconds / 1e6:.2f} M records/s here")
    found = h.result.get("entities")
    parts.append(f"hunt entities {found} of {expected_entities} miners")
    for other in ("hunt-python", "hunt-duckdb"):
        p = _best(results.get(other, []))
        if p is not None:
            agree = all(p.result.get(k) == h.result.get(k) for k in ("matched", "entities"))
            parts.append(
                f"{other} {records / p.seconds / 1e6:.2f} M records/s, "
                + ("the same matches and entities as hunt" if agree else "DIFFERENT matches or entities from hunt")
            )
    return "Targets: " + "; ".join(parts) + "."


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--records", type=int, default=10_000_000, help="flow records (default 10,000,000)")
    ap.add_argument("--files", type=int, default=40, help="gzip files (default 40)")
    ap.add_argument("--quick", action="store_true", help="1,000,000 records in 8 files")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--hit-ratio", type=float, default=0.002, help="share of miners' records (default 0.002)")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument(
        "--arms", default="hunt,duckdb,scan,start",
        help="comma-separated: hunt, hunt-python, hunt-duckdb, duckdb, scan, start (default: the four without hunt-)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each arm's fastest run is reported (default 3)")
    ap.add_argument("--hunt-arg", action="append", default=[], help="extra argument for `minerwatch hunt`")
    ap.add_argument("--no-results", action="store_true", help="do not append to bench/RESULTS.md")
    ap.add_argument("--run-arm", nargs=3, metavar=("ARM", "SPEC", "OUTDIR"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.run_arm:
        run_arm_inline(*args.run_arm)
        return 0

    records, nfiles = (1_000_000, 8) if args.quick else (args.records, args.files)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    folder, meta = ensure_data(records, nfiles, args.seed, args.hit_ratio, args.data_dir)
    files = [f["path"] for f in meta["files"]]
    gz_bytes = sum(f["bytes"] for f in meta["files"])
    total = int(meta["records"])
    warm_cache(files)
    compile_package()
    load_before = os.getloadavg()[0]

    results: dict[str, list[Run]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory(prefix="mw-bench-hunt-") as tmp:
        work = Path(tmp)
        ioc_file = work / "iocs.txt"
        spec = work / "spec.json"
        spec.write_text(json.dumps({"files": files, "iocs": indicators(meta, ioc_file)}))
        for i in range(max(args.repeat, 1)):
            for arm in arms:  # round-robin: load on the machine falls on every arm alike
                run_dir = work / f"{arm}-{i}"
                run_dir.mkdir()
                if arm == "start":
                    cmd = [str(MINERWATCH), "hunt", "--help"]
                elif arm in ("hunt", "hunt-python", "hunt-duckdb"):
                    cmd = [
                        str(MINERWATCH), "hunt", "--flow", str(folder), "--ioc", str(ioc_file), "--format", "json",
                        "--out", str(run_dir / "hunt.json"), "--stats-json", str(run_dir / "hunt-stats.json"),
                        *args.hunt_arg, *(["--engine", arm.split("-")[1]] if "-" in arm else []),
                    ]
                else:
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--run-arm", arm, str(spec), str(run_dir)]
                print(f"round {i + 1}/{args.repeat}: {arm} ...", flush=True)
                run = measure(arm, cmd, run_dir)
                if arm in ("hunt", "hunt-python", "hunt-duckdb") and run.ok:
                    run.result = hunt_result(run_dir)
                results[arm].append(run)
                print(f"  {run.seconds:.2f} s{'' if run.ok else ' FAILED ' + run.note}", flush=True)

    load_after = os.getloadavg()[0]
    info = machine()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cmdline = " ".join([shown(Path(sys.executable)), "bench/hunt.py", *(argv if argv is not None else sys.argv[1:])])
    report = "\n".join(
        [
            f"## hunt, {total / 1e6:.0f} million flow records — {stamp}",
            "",
            f"Command: `{cmdline}`",
            "",
            f"Input: `{folder.name}/`, {len(files)} gzip files, {gz_bytes / MIB:.0f} MiB "
            f"({meta['text_bytes'] / MIB:.0f} MiB of text), {total:,} records, {meta['hit_records']:,} of them "
            f"miners' ({meta['hit_records'] / max(total, 1):.2%}) from {len(meta['miners'])} ENIs; read from the "
            "page cache. Indicators: the hunting rule's and the bundled ones plus an IOC file of 6 pool addresses "
            "and one /24 (see bench/README.md). Wall time includes process start; each arm ran "
            f"{args.repeat} times, round-robin.",
            "",
            f"Machine: {info['cpu']}, {info['cores']} cores, {info['ram']} RAM, {info['os']}; Python "
            f"{info['python']}, duckdb {info['duckdb']}, minerwatch {info['minerwatch']}",
            "",
            f"Load average (1 min) before the arms: {load_before:.2f}, after: {load_after:.2f} "
            "(other work on the machine slows the arms unevenly).",
            "",
            table(results, total, gz_bytes),
            "",
            verdict(results, total, len(meta["miners"])),
        ]
    )
    print()
    print(report)
    if not args.no_results:
        append_results(report)
        print(f"\nappended to {RESULTS.relative_to(ROOT)}")
    return 0 if all(r.ok for runs in results.values() for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
