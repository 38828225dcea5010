"""Spark local[2] against DuckDB: `minerwatch detect --engine spark` and `--engine duckdb` over the same generated
GuardDuty findings at several sizes, one run each, side by side — wall time (process start included), records/s,
peak RSS of the largest process (for Spark: the JVM or a Python worker), and how each grows with the input.

    .venv/bin/python bench/spark.py                 # 25, 100 and 400 MiB
    .venv/bin/python bench/spark.py --sizes 50 200 800

Appends a section to bench/RESULTS.md. Both arms must report the same matched rows and alerts; a run where they
differ is marked. Data goes to bench/data (git-ignored, reused when present).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
MINERWATCH = ROOT / ".venv" / "bin" / "minerwatch"
sys.path.insert(0, str(BENCH))

import detect as common  # noqa: E402  (bench/detect.py: data generation, measurement, machine, results file)

ARMS = ("duckdb", "spark")


def run_arm(engine: str, data: Path, work: Path) -> tuple[common.Measure, dict]:
    stats = work / f"{engine}-stats.json"
    cmd = [str(MINERWATCH), "detect", str(data), "--engine", engine, "--state", str(work / f"{engine}.db"),
           "--rejects", str(work / f"{engine}-rejects.jsonl"), "--stats-json", str(stats)]
    if engine == "spark":
        cmd += ["--spark-master", "local[2]", "--spark-conf", "spark.ui.enabled=false",
                "--spark-conf", "spark.driver.memory=2g"]
    m = common.measure(engine, cmd, work)
    summary = json.loads(stats.read_text()) if stats.exists() else {}
    m.matched = summary.get("matched")
    return m, summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 100, 400], help="input sizes in MiB")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-append", action="store_true", help="print the section, do not append it to RESULTS.md")
    args = ap.parse_args(argv)
    data_dir = BENCH / "data"
    rows = ["| MiB | findings | arm | seconds | records/s | peak RSS MB | time vs DuckDB | matched | alerts new |",
            "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    growth: dict[str, list[tuple[int, float]]] = {a: [] for a in ARMS}
    mismatches = []
    load_before = os.getloadavg()[0]
    for size in args.sizes:
        data, meta = common.ensure_data(size, args.seed, data_dir)
        common.warm_cache(data)
        results = {}
        with tempfile.TemporaryDirectory(prefix="mw-bench-spark-") as tmp:
            for arm in ARMS:
                print(f"{size} MiB: {arm} ...", flush=True)
                results[arm] = run_arm(arm, data, Path(tmp))
        base = results["duckdb"][0].seconds
        for arm in ARMS:
            m, summary = results[arm]
            if not m.ok:
                rows.append(f"| {size} | {meta['lines']:,} | {arm} | failed | | | | | {m.note.replace('|', '/')} |")
                continue
            growth[arm].append((size, m.seconds))
            rss = f"{m.peak_rss_mb:.0f}" if m.peak_rss_mb is not None else "?"
            rows.append(f"| {size} | {meta['lines']:,} | {arm} | {m.seconds:.1f} | {meta['lines'] / m.seconds:,.0f} | "
                        f"{rss} | {m.seconds / base:.2f} | {summary.get('matched')} | {summary.get('alerts_new')} |")
        same = {k: results["duckdb"][1].get(k) == results["spark"][1].get(k)
                for k in ("matched", "alerts_new", "rejected", "duplicates", "findings")}
        if not all(same.values()):
            mismatches.append(f"{size} MiB: {', '.join(k for k, ok in same.items() if not ok)} differ")
    lines = []
    for arm, points in growth.items():
        if len(points) >= 2:
            (s0, t0), (s1, t1) = points[0], points[-1]
            lines.append(f"- {arm}: {s1 / s0:.0f}× the input took {t1 / t0:.1f}× the time "
                         f"({(t1 - t0) / (s1 - s0):.2f} s per extra MiB; {t0:.1f} s at {s0} MiB)")
    mach = common.machine()
    text = "\n".join([
        f"## spark vs duckdb, detect at {', '.join(str(s) for s in args.sizes)} MiB — "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `.venv/bin/python bench/spark.py --sizes {' '.join(str(s) for s in args.sizes)}`",
        "",
        "Input: `bench/data/findings-<size>mb-seed1.jsonl` (generated, 2 % crypto), page cache warm. Arms: "
        "`minerwatch detect FILE --engine duckdb` and `--engine spark --spark-master local[2]`, one run each; "
        "wall time includes process start (and for Spark the JVM and the session). Peak RSS: the largest single "
        "process.",
        "",
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['ram']}; load average (1 min) before: "
        f"{load_before:.1f}, after: {os.getloadavg()[0]:.1f}.",
        "",
        *rows,
        "",
        "Growth:",
        *lines,
        "",
        "Same results on both arms: " + ("yes (matched, alerts, rejects, duplicates, findings)" if not mismatches
                                          else "NO — " + "; ".join(mismatches)),
    ])
    print(text)
    if not args.no_append:
        common.append_results(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
