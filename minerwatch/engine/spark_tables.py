"""Spark's table for each catalogue table, defined in one place (documented in docs/spark.md).

A catalogue table becomes a Spark relation with the table's flat columns, typed as below, plus ``doc``: the whole
canonical record as a ``VARIANT`` (``parse_json`` of the record's JSON). Timestamps are ``TIMESTAMP_NTZ`` holding
UTC wall time, so no value ever passes through the session time zone.

The readers (``minerwatch.engine.spark``) first produce an *input* relation: the same flat columns, ``doc`` as
JSON text, and a few bookkeeping columns (``_mw_*``) that say where a record came from, whether it is a reject,
and what the detection run needs to deduplicate deliveries.
"""

from __future__ import annotations

from minerwatch.catalog.tables import ColType, Table

SPARK_TYPES: dict[ColType, str] = {
    ColType.STRING: "STRING",
    ColType.DOUBLE: "DOUBLE",
    ColType.BIGINT: "BIGINT",
    ColType.BOOLEAN: "BOOLEAN",
    ColType.TIMESTAMP: "TIMESTAMP_NTZ",
}

# Bookkeeping columns of the input relation, in order, with their Spark types.
INPUT_EXTRA: dict[str, str] = {
    "_mw_kind": "STRING",  # "record", "reject" or "stats" (one per task: the reader's counters as JSON)
    "_mw_file": "STRING",
    "_mw_line": "BIGINT",
    "_mw_ord": "BIGINT",  # position of the file (or file part) in the reading order of the inputs
    "_mw_seq": "BIGINT",  # position of the record within that file part
    "_mw_sample": "BOOLEAN",  # AWS sample finding
    "_mw_delivery": "STRING",  # updatedAt, else createdAt, as written (a delivery is (id, this))
    "_mw_reason": "STRING",  # rejects: the reason; stats rows: the counters as JSON
    "_mw_excerpt": "STRING",
}


def quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_ddl(table: Table) -> str:
    """Spark DDL of the relation a compiled query reads: flat columns, then ``doc VARIANT``."""
    cols = [f"{quoted(c)} {SPARK_TYPES[t]}" for c, t in table.columns.items()]
    return ", ".join([*cols, "`doc` VARIANT"])


def input_ddl(table: Table) -> str:
    """Spark DDL of the reader's output: flat columns, ``doc`` as JSON text, bookkeeping columns."""
    cols = [f"{quoted(c)} {SPARK_TYPES[t]}" for c, t in table.columns.items()]
    cols.append("`doc` STRING")
    cols += [f"{quoted(c)} {t}" for c, t in INPUT_EXTRA.items()]
    return ", ".join(cols)


def table_select(table: Table, extra: tuple[str, ...] = ()) -> list[str]:
    """The select list turning the input relation into the table relation (``doc`` parsed into a VARIANT)."""
    return [*(quoted(c) for c in table.columns), "parse_json(`doc`) AS `doc`", *(quoted(c) for c in extra)]
