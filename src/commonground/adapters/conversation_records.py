"""Reads and writes for conversations: surveys, people's answers, threads and their messages."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from ..domain.conversations import survey_from_dict
from . import tables as t


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every time the store keeps is UTC."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


class ConversationRecords:
    # -- surveys ----------------------------------------------------------------------------
    def insert_survey(self, conn: sa.Connection, survey_id: str, asker_id: str, name: str, spec: dict[str, Any],
                      when: dt.datetime) -> None:
        conn.execute(t.surveys.insert().values(id=survey_id, asker_id=asker_id, name=name,
                                               spec_json=json.dumps(spec), created_at=when))

    def surveys(self, conn: sa.Connection, *, survey_id: str | None = None,
                asker_ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Surveys with their spec and how many people answered, newest first."""
        answered = (sa.select(sa.func.count()).select_from(t.survey_answers)
                    .where(t.survey_answers.c.survey_id == t.surveys.c.id).scalar_subquery())
        query = sa.select(t.surveys, t.parties.c.name.label("asker"), answered.label("answers")).join(
            t.parties, t.parties.c.id == t.surveys.c.asker_id)
        if survey_id is not None:
            query = query.where(t.surveys.c.id == survey_id)
        if asker_ids is not None:
            query = query.where(t.surveys.c.asker_id.in_(asker_ids))
        rows = conn.execute(query.order_by(t.surveys.c.created_at.desc(), t.surveys.c.id))
        return [{"id": r.id, "asker": r.asker, "asker_id": r.asker_id, "name": r.name,
                 "spec": json.loads(r.spec_json), "answers": r.answers, "created_at": _utc(r.created_at)} for r in rows]

    def last_version(self, conn: sa.Connection, dataset_id: str) -> int:
        """The dataset's newest version number (0 before the first), without parsing every
        version's schema as `versions` does: a survey gets a new version per answer."""
        return conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.dataset_versions.c.version), 0))
                            .where(t.dataset_versions.c.dataset_id == dataset_id)).scalar_one()

    # -- answers ----------------------------------------------------------------------------
    def insert_answer(self, conn: sa.Connection, survey_id: str, party_id: str, subject: str, values: dict[str, Any],
                      when: dt.datetime) -> None:
        conn.execute(t.survey_answers.insert().values(
            survey_id=survey_id, party_id=party_id, subject=subject, values_json=json.dumps(values),
            answered_at=when, published=False))

    def answers(self, conn: sa.Connection, survey_id: str, party_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(t.survey_answers).where(t.survey_answers.c.survey_id == survey_id)
        if party_id is not None:
            query = query.where(t.survey_answers.c.party_id == party_id)
        return [{"party_id": r.party_id, "subject": r.subject, "values": json.loads(r.values_json),
                 "answered_at": _utc(r.answered_at), "published": bool(r.published)}
                for r in conn.execute(query.order_by(t.survey_answers.c.subject))]

    def pending_surveys(self, conn: sa.Connection) -> list[str]:
        """Surveys with answers no publication holds yet (a partial index keeps this cheap when none)."""
        return list(conn.execute(sa.select(t.survey_answers.c.survey_id).where(~t.survey_answers.c.published)
                                 .distinct().order_by(t.survey_answers.c.survey_id)).scalars())

    def mark_published(self, conn: sa.Connection, survey_id: str, subjects: list[str]) -> None:
        """The answers of `subjects` are held by the publication this transaction lands."""
        answers = t.survey_answers.c
        for start in range(0, len(subjects), 5_000):  # bound the statement's parameters
            conn.execute(t.survey_answers.update().where(answers.survey_id == survey_id, ~answers.published,
                                                         answers.subject.in_(subjects[start:start + 5_000]))
                         .values(published=True))

    def survey_copies(self, conn: sa.Connection, asker_id: str) -> dict[str, tuple[str, int]]:
        """The asker's answer datasets ("asker.copy") -> (the party each is for, the survey's k)."""
        out = {}
        for found in self.surveys(conn, asker_ids=[asker_id]):
            survey = survey_from_dict(found["spec"])
            for party in survey.audience:
                out[f"{survey.asker}.{survey.copy_name(party)}"] = (party, survey.min_group_size)
        return out

    def answered_surveys(self, conn: sa.Connection, party_id: str) -> set[str]:
        return set(conn.execute(sa.select(t.survey_answers.c.survey_id).where(t.survey_answers.c.party_id == party_id))
                   .scalars())

    def delete_answers(self, conn: sa.Connection, asker_id: str, subject: str) -> list[str]:
        """Erasure: drop the subject's answers to the asker's surveys; returns the surveys touched."""
        ids = list(conn.execute(
            sa.select(t.survey_answers.c.survey_id).join(t.surveys, t.surveys.c.id == t.survey_answers.c.survey_id)
            .where(t.surveys.c.asker_id == asker_id, t.survey_answers.c.subject == subject)).scalars())
        if ids:
            conn.execute(t.survey_answers.delete().where(t.survey_answers.c.survey_id.in_(ids),
                                                         t.survey_answers.c.subject == subject))
        return ids

    # -- threads ----------------------------------------------------------------------------
    def insert_thread(self, conn: sa.Connection, thread: dict[str, Any]) -> None:
        conn.execute(t.threads.insert().values(**thread))

    def add_thread_message(self, conn: sa.Connection, thread_id: str, author: str, body: str, status: str,
                           when: dt.datetime) -> None:
        conn.execute(t.thread_messages.insert().values(thread_id=thread_id, author=author, body=body, at=when))
        conn.execute(t.threads.update().where(t.threads.c.id == thread_id).values(status=status, updated_at=when))

    def set_thread_status(self, conn: sa.Connection, thread_id: str, status: str, when: dt.datetime) -> None:
        conn.execute(t.threads.update().where(t.threads.c.id == thread_id).values(status=status, updated_at=when))

    def threads(self, conn: sa.Connection, *, thread_id: str | None = None, party_id: str | None = None,
                controller_id: str | None = None) -> list[dict[str, Any]]:
        person = t.parties.alias("person")
        controller = t.parties.alias("controller")
        query = (sa.select(t.threads, person.c.name.label("person"), controller.c.name.label("controller"))
                 .join(person, person.c.id == t.threads.c.party_id)
                 .join(controller, controller.c.id == t.threads.c.controller_id))
        for column, value in ((t.threads.c.id, thread_id), (t.threads.c.party_id, party_id),
                              (t.threads.c.controller_id, controller_id)):
            if value is not None:
                query = query.where(column == value)
        rows = conn.execute(query.order_by(t.threads.c.updated_at.desc(), t.threads.c.id))
        return [{"id": r.id, "person": r.person, "party_id": r.party_id, "controller": r.controller,
                 "controller_id": r.controller_id, "about": r.about, "ref": r.ref, "kind": r.kind,
                 "status": r.status, "created_at": _utc(r.created_at), "updated_at": _utc(r.updated_at)} for r in rows]

    def thread_messages(self, conn: sa.Connection, thread_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(sa.select(t.thread_messages).where(t.thread_messages.c.thread_id == thread_id)
                            .order_by(t.thread_messages.c.seq))
        return [{"author": r.author, "body": r.body, "at": _utc(r.at).isoformat()} for r in rows]
