"""The typed model of a rule document (DESIGN §3).

A ``Rule`` is data: metadata, the query text with its position in the file, the alert configuration
(trigger, severity, priority, throttle), IOCs, the ordered playbook steps, the documented tuning notes,
every ``##`` section verbatim, the rule's own fixture tests and the loader's warnings.

Rule tests (``## Tests`` section, a fenced YAML list) replay fixture events through the rule:

``expect.matches``
    rows the where-clause accepts, *including* rows that are later suppressed (AWS sample findings,
    allowlisted rows). Duplicate deliveries (same ``id`` and ``updatedAt``) count once.
``expect.alerts``
    alerts produced after suppression and throttling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Severity = Literal["informational", "low", "medium", "high", "critical"]

SEVERITIES: tuple[Severity, ...] = ("informational", "low", "medium", "high", "critical")


# Plain dataclasses: the loader builds every value with its type already checked, and pydantic's import and
# model building would cost each command about 0.15 s of start-up.
_model = dataclass(kw_only=True)


@_model
class MitreRef:
    id: str
    name: str


@_model
class Mitre:
    tactics: list[MitreRef] = field(default_factory=list)
    techniques: list[MitreRef] = field(default_factory=list)


@_model
class Throttle:
    """At most ``count`` alerts per ``key`` per ``window_seconds`` of event time."""

    count: int = 1
    key: list[str] = field(default_factory=lambda: ["accountid"])
    window_seconds: int = 3600


@_model
class AlertConfig:
    trigger: str | None = None
    severity: Severity | None = None
    priority: str | None = None
    throttle: Throttle = field(default_factory=Throttle)


@_model
class Iocs:
    domains: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    """IP addresses and CIDR networks, normalised by the ``ipaddress`` module."""
    ports: list[int] = field(default_factory=list)


@_model
class FalsePositives:
    considerations: list[str] = field(default_factory=list)
    tuning: list[str] = field(default_factory=list)


@_model
class RuleTest:
    """One fixture case of a rule. ``file`` and ``allowlist`` are relative to the rule file."""

    name: str
    file: str
    expect_matches: int
    expect_alerts: int
    allowlist: str | None = None
    line: int | None = None
    """1-based line in the rule file where the case starts."""

    def fixture_path(self, rule_path: str | Path | None) -> Path:
        return _relative_to_rule(rule_path, self.file)

    def allowlist_path(self, rule_path: str | Path | None) -> Path | None:
        return None if self.allowlist is None else _relative_to_rule(rule_path, self.allowlist)


@_model
class RuleWarning:
    message: str
    line: int | None = None
    code: str | None = None
    """Set for warnings a document may acknowledge (``## Lint Acknowledgements``), e.g. ``mitre-name``."""

    def format(self, file: str | None = None) -> str:
        where = file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
        kind = f"warning[{self.code}]" if self.code else "warning"
        return f"{where}: {kind}: {self.message}"


@_model
class LintAck:
    """A lint warning the document means to have: ``- code: why`` under ``## Lint Acknowledgements``."""

    code: str
    reason: str
    line: int | None = None


@_model
class Rule:
    id: str
    name: str
    path: str | None = None
    severity: Severity
    priority: str | None = None
    description: str = ""
    mitre: Mitre = field(default_factory=Mitre)
    query: str
    query_line: int
    """1-based line in the file of the query's first line."""
    query_col_offset: int = 0
    """Columns to add to a query column to get the file column (indentation of the fence)."""
    table: str | None = None
    alert: AlertConfig = field(default_factory=AlertConfig)
    iocs: Iocs = field(default_factory=Iocs)
    recommended_actions: list[str] = field(default_factory=list)
    response_playbook: list[str] = field(default_factory=list)
    investigation_steps: list[str] = field(default_factory=list)
    false_positives: FalsePositives = field(default_factory=FalsePositives)
    enrichment: list[str] = field(default_factory=list)
    indicators: list[str] = field(default_factory=list)
    cost_impact: list[str] = field(default_factory=list)
    prevention: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    preamble: str = ""
    """Text between the title and the first ``##`` section, verbatim (usually empty)."""
    sections: dict[str, str] = field(default_factory=dict)
    """Every ``##`` section body verbatim, keyed by heading text, in document order."""
    section_lines: dict[str, int] = field(default_factory=dict)
    """1-based line of each section's heading, same keys as ``sections``."""
    tests: list[RuleTest] = field(default_factory=list)
    lint_acknowledgements: list[LintAck] = field(default_factory=list)
    warnings: list[RuleWarning] = field(default_factory=list)

    @property
    def throttle(self) -> Throttle:
        return self.alert.throttle

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole rule, with ``throttle`` also lifted to the top level."""
        out = asdict(self)
        out["throttle"] = out["alert"]["throttle"]
        return out


def _relative_to_rule(rule_path: str | Path | None, rel: str) -> Path:
    base = Path(rule_path).parent if rule_path is not None else Path.cwd()
    return base / rel
