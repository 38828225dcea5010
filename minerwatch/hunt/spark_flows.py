"""The flow-log sweep on Spark: the same hits and groups as the DuckDB and Python engines (``hunt.flows``).

Spark reads the flow logs with the project's reader (``minerwatch.engine.spark``: every version, custom formats
with a header, Parquet, rejects with file and line), keeps the records whose address or port is an indicator
(exact addresses, the network ranges of :func:`~minerwatch.hunt.flows.network_ranges`, ports — all passed as
literal values, never as SQL text), and folds them per (account, interface, instance, region, source, destination,
matched ports) in the cluster. Only the groups come back to the driver, where :func:`~minerwatch.hunt.flows.classify`
gives the exact verdict as for the other engines. A time window is the other engines' predicate: the record's start,
else end, in the window's whole-second bounds (:meth:`~minerwatch.timewindow.TimeWindow.seconds`); its day folders
are pruned by the reader's listing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from minerwatch.catalog.tables import VPCFLOW
from minerwatch.enrich.iocs import IocSet
from minerwatch.hunt.flows import FlowGroup, exact_addresses, network_ranges
from minerwatch.hunt.model import SourceStats
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.timewindow import TimeWindow

_KEYS = ("account_id", "interface_id", "instance_id", "region", "srcaddr", "dstaddr")


def sweep_spark(
    spark: Any,
    paths: Sequence[str],
    iocs: IocSet,
    stats: SourceStats,
    on_reject: Callable[[Reject], None] | None = None,
    window: TimeWindow | None = None,
) -> dict[tuple[Any, ...], FlowGroup]:
    """Hit groups computed in Spark. Records, files and rejects (and with ``window``, the records outside it)
    are added to ``stats``."""
    from functools import reduce

    from pyspark.sql import functions as F

    from minerwatch.engine.spark import read_input

    def reject(rej: Reject) -> None:
        stats.reject(rej.reason)
        if on_reject is not None:
            on_reject(rej)

    read = ReadStats()
    window = window if window else None
    inp = read_input(spark, VPCFLOW, list(paths), on_reject=reject, stats=read,
                     since=window.since if window else None, until=window.until if window else None)
    try:
        df = spark.table(inp.view)
        if window is not None:
            seconds = F.coalesce(F.col("start"), F.col("end"))
            lo, hi = window.seconds()
            inside = F.lit(True)
            if lo is not None:
                inside = inside & (seconds >= F.lit(lo))
            if hi is not None:
                inside = inside & (seconds < F.lit(hi))
            inside = F.coalesce(inside, F.lit(False))  # no time: in no window
            stats.outside(df.where(~inside).count())
            df = df.where(inside)
        ports = sorted(iocs.ports)
        ips = exact_addresses(iocs)
        networks = network_ranges(iocs)
        dst, src = F.col("dstaddr"), F.col("srcaddr")
        dport, sport = F.col("dstport"), F.col("srcport")
        conditions = [F.lit(False)]
        if ports:
            conditions += [dport.isin(ports), sport.isin(ports)]
        if ips:
            conditions += [dst.isin(ips), src.isin(ips)]
        for lo, hi in networks.ranges:
            for side in (dst, src):
                conditions.append((side >= F.lit(lo)) & (side < F.lit(hi)))
        for flag, char in ((networks.any_ipv4, "."), (networks.any_ipv6, ":")):
            if flag:
                conditions += [dst.contains(F.lit(char)), src.contains(F.lit(char))]
        hit = reduce(lambda a, b: a | b, conditions)
        null_port = F.lit(None).cast("bigint")
        port_d = F.when(dport.isin(ports), dport).otherwise(null_port) if ports else null_port
        port_s = F.when(sport.isin(ports), sport).otherwise(null_port) if ports else null_port
        grouped = (
            df.where(F.coalesce(hit, F.lit(False)))
            .select(*(F.col(k) for k in _KEYS), port_d.alias("port_d"), port_s.alias("port_s"),
                    "bytes", "packets", "start", "end", "action")
            .groupBy(*_KEYS, "port_d", "port_s")
            .agg(
                F.count(F.lit(1)).alias("flows"),
                F.coalesce(F.sum("bytes"), F.lit(0)).alias("bytes"),
                F.coalesce(F.sum("packets"), F.lit(0)).alias("packets"),
                F.min(F.coalesce("start", "end")).alias("first"),
                F.max(F.coalesce("end", "start")).alias("last"),
                F.count_if(F.col("action") == "ACCEPT").alias("accepted"),
                F.count_if(F.col("action") == "REJECT").alias("rejected"),
            )
        )
        groups = [FlowGroup(*r) for r in grouped.toLocalIterator()]
    finally:
        inp.close()
    stats.files += read.files
    if stats.records is not None:
        stats.records += read.records_read
    stats.engine = "spark"
    out: dict[tuple[Any, ...], FlowGroup] = {}
    for g in groups:
        out[g.key] = g
    return out
