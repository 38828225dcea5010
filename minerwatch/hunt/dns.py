"""The Resolver query sweep: every query name against the IOC domains, on label boundaries.

``xmr.nanopool.org`` matches the indicator ``nanopool.org``; ``notnanopool.org`` and
``nanopool.org.evil.example`` do not (:meth:`~minerwatch.enrich.iocs.IocSet.match_domain`). Matching queries
are grouped per (account, VPC, region, instance, source address, indicator). Every query, matching or not,
also tells the instance map which instance used its source address.

The answers of matching queries (``A``/``AAAA`` records) are kept: ``minerwatch hunt --resolved-ips`` adds
those addresses to the flow sweep's indicators, with source ``dns:<indicator>``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from minerwatch.catalog.tables import ROUTE53RESOLVER
from minerwatch.enrich.iocs import IocSet
from minerwatch.hunt.mapping import InstanceMap
from minerwatch.hunt.model import SourceStats
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.sources.route53 import read_route53
from minerwatch.timewindow import TimeWindow


@dataclass
class DnsGroup:
    account: str | None
    vpc_id: str | None
    region: str | None
    instance_id: str | None
    srcaddr: str | None
    indicator: str
    source: str
    queries: int = 0
    first: datetime | None = None
    last: datetime | None = None
    names: set[str] = field(default_factory=set)
    answers: dict[str, None] = field(default_factory=dict)
    """Addresses the matching queries resolved to, in first-seen order."""


def sweep_dns(
    paths: Sequence[str],
    iocs: IocSet,
    stats: SourceStats,
    imap: InstanceMap,
    on_reject: Callable[[Reject], None] | None = None,
    s3_client: Any | None = None,
    window: TimeWindow | None = None,
) -> list[DnsGroup]:
    """Matching queries grouped; with ``window``, only queries whose ``query_timestamp`` lies in it count (the
    others are counted in ``stats.outside_window`` and tie no address to an instance)."""
    read = ReadStats()
    window = window if window else None
    groups: dict[tuple[Any, ...], DnsGroup] = {}

    def reject(rej: Reject) -> None:
        stats.reject(rej.reason)
        if on_reject is not None:
            on_reject(rej)

    for record in read_route53(list(paths), on_reject=reject, stats=read, s3_client=s3_client):
        f = record.flat
        if window is not None and not window.holds(f[ROUTE53RESOLVER.time_column]):
            stats.outside(1)
            continue
        stats.covers(f["eventdate"], f["eventdate"])
        account, srcaddr, instance = f.get("accountid"), f.get("srcaddr"), f.get("instance_id")
        imap.add_query(account, srcaddr, instance)
        hit = iocs.match_domain(f["query_name"])
        if hit is None:
            continue
        stats.matched += 1
        key = (account, f.get("vpc_id"), f.get("region"), instance, srcaddr, hit.indicator)
        g = groups.get(key)
        if g is None:
            g = groups[key] = DnsGroup(*key, source=hit.source)
        g.queries += 1
        t = f["eventdate"]
        g.first = t if g.first is None or t < g.first else g.first
        g.last = t if g.last is None or t > g.last else g.last
        g.names.add(f["query_name"])
        for address in _answers(record.doc):
            g.answers[address] = None
    stats.files += read.files
    stats.records = (stats.records or 0) + read.records_read
    return list(groups.values())


def _answers(doc: dict[str, Any]) -> list[str]:
    """The addresses in a query log record's ``answers`` (``A`` and ``AAAA`` only; CNAMEs are names)."""
    answers = doc.get("answers")
    if isinstance(answers, dict):
        answers = [answers]
    out: list[str] = []
    if not isinstance(answers, list):
        return out
    for a in answers:
        if not isinstance(a, dict) or a.get("Type") not in ("A", "AAAA"):
            continue
        rdata = a.get("Rdata")
        if isinstance(rdata, str):
            try:
                out.append(str(ipaddress.ip_address(rdata.strip())))
            except ValueError:
                continue
    return out


def resolved_iocs(groups: Sequence[DnsGroup]) -> IocSet:
    """The addresses matching queries resolved to, as indicators with source ``dns:<indicator>``."""
    from minerwatch.enrich.iocs import IocEntry

    entries: dict[tuple[str, str], None] = {}
    for g in groups:
        for address in g.answers:
            entries[(address, f"dns:{g.indicator}")] = None
    return IocSet(tuple(IocEntry("ip", address, source) for address, source in entries))
