"""Detection rules (domain/pii.py) and the schema's curation fields: pure, no files."""

from __future__ import annotations

import pytest

from commonground.domain.errors import BadInput
from commonground.domain.pii import (ColumnFinding, KindStats, PiiKind, Role, luhn_valid, mask, name_hints, profile_hint,
                                     subject_hint, validators)
from commonground.domain.vocabulary import Kind, fideslang_vocabulary
from commonground.domain.schema import parse_schema

V = validators("US")


@pytest.mark.parametrize("kind, good, bad", [
    (PiiKind.EMAIL, ["jane.doe@example.com", "a+b@mail.co.uk"], ["a@@b", "@example.com"]),
    (PiiKind.PHONE, ["+44 20 7946 0958", "+1 415 555 2671", "(415) 555-2671"], ["12345678", "+99 1234"]),
    (PiiKind.CARD, ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"], ["4111111111111112", "1234567812345678"]),
    (PiiKind.IBAN, ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"], ["DE00370400440532013000", "DE89370400440532013001"]),
    (PiiKind.NATIONAL_ID, ["536-22-1234", "AB123456C", "12345678Z", "RSSMRA85T10A562S"], ["000-12-3456", "666-12-3456", "12345678A"]),
    (PiiKind.IP, ["192.168.1.20", "2001:db8::8a2e:370:7334"], ["256.1.1.1", "12:30:00", "0.0.0.0"]),
    (PiiKind.DOB, ["1980-02-29", "31/12/1975"], ["1890-01-01", "2099-01-01", "1981-02-29"]),
])
def test_validators(kind, good, bad):
    assert all(V[kind](v) for v in good), [v for v in good if not V[kind](v)]
    assert not any(V[kind](v) for v in bad), [v for v in bad if V[kind](v)]


def test_luhn_matches_stdnum():
    from stdnum import luhn
    for n in ("79927398713", "79927398710", "4111111111111111", "4012888888881881", "1234567812345670"):
        assert luhn_valid(n) == luhn.is_valid(n)


def test_name_hints():
    assert name_hints("customer_email") == {PiiKind.EMAIL}
    assert name_hints("date_of_birth") == {PiiKind.DOB}
    assert PiiKind.NAME in name_hints("last_name")
    assert not name_hints("product_name") and not name_hints("file_name")
    assert name_hints("client_ip") == {PiiKind.IP} and not name_hints("zip")
    assert subject_hint("customer_id") and not subject_hint("order_id")


@pytest.mark.parametrize("column, role, category", [
    ("age", Role.QUASI_IDENTIFIER, "user.demographic.age_range"),
    ("age_band", Role.QUASI_IDENTIFIER, "user.demographic.age_range"),
    ("gender", Role.QUASI_IDENTIFIER, "user.demographic.gender"),
    ("customer_sex", Role.QUASI_IDENTIFIER, "user.demographic.gender"),
    ("race", Role.QUASI_IDENTIFIER, "user.demographic.race_ethnicity"),
    ("ethnic_origin", Role.QUASI_IDENTIFIER, "user.demographic.race_ethnicity"),
    ("marital_status", Role.QUASI_IDENTIFIER, "user.demographic.marital_status"),
    ("store_zip", Role.QUASI_IDENTIFIER, "user.contact.address.postal_code"),
    ("postal_code", Role.QUASI_IDENTIFIER, "user.contact.address.postal_code"),
    ("native_country", Role.QUASI_IDENTIFIER, "user.demographic"),
    ("education", Role.QUASI_IDENTIFIER, "user.demographic"),
    ("occupation", Role.QUASI_IDENTIFIER, "user.job_title"),
    ("religion", Role.SENSITIVE, "user.demographic.religious_belief"),
    ("political_party", Role.SENSITIVE, "user.demographic.political_opinion"),
    ("diagnosis_code", Role.SENSITIVE, "user.health_and_medical"),
    ("income", Role.SENSITIVE, "user.financial"),
])
def test_profile_hints_propose_quasi_identifiers_and_sensitive_columns_by_name(column, role, category):
    assert profile_hint(column) == (role, category)
    assert fideslang_vocabulary().check(Kind.CATEGORY, category) == category
    finding = ColumnFinding(column, sample_values=100)
    assert not finding.flagged and finding.proposal() == (role, category)  # proposed, never flagged as an identifier


@pytest.mark.parametrize("column", ["page", "usage", "stage", "storage", "message", "sussex", "weather_condition",
                                    "country", "zipped", "product", "spend", "age_verified_at_x_y", "sexton"])
def test_profile_hints_leave_other_names_alone(column):
    assert profile_hint(column) is None


def test_a_person_id_name_is_proposed_before_a_profile_hint():
    assert ColumnFinding("customer_id").proposal() == (Role.SUBJECT_ID, "user.unique_id")


def test_flagging_thresholds():
    f = ColumnFinding("ref", sample_values=1000)
    f.kinds[PiiKind.CARD] = KindStats(PiiKind.CARD, 1000, whole=30)  # 3%: random numbers passing Luhn by chance
    assert not f.flagged and f.proposal() is None
    f.kinds[PiiKind.CARD].whole = 900
    assert f.primary is PiiKind.CARD and f.proposal() == (Role.IDENTIFIER, "user.financial.credit_card")
    notes = ColumnFinding("notes", sample_values=1000)
    notes.kinds[PiiKind.EMAIL] = KindStats(PiiKind.EMAIL, 1000, embedded=50)
    assert notes.free_text and notes.proposal() == (Role.IDENTIFIER, "user.contact.email")


def test_dates_of_birth_need_a_name_or_a_birth_like_spread():
    events = ColumnFinding("ordered_on", sample_values=100)
    events.kinds[PiiKind.DOB] = KindStats(PiiKind.DOB, 100, whole=100, years=[2024] * 100)
    assert not events.flagged
    born = ColumnFinding("x", sample_values=100)
    born.kinds[PiiKind.DOB] = KindStats(PiiKind.DOB, 100, whole=100, years=list(range(1940, 2000)) + [1970] * 40)
    assert born.primary is PiiKind.DOB and born.proposal()[0] is Role.QUASI_IDENTIFIER


def test_mask_hides_values():
    assert mask("jane.doe@example.com") == "j*******@e**********"
    assert mask("4111 1111 1111 1111").endswith("11") and "4111" not in mask("4111 1111 1111 1111")


def test_schema_curation_fields():
    s = parse_schema({"columns": {"c": {"type": "string", "curate": "country_iso2"},
                                  "d": {"type": "date", "curate": "date_iso8601", "on_unmapped": "reject"}}})
    assert s.column("c").curate == "country_iso2" and s.column("c").on_unmapped == "keep"
    assert parse_schema(s.to_dict()) == s
    assert "curate" not in parse_schema({"columns": {"a": "string"}}).to_dict()["columns"]["a"]
    for bad, message in [({"type": "string", "curate": "iso_magic"}, "unknown curate step"),
                         ({"type": "integer", "curate": "country_iso2"}, "declare type string"),
                         ({"type": "date", "curate": "date_iso8601"}, "cannot be kept"),
                         ({"type": "string", "curate": "currency_iso4217", "on_unmapped": "drop"}, "keep, null or reject"),
                         ({"type": "string", "on_unmapped": "null"}, "needs a curate step")]:
        with pytest.raises(BadInput, match=message):
            parse_schema({"columns": {"x": bad}})
