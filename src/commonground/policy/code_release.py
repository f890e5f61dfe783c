"""Code-to-data, pure: which governed views an analysis receives, and whether its output may leave.

`govern_code` builds, for each dataset the analysis's agreements grant, the same view a query
would read (the agreement's transforms, the consent gate, the hidden privacy unit), so an
analysis never sees more than a clean-room query could name. `disclosure_reasons` turns facts
measured on the output (by the adapter, against those views) into refusals:

- size: at most `max_output_rows` rows and `max_output_bytes` bytes;
- identifiers by name: no output column named like an identifying column of the inputs;
- identifiers by value: no output column (floats included) holding values equal to an input's
  subject id, identifier or pseudonym, except the verified group and count columns;
- groups: each output row is one group of the declared `GROUP_BY` columns, whose values occur in
  an input holding them all, with at least `min_group_size` distinct people there; a declared
  `COUNT` must be >= k and no more than the people the group has;
- personal data: no column the PII scanner flags.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

from ..domain.agreements import AccessMode, AgreementState
from ..domain.code import CodeTerms, Declared
from ..domain.errors import NotFound, Refused
from ..domain.schema import normalize_column_name
from .analysis import PRIVACY_UNIT, Ref
from .context import QueryContext, RelationView
from .rewrite import dataset_view


@dataclass(frozen=True)
class CodeInput:
    """One view the analysis receives: `key` (owner.dataset), its visible columns, which of them
    identify people (they are matched by value against the output)."""

    key: str
    view: RelationView
    columns: tuple[str, ...]
    identifying: tuple[str, ...]


@dataclass(frozen=True)
class CodePlan:
    inputs: tuple[CodeInput, ...]
    pseudonym_keys: Mapping[str, bytes] = dataclasses.field(repr=False)
    agreements: tuple[str, ...]
    providers: tuple[str, ...]
    terms: CodeTerms
    min_group_size: int

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(i.key for i in self.inputs)

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f"{i.key}.{c}" for i in self.inputs for c in i.columns)

    def group_sources(self, group_by: tuple[str, ...]) -> tuple[str, ...]:
        """The inputs holding every group column: a group is counted in people there."""
        return tuple(i.key for i in self.inputs if set(group_by) <= set(i.columns))


def code_agreements(ctx: QueryContext, agreement_ids: tuple[str, ...]) -> tuple[AgreementState, ...]:
    """The named agreements, each in force, granting the party `code` access for the purpose."""
    found = []
    for agreement_id in agreement_ids:
        state = next((a for a in ctx.agreements if a.id == agreement_id and ctx.party in a.terms.recipients), None)
        if state is None:
            raise NotFound(f"no agreement {agreement_id} in force with you as a recipient")
        if state.terms.mode is not AccessMode.CODE:
            raise Refused([f"code: agreement {agreement_id} grants {state.terms.mode.value} access, not code; ask the "
                           "provider for an agreement with access mode code"])
        if ctx.purpose not in state.terms.purposes:
            raise Refused([f"code: agreement {agreement_id} does not cover purpose {ctx.purpose} "
                           f"(it covers {', '.join(state.terms.purposes)})"])
        found.append(state)
    return tuple(found)


def govern_code(ctx: QueryContext, agreement_ids: tuple[str, ...]) -> CodePlan:
    agreements = code_agreements(ctx, agreement_ids)
    keys: dict[str, bytes] = {}
    inputs = []
    for state in agreements:
        for grant in state.terms.datasets:
            table = ctx.tables.get(grant.dataset)
            if table is None:
                raise NotFound(f"dataset {grant.dataset} of agreement {state.id} is not available")
            if table.schema.subject_column is None:
                raise Refused([f"code: {grant.dataset} has no subject column, so output groups cannot be counted in people"])
            ref = Ref(len(inputs), table, state)
            visible = tuple(c for c in table.schema.names if c in ref.visible())
            identifying = tuple(c for c in visible if table.schema.column(c).role.identifying)
            inputs.append(CodeInput(grant.dataset, dataset_view(ref, {}, keys, None), visible, identifying))
    terms = [a.terms.code for a in agreements if a.terms.code is not None]
    return CodePlan(tuple(inputs), keys, tuple(a.id for a in agreements),
                    tuple(sorted({a.terms.provider for a in agreements})), _strictest(terms),
                    max(a.terms.min_group_size for a in agreements))


def _strictest(terms: list[CodeTerms]) -> CodeTerms:
    """Several agreements: the smallest limit of each, and an automation rule only if all allow it."""
    first = terms[0]
    return CodeTerms(
        tuple(r for r in first.auto_approve if all(r in t.auto_approve for t in terms)),
        tuple(r for r in first.auto_release if all(r in t.auto_release for t in terms)),
        **{f: min(getattr(t, f) for t in terms) for f in ("cpu_seconds", "memory_mb", "wall_seconds",
                                                           "max_output_rows", "max_output_bytes")})


def declaration_reasons(plan: CodePlan, declared: Declared) -> list[str]:
    """Refusals that need no output: group columns no single input holds."""
    if not plan.group_sources(declared.group_by):
        inputs = "; ".join(f"{i.key}: {', '.join(i.columns)}" for i in plan.inputs)
        return [f"code: GROUP_BY {list(declared.group_by)} must name columns that one input holds together "
                f"(inputs: {inputs}), so each group can be counted in people"]
    return []


MAX_OUTPUT_COLUMNS = 256  # each column is matched against the inputs' identifiers: a bound on the checks' work


@dataclass(frozen=True)
class OutputFacts:
    """What the adapter measured on an output, against the views the analysis received."""

    rows: int
    bytes: int
    columns: tuple[str, ...]
    repeated_groups: int = 0  # output rows whose group values another row also has
    smallest_group: int | None = None  # fewest distinct people any output row's group has in the inputs
    count_over_people: int = 0  # rows whose declared COUNT exceeds the people the group has
    smallest_count: int | None = None  # smallest declared COUNT value
    identifier_values: Mapping[str, int] = dataclasses.field(default_factory=dict)  # column -> matching values
    pii: Mapping[str, str] = dataclasses.field(default_factory=dict)  # column -> kind of personal data found
    unscalar: Mapping[str, str] = dataclasses.field(default_factory=dict)  # column -> a nested or binary type


def value_checked_columns(columns: tuple[str, ...], declared: Declared, plan: CodePlan) -> tuple[str, ...]:
    """Output columns whose values are matched against the inputs' identifiers: all but the group
    columns (each value is verified to be shared by >= k people) and the verified count."""
    identifying = _identifying_names(plan)
    skip = {c for c in declared.group_by if normalize_column_name(c) not in identifying} | {declared.count}
    return tuple(c for c in columns if c not in skip)


def disclosure_reasons(facts: OutputFacts, declared: Declared, plan: CodePlan) -> list[str]:
    terms, k = plan.terms, plan.min_group_size
    reasons = []
    if facts.rows > terms.max_output_rows:
        reasons.append(f"size: the output has {facts.rows:,} rows; the agreement allows at most {terms.max_output_rows:,}")
    if facts.bytes > terms.max_output_bytes:
        reasons.append(f"size: the output is {facts.bytes:,} bytes; the agreement allows at most {terms.max_output_bytes:,}")
    if len(facts.columns) > MAX_OUTPUT_COLUMNS:
        reasons.append(f"size: the output has {len(facts.columns)} columns; at most {MAX_OUTPUT_COLUMNS} are checked")
    for column, kind in sorted(facts.unscalar.items()):
        reasons.append(f"shape: output column {column} is {kind}; only scalar values (numbers, text, booleans, "
                       "dates) leave, since one cell of a list or struct could hold many identifiers")
    identifying = _identifying_names(plan)
    named = [c for c in facts.columns if normalize_column_name(c) in identifying]
    if named:
        reasons.append(f"identifiers: output column(s) {', '.join(named)} are named like an identifying column of the "
                       "inputs; subject ids and identifiers never leave")
    for column, count in sorted(facts.identifier_values.items()):
        if count:
            reasons.append(f"identifiers: output column {column} holds {count} value(s) equal to subject ids or "
                           "identifiers of the inputs (compared as text and as numbers)")
    missing = [c for c in (*declared.group_by, *([declared.count] if declared.count else [])) if c not in facts.columns]
    if missing:
        reasons.append(f"groups: declared column(s) {', '.join(missing)} are not in the output")
    else:
        if facts.repeated_groups:
            reasons.append(f"groups: {facts.repeated_groups} output rows repeat another row's GROUP_BY values; "
                           "each row must be one group (row-level output never leaves)")
        if facts.smallest_group is not None and facts.smallest_group < k:
            # how few is not said: the reasons reach the submitter and the ledger, which every party reads
            reasons.append(f"groups: an output row's group has fewer than {k} people in the inputs (the agreement's "
                           "minimum group size)")
        if facts.smallest_count is not None and facts.smallest_count < k:
            reasons.append(f"groups: declared count column {declared.count} has a group of fewer than {k}")
        if facts.count_over_people:
            reasons.append(f"groups: {facts.count_over_people} rows declare more people in {declared.count} than the "
                           "group has in the inputs")
    for column, kind in sorted(facts.pii.items()):
        reasons.append(f"personal data: output column {column} holds values that look like {kind}")
    return reasons


def _identifying_names(plan: CodePlan) -> set[str]:
    return {normalize_column_name(c) for i in plan.inputs for c in i.identifying} | {PRIVACY_UNIT}
