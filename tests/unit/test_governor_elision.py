"""The keyed hash on identifying columns is skipped only where it cannot change a result."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from commonground.policy.governor import govern
from commonground.policy.rewrite import _elidable_hash


def test_one_agreement_elides_the_hash(governor_context):
    plan = govern("select count(distinct customer_id) from retailer.purchases", governor_context("brand"))
    assert plan.pseudonym_keys == {}
    assert "PSEUDONYM" not in plan.views[0].select_sql.upper()


def test_two_agreements_keep_their_keys_apart(governor_context):
    """Pseudonyms must never link across agreements, so with two keys in play nothing is elided."""
    first = governor_context("brand").agreements[0]
    second = dataclasses.replace(first, id="ag9", hash_key=b"another key of 32 bytes........")
    ref = lambda agreement: SimpleNamespace(agreement=agreement)  # noqa: E731
    assert _elidable_hash([ref(first), ref(second)]) is None
    assert _elidable_hash([ref(first), ref(None), ref(first)]) == first.id


def test_elided_keys_compare_as_text_like_the_hash_does(tmp_path):
    """'01' and 1 are different texts, so they never join, with or without the hash."""
    import duckdb

    from commonground.adapters.duckdb_engine import DuckDBEngine
    from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
    from commonground.domain.schema import parse_schema
    from commonground.policy.context import QueryContext, TableInfo

    con = duckdb.connect()
    con.execute(f"COPY (SELECT CASE WHEN i < 20 THEN '0' || i::VARCHAR ELSE i::VARCHAR END AS id, 'x' AS g "
                f"FROM range(1, 41) t(i)) TO '{tmp_path / 'p.parquet'}'")
    con.execute(f"COPY (SELECT i AS id FROM range(1, 41) t(i)) TO '{tmp_path / 'o.parquet'}'")
    terms = parse_agreement({"name": "t", "provider": "p", "recipients": ["o"], "purposes": ["analytics.reporting"],
                             "valid_until": "2099-01-01",
                             "datasets": {"p.d": {"fields": {"id": "hash", "g": "raw"}}},
                             "access": {"mode": "join", "min_group_size": 2, "join_keys": ["id"]}})
    agreement = AgreementState("ag", 1, terms, AgreementStatus.ACTIVE, frozenset(terms.parties), b"k" * 32)
    tables = {"p.d": TableInfo("p", "d", parse_schema({"columns": {"id": {"role": "subject_id"}, "g": {}}}), 40, 1),
              "o.d": TableInfo("o", "d", parse_schema({"columns": {"id": {"type": "integer", "role": "subject_id"}}}), 40, 1)}
    plan = govern("SELECT p.g, COUNT(*) AS n FROM p.d AS p JOIN o.d AS o ON p.id = o.id GROUP BY p.g",
                  QueryContext("o", "analytics.reporting", tables, (agreement,)))
    result = DuckDBEngine().run(plan, {"p.d": tmp_path / "p.parquet", "o.d": tmp_path / "o.parquet"})
    assert result.rows == [["x", 21]]  # 20..40 match as text; '01'..'019' do not meet 1..19
