"""``hunt --since/--until``: only records whose event time lies in ``[since, until)`` count, for every source
(flow start else end, Resolver ``query_timestamp``, finding ``updatedAt``, CloudTrail ``eventTime``) and every flow
engine; the others are counted as outside the window, not rejected; export-layout day folders outside it are not
read. The flow engines are checked against an oracle: the same hunt without a window over only the records inside
it."""

from __future__ import annotations

import copy
import gzip
import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from minerwatch.cli.all_commands import app
from minerwatch.enrich.iocs import IocSet
from minerwatch.hunt import HuntOptions, hunt
from minerwatch.sources.vpcflow import V2_FIELDS
from minerwatch.timewindow import TimeWindow

runner = CliRunner()
REAL = Path(__file__).resolve().parents[1] / "data" / "real"
HEADER = " ".join(V2_FIELDS)
IOCS = IocSet.of(ips=["1.2.3.4", "192.0.2.0/24"], ports=[3333], source="test")
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
ENGINES = ("auto", "duckdb", "python")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _flow(eni: str, start: int | str, end: int | str, dst: str = "8.8.8.8", dport: int = 3333) -> str:
    return f"2 111111111111 {eni} 10.0.0.1 {dst} 51000 {dport} 6 5 400 {start} {end} ACCEPT OK"


def _write(folder: Path, name: str, lines: list[str], gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(line + "\n" for line in lines).encode()
    path = folder / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(text, mtime=0) if gz else text)
    return path


def _cli(*args: str) -> dict[str, Any]:
    res = runner.invoke(app, ["hunt", *args, "--format", "json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# -- the bounds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_since_is_in_until_is_out_on_every_engine(tmp_path: Path, engine: str) -> None:
    since, until = T0 + 100, T0 + 200
    lines = [
        HEADER,
        _flow("eni-before", since - 1, since + 50),  # starts a second early: out, though it ends inside
        _flow("eni-at-since", since, since + 60),
        _flow("eni-last", until - 1, until + 60),
        _flow("eni-at-until", until, until + 60),
        _flow("eni-end-only", "-", since + 10),  # no start: its end is its time
        _flow("eni-no-time", "-", "-"),  # no time at all: in no window
    ]
    _write(tmp_path / "a", "flows.log", lines)
    _write(tmp_path / "a", "more.log", lines, gz=True)  # two files: the auto engine forks its workers
    data = _cli("--flow", str(tmp_path / "a"), "--engine", engine, "--no-bundled", "--ioc", str(_ports(tmp_path)),
                "--since", _at(since).isoformat(), "--until", _at(until).isoformat(), "--threads", "2")
    assert [e["entity"] for e in data["entities"]] == ["eni-at-since", "eni-end-only", "eni-last"]
    flow = data["stats"]["sources"]["flow"]
    assert (flow["records"], flow["matched"], flow["outside_window"], flow["rejected"]) == (12, 6, 6, 0)
    assert data["stats"]["window"] == {"since": "2023-11-14T22:15:00Z", "until": "2023-11-14T22:16:40Z"}
    # Bounds between two seconds: a record at 100 s is before 100.5 s, and one at 200 s before 200.5 s.
    half = _cli("--flow", str(tmp_path / "a"), "--engine", engine, "--no-bundled", "--ioc", str(_ports(tmp_path)),
                "--since", _at(since + 0.5).isoformat(), "--until", _at(until + 0.5).isoformat())
    assert [e["entity"] for e in half["entities"]] == ["eni-at-until", "eni-end-only", "eni-last"]


def _ports(tmp_path: Path) -> Path:
    path = tmp_path / "iocs.txt"
    path.write_text("3333\n")
    return path


def test_without_a_window_nothing_is_outside(tmp_path: Path) -> None:
    _write(tmp_path / "a", "flows.log", [HEADER, _flow("eni-a", T0, T0 + 60)])
    data = _cli("--flow", str(tmp_path / "a"), "--no-bundled", "--ioc", str(_ports(tmp_path)))
    assert "outside_window" not in data["stats"]["sources"]["flow"] and "window" not in data["stats"]


def test_bad_bounds_exit_2_naming_the_option(tmp_path: Path) -> None:
    _write(tmp_path / "a", "flows.log", [HEADER])
    res = runner.invoke(app, ["hunt", "--flow", str(tmp_path / "a"), "--since", "yesterday"])
    assert res.exit_code == 2 and "--since" in res.output
    res = runner.invoke(app, ["hunt", "--flow", str(tmp_path / "a"), "--since", "2026-05-02", "--until", "2026-05-01"])
    assert res.exit_code == 2 and "must be before --until" in res.output
    res = runner.invoke(app, ["hunt", "--help"])
    assert "--since" in res.output and "--until" in res.output


# -- day folders ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_day_folders_outside_the_window_are_not_read(tmp_path: Path, engine: str) -> None:
    root = tmp_path / "AWSLogs" / "111111111111" / "vpcflowlogs" / "eu-west-1"
    day = datetime(2023, 11, 14, tzinfo=UTC)
    for offset in (-3, 0, 1, 3):
        d = day + timedelta(days=offset)
        t = int(d.timestamp()) + 3600
        folder = root / f"{d:%Y/%m/%d}"
        _write(folder, "flows.log", [HEADER, _flow(f"eni-{d:%d}", t, t + 60)])
        _write(folder, "other.log", [HEADER, _flow(f"eni-{d:%d}-b", t + 1, t + 60)])
    # Folder days -3 and +3 cannot hold a record of [day, day + 1d): not read. Day +1 can (a record exported
    # the day after its event), so it is read and its records are outside.
    data = _cli("--flow", str(tmp_path / "AWSLogs"), "--engine", engine, "--no-bundled", "--ioc",
                str(_ports(tmp_path)), "--since", "2023-11-14", "--until", "2023-11-15", "--threads", "2")
    assert [e["entity"] for e in data["entities"]] == ["eni-14", "eni-14-b"]
    flow = data["stats"]["sources"]["flow"]
    assert (flow["files"], flow["records"], flow["outside_window"]) == (4, 4, 2)


# -- the flow engines against the oracle ------------------------------------------------------------------------

ENIS = ["eni-0a", "eni-0b", "eni-0c"]
record = st.builds(
    lambda eni, dst, dport, start, missing: _flow(
        eni, "-" if missing == "start" or missing == "both" else start,
        "-" if missing == "both" else start + 30, dst, dport,
    ),
    st.sampled_from(ENIS),
    st.sampled_from(["8.8.8.8", "1.2.3.4", "192.0.2.7", "1.2.3.40"]),
    st.sampled_from([443, 3333, 33330]),
    st.integers(0, 20).map(lambda i: T0 + 10 * i),
    st.sampled_from([None] * 8 + ["start", "both"]),
)
other = st.sampled_from([
    HEADER,
    "",
    "2 111111111111 eni-0d 10.0.0.1 1.2.3.4 51000 3333 6 5 400",  # a wrong field count: a reject
    _flow("eni-0e", T0 + 50, T0 + 80).replace(" 400 ", " 4x0 "),  # not an integer: a reject
])
bound = st.one_of(st.none(), st.integers(-2, 22).map(lambda i: T0 + 10 * i), st.integers(-2, 22).map(
    lambda i: T0 + 10 * i + 0.5
))


def _in_window(line: str, window: TimeWindow) -> bool:
    if not window:
        return True  # no window: every record counts, even one without a time
    fields = line.split()
    if len(fields) != len(V2_FIELDS) or fields[0] == "version" or not fields[9].isdigit():
        return True  # not a record: kept, so that it is rejected (or read as a header) as before
    start, end = fields[10], fields[11]
    t = start if start != "-" else end
    return t != "-" and window.holds(_at(int(t)))


def _summary(result: Any) -> tuple[Any, ...]:
    data = result.to_json()
    flow = data["stats"]["sources"]["flow"]
    return (data["entities"], flow["matched"], flow["rejected"], flow.get("reject_reasons"), flow.get("first"),
            flow.get("last"))


@settings(max_examples=30, deadline=None)
@given(
    files=st.lists(
        st.tuples(st.lists(st.one_of(record, record, record, other), max_size=30), st.booleans()).map(
            lambda t: sorted(t[0], key=_sort_key) if t[1] else t[0]
        ),
        min_size=1, max_size=3,
    ),
    lo=bound,
    hi=bound,
    gz=st.booleans(),
)
def test_every_engine_counts_what_the_oracle_counts(files: list[list[str]], lo: Any, hi: Any, gz: bool) -> None:
    if lo is not None and hi is not None and lo >= hi:
        lo, hi = hi - 10, lo + 10
    window = TimeWindow(None if lo is None else _at(lo), None if hi is None else _at(hi))
    with tempfile.TemporaryDirectory(prefix="mw-hunt-window-") as tmp:
        full, kept = Path(tmp) / "full", Path(tmp) / "kept"
        records = outside = 0
        for i, lines in enumerate(files):
            lines = [HEADER, *lines]
            _write(full, f"f{i}.log", lines, gz=gz)
            _write(kept, f"f{i}.log", [line for line in lines if _in_window(line, window)], gz=gz)
            recs = [line for line in lines if line and line != HEADER]
            records += len(recs)
            outside += sum(1 for line in recs if not _in_window(line, window))
        oracle = hunt(IOCS, HuntOptions(flow=[str(kept)], engine="python", span=True))
        want = _summary(oracle)
        for engine, threads in (("python", None), ("duckdb", None), ("auto", 2), ("auto", 1)):
            got = hunt(IOCS, HuntOptions(flow=[str(full)], engine=engine, threads=threads, span=True,  # type: ignore
                                         window=window))
            assert _summary(got) == want, engine
            assert got.stats.flow is not None
            assert got.stats.flow.outside_window == (outside if window else None), engine
            assert got.stats.flow.records == records, engine


def _sort_key(line: str) -> int:
    # Records in time order, as flow logs are written: runs wholly in or out of a window, and runs that straddle
    # a bound.
    fields = line.split()
    return int(fields[10]) if len(fields) == len(V2_FIELDS) and fields[10].isdigit() else 0


def test_a_straddling_run_keeps_only_its_candidates_inside(tmp_path: Path) -> None:
    # 2,000 plain records a second apart, one hit every 100: the prefilter's runs cross both bounds.
    lines = [HEADER] + [
        _flow(f"eni-{i // 100:02d}", T0 + i, T0 + i + 30, dport=3333 if i % 100 == 0 else 443) for i in range(2000)
    ]
    _write(tmp_path / "a", "flows.log", lines, gz=True)
    window = TimeWindow(_at(T0 + 450), _at(T0 + 1300))
    got = hunt(IOCS, HuntOptions(flow=[str(tmp_path / "a")], engine="python", span=True, window=window))
    assert [e.entity for e in got.entities] == [f"eni-{i:02d}" for i in range(5, 13)]
    assert got.stats.flow is not None
    assert got.stats.flow.outside_window == 2000 - 850 and got.stats.flow.records == 2000
    assert (got.stats.flow.first, got.stats.flow.last) == (_at(T0 + 450), _at(T0 + 1299 + 30))


# -- the other sources ----------------------------------------------------------------------------------------


def test_resolver_queries_count_by_query_timestamp(tmp_path: Path) -> None:
    doc = json.loads((REAL / "route53" / "awsdocs__amazon-route53-docs__doc_source__resolver-query-logs-example-json"
                      ".md.block00.json").read_text())
    queries = []
    for i, when in enumerate(["2021-02-04T09:59:59Z", "2021-02-04T10:00:00Z", "2021-02-04T10:59:59Z",
                              "2021-02-04T11:00:00Z"]):
        q = copy.deepcopy(doc)
        q["query_name"], q["query_timestamp"], q["srcids"]["instance"] = "xmr.nanopool.org.", when, f"i-0{i}"
        queries.append(q)
    path = tmp_path / "dns.jsonl"
    path.write_text("".join(json.dumps(q) + "\n" for q in queries))
    iocs = IocSet.of(domains=["nanopool.org"], source="test")
    window = TimeWindow(datetime(2021, 2, 4, 10, tzinfo=UTC), datetime(2021, 2, 4, 11, tzinfo=UTC))
    result = hunt(iocs, HuntOptions(dns=[str(path)], window=window))
    assert [e.entity for e in result.entities] == ["i-01", "i-02"]
    assert result.stats.dns is not None
    assert (result.stats.dns.records, result.stats.dns.matched, result.stats.dns.outside_window) == (4, 2, 2)
    last = datetime(2021, 2, 4, 10, 59, 59, tzinfo=UTC)
    assert (result.stats.dns.first, result.stats.dns.last) == (window.since, last)


def test_findings_count_by_their_event_time(scenario: tuple[Path, dict[str, Any]], tmp_path: Path,
                                            hunt_iocs: IocSet) -> None:
    root, _ = scenario
    docs = (json.loads(line) for f in sorted((root / "guardduty").rglob("*.gz"))
            for line in gzip.decompress(f.read_bytes()).splitlines())
    base = next(doc for doc in docs if doc["type"] == "CryptoCurrency:EC2/BitcoinTool.B")
    inside, late = copy.deepcopy(base), copy.deepcopy(base)
    inside["updatedAt"] = "2030-01-01T00:00:00.000Z"
    late["updatedAt"] = "2030-01-02T00:00:00.000Z"  # the same finding re-sent at the until bound: out
    early = copy.deepcopy(inside)
    early["id"], early["updatedAt"] = "e" * 32, "2029-12-31T23:59:59.999Z"
    path = tmp_path / "findings.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in (early, inside, late)))
    window = TimeWindow(datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))
    result = hunt(hunt_iocs, HuntOptions(findings=[str(path)], window=window))
    (e,) = result.entities
    assert e.findings == 1 and e.finding_ids.values == [base["id"]]
    assert e.to_json()["last_seen"] == "2030-01-01T00:00:00Z"  # not the re-sent delivery's time
    assert result.stats.findings is not None and result.stats.findings.outside_window == 2


def test_cloudtrail_outside_the_window_ties_nothing(tmp_path: Path) -> None:
    # The real RunInstances event (2024-09-11T09:28:29Z) ties eni-043138569d4a31e90 to i-0f2f135de18b555e3.
    trail = str(REAL / "cloudtrail" / "elastic-test-run-instances.jsonl")
    t = int(datetime(2024, 9, 11, 10, tzinfo=UTC).timestamp())
    flows = _write(tmp_path, "flows.log", [HEADER, _flow("eni-043138569d4a31e90", t, t + 60).replace(
        "111111111111", "1010101010101")])
    since = {"at": datetime(2024, 9, 11, 9, 28, 29, tzinfo=UTC), "after": datetime(2024, 9, 11, 9, 28, 30, tzinfo=UTC)}
    got = {}
    for name, t_since in since.items():
        result = hunt(IOCS, HuntOptions(flow=[str(flows)], cloudtrail=[trail], window=TimeWindow(t_since)))
        assert result.stats.cloudtrail is not None
        got[name] = ([(e.entity, e.mapped_by) for e in result.entities], result.stats.cloudtrail.outside_window)
    assert got == {"at": ([("i-0f2f135de18b555e3", "cloudtrail")], 0),
                   "after": ([("eni-043138569d4a31e90", None)], 1)}


@pytest.fixture(scope="module")
def s3_client() -> Any:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield boto3.client("s3", endpoint_url=f"http://{host}:{port}", region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
    finally:
        server.stop()


@pytest.mark.parametrize("engine", ENGINES)
def test_s3_day_prefixes_outside_the_window_are_not_read(s3_client: Any, engine: str) -> None:
    bucket = f"flows-{engine}"
    s3_client.create_bucket(Bucket=bucket)
    prefix = "AWSLogs/111111111111/vpcflowlogs/eu-west-1"
    day = datetime(2023, 11, 14, tzinfo=UTC)
    for offset in (-2, 0, 3):  # day +1 may hold a record of the window (exported a day later): +3 cannot
        d = day + timedelta(days=offset)
        t = int(d.timestamp()) + 3600
        body = gzip.compress(f"{HEADER}\n{_flow(f'eni-{d:%d}', t, t + 60)}\nnot a flow record\n".encode(), mtime=0)
        s3_client.put_object(Bucket=bucket, Key=f"{prefix}/{d:%Y/%m/%d}/flows.log.gz", Body=body)
    window = TimeWindow(day, day + timedelta(days=1))
    result = hunt(IOCS, HuntOptions(flow=[f"s3://{bucket}/AWSLogs/"], engine=engine, window=window,  # type: ignore
                                    s3_client=s3_client))
    assert [e.entity for e in result.entities] == ["eni-14"]
    assert result.stats.flow is not None
    # Only the object of the window's day was read: one record, one reject (the line that is no record).
    assert (result.stats.flow.files, result.stats.flow.records, result.stats.flow.rejected) == (1, 2, 1)
    assert result.stats.flow.outside_window == 0
