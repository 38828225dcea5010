"""New objects of the GuardDuty S3 export layout, found by polling ``ListObjectsV2``.

The export writes ``<prefix>/AWSLogs/<account>/GuardDuty/<region>/YYYY/MM/DD/<uuid>.jsonl.gz``. Within a day
folder the object names are random, so new objects do not arrive in key order. Each poll:

1. finds the *streams* under the watched prefix — the folders whose children are year folders (one per account
   and region), or that hold objects directly — walking down with ``Delimiter='/'``;
2. lists each stream from its persisted *settled key* on (``StartAfter``), and takes the objects not processed yet,
   oldest ``LastModified`` first;
3. reads each object with the batch reader (every accepted shape, gzip, rejects named ``s3://bucket/key``) and
   hands its findings over sorted by (eventdate, id), as one unit.

An object is marked processed once all its findings are committed; marks are kept in the state store. The
settled key of a stream moves past a run of processed objects that are older than ``settle`` seconds (default
25 hours: an export object can get a sibling with a smaller name until its day is over), and the marks behind it
are dropped, so the marks held are about a day's worth of objects. A restart lists from the settled keys and
skips marked objects: each object is processed once. An object that cannot be read is tried again at the next
poll, up to ``MAX_READ_ATTEMPTS`` times.
"""

from __future__ import annotations

import re
import time
from typing import Any

from minerwatch.errors import InputError
from minerwatch.live.feeds import Item, Payload, SourceContext, Unit
from minerwatch.sources.guardduty import read_guardduty
from minerwatch.sources.records import ReadStats, Record, Reject

MAX_READ_ATTEMPTS = 3
MAX_DEPTH = 8
_YEAR = re.compile(r"[0-9]{4}/")
_READ_FAILURES = ("unreadable object", "read error")


class _OneObject:
    """A client that lists exactly one object, so the batch reader reads that object and nothing else."""

    def __init__(self, client: Any, key: str) -> None:
        self._client = client
        self._key = key

    def get_paginator(self, name: str) -> _OneObject:
        return self

    def paginate(self, **_kwargs: Any) -> list[dict[str, Any]]:
        return [{"Contents": [{"Key": self._key}]}]

    def get_object(self, **kwargs: Any) -> Any:
        return self._client.get_object(**kwargs)


class S3PollSource:
    exhausted = False
    recovery_until = 0.0

    def __init__(self, url: str, *, client: Any | None = None, interval: float = 60.0,
                 settle: float = 25 * 3600.0) -> None:  # fmt: skip
        if not url.startswith("s3://") or not url[5:].partition("/")[0]:
            raise InputError(f"not an S3 URL with a bucket: {url!r}", file=url)
        self.bucket, _, self.prefix = url[5:].partition("/")
        self.name = url
        self.key = "s3:" + url
        self.interval = interval
        self.settle = settle
        self._client = client
        self._ctx: SourceContext | None = None
        self._after: dict[str, str] = {}
        self._done: set[str] = set()
        self._new_marks: list[str] = []
        self._queue: list[tuple[float, str]] = []
        self._busy: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._next_poll = 0.0
        self._dirty = False
        self.stats = ReadStats()
        self.objects = 0
        self.scans = 0
        """Complete listings of the bucket (the service reports them as ``source_scans_total``)."""

    @property
    def client(self) -> Any:
        if self._client is None:
            from minerwatch.sources.inputs import default_s3_client

            self._client = default_s3_client(self.name)
        return self._client

    @property
    def prefiltered(self) -> int:
        return self.stats.prefiltered

    def start(self, ctx: SourceContext) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._ctx = ctx
        pos = ctx.positions.load(self.key) or {}
        self._after = dict(pos.get("after") or {})
        self._done = ctx.positions.marks(self.key)
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (BotoCoreError, ClientError) as exc:
            raise InputError(f"cannot use {self.name}: {exc}", file=self.name) from exc

    # -- listing ------------------------------------------------------------------------------------------
    def _list(self, **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, **kwargs))

    def _streams(self) -> list[str]:
        found: list[str] = []

        def walk(prefix: str, depth: int) -> None:
            pages = self._list(Prefix=prefix, Delimiter="/")
            folders = [cp["Prefix"] for page in pages for cp in page.get("CommonPrefixes") or ()]
            has_objects = any(page.get("Contents") for page in pages)
            dated = any(_YEAR.fullmatch(f[len(prefix) :]) for f in folders)
            if has_objects or dated or not folders or depth >= MAX_DEPTH:
                found.append(prefix)
                return
            for folder in folders:
                walk(folder, depth + 1)

        walk(self.prefix, 0)
        return found

    def _scan(self) -> None:
        """List every stream; queue the objects not processed yet; move settled keys forward."""
        now = time.time()
        queued = {k for _, k in self._queue}
        for stream in self._streams():
            kwargs: dict[str, Any] = {"Prefix": stream}
            after = self._after.get(stream)
            if after:
                kwargs["StartAfter"] = after
            settled: str | None = None
            dropped: list[str] = []
            settling = True
            for page in self._list(**kwargs):
                for obj in page.get("Contents") or ():
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # folder placeholders made by the console
                    modified = obj["LastModified"].timestamp()
                    done = key in self._done
                    if settling and done and modified < now - self.settle:
                        settled = key
                        dropped.append(key)
                    else:
                        settling = False
                    if not done and key not in self._busy and key not in queued:
                        self._queue.append((modified, key))
            if settled is not None:
                self._after[stream] = settled
                self._done.difference_update(dropped)
                assert self._ctx is not None
                with self._ctx.positions.transaction():
                    self._ctx.positions.drop_marks(self.key, dropped)
                    self._ctx.positions.save(self.key, {"after": self._after})
        self._queue.sort()
        self.scans += 1

    # -- polling ------------------------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[Item]:
        from botocore.exceptions import BotoCoreError, ClientError

        assert self._ctx is not None
        if not self._queue:
            wait = self._next_poll - time.monotonic()
            if wait > 0:
                self._ctx.sleep(min(wait, timeout))
                return []
            self._next_poll = time.monotonic() + self.interval
            try:
                self._scan()
            except (BotoCoreError, ClientError) as exc:
                self._ctx.log(f"listing {self.name} failed ({exc}); trying again in {self.interval:g} s")
                return []
            if not self._queue:
                return []
        _, key = self._queue.pop(0)
        return self._read(key)

    def _read(self, key: str) -> list[Item]:
        assert self._ctx is not None
        rejects: list[Reject] = []
        records: list[Record] = list(
            read_guardduty(
                [f"s3://{self.bucket}/{key}"],
                on_reject=rejects.append,
                stats=self.stats,
                prefilter=self._ctx.prefilter,
                s3_client=_OneObject(self.client, key),
            )
        )
        if any(r.reason.startswith(_READ_FAILURES) for r in rejects):
            tries = self._attempts.get(key, 0) + 1
            self._attempts[key] = tries
            if tries < MAX_READ_ATTEMPTS:
                self._ctx.log(f"s3://{self.bucket}/{key} could not be read (attempt {tries}); trying again later")
                return []
        self._attempts.pop(key, None)
        records.sort(key=lambda r: (r.flat["eventdate"], str(r.flat["id"])))
        payloads: list[Payload] = [*records, *rejects]
        self._busy.add(key)
        self.objects += 1
        return Unit(lambda _u: self._finished(key)).items(payloads)

    def _finished(self, key: str) -> None:
        self._busy.discard(key)
        self._done.add(key)
        self._new_marks.append(key)

    def flush(self) -> None:
        if self._new_marks and self._ctx is not None:
            marks, self._new_marks = self._new_marks, []
            self._ctx.positions.add_marks(self.key, marks)

    def release(self, items: list[Item]) -> None:
        """Nothing to hand back: an object not finished is not marked, so it is read again next time."""

    def close(self, clean: bool) -> None:
        self.flush()
