"""A large GuardDuty JSON Lines file, fast: for benchmarks (about 1 GB in a few tens of seconds).

A pool of a few thousand findings is drawn once by the regular generator and rendered with orjson into byte
templates whose id, timestamps and instance id are ``%``-slots; each output line fills one template. Lines get
distinct finding ids, timestamps that rise steadily over the file, and instance ids from a large fleet per
account. Crypto lines (seed-rule matches) come in bursts from a handful of instances at a time that change as
the file goes on, so a detector raises a realistic number of alerts. Deterministic in its arguments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from minerwatch.generate.findings import DEFAULT_START, plan
from minerwatch.generate.fleet import hexstr
from minerwatch.generate.vocabulary import seed_rule_matches

FORMAT_VERSION = 1
"""Bumped whenever the same arguments would write different bytes, so cached benchmark files are rebuilt."""
POOL_SIZE = 4000
INSTANCES_PER_ACCOUNT = 5000
ACTIVE_INCIDENTS = 4
INCIDENT_LINES = 150  # crypto lines an incident lasts before another instance takes its place
WRITE_BUFFER = 8 * 1024 * 1024

_ID = "\x01ID\x01"
_CREATED = "\x01CREATED\x01"
_UPDATED = "\x01UPDATED\x01"
_FIRST = "\x01FIRST\x01"
_LAST = "\x01LAST\x01"


@dataclass(frozen=True, slots=True)
class _Template:
    account: str
    text: bytes
    has_instance: bool


def _template(f: dict[str, Any]) -> _Template:
    """Replace the varying values by sentinels, render, then turn the sentinels into ``%(name)b`` slots."""
    fid = f["id"]
    inst = (f.get("resource", {}).get("instanceDetails") or {}).get("instanceId")
    f = dict(f)
    f["arn"] = f["arn"].replace(fid, _ID)
    f["id"] = _ID
    f["createdAt"] = _CREATED
    f["updatedAt"] = _UPDATED
    f["service"] = dict(f["service"], eventFirstSeen=_FIRST, eventLastSeen=_LAST)
    raw = orjson.dumps(f).replace(b"%", b"%%")
    if inst:
        # Everywhere: instanceId, title and description name the instance.
        raw = raw.replace(inst.encode(), b"%(instance)b")
    # orjson escapes the control character in the sentinels as \u0001.
    for sentinel, slot in (
        (_ID, b"%(id)b"),
        (_CREATED, b"%(created)b"),
        (_UPDATED, b"%(updated)b"),
        (_FIRST, b"%(first)b"),
        (_LAST, b"%(last)b"),
    ):
        raw = raw.replace(orjson.dumps(sentinel)[1:-1], slot)
    return _Template(f["accountId"], raw + b"\n", bool(inst))


def _pools(seed: int) -> tuple[list[_Template], list[_Template]]:
    p = plan(POOL_SIZE, seed, crypto_ratio=0.25)
    benign: list[_Template] = []
    crypto: list[_Template] = []
    seen: set[str] = set()
    for d in p.deliveries:
        f = d.finding
        if f["id"] in seen or f["service"].get("additionalInfo", {}).get("sample"):
            continue
        seen.add(f["id"])
        t = _template(f)
        (crypto if seed_rule_matches(f["type"], float(f["severity"])) else benign).append(t)
    return benign, crypto


def _iso_ms(t: datetime) -> bytes:
    return (t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z").encode()


def write_jsonl_fast(
    path: Path | str,
    target_bytes: int,
    seed: int,
    crypto_ratio: float = 0.02,
    *,
    start: datetime | None = None,
    span: timedelta = timedelta(days=30),
) -> dict[str, Any]:
    """Write GuardDuty findings as JSON Lines to ``path`` until it holds at least ``target_bytes`` (it stops
    at the first line that reaches it). About ``crypto_ratio`` of the lines match the seed rule.

    Returns ``{"format", "path", "bytes", "lines", "crypto_lines", "seed", "crypto_ratio"}``."""
    rng = random.Random(f"{seed}:fast")
    benign, crypto = _pools(seed)
    accounts = sorted({t.account for t in benign + crypto})
    fleets: dict[str, list[bytes]] = {
        a: [("i-0" + hexstr(rng, 16)).encode() for _ in range(INSTANCES_PER_ACCOUNT)] for a in accounts
    }

    # Each active incident: (instance id, template restricted to that account).
    def new_incident() -> tuple[bytes, _Template]:
        t = rng.choice(crypto)
        return rng.choice(fleets[t.account]), t

    incidents = [new_incident() for _ in range(ACTIVE_INCIDENTS)]
    by_account_crypto = {a: [t for t in crypto if t.account == a] for a in accounts}

    t0 = (start or DEFAULT_START).astimezone(UTC)
    avg_line = sum(len(t.text) for t in benign) / max(len(benign), 1)
    expected_lines = max(int(target_bytes / avg_line), 1)
    step = span / expected_lines
    id_base = rng.getrandbits(128)
    id_mul = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: i -> i * mul is a bijection modulo 2**128
    mask = (1 << 128) - 1

    written = 0
    lines = 0
    crypto_lines = 0
    random_ = rng.random
    choice = rng.choice
    buf: list[bytes] = []
    buffered = 0
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:
        while written < target_bytes:
            now = t0 + step * lines
            if random_() < crypto_ratio:
                k = crypto_lines % ACTIVE_INCIDENTS
                if crypto_lines and crypto_lines % INCIDENT_LINES == 0:
                    incidents[k] = new_incident()
                instance, first = incidents[k]
                # Same victim, any of its account's crypto finding kinds.
                tpl = choice(by_account_crypto[first.account])
                crypto_lines += 1
            else:
                tpl = choice(benign)
                instance = choice(fleets[tpl.account])
            updated = _iso_ms(now)
            created = _iso_ms(now - timedelta(minutes=(lines % 360)))
            line = tpl.text % {
                b"id": b"%032x" % (((lines + 1) * id_mul + id_base) & mask),
                b"created": created,
                b"updated": updated,
                b"first": created[:-5] + b".000Z",
                b"last": updated[:-5] + b".000Z",
                b"instance": instance,
            }
            buf.append(line)
            n = len(line)
            buffered += n
            written += n
            lines += 1
            if buffered >= WRITE_BUFFER:
                fh.write(b"".join(buf))
                buf.clear()
                buffered = 0
        fh.write(b"".join(buf))
    return {
        "format": FORMAT_VERSION,
        "path": str(out),
        "bytes": written,
        "lines": lines,
        "crypto_lines": crypto_lines,
        "seed": seed,
        "crypto_ratio": crypto_ratio,
    }
