"""Access mode dp through the real service, CLI and store (SQLite and PostgreSQL): OpenDP noise,
contribution bounding, partition selection, and a budget spent atomically with its ledger
entry and refused once exhausted, never refreshed."""

from __future__ import annotations

import json

import pytest

from .data import agreement, write_purchases, write_yaml

PURPOSE = "analytics.reporting"
PEOPLE = 900  # 300 per segment, 2 rows each; spend is (i*7+j) % 50 + 0.5


def _dp_agreement(epsilon=2.0, per_query=1.0, **extra):
    doc = agreement(mode="dp", k=5)
    doc["access"] = {"mode": "dp", "min_group_size": 5, "epsilon": epsilon, "epsilon_per_query": per_query,
                     "delta": 1e-6, "max_groups_per_subject": 1, "bounds": {"spend": [0, 100]}, **extra}
    return doc


@pytest.fixture
def dp_store(cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in", people=PEOPLE, rows_each=2)
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    made = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "dp.yaml", _dp_agreement()), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])
    return cli, made["id"]


def _query(cli, sql, expect=0):
    return cli("query", "--as", "brand", "--purpose", PURPOSE, "--json", sql, expect=expect)[1]


def _truth(segment: str) -> tuple[int, float]:
    people = [i for i in range(PEOPLE) if ["a", "b", "c"][i % 3] == segment]
    return len(people), sum(min(max(sum((i * 7 + j) % 50 + 0.5 for j in range(2)), 0), 100) for i in people)


def test_noisy_groups_with_error_bars_and_the_budget_left(dp_store):
    cli, agreement_id = dp_store
    out = _query(cli, "SELECT segment, COUNT(*) AS people, SUM(spend) AS spend FROM retailer.purchases GROUP BY segment")
    assert out["dp"]["epsilon_spent"] == 1.0 and out["dp"]["epsilon_left"] == 1.0
    bars = out["dp"]["ci95_half_width"]
    rows = {r[0]: r for r in out["rows"]}
    assert [r[0] for r in out["rows"]] == ["a", "b", "c"]  # released groups in the order of their labels
    for segment, (_, people, spend) in rows.items():
        true_people, true_spend = _truth(segment)
        # Four 95% half-widths: a wrong answer would be off by far more; noise this far out is ~1e-5 likely.
        assert abs(people - true_people) <= 4 * bars["people"]
        assert abs(spend - true_spend) <= 4 * bars["spend"]
    assert any(people != _truth(s)[0] for s, (_, people, _) in rows.items()) or any(
        spend != _truth(s)[1] for s, (_, _, spend) in rows.items()), "no noise was added"
    budget = cli("agreement", "budget", "--as", "brand", agreement_id, "--json")[1]
    assert budget["recipients"]["brand"]["epsilon_spent"] == 1.0 and budget["recipients"]["brand"]["epsilon_left"] == 1.0


def test_the_querier_chooses_a_smaller_epsilon_and_gets_wider_error_bars(dp_store):
    cli, agreement_id = dp_store
    sql = "SELECT segment, COUNT(*) AS people FROM retailer.purchases GROUP BY segment"
    full = _query(cli, sql)
    quarter = cli("query", "--as", "brand", "--purpose", PURPOSE, "--epsilon", "0.25", "--json", sql)[1]
    assert quarter["dp"]["epsilon_spent"] == 0.25 and quarter["dp"]["epsilon_left"] == 0.75
    assert quarter["dp"]["ci95_half_width"]["people"] == pytest.approx(4 * full["dp"]["ci95_half_width"]["people"])
    # More than the agreement allows per query, or an epsilon on data that is not dp: refused, nothing spent.
    over = cli("query", "--as", "brand", "--purpose", PURPOSE, "--epsilon", "1.5", "--json", sql, expect=3)[1]
    assert over["reasons"] == ["dp: epsilon 1.5 asked; this agreement allows more than 0 and at most 1 per query"]
    budget = cli("agreement", "budget", "--as", "brand", agreement_id, "--json")[1]
    assert budget["recipients"]["brand"]["epsilon_left"] == 0.75


def test_the_budget_runs_out_and_is_not_refreshed(dp_store):
    cli, agreement_id = dp_store
    _query(cli, "SELECT COUNT(*) AS n FROM retailer.purchases")
    _, _, text = cli("query", "--as", "brand", "--purpose", PURPOSE, "SELECT AVG(spend) AS mean FROM retailer.purchases")
    assert "differentially private: epsilon 1 spent, 0 of 2 left; 95% interval" in text  # what a person reads
    refused = _query(cli, "SELECT COUNT(*) AS n FROM retailer.purchases", expect=3)
    assert refused["reasons"][0].startswith("budget:") and "not refreshed" in refused["reasons"][0]
    budget = cli("agreement", "budget", "--as", "retailer", agreement_id, "--json")[1]
    assert budget["recipients"]["brand"]["epsilon_left"] == 0.0
    entries = [json.loads(e) for e in [json.dumps(x) for x in cli("audit", "log", "--json")[1]]]
    spends = [e for e in entries if e.get("event") == "privacy_spend"]
    assert [s["epsilon"] for s in spends] == [1.0, 1.0] and spends[-1]["epsilon_left"] == 0.0
    assert any(e.get("event") == "query" and e.get("allowed") is False and e["reasons"][0].startswith("budget:")
               for e in entries)


def test_dp_refuses_what_it_cannot_bound(dp_store):
    cli, _ = dp_store
    reasons = _query(cli, "SELECT segment, MAX(spend) FROM retailer.purchases GROUP BY segment", expect=3)["reasons"]
    assert any(r.startswith("dp:") and "MAX" in r for r in reasons)
    reasons = _query(cli, "SELECT SUM(age) FROM retailer.purchases", expect=3)["reasons"]
    assert any(r.startswith("dp:") and "bounds" in r for r in reasons)
    reasons = _query(cli, "SELECT segment, COUNT(*) FROM retailer.purchases GROUP BY segment ORDER BY 2 LIMIT 1",
                     expect=3)["reasons"]
    assert any(r.startswith("dp:") for r in reasons)
    # A refusal spends nothing.
    assert _query(cli, "SELECT COUNT(*) AS n FROM retailer.purchases")["dp"]["epsilon_left"] == 1.0


def test_partition_selection_hides_a_one_person_group(cli, tmp_path):
    """A segment only one person is in never appears: its noisy count stays under the threshold."""
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in", people=600, rows_each=1)
    lines = data.read_text().splitlines()
    lines.append("Z0001,z@example.org,10001,44,lonely,10.5")
    data.write_text("\n".join(lines) + "\n")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    made = cli("agreement", "propose", "--as", "retailer",
               write_yaml(tmp_path / "dp.yaml", _dp_agreement(epsilon=10.0, per_query=5.0)), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])
    out = _query(cli, "SELECT segment, COUNT(*) AS n FROM retailer.purchases GROUP BY segment")
    assert {r[0] for r in out["rows"]} == {"a", "b", "c"}
    assert out["suppressed_groups"] == 1 and out["dp"]["partition_threshold"] > 1


def test_bad_dp_terms_are_bad_input(cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    for bad in (_dp_agreement(epsilon=50), _dp_agreement(per_query=5.0), _dp_agreement(bounds={"spend": [5, 1]})):
        _, out, _ = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "bad.yaml", bad), "--json",
                        expect=2)
    plain = agreement(mode="aggregate")
    plain["access"]["epsilon"] = 1.0
    cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "bad2.yaml", plain), "--json", expect=2)
