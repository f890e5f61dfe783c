"""Reads and writes of declared rights, listings, listing requests and notices, in the caller's
transaction. The catalogue read is one indexed query plus one for the page's partner counts,
so it stays flat as listings and parties grow (benchmarks/catalogue.py)."""

from __future__ import annotations

import datetime as dt
import functools
import json
from typing import Any

import sqlalchemy as sa

from ..domain.listings import ListingTerms, RequestStatus, parse_listing
from ..domain.rights import DatasetRights, parse_rights
from . import tables as t


def _rights(row: Any, dataset: str) -> DatasetRights:
    doc = json.loads(row.rights_json)
    return parse_rights(doc, dataset, row.version, row.attested_by, row.attested_at, doc.get("columns", {}).keys())


@functools.lru_cache(maxsize=20_000)
def _parsed(listing_json: str, owner: str) -> ListingTerms:
    """A listing's document never changes once stored, so each is validated once per process."""
    return parse_listing(json.loads(listing_json), owner)


def _listing(row: Any) -> dict[str, Any]:
    return {"id": row.id, "terms": _parsed(row.listing_json, row.owner), "status": row.status,
            "created_at": row.created_at}


class MarketRecords:
    # -- rights ---------------------------------------------------------------------------
    def insert_rights(self, conn: sa.Connection, rights_id: str, dataset_id: str, rights: DatasetRights,
                      doc: dict[str, Any]) -> None:
        conn.execute(t.dataset_rights.insert().values(
            id=rights_id, dataset_id=dataset_id, version=rights.version, rights_json=json.dumps(doc),
            attested_by=rights.attested_by, attested_at=rights.attested_at))

    def rights_history(self, conn: sa.Connection, dataset_id: str, dataset: str) -> list[DatasetRights]:
        rows = conn.execute(sa.select(t.dataset_rights).where(t.dataset_rights.c.dataset_id == dataset_id)
                            .order_by(t.dataset_rights.c.version))
        return [_rights(r, dataset) for r in rows]

    def current_rights(self, conn: sa.Connection, datasets: list[str]) -> dict[str, DatasetRights]:
        """The newest rights of each named `owner.name` that has any."""
        if not datasets:
            return {}
        r, d, p = t.dataset_rights.c, t.datasets.c, t.parties.c
        newest = (sa.select(r.dataset_id, sa.func.max(r.version).label("version")).group_by(r.dataset_id).subquery())
        q = (sa.select(t.dataset_rights, d.name.label("dataset_name"), p.name.label("owner"))
             .join(newest, sa.and_(newest.c.dataset_id == r.dataset_id, newest.c.version == r.version))
             .join(t.datasets, d.id == r.dataset_id).join(t.parties, p.id == d.owner_id)
             .where((p.name + "." + d.name).in_(datasets)))
        return {f"{row.owner}.{row.dataset_name}": _rights(row, f"{row.owner}.{row.dataset_name}")
                for row in conn.execute(q)}

    # -- notices --------------------------------------------------------------------------
    def insert_notice(self, conn: sa.Connection, notice_id: str, party: str, kind: str, subject: str, message: str,
                      ledger_index: int, when: dt.datetime) -> None:
        conn.execute(t.notices.insert().values(id=notice_id, party=party, kind=kind, subject=subject, message=message,
                                               ledger_index=ledger_index, created_at=when))

    def notices(self, conn: sa.Connection, party: str, limit: int) -> list[dict[str, Any]]:
        q = (sa.select(t.notices).where(t.notices.c.party == party)
             .order_by(t.notices.c.created_at.desc(), t.notices.c.id).limit(limit))
        return [{"id": r.id, "kind": r.kind, "subject": r.subject, "message": r.message,
                 "ledger_index": r.ledger_index, "at": r.created_at.isoformat()} for r in conn.execute(q)]

    # -- listings -------------------------------------------------------------------------
    def insert_listing(self, conn: sa.Connection, listing_id: str, owner_id: str, listing: ListingTerms,
                       doc: dict[str, Any], when: dt.datetime) -> None:
        conn.execute(t.listings.insert().values(
            id=listing_id, owner_id=owner_id, name=listing.name, title=listing.title, listing_json=json.dumps(doc),
            visibility="all" if listing.visibility is None else "parties", status="published",
            valid_until=listing.terms.valid_until, created_at=when))
        if listing.visibility:
            conn.execute(t.listing_viewers.insert(), [{"listing_id": listing_id, "party": p} for p in listing.visibility])

    def set_listing_status(self, conn: sa.Connection, listing_id: str, status: str) -> None:
        conn.execute(t.listings.update().where(t.listings.c.id == listing_id).values(status=status))

    def _listing_query(self) -> sa.Select:
        return (sa.select(t.listings, t.parties.c.name.label("owner"))
                .join(t.parties, t.parties.c.id == t.listings.c.owner_id))

    def listing(self, conn: sa.Connection, listing_id: str) -> dict[str, Any] | None:
        row = conn.execute(self._listing_query().where(t.listings.c.id == listing_id)).first()
        return _listing(row) if row else None

    def listing_by_name(self, conn: sa.Connection, owner_id: str, name: str) -> str | None:
        return conn.execute(sa.select(t.listings.c.id).where(t.listings.c.owner_id == owner_id,
                                                             t.listings.c.name == name)).scalar()

    def catalogue(self, conn: sa.Connection, party: str, search: str | None, limit: int, offset: int,
                  now: dt.datetime) -> list[dict[str, Any]]:
        """Published, unexpired listings `party` may see (public, shown to it, or its own), by name.

        Three indexed reads, each of at most one page (public listings by the catalogue index,
        those shown to the party by its viewer rows, its own by owner), merged: an OR of the three
        would make the database scan every listing to order them."""
        c, v = t.listings.c, t.listing_viewers.c
        party_id = sa.select(t.parties.c.id).where(t.parties.c.name == party).scalar_subquery()
        wanted = limit + offset
        live = sa.and_(c.status == "published", c.valid_until > now)
        branches = [sa.select(c.id, c.name).where(live, c.visibility == "all"),
                    sa.select(c.id, c.name).join(t.listing_viewers, v.listing_id == c.id).where(live, v.party == party),
                    sa.select(c.id, c.name).where(live, c.owner_id == party_id)]
        if search:
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            matches = sa.or_(c.name.ilike(pattern, escape="\\"), c.title.ilike(pattern, escape="\\"))
            branches = [b.where(matches) for b in branches]
        pages = [sa.select(b.order_by(c.name, c.id).limit(wanted).subquery()) for b in branches]
        ids = sa.union(*pages).subquery()
        q = (self._listing_query().join(ids, ids.c.id == c.id).order_by(c.name, c.id).limit(limit).offset(offset))
        return [_listing(r) for r in conn.execute(q)]

    def listings_of(self, conn: sa.Connection, owner_id: str) -> list[dict[str, Any]]:
        return [_listing(r) for r in conn.execute(self._listing_query().where(t.listings.c.owner_id == owner_id)
                                                  .order_by(t.listings.c.name))]

    # -- requests -------------------------------------------------------------------------
    def insert_listing_request(self, conn: sa.Connection, request_id: str, listing_id: str, requester: str,
                               purpose: str, status: RequestStatus, agreement_id: str | None, note: str,
                               when: dt.datetime) -> None:
        conn.execute(t.listing_requests.insert().values(
            id=request_id, listing_id=listing_id, requester=requester, purpose=purpose, status=status.value,
            agreement_id=agreement_id, note=note, created_at=when,
            decided_at=when if status is not RequestStatus.PENDING else None))

    def decide_listing_request(self, conn: sa.Connection, request_id: str, status: RequestStatus,
                               agreement_id: str | None, note: str, when: dt.datetime) -> bool:
        r = t.listing_requests.c
        done = conn.execute(t.listing_requests.update().where(r.id == request_id, r.status == RequestStatus.PENDING.value)
                            .values(status=status.value, agreement_id=agreement_id, note=note, decided_at=when))
        return done.rowcount == 1

    def listing_request(self, conn: sa.Connection, request_id: str) -> dict[str, Any] | None:
        row = conn.execute(sa.select(t.listing_requests).where(t.listing_requests.c.id == request_id)).first()
        return _request(row) if row else None

    def listing_requests(self, conn: sa.Connection, listing_ids: list[str] | None = None,
                         requester: str | None = None) -> list[dict[str, Any]]:
        r = t.listing_requests.c
        q = sa.select(t.listing_requests).order_by(r.created_at, r.id)
        if listing_ids is not None:
            q = q.where(r.listing_id.in_(listing_ids))
        if requester is not None:
            q = q.where(r.requester == requester)
        return [_request(row) for row in conn.execute(q)]

    def listing_usage(self, conn: sa.Connection, listing_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Per listing: how many partners hold an agreement in force from it, and for which purposes
        (how many partners each). Counts of parties, never anything about data subjects."""
        if not listing_ids:
            return {}
        r, a = t.listing_requests.c, t.agreements.c
        q = (sa.select(r.listing_id, r.purpose, sa.func.count(sa.distinct(r.requester)).label("partners"))
             .join(t.agreements, a.id == r.agreement_id)
             .where(r.listing_id.in_(listing_ids), r.status == RequestStatus.ACTIVE.value, a.status == "active")
             .group_by(r.listing_id, r.purpose))
        partners_q = (sa.select(r.listing_id, sa.func.count(sa.distinct(r.requester)).label("partners"))
                      .join(t.agreements, a.id == r.agreement_id)
                      .where(r.listing_id.in_(listing_ids), r.status == RequestStatus.ACTIVE.value, a.status == "active")
                      .group_by(r.listing_id))
        usage: dict[str, dict[str, Any]] = {i: {"partners": 0, "purposes": {}} for i in listing_ids}
        for row in conn.execute(partners_q):
            usage[row.listing_id]["partners"] = int(row.partners)
        for row in conn.execute(q):
            usage[row.listing_id]["purposes"][row.purpose] = int(row.partners)
        return usage


def _request(row: Any) -> dict[str, Any]:
    return {"id": row.id, "listing_id": row.listing_id, "requester": row.requester, "purpose": row.purpose,
            "status": row.status, "agreement_id": row.agreement_id, "note": row.note,
            "created_at": row.created_at.isoformat(),
            "decided_at": row.decided_at.isoformat() if row.decided_at else None}
