"""Route 53 Resolver query log reader: JSON records → canonical records of ``cloud.aws.route53resolver``.

Inputs as for every reader (files, folders — the S3 layout
``AWSLogs/<account>/vpcdnsquerylogs/<vpc-id>/YYYY/MM/DD/*.log.gz`` included —, ``.gz``, ``-``,
``s3://bucket/prefix``). Shapes: JSON Lines, one object per line (S3 and CloudWatch delivery); whole
documents — one pretty-printed object, several one after the other, a JSON array; Panther test fixtures
(``{"tests": [{"Log": record}]}``, ``[{"Name": .., "Log": record}]``), whose zone-less UTC timestamps are
accepted there only. Panther's normalised fixtures write ``answers`` as an object where real logs have an
array: the document keeps it as written.

A record needs ``query_timestamp`` (ISO 8601 with a zone) and ``query_name``; ``srcport`` (a string in the
logs) must be an integer. Anything else is a reject with file, line and reason — an OCSF DNS Activity
record (``class_uid`` 4003) is named as such. The whole record is ``Record.doc``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from minerwatch.catalog.tables import ROUTE53RESOLVER
from minerwatch.sources.cloudtrail import (
    MAX_DOCUMENT_BYTES,
    MAX_RECORD_BYTES,
    JsonLogReader,
    RecordError,
    opt_obj,
    opt_str,
    parse_timestamp,
    req_str,
)
from minerwatch.sources.inputs import json_type, short
from minerwatch.sources.records import ReadStats, Record, Reject

TABLE = ROUTE53RESOLVER.name


def normalise_query_name(name: str) -> str:
    """Lower case, without the trailing dot the logs keep: ``Pool.MinerGate.com.`` → ``pool.minergate.com``."""
    return (name[:-1] if name.endswith(".") else name).lower()


def route53_record(obj: Any, file: str, line: int, panther: bool = False) -> Record:
    """One Route 53 Resolver query log record → canonical record. Raises :class:`RecordError`."""
    if not isinstance(obj, dict):
        raise RecordError("not a Route 53 Resolver query log", f"expected an object, got {json_type(obj)}")
    if "query_timestamp" not in obj and "class_uid" in obj:
        raise RecordError(
            "not a Route 53 Resolver query log",
            f"an OCSF record (class_uid {short(obj['class_uid'])})",
        )
    if obj.get("query_timestamp") is None:
        req_str(obj, "query_timestamp", "not a Route 53 Resolver query log")
    eventdate = parse_timestamp(obj["query_timestamp"], "query_timestamp", naive_utc=panther)
    raw_name = obj.get("query_name")
    if type(raw_name) is not str:
        if raw_name is None:
            raise RecordError("missing field 'query_name'", "not a Route 53 Resolver query log")
        raise RecordError("bad field 'query_name'", f"expected a string, got {json_type(raw_name)} {short(raw_name)}")
    srcids = opt_obj(obj, "srcids")
    flat = {
        "eventdate": eventdate,
        "accountid": opt_str(obj, "account_id"),
        "region": opt_str(obj, "region"),
        "vpc_id": opt_str(obj, "vpc_id"),
        "query_name": normalise_query_name(raw_name),
        "query_name_raw": raw_name,
        "query_type": opt_str(obj, "query_type"),
        "query_class": opt_str(obj, "query_class"),
        "rcode": opt_str(obj, "rcode"),
        "srcaddr": opt_str(obj, "srcaddr"),
        "srcport": _port(obj.get("srcport")),
        "transport": opt_str(obj, "transport"),
        "instance_id": opt_str(srcids, "instance"),
        "resolver_endpoint_id": opt_str(srcids, "resolver_endpoint"),
        "firewall_rule_action": opt_str(obj, "firewall_rule_action"),
    }
    return Record(table=TABLE, flat=flat, doc=obj, file=file, line=line)


def _port(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is int and 0 <= value <= 65535:
        return value
    if type(value) is str and value.isascii() and value.isdigit() and len(value) <= 5 and int(value) <= 65535:
        return int(value)
    raise RecordError("bad field 'srcport'", f"not a port number: {short(value)}")


def read_route53(
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    s3_client: Any | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    max_document_bytes: int = MAX_DOCUMENT_BYTES,
) -> Iterator[Record]:
    """Canonical Route 53 Resolver query log records from ``paths``, in order.

    Same contract as :func:`minerwatch.sources.cloudtrail.read_cloudtrail`.
    """
    reader = JsonLogReader(
        route53_record,
        on_reject=on_reject,
        stats=stats,
        prefilter=prefilter,
        max_record_bytes=max_record_bytes,
        max_document_bytes=max_document_bytes,
    )
    return reader.read(paths, s3_client)
