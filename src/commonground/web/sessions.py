"""Browser sessions, cookies and CSRF tokens for the web app.

Why server-side sessions: the session cookie carries a random id, never the API token, so
a stolen cookie dies with logout or the idle timeout, and the token a party pasted never
travels again after login. The token is kept in this process's memory only, to re-check on
every request that it is still valid (a revoked or expired token ends the session at once).
Sessions do not survive a restart of `commonground serve`; people log in again.

CSRF: every form that changes something carries a random token bound to the session and
compared in constant time. The login form has no session yet, so it uses a double-submit
cookie. Cookies are HttpOnly, SameSite=Strict, scoped to the web app's path, and Secure
whenever the request came over https.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "cg_session"
LOGIN_CSRF_COOKIE = "cg_login_csrf"
CSRF_FIELD = "csrf_token"


class CsrfFailed(Exception):
    """A state-changing request without the right CSRF token: answered 403, nothing done."""


class LoginRequired(Exception):
    """No live session: the browser is sent to the login page."""


@dataclass
class WebSession:
    id: str
    party: str
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float


class SessionStore:
    """In-memory sessions with an idle timeout, an absolute lifetime and a size cap."""

    def __init__(self, idle_seconds: float = 2 * 3600, max_age_seconds: float = 12 * 3600,
                 capacity: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.max_age_seconds = max_age_seconds
        self.capacity = capacity
        self._clock = clock
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, party: str, token: str) -> WebSession:
        now = self._clock()
        session = WebSession(secrets.token_urlsafe(32), party, token, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > self.capacity:  # the oldest session gives way
                self._sessions.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> WebSession | None:
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.seen > self.idle_seconds or now - session.created > self.max_age_seconds:
                del self._sessions[session_id]
                return None
            session.seen = now
            self._sessions.move_to_end(session_id)
            return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)


def check_csrf(expected: str | None, given: object) -> None:
    """Raise CsrfFailed unless both tokens are present and equal (constant-time compare)."""
    if not expected or not isinstance(given, str) or not given:
        raise CsrfFailed("missing CSRF token")
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfFailed("wrong CSRF token")


def cookie_path(request: Request) -> str:
    return request.scope.get("root_path") or "/"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    """Set one of our cookies with the flags every one of them must have."""
    response.set_cookie(name, value, max_age=max_age, path=cookie_path(request), httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=cookie_path(request), httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
