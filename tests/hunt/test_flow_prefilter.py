"""The per-record sweep reads only the lines the IOC literals find, and gives exactly what reading every line
gives: the same groups, records, rejects (with their lines) and time span, on generated flow files and on
records built to trip a literal prefilter (a port number in the bytes column, an address that is a prefix of an
IOC address, network boundaries, custom field orders with a header, a header repeated mid-file, garbage)."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.enrich.iocs import IocSet
from minerwatch.generate.flows import write_flow_files
from minerwatch.hunt.flows import candidate_finder, sweep_python
from minerwatch.hunt.model import SourceStats
from minerwatch.sources.records import ReadStats, Reject
from minerwatch.sources.vpcflow import V2_FIELDS, read_vpcflow

HEADER = " ".join(V2_FIELDS)
IOCS = IocSet.of(ips=["10.0.0.1", "192.0.2.0/24", "198.51.100.0/30", "2001:db8::/32"], ports=[3333], source="test")


def _run(paths: list[str], iocs: IocSet, prefilter: bool) -> tuple[Any, ...]:
    stats = SourceStats()
    rejects: list[Reject] = []
    groups = sweep_python(paths, iocs, stats, rejects.append, prefilter=prefilter)
    flat = sorted(
        (k, g.flows, g.bytes, g.packets, g.first, g.last, g.accepted, g.rejected)
        for k, g in ((tuple(str(x) for x in key), g) for key, g in groups.items())
    )
    reasons = sorted((r.file, r.line, r.reason) for r in rejects)
    return flat, stats.records, stats.files, stats.rejected, stats.first, stats.last, reasons


def _same(paths: list[str], iocs: IocSet = IOCS) -> tuple[Any, ...]:
    fast = _run(paths, iocs, True)
    slow = _run(paths, iocs, False)
    assert fast == slow
    return fast


def _v2(src: str, dst: str, sport: int | str, dport: int | str, packets: int | str = 5, size: int | str = 400,
        start: int = 1_700_000_000, eni: str = "eni-0aaa") -> str:
    return f"2 111111111111 {eni} {src} {dst} {sport} {dport} 6 {packets} {size} {start} {start + 60} ACCEPT OK"


TRICKY = [
    _v2("10.0.0.10", "10.0.0.100", 443, 51000),  # prefixes of the IOC address: no match
    _v2("10.0.0.2", "203.0.113.9", 51000, 443, packets=3333, size=3333),  # the port in packets/bytes: no match
    _v2("10.0.0.3", "203.0.113.9", 51000, 33330),  # a longer port holding the digits: no match
    _v2("10.0.0.4", "10.0.0.1", 51000, 443),  # the IOC address: match
    _v2("10.0.0.1", "8.8.8.8", 51000, 443),  # as source: match
    _v2("10.0.0.5", "192.0.2.255", 51000, 443),  # the network's last address: match
    _v2("10.0.0.6", "192.0.3.0", 51000, 443),  # just past it: no match
    _v2("10.0.0.7", "198.51.100.3", 51000, 443),  # the /30's last address: match
    _v2("10.0.0.8", "198.51.100.4", 51000, 443),  # just past the /30 (same /24 text prefix): no match
    _v2("10.0.0.9", "192.0.20.1", 51000, 443),  # a prefix of the network's text: no match
    _v2("10.0.0.11", "203.0.113.9", 51000, 3333),  # the port as destination: match
    _v2("10.0.0.12", "203.0.113.9", 3333, 443),  # as source: match
    _v2("10.0.0.13", "203.0.113.9", 51000, "03333"),  # leading zero, read as 3333: match
    _v2("2001:db9::1", "2001:db8::7", 51000, 443),  # IPv6 network: match
    _v2("10.0.0.14", "203.0.113.9", 51000, 443),  # nothing
    _v2("172.16.0.15", "::ffff:c633:6401", 51000, 443),  # 198.51.100.1 written as IPv4-mapped IPv6 in hex: match
    "2 111111111111 eni-0aaa - - - - - - - 1700000000 1700000060 - NODATA",
]


def _write(tmp: str, name: str, lines: list[str], gz: bool = True) -> str:
    text = "".join(line + "\n" for line in lines).encode()
    path = Path(tmp) / (name + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(text, mtime=0) if gz else text)
    return str(path)


def test_tricky_records_v2_with_and_without_header(tmp_path: Path) -> None:
    with_header = _write(str(tmp_path), "a.log", [HEADER, *TRICKY])
    bare = _write(str(tmp_path), "b.log", TRICKY, gz=False)
    groups, records, files, rejected, *_ = _same([with_header, bare])
    assert records == 2 * len(TRICKY) and files == 2 and rejected == 0
    remotes = sorted({(k[4], k[5], k[6], k[7]) for k, *_ in groups})
    assert remotes == sorted({
        ("10.0.0.4", "10.0.0.1", "None", "None"), ("10.0.0.1", "8.8.8.8", "None", "None"),
        ("10.0.0.5", "192.0.2.255", "None", "None"), ("10.0.0.7", "198.51.100.3", "None", "None"),
        ("10.0.0.11", "203.0.113.9", "3333", "None"), ("10.0.0.12", "203.0.113.9", "None", "3333"),
        ("10.0.0.13", "203.0.113.9", "3333", "None"), ("2001:db9::1", "2001:db8::7", "None", "None"),
        ("172.16.0.15", "::ffff:c633:6401", "None", "None"),
    })


def test_custom_format_repeated_header_and_garbage(tmp_path: Path) -> None:
    custom = "srcaddr dstaddr bytes dstport srcport interface-id start end"
    lines = [
        custom,
        "10.0.0.4 203.0.113.9 3333 443 51000 eni-0a 1700000000 1700000060",  # 3333 in bytes: no match
        "10.0.0.4 203.0.113.9 50 3333 51000 eni-0a 1700000100 1700000160",  # match
        "10.0.0.4 203.0.113.9 50 443 51000 eni-0a 1690000000 1800000000",  # the span's ends
        "10.0.0.4 10.0.0.1 x 443 51000 eni-0a 1700000000 1700000060",  # bad integer: a reject, not a group
        "10.0.0.4 203.0.113.9 y 443 51000 eni-0a 1700000000 1700000060",  # and in a line with no literal
        "10.0.0.4 203.0.113.9 5 443 51000 eni-0a 99999999999999 1700000060",  # no time: a reject too
        "10.0.0.4 203.0.113.9 50 443",  # wrong field count: a reject
    ]
    mixed = [
        HEADER,  # the order changes mid-file
        _v2("10.0.0.5", "203.0.113.9", 51000, 3333),
        _v2("10.0.0.5", "203.0.113.9", 3333, 443, packets=3333),
        "",
        _v2("10.0.0.5", "\xe9t\xe9", 51000, 443),  # not ASCII, still a record
    ]
    path = _write(str(tmp_path), "c.log", lines)
    groups, records, _, rejected, first, last, reasons = _same([path])
    assert rejected == 4 and [r[1] for r in reasons] == [5, 6, 7, 8]
    assert first is not None and last is not None and first.year == 2023 and last.year == 2027
    assert len(groups) == 1
    both = _same([path, _write(str(tmp_path), "d.log", lines + mixed)])
    assert both[3] == 8 and len(both[0]) == 3


def test_generated_flow_files(tmp_path: Path) -> None:
    meta = write_flow_files(tmp_path / "flows", records=30_000, files=3, seed=5, hit_ratio=0.01, processes=1)
    iocs = IocSet.of(ips=[*meta["ioc_ips"], *meta["ioc_cidrs"]], ports=meta["stratum_ports"], source="test")
    groups, records, files, rejected, *_ = _same([str(tmp_path / "flows")], iocs)
    assert records == meta["records"] and files == 3 and rejected == 0
    assert sum(g[1] for g in groups) >= meta["hit_records"] > 0
    # The files were read through the prefilter: most lines were counted, never split.
    read = ReadStats()
    finder = candidate_finder(iocs)
    got = sum(1 for _ in read_vpcflow([str(tmp_path / "flows")], on_reject=print, stats=read, candidates=finder))
    assert read.records_read == meta["records"] and read.prefiltered > meta["records"] * 0.9
    assert got == meta["records"] - read.prefiltered


def test_no_pattern_when_a_network_holds_every_address() -> None:
    assert candidate_finder(IocSet.of(ips=["0.0.0.0/0"], source="test")) is None
    finder = candidate_finder(IOCS)
    assert finder is not None
    assert finder(b"2 1 eni 10.0.0.10 10.0.0.100 1 2 6 3333 3333 1 2 ACCEPT OK") != []  # a superset
    assert finder(b"2 1 eni 10.1.0.10 10.0.2.100 1 2 6 13333 5 1 2 ACCEPT OK") == []


ADDRS = ["10.0.0.1", "10.0.0.10", "10.0.0.100", "192.0.2.0", "192.0.2.255", "192.0.3.0", "198.51.100.3",
         "198.51.100.4", "2001:db8::1", "2001:db9::1", "203.0.113.9"]
FIELD = st.sampled_from(["3333", "443", "03333", "33330", "-", "x", "10.0.0.1"])
line = st.one_of(
    st.builds(_v2, st.sampled_from(ADDRS), st.sampled_from(ADDRS), st.sampled_from([3333, 443, 51000]),
              st.sampled_from([3333, 443, 51000]), st.sampled_from([1, 3333]), st.sampled_from([40, 3333])),
    st.lists(FIELD, min_size=1, max_size=15).map(" ".join),
    st.just(HEADER),
    st.just(""),
)


@settings(max_examples=60, deadline=None)
@given(files=st.lists(st.lists(line, max_size=25), min_size=1, max_size=2), head=st.booleans())
def test_random_lines(files: list[list[str]], head: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mw-prefilter-") as tmp:
        paths = [_write(tmp, f"f{i}.log", ([HEADER] if head else []) + lines) for i, lines in enumerate(files)]
        _same(paths)


def test_a_header_of_the_same_width_changes_the_order_mid_run(tmp_path: Path) -> None:
    # Every field is text, so the second header has the shape of a record: it must still be read as a header.
    lines = ["interface-id srcaddr dstaddr", "eni-0a 10.0.0.4 10.0.0.1", "eni-0a 10.0.0.4 203.0.113.9",
             "interface-id dstaddr srcaddr", "eni-0b 10.0.0.1 10.0.0.5", "eni-0b 10.0.0.6 203.0.113.9"]
    groups, records, *_ = _same([_write(str(tmp_path), "e.log", lines)])
    assert records == 4
    assert sorted((k[1], k[4], k[5]) for k, *_ in groups) == [("eni-0a", "10.0.0.4", "10.0.0.1"),
                                                             ("eni-0b", "10.0.0.5", "10.0.0.1")]


def test_an_over_long_line_inside_a_run_is_still_rejected(tmp_path: Path) -> None:
    # Well-formed records around lines longer than the limit (long text fields, no literal in them): the filter
    # must not count a long line as a record it skipped.
    plain = [_v2("10.0.0.2", "203.0.113.9", 51000, 443, eni=f"eni-{i:04d}") for i in range(300)]
    at_limit = _v2("10.0.0.2", "203.0.113.9", 51000, 443, eni="eni-" + "c" * 110)
    assert len(at_limit) == 200
    too_long = _v2("10.0.0.2", "203.0.113.9", 51000, 443, eni="eni-" + "a" * 190)
    with_ioc = _v2("10.0.0.4", "10.0.0.1", 51000, 443, eni="eni-" + "b" * 400)
    lines = [HEADER, *plain[:50], at_limit, *plain[50:100], too_long, *plain[100:200], with_ioc, *plain[200:]]
    path = _write(str(tmp_path), "long.log", lines)

    def read(candidates: Any) -> tuple[Any, ...]:
        stats = ReadStats()
        rejects: list[Reject] = []
        got = [r.line for r in read_vpcflow([path], on_reject=rejects.append, stats=stats, candidates=candidates,
                                            max_line_bytes=200)]
        return got, stats.records_read, [(r.line, r.reason) for r in rejects]

    fast, slow = read(candidate_finder(IOCS)), read(None)
    assert fast[1:] == slow[1:] == (303, [(103, "line too long: 280 bytes (limit 200)"),
                                          (204, "line too long: 487 bytes (limit 200)")])
    assert fast[0] == [] and len(slow[0]) == 301
