"""Users, passwords, sessions, API tokens and login rate limiting.

Passwords are hashed with scrypt (memory-hard: n=2**15, r=8 → 32 MiB per hash), stored as
``scrypt$n$r$p$salt$hash``. Session and API tokens are 256-bit random strings; only their SHA-256 is stored, so a
copy of the state file opens no session. Each session has its own CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from minerwatch.alerting.state import StateStore
from minerwatch.console.store import ROLES
from minerwatch.errors import MinerWatchError

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SESSION_SECONDS = 12 * 3600
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD = 8


class UserError(MinerWatchError):
    """A user cannot be added or changed (bad name, unknown role, short password)."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    via: str = "session"
    """How the request was authenticated: session, token or proxy."""
    csrf: str | None = None

    def can(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
            dklen=len(digest) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


# A hash to check against when the user does not exist, so a login takes as long either way.
_DUMMY = hash_password(secrets.token_hex(8))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# -- users ------------------------------------------------------------------------------------------------


def add_user(store: StateStore, name: str, role: str, password: str, *, replace: bool = False) -> None:
    if not USER_NAME.match(name):
        raise UserError(f"user name {name!r}: 1-64 letters, digits and ._@- (starting with a letter or digit)")
    if role not in ROLES:
        raise UserError(f"role {role!r}: one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    exists = store.db.execute("SELECT 1 FROM console_users WHERE name=?", (name,)).fetchone()
    if exists and not replace:
        raise UserError(f"user {name!r} exists (use --update to change the role or password)")
    store.db.execute(
        "INSERT OR REPLACE INTO console_users (name, role, password, created, disabled) VALUES (?, ?, ?, ?, 0)",
        (name, role, hash_password(password), time.time()),
    )
    if exists:  # a new password or role ends the user's sessions
        store.db.execute("DELETE FROM console_sessions WHERE user=?", (name,))


def change_password(store: StateStore, name: str, current: str, new: str, keep_token: str | None = None) -> bool:
    """Replace ``name``'s password when ``current`` is right (False when it is not). Every other session of the
    user ends; the one changing it (``keep_token``, its cookie) stays signed in."""
    if check_login(store, name, current) is None:
        return False
    if len(new) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    if new == current:
        raise UserError("the new password is the current one")
    store.db.execute("UPDATE console_users SET password=? WHERE name=?", (hash_password(new), name))
    store.db.execute(
        "DELETE FROM console_sessions WHERE user=? AND token_hash != ?", (name, _token_hash(keep_token or ""))
    )
    return True


def list_users(store: StateStore) -> list[dict[str, Any]]:
    rows = store.db.execute("SELECT name, role, created, disabled FROM console_users ORDER BY name").fetchall()
    return [{"name": r[0], "role": r[1], "created": r[2], "disabled": bool(r[3])} for r in rows]


def user_names(store: StateStore) -> list[str]:
    return [r[0] for r in store.db.execute("SELECT name FROM console_users WHERE disabled=0 ORDER BY name")]


def set_disabled(store: StateStore, name: str, disabled: bool) -> bool:
    cur = store.db.execute("UPDATE console_users SET disabled=? WHERE name=?", (int(disabled), name))
    if disabled:
        store.db.execute("DELETE FROM console_sessions WHERE user=?", (name,))
        store.db.execute("DELETE FROM console_tokens WHERE user=?", (name,))
    return cur.rowcount > 0


def get_user(store: StateStore, name: str) -> User | None:
    row = store.db.execute("SELECT role FROM console_users WHERE name=? AND disabled=0", (name,)).fetchone()
    return User(name, row[0]) if row else None


def check_login(store: StateStore, name: str, password: str) -> User | None:
    row = store.db.execute("SELECT role, password FROM console_users WHERE name=? AND disabled=0", (name,)).fetchone()
    if row is None:
        verify_password(password, _DUMMY)
        return None
    return User(name, row[0]) if verify_password(password, row[1]) else None


# -- sessions ---------------------------------------------------------------------------------------------


def new_session(store: StateStore, user: str) -> tuple[str, str]:
    """A new session of ``user``: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = time.time()
    store.db.execute("DELETE FROM console_sessions WHERE expires < ?", (now,))
    store.db.execute(
        "INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?)",
        (_token_hash(token), user, csrf, now, now + SESSION_SECONDS),
    )
    return token, csrf


def session_user(store: StateStore, token: str) -> User | None:
    row = store.db.execute(
        "SELECT u.name, u.role, s.csrf FROM console_sessions s JOIN console_users u ON u.name = s.user "
        "WHERE s.token_hash=? AND s.expires > ? AND u.disabled=0",
        (_token_hash(token), time.time()),
    ).fetchone()
    return User(row[0], row[1], "session", row[2]) if row else None


def end_session(store: StateStore, token: str) -> None:
    store.db.execute("DELETE FROM console_sessions WHERE token_hash=?", (_token_hash(token),))


# -- API tokens -------------------------------------------------------------------------------------------


def new_token(store: StateStore, user: str, name: str) -> str:
    if get_user(store, user) is None:
        raise UserError(f"no user {user!r}")
    token = "mwt_" + secrets.token_urlsafe(32)
    store.db.execute(
        "INSERT INTO console_tokens (token_hash, user, name, created) VALUES (?, ?, ?, ?)",
        (_token_hash(token), user, name, time.time()),
    )
    return token


def token_user(store: StateStore, token: str) -> User | None:
    row = store.db.execute(
        "SELECT u.name, u.role FROM console_tokens t JOIN console_users u ON u.name = t.user "
        "WHERE t.token_hash=? AND u.disabled=0",
        (_token_hash(token),),
    ).fetchone()
    return User(row[0], row[1], "token") if row else None


def revoke_tokens(store: StateStore, user: str, name: str | None = None) -> int:
    if name is None:
        return store.db.execute("DELETE FROM console_tokens WHERE user=?", (user,)).rowcount
    return store.db.execute("DELETE FROM console_tokens WHERE user=? AND name=?", (user, name)).rowcount


# -- login rate limiting ----------------------------------------------------------------------------------


class LoginLimiter:
    """At most ``attempts`` failed logins per user name and ``address_attempts`` per client address within
    ``window`` seconds; beyond that a login is refused (429) even with the right password."""

    def __init__(self, attempts: int = 5, address_attempts: int = 20, window: float = 300.0) -> None:
        self.limits = {"user": attempts, "ip": address_attempts}
        self.window = window
        self._fails: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def _limit(self, key: str) -> int:
        return self.limits.get(key.split(":", 1)[0], self.limits["user"])

    def blocked(self, *keys: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return any(len(self._recent(k, now)) >= self._limit(k) for k in keys)

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            for k in keys:
                self._recent(k, now).append(now)
            if len(self._fails) > 10000:  # forget idle keys, so a flood of names cannot grow memory
                for k in [k for k, q in self._fails.items() if not q]:
                    del self._fails[k]

    def succeeded(self, *keys: str) -> None:
        # Only the user's count: a success must not wipe an address's record of guessing other names.
        with self._lock:
            for k in keys:
                if k.startswith("user:"):
                    self._fails.pop(k, None)
