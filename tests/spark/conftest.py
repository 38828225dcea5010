"""One local Spark session for the whole test run (``local[2]``, few shuffle partitions). A non-UTC time zone is
tested twice: the session time zone is switched to one inside a test (the SQL must not lean on it), and the CLI
runs in a subprocess whose local time zone is one (``test_timezone``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark")

# The helpers of the LINQ differential corpus (strategies, real records, row normalisation).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))

from minerwatch.engine.spark import SparkOptions, spark_session  # noqa: E402

NON_UTC = "America/New_York"
TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "1g",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # One worker runs every Spark test (`-n 2 --dist loadgroup`), so one JVM serves the whole run.
    for item in items:
        if "tests/spark/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.xdist_group("spark"))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    with spark_session(SparkOptions(master="local[2]", conf=TEST_CONF, app_name="minerwatch-tests")) as session:
        yield session


@pytest.fixture
def non_utc_session(spark: Any) -> Iterator[Any]:
    """The session with its time zone set to a non-UTC zone for one test (the engine pins UTC; the SQL must give
    the same rows whatever the zone)."""
    spark.conf.set("spark.sql.session.timeZone", NON_UTC)
    try:
        yield spark
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
