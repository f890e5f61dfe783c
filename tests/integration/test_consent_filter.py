"""The consent gate through the real service: a derived base per version and purpose plus the
changes since it, so a withdrawal applies on the very next query without a rebuild, and a
stale or damaged base is rebuilt rather than read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from commonground.adapters import consent_base
from commonground.services import consent as consent_svc

from .data import BRAND_SCHEMA, PURCHASES_SCHEMA, agreement, write_brand, write_purchases, write_yaml

PURPOSE = "analytics.reporting"
Q = "SELECT COUNT(DISTINCT customer_id) AS people, COUNT(*) AS n FROM retailer.purchases"


@pytest.fixture(params=["opt_in", "opt_out"])
def store(request, cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in", people=60, rows_each=3)
    schema.write_text(yaml.safe_dump({**PURCHASES_SCHEMA, "consent": request.param, "consent_purposes": [PURPOSE]}))
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    made = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", agreement(k=5)), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])
    consents = tmp_path / "consents.csv"
    status = "granted" if request.param == "opt_in" else "withdrawn"
    consents.write_text("subject_id,purpose,status\n" + "".join(f"C{i:04d},{PURPOSE},{status}\n" for i in range(20)))
    cli("consent", "import", "--as", "retailer", "--dataset", "retailer.purchases", consents)
    return cli, tmp_path, request.param


def _query(cli, sql=Q, party="brand"):
    return cli("query", "--as", party, "--purpose", PURPOSE, "--json", sql)[1]["rows"]


def _refused_as_differencing(cli, sql=Q):
    """The recipient repeating a query after fewer than k subjects changed their minds would learn
    them by subtraction (policy/differencing.py), so it is refused; that it is refused at all also
    shows the change reached the query (an unchanged answer would pass)."""
    _, out, _ = cli("query", "--as", "brand", "--purpose", PURPOSE, "--json", sql, expect=3)
    assert out["reasons"][0].startswith("differencing:")


def _bases(home: Path) -> list[Path]:
    return sorted((home / "derived" / "consent").rglob("*.parquet"))


def _toggle(cli, subject, status):
    verb = "grant" if status == "granted" else "withdraw"
    cli("consent", verb, "--as", "retailer", "--dataset", "retailer.purchases", "--subject", subject, "--purpose", PURPOSE)


def test_changes_apply_on_the_next_query_without_a_rebuild(store, monkeypatch):
    cli, _, mode = store
    admitted = 20 if mode == "opt_in" else 40
    assert _query(cli) == [[admitted, admitted * 3]]
    [base] = _bases(cli.home)  # the first query built the base
    # One subject who may be used changes their mind; the next query reflects it, from the same base.
    _toggle(cli, "C0003" if mode == "opt_in" else "C0030", "withdrawn")
    _refused_as_differencing(cli)
    assert _query(cli, party="retailer") == [[admitted - 1, (admitted - 1) * 3]]
    # And one who could not be used now may be (a grant after a withdrawal, or a first grant).
    _toggle(cli, "C0005" if mode == "opt_out" else "C0045", "granted")
    assert _query(cli, party="retailer") == [[admitted, admitted * 3]]
    _toggle(cli, "C0045" if mode == "opt_in" else "C0005", "withdrawn")  # ... and back out again
    assert _query(cli, party="retailer") == [[admitted - 1, (admitted - 1) * 3]]
    assert _bases(cli.home) == [base]
    # Past the change threshold the next query rebuilds the base, at the new seq, with the same answer.
    monkeypatch.setattr(consent_svc, "MAX_CHANGES", 2)
    assert _query(cli, party="retailer") == [[admitted - 1, (admitted - 1) * 3]]
    rebuilt = [b for b in _bases(cli.home) if b != base]
    assert len(rebuilt) == 1 and consent_base.read_header(rebuilt[0])["seq"] > consent_base.read_header(base)["seq"]
    # The explain output shows the gate.
    plan = cli("query", "--as", "brand", "--purpose", PURPOSE, "--explain", "--json", Q)[1]
    assert "FROM cg_consented" in plan["sql"] and f"({mode})" in plan["sql"]


def test_a_new_version_gets_its_own_base(store, tmp_path):
    cli, _, mode = store
    admitted = 20 if mode == "opt_in" else 40
    assert _query(cli) == [[admitted, admitted * 3]]
    data, schema = write_purchases(tmp_path / "v2", people=30, rows_each=1)
    schema.write_text(yaml.safe_dump({**PURCHASES_SCHEMA, "consent": mode, "consent_purposes": [PURPOSE]}))
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    admitted = 20 if mode == "opt_in" else 10
    assert _query(cli) == [[admitted, admitted]]
    assert len({b.parent for b in _bases(cli.home)}) == 2  # one per version (the old one is swept later)


def test_a_damaged_base_is_rebuilt_not_read(store):
    cli, _, mode = store
    admitted = 20 if mode == "opt_in" else 40
    assert _query(cli) == [[admitted, admitted * 3]]
    [base] = _bases(cli.home)
    base.write_bytes(b"not a base")
    _toggle(cli, "C0003" if mode == "opt_in" else "C0030", "withdrawn")
    assert _query(cli, party="retailer") == [[admitted - 1, (admitted - 1) * 3]]
    # Rebuilt from a fresh snapshot (at the seq after the toggle); the damaged file is left to the sweep.
    rebuilt = [b for b in _bases(cli.home) if b != base]
    assert len(rebuilt) == 1 and base.read_bytes() == b"not a base"
    header = consent_base.read_header(rebuilt[0])
    assert header["purpose"] == PURPOSE and header["mode"] == mode and header["rows"] == header["footer_rows"]


def test_joined_gated_views(store, tmp_path):
    """A gated dataset joined with another party's dataset: only admitted subjects meet."""
    cli, _, mode = store
    data, schema = write_brand(tmp_path / "brand", people=40, offset=0)
    schema.write_text(yaml.safe_dump({**BRAND_SCHEMA}))
    cli("dataset", "add", "--as", "brand", "tiers", data, "--schema", schema)
    sql = ("SELECT t.tier, COUNT(DISTINCT p.customer_id) AS people FROM retailer.purchases p "
           "JOIN brand.tiers t ON p.customer_id = t.customer_id GROUP BY t.tier ORDER BY t.tier")
    # brand holds C0000..C0039; opt_in admits C0000..C0019, opt_out C0020..C0059.
    assert _query(cli, sql) == [["gold", 10], ["silver", 10]]
    _toggle(cli, "C0002" if mode == "opt_in" else "C0022", "withdrawn")
    _refused_as_differencing(cli, sql)  # gold would show one fewer: the withdrawal applied
