"""API security: object-level 404s on every route with an id, token scopes, sign-in throttling,
response headers. The route test fails when a route with a path parameter is added without a
check here, so a new route cannot skip object-level authorisation unnoticed."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from commonground.api.app import create_app
from commonground.api.security import SignInThrottle
from commonground.services import parties as party_svc

from .data import PURCHASES_SCHEMA, agreement, write_purchases


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world(make_deps, tmp_path):
    """retailer shares purchases with brand (query and offer agreements); carol has an offer and
    a correction request; outsider is a party with no business with any of it."""
    deps = make_deps()
    ticks = Ticks()
    client = TestClient(create_app(deps, SignInThrottle(limit=3, window_s=60, clock=ticks)))
    tokens = {}
    for name in ("retailer", "brand", "outsider"):
        party_svc.add_party(deps, name)
        tokens[name] = party_svc.create_token(deps, name)[1]
    data, _ = write_purchases(tmp_path / "in")
    with open(data, "rb") as f:
        assert client.post("/v1/datasets/purchases", headers=auth(tokens["retailer"]), files={"file": ("p.csv", f)},
                           data={"schema": json.dumps({**PURCHASES_SCHEMA, "consent": "opt_out"})}).status_code == 201
    ids = {}
    for name, mode in (("queries", "join"), ("offers", "offer"), ("rows", "rows")):
        doc = {**agreement(mode=mode, k=5), "name": name}
        if mode != "join":
            doc["access"] = {"mode": mode, "min_group_size": 5}
        ids[name] = client.post("/v1/agreements", headers=auth(tokens["retailer"]), json={"document": doc}).json()["id"]
    client.post(f"/v1/agreements/{ids['offers']}/accept", headers=auth(tokens["brand"]))
    client.post(f"/v1/agreements/{ids['rows']}/accept", headers=auth(tokens["brand"]))
    made = client.post("/v1/exports", headers=auth(tokens["brand"]),
                       json={"dataset": "retailer.purchases", "purpose": "analytics.reporting"})
    assert made.status_code == 201, made.text
    ids["export"] = made.json()["id"]
    assert client.get(f"/v1/exports/{ids['export']}/file", headers=auth(tokens["brand"])).status_code == 200
    code = client.post("/v1/subjects/invite", headers=auth(tokens["retailer"]), json={"subject": "C0001"}).json()["code"]
    tokens["carol"] = client.post("/v1/claims", json={"code": code, "name": "carol"}).json()["token"]
    code = client.post("/v1/subjects/invite", headers=auth(tokens["retailer"]), json={"subject": "C0002"}).json()["code"]
    tokens["dave"] = client.post("/v1/claims", json={"code": code, "name": "dave"}).json()["token"]
    batch = client.post("/v1/offers", headers=auth(tokens["brand"]), json={
        "sql": "SELECT SUM(spend) AS s FROM retailer.purchases", "purpose": "analytics.reporting", "title": "t"}).json()
    ids["batch"] = batch["batch"]
    ids["offer"] = client.get("/v1/offers", headers=auth(tokens["carol"])).json()[0]["id"]
    ids["request"] = client.post("/v1/me/corrections", headers=auth(tokens["carol"]), json={
        "dataset": "retailer.purchases", "column": "zip", "value": "1"}).json()["id"]
    # brand's analysis under a code agreement, waiting for the retailer's review
    doc = {**agreement(k=5), "name": "code", "access": {"mode": "code", "min_group_size": 5}}
    ids["code_agreement"] = client.post("/v1/agreements", headers=auth(tokens["retailer"]), json={"document": doc}).json()["id"]
    client.post(f"/v1/agreements/{ids['code_agreement']}/accept", headers=auth(tokens["brand"]))
    ids["code"] = client.post("/v1/code", headers=auth(tokens["brand"]), json={
        "source": "GROUP_BY = ['segment']\ndef analysis(tables):\n    return None\n", "purpose": "analytics.reporting",
        "agreements": [ids["code_agreement"]], "title": "t"}).json()["id"]
    # rights on the purchases, a data product shown only to brand, and brand's request for a
    # purpose the listing does not grant at once (so it waits for the retailer's review)
    assert client.put("/v1/datasets/retailer/purchases/rights", headers=auth(tokens["retailer"]),
                      json={"legal_basis": "contract", "purposes": ["analytics"]}).status_code == 200
    listing = {"name": "for-brand", "valid_until": "2099-12-31", "visibility": ["brand"], "purposes": ["analytics.reporting"],
               "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}},
               "access": {"mode": "aggregate", "min_group_size": 5}}
    ids["listing"] = client.post("/v1/listings", headers=auth(tokens["retailer"]), json={"document": listing}).json()["id"]
    ids["listing_request"] = client.post(f"/v1/listings/{ids['listing']}/requests", headers=auth(tokens["brand"]),
                                         json={"purpose": "analytics"}).json()["id"]
    # the retailer asks its customers a survey; carol answers it and opens a thread about her offer
    survey = {"name": "visit", "title": "How was it?", "purposes": ["analytics.reporting"],
              "questions": [{"id": "happy", "text": "Happy?", "type": "yes_no"}]}
    ids["survey"] = client.post("/v1/surveys", headers=auth(tokens["retailer"]), json={"document": survey}).json()["id"]
    assert client.post(f"/v1/surveys/{ids['survey']}/answer", headers=auth(tokens["carol"]),
                       json={"answers": {"happy": "yes"}}).status_code == 201
    ids["thread"] = client.post("/v1/threads", headers=auth(tokens["carol"]), json={
        "about": "offer", "ref": ids["offer"], "message": "why?"}).json()["id"]
    return client, tokens, ids, ticks, deps


# Each route with a path parameter: the request an outsider makes for someone else's object.
OUTSIDER_404 = {
    ("GET", "/v1/datasets/{owner}/{name}"): lambda ids: ("GET", "/v1/datasets/retailer/purchases", None),
    ("GET", "/v1/agreements/{agreement_id}"): lambda ids: ("GET", f"/v1/agreements/{ids['queries']}", None),
    ("POST", "/v1/agreements/{agreement_id}/accept"): lambda ids: ("POST", f"/v1/agreements/{ids['queries']}/accept", None),
    ("GET", "/v1/agreements/{agreement_id}/budget"): lambda ids: ("GET", f"/v1/agreements/{ids['queries']}/budget", None),
    ("POST", "/v1/agreements/{agreement_id}/revoke"): lambda ids: ("POST", f"/v1/agreements/{ids['offers']}/revoke", None),
    ("GET", "/v1/requests/{request_id}"): lambda ids: ("GET", f"/v1/requests/{ids['request']}", None),
    ("POST", "/v1/requests/{request_id}/answer"): lambda ids: (
        "POST", f"/v1/requests/{ids['request']}/answer", {"accept": True, "message": "x"}),
    ("GET", "/v1/offers/{offer_id}"): lambda ids: ("GET", f"/v1/offers/{ids['offer']}", None),
    ("POST", "/v1/offers/{offer_id}/decision"): lambda ids: ("POST", f"/v1/offers/{ids['offer']}/decision", {"accept": True}),
    ("GET", "/v1/offer-batches/{batch_id}"): lambda ids: ("GET", f"/v1/offer-batches/{ids['batch']}", None),
    ("GET", "/v1/exports/{export_id}/file"): lambda ids: ("GET", f"/v1/exports/{ids['export']}/file", None),
    ("GET", "/v1/datasets/{owner}/{name}/rights"): lambda ids: ("GET", "/v1/datasets/retailer/purchases/rights", None),
    ("PUT", "/v1/datasets/{owner}/{name}/rights"): lambda ids: (
        "PUT", "/v1/datasets/retailer/purchases/rights", {"legal_basis": "contract", "purposes": ["personalize"]}),
    ("GET", "/v1/listings/{listing_id}"): lambda ids: ("GET", f"/v1/listings/{ids['listing']}", None),
    ("POST", "/v1/listings/{listing_id}/withdraw"): lambda ids: ("POST", f"/v1/listings/{ids['listing']}/withdraw", None),
    ("POST", "/v1/listings/{listing_id}/requests"): lambda ids: (
        "POST", f"/v1/listings/{ids['listing']}/requests", {"purpose": "analytics.reporting"}),
    ("POST", "/v1/listing-requests/{request_id}/decision"): lambda ids: (
        "POST", f"/v1/listing-requests/{ids['listing_request']}/decision", {"approve": True}),
    ("GET", "/v1/surveys/{survey_id}"): lambda ids: ("GET", f"/v1/surveys/{ids['survey']}", None),
    ("POST", "/v1/surveys/{survey_id}/answer"): lambda ids: (
        "POST", f"/v1/surveys/{ids['survey']}/answer", {"answers": {"happy": "no"}}),
    ("PUT", "/v1/surveys/{survey_id}/sharing"): lambda ids: ("PUT", f"/v1/surveys/{ids['survey']}/sharing", {"share": []}),
    ("GET", "/v1/surveys/{survey_id}/results"): lambda ids: (
        "GET", f"/v1/surveys/{ids['survey']}/results?purpose=analytics.reporting", None),
    ("GET", "/v1/threads/{thread_id}"): lambda ids: ("GET", f"/v1/threads/{ids['thread']}", None),
    ("POST", "/v1/threads/{thread_id}/messages"): lambda ids: ("POST", f"/v1/threads/{ids['thread']}/messages",
                                                               {"message": "x"}),
    ("POST", "/v1/threads/{thread_id}/close"): lambda ids: ("POST", f"/v1/threads/{ids['thread']}/close", None),
    ("GET", "/v1/code/{item_id}"): lambda ids: ("GET", f"/v1/code/{ids['code']}", None),
    ("GET", "/v1/code/{item_id}/review"): lambda ids: ("GET", f"/v1/code/{ids['code']}/review", None),
    ("POST", "/v1/code/{item_id}/approve"): lambda ids: ("POST", f"/v1/code/{ids['code']}/approve", {"reason": "x"}),
    ("POST", "/v1/code/{item_id}/reject"): lambda ids: ("POST", f"/v1/code/{ids['code']}/reject", {"reason": "x"}),
    ("POST", "/v1/code/{item_id}/run"): lambda ids: ("POST", f"/v1/code/{ids['code']}/run", None),
    ("POST", "/v1/code/{item_id}/release"): lambda ids: ("POST", f"/v1/code/{ids['code']}/release", None),
    # Delta Sharing: brand's share is its rows agreement, named "rows"; the provider sees no share either.
    **{(method, "/delta-sharing/shares/{share}" + tail): (
        lambda ids, method=method, tail=tail: (method, "/delta-sharing/shares/rows" + tail.replace(
            "{schema}", "retailer").replace("{table}", "purchases"), {} if method == "POST" else None))
       for method, tail in (("GET", ""), ("GET", "/schemas"), ("GET", "/schemas/{schema}/tables"), ("GET", "/all-tables"),
                            ("GET", "/schemas/{schema}/tables/{table}/version"),
                            ("HEAD", "/schemas/{schema}/tables/{table}/version"),
                            ("GET", "/schemas/{schema}/tables/{table}/metadata"),
                            ("POST", "/schemas/{schema}/tables/{table}/query"))},
}
# Routes whose parameter is not someone's object, and why.
NOT_AN_OBJECT = {
    ("POST", "/v1/datasets/{name}"): "the caller's own namespace: the upload becomes caller.name",
    ("POST", "/v1/datasets/{name}/purge"): "the caller's own namespace: only caller.name is purged",
    ("GET", "/v1/audit/proof/{index}"): "the ledger is public to every party (no values, no subject ids)",
}


def test_every_route_with_an_id_answers_404_to_another_party(world):
    client, tokens, ids, _, _ = world
    # From the OpenAPI document: this FastAPI keeps included routers' routes out of `app.routes`.
    routes = {(m.upper(), path) for path, ops in client.app.openapi()["paths"].items() if "{" in path for m in ops}
    assert len(routes) >= 12
    unchecked = routes - set(OUTSIDER_404) - set(NOT_AN_OBJECT)
    assert not unchecked, f"routes with an id but no object-level check in this test: {sorted(unchecked)}"
    for route, make in OUTSIDER_404.items():
        method, path, body = make(ids)
        # brand is a party to the agreements and the offers' recipient; carol made the request and
        # holds the offer; dave is another of the retailer's customers
        strangers = {"agreements": ("outsider", "carol"), "datasets": ("outsider", "carol"),
                     "requests": ("outsider", "brand", "dave"),
                     "exports": ("outsider", "carol", "retailer"),
                     "shares": ("outsider", "carol", "retailer"),
                     # a listing shown only to brand, and brand's request on it: only the retailer decides
                     "listing-requests": ("outsider", "dave", "brand"),
                     # dave is asked the retailer's survey too (so he may see it), but not its results
                     "surveys": ("outsider", "brand") + (("dave",) if path.endswith("/results") else ()),
                     "threads": ("outsider", "dave", "brand"),
                     # brand's analysis: only brand and the retailer (its reviewer) know it exists
                     "code": ("outsider", "dave", "carol")}.get(path.split("/")[2], ("outsider", "dave"))
        for party in strangers:
            response = client.request(method, path, headers=auth(tokens[party]), json=body)
            assert response.status_code == 404, (route, party, response.status_code, response.text)
    # brand itself reads its share (so the 404s above are about who asks, not a wrong name)
    assert client.get("/delta-sharing/shares/rows/schemas/retailer/tables", headers=auth(tokens["brand"])).status_code == 200
    # and nothing changed: the agreement the outsider tried to revoke is still active
    assert client.get(f"/v1/agreements/{ids['offers']}", headers=auth(tokens["brand"])).json()["status"] == "active"
    assert client.get(f"/v1/listings/{ids['listing']}", headers=auth(tokens["brand"])).json()["status"] == "published"
    assert client.get("/v1/listing-requests", headers=auth(tokens["brand"])).json()["mine"][0]["status"] == "pending"


def test_token_scopes(world):
    client, _, ids, _, deps = world
    read = party_svc.create_token(deps, "brand", scope="read")[1]
    query = party_svc.create_token(deps, "brand", scope="query")[1]
    sql = {"sql": "SELECT segment, COUNT(*) AS n FROM retailer.purchases GROUP BY segment", "purpose": "analytics.reporting"}
    assert client.get("/v1/datasets", headers=auth(read)).status_code == 200
    refused = client.post("/v1/query", headers=auth(read), json=sql)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden" and "needs query" in refused.json()["message"]
    assert client.post("/v1/query", headers=auth(query), json=sql).status_code in (200, 403)
    assert client.post("/v1/query", headers=auth(query), json=sql).json().get("error") != "forbidden"
    export = client.post("/v1/exports", headers=auth(read), json={"dataset": "retailer.purchases", "purpose": "analytics.reporting"})
    assert export.status_code == 403 and export.json()["error"] == "forbidden"  # an export is a computation
    code_run = client.post(f"/v1/code/{ids['code']}/run", headers=auth(read))  # so is running an analysis
    assert code_run.status_code == 403 and code_run.json()["error"] == "forbidden"
    pending = client.post(f"/v1/code/{ids['code']}/run", headers=auth(query))  # allowed to try: refused as unreviewed
    assert pending.status_code == 403 and pending.json()["error"] == "refused"
    proposal = client.post("/v1/agreements", headers=auth(query), json={"document": agreement()})
    assert proposal.status_code == 403 and proposal.json()["error"] == "forbidden"
    with pytest.raises(Exception, match="unknown token scope"):
        party_svc.create_token(deps, "brand", scope="root")
    assert [t.scope.value for t in party_svc.list_tokens(deps, "brand")] == ["admin", "read", "query"]


def test_failed_sign_ins_are_throttled_per_client(world):
    client, tokens, _, ticks, _ = world
    for _ in range(3):
        assert client.get("/v1/me", headers=auth("cg_wrong")).status_code == 401
    blocked = client.get("/v1/me", headers=auth(tokens["brand"]))  # even a good token, from this client, waits
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert client.get("/v1/me").status_code == 429
    ticks.now += 61
    assert client.get("/v1/me", headers=auth(tokens["brand"])).status_code == 200
    assert client.get("/v1/me").status_code == 401  # no token is not a failed sign-in ...
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me").status_code == 401  # ... so it never blocks


def test_security_headers_and_validation_errors(world):
    client, tokens, _, _, _ = world
    response = client.get("/v1/me", headers=auth(tokens["brand"]))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    bad = client.post("/v1/query", headers=auth(tokens["brand"]), json={"sql": "SELECT 1"})
    assert bad.status_code == 422 and bad.json() == {"error": "bad_input", "message": "purpose: Field required"}
    assert "default-src 'none'" not in client.get("/docs").headers.get("Content-Security-Policy", "")
