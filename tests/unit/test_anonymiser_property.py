"""Property: on random people (1-3 rows each), random k, l, suppression bound and starting levels,
the rows the anonymiser writes satisfy what it reports, checked by counting them here:

- every class over the quasi-identifiers (at the chosen levels) holds at least k distinct people
  and, with l-diversity, at least l distinct values of the sensitive column;
- the smallest class and the least diverse class are the ones reported;
- rows in = rows out + suppressed rows, and the rows out are input rows at the chosen levels;
- no quasi-identifier ends finer than its starting level (the recipient's earlier copies);
- suppression stays within the bound unless every ladder was walked to its top.
"""

from __future__ import annotations

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonground.adapters.anonymiser import anonymise
from commonground.policy.context import RelationView
from commonground.policy.exports import ExportPlan, QuasiIdentifier, unit_column

UNIT = unit_column()
AGE = QuasiIdentifier("age", ('"age"', 'CAST(floor("age" / 10) * 10 AS BIGINT)', "NULL"),
                      ("as shared", "buckets of 10", "suppressed"))
ZIP = QuasiIdentifier("zip", ('"zip"', 'left("zip", 2)', "NULL"), ("as shared", "first 2 characters", "suppressed"))

people = st.lists(st.tuples(st.integers(18, 60), st.sampled_from(["10115", "10117", "10245", "20095", "20097"]),
                            st.sampled_from(["flu", "cold", "none"]), st.integers(1, 3)), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=people, k=st.integers(2, 6), l_diversity=st.sampled_from([None, 2, 3]),
       max_suppression=st.sampled_from([0.0, 0.05, 0.3]), floor=st.fixed_dictionaries({"age": st.integers(0, 2),
                                                                                     "zip": st.integers(0, 2)}))
def test_what_is_written_is_what_is_reported(rows, k, l_diversity, max_suppression, floor):
    con = duckdb.connect()
    # `person` is what an export writes for the privacy unit (its pseudonym); the unit never leaves
    con.execute(f"CREATE TABLE people ({UNIT} VARCHAR, person VARCHAR, age INTEGER, zip VARCHAR, diagnosis VARCHAR)")
    # each person keeps one age and zip over their rows; their diagnoses vary by row
    values = [(f"p{n}", f"p{n}", age, zip_code, diagnosis if r == 0 else ["flu", "cold", "none"][(n + r) % 3])
              for n, (age, zip_code, diagnosis, copies) in enumerate(rows) for r in range(copies)]
    con.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?)", values)
    plan = ExportPlan("p.people", "ag1", RelationView("p.people", ""), {}, ("age", "zip", "diagnosis", "person"),
                      (AGE, ZIP), k, max_suppression, False, l_diversity, ("diagnosis",) if l_diversity else (),
                      floor)
    done = anonymise(con, "people", plan)

    levels = {q.name: q.labels.index(done.levels[q.name]) for q in (AGE, ZIP)}
    assert all(levels[name] >= floor[name] for name in levels)
    classes = con.execute(f"SELECT count(DISTINCT person), count(DISTINCT diagnosis) FROM ({done.select_sql}) "
                          "GROUP BY age, zip").fetchall()
    assert all(n >= k for n, _ in classes)
    if l_diversity:
        assert all(d >= l_diversity for _, d in classes)
        assert done.least_diversity == (min(d for _, d in classes) if classes else None)
    assert done.smallest_class == (min(n for n, _ in classes) if classes else None)
    written = con.execute(f"SELECT count(*) FROM ({done.select_sql})").fetchone()[0]
    assert (done.rows_in, done.rows_out) == (len(values), written)
    generalised = ", ".join(f"{q.levels[levels[q.name]]} AS {q.name}" for q in (AGE, ZIP))
    outside = con.execute(f"SELECT count(*) FROM (SELECT * FROM ({done.select_sql}) EXCEPT ALL "
                          f"SELECT {generalised}, diagnosis, person FROM people)").fetchone()[0]
    assert outside == 0  # nothing written that the input, generalised, does not hold
    walked_to_top = all(levels[q.name] == len(q.levels) - 1 for q in (AGE, ZIP))
    assert done.rows_in - done.rows_out <= max_suppression * done.rows_in or walked_to_top
