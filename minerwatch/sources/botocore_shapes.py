"""PascalCase ⇄ camelCase for GuardDuty findings, driven by botocore's GuardDuty service model.

``aws guardduty get-findings`` and boto3 return findings with the model's member names (PascalCase:
``AccountId``, ``Resource.InstanceDetails.Tags[].Key``); the API on the wire, EventBridge and the S3 export
use each member's ``locationName`` (camelCase: ``accountId``, ``resource.instanceDetails.tags[].key``). The
two do not always differ only by the first letter — ``ProductCode.Code`` is ``productCodeId`` on the wire,
``NetworkGeoLocation.Latitude`` is ``lat`` — so the mapping is read from the model, walking the shape tree
from ``Finding`` through structures, lists and maps.

Rules:

- a structure member is renamed to its ``locationName`` (members without one: first letter lower-cased);
- a key already spelled as the wire name is kept and still followed down the shape tree, so converting
  camelCase input is the identity;
- keys of a map shape are data (``Behavior`` maps feature names to objects) and are never renamed;
- keys the model does not know: first letter lower-cased, recursively below them;
- ``datetime`` values (boto3 parses some timestamps) become ISO 8601 strings in UTC with a ``Z``.

The model is loaded and compiled once per process, on first use (about a third of a second).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from minerwatch.catalog.guardduty_model import ShapeNode, finding_shape, lower_first

MAX_DEPTH = 100
"""Deeper documents are refused: a finding nests about a dozen levels, and this keeps recursion bounded."""

_STRUCT, _LIST, _MAP = "structure", "list", "map"


def upper_first(key: str) -> str:
    return key[:1].upper() + key[1:]


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with a Z."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # boto3 gives aware datetimes; a naive one is taken as UTC
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def _convert(value: Any, node: ShapeNode | None, wire: bool, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise ValueError(f"more than {MAX_DEPTH} levels of nesting")
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        if node is not None and node.kind == _MAP:
            for key, item in value.items():
                out[key] = _convert(item, node.child, wire, depth + 1)
            return out
        table = None
        if node is not None and node.kind == _STRUCT:
            table = node.to_wire if wire else node.to_member
        rename = lower_first if wire else upper_first
        for key, item in value.items():
            known = table.get(key) if table is not None else None
            if known is not None:
                out[known[0]] = _convert(item, known[1], wire, depth + 1)
            elif isinstance(key, str):
                out[rename(key)] = _convert(item, None, wire, depth + 1)
            else:
                out[key] = _convert(item, None, wire, depth + 1)
        return out
    if isinstance(value, list):
        child = node.child if node is not None and node.kind == _LIST else None
        return [_convert(item, child, wire, depth + 1) for item in value]
    if wire and isinstance(value, datetime):
        return iso_utc(value)
    return value


def to_camel(finding: Any) -> Any:
    """A finding with boto3 / CLI member names → the camelCase wire names. Raises ValueError if too deep."""
    return _convert(finding, finding_shape(), True, 0)


def to_pascal(finding: Any) -> Any:
    """The reverse of :func:`to_camel`: wire names → boto3 / CLI member names (unknown keys: upper_first)."""
    return _convert(finding, finding_shape(), False, 0)
