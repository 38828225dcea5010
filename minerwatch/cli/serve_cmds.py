"""``minerwatch serve`` (the triage console) and ``minerwatch users`` (its users and API tokens)."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from minerwatch.cli.app import DEFAULT_STATE, app, fail, note, out
from minerwatch.errors import MinerWatchError

if TYPE_CHECKING:
    from minerwatch.alerting.state import StateStore

users_app = typer.Typer(help="Users of the console (`minerwatch serve`) and their API tokens.", no_args_is_help=True)
app.add_typer(users_app, name="users")

_STATE = typer.Option(Path(DEFAULT_STATE), "--state", help="SQLite state store.")


def _store(state: Path) -> StateStore:
    # Start-up: SQLite and the console's tables are loaded by a command, not by `--help`.
    from minerwatch.alerting.state import StateStore
    from minerwatch.console.store import ensure_schema

    store = StateStore(state)
    ensure_schema(store)
    return store


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        fail("the passwords differ")
    return first


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="User name."),
    role: str = typer.Option(..., "--role", help="viewer, analyst, responder or admin."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from standard input."),
    update: bool = typer.Option(False, "--update", help="Change the role and password of an existing user."),
    state: Path = _STATE,
) -> None:
    """Add a console user (the password is hashed with scrypt). Roles: viewer reads; analyst comments, assigns,
    acknowledges, closes and ticks the checklist; responder also runs the response; admin also manages users."""
    from minerwatch.console import auth

    store = _store(state)
    try:
        auth.add_user(store, name, role, _password(password_stdin), replace=update)
        store.audit("console:user-add", actor=auth_actor(), request={"name": name, "role": role})
    except MinerWatchError as exc:
        fail(exc.message)
    finally:
        store.close()
    note(f"user {name} ({role}) {'updated' if update else 'added'}")


def auth_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@users_app.command("list")
def users_list(state: Path = _STATE, as_json: bool = typer.Option(False, "--json")) -> None:
    """List the console's users."""
    from minerwatch.console import auth

    store = _store(state)
    users = auth.list_users(store)
    store.close()
    if as_json:
        for u in users:
            print(json.dumps(u))
        return
    table = Table("name", "role", "disabled")
    for u in users:
        table.add_row(u["name"], u["role"], "yes" if u["disabled"] else "")
    out.print(table)


@users_app.command("disable")
def users_disable(name: str, state: Path = _STATE) -> None:
    """Disable a user: their sessions and API tokens end at once."""
    from minerwatch.console import auth

    store = _store(state)
    found = auth.set_disabled(store, name, True)
    if found:
        store.audit("console:user-disable", actor=auth_actor(), request={"name": name})
    store.close()
    if not found:
        fail(f"no user {name!r}", 1)
    note(f"user {name} disabled")


@users_app.command("token")
def users_token(
    name: str = typer.Argument(..., help="The user the token acts as."),
    label: str = typer.Option("script", "--name", help="A name for the token."),
    state: Path = _STATE,
) -> None:
    """Create an API token for a user (printed once; only its hash is stored). Use it as
    `Authorization: Bearer TOKEN` on /api/."""
    from minerwatch.console import auth

    store = _store(state)
    try:
        token = auth.new_token(store, name, label)
        store.audit("console:token", actor=auth_actor(), request={"user": name, "name": label})
    except MinerWatchError as exc:
        fail(exc.message)
    finally:
        store.close()
    print(token)


@app.command("serve")
def serve_cmd(
    state: Path = _STATE,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port (0: any free port, printed at start)."),
    config: Path | None = typer.Option(
        None, "--config", help="minerwatch.yaml: status changes notify its destinations (as `alerts ack`)."
    ),
    allowlist: Path | None = typer.Option(
        None, "--allowlist", help="Allowlist file that closing as false positive adds entries to."
    ),
    evidence: str | None = typer.Option(None, "--evidence", help="Evidence root for the response (as `respond`)."),
    region: str | None = typer.Option(None, "--region", help="AWS region (default: the alert's)."),
    profile: str | None = typer.Option(None, "--profile", help="AWS profile."),
    role_arn: str | None = typer.Option(None, "--role-arn", help="Assume this role for the response."),
    external_id: str | None = typer.Option(None, "--external-id", help="External id for --role-arn."),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="Serve HTTPS with this certificate (PEM)."),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="The certificate's private key (PEM)."),
    proxy_header: str | None = typer.Option(
        None, "--trusted-proxy-header", help="Take the user name from this header (SSO proxy). Off by default."
    ),
    proxy_address: list[str] = typer.Option(
        None, "--trusted-proxy", help="Address of the proxy whose header is trusted (repeatable; required)."
    ),
) -> None:
    """The triage console: alert queue, case pages, response approvals, in a browser, beside `watch`/`detect`.

    Add users first with `minerwatch users add NAME --role ...`. Listens on 127.0.0.1 unless --host says
    otherwise; use --tls-cert/--tls-key (or a TLS proxy) for anything beyond this machine."""
    import uvicorn

    from minerwatch.console.case import Settings
    from minerwatch.console.web import ProxyAuth, create_app
    from minerwatch.notify.config import find_config, load_config

    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together")
    if proxy_header and not proxy_address:
        fail("--trusted-proxy-header needs --trusted-proxy ADDRESS (only the proxy may set it)")
    try:
        found = find_config(config)
        notify = load_config(found) if found is not None and found.exists() else None
        if config is not None and notify is None:
            fail(f"{config}: no such file")
        settings = Settings(
            state=str(state),
            allowlist=str(allowlist) if allowlist else None,
            notify=notify,
            evidence=evidence,
            region=region,
            profile=profile,
            role_arn=role_arn,
            external_id=external_id,
        )
        proxy = ProxyAuth(proxy_header, frozenset(proxy_address)) if proxy_header else None
        web = create_app(str(state), settings, proxy)
    except MinerWatchError as exc:
        fail(exc)
    scheme = "https" if tls_cert else "http"
    server = uvicorn.Server(
        uvicorn.Config(
            web,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            ssl_certfile=str(tls_cert) if tls_cert else None,
            ssl_keyfile=str(tls_key) if tls_key else None,
            proxy_headers=False,
        )
    )

    original_startup = server.startup

    async def startup(sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await original_startup(sockets)
        for s in server.servers:
            for sock in s.sockets:
                bound = sock.getsockname()
                # Tests and scripts read this line to find the port.
                print(f"serving {scheme}://{bound[0]}:{bound[1]}/ state {state}", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    server.run()
