"""Access mode dp: which queries differential privacy accepts, and the plan that bounds each
person's contribution in SQL. Pure; the noise is added by adapters/dp_noise.py (OpenDP).

Accepted shape: one dp-shared dataset, `SELECT dims..., COUNT(*) | COUNT(DISTINCT subject) |
SUM(col) | AVG(col) FROM owner.dataset [WHERE ...] GROUP BY dims`; no joins, CTEs, subqueries,
HAVING, ORDER BY or LIMIT (each would need its own privacy analysis). Bounding, per privacy
unit: its rows in a group are summed first and the sum clamped to the agreement's `bounds`
for that column; COUNT counts people (each person adds 1 to a group); and a person adds to at
most `max_groups_per_subject` groups (chosen at random in the engine). So one person changes
each count by at most m = max_groups_per_subject and each sum by at most m * max(|lo|, |hi|).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ..domain.agreements import AccessMode
from ..domain.errors import Refused
from .analysis import DIALECT, PRIVACY_UNIT, Analysis, Lineage, Ref, short
from .context import Plan
from .rewrite import dataset_view, errors_without_values

DIM = "__cg_d"
MEASURE = "__cg_m"
COUNT = "__cg_n"


@dataclass(frozen=True)
class DpAggregate:
    name: str  # output column
    kind: str  # count | sum | avg
    bounds: tuple[float, float] | None = None  # sum, avg: clamp of one person's total in a group


@dataclass(frozen=True)
class DpPlan:
    """What the noise adapter needs: the output layout, each aggregate's bounds, the budget
    this query spends, and the contribution bound."""

    agreement: str
    dimensions: tuple[str, ...]
    aggregates: tuple[DpAggregate, ...]
    epsilon: float
    delta: float
    max_groups: int

    @property
    def measures(self) -> tuple[DpAggregate, ...]:
        """The aggregates that need a noisy sum (sum and avg)."""
        return tuple(a for a in self.aggregates if a.kind != "count")


def is_dp(a: Analysis) -> bool:
    return any(r.agreement is not None and r.agreement.terms.mode is AccessMode.DP for r in a.refs.values())


def dp_plan(a: Analysis, scopes: list[Scope], lineage: Lineage) -> Plan:
    """The bounded aggregation as SQL over the governed view, plus the DpPlan for the noise."""
    refs = list(a.refs.values())
    select = a.tree
    if len(refs) != 1 or len(scopes) != 1 or not isinstance(select, exp.Select):
        raise Refused(["dp: a query under access mode dp reads one dp-shared dataset in one SELECT "
                       "(no joins, set operations, CTEs or subqueries)"])
    ref = refs[0]
    terms = ref.agreement.terms  # type: ignore[union-attr]
    dp = terms.privacy.dp
    assert dp is not None
    for arg, what in (("having", "HAVING"), ("order", "ORDER BY"), ("limit", "LIMIT"), ("offset", "OFFSET"),
                      ("distinct", "SELECT DISTINCT")):
        if select.args.get(arg):
            a.refuse(f"dp: {what} is not supported under access mode dp; the released groups are chosen by "
                     "noisy partition selection and ordered by you afterwards")
    group = select.args.get("group")
    keys = list(group.expressions) if group else []
    dims, aggregates, measures = [], [], []
    for projection in select.selects:
        body = projection.unalias()
        name = projection.alias_or_name
        if any(body == k for k in keys):
            dims.append((name, body))
        else:
            aggregates.append(_aggregate(a, ref, scopes[0], lineage, body, name, dp.bounds, measures))
    if len(dims) != len(keys):
        a.refuse("dp: every GROUP BY expression must be in the SELECT list, so each released group is labelled")
    a.check()
    alias = select.args["from_"].this.alias_or_name
    keys_by_function: dict[str, bytes] = {}
    view = dataset_view(ref, a.own_transforms, keys_by_function, ref.agreement.id)  # type: ignore[union-attr]
    errors_without_values(select)
    rows = select.copy()
    rows.set("group", None)
    rows.set("expressions", [exp.alias_(d.copy(), f"{DIM}{i}", quoted=True) for i, (_, d) in enumerate(dims)]
             + [exp.alias_(m.copy(), f"{MEASURE}{j}", quoted=True) for j, m in enumerate(measures)]
             # Bounded per 64-bit hash of the unit: grouping by an integer is faster than by text,
             # and a collision only puts two people under one bound, which is stricter, not looser.
             + [exp.alias_(exp.Anonymous(this="hash", expressions=[exp.column(PRIVACY_UNIT, table=alias, quoted=True)]),
                           PRIVACY_UNIT, quoted=True)])
    plan = DpPlan(ref.agreement.id, tuple(n for n, _ in dims), tuple(aggregates),  # type: ignore[union-attr]
                  # delta is shared out like epsilon; only partition selection (GROUP BY) spends it
                  dp.epsilon_per_query, dp.delta * dp.epsilon_per_query / dp.epsilon if keys else 0.0,
                  dp.max_groups_per_subject)
    return Plan(views=(view,), pseudonym_keys=keys_by_function, columns=tuple(n for n, _ in dims) + tuple(x.name for x in aggregates),
                sql=_bounded_sql(rows.sql(DIALECT), plan), agreements=(ref.agreement.id,),  # type: ignore[union-attr]
                datasets=(ref.table.key,), fields=tuple(sorted({f"{ref.table.key}.{c.name}" for c in select.find_all(exp.Column)})),
                dp=plan)


def _aggregate(a: Analysis, ref: Ref, scope: Scope, lineage: Lineage, body: exp.Expression, name: str,
               bounds, measures: list[exp.Expression]) -> DpAggregate:
    if isinstance(body, exp.Count):
        inner = body.this.expressions[0] if isinstance(body.this, exp.Distinct) else body.this
        if isinstance(inner, exp.Star) or (isinstance(inner, exp.Column) and lineage.is_subject_key(
                next(iter(lineage.column(scope, inner)), (-1, "")))):
            return DpAggregate(name, "count")
    if isinstance(body, (exp.Sum, exp.Avg)) and isinstance(body.this, exp.Column):
        column = body.this.name
        if column not in bounds:
            a.refuse(f"dp: {short(body)} needs clamping bounds for {column}; the agreement's access.bounds has none "
                     f"(bounded: {', '.join(sorted(bounds)) or 'none'})")
            return DpAggregate(name, "count")
        measures.append(body.this)
        return DpAggregate(name, "sum" if isinstance(body, exp.Sum) else "avg", bounds[column])
    a.refuse(f"dp: {short(body)} is not supported under access mode dp; use COUNT(*), SUM(col) or AVG(col) of a "
             "bounded column, grouped by dimensions")
    return DpAggregate(name, "count")


def _bounded_sql(rows_sql: str, plan: DpPlan) -> str:
    """Per person and group: their measure totals, clamped; then at most m groups per person;
    then per group: people and the clamped totals. The noise adapter reads this result."""
    dims = ", ".join(f'"{DIM}{i}"' for i in range(len(plan.dimensions)))
    clamped = "".join(f', LEAST(GREATEST(SUM("{MEASURE}{j}"), {m.bounds[0]!r}), {m.bounds[1]!r}) AS "{MEASURE}{j}"'  # type: ignore[index]
                      for j, m in enumerate(plan.measures))
    totals = "".join(f', SUM("{MEASURE}{j}") AS "{MEASURE}{j}"' for j in range(len(plan.measures)))
    by = f"{dims}, " if dims else ""
    unit = f'"{PRIVACY_UNIT}"'
    # Only people in more than m groups need a random choice: ranking every person (a window
    # sorted by a random number over all of them) was ~30% of a dp query (docs/privacy.md).
    # A person in at most m groups keeps all of them, which is what the ranking gave them too.
    return (f"WITH __cg_rows AS ({rows_sql}), "
            f"__cg_units AS MATERIALIZED (SELECT {by}{unit}{clamped}, random() AS __cg_r FROM __cg_rows "
            f"GROUP BY {by}{unit}), "
            f"__cg_many AS (SELECT {unit} FROM __cg_units GROUP BY {unit} HAVING count(*) > {plan.max_groups}), "
            f"__cg_bounded AS (SELECT * FROM __cg_units ANTI JOIN __cg_many USING ({unit}) UNION ALL BY NAME "
            f"(SELECT * FROM __cg_units SEMI JOIN __cg_many USING ({unit}) QUALIFY row_number() OVER "
            f"(PARTITION BY {unit} ORDER BY __cg_r) <= {plan.max_groups})) "
            f"SELECT {by}COUNT(*) AS \"{COUNT}\"{totals} FROM __cg_bounded" + (f" GROUP BY {dims}" if dims else ""))
