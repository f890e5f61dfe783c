"""Consent: a subject's grant or withdrawal of a purpose for one controller's dataset.

Records are an append-only history; the current state per (dataset, purpose, subject) moves
in the same transaction, and every query reads it at the moment it runs, so a withdrawal
takes effect on the very next query. The ledger records that consent changed and how many
records, never whose: subject ids are data.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from ..domain.errors import BadInput, NotFound
from ..domain.schema import ConsentMode
from ..domain.vocabulary import Kind
from .deps import Deps
from .parties import require_party
from .vocabulary import vocabulary

STATUSES = ("granted", "withdrawn")
MAX_IMPORT_ROWS = 5_000_000


def _controlled_dataset(deps: Deps, conn, controller: str, ref: str):
    owner, _, name = ref.partition(".") if "." in ref else (controller, "", ref)
    party = require_party(deps, conn, controller)
    if owner != controller:
        raise NotFound(f"no dataset {owner}.{name} of yours")
    dataset_id = deps.store.dataset_id(conn, party.id, name)
    versions = deps.store.versions(conn, owner, name)
    if dataset_id is None or not versions:
        raise NotFound(f"no dataset {owner}.{name} of yours")
    schema = versions[-1].schema
    if schema.consent is ConsentMode.NONE:
        raise BadInput(f"{owner}.{name} does not take consent: declare `consent: opt_in` or `opt_out` in its schema")
    return dataset_id, schema


def record(deps: Deps, controller: str, dataset: str, rows: list[tuple[str, str, str]], source: str,
           numbered: bool = False) -> int:
    """Validate every row first, then record them all in one transaction (or none)."""
    if not rows:
        raise BadInput("no consent records given")
    with deps.store.transaction() as conn:
        dataset_id, _ = _controlled_dataset(deps, conn, controller, dataset)
        record_in(deps, conn, dataset_id, dataset, rows, source, controller, numbered)
    return len(rows)


def record_in(deps: Deps, conn, dataset_id: str, dataset: str, rows: list[tuple[str, str, str]], source: str,
              by: str, numbered: bool = False) -> None:
    """Check and append consent records inside the caller's transaction, with their ledger entry.

    `by` is who recorded them: the controller (source controller|import), the subject
    themselves (source subject) or the subject accepting an offer (source offer).
    """
    vocab = vocabulary(deps, conn)
    for n, (subject, purpose, status) in enumerate(rows, start=1):
        where = f"record {n}: " if numbered else ""
        if not subject:
            raise BadInput(f"{where}subject id is empty")
        if status not in STATUSES:
            raise BadInput(f"{where}status must be granted or withdrawn, not {status!r}")
        try:
            vocab.check(Kind.PURPOSE, purpose)
        except BadInput as e:
            raise BadInput(f"{where}{e}") from None
    deps.store.record_consents(conn, dataset_id, rows, source, by, deps.now())
    counts = {s: sum(1 for r in rows if r[2] == s) for s in STATUSES}
    deps.store.append_entry(conn, {"event": "consent.recorded", "party": by, "dataset": dataset,
                                   "source": source, "records": len(rows), **counts,
                                   "purposes": sorted({r[1] for r in rows}), "at": deps.now()})


def import_csv(deps: Deps, controller: str, dataset: str, path: Path) -> int:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read {path}: {e}") from None
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"subject_id", "purpose", "status"} <= set(reader.fieldnames):
        raise BadInput(f"{path.name}: needs the columns subject_id,purpose,status")
    rows = []
    for n, row in enumerate(reader, start=2):
        if n - 1 > MAX_IMPORT_ROWS:
            raise BadInput(f"{path.name}: more than {MAX_IMPORT_ROWS:,} records; split the file")
        rows.append(((row["subject_id"] or "").strip(), (row["purpose"] or "").strip(), (row["status"] or "").strip()))
    try:
        return record(deps, controller, dataset, rows, "import", numbered=True)
    except BadInput as e:
        message = str(e)
        if message.startswith("record "):
            number, _, rest = message[len("record "):].partition(": ")
            message = f"line {int(number) + 1}: {rest}"
        raise BadInput(f"{path.name}: {message}") from None


def history(deps: Deps, controller: str, dataset: str, subject: str | None = None) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        dataset_id, _ = _controlled_dataset(deps, conn, controller, dataset)
        return deps.store.consent_history(conn, dataset_id, subject)


def applies(schema, purpose: str) -> bool:
    """Does this dataset's consent gate this purpose? (No listed purposes: every purpose.)"""
    return schema.consent is not ConsentMode.NONE and (not schema.consent_purposes or purpose in schema.consent_purposes)


def filter_subjects(deps: Deps, conn, dataset_id: str, schema, purpose: str) -> list[str]:
    """Opt-in: the subjects who granted the purpose. Opt-out: those who withdrew it."""
    status = "granted" if schema.consent is ConsentMode.OPT_IN else "withdrawn"
    return deps.store.consent_subjects(conn, dataset_id, purpose, status)
