"""Corrections and erasure. The person flags a value as wrong and sees the answers, or asks a
controller to erase their rows (with a confirm step); the organisation lists the requests
addressed to it and answers corrections.

`services.subjects` decides who sees what: a person sees only their own requests, an
organisation only those addressed to it; anything else is a NotFound and the 404 page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ..domain.errors import BadInput, NotFound
from ..services import subjects as subject_svc
from .context import Viewer, Web, text
from .roles import form_of, individuals, organisations

PERSON_DONE = {"corrected": "Your correction request was sent. The organisation will answer it here.",
               "erased": "Your data was erased. The request below lists the new versions made without your rows."}


def _newest_first(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(requests, key=lambda r: r["created_at"], reverse=True)


def router(web: Web) -> APIRouter:
    r = APIRouter()
    person, organisation = individuals(web), organisations(web)

    # -- the person's side ----------------------------------------------------------------------

    def person_page(request: Request, viewer: Viewer, error: str | None = None, status: int = 200,
                    values: dict[str, str] | None = None) -> Response:
        datasets = subject_svc.my_datasets(web.deps, viewer.name)
        shown = values or {"dataset": request.query_params.get("dataset", ""),
                           "column": request.query_params.get("column", "")}
        return web.render(request, "me_requests.html", viewer, status=status, error=error, values=shown,
                          datasets=datasets, columns=sorted({c for d in datasets for c in d["columns"]}),
                          requests=_newest_first(subject_svc.my_requests(web.deps, viewer.name)),
                          controllers=sorted({link["controller"] for link in subject_svc.links(web.deps, viewer.name)}),
                          done=PERSON_DONE.get(request.query_params.get("done", "")))

    @r.get("/me/requests")
    def my_requests(request: Request, viewer: Viewer = Depends(person)) -> Response:
        return person_page(request, viewer)

    @r.post("/me/corrections")
    async def correct(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        values = {k: text(form, k) for k in ("dataset", "column", "value", "comment")}
        try:
            if not values["dataset"] or not values["column"]:
                raise BadInput("choose the dataset and the column holding the wrong value")
            await web.call(subject_svc.request_correction, web.deps, viewer.name, values["dataset"], values["column"],
                           values["value"], values["comment"])
        except (BadInput, NotFound) as e:  # a dataset not about you is shown in the form, like a typo
            return await web.call(person_page, request, viewer, str(e), e.http_status, values)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/me/requests?done=corrected", 303)

    @r.get("/me/erasure")
    def erasure_confirm(request: Request, controller: str = "", viewer: Viewer = Depends(person)) -> Response:
        if controller not in {link["controller"] for link in subject_svc.links(web.deps, viewer.name)}:
            raise NotFound(f"{controller} holds no data linked to you")
        held = [d for d in subject_svc.my_datasets(web.deps, viewer.name) if d["controller"] == controller]
        return web.render(request, "me_erasure.html", viewer, controller=controller, datasets=held, error=None)

    @r.post("/me/erasure")
    async def erase(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        controller = text(form, "controller")
        if text(form, "confirm") != "yes":
            held = await web.call(subject_svc.my_datasets, web.deps, viewer.name)
            if controller not in {link["controller"] for link in await web.call(subject_svc.links, web.deps, viewer.name)}:
                raise NotFound(f"{controller} holds no data linked to you")
            return web.render(request, "me_erasure.html", viewer, status=400, controller=controller,
                              datasets=[d for d in held if d["controller"] == controller],
                              error="Tick the box to confirm that you want your data erased.")
        await web.call(subject_svc.request_erasure, web.deps, viewer.name, controller, text(form, "reason"))
        return RedirectResponse(f"{request.scope.get('root_path', '')}/me/requests?done=erased", 303)

    # -- the organisation's side -------------------------------------------------------------------

    def org_page(request: Request, viewer: Viewer, error: str | None = None, status: int = 200,
                 failed: str = "") -> Response:
        found = subject_svc.controller_requests(web.deps, viewer.name)
        found.sort(key=lambda q: (q["status"] != "open", q["created_at"]))
        done = "Your answer was sent." if request.query_params.get("done") == "answered" else None
        in_form = any(q["id"] == failed and q["status"] == "open" for q in found)  # else shown above the list
        return web.render(request, "requests.html", viewer, status=status, requests=found, error=error,
                          failed=failed if in_form else "", done=done)

    @r.get("/requests")
    def requests(request: Request, viewer: Viewer = Depends(organisation)) -> Response:
        return org_page(request, viewer)

    @r.post("/requests/{request_id}/answer")
    async def answer(request_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=False)
        decision = text(form, "decision")
        try:
            if decision not in ("accept", "reject"):
                raise BadInput("choose to accept or to reject the request")
            await web.call(subject_svc.answer, web.deps, viewer.name, request_id, decision == "accept",
                           text(form, "message"))
        except BadInput as e:
            return await web.call(org_page, request, viewer, str(e), e.http_status, request_id)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/requests?done=answered#r-{request_id}", 303)

    return r
