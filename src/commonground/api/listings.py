"""HTTP routes for rights pre-vetting, data product listings and notices. Thin: each calls the
service the CLI and the web pages call; authorisation lives there."""

from __future__ import annotations

from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ..domain.errors import BadInput
from ..domain.records import Party
from ..services import listings as listing_svc
from ..services import notices as notice_svc
from ..services import rights as rights_svc
from ..services.agreements import load_yaml
from ..services.deps import Deps


class RightsDeclaration(BaseModel):
    legal_basis: str = Field(..., max_length=40, description="a GDPR Art. 6 basis, e.g. contract")
    purposes: list[str] = Field(..., min_length=1, max_length=200)
    columns: dict[str, dict[str, Any]] = Field(default_factory=dict, description="column: {purposes: [...]}")
    attested_by: Optional[str] = Field(None, max_length=200, description="who attests (default: the caller)")


class ListingDocument(BaseModel):
    document: Optional[dict[str, Any]] = None
    yaml: Optional[str] = Field(None, max_length=200_000)


class ListingRequestBody(BaseModel):
    purpose: str = Field(..., min_length=1, max_length=200)


class Decision(BaseModel):
    approve: bool
    note: str = Field("", max_length=2000)


def listing_routes(deps: Deps, caller: Callable[..., Party]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["data products"])

    @router.put("/datasets/{owner}/{name}/rights")
    def declare(owner: str, name: str, body: RightsDeclaration, party: Party = Depends(caller)) -> dict[str, Any]:
        """Declare a new version of your dataset's rights; agreements it no longer covers are suspended."""
        doc = body.model_dump(exclude={"attested_by"}, exclude_defaults=True)
        return rights_svc.declare(deps, party.name, f"{owner}.{name}", doc, body.attested_by)

    @router.get("/datasets/{owner}/{name}/rights")
    def rights(owner: str, name: str, party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Every version of a dataset's declared rights (for whoever may see the dataset)."""
        return rights_svc.history(deps, party.name, f"{owner}.{name}")

    @router.get("/notices")
    def notices(limit: int = Query(100, ge=1, le=500), party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """What you have been told: suspended agreements, requests to review, decisions."""
        return notice_svc.list_notices(deps, party.name, limit)

    @router.post("/listings", status_code=201)
    def publish(body: ListingDocument, party: Party = Depends(caller)) -> dict[str, Any]:
        """Publish a data product listing (its datasets need declared rights covering it)."""
        if body.document is not None:
            return listing_svc.publish(deps, party.name, body.document)
        if body.yaml is not None:
            return listing_svc.publish(deps, party.name, load_yaml(body.yaml, "listing"))
        raise BadInput("give document or yaml")

    @router.get("/listings")
    def catalogue(q: Optional[str] = Query(None, max_length=100), limit: int = Query(50, ge=1, le=200),
                  offset: int = Query(0, ge=0), party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """The catalogue: published listings you may see, with how many partners use each."""
        return listing_svc.catalogue(deps, party.name, q, limit, offset)

    @router.get("/listings/mine")
    def mine(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Your own listings, published or withdrawn."""
        return listing_svc.listings_of(deps, party.name)

    @router.get("/listings/{listing_id}")
    def listing(listing_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return listing_svc.show(deps, party.name, listing_id)

    @router.post("/listings/{listing_id}/withdraw")
    def withdraw(listing_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return listing_svc.withdraw(deps, party.name, listing_id)

    @router.post("/listings/{listing_id}/requests", status_code=201)
    def request(listing_id: str, body: ListingRequestBody, party: Party = Depends(caller)) -> dict[str, Any]:
        """Request a listing for a purpose: active at once if the listing grants it, else reviewed."""
        return listing_svc.request(deps, party.name, listing_id, body.purpose)

    @router.get("/listing-requests")
    def requests(party: Party = Depends(caller)) -> dict[str, list[dict[str, Any]]]:
        """Your requests, and those made on your listings (`to_review`: waiting for you)."""
        return listing_svc.requests(deps, party.name)

    @router.post("/listing-requests/{request_id}/decision")
    def decide(request_id: str, body: Decision, party: Party = Depends(caller)) -> dict[str, Any]:
        return listing_svc.decide(deps, party.name, request_id, body.approve, body.note)

    return router
