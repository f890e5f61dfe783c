"""The dp plan's contribution bounding (policy/dp.py), run on DuckDB before any noise: each
person adds to at most m groups, 1 to each count and a clamped total to each sum. Only people in
more than m groups are ranked at random, so both branches of the bounding SQL are exercised; with
one row per person (known from ingest) the per-person step is skipped, and with at most m rows
per person, or grouped by subject-level columns only, the choice of m groups, each with the
same result."""

from __future__ import annotations

import re

import duckdb
import pytest

from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.analysis import PRIVACY_UNIT
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern
from tests.governor_context import add_unit_hash

SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                      "segment": {"type": "string", "role": "attribute"},
                      "spend": {"type": "double", "role": "sensitive"}}}
# Ten people in one segment each (spend 10 per row, 3 rows: 30), and one person `w` in all three
# segments with 400 per row, 2 rows per segment (800 per segment, clamped to 500).
ROWS = ([(f"p{i}", "abc"[i % 3], 10.0) for i in range(10) for _ in range(3)]
        + [("w", s, 400.0) for s in "abc" for _ in range(2)])


def _state(max_groups: int) -> AgreementState:
    terms = parse_agreement({
        "name": "t", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics"],
        "valid_until": "2099-12-31",
        "access": {"mode": "dp", "min_group_size": 5, "epsilon": 10, "epsilon_per_query": 1.0, "delta": 1e-6,
                   "max_groups_per_subject": max_groups, "bounds": {"spend": [0, 500]}},
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}})
    return AgreementState("ag-t", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)


def _run(sql: str, people: list[tuple], most: int | None, max_groups: int,
         subject_level: frozenset[str] = frozenset()) -> tuple[list[tuple], str]:
    """The bounded groups (before noise) of `sql`'s dp plan over `people`, with ingest's bound of
    `most` rows per person and its subject-level columns, sorted; and the plan's SQL."""
    table = TableInfo("retailer", "purchases", parse_schema(SCHEMA), len(people), most,
                      subject_level_columns=subject_level)
    plan = govern(sql, QueryContext("brand", "analytics", {"retailer.purchases": table}, (_state(max_groups),)))
    con = duckdb.connect()
    con.execute("CREATE TABLE cg_source (customer_id VARCHAR, segment VARCHAR, spend DOUBLE)")
    con.executemany("INSERT INTO cg_source VALUES (?, ?, ?)", people)
    add_unit_hash(con)
    con.execute("CREATE SCHEMA retailer")
    con.execute(f"CREATE VIEW retailer.purchases AS {plan.views[0].select_sql}")
    return sorted(con.execute(plan.sql).fetchall(), key=repr), plan.sql


def _groups_by_person(sql: str) -> bool:
    return re.search(rf'GROUP BY [^)]*"{PRIVACY_UNIT}"', sql) is not None


def _bounded(max_groups: int) -> dict[str, tuple[int, float]]:
    rows, _ = _run("SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment",
                   ROWS, 6, max_groups)
    return {d: (n, s) for d, n, s in rows}


@pytest.mark.parametrize("max_groups", [1, 2, 3])
def test_each_person_adds_to_at_most_m_groups_with_a_clamped_total(max_groups):
    groups = _bounded(max_groups)
    plain = {s: sum(1 for i in range(10) if "abc"[i % 3] == s) for s in "abc"}
    assert sum(n for n, _ in groups.values()) == 10 + max_groups  # w counted once in m groups
    for segment, (n, total) in groups.items():
        with_w = n - plain[segment]
        assert with_w in (0, 1)
        assert total == pytest.approx(plain[segment] * 30 + with_w * 500)  # w's 800 clamped to 500


@pytest.mark.parametrize("sql", [
    "SELECT segment, COUNT(*) AS n, SUM(spend) AS s, MEDIAN(spend) AS m FROM retailer.purchases GROUP BY segment",
    "SELECT COUNT(*) AS n FROM retailer.purchases",
    "SELECT AVG(spend) AS a, quantile_cont(spend, 0.9) AS q FROM retailer.purchases WHERE spend > 20",
])
def test_one_row_per_person_skips_the_per_person_step_with_the_same_result(sql):
    """When ingest counted at most one row per subject, the plan aggregates rows directly: the
    bounded groups (before noise) equal those of the per-person path on the same data, clamping
    (600 -> 500, -5 -> 0) and a missing value (NULL -> lo) included."""
    people = [(f"p{i}", "abc"[i % 3], float(i * 7 % 90)) for i in range(30)] + [
        ("big", "a", 600.0), ("neg", "b", -5.0), ("none", "c", None)]
    (rows_each, sql_each), (full, sql_full) = (_run(sql, people, most, 1) for most in (1, None))
    assert not _groups_by_person(sql_each) and _groups_by_person(sql_full)
    assert rows_each == full


@pytest.mark.parametrize("max_groups", [2, 3])
def test_at_most_m_rows_per_person_skips_the_choice_of_groups_with_the_same_result(max_groups):
    """Nobody with at most m rows can be in more than m groups: with ingest's bound at 2 rows per
    person and m >= 2, the plan keeps the per-person totals but not the choice of groups, and
    bounds the groups exactly as the full path does (clamping 2 x 300 -> 500 included)."""
    people = [(f"p{i}", "abc"[(i + r) % 3], float(i * 7 % 90 + r)) for i in range(30) for r in range(1 + i % 2)] + [
        ("big", "a", 300.0), ("big", "a", 300.0), ("two", "b", 10.0), ("two", "c", 20.0)]
    sql = "SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment"
    (rows_bound, sql_bound), (full, sql_full) = (_run(sql, people, most, max_groups) for most in (2, None))
    assert "__cg_many" not in sql_bound and "__cg_many" in sql_full
    assert rows_bound == full


@pytest.mark.parametrize("sql", [
    "SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment",
    "SELECT upper(segment) AS u, COUNT(*) AS n, MEDIAN(spend) AS m FROM retailer.purchases WHERE spend > 5 "
    "GROUP BY upper(segment)",
])
def test_grouping_by_subject_level_columns_skips_the_choice_of_groups_with_the_same_result(sql):
    """Each person has one segment on all their rows (1-3 rows): grouped by segment, or by a
    function of it, a person is in one group, so with segment known to be
    subject-level the plan skips choosing groups (m = 1, rows up to 3) and bounds the groups
    exactly as the full path does."""
    people = [(f"p{i}", "abc"[i % 3], float(i * 7 % 90 + r)) for i in range(30) for r in range(1 + i % 3)] + [
        ("big", "a", 300.0), ("big", "a", 300.0)]
    (skipped, sql_skipped), (full, sql_full) = (
        _run(sql, people, 3, 1, level) for level in (frozenset({"segment"}), frozenset()))
    assert "__cg_many" not in sql_skipped and "__cg_many" in sql_full
    # each person's rows grouped by the unit alone, their one label carried along
    assert re.search(rf'ANY_VALUE\("__cg_d0"\) AS "__cg_d0", "{PRIVACY_UNIT}".* GROUP BY "{PRIVACY_UNIT}"\)', sql_skipped)
    assert skipped == full


@pytest.mark.parametrize("sql", [
    "SELECT segment, spend > 50 AS high, COUNT(*) AS n FROM retailer.purchases GROUP BY segment, spend > 50",
    "SELECT segment, spend > 50 AS high, COUNT(*) AS n FROM retailer.purchases GROUP BY 1, 2",  # ordinals
])
def test_a_key_over_a_row_level_column_keeps_the_choice_of_groups(sql):
    """spend varies between a person's rows: grouped by segment and a spend band, a person can be
    in several groups, so the choice stays even with segment subject-level, and each person
    still adds to one group only (m = 1)."""
    people = [(f"p{i}", "abc"[i % 3], float(40 + 20 * r)) for i in range(12) for r in range(2)]
    rows, plan_sql = _run(sql, people, 2, 1, frozenset({"segment"}))
    assert "__cg_many" in plan_sql
    assert sum(n for *_, n in rows) == 12


def test_an_ungrouped_query_bounds_each_person_without_choosing_groups():
    """One group (no GROUP BY) holds everyone once: people counted once, their totals clamped."""
    people = [(f"p{i}", "abc"[i % 3], 100.0) for i in range(8) for _ in range(1 + i % 3)] + [("big", "a", 400.0)] * 2
    rows, sql = _run("SELECT COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases", people, 3, 1)
    assert "__cg_many" not in sql and _groups_by_person(sql)
    assert rows == [(9, sum(100.0 * (1 + i % 3) for i in range(8)) + 500.0)]
