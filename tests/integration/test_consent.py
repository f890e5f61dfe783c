"""Consent is enforced inside every query, at the moment it runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import yaml

from .data import PURCHASES_SCHEMA, agreement, write_purchases, write_yaml

Q = "SELECT COUNT(DISTINCT customer_id) AS people FROM retailer.purchases"


@pytest.fixture(params=["opt_in", "opt_out"])
def gated(request, cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in", people=60)
    schema.write_text(yaml.safe_dump({**PURCHASES_SCHEMA, "consent": request.param,
                                      "consent_purposes": ["analytics.reporting"]}))
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    made = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", agreement(k=5)), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])
    return cli, tmp_path, request.param


def _people(cli, party="brand", purpose="analytics.reporting"):
    return cli("query", "--as", party, "--purpose", purpose, "--json", Q)[1]["rows"]


def test_consent_gates_queries_and_withdrawal_is_immediate(gated):
    cli, tmp_path, mode = gated
    expected = [] if mode == "opt_in" else [[60]]  # opt-in: nobody has granted yet
    assert _people(cli) == expected
    consents = tmp_path / "consents.csv"
    consents.write_text("subject_id,purpose,status\n" + "".join(
        f"C{i:04d},analytics.reporting,{'granted' if mode == 'opt_in' else 'withdrawn'}\n" for i in range(20)))
    _, imported, _ = cli("consent", "import", "--as", "retailer", "--dataset", "retailer.purchases", consents, "--json")
    assert imported["records"] == 20
    assert _people(cli) == ([[20]] if mode == "opt_in" else [[40]])
    # One subject changes their mind; the very next query reflects it, for the owner too.
    flip = "withdraw" if mode == "opt_in" else "grant"
    cli("consent", flip, "--as", "retailer", "--dataset", "retailer.purchases", "--subject", "C0003", "--purpose", "analytics.reporting")
    assert _people(cli, party="retailer") == ([[19]] if mode == "opt_in" else [[41]])
    # The brand's repeat would differ from its last answer by that one person: refused, not run.
    _, refused, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", Q, expect=3)
    assert [r.split(":")[0] for r in refused["reasons"]] == ["differencing"]
    # A purpose the dataset does not gate is not filtered.
    assert cli("query", "--as", "retailer", "--purpose", "marketing.advertising", "--json", Q)[1]["rows"] == [[60]]
    _, history, _ = cli("consent", "show", "--as", "retailer", "--dataset", "retailer.purchases", "--subject", "C0003", "--json")
    assert [h["status"] for h in history] == (["granted", "withdrawn"] if mode == "opt_in" else ["withdrawn", "granted"])
    _, plan, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--explain", "--json", Q)
    assert "cg_consent" in plan["sql"]  # the rewrite is visible
    _, log, raw = cli("audit", "log", "--json", "--limit", "1000")
    assert "C0003" not in raw  # the ledger says consent changed, never whose


@pytest.mark.parametrize("content, message", [
    ("subject,purpose\nC1,analytics.reporting\n", "subject_id,purpose,status"),
    ("subject_id,purpose,status\nC1,analytics.reporting,maybe\n", "line 2: status must be granted or withdrawn"),
    ("subject_id,purpose,status\nC1,analytics.reporting,granted\nC2,analytics.reportin,granted\n", "line 3: unknown purpose"),
    ("subject_id,purpose,status\n,analytics.reporting,granted\n", "line 2: subject id is empty"),
])
def test_bad_imports_change_nothing(gated, content, message):
    cli, tmp_path, _ = gated
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    _, _, out = cli("consent", "import", "--as", "retailer", "--dataset", "retailer.purchases", bad, expect=2)
    assert message in out
    assert cli("consent", "show", "--as", "retailer", "--dataset", "retailer.purchases", "--json")[1] == []


def test_only_the_controller_records_consent(gated):
    cli, _, _ = gated
    cli("consent", "grant", "--as", "brand", "--dataset", "retailer.purchases", "--subject", "C1",
        "--purpose", "analytics.reporting", expect=4)


def test_datasets_without_consent_say_so(cli, tmp_path):
    cli("party", "add", "retailer")
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "plain", data, "--schema", schema)
    _, _, out = cli("consent", "grant", "--as", "retailer", "--dataset", "plain", "--subject", "C1",
                    "--purpose", "analytics.reporting", expect=2)
    assert "does not take consent" in out
