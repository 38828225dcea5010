"""A hunt's entities as JSON or CSV (the table lives with the command line).

CSV has one row per entity; list columns hold their values separated by spaces. Log values are attacker
data: a cell that a spreadsheet would take as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) is written with a leading ``'``.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from minerwatch.hunt.model import Entity, HuntResult

CSV_COLUMNS = (
    "account",
    "entity",
    "entity_type",
    "instance_id",
    "mapped_by",
    "evidence",
    "kinds",
    "indicators",
    "flows",
    "bytes",
    "packets",
    "accepted",
    "rejected",
    "queries",
    "findings",
    "first_seen",
    "last_seen",
    "interfaces",
    "addresses",
    "regions",
    "peers",
    "ports",
    "query_names",
    "finding_ids",
    "finding_types",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_json_text(result: HuntResult) -> str:
    return json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(_cell(v) for v in value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(entity: Entity) -> list[str]:
    data = entity.to_json()
    return [_cell(data[c]) for c in CSV_COLUMNS]


def to_csv_text(result: HuntResult) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in result.entities:
        writer.writerow(csv_row(e))
    return buf.getvalue()
