"""The querier chooses a dp query's epsilon, up to the agreement's epsilon_per_query; an epsilon
anywhere else is refused rather than silently ignored."""

from __future__ import annotations

import dataclasses

import pytest

from commonground.domain.errors import Refused
from commonground.policy.governor import govern
from tests.governor_context import build_context

from tests.unit.test_dp_quantiles import _context

SQL = "SELECT segment, COUNT(*) AS n FROM retailer.purchases GROUP BY segment"


def test_without_a_choice_the_query_spends_the_agreements_epsilon_per_query():
    plan = govern(SQL, _context())
    assert plan.dp.epsilon == 3.0 and plan.dp.delta == pytest.approx(1e-6 * 3.0 / 10)


@pytest.mark.parametrize("epsilon", [0.25, 3.0])
def test_a_chosen_epsilon_is_spent_and_delta_follows_it(epsilon):
    plan = govern(SQL, dataclasses.replace(_context(), epsilon=epsilon))
    assert plan.dp.epsilon == epsilon and plan.dp.delta == pytest.approx(1e-6 * epsilon / 10)


@pytest.mark.parametrize("epsilon", [3.5, 0.0, -1.0])
def test_an_epsilon_outside_the_agreement_is_refused(epsilon):
    with pytest.raises(Refused) as refused:
        govern(SQL, dataclasses.replace(_context(), epsilon=epsilon))
    assert refused.value.reasons == [f"dp: epsilon {epsilon:g} asked; this agreement allows more than 0 and at most 3 "
                                     "per query"]


@pytest.mark.parametrize("sql", ["SELECT product, COUNT(DISTINCT customer_id) FROM retailer.purchases GROUP BY product",
                                 "SELECT COUNT(*) FROM brand.customers"])  # others' threshold data; own data
def test_an_epsilon_on_a_query_that_is_not_dp_is_refused(sql):
    with pytest.raises(Refused) as refused:
        govern(sql, dataclasses.replace(build_context("brand"), epsilon=1.0))
    assert refused.value.reasons[0].startswith("epsilon: only a query under access mode dp spends an epsilon")
