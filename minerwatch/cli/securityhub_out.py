"""``--to-securityhub`` for ``detect`` and ``watch``: alerts go to Security Hub through the notification outbox."""

from __future__ import annotations

from pathlib import Path

from minerwatch.notify.config import NotifyConfig, SecurityHubDestination, find_config, load_config

DEFAULT_NAME = "securityhub"


def _hubs(config: Path | None = None) -> list[SecurityHubDestination]:
    """The enabled Security Hub destinations of minerwatch.yaml (``--config``, ``$MINERWATCH_CONFIG``,
    ``./minerwatch.yaml``), else one named ``securityhub`` with the defaults (region and credentials from the AWS
    environment)."""
    found = find_config(config)
    if found is not None:
        hubs = [d for d in load_config(found).destinations if isinstance(d, SecurityHubDestination) and d.enabled]
        if hubs:
            return hubs
    return [SecurityHubDestination(name=DEFAULT_NAME, type="securityhub")]


def with_securityhub(cfg: NotifyConfig | None, config: Path | None = None) -> NotifyConfig:
    """``cfg`` (the run's notification settings, or None) with a Security Hub destination added when it has none,
    so alerts reach Security Hub through the same outbox and delivery as every other destination."""
    if cfg is not None and any(isinstance(d, SecurityHubDestination) for d in cfg.destinations):
        return cfg
    hubs = _hubs(config)
    return NotifyConfig(destinations=hubs) if cfg is None else cfg.model_copy(
        update={"destinations": [*cfg.destinations, *hubs]}
    )
