"""Rights pre-vetting and data products, end to end through the SDK over the real API, on
SQLite and PostgreSQL: a bank's curated listing requested by two partners (one purpose is
granted at once, one goes to review), then the bank narrows its rights and the agreement they
no longer cover is suspended, its parties told, and its queries refused."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from commonground import Client
from commonground.api.app import create_app
from commonground.client import ApiError
from commonground.services import parties as party_svc

from .data import PURCHASES_SCHEMA, agreement, write_purchases

RIGHTS_V1 = {"legal_basis": "contract", "purposes": ["analytics", "marketing.advertising"],
             "columns": {"email": {"purposes": []}, "spend": {"purposes": ["analytics"]}}}
LISTING = {
    "name": "card-insights", "title": "Card spend by segment", "description": "Aggregates only, k = 5.",
    "datasets": {"bank.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw",
                                               "age": {"transform": "bucket", "width": 10}}}},
    "access": {"mode": "aggregate", "min_group_size": 5},
    "purposes": ["analytics.reporting"], "valid_until": "2099-12-31", "visibility": "all",
}
SQL = "SELECT segment, SUM(spend) AS total FROM bank.purchases GROUP BY segment ORDER BY segment"


@pytest.fixture
def market(make_deps, tmp_path):
    deps = make_deps()
    http = TestClient(create_app(deps))
    clients = {}
    for name in ("bank", "insurer", "retailer", "outsider"):
        party_svc.add_party(deps, name)
        clients[name] = Client(token=party_svc.create_token(deps, name)[1], http=http)
    data, _ = write_purchases(tmp_path / "in")
    clients["bank"].upload("purchases", data, PURCHASES_SCHEMA)
    return deps, clients


def _refusal(call) -> list[str]:
    with pytest.raises(ApiError) as refused:
        call()
    assert refused.value.status == 403 and refused.value.body["error"] == "refused", refused.value.body
    return refused.value.body["reasons"]


def _bank_agreement(**changes) -> dict:
    doc = agreement(mode="aggregate")
    doc["datasets"] = {"bank.purchases": doc["datasets"].pop("retailer.purchases")}
    return {**doc, "provider": "bank", "recipients": ["insurer"], **changes}


def test_a_proposal_outside_the_declared_rights_is_refused_naming_the_gap(market):
    deps, c = market
    undeclared = c["bank"].propose(_bank_agreement(name="before-rights"))  # no rights yet: unrestricted ...
    assert undeclared["status"] == "proposed"
    with deps.store.read() as conn:  # ... and recorded on the ledger as not vetted
        entries = [json.loads(e) for _, _, e in deps.store.entries(conn)]
    assert [e["rights"] for e in entries if e["event"] == "agreement.proposed"] == [{"bank.purchases": None}]

    declared = c["bank"].declare_rights("bank.purchases", **RIGHTS_V1, attested_by="Data Protection Officer")
    assert (declared["version"], declared["attested_by"], declared["suspended"]) == (1, "Data Protection Officer", [])
    reasons = _refusal(lambda: c["bank"].propose(_bank_agreement(purposes=["personalize"])))
    assert reasons == ["rights: bank.purchases (rights v1): purpose personalize is outside the declared rights "
                       "(analytics, marketing.advertising)"]
    reasons = _refusal(lambda: c["bank"].propose(_bank_agreement(purposes=["marketing.advertising.first_party.targeted"])))
    assert reasons == ["rights: bank.purchases (rights v1): field spend may not be shared for "
                       "marketing.advertising.first_party.targeted (its purposes: analytics); drop it"]
    # the email column is dropped in this agreement, so its "never shared" right is no gap; a
    # narrower purpose of a declared one is covered
    assert c["bank"].propose(_bank_agreement(purposes=["analytics.reporting"]))["status"] == "proposed"
    with pytest.raises(ApiError) as hidden:  # rights are seen by whoever may see the dataset
        c["outsider"].rights("bank.purchases")
    assert hidden.value.status == 404
    with pytest.raises(ApiError) as bad:
        c["bank"].declare_rights("bank.purchases", "because", ["analytics"])
    assert bad.value.status == 400 and "GDPR Art. 6" in bad.value.body["message"]
    with pytest.raises(ApiError) as wider:
        c["bank"].declare_rights("bank.purchases", "contract", ["analytics"], {"spend": {"purposes": ["marketing"]}})
    assert wider.value.status == 400 and "outside the dataset's own purposes" in wider.value.body["message"]
    with pytest.raises(ApiError) as not_theirs:
        c["insurer"].declare_rights("bank.purchases", "contract", ["analytics"])
    assert not_theirs.value.status == 404
    assert [r["version"] for r in c["bank"].rights("bank.purchases")] == [1]


def test_a_bank_lists_curated_data_two_partners_request_it_then_rights_narrow(market):
    deps, c = market
    bank, insurer, retailer, outsider = c["bank"], c["insurer"], c["retailer"], c["outsider"]
    # a listing needs declared rights, and must lie within them
    assert "has no declared rights" in _refusal(lambda: bank.publish_listing(LISTING))[0]
    bank.declare_rights("bank.purchases", **RIGHTS_V1)
    outside = _refusal(lambda: bank.publish_listing({**LISTING, "purposes": ["personalize"]}))
    assert outside == ["rights: bank.purchases (rights v1): purpose personalize is outside the declared rights "
                       "(analytics, marketing.advertising)"]
    listing = bank.publish_listing(LISTING)
    private = bank.publish_listing({**LISTING, "name": "insurer-only", "visibility": ["insurer"]})

    # the catalogue: the public listing for everyone, the chosen one only for its party
    assert [x["name"] for x in outsider.catalogue()] == ["card-insights"]
    assert [x["name"] for x in insurer.catalogue()] == ["card-insights", "insurer-only"]
    assert insurer.catalogue(search="INSURER")[0]["visibility"] == "chosen parties"  # not whom else
    with pytest.raises(ApiError) as hidden:
        outsider.listing(private["id"])
    assert hidden.value.status == 404

    # insurer asks for a purpose the listing grants: an active agreement at once, and it queries
    granted = insurer.request_listing(listing["id"], "analytics.reporting")
    assert granted["status"] == "active" and insurer.agreement(granted["agreement_id"])["status"] == "active"
    before = insurer.query(SQL, "analytics.reporting")["rows"]
    assert [r[0] for r in before] == ["a", "b", "c"]

    # retailer: a purpose the rights refuse (spend is for analytics only) is refused at once ...
    reasons = _refusal(lambda: retailer.request_listing(listing["id"], "marketing.advertising.first_party.targeted"))
    assert reasons == ["rights: bank.purchases (rights v1): field spend may not be shared for "
                       "marketing.advertising.first_party.targeted (its purposes: analytics); drop it"]
    # ... one within the rights but not the listing's terms goes to the bank for review
    pending = retailer.request_listing(listing["id"], "analytics")
    assert (pending["status"], pending["agreement_id"]) == ("pending", None)
    to_review = bank.listing_requests()["to_review"]
    assert [(r["requester"], r["purpose"]) for r in to_review] == [("retailer", "analytics")]
    assert [n["kind"] for n in bank.notices()] == ["listing.review"]
    with pytest.raises(ApiError) as not_owner:
        retailer.decide_listing_request(pending["id"], True)
    assert not_owner.value.status == 404
    approved = bank.decide_listing_request(pending["id"], True, note="welcome")
    assert approved["status"] == "active"
    assert retailer.notices()[0]["message"].endswith("approved your request for listing card-insights for analytics: welcome")
    with pytest.raises(ApiError) as twice:
        bank.decide_listing_request(pending["id"], False)
    assert twice.value.status == 409
    assert retailer.query(SQL, "analytics")["rows"] == before

    # the listing page: how many partners and for what; never who the subjects are, nor the partners
    page = outsider.listing(listing["id"])
    assert page["usage"] == {"partners": 2, "purposes": {"analytics": 1, "analytics.reporting": 1}}
    assert page["rights"]["bank.purchases"]["legal_basis"] == "contract"
    assert "insurer" not in json.dumps(page) and "C0001" not in json.dumps(page)

    # the bank narrows its rights to reporting: retailer's "analytics" agreement is suspended
    narrowed = bank.declare_rights("bank.purchases", "contract", ["analytics.reporting"],
                                   {"email": {"purposes": []}})
    assert [s["agreement"] for s in narrowed["suspended"]] == [approved["agreement_id"]]
    assert retailer.agreement(approved["agreement_id"])["status"] == "suspended"
    assert insurer.agreement(granted["agreement_id"])["status"] == "active"
    for party in (bank, retailer):
        notice = party.notices()[0]
        assert notice["kind"] == "agreement.suspended" and notice["subject"] == approved["agreement_id"]
        assert "purpose analytics is outside the declared rights (analytics.reporting)" in notice["message"]
    assert all(n["kind"] != "agreement.suspended" for n in insurer.notices())
    with pytest.raises(ApiError) as cut_off:  # nothing of the bank's is in force for retailer any more
        retailer.query(SQL, "analytics")
    assert cut_off.value.status == 404
    assert insurer.query(SQL, "analytics.reporting")["rows"] == before
    assert outsider.listing(listing["id"])["usage"] == {"partners": 1, "purposes": {"analytics.reporting": 1}}
    with deps.store.read() as conn:
        events = [json.loads(e)["event"] for _, _, e in deps.store.entries(conn)]
    assert events.count("agreement.suspended") == 1 and events.count("rights.declared") == 2
    assert events.count("listing.requested") == 2 and events.count("listing.request_decided") == 1

    # withdrawn listings leave the catalogue; the agreements made from them stand
    bank.withdraw_listing(listing["id"])
    assert [x["name"] for x in outsider.catalogue()] == []
    assert [x["status"] for x in bank.my_listings()] == ["withdrawn", "published"]
    with pytest.raises(ApiError) as gone:
        outsider.request_listing(listing["id"], "analytics.reporting")
    assert gone.value.status == 404
    assert insurer.agreement(granted["agreement_id"])["status"] == "active"


def test_declined_requests_make_no_agreement_and_the_requester_is_told(market):
    _, c = market
    c["bank"].declare_rights("bank.purchases", **RIGHTS_V1)
    listing = c["bank"].publish_listing(LISTING)
    pending = c["insurer"].request_listing(listing["id"], "analytics")
    declined = c["bank"].decide_listing_request(pending["id"], False, note="not this quarter")
    assert (declined["status"], declined["agreement_id"]) == ("declined", None)
    assert c["insurer"].agreements() == []
    assert c["insurer"].notices()[0]["kind"] == "listing.declined"
    with pytest.raises(ApiError) as own:
        c["bank"].request_listing(listing["id"], "analytics.reporting")
    assert own.value.status == 400


class Clock:
    def __init__(self) -> None:
        import datetime as dt
        self.at = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)

    def now(self):
        return self.at


def test_an_expired_listing_leaves_the_catalogue_and_cannot_be_requested(make_deps, tmp_path):
    import datetime as dt

    from commonground.domain.errors import Conflict
    from commonground.services import datasets as dataset_svc
    from commonground.services import listings as listing_svc
    from commonground.services import rights as rights_svc
    clock = Clock()
    deps = make_deps(clock=clock)
    for name in ("bank", "insurer"):
        party_svc.add_party(deps, name)
    data, _ = write_purchases(tmp_path / "in")
    dataset_svc.add_dataset(deps, "bank", "purchases", data, PURCHASES_SCHEMA)
    rights_svc.declare(deps, "bank", "purchases", RIGHTS_V1)
    made = listing_svc.publish(deps, "bank", {**LISTING, "valid_until": "2026-11-30"})
    assert [x["id"] for x in listing_svc.catalogue(deps, "insurer")] == [made["id"]]
    clock.at += dt.timedelta(days=8)
    assert listing_svc.catalogue(deps, "insurer") == []
    assert listing_svc.show(deps, "insurer", made["id"])["status"] == "expired"
    with pytest.raises(Conflict, match="expired"):
        listing_svc.request(deps, "insurer", made["id"], "analytics.reporting")
