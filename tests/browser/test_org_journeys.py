"""The organisations' journeys, end to end in chromium against a real server over the demo store.

retailer logs in, reads a dataset, builds and proposes an agreement; brand accepts it, runs a
governed query and a refused one, reads the balance chart and the verified ledger, logs out.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

SEGMENT_QUERY = "SELECT segment, COUNT(DISTINCT customer_id) AS people FROM retailer.customers GROUP BY segment"
REFUSED_QUERY = "SELECT email, spend FROM retailer.purchases"


def log_in(page: Any, server: dict[str, Any], party: str) -> None:
    page.goto(server["url"] + "/")
    page.get_by_label("API token").fill(server["tokens"][party])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/web/datasets$"))
    assert page.get_by_test_id("party").inner_text() == party


def log_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/web/login\?bye=1$"))
    assert page.get_by_role("status").inner_text() == "You are logged out."


def test_org_journey(page, server, shoot):
    # retailer: a dataset, its schema, transforms and commitments
    log_in(page, server, "retailer")
    shoot(page, "01-retailer-datasets")
    page.get_by_role("link", name="retailer.purchases").click()
    page.wait_for_url(re.compile(r"/web/datasets/retailer/purchases$"))
    expect(page.get_by_role("heading", name="retailer.purchases")).to_be_visible()
    assert re.fullmatch(r"[0-9a-f]{64}", page.get_by_test_id("sha256").first.inner_text())
    expect(page.get_by_role("columnheader", name=re.compile("syrup-insights v1"))).to_be_visible()
    shoot(page, "02-retailer-dataset")

    # retailer: build an agreement from scratch and propose it
    page.get_by_role("link", name="Agreements").click()
    page.get_by_role("link", name="Build a new agreement").click()
    page.get_by_label("Dataset to share").select_option("retailer.customers")
    page.get_by_role("button", name="Choose fields").click()
    page.get_by_label("Agreement name").fill("segment-insights")
    page.get_by_label("Access mode").select_option("join")
    page.get_by_label("Minimum group size k").fill("10")
    page.get_by_label("brand").check()
    page.get_by_label("Purposes the data may be used for").select_option(["analytics.reporting"])
    assert not page.locator("#include-email").is_checked()  # identifiers start unshared
    page.locator("#include-zip").uncheck()
    page.get_by_label("Transform of segment").select_option("raw")
    shoot(page, "03-retailer-builder")
    page.get_by_role("button", name="Propose agreement").click()
    page.wait_for_url(re.compile(r"/web/agreements/[^/]+\?done=proposed$"))
    assert page.get_by_test_id("status").inner_text() == "proposed"
    expect(page.get_by_role("row", name=re.compile(r"email\s+dropped"))).to_be_visible()
    agreement_url = page.url.split("?")[0]
    shoot(page, "04-retailer-proposed")
    log_out(page)

    # brand: review and accept
    log_in(page, server, "brand")
    page.get_by_role("link", name="Agreements").click()
    row = page.get_by_role("row", name=re.compile("segment-insights v1"))
    assert "awaiting you" in row.inner_text()
    row.get_by_role("link").click()
    assert page.url == agreement_url
    page.get_by_role("button", name="Accept these terms").click()
    page.wait_for_url(re.compile(r"\?done=accepted$"))
    assert page.get_by_test_id("status").inner_text() == "active"
    shoot(page, "05-brand-accepted")

    # brand: a governed query, then a refused one
    page.get_by_role("link", name="Query").click()
    page.get_by_label("Purpose").select_option("analytics.reporting")
    page.get_by_label("SQL").fill(SEGMENT_QUERY)
    page.get_by_role("button", name="Run").click()
    results = page.get_by_test_id("results")
    results.wait_for()
    assert results.locator("thead th").all_inner_texts() == ["segment", "people"]
    assert results.locator("tbody tr").count() == 4
    assert all(int(v.replace(",", "")) >= 10 for v in results.locator("tbody td:nth-child(2)").all_inner_texts())
    assert page.get_by_test_id("suppressed").inner_text() == "0"
    shoot(page, "06-brand-query")
    page.get_by_role("button", name="Explain").click()
    assert "SELECT" in page.get_by_test_id("explain").inner_text().upper()
    page.get_by_label("SQL").fill(REFUSED_QUERY)
    page.get_by_role("button", name="Run").click()
    reasons = page.get_by_test_id("reasons")
    reasons.wait_for()
    assert reasons.locator("li").count() >= 1 and "email" in reasons.inner_text()
    shoot(page, "07-brand-refused")

    # brand: the balance sheet as charts, the ledger verified
    page.get_by_role("link", name="Activity").click()
    charts = page.get_by_test_id("balance").locator("svg[role=img]")
    expect(charts).to_have_count(4)  # waits for the page the click opens
    expect(page.locator("svg title", has_text="Queries run between brand and retailer")).to_have_count(1)
    shoot(page, "08-brand-balance")
    page.get_by_role("link", name="Ledger").click()
    assert page.get_by_test_id("verify").inner_text().startswith("Verified")
    assert int(page.get_by_test_id("tree-size").inner_text().replace(",", "")) > 10
    shoot(page, "09-brand-ledger")
    log_out(page)
    page.goto(agreement_url)  # the session is gone: back to the login page
    assert page.url.endswith("/web/login")
    assert page.csp_errors == [], page.csp_errors  # nothing was blocked by the CSP


def test_login_and_query_by_keyboard(page, server, shoot):
    page.goto(server["url"] + "/web/login")
    page.locator("body").focus()
    for _ in range(6):  # skip link, home link, then the token field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "token":
            break
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(server["tokens"]["brand"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/web/datasets$"))

    page.goto(server["url"] + "/web/query")
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "purpose":
            break
    assert page.evaluate("document.activeElement.id") == "purpose"
    assert page.evaluate("document.activeElement.value") == "analytics.reporting"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "sql"
    page.keyboard.press("Control+A")
    page.keyboard.type("SELECT product, COUNT(DISTINCT customer_id) AS people FROM retailer.purchases GROUP BY product")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Run"
    page.keyboard.press("Enter")
    results = page.get_by_test_id("results")
    results.wait_for()
    assert results.locator("tbody tr").count() == 5
    shoot(page, "10-keyboard-query")
