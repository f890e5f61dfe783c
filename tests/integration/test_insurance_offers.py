"""Scenario: usage-based insurance, end to end, through the CLI, on SQLite and PostgreSQL.

A telematics company holds drivers' trips. An insurer may not see anyone's driving, but may
offer each driver a premium computed from their own trips. Each driver sees the premium, the
computation, the fields and their own values used, and accepts or declines; acceptance grants
the consent the insurer needs to underwrite. The insurer sees only decisions and what each
driver chose to release.
"""

from __future__ import annotations

import pytest
import yaml

from .data import write_yaml

DRIVERS = 12
SQL = "SELECT ROUND(300 + 50 * AVG(hard_brakes) + 0.5 * SUM(night_km), 2) AS premium FROM telematics.trips"


def _trips(i: int) -> list[tuple[int, int]]:
    """(hard_brakes, night_km) per trip of driver i."""
    return [((i + t) % 4, (i * 3 + t) % 10) for t in range(3 + i % 3)]


def _premium(i: int) -> float:
    trips = _trips(i)
    return round(300 + 50 * sum(b for b, _ in trips) / len(trips) + 0.5 * sum(n for _, n in trips), 2)


@pytest.fixture
def insured(cli, tmp_path):
    cli("party", "add", "telematics")
    cli("party", "add", "insurer")
    for purpose in ("insurance.quote", "insurance.underwriting"):
        cli("vocabulary", "add", "--as", "telematics", "--kind", "purpose", purpose)
    lines = ["driver_id,email,trip_date,km,hard_brakes,night_km"]
    for i in range(DRIVERS):
        for t, (brakes, night) in enumerate(_trips(i)):
            lines.append(f"D{i:03d},d{i}@example.org,2026-10-{t + 1:02d},{10 + t},{brakes},{night}")
    (tmp_path / "trips.csv").write_text("\n".join(lines) + "\n")
    write_yaml(tmp_path / "trips.yaml", {"consent": "opt_in", "consent_purposes": ["insurance.underwriting"], "columns": {
        "driver_id": {"type": "string", "role": "subject_id"}, "email": {"type": "string", "role": "identifier"},
        "trip_date": {"type": "date"}, "km": {"type": "double"}, "hard_brakes": {"type": "integer"},
        "night_km": {"type": "double"}}})
    cli("dataset", "add", "--as", "telematics", "trips", tmp_path / "trips.csv", "--schema", tmp_path / "trips.yaml")
    doc = {"name": "pay-as-you-drive", "provider": "telematics", "recipients": ["insurer"],
           "purposes": ["insurance.quote"], "valid_until": "2099-12-31",
           "datasets": {"telematics.trips": {"fields": {"driver_id": "hash", "email": "drop", "trip_date": "raw",
                                                        "km": "raw", "hard_brakes": "raw", "night_km": "raw"}}},
           "access": {"mode": "offer", "min_group_size": 5}}
    made = cli("agreement", "propose", "--as", "telematics", write_yaml(tmp_path / "a.yaml", doc), "--json")[1]
    cli("agreement", "accept", "--as", "insurer", made["id"])
    people = {}
    for name, driver in (("alice", 1), ("bob", 2)):
        code = cli("subject", "invite", "--as", "telematics", "--subject", f"D{driver:03d}", "--json")[1]["code"]
        cli("party", "add", name, "--kind", "individual")
        cli("subject", "claim", code, "--as", name)
        people[name] = driver
    return cli, people


def test_insurance_offer_end_to_end(insured):
    cli, people = insured
    batch = cli("offer", "submit", "--as", "insurer", "--purpose", "insurance.quote", "--title",
                "Your pay-as-you-drive premium", "--needs-consent", "insurance.underwriting", "--json", SQL)[1]
    assert batch["offers"] == DRIVERS and batch["fields"] == ["hard_brakes", "night_km"]

    # The insurer sees counts and opaque ids: no premiums, no drivers.
    batches = cli("offer", "batches", "--as", "insurer", "--json")[1]
    assert [(b["offers"], b["pending"]) for b in batches] == [(DRIVERS, DRIVERS)]
    _, decisions, raw = cli("offer", "decisions", batch["batch"], "--as", "insurer", "--json")
    assert {d["status"] for d in decisions} == {"pending"} and all(d["released"] == {} for d in decisions)
    assert "premium\": " not in raw and "D001" not in raw and str(_premium(1)) not in raw

    # Alice sees her premium, why (computation, fields, her own values), and the purpose.
    inbox = cli("offer", "inbox", "--as", "alice", "--json")[1]
    assert len(inbox) == 1 and inbox[0]["terms"] == {"premium": _premium(1)} and inbox[0]["from"] == "insurer"
    why = cli("offer", "show", inbox[0]["id"], "--as", "alice", "--json")[1]
    assert why["computation"] == SQL and why["purpose"] == "insurance.quote"
    assert why["fields_used"] == ["hard_brakes", "night_km"]
    assert sorted((v["hard_brakes"], v["night_km"]) for v in why["your_values"]) == sorted(
        (b, float(n)) for b, n in _trips(1))
    assert why["needs_consent"] == ["insurance.underwriting"]

    # Alice accepts and releases the premium only; Bob declines.
    cli("offer", "accept", inbox[0]["id"], "--as", "alice", "--release", "premium")
    bob = cli("offer", "inbox", "--as", "bob", "--json")[1][0]
    cli("offer", "accept", bob["id"], "--as", "bob", "--release", "email", expect=2)  # not something the offer used
    cli("offer", "decline", bob["id"], "--as", "bob")
    cli("offer", "accept", bob["id"], "--as", "bob", expect=2)  # decided once

    by_id = {d["id"]: d for d in cli("offer", "decisions", batch["batch"], "--as", "insurer", "--json")[1]}
    assert by_id[inbox[0]["id"]]["status"] == "accepted" and by_id[inbox[0]["id"]]["released"] == {"premium": _premium(1)}
    assert by_id[bob["id"]]["status"] == "declined" and by_id[bob["id"]]["released"] == {}
    assert sum(d["status"] == "pending" for d in by_id.values()) == DRIVERS - 2

    # Acceptance granted the consent the offer needed (source: offer); Bob's stays unset.
    consents = {c["purpose"]: c for c in cli("subject", "consents", "--as", "alice", "--json")[1]}
    assert consents["insurance.underwriting"]["status"] == "granted"
    assert consents["insurance.underwriting"]["source"] == "offer" and consents["insurance.underwriting"]["in_use"]
    assert {c["purpose"]: c["status"] for c in cli("subject", "consents", "--as", "bob", "--json")[1]} == {
        "insurance.underwriting": None}

    # Alice's receipts show the offer: who, why, which agreement and fields.
    receipts = cli("subject", "receipts", "--as", "alice", "--json")[1]
    offer_receipt = next(r for r in receipts if r["kind"] == "offer")
    assert offer_receipt["party"] == "insurer" and offer_receipt["fields"] == ["hard_brakes", "night_km"]

    # Other parties cannot see the offer; the controller cannot either (it is not theirs).
    cli("offer", "show", inbox[0]["id"], "--as", "bob", expect=4)
    cli("offer", "show", inbox[0]["id"], "--as", "telematics", expect=4)
    cli("offer", "accept", inbox[0]["id"], "--as", "bob", expect=4)

    # The ledger has the batch and the decisions, never a driver id or a premium.
    _, _, log = cli("audit", "log", "--json", "--limit", "1000")
    assert "offer.batch_created" in log and "offer.decided" in log
    assert "D001" not in log and str(_premium(1)) not in log
    cli("audit", "verify")


def test_offers_are_refused_when_they_could_single_someone_out(insured):
    cli, _ = insured
    _, refused, _ = cli("offer", "submit", "--as", "insurer", "--purpose", "insurance.quote", "--title", "x", "--json",
                        SQL + " WHERE driver_id = 'D001'", expect=3)
    assert any("identifying column" in r for r in refused["reasons"])
    _, refused, _ = cli("offer", "submit", "--as", "insurer", "--purpose", "insurance.quote", "--title", "x", "--json",
                        SQL + " WHERE km > 13", expect=3)  # only drivers with 5 trips qualify
    assert any("fewer than 5 people qualify" in r for r in refused["reasons"])
    assert cli("offer", "batches", "--as", "insurer", "--json")[1] == []
    # The offer agreement does not allow ordinary queries, and a query agreement would not allow offers.
    _, refused, _ = cli("query", "--as", "insurer", "--purpose", "insurance.quote", "--json",
                        "SELECT COUNT(*) AS n FROM telematics.trips", expect=3)
    assert any("per-subject offers only" in r for r in refused["reasons"])


def test_withdrawn_drivers_get_no_offer(insured, tmp_path):
    cli, _ = insured
    # An opt-in purpose: only drivers who granted it are in the computation.
    cli("vocabulary", "add", "--as", "telematics", "--kind", "purpose", "insurance.renewal")
    schema = yaml.safe_load((tmp_path / "trips.yaml").read_text())
    schema["consent_purposes"] = ["insurance.underwriting", "insurance.renewal"]
    write_yaml(tmp_path / "trips.yaml", schema)
    cli("dataset", "add", "--as", "telematics", "trips", tmp_path / "trips.csv", "--schema", tmp_path / "trips.yaml")
    doc = yaml.safe_load((tmp_path / "a.yaml").read_text())
    doc["name"], doc["purposes"] = "renewals", ["insurance.renewal"]
    made = cli("agreement", "propose", "--as", "telematics", write_yaml(tmp_path / "b.yaml", doc), "--json")[1]
    cli("agreement", "accept", "--as", "insurer", made["id"])
    renewal = ("offer", "submit", "--as", "insurer", "--purpose", "insurance.renewal", "--title", "Renewal", "--json", SQL)
    assert any("fewer than 5" in r for r in cli(*renewal, expect=3)[1]["reasons"])
    for i in range(6):
        cli("consent", "grant", "--as", "telematics", "--dataset", "telematics.trips", "--subject", f"D{i:03d}",
            "--purpose", "insurance.renewal")
    assert cli(*renewal)[1]["offers"] == 6
    assert len(cli("offer", "inbox", "--as", "alice", "--json")[1]) == 1  # the first renewal (driver 1)
    # Alice withdraws herself: the very next batch leaves her out.
    cli("subject", "withdraw", "--as", "alice", "--dataset", "telematics.trips", "--purpose", "insurance.renewal")
    assert cli(*renewal)[1]["offers"] == 5
    assert len(cli("offer", "inbox", "--as", "alice", "--json")[1]) == 1
    assert len(cli("offer", "inbox", "--as", "bob", "--json")[1]) == 2
