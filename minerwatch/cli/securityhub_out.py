"""``--to-securityhub`` for ``detect`` and ``watch``: alerts go to Security Hub through the notification outbox."""

from __future__ import annotations

from pathlib import Path

from minerwatch.notify.config import NotifyConfig, SecurityHubDestination, find_config, load_config

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


def with_securityhub(cfg: NotifyConfig | None, config: Path | None = None) -> NotifyConfig:
    """``cfg`` (the run's notification settings, or None) with a Security Hub destination added when it has none,
    so alerts reach Security Hub through the same outbox and delivery as every other destination."""
    if cfg is not None and any(isinstance(d, SecurityHubDestination) for d in cfg.destinations):
        return cfg
    hubs = hub_config(config).destinations
    return NotifyConfig(destinations=hubs) if cfg is None else cfg.model_copy(
        update={"destinations": [*cfg.destinations, *hubs]}
    )
