"""The agreement builder's form <-> agreement document, with no I/O.

One row per column of the provider's dataset: a checkbox (share it or not), a transform
select, one number for the transform's parameter, and a join-key checkbox. Unticked columns
are written as `drop`, so the reviewer sees every column's fate. Everything the form cannot
check (names, purposes, parties, roles vs transforms) is left to `services.agreements.propose`,
whose BadInput is shown above the form with the values kept.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping

from ..domain.errors import BadInput

# value -> (label, what the parameter means or None)
TRANSFORMS: dict[str, tuple[str, str | None]] = {
    "raw": ("raw", None),
    "hash": ("keyed hash (pseudonym)", None),
    "mask": ("mask (parameter: characters left visible)", "keep_last"),
    "generalize": ("generalize (parameter: leading characters kept)", "keep"),
    "month": ("generalize to month", None),
    "year": ("generalize to year", None),
    "bucket": ("bucket (parameter: width)", "width"),
}


@dataclass
class FieldRow:
    name: str
    type: str
    role: str
    category: str
    include: bool
    transform: str
    param: str
    join: bool


def default_row(column: Mapping[str, str]) -> FieldRow:
    """A cautious starting point from the column's role and type; the owner adjusts it."""
    name, ctype, role = column["name"], column["type"], column["role"]
    include, transform, param, join = True, "raw", "", False
    if role == "subject_id":
        transform, join = "hash", True
    elif role == "identifier":
        include, transform = False, "hash"
    elif ctype in ("date", "timestamp"):
        transform = "month"
    elif role == "quasi_identifier" and ctype in ("integer", "double"):
        transform, param = "bucket", "10"
    elif role == "quasi_identifier":
        transform, param = "generalize", "3"
    return FieldRow(name, ctype, role, column["category"], include, transform, param, join)


def posted_row(column: Mapping[str, str], form: Mapping[str, Any]) -> FieldRow:
    """The row as the person left it in a posted form."""
    name = column["name"]
    return FieldRow(name, column["type"], column["role"], column["category"],
                    bool(form.get(f"include.{name}")), str(form.get(f"transform.{name}") or "raw"),
                    str(form.get(f"param.{name}") or "").strip(), bool(form.get(f"join.{name}")))


def _number(row: FieldRow, kind: type, what: str) -> Any:
    try:
        value = kind(row.param)
    except ValueError:
        raise BadInput(f"field {row.name}: {row.transform} needs a number ({what}), not {row.param!r}") from None
    return value


def transform_spec(row: FieldRow) -> dict[str, Any]:
    if not row.include:
        return {"transform": "drop"}
    if row.transform not in TRANSFORMS:
        raise BadInput(f"field {row.name}: unknown transform {row.transform!r}")
    if row.transform in ("month", "year"):
        return {"transform": "generalize", "to": row.transform}
    if row.transform == "generalize":
        return {"transform": "generalize", "keep": _number(row, int, "leading characters kept")}
    if row.transform == "bucket":
        width = _number(row, float, "bucket width")
        return {"transform": "bucket", "width": int(width) if width.is_integer() else width}
    if row.transform == "mask":
        return {"transform": "mask", "keep_last": _number(row, int, "characters left visible") if row.param else 0}
    return {"transform": row.transform}


@dataclass
class AgreementForm:
    """The builder's top-level values, kept as typed so a refused form is shown as it was."""

    dataset: str
    name: str = ""
    recipients: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    valid_until: str = ""
    mode: str = "aggregate"
    k: str = "10"
    l_diversity: str = ""  # rows mode: distinct sensitive values every exported class holds; empty for none

    @classmethod
    def blank(cls, dataset: str, today: dt.date) -> "AgreementForm":
        return cls(dataset, valid_until=(today + dt.timedelta(days=365)).isoformat())

    @classmethod
    def posted(cls, form: Any) -> "AgreementForm":
        return cls(str(form.get("dataset") or ""), str(form.get("name") or "").strip(),
                   tuple(form.getlist("recipients")), tuple(form.getlist("purposes")),
                   str(form.get("valid_until") or "").strip(), str(form.get("mode") or "aggregate"),
                   str(form.get("k") or "").strip(), str(form.get("l_diversity") or "").strip())


def build_document(provider: str, top: AgreementForm, rows: list[FieldRow]) -> dict[str, Any]:
    """The agreement document the builder describes (validated later by the service)."""
    if not top.name:
        raise BadInput("give the agreement a name")
    if not top.recipients:
        raise BadInput("choose at least one recipient")
    if not top.purposes:
        raise BadInput("choose at least one purpose")
    try:
        k = int(top.k)
    except ValueError:
        raise BadInput(f"minimum group size k must be a whole number, not {top.k!r}") from None
    access: dict[str, Any] = {"mode": top.mode, "min_group_size": k}
    join_keys = [row.name for row in rows if row.join and row.include]
    if top.mode == "join":
        access["join_keys"] = join_keys
    if top.l_diversity:
        if top.mode != "rows":
            raise BadInput("l-diversity applies to row exports (access mode rows); leave it empty for this mode")
        try:
            access["l_diversity"] = int(top.l_diversity)
        except ValueError:
            raise BadInput(f"l-diversity must be a whole number, not {top.l_diversity!r}") from None
    return {"name": top.name, "provider": provider, "recipients": list(top.recipients),
            "purposes": list(top.purposes), "valid_until": top.valid_until,
            "datasets": {top.dataset: {"fields": {row.name: transform_spec(row) for row in rows}}},
            "access": access}
