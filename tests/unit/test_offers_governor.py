"""The offer governor: one row per subject, computed inside the store, or a refusal with reasons."""

from __future__ import annotations

import dataclasses

import duckdb
import pytest

from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.errors import Refused
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern
from commonground.policy.offers import SUBJECT, govern_offer

SCHEMA = parse_schema({"columns": {
    "driver_id": {"type": "string", "role": "subject_id"},
    "email": {"type": "string", "role": "identifier"},
    "region": {"type": "string", "role": "quasi_identifier"},
    "km": {"type": "double"},
    "hard_brakes": {"type": "integer"},
}})


def _agreement(mode: str, agreement_id: str = "ag-offer") -> AgreementState:
    access = {"mode": mode, "min_group_size": 3}
    if mode == "join":
        access["join_keys"] = ["driver_id"]
    terms = parse_agreement({
        "name": f"telematics-{mode}", "provider": "telematics", "recipients": ["insurer"],
        "purposes": ["insurance.pricing"], "valid_until": "2099-01-01",
        "datasets": {"telematics.trips": {"fields": {"driver_id": "hash", "email": "drop", "region": "raw",
                                                    "km": "raw", "hard_brakes": "raw"}}},
        "access": access})
    return AgreementState(agreement_id, 1, terms, AgreementStatus.ACTIVE, frozenset(terms.parties), b"k" * 32)


def _ctx(*agreements: AgreementState, per_subject: bool = True) -> QueryContext:
    table = TableInfo("telematics", "trips", SCHEMA, 12, 4)
    return QueryContext("insurer", "insurance.pricing", {"telematics.trips": table},
                        agreements or (_agreement("offer"),), per_subject=per_subject)


def _run(plan, rows) -> list[tuple]:
    con = duckdb.connect()
    con.execute("CREATE TABLE cg_source (driver_id VARCHAR, email VARCHAR, region VARCHAR, km DOUBLE, hard_brakes INTEGER)")
    con.executemany("INSERT INTO cg_source VALUES (?, ?, ?, ?, ?)", rows)
    for name, key in plan.pseudonym_keys.items():
        from commonground.policy.transforms import hmac_sql
        con.execute(f"CREATE MACRO {name}(v) AS {hmac_sql(key, 'v')}")
    for view in plan.views:
        con.execute(f'CREATE SCHEMA "{view.schema_name}"')
        con.execute(f'CREATE VIEW "{view.schema_name}"."{view.table_name}" AS {view.select_sql}')
    return sorted(con.execute(plan.sql).fetchall())


def test_offer_is_computed_once_per_subject_from_that_subjects_rows() -> None:
    plan = govern_offer("SELECT 400 + 20 * AVG(hard_brakes) AS premium, SUM(km) AS km FROM telematics.trips "
                        "WHERE region <> 'test'", _ctx())
    assert plan.columns == (SUBJECT, "premium", "km")
    assert plan.per_subject and plan.governed and plan.min_group_size == 3
    assert plan.fields == ("telematics.trips.hard_brakes", "telematics.trips.km", "telematics.trips.region")
    rows = [("d1", "a@x", "north", 10.0, 1), ("d1", "a@x", "north", 30.0, 3), ("d2", "b@x", "south", 5.0, 0),
            ("d3", "c@x", "test", 7.0, 9)]
    # The subject column is the raw id (the privacy unit), whatever the recipient's transform.
    assert _run(plan, rows) == [("d1", 440.0, 40.0), ("d2", 400.0, 5.0)]


def test_constant_outputs_and_count_star_are_allowed() -> None:
    plan = govern_offer("SELECT 'gold' AS tier, COUNT(*) AS trips FROM telematics.trips", _ctx())
    assert _run(plan, [("d1", "", "n", 1.0, 0), ("d1", "", "n", 1.0, 0)]) == [("d1", "gold", 2)]


@pytest.mark.parametrize("sql, reason", [
    ("SELECT hard_brakes FROM telematics.trips", "outside an aggregate"),
    ("SELECT region, AVG(km) AS km FROM telematics.trips GROUP BY region", "GROUP BY is not allowed"),
    ("SELECT AVG(km) AS km FROM telematics.trips ORDER BY 1 LIMIT 1", "ORDER BY is not allowed"),
    ("SELECT AVG(km) AS km FROM telematics.trips WHERE driver_id = 'd1'", "identifying column (driver_id)"),
    ("SELECT AVG(km) AS km FROM telematics.trips UNION SELECT 1", "one SELECT"),
    ("SELECT AVG(t.km) AS km FROM telematics.trips t JOIN telematics.trips u ON t.driver_id = u.driver_id",
     "exactly one dataset"),
    ("SELECT AVG(km) AS km FROM telematics.trips WHERE km > (SELECT AVG(km) FROM telematics.trips)",
     "exactly one dataset"),
    ("SELECT AVG(email) AS e FROM telematics.trips", "columns:"),
    ("SELECT *, COUNT(*) AS n FROM telematics.trips", "SELECT * is not allowed"),
])
def test_refusals_give_the_reason(sql: str, reason: str) -> None:
    with pytest.raises(Refused) as refused:
        govern_offer(sql, _ctx())
    assert any(reason in r for r in refused.value.reasons), refused.value.reasons


def test_an_aggregate_agreement_does_not_allow_offers() -> None:
    with pytest.raises(Refused) as refused:
        govern_offer("SELECT AVG(km) AS km FROM telematics.trips", _ctx(_agreement("aggregate", "ag-agg")))
    assert any("grants aggregate access, not offers" in r for r in refused.value.reasons)


def test_an_offer_agreement_does_not_allow_queries() -> None:
    ctx = dataclasses.replace(_ctx(), per_subject=False)
    with pytest.raises(Refused) as refused:
        govern("SELECT region, COUNT(*) AS n FROM telematics.trips GROUP BY region", ctx)
    assert any("grants per-subject offers only" in r for r in refused.value.reasons)


def test_with_both_agreements_each_computation_takes_its_own() -> None:
    both = (_agreement("offer", "ag-b"), _agreement("aggregate", "ag-a"))
    assert govern_offer("SELECT AVG(km) AS km FROM telematics.trips", _ctx(*both)).agreements == ("ag-b",)
    query = govern("SELECT region, COUNT(*) AS n FROM telematics.trips GROUP BY region", _ctx(*both, per_subject=False))
    assert query.agreements == ("ag-a",)


def test_evidence_is_the_rows_each_result_came_from_as_the_computation_saw_them() -> None:
    plan = govern_offer("SELECT COUNT(*) AS sporty FROM telematics.trips WHERE region = 'north'", _ctx())
    assert plan.evidence_columns == (SUBJECT, "region")
    evidence = dataclasses.replace(plan, sql=plan.evidence_sql)
    rows = [("d1", "", "north", 1.0, 0), ("d1", "", "south", 2.0, 0), ("d2", "", "south", 3.0, 0)]
    assert _run(evidence, rows) == [("d1", "north")]
