"""HTTP routes for individuals (claiming, my data, consents, receipts, requests) and offers.

Thin, like the rest of the API: authenticate, call a service, shape the answer. Who may see
what is decided in the services; anything a caller may not see is a 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Literal, Optional

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..domain.errors import BadInput
from ..domain.records import Party
from ..services import offers as offer_svc
from ..services import subjects as subject_svc
from ..services.deps import Deps

_TEXT = 2000


class InviteRequest(BaseModel):
    subject: str = Field(..., min_length=1, max_length=256)
    ttl_days: int = Field(subject_svc.CLAIM_TTL_DAYS, ge=1, le=365)


class SignupRequest(BaseModel):
    code: str = Field(..., min_length=1, max_length=200)
    name: str = Field(..., min_length=1, max_length=63)


class ClaimRequest(BaseModel):
    code: str = Field(..., min_length=1, max_length=200)


class ConsentChange(BaseModel):
    dataset: str = Field(..., min_length=3, max_length=127)
    purpose: str = Field(..., min_length=1, max_length=200)
    status: Literal["granted", "withdrawn"]


class ErasureRequest(BaseModel):
    controller: str = Field(..., min_length=1, max_length=63)
    reason: str = Field("", max_length=_TEXT)


class CorrectionRequest(BaseModel):
    dataset: str = Field(..., min_length=3, max_length=127)
    column: str = Field(..., min_length=1, max_length=63)
    value: str = Field(..., max_length=_TEXT)
    comment: str = Field("", max_length=_TEXT)


class Answer(BaseModel):
    accept: bool
    message: str = Field(..., min_length=1, max_length=4000)


class OfferRequest(BaseModel):
    sql: str = Field(..., max_length=100_000)
    purpose: str = Field(..., min_length=1, max_length=200)
    title: str = Field(..., min_length=1, max_length=offer_svc.MAX_TITLE)
    needs_consent: list[str] = Field(default_factory=list, max_length=20)


class Decision(BaseModel):
    accept: bool
    release: list[str] = Field(default_factory=list, max_length=100)


def individual_routes(deps: Deps, caller: Callable[..., Party]) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/subjects/invite", status_code=201, tags=["individuals"])
    def invite(body: InviteRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        """A one-time claim code for one of your subject ids (shown once)."""
        code, expires = subject_svc.invite(deps, party.name, body.subject, body.ttl_days)
        return {"code": code, "expires_at": expires.isoformat()}

    @router.post("/claims", status_code=201, tags=["individuals"])
    def signup(body: SignupRequest) -> dict[str, Any]:
        """Sign up with a claim code: a new individual party, its token (shown once) and the link."""
        party, token = subject_svc.register(deps, body.name, body.code)
        return {"party": party.to_dict(), "token": token, "links": subject_svc.links(deps, party.name)}

    @router.post("/me/claims", status_code=201, tags=["individuals"])
    def claim(body: ClaimRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        return subject_svc.claim(deps, party.name, body.code)

    @router.get("/me/links", tags=["individuals"])
    def links(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        return subject_svc.links(deps, party.name)

    @router.get("/me/export", tags=["individuals"])
    def export(party: Party = Depends(caller)) -> dict[str, Any]:
        """Subject access: every row about you, your consents, receipts and requests."""
        return subject_svc.access_export(deps, party.name)

    @router.get("/me/consents", tags=["individuals"])
    def consents(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        return subject_svc.consents(deps, party.name)

    @router.put("/me/consents", tags=["individuals"])
    def set_consent(body: ConsentChange, party: Party = Depends(caller)) -> list[dict[str, Any]]:
        subject_svc.set_consent(deps, party.name, body.dataset, body.purpose, body.status)
        return subject_svc.consents(deps, party.name)

    @router.get("/me/receipts", tags=["individuals"])
    def receipts(before: Optional[dt.datetime] = None, limit: int = Query(100, ge=1, le=1000),
                 party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Every computation and offer that included your data, newest first (page with `before`)."""
        if before is not None and before.tzinfo is None:
            before = before.replace(tzinfo=dt.timezone.utc)
        return subject_svc.receipts(deps, party.name, before, limit)

    @router.post("/me/erasure", status_code=201, tags=["individuals"])
    def erasure(body: ErasureRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        return subject_svc.request_erasure(deps, party.name, body.controller, body.reason)

    @router.post("/me/corrections", status_code=201, tags=["individuals"])
    def correction(body: CorrectionRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        return subject_svc.request_correction(deps, party.name, body.dataset, body.column, body.value, body.comment)

    @router.get("/requests", tags=["individuals"])
    def requests(open_only: bool = False, party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Requests addressed to your organisation, or the ones you made as an individual."""
        if party.kind == "individual":
            return [r for r in subject_svc.my_requests(deps, party.name) if not open_only or r["status"] == "open"]
        return subject_svc.controller_requests(deps, party.name, open_only)

    @router.get("/requests/{request_id}", tags=["individuals"])
    def request(request_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return subject_svc.request(deps, party.name, request_id)

    @router.post("/requests/{request_id}/answer", tags=["individuals"])
    def answer(request_id: str, body: Answer, party: Party = Depends(caller)) -> dict[str, Any]:
        return subject_svc.answer(deps, party.name, request_id, body.accept, body.message)

    @router.post("/offers", status_code=201, tags=["offers"])
    def submit(body: OfferRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        """Compute a per-subject offer in the store under an offer agreement."""
        return offer_svc.submit(deps, party.name, body.purpose, body.sql, body.title, tuple(body.needs_consent))

    @router.get("/offers", tags=["offers"])
    def offers(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """An individual's inbox, or an organisation's offer batches."""
        if party.kind == "individual":
            return offer_svc.inbox(deps, party.name)
        return offer_svc.batches(deps, party.name)

    @router.get("/offers/{offer_id}", tags=["offers"])
    def offer(offer_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return offer_svc.show(deps, party.name, offer_id)

    @router.post("/offers/{offer_id}/decision", tags=["offers"])
    def decide(offer_id: str, body: Decision, party: Party = Depends(caller)) -> dict[str, Any]:
        if body.release and not body.accept:
            raise BadInput("nothing is released with a declined offer")
        return offer_svc.decide(deps, party.name, offer_id, body.accept, tuple(body.release))

    @router.get("/offer-batches/{batch_id}", tags=["offers"])
    def batch(batch_id: str, party: Party = Depends(caller)) -> list[dict[str, Any]]:
        return offer_svc.batch(deps, party.name, batch_id)

    return router
