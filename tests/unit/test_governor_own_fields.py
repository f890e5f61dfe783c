"""The fields an owner's query reads, which the receipts of the people in its rows name."""

from __future__ import annotations

import pytest

from commonground.policy.governor import govern
from tests.governor_context import build_context

P = "retailer.purchases"


@pytest.mark.parametrize("sql, fields", [
    ("SELECT spend FROM retailer.purchases", {"spend"}),
    ("SELECT product, SUM(spend) FROM retailer.purchases WHERE age > 30 GROUP BY product", {"product", "spend", "age"}),
    ("SELECT COUNT(*) FROM retailer.purchases", set()),
    ("WITH t AS (SELECT customer_id, email FROM retailer.purchases) SELECT email FROM t", {"customer_id", "email"}),
    ("SELECT * FROM retailer.purchases", {"customer_id", "email", "store_zip", "age", "spend", "product"}),
    ("SELECT p.spend FROM retailer.purchases p JOIN retailer.purchases q ON p.customer_id = q.customer_id",
     {"spend", "customer_id"}),
])
def test_own_query_names_the_columns_it_reads(sql, fields):
    plan = govern(sql, build_context("retailer"))
    assert set(plan.fields) == {f"{P}.{c}" for c in fields}


def test_an_unresolvable_own_query_names_every_column():
    """A column the catalog does not know fails in the engine; the receipt over-states, never under-states."""
    plan = govern("SELECT nope FROM retailer.purchases", build_context("retailer"))
    assert set(plan.fields) == {f"{P}.{c}" for c in ("customer_id", "email", "store_zip", "age", "spend", "product")}
