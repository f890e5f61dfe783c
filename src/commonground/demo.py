"""The demo scenario: a retailer, a consumer brand and their shared customers.

The retailer knows what people buy; the brand knows who its loyal customers are. Neither
wants to hand over its list. Under the `syrup-insights` agreement the brand learns how its
loyalty tiers spend at the retailer, by age band, without seeing a single row. Under
`syrup-offers` it offers each syrup buyer a coupon computed from their own purchases; Alice,
one of them, has claimed her data and can see the coupon and exactly why she got it.
The retailer has declared what it may share its purchases for (every proposal is vetted
against that), offers a basket-insights data product that a coffee roaster takes up at once,
and asks its customers a question whose answers each person shares with whom they choose.
"""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path
from typing import Any

from . import bootstrap
from .domain.errors import Conflict
from .services import agreements as agreement_svc
from .services import conversations as conversation_svc
from .services import datasets as dataset_svc
from .services import listings as listing_svc
from .services import offers as offer_svc
from .services import parties as party_svc
from .services import queries as query_svc
from .services import rights as rights_svc
from .services import subjects as subject_svc
from .services.deps import Deps

RETAILER_CUSTOMERS = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "email": {"type": "string", "role": "identifier", "category": "user.contact.email"},
    "zip": {"type": "string", "role": "quasi_identifier", "category": "user.contact.address.postal_code"},
    "age": {"type": "integer", "role": "quasi_identifier", "category": "user.demographic.age_range"},
    "segment": {"type": "string", "role": "attribute", "category": "user.behavior"},
}}
OFFER_PURPOSE = "marketing.advertising.first_party.targeted"
PURCHASES = {"consent": "opt_out", "consent_purposes": [OFFER_PURPOSE], "columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "store_zip": {"type": "string", "role": "quasi_identifier", "category": "user.contact.address.postal_code"},
    "age": {"type": "integer", "role": "quasi_identifier", "category": "user.demographic.age_range"},
    "product": {"type": "string", "role": "attribute", "category": "user.behavior.purchase_history"},
    "spend": {"type": "double", "role": "sensitive", "category": "user.financial"},
    "bought_at": {"type": "timestamp", "role": "attribute", "category": "user.behavior.purchase_history"},
    "email": {"type": "string", "role": "identifier", "category": "user.contact.email"},
}}
BRAND_CUSTOMERS = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "email": {"type": "string", "role": "identifier", "category": "user.contact.email"},
    "loyalty_tier": {"type": "string", "role": "attribute", "category": "user.behavior"},
}}
AGREEMENT = {
    "name": "syrup-insights", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics.reporting"],
    "valid_until": "2027-06-30",
    "datasets": {"retailer.purchases": {"fields": {
        "customer_id": {"transform": "hash"}, "store_zip": {"transform": "generalize", "keep": 3},
        "age": {"transform": "bucket", "width": 10}, "product": {"transform": "raw"}, "spend": {"transform": "raw"},
        "bought_at": {"transform": "generalize", "to": "month"}, "email": {"transform": "drop"}}}},
    "access": {"mode": "join", "min_group_size": 10, "join_keys": ["customer_id"]},
}
OFFER_AGREEMENT = {
    "name": "syrup-offers", "provider": "retailer", "recipients": ["brand"], "purposes": [OFFER_PURPOSE],
    "valid_until": "2027-06-30",
    "datasets": {"retailer.purchases": {"fields": {
        "customer_id": {"transform": "hash"}, "product": {"transform": "raw"}, "spend": {"transform": "raw"},
        "bought_at": {"transform": "generalize", "to": "month"}, "email": {"transform": "drop"},
        "store_zip": {"transform": "drop"}, "age": {"transform": "drop"}}}},
    "access": {"mode": "offer", "min_group_size": 10},
}
OFFER_SQL = ("SELECT 'maple syrup, 20% off' AS coupon, COUNT(*) AS syrup_purchases, ROUND(SUM(spend), 2) AS syrup_spend "
             "FROM retailer.purchases WHERE product = 'maple syrup'")
# What the retailer attests it may share its purchases for (docs/data-products.md).
PURCHASES_RIGHTS = {"legal_basis": "contract", "purposes": ["analytics", OFFER_PURPOSE],
                    "columns": {"email": {"purposes": []}}}
LISTING = {
    "name": "basket-insights", "title": "What sells, by store area and age band",
    "description": "Aggregates over at least 10 shoppers; no rows, no ids.",
    "datasets": {"retailer.purchases": {"fields": {
        "customer_id": "hash", "store_zip": {"transform": "generalize", "keep": 3},
        "age": {"transform": "bucket", "width": 10}, "product": "raw", "spend": "raw"}}},
    "access": {"mode": "aggregate", "min_group_size": 10}, "purposes": ["analytics.reporting"],
    "valid_until": "2027-06-30", "visibility": "all",
}
SURVEY = {
    "name": "syrup_feedback", "title": "How do you like our maple syrup?", "purposes": ["analytics.reporting"],
    "partners": ["brand"], "min_group_size": 5,
    "questions": [{"id": "taste", "text": "How does it taste?", "type": "choice", "options": ["great", "fine", "not for me"]},
                  {"id": "again", "text": "Would you buy it again?", "type": "yes_no"}],
}
TEMPLATE = """\
name: ${name}
provider: retailer
recipients: [${recipient}]
purposes: [${purpose}]
valid_until: ${until}
datasets:
  retailer.purchases:
    fields:
      customer_id: {transform: hash}
      age: {transform: bucket, width: 10}
      product: {transform: raw}
      spend: {transform: raw}
access: {mode: aggregate, min_group_size: ${k}}
"""
DEMO_QUERY = """
SELECT b.loyalty_tier, p.age AS age_band, COUNT(DISTINCT p.customer_id) AS shoppers, ROUND(SUM(p.spend), 2) AS spend
FROM retailer.purchases AS p JOIN brand.customers AS b ON p.customer_id = b.customer_id
WHERE p.product = 'maple syrup'
GROUP BY b.loyalty_tier, p.age ORDER BY b.loyalty_tier, age_band
"""
PRODUCTS = ["maple syrup", "pancake mix", "coffee", "oat milk", "granola"]


def _write_files(folder: Path, seed: int = 7) -> dict[str, Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    people = [{"id": f"C{i:05d}", "email": f"person{i}@example.org", "zip": f"{rng.randint(10000, 10999)}",
               "age": rng.randint(18, 85)} for i in range(3000)]
    paths = {n: folder / f"{n}.csv" for n in ("retailer_customers", "purchases", "brand_customers")}
    with open(paths["retailer_customers"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "email", "zip", "age", "segment"])
        for p in people:
            w.writerow([p["id"], p["email"], p["zip"], p["age"], rng.choice(["family", "single", "student", "retired"])])
    with open(paths["purchases"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "store_zip", "age", "product", "spend", "bought_at", "email"])
        for p in people:
            for _ in range(rng.randint(1, 8)):
                w.writerow([p["id"], p["zip"], p["age"], rng.choice(PRODUCTS), round(rng.uniform(2, 40), 2),
                            f"2026-{rng.randint(1, 10):02d}-{rng.randint(1, 28):02d} {rng.randint(8, 21):02d}:00:00", p["email"]])
    with open(paths["brand_customers"], "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "email", "loyalty_tier"])
        for p in people[1000:]:  # the brand knows two thirds of the retailer's customers, and others
            w.writerow([p["id"], p["email"], rng.choice(["bronze", "silver", "gold"])])
        for i in range(3000, 4000):
            w.writerow([f"C{i:05d}", f"person{i}@example.org", rng.choice(["bronze", "silver", "gold"])])
    return paths


def build_demo(deps: Deps, reset: bool = False) -> dict[str, Any]:
    if reset and deps.home.exists():
        deps.store.dispose()
        shutil.rmtree(deps.home)
    bootstrap.init_store(deps)
    existing = [p.name for p in party_svc.list_parties(deps)]
    if existing:
        raise Conflict(f"the store already has parties {existing}; use `demo --reset` for a fresh demo store")
    files = _write_files(deps.home / "demo-input")
    for name, kind in (("retailer", "organization"), ("brand", "organization"), ("roaster", "organization"),
                       ("alice", "individual")):
        party_svc.add_party(deps, name, kind)
    dataset_svc.add_dataset(deps, "retailer", "customers", files["retailer_customers"], RETAILER_CUSTOMERS)
    dataset_svc.add_dataset(deps, "retailer", "purchases", files["purchases"], PURCHASES)
    rights_svc.declare(deps, "retailer", "purchases", PURCHASES_RIGHTS, attested_by="the retailer's DPO")
    dataset_svc.add_dataset(deps, "brand", "customers", files["brand_customers"], BRAND_CUSTOMERS)
    proposed = agreement_svc.propose(deps, "retailer", AGREEMENT)
    active = agreement_svc.accept(deps, "brand", proposed.id)
    agreement_svc.add_template(deps, "retailer", "retail-aggregate", TEMPLATE)
    agreement_svc.accept(deps, "brand", agreement_svc.propose(deps, "retailer", OFFER_AGREEMENT).id)
    tokens = {name: party_svc.create_token(deps, name)[1] for name in ("retailer", "brand", "roaster", "alice")}
    result, plan = query_svc.run_query(deps, "brand", "analytics.reporting", DEMO_QUERY)
    data = query_svc.result_json(result, plan)
    # Alice is a syrup buyer: the retailer invites her, she claims her data, the brand makes offers.
    code, _ = subject_svc.invite(deps, "retailer", _first_syrup_buyer(files["purchases"]))
    subject_svc.claim(deps, "alice", code)
    batch = offer_svc.submit(deps, "brand", OFFER_PURPOSE, OFFER_SQL, "A coupon for your favourite syrup")
    (offer,) = offer_svc.inbox(deps, "alice")
    # A data product on standard terms: the roaster's request for a purpose it grants is active at once.
    listing = listing_svc.publish(deps, "retailer", LISTING)
    taken = listing_svc.request(deps, "roaster", listing["id"], "analytics.reporting")
    # A question to the retailer's customers; Alice lets the brand use her answer, in aggregate.
    survey = conversation_svc.create_survey(deps, "retailer", SURVEY)
    conversation_svc.answer(deps, "alice", survey["id"], {"taste": "great", "again": True},
                            [("brand", "analytics.reporting"), ("retailer", "analytics.reporting")])
    lines = [
        f"Demo store at {deps.home}",
        "  parties: retailer, brand, roaster (organisations), alice (individual)",
        "  datasets: retailer.customers, retailer.purchases, brand.customers",
        f"  agreement syrup-insights ({active.id}): {active.status.value}, join mode, k = 10",
        "",
        "The brand asks how its loyalty tiers buy maple syrup at the retailer:",
        DEMO_QUERY.strip(),
        "",
        "  " + " | ".join(data["columns"]),
        *["  " + " | ".join(str(v) for v in row) for row in data["rows"]],
        f"  ({data['suppressed_groups']} groups under k = 10 suppressed)",
        "",
        f"Under syrup-offers the brand made {batch['offers']} coupons, one per syrup buyer, computed in the store;",
        "the brand sees only each person's decision. Alice's coupon, and exactly why she got it:",
        f"  commonground offer show {offer['id']} --as alice",
        "  commonground subject receipts --as alice",
        "",
        f"The retailer declared its rights on purchases (contract; analytics and {OFFER_PURPOSE}; never email)",
        f"and lists basket-insights ({listing['id']}); the roaster took it up at once: agreement "
        f"{taken['agreement_id']} is {taken['status']}.",
        "  commonground listing list --as roaster",
        "  commonground rights show --as retailer purchases",
        f"Alice answered the retailer's survey {survey['id']} and shared her answer with the brand:",
        "  commonground survey list --as alice",
        "",
        "API tokens (shown once):",
        *[f"  {name}: {tok}" for name, tok in tokens.items()],
        "",
        "Try: commonground query --as brand --purpose analytics.reporting "
        "\"SELECT product, COUNT(*) FROM retailer.purchases GROUP BY product\"",
    ]
    return {"summary": "\n".join(lines), "agreement": active.id, "tokens": tokens, "result": data,
            "offers": batch, "alice_offer": offer["id"], "listing": listing["id"], "listing_request": taken,
            "survey": survey["id"]}


def _first_syrup_buyer(purchases: Path) -> str:
    with open(purchases, newline="") as f:
        return next(row["customer_id"] for row in csv.DictReader(f) if row["product"] == "maple syrup")
