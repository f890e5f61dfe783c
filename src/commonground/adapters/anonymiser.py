"""k-anonymity over a governed view, in DuckDB: generalise along ladders, then suppress.

A Datafly-style greedy walk: while the rows in equivalence classes (over the
quasi-identifiers) with fewer than k distinct subjects are more than the allowed share,
take the quasi-identifier with the most distinct values one level up its ladder. What is
still under k at the end is suppressed (the rows are left out), and the report says how
many. Classes count people (distinct privacy units), not rows, so one person's many rows
never make a class look safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ..policy.exports import ExportPlan, unit_column


@dataclass(frozen=True)
class Anonymised:
    select_sql: str  # the rows to write, without the privacy unit, in keyed order
    levels: dict[str, str]  # quasi-identifier -> the level chosen, in words
    rows_in: int
    rows_out: int
    smallest_class: int | None  # people in the smallest class that was kept
    steps: int


def anonymise(con: duckdb.DuckDBPyConnection, relation: str, plan: ExportPlan) -> Anonymised:
    unit = unit_column()
    at = {q.name: 0 for q in plan.quasi_identifiers}
    total = con.execute(f"SELECT count(*) FROM {relation}").fetchone()[0]
    steps = 0

    def keys() -> list[str]:
        return [q.levels[at[q.name]] for q in plan.quasi_identifiers]

    def classes() -> str:
        grouped = ", ".join(f"{e} AS q{i}" for i, e in enumerate(keys())) or "1 AS q0"
        return (f"SELECT {', '.join(f'q{i}' for i in range(max(1, len(plan.quasi_identifiers))))}, "
                f"count(DISTINCT {unit}) AS people, count(*) AS n FROM (SELECT {grouped}, {unit} FROM {relation}) "
                f"GROUP BY ALL")

    while True:
        small = con.execute(f"SELECT coalesce(sum(n) FILTER (WHERE people < {plan.k}), 0) FROM ({classes()})").fetchone()[0]
        if small <= plan.max_suppression * total:
            break
        movable = [q for q in plan.quasi_identifiers if at[q.name] < len(q.levels) - 1]
        if not movable:
            break
        spread = con.execute("SELECT " + ", ".join(f"count(DISTINCT {q.levels[at[q.name]]})" for q in movable)
                             + f" FROM {relation}").fetchone()
        widest = max(zip(spread, range(len(movable))))[1]
        at[movable[widest].name] += 1
        steps += 1

    generalised = {q.name: q.levels[at[q.name]] for q in plan.quasi_identifiers}
    projection = ", ".join(f"{generalised.get(c, _ident(c))} AS {_ident(c)}" for c in plan.columns)
    qi_names = [q.name for q in plan.quasi_identifiers]
    order = f"md5('{plan.order_key.hex()}' || CAST({unit} AS VARCHAR))"
    if qi_names:
        match = " AND ".join(f"g.{_ident(c)} IS NOT DISTINCT FROM c.{_ident(c)}" for c in qi_names)
        columns = ", ".join(_ident(c) for c in qi_names)
        ctes = (f"WITH g AS (SELECT {projection}, {unit} FROM {relation}), "
                f"c AS (SELECT {columns}, count(DISTINCT {unit}) AS people FROM g GROUP BY ALL HAVING people >= {plan.k})")
        select = (f"{ctes} SELECT {', '.join('g.' + _ident(c) for c in plan.columns)} FROM g JOIN c ON {match} "
                  f"ORDER BY md5('{plan.order_key.hex()}' || CAST(g.{unit} AS VARCHAR))")
        smallest = con.execute(f"{ctes} SELECT min(people) FROM c").fetchone()[0]
    else:
        people = con.execute(f"SELECT count(DISTINCT {unit}) FROM {relation}").fetchone()[0]
        keep = people >= plan.k
        select = f"SELECT {projection} FROM {relation} WHERE {'TRUE' if keep else 'FALSE'} ORDER BY {order}"
        smallest = people if keep else None
    rows_out = con.execute(f"SELECT count(*) FROM ({select})").fetchone()[0]
    labels = {q.name: q.labels[at[q.name]] for q in plan.quasi_identifiers}
    return Anonymised(select, labels, total, rows_out, smallest, steps)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
