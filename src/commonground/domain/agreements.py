"""Agreements: who may see which fields of which datasets, in which form, for which purposes.

An agreement is a document proposed by a provider and active only once every named party
has accepted it. It is never edited: amending makes a new version. Time is always passed
in, never read here.
"""

from __future__ import annotations

import datetime as dt
import string
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

from .code import CODE_KEYS, CodeTerms, parse_code_terms
from .errors import BadInput
from .names import check_label, check_name
from .privacy import PRIVACY_KEYS, PrivacyTerms, parse_privacy_terms
from .schema import ColumnType, DatasetSchema, Role, Seal


class TransformKind(str, Enum):
    RAW = "raw"
    DROP = "drop"
    MASK = "mask"
    HASH = "hash"
    GENERALIZE = "generalize"
    BUCKET = "bucket"


class AccessMode(str, Enum):
    AGGREGATE = "aggregate"  # clean-room SQL: only aggregates over groups of >= k subjects
    JOIN = "join"  # as aggregate, and the recipient may join its own data on permitted keys
    # A per-subject computation whose result goes to each subject, never to the recipient,
    # who sees only the subject's decision and what the subject chooses to release.
    OFFER = "offer"
    # Curated row-level exports: transforms and consent applied, k-anonymous over the
    # quasi-identifiers (generalised along hierarchies, or rows suppressed), watermarked.
    ROWS = "rows"
    # Code-to-data: a recipient's reviewed analysis runs in a sandbox on the views; its result
    # leaves only after disclosure checks and each provider's release (see domain/code.py).
    CODE = "code"
    # Differential privacy: noisy aggregates from a per-recipient budget (domain/privacy.py).
    DP = "dp"


class AgreementStatus(str, Enum):
    PROPOSED = "proposed"
    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"
    # The provider's declared rights no longer cover it (docs/data-products.md): not in force.
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class Transform:
    kind: TransformKind
    keep: int | None = None  # generalize: leading characters kept
    to: str | None = None  # generalize: date truncated to 'month' or 'year'
    width: float | None = None  # bucket: numeric width
    keep_last: int = 0  # mask: trailing characters left visible

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"transform": self.kind.value}
        for key in ("keep", "to", "width"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.keep_last:
            out["keep_last"] = self.keep_last
        return out


_TRANSFORM_KEYS = {
    TransformKind.RAW: set(),
    TransformKind.DROP: set(),
    TransformKind.HASH: set(),
    TransformKind.MASK: {"keep_last"},
    TransformKind.GENERALIZE: {"keep", "to"},
    TransformKind.BUCKET: {"width"},
}


def parse_transform(where: str, spec: Any) -> Transform:
    if isinstance(spec, str):
        spec = {"transform": spec}
    if not isinstance(spec, dict) or "transform" not in spec:
        raise BadInput(f"{where}: expected {{transform: raw|drop|mask|hash|generalize|bucket, ...}}")
    try:
        kind = TransformKind(spec["transform"])
    except ValueError:
        allowed = "|".join(t.value for t in TransformKind)
        raise BadInput(f"{where}: unknown transform {spec['transform']!r} (use {allowed})") from None
    extra = set(spec) - {"transform"} - _TRANSFORM_KEYS[kind]
    if extra:
        raise BadInput(f"{where}: transform {kind.value} takes no {sorted(extra)}")
    keep, to, width, keep_last = spec.get("keep"), spec.get("to"), spec.get("width"), spec.get("keep_last", 0)
    if kind is TransformKind.GENERALIZE:
        if (keep is None) == (to is None):
            raise BadInput(f"{where}: generalize needs exactly one of keep: N (leading characters) or to: month|year")
        if keep is not None and (not isinstance(keep, int) or isinstance(keep, bool) or keep < 1):
            raise BadInput(f"{where}: generalize keep must be a positive integer, not {keep!r}")
        if to is not None and to not in ("month", "year"):
            raise BadInput(f"{where}: generalize to must be month or year, not {to!r}")
    if kind is TransformKind.BUCKET:
        if not isinstance(width, (int, float)) or isinstance(width, bool) or width <= 0:
            raise BadInput(f"{where}: bucket needs a positive numeric width, not {width!r}")
    if not isinstance(keep_last, int) or isinstance(keep_last, bool) or keep_last < 0:
        raise BadInput(f"{where}: mask keep_last must be a non-negative integer")
    return Transform(kind, keep, to, float(width) if width is not None else None, keep_last)


@dataclass(frozen=True)
class DatasetGrant:
    dataset: str  # "owner.name"
    fields: Mapping[str, Transform]

    @property
    def owner(self) -> str:
        return self.dataset.split(".", 1)[0]

    def visible(self) -> dict[str, Transform]:
        return {c: t for c, t in self.fields.items() if t.kind is not TransformKind.DROP}


ROWS_KEYS = frozenset({"quasi_identifiers", "hierarchies", "max_suppression", "l_diversity", "sensitive"})


@dataclass(frozen=True)
class AgreementTerms:
    """The content of one agreement version, as parsed from its YAML document."""

    name: str
    provider: str
    recipients: tuple[str, ...]
    purposes: tuple[str, ...]
    valid_until: dt.datetime
    datasets: tuple[DatasetGrant, ...]
    mode: AccessMode
    min_group_size: int
    join_keys: tuple[str, ...] = ()
    valid_from: dt.datetime | None = None
    # rows mode: the columns checked for k-anonymity (default: the schema's quasi_identifier
    # columns), their generalisation ladders (default by type), and the most rows that may be
    # suppressed rather than generalised further.
    quasi_identifiers: tuple[str, ...] = ()
    hierarchies: Mapping[str, tuple[Transform | None, ...]] = field(default_factory=dict)
    max_suppression: float = 0.05
    code: CodeTerms | None = None  # code mode: automation rules and sandbox limits
    privacy: PrivacyTerms = field(default_factory=PrivacyTerms)  # filterable, noise, dp budget
    # rows mode, optional: every kept class also holds at least l distinct values of each
    # sensitive column (default: the schema's sensitive columns it shares). k people sharing
    # one diagnosis tell the diagnosis of each of them; l-diversity refuses such classes.
    l_diversity: int | None = None
    sensitive: tuple[str, ...] = ()

    @property
    def parties(self) -> tuple[str, ...]:
        return (self.provider, *self.recipients)

    def grant_for(self, dataset: str) -> DatasetGrant | None:
        for g in self.datasets:
            if g.dataset == dataset:
                return g
        return None

    def to_dict(self) -> dict[str, Any]:
        access: dict[str, Any] = {"mode": self.mode.value, "min_group_size": self.min_group_size}
        if self.join_keys:
            access["join_keys"] = list(self.join_keys)
        if self.mode is AccessMode.ROWS:
            if self.quasi_identifiers:
                access["quasi_identifiers"] = list(self.quasi_identifiers)
            if self.hierarchies:
                access["hierarchies"] = {c: [t.to_dict() if t else "*" for t in levels]
                                         for c, levels in self.hierarchies.items()}
            access["max_suppression"] = self.max_suppression
            if self.l_diversity is not None:
                access["l_diversity"] = self.l_diversity
            if self.sensitive:
                access["sensitive"] = list(self.sensitive)
        if self.code is not None:
            access.update(self.code.to_dict())
        access.update(self.privacy.to_dict())
        out: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "recipients": list(self.recipients),
            "purposes": list(self.purposes),
            "valid_until": self.valid_until.isoformat(),
            "datasets": {g.dataset: {"fields": {c: t.to_dict() for c, t in g.fields.items()}} for g in self.datasets},
            "access": access,
        }
        if self.valid_from:
            out["valid_from"] = self.valid_from.isoformat()
        return out


MIN_GROUP_SIZE_FLOOR = 2


def _as_datetime(where: str, value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        # A date means "through the end of that day".
        moment = dt.datetime.combine(value, dt.time(23, 59, 59))
    elif isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            raise BadInput(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None
        if len(value) == 10:
            moment = moment.replace(hour=23, minute=59, second=59)
    else:
        raise BadInput(f"{where}: expected a date (YYYY-MM-DD), got {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def parse_agreement(doc: Any) -> AgreementTerms:
    """Validate the shape of an agreement document. Catalog checks happen in `check_against`."""
    if not isinstance(doc, dict):
        raise BadInput("agreement must be a mapping (see docs/formats.md)")
    allowed = {"name", "provider", "recipients", "purposes", "valid_until", "valid_from", "datasets", "access"}
    unknown = set(doc) - allowed
    if unknown:
        raise BadInput(f"agreement: unknown key(s) {sorted(unknown)}")
    missing = [k for k in ("name", "provider", "recipients", "purposes", "valid_until", "datasets", "access") if k not in doc]
    if missing:
        raise BadInput(f"agreement: missing key(s) {missing}")
    name = check_label("agreement", str(doc["name"]))
    provider = check_name("party", str(doc["provider"]))
    recipients = doc["recipients"]
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not recipients:
        raise BadInput("agreement: recipients must be a non-empty list of party names")
    recipients = tuple(check_name("party", str(r)) for r in recipients)
    if provider in recipients:
        raise BadInput("agreement: the provider cannot also be a recipient")
    purposes = doc["purposes"]
    if isinstance(purposes, str):
        purposes = [purposes]
    if not isinstance(purposes, list) or not purposes or not all(isinstance(p, str) and p for p in purposes):
        raise BadInput("agreement: purposes must be a non-empty list of purpose names")
    valid_until = _as_datetime("agreement: valid_until", doc["valid_until"])
    valid_from = _as_datetime("agreement: valid_from", doc["valid_from"]) if doc.get("valid_from") else None
    if valid_from and valid_from >= valid_until:
        raise BadInput("agreement: valid_from must be before valid_until")
    datasets = doc["datasets"]
    if not isinstance(datasets, dict) or not datasets:
        raise BadInput("agreement: datasets must map owner.dataset to {fields: {...}}")
    grants = []
    for ds_name, ds_doc in datasets.items():
        ds_name = str(ds_name)
        owner, _, dname = ds_name.partition(".")
        if not dname:
            raise BadInput(f"agreement: dataset {ds_name!r} must be written owner.dataset")
        check_name("party", owner), check_name("dataset", dname)
        if owner != provider:
            raise BadInput(f"agreement: dataset {ds_name} is not the provider's ({provider}); each provider proposes its own")
        if not isinstance(ds_doc, dict) or not isinstance(ds_doc.get("fields"), dict) or not ds_doc["fields"]:
            raise BadInput(f"agreement: dataset {ds_name} needs fields: {{column: {{transform: ...}}}}")
        fields = {str(c): parse_transform(f"agreement: {ds_name}.{c}", t) for c, t in ds_doc["fields"].items()}
        grants.append(DatasetGrant(ds_name, fields))
    access = doc["access"]
    if not isinstance(access, dict):
        raise BadInput("agreement: access must be a mapping {mode, min_group_size, join_keys}")
    unknown = set(access) - {"mode", "min_group_size", "join_keys"} - ROWS_KEYS - CODE_KEYS - PRIVACY_KEYS
    if unknown:
        raise BadInput(f"agreement: access has unknown key(s) {sorted(unknown)}")
    try:
        mode = AccessMode(access.get("mode", "aggregate"))
    except ValueError:
        raise BadInput(f"agreement: access mode {access.get('mode')!r} is not supported "
                       "(use aggregate, join, offer, rows, code or dp)") from None
    if mode is not AccessMode.CODE and set(access) & CODE_KEYS:
        raise BadInput(f"agreement: {', '.join(sorted(set(access) & CODE_KEYS))} belong to access mode code")
    if mode is not AccessMode.ROWS and set(access) & ROWS_KEYS:
        raise BadInput(f"agreement: {', '.join(sorted(set(access) & ROWS_KEYS))} belong to access mode rows")
    quasi, hierarchies, max_suppression = _rows_terms(access)
    l_diversity, sensitive = _diversity_terms(access)
    k = access.get("min_group_size")
    if not isinstance(k, int) or isinstance(k, bool) or k < MIN_GROUP_SIZE_FLOOR:
        raise BadInput(f"agreement: access.min_group_size must be an integer >= {MIN_GROUP_SIZE_FLOOR}, got {k!r}")
    join_keys = access.get("join_keys", [])
    if isinstance(join_keys, str):
        join_keys = [join_keys]
    if not isinstance(join_keys, list):
        raise BadInput("agreement: access.join_keys must be a list of field names")
    join_keys = tuple(str(j) for j in join_keys)
    if mode is AccessMode.JOIN and not join_keys:
        raise BadInput("agreement: access mode join needs at least one join key")
    privacy = parse_privacy_terms(access, mode is AccessMode.DP, mode in (AccessMode.AGGREGATE, AccessMode.JOIN))
    if privacy.noise is not None:
        shown = {column for grant in grants for column in grant.visible()}
        unknown_sums = sorted(set(privacy.noise.sums) - shown)
        if unknown_sums:
            raise BadInput(f"agreement: access.noise.sum names {unknown_sums}, not fields the agreement shows")
    return AgreementTerms(name, provider, recipients, tuple(purposes), valid_until,
                          tuple(grants), mode, k, join_keys, valid_from, quasi, hierarchies, max_suppression,
                          parse_code_terms(access) if mode is AccessMode.CODE else None,
                          privacy=privacy, l_diversity=l_diversity, sensitive=sensitive)


def _diversity_terms(access: Mapping[str, Any]) -> tuple[int | None, tuple[str, ...]]:
    l_diversity = access.get("l_diversity")
    if l_diversity is not None and (not isinstance(l_diversity, int) or isinstance(l_diversity, bool) or l_diversity < 2):
        raise BadInput("agreement: access.l_diversity must be a whole number of at least 2 (distinct sensitive "
                       "values every exported class must hold)")
    sensitive = access.get("sensitive", [])
    if not isinstance(sensitive, list) or not all(isinstance(s, str) and s for s in sensitive):
        raise BadInput("agreement: access.sensitive must be a list of field names")
    if sensitive and l_diversity is None:
        raise BadInput("agreement: access.sensitive names the columns l_diversity counts; give access.l_diversity too")
    return l_diversity, tuple(sensitive)


def _rows_terms(access: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, tuple[Transform | None, ...]], float]:
    quasi = access.get("quasi_identifiers", [])
    if not isinstance(quasi, list) or not all(isinstance(q, str) and q for q in quasi):
        raise BadInput("agreement: access.quasi_identifiers must be a list of field names")
    ladders = access.get("hierarchies", {})
    if not isinstance(ladders, dict):
        raise BadInput("agreement: access.hierarchies must map a field to a list of generalisation levels")
    hierarchies: dict[str, tuple[Transform | None, ...]] = {}
    for column, levels in ladders.items():
        if not isinstance(levels, list) or not levels:
            raise BadInput(f"agreement: access.hierarchies.{column} must be a non-empty list of levels "
                           "(e.g. [{transform: bucket, width: 10}, '*'])")
        hierarchies[str(column)] = tuple(None if level == "*" else parse_transform(
            f"agreement: access.hierarchies.{column}", level) for level in levels)
        if any(t is not None and t.kind in (TransformKind.DROP, TransformKind.HASH) for t in hierarchies[str(column)]):
            raise BadInput(f"agreement: access.hierarchies.{column}: levels generalise (bucket, generalize, mask) "
                           "or suppress ('*'); drop and hash are not levels")
    max_suppression = access.get("max_suppression", 0.05)
    if not isinstance(max_suppression, (int, float)) or isinstance(max_suppression, bool) or not 0 <= max_suppression <= 1:
        raise BadInput("agreement: access.max_suppression must be a fraction between 0 and 1")
    return tuple(quasi), hierarchies, float(max_suppression)


def check_against(terms: AgreementTerms, schemas: Mapping[str, DatasetSchema]) -> None:
    """Check the terms against the provider's catalog; every problem is listed at once."""
    problems: list[str] = []
    for grant in terms.datasets:
        schema = schemas.get(grant.dataset)
        if schema is None:
            problems.append(f"dataset {grant.dataset} does not exist")
            continue
        for col, t in grant.fields.items():
            if col not in schema.names:
                problems.append(f"{grant.dataset} has no column {col!r} (columns: {', '.join(schema.names)})")
                continue
            spec = schema.column(col)
            if t.kind in (TransformKind.BUCKET,) and spec.type not in (ColumnType.INTEGER, ColumnType.DOUBLE):
                problems.append(f"{grant.dataset}.{col}: bucket needs a numeric column, it is {spec.type.value}")
            if t.kind is TransformKind.GENERALIZE and t.to and spec.type not in (ColumnType.DATE, ColumnType.TIMESTAMP):
                problems.append(f"{grant.dataset}.{col}: generalize to {t.to} needs a date column, it is {spec.type.value}")
            if spec.sealed and terms.mode.value == "rows" and spec.role.identifying and t.kind is TransformKind.RAW:
                # Every party of the collaboration holds the secret: a recipient could open a sealed
                # identifier, or fingerprint guesses and match them, so identifiers still never leave raw.
                instead = "hash or drop" if spec.seal is Seal.FINGERPRINT else "drop"
                problems.append(f"{grant.dataset}.{col} is an identifier sealed as {spec.seal.value}: access mode rows "
                                f"would send it row by row to a recipient who holds the collaboration secret; "
                                f"share it as {instead}")
            elif spec.sealed and t.kind not in (TransformKind.RAW, TransformKind.DROP) and not (
                    terms.mode.value == "rows" and spec.seal is Seal.FINGERPRINT and t.kind is TransformKind.HASH):
                why = ("a fingerprint is already a keyed pseudonym the store cannot reverse, and hashing it again "
                       "would stop it joining the other parties' fingerprints" if spec.seal is Seal.FINGERPRINT
                       else "its values are ciphertext, which a transform cannot make sense of")
                problems.append(f"{grant.dataset}.{col} is sealed as {spec.seal.value}: share it raw or drop it ({why})")
            elif spec.role is Role.IDENTIFIER and t.kind is TransformKind.RAW and not spec.sealed:
                problems.append(f"{grant.dataset}.{col} is an identifier: share it as hash, mask or drop, not raw")
        subject = schema.subject_column
        if subject is None:
            problems.append(f"{grant.dataset} has no subject_id column, so groups cannot be counted in subjects")
        if terms.mode is AccessMode.ROWS:
            for column in (*terms.quasi_identifiers, *terms.hierarchies):
                if column not in grant.fields or grant.fields[column].kind is TransformKind.DROP:
                    problems.append(f"quasi-identifier {column!r} is not a shared field of {grant.dataset}")
                elif column in schema.names and schema.column(column).sealed:
                    # Ciphertext and fingerprints are distinct per person: no ladder can make them
                    # k-anonymous short of suppressing every value, so say so now, not at export.
                    problems.append(f"{grant.dataset}.{column} is sealed as {schema.column(column).seal.value}: "
                                    "it cannot be a quasi-identifier (its values cannot be generalised)")
            if terms.l_diversity is not None:
                problems.extend(_diversity_problems(terms, grant, schema))
            for column, levels in terms.hierarchies.items():
                if column in schema.names:
                    ctype = schema.column(column).type
                    for t in levels:
                        if t and t.kind is TransformKind.BUCKET and ctype not in (ColumnType.INTEGER, ColumnType.DOUBLE):
                            problems.append(f"{grant.dataset}.{column}: bucket needs a numeric column")
                        if t and t.kind is TransformKind.GENERALIZE and t.to and ctype not in (ColumnType.DATE, ColumnType.TIMESTAMP):
                            problems.append(f"{grant.dataset}.{column}: generalize to {t.to} needs a date column")
        for key in terms.join_keys:
            if key not in grant.fields:
                problems.append(f"join key {key!r} is not a field of {grant.dataset}")
            elif grant.fields[key].kind is TransformKind.DROP:
                problems.append(f"join key {key!r} of {grant.dataset} is dropped")
    if problems:
        raise BadInput("agreement: " + "; ".join(problems))


def quasi_identifier_columns(terms: AgreementTerms, schema: DatasetSchema, shared: Iterable[str]) -> tuple[str, ...]:
    """The columns a rows export generalises: the agreement's list, else the schema's quasi-identifiers it shares."""
    return terms.quasi_identifiers or _declared(schema, Role.QUASI_IDENTIFIER, shared)


def sensitive_columns(terms: AgreementTerms, schema: DatasetSchema, shared: Iterable[str]) -> tuple[str, ...]:
    """The columns l-diversity counts: the agreement's list, else the schema's sensitive columns it shares."""
    return terms.sensitive or _declared(schema, Role.SENSITIVE, shared)


def _declared(schema: DatasetSchema, role: Role, shared: Iterable[str]) -> tuple[str, ...]:
    visible = set(shared)
    return tuple(c.name for c in schema.columns if c.role is role and c.name in visible)


def _diversity_problems(terms: AgreementTerms, grant: DatasetGrant, schema: DatasetSchema) -> list[str]:
    visible = grant.visible()
    columns = sensitive_columns(terms, schema, visible)
    if not columns:
        return [f"l_diversity needs a sensitive column of {grant.dataset}: list access.sensitive, or share a column "
                "the schema declares role sensitive"]
    quasi = quasi_identifier_columns(terms, schema, visible)
    return [f"sensitive column {c!r} is not a shared field of {grant.dataset}" if c not in visible
            else f"{grant.dataset}.{c} is a quasi-identifier and a sensitive column at once"
            for c in columns if c not in visible or c in quasi]


def render_template(text: str, params: Mapping[str, str]) -> str:
    """Fill `${param}` placeholders; a missing parameter is named, not left in place."""
    tmpl = string.Template(text)
    needed = {m.group("named") or m.group("braced") for m in tmpl.pattern.finditer(text)} - {None}
    missing = sorted(needed - set(params))
    if missing:
        raise BadInput(f"template needs parameter(s) {missing}: pass --set NAME=VALUE")
    unused = sorted(set(params) - needed)
    if unused:
        raise BadInput(f"template has no parameter(s) {unused} (it takes {sorted(needed)})")
    return tmpl.substitute(params)


@dataclass(frozen=True)
class AgreementState:
    """A stored agreement version and its signatures, as the governor needs it."""

    id: str
    version: int
    terms: AgreementTerms
    status: AgreementStatus
    accepted_by: frozenset[str] = field(default_factory=frozenset)
    hash_key: bytes = field(default=b"", repr=False)

    def in_force(self, now: dt.datetime) -> bool:
        if self.status is not AgreementStatus.ACTIVE:
            return False
        if self.terms.valid_from and now < self.terms.valid_from:
            return False
        return now <= self.terms.valid_until

    def effective_status(self, now: dt.datetime) -> AgreementStatus:
        if self.status is AgreementStatus.ACTIVE and now > self.terms.valid_until:
            return AgreementStatus.EXPIRED
        return self.status
