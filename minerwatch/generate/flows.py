"""Many VPC flow log records, fast: gzip text files for the hunting benchmark (10 million records in seconds).

A fleet (accounts, ENIs with private addresses) is drawn once from the seed. Each file is one hour of that
fleet's traffic in the default flow log format (version 2, 14 fields) with its header line, as S3 delivery
writes it: egress to public services and its return traffic, internal traffic, inbound connections, scanners
refused, ``NODATA`` records. A small fraction of the connections are miners': an ENI talking to a mining pool,
both directions. Pools are of four kinds, so a sweep has to check every indicator kind:

``ip+port``   an IOC address on a Stratum port
``ip``        an IOC address on 443 (a pool behind TLS: only the address gives it away)
``cidr``      an address inside an IOC network, on a Stratum port
``port``      an address in no IOC list, on a Stratum port (only the port gives it away)

Benign traffic never touches an IOC address or network, and never uses a Stratum (or other pool) port on
either side, so the ENIs a sweep must find are exactly :attr:`FlowPlan.miners`.

Files are written by several processes (each file has its own random stream, so the bytes do not depend on
how many) with gzip level 1, no file name and mtime 0: the same arguments write the same bytes.
"""

from __future__ import annotations

import ipaddress
import os
import random
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
"""Bumped whenever the same arguments would write different bytes, so cached benchmark files are rebuilt."""

HEADER = (
    b"version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action "
    b"log-status\n"
)
START = 1_741_564_800  # 2025-03-10T00:00:00Z; file k holds hour k
ACCOUNTS = 12
ENIS = 4000
MINERS = 48
PUBLIC_POOL = 1 << 16
STRATUM_PORTS = (3333, 4444, 14444)

IOC_IPS = (
    "198.51.100.23",
    "198.51.100.150",
    "198.51.100.201",
    "203.0.113.45",
    "203.0.113.77",
    "203.0.113.160",
)
"""Exact pool addresses (documentation ranges, never used by benign traffic)."""
IOC_CIDRS = ("192.0.2.0/24",)
"""A pool operator's network."""

# Ports benign traffic may use: none is a pool port of the shipped rules or the bundled list.
_SERVICE_PORTS = (443,) * 14 + (80, 80, 53, 123, 8443)
_INTERNAL_PORTS = (8080, 5432, 6379, 3306, 9200, 443)
_INBOUND_PORTS = (443, 443, 443, 22)
_SCAN_PORTS = (23, 445, 3389, 1433, 5900, 8080, 25, 21, 6379, 9200)
_RESERVED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
    )
]


@dataclass(frozen=True, slots=True)
class Eni:
    account: str
    eni: str
    ip: str


@dataclass(frozen=True, slots=True)
class Miner:
    eni: Eni
    remote_ip: str
    remote_port: int
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.eni.account,
            "eni": self.eni.eni,
            "private_ip": self.eni.ip,
            "remote_ip": self.remote_ip,
            "remote_port": self.remote_port,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class FlowPlan:
    """The fleet every file of one seed draws from."""

    seed: int
    enis: tuple[Eni, ...]
    miners: tuple[Miner, ...]
    public: tuple[str, ...]


def _public_ip(rng: random.Random) -> str:
    while True:
        addr = ipaddress.IPv4Address(rng.randrange(1 << 24, 224 << 24))
        if not any(addr in net for net in _RESERVED):
            return str(addr)


@lru_cache(maxsize=4)
def plan(seed: int) -> FlowPlan:
    """The fleet of ``seed``: ENIs in a few accounts, a pool of public addresses, the miners."""
    rng = random.Random(f"{seed}:flows")
    accounts = [str(rng.randrange(10**11, 10**12)) for _ in range(ACCOUNTS)]
    enis: list[Eni] = []
    seen_ips: set[str] = set()
    while len(enis) < ENIS:
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if ip in seen_ips:
            continue
        seen_ips.add(ip)
        enis.append(Eni(rng.choice(accounts), f"eni-0{rng.getrandbits(64):016x}", ip))
    public = tuple(_public_ip(rng) for _ in range(PUBLIC_POOL))
    kinds = ("ip+port", "ip", "cidr", "port")
    cidr = ipaddress.ip_network(IOC_CIDRS[0])
    miners: list[Miner] = []
    for i, eni in enumerate(rng.sample(enis, MINERS)):
        kind = kinds[i % len(kinds)]
        port = rng.choice(STRATUM_PORTS)
        if kind == "ip+port":
            miners.append(Miner(eni, rng.choice(IOC_IPS), port, kind))
        elif kind == "ip":
            miners.append(Miner(eni, rng.choice(IOC_IPS), 443, kind))
        elif kind == "cidr":
            miners.append(Miner(eni, str(cidr.network_address + rng.randrange(1, 255)), port, kind))
        else:
            miners.append(Miner(eni, rng.choice(public), port, kind))
    return FlowPlan(seed, tuple(enis), tuple(miners), public)


def _file_bytes(seed: int, index: int, records: int, hit_ratio: float) -> tuple[bytes, int, int, set[int]]:
    """One file's text: (data, records, hit records, indexes of the miners in it). Connections log both
    directions, so ``records`` may be exceeded by one."""
    p = plan(seed)
    rng = random.Random(f"{seed}:flows:{index}")
    rand, bits = rng.random, rng.getrandbits
    enis, public, miners = p.enis, p.public, p.miners
    n_enis, n_miners = len(enis), len(miners)
    base = START + index * 3600
    lines: list[bytes] = [HEADER]
    out = lines.append
    line2 = b"2 %s %s %s %s %d %d %d %d %d %d %d %s OK\n"
    n = hits = 0
    active: set[int] = set()
    # A miner connection writes two records, as most benign iterations do: the share of connections is the
    # share of records.
    while n < records:
        start = base + bits(12) % 3540
        end = start + 1 + bits(6)
        r = rand()
        if r < hit_ratio:
            k = bits(16) % n_miners
            active.add(k)
            m = miners[k]
            e = m.eni
            acct, eni_id = e.account.encode(), e.eni.encode()
            local, remote = e.ip.encode(), m.remote_ip.encode()
            sport = 32768 + bits(15) % 28231
            pk, by = 20 + bits(9), 4000 + bits(18)
            accept = b"ACCEPT"
            out(line2 % (acct, eni_id, local, remote, sport, m.remote_port, 6, pk, by, start, end, accept))
            out(line2 % (acct, eni_id, remote, local, m.remote_port, sport, 6, pk, by * 3, start, end, accept))
            n += 2
            hits += 2
            continue
        e = enis[bits(16) % n_enis]
        acct, eni_id, local = e.account.encode(), e.eni.encode(), e.ip.encode()
        pk, by = 1 + bits(8), 40 + bits(16)
        r = (r - hit_ratio) / (1.0 - hit_ratio)
        if r < 0.55:
            dst = public[bits(16)].encode()
            dport = _SERVICE_PORTS[bits(8) % len(_SERVICE_PORTS)]
            proto = 17 if dport in (53, 123) else 6
            sport = 32768 + bits(15) % 28231
            out(line2 % (acct, eni_id, local, dst, sport, dport, proto, pk, by, start, end, b"ACCEPT"))
            out(line2 % (acct, eni_id, dst, local, dport, sport, proto, pk, by * 4, start, end, b"ACCEPT"))
            n += 2
        elif r < 0.75:
            peer = enis[bits(16) % n_enis].ip.encode()
            dport = _INTERNAL_PORTS[bits(8) % len(_INTERNAL_PORTS)]
            sport = 32768 + bits(15) % 28231
            out(line2 % (acct, eni_id, local, peer, sport, dport, 6, pk, by, start, end, b"ACCEPT"))
            out(line2 % (acct, eni_id, peer, local, dport, sport, 6, pk, by * 2, start, end, b"ACCEPT"))
            n += 2
        elif r < 0.90:
            src = public[bits(16)].encode()
            dport = _INBOUND_PORTS[bits(8) % len(_INBOUND_PORTS)]
            sport = 32768 + bits(15) % 28231
            out(line2 % (acct, eni_id, src, local, sport, dport, 6, pk, by, start, end, b"ACCEPT"))
            out(line2 % (acct, eni_id, local, src, dport, sport, 6, pk, by * 8, start, end, b"ACCEPT"))
            n += 2
        elif r < 0.98:
            src = public[bits(16)].encode()
            dport = _SCAN_PORTS[bits(8) % len(_SCAN_PORTS)]
            sport = 32768 + bits(15) % 28231
            out(line2 % (acct, eni_id, src, local, sport, dport, 6, 1, 40 + bits(5), start, end, b"REJECT"))
            n += 1
        else:
            out(b"2 %s %s - - - - - - - %d %d - NODATA\n" % (acct, eni_id, start, end))
            n += 1
    return b"".join(lines), n, hits, active


def _write_one(args: tuple[int, int, int, float, str]) -> dict[str, Any]:
    seed, index, records, hit_ratio, path = args
    data, n, hits, active = _file_bytes(seed, index, records, hit_ratio)
    # wbits=31: a gzip member with mtime 0 and no file name, so the bytes are reproducible.
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    packed = comp.compress(data) + comp.flush()
    Path(path).write_bytes(packed)
    return {"path": path, "records": n, "hit_records": hits, "bytes": len(packed), "text_bytes": len(data),
            "miners": sorted(active)}


def file_name(index: int) -> str:
    return f"flows-{index:05d}.log.gz"


def write_flow_files(
    out: str | Path,
    records: int,
    files: int,
    seed: int = 1,
    hit_ratio: float = 0.002,
    *,
    processes: int | None = None,
) -> dict[str, Any]:
    """Write about ``records`` flow records into ``files`` gzip files under ``out`` (created); about
    ``hit_ratio`` of them are miners' records. Returns the metadata (also the ground truth): ``format``,
    ``seed``, ``records``, ``hit_records``, ``files`` (path, records, bytes), ``bytes``, ``text_bytes``,
    ``miners`` (those with at least one record), ``ioc_ips``, ``ioc_cidrs``, ``stratum_ports``."""
    if records <= 0 or files <= 0:
        raise ValueError("records and files must be positive")
    if not 0.0 <= hit_ratio < 0.5:
        raise ValueError("hit_ratio must be in [0, 0.5)")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    per_file = [records // files + (1 if i < records % files else 0) for i in range(files)]
    tasks = [(seed, i, per_file[i], hit_ratio, str(root / file_name(i))) for i in range(files)]
    workers = max(1, min(processes or os.cpu_count() or 1, files))
    if workers == 1:
        done = [_write_one(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            done = list(pool.map(_write_one, tasks))
    p = plan(seed)
    active = sorted({k for d in done for k in d.pop("miners")})
    return {
        "format": FORMAT_VERSION,
        "seed": seed,
        "hit_ratio": hit_ratio,
        "records": sum(d["records"] for d in done),
        "hit_records": sum(d["hit_records"] for d in done),
        "bytes": sum(d["bytes"] for d in done),
        "text_bytes": sum(d["text_bytes"] for d in done),
        "files": done,
        "miners": [p.miners[k].to_json() for k in active],
        "ioc_ips": list(IOC_IPS),
        "ioc_cidrs": list(IOC_CIDRS),
        "stratum_ports": list(STRATUM_PORTS),
    }


def miner_enis(meta: dict[str, Any]) -> set[tuple[str, str]]:
    """(account, ENI) of every miner in a ``write_flow_files`` result."""
    return {(m["account"], m["eni"]) for m in meta["miners"]}


__all__ = ["FORMAT_VERSION", "FlowPlan", "Miner", "miner_enis", "plan", "write_flow_files"]
