"""The case report as Markdown (CommonMark + GFM tables and task lists).

Every value that comes from findings, logs or the alert is written as a code span (:func:`code`): nothing inside
a code span is Markdown or HTML, so a finding titled ``[x](javascript:…)`` or ``<img onerror=…>`` shows as that
text, never as a link or an element, and a bare URL or ``www.`` name is not turned into a link either. The rule's
own prose (steps, notes) is escaped character by character (:func:`text`).
"""

from __future__ import annotations

import re
from typing import Any

from minerwatch.report import format as F
from minerwatch.wording import count

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NEWLINES = re.compile(r"\r\n|[\r\n\u2028\u2029\x85]")
_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$])")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _flat(value: Any) -> str:
    s = "" if value is None else str(value)
    return _CONTROL.sub("\ufffd", _NEWLINES.sub(" ", s))


def code(value: Any, table: bool = False) -> str:
    """``value`` as a code span: one line, a backtick fence longer than any run of backticks inside, padded
    when the content starts or ends with a space or backtick (CommonMark strips one space each side). In a
    table cell ``|`` is escaped, which GFM undoes inside code spans."""
    s = _flat(value)
    if s == "":
        return "—"
    runs = [len(m) for m in re.findall(r"`+", s)]
    fence = "`" * (max(runs, default=0) + 1)
    if s[0] in " `" or s[-1] in " `":
        s = f" {s} "
    if table:
        s = s.replace("|", "\\|")
    return f"{fence}{s}{fence}"


def text(value: Any) -> str:
    """``value`` as literal Markdown text: ``<``, ``>``, ``&`` as entities, other punctuation backslashed."""
    s = _flat(value)
    s = _PUNCT.sub(r"\\\1", s)
    return "".join(_ENTITIES.get(ch, ch) for ch in s)


def _codes(values: list[Any], table: bool = False) -> str:
    return ", ".join(code(v, table) for v in values) if values else "—"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def _summary(report: dict[str, Any]) -> list[str]:
    s = report["summary"]
    what, where, when, sev, cost = s["what"], s["where"], s["when"], s["severity"], s["cost"]
    checklist, actions = report["checklist"], report["actions"]
    instances = where["instance_ids"]
    where_text = "; ".join(
        part
        for part in (
            f"account {code(where['account_id'], True)}" if where["account_id"] else "",
            f"region {code(where['region'], True)}" if where["region"] else "",
            f"instance {_codes(instances, True)}" if instances else "",
            f"type {_codes(where['instance_types'], True)}" if where["instance_types"] else "",
            f"AMI {code(where['ami_id'], True)}" if where["ami_id"] else "",
            f"VPC {code(where['vpc_id'], True)}" if where["vpc_id"] else "",
        )
        if part
    )
    since = f"first seen {code(when['first_seen'], True)}, last seen {code(when['last_seen'], True)}"
    if when["alert_hours"] is not None:
        since += f" ({F.hours(when['alert_hours'])})"
    if when["mining_evidence_first"]:
        since += (
            f"; mining evidence {code(when['mining_evidence_first'], True)} – "
            f"{code(when['mining_evidence_last'], True)}"
        )
    severity = f"{code(sev['severity'], True)}, priority {code(sev['priority'], True)}"
    if sev["finding_severity"] is not None:
        severity += f" (finding severity {code(sev['finding_severity'], True)})"
    if cost.get("total_usd") is not None:
        cost_text = f"**{F.usd(cost['total_usd'])}** — {code(cost.get('headline'), True)}"
    elif cost.get("headline"):
        cost_text = f"{text(cost['status'])}: {code(cost['headline'], True)}"
    else:
        cost_text = text(cost["status"])
    rows = [
        ("What", f"{_codes(what['finding_types'], True)}"),
        ("Title", code(what["title"], True)),
        ("Description", code(what["description"], True)),
        ("Where", where_text or "—"),
        ("Tags", _codes([F.tag_text(t) for t in where["tags"]], True)),
        ("Mining pool", code(where["mining_pool"], True)),
        (
            "Launched",
            f"by {code(where['launched_by'], True)} at {code(where['launched_at'], True)}"
            if where["launched_by"]
            else "—",
        ),
        ("Since", since),
        ("Severity", severity),
        ("Status", f"{code(s['status'], True)}; {code(count(s['event_count'], 'matched finding delivery'), True)}"),
        ("Cost", cost_text),
        ("MITRE ATT&amp;CK", _codes(F.mitre(what["mitre"]), True)),
        (
            "Response",
            f"{checklist['open']} of {count(len(checklist['items']), 'checklist item')} open; "
            f"{F.actions_text(actions)}",
        ),
    ]
    out = ["## Summary", "", _row("", ""), _row("---", "---")]
    out += [_row(f"**{k}**", v) for k, v in rows]
    out += ["", f"Finding ids: {_codes(s['finding_ids'])}", ""]
    return out


def _sections(report: dict[str, Any]) -> list[str]:
    out = ["## Enrichment", ""]
    if not report["enriched"]:
        return [*out, "The alert has not been enriched (`minerwatch enrich`).", ""]
    for name, section in report["sections"].items():
        title = report["section_titles"].get(name, name)
        out += [f"### {text(title)} — {code(section.get('status'))}", ""]
        line = section.get("headline") or section.get("reason")
        if line:
            out += [code(line), ""]
        for w in section.get("warnings") or []:
            out.append(f"- warning: {code(w)}")
        src = F.source_line(section)
        if src:
            out.append(f"- source: {code(src)}")
        rows, more = F.evidence_rows(section)
        if rows:
            out += ["", _row("time", "what", "source"), _row("---", "---", "---")]
            out += [
                _row(code(e.get("time"), True), code(e.get("what"), True), code(e.get("source"), True)) for e in rows
            ]
        if more:
            out += ["", f"*… {more} more evidence record(s) in the JSON report.*"]
        out.append("")
    return out


def _timeline(report: dict[str, Any]) -> list[str]:
    entries = report["timeline"]
    out = [f"## Timeline ({count(len(entries), 'entry')})", ""]
    if not entries:
        return [*out, "No timeline: the alert has not been enriched.", ""]
    out += [_row("time", "section", "what"), _row("---", "---", "---")]
    out += [
        _row(code(e.get("time"), True), code(e.get("section"), True), code(e.get("what"), True))
        for e in entries[: F.TIMELINE_ROWS]
    ]
    if len(entries) > F.TIMELINE_ROWS:
        out += ["", f"*… {len(entries) - F.TIMELINE_ROWS} more entries in the JSON report.*"]
    return [*out, ""]


def _actions(report: dict[str, Any]) -> list[str]:
    actions = report["actions"]
    out = [f"## Actions taken ({actions['count']})", ""]
    if not actions["entries"]:
        return [*out, text(actions["note"] or "none"), ""]
    out += [text(F.actions_text(actions)), ""]
    out += [_row("time", "actor", "action", "outcome", "AWS request id", "message"), _row(*["---"] * 6)]
    for e in actions["entries"]:
        out.append(
            _row(
                code(e["time"], True),
                code(e["actor"], True),
                code(e["action"], True),
                code(F.audit_outcome(e), True),
                code(e["aws_request_id"], True),
                code(e["message"], True),
            )
        )
    return [*out, ""]


def _checklist(report: dict[str, Any]) -> list[str]:
    cl = report["checklist"]
    out = [f"## Response checklist ({cl['open']} open of {len(cl['items'])})", ""]
    if cl["note"]:
        out += [text(cl["note"]), ""]
    for item in cl["items"]:
        box = "[ ]" if item["open"] else "[x]"
        line = f"- {box} {text(item['title'])} — {code(item['id'])}, {text(item['kind'])}, {code(item['status'])}"
        if item.get("requires_approval"):
            line += f", needs approval {code(item['requires_approval'])}"
        if item.get("done_by"):
            line += f", done by {code(item['done_by'])} at {code(item['done_at'])}"
        if item.get("auto"):
            line += f", {text(item['auto'])}"
        if item.get("message"):
            line += f": {code(item['message'])}"
        out.append(line)
        for seed in item.get("seed") or []:
            out.append(f"  - from {text(seed)}")
    return [*out, ""]


def _numbered(title: str, items: list[str]) -> list[str]:
    if not items:
        return []
    return [f"## {title}", "", *(f"{n}. {text(x)}" for n, x in enumerate(items, 1)), ""]


def render_markdown(report: dict[str, Any]) -> str:
    """The report dict of :func:`~minerwatch.report.model.build_report` as one Markdown document."""
    meta, rule = report["report"], report["rule"]
    out = [
        f"# Case report {code(meta['alert_id'])}",
        "",
        f"Rule {code(rule.get('name'))} ({code(rule.get('id'))}) · generated {code(meta['generated_at'])} · "
        f"report format {meta['version']}",
        "",
    ]
    if report["warnings"]:
        out += ["> **Warnings**", ">"] + [f"> - {code(w)}" for w in report["warnings"]] + [""]
    out += _summary(report)
    out += _sections(report)
    out += _timeline(report)
    out += _actions(report)
    out += _checklist(report)
    out += _numbered("Investigation steps", report["investigation_steps"])
    fp = report["false_positives"]
    out += _numbered("False positive considerations", fp["considerations"] + fp["tuning"])
    out += _numbered("Notes", report["notes"])
    return "\n".join(out).rstrip() + "\n"
