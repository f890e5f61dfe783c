"""Differential privacy benchmark (issue #11): a dp aggregate over 10M rows versus the same
threshold-mode aggregate, the cost of the differencing sketches, and utility next to OpenDP
used directly.

    .venv/bin/python benchmarks/dp.py                         # 10M rows, 2M people, 20 segments
    .venv/bin/python benchmarks/dp.py --rows 200000 --repeat 1   # smoke

Data: retailer.purchases, generated once with DuckDB (customer_id = i mod people, 20 segments
by customer, spend in [0, 100)). Query, as party brand:

    SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment

  threshold: govern() + DuckDBEngine.run under an aggregate agreement (k = 10), including the
             differencing sketches of the released groups and the check of them
             (policy/differencing.py) against an empty history (a first-time query);
  repeated:  the same, checked against the history the first run left (the groups it released);
  no-sketch: the same plan with the sketch queries removed (the cost of the sketches);
  dp:        govern() + DuckDBEngine.run under a dp agreement (epsilon 1 per query, one group
             per person, SUM clamped per person to [0, 500]): bounding SQL + OpenDP noise +
             partition selection.
Medians of --repeat runs, in one process, one after another. Ratios are against threshold.

Utility at epsilon 1: the mean relative error of the dp COUNT per segment against the exact
number of people per segment, next to OpenDP used directly on the same task (exact counts of
people per segment from DuckDB, then OpenDP's Laplace measurement with the same sensitivity
and epsilon share, no partition selection). Target: dp / threshold <= 1.5.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import opendp.prelude as dp

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.differencing import differencing_reasons, released_groups
from commonground.policy.governor import govern

SQL = "SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment"
SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                      "segment": {"type": "string", "role": "attribute"},
                      "spend": {"type": "double", "role": "sensitive"}}}
TARGET = 1.5


def _agreement(access: dict) -> AgreementState:
    terms = parse_agreement({
        "name": "bench", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics.reporting"],
        "valid_until": "2099-12-31", "access": access,
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}})
    return AgreementState("ag-bench", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)


def _context(rows: int, per_person: int, access: dict) -> QueryContext:
    table = TableInfo("retailer", "purchases", parse_schema(SCHEMA), rows, per_person)
    return QueryContext("brand", "analytics.reporting", {"retailer.purchases": table}, (_agreement(access),))


def _time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=None, help="default rows / 5")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    people = args.people or max(args.rows // 5, 1)
    dp.enable_features("contrib")
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "purchases.parquet"
        duckdb.execute(f"""COPY (SELECT 'c' || (i % {people}) AS customer_id, 's' || ((i % {people}) % 20) AS segment,
                           ((i * 7919) % 10000) / 100.0 AS spend FROM range({args.rows}) t(i))
                           TO '{data}' (FORMAT parquet)""")
        per_person = -(-args.rows // people)
        sources = {"retailer.purchases": data}
        engine = DuckDBEngine(threads=args.threads)
        threshold_plan = govern(SQL, _context(args.rows, per_person, {"mode": "aggregate", "min_group_size": 10}))
        bare_plan = dataclasses.replace(threshold_plan, groups=tuple(
            dataclasses.replace(g, sketch_sql=None) for g in threshold_plan.groups))
        dp_access = {"mode": "dp", "min_group_size": 10, "epsilon": 10, "epsilon_per_query": 1.0, "delta": 1e-7,
                     "max_groups_per_subject": 1, "bounds": {"spend": [0, 500]}}
        dp_plan = govern(SQL, _context(args.rows, per_person, dp_access))
        def checked(earlier: list) -> list:
            released = released_groups(engine.run(threshold_plan, sources).sketches)
            assert not differencing_reasons(released, earlier, 10)
            return released

        t_threshold, history = _time(lambda: checked([]), args.repeat)
        t_repeated, _ = _time(lambda: checked(history), args.repeat)
        t_bare, _ = _time(lambda: engine.run(bare_plan, sources), args.repeat)
        t_dp, dp_result = _time(lambda: engine.run(dp_plan, sources), args.repeat)
        truth = dict(duckdb.execute(f"SELECT segment, count(DISTINCT customer_id) FROM '{data}' GROUP BY 1").fetchall())
    released = {row[0]: row[1] for row in dp_result.rows}  # type: ignore[attr-defined]
    mre = statistics.mean(abs(released[s] - truth[s]) / truth[s] for s in released) if released else float("nan")
    # OpenDP directly: the same counts, the same Laplace scale (sensitivity 1, epsilon 1 split over count and sum).
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    direct = dp.m.make_laplace(*space, scale=1 / 0.5)([float(v) for v in truth.values()])
    mre_direct = statistics.mean(abs(d - t) / t for d, t in zip(direct, truth.values()))
    print(f"rows {args.rows:,}  people {people:,}  segments {len(truth)}  threads {args.threads}  repeat {args.repeat}")
    print(f"threshold (with differencing sketches)  {t_threshold:8.3f} s   1.00")
    print(f"threshold, repeated query               {t_repeated:8.3f} s   {t_repeated / t_threshold:.2f}")
    print(f"threshold without sketches              {t_bare:8.3f} s   {t_bare / t_threshold:.2f}"
          f"   (sketch cost: {t_threshold / t_bare:.2f}x of the bare threshold query)")
    print(f"dp (bounding + OpenDP noise)            {t_dp:8.3f} s   {t_dp / t_threshold:.2f}"
          f"   target <= {TARGET}: {'met' if t_dp / t_threshold <= TARGET else 'NOT met'}")
    print(f"utility at epsilon 1: mean relative error of COUNT  store dp {mre:.2e}   OpenDP direct {mre_direct:.2e}"
          f"   groups released {len(released)}/{len(truth)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
