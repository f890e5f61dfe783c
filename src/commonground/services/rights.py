"""Rights pre-vetting: declare what a dataset may be shared for; refuse terms outside it.

Datasets with no declared rights stay unrestricted (so stores made before rights existed keep
working), and proposals on them are recorded on the ledger as `unvetted`; a listing, which
offers data to parties the owner has not met, needs declared rights (docs/data-products.md).
A new declaration that no longer covers an agreement suspends it, and its parties are told.
"""

from __future__ import annotations

from typing import Any

from ..domain.agreements import AgreementStatus, AgreementTerms
from ..domain.errors import NotFound, Refused
from ..domain.rights import DatasetRights, grant_gaps, parse_rights, terms_gaps
from ..domain.vocabulary import Kind
from .deps import Deps
from .notices import notify
from .parties import require_party
from .vocabulary import vocabulary

# Agreements a narrowing can still affect: in force, or waiting for signatures.
_LIVE = (AgreementStatus.ACTIVE, AgreementStatus.PROPOSED)


def _own_dataset(deps: Deps, conn: Any, actor: str, ref: str) -> tuple[str, str, list[str]]:
    """(dataset id, owner.name, columns) of one of the actor's datasets; anything else is NotFound."""
    owner, _, name = ref.partition(".") if "." in ref else (actor, "", ref)
    party = require_party(deps, conn, actor)
    dataset_id = deps.store.dataset_id(conn, party.id, name) if owner == actor else None
    versions = deps.store.versions(conn, actor, name) if dataset_id else []
    if not versions:
        raise NotFound(f"no dataset {owner}.{name} of yours")
    return dataset_id, f"{owner}.{name}", list(versions[-1].schema.names)


def declare(deps: Deps, actor: str, dataset: str, doc: Any, attested_by: str | None = None) -> dict[str, Any]:
    """Record a new version of a dataset's rights; suspend the agreements it no longer covers."""
    now = deps.now()
    with deps.store.transaction() as conn:
        dataset_id, key, columns = _own_dataset(deps, conn, actor, dataset)
        version = len(deps.store.rights_history(conn, dataset_id, key)) + 1
        rights = parse_rights(doc, key, version, attested_by or actor, now, columns)
        vocab = vocabulary(deps, conn)
        for purpose in {*rights.purposes, *(p for c in rights.columns.values() for p in c.purposes)}:
            vocab.check(Kind.PURPOSE, purpose)
        stored = {k: v for k, v in rights.to_dict().items() if k in ("legal_basis", "purposes", "columns")}
        deps.store.insert_rights(conn, deps.new_id(), dataset_id, rights, stored)
        deps.store.append_entry(conn, {"event": "rights.declared", "party": actor, "dataset": key, "version": version,
                                       **stored, "attested_by": rights.attested_by, "at": now})
        suspended = _suspend_uncovered(deps, conn, rights)
    return {**rights.to_dict(), "suspended": suspended}


def _suspend_uncovered(deps: Deps, conn: Any, rights: DatasetRights) -> list[dict[str, Any]]:
    now = deps.now()
    suspended = []
    for state in deps.store.agreements(conn):
        grant = state.terms.grant_for(rights.dataset)
        if grant is None or state.effective_status(now) not in _LIVE:
            continue
        gaps = grant_gaps(rights, grant, state.terms.purposes)
        if not gaps:
            continue
        deps.store.set_agreement_status(conn, state.id, AgreementStatus.SUSPENDED, now, by=state.terms.provider)
        index = deps.store.append_entry(conn, {"event": "agreement.suspended", "agreement": state.id,
                                               "dataset": rights.dataset, "rights_version": rights.version,
                                               "gaps": gaps, "parties": list(state.terms.parties), "at": now})
        message = (f"agreement {state.terms.name} v{state.version} ({state.id}) is suspended: the rights "
                   f"{rights.dataset} now declares (v{rights.version}) no longer cover it: " + "; ".join(gaps))
        notify(deps, conn, state.terms.parties, "agreement.suspended", state.id, message, index)
        suspended.append({"agreement": state.id, "name": state.terms.name, "gaps": gaps})
    return suspended


def history(deps: Deps, actor: str, dataset: str) -> list[dict[str, Any]]:
    """Every version of a dataset's rights, for whoever may see the dataset."""
    from .datasets import show_dataset  # datasets imports agreements, which imports this module
    version, _ = show_dataset(deps, actor, dataset)
    with deps.store.read() as conn:
        owner = deps.store.party_by_name(conn, version.owner)
        dataset_id = deps.store.dataset_id(conn, owner.id, version.name)
        return [r.to_dict() for r in deps.store.rights_history(conn, dataset_id, version.key)]


def vet(deps: Deps, conn: Any, terms: AgreementTerms) -> dict[str, int | None]:
    """Refuse terms outside their datasets' declared rights, naming every gap; returns the rights
    version each dataset was vetted against (None: no rights declared, so nothing to vet)."""
    rights = deps.store.current_rights(conn, [g.dataset for g in terms.datasets])
    gaps = terms_gaps(terms, rights)
    if gaps:
        raise Refused([f"rights: {gap}" for gap in gaps])
    return {g.dataset: rights[g.dataset].version if g.dataset in rights else None for g in terms.datasets}
