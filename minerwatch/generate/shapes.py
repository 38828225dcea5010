"""Write generated findings in every input shape MinerWatch reads, with a manifest of what went where.

========================  ===================================================================================
shape                     written as (relative to the output folder)
========================  ===================================================================================
``jsonl``                 ``findings.jsonl``: one camelCase finding a line
``jsonl_gz``              ``findings.jsonl.gz``: the same, gzip
``json_array``            ``findings-array.json``: one JSON array
``eventbridge``           ``eventbridge.jsonl``: EventBridge events (``detail-type: GuardDuty Finding``)
``rest``                  ``rest/get-findings-NNNN.json``: ``{"findings": [...]}``, 50 a page like the API
``cli``                   ``cli/get-findings-NNNN.json``: ``{"Findings": [...]}``, PascalCase member names as
                          ``aws guardduty get-findings`` prints them (4-space indent, nulls omitted,
                          ``AdditionalInfo`` as ``{"Value": "<json>", "Type": "default"}``, timestamps ISO)
``s3_export``             ``AWSLogs/<account>/GuardDuty/<region>/YYYY/MM/DD/<uuid>.jsonl.gz``, one object per
                          account, region and day
========================  ===================================================================================

Each delivery goes to exactly one shape (drawn with fixed weights from the same seeded generator), so the
shapes together hold the whole stream once and the manifest's ground truth is about their union. Output is
byte-for-byte deterministic: gzip members carry no file name and mtime 0.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import random
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from minerwatch.generate import ALL_SHAPES
from minerwatch.generate.findings import ground_truth, plan
from minerwatch.generate.fleet import iso_s, new_uuid
from minerwatch.sources.botocore_shapes import to_pascal

# Share of the stream per shape: most data arrives through the S3 export and EventBridge in practice.
SHAPE_WEIGHTS: dict[str, float] = {
    "jsonl": 0.10,
    "jsonl_gz": 0.17,
    "json_array": 0.04,
    "eventbridge": 0.08,
    "rest": 0.03,
    "cli": 0.03,
    "s3_export": 0.55,
}
PAGE_SIZE = 50  # GetFindings takes at most 50 finding ids

# Members typed ``timestamp`` in the service model that the generator fills with epoch seconds (their wire
# form); the CLI prints them as ISO 8601.
_TIMESTAMP_PATHS: tuple[tuple[str, ...], ...] = (
    ("resource", "eksClusterDetails", "createdAt"),
    ("resource", "s3BucketDetails", "*", "createdAt"),
    ("resource", "lambdaDetails", "lastModifiedAt"),
    ("service", "runtimeDetails", "process", "startTime"),
    ("service", "runtimeDetails", "process", "lineage", "*", "startTime"),
)


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def _jsonl(findings: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(f) + b"\n" for f in findings)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def _cli_timestamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _fix_timestamps(node: Any, path: tuple[str, ...]) -> None:
    if not path or node is None:
        return
    head, rest = path[0], path[1:]
    if head == "*":
        for item in node if isinstance(node, list) else []:
            _fix_timestamps(item, rest)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if not rest:
        if isinstance(node[head], int | float):
            node[head] = _cli_timestamp(float(node[head]))
        return
    _fix_timestamps(node[head], rest)


def cli_finding(finding: dict[str, Any]) -> dict[str, Any]:
    """One finding as ``aws guardduty get-findings`` / boto3 (JSON-dumped) return it."""
    f = _drop_none(copy.deepcopy(finding))
    svc = f.get("service", {})
    info = svc.get("additionalInfo")
    if isinstance(info, dict):
        # The API carries the additional info only as a JSON string; the spelled-out keys are EventBridge's.
        expanded = {k: v for k, v in info.items() if k not in ("value", "type")}
        svc["additionalInfo"] = {
            "value": info.get("value", json.dumps(expanded, separators=(",", ":"))),
            "type": info.get("type", "default"),
        }
    for path in _TIMESTAMP_PATHS:
        _fix_timestamps(f, path)
    result: dict[str, Any] = to_pascal(f)
    return result


def eventbridge_event(finding: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    return {
        "version": "0",
        "id": new_uuid(rng),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": finding["accountId"],
        "time": iso_s(datetime.strptime(finding["updatedAt"], "%Y-%m-%dT%H:%M:%S.%f%z")),
        "region": finding["region"],
        "resources": [],
        "detail": finding,
    }


def _pages(items: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [items[i : i + PAGE_SIZE] for i in range(0, len(items), PAGE_SIZE)]


def write_dataset(
    out_dir: Path | str,
    n: int,
    seed: int,
    *,
    shapes: Iterable[str] = ALL_SHAPES,
    crypto_ratio: float = 0.02,
    start: datetime | None = None,
    manifest_path: Path | str | None = None,
) -> dict[str, Any]:
    """Generate ``n`` deliveries and write them under ``out_dir``, split over ``shapes``.

    Returns the manifest: every file written (path relative to ``out_dir``, shape, records), records per
    shape, and the ground truth (``minerwatch.generate.findings.ground_truth``). With ``manifest_path`` the
    manifest is also written there as JSON (keep it outside ``out_dir`` if that folder is read as input).
    """
    wanted = tuple(dict.fromkeys(shapes))
    unknown = [s for s in wanted if s not in SHAPE_WEIGHTS]
    if unknown or not wanted:
        raise ValueError(f"unknown shapes {unknown}; choose from {', '.join(ALL_SHAPES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = plan(n, seed, crypto_ratio=crypto_ratio, start=start)
    # A separate stream for layout choices, so the findings are the same whatever shapes are asked for.
    rng = random.Random(f"{seed}:shapes")
    weights = [SHAPE_WEIGHTS[s] for s in wanted]
    parts: dict[str, list[dict[str, Any]]] = {s: [] for s in wanted}
    for d in p.deliveries:
        parts[rng.choices(wanted, weights=weights)[0]].append(d.finding)

    files: list[dict[str, Any]] = []

    def emit(rel: str, shape: str, data: bytes, records: int) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        files.append({"path": rel, "shape": shape, "records": records, "bytes": len(data)})

    for shape in wanted:
        items = parts[shape]
        if shape == "jsonl":
            emit("findings.jsonl", shape, _jsonl(items), len(items))
        elif shape == "jsonl_gz":
            emit("findings.jsonl.gz", shape, _gzip_bytes(_jsonl(items)), len(items))
        elif shape == "json_array":
            emit("findings-array.json", shape, orjson.dumps(items) + b"\n", len(items))
        elif shape == "eventbridge":
            emit("eventbridge.jsonl", shape, _jsonl(eventbridge_event(f, rng) for f in items), len(items))
        elif shape == "rest":
            for i, page in enumerate(_pages(items), 1):
                emit(
                    f"rest/get-findings-{i:04d}.json",
                    shape,
                    orjson.dumps({"findings": page}) + b"\n",
                    len(page),
                )
        elif shape == "cli":
            for i, page in enumerate(_pages(items), 1):
                doc = {"Findings": [cli_finding(f) for f in page]}
                emit(
                    f"cli/get-findings-{i:04d}.json",
                    shape,
                    (json.dumps(doc, indent=4, ensure_ascii=False) + "\n").encode(),
                    len(page),
                )
        elif shape == "s3_export":
            groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
            for f in items:
                groups[(f["accountId"], f["region"], f["updatedAt"][:10])].append(f)
            for (acct, region, day), group in sorted(groups.items()):
                y, m, dd = day.split("-")
                rel = f"AWSLogs/{acct}/GuardDuty/{region}/{y}/{m}/{dd}/{new_uuid(rng)}.jsonl.gz"
                emit(rel, shape, _gzip_bytes(_jsonl(group)), len(group))

    manifest: dict[str, Any] = {
        "generator": "minerwatch.generate.findings",
        "seed": seed,
        "n": n,
        "crypto_ratio": crypto_ratio,
        "start": p.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "shapes": {
            s: {"records": len(parts[s]), "files": sum(1 for f in files if f["shape"] == s)} for s in wanted
        },
        "files": files,
        "ground_truth": ground_truth(p),
    }
    if manifest_path is not None:
        mp = Path(manifest_path)
        mp.parent.mkdir(parents=True, exist_ok=True)
        mp.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest
