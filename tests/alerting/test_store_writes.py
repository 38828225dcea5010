"""What a state store transaction writes: clearing queued ``--out`` lines once they are in the file must not write
the pages it frees (the write-ahead log is the cost of every commit of a detection run)."""

from __future__ import annotations

from minerwatch.alerting.state import StateStore


def _checkpoint(store: StateStore) -> int:
    """Checkpoint the store's write-ahead log; the pages it held, as SQLite counts them."""
    _, frames, _ = store.db.execute("PRAGMA wal_checkpoint").fetchone()
    return int(frames)


def test_clearing_written_out_lines_writes_few_pages(tmp_path):
    store = StateStore(str(tmp_path / "state.db"))
    try:
        lines = [f'{{"alert_id": "mw-{i:04d}", "fields": "{"x" * 2000}"}}' for i in range(400)]  # ~200 pages
        store.begin()
        store.queue_out("alerts.jsonl", lines)
        store.commit()
        assert _checkpoint(store) > 200  # the lines' pages, all checkpointed: the next commit starts the log anew
        last = max(seq for seq, _ in store.pending_out("alerts.jsonl"))
        store.begin()
        store.clear_out("alerts.jsonl", last)
        store.commit()
        assert not store.has_pending_out("alerts.jsonl")
        # The freed pages go to the free list (a few pages change); zeroing each of them wrote them all.
        frames = _checkpoint(store)
        assert frames < 20, frames
    finally:
        store.close()
