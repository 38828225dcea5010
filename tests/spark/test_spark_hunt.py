"""``hunt`` on Spark names the same entities, with the same counts, as the DuckDB and per-record engines: the real
flow-log samples (every version, custom headers, a repeated header, JSON lines) against addresses, networks and
ports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minerwatch.enrich.iocs import IocSet
from minerwatch.hunt import HuntOptions, hunt
from minerwatch.timewindow import TimeWindow

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "real" / "vpcflow"


def _comparable(data: dict[str, Any]) -> tuple[Any, ...]:
    flow = data["stats"]["sources"]["flow"]
    return data["entities"], flow["records"], flow["matched"], flow["rejected"], flow["files"]


def test_spark_hunt_names_the_same_entities(spark: Any) -> None:
    iocs = IocSet.of(
        ips=["158.109.0.1", "2001:db8:1234:a102::/64", "10.0.0.0/8", "172.31.16.0/20", "1.128.0.0/9", "81.2.69.142"],
        ports=[3389, 80, 5001],
        source="test",
    )
    results = {
        engine: hunt(iocs, HuntOptions(engine=engine, flow=[str(SAMPLES)], spark=spark)).to_json()  # type: ignore
        for engine in ("duckdb", "python", "spark")
    }
    assert results["spark"]["entities"], "the samples hold hits"
    assert _comparable(results["spark"]) == _comparable(results["python"]) == _comparable(results["duckdb"])
    assert results["spark"]["stats"]["sources"]["flow"]["engine"] == "spark"


def test_spark_hunt_counts_in_the_window_as_the_other_engines(spark: Any) -> None:
    iocs = IocSet.of(ips=["10.0.0.0/8", "172.31.16.0/20", "1.128.0.0/9", "158.109.0.1"], ports=[3389, 80, 5001, 22],
                     source="test")
    # The 2014 samples fall before it; a transit gateway sample starts exactly at its end (out).
    window = TimeWindow(datetime(2015, 1, 1, tzinfo=UTC), datetime.fromtimestamp(1755592543, UTC))
    results = {
        engine: hunt(iocs, HuntOptions(engine=engine, flow=[str(SAMPLES)], spark=spark,  # type: ignore[arg-type]
                                       window=window)).to_json()
        for engine in ("duckdb", "python", "spark")
    }
    outside = {engine: r["stats"]["sources"]["flow"]["outside_window"] for engine, r in results.items()}
    assert _comparable(results["spark"]) == _comparable(results["python"]) == _comparable(results["duckdb"])
    assert outside["spark"] == outside["python"] == outside["duckdb"] > 0
    unwindowed = hunt(iocs, HuntOptions(engine="duckdb", flow=[str(SAMPLES)])).to_json()
    assert results["spark"]["entities"] and results["spark"]["entities"] != unwindowed["entities"]


def test_spark_tables_are_the_documented_ones(spark: Any) -> None:
    """The relation the readers build for each catalogue table has exactly the columns and types of
    ``spark_tables.table_ddl`` (the definition docs/spark.md describes)."""
    from pyspark.sql.types import StructType

    from minerwatch.catalog.tables import TABLES
    from minerwatch.engine.spark import read_input
    from minerwatch.engine.spark_tables import table_ddl
    from minerwatch.sources.records import ReadStats

    samples = Path(__file__).resolve().parents[1] / "data" / "real"
    folders = {"cloud.aws.guardduty": "guardduty", "cloud.aws.vpcflow": "vpcflow", "cloud.aws.cloudtrail": "cloudtrail",
               "cloud.aws.route53resolver": "route53"}
    for name, table in TABLES.items():
        inp = read_input(spark, table, [str(samples / folders[name])], on_reject=lambda _r: None, stats=ReadStats())
        try:
            frame = spark.table(inp.view).select(*table.columns, "doc")
            assert frame.schema.simpleString() == StructType.fromDDL(table_ddl(table)).simpleString()
            assert frame.count() > 0
        finally:
            inp.close()
