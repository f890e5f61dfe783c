"""Curated row-level exports (`rows` access mode): what a recipient's copy of a dataset may hold.

Pure: from the catalog and the agreements in force, the export plan says which view to read
(the agreement's transforms and the consent gate, as for queries), which columns leave, and,
per quasi-identifier, the ladder of generalisation levels as SQL expressions. The engine walks
the ladders until every equivalence class over the quasi-identifiers holds at least k
distinct subjects (or suppresses the rows of the classes still smaller, up to a declared
rate), and writes the file.

Each recipient's copy is keyed to that recipient: pseudonyms use a key derived from the
agreement's key and the recipient's name, so two recipients' files never share pseudonyms and
a leaked file names its recipient (re-sorting, re-encoding or dropping the file's metadata
does not change that; dropping the pseudonym column does, and then only the metadata is left).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from dataclasses import dataclass
from typing import Iterable, Mapping

from sqlglot import exp

from ..domain.agreements import (AccessMode, AgreementState, AgreementTerms, Transform, TransformKind,
                                 quasi_identifier_columns, sensitive_columns)
from ..domain.errors import NotFound, Refused
from ..domain.pii import profile_hint
from ..domain.schema import ColumnType, DatasetSchema, Role
from . import transforms
from .analysis import DIALECT, PRIVACY_UNIT, Ref
from .context import QueryContext, RelationView
from .rewrite import dataset_view

# Ladders used when an agreement declares none for a quasi-identifier: coarser and coarser,
# then the value suppressed ('*', written as NULL).
_DEFAULT_LADDERS: dict[ColumnType, tuple[Transform | None, ...]] = {
    ColumnType.INTEGER: tuple(Transform(TransformKind.BUCKET, width=w) for w in (5.0, 10.0, 20.0, 50.0)) + (None,),
    ColumnType.DOUBLE: tuple(Transform(TransformKind.BUCKET, width=w) for w in (5.0, 10.0, 20.0, 50.0)) + (None,),
    ColumnType.DATE: (Transform(TransformKind.GENERALIZE, to="month"), Transform(TransformKind.GENERALIZE, to="year"), None),
    ColumnType.TIMESTAMP: (Transform(TransformKind.GENERALIZE, to="month"), Transform(TransformKind.GENERALIZE, to="year"), None),
}


@dataclass(frozen=True)
class QuasiIdentifier:
    name: str
    levels: tuple[str, ...]  # SQL over the view's column, level 0 = as shared; "NULL" = suppressed
    labels: tuple[str, ...]  # each level in words, for the export report


@dataclass(frozen=True)
class ExportPlan:
    dataset: str
    agreement: str
    view: RelationView
    pseudonym_keys: dict[str, bytes] = dataclasses.field(repr=False)
    columns: tuple[str, ...]  # what leaves, in schema order (the privacy unit never does)
    quasi_identifiers: tuple[QuasiIdentifier, ...]
    k: int
    max_suppression: float
    rows_are_people: bool = False  # at most one row per subject: classes can count rows
    l_diversity: int | None = None  # each kept class also holds >= l distinct values of each sensitive column
    sensitive: tuple[str, ...] = ()
    floor: Mapping[str, int] = dataclasses.field(default_factory=dict)  # quasi-identifier -> level to start from


def no_finer_than(plan: ExportPlan, earlier: Iterable[Mapping[str, str]]) -> ExportPlan:
    """The plan, its walk starting at each quasi-identifier's coarsest level in `earlier` (the
    levels, in words, of the recipient's earlier exports of the dataset under the same agreement).

    Why: those copies share pseudonyms (one key per agreement and recipient), so the recipient can
    join them row by row. Were age exact in one and zip exact in another, the join would hold both
    exactly, finer than either copy was checked for. Never going finer than before on any
    quasi-identifier keeps the join no finer than the copy that was finest, which was k-anonymous.
    """
    floor: dict[str, int] = {}
    for levels in earlier:
        for q in plan.quasi_identifiers:
            label = levels.get(q.name)
            if label in q.labels:
                at = len(q.labels) - 1 - q.labels[::-1].index(label)  # the coarsest level so named
                floor[q.name] = max(floor.get(q.name, 0), at)
    return dataclasses.replace(plan, floor=floor)


def recipient_key(agreement: AgreementState, recipient: str) -> bytes:
    """The pseudonym key of one recipient's copies under an agreement."""
    return hmac.new(agreement.hash_key, b"commonground-export-recipient:" + recipient.encode(), hashlib.sha256).digest()


def govern_export(ctx: QueryContext, dataset: str) -> ExportPlan:
    table = ctx.tables.get(dataset)
    if table is None or table.owner == ctx.party:
        raise NotFound(f"no dataset {dataset} is shared with you")
    agreement = _rows_agreement(ctx, dataset)
    schema = table.schema
    if schema.subject_column is None:
        raise Refused([f"export: {dataset} has no subject column, so k-anonymity cannot be counted in people"])
    keyed = dataclasses.replace(agreement, hash_key=recipient_key(agreement, ctx.party))
    ref = Ref(0, table, keyed)
    keys: dict[str, bytes] = {}
    view = dataset_view(ref, {}, keys, None)
    visible = ref.visible()
    terms = agreement.terms
    names = quasi_identifier_columns(terms, schema, visible)
    quasi = []
    for name in names:
        ladder = terms.hierarchies.get(name) or _DEFAULT_LADDERS.get(schema.column(name).type, (None,))
        column = exp.column(name, quoted=True)
        levels = [column.sql(DIALECT)] + [
            "NULL" if t is None else transforms.apply(t, column.copy(), agreement.id).sql(DIALECT) for t in ladder]
        labels = ["as shared"] + ["suppressed" if t is None else _describe(t) for t in ladder]
        quasi.append(QuasiIdentifier(name, tuple(levels), tuple(labels)))
    sensitive = sensitive_columns(terms, schema, visible) if terms.l_diversity else ()
    if terms.l_diversity and not sensitive:  # the schema changed since the proposal: never export without it
        raise Refused([f"export: the agreement asks l-diversity but {dataset} no longer shares a sensitive column"])
    return ExportPlan(dataset, agreement.id, view, keys, tuple(c for c in schema.names if c in visible),
                      tuple(quasi), terms.min_group_size, terms.max_suppression, table.max_rows_per_subject == 1,
                      terms.l_diversity, sensitive)


def ungeneralised_quasi_identifiers(terms: AgreementTerms, schemas: Mapping[str, DatasetSchema]) -> dict[str, list[str]]:
    """Per dataset of a rows agreement, the shared columns an export would release as they are
    although their names read like quasi-identifiers (`domain.pii.profile_hint`: age, zip code,
    gender...) because neither the agreement nor the schema lists them. Classes are counted over
    the listed ones only, so with none listed an export is one class of everyone and generalises
    nothing. Told to the proposer, not refused: the name is a hint, the provider decides."""
    if terms.mode is not AccessMode.ROWS:
        return {}
    out = {}
    for grant in terms.datasets:
        schema = schemas.get(grant.dataset)
        if schema is None:
            continue
        visible = grant.visible()
        listed = set(quasi_identifier_columns(terms, schema, visible))
        named = [c for c in visible if c not in listed and c in schema.names
                 and schema.column(c).role not in (Role.SUBJECT_ID, Role.IDENTIFIER)
                 and (profile_hint(c) or (None,))[0] is Role.QUASI_IDENTIFIER]
        if named:
            out[grant.dataset] = named
    return out


def _rows_agreement(ctx: QueryContext, dataset: str) -> AgreementState:
    granting = [a for a in sorted(ctx.agreements, key=lambda s: s.id, reverse=True)
                if ctx.party in a.terms.recipients and a.terms.grant_for(dataset)]
    for_purpose = [a for a in granting if ctx.purpose in a.terms.purposes]
    rows = [a for a in for_purpose if a.terms.mode is AccessMode.ROWS]
    if rows:
        return rows[0]
    if for_purpose:
        raise Refused([f"export: your agreement for {dataset} grants {for_purpose[0].terms.mode.value} access, not "
                       "row exports; ask the provider for an agreement with access mode rows"])
    raise Refused([f"agreement: no agreement in force grants you {dataset} for purpose {ctx.purpose}"])


def _describe(t: Transform) -> str:
    if t.kind is TransformKind.BUCKET:
        return f"buckets of {t.width:g}"
    if t.kind is TransformKind.GENERALIZE:
        return f"to {t.to}" if t.to else f"first {t.keep} characters"
    if t.kind is TransformKind.MASK:
        return "masked"
    return t.kind.value


def unit_column() -> str:
    return exp.column(PRIVACY_UNIT, quoted=True).sql(DIALECT)

