"""Who a page is for: individuals' pages (/me/...) and organisations' pages.

A page of the other kind reads as missing (the same 404 page as anything not yours), so the
two sets of pages never mix. For forms, the CSRF token is checked first (`Web.form`), then
the kind, so a forged form gets the same 403 whatever it targets and nothing is done.
"""

from __future__ import annotations

from typing import Callable

from fastapi import Request
from starlette.datastructures import FormData

from ..domain.errors import NotFound
from ..domain.records import PartyKind, TokenScope
from .context import Viewer, Web

INDIVIDUAL = PartyKind.INDIVIDUAL.value


def is_individual(viewer: Viewer) -> bool:
    return viewer.party.kind == INDIVIDUAL


def home_of(viewer: Viewer) -> str:
    """Where a party lands after logging in (relative to the web app)."""
    return "/me/data" if is_individual(viewer) else "/datasets"


def individuals(web: Web) -> Callable[[Request], Viewer]:
    """FastAPI dependency: the logged-in individual; organisations get the 404 page."""
    def dependency(request: Request) -> Viewer:
        viewer = web.viewer(request)
        if not is_individual(viewer):
            raise NotFound("this page is for individuals")
        return viewer
    return dependency


def organisations(web: Web) -> Callable[[Request], Viewer]:
    """FastAPI dependency: the logged-in organisation; individuals get the 404 page."""
    def dependency(request: Request) -> Viewer:
        viewer = web.viewer(request)
        if is_individual(viewer):
            raise NotFound("this page is for organisations")
        return viewer
    return dependency


async def form_of(web: Web, request: Request, viewer: Viewer, individual: bool,
                  needs: TokenScope = TokenScope.ADMIN) -> FormData:
    """The posted form (CSRF and token scope checked by `Web.form`), then the viewer's kind."""
    form = await web.form(request, viewer, needs)
    if is_individual(viewer) != individual:
        raise NotFound("this page is for " + ("individuals" if individual else "organisations"))
    return form
