"""GuardDuty finding types: resource family, default severity, and which ones mean crypto-mining.

The data (``data/guardduty_finding_types.json``) follows the GuardDuty User Guide's finding-type pages,
including retired types, so that old findings replayed in a backtest are still recognised.
``resource`` is the User Guide page the type belongs to: EC2, IAM, S3, EKS (audit logs), Runtime
(Runtime Monitoring), Malware Protection, RDS, Lambda, Attack sequence.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

DefaultSeverity = Literal["low", "medium", "high", "critical"]

_DATA = "guardduty_finding_types.json"


@dataclass(frozen=True)
class FindingType:
    type: str
    resource: str
    severity: DefaultSeverity
    crypto_mining: bool
    retired: bool = False

    @property
    def threat_purpose(self) -> str:
        """The part before ``:`` (``CryptoCurrency``, ``Impact`` ...)."""
        return self.type.split(":", 1)[0]


@lru_cache(maxsize=1)
def _load() -> tuple[FindingType, ...]:
    raw = json.loads(resources.files("minerwatch.catalog").joinpath("data", _DATA).read_text("utf-8"))
    return tuple(
        FindingType(
            type=item["type"],
            resource=item["resource"],
            severity=item["severity"],
            crypto_mining=bool(item["crypto_mining"]),
            retired=bool(item.get("retired", False)),
        )
        for item in raw["finding_types"]
    )


def load_finding_types() -> list[FindingType]:
    """All known finding types, sorted by type name (case-insensitive)."""
    return list(_load())


def crypto_mining_types() -> list[str]:
    """The finding types that report cryptocurrency mining, sorted."""
    return sorted(ft.type for ft in _load() if ft.crypto_mining)


def get_finding_type(name: str) -> FindingType | None:
    """Look a finding type up by exact name."""
    return _by_name().get(name)


@lru_cache(maxsize=1)
def _by_name() -> dict[str, FindingType]:
    return {ft.type: ft for ft in _load()}
