"""Rights pre-vetting: what an owner attests it may share a dataset for, and the gaps of a request.

An owner declares, per dataset and optionally per column, the legal basis it holds the data
under (GDPR Art. 6) and the purposes it may be shared for, with who attested it and when. Terms
that ask for a purpose or a field outside those rights are refused before anyone signs, and
each gap is named. A purpose right covers its narrower Fideslang children: a right for
`analytics` covers `analytics.reporting`. Pure: time and the attesting party are passed in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

from .agreements import AgreementTerms, DatasetGrant
from .errors import BadInput


class LegalBasis(str, Enum):
    """The six lawful bases of GDPR Art. 6(1)."""

    CONSENT = "consent"
    CONTRACT = "contract"
    LEGAL_OBLIGATION = "legal_obligation"
    VITAL_INTERESTS = "vital_interests"
    PUBLIC_TASK = "public_task"
    LEGITIMATE_INTERESTS = "legitimate_interests"


@dataclass(frozen=True)
class ColumnRights:
    """A column's own, narrower rights: its basis (when it differs) and the purposes it may serve."""

    purposes: tuple[str, ...]
    legal_basis: LegalBasis | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"purposes": list(self.purposes)}
        if self.legal_basis:
            out["legal_basis"] = self.legal_basis.value
        return out


@dataclass(frozen=True)
class DatasetRights:
    """One version of a dataset's declared rights. Versions are never edited."""

    dataset: str  # owner.name
    version: int
    legal_basis: LegalBasis
    purposes: tuple[str, ...]
    attested_by: str
    attested_at: dt.datetime
    columns: Mapping[str, ColumnRights] = field(default_factory=dict)

    def purposes_for(self, column: str) -> tuple[str, ...]:
        """The purposes a column may be shared for: its own list, else the dataset's."""
        own = self.columns.get(column)
        return own.purposes if own is not None else self.purposes

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dataset": self.dataset, "version": self.version, "legal_basis": self.legal_basis.value,
                               "purposes": list(self.purposes), "attested_by": self.attested_by,
                               "attested_at": self.attested_at.isoformat()}
        if self.columns:
            out["columns"] = {c: r.to_dict() for c, r in self.columns.items()}
        return out


def covers(granted: Iterable[str], purpose: str) -> bool:
    """A granted purpose covers itself and every narrower purpose below it in the taxonomy."""
    return any(purpose == g or purpose.startswith(g + ".") for g in granted)


def _basis(where: str, value: Any) -> LegalBasis:
    try:
        return LegalBasis(value)
    except ValueError:
        allowed = ", ".join(b.value for b in LegalBasis)
        raise BadInput(f"{where}: legal_basis {value!r} is not a GDPR Art. 6 basis (use {allowed})") from None


def _purposes(where: str, value: Any, allow_empty: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value) or (not value and not allow_empty):
        raise BadInput(f"{where}: purposes must be a {'' if allow_empty else 'non-empty '}list of purpose names")
    return tuple(value)


def parse_rights(doc: Any, dataset: str, version: int, attested_by: str, attested_at: dt.datetime,
                 columns: Iterable[str]) -> DatasetRights:
    """Validate a rights declaration against the dataset's columns. A column's purposes must lie
    within the dataset's: a column can be narrower than its table, never wider."""
    if not isinstance(doc, dict):
        raise BadInput("rights must be a mapping {legal_basis, purposes, columns} (see docs/data-products.md)")
    unknown = set(doc) - {"legal_basis", "purposes", "columns"}
    if unknown:
        raise BadInput(f"rights: unknown key(s) {sorted(unknown)}")
    if "legal_basis" not in doc or "purposes" not in doc:
        raise BadInput("rights: legal_basis and purposes are required")
    basis = _basis("rights", doc["legal_basis"])
    purposes = _purposes("rights", doc["purposes"], allow_empty=False)
    known = set(columns)
    per_column: dict[str, ColumnRights] = {}
    raw_columns = doc.get("columns") or {}
    if not isinstance(raw_columns, dict):
        raise BadInput("rights: columns must map a column name to {purposes, legal_basis}")
    for column, spec in raw_columns.items():
        where = f"rights: column {column!r}"
        if column not in known:
            raise BadInput(f"{where}: {dataset} has no such column (columns: {', '.join(sorted(known))})")
        if not isinstance(spec, dict) or "purposes" not in spec or set(spec) - {"purposes", "legal_basis"}:
            raise BadInput(f"{where}: expected {{purposes: [...], legal_basis: ...}} ([] means never shared)")
        own = _purposes(where, spec["purposes"], allow_empty=True)
        wider = [p for p in own if not covers(purposes, p)]
        if wider:
            raise BadInput(f"{where}: purpose(s) {wider} are outside the dataset's own purposes {list(purposes)}")
        per_column[str(column)] = ColumnRights(own, _basis(where, spec["legal_basis"]) if "legal_basis" in spec else None)
    return DatasetRights(dataset, version, basis, purposes, attested_by, attested_at, per_column)


def grant_gaps(rights: DatasetRights, grant: DatasetGrant, purposes: Iterable[str]) -> list[str]:
    """Each purpose, and each shared (not dropped) field, that the rights do not cover."""
    gaps: list[str] = []
    where = f"{grant.dataset} (rights v{rights.version})"
    for purpose in purposes:
        if not covers(rights.purposes, purpose):
            gaps.append(f"{where}: purpose {purpose} is outside the declared rights ({', '.join(rights.purposes)})")
            continue
        for column in grant.visible():
            allowed = rights.purposes_for(column)
            if not covers(allowed, purpose):
                held = ", ".join(allowed) if allowed else "none"
                gaps.append(f"{where}: field {column} may not be shared for {purpose} (its purposes: {held}); drop it")
    return gaps


def terms_gaps(terms: AgreementTerms, rights: Mapping[str, DatasetRights]) -> list[str]:
    """The gaps of every dataset of the terms that has declared rights (the others have none to check)."""
    return [gap for grant in terms.datasets if grant.dataset in rights
            for gap in grant_gaps(rights[grant.dataset], grant, terms.purposes)]
