"""Access mode dp: which queries differential privacy accepts, and the plan that bounds each
person's contribution in SQL. Pure; the noise is added by adapters/dp_noise.py (OpenDP).

Accepted shape: one dp-shared dataset, `SELECT dims..., COUNT(*) | COUNT(DISTINCT subject) |
SUM(col) | AVG(col) | MEDIAN(col) | QUANTILE_CONT(col, q) FROM owner.dataset [WHERE ...] GROUP BY
dims`; no joins, CTEs, subqueries,
HAVING, ORDER BY or LIMIT (each would need its own privacy analysis). Bounding, per privacy
unit: its rows in a group are summed first and the sum clamped to the agreement's `bounds`
for that column; COUNT counts people (each person adds 1 to a group); and a person adds to at
most `max_groups_per_subject` groups (chosen at random in the engine). So one person changes
each count by at most m = max_groups_per_subject and each sum by at most m * max(|lo|, |hi|).
A quantile is of the people's clamped totals in the group (one value per person, so one person
changes each group's vector by one element), read back as a histogram on the candidate grid.
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
    kind: str  # count | sum | avg | quantile
    bounds: tuple[float, float] | None = None  # sum, avg, quantile: clamp of one person's total in a group
    quantile: float | None = None  # quantile: which one, in [0, 1] (0.5 for MEDIAN)


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
        """The aggregates over a bounded column (sum, avg, quantile): each has its per-person
        clamped total in the bounding SQL and its own share of epsilon."""
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
    errors_without_values(select)
    # Ingest counted the rows of every subject of this version (grouped by a 64-bit hash of the
    # id, so a collision can only raise the count): at most one means each row is one person.
    # The governed view reads that version's file, or a consent-gated subset of its rows, and
    # the WHERE clause only drops rows, so the bound holds for every row the query reads.
    rows_each = ref.table.max_rows_per_subject
    # Grouped only by columns ingest found to hold one value per subject (the view's transforms
    # and the allow-listed functions are deterministic, so a key over them is one value per
    # person too), each person is in one group, whatever their number of rows.
    by_person = {c.name for k in keys for c in k.find_all(exp.Column)} <= ref.table.subject_level_columns
    groups_each = 1 if by_person else rows_each
    # Bounded per person. In one group each, a person's rows are grouped by the person alone: on
    # the version's person numbers where it has them (a small dense integer that DuckDB
    # aggregates with a perfect hash), else on its 63-bit unit hash. Grouped with their labels
    # too, the key is hashed either way, and DuckDB's range-partitioned aggregation split the
    # sorted numbers unevenly between threads (1.26 s against 1.02 s on the unit hash, 10M rows
    # of 2M people), so those plans keep the unit.
    view = dataset_view(ref, a.own_transforms, keys_by_function, ref.agreement.id,  # type: ignore[union-attr]
                        unit_as_number=groups_each == 1)
    rows = select.copy()
    rows.set("group", None)
    rows.set("expressions", [exp.alias_(d.copy(), f"{DIM}{i}", quoted=True) for i, (_, d) in enumerate(dims)]
             + [exp.alias_(m.copy(), f"{MEASURE}{j}", quoted=True) for j, m in enumerate(measures)]
             # Bounded per unit: the version's person number or 63-bit hash of the id (dataset_view),
             # an integer to group by; a collision of the hash only puts two people under one bound
             # (and one number), stricter, not looser.
             + [exp.alias_(exp.column(PRIVACY_UNIT, table=alias, quoted=True), PRIVACY_UNIT, quoted=True)])
    epsilon = query_epsilon(a, dp.epsilon_per_query)
    plan = DpPlan(ref.agreement.id, tuple(n for n, _ in dims), tuple(aggregates),  # type: ignore[union-attr]
                  # delta is shared out like epsilon; only partition selection (GROUP BY) spends it
                  epsilon, dp.delta * epsilon / dp.epsilon if keys else 0.0, dp.max_groups_per_subject)
    return Plan(views=(view,), pseudonym_keys=keys_by_function, columns=tuple(n for n, _ in dims) + tuple(x.name for x in aggregates),
                sql=_bounded_sql(rows.sql(DIALECT), plan, rows_each, groups_each), agreements=(ref.agreement.id,),  # type: ignore[union-attr]
                datasets=(ref.table.key,), fields=tuple(sorted({f"{ref.table.key}.{c.name}" for c in select.find_all(exp.Column)})),
                dp=plan)


def query_epsilon(a: Analysis, per_query: float) -> float:
    """What this query spends: the querier's choice, or the agreement's epsilon_per_query, which
    caps it (a larger one is refused before anything is spent or run)."""
    asked = a.ctx.epsilon
    if asked is None:
        return per_query
    if not 0 < asked <= per_query:
        a.refuse(f"dp: epsilon {asked:g} asked; this agreement allows more than 0 and at most {per_query:g} per query")
        a.check()
    return asked


def _aggregate(a: Analysis, ref: Ref, scope: Scope, lineage: Lineage, body: exp.Expression, name: str,
               bounds, measures: list[exp.Expression]) -> DpAggregate:
    if isinstance(body, exp.Count):
        inner = body.this.expressions[0] if isinstance(body.this, exp.Distinct) else body.this
        if isinstance(inner, exp.Star) or (isinstance(inner, exp.Column) and lineage.is_subject_key(
                next(iter(lineage.column(scope, inner)), (-1, "")))):
            return DpAggregate(name, "count")
    column, kind, q = _measured(body)
    if column is not None:
        if column.name not in bounds:
            a.refuse(f"dp: {short(body)} needs clamping bounds for {column.name}; the agreement's access.bounds has "
                     f"none (bounded: {', '.join(sorted(bounds)) or 'none'})")
            return DpAggregate(name, "count")
        if kind == "quantile" and not (isinstance(q, float) and 0.0 <= q <= 1.0):
            a.refuse(f"dp: {short(body)} needs a quantile given as a number between 0 and 1")
            return DpAggregate(name, "count")
        measures.append(column)
        return DpAggregate(name, kind, bounds[column.name], q if kind == "quantile" else None)
    a.refuse(f"dp: {short(body)} is not supported under access mode dp; use COUNT(*), SUM(col), AVG(col), "
             "MEDIAN(col) or QUANTILE_CONT(col, q) of a bounded column, grouped by dimensions")
    return DpAggregate(name, "count")


def _measured(body: exp.Expression) -> tuple[exp.Column | None, str, float | None]:
    """(column, kind, q) of SUM/AVG/MEDIAN/QUANTILE_CONT over a bare column, or (None, "", None).
    `PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)` is the same quantile in standard SQL; a
    descending order or several keys are not recognised (so refused as unsupported)."""
    if isinstance(body, (exp.Sum, exp.Avg)) and isinstance(body.this, exp.Column):
        return body.this, "sum" if isinstance(body, exp.Sum) else "avg", None
    if isinstance(body, exp.Median) and isinstance(body.this, exp.Column):
        return body.this, "quantile", 0.5
    if isinstance(body, exp.PercentileCont) and isinstance(body.this, exp.Column):
        return body.this, "quantile", _fraction(body.expression)
    if isinstance(body, exp.WithinGroup) and isinstance(body.this, exp.PercentileCont) \
            and isinstance(body.expression, exp.Order) and len(body.expression.expressions) == 1:
        key = body.expression.expressions[0]
        if isinstance(key, exp.Ordered) and not key.args.get("desc") and isinstance(key.this, exp.Column):
            return key.this, "quantile", _fraction(body.this.this)
    return None, "", None


def _fraction(node: exp.Expression | None) -> float | None:
    """A numeric literal's value; anything else (a column, an expression, a string) is None."""
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return float(node.this)
        except ValueError:
            return None
    return None


def _bounded_sql(rows_sql: str, plan: DpPlan, rows_each: int | None, groups_each: int | None) -> str:
    """Per person and group: their measure totals, clamped; then at most m groups per person;
    then per group: people, the clamped totals and, for a quantile, a histogram of the people's
    clamped totals on the candidate grid (policy/dp.py `grid_bucket`). The noise adapter reads
    this result.

    `rows_each` is ingest's bound on one person's rows (dp_plan), None if unknown. At one row
    per person a person is in one group and their total is their row's value, so the per-person
    aggregation is skipped: the same result by construction, without reading or hashing the
    unit (`benchmarks/dp.py --shape people`). `groups_each` bounds the groups one person is in:
    their rows, or 1 when the query groups by subject-level columns only (dp_plan). At most m,
    the choice of m groups is skipped: again the same result. At exactly 1, each person's rows
    all carry the same labels, so their totals are grouped by the unit alone and the labels
    carried with ANY_VALUE: the same groups, and on person numbers DuckDB's perfect hash
    aggregation instead of a hash table of (labels, unit) (benchmarks/dp.py)."""
    dims = ", ".join(f'"{DIM}{i}"' for i in range(len(plan.dimensions)))
    totals = "".join(f', {_per_group(m, j)} AS "{MEASURE}{j}"' for j, m in enumerate(plan.measures))
    by = f"{dims}, " if dims else ""
    # Ordered by the groups' labels, so the same query lists its released groups in the same order.
    released = f"SELECT {by}COUNT(*) AS \"{COUNT}\"{totals} FROM __cg_bounded" + (f" GROUP BY {dims} ORDER BY {dims}" if dims else "")
    if rows_each == 1:  # DuckDB then never reads the unit: its hash is not used
        replaced = ", ".join(_clamped(m, j, summed=False) for j, m in enumerate(plan.measures))
        return (f"WITH __cg_rows AS ({rows_sql}), __cg_bounded AS (SELECT *{f' REPLACE ({replaced})' if replaced else ''} "
                f"FROM __cg_rows) {released}")
    clamped = "".join(f", {_clamped(m, j, summed=True)}" for j, m in enumerate(plan.measures))
    unit = f'"{PRIVACY_UNIT}"'

    def per_person(extra: str = "") -> str:
        return f"SELECT {by}{unit}{clamped}{extra} FROM __cg_rows GROUP BY {by}{unit}"
    if groups_each == 1:
        labels = "".join(f'ANY_VALUE("{DIM}{i}") AS "{DIM}{i}", ' for i in range(len(plan.dimensions)))
        return (f"WITH __cg_rows AS ({rows_sql}), __cg_bounded AS (SELECT {labels}{unit}{clamped} FROM __cg_rows "
                f"GROUP BY {unit}) {released}")
    if groups_each is not None and groups_each <= plan.max_groups:
        return f"WITH __cg_rows AS ({rows_sql}), __cg_bounded AS ({per_person()}) {released}"
    # Only people in more than m groups need a random choice: ranking every person (a window
    # sorted by a random number over all of them) was ~30% of a dp query (docs/privacy.md).
    # A person in at most m groups keeps all of them, which is what the ranking gave them too.
    return (f"WITH __cg_rows AS ({rows_sql}), "
            f"__cg_units AS MATERIALIZED ({per_person(', random() AS __cg_r')}), "
            f"__cg_many AS (SELECT {unit} FROM __cg_units GROUP BY {unit} HAVING count(*) > {plan.max_groups}), "
            f"__cg_bounded AS (SELECT * FROM __cg_units ANTI JOIN __cg_many USING ({unit}) UNION ALL BY NAME "
            f"(SELECT * FROM __cg_units SEMI JOIN __cg_many USING ({unit}) QUALIFY row_number() OVER "
            f"(PARTITION BY {unit} ORDER BY __cg_r) <= {plan.max_groups})) {released}")


def _clamped(aggregate: DpAggregate, j: int, summed: bool) -> str:
    """Measure j as one person's total in a group (their rows summed, or their one row), clamped
    to the column's bounds; no value at all (NULL) becomes lo, as DuckDB's GREATEST skips NULLs."""
    lo, hi = aggregate.bounds  # type: ignore[misc]
    column = f'"{MEASURE}{j}"'
    return f"LEAST(GREATEST({f'SUM({column})' if summed else column}, {lo!r}), {hi!r}) AS {column}"


def _per_group(aggregate: DpAggregate, j: int) -> str:
    """What the noise adapter needs of measure j per group: the clamped totals' sum, or for a
    quantile their histogram on its candidate grid."""
    column = f'"{MEASURE}{j}"'
    if aggregate.kind == "quantile":
        return f"histogram({grid_bucket(column, aggregate.bounds)})"  # type: ignore[arg-type]
    return f"SUM({column})"


GRID_STEPS = 1000  # a quantile's candidates: lo + i (hi - lo) / 1000, i = 0..999, and hi


def grid(bounds: tuple[float, float]) -> list[float]:
    """A quantile's candidate answers: 1001 evenly spaced points over the column's bounds, so the
    answer's resolution is 0.1% of the bounded range; the exponential mechanism's error grows only
    with the log of the number of candidates, so a finer grid costs little accuracy. Computed in
    the same floating-point steps as `grid_bucket`'s SQL, so both agree to the last bit."""
    lo, hi = float(bounds[0]), float(bounds[1])
    return [lo + i * (hi - lo) / GRID_STEPS for i in range(GRID_STEPS)] + [hi]


def grid_bucket(value_sql: str, bounds: tuple[float, float]) -> str:
    """SQL for where a clamped total sits on the grid: 2i when it equals candidate i, 2i + 1 when
    it lies strictly between candidates i and i + 1. A quantile's scores compare values with
    candidates only, so a histogram of buckets gives the mechanism exactly the scores of the
    totals themselves, one entry per person, at the cost of at most 2001 counts per group
    instead of a list of every person's total. The estimated position can be off by one near a
    candidate (rounding), so the total is compared with the candidates on both sides (exact
    unless a grid step is within a few ulps of the bounds' magnitude; even then each person is
    still one entry, so only the answer's accuracy, never its privacy, could suffer)."""
    lo, hi = float(bounds[0]), float(bounds[1])
    near = f"LEAST(GREATEST(floor(({value_sql} - {lo!r}) * {GRID_STEPS} / {hi - lo!r}), 0), {GRID_STEPS - 1})"

    def candidate(i: str) -> str:
        return f"(CASE WHEN {i} >= {GRID_STEPS} THEN {hi!r} ELSE {lo!r} + {i} * {hi - lo!r} / {GRID_STEPS} END)"
    below, above = candidate(near), candidate(f"({near} + 1)")
    return (f"CAST(CASE WHEN {value_sql} < {below} THEN 2 * {near} - 1 WHEN {value_sql} = {below} THEN 2 * {near} "
            f"WHEN {value_sql} < {above} THEN 2 * {near} + 1 WHEN {value_sql} = {above} THEN 2 * {near} + 2 "
            f"ELSE 2 * {near} + 3 END AS INTEGER)")
