"""What a state store transaction writes: clearing queued ``--out`` lines once they are in the file must not write
the pages it frees (the write-ahead log is the cost of every commit of a detection run)."""

from __future__ import annotations

import os

from minerwatch.alerting.state import StateStore

_FRAME = 24 + 4096  # a WAL frame: its header and one page (the store's page size)


def _wal_frames(path: str) -> int:
    wal = path + "-wal"
    return max(os.path.getsize(wal) - 32, 0) // _FRAME if os.path.exists(wal) else 0  # 32: the WAL's header


def test_clearing_written_out_lines_writes_few_pages(tmp_path):
    path = str(tmp_path / "state.db")
    store = StateStore(path)
    try:
        lines = [f'{{"alert_id": "mw-{i:04d}", "fields": "{"x" * 2000}"}}' for i in range(400)]  # ~200 pages
        store.begin()
        store.queue_out("alerts.jsonl", lines)
        store.commit()
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert _wal_frames(path) == 0
        last = max(seq for seq, _ in store.pending_out("alerts.jsonl"))
        store.begin()
        store.clear_out("alerts.jsonl", last)
        store.commit()
        assert not store.has_pending_out("alerts.jsonl")
        # The freed pages go to the free list (a few pages change); zeroing each of them wrote them all.
        assert _wal_frames(path) < 20, _wal_frames(path)
    finally:
        store.close()
