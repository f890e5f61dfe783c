"""Client-side sealing end to end (issue #10), on SQLite and PostgreSQL: two parties seal with the
same collaboration secret at their own sites, upload, agree, join on fingerprints with exact
counts, and no byte the store wrote holds a raw identifier of the sealed uploads."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .data import write_yaml

COLLAB = "syrup-2025"
RETAILER_SCHEMA = {"collaboration": COLLAB, "columns": {
    "email": {"type": "string", "role": "subject_id", "category": "user.contact.email", "seal": "fingerprint",
              "normalize": ["trim", "lower"]},
    "full_name": {"type": "string", "role": "identifier", "category": "user.name", "seal": "sealed", "pad": 32},
    "phone": {"type": "string", "role": "identifier", "category": "user.contact.phone_number", "seal": "fingerprint",
              "normalize": ["digits"]},
    "segment": {"type": "string", "role": "attribute", "category": "user.behavior"},
    "spend": {"type": "double", "role": "sensitive", "category": "user.financial"},
}}
BRAND_SCHEMA = {"collaboration": COLLAB, "columns": {
    "member_email": {"type": "string", "role": "subject_id", "category": "user.contact.email", "seal": "fingerprint",
                     "domain": "email", "normalize": ["trim", "lower"]},
    "nickname": {"type": "string", "role": "identifier", "category": "user.name", "seal": "sealed"},
    "tier": {"type": "string", "role": "attribute", "category": "user.behavior"},
}}


def _email(i: int) -> str:
    return f"shopper.{i}@example.org"


def _name(i: int) -> str:
    return f"Shopper Number{i} Example"


def _phone(i: int) -> str:
    return f"+44 7700 9{i:05d}"


def _nickname(i: int) -> str:
    return f"nick name {i}"


def _sites(tmp_path: Path) -> dict[str, Path]:
    """Each party's own files (outside the store): plaintext, schema, sealed output; one shared secret."""
    site = tmp_path / "sites"
    site.mkdir()
    retailer = ["email,full_name,phone,segment,spend"]
    for i in range(200):  # people 0..199, two rows each; the email written differently on each row
        retailer.append(f"{_email(i).upper()},{_name(i)},{_phone(i)},segment-alpha,{i % 10}.5")
        retailer.append(f"  {_email(i)} ,{_name(i)},{_phone(i).replace(' ', '')},segment-beta,1")
    (site / "retailer.csv").write_text("\n".join(retailer) + "\n")
    brand = ["member_email,nickname,tier"] + [f"{_email(i)},{_nickname(i)},{['gold', 'silver'][i % 2]}"
                                              for i in range(100, 300)]
    (site / "brand.csv").write_text("\n".join(brand) + "\n")
    write_yaml(site / "retailer.yaml", RETAILER_SCHEMA)
    write_yaml(site / "brand.yaml", BRAND_SCHEMA)
    return {"site": site, "retailer": site / "retailer.csv", "brand": site / "brand.csv",
            "retailer_schema": site / "retailer.yaml", "brand_schema": site / "brand.yaml"}


def _raw_identifiers() -> list[bytes]:
    needles = []
    for i in range(300):
        needles += [_email(i).encode(), _name(i).lower().encode(), _phone(i).encode(),
                    _phone(i).replace(" ", "").encode(), _nickname(i).encode()]
    return needles


def _store_texts(home: Path, database_url: str | None) -> dict[str, bytes]:
    """Every byte the store wrote, lower-cased: each file under the home as is, each Parquet file
    also decoded (its pages are compressed), and every PostgreSQL table dumped as JSON."""
    texts: dict[str, bytes] = {}
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        texts[str(path)] = path.read_bytes().lower()
        if path.suffix == ".parquet":
            texts[f"{path} (decoded)"] = json.dumps(pq.read_table(path).to_pydict(), default=str).lower().encode()
    if database_url:
        import psycopg
        with psycopg.connect(database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
            for table in tables:
                rows = conn.execute(f'SELECT row_to_json(t)::text FROM "{table}" t').fetchall()
                texts[f"postgresql:{table}"] = "\n".join(r[0] for r in rows).lower().encode()
    return texts


def test_sealed_collaboration_end_to_end(cli, tmp_path, database_url, monkeypatch):
    files = _sites(tmp_path)
    site = files["site"]
    # -- at the parties' sites: no store involved ------------------------------------------
    offline = tmp_path / "no-store-here"
    monkeypatch.setenv("COMMONGROUND_HOME", str(offline))
    cli("seal-secret", site / "collab.secret")
    _, report, _ = cli("seal", "--collaboration", COLLAB, "--schema", files["retailer_schema"], "--secret-file",
                       site / "collab.secret", files["retailer"], site / "retailer.sealed.csv", "--json")
    assert report["rows"] == 400 and report["fingerprint"] == ["email", "phone"] and report["sealed"] == ["full_name"]
    monkeypatch.setenv("COMMONGROUND_SEAL_SECRET", (site / "collab.secret").read_text())
    cli("seal", "--collaboration", COLLAB, "--schema", files["brand_schema"], files["brand"],
        site / "brand.sealed.parquet", "--json")
    monkeypatch.delenv("COMMONGROUND_SEAL_SECRET")
    assert not offline.exists()  # sealing never opened (or created) a store
    monkeypatch.setenv("COMMONGROUND_HOME", str(cli.home))

    # -- the store ---------------------------------------------------------------------------
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    # A file whose fingerprint/sealed columns are not sealed is refused whole; nothing is stored.
    code, _, text = cli("dataset", "add", "--as", "retailer", "shoppers", files["retailer"],
                        "--schema", files["retailer_schema"], expect=2)
    assert "column email is declared fingerprint, but 400 value(s) are not a fingerprint" in text
    assert "column full_name is declared sealed" in text and "commonground seal" in text
    assert "shopper." not in text.lower()  # the message never repeats a value
    assert not list((cli.home / "data").rglob("*.parquet")) if (cli.home / "data").exists() else True
    cli("dataset", "add", "--as", "retailer", "shoppers", site / "retailer.sealed.csv", "--schema",
        files["retailer_schema"])
    cli("dataset", "add", "--as", "brand", "members", site / "brand.sealed.parquet", "--schema", files["brand_schema"])
    _, shown, _ = cli("dataset", "show", "--as", "retailer", "shoppers", "--json")
    assert shown["collaboration"] == COLLAB and shown["subjects"] == 200
    seals = {c["name"]: c.get("seal") for c in shown["columns"]}
    assert seals == {"email": "fingerprint", "full_name": "sealed", "phone": "fingerprint", "segment": None,
                     "spend": None}

    # -- the agreement: fingerprints are shared raw (hashing again would break the join) -----
    doc = {"name": "sealed-insights", "provider": "retailer", "recipients": ["brand"],
           "purposes": ["analytics.reporting"], "valid_until": "2099-12-31",
           "datasets": {"retailer.shoppers": {"fields": {"email": "hash", "full_name": "raw", "segment": "raw",
                                                          "spend": "raw", "phone": "drop"}}},
           "access": {"mode": "join", "min_group_size": 5, "join_keys": ["email"]}}
    _, _, text = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", doc), expect=2)
    assert "email is sealed as fingerprint: share it raw or drop it" in text
    doc["datasets"]["retailer.shoppers"]["fields"]["email"] = "raw"
    _, proposed, _ = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", doc), "--json")
    cli("agreement", "accept", "--as", "brand", proposed["id"])

    # -- the join on fingerprints: exact counts ------------------------------------------------
    # Shared people are 100..199 (the retailer's emails upper-cased or padded, the brand's lower):
    # 50 per tier, each with 2 retailer rows.
    q = ("SELECT m.tier, COUNT(DISTINCT s.email) AS people, COUNT(*) AS n, SUM(s.spend) AS spend "
         "FROM retailer.shoppers s JOIN brand.members m ON s.email = m.member_email GROUP BY m.tier ORDER BY m.tier")
    _, result, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", q)
    spend = {t: sum(i % 10 + 0.5 + 1 for i in range(100, 200) if i % 2 == k) for k, t in enumerate(["gold", "silver"])}
    assert result["rows"] == [["gold", 50, 100, pytest.approx(spend["gold"])],
                              ["silver", 50, 100, pytest.approx(spend["silver"])]]
    _, overlap, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json",
                        "SELECT COUNT(DISTINCT s.email) AS retailer_people FROM retailer.shoppers s")
    assert overlap["rows"] == [[200]]
    for sql, rule in [("SELECT full_name, COUNT(*) FROM retailer.shoppers GROUP BY full_name", "sealed:"),
                      ("SELECT COUNT(*) FROM retailer.shoppers WHERE email = 'AAAAAAAAAAAAAAAAAAAAAA'", "fingerprints:")]:
        _, refused, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", sql, expect=3)
        assert any(r.startswith(rule) for r in refused["reasons"]), refused

    # -- unseal: a result the party may see (its own rows), opened at its site ------------------
    _, own, _ = cli("query", "--as", "retailer", "--purpose", "analytics.reporting", "--json",
                    "SELECT full_name, segment FROM retailer.shoppers ORDER BY spend DESC, segment LIMIT 2")
    assert all(not r[0].startswith("Shopper") for r in own["rows"])
    (site / "own.json").write_text(json.dumps(own))
    cli("unseal", "--schema", files["retailer_schema"], "--secret-file", site / "collab.secret",
        site / "own.json", site / "own.opened.json")
    opened = json.loads((site / "own.opened.json").read_text())["rows"]
    assert opened[0][0].startswith("Shopper Number") and opened[0][1] == "segment-alpha"

    # -- the byte scan: no raw identifier anywhere the store wrote -------------------------------
    texts = _store_texts(cli.home, database_url)
    assert any(str(cli.home / "data") in name for name in texts), "no dataset file scanned"
    decoded = b"".join(t for n, t in texts.items() if n.endswith("(decoded)"))
    assert b"segment-alpha" in decoded  # the scan sees through Parquet compression
    assert any(b"sealed-insights" in t for t in texts.values())  # and reads the metadata and ledger
    needles = _raw_identifiers()
    leaks = [(name, needle) for name, text in texts.items() for needle in needles if needle in text]
    assert leaks == []
