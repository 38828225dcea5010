"""The console's HTML pages: server-rendered, every value escaped by Jinja2's autoescaping, forms carrying the
CSRF token. Each handler is a few library calls (:mod:`minerwatch.console.case`, :mod:`.views`, the report
renderers)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from minerwatch.console import auth as A
from minerwatch.console import case as C
from minerwatch.console import store as S
from minerwatch.console import views as V
from minerwatch.console.web import LOGIN_COOKIE, SESSION_COOKIE, AuthError, console_of, need, render
from minerwatch.errors import MinerWatchError
from minerwatch.report.html import render_html
from minerwatch.report.markdown import render_markdown

router = APIRouter(include_in_schema=False)
STARTED = time.time()

viewer = Depends(need("viewer"))
analyst = Depends(need("analyst"))
responder = Depends(need("responder"))
admin = Depends(need("admin"))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _safe_next(value: str | None) -> str:
    # Only a path of this site: no scheme, no host, no protocol-relative //host.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/queue"


def login_page(
    request: Request, next_url: str | None = None, status_code: int = 200, error: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status_code=status_code, login_csrf=token, next_url=_safe_next(next_url), error=error
    )
    response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/login")
    return response


@router.get("/login")
def login_get(request: Request, next: str | None = None) -> Response:  # noqa: A002 (the query parameter's name)
    return login_page(request, next)


@router.post("/login")
def login_post(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    csrf: str = Form(...),
    next: str = Form("/queue"),  # noqa: A002
) -> Response:
    con = console_of(request)
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or not secrets.compare_digest(cookie, csrf):
        raise AuthError(403, "missing or wrong CSRF token")
    client = request.client.host if request.client else "?"
    keys = (f"ip:{client}", f"user:{username}")
    if con.limiter.blocked(*keys):
        con.store.audit("console:login-throttled", actor=username, request={"client": client})
        return login_page(request, next, 429, "too many failed logins: wait a few minutes")
    user = A.check_login(con.store, username, password)
    if user is None:
        con.limiter.failed(*keys)
        con.store.audit("console:login-failed", actor=username, request={"client": client})
        return login_page(request, next, 401, "wrong user name or password")
    con.limiter.succeeded(*keys)
    token, _csrf = A.new_session(con.store, user.name)
    con.store.audit("console:login", actor=user.name, request={"client": client})
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
        max_age=A.SESSION_SECONDS,
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, user: A.User = viewer) -> Response:
    con = console_of(request)
    if request.cookies.get(SESSION_COOKIE):
        A.end_session(con.store, request.cookies[SESSION_COOKIE])
    con.store.audit("console:logout", actor=user.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
def home(user: A.User = viewer) -> Response:
    return RedirectResponse("/queue", status_code=303)


# -- queue ------------------------------------------------------------------------------------------------


def queue_filter(request: Request) -> S.QueueFilter:
    q = request.query_params
    try:
        limit = int(q.get("limit") or 50)
    except ValueError:
        limit = 50
    return S.QueueFilter(
        status=q.get("status") or None,
        severity=q.get("severity") or None,
        rule=q.get("rule") or None,
        account=q.get("account") or None,
        assignee=q.get("assignee") or None,
        since=q.get("since") or None,
        until=q.get("until") or None,
        text=q.get("text") or None,
        sort=q.get("sort") if q.get("sort") in S.SORTS else "first_seen",
        order="asc" if q.get("order") == "asc" else "desc",
        after=q.get("after") or None,
        limit=limit,
    )


@router.get("/queue", response_class=HTMLResponse)
def queue_page(request: Request, user: A.User = viewer) -> Response:
    con = console_of(request)
    f = queue_filter(request)
    alerts, nxt = S.queue(con.store, f)
    params = f.params()
    return render(
        request,
        "queue.html" if request.query_params.get("partial") != "1" else "queue_rows.html",
        alerts=alerts,
        f=f,
        next_url=("/queue?" + urlencode({**params, "after": nxt})) if nxt else None,
        first_url="/queue?" + urlencode(params),
        facets=S.facets(con.store),
        users=A.user_names(con.store),
        version=json.dumps(S.queue_version(con.store)),
        sort_urls={
            s: "/queue?"
            + urlencode({**params, "sort": s, "order": "asc" if f.sort == s and f.order == "desc" else "desc"})
            for s in S.SORTS
        },
    )


# -- case -------------------------------------------------------------------------------------------------


def _case_page(request: Request, alert_id: str, status_code: int = 200, **extra: Any) -> Response:
    con = console_of(request)
    C.alert_or_raise(con.store, alert_id)
    view = V.case_view(con.store, alert_id)
    report = view["report"]
    from minerwatch.report.html import report_view

    return render(
        request,
        "case.html",
        status_code=status_code,
        v=view,
        rv=report_view(report),
        users=A.user_names(con.store),
        proposal=C.proposed_entry(report["alert"]),
        allowlist=con.settings.allowlist,
        **extra,
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def case_page(request: Request, alert_id: str, user: A.User = viewer) -> Response:
    return _case_page(request, alert_id)


def _back(alert_id: str, anchor: str = "") -> Response:
    return RedirectResponse(f"/alerts/{alert_id}{anchor}", status_code=303)


@router.post("/alerts/{alert_id}/comment")
def case_comment(request: Request, alert_id: str, text: str = Form(...), user: A.User = analyst) -> Response:
    C.comment(console_of(request).store, alert_id, user.name, text)
    return _back(C.alert_or_raise(console_of(request).store, alert_id)["alert_id"], "#comments")


@router.post("/alerts/{alert_id}/assign")
def case_assign(request: Request, alert_id: str, assignee: str = Form(""), user: A.User = analyst) -> Response:
    con = console_of(request)
    C.assign(con.store, alert_id, user.name, assignee, A.user_names(con.store))
    return _back(C.alert_or_raise(con.store, alert_id)["alert_id"])


@router.post("/alerts/{alert_id}/status")
def case_status(request: Request, alert_id: str, status: str = Form(...), user: A.User = analyst) -> Response:
    con = console_of(request)
    record = C.set_status(con.store, con.settings, alert_id, status, user.name)
    return _back(record["alert_id"])


@router.post("/alerts/{alert_id}/close")
def case_close(request: Request, alert_id: str, user: A.User = analyst) -> Response:
    con = console_of(request)
    record = C.close_true_positive(con.store, con.settings, alert_id, user.name)
    return _back(record["alert_id"])


def _fp_form(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/alerts/{alert_id}/false-positive", response_class=HTMLResponse)
async def case_false_positive(request: Request, alert_id: str, user: A.User = analyst) -> Response:
    """Show the allowlist entry's diff; nothing is written until it is confirmed."""
    con = console_of(request)
    form = _fp_form(await request.form())
    alert = C.alert_or_raise(con.store, alert_id)
    old, _new, diff = C.allowlist_change(con.settings, alert, form)
    return render(
        request,
        "fp_confirm.html",
        alert=alert,
        form=form,
        diff=diff,
        base=hashlib.sha256(old.encode()).hexdigest(),
        allowlist=con.settings.allowlist,
        keys=list((alert.get("key") or {}).keys()),
    )


@router.post("/alerts/{alert_id}/false-positive/confirm")
async def case_false_positive_confirm(request: Request, alert_id: str, user: A.User = analyst) -> Response:
    con = console_of(request)
    form = _fp_form(await request.form())
    record = C.close_false_positive(con.store, con.settings, alert_id, user.name, form, form.get("base", ""))
    return _back(record["alert_id"])


@router.post("/alerts/{alert_id}/checklist")
def case_checklist(
    request: Request, alert_id: str, item: str = Form(...), note: str = Form(""), user: A.User = analyst
) -> Response:
    con = console_of(request)
    C.tick(con.store, alert_id, item, user.name, note)
    return _back(alert_id, "#checklist")


@router.get("/alerts/{alert_id}/report.{fmt}")
def case_report(request: Request, alert_id: str, fmt: str, user: A.User = viewer) -> Response:
    con = console_of(request)
    C.alert_or_raise(con.store, alert_id)
    report = V.report_of(con.store, alert_id)
    real = report["report"]["alert_id"]
    if fmt == "json":
        body, media = json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", "application/json"
    elif fmt == "html":
        body, media = render_html(report), "text/html; charset=utf-8"
    elif fmt == "md":
        body, media = render_markdown(report), "text/markdown; charset=utf-8"
    else:
        raise C.CaseError(f"report format {fmt!r}: md, html or json")
    response = Response(body, media_type=media)
    response.headers["Content-Disposition"] = f'attachment; filename="case-{real}.{fmt}"'
    if fmt == "html":  # the report's own policy: no script, inline CSS only
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
        )
    return response


# -- respond ----------------------------------------------------------------------------------------------


@router.get("/alerts/{alert_id}/respond", response_class=HTMLResponse)
def respond_page(request: Request, alert_id: str, user: A.User = responder) -> Response:
    con = console_of(request)
    record = C.alert_or_raise(con.store, alert_id)
    try:
        plan = C.plan(con.store, con.settings, alert_id, user.name)
        plan_error = None
    except MinerWatchError as exc:
        plan, plan_error = None, exc.format()
    return render(
        request,
        "respond.html",
        alert=record,
        plan=plan,
        plan_error=plan_error,
        approvals=S.approvals(con.store, record["alert_id"]),
        granted=C.granted(con.store, record["alert_id"]),
        audit=con.store.audit_log(record["alert_id"]),
        results=None,
    )


@router.post("/alerts/{alert_id}/respond/request")
def respond_request(request: Request, alert_id: str, step: str = Form(...), user: A.User = responder) -> Response:
    con = console_of(request)
    C.request_step(con.store, alert_id, step, user.name)
    return RedirectResponse(f"/alerts/{C.alert_or_raise(con.store, alert_id)['alert_id']}/respond", 303)


@router.post("/alerts/{alert_id}/respond/approve")
def respond_approve(request: Request, alert_id: str, step: str = Form(...), user: A.User = responder) -> Response:
    con = console_of(request)
    try:
        C.approve_step(con.store, alert_id, step, user.name)
    except C.CaseError as exc:
        raise AuthError(403, exc.message) from None
    return RedirectResponse(f"/alerts/{C.alert_or_raise(con.store, alert_id)['alert_id']}/respond", 303)


@router.post("/alerts/{alert_id}/respond/execute", response_class=HTMLResponse)
def respond_execute(request: Request, alert_id: str, step: list[str] = Form([]), user: A.User = responder) -> Response:
    # A plain (threadpool) handler: the steps make AWS calls and must not hold the event loop.
    con = console_of(request)
    if not step:
        raise C.CaseError("choose at least one step to run")
    _plan, reports = C.execute(con.store, con.settings, alert_id, user.name, step)
    record = C.alert_or_raise(con.store, alert_id)
    return render(
        request,
        "respond.html",
        alert=record,
        plan=C.plan(con.store, con.settings, alert_id, user.name),
        plan_error=None,
        approvals=S.approvals(con.store, record["alert_id"]),
        granted=C.granted(con.store, record["alert_id"]),
        audit=con.store.audit_log(record["alert_id"]),
        results=[r.to_json() for r in reports],
    )


@router.post("/alerts/{alert_id}/respond/rollback", response_class=HTMLResponse)
def respond_rollback(request: Request, alert_id: str, run: str = Form("no"), user: A.User = responder) -> Response:
    con = console_of(request)
    result = C.rollback(con.store, con.settings, alert_id, user.name, run == "yes")
    record = C.alert_or_raise(con.store, alert_id)
    return render(request, "rollback.html", alert=record, result=result, ran=run == "yes")


# -- other pages ------------------------------------------------------------------------------------------


@router.get("/rules", response_class=HTMLResponse)
def rules_page(request: Request, user: A.User = viewer) -> Response:
    return render(request, "rules.html", rules=V.rules())


@router.get("/hunt", response_class=HTMLResponse)
def hunt_page(request: Request, user: A.User = viewer) -> Response:
    con = console_of(request)
    ids = V.hunting_rule_ids()
    rows = []
    for rid in ids:
        alerts, _ = S.queue(con.store, S.QueueFilter(rule=rid, limit=200))
        rows.append({"rule": rid, "alerts": alerts})
    return render(request, "hunt.html", rows=rows)


@router.get("/posture", response_class=HTMLResponse)
def posture_page(request: Request, user: A.User = viewer) -> Response:
    con = console_of(request)
    return render(request, "posture.html", last=S.latest_result(con.store, "posture"))


@router.post("/posture/run")
def posture_run(request: Request, user: A.User = responder) -> Response:
    con = console_of(request)
    C.run_posture_check(con.store, con.settings, user.name)
    return RedirectResponse("/posture", 303)


@router.get("/outbox", response_class=HTMLResponse)
def outbox_page(request: Request, user: A.User = viewer) -> Response:
    con = console_of(request)
    summary, rows = C.outbox(con.store)
    return render(request, "outbox.html", summary=summary, rows=rows)


@router.post("/outbox/retry")
def outbox_retry(request: Request, target: str = Form("all"), user: A.User = analyst) -> Response:
    con = console_of(request)
    C.outbox_retry(con.store, target, user.name)
    return RedirectResponse("/outbox", 303)


@router.get("/health", response_class=HTMLResponse)
def health_page(request: Request, user: A.User = viewer) -> Response:
    return render(request, "health.html", h=V.health(console_of(request).store, STARTED))


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, user: A.User = viewer) -> Response:
    con = console_of(request)
    users = A.list_users(con.store) if user.can("admin") else []
    return render(request, "users.html", users=users, new_token=None, message=None)


@router.post("/users", response_class=HTMLResponse)
def users_add(
    request: Request, name: str = Form(...), role: str = Form(...), password: str = Form(...), user: A.User = admin
) -> Response:
    con = console_of(request)
    try:
        A.add_user(con.store, name, role, password)
    except A.UserError as exc:
        raise C.CaseError(exc.message) from None
    con.store.audit("console:user-add", actor=user.name, request={"name": name, "role": role})
    return RedirectResponse("/users", 303)


@router.post("/users/token", response_class=HTMLResponse)
def users_token(request: Request, name: str = Form(...), user: A.User = viewer) -> Response:
    """A new API token for the user asking (shown once)."""
    con = console_of(request)
    token = A.new_token(con.store, user.name, name.strip()[:64] or "token")
    con.store.audit("console:token", actor=user.name, request={"name": name})
    users = A.list_users(con.store) if user.can("admin") else []
    return render(request, "users.html", users=users, new_token=token, message=None)


@router.post("/users/password", response_class=HTMLResponse)
def users_password(
    request: Request,
    current: str = Form(...),
    new: str = Form(...),
    confirm: str = Form(...),
    user: A.User = viewer,
) -> Response:
    """The signed-in user's own password. A wrong current password counts as a failed login (rate limited), so
    a stolen session cannot guess it."""
    con = console_of(request)
    key = f"user:{user.name}"
    if con.limiter.blocked(key):
        raise C.CaseError("too many wrong passwords: wait a few minutes")
    if new != confirm:
        raise C.CaseError("the new password and its confirmation differ")
    try:
        changed = A.change_password(con.store, user.name, current, new, request.cookies.get(SESSION_COOKIE))
    except A.UserError as exc:
        raise C.CaseError(exc.message) from None
    if not changed:
        con.limiter.failed(key)
        con.store.audit("console:password-failed", actor=user.name)
        raise C.CaseError("the current password is wrong")
    con.limiter.succeeded(key)
    con.store.audit("console:password-changed", actor=user.name)
    users = A.list_users(con.store) if user.can("admin") else []
    return render(request, "users.html", users=users, new_token=None, message="password changed")
