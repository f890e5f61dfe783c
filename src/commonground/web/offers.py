"""An individual's offers: the inbox, one offer with everything behind it (terms, who from, the
purpose, the computation, the fields it used and the person's own values: "why am I seeing
this"), and the decision: accept, releasing only what the person ticks, or decline.

`services.offers.show` hands the person their own offer and anyone else a NotFound, so another
person's offer id is the same 404 page as a made-up one.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from ..domain.errors import BadInput, NotFound
from ..services import offers as offer_svc
from .context import Viewer, Web, text
from .roles import form_of, individuals

DONE = {"accepted": "You accepted this offer.", "declined": "You declined this offer."}


def _value_columns(values: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in values:
        columns += [c for c in row if c not in columns]
    return columns


def router(web: Web) -> APIRouter:
    r = APIRouter()
    person = individuals(web)

    @r.get("/me/offers")
    def inbox(request: Request, viewer: Viewer = Depends(person)) -> Response:
        items = sorted(offer_svc.inbox(web.deps, viewer.name), key=lambda o: (o["status"] != "pending", o["created_at"]))
        return web.render(request, "me_offers.html", viewer, offers=items)

    def offer_page(request: Request, viewer: Viewer, offer_id: str, error: str | None = None,
                   status: int = 200) -> Response:
        offer = offer_svc.show(web.deps, viewer.name, offer_id)
        if "your_values" not in offer:  # the recipient's view: not a page for a person
            raise NotFound(f"no offer {offer_id}")
        return web.render(request, "me_offer.html", viewer, status=status, o=offer, error=error,
                          done=DONE.get(request.query_params.get("done", "")),
                          value_columns=_value_columns(offer["your_values"]))

    @r.get("/me/offers/{offer_id}")
    def offer(offer_id: str, request: Request, viewer: Viewer = Depends(person)) -> Response:
        return offer_page(request, viewer, offer_id)

    @r.post("/me/offers/{offer_id}/decision")
    async def decide(offer_id: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await form_of(web, request, viewer, individual=True)
        decision = text(form, "decision")
        release = tuple(v for v in form.getlist("release") if isinstance(v, str))
        try:
            if decision not in ("accept", "decline"):
                raise BadInput("choose to accept or to decline the offer")
            await web.call(offer_svc.decide, web.deps, viewer.name, offer_id, decision == "accept", release)
        except BadInput as e:
            return await web.call(offer_page, request, viewer, offer_id, str(e), e.http_status)
        verb = "accepted" if decision == "accept" else "declined"
        return RedirectResponse(f"{request.scope.get('root_path', '')}/me/offers/{offer_id}?done={verb}", 303)

    return r
