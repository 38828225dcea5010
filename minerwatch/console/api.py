"""The JSON API under ``/api/``: the same library calls and role checks as the pages, for scripts with an API
token (``Authorization: Bearer …``). The schema is at ``/api/openapi.json`` (for a signed-in user)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from minerwatch.console import auth as A
from minerwatch.console import case as C
from minerwatch.console import store as S
from minerwatch.console import views as V
from minerwatch.console.web import console_of, need

router = APIRouter(prefix="/api", tags=["console"])

viewer = Depends(need("viewer"))
analyst = Depends(need("analyst"))
responder = Depends(need("responder"))

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad input"},
    401: {"description": "Not authenticated"},
    403: {"description": "Role too low, or CSRF token missing"},
    404: {"description": "No such alert"},
}


def _json(value: Any) -> Any:
    # Stored data may hold values FastAPI's encoder would choke on; one round through json with str fallback.
    return json.loads(json.dumps(value, default=str))


class Comment(BaseModel):
    text: str = Field(min_length=1, max_length=C.MAX_COMMENT)


class Assign(BaseModel):
    assignee: str | None = Field(default=None, max_length=64)


class Status(BaseModel):
    status: Literal["new", "updated", "acknowledged", "closed"]


class Tick(BaseModel):
    item: str = Field(min_length=1, max_length=200)
    note: str = Field(min_length=1, max_length=C.MAX_COMMENT)


class FalsePositive(BaseModel):
    reason: str = Field(min_length=1, max_length=500)
    expires: str = Field(min_length=1, max_length=40, description="ISO 8601, in the future")
    match: dict[str, str] = Field(default_factory=dict, description="key column → value (default: the alert's key)")
    base_sha256: str | None = Field(
        default=None, description="SHA-256 of the allowlist file as previewed; given, the entry is written"
    )


class StepBody(BaseModel):
    step: str = Field(min_length=1, max_length=40)


class Execute(BaseModel):
    steps: list[str] = Field(min_length=1, max_length=20)


class Rollback(BaseModel):
    run: bool = False


class Retry(BaseModel):
    target: str = Field(default="all", max_length=200)


@router.get("/me", responses=ERRORS)
def me(user: A.User = viewer) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "via": user.via}


@router.get("/alerts", responses=ERRORS)
def alerts(
    request: Request,
    status: str | None = Query(None, max_length=20),
    severity: str | None = Query(None, max_length=20),
    rule: str | None = Query(None, max_length=200),
    account: str | None = Query(None, max_length=40),
    assignee: str | None = Query(None, max_length=64),
    since: str | None = Query(None, max_length=40),
    until: str | None = Query(None, max_length=40),
    text: str | None = Query(None, max_length=200),
    sort: Literal["first_seen", "last_seen", "updated"] = "first_seen",
    order: Literal["asc", "desc"] = "desc",
    after: str | None = Query(None, max_length=400),
    limit: int = Query(50, ge=1, le=500),
    user: A.User = viewer,
) -> dict[str, Any]:
    f = S.QueueFilter(status, severity, rule, account, assignee, since, until, text, sort, order, after, limit)
    page, nxt = S.queue(console_of(request).store, f)
    return {"alerts": _json(page), "next": nxt}


@router.get("/alerts/version", responses=ERRORS)
def alerts_version(request: Request, user: A.User = viewer) -> dict[str, Any]:
    return S.queue_version(console_of(request).store)


@router.get("/alerts/{alert_id}", responses=ERRORS)
def alert(request: Request, alert_id: str, user: A.User = viewer) -> dict[str, Any]:
    store = console_of(request).store
    C.alert_or_raise(store, alert_id)
    return _json(V.case_view(store, alert_id))  # type: ignore[no-any-return]


@router.post("/alerts/{alert_id}/comments", responses=ERRORS)
def add_comment(request: Request, alert_id: str, body: Comment, user: A.User = analyst) -> dict[str, Any]:
    return {"seq": C.comment(console_of(request).store, alert_id, user.name, body.text)}


@router.post("/alerts/{alert_id}/assign", responses=ERRORS)
def assign(request: Request, alert_id: str, body: Assign, user: A.User = analyst) -> dict[str, Any]:
    store = console_of(request).store
    C.assign(store, alert_id, user.name, body.assignee, A.user_names(store))
    return {"assignee": body.assignee}


@router.post("/alerts/{alert_id}/status", responses=ERRORS)
def status(request: Request, alert_id: str, body: Status, user: A.User = analyst) -> dict[str, Any]:
    con = console_of(request)
    return _json(C.set_status(con.store, con.settings, alert_id, body.status, user.name))  # type: ignore[no-any-return]


@router.post("/alerts/{alert_id}/close", responses=ERRORS)
def close(request: Request, alert_id: str, user: A.User = analyst) -> dict[str, Any]:
    """Close as a true positive."""
    con = console_of(request)
    return _json(C.close_true_positive(con.store, con.settings, alert_id, user.name))  # type: ignore[no-any-return]


@router.post("/alerts/{alert_id}/false-positive", responses=ERRORS)
def false_positive(request: Request, alert_id: str, body: FalsePositive, user: A.User = analyst) -> dict[str, Any]:
    """Without ``base_sha256``: the allowlist diff (nothing written). With it: write the entry and close."""
    con = console_of(request)
    alert = C.alert_or_raise(con.store, alert_id)
    match = body.match or {k: str(v) for k, v in (alert.get("key") or {}).items()}
    form = {"reason": body.reason, "expires": body.expires, **{f"match_{k}": v for k, v in match.items()}}
    old, _new, diff = C.allowlist_change(con.settings, alert, form)
    base = hashlib.sha256(old.encode()).hexdigest()
    if body.base_sha256 is None:
        return {"diff": diff, "base_sha256": base, "written": False}
    record = C.close_false_positive(con.store, con.settings, alert_id, user.name, form, body.base_sha256)
    return {"diff": diff, "written": True, "alert": _json(record)}


@router.post("/alerts/{alert_id}/checklist", responses=ERRORS)
def checklist(request: Request, alert_id: str, body: Tick, user: A.User = analyst) -> dict[str, Any]:
    store = console_of(request).store
    C.tick(store, alert_id, body.item, user.name, body.note)
    return {"item": body.item, "status": "done"}


@router.get("/alerts/{alert_id}/plan", responses=ERRORS)
def plan(request: Request, alert_id: str, user: A.User = responder) -> dict[str, Any]:
    con = console_of(request)
    return _json(C.plan(con.store, con.settings, alert_id, user.name).to_json())  # type: ignore[no-any-return]


@router.post("/alerts/{alert_id}/respond/request", responses=ERRORS)
def request_step(request: Request, alert_id: str, body: StepBody, user: A.User = responder) -> dict[str, Any]:
    C.request_step(console_of(request).store, alert_id, body.step, user.name)
    return {"step": body.step, "requested_by": user.name}


@router.post("/alerts/{alert_id}/respond/approve", responses=ERRORS)
def approve_step(request: Request, alert_id: str, body: StepBody, user: A.User = responder) -> Any:
    try:
        C.approve_step(console_of(request).store, alert_id, body.step, user.name)
    except C.CaseError as exc:
        code = 404 if exc.message.startswith("no alert") else 403
        return JSONResponse({"error": exc.message}, status_code=code)
    return {"step": body.step, "approved_by": user.name}


@router.post("/alerts/{alert_id}/respond/execute", responses=ERRORS)
def execute(request: Request, alert_id: str, body: Execute, user: A.User = responder) -> dict[str, Any]:
    con = console_of(request)
    plan_, reports = C.execute(con.store, con.settings, alert_id, user.name, body.steps)
    return {"results": [r.to_json() for r in reports], "plan": _json(plan_.to_json())}


@router.post("/alerts/{alert_id}/respond/rollback", responses=ERRORS)
def rollback(request: Request, alert_id: str, body: Rollback, user: A.User = responder) -> dict[str, Any]:
    con = console_of(request)
    return _json(C.rollback(con.store, con.settings, alert_id, user.name, body.run))  # type: ignore[no-any-return]


@router.get("/rules", responses=ERRORS)
def rules(user: A.User = viewer) -> list[dict[str, Any]]:
    return V.rules()


@router.get("/outbox", responses=ERRORS)
def outbox(request: Request, user: A.User = viewer) -> dict[str, Any]:
    summary, rows = C.outbox(console_of(request).store)
    return {"summary": summary, "rows": _json(rows)}


@router.post("/outbox/retry", responses=ERRORS)
def outbox_retry(request: Request, body: Retry, user: A.User = analyst) -> dict[str, Any]:
    return C.outbox_retry(console_of(request).store, body.target, user.name)


@router.get("/posture", responses=ERRORS)
def posture(request: Request, user: A.User = viewer) -> dict[str, Any]:
    return {"last": _json(S.latest_result(console_of(request).store, "posture"))}


@router.get("/health", responses=ERRORS)
def health(request: Request, user: A.User = viewer) -> dict[str, Any]:
    from minerwatch.console.pages import STARTED

    return V.health(console_of(request).store, STARTED)


@router.get("/openapi.json", include_in_schema=False)
def openapi(request: Request, user: A.User = viewer) -> dict[str, Any]:
    return request.app.openapi()  # type: ignore[no-any-return]
