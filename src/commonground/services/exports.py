"""Curated exports (`rows` access mode): a recipient's own, governed, k-anonymous copy.

The copy is made in the store (transforms and the consent gate applied, generalised or
suppressed to k-anonymity over the quasi-identifiers, rows in a keyed order, pseudonyms under
a key of the recipient's own), written whole to `tmp/` and moved into `exports/`, and only
then recorded: the export and every download are on the ledger with the file's SHA-256, and
the export is a computation in every included person's receipts.

A leaked file can be traced to its recipient (`trace`): its pseudonyms are recomputed under
each recipient's key from the dataset's subject ids, and the key that reproduces them names
the recipient; Parquet files also carry the export id in their metadata.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..domain.errors import BadInput, Conflict, NotFound
from ..policy.exports import govern_export, no_finer_than
from . import consent as consent_svc
from .agreements import agreements_in_force
from .answers import publish_pending
from .deps import Deps
from .parties import require_party
from .queries import catalog, record_computation

FORMATS = ("parquet", "csv")


def export(deps: Deps, recipient: str, dataset: str, purpose: str, fmt: str = "parquet") -> dict[str, Any]:
    if fmt not in FORMATS:
        raise BadInput(f"format must be parquet or csv, not {fmt!r}")
    publish_pending(deps)
    with deps.store.read() as conn:
        versions, context = catalog(deps, conn, recipient, purpose)
        plan = govern_export(context, dataset)
        version = versions[dataset]
        dataset_id = deps.store.dataset_id(conn, require_party(deps, conn, version.owner).id, version.name)
        gate = consent_svc.gate(deps, conn, dataset_id, version, purpose) if plan.view.consent else None
        plan = no_finer_than(plan, [e["report"]["quasi_identifiers"] for e in deps.store.exports(
            conn, recipient=recipient, dataset_ids=[dataset_id]) if e["agreement"] == plan.agreement])
    export_id = deps.new_id()
    tmp = deps.home / "tmp" / f"export-{export_id}.{fmt}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        outcome = deps.engine.export(plan, deps.home / version.path, gate, tmp, fmt,  # type: ignore[attr-defined]
                                     {"commonground.export": export_id, "commonground.dataset": dataset})
        digest, size = outcome.sha256, outcome.bytes
        dest = deps.home / "exports" / recipient / f"{export_id}.{fmt}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    floor = {q.name: q.labels[plan.floor[q.name]] for q in plan.quasi_identifiers if plan.floor.get(q.name)}
    report = {"k": plan.k, "quasi_identifiers": outcome.levels, "rows_in": outcome.rows_in, "rows_out": outcome.rows_out,
              "suppressed_rows": outcome.rows_in - outcome.rows_out,
              "suppression_rate": round((outcome.rows_in - outcome.rows_out) / outcome.rows_in, 6) if outcome.rows_in else 0.0,
              "smallest_class": outcome.smallest_class, "generalisation_steps": outcome.steps,
              "columns": list(plan.columns),
              **({"no_finer_than_earlier": floor} if floor else {}),
              **({"l_diversity": plan.l_diversity, "sensitive": list(plan.sensitive),
                  "least_diversity": outcome.least_diversity} if plan.l_diversity else {})}
    now = deps.now()
    try:
        with deps.store.transaction() as conn:
            if plan.agreement not in {a.id for a in agreements_in_force(deps, conn, recipient)}:
                raise Conflict(f"agreement {plan.agreement} stopped being in force during the export; nothing was released")
            index = deps.store.append_entry(conn, {
                "event": "export", "party": recipient, "purpose": purpose, "agreement": plan.agreement,
                "dataset": dataset, "version": version.version, "format": fmt, "export": export_id, "sha256": digest,
                "rows": outcome.rows_out, "suppressed_rows": report["suppressed_rows"],
                "smallest_class": outcome.smallest_class, "levels": outcome.levels,
                **({"least_diversity": outcome.least_diversity} if plan.l_diversity else {}), "at": now})
            record_computation(deps, conn, "export", recipient, purpose, (plan.agreement,),
                               tuple(f"{dataset}.{c}" for c in plan.columns), {dataset: version}, index, now)
            deps.store.insert_export(conn, {
                "id": export_id, "agreement_id": plan.agreement, "recipient": recipient, "dataset_id": dataset_id,
                "version": version.version, "purpose": purpose, "format": fmt, "path": str(dest.relative_to(deps.home)),
                "sha256": digest, "bytes": size, "rows": outcome.rows_out, "report": report, "ledger_index": index,
                "created_at": now})
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return {"id": export_id, "dataset": dataset, "version": version.version, "agreement": plan.agreement,
            "format": fmt, "sha256": digest, "bytes": size, **report}


def list_exports(deps: Deps, party: str) -> list[dict[str, Any]]:
    """A recipient's exports; a provider's view of the exports made from its datasets."""
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        mine = deps.store.exports(conn, recipient=party)
        owned = [v for v in deps.store.versions(conn, party)]
        ids = sorted({deps.store.dataset_id(conn, require_party(deps, conn, party).id, v.name) for v in owned})
        made_from = deps.store.exports(conn, dataset_ids=ids) if ids else []
    return [_shown(e) for e in {e["id"]: e for e in mine + made_from}.values()]


def download(deps: Deps, recipient: str, export_id: str) -> tuple[Path, dict[str, Any]]:
    """The file of one of the recipient's exports; the download is logged with its hash."""
    with deps.store.transaction() as conn:
        require_party(deps, conn, recipient)
        found = deps.store.exports(conn, export_id=export_id, recipient=recipient)
        if not found:
            raise NotFound(f"no export {export_id} of yours")
        record = found[0]
        path = deps.home / record["path"]
        if not path.is_file():
            raise NotFound(f"the file of export {export_id} is no longer kept")
        deps.store.append_entry(conn, {"event": "export.downloaded", "party": recipient, "export": export_id,
                                       "sha256": record["sha256"], "at": deps.now()})
    return path, _shown(record)


def trace(deps: Deps, provider: str, leaked: Path) -> list[dict[str, Any]]:
    """Which recipient's copy a leaked file is: for each export of the provider's datasets, the
    share of the file's values in each column that equal that recipient's pseudonyms."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, provider)
        owned = {v.key: v for v in deps.store.versions(conn, provider)}
        ids = {deps.store.dataset_id(conn, party.id, v.name): v for v in owned.values()}
        made = deps.store.exports(conn, dataset_ids=sorted(ids)) if ids else []
        agreements = {a.id: a for a in deps.store.agreements(conn)}
    candidates = []
    for record in {(e["agreement"], e["recipient"], e["dataset"]): e for e in made}.values():
        version = owned[record["dataset"]]
        subject = version.schema.subject_column
        agreement = agreements[record["agreement"]]
        grant = agreement.terms.grant_for(record["dataset"])
        if subject is None or grant is None:
            continue
        candidates.append((record, deps.home / version.path, subject, agreement))
    found = deps.subject_data.trace(leaked, candidates)  # type: ignore[attr-defined]
    return sorted(found, key=lambda f: -f["matched"])


def _shown(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if k == "created_at" else v) for k, v in record.items() if k not in ("path", "dataset_id")}
