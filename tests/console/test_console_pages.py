"""The other pages and the API's reads, over HTTP against the running console."""

from __future__ import annotations

import sqlite3
import time

from minerwatch.notify.outbox import ensure_schema

from .conftest import DEMO_ALERT, Console, csrf_of


def test_rules_page_lints_and_replays_fixtures(console: Console) -> None:
    with console.client("vic") as c:
        page = c.get("/rules").text
        rules = c.get("/api/rules").json()
    seed = next(r for r in rules if r.get("id") == "aws-guardduty-crypto-mining")
    assert seed["errors"] == [] and seed["tests"] and all(t["ok"] for t in seed["tests"])
    assert "aws-guardduty-crypto-mining" in page and "✓" in page


def test_health_and_hunt_pages(console: Console) -> None:
    with console.client("vic") as c:
        health = c.get("/api/health").json()
        assert c.get("/health").status_code == 200
        assert c.get("/hunt").status_code == 200
    assert health["journal_mode"] == "wal" and sum(health["alerts"].values()) >= 27


def test_outbox_page_and_retry(console: Console) -> None:
    db = sqlite3.connect(console.state, isolation_level=None, timeout=30)
    ensure_schema(db)
    # A row as the dispatcher leaves it after its attempts ran out (columns of notify.outbox's schema).
    now = time.time()
    db.execute(
        "INSERT INTO notify_outbox (destination, alert_id, version, idem_key, event, alert_status, record, status, "
        "attempts, next_attempt, last_error, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, 'parked', 9, ?, ?, ?, ?)",
        ("pager", DEMO_ALERT, "1", "k-console-test", "trigger", "new", "{}", now + 3600, "<b>HTTP 500</b>", now, now),
    )
    db.close()
    with console.client("ana") as c:
        page = c.get("/outbox").text
        assert "&lt;b&gt;HTTP 500&lt;/b&gt;" in page and "<b>HTTP 500" not in page
        assert c.get("/api/outbox").json()["summary"]["pager"]["parked"] == 1
        r = c.post("/outbox/retry", data={"csrf": csrf_of(c), "target": "all"})
        assert r.status_code == 303
        summary = c.get("/api/outbox").json()["summary"]["pager"]
    assert summary["parked"] == 0 and summary["pending"] == 1
    with console.client("vic") as c:
        assert c.post("/outbox/retry", data={"csrf": csrf_of(c), "target": "all"}).status_code == 403


def test_queue_keyset_paging_covers_every_alert_once(console: Console) -> None:
    token = console.token("vic")
    seen: list[str] = []
    import httpx

    with httpx.Client(base_url=console.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        after = None
        while True:
            params = {"limit": 4, "sort": "last_seen", "order": "asc", **({"after": after} if after else {})}
            page = c.get("/api/alerts", params=params).json()
            seen += [a["alert_id"] for a in page["alerts"]]
            after = page["next"]
            if after is None:
                break
        total = c.get("/api/health").json()["alerts"]
    assert len(seen) == len(set(seen)) == sum(total.values())
