"""What the pages and the API show, read from the library: the case (the report dict of
:func:`minerwatch.report.model.build_report` plus the console's case data), rules with lint and fixture results,
the outbox, health."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from minerwatch.alerting.rule_tests import run_rule_tests
from minerwatch.alerting.state import StateStore
from minerwatch.console import store as S
from minerwatch.report import format as F
from minerwatch.report.model import build_report
from minerwatch.respond.evidence import MANIFEST_STEP, stored_files
from minerwatch.respond.journal import DONE, FAILED, Journal
from minerwatch.respond.plan import APPROVALS
from minerwatch.rules.lint import lint_path
from minerwatch.rules.loader import load_rule
from minerwatch.rules.model import Rule
from minerwatch.rules.shipped import shipped_rule, shipped_rules

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def when(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "" if ts is None else str(ts)
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def visible(value: Any) -> str:
    """Text with terminal escapes and control characters shown as ``␛`` marks, never passed to the page raw."""
    text = "" if value is None else str(value)
    return _ANSI.sub(
        lambda m: "␛" + m.group(0)[1:].replace("\x1b", "␛") if m.group(0).startswith("\x1b") else "�", text
    )


FILTERS = {"when": when, "visible": visible, "usd": F.usd, "hours": F.hours, "mitre": F.mitre, "tag_text": F.tag_text}


def evidence_files(store: StateStore, alert_id: str) -> dict[str, Any]:
    """The evidence the response stored: every step's files with their SHA-256 and the step that wrote them (what
    ``manifest.json`` lists, from the same journal entries), the manifest's hash, where they are."""
    steps = Journal(store, alert_id).all()
    evidence = steps.get("evidence", ("", {}))[1]
    status, manifest = steps.get(MANIFEST_STEP, ("", {}))
    rows = [
        {
            "name": name,
            "sha256": entry.get("sha256"),
            "bytes": entry.get("bytes") or entry.get("size"),
            "uri": entry.get("uri"),
            "captured_at": entry.get("captured_at"),
            "step": entry.get("step"),
        }
        for name, entry in sorted(stored_files(steps).items())
    ]
    if status:
        digest = manifest.get("sha256") if status == DONE else None
    else:  # a journal from before the manifest had its own row: the evidence step kept the hash
        digest = evidence.get("manifest_sha256")
    return {
        "uri": manifest.get("location") or evidence.get("uri"),
        "manifest_sha256": digest,
        "manifest_error": manifest.get("message") if status == FAILED else None,
        "files": rows,
        "errors": evidence.get("errors") or {},
    }


@lru_cache(maxsize=64)
def _shipped_rule(rule_id: str, _stamp: tuple[tuple[str, float], ...]) -> Rule | None:
    return shipped_rule(rule_id)


def report_of(store: StateStore, alert_id: str) -> dict[str, Any]:
    """:func:`build_report` with the alert's shipped rule parsed once per version of the rule files (parsing
    every rule document costs a quarter of a second, a page should not)."""
    alert = store.get_alert(alert_id)
    rule = None
    if alert is not None and alert.get("rule_id"):
        stamp = tuple((str(p), p.stat().st_mtime) for p in shipped_rules())
        rule = _shipped_rule(str(alert["rule_id"]), stamp)
    return build_report(store, alert_id, rule=rule)


def case_view(store: StateStore, alert_id: str) -> dict[str, Any]:
    """Everything the case page shows: the report, the case (assignee, disposition), comments, approvals,
    evidence files."""
    report = report_of(store, alert_id)
    real = report["report"]["alert_id"]
    return {
        "report": report,
        "case": S.case(store, real),
        "comments": S.comments(store, real),
        "approvals": S.approvals(store, real),
        "approval_steps": list(APPROVALS),
        "evidence": evidence_files(store, real),
    }


# -- rules ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _rules_cached(stamp: tuple[tuple[str, float], ...]) -> list[dict[str, Any]]:
    out = []
    for path_text, _mtime in stamp:
        path = Path(path_text)
        lint = lint_path(path)
        errors = lint.errors
        entry: dict[str, Any] = {
            "file": path.name,
            "errors": errors,
            "warnings": [w.detail for w in lint.warnings],
            "acknowledged": [f"{item.text} (acknowledged: {ack.reason})" for item, ack in lint.acknowledged],
            "tests": [],
        }
        if not errors:
            rule = load_rule(path)
            entry.update(
                id=rule.id,
                name=rule.name,
                severity=rule.severity,
                priority=rule.priority,
                table=rule.table,
                throttle=list(rule.alert.throttle.key),
            )
            if rule.table == "cloud.aws.guardduty":
                results = run_rule_tests(rule)
            else:
                from minerwatch.hunt.rule_tests import run_hunt_rule_tests

                results = run_hunt_rule_tests(rule)
            entry["tests"] = [{"name": r.test.name, "ok": r.ok, "text": r.format(path.name)} for r in results]
        out.append(entry)
    return out


def rules() -> list[dict[str, Any]]:
    """Every shipped rule with its lint errors and warnings and its fixtures' results (cached per file version)."""
    paths = shipped_rules()
    return _rules_cached(tuple((str(p), p.stat().st_mtime) for p in paths))


def hunting_rule_ids() -> list[str]:
    return [r["id"] for r in rules() if r.get("table") and r["table"] != "cloud.aws.guardduty"]


# -- health -----------------------------------------------------------------------------------------------


def health(store: StateStore, started: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    counts = dict(store.db.execute("SELECT status, COUNT(*) FROM alerts GROUP BY status").fetchall())
    last_run = store.db.execute("SELECT rule_id, started, finished FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()
    journal = store.db.execute("PRAGMA journal_mode").fetchone()[0]
    outbox_exists = store.db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='notify_outbox'"
    ).fetchone()
    outbox: dict[str, Any] = {}
    if outbox_exists:
        from minerwatch.notify.outbox import summary

        outbox = summary(store.db)
    return {
        "ok": True,
        "state": store.path,
        "journal_mode": journal,
        "alerts": counts,
        "last_run": {"rule_id": last_run[0], "started": last_run[1], "finished": last_run[2]} if last_run else None,
        "outbox": outbox,
        "uptime_seconds": round(time.time() - started, 1),
        "query_ms": round((time.perf_counter() - t0) * 1000, 2),
    }
