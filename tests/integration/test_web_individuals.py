"""The individuals' web pages without a browser: sign-up with a claim code, my data, consents,
receipts, offers, corrections and erasure, and the organisation's side of requests.

One demo store for the module (alice with her pending syrup coupon; bob, a second person at
the retailer, signed up in the fixture). Each test uses its own client, so its own cookies.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from commonground import bootstrap
from commonground.api.app import create_app
from commonground.demo import build_demo
from commonground.services import audit as audit_svc
from commonground.services import offers as offer_svc
from commonground.services import parties as party_svc
from commonground.services import subjects as subject_svc
from commonground.web.app import mount_web

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BOB_SUBJECT = "C00010"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    saved = os.environ.pop("COMMONGROUND_DATABASE_URL", None)
    try:
        deps = bootstrap.build(bootstrap.Settings.from_env(tmp_path_factory.mktemp("web-people") / "home"))
    finally:
        if saved is not None:
            os.environ["COMMONGROUND_DATABASE_URL"] = saved
    report = build_demo(deps, reset=True)
    code, _ = subject_svc.invite(deps, "retailer", BOB_SUBJECT)
    _, bob_token = subject_svc.register(deps, "bob", code)
    tokens = {**report["tokens"], "bob": bob_token}
    app = mount_web(create_app(deps), deps)
    yield {"deps": deps, "app": app, "tokens": tokens, "offer": report["alice_offer"],
           "batch": report["offers"]["batch"]}
    deps.store.dispose()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


def signed_in(store: dict[str, Any], party: str) -> tuple[TestClient, str]:
    """A client logged in through the form as `party`, and its session's CSRF token."""
    c = TestClient(store["app"])
    form = c.get("/web/login")
    response = c.post("/web/login", data={"csrf_token": csrf_of(form.text), "token": store["tokens"][party]},
                      follow_redirects=False)
    assert response.status_code == 303, response.text
    return c, csrf_of(c.get(response.headers["location"]).text)


def tree_size(store: dict[str, Any]) -> int:
    return audit_svc.signed_head(store["deps"]).tree_size


def test_individuals_log_in_to_their_own_pages_and_not_the_organisations(store):
    c, _ = signed_in(store, "alice")
    home = c.get("/web/", follow_redirects=False)
    assert home.headers["location"] == "/web/me/data"
    page = c.get("/web/me/offers")
    assert page.status_code == 200
    for label in ("My data", "Offers", "Consents", "Receipts", "Requests", "Claim a code"):
        assert f">{label}</a>" in page.text
    assert ">Agreements</a>" not in page.text and ">Query</a>" not in page.text
    for path in ("/web/datasets", "/web/agreements", "/web/query", "/web/requests"):  # organisations' pages
        response = c.get(path)
        assert response.status_code == 404 and "nothing here that you may see" in response.text, path
    org, _ = signed_in(store, "retailer")
    assert ">Requests</a>" in org.get("/web/datasets").text
    for path in ("/web/me/data", "/web/me/consents", "/web/me/offers", f"/web/me/offers/{store['offer']}",
                 "/web/me/receipts", "/web/me/requests", "/web/me/claim", "/web/me/data.json"):
        assert org.get(path).status_code == 404, path


def test_individuals_pages_need_a_session(store):
    c = TestClient(store["app"])
    for path in ("/web/me", "/web/me/data", "/web/me/data.json", "/web/me/consents", "/web/me/receipts",
                 "/web/me/offers", f"/web/me/offers/{store['offer']}", "/web/me/requests", "/web/me/claim",
                 "/web/me/erasure?controller=retailer", "/web/requests"):
        response = c.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/web/login", path
    assert c.get("/web/signup").status_code == 200  # the one page besides login open to everyone


def test_sign_up_with_a_claim_code_and_refuse_a_spent_or_wrong_one(store):
    deps = store["deps"]
    code, _ = subject_svc.invite(deps, "retailer", "C00020")
    c = TestClient(store["app"])
    form = c.get("/web/signup")
    assert form.status_code == 200 and 'for="code"' in form.text and 'for="name"' in form.text
    token = csrf_of(form.text)
    response = c.post("/web/signup", data={"csrf_token": token, "code": code, "name": "sam"}, follow_redirects=False)
    assert response.status_code == 201 and "cg_session" in response.headers["set-cookie"]
    new_token = re.search(r'value="(cg_[^"]+)" data-testid="new-token"', response.text).group(1)
    assert "only this once" in response.text
    assert party_svc.authenticate(deps, new_token).name == "sam"
    assert [link["controller"] for link in subject_svc.links(deps, "sam")] == ["retailer"]
    assert c.get("/web/me/data").status_code == 200  # and logged in
    assert "C00020" in c.get("/web/me/claim").text

    unused, _ = subject_svc.invite(deps, "retailer", "C00021")
    parties, size = len(party_svc.list_parties(deps)), tree_size(store)
    other = TestClient(store["app"])
    token = csrf_of(other.get("/web/signup").text)
    for bad in (code, "claim_wrong", ""):
        refused = other.post("/web/signup", data={"csrf_token": token, "code": bad, "name": "sam_two"},
                             follow_redirects=False)
        assert refused.status_code == 400, bad
        assert "invalid, expired or already used claim code" in refused.text
        assert "cg_session" not in refused.headers.get("set-cookie", "")
        assert 'value="sam_two"' in refused.text  # the chosen name is kept in the form
    taken = other.post("/web/signup", data={"csrf_token": token, "code": unused, "name": "sam"}, follow_redirects=False)
    assert taken.status_code == 409 and "already exists" in taken.text
    forged = other.post("/web/signup", data={"csrf_token": "wrong", "code": code, "name": "sam_three"},
                        follow_redirects=False)
    assert forged.status_code == 403 and "Form expired" in forged.text
    assert len(party_svc.list_parties(deps)) == parties and tree_size(store) == size  # nothing was created


def test_my_data_page_and_json_download(store):
    c, _ = signed_in(store, "alice")
    page = c.get("/web/me/data")
    assert "Held by retailer" in page.text
    assert 'data-testid="data-retailer.purchases"' in page.text and "maple syrup" in page.text
    download = c.get("/web/me/data.json")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith('attachment; filename="commonground-alice-')
    export = json.loads(download.text)
    assert export["party"] == "alice" and {d["dataset"] for d in export["data"]} >= {"retailer.purchases"}
    subject = export["links"][0]["subject"]
    # Her purchases, and her survey answer (its subject column is the respondent): only her rows.
    assert {d["dataset"] for d in export["data"]} >= {"retailer.syrup_feedback"}
    assert all(subject in (row.get("customer_id"), row.get("respondent")) for d in export["data"] for row in d["rows"])


def _purchases_consent(deps, party: str) -> dict[str, Any]:
    """The party's consent on retailer.purchases (the demo's survey answers have consents of their own)."""
    (found,) = [c for c in subject_svc.consents(deps, party) if c["dataset"] == "retailer.purchases"]
    return found


def test_consent_toggle_changes_the_consent_record(store):
    deps = store["deps"]
    c, csrf = signed_in(store, "alice")
    before = _purchases_consent(deps, "alice")
    assert before["in_use"] and before["status"] is None
    page = c.get("/web/me/consents")
    assert "Withdraw" in page.text and "opt-out" in page.text
    row = {"csrf_token": csrf, "dataset": before["dataset"], "purpose": before["purpose"]}
    response = c.post("/web/me/consents", data={**row, "status": "withdrawn"}, follow_redirects=False)
    assert response.status_code == 303
    after = _purchases_consent(deps, "alice")
    assert after["status"] == "withdrawn" and not after["in_use"] and after["source"] == "subject"
    page = c.get(response.headers["location"])
    assert "Consent withdrawn" in page.text and ">Allow<" in page.text
    c.post("/web/me/consents", data={**row, "status": "granted"}, follow_redirects=False)
    again = _purchases_consent(deps, "alice")
    assert again["status"] == "granted" and again["in_use"]
    wrong = c.post("/web/me/consents", data={**row, "dataset": "brand.customers", "status": "withdrawn"})
    assert wrong.status_code == 404  # a dataset not holding your rows is not yours


def test_offer_page_explains_and_accepting_releases_only_what_is_ticked(store):
    deps = store["deps"]
    c, csrf = signed_in(store, "alice")
    inbox = c.get("/web/me/offers")
    assert f'/web/me/offers/{store["offer"]}' in inbox.text and "A coupon for your favourite syrup" in inbox.text
    url = f"/web/me/offers/{store['offer']}"
    page = c.get(url)
    assert "Why am I seeing this?" in page.text and "FROM retailer.purchases" in page.text
    assert 'data-testid="fields-used"><code>product</code>, <code>spend</code>' in page.text
    assert "maple syrup" in page.text and "Accepting gives no consent to anything else." in page.text
    assert 'value="coupon"' in page.text and 'value="spend"' in page.text
    unknown = c.post(f"{url}/decision", data={"csrf_token": csrf, "decision": "accept", "release": "email"})
    assert unknown.status_code == 400 and "cannot release" in unknown.text
    accepted = c.post(f"{url}/decision", data={"csrf_token": csrf, "decision": "accept", "release": ["coupon"]},
                      follow_redirects=False)
    assert accepted.status_code == 303
    (seen,) = [o for o in offer_svc.batch(deps, "brand", store["batch"]) if o["id"] == store["offer"]]
    assert seen["status"] == "accepted" and seen["released"] == {"coupon": "maple syrup, 20% off"}
    page = c.get(accepted.headers["location"])
    assert "You accepted this offer." in page.text and "maple syrup, 20% off" in page.text
    twice = c.post(f"{url}/decision", data={"csrf_token": csrf, "decision": "decline"})
    assert twice.status_code == 409 and "already accepted" in twice.text


def test_another_person_gets_404_for_alices_offer_and_requests(store):
    deps = store["deps"]
    alice, alice_csrf = signed_in(store, "alice")
    made = alice.post("/web/me/corrections", data={"csrf_token": alice_csrf, "dataset": "retailer.customers",
                                                   "column": "segment", "value": "family", "comment": "private note"},
                      follow_redirects=False)
    assert made.status_code == 303
    bob, bob_csrf = signed_in(store, "bob")
    url = f"/web/me/offers/{store['offer']}"
    assert bob.get(url).status_code == 404
    assert bob.get("/web/me/offers/not-an-offer").text == bob.get(url).text  # the same page as a made-up id
    status = offer_svc.show(deps, "alice", store["offer"])["status"]
    refused = bob.post(f"{url}/decision", data={"csrf_token": bob_csrf, "decision": "decline"})
    assert refused.status_code == 404 and offer_svc.show(deps, "alice", store["offer"])["status"] == status
    assert "private note" not in bob.get("/web/me/requests").text
    assert store["offer"] not in bob.get("/web/me/receipts").text
    (request,) = [r for r in subject_svc.my_requests(deps, "alice") if r.get("comment") == "private note"]
    answered = bob.post(f"/web/requests/{request['id']}/answer",
                        data={"csrf_token": bob_csrf, "decision": "accept", "message": "ha"})
    assert answered.status_code == 404
    brand, brand_csrf = signed_in(store, "brand")  # an organisation that is not the controller
    assert brand.post(f"/web/requests/{request['id']}/answer",
                      data={"csrf_token": brand_csrf, "decision": "accept", "message": "ha"}).status_code == 404
    assert "private note" not in brand.get("/web/requests").text
    assert subject_svc.request(deps, "alice", request["id"])["status"] == "open"


def test_individuals_forms_reject_missing_or_wrong_csrf(store):
    deps = store["deps"]
    c, good = signed_in(store, "bob")
    size, consents = tree_size(store), subject_svc.consents(deps, "bob")
    posts = {"/web/me/consents": {"dataset": "retailer.purchases", "purpose": consents[0]["purpose"], "status": "withdrawn"},
             "/web/me/claim": {"code": "claim_x"},
             f"/web/me/offers/{store['offer']}/decision": {"decision": "decline"},
             "/web/me/corrections": {"dataset": "retailer.customers", "column": "segment", "value": "x"},
             "/web/me/erasure": {"controller": "retailer", "confirm": "yes"},
             "/web/logout": {}}
    for url, data in posts.items():
        for token in ({}, {"csrf_token": "wrong"}, {"csrf_token": good + "x"}):
            response = c.post(url, data={**data, **token}, follow_redirects=False)
            assert response.status_code == 403 and "Form expired" in response.text, (url, token)
    assert tree_size(store) == size and subject_svc.consents(deps, "bob") == consents
    assert subject_svc.my_requests(deps, "bob") == []
    assert c.get("/web/me/consents", follow_redirects=False).status_code == 200  # still logged in


def test_correction_answered_by_the_organisation_is_shown_to_the_person(store):
    alice, csrf = signed_in(store, "alice")
    form = alice.get("/web/me/requests?dataset=retailer.customers")
    assert 'for="dataset"' in form.text and 'for="column"' in form.text and 'for="value"' in form.text
    bad = alice.post("/web/me/corrections", data={"csrf_token": csrf, "dataset": "retailer.customers",
                                                  "column": "shoe_size", "value": "44"})
    assert bad.status_code == 400 and "has no column" in bad.text and 'value="44"' in bad.text
    sent = alice.post("/web/me/corrections", data={"csrf_token": csrf, "dataset": "retailer.customers",
                                                   "column": "email", "value": "alice@example.org",
                                                   "comment": "I moved"}, follow_redirects=False)
    assert sent.status_code == 303
    mine = alice.get(sent.headers["location"]).text
    assert "Your correction request was sent" in mine and "alice@example.org" in mine and "not yet answered" in mine

    retailer, org_csrf = signed_in(store, "retailer")
    listing = retailer.get("/web/requests").text
    (request,) = [r for r in subject_svc.controller_requests(store["deps"], "retailer", open_only=True)
                  if r["proposed"] == "alice@example.org"]
    assert f'id="r-{request["id"]}"' in listing and request["subject"] in listing
    url = f"/web/requests/{request['id']}/answer"
    empty = retailer.post(url, data={"csrf_token": org_csrf, "decision": "accept", "message": ""})
    assert empty.status_code == 400 and "give the person an answer" in empty.text
    answered = retailer.post(url, data={"csrf_token": org_csrf, "decision": "accept",
                                        "message": "Fixed in our next upload"}, follow_redirects=False)
    assert answered.status_code == 303
    again = retailer.post(url, data={"csrf_token": org_csrf, "decision": "reject", "message": "no"})
    assert again.status_code == 409 and "already accepted" in again.text

    mine = alice.get("/web/me/requests").text
    assert "Fixed in our next upload" in mine and "status-accepted" in mine


def test_receipts_page_links_offers_and_pages_back(store):
    c, _ = signed_in(store, "alice")
    page = c.get("/web/me/receipts")
    assert page.status_code == 200
    assert f'href="/web/me/offers/{store["offer"]}"' in page.text
    receipts = subject_svc.receipts(store["deps"], "alice")
    assert f'<td class="num">{receipts[0]["ledger_index"]}</td>' in page.text
    oldest = receipts[-1]["at"]
    older = c.get("/web/me/receipts", params={"before": oldest})
    assert older.status_code == 200 and "No older receipts." in older.text
    assert c.get("/web/me/receipts", params={"before": "yesterday"}).status_code == 400


def test_claim_another_code_and_erase_with_a_confirm_step(store):
    deps = store["deps"]
    c, csrf = signed_in(store, "bob")
    code, _ = subject_svc.invite(deps, "brand", "C01010")
    claimed = c.post("/web/me/claim", data={"csrf_token": csrf, "code": code})
    assert claimed.status_code == 200 and "Linked: brand" in claimed.text
    spent = c.post("/web/me/claim", data={"csrf_token": csrf, "code": code})
    assert spent.status_code == 400 and "already used" in spent.text

    confirm = c.get("/web/me/erasure", params={"controller": "retailer"})
    assert confirm.status_code == 200 and 'for="confirm"' in confirm.text and "retailer.purchases" in confirm.text
    assert c.get("/web/me/erasure", params={"controller": "nobody"}).status_code == 404
    unconfirmed = c.post("/web/me/erasure", data={"csrf_token": csrf, "controller": "retailer"})
    assert unconfirmed.status_code == 400 and "Tick the box" in unconfirmed.text
    assert subject_svc.my_requests(deps, "bob") == []  # nothing happened without the confirmation
    erased = c.post("/web/me/erasure", data={"csrf_token": csrf, "controller": "retailer", "confirm": "yes",
                                             "reason": "bye"}, follow_redirects=False)
    assert erased.status_code == 303
    (request,) = subject_svc.my_requests(deps, "bob")
    assert request["kind"] == "erasure" and request["status"] == "done"
    page = c.get(erased.headers["location"]).text
    assert "Your data was erased" in page and "without your" in page
    assert [d["controller"] for d in subject_svc.my_datasets(deps, "bob")] == ["brand"]
