"""Conversations' web pages without a browser, over the demo store: the organisation creates a
survey and reads its results, the person answers, and nobody else sees either side's pages."""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient

from commonground import bootstrap
from commonground.api.app import create_app
from commonground.demo import build_demo
from commonground.services import parties as party_svc
from commonground.services import threads as thread_svc
from commonground.services import subjects as subject_svc
from commonground.web.app import mount_web

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SURVEY = """name: web_visit
title: Did you find everything?
purposes: [analytics.reporting]
min_group_size: 2
questions:
  - {id: found, text: "Did you find everything?", type: yes_no}
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, store_database) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("web-conversations") / "home"
    deps = bootstrap.build(bootstrap.Settings(home, store_database(home)))
    report = build_demo(deps, reset=True)
    party_svc.add_party(deps, "outsider")
    tokens = {**report["tokens"], "outsider": party_svc.create_token(deps, "outsider")[1]}
    yield {"deps": deps, "app": mount_web(create_app(deps), deps), "tokens": tokens}
    deps.store.dispose()


def _session(store: dict[str, Any], party: str) -> tuple[TestClient, str]:
    c = TestClient(store["app"])
    form = c.get("/web/login")
    c.post("/web/login", data={"csrf_token": CSRF.search(form.text).group(1), "token": store["tokens"][party]})
    return c, CSRF.search(c.get("/web/ledger").text).group(1)


def test_survey_pages(store):
    retailer, csrf = _session(store, "retailer")
    assert "Ask a new survey" in retailer.get("/web/surveys").text
    bad = retailer.post("/web/surveys", data={"csrf_token": csrf, "document": "name: [unclosed"})
    assert bad.status_code == 400 and "not valid YAML" in bad.text
    made = retailer.post("/web/surveys", data={"csrf_token": csrf, "document": SURVEY}, follow_redirects=False)
    assert made.status_code == 303
    page = made.headers["location"]
    survey_id = page.rsplit("/", 1)[1]

    alice, alice_csrf = _session(store, "alice")
    assert "Did you find everything?" in alice.get("/web/me/surveys").text
    answered = alice.post(f"/web/me/surveys/{survey_id}/answer", data={
        "csrf_token": alice_csrf, "q_found": "yes", "share": "retailer:analytics.reporting"})
    assert answered.status_code == 200 and "your answer is saved" in answered.text
    assert 'value="retailer:analytics.reporting" checked' in answered.text

    shown = retailer.get(page)
    assert re.search(r'data-testid="answer-count">1<', shown.text)
    results = retailer.post(f"{page}/results", data={"csrf_token": csrf, "purpose": "analytics.reporting"})
    assert results.status_code == 200 and "No group of at least 2 people" in results.text  # alice alone

    # Whose page it is not: another organisation, the person on the organisation's page, and back.
    brand, brand_csrf = _session(store, "brand")
    assert brand.get(page).status_code == 404
    assert brand.post(f"{page}/results", data={"csrf_token": brand_csrf, "purpose": "analytics.reporting"}).status_code == 404
    assert alice.get(page).status_code == 404
    assert retailer.get(f"/web/me/surveys/{survey_id}").status_code == 404
    outsider, _ = _session(store, "outsider")
    assert outsider.get(f"/web/me/surveys/{survey_id}").status_code == 404


def test_thread_pages(store):
    deps = store["deps"]
    offer = next(r for r in subject_svc.receipts(deps, "alice") if r.get("offer"))
    thread = thread_svc.open_thread(deps, "alice", "offer", offer["offer"], "comment", "Why this coupon?")
    retailer, csrf = _session(store, "retailer")
    assert thread["id"] in retailer.get("/web/threads").text
    answered = retailer.post(f"/web/threads/{thread['id']}", data={"csrf_token": csrf, "message": "Your syrup buys."})
    assert answered.status_code == 200 and 'data-testid="thread-status">answered<' in answered.text
    empty = retailer.post(f"/web/threads/{thread['id']}", data={"csrf_token": csrf, "message": "  "})
    assert empty.status_code == 400 and "a message is 1 to" in empty.text
    for party in ("brand", "outsider"):
        c, _ = _session(store, party)
        assert c.get(f"/web/threads/{thread['id']}").status_code == 404
    alice, _ = _session(store, "alice")
    assert "Your syrup buys." in alice.get(f"/web/me/threads/{thread['id']}").text
    assert alice.get(f"/web/threads/{thread['id']}").status_code == 404  # the organisation's page
