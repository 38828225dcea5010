"""Say what a record or a file is when it is not what a reader expected, so a reject names it.

Readers call these only on input they have already refused: the point is a reason like "a CloudTrail record,
not a GuardDuty finding" instead of "missing field 'type'", not to accept anything more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from minerwatch.sources.inputs import short

_FLOW_HEADER = re.compile(rb"\s*(version|account-id|interface-id|srcaddr|dstaddr)(\s+[a-z0-9-]+){3,}\s*$")
# v2 default format: version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end
# action log-status; custom formats vary, but nearly all keep an ENI id or an ACCEPT/REJECT action and NODATA/OK.
_FLOW_LINE = re.compile(
    rb"\s*[0-9]+ [0-9-]+ (eni-[0-9a-f]+|-) .*\b(OK|NODATA|SKIPDATA)\s*$|.* eni-[0-9a-f]+ .*\b(ACCEPT|REJECT)\b"
)
_CODE = re.compile(
    rb"\s*(#!|#include\b|import \w|from [\w.]+ import\b|def \w+\(|class \w+[(:]|package \w|function\b|"
    rb"(const|let|var) \w+ *=|public (static )?(class|void)|//|/\*|<\?php|<!DOCTYPE|<html|---\s*$|#\s)",
    re.IGNORECASE,
)
_CSV = re.compile(rb"[^,\t]+([,\t][^,\t]*){3,}$")

_CLOUDTRAIL = "a CloudTrail record, not a GuardDuty finding"
_WRAPPED = "a GuardDuty finding inside another tool's wrapper"
_FLOW_WRAPPED = "a VPC flow log line inside another tool's wrapper, not a GuardDuty finding"
_FINDING_TEXT = "a GuardDuty finding as JSON text"
_FINDING_KEYS = ("id", "type", "accountId")
_PASCAL_FINDING_KEYS = ("Id", "Type", "AccountId")
_MAX_DEPTH = 3


def text_kind(line: bytes) -> str:
    """What a file of non-JSON lines is, judged from its first non-blank line: a short noun phrase."""
    if _FLOW_HEADER.match(line) or _FLOW_LINE.match(line):
        return "a VPC flow log"
    if _CODE.match(line):
        return "source code or markup"
    if _CSV.match(line.strip()):
        return "CSV or tab-separated text"
    return "plain text"


@dataclass(frozen=True, slots=True)
class Kind:
    """What a refused record is: ``name`` is short and stable (reject counts use it), ``detail`` says more."""

    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


def record_kind(obj: Any) -> Kind | None:
    """What a JSON value is when it is a known record of another kind, or a GuardDuty finding inside another tool's
    wrapper; None when it is not recognised (the reader's own reason stands)."""
    if not isinstance(obj, dict):
        return None
    if _is_asff(obj):
        return None  # Security Hub findings are the GuardDuty reader's own business, not named here
    records = obj.get("Records")
    if isinstance(records, list):
        return Kind(_CLOUDTRAIL, f'a CloudTrail log file {{"Records": [...]}} with {len(records)} record(s)')
    if "eventSource" in obj and "eventName" in obj and ("eventVersion" in obj or "eventTime" in obj):
        return Kind(_CLOUDTRAIL, f"eventSource {short(obj['eventSource'])}, eventName {short(obj['eventName'])}")
    if "query_name" in obj and ("srcaddr" in obj or "query_timestamp" in obj):
        name = "a Route 53 Resolver query log record, not a GuardDuty finding"
        return Kind(name, f"query_name {short(obj['query_name'])}")
    if obj.get("messageType") == "DATA_MESSAGE" and "logEvents" in obj:
        return Kind(
            "a CloudWatch Logs subscription message, not a GuardDuty finding", f"log group {short(obj.get('logGroup'))}"
        )
    for path, value in _nested(obj, ""):
        if isinstance(value, dict) and _finding_like(value):
            return Kind(_WRAPPED, f"the finding is under '{path}'; unwrap it first (for example jq -c '.{path}')")
        if isinstance(value, str):
            inner = _string_kind(value)
            if inner is not None:
                name = _WRAPPED if inner == _FINDING_TEXT else _FLOW_WRAPPED
                return Kind(name, f"{inner} in the string field '{path}'")
    return None


def _is_asff(obj: dict[str, Any]) -> bool:
    return "ProductArn" in obj and "AwsAccountId" in obj


def _finding_like(obj: dict[str, Any]) -> bool:
    return all(k in obj for k in _FINDING_KEYS) or all(k in obj for k in _PASCAL_FINDING_KEYS)


def _nested(obj: dict[str, Any], prefix: str, depth: int = 1) -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of the object's members, breadth first, down to a few levels."""
    children: list[tuple[str, dict[str, Any]]] = []
    for key, value in obj.items():
        path = f"{prefix}{key}"
        yield path, value
        if isinstance(value, dict):
            children.append((path, value))
    if depth < _MAX_DEPTH:
        for path, child in children:
            yield from _nested(child, path + ".", depth + 1)


def _string_kind(value: str) -> str | None:
    """A GuardDuty finding serialised as JSON text, or a VPC flow log line, held in a string field."""
    text = value.strip()
    if text.startswith("{") and text.endswith("}") and len(text) <= 1_048_576:
        try:
            inner = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if isinstance(inner, dict) and _finding_like(inner):
            return _FINDING_TEXT
        return None
    if _FLOW_LINE.match(text.encode()):
        return "a VPC flow log line"
    return None
