"""Conversations through the HTTP API and the SDK, on SQLite and PostgreSQL: a survey answered by
people signed up with claim codes, a partner's aggregate, a thread about an offer, scopes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from commonground import Client
from commonground.api.app import create_app
from commonground.client import ApiError
from commonground.services import parties as party_svc

AR = "analytics.reporting"
SURVEY = {"name": "delivery", "title": "Was your delivery on time?", "purposes": [AR], "partners": ["courier"],
          "min_group_size": 3,
          "questions": [{"id": "on_time", "text": "On time?", "type": "yes_no"},
                        {"id": "minutes_late", "text": "How late (minutes)?", "type": "number", "min": 0}]}


@pytest.fixture
def parties(make_deps):
    deps = make_deps()
    app = create_app(deps)
    tokens = {n: (party_svc.add_party(deps, n), party_svc.create_token(deps, n)[1])[1] for n in ("shop", "courier")}
    clients = {n: Client(token=t, http=TestClient(app)) for n, t in tokens.items()}
    for n in range(5):
        person = Client(http=TestClient(app))
        person.sign_up(clients["shop"].invite(f"S{n}")["code"], f"person{n}")
        clients[f"person{n}"] = person
    return deps, clients


def test_survey_and_thread_through_the_sdk(parties):
    deps, c = parties
    shop, courier = c["shop"], c["courier"]
    survey = shop.create_survey(SURVEY)
    assert survey["datasets"]["courier"] == "shop.delivery__courier"
    assert [s["id"] for s in c["person0"].surveys()] == [survey["id"]] and not c["person0"].surveys()[0]["answered"]
    for n in range(5):
        late = n >= 3  # person3 and person4 were late; only persons 0-3 share with the courier
        share = ((("courier", AR),) if n < 4 else ()) + (("shop", AR),)
        c[f"person{n}"].answer_survey(survey["id"], {"on_time": not late, "minutes_late": 20 * late}, share)
    terms = {"name": "delivery-insights", "provider": "shop", "recipients": ["courier"], "purposes": [AR],
             "valid_until": "2099-12-31", "access": {"mode": "aggregate", "min_group_size": 3},
             "datasets": {"shop.delivery__courier": {"fields": {"respondent": "hash", "on_time": "raw",
                                                                "minutes_late": "raw"}}}}
    courier.accept(shop.propose(terms)["id"])
    result = courier.query("SELECT on_time, COUNT(*) AS n FROM shop.delivery__courier GROUP BY on_time", AR)
    assert result["rows"] == [[True, 3]] and result["suppressed_groups"] == 1  # person3 alone is late

    # person1 narrows their choice: the next aggregate drops them (2 left: suppressed).
    assert c["person1"].share_answer(survey["id"], (("shop", AR),))["sharing"] == [{"party": "shop", "purpose": AR}]
    assert courier.query("SELECT COUNT(*) AS n FROM shop.delivery__courier WHERE on_time", AR)["rows"] == []

    results = shop.survey_results(survey["id"], AR)
    assert results["answers"] == 5
    assert {q["id"]: q["groups"] for q in results["questions"]}["on_time"] == [{"answer": True, "people": 3}]

    receipt = next(r for r in c["person0"].receipts() if r["party"] == "courier")
    opened = c["person0"].open_thread("receipt", receipt["ledger_index"], "Which delivery was this about?")
    assert [t["id"] for t in shop.threads(open_only=True)] == [opened["id"]]
    assert shop.reply_thread(opened["id"], "All of your deliveries in November.")["status"] == "answered"
    assert c["person0"].thread(opened["id"])["messages"][-1]["author"] == "shop"
    assert c["person0"].close_thread(opened["id"])["status"] == "closed"
    for outsider in (courier, c["person2"]):
        with pytest.raises(ApiError) as hidden:
            outsider.thread(opened["id"])
        assert hidden.value.status == 404
    with pytest.raises(ApiError) as hidden:
        courier.survey(survey["id"])
    assert hidden.value.status == 404


def test_results_need_a_query_token(parties):
    deps, c = parties
    survey = c["shop"].create_survey(SURVEY)
    read_only = Client(token=party_svc.create_token(deps, "shop", scope="read")[1], http=c["shop"].http)
    assert read_only.survey(survey["id"])["name"] == "delivery"
    with pytest.raises(ApiError) as refused:
        read_only.survey_results(survey["id"], AR)
    assert refused.value.status == 403
    query_token = Client(token=party_svc.create_token(deps, "shop", scope="query")[1], http=c["shop"].http)
    assert query_token.survey_results(survey["id"], AR)["answers"] == 0


def test_answers_at_the_same_moment_all_land(parties):
    """People answering at once: every answer is stored and the last published version holds them all."""
    from concurrent.futures import ThreadPoolExecutor

    from commonground.services import conversations as conversation_svc
    from commonground.services import datasets as dataset_svc
    deps, c = parties
    survey = c["shop"].create_survey(SURVEY)

    def answer(n: int) -> None:
        conversation_svc.answer(deps, f"person{n}", survey["id"], {"on_time": True, "minutes_late": n},
                                [("shop", AR)])

    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(answer, range(5)))
    assert c["shop"].survey_results(survey["id"], AR)["answers"] == 5
    latest, _ = dataset_svc.show_dataset(deps, "shop", "delivery")
    assert latest.rows == 5  # the answers' newest version holds everyone's
