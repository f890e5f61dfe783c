"""`commonground demo` (what `make run` shows first) builds its scenario and answers its query."""

from __future__ import annotations


def test_demo_builds_and_answers(tmp_path, monkeypatch):
    from tests.conftest import Cli
    cli = Cli(tmp_path / "home", None, monkeypatch)
    _, report, _ = cli("demo", "--reset", "--json")
    assert report["result"]["governed"] and report["result"]["rows"]
    assert all(row[2] >= 10 for row in report["result"]["rows"])  # shoppers per group >= k
    assert set(report["tokens"]) == {"retailer", "brand", "alice"}
    assert report["offers"]["offers"] >= 10
    _, why, _ = cli("offer", "show", report["alice_offer"], "--as", "alice", "--json")
    assert why["fields_used"] == ["product", "spend"] and why["your_values"]
    assert {v["product"] for v in why["your_values"]} == {"maple syrup"}
    _, again, out = cli("demo", "--json", expect=2)
    assert "demo --reset" in out
    _, verified, _ = cli("audit", "verify", "--json")
    assert verified["ok"]
