"""Authentication, roles and CSRF of every endpoint of the running console, over HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from minerwatch.console import api, pages

from .conftest import DEMO_ALERT, PASSWORD, Console, csrf_of, login

PUBLIC = {"/login"}


def _routes() -> list[tuple[str, str, str | None]]:
    """(method, path, role needed) of every page and API route, from the routers themselves (nothing missed)."""
    out = []
    for router in (pages.router, api.router):
        for route in router.routes:
            for method in sorted(route.methods - {"HEAD"}):  # type: ignore[attr-defined]
                role = None
                for dep in route.dependant.dependencies:  # type: ignore[attr-defined]
                    code = getattr(dep.call, "__code__", None)
                    closure = getattr(dep.call, "__closure__", None) or ()
                    if code is not None and closure:
                        role = next((c.cell_contents for c in closure if isinstance(c.cell_contents, str)), role)
                out.append((method, route.path, role))  # type: ignore[attr-defined]
    return out


def _fill(path: str) -> str:
    return path.replace("{alert_id}", DEMO_ALERT).replace("{fmt}", "json")


ROUTES = _routes()


def test_every_route_declares_a_role() -> None:
    assert len(ROUTES) > 30
    missing = [(m, p) for m, p, role in ROUTES if role is None and p not in PUBLIC]
    assert missing == []


@pytest.mark.parametrize(("method", "path", "role"), [r for r in ROUTES if r[1] not in PUBLIC])
def test_unauthenticated_gets_401(console: Console, method: str, path: str, role: str) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as c:
        r = c.request(method, _fill(path), json={})
    assert r.status_code == 401, (method, path, r.status_code, r.text[:200])


LOWER = {"analyst": "vic", "responder": "ana", "admin": "rita"}


@pytest.mark.parametrize(("method", "path", "role"), [r for r in ROUTES if r[2] in LOWER])
def test_wrong_role_gets_403(console: Console, method: str, path: str, role: str) -> None:
    user = LOWER[role]
    with console.client(user) as c:
        r = c.request(method, _fill(path), headers={"X-CSRF-Token": csrf_of(c)}, json={})
    assert r.status_code == 403, (user, method, path, r.status_code, r.text[:200])
    token = console.token(user)
    with httpx.Client(base_url=console.url, timeout=30) as c:
        r = c.request(method, _fill(path), headers={"Authorization": f"Bearer {token}"}, json={})
    assert r.status_code == 403, (user, "token", method, path, r.status_code)


def test_post_without_or_with_a_wrong_csrf_token_gets_403(console: Console) -> None:
    with console.client("ana") as c:
        good = csrf_of(c)
        wrong = ("y" if good[0] == "x" else "x") + good[1:]  # differs from the real token whatever it starts with
        r = c.post(f"/alerts/{DEMO_ALERT}/comment", data={"text": "no token"})
        assert r.status_code == 403
        r = c.post(f"/alerts/{DEMO_ALERT}/comment", data={"text": "bad token", "csrf": wrong})
        assert r.status_code == 403
        r = c.post(f"/api/alerts/{DEMO_ALERT}/comments", json={"text": "no header"})
        assert r.status_code == 403
        r = c.post(f"/alerts/{DEMO_ALERT}/comment", data={"text": "with the token", "csrf": good})
        assert r.status_code == 303
        case = c.get(f"/api/alerts/{DEMO_ALERT}").json()
    texts = [x["text"] for x in case["comments"]]
    assert "with the token" in texts and "no token" not in texts and "bad token" not in texts


def test_login_form_needs_its_csrf_cookie(console: Console) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as c:
        r = c.post("/login", data={"username": "ana", "password": PASSWORD, "csrf": "forged", "next": "/queue"})
    assert r.status_code == 403


def test_session_cookie_flags_and_security_headers(console: Console) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as c:
        r = login(c, "vic")
        assert r.status_code == 303 and r.headers["location"] == "/queue"
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("mw_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain http on 127.0.0.1; under TLS the flag is set
        page = c.get("/queue")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), "inline script in the page"
    assert " style=" not in page.text and "<style" not in page.text


def test_logout_ends_the_session(console: Console) -> None:
    with console.client("vic") as c:
        cookie = c.cookies.get("mw_session")
        r = c.post("/logout", data={"csrf": csrf_of(c)})
        assert r.status_code == 303
    with httpx.Client(base_url=console.url, timeout=30, cookies={"mw_session": str(cookie)}) as c:
        assert c.get("/api/me").status_code == 401


def test_login_rate_limit_refuses_even_the_right_password(console: Console) -> None:
    with httpx.Client(base_url=console.url, timeout=60) as c:
        for _ in range(5):
            assert login(c, "locked", "wrong password").status_code == 401
        r = login(c, "locked", PASSWORD)
        assert r.status_code == 429 and "mw_session" not in r.headers.get("set-cookie", "")
        # another user from the same address still gets in
        assert login(c, "ana").status_code == 303
    with console.client("ada") as c:
        audit = c.get(f"/api/alerts/{DEMO_ALERT}").json()  # the case works for a fresh session
    assert audit["report"]["alert"]["alert_id"] == DEMO_ALERT


def test_api_token_and_audit_names_the_user(console: Console) -> None:
    token = console.token("ana")
    with httpx.Client(base_url=console.url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get("/api/me").json() == {"name": "ana", "role": "analyst", "via": "token"}
        r = c.post(f"/api/alerts/{DEMO_ALERT}/assign", json={"assignee": "rita"})
        assert r.status_code == 200, r.text
        case = c.get(f"/api/alerts/{DEMO_ALERT}").json()
        assert c.get("/api/alerts", params={"assignee": "rita"}).json()["alerts"][0]["alert_id"] == DEMO_ALERT
    assert case["case"]["assignee"] == "rita"
    actions = case["report"]["actions"]["entries"]
    assert any(e["action"] == "console:assign" and e["actor"] == "ana" for e in actions)
    with httpx.Client(base_url=console.url, timeout=30, headers={"Authorization": "Bearer mwt_forged"}) as c:
        assert c.get("/api/me").status_code == 401


def test_openapi_schema_lists_the_api(console: Console) -> None:
    auth = {"Authorization": f"Bearer {console.token('vic')}"}
    with httpx.Client(base_url=console.url, timeout=30, headers=auth) as c:
        schema = c.get("/api/openapi.json").json()
    assert "/api/alerts" in schema["paths"] and "/api/alerts/{alert_id}/respond/execute" in schema["paths"]
    assert not any(p.startswith("/alerts") for p in schema["paths"])  # pages are not part of the API


def test_changing_ones_password_keeps_this_session_and_ends_the_others(console: Console) -> None:
    new = "a longer passphrase"
    with console.client("pat") as elsewhere, console.client("pat") as c:
        form = {"csrf": csrf_of(c), "current": "not it", "new": new, "confirm": new}
        wrong = c.post("/users/password", data=form)
        assert wrong.status_code == 400 and "current password is wrong" in wrong.text
        differ = c.post("/users/password", data={**form, "current": PASSWORD, "confirm": new + "!"})
        assert differ.status_code == 400 and "differ" in differ.text
        r = c.post("/users/password", data={**form, "current": PASSWORD})
        assert r.status_code == 200 and "password changed" in r.text
        assert c.get("/api/me").json()["name"] == "pat"
        assert elsewhere.get("/api/me").status_code == 401
    with httpx.Client(base_url=console.url, timeout=60) as c:
        assert login(c, "pat").status_code == 401
        assert login(c, "pat", new).status_code == 303
