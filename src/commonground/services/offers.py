"""Offers: a recipient's per-subject computation whose results go to the subjects, not to it.

The recipient submits the computation (see policy/offers.py) under an `offer` agreement; the
store runs it over the governed view (transforms and the consent gate applied) and makes one
offer per subject, holding the terms, the exact fields used and the subject's values of
them. The subject sees all of that and accepts or declines; acceptance can grant the
consents the offer needs, and the subject chooses what, if anything, to release. The
recipient sees, per opaque offer id, only the decision and what was released. The values
shown with an offer are the rows it was computed from, as the computation saw them (after the
agreement's transforms and the filter), so "why am I seeing this" has an exact answer.

A batch that would reach fewer subjects than the agreement's minimum group size is refused
whole, so an offer cannot be aimed at one person through a narrow filter.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..domain.errors import BadInput, Conflict, NotFound, Refused
from ..domain.schema import ConsentMode
from ..domain.vocabulary import Kind
from . import consent as consent_svc
from . import queries as query_svc
from .agreements import agreements_in_force
from .deps import Deps
from .parties import ledger_name_of, require_party
from .subjects import require_individual
from .vocabulary import vocabulary

MAX_TITLE = 200


def submit(deps: Deps, recipient: str, purpose: str, sql: str, title: str,
           needs_consent: tuple[str, ...] = ()) -> dict[str, Any]:
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"give the offer a title of 1 to {MAX_TITLE} characters (what the person will read)")
    with deps.store.read() as conn:
        vocab = vocabulary(deps, conn)
        for p in needs_consent:
            vocab.check(Kind.PURPOSE, p)
    try:
        plan, sources, consent, versions, _, _ = query_svc.plan_query(deps, recipient, purpose, sql, per_subject=True)
        result = deps.engine.run(plan, sources, consent)
        if len(result.rows) < plan.min_group_size:
            raise Refused([f"offer: fewer than {plan.min_group_size} people qualify (the agreement's minimum group "
                           "size), so no offers were made; widen the filter"])
    except (Refused, NotFound) as refusal:
        with deps.store.transaction() as conn:
            deps.store.append_entry(conn, {"event": "offer.refused", "party": recipient, "purpose": purpose,
                                           "reasons": getattr(refusal, "reasons", [str(refusal)]), "at": deps.now()})
        raise
    key = plan.datasets[0]
    version = versions[key]
    columns = [f.split(".", 2)[2] for f in plan.fields]
    subjects = [str(row[0]) for row in result.rows]
    evidence = deps.engine.run(dataclasses.replace(plan, sql=plan.evidence_sql, columns=plan.evidence_columns),
                               sources, consent)
    values: dict[str, list[dict[str, Any]]] = {}
    for row in evidence.rows:
        values.setdefault(str(row[0]), []).append(
            {c: query_svc.plain(v) for c, v in zip(plan.evidence_columns[1:], row[1:])})
    terms_names = list(plan.columns[1:])
    now = deps.now()
    batch_id = deps.new_id()
    with deps.store.transaction() as conn:
        agreement = plan.agreements[0]
        if agreement not in {a.id for a in agreements_in_force(deps, conn, recipient)}:
            raise Conflict(f"agreement {agreement} stopped being in force while the offers were computed; nothing was made")
        controller = require_party(deps, conn, version.owner)
        index = deps.store.append_entry(conn, {
            "event": "offer.batch_created", "party": recipient, "purpose": purpose, "agreement": agreement,
            "dataset": key, "version": version.version, "fields": columns, "offers": len(subjects), "batch": batch_id,
            "at": now})
        deps.store.insert_offer_batch(conn, {
            "id": batch_id, "agreement_id": agreement, "recipient": recipient, "purpose": purpose,
            "dataset_id": deps.store.dataset_id(conn, controller.id, version.name), "version": version.version,
            "title": title, "sql": sql, "fields": columns, "needs_consent": list(needs_consent), "ledger_index": index,
            "created_at": now,
        }, [{"id": deps.new_id(), "controller_id": controller.id, "subject": subject,
             "terms": dict(zip(terms_names, (query_svc.plain(v) for v in row[1:]))), "values": values.get(subject, [])}
            for subject, row in zip(subjects, result.rows)])
    return {"batch": batch_id, "offers": len(subjects), "agreement": agreement, "dataset": key,
            "fields": columns, "terms": terms_names, "title": title}


# -- the subject's side ---------------------------------------------------------------------

def inbox(deps: Deps, individual: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        party = require_individual(deps, conn, individual)
        found = [o for link in deps.store.links_of(conn, party.id)
                 for o in deps.store.offers(conn, controller_id=link["controller_id"], subject=link["subject"])]
    return [_for_subject(o, brief=True) for o in found]


def show(deps: Deps, party_name: str, offer_id: str) -> dict[str, Any]:
    """The subject sees everything about their offer (the 'why am I seeing this'); the recipient
    sees the decision and what was released; anyone else gets a 404."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        found = deps.store.offers(conn, offer_id=offer_id)
        if found:
            offer = found[0]
            if offer["recipient"] == party_name:
                return _for_recipient(offer)
            holder = deps.store.link_holder(conn, _controller_id(deps, conn, offer), offer["subject"])
            if holder == party.id:
                return _for_subject(offer)
    raise NotFound(f"no offer {offer_id}")


def decide(deps: Deps, individual: str, offer_id: str, accept: bool, release: tuple[str, ...] = ()) -> dict[str, Any]:
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_party(deps, conn, individual)  # anyone but the offer's person gets the same 404
        found = deps.store.offers(conn, offer_id=offer_id, for_update=True)
        if not found or deps.store.link_holder(conn, _controller_id(deps, conn, found[0]), found[0]["subject"]) != party.id:
            raise NotFound(f"no offer {offer_id}")
        offer = found[0]
        if offer["status"] != "pending":
            raise Conflict(f"offer {offer_id} is already {offer['status']}")
        if release and not accept:
            raise BadInput("nothing is released with a declined offer; decline without --release")
        releasable = set(offer["terms"]) | set(offer["fields"])
        unknown = sorted(set(release) - releasable)
        if unknown:
            raise BadInput(f"cannot release {unknown}: choose from the offer's terms and the fields it used "
                           f"({', '.join(sorted(releasable))})")
        released = {name: offer["terms"][name] if name in offer["terms"] else sorted(
            {str(v.get(name)) for v in offer["values"]}) for name in release}
        if not deps.store.decide_offer(conn, offer_id, "accepted" if accept else "declined", released, now):
            raise Conflict(f"offer {offer_id} was decided meanwhile")
        granted = []
        if accept and offer["needs_consent"]:
            versions = {v.key: v for v in deps.store.versions(conn, offer["controller"])}
            if versions[offer["dataset"]].schema.consent is not ConsentMode.NONE:
                consent_svc.record_in(deps, conn, offer["dataset_id"], offer["dataset"],
                                      [(offer["subject"], p, "granted") for p in offer["needs_consent"]], "offer", individual)
                granted = list(offer["needs_consent"])
        deps.store.append_entry(conn, {"event": "offer.decided", "party": ledger_name_of(deps, conn, individual), "offer": offer_id,
                                       "batch": offer["batch"], "decision": "accepted" if accept else "declined",
                                       "released": sorted(released), "consents_granted": granted, "at": now})
    return show(deps, individual, offer_id)


def _controller_id(deps: Deps, conn, offer: dict[str, Any]) -> str:
    return require_party(deps, conn, offer["controller"]).id


# -- the recipient's side -------------------------------------------------------------------

def batches(deps: Deps, recipient: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        require_party(deps, conn, recipient)
        found = deps.store.offers(conn, recipient=recipient)
    out: dict[str, dict[str, Any]] = {}
    for o in found:
        b = out.setdefault(o["batch"], {"batch": o["batch"], "title": o["title"], "purpose": o["purpose"],
                                        "agreement": o["agreement"], "dataset": o["dataset"],
                                        "created_at": o["created_at"].isoformat(), "offers": 0,
                                        "pending": 0, "accepted": 0, "declined": 0})
        b["offers"] += 1
        b[o["status"]] += 1
    return list(out.values())


def batch(deps: Deps, recipient: str, batch_id: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        require_party(deps, conn, recipient)
        found = deps.store.offers(conn, batch_id=batch_id, recipient=recipient)
    if not found:
        raise NotFound(f"no offer batch {batch_id} of yours")
    return [_for_recipient(o) for o in found]


def _for_recipient(o: dict[str, Any]) -> dict[str, Any]:
    return {"id": o["id"], "batch": o["batch"], "title": o["title"], "status": o["status"],
            "decided_at": o["decided_at"].isoformat() if o["decided_at"] else None, "released": o["released"] or {}}


def _for_subject(o: dict[str, Any], brief: bool = False) -> dict[str, Any]:
    out = {"id": o["id"], "from": o["recipient"], "title": o["title"], "purpose": o["purpose"], "terms": o["terms"],
           "status": o["status"], "created_at": o["created_at"].isoformat(),
           "decided_at": o["decided_at"].isoformat() if o["decided_at"] else None}
    if brief:
        return out
    return {**out, "agreement": o["agreement"], "dataset": o["dataset"], "version": o["version"],
            "computation": o["sql"], "fields_used": o["fields"], "your_values": o["values"],
            "needs_consent": o["needs_consent"], "released": o["released"] or {}, "ledger_index": o["ledger_index"]}
