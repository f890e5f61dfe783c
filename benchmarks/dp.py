"""Differential privacy benchmark (issue #11): a dp aggregate over 10M rows versus the same
threshold-mode aggregate, the cost of the differencing sketches, the cost of a noisy median, and
utility next to OpenDP used directly.

    .venv/bin/python benchmarks/dp.py                           # 10M rows, 2M people, 20 segments
    .venv/bin/python benchmarks/dp.py --shape people            # 10M rows, one row per person
    .venv/bin/python benchmarks/dp.py --rows 200000 --repeat 1  # smoke

Data: retailer.purchases, generated once with DuckDB (customer_id = i mod people, 20 segments
by customer, spend in [0, 100)), then stored by the product's ingest as `dataset add` does. `--shape people` makes every row its own person (people =
rows), the case where ingest's rows-per-subject statistic (1) lets the dp plan skip the
per-person step. Queries, as party brand:

    SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment
    SELECT segment, COUNT(*) AS n, SUM(spend) AS s, MEDIAN(spend) AS m FROM ... GROUP BY segment

  threshold: govern() + DuckDBEngine.run of the first query under an aggregate agreement
             (k = 10), including the differencing sketches of the released groups and the
             check of them (policy/differencing.py) against an empty history (a first-time query);
  repeated:  the same, checked against the history the first run left (the groups it released);
  no-sketch: the same plan with the sketch queries removed (the cost of the sketches);
  dp:        govern() + DuckDBEngine.run of the first query under a dp agreement (epsilon 1 per
             query, one group per person, SUM clamped per person to [0, 500]): bounding SQL +
             OpenDP noise + partition selection;
             Ingest finds segment to be one value per customer (a subject-level column), so
             the plan skips choosing each person's group, and numbers the people, so the plan
             groups their rows by that number (DuckDB's perfect hash aggregation);
  dp unit:   the same, grouped by the 63-bit unit hash (a version stored before people were
             numbered);
  dp chosen: the same, planned as if segment were a row-level column: each person's one group
             is chosen at random among theirs (the general plan);
  dp median: the second query under the same agreement (epsilon split three ways).
Each round runs every contender once, in that order (interleaved); medians of --repeat rounds,
in one process, with the load average. Ratios are against threshold. Target: dp / threshold <= 1.5.

Utility at epsilon 1: the mean relative error per segment of the dp COUNT against the exact
number of people, and of the dp MEDIAN against the exact median of the people's clamped totals,
each next to OpenDP used directly on the same task (exact counts, or each segment's exact
per-person totals, from DuckDB; then OpenDP's Laplace / make_private_quantile with the same
epsilon share, sensitivity and candidates, no partition selection).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import opendp.prelude as dp

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.adapters.ingest import ParquetIngest
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.differencing import differencing_reasons, released_groups
from commonground.policy.dp import GRID_STEPS, grid
from commonground.policy.governor import govern

SQL = "SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment"
SQL_MEDIAN = "SELECT segment, COUNT(*) AS n, SUM(spend) AS s, MEDIAN(spend) AS m FROM retailer.purchases GROUP BY segment"
BOUNDS = (0.0, 500.0)
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


def _context(rows: int, per_person: int, access: dict, subject_level: frozenset[str] = frozenset(),
             person_numbers: bool = False) -> QueryContext:
    table = TableInfo("retailer", "purchases", parse_schema(SCHEMA), rows, per_person,
                      subject_level_columns=subject_level, person_numbers=person_numbers)
    return QueryContext("brand", "analytics.reporting", {"retailer.purchases": table}, (_agreement(access),))


def _interleaved(contenders: dict[str, Callable[[], object]], repeat: int) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds per contender, each round running every contender once, and the last outputs."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    outputs: dict[str, object] = {}
    for _ in range(repeat):
        for name, run in contenders.items():
            started = time.perf_counter()
            outputs[name] = run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def _direct_median(totals: list[float], epsilon: float) -> float:
    """OpenDP's quantile measurement built directly: same candidates, epsilon and input metric."""
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.symmetric_distance()

    def make(scale: float) -> dp.Measurement:
        return dp.m.make_private_quantile(*space, dp.max_divergence(), candidates=grid(BOUNDS), alpha=0.5, scale=scale)
    return make(dp.binary_search_param(make, d_in=1, d_out=epsilon))(np.asarray(totals, dtype=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--people", type=int, default=None, help="default rows / 5, or rows with --shape people")
    parser.add_argument("--shape", choices=("default", "people"), default="default")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    people = args.people or (args.rows if args.shape == "people" else max(args.rows // 5, 1))
    dp.enable_features("contrib")
    with tempfile.TemporaryDirectory() as folder:
        generated, data = Path(folder) / "generated.parquet", Path(folder) / "purchases.parquet"
        duckdb.execute(f"""COPY (SELECT 'c' || (i % {people}) AS customer_id, 's' || ((i % {people}) % 20) AS segment,
                           ((i * 7919) % 10000) / 100.0 AS spend FROM range({args.rows}) t(i))
                           TO '{generated}' (FORMAT parquet)""")
        # Stored as `dataset add` stores it (with the hidden unit column the queries read).
        info, _ = ParquetIngest(Path(folder) / "home", max_bytes=1 << 50).ingest(generated, parse_schema(SCHEMA), data)
        generated.unlink()
        per_person = info.max_rows_per_subject or 1
        sources = {"retailer.purchases": data}
        engine = DuckDBEngine(threads=args.threads)
        threshold_plan = govern(SQL, _context(args.rows, per_person, {"mode": "aggregate", "min_group_size": 10}))
        bare_plan = threshold_plan.without_sketches()
        dp_access = {"mode": "dp", "min_group_size": 10, "epsilon": 10, "epsilon_per_query": 1.0, "delta": 1e-7,
                     "max_groups_per_subject": 1, "bounds": {"spend": list(BOUNDS)}}
        learned = info.subject_level_columns or frozenset()
        numbered = info.person_numbers
        dp_plan = govern(SQL, _context(args.rows, per_person, dp_access, learned, numbered))
        # The same plan bounding people by their 63-bit unit hash instead of their numbers (as for
        # a version stored before ingest numbered people).
        unit_plan = govern(SQL, _context(args.rows, per_person, dp_access, learned))
        # The same query as if segment were not one value per person (as when grouping by a
        # row-level column): the plan then chooses each person's groups.
        chosen_plan = govern(SQL, _context(args.rows, per_person, dp_access, person_numbers=numbered))
        median_plan = govern(SQL_MEDIAN, _context(args.rows, per_person, dp_access, learned, numbered))
        history: list = []

        def checked(earlier: list) -> list:
            released = released_groups(engine.run(threshold_plan, sources).sketches)
            assert not differencing_reasons(released, earlier, 10)
            return released

        def first() -> list:
            history[:] = checked([])
            return history

        medians, outputs = _interleaved({
            "threshold": first, "repeated": lambda: checked(history), "bare": lambda: engine.run(bare_plan, sources),
            "dp": lambda: engine.run(dp_plan, sources), "dp unit": lambda: engine.run(unit_plan, sources),
            "dp chosen": lambda: engine.run(chosen_plan, sources),
            "dp median": lambda: engine.run(median_plan, sources)},
            args.repeat)
        load = os.getloadavg()
        truth = dict(duckdb.execute(f"SELECT segment, count(DISTINCT customer_id) FROM '{data}' GROUP BY 1").fetchall())
        totals: dict[str, list[float]] = {}
        for segment, total in duckdb.execute(
                f"SELECT segment, LEAST(GREATEST(sum(spend), {BOUNDS[0]}), {BOUNDS[1]}) FROM '{data}' "
                "GROUP BY segment, customer_id").fetchall():
            totals.setdefault(segment, []).append(total)
    released = {row[0]: row[1] for row in outputs["dp"].rows}  # type: ignore[attr-defined]
    mre = statistics.mean(abs(released[s] - truth[s]) / truth[s] for s in released) if released else float("nan")
    # OpenDP directly: the same counts, the same Laplace scale (sensitivity 1, epsilon 1 split over count and sum).
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    direct = dp.m.make_laplace(*space, scale=1 / 0.5)([float(v) for v in truth.values()])
    mre_direct = statistics.mean(abs(d - t) / t for d, t in zip(direct, truth.values()))
    true_median = {s: statistics.median(v) for s, v in totals.items()}
    noisy_median = {row[0]: row[3] for row in outputs["dp median"].rows}  # type: ignore[attr-defined]
    mre_median = statistics.mean(abs(noisy_median[s] - true_median[s]) / true_median[s] for s in noisy_median)
    mre_median_direct = statistics.mean(abs(_direct_median(v, 1 / 3) - true_median[s]) / true_median[s]
                                        for s, v in totals.items())
    t_threshold = medians["threshold"]
    ratio = medians["dp"] / t_threshold
    print(f"subject-level columns found by ingest: {', '.join(sorted(learned)) or 'none'}")
    print(f"shape {args.shape}  rows {args.rows:,}  people {people:,}  segments {len(truth)}  threads {args.threads}  "
          f"rounds {args.repeat} (interleaved)  load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"threshold (with differencing sketches)  {t_threshold:8.3f} s   1.00")
    print(f"threshold, repeated query               {medians['repeated']:8.3f} s   {medians['repeated'] / t_threshold:.2f}")
    print(f"threshold without sketches              {medians['bare']:8.3f} s   {medians['bare'] / t_threshold:.2f}"
          f"   (sketch cost: {t_threshold / medians['bare']:.2f}x of the bare threshold query)")
    print(f"dp (bounding + OpenDP noise)            {medians['dp']:8.3f} s   {ratio:.2f}"
          f"   target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}")
    print(f"dp, grouped on the unit hash            {medians['dp unit']:8.3f} s   "
          f"{medians['dp unit'] / t_threshold:.2f}   (people not numbered: versions stored before)")
    print(f"dp, each person's groups chosen        {medians['dp chosen']:8.3f} s   "
          f"{medians['dp chosen'] / t_threshold:.2f}   (as if segment were row-level)")
    print(f"dp with MEDIAN(spend) as well           {medians['dp median']:8.3f} s   "
          f"{medians['dp median'] / t_threshold:.2f}   ({medians['dp median'] / medians['dp']:.2f}x of dp)")
    print(f"utility at epsilon 1: mean relative error of COUNT  store dp {mre:.2e}   OpenDP direct {mre_direct:.2e}"
          f"   groups released {len(released)}/{len(truth)}")
    print(f"                      mean relative error of MEDIAN store dp {mre_median:.2e}   "
          f"OpenDP direct {mre_median_direct:.2e}   (grid step {(BOUNDS[1] - BOUNDS[0]) / GRID_STEPS:g})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
