"""Individuals as parties: claim a subject id, then see, steer and question its use.

A controller invites a person with a one-time claim code for one of its subject ids; the
person (an `individual` party) redeems it, and from then on sees every row the controller's
datasets hold about them, their consents per purpose (and changes them), receipts for every
computation that read their rows, and can ask for erasure or a correction.

Subject ids are data: the ledger records that a person claimed, exported, or asked for
something, never the id itself. Receipts are derived, not stored per person: a computation
is recorded once per dataset version it read (`computations`), and a person's receipts are
those over versions that held their rows at a time their consent admitted them.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from ..domain.errors import BadInput, Conflict, NotFound
from ..domain.records import ConsentWindow, DatasetVersion, Party, PartyKind, ReceiptScope
from ..domain.schema import ConsentMode
from ..domain.vocabulary import Kind
from . import consent as consent_svc
from .answers import publish_pending
from .deps import Deps
from .parties import check_party_name, issue_token, ledger_name, ledger_name_of, new_party, require_party
from .tokens import token_digest
from .vocabulary import vocabulary

CLAIM_TTL_DAYS = 30
MAX_SUBJECT_LENGTH = 256
ROWS_PER_DATASET = 10_000  # subject access export: rows per dataset (the count says if there were more)
_HOLDS_CACHE_LIMIT = 200_000


# -- claiming ------------------------------------------------------------------------------

def invite(deps: Deps, controller: str, subject: str, ttl_days: int = CLAIM_TTL_DAYS) -> tuple[str, dt.datetime]:
    """A one-time claim code for `subject`; shown once, stored as its SHA-256."""
    subject = subject.strip()
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise BadInput(f"subject id must be 1 to {MAX_SUBJECT_LENGTH} characters")
    if ttl_days <= 0:
        raise BadInput("--ttl-days must be positive")
    code = deps.new_secret().replace("cg_", "claim_", 1)
    now = deps.now()
    expires = now + dt.timedelta(days=ttl_days)
    with deps.store.transaction() as conn:
        party = _require_organisation(deps, conn, controller)
        if deps.store.link_holder(conn, party.id, subject):
            raise Conflict("this subject id has already been claimed by a person")
        deps.store.insert_claim(conn, token_digest(code), party.id, subject, now, expires)
        deps.store.append_entry(conn, {"event": "subject.invited", "party": controller, "expires_at": expires, "at": now})
    return code, expires


def claim(deps: Deps, individual: str, code: str) -> dict[str, Any]:
    """Redeem a claim code as an existing individual party."""
    with deps.store.transaction() as conn:
        party = require_individual(deps, conn, individual)
        return _redeem(deps, conn, party, code)


def register(deps: Deps, name: str, code: str) -> tuple[Party, str]:
    """Sign-up with a claim code: a new individual party, its first token and the link, all or nothing."""
    check_party_name(name)
    secret = deps.new_secret()
    with deps.store.transaction() as conn:
        if deps.store.party_by_name(conn, name):
            raise Conflict(f"party {name!r} already exists; choose another name")
        party = new_party(deps, conn, name, PartyKind.INDIVIDUAL.value)
        _redeem(deps, conn, party, code)
        issue_token(deps, conn, party, secret, ttl_days=None)
    return party, secret


def _redeem(deps: Deps, conn, party: Party, code: str) -> dict[str, Any]:
    now = deps.now()
    digest = token_digest(code.strip())
    row = deps.store.claim(conn, digest)
    if row is None or row.redeemed_at is not None or now >= _aware(row.expires_at):
        raise BadInput("invalid, expired or already used claim code")
    holder = deps.store.link_holder(conn, row.controller_id, row.subject)
    if holder is not None:
        raise Conflict("this subject id has already been claimed by a person")
    if not deps.store.redeem_claim(conn, digest, party.id, now):
        raise BadInput("invalid, expired or already used claim code")
    deps.store.link_subject(conn, row.controller_id, row.subject, party.id, now)
    controller = next(p.name for p in deps.store.parties(conn) if p.id == row.controller_id)
    deps.store.append_entry(conn, {"event": "subject.claimed", "party": ledger_name(party), "controller": controller, "at": now})
    return {"controller": controller, "subject": row.subject, "linked_at": now.isoformat()}


def links(deps: Deps, individual: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        return [{"controller": link["controller"], "subject": link["subject"], "linked_at": link["linked_at"].isoformat()}
                for link in deps.store.links_of(conn, party.id)]


def require_individual(deps: Deps, conn, name: str) -> Party:
    party = require_party(deps, conn, name)
    if party.kind != PartyKind.INDIVIDUAL.value:
        raise BadInput(f"{name} is an organisation; this is for individuals (party kind individual)")
    return party


def _require_organisation(deps: Deps, conn, name: str) -> Party:
    party = require_party(deps, conn, name)
    if party.kind != PartyKind.ORGANIZATION.value:
        raise BadInput(f"{name} is an individual; only organisations hold subjects' data")
    return party


# -- where a person's rows are -------------------------------------------------------------

def _holdings(deps: Deps, conn, controller: str, subject: str) -> dict[str, list[DatasetVersion]]:
    """For each of the controller's datasets, its versions that hold the subject's rows (oldest first)."""
    cache = deps.caches.setdefault("subject_holds", {})
    if len(cache) > _HOLDS_CACHE_LIMIT:
        cache.clear()
    versions = [v for v in deps.store.versions(conn, controller) if v.schema.subject_column is not None]
    unknown = [v for v in versions if (v.id, subject) not in cache]  # versions are immutable: answers never go stale
    found = deps.subject_data.holds([(deps.home / v.path, v.schema.subject_column) for v in unknown], subject)
    cache.update({(v.id, subject): held for v, held in zip(unknown, found)})
    out: dict[str, list[DatasetVersion]] = defaultdict(list)
    for version in versions:
        if cache[(version.id, subject)]:
            out[version.key].append(version)
    return dict(out)


def _latest(deps: Deps, conn, controller: str) -> dict[str, DatasetVersion]:
    return {v.key: v for v in deps.store.versions(conn, controller)}


def _dataset_id(deps: Deps, conn, version: DatasetVersion) -> str:
    owner = require_party(deps, conn, version.owner)
    dataset_id = deps.store.dataset_id(conn, owner.id, version.name)
    assert dataset_id is not None
    return dataset_id


# -- subject access ------------------------------------------------------------------------

def access_export(deps: Deps, individual: str) -> dict[str, Any]:
    """Everything the store holds about the person, as JSON: rows, consents, receipts, offers, requests."""
    now = deps.now()
    publish_pending(deps)
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        held = []
        for link in deps.store.links_of(conn, party.id):
            latest = _latest(deps, conn, link["controller"])
            for key, version in sorted(latest.items()):
                column = version.schema.subject_column
                if column is None:
                    continue
                rows = deps.subject_data.rows(deps.home / version.path, column, [link["subject"]],
                                              limit_per_subject=ROWS_PER_DATASET + 1).get(link["subject"], [])
                if rows:
                    held.append({"dataset": key, "version": version.version, "sha256": version.sha256,
                                 "subject": link["subject"], "columns": [c.name for c in version.schema.columns],
                                 "rows": rows[:ROWS_PER_DATASET], "truncated": len(rows) > ROWS_PER_DATASET})
    export = {"party": individual, "exported_at": now.isoformat(), "links": links(deps, individual), "data": held,
              "consents": consents(deps, individual), "receipts": receipts(deps, individual, limit=1000),
              "requests": my_requests(deps, individual)}
    with deps.store.transaction() as conn:
        deps.store.append_entry(conn, {"event": "subject.access_export", "party": ledger_name_of(deps, conn, individual),
                                       "datasets": sorted({h["dataset"] for h in held}), "at": now})
    return export


# -- consents --------------------------------------------------------------------------------

def consents(deps: Deps, individual: str) -> list[dict[str, Any]]:
    """Per consent-taking dataset holding the person's rows, each purpose that asks for consent,
    its current status and whether their rows are used for it now."""
    out = []
    publish_pending(deps)
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        agreements = [a for a in deps.store.agreements(conn) if a.in_force(deps.now())]
        for link in deps.store.links_of(conn, party.id):
            latest = _latest(deps, conn, link["controller"])
            for key, version in sorted(latest.items()):
                schema = version.schema
                if schema.consent is ConsentMode.NONE or schema.subject_column is None:
                    continue
                dataset_id = _dataset_id(deps, conn, version)
                history = deps.store.consent_history(conn, dataset_id, link["subject"])
                state = {h["purpose"]: h for h in history}
                asked = set(schema.consent_purposes) or {
                    p for a in agreements if a.terms.grant_for(key) for p in a.terms.purposes}
                for purpose in sorted(asked | set(state)):
                    if schema.consent_purposes and purpose not in schema.consent_purposes:
                        continue
                    current = state.get(purpose)
                    status = current["status"] if current else None
                    used = status == "granted" if schema.consent is ConsentMode.OPT_IN else status != "withdrawn"
                    out.append({"dataset": key, "purpose": purpose, "mode": schema.consent.value, "status": status,
                                "in_use": used, "source": current["source"] if current else None,
                                "recorded_at": current["recorded_at"] if current else None})
    return out


def set_consent(deps: Deps, individual: str, dataset: str, purpose: str, status: str, source: str = "subject") -> None:
    """The person grants or withdraws a purpose on a dataset holding their rows; effective on the next query."""
    publish_pending(deps)
    with deps.store.transaction() as conn:
        party = require_individual(deps, conn, individual)
        version, subject = _linked_dataset(deps, conn, party, dataset)
        if version.schema.consent is ConsentMode.NONE:
            raise BadInput(f"{dataset} does not take consent (its owner declared no consent mode)")
        vocabulary(deps, conn).check(Kind.PURPOSE, purpose)
        consent_svc.record_in(deps, conn, _dataset_id(deps, conn, version), dataset, [(subject, purpose, status)],
                              source, individual)


def _linked_dataset(deps: Deps, conn, party: Party, dataset: str) -> tuple[DatasetVersion, str]:
    """A dataset of a controller the person is linked to, and their subject id there; 404 otherwise."""
    owner = dataset.partition(".")[0]
    for link in deps.store.links_of(conn, party.id):
        if link["controller"] == owner:
            version = _latest(deps, conn, owner).get(dataset)
            if version is not None and version.schema.subject_column is not None:
                return version, link["subject"]
    raise NotFound(f"no dataset {dataset} holds data about you")


# -- receipts ----------------------------------------------------------------------------------

def receipts(deps: Deps, individual: str, before: dt.datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Every computation that read the person's rows (queries, exports, code runs) and every offer
    made from them, newest first; page with `before` (the `at` of the last receipt seen)."""
    if not 1 <= limit <= 1000:
        raise BadInput("limit must be between 1 and 1000")
    items: list[dict[str, Any]] = []
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        for link in deps.store.links_of(conn, party.id):
            scopes = _receipt_scopes(deps, conn, link["controller"], link["subject"])
            for r in deps.store.receipts(conn, scopes, before, limit):
                items.append(r)
            for offer in deps.store.offers(conn, controller_id=link["controller_id"], subject=link["subject"]):
                at = offer["created_at"]
                if before is None or at < before:
                    items.append({"kind": "offer", "party": offer["recipient"], "purpose": offer["purpose"],
                                  "agreements": [offer["agreement"]], "dataset": offer["dataset"],
                                  "version": offer["version"], "fields": offer["fields"], "at": at,
                                  "ledger_index": offer["ledger_index"], "offer": offer["id"],
                                  "status": offer["status"]})
    items.sort(key=lambda r: r["at"], reverse=True)
    return [{**{k: v for k, v in r.items() if k != "seq"}, "at": r["at"].isoformat()} for r in items[:limit]]


def _receipt_scopes(deps: Deps, conn, controller: str, subject: str) -> list[ReceiptScope]:
    scopes = []
    for key, versions in _holdings(deps, conn, controller, subject).items():
        schema = versions[-1].schema
        dataset_id = _dataset_id(deps, conn, versions[-1])
        numbers = tuple(v.version for v in versions)
        if schema.consent is ConsentMode.NONE:
            scopes.append(ReceiptScope(dataset_id, key, numbers))
            continue
        history = deps.store.consent_history(conn, dataset_id, subject)
        windows = _windows(history, opt_in=schema.consent is ConsentMode.OPT_IN)
        scopes.append(ReceiptScope(dataset_id, key, numbers, tuple(schema.consent_purposes) or None,
                                   tuple(sorted({h["purpose"] for h in history})), tuple(windows),
                                   admitted_by_default=schema.consent is ConsentMode.OPT_OUT))
    return scopes


def _windows(history: list[dict[str, Any]], opt_in: bool) -> list[ConsentWindow]:
    """The spans in which the consent gate let the subject in, per purpose, from their records."""
    by_purpose: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for h in history:
        by_purpose[h["purpose"]].append(h)
    windows = []
    for purpose, records in by_purpose.items():
        admitted, since = (not opt_in), None
        for h in records:
            now_admitted = h["status"] == "granted"
            at = dt.datetime.fromisoformat(h["recorded_at"])
            if now_admitted and not admitted:
                admitted, since = True, at
            elif not now_admitted and admitted:
                windows.append(ConsentWindow(purpose, since, at))
                admitted = False
        if admitted:
            windows.append(ConsentWindow(purpose, since, None))
    return windows


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


# -- requests: erasure and corrections -------------------------------------------------------------

def request_erasure(deps: Deps, individual: str, controller: str, reason: str = "") -> dict[str, Any]:
    """Erase the person's rows from every dataset of `controller`: each that held them gets a new
    version without them, and the request is recorded with the versions it made.

    Earlier versions stay on disk for the controller's record keeping (queries only ever read
    the latest version) until it purges them (`datasets.purge`); their files are named in the
    request. Derived consent bases (filtered copies of the rows) of the dataset are removed.
    """
    now = deps.now()
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        link = next((l for l in deps.store.links_of(conn, party.id) if l["controller"] == controller), None)
        if link is None:
            raise NotFound(f"{controller} holds no data linked to you")
        subject = link["subject"]
        latest = [v for v in _latest(deps, conn, controller).values() if v.schema.subject_column]
        held = deps.subject_data.holds([(deps.home / v.path, v.schema.subject_column) for v in latest], subject)
        targets = [v for v, holds in zip(latest, held) if holds]
    written = []
    try:
        for version in targets:
            file_id = deps.new_id()
            dest = deps.home / "data" / version.owner / version.name / f"v{version.version + 1}-{file_id}.parquet"
            ingested = deps.subject_data.without(deps.home / version.path, version.schema.subject_column, subject,
                                                 dest, version.schema)
            written.append((version, file_id, dest, ingested))
        request_id = deps.new_id()
        with deps.store.transaction() as conn:
            controller_party = require_party(deps, conn, controller)
            made = []
            for version, file_id, dest, ingested in written:
                record = ingested.version(file_id, version.owner, version.name, version.version + 1,
                                          str(dest.relative_to(deps.home)), version.schema, now)
                deps.store.insert_version(conn, record, _dataset_id(deps, conn, version))
                deps.store.append_entry(conn, {
                    "event": "dataset.version_added", "party": version.owner, "dataset": version.key,
                    "version": record.version, "sha256": record.sha256, "rows": record.rows,
                    "columns": version.schema.to_dict()["columns"], "reason": "erasure", "request": request_id, "at": now})
                made.append({"dataset": version.key, "version": record.version, "rows_removed": version.rows - record.rows,
                             "previous_file": version.path})
            # Survey answers are kept to write each next version whole: they go too (services/conversations.py).
            surveys = deps.store.delete_answers(conn, controller_party.id, subject)
            details = {"reason": reason[:2000], "versions": made, "survey_answers": len(surveys)}
            deps.store.insert_request(conn, request_id, "erasure", party.id, controller_party.id, subject, details,
                                      "done", now)
            deps.store.answer_request(conn, request_id, "done", "erased automatically", now)
            deps.store.append_entry(conn, {"event": "subject.erasure", "party": ledger_name(party), "controller": controller,
                                           "request": request_id, "datasets": [m["dataset"] for m in made], "at": now})
    except BaseException:
        for _, _, dest, _ in written:
            dest.unlink(missing_ok=True)
        raise
    # Consent bases are filtered copies of a version's rows: drop them, so no derived file keeps
    # the erased rows (the next gated query rebuilds from the new version).
    with deps.store.read() as conn:
        for version, _, _, _ in written:
            consent_svc.purge_bases(deps, _dataset_id(deps, conn, version))
    return request(deps, individual, request_id)


def request_correction(deps: Deps, individual: str, dataset: str, column: str, value: str, comment: str = "") -> dict[str, Any]:
    """Flag a value as wrong; the controller sees the request and answers it."""
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_individual(deps, conn, individual)
        version, subject = _linked_dataset(deps, conn, party, dataset)
        if column not in version.schema.names:
            raise BadInput(f"{dataset} has no column {column!r} (columns: {', '.join(version.schema.names)})")
        current = sorted({str(r.get(column)) for r in deps.subject_data.rows(
            deps.home / version.path, version.schema.subject_column, [subject], [column]).get(subject, [])})
        request_id = deps.new_id()
        details = {"dataset": dataset, "column": column, "current": current[:50], "proposed": value[:2000],
                   "comment": comment[:2000]}
        controller = require_party(deps, conn, version.owner)
        deps.store.insert_request(conn, request_id, "correction", party.id, controller.id, subject, details, "open", now)
        deps.store.append_entry(conn, {"event": "subject.correction_requested", "party": ledger_name(party),
                                       "controller": version.owner, "request": request_id, "dataset": dataset,
                                       "column": column, "at": now})
    return request(deps, individual, request_id)


def request(deps: Deps, party_name: str, request_id: str) -> dict[str, Any]:
    """One request, to the person who made it or the controller it is addressed to; 404 to anyone else."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        found = deps.store.requests(conn, request_id=request_id)
    if not found or party_name not in (found[0]["requester"], found[0]["controller"]):
        raise NotFound(f"no request {request_id}")
    return _shown(found[0], to_controller=party_name == found[0]["controller"])


def my_requests(deps: Deps, individual: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        return [_shown(r, to_controller=False) for r in deps.store.requests(conn, party_id=party.id)]


def controller_requests(deps: Deps, controller: str, open_only: bool = False) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        party = _require_organisation(deps, conn, controller)
        found = deps.store.requests(conn, controller_id=party.id)
    return [_shown(r, to_controller=True) for r in found if not open_only or r["status"] == "open"]


def answer(deps: Deps, controller: str, request_id: str, accept: bool, message: str) -> dict[str, Any]:
    """The controller's answer to a correction request (accepted: it will publish a corrected version)."""
    if not message.strip():
        raise BadInput("give the person an answer (--message)")
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_party(deps, conn, controller)  # anyone but the addressed controller gets the same 404
        found = deps.store.requests(conn, request_id=request_id, controller_id=party.id)
        if not found:
            raise NotFound(f"no request {request_id}")
        if found[0]["status"] != "open" or not deps.store.answer_request(
                conn, request_id, "accepted" if accept else "rejected", message[:4000], now):
            raise Conflict(f"request {request_id} is already {found[0]['status']}")
        deps.store.append_entry(conn, {"event": "subject.request_answered", "party": controller, "request": request_id,
                                       "status": "accepted" if accept else "rejected", "at": now})
    return request(deps, controller, request_id)


def _shown(r: dict[str, Any], to_controller: bool) -> dict[str, Any]:
    """A request as its reader sees it: the controller sees the subject id it already holds,
    the person sees whom they asked; internal file paths stay with the controller."""
    out = {k: v for k, v in r.items() if k != "versions"}
    if "versions" in r:
        out["versions"] = [{k: v for k, v in m.items() if to_controller or k != "previous_file"} for m in r["versions"]]
    if not to_controller:
        out.pop("requester", None)
    return out


def my_datasets(deps: Deps, individual: str) -> list[dict[str, Any]]:
    """The datasets whose latest version holds the person's rows, with their columns (names only,
    no values, nothing recorded): what a correction form may name."""
    out = []
    publish_pending(deps)
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        for link in deps.store.links_of(conn, party.id):
            held = _holdings(deps, conn, link["controller"], link["subject"])
            for key, version in sorted(_latest(deps, conn, link["controller"]).items()):
                if any(v.id == version.id for v in held.get(key, [])):
                    out.append({"dataset": key, "controller": link["controller"], "version": version.version,
                                "columns": list(version.schema.names)})
    return out
