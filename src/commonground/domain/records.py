"""Plain records the services pass around."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .schema import DatasetSchema


class PartyKind(str, Enum):
    ORGANIZATION = "organization"
    INDIVIDUAL = "individual"


@dataclass(frozen=True)
class Party:
    id: str
    name: str
    kind: str
    created_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "created_at": self.created_at.isoformat()}


class TokenScope(str, Enum):
    """What a token may do; each scope includes the ones below it (admin > query > read)."""

    READ = "read"  # look: GET requests
    QUERY = "query"  # and compute: queries and offers
    ADMIN = "admin"  # and change things: uploads, agreements, consents, decisions, requests

    def allows(self, needed: "TokenScope") -> bool:
        order = list(TokenScope)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class TokenRecord:
    id: str
    party_id: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    scope: TokenScope = TokenScope.ADMIN

    def usable(self, now: dt.datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < _aware(self.expires_at)


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class DatasetVersion:
    id: str
    owner: str
    name: str
    version: int
    path: str
    sha256: str
    rows: int
    bytes: int
    schema: DatasetSchema
    distinct_subjects: int | None
    max_rows_per_subject: int | None
    # Columns with one value per subject in this version (None: not known, or no subject column).
    subject_level_columns: frozenset[str] | None
    created_at: dt.datetime
    # The file holds each person's number (domain.schema.PERSON_NUMBER_COLUMN); False for
    # versions with at most one row per person and for those stored before the column.
    person_numbers: bool = False

    @property
    def key(self) -> str:
        return f"{self.owner}.{self.name}"


@dataclass(frozen=True)
class ConsentWindow:
    """When a subject's rows were in a computation of one purpose: [start, end), end open."""

    purpose: str
    start: dt.datetime | None  # None: since the beginning
    end: dt.datetime | None  # None: still


@dataclass(frozen=True)
class ReceiptScope:
    """Where one subject's rows were, for receipts: a dataset's versions that hold them, and
    the consent gate's effect on the subject over time.

    Purposes not `gated` (None: every purpose is) always admitted the subject. A gated purpose
    the subject has records for admitted them inside its `windows`; one without records
    admitted them iff `admitted_by_default` (opt-out: yes; opt-in: no).
    """

    dataset_id: str
    dataset: str  # owner.name, for display
    versions: tuple[int, ...]
    gated: tuple[str, ...] | None = ()
    recorded: tuple[str, ...] = ()
    windows: tuple[ConsentWindow, ...] = ()
    admitted_by_default: bool = True
