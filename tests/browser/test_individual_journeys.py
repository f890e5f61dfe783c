"""The individuals' journeys, end to end in chromium against a real server over the demo store.

Alice logs in with her token, sees her data and downloads it, opens her syrup coupon and reads
why she got it (the computation, the fields and her own values), accepts it releasing one term,
withdraws a consent, reads her receipts, flags a wrong value and logs out. A newcomer signs up
with a claim code the retailer issued. And the consent toggle and the offer's accept form work
with the keyboard alone.
"""

from __future__ import annotations

import csv
import re
from typing import Any

from playwright.sync_api import expect

from commonground.services import offers as offer_svc
from commonground.services import subjects as subject_svc


def syrup_buyers(server: dict[str, Any]) -> list[str]:
    """The demo's maple syrup buyers in file order (the first is Alice); each has a pending coupon."""
    seen: list[str] = []
    with open(server["deps"].home / "demo-input" / "purchases.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["product"] == "maple syrup" and row["customer_id"] not in seen:
                seen.append(row["customer_id"])
    return seen


def log_in(page: Any, server: dict[str, Any], token: str, name: str) -> None:
    page.goto(server["url"] + "/web/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/web/me/data$"))
    assert page.get_by_test_id("party").inner_text() == name


def log_out(page: Any) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/web/login\?bye=1$"))
    assert page.get_by_role("status").inner_text() == "You are logged out."


def tab_to(page: Any, predicate: str, presses: int = 40) -> None:
    """Press Tab until `predicate` (JS over document.activeElement, as `el`) holds."""
    check = f"(() => {{ const el = document.activeElement; return !!({predicate}); }})()"
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(check):
            return
    raise AssertionError(f"never reached an element where {predicate}")


def test_alice_journey(page, server, shoot):
    # log in: her own navigation, her data per controller and dataset
    log_in(page, server, server["tokens"]["alice"], "alice")
    nav = page.get_by_role("navigation", name="Main")
    assert nav.get_by_role("link").all_inner_texts() == ["My data", "Offers", "Consents", "Receipts", "Requests",
                                                         "Surveys", "Threads", "Claim a code", "Ledger"]
    expect(page.get_by_role("heading", name="Held by retailer")).to_be_visible()
    purchases = page.get_by_test_id("data-retailer.purchases")
    assert purchases.locator("thead th").all_inner_texts()[:4] == ["customer_id", "store_zip", "age", "product"]
    assert "maple syrup" in purchases.inner_text()
    with page.expect_download() as download:
        page.get_by_test_id("download").click()
    assert re.fullmatch(r"commonground-alice-\d{4}-\d\d-\d\d\.json", download.value.suggested_filename)
    shoot(page, "11-alice-data")

    # the offer: what, from whom, why (the computation, the fields, her values), what accepting grants
    nav.get_by_role("link", name="Offers").click()
    page.get_by_role("link", name="A coupon for your favourite syrup").click()
    page.wait_for_url(re.compile(r"/web/me/offers/[0-9a-f]+$"))
    assert page.get_by_test_id("offer-status").inner_text() == "pending"
    assert page.get_by_test_id("offer-from").inner_text() == "brand"
    why = page.get_by_test_id("why")
    expect(why.get_by_role("heading", name="Why am I seeing this?")).to_be_visible()
    assert "WHERE product = 'maple syrup'" in page.get_by_test_id("offer-sql").inner_text()
    assert page.get_by_test_id("fields-used").inner_text() == "product, spend"
    values = page.get_by_test_id("your-values")
    assert values.locator("thead th").all_inner_texts() == ["product", "spend"]
    assert set(values.locator("tbody td:first-child").all_inner_texts()) == {"maple syrup"}
    assert page.get_by_test_id("grants").inner_text() == "Accepting gives no consent to anything else."
    shoot(page, "12-alice-offer-why")

    # accept, releasing only the coupon term
    page.get_by_label(re.compile(r"the term coupon")).check()
    assert not page.get_by_label(re.compile(r"your spend values")).is_checked()
    page.get_by_role("button", name="Accept offer").click()
    page.wait_for_url(re.compile(r"\?done=accepted$"))
    assert page.get_by_test_id("offer-status").inner_text() == "accepted"
    assert page.get_by_test_id("released").inner_text() == "coupon: maple syrup, 20% off"
    offer_id = page.url.split("?")[0].rsplit("/", 1)[1]
    (mine,) = [o for o in offer_svc.batch(server["deps"], "brand", _batch_of(server)) if o["id"] == offer_id]
    assert mine["released"] == {"coupon": "maple syrup, 20% off"}  # exactly what the brand now sees
    shoot(page, "13-alice-offer-accepted")

    # withdraw a consent
    nav.get_by_role("link", name="Consents").click()
    row = page.get_by_test_id("consent-row").filter(has_text="marketing.advertising.first_party.targeted")
    assert row.get_by_test_id("consent-in-use").inner_text() == "yes, used now"
    row.get_by_role("button", name=re.compile(r"^Withdraw")).click()
    page.wait_for_url(re.compile(r"/web/me/consents\?done=withdrawn"))
    assert page.get_by_test_id("consent-done").inner_text().startswith("Consent withdrawn")
    assert row.get_by_test_id("consent-status").inner_text().startswith("withdrawn")
    assert row.get_by_test_id("consent-in-use").inner_text() == "no"
    expect(row.get_by_role("button", name=re.compile(r"^Allow"))).to_be_visible()
    shoot(page, "14-alice-consent-withdrawn")

    # receipts: every computation over her rows, the offer linked, ledger indexes
    nav.get_by_role("link", name="Receipts").click()
    receipts = page.get_by_test_id("receipt")
    expect(receipts.nth(1)).to_be_visible()  # at least two; waits for the page the click opens
    offer_row = receipts.filter(has=page.get_by_role("link", name="offer"))
    assert "brand" in offer_row.inner_text() and "product, spend" in offer_row.inner_text()
    assert re.fullmatch(r"\d+", offer_row.locator("td.num").inner_text())
    assert receipts.filter(has_text="analytics.reporting").count() >= 1  # the brand's governed query
    shoot(page, "15-alice-receipts")

    # flag a wrong value
    nav.get_by_role("link", name="Requests").click()
    page.get_by_label("Dataset").select_option("retailer.customers")
    page.get_by_label("Column").select_option("email")
    page.get_by_label("What it should be").fill("alice@example.org")
    page.get_by_label("Comment (optional)").fill("I moved")
    page.get_by_role("button", name="Send correction request").click()
    page.wait_for_url(re.compile(r"\?done=corrected$"))
    request = page.get_by_test_id("my-request").first
    assert "alice@example.org" in request.inner_text()
    assert request.get_by_test_id("request-status").inner_text() == "open"
    shoot(page, "16-alice-correction")

    log_out(page)
    page.goto(server["url"] + "/web/me/offers")  # the session is gone
    assert page.url.endswith("/web/login")
    assert page.csp_errors == [], page.csp_errors


def _batch_of(server: dict[str, Any]) -> str:
    (batch,) = offer_svc.batches(server["deps"], "brand")
    return batch["batch"]


def test_sign_up_with_a_claim_code(page, server, shoot):
    code, _ = subject_svc.invite(server["deps"], "retailer", syrup_buyers(server)[1])
    page.goto(server["url"] + "/")
    page.get_by_role("link", name="Sign up with your claim code").click()
    page.wait_for_url(re.compile(r"/web/signup$"))
    page.get_by_label("Claim code").fill("claim_not-a-real-code")
    page.get_by_label("Choose a name").fill("newcomer")
    page.get_by_role("button", name="Sign up").click()
    assert "invalid, expired or already used claim code" in page.get_by_test_id("signup-error").inner_text()
    assert page.get_by_label("Choose a name").input_value() == "newcomer"
    page.get_by_label("Claim code").fill(code)
    shoot(page, "17-signup")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Welcome, newcomer")).to_be_visible()
    token = page.get_by_label("Your API token").input_value()
    assert token.startswith("cg_") and "only this once" in page.locator("main").inner_text()
    shoot(page, "18-signup-token")
    page.get_by_role("link", name="Continue to your data").click()
    assert page.get_by_test_id("party").inner_text() == "newcomer"
    expect(page.get_by_role("heading", name="Held by retailer")).to_be_visible()
    log_out(page)
    log_in(page, server, token, "newcomer")  # the token shown once works
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Offers").click()
    expect(page.get_by_role("link", name="A coupon for your favourite syrup")).to_be_visible()
    assert page.csp_errors == [], page.csp_errors


def test_consent_toggle_and_offer_accept_by_keyboard(page, server, shoot):
    deps = server["deps"]
    code, _ = subject_svc.invite(deps, "retailer", syrup_buyers(server)[2])
    _, token = subject_svc.register(deps, "keyboard_kim", code)

    page.goto(server["url"] + "/web/login")
    page.locator("body").focus()
    tab_to(page, "el.id === 'token'")
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/web/me/data$"))

    # the consent toggle
    page.goto(server["url"] + "/web/me/consents")
    page.locator("body").focus()
    tab_to(page, "el.id === 'toggle-1'")
    assert page.evaluate("document.activeElement.textContent").startswith("Withdraw")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?done=withdrawn"))
    (consent,) = subject_svc.consents(deps, "keyboard_kim")
    assert consent["status"] == "withdrawn" and not consent["in_use"]

    # the offer: tick one release with Space, accept with Enter
    (offer,) = offer_svc.inbox(deps, "keyboard_kim")
    page.goto(f"{server['url']}/web/me/offers/{offer['id']}")
    page.locator("body").focus()
    tab_to(page, "el.type === 'checkbox' && el.value === 'syrup_spend'")
    page.keyboard.press("Space")
    tab_to(page, "el.textContent === 'Accept offer'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?done=accepted$"))
    shown = offer_svc.show(deps, "keyboard_kim", offer["id"])
    assert shown["status"] == "accepted" and list(shown["released"]) == ["syrup_spend"]
    shoot(page, "19-keyboard-offer-accepted")
