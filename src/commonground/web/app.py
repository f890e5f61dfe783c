"""The web app for organisations and individuals: server-rendered pages on the same process as the API.

`create_web(deps)` builds a sub-application with its own error pages and security headers;
`mount_web(app, deps)` mounts it under /web of the API app and sends / there. The web app
imports services, never the API: the two edges are siblings, so neither can bypass the other.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response

from ..domain.errors import CommongroundError, NotFound, Refused, Unauthenticated
from ..services.deps import Deps
from . import agreements, auth, conversations, datasets, individuals, market, offers, queries, reports, requests
from .context import STATIC, Web, make_templates
from .roles import organisations
from .security import add_security_headers
from .sessions import CsrfFailed, LoginRequired, SessionStore

WEB_PATH = "/web"


def create_web(deps: Deps, sessions: SessionStore | None = None) -> FastAPI:
    web = Web(deps, make_templates(), sessions or SessionStore())
    app = FastAPI(title="Commonground web", docs_url=None, redoc_url=None, openapi_url=None)
    app.middleware("http")(add_security_headers)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for module in (auth, reports, individuals, offers, requests, conversations):  # each page checks whom it is for
        app.include_router(module.router(web))
    for module in (datasets, agreements, queries, market):  # organisations' pages: an individual gets the 404 page
        app.include_router(module.router(web), dependencies=[Depends(organisations(web))])

    def error_page(request: Request, status: int, title: str, message: str = "",
                   reasons: list[str] | None = None) -> Response:
        viewer = None
        try:
            viewer = web.viewer(request)
        except (LoginRequired, CommongroundError):
            pass
        return web.render(request, "error.html", viewer, status=status, title=title, message=message,
                          reasons=reasons or [])

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, _exc: LoginRequired) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, _exc: CsrfFailed) -> Response:
        return error_page(request, 403, "Form expired",
                          "This form was not sent from a page of this session. Nothing was changed; go back, "
                          "reload the page and try again.")

    @app.exception_handler(CommongroundError)
    async def _error(request: Request, exc: CommongroundError) -> Response:
        if isinstance(exc, Unauthenticated):
            return RedirectResponse(f"{request.scope.get('root_path', '')}/login", 303)
        if isinstance(exc, NotFound):  # missing and not-permitted look the same
            return error_page(request, 404, "Not found", "There is nothing here that you may see.")
        if isinstance(exc, Refused):
            return error_page(request, 403, "Refused", reasons=exc.reasons)
        return error_page(request, exc.http_status, "That did not work", str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_page(request, 404, "Not found", "There is nothing here that you may see.")
        return error_page(request, exc.status_code, "That did not work", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _exc: RequestValidationError) -> Response:
        return error_page(request, 400, "That did not work", "The request was not understood.")

    return app


def mount_web(app: FastAPI, deps: Deps, path: str = WEB_PATH) -> FastAPI:
    """Serve the web app under `path` of `app`, and send browsers from / to it."""
    app.mount(path, create_web(deps))

    def _home() -> RedirectResponse:
        return RedirectResponse(f"{path}/", 307)

    app.add_api_route("/", _home, methods=["GET", "HEAD"], include_in_schema=False)
    return app
