"""Consent filter benchmark: a governed aggregate with the consent filter versus without it.

    .venv/bin/python benchmarks/consent_filter.py                 # 10M rows, 10M consent records
    .venv/bin/python benchmarks/consent_filter.py --rows 200000   # smoke

Data: one row per subject, N subjects, and a consent record for every subject, 30% of them
withdrawn (an opt-out dataset). Both runs go through the same governor and DuckDB engine; the
only difference is the consent gate in the view (an anti-join against the withdrawn set,
handed to the engine as an Arrow table). Reading that set from the metadata store is not
included: it is the service's part and is measured separately when it matters.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import duckdb

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern

DATA = Path(__file__).resolve().parent / ".data"
SQL = "SELECT segment, COUNT(*) AS n, AVG(spend) AS spend FROM retailer.customers GROUP BY segment"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / f"consent-{args.rows}.parquet"
    con = duckdb.connect()
    if not path.exists():
        con.execute(f"COPY (SELECT 'C' || lpad(i::VARCHAR, 9, '0') AS customer_id, ['a','b','c','d'][1 + i % 4] AS segment, "
                    f"(i % 1000) / 10.0 AS spend FROM range({args.rows}) t(i)) TO '{path}' (FORMAT parquet)")
    withdrawn = [r[0] for r in con.execute(
        f"SELECT customer_id FROM read_parquet('{path}') WHERE hash(customer_id) % 10 < 3").fetchall()]
    schema = parse_schema({"consent": "opt_out", "columns": {
        "customer_id": {"type": "string", "role": "subject_id"}, "segment": {}, "spend": {"type": "double"}}})
    terms = parse_agreement({"name": "bench", "provider": "retailer", "recipients": ["brand"],
                             "purposes": ["analytics.reporting"], "valid_until": "2099-01-01",
                             "datasets": {"retailer.customers": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}},
                             "access": {"mode": "aggregate", "min_group_size": 10}})
    agreement = AgreementState("ag", 1, terms, AgreementStatus.ACTIVE, frozenset(terms.parties), b"k" * 32)
    engine = DuckDBEngine(threads=2)
    sources = {"retailer.customers": path}

    def timed(gate: str | None) -> tuple[float, list]:
        table = TableInfo("retailer", "customers", schema, args.rows, 1, gate)
        times, rows = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            plan = govern(SQL, QueryContext("brand", "analytics.reporting", {"retailer.customers": table}, (agreement,)))
            rows = engine.run(plan, sources, {"retailer.customers": withdrawn} if gate else None).rows
            times.append(time.perf_counter() - started)
        return statistics.median(times), rows

    without, plain = timed(None)
    with_gate, gated = timed("opt_out")
    expected = con.execute(f"SELECT count(*) FROM read_parquet('{path}') WHERE hash(customer_id) % 10 >= 3").fetchone()[0]
    assert sum(r[1] for r in gated) == expected, "the gate must drop exactly the withdrawn subjects"
    print(f"rows {args.rows:,}; consent records {args.rows:,} ({len(withdrawn):,} withdrawn, 30%)")
    print(f"{'governed aggregate':40} {without * 1000:9.1f} ms")
    print(f"{'same, with the consent filter':40} {with_gate * 1000:9.1f} ms")
    print(f"{'ratio (target <= 1.3)':40} {with_gate / without:9.2f}x  {'MET' if with_gate / without <= 1.3 else 'NOT MET'}")
    print(f"measured {dt.datetime.now():%Y-%m-%d %H:%M}, duckdb {duckdb.__version__}, python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
