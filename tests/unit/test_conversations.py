"""The pure rules of conversations: survey documents, answers, sharing choices as consent records,
which agreements may carry survey answers, and how a thread's status moves."""

from __future__ import annotations

import pytest

from commonground.domain.conversations import (ThreadStatus, agreement_gaps, answer_schema, check_answers,
                                               check_sharing, consent_changes, parse_choice, parse_survey,
                                               status_after_message, survey_from_dict)
from commonground.domain.errors import BadInput
from commonground.domain.schema import parse_schema

DOC = {"name": "visit", "title": "How was it?", "purposes": ["analytics.reporting", "personalize"],
       "partners": ["brand"], "min_group_size": 4,
       "questions": [{"id": "mood", "text": "Mood?", "type": "choice", "options": ["good", "bad"]},
                     {"id": "minutes", "text": "Minutes?", "type": "number", "min": 0, "max": 600},
                     {"id": "again", "text": "Again?", "type": "yes_no"},
                     {"id": "note", "text": "Anything else?", "type": "text"}]}


def test_a_survey_round_trips_and_names_one_dataset_per_party():
    survey = parse_survey(DOC, "retailer")
    assert survey_from_dict(survey.to_dict()) == survey
    assert [survey.copy_name(p) for p in survey.audience] == ["visit", "visit__brand"]
    with pytest.raises(BadInput, match="not in the audience"):
        survey.copy_name("other")


@pytest.mark.parametrize("change, message", [
    ({"questions": []}, "questions must be a list of 1 to"),
    ({"purposes": []}, "at least one purpose"),
    ({"partners": ["retailer"]}, "partners are the other parties"),
    ({"min_group_size": 1}, "at least 2"),
    ({"colour": "red"}, "unknown key"),
    ({"questions": [{"id": "q", "text": "?", "type": "choice", "options": ["only"]}]}, "2 to 20 distinct options"),
    ({"questions": [{"id": "q", "text": "?", "type": "text", "options": ["a", "b"]}]}, "only choice questions"),
    ({"questions": [{"id": "q", "text": "?", "type": "number", "min": 5, "max": 1}]}, "min is above max"),
    ({"questions": [{"id": "q", "text": "?", "type": "stars"}]}, "type must be one of"),
    ({"questions": [{"id": "respondent", "text": "?", "type": "text"}]}, "not 'respondent'"),
    ({"name": "Visit!"}, "invalid survey name"),
])
def test_bad_survey_documents_name_the_problem(change, message):
    with pytest.raises(BadInput, match=message):
        parse_survey({**DOC, **change}, "retailer")


def test_answers_are_typed_and_checked():
    survey = parse_survey(DOC, "retailer")
    assert check_answers(survey, {"mood": "good", "minutes": "12.5", "again": "yes", "note": " ok "}) == {
        "mood": "good", "minutes": 12.5, "again": True, "note": "ok"}
    assert check_answers(survey, {"again": False}) == {"mood": None, "minutes": None, "again": False, "note": None}
    for bad, message in (({"mood": "great"}, "choose one of"), ({"minutes": "601"}, "from 0 up to 600"),
                         ({"minutes": "nan"}, "answer a number"), ({"again": "maybe"}, "yes or no"),
                         ({"note": "x" * 501}, "at most 500"), ({}, "at least one"), ({"other": 1}, "no question")):
        with pytest.raises(BadInput, match=message):
            check_answers(survey, bad)


def test_sharing_choices_become_consent_records_on_each_party_copy():
    survey = parse_survey(DOC, "retailer")
    before = check_sharing(survey, [("brand", "analytics.reporting"), ("retailer", "personalize")])
    after = check_sharing(survey, [("retailer", "personalize"), ("retailer", "analytics.reporting")])
    assert consent_changes(survey, before, after) == [("visit", "analytics.reporting", "granted"),
                                                      ("visit__brand", "analytics.reporting", "withdrawn")]
    assert consent_changes(survey, after, after) == []
    with pytest.raises(BadInput, match="not offered"):
        check_sharing(survey, [("other", "personalize")])
    with pytest.raises(BadInput, match="not one this survey asks for"):
        check_sharing(survey, [("brand", "marketing")])
    assert parse_choice(" brand : personalize ") == ("brand", "personalize")
    with pytest.raises(BadInput, match="PARTY:PURPOSE"):
        parse_choice("brand")


def test_the_answer_schema_gates_every_purpose_by_opt_in():
    schema = parse_schema(answer_schema(parse_survey(DOC, "retailer")))
    assert schema.consent.value == "opt_in" and schema.consent_purposes == ()  # no purpose escapes the gate
    assert schema.subject_column == "respondent"
    assert {c.name: (c.type.value, c.role.value) for c in schema.columns} == {
        "respondent": ("string", "subject_id"), "mood": ("string", "attribute"), "minutes": ("double", "attribute"),
        "again": ("boolean", "attribute"), "note": ("string", "sensitive")}


def test_a_party_copy_goes_only_to_its_party_in_aggregate_with_the_survey_k():
    copies = {"retailer.visit__brand": ("brand", 4), "retailer.visit": ("retailer", 4)}
    assert agreement_gaps(copies, ["retailer.visit__brand", "retailer.other"], ["brand"], "aggregate", 4) == []
    assert agreement_gaps(copies, ["retailer.other"], ["anyone"], "rows", 1) == []
    gaps = agreement_gaps(copies, ["retailer.visit__brand"], ["brand", "other"], "rows", 3)
    assert len(gaps) == 3 and all("retailer.visit__brand" in g for g in gaps)
    assert agreement_gaps(copies, ["retailer.visit"], ["brand"], "aggregate", 9)  # the asker's own copy


def test_thread_status_moves_with_who_writes():
    assert status_after_message(ThreadStatus.OPEN, by_person=False) is ThreadStatus.ANSWERED
    assert status_after_message(ThreadStatus.ANSWERED, by_person=True) is ThreadStatus.OPEN
    with pytest.raises(BadInput, match="closed"):
        status_after_message(ThreadStatus.CLOSED, by_person=True)


def test_the_documented_surveys_parse():
    """The survey examples of docs/formats.md and docs/conversations.md are valid surveys."""
    import re
    from pathlib import Path

    import yaml

    docs = Path(__file__).resolve().parents[2] / "docs"
    found = [yaml.safe_load(body) for name in ("formats.md", "conversations.md")
             for body in re.findall(r"```yaml\n(.*?)```", (docs / name).read_text(), re.S) if "questions:" in body]
    assert len(found) == 2
    for doc in found:
        assert parse_survey(doc, "retailer").questions
