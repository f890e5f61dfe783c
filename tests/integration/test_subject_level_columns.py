"""Subject-level columns (ParquetIngest.subject_level_columns): ingest finds the columns that hold
one value on all of a person's rows, exactly (no hash), and the store keeps them with the version,
where dp's plan reads them (tests/unit/test_dp_bounding.py holds the plan's side)."""

from __future__ import annotations

from commonground.adapters.ingest import ParquetIngest
from commonground.adapters.subject_data import SubjectData
from commonground.domain.schema import parse_schema

from .data import write_purchases

SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id"},
    "segment": {"type": "string"},      # one value per person
    "region": {"type": "string"},       # one value per person, but c001 has it on one row only (NULL on the other)
    "tier": {"type": "string"},         # NULL on all rows of some people, one value for the others
    "channel": {"type": "string"},      # differs between c002's rows only
    "visits": {"type": "integer"},      # one value per person
    "joined": {"type": "date"},         # one value per person
    "income": {"type": "double"},       # one value per person, but a DOUBLE: never claimed
}}


def _rows() -> list[tuple]:
    rows = []
    for p in range(12):
        for r in range(1 + p % 3):
            region = "" if (p, r) == (1, 1) else "nsew"[p % 4]
            tier = "" if p % 2 else "gold"
            channel = "web" if (p, r) != (2, 1) else "shop"
            rows.append((f"c{p:03d}", "ab"[p % 2], region, tier, channel, p, f"2020-01-{p + 1:02d}", 1000.0 + p))
    return rows


def _ingest(tmp_path, rows, schema=SCHEMA, name="v1"):
    source = tmp_path / f"{name}.csv"
    header = ",".join(schema["columns"])
    source.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    ingest = ParquetIngest(tmp_path / "home", max_bytes=1 << 30)
    info, parsed = ingest.ingest(source, parse_schema(schema), tmp_path / f"{name}.parquet")
    return ingest, info, parsed


def test_ingest_finds_the_columns_with_one_value_per_person(tmp_path):
    _, info, _ = _ingest(tmp_path, _rows())
    assert info.max_rows_per_subject == 3
    assert info.subject_level_columns == frozenset({"segment", "tier", "visits", "joined"})


def test_at_most_one_row_per_person_every_column_qualifies(tmp_path):
    rows = [r for r in _rows() if r[0] not in {"c001", "c002"}]
    one_each = list({r[0]: r for r in rows}.values())
    _, info, parsed = _ingest(tmp_path, one_each)
    assert info.max_rows_per_subject == 1 and info.subject_level_columns == frozenset(parsed.names)


def test_a_version_without_subjects_has_no_subject_level_columns(tmp_path):
    schema = {"columns": {"segment": {"type": "string"}, "visits": {"type": "integer"}}}
    _, info, _ = _ingest(tmp_path, [("a", 1), ("a", 2)], schema)
    assert info.subject_level_columns is None


def test_erasing_the_person_whose_rows_differed_makes_the_column_subject_level(tmp_path):
    """A person's erasure writes a new version (SubjectData.without); its facts are found again."""
    ingest, info, parsed = _ingest(tmp_path, _rows())
    erased = SubjectData(ingest).without(info.path, "customer_id", "c002", tmp_path / "v2.parquet", parsed)
    assert erased.subject_level_columns == frozenset({"segment", "tier", "visits", "joined", "channel"})


def test_the_store_keeps_them_with_the_version_and_shows_its_owner(cli, tmp_path):
    cli("party", "add", "retailer")
    data, schema = write_purchases(tmp_path / "in", people=30, rows_each=2)
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    shown = cli("dataset", "show", "--as", "retailer", "retailer.purchases", "--json")[1]
    # every column but the subject id and spend (a DOUBLE that differs between a person's rows)
    assert shown["subject_level_columns"] == ["age", "email", "segment", "zip"]
    text = cli("dataset", "show", "--as", "retailer", "retailer.purchases")[2]
    assert "30 subjects, at most 2 rows each; one value per subject: age, email, segment, zip" in text
