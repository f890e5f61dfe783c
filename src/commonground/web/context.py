"""What every page handler shares: the services' Deps, the templates, the sessions.

`Web.viewer` is the one place a request becomes a party: a live session whose API token
still authenticates. Everything after that goes through the services with that party's
name, so the pages see exactly what the CLI and the API would show the same party.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..domain.errors import Unauthenticated
from ..domain.records import Party, TokenScope
from ..services import parties as party_svc
from ..services.deps import Deps
from .charts import bar_chart
from .sessions import CSRF_FIELD, SESSION_COOKIE, LoginRequired, SessionStore, WebSession, check_csrf

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
T = TypeVar("T")


@dataclass(frozen=True)
class Viewer:
    """The party behind a request, and its session (for the CSRF token of its forms)."""

    party: Party
    session: WebSession

    @property
    def name(self) -> str:
        return self.party.name


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))  # .html templates autoescape
    templates.env.globals["bar_chart"] = bar_chart
    templates.env.globals["csrf_field"] = CSRF_FIELD
    return templates


@dataclass
class Web:
    deps: Deps
    templates: Jinja2Templates
    sessions: SessionStore

    def viewer(self, request: Request) -> Viewer:
        """FastAPI dependency: the logged-in party, or LoginRequired (redirect to the login page)."""
        session_id = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(session_id)
        if session is None:
            raise LoginRequired()
        try:
            party = party_svc.authenticate(self.deps, session.token)
        except Unauthenticated:
            self.sessions.drop(session_id)
            raise LoginRequired() from None
        return Viewer(party, session)

    async def form(self, request: Request, viewer: Viewer, needs: TokenScope = TokenScope.READ) -> FormData:
        """The posted form, once its CSRF token matched the session's (else CsrfFailed) and the
        token behind the session has the scope the action needs (else Forbidden), so the web
        pages never let a read-only token do what the API would refuse it."""
        form = await request.form()
        check_csrf(viewer.session.csrf, form.get(CSRF_FIELD))
        if needs is not TokenScope.READ:
            await self.call(party_svc.authenticate, self.deps, viewer.session.token, needs)
        return form

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) service call off the event loop."""
        return await run_in_threadpool(fn, *args, **kwargs)

    def render(self, request: Request, name: str, viewer: Viewer | None = None, status: int = 200,
               **context: Any) -> HTMLResponse:
        base = request.scope.get("root_path", "")
        return self.templates.TemplateResponse(
            request, name, {"base": base, "viewer": viewer, "csrf": viewer.session.csrf if viewer else "", **context},
            status_code=status)


def text(form: FormData, name: str, default: str = "") -> str:
    """A text field of a posted form (file fields and absent fields give the default)."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default
