"""Dataset schemas: each column's type, role and data category.

The role is what the governor reasons about: `subject_id` is the privacy unit and the join
key, `identifier` points at one person by itself, `quasi_identifier` does in combination,
`sensitive` is what a person would not want linked to them, `attribute` is everything else.

A column may also be *sealed* at the contributor's site before upload (docs/sealing.md): a
`fingerprint` column holds a keyed HMAC of the value (joins and distinct counts only), a
`sealed` column holds AES-GCM ciphertext only the collaboration's parties can open. The store
never sees the plaintext or the key; it only checks that the values have the right form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .errors import BadInput


class Role(str, Enum):
    SUBJECT_ID = "subject_id"
    IDENTIFIER = "identifier"
    QUASI_IDENTIFIER = "quasi_identifier"
    SENSITIVE = "sensitive"
    ATTRIBUTE = "attribute"

    @property
    def identifying(self) -> bool:
        """Values that single out a person on their own: never output from others' data."""
        return self in (Role.SUBJECT_ID, Role.IDENTIFIER)


class ColumnType(str, Enum):
    STRING = "string"
    INTEGER = "integer"
    DOUBLE = "double"
    BOOLEAN = "boolean"
    DATE = "date"
    TIMESTAMP = "timestamp"

    @property
    def sql(self) -> str:
        return _SQL_TYPES[self]


_SQL_TYPES = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.INTEGER: "BIGINT",
    ColumnType.DOUBLE: "DOUBLE",
    ColumnType.BOOLEAN: "BOOLEAN",
    ColumnType.DATE: "DATE",
    ColumnType.TIMESTAMP: "TIMESTAMP",
}
_TYPE_ALIASES = {
    "str": "string", "text": "string", "varchar": "string",
    "int": "integer", "bigint": "integer", "long": "integer",
    "float": "double", "number": "double", "real": "double",
    "bool": "boolean", "datetime": "timestamp",
}

class Seal(str, Enum):
    """How a column was sealed before upload (docs/sealing.md)."""

    CLEARTEXT = "cleartext"
    FINGERPRINT = "fingerprint"  # HMAC-SHA256 truncated to 128 bits, base64url: equality only
    SEALED = "sealed"  # AES-256-GCM ciphertext, base64url: opened by the recipient only


# The wire form of sealed values, shared by the sealing tool (commonground.sealing) and the
# ingest's well-formedness check. A fingerprint is 16 bytes (128 bits) in unpadded base64url:
# 22 characters whose last one carries 2 data bits and 4 zero bits, so it is one of A, Q, g, w.
FINGERPRINT_BYTES = 16
FINGERPRINT_CHARS = 22
FINGERPRINT_PATTERN = r"^[A-Za-z0-9_-]{21}[AQgw]$"
# A sealed value is unpadded base64url of version (1 byte) || nonce (12) || ciphertext || tag (16).
# Version 1: the plaintext as is; version 2: padded (ISO/IEC 7816-4) to a multiple of `pad`.
SEAL_VERSION_PLAIN = 1
SEAL_VERSION_PADDED = 2
SEAL_NONCE_BYTES = 12
SEAL_TAG_BYTES = 16
SEALED_MIN_BYTES = 1 + SEAL_NONCE_BYTES + SEAL_TAG_BYTES
# Where the sealing tool reads the collaboration secret when no --secret-file is given.
SEAL_SECRET_ENV = "COMMONGROUND_SEAL_SECRET"
# The first byte (0x01 or 0x02) puts 'A' first and one of Q..v second; an unpadded base64url
# string is never 1 character longer than a multiple of 4.
SEALED_PATTERN = r"^A[Q-Za-v][A-Za-z0-9_-]{37,}$"
# A stored version's one hidden column (no declared column can take the name: headers lose
# leading underscores): a 63-bit hash of each row's subject id, written at ingest. Queries group,
# count and sketch people on this integer instead of reading and hashing the id's text every time
# (docs/privacy.md §2); a collision can only merge two people, which errs towards refusing.
UNIT_HASH_COLUMN = "__cg_unit"
# A version's second hidden column where people have several rows: each person's number, 0 to
# subjects - 1 in unit order (a collision of the unit shares a number, as it shares the unit).
# Only dp's contribution bounding reads it: grouping by a small dense integer lets DuckDB use its
# perfect hash aggregation instead of hashing millions of 63-bit units (docs/benchmarks.md §6).
# Within one version it identifies people exactly as the unit does; it is not stable across
# versions, so sketches and everything compared between versions keep the unit.
PERSON_NUMBER_COLUMN = "__cg_person"
NORMALIZATIONS = ("trim", "lower", "nfc", "digits")
_DOMAIN = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


ConsentMode = Enum("ConsentMode", {"NONE": "none", "OPT_IN": "opt_in", "OPT_OUT": "opt_out"}, type=str)

_CATEGORY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def normalize_column_name(raw: str) -> str:
    """File headers become SQL-safe names: `marital-status` -> `marital_status`, `Age` -> `age`."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", raw.strip()).strip("_").lower()
    if not name:
        raise BadInput(f"column header {raw!r} has no usable characters")
    if name[0].isdigit():
        name = "c_" + name
    return name


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: ColumnType
    role: Role = Role.ATTRIBUTE
    category: str = "system.operations"
    description: str = ""
    seal: Seal = Seal.CLEARTEXT
    # fingerprint/sealed: the key's domain (default: the column name). Two parties' columns
    # join only if they share the collaboration, the domain and the normalisation.
    seal_domain: str | None = None
    normalize: tuple[str, ...] = ("trim",)  # fingerprint: applied before the HMAC, in order
    pad: int | None = None  # sealed: pad plaintexts to a multiple of this many bytes
    curate: str | None = None  # a standard-codes step applied at ingest (CURATE_STEPS)
    on_unmapped: str = "keep"  # keep | null | reject: what happens to values the step cannot map

    @property
    def sealed(self) -> bool:
        return self.seal is not Seal.CLEARTEXT

    @property
    def domain(self) -> str:
        return self.seal_domain or self.name

    def seal_dict(self) -> dict[str, Any]:
        """The seal metadata the store keeps and shows (empty for a cleartext column)."""
        if not self.sealed:
            return {}
        out: dict[str, Any] = {"seal": self.seal.value, "domain": self.domain}
        if self.seal is Seal.FINGERPRINT:
            out["normalize"] = list(self.normalize)
        if self.pad:
            out["pad"] = self.pad
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "role": self.role.value, "category": self.category, **self.seal_dict(),
                **self.curate_dict()}

    def curate_dict(self) -> dict[str, Any]:
        return {"curate": self.curate, "on_unmapped": self.on_unmapped} if self.curate else {}


@dataclass(frozen=True)
class DatasetSchema:
    """A parsed, validated schema. `row_id` names a subject column generated by numbering rows."""

    columns: tuple[ColumnSpec, ...]
    consent: ConsentMode = ConsentMode.NONE
    consent_purposes: tuple[str, ...] = ()
    null_values: tuple[str, ...] = ("",)
    row_id: str | None = None
    inferred: bool = False
    collaboration: str | None = None  # set when any column is sealed: the sealing key's scope
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def sealed_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.sealed]

    @property
    def subject_column(self) -> str | None:
        for c in self.columns:
            if c.role is Role.SUBJECT_ID:
                return c.name
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"columns": {c.name: c.to_dict() for c in self.columns if c.name != self.row_id}}
        if self.consent is not ConsentMode.NONE:
            out["consent"] = self.consent.value
            out["consent_purposes"] = list(self.consent_purposes)
        if self.row_id:
            out["row_id"] = self.row_id
        if self.null_values != ("",):
            out["null_values"] = list(self.null_values)
        if self.collaboration:
            out["collaboration"] = self.collaboration
        return out


def parse_schema(doc: Any) -> DatasetSchema:
    """Validate a schema document (from YAML or JSON); every error names the offending key."""
    if not isinstance(doc, dict):
        raise BadInput("schema must be a mapping with a 'columns' key")
    unknown = set(doc) - {"columns", "consent", "consent_purposes", "null_values", "row_id", "collaboration"}
    if unknown:
        raise BadInput(f"schema: unknown key(s) {sorted(unknown)}")
    cols = doc.get("columns")
    if not isinstance(cols, dict) or not cols:
        raise BadInput("schema: 'columns' must map each column name to {type, role, category}")
    specs: list[ColumnSpec] = []
    row_id = doc.get("row_id")
    if row_id is not None:
        row_id = normalize_column_name(str(row_id))
        specs.append(ColumnSpec(row_id, ColumnType.INTEGER, Role.SUBJECT_ID, "user.unique_id"))
    for raw_name, spec in cols.items():
        specs.append(_parse_column(str(raw_name), spec))
    names = [c.name for c in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"schema: duplicate column(s) {dupes}")
    subjects = [c.name for c in specs if c.role is Role.SUBJECT_ID]
    if len(subjects) > 1:
        raise BadInput(f"schema: only one column may have role subject_id, found {subjects}")
    consent_raw = doc.get("consent", "none")
    try:
        consent = ConsentMode(consent_raw)
    except ValueError:
        raise BadInput(f"schema: consent must be opt_in or opt_out, not {consent_raw!r}") from None
    if consent is not ConsentMode.NONE and not subjects:
        raise BadInput("schema: consent needs a subject_id column to know whose rows are whose")
    purposes = doc.get("consent_purposes", [])
    if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
        raise BadInput("schema: consent_purposes must be a list of purpose names")
    nulls = doc.get("null_values", [""])
    if isinstance(nulls, str):
        nulls = [nulls]
    if not isinstance(nulls, list) or not all(isinstance(n, str) for n in nulls):
        raise BadInput("schema: null_values must be a list of strings")
    collaboration = _parse_collaboration(doc.get("collaboration"), specs)
    return DatasetSchema(tuple(specs), consent, tuple(purposes), tuple(nulls), row_id, collaboration=collaboration)


def _parse_collaboration(raw: Any, specs: list[ColumnSpec]) -> str | None:
    sealed = [c.name for c in specs if c.sealed]
    if raw is None:
        if sealed:
            raise BadInput(f"schema: column(s) {sealed} are sealed, so the schema needs a top-level "
                           "'collaboration: NAME' (the id the parties seal under)")
        return None
    if not isinstance(raw, str) or not _DOMAIN.match(raw):
        raise BadInput(f"schema: collaboration must be a lowercase name (letters, digits, _ . -), not {raw!r}")
    return raw


def _parse_column(raw_name: str, spec: Any) -> ColumnSpec:
    name = normalize_column_name(raw_name)
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, dict):
        raise BadInput(f"schema: column {raw_name!r} must be a mapping like {{type: string, role: attribute}}")
    unknown = set(spec) - {"type", "role", "category", "description", "seal", "domain", "normalize", "pad",
                         "curate", "on_unmapped"}
    if unknown:
        raise BadInput(f"schema: column {raw_name!r} has unknown key(s) {sorted(unknown)}")
    type_raw = str(spec.get("type", "string")).lower()
    try:
        ctype = ColumnType(_TYPE_ALIASES.get(type_raw, type_raw))
    except ValueError:
        allowed = ", ".join(t.value for t in ColumnType)
        raise BadInput(f"schema: column {raw_name!r} has unknown type {type_raw!r} (use one of: {allowed})") from None
    role_raw = str(spec.get("role", "attribute"))
    try:
        role = Role(role_raw)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise BadInput(f"schema: column {raw_name!r} has unknown role {role_raw!r} (use one of: {allowed})") from None
    category = str(spec.get("category", "system.operations"))
    if not _CATEGORY.match(category):
        raise BadInput(f"schema: column {raw_name!r} has malformed data category {category!r} (e.g. user.contact.email)")
    seal, domain, normalize, pad = _parse_seal(raw_name, name, ctype, spec)
    return ColumnSpec(name, ctype, role, category, str(spec.get("description", "")), seal, domain, normalize, pad,
                      **_parse_curation(raw_name, ctype, spec))


CURATE_STEPS = ("country_iso2", "country_iso3", "currency_iso4217", "date_iso8601", "date_iso8601_dmy", "date_iso8601_mdy")


def _parse_curation(raw_name: str, ctype: ColumnType, spec: dict) -> dict[str, Any]:
    """`curate: STEP` and `on_unmapped: keep | null | reject` (docs/formats.md#curation)."""
    curate, on_unmapped = spec.get("curate"), str(spec.get("on_unmapped", "keep"))
    if curate is None:
        if "on_unmapped" in spec:
            raise BadInput(f"schema: column {raw_name!r}: on_unmapped needs a curate step")
        return {}
    if curate not in CURATE_STEPS:
        raise BadInput(f"schema: column {raw_name!r} has unknown curate step {curate!r} (use one of: {', '.join(CURATE_STEPS)})")
    if on_unmapped not in ("keep", "null", "reject"):
        raise BadInput(f"schema: column {raw_name!r}: on_unmapped must be keep, null or reject, not {on_unmapped!r}")
    dates = str(curate).startswith("date_")
    allowed = (ColumnType.STRING, ColumnType.DATE, ColumnType.TIMESTAMP) if dates else (ColumnType.STRING,)
    if ctype not in allowed:
        raise BadInput(f"schema: column {raw_name!r}: curate {curate} writes text codes, so declare type string")
    if ctype is not ColumnType.STRING and on_unmapped == "keep":
        raise BadInput(f"schema: column {raw_name!r} is a {ctype.value}, so values {curate} cannot map cannot be kept "
                       "as written: set on_unmapped: null or reject, or declare type string")
    return {"curate": str(curate), "on_unmapped": on_unmapped}


def _parse_seal(raw_name: str, name: str, ctype: ColumnType, spec: dict) -> tuple[Seal, str | None, tuple[str, ...], int | None]:
    seal_raw = str(spec.get("seal", "cleartext"))
    try:
        seal = Seal(seal_raw)
    except ValueError:
        raise BadInput(f"schema: column {raw_name!r} has unknown seal {seal_raw!r} (use fingerprint, sealed or cleartext)") from None
    where = f"schema: column {raw_name!r}"
    if seal is Seal.CLEARTEXT:
        extra = sorted(k for k in ("domain", "normalize", "pad") if k in spec)
        if extra:
            raise BadInput(f"{where} is cleartext, so it takes no {extra} (those describe sealing)")
        return seal, None, ("trim",), None
    if ctype is not ColumnType.STRING:
        raise BadInput(f"{where} is {seal.value}: its values are text (base64url), so declare type string")
    domain = spec.get("domain")
    if domain is not None and (not isinstance(domain, str) or not _DOMAIN.match(domain)):
        raise BadInput(f"{where}: domain must be a lowercase name (letters, digits, _ . -), not {domain!r}")
    if domain == name:
        domain = None  # the default; stored the same way either way
    normalize: tuple[str, ...] = ("trim",)
    if "normalize" in spec:
        if seal is not Seal.FINGERPRINT:
            raise BadInput(f"{where}: normalize applies to fingerprint columns only")
        raw = spec["normalize"]
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or not all(isinstance(n, str) and n in NORMALIZATIONS for n in raw):
            raise BadInput(f"{where}: normalize must be a list of {', '.join(NORMALIZATIONS)}, not {spec['normalize']!r}")
        normalize = tuple(raw)
    pad = spec.get("pad")
    if pad is not None:
        if seal is not Seal.SEALED:
            raise BadInput(f"{where}: pad applies to sealed columns only")
        if not isinstance(pad, int) or isinstance(pad, bool) or not 1 <= pad <= 65536:
            raise BadInput(f"{where}: pad must be a number of bytes between 1 and 65536, not {pad!r}")
    return seal, domain, normalize, pad


def inferred_schema(columns: list[tuple[str, ColumnType]]) -> DatasetSchema:
    """A schema guessed from the file: every column an `attribute`, which the caller is warned of."""
    specs = tuple(ColumnSpec(normalize_column_name(n), t) for n, t in columns)
    return DatasetSchema(
        specs,
        inferred=True,
        warnings=("no schema given: types were inferred and every column has role 'attribute'; "
                  "nothing is treated as identifying until you declare roles",),
    )
