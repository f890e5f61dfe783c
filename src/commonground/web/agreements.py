"""Agreement pages: list, builder (from scratch or from a template), review, accept, revoke.

Every action calls the service the CLI and API call. An agreement the party is not named in
is NotFound in `services.agreements` and a 404 page here; a state clash (accepting twice,
revoking a revoked one) is a Conflict shown on the agreement's page.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ..domain.errors import BadInput, NotFound
from ..domain.records import PartyKind, TokenScope
from ..services import agreement_templates as template_svc
from ..services import agreements as agreement_svc
from ..services import datasets as dataset_svc
from ..services import parties as party_svc
from ..services import vocabulary as vocabulary_svc
from .builder import TRANSFORMS, AgreementForm, build_document, default_row, posted_row
from .context import Viewer, Web, text

DONE = {"proposed": "Agreement proposed. The recipients see it under Agreements and can accept it.",
        "accepted": "You accepted this agreement.", "revoked": "Agreement revoked."}


def _partners(web: Web, me: str) -> list[str]:
    return [p.name for p in party_svc.list_parties(web.deps)
            if p.name != me and p.kind == PartyKind.ORGANIZATION.value]


def _purposes(web: Web) -> list[str]:
    return [e["name"] for e in vocabulary_svc.entries(web.deps, "purpose")]


def _own_columns(web: Web, me: str, dataset: str) -> list[dict[str, Any]]:
    """The columns of one of the party's own datasets; anything else is not found."""
    owner, _, _ = dataset.partition(".")
    if owner != me:
        raise NotFound(f"no dataset {dataset} of yours")
    version, _ = dataset_svc.show_dataset(web.deps, me, dataset)
    return dataset_svc.dataset_summary(version)["columns"]


def router(web: Web) -> APIRouter:
    r = APIRouter()

    def builder_page(request: Request, viewer: Viewer, top: AgreementForm, rows: list, error: str | None = None,
                     status: int = 200) -> Response:
        return web.render(request, "agreement_builder.html", viewer, status=status, top=top, rows=rows,
                          error=error, transforms=TRANSFORMS, partners=_partners(web, viewer.name),
                          purposes=_purposes(web))

    def template_page(request: Request, viewer: Viewer, template: dict[str, Any], params: dict[str, str],
                      error: str | None = None, status: int = 200) -> Response:
        return web.render(request, "agreement_template.html", viewer, status=status, template=template,
                          params=params, error=error)

    @r.get("/agreements")
    def agreements(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        now = web.deps.now()
        states = agreement_svc.list_agreements(web.deps, viewer.name)
        rows = [agreement_svc.agreement_summary(s, now) for s in states]
        for row in rows:
            row["awaiting_you"] = row["status"] == "proposed" and viewer.name not in row["accepted_by"]
        rows.sort(key=lambda a: (not a["awaiting_you"], a["status"] != "active", a["name"], -a["version"]))
        return web.render(request, "agreements.html", viewer, agreements=rows)

    @r.get("/agreements/new")
    def new(request: Request, dataset: str = "", template: str = "", viewer: Viewer = Depends(web.viewer)) -> Response:
        if template:
            found = template_svc.describe_template(web.deps, template)
            return template_page(request, viewer, found, {p: "" for p in found["parameters"]})
        if dataset:
            columns = _own_columns(web, viewer.name, dataset)
            top = AgreementForm.blank(dataset, web.deps.now().date())
            return builder_page(request, viewer, top, [default_row(c) for c in columns])
        own = [v.key for v in dataset_svc.list_datasets(web.deps, viewer.name) if v.owner == viewer.name]
        return web.render(request, "agreement_new.html", viewer, datasets=sorted(own),
                          templates=agreement_svc.list_templates(web.deps))

    @r.post("/agreements/new")
    async def propose(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.ADMIN)
        top = AgreementForm.posted(form)
        columns = await web.call(_own_columns, web, viewer.name, top.dataset)
        rows = [posted_row(c, form) for c in columns]
        try:
            doc = build_document(viewer.name, top, rows)
            state = await web.call(agreement_svc.propose, web.deps, viewer.name, doc)
        except BadInput as e:
            return builder_page(request, viewer, top, rows, str(e), e.http_status)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/agreements/{state.id}?done=proposed", 303)

    @r.post("/agreements/from-template")
    async def propose_from_template(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.ADMIN)
        found = await web.call(template_svc.describe_template, web.deps, text(form, "template"))
        params = {p: text(form, f"param.{p}") for p in found["parameters"]}
        try:
            state = await web.call(agreement_svc.propose_from_template, web.deps, viewer.name, found["name"], params)
        except BadInput as e:
            return template_page(request, viewer, found, params, str(e), e.http_status)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/agreements/{state.id}?done=proposed", 303)

    def detail_page(request: Request, viewer: Viewer, agreement_id: str, error: str | None = None,
                    status: int = 200) -> Response:
        state = agreement_svc.show(web.deps, viewer.name, agreement_id)
        summary = agreement_svc.agreement_summary(state, web.deps.now())
        done = DONE.get(request.query_params.get("done", ""))
        return web.render(request, "agreement.html", viewer, status=status, a=summary, error=error, done=done,
                          ungeneralised=agreement_svc.ungeneralised(web.deps, state),
                          can_accept=summary["status"] == "proposed" and viewer.name not in summary["accepted_by"],
                          can_revoke=summary["status"] in ("active", "proposed"))

    @r.get("/agreements/{agreement_id}")
    def agreement(agreement_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return detail_page(request, viewer, agreement_id)

    async def act(request: Request, viewer: Viewer, agreement_id: str, verb: str) -> Response:
        await web.form(request, viewer, TokenScope.ADMIN)
        action = agreement_svc.accept if verb == "accepted" else agreement_svc.revoke
        try:
            await web.call(action, web.deps, viewer.name, agreement_id)
        except BadInput as e:
            return await web.call(detail_page, request, viewer, agreement_id, str(e), e.http_status)
        return RedirectResponse(f"{request.scope.get('root_path', '')}/agreements/{agreement_id}?done={verb}", 303)

    @r.post("/agreements/{agreement_id}/accept")
    async def accept(agreement_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return await act(request, viewer, agreement_id, "accepted")

    @r.post("/agreements/{agreement_id}/revoke")
    async def revoke(agreement_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return await act(request, viewer, agreement_id, "revoked")

    return r
