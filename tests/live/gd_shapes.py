"""GuardDuty findings in the shape the API returns them (GetFindings), for the tests of the API readers."""

from __future__ import annotations

from typing import Any

import orjson

from minerwatch.sources.botocore_shapes import to_pascal


def _drop_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _drop_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_drop_none(x) for x in v if x is not None]
    return v


def api_shape(finding: dict[str, Any]) -> dict[str, Any]:
    """A finding as GetFindings returns it: PascalCase members, no nulls, AdditionalInfo as {Value: json, Type}."""
    info = (finding.get("service") or {}).get("additionalInfo")
    out = _drop_none(to_pascal(finding))
    if info is not None:
        out["Service"]["AdditionalInfo"] = {"Value": orjson.dumps(info).decode(), "Type": "default"}
    return out
