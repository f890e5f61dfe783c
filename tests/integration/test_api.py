"""The HTTP API: bearer tokens, object-level authorisation (404, never 403), uploads, witnesses."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from commonground.api.app import TREE_HEAD_HEADER, create_app
from commonground.services import audit as audit_svc
from commonground.services import parties as party_svc

from .data import PURCHASES_SCHEMA, agreement, write_purchases


class FixedClock:
    def __init__(self) -> None:
        self.moment = dt.datetime.now(dt.timezone.utc)

    def now(self) -> dt.datetime:
        return self.moment


@pytest.fixture
def api(make_deps, tmp_path, monkeypatch):
    monkeypatch.setenv("COMMONGROUND_MAX_UPLOAD_BYTES", "200000")
    clock = FixedClock()
    deps = make_deps(clock)
    tokens = {}
    for name in ("retailer", "brand", "outsider"):
        party_svc.add_party(deps, name)
        tokens[name] = party_svc.create_token(deps, name, ttl_days=1)[1]
    return TestClient(create_app(deps)), tokens, deps, clock, tmp_path


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def upload(client, token, tmp_path, name="purchases"):
    data, _ = write_purchases(tmp_path / "in")
    with open(data, "rb") as f:
        return client.post(f"/v1/datasets/{name}", headers=auth(token),
                           files={"file": ("purchases.csv", f, "text/csv")},
                           data={"schema": json.dumps(PURCHASES_SCHEMA)})


def test_bad_tokens_are_401(api):
    client, tokens, deps, clock, _ = api
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers=auth("cg_forged")).status_code == 401
    assert client.get("/v1/me", headers=auth(tokens["brand"])).json()["name"] == "brand"
    clock.moment += dt.timedelta(days=2)  # tokens were made with a one-day lifetime
    response = client.get("/v1/me", headers=auth(tokens["brand"]))
    assert response.status_code == 401 and "expired" in response.json()["message"]


def test_upload_list_show_and_isolation(api):
    client, tokens, *_ , tmp_path = api
    response = upload(client, tokens["retailer"], tmp_path)
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 120
    assert [d["dataset"] for d in client.get("/v1/datasets", headers=auth(tokens["retailer"])).json()] == ["retailer.purchases"]
    assert client.get("/v1/datasets", headers=auth(tokens["brand"])).json() == []
    existing = client.get("/v1/datasets/retailer/purchases", headers=auth(tokens["brand"]))
    missing = client.get("/v1/datasets/retailer/nothing", headers=auth(tokens["brand"]))
    assert existing.status_code == missing.status_code == 404
    assert existing.json()["message"].replace("purchases", "X") == missing.json()["message"].replace("nothing", "X")


def test_oversized_upload_is_refused_and_leaves_nothing(api):
    client, tokens, deps, _, tmp_path = api
    big = tmp_path / "big.csv"
    big.write_text("customer_id\n" + "C1\n" * 100_000)
    with open(big, "rb") as f:
        response = client.post("/v1/datasets/big", headers=auth(tokens["retailer"]), files={"file": ("big.csv", f)})
    assert response.status_code == 400 and "limit" in response.json()["message"]
    assert client.get("/v1/datasets", headers=auth(tokens["retailer"])).json() == []
    assert [p for p in (deps.home / "tmp").rglob("*") if p.is_file()] == []


def test_agreement_and_query_over_http(api):
    client, tokens, *_, tmp_path = api
    upload(client, tokens["retailer"], tmp_path)
    made = client.post("/v1/agreements", headers=auth(tokens["retailer"]), json={"document": agreement()})
    assert made.status_code == 201, made.text
    agreement_id = made.json()["id"]
    assert client.get(f"/v1/agreements/{agreement_id}", headers=auth(tokens["outsider"])).status_code == 404
    assert client.post(f"/v1/agreements/{agreement_id}/accept", headers=auth(tokens["outsider"])).status_code == 404
    assert client.post(f"/v1/agreements/{agreement_id}/accept", headers=auth(tokens["brand"])).json()["status"] == "active"
    body = {"sql": "SELECT segment, COUNT(*) AS n FROM retailer.purchases GROUP BY segment ORDER BY segment",
            "purpose": "analytics.reporting"}
    result = client.post("/v1/query", headers=auth(tokens["brand"]), json=body)
    assert result.status_code == 200 and result.json()["rows"] == [["a", 40], ["b", 40], ["c", 40]]
    refused = client.post("/v1/query", headers=auth(tokens["brand"]),
                          json={**body, "sql": "SELECT email FROM retailer.purchases"})
    assert refused.status_code == 403 and refused.json()["error"] == "refused"
    assert client.post("/v1/query", headers=auth(tokens["outsider"]), json=body).status_code == 404


def test_every_response_carries_a_signed_tree_head_a_client_can_witness(api):
    client, tokens, deps, _, tmp_path = api
    first = json.loads(client.get("/v1/me", headers=auth(tokens["brand"])).headers[TREE_HEAD_HEADER])
    upload(client, tokens["retailer"], tmp_path)
    second = json.loads(client.get("/v1/me", headers=auth(tokens["brand"])).headers[TREE_HEAD_HEADER])
    assert second["tree_size"] > first["tree_size"]
    proof = client.get("/v1/audit/consistency", params={"old_size": first["tree_size"]}).json()
    import base64
    audit_svc.check_witness(audit_svc.TreeHead.from_dict(first), audit_svc.TreeHead.from_dict(proof["tree_head"]),
                            [base64.b64decode(p) for p in proof["proof"]])
    forged = dict(first, root_hash=base64.b64encode(b"\x00" * 32).decode())
    with pytest.raises(ValueError):
        audit_svc.check_witness(audit_svc.TreeHead.from_dict(forged), audit_svc.TreeHead.from_dict(proof["tree_head"]),
                                [base64.b64decode(p) for p in proof["proof"]])


def test_openapi_is_served(api):
    client, *_ = api
    assert "/v1/query" in client.get("/openapi.json").json()["paths"]


def test_error_codes_match_the_cli(api):
    client, tokens, *_ = api
    missing = client.get("/v1/datasets/retailer/nothing", headers=auth(tokens["brand"]))
    assert missing.json()["error"] == "not_found"
    bad = client.post("/v1/agreements", headers=auth(tokens["retailer"]), json={"document": {"name": "x"}})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_input" and "missing key" in bad.json()["message"]
