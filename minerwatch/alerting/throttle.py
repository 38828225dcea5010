"""Event-time throttling (DESIGN §6).

Per throttle key, alerts are windows [first_seen, first_seen + W). A row at time t:
1. joins the alert whose window holds t;
2. else joins the next alert of its key if that alert starts less than W after t, moving its first_seen back to t;
3. else opens a new alert.
Starts of one key's alerts stay at least W apart whatever the arrival order, and every row lands in exactly one
alert; rows that arrive in (eventdate, id) order reduce to "open an alert when no window holds the row".
With a throttle count N > 1, up to N alerts may start within any window; a row joins the latest window holding it
once N windows hold it.

Rows are placed inside the store's write transaction. The throttler caches recent keys' alerts between transactions
(within bounds: see ``Throttler.max_cached_keys``); the store tells it which keys another writer changed meanwhile
(``StateStore.on_foreign_changes``) and those are read again, so concurrent writers on one store keep the invariants.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from minerwatch.alerting.alerts import Alert, make_alert_id
from minerwatch.alerting.state import StateStore


@dataclass(slots=True)
class _Stored:
    """An alert of a cached key that is not in memory: read from the store when a row joins it (its start is in
    the key's ``_starts``)."""

    alert_id: str


@dataclass
class Throttler:
    store: StateStore
    rule_id: str
    window: timedelta
    header: dict[str, Any]
    run_id: int
    count: int = 1
    max_cached_keys: int = 256
    max_cached_alerts: int = 512
    """Between flushes memory holds the keys most recently placed, at most ``max_cached_keys``, with each alert's
    id and start; of those alerts at most ``max_cached_alerts`` whole (the newest key's all). A flush forgets the
    rest: the store holds it, and it is read back when a row needs it. Memory grows neither with the number of keys
    nor with each key's history, and a key with a long history is not read whole again each time it returns."""
    _alerts: dict[str, list[Alert | _Stored]] = field(default_factory=dict)
    """Per key, its alerts ordered by first_seen (kept ordered by construction, never re-sorted)."""
    _held: int = 0
    """Whole alerts (not :class:`_Stored`) in ``_alerts``."""
    _starts: dict[str, list[datetime]] = field(default_factory=dict)
    """Per key, the first_seen of each alert, parallel to ``_alerts``, for bisection."""
    _created_run: dict[str, int] = field(default_factory=dict)
    dirty: dict[str, tuple[Alert, str]] = field(default_factory=dict)
    """alert_id → (alert, key_json) changed since the last flush."""
    new_ids: set[str] = field(default_factory=set)
    updated_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.store.on_foreign_changes(self._forget)

    def _forget(self, changed: set[tuple[str, str]] | None) -> None:
        """Drop cached alerts of keys another writer changed (None: all of them, and unsaved changes)."""
        if changed is None:
            self._alerts.clear()
            self._starts.clear()
            self._created_run.clear()
            self.dirty.clear()
            self._held = 0
            return
        for rule_id, key_json in changed:
            if rule_id == self.rule_id and key_json in self._alerts:
                self._drop(key_json)

    def _key_alerts(self, key_json: str) -> tuple[list[Alert | _Stored], list[datetime]]:
        alerts = self._alerts.pop(key_json, None)
        if alerts is not None:
            self._alerts[key_json] = alerts  # the most recently placed key last: flush keeps the newest
        else:
            loaded = self.store.alert_starts(self.rule_id, key_json)
            alerts = [_Stored(alert_id) for alert_id, _, _ in loaded]
            self._created_run.update({alert_id: run for alert_id, _, run in loaded})
            self._alerts[key_json] = alerts
            self._starts[key_json] = [first for _, first, _ in loaded]
        return alerts, self._starts[key_json]

    def _whole(self, alerts: list[Alert | _Stored], at: int) -> Alert:
        alert = alerts[at]
        if type(alert) is _Stored:
            alert = alerts[at] = self.store.load_alert(alert.alert_id)
            self._held += 1
        return alert  # type: ignore[return-value]

    def _drop(self, key_json: str) -> None:
        """Forget a key: its alerts are read back from the store if it comes again."""
        for alert in self._alerts.pop(key_json):
            self._created_run.pop(alert.alert_id, None)
            self._held -= type(alert) is Alert
        del self._starts[key_json]

    def place(
        self,
        key: dict[str, Any],
        eventdate: datetime,
        finding_id: str,
        row: dict[str, Any] | bytes,
        groups: dict[str, Any],
    ) -> Alert:
        """Place one row (or its JSON text, see :attr:`Alert.fields`) in its key's alert."""
        key_json, group_json = orjson.dumps(key).decode(), orjson.dumps(groups).decode()
        return self.place_json(key_json, eventdate, finding_id, row, group_json, key, groups)

    def place_json(
        self,
        key_json: str,
        eventdate: datetime,
        finding_id: str,
        row: dict[str, Any] | bytes,
        group_json: str,
        key: dict[str, Any] | None = None,
        groups: dict[str, Any] | None = None,
    ) -> Alert:
        """:meth:`place` with the key's and the group values' JSON text, as a detection run carries them; the
        values themselves (``key``, ``groups``) are parsed from it, when not given, only for a new alert or group."""
        if not self.store.in_transaction:
            raise RuntimeError("rows are placed inside a state store transaction (StateStore.begin)")
        alerts, starts = self._key_alerts(key_json)
        idx = bisect.bisect_right(starts, eventdate)  # alerts[:idx] start at or before the row
        holding = 0  # alerts whose window holds the row: the ones just before idx
        while holding < idx and eventdate < starts[idx - 1 - holding] + self.window:
            holding += 1
        target: Alert | None = None
        if holding and holding >= self.count:
            target = self._whole(alerts, idx - 1)
        elif not holding and idx < len(alerts) and starts[idx] < eventdate + self.window:
            # A late row: the next alert starts less than one window after it, so it moves back to the row.
            # Order is kept: the previous alert starts at least one window before the row.
            target = self._whole(alerts, idx)
            starts[idx] = eventdate
        if target is None:
            target = self._open(orjson.loads(key_json) if key is None else key, eventdate)
            alerts.insert(idx, target)
            starts.insert(idx, eventdate)
            self._held += 1
        target.add(eventdate, finding_id, row, group_json, groups)
        created_here = self._created_run.get(target.alert_id) == self.run_id
        if target.status in ("new", "updated"):  # a person's acknowledged / closed stays (even mid-run)
            target.status = "new" if created_here else "updated"
        (self.new_ids if created_here else self.updated_ids).add(target.alert_id)
        self.dirty[target.alert_id] = (target, key_json)
        return target

    def _open(self, key: dict[str, Any], eventdate: datetime) -> Alert:
        alert_id = make_alert_id(self.rule_id, key, eventdate)
        # The id comes from the start time, which is not unique over a key's life: an alert whose first_seen a
        # late row moved back keeps the id of its original start, where a later alert may open (or, with
        # count > 1, several alerts start at one instant). Every alert of a cached key is in _created_run
        # (ids hash the key, so other keys' ids never collide): a lookup there, not a set of the key's alerts
        # built per new alert, which made a key with many alerts quadratic.
        n = 1
        while alert_id in self._created_run:
            n += 1
            alert_id = make_alert_id(self.rule_id, {**key, "#": n}, eventdate)
        alert = Alert(alert_id, self.rule_id, key, eventdate, eventdate, header=self.header)
        self._created_run[alert_id] = self.run_id
        return alert

    def flush(self, out: str | None = None) -> list[dict[str, Any]]:
        """Write changed alerts to the store (inside the caller's transaction), with ``out`` queueing their lines
        for that file; return their records."""
        records = self.store.save_alerts(
            ((a, kj, self._created_run[a.alert_id]) for a, kj in self.dirty.values()), out
        )
        self.dirty.clear()
        # Everything is in the store now: what is forgotten here is read back when a row needs it.
        if len(self._alerts) > self.max_cached_keys:
            for key_json in list(self._alerts)[: len(self._alerts) - self.max_cached_keys]:  # least recent first
                self._drop(key_json)
        if self._held > self.max_cached_alerts:
            for alerts in list(self._alerts.values())[:-1]:
                for at, alert in enumerate(alerts):
                    if type(alert) is Alert:
                        alerts[at] = _Stored(alert.alert_id)
                        self._held -= 1
                if self._held <= self.max_cached_alerts:
                    break
        return records
