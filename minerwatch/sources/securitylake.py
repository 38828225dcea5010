"""GuardDuty findings stored by Amazon Security Lake (OCSF in Parquet) → the canonical GuardDuty finding.

Security Lake keeps the Security Hub findings source (GuardDuty's findings among them) as Parquet objects laid out
``<bucket>/aws/SH_FINDINGS/<source version>/region=<r>/accountId=<a>/eventDay=<YYYYMMDD>/<name>.gz.parquet``.
The GuardDuty reader recognises a Parquet stream by its magic bytes (``PAR1``) wherever it reads (files,
folders, ``s3://bucket/prefix``) and hands it here; DuckDB's Parquet reader yields one OCSF record per row.

The OCSF version is read from each record (``metadata.version``): from 1.1 a GuardDuty finding is a Detection
Finding (``class_uid`` 2004) whose details are in ``finding_info``; in 1.0 it is a Security Finding (2001) with
``finding``. Other classes, and findings of other products, are rejects with the class or product named.

A record becomes the ASFF finding Security Hub held (then mapped by :mod:`minerwatch.sources.securityhub`, so
the three delivery forms of one finding give the same canonical finding and deduplicate):

==============================  ===================================================================================
``Id``                          ``finding_info.uid`` (the GuardDuty finding ARN), else ``metadata.uid``
``ProductArn``, ``ProductName`` ``metadata.product.uid`` / ``.name``
``AwsAccountId``, ``Region``    ``cloud.account.uid``, ``cloud.region``
``Types``, ``Title``, ...       ``finding_info.types``, ``.title``, ``.desc``
``CreatedAt``, ``UpdatedAt``    ``finding_info.created_time`` / ``modified_time`` (epoch milliseconds or
                                timestamps), else ``time``; ``first_seen_time``/``last_seen_time`` likewise
``Severity``                    ``unmapped["Severity.Product"]``/``["Severity.Original"]``, else ``severity_id``
``ProductFields``, ``Sample``   the ``unmapped`` entries ``ProductFields.<key>`` and ``Sample``
``Resources``                   ``resources[]``: ``type``, ``uid``, ``data`` (the ASFF ``Details``, JSON text or
                                object), tags from ``tags`` (OCSF 1.2+: name/value) or ``labels`` (``key:value``)
==============================  ===================================================================================

When ``raw_data`` holds the original ASFF or GuardDuty finding as JSON, that is read instead: it is the source.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from minerwatch.sources import securityhub

PARQUET_MAGIC = b"PAR1"
DETECTION_FINDING = 2004
SECURITY_FINDING = 2001
_SEVERITY_ID = {1: "INFORMATIONAL", 2: "LOW", 3: "MEDIUM", 4: "HIGH", 5: "CRITICAL", 6: "CRITICAL"}
_FETCH_ROWS = 1024


class OcsfError(securityhub.AsffError):
    """An OCSF record that cannot become a GuardDuty finding."""


def version_of(record: dict[str, Any]) -> tuple[int, int]:
    """``metadata.version`` as (major, minor); (1, 1) when absent or unreadable (Security Lake's 2.0 sources)."""
    meta = record.get("metadata")
    text = meta.get("version") if isinstance(meta, dict) else None
    if isinstance(text, str):
        parts = text.split(".")
        try:
            return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        except ValueError:
            pass
    return (1, 1)


def is_ocsf(obj: Any) -> bool:
    return isinstance(obj, dict) and "class_uid" in obj and "metadata" in obj


def to_asff(record: dict[str, Any]) -> dict[str, Any] | None:
    """The ASFF finding behind one OCSF record; None when ``raw_data`` holds a GuardDuty finding of its own."""
    class_uid = record.get("class_uid")
    version = version_of(record)
    expected = DETECTION_FINDING if version >= (1, 1) else SECURITY_FINDING
    if class_uid not in (DETECTION_FINDING, SECURITY_FINDING):
        name = record.get("class_name") or "unknown class"
        raise OcsfError("not a GuardDuty finding", f"OCSF class {class_uid} ({name}), not a Detection Finding")
    info = record.get("finding_info") if class_uid == DETECTION_FINDING else record.get("finding")
    if class_uid != expected and not isinstance(info, dict):
        raise OcsfError("not a GuardDuty finding", f"OCSF {version[0]}.{version[1]} record of class {class_uid}")
    if not isinstance(info, dict):
        raise OcsfError("missing field 'finding_info'", f"OCSF class {class_uid} record without its finding object")
    meta = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    product = meta.get("product") if isinstance(meta.get("product"), dict) else {}
    cloud = record.get("cloud") if isinstance(record.get("cloud"), dict) else {}
    account = cloud.get("account") if isinstance(cloud.get("account"), dict) else {}
    unmapped = _mapping(record.get("unmapped"))
    asff: dict[str, Any] = {
        "SchemaVersion": securityhub.ASFF_SCHEMA_VERSION,
        "Id": info.get("uid") or meta.get("uid"),
        "ProductArn": product.get("uid"),
        "ProductName": product.get("name"),
        "AwsAccountId": account.get("uid"),
        "Region": cloud.get("region"),
        "Types": list(info.get("types") or []),
        "Title": info.get("title"),
        "Description": info.get("desc"),
    }
    times = (
        ("CreatedAt", "created_time"), ("UpdatedAt", "modified_time"),
        ("FirstObservedAt", "first_seen_time"), ("LastObservedAt", "last_seen_time"),
    )
    for asff_key, key in times:
        value = _time(info.get(key))
        if value is None and asff_key == "UpdatedAt":
            value = _time(record.get("time"))
        if value is not None:
            asff[asff_key] = value
    severity: dict[str, Any] = {}
    if unmapped.get("Severity.Product") is not None:
        try:
            severity["Product"] = float(unmapped["Severity.Product"])
        except ValueError:
            pass
    if unmapped.get("Severity.Original") is not None:
        severity["Original"] = str(unmapped["Severity.Original"])
    label = _SEVERITY_ID.get(record.get("severity_id"))  # type: ignore[arg-type]
    if label is not None:
        severity["Label"] = label
    asff["Severity"] = severity
    fields = {k[len("ProductFields.") :]: v for k, v in unmapped.items() if k.startswith("ProductFields.")}
    asff["ProductFields"] = {k: v for k, v in fields.items() if v is not None}
    if str(unmapped.get("Sample", "")).lower() == "true":
        asff["Sample"] = True
    asff["Resources"] = [_resource(r) for r in record.get("resources") or [] if isinstance(r, dict)]
    if asff["ProductArn"] is None and asff["ProductName"] == "GuardDuty":
        asff["ProductArn"] = f"arn:aws:securityhub:{asff['Region'] or ''}::product/aws/guardduty"
    return asff


def to_guardduty(record: dict[str, Any]) -> dict[str, Any]:
    """One OCSF record → the finding GuardDuty delivered (camelCase or ASFF, for the reader to normalise)."""
    raw = record.get("raw_data")
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            original = orjson.loads(raw)
        except orjson.JSONDecodeError:
            original = None
        if isinstance(original, dict) and (securityhub.is_asff(original) or "accountId" in original):
            return original
    asff = to_asff(record)
    return asff if asff is not None else record


def _mapping(value: Any) -> dict[str, Any]:
    """``unmapped`` as a dict: Parquet gives a MAP (a dict, or DuckDB's key/value lists) or a STRUCT."""
    if isinstance(value, dict):
        if set(value) == {"key", "value"} and isinstance(value["key"], list):
            value = dict(zip(value["key"], value["value"], strict=False))
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = [(e["key"], e["value"]) for e in value if isinstance(e, dict) and "key" in e and "value" in e]
    else:
        return {}
    # values are strings in Security Lake; a writer that inferred timestamps gives datetimes: spell them as text
    return {
        k: securityhub.format_guardduty_time(v if v.tzinfo else v.replace(tzinfo=UTC)) if isinstance(v, datetime) else v
        for k, v in pairs
        if v is not None and isinstance(k, str)
    }


def _time(value: Any) -> str | None:
    """OCSF times are epoch milliseconds; Parquet may also hold timestamps (taken as UTC when naive)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        moment = datetime.fromtimestamp(value / 1000, UTC)
    elif isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    elif isinstance(value, str):
        return value
    else:
        return None
    return securityhub.format_guardduty_time(moment)


def _resource(res: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Type": res.get("type"), "Id": res.get("uid")}
    data = res.get("data")
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            data = None
    if isinstance(data, dict):
        out["Details"] = data
    tags: dict[str, Any] = {}
    if isinstance(res.get("tags"), list):
        for tag in res["tags"]:
            if isinstance(tag, dict) and isinstance(tag.get("name"), str):
                tags[tag["name"]] = tag.get("value")
    elif isinstance(res.get("labels"), list):
        for label in res["labels"]:
            if isinstance(label, str) and ":" in label:
                key, _, value = label.partition(":")
                tags[key] = value
    if tags:
        out["Tags"] = tags
    return out


# --------------------------------------------------------------------------------------------- Parquet


def parquet_rows(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, record) for every row of a Parquet file, through DuckDB's Parquet reader."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        cur = con.execute("SELECT * FROM read_parquet(?, hive_partitioning = false)", [path])
        names = [d[0] for d in cur.description]
        row_no = 0
        while True:
            rows = cur.fetchmany(_FETCH_ROWS)
            if not rows:
                return
            for row in rows:
                row_no += 1
                yield row_no, {n: v for n, v in zip(names, row, strict=True) if v is not None}
    finally:
        con.close()
