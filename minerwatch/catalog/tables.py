"""The table catalogue: Devo table names, their flat columns and the column types.

A canonical record (``minerwatch.sources.records.Record``) carries ``flat`` (these columns, typed as declared)
and ``doc`` (the whole record as a JSON object). A query path whose single segment names a flat column reads
the flat column; any other path reads ``doc`` (case-insensitive per segment).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ColType(StrEnum):
    STRING = "string"
    DOUBLE = "double"
    BIGINT = "bigint"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"  # timezone-aware UTC datetime in Python, TIMESTAMP (UTC, naive) in SQL


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, ColType]
    """Flat columns, lower-case names, in output order."""
    time_column: str = "eventdate"
    order_column: str = "id"
    """Tie-breaker after ``time_column`` for a total order of rows."""

    def column(self, name: str) -> ColType | None:
        return self.columns.get(name.lower())


GUARDDUTY = Table(
    name="cloud.aws.guardduty",
    columns={
        "eventdate": ColType.TIMESTAMP,  # updatedAt, else createdAt
        "accountid": ColType.STRING,
        "region": ColType.STRING,
        "type": ColType.STRING,
        "title": ColType.STRING,
        "description": ColType.STRING,
        "severity": ColType.DOUBLE,
        "id": ColType.STRING,
        "arn": ColType.STRING,
    },
)

TABLES: dict[str, Table] = {t.name: t for t in (GUARDDUTY,)}


def get_table(name: str) -> Table | None:
    return TABLES.get(name.lower())
