"""Catalogue benchmark: browsing and requesting data products at 10,000 listings and 1,000 parties.

    .venv/bin/python benchmarks/catalogue.py                              # 10,000 listings, 1,000 parties
    .venv/bin/python benchmarks/catalogue.py --listings 500 --parties 50  # smoke
    .venv/bin/python benchmarks/catalogue.py --database-url postgresql+psycopg://127.0.0.1:5432/DB

Store: 10 owners, each with one dataset (2,000 people) and declared rights; the listings are
spread over them; every third listing is shown to 3 chosen parties, the rest to all. Setup
writes parties and listings straight through the store in one transaction each (no ledger
entries: setup is not what is measured); the datasets and rights go through the services.

Measured (p50 and p95 of --repeat calls, random parties and listings):
- the catalogue's first page (50 listings a party may see, with partner counts), through the
  service and through the API (GET /v1/listings, in-process HTTP client, token checked);
- a request for a purpose the listing grants (an active agreement is made: catalog, vocabulary
  and rights checks, agreement, signatures, ledger entry), through the service and the API.
Baselines, same run: a raw SQL read of one page of listings (no visibility filter, no counts,
no parsing), and `agreement propose` of the same terms (the same checks and one agreement).
The target is < 100 ms for each of the four.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine_line  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.adapters import tables as t  # noqa: E402
from commonground.api.app import create_app  # noqa: E402
from commonground.domain.listings import parse_listing  # noqa: E402
from commonground.domain.records import Party  # noqa: E402
from commonground.services import agreements as agreement_svc  # noqa: E402
from commonground.services import datasets as dataset_svc  # noqa: E402
from commonground.services import listings as listing_svc  # noqa: E402
from commonground.services import parties as party_svc  # noqa: E402
from commonground.services import rights as rights_svc  # noqa: E402

OWNERS = 10
PURPOSE = "analytics.reporting"
SCHEMA = {"columns": {"customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
                      "segment": {"type": "string", "role": "attribute", "category": "user.behavior"},
                      "spend": {"type": "double", "role": "sensitive", "category": "user.financial"}}}


def listing_doc(owner: str, name: str) -> dict[str, Any]:
    return {"name": name, "title": f"{name} by segment", "valid_until": "2099-12-31", "purposes": [PURPOSE],
            "datasets": {f"{owner}.cards": {"fields": {"customer_id": "hash", "segment": "raw", "spend": "raw"}}},
            "access": {"mode": "aggregate", "min_group_size": 10}}


def build(deps, listings: int, parties: int, folder: Path) -> tuple[list[str], list[str], list[str]]:
    """Owners with a dataset and rights (services); parties and listings in bulk (store)."""
    csv = folder / "cards.csv"
    csv.write_text("customer_id,segment,spend\n" + "".join(f"C{i:05d},{'abcd'[i % 4]},{i % 97}.5\n" for i in range(2000)))
    owners = [f"owner{i:02d}" for i in range(OWNERS)]
    for owner in owners:
        party_svc.add_party(deps, owner)
        dataset_svc.add_dataset(deps, owner, "cards", csv, SCHEMA)
        rights_svc.declare(deps, owner, "cards", {"legal_basis": "contract", "purposes": ["analytics"]})
    names = [f"party{i:04d}" for i in range(parties)]
    now = deps.now()
    with deps.store.transaction() as conn:
        for name in names:
            deps.store.insert_party(conn, Party(deps.new_id(), name, "organization", now))
        owner_ids = {o: deps.store.party_by_name(conn, o).id for o in owners}
        rng = random.Random(7)
        public: list[str] = []
        for i in range(listings):
            owner = owners[i % OWNERS]
            doc = listing_doc(owner, f"product-{i:05d}")
            if i % 3 == 0:
                doc["visibility"] = rng.sample(names, 3)
            listing_id = deps.new_id()
            deps.store.insert_listing(conn, listing_id, owner_ids[owner], parse_listing(doc, owner), doc, now)
            if i % 3:
                public.append(listing_id)
    return owners, names, public


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    fn()  # warm
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--parties", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="Metadata store (default: SQLite in a temp dir).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        deps = bootstrap.build(bootstrap.Settings(home, args.database_url or f"sqlite:///{Path(tmp) / 'm.db'}"))
        bootstrap.init_store(deps)
        started = time.perf_counter()
        owners, names, public = build(deps, args.listings, args.parties, Path(tmp))
        setup_s = time.perf_counter() - started
        rng = random.Random(11)
        tokens = {n: party_svc.create_token(deps, n)[1] for n in rng.sample(names, min(50, len(names)))}
        api = TestClient(create_app(deps, head_interval_s=1.0))
        unused = iter(rng.sample([(p, listing) for p in names for listing in rng.sample(public, 3)],
                                 4 * (args.repeat + 1)))

        def page_raw() -> None:
            with deps.store.read() as conn:
                conn.execute(sa.select(t.listings).where(t.listings.c.status == "published")
                             .order_by(t.listings.c.name).limit(50)).all()

        def page_service() -> None:
            assert len(listing_svc.catalogue(deps, rng.choice(names))) == 50

        def page_api() -> None:
            who = rng.choice(list(tokens))
            response = api.get("/v1/listings", headers={"Authorization": f"Bearer {tokens[who]}"})
            assert response.status_code == 200 and len(response.json()) == 50

        def propose() -> None:
            party, listing_id = next(unused)
            with deps.store.read() as conn:
                terms = deps.store.listing(conn, listing_id)["terms"].terms_for(party, PURPOSE)
            doc = {**terms.to_dict(), "name": f"{terms.name}-p"[:63]}
            agreement_svc.propose(deps, terms.provider, doc)

        def request_service() -> None:
            party, listing_id = next(unused)
            assert listing_svc.request(deps, party, listing_id, PURPOSE)["status"] == "active"

        holders = list(tokens)

        def request_api() -> None:
            party = rng.choice(holders)
            listing_id = rng.choice(public)
            response = api.post(f"/v1/listings/{listing_id}/requests", json={"purpose": PURPOSE},
                                headers={"Authorization": f"Bearer {tokens[party]}"})
            assert response.status_code == 201 and response.json()["status"] == "active", response.text

        results = {name: timed(fn, args.repeat) for name, fn in (
            ("page_raw", page_raw), ("page_service", page_service), ("page_api", page_api),
            ("propose", propose), ("request_service", request_service), ("request_api", request_api))}
        deps.store.dispose()
    print(f"catalogue: {args.listings:,} listings, {args.parties:,} parties, {OWNERS} owners; "
          f"{'PostgreSQL' if args.database_url else 'SQLite'}; setup {setup_s:.1f} s; {args.repeat} calls each")
    print(machine_line())
    base_page, base_request = results["page_raw"][0], results["propose"][0]
    print(f"{'':34}{'p50 ms':>9}{'p95 ms':>9}{'x baseline':>12}{'< 100 ms':>10}")
    for label, key, base in (("baseline: raw page of listings", "page_raw", base_page),
                             ("catalogue page (service)", "page_service", base_page),
                             ("catalogue page (API)", "page_api", base_page),
                             ("baseline: agreement propose", "propose", base_request),
                             ("request, granted (service)", "request_service", base_request),
                             ("request, granted (API)", "request_api", base_request)):
        p50, p95 = results[key]
        print(f"{label:34}{p50:9.2f}{p95:9.2f}{p50 / base:12.2f}{'yes' if p95 < 100 else 'NO':>10}")


if __name__ == "__main__":
    main()
