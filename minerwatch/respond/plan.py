"""A response plan is data: ordered steps, each automated (with the exact AWS calls it will make) or a manual
checklist item in the rule's own wording.

The rule's ``Response Playbook`` gives the order. Each line is matched against the automated actions it asks for
(isolate, snapshot, terminate, credentials); ``Recommended Actions`` lines that ask for an action the playbook
does not name add it too (the seed's playbook says "Review IAM credentials exposure", its recommended actions
"Reset all credentials that had access to instance"). Automated steps keep a fixed order among themselves
(:data:`ACTION_ORDER`): tagging and evidence capture come before anything changes, the instance is stopped or
terminated last. Lines that ask for no action stay manual items with the rule's wording; recommended actions
that repeat no playbook line are appended as manual items.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from minerwatch.aws.session import is_read
from minerwatch.respond import APPROVALS as APPROVALS  # defined there for `respond --help`; used from here
from minerwatch.wording import count

Kind = Literal["automated", "manual"]

ACTION_ORDER: tuple[str, ...] = (
    "tag",
    "evidence",
    # Live forensics before isolation: the quarantine group cuts the SSM agent off, and what runs now is the point.
    "live-forensics",
    "isolate",
    "nacl-deny",
    "snapshot",
    "revoke-sessions",
    "detach-profile",
    "deactivate-keys",
    "reset-credentials",
    "stop",
    "terminate",
)
"""Automated steps in the order they run."""

# What a playbook line asks for; first match wins per pattern, a line may ask for several actions.
_LINE_ACTIONS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"\b(isolat|contain\b|containment\b|quarantin)", re.I), ("isolate", "nacl-deny")),
    (re.compile(r"\bevidence\b", re.I), ("evidence",)),
    (re.compile(r"\bsnapshot", re.I), ("snapshot",)),
    (re.compile(r"\bterminat|\bremove the compromised", re.I), ("stop", "terminate")),
    (
        re.compile(r"\b(reset|rotate|revoke|deactivate|disable)\b.*\b(credential|key)", re.I),
        ("revoke-sessions", "detach-profile", "deactivate-keys", "reset-credentials"),
    ),
)

# Steps the tool adds before anything changes, whenever the plan contains a containment action.
_PREREQUISITES: tuple[str, ...] = ("tag", "evidence", "live-forensics")

PLACEHOLDER = re.compile(r"^<new:([^>]+)>$")


def placeholder(name: str) -> str:
    """A value only known once an earlier call of the same step has run (e.g. a new security group's id)."""
    return f"<new:{name}>"


@dataclass
class ApiCall:
    """One AWS API call: service, operation (the API name), parameters and region."""

    service: str
    operation: str
    params: dict[str, Any]
    region: str | None = None
    note: str = ""
    binds: dict[str, str] = field(default_factory=dict)
    """Placeholder name → key of the response that holds its value."""

    @property
    def read_only(self) -> bool:
        return is_read(self.operation)

    def resolved(self, values: dict[str, Any]) -> dict[str, Any]:
        """The parameters with every placeholder replaced by its value (a missing one raises KeyError)."""
        return _resolve(self.params, values)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "params": _printable(self.params),
        }
        if self.note:
            out["note"] = self.note
        return out

    def render(self) -> str:
        params = orjson.dumps(_printable(self.params), option=orjson.OPT_SORT_KEYS).decode()
        text = f"{self.service}:{self.operation} [{self.region or '-'}] {params}"
        return f"{text}  # {self.note}" if self.note else text


def _resolve(value: Any, values: dict[str, Any]) -> Any:
    if isinstance(value, str):
        m = PLACEHOLDER.match(value)
        return values[m.group(1)] if m else value
    if isinstance(value, dict):
        return {k: _resolve(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, values) for v in value]
    return value


def _printable(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


@dataclass
class Step:
    id: str
    title: str
    kind: Kind
    seed: list[str] = field(default_factory=list)
    """The rule's lines this step carries out, as ``"Response Playbook 2: Immediately isolate instance ..."``."""
    depends_on: list[str] = field(default_factory=list)
    requires_approval: str | None = None
    calls: list[ApiCall] = field(default_factory=list)
    """The calls that change something (or, for evidence capture, read it); printed exactly by the dry run."""
    checks: list[ApiCall] = field(default_factory=list)
    """Reads made when the step runs, to look before creating and to verify the result."""
    notes: list[str] = field(default_factory=list)
    status: str = "pending"
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "seed": self.seed,
            "depends_on": self.depends_on,
            "requires_approval": self.requires_approval,
            "calls": [c.to_json() for c in self.calls],
            "checks": [c.to_json() for c in self.checks],
            "notes": self.notes,
            "status": self.status,
        }


@dataclass
class Plan:
    alert_id: str
    rule_id: str
    incident_id: str
    instance_id: str | None
    account_id: str | None
    region: str | None
    steps: list[Step]
    evidence_uri: str | None = None
    notes: list[str] = field(default_factory=list)
    discovery: list[ApiCall] = field(default_factory=list)
    """The reads made to build the plan."""

    def step(self, step_id: str) -> Step | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def automated(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "automated"]

    def to_json(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "incident_id": self.incident_id,
            "instance_id": self.instance_id,
            "account_id": self.account_id,
            "region": self.region,
            "evidence": self.evidence_uri,
            "notes": self.notes,
            "discovery": [c.to_json() for c in self.discovery],
            "steps": [s.to_json() for s in self.steps],
        }

    def render(self) -> str:
        """The plan as text: numbered steps, each automated step with the exact calls it will make."""
        lines = [
            f"Response plan for alert {self.alert_id} (rule {self.rule_id}), incident {self.incident_id}",
            f"instance {self.instance_id or '-'} in account {self.account_id or '-'}, region {self.region or '-'}",
        ]
        if self.evidence_uri:
            lines.append(f"evidence: {self.evidence_uri}")
        lines += [f"note: {n}" for n in self.notes]
        if self.discovery:
            ops = sorted({f"{c.service}:{c.operation}" for c in self.discovery})
            lines.append(f"read to build this plan ({count(len(self.discovery), 'call')}): {', '.join(ops)}")
        for n, s in enumerate(self.steps, 1):
            tag = "auto  " if s.kind == "automated" else "manual"
            extra = []
            if s.requires_approval:
                extra.append(f"needs --approve {s.requires_approval}")
            if s.depends_on:
                extra.append("after " + ", ".join(s.depends_on))
            if s.kind == "automated":
                extra.append(s.status)
            head = f"{n:>2}. [{tag}] {s.id}: {s.title}"
            lines.append(head + (f"  ({'; '.join(extra)})" if extra else ""))
            for src in s.seed:
                lines.append(f"      from {src}")
            for note in s.notes:
                lines.append(f"      note: {note}")
            for c in s.calls:
                lines.append(f"      {'read  ' if c.read_only else 'CALL  '} {c.render()}")
            for c in s.checks:
                lines.append(f"      check  {c.render()}")
        return "\n".join(lines)


# -- the rule's playbook → ordered step skeleton ----------------------------------------------------------


def line_actions(text: str) -> list[str]:
    """The automated actions one playbook line asks for, in :data:`ACTION_ORDER`."""
    found: set[str] = set()
    for pattern, actions in _LINE_ACTIONS:
        if pattern.search(text):
            found.update(actions)
    return [a for a in ACTION_ORDER if a in found]


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def strip_emphasis(text: str) -> str:
    # "**IMMEDIATE**: Isolate ..." is kept as the rule says it, minus Markdown emphasis.
    return re.sub(r"\*\*|__", "", text).strip()


@dataclass
class SkeletonItem:
    """A step before discovery: an automated action id or a manual item, with the rule lines behind it."""

    action: str | None
    title: str
    seed: list[str]
    manual_id: str | None = None


def skeleton(playbook: list[str], recommended: list[str]) -> list[SkeletonItem]:
    """Order the rule's response steps: playbook order, automated actions merged in :data:`ACTION_ORDER`."""
    sources: dict[str, list[str]] = {}
    for n, line in enumerate(playbook, 1):
        for a in line_actions(line):
            sources.setdefault(a, []).append(f"Response Playbook {n}: {strip_emphasis(line)}")
    playbook_norms = {_norm(strip_emphasis(x)) for x in playbook}
    extra_manual: list[tuple[int, str]] = []
    for n, line in enumerate(recommended, 1):
        actions = line_actions(line)
        for a in actions:
            sources.setdefault(a, []).append(f"Recommended Actions {n}: {strip_emphasis(line)}")
        if not actions and _norm(strip_emphasis(line)) not in playbook_norms:
            extra_manual.append((n, strip_emphasis(line)))
    if sources:
        for a in _PREREQUISITES:
            sources.setdefault(a, [])
    pending = [a for a in ACTION_ORDER if a in sources]
    out: list[SkeletonItem] = []

    def emit_upto(action: str) -> None:
        rank = ACTION_ORDER.index(action)
        while pending and ACTION_ORDER.index(pending[0]) <= rank:
            a = pending.pop(0)
            out.append(SkeletonItem(a, a, sources[a]))

    for n, line in enumerate(playbook, 1):
        actions = line_actions(line)
        if actions:
            emit_upto(actions[-1])
        else:
            out.append(SkeletonItem(None, strip_emphasis(line), [f"Response Playbook {n}"], manual_id=f"playbook-{n}"))
    while pending:
        a = pending.pop(0)
        out.append(SkeletonItem(a, a, sources[a]))
    for n, line in extra_manual:
        out.append(SkeletonItem(None, line, [f"Recommended Actions {n}"], manual_id=f"recommended-{n}"))
    return out
