"""What a hunt finds: per entity (instance, ENI, address, resource or account), every indicator that matched,
how much and when.

An *entity* is the most specific thing the logs let us name: the EC2 instance when a flow record, a Resolver
query, a finding or a mapping (ENI or private address → instance) names it; else the ENI of a flow record;
else the source address of a query; else the finding's resource; else the account. Entities are keyed by
``(account, entity)``.

Each entity holds one :class:`Match` per ``(evidence, kind, indicator)``: ``evidence`` says which log the
match comes from (``flow``, ``dns``, ``finding``), ``kind`` and ``indicator`` which IOC matched (``ip``,
``cidr``, ``port``, ``domain``), ``source`` where that IOC comes from (``rule:<id>``, ``bundled:...``,
``file:<path>:<line>``, ``dns:<domain>`` for addresses a matched query resolved to).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from minerwatch.alerting.alerts import iso as alert_iso
from minerwatch.timewindow import TimeWindow

Evidence = Literal["flow", "dns", "finding"]
EntityType = Literal["instance", "eni", "address", "resource", "account"]

SAMPLE_LIMIT = 20
"""Most values kept per list (peers, query names, finding ids): a hunt output stays readable."""


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 UTC with a trailing Z, as alerts write times; None stays None."""
    return None if ts is None else alert_iso(ts)


def from_epoch(seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


class Sample:
    """Distinct values: the ``SAMPLE_LIMIT`` smallest are kept, so the same values give the same sample
    whatever order they come in; ``total`` counts the distinct ones (up to a bound), so an output can say
    how many there were."""

    __slots__ = ("_seen", "values")

    _BOUND = 100_000

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._seen: set[Any] = set()

    def add(self, value: Any) -> None:
        if value is None or value in self._seen:
            return
        if len(self._seen) < self._BOUND:
            self._seen.add(value)
        elif value in self.values:
            return
        key = _order(value)
        if len(self.values) < SAMPLE_LIMIT:
            bisect.insort(self.values, value, key=_order)
        elif key < _order(self.values[-1]):
            self.values.pop()
            bisect.insort(self.values, value, key=_order)

    def update(self, values: Any) -> None:
        for v in values:
            self.add(v)

    @property
    def total(self) -> int:
        return len(self._seen)

    def sorted(self) -> list[Any]:
        return list(self.values)


def _order(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int) else (1, str(value))


@dataclass
class Match:
    """One indicator matched by one kind of evidence, for one entity."""

    evidence: Evidence
    kind: str
    indicator: str
    source: str
    records: int = 0
    """Flow records, Resolver queries or findings (distinct ids) that matched."""
    bytes: int = 0
    packets: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    values: Sample = field(default_factory=Sample)
    """What matched: remote addresses (flows), query names (dns), finding ids (findings)."""

    def seen(self, first: datetime | None, last: datetime | None) -> None:
        if first is not None and (self.first_seen is None or first < self.first_seen):
            self.first_seen = first
        if last is not None and (self.last_seen is None or last > self.last_seen):
            self.last_seen = last

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "evidence": self.evidence,
            "kind": self.kind,
            "indicator": int(self.indicator) if self.kind == "port" else self.indicator,
            "source": self.source,
            "records": self.records,
        }
        if self.evidence == "flow":
            out["bytes"] = self.bytes
            out["packets"] = self.packets
        out["first_seen"] = iso(self.first_seen)
        out["last_seen"] = iso(self.last_seen)
        out["values"] = self.values.sorted()
        if self.values.total > len(self.values.values):
            out["values_total"] = self.values.total
        return out


@dataclass
class Entity:
    """Everything a hunt matched for one ``(account, entity)``."""

    account: str | None
    entity: str
    entity_type: EntityType
    instance_id: str | None = None
    mapped_by: str | None = None
    """How an ENI or address was tied to ``instance_id`` (``flow``, ``guardduty``, ``cloudtrail``, ``dns``)."""
    interfaces: Sample = field(default_factory=Sample)
    addresses: Sample = field(default_factory=Sample)
    regions: Sample = field(default_factory=Sample)
    matches: dict[tuple[str, str, str], Match] = field(default_factory=dict)
    flows: int = 0
    bytes: int = 0
    packets: int = 0
    accepted: int = 0
    rejected: int = 0
    queries: int = 0
    findings: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    peers: Sample = field(default_factory=Sample)
    ports: Sample = field(default_factory=Sample)
    query_names: Sample = field(default_factory=Sample)
    finding_ids: Sample = field(default_factory=Sample)
    finding_types: Sample = field(default_factory=Sample)

    @property
    def key(self) -> tuple[str | None, str]:
        return self.account, self.entity

    def match(self, evidence: Evidence, kind: str, indicator: str, source: str) -> Match:
        k = (evidence, kind, indicator)
        m = self.matches.get(k)
        if m is None:
            m = self.matches[k] = Match(evidence, kind, indicator, source)
        return m

    def seen(self, first: datetime | None, last: datetime | None) -> None:
        if first is not None and (self.first_seen is None or first < self.first_seen):
            self.first_seen = first
        if last is not None and (self.last_seen is None or last > self.last_seen):
            self.last_seen = last

    @property
    def kinds(self) -> list[str]:
        return sorted({m.kind for m in self.matches.values()})

    @property
    def evidence(self) -> list[str]:
        order = {"flow": 0, "dns": 1, "finding": 2}
        return sorted({m.evidence for m in self.matches.values()}, key=order.__getitem__)

    @property
    def indicators(self) -> list[str]:
        return sorted({m.indicator for m in self.matches.values()}, key=_indicator_order)

    def sorted_matches(self) -> list[Match]:
        order = {"flow": 0, "dns": 1, "finding": 2}
        return sorted(
            self.matches.values(), key=lambda m: (order[m.evidence], m.kind, _indicator_order(m.indicator))
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "entity": self.entity,
            "entity_type": self.entity_type,
            "instance_id": self.instance_id,
            "mapped_by": self.mapped_by,
            "interfaces": self.interfaces.sorted(),
            "addresses": self.addresses.sorted(),
            "regions": self.regions.sorted(),
            "evidence": self.evidence,
            "kinds": self.kinds,
            "indicators": self.indicators,
            "flows": self.flows,
            "bytes": self.bytes,
            "packets": self.packets,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "queries": self.queries,
            "findings": self.findings,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "peers": self.peers.sorted(),
            "ports": self.ports.sorted(),
            "query_names": self.query_names.sorted(),
            "finding_ids": self.finding_ids.sorted(),
            "finding_types": self.finding_types.sorted(),
            "matches": [m.to_json() for m in self.sorted_matches()],
        }


def _indicator_order(text: str) -> tuple[int, int, str]:
    # Ports numerically, then everything else as text.
    return (0, int(text), "") if text.isdigit() else (1, 0, text)


@dataclass
class SourceStats:
    """What one log source contributed: files and records read, rejects, records that matched."""

    paths: list[str] = field(default_factory=list)
    files: int = 0
    records: int | None = 0
    """Records read; ``None`` when the bulk engine could not count them."""
    rejected: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    matched: int = 0
    engine: str | None = None
    """``duckdb``, ``python`` or ``duckdb+python`` (files DuckDB cannot read go through the per-record reader)."""
    skipped: int = 0
    """GuardDuty: AWS sample findings left out."""
    first: datetime | None = None
    last: datetime | None = None
    """Earliest and latest record time read (flow start and end, DNS query time), when the sweep tracks them;
    with a time window, of the records inside it."""
    outside_window: int | None = None
    """With a time window (``--since``/``--until``): records read whose event time lies outside it, which count
    toward nothing (not rejects); None without a window."""

    def covers(self, first: datetime | None, last: datetime | None) -> None:
        """Widen the time span of the records read to include ``first``..``last``."""
        if first is not None and (self.first is None or first < self.first):
            self.first = first
        if last is not None and (self.last is None or last > self.last):
            self.last = last

    def outside(self, count: int) -> None:
        """Count ``count`` more records outside the time window."""
        self.outside_window = (self.outside_window or 0) + count

    def reject(self, reason: str) -> None:
        self.rejected += 1
        key = reason.split(":")[0]
        self.reject_reasons[key] = self.reject_reasons.get(key, 0) + 1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "paths": self.paths,
            "files": self.files,
            "records": self.records,
            "matched": self.matched,
            "rejected": self.rejected,
        }
        if self.reject_reasons:
            out["reject_reasons"] = dict(sorted(self.reject_reasons.items()))
        if self.engine is not None:
            out["engine"] = self.engine
        if self.skipped:
            out["skipped_samples"] = self.skipped
        if self.outside_window is not None:
            out["outside_window"] = self.outside_window
        if self.first is not None:
            out["first"], out["last"] = iso(self.first), iso(self.last)
        return out


@dataclass
class HuntStats:
    flow: SourceStats | None = None
    dns: SourceStats | None = None
    findings: SourceStats | None = None
    cloudtrail: SourceStats | None = None
    mapped_interfaces: int = 0
    mapped_addresses: int = 0
    entities: int = 0
    seconds: float = 0.0
    rejects_file: str | None = None
    window: TimeWindow | None = None
    """The ``--since``/``--until`` window the hunt counted records in, if any."""

    def sources(self) -> dict[str, SourceStats]:
        pairs = (("flow", self.flow), ("dns", self.dns), ("findings", self.findings), ("cloudtrail", self.cloudtrail))
        return {name: s for name, s in pairs if s is not None}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "sources": {name: s.to_json() for name, s in self.sources().items()},
            "mapped_interfaces": self.mapped_interfaces,
            "mapped_addresses": self.mapped_addresses,
            "entities": self.entities,
            "seconds": self.seconds,
            "rejects_file": self.rejects_file,
        }
        if self.window:
            out["window"] = {"since": iso(self.window.since), "until": iso(self.window.until)}
        return out


@dataclass
class HuntResult:
    entities: list[Entity]
    stats: HuntStats
    iocs: dict[str, Any]
    """The indicator counts in effect (``IocSet.counts()``) plus the derived addresses, if any."""

    def to_json(self) -> dict[str, Any]:
        return {
            "iocs": self.iocs,
            "stats": self.stats.to_json(),
            "entities": [e.to_json() for e in self.entities],
        }
