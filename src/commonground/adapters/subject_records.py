"""Reads and writes for individuals: claim codes, subject links, requests, computations, offers."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import sqlalchemy as sa

from ..domain.records import ReceiptScope
from . import tables as t


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; every time the store keeps is UTC."""
    return moment.replace(tzinfo=dt.timezone.utc) if moment is not None and moment.tzinfo is None else moment


class SubjectRecords:
    # -- claim codes and links ------------------------------------------------------------
    def insert_claim(self, conn: sa.Connection, code_hash: str, controller_id: str, subject: str,
                     issued_at: dt.datetime, expires_at: dt.datetime) -> None:
        conn.execute(t.subject_claims.insert().values(code_hash=code_hash, controller_id=controller_id, subject=subject,
                                                      issued_at=issued_at, expires_at=expires_at))

    def claim(self, conn: sa.Connection, code_hash: str) -> Any:
        return conn.execute(sa.select(t.subject_claims).where(t.subject_claims.c.code_hash == code_hash)).first()

    def redeem_claim(self, conn: sa.Connection, code_hash: str, party_id: str, when: dt.datetime) -> bool:
        """Spend a code; False if it was already spent (the update is the race's referee)."""
        result = conn.execute(t.subject_claims.update()
                              .where(t.subject_claims.c.code_hash == code_hash, t.subject_claims.c.redeemed_at.is_(None))
                              .values(redeemed_at=when, redeemed_by=party_id))
        return result.rowcount == 1

    def link_subject(self, conn: sa.Connection, controller_id: str, subject: str, party_id: str, when: dt.datetime) -> None:
        conn.execute(t.subject_links.insert().values(controller_id=controller_id, subject=subject, party_id=party_id,
                                                     linked_at=when))

    def link_holder(self, conn: sa.Connection, controller_id: str, subject: str) -> str | None:
        return conn.execute(sa.select(t.subject_links.c.party_id).where(
            t.subject_links.c.controller_id == controller_id, t.subject_links.c.subject == subject)).scalar()

    def links_of(self, conn: sa.Connection, party_id: str) -> list[dict[str, Any]]:
        rows = conn.execute(
            sa.select(t.subject_links, t.parties.c.name.label("controller"))
            .join(t.parties, t.parties.c.id == t.subject_links.c.controller_id)
            .where(t.subject_links.c.party_id == party_id).order_by(t.parties.c.name))
        return [{"controller": r.controller, "controller_id": r.controller_id, "subject": r.subject,
                 "linked_at": _utc(r.linked_at)} for r in rows]

    # -- requests (erasure, correction) ---------------------------------------------------
    def insert_request(self, conn: sa.Connection, request_id: str, kind: str, party_id: str, controller_id: str,
                       subject: str, details: dict[str, Any], status: str, when: dt.datetime) -> None:
        conn.execute(t.subject_requests.insert().values(
            id=request_id, kind=kind, party_id=party_id, controller_id=controller_id, subject=subject,
            details_json=json.dumps(details), status=status, created_at=when))

    def requests(self, conn: sa.Connection, *, controller_id: str | None = None, party_id: str | None = None,
                 request_id: str | None = None) -> list[dict[str, Any]]:
        requester = t.parties.alias("requester")
        controller = t.parties.alias("controller")
        q = (sa.select(t.subject_requests, requester.c.name.label("requester"), controller.c.name.label("controller"))
             .join(requester, requester.c.id == t.subject_requests.c.party_id)
             .join(controller, controller.c.id == t.subject_requests.c.controller_id)
             .order_by(t.subject_requests.c.created_at, t.subject_requests.c.id))
        if controller_id is not None:
            q = q.where(t.subject_requests.c.controller_id == controller_id)
        if party_id is not None:
            q = q.where(t.subject_requests.c.party_id == party_id)
        if request_id is not None:
            q = q.where(t.subject_requests.c.id == request_id)
        return [{"id": r.id, "kind": r.kind, "requester": r.requester, "controller": r.controller, "subject": r.subject,
                 **json.loads(r.details_json), "status": r.status, "answer": r.answer,
                 "created_at": _utc(r.created_at).isoformat(),
                 "answered_at": _utc(r.answered_at).isoformat() if r.answered_at else None}
                for r in conn.execute(q)]

    def answer_request(self, conn: sa.Connection, request_id: str, status: str, answer: str, when: dt.datetime) -> bool:
        result = conn.execute(t.subject_requests.update()
                              .where(t.subject_requests.c.id == request_id, t.subject_requests.c.status == "open")
                              .values(status=status, answer=answer, answered_at=when))
        return result.rowcount == 1

    # -- computations (what receipts are derived from) ------------------------------------
    def insert_computations(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(t.computations.insert(), rows)

    def receipts(self, conn: sa.Connection, scopes: list[ReceiptScope], before: dt.datetime | None,
                 limit: int) -> list[dict[str, Any]]:
        """Computations that read a version holding the subject's rows at a time their consent let them in,
        newest first; `before` is the paging cursor (the `at` of the last receipt seen)."""
        c = t.computations.c
        conditions = [cond for s in scopes if (cond := self._scope_condition(s)) is not None]
        if not conditions:
            return []
        q = sa.select(t.computations).where(sa.or_(*conditions)).order_by(c.seq.desc()).limit(limit)
        if before is not None:
            q = q.where(c.at < before)
        names = {s.dataset_id: s.dataset for s in scopes}
        return [{"seq": r.seq, "kind": r.kind, "party": r.party, "purpose": r.purpose,
                 "agreements": json.loads(r.agreements_json), "dataset": names[r.dataset_id], "version": r.version,
                 "fields": json.loads(r.fields_json), "at": _utc(r.at), "ledger_index": r.ledger_index}
                for r in conn.execute(q)]

    @staticmethod
    def _scope_condition(scope: ReceiptScope) -> sa.ColumnElement[bool] | None:
        """None when the subject was never admitted (so the index range is not scanned at all)."""
        c = t.computations.c
        where = [c.dataset_id == scope.dataset_id, c.version.in_(scope.versions)]
        if scope.gated == ():
            return sa.and_(*where)
        admitted = []
        if scope.gated is not None:
            admitted.append(c.purpose.not_in(scope.gated))
        for w in scope.windows:
            parts = [c.purpose == w.purpose]
            if w.start is not None:
                parts.append(c.at >= w.start)
            if w.end is not None:
                parts.append(c.at < w.end)
            admitted.append(sa.and_(*parts))
        if scope.admitted_by_default:
            admitted.append(c.purpose.not_in(scope.recorded) if scope.recorded else sa.true())
        return sa.and_(*where, sa.or_(*admitted)) if admitted else None

    # -- offers ---------------------------------------------------------------------------
    def insert_offer_batch(self, conn: sa.Connection, batch: dict[str, Any], offers: list[dict[str, Any]]) -> None:
        conn.execute(t.offer_batches.insert().values(
            **{k: v for k, v in batch.items() if k not in ("fields", "needs_consent")},
            fields_json=json.dumps(batch["fields"]), needs_consent_json=json.dumps(batch["needs_consent"])))
        conn.execute(t.offers.insert(), [
            {"id": o["id"], "batch_id": batch["id"], "controller_id": o["controller_id"], "subject": o["subject"],
             "terms_json": json.dumps(o["terms"], default=str), "values_json": json.dumps(o["values"], default=str),
             "status": "pending"} for o in offers])

    def offers(self, conn: sa.Connection, *, offer_id: str | None = None, batch_id: str | None = None,
               recipient: str | None = None, controller_id: str | None = None, subject: str | None = None,
               for_update: bool = False) -> list[dict[str, Any]]:
        b, o = t.offer_batches.c, t.offers.c
        q = (sa.select(t.offers, t.offer_batches.c.agreement_id, b.recipient, b.purpose, b.title, b.sql, b.fields_json,
                       b.needs_consent_json, b.created_at, b.ledger_index, b.version, b.dataset_id,
                       t.datasets.c.name.label("dataset_name"), t.parties.c.name.label("controller"))
             .join(t.offer_batches, b.id == o.batch_id)
             .join(t.datasets, t.datasets.c.id == b.dataset_id)
             .join(t.parties, t.parties.c.id == o.controller_id)
             .order_by(b.created_at.desc(), o.id))
        for column, value in ((o.id, offer_id), (o.batch_id, batch_id), (b.recipient, recipient),
                              (o.controller_id, controller_id), (o.subject, subject)):
            if value is not None:
                q = q.where(column == value)
        if for_update and conn.dialect.name == "postgresql":
            q = q.with_for_update(of=t.offers)
        return [{"id": r.id, "batch": r.batch_id, "agreement": r.agreement_id, "recipient": r.recipient,
                 "purpose": r.purpose, "title": r.title, "sql": r.sql, "controller": r.controller,
                 "dataset": f"{r.controller}.{r.dataset_name}", "dataset_id": r.dataset_id, "version": r.version,
                 "subject": r.subject, "fields": json.loads(r.fields_json),
                 "needs_consent": json.loads(r.needs_consent_json), "terms": json.loads(r.terms_json),
                 "values": json.loads(r.values_json), "status": r.status,
                 "released": json.loads(r.released_json) if r.released_json else None,
                 "created_at": _utc(r.created_at), "decided_at": _utc(r.decided_at), "ledger_index": r.ledger_index}
                for r in conn.execute(q)]

    def decide_offer(self, conn: sa.Connection, offer_id: str, status: str, released: dict[str, Any] | None,
                     when: dt.datetime) -> bool:
        result = conn.execute(t.offers.update().where(t.offers.c.id == offer_id, t.offers.c.status == "pending")
                              .values(status=status, released_json=json.dumps(released, default=str) if released else None,
                                      decided_at=when))
        return result.rowcount == 1

    # -- exports ----------------------------------------------------------------------------
    def insert_export(self, conn: sa.Connection, record: dict[str, Any]) -> None:
        conn.execute(t.exports.insert().values(**{k: v for k, v in record.items() if k != "report"},
                                               report_json=json.dumps(record["report"], default=str)))

    def exports(self, conn: sa.Connection, *, export_id: str | None = None, recipient: str | None = None,
                dataset_ids: list[str] | None = None) -> list[dict[str, Any]]:
        e = t.exports.c
        q = (sa.select(t.exports, t.datasets.c.name.label("dataset_name"), t.parties.c.name.label("owner"))
             .join(t.datasets, t.datasets.c.id == e.dataset_id).join(t.parties, t.parties.c.id == t.datasets.c.owner_id)
             .order_by(e.created_at.desc(), e.id))
        if export_id is not None:
            q = q.where(e.id == export_id)
        if recipient is not None:
            q = q.where(e.recipient == recipient)
        if dataset_ids is not None:
            q = q.where(e.dataset_id.in_(dataset_ids))
        return [{"id": r.id, "agreement": r.agreement_id, "recipient": r.recipient, "dataset": f"{r.owner}.{r.dataset_name}",
                 "dataset_id": r.dataset_id, "version": r.version, "purpose": r.purpose, "format": r.format,
                 "path": r.path, "sha256": r.sha256, "bytes": r.bytes, "rows": r.rows,
                 "report": json.loads(r.report_json), "ledger_index": r.ledger_index,
                 "created_at": _utc(r.created_at)} for r in conn.execute(q)]
