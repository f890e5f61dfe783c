"""Scenario: "why am I seeing this?", over the HTTP API, on SQLite and PostgreSQL.

A brand recommends products to a retailer's customers from their purchases, without seeing
any customer's purchases. Carol, a customer, claims her data with a code from the retailer,
sees the recommendation and asks why: she gets the exact computation, the fields, and the
very rows it was computed from. Her receipts list every computation that read her rows, and
stop listing them once she withdraws. She asks for a correction, then for erasure.
"""

from __future__ import annotations

import json

import duckdb
import pytest
from fastapi.testclient import TestClient

from commonground import bootstrap
from commonground.adapters.subject_data import members_path
from commonground.api.app import create_app
from commonground.services import datasets as dataset_svc
from commonground.services import parties as party_svc

OFFER_SQL = ("SELECT 'trail running shoes' AS recommendation, COUNT(*) AS outdoor_purchases, "
             "MAX(product) AS latest_product FROM retailer.purchases WHERE category = 'outdoor'")
QUERY = {"sql": "SELECT category, COUNT(*) AS n FROM retailer.purchases GROUP BY category", "purpose": "analytics.reporting"}
SCHEMA = {"consent": "opt_out", "consent_purposes": ["analytics.reporting"], "columns": {
    "customer_id": {"type": "string", "role": "subject_id"}, "email": {"type": "string", "role": "identifier"},
    "category": {"type": "string"}, "product": {"type": "string"}, "spend": {"type": "double"}}}
CATEGORIES = ["outdoor", "kitchen", "books"]


def _purchases() -> list[tuple[str, str, str, str, float]]:
    rows = []
    for i in range(30):
        for j in range(4):
            category = CATEGORIES[(i + j) % 3]
            rows.append((f"C{i:04d}", f"c{i}@example.org", category, f"{category}-item-{(i * j) % 5}", 10.0 + j))
    return rows


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def shop(make_deps, tmp_path):
    deps = make_deps()
    tokens = {}
    for name in ("retailer", "brand", "outsider"):
        party_svc.add_party(deps, name)
        tokens[name] = party_svc.create_token(deps, name)[1]
    client = TestClient(create_app(deps))
    csv = "customer_id,email,category,product,spend\n" + "".join(",".join(map(str, r)) + "\n" for r in _purchases())
    response = client.post("/v1/datasets/purchases", headers=auth(tokens["retailer"]),
                           files={"file": ("purchases.csv", csv.encode(), "text/csv")}, data={"schema": json.dumps(SCHEMA)})
    assert response.status_code == 201, response.text
    fields = {"customer_id": "hash", "email": "drop", "category": "raw", "product": "raw", "spend": "raw"}
    for name, mode, purpose in (("recommendations", "offer", "marketing.advertising.first_party.targeted"),
                                ("insights", "aggregate", "analytics.reporting")):
        doc = {"name": name, "provider": "retailer", "recipients": ["brand"], "purposes": [purpose],
               "valid_until": "2099-12-31", "datasets": {"retailer.purchases": {"fields": fields}},
               "access": {"mode": mode, "min_group_size": 3}}
        made = client.post("/v1/agreements", headers=auth(tokens["retailer"]), json={"document": doc})
        assert made.status_code == 201, made.text
        assert client.post(f"/v1/agreements/{made.json()['id']}/accept", headers=auth(tokens["brand"])).status_code == 200
    code = client.post("/v1/subjects/invite", headers=auth(tokens["retailer"]), json={"subject": "C0001"}).json()["code"]
    signed_up = client.post("/v1/claims", json={"code": code, "name": "carol"})
    assert signed_up.status_code == 201, signed_up.text
    tokens["carol"] = signed_up.json()["token"]
    assert signed_up.json()["links"][0]["controller"] == "retailer"
    assert client.post("/v1/claims", json={"code": code, "name": "mallory"}).status_code == 400  # spent
    return client, tokens, deps


def test_why_am_i_seeing_this(shop):
    client, tokens, _ = shop
    carol = auth(tokens["carol"])
    assert client.post("/v1/query", headers=auth(tokens["brand"]), json=QUERY).status_code == 200
    made = client.post("/v1/offers", headers=auth(tokens["brand"]), json={
        "sql": OFFER_SQL, "purpose": "marketing.advertising.first_party.targeted", "title": "Picked for you"})
    assert made.status_code == 201, made.text
    mine = [r for r in _purchases() if r[0] == "C0001"]
    outdoor = [r for r in mine if r[2] == "outdoor"]
    assert made.json()["offers"] == len({r[0] for r in _purchases() if r[2] == "outdoor"})

    inbox = client.get("/v1/offers", headers=carol).json()
    assert len(inbox) == 1 and inbox[0]["terms"]["recommendation"] == "trail running shoes"
    assert inbox[0]["terms"]["outdoor_purchases"] == len(outdoor)
    why = client.get(f"/v1/offers/{inbox[0]['id']}", headers=carol).json()
    assert why["from"] == "brand" and why["purpose"] == "marketing.advertising.first_party.targeted"
    assert why["computation"] == OFFER_SQL and why["fields_used"] == ["category", "product"]
    # The exact answer: the rows it was computed from, no more (her kitchen and books rows are not there).
    assert sorted((v["category"], v["product"]) for v in why["your_values"]) == sorted((r[2], r[3]) for r in outdoor)

    # The brand sees only the decision; an outsider sees nothing.
    assert set(client.get(f"/v1/offers/{inbox[0]['id']}", headers=auth(tokens["brand"])).json()) == {
        "id", "batch", "title", "status", "decided_at", "released"}
    assert client.get(f"/v1/offers/{inbox[0]['id']}", headers=auth(tokens["outsider"])).status_code == 404

    # Receipts: the brand's query and the offer, with agreement and fields.
    receipts = client.get("/v1/me/receipts", headers=carol).json()
    assert [r["kind"] for r in receipts] == ["offer", "query"]
    assert receipts[1]["party"] == "brand" and receipts[1]["purpose"] == "analytics.reporting"
    assert receipts[1]["fields"] == ["category"] and receipts[1]["agreements"]
    proof = client.get(f"/v1/audit/proof/{receipts[1]['ledger_index']}", headers=carol)
    assert proof.status_code == 200  # each receipt can be proven to be on the ledger

    # Carol withdraws analytics: the next query leaves her out, and her receipts say so.
    consent = client.put("/v1/me/consents", headers=carol, json={
        "dataset": "retailer.purchases", "purpose": "analytics.reporting", "status": "withdrawn"}).json()
    assert [(c["purpose"], c["status"], c["in_use"]) for c in consent] == [("analytics.reporting", "withdrawn", False)]
    # The brand's same query would now differ from its first by Carol alone: refused as differencing
    # (policy/differencing.py), so nothing of hers is computed for it and no receipt is added.
    refused = client.post("/v1/query", headers=auth(tokens["brand"]), json=QUERY)
    assert refused.status_code == 403 and refused.json()["reasons"][0].startswith("differencing:")
    assert [r["kind"] for r in client.get("/v1/me/receipts", headers=carol).json()] == ["offer", "query"]
    # ... and when she grants it again, the next one is hers again.
    client.put("/v1/me/consents", headers=carol, json={
        "dataset": "retailer.purchases", "purpose": "analytics.reporting", "status": "granted"})
    assert client.post("/v1/query", headers=auth(tokens["brand"]), json=QUERY).status_code == 200
    assert [r["kind"] for r in client.get("/v1/me/receipts", headers=carol).json()] == ["query", "offer", "query"]


def _derived_rows_of(deps, subject: str) -> int:
    return sum(duckdb.sql(f"SELECT count(*) FROM read_parquet('{base}') WHERE customer_id = '{subject}'").fetchall()[0][0]
               for base in (deps.home / "derived").rglob("*.parquet"))


def test_access_correction_and_erasure(shop):
    client, tokens, deps = shop
    carol, retailer = auth(tokens["carol"]), auth(tokens["retailer"])
    export = client.get("/v1/me/export", headers=carol).json()
    assert export["links"][0]["subject"] == "C0001"
    (held,) = export["data"]
    assert held["dataset"] == "retailer.purchases" and len(held["rows"]) == 4
    assert {r["email"] for r in held["rows"]} == {"c1@example.org"}

    asked = client.post("/v1/me/corrections", headers=carol, json={
        "dataset": "retailer.purchases", "column": "email", "value": "carol@example.org", "comment": "I moved"})
    assert asked.status_code == 201 and asked.json()["current"] == ["c1@example.org"]
    addressed = client.get("/v1/requests?open_only=true", headers=retailer).json()
    assert [(r["kind"], r["subject"], r["proposed"]) for r in addressed] == [("correction", "C0001", "carol@example.org")]
    assert client.get(f"/v1/requests/{asked.json()['id']}", headers=auth(tokens["brand"])).status_code == 404
    answered = client.post(f"/v1/requests/{asked.json()['id']}/answer", headers=retailer,
                           json={"accept": True, "message": "Updated in the next upload."})
    assert answered.json()["status"] == "accepted"
    assert client.post(f"/v1/requests/{asked.json()['id']}/answer", headers=retailer,
                       json={"accept": False, "message": "again"}).status_code == 409
    assert client.get("/v1/requests", headers=carol).json()[0]["answer"] == "Updated in the next upload."

    assert client.post("/v1/query", headers=auth(tokens["brand"]), json=QUERY).status_code == 200
    assert _derived_rows_of(deps, "C0001") == 4  # the consent base: a filtered copy of the rows
    erased = client.post("/v1/me/erasure", headers=carol, json={"controller": "retailer", "reason": "leaving"})
    assert erased.status_code == 201, erased.text
    assert [(v["dataset"], v["version"], v["rows_removed"]) for v in erased.json()["versions"]] == [
        ("retailer.purchases", 2, 4)]
    assert "previous_file" not in erased.json()["versions"][0]  # the store's paths stay with the controller
    assert client.get("/v1/me/export", headers=carol).json()["data"] == []
    # No derived file (the consent base the brand's query built) keeps her rows either.
    assert _derived_rows_of(deps, "C0001") == 0
    shown = client.get("/v1/datasets/retailer/purchases", headers=retailer).json()
    assert shown["version"] == 2 and shown["rows"] == len(_purchases()) - 4
    assert client.post("/v1/me/erasure", headers=auth(tokens["brand"]), json={"controller": "retailer"}).status_code == 400

    # The older version still holds her rows on disk until the controller purges it; after that
    # only who was in it remains (for receipts), and a second purge finds nothing to do.
    before = [r["ledger_index"] for r in client.get("/v1/me/receipts", headers=carol).json()]
    with deps.store.read() as conn:
        (old,) = [v for v in deps.store.versions(conn, "retailer", "purchases") if v.version == 1]
    data = deps.home / old.path
    assert data.exists()
    assert client.post("/v1/datasets/purchases/purge", headers=auth(tokens["brand"])).status_code == 404
    purged = client.post("/v1/datasets/purchases/purge", headers=retailer).json()
    assert purged["purged"] == [1] and purged["kept"] == 2 and not data.exists()
    members = duckdb.sql(f"SELECT * FROM read_parquet('{members_path(data)}')").fetchall()
    assert ("C0001",) in members and all(len(row) == 1 for row in members)  # subject ids, nothing else
    deps.caches.clear()  # receipts are recomputed from the members file, not a cached answer
    assert [r["ledger_index"] for r in client.get("/v1/me/receipts", headers=carol).json()] == before
    assert bootstrap.sweep(deps) == [] and members_path(data).exists()
    assert dataset_svc.purge(deps, "retailer", "purchases")["purged"] == []
    with deps.store.read() as conn:
        log = [json.loads(text) for _, _, text in deps.store.entries(conn, start=0)]
    assert [e["versions"] for e in log if e["event"] == "dataset.versions_purged"] == [[{"version": 1, "sha256": old.sha256}]]


def test_claim_codes_are_one_time_and_only_for_individuals(shop):
    client, tokens, _ = shop
    assert client.post("/v1/subjects/invite", headers=auth(tokens["carol"]), json={"subject": "x"}).status_code == 400
    # A subject id already claimed cannot be invited again.
    assert client.post("/v1/subjects/invite", headers=auth(tokens["retailer"]), json={"subject": "C0001"}).status_code == 409
    code = client.post("/v1/subjects/invite", headers=auth(tokens["retailer"]), json={"subject": "C0002"}).json()["code"]
    assert client.post("/v1/me/claims", headers=auth(tokens["brand"]), json={"code": code}).status_code == 400
    assert client.post("/v1/claims", json={"code": code + "x", "name": "dave"}).status_code == 400
    assert client.post("/v1/claims", json={"code": code, "name": "carol"}).status_code == 409  # name taken
    assert client.post("/v1/claims", json={"code": code, "name": "dave"}).status_code == 201  # still unspent
    assert client.get("/v1/me/receipts", headers=auth(tokens["retailer"])).status_code == 400
