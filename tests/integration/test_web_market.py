"""The rights, catalogue, listing, review and notice pages without a browser, on SQLite and
PostgreSQL: each form calls the same service as the API, refusals show their reasons, and a
listing shown to chosen parties is the 404 page for anyone else."""

from __future__ import annotations

import re

import pytest
import yaml
from fastapi.testclient import TestClient

from commonground.api.app import create_app
from commonground.services import agreements as agreement_svc
from commonground.services import datasets as dataset_svc
from commonground.services import parties as party_svc
from commonground.web.app import mount_web

from .data import PURCHASES_SCHEMA, write_purchases

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
LISTING = {"name": "card-insights", "title": "Card spend by segment", "valid_until": "2099-12-31",
           "purposes": ["analytics.reporting"], "access": {"mode": "aggregate", "min_group_size": 5},
           "datasets": {"bank.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}}


@pytest.fixture
def web(make_deps, tmp_path):
    deps = make_deps()
    tokens = {}
    for name in ("bank", "insurer", "outsider"):
        party_svc.add_party(deps, name)
        tokens[name] = party_svc.create_token(deps, name)[1]
    data, _ = write_purchases(tmp_path / "in")
    dataset_svc.add_dataset(deps, "bank", "purchases", data, PURCHASES_SCHEMA)
    return deps, mount_web(create_app(deps), deps), tokens


def session(app, token: str) -> tuple[TestClient, str]:
    c = TestClient(app)
    form = c.get("/web/login")
    c.post("/web/login", data={"csrf_token": CSRF.search(form.text).group(1), "token": token}, follow_redirects=False)
    return c, CSRF.search(c.get("/web/notices").text).group(1)


def test_rights_listing_review_and_notices_through_the_pages(web):
    deps, app, tokens = web
    bank, bank_csrf = session(app, tokens["bank"])
    insurer, insurer_csrf = session(app, tokens["insurer"])
    outsider, _ = session(app, tokens["outsider"])
    assert 'data-testid="no-rights"' in bank.get("/web/datasets/bank/purchases/rights").text
    assert outsider.get("/web/datasets/bank/purchases/rights").status_code == 404

    # a listing without declared rights is refused, with the reason on the page
    refused = bank.post("/web/listings/new", data={"csrf_token": bank_csrf, "document": yaml.safe_dump(LISTING)})
    assert refused.status_code == 403 and "has no declared rights" in refused.text
    declared = bank.post("/web/datasets/bank/purchases/rights", data={
        "csrf_token": bank_csrf, "legal_basis": "contract", "purposes": "analytics", "never_shared": "email",
        "attested_by": "DPO"})
    assert declared.status_code == 200 and "Rights declared." in declared.text and "never shared" in declared.text
    bad = bank.post("/web/datasets/bank/purchases/rights", data={"csrf_token": bank_csrf, "legal_basis": "whim",
                                                                 "purposes": "analytics"})
    assert bad.status_code == 400 and "GDPR Art. 6" in bad.text
    published = bank.post("/web/listings/new", data={"csrf_token": bank_csrf,
                                                     "document": yaml.safe_dump({**LISTING, "visibility": ["insurer"]})},
                          follow_redirects=False)
    assert published.status_code == 303
    listing_url = published.headers["location"].split("?")[0]
    assert outsider.get(listing_url).status_code == 404 and "card-insights" not in outsider.get("/web/catalogue").text
    assert "Card spend by segment" in insurer.get("/web/catalogue?q=spend").text

    # granted at once for the listing's purpose; reviewed for another within the rights
    granted = insurer.post(listing_url + "/request", data={"csrf_token": insurer_csrf, "purpose": "analytics.reporting"},
                           follow_redirects=False)
    assert granted.headers["location"].endswith("?done=active")
    pending = insurer.post(listing_url + "/request", data={"csrf_token": insurer_csrf, "purpose": "analytics"},
                           follow_redirects=False)
    assert pending.headers["location"].endswith("?done=pending")
    outside = insurer.post(listing_url + "/request", data={"csrf_token": insurer_csrf, "purpose": "personalize"})
    assert outside.status_code == 403 and "purpose personalize is outside the declared rights" in outside.text
    queue = bank.get("/web/listings/mine").text
    assert queue.count('data-testid="review"') == 1 and "insurer asks for" in queue
    request_id = re.search(r'/listing-requests/([0-9a-f]+)/decision', queue).group(1)
    assert insurer.post(f"/web/listing-requests/{request_id}/decision",
                        data={"csrf_token": insurer_csrf, "decision": "approve"}).status_code == 404
    decided = bank.post(f"/web/listing-requests/{request_id}/decision",
                        data={"csrf_token": bank_csrf, "decision": "approve", "note": "ok"}, follow_redirects=False)
    assert decided.headers["location"].endswith("?done=decided")
    page = insurer.get(listing_url).text
    assert "1 partner uses this listing" in page and "analytics (1), analytics.reporting (1)" in page
    assert "chosen parties" in page and "contract" in page

    # the bank narrows its rights: the "analytics" agreement is suspended and named on the page
    narrowed = bank.post("/web/datasets/bank/purchases/rights", data={
        "csrf_token": bank_csrf, "legal_basis": "contract", "purposes": "analytics.reporting"})
    assert 'data-testid="suspended"' in narrowed.text
    suspended = [a for a in agreement_svc.list_agreements(deps, "insurer") if a.status.value == "suspended"]
    assert [a.terms.purposes for a in suspended] == [("analytics",)]
    notices = insurer.get("/web/notices").text
    assert "agreement.suspended" in notices and "listing.approved" in notices
    assert f"/web/agreements/{suspended[0].id}" in notices
    assert "suspended" in insurer.get(f"/web/agreements/{suspended[0].id}").text
