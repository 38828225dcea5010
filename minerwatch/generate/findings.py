"""Deterministic generator of realistic GuardDuty findings, with the ground truth of what is in them.

``generate_findings(n, seed)`` yields ``n`` deliveries (camelCase wire-format findings) in delivery order:
benign findings of many types over a fleet of instances, IAM principals, buckets, EKS clusters and Lambda
functions in four accounts; bursts of crypto-mining findings from a few compromised resources; recurring
findings re-sent with the same ``id``, a later ``updatedAt`` and a higher ``service.count``; exact repeated
deliveries (same ``id`` and ``updatedAt``); and a few AWS sample findings (``service.additionalInfo.sample``).
Everything is drawn from one ``random.Random(seed)``: the same arguments give the same findings.

``write_dataset`` writes them in every input shape MinerWatch reads (see ``minerwatch.generate.shapes``);
``write_jsonl_fast`` writes a large JSON Lines file for benchmarks (``minerwatch.generate.fast``).
"""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from minerwatch.generate.builders import Target, build_finding, build_sample, pick_target
from minerwatch.generate.fleet import Fleet, Instance, build_fleet, iso_ms
from minerwatch.generate.vocabulary import (
    BENIGN,
    CRYPTO,
    IMPACT_REPUTATION,
    MINER_BINARIES,
    MINING_POOLS,
    Kind,
    seed_rule_matches,
)

DEFAULT_START = datetime(2025, 3, 3, 0, 0, 0, tzinfo=UTC)
THROTTLE_WINDOW = timedelta(hours=2)  # the seed rule: 1 alert per instance per 2 hours


@dataclass(slots=True)
class Delivery:
    at: datetime
    """When the finding reached the consumer; the stream is sorted by it."""
    seq: int
    finding: dict[str, Any]
    duplicate: bool = False


@dataclass(slots=True)
class Plan:
    """Everything one call draws: the fleet, the deliveries in order and what they contain."""

    seed: int
    n: int
    crypto_ratio: float
    start: datetime
    fleet: Fleet
    deliveries: list[Delivery]
    compromised: list[dict[str, Any]] = field(default_factory=list)

    def findings(self) -> list[dict[str, Any]]:
        return [d.finding for d in self.deliveries]


def _parse(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z")


def _snapshot(base: dict[str, Any], updated: datetime, count: int) -> dict[str, Any]:
    """``base`` re-sent as GuardDuty does for a recurring finding: same id, later updatedAt, higher count."""
    f = copy.deepcopy(base)
    f["updatedAt"] = iso_ms(updated)
    svc = f["service"]
    svc["count"] = count
    first = _parse(svc["eventFirstSeen"])
    last = max(first, (updated - timedelta(minutes=3)).replace(microsecond=0))
    svc["eventLastSeen"] = iso_ms(last)
    return f


class _Builder:
    def __init__(self, n: int, seed: int, crypto_ratio: float, start: datetime) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        if not 0.0 <= crypto_ratio <= 1.0:
            raise ValueError("crypto_ratio must be within [0, 1]")
        self.rng = random.Random(seed)
        self.n = n
        self.seed = seed
        self.crypto_ratio = crypto_ratio
        self.start = start.astimezone(UTC)
        # Roughly 3 minutes per delivery, between one day and two months in all.
        self.span = timedelta(minutes=min(max(n * 3, 24 * 60), 60 * 24 * 60))
        n_instances = min(max(n // 20, 24), 2000)
        self.fleet = build_fleet(self.rng, n_instances, self.start)
        self.deliveries: list[Delivery] = []
        self.compromised: list[dict[str, Any]] = []
        self._seq = 0

    def _when(self, margin: timedelta = timedelta(0)) -> datetime:
        usable = max((self.span - margin).total_seconds(), 60.0)
        return self.start + timedelta(
            seconds=self.rng.uniform(0, usable), milliseconds=self.rng.randint(0, 999)
        )

    def _deliver(self, finding: dict[str, Any], duplicate: bool = False, at: datetime | None = None) -> None:
        if at is None:
            at = _parse(finding["updatedAt"]) + timedelta(seconds=self.rng.uniform(5, 300))
        self.deliveries.append(Delivery(at, self._seq, finding, duplicate))
        self._seq += 1

    def _occurrences(
        self, base: dict[str, Any], times: list[datetime], max_step: int
    ) -> list[dict[str, Any]]:
        out = [base]
        count = 1
        for t in times:
            count += self.rng.randint(1, max_step)
            out.append(_snapshot(base, t, count))
        return out

    # -- crypto incidents ---------------------------------------------------------------------------------
    def _victims(self) -> list[Target]:
        """A few compromised resources: a production instance with a public IP first, then a
        crypto-approved research instance and a dev one (the allowlist cases), then more production ones, a
        Lambda function and an EKS node."""
        rng = self.rng
        insts = self.fleet.instances
        public_prod = [
            i for i in insts if i.public_ip and i.environment in ("prod", "staging") and i.role != "windows"
        ] or insts
        approved = [i for i in insts if i.crypto_approved]
        dev = [i for i in insts if i.environment in ("dev", "test") and not i.crypto_approved]
        chosen: list[Instance] = [rng.choice(public_prod)]
        if approved:
            chosen.append(rng.choice(approved))
        if dev:
            chosen.append(rng.choice(dev))
        for _ in range(3):
            chosen.append(rng.choice(public_prod))
        unique = {i.instance_id: i for i in chosen}
        victims = [Target(i.account, i.region, instance=i) for i in unique.values()]
        fn = rng.choice(self.fleet.functions)
        victims.append(Target(fn.account, fn.region, function=fn))
        nodes = [i for i in insts if i.role == "k8s"]
        if nodes:
            node = rng.choice(nodes)
            cluster = next((c for c in self.fleet.clusters if c.account is node.account), None)
            victims.append(Target(node.account, node.region, instance=node, cluster=cluster))
        return victims

    def crypto(self, target: int) -> None:
        """Bursts of crypto findings until ``target`` seed-rule-matching deliveries exist (some bursts also
        bring non-matching Impact:EC2/BitcoinDomainRequest.Reputation findings)."""
        rng = self.rng
        victims = self._victims()
        matched = 0
        incident = 0
        while matched < target:
            # The first incidents visit every victim once, then victims are drawn again (re-compromise).
            v = victims[incident] if incident < len(victims) else rng.choice(victims)
            incident += 1
            duration = timedelta(hours=rng.uniform(6, 10) if incident == 1 else rng.uniform(1.5, 10))
            t0 = self._when(duration)
            pools = rng.sample(MINING_POOLS, rng.choice((1, 1, 2)))
            miner = rng.choice(MINER_BINARIES)
            kinds: list[tuple[Kind, tuple[str, str, int]]] = []
            if v.function is not None:
                kinds = [(CRYPTO["CryptoCurrency:Lambda/BitcoinTool.B"], p) for p in pools]
            else:
                runtime = v.cluster is not None or rng.random() < 0.4
                for p in pools:
                    kinds.append((CRYPTO["CryptoCurrency:EC2/BitcoinTool.B"], p))
                    if v.cluster is None and rng.random() < 0.8:
                        kinds.append((CRYPTO["CryptoCurrency:EC2/BitcoinTool.B!DNS"], p))
                    if runtime:
                        kinds.append((CRYPTO["CryptoCurrency:Runtime/BitcoinTool.B"], p))
                        kinds.append((CRYPTO["CryptoCurrency:Runtime/BitcoinTool.B!DNS"], p))
                if v.cluster is None and rng.random() < 0.35:
                    kinds.append((IMPACT_REPUTATION, pools[0]))
            # The first victim mines for hours (several throttle windows, a third of the crypto findings);
            # the first visit to every other victim gets an equal share of the rest so each kind of victim
            # shows up; later visits take what is left.
            budget = target - matched
            first_share = max(3, round(target * 0.35))
            if incident == 1:
                budget = min(budget, first_share)
            elif incident <= len(victims):
                budget = min(budget, max(3, -(-(target - first_share) // (len(victims) - 1))))
            drawn: list[tuple[dict[str, Any], bool]] = []
            for kind, pool in kinds:
                created = t0 + timedelta(minutes=rng.uniform(2, 25), milliseconds=rng.randint(0, 999))
                base = build_finding(
                    rng,
                    kind,
                    v,
                    created,
                    created - timedelta(minutes=rng.uniform(1, 8)),
                    pool=pool,
                    miner=miner,
                    # Runtime monitoring sees the pod; flow and DNS logs only see the node instance.
                    miner_pod=v.cluster is not None and kind.feature == "RuntimeMonitoring",
                )
                # GuardDuty re-sends an active finding every 15 minutes to an hour while the activity goes on.
                times: list[datetime] = []
                t = created
                while True:
                    t = t + timedelta(minutes=rng.uniform(15, 60), milliseconds=rng.randint(0, 999))
                    if t > t0 + duration:
                        break
                    times.append(t)
                is_match = seed_rule_matches(kind.type, kind.severity)
                drawn += [(f, is_match) for f in self._occurrences(base, times, 40)]
            # Cut the incident short where its budget runs out (it was noticed and stopped).
            drawn.sort(key=lambda x: (x[0]["updatedAt"], x[0]["id"]))
            kept: list[dict[str, Any]] = []
            used = 0
            for f, is_match in drawn:
                if is_match:
                    if used >= budget:
                        break
                    used += 1
                kept.append(f)
            matched += used
            ids: list[str] = []
            for f in kept:
                self._deliver(f)
                if f["id"] not in ids:
                    ids.append(f["id"])
            inst = v.instance
            self.compromised.append(
                {
                    "account_id": v.account.account_id,
                    "region": v.region,
                    "instance_id": inst.instance_id if inst else None,
                    "function": v.function.name if v.function else None,
                    "environment": inst.environment if inst else None,
                    "crypto_approved": inst.crypto_approved if inst else False,
                    "start": iso_ms(t0),
                    "finding_ids": ids,
                }
            )

    # -- benign background --------------------------------------------------------------------------------
    def benign(self, target: int) -> None:
        rng = self.rng
        weights = [k.weight for k in BENIGN]
        made = 0
        while made < target:
            kind = rng.choices(BENIGN, weights=weights)[0]
            tgt = pick_target(rng, self.fleet, kind)
            created = self._when()
            base = build_finding(rng, kind, tgt, created, created - timedelta(minutes=rng.uniform(1, 30)))
            # Brute force and probes recur for days; most other findings are seen once or a few times.
            recurring = kind.action in ("probe", "ssh_in", "rdp_in") and rng.random() < 0.6
            k = rng.randint(2, 8) if recurring else (1 if rng.random() < 0.75 else rng.randint(2, 4))
            k = min(k, target - made)
            times: list[datetime] = []
            t = created
            for _ in range(k - 1):
                t = t + timedelta(hours=rng.uniform(0.5, 8), milliseconds=rng.randint(0, 999))
                times.append(t)
            for f in self._occurrences(base, times, 25):
                self._deliver(f)
            made += k

    def samples(self, count: int) -> None:
        """AWS sample findings: created together, as by one CreateSampleFindings call."""
        if count <= 0:
            return
        acct = self.rng.choice(self.fleet.accounts)
        when = self._when()
        for i in range(count):
            self._deliver(
                build_sample(self.rng, acct, acct.regions[0], i, when + timedelta(milliseconds=7 * i))
            )

    def duplicates(self, count: int) -> None:
        """Exact repeated deliveries (at-least-once delivery, overlapping exports)."""
        rng = self.rng
        pool = [
            d for d in self.deliveries if not d.finding["service"].get("additionalInfo", {}).get("sample")
        ]
        if count <= 0 or not pool:
            return
        crypto = [d for d in pool if seed_rule_matches(d.finding["type"], d.finding["severity"])]
        chosen = ([rng.choice(crypto)] if crypto else []) + rng.sample(pool, min(count, len(pool)))
        for d in chosen[:count]:
            self._deliver(
                copy.deepcopy(d.finding),
                duplicate=True,
                at=d.at + timedelta(seconds=rng.uniform(60, 3 * 3600)),
            )


def plan(n: int, seed: int, *, crypto_ratio: float = 0.02, start: datetime | None = None) -> Plan:
    """Draw the whole dataset: exactly ``n`` deliveries sorted by delivery time."""
    b = _Builder(n, seed, crypto_ratio, start or DEFAULT_START)
    n_dup = max(1, round(n * 0.015)) if n >= 10 else 0
    n_samples = max(1, n // 400) if n >= 20 else 0
    n_crypto = round(n * crypto_ratio)
    if crypto_ratio > 0 and n >= 50:
        n_crypto = max(n_crypto, 1)
    n_crypto = min(n_crypto, n - n_dup - n_samples)
    if n_crypto > 0:
        b.crypto(n_crypto)
    b.samples(n_samples)
    b.benign(max(n - n_dup - len(b.deliveries), 0))
    b.duplicates(n - len(b.deliveries))
    b.deliveries.sort(key=lambda d: (d.at, d.seq))
    if len(b.deliveries) > n:
        # Only possible when crypto bursts alone exceed n (tiny n, high ratio): keep the earliest.
        b.deliveries = b.deliveries[:n]
    return Plan(seed, n, crypto_ratio, b.start, b.fleet, b.deliveries, b.compromised)


def generate_findings(
    n: int, seed: int, *, crypto_ratio: float = 0.02, start: datetime | None = None
) -> Iterator[dict[str, Any]]:
    """Yield ``n`` GuardDuty findings (camelCase wire format) in delivery order; deterministic.

    About ``crypto_ratio`` of them match the seed rule (``CryptoCurrency`` types); about 1.5 % are exact
    repeated deliveries; a few are AWS sample findings."""
    yield from plan(n, seed, crypto_ratio=crypto_ratio, start=start).findings()


def _key(f: dict[str, Any]) -> tuple[str, str]:
    return f["id"], f["updatedAt"]


def _is_sample(f: dict[str, Any]) -> bool:
    return bool(f.get("service", {}).get("additionalInfo", {}).get("sample"))


def _instance_id(f: dict[str, Any]) -> str | None:
    details = f.get("resource", {}).get("instanceDetails")
    return details.get("instanceId") if isinstance(details, dict) else None


def expected_alerts(findings: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The seed rule's alerts over these findings, computed directly from the design's semantics: unique
    deliveries (id, updatedAt), samples and allowlists left out, rows in (eventdate, id) order, a new alert
    per (accountid, instance_id) when no alert of that key started within the previous 2 hours."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for f in findings:
        if _is_sample(f) or not seed_rule_matches(f["type"], float(f["severity"])):
            continue
        rows.setdefault(_key(f), f)
    ordered = sorted(rows.values(), key=lambda f: (_parse(f["updatedAt"]), f["id"]))
    open_alert: dict[tuple[str, str | None], dict[str, Any]] = {}
    alerts: list[dict[str, Any]] = []
    for f in ordered:
        t = _parse(f["updatedAt"])
        key = (f["accountId"], _instance_id(f))
        cur = open_alert.get(key)
        if cur is None or t >= cur["_start"] + THROTTLE_WINDOW:
            cur = {
                "_start": t,
                "accountid": key[0],
                "instance_id": key[1],
                "first_seen": f["updatedAt"],
                "last_seen": f["updatedAt"],
                "event_count": 0,
                "finding_ids": set(),
            }
            open_alert[key] = cur
            alerts.append(cur)
        cur["event_count"] += 1
        cur["last_seen"] = f["updatedAt"]
        cur["finding_ids"].add(f["id"])
    return [
        {k: (sorted(v) if k == "finding_ids" else v) for k, v in a.items() if k != "_start"} for a in alerts
    ]


def ground_truth(p: Plan) -> dict[str, Any]:
    """What the deliveries contain, for tests and demos to check detection against."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    updates: dict[str, set[str]] = defaultdict(set)
    crypto_ids: set[str] = set()
    sample_ids: set[str] = set()
    sample_crypto: set[str] = set()
    impact_ids: set[str] = set()
    crypto_deliveries = 0
    by_instance: dict[str, set[str]] = defaultdict(set)
    for f in p.findings():
        seen[_key(f)] += 1
        updates[f["id"]].add(f["updatedAt"])
        match = seed_rule_matches(f["type"], float(f["severity"]))
        if _is_sample(f):
            sample_ids.add(f["id"])
            if match:
                sample_crypto.add(f["id"])
            continue
        if f["type"] == IMPACT_REPUTATION.type:
            impact_ids.add(f["id"])
        if match:
            crypto_ids.add(f["id"])
            crypto_deliveries += 1
            iid = _instance_id(f)
            if iid:
                by_instance[iid].add(f["id"])
    insts = p.fleet.instances
    crypto_unique = sum(1 for (fid, _), _c in seen.items() if fid in crypto_ids)
    return {
        "crypto_ids": sorted(crypto_ids),
        "crypto_deliveries": crypto_deliveries,
        "crypto_occurrences": crypto_unique,
        "crypto_ids_by_instance": {k: sorted(v) for k, v in sorted(by_instance.items())},
        "impact_bitcoin_domain_reputation_ids": sorted(impact_ids),
        "sample_ids": sorted(sample_ids),
        "sample_crypto_ids": sorted(sample_crypto),
        "duplicate_deliveries": sorted([k[0], k[1]] for k, c in seen.items() if c > 1),
        "recurring_ids": sorted(i for i, u in updates.items() if len(u) > 1),
        "dev_instances": sorted(i.instance_id for i in insts if i.environment in ("dev", "test")),
        "crypto_approved_instances": sorted(i.instance_id for i in insts if i.crypto_approved),
        "compromised": p.compromised,
        "accounts": {a.account_id: {"name": a.name, "regions": list(a.regions)} for a in p.fleet.accounts},
        "expected_alerts_seed_rule": expected_alerts(p.findings()),
        "totals": {
            "deliveries": len(p.deliveries),
            "unique_deliveries": len(seen),
            "unique_findings": len(updates),
            "instances": len(insts),
        },
    }


def generate_findings_cmd(
    n: int, seed: int, out: Path | str, shapes: Iterable[str] | None = None
) -> dict[str, Any]:
    """What ``minerwatch generate findings`` does: writes ``OUT/findings/`` (every requested shape) and
    ``OUT/manifest.json`` (files, counts and ground truth) and returns the manifest. Prints nothing.

    The manifest sits beside, not inside, the findings folder so ``minerwatch detect OUT/findings`` reads only
    findings."""
    from minerwatch.generate.shapes import ALL_SHAPES, write_dataset

    root = Path(out)
    return write_dataset(
        root / "findings",
        n,
        seed,
        shapes=tuple(shapes) if shapes else ALL_SHAPES,
        manifest_path=root / "manifest.json",
    )


def __getattr__(name: str) -> Any:
    # Re-exported lazily so ``findings`` stays the one import for the generator's API without an import cycle.
    if name in ("write_dataset", "ALL_SHAPES"):
        from minerwatch.generate import shapes

        return getattr(shapes, name)
    if name == "write_jsonl_fast":
        from minerwatch.generate.fast import write_jsonl_fast

        return write_jsonl_fast
    raise AttributeError(name)
