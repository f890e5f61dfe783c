"""What the services need from the outside world, as Protocols. Adapters implement them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from .domain.records import DatasetVersion
from .domain.schema import DatasetSchema
from .policy.context import Plan


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    suppressed_groups: int = 0
    exact_recount: bool = False
    elapsed_ms: float = 0.0
    # Per output block, sketches of the groups released (policy/differencing.py); None when the
    # engine did not compute them, which the service treats as a refusal for governed queries.
    sketches: Any = None
    # Access mode dp: the noise the result carries (mechanism, epsilon spent, 95% error bars).
    dp: Any = None
    # Threshold modes with access.noise: the seeded noise's mechanism and scale per column.
    noise: Any = None


@dataclass(frozen=True)
class ConsentSnapshot:
    """One dataset's consent state for one purpose, reflecting every record with seq <= `seq`
    (later records may be reflected too: replaying them again over it changes nothing)."""

    seq: int
    subjects: Sequence[str]  # opt_in: the subjects who granted the purpose; opt_out: those who withdrew it


@dataclass(frozen=True)
class ConsentGate:
    """How the engine applies one dataset's consent gate for one purpose (the view's `cg_consented`).

    The engine reads a derived *base*, the version's rows whose subjects may be used as of consent
    record `base_seq`, and applies `changes`, the subjects whose records came after it. With
    `snapshot` the base is (re)built from it first. A base whose header does not match
    (version, purpose, mode, seq, row count) is never used: the engine calls `reload` for a gate
    with a fresh snapshot and rebuilds.
    """

    mode: str  # "opt_in" | "opt_out"
    purpose: str
    source_sha256: str  # the version's commitment: a base derived from another file is stale
    base: Path
    base_seq: int
    changes: Mapping[str, bool] = field(default_factory=dict)  # subject -> may be used now
    snapshot: ConsentSnapshot | None = None
    reload: Callable[[], "ConsentGate"] | None = field(default=None, compare=False, repr=False)


class QueryEngine(Protocol):
    def run(self, plan: Plan, sources: Mapping[str, Path], consent: Mapping[str, ConsentGate] | None = None) -> QueryResult: ...


@dataclass(frozen=True)
class IngestedFile:
    """A dataset version written to its final place, with what ingest learned about it."""

    path: Path
    sha256: str
    rows: int
    bytes: int
    distinct_subjects: int | None
    max_rows_per_subject: int | None
    # Columns with one value per subject (ParquetIngest.subject_level_columns); None: no subject
    # column, or no rows.
    subject_level_columns: frozenset[str] | None
    # The file holds each person's number (domain.schema.PERSON_NUMBER_COLUMN): written where
    # people have several rows.
    person_numbers: bool = False

    def version(self, version_id: str, owner: str, name: str, number: int, path: str, schema: DatasetSchema,
                created_at: dt.datetime) -> DatasetVersion:
        """The store's record of this file as version `number` of owner.name (`path` relative to
        the home): what ingest measured, never what the uploader said."""
        return DatasetVersion(version_id, owner, name, number, path, self.sha256, self.rows, self.bytes, schema,
                              self.distinct_subjects, self.max_rows_per_subject, self.subject_level_columns,
                              created_at, self.person_numbers)

