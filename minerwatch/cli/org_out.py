"""``--org`` for ``posture`` and ``respond``: the shared options and the per-account summary table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from minerwatch.cli.app import err, out
from minerwatch.respond.org import DEFAULT_ROLE, DEFAULT_SESSION, AccountResult, OrgOptions, split_ids

ORG = typer.Option(
    False, "--org", help="Every active account of the AWS Organization, through a role assumed in each (see "
    "docs/organizations.md). Exit 3 when an account could not be reached."
)
ROLE_NAME = typer.Option(DEFAULT_ROLE, "--role-name", help="With --org: the role assumed in each account.")
SESSION_NAME = typer.Option(DEFAULT_SESSION, "--session-name", help="With --org: the RoleSessionName.")
ACCOUNTS = typer.Option(None, "--accounts", help="With --org: only these account ids (comma-separated).")
EXCLUDE = typer.Option(None, "--exclude-accounts", help="With --org: leave these account ids out (comma-separated).")
CONCURRENCY = typer.Option(4, "--concurrency", min=1, max=64, help="With --org: accounts worked on at once.")


def org_options(
    role_name: str, session_name: str, external_id: str | None, accounts: str | None, exclude: str | None,
    concurrency: int,
) -> OrgOptions:
    return OrgOptions(
        role_name=role_name,
        session_name=session_name,
        external_id=external_id,
        accounts=split_ids(accounts),
        exclude=split_ids(exclude),
        concurrency=concurrency,
    )


def print_accounts(results: list[AccountResult[Any]], outcome: Callable[[Any], tuple[str, bool]]) -> None:
    """One row per account: name, status and what came of it (``outcome(value)`` → text, good?) or why not."""
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
    out.print(table)
    failed = sum(r.status != "ok" for r in results)
    err.print(f"{len(results) - failed} account(s) reported, {failed} failed", highlight=False)
