"""The one-pass group table (policy/differencing.sketched_group): the group table and its groups'
sketch cells from one GROUP BY GROUPING SETS, instead of a second pass over the rows. For every
query the red-team suite and the join tests send, it must release the same rows, suppress the
same groups and give the same sketches as the two-pass form (adapters/group_sketch.py)."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.adapters.ingest import ParquetIngest
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.errors import BadInput, NotFound, Refused
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern

from .data import BRAND_SCHEMA, PURCHASES_SCHEMA, agreement, write_brand, write_purchases
from .test_redteam import ATTACKS, P

JOINS = [
    "SELECT b.tier, COUNT(*) AS n, SUM(p.spend) AS s FROM retailer.purchases p JOIN brand.customers b "
    "ON p.customer_id = b.customer_id GROUP BY b.tier",
    "SELECT b.tier, p.segment, COUNT(*) AS n FROM retailer.purchases p JOIN brand.customers b "
    "ON p.customer_id = b.customer_id WHERE p.spend > 10 GROUP BY b.tier, p.segment HAVING COUNT(*) > 6",
    "SELECT COUNT(*) AS n FROM retailer.purchases p JOIN brand.customers b ON p.customer_id = b.customer_id",
    f"SELECT segment, COUNT(*) AS n FROM {P} GROUP BY segment UNION ALL SELECT 'all', COUNT(*) FROM {P}",
    f"SELECT age, zip, COUNT(*) AS n, AVG(spend) AS a FROM {P} GROUP BY 1, 2 ORDER BY n DESC LIMIT 3",
    # Groups of fewer than k people next to larger ones: what is suppressed must match too.
    f"SELECT spend, COUNT(*) AS n FROM {P} GROUP BY spend",
    f"SELECT age, zip, segment, COUNT(*) AS n, MIN(spend) AS lo, MAX(spend) AS hi FROM {P} GROUP BY age, zip, segment",
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("one-pass")
    purchases, _ = write_purchases(folder, people=60, rows_each=3)
    brand, _ = write_brand(folder)
    ingest = ParquetIngest(folder / "home", max_bytes=1 << 30)
    tables, paths = {}, {}
    for key, source, schema in (("retailer.purchases", purchases, PURCHASES_SCHEMA), ("brand.customers", brand, BRAND_SCHEMA)):
        info, parsed = ingest.ingest(source, parse_schema(schema), folder / f"{key}.parquet")
        owner, name = key.split(".")
        tables[key] = TableInfo(owner, name, parsed, info.rows, info.max_rows_per_subject)
        paths[key] = info.path
    terms = parse_agreement(yaml.safe_load(yaml.safe_dump(agreement("join", k=5))))
    state = AgreementState("ag-1", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    return QueryContext("brand", "analytics.reporting", tables, (state,)), paths


def _two_pass(plan):
    return dataclasses.replace(plan, groups=tuple(dataclasses.replace(g, fast_sketched_sql=None, exact_sketched_sql=None)
                                                  for g in plan.groups))


QUERIES = sorted({sql for steps in ATTACKS.values() for sql, _ in steps} | set(JOINS))


@pytest.mark.parametrize("sql", QUERIES)
def test_one_pass_releases_and_sketches_what_two_passes_do(sources, sql):
    context, paths = sources
    try:
        plan = govern(sql, context)
    except (Refused, NotFound):
        return  # refused by the rules (or reads a dataset not here): nothing to compare
    if not plan.groups or plan.dp is not None:
        return
    engine = DuckDBEngine(threads=1)
    assert _outcome(engine, plan, paths) == _outcome(engine, _two_pass(plan), paths)


def _exact_only(plan):
    """The plan as for people of unknown row counts: every group counted exactly at once."""
    return dataclasses.replace(plan, groups=tuple(dataclasses.replace(g, fast_sql=None, fast_sketched_sql=None)
                                                  for g in plan.groups))


@pytest.mark.parametrize("sql", QUERIES)
def test_exact_counting_one_pass_matches_two_passes(sources, sql):
    """The same comparison where groups are counted exactly (COUNT(DISTINCT unit)) from the start,
    as for people of unknown row counts."""
    context, paths = sources
    try:
        plan = govern(sql, context)
    except (Refused, NotFound):
        return
    if not plan.groups or plan.dp is not None:
        return
    engine = DuckDBEngine(threads=1)
    assert _outcome(engine, _exact_only(plan), paths) == _outcome(engine, _two_pass(_exact_only(plan)), paths)


def _outcome(engine: DuckDBEngine, plan, paths):
    """What the querier gets and what the history keeps, or the engine's error (overflow attacks)."""
    try:
        result = engine.run(plan, paths)
    except BadInput as e:
        return str(e)
    return result.columns, result.rows, result.suppressed_groups, result.exact_recount, result.sketches


def test_most_queries_take_the_one_pass_form(sources):
    """The comparison above is not vacuous: the governed plans do carry the one-pass SQL."""
    context, _ = sources
    carried = []
    for sql in QUERIES:
        try:
            plan = govern(sql, context)
        except (Refused, NotFound):
            continue
        carried += [g.exact_sketched_sql is not None for g in plan.groups]
    assert len(carried) >= 40 and sum(carried) >= 0.9 * len(carried)
