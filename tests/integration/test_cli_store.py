"""The foundation through the CLI, on SQLite and on PostgreSQL: parties, tokens, datasets, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from .data import write_purchases


def _data_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "data").rglob("*") if p.is_file())


def test_parties_and_tokens(cli):
    _, party, _ = cli("party", "add", "retailer", "--json")
    assert party["name"] == "retailer" and party["kind"] == "organization" and party["id"]
    cli("party", "add", "alice", "--kind", "individual")
    _, parties, _ = cli("party", "list", "--json")
    assert [p["name"] for p in parties] == ["alice", "retailer"]
    _, token, _ = cli("token", "create", "--as", "retailer", "--json")
    assert token["token"].startswith("cg_") and len(token["token"]) >= 43  # 256 bits, url-safe
    _, tokens, out = cli("token", "list", "--as", "retailer", "--json")
    assert token["token"] not in out and len(tokens) == 1
    cli("token", "revoke", token["id"], "--as", "retailer")
    cli("token", "revoke", token["id"], "--as", "retailer", expect=4)


def test_dataset_add_show_and_versions(cli, tmp_path):
    cli("party", "add", "retailer")
    data, schema = write_purchases(tmp_path / "in")
    _, added, _ = cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema, "--json")
    assert added["rows"] == 120 and len(added["sha256"]) == 64 and added["id"]
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    _, shown, _ = cli("dataset", "show", "--as", "retailer", "retailer.purchases", "--json")
    assert shown["rows"] == 120
    roles = {c["name"]: c["role"] for c in shown["columns"]}
    assert roles["customer_id"] == "subject_id" and roles["email"] == "identifier"
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    # Same content, same canonical Parquet, same commitment.
    assert shown["versions"][0]["sha256"] == shown["versions"][1]["sha256"] == added["sha256"]
    assert shown["subjects"] == 60 and shown["max_rows_per_subject"] == 2


def test_dataset_without_schema_warns_and_infers(cli, tmp_path):
    cli("party", "add", "retailer")
    data, _ = write_purchases(tmp_path / "in")
    _, added, out = cli("dataset", "add", "--as", "retailer", "plain", data, "--json")
    assert {c["role"] for c in added["columns"]} == {"attribute"}
    types = {c["name"]: c["type"] for c in added["columns"]}
    assert types["age"] == "integer" and types["spend"] == "double"
    assert "warning" in out


def test_other_partys_dataset_is_not_found_whether_or_not_it_exists(cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    _, _, existing = cli("dataset", "show", "--as", "brand", "retailer.purchases", expect=4)
    _, _, missing = cli("dataset", "show", "--as", "brand", "retailer.nothing", expect=4)
    assert existing.replace("purchases", "X") == missing.replace("nothing", "X")
    _, listed, _ = cli("dataset", "list", "--as", "brand", "--json")
    assert listed == []


@pytest.mark.parametrize("case", [
    "unknown_party", "duplicate_party", "bad_party_name", "unreadable_file", "empty_file", "schema_missing_column",
    "schema_extra_column", "wrong_type", "bad_schema_role", "bad_schema_yaml", "oversized", "unknown_format",
    "null_subject",
])
def test_bad_input_exits_2_and_changes_nothing(cli, tmp_path, monkeypatch, case):
    cli("party", "add", "retailer")
    data, schema = write_purchases(tmp_path / "in")
    before_ledger = cli("audit", "log", "--json", "--limit", "1000")[1]
    args: list = ["dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema]
    message = ""
    if case == "unknown_party":
        args[3] = "nobody"
        message = "unknown party"
    elif case == "duplicate_party":
        args = ["party", "add", "retailer"]
        message = "already exists"
    elif case == "bad_party_name":
        args = ["party", "add", "Bad Name!"]
        message = "invalid party name"
    elif case == "unreadable_file":
        args[5] = tmp_path / "missing.csv"
        message = "cannot read"
    elif case == "empty_file":
        (tmp_path / "empty.csv").write_text("")
        args[5] = tmp_path / "empty.csv"
        message = "empty"
    elif case == "schema_missing_column":
        data.write_text("customer_id,email\nC1,a@b.c\n")
        message = "not in the file"
    elif case == "schema_extra_column":
        data.write_text(data.read_text().replace("spend\n", "spend,extra\n", 1).replace(".5\n", ".5,x\n"))
        message = "not declared"
    elif case == "wrong_type":
        lines = data.read_text().splitlines()
        fields = lines[3].split(",")
        fields[3] = "notanumber"
        lines[3] = ",".join(fields)
        data.write_text("\n".join(lines) + "\n")
        message = "row 3, column age"
    elif case == "bad_schema_role":
        schema.write_text(schema.read_text().replace("role: sensitive", "role: secretive"))
        message = "unknown role"
    elif case == "bad_schema_yaml":
        schema.write_text("columns: {a: [}")
        message = "not valid YAML"
    elif case == "oversized":
        monkeypatch.setenv("COMMONGROUND_MAX_UPLOAD_BYTES", "100")
        message = "over the upload limit"
    elif case == "unknown_format":
        other = tmp_path / "data.xlsx"
        other.write_bytes(b"PK\x03\x04")
        args[5] = other
        message = "unknown file type"
    elif case == "null_subject":
        data.write_text(data.read_text().replace("C0003,", ",", 1))
        message = "have no customer_id"
    code, _, out = cli(*args, expect=2)
    assert message in out, out
    assert len(out.strip().splitlines()) <= 3, "a short, clear reason"
    _, datasets, _ = cli("dataset", "list", "--as", "retailer", "--json")
    assert datasets == []
    assert _data_files(cli.home) == []
    assert list((cli.home / "tmp").rglob("*.parquet")) == [] if (cli.home / "tmp").exists() else True
    assert cli("audit", "log", "--json", "--limit", "1000")[1] == before_ledger


def test_bad_input_as_json(cli):
    code, data, _ = cli("party", "add", "Bad Name", "--json", expect=2)
    assert data["error"] == "bad_input" and "invalid party name" in data["message"]


def test_store_not_initialised(tmp_path, monkeypatch):
    from tests.conftest import Cli
    c = Cli(tmp_path / "nowhere", None, monkeypatch)
    _, _, out = c("party", "list", expect=2)
    assert "commonground init" in out


def test_killed_upload_leaves_nothing(sqlite_cli, tmp_path):
    """A crash mid-upload leaves a temporary file at most; the next init sweeps it."""
    cli = sqlite_cli
    cli("party", "add", "retailer")
    (cli.home / "tmp").mkdir(exist_ok=True)
    (cli.home / "tmp" / "upload-dead.parquet").write_bytes(b"half a file")
    orphan = cli.home / "data" / "retailer" / "purchases" / "v1-dead.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"moved but never committed")
    cli("init")
    assert not orphan.exists() and not (cli.home / "tmp" / "upload-dead.parquet").exists()
    _, datasets, _ = cli("dataset", "list", "--as", "retailer", "--json")
    assert datasets == []


def test_adult_census_loads_with_a_schema(sqlite_cli, tmp_path):
    from tests.conftest import SHARED_DATA
    adult = SHARED_DATA / "adult.csv"
    if not adult.exists():
        pytest.skip("../shared/data/adult.csv not present")
    schema = tmp_path / "adult.yaml"
    schema.write_text(ADULT_SCHEMA)
    cli = sqlite_cli
    cli("party", "add", "census")
    _, added, _ = cli("dataset", "add", "--as", "census", "adult", adult, "--schema", schema, "--json")
    assert added["rows"] == 32561
    names = [c["name"] for c in added["columns"]]
    assert names[0] == "person_id" and "marital_status" in names and "native_country" in names
    _, result, _ = cli("query", "--as", "census", "--purpose", "analytics.reporting", "--json",
                       "SELECT count(*) AS n, count(work_class) AS known FROM census.adult WHERE work_class = 'Private'")
    assert result["rows"][0][0] == 22696  # leading spaces trimmed
    _, nulls, _ = cli("query", "--as", "census", "--purpose", "analytics.reporting", "--json",
                      "SELECT count(*) FROM census.adult WHERE work_class IS NULL")
    assert nulls["rows"][0][0] == 1836  # '?' read as missing


ADULT_SCHEMA = """
row_id: person_id
null_values: ["?", ""]
columns:
  Age: {type: integer, role: quasi_identifier, category: user.demographic.age_range}
  work-class: {type: string, role: attribute, category: user.job_title}
  fnlwgt: {type: integer, role: attribute, category: system.operations}
  education: {type: string, role: quasi_identifier, category: user.demographic}
  education-num: {type: integer, role: attribute, category: user.demographic}
  marital-status: {type: string, role: quasi_identifier, category: user.demographic.marital_status}
  occupation: {type: string, role: attribute, category: user.job_title}
  relationship: {type: string, role: attribute, category: user.demographic}
  race: {type: string, role: quasi_identifier, category: user.demographic.race_ethnicity}
  gender: {type: string, role: quasi_identifier, category: user.demographic.gender}
  capital-loss: {type: integer, role: sensitive, category: user.financial}
  capital-gain: {type: integer, role: sensitive, category: user.financial}
  hours-per-week: {type: integer, role: attribute, category: user.job_title}
  native-country: {type: string, role: quasi_identifier, category: user.demographic}
  income: {type: string, role: sensitive, category: user.financial}
"""
