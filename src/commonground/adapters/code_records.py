"""Rows of code-to-data: submissions, reviews, runs and releases (mixed into the Store)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from . import tables as t


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every time the store keeps is UTC."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment is not None and moment.tzinfo is None else moment


_JSON = {"agreements": "agreements_json", "reviewers": "reviewers_json", "declared": "declared_json"}


class CodeRecords:
    def insert_code_submission(self, conn: sa.Connection, record: dict[str, Any]) -> None:
        values = {_JSON.get(k, k): json.dumps(v) if k in _JSON else v for k, v in record.items()}
        conn.execute(t.code_submissions.insert().values(**values))

    def code_submissions(self, conn: sa.Connection, *, submission_id: str | None = None, submitter: str | None = None,
                         reviewer: str | None = None, sha256: str | None = None) -> list[dict[str, Any]]:
        """Submissions, newest first; `reviewer` filters in Python (the reviewers are a JSON list)."""
        c = t.code_submissions.c
        q = sa.select(t.code_submissions).order_by(c.created_at.desc(), c.id)
        if submission_id is not None:
            q = q.where(c.id == submission_id)
        if submitter is not None:
            q = q.where(c.submitter == submitter)
        if sha256 is not None:
            q = q.where(c.sha256 == sha256)
        found = []
        for r in conn.execute(q):
            row = dict(r._mapping)
            for key, column in _JSON.items():
                row[key] = json.loads(row.pop(column))
            row["created_at"] = _utc(row["created_at"])
            if reviewer is None or reviewer in row["reviewers"]:
                found.append(row)
        return found

    def insert_code_review(self, conn: sa.Connection, record: dict[str, Any]) -> None:
        conn.execute(t.code_reviews.insert().values(**record))

    def code_reviews(self, conn: sa.Connection, submission_ids: list[str]) -> list[dict[str, Any]]:
        c = t.code_reviews.c
        rows = conn.execute(sa.select(t.code_reviews).where(c.submission_id.in_(submission_ids)).order_by(c.at, c.party))
        return [{**dict(r._mapping), "at": _utc(r.at)} for r in rows]

    def insert_code_run(self, conn: sa.Connection, record: dict[str, Any]) -> None:
        conn.execute(t.code_runs.insert().values(**{k: v for k, v in record.items() if k != "checks"},
                                                 checks_json=json.dumps(record["checks"], default=str)))

    def code_runs(self, conn: sa.Connection, *, run_id: str | None = None, submission_ids: list[str] | None = None,
                  for_update: bool = False) -> list[dict[str, Any]]:
        """Runs, newest first; `for_update` locks them (PostgreSQL) so concurrent releases serialise."""
        c = t.code_runs.c
        q = sa.select(t.code_runs).order_by(c.created_at.desc(), c.id)
        if for_update:
            q = q.with_for_update()
        if run_id is not None:
            q = q.where(c.id == run_id)
        if submission_ids is not None:
            q = q.where(c.submission_id.in_(submission_ids))
        found = []
        for r in conn.execute(q):
            row = dict(r._mapping)
            row["checks"] = json.loads(row.pop("checks_json"))
            row["created_at"] = _utc(row["created_at"])
            found.append(row)
        return found

    def set_code_run_status(self, conn: sa.Connection, run_id: str, status: str) -> None:
        conn.execute(t.code_runs.update().where(t.code_runs.c.id == run_id).values(status=status))

    def insert_code_release(self, conn: sa.Connection, record: dict[str, Any]) -> None:
        conn.execute(t.code_releases.insert().values(**record))

    def code_releases(self, conn: sa.Connection, run_ids: list[str]) -> list[dict[str, Any]]:
        c = t.code_releases.c
        rows = conn.execute(sa.select(t.code_releases).where(c.run_id.in_(run_ids)).order_by(c.at, c.party))
        return [{**dict(r._mapping), "at": _utc(r.at)} for r in rows]
