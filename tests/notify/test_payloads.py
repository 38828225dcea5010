"""Slack and PagerDuty payloads against JSON Schemas written from their documented shapes; hostile finding text
escaped or cut, never interpreted; webhook signatures; SNS and email rendering."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from minerwatch.alerting.state import StateStore
from minerwatch.notify import email as email_mod
from minerwatch.notify import pagerduty, slack, sns, webhook
from minerwatch.notify.base import Delivery, RuleActions, facts, idempotency_key, version_of
from minerwatch.notify.config import NotifyConfig, parse_config

from .conftest import CRYPTO_SAMPLES, run_detect

# -- schemas written from the documentation -------------------------------------------------------------------

# Slack: https://api.slack.com/messaging/webhooks, https://api.slack.com/reference/block-kit/blocks,
# https://api.slack.com/reference/block-kit/composition-objects#text
_TEXT = {
    "type": "object",
    "required": ["type", "text"],
    "properties": {
        "type": {"enum": ["plain_text", "mrkdwn"]},
        "text": {"type": "string", "minLength": 1, "maxLength": 3000},
        "emoji": {"type": "boolean"},
        "verbatim": {"type": "boolean"},
    },
    "additionalProperties": False,
    "allOf": [
        {"if": {"properties": {"type": {"const": "mrkdwn"}}}, "then": {"not": {"required": ["emoji"]}}},
        {"if": {"properties": {"type": {"const": "plain_text"}}}, "then": {"not": {"required": ["verbatim"]}}},
    ],
}
_FIELD = {**_TEXT, "properties": {**_TEXT["properties"], "text": {"type": "string", "minLength": 1, "maxLength": 2000}}}
_BLOCK_ID = {"type": "string", "maxLength": 255}
SLACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1},
        "blocks": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "text"],
                        "properties": {
                            "type": {"const": "header"},
                            "text": {
                                **_TEXT,
                                "properties": {
                                    **_TEXT["properties"],
                                    "type": {"const": "plain_text"},
                                    "text": {"type": "string", "minLength": 1, "maxLength": 150},
                                },
                            },
                            "block_id": _BLOCK_ID,
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "anyOf": [{"required": ["text"]}, {"required": ["fields"]}],
                        "properties": {
                            "type": {"const": "section"},
                            "text": _TEXT,
                            "fields": {"type": "array", "minItems": 1, "maxItems": 10, "items": _FIELD},
                            "block_id": _BLOCK_ID,
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type", "elements"],
                        "properties": {
                            "type": {"const": "context"},
                            "elements": {"type": "array", "minItems": 1, "maxItems": 10, "items": _TEXT},
                            "block_id": _BLOCK_ID,
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type"],
                        "properties": {"type": {"const": "divider"}, "block_id": _BLOCK_ID},
                        "additionalProperties": False,
                    },
                ]
            },
        },
        "thread_ts": {"type": "string"},
        "mrkdwn": {"type": "boolean"},
        "unfurl_links": {"type": "boolean"},
        "unfurl_media": {"type": "boolean"},
    },
    "additionalProperties": False,
}

# PagerDuty Events API v2: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ and
# .../acknowledge-events/, .../resolve-events/
_ISO = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
PD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["routing_key", "event_action", "dedup_key"],
    "properties": {
        "routing_key": {"type": "string", "minLength": 1},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "pattern": _ISO},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "images": {"type": "array"},
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["href"],
                "properties": {"href": {"type": "string", "pattern": "^https?://"}, "text": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        "client": {"type": "string"},
        "client_url": {"type": "string"},
    },
    "additionalProperties": False,
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"not": {"anyOf": [{"required": ["payload"]}, {"required": ["links"]}, {"required": ["images"]}]}},
}

HOSTILE_TITLE = "<!channel> <!here> <@U0123> <http://evil.example|click to verify> & *pay* ~now~ `x`\n\u202eevil"
HOSTILE_TAG = "<!everyone>&amp;" + "A" * 50_000


def _hostile_findings(tmp_path: Path) -> Path:
    """The real sample findings, re-sent with attacker-chosen text where a finding carries free text."""
    out = []
    for i, line in enumerate(CRYPTO_SAMPLES.read_text().splitlines()):
        f = json.loads(line)
        f["title"] = HOSTILE_TITLE
        f["description"] = "D" * 100_000 + "<!channel>"
        f["resource"]["instanceDetails"]["tags"] = [{"key": "Name<!channel>", "value": HOSTILE_TAG}]
        f["updatedAt"] = f"2024-05-0{i + 1}T10:00:00.000Z"
        out.append(json.dumps(f))
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture
def hostile_alert(tmp_path) -> dict[str, Any]:
    state = tmp_path / "s.db"
    run_detect(state, NotifyConfig(), [_hostile_findings(tmp_path)], include_samples=True)
    alerts = StateStore(state).list_alerts()
    assert alerts and HOSTILE_TITLE.split("\n")[0] in alerts[0]["fields"]["title"]
    return alerts[0]


@pytest.fixture(scope="module")
def real_alerts(tmp_path_factory) -> list[dict[str, Any]]:
    state = tmp_path_factory.mktemp("real") / "s.db"
    run_detect(state, NotifyConfig())
    alerts = StateStore(state).list_alerts()
    assert len(alerts) >= 3
    return alerts


def _mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload["text"]]
    for block in payload["blocks"]:
        for obj in [block.get("text")] + block.get("fields", []) + block.get("elements", []):
            if obj and obj["type"] == "mrkdwn":
                texts.append(obj["text"])
    return texts


ACTIONS = RuleActions()


def test_slack_payloads_of_real_alerts_follow_the_documented_shape(real_alerts):
    for record in real_alerts:
        payload = slack.render(record, "trigger", ACTIONS(record["rule_id"]), "https://mw.example.com/a/1")
        jsonschema.validate(payload, SLACK_SCHEMA)
        text = json.dumps(payload)
        f = facts(record)
        for needle in (f.severity, f.rule_name, f.account, f.instance, f.region, f.first_seen, f.last_seen):
            assert needle in text
        assert str(record["event_count"]) in text
        assert "Isolate affected EC2 instance" in text  # the rule's first recommended action
        assert f.types[0][0] in text  # top evidence


def test_slack_escapes_hostile_text_and_cuts_it_to_block_limits(hostile_alert):
    payload = slack.render(hostile_alert, "trigger", ["<!channel> run `rm -rf` & <http://x|y>"], None)
    jsonschema.validate(payload, SLACK_SCHEMA)
    raw = json.dumps(payload, ensure_ascii=False)
    for token in ("<!channel>", "<!here>", "<!everyone>", "<@U0123>", "<http://evil.example|", "<http://x|y>"):
        assert token not in raw
    assert "&lt;!channel&gt;" in raw and "&lt;http://evil.example|click to verify&gt;" in raw
    assert "&amp;amp;" in raw  # a literal "&amp;" in the input stays literal
    assert "\u202e" not in raw and "\n\u202e" not in raw
    for text in _mrkdwn_texts(payload):
        assert "<" not in text and ">" not in text, text  # no link, mention or command can form
        # a cut never leaves half an entity behind
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text
    assert any(t.endswith("…") for t in _mrkdwn_texts(payload))  # the 100 000-character description was cut


def test_slack_cut_counts_the_escaped_length():
    assert slack.mrkdwn("<" * 10, 12) == "&lt;&lt;…"
    assert slack.mrkdwn("a&b", 7) == "a&amp;b"
    assert slack.mrkdwn("a&b", 6) == "a…"
    assert len(slack.mrkdwn("<" * 5000, 3000)) <= 3000


def test_pagerduty_trigger_ack_resolve_follow_the_documented_shape(real_alerts):
    record = real_alerts[0]
    trigger = pagerduty.render(record, "trigger", "R" * 32, actions=ACTIONS(record["rule_id"]),
                               link="https://mw.example.com/a")
    jsonschema.validate(trigger, PD_SCHEMA)
    assert trigger["dedup_key"] == record["alert_id"] and trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["component"] == record["key"]["instance_id"]
    assert trigger["payload"]["group"] == record["key"]["accountid"]
    assert trigger["payload"]["custom_details"]["recommended_actions"][0].startswith("IMMEDIATE")
    update = pagerduty.render({**record, "status": "updated", "event_count": 99}, "update", "R" * 32)
    jsonschema.validate(update, PD_SCHEMA)
    assert update["event_action"] == "trigger" and update["dedup_key"] == record["alert_id"]
    for event, action in (("acknowledge", "acknowledge"), ("resolve", "resolve")):
        body = pagerduty.render({**record, "status": "closed"}, event, "R" * 32)
        jsonschema.validate(body, PD_SCHEMA)
        assert body == {"routing_key": "R" * 32, "event_action": action, "dedup_key": record["alert_id"]}


@pytest.mark.parametrize(("severity", "expected"), [("critical", "critical"), ("high", "error"),
                                                    ("medium", "warning"), ("low", "info"), ("bogus", "warning")])
def test_pagerduty_severity_mapping(real_alerts, severity, expected):
    body = pagerduty.render({**real_alerts[0], "severity": severity}, "trigger", "k")
    jsonschema.validate(body, PD_SCHEMA)
    assert body["payload"]["severity"] == expected


def test_pagerduty_cuts_hostile_text(hostile_alert):
    body = pagerduty.render(hostile_alert, "trigger", "k")
    jsonschema.validate(body, PD_SCHEMA)
    details = body["payload"]["custom_details"]
    assert len(body["payload"]["summary"]) <= 1024
    assert len(details["description"]) <= 2000 and details["description"].endswith("…")
    assert len(orjson.dumps(body)) < 512 * 1024


def test_webhook_body_is_the_record_and_the_signature_verifies(real_alerts):
    record = real_alerts[0]
    cfg = parse_config("destinations: [{name: w, type: webhook, url: 'http://x', secret_env: S}]")
    dest = cfg.destinations[0]
    d = Delivery(7, "w", record["alert_id"], version_of(record), idempotency_key(record), "update", record, 2)
    body = webhook.body_of(record)
    headers = webhook.headers_for(dest, d, "s3cret", body, 1_700_000_000)
    assert json.loads(body) == record
    assert headers["Idempotency-Key"] == f"{record['alert_id']}:v{record['event_count']}"
    assert headers["X-MinerWatch-Event"] == "alert.updated" and headers["X-MinerWatch-Attempt"] == "2"
    sig = headers["X-MinerWatch-Signature"]
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sig == f"t=1700000000,sha256={expected}"
    assert webhook.verify("s3cret", body, sig, now=1_700_000_010)
    assert not webhook.verify("wrong", body, sig, now=1_700_000_010)
    assert not webhook.verify("s3cret", body + b" ", sig, now=1_700_000_010)
    assert not webhook.verify("s3cret", body, sig, now=1_700_009_999)  # replayed too late


def test_version_and_key_carry_event_count_and_status(real_alerts):
    record = real_alerts[0]
    n = record["event_count"]
    assert version_of(record) == f"v{n}"
    assert idempotency_key({**record, "status": "closed"}) == f"{record['alert_id']}:v{n}:closed"
    assert version_of({**record, "status": "acknowledged"}) == f"v{n}:acknowledged"
    assert version_of({**record, "status": "updated"}) == f"v{n}"


def test_sns_fifo_gets_a_deduplication_id_and_subject_rules(hostile_alert):
    cfg = parse_config(
        "destinations:\n"
        "  - {name: f, type: sns, topic_arn: 'arn:aws:sns:us-east-1:111111111111:t.fifo'}\n"
        "  - {name: s, type: sns, topic_arn: 'arn:aws:sns:us-east-1:111111111111:t', format: text}\n"
    )
    key = idempotency_key(hostile_alert)
    fifo = sns.render(hostile_alert, "trigger", key, cfg.destinations[0])
    assert fifo["MessageDeduplicationId"] == key and fifo["MessageGroupId"] == "minerwatch"
    assert fifo["MessageAttributes"]["idempotency_key"]["StringValue"] == key
    assert len(fifo["Subject"]) <= 100 and re.fullmatch(r"[\x20-\x7e]+", fifo["Subject"])
    assert len(fifo["Message"].encode()) <= 256 * 1024
    plain = sns.render(hostile_alert, "trigger", key, cfg.destinations[1])
    assert "MessageDeduplicationId" not in plain and "MessageGroupId" not in plain
    assert plain["MessageAttributes"]["idempotency_key"]["StringValue"] == key


def test_email_message_id_comes_from_the_key_and_headers_stay_single_line(hostile_alert):
    cfg = parse_config(
        "destinations: [{name: m, type: email, host: h, from: 'MW <mw@example.org>', to: [a@example.org]}]"
    )
    key = idempotency_key(hostile_alert)
    msg = email_mod.render(hostile_alert, "trigger", key, cfg.destinations[0], ["Isolate"], None)
    parsed = message_from_bytes(msg.as_bytes(), policy=default_policy)
    assert parsed["Message-ID"] == "<" + key.replace(":", ".") + "@example.org>"
    assert parsed["References"] == f"<{hostile_alert['alert_id']}@example.org>"
    assert "\n" not in str(parsed["Subject"]) and len(str(parsed["Subject"])) <= 200
    assert "Isolate" in parsed.get_content()
