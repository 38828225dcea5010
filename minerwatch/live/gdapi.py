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

With ``accounts`` (``watch --guardduty --org``) the detectors are those of every account given, each read with
its account's clients (an assumed role whose credentials botocore refreshes before they expire), ``concurrency``
detectors fetched at once; the cursor is kept per account, region and detector. An account whose detectors
cannot be listed at start, or that has none, is reported failed on its :class:`~minerwatch.sources.org.AccountTally`
and not polled; a poll that fails in one account is counted there, logged and tried again at the next poll; the
other accounts go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from minerwatch.alerting.alerts import parse_iso
from minerwatch.errors import InputError, MinerWatchError
from minerwatch.live.feeds import Item, Payload, Sequencer, SourceContext, Unit, reject
from minerwatch.sources.guardduty import FindingError, finding_to_record, normalise_finding
from minerwatch.sources.guardduty_api import PAGE_SIZE, finding_pages, list_detector_ids
from minerwatch.sources.org import AccountTally
from minerwatch.sources.records import Record

if TYPE_CHECKING:
    from minerwatch.aws.org import AccountResult, OrgOptions

ClientFactory = Callable[[str], Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Detector:
    def __init__(self, region: str, detector_id: str, client: Any, tally: AccountTally | None = None) -> None:
        self.region = region
        self.detector_id = detector_id
        self.client = client
        self.tally = tally
        where = f"{tally.account}/{region}" if tally is not None else region
        self.key = f"guardduty:{where}/{detector_id}"
        self.name = f"guardduty://{where}/{detector_id}"
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
        accounts: list[tuple[AccountTally, ClientFactory]] | None = None,
        concurrency: int = 4,
    ) -> None:
        self.regions = list(regions or ([region] if (region := _default_region()) else []))
        if not self.regions:
            raise InputError("--guardduty needs --regions (or a default region: AWS_REGION, the AWS config)")
        self.detector_ids = list(detector_ids or [])
        self.accounts = list(accounts or [])
        """(tally, client factory) per account with ``--org``; empty: the caller's own account."""
        self.concurrency = max(1, concurrency)
        self.name = "guardduty://" + ("org:" if self.accounts else "") + ",".join(self.regions)
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
        self._ctx = ctx
        if not self.accounts:
            for region in self.regions:
                self._add(ctx, region, self._factory(region), None)
            return
        from concurrent.futures import ThreadPoolExecutor

        # One call per account and region; an account's regions in turn (a boto3 session is not thread-safe),
        # at most `concurrency` accounts at once.
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(self.accounts))) as pool:
            found = list(pool.map(lambda a: self._list(a[0], a[1]), self.accounts))
        for (tally, _factory), detectors in zip(self.accounts, found, strict=True):
            for region, client, ids in detectors:
                self._add(ctx, region, client, tally, ids)

    def _list(self, tally: AccountTally, factory: ClientFactory) -> list[tuple[str, Any, list[str]]]:
        """(region, client, detector ids) of the account; nothing, and the account marked failed, when its
        detectors cannot be listed or it has none in any region."""
        from botocore.exceptions import BotoCoreError, ClientError

        found = []
        try:
            for region in self.regions:
                client = factory(region)
                ids = self.detector_ids or list_detector_ids(client)
                if ids:
                    found.append((region, client, ids))
        except (BotoCoreError, ClientError) as exc:
            tally.fail(exc)
            return []
        if not found:
            tally.reason = f"GuardDuty is not enabled in {', '.join(self.regions)}: no detector"
            tally.code = "GuardDutyNotEnabled"
        return found

    def _add(
        self, ctx: SourceContext, region: str, client: Any, tally: AccountTally | None, ids: list[str] | None = None
    ) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        if ids is None:
            try:
                ids = self.detector_ids or list_detector_ids(client)
            except (BotoCoreError, ClientError) as exc:
                raise InputError(f"cannot list GuardDuty detectors in {region}: {exc}", file=self.name) from exc
            if not ids:
                ctx.log(f"no GuardDuty detector in {region}")
        for detector_id in ids:
            d = _Detector(region, detector_id, client, tally)
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
        if self.accounts:
            yield from self._accounts_pages()
            return
        for d in self._detectors:
            yield from self._detector_pages(d)

    def _criteria(self, d: _Detector) -> dict[str, Any]:
        if d.cursor is None:
            return {}
        ms = (d.cursor[0] - _EPOCH) // timedelta(milliseconds=1)  # rounded down: nothing is skipped
        return {"FindingCriteria": {"Criterion": {"updatedAt": {"GreaterThanOrEqual": ms}}}}

    def _detector_pages(self, d: _Detector) -> Iterator[list[Item]]:
        for findings in finding_pages(d.client, d.detector_id, self._criteria(d), self.page_size):
            items = self._page(d, findings)
            if items:
                yield items

    def _accounts_pages(self) -> Iterator[list[Item]]:
        """A pass over every account's detectors, ``concurrency`` detectors fetched at once.

        Worker threads only call the API (ListFindings, GetFindings: boto3 clients are thread-safe) and queue
        each page; cursors, units and tallies are handled here, in the service's thread, so each detector's
        pages are still handed out in order. One account's failure is that account's: the others are still read.
        """
        import queue
        import threading
        from concurrent.futures import ThreadPoolExecutor

        from botocore.exceptions import BotoCoreError, ClientError

        pages: queue.Queue[tuple[_Detector, list[dict[str, Any]] | None, BaseException | None]] = queue.Queue(
            maxsize=2 * self.concurrency
        )
        abandoned = threading.Event()

        def put(entry: tuple[_Detector, list[dict[str, Any]] | None, BaseException | None]) -> bool:
            while not abandoned.is_set():
                try:
                    pages.put(entry, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def fetch(d: _Detector, criteria: dict[str, Any]) -> None:
            error: BaseException | None = None
            try:
                for findings in finding_pages(d.client, d.detector_id, criteria, self.page_size):
                    if not put((d, findings, None)):
                        return
            except Exception as exc:  # noqa: BLE001  # handed to the service's thread, which decides
                error = exc
            put((d, None, error))

        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(self._detectors))))
        try:
            for d in self._detectors:
                pool.submit(fetch, d, self._criteria(d))
            remaining = len(self._detectors)
            while remaining:
                d, findings, error = pages.get()
                if findings is not None:
                    items = self._page(d, findings)
                    if items:
                        yield items
                    continue
                remaining -= 1
                if error is None:
                    continue
                if d.tally is None or not isinstance(error, BotoCoreError | ClientError | MinerWatchError):
                    raise error  # MinerWatchError: an assumed role's refresh
                d.tally.poll_failed(error)
                assert self._ctx is not None
                self._ctx.log(f"account {d.tally.account}: GuardDuty API call failed ({error}); trying again at "
                              "the next poll")  # fmt: skip
        finally:
            abandoned.set()  # a pass left unfinished (shutdown): the workers stop at their next page
            pool.shutdown(wait=False, cancel_futures=True)

    def _page(self, d: _Detector, findings: list[dict[str, Any]]) -> list[Item]:
        records: list[Record] = []
        payloads: list[Payload] = []
        for finding in findings:
            try:
                records.append(finding_to_record(normalise_finding(finding), d.name, 1))
            except FindingError as exc:
                payloads.append(reject(d.name, None, str(exc), "", repr(finding)[:2000]))
        fresh = [r for r in records if not self._behind(d, r)]
        fresh.sort(key=lambda r: (r.flat["eventdate"], str(r.flat["id"])))
        if d.tally is not None:
            d.tally.records_read += len(fresh) + len(payloads)
            d.tally.rejected += len(payloads)
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
        if self._pages is not None:
            self._pages.close()  # ends a pass in progress (and its fetching threads)
            self._pages = None
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


def org_source(
    options: OrgOptions,
    regions: list[str] | None,
    *,
    detector_ids: list[str] | None = None,
    interval: float = 60.0,
    profile: str | None = None,
) -> tuple[GuardDutyApiSource, list[AccountResult[AccountTally]]]:
    """``watch --guardduty --org``: the role assumed in every account of the organization (at most
    ``options.concurrency`` at once), and one source over the detectors of every account reached. The results
    carry each account's tally, which the source fills as it reads."""
    from minerwatch.aws.org import AccountResult, fan_out, list_accounts
    from minerwatch.aws.session import Aws

    base = Aws(region=(regions or [None])[0], profile=profile, actor="minerwatch")
    opened = fan_out(base, list_accounts(base, options), options, lambda aws, account: (AccountTally(account.id), aws))
    results: list[AccountResult[AccountTally]] = []
    accounts: list[tuple[AccountTally, ClientFactory]] = []
    for r in opened:
        tally = r.value[0] if r.value is not None else AccountTally(r.account.id)
        results.append(AccountResult(r.account, r.status, tally, r.reason, r.code, r.role_arn))
        if r.value is not None:
            aws = r.value[1]
            accounts.append((tally, lambda region, aws=aws: aws.client("guardduty", region)))
    source = GuardDutyApiSource(
        regions, detector_ids=detector_ids, interval=interval, accounts=accounts, concurrency=options.concurrency
    )
    return source, results
