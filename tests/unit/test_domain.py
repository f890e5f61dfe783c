"""Schemas and agreements parse strictly and explain what is wrong."""

from __future__ import annotations

import datetime as dt

import pytest

from commonground.domain.agreements import (AgreementState, AgreementStatus, TransformKind, parse_agreement,
                                            render_template)
from commonground.domain.errors import BadInput
from commonground.domain.schema import Role, normalize_column_name, parse_schema

DOC = {
    "name": "syrup-insights", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics.reporting"],
    "valid_until": "2027-06-30",
    "datasets": {"retailer.purchases": {"fields": {"customer_id": {"transform": "hash"},
                                                   "zip": {"transform": "generalize", "keep": 3}}}},
    "access": {"mode": "aggregate", "min_group_size": 10, "join_keys": ["customer_id"]},
}


def test_schema_roles_and_names():
    schema = parse_schema({"row_id": "person", "columns": {"Marital-Status": {"type": "str", "role": "quasi_identifier"},
                                                           "e": {"role": "identifier"}}})
    assert schema.names == ["person", "marital_status", "e"]
    assert schema.subject_column == "person" and schema.column("e").role.identifying
    assert not Role.QUASI_IDENTIFIER.identifying
    assert parse_schema(schema.to_dict()) == schema  # round-trips through storage


@pytest.mark.parametrize("doc, message", [
    ({}, "'columns'"),
    ({"columns": {"a": {"type": "blob"}}}, "unknown type 'blob'"),
    ({"columns": {"a": {"role": "secret"}}}, "unknown role 'secret'"),
    ({"columns": {"a": {"role": "subject_id"}, "b": {"role": "subject_id"}}}, "only one column"),
    ({"columns": {"a": {}, "A": {}}}, "duplicate"),
    ({"columns": {"a": {"category": "Not A Category"}}}, "malformed data category"),
    ({"columns": {"a": {}}, "consent": "opt_in"}, "needs a subject_id"),
    ({"columns": {"a": {}}, "surprise": 1}, "unknown key"),
])
def test_schema_errors_name_the_problem(doc, message):
    with pytest.raises(BadInput, match=message):
        parse_schema(doc)


def test_column_names_are_normalised():
    assert normalize_column_name(" hours-per-week ") == "hours_per_week"
    assert normalize_column_name("2nd") == "c_2nd"


def test_agreement_parses_and_round_trips():
    terms = parse_agreement(DOC)
    assert terms.parties == ("retailer", "brand")
    assert terms.grant_for("retailer.purchases").fields["zip"].kind is TransformKind.GENERALIZE
    assert terms.valid_until == dt.datetime(2027, 6, 30, 23, 59, 59, tzinfo=dt.timezone.utc)
    assert parse_agreement(terms.to_dict()) == terms


@pytest.mark.parametrize("change, message", [
    ({"provider": "wholesaler"}, "not the provider's"),
    ({"recipients": ["retailer"]}, "cannot also be a recipient"),
    ({"recipients": []}, "non-empty"),
    ({"purposes": []}, "non-empty"),
    ({"valid_until": "someday"}, "not a date"),
    ({"access": {"mode": "aggregate", "min_group_size": "ten"}}, "min_group_size"),
    ({"access": {"mode": "join", "min_group_size": 5}}, "join key"),
    ({"datasets": {"purchases": {"fields": {"a": "raw"}}}}, "owner.dataset"),
    ({"datasets": {"retailer.purchases": {"fields": {"a": {"transform": "bucket"}}}}}, "positive numeric width"),
    ({"datasets": {"retailer.purchases": {"fields": {"a": {"transform": "generalize"}}}}}, "exactly one of"),
    ({"datasets": {"retailer.purchases": {"fields": {"a": {"transform": "raw", "keep": 2}}}}}, "takes no"),
])
def test_agreement_errors_name_the_problem(change, message):
    with pytest.raises(BadInput, match=message):
        parse_agreement({**DOC, **change})


def test_in_force_follows_status_and_time():
    terms = parse_agreement(DOC)
    active = AgreementState("a", 1, terms, AgreementStatus.ACTIVE)
    before = dt.datetime(2027, 6, 30, 12, tzinfo=dt.timezone.utc)
    after = dt.datetime(2027, 7, 1, tzinfo=dt.timezone.utc)
    assert active.in_force(before) and not active.in_force(after)
    assert active.effective_status(after) is AgreementStatus.EXPIRED
    assert not AgreementState("a", 1, terms, AgreementStatus.PROPOSED).in_force(before)
    assert not AgreementState("a", 1, terms, AgreementStatus.REVOKED).in_force(before)


def test_templates_name_missing_and_unknown_parameters():
    assert render_template("k: ${k}", {"k": "5"}) == "k: 5"
    with pytest.raises(BadInput, match=r"needs parameter\(s\) \['k'\]"):
        render_template("k: ${k}", {})
    with pytest.raises(BadInput, match="has no parameter"):
        render_template("k: ${k}", {"k": "1", "x": "2"})


def test_a_sealed_column_cannot_be_a_quasi_identifier_of_a_rows_export():
    from commonground.domain.agreements import check_against
    schema = parse_schema({"collaboration": "c", "columns": {
        "email": {"type": "string", "role": "subject_id", "seal": "fingerprint"},
        "postcode": {"type": "string", "role": "quasi_identifier", "seal": "sealed"},
        "age": {"type": "integer", "role": "quasi_identifier"}}})
    doc = {**DOC, "datasets": {"retailer.purchases": {"fields": {"email": "hash", "postcode": "raw", "age": "raw"}}},
           "access": {"mode": "rows", "min_group_size": 5, "quasi_identifiers": ["postcode", "age"]}}
    with pytest.raises(BadInput, match="postcode is sealed as sealed: it cannot be a quasi-identifier"):
        check_against(parse_agreement(doc), {"retailer.purchases": schema})
    doc["access"]["quasi_identifiers"] = ["age"]
    check_against(parse_agreement(doc), {"retailer.purchases": schema})  # shared raw, it leaves as ciphertext
