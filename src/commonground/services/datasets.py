"""Datasets: immutable versions with a SHA-256 commitment, visible only to who may see them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..domain.errors import BadInput, NotFound
from ..domain.vocabulary import Kind
from ..domain.names import check_name
from ..domain.records import DatasetVersion
from ..domain.schema import DatasetSchema, parse_schema
from .agreements import agreements_in_force
from .answers import publish_pending
from .deps import Deps
from .parties import require_party
from .vocabulary import vocabulary


def add_dataset(deps: Deps, owner: str, name: str, source: Path, schema_doc: Any | None = None,
                progress: Callable[[float], None] | None = None) -> tuple[DatasetVersion, tuple[str, ...]]:
    """Ingest a file as the next version of owner.name; returns the version and any warnings."""
    check_name("dataset", name)
    schema = parse_schema(schema_doc) if schema_doc is not None else None
    with deps.store.read() as conn:
        require_party(deps, conn, owner)
        if schema is not None:
            vocab = vocabulary(deps, conn)
            for column in schema.columns:
                try:
                    vocab.check(Kind.CATEGORY, column.category)
                except BadInput as e:
                    raise BadInput(f"schema: column {column.name!r}: {e}") from None
            for purpose in schema.consent_purposes:
                vocab.check(Kind.PURPOSE, purpose)
        version = len(deps.store.versions(conn, owner, name)) + 1
    file_id = deps.new_id()
    dest = deps.home / "data" / owner / name / f"v{version}-{file_id}.parquet"
    curation: list[Any] = []  # adapters.curation.ColumnCuration, one per curated column
    ingested, schema = deps.ingest.ingest(Path(source), schema, dest, progress, curation_report=curation)
    warnings = (*schema.warnings, *(w for c in curation for w in c.warnings()), *_pii_warnings(deps, dest, schema))
    try:
        with deps.store.transaction() as conn:
            party = require_party(deps, conn, owner)
            dataset_id = deps.store.dataset_id(conn, party.id, name)
            if dataset_id is None:
                dataset_id = deps.new_id()
                deps.store.insert_dataset(conn, dataset_id, party.id, name, deps.now())
            record = ingested.version(file_id, owner, name, version, str(dest.relative_to(deps.home)), schema, deps.now())
            deps.store.insert_version(conn, record, dataset_id)
            deps.store.append_entry(conn, {
                "event": "dataset.version_added", "party": owner, "dataset": f"{owner}.{name}", "version": version,
                "sha256": ingested.sha256, "rows": ingested.rows, "columns": schema.to_dict()["columns"],
                **({"curation": {c.column: c.ledger_fields() for c in curation}} if curation else {}),
                "at": record.created_at})
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return record, warnings


def purge(deps: Deps, owner: str, name: str) -> dict[str, Any]:
    """Delete the data files of every superseded version of one of the owner's datasets.

    Versions are immutable files the ledger commits to by hash, so an erasure makes a new version
    and leaves the older ones on disk (docs/individuals.md); this is how the controller removes
    them under its retention policy. The latest version is never purged. Each purged version keeps
    its metadata and hash, and its distinct subject ids only, so the receipts of the people who
    were in it still show. The ledger entry is committed before any file goes: a crash leaves
    files that a second `purge` removes, never a deletion the ledger does not tell.
    """
    check_name("dataset", name)
    with deps.store.transaction() as conn:
        require_party(deps, conn, owner)
        history = deps.store.versions(conn, owner, name)
        if not history:
            raise NotFound(f"no dataset {owner}.{name} of yours")
        stale = [v for v in history[:-1] if (deps.home / v.path).exists()]
        if stale:
            deps.store.append_entry(conn, {
                "event": "dataset.versions_purged", "party": owner, "dataset": f"{owner}.{name}",
                "versions": [{"version": v.version, "sha256": v.sha256} for v in stale], "at": deps.now()})
    for v in stale:
        deps.subject_data.purge(deps.home / v.path, v.schema.subject_column)
    return {"dataset": f"{owner}.{name}", "purged": [v.version for v in stale], "kept": history[-1].version,
            "bytes_freed": sum(v.bytes for v in stale)}


def _pii_warnings(deps: Deps, path: Path, schema: DatasetSchema) -> list[str]:
    """The personal-data scan of a new version's plain attributes: warnings only, never a refusal."""
    scan = getattr(deps.ingest, "scan_pii", None)
    if scan is None:
        return []
    try:
        return list(scan(path, schema))
    except Exception as e:  # the upload stands whatever the scan makes of it
        return [f"the personal-data scan did not complete ({type(e).__name__}); run `commonground dataset scan FILE`"]


def curation_report(deps: Deps, version: DatasetVersion) -> dict[str, Any]:
    """The curation counts recorded on the ledger with a version (empty when nothing was curated).

    Read from the version's `dataset.version_added` entry; only datasets that declare a step pay
    for the read.
    """
    if not any(getattr(c, "curate", None) for c in version.schema.columns):
        return {}
    marker = f'"sha256":"{version.sha256}"'
    with deps.store.read() as conn:
        for chunk in deps.store.iter_entries(conn):
            for _, _, text in chunk:
                if marker in text and '"dataset.version_added"' in text:
                    entry = json.loads(text)
                    if entry.get("dataset") == version.key and entry.get("version") == version.version:
                        return dict(entry.get("curation", {}))
    return {}


def visible_versions(deps: Deps, conn, party: str) -> dict[str, DatasetVersion]:
    """Latest version of each dataset the party may name: its own and those granted to it."""
    latest: dict[str, DatasetVersion] = {}
    granted = {g.dataset for a in agreements_in_force(deps, conn, party) for g in a.terms.datasets}
    for v in deps.store.versions(conn):
        if v.owner == party or v.key in granted:
            latest[v.key] = v
    return latest


def list_datasets(deps: Deps, party: str) -> list[DatasetVersion]:
    publish_pending(deps)
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        return list(visible_versions(deps, conn, party).values())


def show_dataset(deps: Deps, party: str, ref: str) -> tuple[DatasetVersion, list[DatasetVersion]]:
    """Latest version and history of a dataset; `ref` is owner.name or a name of the party's own."""
    owner, _, name = ref.partition(".") if "." in ref else (party, "", ref)
    publish_pending(deps)
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        visible = visible_versions(deps, conn, party)
        key = f"{owner}.{name}"
        if key not in visible:
            raise NotFound(f"no dataset {key} is available to you")
        history = deps.store.versions(conn, owner, name) if owner == party else [visible[key]]
    return visible[key], history


def dataset_summary(v: DatasetVersion, history: list[DatasetVersion] | None = None, own: bool = True) -> dict[str, Any]:
    """What `dataset show --json` and the API return. Others see their grant, not the file."""
    schema: DatasetSchema = v.schema
    out: dict[str, Any] = {
        "id": v.id, "dataset": v.key, "owner": v.owner, "name": v.name, "rows": v.rows,
        "columns": [{"name": c.name, "type": c.type.value, "role": c.role.value, "category": c.category, **c.seal_dict()}
                    for c in schema.columns],
        "version": v.version, "sha256": v.sha256,
        "versions": [{"version": h.version, "sha256": h.sha256, "rows": h.rows, "bytes": h.bytes,
                      "created_at": h.created_at.isoformat()} for h in (history or [v])],
    }
    if schema.collaboration:
        out["collaboration"] = schema.collaboration  # sealed at the contributors' sites (docs/sealing.md)
    if own:
        out["subjects"] = v.distinct_subjects
        out["max_rows_per_subject"] = v.max_rows_per_subject
        if v.subject_level_columns is not None:
            out["subject_level_columns"] = sorted(v.subject_level_columns)
        if schema.consent.value != "none":
            out["consent"] = schema.consent.value
    return out
