"""The dp plan's contribution bounding (policy/dp.py), run on DuckDB before any noise: each
person adds to at most m groups, 1 to each count and a clamped total to each sum. Only people in
more than m groups are ranked at random, so both branches of the bounding SQL are exercised."""

from __future__ import annotations

import duckdb
import pytest

from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern

SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                      "segment": {"type": "string", "role": "attribute"},
                      "spend": {"type": "double", "role": "sensitive"}}}
# Ten people in one segment each (spend 10 per row, 3 rows: 30), and one person `w` in all three
# segments with 400 per row, 2 rows per segment (800 per segment, clamped to 500).
ROWS = ([(f"p{i}", "abc"[i % 3], 10.0) for i in range(10) for _ in range(3)]
        + [("w", s, 400.0) for s in "abc" for _ in range(2)])


def _bounded(max_groups: int) -> dict[str, tuple[int, float]]:
    terms = parse_agreement({
        "name": "t", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics"],
        "valid_until": "2099-12-31",
        "access": {"mode": "dp", "min_group_size": 5, "epsilon": 10, "epsilon_per_query": 1.0, "delta": 1e-6,
                   "max_groups_per_subject": max_groups, "bounds": {"spend": [0, 500]}},
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}})
    state = AgreementState("ag-t", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    table = TableInfo("retailer", "purchases", parse_schema(SCHEMA), len(ROWS), 6)
    plan = govern("SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment",
                  QueryContext("brand", "analytics", {"retailer.purchases": table}, (state,)))
    con = duckdb.connect()
    con.execute("CREATE TABLE cg_source (customer_id VARCHAR, segment VARCHAR, spend DOUBLE)")
    con.executemany("INSERT INTO cg_source VALUES (?, ?, ?)", ROWS)
    [view] = plan.views
    con.execute("CREATE SCHEMA retailer")
    con.execute(f"CREATE VIEW retailer.purchases AS {view.select_sql}")
    return {d: (n, s) for d, n, s in con.execute(plan.sql).fetchall()}


@pytest.mark.parametrize("max_groups", [1, 2, 3])
def test_each_person_adds_to_at_most_m_groups_with_a_clamped_total(max_groups):
    groups = _bounded(max_groups)
    plain = {s: sum(1 for i in range(10) if "abc"[i % 3] == s) for s in "abc"}
    assert sum(n for n, _ in groups.values()) == 10 + max_groups  # w counted once in m groups
    for segment, (n, total) in groups.items():
        with_w = n - plain[segment]
        assert with_w in (0, 1)
        assert total == pytest.approx(plain[segment] * 30 + with_w * 500)  # w's 800 clamped to 500
