"""Seeded noise in threshold modes (policy/noise.py, adapters/threshold_noise.py): the agreement
format, what the governor refuses under it, and that the engine's noise depends on what is
released (aggregate, group, people) and not on how the query is worded."""

from __future__ import annotations

import statistics

import duckdb
import pytest

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.adapters.threshold_noise import draw
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.errors import BadInput, Refused
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.differencing import CELLS, Sketch
from commonground.policy.governor import govern

P = "retailer.purchases"
SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                      "segment": {"type": "string", "role": "attribute"},
                      "age": {"type": "integer", "role": "attribute"},
                      "spend": {"type": "double", "role": "sensitive"}}}


def _terms(noise):
    return parse_agreement({
        "name": "n", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics.reporting"],
        "valid_until": "2099-12-31", "access": {"mode": "aggregate", "min_group_size": 5, "noise": noise},
        "datasets": {P: {"fields": {"customer_id": "hash", "segment": "raw", "age": "raw", "spend": "raw"}}}})


def _context(noise=None) -> QueryContext:
    state = AgreementState("agn", 1, _terms(noise or {"count": 2, "sum": {"spend": 50}}), AgreementStatus.ACTIVE,
                           frozenset({"retailer", "brand"}), b"k" * 32)
    return QueryContext("brand", "analytics.reporting", {P: TableInfo("retailer", "purchases", parse_schema(SCHEMA), 200, 2)},
                        (state,))


@pytest.mark.parametrize("noise, message", [
    ({"sum": {"spend": 5}}, "access.noise.count is required"),
    ({"count": 0}, "must be a number > 0"),
    ({"count": True}, "must be a number > 0"),
    ({"count": 1, "sum": {"email": 3}}, "not fields the agreement shows"),
    ({"count": 1, "sum": [1]}, "access.noise.sum must map"),
    ({"count": 1, "avg": {}}, "access.noise must be a mapping"),
])
def test_bad_noise_terms_say_what_is_wrong(noise, message):
    with pytest.raises(BadInput, match=message):
        _terms(noise)


def test_noise_is_for_threshold_modes_only():
    doc = {"name": "n", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics"],
           "valid_until": "2099-12-31", "datasets": {P: {"fields": {"customer_id": "hash", "spend": "raw"}}},
           "access": {"mode": "rows", "min_group_size": 5, "noise": {"count": 1}}}
    with pytest.raises(BadInput, match="access modes aggregate and join"):
        parse_agreement(doc)
    assert _terms({"count": 2, "sum": {"spend": 50}}).to_dict()["access"]["noise"] == {"count": 2.0, "sum": {"spend": 50.0}}


@pytest.mark.parametrize("sql, reason", [
    (f"SELECT MAX(spend) FROM {P}", "is not a bare COUNT, SUM or AVG"),
    (f"SELECT SUM(spend) / COUNT(*) FROM {P}", "is not a bare COUNT, SUM or AVG"),
    (f"SELECT segment, COUNT(*) FROM {P} GROUP BY 1 HAVING SUM(spend) > 10", "HAVING would filter on the true values"),
    (f"SELECT SUM(age) FROM {P}", "sums no field the agreement gives a noise scale for"),
])
def test_values_the_noise_would_not_cover_are_refused(sql, reason):
    with pytest.raises(Refused) as refused:
        govern(sql, _context())
    assert refused.value.reasons[0].startswith("noise:") and reason in refused.value.reasons[0]


def _names(sql: str) -> list[tuple[str, str, float]]:
    [block] = govern(sql, _context()).noise
    return sorted((v.seed_name, v.count_seed_name, v.scale) for v in block.values)


def test_rewording_keeps_the_canonical_names_and_other_expressions_change_them():
    plain = _names(f"SELECT COUNT(*) AS n, SUM(spend) AS s FROM {P}")
    for reworded in (f"SELECT SUM(p.spend) total, COUNT(1) c FROM {P} p WHERE 1 = 1",
                     f"WITH t AS (SELECT spend AS v FROM {P}) SELECT COUNT(*), SUM(v) FROM t",
                     f"SELECT COUNT(*), SUM((spend)) FROM (SELECT * FROM {P}) AS d"):
        assert _names(reworded) == plain
    assert _names(f"SELECT COUNT(*), SUM(CASE WHEN spend < 900 THEN spend ELSE 0 END) FROM {P}") != plain
    per_person = f"WITH t AS (SELECT customer_id, SUM(spend) s FROM {P} GROUP BY customer_id) SELECT SUM(s) FROM t"
    assert _names(per_person) != _names(f"SELECT SUM(spend) FROM {P}")
    [(avg_sum, avg_count, scale)] = _names(f"SELECT AVG(spend) FROM {P}")
    assert (avg_sum, scale) == ("SUM(\"retailer\".\"purchases\".\"spend\")", 50.0) and avg_count.startswith("COUNT(")


def _empty(rows: int = 0) -> Sketch:
    return Sketch((rows,) + (0,) * (CELLS - 1), (0,) * CELLS, (0,) * CELLS)


def test_a_draw_is_fixed_by_key_name_group_and_people_and_laplace_distributed():
    assert draw(b"k", "COUNT(*)", "[]", _empty(3), 2.0) == draw(b"k", "COUNT(*)", "[]", _empty(3), 2.0)
    first = draw(b"k", "COUNT(*)", "[]", _empty(3), 2.0)
    assert len({first, draw(b"other", "COUNT(*)", "[]", _empty(3), 2.0), draw(b"k", "SUM(x)", "[]", _empty(3), 2.0),
                draw(b"k", "COUNT(*)", '["a"]', _empty(3), 2.0), draw(b"k", "COUNT(*)", "[]", _empty(4), 2.0)}) == 5
    # Laplace(0, b): mean 0, mean absolute value b.
    draws = [draw(b"k", "COUNT(*)", "[]", _empty(n), 2.0) for n in range(4000)]
    assert abs(statistics.mean(draws)) < 0.15 and statistics.mean(abs(d) for d in draws) == pytest.approx(2.0, rel=0.08)


def _run(sql: str, data) -> tuple[list, dict]:
    result = DuckDBEngine(threads=1).run(govern(sql, _context()), {P: data})
    return result.rows, result.noise


def test_the_engine_returns_the_same_noise_for_the_same_people_and_new_noise_for_others(tmp_path):
    data, fewer = tmp_path / "p.parquet", tmp_path / "fewer.parquet"
    rows = ("SELECT 'C' || (i % 60) AS customer_id, ['a','b','c'][i % 3 + 1] AS segment, 30 AS age, "
            "(i % 50) + 0.5 AS spend FROM range({n}) t(i)")
    duckdb.execute(f"COPY ({rows.format(n=120)}) TO '{data}' (FORMAT parquet)")
    duckdb.execute(f"COPY ({rows.format(n=119)}) TO '{fewer}' (FORMAT parquet)")
    query = f"SELECT segment, COUNT(*) AS n, SUM(spend) AS s, AVG(spend) AS a FROM {P} GROUP BY segment ORDER BY segment"
    answer, noise = _run(query, data)
    assert noise["scales"] == {"n": {"count": 2.0}, "s": {"sum": 50.0}, "a": {"sum": 50.0, "count": 2.0}}
    assert "not differential privacy" in noise["mechanism"]
    truth = duckdb.execute(f"SELECT segment, COUNT(*), SUM(spend), AVG(spend) FROM '{data}' GROUP BY 1 ORDER BY 1").fetchall()
    assert [r[2] for r in answer] != [r[2] for r in truth]  # noisy
    reworded = f"SELECT AVG(spend) AS a, segment, SUM(spend) AS s, COUNT(1) AS n FROM {P} WHERE spend = spend GROUP BY 2 ORDER BY 2"
    again, _ = _run(reworded, data)
    assert [[r[1], r[3], r[2], r[0]] for r in again] == answer
    # One row fewer, in segment c only: a and b keep their noise, c draws new noise.
    other, _ = _run(query, fewer)
    assert other[:2] == answer[:2] and other[2][1:] != answer[2][1:]
