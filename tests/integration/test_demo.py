"""`commonground demo` (what `make run` shows first) builds its scenario and answers its query."""

from __future__ import annotations

import json


def test_demo_builds_and_answers(tmp_path, monkeypatch):
    from tests.conftest import Cli
    cli = Cli(tmp_path / "home", None, monkeypatch)
    _, report, _ = cli("demo", "--reset", "--json")
    assert report["result"]["governed"] and report["result"]["rows"]
    assert all(row[2] >= 10 for row in report["result"]["rows"])  # shoppers per group >= k
    assert set(report["tokens"]) == {"retailer", "brand", "roaster", "alice"}
    assert report["offers"]["offers"] >= 10
    _, why, _ = cli("offer", "show", report["alice_offer"], "--as", "alice", "--json")
    assert why["fields_used"] == ["product", "spend"] and why["your_values"]
    assert {v["product"] for v in why["your_values"]} == {"maple syrup"}
    # The data product was taken up at once, under the retailer's declared rights.
    assert report["listing_request"]["status"] == "active"
    _, product, _ = cli("query", "--as", "roaster", "--purpose", "analytics.reporting", "--json",
                        "SELECT product, COUNT(DISTINCT customer_id) AS people FROM retailer.purchases GROUP BY product")
    assert len(product["rows"]) == 5 and product["agreements"] == [report["listing_request"]["agreement_id"]]
    _, surveys, _ = cli("survey", "list", "--as", "alice", "--json")
    assert [s["id"] for s in surveys] == [report["survey"]]
    _, again, out = cli("demo", "--json", expect=2)
    assert "demo --reset" in out
    _, verified, _ = cli("audit", "verify", "--json")
    assert verified["ok"]
    # Every party reads the ledger: alice claimed, consented, decided an offer and answered a
    # survey, and it says so under an opaque id, never under the name she chose.
    _, log, _ = cli("audit", "log", "--limit", "100000", "--json")
    alice = [e for e in log if str(e.get("party", "")).startswith("person:")]
    assert {"party.added", "subject.claimed", "survey.answered"} <= {e["event"] for e in alice}
    assert len({e["party"] for e in alice}) == 1
    assert not [e for e in log if "alice" in json.dumps(e)]
