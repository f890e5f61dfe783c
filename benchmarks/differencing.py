"""Differencing history benchmark (issue #11): the cost of the service-level differencing check
(`services.privacy.differencing_refusal`, which reads the recipient's released groups under the
agreement and compares the new ones with them) as the history grows.

    .venv/bin/python benchmarks/differencing.py                      # histories 0, 1k, 10k, 100k
    .venv/bin/python benchmarks/differencing.py --sizes 0,1000 --repeat 3   # smoke
    COMMONGROUND_BENCH_DATABASE_URL=postgresql://127.0.0.1:5432/test ...    # on PostgreSQL

The plan is the governor's for `SELECT segment, COUNT(*), SUM(spend) ... GROUP BY segment` over
a 500,000-row dataset with at most 5 rows per person (k = 10). The result's 20 released groups
have ~25,000 rows each; their sketches are synthetic (the check only reads sketches, so no
engine run is needed). The history is made of earlier releases to the same recipient under the
same agreement, 1,000 groups per query, with row counts log-uniform in [100, 10^7] (groups of
many shapes and filters) and the dataset's bound of 5 rows per person, grown to each size in
turn. Contender: the check with that history;
baseline: the same check, in the same run, for a second recipient with an empty history.
The two alternate, --repeat times each; medians, ratio contender / baseline, and the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from commonground.adapters import tables as t
from commonground.bootstrap import Settings, build, init_store
from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
from commonground.domain.schema import parse_schema
from commonground.policy.context import QueryContext, TableInfo
from commonground.policy.differencing import CELLS, Sketch
from commonground.policy.governor import govern
from commonground.ports import QueryResult
from commonground.services.privacy import differencing_refusal

SQL = "SELECT segment, COUNT(*) AS n, SUM(spend) AS s FROM retailer.purchases GROUP BY segment"
SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id"},
                      "segment": {"type": "string", "role": "attribute"},
                      "spend": {"type": "double", "role": "sensitive"}}}
AGREEMENT = "agbench"
ROWS, PER_PERSON, K = 500_000, 5, 10


def _plan():
    terms = parse_agreement({
        "name": "bench", "provider": "retailer", "recipients": ["brand", "fresh"], "purposes": ["analytics.reporting"],
        "valid_until": "2099-12-31", "access": {"mode": "aggregate", "min_group_size": K},
        "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}}})
    state = AgreementState(AGREEMENT, 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    table = TableInfo("retailer", "purchases", parse_schema(SCHEMA), ROWS, PER_PERSON)
    return govern(SQL, QueryContext("brand", "analytics.reporting", {"retailer.purchases": table}, (state,)))


def _sketch(rng: random.Random, rows: int) -> Sketch:
    """A sketch of `rows` rows: cells filled as hashing spreads them, sums as 64-bit noise."""
    base, extra = divmod(rows, CELLS)
    return Sketch(tuple(base + (i < extra) for i in range(CELLS)),
                  tuple(rng.getrandbits(64) for _ in range(CELLS)), tuple(rng.getrandbits(64) for _ in range(CELLS)))


def _store(url: str | None, home: Path):
    deps = build(Settings(home=home, database_url=url or f"sqlite:///{home / 'metadata.db'}"))
    init_store(deps)
    now = dt.datetime.now(dt.timezone.utc)
    with deps.store.transaction() as conn:
        conn.execute(sa.delete(t.released_groups).where(t.released_groups.c.agreement_id == AGREEMENT))
        conn.execute(sa.delete(t.agreements).where(t.agreements.c.id == AGREEMENT))
        conn.execute(sa.delete(t.parties).where(t.parties.c.id == "pbench"))
        conn.execute(t.parties.insert().values(id="pbench", name="bench-retailer", kind="organisation", created_at=now))
        conn.execute(t.agreements.insert().values(id=AGREEMENT, name="bench", version=1, provider_id="pbench",
                                                  terms_json="{}", status="active", hash_key=b"k" * 32, created_at=now))
    return deps


def _grow(deps, plan, rng: random.Random, have: int, want: int) -> None:
    """Release groups to `brand` until its history holds `want`, 1,000 groups per query."""
    index = 1_000_000 + have
    while have < want:
        batch = min(1000, want - have)
        groups = []
        for _ in range(batch):
            sketch = _sketch(rng, int(10 ** rng.uniform(2, 7)))
            groups.append((sketch.to_bytes(), sum(sketch.rows), PER_PERSON))
        with deps.store.transaction() as conn:
            deps.store.insert_released_sketches(conn, [AGREEMENT], "brand", groups, index, dt.datetime.now(dt.timezone.utc))
        have += batch
        index += 1


def _check(deps, plan, result, party: str) -> float:
    started = time.perf_counter()
    with deps.store.transaction() as conn:
        reasons = differencing_refusal(deps, conn, party, plan, result)
    elapsed = time.perf_counter() - started
    assert not reasons, reasons
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1000,10000,100000")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(11)
    plan = _plan()
    result = QueryResult(list(plan.columns), [], sketches=[[_sketch(rng, 25_000 + i) for i in range(20)]])
    url = os.environ.get("COMMONGROUND_BENCH_DATABASE_URL")
    print(f"store {'PostgreSQL' if url else 'SQLite'}  k {K}  rows per person <= {PER_PERSON}  "
          f"new groups 20 (+1 block total)  repeat {args.repeat}")
    print(f"{'history':>8}  {'with history':>13}  {'empty history':>14}  {'ratio':>6}")
    with tempfile.TemporaryDirectory() as folder:
        deps = _store(url, Path(folder))
        have = 0
        for size in sizes:
            _grow(deps, plan, rng, have, size)
            have = size
            _check(deps, plan, result, "brand")  # warm caches for both
            _check(deps, plan, result, "fresh")
            contender, baseline = [], []
            for _ in range(args.repeat):
                contender.append(_check(deps, plan, result, "brand"))
                baseline.append(_check(deps, plan, result, "fresh"))
            c, b = statistics.median(contender), statistics.median(baseline)
            print(f"{size:>8,}  {c * 1000:>10.1f} ms  {b * 1000:>11.1f} ms  {c / b:>6.2f}", flush=True)
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
