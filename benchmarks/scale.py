"""Scale benchmark: the governed aggregate and join on DuckDB and on Spark (local mode), at two sizes.

    .venv/bin/python benchmarks/scale.py                                # 10M and 50M provider rows
    .venv/bin/python benchmarks/scale.py --sizes 200000,1000000        # smoke

Data: governed_query.py's "customer" shape (one row per subject; the recipient has a fifth
of the provider's rows, half of them shared), generated once and ingested with the product's
ParquetIngest under benchmarks/.data/. Queries, as party `brand`, governed by the same join
agreement (k = 10, customer_id hashed, age bucketed):

  * aggregate: SELECT age, count(*), avg(spend) FROM retailer.customers GROUP BY age
  * join:      SELECT c.segment, count(*), avg(p.spend) FROM retailer.customers p
               JOIN brand.customers c ON p.customer_id = c.customer_id GROUP BY c.segment

Each query is governed once and the same Plan runs once on `DuckDBEngine` (all cores) and once
on `SparkEngine` (--master, default local[*]; the JVM is started and warmed on a tiny query
first, so its start-up is not counted). Results are checked equal. Printed: each time, the
Spark/DuckDB ratio, and for each engine how time grows from the smaller size to the larger:
(t_large / t_small) / (rows_large / rows_small), 1.0 meaning linear. Figures are written to
benchmarks/.data/results-scale.json. One run each: on a shared machine, re-run before quoting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402
import governed_query as G  # noqa: E402

QUERIES = {
    "aggregate": "SELECT age, count(*) AS n, avg(spend) AS avg_spend FROM retailer.customers GROUP BY age ORDER BY age",
    "join": ("SELECT c.segment, count(*) AS n, avg(p.spend) AS avg_spend FROM retailer.customers p "
             "JOIN brand.customers c ON p.customer_id = c.customer_id GROUP BY c.segment ORDER BY c.segment"),
}


def _same(a, b) -> bool:
    if len(a.rows) != len(b.rows):
        return False
    for ra, rb in zip(a.rows, b.rows):
        for x, y in zip(ra, rb):
            if isinstance(x, float) or isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9):
                    return False
            elif x != y:
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000000,50000000", help="provider rows, comma-separated (two sizes)")
    parser.add_argument("--master", default=os.environ.get("COMMONGROUND_SPARK_MASTER", "local[*]"))
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--duckdb-memory", default="8GB")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from commonground.adapters.duckdb_engine import DuckDBEngine
    from commonground.adapters.spark_engine import SparkEngine
    from commonground.policy.governor import govern

    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, Spark master {args.master}")
    metas = {}
    for rows in sizes:
        t0 = time.perf_counter()
        metas[rows] = G.make_data("customer", rows, rows // 5)
        print(f"data {rows:,} rows ready in {time.perf_counter() - t0:.1f} s")

    duck = DuckDBEngine(memory_limit=args.duckdb_memory, timeout_s=3600)
    spark = SparkEngine(master=args.master, timeout_s=3600, conf={"spark.driver.memory": args.driver_memory})
    t0 = time.perf_counter()
    small_meta = metas[sizes[0]]
    ctx, sources = G.context(small_meta)
    spark.run(govern("SELECT count(*) AS n FROM brand.customers", ctx), sources)  # JVM start + warm-up
    print(f"Spark session started and warmed in {time.perf_counter() - t0:.1f} s")

    results: dict = {"sizes": sizes, "master": args.master, "load": os.getloadavg(), "fingerprint": B.product_fingerprint(),
                     "times": {}}
    for rows in sizes:
        ctx, sources = G.context(metas[rows])
        for name, sql in QUERIES.items():
            plan = govern(sql, ctx)
            t = time.perf_counter()
            on_duckdb = duck.run(plan, sources)
            duck_s = time.perf_counter() - t
            t = time.perf_counter()
            on_spark = spark.run(plan, sources)
            spark_s = time.perf_counter() - t
            same = _same(on_duckdb, on_spark)
            results["times"][f"{name}@{rows}"] = {"duckdb_s": duck_s, "spark_s": spark_s, "ratio": spark_s / duck_s,
                                                  "same_result": same, "exact_recount": on_duckdb.exact_recount}
            print(f"{name:9} {rows:>12,} rows  DuckDB {duck_s:8.2f} s  Spark {spark_s:8.2f} s  "
                  f"Spark/DuckDB {spark_s / duck_s:6.2f}x  same result: {same}")
    spark.stop()

    if len(sizes) == 2:
        small, large = sizes
        print(f"\ngrowth from {small:,} to {large:,} rows (time ratio / size ratio; 1.0 = linear):")
        results["growth"] = {}
        for name in QUERIES:
            a, b = results["times"][f"{name}@{small}"], results["times"][f"{name}@{large}"]
            g = {engine: (b[f"{engine}_s"] / a[f"{engine}_s"]) / (large / small) for engine in ("duckdb", "spark")}
            results["growth"][name] = g
            print(f"{name:9} DuckDB {g['duckdb']:.2f}  Spark {g['spark']:.2f}")
    out = B.data_dir() / "results-scale.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nfigures written to {out}")


if __name__ == "__main__":
    main()
