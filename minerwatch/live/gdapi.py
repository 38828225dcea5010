"""Findings from the GuardDuty API: ``ListFindings`` sorted by ``updatedAt`` then ``GetFindings`` per page.

For every detector of every region (``ListDetectors``, or the ids given), each poll asks for the findings whose
``updatedAt`` is at or after the detector's cursor, oldest first::

    ListFindings(DetectorId, FindingCriteria={"Criterion": {"updatedAt": {"GreaterThanOrEqual": <epoch ms>}}},
                 SortCriteria={"AttributeName": "updatedAt", "OrderBy": "ASC"}, MaxResults=50, NextToken=...)
    GetFindings(DetectorId, FindingIds=<that page's ids, at most 50>, SortCriteria=<the same>)

The PascalCase findings boto3 returns are normalised like every other input (``normalise_finding``), and each
page is one unit, handed over sorted by (eventdate, id). The cursor — the latest ``updatedAt`` acknowledged and
the ids acknowledged at exactly that time — is persisted per region and detector once every earlier page is
committed; the next query starts at that time and skips those ids. A finding updated again gets a new
``updatedAt`` and is seen again, as a new occurrence, exactly as in the other inputs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from minerwatch.alerting.alerts import parse_iso
from minerwatch.errors import InputError
from minerwatch.live.feeds import Item, Payload, Sequencer, SourceContext, Unit, reject
from minerwatch.sources.guardduty import FindingError, finding_to_record, normalise_finding
from minerwatch.sources.records import Record

PAGE_SIZE = 50
"""The most ListFindings returns and GetFindings accepts at once."""
SORT = {"AttributeName": "updatedAt", "OrderBy": "ASC"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Detector:
    def __init__(self, region: str, detector_id: str, client: Any) -> None:
        self.region = region
        self.detector_id = detector_id
        self.client = client
        self.key = f"guardduty:{region}/{detector_id}"
        self.name = f"guardduty://{region}/{detector_id}"
        self.seq = Sequencer()
        self.cursor: tuple[datetime, set[str]] | None = None
        """Where the next query starts: the latest updatedAt handed out and the ids handed out at that time."""


class GuardDutyApiSource:
    exhausted = False
    recovery_until = 0.0

    def __init__(
        self,
        regions: list[str] | None = None,
        *,
        detector_ids: list[str] | None = None,
        client_factory: Callable[[str], Any] | None = None,
        interval: float = 60.0,
        page_size: int = PAGE_SIZE,
    ) -> None:
        self.regions = list(regions or ([region] if (region := _default_region()) else []))
        if not self.regions:
            raise InputError("--guardduty needs --regions (or a default region: AWS_REGION, the AWS config)")
        self.detector_ids = list(detector_ids or [])
        self.name = "guardduty://" + ",".join(self.regions)
        self.interval = interval
        self.page_size = max(1, min(PAGE_SIZE, page_size))
        self._factory = client_factory or _default_client
        self._ctx: SourceContext | None = None
        self._detectors: list[_Detector] = []
        self._pages: Iterator[list[Item]] | None = None
        self._next_poll = 0.0
        self.pages = 0
        self.scans = 0
        """Complete passes over every detector's findings (reported as ``source_scans_total``)."""

    def start(self, ctx: SourceContext) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._ctx = ctx
        for region in self.regions:
            client = self._factory(region)
            try:
                ids = self.detector_ids or [
                    d for page in client.get_paginator("list_detectors").paginate() for d in page["DetectorIds"]
                ]
            except (BotoCoreError, ClientError) as exc:
                raise InputError(f"cannot list GuardDuty detectors in {region}: {exc}", file=self.name) from exc
            if not ids:
                ctx.log(f"no GuardDuty detector in {region}")
            for detector_id in ids:
                d = _Detector(region, detector_id, client)
                pos = ctx.positions.load(d.key)
                if pos and pos.get("updated_at"):
                    d.cursor = (parse_iso(pos["updated_at"]), set(pos.get("ids") or ()))
                self._detectors.append(d)

    # -- polling ------------------------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[Item]:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self._ctx is not None
        if self._pages is None:
            wait = self._next_poll - time.monotonic()
            if wait > 0:
                self._ctx.sleep(min(wait, timeout))
                return []
            self._next_poll = time.monotonic() + self.interval
            self._pages = self._all_pages()
        try:
            return next(self._pages)
        except StopIteration:
            self._pages = None
            self.scans += 1
            return []
        except (BotoCoreError, ClientError) as exc:
            self._pages = None
            self._ctx.log(f"GuardDuty API call failed ({exc}); trying again in {self.interval:g} s")
            return []

    def _all_pages(self) -> Iterator[list[Item]]:
        for d in self._detectors:
            yield from self._detector_pages(d)

    def _detector_pages(self, d: _Detector) -> Iterator[list[Item]]:
        criteria: dict[str, Any] = {}
        if d.cursor is not None:
            ms = (d.cursor[0] - _EPOCH) // timedelta(milliseconds=1)  # rounded down: nothing is skipped
            criteria = {"FindingCriteria": {"Criterion": {"updatedAt": {"GreaterThanOrEqual": ms}}}}
        pages = d.client.get_paginator("list_findings").paginate(
            DetectorId=d.detector_id, SortCriteria=SORT, PaginationConfig={"PageSize": self.page_size}, **criteria
        )
        for resp in pages:  # fetched lazily: one ListFindings call per page handed out
            ids = list(resp.get("FindingIds") or ())
            if ids:
                items = self._page(d, ids)
                if items:
                    yield items

    def _page(self, d: _Detector, ids: list[str]) -> list[Item]:
        resp = d.client.get_findings(DetectorId=d.detector_id, FindingIds=ids, SortCriteria=SORT)
        records: list[Record] = []
        payloads: list[Payload] = []
        for finding in resp.get("Findings") or ():
            try:
                records.append(finding_to_record(normalise_finding(finding), d.name, 1))
            except FindingError as exc:
                payloads.append(reject(d.name, None, str(exc), "", repr(finding)[:2000]))
        fresh = [r for r in records if not self._behind(d, r)]
        fresh.sort(key=lambda r: (r.flat["eventdate"], str(r.flat["id"])))
        if not fresh and not payloads:
            return []
        for r in fresh:
            ts = r.flat["eventdate"]
            if d.cursor is None or ts > d.cursor[0]:
                d.cursor = (ts, {str(r.flat["id"])})
            elif ts == d.cursor[0]:
                d.cursor[1].add(str(r.flat["id"]))
        token = None if d.cursor is None else {"updated_at": _iso(d.cursor[0]), "ids": sorted(d.cursor[1])}
        self.pages += 1
        return Unit(d.seq.open(token)).items([*fresh, *payloads])

    @staticmethod
    def _behind(d: _Detector, r: Record) -> bool:
        """Handed out already: before the cursor, or at its time with an id handed out at that time."""
        if d.cursor is None:
            return False
        ts = r.flat["eventdate"]
        return ts < d.cursor[0] or (ts == d.cursor[0] and str(r.flat["id"]) in d.cursor[1])

    def flush(self) -> None:
        if self._ctx is None:
            return
        for d in self._detectors:
            if d.seq.changed and d.seq.position is not None:
                self._ctx.positions.save(d.key, d.seq.position)
                d.seq.changed = False

    def release(self, items: list[Item]) -> None:
        """Nothing to hand back: the cursor does not move past findings that were not acknowledged."""

    def close(self, clean: bool) -> None:
        self.flush()


def _default_region() -> str | None:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        return region
    import boto3

    return boto3.session.Session().region_name


def _default_client(region: str) -> Any:
    import boto3

    return boto3.client("guardduty", region_name=region)
