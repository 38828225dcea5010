"""Commands about notifications: ``outbox list|retry|deliver`` and ``notify test DESTINATION``."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import typer
from rich.table import Table

from minerwatch.cli.app import DEFAULT_STATE, app, cell, err, fail, note, out
from minerwatch.errors import MinerWatchError

if TYPE_CHECKING:
    from minerwatch.notify.config import NotifyConfig
    from minerwatch.notify.outbox import DeliveryStats
    from minerwatch.rules.model import Rule

outbox_app = typer.Typer(
    help="The notification outbox: what was delivered, what waits, what is parked.", no_args_is_help=True
)
app.add_typer(outbox_app, name="outbox")
notify_app = typer.Typer(help="Notification destinations (configured in minerwatch.yaml).", no_args_is_help=True)
app.add_typer(notify_app, name="notify")

_STATE_OPT = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store.")
_CONFIG_OPT = typer.Option(
    None, "--config", "-c", help="minerwatch.yaml (default: $MINERWATCH_CONFIG, else ./minerwatch.yaml if present)."
)


def _config(path: Path | None, required: bool) -> NotifyConfig | None:
    # Start-up: the notification stack (YAML, the rule model, the outbox) is loaded by a command, not by `--help`.
    from minerwatch.notify.config import find_config, load_config

    found = find_config(path)
    if found is None:
        if required:
            fail("no minerwatch.yaml here: give --config PATH (or set MINERWATCH_CONFIG)")
        return None
    try:
        return load_config(found)
    except MinerWatchError as exc:
        fail(exc)


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@outbox_app.command("list")
def outbox_list(
    state: Path = _STATE_OPT,
    config: Path | None = _CONFIG_OPT,
    show_all: bool = typer.Option(False, "--all", help="List pending and delivered rows too, not only parked ones."),
    as_json: bool = typer.Option(False, "--json", help="JSON instead of tables."),
) -> None:
    """Rows per destination (pending / delivered / parked / superseded) and the parked rows with their last error."""
    from minerwatch.notify.base import clean, cut
    from minerwatch.notify.outbox import list_rows, open_outbox, summary

    if not state.exists():
        fail(f"no state store at {state}", 1)
    cfg = _config(config, required=False)
    db = open_outbox(state, read_only=True)
    try:
        counts = summary(db)
        for d in cfg.destinations if cfg else []:
            counts.setdefault(
                d.name, {"pending": 0, "delivered": 0, "parked": 0, "superseded": 0, "oldest_pending_seconds": None}
            )
        listed = list_rows(db) if show_all else list_rows(db, status="parked")
    finally:
        db.close()
    configured = {d.name for d in cfg.destinations} if cfg else None
    if as_json:
        print(
            orjson.dumps(
                {"destinations": counts, "rows": [r.to_json() for r in listed]}, option=orjson.OPT_INDENT_2
            ).decode()
        )
        return
    table = Table("destination", "pending", "delivered", "parked", "superseded", "oldest pending")
    for name in sorted(counts):
        c = counts[name]
        label = name if configured is None or name in configured else f"{name} (not configured)"
        oldest = "-" if c["oldest_pending_seconds"] is None else f"{c['oldest_pending_seconds']:.0f}s"
        counts_row = (str(c["pending"]), str(c["delivered"]), str(c["parked"]), str(c["superseded"]), oldest)
        table.add_row(cell(label), *counts_row)
    out.print(table)
    if listed:
        rows_table = Table("id", "destination", "alert / version", "event", "status", "attempts", "next", "last error")
        for column in rows_table.columns:
            column.overflow = "fold"
        for r in listed:
            rows_table.add_row(
                str(r.id),
                cell(r.destination),
                cell(f"{r.alert_id}:{r.version}"),
                cell(r.event),
                cell(r.status),
                str(r.attempts),
                _when(r.next_attempt) if r.status == "pending" else "-",
                cell(cut(clean(r.last_error), 300) or "-"),
            )
        out.print(rows_table)
    parked = sum(c["parked"] for c in counts.values())
    note(f"{parked} parked row(s)" + ("; `minerwatch outbox retry` sends them again" if parked else ""))


def _print_stats(stats: Any) -> None:
    for name, lane in sorted(stats.destinations.items()):
        if not lane.attempted:
            continue
        err.print(
            f"{name}: delivered {lane.delivered}, retrying {lane.retrying}, parked {lane.parked}",
            highlight=False,
            markup=False,
        )
        for e in lane.errors:
            note(f"  {e}")


@outbox_app.command("retry")
def outbox_retry(
    target: str = typer.Argument(
        "all", help="A row id (12 or #12), a destination name, an alert id, or 'all' (default)."
    ),
    state: Path = _STATE_OPT,
    config: Path | None = _CONFIG_OPT,
    deliver: bool = typer.Option(True, "--deliver/--no-deliver", help="Send the re-queued rows right away."),
) -> None:
    """Re-queue parked rows with a fresh attempt budget, and send them now (with the config)."""
    from minerwatch.notify.outbox import Dispatcher, open_outbox, requeue

    if not state.exists():
        fail(f"no state store at {state}", 1)
    db = open_outbox(state)
    try:
        result = requeue(db, target)
    finally:
        db.close()
    ids = result["requeued"] + result["hurried"]
    print(
        f"re-queued {len(result['requeued'])} parked row(s), {len(result['hurried'])} pending row(s) made due now"
        + (f", {len(result['superseded'])} superseded by newer deliveries" if result["superseded"] else "")
    )
    if not deliver or not ids:
        return
    cfg = _config(config, required=False)
    if cfg is None:
        err.print("no config found: the rows wait for the next dispatcher run", highlight=False)
        return
    with Dispatcher(state, cfg) as dispatcher:
        stats = dispatcher.deliver_due(ids=ids)
    _print_stats(stats)
    print(f"delivered {stats.delivered}, retrying {stats.retrying}, parked {stats.parked}")
    if stats.parked or stats.retrying:
        raise typer.Exit(1)


@outbox_app.command("deliver")
def outbox_deliver(
    state: Path = _STATE_OPT,
    config: Path | None = _CONFIG_OPT,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep delivering until interrupted."),
    poll: float = typer.Option(1.0, "--poll", help="With --follow: seconds between looks at the outbox."),
) -> None:
    """Send what is due (one pass), or keep the outbox flowing with --follow.

    One pass exits 1 when it parked a row (out of attempts, or a permanent error): `outbox retry` sends it again."""
    from minerwatch.notify.outbox import Dispatcher

    cfg = _config(config, required=True)
    assert cfg is not None
    with Dispatcher(state, cfg) as dispatcher:
        if not follow:
            stats = dispatcher.deliver_due()
            _print_stats(stats)
            print(f"delivered {stats.delivered}, retrying {stats.retrying}, parked {stats.parked}")
            if stats.parked:  # a row gave up for good: say so to scripts and schedulers, not only in the text
                raise typer.Exit(1)
            return
        stop = threading.Event()
        worker = threading.Thread(target=dispatcher.run, args=(stop, poll), daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            worker.join()


def synthetic_alert(now: datetime | None = None) -> dict[str, Any]:
    """A test alert shaped like a real one, marked as a test everywhere a person looks."""
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "alert_id": f"mw-test-{uuid.uuid4().hex[:12]}",
        "rule_id": "aws-guardduty-crypto-mining",
        "rule_name": "MinerWatch test notification",
        "severity": "critical",
        "priority": "P1",
        "mitre": {
            "tactics": [{"id": "TA0040", "name": "Impact"}],
            "techniques": [{"id": "T1496", "name": "Resource Hijacking"}],
        },
        "key": {"accountid": "000000000000", "instance_id": "i-00000000000000000"},
        "first_seen": stamp,
        "last_seen": stamp,
        "event_count": 1,
        "finding_ids": ["minerwatch-test"],
        "groups": [
            {
                "accountid": "000000000000",
                "instance_id": "i-00000000000000000",
                "type": "CryptoCurrency:EC2/BitcoinTool.B!DNS",
                "count": 1,
                "first_seen": stamp,
                "last_seen": stamp,
            }
        ],
        "fields": {
            "region": "us-east-1",
            "title": "Test notification from MinerWatch: no action needed",
            "description": "This alert was sent by `minerwatch notify test` to check a destination.",
        },
        "status": "new",
    }


@notify_app.command("test")
def notify_test(
    destination: str = typer.Argument(..., help="Destination name from the config."),
    config: Path | None = _CONFIG_OPT,
) -> None:
    """Send a synthetic test alert to one destination, now, outside the outbox; exit 1 if it fails."""
    from minerwatch.notify.base import Delivery, DeliveryError, RuleActions, idempotency_key, version_of
    from minerwatch.notify.config import scrub
    from minerwatch.notify.outbox import make_sender

    cfg = _config(config, required=True)
    assert cfg is not None
    dest = cfg.destination(destination)
    if dest is None:
        names = ", ".join(d.name for d in cfg.destinations) or "none"
        fail(f"no destination {destination!r} in {cfg.path} (configured: {names})")
    record = synthetic_alert()
    actions = RuleActions(cfg.rule_paths)
    sender = make_sender(dest, actions, cfg)  # type: ignore[arg-type]
    key = idempotency_key(record)
    delivery = Delivery(0, dest.name, record["alert_id"], version_of(record), key, "trigger", record)
    started = time.monotonic()
    try:
        sender.send(delivery)
    except DeliveryError as exc:
        kind = "temporary" if exc.transient else "permanent"
        fail(f"{dest.name} ({kind} failure): {scrub(exc.message, sender.secret_values())}", 1)
    finally:
        sender.close()
    print(f"{dest.name}: delivered test alert {record['alert_id']} in {time.monotonic() - started:.2f}s")




def set_status_and_notify(state: Path, alert_id: str, status: str, config: Path | None) -> dict[str, Any] | None:
    """``alerts ack|close``: change the status and queue the acknowledge / resolve in one transaction, then try
    to send those rows right away (what does not go out now stays queued for the dispatcher)."""
    from minerwatch.alerting.state import StateStore
    from minerwatch.notify.outbox import Dispatcher, enqueue

    cfg = _config(config, required=False)
    store = StateStore(state)
    try:
        store.begin()
        record = store.set_status(alert_id, status)
        ids = enqueue(store, [record], cfg) if record is not None and cfg is not None else []
        store.commit()
    finally:
        store.close()
    if record is None or not ids or cfg is None:
        return record
    with Dispatcher(state, cfg) as dispatcher:
        stats = dispatcher.deliver_due(ids=ids)
    report_delivery(stats, len(ids) - stats.delivered)
    return record


def report_delivery(stats: DeliveryStats, waiting: int) -> None:
    """Per-destination results and one line: sent, and what stays queued for the dispatcher."""
    _print_stats(stats)
    queued = f", {waiting} queued (see `minerwatch outbox list`)" if waiting else ""
    note(f"notifications: {stats.delivered} sent{queued}")


def notify_config(path: Path | None) -> NotifyConfig | None:
    """The configuration ``detect`` and ``watch`` notify through (``--config``, else ``$MINERWATCH_CONFIG``, else
    ``./minerwatch.yaml``), or ``None`` when there is none or it has no destination."""
    from minerwatch.notify.config import find_config, load_config

    found = find_config(path)
    if found is None:
        return None
    cfg = load_config(found)
    return cfg if cfg.destinations else None


def deliver_queued(state: Path, cfg: NotifyConfig, rule: Rule, ids: list[int], timeout: float) -> int:
    """Deliver the rows a batch run queued before it exits (for at most ``timeout`` seconds); returns how many
    are still queued."""
    from minerwatch.notify.outbox import Dispatcher

    with Dispatcher(state, cfg, rules=[rule]) as dispatcher:
        stats, waiting = dispatcher.drain(timeout, ids)
    report_delivery(stats, waiting)
    return waiting
