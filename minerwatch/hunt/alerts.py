"""Hunt hits as alerts, through a hunting rule's throttle and the state store (the same ``Throttler`` and
``StateStore`` as ``minerwatch detect``).

Each ``(entity, evidence, kind, indicator)`` of a hunt is one matched row:

``eventdate``     the match's first_seen (event time, so re-running a hunt gives the same alerts)
``accountid``, ``resource_id``     the entity's account and name (instance id, ENI, address or resource)
``instance_id``   the instance when known; ``entity_type``, ``evidence``, ``kind``, ``indicator``, ``source``
``records``, ``bytes``, ``first_seen``, ``last_seen``, ``values``     how much, when, what matched

The row's throttle key is the rule's (``Throttle key`` in its Alert Configuration; the shipped hunting rule
uses ``accountid, resource_id``). Rows go in (eventdate, id) order; a row whose key has an alert whose
window holds its eventdate joins it, else it opens one (DESIGN §6). Each alert's ``groups`` are per
``(accountid, resource_id, evidence, kind, indicator)``.

A row's id is a hash of rule, account, entity, evidence, kind and indicator; its delivery version is its
last_seen and record count. A hunt re-run over the same logs therefore changes nothing; one over more logs
updates the alerts of the hits that grew and opens alerts for new ones.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from minerwatch.alerting.state import StateStore
from minerwatch.alerting.throttle import Throttler
from minerwatch.hunt.model import Entity, HuntResult, Match, iso
from minerwatch.rules.model import Rule

GROUP_COLUMNS = ("accountid", "resource_id", "evidence", "kind", "indicator")


@dataclass
class HuntAlertStats:
    rows: int = 0
    """Hit rows placed into alerts in this run."""
    duplicates: int = 0
    """Hit rows already placed by an earlier run (same hit, same last_seen and count)."""
    untimed: int = 0
    """Hit rows without a time (none in valid logs), left out."""
    alerts_new: int = 0
    alerts_updated: int = 0
    alert_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def hit_rows(result: HuntResult) -> list[tuple[datetime | None, str, str, dict[str, Any]]]:
    """``(eventdate, hit id material, delivery version, row)`` for every match of every entity."""
    out = []
    for e in result.entities:
        for m in e.sorted_matches():
            out.append((m.first_seen, _material(e, m), f"{iso(m.last_seen)}|{m.records}", _row(e, m)))
    return out


def _material(e: Entity, m: Match) -> str:
    return orjson.dumps([e.account, e.entity, m.evidence, m.kind, m.indicator]).decode()


def _row(e: Entity, m: Match) -> dict[str, Any]:
    return {
        "eventdate": iso(m.first_seen),
        "accountid": e.account,
        "resource_id": e.entity,
        "entity_type": e.entity_type,
        "instance_id": e.instance_id,
        "evidence": m.evidence,
        "kind": m.kind,
        "indicator": m.indicator,
        "source": m.source,
        "records": m.records,
        "bytes": m.bytes,
        "first_seen": iso(m.first_seen),
        "last_seen": iso(m.last_seen),
        "values": m.values.sorted(),
        "interfaces": e.interfaces.sorted(),
        "addresses": e.addresses.sorted(),
    }


def open_alerts(
    result: HuntResult,
    rule: Rule,
    state: str | Path,
    inputs: list[str],
    out: str | None = None,
) -> HuntAlertStats:
    """Place every hit row of ``result`` into ``rule``'s alerts in the state store at ``state``; with ``out``,
    append each alert created or updated as one JSON line (written after the transaction commits)."""
    stats = HuntAlertStats()
    store = StateStore(str(state))
    try:
        run_id = store.start_run(rule.id, inputs)
        throttle = rule.alert.throttle
        header = {
            "rule_name": rule.name,
            "severity": rule.severity,
            "priority": rule.priority,
            "mitre": rule.to_json()["mitre"],
        }
        throttler = Throttler(
            store, rule.id, timedelta(seconds=throttle.window_seconds), header, run_id, throttle.count
        )
        rows = []
        for eventdate, material, version, row in hit_rows(result):
            if eventdate is None:
                stats.untimed += 1
                continue
            hit_id = "hunt-" + hashlib.sha256(f"{rule.id}\n{material}".encode()).hexdigest()[:20]
            rows.append((eventdate, hit_id, version, row))
        rows.sort(key=lambda r: (r[0], r[1]))
        store.begin()
        for eventdate, hit_id, version, row in rows:
            if store.seen(rule.id, hit_id, version):
                stats.duplicates += 1
                continue
            store.mark_seen(rule.id, hit_id, version)
            key = {name: row.get(name) for name in throttle.key}
            groups = {name: row.get(name) for name in GROUP_COLUMNS}
            throttler.place(key, eventdate, hit_id, row, groups)
            stats.rows += 1
        throttler.flush(out)
        store.commit()
        if out:
            _flush_out(store, out)
        stats.alerts_new = len(throttler.new_ids)
        stats.alerts_updated = len(throttler.updated_ids - throttler.new_ids)
        stats.alert_ids = sorted(throttler.new_ids | throttler.updated_ids)
        store.finish_run(run_id, {"hunt": result.stats.to_json(), "alerts": stats.to_json()})
    except BaseException:
        store.rollback()
        raise
    finally:
        store.close()
    return stats


def _flush_out(store: StateStore, out: str) -> None:
    pending = list(store.pending_out(out))
    if not pending:
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for _, line in pending))
        fh.flush()
        os.fsync(fh.fileno())
    store.clear_out(out, pending[-1][0])
