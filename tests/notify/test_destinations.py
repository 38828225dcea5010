"""SNS against moto's server and email against a local SMTP server, through the outbox like any destination."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import boto3
import pytest
from aiosmtpd.controller import Controller
from moto.server import ThreadedMotoServer

from minerwatch.alerting.state import StateStore
from minerwatch.notify.base import Delivery
from minerwatch.notify.outbox import Dispatcher, list_rows, open_outbox
from minerwatch.notify.sns import SnsSender

from .conftest import config_from, run_detect


@pytest.fixture
def aws(monkeypatch) -> Iterator[str]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _queue_for(endpoint: str, topic_arn: str, fifo: bool) -> tuple[Any, str]:
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    sns = boto3.client("sns", endpoint_url=endpoint, region_name="us-east-1")
    attrs = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    url = sqs.create_queue(QueueName="alerts.fifo" if fifo else "alerts", Attributes=attrs)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "false"})
    return sqs, url


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0)
        msgs = got.get("Messages", [])
        if not msgs:
            return out
        for m in msgs:
            out.append({"body": json.loads(m["Body"]), "attributes": m.get("Attributes", {})})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.mark.parametrize("fifo", [False, True])
def test_sns_publishes_the_alert_record_with_its_idempotency_key(tmp_path, aws, fifo):
    sns = boto3.client("sns", endpoint_url=aws, region_name="us-east-1")
    name = "minerwatch-alerts.fifo" if fifo else "minerwatch-alerts"
    attrs = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    topic = sns.create_topic(Name=name, Attributes=attrs)["TopicArn"]
    sqs, url = _queue_for(aws, topic, fifo)
    cfg = config_from(
        f"destinations:\n  - {{name: topic, type: sns, topic_arn: '{topic}', endpoint_url: '{aws}'}}\n", tmp_path
    )
    state = tmp_path / "s.db"
    stats = run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        result = disp.deliver_due()
    assert result.delivered == stats.alerts_new and not result.parked
    messages = _drain(sqs, url)
    assert len(messages) == stats.alerts_new
    alerts = {a["alert_id"]: a for a in StateStore(state).list_alerts()}
    for m in messages:
        envelope = m["body"]
        record = json.loads(envelope["Message"])
        assert record == alerts[record["alert_id"]]
        key = envelope["MessageAttributes"]["idempotency_key"]["Value"]
        assert key == f"{record['alert_id']}:v{record['event_count']}"
        assert envelope["MessageAttributes"]["event"]["Value"] == "trigger"
        assert len(envelope["Subject"]) <= 100
    rows = list_rows(open_outbox(state))
    if fifo:
        assert {m["attributes"].get("MessageDeduplicationId") for m in messages} == {r.key for r in rows}

    # At-least-once: the same row sent again (a crash after sending, before recording it) carries the same key,
    # so the receiver can drop it (SNS FIFO itself drops a repeated MessageDeduplicationId within 5 minutes).
    row = rows[0]
    sender = SnsSender(cfg.destinations[0])
    sender.send(Delivery(row.id, row.destination, row.alert_id, row.version, row.key, row.event, row.record, 2))
    again = _drain(sqs, url)
    assert {m["body"]["MessageAttributes"]["idempotency_key"]["Value"] for m in again} == {row.key}
    if fifo:
        assert {m["attributes"]["MessageDeduplicationId"] for m in again} == {row.key}


def test_sns_unknown_topic_is_parked_not_retried(tmp_path, aws):
    cfg = config_from(
        "destinations:\n  - {name: topic, type: sns, topic_arn: 'arn:aws:sns:us-east-1:123456789012:missing',\n"
        f"      endpoint_url: '{aws}'}}\n",
        tmp_path,
    )
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        result = disp.deliver_due()
    assert result.parked == 1 and result.retrying == 0
    assert "SNS NotFound" in result.destinations["topic"].errors[0]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's API)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_email_goes_out_over_smtp_with_a_message_id_from_the_key(tmp_path, smtp):
    inbox, port = smtp
    cfg = config_from(
        "destinations:\n"
        f"  - {{name: mail, type: email, host: 127.0.0.1, port: {port}, security: none,\n"
        "      from: 'MinerWatch <mw@example.org>', to: [secops@example.org, cloud@example.org]}\n",
        tmp_path,
    )
    state = tmp_path / "s.db"
    stats = run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        assert disp.deliver_due().delivered == stats.alerts_new
    assert len(inbox.messages) == stats.alerts_new
    keys = {r.key for r in list_rows(open_outbox(state))}
    for sender, rcpts, raw in inbox.messages:
        msg = message_from_bytes(raw, policy=default_policy)
        assert sender == "mw@example.org" and rcpts == ["secops@example.org", "cloud@example.org"]
        assert msg["X-MinerWatch-Idempotency-Key"] in keys
        assert msg["Message-ID"] == "<" + msg["X-MinerWatch-Idempotency-Key"].replace(":", ".") + "@example.org>"
        body = msg.get_content()
        assert "Recommended actions:" in body and "Isolate affected EC2 instance" in body
        assert "critical" in str(msg["Subject"])


def test_email_server_down_is_retried(tmp_path):
    port = _free_port()  # nothing listens there
    cfg = config_from(
        "destinations:\n"
        f"  - {{name: mail, type: email, host: 127.0.0.1, port: {port}, security: none, timeout: 2,\n"
        "      from: mw@example.org, to: [secops@example.org]}\n",
        tmp_path,
    )
    state = tmp_path / "s.db"
    run_detect(state, cfg)
    with Dispatcher(state, cfg) as disp:
        result = disp.deliver_due()
    assert result.retrying == 1 and "ConnectionRefusedError" in result.destinations["mail"].errors[0]
