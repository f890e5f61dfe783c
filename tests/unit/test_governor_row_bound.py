"""The cheap row-count bound must never count rows that carry no subject of others' data."""

from __future__ import annotations

import duckdb

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern


def _setup(tmp_path):
    con = duckdb.connect()
    # The provider knows 12 people, one row each; the recipient has 60 customers in tier 'x' of
    # whom only one is also the provider's, and 12 in tier 'y' who all are.
    con.execute(f"COPY (SELECT 'c' || i AS id, 10.0 AS spend FROM range(12) t(i)) TO '{tmp_path / 'p.parquet'}'")
    con.execute(f"COPY (SELECT CASE WHEN i = 0 THEN 'c0' ELSE 'z' || i END AS id, 'x' AS tier FROM range(60) t(i) "
                f"UNION ALL SELECT 'c' || i, 'y' FROM range(12) t(i)) TO '{tmp_path / 'o.parquet'}'")
    terms = parse_agreement({"name": "t", "provider": "p", "recipients": ["o"], "purposes": ["analytics.reporting"],
                             "valid_until": "2099-01-01", "datasets": {"p.d": {"fields": {"id": "hash", "spend": "raw"}}},
                             "access": {"mode": "join", "min_group_size": 10, "join_keys": ["id"]}})
    agreement = AgreementState("ag", 1, terms, AgreementStatus.ACTIVE, frozenset(terms.parties), b"k" * 32)
    tables = {
        "p.d": TableInfo("p", "d", parse_schema({"columns": {"id": {"role": "subject_id"}, "spend": {"type": "double"}}}), 12, 1),
        "o.d": TableInfo("o", "d", parse_schema({"columns": {"id": {"role": "subject_id"}, "tier": {}}}), 72, 1),
    }
    ctx = QueryContext("o", "analytics.reporting", tables, (agreement,))
    return ctx, {"p.d": tmp_path / "p.parquet", "o.d": tmp_path / "o.parquet"}


def test_outer_join_rows_hidden_in_a_cte_do_not_count_as_people(tmp_path):
    ctx, sources = _setup(tmp_path)
    sql = ("WITH t AS (SELECT o.tier, p.spend FROM o.d AS o LEFT JOIN p.d AS p ON o.id = p.id) "
           "SELECT tier, COUNT(*) AS n FROM t GROUP BY tier ORDER BY tier")
    result = DuckDBEngine().run(govern(sql, ctx), sources)
    # Tier 'x' has 60 rows but only one of the provider's people: it must be suppressed.
    assert result.rows == [["y", 12]] and result.suppressed_groups == 1


def test_a_single_dataset_counts_rows_as_people_without_reading_the_subject(tmp_path):
    ctx, sources = _setup(tmp_path)
    provider_ctx = QueryContext("o", "analytics.reporting", {"p.d": ctx.tables["p.d"]}, ctx.agreements)
    plan = govern("SELECT COUNT(*) AS n FROM p.d", provider_ctx)
    assert "COUNT(*) >= 10" in plan.groups[0].fast_sql and "__cg_pu" not in plan.groups[0].fast_sql.split("FROM")[0]
    assert DuckDBEngine().run(plan, sources).rows == [[12]]
