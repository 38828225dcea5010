"""IocSet matching: label-boundary domains, exact/CIDR IPs (IPv4, IPv6, IPv4-mapped), ports.

Property tests compare the matcher with brute-force oracles built on plain string suffixes and ``ipaddress``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.enrich.iocs import IocEntry, IocSet, ascii_name, merge

# -- domains ---------------------------------------------------------------------------------------------------

# A tiny alphabet so generated names share labels and suffixes often.
_inner = st.text(alphabet="ab1-", min_size=0, max_size=2)
label = st.builds(lambda first, mid, last: first + mid + last, st.sampled_from("ab1"), _inner, st.sampled_from("ab1"))
label = st.one_of(st.sampled_from("ab1"), label)
tld = st.text(alphabet="ab", min_size=1, max_size=2)
indicator = st.builds(lambda ls, t: ".".join([*ls, t]), st.lists(label, min_size=1, max_size=2), tld)
indicators = st.lists(indicator, min_size=1, max_size=6, unique=True)


def _label_suffixes(name: str) -> list[str]:
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def _oracle_domain(name: str, domains: list[str]) -> str | None:
    """The longest label suffix of ``name`` that is in ``domains``."""
    return next((s for s in _label_suffixes(name.lower().rstrip(".")) if s in domains), None)


@st.composite
def domain_case(draw: st.DrawFn) -> tuple[list[str], str]:
    domains = draw(indicators)
    prefix = draw(st.lists(st.one_of(label, tld), max_size=3))
    # Half the names end in an indicator, so hits and near-misses are both common.
    tail = draw(
        st.one_of(st.sampled_from(domains), st.builds(lambda ls: ".".join(ls), st.lists(label, min_size=1, max_size=4)))
    )
    return domains, ".".join([*prefix, tail])


@settings(max_examples=400, deadline=None)
@given(domain_case())
def test_domain_matches_iff_a_label_suffix_is_an_indicator(case: tuple[list[str], str]) -> None:
    domains, name = case
    iocs = IocSet.of(domains=domains, source="t")
    hit = iocs.match_domain(name)
    expected = _oracle_domain(name, domains)
    assert (hit.indicator if hit else None) == expected
    if hit:
        assert hit.kind == "domain" and hit.value == name and hit.source == "t"


@settings(max_examples=300, deadline=None)
@given(domain_case(), label)
def test_prefixing_a_label_never_breaks_a_match(case: tuple[list[str], str], extra: str) -> None:
    domains, name = case
    iocs = IocSet.of(domains=domains, source="t")
    if iocs.match_domain(name) is not None:
        longer = iocs.match_domain(f"{extra}.{name}")
        assert longer is not None
        # A longer name can only match something at least as specific.
        assert len(longer.indicator) >= len(iocs.match_domain(name).indicator)  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(indicators, st.text(alphabet="ab1-", min_size=1, max_size=3))
def test_concatenating_without_a_dot_never_matches_that_indicator(domains: list[str], glue: str) -> None:
    iocs = IocSet.of(domains=domains, source="t")
    for d in domains:
        name = glue + d
        hit = iocs.match_domain(name)
        assert hit is None or hit.indicator != d
        assert (hit.indicator if hit else None) == _oracle_domain(name, domains)


@settings(max_examples=300, deadline=None)
@given(domain_case(), st.data())
def test_case_and_trailing_dot_do_not_matter(case: tuple[list[str], str], data: st.DataObject) -> None:
    domains, name = case
    iocs = IocSet.of(domains=domains, source="t")
    flips = data.draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    mixed = "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))
    variants = [mixed, mixed + ".", name.upper() + "."]
    # Indicators written in upper case with a trailing dot normalise to the same set.
    shouted = IocSet.of(domains=[d.upper() + "." for d in domains], source="t")
    base = iocs.match_domain(name)
    for v in variants:
        for s in (iocs, shouted):
            got = s.match_domain(v)
            assert (got.indicator if got else None) == (base.indicator if base else None)


@pytest.mark.parametrize(
    ("name", "indicator"),
    [
        ("nanopool.org", "nanopool.org"),
        ("xmr.nanopool.org", "nanopool.org"),
        ("a.b.c.xmr.nanopool.org", "nanopool.org"),
        ("XMR.NanoPool.ORG.", "nanopool.org"),
        ("notnanopool.org", None),
        ("nanopool.org.evil.com", None),
        ("nanopool.orgx", None),
        ("org", None),
        ("", None),
        (".", None),
        ("..nanopool.org", "nanopool.org"),
        ("pool.minexmr.com", "pool.minexmr.com"),
        ("minexmr.com", "minexmr.com"),
    ],
)
def test_domain_examples(name: str, indicator: str | None) -> None:
    iocs = IocSet.of(domains=["nanopool.org", "minexmr.com", "pool.minexmr.com"], source="t")
    hit = iocs.match_domain(name)
    assert (hit.indicator if hit else None) == indicator


def test_most_specific_domain_indicator_wins_and_sources_merge() -> None:
    iocs = merge(
        IocSet.of(domains=["nanopool.org"], source="rule:r"),
        IocSet.of(domains=["xmr.nanopool.org", "nanopool.org"], source="bundled:b"),
    )
    deep = iocs.match_domain("eu.xmr.nanopool.org")
    assert deep is not None and (deep.indicator, deep.source, deep.sources) == (
        "xmr.nanopool.org",
        "bundled:b",
        ("bundled:b",),
    )
    apex = iocs.match_domain("www.nanopool.org")
    assert apex is not None and (apex.source, apex.sources) == ("rule:r", ("rule:r", "bundled:b"))


def test_internationalised_names_compare_in_ascii_form() -> None:
    iocs = IocSet.of(domains=["bücher.example", "xn--mnchen-3ya.example"], source="t")
    assert iocs.domains == {"xn--bcher-kva.example", "xn--mnchen-3ya.example"}
    for name, expected in [
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("pool.XN--BCHER-KVA.example.", "xn--bcher-kva.example"),
        ("WWW.BÜCHER.EXAMPLE", "xn--bcher-kva.example"),
        ("www.bücher\u3002example", "xn--bcher-kva.example"),  # ideographic full stop separates labels
        ("münchen.example", "xn--mnchen-3ya.example"),
        ("buecher.example", None),
    ]:
        hit = iocs.match_domain(name)
        assert (hit.indicator if hit else None) == expected, name
    assert ascii_name("\udcff.example") is None  # an unencodable label is no match, not an error
    assert iocs.match_domain("\udcff.bücher.example") is None


def test_internationalised_names_follow_idna_2008() -> None:
    # IDNA 2003 maps ß to ss (faß.de would be fass.de); IDNA 2008 keeps it: xn--fa-hia.de, a different name.
    iocs = IocSet.of(domains=["faß.de"], source="t")
    assert iocs.domains == {"xn--fa-hia.de"}
    hit = iocs.match_domain("pool.xn--fa-hia.de")
    assert hit is not None and hit.indicator == "xn--fa-hia.de"
    assert iocs.match_domain("FAß.DE") is not None  # still case-insensitive (UTS #46 mapping)
    assert iocs.match_domain("fass.de") is None


@pytest.mark.parametrize("bad", [None, 42, b"nanopool.org", ["nanopool.org"]])
def test_non_string_domains_do_not_match(bad: object) -> None:
    assert IocSet.of(domains=["nanopool.org"], source="t").match_domain(bad) is None  # type: ignore[arg-type]


# -- IPs -------------------------------------------------------------------------------------------------------

Net = IPv4Network | IPv6Network
Addr = IPv4Address | IPv6Address

v4_net = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False), st.integers(0, 2**32 - 1), st.integers(0, 32)
)
v6_net = st.builds(
    lambda a, p: ipaddress.ip_network((a, p), strict=False), st.integers(0, 2**128 - 1), st.integers(0, 128)
)
# Networks inside ::ffff:0:0/96 exercise the IPv4-mapped equivalence.
mapped_net = st.builds(
    lambda a, p: ipaddress.ip_network(((0xFFFF << 32) | a, 96 + p), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
# Prefix 0 covers everything; keep it possible but rare so the outside checks have teeth.
networks = st.lists(st.one_of(v4_net, v4_net, v6_net, mapped_net), min_size=1, max_size=8).filter(
    lambda ns: sum(n.prefixlen == 0 for n in ns) == 0 or len(ns) == 1
)


def _forms(addr: Addr) -> list[Addr]:
    """The address and its IPv4 / IPv4-mapped twin: both name the same host."""
    if isinstance(addr, IPv4Address):
        return [addr, IPv6Address((0xFFFF << 32) | int(addr))]
    mapped = addr.ipv4_mapped
    return [addr] if mapped is None else [addr, mapped]


def _oracle_ip(addr: Addr, nets: list[Net]) -> int | None:
    """Prefix length (in IPv6 terms) of the most specific network holding ``addr``, or ``None``."""
    best: int | None = None
    for n in nets:
        if any(f.version == n.version and f in n for f in _forms(addr)):
            plen = n.prefixlen + (96 if n.version == 4 else 0)
            best = plen if best is None else max(best, plen)
    return best


def _hit_prefix(iocs: IocSet, addr: Addr | str) -> int | None:
    hit = iocs.match_ip(addr)
    if hit is None:
        return None
    net = ipaddress.ip_network(hit.indicator, strict=False)
    return net.prefixlen + (96 if net.version == 4 else 0)


def _probe_addresses(net: Net, offset: int) -> list[Addr]:
    cls = IPv4Address if net.version == 4 else IPv6Address
    top = 2 ** (32 if net.version == 4 else 128) - 1
    lo, hi = int(net.network_address), int(net.broadcast_address)
    probes = [lo, hi, lo + offset % (hi - lo + 1)]
    probes += [x for x in (lo - 1, hi + 1) if 0 <= x <= top]
    return [cls(x) for x in probes]


@settings(max_examples=400, deadline=None)
@given(networks, st.integers(0, 2**128))
def test_cidr_matching_agrees_with_ipaddress_oracle(nets: list[Net], offset: int) -> None:
    iocs = IocSet.of(ips=[str(n) for n in nets], source="t")
    for n in nets:
        inside = type(n.network_address)(int(n.network_address) + offset % n.num_addresses)
        for addr in [n.network_address, n.broadcast_address, inside]:
            # Every address inside an entry matches, in every spelling.
            for form in _forms(addr):
                assert iocs.match_ip(form) is not None, (form, n)
                assert iocs.match_ip(str(form)) is not None, (form, n)
        for addr in _probe_addresses(n, offset):
            # Just outside (network - 1, broadcast + 1) matches only if another entry covers it.
            expected = _oracle_ip(addr, nets)
            for form in _forms(addr):
                assert _hit_prefix(iocs, form) == expected, (form, nets)


@settings(max_examples=200, deadline=None)
@given(
    networks,
    st.lists(
        st.one_of(st.integers(0, 2**32 - 1).map(IPv4Address), st.integers(0, 2**128 - 1).map(IPv6Address)), max_size=20
    ),
)
def test_random_addresses_agree_with_oracle(nets: list[Net], addrs: list[Addr]) -> None:
    iocs = IocSet.of(ips=[str(n) for n in nets], source="t")
    for addr in addrs:
        assert _hit_prefix(iocs, str(addr)) == _oracle_ip(addr, nets)


def test_exact_ips_cidrs_and_mapped_addresses() -> None:
    iocs = IocSet.of(ips=["198.51.100.7", "203.0.113.0/24", "2001:db8::/32", "2001:db8:1::5"], source="rule:r")
    cases = {
        "198.51.100.7": ("ip", "198.51.100.7"),
        "::ffff:198.51.100.7": ("ip", "198.51.100.7"),
        "203.0.113.255": ("cidr", "203.0.113.0/24"),
        "::ffff:203.0.113.1": ("cidr", "203.0.113.0/24"),
        "::ffff:cb00:7101": ("cidr", "203.0.113.0/24"),
        "2001:db8:1::5": ("ip", "2001:db8:1::5"),
        "2001:db8:1::6": ("cidr", "2001:db8::/32"),
        " 203.0.113.9 ": ("cidr", "203.0.113.0/24"),
    }
    for addr, (kind, indicator) in cases.items():
        hit = iocs.match_ip(addr)
        assert hit is not None and (hit.kind, hit.indicator, hit.source) == (kind, indicator, "rule:r"), addr
    for miss in ["198.51.100.8", "203.0.112.255", "203.0.114.0", "2001:db9::", "::198.51.100.7", "64:ff9b::cb00:7101"]:
        assert iocs.match_ip(miss) is None, miss
    assert iocs.match_ip(IPv4Address("203.0.113.5")) is not None


@pytest.mark.parametrize(
    "bad", ["", "1.2.3", "01.2.3.4", "1.2.3.4/24", "203.0.113.1\x00", "host.example", "1::2::3", None, 3405803777]
)
def test_malformed_addresses_do_not_match(bad: object) -> None:
    iocs = IocSet.of(ips=["0.0.0.0/0", "::/0"], source="t")
    assert iocs.match_ip(bad) is None  # type: ignore[arg-type]


def test_network_lookups_are_one_table_per_prefix_length() -> None:
    nets = [f"10.{i // 256}.{i % 256}.0/24" for i in range(5000)] + [f"172.{16 + i}.0.0/16" for i in range(16)]
    iocs = IocSet.of(ips=nets, source="t")
    # Two prefix lengths, two tables: a lookup is at most two dict probes after the exact set.
    assert len(iocs._index.nets) == 2
    assert iocs.match_ip("10.19.135.200").indicator == "10.19.135.0/24"  # type: ignore[union-attr]
    assert iocs.match_ip("10.19.136.0") is None  # 5000 // 256 = 19, 5000 % 256 = 136: first network not listed


def test_ips_and_cidrs_for_sql() -> None:
    iocs = merge(
        IocSet.of(
            ips=["198.51.100.7", "203.0.113.0/24", "192.0.2.1/32", "2001:db8::/32", "2001:db8::9/128"], source="a"
        ),
        IocSet.of(ips=["203.0.113.77/24", "198.51.100.7"], source="b"),
    )
    sql = iocs.ips_and_cidrs_for_sql()
    assert sql.ips == ["198.51.100.7", "192.0.2.1", "2001:db8::9"]
    assert sql.cidrs == [("203.0.113.0", 24), ("2001:db8::", 32)]


# -- ports and free-form checks --------------------------------------------------------------------------------


def test_ports() -> None:
    iocs = IocSet.of(ports=[3333, "14444"], source="t")
    assert iocs.stratum_ports == {3333, 14444}
    assert iocs.match_port(3333).indicator == "3333"  # type: ignore[union-attr]
    assert iocs.match_port(" 14444 ").indicator == "14444"  # type: ignore[union-attr]
    for miss in [4444, "4444", "3333x", "-3333", "", None, True, 3333.0, "٣٣٣٣"]:
        assert iocs.match_port(miss) is None, miss  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ("xmr.nanopool.org", [("domain", "nanopool.org")]),
        ("xmr.nanopool.org:14444", [("domain", "nanopool.org"), ("port", "14444")]),
        ("stratum+tcp://XMR.nanopool.org:3333", [("domain", "nanopool.org"), ("port", "3333")]),
        ("stratum+tcp://example.com:3333", [("port", "3333")]),
        ("203.0.113.5:80", [("cidr", "203.0.113.0/24")]),
        ("[2001:db8::1]:3333", [("port", "3333")]),
        ("2001:db8::1", []),
        ("3333", [("port", "3333")]),
        ("80", []),
        ("example.com", []),
        ("http://[bad", []),
    ],
)
def test_check_free_form_values(value: str, found: list[tuple[str, str]]) -> None:
    iocs = IocSet.of(domains=["nanopool.org"], ips=["203.0.113.0/24"], ports=[3333, 14444], source="t")
    assert [(h.kind, h.indicator) for h in iocs.check(value)] == found


# -- the set itself --------------------------------------------------------------------------------------------


def test_sets_are_frozen_hashable_and_deduplicated() -> None:
    a = IocSet.of(domains=["nanopool.org", "NANOPOOL.org."], ips=["10.0.0.0/8"], ports=[3333], source="t")
    b = IocSet.of(domains=["nanopool.org"], ips=["10.1.2.3/8"], ports=["3333"], source="t")
    assert len(a) == 3 and a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.entries = ()  # type: ignore[misc]
    assert merge(a, b) == a
    c = IocSet.of(domains=["nanopool.org"], source="other")
    assert merge(a, c) != a and len(merge(a, c)) == 4
    with pytest.raises(TypeError):
        IocSet(("nanopool.org",))  # type: ignore[arg-type]
    assert IocSet((IocEntry("domain", "nanopool.org", "t"),)).match_domain("x.nanopool.org") is not None
