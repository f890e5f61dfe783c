"""Curated exports (rows mode): k-anonymous over the quasi-identifiers, watermarked per
recipient, on the ledger with the file's hash, traceable when leaked. The Adult census data
(../shared/data/adult.csv) exported at k = 5 over (age, education, marital-status, race,
gender, native-country) is the reference case."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from .data import write_yaml

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult.csv"
QUASI = ["age", "education", "marital_status", "race", "gender", "native_country"]
pytestmark = pytest.mark.skipif(not ADULT.exists(), reason=f"{ADULT} is not present")


def _adult_csv(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "adult.csv"
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT 'P' || lpad(CAST(row_number() OVER () AS VARCHAR), 6, '0') AS person_id,
                        CAST(trim("Age") AS INTEGER) AS age, trim("education") AS education,
                        trim("marital-status") AS marital_status, trim("race") AS race, trim("gender") AS gender,
                        trim("native-country") AS native_country, CAST(trim("hours-per-week") AS INTEGER) AS hours_per_week,
                        trim("income") AS income
                 FROM read_csv('{ADULT}', all_varchar = true, header = true)) TO '{path}' (HEADER)""")
    return path


@pytest.fixture
def census(cli, tmp_path):
    for name in ("census", "analyst", "insurer", "outsider"):
        cli("party", "add", name)
    schema = {"columns": {
        "person_id": {"type": "string", "role": "subject_id"},
        "age": {"type": "integer", "role": "quasi_identifier"},
        **{c: {"type": "string", "role": "quasi_identifier"} for c in QUASI[1:]},
        "hours_per_week": {"type": "integer"}, "income": {"type": "string", "role": "sensitive"}}}
    cli("dataset", "add", "--as", "census", "adult", _adult_csv(tmp_path / "in"),
        "--schema", write_yaml(tmp_path / "adult.yaml", schema))
    fields = {"person_id": "hash", **{c: "raw" for c in QUASI}, "hours_per_week": "raw", "income": "raw"}
    doc = {"name": "adult-rows", "provider": "census", "recipients": ["analyst", "insurer"],
           "purposes": ["analytics.reporting"], "valid_until": "2099-12-31",
           "datasets": {"census.adult": {"fields": fields}},
           "access": {"mode": "rows", "min_group_size": 5, "quasi_identifiers": QUASI, "max_suppression": 0.05,
                      "hierarchies": {"age": [{"transform": "bucket", "width": 5}, {"transform": "bucket", "width": 10},
                                              {"transform": "bucket", "width": 20}, "*"],
                                      "native_country": ["*"], "education": ["*"], "marital_status": ["*"]}}}
    made = cli("agreement", "propose", "--as", "census", write_yaml(tmp_path / "rows.yaml", doc), "--json")[1]
    for recipient in ("analyst", "insurer"):
        cli("agreement", "accept", "--as", recipient, made["id"])
    return cli, tmp_path


def _export(cli, tmp_path, party, fmt="parquet"):
    out = tmp_path / f"{party}.{fmt}"
    made = cli("export", "run", "--as", party, "--dataset", "census.adult", "--purpose", "analytics.reporting",
               "--format", fmt, "--out", out, "--json")[1]
    return made, out


def test_adult_export_is_k_anonymous_and_reports_what_it_did(census):
    cli, tmp_path = census
    made, out = _export(cli, tmp_path, "analyst")
    con = duckdb.connect()
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    assert made["rows_in"] == 32561 and made["rows_out"] == rows
    assert made["suppressed_rows"] == 32561 - rows and made["suppression_rate"] <= 0.05
    smallest = con.execute(f"SELECT min(n) FROM (SELECT count(DISTINCT person_id) n FROM read_parquet('{out}') "
                           f"GROUP BY {', '.join(QUASI)})").fetchone()[0]
    assert smallest >= 5 and smallest == made["smallest_class"]  # checked independently of the exporter
    assert set(made["quasi_identifiers"]) == set(QUASI)
    assert made["quasi_identifiers"]["age"] != "as shared"  # 32k people over 6 QIs need generalising
    columns = [d[0] for d in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{out}')").fetchall()]
    assert columns == ["person_id", *QUASI, "hours_per_week", "income"]  # no privacy unit, nothing unshared
    raw_ids = {f"P{i:06d}" for i in range(1, 50)}
    assert not raw_ids & {r[0] for r in con.execute(f"SELECT person_id FROM read_parquet('{out}')").fetchall()}
    # On the ledger with the file's exact hash; in the catalogue of exports for both sides.
    assert made["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    _, log, raw = cli("audit", "log", "--json", "--limit", "1000")
    assert made["sha256"] in raw and "export.downloaded" in raw
    assert [e["id"] for e in cli("export", "list", "--as", "census", "--json")[1]] == [made["id"]]
    assert cli("export", "list", "--as", "outsider", "--json")[1] == []


def test_each_recipients_copy_is_watermarked_and_a_leak_is_traced(census):
    cli, tmp_path = census
    analyst, analyst_file = _export(cli, tmp_path, "analyst")
    insurer, insurer_file = _export(cli, tmp_path, "insurer", fmt="csv")
    con = duckdb.connect()
    a = [r[0] for r in con.execute(f"SELECT person_id FROM read_parquet('{analyst_file}')").fetchall()]
    b = [r[0] for r in con.execute(f"SELECT person_id FROM read_csv('{insurer_file}', all_varchar=true)").fetchall()]
    assert not set(a) & set(b)  # pseudonyms are keyed per recipient
    # The analyst's file, re-saved as CSV without its metadata and re-sorted, still names the analyst.
    leaked = tmp_path / "leaked.csv"
    con.execute(f"COPY (SELECT * FROM read_parquet('{analyst_file}') ORDER BY income, age) TO '{leaked}' (HEADER)")
    found = cli("export", "trace", leaked, "--as", "census", "--json")[1]
    assert found[0]["recipient"] == "analyst" and found[0]["matched"] == analyst["rows_out"]
    assert found[0]["column"] == "person_id" and [f["matched"] for f in found[1:]] == [0]
    by_insurer = cli("export", "trace", insurer_file, "--as", "census", "--json")[1]
    assert by_insurer[0]["recipient"] == "insurer"
    assert cli("export", "trace", analyst_file, "--as", "census", "--json")[1][0]["export_in_metadata"] is True
    assert cli("export", "trace", leaked, "--as", "outsider", "--json")[1] == []  # an outsider learns nothing
    # A copy from before pseudonyms were cut to 128 bits: 64 characters, today's 32 first.
    older = tmp_path / "older.csv"
    con.execute(f"COPY (SELECT person_id || md5(person_id) AS person_id, * EXCLUDE (person_id) "
                f"FROM read_parquet('{analyst_file}')) TO '{older}' (HEADER)")
    found = cli("export", "trace", older, "--as", "census", "--json")[1]
    assert found[0]["recipient"] == "analyst" and found[0]["matched"] == analyst["rows_out"]


def test_exports_need_a_rows_agreement(census):
    cli, tmp_path = census
    _, refused, _ = cli("export", "run", "--as", "outsider", "--dataset", "census.adult", "--purpose",
                        "analytics.reporting", "--json", expect=4)
    doc = {"name": "adult-agg", "provider": "census", "recipients": ["outsider"], "purposes": ["analytics.reporting"],
           "valid_until": "2099-12-31", "datasets": {"census.adult": {"fields": {"person_id": "hash", "age": "raw"}}},
           "access": {"mode": "aggregate", "min_group_size": 5}}
    made = cli("agreement", "propose", "--as", "census", write_yaml(tmp_path / "agg.yaml", doc), "--json")[1]
    cli("agreement", "accept", "--as", "outsider", made["id"])
    _, refused, _ = cli("export", "run", "--as", "outsider", "--dataset", "census.adult", "--purpose",
                        "analytics.reporting", "--json", expect=3)
    assert any("not row exports" in r for r in refused["reasons"])


def test_a_rows_proposal_names_the_columns_no_export_would_generalise(census):
    cli, tmp_path = census
    doc = {"name": "adult-age-only", "provider": "census", "recipients": ["outsider"], "purposes": ["analytics.reporting"],
           "valid_until": "2099-12-31",
           "datasets": {"census.adult": {"fields": {"person_id": "hash", "age": "raw", "race": "raw", "gender": "raw",
                                                    "education": "drop", "income": "raw"}}},
           "access": {"mode": "rows", "min_group_size": 5, "quasi_identifiers": ["age"]}}
    path = write_yaml(tmp_path / "age-only.yaml", doc)
    made = cli("agreement", "propose", "--as", "census", path, "--json")[1]
    # the agreement's list replaces the schema's: race and gender would leave as they are
    assert made["ungeneralised"] == {"census.adult": ["race", "gender"]}
    _, _, human = cli("agreement", "propose", "--as", "census", path)
    assert "exports of census.adult will release race, gender as they are" in " ".join(human.split())
    listed = {**doc, "name": "adult-listed", "access": {**doc["access"], "quasi_identifiers": ["age", "race", "gender"]}}
    assert cli("agreement", "propose", "--as", "census", write_yaml(tmp_path / "listed.yaml", listed),
               "--json")[1]["ungeneralised"] == {}


def test_adult_export_with_l_diversity_over_income(census):
    cli, tmp_path = census
    doc = {"name": "adult-diverse", "provider": "census", "recipients": ["analyst"], "purposes": ["analytics.reporting"],
           "valid_until": "2099-12-31",
           "datasets": {"census.adult": {"fields": {"person_id": "hash", **{c: "raw" for c in QUASI}, "income": "raw"}}},
           "access": {"mode": "rows", "min_group_size": 5, "quasi_identifiers": QUASI, "max_suppression": 0.05,
                      "l_diversity": 2}}  # income is the schema's sensitive column
    plain = _export(cli, tmp_path, "analyst")[0]  # under the fixture's agreement (no l)
    assert "least_diversity" not in plain
    made = cli("agreement", "propose", "--as", "census", write_yaml(tmp_path / "diverse.yaml", doc), "--json")[1]
    cli("agreement", "accept", "--as", "analyst", made["id"])
    cli("agreement", "revoke", "--as", "census", plain["agreement"])
    diverse, out = _export(cli, tmp_path, "analyst")
    assert diverse["agreement"] == made["id"] and diverse["l_diversity"] == 2 and diverse["sensitive"] == ["income"]
    con = duckdb.connect()
    classes = con.execute(f"SELECT count(DISTINCT person_id), count(DISTINCT income) FROM read_parquet('{out}') "
                          f"GROUP BY {', '.join(QUASI)}").fetchall()
    assert min(d for _, d in classes) == diverse["least_diversity"] >= 2  # checked on the file, not the report
    assert min(n for n, _ in classes) == diverse["smallest_class"] >= 5
    assert diverse["suppression_rate"] <= 0.05 and diverse["rows_out"] == sum(n for n, _ in classes)
    _, _, human = cli("export", "run", "--as", "analyst", "--dataset", "census.adult", "--purpose", "analytics.reporting")
    assert "least diverse class" in human and "(l = 2)" in human


def test_a_recipients_later_export_is_never_finer_than_its_earlier_ones(census):
    """Copies under one agreement share pseudonyms, so a recipient can join them row by row: a later
    copy starts its walk at the earlier copies' levels instead of going finer on any quasi-identifier."""
    cli, tmp_path = census
    small = tmp_path / "in" / "small.csv"
    duckdb.connect().execute(f"COPY (SELECT * FROM read_csv('{tmp_path / 'in' / 'adult.csv'}') LIMIT 3000) "
                             f"TO '{small}' (HEADER)")
    cli("dataset", "add", "--as", "census", "adult", small, "--schema", tmp_path / "adult.yaml")
    first = _export(cli, tmp_path, "analyst")[0]  # 3,000 people: coarse levels
    cli("dataset", "add", "--as", "census", "adult", tmp_path / "in" / "adult.csv", "--schema", tmp_path / "adult.yaml")
    fresh, fresh_out = _export(cli, tmp_path, "insurer")  # the insurer's first copy of 32,561 people
    later, later_out = _export(cli, tmp_path, "analyst")
    assert first["quasi_identifiers"]["age"] == "buckets of 20" and fresh["quasi_identifiers"]["age"] == "buckets of 10"
    assert later["quasi_identifiers"] == first["quasi_identifiers"]  # not the finer levels the data alone allows
    assert later["no_finer_than_earlier"] == {q: level for q, level in first["quasi_identifiers"].items()
                                              if level != "as shared"}
    assert "no_finer_than_earlier" not in fresh
    con = duckdb.connect()
    ages = [con.execute(f"SELECT count(DISTINCT age) FROM read_parquet('{f}')").fetchone()[0] for f in (fresh_out, later_out)]
    assert ages[1] < ages[0]  # on the files: the analyst's later copy has the coarser ages
