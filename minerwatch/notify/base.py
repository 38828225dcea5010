"""What every destination shares: the delivery unit, the error that says whether to retry, alert facts for
messages, idempotency keys, and the recommended actions of the alert's rule.

Delivery events:

``trigger``      the first notification of an alert to a destination
``update``       the alert gathered more events (only destinations with ``updates``)
``acknowledge``  the alert was acknowledged (only destinations with ``status_changes``)
``resolve``      the alert was closed (only destinations with ``status_changes``)
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from minerwatch.errors import MinerWatchError
from minerwatch.rules.loader import load_rule
from minerwatch.rules.model import Rule
from minerwatch.rules.shipped import shipped_rules

EVENTS = ("trigger", "update", "acknowledge", "resolve")
STATUS_EVENTS = {"acknowledged": "acknowledge", "closed": "resolve"}


@dataclass(frozen=True)
class Delivery:
    """One attempt to send one alert version to one destination."""

    row_id: int
    destination: str
    alert_id: str
    version: str
    key: str
    """Idempotency key: ``<alert_id>:<version>``; the same on every retry and every duplicate."""
    event: str
    record: dict[str, Any]
    attempt: int = 1


class DeliveryError(Exception):
    """A send failed. ``transient`` failures are retried with backoff; the others park the row at once."""

    def __init__(self, message: str, *, transient: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.retry_after = retry_after


class Sender(Protocol):
    def send(self, delivery: Delivery) -> None:
        """Deliver or raise ``DeliveryError``."""

    def secret_values(self) -> list[str]:
        """Secret values this sender has resolved, to scrub them from any error text."""

    def close(self) -> None: ...


def version_of(record: dict[str, Any]) -> str:
    """``v<event_count>``, with the status appended once an alert is acknowledged or closed."""
    version = f"v{int(record.get('event_count') or 0)}"
    status = str(record.get("status") or "")
    return f"{version}:{status}" if status in STATUS_EVENTS else version


def idempotency_key(record: dict[str, Any]) -> str:
    return f"{record['alert_id']}:{version_of(record)}"


# -- text --------------------------------------------------------------------------------------------------


def clean(value: Any) -> str:
    """One line of display text: control and format characters (newlines, bidi overrides, NUL) become spaces."""
    text = "" if value is None else str(value)
    return "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text).strip()


def cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, ending in … when something was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


@dataclass(frozen=True)
class AlertFacts:
    """What a person needs first, pulled from an alert record (every value may be attacker-influenced)."""

    alert_id: str
    rule_id: str
    rule_name: str
    severity: str
    priority: str
    status: str
    account: str
    instance: str
    region: str
    first_seen: str
    last_seen: str
    count: int
    types: list[tuple[str, int]]
    title: str
    description: str
    evidence: list[tuple[str, str]]
    """(label, value) pairs: mining pool address, port, domain, AMI, tags — whatever the rule selected."""


_EVIDENCE_FIELDS = (
    ("mining_pool_ip", "mining pool IP"),
    ("mining_port", "port"),
    ("mining_domain", "domain"),
    ("domain", "domain"),
    ("remote_ip", "remote IP"),
    ("ami_id", "AMI"),
)


def _tags_text(tags: Any) -> str:
    if isinstance(tags, dict):
        return ", ".join(f"{k}={v}" for k, v in tags.items())
    if isinstance(tags, list):
        pairs = [t for t in tags if isinstance(t, dict)]
        return ", ".join(f"{t.get('key', t.get('Key'))}={t.get('value', t.get('Value'))}" for t in pairs)
    return "" if tags is None else str(tags)


def facts(record: dict[str, Any]) -> AlertFacts:
    key = record.get("key") or {}
    fields = record.get("fields") or {}
    lowered = {str(k).lower(): v for k, v in fields.items()} if isinstance(fields, dict) else {}
    counts: dict[str, int] = {}
    for g in record.get("groups") or []:
        if isinstance(g, dict) and g.get("type"):
            counts[str(g["type"])] = counts.get(str(g["type"]), 0) + int(g.get("count") or 0)
    if not counts and lowered.get("type"):
        counts[str(lowered["type"])] = int(record.get("event_count") or 0)
    types = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    evidence: list[tuple[str, str]] = []
    for name, label in _EVIDENCE_FIELDS:
        value = lowered.get(name)
        if value not in (None, "", []):
            evidence.append((label, clean(value)))
    if lowered.get("tags"):
        evidence.append(("tags", clean(_tags_text(lowered["tags"]))))

    def pick(*names: str) -> str:
        for n in names:
            v = key.get(n) if isinstance(key, dict) else None
            if v is None:
                v = lowered.get(n)
            if v not in (None, ""):
                return clean(v)
        return "-"

    return AlertFacts(
        alert_id=clean(record.get("alert_id")),
        rule_id=clean(record.get("rule_id")),
        rule_name=clean(record.get("rule_name") or record.get("rule_id")),
        severity=clean(record.get("severity") or "unknown").lower(),
        priority=clean(record.get("priority") or "-"),
        status=clean(record.get("status")),
        account=pick("accountid", "account_id", "account"),
        instance=pick("instance_id", "resource_id", "instance"),
        region=pick("region"),
        first_seen=clean(record.get("first_seen")),
        last_seen=clean(record.get("last_seen")),
        count=int(record.get("event_count") or 0),
        types=[(clean(t), n) for t, n in types],
        title=clean(lowered.get("title")),
        description=clean(lowered.get("description")),
        evidence=evidence,
    )


def summary_line(f: AlertFacts, event: str = "trigger") -> str:
    """``[critical/P1] Rule name: CryptoCurrency:EC2/BitcoinTool.B on i-0abc in 1111/us-east-1 (14 events)``."""
    what = f.types[0][0] if f.types else f.title or f.rule_id
    prefix = {"resolve": "Closed: ", "acknowledge": "Acknowledged: ", "update": "Updated: "}.get(event, "")
    return (
        f"{prefix}[{f.severity}/{f.priority}] {f.rule_name}: {what} on {f.instance} in {f.account}/{f.region} "
        f"({f.count} event{'s' if f.count != 1 else ''})"
    )


# -- recommended actions from the alert's rule --------------------------------------------------------------


class RuleActions:
    """rule_id → the rule document's recommended actions (shipped rules, plus extra documents or folders).

    Loaded on first use; a rule that cannot be loaded only loses its actions in messages, never the message.
    """

    def __init__(self, extra_paths: Iterable[str | Path] = (), rules: Iterable[Rule] | None = None) -> None:
        self._extra = [Path(p) for p in extra_paths]
        self._given = list(rules or [])
        self._by_id: dict[str, list[str]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[str]]:
        by_id: dict[str, list[str]] = {}
        paths: list[Path] = list(shipped_rules())
        for p in self._extra:
            paths.extend(sorted(p.glob("*.md")) if p.is_dir() else [p])
        for path in paths:
            try:
                rule = load_rule(path)
            except MinerWatchError:
                continue
            by_id.setdefault(rule.id, rule.recommended_actions)
        for rule in self._given:  # rules handed over by the caller win: they are the ones running
            by_id[rule.id] = rule.recommended_actions
        return by_id

    def __call__(self, rule_id: str) -> list[str]:
        with self._lock:
            if self._by_id is None:
                self._by_id = self._load()
            return list(self._by_id.get(rule_id, []))
