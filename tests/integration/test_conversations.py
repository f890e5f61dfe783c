"""Scenario: a retailer asks its customers a question, through the CLI, on SQLite and PostgreSQL.

Seven customers answer with different sharing choices. A brand partner's aggregate query sees
only the answers of people who chose the brand, with groups under k suppressed; a person who
withdraws, or who has their data erased, is no longer counted by the next query; a receipt
shows the use; a person disputes the receipt and the retailer answers in the same thread.
"""

from __future__ import annotations

import pytest

from .data import write_yaml

AR = "analytics.reporting"
ADS = "marketing.advertising.first_party.targeted"
SURVEY = {"name": "feedback", "title": "How was your last visit?", "purposes": [AR, ADS], "partners": ["brand"],
          "min_group_size": 3,
          "questions": [
              {"id": "satisfaction", "text": "How happy were you?", "type": "choice",
               "options": ["happy", "meh", "unhappy"]},
              {"id": "spend", "text": "What did you spend?", "type": "number", "min": 0, "max": 10000},
              {"id": "recommend", "text": "Would you recommend us?", "type": "yes_no"},
              {"id": "remarks", "text": "Anything else?", "type": "text"}]}
# person -> (satisfaction, sharing choices)
PEOPLE = {
    "p0": ("happy", [f"brand:{AR}", f"retailer:{AR}"]),
    "p1": ("happy", [f"brand:{AR}", f"retailer:{AR}"]),
    "p2": ("happy", [f"brand:{AR}", f"retailer:{AR}"]),
    "p3": ("happy", [f"brand:{AR}", f"retailer:{AR}", f"brand:{ADS}"]),
    "p4": ("unhappy", [f"brand:{AR}"]),
    "p5": ("happy", [f"retailer:{AR}"]),
    "p6": ("happy", []),
}
QUERY = "SELECT satisfaction, COUNT(*) AS people FROM retailer.feedback__brand GROUP BY satisfaction"
SECRET_REMARK = "my neighbour Bob steals trolleys"


def _person(cli, name: str, subject: str) -> None:
    code = cli("subject", "invite", "--as", "retailer", "--subject", subject, "--json")[1]["code"]
    cli("party", "add", name, "--kind", "individual")
    cli("subject", "claim", code, "--as", name)


def _agreement(cli, tmp_path, dataset: str, recipient: str = "brand", mode: str = "aggregate", k: int = 3,
               expect: int = 0):
    doc = {"name": f"survey-{recipient}-{mode}-{k}", "provider": "retailer", "recipients": [recipient],
           "purposes": [AR], "valid_until": "2099-12-31",
           "datasets": {dataset: {"fields": {"respondent": "hash", "satisfaction": "raw", "spend": "raw",
                                             "recommend": "raw", "remarks": "drop"}}},
           "access": {"mode": mode, "min_group_size": k}}
    return cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", doc), "--json",
               expect=expect)[1]


@pytest.fixture
def surveyed(cli, tmp_path):
    for org in ("retailer", "brand", "other"):
        cli("party", "add", org)
    for n, name in enumerate(PEOPLE):
        _person(cli, name, f"C{n:04d}")
    survey = cli("survey", "create", "--as", "retailer", write_yaml(tmp_path / "s.yaml", SURVEY), "--json")[1]
    for n, (name, (satisfaction, share)) in enumerate(PEOPLE.items()):
        args = ["--set", f"satisfaction={satisfaction}", "--set", f"spend={10 * n}", "--set", "recommend=yes"]
        if name == "p1":
            args += ["--set", f"remarks={SECRET_REMARK}"]
        for choice in share:
            args += ["--share", choice]
        cli("survey", "answer", survey["id"], "--as", name, *args, "--json")
    made = _agreement(cli, tmp_path, "retailer.feedback__brand")
    cli("agreement", "accept", "--as", "brand", made["id"])
    return cli, survey


def _newcomers(cli, survey_id: str, first: int) -> None:
    """Three more customers answer "happy" and share with the brand."""
    for n in range(first, first + 3):
        _person(cli, f"p{n}", f"C{n:04d}")
        cli("survey", "answer", survey_id, "--as", f"p{n}", "--set", "satisfaction=happy", "--share", f"brand:{AR}")


def _brand_counts(cli) -> tuple[dict[str, int], int]:
    result = cli("query", "--as", "brand", "--purpose", AR, QUERY, "--json")[1]
    return {row[0]: row[1] for row in result["rows"]}, result["suppressed_groups"]


def test_survey_answers_are_governed_end_to_end(surveyed, tmp_path):
    cli, survey = surveyed
    assert survey["datasets"] == {"retailer": "retailer.feedback", "brand": "retailer.feedback__brand"}

    # The brand counts only the people who chose it (p0-p4); p4's lone "unhappy" is suppressed.
    counts, suppressed = _brand_counts(cli)
    assert counts == {"happy": 4} and suppressed == 1

    # p1's receipt shows the brand's use of the answer; p5 and p6 (who did not choose the brand) have none.
    receipts = cli("subject", "receipts", "--as", "p1", "--json")[1]
    used = [r for r in receipts if r["party"] == "brand"]
    assert len(used) == 1 and used[0]["dataset"] == "retailer.feedback__brand" and used[0]["purpose"] == AR
    assert "satisfaction" in used[0]["fields"]
    for name in ("p5", "p6"):
        assert not [r for r in cli("subject", "receipts", "--as", name, "--json")[1] if r["party"] == "brand"]

    # p0 withdraws the brand: the very next query no longer counts them, and gets no receipt for it.
    # (Three newcomers answer meanwhile: a result differing from the last by one person would be
    # refused by the differencing defence, as it would reveal that person.)
    shown = cli("survey", "share", survey["id"], "--as", "p0", "--share", f"retailer:{AR}", "--json")[1]
    assert shown["sharing"] == [{"party": "retailer", "purpose": AR}]
    _newcomers(cli, survey["id"], 7)
    assert _brand_counts(cli)[0] == {"happy": 6}  # p1-p3 and three newcomers; with p0 it would be 7
    assert len([r for r in cli("subject", "receipts", "--as", "p0", "--json")[1] if r["party"] == "brand"]) == 1

    # The retailer's results count only who allowed the retailer this purpose, in groups of ≥ 3.
    results = cli("survey", "results", survey["id"], "--as", "retailer", "--purpose", AR, "--json")[1]
    by_id = {q["id"]: q["groups"] for q in results["questions"]}
    assert results["answers"] == 10 and by_id["satisfaction"] == [{"answer": "happy", "people": 5}]
    assert by_id["spend"] == [{"people": 5, "mean": pytest.approx((0 + 10 + 20 + 30 + 50) / 5)}]
    # For a purpose nobody allowed the retailer, nothing is counted.
    nobody = cli("survey", "results", survey["id"], "--as", "retailer", "--purpose", ADS, "--json")[1]
    assert all(q["groups"] == [] for q in nobody["questions"])

    # p2 erases their data at the retailer: the answers lose them now and in every later version
    # (three more newcomers' answers each publish a new version).
    cli("subject", "erase", "--as", "p2", "--controller", "retailer")
    # The older versions still on disk go when the retailer purges them (the latest stays).
    purged = cli("dataset", "purge", "feedback__brand", "--as", "retailer", "--json")[1]
    assert purged["purged"] == list(range(1, purged["kept"]))  # every version but the latest
    assert "nothing to purge" in cli("dataset", "purge", "feedback__brand", "--as", "retailer")[2]
    cli("dataset", "purge", "feedback__brand", "--as", "brand", expect=4)  # only the owner's own datasets
    _newcomers(cli, survey["id"], 10)
    assert _brand_counts(cli)[0] == {"happy": 8}  # 6 - p2 + 3: p2 did not come back
    assert cli("survey", "show", survey["id"], "--as", "retailer", "--json")[1]["answers"] == 12
    # p2 may answer again; what they chose before the erasure does not carry over.
    again = cli("survey", "answer", survey["id"], "--as", "p2", "--set", "satisfaction=happy",
                "--share", f"retailer:{AR}", "--json")[1]
    assert again["sharing"] == [{"party": "retailer", "purpose": AR}]
    assert _brand_counts(cli)[0] == {"happy": 8}

    # The person sees their own answer and choices; the ledger never holds an answer value.
    mine = cli("survey", "show", survey["id"], "--as", "p1", "--json")[1]
    assert mine["your_answer"]["remarks"] == SECRET_REMARK and mine["answered"]
    ledger = cli("audit", "log", "--json")[2]
    assert SECRET_REMARK not in ledger and '"survey.answered"' in ledger and "C0001" not in ledger


def test_dispute_a_receipt_and_the_retailer_answers(surveyed):
    cli, survey = surveyed
    _brand_counts(cli)
    receipt = next(r for r in cli("subject", "receipts", "--as", "p1", "--json")[1] if r["party"] == "brand")
    opened = cli("thread", "open", "--as", "p1", "--receipt", receipt["ledger_index"], "--kind", "dispute",
                 "--message", "I never agreed to the brand seeing this", "--json")[1]
    assert opened["controller"] == "retailer" and opened["status"] == "open" and opened["kind"] == "dispute"

    # The retailer sees it among its open threads and answers; the person sees the answer.
    assert [t["id"] for t in cli("thread", "list", "--as", "retailer", "--open", "--json")[1]] == [opened["id"]]
    cli("thread", "reply", opened["id"], "--as", "retailer", "--message", "You chose brand:analytics.reporting on 23 Nov")
    seen = cli("thread", "show", opened["id"], "--as", "p1", "--json")[1]
    assert seen["status"] == "answered" and [m["author"] for m in seen["messages"]] == ["p1", "retailer"]

    # Nobody else sees the thread, or can tell it exists; a receipt that is not yours cannot be disputed.
    for stranger in ("brand", "p0"):
        cli("thread", "show", opened["id"], "--as", stranger, expect=4)
        cli("thread", "reply", opened["id"], "--as", stranger, "--message", "hi", expect=4)
    cli("thread", "open", "--as", "p6", "--receipt", receipt["ledger_index"], "--message", "?", expect=4)
    cli("thread", "open", "--as", "p1", "--message", "neither", expect=2)

    cli("thread", "close", opened["id"], "--as", "p1")
    cli("thread", "reply", opened["id"], "--as", "retailer", "--message", "late", expect=2)
    assert "never agreed" not in cli("audit", "log", "--json")[2]


def test_survey_answers_go_only_to_the_chosen_party_in_aggregate(surveyed, tmp_path):
    cli, survey = surveyed
    # The brand's copy cannot go to anyone else, the retailer's own copy cannot go to the brand,
    # and neither leaves as rows or under a k below the survey's.
    for dataset, recipient, mode, k in (("retailer.feedback__brand", "other", "aggregate", 3),
                                        ("retailer.feedback", "brand", "aggregate", 3),
                                        ("retailer.feedback__brand", "brand", "rows", 3),
                                        ("retailer.feedback__brand", "brand", "aggregate", 2)):
        refusal = _agreement(cli, tmp_path, dataset, recipient, mode, k, expect=3)
        assert refusal["error"] == "refused" and any(dataset in reason for reason in refusal["reasons"])


def test_bad_answers_and_choices_are_bad_input(surveyed):
    cli, survey = surveyed
    _person(cli, "p9", "C0009")
    sid = survey["id"]
    for args in (["--set", "satisfaction=ecstatic"], ["--set", "spend=-1"], ["--set", "recommend=maybe"],
                 ["--set", "nope=1"], ["--set", "satisfaction=happy", "--share", "other:" + AR],
                 ["--set", "satisfaction=happy", "--share", "brand:finance"], ["--set", "satisfaction=happy", "--share", "brand"]):
        cli("survey", "answer", sid, "--as", "p9", *args, expect=2)
    cli("survey", "answer", sid, "--as", "p1", "--set", "satisfaction=meh", expect=2)  # answered already
    # Someone not linked to the retailer cannot see or answer its survey.
    cli("party", "add", "stranger", "--kind", "individual")
    cli("survey", "show", sid, "--as", "stranger", expect=4)
    cli("survey", "answer", sid, "--as", "stranger", "--set", "satisfaction=happy", expect=4)
    cli("survey", "results", sid, "--as", "brand", "--purpose", AR, expect=4)
    assert cli("survey", "list", "--as", "stranger", "--json")[1] == []
