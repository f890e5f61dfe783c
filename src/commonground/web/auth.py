"""Log in by pasting an API token, log out. The only pages reachable without a session."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ..domain.errors import Unauthenticated
from ..domain.records import PartyKind
from ..services import parties as party_svc
from .context import Viewer, Web, text
from .sessions import (CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE, CsrfFailed, check_csrf, clear_cookie,
                       set_cookie)


def router(web: Web) -> APIRouter:
    r = APIRouter()

    @r.get("/")
    def home(request: Request) -> Response:
        signed_in = web.sessions.get(request.cookies.get(SESSION_COOKIE)) is not None
        return RedirectResponse(f"{request.scope.get('root_path', '')}/{'datasets' if signed_in else 'login'}", 303)

    def login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
        nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = web.render(request, "login.html", status=status, login_csrf=nonce, error=error)
        set_cookie(response, request, LOGIN_CSRF_COOKIE, nonce, max_age=3600)
        return response

    @r.get("/login")
    def login_form(request: Request) -> Response:
        return login_page(request)

    @r.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        try:  # double-submit: the form's token must equal the cookie set with the form
            check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), form.get(CSRF_FIELD))
        except CsrfFailed:
            return login_page(request, "The form expired; please try again.", 403)
        token = text(form, "token")
        try:
            party = await web.call(party_svc.authenticate, web.deps, token)
        except Unauthenticated:
            return login_page(request, "That token is not valid, or it has expired or been revoked.", 401)
        if party.kind != PartyKind.ORGANIZATION.value:
            return login_page(request, "The web pages are for organisations for now; "
                                       "individuals' pages are coming.", 403)
        old = request.cookies.get(SESSION_COOKIE)
        web.sessions.drop(old)  # a fresh id at every login: no session fixation
        session = web.sessions.create(party.name, token)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/datasets", 303)
        set_cookie(response, request, SESSION_COOKIE, session.id)
        clear_cookie(response, request, LOGIN_CSRF_COOKIE)
        return response

    @r.post("/logout")
    async def logout(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        await web.form(request, viewer)
        web.sessions.drop(viewer.session.id)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/login?bye=1", 303)
        clear_cookie(response, request, SESSION_COOKIE)
        return response

    return r
