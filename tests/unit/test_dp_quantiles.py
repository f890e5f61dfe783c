"""Noisy quantiles under access mode dp: which spellings the plan accepts and refuses
(policy/dp.py), the grid histogram the bounding SQL hands to the noise adapter, and how the
query's epsilon is shared with the quantile's OpenDP measurement (adapters/dp_noise.py)."""

from __future__ import annotations

import duckdb
import pytest

from commonground.adapters import dp_noise
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.errors import Refused
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.dp import GRID_STEPS, DpAggregate, grid, grid_bucket
from commonground.policy.governor import govern
from tests.governor_context import add_unit_hash

SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                      "segment": {"type": "string", "role": "attribute"},
                      "spend": {"type": "double", "role": "sensitive"},
                      "age": {"type": "double", "role": "attribute"}}}
# Ten people in segments a/b/c, 3 rows of (i + 1) * 10 each (totals 30..300); `w` in all three
# segments with 2 rows of 400 (800 per segment, clamped to 500).
ROWS = ([(f"p{i}", "abc"[i % 3], (i + 1) * 10.0, 30.0) for i in range(10) for _ in range(3)]
        + [("w", s, 400.0, 30.0) for s in "abc" for _ in range(2)])


def _context(max_groups: int = 1) -> QueryContext:
    terms = parse_agreement({
        "name": "t", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics"],
        "valid_until": "2099-12-31",
        "access": {"mode": "dp", "min_group_size": 5, "epsilon": 10, "epsilon_per_query": 3.0, "delta": 1e-6,
                   "max_groups_per_subject": max_groups, "bounds": {"spend": [0, 500]}},
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw",
                                                       "age": "raw"}}}})
    state = AgreementState("ag-t", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    table = TableInfo("retailer", "purchases", parse_schema(SCHEMA), len(ROWS), 6)
    return QueryContext("brand", "analytics", {"retailer.purchases": table}, (state,))


@pytest.mark.parametrize(("select", "q"), [("MEDIAN(spend)", 0.5), ("quantile_cont(spend, 0.9)", 0.9),
                                           ("percentile_cont(0.25) WITHIN GROUP (ORDER BY spend)", 0.25),
                                           ("quantile_cont(spend, 0)", 0.0), ("quantile_cont(spend, 1)", 1.0)])
def test_quantile_spellings_plan_a_bounded_quantile(select, q):
    plan = govern(f"SELECT segment, {select} AS x FROM retailer.purchases GROUP BY segment", _context())
    [aggregate] = plan.dp.aggregates
    assert aggregate == DpAggregate("x", "quantile", (0.0, 500.0), q)


@pytest.mark.parametrize(("select", "words"), [
    ("MEDIAN(age)", "bounds for age"),  # no clamping bounds: no sensitivity to give OpenDP
    ("quantile_cont(spend, 1.5)", "between 0 and 1"),
    ("quantile_cont(spend, -0.1)", "between 0 and 1"),
    ("quantile_cont(spend, age)", "between 0 and 1"),  # a column, not a number
    ("percentile_cont(0.5) WITHIN GROUP (ORDER BY spend DESC)", "not supported"),
    ("quantile_disc(spend, 0.5)", "not supported"),
])
def test_quantiles_it_cannot_bound_are_refused_with_a_dp_reason(select, words):
    with pytest.raises(Refused) as refused:
        govern(f"SELECT {select} AS x FROM retailer.purchases", _context())
    assert any(r.startswith("dp:") and words in r for r in refused.value.reasons), refused.value.reasons


def test_the_bounding_sql_hands_over_one_grid_entry_per_person_with_a_clamped_total():
    """Per segment: a histogram of people's totals on the grid. `w` (800, clamped to 500) is in
    one segment only (m = 1); everyone else's total, a multiple of 30, is candidate total / 0.5,
    so bucket 2 * total / 0.5."""
    plan = govern("SELECT segment, COUNT(*) AS n, MEDIAN(spend) AS m FROM retailer.purchases GROUP BY segment",
                  _context())
    con = duckdb.connect()
    con.execute("CREATE TABLE cg_source (customer_id VARCHAR, segment VARCHAR, spend DOUBLE, age DOUBLE)")
    con.executemany("INSERT INTO cg_source VALUES (?, ?, ?, ?)", ROWS)
    add_unit_hash(con)
    con.execute("CREATE SCHEMA retailer")
    con.execute(f"CREATE VIEW retailer.purchases AS {plan.views[0].select_sql}")
    groups = {d: (n, h) for d, n, h in con.execute(plan.sql).fetchall()}
    assert sum(n for n, _ in groups.values()) == 11
    for segment, (people, histogram) in groups.items():
        expected = {int(4 * (i + 1) * 30): 1 for i in range(10) if "abc"[i % 3] == segment}
        assert histogram in (expected, {**expected, 2000: 1})
        assert sum(histogram.values()) == people


@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.37, 0.0, 1.0])
def test_scores_from_the_grid_histogram_equal_opendps_scores_of_the_totals(alpha):
    """The scores depend only on how each total compares with each candidate, so the histogram
    loses nothing: NoisyQuantile's scores from the SQL buckets equal OpenDP's scorer run on the
    totals themselves. Bounds with an awkward step, totals on candidates, between them, within
    rounding of them, and at both bounds."""
    bounds = (-50.0, 100.0 / 7)
    points = grid(bounds)
    totals = [bounds[0], bounds[1], points[1], points[500], points[999], points[3] + 1e-9, points[3] - 1e-12,
              (points[10] + points[11]) / 2, -49.99, 0.0, 12.3456, *points[::37], *points[::101]]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x DOUBLE)")
    con.executemany("INSERT INTO t VALUES (?)", [(v,) for v in totals])
    [(histogram,)] = con.execute(f"SELECT histogram({grid_bucket('x', bounds)}) FROM t").fetchall()
    quantile = dp_noise.noisy_quantile(DpAggregate("x", "quantile", bounds, alpha), 1.0)
    assert quantile.scores(histogram) == dp_noise._scorer(bounds, alpha)(totals)
    assert quantile.scores(None) == dp_noise._scorer(bounds, alpha)([])


def test_the_query_epsilon_is_shared_with_each_quantile_and_checked_by_opendp(monkeypatch):
    """count + sum + two quantiles: four equal shares of epsilon 3; a quantile's per-group
    measurement gets its share / m (a person is in at most m groups), and OpenDP's privacy map of
    the scorer chained with the noisy min, at one person, is within it."""
    plan = govern("SELECT segment, COUNT(*) AS n, SUM(spend) AS s, MEDIAN(spend) AS m, "
                  "quantile_cont(spend, 0.9) AS p FROM retailer.purchases GROUP BY segment", _context(max_groups=2)).dp
    given: list[float] = []
    real = dp_noise.noisy_quantile
    monkeypatch.setattr(dp_noise, "noisy_quantile", lambda aggregate, epsilon: given.append(epsilon) or real(aggregate, epsilon))
    histogram = {2 * i * 100: 100 for i in range(1, 6)}  # 500 people on 50, 100, ..., 250
    rows, _, noise = dp_noise.release(plan, [("a", 500, 75000.0, histogram, histogram)])
    assert given == [pytest.approx(3.0 / 4 / 2)] * 2
    for aggregate in plan.aggregates[2:]:
        quantile = real(aggregate, given[0])
        assert (dp_noise._scorer(aggregate.bounds, aggregate.quantile) >> quantile.select).map(1) <= given[0]
    assert noise["quantiles"]["m"]["grid_step"] == 500 / GRID_STEPS
    assert noise["quantiles"]["m"]["ci95_half_width"] == "no closed-form interval"
    assert rows and rows[0][3] in grid((0.0, 500.0)) and rows[0][4] in grid((0.0, 500.0))


def test_at_a_large_epsilon_the_noisy_median_is_the_true_one():
    """Epsilon 1000 for 500 people: the noisy min of the scores picks the best-scoring candidate."""
    quantile = dp_noise.noisy_quantile(DpAggregate("m", "quantile", (0.0, 500.0), 0.5), 1000.0)
    histogram = {2 * i * 100: 100 for i in range(1, 6)}  # 100 people on each of 50, 100, 150, 200, 250
    assert quantile(histogram) == 150.0
