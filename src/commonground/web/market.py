"""Data product and rights pages for organisations: a dataset's rights (and the owner's form to
declare a new version), the catalogue, a listing's page with its request form, the owner's
listings and review queue, and the party's notices.

Every action calls the service the CLI and API call; a listing or dataset the party may not
see is NotFound there and the 404 page here; a refusal (a purpose outside the rights) is the
refusal page with its reasons.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ..domain.errors import BadInput
from ..domain.records import TokenScope
from ..domain.rights import LegalBasis
from ..services import listings as listing_svc
from ..services import notices as notice_svc
from ..services import rights as rights_svc
from ..services import vocabulary as vocabulary_svc
from ..services.agreements import load_yaml
from .context import Viewer, Web, text

DONE = {"active": "Granted: your agreement is active now. Query it with the purpose you asked for.",
        "pending": "Requested: the owner reviews this purpose and you will get a notice with the answer.",
        "withdrawn": "Listing withdrawn: it has left the catalogue; agreements made from it stand.",
        "published": "Listing published.", "decided": "Decision recorded; the requester has been told.",
        "declared": "Rights declared."}


def router(web: Web) -> APIRouter:
    r = APIRouter()

    def done_of(request: Request) -> str | None:
        return DONE.get(request.query_params.get("done", ""))

    def go(request: Request, path: str) -> RedirectResponse:
        return RedirectResponse(f"{request.scope.get('root_path', '')}{path}", 303)

    def rights_page(request: Request, viewer: Viewer, owner: str, name: str, error: str | None = None,
                    status: int = 200, suspended: list | None = None, done: str | None = None) -> Response:
        versions = rights_svc.history(web.deps, viewer.name, f"{owner}.{name}")
        return web.render(request, "dataset_rights.html", viewer, status=status, dataset=f"{owner}.{name}",
                          owner=owner, dataset_name=name, versions=list(reversed(versions)), own=owner == viewer.name,
                          bases=[b.value for b in LegalBasis], error=error, done=done or done_of(request),
                          suspended=suspended or [])

    @r.get("/datasets/{owner}/{name}/rights")
    def rights(owner: str, name: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return rights_page(request, viewer, owner, name)

    @r.post("/datasets/{owner}/{name}/rights")
    async def declare(owner: str, name: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.ADMIN)
        doc = {"legal_basis": text(form, "legal_basis"),
               "purposes": [p.strip() for p in text(form, "purposes").split(",") if p.strip()]}
        never = [c.strip() for c in text(form, "never_shared").split(",") if c.strip()]
        if never:
            doc["columns"] = {c: {"purposes": []} for c in never}
        try:
            made = await web.call(rights_svc.declare, web.deps, viewer.name, f"{owner}.{name}", doc,
                                  text(form, "attested_by") or None)
        except BadInput as e:
            return await web.call(rights_page, request, viewer, owner, name, str(e), e.http_status)
        return await web.call(rights_page, request, viewer, owner, name, None, 200, made["suspended"], DONE["declared"])

    @r.get("/catalogue")
    def catalogue(request: Request, q: str = "", viewer: Viewer = Depends(web.viewer)) -> Response:
        found = listing_svc.catalogue(web.deps, viewer.name, q[:100] or None, 200)
        return web.render(request, "catalogue.html", viewer, listings=found, q=q[:100])

    @r.get("/listings/mine")
    def mine(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return web.render(request, "listings_mine.html", viewer, listings=listing_svc.listings_of(web.deps, viewer.name),
                          requests=listing_svc.requests(web.deps, viewer.name), done=done_of(request), error=None,
                          document="")

    @r.post("/listings/new")
    async def publish(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.ADMIN)
        document = text(form, "document")
        try:
            made = await web.call(listing_svc.publish, web.deps, viewer.name, load_yaml(document, "listing"))
        except BadInput as e:
            return web.render(request, "listings_mine.html", viewer, status=e.http_status,
                              listings=listing_svc.listings_of(web.deps, viewer.name),
                              requests=listing_svc.requests(web.deps, viewer.name), done=None, error=str(e),
                              document=document)
        return go(request, f"/listings/{made['id']}?done=published")

    def listing_page(request: Request, viewer: Viewer, listing_id: str, error: str | None = None,
                     status: int = 200) -> Response:
        found = listing_svc.show(web.deps, viewer.name, listing_id)
        purposes = [e["name"] for e in vocabulary_svc.entries(web.deps, "purpose")]
        return web.render(request, "listing.html", viewer, status=status, listing=found, own=found["owner"] == viewer.name,
                          purposes=purposes, done=done_of(request), error=error)

    @r.get("/listings/{listing_id}")
    def listing(listing_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return listing_page(request, viewer, listing_id)

    @r.post("/listings/{listing_id}/request")
    async def request_listing(listing_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.ADMIN)
        try:
            made = await web.call(listing_svc.request, web.deps, viewer.name, listing_id, text(form, "purpose"))
        except BadInput as e:
            return await web.call(listing_page, request, viewer, listing_id, str(e), e.http_status)
        return go(request, f"/listings/{listing_id}?done={made['status']}")

    @r.post("/listings/{listing_id}/withdraw")
    async def withdraw(listing_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        await web.form(request, viewer, TokenScope.ADMIN)
        await web.call(listing_svc.withdraw, web.deps, viewer.name, listing_id)
        return go(request, f"/listings/{listing_id}?done=withdrawn")

    @r.post("/listing-requests/{request_id}/decision")
    async def decide(request_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.ADMIN)
        await web.call(listing_svc.decide, web.deps, viewer.name, request_id, text(form, "decision") == "approve",
                       text(form, "note"))
        return go(request, "/listings/mine?done=decided")

    @r.get("/notices")
    def notices(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return web.render(request, "notices.html", viewer, notices=notice_svc.list_notices(web.deps, viewer.name))

    return r
