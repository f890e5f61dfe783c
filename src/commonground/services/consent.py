"""Consent: a subject's grant or withdrawal of a purpose for one controller's dataset.

Records are an append-only history; the current state per (dataset, purpose, subject) moves
in the same transaction, and every query reads it at the moment it runs, so a withdrawal
takes effect on the very next query. The ledger records that consent changed and how many
records, never whose: subject ids are data.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import re
import shutil
import time
from pathlib import Path
from typing import Any

from ..domain.errors import BadInput, NotFound
from ..domain.schema import ConsentMode
from ..domain.vocabulary import Kind
from ..ports import ConsentGate, ConsentSnapshot
from .deps import Deps
from .parties import ledger_name_of, require_party
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
    deps.store.append_entry(conn, {"event": "consent.recorded", "party": ledger_name_of(deps, conn, by), "dataset": dataset,
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


# -- the consent gate of a query ----------------------------------------------------------
#
# A gated view reads a derived *base* (the version's rows whose subjects may be used for the
# purpose as of consent record seq S, kept under <home>/derived/consent/<dataset>/<version>/)
# plus the *changes*: the records after S, read here in the query's own read transaction, so a
# withdrawal applies to the very next query without rebuilding anything. The base is rebuilt
# (by the engine, from a snapshot read here) when there is none for the version, when the
# changes pass MAX_CHANGES records, or when the oldest change is older than MAX_CHANGES_AGE
# (each query with changes pays a scan of the subject column; one without pays nothing).

MAX_CHANGES = 10_000
MAX_CHANGES_AGE = dt.timedelta(minutes=5)
# Bases no query can still be reading: superseded (a newer base, or a newer version) this long ago.
STALE_AFTER = dt.timedelta(minutes=15)
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}")


def base_directory(deps: Deps, dataset_id: str, version_id: str) -> Path:
    return deps.home / "derived" / "consent" / dataset_id / version_id


def base_path(directory: Path, purpose: str, mode: str, seq: int) -> Path:
    name = purpose if _SAFE_NAME.fullmatch(purpose) else "p-" + hashlib.sha256(purpose.encode()).hexdigest()[:32]
    return directory / f"{name}.{mode}.{int(seq)}.parquet"


def _bases(directory: Path, purpose: str, mode: str) -> dict[int, Path]:
    """The bases present for this purpose and mode, by seq (names only; the engine checks headers)."""
    prefix = base_path(directory, purpose, mode, 0).name[: -len("0.parquet")]
    found = {}
    try:
        for p in directory.iterdir():
            seq = p.name[len(prefix): -len(".parquet")] if p.name.startswith(prefix) and p.name.endswith(".parquet") else ""
            if seq.isdigit():
                found[int(seq)] = p
    except FileNotFoundError:
        pass
    return found


def _sweep(deps: Deps, dataset_id: str, version, directory: Path, found: dict[int, Path]) -> None:
    """Remove bases no query can be reading any more: those of earlier versions (a base is a copy
    of a version's rows, so it goes when the version is superseded) and superseded bases."""
    now = time.time()
    stale = STALE_AFTER.total_seconds()
    if _utc(deps.now()) - _utc(version.created_at) > STALE_AFTER:
        try:
            for other in directory.parent.iterdir():
                if other.name != directory.name:
                    shutil.rmtree(other, ignore_errors=True)
        except FileNotFoundError:
            pass
    if len(found) > 1:
        newest = found[max(found)]
        try:
            superseded_at = newest.stat().st_mtime
        except FileNotFoundError:
            return
        if now - superseded_at > stale:
            for seq, p in found.items():
                if p != newest:
                    p.unlink(missing_ok=True)


def purge_bases(deps: Deps, dataset_id: str) -> None:
    """Remove every derived consent base of a dataset (e.g. after its rows were erased)."""
    shutil.rmtree(deps.home / "derived" / "consent" / dataset_id, ignore_errors=True)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t.astimezone(dt.timezone.utc)


def _changes(records: list[tuple[int, str, str, dt.datetime]]) -> dict[str, bool]:
    """Subject -> may be used now, replaying the records in order (the last one wins). In both modes
    a subject with a record may be used exactly when that record is a grant."""
    out: dict[str, bool] = {}
    for _, subject, status, _ in records:
        out[subject] = status == "granted"
    return out


def gate(deps: Deps, conn, dataset_id: str, version, purpose: str, rebuild: bool = False) -> ConsentGate:
    """The consent gate of one dataset version for one purpose, read in the caller's transaction."""
    mode = version.schema.consent.value
    directory = base_directory(deps, dataset_id, version.id)
    found = _bases(directory, purpose, mode)
    _sweep(deps, dataset_id, version, directory, found)
    reload = functools.partial(_fresh_gate, deps, dataset_id, version, purpose)
    if found and not rebuild:
        seq = max(found)
        records = deps.store.consent_since(conn, dataset_id, purpose, seq, MAX_CHANGES + 1)
        too_old = bool(records) and _utc(deps.now()) - _utc(records[0][3]) > MAX_CHANGES_AGE
        if len(records) <= MAX_CHANGES and not too_old:
            return ConsentGate(mode, purpose, version.sha256, found[seq], seq, _changes(records), reload=reload)
    seq = deps.store.consent_settled_seq(conn)
    snapshot = ConsentSnapshot(seq, filter_subjects(deps, conn, dataset_id, version.schema, purpose))
    records = deps.store.consent_since(conn, dataset_id, purpose, seq, None)
    return ConsentGate(mode, purpose, version.sha256, base_path(directory, purpose, mode, seq), seq,
                       _changes(records), snapshot=snapshot, reload=reload)


def _fresh_gate(deps: Deps, dataset_id: str, version, purpose: str) -> ConsentGate:
    """A gate with a new snapshot, in a read transaction of its own (the engine found the base unusable)."""
    with deps.store.read() as conn:
        return gate(deps, conn, dataset_id, version, purpose, rebuild=True)
