"""Consent filter benchmark: a governed aggregate with the consent gate versus without it.

    .venv/bin/python benchmarks/consent_filter.py                 # 10M rows, 10M consent records
    .venv/bin/python benchmarks/consent_filter.py --rows 200000   # smoke

Data: one row per subject, N subjects, and a consent record for every subject, 30% of them
withdrawn (an opt-out dataset). Every run goes through the same governor and DuckDB engine; the
only difference is the consent gate: the view reads the consent base (the version's rows whose
subjects may be used, derived once) plus the changes recorded since it was built.

Measured, medians of --repeat runs, all in this one process:
- the governed aggregate without the gate, and with it (base present, no changes since);
- the first query after a version or consent change: building the base (the snapshot of the
  consent state is handed to the engine; reading it from the metadata store is the service's
  part and is timed separately below);
- queries with 1,000 fresh withdrawals, and with 1,000 fresh grants, since the base;
- one consent toggle through the service (`consent.record`, SQLite store), and reading the
  changes since the base in a query's read transaction.
Every gated result is checked against a count computed independently from the data file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from commonground.adapters.duckdb_engine import DuckDBEngine
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.governor import govern
from commonground.ports import ConsentGate, ConsentSnapshot

DATA = Path(__file__).resolve().parent / ".data"
SQL = "SELECT segment, COUNT(*) AS n, AVG(spend) AS spend FROM retailer.customers GROUP BY segment"
PURPOSE = "analytics.reporting"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / f"consent-{args.rows}.parquet"
    con = duckdb.connect()
    if not path.exists():
        con.execute(f"COPY (SELECT 'C' || lpad(i::VARCHAR, 9, '0') AS customer_id, ['a','b','c','d'][1 + i % 4] AS segment, "
                    f"(i % 1000) / 10.0 AS spend FROM range({args.rows}) t(i)) TO '{path}' (FORMAT parquet)")
    withdrawn = [r[0] for r in con.execute(
        f"SELECT customer_id FROM read_parquet('{path}') WHERE hash(customer_id) % 10 < 3").fetchall()]
    expected = con.execute(f"SELECT count(*) FROM read_parquet('{path}') WHERE hash(customer_id) % 10 >= 3").fetchone()[0]
    # Subjects whose consent changes after the base: some who may be used withdraw, some who withdrew grant.
    fresh_withdrawals = [r[0] for r in con.execute(
        f"SELECT customer_id FROM read_parquet('{path}') WHERE hash(customer_id) % 10 >= 3 LIMIT {args.changes}").fetchall()]
    fresh_grants = withdrawn[: args.changes]
    schema = parse_schema({"consent": "opt_out", "columns": {
        "customer_id": {"type": "string", "role": "subject_id"}, "segment": {}, "spend": {"type": "double"}}})
    terms = parse_agreement({"name": "bench", "provider": "retailer", "recipients": ["brand"],
                             "purposes": [PURPOSE], "valid_until": "2099-01-01",
                             "datasets": {"retailer.customers": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}},
                             "access": {"mode": "aggregate", "min_group_size": 10}})
    agreement = AgreementState("ag", 1, terms, AgreementStatus.ACTIVE, frozenset(terms.parties), b"k" * 32)
    engine = DuckDBEngine(threads=2)
    sources = {"retailer.customers": path}
    work = Path(tempfile.mkdtemp(prefix="cg-consent-bench-"))
    sha = "bench-" + str(args.rows)

    def gate(seq: int, changes: dict[str, bool] | None = None, snapshot: bool = False) -> ConsentGate:
        return ConsentGate("opt_out", PURPOSE, sha, work / f"{PURPOSE}.opt_out.{seq}.parquet", seq, changes or {},
                           snapshot=ConsentSnapshot(seq, withdrawn) if snapshot else None)

    def timed(gated: bool, make_gate=None, repeat: int = args.repeat) -> tuple[float, int]:
        table = TableInfo("retailer", "customers", schema, args.rows, 1, "opt_out" if gated else None)
        times, count = [], 0
        for n in range(repeat):
            consent = {"retailer.customers": make_gate(n)} if make_gate else None
            started = time.perf_counter()
            plan = govern(SQL, QueryContext("brand", PURPOSE, {"retailer.customers": table}, (agreement,)))
            rows = engine.run(plan, sources, consent).rows
            times.append(time.perf_counter() - started)
            count = sum(r[1] for r in rows)
        return statistics.median(times), count

    # The first query after a change builds its base (a new seq each time, so each run builds).
    build, built = timed(True, lambda n: gate(1_000 + n, snapshot=True), repeat=max(1, min(args.repeat, 3)))
    assert built == expected, f"base build: {built} != {expected}"
    engine.run(govern(SQL, QueryContext("brand", PURPOSE, {"retailer.customers": TableInfo(
        "retailer", "customers", schema, args.rows, 1, "opt_out")}, (agreement,))), sources,
        {"retailer.customers": gate(1, snapshot=True)})
    without, plain = timed(False)
    assert sum(r[1] for r in [[0, plain]]) == args.rows
    with_gate, gated = timed(True, lambda n: gate(1))
    assert gated == expected, f"the gate must drop exactly the withdrawn subjects: {gated} != {expected}"
    delta_w, after_w = timed(True, lambda n: gate(1, {s: False for s in fresh_withdrawals}))
    assert after_w == expected - len(fresh_withdrawals), "fresh withdrawals must apply on the next query"
    delta_g, after_g = timed(True, lambda n: gate(1, {s: True for s in fresh_grants}))
    assert after_g == expected + len(fresh_grants), "fresh grants must apply on the next query"
    toggle, changes_read = _service_costs(work, args.repeat)

    n_changes = f"{args.changes:,}"
    print(f"rows {args.rows:,}; consent records {args.rows:,} ({len(withdrawn):,} withdrawn, 30%)")
    print(f"{'governed aggregate':52} {without * 1000:9.1f} ms")
    print(f"{'same, with the consent gate (base, no changes)':52} {with_gate * 1000:9.1f} ms")
    print(f"{'ratio (target <= 1.3)':52} {with_gate / without:9.2f}x  {'MET' if with_gate / without <= 1.3 else 'NOT MET'}")
    print(f"{'first query after a change (base build + query)':52} {build * 1000:9.1f} ms  {build / without:6.1f}x")
    print(f"{f'with {n_changes} fresh withdrawals since the base':52} {delta_w * 1000:9.1f} ms  {delta_w / without:6.1f}x")
    print(f"{f'with {n_changes} fresh grants since the base':52} {delta_g * 1000:9.1f} ms  {delta_g / without:6.1f}x")
    print(f"{'one consent toggle (consent.record, SQLite)':52} {toggle * 1000:9.1f} ms")
    print(f"{'reading the changes since the base (1 record)':52} {changes_read * 1000:9.1f} ms")
    print(f"base size {sum(p.stat().st_size for p in work.glob('*.parquet')) / 1e6 / len(list(work.glob('*.parquet'))):.1f} MB "
          f"(data {path.stat().st_size / 1e6:.1f} MB)")
    print(f"measured {dt.datetime.now():%Y-%m-%d %H:%M}, duckdb {duckdb.__version__}, python {sys.version.split()[0]}")
    for p in work.glob("*"):
        p.unlink()
    work.rmdir()


def _service_costs(work: Path, repeat: int) -> tuple[float, float]:
    """One consent toggle through the service, and the changes-since-base read a query does."""
    from commonground import bootstrap
    from commonground.services import consent as consent_svc
    from commonground.services import datasets as datasets_svc
    from commonground.services import parties as parties_svc

    home = work / "home"
    deps = bootstrap.build(bootstrap.Settings(home=home, database_url=f"sqlite:///{home / 'metadata.db'}"))
    bootstrap.init_store(deps)
    try:
        parties_svc.add_party(deps, "retailer")
        csv = work / "c.csv"
        csv.write_text("customer_id,spend\n" + "".join(f"C{i:09d},{i}\n" for i in range(100)))
        datasets_svc.add_dataset(deps, "retailer", "customers", csv, {"consent": "opt_out", "columns": {
            "customer_id": {"type": "string", "role": "subject_id"}, "spend": {"type": "double"}}})
        times = []
        for n in range(max(repeat, 5)):
            status = "withdrawn" if n % 2 == 0 else "granted"
            started = time.perf_counter()
            consent_svc.record(deps, "retailer", "customers", [("C000000001", PURPOSE, status)], "controller")
            times.append(time.perf_counter() - started)
        reads = []
        with deps.store.read() as conn:
            latest = deps.store.consent_settled_seq(conn)
            dataset_id = deps.store.dataset_id(conn, parties_svc.require_party(deps, conn, "retailer").id, "customers")
        for _ in range(max(repeat, 5)):
            started = time.perf_counter()
            with deps.store.read() as conn:
                deps.store.consent_since(conn, dataset_id, PURPOSE, latest - 1, consent_svc.MAX_CHANGES + 1)
            reads.append(time.perf_counter() - started)
        return statistics.median(times), statistics.median(reads)
    finally:
        deps.store.dispose()
        import shutil
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
