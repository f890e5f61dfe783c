"""Agreements: propose, accept, revoke. Nothing is edited in place; amending is a new version."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any, Mapping

import yaml

from ..domain.agreements import (AccessMode, AgreementState, AgreementStatus, AgreementTerms, check_against,
                                 parse_agreement, render_template)
from ..domain.conversations import agreement_gaps
from ..domain.errors import BadInput, Conflict, NotFound, Refused
from ..domain.names import check_label
from ..domain.vocabulary import Kind
from ..policy.exports import ungeneralised_quasi_identifiers
from .answers import publish_pending
from .deps import Deps
from .parties import require_party
from .rights import vet as vet_rights
from .vocabulary import vocabulary


def load_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BadInput(f"{what} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None


def terms_digest(terms_dict: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(terms_dict, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def propose(deps: Deps, actor: str, doc: Any) -> AgreementState:
    terms = parse_agreement(doc)
    if terms.provider != actor:
        raise BadInput(f"only the provider ({terms.provider}) can propose this agreement, not {actor}")
    now = deps.now()
    if terms.valid_until <= now:
        raise BadInput(f"agreement: valid_until {terms.valid_until.date()} is in the past")
    publish_pending(deps)  # terms are checked against the datasets as a reader would see them
    with deps.store.transaction() as conn:
        provider = require_party(deps, conn, actor)
        vetted = check_terms(deps, conn, terms)
        state = insert_agreement(deps, conn, terms, provider.id, AgreementStatus.PROPOSED, {actor})
        deps.store.append_entry(conn, {"event": "agreement.proposed", "agreement": state.id, "name": terms.name,
                                       "version": state.version, "party": actor, "parties": list(terms.parties),
                                       "terms_sha256": terms_digest(terms.to_dict()), "rights": vetted, "at": now})
    return state


def proposal_summary(deps: Deps, state: AgreementState) -> dict[str, Any]:
    """The summary of a new proposal with its `cautions`."""
    return {**agreement_summary(state, deps.now()), **cautions(deps, state)}


def cautions(deps: Deps, state: AgreementState) -> dict[str, Any]:
    """What whoever proposes or signs the terms is told, not refused: `unvetted`, its datasets
    that declare no rights, so nothing checked the terms against a legal basis (stores made before
    rights existed keep working; the ledger records the same as `rights: null`), and
    `ungeneralised`: per dataset of a rows agreement, shared columns named like quasi-identifiers
    that no export would generalise (`policy.exports.ungeneralised_quasi_identifiers`)."""
    with deps.store.read() as conn:
        declared = deps.store.current_rights(conn, [g.dataset for g in state.terms.datasets])
    return {"unvetted": [g.dataset for g in state.terms.datasets if g.dataset not in declared],
            "ungeneralised": ungeneralised(deps, state)}


def ungeneralised(deps: Deps, state: AgreementState) -> dict[str, list[str]]:
    """Per dataset of a rows agreement, the shared columns named like quasi-identifiers that no
    export would generalise; nothing to read for other modes."""
    if state.terms.mode is not AccessMode.ROWS:
        return {}
    with deps.store.read() as conn:
        schemas = {v.key: v.schema for v in deps.store.versions(conn, state.terms.provider)}
    return ungeneralised_quasi_identifiers(state.terms, schemas)


def check_terms(deps: Deps, conn, terms: AgreementTerms) -> dict[str, int | None]:
    """Everything terms must pass before anyone signs: known purposes and parties, the provider's
    catalog, and the datasets' declared rights; returns the rights version each dataset was vetted on."""
    vocab = vocabulary(deps, conn)
    for purpose in terms.purposes:
        vocab.check(Kind.PURPOSE, purpose)
    for r in terms.recipients:
        require_party(deps, conn, r)
    schemas = {v.key: v.schema for v in deps.store.versions(conn, terms.provider)}
    check_against(terms, schemas)
    # Survey answers go only to the party each person chose, in aggregate (domain/conversations.py).
    provider_id = require_party(deps, conn, terms.provider).id
    gaps = agreement_gaps(deps.store.survey_copies(conn, provider_id), [g.dataset for g in terms.datasets],
                          terms.recipients, terms.mode.value, terms.min_group_size)
    if gaps:
        raise Refused(gaps)
    return vet_rights(deps, conn, terms)


def insert_agreement(deps: Deps, conn, terms: AgreementTerms, provider_id: str, status: AgreementStatus,
                     signers: set[str]) -> AgreementState:
    """Store the next version of the terms, signed by `signers`, in the caller's transaction."""
    now = deps.now()
    version = deps.store.latest_version(conn, provider_id, terms.name) + 1
    state = AgreementState(deps.new_id(), version, terms, status, frozenset(signers), secrets.token_bytes(32))
    deps.store.insert_agreement(conn, state, provider_id, now)
    for signer in sorted(signers):
        deps.store.add_signature(conn, state.id, signer, now)
    return state


def propose_from_template(deps: Deps, actor: str, template: str, params: Mapping[str, str]) -> AgreementState:
    with deps.store.read() as conn:
        found = deps.store.template(conn, template)
    if found is None:
        raise NotFound(f"no agreement template {template!r}")
    return propose(deps, actor, load_yaml(render_template(found[0], params), f"template {template}"))


def add_template(deps: Deps, actor: str, name: str, text: str) -> str:
    check_label("template", name)
    if not text.strip():
        raise BadInput("template is empty")
    # Parameters may sit anywhere (even inside YAML flow lists), so the text is checked
    # as an agreement only when it is rendered with values, at proposal time.
    with deps.store.transaction() as conn:
        owner = require_party(deps, conn, actor)
        if deps.store.template(conn, name):
            raise Conflict(f"template {name!r} already exists")
        template_id = deps.new_id()
        deps.store.insert_template(conn, template_id, owner.id, name, text, deps.now())
        deps.store.append_entry(conn, {"event": "template.added", "template": name, "party": actor,
                                       "sha256": hashlib.sha256(text.encode()).hexdigest(), "at": deps.now()})
    return template_id


def list_templates(deps: Deps) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        return deps.store.templates(conn)


def _visible(deps: Deps, conn, actor: str, agreement_id: str, for_update: bool = False) -> AgreementState:
    found = deps.store.agreements(conn, agreement_id, for_update=for_update)
    if not found or actor not in found[0].terms.parties:
        raise NotFound(f"no agreement {agreement_id}")
    return found[0]


def accept(deps: Deps, actor: str, agreement_id: str) -> AgreementState:
    now = deps.now()
    with deps.store.transaction() as conn:
        require_party(deps, conn, actor)
        state = _visible(deps, conn, actor, agreement_id, for_update=True)
        if state.effective_status(now) is not AgreementStatus.PROPOSED:
            raise Conflict(f"agreement {agreement_id} is {state.effective_status(now).value}, not proposed")
        if actor in state.accepted_by:
            raise Conflict(f"{actor} has already accepted agreement {agreement_id}")
        if now > state.terms.valid_until:
            raise Conflict(f"agreement {agreement_id} expired on {state.terms.valid_until.date()}")
        deps.store.add_signature(conn, agreement_id, actor, now)
        signed = state.accepted_by | {actor}
        status = AgreementStatus.ACTIVE if signed >= set(state.terms.parties) else AgreementStatus.PROPOSED
        deps.store.append_entry(conn, {"event": "agreement.accepted", "agreement": agreement_id, "party": actor,
                                       "status": status.value, "at": now})
        if status is AgreementStatus.ACTIVE:
            deps.store.set_agreement_status(conn, agreement_id, status, now)
            for other in deps.store.agreements(conn):
                if (other.id != agreement_id and other.terms.name == state.terms.name
                        and other.terms.provider == state.terms.provider and other.status is AgreementStatus.ACTIVE):
                    deps.store.set_agreement_status(conn, other.id, AgreementStatus.SUPERSEDED, now)
                    deps.store.append_entry(conn, {"event": "agreement.superseded", "agreement": other.id,
                                                   "by": agreement_id, "at": now})
    return AgreementState(state.id, state.version, state.terms, status, frozenset(signed), state.hash_key)


def revoke(deps: Deps, actor: str, agreement_id: str) -> AgreementState:
    now = deps.now()
    with deps.store.transaction() as conn:
        require_party(deps, conn, actor)
        state = _visible(deps, conn, actor, agreement_id, for_update=True)
        # A suspended agreement is revocable too: its parties end it on the record rather than
        # leave it suspended for ever (suspension itself is never lifted).
        if state.effective_status(now) not in (AgreementStatus.ACTIVE, AgreementStatus.PROPOSED,
                                               AgreementStatus.SUSPENDED):
            raise Conflict(f"agreement {agreement_id} is {state.effective_status(now).value}; nothing to revoke")
        deps.store.set_agreement_status(conn, agreement_id, AgreementStatus.REVOKED, now, by=actor)
        deps.store.append_entry(conn, {"event": "agreement.revoked", "agreement": agreement_id, "party": actor, "at": now})
    return AgreementState(state.id, state.version, state.terms, AgreementStatus.REVOKED, state.accepted_by, state.hash_key)


def list_agreements(deps: Deps, actor: str) -> list[AgreementState]:
    with deps.store.read() as conn:
        require_party(deps, conn, actor)
        return [a for a in deps.store.agreements(conn) if actor in a.terms.parties]


def show(deps: Deps, actor: str, agreement_id: str) -> AgreementState:
    with deps.store.read() as conn:
        require_party(deps, conn, actor)
        return _visible(deps, conn, actor, agreement_id)


def agreements_in_force(deps: Deps, conn, recipient: str) -> list[AgreementState]:
    now = deps.now()
    return [a for a in deps.store.agreements(conn) if a.in_force(now) and recipient in a.terms.recipients]


def agreement_summary(state: AgreementState, now) -> dict[str, Any]:
    return {"id": state.id, "name": state.terms.name, "version": state.version,
            "status": state.effective_status(now).value, "provider": state.terms.provider,
            "recipients": list(state.terms.recipients), "accepted_by": sorted(state.accepted_by),
            "purposes": list(state.terms.purposes), "valid_until": state.terms.valid_until.isoformat(),
            "mode": state.terms.mode.value, "min_group_size": state.terms.min_group_size,
            "terms": state.terms.to_dict()}
