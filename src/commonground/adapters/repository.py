"""Reads and writes of the metadata records, each inside the caller's transaction."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..domain.agreements import AgreementState, AgreementStatus, parse_agreement
from ..domain.records import DatasetVersion, Party, TokenRecord, TokenScope
from ..domain.schema import parse_schema
from . import tables as t


def _token(row: Any) -> TokenRecord:
    return TokenRecord(row.id, row.party_id, row.created_at, row.expires_at, row.revoked_at,
                       TokenScope(row.scope) if row.scope else TokenScope.ADMIN)


class Repository:
    # -- parties and tokens ---------------------------------------------------------------
    def insert_party(self, conn: sa.Connection, party: Party) -> None:
        conn.execute(t.parties.insert().values(id=party.id, name=party.name, kind=party.kind, created_at=party.created_at))

    def party_by_name(self, conn: sa.Connection, name: str) -> Party | None:
        row = conn.execute(sa.select(t.parties).where(t.parties.c.name == name)).first()
        return Party(row.id, row.name, row.kind, row.created_at) if row else None

    def parties(self, conn: sa.Connection) -> list[Party]:
        return [Party(r.id, r.name, r.kind, r.created_at) for r in conn.execute(sa.select(t.parties).order_by(t.parties.c.name))]

    def insert_token(self, conn: sa.Connection, token: TokenRecord, digest: str) -> None:
        conn.execute(t.tokens.insert().values(id=token.id, party_id=token.party_id, token_hash=digest,
                                              created_at=token.created_at, expires_at=token.expires_at,
                                              scope=token.scope.value))

    def token_by_digest(self, conn: sa.Connection, digest: str) -> tuple[TokenRecord, str] | None:
        row = conn.execute(
            sa.select(t.tokens, t.parties.c.name).join(t.parties, t.parties.c.id == t.tokens.c.party_id)
            .where(t.tokens.c.token_hash == digest)).first()
        if row is None:
            return None
        return _token(row), row.name

    def tokens_of(self, conn: sa.Connection, party_id: str) -> list[TokenRecord]:
        rows = conn.execute(sa.select(t.tokens).where(t.tokens.c.party_id == party_id).order_by(t.tokens.c.created_at))
        return [_token(r) for r in rows]

    def revoke_token(self, conn: sa.Connection, token_id: str, party_id: str, when: dt.datetime) -> bool:
        result = conn.execute(t.tokens.update().where(t.tokens.c.id == token_id, t.tokens.c.party_id == party_id,
                                                      t.tokens.c.revoked_at.is_(None)).values(revoked_at=when))
        return result.rowcount == 1

    # -- datasets -------------------------------------------------------------------------
    def dataset_id(self, conn: sa.Connection, owner_id: str, name: str) -> str | None:
        return conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.owner_id == owner_id, t.datasets.c.name == name)).scalar()

    def insert_dataset(self, conn: sa.Connection, dataset_id: str, owner_id: str, name: str, when: dt.datetime) -> None:
        conn.execute(t.datasets.insert().values(id=dataset_id, owner_id=owner_id, name=name, created_at=when))

    def insert_version(self, conn: sa.Connection, v: DatasetVersion, dataset_id: str) -> None:
        conn.execute(t.dataset_versions.insert().values(
            id=v.id, dataset_id=dataset_id, version=v.version, path=v.path, sha256=v.sha256, rows=v.rows, bytes=v.bytes,
            schema_json=json.dumps(v.schema.to_dict()), distinct_subjects=v.distinct_subjects,
            max_rows_per_subject=v.max_rows_per_subject, created_at=v.created_at, person_numbers=v.person_numbers,
            subject_level_columns=None if v.subject_level_columns is None else json.dumps(sorted(v.subject_level_columns))))

    def versions(self, conn: sa.Connection, owner: str | None = None, name: str | None = None) -> list[DatasetVersion]:
        q = (sa.select(t.dataset_versions, t.datasets.c.name.label("dataset_name"), t.parties.c.name.label("owner"))
             .join(t.datasets, t.datasets.c.id == t.dataset_versions.c.dataset_id)
             .join(t.parties, t.parties.c.id == t.datasets.c.owner_id)
             .order_by(t.parties.c.name, t.datasets.c.name, t.dataset_versions.c.version))
        if owner is not None:
            q = q.where(t.parties.c.name == owner)
        if name is not None:
            q = q.where(t.datasets.c.name == name)
        return [DatasetVersion(r.id, r.owner, r.dataset_name, r.version, r.path, r.sha256, r.rows, r.bytes,
                               parse_schema(json.loads(r.schema_json)), r.distinct_subjects, r.max_rows_per_subject,
                               None if r.subject_level_columns is None else frozenset(json.loads(r.subject_level_columns)),
                               r.created_at, bool(r.person_numbers)) for r in conn.execute(q)]

    def all_paths(self, conn: sa.Connection) -> list[str]:
        return [r[0] for r in conn.execute(sa.select(t.dataset_versions.c.path))]

    # -- agreements -----------------------------------------------------------------------
    def insert_agreement(self, conn: sa.Connection, state: AgreementState, provider_id: str, when: dt.datetime) -> None:
        conn.execute(t.agreements.insert().values(
            id=state.id, name=state.terms.name, version=state.version, provider_id=provider_id,
            terms_json=json.dumps(state.terms.to_dict()), status=state.status.value, hash_key=state.hash_key,
            created_at=when))

    def latest_version(self, conn: sa.Connection, provider_id: str, name: str) -> int:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.agreements.c.version), 0))
                                .where(t.agreements.c.provider_id == provider_id, t.agreements.c.name == name)).scalar_one())

    def add_signature(self, conn: sa.Connection, agreement_id: str, party: str, when: dt.datetime) -> None:
        conn.execute(t.signatures.insert().values(agreement_id=agreement_id, party_name=party, signed_at=when))

    def set_agreement_status(self, conn: sa.Connection, agreement_id: str, status: AgreementStatus,
                             when: dt.datetime, by: str | None = None) -> None:
        conn.execute(t.agreements.update().where(t.agreements.c.id == agreement_id)
                     .values(status=status.value, decided_at=when, revoked_by=by))

    def agreements(self, conn: sa.Connection, agreement_id: str | None = None, for_update: bool = False) -> list[AgreementState]:
        q = sa.select(t.agreements).order_by(t.agreements.c.created_at, t.agreements.c.id)
        if agreement_id is not None:
            q = q.where(t.agreements.c.id == agreement_id)
        if for_update and conn.dialect.name == "postgresql":
            q = q.with_for_update()
        rows = conn.execute(q).all()
        sigs: dict[str, set[str]] = {}
        for s in conn.execute(sa.select(t.signatures)):
            sigs.setdefault(s.agreement_id, set()).add(s.party_name)
        return [AgreementState(r.id, r.version, parse_agreement(json.loads(r.terms_json)), AgreementStatus(r.status),
                               frozenset(sigs.get(r.id, set())), bytes(r.hash_key)) for r in rows]

    # -- consent ----------------------------------------------------------------------------
    def record_consents(self, conn: sa.Connection, dataset_id: str, records: list[tuple[str, str, str]],
                        source: str, by: str, when: dt.datetime) -> None:
        """Append (subject, purpose, status) records and move the current state, in order."""
        if not records:
            return
        conn.execute(t.consent_records.insert(), [
            {"dataset_id": dataset_id, "subject": s, "purpose": p, "status": st, "source": source,
             "recorded_by": by, "recorded_at": when} for s, p, st in records])
        latest = {(s, p): st for s, p, st in records}  # the last record of a batch wins, as in replay
        insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(t.consent_state)
        upsert = insert.on_conflict_do_update(index_elements=["dataset_id", "purpose", "subject"],
                                              set_={"status": insert.excluded.status})
        conn.execute(upsert, [{"dataset_id": dataset_id, "purpose": p, "subject": s, "status": st}
                              for (s, p), st in latest.items()])

    def consent_subjects(self, conn: sa.Connection, dataset_id: str, purpose: str, status: str) -> list[str]:
        rows = conn.execute(sa.text("SELECT subject FROM consent_state WHERE dataset_id = :d AND purpose = :p AND status = :s"),
                            {"d": dataset_id, "p": purpose, "s": status})
        return [r[0] for r in rows]

    def consent_history(self, conn: sa.Connection, dataset_id: str, subject: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(t.consent_records).where(t.consent_records.c.dataset_id == dataset_id).order_by(t.consent_records.c.seq)
        if subject is not None:
            q = q.where(t.consent_records.c.subject == subject)
        return [{"seq": r.seq, "subject": r.subject, "purpose": r.purpose, "status": r.status, "source": r.source,
                 "recorded_by": r.recorded_by, "recorded_at": r.recorded_at.isoformat()} for r in conn.execute(q)]

    def consent_since(self, conn: sa.Connection, dataset_id: str, purpose: str, seq: int,
                      limit: int) -> list[tuple[int, str, str, dt.datetime]]:
        """(seq, subject, status, recorded_at) of one dataset's records for one purpose after `seq`,
        in order, at most `limit`: a range scan of the primary key from `seq`."""
        r = t.consent_records.c
        q = (sa.select(r.seq, r.subject, r.status, r.recorded_at)
             .where(r.seq > seq, r.dataset_id == dataset_id, r.purpose == purpose).order_by(r.seq).limit(limit))
        return [(int(x.seq), x.subject, x.status, x.recorded_at) for x in conn.execute(q)]

    def consent_settled_seq(self, conn: sa.Connection) -> int:
        """A consent record seq at or below which every record is committed and visible to the reads
        that follow on `conn`. SQLite: writers serialise, so seqs commit in order and the read
        transaction's snapshot holds them. PostgreSQL: seqs are taken before commit, so a later
        seq can commit first; a SHARE lock, in a short transaction of its own, waits out every
        writer in flight (reads that follow, at READ COMMITTED, see what they wrote)."""
        latest = sa.select(sa.func.coalesce(sa.func.max(t.consent_records.c.seq), 0))
        if conn.dialect.name != "postgresql":
            return int(conn.execute(latest).scalar_one())
        with conn.engine.connect() as locker, locker.begin():
            locker.execute(sa.text("LOCK TABLE consent_records IN SHARE MODE"))
            return int(locker.execute(latest).scalar_one())

    # -- vocabulary -----------------------------------------------------------------------
    def vocabulary_entries(self, conn: sa.Connection) -> list[tuple[str, str, str]]:
        rows = conn.execute(sa.select(t.vocabulary_entries).order_by(t.vocabulary_entries.c.kind, t.vocabulary_entries.c.name))
        return [(r.kind, r.name, r.description) for r in rows]

    def insert_vocabulary_entry(self, conn: sa.Connection, kind: str, name: str, description: str, when: dt.datetime) -> None:
        conn.execute(t.vocabulary_entries.insert().values(kind=kind, name=name, description=description, created_at=when))

    # -- templates ------------------------------------------------------------------------
    def insert_template(self, conn: sa.Connection, template_id: str, owner_id: str, name: str, text: str, when: dt.datetime) -> None:
        conn.execute(t.templates.insert().values(id=template_id, owner_id=owner_id, name=name, text=text, created_at=when))

    def template(self, conn: sa.Connection, name: str) -> tuple[str, str] | None:
        row = conn.execute(sa.select(t.templates.c.text, t.parties.c.name)
                           .join(t.parties, t.parties.c.id == t.templates.c.owner_id)
                           .where(t.templates.c.name == name)).first()
        return (row.text, row.name) if row else None

    def templates(self, conn: sa.Connection) -> list[dict[str, Any]]:
        rows = conn.execute(sa.select(t.templates.c.id, t.templates.c.name, t.parties.c.name.label("owner"))
                            .join(t.parties, t.parties.c.id == t.templates.c.owner_id).order_by(t.templates.c.name))
        return [{"id": r.id, "name": r.name, "owner": r.owner} for r in rows]
