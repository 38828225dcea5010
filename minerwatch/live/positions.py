"""Where each live source has got to, kept in the state store beside the alerts.

Two tables of the live service's own in the same SQLite file as the detection state:

``live_positions``  one JSON document per source (an SQS queue's in-flight horizon, a followed file's offset,
                    an S3 stream's settled key, a GuardDuty detector's cursor)
``live_marks``      a set of strings per source (S3 keys processed out of order, SQS messages kept as rejects)

Positions are written after the detection effects they cover have committed. A crash between the two makes
the next run read some input again; detection effects are idempotent (deliveries are deduplicated by finding
id and ``updatedAt``), so that costs time, never correctness.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson

_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_positions (
    source TEXT PRIMARY KEY, position TEXT NOT NULL, updated_wall REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS live_marks (
    source TEXT NOT NULL, mark TEXT NOT NULL, wall REAL NOT NULL,
    PRIMARY KEY (source, mark)
) WITHOUT ROWID;
"""


class PositionStore:
    """Positions and marks of live sources, on a connection of the state store (autocommit statements).

    Callers must not use it while the detector has a transaction open; the service only does so between
    records, when every effect has been committed.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.db.executescript(_SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several writes as one commit (a position and the marks it implies change together)."""
        if self.db.in_transaction:  # already inside a caller's transaction: join it
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def load(self, source: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT position FROM live_positions WHERE source=?", (source,)).fetchone()
        return orjson.loads(row[0]) if row else None

    def save(self, source: str, position: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT INTO live_positions VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
            "position=excluded.position, updated_wall=excluded.updated_wall",
            (source, orjson.dumps(position).decode(), time.time()),
        )

    # -- marks ------------------------------------------------------------------------------------------------
    def marked(self, source: str, mark: str) -> bool:
        row = self.db.execute("SELECT 1 FROM live_marks WHERE source=? AND mark=?", (source, mark)).fetchone()
        return row is not None

    def marks(self, source: str, prefix: str = "") -> set[str]:
        # A range scan on the primary key rather than LIKE, which would need escaping of the prefix.
        rows = self.db.execute(
            "SELECT mark FROM live_marks WHERE source=? AND mark>=? AND mark<?",
            (source, prefix, prefix + "\U0010ffff"),
        )
        return {r[0] for r in rows}

    def add_marks(self, source: str, marks: Iterable[str]) -> None:
        now = time.time()
        with self.transaction():
            self.db.executemany("INSERT OR IGNORE INTO live_marks VALUES (?, ?, ?)", [(source, m, now) for m in marks])

    def drop_marks(self, source: str, marks: Iterable[str]) -> None:
        with self.transaction():
            self.db.executemany("DELETE FROM live_marks WHERE source=? AND mark=?", [(source, m) for m in marks])

    def drop_marks_before(self, source: str, wall: float) -> int:
        cur = self.db.execute("DELETE FROM live_marks WHERE source=? AND wall<?", (source, wall))
        return cur.rowcount
