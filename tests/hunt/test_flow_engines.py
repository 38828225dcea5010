"""The DuckDB flow sweep and the per-record Python sweep give the same entities: on the real samples, on the
scenario, and on random flow files against random indicator sets (exact addresses, IPv4 networks of every
prefix length, IPv6 networks, ports)."""

from __future__ import annotations

import gzip
import ipaddress
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.enrich.iocs import IocSet, merge
from minerwatch.hunt import HuntOptions, hunt
from minerwatch.hunt.flows import network_ranges
from minerwatch.sources.vpcflow import V2_FIELDS

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "real" / "vpcflow"


def _both(iocs: IocSet, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    fast = hunt(iocs, HuntOptions(engine="duckdb", **kwargs))
    slow = hunt(iocs, HuntOptions(engine="python", **kwargs))
    return fast.to_json(), slow.to_json()


def _comparable(data: dict[str, Any]) -> tuple[Any, ...]:
    flow = data["stats"]["sources"]["flow"]
    return data["entities"], flow["records"], flow["matched"], flow["rejected"]


def test_engines_agree_on_the_real_samples() -> None:
    iocs = IocSet.of(
        ips=["158.109.0.1", "2001:db8:1234:a102::/64", "10.0.0.0/8", "172.31.16.0/20", "1.128.0.0/9", "81.2.69.142"],
        ports=[3389, 80, 5001],
        source="test",
    )
    fast, slow = _both(iocs, flow=[str(SAMPLES)])
    assert _comparable(fast) == _comparable(slow)
    assert fast["stats"]["sources"]["flow"]["engine"] == "duckdb+python"  # JSON lines and a repeated header
    kinds = {m["kind"] for e in fast["entities"] for m in e["matches"]}
    assert kinds == {"ip", "cidr", "port"}
    assert fast["stats"]["sources"]["flow"]["records"] == slow["stats"]["sources"]["flow"]["records"] > 20


def test_engines_agree_on_the_scenario(scenario: tuple[Path, dict[str, Any]], hunt_iocs: IocSet) -> None:
    root, manifest = scenario
    # The pools' addresses and a network holding every private address (so clean hosts match too).
    extra = IocSet.of(ips=[p["ip"] for p in manifest["pools"]["accepted"]] + ["10.0.0.0/9"], source="test")
    counts = []
    for iocs in (hunt_iocs, merge(hunt_iocs, extra)):
        fast, slow = _both(iocs, flow=[str(root / "vpcflow")], dns=[str(root / "route53")])
        assert _comparable(fast) == _comparable(slow)
        assert fast["stats"]["sources"]["flow"]["engine"] == "duckdb"
        counts.append(len(fast["entities"]))
    assert counts[0] == len(manifest["compromised_instances"]) < counts[1]


# -- random flows ------------------------------------------------------------------------------------------

V4 = [
    "10.0.4.1", "10.0.40.1", "10.0.5.255", "10.0.7.3", "10.1.0.1", "10.100.2.3", "11.0.0.1", "100.0.0.1",
    "192.0.2.1", "192.0.2.200", "192.0.20.1", "1.2.3.4", "198.51.100.23", "203.0.113.45", "9.9.9.9",
]
V6 = ["2001:db8::1", "2001:db8:0:1::5", "2001:0:0:1::5", "2001:db8:1234:a102::7", "fe80::1", "::1", "::ffff:1.2.3.4"]
ADDRESSES = V4 + V6
PORTS = [22, 53, 80, 443, 3333, 4444, 14444, 40000, 51515]
HEADER = " ".join(V2_FIELDS)

record = st.one_of(
    st.tuples(
        st.sampled_from(["111111111111", "222222222222"]),
        st.sampled_from(["eni-0aaa", "eni-0bbb", "eni-0ccc"]),
        st.sampled_from(ADDRESSES),
        st.sampled_from(ADDRESSES),
        st.sampled_from(PORTS),
        st.sampled_from(PORTS),
        st.integers(1, 1000),
        st.integers(40, 10**6),
        st.integers(1_700_000_000, 1_700_100_000),
        st.sampled_from(["ACCEPT", "REJECT"]),
    ).map(lambda t: f"2 {t[0]} {t[1]} {t[2]} {t[3]} {t[4]} {t[5]} 6 {t[6]} {t[7]} {t[8]} {t[8] + 60} {t[9]} OK"),
    st.just("2 111111111111 eni-0aaa - - - - - - - 1700000000 1700000060 - NODATA"),
)


@st.composite
def networks(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        base = ipaddress.ip_address(draw(st.sampled_from(V4)))
        plen = draw(st.integers(0, 32))
        return str(ipaddress.ip_network(f"{base}/{plen}", strict=False))
    base6 = ipaddress.ip_address(draw(st.sampled_from(V6[:6])))
    plen6 = draw(st.sampled_from([0, 8, 16, 20, 32, 48, 64, 96, 120, 128]))
    return str(ipaddress.ip_network(f"{base6}/{plen6}", strict=False))


indicators = st.tuples(
    st.lists(st.sampled_from(ADDRESSES), max_size=3),
    st.lists(networks(), max_size=3),
    st.lists(st.sampled_from(PORTS), max_size=2),
)


@settings(max_examples=40, deadline=None)
@given(
    files=st.lists(st.lists(record, min_size=0, max_size=30), min_size=1, max_size=3),
    spec=indicators,
    gz=st.booleans(),
)
def test_engines_agree_on_random_flows(files: list[list[str]], spec: Any, gz: bool) -> None:
    ips, nets, ports = spec
    if not (ips or nets or ports):
        ports = [3333]
    iocs = IocSet.of(ips=[*ips, *nets], ports=ports, source="test")
    with tempfile.TemporaryDirectory(prefix="mw-hunt-") as tmp:
        for i, lines in enumerate(files):
            text = (HEADER + "\n" + "".join(line + "\n" for line in lines)).encode()
            path = Path(tmp) / f"f{i}.log{'.gz' if gz else ''}"
            path.write_bytes(gzip.compress(text, mtime=0) if gz else text)
        fast, slow = _both(iocs, flow=[tmp])
    assert _comparable(fast) == _comparable(slow)


# -- the text ranges -----------------------------------------------------------------------------------------


@given(net=networks(), addr=st.one_of(st.sampled_from(ADDRESSES), st.ip_addresses(v=4).map(str)))
def test_every_address_of_a_network_is_in_one_of_its_ranges(net: str, addr: str) -> None:
    ranges = network_ranges(IocSet.of(ips=[net], source="test"))
    network = ipaddress.ip_network(net)
    address = ipaddress.ip_address(addr)
    inside = address in network if address.version == network.version else (
        network.version == 6 and ipaddress.ip_address(f"::ffff:{address}") in network
    )
    if network.prefixlen == network.max_prefixlen:
        return  # exact addresses go to the address table, not to ranges
    if inside:
        assert (
            (ranges.any_ipv6 and ":" in addr)
            or (ranges.any_ipv4 and "." in addr)
            or any(lo <= addr < hi for lo, hi in ranges.ranges)
        )


def test_octet_aligned_ranges_are_exact() -> None:
    ranges = network_ranges(IocSet.of(ips=["192.0.2.0/24", "10.0.0.0/8"], source="test")).ranges
    assert ("192.0.2.", "192.0.2/") in ranges and ("10.", "10/") in ranges
    for addr in ("192.0.2.0", "192.0.2.255", "10.255.0.1"):
        assert any(lo <= addr < hi for lo, hi in ranges)
    for addr in ("192.0.20.1", "192.0.3.1", "100.0.0.1", "1.10.0.0"):
        assert not any(lo <= addr < hi for lo, hi in ranges)
