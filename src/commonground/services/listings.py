"""Data products: publish a listing, browse the catalogue, request it, review requests.

A request for a purpose the listing grants makes an active agreement at once; any other purpose
waits for the owner's review. Either way the agreement is checked exactly as a proposal is
(catalog, vocabulary, the datasets' declared rights, as they stand at that moment), so a
listing can never grant what its owner may not share.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.agreements import AgreementStatus, AgreementTerms
from ..domain.errors import BadInput, Conflict, NotFound, Refused
from ..domain.listings import ListingTerms, RequestStatus, parse_listing
from .agreements import check_terms, insert_agreement, terms_digest
from .answers import publish_pending
from .deps import Deps
from .notices import notify
from .parties import require_party

MAX_PAGE = 200


def publish(deps: Deps, actor: str, doc: Any) -> dict[str, Any]:
    """Publish a listing; its datasets must have declared rights that cover its terms."""
    listing = parse_listing(doc, actor)
    now = deps.now()
    if listing.terms.valid_until <= now:
        raise BadInput(f"listing: valid_until {listing.terms.valid_until.date()} is in the past")
    publish_pending(deps)  # terms are checked against the datasets as a reader would see them
    with deps.store.transaction() as conn:
        owner = require_party(deps, conn, actor)
        if deps.store.listing_by_name(conn, owner.id, listing.name):
            raise Conflict(f"you already have a listing named {listing.name!r}")
        for party in listing.visibility or ():
            require_party(deps, conn, party)
        datasets = [g.dataset for g in listing.terms.datasets]
        declared = deps.store.current_rights(conn, datasets)
        undeclared = [d for d in datasets if d not in declared]
        if undeclared:
            raise Refused([f"rights: {d} has no declared rights; a listing offers data only within rights its owner "
                           "has declared (`commonground rights declare`)" for d in undeclared])
        vetted = check_terms(deps, conn, listing.terms)
        listing_id = deps.new_id()
        deps.store.insert_listing(conn, listing_id, owner.id, listing, _stored(doc), now)
        deps.store.append_entry(conn, {"event": "listing.published", "listing": listing_id, "name": listing.name,
                                       "party": actor, "terms_sha256": terms_digest(listing.to_dict()),
                                       "visibility": "all" if listing.visibility is None else list(listing.visibility),
                                       "rights": vetted, "at": now})
    return _summary({"id": listing_id, "terms": listing, "status": "published", "created_at": now}, actor, now)


def _stored(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as given, made JSON-safe (YAML dates become ISO strings)."""
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in doc.items()}


def withdraw(deps: Deps, actor: str, listing_id: str) -> dict[str, Any]:
    """Take a listing out of the catalogue. Agreements already made from it stand on their own."""
    with deps.store.transaction() as conn:
        found = _owned(deps, conn, actor, listing_id)
        if found["status"] != "published":
            raise Conflict(f"listing {listing_id} is already {found['status']}")
        deps.store.set_listing_status(conn, listing_id, "withdrawn")
        deps.store.append_entry(conn, {"event": "listing.withdrawn", "listing": listing_id, "party": actor,
                                       "at": deps.now()})
    return _summary({**found, "status": "withdrawn"}, actor, deps.now())


def catalogue(deps: Deps, actor: str, search: str | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    """Published, unexpired listings the actor may see, a page at a time, with their usage counts."""
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise BadInput(f"limit must be 1..{MAX_PAGE} and offset >= 0")
    with deps.store.read() as conn:
        require_party(deps, conn, actor)
        found = deps.store.catalogue(conn, actor, search or None, limit, offset, deps.now())
        usage = deps.store.listing_usage(conn, [f["id"] for f in found])
    return [_summary(f, actor, deps.now(), usage[f["id"]]) for f in found]


def show(deps: Deps, actor: str, listing_id: str) -> dict[str, Any]:
    """One listing as its page shows it: terms, usage, each dataset's legal basis."""
    with deps.store.read() as conn:
        require_party(deps, conn, actor)
        found = _visible(deps, conn, actor, listing_id)
        usage = deps.store.listing_usage(conn, [listing_id])[listing_id]
        listing: ListingTerms = found["terms"]
        rights = deps.store.current_rights(conn, [g.dataset for g in listing.terms.datasets])
    out = _summary(found, actor, deps.now(), usage)
    out["rights"] = {d: {"legal_basis": r.legal_basis.value, "version": r.version, "attested_by": r.attested_by,
                         "attested_at": r.attested_at.isoformat()} for d, r in rights.items()}
    return out


def request(deps: Deps, actor: str, listing_id: str, purpose: str) -> dict[str, Any]:
    """Ask for a listing for one purpose: an active agreement at once when the listing grants the
    purpose, else a request the owner reviews. Purposes outside the rights are refused here."""
    now = deps.now()
    with deps.store.transaction() as conn:
        require_party(deps, conn, actor)
        found = _visible(deps, conn, actor, listing_id)
        listing: ListingTerms = found["terms"]
        if found["status"] != "published":
            raise NotFound(f"no listing {listing_id}")
        terms = listing.terms_for(actor, purpose)
        if terms.valid_until <= now:
            raise Conflict(f"listing {listing.name} expired on {terms.valid_until.date()}")
        vetted = check_terms(deps, conn, terms)
        request_id = deps.new_id()
        if listing.grants_without_review(purpose):
            state = _make_agreement(deps, conn, listing, terms)
            status, agreement_id = RequestStatus.ACTIVE, state.id
        else:
            status, agreement_id = RequestStatus.PENDING, None
        deps.store.insert_listing_request(conn, request_id, listing_id, actor, purpose, status, agreement_id, "", now)
        index = deps.store.append_entry(conn, {
            "event": "listing.requested", "request": request_id, "listing": listing_id, "party": actor,
            "purpose": purpose, "status": status.value, "agreement": agreement_id, "rights": vetted,
            **({"terms_sha256": terms_digest(terms.to_dict())} if agreement_id else {}), "at": now})
        if status is RequestStatus.PENDING:
            notify(deps, conn, [listing.owner], "listing.review", request_id,
                   f"{actor} asks for listing {listing.name} for {purpose}, which it does not grant without review", index)
        return deps.store.listing_request(conn, request_id) | {"listing": listing.name, "owner": listing.owner}


def _make_agreement(deps: Deps, conn: Any, listing: ListingTerms, terms: AgreementTerms):
    """The agreement both sides signed by publishing and by requesting: active from the start."""
    owner = require_party(deps, conn, listing.owner)
    return insert_agreement(deps, conn, terms, owner.id, AgreementStatus.ACTIVE, set(terms.parties))


def decide(deps: Deps, actor: str, request_id: str, approve: bool, note: str = "") -> dict[str, Any]:
    """The owner approves (an active agreement is made, if the rights still cover it) or declines."""
    now = deps.now()
    with deps.store.transaction() as conn:
        require_party(deps, conn, actor)
        found = deps.store.listing_request(conn, request_id)
        listing_row = deps.store.listing(conn, found["listing_id"]) if found else None
        if listing_row is None or listing_row["terms"].owner != actor:
            raise NotFound(f"no listing request {request_id}")
        if found["status"] != RequestStatus.PENDING.value:
            raise Conflict(f"listing request {request_id} is already {found['status']}")
        listing: ListingTerms = listing_row["terms"]
        agreement_id = None
        if approve:
            terms = listing.terms_for(found["requester"], found["purpose"])
            check_terms(deps, conn, terms)
            agreement_id = _make_agreement(deps, conn, listing, terms).id
        status = RequestStatus.ACTIVE if approve else RequestStatus.DECLINED
        deps.store.decide_listing_request(conn, request_id, status, agreement_id, note[:2000], now)
        index = deps.store.append_entry(conn, {"event": "listing.request_decided", "request": request_id,
                                               "listing": found["listing_id"], "party": actor, "status": status.value,
                                               "agreement": agreement_id, "at": now})
        verdict = "approved" if approve else "declined"
        notify(deps, conn, [found["requester"]], f"listing.{verdict}", request_id,
               f"{actor} {verdict} your request for listing {listing.name} for {found['purpose']}"
               + (f": {note}" if note else ""), index)
        return deps.store.listing_request(conn, request_id) | {"listing": listing.name, "owner": listing.owner}


def requests(deps: Deps, actor: str) -> dict[str, list[dict[str, Any]]]:
    """The actor's own requests, and the requests made on its listings (`to_review`: pending ones)."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, actor)
        own = {f["id"]: f["terms"] for f in deps.store.listings_of(conn, party.id)}
        mine = deps.store.listing_requests(conn, requester=actor)
        requested = {r["listing_id"]: deps.store.listing(conn, r["listing_id"])["terms"] for r in mine}
        received = deps.store.listing_requests(conn, listing_ids=list(own)) if own else []
    terms_of: dict[str, ListingTerms] = {**requested, **own}
    mine = [r | {"listing": terms_of[r["listing_id"]].name, "owner": terms_of[r["listing_id"]].owner} for r in mine]
    received = [r | {"listing": own[r["listing_id"]].name, "owner": actor} for r in received]
    return {"mine": mine, "to_review": [r for r in received if r["status"] == RequestStatus.PENDING.value],
            "received": received}


def listings_of(deps: Deps, actor: str) -> list[dict[str, Any]]:
    """The actor's own listings, published or withdrawn, with usage."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, actor)
        found = deps.store.listings_of(conn, party.id)
        usage = deps.store.listing_usage(conn, [f["id"] for f in found])
    return [_summary(f, actor, deps.now(), usage[f["id"]]) for f in found]


def _visible(deps: Deps, conn: Any, actor: str, listing_id: str) -> dict[str, Any]:
    found = deps.store.listing(conn, listing_id)
    if found is None or not found["terms"].visible_to(actor) or (
            found["status"] != "published" and found["terms"].owner != actor):
        raise NotFound(f"no listing {listing_id}")
    return found


def _owned(deps: Deps, conn: Any, actor: str, listing_id: str) -> dict[str, Any]:
    require_party(deps, conn, actor)
    found = deps.store.listing(conn, listing_id)
    if found is None or found["terms"].owner != actor:
        raise NotFound(f"no listing {listing_id}")
    return found


def _summary(found: dict[str, Any], actor: str, now: dt.datetime, usage: dict[str, Any] | None = None) -> dict[str, Any]:
    """A listing as parties see it. Only the owner sees whom a listing is shown to; everyone sees
    how many partners use it and for what, never who the data's subjects are."""
    listing: ListingTerms = found["terms"]
    expired = found["status"] == "published" and listing.terms.valid_until <= now
    out = {"id": found["id"], "status": "expired" if expired else found["status"], **listing.to_dict(),
           "usage": usage or {"partners": 0, "purposes": {}}}
    if actor != listing.owner and listing.visibility is not None:
        out["visibility"] = "chosen parties"
    return out
