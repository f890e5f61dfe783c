"""A rows agreement is told which shared columns read like quasi-identifiers but would leave an
export ungeneralised (policy/exports.py, `ungeneralised_quasi_identifiers`): pure, no store."""

from __future__ import annotations

from commonground.domain.agreements import parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.exports import ungeneralised_quasi_identifiers

COLUMNS = {"person_id": {"type": "string", "role": "subject_id"}, "age": {"type": "integer"},
           "zip": {"type": "string"}, "gender": {"type": "string"}, "spend": {"type": "double"},
           "email": {"type": "string", "role": "identifier"}}


def _terms(mode: str = "rows", fields: dict | None = None, **access):
    fields = fields or {"person_id": "hash", "age": "raw", "zip": "raw", "gender": "drop", "spend": "raw"}
    return parse_agreement({"name": "a", "provider": "shop", "recipients": ["lab"], "purposes": ["analytics.reporting"],
                            "valid_until": "2099-12-31", "datasets": {"shop.people": {"fields": fields}},
                            "access": {"mode": mode, "min_group_size": 5, **access}})


def _schemas(**roles):
    columns = {name: {**spec, **({"role": roles[name]} if name in roles else {})} for name, spec in COLUMNS.items()}
    return {"shop.people": parse_schema({"columns": columns})}


def test_shared_columns_named_like_quasi_identifiers_and_listed_nowhere_are_named():
    # gender is dropped (never leaves), spend is no quasi-identifier by name, the ids are identifiers
    assert ungeneralised_quasi_identifiers(_terms(), _schemas()) == {"shop.people": ["age", "zip"]}


def test_the_schema_or_the_agreement_listing_them_silences_it():
    assert ungeneralised_quasi_identifiers(_terms(), _schemas(age="quasi_identifier")) == {"shop.people": ["zip"]}
    assert ungeneralised_quasi_identifiers(_terms(), _schemas(age="quasi_identifier", zip="quasi_identifier")) == {}
    # the agreement's own list replaces the schema's, so a column it leaves out is named again
    listed = _terms(quasi_identifiers=["zip"])
    assert ungeneralised_quasi_identifiers(listed, _schemas(age="quasi_identifier", zip="quasi_identifier")) == {
        "shop.people": ["age"]}


def test_only_rows_agreements_release_rows():
    assert ungeneralised_quasi_identifiers(_terms("aggregate"), _schemas()) == {}
