"""The red-team suite (issue 11): attacks on the clean room, each written out as the queries an
attacker would send, run through the real CLI, service, engine and store (SQLite and
PostgreSQL), each asserting its measured outcome. docs/threat-model.md lists them in a table:
attack -> defence -> outcome -> test id.

The data: 60 ordinary customers C0000..C0059 (2 rows each, segments a/b/c, zip 100xx, spend
< 50) and one target, C9999: one `caviar` row and one segment-a row with spend 999.5, zip
99901, age 95. k = 5. Every attack tries to learn something about C9999 alone.

Outcomes: `ok` (answered; the attack gains nothing this shows), `refused:<rule>` (exit 3 with a
reason from that rule), `suppressed` (answered, the target's group withheld), `bad_input`.
"""

from __future__ import annotations

import pytest

from .data import PURCHASES_SCHEMA, agreement, write_yaml

PURPOSE = "analytics.reporting"
DP_PURPOSE = "analytics"
NOISE_PURPOSE = "marketing"  # a threshold agreement with seeded noise (access.noise)
P = "retailer.purchases"
NOT_CAVIAR = f"SELECT COUNT(*) AS n, SUM(spend) AS s FROM {P} WHERE segment <> 'caviar'"
ALL = f"SELECT COUNT(*) AS n, SUM(spend) AS s FROM {P}"
PER_PERSON = f"WITH t AS (SELECT customer_id, SUM(spend) s FROM {P} GROUP BY customer_id) SELECT COUNT(*), AVG(s) FROM t"

# name -> [(sql, expected outcome), ...] run in order by one fresh recipient.
ATTACKS: dict[str, list[tuple[str, str]]] = {
    # -- differencing across queries (history of released groups) -------------------------------
    "differencing-not-filter": [(ALL, "ok"), (NOT_CAVIAR, "refused:differencing:")],
    "differencing-complement-first": [(NOT_CAVIAR, "ok"), (ALL, "refused:differencing:")],
    "differencing-outlier-removed": [(ALL, "ok"), (f"SELECT COUNT(*), SUM(spend) FROM {P} WHERE spend < 900",
                                                    "refused:differencing:")],
    "differencing-tracker-in-list": [
        (f"SELECT COUNT(*) FROM {P} WHERE segment IN ('a', 'caviar')", "ok"),
        (f"SELECT COUNT(*) FROM {P} WHERE segment = 'a'", "refused:differencing:")],
    "differencing-tracker-or": [
        (f"SELECT COUNT(*) FROM {P} WHERE segment = 'b' OR spend > 900", "ok"),
        (f"SELECT COUNT(*) FROM {P} WHERE segment = 'b'", "refused:differencing:")],
    "differencing-group-vs-total": [
        (f"SELECT segment, COUNT(*) FROM {P} GROUP BY segment", "suppressed"), (ALL, "refused:differencing:")],
    "differencing-total-vs-groups": [
        (ALL, "ok"), (f"SELECT segment, COUNT(*) FROM {P} GROUP BY segment", "refused:differencing:")],
    "differencing-having-drops-one": [
        (f"SELECT segment, COUNT(*) FROM {P} WHERE segment <> 'caviar' GROUP BY segment", "ok"),
        (ALL, "refused:differencing:")],
    "differencing-cte-wrapped": [
        (ALL, "ok"), (f"WITH t AS (SELECT spend FROM {P} WHERE spend < 900) SELECT COUNT(*), SUM(spend) FROM t",
                      "refused:differencing:")],
    "differencing-inner-per-person": [
        (PER_PERSON, "ok"),
        (f"WITH t AS (SELECT customer_id, SUM(spend) s FROM {P} WHERE spend < 900 GROUP BY customer_id) "
         "SELECT COUNT(*), AVG(s) FROM t", "refused:differencing:")],
    "differencing-inner-per-person-having": [
        (PER_PERSON, "ok"),
        (f"WITH t AS (SELECT customer_id, SUM(spend) s FROM {P} GROUP BY customer_id HAVING SUM(spend) < 900) "
         "SELECT COUNT(*), AVG(s) FROM t", "refused:differencing:")],
    "differencing-inner-per-person-count": [  # one row of the target dropped, per-person row counts
        (f"WITH t AS (SELECT customer_id, COUNT(*) c FROM {P} GROUP BY customer_id) SELECT SUM(c) FROM t", "ok"),
        (f"WITH t AS (SELECT customer_id, COUNT(*) c FROM {P} WHERE spend < 900 GROUP BY customer_id) "
         "SELECT SUM(c) FROM t", "refused:differencing:")],
    "differencing-inner-two-levels": [  # per-person, then per-person again, then the aggregate
        (PER_PERSON, "ok"),
        (f"WITH t AS (SELECT customer_id, SUM(spend) s FROM {P} WHERE spend < 900 GROUP BY customer_id), "
         "u AS (SELECT customer_id, MAX(s) s FROM t GROUP BY customer_id) SELECT COUNT(*), AVG(s) FROM u",
         "refused:differencing:")],
    "differencing-inner-union-padding": [  # the per-person CTE wrapped in a UNION ALL with an empty branch
        (PER_PERSON, "ok"),
        (f"WITH t AS (SELECT customer_id, SUM(spend) s FROM {P} WHERE spend < 900 GROUP BY customer_id "
         f"UNION ALL SELECT customer_id, SUM(spend) FROM {P} WHERE spend < 0 GROUP BY customer_id) "
         "SELECT COUNT(*), AVG(s) FROM t", "refused:differencing:")],
    "differencing-inner-distinct": [  # DISTINCT per person instead of GROUP BY: the row set itself changes
        (f"WITH t AS (SELECT DISTINCT customer_id, segment FROM {P}) SELECT COUNT(*) FROM t", "ok"),
        (f"WITH t AS (SELECT DISTINCT customer_id, segment FROM {P} WHERE spend < 900) SELECT COUNT(*) FROM t",
         "refused:differencing:")],
    # Value-level differencing: the same rows and people, only a value changed. Open in threshold
    # mode (the sketch sees who is behind a group, not what they contribute); dp mode stops it.
    "value-sum-case": [(f"SELECT SUM(spend) AS s FROM {P}", "ok"),
                       (f"SELECT SUM(CASE WHEN spend < 900 THEN spend ELSE 0 END) AS s FROM {P}", "ok")],
    "value-avg-case": [(f"SELECT AVG(spend) AS s FROM {P}", "ok"),
                       (f"SELECT AVG(CASE WHEN spend < 900 THEN spend ELSE 0 END) AS s FROM {P}", "ok")],
    "value-max": [(f"SELECT MAX(spend) AS s FROM {P}", "ok"),
                  (f"SELECT MAX(CASE WHEN spend < 900 THEN spend ELSE 0 END) AS s FROM {P}", "ok")],
    "value-inner-per-person": [
        (PER_PERSON, "ok"),
        (f"WITH t AS (SELECT customer_id, SUM(CASE WHEN spend < 900 THEN spend ELSE 0 END) s FROM {P} "
         "GROUP BY customer_id) SELECT COUNT(*), AVG(s) FROM t", "ok")],
    "repeat-same-query": [(ALL, "ok"), (ALL, "ok")],  # no new information: allowed, same answer
    "distinct-groups-pass": [(f"SELECT segment, COUNT(*) FROM {P} WHERE segment = 'b' GROUP BY segment", "ok"),
                             (f"SELECT segment, COUNT(*) FROM {P} WHERE segment = 'c' GROUP BY segment", "ok")],
    # -- differencing inside one query --------------------------------------------------------
    "union-total-beside-groups": [
        (f"SELECT 'all' g, COUNT(*) n FROM {P} UNION ALL SELECT segment, COUNT(*) FROM {P} GROUP BY segment",
         "refused:differencing:")],
    "union-with-and-without-target": [
        (f"SELECT 'x' g, COUNT(*) n FROM {P} UNION ALL SELECT 'y', COUNT(*) FROM {P} WHERE spend < 900",
         "refused:differencing:")],
    # -- small groups and singling out --------------------------------------------------------
    "small-group": [(f"SELECT segment, COUNT(*) FROM {P} GROUP BY segment", "suppressed")],
    "group-by-subject": [(f"SELECT customer_id, COUNT(*) FROM {P} GROUP BY customer_id", "refused:identifiers:")],
    "subject-literal": [(f"SELECT COUNT(*) FROM {P} WHERE customer_id = 'C9999'", "refused:identifiers:")],
    "quasi-identifier-literal": [(f"SELECT COUNT(*), SUM(spend) FROM {P} WHERE zip = '999'", "refused:filters:")],
    "quasi-identifier-in-list": [(f"SELECT COUNT(*) FROM {P} WHERE age IN (90, 95)", "refused:filters:")],
    "quasi-identifier-between": [(f"SELECT SUM(spend) FROM {P} WHERE age BETWEEN 90 AND 99", "refused:filters:")],
    "quasi-identifier-like": [(f"SELECT COUNT(*) FROM {P} WHERE zip LIKE '99%'", "refused:filters:")],
    "quasi-identifier-function": [(f"SELECT COUNT(*) FROM {P} WHERE CAST(age AS INTEGER) + 1 > 95",
                                   "refused:filters:")],
    "quasi-identifier-case-probe": [(f"SELECT segment, SUM(CASE WHEN age >= 90 THEN spend END) FROM {P} GROUP BY 1",
                                     "refused:filters:")],
    # -- outliers through picking aggregates and ordering -------------------------------------
    "outlier-order-by-limit": [(f"SELECT spend FROM {P} ORDER BY spend DESC LIMIT 1", "refused:aggregate only:")],
    "outlier-min-subject": [(f"SELECT MAX(customer_id) FROM {P}", "refused:aggregates:")],
    "outlier-string-agg": [(f"SELECT STRING_AGG(segment, ',') FROM {P}", "refused:aggregates:")],
    "rollup-subtotals": [(f"SELECT segment, COUNT(*) FROM {P} GROUP BY ROLLUP (segment)", "refused:GROUP BY:")],
    "window-per-row": [(f"SELECT segment, COUNT(*) OVER () FROM {P}", "refused:window functions:")],
    # -- joins against crafted tables -----------------------------------------------------------
    "join-crafted-one-person-table": [
        (f"SELECT t.tier, COUNT(*), SUM(p.spend) FROM {P} p JOIN brand.target t ON p.customer_id = t.customer_id "
         "GROUP BY t.tier", "suppressed")],
    "join-crafted-padding": [
        (f"SELECT COUNT(*), SUM(p.spend) FROM {P} p JOIN brand.target t ON p.customer_id = t.customer_id",
         "suppressed")],
    "join-quasi-identifier-to-own-column": [
        (f"SELECT COUNT(*) FROM {P} p JOIN brand.target t ON p.customer_id = t.customer_id WHERE p.zip = t.tier",
         "refused:filters:")],
    # -- the engine and the SQL surface -------------------------------------------------------
    "read-files": [("SELECT * FROM read_csv('/etc/passwd')", "refused:allow-list:")],
    "two-statements": [(f"SELECT COUNT(*) FROM {P}; SELECT 1", "refused:read-only:")],
    "error-quotes-value": [(f"SELECT segment, SUM(CAST(zip AS INTEGER) * 9223372036854775807) FROM {P} GROUP BY 1",
                            "bad_input")],
    # -- differential privacy (a dp agreement under purpose `analytics`) ------------------------
    "dp-averaging-repeated-queries": [(f"SELECT COUNT(*) AS n FROM {P}", "dp"), (f"SELECT COUNT(*) AS n FROM {P}", "dp"),
                                      (f"SELECT COUNT(*) AS n FROM {P}", "refused:budget:")],
    "dp-max-outlier": [(f"SELECT MAX(spend) FROM {P}", "refused:dp:")],
    "dp-unbounded-sum": [(f"SELECT SUM(age) FROM {P}", "refused:dp:")],
    "dp-one-person-partition": [(f"SELECT segment, COUNT(*) AS n FROM {P} GROUP BY segment", "dp-hidden")],
    "dp-order-limit": [(f"SELECT segment, COUNT(*) FROM {P} GROUP BY 1 ORDER BY 2 DESC LIMIT 1", "refused:dp:")],
    # -- seeded noise (a threshold agreement with access.noise under purpose `marketing`) ----------
    "noise-repeat-same-query": [(ALL, "noisy"), (ALL, "noisy")],
    "noise-averaging-rephrased": [  # the same aggregates over the same people: the same noise each time
        (ALL, "noisy"), (f"{ALL} WHERE 1=1", "noisy"), (f"{ALL} WHERE spend = spend", "noisy"),
        (f"SELECT SUM(p.spend) AS s, COUNT(*) AS n FROM {P} AS p WHERE segment = segment", "noisy"),
        (f"WITH t AS (SELECT spend AS v FROM {P}) SELECT COUNT(*) AS n, SUM(v) AS s FROM t", "noisy")],
    "noise-averaging-count-constants": [  # COUNT(1), COUNT(2), ... are one count: one draw
        (f"SELECT COUNT(1) AS n FROM {P}", "noisy"), (f"SELECT COUNT(2) AS n FROM {P}", "noisy"),
        (f"SELECT COUNT(*) AS n FROM {P}", "noisy")],
    "noise-max-uncovered": [(f"SELECT MAX(spend) FROM {P}", "refused:noise:")],
    "noise-having-true-values": [(f"SELECT segment, COUNT(*) FROM {P} GROUP BY 1 HAVING SUM(spend) > 1000",
                                  "refused:noise:")],
    "noise-expression-over-aggregates": [(f"SELECT SUM(spend) / COUNT(*) FROM {P}", "refused:noise:")],
    # Open, measured: a different expression is a fresh draw, so value-level differencing yields
    # the target's value plus the difference of two Laplace(50) draws, not the value itself.
    "noise-value-sum-case": [(f"SELECT SUM(spend) AS s FROM {P}", "noisy"),
                             (f"SELECT SUM(CASE WHEN spend < 900 THEN spend ELSE 0 END) AS s FROM {P}", "noisy")],
}


def _write_data(folder):
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["customer_id,email,zip,age,segment,spend"]
    for i in range(60):
        for j in range(2):
            lines.append(f"C{i:04d},p{i}@example.org,{10000 + i % 7},{20 + i % 40},{'abc'[i % 3]},{(i * 7 + j) % 50}.5")
    lines += ["C9999,t@example.org,99901,95,caviar,120.5", "C9999,t@example.org,99901,95,a,999.5"]
    (folder / "p.csv").write_text("\n".join(lines) + "\n")
    (folder / "target.csv").write_text("customer_id,tier\nC9999,x\n" + "C9999,x\n" * 29)
    write_yaml(folder / "p.yaml", PURCHASES_SCHEMA)
    write_yaml(folder / "t.yaml", {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                                              "tier": {"type": "string", "role": "attribute"}}})


@pytest.fixture
def arena(cli, tmp_path):
    _write_data(tmp_path / "in")
    for party in ("retailer", "brand"):
        cli("party", "add", party)
    cli("dataset", "add", "--as", "retailer", "purchases", tmp_path / "in/p.csv", "--schema", tmp_path / "in/p.yaml")
    cli("dataset", "add", "--as", "brand", "target", tmp_path / "in/target.csv", "--schema", tmp_path / "in/t.yaml")
    threshold = agreement(mode="join", k=5)
    noisy = agreement(mode="join", k=5)
    noisy.update(name="syrup-noise", purposes=[NOISE_PURPOSE])
    noisy["access"]["noise"] = {"count": 2, "sum": {"spend": 50}}
    dp = agreement(mode="dp", k=5)
    dp["purposes"] = [DP_PURPOSE]
    dp["name"] = "syrup-dp"
    dp["access"] = {"mode": "dp", "min_group_size": 5, "epsilon": 2.0, "epsilon_per_query": 1.0, "delta": 1e-6,
                    "bounds": {"spend": [0, 100]}}
    for name, doc in (("threshold", threshold), ("dp", dp), ("noise", noisy)):
        made = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / f"{name}.yaml", doc), "--json")[1]
        cli("agreement", "accept", "--as", "brand", made["id"])
    return cli


def _outcome(cli, sql: str, purpose: str) -> tuple[str, dict]:
    code, out, _ = cli("query", "--as", "brand", "--purpose", purpose, "--json", sql, expect=None)
    if code == 3:
        return "refused:" + out["reasons"][0].split(":")[0] + ":", out
    if code == 2:
        return "bad_input", out or {}
    assert code == 0, (code, out)
    if "dp" in out:
        return "dp", out
    if "noise" in out:
        return ("suppressed" if out["suppressed_groups"] else "noisy"), out
    return ("suppressed" if out["suppressed_groups"] else "ok"), out


# Open value-level attacks (docs/threat-model.md): the target's 999.5 row, learnt from the last
# column of the first row of the two answers. 122 rows, 61 people.
TARGET_SPEND = 999.5
LEAKS = {
    "value-sum-case": lambda first, second: first - second,
    "value-avg-case": lambda first, second: (first - second) * 122,
    "value-max": lambda first, second: first,
    "value-inner-per-person": lambda first, second: (first - second) * 61,
}

@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack(arena, attack):
    cli = arena
    purpose = {"dp": DP_PURPOSE, "noise": NOISE_PURPOSE}.get(attack.split("-")[0], PURPOSE)
    answers, outputs = [], []
    for sql, expected in ATTACKS[attack]:
        got, out = _outcome(cli, sql, purpose)
        if expected == "dp-hidden":
            assert got == "dp" and "caviar" not in {r[0] for r in out["rows"]} and out["dp"]["partition_threshold"] > 1
            continue
        if expected.startswith("refused:"):
            assert got == expected, (sql, got, out)
        else:
            assert got == expected, (sql, got, out)
        answers.append(out.get("rows"))
        outputs.append(out)
    if attack in ("repeat-same-query", "noise-repeat-same-query", "noise-averaging-count-constants"):
        assert all(answer == answers[0] for answer in answers)
    if attack == "noise-averaging-rephrased":  # by column name: one query lists them the other way round
        values = [dict(zip(out["columns"], out["rows"][0])) for out in outputs]
        assert all(v == values[0] for v in values)  # one draw, however often and however worded
    if attack == "noise-value-sum-case":
        first, second = (answer[0][0] for answer in answers)
        assert first - second != pytest.approx(TARGET_SPEND, abs=0.01)
    if attack in LEAKS:  # the open attacks: what the two answers give away about the target
        assert LEAKS[attack](answers[0][0][-1], answers[1][0][-1]) == pytest.approx(TARGET_SPEND)
    if attack in ("small-group", "join-crafted-one-person-table", "join-crafted-padding"):
        assert not any("caviar" in map(str, row) for row in answers[-1] or [])


def test_noisy_results_say_so_in_the_human_output(arena):
    _, _, text = arena("query", "--as", "brand", "--purpose", NOISE_PURPOSE, ALL)
    assert "seeded Laplace perturbation (not differential privacy), Laplace scale: n (count 2), s (sum 50)" in text
