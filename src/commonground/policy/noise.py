"""Seeded noise in threshold modes (issue 11): which released values get noise, at what scale,
and under which canonical name the noise is seeded. Pure: the engine draws the noise
(adapters/threshold_noise.py).

Repeating a query must not average noise away, so the noise is a function of what is released:
the engine seeds it by HMAC (agreement key) over the aggregate's canonical expression, the
group's key values and the sketch of the people behind the group (policy/differencing.py).
Rephrasing the filter (`WHERE 1=1`), reordering columns or renaming aliases keeps all three,
so it gets the same noise; a different set of people or rows gets a fresh draw.

The canonical expression: the aggregate with every column replaced by what it stands for,
through CTEs and derived tables, down to `owner.dataset.column`, simplified by SQLGlot. What
it cannot see is that two different expressions are equal (`COUNT(1)` and `COUNT(2)`): each
draws its own noise. That is why this is a perturbation against averaging, not differential
privacy (access mode dp is that).

Only released values that are a bare COUNT, SUM or AVG get noise; any other aggregate output
(MIN, MAX, an expression over aggregates) and HAVING over the true values are refused under a
noise agreement, since they would release values the noise does not cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from sqlglot import exp
from sqlglot.optimizer.scope import Scope
from sqlglot.optimizer.simplify import simplify

from ..domain.errors import Refused
from ..domain.privacy import NoiseTerms
from .analysis import DIALECT, Analysis, aggregates_in, branches, short

AVG_SUM, AVG_COUNT = "__cg_avg_sum_", "__cg_avg_n_"


@dataclass(frozen=True)
class NoisedValue:
    """One released column that gets noise. `kind` count | sum | avg. An AVG is released as
    (SUM + noise) / (COUNT + noise), from hidden columns the group table carries."""

    column: str  # the output column's name in the group table
    kind: str
    seed_name: str  # canonical expression of the COUNT or SUM (for AVG: its SUM)
    scale: float  # Laplace scale of that noise
    count_seed_name: str = ""  # AVG only: its COUNT's canonical expression and scale
    count_scale: float = 0.0

    def describe(self) -> dict[str, float]:
        if self.kind == "avg":
            return {"sum": self.scale, "count": self.count_scale}
        return {self.kind: self.scale}


@dataclass(frozen=True)
class BlockNoise:
    """The noise of one output block (group table)."""

    values: tuple[NoisedValue, ...]


def block_noise(a: Analysis, scope: Scope, columns: list[str]) -> tuple[BlockNoise, list[exp.Expression]]:
    """The noise plan of an output SELECT and the hidden columns (AVG's SUM and COUNT) its group
    table must add; refuses what the noise would not cover."""
    select = scope.expression
    assert isinstance(select, exp.Select)
    if select.args.get("having"):
        raise Refused(["noise: HAVING would filter on the true values, which the noise is meant to cover; "
                       "filter the released (noisy) values yourself"])
    terms = _noise_terms(a)
    values: list[NoisedValue] = []
    hidden: list[exp.Expression] = []
    for projection, column in zip(select.selects, columns):
        node = projection.unalias()
        if not aggregates_in(node):
            continue  # a group key or a constant: the same for every person in the group
        if isinstance(node, exp.Count):
            values.append(NoisedValue(column, "count", _count_name(a, scope, node), _count_scale(terms)))
        elif isinstance(node, (exp.Sum, exp.Avg)) and not aggregates_in(node.this):
            expanded, origins = _expand(a, scope, node.this)
            scale = _sum_scale(a, origins, node)
            sum_name = f"SUM({expanded})"
            if isinstance(node, exp.Sum):
                values.append(NoisedValue(column, "sum", sum_name, scale))
            else:
                j = len(hidden) // 2
                hidden += [exp.alias_(exp.Sum(this=node.this.copy()), f"{AVG_SUM}{j}", quoted=True),
                           exp.alias_(exp.Count(this=node.this.copy()), f"{AVG_COUNT}{j}", quoted=True)]
                values.append(NoisedValue(column, "avg", sum_name, scale, f"COUNT({expanded})", _count_scale(terms)))
        else:
            raise Refused([f"noise: {short(node)} is not a bare COUNT, SUM or AVG, so the noise would not cover "
                           "it; under this agreement released values are noisy COUNTs, SUMs and AVGs only"])
    return BlockNoise(tuple(values)), hidden


def _noise_terms(a: Analysis) -> list[NoiseTerms]:
    return [r.agreement.terms.privacy.noise for r in a.refs.values()
            if r.agreement is not None and r.agreement.terms.privacy.noise is not None]


def has_noise(a: Analysis) -> bool:
    return bool(_noise_terms(a))


def _count_scale(terms: list[NoiseTerms]) -> float:
    return max(t.count for t in terms)


def _count_name(a: Analysis, scope: Scope, node: exp.Count) -> str:
    """COUNT(*) and COUNT of a constant count the same rows, so they share one name (and one
    noise draw): otherwise `COUNT(1)`, `COUNT(2)`, ... would be fresh draws of one count."""
    argument = node.this
    if isinstance(argument, exp.Star) or not any(argument.find_all(exp.Column)):
        return "COUNT(*)"
    expanded, _ = _expand(a, scope, argument)
    return f"COUNT({expanded})"


def _sum_scale(a: Analysis, origins: Iterable[tuple[str, str, float | None]], node: exp.Expression) -> float:
    scales = [scale for _, _, scale in origins if scale is not None]
    if not scales:
        raise Refused([f"noise: {short(node)} sums no field the agreement gives a noise scale for "
                       "(access.noise.sum), so its noise cannot be sized"])
    return max(scales)


def _expand(a: Analysis, scope: Scope, node: exp.Expression) -> tuple[str, list[tuple[str, str, float | None]]]:
    """`node` with every column replaced by its definition, down to `owner.dataset.column`,
    simplified; and the dataset columns it reads with their sum noise scales (None: none)."""
    origins: list[tuple[str, str, float | None]] = []
    expanded = simplify(_substitute(a, scope, node.copy(), origins))
    return expanded.sql(DIALECT), origins


def _substitute(a: Analysis, scope: Scope, node: exp.Expression, origins: list) -> exp.Expression:
    for column in list(node.find_all(exp.Column)):
        source = scope.sources.get(column.table)
        if isinstance(source, exp.Table) and id(source) in a.refs:
            ref = a.refs[id(source)]
            noise = ref.agreement.terms.privacy.noise if ref.agreement is not None else None
            origins.append((ref.table.key, column.name, noise.sums.get(column.name) if noise else None))
            replacement: exp.Expression = exp.column(column.name, table=ref.table.name, db=ref.table.owner, quoted=True)
        elif isinstance(source, Scope):
            definitions = [_definition(a, source, branch, column.name, origins) for branch in branches(source.expression)]
            replacement = definitions[0] if len(definitions) == 1 else exp.Tuple(expressions=definitions)
        else:
            continue
        if column is node:
            return replacement
        column.replace(replacement)
    return node


def _definition(a: Analysis, scope: Scope, branch: exp.Select, name: str, origins: list) -> exp.Expression:
    """What column `name` of a derived table or CTE is, in one of its branches (a UNION's
    branches line columns up by position)."""
    index = next((i for i, s in enumerate(scope.expression.selects) if s.alias_or_name == name), None)
    target = scope if branch is scope.expression else _scope_of(scope, branch)
    if index is None or index >= len(branch.selects) or target is None:
        return exp.column(name, quoted=True)
    return _substitute(a, target, branch.selects[index].unalias().copy(), origins)


def _scope_of(scope: Scope, branch: exp.Select) -> Scope | None:
    for child in scope.union_scopes:
        if child.expression is branch:
            return child
        found = _scope_of(child, branch)
        if found is not None:
            return found
    return None
