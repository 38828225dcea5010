"""Passwords, the login limiter and reverse-proxy authentication, in process (FastAPI's test client)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from minerwatch.alerting.state import StateStore
from minerwatch.console import auth as A
from minerwatch.console.store import ensure_schema
from minerwatch.console.web import ProxyAuth, create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_password_hash_is_scrypt_salted_and_verifies() -> None:
    a, b = A.hash_password("s3cret-pass"), A.hash_password("s3cret-pass")
    assert a.startswith("scrypt$32768$8$1$") and a != b
    assert A.verify_password("s3cret-pass", a) and not A.verify_password("s3cret-pasS", a)
    assert not A.verify_password("s3cret-pass", "md5$abc") and not A.verify_password("x", "garbage")


def test_limiter_counts_per_user_and_per_address() -> None:
    lim = A.LoginLimiter(attempts=2, address_attempts=3, window=60)
    lim.failed("ip:1", "user:a")
    lim.failed("ip:1", "user:a")
    assert lim.blocked("ip:1", "user:a") and not lim.blocked("ip:1", "user:b")
    lim.failed("ip:1", "user:b")
    assert lim.blocked("ip:1", "user:c")  # the address's third failure
    lim.succeeded("ip:2", "user:a")
    assert not lim.blocked("ip:2", "user:a")


def test_user_names_roles_and_passwords_are_checked(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    ensure_schema(store)
    for name, role, pw in (("bad name", "viewer", "long enough"), ("ok", "root", "long enough"), ("ok", "viewer", "x")):
        with pytest.raises(A.UserError):
            A.add_user(store, name, role, pw)
    A.add_user(store, "ok", "viewer", "long enough")
    with pytest.raises(A.UserError):
        A.add_user(store, "ok", "admin", "long enough")
    assert A.check_login(store, "ok", "long enough") == A.User("ok", "viewer")
    assert A.check_login(store, "ok", "wrong") is None and A.check_login(store, "nobody", "long enough") is None
    token, _ = A.new_session(store, "ok")
    A.add_user(store, "ok", "analyst", "another long one", replace=True)
    assert A.session_user(store, token) is None  # a new password ends the sessions
    store.close()


def _app(tmp_path: Path, addresses: set[str]) -> TestClient:
    state = tmp_path / "s.db"
    store = StateStore(state)
    ensure_schema(store)
    A.add_user(store, "ana", "analyst", "long enough")
    store.close()
    return TestClient(create_app(str(state), proxy=ProxyAuth("X-Forwarded-User", frozenset(addresses))))


def test_trusted_proxy_header_only_from_the_proxy(tmp_path: Path) -> None:
    with _app(tmp_path, {"testclient"}) as c:
        assert c.get("/api/me", headers={"X-Forwarded-User": "ana"}).json() == {
            "name": "ana", "role": "analyst", "via": "proxy"
        }  # fmt: skip
        assert c.get("/api/me", headers={"X-Forwarded-User": "mallory"}).status_code == 401
        # cookie-like authentication: state changes need the CSRF token shown in the page
        assert (
            c.post("/api/alerts/x/comments", headers={"X-Forwarded-User": "ana"}, json={"text": "t"}).status_code == 403
        )
        page = c.get("/queue", headers={"X-Forwarded-User": "ana"}).text
        csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        r = c.post(
            "/api/alerts/x/comments", headers={"X-Forwarded-User": "ana", "X-CSRF-Token": csrf}, json={"text": "t"}
        )
        assert r.status_code == 404  # past authentication and CSRF: there is no alert x
    with _app(tmp_path / "other", {"10.9.9.9"}) as c:
        assert c.get("/api/me", headers={"X-Forwarded-User": "ana"}).status_code == 401
