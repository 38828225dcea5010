"""``hunt``: sweep the fleet's flow logs, Resolver query logs and GuardDuty findings for the IOCs, and say per
instance / ENI / address / account what matched, how much, first and last seen.

Order of work: findings and CloudTrail first (they only add to the instance map, apart from the findings'
own matches), then Resolver queries (matches, and the addresses instances used), then flow logs — so every
ENI and address seen anywhere can be tied to its instance when the entities are built at the end.

With ``HuntOptions.window`` (``--since``/``--until``), only records whose event time lies in ``[since, until)``
count, for every source and engine: flow records by their start (else end), Resolver queries by
``query_timestamp``, findings by ``updatedAt`` (else ``createdAt``, as ``detect`` reads them), CloudTrail events by
``eventTime`` — each table's ``eventdate``. The others add to no entity and tie no ENI or address to an instance;
they are counted per source (``SourceStats.outside_window``), not rejected. Export-layout day folders that cannot
hold a record of the window are not read (:class:`~minerwatch.sources.inputs.WindowedPath`).

Rejected records are counted per source and, with ``HuntOptions.rejects``, written as JSON Lines with file,
line and reason. A hunt never stops on a bad record; a path that does not exist is an
:class:`~minerwatch.errors.InputError` before anything is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from minerwatch.catalog.tables import CLOUDTRAIL
from minerwatch.enrich.iocs import IocSet, merge
from minerwatch.errors import InputError
from minerwatch.hunt.dns import DnsGroup, resolved_iocs, sweep_dns
from minerwatch.hunt.findings import FindingHit, sweep_findings
from minerwatch.hunt.flows import FlowGroup, classify, sweep_duckdb, sweep_local, sweep_python
from minerwatch.hunt.mapping import InstanceMap
from minerwatch.hunt.model import Entity, EntityType, HuntResult, HuntStats, SourceStats, from_epoch
from minerwatch.sources import inputs
from minerwatch.sources.cloudtrail import read_cloudtrail
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.timewindow import TimeWindow

Engine = Literal["auto", "duckdb", "python", "spark"]
_TYPE_ORDER = {"instance": 0, "eni": 1, "address": 2, "resource": 3, "account": 4}


@dataclass
class HuntOptions:
    flow: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    cloudtrail: list[str] = field(default_factory=list)
    """Only read for the instance map (``RunInstances``, ``AttachNetworkInterface``)."""
    engine: Engine = "auto"
    """The flow sweep's engine: ``auto`` reads local text files with the per-record reader on every core (Parquet
    with DuckDB), ``duckdb`` every local file with DuckDB, ``python`` everything with the per-record reader in
    this process."""
    resolved_ips: bool = False
    """Add the addresses matching Resolver queries resolved to, to the flow sweep's indicators."""
    include_samples: bool = False
    rejects: str | None = None
    """Append rejected records here (JSON Lines with source, file, line, reason)."""
    threads: int | None = None
    """DuckDB threads, or the ``auto`` engine's worker processes (default: every core)."""
    span: bool = False
    """Find the time span of every flow record read (``SourceStats.first/last``), at the cost of one more pass
    of the DuckDB engine and of splitting every line of the ``auto`` one; the ``python`` engine and the DNS
    sweep track it anyway."""
    s3_client: Any | None = None
    spark: Any | None = None
    """With engine ``spark``: the session to use; else one is made from ``spark_options`` for the sweep."""
    spark_options: Any | None = None
    window: TimeWindow | None = None
    """Only records whose event time lies in ``[since, until)`` count (see the module docstring)."""


class _Rejects:
    def __init__(self, path: str | None) -> None:
        self.path = path
        self._fh: IO[bytes] | None = None
        self.count = 0

    def sink(self, source: str) -> Callable[[Reject], None] | None:
        if self.path is None:
            return None

        def write(rej: Reject) -> None:
            if self._fh is None:
                assert self.path is not None
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.path, "ab")  # noqa: SIM115 (closed in close)
            self._fh.write(orjson.dumps({"source": source, **rej.to_json()}) + b"\n")
            self.count += 1

        return write

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def hunt(iocs: IocSet, options: HuntOptions) -> HuntResult:
    """Sweep the logs in ``options`` for ``iocs``; entities sorted by account, kind of entity and name."""
    started = time.monotonic()
    if not (options.flow or options.dns or options.findings):
        raise ValueError("nothing to hunt in: give flow logs, Resolver query logs or GuardDuty findings")
    inputs.check_paths([*options.findings, *options.cloudtrail, *options.dns, *options.flow])
    if [*options.findings, *options.cloudtrail, *options.dns, *options.flow].count("-") > 1:
        raise InputError("stdin ('-') can feed one source only")
    window = options.window if options.window else None
    if window is not None:  # day folders outside the window are not read (the records' times still decide)
        options = replace(options, **{
            name: inputs.windowed_paths(getattr(options, name), window)
            for name in ("flow", "dns", "findings", "cloudtrail")
        })
    stats = HuntStats(window=window)
    imap = InstanceMap()
    rejects = _Rejects(options.rejects)
    found: list[FindingHit] = []
    dns_groups: list[DnsGroup] = []
    flow_groups: Iterable[FlowGroup] = ()
    effective = iocs
    try:
        if options.findings:
            stats.findings = _source_stats(options.findings, window)
            found = sweep_findings(
                options.findings, iocs, stats.findings, imap, rejects.sink("findings"), options.include_samples,
                options.s3_client, window,
            )
        if options.cloudtrail:
            stats.cloudtrail = _source_stats(options.cloudtrail, window)
            _read_cloudtrail(options.cloudtrail, stats.cloudtrail, imap, rejects.sink("cloudtrail"), options)
        if options.dns:
            stats.dns = _source_stats(options.dns, window)
            dns_groups = sweep_dns(
                options.dns, iocs, stats.dns, imap, rejects.sink("dns"), options.s3_client, window
            )
            if options.resolved_ips:
                effective = merge(iocs, resolved_iocs(dns_groups))
        if options.flow:
            stats.flow = _source_stats(options.flow, window)
            if options.engine == "spark":
                flow_groups = _sweep_spark(options, effective, stats.flow, rejects.sink("flow")).values()
            elif options.engine == "auto":
                flow_groups = sweep_local(
                    options.flow, effective, stats.flow, rejects.sink("flow"), options.s3_client, options.threads,
                    options.span, window,
                ).values()
            else:
                sweep = sweep_duckdb if options.engine == "duckdb" else sweep_python
                kwargs: dict[str, Any] = {"s3_client": options.s3_client, "window": window}
                if options.engine == "duckdb":
                    kwargs["threads"] = options.threads
                    kwargs["span"] = options.span
                else:
                    stats.flow.engine = "python"
                flow_groups = sweep(options.flow, effective, stats.flow, rejects.sink("flow"), **kwargs).values()
    finally:
        rejects.close()
    entities = _Entities(imap)
    if stats.flow is not None:
        stats.flow.matched = entities.add_flows(flow_groups, effective)
    entities.add_dns(dns_groups)
    entities.add_findings(found)
    result = entities.sorted()
    stats.entities = len(result)
    stats.mapped_interfaces = imap.interfaces
    stats.mapped_addresses = imap.addresses
    if options.rejects and not rejects.count:
        Path(options.rejects).parent.mkdir(parents=True, exist_ok=True)
        Path(options.rejects).touch()  # exists, empty, when nothing was rejected
    stats.rejects_file = options.rejects
    stats.seconds = round(time.monotonic() - started, 3)
    counts: dict[str, Any] = dict(iocs.counts())
    if effective is not iocs:
        counts["resolved_addresses"] = len(effective) - len(iocs)
    return HuntResult(result, stats, counts)


def _sweep_spark(
    options: HuntOptions, iocs: IocSet, stats: SourceStats, on_reject: Callable[[Reject], None] | None
) -> dict[tuple[Any, ...], FlowGroup]:
    from minerwatch.engine.spark import spark_session
    from minerwatch.hunt.spark_flows import sweep_spark

    if options.spark is not None:
        return sweep_spark(options.spark, options.flow, iocs, stats, on_reject, options.window)
    with spark_session(options.spark_options) as spark:
        return sweep_spark(spark, options.flow, iocs, stats, on_reject, options.window)


def _source_stats(paths: Sequence[str], window: TimeWindow | None) -> SourceStats:
    """A source's statistics; with a window, its count of records outside it starts at 0."""
    stats = SourceStats(paths=[str(p) for p in paths])
    if window is not None:
        stats.outside(0)
    return stats


def _read_cloudtrail(
    paths: Sequence[str],
    stats: SourceStats,
    imap: InstanceMap,
    on_reject: Callable[[Reject], None] | None,
    options: HuntOptions,
) -> None:
    read = ReadStats()

    def reject(rej: Reject) -> None:
        stats.reject(rej.reason)
        if on_reject is not None:
            on_reject(rej)

    def wanted(line: bytes) -> bool:
        return b"RunInstances" in line or b"AttachNetworkInterface" in line

    window = options.window if options.window else None
    records = read_cloudtrail(list(paths), on_reject=reject, stats=read, prefilter=wanted, s3_client=options.s3_client)
    for record in records:
        if record.flat["eventname"] in ("RunInstances", "AttachNetworkInterface"):
            if window is not None and not window.holds(record.flat[CLOUDTRAIL.time_column]):
                stats.outside(1)  # of the events read: the prefilter leaves the others unparsed
                continue
            stats.matched += 1
            imap.add_cloudtrail(record.doc, record.flat.get("accountid"))
    stats.files += read.files
    stats.records = read.records_read


class _Entities:
    """Hits of every source, merged per (account, entity)."""

    def __init__(self, imap: InstanceMap) -> None:
        self.imap = imap
        self.by_key: dict[tuple[str | None, str], Entity] = {}

    def get(
        self, account: str | None, name: str, kind: EntityType, instance: str | None = None, how: str | None = None
    ) -> Entity:
        e = self.by_key.get((account, name))
        if e is None:
            e = self.by_key[(account, name)] = Entity(account, name, kind, instance, how)
        elif e.mapped_by is None and how is not None:
            e.mapped_by = how
        return e

    def add_flows(self, groups: Iterable[FlowGroup], iocs: IocSet) -> int:
        records = 0
        for g in groups:
            hit = classify(g, iocs)
            if hit is None:
                continue
            records += g.flows
            mapped = None if g.instance_id else self.imap.resolve(g.account_id, g.interface_id, hit.local)
            if g.instance_id:
                e = self.get(g.account_id, g.instance_id, "instance", g.instance_id, "flow")
            elif mapped is not None:
                e = self.get(g.account_id, mapped[0], "instance", mapped[0], mapped[1])
            elif g.interface_id:
                e = self.get(g.account_id, g.interface_id, "eni")
            elif hit.local:
                e = self.get(g.account_id, hit.local, "address")
            else:
                e = self.get(g.account_id, g.account_id or "-", "account")
            first, last = from_epoch(g.first), from_epoch(g.last)
            e.interfaces.add(g.interface_id)
            e.addresses.add(hit.local)
            e.regions.add(g.region)
            e.flows += g.flows
            e.bytes += g.bytes
            e.packets += g.packets
            e.accepted += g.accepted
            e.rejected += g.rejected
            e.peers.add(hit.remote)
            e.seen(first, last)
            for ioc in (hit.ip, hit.port):
                if ioc is None:
                    continue
                if ioc.kind == "port":
                    e.ports.add(int(ioc.indicator))
                m = e.match("flow", ioc.kind, ioc.indicator, ioc.source)
                m.records += g.flows
                m.bytes += g.bytes
                m.packets += g.packets
                m.seen(first, last)
                m.values.add(hit.remote)
        return records

    def add_dns(self, groups: Iterable[DnsGroup]) -> None:
        for g in groups:
            mapped = None if g.instance_id else self.imap.for_address(g.account, g.srcaddr)
            if g.instance_id:
                e = self.get(g.account, g.instance_id, "instance", g.instance_id, "dns")
            elif mapped is not None:
                e = self.get(g.account, mapped[0], "instance", mapped[0], mapped[1])
            elif g.srcaddr:
                e = self.get(g.account, g.srcaddr, "address")
            else:
                e = self.get(g.account, g.account or "-", "account")
            e.addresses.add(g.srcaddr)
            e.regions.add(g.region)
            e.queries += g.queries
            e.query_names.update(g.names)
            e.seen(g.first, g.last)
            m = e.match("dns", "domain", g.indicator, g.source)
            m.records += g.queries
            m.seen(g.first, g.last)
            m.values.update(g.names)

    def add_findings(self, found: Iterable[FindingHit]) -> None:
        for f in found:
            if f.instance_id:
                e = self.get(f.account, f.instance_id, "instance", f.instance_id, "guardduty")
            elif f.resource_id:
                e = self.get(f.account, f.resource_id, "resource")
            else:
                e = self.get(f.account, f.account, "account")
            e.regions.add(f.region)
            e.findings += 1
            e.finding_ids.add(f.finding_id)
            e.finding_types.add(f.finding_type)
            e.seen(f.first, f.last)
            for ioc in f.hits.values():
                m = e.match("finding", ioc.kind, ioc.indicator, ioc.source)
                m.records += 1
                m.seen(f.first, f.last)
                m.values.add(f.finding_id)

    def sorted(self) -> list[Entity]:
        return sorted(
            self.by_key.values(), key=lambda e: (e.account or "", _TYPE_ORDER[e.entity_type], e.entity)
        )
