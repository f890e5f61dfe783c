"""PII scan and standard-code curation, end to end: `dataset scan`, warnings on `dataset add`,
curated versions with their report on the ledger and in `dataset show`."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import duckdb
import pytest
import yaml

from commonground.adapters.pii_scan import scan_file
from commonground.domain.pii import luhn_valid

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult.csv"


def _card(rng: random.Random) -> str:
    body = rng.choice(["4", "51", "37", "6011"])
    body += "".join(rng.choice("0123456789") for _ in range(15 - len(body)))
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


def _iban(rng: random.Random) -> str:
    bban = "37040044" + "".join(rng.choice("0123456789") for _ in range(10))
    check = 98 - int("".join(str(int(c, 36)) for c in bban + "DE00")) % 97
    return f"DE{check:02d}{bban}"


def _not_luhn(rng: random.Random) -> str:
    while True:
        s = "".join(rng.choice("0123456789") for _ in range(16))
        if not luhn_valid(s):
            return s


def write_pii(path: Path, n: int = 600, seed: int = 7) -> Path:
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "contact", "mobile", "card", "account", "ssn", "client_ip", "born", "notes",
                    "order_ref", "bad_iban", "version", "build", "ordered_on", "amount"])
        for i in range(n):
            w.writerow([
                f"C{i:05d}", f"user{i}@example{rng.randint(1, 9)}.com",
                f"+1 415 555 {rng.randint(0, 9999):04d}" if i % 2 else f"+44 20 7946 {rng.randint(0, 999):04d}",
                _card(rng), _iban(rng),
                f"{rng.randint(1, 665):03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}",
                f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                f"{rng.randint(1940, 2004)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                f"write to me at jo{i}@mail.example.org" if i % 10 == 0 else "nothing to add",
                _not_luhn(rng),  # decoy: 16 digits failing Luhn
                "DE00" + "".join(rng.choice("0123456789") for _ in range(18)),  # decoy: bad check digits
                f"{rng.randint(1, 4)}.{rng.randint(0, 30)}.{rng.randint(0, 300)}",  # decoy: versions
                f"10.0.{rng.randint(17000, 22000)}.{rng.randint(1, 999)}",  # decoy: build numbers shaped like IPs
                f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",  # decoy: event dates, not births
                f"{rng.uniform(1, 500):.2f}",
            ])
    return path


EXPECTED = {"contact": ("email", "identifier", "user.contact.email"),
            "mobile": ("phone", "identifier", "user.contact.phone_number"),
            "card": ("payment_card", "identifier", "user.financial.credit_card"),
            "account": ("iban", "identifier", "user.financial.bank_account"),
            "ssn": ("national_id", "identifier", "user.government_id.national_identification_number"),
            "client_ip": ("ip_address", "identifier", "user.device.ip_address"),
            "born": ("date_of_birth", "quasi_identifier", "user.demographic.date_of_birth"),
            "notes": ("email", "identifier", "user.contact.email")}


def test_scan_finds_each_kind_and_no_decoys(tmp_path):
    report = scan_file(write_pii(tmp_path / "people.csv"))
    found = {c.column: c for c in report.flagged}
    assert set(found) == set(EXPECTED), set(found)
    for column, (kind, role, category) in EXPECTED.items():
        finding = found[column]
        assert finding.primary.value == kind, column
        assert finding.proposal()[0].value == role and finding.proposal()[1] == category
    assert found["notes"].free_text and found["notes"].detected[0].full_rows == 60
    assert found["contact"].detected[0].full_rows == 600 and found["contact"].detected[0].exact
    assert report.total_rows == 600
    for decoy in ("order_ref", "bad_iban", "version", "build", "ordered_on", "amount"):
        assert decoy not in found, decoy


def test_scan_cli_writes_a_schema_dataset_add_accepts(cli, tmp_path):
    data = write_pii(tmp_path / "people.csv")
    schema = tmp_path / "suggested.yaml"
    _, report, out = cli("dataset", "scan", data, "--write-schema", schema, "--json")
    assert "user0@example" not in out and "415 555" not in out  # values never printed, only masked examples
    by_column = {c["column"]: c for c in report["columns"]}
    assert by_column["card"]["detected"][0]["example"].count("*") >= 10
    doc = yaml.safe_load(schema.read_text())
    assert doc["columns"]["customer_id"]["role"] == "subject_id"
    assert doc["columns"]["contact"] == {"type": "string", "role": "identifier", "category": "user.contact.email"}
    cli("party", "add", "retailer")
    _, added, err = cli("dataset", "add", "--as", "retailer", "people", data, "--schema", schema, "--json")
    assert added["rows"] == 600 and not added["warnings"]
    _, _, human = cli("dataset", "scan", data)
    assert "personal data" in human and "card" in human


def test_add_warns_about_personal_data_left_as_attributes(cli, tmp_path):
    data = write_pii(tmp_path / "people.csv")
    cli("party", "add", "retailer")
    _, added, _ = cli("dataset", "add", "--as", "retailer", "plain", data, "--json")
    flagged = {w.split("'")[1] for w in added["warnings"] if w.startswith("column ")}
    assert flagged == set(EXPECTED)
    assert not any("user0@example" in w for w in added["warnings"])
    # Declared roles silence the warning for those columns; an attribute that looks like an email does not.
    schema = tmp_path / "s.yaml"
    cols = {c: {"type": "string", "role": "attribute"} for c in
            ["customer_id", "mobile", "card", "account", "ssn", "client_ip", "born", "notes", "order_ref",
             "bad_iban", "version", "build", "ordered_on", "amount"]}
    cols["contact"] = {"type": "string", "role": "attribute"}
    for c in ("mobile", "card", "account", "ssn", "client_ip", "notes"):
        cols[c] = {"type": "string", "role": "identifier"}
    cols["born"] = {"type": "string", "role": "quasi_identifier"}
    schema.write_text(yaml.safe_dump({"columns": cols}))
    _, added, _ = cli("dataset", "add", "--as", "retailer", "declared", data, "--schema", schema, "--json")
    assert [w.split("'")[1] for w in added["warnings"]] == ["contact"]
    assert "declared attribute" in added["warnings"][0]


def _write_codes(path: Path) -> Path:
    rows = [("United States", "2024-01-05", "EUR"), ("germany", "31/12/2023", "euro"), ("UK", "05/01/2024", "US Dollar"),
            ("Atlantis", "garbage", "$"), ("DEU", "Jan 5, 2024", "gbp"), ("Columbia", "", "")]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["country", "paid_on", "currency"])
        for i in range(60):
            w.writerow(rows[i % len(rows)])
    return path


@pytest.mark.parametrize("policy", ["keep", "null", "reject"])
def test_standard_codes_report_unmapped_values(cli, tmp_path, policy):
    data = _write_codes(tmp_path / "codes.csv")
    schema = tmp_path / "s.yaml"
    schema.write_text(yaml.safe_dump({"columns": {
        "country": {"type": "string", "curate": "country_iso2", "on_unmapped": policy},
        "paid_on": {"type": "string" if policy == "keep" else "date", "curate": "date_iso8601", "on_unmapped": policy},
        "currency": {"type": "string", "curate": "currency_iso4217", "on_unmapped": policy}}}))
    cli("party", "add", "retailer")
    if policy == "reject":
        _, _, err = cli("dataset", "add", "--as", "retailer", "codes", data, "--schema", schema, expect=2)
        assert "Atlantis" in err and "did not map" in err
        return
    _, added, _ = cli("dataset", "add", "--as", "retailer", "codes", data, "--schema", schema, "--json")
    warnings = " ".join(added["warnings"])
    assert "'Atlantis' (10 rows" in warnings and "'garbage'" in warnings and "'$'" in warnings
    assert "'Columbia' -> CO" in warnings  # a close misspelling of one name, reported as such
    _, shown, _ = cli("dataset", "show", "--as", "retailer", "codes", "--json")
    report = shown["curation"]
    assert report["country"] == {"step": "country_iso2", "on_unmapped": policy, "distinct_values": 6, "mapped_rows": 50,
                                 "unmapped_rows": 10, "unmapped_distinct": 1, "fuzzy_matches": 1}
    assert report["currency"]["unmapped_rows"] == 10 and report["paid_on"]["unmapped_rows"] == 10
    path = next(p for p in (tmp_path).rglob("*.parquet") if "codes" in str(p))
    rows = duckdb.sql(f"SELECT country, paid_on, currency FROM '{path}'").fetchall()
    countries = {r[0] for r in rows}
    assert countries == ({"US", "DE", "GB", "CO", "Atlantis"} if policy == "keep" else {"US", "DE", "GB", "CO", None})
    dates = {str(r[1]) if r[1] is not None else None for r in rows}
    expected_dates = {"2024-01-05", "2023-12-31", "2024-01-05", None}
    assert dates == (expected_dates | {"garbage"} if policy == "keep" else expected_dates)
    assert {r[2] for r in rows} == ({"EUR", "USD", "GBP", "$", None} if policy == "keep" else {"EUR", "USD", "GBP", None})
    _, _, human = cli("dataset", "show", "--as", "retailer", "codes")
    assert "curation" in human and "country" in human


def test_ledger_has_counts_not_values(make_deps, tmp_path):
    from commonground.services.datasets import add_dataset
    from commonground.services.parties import add_party
    deps = make_deps()
    add_party(deps, "retailer")
    data = _write_codes(tmp_path / "codes.csv")
    doc = {"columns": {"country": {"type": "string", "curate": "country_iso3"}, "paid_on": "string", "currency": "string"}}
    version, warnings = add_dataset(deps, "retailer", "codes", data, doc)
    assert any("Atlantis" in w for w in warnings)
    with deps.store.read() as conn:
        entries = [json.loads(e) for _, _, e in deps.store.entries(conn)]
    added = next(e for e in entries if e["event"] == "dataset.version_added")
    assert added["curation"]["country"]["unmapped_rows"] == 10
    assert "Atlantis" not in json.dumps(entries)


@pytest.mark.skipif(not ADULT.is_file(), reason="../shared/data/adult.csv is absent")
def test_adult_has_no_direct_identifiers_and_countries_map(cli, tmp_path):
    report = scan_file(ADULT)
    assert not report.flagged and report.subject is None  # no direct identifiers, and no person id either
    schema = tmp_path / "adult.yaml"
    doc = report.suggested_schema()
    roles = {name: column["role"] for name, column in doc["columns"].items() if column["role"] != "attribute"}
    # the reference quasi-identifiers of the k = 5 export (tests/integration/test_exports.py), by name
    assert roles == {**dict.fromkeys(["age", "education", "marital_status", "race", "gender", "native_country",
                                      "occupation"], "quasi_identifier"), "income": "sensitive"}
    assert doc["columns"]["age"] == {"type": "integer", "role": "quasi_identifier", "category": "user.demographic.age_range"}
    _, _, human = cli("dataset", "scan", ADULT, "--sample-only")
    assert "no direct identifiers found" in human and "no column looks like a person id" in human
    doc["columns"]["native_country"] = {"type": "string", "curate": "country_iso2"}
    schema.write_text(yaml.safe_dump(doc))
    cli("party", "add", "census")
    _, added, _ = cli("dataset", "add", "--as", "census", "adult", ADULT, "--schema", schema, "--json")
    unmapped = next(w for w in added["warnings"] if "native_country" in w)
    assert "'?'" in unmapped and "'United-States'" not in unmapped
    _, shown, _ = cli("dataset", "show", "--as", "census", "adult", "--json")
    assert shown["curation"]["native_country"]["mapped_rows"] > 0.9 * shown["rows"]
