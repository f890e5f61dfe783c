"""Noisy medians through the CLI, service and store: the answer is a candidate of the stated
grid near the people's true median, and the query spends exactly the per-query epsilon the
budget shows (the quantile shares it with the count; it is not spent on top)."""

from __future__ import annotations

import statistics

from .data import agreement, write_purchases, write_yaml

PURPOSE = "analytics.reporting"
PEOPLE = 900  # 300 per segment, 2 rows each; spend is (i*7+j) % 50 + 0.5, so a person's total is 1..99


def _totals(segment: str) -> list[float]:
    return sorted(sum((i * 7 + j) % 50 + 0.5 for j in range(2)) for i in range(PEOPLE) if "abc"[i % 3] == segment)


def test_a_noisy_median_per_group_lands_near_the_true_one_and_spends_the_query_epsilon(cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in", people=PEOPLE, rows_each=2)
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    doc = agreement(mode="dp", k=5)
    doc["access"] = {"mode": "dp", "min_group_size": 5, "epsilon": 20.0, "epsilon_per_query": 10.0, "delta": 1e-6,
                     "max_groups_per_subject": 1, "bounds": {"spend": [0, 100]}}
    made = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "dp.yaml", doc), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])

    out = cli("query", "--as", "brand", "--purpose", PURPOSE, "--json",
              "SELECT segment, COUNT(*) AS n, MEDIAN(spend) AS med FROM retailer.purchases GROUP BY segment")[1]
    note = out["dp"]["quantiles"]["med"]
    assert note["grid_step"] == 0.1 and note["candidates"] == 1001 and note["ci95_half_width"] == "no closed-form interval"
    rows = {r[0]: r[2] for r in out["rows"]}
    assert set(rows) == {"a", "b", "c"}
    for segment, median in rows.items():
        totals = _totals(segment)
        assert abs(median / note["grid_step"] - round(median / note["grid_step"])) < 1e-6  # a grid candidate
        # Epsilon 5 for 300 people: the mechanism picks a candidate whose rank is 20% off the
        # median with probability ~1001 exp(-5 * 30 / 2), so between the 40th and 60th percentiles.
        assert totals[len(totals) * 2 // 5] <= median <= totals[len(totals) * 3 // 5], (median, statistics.median(totals))

    assert out["dp"]["epsilon_spent"] == 10.0 and out["dp"]["epsilon_left"] == 10.0
    budget = cli("agreement", "budget", "--as", "brand", made["id"], "--json")[1]["recipients"]["brand"]
    assert budget["epsilon_spent"] == 10.0 and budget["epsilon_left"] == 10.0
    spends = [e for e in cli("audit", "log", "--json")[1] if e.get("event") == "privacy_spend"]
    assert [s["epsilon"] for s in spends] == [10.0]
    # What a person reads: the quantile is a grid point, with no interval claimed for it.
    text = cli("query", "--as", "brand", "--purpose", PURPOSE,
               "SELECT segment, MEDIAN(spend) AS med FROM retailer.purchases GROUP BY segment")[2]
    assert "med: one of 1001 grid points 0.1 apart" in text and "no closed-form interval" in text
