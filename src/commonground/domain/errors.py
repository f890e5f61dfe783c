"""The error tree every edge maps to an exit code or HTTP status.

    CommongroundError
    ├── BadInput        exit 2, HTTP 400/422 — the caller's input is wrong; nothing changed
    │   └── Conflict    exit 2, HTTP 409 — a name or state clash (duplicate name, wrong state)
    ├── Refused         exit 3, HTTP 403 — a policy rule refused; carries human-readable reasons
    ├── NotFound        exit 4, HTTP 404 — missing *or not permitted*: never tells them apart,
    │                                      so a party cannot probe for things it cannot see
    ├── Unauthenticated exit 4, HTTP 401 — missing, unknown, revoked or expired token
    ├── Forbidden       exit 3, HTTP 403 — a valid token without the scope this call needs
    └── Throttled       exit 4, HTTP 429 — too many failed sign-ins from one client; wait
"""

from __future__ import annotations


class CommongroundError(Exception):
    exit_code = 1
    http_status = 500
    code = "error"  # the `error` field of JSON answers, the same in the CLI and the API


class BadInput(CommongroundError):
    exit_code = 2
    http_status = 400
    code = "bad_input"


class Conflict(BadInput):
    http_status = 409
    code = "conflict"


class NotFound(CommongroundError):
    exit_code = 4
    http_status = 404
    code = "not_found"


class Unauthenticated(CommongroundError):
    exit_code = 4
    http_status = 401
    code = "unauthenticated"


class Forbidden(CommongroundError):
    exit_code = 3
    http_status = 403
    code = "forbidden"


class Throttled(CommongroundError):
    exit_code = 4
    http_status = 429
    code = "throttled"

    def __init__(self, message: str, retry_after_s: int):
        self.retry_after_s = retry_after_s
        super().__init__(message)


class Refused(CommongroundError):
    """A policy refusal. Each reason names the rule, the construct, and what is allowed."""

    exit_code = 3
    http_status = 403
    code = "refused"

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        super().__init__("; ".join(self.reasons))
