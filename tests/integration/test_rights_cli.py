"""Rights pre-vetting and listings through the CLI, on SQLite and PostgreSQL: exit codes (2 bad
input, 3 refused with the gap named, 4 not yours), templates vetted when rendered, a narrowing
that suspends an accepted agreement and tells both parties, and the listing commands."""

from __future__ import annotations

from .data import agreement, write_purchases, write_yaml

TEMPLATE = """name: ${name}
provider: retailer
recipients: [brand]
purposes: [${purpose}]
valid_until: 2099-12-31
datasets:
  retailer.purchases:
    fields: {customer_id: hash, segment: raw, spend: raw, email: drop}
access: {mode: aggregate, min_group_size: 5}
"""


def test_rights_through_the_cli(cli, tmp_path):
    for name in ("retailer", "brand"):
        cli("party", "add", name)
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    accepted = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", agreement()), "--json")[1]
    assert accepted["unvetted"] == ["retailer.purchases"]  # no rights declared yet: told, not refused
    assert "warning: retailer.purchases declares no rights" in cli(
        "agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "b.yaml", {**agreement(), "name": "other"}))[2]
    cli("agreement", "accept", "--as", "brand", accepted["id"])

    rights = write_yaml(tmp_path / "rights.yaml", {"legal_basis": "legitimate_interests", "purposes": ["analytics"],
                                                   "columns": {"email": {"purposes": []}}})
    _, made, _ = cli("rights", "declare", "--as", "retailer", "purchases", rights, "--attested-by", "DPO", "--json")
    assert (made["version"], made["legal_basis"], made["attested_by"], made["suspended"]) == (
        1, "legitimate_interests", "DPO", [])
    cli("rights", "declare", "--as", "retailer", "purchases", "--basis", "hunch", "--purpose", "analytics", expect=2)
    cli("rights", "declare", "--as", "retailer", "purchases", rights, "--basis", "contract", expect=2)
    cli("rights", "declare", "--as", "retailer", "purchases", "--basis", "contract", "--purpose", "analytcs", expect=2)
    cli("rights", "declare", "--as", "brand", "retailer.purchases", "--basis", "contract", "--purpose", "analytics",
        expect=4)

    # a template rendered with a purpose outside the rights is refused at proposal time, naming the gap
    (tmp_path / "t.yaml").write_text(TEMPLATE)
    cli("agreement", "template", "add", "--as", "retailer", "retail", tmp_path / "t.yaml")
    _, refused, _ = cli("agreement", "propose", "--as", "retailer", "--template", "retail", "--set", "name=ads",
                           "--set", "purpose=marketing.advertising", "--json", expect=3)
    assert refused == {"error": "refused", "reasons": [
        "rights: retailer.purchases (rights v1): purpose marketing.advertising is outside the declared rights (analytics)"]}
    _, vetted, _ = cli("agreement", "propose", "--as", "retailer", "--template", "retail", "--set", "name=reports",
                       "--set", "purpose=analytics.reporting", "--json")
    assert vetted["unvetted"] == []

    # narrowing to a basis and purposes that leave the accepted agreement's segment field out suspends it
    narrowed = write_yaml(tmp_path / "narrow.yaml", {"legal_basis": "legitimate_interests", "purposes": ["analytics"],
                                                     "columns": {"segment": {"purposes": []}}})
    _, made, _ = cli("rights", "declare", "--as", "retailer", "purchases", narrowed, "--json")
    assert sorted(s["name"] for s in made["suspended"]) == ["other", "reports", "syrup-insights"]
    assert all("field segment may not be shared for analytics.reporting" in s["gaps"][0] for s in made["suspended"])
    _, shown, _ = cli("agreement", "show", "--as", "brand", accepted["id"], "--json")
    assert shown["status"] == "suspended"
    cli("agreement", "accept", "--as", "brand", next(s["agreement"] for s in made["suspended"] if s["name"] == "reports"),
        expect=2)  # a suspended proposal can no longer be signed
    _, ended, _ = cli("agreement", "revoke", "--as", "brand", accepted["id"], "--json")  # ended on the record
    assert ended["status"] == "revoked"
    cli("agreement", "revoke", "--as", "brand", accepted["id"], expect=2)
    _, notices, _ = cli("notices", "--as", "brand", "--json")
    assert {n["subject"] for n in notices} == {s["agreement"] for s in made["suspended"]}
    _, history, _ = cli("rights", "show", "--as", "retailer", "purchases", "--json")
    assert [h["version"] for h in history] == [1, 2]
    cli("rights", "show", "--as", "brand", "retailer.purchases", expect=4)  # nothing in force for brand any more
    _, log, _ = cli("audit", "log", "--limit", "500", "--json")
    assert [e["event"] for e in log].count("agreement.suspended") == 3
    cli("audit", "verify")


def test_listings_through_the_cli(cli, tmp_path):
    for name in ("retailer", "brand"):
        cli("party", "add", name)
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    cli("rights", "declare", "--as", "retailer", "purchases", "--basis", "contract", "--purpose", "analytics")
    listing = write_yaml(tmp_path / "listing.yaml", {
        "name": "spend", "title": "Spend by segment", "valid_until": "2099-12-31", "purposes": ["analytics.reporting"],
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}},
        "access": {"mode": "aggregate", "min_group_size": 5}})
    _, made, _ = cli("listing", "publish", "--as", "retailer", listing, "--json")
    cli("listing", "publish", "--as", "retailer", listing, expect=2)  # the same name twice
    _, catalogue, _ = cli("listing", "list", "--as", "brand", "--json")
    assert [c["id"] for c in catalogue] == [made["id"]]
    _, got, _ = cli("listing", "request", "--as", "brand", made["id"], "--purpose", "analytics.reporting", "--json")
    assert got["status"] == "active"
    _, rows, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting",
                     "SELECT segment, COUNT(*) AS n FROM retailer.purchases GROUP BY segment", "--json")
    assert len(rows["rows"]) == 3
    _, waiting, _ = cli("listing", "request", "--as", "brand", made["id"], "--purpose", "analytics", "--json")
    assert waiting["status"] == "pending"
    cli("listing", "request", "--as", "brand", made["id"], "--purpose", "personalize", expect=3)
    cli("listing", "request", "--as", "brand", "no-such-listing", "--purpose", "analytics", expect=4)
    _, queue, _ = cli("listing", "requests", "--as", "retailer", "--json")
    assert [q["id"] for q in queue["to_review"]] == [waiting["id"]]
    cli("listing", "approve", "--as", "brand", waiting["id"], expect=4)
    _, declined, _ = cli("listing", "decline", "--as", "retailer", waiting["id"], "--note", "no", "--json")
    assert declined["status"] == "declined"
    _, shown, _ = cli("listing", "show", "--as", "brand", made["id"], "--json")
    assert shown["usage"] == {"partners": 1, "purposes": {"analytics.reporting": 1}}
    _, out_text = cli("listing", "show", "--as", "brand", made["id"])[::2]
    assert "retailer.purchases (contract)" in out_text
    cli("listing", "withdraw", "--as", "retailer", made["id"])
    assert cli("listing", "list", "--as", "brand", "--json")[1] == []
    assert [m["status"] for m in cli("listing", "mine", "--as", "retailer", "--json")[1]] == ["withdrawn"]
