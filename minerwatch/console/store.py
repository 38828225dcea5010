"""The console's tables in the state store, and the alert queue query.

The console adds its own tables (users, sessions, API tokens, comments, case assignment, response approvals,
checklist notes) and indexes on ``alerts`` for the queue; it never changes what the alerting tables mean. Every
write is one short autocommitted statement or one small ``BEGIN IMMEDIATE`` transaction, so ``watch`` and
``detect`` writing the same file beside it wait at most milliseconds (WAL, busy timeout).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from minerwatch.alerting.state import StateStore
from minerwatch.respond.journal import Journal

ROLES: tuple[str, ...] = ("viewer", "analyst", "responder", "admin")
"""Each role may do everything the roles before it may."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, password TEXT NOT NULL, created REAL NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS console_sessions (
    token_hash TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS console_tokens (
    token_hash TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL, created REAL NOT NULL,
    last_used REAL
);
CREATE TABLE IF NOT EXISTS console_comments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, alert_id TEXT NOT NULL, user TEXT NOT NULL, time REAL NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_comments_by_alert ON console_comments (alert_id, seq);
CREATE TABLE IF NOT EXISTS console_cases (
    alert_id TEXT PRIMARY KEY, assignee TEXT, disposition TEXT, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS console_cases_by_assignee ON console_cases (assignee);
CREATE TABLE IF NOT EXISTS console_approvals (
    alert_id TEXT NOT NULL, step TEXT NOT NULL, requested_by TEXT NOT NULL, requested REAL NOT NULL,
    approved_by TEXT, approved REAL,
    PRIMARY KEY (alert_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS console_results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, user TEXT NOT NULL, time REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_alerts_first ON alerts (first_seen, alert_id);
CREATE INDEX IF NOT EXISTS console_alerts_last ON alerts (last_seen, alert_id);
CREATE INDEX IF NOT EXISTS console_alerts_updated ON alerts (updated_wall, alert_id);
CREATE INDEX IF NOT EXISTS console_alerts_status ON alerts (status, first_seen, alert_id);
CREATE INDEX IF NOT EXISTS console_alerts_rule ON alerts (rule_id, first_seen, alert_id);
CREATE INDEX IF NOT EXISTS console_alerts_severity
    ON alerts (json_extract(record, '$.severity'), first_seen, alert_id);
CREATE INDEX IF NOT EXISTS console_alerts_account
    ON alerts (json_extract(record, '$.key.accountid'), first_seen, alert_id);
"""

SORTS: dict[str, str] = {"first_seen": "first_seen", "last_seen": "last_seen", "updated": "updated_wall"}
"""Queue sort keys → column; each has an index ending in ``alert_id`` for keyset paging."""


def ensure_schema(store: StateStore) -> None:
    """Create the console's tables and indexes (idempotent), and the response journal's table."""
    store.db.executescript(_SCHEMA)
    Journal(store, "")


class Stores:
    """One :class:`StateStore` connection per worker thread (sqlite3 connections stay in their thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._all: list[StateStore] = []
        self._lock = threading.Lock()
        first = StateStore(self.path)
        ensure_schema(first)
        first.db.execute("PRAGMA busy_timeout=30000")
        self._local.store = first
        self._all.append(first)

    def get(self) -> StateStore:
        store = getattr(self._local, "store", None)
        if store is None:
            store = StateStore(self.path)
            store.db.execute("PRAGMA busy_timeout=30000")
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for s in self._all:
                try:
                    s.close()
                except Exception:  # a connection of a finished thread; closing is best effort
                    pass
            self._all.clear()


@contextmanager
def transaction(store: StateStore) -> Iterator[StateStore]:
    """A short write transaction; never held across anything slow."""
    store.begin()
    try:
        yield store
        store.commit()
    except BaseException:
        store.rollback()
        raise


# -- queue ------------------------------------------------------------------------------------------------


@dataclass
class QueueFilter:
    status: str | None = None
    severity: str | None = None
    rule: str | None = None
    account: str | None = None
    assignee: str | None = None
    since: str | None = None
    until: str | None = None
    text: str | None = None
    sort: str = "first_seen"
    order: str = "desc"
    after: str | None = None
    limit: int = 50
    extra: dict[str, Any] = field(default_factory=dict)

    def params(self) -> dict[str, str]:
        """The filter as query parameters (without the cursor)."""
        names = ("status", "severity", "rule", "account", "assignee", "since", "until", "text", "sort", "order")
        return {n: str(getattr(self, n)) for n in names if getattr(self, n) not in (None, "")}


def encode_cursor(sort_value: Any, alert_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort_value, alert_id])).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[Any, str] | None:
    try:
        value, alert_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError):
        return None
    if not isinstance(alert_id, str) or not isinstance(value, str | int | float):
        return None
    return value, alert_id


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def queue(store: StateStore, f: QueueFilter) -> tuple[list[dict[str, Any]], str | None]:
    """One page of alerts (each record plus ``assignee`` and ``disposition``) and the cursor of the next page.

    Keyset paging over (sort column, alert_id): a page costs the same wherever it is in 100,000 alerts."""
    column = SORTS.get(f.sort, "first_seen")
    desc = f.order != "asc"
    where: list[str] = []
    args: list[Any] = []
    if f.status:
        where.append("a.status = ?")
        args.append(f.status)
    if f.severity:
        where.append("json_extract(a.record, '$.severity') = ?")
        args.append(f.severity)
    if f.rule:
        where.append("a.rule_id = ?")
        args.append(f.rule)
    if f.account:
        where.append("json_extract(a.record, '$.key.accountid') = ?")
        args.append(f.account)
    if f.assignee:
        if f.assignee == "-":
            where.append("(c.assignee IS NULL OR c.assignee = '')")
        else:
            where.append("c.assignee = ?")
            args.append(f.assignee)
    if f.since:
        where.append("a.last_seen >= ?")
        args.append(f.since)
    if f.until:
        where.append("a.first_seen < ?")
        args.append(f.until)
    if f.text:
        where.append("(a.alert_id LIKE ? ESCAPE '\\' OR a.record LIKE ? ESCAPE '\\')")
        args += [_like(f.text), _like(f.text)]
    if f.after:
        cursor = decode_cursor(f.after)
        if cursor is not None:
            where.append(f"(a.{column}, a.alert_id) {'<' if desc else '>'} (?, ?)")
            args += list(cursor)
    direction = "DESC" if desc else "ASC"
    sql = (
        f"SELECT a.record, a.{column}, c.assignee, c.disposition FROM alerts a "  # noqa: S608 (column from SORTS)
        "LEFT JOIN console_cases c ON c.alert_id = a.alert_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY a.{column} {direction}, a.alert_id {direction} LIMIT ?"
    )
    limit = max(1, min(int(f.limit), 500))
    rows = store.db.execute(sql, [*args, limit + 1]).fetchall()
    out = []
    for record, _sort_value, assignee, disposition in rows[:limit]:
        alert = orjson.loads(record)
        alert["assignee"] = assignee
        alert["disposition"] = disposition
        out.append(alert)
    nxt = encode_cursor(rows[limit - 1][1], out[-1]["alert_id"]) if len(rows) > limit else None
    return out, nxt


def queue_version(store: StateStore) -> dict[str, Any]:
    """What changes when an alert is added or updated, or a case is assigned: polled by the queue page."""
    # MAX over indexed columns and the rowid: constant time however many alerts there are (COUNT(*) is not).
    row = store.db.execute("SELECT MAX(updated_wall), MAX(rowid) FROM alerts").fetchone()
    case = store.db.execute("SELECT MAX(updated) FROM console_cases").fetchone()
    return {"alerts_updated": row[0], "last_rowid": row[1], "cases_updated": case[0]}


def facets(store: StateStore) -> dict[str, list[str]]:
    """Values offered by the queue's filter menus (small sets: rules, statuses)."""
    # The runs table names every rule that ever made an alert, and stays small (DISTINCT over alerts would not).
    rules = [r[0] for r in store.db.execute("SELECT DISTINCT rule_id FROM runs WHERE rule_id IS NOT NULL ORDER BY 1")]
    return {"rules": rules, "statuses": ["new", "updated", "acknowledged", "closed"]}


# -- cases ------------------------------------------------------------------------------------------------


def case(store: StateStore, alert_id: str) -> dict[str, Any]:
    row = store.db.execute(
        "SELECT assignee, disposition, updated FROM console_cases WHERE alert_id=?", (alert_id,)
    ).fetchone()
    return (
        {"assignee": row[0], "disposition": row[1], "updated": row[2]}
        if row
        else {"assignee": None, "disposition": None, "updated": None}
    )


def set_case(store: StateStore, alert_id: str, **values: Any) -> None:
    """Set the assignee and/or disposition of a case (one statement)."""
    assignee = values.get("assignee")
    disposition = values.get("disposition")
    store.db.execute(
        "INSERT INTO console_cases (alert_id, assignee, disposition, updated) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (alert_id) DO UPDATE SET "
        + ", ".join(
            [f"{k}=excluded.{k}" for k in ("assignee", "disposition") if k in values] + ["updated=excluded.updated"]
        ),
        (alert_id, assignee, disposition, time.time()),
    )


def add_comment(store: StateStore, alert_id: str, user: str, text: str) -> int:
    cur = store.db.execute(
        "INSERT INTO console_comments (alert_id, user, time, text) VALUES (?, ?, ?, ?)",
        (alert_id, user, time.time(), text),
    )
    return int(cur.lastrowid or 0)


def comments(store: StateStore, alert_id: str) -> list[dict[str, Any]]:
    rows = store.db.execute(
        "SELECT seq, user, time, text FROM console_comments WHERE alert_id=? ORDER BY seq", (alert_id,)
    ).fetchall()
    return [{"seq": r[0], "user": r[1], "time": r[2], "text": r[3]} for r in rows]


# -- approvals of destructive response steps --------------------------------------------------------------


def approvals(store: StateStore, alert_id: str) -> dict[str, dict[str, Any]]:
    rows = store.db.execute(
        "SELECT step, requested_by, requested, approved_by, approved FROM console_approvals WHERE alert_id=?",
        (alert_id,),
    ).fetchall()
    cols = ("step", "requested_by", "requested", "approved_by", "approved")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def request_approval(store: StateStore, alert_id: str, step: str, user: str) -> None:
    """A fresh request (any earlier approval of the step is dropped: it approved another request)."""
    store.db.execute(
        "INSERT OR REPLACE INTO console_approvals VALUES (?, ?, ?, ?, NULL, NULL)", (alert_id, step, user, time.time())
    )


def approve(store: StateStore, alert_id: str, step: str, user: str) -> None:
    store.db.execute(
        "UPDATE console_approvals SET approved_by=?, approved=? WHERE alert_id=? AND step=?",
        (user, time.time(), alert_id, step),
    )


# -- results of checks run from the console (posture) ----------------------------------------------------


def save_result(store: StateStore, kind: str, user: str, data: dict[str, Any]) -> int:
    cur = store.db.execute(
        "INSERT INTO console_results (kind, user, time, data) VALUES (?, ?, ?, ?)",
        (kind, user, time.time(), orjson.dumps(data, default=str).decode()),
    )
    return int(cur.lastrowid or 0)


def latest_result(store: StateStore, kind: str) -> dict[str, Any] | None:
    row = store.db.execute(
        "SELECT user, time, data FROM console_results WHERE kind=? ORDER BY seq DESC LIMIT 1", (kind,)
    ).fetchone()
    return {"user": row[0], "time": row[1], "data": orjson.loads(row[2])} if row else None
