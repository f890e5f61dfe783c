"""Rights and data products in chromium against a real server over the demo store.

brand declares rights on its customers, publishes a listing; retailer finds it in the
catalogue and requests it twice (one purpose granted at once, one reviewed); brand approves in
its review queue, then narrows its rights on the rights page, which suspends the reviewed
agreement; retailer reads the notice. The agreements made here are revoked at the end so the
shared demo store is as the other journeys expect.
"""

from __future__ import annotations

import re

import yaml
from playwright.sync_api import expect

from commonground.services import agreements as agreement_svc

from .test_org_journeys import log_in, log_out

LISTING = {"name": "tier-insights", "title": "Loyalty tiers", "valid_until": "2099-12-31",
           "purposes": ["analytics.reporting"], "access": {"mode": "aggregate", "min_group_size": 10},
           "datasets": {"brand.customers": {"fields": {"customer_id": "hash", "loyalty_tier": "raw"}}}}


def test_rights_listing_request_review_and_suspension(page, server, shoot):
    try:
        _journey(page, server, shoot)
    finally:
        deps = server["deps"]
        for state in agreement_svc.list_agreements(deps, "brand"):
            if state.terms.name.startswith("tier-insights") and state.status.value in ("active", "proposed"):
                agreement_svc.revoke(deps, "brand", state.id)


def _journey(page, server, shoot):
    # brand: declare rights on its customers from the dataset's page
    log_in(page, server, "brand")
    page.goto(server["url"] + "/web/datasets/brand/customers")
    page.get_by_role("link", name=re.compile("^Rights")).click()
    page.wait_for_url(re.compile(r"/web/datasets/brand/customers/rights$"))
    expect(page.get_by_test_id("no-rights")).to_be_visible()
    page.get_by_label("Legal basis").select_option("contract")
    page.get_by_label("Purposes it may be shared for").fill("analytics")
    page.get_by_label("Columns never shared").fill("email")
    page.get_by_label("Attested by").fill("Brand DPO")
    page.get_by_role("button", name="Declare").click()
    assert page.get_by_role("status").inner_text() == "Rights declared."
    expect(page.get_by_role("row", name=re.compile(r"v1\s+contract\s+analytics"))).to_be_visible()
    shoot(page, "market-01-brand-rights")

    # brand: publish a listing
    page.get_by_role("link", name="Catalogue").click()
    page.get_by_role("link", name="Your listings and requests").click()
    page.get_by_label(re.compile("^Listing \\(YAML")).fill(yaml.safe_dump(LISTING))
    page.get_by_role("button", name="Publish").click()
    page.wait_for_url(re.compile(r"/web/listings/[0-9a-f]+\?done=published$"))
    listing_url = page.url.split("?")[0]
    assert page.get_by_test_id("usage").inner_text().startswith("0 partners")
    log_out(page)

    # retailer: find it, get it at once for reporting, ask for analytics (reviewed)
    log_in(page, server, "retailer")
    page.get_by_role("link", name="Catalogue").click()
    page.get_by_label("Search listings").fill("loyalty")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="Loyalty tiers").click()
    page.wait_for_url(listing_url)
    assert "contract" in page.get_by_role("table").first.inner_text()
    shoot(page, "market-02-retailer-listing")
    page.get_by_label("Purpose").fill("analytics.reporting")
    page.get_by_role("button", name="Request").click()
    page.wait_for_url(re.compile(r"\?done=active$"))
    assert page.get_by_role("status").inner_text().startswith("Granted")
    page.get_by_label("Purpose").fill("analytics")
    page.get_by_role("button", name="Request").click()
    page.wait_for_url(re.compile(r"\?done=pending$"))
    page.get_by_label("Purpose").fill("personalize")
    page.get_by_role("button", name="Request").click()
    assert "purpose personalize is outside the declared rights" in page.get_by_role("main").inner_text()
    log_out(page)

    # brand: approve the reviewed request, then narrow its rights to reporting only
    log_in(page, server, "brand")
    page.goto(server["url"] + "/web/listings/mine")
    review = page.get_by_test_id("review")
    assert "retailer asks for" in review.inner_text()
    review.get_by_label(re.compile("^Approve")).check()
    review.get_by_label(re.compile("^Note to")).fill("welcome")
    shoot(page, "market-03-brand-review")
    review.get_by_role("button", name="Send decision").click()
    page.wait_for_url(re.compile(r"\?done=decided$"))
    assert page.get_by_role("row", name=re.compile(r"Loyalty tiers\s+published")).inner_text().count("(1)") == 2
    page.goto(server["url"] + "/web/datasets/brand/customers/rights")
    page.get_by_label("Legal basis").select_option("contract")
    page.get_by_label("Purposes it may be shared for").fill("analytics.reporting")
    page.get_by_role("button", name="Declare").click()
    suspended = page.get_by_test_id("suspended")
    assert "purpose analytics is outside the declared rights (analytics.reporting)" in suspended.inner_text()
    shoot(page, "market-04-brand-narrowed")
    log_out(page)

    # retailer: the notice, and the agreement shown suspended
    log_in(page, server, "retailer")
    page.get_by_role("link", name="Notices").click()
    notice = page.get_by_role("link", name=re.compile("is suspended"))
    expect(notice).to_be_visible()
    shoot(page, "market-05-retailer-notices")
    notice.click()
    assert page.get_by_test_id("status").inner_text() == "suspended"
    assert page.csp_errors == []
    log_out(page)
