"""``--org`` for ``posture``, ``respond``, ``detect``, ``hunt`` and ``watch``: the shared options and the per-account
summary table."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from minerwatch.aws import DEFAULT_ROLE, DEFAULT_SESSION
from minerwatch.cli.app import err, out

if TYPE_CHECKING:  # the AWS stack (boto3) is loaded by the commands that use it, not by `detect --help`
    from rich.console import Console

    from minerwatch.aws.org import AccountResult, OrgOptions

ORG = typer.Option(
    False, "--org", help="Every active account of the AWS Organization, through a role assumed in each (see "
    "docs/organizations.md). Exit 3 when an account could not be reached."
)
ROLE_NAME = typer.Option(DEFAULT_ROLE, "--role-name", help="With --org: the role assumed in each account.")
SESSION_NAME = typer.Option(DEFAULT_SESSION, "--session-name", help="With --org: the RoleSessionName.")
ACCOUNTS = typer.Option(None, "--accounts", help="With --org: only these account ids (comma-separated).")
EXCLUDE = typer.Option(None, "--exclude-accounts", help="With --org: leave these account ids out (comma-separated).")
CONCURRENCY = typer.Option(4, "--concurrency", min=1, max=64, help="With --org: accounts worked on at once.")
EXTERNAL_ID = typer.Option(None, "--external-id", help="With --org: the ExternalId of the role assumed in each "
                           "account.")
PROFILE = typer.Option(None, "--profile", help="With --org: the AWS profile of the management (or delegated "
                       "administrator) account.")
READ_ORG = typer.Option(
    False, "--org", help="Read the s3:// and guardduty://REGION inputs in every active account of the AWS "
    "Organization, through a role assumed in each; {account} in an S3 URL is that account's id (see "
    "docs/organizations.md). One run, a per-account table; exit 3 when an account could not be read."
)


def org_options(
    role_name: str, session_name: str, external_id: str | None, accounts: str | None, exclude: str | None,
    concurrency: int,
) -> OrgOptions:
    from minerwatch.aws.org import OrgOptions, split_ids

    return OrgOptions(
        role_name=role_name,
        session_name=session_name,
        external_id=external_id,
        accounts=split_ids(accounts),
        exclude=split_ids(exclude),
        concurrency=concurrency,
    )


def print_accounts(
    results: list[AccountResult[Any]], outcome: Callable[[Any], tuple[str, bool]], console: Console = out
) -> None:
    """One row per account: name, status and what came of it (``outcome(value)`` → text, good?) or why not."""
    from rich.table import Table  # only --org prints one; a detect run need not load it
    from rich.text import Text

    table = Table("account", "name", "status", "result")
    for column in table.columns:
        column.overflow = "fold"
    for r in results:
        if r.status == "ok":
            text, good = outcome(r.value)
            status = Text("ok", style="green" if good else "red")
        else:
            kind = "throttled" if r.throttled else "failed"
            text, status = f"{r.code + ': ' if r.code else ''}{r.reason}", Text(kind, style="red")
        # names and error text come from the account: text, never markup
        table.add_row(Text(r.account.id), Text(r.account.name), status, Text(text))
    console.print(table)
    failed = sum(r.status != "ok" for r in results)
    err.print(f"{len(results) - failed} account(s) reported, {failed} failed", highlight=False)


def read_summary(results: list[AccountResult[Any]], alerts: str = "alerts") -> None:
    """The per-account table of a ``--org`` read: records read, rejects and alerts (or hunt hits), or why the
    account failed."""

    def outcome(tally: Any) -> tuple[str, bool]:
        text = f"records read {tally.records_read:,}, rejected {tally.rejected:,}, {alerts} {len(tally.alerts):,}"
        if tally.poll_errors:
            text += f"; {tally.poll_errors} poll(s) failed, the last: {tally.last_error}"
        return text, not tally.poll_errors

    print_accounts(results, outcome, console=err)


def org_reads(
    groups: dict[str, list[str]], options: OrgOptions, profile: str | None, region: str | None = None
) -> tuple[list[AccountResult[Any]], dict[str, list[str]]]:
    """The organization's accounts opened for reading (``minerwatch.sources.org.open_accounts``)."""
    from minerwatch.aws.session import Aws
    from minerwatch.sources.org import open_accounts

    return open_accounts(Aws(region=region, profile=profile, actor="minerwatch"), options, groups)


def account_results_json(results: list[AccountResult[Any]]) -> list[dict[str, Any]]:
    return [r.to_json(lambda tally: tally.to_json()) for r in results]


def count_alert(results: list[AccountResult[Any]], record: dict[str, Any]) -> None:
    """Count an alert (or hunt hit) created or updated by the run for the account it belongs to."""
    from minerwatch.sources.org import alert_account

    account = alert_account(record)
    for r in results:
        if r.value is not None and r.account.id == account:
            r.value.alerts.add(str(record.get("alert_id") or record.get("entity") or len(r.value.alerts)))


def exit_if_account_failed(results: list[AccountResult[Any]]) -> None:
    """Exit 3 (as ``posture --org``) when an account could not be read; the others were reported."""
    from minerwatch.aws.org import EXIT_ACCOUNT_FAILED

    if any(r.status != "ok" for r in results):
        raise typer.Exit(EXIT_ACCOUNT_FAILED)
