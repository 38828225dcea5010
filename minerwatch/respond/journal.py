"""Per-alert step state of the response, kept in the state store beside the audit log.

One row per (alert, step): its status and what it recorded (original security groups, the detached instance
profile, snapshot ids, evidence files). A re-run reads it to skip finished steps and to resume a failed one; a
rollback reads what to restore. Recorded facts are written before the change they protect, so a crash between
the two loses nothing.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from minerwatch.alerting.state import StateStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS respond_steps (
    alert_id TEXT NOT NULL, step_id TEXT NOT NULL, status TEXT NOT NULL, detail TEXT NOT NULL,
    updated_wall REAL NOT NULL,
    PRIMARY KEY (alert_id, step_id)
) WITHOUT ROWID;
"""

DONE = "done"
FAILED = "failed"
BLOCKED = "blocked"
REFUSED = "refused"
AWAITING = "awaiting-approval"
SKIPPED = "skipped"
ROLLED_BACK = "rolled-back"
PENDING = "pending"


class Journal:
    def __init__(self, store: StateStore, alert_id: str) -> None:
        self.store = store
        self.alert_id = alert_id
        store.db.executescript(_SCHEMA)

    def get(self, step_id: str) -> tuple[str, dict[str, Any]]:
        row = self.store.db.execute(
            "SELECT status, detail FROM respond_steps WHERE alert_id=? AND step_id=?", (self.alert_id, step_id)
        ).fetchone()
        return (row[0], orjson.loads(row[1])) if row else (PENDING, {})

    def status(self, step_id: str) -> str:
        return self.get(step_id)[0]

    def detail(self, step_id: str) -> dict[str, Any]:
        return self.get(step_id)[1]

    def set(self, step_id: str, status: str | None = None, **detail: Any) -> None:
        """Update a step's status (``None`` keeps it) and merge ``detail`` into what it recorded."""
        old_status, old = self.get(step_id)
        merged = {**old, **detail}
        self.store.db.execute(
            "INSERT OR REPLACE INTO respond_steps VALUES (?, ?, ?, ?, ?)",
            (
                self.alert_id,
                step_id,
                status or old_status,
                orjson.dumps(merged, default=str).decode(),
                time.time(),
            ),
        )

    def all(self) -> dict[str, tuple[str, dict[str, Any]]]:
        rows = self.store.db.execute(
            "SELECT step_id, status, detail FROM respond_steps WHERE alert_id=?", (self.alert_id,)
        ).fetchall()
        return {r[0]: (r[1], orjson.loads(r[2])) for r in rows}
