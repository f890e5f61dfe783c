"""Hostile queries from the threat list (docs/threat-model.md): each is refused with a reason
that names its rule, or neutralised — run on synthetic Parquet data through the DuckDB engine,
no output row covers fewer than k distinct subjects and no identifying value comes out.

The synthetic data has a few people who stand out on purpose: c7 is the only caviar buyer
(and the only one with zip 999.., age 95), c1 and c2 are the only `platinum` customers of the
brand, the brand's table repeats c7 thirty times as `vip` (padding), and p3 is the only
patient with `rare-disease`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from decimal import Decimal

import duckdb
import pytest

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import Transform, TransformKind
from commonground.domain.errors import BadInput, NotFound, Refused
from commonground.policy.differencing import differencing_reasons, released_groups
from commonground.policy.governor import govern

K = {"brand": 10, "insurer": 5, "brand-research": 5}
HASH_KEYS = {"brand": b"syrup-insights-test-key-32-bytes", "insurer": b"clinic-stats-test-key-32-bytes!!"}

SYNTHETIC = {
    "purchases": """
        SELECT 'c' || i AS customer_id, 'e' || i || '@x.com' AS email,
               CASE WHEN i = 7 THEN '99901' ELSE lpad((10000 + (i % 10) * 1000 + j)::VARCHAR, 5, '0') END AS store_zip,
               CASE WHEN i = 7 THEN 95 ELSE 18 + (i * 7) % 60 END AS age,
               round(((i * 31 + j * 17) % 200) * 1.25, 2) AS spend,
               CASE WHEN i = 7 THEN 'caviar' ELSE ['syrup', 'pancakes', 'waffles'][1 + (i + j) % 3] END AS product
        FROM range(300) t(i), range(4) s(j) WHERE j <= i % 4""",
    "customers": """
        SELECT 'c' || i AS customer_id,
               CASE WHEN i IN (1, 2) THEN 'platinum' ELSE ['gold', 'silver', 'bronze'][1 + i % 3] END AS loyalty_tier
        FROM range(200) t(i) WHERE i <> 7
        UNION ALL SELECT 'b' || i, 'gold' FROM range(50) t(i)
        UNION ALL SELECT 'c7', 'vip' FROM range(30)""",
    "visits": """
        SELECT 'p' || i AS patient_id, '123-45-' || lpad(i::VARCHAR, 4, '0') AS ssn, (20000 + (i % 6) * 1000)::VARCHAR AS zip,
               CASE WHEN i = 3 THEN 'rare-disease' ELSE ['flu', 'asthma', 'diabetes'][1 + i % 3] END AS diagnosis,
               ((i * 13 + j) % 300) * 1.0 AS cost, DATE '2024-01-01' + ((i * 3 + j * 11) % 365)::INTEGER AS visit_date
        FROM range(150) t(i), range(5) s(j) WHERE j <= i % 5""",
    "policies": "SELECT 'p' || i AS patient_id, ['basic', 'premium'][1 + i % 2] AS plan FROM range(120) t(i)",
}
DATASETS = {"retailer.purchases": "purchases", "brand.customers": "customers",
            "clinic.visits": "visits", "insurer.policies": "policies"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    con = duckdb.connect()
    for name, sql in SYNTHETIC.items():
        con.execute(f"COPY ({sql}) TO '{folder / name}.parquet'")
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM '{folder / name}.parquet'")
    sources = {key: folder / f"{name}.parquet" for key, name in DATASETS.items()}
    return con, sources


@pytest.fixture(scope="module")
def contexts(governor_context):
    """The shared fixture contexts, with the brand table's rows-per-subject as ingest measures it here."""
    def build(name):
        ctx = governor_context(name)
        tables = dict(ctx.tables)
        if "brand.customers" in tables:
            tables["brand.customers"] = dataclasses.replace(tables["brand.customers"], max_rows_per_subject=30)
        return dataclasses.replace(ctx, tables=tables)
    return build


def _identifying_values(con) -> set[str]:
    """Every identifying value a leak could show: raw ids, emails, SSNs, and their pseudonyms."""
    raw = [r[0] for r in con.execute(
        "SELECT customer_id FROM purchases UNION SELECT email FROM purchases UNION SELECT customer_id FROM customers "
        "UNION SELECT patient_id FROM visits UNION SELECT ssn FROM visits").fetchall()]
    hashed = {hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32] for key in HASH_KEYS.values() for v in raw}
    masked = {"*" * (len(v) - 4) + v[-4:] for v in raw if v.startswith("123-45-")}
    return set(raw) | hashed | masked


# ---------------------------------------------------------------------------------------
# refused: (id, context, sql, reason prefix, fragment the reason must mention)

REFUSED = [
    # small groups and GROUP BY on unique keys
    ("group-by-subject", "brand", "select customer_id, count(*) from retailer.purchases group by customer_id", "identifiers:", "cannot GROUP BY"),
    ("group-by-position-subject", "brand", "select customer_id, count(*) from retailer.purchases group by 1", "identifiers:", "cannot GROUP BY retailer.purchases.customer_id"),
    ("group-by-id-prefix", "brand", "select left(customer_id, 8), count(*) from retailer.purchases group by 1", "identifiers:", "LEFT("),
    ("group-by-renamed-id-in-cte", "brand", "with t as (select customer_id as k, spend from retailer.purchases) select k, sum(spend) from t group by k", "identifiers:", "cannot GROUP BY"),
    ("group-by-masked-identifier", "insurer", "select ssn, count(*) from clinic.visits group by ssn", "identifiers:", "clinic.visits.ssn"),
    ("group-by-own-hashed-key", "brand", "select c.customer_id, count(*) from retailer.purchases p join brand.customers c on p.customer_id = c.customer_id group by 1", "identifiers:", "cannot GROUP BY brand.customers.customer_id"),
    ("group-by-hashed-id-through-union", "brand", "with t as (select customer_id k from retailer.purchases union all select customer_id from retailer.purchases) select k, count(*) from t group by k", "identifiers:", "cannot GROUP BY"),
    # identifier extraction through aggregates
    ("min-subject", "brand", "select min(customer_id) from retailer.purchases", "aggregates:", "MIN(customer_id)"),
    ("max-masked-ssn", "insurer", "select diagnosis, max(ssn) from clinic.visits group by diagnosis", "aggregates:", "MAX(ssn)"),
    ("string-agg-subject", "brand", "select product, string_agg(customer_id, ',') from retailer.purchases group by product", "aggregates:", "GROUP_CONCAT"),
    ("array-agg-values", "brand", "select product, array_agg(spend) from retailer.purchases group by product", "aggregates:", "ARRAY_AGG"),
    ("list-values", "brand", "select product, list(store_zip) from retailer.purchases group by product", "aggregates:", "returns row values"),
    ("any-value-subject", "brand", "select product, any_value(customer_id) from retailer.purchases group by product", "aggregates:", "ANY_VALUE"),
    ("first-value", "brand", "select product, first(spend) from retailer.purchases group by product", "aggregates:", "FIRST"),
    ("mode-subject", "brand", "select product, mode(customer_id) from retailer.purchases group by product", "aggregates:", "MODE(customer_id)"),
    ("max-n-list", "insurer", "select diagnosis, max(cost, 50) from clinic.visits group by diagnosis", "aggregates:", "list of n row values"),
    ("max-own-column-in-join", "brand", "select p.product, max(c.loyalty_tier) from retailer.purchases p join brand.customers c on p.customer_id = c.customer_id group by 1", "aggregates:", "your own column"),
    ("arg-max", "brand", "select product, arg_max(customer_id, spend) from retailer.purchases group by product", "allow-list:", "arg_max"),
    ("order-by-max-id", "brand", "select product, count(*) from retailer.purchases group by product order by max(customer_id)", "aggregates:", "MAX(customer_id)"),
    # literal probes of identifying columns
    ("eq-literal", "brand", "select count(*) from retailer.purchases where customer_id = 'c7'", "identifiers:", "= 'c7'"),
    ("in-list", "brand", "select count(*) from retailer.purchases where customer_id in ('c1', 'c7')", "identifiers:", "IN ("),
    ("not-in-list", "brand", "select product, count(*) from retailer.purchases where customer_id not in ('c7') group by product", "identifiers:", "IN ("),
    ("like", "brand", "select count(*) from retailer.purchases where customer_id like 'c7%'", "identifiers:", "LIKE"),
    ("between", "brand", "select count(*) from retailer.purchases where customer_id between 'c7' and 'c8'", "identifiers:", "BETWEEN"),
    ("starts-with", "brand", "select count(*) from retailer.purchases where starts_with(customer_id, 'c7')", "identifiers:", "STARTS_WITH"),
    ("substring-eq", "brand", "select count(*) from retailer.purchases where substring(customer_id, 1, 2) = 'c7'", "identifiers:", "SUBSTRING"),
    ("case-when-in-sum", "brand", "select product, sum(case when customer_id = 'c7' then spend end) from retailer.purchases group by product", "identifiers:", "= 'c7'"),
    ("filter-clause", "brand", "select product, count(*) filter (where customer_id = 'c7') from retailer.purchases group by product", "identifiers:", "= 'c7'"),
    ("count-nullif-probe", "brand", "select product, count(*) - count(nullif(customer_id, 'c7')) from retailer.purchases group by product", "identifiers:", "NULLIF"),
    ("masked-ssn-like", "insurer", "select count(*) from clinic.visits where ssn like '%0003'", "identifiers:", "LIKE"),
    ("probe-flag-in-cte", "insurer", "with t as (select ssn = '*******0003' hit, diagnosis from clinic.visits) select diagnosis, count(nullif(hit, false)) from t group by diagnosis", "identifiers:", "= '*******0003'"),
    ("having-max-id", "brand", "select product, count(*) from retailer.purchases group by product having max(customer_id) > 'c5'", "aggregates:", "MAX(customer_id)"),
    ("id-compared-with-attribute", "brand", "select count(*) from retailer.purchases where customer_id = product", "identifiers:", "cannot be used in"),
    # files, the network, the engine's catalog
    ("read-csv", "brand", "select * from read_csv('/etc/passwd')", "allow-list:", "read_csv"),
    ("read-parquet", "brand", "select count(*) from read_parquet('/tmp/*.parquet')", "allow-list:", "table functions"),
    ("read-json-in-where", "brand", "select count(*) from retailer.purchases where product in (select * from read_json('x.json'))", "allow-list:", "read_json"),
    ("glob", "brand", "select * from glob('/*')", "allow-list:", "glob"),
    ("duckdb-settings", "brand", "select * from duckdb_settings()", "allow-list:", "duckdb_settings"),
    ("getenv", "brand", "select getenv('HOME'), count(*) from retailer.purchases", "allow-list:", "getenv"),
    ("current-setting", "brand", "select current_setting('threads')", "allow-list:", "current_setting"),
    ("engine-pseudonym-macro", "brand", "select product, count(*) from retailer.purchases where customer_id = cg_pseudonym_ag1('c7') group by 1", "allow-list:", "cg_pseudonym_ag1"),
    ("three-part-name", "brand", "select count(*) from memory.retailer.purchases", "tables:", "too many parts"),
    # statements other than one SELECT
    ("attach", "brand", "attach '/tmp/x.db' as x", "read-only:", "ATTACH"),
    ("install", "brand", "install httpfs", "read-only:", "INSTALL"),
    ("load", "brand", "load httpfs", "read-only:", "LOAD"),
    ("pragma", "brand", "pragma database_list", "read-only:", "PRAGMA"),
    ("set", "brand", "set enable_external_access = true", "read-only:", "SET"),
    ("copy", "brand", "copy (select * from retailer.purchases) to '/tmp/out.csv'", "read-only:", "COPY"),
    ("create-table", "brand", "create table t as select * from retailer.purchases", "read-only:", "CREATE"),
    ("insert", "brand", "insert into brand.customers values ('x', 'y')", "read-only:", "INSERT"),
    ("delete", "brand", "delete from brand.customers", "read-only:", "DELETE"),
    ("update", "brand", "update brand.customers set loyalty_tier = 'x'", "read-only:", "UPDATE"),
    ("create-macro", "brand", "create macro m(x) as x", "read-only:", "CREATE"),
    ("explain", "brand", "explain select 1", "read-only:", "EXPLAIN"),
    ("two-statements", "brand", "select count(*) from retailer.purchases; drop table x", "read-only:", "found 2"),
    ("statement-after-comment", "brand", "select count(*) from retailer.purchases; /* innocent */ select 1 -- end", "read-only:", "exactly one statement"),
    ("select-into", "brand", "select product, count(*) into t from retailer.purchases group by 1", "allow-list:", "SELECT INTO"),
    ("lambda", "brand", "select count(*) from retailer.purchases where len(list_filter([customer_id], x -> x = 'c7')) > 0", "allow-list:", "lambda"),
    ("unnest", "brand", "select unnest([1, 2])", "allow-list:", "explode"),
    ("pivot", "brand", "pivot retailer.purchases on product using count(*)", "read-only:", "PIVOT"),
    # comments, case and quoting tricks
    ("mixed-case", "brand", "SeLeCt CuStOmEr_Id, CoUnT(*) FrOm retailer.purchases GrOuP bY 1", "identifiers:", "customer_id"),
    ("comments-around-id", "brand", "select /* hi */ customer_id -- x\n, count(*) from retailer.purchases group by 1", "identifiers:", "customer_id"),
    ("quoted-id", "brand", 'select "customer_id", count(*) from "retailer"."purchases" group by 1', "identifiers:", "customer_id"),
    ("reserved-pu", "brand", "select product, count(distinct __cg_pu) from retailer.purchases group by product", "reserved names:", "__cg_pu"),
    ("reserved-pu-quoted-upper", "brand", 'select product, count("__CG_PU") from retailer.purchases group by product', "reserved names:", "__CG_PU"),
    ("reserved-group-table", "brand", "select * from __cg_groups_0", "reserved names:", "__cg_groups_0"),
    # query shapes that hide row-level output
    ("nested-cte-rows", "brand", "with a as (select customer_id, spend from retailer.purchases), b as (select * from a) select spend from b", "aggregate only:", "row-level"),
    ("union-row-branch", "brand", "select product, count(*) from retailer.purchases group by product union all select product, spend from retailer.purchases", "aggregate only:", "row-level"),
    ("union-with-own-data", "brand", "select product, count(*) from retailer.purchases group by product union all select loyalty_tier, count(*) from brand.customers group by 1", "set operations:", "must read others' data"),
    ("order-limit-rows", "brand", "select spend from retailer.purchases order by spend desc limit 1", "aggregate only:", "row-level"),
    ("select-distinct", "brand", "select distinct store_zip from retailer.purchases", "aggregate only:", "SELECT DISTINCT"),
    ("window", "brand", "select product, count(*) over (partition by product) from retailer.purchases", "window functions:", "per row"),
    ("qualify-window", "brand", "select product, count(*) from retailer.purchases group by product qualify row_number() over () = 1", "allow-list:", "row_number"),
    ("rollup", "brand", "select product, count(*) from retailer.purchases group by rollup (product)", "GROUP BY:", "ROLLUP"),
    ("group-by-all", "brand", "select product, count(*) from retailer.purchases group by all", "GROUP BY:", "ALL"),
    ("recursive-cte", "brand", "with recursive r as (select 1 n union all select n + 1 from r where n < 3) select product, count(*) from retailer.purchases group by 1", "recursive CTEs:", "WITH RECURSIVE"),
    ("inner-aggregate-without-subject", "brand", "with t as (select product, count(*) n from retailer.purchases group by product) select sum(n) from t", "inner aggregation:", "customer_id"),
    ("column-alias-rename", "brand", "select x.product, count(*) from retailer.purchases as x(product) group by 1", "tables:", "column aliases"),
    # subqueries and joins
    ("subquery-in-where", "brand", "select count(*) from retailer.purchases where spend > (select avg(spend) from retailer.purchases)", "subqueries:", "may not read others' data"),
    ("scalar-subquery-in-select", "brand", "select loyalty_tier, (select count(*) from retailer.purchases) from brand.customers group by 1", "subqueries:", "may not read others' data"),
    ("correlated-subquery", "brand", "select product, count(*) from retailer.purchases p where exists (select 1 from brand.customers c where c.customer_id = p.customer_id) group by 1", "subqueries:", "correlated"),
    ("correlated-literal-probe", "brand", "select product, count(*) from retailer.purchases p where exists (select 1 where p.customer_id = 'c7') group by 1", "subqueries:", "correlated"),
    ("cross-join", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p cross join brand.customers c group by 1", "joins:", "CROSS JOIN"),
    ("comma-join", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p, brand.customers c where p.customer_id = c.customer_id group by 1", "joins:", "without ON"),
    ("join-non-key", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p join brand.customers c on p.product = c.loyalty_tier group by 1", "joins:", "not a permitted join key"),
    ("join-inequality", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p join brand.customers c on p.customer_id > c.customer_id group by 1", "joins:", "only equality"),
    ("join-or", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p join brand.customers c on p.customer_id = c.customer_id or p.product = c.loyalty_tier group by 1", "joins:", "only equality"),
    ("join-same-table", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p join brand.customers c on c.customer_id = c.customer_id group by 1", "joins:", "two different tables"),
    ("join-parenthesised", "brand", "select c.loyalty_tier, count(*) from (retailer.purchases p cross join brand.customers c) group by 1", "joins:", "parenthesised"),
    ("join-asof", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p asof join brand.customers c on p.customer_id = c.customer_id and p.spend >= c.loyalty_tier group by 1", "joins:", "ASOF"),
    ("join-positional", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p positional join brand.customers c group by 1", "joins:", "POSITIONAL"),
    ("join-computed-key", "brand", "select c.loyalty_tier, count(*) from retailer.purchases p join brand.customers c on p.customer_id = lower(c.customer_id) group by 1", "joins:", "only equality of columns"),
    ("join-literal-table", "brand", "select product, count(*) from retailer.purchases p join (values ('c7')) v(id) on p.customer_id = v.id group by 1", "joins:", "plain dataset columns"),
    ("join-two-agreements", "brand-research", "select count(*) from clinic.visits v join clinic.visits w on v.patient_id = w.patient_id", "joins:", "not a permitted join key"),
    # who may read what
    ("dropped-column", "brand", "select count(distinct email) from retailer.purchases", "columns:", "email"),
    ("dropped-column-in-where", "brand", "select count(*) from retailer.purchases where email is not null", "columns:", "email"),
    ("wrong-purpose", "brand-marketing", "select product, count(*) from retailer.purchases group by product", "agreement:", "marketing.advertising.first_party.targeted"),
    ("own-table-aggregate-only", "brand-research", "select c.loyalty_tier, count(*) from clinic.visits v join brand.customers c on v.patient_id = c.customer_id group by 1", "access mode:", "aggregate access only"),
    ("own-table-aggregate-only-subquery", "brand-research", "select diagnosis, count(*) from clinic.visits where diagnosis in (select loyalty_tier from brand.customers) group by 1", "access mode:", "brand.customers"),
]

NOT_FOUND = [
    ("no-agreement-party", "outsider", "select count(*) from retailer.purchases"),
    ("other-recipient-dataset", "insurer", "select product, count(*) from retailer.purchases group by 1"),
    ("file-in-from", "brand", "select count(*) from 'retailer.parquet'"),
    ("duckdb-catalog-table", "brand", "select count(*) from duckdb_tables"),
    ("information-schema", "brand", "select count(*) from information_schema.tables"),
    ("engine-source-by-forward-cte", "brand", "with a as (select * from cg_src_0), cg_src_0 as (select 1 x) select count(*) from retailer.purchases"),
    ("engine-source-by-foreign-cte", "brand", "with a as (with cg_src_0 as (select 1 x) select x from cg_src_0) select count(*) from retailer.purchases p join cg_src_0 s on p.customer_id = s.customer_id"),
    ("upper-case-dataset", "brand", "select product, count(*) from RETAILER.PURCHASES group by 1"),
]


@pytest.mark.parametrize(("context", "sql", "prefix", "fragment"), [pytest.param(*c[1:], id=c[0]) for c in REFUSED])
def test_refused(contexts, context, sql, prefix, fragment):
    with pytest.raises(Refused) as refusal:
        govern(sql, contexts(context))
    reasons = refusal.value.reasons
    matching = [r for r in reasons if r.startswith(prefix)]
    assert matching, f"no reason starts with {prefix!r}: {reasons}"
    assert any(fragment in r for r in matching), f"no {prefix!r} reason mentions {fragment!r}: {reasons}"


@pytest.mark.parametrize(("context", "sql"), [pytest.param(*c[1:], id=c[0]) for c in NOT_FOUND])
def test_not_found_without_telling_whether_it_exists(contexts, context, sql):
    with pytest.raises(NotFound):
        govern(sql, contexts(context))


def test_refusals_name_what_is_allowed_instead(contexts):
    with pytest.raises(Refused) as refusal:
        govern("select customer_id, max(customer_id) from retailer.purchases where customer_id like 'c%' group by 1",
               contexts("brand"))
    text = " ".join(refusal.value.reasons)
    assert "COUNT(DISTINCT customer_id) is allowed" in text
    assert "permitted: store_zip, age, spend, product" in text
    assert "may only be counted" in text


# ---------------------------------------------------------------------------------------
# neutralised: allowed, but the threshold removes what the query was after.
# (id, context, sql, oracle over the raw data -> (output key columns..., distinct subjects), keys)

ZIP3, AGE10 = "left(store_zip, 3)", "floor(age / 10) * 10"
NEUTRALISED = [
    ("small-group-by-attribute", "brand",
     "select product, count(*), sum(spend) from retailer.purchases group by product",
     "select product, count(distinct customer_id) from purchases group by 1", 1),
    ("filter-to-one-person", "brand",
     "select count(*), sum(spend), max(spend) from retailer.purchases where product = 'caviar'",
     "select count(distinct customer_id) from purchases where product = 'caviar'", 0),
    ("quasi-identifier-combination", "brand",
     "select store_zip, age, count(*) from retailer.purchases group by store_zip, age",
     f"select {ZIP3}, {AGE10}, count(distinct customer_id) from purchases group by 1, 2", 2),
    ("rare-age-bucket", "brand",
     "select age, avg(spend) from retailer.purchases group by age",
     f"select {AGE10}, count(distinct customer_id) from purchases group by 1", 1),
    ("order-by-limit-smallest-group", "brand",
     "select store_zip, count(*) n from retailer.purchases group by store_zip order by n asc limit 1",
     f"select {ZIP3}, count(distinct customer_id) from purchases group by 1", 1),
    ("having-only-small-groups", "brand",
     "select product, count(*) from retailer.purchases group by product having count(*) <= 4",
     "select product, count(distinct customer_id) from purchases group by 1", 1),
    ("max-of-sensitive-in-small-group", "brand",
     "select store_zip, max(spend), min(spend) from retailer.purchases group by store_zip",
     f"select {ZIP3}, count(distinct customer_id) from purchases group by 1", 1),
    ("per-subject-cte-tail", "brand",
     "with t as (select customer_id, sum(spend) s from retailer.purchases group by customer_id) select count(*), max(s) from t where s > 700",
     "select count(*) from (select customer_id, sum(spend) s from purchases group by 1) where s > 700", 0),
    ("nested-ctes-rows-aggregated", "brand",
     "with a as (select customer_id, spend, product from retailer.purchases), b as (select * from a where product = 'caviar') select count(*), sum(spend) from b",
     "select count(distinct customer_id) from purchases where product = 'caviar'", 0),
    ("union-smuggles-small-group", "brand",
     "select product, count(*) from retailer.purchases group by product union all select store_zip, count(*) from retailer.purchases where product = 'caviar' group by store_zip",
     f"select product, count(distinct customer_id) from purchases group by 1 union all "
     f"select {ZIP3}, count(distinct customer_id) from purchases where product = 'caviar' group by 1", 1),
    ("union-all-copies-in-cte", "brand",
     "with t as (" + " union all ".join(["select customer_id, product from retailer.purchases where product = 'caviar'"] * 12)
     + ") select product, count(*) from t group by product",
     "select product, count(distinct customer_id) from purchases where product = 'caviar' group by 1", 1),
    ("join-small-own-segment", "brand",
     "select c.loyalty_tier, count(*), avg(p.spend) from retailer.purchases p join brand.customers c on p.customer_id = c.customer_id group by 1",
     "select c.loyalty_tier, count(distinct p.customer_id) from purchases p join customers c on p.customer_id = c.customer_id group by 1", 1),
    ("join-padded-with-copies-of-one-person", "brand",
     "select c.loyalty_tier, count(*), sum(p.spend) from retailer.purchases p join brand.customers c on p.customer_id = c.customer_id where c.loyalty_tier = 'vip' group by 1",
     "select c.loyalty_tier, count(distinct p.customer_id) from purchases p join customers c on p.customer_id = c.customer_id where c.loyalty_tier = 'vip' group by 1", 1),
    ("padding-through-own-cte", "brand",
     "with pad as (select customer_id, loyalty_tier from brand.customers union all select customer_id, loyalty_tier from brand.customers) "
     "select c.loyalty_tier, count(*) from retailer.purchases p join pad c on p.customer_id = c.customer_id group by 1",
     "select c.loyalty_tier, count(distinct p.customer_id) from purchases p join customers c on p.customer_id = c.customer_id group by 1", 1),
    ("left-join-own-rows-do-not-count", "brand",
     "select c.loyalty_tier, count(*) from brand.customers c left join retailer.purchases p on p.customer_id = c.customer_id group by 1",
     "select c.loyalty_tier, count(distinct p.customer_id) from customers c left join purchases p on p.customer_id = c.customer_id group by 1", 1),
    ("left-join-rows-without-subject-hidden-in-a-cte", "brand",
     "with t as (select c.loyalty_tier, p.spend from brand.customers c left join retailer.purchases p "
     "on p.customer_id = c.customer_id) select loyalty_tier, count(*) from t group by 1",
     "select c.loyalty_tier, count(distinct p.customer_id) from customers c left join purchases p on p.customer_id = c.customer_id group by 1", 1),
    ("rare-diagnosis", "insurer",
     "select diagnosis, count(*), avg(cost) from clinic.visits group by diagnosis",
     "select diagnosis, count(distinct patient_id) from visits group by 1", 1),
    ("cast-error-quotes-no-value", "insurer",
     "select diagnosis, sum(cast(diagnosis as integer)) from clinic.visits group by diagnosis",
     "select diagnosis, count(distinct patient_id) from visits group by 1", 1),
]


def _key(value):
    return float(value) if isinstance(value, (int, float, Decimal)) else value


@pytest.mark.parametrize(("context", "sql", "oracle", "keys"), [pytest.param(*c[1:], id=c[0]) for c in NEUTRALISED])
def test_neutralised(data, contexts, context, sql, oracle, keys):
    con, sources = data
    k = K[context]
    result = DuckDBEngine(threads=2).run(govern(sql, contexts(context)), sources)
    subjects = {tuple(_key(v) for v in row[:-1]): row[-1] for row in con.execute(oracle).fetchall()}
    for row in result.rows:
        covered = subjects.get(tuple(_key(v) for v in row[:keys]), 0)
        assert covered >= k, f"output row {row} covers {covered} < {k} distinct subjects"
    assert result.suppressed_groups == sum(1 for n in subjects.values() if 0 < n < k) or keys == 0
    leaked = _identifying_values(con) & {str(v) for row in result.rows for v in row}
    assert not leaked, f"identifying values in the output: {sorted(leaked)[:5]}"


def test_small_groups_are_really_there(data):
    """The neutralised cases above would prove nothing if the data had no small groups."""
    con, _ = data
    assert con.execute("select count(distinct customer_id) from purchases where product = 'caviar'").fetchone() == (1,)
    assert con.execute("select count(*) from customers where customer_id = 'c7'").fetchone() == (30,)
    assert con.execute("select count(distinct patient_id) from visits where diagnosis = 'rare-disease'").fetchone() == (1,)


def test_runtime_errors_do_not_quote_values(data, contexts):
    con, sources = data
    sql = ("select product, sum(try_cast(age as bigint) * 9223372036854775807) from retailer.purchases "
           "where product = 'caviar' group by product")
    try:
        DuckDBEngine(threads=2).run(govern(sql, contexts("brand")), sources)
    except (BadInput, duckdb.Error) as e:
        assert "90" not in str(e), f"the error quotes the caviar buyer's age bucket: {e}"
        assert isinstance(e, BadInput) and "withheld" in str(e)
    else:
        pytest.fail("the overflow should fail the query")


def test_complement_differencing_within_one_query(data, contexts):
    """A total next to the per-group rows reveals the suppressed group by subtraction. The
    engine's sketches of the released groups (policy/differencing.py) show the total and the
    groups' sum differ by one person, so the release is refused (services/queries.py does
    exactly this check before any row leaves)."""
    con, sources = data
    sql = ("select 'all' product, count(*) n from retailer.purchases union all "
           "select product, count(*) from retailer.purchases group by product")
    result = DuckDBEngine(threads=2).run(govern(sql, contexts("brand")), sources)
    rows = dict(result.rows)
    caviar_rows = con.execute("select count(*) from purchases where product = 'caviar'").fetchone()[0]
    assert rows["all"] - sum(n for p, n in rows.items() if p != "all") == caviar_rows, "the attack works unchecked"
    reasons = differencing_reasons(released_groups(result.sketches), [], K["brand"])
    assert reasons and reasons[0].startswith("differencing:")


def test_differencing_leaves_distinct_groups_alone(data, contexts):
    """The same check passes a plain GROUP BY and a total that no released group nearly equals."""
    _, sources = data
    for sql in ("select product, count(*) n from retailer.purchases group by product",
                "select count(*) n from retailer.purchases",
                "select store_zip, avg(spend) from retailer.purchases group by 1"):
        result = DuckDBEngine(threads=2).run(govern(sql, contexts("brand")), sources)
        assert differencing_reasons(released_groups(result.sketches), [], K["brand"]) == [], sql


def test_people_are_counted_even_when_the_subject_column_is_not_shared(data, contexts):
    """The privacy unit comes from the dataset, not from what the agreement shows."""
    con, sources = data
    ctx = contexts("brand")
    terms = ctx.agreements[0].terms
    grant = terms.datasets[0]
    fields = {**grant.fields, "customer_id": Transform(TransformKind.DROP)}
    hidden = dataclasses.replace(terms, datasets=(dataclasses.replace(grant, fields=fields),), join_keys=())
    ctx = dataclasses.replace(ctx, agreements=(dataclasses.replace(ctx.agreements[0], terms=hidden),))
    result = DuckDBEngine(threads=2).run(govern("select product, count(*) from retailer.purchases group by 1", ctx), sources)
    assert {row[0] for row in result.rows} == {"syrup", "pancakes", "waffles"}
    assert result.suppressed_groups == 1
    with pytest.raises(Refused, match="inner aggregation: .*not shared under the agreement"):
        govern("with t as (select product, sum(spend) s from retailer.purchases group by 1) select avg(s) from t", ctx)
