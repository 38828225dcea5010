"""The bundled price table, its loader's errors, and the interval arithmetic behind the cost figure."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minerwatch.catalog.prices import load_prices, parse_prices
from minerwatch.enrich.context import AlertContext
from minerwatch.enrich.cost import cost_section, mining_intervals, union
from minerwatch.enrich.cpu import Datapoint, period_of, sustained
from minerwatch.enrich.sections import ev, make_section, mining
from minerwatch.errors import ConfigError

BUNDLED = Path(__file__).resolve().parents[2] / "minerwatch" / "catalog" / "data" / "ec2_on_demand_prices.csv"
T0 = datetime(2025, 3, 10, 8, 0, tzinfo=UTC)


def test_bundled_table_states_date_and_source_and_covers_common_types() -> None:
    table = load_prices()
    assert table.as_of and table.as_of[:4].isdigit()
    assert table.source and "aws.amazon.com/ec2/pricing/on-demand" in table.source
    assert {"us-east-1", "eu-west-1"} <= set(table.regions)
    families = {"t2", "t3", "t3a", "m5", "m6i", "c5", "c6i", "r5", "p2", "p3", "p4d", "g4dn", "g5", "inf1"}
    for region in ("us-east-1", "eu-west-1"):
        present = {t.split(".")[0] for (r, t) in table.prices if r == region}
        assert families <= present, families - present
    # The same figures a plain CSV reader sees.
    lines = [ln for ln in BUNDLED.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert len(rows) == len(table.prices)
    for row in rows:
        assert table.price(row["region"], row["instance_type"]) == float(row["usd_per_hour"])
    assert table.price("us-east-1", "P3.8XLARGE") == table.price("us-east-1", "p3.8xlarge")
    assert table.price("ap-south-1", "p3.8xlarge") is None and table.price(None, "p3.8xlarge") is None


def test_bundled_prices_are_plausible() -> None:
    table = load_prices()
    for region in ("us-east-1", "eu-west-1"):
        # Within a family, a bigger size costs more (g5.16xlarge is cheaper than g5.12xlarge on AWS's list too).
        for small, big in [("m5.large", "m5.24xlarge"), ("p3.2xlarge", "p3.16xlarge"), ("t3.nano", "t3.2xlarge")]:
            assert table.price(region, small) < table.price(region, big)  # type: ignore[operator]
        assert table.price(region, "m5.xlarge") == pytest.approx(2 * table.price(region, "m5.large"))  # type: ignore[operator]
    # Ireland lists above N. Virginia for these.
    for itype in ("m5.large", "p3.8xlarge", "g4dn.12xlarge"):
        assert table.price("eu-west-1", itype) > table.price("us-east-1", itype)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("region,type,price\n", "header must be", 1),
        ("region,instance_type,usd_per_hour\nus-east-1,m5.large,cheap\n", "not a number", 2),
        ("region,instance_type,usd_per_hour\nus-east-1,m5.large,-1\n", "finite number", 2),
        ("region,instance_type,usd_per_hour\nus-east-1,m5.large,nan\n", "finite number", 2),
        ("region,instance_type,usd_per_hour\nus-east-1,m5.large\n", "expected 3 columns", 2),
        ("# c\nregion,instance_type,usd_per_hour\nus-east-1,m5.large,1\nUS-EAST-1,M5.LARGE,2\n", "listed twice", 4),
        ("# only comments\n", "no header row", None),
    ],
)
def test_price_table_errors_name_the_line(text: str, message: str, line: int | None) -> None:
    with pytest.raises(ConfigError) as info:
        parse_prices(text, "p.csv")
    assert message in info.value.message and info.value.line == line and info.value.file == "p.csv"


def test_load_prices_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("# as_of: 2031-02-03\n# source: somewhere\nregion,instance_type,usd_per_hour\nxx-1,a.b,1.5\n")
    table = load_prices(f)
    assert (table.as_of, table.source, table.file, table.price("xx-1", "a.b")) == (
        "2031-02-03",
        "somewhere",
        str(f),
        1.5,
    )
    with pytest.raises(ConfigError):
        load_prices(tmp_path / "missing.csv")


def _iv(a: int, b: int, kind: str = "x") -> tuple[datetime, datetime, frozenset[str]]:
    return (T0 + timedelta(minutes=a), T0 + timedelta(minutes=b), frozenset({kind}))


def test_union_merges_overlapping_and_touching_intervals_only() -> None:
    merged = union([_iv(30, 40, "b"), _iv(0, 10, "a"), _iv(10, 20, "c"), _iv(15, 18, "d"), _iv(41, 41, "e")])
    assert [(s, e) for s, e, _ in merged] == [
        (T0, T0 + timedelta(minutes=20)),
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=40)),
        (T0 + timedelta(minutes=41), T0 + timedelta(minutes=41)),
    ]
    assert merged[0][2] == frozenset({"a", "c", "d"})


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 60)), max_size=30))
def test_union_length_is_the_covered_minutes(spans: list[tuple[int, int]]) -> None:
    intervals = [_iv(a, a + n) for a, n in spans]
    covered = {m for a, n in spans for m in range(a, a + n)}
    merged = union(intervals)
    assert sum((e - s).total_seconds() for s, e, _ in merged) == 60 * len(covered)
    assert all(a[1] < b[0] for a, b in zip(merged, merged[1:], strict=False))


def _ctx(window_hours: float = 1) -> AlertContext:
    alert = {
        "alert_id": "mw-x",
        "rule_id": "r",
        "key": {"accountid": "1", "instance_id": "i-1"},
        "fields": {"region": "us-east-1", "instance_id": "i-1"},
        "groups": [],
        "first_seen": "2025-03-10T08:00:00Z",
        "last_seen": "2025-03-10T09:00:00Z",
        "finding_ids": [],
    }
    return AlertContext.from_alert(alert, timedelta(hours=window_hours))


def test_cost_section_clips_to_the_window_and_recomputes() -> None:
    ctx = _ctx(window_hours=1)  # window 07:00 – 10:00
    ctx.instances["i-1"].set_type("m5.large", "RunInstances")
    cpu = make_section(
        "cpu",
        "ok",
        evidence=[
            ev(T0, "f:1", "x", instance_id="i-1", mining=mining(T0 - timedelta(hours=3), T0 + timedelta(hours=1))),
            ev(T0, "f:2", "x", instance_id="i-2", mining=mining(T0, T0 + timedelta(hours=1))),  # another instance
        ],
    )
    network = make_section(
        "network",
        "ok",
        evidence=[
            ev(T0, "f:3", "x", instance_id="i-1", mining=mining(T0 + timedelta(hours=1), T0 + timedelta(hours=3))),
            ev(T0, "f:4", "x", instance_id="i-1"),  # a rejected flow: no mining interval
        ],
    )
    dns = make_section("dns", "ok", evidence=[ev(T0, "f:5", "x", instance_id="i-1", mining=mining(T0))])
    sections = {"cpu": cpu, "network": network, "dns": dns, "findings": make_section("findings", "unavailable")}
    per = mining_intervals(ctx, sections)
    assert [(s.hour, e.hour) for s, e, _ in per["i-1"]] == [(7, 9), (9, 10), (8, 8)]
    table = parse_prices("region,instance_type,usd_per_hour\nus-east-1,m5.large,0.5\n", "t.csv")
    section = cost_section(ctx, sections, table)
    (entry,) = section["summary"]["instances"]
    assert entry["evidence_seconds"] == 3 * 3600 and entry["cost_usd"] == 1.5
    assert section["summary"]["total_usd"] == 1.5 and section["status"] == "ok"
    assert entry["evidence_records"] == {"cpu": 1, "network": 1, "dns": 1}
    assert section["warnings"] == ["findings section unavailable: its evidence is not counted"]


def _points(values: list[float | None], period: int = 300) -> list[Datapoint]:
    return [
        Datapoint("i-1", T0 + timedelta(seconds=i * period), v, v, f"m:{i}")
        for i, v in enumerate(values)
        if v is not None
    ]


def test_sustained_needs_consecutive_points_and_breaks_on_gaps() -> None:
    pts = _points([90, 95, 99, 50, 85, 85, None, 90, 91, 92, 93])
    runs = sustained(pts, 80, 3, 300)
    assert [(len(r), s, e) for s, e, r in runs] == [
        (3, T0, T0 + timedelta(minutes=15)),
        (4, T0 + timedelta(minutes=35), T0 + timedelta(minutes=55)),
    ]
    assert sustained(pts, 80, 5, 300) == []
    assert sustained(_points([80, 80, 80]), 80, 3, 300)  # at the threshold counts
    assert period_of(_points([1, 2, 3], period=60)) == 60 and period_of([]) == 300
