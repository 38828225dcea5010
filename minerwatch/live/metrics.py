"""Counters and gauges of a watch process, rendered in the Prometheus text exposition format.

The detection loop updates the counters from one thread and the HTTP thread reads them; plain integer and float
attributes are updated atomically under the GIL, and the latency samples, which are read as a whole, are guarded
by a lock. Delivery figures are read from the notification outbox in the state store when they are asked for
(:class:`OutboxStats`), so they also count what the dispatcher threads did.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

SAMPLES = 10_000
"""Latency samples kept for the quantiles (the most recent ones)."""


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _quantiles(values: list[float]) -> dict[str, float | None]:
    """Median and 99th percentile for JSON (None when there is no sample), with the count."""
    out: dict[str, float | None] = {q: (_quantile(values, float(q)) if values else None) for q in ("0.5", "0.99")}
    out["count"] = len(values)
    return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class Outbox:
    """The notification outbox as seen at one moment."""

    delivered: int = 0
    failures: int = 0
    """Failed delivery attempts (retried or parked)."""
    pending: int = 0
    parked: int = 0
    oldest_pending_seconds: float | None = None
    latency: list[float] = field(default_factory=list)
    """Arrival of the finding (when known, else the commit) to the end of the successful send, in seconds."""


class OutboxStats:
    """Reads ``notify_outbox`` of the state store on its own short-lived connection (any thread)."""

    def __init__(self, state_path: str, metrics: Metrics) -> None:
        self.state_path = state_path
        self.metrics = metrics

    def __call__(self) -> Outbox:
        out = Outbox()
        try:
            db = sqlite3.connect(self.state_path, timeout=5)
        except sqlite3.Error:
            return out
        try:
            rows = db.execute(
                "SELECT status, COUNT(*), COALESCE(SUM(attempts), 0), MIN(created) FROM notify_outbox GROUP BY status"
            ).fetchall()
            attempts = 0
            for status, n, tries, oldest in rows:
                attempts += int(tries)
                if status == "delivered":
                    out.delivered = int(n)
                elif status == "pending":
                    out.pending = int(n)
                    out.oldest_pending_seconds = round(max(0.0, time.time() - float(oldest)), 3)
                elif status == "parked":
                    out.parked = int(n)
            out.failures = attempts - out.delivered  # a delivered row's last attempt is its success
            recent = db.execute(
                "SELECT idem_key, created, delivered FROM notify_outbox WHERE delivered >= ? ORDER BY id DESC LIMIT ?",
                (self.metrics.started, SAMPLES),
            ).fetchall()
        except sqlite3.Error:  # no outbox table yet, or the store is busy: report what is known
            return out
        finally:
            db.close()
        arrivals = self.metrics.arrivals()
        out.latency = [float(done) - arrivals.get(key, float(created)) for key, created, done in recent]
        return out


@dataclass
class Metrics:
    source: str
    started: float = field(default_factory=time.time)
    records: int = 0
    """Records read: findings parsed, lines skipped by the prefilter, rejects."""
    findings: int = 0
    prefiltered: int = 0
    matches: int = 0
    duplicates: int = 0
    suppressed: int = 0
    alerts: int = 0
    """Alert records committed (an alert created or updated)."""
    alerts_new: int = 0
    rejects: int = 0
    held: int = 0
    last_poll: float = 0.0
    """Wall time of the last poll of the source (the loop's heartbeat)."""
    polls: int = 0
    """Polls of the source whose items have all been handled."""
    scans: int | None = None
    """Complete listings of a source that lists its input (S3 export, GuardDuty API); None for the others."""
    source_lag: float | None = None
    """Seconds from publication (e.g. SQS ``SentTimestamp``) to arrival, for the last unit that says when."""
    event_lag: float | None = None
    """Seconds from the last finding's ``updatedAt`` to its arrival."""
    outbox: OutboxStats | None = None
    _commit: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    _commit_total: list[float] = field(default_factory=lambda: [0, 0.0])
    _arrivals: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe_commit(self, seconds: float) -> None:
        with self._lock:
            self._commit.append(seconds)
            self._commit_total[0] += 1
            self._commit_total[1] += seconds

    def note_arrival(self, idem_key: str, wall: float) -> None:
        """When the finding behind this alert version arrived (for the arrival-to-delivery latency)."""
        with self._lock:
            self._arrivals.setdefault(idem_key, wall)
            while len(self._arrivals) > SAMPLES:
                self._arrivals.popitem(last=False)

    def arrivals(self) -> dict[str, float]:
        with self._lock:
            return dict(self._arrivals)

    def commit_latencies(self) -> list[float]:
        with self._lock:
            return list(self._commit)

    def snapshot(self) -> dict[str, Any]:
        box = self.outbox() if self.outbox is not None else None
        return {
            "source": self.source,
            "records": self.records,
            "findings": self.findings,
            "prefiltered": self.prefiltered,
            "matches": self.matches,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "alerts": self.alerts,
            "alerts_new": self.alerts_new,
            "rejects": self.rejects,
            "held": self.held,
            "polls": self.polls,
            "source_scans": self.scans,
            "source_lag_seconds": self.source_lag,
            "event_lag_seconds": self.event_lag,
            "commit_seconds": _quantiles(self.commit_latencies()),
            "deliveries": None if box is None else box.delivered,
            "delivery_failures": None if box is None else box.failures,
            "notifications_pending": None if box is None else box.pending,
            "notifications_parked": None if box is None else box.parked,
            "delivery_seconds": _quantiles(box.latency if box is not None else []),
        }

    def render(self) -> str:
        """The Prometheus text format (version 0.0.4)."""
        src = f'source="{_label(self.source)}"'
        out: list[str] = []

        def metric(name: str, kind: str, help_text: str, value: float | None) -> None:
            out.append(f"# HELP minerwatch_watch_{name} {help_text}")
            out.append(f"# TYPE minerwatch_watch_{name} {kind}")
            if value is not None:
                out.append(f"minerwatch_watch_{name}{{{src}}} {_num(value)}")

        def summary(name: str, help_text: str, values: list[float], count: float, total: float) -> None:
            out.append(f"# HELP minerwatch_watch_{name} {help_text}")
            out.append(f"# TYPE minerwatch_watch_{name} summary")
            for q in ("0.5", "0.99"):
                out.append(f'minerwatch_watch_{name}{{{src},quantile="{q}"}} {_num(_quantile(values, float(q)))}')
            out.append(f"minerwatch_watch_{name}_count{{{src}}} {_num(count)}")
            out.append(f"minerwatch_watch_{name}_sum{{{src}}} {_num(total)}")

        metric("records_total", "counter", "Records read: findings, lines skipped by the prefilter, rejects.",
               self.records)  # fmt: skip
        metric("findings_total", "counter", "Findings parsed from the source.", self.findings)
        metric("prefiltered_total", "counter", "Lines skipped unparsed because they cannot match.", self.prefiltered)
        metric("matches_total", "counter", "Findings for which the rule's where-clause is true.", self.matches)
        metric("duplicates_total", "counter", "Matched deliveries already seen (same id and updatedAt).",
               self.duplicates)  # fmt: skip
        metric("suppressed_total", "counter", "Matched findings suppressed (allowlist, AWS samples).", self.suppressed)
        metric("alerts_total", "counter", "Alert records committed (alerts created or updated).", self.alerts)
        metric("alerts_new_total", "counter", "Alerts created.", self.alerts_new)
        metric("rejects_total", "counter", "Input that could not be processed (see the rejects file).", self.rejects)
        metric("held_records", "gauge", "Matched findings held for event-time ordering.", self.held)
        metric("source_lag_seconds", "gauge", "Publication to arrival, last unit that carries a publication time.",
               self.source_lag)  # fmt: skip
        metric("event_lag_seconds", "gauge", "The last finding's updatedAt to its arrival.", self.event_lag)
        metric("polls_total", "counter", "Polls of the source whose items have been handled.", self.polls)
        metric("source_scans_total", "counter", "Complete listings of the input (S3 export, GuardDuty API).",
               self.scans)  # fmt: skip
        metric("last_poll_timestamp_seconds", "gauge", "When the source was last polled.", self.last_poll or None)
        metric("start_time_seconds", "gauge", "When this process started.", self.started)
        with self._lock:
            count, total = self._commit_total
        summary("commit_seconds", "Arrival to commit of matched findings.", self.commit_latencies(), count, total)
        if self.outbox is not None:
            box = self.outbox()
            metric("deliveries_total", "counter", "Notifications delivered (all destinations).", box.delivered)
            metric("delivery_failures_total", "counter", "Notification delivery attempts that failed.", box.failures)
            metric("notifications_pending", "gauge", "Notifications waiting to be delivered.", box.pending)
            metric("notifications_parked", "gauge", "Notifications given up on (see `minerwatch outbox`).",
                   box.parked)  # fmt: skip
            metric("notification_oldest_pending_seconds", "gauge", "Age of the oldest notification waiting.",
                   box.oldest_pending_seconds)  # fmt: skip
            summary("delivery_seconds", "Arrival of the finding to the end of its notification's send.",
                    box.latency, len(box.latency), sum(box.latency))  # fmt: skip
        return "\n".join(out) + "\n"


def _num(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
