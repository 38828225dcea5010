"""EventBridge "GuardDuty Finding" events delivered to an SQS queue.

- Long polling (``WaitTimeSeconds``), up to 10 messages a call.
- A message is deleted only after the effect of its finding is committed to the state store (batched with
  ``DeleteMessageBatch`` at the end of each loop). A crash before the delete brings the message back after its
  visibility timeout; the finding is then a duplicate delivery and changes nothing.
- A message still being worked on (held for ordering, see below) has its visibility extended before it runs out.
- A message that cannot be processed (not JSON, not a GuardDuty finding) is written to the rejects file once,
  with ``sqs://<queue>/<message id>`` as its file, and is *not* deleted: the queue's redrive policy moves it to
  a dead-letter queue after ``maxReceiveCount`` receives. Until then it is made invisible for
  ``reject_visibility`` seconds at a time, and later receives of it are recognised and skipped.
- Bodies may also be SNS notifications wrapping the event (EventBridge → SNS → SQS).

Ordering after a crash. Messages the dead process had received but not finished come back only when their
visibility timeout ends, after messages the new process may already have handled, which would change which row
opens an alert. Before every receive the source persists how long the messages it is about to receive can stay
invisible (``inflight_until``). A process that finds the previous one did not stop cleanly sets
``recovery_until`` to that time: the service holds every matched record until then, so the returning messages
are placed in event-time order with the rest.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any

import orjson

from minerwatch.errors import InputError
from minerwatch.live.feeds import Item, Payload, SourceContext, Unit, reject
from minerwatch.sources.guardduty import records_from_line, records_from_value

RECOVERY_SLACK = 2.0
"""Seconds added to the dead process's in-flight horizon: a message visible again must also be received."""
MARK_RETENTION = 14 * 86400.0
"""SQS keeps a message at most 14 days: marks of rejected messages are not needed for longer."""


def parse_body(body: str, name: str) -> list[Payload]:
    raw = body.encode("utf-8", "surrogatepass")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return records_from_line(raw, name, None)  # the batch reader's reason for the same bytes
    if isinstance(obj, dict) and obj.get("Type") == "Notification" and isinstance(obj.get("Message"), str):
        try:
            obj = orjson.loads(obj["Message"])  # an SNS envelope around the EventBridge event
        except orjson.JSONDecodeError as exc:
            return [reject(name, None, "invalid JSON", f"in the SNS Message: {exc}", raw)]
    return records_from_value(obj, name, None, raw)


def _region_of(url: str) -> str | None:
    host = url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    if len(parts) >= 4 and parts[0] == "sqs":
        return parts[1]  # sqs.<region>.amazonaws.com
    if len(parts) >= 4 and parts[1] == "queue":
        return parts[0]  # <region>.queue.amazonaws.com (legacy)
    return None


class _InFlight:
    __slots__ = ("handle", "unit", "extended")

    def __init__(self, handle: str, unit: Unit, extended: float) -> None:
        self.handle = handle
        self.unit = unit
        self.extended = extended


class SqsSource:
    exhausted = False

    def __init__(
        self,
        queue_url: str,
        *,
        client: Any | None = None,
        wait_seconds: int = 10,
        visibility_timeout: int = 60,
        max_messages: int = 10,
        reject_visibility: int = 300,
    ) -> None:
        self.url = queue_url
        self.queue_name = queue_url.rstrip("/").rsplit("/", 1)[-1]
        self.name = f"sqs://{self.queue_name}"
        self.key = "sqs:" + queue_url
        self.wait_seconds = max(0, min(20, int(wait_seconds)))
        self.visibility = max(1, int(visibility_timeout))
        self.max_messages = max(1, min(10, int(max_messages)))
        self.reject_visibility = max(0, min(43200, int(reject_visibility)))
        self.recovery_until = 0.0
        self._client = client
        self._ctx: SourceContext | None = None
        self._horizon = 0.0
        self._inflight: dict[str, _InFlight] = {}
        self._delete: list[tuple[str, str]] = []
        self._park: list[tuple[str, str]] = []
        self._backoff = 0.0
        self._last_prune = 0.0
        self.deleted = 0
        self.kept = 0

    # -- life cycle ---------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # on demand: boto3 costs a noticeable fraction of a second to import

            region = _region_of(self.url) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            self._client = boto3.client("sqs", region_name=region)
        return self._client

    def _log(self, text: str) -> None:
        if self._ctx is not None:
            self._ctx.log(text)

    def start(self, ctx: SourceContext) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._ctx = ctx
        positions = ctx.positions
        try:
            self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["VisibilityTimeout"])
        except (BotoCoreError, ClientError) as exc:
            raise InputError(f"cannot use SQS queue {self.url}: {exc}", file=self.url) from exc
        last = positions.load(self.key) or {}
        if last and not last.get("clean", True):
            until = float(last.get("inflight_until", 0.0)) + RECOVERY_SLACK
            if until > time.time():
                self.recovery_until = until
                self._log(
                    f"the last run on {self.name} did not stop cleanly: matched findings are held until "
                    f"{until - time.time():.1f} s from now, when messages it had received are visible again"
                )
        self._horizon = max(float(last.get("inflight_until", 0.0)), time.time())
        positions.save(self.key, {"clean": False, "inflight_until": self._horizon})

    def _raise_horizon(self, until: float) -> None:
        """Persist, before making messages invisible, until when they may stay invisible."""
        if until > self._horizon and self._ctx is not None:
            self._horizon = until
            self._ctx.positions.save(self.key, {"clean": False, "inflight_until": until})

    # -- receiving ----------------------------------------------------------------------------------------
    def poll(self, timeout: float) -> list[Item]:
        from botocore.exceptions import BotoCoreError, ClientError

        wait = min(self.wait_seconds, int(timeout)) if timeout >= 1 else 0
        if self._inflight:
            wait = min(wait, self.visibility // 3)  # come back in time to extend what is still being worked on
        self._raise_horizon(time.time() + wait + self.visibility + 1.0)
        started = time.monotonic()
        try:
            resp = self.client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=self.max_messages,
                WaitTimeSeconds=wait,
                VisibilityTimeout=self.visibility,
                MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
            )
        except (BotoCoreError, ClientError) as exc:
            self._backoff = min(30.0, max(0.5, self._backoff * 2))
            self._log(f"receive from {self.name} failed ({exc}); retrying in {self._backoff:.1f} s")
            assert self._ctx is not None
            self._ctx.sleep(min(self._backoff, timeout))
            return []
        self._backoff = 0.0
        messages = resp.get("Messages") or []
        assert self._ctx is not None
        if not messages and wait == 0:
            self._ctx.sleep(timeout - (time.monotonic() - started))  # a short poll must not spin
        items: list[Item] = []
        now = time.time()
        positions = self._ctx.positions
        for msg in messages:
            mid, handle = msg["MessageId"], msg["ReceiptHandle"]
            if mid in self._inflight:  # received again while still being worked on: keep the newest handle
                self._inflight[mid].handle = handle
                continue
            if positions.marked(self.key, mid):
                self._park.append((mid, handle))  # kept as a reject earlier: only push it back
                continue
            sent = (msg.get("Attributes") or {}).get("SentTimestamp")
            unit = Unit(partial(self._finished, mid), float(sent) / 1000 if sent else None)
            self._inflight[mid] = _InFlight(handle, unit, now)
            items.extend(unit.items(parse_body(msg.get("Body") or "", f"{self.name}/{mid}")))
        return items

    def _finished(self, mid: str, unit: Unit) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        (self._park if unit.rejected else self._delete).append((mid, entry.handle))

    # -- acknowledging ------------------------------------------------------------------------------------
    def flush(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._flush_deletes()
            self._flush_parked()
            self._extend()
        except (BotoCoreError, ClientError) as exc:
            # Undeleted messages come back and are recognised as duplicates; nothing is lost.
            self._log(f"acknowledging messages of {self.name} failed ({exc}); they will be seen again")
        now = time.time()
        if now - self._last_prune > 3600 and self._ctx is not None:
            self._last_prune = now
            self._ctx.positions.drop_marks_before(self.key, now - MARK_RETENTION)

    def _batches(self, pairs: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
        return [pairs[i : i + 10] for i in range(0, len(pairs), 10)]

    def _flush_deletes(self) -> None:
        pending, self._delete = self._delete, []
        for batch in self._batches(pending):
            entries = [{"Id": str(i), "ReceiptHandle": h} for i, (_, h) in enumerate(batch)]
            resp = self.client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            failed = resp.get("Failed") or []
            self.deleted += len(batch) - len(failed)
            for f in failed:
                self._log(f"could not delete message {batch[int(f['Id'])][0]}: {f.get('Message') or f.get('Code')}")

    def _flush_parked(self) -> None:
        pending, self._park = self._park, []
        if not pending:
            return
        assert self._ctx is not None
        self._ctx.positions.add_marks(self.key, [mid for mid, _ in pending])
        self.kept += len(pending)
        for batch in self._batches(pending):
            self._change_visibility(batch, self.reject_visibility)

    def _extend(self) -> None:
        """Extend messages still being worked on before their visibility timeout ends."""
        now = time.time()
        due = [(mid, e.handle) for mid, e in self._inflight.items() if now - e.extended > self.visibility / 2]
        if not due:
            return
        self._raise_horizon(now + self.visibility + 1.0)
        for batch in self._batches(due):
            self._change_visibility(batch, self.visibility)
        for mid, _ in due:
            self._inflight[mid].extended = now

    def _change_visibility(self, batch: list[tuple[str, str]], seconds: int) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds} for i, (_, h) in enumerate(batch)]
        resp = self.client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
        for f in resp.get("Failed") or []:
            self._log(f"could not change the visibility of message {batch[int(f['Id'])][0]}: {f.get('Code')}")

    def release(self, items: list[Item]) -> None:
        """Messages received but not finished go back to the queue at once (called at shutdown, after held records
        have been applied, so every message still in flight is one that was not processed)."""
        from botocore.exceptions import BotoCoreError, ClientError

        back = [(mid, e.handle) for mid, e in self._inflight.items() if not e.unit.done]
        for mid, _ in back:
            del self._inflight[mid]
        try:
            for batch in self._batches(back):
                self._change_visibility(batch, 0)
        except (BotoCoreError, ClientError) as exc:
            self._log(f"could not release messages of {self.name} ({exc}); they return after their timeout")

    def close(self, clean: bool) -> None:
        self.flush()
        if self._ctx is None:
            return
        if clean and not self._inflight:
            self._ctx.positions.save(self.key, {"clean": True, "inflight_until": time.time()})
