"""A query repeated over the same inputs (services/privacy.release_fingerprint) is released again
without differencing sketches or the check, through the real service, engine and store (SQLite
and PostgreSQL); anything that could change its groups makes it a new release, checked in full."""

from __future__ import annotations

import dataclasses

import pytest

from commonground import bootstrap
from commonground.domain.errors import Refused
from commonground.services import audit, queries

from .data import agreement, write_purchases, write_yaml

PURPOSE = "analytics.reporting"
P = "retailer.purchases"
BY_SEGMENT = f"SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM {P} GROUP BY segment"


class RecordingEngine:
    """The real engine, keeping the plans it was given (a fake wrapper, not a mock)."""

    def __init__(self, engine):
        self.engine, self.plans = engine, []

    def run(self, plan, sources, consent=None):
        self.plans.append(plan)
        return self.engine.run(plan, sources, consent)


def _sketched(plan) -> bool:
    return all(g.sketch_sql is not None for g in plan.groups)


@pytest.fixture
def service(cli, tmp_path):
    cli("party", "add", "retailer")
    cli("party", "add", "brand")
    data, schema = write_purchases(tmp_path / "in", people=60, rows_each=2)
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    made = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", agreement("aggregate")), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])
    deps = bootstrap.build(bootstrap.Settings.from_env(cli.home))
    engine = RecordingEngine(deps.engine)
    yield dataclasses.replace(deps, engine=engine), engine, (data, schema)
    deps.store.dispose()


def _last_entry(deps) -> dict:
    return audit.log(deps, 0, 1_000_000)[-1]


def test_a_repeat_is_released_as_it_was_without_sketches(service):
    deps, engine, _ = service
    first, plan = queries.run_query(deps, "brand", PURPOSE, BY_SEGMENT)
    first_index = _last_entry(deps)["index"]
    second, _ = queries.run_query(deps, "brand", PURPOSE, BY_SEGMENT)
    assert plan.repeatable and _sketched(engine.plans[0]) and not _sketched(engine.plans[1])
    assert sorted(second.rows) == sorted(first.rows) and second.suppressed_groups == first.suppressed_groups
    entry = _last_entry(deps)
    assert entry["allowed"] and entry["repeat_of"] == first_index
    # The history is intact: a difference of one person from the first release is still refused.
    with pytest.raises(Refused, match="differencing"):
        queries.run_query(deps, "brand", PURPOSE, f"SELECT COUNT(*) AS n, SUM(spend) AS s FROM {P} WHERE spend < 49")


def test_new_data_or_a_clock_in_the_query_is_a_new_release(service, cli, tmp_path):
    deps, engine, (data, schema) = service
    queries.run_query(deps, "brand", PURPOSE, BY_SEGMENT)
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)  # the same bytes again
    queries.run_query(deps, "brand", PURPOSE, BY_SEGMENT)
    assert "repeat_of" in _last_entry(deps) and not _sketched(engine.plans[1])
    more, _ = write_purchases(tmp_path / "more", people=75, rows_each=2)  # a version with other rows
    cli("dataset", "add", "--as", "retailer", "purchases", more, "--schema", schema)
    queries.run_query(deps, "brand", PURPOSE, BY_SEGMENT)
    assert "repeat_of" not in _last_entry(deps) and _sketched(engine.plans[2])
    dated = f"SELECT segment, COUNT(*) AS n FROM {P} WHERE CURRENT_DATE > DATE '2000-01-01' GROUP BY segment"
    for _ in range(2):
        _, plan = queries.run_query(deps, "brand", PURPOSE, dated)
        assert not plan.repeatable and _sketched(engine.plans[-1])
    assert "repeat_of" not in _last_entry(deps)
