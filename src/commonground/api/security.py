"""The API's edge defences: the scope each call needs, sign-in throttling, response headers.

Scopes are decided here from the method and path, not per route, so a route added later
cannot forget one: reading is `read`, computing (queries, offers) is `query`, anything else
that changes state is `admin`.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Callable

from ..domain.errors import Throttled
from ..domain.records import TokenScope

# Calls that compute on others' data need `query`, reads among them too (a survey's results
# run governed aggregates); `{id}` stands for one path segment.
_COMPUTE = {("POST", "/v1/query"), ("POST", "/v1/offers"), ("POST", "/v1/exports"),
            ("POST", "/v1/code/{id}/run"), ("GET", "/v1/surveys/{id}/results")}


def _computes(method: str, path: str) -> bool:
    parts = path.rstrip("/").split("/")
    for allowed, template in _COMPUTE:
        pattern = template.split("/")
        if allowed == method and len(pattern) == len(parts) and all(
                t == "{id}" or t == p for t, p in zip(pattern, parts)):
            return True
    return False


# Every API answer is private to its caller and is data, never a page to render or frame.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# The interactive docs load their own scripts; they get the headers without the strict CSP.
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")


def required_scope(method: str, path: str) -> TokenScope:
    if _computes(method, path):
        return TokenScope.QUERY
    if method in ("GET", "HEAD", "OPTIONS"):
        return TokenScope.READ
    return TokenScope.ADMIN


class SignInThrottle:
    """At most `limit` failed sign-ins per client in any `window_s`; then 429 until the oldest
    failure leaves the window. In-process: one API worker's view (see docs/threat-model.md)."""

    def __init__(self, limit: int = 10, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        with self._lock:
            failures = self._recent(client)
            if len(failures) >= self.limit:
                wait = int(failures[0] + self.window_s - self.clock()) + 1
                raise Throttled(f"too many failed sign-ins from this client; try again in {wait} s", wait)

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self.clock())

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures[client]
        cutoff = self.clock() - self.window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            self._failures.pop(client, None)
            return self._failures[client]
        return failures
