"""l-diversity in rows exports: the agreement's terms (domain/agreements.py), and the walk that
keeps only classes with at least l distinct values of each sensitive column (adapters/anonymiser.py).
The walk's results are checked against counts computed here, independently of the anonymiser."""

from __future__ import annotations

import duckdb
import pytest

from commonground.adapters.anonymiser import anonymise
from commonground.domain.agreements import check_against, parse_agreement
from commonground.domain.errors import BadInput
from commonground.domain.schema import parse_schema
from commonground.policy.context import RelationView
from commonground.policy.exports import ExportPlan, QuasiIdentifier, unit_column

UNIT = unit_column()
AGE = QuasiIdentifier("age", ('"age"', 'CAST(floor("age" / 10) * 10 AS BIGINT)', "NULL"),
                      ("as shared", "buckets of 10", "suppressed"))
ZIP = QuasiIdentifier("zip", ('"zip"', 'left("zip", 2)', "NULL"), ("as shared", "first 2 characters", "suppressed"))


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    # 600 people: 30 ages x 300 zips, 2 people per (age, zip). Everyone aged 20 has the flu;
    # every other age holds three diagnoses.
    con = duckdb.connect()
    con.execute(f"CREATE TABLE people AS SELECT 'u' || i AS {UNIT}, 20 + i % 30 AS age, "
                "CAST(10000 + i % 300 AS VARCHAR) AS zip, "
                "CASE WHEN i % 30 = 0 THEN 'flu' ELSE ['a', 'b', 'c'][1 + (i // 30) % 3] END AS diagnosis "
                "FROM range(600) r(i)")
    return con


def _plan(k: int, l_diversity: int | None, max_suppression: float = 0.0) -> ExportPlan:
    return ExportPlan("p.people", "ag1", RelationView("p.people", ""), {}, ("age", "zip", "diagnosis"), (AGE, ZIP), k,
                      max_suppression, True, l_diversity, ("diagnosis",) if l_diversity else ())


def _classes(con, select_sql: str) -> list[tuple[int, int]]:
    """(people, distinct diagnoses) of each class of the written rows."""
    return con.execute(f"SELECT count(*), count(DISTINCT diagnosis) FROM ({select_sql}) GROUP BY age, zip").fetchall()


def test_a_class_sharing_one_sensitive_value_makes_the_walk_go_on(con):
    plain = anonymise(con, "people", _plan(5, None))
    assert plain.steps == 1 and plain.least_diversity is None
    assert min(d for _, d in _classes(con, plain.select_sql)) == 1  # k-anonymous, yet everyone aged 20 has the flu
    diverse = anonymise(con, "people", _plan(5, 2))
    # moving zip left the 20 people aged 20 in one class with one diagnosis: age moves up too
    assert diverse.levels == {"age": "buckets of 10", "zip": "first 2 characters"} and diverse.steps == 2
    classes = _classes(con, diverse.select_sql)
    assert (diverse.rows_out, diverse.least_diversity) == (600, min(d for _, d in classes)) and diverse.least_diversity >= 2


def test_what_still_fails_l_diversity_is_suppressed_and_reported(con):
    done = anonymise(con, "people", _plan(5, 2, max_suppression=0.05))  # the flu class is 20 rows: 3.3%
    assert done.steps == 1 and (done.rows_in, done.rows_out) == (600, 580)
    classes = _classes(con, done.select_sql)
    assert min(d for _, d in classes) == done.least_diversity == 3 and min(n for n, _ in classes) == done.smallest_class
    assert con.execute(f"SELECT count(*) FROM ({done.select_sql}) WHERE age = 20").fetchone() == (0,)


AGREEMENT = {"name": "a", "provider": "shop", "recipients": ["lab"], "purposes": ["analytics.reporting"],
             "valid_until": "2099-12-31",
             "datasets": {"shop.people": {"fields": {"person_id": "hash", "age": "raw", "diagnosis": "raw"}}}}
SCHEMA = {"columns": {"person_id": {"type": "string", "role": "subject_id"}, "age": {"type": "integer"},
                      "diagnosis": {"type": "string", "role": "sensitive"}, "note": {"type": "string"}}}


def _terms(**access):
    return parse_agreement({**AGREEMENT, "access": {"mode": "rows", "min_group_size": 5, **access}})


@pytest.mark.parametrize("access, message", [
    ({"l_diversity": 1}, "at least 2"),
    ({"l_diversity": "2"}, "whole number"),
    ({"l_diversity": True}, "whole number"),
    ({"sensitive": ["diagnosis"]}, "give access.l_diversity too"),
    ({"l_diversity": 2, "sensitive": "diagnosis"}, "list of field names"),
])
def test_bad_l_diversity_terms_are_bad_input(access, message):
    with pytest.raises(BadInput, match=message):
        _terms(**access)


def test_l_diversity_belongs_to_rows():
    with pytest.raises(BadInput, match="l_diversity belong to access mode rows"):
        parse_agreement({**AGREEMENT, "access": {"mode": "aggregate", "min_group_size": 5, "l_diversity": 2}})


def test_the_sensitive_columns_must_be_shared_and_not_quasi_identifiers():
    schemas = {"shop.people": parse_schema(SCHEMA)}
    check_against(_terms(l_diversity=2), schemas)  # the schema's sensitive column, shared
    assert _terms(l_diversity=2).to_dict()["access"]["l_diversity"] == 2
    for access, message in (({"sensitive": ["note"]}, "'note' is not a shared field"),
                            ({"quasi_identifiers": ["age"], "sensitive": ["age"]}, "quasi-identifier and a sensitive")):
        with pytest.raises(BadInput, match=message):
            check_against(_terms(l_diversity=2, **access), schemas)
    declared = {"shop.people": parse_schema({"columns": {**SCHEMA["columns"], "age": {"type": "integer",
                                                                                  "role": "quasi_identifier"}}})}
    with pytest.raises(BadInput, match="quasi-identifier and a sensitive"):  # the schema's quasi-identifier
        check_against(_terms(l_diversity=2, sensitive=["age"]), declared)
    hidden = parse_agreement({**AGREEMENT, "datasets": {"shop.people": {"fields": {"person_id": "hash", "age": "raw"}}},
                              "access": {"mode": "rows", "min_group_size": 5, "l_diversity": 2}})
    with pytest.raises(BadInput, match="l_diversity needs a sensitive column"):
        check_against(hidden, schemas)
