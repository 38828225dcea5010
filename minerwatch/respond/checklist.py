"""The response checklist of one alert: the plan's steps, each open or closed, and how it was closed.

Items come from the rule's playbook in the order ``respond --plan`` gives (:func:`~minerwatch.respond.plan.skeleton`).
An automated step is closed by the response journal (done or skipped). A manual item is closed by a person
(:func:`complete_item`: who, when and a note, kept in the journal and the audit log of the state store) or by
what the tool already did:

- an item about reviewing CloudTrail, once ``enrich`` stored both the ``launch_context`` and the
  ``principal_activity`` sections (not unavailable);
- an item about hunting or scanning other instances, once a ``hunt`` recorded in this state store covered the
  alert's window (:func:`record_hunt`).

This module is what the CLI and the report call; a console calls the same functions.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from minerwatch.alerting.alerts import iso, parse_iso
from minerwatch.alerting.state import StateStore
from minerwatch.errors import MinerWatchError
from minerwatch.respond import journal as J
from minerwatch.respond.actions import ACTIONS
from minerwatch.respond.plan import skeleton
from minerwatch.rules.model import Rule

CLOSED_STATUSES = frozenset({J.DONE, J.SKIPPED})
"""Statuses that close an item; anything else (pending, failed, rolled-back …) leaves it open."""

AUDIT_ACTION = "checklist:done"
HUNT_ACTION = "hunt:swept"
TRAIL_SECTIONS = ("launch_context", "principal_activity")

_TRAIL_ITEM = re.compile(r"\bcloudtrail\b", re.I)
_HUNT_ITEM = re.compile(r"\b(hunt|scan|sweep)\b.*\b(similar|other|across|fleet|account)\b", re.I)


class ChecklistError(MinerWatchError):
    """An item that does not exist, or cannot be ticked by hand."""


@dataclass
class ChecklistItem:
    number: int
    id: str
    title: str
    kind: str
    seed: list[str]
    requires_approval: str | None = None
    status: str = J.PENDING
    open: bool = True
    message: str | None = None
    done_by: str | None = None
    done_at: str | None = None
    note: str | None = None
    auto: str | None = None
    """Why the tool closed it by itself (CloudTrail reviewed by enrich, a hunt over the window)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        return out


def checklist_items(
    store: StateStore, alert: dict[str, Any], rule: Rule, warnings: list[str] | None = None
) -> list[ChecklistItem]:
    """The alert's checklist, each item with its state (see the module docstring)."""
    warnings = warnings if warnings is not None else []
    journal = _journal(store, alert["alert_id"], warnings)
    sections = _sections(store, alert["alert_id"], warnings)
    hunt = _hunt_covering(store, alert, warnings)
    items: list[ChecklistItem] = []
    for n, sk in enumerate(skeleton(list(rule.response_playbook), list(rule.recommended_actions)), 1):
        action = ACTIONS.get(sk.action) if sk.action else None
        item = ChecklistItem(
            number=n,
            id=sk.action or sk.manual_id or sk.title,
            title=(action.title or sk.action or sk.title) if action else sk.title,
            kind="automated" if sk.action else "manual",
            seed=list(sk.seed),
            requires_approval=action.approval if action else None,
        )
        status, detail = journal.get(item.id, (J.PENDING, {}))
        item.status = status
        message = detail.get("message") if isinstance(detail, dict) else None
        item.message = message if isinstance(message, str) else None
        if status == J.DONE and isinstance(detail, dict) and detail.get("by"):
            item.done_by, item.done_at, item.note = detail.get("by"), detail.get("at"), detail.get("note")
        if item.kind == "manual" and status not in CLOSED_STATUSES:
            item.auto = _auto_reason(item.title, sections, hunt)
            if item.auto is not None:
                item.status = J.DONE
        item.open = item.status not in CLOSED_STATUSES
        items.append(item)
    return items


def find_item(items: list[ChecklistItem], ref: str) -> ChecklistItem:
    """The item named by its id (``playbook-4``), its number in the checklist (``4``) or its exact title."""
    wanted = ref.strip()
    for item in items:
        if wanted in (item.id, str(item.number)) or wanted.lower() == item.title.lower():
            return item
    choices = ", ".join(f"{i.number} {i.id} ({i.title})" for i in items)
    raise ChecklistError(f"no checklist item {ref!r}; items: {choices}")


def complete_item(
    store: StateStore,
    alert: dict[str, Any],
    rule: Rule,
    ref: str,
    *,
    actor: str,
    note: str | None = None,
    at: float | None = None,
) -> ChecklistItem:
    """Tick a manual item by hand: recorded with who, when and the note in the journal and the audit log
    (one transaction). An automated step is closed by running it (``respond --execute --step``), not here."""
    item = find_item(checklist_items(store, alert, rule), ref)
    if item.kind != "manual":
        raise ChecklistError(
            f"{item.id} is an automated step: run it with `minerwatch respond {alert['alert_id']} --execute "
            f"--step {item.id}`"
        )
    when = time.time() if at is None else at
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    journal = J.Journal(store, alert["alert_id"])  # creates its table first: DDL would end the transaction
    store.begin()
    try:
        journal.set(item.id, J.DONE, by=actor, at=stamp, note=note, message=note)
        store.audit(
            AUDIT_ACTION,
            alert_id=alert["alert_id"],
            actor=actor,
            request={"item": item.id, "title": item.title, "note": note},
            result={"status": J.DONE, "message": note},
            at=when,
        )
        store.commit()
    except BaseException:
        store.rollback()
        raise
    return find_item(checklist_items(store, alert, rule), item.id)


def step_ids(rule: Rule) -> list[str]:
    """The automated steps the rule's plan can have, in the order they run (what ``--step`` accepts)."""
    return [sk.action for sk in skeleton(list(rule.response_playbook), list(rule.recommended_actions)) if sk.action]


def record_hunt(store: StateStore, start: datetime, end: datetime, summary: dict[str, Any]) -> None:
    """Note in the state store that a hunt swept the fleet's logs from ``start`` to ``end`` (record times)."""
    store.audit(
        HUNT_ACTION,
        request={"start": iso(start), "end": iso(end)},
        result={"ok": True, **summary},
    )


# -- what the tool already did ------------------------------------------------------------------------------


def _auto_reason(title: str, sections: dict[str, dict[str, Any]], hunt: dict[str, Any] | None) -> str | None:
    if _TRAIL_ITEM.search(title):
        present = [s for s in TRAIL_SECTIONS if (sections.get(s) or {}).get("status") not in (None, "unavailable")]
        if len(present) == len(TRAIL_SECTIONS):
            return "CloudTrail reviewed by enrich: the launch_context and principal_activity sections are stored"
    if _HUNT_ITEM.search(title) and hunt is not None:
        return f"hunt #{hunt['seq']} swept the fleet's logs from {hunt['start']} to {hunt['end']}, covering the alert"
    return None


def _journal(store: StateStore, alert_id: str, warnings: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    exists = store.db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='respond_steps'").fetchone()
    if exists is None:  # never responded: do not create the journal's table just to read nothing
        return {}
    try:
        return dict(J.Journal(store, alert_id).all())
    except Exception as exc:  # the journal is optional for a checklist
        warnings.append(f"response journal unreadable: {type(exc).__name__}: {exc}")
        return {}


def _sections(store: StateStore, alert_id: str, warnings: list[str]) -> dict[str, dict[str, Any]]:
    try:
        return store.enrichments(alert_id)
    except Exception as exc:
        warnings.append(f"enrichment sections unreadable: {type(exc).__name__}: {exc}")
        return {}


def _hunt_covering(store: StateStore, alert: dict[str, Any], warnings: list[str]) -> dict[str, Any] | None:
    """The latest recorded hunt whose swept records span the alert's first_seen..last_seen."""
    first, last = _instant(alert.get("first_seen")), _instant(alert.get("last_seen"))
    if first is None or last is None:
        return None
    try:
        rows = store.db.execute(
            "SELECT seq, request FROM audit WHERE action=? ORDER BY seq DESC", (HUNT_ACTION,)
        ).fetchall()
    except Exception as exc:
        warnings.append(f"audit log unreadable: {type(exc).__name__}: {exc}")
        return None
    for seq, request in rows:
        span = orjson.loads(request) if request else {}
        start, end = _instant(span.get("start")), _instant(span.get("end"))
        if start is not None and end is not None and start <= first and last <= end:
            return {"seq": seq, "start": span["start"], "end": span["end"]}
    return None


def _instant(text: Any) -> datetime | None:
    try:
        return parse_iso(text) if isinstance(text, str) else None
    except ValueError:
        return None
