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

import os
from pathlib import Path
from typing import TYPE_CHECKING

from minerwatch.lazy import lazy_getattr

if TYPE_CHECKING:
    from minerwatch.notify.config import NotifyConfig, load_config, parse_config
    from minerwatch.notify.outbox import (
        DeliveryStats,
        Dispatcher,
        enqueue,
        list_rows,
        requeue,
        summary,
        transaction_hook,
    )

DEFAULT_CONFIG = "minerwatch.yaml"
CONFIG_ENV = "MINERWATCH_CONFIG"


def find_config(explicit: str | Path | None = None) -> Path | None:
    """``--config`` if given; else ``$MINERWATCH_CONFIG``; else ``./minerwatch.yaml`` when it exists.

    Here rather than in ``config``: ``detect`` without a configuration need not load the settings' models."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    default = Path(DEFAULT_CONFIG)
    return default if default.is_file() else None


# The settings (pydantic models) and the outbox are loaded on first use (PEP 562).
_HOME = {
    "NotifyConfig": "config",
    "load_config": "config",
    "parse_config": "config",
    "DeliveryStats": "outbox",
    "Dispatcher": "outbox",
    "enqueue": "outbox",
    "list_rows": "outbox",
    "requeue": "outbox",
    "summary": "outbox",
    "transaction_hook": "outbox",
}


__getattr__ = lazy_getattr(__name__, _HOME)


__all__ = [
    "CONFIG_ENV",
    "DEFAULT_CONFIG",
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
