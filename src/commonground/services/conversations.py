"""Surveys: a company asks its linked customers a question; each answer becomes data the person
owns in the store, used only by the parties and for the purposes they chose.

How an answer is governed (see domain/conversations.py for the why): the survey's answers are
written (services/answers.py, when the data is next read) as dataset versions of the asker, one copy per party of the survey's audience, each
with opt-in consent over every purpose and the person's subject id at the asker as its
subject column. A person's sharing choice is consent records on those copies, so the one
consent gate decides every query, export and receipt; a partner reads its copy only through an
aggregate agreement with k ≥ the survey's (checked at proposal, `agreement_gaps`). Erasure
(services/subjects.py) writes versions without the person and deletes their stored answers.

The ledger records that a survey was created, answered or re-shared (who, which survey, how
many choices), never an answer value.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..domain.conversations import (RESPONDENT, QuestionType, Survey, check_answers, check_sharing,
                                    consent_changes, parse_survey, survey_from_dict)
from ..domain.errors import BadInput, Conflict, NotFound
from ..domain.records import Party, PartyKind
from ..domain.vocabulary import Kind
from . import consent as consent_svc
from .answers import publish_pending
from .deps import Deps
from .parties import ledger_name, require_party
from .queries import plain, run_query
from .vocabulary import vocabulary


def create_survey(deps: Deps, asker: str, doc: Any) -> dict[str, Any]:
    """Register a survey and its (empty) answer datasets; people linked to `asker` see it at once."""
    survey = parse_survey(doc, asker)
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_party(deps, conn, asker)
        if party.kind != PartyKind.ORGANIZATION.value:
            raise BadInput("only organisations ask surveys")
        vocab = vocabulary(deps, conn)
        for purpose in survey.purposes:
            vocab.check(Kind.PURPOSE, purpose)
        for partner in survey.partners:
            found = deps.store.party_by_name(conn, partner)
            if found is None or found.kind != PartyKind.ORGANIZATION.value:
                raise BadInput(f"survey: partner {partner!r} is not an organisation of this store")
        if any(s["name"] == survey.name for s in deps.store.surveys(conn, asker_ids=[party.id])):
            raise Conflict(f"you already have a survey named {survey.name}")
        for member in survey.audience:
            name = survey.copy_name(member)
            if deps.store.dataset_id(conn, party.id, name) is not None:
                raise Conflict(f"dataset {asker}.{name} already exists; choose another survey name")
            deps.store.insert_dataset(conn, deps.new_id(), party.id, name, now)
        survey_id = deps.new_id()
        deps.store.insert_survey(conn, survey_id, party.id, survey.name, survey.to_dict(), now)
        deps.store.append_entry(conn, {"event": "survey.created", "party": asker, "survey": survey_id,
                                       "name": survey.name, "questions": len(survey.questions),
                                       "purposes": list(survey.purposes), "audience": list(survey.audience), "at": now})
    return show_survey(deps, asker, survey_id)


def _visible(deps: Deps, conn, party: Party, survey_id: str) -> tuple[dict[str, Any], str | None]:
    """The survey and, for a person, their subject id at the asker; 404 to anyone else."""
    found = deps.store.surveys(conn, survey_id=survey_id)
    if found:
        if party.kind == PartyKind.ORGANIZATION.value and found[0]["asker"] == party.name:
            return found[0], None
        for link in deps.store.links_of(conn, party.id) if party.kind == PartyKind.INDIVIDUAL.value else ():
            if link["controller_id"] == found[0]["asker_id"]:
                return found[0], link["subject"]
    raise NotFound(f"no survey {survey_id}")


def _respondent(deps: Deps, conn, individual: str, survey_id: str) -> tuple[Party, dict[str, Any], str]:
    """A person the survey is asked of, the survey, and their subject id at the asker."""
    party = require_party(deps, conn, individual)
    row, subject = _visible(deps, conn, party, survey_id)
    if subject is None:
        raise BadInput("only the people a survey is asked of answer it")
    return party, row, subject


def _copy_ids(deps: Deps, conn, survey: Survey, asker_id: str) -> dict[str, str]:
    """Party of the audience -> the dataset id of its copy of the answers."""
    return {p: deps.store.dataset_id(conn, asker_id, survey.copy_name(p)) for p in survey.audience}


def _sharing(deps: Deps, conn, survey: Survey, copies: Mapping[str, str], subject: str) -> frozenset[tuple[str, str]]:
    """Who may use this person's answer, for what, now: their latest consent record per copy and
    purpose (whether made here or with `subject grant|withdraw`)."""
    out = set()
    for party, dataset_id in copies.items():
        latest = {h["purpose"]: h["status"] for h in deps.store.consent_history(conn, dataset_id, subject)}
        out |= {(party, purpose) for purpose, status in latest.items() if status == "granted"}
    return frozenset(out)


def _shown(deps: Deps, conn, row: dict[str, Any], subject: str | None, party_id: str) -> dict[str, Any]:
    survey = survey_from_dict(row["spec"])
    out = {"id": row["id"], **survey.to_dict(), "created_at": row["created_at"].isoformat()}
    if subject is None:  # the asker: how many answered, and its answer datasets
        out["answers"] = row["answers"]
        out["datasets"] = {p: f"{survey.asker}.{survey.copy_name(p)}" for p in survey.audience}
        return out
    mine = deps.store.answers(conn, row["id"], party_id)
    out["answered"] = bool(mine)
    if mine:
        out["your_answer"] = mine[0]["values"]
        out["answered_at"] = mine[0]["answered_at"].isoformat()
        copies = _copy_ids(deps, conn, survey, row["asker_id"])
        out["sharing"] = [{"party": p, "purpose": u} for p, u in sorted(_sharing(deps, conn, survey, copies, subject))]
    return out


def show_survey(deps: Deps, party_name: str, survey_id: str) -> dict[str, Any]:
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        row, subject = _visible(deps, conn, party, survey_id)
        return _shown(deps, conn, row, subject, party.id)


def list_surveys(deps: Deps, party_name: str) -> list[dict[str, Any]]:
    """An organisation's own surveys, or the surveys a person's linked companies ask them."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        if party.kind == PartyKind.ORGANIZATION.value:
            return [_shown(deps, conn, r, None, party.id) for r in deps.store.surveys(conn, asker_ids=[party.id])]
        subjects = {link["controller_id"]: link["subject"] for link in deps.store.links_of(conn, party.id)}
        return [_shown(deps, conn, r, subjects[r["asker_id"]], party.id)
                for r in deps.store.surveys(conn, asker_ids=list(subjects))]


def answer(deps: Deps, individual: str, survey_id: str, answers: Mapping[str, Any],
           sharing: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Record a person's answer and their sharing choice. The answer reaches the copies' data with
    the next publication, which the next read of the asker's data makes (services/answers.py)."""
    now = deps.now()
    with deps.store.transaction() as conn:
        party, row, subject = _respondent(deps, conn, individual, survey_id)
        survey = survey_from_dict(row["spec"])
        values = check_answers(survey, answers)
        chosen = check_sharing(survey, sharing)
        if deps.store.answers(conn, survey_id, party.id):
            raise Conflict("you have already answered this survey; change who may use it with `survey share`")
        deps.store.insert_answer(conn, survey_id, party.id, subject, values, now)
        # From the consent state as it is (after an erasure, earlier choices are still on record).
        before = _sharing(deps, conn, survey, _copy_ids(deps, conn, survey, row["asker_id"]), subject)
        _record_sharing(deps, conn, survey, row["asker_id"], subject, before, chosen, individual)
        deps.store.append_entry(conn, {"event": "survey.answered", "party": ledger_name(party), "survey": survey_id,
                                       "asker": survey.asker, "shared_with": len(chosen), "at": now})
    return show_survey(deps, individual, survey_id)


def share(deps: Deps, individual: str, survey_id: str, sharing: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Replace who may use the person's answer and for what; a withdrawal applies to the next query."""
    now = deps.now()
    with deps.store.transaction() as conn:
        party, row, subject = _respondent(deps, conn, individual, survey_id)
        survey = survey_from_dict(row["spec"])
        chosen = check_sharing(survey, sharing)
        if not deps.store.answers(conn, survey_id, party.id):
            raise NotFound("you have not answered this survey")
        before = _sharing(deps, conn, survey, _copy_ids(deps, conn, survey, row["asker_id"]), subject)
        changes = _record_sharing(deps, conn, survey, row["asker_id"], subject, before, chosen, individual)
        deps.store.append_entry(conn, {"event": "survey.sharing_changed", "party": ledger_name(party), "survey": survey_id,
                                       "granted": sum(1 for c in changes if c[2] == "granted"),
                                       "withdrawn": sum(1 for c in changes if c[2] == "withdrawn"), "at": now})
    return show_survey(deps, individual, survey_id)


def _record_sharing(deps: Deps, conn, survey: Survey, asker_id: str, subject: str, before: frozenset[tuple[str, str]],
                    after: frozenset[tuple[str, str]], individual: str) -> list[tuple[str, str, str]]:
    """The choice as consent records on each copy, through the consent service (its own ledger entry)."""
    changes = consent_changes(survey, before, after)
    for name in sorted({c[0] for c in changes}):
        records = [(subject, purpose, status) for copy, purpose, status in changes if copy == name]
        consent_svc.record_in(deps, conn, deps.store.dataset_id(conn, asker_id, name), f"{survey.asker}.{name}",
                              records, "subject", individual)
    return changes


def results(deps: Deps, asker: str, survey_id: str, purpose: str) -> dict[str, Any]:
    """The asker's view: how many answered, and per question the answers of the people who let
    the asker use them for `purpose`, in groups of at least the survey's k. Each aggregate is an
    ordinary query over the asker's copy, so it passes the consent gate, is on the ledger and
    shows on the receipts of everyone it counted."""
    publish_pending(deps)
    with deps.store.read() as conn:
        party = require_party(deps, conn, asker)
        row, subject = _visible(deps, conn, party, survey_id)
        if subject is not None:
            raise NotFound(f"no survey {survey_id}")
        published = deps.store.versions(conn, asker, row["name"])
    survey = survey_from_dict(row["spec"])
    out: dict[str, Any] = {"survey": survey_id, "name": survey.name, "purpose": purpose, "answers": row["answers"],
                           "min_group_size": survey.min_group_size, "questions": []}
    for q in survey.questions:
        shown: dict[str, Any] = {"id": q.id, "text": q.text, "type": q.type.value, "groups": []}
        if published:
            result, _ = run_query(deps, asker, purpose, _aggregate_sql(survey, q.id, q.type))
            shown["groups"] = [dict(zip(result.columns, (plain(v) for v in r))) for r in result.rows]
        out["questions"].append(shown)
    return out


def _aggregate_sql(survey: Survey, qid: str, qtype: QuestionType) -> str:
    """Counts per answer (choice, yes/no) or count and mean (number, text: count only), keeping
    only groups of at least k people."""
    table = f'{survey.asker}.{survey.name}'
    k = survey.min_group_size
    if qtype in (QuestionType.CHOICE, QuestionType.YES_NO):
        return (f'SELECT "{qid}" AS answer, COUNT(DISTINCT {RESPONDENT}) AS people FROM {table} '
                f'WHERE "{qid}" IS NOT NULL GROUP BY "{qid}" HAVING COUNT(DISTINCT {RESPONDENT}) >= {k} ORDER BY 1')
    mean = f', AVG("{qid}") AS mean' if qtype is QuestionType.NUMBER else ""
    return (f'SELECT COUNT(DISTINCT {RESPONDENT}) AS people{mean} FROM {table} WHERE "{qid}" IS NOT NULL '
            f'HAVING COUNT(DISTINCT {RESPONDENT}) >= {k}')
