"""A server warms up before it answers (bootstrap.warm_up, called by `serve`): the vocabulary is
loaded, SQLGlot's dialect too, and the DuckDB engine is made and has opened a connection; the
first query then uses that engine. Spark stays lazy: warming up starts no JVM."""

from __future__ import annotations

from commonground import bootstrap
from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.vocabulary import fideslang_vocabulary
from commonground.services import datasets as dataset_svc
from commonground.services import parties as party_svc
from commonground.services import queries as query_svc


def test_warm_up_makes_the_engine_the_first_query_then_uses(make_deps, tmp_path):
    deps = make_deps()
    fideslang_vocabulary.cache_clear()
    assert deps.engine._engine is None  # lazy: nothing made by build()
    bootstrap.warm_up(deps)
    made = deps.engine._engine
    assert isinstance(made, DuckDBEngine) and fideslang_vocabulary.cache_info().currsize == 1
    party_svc.add_party(deps, "retailer")
    data = tmp_path / "d.csv"
    data.write_text("segment,n\na,1\nb,2\n")
    dataset_svc.add_dataset(deps, "retailer", "d", data, {"columns": {"segment": {"type": "string"}, "n": {"type": "integer"}}})
    result, _ = query_svc.run_query(deps, "retailer", "analytics.reporting", "SELECT sum(n) AS s FROM retailer.d")
    assert result.rows == [[3]] and deps.engine._engine is made


def test_warm_up_leaves_spark_lazy(tmp_path):
    engine = bootstrap.LazyEngine("spark", master="local[1]")
    engine.warm_up()
    assert engine._engine is None
