"""Differential test on the UCI Adult census data (../shared/data/adult.csv): allowed queries
through govern + DuckDBEngine give what plain DuckDB gives over the transformed data with
groups of fewer than k distinct people removed, and suppressed_groups is the number of such
small groups, counted independently.

One row per person (row number as subject id); age bucketed by 10; native country,
education and race raw as quasi-identifiers. The analyst's own table (a panel of every third
person) joins on the keyed pseudonym of the person id.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern

ADULT = Path(__file__).resolve().parents[3] / "shared" / "data" / "adult.csv"
K = 10

pytestmark = pytest.mark.skipif(not ADULT.exists(), reason=f"{ADULT} is not present")

COLUMNS = {  # name in the Parquet file: (header in the CSV, SQL type)
    "age": ("Age", "INTEGER"), "work_class": ("work-class", "VARCHAR"), "education": ("education", "VARCHAR"),
    "marital_status": ("marital-status", "VARCHAR"), "occupation": ("occupation", "VARCHAR"),
    "race": ("race", "VARCHAR"), "gender": ("gender", "VARCHAR"), "capital_gain": ("capital-gain", "INTEGER"),
    "hours_per_week": ("hours-per-week", "INTEGER"), "native_country": ("native-country", "VARCHAR"),
    "income": ("income", "VARCHAR"),
}
SCHEMA = parse_schema({"columns": {
    "person_id": {"type": "integer", "role": "subject_id"},
    "age": {"type": "integer", "role": "quasi_identifier"},
    "work_class": {"role": "attribute"}, "education": {"role": "quasi_identifier"},
    "marital_status": {"role": "attribute"}, "occupation": {"role": "attribute"},
    "race": {"role": "quasi_identifier"}, "gender": {"role": "attribute"},
    "capital_gain": {"type": "integer", "role": "sensitive"},
    "hours_per_week": {"type": "integer", "role": "sensitive"},
    "native_country": {"role": "quasi_identifier"}, "income": {"role": "sensitive"},
}})
PANEL = parse_schema({"columns": {"person_id": {"type": "integer", "role": "subject_id"}, "wave": {}}})
TERMS = parse_agreement({
    "name": "census-insights", "provider": "census", "recipients": ["analyst"], "purposes": ["analytics.research"],
    "valid_until": "2099-12-31",
    "datasets": {"census.adult": {"fields": {
        "person_id": "hash", "age": {"transform": "bucket", "width": 10},
        **{c: "raw" for c in COLUMNS if c != "age"}}}},
    "access": {"mode": "join", "min_group_size": K, "join_keys": ["person_id"],
               # the provider lets these quasi-identifiers be filtered on (policy/filters.py)
               "filterable": ["age", "native_country"]},
})
# The granted view, spelled independently of the governor's transforms.
TRANSFORMED = ("SELECT person_id, CAST(floor(age / 10) * 10 AS BIGINT) AS age, "
               + ", ".join(c for c in COLUMNS if c != "age") + " FROM adult")

QUERIES = [
    ("age-bucket", "SELECT age, count(*) n, avg(hours_per_week) h FROM census.adult GROUP BY age",
     "SELECT age, count(*), avg(hours_per_week), count(DISTINCT person_id) FROM t GROUP BY 1"),
    ("country-race", "SELECT native_country, race, count(*), sum(capital_gain) FROM census.adult GROUP BY 1, 2",
     "SELECT native_country, race, count(*), sum(capital_gain), count(DISTINCT person_id) FROM t GROUP BY 1, 2"),
    ("country-education-age",
     "SELECT native_country, education, age, count(*) FROM census.adult GROUP BY native_country, education, age",
     "SELECT native_country, education, age, count(*), count(DISTINCT person_id) FROM t GROUP BY 1, 2, 3"),
    ("filtered-income", "SELECT education, income, count(*) FROM census.adult WHERE gender = 'Female' AND age >= 40 GROUP BY 1, 2",
     "SELECT education, income, count(*), count(DISTINCT person_id) FROM t WHERE gender = 'Female' AND age >= 40 GROUP BY 1, 2"),
    ("abroad-occupation",
     "SELECT occupation, avg(hours_per_week), max(capital_gain), count(DISTINCT person_id) FROM census.adult "
     "WHERE native_country <> 'United-States' GROUP BY occupation",
     "SELECT occupation, avg(hours_per_week), max(capital_gain), count(DISTINCT person_id), count(DISTINCT person_id) "
     "FROM t WHERE native_country <> 'United-States' GROUP BY 1"),
    ("one-person-country", "SELECT count(*), avg(capital_gain) FROM census.adult WHERE native_country = 'Holand-Netherlands'",
     "SELECT count(*), avg(capital_gain), count(DISTINCT person_id) FROM t WHERE native_country = 'Holand-Netherlands'"),
    ("panel-join",
     "SELECT p.wave, a.race, count(*), avg(a.hours_per_week) FROM census.adult a JOIN analyst.panel p "
     "ON a.person_id = p.person_id GROUP BY 1, 2",
     "SELECT p.wave, t.race, count(*), avg(t.hours_per_week), count(DISTINCT t.person_id) FROM t "
     "JOIN panel p ON t.person_id = p.person_id GROUP BY 1, 2"),
]


@pytest.fixture(scope="module")
def adult(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adult")
    con = duckdb.connect()
    cleaned = ", ".join(
        f"TRY_CAST(nullif(trim(\"{header}\"), '?') AS {sql_type}) AS {name}" for name, (header, sql_type) in COLUMNS.items())
    con.execute(f"CREATE TABLE adult AS SELECT row_number() OVER () AS person_id, {cleaned} "
                f"FROM read_csv('{ADULT}', all_varchar = true, header = true)")
    con.execute("CREATE TABLE panel AS SELECT person_id, ['spring', 'autumn'][1 + person_id % 2] AS wave "
                "FROM adult WHERE person_id % 3 = 0")
    paths = {"census.adult": folder / "adult.parquet", "analyst.panel": folder / "panel.parquet"}
    con.execute(f"COPY adult TO '{paths['census.adult']}'")
    con.execute(f"COPY panel TO '{paths['analyst.panel']}'")
    con.execute(f"CREATE TEMP VIEW t AS {TRANSFORMED}")
    rows = con.execute("SELECT count(*) FROM adult").fetchone()[0]
    ctx = QueryContext("analyst", "analytics.research", {
        "census.adult": TableInfo("census", "adult", SCHEMA, rows, 1),
        "analyst.panel": TableInfo("analyst", "panel", PANEL, rows // 3, 1),
    }, (AgreementState("ag-census", 1, TERMS, AgreementStatus.ACTIVE, frozenset({"census", "analyst"}), b"census-key"),))
    return con, paths, ctx


def _norm(row) -> tuple:
    return tuple(round(float(v), 6) if isinstance(v, (float, Decimal)) else v for v in row)


@pytest.mark.parametrize(("sql", "independent"), [pytest.param(q, i, id=name) for name, q, i in QUERIES])
def test_governed_equals_independent(adult, sql, independent):
    con, paths, ctx = adult
    result = DuckDBEngine(threads=2).run(govern(sql, ctx), paths)
    groups = con.execute(independent).fetchall()
    kept = [row[:-1] for row in groups if row[-1] >= K]
    assert Counter(map(_norm, result.rows)) == Counter(map(_norm, kept))
    assert result.suppressed_groups == sum(1 for row in groups if row[-1] < K)


def test_the_data_has_small_groups_to_suppress(adult):
    con, _, _ = adult
    small = con.execute("SELECT count(*) FROM (SELECT native_country, education, age, count(*) n FROM t "
                        "GROUP BY 1, 2, 3) WHERE n < ?", [K]).fetchone()[0]
    assert small > 100
