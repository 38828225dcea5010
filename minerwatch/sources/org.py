"""Inputs read in every account of an AWS Organization (``--org`` on ``detect`` and ``hunt``).

Each S3 or GuardDuty API input given on the command line is read once per account, with that account's
credentials (the role assumed by :func:`minerwatch.aws.org.fan_out`):

- ``s3://`` URLs: ``{account}`` in the URL is replaced by the account id, so per-account buckets
  (``s3://findings-{account}/``) and per-account prefixes of a bucket every role can read
  (``s3://org-logs/AWSLogs/{account}/``) are both one argument; a URL without ``{account}`` is the same
  URL read with each account's credentials.
- ``guardduty://REGION[/DETECTOR]``: the detectors of that region in each account.

The per-account URLs are :class:`AccountPath` strings, which every reader passes through to
:func:`minerwatch.sources.inputs.iter_inputs` unchanged; there they are opened through their account's clients,
and what their inputs add to the reader's :class:`ReadStats` is tallied for the account. An input of an account
that cannot be read (``AccessDenied``, throttling beyond botocore's retries, GuardDuty not enabled, no such
bucket) marks the account failed with the reason and the AWS error code, and the run goes on with the others.
Local paths and stdin stay what they are: read once, with no account.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from minerwatch.errors import InputError, MinerWatchError
from minerwatch.sources import guardduty_api
from minerwatch.sources.inputs import Input, RejectSink, iter_s3
from minerwatch.sources.records import ReadStats

if TYPE_CHECKING:
    from minerwatch.aws.org import Account, AccountResult, OrgOptions
    from minerwatch.aws.session import Aws

ACCOUNT_FIELD = "{account}"


@dataclass
class AccountTally:
    """What the run read in one account, or why it could not."""

    account: str
    records_read: int = 0
    rejected: int = 0
    files: int = 0
    alerts: set[str] = field(default_factory=set)
    """Ids of the alerts (or hunt hits) of this account that the run created or updated."""
    reason: str | None = None
    code: str | None = None
    poll_errors: int = 0
    """``watch``: polls of the account that failed (each tried again at the next poll)."""
    last_error: str | None = None

    @property
    def failed(self) -> bool:
        return self.reason is not None

    def fail(self, exc: BaseException) -> None:
        if self.reason is not None:
            return  # the first failure is the one that explains the others
        self.reason, self.code = failure(exc)

    def poll_failed(self, exc: BaseException) -> None:
        self.poll_errors += 1
        self.last_error = failure(exc)[0]

    def to_json(self) -> dict[str, Any]:
        return {"records_read": self.records_read, "rejected": self.rejected, "files": self.files,
                "alerts": len(self.alerts), "poll_errors": self.poll_errors, "last_error": self.last_error}


def failure(exc: BaseException) -> tuple[str, str | None]:
    """(reason, AWS error code) of a failure, looking through an InputError at the botocore error behind it."""
    cause: BaseException | None = exc
    while cause is not None:
        response = getattr(cause, "response", None)
        if isinstance(response, dict) and response.get("Error"):
            err = response["Error"]
            code = str(err.get("Code") or "Error")
            return f"{code}: {err.get('Message') or cause}", code
        if getattr(cause, "code", None) and isinstance(cause, MinerWatchError):
            return cause.message, str(cause.code)
        cause = cause.__cause__
    if isinstance(exc, MinerWatchError):
        return exc.message, "GuardDutyNotEnabled" if "not enabled" in exc.message else None
    return str(exc), type(exc).__name__


class AccountPath(str):
    """An S3 or GuardDuty API URL to be read with one account's credentials; counts go to its tally."""

    aws: Aws
    tally: AccountTally

    def __new__(cls, url: str, aws: Aws, tally: AccountTally) -> AccountPath:
        self = super().__new__(cls, url)
        self.aws = aws
        self.tally = tally
        return self

    def inputs(self, reject: RejectSink, stats: ReadStats) -> Iterator[Input]:
        """The inputs of this URL in its account. Runs to its end only after the reader has finished the last
        input it yielded, so everything that input added to ``stats`` is the account's."""
        tally = self.tally
        before = (stats.records_read, stats.rejected, stats.files)
        try:
            if self.startswith(guardduty_api.SCHEME):
                yield from guardduty_api.iter_api(
                    str(self), lambda region: self.aws.client("guardduty", region), reject, stats, on_error=tally.fail
                )
            else:
                yield from iter_s3(str(self), self.aws.client("s3"), reject, stats)
        except (InputError, MinerWatchError) as exc:
            tally.fail(exc)
        finally:
            tally.records_read += stats.records_read - before[0]
            tally.rejected += stats.rejected - before[1]
            tally.files += stats.files - before[2]


def is_account_input(path: str) -> bool:
    """An input ``--org`` reads in each account (S3 and the GuardDuty API); the others are read once."""
    return path.startswith(("s3://", guardduty_api.SCHEME))


def account_paths(paths: list[str], aws: Aws, tally: AccountTally) -> list[str]:
    """``paths`` as read in one account: its S3 and API inputs bound to ``aws``, ``{account}`` filled in."""
    return [
        AccountPath(p.replace(ACCOUNT_FIELD, tally.account), aws, tally) for p in paths if is_account_input(p)
    ]


def check_org_paths(paths: list[str], org: bool) -> None:
    """``{account}`` only with ``--org``, and ``--org`` needs at least one S3 or API input."""
    if not org:
        bad = [p for p in paths if ACCOUNT_FIELD in p]
        if bad:
            raise InputError(f"{ACCOUNT_FIELD} in {bad[0]!r} is filled in per account by --org only", file=bad[0])
        return
    if not any(is_account_input(p) for p in paths):
        raise MinerWatchError("--org reads s3:// and guardduty://REGION inputs in each account; none was given")
    stray = [p for p in paths if not is_account_input(p) and re.search(r"\{\w+\}", p)]
    if stray:
        raise InputError(f"{ACCOUNT_FIELD} is filled in in s3:// URLs only: {stray[0]!r}", file=stray[0])


def alert_account(record: dict[str, Any]) -> str | None:
    """The account an alert (or hunt hit) belongs to: its ``accountid`` key or group column, else its fields."""
    for where in (record.get("key") or {}, *(record.get("groups") or []), record.get("fields") or {}):
        for name, value in where.items():
            if name.lower().replace("_", "") == "accountid" and value:
                return str(value)
    return None


def probe(path: AccountPath) -> None:
    """One cheap call that the account's role must be allowed for the input to be read: a refusal, or GuardDuty
    not enabled, is then this account's result before the run starts (raises :class:`AwsError`)."""
    from minerwatch.aws.session import AwsError

    if path.startswith(guardduty_api.SCHEME):
        region, detector = guardduty_api.parse_url(path)
        if detector:
            path.aws.invoke("guardduty", "GetDetector", {"DetectorId": detector}, region)
        elif not path.aws.invoke("guardduty", "ListDetectors", {}, region).get("DetectorIds"):
            raise AwsError(f"GuardDuty is not enabled in {region}: no detector", code="GuardDutyNotEnabled",
                           operation="ListDetectors")  # fmt: skip
        return
    bucket, _, prefix = path[5:].partition("/")
    path.aws.invoke("s3", "ListObjectsV2", {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1})


def open_accounts(
    base: Aws, options: OrgOptions, groups: dict[str, list[str]]
) -> tuple[list[AccountResult[AccountTally]], dict[str, list[str]]]:
    """Assume the role in every account of the organization (``options``) and probe its inputs, at most
    ``options.concurrency`` accounts at a time. Returns each account's result (a failed one says why) and, per
    group of inputs (``flow``, ``dns``…), the paths to read: local paths once, then each reachable account's
    S3 and API inputs, account after account."""
    from minerwatch.aws.org import AccountResult, fan_out, list_accounts

    check_org_paths([p for paths in groups.values() for p in paths], org=True)
    accounts = list_accounts(base, options)

    def work(aws: Aws, account: Account) -> tuple[AccountTally, dict[str, list[str]]]:
        tally = AccountTally(account.id)
        bound = {name: account_paths(paths, aws, tally) for name, paths in groups.items()}
        for paths in bound.values():
            for p in paths:
                probe(p)  # type: ignore[arg-type]
        return tally, bound

    opened = fan_out(base, accounts, options, work)
    read = {name: [p for p in paths if not is_account_input(p)] for name, paths in groups.items()}
    results: list[AccountResult[AccountTally]] = []
    for r in opened:
        tally = r.value[0] if r.value is not None else AccountTally(r.account.id)
        results.append(AccountResult(r.account, r.status, tally, r.reason, r.code, r.role_arn))
        if r.value is not None:
            for name, paths in r.value[1].items():
                read[name].extend(paths)
    return results, read


def settle(results: list[AccountResult[AccountTally]]) -> list[AccountResult[AccountTally]]:
    """The results after the run: an account whose inputs failed while being read is reported failed."""
    from minerwatch.aws.org import AccountResult

    out: list[AccountResult[AccountTally]] = []
    for r in results:
        if r.status == "ok" and r.value is not None and r.value.failed:
            r = AccountResult(r.account, "failed", r.value, r.value.reason, r.value.code, r.role_arn)
        out.append(r)
    return out
