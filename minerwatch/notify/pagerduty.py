"""PagerDuty Events API v2.

``dedup_key`` is the alert id, so every version of an alert lands on one PagerDuty alert: the first ``trigger``
pages; a later ``trigger`` with the same key updates that alert without paging again; ``acknowledge`` and
``resolve`` follow the alert's status in MinerWatch. Limits from the API: summary ≤ 1024 characters,
source/component/group/class kept short, the whole event well under 512 KB.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from minerwatch.notify.base import Delivery, DeliveryError, clean, cut, facts, summary_line
from minerwatch.notify.config import PD_SEVERITY, PagerDutyDestination, SecretError
from minerwatch.notify.http import HttpClient

SUMMARY_LIMIT = 1024
SHORT_LIMIT = 255
TEXT_LIMIT = 2000
MAX_FINDING_IDS = 50


def pd_action(event: str) -> str:
    """MinerWatch delivery event → Events API ``event_action``."""
    return {"acknowledge": "acknowledge", "resolve": "resolve"}.get(event, "trigger")


def render(
    record: dict[str, Any],
    event: str,
    routing_key: str,
    *,
    severity_map: dict[str, str] | None = None,
    source: str | None = None,
    actions: list[str] | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    action = pd_action(event)
    body: dict[str, Any] = {"routing_key": routing_key, "event_action": action, "dedup_key": record["alert_id"]}
    if action != "trigger":
        return body  # acknowledge / resolve take only the key
    f = facts(record)
    mapping = severity_map or PD_SEVERITY
    ids = list(record.get("finding_ids") or [])
    details: dict[str, Any] = {
        "alert_id": f.alert_id,
        "rule_id": f.rule_id,
        "rule_name": f.rule_name,
        "priority": f.priority,
        "status": f.status,
        "account": f.account,
        "instance": f.instance,
        "region": f.region,
        "first_seen": f.first_seen,
        "last_seen": f.last_seen,
        "event_count": f.count,
        "finding_types": {t: n for t, n in f.types[:20]},
        "title": cut(f.title, TEXT_LIMIT),
        "description": cut(f.description, TEXT_LIMIT),
        "evidence": {label: cut(value, 500) for label, value in f.evidence},
        "finding_ids": [cut(clean(i), 128) for i in ids[:MAX_FINDING_IDS]],
        "finding_ids_total": len(ids),
        "recommended_actions": [cut(clean(a), 500) for a in (actions or [])[:10]],
        "mitre": record.get("mitre") or {},
    }
    body["payload"] = {
        "summary": cut(summary_line(f), SUMMARY_LIMIT),
        "source": cut(clean(source) if source else (f.instance if f.instance != "-" else f.account), SHORT_LIMIT),
        "severity": mapping.get(f.severity, "warning"),
        "timestamp": f.last_seen or f.first_seen,
        "component": cut(f.instance, SHORT_LIMIT),
        "group": cut(f.account, SHORT_LIMIT),
        "class": cut(f.types[0][0] if f.types else f.rule_id, SHORT_LIMIT),
        "custom_details": details,
    }
    body["client"] = "MinerWatch"
    if link and link.startswith(("https://", "http://")):
        body["client_url"] = link
        body["links"] = [{"href": link, "text": "Alert in MinerWatch"}]
    return body


class PagerDutySender:
    def __init__(
        self, dest: PagerDutyDestination, actions: Callable[[str], list[str]], link: Callable[[str], str | None]
    ) -> None:
        self.dest = dest
        self._actions = actions
        self._link = link
        self._http = HttpClient(dest.timeout)
        self._secrets: list[str] = []

    def send(self, delivery: Delivery) -> None:
        try:
            key = self.dest.routing_key.resolve()
        except SecretError as exc:
            raise DeliveryError(f"routing key: {exc}", transient=False) from None
        self._secrets = [key]
        record = delivery.record
        body = render(
            record,
            delivery.event,
            key,
            severity_map=self.dest.severity_map,
            source=self.dest.source,
            actions=self._actions(str(record.get("rule_id"))),
            link=self._link(delivery.alert_id),
        )
        resp = self._http.post(self.dest.url, orjson.dumps(body), {"Content-Type": "application/json"})
        try:
            answer = resp.json()
        except ValueError:
            return  # 2xx without JSON: accepted all the same
        if isinstance(answer, dict) and answer.get("status") not in (None, "success"):
            raise DeliveryError(f"PagerDuty answered {cut(clean(answer.get('message')), 200)}", transient=False)

    def secret_values(self) -> list[str]:
        return list(self._secrets)

    def close(self) -> None:
        self._http.close()
