"""What the governor knows about one query while it checks and rewrites it.

A query's tables are bound to datasets (`Ref`), and every column is traced back to the
dataset columns it derives from (`Lineage`), so rules can ask "is this identifying?" about
any expression, however many CTEs and derived tables it passed through.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ..domain.agreements import AgreementState, Transform, TransformKind
from ..domain.errors import Refused
from . import allowlist
from .context import QueryContext, TableInfo

DIALECT = "duckdb"
PRIVACY_UNIT = "__cg_pu"
# Transforms that keep distinct values distinct: a key under them still names one subject.
INJECTIVE = (TransformKind.RAW, TransformKind.HASH)

Origin = tuple[int, str]  # (ref id, column name)


@dataclass
class Ref:
    """One occurrence of a dataset in the query (a self-join has two)."""

    id: int
    table: TableInfo
    agreement: AgreementState | None  # None: the querier's own dataset

    @property
    def protected(self) -> bool:
        return self.agreement is not None

    def visible(self) -> dict[str, Transform]:
        if self.agreement is None:
            return {c: Transform(TransformKind.RAW) for c in self.table.schema.names}
        grant = self.agreement.terms.grant_for(self.table.key)
        assert grant is not None
        return grant.visible()


@dataclass
class Analysis:
    ctx: QueryContext
    tree: exp.Query
    refs: dict[int, Ref] = field(default_factory=dict)  # id(exp.Table) -> ref
    reasons: list[str] = field(default_factory=list)
    # The querier's own columns joined to others' keys: they carry pseudonyms once transformed.
    own_transforms: dict[tuple[str, str], tuple[Transform, str]] = field(default_factory=dict)

    def refuse(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)

    def check(self) -> None:
        if self.reasons:
            raise Refused(self.reasons)


class Lineage:
    """Which dataset columns each column or expression of a scope derives from."""

    def __init__(self, a: Analysis, scopes: list[Scope]):
        self.a = a
        self.scope_of = {id(s.expression): s for s in scopes}
        self._by_ref = {r.id: r for r in a.refs.values()}
        self._cache: dict[tuple[int, str], frozenset[Origin]] = {}

    def ref(self, table: exp.Table) -> Ref:
        return self.a.refs[id(table)]

    def by_id(self, ref_id: int) -> Ref:
        return self._by_ref[ref_id]

    def column(self, scope: Scope, col: exp.Column) -> frozenset[Origin]:
        source = scope.sources.get(col.table)
        if isinstance(source, exp.Table) and id(source) in self.a.refs:
            return frozenset({(self.ref(source).id, col.name)})
        if isinstance(source, Scope):
            return self.output(source, col.name)
        return frozenset()

    def output(self, scope: Scope, name: str) -> frozenset[Origin]:
        key = (id(scope.expression), name)
        if key in self._cache:
            return self._cache[key]
        self._cache[key] = frozenset()  # guards recursive CTEs
        expression = scope.expression
        result: set[Origin] = set()
        if isinstance(expression, exp.SetOperation):
            index = next((i for i, s in enumerate(expression.selects) if s.alias_or_name == name), None)
            for branch in branches(expression):
                branch_scope = self.scope_of.get(id(branch))
                if branch_scope is not None and index is not None and index < len(branch.selects):
                    result |= self.expression(branch_scope, branch.selects[index])
        elif isinstance(expression, exp.Select):
            for projection in expression.selects:
                if projection.alias_or_name == name:
                    result |= self.expression(scope, projection)
        self._cache[key] = frozenset(result)
        return self._cache[key]

    def expression(self, scope: Scope, node: exp.Expression) -> frozenset[Origin]:
        result: set[Origin] = set()
        for col in node.find_all(exp.Column):
            result |= self.column(scope, col)
        return frozenset(result)

    def is_identifying(self, origin: Origin) -> bool:
        ref = self.by_id(origin[0])
        if (ref.table.key, origin[1]) in self.a.own_transforms:
            return True  # an own column turned into the agreement's pseudonym for a join
        return ref.table.schema.column(origin[1]).role.identifying

    def identifying(self, origins: frozenset[Origin]) -> list[str]:
        return [f"{self.by_id(o[0]).table.key}.{o[1]}" for o in sorted(origins) if self.is_identifying(o)]

    def is_subject_key(self, origin: Origin) -> bool:
        """A protected dataset's subject column under a transform that keeps one value per person."""
        ref = self.by_id(origin[0])
        if not ref.protected or origin[1] != ref.table.schema.subject_column:
            return False
        transform = ref.visible().get(origin[1])
        return transform is not None and transform.kind in INJECTIVE

    def touches_protected(self, scope: Scope) -> bool:
        for source in scope.sources.values():
            if isinstance(source, exp.Table) and id(source) in self.a.refs and self.ref(source).protected:
                return True
            if isinstance(source, Scope) and any(self.touches_protected(s) for s in scope_and_children(source)):
                return True
        return False

    def protected_refs_below(self, scope: Scope) -> list[Ref]:
        found: dict[int, Ref] = {}
        for s in scope_and_children(scope):
            for source in s.sources.values():
                if isinstance(source, exp.Table) and id(source) in self.a.refs and self.ref(source).protected:
                    found[self.ref(source).id] = self.ref(source)
        return list(found.values())


def branches(node: exp.Expression) -> list[exp.Select]:
    if isinstance(node, exp.SetOperation):
        return branches(node.left) + branches(node.right)
    if isinstance(node, exp.Subquery):
        return branches(node.this)
    return [node] if isinstance(node, exp.Select) else []


def scope_and_children(scope: Scope) -> list[Scope]:
    out = [scope]
    for child in scope.set_operation_scopes + scope.cte_scopes + scope.derived_table_scopes + scope.subquery_scopes:
        out.extend(scope_and_children(child))
    return out


def output_scopes(scopes: list[Scope]) -> list[Scope]:
    """The SELECTs whose rows leave: the root, or every branch of a root set operation."""
    root = scopes[-1]
    if isinstance(root.expression, exp.Select):
        return [root]
    by_expr = {id(s.expression): s for s in scopes}
    return [by_expr[id(b)] for b in branches(root.expression) if id(b) in by_expr]


def is_aggregating(select: exp.Select) -> bool:
    if select.args.get("group") or select.args.get("distinct"):
        return True
    return any(aggregates_in(p) for p in select.selects)


def aggregates_in(node: exp.Expression) -> list[exp.Expression]:
    return [n for n in node.walk() if allowlist.is_aggregate(n)]


def conjuncts(node: exp.Expression) -> list[exp.Expression]:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    return [node]


def short(node: exp.Expression) -> str:
    text = node.sql(DIALECT)
    return text if len(text) <= 80 else text[:77] + "..."
