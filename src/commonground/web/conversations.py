"""Conversations on the web. A person sees the surveys their companies ask, answers with a tick
per party and purpose that may use the answer (and changes it later), and keeps threads about
their receipts and offers. An organisation creates surveys, sees response counts and the
aggregates of the people who allowed it, and answers the threads addressed to it.

`services.conversations` and `services.threads` decide who sees what; a survey or thread that
is not the viewer's is a NotFound and the 404 page.
"""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from ..domain.conversations import parse_choice
from ..domain.errors import BadInput, NotFound, Refused
from ..domain.records import TokenScope
from ..services import conversations as survey_svc
from ..services import threads as thread_svc
from .context import Viewer, Web, text
from .roles import form_of, individuals, is_individual, organisations

SURVEY_EXAMPLE = """name: delivery
title: Was your last delivery on time?
purposes: [analytics.reporting]
partners: []          # other organisations people may choose to share their answer with
min_group_size: 5     # aggregates count at least this many people
questions:
  - {id: on_time, text: "Was it on time?", type: yes_no}
  - {id: rating, text: "How was the courier?", type: choice, options: [good, fine, bad]}
"""


def _choices(form: FormData) -> list[tuple[str, str]]:
    """The ticked `share` boxes (each PARTY:PURPOSE)."""
    return [parse_choice(str(v)) for v in form.getlist("share")]


def root(request: Request) -> str:
    """Where the web app is mounted (redirects are absolute paths)."""
    return request.scope.get("root_path", "")


def _thread_base(viewer: Viewer) -> str:
    return "/me/threads" if is_individual(viewer) else "/threads"


def router(web: Web) -> APIRouter:
    r = APIRouter()
    person, organisation = individuals(web), organisations(web)

    # -- the person's surveys ---------------------------------------------------------------------

    @r.get("/me/surveys")
    def my_surveys(request: Request, viewer: Viewer = Depends(person)) -> Response:
        return web.render(request, "me_surveys.html", viewer, surveys=survey_svc.list_surveys(web.deps, viewer.name))

    def survey_page(request: Request, viewer: Viewer, survey_id: str, error: str | None = None, status: int = 200,
                    values: dict[str, str] | None = None, ticked: set[str] | None = None) -> Response:
        survey = survey_svc.show_survey(web.deps, viewer.name, survey_id)
        current = {f"{c['party']}:{c['purpose']}" for c in survey.get("sharing", [])}
        return web.render(request, "me_survey.html", viewer, status=status, error=error, survey=survey,
                          values=values or {}, ticked=current if ticked is None else ticked,
                          done=request.query_params.get("done"))

    @r.get("/me/surveys/{survey_id}")
    def my_survey(survey_id: str, request: Request, viewer: Viewer = Depends(person)) -> Response:
        return survey_page(request, viewer, survey_id)

    @r.post("/me/surveys/{survey_id}/answer")
    async def answer(survey_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        values = {k[2:]: text(form, k) for k in form.keys() if k.startswith("q_")}
        ticked = {str(v) for v in form.getlist("share")}
        try:
            await web.call(survey_svc.answer, web.deps, viewer.name, survey_id, values, _choices(form))
        except BadInput as e:
            return await web.call(survey_page, request, viewer, survey_id, str(e), e.http_status, values, ticked)
        return RedirectResponse(f"{root(request)}/me/surveys/{survey_id}?done=answered", 303)

    @r.post("/me/surveys/{survey_id}/sharing")
    async def sharing(survey_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        try:
            await web.call(survey_svc.share, web.deps, viewer.name, survey_id, _choices(form))
        except BadInput as e:
            return await web.call(survey_page, request, viewer, survey_id, str(e), e.http_status)
        return RedirectResponse(f"{root(request)}/me/surveys/{survey_id}?done=shared", 303)

    # -- the organisation's surveys ---------------------------------------------------------------

    def surveys_page(request: Request, viewer: Viewer, error: str | None = None, status: int = 200,
                     document: str = SURVEY_EXAMPLE) -> Response:
        return web.render(request, "surveys.html", viewer, status=status, error=error, document=document,
                          surveys=survey_svc.list_surveys(web.deps, viewer.name))

    @r.get("/surveys")
    def surveys(request: Request, viewer: Viewer = Depends(organisation)) -> Response:
        return surveys_page(request, viewer)

    @r.post("/surveys")
    async def create(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=False)
        document = text(form, "document")
        try:
            try:
                doc = yaml.safe_load(document)
            except yaml.YAMLError:
                raise BadInput("the survey is not valid YAML") from None
            made = await web.call(survey_svc.create_survey, web.deps, viewer.name, doc)
        except BadInput as e:
            return await web.call(surveys_page, request, viewer, str(e), e.http_status, document)
        return RedirectResponse(f"{root(request)}/surveys/{made['id']}", 303)

    def org_survey_page(request: Request, viewer: Viewer, survey_id: str, results: dict[str, Any] | None = None,
                        error: str | None = None, reasons: list[str] | None = None, status: int = 200) -> Response:
        survey = survey_svc.show_survey(web.deps, viewer.name, survey_id)
        return web.render(request, "survey.html", viewer, status=status, survey=survey, results=results,
                          error=error, reasons=reasons or [])

    @r.get("/surveys/{survey_id}")
    def org_survey(survey_id: str, request: Request, viewer: Viewer = Depends(organisation)) -> Response:
        return org_survey_page(request, viewer, survey_id)

    @r.post("/surveys/{survey_id}/results")
    async def results(survey_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=False, needs=TokenScope.QUERY)
        try:
            found = await web.call(survey_svc.results, web.deps, viewer.name, survey_id, text(form, "purpose"))
        except Refused as e:
            return await web.call(org_survey_page, request, viewer, survey_id, None, None, e.reasons, 403)
        except BadInput as e:
            return await web.call(org_survey_page, request, viewer, survey_id, None, str(e), None, e.http_status)
        return await web.call(org_survey_page, request, viewer, survey_id, found)

    # -- threads, for both sides ------------------------------------------------------------------

    def threads_page(request: Request, viewer: Viewer) -> Response:
        return web.render(request, "threads.html", viewer, threads=thread_svc.list_threads(web.deps, viewer.name),
                          thread_base=_thread_base(viewer))

    @r.get("/me/threads")
    def my_threads(request: Request, viewer: Viewer = Depends(person)) -> Response:
        return threads_page(request, viewer)

    @r.get("/threads")
    def org_threads(request: Request, viewer: Viewer = Depends(organisation)) -> Response:
        return threads_page(request, viewer)

    def new_thread_page(request: Request, viewer: Viewer, about: str, ref: str, error: str | None = None,
                        status: int = 200, message: str = "") -> Response:
        if about not in ("receipt", "offer") or not ref:
            raise NotFound("no such receipt or offer")
        return web.render(request, "me_thread_new.html", viewer, status=status, about=about, ref=ref, error=error,
                          message=message)

    @r.get("/me/threads/new")
    def new_thread(request: Request, about: str = "", ref: str = "", viewer: Viewer = Depends(person)) -> Response:
        return new_thread_page(request, viewer, about, ref)

    @r.post("/me/threads")
    async def open_thread(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        about, ref, message = text(form, "about"), text(form, "ref"), text(form, "message")
        try:
            made = await web.call(thread_svc.open_thread, web.deps, viewer.name, about, ref, text(form, "kind"), message)
        except BadInput as e:
            return await web.call(new_thread_page, request, viewer, about, ref, str(e), e.http_status, message)
        return RedirectResponse(f"{root(request)}/me/threads/{made['id']}", 303)

    def thread_page(request: Request, viewer: Viewer, thread_id: str, error: str | None = None,
                    status: int = 200) -> Response:
        thread = thread_svc.show_thread(web.deps, viewer.name, thread_id)
        return web.render(request, "thread.html", viewer, status=status, thread=thread, error=error,
                          thread_base=_thread_base(viewer))

    @r.get("/me/threads/{thread_id}")
    def my_thread(thread_id: str, request: Request, viewer: Viewer = Depends(person)) -> Response:
        return thread_page(request, viewer, thread_id)

    @r.get("/threads/{thread_id}")
    def org_thread(thread_id: str, request: Request, viewer: Viewer = Depends(organisation)) -> Response:
        return thread_page(request, viewer, thread_id)

    async def write(request: Request, viewer: Viewer, thread_id: str, individual: bool) -> Response:
        form = await form_of(web, request, viewer, individual=individual)
        try:
            if text(form, "action") == "close":
                await web.call(thread_svc.close, web.deps, viewer.name, thread_id)
            else:
                await web.call(thread_svc.reply, web.deps, viewer.name, thread_id, text(form, "message"))
        except BadInput as e:
            return await web.call(thread_page, request, viewer, thread_id, str(e), e.http_status)
        return RedirectResponse(f"{root(request)}{_thread_base(viewer)}/{thread_id}", 303)

    @r.post("/me/threads/{thread_id}")
    async def my_write(thread_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return await write(request, viewer, thread_id, individual=True)

    @r.post("/threads/{thread_id}")
    async def org_write(thread_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return await write(request, viewer, thread_id, individual=False)

    return r
