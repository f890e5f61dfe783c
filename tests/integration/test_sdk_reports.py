"""The Python SDK end to end (with its ledger witness), and the activity and balance reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from commonground import Client, bootstrap
from commonground.adapters import tables as t
from commonground.api.app import create_app
from commonground.client import ApiError, LedgerRewritten
from commonground.domain.merkle import leaf_hash
from commonground.services import parties as party_svc
from commonground.services import reports as report_svc

from .data import PURCHASES_SCHEMA, agreement, write_brand, write_purchases
from .data import BRAND_SCHEMA


@pytest.fixture
def store(tmp_path, monkeypatch):
    from tests.conftest import use_default_database
    use_default_database(monkeypatch)
    settings = bootstrap.Settings.from_env(tmp_path / "home")
    deps = bootstrap.build(settings)
    bootstrap.init_store(deps)
    tokens = {n: (party_svc.add_party(deps, n), party_svc.create_token(deps, n)[1])[1] for n in ("retailer", "brand")}
    yield settings, deps, tokens, tmp_path
    deps.store.dispose()


def _client(deps, token) -> Client:
    return Client(token=token, http=TestClient(create_app(deps)))


def test_sdk_covers_the_partnership_journey(store):
    _, deps, tokens, tmp_path = store
    retailer, brand = _client(deps, tokens["retailer"]), _client(deps, tokens["brand"])
    data, _ = write_purchases(tmp_path / "in")
    assert retailer.upload("purchases", data, PURCHASES_SCHEMA)["rows"] == 120
    bdata, _ = write_brand(tmp_path / "in")
    brand.upload("customers", bdata, BRAND_SCHEMA)
    made = retailer.propose(agreement(k=5))
    assert brand.accept(made["id"])["status"] == "active"
    result = brand.query("SELECT b.tier, COUNT(DISTINCT p.customer_id) AS people FROM retailer.purchases p "
                         "JOIN brand.customers b ON p.customer_id = b.customer_id GROUP BY b.tier ORDER BY 1",
                         "analytics.reporting")
    assert result["rows"] == [["gold", 20], ["silver", 20]]
    with pytest.raises(ApiError) as refused:
        brand.query("SELECT email FROM retailer.purchases", "analytics.reporting")
    assert refused.value.status == 403 and refused.value.body["error"] == "refused"
    assert brand.last_head is not None and brand.last_head["tree_size"] >= 8


def test_sdk_covers_the_individual_journey(store):
    _, deps, tokens, tmp_path = store
    retailer, brand = _client(deps, tokens["retailer"]), _client(deps, tokens["brand"])
    data, _ = write_purchases(tmp_path / "in")
    retailer.upload("purchases", data, {**PURCHASES_SCHEMA, "consent": "opt_out"})
    offer_terms = {**agreement(k=5), "name": "offers", "access": {"mode": "offer", "min_group_size": 5}}
    brand.accept(retailer.propose(offer_terms)["id"])
    person = _client(deps, None)
    person.sign_up(retailer.invite("C0003")["code"], "dana")
    assert person.me()["kind"] == "individual" and person.my_links()[0]["subject"] == "C0003"
    batch = brand.submit_offer("SELECT ROUND(SUM(spend), 2) AS credit FROM retailer.purchases", "analytics.reporting",
                               "Store credit", needs_consent=("marketing.advertising",))
    assert batch["offers"] == 60
    (mine,) = person.offers()
    assert person.offer(mine["id"])["fields_used"] == ["spend"]
    person.decide_offer(mine["id"], accept=True, release=("credit",))
    decisions = {d["id"]: d for d in brand.offer_decisions(batch["batch"])}
    assert decisions[mine["id"]]["released"] == {"credit": mine["terms"]["credit"]}
    assert {c["purpose"]: c["status"] for c in person.my_consents()} == {
        "analytics.reporting": None, "marketing.advertising": "granted"}  # the agreement's purpose, and the offer's
    person.set_consent("retailer.purchases", "marketing.advertising", granted=False)
    assert {c["purpose"]: c["in_use"] for c in person.my_consents()} == {
        "analytics.reporting": True, "marketing.advertising": False}  # opt-out: in use until withdrawn
    assert [r["kind"] for r in person.receipts()] == ["offer"]
    assert len(person.my_data()["data"][0]["rows"]) == 2
    asked = person.request_correction("retailer.purchases", "zip", "10009")
    assert retailer.answer_request(asked["id"], False, "Our records show 10003.")["status"] == "rejected"
    assert person.requests()[0]["answer"] == "Our records show 10003."
    assert person.request_erasure("retailer")["versions"][0]["rows_removed"] == 2
    with pytest.raises(ApiError) as hidden:
        brand.offer(batch["batch"])
    assert hidden.value.status == 404


def test_sdk_covers_exports(store):
    _, deps, tokens, tmp_path = store
    retailer, brand = _client(deps, tokens["retailer"]), _client(deps, tokens["brand"])
    data, _ = write_purchases(tmp_path / "in")
    retailer.upload("purchases", data, PURCHASES_SCHEMA)
    rows_terms = {**agreement(k=5), "name": "rows", "access": {"mode": "rows", "min_group_size": 5}}
    brand.accept(retailer.propose(rows_terms)["id"])
    made = brand.export("retailer.purchases", "analytics.reporting")
    assert made["rows_out"] + made["suppressed_rows"] == 120 and made["smallest_class"] >= 5
    saved = brand.download_export(made["id"], tmp_path / "mine.parquet")
    assert saved.stat().st_size == made["bytes"]
    assert [e["id"] for e in retailer.exports()] == [made["id"]]
    with pytest.raises(ApiError) as hidden:
        retailer.download_export(made["id"], tmp_path / "theirs.parquet")
    assert hidden.value.status == 404


def test_witness_detects_a_rewritten_log(store):
    settings, deps, tokens, _ = store
    brand = _client(deps, tokens["brand"])
    brand.me()
    seen = brand.last_head["tree_size"]
    # The operator rewrites an old entry and its hash, drops the stored tree heads to cover
    # the tracks, then restarts the server, which signs a head over the rewritten log.
    with deps.store.engine.begin() as conn:
        entry = conn.execute(t.ledger_entries.select().where(t.ledger_entries.c.idx == 0)).first().entry
        forged = entry.replace("retailer", "mallory")
        conn.execute(t.ledger_entries.update().where(t.ledger_entries.c.idx == 0)
                     .values(entry=forged, leaf_hash=leaf_hash(forged.encode())))
        conn.execute(t.tree_heads.delete())
    restarted = bootstrap.build(settings)
    party_svc.add_party(restarted, "newcomer")
    brand.http = TestClient(create_app(restarted))
    with pytest.raises(LedgerRewritten):
        brand.me()
    assert brand.last_head["tree_size"] == seen


def test_balance_sheet_shows_the_asymmetry(store):
    _, deps, tokens, tmp_path = store
    retailer, brand = _client(deps, tokens["retailer"]), _client(deps, tokens["brand"])
    data, _ = write_purchases(tmp_path / "in")
    retailer.upload("purchases", data, PURCHASES_SCHEMA)
    brand.accept(retailer.propose(agreement(k=5))["id"])
    brand.query("SELECT segment, COUNT(*) FROM retailer.purchases GROUP BY segment", "analytics.reporting")
    sheet = report_svc.balance(deps, "retailer", "brand")
    out, back = sheet["directions"]
    assert out["from"] == "retailer" and out["queries_run"] == 1 and out["rows_returned"] == 3
    assert out["datasets"]["retailer.purchases"]["fields"] == {
        "customer_id": "hash", "zip": "generalize", "age": "bucket", "segment": "raw", "spend": "raw"}
    assert "user.financial" in out["datasets"]["retailer.purchases"]["categories"]
    assert out["subjects_covered"] == 60 and out["access_modes"] == ["join"]
    assert back["datasets"] == {} and back["queries_run"] == 0
    activity = report_svc.activity(deps, "brand")
    assert activity["queries"]["allowed"] == 1 and activity["events"]["agreement.accepted"] == 1


def test_the_sdk_covers_every_api_route(tmp_path):
    """Each route of the API has a client method that calls it (the Delta Sharing routes are for
    Delta Sharing clients). Fails when a route is added without one."""
    import re

    import commonground.client as client_module

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]*\}", "{}", path)

    source = Path(client_module.__file__).read_text()
    called = {(m, shape(p)) for m, p in re.findall(r'_request\("([A-Z]+)", f?"(/[^"]*)"', source)}
    called |= {("GET", shape(p)) for p in re.findall(r'self\.http\.get\(f?"(/[^"]*)"', source)}
    deps = bootstrap.build(bootstrap.Settings(tmp_path / "home", f"sqlite:///{tmp_path / 'm.db'}"))
    bootstrap.init_store(deps)
    try:
        # From the OpenAPI document: this FastAPI keeps included routers' routes out of `app.routes`.
        routes = {(m.upper(), shape(path)) for path, ops in create_app(deps).openapi()["paths"].items()
                  if path.startswith("/v1/") for m in ops}
    finally:
        deps.store.dispose()
    assert len(routes) >= 30
    missing = sorted(routes - called)
    assert not missing, f"API routes without an SDK method: {missing}"
