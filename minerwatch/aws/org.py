"""AWS Organizations fan-out: run one piece of work in every active account, through a role assumed in each.

``list_accounts`` reads the organization (``organizations:ListAccounts``, from the management account or a
delegated administrator) and keeps the ``ACTIVE`` accounts, filtered by ``--accounts`` / ``--exclude-accounts``.
``fan_out`` then gives the work an :class:`~minerwatch.aws.session.Aws` per account — the caller's own
credentials for the caller's own account, else ``arn:<partition>:iam::<account>:role/<role_name>`` assumed with
the configured session name and external id — with at most ``concurrency`` accounts at a time.

A failure in one account (the role cannot be assumed: ``AccessDenied``; throttling that outlasts botocore's
retries; any other AWS error) is that account's result, with its reason and error code; the other accounts go on.

Exit codes of the ``--org`` commands (see docs/organizations.md): 0 every account reported and passed, 1 a
reported account failed a check (or a response step failed), 3 at least one account could not be reported.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from minerwatch.aws import DEFAULT_ROLE, DEFAULT_SESSION
from minerwatch.aws.session import Aws, AwsError
from minerwatch.errors import MinerWatchError

T = TypeVar("T")

EXIT_ACCOUNT_FAILED = 3
THROTTLING = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"})
_ACCOUNT = re.compile(r"[0-9]{12}")
_SESSION = re.compile(r"[\w+=,.@-]{2,64}")
_session_lock = threading.Lock()


@dataclass
class OrgOptions:
    role_name: str = DEFAULT_ROLE
    session_name: str = DEFAULT_SESSION
    external_id: str | None = None
    accounts: list[str] = field(default_factory=list)
    """Only these accounts (empty: every active account)."""
    exclude: list[str] = field(default_factory=list)
    concurrency: int = 4

    def __post_init__(self) -> None:
        for value in [*self.accounts, *self.exclude]:
            if not _ACCOUNT.fullmatch(value):
                raise MinerWatchError(f"not an AWS account id: {value!r} (12 digits)")
        if not _SESSION.fullmatch(self.session_name):
            raise MinerWatchError(f"session name {self.session_name!r}: 2 to 64 of letters, digits and +=,.@_-")
        if not re.fullmatch(r"[\w+=,.@/-]{1,512}", self.role_name):
            raise MinerWatchError(f"not an IAM role name: {self.role_name!r}")
        if self.concurrency < 1:
            raise MinerWatchError("--concurrency must be at least 1")


@dataclass
class Account:
    id: str
    name: str = ""
    email: str = ""


@dataclass
class AccountResult(Generic[T]):
    account: Account
    status: str
    """``ok`` (the work ran) or ``failed`` (it could not: ``reason`` and ``code`` say why)."""
    value: T | None = None
    reason: str | None = None
    code: str | None = None
    role_arn: str | None = None

    @property
    def throttled(self) -> bool:
        return self.code in THROTTLING

    def to_json(self, value: Callable[[T], Any] | None = None) -> dict[str, Any]:
        return {
            "account": self.account.id,
            "name": self.account.name,
            "status": self.status,
            "reason": self.reason,
            "code": self.code,
            "role_arn": self.role_arn,
            "result": value(self.value) if value is not None and self.value is not None else None,
        }


def split_ids(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def list_accounts(aws: Aws, options: OrgOptions) -> list[Account]:
    """The organization's active accounts, after ``accounts`` / ``exclude``; sorted by id."""
    client = aws.client("organizations")
    found: list[Account] = []
    try:
        for page in client.get_paginator("list_accounts").paginate():
            for acc in page.get("Accounts") or []:
                state = acc.get("State") or acc.get("Status")
                if state != "ACTIVE":
                    continue
                found.append(Account(str(acc["Id"]), str(acc.get("Name") or ""), str(acc.get("Email") or "")))
    except Exception as exc:  # botocore errors: one message, naming the call
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
        message = getattr(exc, "response", {}).get("Error", {}).get("Message", str(exc))
        raise AwsError(f"ListAccounts: {code}: {message}", code=str(code), operation="ListAccounts") from None
    known = {a.id for a in found}
    missing = [a for a in options.accounts if a not in known]
    if missing:
        raise MinerWatchError(f"--accounts: not an active account of the organization: {', '.join(missing)}")
    wanted = set(options.accounts)
    excluded = set(options.exclude)
    return sorted(
        (a for a in found if (not wanted or a.id in wanted) and a.id not in excluded), key=lambda a: a.id
    )


def account_aws(base: Aws, account: Account, options: OrgOptions, partition: str) -> tuple[Aws, str | None]:
    """An :class:`Aws` acting in ``account``, and the role ARN assumed (None for the caller's own account)."""
    if account.id == base.account_id:
        return Aws(region=base.region, profile=base.profile, actor=base.actor, endpoint_url=base.endpoint_url), None
    role_arn = f"arn:{partition}:iam::{account.id}:role/{options.role_name}"
    child = Aws(
        region=base.region,
        profile=base.profile,
        role_arn=role_arn,
        external_id=options.external_id,
        actor=base.actor,
        endpoint_url=base.endpoint_url,
        session_name=options.session_name,
    )
    return child, role_arn


def fan_out(
    base: Aws, accounts: list[Account], options: OrgOptions, work: Callable[[Aws, Account], T]
) -> list[AccountResult[T]]:
    """``work`` in every account, at most ``options.concurrency`` at a time; results in the order of ``accounts``."""
    identity = base.identity()
    partition = str(identity.get("Arn", "arn:aws:")).split(":")[1] or "aws"

    def one(account: Account) -> AccountResult[T]:
        role_arn = None
        try:
            child, role_arn = account_aws(base, account, options, partition)
            with _session_lock:  # creating boto3 sessions is not thread-safe
                child.session  # noqa: B018  # assumes the role now: a refusal is this account's, not a check's
            child.identity()
            return AccountResult(account, "ok", value=work(child, account), role_arn=role_arn)
        except AwsError as exc:
            return AccountResult(account, "failed", reason=exc.message, code=exc.code, role_arn=role_arn)
        except MinerWatchError as exc:
            return AccountResult(account, "failed", reason=exc.message, role_arn=role_arn)

    with ThreadPoolExecutor(max_workers=min(options.concurrency, max(1, len(accounts)))) as pool:
        return list(pool.map(one, accounts))
