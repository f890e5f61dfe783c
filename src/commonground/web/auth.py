"""Log in by pasting an API token, sign up with a claim code (individuals), log out. The only
pages reachable without a session."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ..domain.errors import BadInput, Unauthenticated
from ..services import parties as party_svc
from ..services import subjects as subject_svc
from .context import Viewer, Web, text
from .roles import home_of
from .sessions import (CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE, CsrfFailed, LoginRequired, WebSession,
                       check_csrf, clear_cookie, set_cookie)


def router(web: Web) -> APIRouter:
    r = APIRouter()

    @r.get("/")
    def home(request: Request) -> Response:
        try:
            where = home_of(web.viewer(request))
        except LoginRequired:
            where = "/login"
        return RedirectResponse(f"{request.scope.get('root_path', '')}{where}", 303)

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
        session = start_session(request, party.name, token)
        response = RedirectResponse(f"{request.scope.get('root_path', '')}{home_of(Viewer(party, session))}", 303)
        set_cookie(response, request, SESSION_COOKIE, session.id)
        clear_cookie(response, request, LOGIN_CSRF_COOKIE)
        return response

    def start_session(request: Request, party: str, token: str) -> WebSession:
        web.sessions.drop(request.cookies.get(SESSION_COOKIE))  # a fresh id at every login: no session fixation
        return web.sessions.create(party, token)

    def signup_page(request: Request, error: str | None = None, status: int = 200, name: str = "") -> Response:
        nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
        response = web.render(request, "signup.html", status=status, login_csrf=nonce, error=error, chosen=name)
        set_cookie(response, request, LOGIN_CSRF_COOKIE, nonce, max_age=3600)
        return response

    @r.get("/signup")
    def signup_form(request: Request) -> Response:
        return signup_page(request)

    @r.post("/signup")
    async def signup(request: Request) -> Response:
        """A claim code and a chosen name make an individual party, its token and the link
        (`subjects.register`, all or nothing); the token is shown once and the person is logged in."""
        form = await request.form()
        check_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), form.get(CSRF_FIELD))  # else the 403 page
        name = text(form, "name")
        try:
            party, token = await web.call(subject_svc.register, web.deps, name, text(form, "code"))
        except BadInput as e:  # a wrong, expired or spent code, or a taken name: nothing was created
            return signup_page(request, str(e), e.http_status, name)
        session = start_session(request, party.name, token)
        viewer = Viewer(party, session)
        links = await web.call(subject_svc.links, web.deps, party.name)
        response = web.render(request, "signup_done.html", viewer, status=201, token=token, links=links)
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
