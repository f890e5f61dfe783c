"""Person numbers (domain.schema.PERSON_NUMBER_COLUMN): where people have several rows, ingest
writes each person's number, 0 to subjects - 1 in unit order; the store remembers that the
version has them; dp's contribution bounding groups by them, which lets DuckDB aggregate with a
perfect hash; and the bounded groups are exactly those of grouping by the unit hash."""

from __future__ import annotations

import duckdb
import pytest

from commonground.adapters.duckdb_engine import DuckDBEngine, perfect_hash_bits
from commonground.adapters.ingest import ParquetIngest
from commonground.adapters.subject_data import SubjectData
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import PERSON_NUMBER_COLUMN, UNIT_HASH_COLUMN, parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern
from commonground.services import datasets as dataset_svc
from commonground.services import parties as party_svc

SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id"},
    "segment": {"type": "string"},
    "spend": {"type": "double", "role": "sensitive"},
}}
SQL = "SELECT segment, COUNT(*) AS n, SUM(spend) AS s, MEDIAN(spend) AS m FROM retailer.purchases GROUP BY segment"


def _ingest(tmp_path, people: int, rows_each, name: str = "v1"):
    """`people` people with rows_each(p) rows each, in one of four segments (one per person)."""
    rows = [(f"c{p:05d}", "abcd"[p % 4], float(p % 97 * 10 + r)) for p in range(people) for r in range(rows_each(p))]
    source = tmp_path / f"{name}.csv"
    source.write_text("customer_id,segment,spend\n" + "".join(f"{c},{s},{v}\n" for c, s, v in rows))
    ingest = ParquetIngest(tmp_path / "home", max_bytes=1 << 30)
    info, schema = ingest.ingest(source, parse_schema(SCHEMA), tmp_path / f"{name}.parquet")
    return ingest, info, schema


def _stored(path) -> list[tuple]:
    return duckdb.connect().execute(
        f"SELECT customer_id, {UNIT_HASH_COLUMN}, {PERSON_NUMBER_COLUMN} FROM read_parquet('{path}')").fetchall()


def test_ingest_numbers_the_people_of_a_version_with_several_rows_each(tmp_path):
    _, info, schema = _ingest(tmp_path, 40, lambda p: 1 + p % 3)
    stored = _stored(info.path)
    numbers: dict[str, set[int]] = {}
    for customer, _, number in stored:
        numbers.setdefault(customer, set()).add(number)
    assert info.person_numbers and PERSON_NUMBER_COLUMN not in schema.names
    assert all(len(n) == 1 for n in numbers.values())  # one number on all of a person's rows
    assert sorted(n for (n,) in numbers.values()) == list(range(40))  # 0..39, one each
    # Numbered in unit order, and the file is in that order: the column is sorted.
    assert [n for *_, n in stored] == sorted(n for *_, n in stored)
    assert [u for _, u, _ in stored] == sorted(u for _, u, _ in stored)


def test_one_row_per_person_is_not_numbered(tmp_path):
    _, info, _ = _ingest(tmp_path, 40, lambda p: 1)
    columns = [r[0] for r in duckdb.connect().execute(f"DESCRIBE SELECT * FROM read_parquet('{info.path}')").fetchall()]
    assert not info.person_numbers and PERSON_NUMBER_COLUMN not in columns and UNIT_HASH_COLUMN in columns


def test_an_erasure_keeps_the_other_peoples_numbers(tmp_path):
    ingest, info, schema = _ingest(tmp_path, 40, lambda p: 1 + p % 3)
    erased = SubjectData(ingest).without(info.path, "customer_id", "c00005", tmp_path / "v2.parquet", schema)
    before = {c: n for c, _, n in _stored(info.path) if c != "c00005"}
    assert erased.person_numbers and {c: n for c, _, n in _stored(erased.path)} == before


def _plan(sql: str, schema, rows: int, person_numbers: bool, subject_level: frozenset[str]):
    terms = parse_agreement({
        "name": "t", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics"],
        "valid_until": "2099-12-31",
        "access": {"mode": "dp", "min_group_size": 5, "epsilon": 10, "epsilon_per_query": 1.0, "delta": 1e-6,
                   "max_groups_per_subject": 1, "bounds": {"spend": [0, 1000]}},
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}})
    agreement = AgreementState("ag-n", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    table = TableInfo("retailer", "purchases", schema, rows, 3, subject_level_columns=subject_level,
                      person_numbers=person_numbers)
    return govern(sql, QueryContext("brand", "analytics", {"retailer.purchases": table}, (agreement,)))


def _bounded(plan, path) -> tuple[list[tuple], str]:
    """The plan's bounded groups before noise, read through the engine's governed connection, and
    DuckDB's physical plan for them."""
    with DuckDBEngine(threads=2).governed_connection(plan, {"retailer.purchases": path}) as con:
        rows = sorted(con.execute(plan.sql).fetchall(), key=repr)
        return rows, "\n".join(r[1] for r in con.execute("EXPLAIN " + plan.sql).fetchall())


UNGROUPED = "SELECT COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases"


@pytest.mark.parametrize("sql, subject_level, by_number", [
    (SQL, frozenset({"segment"}), True),   # one group per person: grouped on the number alone
    (UNGROUPED, frozenset(), True),        # one group for everyone: the same
    (SQL, frozenset(), False),             # the general plan: hashed with the labels, on the unit
], ids=["one-group", "ungrouped", "chosen"])
def test_dp_bounds_people_by_their_numbers_with_the_same_groups_as_by_unit(tmp_path, sql, subject_level, by_number):
    """5,000 people (13 bits of numbers, above DuckDB's default perfect-hash cap of 12). Where
    each person is in one group, their rows are aggregated on their number with a perfect hash;
    the bounded groups equal those of the plan on the unit hash (a version without numbers).
    The general plan keeps the unit: grouped with the labels, the key is hashed anyway."""
    _, info, schema = _ingest(tmp_path, 5000, lambda p: 1 + p % 3)
    numbered, unit = (_plan(sql, schema, info.rows, flag, subject_level) for flag in (True, False))
    column = PERSON_NUMBER_COLUMN if by_number else UNIT_HASH_COLUMN
    assert f'"{column}" AS "__cg_pu"' in numbered.views[0].select_sql
    assert f'"{UNIT_HASH_COLUMN}" AS "__cg_pu"' in unit.views[0].select_sql
    (by_plan, explained), (by_unit, _) = _bounded(numbered, info.path), _bounded(unit, info.path)
    assert by_plan == by_unit and sum(r[1 if sql == SQL else 0] for r in by_plan) == 5000  # people, once each
    assert ("PERFECT_HASH_GROUP_BY" in explained.upper().replace(" ", "_")) == by_number


def test_the_store_keeps_whether_a_version_is_numbered(make_deps, tmp_path):
    deps = make_deps()
    party_svc.add_party(deps, "retailer")
    for name, rows_each in (("several", lambda p: 1 + p % 2), ("single", lambda p: 1)):
        _, info, _ = _ingest(tmp_path, 30, rows_each, name)
        dataset_svc.add_dataset(deps, "retailer", name, tmp_path / f"{name}.csv", SCHEMA)
    with deps.store.read() as conn:
        versions = {v.name: v.person_numbers for v in deps.store.versions(conn, "retailer")}
    assert versions == {"several": True, "single": False}


def test_the_perfect_hash_cap_keeps_all_threads_tables_bounded():
    assert perfect_hash_bits(2) == 22  # ~4M people on a two-core machine
    for threads in (1, 2, 3, 8, 16, 64, 10_000):
        bits = perfect_hash_bits(threads)
        assert bits >= 12  # never below DuckDB's own default
        assert bits == 12 or threads * 2 ** bits <= 2 ** 23  # every thread's table together
