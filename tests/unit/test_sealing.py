"""Client-side sealing (issue #10): the seal schema, the primitives and files, the governor's
rules for fingerprint and sealed columns, and what an agreement may do with them."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from hypothesis import given, settings
from hypothesis import strategies as st

from commonground import sealing
from commonground.domain.agreements import check_against, parse_agreement
from commonground.domain.errors import BadInput, Refused
from commonground.domain.schema import (FINGERPRINT_PATTERN, SEAL_SECRET_ENV, SEALED_PATTERN, Seal, parse_schema)
from commonground.policy.governor import govern
from tests.governor_context import build_context

SECRET = b"an-example-collaboration-secret-of-32+bytes"
SCHEMA = {
    "collaboration": "syrup-2025",
    "columns": {
        "customer_id": {"type": "string", "role": "subject_id", "seal": "fingerprint", "domain": "customer"},
        "email": {"type": "string", "role": "identifier", "category": "user.contact.email", "seal": "fingerprint",
                  "normalize": ["trim", "lower"]},
        "name": {"type": "string", "role": "identifier", "seal": "sealed", "pad": 32},
        "segment": {"type": "string"},
        "spend": {"type": "double"},
    },
}


# ---------------------------------------------------------------------------------------
# the schema


def test_seal_fields_round_trip_through_the_stored_form():
    schema = parse_schema(SCHEMA)
    assert schema.collaboration == "syrup-2025"
    assert schema.column("customer_id").seal is Seal.FINGERPRINT and schema.column("customer_id").domain == "customer"
    assert schema.column("email").domain == "email" and schema.column("email").normalize == ("trim", "lower")
    assert schema.column("name").seal is Seal.SEALED and schema.column("name").pad == 32
    assert not schema.column("segment").sealed
    stored = schema.to_dict()
    assert stored["collaboration"] == "syrup-2025"
    assert stored["columns"]["email"]["seal"] == "fingerprint" and "seal" not in stored["columns"]["segment"]
    assert parse_schema(stored) == schema


@pytest.mark.parametrize("change, message", [
    ({"collaboration": None}, "needs a top-level 'collaboration"),
    ({"collaboration": "Bad Name"}, "collaboration must be"),
    ({"columns": {"x": {"type": "integer", "seal": "fingerprint"}}}, "declare type string"),
    ({"columns": {"x": {"seal": "hashed"}}}, "unknown seal 'hashed'"),
    ({"columns": {"x": {"seal": "sealed", "normalize": ["lower"]}}}, "normalize applies to fingerprint columns only"),
    ({"columns": {"x": {"seal": "fingerprint", "pad": 16}}}, "pad applies to sealed columns only"),
    ({"columns": {"x": {"seal": "fingerprint", "normalize": ["upper"]}}}, "normalize must be a list of"),
    ({"columns": {"x": {"domain": "d"}}}, "is cleartext, so it takes no ['domain']"),
    ({"columns": {"x": {"seal": "sealed", "pad": 0}}}, "pad must be"),
])
def test_bad_seal_declarations_are_named(change, message):
    doc = {**SCHEMA, **change}
    if doc.get("collaboration") is None:
        doc.pop("collaboration")
    with pytest.raises(BadInput) as e:
        parse_schema(doc)
    assert message in str(e.value)


# ---------------------------------------------------------------------------------------
# primitives


def _key(kind=Seal.FINGERPRINT, domain="customer", collaboration="syrup-2025", secret=SECRET):
    return sealing.derive_key(secret, collaboration, kind, domain)


def test_fingerprint_is_truncated_hmac_sha256_in_base64url():
    key = _key()
    mac = crypto_hmac.HMAC(key, hashes.SHA256())
    mac.update(b"bob@example.com")
    expected = base64.urlsafe_b64encode(mac.finalize()[:16]).rstrip(b"=").decode()
    assert sealing.fingerprint_value("  Bob@Example.com ", key, ("trim", "lower")) == expected
    assert len(expected) == 22 < 52  # fewer bytes than C3R's 52


def test_fingerprints_are_equal_exactly_when_normalised_plaintexts_are():
    key = _key()
    values = pa.array(["C1", " C1", "c1", "C2", None, "", "?"])
    fps = sealing.fingerprint_array(sealing.normalize(values, ("trim",), ("?",)), key).to_pylist()
    assert fps[0] == fps[1] != fps[2] != fps[3]
    assert fps[4:] == [None, None, None]  # NULL, empty and null markers stay NULL
    folded = sealing.fingerprint_array(sealing.normalize(values, ("trim", "lower")), key).to_pylist()
    assert folded[0] == folded[2]
    # digits-only (phones) and NFC
    digits = sealing.normalize(pa.array(["+44 (0)20-7946 0000", "440207946 0000"]), ("digits",))
    assert digits.to_pylist() == ["4402079460000", "4402079460000"]
    nfc = sealing.normalize(pa.array(["e\u0301", "\u00e9"]), ("nfc",)).to_pylist()
    assert nfc[0] == nfc[1]


def test_domains_collaborations_and_secrets_separate_keys():
    keys = {_key(), _key(domain="email"), _key(collaboration="other"), _key(secret=b"x" * 32), _key(Seal.SEALED)}
    assert len(keys) == 5
    fps = {sealing.fingerprint_value("C1", k) for k in keys}
    assert len(fps) == 5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=50))
def test_sealed_forms_match_the_ingest_patterns_and_open_again(values):
    fp_key, seal_key = _key(), _key(Seal.SEALED, "name")
    for fp in sealing.fingerprint_array(pa.array(values), fp_key).to_pylist():
        assert re.fullmatch(FINGERPRINT_PATTERN, fp)
    for pad in (None, 16):
        sealed = sealing.seal_array(pa.array(values), seal_key, pad).to_pylist()
        for token, value in zip(sealed, values):
            assert re.fullmatch(SEALED_PATTERN, token) and len(token) % 4 != 1
            assert sealing.open_value(token, seal_key) == value


def test_padding_hides_lengths_and_tampering_is_detected():
    key = _key(Seal.SEALED, "name")
    sealed = sealing.seal_array(pa.array(["Al", "Alexandra Example", "Al"]), key, 32).to_pylist()
    assert len({len(t) for t in sealed}) == 1
    assert sealed[0] != sealed[2]  # fresh nonce per value: equal plaintexts do not show
    flipped = sealed[0][:30] + ("A" if sealed[0][30] != "A" else "B") + sealed[0][31:]
    for bad, key_used in ((flipped, key), (sealed[0], _key(Seal.SEALED, "other")), ("not-a-sealed-value", key)):
        with pytest.raises(ValueError):
            sealing.open_value(bad, key_used)


def test_secrets_must_be_long_and_come_from_a_file_or_the_environment(tmp_path: Path):
    with pytest.raises(BadInput, match="at least 32"):
        sealing.check_secret(b"short")
    (tmp_path / "s").write_text(sealing.new_secret() + "\n")
    assert len(sealing.load_secret(tmp_path / "s")) == 43
    assert sealing.load_secret(env={SEAL_SECRET_ENV: "y" * 40}) == b"y" * 40
    with pytest.raises(BadInput, match="--secret-file"):
        sealing.load_secret(env={})


# ---------------------------------------------------------------------------------------
# files


def _write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


ROWS = [["customer_id", "Email", "name", "segment", "spend"],
        ["C0001", " Ann@Example.org", "Ann Example", "gold", "10.5"],
        ["C0002", "bob@example.org", "", "silver", "3"],
        ["C0001", "ann@example.org ", "Ann Example", "gold", "1"]]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_seal_file_then_unseal_file(tmp_path: Path, suffix: str):
    schema = parse_schema(SCHEMA)
    source = _write_csv(tmp_path / "in.csv", ROWS)
    progress: list[float] = []
    report = sealing.seal_file(source, tmp_path / f"out{suffix}", schema, SECRET, "syrup-2025", progress.append)
    assert report.rows == 3 and report.fingerprint == ["customer_id", "Email"] and report.sealed == ["name"]
    assert progress[-1] == 100.0
    table = (pq.read_table(tmp_path / "out.parquet") if suffix == ".parquet"
             else pa.csv.read_csv(tmp_path / "out.csv"))
    cols = table.to_pydict()
    assert cols["customer_id"][0] == cols["customer_id"][2] != cols["customer_id"][1]
    assert cols["Email"][0] == cols["Email"][2]  # trimmed and case-folded
    assert cols["segment"] == ["gold", "silver", "gold"]
    blob = (tmp_path / f"out{suffix}").read_bytes()
    for raw in (b"C0001", b"Ann Example", b"example.org"):
        assert raw not in blob
    back = sealing.unseal_file(tmp_path / f"out{suffix}", tmp_path / f"back{suffix}", schema, SECRET)
    assert back.sealed == ["name"]
    opened = (pq.read_table(tmp_path / "back.parquet") if suffix == ".parquet"
              else pa.csv.read_csv(tmp_path / "back.csv")).to_pydict()
    assert opened["name"][0] == opened["name"][2] == "Ann Example" and opened["name"][1] in (None, "")


def test_seal_file_refuses_mismatches(tmp_path: Path):
    schema = parse_schema(SCHEMA)
    source = _write_csv(tmp_path / "in.csv", ROWS)
    with pytest.raises(BadInput, match="does not match the schema's collaboration"):
        sealing.seal_file(source, tmp_path / "o.csv", schema, SECRET, "other")
    extra = _write_csv(tmp_path / "extra.csv", [r + ["x"] for r in ROWS])
    with pytest.raises(BadInput, match="not declared in the schema"):
        sealing.seal_file(extra, tmp_path / "o.csv", schema, SECRET)
    assert not (tmp_path / "o.csv").exists() and not list(tmp_path.glob("*.partial"))
    with pytest.raises(BadInput, match="nothing to seal"):
        sealing.seal_file(source, tmp_path / "o.csv", parse_schema({"columns": {"a": "string"}}), SECRET)


def test_unseal_rows_opens_a_query_result():
    schema = parse_schema(SCHEMA)
    key = sealing.column_keys(schema, SECRET)["name"]
    token = sealing.seal_array(pa.array(["Ann Example"]), key, 32)[0].as_py()
    rows = sealing.unseal_rows(["who", "n"], [[token, 3], [None, 1]], schema, SECRET, columns={"who": "name"})
    assert rows == [["Ann Example", 3], [None, 1]]
    with pytest.raises(BadInput, match="no sealed column"):
        sealing.unseal_rows(["segment"], [["gold"]], schema, SECRET)
    with pytest.raises(BadInput, match="cannot open"):
        sealing.unseal_rows(["name"], [[token]], schema, b"z" * 32)


# ---------------------------------------------------------------------------------------
# agreements


def _agreement(fields: dict, join_keys=("customer_id",)) -> dict:
    return {"name": "sealed", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics.reporting"],
            "valid_until": "2027-01-01", "datasets": {"retailer.shoppers": {"fields": fields}},
            "access": {"mode": "join", "min_group_size": 2, "join_keys": list(join_keys)}}


def test_fingerprint_and_sealed_columns_are_shared_raw_or_dropped():
    schemas = {"retailer.shoppers": parse_schema(SCHEMA)}
    check_against(parse_agreement(_agreement({"customer_id": "raw", "email": "raw", "name": "raw", "spend": "raw"})), schemas)
    with pytest.raises(BadInput) as e:
        check_against(parse_agreement(_agreement({"customer_id": "hash", "name": {"transform": "mask", "keep_last": 2}})),
                      schemas)
    assert "customer_id is sealed as fingerprint: share it raw or drop it" in str(e.value)
    assert "hashing it again" in str(e.value)
    assert "name is sealed as sealed: share it raw or drop it" in str(e.value)
    rows = _agreement({"customer_id": "hash", "email": "raw", "name": "raw", "spend": "raw"})
    rows["access"] = {"mode": "rows", "min_group_size": 2}
    with pytest.raises(BadInput) as e:
        check_against(parse_agreement(rows), schemas)
    assert "customer_id is sealed" not in str(e.value)  # a per-agreement hash of a fingerprint is fine in rows mode
    assert "email is an identifier sealed as fingerprint: access mode rows" in str(e.value)
    assert "name is an identifier sealed as sealed" in str(e.value) and "share it as drop" in str(e.value)
    with pytest.raises(BadInput, match="segment is an identifier"):  # a cleartext identifier still may not go raw
        plain = {**SCHEMA, "columns": {**SCHEMA["columns"], "segment": {"type": "string", "role": "identifier"}}}
        check_against(parse_agreement(_agreement({"customer_id": "raw", "segment": "raw"})),
                      {"retailer.shoppers": parse_schema(plain)})


# ---------------------------------------------------------------------------------------
# the governor


GOVERNOR_DOC = {
    "datasets": {
        "retailer.shoppers": {"rows": 1000, "max_rows_per_subject": 3, "schema": {**SCHEMA, "columns": {
            **SCHEMA["columns"], "phone": {"type": "string", "seal": "fingerprint", "domain": "phone",
                                           "normalize": ["digits"]}}}},
        "brand.members": {"rows": 500, "max_rows_per_subject": 1, "schema": {"collaboration": "syrup-2025", "columns": {
            "member_id": {"type": "string", "role": "subject_id", "seal": "fingerprint", "domain": "customer"},
            "email": {"type": "string", "role": "identifier", "seal": "fingerprint", "normalize": ["trim", "lower"]},
            "email_trim": {"type": "string", "seal": "fingerprint", "domain": "email"},
            "nickname": {"type": "string", "seal": "sealed"},
            "plain_id": {"type": "string", "role": "identifier"},
            "tier": {"type": "string"}}}},
        "brand.legacy": {"rows": 100, "max_rows_per_subject": 1, "schema": {"collaboration": "older", "columns": {
            "cid": {"type": "string", "role": "subject_id", "seal": "fingerprint", "domain": "customer"},
            "region": {"type": "string"}}}},
    },
    "agreements": [{"id": "ag-sealed", "hash_key": "sealed-test-key-of-32-bytes!!!!!", "terms": _agreement(
        {"customer_id": "raw", "email": "raw", "name": "raw", "phone": "raw", "segment": "raw", "spend": "raw"},
        join_keys=("customer_id", "email"))}],
    "contexts": {"brand": {"party": "brand", "purpose": "analytics.reporting"}},
}

ALLOWED = {
    "join on fingerprints of the same domain":
        "select m.tier, count(distinct s.customer_id) people from retailer.shoppers s "
        "join brand.members m on s.customer_id = m.member_id group by m.tier",
    "join on email fingerprints normalised the same way":
        "select m.tier, count(*) from retailer.shoppers s join brand.members m on s.email = m.email group by m.tier",
    "count distinct of a fingerprint":
        "select count(distinct s.email), count(distinct s.phone) from retailer.shoppers s",
    "cleartext dimension": "select segment, count(*), sum(spend) from retailer.shoppers group by segment",
    "fingerprints carried through a CTE":
        "with x as (select customer_id, spend from retailer.shoppers) select count(distinct customer_id), sum(spend) from x",
}

REFUSED = {
    "output a fingerprint": ("select phone, count(*) from retailer.shoppers group by phone", "fingerprints:", "phone"),
    "literal probe of a fingerprint": ("select count(*) from retailer.shoppers where email = 'VzyJ_wTaCIVC6jsbnqGUDg'",
                                       "fingerprints:", "retailer.shoppers.email"),
    "MIN of a fingerprint": ("select min(phone) from retailer.shoppers", "fingerprints:", "MIN"),
    "fingerprint joined to a cleartext column":
        ("select count(*) from retailer.shoppers s join brand.members m on s.customer_id = m.plain_id",
         "fingerprints:", "is not one"),
    "fingerprints of different domains":
        ("select count(*) from retailer.shoppers s join brand.members m on s.email = m.member_id",
         "fingerprints:", "domain email"),
    "fingerprints normalised differently":
        ("select count(*) from retailer.shoppers s join brand.members m on s.email = m.email_trim",
         "fingerprints:", "normalised trim+lower"),
    "fingerprints of another collaboration":
        ("select count(*) from retailer.shoppers s join brand.legacy l on s.customer_id = l.cid",
         "fingerprints:", "collaboration syrup-2025"),
    "sealed column in an aggregate": ("select count(name) from retailer.shoppers", "sealed:", "access mode rows"),
    "sealed column in GROUP BY": ("select name, count(*) from retailer.shoppers group by name", "sealed:", "GROUP BY"),
    "sealed column in a predicate": ("select count(*) from retailer.shoppers where name is not null", "sealed:", "IS NULL"),
    "sealed column in a join":
        ("select count(*) from retailer.shoppers s join brand.members m on s.customer_id = m.member_id "
         "and s.name = m.nickname", "sealed:", "retailer.shoppers.name"),
    "sealed column output row by row": ("select name from retailer.shoppers", "sealed:", "access mode rows"),
    "sealed column through a CTE":
        ("with x as (select name from retailer.shoppers) select count(distinct name) from x", "sealed:", "DISTINCT"),
}


@pytest.mark.parametrize("sql", ALLOWED.values(), ids=ALLOWED.keys())
def test_governor_allows_fingerprint_joins_and_counts(sql):
    plan = govern(sql, build_context("brand", GOVERNOR_DOC))
    assert plan.governed


@pytest.mark.parametrize("sql, prefix, fragment", REFUSED.values(), ids=REFUSED.keys())
def test_governor_refuses_other_uses_of_sealed_columns(sql, prefix, fragment):
    with pytest.raises(Refused) as refusal:
        govern(sql, build_context("brand", GOVERNOR_DOC))
    reasons = refusal.value.reasons
    assert any(r.startswith(prefix) and fragment in r for r in reasons), reasons


def test_the_sdk_seals_and_unseals_offline(tmp_path: Path):
    from commonground.client import Client
    source = _write_csv(tmp_path / "in.csv", ROWS)
    report = Client.seal(source, tmp_path / "out.parquet", SCHEMA, SECRET.decode(), collaboration="syrup-2025")
    assert report["rows"] == 3 and report["sealed"] == ["name"]
    table = pq.read_table(tmp_path / "out.parquet").to_pydict()
    result = {"columns": ["name", "segment"], "rows": [[table["name"][0], "gold"]], "governed": False}
    assert Client.unseal(result, SCHEMA, SECRET)["rows"] == [["Ann Example", "gold"]]
    Client.unseal(tmp_path / "out.parquet", SCHEMA, SECRET, dest=tmp_path / "back.parquet")
    assert pq.read_table(tmp_path / "back.parquet").column("name").to_pylist()[0] == "Ann Example"
