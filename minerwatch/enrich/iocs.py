"""Indicator-of-compromise sets: mining-pool domains, IP addresses / CIDR networks and stratum ports.

An :class:`IocSet` is an immutable, hashable collection of :class:`IocEntry` values. Every entry remembers where
it came from (its *source*):

``rule:<rule-id>``
    the rule document's "Mining Pool Domains/IPs to Monitor" section (:func:`from_rule`);
``bundled:crypto_mining_domains`` / ``bundled:stratum_ports``
    the mining-pool domain list shipped in ``minerwatch/catalog/data`` and the default stratum ports
    (:func:`bundled`);
``file:<path>:<line>``
    an IOC file given by the user (:func:`load_ioc_file`).

Sets combine with :func:`merge`; :func:`default_for_rule` is the rule's IOCs plus the bundled ones.

Matching is exact and cheap enough for millions of lookups per run:

- domains: label-boundary suffix match by walking the name's label suffixes against a hash set, longest suffix
  first (``xmr.nanopool.org`` matches ``nanopool.org``; ``notnanopool.org`` and ``nanopool.org.evil.com`` do
  not). Case-insensitive, trailing dot ignored, internationalised names compared in their ASCII (punycode)
  form.
- IPs: every address is looked up in its IPv6 form (IPv4 as IPv4-mapped ``::ffff:a.b.c.d``), so ``::ffff:1.2.3.4``
  and ``1.2.3.4`` are the same address for every entry. Exact addresses are one dict probe; networks are one
  dict probe per prefix length present in the set (at most 129), most specific first. No scan over CIDRs.
- ports: one dict probe.

Values to match are attacker-controlled data: the ``match_*`` methods never raise on malformed input, they
return ``None``.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urlsplit

import idna

from minerwatch.errors import ConfigError
from minerwatch.rules.model import Rule

IocKind = Literal["domain", "ip", "cidr", "port"]
KINDS: tuple[IocKind, ...] = ("domain", "ip", "cidr", "port")

STRATUM_PORTS: frozenset[int] = frozenset({3333, 4444, 14444})
"""Stratum ports watched whatever the rule says; the rule's own ports are added to these."""

BUNDLED_DOMAINS_SOURCE = "bundled:crypto_mining_domains"
STRATUM_PORTS_SOURCE = "bundled:stratum_ports"
_BUNDLED_FILE = "crypto_mining_domains.txt"

_V4_MAPPED = 0xFFFF << 32
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_TLD_RE = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")
# IDNA treats these as label separators too (ideographic / fullwidth / halfwidth full stops).
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


@dataclass(frozen=True)
class IocEntry:
    """One indicator. ``value`` is normalised: ASCII lower-case domain without trailing dot, ``ipaddress``
    text for IPs and networks, decimal text for ports."""

    kind: IocKind
    value: str
    source: str
    description: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "value": int(self.value) if self.kind == "port" else self.value,
            "source": self.source,
        }
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class IocHit:
    """A value that matched an indicator.

    ``value`` is the value checked, as given; ``indicator`` the entry that matched (for domains the matching
    label suffix, for IPs the most specific address or network); ``source`` the first source of that indicator
    in merge order, ``sources`` all of them.
    """

    kind: IocKind
    value: str
    indicator: str
    source: str
    sources: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "indicator": self.indicator,
            "source": self.source,
            "sources": list(self.sources),
        }


class SqlIpSets(NamedTuple):
    """IP indicators in a shape a SQL sweep can use: exact addresses (host networks /32 and /128 included) and
    ``(network address, prefix length)`` pairs for the other networks."""

    ips: list[str]
    cidrs: list[tuple[str, int]]


@dataclass(frozen=True)
class _Indicator:
    kind: IocKind
    text: str
    sources: tuple[str, ...]


class _Index:
    """Lookup tables built once per set; never mutated afterwards."""

    __slots__ = ("domains", "exact", "nets", "ports")

    def __init__(self, entries: Iterable[IocEntry]) -> None:
        domains: dict[str, list[str]] = {}
        exact: dict[int, _Builder] = {}
        nets: dict[int, dict[int, _Builder]] = {}
        ports: dict[int, list[str]] = {}
        for e in entries:
            if e.kind == "domain":
                domains.setdefault(e.value, []).append(e.source)
            elif e.kind == "port":
                ports.setdefault(int(e.value), []).append(e.source)
            else:
                net = ipaddress.ip_network(e.value, strict=False)
                base, plen = _as_v6_int(net.network_address), net.prefixlen + (96 if net.version == 4 else 0)
                table = exact if plen == 128 else nets.setdefault(plen, {})
                table.setdefault(base, _Builder(e.kind, e.value)).sources.append(e.source)
        self.domains: dict[str, _Indicator] = {
            d: _Indicator("domain", d, tuple(dict.fromkeys(s))) for d, s in domains.items()
        }
        self.ports: dict[int, _Indicator] = {
            p: _Indicator("port", str(p), tuple(dict.fromkeys(s))) for p, s in ports.items()
        }
        self.exact: dict[int, _Indicator] = {k: b.build() for k, b in exact.items()}
        # Longest prefix first, so the most specific network is the one reported.
        self.nets: tuple[tuple[int, dict[int, _Indicator]], ...] = tuple(
            (_mask(plen), {k: b.build() for k, b in table.items()})
            for plen, table in sorted(nets.items(), reverse=True)
        )


@dataclass
class _Builder:
    kind: IocKind
    text: str
    sources: list[str] = field(default_factory=list)

    def build(self) -> _Indicator:
        return _Indicator(self.kind, self.text, tuple(dict.fromkeys(self.sources)))


def _mask(prefixlen: int) -> int:
    return ((1 << prefixlen) - 1) << (128 - prefixlen)


def _addr_int(text: str) -> int | None:
    """The address as a 128-bit int (IPv4 mapped into ``::ffff:0:0/96``), or ``None``."""
    # inet_pton is ~10x faster than ipaddress and as strict (no leading zeros, no short forms); ipaddress stays
    # as the fallback for what it alone accepts (IPv6 scope ids).
    try:
        return _V4_MAPPED | int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        pass
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except (OSError, ValueError):
        pass
    try:
        return _as_v6_int(ipaddress.ip_address(text))
    except ValueError:
        return None


def _as_v6_int(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    return _V4_MAPPED | int(addr) if addr.version == 4 else int(addr)


@dataclass(frozen=True)
class IocSet:
    """An immutable set of indicators. Build it with :func:`from_rule`, :func:`bundled`, :func:`load_ioc_file`,
    :meth:`of` and :func:`merge`; entries keep their order, exact duplicates are dropped."""

    entries: tuple[IocEntry, ...] = ()
    _index: _Index = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        entries = tuple(dict.fromkeys(self.entries))
        for e in entries:
            if not isinstance(e, IocEntry):
                raise TypeError(f"IocSet entries must be IocEntry, not {type(e).__name__}")
        object.__setattr__(self, "entries", entries)
        object.__setattr__(self, "_index", _Index(entries))

    @classmethod
    def of(
        cls,
        *,
        domains: Iterable[str] = (),
        ips: Iterable[str] = (),
        ports: Iterable[int | str] = (),
        source: str,
    ) -> IocSet:
        """A set from plain values, validated and normalised like an IOC file's; ``ips`` may hold networks.
        Raises :class:`ConfigError` naming the bad value."""
        out: list[IocEntry] = []
        for kind, values in (("domain", domains), ("ip", ips), ("port", ports)):
            for v in values:
                try:
                    k, norm = parse_indicator(str(v), kind)  # type: ignore[arg-type]
                except ValueError as exc:
                    raise ConfigError(f"{source}: {exc}") from None
                out.append(IocEntry(k, norm, source))
        return cls(tuple(out))

    # -- views -------------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[IocEntry]:
        return iter(self.entries)

    def of_kind(self, *kinds: IocKind) -> list[IocEntry]:
        return [e for e in self.entries if e.kind in kinds]

    @property
    def domains(self) -> frozenset[str]:
        return frozenset(self._index.domains)

    @property
    def ports(self) -> frozenset[int]:
        return frozenset(self._index.ports)

    @property
    def stratum_ports(self) -> frozenset[int]:
        """Ports to watch: the bundled defaults (when the set includes :func:`bundled`) plus the rule's and
        files' ports."""
        return self.ports

    def counts(self) -> dict[str, dict[str, int]]:
        """``{"entries": {kind: n}, "distinct": {kind: n}}``; ``ip`` counts addresses and networks together."""
        entries = {"domain": 0, "ip": 0, "port": 0}
        distinct: dict[str, set[str]] = {"domain": set(), "ip": set(), "port": set()}
        for e in self.entries:
            key = "ip" if e.kind == "cidr" else e.kind
            entries[key] += 1
            distinct[key].add(e.value)
        return {"entries": entries, "distinct": {k: len(v) for k, v in distinct.items()}}

    def ips_and_cidrs_for_sql(self) -> SqlIpSets:
        """Exact IPs and ``(network, prefixlen)`` pairs, distinct, in entry order (IPv4 and IPv6 mixed)."""
        ips: dict[str, None] = {}
        cidrs: dict[tuple[str, int], None] = {}
        for e in self.entries:
            if e.kind not in ("ip", "cidr"):
                continue
            net = ipaddress.ip_network(e.value, strict=False)
            if net.prefixlen == net.max_prefixlen:
                ips[str(net.network_address)] = None
            else:
                cidrs[(str(net.network_address), net.prefixlen)] = None
        return SqlIpSets(list(ips), list(cidrs))

    # -- matching ----------------------------------------------------------------------------------------------

    def match_domain(self, name: str) -> IocHit | None:
        """The longest label suffix of ``name`` that is an indicator, or ``None``."""
        if not isinstance(name, str):
            return None
        norm = ascii_name(name)
        if not norm:
            return None
        table = self._index.domains
        hit = table.get(norm)
        i = norm.find(".")
        while hit is None and i >= 0:
            hit = table.get(norm[i + 1 :])
            i = norm.find(".", i + 1)
        return None if hit is None else IocHit("domain", name, hit.text, hit.sources[0], hit.sources)

    def match_ip(self, addr: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> IocHit | None:
        """The exact address, else the most specific network containing ``addr``, or ``None``."""
        if isinstance(addr, str):
            n = _addr_int(addr.strip())
            if n is None:
                return None
        elif isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            n = _as_v6_int(addr)
        else:
            return None
        hit = self._lookup_int(n)
        return None if hit is None else IocHit(hit.kind, str(addr), hit.text, hit.sources[0], hit.sources)

    def _lookup_int(self, n: int) -> _Indicator | None:
        idx = self._index
        hit = idx.exact.get(n)
        if hit is not None:
            return hit
        for mask, table in idx.nets:
            hit = table.get(n & mask)
            if hit is not None:
                return hit
        return None

    def match_port(self, port: int | str) -> IocHit | None:
        """``port`` if it is one of the set's ports, else ``None``."""
        if isinstance(port, bool):
            return None
        if isinstance(port, str):
            text = port.strip()
            if not (text.isascii() and text.isdigit()):
                return None
            number = int(text)
        elif isinstance(port, int):
            number = port
        else:
            return None
        hit = self._index.ports.get(number)
        return None if hit is None else IocHit("port", str(port), hit.text, hit.sources[0], hit.sources)

    def check(self, value: str) -> list[IocHit]:
        """Match one free-form value: an IP, a port number, a domain, ``host:port`` or a URL such as
        ``stratum+tcp://pool.example:3333`` (host and port are checked separately)."""
        text = value.strip()
        host: str | None = text
        port: str | None = None
        if _is_ip(text):
            pass
        elif text.isascii() and text.isdigit():
            host, port = None, text
        elif "://" in text:
            try:
                parts = urlsplit(text)
                host = parts.hostname
                port = None if parts.port is None else str(parts.port)
            except ValueError:  # malformed netloc or port: check nothing rather than guess
                host, port = None, None
        elif text.startswith("[") and "]:" in text:
            host, _, port = text[1:].partition("]:")
        elif text.count(":") == 1:
            left, _, right = text.partition(":")
            if right.isascii() and right.isdigit():
                host, port = left, right
        hits: list[IocHit] = []
        if host:
            hit = self.match_ip(host) if _is_ip(host) else self.match_domain(host)
            if hit is not None:
                hits.append(hit)
        if port:
            hit = self.match_port(port)
            if hit is not None:
                hits.append(hit)
        return hits


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# -- normalisation ---------------------------------------------------------------------------------------------


def ascii_name(name: str) -> str | None:
    """A DNS name in the form indicators are stored in: ASCII, lower case, no trailing dot; internationalised
    labels as punycode (IDNA 2008 with the UTS #46 mapping, as browsers and registries use: ``faß.de`` is
    ``xn--fa-hia.de``, not IDNA 2003's ``fass.de``). ``None`` if a label cannot be encoded."""
    if name.isascii():
        return name.lower().rstrip(".")
    labels: list[str] = []
    for label in name.translate(_DOTS).rstrip(".").split("."):
        if label.isascii():
            labels.append(label.lower())
            continue
        try:
            labels.append(idna.encode(label, uts46=True).decode("ascii").lower())
        except UnicodeError:
            return None
    return ".".join(labels)


def _indicator_domain(text: str) -> str:
    name = text.strip()
    # "*.example.com" in a feed means subdomains; suffix matching already covers them (and the apex).
    if name.startswith("*."):
        name = name[2:]
    norm = ascii_name(name)
    if norm is None:
        raise ValueError(f"{text!r} is not a valid domain name (cannot be encoded as IDNA)")
    labels = norm.split(".")
    if len(norm) > 253 or len(labels) < 2:
        raise ValueError(f"{text!r} is not a valid domain name (needs at least two labels, at most 253 characters)")
    if not all(_LABEL_RE.fullmatch(label) for label in labels[:-1]) or not _TLD_RE.fullmatch(labels[-1]):
        raise ValueError(f"{text!r} is not a valid IP, CIDR, port or domain name")
    return norm


def _port(text: str) -> str:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a port number")
    number = int(text)
    if not 1 <= number <= 65535:
        raise ValueError(f"port {number} is outside 1-65535")
    return str(number)


def _ip_or_cidr(text: str, want: IocKind) -> tuple[IocKind, str]:
    try:
        if "/" in text:
            return "cidr", str(ipaddress.ip_network(text, strict=False))
        if want == "cidr":
            return "cidr", str(ipaddress.ip_network(text))
        return "ip", str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid IP address or CIDR network") from None


def parse_indicator(text: str, kind: IocKind | None = None) -> tuple[IocKind, str]:
    """Validate and normalise one indicator; infer its kind when ``kind`` is ``None`` (IP/CIDR via
    ``ipaddress``, an integer 1-65535 is a port, else a valid host name is a domain). Raises ``ValueError``."""
    value = text.strip()
    if not value:
        raise ValueError("empty value")
    if kind == "domain":
        return "domain", _indicator_domain(value)
    if kind == "port":
        return "port", _port(value)
    if kind in ("ip", "cidr"):
        return _ip_or_cidr(value, kind)
    if kind is not None:
        raise ValueError(f"unknown indicator type {kind!r} (expected domain, ip, cidr or port)")
    if _is_ip(value) or "/" in value:
        return _ip_or_cidr(value, "ip")
    if value.isascii() and value.isdigit():
        return "port", _port(value)
    return "domain", _indicator_domain(value)


# -- builders --------------------------------------------------------------------------------------------------


def from_rule(rule: Rule) -> IocSet:
    """The rule's own IOCs (domains, IPs/CIDRs, ports), source ``rule:<rule-id>``."""
    source = f"rule:{rule.id}"
    try:
        return IocSet.of(domains=rule.iocs.domains, ips=rule.iocs.ips, ports=rule.iocs.ports, source=source)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=rule.path) from None


@lru_cache(maxsize=1)
def bundled() -> IocSet:
    """The shipped mining-pool domain list plus the default stratum ports."""
    ref = resources.files("minerwatch.catalog").joinpath("data", _BUNDLED_FILE)
    text = ref.read_text(encoding="utf-8")
    domains = parse_ioc_text(text, f"minerwatch/catalog/data/{_BUNDLED_FILE}", force="text")
    entries = [IocEntry(e.kind, e.value, BUNDLED_DOMAINS_SOURCE) for e in domains]
    entries += [IocEntry("port", str(p), STRATUM_PORTS_SOURCE) for p in sorted(STRATUM_PORTS)]
    return IocSet(tuple(entries))


def merge(*sets: IocSet) -> IocSet:
    """All entries of ``sets`` in order; the first source of an indicator is the one a hit reports."""
    return IocSet(tuple(e for s in sets for e in s.entries))


def default_for_rule(rule: Rule) -> IocSet:
    """What a rule watches by default: its own IOCs, then the bundled ones."""
    return merge(from_rule(rule), bundled())


def load_ioc_file(path: str | Path) -> IocSet:
    """An IOC file: plain text (one value a line, ``#`` comments) or CSV with a header naming a ``value``
    column and optionally ``type`` (domain|ip|cidr|port) and ``description``. A ``.csv`` file must be CSV.
    Errors are :class:`ConfigError` with the file and line."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read IOC file: {exc}", file=file) from None
    return parse_ioc_text(text, file, force="csv" if file.lower().endswith(".csv") else None)


def parse_ioc_text(text: str, file: str = "<iocs>", force: Literal["csv", "text"] | None = None) -> IocSet:
    """Parse IOC file content; entries get source ``file:<file>:<line>``. CSV is recognised by a header row
    with a ``value`` column unless ``force`` says which format it is."""
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")), None)
    if first is None:
        return IocSet()
    is_csv = force == "csv" or (force is None and "value" in _header_names(lines[first]))
    return IocSet(tuple(_parse_csv(text, file) if is_csv else _parse_plain(lines, file)))


def _header_names(line: str) -> list[str]:
    row = next(csv.reader([line]), [])
    return [c.strip().lower() for c in row]


def _parse_plain(lines: list[str], file: str) -> Iterator[IocEntry]:
    for n, raw in enumerate(lines, 1):
        value = raw.split("#", 1)[0].strip()
        if not value:
            continue
        if len(value.split()) > 1:
            raise ConfigError("one value per line expected", file=file, line=n, source_line=raw)
        try:
            kind, norm = parse_indicator(value)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=n, source_line=raw) from None
        yield IocEntry(kind, norm, f"file:{file}:{n}")


def _parse_csv(text: str, file: str) -> Iterator[IocEntry]:
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    end = 0
    for row in reader:
        line, end = end + 1, reader.line_num
        source_line = lines[line - 1] if line <= len(lines) else None
        if not row or not any(c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in row]
            if "value" not in header:
                raise ConfigError(
                    "a CSV IOC file needs a header row with a 'value' column (and optionally 'type', 'description')",
                    file=file,
                    line=line,
                    source_line=source_line,
                )
            continue
        cells = dict(zip(header, row, strict=False))
        value = cells.get("value", "")
        kind_text = cells.get("type", "").strip().lower()
        description = cells.get("description", "").strip() or None
        try:
            if kind_text and kind_text not in KINDS:
                raise ValueError(f"unknown type {kind_text!r} (expected domain, ip, cidr or port)")
            kind, norm = parse_indicator(value, kind_text or None)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=line, source_line=source_line) from None
        yield IocEntry(kind, norm, f"file:{file}:{line}", description)
