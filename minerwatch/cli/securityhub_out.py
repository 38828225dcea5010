"""``--to-securityhub`` for ``detect`` and ``watch``: alerts go to Security Hub through the notification outbox."""

from __future__ import annotations

from pathlib import Path

from minerwatch.cli.app import err
from minerwatch.notify.config import NotifyConfig, SecurityHubDestination, find_config, load_config
from minerwatch.notify.outbox import Dispatcher

DEFAULT_NAME = "securityhub"


def hub_config(config: Path | None = None) -> NotifyConfig:
    """The Security Hub destinations of minerwatch.yaml (``--config``, ``$MINERWATCH_CONFIG``, ``./minerwatch.yaml``),
    else one named ``securityhub`` with the defaults (region and credentials from the AWS environment)."""
    found = find_config(config)
    if found is not None:
        cfg = load_config(found)
        hubs = [d for d in cfg.destinations if isinstance(d, SecurityHubDestination) and d.enabled]
        if hubs:
            return cfg.model_copy(update={"destinations": hubs})
        return cfg.model_copy(update={"destinations": [_default()]})
    return NotifyConfig(destinations=[_default()])


def _default() -> SecurityHubDestination:
    return SecurityHubDestination(name=DEFAULT_NAME, type="securityhub")


def deliver(state: Path, cfg: NotifyConfig) -> int:
    """Send what the run queued, pass after pass while rows go out; print and return the rows still waiting."""
    delivered = retrying = parked = 0
    errors: list[str] = []
    with Dispatcher(state, cfg) as dispatcher:
        while True:
            stats = dispatcher.deliver_due()
            delivered += stats.delivered
            retrying, parked = stats.retrying, parked + stats.parked
            for lane in stats.destinations.values():
                errors.extend(lane.errors)
            if not stats.delivered or stats.retrying:
                break
    note = f", {retrying} waiting for a retry (`minerwatch outbox deliver`)" if retrying else ""
    note += f", {parked} parked (`minerwatch outbox list`)" if parked else ""
    err.print(f"Security Hub: {delivered} finding(s) imported or updated{note}", highlight=False, markup=False)
    for e in errors[:5]:
        err.print(f"  {e}", highlight=False, markup=False)
    return retrying + parked
