"""The Spark options shared by ``detect``, ``hunt`` and ``query`` (used with ``--engine spark``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from minerwatch.engine.spark import SparkOptions

SPARK_MASTER = typer.Option(
    "local[*]", "--spark-master", help="With --engine spark: the master URL (local[N], spark://, yarn, k8s://)."
)
SPARK_REMOTE = typer.Option(
    None, "--spark-remote", help="With --engine spark: a Spark Connect server (sc://HOST:PORT) instead of a master."
)
SPARK_CONF = typer.Option(
    [], "--spark-conf", help="With --engine spark: a Spark setting KEY=VALUE (repeatable), e.g. the S3 connector's."
)


def spark_options(master: str, remote: str | None, conf: list[str] | None) -> SparkOptions:
    from minerwatch.engine.spark import SparkOptions, parse_conf

    return SparkOptions(master=master, remote=remote or None, conf=parse_conf(conf or []))
