"""Export benchmark: a curated rows-mode export against DuckDB's raw COPY of the same rows.

    .venv/bin/python benchmarks/export.py                  # 10M rows
    .venv/bin/python benchmarks/export.py --rows 500000    # smoke

Data: one row per person, a subject id, four quasi-identifiers (age, zip, gender,
occupation) and two other columns. The export runs through the real service
(`services.exports.export`: governor, consent-free view with a keyed hash of the id, the
k-anonymity walk, Parquet out, hashing, ledger). The baseline, in the same run, is DuckDB
copying the same Parquet to Parquet with nothing done to it (the physical limit).
Target (issue #7): ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import data_dir, machine_line  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.policy.transforms import hmac_sql  # noqa: E402
from commonground.services import agreements as agreement_svc  # noqa: E402
from commonground.services import datasets as dataset_svc  # noqa: E402
from commonground.services import exports as export_svc  # noqa: E402
from commonground.services import parties as party_svc  # noqa: E402

SCHEMA = {"columns": {
    "person_id": {"type": "string", "role": "subject_id"},
    "age": {"type": "integer", "role": "quasi_identifier"},
    "zip": {"type": "string", "role": "quasi_identifier"},
    "gender": {"type": "string", "role": "quasi_identifier"},
    "occupation": {"type": "string", "role": "quasi_identifier"},
    "income": {"type": "double", "role": "sensitive"},
    "visits": {"type": "integer"},
}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = data_dir() / f"export-{args.rows}.parquet"
    con = duckdb.connect()
    if not source.exists():
        con.execute(f"""COPY (SELECT 'P' || lpad(CAST(i AS VARCHAR), 9, '0') AS person_id, 18 + (i * 7919) % 70 AS age,
                        CAST(10000 + (i * 104729) % 900 AS VARCHAR) AS zip, ['F', 'M', 'X'][1 + i % 3] AS gender,
                        'occ' || CAST((i * 31) % 40 AS VARCHAR) AS occupation, (i % 100000) / 3.0 AS income,
                        CAST(i % 17 AS INTEGER) AS visits FROM range({args.rows}) t(i))
                        TO '{source}' (FORMAT parquet, COMPRESSION zstd)""")
    home = Path(tempfile.mkdtemp(prefix="cg-export-")) / "home"
    deps = bootstrap.build(bootstrap.Settings.from_env(home))
    bootstrap.init_store(deps)
    for name in ("provider", "recipient"):
        party_svc.add_party(deps, name)
    loaded = time.perf_counter()
    dataset_svc.add_dataset(deps, "provider", "people", source, SCHEMA)
    load_s = time.perf_counter() - loaded
    fields = {c: "raw" for c in SCHEMA["columns"]}
    fields["person_id"] = "hash"
    made = agreement_svc.propose(deps, "provider", {
        "name": "rows", "provider": "provider", "recipients": ["recipient"], "purposes": ["analytics.reporting"],
        "valid_until": "2099-12-31", "datasets": {"provider.people": {"fields": fields}},
        "access": {"mode": "rows", "min_group_size": 5}})
    agreement_svc.accept(deps, "recipient", made.id)

    def ours() -> dict:
        return export_svc.export(deps, "recipient", "provider.people", "analytics.reporting")

    def raw(select: str = "*") -> None:
        out = Path(tempfile.mkdtemp()) / "raw.parquet"
        duckdb.connect().execute(f"COPY (SELECT {select} FROM read_parquet('{source}')) TO '{out}' "
                                 "(FORMAT parquet, COMPRESSION zstd)")
        out.unlink()

    def raw_keyed() -> None:
        # The same copy with the one thing no export can skip: the recipient's keyed pseudonyms.
        raw(f"{hmac_sql(b'k' * 32, 'person_id')} AS person_id, * EXCLUDE (person_id)")

    times = {"raw": [], "raw_keyed": [], "ours": []}
    report = None
    for _ in range(args.repeat):
        for name, fn in (("raw", raw), ("raw_keyed", raw_keyed), ("ours", ours)):
            started = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - started)
            report = result or report
    raw_s, keyed_s, ours_s = (statistics.median(times[n]) for n in ("raw", "raw_keyed", "ours"))
    print(f"export of {args.rows:,} rows (one per person, 4 quasi-identifiers, k = 5); ingest took {load_s:.1f} s")
    print(f"{'DuckDB COPY parquet -> parquet (raw)':44} {raw_s:8.2f} s  {args.rows / raw_s / 1e6:6.2f} M rows/s")
    print(f"{'the same COPY with HMAC-SHA256 pseudonyms':44} {keyed_s:8.2f} s  {args.rows / keyed_s / 1e6:6.2f} M rows/s")
    print(f"{'curated export (service)':44} {ours_s:8.2f} s  {args.rows / ours_s / 1e6:6.2f} M rows/s")
    ratio = ours_s / raw_s
    print(f"{'ratio to raw COPY (target <= 1.5)':44} {ratio:8.2f}x  {'MET' if ratio <= 1.5 else 'NOT MET'}")
    print(f"{'ratio to the keyed COPY':44} {ours_s / keyed_s:8.2f}x  (what the governor, k-anonymity and "
          "bookkeeping add)")
    assert report is not None
    print(f"report: {report['rows_out']:,} rows out, {report['suppressed_rows']:,} suppressed "
          f"({report['suppression_rate']:.2%}), smallest class {report['smallest_class']}, levels {report['quasi_identifiers']}")
    print(machine_line())
    deps.store.dispose()


if __name__ == "__main__":
    main()
