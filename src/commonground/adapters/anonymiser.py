"""k-anonymity over a governed view, in DuckDB: generalise along ladders, then suppress.

A Datafly-style greedy walk: while the rows in equivalence classes (over the
quasi-identifiers) with fewer than k distinct subjects are more than the allowed share,
take the quasi-identifier with the most distinct values one level up its ladder. What is
still under k at the end is suppressed (the rows are left out), and the report says how
many. Classes count people (distinct privacy units), not rows, so one person's many rows
never make a class look safe (where ingest found one row per person, counting rows is the
same and cheaper). Each level tried costs one pass over the rows: the classes' sizes and each
quasi-identifier's distinct values (what picks the next one to move) come from one query.

With l-diversity (`plan.l_diversity`), a class must also hold at least l distinct values of each
sensitive column to be kept: k people who share one diagnosis disclose it for each of them.
Such a class counts as small, so the walk generalises on (merging classes adds values) and
suppresses what still fails, and the report gives the least diverse class kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ..policy.exports import ExportPlan, unit_column


@dataclass(frozen=True)
class Anonymised:
    select_sql: str  # the rows to write, without the privacy unit
    levels: dict[str, str]  # quasi-identifier -> the level chosen, in words
    rows_in: int
    rows_out: int
    smallest_class: int | None  # people in the smallest class that was kept
    steps: int
    least_diversity: int | None = None  # with l-diversity: fewest distinct sensitive values in a kept class
    sha256: str = ""  # of the file written, once it is
    bytes: int = 0


def anonymise(con: duckdb.DuckDBPyConnection, relation: str, plan: ExportPlan) -> Anonymised:
    unit = unit_column()
    people = "count(*)" if plan.rows_are_people else f"count(DISTINCT {unit})"
    diverse = _diversity(plan)
    # A class is kept when it has k people and, with l-diversity, l values of each sensitive column.
    keeps = f"people >= {plan.k}" + (f" AND diverse >= {plan.l_diversity}" if diverse else "")
    at = {q.name: plan.floor.get(q.name, 0) for q in plan.quasi_identifiers}
    steps = 0

    def measure() -> tuple[int, int, int | None, int | None, list[int]]:
        """One pass over the rows: (rows in classes not kept, rows in the others, people in the smallest
        kept class, fewest distinct sensitive values in a kept class, distinct values of each
        quasi-identifier at its level). The distinct counts come from the classes, which hold every
        non-null value a column has, so the walk needs no second pass."""
        keys = [q.levels[at[q.name]] for q in plan.quasi_identifiers]
        named = [f"{key} AS q{i}" for i, key in enumerate(keys)] or ["1 AS q"]
        row = con.execute(
            f"SELECT coalesce(sum(n) FILTER (WHERE NOT ({keeps})), 0), coalesce(sum(n) FILTER (WHERE {keeps}), 0), "
            f"min(people) FILTER (WHERE {keeps}), " + (f"min(diverse) FILTER (WHERE {keeps})" if diverse else "NULL")
            + "".join(f", count(DISTINCT q{i})" for i in range(len(keys)))
            + f" FROM (SELECT {', '.join(named)}, {people} AS people, count(*) AS n{diverse} FROM {relation} GROUP BY ALL)"
        ).fetchone()
        return int(row[0]), int(row[1]), row[2], row[3], list(row[4:])

    small, kept, smallest, least_diverse, spread = measure()
    total = small + kept
    while small > plan.max_suppression * total:
        movable = [i for i, q in enumerate(plan.quasi_identifiers) if at[q.name] < len(q.levels) - 1]
        if not movable:
            break
        widest = max(movable, key=lambda i: spread[i])
        at[plan.quasi_identifiers[widest].name] += 1
        steps += 1
        small, kept, smallest, least_diverse, spread = measure()

    generalised = {q.name: q.levels[at[q.name]] for q in plan.quasi_identifiers}
    projection = ", ".join(f"{generalised.get(c, _ident(c))} AS {_ident(c)}" for c in plan.columns)
    if small == 0:  # nothing to suppress: no second pass over the data
        select = f"SELECT {projection} FROM {relation}"
    else:
        names = [q.name for q in plan.quasi_identifiers]
        match = " AND ".join(f"g.{_ident(c)} IS NOT DISTINCT FROM c.{_ident(c)}" for c in names) or "TRUE"
        grouped = ", ".join(_ident(c) for c in names) or "1"
        select = (f"WITH g AS (SELECT {projection}, {unit} FROM {relation}), "
                  f"c AS (SELECT {grouped}, {people} AS people{diverse} FROM g "
                  f"GROUP BY {grouped} HAVING {keeps}) "
                  f"SELECT {', '.join('g.' + _ident(c) for c in plan.columns)} FROM g JOIN c ON {match}")
    labels = {q.name: q.labels[at[q.name]] for q in plan.quasi_identifiers}
    return Anonymised(select, labels, total, kept, smallest, steps, least_diverse)


def _diversity(plan: ExportPlan) -> str:
    """`, <fewest distinct values over the sensitive columns> AS diverse`, or nothing without l-diversity."""
    if plan.l_diversity is None or not plan.sensitive:
        return ""
    counts = [f"count(DISTINCT {_ident(c)})" for c in plan.sensitive]
    return f", {counts[0] if len(counts) == 1 else 'least(' + ', '.join(counts) + ')'} AS diverse"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
