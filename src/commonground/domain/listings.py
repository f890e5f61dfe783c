"""Data products: an owner's curated view of its datasets offered on standard terms.

A listing is an agreement with the recipient left open: the datasets and fields with their
transforms, the access mode and k, the validity window, and the purposes it grants without
review. A party that requests it for one of those purposes gets an agreement at once (both
sides agreed to the standard terms: the owner by publishing, the requester by requesting);
any other purpose goes to the owner for review. Pure: ids and time are passed in.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .agreements import AgreementTerms, parse_agreement
from .errors import BadInput
from .names import check_label, check_name
from .rights import covers

# Agreement names are labels of at most 63 characters; a listing's agreements are named
# `<listing>-<requester>`, so the listing keeps room for a readable requester name.
MAX_LISTING_NAME = 30


class RequestStatus(str, Enum):
    ACTIVE = "active"  # an agreement was made (at once, or on approval)
    PENDING = "pending"  # waiting for the owner's review
    DECLINED = "declined"


@dataclass(frozen=True)
class ListingTerms:
    """A listing's content: the agreement terms every requester gets, minus the recipient."""

    name: str
    owner: str
    title: str
    description: str
    terms: AgreementTerms  # recipients is empty: it is filled per request
    visibility: tuple[str, ...] | None  # None: every party; else only these parties

    def visible_to(self, party: str) -> bool:
        return party == self.owner or self.visibility is None or party in self.visibility

    def grants_without_review(self, purpose: str) -> bool:
        return covers(self.terms.purposes, purpose)

    def terms_for(self, requester: str, purpose: str) -> AgreementTerms:
        """The agreement one request makes: the standard terms, this requester, this purpose."""
        if requester == self.owner:
            raise BadInput("you cannot request your own listing")
        name = f"{self.name}-{requester}"[:63].rstrip("-_")
        return dataclasses.replace(self.terms, name=name, recipients=(requester,), purposes=(purpose,))

    def to_dict(self) -> dict[str, Any]:
        doc = self.terms.to_dict()
        for key in ("name", "provider", "recipients"):
            doc.pop(key)
        return {"name": self.name, "owner": self.owner, "title": self.title, "description": self.description,
                **doc, "visibility": "all" if self.visibility is None else list(self.visibility)}


def parse_listing(doc: Any, owner: str) -> ListingTerms:
    """Validate a listing document (docs/data-products.md); catalog and rights checks are the service's."""
    if not isinstance(doc, dict):
        raise BadInput("listing must be a mapping (see docs/data-products.md)")
    allowed = {"name", "title", "description", "datasets", "access", "purposes", "valid_from", "valid_until", "visibility"}
    unknown = set(doc) - allowed
    if unknown:
        raise BadInput(f"listing: unknown key(s) {sorted(unknown)}")
    name = check_label("listing", str(doc.get("name", "")))
    if len(name) > MAX_LISTING_NAME:
        raise BadInput(f"listing: name must be at most {MAX_LISTING_NAME} characters")
    title = str(doc.get("title") or name)
    description = str(doc.get("description") or "")
    if len(title) > 200 or len(description) > 4000:
        raise BadInput("listing: title is at most 200 characters, description at most 4000")
    visibility = doc.get("visibility", "all")
    if visibility == "all":
        parties = None
    elif isinstance(visibility, list) and visibility:
        parties = tuple(sorted({check_name("party", str(p)) for p in visibility}))
    else:
        raise BadInput("listing: visibility must be 'all' or a non-empty list of party names")
    # The agreement parser checks the shared shape; the recipient is a stand-in it never keeps.
    stand_in = "requester" if owner != "requester" else "requester_"
    agreement = {k: v for k, v in doc.items() if k in {"datasets", "access", "purposes", "valid_from", "valid_until"}}
    terms = parse_agreement({**agreement, "name": name, "provider": owner, "recipients": [stand_in]})
    return ListingTerms(name, owner, title, description, dataclasses.replace(terms, recipients=()), parties)
