"""Generic webhook: POST the alert record as JSON, signed with HMAC-SHA256.

Headers on every request:

``Idempotency-Key``          ``<alert_id>:<version>`` — the same on every retry; drop what you have seen
``X-MinerWatch-Event``       ``alert.created`` | ``alert.updated`` | ``alert.acknowledged`` | ``alert.closed``
``X-MinerWatch-Delivery``    the outbox row id (also stable across retries)
``X-MinerWatch-Attempt``     1, 2, … for this row
``X-MinerWatch-Signature``   ``t=<unix seconds>,sha256=<hex>``: HMAC-SHA256 with the shared secret over
                             ``<t>.`` followed by the raw body bytes (reject old ``t`` to stop replays)

The body bytes are the same on every retry of one row.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import orjson

from minerwatch.notify.base import Delivery, DeliveryError
from minerwatch.notify.config import SecretError, WebhookDestination
from minerwatch.notify.http import HttpClient

WEBHOOK_EVENTS = {
    "trigger": "alert.created",
    "update": "alert.updated",
    "acknowledge": "alert.acknowledged",
    "resolve": "alert.closed",
}
_RESERVED = {"content-type", "idempotency-key", "content-length", "host"}


def body_of(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},sha256={mac}"


def verify(secret: str, body: bytes, header: str, max_age: float | None = 300, now: float | None = None) -> bool:
    """Check a ``X-MinerWatch-Signature`` header (what a receiver does; used by the tests too)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if max_age is not None and abs((now if now is not None else time.time()) - timestamp) > max_age:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def headers_for(dest: WebhookDestination, delivery: Delivery, secret: str, body: bytes, now: float) -> dict[str, str]:
    headers = {k: v for k, v in dest.headers.items() if k.lower() not in _RESERVED}
    headers.update(
        {
            "Content-Type": "application/json",
            "Idempotency-Key": delivery.key,
            "X-MinerWatch-Event": WEBHOOK_EVENTS.get(delivery.event, delivery.event),
            "X-MinerWatch-Delivery": str(delivery.row_id),
            "X-MinerWatch-Attempt": str(delivery.attempt),
            dest.signature_header: sign(secret, body, int(now)),
        }
    )
    return headers


class WebhookSender:
    def __init__(self, dest: WebhookDestination, clock: Callable[[], float] = time.time) -> None:
        self.dest = dest
        self._clock = clock
        self._http = HttpClient(dest.timeout, verify=dest.verify_tls)
        self._secrets: list[str] = []

    def send(self, delivery: Delivery) -> None:
        try:
            url = self.dest.resolve_url()
            secret = self.dest.secret.resolve()
        except SecretError as exc:
            raise DeliveryError(str(exc), transient=False) from None
        # An inline URL is meant to hold no secret, but its query values and user info are treated as one anyway.
        self._secrets = [secret, url]
        body = body_of(delivery.record)
        self._http.post(url, body, headers_for(self.dest, delivery, secret, body, self._clock()))

    def secret_values(self) -> list[str]:
        return list(self._secrets)

    def close(self) -> None:
        self._http.close()
