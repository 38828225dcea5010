from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.alerting.alerts import Alert
from minerwatch.alerting.state import StateStore
from minerwatch.alerting.throttle import Throttler

W = timedelta(hours=2)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _throttler(store: StateStore, run_id: int = 1) -> Throttler:
    return Throttler(store, "r", W, {"rule_name": "r"}, run_id)


def _feed(th: Throttler, rows: list[tuple[str, datetime, str]]) -> None:
    th.store.begin()  # rows are placed inside the store's write transaction
    for key, t, fid in rows:
        th.place({"accountid": "1", "instance_id": key}, t, fid, {"x": fid}, {"type": "T"})


def _alerts(store: StateStore) -> list[dict]:
    return store.list_alerts("r")


def _reference(rows: list[tuple[str, datetime, str]]) -> dict[str, list[datetime]]:
    """DESIGN §6.3 literally: in (eventdate, id) order, open an alert when no window of the key holds the row."""
    starts: dict[str, list[datetime]] = {}
    for key, t, _ in sorted(rows, key=lambda r: (r[1], r[2])):
        ks = starts.setdefault(key, [])
        if not any(s <= t < s + W for s in ks):
            ks.append(t)
    return starts


def test_in_order_windows(tmp_path):
    store = StateStore(tmp_path / "s.db")
    th = _throttler(store)
    hours = [0, 0.5, 1.99, 2.0, 2.5, 4.1, 9]
    _feed(th, [("i-1", T0 + timedelta(hours=h), f"f{n}") for n, h in enumerate(hours)])
    store.begin()
    th.flush()
    store.commit()
    alerts = _alerts(store)
    assert [a["first_seen"] for a in alerts] == [
        "2026-03-01T00:00:00Z", "2026-03-01T02:00:00Z", "2026-03-01T04:06:00Z", "2026-03-01T09:00:00Z"
    ]
    assert [a["event_count"] for a in alerts] == [3, 2, 1, 1]
    assert alerts[0]["finding_ids"] == ["f0", "f1", "f2"]
    assert all(a["status"] == "new" for a in alerts)


def test_late_row_moves_first_seen_back(tmp_path):
    store = StateStore(tmp_path / "s.db")
    th = _throttler(store)
    _feed(th, [("i-1", T0 + timedelta(hours=3), "a"), ("i-1", T0 + timedelta(hours=1.5), "late")])
    store.begin()
    th.flush()
    store.commit()
    (alert,) = _alerts(store)
    assert alert["first_seen"] == "2026-03-01T01:30:00Z" and alert["event_count"] == 2


def _check_invariants(store: StateStore, rows: list[tuple[str, datetime, str]]) -> None:
    alerts = _alerts(store)
    ids = [f for a in alerts for f in a["finding_ids"]]
    assert sorted(ids) == sorted(r[2] for r in rows), "every row in exactly one alert"
    by_key: dict[str, list[datetime]] = {}
    for a in alerts:
        by_key.setdefault(a["key"]["instance_id"], []).append(datetime.fromisoformat(a["first_seen"]))
    for starts in by_key.values():
        starts.sort()
        assert all(b - a >= W for a, b in zip(starts, starts[1:], strict=False)), "starts a window apart"


rows_strategy = st.lists(
    st.tuples(st.sampled_from(["i-1", "i-2", "i-3"]), st.integers(0, 24 * 60)), min_size=1, max_size=60
)


@settings(max_examples=120, deadline=None)
@given(rows=rows_strategy, seed=st.integers(0, 2**32))
def test_invariants_hold_for_any_arrival_order(tmp_path_factory, rows, seed):
    data = [(k, T0 + timedelta(minutes=m), f"f{n:03d}") for n, (k, m) in enumerate(rows)]
    shuffled = data[:]
    random.Random(seed).shuffle(shuffled)
    store = StateStore(tmp_path_factory.mktemp("t") / "s.db")
    th = _throttler(store)
    _feed(th, shuffled)
    store.begin()
    th.flush()
    store.commit()
    _check_invariants(store, data)

    # In (eventdate, id) order the result is exactly the reference rule.
    store2 = StateStore(tmp_path_factory.mktemp("t") / "s.db")
    th2 = _throttler(store2)
    _feed(th2, sorted(data, key=lambda r: (r[1], r[2])))
    store2.begin()
    th2.flush()
    store2.commit()
    got: dict[str, list[datetime]] = {}
    for a in _alerts(store2):
        got.setdefault(a["key"]["instance_id"], []).append(datetime.fromisoformat(a["first_seen"]))
    assert {k: sorted(v) for k, v in got.items()} == _reference(data)


def test_state_resumes_across_throttlers(tmp_path):
    """Half the rows, commit, a fresh throttler over the same store, the rest: same alerts as one pass."""
    rows = [("i-1", T0 + timedelta(minutes=37 * n), f"f{n:02d}") for n in range(20)]
    one = StateStore(tmp_path / "one.db")
    th = _throttler(one)
    _feed(th, rows)
    one.begin()
    th.flush()
    one.commit()

    two = StateStore(tmp_path / "two.db")
    for part in (rows[:9], rows[9:]):
        t = _throttler(two, run_id=1)
        _feed(t, part)
        two.begin()
        t.flush()
        two.commit()
    strip = [{k: v for k, v in a.items()} for a in _alerts(one)]
    assert strip == _alerts(two)


def test_alert_updated_by_a_later_run_says_updated(tmp_path):
    store = StateStore(tmp_path / "s.db")
    th = _throttler(store, run_id=1)
    _feed(th, [("i-1", T0, "a")])
    store.begin()
    th.flush()
    store.commit()
    th2 = _throttler(store, run_id=2)
    _feed(th2, [("i-1", T0 + timedelta(minutes=5), "b")])
    store.begin()
    th2.flush()
    store.commit()
    (alert,) = _alerts(store)
    assert alert["status"] == "updated" and alert["event_count"] == 2
    assert th2.updated_ids == {alert["alert_id"]} and not th2.new_ids


def test_dropping_the_cache_after_a_flush_changes_nothing(tmp_path):
    """A long-running process keeps memory bounded: alerts reload from the store when their key returns."""
    rows = [(f"i-{n % 7}", T0 + timedelta(minutes=23 * n), f"f{n:03d}") for n in range(120)]
    whole = StateStore(tmp_path / "whole.db")
    th = _throttler(whole)
    _feed(th, rows)
    whole.begin()
    th.flush()
    whole.commit()

    for limits in ({"max_cached_keys": 2}, {"max_cached_alerts": 3}):
        small = StateStore(tmp_path / f"small-{len(limits)}-{next(iter(limits))}.db")
        th2 = Throttler(small, "r", W, {"rule_name": "r"}, 1, **limits)
        for i in range(0, len(rows), 10):
            _feed(th2, rows[i : i + 10])
            small.begin()
            th2.flush()
            small.commit()
            cached = {k: sum(type(a) is Alert for a in v) for k, v in th2._alerts.items()}  # whole alerts
            newest = orjson.dumps({"accountid": "1", "instance_id": rows[i + 9][0]}).decode()
            assert list(cached)[-1] == newest  # the key placed last is kept
            assert len(cached) <= limits.get("max_cached_keys", 256)
            assert sum(cached.values()) - cached[newest] <= limits.get("max_cached_alerts", 512)
            assert set(th2._created_run) == {a.alert_id for v in th2._alerts.values() for a in v}
            assert th2._held == sum(cached.values())
        assert _alerts(small) == _alerts(whole)  # what was forgotten was read back when needed: nothing lost


def test_an_alert_moved_back_does_not_share_its_id_with_a_later_one(tmp_path):
    """A at 120 min, late rows move it back to 0; a row at 120 then opens a new alert whose start (120) is the
    one A's id was made from. Both alerts keep their rows."""
    store = StateStore(tmp_path / "s.db")
    th = _throttler(store)
    rows = [("i-2", T0 + timedelta(minutes=m), f"f{n}") for n, m in enumerate([120, 1, 0, 120])]
    _feed(th, rows)
    store.begin()
    th.flush()
    store.commit()
    _check_invariants(store, rows)
    assert len({a["alert_id"] for a in _alerts(store)}) == 2


def _commit(th: Throttler) -> None:
    th.store.begin()
    th.flush()
    th.store.commit()


def test_two_connections_see_each_others_alerts(tmp_path):
    """Two throttlers on one store file, in turns: each reads again the keys the other changed, so rows of one key
    stay in one alert and the other's status change (acknowledged) survives."""
    one, two = StateStore(tmp_path / "s.db"), StateStore(tmp_path / "s.db")
    th1, th2 = _throttler(one, run_id=1), _throttler(two, run_id=2)
    _feed(th1, [("i-1", T0, "a")])
    _commit(th1)
    _feed(th2, [("i-1", T0 + timedelta(minutes=10), "b")])  # joins the alert th1 made
    _commit(th2)
    (alert,) = _alerts(one)
    assert alert["finding_ids"] == ["a", "b"]
    two.set_status(alert["alert_id"], "acknowledged")  # autocommit, as `alerts ack` from another process
    _feed(th1, [("i-1", T0 + timedelta(minutes=20), "c"), ("i-9", T0, "z")])  # th1 still caches i-1
    _commit(th1)
    alerts = {a["key"]["instance_id"]: a for a in _alerts(two)}
    assert alerts["i-1"]["finding_ids"] == ["a", "b", "c"]
    assert alerts["i-1"]["status"] == "acknowledged"
    _check_invariants(one, [("i-1", T0, "a"), ("i-1", T0 + timedelta(minutes=10), "b"),
                            ("i-1", T0 + timedelta(minutes=20), "c"), ("i-9", T0, "z")])  # fmt: skip


def _older_store(path: Path, script: str) -> StateStore:
    """A store as an earlier version left it (``script`` undoes what came since), opened again for writing."""
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.executescript(script)
    db.close()
    return StateStore(path)


def test_a_store_from_before_change_tracking_is_migrated(tmp_path):
    store = _older_store(
        tmp_path / "old.db",
        "DROP TRIGGER alerts_changed_ins; DROP TRIGGER alerts_changed_upd; DROP TRIGGER alerts_changed_del;"
        "DROP INDEX alerts_by_change; ALTER TABLE alerts DROP COLUMN change_seq;"
        "DELETE FROM meta WHERE name LIKE 'alerts_%'",
    )
    th = _throttler(store)
    _feed(th, [("i-1", T0, "a")])
    _commit(th)
    assert store.db.execute("SELECT change_seq FROM alerts").fetchone()[0] == 1


def test_a_store_whose_delivery_keys_lead_with_the_finding_id_is_migrated(tmp_path):
    """Stores made before the delivery time led the key of ``seen`` and ``suppressions``: the same rows, under the
    new key."""
    path = tmp_path / "old.db"
    store = _older_store(
        path,
        "DROP TABLE seen; CREATE TABLE seen (rule_id TEXT NOT NULL, finding_id TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, PRIMARY KEY (rule_id, finding_id, updated_at)) WITHOUT ROWID;"
        "INSERT INTO seen VALUES ('r', 'f-old', '2026-03-01T00:00:00Z'), ('r', 'f-two', '2026-03-02T00:00:00Z');"
        "DROP TABLE suppressions; CREATE TABLE suppressions (rule_id TEXT NOT NULL, finding_id TEXT NOT NULL, "
        "updated_at TEXT NOT NULL, eventdate TEXT NOT NULL, reason TEXT NOT NULL, source TEXT, key_json TEXT, "
        "PRIMARY KEY (rule_id, finding_id, updated_at)) WITHOUT ROWID;"
        "INSERT INTO suppressions VALUES ('r', 'f-sup', '2026-03-01T00:00:00Z', '2026-03-01T00:00:00Z', 'ok', "
        "'allow.yaml:3', '{\"instance_id\":\"i-1\"}')",
    )
    for table in ("seen", "suppressions"):
        key = [(c[1], c[5]) for c in store.db.execute(f"PRAGMA table_info({table})") if c[5]]
        assert key == [("rule_id", 1), ("updated_at", 2), ("finding_id", 3)]
    assert store.db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    assert store.suppressions("r") == [
        {"rule_id": "r", "finding_id": "f-sup", "updated_at": "2026-03-01T00:00:00Z",
         "eventdate": "2026-03-01T00:00:00Z", "reason": "ok", "source": "allow.yaml:3", "key": {"instance_id": "i-1"}}
    ]  # fmt: skip
    assert store.seen("r", "f-old", "2026-03-01T00:00:00Z") and store.seen("r", "f-two", "2026-03-02T00:00:00Z")
    store.begin()
    assert store.mark_seen_many("r", [("f-old", "2026-03-01T00:00:00Z"), ("f-new", "2026-03-01T00:00:00Z")]) == {
        ("f-new", "2026-03-01T00:00:00Z")
    }
    store.commit()
    store.close()
    assert StateStore(path).db.execute("SELECT count(*) FROM seen").fetchone()[0] == 3  # opened again: kept as is


def test_a_key_with_a_long_history_is_not_read_whole_again(tmp_path):
    """Alerts forgotten between flushes are kept as id and start: a key that returns is not read again, and an
    alert is read back only when a row joins it."""
    rows = [(f"i-{k}", T0 + timedelta(hours=3 * n), f"f{n}-{k}") for n in range(40) for k in ("big", 1, 2, 3)]
    rows.append(("i-big", T0 + timedelta(minutes=30), "late"))  # joins the key's first alert, long forgotten
    whole = StateStore(tmp_path / "whole.db")
    th = _throttler(whole)
    _feed(th, rows)
    _commit(th)

    small = StateStore(tmp_path / "small.db")
    th2 = Throttler(small, "r", W, {"rule_name": "r"}, 1, max_cached_alerts=5)
    calls = {"alert_starts": 0, "load_alert": 0}
    for name in calls:
        def counted(*args, _name=name, _real=getattr(small, name)):
            calls[_name] += 1
            return _real(*args)
        setattr(small, name, counted)
    for i in range(0, len(rows), 8):
        _feed(th2, rows[i : i + 8])
        _commit(th2)
        assert th2._held <= 5 + 40  # the newest key may hold all of its own
    assert calls == {"alert_starts": 4, "load_alert": 1}
    assert _alerts(small) == _alerts(whole)


def test_place_keeps_the_values_it_is_given(tmp_path: Path) -> None:
    """Values that are not JSON already (a timestamp here) are written the way alerts write timestamps, whether the
    throttler is given them as values (``place``) or as JSON text alone (``place_json``, where they are strings)."""
    store = StateStore(str(tmp_path / "s.db"))
    th = _throttler(store)
    store.begin()
    seen_at = datetime(2026, 3, 1, 0, 0, 0, 250000, tzinfo=UTC)
    alert = th.place({"instance_id": "i-1", "at": seen_at}, T0, "f1", {"x": 1}, {"type": "T", "at": seen_at})
    record = alert.to_json()
    assert record["key"] == {"instance_id": "i-1", "at": "2026-03-01T00:00:00.250Z"}
    assert record["groups"][0]["at"] == "2026-03-01T00:00:00.250Z"
    text = th.place_json('{"instance_id":"i-2"}', T0, "f2", {"x": 2}, '{"type":"T"}')
    assert text.to_json()["key"] == {"instance_id": "i-2"} and text.to_json()["groups"][0]["type"] == "T"
    store.close()
