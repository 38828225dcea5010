"""The notification outbox: alert versions waiting for, or done with, each destination.

Rows are written by ``enqueue`` inside the same SQLite transaction that commits the alert records, so an alert and
its notifications commit or vanish together: nothing is announced that was not stored, nothing stored goes
unannounced. A ``Dispatcher`` delivers them later (at least once):

* one row per (destination, alert version), keyed ``<alert_id>:<version>`` — the idempotency key a receiver uses
  to drop the duplicates that at-least-once delivery implies;
* a failure is retried with exponential backoff and jitter; after ``max_attempts`` (or at once, for errors that
  retrying cannot fix) the row is *parked*: kept with its last error, shown by ``minerwatch outbox list``, sent
  again by ``minerwatch outbox retry``;
* each destination is its own lane (own thread, own SQLite connection): a destination that is down or slow never
  holds up detection or the other destinations;
* within a lane, rows of one alert go out in order (a resolve never overtakes its trigger);
* a row being sent carries a short lease; after a crash the lease runs out and the next dispatcher sends it.

Row status: ``pending`` → ``delivered`` | ``parked``; ``superseded`` when a newer version of the same alert for the
same destination replaced it before it went out.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from minerwatch.alerting.state import StateStore
from minerwatch.notify.base import (
    STATUS_EVENTS,
    Delivery,
    DeliveryError,
    RuleActions,
    Sender,
    idempotency_key,
    version_of,
)
from minerwatch.notify.config import AnyDestination, DestinationConfig, NotifyConfig, scrub
from minerwatch.rules.model import Rule

log = logging.getLogger("minerwatch.notify")
CLAIM_CHUNK = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    version TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    event TEXT NOT NULL,
    alert_status TEXT NOT NULL,
    record TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    lease_until REAL,
    lease_owner TEXT,
    last_error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    delivered REAL,
    UNIQUE (destination, idem_key)
);
CREATE INDEX IF NOT EXISTS notify_outbox_due ON notify_outbox (destination, status, next_attempt);
CREATE INDEX IF NOT EXISTS notify_outbox_alert ON notify_outbox (alert_id, destination);
"""
_COLUMNS = (
    "id, destination, alert_id, version, idem_key, event, alert_status, record, status, attempts, next_attempt, "
    "lease_until, lease_owner, last_error, created, updated, delivered"
)
_schema_ready: weakref.WeakSet[StateStore] = weakref.WeakSet()


def ensure_schema(db: sqlite3.Connection) -> None:
    # statement by statement: executescript would commit the caller's open transaction
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _store_schema(store: StateStore) -> None:
    if store not in _schema_ready:
        ensure_schema(store.db)
        _schema_ready.add(store)


@dataclass
class OutboxRow:
    id: int
    destination: str
    alert_id: str
    version: str
    key: str
    event: str
    alert_status: str
    record: dict[str, Any]
    status: str
    attempts: int
    next_attempt: float
    lease_until: float | None
    lease_owner: str | None
    last_error: str | None
    created: float
    updated: float
    delivered: float | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> OutboxRow:
        values = list(row)
        values[7] = orjson.loads(values[7])
        return cls(*values)

    def to_json(self, with_record: bool = False) -> dict[str, Any]:
        out = asdict(self)
        if not with_record:
            out.pop("record")
        return out


# -- planning: which destinations get what, written in the caller's transaction -------------------------------


def _plan(db: sqlite3.Connection, dest: DestinationConfig, record: dict[str, Any]) -> tuple[str, list[int]] | None:
    """The event to queue for ``dest`` (or None) and the ids of older rows it makes obsolete."""
    if not dest.enabled or not dest.route.matches(record):
        return None
    rows = db.execute(
        "SELECT id, event, status, alert_status FROM notify_outbox "
        "WHERE alert_id=? AND destination=? AND status!='superseded' ORDER BY id",
        (record["alert_id"], dest.name),
    ).fetchall()
    waiting = [r for r in rows if r[2] in ("pending", "parked")]
    triggers = [r for r in rows if r[1] == "trigger"]
    announced = any(r[2] == "delivered" for r in triggers)
    status = str(record.get("status") or "new")
    if status not in STATUS_EVENTS:
        if not announced:
            # Nothing reached this destination yet: one trigger carrying the latest state replaces what waits.
            return "trigger", [r[0] for r in waiting]
        if dest.updates:
            return "update", [r[0] for r in waiting if r[1] == "update"]
        return None
    if not triggers:
        return None  # never announced here: nothing to acknowledge or resolve
    if rows and rows[-1][3] == status:
        # Same status, more events (a closed alert that keeps receiving findings). PagerDuty would re-open the
        # incident on a trigger, so it gets nothing; the others get an update if they take them.
        if dest.updates and getattr(dest, "type", "") != "pagerduty":
            return "update", [r[0] for r in waiting if r[1] == "update"]
        return None
    if not dest.status_changes:
        return None
    return STATUS_EVENTS[status], [r[0] for r in waiting if r[1] != "trigger"]


def enqueue(store: StateStore, records: Iterable[dict[str, Any]], config: NotifyConfig) -> list[int]:
    """Queue the notifications these alert records call for; returns the new row ids.

    Meant for ``DetectOptions.in_transaction``: it writes through ``store.db`` inside the caller's transaction (or
    its own, when none is open). Queuing the same alert version twice adds nothing.
    """
    if not config.destinations:
        return []
    _store_schema(store)
    own_tx = not store.db.in_transaction
    if own_tx:
        store.begin()
    try:
        ids = _enqueue(store.db, records, config)
    except BaseException:
        if own_tx:
            store.rollback()
        raise
    if own_tx:
        store.commit()
    return ids


def _enqueue(db: sqlite3.Connection, records: Iterable[dict[str, Any]], config: NotifyConfig) -> list[int]:
    now = time.time()
    ids: list[int] = []
    for record in records:
        version, key = version_of(record), idempotency_key(record)
        blob: str | None = None
        for dest in config.destinations:
            plan = _plan(db, dest, record)
            if plan is None:
                continue
            event, obsolete = plan
            blob = blob or orjson.dumps(record).decode()
            cur = db.execute(
                "INSERT OR IGNORE INTO notify_outbox (destination, alert_id, version, idem_key, event, alert_status, "
                "record, status, next_attempt, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)",
                (dest.name, record["alert_id"], version, key, event, str(record.get("status")), blob, now, now),
            )
            if cur.rowcount != 1:
                continue  # this version was queued before (a rerun over the same input)
            new_id = int(cur.lastrowid or 0)
            ids.append(new_id)
            if obsolete:
                db.executemany(
                    "UPDATE notify_outbox SET status='superseded', updated=?, lease_until=NULL, "
                    "last_error=COALESCE(last_error || ' | ', '') || ? WHERE id=? AND status IN ('pending', 'parked')",
                    [(now, f"superseded by #{new_id}", rid) for rid in obsolete],
                )
    return ids


def transaction_hook(config: NotifyConfig) -> Callable[[StateStore, list[dict[str, Any]]], None]:
    """A ready ``DetectOptions.in_transaction`` callable."""

    def hook(store: StateStore, records: list[dict[str, Any]]) -> None:
        enqueue(store, records, config)

    return hook


# -- reading and re-queuing ------------------------------------------------------------------------------------


def open_outbox(state_path: str | Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the state store with the outbox tables in place. ``read_only`` (for listing) opens the file
    read-only and creates nothing: a store without an outbox gets an empty one in a temporary table."""
    if read_only:
        store = StateStore(state_path, read_only=True)  # checks the file (0 bytes, schema version) too
        store.verify()  # an empty outbox must mean "nothing queued", never "unreadable"
        db = store.db
        db.execute("PRAGMA query_only=OFF")  # the file stays read-only (mode=ro); the temporary tables need writes
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='notify_outbox'").fetchone() is None:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
        return db
    StateStore(state_path).close()  # creates the file and the alerting tables, checks the schema version
    db = sqlite3.connect(str(state_path), isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=30000")
    ensure_schema(db)
    return db


def list_rows(
    db: sqlite3.Connection,
    *,
    status: str | Iterable[str] | None = None,
    destination: str | None = None,
    alert_id: str | None = None,
    ids: Iterable[int] | None = None,
    limit: int | None = None,
) -> list[OutboxRow]:
    sql, args = f"SELECT {_COLUMNS} FROM notify_outbox WHERE 1=1", []  # noqa: S608 (fixed column list)
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        sql += f" AND status IN ({','.join('?' * len(statuses))})"
        args += statuses
    if destination is not None:
        sql += " AND destination=?"
        args.append(destination)
    if alert_id is not None:
        sql += " AND alert_id=?"
        args.append(alert_id)
    if ids is not None:
        id_list = list(ids)
        if not id_list:
            return []
        sql += f" AND id IN ({','.join('?' * len(id_list))})"
        args += id_list
    sql += " ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [OutboxRow.from_row(r) for r in db.execute(sql, args)]


def summary(db: sqlite3.Connection, now: float | None = None) -> dict[str, dict[str, Any]]:
    """Per destination: row counts by status and the age of the oldest pending row (for health checks)."""
    now = time.time() if now is None else now
    out: dict[str, dict[str, Any]] = {}
    for dest, status, n, oldest in db.execute(
        "SELECT destination, status, COUNT(*), MIN(created) FROM notify_outbox GROUP BY destination, status"
    ):
        entry = out.setdefault(
            dest, {"pending": 0, "delivered": 0, "parked": 0, "superseded": 0, "oldest_pending_seconds": None}
        )
        entry[status] = n
        if status == "pending":
            entry["oldest_pending_seconds"] = round(max(0.0, now - oldest), 3)
    return out


def requeue(db: sqlite3.Connection, target: str | int | None = None) -> dict[str, list[int]]:
    """Make parked rows (and pending rows waiting out a backoff) due now, with a fresh attempt budget.

    ``target``: a row id (``12`` or ``#12``), a destination name, an alert id, or None / ``"all"`` for every row.
    A parked row whose alert has since been delivered in a newer version to the same destination is marked
    superseded instead: sending it now would only roll the receiver back.
    """
    where, args = "status IN ('parked', 'pending')", []
    text = str(target) if target is not None else "all"
    if text.lstrip("#").isdigit():
        where += " AND id=?"
        args.append(int(text.lstrip("#")))
    elif text != "all":
        where += " AND (destination=? OR alert_id=?)"
        args += [text, text]
    now = time.time()
    result: dict[str, list[int]] = {"requeued": [], "superseded": [], "hurried": []}
    db.execute("BEGIN IMMEDIATE")
    try:
        for rid, dest, alert_id, status in db.execute(
            f"SELECT id, destination, alert_id, status FROM notify_outbox WHERE {where} ORDER BY id", args  # noqa: S608
        ).fetchall():
            if status == "pending":
                db.execute("UPDATE notify_outbox SET next_attempt=0, updated=? WHERE id=?", (now, rid))
                result["hurried"].append(rid)
                continue
            newer = db.execute(
                "SELECT id FROM notify_outbox WHERE destination=? AND alert_id=? AND id>? AND status='delivered' "
                "LIMIT 1",
                (dest, alert_id, rid),
            ).fetchone()
            if newer:
                db.execute(
                    "UPDATE notify_outbox SET status='superseded', updated=?, "
                    "last_error=COALESCE(last_error || ' | ', '') || ? WHERE id=?",
                    (now, f"superseded by delivered #{newer[0]}", rid),
                )
                result["superseded"].append(rid)
            else:
                db.execute(
                    "UPDATE notify_outbox SET status='pending', attempts=0, next_attempt=0, lease_until=NULL, "
                    "updated=? WHERE id=?",
                    (now, rid),
                )
                result["requeued"].append(rid)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # SQLite may have rolled back already (disk full): keep the real error
            db.execute("ROLLBACK")
        raise
    return result


def release_dead_leases(db: sqlite3.Connection) -> list[int]:
    """Rows leased by a dispatcher process of this host that no longer runs are due again at once (after a
    crash the next dispatcher sends them without waiting for the lease to run out)."""
    host = socket.gethostname()
    dead: list[str] = []
    for (owner,) in db.execute(
        "SELECT DISTINCT lease_owner FROM notify_outbox WHERE status='pending' AND lease_owner IS NOT NULL"
    ).fetchall():
        owner_host, _, pid = str(owner).rpartition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            dead.append(owner)
    released: list[int] = []
    for owner in dead:
        ids = [r[0] for r in db.execute("SELECT id FROM notify_outbox WHERE lease_owner=?", (owner,))]
        db.execute("UPDATE notify_outbox SET lease_until=NULL, lease_owner=NULL WHERE lease_owner=?", (owner,))
        released += ids
    return released


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- delivery --------------------------------------------------------------------------------------------------


def make_sender(dest: AnyDestination, actions: Callable[[str], list[str]], config: NotifyConfig) -> Sender:
    from minerwatch.notify.email import EmailSender
    from minerwatch.notify.pagerduty import PagerDutySender
    from minerwatch.notify.slack import SlackSender
    from minerwatch.notify.sns import SnsSender
    from minerwatch.notify.webhook import WebhookSender

    link = config.alert_link
    if dest.type == "slack":
        return SlackSender(dest, actions, link)
    if dest.type == "webhook":
        return WebhookSender(dest)
    if dest.type == "pagerduty":
        return PagerDutySender(dest, actions, link)
    if dest.type == "sns":
        return SnsSender(dest)
    if dest.type == "securityhub":
        from minerwatch.notify.securityhub import SecurityHubSender

        return SecurityHubSender(dest)
    return EmailSender(dest, actions, link)


@dataclass
class LaneStats:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    parked: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class DeliveryStats:
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    parked: int = 0
    destinations: dict[str, LaneStats] = field(default_factory=dict)

    def add(self, name: str, lane: LaneStats) -> None:
        self.destinations[name] = lane
        self.attempted += lane.attempted
        self.delivered += lane.delivered
        self.retrying += lane.retrying
        self.parked += lane.parked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def merge(self, other: DeliveryStats) -> None:
        """Add the counts of a later pass (per destination too)."""
        for name, lane in other.destinations.items():
            mine = self.destinations.setdefault(name, LaneStats())
            mine.attempted += lane.attempted
            mine.delivered += lane.delivered
            mine.retrying += lane.retrying
            mine.parked += lane.parked
            mine.errors += lane.errors
        self.attempted += other.attempted
        self.delivered += other.delivered
        self.retrying += other.retrying
        self.parked += other.parked


class _Lane:
    """One destination: its sender, its connection, its rows in order."""

    def __init__(self, dispatcher: Dispatcher, dest: AnyDestination) -> None:
        self.d = dispatcher
        self.dest = dest
        self.retry = dispatcher.config.retry_for(dest)
        self.lease = float(dest.timeout) + 5
        """Seconds a claimed row is reserved per row in its claim (each send takes at most ``timeout``)."""
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self._sender: Sender | None = None
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = open_outbox(self.d.state_path)
        return self._db

    @property
    def sender(self) -> Sender:
        if self._sender is None:
            self._sender = make_sender(self.dest, self.d.actions, self.d.config)
        return self._sender

    def _claim(self, now: float, ids: set[int] | None, alert_id: str | None, limit: int) -> list[OutboxRow]:
        db = self.db
        sql = (
            f"SELECT {_COLUMNS} FROM notify_outbox o WHERE destination=? AND status='pending' "  # noqa: S608
            "AND next_attempt<=? AND (lease_until IS NULL OR lease_until<=?) "
            "AND NOT EXISTS (SELECT 1 FROM notify_outbox e WHERE e.destination=o.destination "
            "AND e.alert_id=o.alert_id AND e.status='pending' AND e.id<o.id)"
        )
        args: list[Any] = [self.dest.name, now, now]
        if alert_id is not None:
            sql += " AND alert_id=?"
            args.append(alert_id)
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids)) or 'NULL'})"
            args += sorted(ids)
        sql += f" ORDER BY id LIMIT {int(limit)}"
        db.execute("BEGIN IMMEDIATE")
        try:
            claimed = [OutboxRow.from_row(r) for r in db.execute(sql, args)]
            db.executemany(
                "UPDATE notify_outbox SET lease_until=?, lease_owner=? WHERE id=?",
                [(now + self.lease * len(claimed), self.d.owner, r.id) for r in claimed],
            )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full): keep the real error
                db.execute("ROLLBACK")
            raise
        return claimed

    def pass_once(self, ids: set[int] | None = None, alert_id: str | None = None) -> LaneStats:
        """Send this destination's due rows (at most ``batch``), a few claimed at a time so that every lease
        outlives the sends it covers; stop at the first failure."""
        stats = LaneStats()
        with self.lock:
            while stats.attempted < self.d.batch and not self.d.stopping.is_set():
                chunk = getattr(self.sender, "batch_size", CLAIM_CHUNK)  # senders with send_batch take more
                claimed = self._claim(self.d.clock(), ids, alert_id, min(chunk, self.d.batch - stats.attempted))
                if not claimed:
                    break
                if not self._send_all(claimed, stats):
                    break
        return stats

    def _send_all(self, claimed: list[OutboxRow], stats: LaneStats) -> bool:
        if hasattr(self.sender, "send_batch"):
            return self._send_batch(claimed, stats)
        for i, row in enumerate(claimed):
            if self.d.stopping.is_set():
                self._release(claimed[i:])
                return False
            stats.attempted += 1
            delivery = Delivery(
                row.id, row.destination, row.alert_id, row.version, row.key, row.event, row.record, row.attempts + 1
            )
            try:
                self.sender.send(delivery)
            except DeliveryError as exc:
                self._failed(row, exc, stats)
                # The destination is failing: leave its other rows for later instead of waiting on each.
                self._release(claimed[i + 1 :])
                return False
            except Exception as exc:  # a bug in rendering must not kill the lane; park the row, keep going
                internal = DeliveryError(f"internal error: {exc.__class__.__name__}: {exc}", transient=False)
                self._failed(row, internal, stats)
            else:
                self._delivered(row)
                stats.delivered += 1
        return True

    def _send_batch(self, claimed: list[OutboxRow], stats: LaneStats) -> bool:
        """One call for the whole claim (Security Hub imports up to 100 findings at once); each row's own result."""
        deliveries = [
            Delivery(r.id, r.destination, r.alert_id, r.version, r.key, r.event, r.record, r.attempts + 1)
            for r in claimed
        ]
        stats.attempted += len(claimed)
        try:
            results = self.sender.send_batch(deliveries)  # type: ignore[attr-defined]
        except Exception as exc:  # a bug in rendering must not kill the lane; park the rows
            internal = DeliveryError(f"internal error: {exc.__class__.__name__}: {exc}", transient=False)
            results = [internal] * len(claimed)
        ok = True
        for row, error in zip(claimed, results, strict=True):
            if error is None:
                self._delivered(row)
                stats.delivered += 1
            else:
                self._failed(row, error, stats)
                ok = ok and not error.transient
        return ok

    def _release(self, rows_: list[OutboxRow]) -> None:
        if rows_:
            self.db.executemany(
                "UPDATE notify_outbox SET lease_until=NULL, lease_owner=NULL WHERE id=?", [(r.id,) for r in rows_]
            )

    def _delivered(self, row: OutboxRow) -> None:
        now = self.d.clock()
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "UPDATE notify_outbox SET status='delivered', attempts=attempts+1, lease_until=NULL, lease_owner=NULL, "
                "delivered=?, updated=? WHERE id=?",
                (now, now, row.id),
            )
            if row.event == "trigger":
                # A newer trigger queued while this one was in flight is now an update (or nothing, for
                # destinations without updates): the destination has been told about the alert.
                later = db.execute(
                    "SELECT id FROM notify_outbox WHERE destination=? AND alert_id=? AND id>? AND status='pending' "
                    "AND event='trigger'",
                    (row.destination, row.alert_id, row.id),
                ).fetchall()
                for (lid,) in later:
                    if self.dest.updates:
                        db.execute("UPDATE notify_outbox SET event='update', updated=? WHERE id=?", (now, lid))
                    else:
                        db.execute(
                            "UPDATE notify_outbox SET status='superseded', updated=?, last_error=? WHERE id=?",
                            (now, f"superseded: #{row.id} was delivered first", lid),
                        )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full): keep the real error
                db.execute("ROLLBACK")
            raise

    def _failed(self, row: OutboxRow, exc: DeliveryError, stats: LaneStats) -> None:
        now = self.d.clock()
        attempts = row.attempts + 1
        error = scrub(exc.message, self.sender.secret_values())
        stats.errors.append(f"#{row.id}: {error}")
        if not exc.transient or attempts >= self.retry.max_attempts:
            status, next_attempt = "parked", row.next_attempt
            stats.parked += 1
            why = "not retryable" if not exc.transient else f"after {attempts} attempts"
            log.warning("notification #%d to %s parked (%s): %s", row.id, row.destination, why, error)
        else:
            delay = self.retry.delay(attempts, self.d.rand())
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, self.retry.max_delay))
            status, next_attempt = "pending", now + delay
            stats.retrying += 1
            log.info("notification #%d to %s failed (attempt %d), retry in %.1fs: %s",
                     row.id, row.destination, attempts, delay, error)
        self.db.execute(
            "UPDATE notify_outbox SET status=CASE WHEN status='superseded' THEN status ELSE ? END, attempts=?, "
            "next_attempt=?, lease_until=NULL, lease_owner=NULL, last_error=?, updated=? WHERE id=?",
            (status, attempts, next_attempt, error, now, row.id),
        )

    def next_due(self) -> float | None:
        """When the earliest pending row of this destination may go (a lease held elsewhere counts)."""
        with self.lock:
            row = self.db.execute(
                "SELECT MIN(MAX(next_attempt, COALESCE(lease_until, 0))) FROM notify_outbox "
                "WHERE destination=? AND status='pending'",
                (self.dest.name,),
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def loop(self, poll_interval: float) -> None:
        while not self.d.stopping.is_set():
            try:
                stats = self.pass_once()
            except sqlite3.Error as exc:  # a locked or busy store: try again shortly, never die
                log.warning("outbox lane %s: %s", self.dest.name, exc)
                stats = LaneStats(errors=[str(exc)])
            except Exception:  # a lane must outlive any bug; the rows stay in the outbox
                log.exception("outbox lane %s failed; retrying", self.dest.name)
                stats = LaneStats(errors=["internal error"])
            if stats.delivered and not stats.errors:
                continue  # there may be more
            due = self.next_due()
            wait = poll_interval if due is None else min(poll_interval, max(0.0, due - self.d.clock()))
            self.wake.wait(max(wait, 0.05))
            self.wake.clear()

    def close(self) -> None:
        with self.lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None
            if self._db is not None:
                self._db.close()
                self._db = None


class Dispatcher:
    """Delivers the outbox of one state store to the configured destinations.

    ``deliver_due()`` makes one pass over every destination (concurrently) and returns what happened;
    ``run(stop_event)`` keeps delivering until the event is set, one thread per destination; ``wake()`` tells it
    new rows are there. ``clock`` and ``rand`` are injectable so backoff can be tested without waiting.
    """

    def __init__(
        self,
        state_path: str | Path,
        config: NotifyConfig,
        *,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        rules: Iterable[Rule] | None = None,
        batch: int = 100,
    ) -> None:
        self.state_path = str(state_path)
        self.config = config
        self.clock = clock
        self.rand = rand
        self.batch = batch
        self.actions = RuleActions(config.rule_paths, rules)
        self.stopping = threading.Event()
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        db = open_outbox(self.state_path)
        try:
            release_dead_leases(db)
        finally:
            db.close()
        self.lanes = {d.name: _Lane(self, d) for d in config.destinations if d.enabled}

    def deliver_due(
        self, *, destination: str | None = None, ids: Iterable[int] | None = None, alert_id: str | None = None
    ) -> DeliveryStats:
        """One pass: send every due row (optionally only some), each destination in its own thread."""
        lanes = [lane for name, lane in self.lanes.items() if destination is None or name == destination]
        wanted = set(ids) if ids is not None else None
        stats = DeliveryStats()
        if not lanes:
            return stats
        with ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="minerwatch-notify") as pool:
            futures = {lane.dest.name: pool.submit(lane.pass_once, wanted, alert_id) for lane in lanes}
        for name, fut in futures.items():
            stats.add(name, fut.result())
        return stats

    def drain(self, timeout: float, ids: Iterable[int] | None = None) -> tuple[DeliveryStats, int]:
        """Deliver until none of ``ids`` (every row, when ``None``) is pending any more, waiting for retries that
        come due, for at most ``timeout`` seconds. Every due row goes out, so an older row of the same alert does
        not hold one of ``ids`` back. Returns the stats of all passes and how many rows are still pending (they
        stay queued for the next ``watch`` or ``outbox deliver``)."""
        deadline = time.monotonic() + max(0.0, timeout)
        wanted = sorted(set(ids)) if ids is not None else None
        total = DeliveryStats()
        self.stopping.clear()  # a dispatcher whose run() ended is usable again
        while True:
            total.merge(self.deliver_due())
            pending, due = self._pending(wanted)
            left = deadline - time.monotonic()
            if not pending or left <= 0 or self.stopping.is_set():
                return total, pending
            self.stopping.wait(min(left, max(0.05, (due or 0.0) - self.clock())))

    def _pending(self, ids: list[int] | None) -> tuple[int, float | None]:
        """How many of ``ids`` (of all rows, when ``None``) are pending, and when the first may go."""
        sql = "SELECT COUNT(*), MIN(MAX(next_attempt, COALESCE(lease_until, 0))) FROM notify_outbox "
        sql += "WHERE status='pending' AND destination IN (" + ",".join("?" * len(self.lanes)) + ")"
        args: list[Any] = list(self.lanes)
        if ids is not None:
            sql += f" AND id IN ({','.join('?' * len(ids)) or 'NULL'})"
            args += ids
        db = open_outbox(self.state_path)
        try:
            count, due = db.execute(sql, args).fetchone()
        finally:
            db.close()
        return int(count), None if due is None else float(due)

    def retry(self, target: str | int | None = None) -> dict[str, list[int]]:
        """``requeue`` parked rows (a row id, destination, alert id or everything) and wake the lanes."""
        db = open_outbox(self.state_path)
        try:
            result = requeue(db, target)
        finally:
            db.close()
        self.wake()
        return result

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per-destination counts and oldest pending age, for health checks and metrics."""
        db = open_outbox(self.state_path)
        try:
            return summary(db)
        finally:
            db.close()

    def wake(self) -> None:
        for lane in self.lanes.values():
            lane.wake.set()

    def run(self, stop_event: threading.Event, poll_interval: float = 1.0) -> None:
        """Deliver until ``stop_event`` is set (blocks; run it in a thread)."""
        self.stopping.clear()
        threads = [
            threading.Thread(target=lane.loop, args=(poll_interval,), name=f"minerwatch-notify-{name}", daemon=True)
            for name, lane in self.lanes.items()
        ]
        for t in threads:
            t.start()
        stop_event.wait()
        self.stopping.set()
        self.wake()
        for t in threads:
            t.join()

    def close(self) -> None:
        self.stopping.set()
        self.wake()
        for lane in self.lanes.values():
            lane.close()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
