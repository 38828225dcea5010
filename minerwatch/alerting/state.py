"""The SQLite state store: seen deliveries, alerts, suppressions, pending output lines, runs.

One file. Every batch of effects is one transaction, so a run killed at any moment leaves the store at a batch
boundary and the next run over the same input finishes the job.

Several processes may write one store at once (two ``detect`` runs, ``watch`` beside ``detect``, the console).
Writes take SQLite's write lock (``BEGIN IMMEDIATE``) for one batch, and every decision that depends on stored
alerts or deliveries is made inside that transaction. A writer that caches alerts between transactions
(the throttler) registers with :meth:`StateStore.on_foreign_changes`: when a transaction begins after another
connection committed (``PRAGMA data_version`` moved), it is told which alert keys changed. Triggers stamp every
insert or update of an alert with the next value of the store's change counter (``meta.alerts_seq``), whoever
writes it, so a writer that knows nothing of the cache (plain SQL included) still invalidates it.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from minerwatch.alerting.alerts import Alert, iso, parse_iso
from minerwatch.errors import StateError

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 60.0
"""Seconds a statement waits for another writer's transaction (each holds the lock for one batch at most)."""

# Deliveries are keyed by time first: a batch run writes them in time order, so its inserts go to the last few pages
# of the table. Led by the (random) finding id they went to a different page each, and each commit wrote as many
# pages as it marked deliveries (at 20 % crypto findings, half of a run's time). Columns in key order: SQLite
# 3.40's quick_check misreads a WITHOUT ROWID table whose key is in another order (NULL values reported).
_SEEN = """
CREATE TABLE IF NOT EXISTS seen (
    rule_id TEXT NOT NULL, updated_at TEXT NOT NULL, finding_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, updated_at, finding_id)
) WITHOUT ROWID;
"""
_SUPPRESSIONS = """
CREATE TABLE IF NOT EXISTS suppressions (
    rule_id TEXT NOT NULL, updated_at TEXT NOT NULL, finding_id TEXT NOT NULL,
    eventdate TEXT NOT NULL, reason TEXT NOT NULL, source TEXT, key_json TEXT,
    PRIMARY KEY (rule_id, updated_at, finding_id)
) WITHOUT ROWID;
"""
_REKEYED = {"seen": _SEEN, "suppressions": _SUPPRESSIONS}
"""Tables whose key once led with the finding id, and their definition now."""
_DELIVERY_KEY = ["rule_id", "updated_at", "finding_id"]

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + _SEEN
    + """
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
    updated_wall REAL NOT NULL,
    change_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_by_key ON alerts (rule_id, key_json, first_seen);
"""
    + _SUPPRESSIONS
    + """CREATE TABLE IF NOT EXISTS out_pending (
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
)

# The alerts change counter (see the module docstring). Deleting an alert bumps ``alerts_reset``: its key is gone
# with the row, so caches are dropped whole.
_CHANGE_TRACKING = """
INSERT OR IGNORE INTO meta VALUES ('alerts_seq', '0');
INSERT OR IGNORE INTO meta VALUES ('alerts_reset', '0');
CREATE INDEX IF NOT EXISTS alerts_by_change ON alerts (change_seq);
CREATE TRIGGER IF NOT EXISTS alerts_changed_ins AFTER INSERT ON alerts BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'alerts_seq';
    UPDATE alerts SET change_seq = (SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'alerts_seq')
        WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER IF NOT EXISTS alerts_changed_upd AFTER UPDATE OF
    rule_id, key_json, first_seen, last_seen, status, created_run, latest_time, latest_id, record ON alerts BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'alerts_seq';
    UPDATE alerts SET change_seq = (SELECT CAST(value AS INTEGER) FROM meta WHERE name = 'alerts_seq')
        WHERE rowid = NEW.rowid;
END;
CREATE TRIGGER IF NOT EXISTS alerts_changed_del AFTER DELETE ON alerts BEGIN
    UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE name = 'alerts_reset';
END;
"""

ForeignChanges = Callable[[set[tuple[str, str]] | None], None]
"""Told the (rule_id, key_json) of alerts another connection changed, or None when every cached alert is stale."""


last_opened: str | None = None
"""The path of the store this process opened last: named by an error that escapes without one."""


def state_error(exc: BaseException, path: str, doing: str) -> StateError:
    """One line for a failed state store operation: what was being done, and SQLite's or the OS's reason."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in reason:
        reason += f" (another process held the write lock for over {BUSY_TIMEOUT:.0f} s)"
    return StateError(f"{doing}: {reason}", file=path)


def _statements(script: str) -> Iterator[str]:
    """The statements of a script one by one (``executescript`` would commit the caller's transaction)."""
    pending = ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def _create_file(path: str) -> None:
    """Create a store file whole: built aside and linked into place, so that no process ever finds a 0-byte store
    (which would be a truncated one) while another is creating it. When two create it at once, one link wins."""
    tmp = f"{path}.{os.getpid()}.new"
    db = sqlite3.connect(tmp, isolation_level=None)
    try:
        # Nobody else sees this file yet: no journal, and one fsync of the whole file below instead of several.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN")
        for statement in _statements(_SCHEMA + _CHANGE_TRACKING):
            db.execute(statement)
        db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process created it first: use theirs
    except OSError:  # a file system without hard links: a rename is atomic too, but replaces a racing creator's file
        if not os.path.exists(path):
            os.replace(tmp, path)
    finally:
        for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)


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


_SEEN_PER_STATEMENT = 300
"""Deliveries per INSERT in :meth:`StateStore.mark_seen_many` (three parameters each, far below SQLite's limit)."""


class StateStore:
    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """Open (and create, unless ``read_only``) the store at ``path``.

        A read-only store is opened with SQLite's ``mode=ro``: nothing is created or migrated, and a file the
        user may only read can still be listed. A read-only look at a missing file sees an empty store."""
        global last_opened
        self.path = last_opened = str(path)
        self.read_only = read_only
        self._in_tx = False
        self._listeners: list[ForeignChanges] = []
        exists = self.path != ":memory:" and os.path.exists(self.path)
        if exists and os.path.isfile(self.path) and os.path.getsize(self.path) == 0:
            raise StateError(
                "state store is an empty (0-byte) file, not a database; move it away to start afresh", file=self.path
            )
        try:
            if read_only and exists:
                self.db = sqlite3.connect(
                    f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro",
                    uri=True,
                    isolation_level=None,
                    timeout=BUSY_TIMEOUT,
                )
                self.db.execute("PRAGMA query_only=ON")
                self._check_version()
            else:
                if read_only:
                    self.path = ":memory:"  # nothing stored there yet: an empty store, and no file is created
                elif not exists:
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                    _create_file(self.path)
                self.db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT)
                self._create()
            self._data_version = self._pragma_int("data_version")
            self._seq_mark, self._reset_mark = self._change_marks()
        except (sqlite3.Error, OSError) as exc:
            if hasattr(self, "db"):
                self.db.close()
            raise state_error(exc, str(path), "cannot open state store") from None
        except BaseException:
            if hasattr(self, "db"):
                self.db.close()
            raise

    def _create(self) -> None:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows are zeroed on the pages a change writes anyway, not on pages it would not otherwise write
        # (some builds, Debian's among them, zero those too). The store holds no secrets, and the rows deleted
        # most (queued --out lines, once written) are copies of the alerts: with every page zeroed, clearing
        # them wrote as many pages again, 17 ms of a 1 GiB detection run's serial part.
        self.db.execute("PRAGMA secure_delete=FAST")
        self.db.execute("BEGIN IMMEDIATE")  # one writer creates or migrates the schema; the others wait and find it
        try:
            for statement in _statements(_SCHEMA):
                self.db.execute(statement)
            if self.db.execute("SELECT 1 FROM meta WHERE name='schema_version'").fetchone() is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            self._check_version()
            for table, create in _REKEYED.items():
                columns = [c[1] for c in self.db.execute(f"PRAGMA table_info({table})")]
                if columns[:3] != _DELIVERY_KEY:
                    # A store made before the key led with the delivery time: the same rows under the new key.
                    names = ", ".join(columns)
                    self.db.execute(f"ALTER TABLE {table} RENAME TO {table}_before")
                    self.db.execute(create)
                    self.db.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {table}_before")
                    self.db.execute(f"DROP TABLE {table}_before")
            if not any(c[1] == "change_seq" for c in self.db.execute("PRAGMA table_info(alerts)")):
                self.db.execute("ALTER TABLE alerts ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0")
            for statement in _statements(_CHANGE_TRACKING):
                self.db.execute(statement)
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _check_version(self) -> None:
        row = self.db.execute("SELECT value FROM meta WHERE name='schema_version'").fetchone()
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            raise StateError(f"state schema version {row[0]} is not {SCHEMA_VERSION}", file=self.path)

    # -- transactions ---------------------------------------------------------------------------------
    def begin(self) -> bool:
        """Take the write lock (waiting for other writers); True when this started a transaction.

        Listeners registered with :meth:`on_foreign_changes` hear of alerts other connections changed since
        this connection's last transaction, before the caller reads anything."""
        if self._in_tx:
            return False
        self.db.execute("BEGIN IMMEDIATE")
        self._in_tx = True
        if self._listeners:
            version = self._pragma_int("data_version")
            if version != self._data_version:
                self._data_version = version
                self._tell_foreign_changes()
        return True

    def commit(self) -> None:
        if self._in_tx:
            if self._listeners:
                # Our own changes are not news to us: the marks move past them before the lock is released.
                self._seq_mark, self._reset_mark = self._change_marks()
            self.db.execute("COMMIT")
            self._in_tx = False

    def rollback(self) -> None:
        if self._in_tx:
            self._in_tx = False
            # SQLite has already rolled back on some errors (disk full, I/O): a second ROLLBACK would fail and
            # hide the error that caused it.
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            for listener in self._listeners:
                listener(None)  # what they cached may hold changes that were never written

    def verify(self) -> None:
        """SQLite's quick check of every page (linear in the file's size): a damaged store is a StateError, even
        where the tables a command reads happen to be intact."""
        problems = [r[0] for r in self.db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            detail = "; ".join(line for p in problems for line in p.splitlines() if not line.startswith("***"))
            raise StateError(f"state store is damaged: {detail}", file=self.path)

    @property
    def in_transaction(self) -> bool:
        return self._in_tx

    def on_foreign_changes(self, listener: ForeignChanges) -> None:
        """Call ``listener`` at the start of a transaction with the alert keys another connection changed."""
        self._listeners.append(listener)

    def _pragma_int(self, name: str) -> int:
        return int(self.db.execute(f"PRAGMA {name}").fetchone()[0])

    def _change_marks(self) -> tuple[int, int]:
        rows = dict(self.db.execute("SELECT name, value FROM meta WHERE name IN ('alerts_seq', 'alerts_reset')"))
        return int(rows.get("alerts_seq", 0)), int(rows.get("alerts_reset", 0))

    def _tell_foreign_changes(self) -> None:
        seq, reset = self._change_marks()
        changed: set[tuple[str, str]] | None = None
        if reset == self._reset_mark:
            changed = set(
                self.db.execute("SELECT rule_id, key_json FROM alerts WHERE change_seq > ?", (self._seq_mark,))
            )
        self._seq_mark, self._reset_mark = seq, reset
        if changed is None or changed:
            for listener in self._listeners:
                listener(changed)

    def close(self) -> None:
        try:
            self.rollback()
        finally:
            self.db.close()

    # -- deliveries -----------------------------------------------------------------------------------
    def seen(self, rule_id: str, finding_id: str, updated_at: str) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM seen WHERE rule_id=? AND finding_id=? AND updated_at=?", (rule_id, finding_id, updated_at)
        ).fetchone()
        return row is not None

    def mark_seen(self, rule_id: str, finding_id: str, updated_at: str) -> bool:
        """Mark a delivery seen; True when it was not seen before (inside a transaction: the answer that decides)."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO seen (rule_id, finding_id, updated_at) VALUES (?, ?, ?)",
            (rule_id, finding_id, updated_at),
        )
        return cur.rowcount == 1

    def mark_seen_many(self, rule_id: str, deliveries: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """:meth:`mark_seen` for many ``(finding_id, updated_at)`` at once: the ones not seen before. One statement
        per few hundred (a statement per delivery was a sixth of a large run's serial work)."""
        fresh: set[tuple[str, str]] = set()
        if sqlite3.sqlite_version_info < (3, 35, 0):  # no RETURNING before SQLite 3.35
            return {d for d in deliveries if self.mark_seen(rule_id, *d)}
        for at in range(0, len(deliveries), _SEEN_PER_STATEMENT):
            part = deliveries[at : at + _SEEN_PER_STATEMENT]
            values = ", ".join(["(?, ?, ?)"] * len(part))
            args = [x for fid, upd in part for x in (rule_id, fid, upd)]
            # RETURNING gives the rows actually inserted: a delivery already there (or twice in part) once at most.
            sql = (
                f"INSERT OR IGNORE INTO seen (rule_id, finding_id, updated_at) VALUES {values} "
                "RETURNING finding_id, updated_at"
            )
            fresh.update(self.db.execute(sql, args).fetchall())
        return fresh

    def add_suppression(
        self,
        rule_id: str,
        finding_id: str,
        updated_at: str,
        eventdate: datetime,
        reason: str,
        source: str | None,
        key_json: str,
    ) -> None:
        """A delivery suppressed by ``reason``; ``key_json``: its throttle key values by name, as JSON text."""
        self.db.execute(
            "INSERT OR IGNORE INTO suppressions (rule_id, finding_id, updated_at, eventdate, reason, source, key_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rule_id, finding_id, updated_at, iso(eventdate), reason, source, key_json),
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
    def alert_starts(self, rule_id: str, key_json: str) -> list[tuple[str, datetime, int]]:
        """``(alert_id, first_seen, created_run)`` of the key's alerts, by first_seen (records not read)."""
        rows = self.db.execute(
            "SELECT alert_id, first_seen, created_run FROM alerts WHERE rule_id=? AND key_json=? ORDER BY first_seen",
            (rule_id, key_json),
        ).fetchall()
        return [(alert_id, parse_iso(first_seen), run) for alert_id, first_seen, run in rows]

    def load_alert(self, alert_id: str) -> Alert:
        """The alert ``alert_id`` as an :class:`Alert` (it must exist)."""
        row = self.db.execute(
            "SELECT record, latest_time, latest_id FROM alerts WHERE alert_id=?", (alert_id,)
        ).fetchone()
        if row is None:
            raise StateError(f"alert {alert_id} is not in the store", file=self.path)
        return _alert(row)

    def save_alerts(self, alerts: Iterable[tuple[Alert, str, int]], out: str | None = None) -> list[dict[str, Any]]:
        """Insert or update each ``(alert, key_json, created_run)``, in one statement; give their records. With
        ``out``, their JSON lines (the text stored) are queued for that file in the same transaction."""
        records: list[dict[str, Any]] = []
        lines: list[str] = []
        rows = []
        for alert, key_json, run_id in alerts:
            record = alert.to_json()
            latest_time, latest_id = (iso(alert.latest[0]), alert.latest[1]) if alert.latest else (None, None)
            records.append(record)
            lines.append(orjson.dumps(record).decode())
            rows.append(
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
                    lines[-1],
                    time.time(),
                )
            )
        self.db.executemany(
            "INSERT INTO alerts (alert_id, rule_id, key_json, first_seen, last_seen, status, created_run, "
            "latest_time, latest_id, record, updated_wall) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alert_id) DO UPDATE SET "
            "first_seen=excluded.first_seen, last_seen=excluded.last_seen, status=excluded.status, "
            "latest_time=excluded.latest_time, latest_id=excluded.latest_id, record=excluded.record, "
            "updated_wall=excluded.updated_wall",
            rows,
        )
        if out and lines:
            self.queue_out(out, lines)
        return records

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

    def alert_texts(self, alert_ids: Sequence[str]) -> Iterator[str]:
        """The records of ``alert_ids`` as the JSON text stored (one line each), in that order; ids not in the
        store are left out."""
        for at in range(0, len(alert_ids), 500):
            chunk = alert_ids[at : at + 500]
            marks = ", ".join("?" * len(chunk))
            found = dict(self.db.execute(f"SELECT alert_id, record FROM alerts WHERE alert_id IN ({marks})", chunk))
            yield from (found[i] for i in chunk if i in found)

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

    def has_pending_out(self, out_path: str) -> bool:
        row = self.db.execute("SELECT 1 FROM out_pending WHERE out_path=? LIMIT 1", (out_path,)).fetchone()
        return row is not None

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
