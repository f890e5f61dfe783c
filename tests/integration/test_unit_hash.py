"""The hidden unit column (domain.schema.UNIT_HASH_COLUMN): ingest writes a 63-bit hash of each
row's subject id, governed queries group, count and sketch people on it, and versions written
before it existed give the same answers and the same sketches (the engine derives it)."""

from __future__ import annotations

import duckdb
import pytest

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.adapters.ingest import ParquetIngest
from commonground.adapters.subject_data import SubjectData
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import UNIT_HASH_COLUMN, parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.differencing import DUCKDB_UNIT_HASH
from commonground.policy.governor import govern

SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id"},
    "segment": {"type": "string"},
    "spend": {"type": "double", "role": "sensitive"},
}}


@pytest.fixture
def version(tmp_path):
    """A version of 40 people with 1-3 rows each, ingested the way `dataset add` does."""
    rows = [(f"c{p:03d}", "abcd"[p % 4], float(p * 10 + r)) for p in range(40) for r in range(1 + p % 3)]
    source = tmp_path / "purchases.csv"
    source.write_text("customer_id,segment,spend\n" + "".join(f"{c},{s},{v}\n" for c, s, v in rows))
    ingest = ParquetIngest(tmp_path / "home", max_bytes=1 << 30)
    info, schema = ingest.ingest(source, parse_schema(SCHEMA), tmp_path / "v1.parquet")
    return ingest, info, schema, rows


def test_ingest_writes_the_hidden_unit_column_and_counts_people_on_it(version):
    _, info, schema, rows = version
    stored = duckdb.connect().execute(f"SELECT customer_id, {UNIT_HASH_COLUMN} FROM read_parquet('{info.path}')").fetchall()
    units: dict[str, set[int]] = {}
    for customer, unit in stored:
        units.setdefault(customer, set()).add(unit)
    # One value per person on every one of their rows, a different one for each of the 40 people.
    assert len(stored) == len(rows) and all(len(u) == 1 for u in units.values())
    assert len({u for (u,) in units.values()}) == 40 and all(0 <= u < 2 ** 63 for (u,) in units.values())
    assert UNIT_HASH_COLUMN not in schema.names  # hidden: never a declared column
    assert (info.rows, info.distinct_subjects, info.max_rows_per_subject) == (len(rows), 40, 3)


def test_a_version_stores_each_persons_rows_together(tmp_path):
    """Uploaded interleaved (every person's first row, then every second row, ...), the stored
    version keeps the same rows with each person's rows side by side, and the upload's progress
    only moves forward, to 100."""
    rows = [(f"c{p:03d}", "abcd"[p % 4], float(p * 10 + r)) for r in range(3) for p in range(40) if r <= p % 3]
    source = tmp_path / "purchases.csv"
    source.write_text("customer_id,segment,spend\n" + "".join(f"{c},{s},{v}\n" for c, s, v in rows))
    seen: list[float] = []
    info, _ = ParquetIngest(tmp_path / "home", max_bytes=1 << 30).ingest(
        source, parse_schema(SCHEMA), tmp_path / "v1.parquet", progress=seen.append)
    stored = duckdb.connect().execute(f"SELECT customer_id, segment, spend FROM read_parquet('{info.path}')").fetchall()
    assert sorted(stored) == sorted(rows)
    order = [customer for customer, _, _ in stored]
    runs = [c for i, c in enumerate(order) if i == 0 or order[i - 1] != c]
    assert len(runs) == 40  # one run per person: nobody's rows are split
    assert seen == sorted(seen) and seen[-1] == 100.0
    assert list((tmp_path / "home" / "tmp").glob("*.parquet")) == []  # neither file of the two passes is left


def _context(schema, rows: int) -> QueryContext:
    terms = parse_agreement({
        "name": "t", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics"],
        "valid_until": "2099-12-31", "access": {"mode": "aggregate", "min_group_size": 5},
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}})
    agreement = AgreementState("ag-u", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    table = TableInfo("retailer", "purchases", schema, rows, 3)
    return QueryContext("brand", "analytics", {"retailer.purchases": table}, (agreement,))


@pytest.mark.parametrize("sql", [
    "SELECT segment, COUNT(*) AS n, COUNT(DISTINCT customer_id) AS people, SUM(spend) AS s FROM retailer.purchases "
    "GROUP BY segment",
    "SELECT COUNT(*) AS n FROM retailer.purchases WHERE spend > 100",
])
def test_a_version_from_before_the_column_gives_the_same_result_and_sketches(version, tmp_path, sql):
    _, info, schema, rows = version
    old = tmp_path / "v1-old.parquet"
    duckdb.connect().execute(f"COPY (SELECT * EXCLUDE ({UNIT_HASH_COLUMN}) FROM read_parquet('{info.path}')) "
                             f"TO '{old}' (FORMAT parquet)")
    plan = govern(sql, _context(schema, len(rows)))
    engine = DuckDBEngine(threads=1)
    new_result = engine.run(plan, {"retailer.purchases": info.path})
    old_result = engine.run(plan, {"retailer.purchases": old})
    assert sorted(new_result.rows) == sorted(old_result.rows) and new_result.rows
    assert new_result.sketches == old_result.sketches
    assert {s.scheme for block in new_result.sketches for s in block} == {DUCKDB_UNIT_HASH}


def test_a_person_seeing_their_rows_does_not_see_the_hidden_column(version):
    ingest, info, _, _ = version
    mine = SubjectData(ingest).rows(info.path, "customer_id", ["c005"])
    assert mine["c005"] and all(set(row) == {"customer_id", "segment", "spend"} for row in mine["c005"])
