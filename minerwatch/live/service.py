"""The live detection loop: a source's items through the same :class:`~minerwatch.alerting.detect.Detector` as
``minerwatch detect``, one committed record at a time.

For each item: a reject goes to the rejects file; a finding is matched against the rule; a matched finding is
applied (dedup, AWS samples, allowlist, event-time throttle) and committed — with the notification outbox in the
same transaction when one is configured — and only then is the item acknowledged to its source (SQS message
deleted, position moved on). Findings that do not match have no effect and are acknowledged at once.

Ordering. A backtest applies matched rows in (eventdate, id) order; a live source delivers them in arrival
order. With ``reorder_window`` > 0 each matched row is held that long (:mod:`minerwatch.live.reorder`) and rows
are applied in (eventdate, id) order, so a live run gives the backtest's alerts whenever rows arrive less than
the window out of order. After an unclean stop of an SQS consumer, matched rows are held until the messages the
dead process had received are visible again (``Source.recovery_until``).

Shutdown (``stop`` set, e.g. by SIGTERM): the item in hand is finished, held rows are applied, the items polled
but not processed go back to the source, acknowledgements are flushed, the run is marked finished. Nothing is
half-committed: every effect is one SQLite transaction.

Delivery: the notification outbox is filled inside the commit transaction (``in_transaction``) and delivered by
the dispatcher (``notifier``) in a background thread, woken after each commit that changed an alert, so detection
never waits for destinations; undelivered notifications stay in the outbox across restarts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from minerwatch.alerting.allowlist import Allowlist
from minerwatch.alerting.detect import DetectOptions, Detector, DetectStats, Match
from minerwatch.alerting.state import StateStore
from minerwatch.compile.prefilter import make_prefilter
from minerwatch.live.feeds import Item, Source, SourceContext, stderr_log
from minerwatch.live.metrics import Metrics, OutboxStats
from minerwatch.live.positions import PositionStore
from minerwatch.live.reorder import HoldBuffer
from minerwatch.notify.base import idempotency_key
from minerwatch.rules.model import Rule
from minerwatch.sources.records import ReadStats, Reject

if TYPE_CHECKING:
    from minerwatch.notify.outbox import DeliveryStats


@dataclass
class WatchOptions:
    state: str
    allowlist: Allowlist | None = None
    out: str | None = None
    rejects: str | None = None
    include_samples: bool = False
    prefilter: bool = True
    reorder_window: float = 0.0
    """Seconds each matched finding is held so that findings arriving out of order are applied in order."""
    idle_timeout: float = 5.0
    """Longest wait for input when nothing is held (an SQS long poll lasts at most this long)."""
    on_alert: Callable[[dict[str, Any]], None] | None = None
    """Called with each alert record after its commit (in the detection thread: keep it quick)."""
    in_transaction: Callable[[StateStore, list[dict[str, Any]]], None] | None = None
    """Called inside the commit transaction with the changed alert records (the notification outbox)."""
    notifier: Notifier | None = None
    """Delivers the notification outbox (filled by ``in_transaction``); run in a background thread and woken
    after each commit that changed an alert."""
    drain_timeout: float = 30.0
    """When the source ends (``watch -``), seconds to keep delivering the outbox before exiting; 0: do not wait."""
    notify_poll: float = 1.0
    """Seconds between the dispatcher's looks at the outbox when nothing wakes it (retries coming due)."""
    stall_after: float = 120.0
    """``/healthz`` reports the loop as stalled when the source has not been polled for this long."""
    log: Callable[[str], None] = stderr_log


class Notifier(Protocol):
    """What the service needs of the notification dispatcher (``minerwatch.notify.outbox.Dispatcher``)."""

    def run(self, stop_event: threading.Event, poll_interval: float = 1.0) -> None: ...

    def wake(self) -> None: ...

    def close(self) -> None: ...

    def drain(self, timeout: float, ids: Iterable[int] | None = None) -> tuple[DeliveryStats, int]: ...


class WatchService:
    """One rule over one live source until ``stop`` is set (or the source ends)."""

    def __init__(self, rule: Rule, source: Source, options: WatchOptions) -> None:
        self.rule = rule
        self.source = source
        self.opts = options
        self.metrics = Metrics(source.name)
        self.buffer: HoldBuffer[tuple[Match, Item]] = HoldBuffer()
        self.det: Detector | None = None
        self._notify_thread: threading.Thread | None = None
        self._notify_stop = threading.Event()
        self.drained: tuple[DeliveryStats, int] | None = None
        """What the delivery at the end of the input did: its stats and the rows still queued."""
        self._arrival = 0.0
        self._recovery = 0.0
        self.stats: DetectStats | None = None

    # -- health -------------------------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        age = time.time() - self.metrics.last_poll if self.metrics.last_poll else None
        ok = age is not None and age < self.opts.stall_after
        return ok, {
            "status": "ok" if ok else ("starting" if age is None else "stalled"),
            "source": self.source.name,
            "rule": self.rule.id,
            "seconds_since_poll": None if age is None else round(age, 3),
            "held": len(self.buffer),
            "uptime_seconds": round(time.time() - self.metrics.started, 3),
        }

    # -- the loop -----------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> DetectStats:
        started = time.monotonic()
        opts = self.opts
        det = Detector(
            self.rule,
            DetectOptions(
                state=opts.state,
                allowlist=opts.allowlist,
                out=opts.out,
                rejects=opts.rejects,
                include_samples=opts.include_samples,
                stream=True,
                prefilter=opts.prefilter,
                on_alert=self._on_alert,
                in_transaction=opts.in_transaction,
            ),
            [self.source.name],
        )
        self.det = det
        ctx = SourceContext(
            positions=PositionStore(det.store.db),
            prefilter=make_prefilter(det.query) if opts.prefilter else None,
            stop=stop,
            log=opts.log,
        )
        clean = ended = False
        try:
            self.source.start(ctx)
            if self.source.recovery_until > 0:
                self._recovery = time.monotonic() + (self.source.recovery_until - time.time())
            if opts.notifier is not None:
                self.metrics.outbox = OutboxStats(opts.state, self.metrics)
                self._notify_thread = threading.Thread(
                    target=opts.notifier.run, args=(self._notify_stop, opts.notify_poll),
                    name="minerwatch-dispatch", daemon=True,
                )  # fmt: skip
                self._notify_thread.start()
            self._loop(stop)
            clean = True
            ended = self.source.exhausted and not stop.is_set()
        except BaseException:
            det.store.rollback()
            raise
        finally:
            try:
                self.source.close(clean)
            finally:
                self._stop_notifier(drain=ended)
                if clean:
                    self.stats = det.finish(self._read_stats(), started)
                else:
                    det.store.close()  # the run stays open: the next start resumes it
        assert self.stats is not None
        return self.stats

    def _stop_notifier(self, drain: bool = False) -> None:
        """Let each destination finish the send in hand (bounded by its timeout); at the end of the input
        (``drain``) keep delivering for up to ``drain_timeout`` seconds first. Undelivered rows stay queued."""
        notifier = self.opts.notifier
        if notifier is None:
            return
        self._notify_stop.set()
        if self._notify_thread is not None:
            self._notify_thread.join(timeout=60.0)
        try:
            if drain and self.opts.drain_timeout > 0:
                self.drained = notifier.drain(self.opts.drain_timeout)
        finally:
            notifier.close()

    def _loop(self, stop: threading.Event) -> None:
        source, buffer, opts = self.source, self.buffer, self.opts
        rest: list[Item] = []
        while not stop.is_set():
            deadline = buffer.next_deadline()
            timeout = opts.idle_timeout
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - time.monotonic()))
            items = source.poll(timeout)
            m = self.metrics
            m.last_poll = time.time()
            prefiltered = getattr(source, "prefiltered", 0)
            m.records += prefiltered - m.prefiltered
            m.prefiltered = prefiltered
            for index, item in enumerate(items):
                self._handle(item)
                if stop.is_set():  # finish the item in hand, hand the others back
                    rest = items[index + 1 :]
                    break
            for match, item in buffer.due(time.monotonic()):
                self._apply(match, item)
            self.metrics.held = len(buffer)
            source.flush()
            m.scans = getattr(source, "scans", None)
            m.polls += 1
            if source.exhausted and not items:
                break
        for match, item in buffer.drain():
            self._apply(match, item)
        self.metrics.held = 0
        source.release(rest)
        source.flush()

    def _handle(self, item: Item) -> None:
        det, m = self.det, self.metrics
        assert det is not None
        payload = item.payload
        if payload is None:
            item.ack()
            return
        m.records += 1
        if isinstance(payload, Reject):
            m.rejects += 1
            det.reject(payload)
            item.ack()
            return
        m.findings += 1
        now = time.time()
        arrived = now - (time.monotonic() - item.received)
        m.event_lag = arrived - payload.flat["eventdate"].timestamp()
        if item.published is not None:
            m.source_lag = arrived - item.published
        match = det.match(payload)
        if match is None:
            item.ack()
            return
        m.matches += 1
        deadline = max(item.received + self.opts.reorder_window, self._recovery)
        if deadline > time.monotonic():
            self.buffer.add(match.eventdate, match.finding_id, deadline, (match, item))
            m.held = len(self.buffer)
            return
        self._apply(match, item)

    def _apply(self, match: Match, item: Item) -> None:
        det, m = self.det, self.metrics
        assert det is not None
        self._arrival = item.received
        det.apply(match)  # stream mode: committed when this returns
        m.observe_commit(time.monotonic() - item.received)
        m.duplicates = det.stats.duplicates
        m.suppressed = det.stats.suppressed
        m.alerts_new = len(det.throttler.new_ids)
        item.ack()

    def _on_alert(self, record: dict[str, Any]) -> None:
        self.metrics.alerts += 1
        if self.opts.notifier is not None:
            arrived = time.time() - (time.monotonic() - self._arrival)
            self.metrics.note_arrival(idempotency_key(record), arrived)
            self.opts.notifier.wake()
        if self.opts.on_alert is not None:
            self.opts.on_alert(record)

    def _read_stats(self) -> ReadStats:
        m = self.metrics
        return ReadStats(
            files=1,
            records_read=m.records,
            accepted=m.findings,
            rejected=m.rejects,
            prefiltered=m.prefiltered,
        )
