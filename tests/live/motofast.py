"""Make moto's in-process server fast enough for thousands of messages (test-side only; moto's behaviour is kept).

- SQS: every message's visibility check reads the clock through naive-datetime arithmetic, and each receive
  recomputes all queue attributes per message for the retention check; with a few thousand messages queued that
  makes every call take a large fraction of a second. The clock is read with ``time.time()`` instead, and the
  retention check reads the queue's retention period directly.
- EventBridge: ``put_events`` compiles the same JSONPath expressions for every event delivered to a target;
  the compiled expressions are cached (they are immutable).

None of this changes what moto answers, only how fast; the results are the same without it, only slower. The
names replaced are internals of moto, so pyproject.toml pins moto to the tested range (5.2.x), and a moto that no
longer has them fails here, loudly, instead of silently running slow.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime
from typing import Any


def speed_up_moto() -> None:
    import jsonpath_ng.ext
    from moto.sqs import models as sqs_models

    if getattr(sqs_models, "_minerwatch_fast", False):
        return
    missing = [
        name
        for owner, name in (
            (sqs_models, "unix_time"),
            (sqs_models, "unix_time_millis"),
            (sqs_models.SQSBackend, "is_message_valid_based_on_retention_period"),
            (jsonpath_ng.ext, "parse"),
        )
        if not hasattr(owner, name)
    ]
    if missing:
        raise RuntimeError(
            f"moto's internals changed (no {', '.join(missing)}): update tests/live/motofast.py and the moto pin "
            "in pyproject.toml"
        )
    original = sqs_models.unix_time

    def unix_time(dt: datetime | None = None) -> float:
        return time.time() if dt is None else original(dt)

    def unix_time_millis(dt: datetime | None = None) -> float:
        return unix_time(dt) * 1000.0

    def retained(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > time.time()

    sqs_models.unix_time = unix_time
    sqs_models.unix_time_millis = unix_time_millis
    sqs_models.SQSBackend.is_message_valid_based_on_retention_period = retained
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=512)(jsonpath_ng.ext.parse)
    sqs_models._minerwatch_fast = True
