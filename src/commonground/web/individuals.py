"""An individual's own pages: my data (the subject access export, and its JSON download), my
consents (a toggle per dataset and purpose), receipts ("why am I seeing this") and claiming
another controller's code.

Everything goes through `services.subjects` with the viewer's own name, so a person only ever
sees what the services hand that person; there is no id in these URLs to probe.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from starlette.responses import RedirectResponse, Response

from ..domain.errors import BadInput, Conflict
from ..services import subjects as subject_svc
from .context import Viewer, Web, text
from .roles import form_of, individuals

ROWS_SHOWN = 100  # rows per dataset on the page; the JSON download has them all
RECEIPTS_PER_PAGE = 50
CONSENT_DONE = {"granted": "Consent given", "withdrawn": "Consent withdrawn"}


def _by_controller(export: dict[str, Any]) -> list[dict[str, Any]]:
    """The export's datasets grouped under the controller (link) that holds them."""
    groups = []
    for link in export["links"]:
        held = [d for d in export["data"] if d["dataset"].partition(".")[0] == link["controller"]]
        groups.append({**link, "datasets": held})
    return groups


def _moment(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadInput("that page of receipts does not exist (bad 'before' time)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def router(web: Web) -> APIRouter:
    r = APIRouter()
    person = individuals(web)

    @r.get("/me")
    def me(request: Request, _viewer: Viewer = Depends(person)) -> Response:
        return RedirectResponse(f"{request.scope.get('root_path', '')}/me/data", 303)

    @r.get("/me/data")
    def data(request: Request, viewer: Viewer = Depends(person)) -> Response:
        export = subject_svc.access_export(web.deps, viewer.name)  # recorded on the ledger, like every export
        return web.render(request, "me_data.html", viewer, export=export, groups=_by_controller(export),
                          rows_shown=ROWS_SHOWN)

    @r.get("/me/data.json")
    def download(viewer: Viewer = Depends(person)) -> Response:
        export = subject_svc.access_export(web.deps, viewer.name)
        body = json.dumps(jsonable_encoder(export), indent=2, ensure_ascii=False)
        stamp = export["exported_at"][:10]
        return Response(body, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="commonground-{viewer.name}-{stamp}.json"'})

    def consents_page(request: Request, viewer: Viewer, error: str | None = None, status: int = 200) -> Response:
        done = request.query_params.get("done", "")
        return web.render(request, "me_consents.html", viewer, status=status, error=error,
                          consents=subject_svc.consents(web.deps, viewer.name),
                          done=CONSENT_DONE.get(done), done_what=request.query_params.get("what", ""))

    @r.get("/me/consents")
    def consents(request: Request, viewer: Viewer = Depends(person)) -> Response:
        return consents_page(request, viewer)

    @r.post("/me/consents")
    async def set_consent(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        dataset, purpose, status = text(form, "dataset"), text(form, "purpose"), text(form, "status")
        try:
            if status not in ("granted", "withdrawn"):
                raise BadInput("choose to grant or to withdraw the consent")
            await web.call(subject_svc.set_consent, web.deps, viewer.name, dataset, purpose, status)
        except BadInput as e:
            return await web.call(consents_page, request, viewer, str(e), e.http_status)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/me/consents?done={status}&what={purpose}", 303)

    @r.get("/me/receipts")
    def receipts(request: Request, before: str = "", viewer: Viewer = Depends(person)) -> Response:
        items = subject_svc.receipts(web.deps, viewer.name, _moment(before), RECEIPTS_PER_PAGE)
        older = items[-1]["at"] if len(items) == RECEIPTS_PER_PAGE else None
        return web.render(request, "me_receipts.html", viewer, receipts=items, older=older, before=before)

    def claim_page(request: Request, viewer: Viewer, error: str | None = None, status: int = 200,
                   claimed: dict[str, Any] | None = None) -> Response:
        return web.render(request, "me_claim.html", viewer, status=status, error=error, claimed=claimed,
                          links=subject_svc.links(web.deps, viewer.name))

    @r.get("/me/claim")
    def claim_form(request: Request, viewer: Viewer = Depends(person)) -> Response:
        return claim_page(request, viewer)

    @r.post("/me/claim")
    async def claim(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        try:
            claimed = await web.call(subject_svc.claim, web.deps, viewer.name, text(form, "code"))
        except (BadInput, Conflict) as e:
            return await web.call(claim_page, request, viewer, str(e), e.http_status)
        return await web.call(claim_page, request, viewer, claimed=claimed)

    return r
