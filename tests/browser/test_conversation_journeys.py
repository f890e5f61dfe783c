"""Conversations in chromium against a real server over the demo store: the retailer asks a
survey; a customer answers it in her portal with her sharing choices, narrows them, disputes an
offer from her receipts; the retailer answers the thread on its side and she reads the answer.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from commonground.services import conversations as survey_svc
from commonground.services import parties as party_svc
from commonground.services import subjects as subject_svc

from .test_individual_journeys import syrup_buyers


def _log_in(page: Any, server: dict[str, Any], token: str, lands: str) -> None:
    page.goto(server["url"] + "/web/login")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(lands))


def test_survey_answer_and_dispute(page, server, shoot):
    deps = server["deps"]
    survey = survey_svc.create_survey(deps, "retailer", {
        "name": "browser_visit", "title": "How was your visit?", "purposes": ["analytics.reporting"],
        "partners": ["brand"], "questions": [
            {"id": "mood", "text": "How did you feel?", "type": "choice", "options": ["good", "bad"]},
            {"id": "minutes", "text": "Minutes in the shop", "type": "number", "min": 0},
            {"id": "again", "text": "Will you come again?", "type": "yes_no"}]})
    code, _ = subject_svc.invite(deps, "retailer", syrup_buyers(server)[5])
    party_svc.add_party(deps, "bea", "individual")
    subject_svc.claim(deps, "bea", code)
    _log_in(page, server, party_svc.create_token(deps, "bea")[1], r"/web/me/data$")

    # her surveys, then the answer form: questions and one tick per party and purpose, none ticked
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Surveys").click()
    page.get_by_role("link", name="How was your visit?").click()
    form = page.get_by_test_id("answer-form")
    boxes = form.get_by_test_id("sharing").get_by_role("checkbox")
    expect(boxes).to_have_count(2)  # waits for the page the click opens
    assert not any(boxes.nth(i).is_checked() for i in range(2))
    form.get_by_role("checkbox", name="retailer for analytics.reporting").check()
    form.get_by_role("checkbox", name="brand for analytics.reporting").check()
    form.get_by_role("button", name="Send my answer").click()
    # nothing answered: the form comes back with the reason, her ticks kept
    assert "answer at least one question" in page.get_by_test_id("survey-error").inner_text()
    assert page.get_by_role("checkbox", name="brand for analytics.reporting").is_checked()
    page.get_by_role("radio", name="bad").check()
    page.get_by_label("Minutes in the shop").fill("25")
    page.get_by_role("group", name="Will you come again?").get_by_role("radio", name="yes").check()
    page.get_by_role("button", name="Send my answer").click()
    assert "your answer is saved" in page.get_by_test_id("survey-done").inner_text()
    assert page.get_by_test_id("my-answer").inner_text().split("\n") == [
        "How did you feel?", "bad", "Minutes in the shop", "25.0", "Will you come again?", "yes"]
    shoot(page, "conversations-01-answered")

    # she takes the brand off; the store holds exactly her new choice
    page.get_by_role("checkbox", name="brand for analytics.reporting").uncheck()
    page.get_by_role("button", name="Save my choice").click()
    assert "very next computation" in page.get_by_test_id("survey-done").inner_text()
    assert survey_svc.show_survey(deps, "bea", survey["id"])["sharing"] == [
        {"party": "retailer", "purpose": "analytics.reporting"}]

    # from a receipt (her syrup coupon), she opens a dispute
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Receipts").click()
    page.get_by_test_id("discuss").first.click()
    page.get_by_role("radio", name="A dispute: I object to this use").check()
    page.get_by_label("Your message").fill("I do not want coupons built from my purchases.")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(re.compile(r"/web/me/threads/[0-9a-f]+$"))
    thread_url = page.url
    assert page.get_by_test_id("thread-status").inner_text() == "open"

    # the retailer sees it under Threads and answers it
    retailer = page.context.browser.new_context().new_page()
    _log_in(retailer, server, server["tokens"]["retailer"], r"/web/datasets$")
    retailer.get_by_role("navigation", name="Main").get_by_role("link", name="Threads").click()
    row = retailer.get_by_test_id("thread-row").filter(has_text="bea")
    assert "dispute" in row.inner_text() and "open" in row.inner_text()
    row.get_by_role("link").click()
    retailer.get_by_label("Your message").fill("We have stopped them; sorry.")
    retailer.get_by_role("button", name="Send").click()
    expect(retailer.get_by_test_id("thread-status")).to_have_text("answered")  # the same page, reloaded
    retailer.context.close()

    # she reads the answer and closes the thread; a closed thread has no reply form
    page.goto(thread_url)
    assert page.get_by_test_id("message").all_inner_texts()[-1].startswith("retailer")
    assert "We have stopped them" in page.get_by_test_id("messages").inner_text()
    page.get_by_role("button", name="Close the thread").click()
    expect(page.get_by_test_id("thread-status")).to_have_text("closed")
    expect(page.get_by_test_id("reply-form")).to_have_count(0)
    shoot(page, "conversations-02-thread")
    assert not page.csp_errors  # type: ignore[attr-defined]
