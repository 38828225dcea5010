"""Alert notifications: destinations from ``minerwatch.yaml``, a transactional outbox, at-least-once delivery.

    config     settings, routing, retry policy, secret references (env / file), redaction
    outbox     enqueue (inside the detection transaction), Dispatcher (deliver_due / run), requeue, summary
    base       the delivery unit, DeliveryError, idempotency keys, alert facts for messages
    http       the HTTP client (timeouts, no redirects, retry-or-park classification)
    slack, webhook, pagerduty, sns, email    one module per destination type: render() + a Sender

Typical live use::

    config = load_config("minerwatch.yaml")
    options = DetectOptions(state=path, in_transaction=transaction_hook(config), on_alert=lambda r: disp.wake())
    disp = Dispatcher(path, config)
    threading.Thread(target=disp.run, args=(stop_event,)).start()
"""

from __future__ import annotations

from minerwatch.notify.config import NotifyConfig, find_config, load_config, parse_config
from minerwatch.notify.outbox import (
    DeliveryStats,
    Dispatcher,
    enqueue,
    list_rows,
    requeue,
    summary,
    transaction_hook,
)

__all__ = [
    "DeliveryStats",
    "Dispatcher",
    "NotifyConfig",
    "enqueue",
    "find_config",
    "list_rows",
    "load_config",
    "parse_config",
    "requeue",
    "summary",
    "transaction_hook",
]
