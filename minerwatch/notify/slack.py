"""Slack incoming webhook: ``{"text": fallback, "blocks": [...]}`` in Block Kit.

Finding text is attacker-controlled (a finding's title, description, tags can hold anything an attacker names a
resource). Slack's mrkdwn gives meaning to ``<…>`` (links, ``<!channel>``, ``<@U123>`` mentions) and ``&``
(entities), so these three are written as ``&amp;`` ``&lt;`` ``&gt;`` everywhere, as Slack's formatting guide asks;
what remains (``*bold*`` and the like) can change emphasis but never link, mention or notify.
Every text is cut to its block's limit (header 150, section text 3000, field 2000), counting the escaped form,
and never in the middle of an entity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from minerwatch.notify.base import Delivery, DeliveryError, clean, cut, facts, summary_line
from minerwatch.notify.config import SecretError, SlackDestination
from minerwatch.notify.http import HttpClient

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 3000
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_SEVERITY_MARK = {"critical": "🔴", "high": "🟠", "medium": "🟡", "low": "🔵", "informational": "⚪"}


def mrkdwn(text: Any, limit: int) -> str:
    """Clean, escape and cut ``text`` so that the escaped result has at most ``limit`` characters."""
    out: list[str] = []
    size = 0
    source = clean(text)
    for i, ch in enumerate(source):
        piece = _ESCAPES.get(ch, ch)
        room = limit - 1 if i < len(source) - 1 else limit  # keep one character for … unless this is the last
        if size + len(piece) > room:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(clean(text), limit) or "-", "emoji": False}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " ", "verbatim": True}


def _field(label: str, value: Any) -> dict[str, Any]:
    # label is ours; only the value is escaped
    return _md(f"*{label}*\n" + mrkdwn(value, FIELD_LIMIT - len(label) - 3))


def _bullets(title: str, lines: list[str], limit: int = SECTION_LIMIT) -> str:
    """``*title*`` and one line per item, each already escaped; stops before the block limit."""
    text = f"*{title}*"
    for line in lines:
        if len(text) + 1 + len(line) > limit:
            break
        text += "\n" + line
    return text


def render(
    record: dict[str, Any],
    event: str = "trigger",
    actions: list[str] | None = None,
    link: str | None = None,
    max_actions: int = 3,
    max_evidence: int = 5,
) -> dict[str, Any]:
    """The webhook payload for one alert version."""
    f = facts(record)
    mark = _SEVERITY_MARK.get(f.severity, "⚠️")
    verb = {"update": "updated", "acknowledge": "acknowledged", "resolve": "closed"}.get(event, "alert")
    header = f"{mark} {f.severity.upper()} {verb}: {f.rule_name}"
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(header, HEADER_LIMIT)}]
    if f.title:
        blocks.append({"type": "section", "text": _md(mrkdwn(f.title, SECTION_LIMIT))})
    blocks.append(
        {
            "type": "section",
            "fields": [
                _field("Severity", f"{f.severity} / {f.priority}"),
                _field("Rule", f.rule_id),
                _field("Account", f.account),
                _field("Instance", f.instance),
                _field("Region", f.region),
                _field("Events", f"{f.count} (status {f.status})"),
                _field("First seen", f.first_seen),
                _field("Last seen", f.last_seen),
            ],
        }
    )
    evidence = [f"• {mrkdwn(t, 300)} ×{n}" for t, n in f.types[:max_evidence]]
    evidence += [f"• {mrkdwn(label, 40)}: {mrkdwn(value, 300)}" for label, value in f.evidence[:max_evidence]]
    if evidence:
        blocks.append({"type": "section", "text": _md(_bullets("Top evidence", evidence))})
    if f.description:
        blocks.append({"type": "section", "text": _md(mrkdwn(f.description, SECTION_LIMIT))})
    steps = (actions or [])[:max_actions] if event == "trigger" else []
    if steps:
        lines = [f"{i}. {mrkdwn(step, 500)}" for i, step in enumerate(steps, 1)]
        blocks.append({"type": "section", "text": _md(_bullets("Recommended actions", lines))})
    context = f"alert `{mrkdwn(f.alert_id, 100)}` · version {mrkdwn(record.get('event_count'), 20)}"
    if link and link.startswith(("https://", "http://")) and not any(c in link for c in "<>|"):
        context += f" · <{link}|open in MinerWatch>"
    blocks.append({"type": "context", "elements": [_md(context)]})
    return {"text": mrkdwn(summary_line(f, event), FALLBACK_LIMIT), "blocks": blocks}


class SlackSender:
    def __init__(self, dest: SlackDestination, actions: Callable[[str], list[str]], link: Callable[[str], str | None]):
        self.dest = dest
        self._actions = actions
        self._link = link
        self._http = HttpClient(dest.timeout)
        self._secrets: list[str] = []

    def send(self, delivery: Delivery) -> None:
        try:
            url = self.dest.url.resolve()
        except SecretError as exc:
            raise DeliveryError(f"webhook URL: {exc}", transient=False) from None
        self._secrets = [url]
        record = delivery.record
        payload = render(
            record,
            delivery.event,
            self._actions(str(record.get("rule_id"))),
            self._link(delivery.alert_id),
            self.dest.max_actions,
            self.dest.max_evidence,
        )
        self._http.post(url, orjson.dumps(payload), {"Content-Type": "application/json; charset=utf-8"})

    def secret_values(self) -> list[str]:
        return list(self._secrets)

    def close(self) -> None:
        self._http.close()
