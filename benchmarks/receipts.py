"""Receipts benchmark: one person's receipts with 1M recorded computations.

    .venv/bin/python benchmarks/receipts.py                       # 1M computations, SQLite
    .venv/bin/python benchmarks/receipts.py --computations 50000  # smoke
    .venv/bin/python benchmarks/receipts.py --database-url postgresql+psycopg://127.0.0.1:5432/test

The store holds a retailer's dataset (1,000 customers; Carol is one) and a second dataset
without her. 1M computations are recorded over a year, across both datasets, four purposes
and two versions of the retailer's dataset. Carol (opt-out dataset) withdrew one purpose for
three months, so the receipts query must apply her consent windows, not just the dataset.

Measured: `services.subjects.receipts` (newest 100, the page a person sees first), warm
(the per-version "does this version hold her rows" answers are cached; versions are
immutable) and cold, and a deep page (`before` half-way back). The baseline is the
physical limit measured in the same run on the same database: the newest 100 computations
of the dataset by the same index, with no consent logic and no service around it.
Target (issue #4): under 50 ms with 1M recorded computations.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine_line  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.services import consent as consent_svc  # noqa: E402
from commonground.services import datasets as dataset_svc  # noqa: E402
from commonground.services import parties as party_svc  # noqa: E402
from commonground.services import subjects as subject_svc  # noqa: E402

PURPOSES = ["analytics.reporting", "marketing.advertising", "personalize", "essential.service"]
START = dt.datetime(2025, 11, 1, tzinfo=dt.timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.moment = START

    def now(self) -> dt.datetime:
        return self.moment


def _timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--computations", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cg-receipts-"))
    settings = bootstrap.Settings.from_env(home)
    if args.database_url:
        settings = bootstrap.Settings(home, args.database_url)
    clock = Clock()
    deps = bootstrap.build(settings, clock=clock)
    if args.database_url:
        with deps.store.engine.begin() as conn:
            for table in ("offers", "offer_batches", "computations", "subject_requests", "subject_links", "subject_claims",
                          "consent_state", "consent_records", "vocabulary_entries", "tree_heads", "ledger_entries",
                          "agreement_templates", "agreement_signatures", "agreements", "dataset_versions", "datasets",
                          "tokens", "parties", "alembic_version"):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table} CASCADE")
    bootstrap.init_store(deps)
    for name in ("retailer", "brand"):
        party_svc.add_party(deps, name)
    csv = home / "customers.csv"
    csv.write_text("customer_id,segment\n" + "".join(f"C{i:04d},{'abc'[i % 3]}\n" for i in range(1000)))
    other = home / "stores.csv"
    other.write_text("store_id,region\n" + "".join(f"S{i:03d},{'nsew'[i % 4]}\n" for i in range(50)))
    schema = {"consent": "opt_out", "columns": {"customer_id": {"type": "string", "role": "subject_id"}, "segment": {}}}
    dataset_svc.add_dataset(deps, "retailer", "customers", csv, schema)
    dataset_svc.add_dataset(deps, "retailer", "customers", csv, schema)  # version 2, Carol in both
    dataset_svc.add_dataset(deps, "retailer", "stores", other, {"columns": {
        "store_id": {"type": "string", "role": "subject_id"}, "region": {}}})
    code, _ = subject_svc.invite(deps, "retailer", "C0042")
    party_svc.add_party(deps, "carol", "individual")
    subject_svc.claim(deps, "carol", code)
    span = dt.timedelta(days=365)
    step = span / args.computations
    # Carol withdraws marketing for three months, a third of the way through the year.
    clock.moment = START + span / 3
    consent_svc.record(deps, "retailer", "retailer.customers", [("C0042", "marketing.advertising", "withdrawn")], "controller")
    clock.moment = START + span / 3 + dt.timedelta(days=91)
    consent_svc.record(deps, "retailer", "retailer.customers", [("C0042", "marketing.advertising", "granted")], "controller")

    with deps.store.read() as conn:
        retailer = deps.store.party_by_name(conn, "retailer").id
        customers = deps.store.dataset_id(conn, retailer, "customers")
        stores = deps.store.dataset_id(conn, retailer, "stores")
    loaded = time.perf_counter()
    batch = 50_000
    for first in range(0, args.computations, batch):
        rows = [{"ledger_index": i, "kind": "query", "party": "brand", "purpose": PURPOSES[i % 4],
                 "agreements_json": '["ag"]', "dataset_id": customers if i % 2 == 0 else stores,
                 "version": 1 if i < args.computations // 2 else 2, "fields_json": '["segment"]',
                 "at": START + step * i} for i in range(first, min(first + batch, args.computations))]
        with deps.store.transaction() as conn:
            deps.store.insert_computations(conn, rows)
    load_s = time.perf_counter() - loaded
    if not args.database_url:
        with deps.store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    clock.moment = START + span + dt.timedelta(days=1)

    cold = _timed(lambda: subject_svc.receipts(deps, "carol", limit=100), 1)[0]
    first_page = subject_svc.receipts(deps, "carol", limit=100)
    assert len(first_page) == 100 and all(r["dataset"] == "retailer.customers" for r in first_page)
    warm = _timed(lambda: subject_svc.receipts(deps, "carol", limit=100), args.repeat)
    middle = START + span / 3 + dt.timedelta(days=60)  # inside her withdrawal: marketing must be absent
    deep_page = subject_svc.receipts(deps, "carol", before=middle, limit=100)
    assert len(deep_page) == 100 and "marketing.advertising" not in {r["purpose"] for r in deep_page}
    deep = _timed(lambda: subject_svc.receipts(deps, "carol", before=middle, limit=100), args.repeat)

    c = sa.table("computations", sa.column("seq"), sa.column("dataset_id"))
    raw_sql = sa.select(sa.text("*")).select_from(c).where(c.c.dataset_id == customers).order_by(c.c.seq.desc()).limit(100)

    def raw() -> None:
        with deps.store.read() as conn:
            assert len(conn.execute(raw_sql).all()) == 100
    baseline = _timed(raw, args.repeat)
    med = statistics.median
    p95 = lambda xs: sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]  # noqa: E731
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"receipts, {args.computations:,} recorded computations ({backend}); loading them took {load_s:.1f} s")
    print(f"{'step':44} {'median ms':>10} {'p95 ms':>8} {'vs raw':>7}")
    for label, xs in (("raw indexed SELECT (newest 100 of the dataset)", baseline),
                      ("receipts, newest 100, warm", warm), ("receipts, a page inside her withdrawal", deep)):
        print(f"{label:44} {med(xs):10.2f} {p95(xs):8.2f} {med(xs) / med(baseline):6.1f}x")
    print(f"{'receipts, newest 100, cold (scans 3 versions)':44} {cold:10.2f}")
    verdict = "MET" if p95(warm) < 50 and p95(deep) < 50 else "NOT MET"
    print(f"target: under 50 ms with {args.computations:,} computations: {verdict}")
    print(machine_line())
    (Path(__file__).resolve().parent / ".data").mkdir(exist_ok=True)
    (Path(__file__).resolve().parent / ".data" / f"results-receipts-{backend}.json").write_text(json.dumps({
        "computations": args.computations, "baseline_ms": med(baseline), "warm_ms": med(warm), "warm_p95_ms": p95(warm),
        "deep_ms": med(deep), "deep_p95_ms": p95(deep), "cold_ms": cold, "load_s": load_s}, indent=2))
    deps.store.dispose()


if __name__ == "__main__":
    main()
