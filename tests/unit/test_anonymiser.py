"""The k-anonymity walk: one measuring pass per level tried, the widest quasi-identifier moved up.

The walk's choices are checked against counts computed here independently of the anonymiser.
"""

from __future__ import annotations

import duckdb
import pytest

from commonground.adapters.anonymiser import anonymise
from commonground.policy.context import RelationView
from commonground.policy.exports import ExportPlan, QuasiIdentifier, no_finer_than, unit_column

UNIT = unit_column()
AGE = QuasiIdentifier("age", ('"age"', 'CAST(floor("age" / 10) * 10 AS BIGINT)', "NULL"),
                      ("as shared", "buckets of 10", "suppressed"))
ZIP = QuasiIdentifier("zip", ('"zip"', 'left("zip", 2)', "NULL"), ("as shared", "first 2 characters", "suppressed"))


def _plan(quasi: tuple[QuasiIdentifier, ...], k: int, max_suppression: float = 0.0) -> ExportPlan:
    return ExportPlan("p.people", "ag1", RelationView("p.people", ""), {}, ("age", "zip", "v"), quasi, k, max_suppression)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    # 600 people, one row each: 30 ages, 300 zips (so zip is the widest), 2 people per (age, zip).
    con = duckdb.connect()
    con.execute(f"CREATE TABLE people AS SELECT 'u' || i AS {UNIT}, 20 + i % 30 AS age, "
                "CAST(10000 + i % 300 AS VARCHAR) AS zip, i AS v FROM range(600) r(i)")
    return con


def _classes(con: duckdb.DuckDBPyConnection, select_sql: str) -> list[int]:
    return [n for (n,) in con.execute(f"SELECT count(*) FROM ({select_sql}) GROUP BY age, zip").fetchall()]


def test_the_quasi_identifier_with_most_distinct_values_moves_first(con) -> None:
    assert con.execute("SELECT count(DISTINCT age), count(DISTINCT zip) FROM people").fetchone() == (30, 300)
    done = anonymise(con, "people", _plan((AGE, ZIP), k=5))
    # zip (300 values) goes to its first 2 characters (one value) before age (30) moves at all;
    # then every class has 20 people and nothing more is needed.
    assert done.levels == {"age": "as shared", "zip": "first 2 characters"} and done.steps == 1
    assert (done.rows_in, done.rows_out, done.smallest_class) == (600, 600, 20)
    assert min(_classes(con, done.select_sql)) == 20


def test_what_stays_under_k_is_suppressed_and_reported(con) -> None:
    # 20 a class at the first level of zip: k = 26 walks on (age to decades: 200 a class).
    done = anonymise(con, "people", _plan((AGE, ZIP), k=26))
    assert done.levels == {"age": "buckets of 10", "zip": "first 2 characters"} and done.steps == 2
    assert (done.rows_out, done.smallest_class) == (600, 200)
    # Allowing 100% suppression, the walk stops at once and every class (2 people) is dropped.
    dropped = anonymise(con, "people", _plan((AGE, ZIP), k=3, max_suppression=1.0))
    assert dropped.steps == 0 and (dropped.rows_in, dropped.rows_out, dropped.smallest_class) == (600, 0, None)
    assert con.execute(f"SELECT count(*) FROM ({dropped.select_sql})").fetchone() == (0,)


def test_without_quasi_identifiers_everyone_is_one_class(con) -> None:
    everyone = anonymise(con, "people", _plan((), k=600))
    assert (everyone.rows_out, everyone.smallest_class, everyone.steps) == (600, 600, 0)
    assert con.execute(f"SELECT count(*) FROM ({everyone.select_sql})").fetchone() == (600,)
    too_few = anonymise(con, "people", _plan((), k=601, max_suppression=1.0))
    assert (too_few.rows_out, too_few.smallest_class) == (0, None)
    assert con.execute(f"SELECT count(*) FROM ({too_few.select_sql})").fetchone() == (0,)


def test_the_walk_starts_no_finer_than_the_recipients_earlier_copies(con) -> None:
    earlier = [{"age": "buckets of 10", "zip": "as shared"}, {"zip": "as shared", "unknown": "x"}]
    plan = no_finer_than(_plan((AGE, ZIP), k=5), earlier)
    assert plan.floor == {"age": 1, "zip": 0}
    done = anonymise(con, "people", plan)
    # alone, the walk keeps age as shared (test above); from the floor it only moves zip
    assert done.levels == {"age": "buckets of 10", "zip": "first 2 characters"} and done.steps == 1
    assert con.execute(f"SELECT count(DISTINCT age) FROM ({done.select_sql})").fetchone() == (3,)  # decades of 20-49

