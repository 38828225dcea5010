"""``detect`` on Spark gives the alerts of the other engines: generated findings in every input shape, with
malformed lines, duplicate deliveries, AWS sample findings, an allowlist, and a rerun that creates nothing."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from minerwatch.alerting.allowlist import load_allowlist
from minerwatch.alerting.detect import DetectOptions, detect
from minerwatch.alerting.sql_detect import detect_duckdb, detect_spark
from minerwatch.alerting.state import StateStore
from minerwatch.compile.window import window_text
from minerwatch.generate.findings import generate_findings
from minerwatch.rules.loader import load_rule
from minerwatch.rules.shipped import DEFAULT_RULE, shipped_rules
from minerwatch.sources.botocore_shapes import to_pascal
from minerwatch.sources.inputs import windowed_paths
from minerwatch.timewindow import TimeWindow, parse_bound

STAT_KEYS = ("files", "records_read", "findings", "prefiltered", "rejected", "duplicates", "matched", "suppressed",
             "suppressed_by_reason", "alerts_new", "alerts_updated", "reject_reasons")


def write_inputs(root: Path, findings: list[dict[str, Any]]) -> Path:
    """Every input shape, a slice of the findings each, plus duplicates and malformed records."""
    root.mkdir(parents=True)
    k = len(findings) // 7
    parts = [findings[i * k:(i + 1) * k] for i in range(6)] + [findings[6 * k:]]
    lines = lambda fs: b"".join(orjson.dumps(f) + b"\n" for f in fs)  # noqa: E731
    (root / "a-plain.jsonl").write_bytes(lines(parts[0]) + b'{"broken json\n\n[1, 2]\n' + lines(parts[0][:20]))
    (root / "b-plain.jsonl.gz").write_bytes(gzip.compress(lines(parts[1])))
    (root / "c-array.json").write_bytes(orjson.dumps(parts[2], option=orjson.OPT_INDENT_2))
    (root / "d-events.jsonl").write_bytes(b"".join(orjson.dumps({
        "version": "0", "id": f"ev-{i}", "detail-type": "GuardDuty Finding", "source": "aws.guardduty",
        "account": f["accountId"], "time": f["updatedAt"], "region": f["region"], "resources": [], "detail": f,
    }) + b"\n" for i, f in enumerate(parts[3])))
    (root / "e-rest.json").write_bytes(orjson.dumps({"findings": parts[4]}))
    (root / "f-cli.json").write_bytes(orjson.dumps({"Findings": [to_pascal(f) for f in parts[5]]}))
    bad = dict(parts[6][0], updatedAt="yesterday", createdAt="XXXX-XX-XX", id="bad-time",
               type="CryptoCurrency:EC2/BitcoinTool.B!DNS")
    for i, f in enumerate(parts[6]):
        p = root / f"AWSLogs/{f['accountId']}/GuardDuty/{f['region']}/{f['updatedAt'][:10].replace('-', '/')}"
        p.mkdir(parents=True, exist_ok=True)
        extra = orjson.dumps(bad) + b"\n" if i == 0 else b""
        (p / f"{i:05d}.jsonl.gz").write_bytes(gzip.compress(orjson.dumps(f) + b"\n" + extra))
    (root / "z-truncated.jsonl.gz").write_bytes(gzip.compress(lines(parts[6][:30]))[:-40])
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    findings = list(generate_findings(700, seed=21, crypto_ratio=0.3))
    root = write_inputs(tmp_path_factory.mktemp("spark-detect") / "in", findings)
    crypto = next(f for f in findings if "CryptoCurrency" in f["type"]
                  and f["resource"].get("instanceDetails", {}).get("instanceId"))
    allow = root.parent / "allow.yaml"
    allow.write_text(f'- reason: "approved research TICKET-7"\n  accountid: "{crypto["accountId"]}"\n'
                     f'  instance_id: [{crypto["resource"]["instanceDetails"]["instanceId"]}]\n')
    return root, allow


def _alerts(state: Path) -> list[dict[str, Any]]:
    store = StateStore(str(state))
    try:
        return store.list_alerts(None, None)
    finally:
        store.close()


def _run(engine: str, rule: Any, paths: list[str], tmp: Path, allow: Path | None, spark: Any, tag: str = "",
         window: TimeWindow | None = None) -> tuple:
    opts = DetectOptions(state=str(tmp / f"{engine}{tag}.db"), allowlist=load_allowlist(allow) if allow else None,
                         rejects=str(tmp / f"{engine}{tag}-rejects.jsonl"), workers=1)
    window = window or TimeWindow()
    if window:  # as the detect command does with --since/--until
        rule = dataclasses.replace(rule, query=window_text(rule.query, window))
    if engine == "spark":
        stats = detect_spark(rule, paths, opts, spark=spark, since=window.since, until=window.until)
    elif engine == "duckdb":
        stats = detect_duckdb(rule, windowed_paths(paths, window), opts)
    else:
        stats = detect(rule, windowed_paths(paths, window), opts)
    rejects = [orjson.loads(x) for x in Path(opts.rejects).read_bytes().splitlines()] if stats.rejected else []
    return stats, _alerts(Path(opts.state)), rejects


def _comparable(rejects: list[dict[str, Any]]) -> list[tuple]:
    return sorted((r["file"], r["line"], r["reason"]) for r in rejects)


@pytest.mark.parametrize("rule_path", [p for p in shipped_rules() if "guardduty" in p.stem], ids=lambda p: p.stem)
def test_same_alerts_on_every_engine(spark: Any, data: tuple[Path, Path], tmp_path: Path, rule_path: Path) -> None:
    root, allow = data
    rule = load_rule(rule_path)
    want_stats, want, want_rejects = _run("stream", rule, [str(root)], tmp_path, allow, spark)
    assert want and want_stats.duplicates and want_stats.rejected >= 4 and want_stats.suppressed
    for engine in ("duckdb", "spark"):
        stats, got, rejects = _run(engine, rule, [str(root)], tmp_path, allow, spark)
        assert got == want, f"{engine}: alerts differ"
        for key in STAT_KEYS:
            assert getattr(stats, key) == getattr(want_stats, key), f"{engine}: {key} differs"
        assert _comparable(rejects) == _comparable(want_rejects)


def test_same_window_same_alerts_on_every_engine(spark: Any, data: tuple[Path, Path], tmp_path: Path) -> None:
    """--since/--until: the window is part of the rule's query and prunes the same day folders on every engine; the
    bounds are delivery times of generated findings, so a finding exactly at since is in and one at until out."""
    root, allow = data
    rule = load_rule(DEFAULT_RULE)
    times = sorted({parse_bound(f["updatedAt"]) for f in generate_findings(700, seed=21, crypto_ratio=0.3)})
    window = TimeWindow(times[len(times) // 5], times[len(times) * 2 // 5])  # on the first of three days
    whole, _, _ = _run("stream", rule, [str(root)], tmp_path, allow, spark, tag="whole")
    want_stats, want, want_rejects = _run("stream", rule, [str(root)], tmp_path, allow, spark, window=window)
    assert 0 < want_stats.matched < whole.matched and want_stats.files < whole.files
    for t in [a["first_seen"] for a in want] + [a["last_seen"] for a in want]:
        assert window.since <= parse_bound(t) < window.until
    for engine in ("duckdb", "spark"):
        stats, got, rejects = _run(engine, rule, [str(root)], tmp_path, allow, spark, window=window)
        assert got == want, f"{engine}: alerts differ"
        for key in STAT_KEYS:
            assert getattr(stats, key) == getattr(want_stats, key), f"{engine}: {key} differs"
        assert _comparable(rejects) == _comparable(want_rejects)


def test_rerun_creates_no_alert(spark: Any, data: tuple[Path, Path], tmp_path: Path) -> None:
    root, allow = data
    rule = load_rule(DEFAULT_RULE)
    first, alerts, _ = _run("spark", rule, [str(root)], tmp_path, allow, spark)
    again, alerts_again, _ = _run("spark", rule, [str(root)], tmp_path, allow, spark)
    assert first.alerts_new > 0
    assert (again.alerts_new, again.alerts_updated, again.matched) == (0, 0, 0)
    assert again.duplicates == first.matched + first.duplicates
    assert alerts_again == alerts


@pytest.mark.parametrize("how", ["url", "split"])
def test_url_inputs_and_split_files(spark: Any, data: tuple[Path, Path], tmp_path: Path, monkeypatch: Any,
                                    how: str) -> None:
    """A file:// URL goes through Spark's Hadoop file system (as s3a:// does on a cluster); a large plain file is
    read as line-aligned byte ranges in several tasks. Neither changes the alerts, the counts or the rejects."""
    from minerwatch.engine import spark as engine

    root, allow = data
    rule = load_rule(DEFAULT_RULE)
    want_stats, want, want_rejects = _run("stream", rule, [str(root)], tmp_path, allow, spark)
    if how == "split":
        monkeypatch.setattr(engine, "SPLIT_BYTES", 4096)
    stats, got, rejects = _run("spark", rule, [root.as_uri() if how == "url" else str(root)], tmp_path, allow, spark,
                               tag=how)
    assert got == want
    for key in STAT_KEYS:
        assert getattr(stats, key) == getattr(want_stats, key), key
    assert sorted((r["file"].removeprefix("file:"), r["line"], r["reason"]) for r in rejects) == _comparable(
        want_rejects)
