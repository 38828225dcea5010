"""The flow-log sweep: every VPC flow record against the IOC addresses, networks and ports.

What a hit is (the same for both engines): a flow record whose destination or source address is an IOC
address or lies in an IOC network, or whose destination or source port is an IOC port. The side that matched
an address is the *remote* side (the destination wins when both do); with only a port match, the side whose
port matched is remote (again the destination first). The other side is the *local* address, the ENI's own.
``NODATA``/``SKIPDATA`` records have no addresses or ports and never match.

Two engines give the same hits:

``duckdb`` (bulk)
    one SQL over every local text or Parquet file through
    :func:`minerwatch.sources.vpcflow.vpcflow_duckdb_relation`. IOC addresses and ports live in temporary
    tables (inserted as parameters, never spliced into SQL); each network becomes a text range on the address
    (``'192.0.2.' <= a < '192.0.2/'`` holds exactly for the addresses under ``192.0.2.0/24``), a
    superset of the network for prefixes that do not end on an octet. Hits are grouped per ``(account,
    interface, instance, region, srcaddr, dstaddr, matched destination port, matched source port)`` and each
    group is checked again in Python with :class:`~minerwatch.enrich.iocs.IocSet`, which drops the
    superset's extra addresses and says which indicator matched. Files DuckDB cannot take — CloudWatch Logs
    export lines, a header repeated inside a file, any line it rejects, a scan error naming the file (a
    truncated gzip), stdin, S3 — are read by the per-record reader instead, whole, so a file is never
    half-counted. Records read come from DuckDB's query profile (``None`` if it does not say).
``python``
    the per-record reader (:func:`minerwatch.sources.vpcflow.read_vpcflow`) and the same grouping in Python:
    the reference the bulk engine is tested against, and the path for everything it cannot read. The reader
    reads only the lines :func:`candidate_finder` finds in runs of plain records (the same groups, records,
    rejects and time span as reading every line; ``prefilter=False`` reads every line).
"""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from minerwatch.enrich.iocs import IocHit, IocSet
from minerwatch.errors import InputError
from minerwatch.hunt.model import SourceStats
from minerwatch.sources.inputs import folder_files, forked_map
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.sources.vpcflow import read_vpcflow, vpcflow_duckdb_relation
from minerwatch.timewindow import TimeWindow

_VIEW = "hunt_flows"
_IPS = "hunt_ioc_ips"
_PORTS = "hunt_ioc_ports"
_REJECTS = "hunt_flow_rejects"
_V4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_KEY_COLUMNS = ("account_id", "interface_id", "instance_id", "region", "srcaddr", "dstaddr")
_USED = (*_KEY_COLUMNS, "srcport", "dstport", "bytes", "packets", "start", "end", "action")
_BIGINT = frozenset({"srcport", "dstport", "bytes", "packets", "start", "end"})
MAX_FINE_RANGES = 8
"""A network whose prefix does not end on an octet becomes at most this many exact text ranges; beyond that,
one coarser range (a superset, narrowed in Python)."""


@dataclass(slots=True)
class FlowGroup:
    """Flow records sharing the grouping key, with their totals."""

    account_id: str | None
    interface_id: str | None
    instance_id: str | None
    region: str | None
    srcaddr: str | None
    dstaddr: str | None
    port_d: int | None
    """The destination port when it is an IOC port, else None."""
    port_s: int | None
    flows: int = 0
    bytes: int = 0
    packets: int = 0
    first: int | None = None
    """Earliest ``start`` (epoch seconds)."""
    last: int | None = None
    """Latest ``end``."""
    accepted: int = 0
    rejected: int = 0

    @property
    def key(self) -> tuple[Any, ...]:
        return (
            self.account_id,
            self.interface_id,
            self.instance_id,
            self.region,
            self.srcaddr,
            self.dstaddr,
            self.port_d,
            self.port_s,
        )

    def merge(self, other: FlowGroup) -> None:
        self.flows += other.flows
        self.bytes += other.bytes
        self.packets += other.packets
        self.accepted += other.accepted
        self.rejected += other.rejected
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last


@dataclass(frozen=True, slots=True)
class FlowHit:
    """How a group matched: the local and remote address, the address and port indicators."""

    local: str | None
    remote: str | None
    ip: IocHit | None
    port: IocHit | None


def classify(group: FlowGroup, iocs: IocSet) -> FlowHit | None:
    """The exact verdict on one group (see the module docstring), or None when nothing matches."""
    dst_ip = iocs.match_ip(group.dstaddr) if group.dstaddr else None
    src_ip = None if dst_ip is not None else (iocs.match_ip(group.srcaddr) if group.srcaddr else None)
    dst_port = iocs.match_port(group.port_d) if group.port_d is not None else None
    src_port = iocs.match_port(group.port_s) if group.port_s is not None else None
    if dst_ip is None and src_ip is None and dst_port is None and src_port is None:
        return None
    remote_is_dst = dst_ip is not None or (src_ip is None and dst_port is not None)
    local, remote = (group.srcaddr, group.dstaddr) if remote_is_dst else (group.dstaddr, group.srcaddr)
    return FlowHit(local, remote, dst_ip or src_ip, dst_port or src_port)


# --------------------------------------------------------------------------------------------- python engine


def sweep_python(
    paths: Sequence[str],
    iocs: IocSet,
    stats: SourceStats,
    on_reject: Callable[[Reject], None] | None = None,
    s3_client: Any | None = None,
    prefilter: bool = True,
    span: bool = True,
    window: TimeWindow | None = None,
) -> dict[tuple[Any, ...], FlowGroup]:
    """Hit groups from the per-record reader. Records, files and rejects are added to ``stats``.

    ``prefilter``: read only the lines :func:`candidate_finder` finds (the same groups, records and rejects).
    ``span``: also find the time span of every record read (``stats.first/last``); without it the lines the
    prefilter skips are only counted, never split. ``window``: only records whose start (else end) lies in it
    count; the others are counted in ``stats.outside_window``."""
    read = ReadStats()
    groups: dict[tuple[Any, ...], FlowGroup] = {}
    match_ip = iocs.match_ip
    ports = iocs.ports
    lo: int | None = None  # epoch seconds: the span of every record read, matched or not
    hi: int | None = None

    def reject(rej: Reject) -> None:
        stats.reject(rej.reason)
        if on_reject is not None:
            on_reject(rej)

    def widen(first: int | None, last: int | None) -> None:
        nonlocal lo, hi
        if first is not None and (lo is None or first < lo):
            lo = first
        if last is not None and (hi is None or last > hi):
            hi = last

    finder = candidate_finder(iocs) if prefilter else None
    records = read_vpcflow(
        list(paths),
        on_reject=reject,
        stats=read,
        candidates=finder,
        on_span=widen if span else None,
        s3_client=s3_client,
        window=window,
    )
    for record in records:
        f = record.flat
        start, end = f.get("start"), f.get("end")
        if start is not None and (lo is None or start < lo):
            lo = start
        if end is not None and (hi is None or end > hi):
            hi = end
        src, dst = f.get("srcaddr"), f.get("dstaddr")
        dport, sport = f.get("dstport"), f.get("srcport")
        port_d = dport if dport in ports else None
        port_s = sport if sport in ports else None
        # Ports first, as the cheaper test: most records match nothing.
        if port_d is None and port_s is None and not ((dst and match_ip(dst)) or (src and match_ip(src))):
            continue
        g = FlowGroup(
            f.get("account_id"),
            f.get("interface_id"),
            f.get("instance_id"),
            f.get("region"),
            src,
            dst,
            port_d,
            port_s,
            flows=1,
            bytes=f.get("bytes") or 0,
            packets=f.get("packets") or 0,
            first=_coalesce(f.get("start"), f.get("end")),
            last=_coalesce(f.get("end"), f.get("start")),
            accepted=1 if f.get("action") == "ACCEPT" else 0,
            rejected=1 if f.get("action") == "REJECT" else 0,
        )
        have = groups.get(g.key)
        if have is None:
            groups[g.key] = g
        else:
            have.merge(g)
    stats.files += read.files
    if stats.records is not None:  # None: the bulk engine could not count its part
        stats.records += read.records_read
    if span:
        stats.covers(_epoch(lo), _epoch(hi))
    if window:
        stats.outside(read.outside_window)
    return groups


def candidate_finder(iocs: IocSet) -> Callable[[bytes], list[int]] | None:
    """Where a flow log text may hold a record that matches ``iocs``: offsets of the IOC ports, addresses and
    network text prefixes (the ranges of :func:`network_ranges`) found at the start of a field, in one
    Aho-Corasick pass. None when every record may match (a network holding every address).

    Only a superset: the exact check still decides, so a port number in the bytes column is let through and
    then dropped. A hit counts at a field start or after zeros (``int`` reads ``03333`` as 3333). Addresses
    are found in the text flow logs write (canonical, as the bulk engine compares them)."""
    import ahocorasick_rs

    networks = network_ranges(iocs)
    if networks.any_ipv4 or networks.any_ipv6:
        return None
    literals = [a.encode() for a in exact_addresses(iocs)]
    literals += [str(p).encode() for p in sorted(iocs.ports)]
    literals += [lo.encode() for lo, _ in networks.ranges]
    if any(lo.startswith("::ffff:") for lo, _ in networks.ranges):
        # An IPv4 network's addresses may also be written IPv4-mapped in hex (::ffff:c633:6401), which the
        # exact check reads as IPv4: no text prefix covers that spelling, so every such field is a candidate.
        literals.append(b"::ffff:")
    if not literals:
        return lambda data: []
    # Leftmost-longest: a literal never holds a space or newline, so a match never runs over a field's start
    # and every field that starts with a literal gives a match there.
    matcher = ahocorasick_rs.BytesAhoCorasick(
        list(dict.fromkeys(literals)), matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
    )
    find = matcher.find_matches_as_indexes

    def hits(data: bytes) -> list[int]:
        out: list[int] = []
        for _, at, _ in find(data):
            before = at - 1
            while before >= 0 and data[before] == 48:  # 0
                before -= 1
            if before < 0 or data[before] in b" \n":
                out.append(at)
        return out

    return hits


def _epoch(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _coalesce(a: int | None, b: int | None) -> int | None:
    return a if a is not None else b


# --------------------------------------------------------------------------------------------- duckdb engine


@dataclass(frozen=True)
class NetworkRanges:
    """The IOC networks as conditions on the address text: ``[lo, hi)`` ranges, and whether every IPv4 address
    (a network holding all of them, such as ``0.0.0.0/0`` or ``::/0`` through IPv4-mapped addresses) or every
    IPv6 address (a network with no non-zero leading hextet) is a candidate."""

    ranges: tuple[tuple[str, str], ...]
    any_ipv4: bool = False
    any_ipv6: bool = False


def network_ranges(iocs: IocSet) -> NetworkRanges:
    """Text ranges covering every IOC network: exact for IPv4 prefixes that end on an octet, a superset
    otherwise. IPv6 networks use their hextets before the first zero one, which canonical text spells out
    (flow logs write canonical text). IPv4 networks also cover their IPv4-mapped IPv6 spelling."""
    out: dict[tuple[str, str], None] = {}
    any_ipv4 = any_ipv6 = False
    for base, plen in iocs.ips_and_cidrs_for_sql().cidrs:
        net = ipaddress.ip_network(f"{base}/{plen}", strict=False)
        if isinstance(net, ipaddress.IPv6Network):
            if net.prefixlen >= 96 and net.network_address.ipv4_mapped is not None:
                # Inside ::ffff:0:0/96: an IPv4 network written the IPv6 way, as IocSet reads it.
                net = ipaddress.ip_network(f"{net.network_address.ipv4_mapped}/{net.prefixlen - 96}", strict=False)
            elif _V4_MAPPED.subnet_of(net):
                any_ipv4 = True
        if isinstance(net, ipaddress.IPv4Network) and net.prefixlen == 0:
            any_ipv4 = True
            continue
        if isinstance(net, ipaddress.IPv4Network):
            prefixes = _v4_prefixes(net)
            prefixes += ["::ffff:" + p for p in prefixes]
        else:
            lead = _v6_lead(net)
            if lead is None:
                any_ipv6 = True
                continue
            prefixes = [lead]
        for prefix in prefixes:
            out[(prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1))] = None
    return NetworkRanges(tuple(out), any_ipv4, any_ipv6)


def _v4_prefixes(net: ipaddress.IPv4Network) -> list[str]:
    octets = str(net.network_address).split(".")
    n = net.prefixlen
    if n > 24:
        # Within one /24: its three octets, narrowed in Python (text cannot end a prefix inside an octet).
        return [".".join(octets[:3]) + "."]
    fine = -(-n // 8)  # octets the prefix touches
    count = 1 << (8 * fine - n)
    if count > MAX_FINE_RANGES and n >= 8:
        return [".".join(octets[: n // 8]) + "."]
    # Every value the partial octet takes under the network, spelled out.
    head = octets[: fine - 1]
    first = int(octets[fine - 1])
    return [".".join([*head, str(first + i)]) + "." for i in range(count)]


def _v6_lead(net: ipaddress.IPv6Network) -> str | None:
    lead: list[str] = []
    for h in net.exploded.split(":")[: net.prefixlen // 16]:
        value = int(h, 16)
        if value == 0:
            break
        lead.append(format(value, "x"))
    return ":".join(lead) + ":" if lead else None


def exact_addresses(iocs: IocSet) -> list[str]:
    """The IOC addresses in every text a flow log may spell them (IPv4 also as IPv4-mapped IPv6)."""
    exact: dict[str, None] = {}
    for ip in iocs.ips_and_cidrs_for_sql().ips:
        addr = ipaddress.ip_address(ip)
        v4 = addr if isinstance(addr, ipaddress.IPv4Address) else addr.ipv4_mapped
        if v4 is None:
            exact[str(addr)] = None
        else:
            # IocSet matches an IPv4 address in any of its spellings.
            mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
            exact.update(dict.fromkeys((str(v4), f"::ffff:{v4}", str(mapped))))
    return list(exact)


def _load_iocs(con: Any, iocs: IocSet) -> None:
    """The exact addresses and the ports, as temporary tables."""
    exact = exact_addresses(iocs)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_IPS} (ip VARCHAR)")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_PORTS} (port BIGINT)")
    if exact:
        con.execute(f"INSERT INTO {_IPS} SELECT unnest($values)", {"values": exact})
    if iocs.ports:
        con.execute(f"INSERT INTO {_PORTS} SELECT unnest($values)", {"values": sorted(iocs.ports)})


def _column(columns: set[str], name: str) -> Any:
    """A column of the view, or a typed NULL when its files do not have it."""
    from sqlglot import exp

    if name in columns:
        return exp.column(name, quoted=True)
    return exp.cast(exp.null(), "BIGINT" if name in _BIGINT else "VARCHAR")


def window_sql(columns: set[str], window: TimeWindow | None, params: dict[str, Any]) -> Any:
    """The time window as a sqlglot condition on the record's start, else end (the catalogue's ``eventdate``), in
    whole seconds as the per-record reader compares them; None without a window. Bounds go into ``params``."""
    from sqlglot import exp

    if not window:
        return None
    seconds = exp.func("coalesce", _column(columns, "start"), _column(columns, "end"))
    lo, hi = window.seconds()
    parts: list[exp.Expression] = []
    if lo is not None:
        params["since"] = lo
        parts.append(exp.GTE(this=seconds, expression=exp.Placeholder(this="since")))
    if hi is not None:
        params["until"] = hi
        parts.append(exp.LT(this=seconds.copy(), expression=exp.Placeholder(this="until")))
    return exp.and_(*parts)


def sweep_sql(
    columns: set[str], networks: NetworkRanges, window: TimeWindow | None = None
) -> tuple[str, dict[str, Any]]:
    """The sweep over the view of the flow files: SQL text (built as sqlglot expressions) and its parameters
    (the network ranges, the window's bounds)."""
    from sqlglot import exp

    def col(name: str) -> exp.Expression:
        return _column(columns, name)

    def in_table(value: exp.Expression, table: str, column: str) -> exp.Expression:
        return exp.In(this=value, query=exp.select(column).from_(table).subquery())

    params: dict[str, Any] = {}
    conditions: list[exp.Expression] = [
        in_table(col("dstport"), _PORTS, "port"),
        in_table(col("srcport"), _PORTS, "port"),
        in_table(col("dstaddr"), _IPS, "ip"),
        in_table(col("srcaddr"), _IPS, "ip"),
    ]
    for i, (lo, hi) in enumerate(networks.ranges):
        params[f"lo{i}"], params[f"hi{i}"] = lo, hi
        for side in ("dstaddr", "srcaddr"):
            conditions.append(
                exp.and_(
                    exp.GTE(this=col(side), expression=exp.Placeholder(this=f"lo{i}")),
                    exp.LT(this=col(side), expression=exp.Placeholder(this=f"hi{i}")),
                )
            )
    for flag, char in ((networks.any_ipv4, "."), (networks.any_ipv6, ":")):
        if flag:
            for side in ("dstaddr", "srcaddr"):
                conditions.append(exp.func("contains", col(side), exp.Literal.string(char)))

    def port_if_ioc(name: str) -> exp.Expression:
        return exp.Case().when(in_table(col(name), _PORTS, "port"), col(name))

    def count_action(action: str) -> exp.Expression:
        test = exp.func("count_if", exp.EQ(this=col("action"), expression=exp.Literal.string(action)))
        return exp.func("coalesce", test, exp.Literal.number(0))

    keys = [exp.alias_(col(c), c, quoted=True) for c in _KEY_COLUMNS]
    keys += [exp.alias_(port_if_ioc("dstport"), "port_d", quoted=True)]
    keys += [exp.alias_(port_if_ioc("srcport"), "port_s", quoted=True)]
    aggregates = [
        exp.alias_(exp.Count(this=exp.Star()), "flows", quoted=True),
        exp.alias_(exp.func("coalesce", exp.Sum(this=col("bytes")), exp.Literal.number(0)), "bytes", quoted=True),
        exp.alias_(exp.func("coalesce", exp.Sum(this=col("packets")), exp.Literal.number(0)), "packets", quoted=True),
        exp.alias_(exp.Min(this=exp.func("coalesce", col("start"), col("end"))), "first", quoted=True),
        exp.alias_(exp.Max(this=exp.func("coalesce", col("end"), col("start"))), "last", quoted=True),
        exp.alias_(count_action("ACCEPT"), "accepted", quoted=True),
        exp.alias_(count_action("REJECT"), "rejected", quoted=True),
    ]
    where = exp.or_(*conditions)
    in_window = window_sql(columns, window, params)
    if in_window is not None:
        where = exp.and_(in_window, exp.paren(where))
    query = (
        exp.select(*keys, *aggregates)
        .from_(exp.to_table(_VIEW))
        .where(where)
        .group_by(*[exp.Literal.number(i + 1) for i in range(len(keys))])
    )
    return query.sql(dialect="duckdb"), params


def tally_sql(columns: set[str], window: TimeWindow | None) -> tuple[str, dict[str, Any]]:
    """Every row of the view: (rows, rows outside the window, earliest start and latest end inside it)."""
    from sqlglot import exp

    params: dict[str, Any] = {}
    in_window = window_sql(columns, window, params)

    def inside(agg: exp.Expression) -> exp.Expression:
        return agg if in_window is None else exp.Filter(this=agg, expression=exp.Where(this=in_window.copy()))

    outside = (
        exp.Literal.number(0) if in_window is None
        else exp.Filter(this=exp.Count(this=exp.Star()), expression=exp.Where(
            this=exp.not_(exp.func("coalesce", in_window.copy(), exp.false()))
        ))
    )
    query = exp.select(
        exp.Count(this=exp.Star()),
        outside,
        inside(exp.Min(this=_column(columns, "start"))),
        inside(exp.Max(this=_column(columns, "end"))),
    ).from_(exp.to_table(_VIEW))
    return query.sql(dialect="duckdb"), params


def _local_files(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """(local files in order, other inputs: stdin and S3). Folders are walked as the readers walk them."""
    local: list[str] = []
    other: list[str] = []
    for path in paths:
        p = os.fspath(path)
        if p == "-" or p.startswith("s3://"):
            other.append(p)
        elif os.path.isdir(p):
            local.extend(folder_files(p))
        elif os.path.exists(p):
            local.append(p)
        else:
            raise InputError(f"cannot open {p}: no such file or folder", file=p)
    return local, other


def _rows_scanned(con: Any) -> int | None:
    """Rows the scans read, from DuckDB's profile of the last query (None when it does not say)."""
    try:
        info = json.loads(con.get_profiling_information(format="json"))
    except Exception:  # noqa: BLE001 - profiling output is best effort across DuckDB versions
        return None
    total = 0
    found = False
    stack: list[Any] = list(info.get("operator") or info.get("children") or [])
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        extra = node.get("extra_info")
        function = str(extra.get("Function", "")) if isinstance(extra, dict) else ""
        name = str(node.get("name") or node.get("operator_name") or "")
        # Only the file scans: the IOC tables are scanned too.
        if any(x.startswith(("READ_CSV", "READ_PARQUET")) for x in (name, function)):
            rows = node.get("rows_scanned")
            if isinstance(rows, int):
                total += rows
                found = True
        stack.extend(node.get("children") or [])
    return total if found else None


def _rejected_files(con: Any) -> list[str]:
    import duckdb

    try:
        rows = con.execute(
            f"SELECT DISTINCT s.file_path FROM {_REJECTS} r JOIN {_REJECTS}_scan s "
            "ON r.scan_id = s.scan_id AND r.file_id = s.file_id"
        ).fetchall()
    except duckdb.CatalogException:  # no rejects table: nothing was rejected
        return []
    return sorted({str(r[0]) for r in rows})


def _duckdb_groups(con: Any, files: list[str], networks: NetworkRanges, window: TimeWindow | None) -> tuple[
    list[FlowGroup], list[str], int | None, list[str]
]:
    """One bulk pass: (groups, files DuckDB read, rows scanned, files to hand to the per-record reader)."""
    import duckdb

    fallback: list[str] = []
    remaining = list(files)
    while remaining:
        try:
            relation = vpcflow_duckdb_relation(con, remaining, rejects_table=_REJECTS)
        except InputError as exc:
            # A file the bulk path cannot take (JSON lines, an unknown layout, unreadable): the per-record
            # reader reads it, or rejects it with a reason.
            if exc.file is None or exc.file not in remaining:
                raise
            remaining.remove(exc.file)
            fallback.append(exc.file)
            continue
        con.execute(f"DROP TABLE IF EXISTS {_REJECTS}")
        con.execute(f"DROP TABLE IF EXISTS {_REJECTS}_scan")
        con.sql(relation).create_view(_VIEW, replace=True)
        columns = {str(d[0]) for d in con.execute(f"SELECT * FROM {_VIEW} LIMIT 0").description}
        sql, params = sweep_sql(columns, networks, window)
        con.execute("PRAGMA enable_profiling='no_output'")
        try:
            rows = con.execute(sql, params).fetchall() if params else con.execute(sql).fetchall()
            scanned = _rows_scanned(con)
        except duckdb.Error as exc:
            # A file that breaks the scan (a truncated gzip): the per-record reader keeps what precedes the
            # break and rejects the rest with a reason. An error naming no file sends every file there.
            named = [f for f in remaining if f in str(exc)]
            if not named:
                return [], [], 0, fallback + remaining
            culprit = max(named, key=len)
            remaining.remove(culprit)
            fallback.append(culprit)
            continue
        finally:
            con.execute("PRAGMA disable_profiling")
        return [FlowGroup(*r) for r in rows], remaining, scanned, fallback
    return [], [], 0, fallback


def sweep_duckdb(
    paths: Sequence[str],
    iocs: IocSet,
    stats: SourceStats,
    on_reject: Callable[[Reject], None] | None = None,
    s3_client: Any | None = None,
    threads: int | None = None,
    span: bool = False,
    window: TimeWindow | None = None,
) -> dict[tuple[Any, ...], FlowGroup]:
    """Hit groups from DuckDB over the local files, plus the per-record reader for what DuckDB cannot read.
    Groups may hold records that only the coarse network ranges let through: :func:`classify` drops them.
    ``span``: also find the time span of every record read (one more pass over the files DuckDB read).
    ``window``: only records whose start (else end) lies in it count; one more pass counts the others (and the
    records read, exactly)."""
    import duckdb

    local, other = _local_files(paths)
    config = {"threads": threads} if threads else {}
    con = duckdb.connect(config=config)
    try:
        _load_iocs(con, iocs)
        networks = network_ranges(iocs)
        groups, read, scanned, fallback = _duckdb_groups(con, local, networks, window)
        bad = _rejected_files(con) if read else []
        if bad:
            # A rejected line (a repeated header, a wrong field count) may mean DuckDB read the rest of its file
            # with the wrong field order: those files go through the per-record reader, the others again here.
            keep = [f for f in read if f not in set(bad)]
            groups, read, scanned, more = _duckdb_groups(con, keep, networks, window) if keep else ([], [], 0, [])
            fallback += bad + more
        outside = 0
        if (span or window) and read:
            columns = {str(d[0]) for d in con.execute(f"SELECT * FROM {_VIEW} LIMIT 0").description}
            sql, params = tally_sql(columns, window)
            rows, outside, lo, hi = con.execute(sql, params).fetchone() or (0, 0, None, None)
            if window:
                scanned = rows  # the profile may not count rows a pushed-down bound let the scan skip
            if span:
                stats.covers(_epoch(lo), _epoch(hi))
    finally:
        con.close()
    stats.files += len(read)
    stats.records = scanned
    if window:
        stats.outside(outside)
    merged: dict[tuple[Any, ...], FlowGroup] = {}
    _merge_into(merged, groups)
    order = {f: i for i, f in enumerate(local)}
    slow = sorted(set(fallback), key=order.__getitem__) + other
    if slow:
        _merge_into(merged, sweep_python(slow, iocs, stats, on_reject, s3_client, window=window).values())
        stats.engine = "duckdb+python" if read else "python"
    else:
        stats.engine = "duckdb"
    return merged


def _merge_into(target: dict[tuple[Any, ...], FlowGroup], groups: Iterable[FlowGroup]) -> None:
    for g in groups:
        have = target.get(g.key)
        if have is None:
            target[g.key] = g
        else:
            have.merge(g)


# --------------------------------------------------------------------------------------------- local engine

_FORKED: tuple[IocSet, bool, bool, TimeWindow | None] | None = None
"""What a forked worker of :func:`sweep_local` inherits: the indicators, whether rejects are kept, ``span``, the
window."""


def sweep_local(
    paths: Sequence[str],
    iocs: IocSet,
    stats: SourceStats,
    on_reject: Callable[[Reject], None] | None = None,
    s3_client: Any | None = None,
    workers: int | None = None,
    span: bool = False,
    window: TimeWindow | None = None,
) -> dict[tuple[Any, ...], FlowGroup]:
    """The default flow sweep: the per-record reader with its prefilter over the text files, one file per task
    on ``workers`` forked processes (default: every core), Parquet files through :func:`sweep_duckdb`, stdin and
    S3 in this process. The groups, records, rejects and span are those of :func:`sweep_python` over the same
    paths: per-file groups are merged in file order, every total is a sum, minimum or maximum, and the text files'
    rejects come in file order (then Parquet's, then those of stdin and S3).

    When a folder holds something the reader judges itself (a non-regular or unreadable entry), every path is
    read in this process, so that those rejects stay as the reader gives them."""
    plan = _plan_local(paths)
    if plan is None:
        stats.engine = "python"
        return sweep_python(paths, iocs, stats, on_reject, s3_client, span=span, window=window)
    text, parquet, other = plan
    merged: dict[tuple[Any, ...], FlowGroup] = {}
    if window:
        stats.outside(0)  # even when no file is left in the window's days
    for groups, part, rejects in _sweep_files(text, iocs, on_reject is not None, span, workers, window):
        _merge_into(merged, groups.values())
        _add_stats(stats, part)
        if on_reject is not None:
            for rej in rejects:
                on_reject(rej)
    if parquet:  # after the workers, so that they are never forked while DuckDB runs threads here
        part = SourceStats()
        _merge_into(
            merged, sweep_duckdb(parquet, iocs, part, on_reject, threads=workers, span=span, window=window).values()
        )
        _add_stats(stats, part)
    if other:
        _merge_into(merged, sweep_python(other, iocs, stats, on_reject, s3_client, span=span, window=window).values())
    stats.engine = "duckdb+python" if parquet and (text or other) else "duckdb" if parquet else "python"
    return merged


def _add_stats(stats: SourceStats, part: SourceStats) -> None:
    """``part``'s files, records (None when a part could not count them), rejects, records outside the window and
    span, added to ``stats``."""
    stats.files += part.files
    if part.outside_window is not None:
        stats.outside(part.outside_window)
    stats.records = None if stats.records is None or part.records is None else stats.records + part.records
    stats.rejected += part.rejected
    for key, n in part.reject_reasons.items():
        stats.reject_reasons[key] = stats.reject_reasons.get(key, 0) + n
    stats.covers(part.first, part.last)


def _plan_local(paths: Sequence[str]) -> tuple[list[str], list[str], list[str]] | None:
    """(text files, Parquet files, stdin and S3 inputs), files in the reader's order; None when a folder holds
    an entry that is not a readable regular file, or cannot be walked."""
    broken: list[OSError] = []
    files: list[str] = []
    other: list[str] = []
    for path in paths:
        p = os.fspath(path)
        if p == "-" or p.startswith("s3://"):
            other.append(p)
        elif os.path.isdir(p):
            files.extend(folder_files(p, onerror=broken.append))  # the reader's own walk
        else:
            files.append(p)
    if broken:
        return None
    text: list[str] = []
    parquet: list[str] = []
    for f in files:
        try:
            if not stat.S_ISREG(os.stat(f).st_mode):
                return None
            with open(f, "rb") as fh:
                magic = fh.read(4)
        except OSError:
            return None
        (parquet if magic == b"PAR1" else text).append(f)
    return text, parquet, other


def _sweep_files(
    files: list[str], iocs: IocSet, keep_rejects: bool, span: bool, workers: int | None, window: TimeWindow | None
) -> Iterator[tuple[dict[tuple[Any, ...], FlowGroup], SourceStats, list[Reject]]]:
    """Each file's (groups, stats, rejects), in file order: in forked workers when there are several files and
    cores, else here."""
    global _FORKED
    workers = min(workers or os.cpu_count() or 1, len(files))
    _FORKED = (iocs, keep_rejects, span, window)
    try:
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            yield from map(_sweep_file, files)
            return
        yield from forked_map(_sweep_file, files, workers, str)
    finally:
        _FORKED = None


def _sweep_file(path: str) -> tuple[dict[tuple[Any, ...], FlowGroup], SourceStats, list[Reject]]:
    assert _FORKED is not None
    iocs, keep_rejects, span, window = _FORKED
    part = SourceStats()
    rejects: list[Reject] = []
    groups = sweep_python([path], iocs, part, rejects.append if keep_rejects else None, span=span, window=window)
    return groups, part, rejects
