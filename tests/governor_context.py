"""A governor QueryContext built from a catalog document in the shape of
tests/fixtures/governor/context.yaml: the party's own datasets plus those its agreements grant.

Shared by the unit fixtures, the sealing tests (their own catalog) and the Spark parity suite
(which cannot import tests/unit/conftest.py: both modules are named `conftest`)."""

from __future__ import annotations

from pathlib import Path

import yaml

from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo

GOVERNOR_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "governor"


def build_context(name: str, doc: dict | None = None) -> QueryContext:
    """The QueryContext of one named context: own datasets plus those granted to the party."""
    doc = doc or yaml.safe_load((GOVERNOR_FIXTURES / "context.yaml").read_text())
    party, purpose = doc["contexts"][name]["party"], doc["contexts"][name]["purpose"]
    agreements = tuple(
        AgreementState(a["id"], 1, terms, AgreementStatus.ACTIVE, frozenset(terms.parties), a["hash_key"].encode())
        for a in doc["agreements"] for terms in [parse_agreement(a["terms"])] if party in terms.recipients
    )
    granted = {g.dataset for a in agreements for g in a.terms.datasets}
    tables = {}
    for key, d in doc["datasets"].items():
        owner, table = key.split(".")
        if owner == party or key in granted:
            tables[key] = TableInfo(owner, table, parse_schema(d["schema"]), d["rows"], d["max_rows_per_subject"])
    return QueryContext(party, purpose, tables, agreements)


def add_unit_hash(con, table: str = "cg_source", subject: str = "customer_id") -> None:
    """Give a hand-made version table the hidden unit column ingest writes (the governed views read it)."""
    from commonground.adapters.ingest import unit_hash_sql
    from commonground.domain.schema import UNIT_HASH_COLUMN

    con.execute(f"ALTER TABLE {table} ADD COLUMN {UNIT_HASH_COLUMN} BIGINT")
    con.execute(f"UPDATE {table} SET {UNIT_HASH_COLUMN} = {unit_hash_sql(subject)}")
