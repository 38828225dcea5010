"""GuardDuty findings read from the API as an input of ``detect`` and ``hunt``: ``guardduty://REGION[/DETECTOR]``.

Every detector of the region (``ListDetectors``; or the one named) is one input stream, named
``guardduty://REGION/DETECTOR``: its findings, oldest update first, as one JSON line each in the PascalCase shape
the API returns — read, normalised and rejected exactly as the same findings in a file::

    ListFindings(DetectorId, SortCriteria={"AttributeName": "updatedAt", "OrderBy": "ASC"}, MaxResults=50)
    GetFindings(DetectorId, FindingIds=<that page's ids>, SortCriteria=<the same>)

Pages are fetched as the reader asks for them, so the findings are never all held at once. ``watch --guardduty``
(``minerwatch.live.gdapi``) polls the same calls with a cursor; both use :func:`list_detector_ids` and
:func:`finding_pages` from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson

from minerwatch.errors import InputError, MinerWatchError
from minerwatch.sources.inputs import Input, RejectSink, SourceError
from minerwatch.sources.records import ReadStats

SCHEME = "guardduty://"
PAGE_SIZE = 50
"""The most ListFindings returns and GetFindings accepts at once."""
SORT = {"AttributeName": "updatedAt", "OrderBy": "ASC"}


def parse_url(url: str) -> tuple[str, str | None]:
    """``guardduty://REGION[/DETECTOR]`` → (region, detector id or None)."""
    region, _, detector = url[len(SCHEME):].strip("/").partition("/")
    if not region or "/" in detector:
        raise InputError(f"not a GuardDuty API input: {url!r} (guardduty://REGION or guardduty://REGION/DETECTOR)",
                         file=url)  # fmt: skip
    return region, detector or None


def default_client(region: str) -> Any:
    """A GuardDuty client for ``region`` with the environment's credentials, made as every AWS client of the tool
    is (``minerwatch.aws.session``: retries, ``AWS_ENDPOINT_URL``)."""
    from minerwatch.aws.session import Aws  # on demand: boto3 costs a noticeable fraction of a second

    return Aws(region=region).client("guardduty", region)


def list_detector_ids(client: Any) -> list[str]:
    return [d for page in client.get_paginator("list_detectors").paginate() for d in page["DetectorIds"]]


def finding_pages(
    client: Any, detector_id: str, criteria: dict[str, Any] | None = None, page_size: int = PAGE_SIZE
) -> Iterator[list[dict[str, Any]]]:
    """The detector's findings in ``updatedAt`` order, one GetFindings page (at most 50) at a time."""
    pages = client.get_paginator("list_findings").paginate(
        DetectorId=detector_id, SortCriteria=SORT, PaginationConfig={"PageSize": page_size}, **(criteria or {})
    )
    for resp in pages:  # fetched lazily: one ListFindings call per page handed out
        ids = list(resp.get("FindingIds") or ())
        if ids:
            got = client.get_findings(DetectorId=detector_id, FindingIds=ids, SortCriteria=SORT)
            yield list(got.get("Findings") or ())


def iter_api(
    url: str,
    client_for: Callable[[str], Any],
    reject: RejectSink,
    stats: ReadStats,
    on_error: Callable[[Exception], None] | None = None,
) -> Iterator[Input]:
    """One :class:`Input` per detector named by ``url``.

    ``ListDetectors`` failing raises :class:`InputError` (the cause is the botocore error). A call failing while
    a detector's findings are read ends that stream: ``on_error`` gets the botocore error when given, else the
    break is a :class:`SourceError`, which the reader reports as a reject where the stream broke.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    region, detector = parse_url(url)
    client = client_for(region)
    try:
        ids = [detector] if detector else list_detector_ids(client)
    except (BotoCoreError, ClientError) as exc:
        raise InputError(f"cannot list GuardDuty detectors in {region}: {exc}", file=url) from exc
    if not ids:
        raise InputError(f"GuardDuty is not enabled in {region}: no detector", file=url)

    def chunks(detector_id: str) -> Iterator[bytes]:
        try:
            for page in finding_pages(client, detector_id):
                block = b"".join(orjson.dumps(f, default=str) + b"\n" for f in page)
                stats.bytes_read += len(block)
                yield block
        except (BotoCoreError, ClientError, MinerWatchError) as exc:  # MinerWatchError: an assumed role's refresh
            if on_error is None:
                raise SourceError("GuardDuty API error", str(exc)) from exc
            on_error(exc)

    for detector_id in ids:
        stats.files += 1
        yield Input(f"{SCHEME}{region}/{detector_id}", chunks(detector_id))
