"""``--since`` / ``--until``: a window on the event time, written into the query once, so the stream executor and
DuckDB give the same rows; export-layout day folders outside it (with a day of export slack) are not read."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.compile.binder import bind
from minerwatch.compile.prefilter import make_prefilter
from minerwatch.compile.window import window_query, window_text
from minerwatch.engine.duckdb import run_duckdb
from minerwatch.engine.stream import run_batch
from minerwatch.generate.findings import generate_findings
from minerwatch.lang.parser import parse_query
from minerwatch.rules.shipped import DEFAULT_RULE
from minerwatch.sources.guardduty import finding_to_record, read_guardduty
from minerwatch.sources.inputs import windowed_paths
from minerwatch.sources.records import ReadStats, Record
from minerwatch.timewindow import TimeWindow, in_days, make_window, parse_bound

runner = CliRunner()
SINCE = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
UNTIL = datetime(2026, 3, 3, 0, 10, tzinfo=UTC)
WINDOW = TimeWindow(SINCE, UNTIL)
CRYPTO = "CryptoCurrency:EC2/BitcoinTool.B!DNS"


def _finding(base: dict[str, Any], i: int, updated: datetime, type_: str = CRYPTO) -> dict[str, Any]:
    iso = updated.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dict(base, id=f"f{i:03d}", type=type_, severity=8.0, createdAt=iso, updatedAt=iso)


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return next(f for f in generate_findings(200, seed=5, crypto_ratio=0.5) if "CryptoCurrency" in f["type"]
                and f["resource"].get("instanceDetails", {}).get("instanceId")
                and not f.get("service", {}).get("additionalInfo", {}).get("sample"))


def _records(docs: list[dict[str, Any]]) -> list[Record]:
    return [finding_to_record(d, "mem", i + 1) for i, d in enumerate(docs)]


def test_bounds_since_in_until_out_on_both_executors(base: dict[str, Any]) -> None:
    times = [SINCE - timedelta(microseconds=1), SINCE, UNTIL - timedelta(milliseconds=1), UNTIL,
             UNTIL + timedelta(hours=1)]
    recs = _records([_finding(base, i, t) for i, t in enumerate(times)])
    query = window_query(parse_query("from cloud.aws.guardduty select id, eventdate"), WINDOW)
    for rows in (run_batch(query, recs), run_duckdb(query, recs)):
        assert [r["id"] for r in rows] == ["f001", "f002"]


def test_the_window_wraps_the_whole_condition(base: dict[str, Any]) -> None:
    # `W and a or b` would keep an out-of-window `b`: the original condition must stay one operand.
    recs = _records([_finding(base, 0, UNTIL + timedelta(days=1), "B"), _finding(base, 1, SINCE, "A")])
    query = window_query(parse_query('from cloud.aws.guardduty where type = "A" or type = "B" select id'), WINDOW)
    for rows in (run_batch(query, recs), run_duckdb(query, recs)):
        assert [r["id"] for r in rows] == ["f001"]


def test_window_text_keeps_lines_and_prefilter() -> None:
    text = 'from cloud.aws.guardduty\nwhere type like "%Crypto%"\n  and severity >= 7\nselect id\ngroup by id'
    windowed = window_text(text, WINDOW)
    assert windowed.count("\n") == text.count("\n")
    assert windowed.splitlines()[3:] == text.splitlines()[3:]
    needles = make_prefilter(bind(parse_query(windowed))).needles
    assert needles == make_prefilter(bind(parse_query(text))).needles and b"Crypto" in needles
    assert window_text("from cloud.aws.vpcflow select srcaddr", TimeWindow(until=UNTIL)) == (
        'from cloud.aws.vpcflow where eventdate < "2026-03-03T00:10:00+00:00" select srcaddr'
    )
    assert window_text(text, TimeWindow()) == text
    # Errors in a rule document keep their line: the query starts on line 12 of the file.
    q = window_query(parse_query("from cloud.aws.guardduty\nwhere severity > 1", "r.md", 11), WINDOW)
    assert (q.pos.line, q.file) == (12, "r.md")


def test_bound_values() -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_bound("24h", now) == now - timedelta(days=1)
    assert parse_bound("7d", now) == now - timedelta(days=7)
    assert parse_bound("2026-03-02", now) == SINCE
    assert parse_bound("2026-03-02T02:00+02:00", now) == SINCE
    assert parse_bound("2026-03-03 00:10:00", now) == UNTIL
    w = make_window("2d", "1d", now)
    assert (w.since, w.until) == (now - timedelta(days=2), now - timedelta(days=1))
    for since, until, message in (
        ("yesterday", None, "--since: 'yesterday' is neither an ISO 8601"),
        (None, "XXXX-XX-XX", "--until: 'XXXX-XX-XX' is neither"),
        ("2026-03-02", "2026-03-02", "--since (2026-03-02T00:00:00+00:00) must be before --until"),
        ("1d", "2d", "must be before --until"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            make_window(since, until, now)


def test_export_day_slack() -> None:
    folder = "s3://b/AWSLogs/1/GuardDuty/us-east-1/2026/03/{:02d}/x.jsonl.gz".format
    kept = [d for d in range(1, 7) if in_days(folder(d), SINCE, UNTIL)]
    # Day 1 is wholly before since; day 4 may hold findings updated late on day 3, which is after until's day:
    # kept only as slack (until's day + 1); day 5 on cannot hold anything before until.
    assert kept == [2, 3, 4]
    assert in_days("/data/findings.jsonl", SINCE, UNTIL)


def _export_tree(root: Path, base: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """One file per export day folder 2026/03/01..05; folder 03/03 holds the late export of a finding updated
    at 23:50 on 03/02 (in the window) and one updated on 03/03 at 00:20 (after until)."""
    days = {
        1: [datetime(2026, 3, 1, 12, 0, tzinfo=UTC)],
        2: [SINCE, datetime(2026, 3, 2, 12, 0, tzinfo=UTC)],
        3: [datetime(2026, 3, 2, 23, 50, tzinfo=UTC), datetime(2026, 3, 3, 0, 20, tzinfo=UTC)],
        4: [datetime(2026, 3, 4, 1, 0, tzinfo=UTC)],
        5: [datetime(2026, 3, 5, 1, 0, tzinfo=UTC)],
    }
    ids = {}
    n = 0
    for day, times in days.items():
        folder = root / f"AWSLogs/123456789012/GuardDuty/us-east-1/2026/03/{day:02d}"
        folder.mkdir(parents=True)
        lines = b""
        for t in times:
            f = _finding(base, n, t)
            ids[f["id"]] = t.isoformat()
            lines += orjson.dumps(f) + b"\n"
            n += 1
        (folder / "export.jsonl.gz").write_bytes(gzip.compress(lines))
    return root, ids


def test_pruning_skips_day_folders_and_keeps_the_late_export(tmp_path: Path, base: dict[str, Any]) -> None:
    root, _ = _export_tree(tmp_path / "in", base)
    stats = ReadStats()
    got = list(read_guardduty(windowed_paths([str(root)], WINDOW), on_reject=print, stats=stats))
    assert stats.files == 3  # 03/02, 03/03 and (slack) 03/04 of the five
    assert sorted({r.file.split("/")[-2] for r in got}) == ["02", "03", "04"]
    stats = ReadStats()
    list(read_guardduty([str(root)], on_reject=print, stats=stats))
    assert stats.files == 5
    # A file named on its own is read whatever its day.
    day1 = next(root.rglob("01/export.jsonl.gz"))
    stats = ReadStats()
    assert len(list(read_guardduty(windowed_paths([str(day1)], WINDOW), on_reject=print, stats=stats))) == 1
    assert stats.files == 1


@pytest.mark.parametrize("engine", ["stream", "duckdb"])
@pytest.mark.parametrize(("until", "want"), [
    # f001 at since is in; f003 (23:50 on 03/02, exported into folder 03/03) is in; f004 (00:20) is after until.
    ("2026-03-03T00:10:00Z", ["f001", "f002", "f003"]),
    # until's day is 03/02, yet folder 03/03 holds f003's late export: it must still be read.
    ("2026-03-02T23:55", ["f001", "f002", "f003"]),
    ("2026-03-02T23:50", ["f001", "f002"]),
])
def test_query_command_window(tmp_path: Path, base: dict[str, Any], engine: str, until: str, want: list[str]) -> None:
    root, _ = _export_tree(tmp_path / "in", base)
    res = runner.invoke(app, ["query", "from cloud.aws.guardduty select id, eventdate", str(root), "-e", engine,
                              "-f", "json", "--since", "2026-03-02", "--until", until])
    assert res.exit_code == 0, res.output
    assert [orjson.loads(x)["id"] for x in res.stdout.splitlines()] == want


@pytest.mark.parametrize("command", ["query", "detect"])
@pytest.mark.parametrize(("option", "value", "message"), [
    ("--since", "yesterday", "--since: 'yesterday' is neither an ISO 8601 timestamp"),
    ("--until", "5 fortnights", "--until: '5 fortnights' is neither"),
])
def test_bad_values_exit_2(tmp_path: Path, command: str, option: str, value: str, message: str) -> None:
    args = ["query", "from cloud.aws.guardduty", str(tmp_path)] if command == "query" else [
        "detect", str(tmp_path), "--state", str(tmp_path / "s.db")]
    res = runner.invoke(app, [*args, option, value])
    assert res.exit_code == 2
    assert message in res.output


def test_since_not_before_until_exits_2(tmp_path: Path) -> None:
    res = runner.invoke(app, ["detect", str(tmp_path), "--state", str(tmp_path / "s.db"),
                              "--since", "2026-03-03", "--until", "2026-03-02T23:00"])
    assert res.exit_code == 2
    assert "--since (2026-03-03T00:00:00+00:00) must be before --until (2026-03-02T23:00:00+00:00)" in res.output


def _alert_findings(state: Path) -> list[tuple[str, ...]]:
    from minerwatch.alerting.state import StateStore

    store = StateStore(str(state))
    try:
        return sorted(tuple(sorted(a["finding_ids"])) for a in store.list_alerts(None, None))
    finally:
        store.close()


def test_detect_window_same_alerts_stream_and_duckdb(tmp_path: Path, base: dict[str, Any]) -> None:
    root, _ = _export_tree(tmp_path / "in", base)
    got = {}
    for engine in ("stream", "duckdb"):
        state = tmp_path / f"{engine}.db"
        res = runner.invoke(app, ["detect", str(root), "--rule", str(DEFAULT_RULE), "--state", str(state), "-e",
                                  engine, "--since", "2026-03-02", "--until", "2026-03-03T00:10", "-q",
                                  "--stats-json", str(tmp_path / f"{engine}.json")])
        assert res.exit_code == 0, res.output
        stats = orjson.loads((tmp_path / f"{engine}.json").read_bytes())
        assert (stats["files"], stats["matched"], stats["rejected"]) == (3, 3, 0)
        got[engine] = _alert_findings(state)
    assert got["stream"] == got["duckdb"]
    assert {f for a in got["stream"] for f in a} == {"f001", "f002", "f003"}
