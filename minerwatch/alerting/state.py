"""The SQLite state store: seen deliveries, alerts, suppressions, pending output lines, runs.

One file. Every batch of effects is one transaction, so a run killed at any moment leaves the store at a batch
boundary and the next run over the same input finishes the job.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from minerwatch.alerting.alerts import Alert, iso, parse_iso
from minerwatch.errors import StateError

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (
    rule_id TEXT NOT NULL, finding_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (rule_id, finding_id, updated_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    key_json TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    status TEXT NOT NULL,
    created_run INTEGER NOT NULL,
    latest_time TEXT,
    latest_id TEXT,
    record TEXT NOT NULL,
    updated_wall REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts (rule_id, key_json, first_seen);
CREATE TABLE IF NOT EXISTS suppressions (
    rule_id TEXT NOT NULL, finding_id TEXT NOT NULL, updated_at TEXT NOT NULL,
    eventdate TEXT NOT NULL, reason TEXT NOT NULL, source TEXT, key_json TEXT,
    PRIMARY KEY (rule_id, finding_id, updated_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS out_pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, out_path TEXT NOT NULL, line TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, rule_id TEXT, started REAL, finished REAL,
    inputs TEXT, stats TEXT
);
CREATE TABLE IF NOT EXISTS enrichments (
    alert_id TEXT NOT NULL, section TEXT NOT NULL, data TEXT NOT NULL, updated_wall REAL NOT NULL,
    PRIMARY KEY (alert_id, section)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, actor TEXT, alert_id TEXT, action TEXT NOT NULL,
    request TEXT, aws_request_id TEXT, result TEXT
);
"""


class AmbiguousAlertId(StateError):
    """An alert id prefix that starts more than one alert's id."""

    SHOWN = 10

    def __init__(self, prefix: str, candidates: list[str], path: str | Path | None = None) -> None:
        self.prefix = prefix
        self.candidates = candidates
        shown = ", ".join(candidates[: self.SHOWN])
        more = f" and {len(candidates) - self.SHOWN} more" if len(candidates) > self.SHOWN else ""
        where = f" in {path}" if path else ""
        super().__init__(
            f"alert id {prefix!r} is ambiguous: {len(candidates)} alerts{where} start with it: {shown}{more}; "
            "give more of the id"
        )

    def format(self) -> str:
        return self.message


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            row = self.db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StateError(f"state schema version {row[0]} is not {SCHEMA_VERSION}", file=self.path)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open state store: {exc}", file=self.path) from None
        self._in_tx = False

    # -- transactions ---------------------------------------------------------------------------------
    def begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        if self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self.db.execute("ROLLBACK")
            self._in_tx = False

    def close(self) -> None:
        self.rollback()
        self.db.close()

    # -- deliveries -----------------------------------------------------------------------------------
    def seen(self, rule_id: str, finding_id: str, updated_at: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM seen WHERE rule_id=? AND finding_id=? AND updated_at=?", (rule_id, finding_id, updated_at)
        ).fetchone()
        return row is not None

    def mark_seen(self, rule_id: str, finding_id: str, updated_at: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?)", (rule_id, finding_id, updated_at))

    def add_suppression(
        self,
        rule_id: str,
        finding_id: str,
        updated_at: str,
        eventdate: datetime,
        reason: str,
        source: str | None,
        key: dict[str, Any],
    ) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO suppressions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rule_id, finding_id, updated_at, iso(eventdate), reason, source, orjson.dumps(key).decode()),
        )

    def suppressions(self, rule_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT rule_id, finding_id, updated_at, eventdate, reason, source, key_json FROM suppressions"
        args: tuple[Any, ...] = ()
        if rule_id:
            sql += " WHERE rule_id=?"
            args = (rule_id,)
        cols = ("rule_id", "finding_id", "updated_at", "eventdate", "reason", "source", "key")
        rows = [dict(zip(cols, r, strict=True)) for r in self.db.execute(sql + " ORDER BY eventdate", args)]
        for r in rows:
            r["key"] = orjson.loads(r["key"])
        return rows

    # -- alerts ---------------------------------------------------------------------------------------
    def alerts_for_key(self, rule_id: str, key_json: str) -> list[tuple[Alert, int]]:
        """The key's alerts by first_seen, each with the run that created it."""
        rows = self.db.execute(
            "SELECT record, latest_time, latest_id, created_run FROM alerts WHERE rule_id=? AND key_json=? "
            "ORDER BY first_seen",
            (rule_id, key_json),
        ).fetchall()
        return [(_alert(r[:3]), r[3]) for r in rows]

    def save_alert(self, alert: Alert, key_json: str, run_id: int) -> dict[str, Any]:
        record = alert.to_json()
        latest_time, latest_id = (iso(alert.latest[0]), alert.latest[1]) if alert.latest else (None, None)
        self.db.execute(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET "
            "first_seen=excluded.first_seen, last_seen=excluded.last_seen, status=excluded.status, "
            "latest_time=excluded.latest_time, latest_id=excluded.latest_id, record=excluded.record, "
            "updated_wall=excluded.updated_wall",
            (
                alert.alert_id,
                alert.rule_id,
                key_json,
                record["first_seen"],
                record["last_seen"],
                alert.status,
                run_id,
                latest_time,
                latest_id,
                orjson.dumps(record).decode(),
                time.time(),
            ),
        )
        return record

    def get_alert(self, alert_id: str) -> dict[str, Any] | None:
        """The alert ``alert_id`` or the only one whose id starts with it (``None`` when none does); raises
        :class:`AmbiguousAlertId` when several do."""
        row = self.db.execute("SELECT record FROM alerts WHERE alert_id=?", (alert_id,)).fetchone()
        if row is None:
            # Accept an unambiguous prefix, as people copy ids from tables.
            rows = self.db.execute(
                "SELECT alert_id, record FROM alerts WHERE alert_id LIKE ? ESCAPE '\\' ORDER BY alert_id",
                (alert_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",),
            ).fetchall()
            if len(rows) > 1:
                raise AmbiguousAlertId(alert_id, [r[0] for r in rows], self.path)
            row = (rows[0][1],) if rows else None
        return orjson.loads(row[0]) if row else None

    def list_alerts(self, rule_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT record FROM alerts WHERE 1=1"
        args: list[Any] = []
        if rule_id:
            sql += " AND rule_id=?"
            args.append(rule_id)
        if status:
            sql += " AND status=?"
            args.append(status)
        return [orjson.loads(r[0]) for r in self.db.execute(sql + " ORDER BY first_seen, alert_id", args)]

    def set_status(self, alert_id: str, status: str) -> dict[str, Any] | None:
        record = self.get_alert(alert_id)
        if record is None:
            return None
        record["status"] = status
        self.db.execute(
            "UPDATE alerts SET status=?, record=?, updated_wall=? WHERE alert_id=?",
            (status, orjson.dumps(record).decode(), time.time(), record["alert_id"]),
        )
        return record

    # -- enrichment sections attached to alerts ------------------------------------------------------------
    def save_enrichment(self, alert_id: str, section: str, data: dict[str, Any]) -> None:
        """Replace one enrichment section of an alert (its own transaction unless one is open)."""
        self.db.execute(
            "INSERT OR REPLACE INTO enrichments VALUES (?, ?, ?, ?)",
            (alert_id, section, orjson.dumps(data, default=str).decode(), time.time()),
        )

    def enrichments(self, alert_id: str) -> dict[str, dict[str, Any]]:
        """Every enrichment section of an alert, in the order they were written."""
        rows = self.db.execute(
            "SELECT section, data FROM enrichments WHERE alert_id=? ORDER BY updated_wall, section", (alert_id,)
        ).fetchall()
        return {section: orjson.loads(data) for section, data in rows}

    # -- action audit log -----------------------------------------------------------------------------
    def audit(
        self,
        action: str,
        *,
        alert_id: str | None = None,
        actor: str | None = None,
        request: Any = None,
        aws_request_id: str | None = None,
        result: Any = None,
        at: float | None = None,
    ) -> int:
        """Append one entry to the audit log (its own transaction unless one is open); returns its ``seq``.

        ``request`` and ``result`` are stored as JSON."""
        cur = self.db.execute(
            "INSERT INTO audit (time, actor, alert_id, action, request, aws_request_id, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                time.time() if at is None else at,
                actor,
                alert_id,
                action,
                None if request is None else orjson.dumps(request, default=str).decode(),
                aws_request_id,
                None if result is None else orjson.dumps(result, default=str).decode(),
            ),
        )
        return int(cur.lastrowid or 0)

    def audit_log(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        """Audit entries in the order they were written (of one alert, or all)."""
        sql = "SELECT seq, time, actor, alert_id, action, request, aws_request_id, result FROM audit"
        args: tuple[Any, ...] = ()
        if alert_id is not None:
            sql += " WHERE alert_id=?"
            args = (alert_id,)
        cols = ("seq", "time", "actor", "alert_id", "action", "request", "aws_request_id", "result")
        rows = [dict(zip(cols, r, strict=True)) for r in self.db.execute(sql + " ORDER BY seq", args)]
        for r in rows:
            for k in ("request", "result"):
                if r[k] is not None:
                    r[k] = orjson.loads(r[k])
        return rows

    # -- output lines written after commit (at least once) --------------------------------------------
    def queue_out(self, out_path: str, lines: Iterable[str]) -> None:
        self.db.executemany("INSERT INTO out_pending (out_path, line) VALUES (?, ?)", [(out_path, x) for x in lines])

    def pending_out(self, out_path: str) -> Iterator[tuple[int, str]]:
        yield from self.db.execute("SELECT seq, line FROM out_pending WHERE out_path=? ORDER BY seq", (out_path,))

    def clear_out(self, out_path: str, upto_seq: int) -> None:
        self.db.execute("DELETE FROM out_pending WHERE out_path=? AND seq<=?", (out_path, upto_seq))

    # -- runs -----------------------------------------------------------------------------------------
    def start_run(self, rule_id: str, inputs: list[str]) -> int:
        """A new run, or the unfinished last run of this rule over the same inputs (resumed after a crash)."""
        last = self.db.execute(
            "SELECT run_id, finished, inputs FROM runs WHERE rule_id=? ORDER BY run_id DESC LIMIT 1", (rule_id,)
        ).fetchone()
        if last and last[1] is None and orjson.loads(last[2]) == inputs:
            return int(last[0])
        cur = self.db.execute(
            "INSERT INTO runs (rule_id, started, inputs) VALUES (?, ?, ?)",
            (rule_id, time.time(), orjson.dumps(inputs).decode()),
        )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, stats: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE runs SET finished=?, stats=? WHERE run_id=?", (time.time(), orjson.dumps(stats).decode(), run_id)
        )


def _alert(row: tuple[str, str | None, str | None]) -> Alert:
    record, latest_time, latest_id = row
    latest = (parse_iso(latest_time), latest_id or "") if latest_time else None
    return Alert.from_json(orjson.loads(record), latest)
