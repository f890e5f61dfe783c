"""DuckDB and Spark give identical results for the same governed plan.

Every governor fixture case that returns data (tests/fixtures/governor/*.yaml, run in its
context) is governed once and the plan is run on both engines over the same deterministic
Parquet data; so are consent-gated views (base, withdrawals and grants since the base) and the
keyed pseudonym (the same HMAC-SHA256 hex on both engines, checked against Python's hmac).
Results compare order-insensitively unless the query orders them, floats within 1e-9
(relative). One local SparkSession serves the whole module. Skipped without pyspark or Java.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("Spark needs Java", allow_module_level=True)

import duckdb  # noqa: E402

from commonground.adapters.duckdb_engine import DuckDBEngine  # noqa: E402
from commonground.adapters.spark_engine import SparkEngine  # noqa: E402
from commonground.domain.errors import BadInput, NotFound, Refused  # noqa: E402
from commonground.policy.context import Plan, RelationView  # noqa: E402
from commonground.policy.governor import govern  # noqa: E402
from commonground.ports import ConsentGate, ConsentSnapshot  # noqa: E402
from tests.governor_context import build_context  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "governor"
CONTEXT = yaml.safe_load((FIXTURES / "context.yaml").read_text())


def _cases() -> list:
    params = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        if path.name == "context.yaml":
            continue
        for case in yaml.safe_load(path.read_text()):
            if case.get("not_found") or case.get("bad_input") or "refused" in case:
                continue
            params.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return params


# -- data: deterministic, consistent with context.yaml's rows and rows-per-subject bounds ------

PRODUCTS = ["syrup", "pancakes", "waffles", "butter", "berries", "cream", "tea"]
WEIGHTS = [7, 6, 5, 4, 3, 2, 1]  # distinct group sizes, so ORDER BY count has no ties


def _write_data(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    products = [p for p, w in zip(PRODUCTS, WEIGHTS) for _ in range(w)]
    con.execute("CREATE TABLE product_pick AS SELECT * FROM (SELECT unnest($p) AS product, "
                "generate_subscripts($p, 1) - 1 AS i)", {"p": products})
    # retailer.purchases: 2000 rows, 500 customers x 4 rows (the context's bound is 4).
    con.execute(f"""
        CREATE TABLE purchases AS
        SELECT 'C' || lpad(CAST(r // 4 AS VARCHAR), 4, '0') AS customer_id,
               'c' || CAST(r // 4 AS VARCHAR) || '@example.org' AS email,
               CASE WHEN r % 97 = 0 THEN NULL ELSE CAST(10000 + (r * 37) % 23 * 113 AS VARCHAR) END AS store_zip,
               CAST(18 + (r // 4) % 61 AS INTEGER) AS age,
               CAST(((r * 7919) % 10007) / 100.0 AS DOUBLE) AS spend,
               (SELECT product FROM product_pick WHERE i = (r * 13) % {len(products)}) AS product
        FROM range(2000) t(r)""")
    # brand.customers: 300 customers, a third of them outside the retailer's.
    con.execute("""
        CREATE TABLE customers AS
        SELECT 'C' || lpad(CAST(r * 2 AS VARCHAR), 4, '0') AS customer_id,
               ['gold', 'silver', 'bronze', 'tin'][1 + (r % 4)] AS loyalty_tier
        FROM range(300) t(r)""")
    # clinic.visits: 900 rows, 180 patients x 5 visits.
    con.execute("""
        CREATE TABLE visits AS
        SELECT 'P' || lpad(CAST(r // 5 AS VARCHAR), 4, '0') AS patient_id,
               lpad(CAST(100000000 + (r // 5) * 7777 AS VARCHAR), 9, '0') AS ssn,
               CAST(30000 + (r * 53) % 17 * 211 AS VARCHAR) AS zip,
               ['flu', 'sprain', 'checkup', 'allergy', 'migraine'][1 + ((r * 7) % 11) % 5] AS diagnosis,
               CAST(50 + (r * 131) % 997 + 0.25 AS DOUBLE) AS cost,
               DATE '2026-01-01' + CAST((r * 17) % 300 AS INTEGER) AS visit_date
        FROM range(900) t(r)""")
    con.execute("""
        CREATE TABLE policies AS
        SELECT 'P' || lpad(CAST(r AS VARCHAR), 4, '0') AS patient_id, ['basic', 'plus', 'premium'][1 + r % 3] AS plan
        FROM range(500) t(r)""")
    paths = {}
    for dataset, table in [("retailer.purchases", "purchases"), ("brand.customers", "customers"),
                           ("clinic.visits", "visits"), ("insurer.policies", "policies")]:
        paths[dataset] = folder / f"{table}.parquet"
        con.execute(f"COPY {table} TO '{paths[dataset]}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    return paths


@pytest.fixture(scope="module")
def engines():
    spark = SparkEngine(master="local[2]", timeout_s=300, conf={"spark.sql.shuffle.partitions": "2"})
    yield DuckDBEngine(memory_limit="1GB", threads=2), spark
    spark.stop()


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return _write_data(tmp_path_factory.mktemp("parity"))


def _norm(value):
    if isinstance(value, float):
        return ("f", value)
    if isinstance(value, dt.datetime):
        return ("t", value.replace(tzinfo=None))
    return ("v", value)


def _same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return _norm(a) == _norm(b)


def _sort_key(row):
    return [(v is None, str(type(v).__name__) if v is not None else "", round(v, 6) if isinstance(v, float) else v)
            for v in row]


def assert_same(left, right, ordered: bool) -> None:
    a, b = [list(r) for r in left.rows], [list(r) for r in right.rows]
    assert len(a) == len(b), f"{len(a)} rows on DuckDB, {len(b)} on Spark"
    if not ordered:
        a, b = sorted(a, key=_sort_key), sorted(b, key=_sort_key)
    for ra, rb in zip(a, b):
        assert len(ra) == len(rb) and all(_same_value(x, y) for x, y in zip(ra, rb)), f"DuckDB {ra} != Spark {rb}"


def _run_both(engines, plan: Plan, sources, consent=None):
    duck, spark = engines
    return duck.run(plan, sources, consent), spark.run(plan, sources, consent)


@pytest.mark.parametrize("case", _cases())
def test_fixture_case_gives_the_same_result_on_both_engines(case, engines, sources):
    plan = govern(case["sql"], build_context(case["context"], CONTEXT))
    on_duckdb, on_spark = _run_both(engines, plan, sources)
    assert on_duckdb.rows, "the data should give every case some rows"
    if plan.governed:
        assert on_duckdb.columns == on_spark.columns == list(plan.columns)
        assert on_duckdb.suppressed_groups == on_spark.suppressed_groups
        assert on_duckdb.exact_recount == on_spark.exact_recount
    assert_same(on_duckdb, on_spark, ordered="order by" in case["sql"].lower())


def test_refused_fixture_cases_never_reach_an_engine():
    """The parity suite covers what returns data; the rest is refused before any engine runs."""
    refused = 0
    for path in sorted(FIXTURES.glob("*.yaml")):
        if path.name == "context.yaml":
            continue
        for case in yaml.safe_load(path.read_text()):
            if case.get("not_found") or case.get("bad_input") or "refused" in case:
                with pytest.raises((NotFound, BadInput, Refused)):
                    govern(case["sql"], build_context(case["context"], CONTEXT))
                refused += 1
    assert refused > 0


# -- the keyed pseudonym -------------------------------------------------------------------

VALUES = ["C0001", "", "émile", "x" * 70, "a'b", "C0002"]


@pytest.mark.parametrize("key", [b"syrup-insights-test-key-32-bytes", b"k", bytes(range(64))])
def test_keyed_hash_gives_the_same_pseudonyms_on_both_engines(key, engines, tmp_path):
    path = tmp_path / "values.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT unnest($v) AS v, 42 AS n) TO '{path}' (FORMAT parquet)", {"v": VALUES})
    con.close()
    plan = Plan(views=(RelationView("own.vals", 'SELECT "v" AS "v", "n" AS "n" FROM cg_source'),),
                pseudonym_keys={"cg_pseudonym_ag1": key}, columns=("v", "p", "q"),
                sql="SELECT v, cg_pseudonym_ag1(v) AS p, cg_pseudonym_ag1(n) AS q FROM own.vals", datasets=("own.vals",))
    on_duckdb, on_spark = _run_both(engines, plan, {"own.vals": path})
    expected = sorted([[v, hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32],
                        hmac.new(key, b"42", hashlib.sha256).hexdigest()[:32]] for v in VALUES])
    assert sorted(on_duckdb.rows) == expected
    assert sorted(on_spark.rows) == expected


def test_two_agreements_keep_the_hash_and_both_engines_agree(engines, sources):
    """With two agreements in one query the keyed hash is not elided: the views call it, and the
    distinct pseudonyms counted come out the same on both engines."""
    ctx = build_context("brand", CONTEXT)
    ag1, ag2 = ctx.agreements
    ag2 = replace(ag2, terms=replace(ag2.terms, purposes=ag2.terms.purposes + ("analytics.reporting",)))
    plan = govern("select product, count(distinct customer_id) from retailer.purchases group by 1 union all "
                  "select diagnosis, count(distinct patient_id) from clinic.visits group by 1",
                  replace(ctx, agreements=(ag1, ag2)))
    assert set(plan.pseudonym_keys) == {"cg_pseudonym_ag1", "cg_pseudonym_ag2"}
    on_duckdb, on_spark = _run_both(engines, plan, sources)
    assert on_duckdb.rows
    assert on_duckdb.suppressed_groups == on_spark.suppressed_groups
    assert_same(on_duckdb, on_spark, ordered=False)


# -- the consent gate ----------------------------------------------------------------------

def _consent_plan(mode: str, sql: str) -> Plan:
    ctx = build_context("brand", CONTEXT)
    table = ctx.tables["retailer.purchases"]
    ctx = replace(ctx, tables={**ctx.tables, "retailer.purchases": replace(table, consent=mode)})
    return govern(sql, ctx)


@pytest.mark.parametrize("mode", ["opt_out", "opt_in"])
@pytest.mark.parametrize("delta", ["none", "withdrawn", "withdrawn+granted"])
def test_consent_gate_filters_the_same_rows_on_both_engines(mode, delta, engines, sources, tmp_path):
    plan = _consent_plan(mode, "select product, count(*), sum(spend) from retailer.purchases group by product")
    everyone = [f"C{i:04d}" for i in range(500)]
    # opt_out: the snapshot lists who withdrew; opt_in: who granted.
    snapshot = everyone[::3] if mode == "opt_out" else everyone[::2]
    changes: dict[str, bool] = {}
    if "withdrawn" in delta:
        changes.update({s: False for s in everyone[1:200:5]})
    if "granted" in delta:
        changes.update({s: True for s in everyone[3:300:7]})
    source = sources["retailer.purchases"]
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    gate = ConsentGate(mode=mode, purpose="analytics.reporting", source_sha256=sha, base=tmp_path / f"base.{mode}.7.parquet",
                       base_seq=7, changes=changes, snapshot=ConsentSnapshot(7, snapshot))
    on_duckdb, on_spark = _run_both(engines, plan, sources, {"retailer.purchases": gate})
    without_snapshot = replace(gate, snapshot=None)  # the base now exists: both read it as it is
    again_duckdb, again_spark = _run_both(engines, plan, sources, {"retailer.purchases": without_snapshot})
    assert on_duckdb.rows
    for a, b in [(on_duckdb, on_spark), (again_duckdb, again_spark), (on_duckdb, again_spark)]:
        assert a.suppressed_groups == b.suppressed_groups
        assert_same(a, b, ordered=False)
    # and the gate did filter: the total count is what the records say
    admitted = {s for s in everyone if (s not in snapshot) == (mode == "opt_out")}
    admitted = {s for s in admitted if changes.get(s, True)} | {s for s, ok in changes.items() if ok}
    assert sum(r[1] for r in on_spark.rows) <= 4 * len(admitted)


def test_spark_refuses_a_plan_naming_a_table_outside_its_views(engines, sources):
    _, spark = engines
    plan = Plan(views=(RelationView("brand.customers", 'SELECT "loyalty_tier" AS "loyalty_tier" FROM cg_source'),),
                pseudonym_keys={}, columns=("n",), sql='SELECT count(*) AS n FROM parquet."/etc/passwd"',
                datasets=("brand.customers",))
    with pytest.raises(BadInput):
        spark.run(plan, sources)
    for sql in ["SELECT count(*) AS n FROM other_table", "SELECT count(*) AS n FROM parquet.`/etc/passwd`",
                "SELECT count(*) AS n FROM spark_catalog.brand.customers"]:
        with pytest.raises(BadInput):
            spark.run(replace(plan, sql=sql), sources)


# -- end to end: COMMONGROUND_ENGINE=spark selects the Spark engine for the whole store -------

def test_the_store_answers_through_spark_when_selected(engines, tmp_path, monkeypatch):
    """The CLI's governed query, run by Spark (the module's session is reused: getOrCreate),
    gives what DuckDB gives; the ledger records it the same way."""
    from commonground import bootstrap
    from tests.conftest import Cli, use_default_database

    from .data import agreement, write_brand, write_purchases, write_yaml
    use_default_database(monkeypatch)
    monkeypatch.setenv("COMMONGROUND_ENGINE", "spark")
    monkeypatch.setenv("COMMONGROUND_SPARK_MASTER", "local[2]")
    assert bootstrap.Settings.from_env(tmp_path / "home").engine == "spark"
    cli = Cli(tmp_path / "home", None, monkeypatch)
    cli("init")
    for party in ("retailer", "brand"):
        cli("party", "add", party)
    data, schema = write_purchases(tmp_path / "in")
    cli("dataset", "add", "--as", "retailer", "purchases", data, "--schema", schema)
    bdata, bschema = write_brand(tmp_path / "in")
    cli("dataset", "add", "--as", "brand", "customers", bdata, "--schema", bschema)
    proposed = cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "a.yaml", agreement(k=5)), "--json")[1]
    cli("agreement", "accept", "--as", "brand", proposed["id"])
    sql = ("SELECT b.tier, COUNT(DISTINCT p.customer_id) AS people, SUM(p.spend) AS spend FROM retailer.purchases p "
           "JOIN brand.customers b ON p.customer_id = b.customer_id GROUP BY b.tier ORDER BY b.tier")
    _, on_spark, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", sql)
    monkeypatch.setenv("COMMONGROUND_ENGINE", "duckdb")
    _, on_duckdb, _ = cli("query", "--as", "brand", "--purpose", "analytics.reporting", "--json", sql)
    assert on_spark["governed"] and on_spark["rows"]
    assert on_spark["columns"] == on_duckdb["columns"]
    assert [r[:2] for r in on_spark["rows"]] == [r[:2] for r in on_duckdb["rows"]]
    assert [r[2] for r in on_spark["rows"]] == pytest.approx([r[2] for r in on_duckdb["rows"]])
    _, verified, _ = cli("audit", "verify", "--json")
    assert verified["ok"]


def test_an_unknown_engine_is_refused(monkeypatch, tmp_path):
    from commonground import bootstrap
    monkeypatch.setenv("COMMONGROUND_ENGINE", "presto")
    with pytest.raises(BadInput):
        bootstrap.Settings.from_env(tmp_path)
