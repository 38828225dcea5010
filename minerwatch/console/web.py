"""The console's FastAPI application: authentication, roles, CSRF and the security headers every response gets.

Who is asking, in order: a trusted reverse proxy's user header (only when configured, and only from the proxy's
addresses), an ``Authorization: Bearer`` API token, the session cookie. A request with none gets 401; a role too
low gets 403. A state-changing request authenticated by cookie (session or proxy) must carry the session's CSRF
token (form field ``csrf`` or header ``X-CSRF-Token``), else 403; API tokens are not sent by browsers on their
own, so they need none.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.staticfiles import StaticFiles

from minerwatch.alerting.state import StateStore
from minerwatch.console import auth as A
from minerwatch.console.case import CaseError, Settings
from minerwatch.console.store import ROLES, Stores
from minerwatch.errors import MinerWatchError

SESSION_COOKIE = "mw_session"
LOGIN_COOKIE = "mw_login"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class ProxyAuth:
    """Trust ``header`` as the user name on requests from ``addresses`` (a reverse proxy doing SSO)."""

    header: str
    addresses: frozenset[str]


@dataclass
class Console:
    stores: Stores
    settings: Settings
    proxy: ProxyAuth | None = None
    limiter: A.LoginLimiter = field(default_factory=A.LoginLimiter)
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    env: Environment | None = None

    @property
    def store(self) -> StateStore:
        return self.stores.get()


class AuthError(HTTPException):
    pass


def console_of(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def _proxy_csrf(con: Console, name: str) -> str:
    return hmac.new(con.secret, f"csrf:{name}".encode(), hashlib.sha256).hexdigest()


def authenticate(request: Request) -> A.User | None:
    cached = getattr(request.state, "user", False)
    if cached is not False:
        return cached  # type: ignore[no-any-return]
    con = console_of(request)
    user: A.User | None = None
    if con.proxy is not None and request.client is not None and request.client.host in con.proxy.addresses:
        name = request.headers.get(con.proxy.header)
        if name:
            found = A.get_user(con.store, name)
            user = A.User(found.name, found.role, "proxy", _proxy_csrf(con, found.name)) if found else None
    if user is None:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = A.token_user(con.store, header[7:].strip())
        elif request.cookies.get(SESSION_COOKIE):
            user = A.session_user(con.store, request.cookies[SESSION_COOKIE])
    request.state.user = user
    return user


async def _check_csrf(request: Request, user: A.User) -> None:
    if request.method in SAFE_METHODS or user.via == "token":
        return
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not user.csrf or not hmac.compare_digest(sent, user.csrf):
        raise AuthError(403, "missing or wrong CSRF token")


def need(role: str) -> Callable[[Request], Any]:
    """A dependency: the request's user, with at least ``role``, and a valid CSRF token on state changes."""
    if role not in ROLES:
        raise ValueError(role)

    async def dependency(request: Request) -> A.User:
        user = authenticate(request)
        if user is None:
            raise AuthError(401, "log in first")
        if not user.can(role):
            raise AuthError(403, f"this needs the {role} role; {user.name} is {user.role}")
        await _check_csrf(request, user)
        return user

    return dependency


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("minerwatch.console", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    from minerwatch.console.views import FILTERS

    env.filters.update(FILTERS)
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    con = console_of(request)
    assert con.env is not None
    user = getattr(request.state, "user", None) or None
    csrf_token = user.csrf if user and user.csrf else ""
    html = con.env.get_template(template).render(
        request=request, user=user, roles=ROLES, csrf_token=csrf_token, **context
    )
    return HTMLResponse(html, status_code=status_code)


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(
    state: str,
    settings: Settings | None = None,
    proxy: ProxyAuth | None = None,
    limiter: A.LoginLimiter | None = None,
) -> FastAPI:
    """The console over the state store at ``state``."""
    stores = Stores(state)
    con = Console(stores, settings or Settings(state=state), proxy, limiter or A.LoginLimiter())
    con.env = _environment()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        stores.close()

    app = FastAPI(
        lifespan=lifespan,
        title="MinerWatch console API",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="The triage console's JSON API. Authenticate with `Authorization: Bearer <token>` "
        "(`minerwatch users token NAME`).",
    )
    app.state.console = con

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> Response:
        if wants_json(request):
            return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
        if exc.status_code == 401:
            return _login_required(request)
        return render(request, "error.html", status_code=exc.status_code, message=exc.detail)

    @app.exception_handler(CaseError)
    async def case_error(request: Request, exc: CaseError) -> Response:
        status = 404 if exc.message.startswith("no alert") else 400
        if wants_json(request):
            return JSONResponse({"error": exc.message}, status_code=status)
        return render(request, "error.html", status_code=status, message=exc.message)

    @app.exception_handler(MinerWatchError)
    async def library_error(request: Request, exc: MinerWatchError) -> Response:
        # What the library refuses (an ambiguous id prefix, a bad config …) is the request's fault: 400, its text.
        if wants_json(request):
            return JSONResponse({"error": exc.format()}, status_code=400)
        return render(request, "error.html", status_code=400, message=exc.format())

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": "not found"}, status_code=404)
        authenticate(request)
        return render(request, "error.html", status_code=404, message="not found")

    app.mount("/static", StaticFiles(packages=[("minerwatch.console", "static")]), name="static")

    from minerwatch.console import api, pages

    app.include_router(pages.router)
    app.include_router(api.router)

    return app


def _login_required(request: Request) -> Response:
    """The login page (status 401) for a page request without a session; the page asked for comes back after."""
    from minerwatch.console.pages import login_page

    return login_page(request, next_url=request.url.path, status_code=401)


__all__ = ["Console", "ProxyAuth", "create_app", "need", "render"]
