"""Allowlist files (DESIGN §6): YAML entries that suppress matched rows, each with a required reason.

```yaml
- reason: "Approved blockchain research, TICKET-123"   # required
  expires: 2027-01-01T00:00:00Z                         # optional; expired entries no longer apply and are reported
  accountid: "111111111111"                              # any selected column: a value or a list
  instance_id: [i-0abc, i-0def]
  tags: {Environment: dev, CryptoApproved: "true"}       # every listed tag must be on the instance
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from minerwatch.errors import ConfigError
from minerwatch.yamlfile import parse_yaml

_RESERVED = {"reason", "expires", "tags"}


@dataclass(frozen=True)
class AllowEntry:
    reason: str
    line: int
    expires: datetime | None = None
    match: dict[str, frozenset[str]] = field(default_factory=dict)
    """Column (lower case) → accepted values, compared as text."""
    tags: dict[str, str] = field(default_factory=dict)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now

    def matches(self, lowered: dict[str, Any]) -> bool:
        """Whether a row (its column names lower-cased) is allowed by this entry."""
        for col, accepted in self.match.items():
            if col not in lowered or _text(lowered[col]) not in accepted:
                return False
        if self.tags:
            tags = tag_dict(lowered.get("tags"))
            if any(tags.get(k) != v for k, v in self.tags.items()):
                return False
        return True


@dataclass
class Allowlist:
    path: str | None
    entries: list[AllowEntry]
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @cached_property
    def active(self) -> list[AllowEntry]:
        """Entries not yet expired at ``now`` (fixed for the run, so worked out once)."""
        return [e for e in self.entries if not e.expired(self.now)]

    @property
    def expired(self) -> list[AllowEntry]:
        return [e for e in self.entries if e.expired(self.now)]

    def check(self, row: dict[str, Any]) -> AllowEntry | None:
        """The first active entry that matches ``row``, or None."""
        if not self.active:
            return None
        lowered = {k.lower(): v for k, v in row.items()}
        return next((entry for entry in self.active if entry.matches(lowered)), None)


def tag_dict(value: Any) -> dict[str, str]:
    """GuardDuty tags come as ``[{key, value}]``; accept a plain mapping too."""
    if isinstance(value, dict):
        return {str(k): _text(v) for k, v in value.items()}
    out: dict[str, str] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                low = {str(k).lower(): v for k, v in item.items()}
                if "key" in low:
                    out[str(low["key"])] = _text(low.get("value"))
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def _parse_time(value: Any, file: str, line: int) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"'expires' is not an ISO 8601 time: {value!r}", file=file, line=line) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_allowlist(path: str | Path, now: datetime | None = None) -> Allowlist:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read allowlist: {exc}", file=file) from None
    return parse_allowlist(text, file, now)


def parse_allowlist(text: str, file: str = "<allowlist>", now: datetime | None = None) -> Allowlist:
    data, root = parse_yaml(text, file)
    if data is None:
        return Allowlist(file, [], now or datetime.now(UTC))
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise ConfigError("an allowlist is a YAML list of entries", file=file, line=1)
    entries = []
    for raw, node in zip(data, root.value, strict=True):
        line = node.start_mark.line + 1
        if not isinstance(raw, dict):
            raise ConfigError("each allowlist entry is a mapping", file=file, line=line)
        reason = raw.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("allowlist entry has no 'reason' (it is required)", file=file, line=line)
        expires = _parse_time(raw["expires"], file, line) if raw.get("expires") is not None else None
        tags_raw = raw.get("tags") or {}
        if not isinstance(tags_raw, dict):
            raise ConfigError("'tags' must be a mapping of tag key to value", file=file, line=line)
        match: dict[str, frozenset[str]] = {}
        for key, value in raw.items():
            if str(key).lower() in _RESERVED:
                continue
            values = value if isinstance(value, list) else [value]
            if any(isinstance(v, dict | list) for v in values):
                raise ConfigError(f"'{key}' must be a value or a list of values", file=file, line=line)
            match[str(key).lower()] = frozenset(_text(v) for v in values)
        if not match and not tags_raw:
            raise ConfigError(
                "allowlist entry matches everything: give at least one column or tag", file=file, line=line
            )
        entries.append(
            AllowEntry(
                reason=reason.strip(),
                line=line,
                expires=expires,
                match=match,
                tags={str(k): _text(v) for k, v in tags_raw.items()},
            )
        )
    return Allowlist(file, entries, now or datetime.now(UTC))
