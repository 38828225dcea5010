"""Which reader reads which catalogue table: one entry point for every table's records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from minerwatch.catalog.tables import CLOUDTRAIL, GUARDDUTY, ROUTE53RESOLVER, VPCFLOW
from minerwatch.errors import InputError
from minerwatch.sources.cloudtrail import read_cloudtrail
from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats, Record, Reject
from minerwatch.sources.route53 import read_route53
from minerwatch.sources.vpcflow import read_vpcflow


class Reader(Protocol):
    """``read_<table>(paths, *, on_reject, stats, prefilter=None, s3_client=None)``."""

    def __call__(
        self,
        paths: Sequence[str],
        *,
        on_reject: Callable[[Reject], None],
        stats: ReadStats,
        prefilter: Callable[[bytes], bool] | None = None,
        s3_client: Any | None = None,
    ) -> Iterator[Record]: ...


READERS: dict[str, Reader] = {
    GUARDDUTY.name: read_guardduty,
    CLOUDTRAIL.name: read_cloudtrail,
    VPCFLOW.name: read_vpcflow,
    ROUTE53RESOLVER.name: read_route53,
}
"""Reader of each catalogue table, by table name (lower case)."""


def get_reader(table: str) -> Reader:
    """The reader of ``table`` (case-insensitive); :class:`~minerwatch.errors.InputError` if there is none."""
    reader = READERS.get(table.lower())
    if reader is None:
        raise InputError(f"unknown table {table!r} (known tables: {', '.join(sorted(READERS))})")
    return reader


def read_table(
    table: str,
    paths: Sequence[str],
    *,
    on_reject: Callable[[Reject], None],
    stats: ReadStats,
    prefilter: Callable[[bytes], bool] | None = None,
    s3_client: Any | None = None,
) -> Iterator[Record]:
    """Canonical records of ``table`` from ``paths`` (files, folders, ``-``, ``s3://bucket/prefix``).

    Raises :class:`~minerwatch.errors.InputError` for an unknown table, naming the known ones, and (as each
    reader does) for a path that does not exist — both before anything is read.
    """
    reader = get_reader(table)
    return reader(paths, on_reject=on_reject, stats=stats, prefilter=prefilter, s3_client=s3_client)
