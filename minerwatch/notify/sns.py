"""Amazon SNS through boto3.

The message is the alert record as JSON (``format: json``, for queues and functions) or a short text
(``format: text``, for email and SMS subscribers). Every message carries the idempotency key and the event as
message attributes; FIFO topics also get it as ``MessageDeduplicationId`` so SNS itself drops duplicates within
its five-minute window. boto3's own retries are off: the outbox does the retrying.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import orjson

from minerwatch.notify.base import Delivery, DeliveryError, clean, cut, facts, summary_line
from minerwatch.notify.config import SnsDestination

SUBJECT_LIMIT = 100
MESSAGE_LIMIT = 256 * 1024
_PERMANENT_CODES = {
    "AuthorizationError",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterException",
    "NotFound",
    "NotFoundException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSecurity",
    "KMSDisabled",
    "KMSNotFound",
    "KMSInvalidState",
    "KMSAccessDenied",
    "EndpointDisabled",
    "ValidationError",
}
_boto_lock = threading.Lock()


def aws_client(service: str, profile: str | None, region: str | None, endpoint_url: str | None, timeout: float) -> Any:
    """A boto3 client that makes one attempt per call (the outbox does the retrying)."""
    import boto3  # only AWS destinations pay for importing boto3
    from botocore.config import Config

    with _boto_lock:  # boto3 session creation is not thread-safe
        session = boto3.session.Session(profile_name=profile, region_name=region)
        return session.client(
            service,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1, "mode": "standard"}
            ),
        )


def _subject(text: str) -> str:
    # SNS subjects: printable ASCII, no line breaks, at most 100 characters.
    ascii_only = re.sub(r"[^\x20-\x7e]", "?", clean(text))
    return cut(ascii_only, SUBJECT_LIMIT).replace("…", "~")


def render(record: dict[str, Any], event: str, key: str, dest: SnsDestination) -> dict[str, Any]:
    """Keyword arguments for ``sns.publish``."""
    f = facts(record)
    if dest.format == "json":
        message = orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
    else:
        lines = [summary_line(f, event), f"first seen {f.first_seen}, last seen {f.last_seen}", f"alert {f.alert_id}"]
        lines += [f"{t} x{n}" for t, n in f.types[:5]]
        message = "\n".join(lines)
    if len(message.encode()) > MESSAGE_LIMIT:
        # SNS refuses bigger messages; keep what a reader needs and say what was cut.
        slim = {k: v for k, v in record.items() if k not in ("finding_ids", "groups", "fields")}
        slim["truncated"] = ["finding_ids", "groups", "fields"]
        message = orjson.dumps(slim, option=orjson.OPT_SORT_KEYS).decode()
    kwargs: dict[str, Any] = {
        "TopicArn": dest.topic_arn,
        "Message": message,
        "Subject": _subject(summary_line(f, event)),
        "MessageAttributes": {
            "idempotency_key": {"DataType": "String", "StringValue": key},
            "event": {"DataType": "String", "StringValue": event},
            "severity": {"DataType": "String", "StringValue": f.severity or "unknown"},
            "alert_id": {"DataType": "String", "StringValue": f.alert_id or "-"},
        },
    }
    if dest.fifo:
        kwargs["MessageDeduplicationId"] = re.sub(r"[^A-Za-z0-9!-/:-@\[-`{-~]", "_", key)[:128]
        kwargs["MessageGroupId"] = dest.message_group_id
    return kwargs


class SnsSender:
    def __init__(self, dest: SnsDestination) -> None:
        self.dest = dest
        self._client: Any = None

    def _sns(self) -> Any:
        if self._client is None:
            d = self.dest
            self._client = aws_client("sns", d.profile, d.region_name, d.endpoint_url, d.timeout)
        return self._client

    def send(self, delivery: Delivery) -> None:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

        kwargs = render(delivery.record, delivery.event, delivery.key, self.dest)
        try:
            self._sns().publish(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "?"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = f"SNS {code}: {cut(clean(err.get('Message')), 200)}"
            transient = code not in _PERMANENT_CODES and (status >= 500 or status in (0, 429) or "Throttl" in code)
            raise DeliveryError(message, transient=transient) from None
        except (NoCredentialsError, ProfileNotFound) as exc:
            raise DeliveryError(f"SNS: {exc.__class__.__name__}: no usable AWS credentials", transient=False) from None
        except BotoCoreError as exc:  # connection errors, timeouts
            raise DeliveryError(f"SNS: {exc.__class__.__name__}") from None

    def secret_values(self) -> list[str]:
        return []

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
