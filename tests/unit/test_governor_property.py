"""Property: on random data and random allowed aggregate queries, a governed result equals an
independent computation (plain DuckDB over the transformed data, groups with fewer than k
distinct subjects removed), so no output row ever covers fewer than k distinct subjects.

Subjects have 1..5 rows each, so row counts and subject counts differ and both the row-count
bound and the exact recount get exercised. The independent side joins on raw ids: the keyed
pseudonym is injective, so the governed join on pseudonyms must match it row for row.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern

EVENTS = parse_schema({"columns": {
    "sid": {"type": "string", "role": "subject_id"},
    "email": {"type": "string", "role": "identifier"},
    "region": {"type": "string", "role": "attribute"},
    "code": {"type": "string", "role": "quasi_identifier"},
    "v": {"type": "integer", "role": "sensitive"},
}})
OWN = parse_schema({"columns": {"sid": {"type": "string", "role": "subject_id"}, "seg": {"type": "string"}}})
# What the governed view shows of each column, spelled independently of the governor.
TRANSFORMED = "SELECT sid, region, left(code, 2) AS code, v FROM events"


def _agreement(k: int) -> AgreementState:
    terms = parse_agreement({
        "name": "prop", "provider": "prov", "recipients": ["rec"], "purposes": ["analytics.reporting"],
        "valid_until": "2099-01-01",
        "datasets": {"prov.events": {"fields": {"sid": "hash", "email": "drop", "region": "raw",
                                                "code": {"transform": "generalize", "keep": 2}, "v": "raw"}}},
        "access": {"mode": "join", "min_group_size": k, "join_keys": ["sid"]},
    })
    return AgreementState("agp", 1, terms, AgreementStatus.ACTIVE, frozenset({"prov", "rec"}), b"property-test-key")


subject_rows = st.lists(
    st.tuples(st.sampled_from("nsew"), st.sampled_from(["aa1", "aa2", "ab1", "bb1"]), st.integers(0, 100)),
    min_size=1, max_size=5,
)
datasets = st.fixed_dictionaries({
    "subjects": st.lists(subject_rows, min_size=1, max_size=40),
    "own": st.dictionaries(st.integers(0, 50), st.tuples(st.sampled_from("xyz"), st.integers(1, 2)), min_size=1, max_size=40),
    "k": st.sampled_from([2, 3, 5]),
})
queries = st.fixed_dictionaries({
    "dims": st.lists(st.sampled_from(["region", "code"]), unique=True, max_size=2),
    "aggs": st.lists(st.sampled_from(["COUNT(*)", "SUM(v)", "AVG(v)", "COUNT(DISTINCT sid)"]), unique=True, min_size=1, max_size=3),
    "where": st.one_of(st.none(), st.integers(0, 100).map(lambda t: f"v > {t}"), st.just("region <> 'n'")),
    "join": st.booleans(),
})


def _write(folder: Path, data: dict) -> tuple[dict[str, Path], int, int]:
    con = duckdb.connect()
    con.execute("CREATE TABLE events (sid VARCHAR, email VARCHAR, region VARCHAR, code VARCHAR, v BIGINT)")
    con.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?)", [
        (f"s{i}", f"s{i}@x.org", region, code, v)
        for i, rows in enumerate(data["subjects"]) for region, code, v in rows])
    con.execute("CREATE TABLE own (sid VARCHAR, seg VARCHAR)")
    con.executemany("INSERT INTO own VALUES (?, ?)", [
        (f"s{i}", seg) for i, (seg, copies) in data["own"].items() for _ in range(copies)])
    paths = {"prov.events": folder / "events.parquet", "rec.own": folder / "own.parquet"}
    con.execute(f"COPY events TO '{paths['prov.events']}'")
    con.execute(f"COPY own TO '{paths['rec.own']}'")
    max_events = max(len(rows) for rows in data["subjects"])
    max_own = max((copies for _, copies in data["own"].values()), default=1)
    return paths, max_events, max_own


def _sql(q: dict, transformed: bool) -> str:
    """The user's query, or (transformed=True) the independent one over the transformed data."""
    prefix = "e." if q["join"] else ""
    dims = [f"{prefix}{d}" for d in q["dims"]] + (["o.seg"] if q["join"] else [])
    aggs = [a.replace("(v)", f"({prefix}v)").replace("(DISTINCT sid)", f"(DISTINCT {prefix}sid)") for a in q["aggs"]]
    events = f"({TRANSFORMED})" if transformed else "prov.events"
    own = "own" if transformed else "rec.own"
    source = f"{events} e JOIN {own} o ON e.sid = o.sid" if q["join"] else f"{events} AS e0"
    if transformed:
        aggs.append(f"COUNT(DISTINCT {prefix or 'e0.'}sid)")
    where = f" WHERE {prefix}{q['where']}" if q["where"] else ""
    group = f" GROUP BY {', '.join(dims)}" if dims else ""
    return f"SELECT {', '.join(dims + aggs)} FROM {source}{where}{group}"


def _norm(row) -> tuple:
    return tuple(round(float(v), 6) if isinstance(v, (float, Decimal)) else v for v in row)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=datasets, q=queries)
def test_governed_result_equals_thresholded_independent_result(data, q):
    k = data["k"]
    with tempfile.TemporaryDirectory() as tmp:
        paths, max_events, max_own = _write(Path(tmp), data)
        ctx = QueryContext("rec", "analytics.reporting", {
            "prov.events": TableInfo("prov", "events", EVENTS, 0, max_events),
            "rec.own": TableInfo("rec", "own", OWN, 0, max_own),
        }, (_agreement(k),))
        result = DuckDBEngine(threads=1).run(govern(_sql(q, transformed=False), ctx), paths)

        con = duckdb.connect()
        con.execute(f"CREATE VIEW events AS SELECT * FROM '{paths['prov.events']}'")
        con.execute(f"CREATE VIEW own AS SELECT * FROM '{paths['rec.own']}'")
        independent = con.execute(_sql(q, transformed=True)).fetchall()
    kept = [row[:-1] for row in independent if row[-1] >= k]
    small = [row for row in independent if row[-1] < k]
    assert Counter(map(_norm, result.rows)) == Counter(map(_norm, kept))
    assert result.suppressed_groups == len(small)
    # Stated on its own: every released row covers >= k distinct subjects.
    covered = {_norm(row[:len(row) - 1 - len(q["aggs"])]): row[-1] for row in independent}
    for row in result.rows:
        keys = _norm(row[:len(row) - len(q["aggs"])])
        assert covered[keys] >= k, f"{row} covers {covered[keys]} < {k} subjects"
