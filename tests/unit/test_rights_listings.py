"""The pure rules of rights pre-vetting and listings: purpose coverage down the taxonomy, the
shape checks of a declaration, the gaps of terms, and what one listing request becomes."""

from __future__ import annotations

import datetime as dt

import pytest

from commonground.domain.agreements import AccessMode, parse_agreement
from commonground.domain.errors import BadInput
from commonground.domain.listings import parse_listing
from commonground.domain.rights import LegalBasis, covers, parse_rights, terms_gaps

AT = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
COLUMNS = ("customer_id", "email", "segment", "spend")


def rights(doc: dict, version: int = 1):
    return parse_rights(doc, "bank.cards", version, "bank", AT, COLUMNS)


def terms(purposes: list[str], fields: dict) -> object:
    return parse_agreement({"name": "a", "provider": "bank", "recipients": ["insurer"], "purposes": purposes,
                            "valid_until": "2099-12-31", "datasets": {"bank.cards": {"fields": fields}},
                            "access": {"mode": "aggregate", "min_group_size": 5}})


def test_a_purpose_covers_its_narrower_purposes_only():
    assert covers(["analytics"], "analytics.reporting.ad_performance")
    assert covers(["analytics.reporting"], "analytics.reporting")
    assert not covers(["analytics.reporting"], "analytics")
    assert not covers(["analytics"], "analyticsx")  # a prefix is not a parent
    assert not covers([], "analytics")


@pytest.mark.parametrize("doc, message", [
    ({"purposes": ["analytics"]}, "legal_basis and purposes are required"),
    ({"legal_basis": "gut_feeling", "purposes": ["analytics"]}, "not a GDPR Art. 6 basis"),
    ({"legal_basis": "consent", "purposes": []}, "non-empty list"),
    ({"legal_basis": "consent", "purposes": ["analytics"], "extra": 1}, "unknown key"),
    ({"legal_basis": "consent", "purposes": ["analytics"], "columns": {"nope": {"purposes": []}}}, "no such column"),
    ({"legal_basis": "consent", "purposes": ["analytics"], "columns": {"spend": {"purposes": ["marketing"]}}},
     "outside the dataset's own purposes"),
    ({"legal_basis": "consent", "purposes": ["analytics"], "columns": {"spend": ["analytics"]}}, "expected"),
])
def test_bad_declarations_are_bad_input(doc, message):
    with pytest.raises(BadInput, match=message):
        rights(doc)


def test_gaps_name_each_purpose_and_each_shared_field_outside_the_rights():
    declared = rights({"legal_basis": "contract", "purposes": ["analytics", "marketing"],
                       "columns": {"email": {"purposes": []}, "spend": {"purposes": ["analytics"], "legal_basis": "consent"}}})
    assert declared.legal_basis is LegalBasis.CONTRACT and declared.purposes_for("segment") == ("analytics", "marketing")
    fine = terms(["analytics.reporting"], {"customer_id": "hash", "spend": "raw", "email": "drop"})
    assert terms_gaps(fine, {"bank.cards": declared}) == []
    assert terms_gaps(fine, {}) == []  # no declared rights: nothing to vet
    wide = terms(["personalize", "marketing.advertising"], {"customer_id": "hash", "spend": "raw", "email": "hash"})
    assert terms_gaps(wide, {"bank.cards": declared}) == [
        "bank.cards (rights v1): purpose personalize is outside the declared rights (analytics, marketing)",
        "bank.cards (rights v1): field spend may not be shared for marketing.advertising (its purposes: analytics); drop it",
        "bank.cards (rights v1): field email may not be shared for marketing.advertising (its purposes: none); drop it",
    ]
    assert declared.to_dict()["columns"]["spend"] == {"purposes": ["analytics"], "legal_basis": "consent"}


LISTING = {"name": "cards", "title": "Cards", "purposes": ["analytics.reporting"], "valid_until": "2099-12-31",
           "datasets": {"bank.cards": {"fields": {"customer_id": "hash", "segment": "raw"}}},
           "access": {"mode": "aggregate", "min_group_size": 10}}


def test_a_listing_request_becomes_the_standard_terms_for_one_recipient_and_purpose():
    listing = parse_listing(LISTING, "bank")
    assert listing.terms.recipients == () and listing.visibility is None and listing.visible_to("anyone")
    made = listing.terms_for("insurer", "analytics.reporting.ad_performance")
    assert (made.name, made.provider, made.recipients, made.purposes) == (
        "cards-insurer", "bank", ("insurer",), ("analytics.reporting.ad_performance",))
    assert made.mode is AccessMode.AGGREGATE and made.min_group_size == 10
    assert listing.grants_without_review("analytics.reporting.ad_performance")
    assert not listing.grants_without_review("analytics")
    with pytest.raises(BadInput, match="your own listing"):
        listing.terms_for("bank", "analytics.reporting")
    chosen = parse_listing({**LISTING, "visibility": ["insurer", "broker"]}, "bank")
    assert chosen.visibility == ("broker", "insurer") and chosen.visible_to("bank") and not chosen.visible_to("other")
    assert "requester" not in str(chosen.to_dict())  # the parser's stand-in recipient is never kept


@pytest.mark.parametrize("change, message", [
    ({"name": "x" * 31}, "at most 30"), ({"visibility": []}, "visibility"), ({"visibility": "some"}, "visibility"),
    ({"extra": 1}, "unknown key"), ({"access": {"mode": "aggregate", "min_group_size": 1}}, "min_group_size"),
    ({"datasets": {"other.cards": {"fields": {"segment": "raw"}}}}, "not the provider's"),
])
def test_bad_listings_are_bad_input(change, message):
    with pytest.raises(BadInput, match=message):
        parse_listing({**LISTING, **change}, "bank")
