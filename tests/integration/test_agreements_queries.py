"""Agreements and governed queries end to end through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import duckdb
import pytest

from .data import agreement, write_brand, write_purchases, write_yaml


@pytest.fixture
def partners(cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    cli("party", "add", "outsider")
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    bdata, bschema = write_brand(tmp_path / "in")
    cli("dataset", "add", "--as", "brand", "customers", bdata, "--schema", bschema)
    return cli, tmp_path, data


def _propose(cli, tmp_path, **kw):
    path = write_yaml(tmp_path / "agreement.yaml", agreement(**kw))
    return cli("agreement", "propose", "--as", "retailer", path, "--json")[1]


Q_AGG = "SELECT segment, COUNT(DISTINCT customer_id) AS people, SUM(spend) AS spend FROM retailer.purchases GROUP BY segment ORDER BY segment"
Q_JOIN = ("SELECT b.tier, COUNT(DISTINCT p.customer_id) AS people FROM retailer.purchases p "
          "JOIN brand.customers b ON p.customer_id = b.customer_id GROUP BY b.tier ORDER BY b.tier")


def test_agreement_lifecycle_and_query(partners):
    cli, tmp_path, data = partners
    proposed = _propose(cli, tmp_path)
    assert proposed["status"] == "proposed" and proposed["accepted_by"] == ["retailer"]
    # Not active yet: the brand cannot query.
    _, refused, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", Q_AGG, expect=4)
    _, accepted, _ = cli("agreement", "accept", "--as", "brand", proposed["id"], "--json")
    assert accepted["status"] == "active"
    _, result, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", Q_AGG)
    expected = duckdb.sql(
        f"SELECT segment, count(DISTINCT customer_id), sum(spend) FROM read_csv('{data}') GROUP BY segment ORDER BY segment").fetchall()
    assert result["columns"] == ["segment", "people", "spend"]
    assert [tuple(r) for r in result["rows"]] == [(s, n, pytest.approx(v)) for s, n, v in expected]
    assert result["suppressed_groups"] == 0 and result["governed"]
    # Wrong purpose: refused with a reason, exit 3.
    _, refused, _ = cli("query", "--as", "brand", "--purpose", "marketing.advertising", "--json", Q_AGG, expect=3)
    assert refused["error"] == "refused" and "purpose marketing.advertising" in refused["reasons"][0]
    # Revocation takes effect on the very next query.
    cli("agreement", "revoke", "--as", "brand", proposed["id"])
    cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", Q_AGG, expect=4)
    _, shown, _ = cli("agreement", "show", "--as", "retailer", proposed["id"], "--json")
    assert shown["status"] == "revoked"


def test_join_mode_matches_hashed_keys(partners):
    cli, tmp_path, data = partners
    proposed = _propose(cli, tmp_path, k=5)
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    _, result, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", Q_JOIN)
    # brand has C0020..C0059, the retailer C0000..C0059: 40 shared people, 20 per tier.
    assert result["rows"] == [["gold", 20], ["silver", 20]]


def test_aggregate_mode_refuses_joining_own_data(partners):
    cli, tmp_path, _ = partners
    proposed = _propose(cli, tmp_path, mode="aggregate")
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    _, refused, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", Q_JOIN, expect=3)
    assert "access mode" in refused["reasons"][0]


def test_small_groups_are_suppressed_and_counted(partners):
    cli, tmp_path, _ = partners
    proposed = _propose(cli, tmp_path, k=25)
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    _, result, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json",
                       "SELECT zip, COUNT(*) AS n FROM retailer.purchases GROUP BY zip")
    # 60 people over 7 zips share one 3-digit prefix; age bands of 10 years hold 10 people each.
    assert result["rows"] == [["100", 120]]
    _, result, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json",
                       "SELECT age, COUNT(*) AS n FROM retailer.purchases GROUP BY age")
    assert result["rows"] == [] and result["suppressed_groups"] == 4


def test_outsider_sees_nothing(partners):
    cli, tmp_path, _ = partners
    proposed = _propose(cli, tmp_path)
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    cli("query", "--as", "outsider", "--purpose", "analytics.reporting", "--json", Q_AGG, expect=4)
    cli("agreement", "show", "--as", "outsider", proposed["id"], expect=4)
    cli("agreement", "accept", "--as", "outsider", proposed["id"], expect=4)
    _, listed, _ = cli("agreement", "list", "--as", "outsider", "--json")
    assert listed == []


def test_amending_makes_a_new_version_and_supersedes(partners):
    cli, tmp_path, _ = partners
    first = _propose(cli, tmp_path, k=5)
    cli("agreement", "accept", "--as", "brand", first["id"])
    second = _propose(cli, tmp_path, k=8)
    assert second["version"] == 2 and second["id"] != first["id"]
    cli("agreement", "accept", "--as", "brand", second["id"])
    _, shown, _ = cli("agreement", "show", "--as", "brand", first["id"], "--json")
    assert shown["status"] == "superseded" and shown["min_group_size"] == 5
    cli("agreement", "accept", "--as", "brand", second["id"], expect=2)


def test_template_with_parameters(partners):
    cli, tmp_path, _ = partners
    template = tmp_path / "t.yaml"
    template.write_text(
        "name: ${name}\nprovider: retailer\nrecipients: [${recipient}]\npurposes: [analytics.reporting]\n"
        "valid_until: 2099-01-01\ndatasets:\n  retailer.purchases:\n    fields:\n      customer_id: {transform: hash}\n"
        "      segment: {transform: raw}\naccess: {mode: aggregate, min_group_size: ${k}}\n")
    cli("agreement", "template", "add", "--as", "retailer", "basic", template)
    _, made, _ = cli("agreement", "propose", "--as", "retailer", "--template", "basic", "--set", "name=quick",
                     "--set", "recipient=brand", "--set", "k=12", "--json")
    assert made["min_group_size"] == 12 and made["recipients"] == ["brand"]
    _, _, out = cli("agreement", "propose", "--as", "retailer", "--template", "basic", "--set", "name=x", expect=2)
    assert "needs parameter" in out and "recipient" in out


@pytest.mark.parametrize("change, message", [
    ({"valid_until": "2001-01-01"}, "in the past"),
    ({"access": {"mode": "telepathy", "min_group_size": 5}}, "not supported"),
    ({"access": {"mode": "aggregate", "min_group_size": 1}}, "min_group_size"),
    ({"recipients": ["nobody"]}, "unknown party"),
    ({"datasets": {"retailer.purchases": {"fields": {"nope": "raw"}}}}, "no column 'nope'"),
    ({"datasets": {"retailer.purchases": {"fields": {"email": "raw"}}}}, "identifier"),
    ({"datasets": {"retailer.purchases": {"fields": {"spend": {"transform": "rot13"}}}}}, "unknown transform"),
    ({"datasets": {"brand.customers": {"fields": {"tier": "raw"}}}}, "not the provider's"),
])
def test_invalid_agreements_say_what_is_wrong(partners, change, message):
    cli, tmp_path, _ = partners
    doc = {**agreement(), **change}
    path = write_yaml(tmp_path / "bad.yaml", doc)
    _, _, out = cli("agreement", "propose", "--as", "retailer", path, expect=2)
    assert message in out


def test_expired_agreement_stops_queries(partners, monkeypatch):
    import datetime as dt

    from commonground import bootstrap
    cli, tmp_path, _ = partners
    proposed = _propose(cli, tmp_path, valid_until=(dt.date.today() + dt.timedelta(days=1)).isoformat())
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    cli("query", "--as", "brand", "--purpose", "analytics.reporting", Q_AGG)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    monkeypatch.setattr(bootstrap.SystemClock, "now", lambda self: later)
    cli("query", "--as", "brand", "--purpose", "analytics.reporting", Q_AGG, expect=4)
    _, shown, _ = cli("agreement", "show", "--as", "brand", proposed["id"], "--json")
    assert shown["status"] == "expired"


def test_every_query_is_on_the_ledger_without_values(partners):
    cli, tmp_path, _ = partners
    proposed = _propose(cli, tmp_path)
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    cli("query", "--as", "brand", "--purpose", "analytics.reporting", Q_AGG)
    cli("query", "--as", "brand", "--purpose", "analytics.reporting", "SELECT email FROM retailer.purchases", expect=3)
    _, log, raw = cli("audit", "log", "--json", "--limit", "1000")
    queries = [e for e in log if e["event"] == "query"]
    assert [q["allowed"] for q in queries] == [True, False]
    assert queries[0]["fields"] and queries[0]["rows"] == 3 and queries[0]["suppressed_groups"] == 0
    assert "p1@example.org" not in raw and "C0001" not in raw  # no data values, ever
    _, verified, _ = cli("audit", "verify", "--json")
    assert verified["ok"] and verified["entries"] == len(log)


def test_unknown_purposes_and_categories_get_suggestions(partners):
    cli, tmp_path, _ = partners
    _, _, out = cli("query", "--as", "brand", "--purpose", "analytics.reportin", "SELECT 1", expect=2)
    assert "did you mean analytics.reporting" in out
    doc = {**agreement(), "purposes": ["marketing.advertisin"]}
    _, _, out = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", doc), expect=2)
    assert "unknown purpose 'marketing.advertisin'" in out and "marketing.advertising" in out
    cli("vocabulary", "add", "--as", "retailer", "--kind", "purpose", "research.loyalty_study")
    _, entries, _ = cli("vocabulary", "list", "--kind", "purpose", "--json")
    assert {"kind": "purpose", "name": "research.loyalty_study", "source": "store"} in entries
    assert {"kind": "purpose", "name": "analytics.reporting", "source": "fideslang"} in entries
    doc = {**agreement(), "purposes": ["research.loyalty_study"]}
    cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "b.yaml", doc))


def test_schema_categories_are_checked(cli, tmp_path):
    cli("party", "add", "retailer")
    data, schema = write_purchases(tmp_path / "in")
    schema.write_text(schema.read_text().replace("user.contact.email", "user.contact.emial"))
    _, _, out = cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema, expect=2)
    assert "'email'" in out and "did you mean user.contact.email" in out


def test_slow_queries_are_cancelled(sqlite_cli, tmp_path, monkeypatch):
    cli = sqlite_cli
    cli("party", "add", "retailer")
    data = tmp_path / "same.csv"
    data.write_text("k,v\n" + "".join(f"1,{i}\n" for i in range(20000)))
    cli("dataset", "add", "--as", "retailer", "same", data)
    monkeypatch.setenv("COMMONGROUND_QUERY_TIMEOUT", "0.2")
    _, _, out = cli("query", "--as", "retailer", "--purpose", "analytics.reporting",
                    "SELECT sum(a.v * b.v) FROM retailer.same a JOIN retailer.same b ON a.k = b.k", expect=2)
    assert "cancelled" in out


def test_results_come_in_the_same_order_every_time(partners):
    """Without ORDER BY the released groups are sorted by the output columns, left to right; with
    one, the other columns break its ties: the same query lists the same rows in the same order
    (12 groups of about 5 people, k = 2)."""
    cli, tmp_path, _ = partners
    cli("agreement", "accept", "--as", "brand", _propose(cli, tmp_path, k=2)["id"])
    query = ["query", "--as", "brand", "--purpose", "analytics.reporting", "--json"]
    unordered = "SELECT age, segment, COUNT(*) AS n FROM retailer.purchases GROUP BY age, segment"
    rows = [tuple(r) for r in cli(*query, unordered)[1]["rows"]]
    assert len(rows) == 12 and rows == sorted(rows)
    assert [tuple(r) for r in cli(*query, unordered)[1]["rows"]] == rows  # a repeat, in the same order
    by_size = [tuple(r) for r in cli(*query, unordered + " ORDER BY n DESC")[1]["rows"]]
    assert by_size == sorted(rows, key=lambda r: (-r[2], r[0], r[1]))
