"""What the governor is given (the catalog and agreements in force) and what it returns.

All plain data: the governor reads no files, opens no connections and reads no clock.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..domain.agreements import AgreementState
from ..domain.schema import DatasetSchema


@dataclass(frozen=True)
class TableInfo:
    """One dataset as the governor sees it: its schema and what ingest learned about it."""

    owner: str
    name: str
    schema: DatasetSchema
    rows: int = 0
    # Most rows any one subject has: a bound that lets large groups pass on a cheap COUNT.
    max_rows_per_subject: int | None = None
    # The consent gate for this query's purpose: "opt_in" keeps only the rows of subjects who
    # granted it, "opt_out" drops those of subjects who withdrew it. The view then reads
    # `cg_consented` (those rows, bound by the engine) instead of `cg_source`.
    consent: str | None = None
    # Columns with one value per subject in this version (ingest): grouped only by these, each
    # person is in one group, which dp's plan uses to skip choosing a person's groups.
    subject_level_columns: frozenset[str] = frozenset()
    # The version stores each person's number (domain.schema.PERSON_NUMBER_COLUMN), which dp's
    # bounding groups by instead of the unit.
    person_numbers: bool = False

    @property
    def key(self) -> str:
        return f"{self.owner}.{self.name}"


@dataclass(frozen=True)
class QueryContext:
    party: str
    purpose: str
    # Every dataset the party may name: its own, and others' under an agreement in force.
    tables: Mapping[str, TableInfo]
    # Agreements in force at the moment of the query in which the party is a recipient.
    agreements: tuple[AgreementState, ...] = ()
    # An offer: a computation evaluated once per subject whose results go to the subjects.
    per_subject: bool = False
    # Access mode dp: the epsilon the querier chooses to spend on this query (at most the
    # agreement's epsilon_per_query; None spends that). Less epsilon, wider error bars.
    epsilon: float | None = None


@dataclass(frozen=True)
class RelationView:
    """How one dataset is exposed to a query: a SELECT over the placeholder `cg_source`, or, for
    a consent-gated dataset, `cg_consented`: the rows of `cg_source` whose subject (the
    `consent_subject` column) may be used for the query's purpose under the `consent` mode."""

    dataset: str  # owner.name, bound by the engine to the dataset's current file
    select_sql: str
    consent: str | None = None  # "opt_in" | "opt_out": the view reads `cg_consented`
    consent_subject: str | None = None
    # The subject column the view's privacy unit comes from, when it reads the version's hidden
    # unit column (domain.schema.UNIT_HASH_COLUMN): the engine derives that column from this one
    # for versions written before it existed.
    unit_subject: str | None = None

    def consent_gate(self) -> str | None:
        """What `cg_consented` is, in words, for explain output."""
        if not self.consent:
            return None
        who = "granted" if self.consent == "opt_in" else "not withdrawn"
        return (f"cg_consented = the rows of cg_source whose \"{self.consent_subject}\" has {who} consent "
                f"to this purpose ({self.consent}), as of this query")

    @property
    def schema_name(self) -> str:
        return self.dataset.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.dataset.split(".", 1)[1]


@dataclass(frozen=True)
class GroupQuery:
    """One output block of a governed query, computed into a temporary table.

    `fast_sql` bounds distinct subjects from row counts (exact for clearly-large and
    clearly-small groups); when any group is left unsure, `exact_sql` counts them exactly.
    Both produce the user's columns plus `__cg_ok` and `__cg_unsure`.
    """

    fast_sql: str | None
    exact_sql: str
    # The rows behind each group (its keys `__cg_key_<i>` and privacy unit `__cg_unit`), from
    # which the engine sketches each released group for the differencing check (policy/differencing.py).
    sketch_sql: str | None = None
    sketch_keys: int = 0
    # Whether the sketch rows carry `__cg_weight` (base rows behind a row after an inner
    # aggregation) instead of counting 1 each.
    sketch_weighted: bool = False
    # Most sketch rows one person can have (the row-count bound of the fast path), None when
    # unknown; the differencing history reads only groups whose row counts could be close.
    sketch_row_bound: int | None = None
    # The same tables with the released groups' sketch cells computed in the same pass
    # (differencing.sketched_group; DuckDB's SQL, the sketch key a `$cg_sketch_key` parameter),
    # None where the block cannot be so grouped: engines then run `sketch_sql` as a pass of its own.
    fast_sketched_sql: str | None = None
    exact_sketched_sql: str | None = None


@dataclass(frozen=True)
class Plan:
    """The governed, rewritten query, ready for an engine."""

    views: tuple[RelationView, ...]
    pseudonym_keys: Mapping[str, bytes] = field(repr=False)
    columns: tuple[str, ...]
    sql: str  # own-only query, or the final SELECT over the group tables `__cg_groups_<i>`
    groups: tuple[GroupQuery, ...] = ()
    min_group_size: int = 0
    agreements: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()  # owner.dataset.column read by the query
    # An offer plan: `sql` yields `__cg_subject` and the offer terms, one row per subject;
    # `evidence_sql` yields the rows (as the computation saw them) each result came from.
    per_subject: bool = False
    evidence_sql: str | None = None
    evidence_columns: tuple[str, ...] = ()
    # Differencing check: the agreement whose history the released groups are checked against
    # first, and the key that makes its sketches' unit hashes unguessable (never in SQL text).
    sketch_salt: bytes = field(default=b"", repr=False)
    # Access mode dp: `sql` yields the contribution-bounded aggregates, and this says how the
    # engine's noise adapter releases them (policy/dp.py).
    dp: Any = None
    # Threshold modes with `access.noise`: per group table, the released values that get seeded
    # noise (policy/noise.py); empty when no agreement of the query asks for noise.
    noise: tuple[Any, ...] = ()
    # Whether the same plan over the same inputs releases the same groups: no CURRENT_DATE and
    # the like, no seeded noise (drawn per group from its sketch). A repeat of such a release
    # needs no sketches and no differencing check (services/privacy.release_fingerprint).
    repeatable: bool = False

    def without_sketches(self) -> Plan:
        """The same group tables without differencing sketch cells (a repeated release; the
        benchmarks' bare query)."""
        return dataclasses.replace(self, groups=tuple(
            dataclasses.replace(g, sketch_sql=None, fast_sketched_sql=None, exact_sketched_sql=None)
            for g in self.groups))

    @property
    def governed(self) -> bool:
        """Whether the query reads others' data (so results and errors are withheld as such)."""
        return bool(self.groups) or self.per_subject or self.dp is not None

    def explain(self) -> str:
        parts = [f"-- view {v.dataset}\n" + (f"-- {v.consent_gate()}\n" if v.consent else "") + v.select_sql
                 for v in self.views]
        for i, g in enumerate(self.groups):
            if g.fast_sql:
                parts.append(f"-- __cg_groups_{i} (row-count bound)\n{g.fast_sql}")
            parts.append(f"-- __cg_groups_{i} (exact)\n{g.exact_sql}")
        parts.append(f"-- output\n{self.sql}")
        return "\n\n".join(parts)
